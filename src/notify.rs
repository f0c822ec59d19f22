//! Notifications: the user's command (argv, or `sh -c` for a string; 5 s limit, never
//! waited for by the tick; a failure is recorded as a `notify_failed` event)
//! and a terminal bell on attached clients.

use crate::timeutil::poll_until;
use std::fs::OpenOptions;
use std::io::Write;
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::process::{Command, Stdio};
use std::time::Duration;

pub const NOTIFY_TIMEOUT: Duration = Duration::from_secs(5);

pub struct Notice<'a> {
    pub event: &'a str,
    pub message: &'a str,
    pub run_id: &'a str,
    pub run_status: &'a str,
    pub tickets: &'a str,
    pub intent: &'a str,
}

/// Starts `metawsm-tick [--db …] __notify -- CMD…` detached: the tick returns at once,
/// the supervisor enforces the timeout and records a failure (`self_args` name the
/// database it records into).
pub fn spawn(self_args: &[String], command: &[String], n: &Notice<'_>) -> Result<(), String> {
    let exe = crate::cli::current_exe();
    let mut c = Command::new(exe);
    c.args(self_args).arg("__notify").arg("--").args(command);
    c.env("METAWSM_EVENT", n.event)
        .env("METAWSM_MESSAGE", n.message)
        .env("METAWSM_RUN_ID", n.run_id)
        .env("METAWSM_RUN_STATUS", n.run_status)
        .env("METAWSM_TICKETS", n.tickets)
        .env("METAWSM_INTENT", n.intent)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .process_group(0);
    c.spawn().map(|_| ()).map_err(|e| format!("notify: {e}"))
}

/// Runs in the detached supervisor: the command in its own group, killed after the limit.
/// `Err` says why the notification failed (for the `notify_failed` event).
pub fn supervise(argv: &[String]) -> Result<(), String> {
    let Some((prog, args)) = argv.split_first() else {
        return Err("no notify command".into());
    };
    let mut child = Command::new(prog)
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .process_group(0)
        .spawn()
        .map_err(|e| format!("notify command {prog:?} could not start: {e}"))?;
    // An error waiting counts as a timeout: the group is killed either way.
    let ended = poll_until(NOTIFY_TIMEOUT, Duration::from_millis(20), || {
        match child.try_wait() {
            Ok(Some(st)) => Some(Some(st)),
            Ok(None) => None,
            Err(_) => Some(None),
        }
    });
    match ended.flatten() {
        Some(st) if st.success() => Ok(()),
        Some(st) => Err(match (st.code(), st.signal()) {
            (Some(c), _) => format!("notify command {prog:?} exited with status {c}"),
            (None, Some(sig)) => format!("notify command {prog:?} killed by signal {sig}"),
            _ => format!("notify command {prog:?} failed"),
        }),
        None => {
            crate::proc::kill_group(i64::from(child.id()));
            let _ = child.wait();
            Err(format!(
                "notify command {prog:?} timed out after {}s (killed)",
                NOTIFY_TIMEOUT.as_secs()
            ))
        }
    }
}

/// BEL to a client's terminal: tmux has no command that rings a client's bell.
pub fn bell(tty: &str) {
    if tty.is_empty() {
        return;
    }
    if let Ok(mut f) = OpenOptions::new().write(true).open(tty) {
        let _ = f.write_all(b"\x07");
    }
}
