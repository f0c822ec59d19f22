//! The deterministic rule engine: (run snapshot, persisted state, policy, now) → decision.
//! Pure: no I/O, so every rule is a row in a table test.

use crate::model::{Health, Intent, RunStatus};
use crate::policy::Policy;
pub use crate::reason::Reason;
use crate::screen::{Reading, ScreenState};
use crate::store::OpState;

#[derive(Debug, Clone, PartialEq)]
pub struct AgentView {
    pub name: String,
    pub health: Health,
    /// A live pane exists (from this tick's observation).
    pub alive: bool,
    pub exit_status: Option<i64>,
    /// Activity as observed this tick.
    pub last_activity_at: Option<i64>,
    /// Activity as stored before this tick (what staleness is measured from).
    pub stored_activity_at: Option<i64>,
    pub reason: String,
    /// A completion signal covers this agent.
    pub complete: bool,
    /// The agent reported it finished its turn (`signal done`): quiet on purpose.
    pub reported_done: bool,
    /// Set for interactive agents (adopted, or an interactive CLI's start command).
    pub interactive: Option<Interactive>,
    /// A restart command is known (an adopted pane may have none: then escalate).
    pub restartable: bool,
}

/// What is known of an interactive agent beyond tmux's pane row.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Interactive {
    /// Its hooks last said it is mid-turn (`signal working`): silence then is a hang.
    pub hook_busy: bool,
    /// What its screen said this tick (read only while it is quiet).
    pub screen: Option<ScreenState>,
}

impl AgentView {
    /// A live interactive agent that nothing says is hung: never restarted or stopped
    /// for being quiet unless the policy opts in.
    fn quiet_by_choice(&self, policy: &Policy) -> bool {
        self.alive
            && self.interactive.is_some_and(|i| !i.hook_busy)
            && !policy.health.restart_quiet_interactive
    }
}

/// The question a quiet interactive agent's screen puts to a human, if any: a dialog's
/// text, or, once it has been quiet for the stall threshold, that it sits idle at its
/// prompt (with the last lines as context).
pub fn screen_question(
    agent: &str,
    reading: &Reading,
    quiet_seconds: i64,
    policy: &Policy,
) -> Option<PendingGuidance> {
    // A dialog's own text is a question; the other two are descriptions of a prompt.
    let (question, at_prompt) = match reading.state {
        ScreenState::Waiting if !reading.question.is_empty() => (reading.question.clone(), false),
        ScreenState::Waiting => ("(waiting for a decision on its screen)".into(), true),
        ScreenState::Idle if quiet_seconds >= policy.health.activity_stalled_seconds => (
            format!("(idle at its prompt for {} min)", quiet_seconds / 60),
            true,
        ),
        _ => return None,
    };
    Some(PendingGuidance {
        agent: agent.to_string(),
        question,
        context: reading.tail.clone(),
        at_prompt,
    })
}

/// Whether a question recorded from an agent's screen is still open: the agent is alive
/// and either its screen was not read while it stayed quiet (a failed capture proves
/// nothing) or it still shows that dialog. Activity again (not quiet), another screen,
/// or a dead agent means the dialog was answered or abandoned.
pub fn pane_question_open(
    alive: bool,
    quiet: bool,
    reading: Option<&Reading>,
    question: &str,
) -> bool {
    alive
        && quiet
        && reading.is_none_or(|r| r.state == ScreenState::Waiting && r.question == question)
}

#[derive(Debug, Clone, PartialEq)]
pub struct PendingGuidance {
    pub agent: String,
    pub question: String,
    pub context: String,
    /// No written question: the agent waits at its prompt (`signal waiting`, or what its
    /// screen shows), so the answer is typed there rather than given with `guide`.
    pub at_prompt: bool,
}

#[derive(Debug, Clone, PartialEq)]
pub struct RunView {
    pub id: String,
    pub status: RunStatus,
    pub status_changed_at: i64,
    pub agents: Vec<AgentView>,
    pub guidance: Option<PendingGuidance>,
    /// Some(reason) when tmux could not be asked this tick.
    pub tmux_unknown: Option<String>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Decision {
    pub intent: Intent,
    pub reason: Reason,
    /// What the gate lets anyone (the LLM included) choose for this run right now.
    pub permitted: Vec<Intent>,
    pub execute: bool,
    /// Agents the action targets.
    pub targets: Vec<String>,
    /// All agents finished and signalled completion: the run becomes `completed`.
    pub complete: bool,
    /// Operator state after this observation (streak, healthy window, budget reset).
    pub state: OpState,
    /// Things worth an audit event that are not the decision itself.
    pub notes: Vec<String>,
}

/// What the rules will do once corroboration completes, for a dry run (which never
/// advances the streak): the decision the same situation gets after the missing
/// observations, and how many are missing. `None` unless the decision waits on them.
pub fn preview(run: &RunView, prev: &OpState, policy: &Policy, now: i64) -> Option<(Intent, i64)> {
    let d = decide(run, prev, policy, now);
    let Reason::AwaitingCorroboration { streak, need } = d.reason else {
        return None;
    };
    let ahead = OpState {
        unhealthy_streak: need - 1,
        last_observation_at: None,
        ..prev.clone()
    };
    let later = decide(run, &ahead, policy, now);
    (later.intent != Intent::Noop).then_some((later.intent, (need - streak).max(1)))
}

/// Cooldown after the n-th attempt (1-based): base × 2^(n−1), capped.
pub fn cooldown_for(attempt: i64, policy: &Policy) -> i64 {
    let base = policy.operator.restart_cooldown_seconds.max(1);
    let cap = policy.operator.restart_cooldown_max_seconds.max(base);
    let shift = (attempt - 1).clamp(0, 40) as u32;
    base.saturating_mul(1_i64 << shift).min(cap)
}

/// Operator state after a restart attempt, successful or not.
pub fn after_restart(state: &OpState, now: i64, policy: &Policy) -> OpState {
    let attempts = state.restart_attempts + 1;
    OpState {
        restart_attempts: attempts,
        last_restart_at: Some(now),
        cooldown_until: Some(now + cooldown_for(attempts, policy)),
        // Every restart needs fresh corroboration before the next one.
        unhealthy_streak: 0,
        healthy_since: None,
        ..state.clone()
    }
}

/// Dedup of alerts (notify + changelog): true when this (intent, reason) is new for the
/// run. Never gates an action. A `noop` seen with real evidence (tmux known) ends the
/// episode; an executed restart is routine (an event, not an alert), while a restart that
/// will not happen (assist mode, LLM veto) is exactly what a human must hear about.
pub fn take_alert(
    state: &mut OpState,
    intent: Intent,
    reason: &str,
    execute: bool,
    evidence: bool,
    now: i64,
) -> bool {
    match intent {
        Intent::Noop => {
            if evidence {
                state.last_alert = None;
            }
            return false;
        }
        Intent::AutoRestart if execute => return false,
        _ => {}
    }
    let fp = format!("{}:{}", intent.as_str(), reason);
    // Digits carry ages and counters ("activity_age=61s"): without them a reason names the
    // same situation, so a stalled agent past its budget alerts once, not every tick.
    if state
        .last_alert
        .as_deref()
        .is_some_and(|a| stable_text(a) == stable_text(&fp))
    {
        return false;
    }
    state.last_alert = Some(fp);
    state.last_alert_at = Some(now);
    true
}

/// A reason without its measurements: digit runs that stand alone (`61s`, `(3/3)`,
/// `for 7201s`) are dropped, digits inside names (`w1`, `run-42`, `T-7`) are kept, so
/// "agent w1 …" and "agent w2 …" stay different while ages do not make a new situation.
pub fn stable_text(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut prev: Option<char> = None;
    let mut dropping = false;
    for c in s.chars() {
        if c.is_ascii_digit() {
            if !dropping {
                let in_name = prev.is_some_and(|p| p.is_alphanumeric() || p == '-' || p == '_');
                dropping = !in_name;
            }
            if !dropping {
                out.push(c);
            }
        } else {
            dropping = false;
            out.push(c);
        }
        prev = Some(c);
    }
    out
}

fn permitted_for(intent: Intent, guidance: bool) -> Vec<Intent> {
    match intent {
        Intent::Noop if guidance => vec![
            Intent::Noop,
            Intent::EscalateGuidance,
            Intent::EscalateBlocked,
        ],
        Intent::Noop => vec![Intent::Noop, Intent::EscalateBlocked],
        Intent::EscalateGuidance => vec![Intent::EscalateGuidance, Intent::EscalateBlocked],
        Intent::EscalateBlocked => vec![Intent::EscalateBlocked],
        // Never noop: an LLM may ask for a human instead of an action, not silence it.
        Intent::AutoRestart => vec![Intent::AutoRestart, Intent::EscalateBlocked],
        Intent::AutoStopStale => vec![Intent::AutoStopStale, Intent::EscalateBlocked],
    }
}

pub fn decide(run: &RunView, prev: &OpState, policy: &Policy, now: i64) -> Decision {
    let op = &policy.operator;
    let mut state = prev.clone();
    let mut notes = Vec::new();
    let mk = |intent: Intent,
              reason: Reason,
              targets: Vec<String>,
              state: OpState,
              notes: Vec<String>| Decision {
        intent,
        reason,
        permitted: permitted_for(intent, run.guidance.is_some()),
        execute: intent.is_action(),
        targets,
        complete: false,
        state,
        notes,
    };

    if let Some(why) = &run.tmux_unknown {
        // Unknown is never evidence: no streak change, no action.
        return mk(
            Intent::Noop,
            Reason::TmuxUnreachable(why.clone()),
            vec![],
            state,
            notes,
        );
    }
    if !matches!(
        run.status,
        RunStatus::Running | RunStatus::AwaitingGuidance | RunStatus::Paused | RunStatus::Planning
    ) {
        return mk(
            Intent::Noop,
            Reason::RunInactive(run.status),
            vec![],
            state,
            notes,
        );
    }

    // An agent a completion file covers has finished: its exit is not a fault.
    let unhealthy: Vec<&AgentView> = run
        .agents
        .iter()
        .filter(|a| a.health.is_unhealthy() && !a.complete)
        .collect();

    // Streak and healthy window: persisted, so a per-call process corroborates across calls.
    if unhealthy.is_empty() {
        state.unhealthy_streak = 0;
        let since = *state.healthy_since.get_or_insert(now);
        if state.restart_attempts > 0 && now - since >= op.healthy_reset_seconds {
            notes.push(format!(
                "restart attempts reset to 0 after {}s healthy (were {})",
                now - since,
                state.restart_attempts
            ));
            state.restart_attempts = 0;
            state.cooldown_until = None;
        }
    } else if run.status == RunStatus::Running {
        state.healthy_since = None;
        let counted = state
            .last_observation_at
            .is_none_or(|t| now - t >= op.min_observation_gap_seconds);
        if counted {
            state.unhealthy_streak += 1;
            state.last_observation_at = Some(now);
        }
    }

    // 0. A completion file covering every agent completes the run by itself, whatever the
    // agents do now: an interactive agent that finished stays at its prompt (alive, quiet,
    // maybe "waiting") and must never be restarted for it.
    if !run.agents.is_empty() && run.agents.iter().all(|a| a.complete) {
        let mut d = mk(Intent::Noop, Reason::Completed, vec![], state, notes);
        d.complete = true;
        return d;
    }

    // 1. A pending question is always for a human.
    if let Some(g) = &run.guidance {
        return mk(
            Intent::EscalateGuidance,
            Reason::Asks {
                agent: g.agent.clone(),
                question: g.question.clone(),
            },
            vec![],
            state,
            notes,
        );
    }

    // 2. Stale: no sign of life for stale_run_age, verified against live tmux evidence.
    let last_sign = run
        .agents
        .iter()
        .filter_map(|a| a.stored_activity_at)
        .chain([run.status_changed_at])
        .chain(prev.last_restart_at)
        .max()
        .unwrap_or(run.status_changed_at);
    let age = now - last_sign;
    if age >= op.stale_run_age_seconds {
        let threshold = op.stale_run_age_seconds;
        let window = policy.health.activity_stalled_seconds;
        let busy = run.agents.iter().find(|a| {
            a.alive
                && (a.reported_done
                    || a.last_activity_at.is_some_and(|t| now - t < window)
                    || a.quiet_by_choice(policy))
        });
        return match busy {
            Some(a) if a.reported_done => mk(
                Intent::Noop,
                Reason::StaleButDone {
                    age,
                    threshold,
                    agent: a.name.clone(),
                },
                vec![],
                state,
                notes,
            ),
            Some(a) if a.quiet_by_choice(policy) => mk(
                Intent::Noop,
                Reason::StaleButInteractive {
                    age,
                    threshold,
                    agent: a.name.clone(),
                },
                vec![],
                state,
                notes,
            ),
            Some(a) => mk(
                Intent::Noop,
                Reason::StaleButActive {
                    age,
                    threshold,
                    agent: a.name.clone(),
                    ago: now - a.last_activity_at.unwrap_or(now),
                    window,
                },
                vec![],
                state,
                notes,
            ),
            None => mk(
                Intent::AutoStopStale,
                Reason::StaleVerified {
                    age,
                    threshold,
                    window,
                },
                run.agents.iter().map(|a| a.name.clone()).collect(),
                state,
                notes,
            ),
        };
    }

    // 3. Unhealthy agents of a running run: corroborate, then budget, then cooldown.
    if !unhealthy.is_empty() {
        if run.status != RunStatus::Running {
            return mk(
                Intent::Noop,
                Reason::UnhealthyNotRunning {
                    count: unhealthy.len(),
                    status: run.status,
                },
                vec![],
                state,
                notes,
            );
        }
        let need = op.unhealthy_confirmations;
        if state.unhealthy_streak < need {
            return mk(
                Intent::Noop,
                Reason::AwaitingCorroboration {
                    streak: state.unhealthy_streak,
                    need,
                },
                vec![],
                state,
                notes,
            );
        }
        // A quiet interactive agent is left alone: its conversation is worth more than a
        // restart that nothing says it needs. A human hears about it instead.
        let (held, unhealthy): (Vec<&AgentView>, Vec<&AgentView>) = unhealthy
            .into_iter()
            .partition(|a| a.health == Health::Stalled && a.quiet_by_choice(policy));
        if unhealthy.is_empty() {
            let detail = held
                .iter()
                .map(|a| format!("{}: {}", a.name, a.reason))
                .collect::<Vec<_>>()
                .join("; ");
            return mk(
                Intent::EscalateBlocked,
                Reason::QuietInteractive { detail },
                vec![],
                state,
                notes,
            );
        }
        // Nothing to restart with (an adopted pane tmux knows no start command for): a
        // human decides, rather than a restart that cannot happen.
        if let Some(a) = unhealthy.iter().find(|a| !a.restartable) {
            return mk(
                Intent::EscalateBlocked,
                Reason::NoRestartCommand {
                    agent: a.name.clone(),
                    detail: a.reason.clone(),
                },
                vec![],
                state,
                notes,
            );
        }
        if state.restart_attempts >= op.restart_budget {
            let detail = unhealthy
                .iter()
                .map(|a| format!("{}: {}", a.name, a.reason))
                .collect::<Vec<_>>()
                .join("; ");
            return mk(
                Intent::EscalateBlocked,
                Reason::BudgetExhausted {
                    attempts: state.restart_attempts,
                    budget: op.restart_budget,
                    detail,
                },
                vec![],
                state,
                notes,
            );
        }
        if let Some(until) = state.cooldown_until.filter(|&u| now < u) {
            return mk(
                Intent::Noop,
                Reason::Cooldown { until },
                vec![],
                state,
                notes,
            );
        }
        let targets: Vec<String> = unhealthy.iter().map(|a| a.name.clone()).collect();
        let detail = unhealthy
            .iter()
            .map(|a| format!("{}: {}", a.name, a.reason))
            .collect::<Vec<_>>()
            .join("; ");
        return mk(
            Intent::AutoRestart,
            Reason::RestartCorroborated {
                attempt: state.restart_attempts + 1,
                budget: op.restart_budget,
                detail,
            },
            targets,
            state,
            notes,
        );
    }

    // 4. Finished agents (full completion was rule 0): a silent exit 0 is a blocker.
    let exited: Vec<&AgentView> = run
        .agents
        .iter()
        .filter(|a| a.health == Health::Exited)
        .collect();
    if let Some(a) = exited.iter().find(|a| !a.complete) {
        return mk(
            Intent::EscalateBlocked,
            Reason::ExitedWithoutCompletion {
                agent: a.name.clone(),
            },
            vec![],
            state,
            notes,
        );
    }

    mk(Intent::Noop, Reason::Nothing, vec![], state, notes)
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: i64 = 100_000;

    fn policy() -> Policy {
        Policy::default()
    }

    fn agent(name: &str, health: Health) -> AgentView {
        let alive = matches!(health, Health::Healthy | Health::Idle | Health::Stalled);
        AgentView {
            name: name.into(),
            health,
            alive,
            exit_status: match health {
                Health::Dead => Some(1),
                Health::Exited => Some(0),
                _ => None,
            },
            last_activity_at: Some(NOW - if health == Health::Stalled { 1000 } else { 10 }),
            stored_activity_at: Some(NOW - if health == Health::Stalled { 1000 } else { 10 }),
            reason: format!("{} reason", health),
            complete: false,
            reported_done: false,
            interactive: None,
            restartable: true,
        }
    }

    fn run(status: RunStatus, agents: Vec<AgentView>) -> RunView {
        RunView {
            id: "run-1".into(),
            status,
            status_changed_at: NOW - 100,
            agents,
            guidance: None,
            tmux_unknown: None,
        }
    }

    fn streak(n: i64) -> OpState {
        OpState {
            unhealthy_streak: n,
            last_observation_at: Some(NOW - 60),
            ..Default::default()
        }
    }

    struct Case {
        name: &'static str,
        run: RunView,
        state: OpState,
        intent: Intent,
        reason_has: &'static str,
        targets: Vec<&'static str>,
    }

    fn interactive(name: &str, health: Health, screen: Option<ScreenState>) -> AgentView {
        AgentView {
            interactive: Some(Interactive {
                hook_busy: false,
                screen,
            }),
            ..agent(name, health)
        }
    }

    /// A dry run sees where corroboration leads, without counting anything.
    #[test]
    fn preview_after_corroboration() {
        let dead = run(RunStatus::Running, vec![agent("a", Health::Dead)]);
        let p = policy();
        assert_eq!(
            preview(&dead, &OpState::default(), &p, NOW),
            Some((Intent::AutoRestart, 1))
        );
        let mut three = policy();
        three.operator.unhealthy_confirmations = 3;
        assert_eq!(
            preview(&dead, &OpState::default(), &three, NOW),
            Some((Intent::AutoRestart, 2))
        );
        let spent = OpState {
            restart_attempts: p.operator.restart_budget,
            ..Default::default()
        };
        assert_eq!(
            preview(&dead, &spent, &p, NOW),
            Some((Intent::EscalateBlocked, 1))
        );
        // Nothing to corroborate, or already corroborated: no preview.
        let ok = run(RunStatus::Running, vec![agent("a", Health::Healthy)]);
        assert_eq!(preview(&ok, &OpState::default(), &p, NOW), None);
        assert_eq!(preview(&dead, &streak(1), &p, NOW), None);
    }

    /// Quiet interactive agents: never restarted or stopped on silence alone.
    #[test]
    fn quiet_interactive_table() {
        let opt_in = {
            let mut p = policy();
            p.health.restart_quiet_interactive = true;
            p
        };
        let unknown = Some(ScreenState::Unknown);
        let mut hooked = interactive("a", Health::Stalled, unknown);
        hooked.interactive = Some(Interactive {
            hook_busy: true,
            screen: unknown,
        });
        let mut dead = interactive("a", Health::Dead, None);
        dead.alive = false;
        let mut stale = run(
            RunStatus::Running,
            vec![interactive("a", Health::Idle, Some(ScreenState::Working))],
        );
        stale.status_changed_at = NOW - 7200;
        stale.agents[0].stored_activity_at = Some(NOW - 7200);
        stale.agents[0].last_activity_at = Some(NOW - 7200);
        let mut stale_batch = stale.clone();
        stale_batch.agents[0].interactive = None;
        let mut stale_opt_in = stale.clone();
        stale_opt_in.agents[0].interactive = Some(Interactive::default());
        type Row = (
            &'static str,
            RunView,
            &'static Policy,
            Intent,
            &'static str,
            Vec<&'static str>,
        );
        let default: &'static Policy = Box::leak(Box::new(policy()));
        let opt_in: &'static Policy = Box::leak(Box::new(opt_in));
        let rows: Vec<Row> = vec![
            (
                "unknown screen: escalated, not restarted",
                run(
                    RunStatus::Running,
                    vec![interactive("a", Health::Stalled, unknown)],
                ),
                default,
                Intent::EscalateBlocked,
                "quiet interactive agent not restarted",
                vec![],
            ),
            (
                "policy opt-in restarts it",
                run(
                    RunStatus::Running,
                    vec![interactive("a", Health::Stalled, unknown)],
                ),
                opt_in,
                Intent::AutoRestart,
                "restart 1/3",
                vec!["a"],
            ),
            (
                "hook evidence of a hang restarts it",
                run(RunStatus::Running, vec![hooked]),
                default,
                Intent::AutoRestart,
                "restart 1/3",
                vec!["a"],
            ),
            (
                "a dead interactive agent is restarted as today",
                run(RunStatus::Running, vec![dead]),
                default,
                Intent::AutoRestart,
                "restart 1/3",
                vec!["a"],
            ),
            (
                "batch agent restarted, quiet interactive one left alone",
                run(
                    RunStatus::Running,
                    vec![
                        interactive("i", Health::Stalled, unknown),
                        agent("b", Health::Stalled),
                    ],
                ),
                default,
                Intent::AutoRestart,
                "b: stalled reason",
                vec!["b"],
            ),
            (
                "stale run with a live interactive agent is not stopped",
                stale,
                default,
                Intent::Noop,
                "rejected: agent a is a live interactive agent",
                vec![],
            ),
            (
                "stale run of a batch agent is stopped as today",
                stale_batch,
                default,
                Intent::AutoStopStale,
                "verified",
                vec!["a"],
            ),
            (
                "stale opt-in",
                stale_opt_in,
                opt_in,
                Intent::AutoStopStale,
                "verified",
                vec!["a"],
            ),
        ];
        for (name, r, p, intent, has, targets) in rows {
            let d = decide(&r, &streak(2), p, NOW);
            assert_eq!(d.intent, intent, "{name}: {}", d.reason);
            assert!(d.reason.to_string().contains(has), "{name}: {}", d.reason);
            assert_eq!(d.targets, targets, "{name}");
        }
    }

    #[test]
    fn screen_questions() {
        let p = policy();
        let reading = |state, question: &str| Reading {
            state,
            matched: None,
            question: question.into(),
            tail: "last\nlines".into(),
        };
        let stalled = p.health.activity_stalled_seconds;
        let q = |r: &Reading, quiet| screen_question("w1", r, quiet, &p).map(|g| g.question);
        let dialog = reading(ScreenState::Waiting, "Do you want to proceed? / 1. Yes");
        assert_eq!(
            q(&dialog, 301).as_deref(),
            Some("Do you want to proceed? / 1. Yes")
        );
        assert_eq!(
            screen_question("w1", &dialog, 301, &p).map(|g| (g.agent, g.context)),
            Some(("w1".into(), "last\nlines".into()))
        );
        let blank = reading(ScreenState::Waiting, "");
        assert_eq!(
            q(&blank, 1).as_deref(),
            Some("(waiting for a decision on its screen)")
        );
        let idle = reading(ScreenState::Idle, "");
        assert_eq!(q(&idle, stalled - 1), None);
        assert_eq!(
            q(&idle, stalled + 60).as_deref(),
            Some("(idle at its prompt for 16 min)")
        );
        assert_eq!(q(&reading(ScreenState::Working, ""), 99_999), None);
        assert_eq!(q(&reading(ScreenState::Unknown, ""), 99_999), None);

        assert!(pane_question_open(
            true,
            true,
            Some(&dialog),
            &dialog.question
        ));
        assert!(
            pane_question_open(true, true, None, &dialog.question),
            "not read: kept"
        );
        assert!(!pane_question_open(
            false,
            true,
            Some(&dialog),
            &dialog.question
        ));
        assert!(
            !pane_question_open(true, false, None, &dialog.question),
            "active again"
        );
        assert!(!pane_question_open(
            true,
            true,
            Some(&idle),
            &dialog.question
        ));
        assert!(!pane_question_open(
            true,
            true,
            Some(&dialog),
            "another dialog"
        ));
    }

    #[test]
    fn rule_table() {
        let guidance = Some(PendingGuidance {
            agent: "a".into(),
            question: "which db?".into(),
            context: String::new(),
            at_prompt: false,
        });
        let mut stale_dead = run(RunStatus::Running, vec![agent("a", Health::Dead)]);
        stale_dead.status_changed_at = NOW - 7200;
        stale_dead.agents[0].stored_activity_at = Some(NOW - 7200);
        stale_dead.agents[0].last_activity_at = Some(NOW - 7200);
        let mut stale_busy = stale_dead.clone();
        stale_busy.agents = vec![agent("a", Health::Healthy)];
        stale_busy.agents[0].stored_activity_at = Some(NOW - 7200);
        let mut stale_done = stale_dead.clone();
        stale_done.agents = vec![agent("a", Health::Idle)];
        stale_done.agents[0].stored_activity_at = Some(NOW - 7200);
        stale_done.agents[0].last_activity_at = Some(NOW - 7200);
        stale_done.agents[0].reported_done = true;
        let mut stale_with_guidance = stale_dead.clone();
        stale_with_guidance.guidance = guidance.clone();
        let mut guided = run(RunStatus::AwaitingGuidance, vec![agent("a", Health::Dead)]);
        guided.guidance = guidance.clone();
        let mut unknown = run(RunStatus::Running, vec![agent("a", Health::Unknown)]);
        unknown.tmux_unknown = Some("no server".into());
        let mut done = run(
            RunStatus::Running,
            vec![agent("a", Health::Exited), agent("b", Health::Exited)],
        );
        done.agents.iter_mut().for_each(|a| a.complete = true);
        let mut half_done = done.clone();
        half_done.agents[1].complete = false;
        // An interactive agent that wrote its completion file and sits at its prompt.
        let mut live_complete = run(RunStatus::Running, vec![agent("a", Health::Idle)]);
        live_complete.agents[0].complete = true;
        live_complete.guidance = guidance.clone();
        let mut gone_complete = run(RunStatus::Running, vec![agent("a", Health::Dead)]);
        gone_complete.agents[0].complete = true;
        let mut unrestartable = run(
            RunStatus::Running,
            vec![agent("a", Health::Healthy), agent("b", Health::Dead)],
        );
        unrestartable.agents[1].restartable = false;
        let mut unrestartable_healthy = run(RunStatus::Running, vec![agent("a", Health::Idle)]);
        unrestartable_healthy.agents[0].restartable = false;

        let cases = vec![
            Case {
                name: "healthy",
                run: run(RunStatus::Running, vec![agent("a", Health::Healthy)]),
                state: OpState::default(),
                intent: Intent::Noop,
                reason_has: "no deterministic action",
                targets: vec![],
            },
            Case {
                name: "idle is healthy",
                run: run(RunStatus::Running, vec![agent("a", Health::Idle)]),
                state: streak(5),
                intent: Intent::Noop,
                reason_has: "no deterministic",
                targets: vec![],
            },
            Case {
                name: "guidance first",
                run: guided,
                state: streak(5),
                intent: Intent::EscalateGuidance,
                reason_has: "agent a asks: which db?",
                targets: vec![],
            },
            Case {
                name: "guidance beats stale",
                run: stale_with_guidance,
                state: OpState::default(),
                intent: Intent::EscalateGuidance,
                reason_has: "which db?",
                targets: vec![],
            },
            Case {
                name: "stale verified",
                run: stale_dead,
                state: OpState::default(),
                intent: Intent::AutoStopStale,
                reason_has: "verified",
                targets: vec!["a"],
            },
            Case {
                name: "stale rejected by an agent that reported done",
                run: stale_done,
                state: OpState::default(),
                intent: Intent::Noop,
                reason_has: "is alive and reported done",
                targets: vec![],
            },
            Case {
                name: "stale rejected by live activity",
                run: stale_busy,
                state: OpState::default(),
                intent: Intent::Noop,
                reason_has: "rejected: agent a has recent activity",
                targets: vec![],
            },
            Case {
                name: "first unhealthy observation",
                run: run(RunStatus::Running, vec![agent("a", Health::Dead)]),
                state: OpState::default(),
                intent: Intent::Noop,
                reason_has: "awaiting corroboration (1/2",
                targets: vec![],
            },
            Case {
                name: "corroborated",
                run: run(
                    RunStatus::Running,
                    vec![agent("a", Health::Dead), agent("b", Health::Healthy)],
                ),
                state: streak(1),
                intent: Intent::AutoRestart,
                reason_has: "restart 1/3",
                targets: vec!["a"],
            },
            Case {
                name: "stalled is unhealthy",
                run: run(RunStatus::Running, vec![agent("a", Health::Stalled)]),
                state: streak(1),
                intent: Intent::AutoRestart,
                reason_has: "corroborated",
                targets: vec!["a"],
            },
            Case {
                name: "budget exhausted",
                run: run(RunStatus::Running, vec![agent("a", Health::Dead)]),
                state: OpState {
                    restart_attempts: 3,
                    ..streak(1)
                },
                intent: Intent::EscalateBlocked,
                reason_has: "restart budget exhausted (3/3)",
                targets: vec![],
            },
            Case {
                name: "budget beats cooldown",
                run: run(RunStatus::Running, vec![agent("a", Health::Dead)]),
                state: OpState {
                    restart_attempts: 3,
                    cooldown_until: Some(NOW + 50),
                    ..streak(1)
                },
                intent: Intent::EscalateBlocked,
                reason_has: "exhausted",
                targets: vec![],
            },
            Case {
                name: "cooldown",
                run: run(RunStatus::Running, vec![agent("a", Health::Dead)]),
                state: OpState {
                    restart_attempts: 1,
                    cooldown_until: Some(NOW + 50),
                    ..streak(1)
                },
                intent: Intent::Noop,
                reason_has: "restart cooldown active until",
                targets: vec![],
            },
            Case {
                name: "cooldown over",
                run: run(RunStatus::Running, vec![agent("a", Health::Dead)]),
                state: OpState {
                    restart_attempts: 1,
                    cooldown_until: Some(NOW),
                    ..streak(1)
                },
                intent: Intent::AutoRestart,
                reason_has: "restart 2/3",
                targets: vec!["a"],
            },
            Case {
                name: "paused suppresses restart",
                run: run(RunStatus::Paused, vec![agent("a", Health::Dead)]),
                state: streak(5),
                intent: Intent::Noop,
                reason_has: "run is paused",
                targets: vec![],
            },
            Case {
                name: "tmux unknown",
                run: unknown,
                state: streak(1),
                intent: Intent::Noop,
                reason_has: "tmux unreachable",
                targets: vec![],
            },
            Case {
                name: "stopped run",
                run: run(RunStatus::Stopped, vec![agent("a", Health::Dead)]),
                state: streak(5),
                intent: Intent::Noop,
                reason_has: "run is stopped",
                targets: vec![],
            },
            Case {
                name: "all complete",
                run: done,
                state: OpState::default(),
                intent: Intent::Noop,
                reason_has: "completion signal detected",
                targets: vec![],
            },
            Case {
                name: "a live agent's completion file completes the run, before its question",
                run: live_complete,
                state: streak(0),
                intent: Intent::Noop,
                reason_has: "completion signal detected",
                targets: vec![],
            },
            Case {
                name: "a completed agent whose pane is gone is not restarted",
                run: gone_complete,
                state: streak(5),
                intent: Intent::Noop,
                reason_has: "completion signal detected",
                targets: vec![],
            },
            Case {
                name: "no restart command escalates instead of restarting",
                run: unrestartable,
                state: streak(5),
                intent: Intent::EscalateBlocked,
                reason_has: "agent b has no restart command",
                targets: vec![],
            },
            Case {
                name: "no restart command is no problem while healthy",
                run: unrestartable_healthy,
                state: streak(0),
                intent: Intent::Noop,
                reason_has: "no deterministic action",
                targets: vec![],
            },
            Case {
                name: "exit 0 without signal",
                run: half_done,
                state: OpState::default(),
                intent: Intent::EscalateBlocked,
                reason_has: "agent b exited without completion signal",
                targets: vec![],
            },
        ];
        for c in cases {
            let d = decide(&c.run, &c.state, &policy(), NOW);
            assert_eq!(d.intent, c.intent, "{}: {}", c.name, d.reason);
            assert!(
                d.reason.to_string().contains(c.reason_has),
                "{}: {:?}",
                c.name,
                d.reason
            );
            assert_eq!(d.targets, c.targets, "{}", c.name);
            assert_eq!(d.execute, c.intent.is_action(), "{}", c.name);
            assert!(
                d.permitted.contains(&d.intent),
                "{}: permitted must include the rule",
                c.name
            );
        }
    }

    #[test]
    fn observations_closer_than_the_gap_count_once() {
        let r = run(RunStatus::Running, vec![agent("a", Health::Dead)]);
        let d1 = decide(&r, &OpState::default(), &policy(), NOW);
        assert_eq!(d1.state.unhealthy_streak, 1);
        let d2 = decide(&r, &d1.state, &policy(), NOW + 1);
        assert_eq!(d2.state.unhealthy_streak, 1, "inside the gap");
        assert_eq!(d2.intent, Intent::Noop);
        let d3 = decide(&r, &d2.state, &policy(), NOW + 5);
        assert_eq!(d3.state.unhealthy_streak, 2);
        assert_eq!(d3.intent, Intent::AutoRestart);
    }

    #[test]
    fn healthy_resets_streak_and_later_the_budget() {
        let r = run(RunStatus::Running, vec![agent("a", Health::Healthy)]);
        let s = OpState {
            restart_attempts: 2,
            ..streak(1)
        };
        let d = decide(&r, &s, &policy(), NOW);
        assert_eq!((d.state.unhealthy_streak, d.state.restart_attempts), (0, 2));
        assert_eq!(d.state.healthy_since, Some(NOW));
        let d = decide(&r, &d.state, &policy(), NOW + 599);
        assert_eq!(d.state.restart_attempts, 2);
        let d = decide(&r, &d.state, &policy(), NOW + 600);
        assert_eq!(d.state.restart_attempts, 0);
        assert_eq!(d.notes.len(), 1);
    }

    #[test]
    fn cooldown_ladder_doubles_and_caps() {
        let p = policy();
        let ladder: Vec<i64> = (1..=6).map(|n| cooldown_for(n, &p)).collect();
        assert_eq!(ladder, vec![60, 120, 240, 480, 900, 900]);
        let s = after_restart(
            &OpState {
                restart_attempts: 1,
                unhealthy_streak: 2,
                ..Default::default()
            },
            NOW,
            &p,
        );
        assert_eq!(
            (s.restart_attempts, s.cooldown_until, s.unhealthy_streak),
            (2, Some(NOW + 120), 0)
        );
    }

    #[test]
    fn stable_text_drops_measurements_not_names() {
        assert_eq!(stable_text("agent w1 asks: x"), "agent w1 asks: x");
        assert_ne!(stable_text("agent w1 asks"), stable_text("agent w2 asks"));
        assert_eq!(
            stable_text("no recent activity (activity_age=61s, threshold=4s)"),
            stable_text("no recent activity (activity_age=5s, threshold=4s)")
        );
        assert_eq!(
            stable_text("restart budget exhausted (3/3) run-42"),
            "restart budget exhausted (/) run-42"
        );
    }

    #[test]
    fn alerts_are_deduplicated_per_intent_and_reason() {
        let mut s = OpState::default();
        assert!(take_alert(
            &mut s,
            Intent::EscalateBlocked,
            "x",
            false,
            true,
            NOW
        ));
        assert!(!take_alert(
            &mut s,
            Intent::EscalateBlocked,
            "x",
            false,
            true,
            NOW + 1
        ));
        // Same situation, older: ages in the reason do not make a new alert.
        let stalled = |age: i64| format!("budget exhausted (1/1); a: no activity (age={age}s)");
        let mut t = OpState::default();
        assert!(take_alert(
            &mut t,
            Intent::EscalateBlocked,
            &stalled(5),
            false,
            true,
            NOW
        ));
        assert!(!take_alert(
            &mut t,
            Intent::EscalateBlocked,
            &stalled(6),
            false,
            true,
            NOW + 1
        ));
        assert!(!take_alert(
            &mut t,
            Intent::EscalateBlocked,
            &stalled(61),
            false,
            true,
            NOW + 56
        ));
        assert_eq!(t.last_alert_at, Some(NOW));
        assert!(take_alert(
            &mut s,
            Intent::EscalateBlocked,
            "y",
            false,
            true,
            NOW + 2
        ));
        // An executed restart is routine; one that will not execute is worth an alert.
        assert!(!take_alert(
            &mut s,
            Intent::AutoRestart,
            "z",
            true,
            true,
            NOW + 3
        ));
        assert!(take_alert(
            &mut s,
            Intent::AutoRestart,
            "z",
            false,
            true,
            NOW + 3
        ));
        assert!(!take_alert(
            &mut s,
            Intent::AutoRestart,
            "z",
            false,
            true,
            NOW + 4
        ));
        // A noop without evidence (tmux unknown) does not end the episode; with it, it does.
        assert!(!take_alert(
            &mut s,
            Intent::Noop,
            "tmux unreachable",
            false,
            false,
            NOW + 5
        ));
        assert!(!take_alert(
            &mut s,
            Intent::AutoRestart,
            "z",
            false,
            true,
            NOW + 6
        ));
        assert!(!take_alert(
            &mut s,
            Intent::Noop,
            "fine",
            false,
            true,
            NOW + 7
        ));
        assert!(take_alert(
            &mut s,
            Intent::AutoRestart,
            "z",
            false,
            true,
            NOW + 8
        ));
    }
}
