//! Pure health judgement of one agent from one observation.

use crate::model::SessionState;
use crate::model::{AgentSignal, Health};
use crate::screen::classify::{Reading, ScreenState};

#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Thresholds {
    pub idle_seconds: i64,
    pub activity_stalled_seconds: i64,
    pub progress_stalled_seconds: i64,
}

/// What we knew about the agent before this observation.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Prior {
    pub last_activity_at: Option<i64>,
    pub last_progress_at: Option<i64>,
    pub started_at: i64,
    pub signal: Option<AgentSignal>,
    pub exit_status: Option<i64>,
    pub exit_signal: Option<i64>,
    pub health: Option<Health>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Judgement {
    pub health: Health,
    /// Agent status column: running, exited, failed, dead, unknown.
    pub status: &'static str,
    pub last_activity_at: Option<i64>,
    pub last_progress_at: Option<i64>,
    pub exit_status: Option<i64>,
    pub exit_signal: Option<i64>,
    pub pane_id: Option<String>,
    /// A live (not dead) pane exists.
    pub alive: bool,
    pub reason: String,
}

/// The state shown for an agent: what it reported (`waiting`, `done`) while it is quiet on
/// purpose, else its health.
pub fn shown_state(health: Health, signal: Option<AgentSignal>) -> &'static str {
    match (health, signal) {
        (Health::Idle | Health::Healthy, Some(s @ (AgentSignal::Waiting | AgentSignal::Done))) => {
            s.as_str()
        }
        _ => health.as_str(),
    }
}

pub fn judge(obs: SessionState<'_>, prior: &Prior, now: i64, t: &Thresholds) -> Judgement {
    let keep = |health: Health, status: &'static str, reason: String| Judgement {
        health,
        status,
        last_activity_at: prior.last_activity_at,
        last_progress_at: prior.last_progress_at,
        exit_status: prior.exit_status,
        exit_signal: prior.exit_signal,
        pane_id: None,
        alive: false,
        reason,
    };
    let panes = match obs {
        // Unknown never makes an agent dead: keep what we knew, flag the doubt.
        SessionState::Unknown => {
            return keep(Health::Unknown, "unknown", "tmux unreachable".into());
        }
        SessionState::Absent => {
            return keep(Health::Dead, "dead", "agent session is not running".into());
        }
        SessionState::Present(p) => p,
    };
    let first = &panes[0];
    let pane_id = Some(first.pane_id.clone());
    let tmux_activity = panes.iter().filter_map(|p| p.window_activity).max();
    let last_activity = match (tmux_activity, prior.last_activity_at) {
        (Some(a), Some(b)) => Some(a.max(b)),
        (a, b) => a.or(b),
    };
    if panes.iter().all(|p| p.dead) {
        let (status, signal) = (first.dead_status, first.dead_signal);
        let mut j = Judgement {
            health: Health::Dead,
            status: "failed",
            last_activity_at: last_activity,
            last_progress_at: prior.last_progress_at,
            exit_status: status,
            exit_signal: signal,
            pane_id,
            alive: false,
            reason: String::new(),
        };
        match (status, signal) {
            (Some(0), _) => {
                j.health = Health::Exited;
                j.status = "exited";
                j.reason = "agent exited with status 0".into();
            }
            (Some(code), _) => j.reason = format!("agent process exited with status {code}"),
            (None, Some(sig)) => j.reason = format!("agent process killed by signal {sig}"),
            // tmux has not reaped the status yet. Corroboration protects a clean exit:
            // by the next counted observation the status (0 → exited) is normally in.
            (None, None) => j.reason = "agent process exited (status not reported yet)".into(),
        }
        return j;
    }
    let progress = match (prior.last_progress_at, last_activity) {
        (Some(p), Some(a)) => Some(p.max(a)),
        (p, a) => p.or(a),
    };
    let base = prior.started_at;
    let activity_age = now - last_activity.unwrap_or(base);
    let progress_age = now - progress.unwrap_or(base);
    // An agent that told us it waits for input or finished its turn is quiet on purpose.
    let quiet_by_design = matches!(prior.signal, Some(AgentSignal::Waiting | AgentSignal::Done));
    let (health, reason) = if !quiet_by_design
        && (activity_age >= t.activity_stalled_seconds
            || progress_age >= t.progress_stalled_seconds)
    {
        (
            Health::Stalled,
            format!(
                "no recent activity (activity_age={}s, threshold={}s)",
                activity_age, t.activity_stalled_seconds
            ),
        )
    } else if let (true, Some(sig)) = (quiet_by_design, prior.signal) {
        // Its own report, not a guess from silence ("idle for 0s" said nothing).
        (
            Health::Idle,
            format!("reported {} by the agent", sig.as_str()),
        )
    } else if activity_age >= t.idle_seconds {
        (Health::Idle, format!("idle for {activity_age}s"))
    } else {
        (Health::Healthy, String::new())
    };
    Judgement {
        health,
        status: "running",
        last_activity_at: last_activity,
        last_progress_at: progress,
        exit_status: None,
        exit_signal: None,
        pane_id,
        alive: true,
        reason,
    }
}

/// Whether an interactive agent's screen is worth reading: it is alive and quiet.
/// A busy pane is never captured.
pub fn wants_screen(j: &Judgement) -> bool {
    j.alive && matches!(j.health, Health::Idle | Health::Stalled)
}

/// A quiet live interactive agent judged again from what its screen shows: a busy
/// marker is working (healthy), a dialog or the bare prompt is quiet on purpose (idle);
/// an unrecognised screen leaves the judgement as it was.
pub fn with_screen(mut j: Judgement, reading: &Reading, now: i64) -> Judgement {
    if !j.alive {
        return j;
    }
    let quiet = now - j.last_activity_at.unwrap_or(now);
    let matched = reading.matched.as_deref().unwrap_or("");
    match reading.state {
        ScreenState::Working => {
            j.health = Health::Healthy;
            j.reason = format!("quiet for {quiet}s, busy on its screen ({matched})");
        }
        ScreenState::Waiting => {
            j.health = Health::Idle;
            j.reason = format!("waiting for a decision on its screen for {quiet}s");
        }
        ScreenState::Idle => {
            j.health = Health::Idle;
            j.reason = format!("idle at its prompt for {} min", quiet / 60);
        }
        ScreenState::Unknown => {
            if j.health == Health::Stalled {
                j.reason = format!("{}; screen not recognised", j.reason);
            }
        }
    }
    j
}

/// An agent of the original metawsm's wrapper (original.rs) whose pane shows the exit marker is dead (status ≠ 0) or exited (0),
/// as the original meant, though its pane is still alive with a shell in it.
pub fn judge_marker(j: &mut Judgement, status: i64) {
    j.alive = false;
    j.exit_status = Some(status);
    j.exit_signal = None;
    if status == 0 {
        j.health = Health::Exited;
        j.status = "exited";
        j.reason = "agent exited with status 0 (metawsm exit marker)".into();
    } else {
        j.health = Health::Dead;
        j.status = "failed";
        j.reason = format!("agent process exited with status {status} (metawsm exit marker)");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn marker_judgement() {
        let mut j = Judgement {
            health: Health::Stalled,
            status: "running",
            last_activity_at: Some(1),
            last_progress_at: Some(1),
            exit_status: None,
            exit_signal: None,
            pane_id: Some("%1".into()),
            alive: true,
            reason: String::new(),
        };
        judge_marker(&mut j, 2);
        assert_eq!(
            (j.health, j.status, j.alive),
            (Health::Dead, "failed", false)
        );
        assert_eq!(j.exit_status, Some(2));
        judge_marker(&mut j, 0);
        assert_eq!((j.health, j.status), (Health::Exited, "exited"));
    }
    use crate::model::panes::PaneRow;

    const T: Thresholds = Thresholds {
        idle_seconds: 300,
        activity_stalled_seconds: 900,
        progress_stalled_seconds: 1200,
    };

    fn pane(
        dead: bool,
        status: Option<i64>,
        signal: Option<i64>,
        activity: Option<i64>,
    ) -> PaneRow {
        PaneRow {
            session: "s".into(),
            window_id: "@1".into(),
            pane_id: "%1".into(),
            pid: Some(1),
            dead,
            dead_at: None,
            dead_status: status,
            dead_signal: signal,
            window_activity: activity,
            title: String::new(),
            current_command: "x".into(),
        }
    }

    fn prior() -> Prior {
        Prior {
            started_at: 1000,
            last_activity_at: Some(1000),
            ..Default::default()
        }
    }

    #[test]
    fn table() {
        let now = 10_000;
        type Case = (
            &'static str,
            Vec<PaneRow>,
            Option<AgentSignal>,
            Health,
            &'static str,
        );
        let cases: Vec<Case> = vec![
            (
                "fresh output",
                vec![pane(false, None, None, Some(now - 5))],
                None,
                Health::Healthy,
                "running",
            ),
            (
                "idle",
                vec![pane(false, None, None, Some(now - 300))],
                None,
                Health::Idle,
                "running",
            ),
            (
                "stalled",
                vec![pane(false, None, None, Some(now - 900))],
                None,
                Health::Stalled,
                "running",
            ),
            (
                "waiting is not stalled",
                vec![pane(false, None, None, Some(now - 5000))],
                Some(AgentSignal::Waiting),
                Health::Idle,
                "running",
            ),
            (
                "exit 3",
                vec![pane(true, Some(3), None, Some(now))],
                None,
                Health::Dead,
                "failed",
            ),
            (
                "exit 0",
                vec![pane(true, Some(0), None, Some(now))],
                None,
                Health::Exited,
                "exited",
            ),
            (
                "signal",
                vec![pane(true, None, Some(15), Some(now))],
                None,
                Health::Dead,
                "failed",
            ),
            (
                "status not reported yet",
                vec![pane(true, None, None, Some(now))],
                None,
                Health::Dead,
                "failed",
            ),
            (
                "one pane alive",
                vec![
                    pane(true, Some(1), None, Some(now)),
                    pane(false, None, None, Some(now)),
                ],
                None,
                Health::Healthy,
                "running",
            ),
        ];
        for (name, panes, signal, health, status) in cases {
            let p = Prior { signal, ..prior() };
            let j = judge(SessionState::Present(&panes), &p, now, &T);
            assert_eq!((j.health, j.status), (health, status), "{name}");
        }
    }

    #[test]
    fn absent_is_dead_and_unknown_is_never_dead() {
        let j = judge(SessionState::Absent, &prior(), 5000, &T);
        assert_eq!((j.health, j.status), (Health::Dead, "dead"));
        let j = judge(SessionState::Unknown, &prior(), 5000, &T);
        assert_eq!(j.health, Health::Unknown);
        assert_eq!(j.last_activity_at, Some(1000));
    }

    #[test]
    fn exit_status_is_kept() {
        let panes = [pane(true, Some(3), None, Some(2000))];
        let j = judge(SessionState::Present(&panes), &prior(), 5000, &T);
        assert_eq!(j.exit_status, Some(3));
        assert_eq!(j.reason, "agent process exited with status 3");
    }

    #[test]
    fn activity_never_goes_backwards() {
        let panes = [pane(false, None, None, Some(500))];
        let j = judge(SessionState::Present(&panes), &prior(), 1100, &T);
        assert_eq!(j.last_activity_at, Some(1000));
    }
    #[test]
    fn screen_readings_adjust_quiet_agents() {
        let now = 10_000;
        let panes = [pane(false, None, None, Some(now - 1000))];
        let stalled = judge(SessionState::Present(&panes), &prior(), now, &T);
        assert_eq!(stalled.health, Health::Stalled);
        assert!(wants_screen(&stalled));
        let reading = |state| Reading {
            state,
            matched: Some("* working line esc to interrupt".into()),
            question: String::new(),
            tail: String::new(),
        };
        let cases = [
            (ScreenState::Working, Health::Healthy, "busy on its screen"),
            (ScreenState::Waiting, Health::Idle, "waiting for a decision"),
            (
                ScreenState::Idle,
                Health::Idle,
                "idle at its prompt for 16 min",
            ),
            (
                ScreenState::Unknown,
                Health::Stalled,
                "screen not recognised",
            ),
        ];
        for (state, health, has) in cases {
            let j = with_screen(stalled.clone(), &reading(state), now);
            assert_eq!(j.health, health, "{state:?}");
            assert!(j.reason.contains(has), "{state:?}: {}", j.reason);
        }
        // Busy and dead panes are not read; a dead one is never revived by a screen.
        let busy = [pane(false, None, None, Some(now - 5))];
        assert!(!wants_screen(&judge(
            SessionState::Present(&busy),
            &prior(),
            now,
            &T
        )));
        let dead = [pane(true, Some(1), None, Some(now - 1000))];
        let j = judge(SessionState::Present(&dead), &prior(), now, &T);
        assert!(!wants_screen(&j));
        assert_eq!(
            with_screen(j, &reading(ScreenState::Working), now).health,
            Health::Dead
        );
    }
}
