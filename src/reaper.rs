//! tmux can miss a child's exit: under load its server (3.3a, seen in the test suite with
//! 20 servers at once) sometimes never reaps a pane's process, so the pane reads dead
//! with no exit status and no time of death until some other child of the server exits
//! — with no client attached, maybe never, and an agent that exited 0 would read as a
//! failure. A SIGCHLD makes the server reap; the next observation then has the status.
//! It is harmless when nothing is left to reap (tmux's handler just finds no child).

use crate::model::panes::{Observation, Snapshot};

/// Wakes the server's reaper when some pane is dead without a status.
pub fn wake_if_lost(obs: &Observation) {
    let Observation::Known(snap) = obs else {
        return;
    };
    if let Some(pid) = server_to_wake(snap) {
        let _ = nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(pid),
            nix::sys::signal::Signal::SIGCHLD,
        );
    }
}

/// The server's pid when a pane waits for its status. The pid comes from tmux's own
/// `#{pid}`; 0, 1 and negative numbers (a process group, every process) are refused.
fn server_to_wake(snap: &Snapshot) -> Option<i32> {
    let waiting = snap
        .sessions
        .values()
        .flatten()
        .any(|p| p.dead && p.dead_status.is_none() && p.dead_signal.is_none());
    if !waiting {
        return None;
    }
    snap.server
        .as_deref()?
        .split(':')
        .next()?
        .parse::<i32>()
        .ok()
        .filter(|pid| *pid > 1)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::panes::PaneRow;

    fn pane(dead: bool, status: Option<i64>, signal: Option<i64>) -> PaneRow {
        PaneRow {
            session: "s".into(),
            window_id: "@1".into(),
            pane_id: "%1".into(),
            pid: Some(10),
            dead,
            dead_at: None,
            dead_status: status,
            dead_signal: signal,
            window_activity: None,
            title: String::new(),
            current_command: String::new(),
        }
    }

    fn snap(server: &str, panes: Vec<PaneRow>) -> Snapshot {
        Snapshot {
            sessions: [("s".to_string(), panes)].into_iter().collect(),
            server: Some(server.to_string()),
            ..Default::default()
        }
    }

    #[test]
    fn only_a_dead_pane_without_status_wakes_a_plausible_server() {
        let cases: &[(&str, Vec<PaneRow>, Option<i32>)] = &[
            ("4242:1700000000", vec![pane(true, None, None)], Some(4242)),
            ("4242:1700000000", vec![pane(false, None, None)], None),
            ("4242:1700000000", vec![pane(true, Some(0), None)], None),
            ("4242:1700000000", vec![pane(true, None, Some(9))], None),
            (
                "4242:1700000000",
                vec![pane(true, Some(3), None), pane(true, None, None)],
                Some(4242),
            ),
            // Hostile or odd pids: never a process group, init or everything.
            ("0:1700000000", vec![pane(true, None, None)], None),
            ("1:1700000000", vec![pane(true, None, None)], None),
            ("-1:1700000000", vec![pane(true, None, None)], None),
            ("-4242:1", vec![pane(true, None, None)], None),
            ("x:1", vec![pane(true, None, None)], None),
            ("", vec![pane(true, None, None)], None),
            ("99999999999:1", vec![pane(true, None, None)], None),
        ];
        for (server, panes, want) in cases {
            assert_eq!(
                server_to_wake(&snap(server, panes.clone())),
                *want,
                "{server} {panes:?}"
            );
        }
        let mut none = snap("4242:1", vec![pane(true, None, None)]);
        none.server = None;
        assert_eq!(server_to_wake(&none), None);
    }
}
