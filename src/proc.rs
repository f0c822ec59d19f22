//! Process primitives: start detached, liveness through /proc, kill a process group with
//! a grace period. No knowledge of what the processes are.

use crate::timeutil::poll_until;
use nix::sys::signal::{kill, killpg, Signal};
use nix::unistd::Pid;
use std::fs;
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

/// How long a TERMed process group gets before KILL.
pub const KILL_GRACE: Duration = Duration::from_secs(2);

/// Starts `c` detached: its own session (setsid), stdio to null, never waited on.
/// `Command` execs, so close-on-exec fds (the state lock) are not inherited.
pub fn spawn_detached(c: &mut Command) -> std::io::Result<u32> {
    c.stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    // SAFETY: setsid is async-signal-safe and touches no memory of the parent.
    unsafe {
        c.pre_exec(|| {
            nix::unistd::setsid()
                .map(|_| ())
                .map_err(std::io::Error::from)
        });
    }
    Ok(c.spawn()?.id())
}

/// `/proc/<pid>/stat` fields after the command name: (state, pgrp, session).
pub fn proc_stat(pid: i32) -> Option<(char, i32, i32)> {
    let s = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name is in parentheses and may itself contain spaces or ')'.
    let mut f = s.get(s.rfind(')')? + 1..)?.split_whitespace();
    let state = f.next()?.chars().next()?;
    let _ppid = f.next()?;
    Some((state, f.next()?.parse().ok()?, f.next()?.parse().ok()?))
}

pub fn have_proc() -> bool {
    Path::new("/proc/self/stat").exists()
}

/// Every process as (pid, state, pgrp, session); empty without /proc.
pub fn all_procs() -> Vec<(i32, char, i32, i32)> {
    let Ok(dir) = fs::read_dir("/proc") else {
        return Vec::new();
    };
    dir.filter_map(|e| e.ok()?.file_name().to_str()?.parse::<i32>().ok())
        .filter_map(|pid| proc_stat(pid).map(|(st, pg, sid)| (pid, st, pg, sid)))
        .collect()
}

pub fn is_zombie(state: char) -> bool {
    matches!(state, 'Z' | 'X' | 'x')
}

/// A process that exists and is not a zombie (a dead worker whose parent never reaped it
/// must not look alive).
pub fn pid_alive(pid: i64) -> bool {
    let Ok(p) = i32::try_from(pid) else {
        return false;
    };
    if p <= 0 || kill(Pid::from_raw(p), None).is_err() {
        return false;
    }
    match proc_stat(p) {
        Some((state, ..)) => !is_zombie(state),
        // Exited between the two checks, or no /proc to ask (then kill(0) is all we have).
        None => !have_proc(),
    }
}
/// Whether any non-zombie process is left in one of `groups`.
pub fn groups_alive(groups: &[i32]) -> bool {
    if have_proc() {
        all_procs()
            .iter()
            .any(|(_, st, pg, _)| groups.contains(pg) && !is_zombie(*st))
    } else {
        groups
            .iter()
            .any(|g| killpg(Pid::from_raw(*g), None).is_ok())
    }
}

/// TERM, up to `grace` for the groups to go, then KILL. Zombies count as gone.
pub fn kill_groups(groups: &[i32], grace: Duration) {
    let groups: Vec<i32> = groups.iter().copied().filter(|g| *g > 1).collect();
    for g in &groups {
        let _ = killpg(Pid::from_raw(*g), Signal::SIGTERM);
    }
    let gone = poll_until(grace, Duration::from_millis(20), || {
        (!groups_alive(&groups)).then_some(())
    });
    if gone.is_some() {
        return;
    }
    for g in &groups {
        let _ = killpg(Pid::from_raw(*g), Signal::SIGKILL);
    }
}

/// Linux: PR_SET_CHILD_SUBREAPER, so orphans of our descendants (a grandchild that
/// called setsid and whose parent exited escapes any group kill) are re-parented to us
/// rather than to init. macOS has no equivalent: false, and there the process-group and
/// session kills are all a caller gets.
pub fn become_subreaper() -> bool {
    #[cfg(target_os = "linux")]
    {
        nix::sys::prctl::set_child_subreaper(true).is_ok()
    }
    #[cfg(not(target_os = "linux"))]
    {
        false
    }
}

/// `/proc/<pid>/stat`'s parent pid field.
fn proc_ppid(pid: i32) -> Option<i32> {
    let s = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let mut f = s.get(s.rfind(')')? + 1..)?.split_whitespace();
    f.next()?;
    f.next()?.parse().ok()
}

/// Every process below `root` in the parent tree.
fn descendants(root: i32) -> Vec<i32> {
    let Ok(dir) = fs::read_dir("/proc") else {
        return Vec::new();
    };
    let parents: Vec<(i32, i32)> = dir
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse::<i32>().ok())
        .filter_map(|pid| Some((pid, proc_ppid(pid)?)))
        .collect();
    let mut out = vec![root];
    let mut i = 0;
    while i < out.len() {
        let p = out[i];
        out.extend(parents.iter().filter(|(_, pp)| *pp == p).map(|(c, _)| *c));
        i += 1;
    }
    out.remove(0);
    out
}

/// For a subreaper: KILL every descendant and reap it, until none is left (each round
/// also catches what was forked meanwhile), for at most KILL_GRACE.
pub fn kill_descendants() {
    use nix::sys::wait::{waitpid, WaitPidFlag, WaitStatus};
    let me = std::process::id() as i32;
    poll_until(KILL_GRACE, Duration::from_millis(10), || {
        let left: Vec<i32> = descendants(me)
            .into_iter()
            .filter(|p| proc_stat(*p).is_some_and(|(st, ..)| !is_zombie(st)))
            .collect();
        for p in &left {
            let _ = kill(Pid::from_raw(*p), Signal::SIGKILL);
        }
        while let Ok(st) = waitpid(None, Some(WaitPidFlag::WNOHANG)) {
            if st == WaitStatus::StillAlive {
                break;
            }
        }
        left.is_empty().then_some(())
    });
}

/// TERM then KILL to a whole process group.
pub fn kill_group(pgid: i64) {
    if let Ok(p) = i32::try_from(pgid) {
        kill_groups(&[p], KILL_GRACE);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn proc_stat_survives_odd_command_names() {
        if !have_proc() {
            return;
        }
        let me = std::process::id() as i32;
        let (state, pgrp, sid) = proc_stat(me).expect("own stat");
        assert!(!is_zombie(state));
        assert_eq!(pgrp, nix::unistd::getpgrp().as_raw());
        assert_eq!(
            sid,
            nix::unistd::getsid(None).expect("sid").as_raw(),
            "session field"
        );
        // A name with spaces and parentheses (as `comm` may hold) parses from the last ')'.
        let dir = tempfile::tempdir().expect("tmp");
        let exe = dir.path().join("a) b (c");
        fs::copy("/bin/sleep", &exe).expect("copy sleep");
        let mut child = Command::new(&exe).arg("5").spawn().expect("spawn");
        let pid = child.id() as i32;
        // Parse only once the exec happened and `comm` holds the odd name.
        let exec_d = poll_until(Duration::from_secs(5), Duration::from_millis(5), || {
            (fs::read_to_string(format!("/proc/{pid}/comm")).unwrap_or_default() == "a) b (c\n")
                .then_some(())
        });
        assert!(exec_d.is_some(), "child never exec'd");
        let parsed = proc_stat(pid);
        assert!(pid_alive(i64::from(pid)));
        let _ = child.kill();
        let _ = child.wait();
        // The child stays in our group and session.
        let (_, child_pgrp, child_sid) = parsed.expect("child stat");
        assert_eq!((child_pgrp, child_sid), (pgrp, sid));
    }
}
