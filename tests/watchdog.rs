//! The status line and hooks never hang and never fail: a wedged tmux ends `status` by
//! its 3 s watchdog with `metawsm:!timeout` and exit 0; a failing tick prints
//! `metawsm:!tick` and exit 0; a hook waits 300 ms for a busy lock, then queues.

mod common;

use common::Env;
use std::fs;
use std::time::{Duration, Instant};

/// A `tmux` first on the binary's PATH that never answers (its pid is logged so the test
/// can end it).
fn hanging_tmux(env: &mut Env) -> std::path::PathBuf {
    let pids = env.path("hang.pids");
    env.tmux_wrapper(&format!("echo $$ >> '{}'\nexec sleep 120", pids.display()));
    pids
}

fn kill_logged(pids: &std::path::Path) {
    for pid in fs::read_to_string(pids).unwrap_or_default().lines() {
        let _ = std::process::Command::new("kill").arg(pid.trim()).status();
    }
}

#[test]
fn status_with_a_hanging_tmux_prints_the_timeout_marker_and_exits_0() {
    let mut env = Env::new();
    env.start("w", &["sleep", "1000000"]);
    env.tick();
    // A full tick is due (interval 1 s), so status ticks, and tmux never answers.
    std::thread::sleep(Duration::from_millis(1200));
    let pids = hanging_tmux(&mut env);
    // The default format, as the status bar calls it.
    let t = Instant::now();
    let out = env.run(&["status"]);
    let took = t.elapsed();
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("metawsm:!timeout"),
        "{out:?}"
    );
    // The budget is the 3 s alarm: it fired (not some earlier error), and it ended the
    // call (a generous margin for a loaded machine).
    assert!(took >= Duration::from_millis(2900), "{took:?}");
    assert!(took < Duration::from_secs(8), "{took:?}");
    assert!(
        fs::read_to_string(&pids).is_ok_and(|s| !s.is_empty()),
        "tmux was called"
    );
    kill_logged(&pids);
}

#[test]
fn status_whose_tick_fails_prints_the_tick_marker_and_exits_0() {
    let env = Env::new();
    env.start("w", &["sleep", "1000000"]);
    env.tick();
    // Any write of the tick's bookkeeping now fails inside SQLite.
    let c = rusqlite::Connection::open(&env.db).expect("open");
    c.execute_batch(
        "CREATE TRIGGER fail_ins BEFORE INSERT ON meta BEGIN SELECT RAISE(ABORT, 'boom'); END;
         CREATE TRIGGER fail_upd BEFORE UPDATE ON meta BEGIN SELECT RAISE(ABORT, 'boom'); END;",
    )
    .expect("triggers");
    drop(c);
    std::thread::sleep(Duration::from_millis(1200));
    let out = env.run(&["status", "--format", "plain"]);
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    assert_eq!(String::from_utf8_lossy(&out.stdout), "metawsm:!tick\n");
    assert!(out.stderr.is_empty(), "{out:?}");
    // The same failure from a tick by hand is a runtime error: exit 1, one line.
    let out = env.run(&["tick"]);
    assert_eq!(out.status.code(), Some(1), "{out:?}");
}

#[test]
fn a_hook_waits_300_ms_for_a_busy_lock_then_queues_its_event() {
    let env = Env::new();
    env.start("h", &["sleep", "1000000"]);
    env.tick();
    let pane = env.sql("SELECT pane_id FROM agents WHERE run_id = 'h'")[0][0].clone();
    let held = env.hold_lock();
    let mut took = Vec::new();
    for _ in 0..3 {
        let t = Instant::now();
        let out = env.run(&["hook", "pane-died", &pane, "h", "1"]);
        took.push(t.elapsed());
        assert!(out.status.success() && out.stdout.is_empty() && out.stderr.is_empty());
    }
    drop(held);
    // Each waited the full 300 ms for the lock; the fastest of three (process start
    // included, on a loaded machine) did not wait much longer.
    assert!(
        took.iter().all(|t| *t >= Duration::from_millis(300)),
        "{took:?}"
    );
    let fastest = took.iter().min().copied().unwrap_or_default();
    assert!(fastest < Duration::from_millis(900), "{took:?}");
    assert_eq!(
        env.sql("SELECT count(*) FROM inbox WHERE event = 'pane-died'")[0][0],
        "3",
        "every event queued"
    );
    // Nothing lost: the next tick logs all three.
    env.tick();
    assert_eq!(
        env.sql("SELECT count(*) FROM events WHERE kind = 'hook' AND run_id = 'h'")[0][0],
        "3"
    );
}
