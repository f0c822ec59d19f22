//! Notifications: the user's command (no shell, 5 s limit, never waited for by the tick)
//! and a terminal bell on attached clients.

use std::fs::OpenOptions;
use std::io::Write;
use std::os::unix::process::CommandExt;
use std::process::{Command, Stdio};
use std::thread::sleep;
use std::time::{Duration, Instant};

pub const NOTIFY_TIMEOUT: Duration = Duration::from_secs(5);

pub struct Notice<'a> {
    pub event: &'a str,
    pub message: &'a str,
    pub run_id: &'a str,
    pub run_status: &'a str,
    pub tickets: &'a str,
    pub intent: &'a str,
}

/// Starts `metawsm-tick __notify -- CMD…` detached: the tick returns at once, the
/// supervisor enforces the timeout.
pub fn spawn(command: &[String], n: &Notice<'_>) -> Result<(), String> {
    let exe = crate::cli::current_exe();
    let mut c = Command::new(exe);
    c.arg("__notify").arg("--").args(command);
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
pub fn supervise(argv: &[String]) -> i32 {
    let Some((prog, args)) = argv.split_first() else {
        return 2;
    };
    let mut child = match Command::new(prog)
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .process_group(0)
        .spawn()
    {
        Ok(c) => c,
        Err(_) => return 1,
    };
    let deadline = Instant::now() + NOTIFY_TIMEOUT;
    loop {
        match child.try_wait() {
            Ok(Some(st)) => return st.code().unwrap_or(1),
            Ok(None) if Instant::now() < deadline => sleep(Duration::from_millis(20)),
            _ => {
                crate::cmd::llm_worker::kill_group(i64::from(child.id()));
                let _ = child.wait();
                return 124;
            }
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
