//! A full tick asks tmux before it opens the database, so tmux answers while SQLite is
//! read (the hint beside the database, `<db>.observe`, says what to ask); a wrong hint
//! is corrected by asking again, and a hint of runs when none are left reports nothing
//! of tmux.

mod common;

use common::{wait_for, Env};
use std::fs;
use std::time::Duration;

fn hint_path(env: &Env) -> std::path::PathBuf {
    std::path::PathBuf::from(format!("{}.observe", env.db.display()))
}

/// The `list-panes -a` spawns logged by the wrapper, in order.
fn listings(log: &std::path::Path) -> Vec<String> {
    fs::read_to_string(log)
        .unwrap_or_default()
        .lines()
        .filter(|l| l.contains("list-panes -a"))
        .map(str::to_string)
        .collect()
}

#[test]
fn tmux_is_asked_while_the_database_cannot_be_read() {
    let mut env = Env::new();
    env.start("a", &["sleep", "1000000"]);
    env.tick();
    let log = env.tmux_wrapper("");
    // Another process holds the database exclusively: no connection can read it until
    // this one closes (the tick's waits in SQLite's busy handler).
    let held = rusqlite::Connection::open(&env.db).expect("open db");
    held.execute_batch("PRAGMA locking_mode=EXCLUSIVE; BEGIN EXCLUSIVE;")
        .expect("hold the database");
    let mut tick = env.cmd(&["tick"]).spawn().expect("tick");
    let asked = wait_for(
        "tmux asked or the tick done",
        Duration::from_secs(30),
        || {
            if !listings(&log).is_empty() {
                return Some(true);
            }
            tick.try_wait().ok().flatten().map(|_| false)
        },
    );
    drop(held);
    let _ = tick.wait();
    assert!(
        asked,
        "the tick did not ask tmux before reading the database (tmux calls: {:?})",
        fs::read_to_string(&log).unwrap_or_default()
    );
}

#[test]
fn a_hint_missing_a_field_is_corrected_by_asking_again() {
    let mut env = Env::new();
    // An agent of the original metawsm's wrapper: the tick needs its current command.
    env.start(
        "w",
        &[
            "sh",
            "-c",
            "sleep 1000000; echo '[metawsm] agent command exited with status 0'",
        ],
    );
    env.tick();
    assert_eq!(
        fs::read_to_string(hint_path(&env)).expect("hint written"),
        "list command\n"
    );
    // A stale hint (written before that agent existed, say).
    fs::write(hint_path(&env), "list\n").expect("stale hint");
    let log = env.tmux_wrapper("");
    env.tick();
    let asked = listings(&log);
    assert_eq!(asked.len(), 2, "{asked:#?}");
    assert!(!asked[0].contains("pane_current_command"), "{asked:#?}");
    assert!(asked[1].contains("pane_current_command"), "{asked:#?}");
    assert_eq!(
        fs::read_to_string(hint_path(&env)).expect("hint"),
        "list command\n",
        "the hint is mended"
    );
    // Mended: the next tick asks once, for what it needs.
    fs::remove_file(&log).expect("rm log");
    env.tick();
    let asked = listings(&log);
    assert_eq!(asked.len(), 1, "{asked:#?}");
    assert!(asked[0].contains("pane_current_command"), "{asked:#?}");
}

#[test]
fn a_hint_of_runs_when_none_are_left_reports_nothing_of_tmux() {
    let mut env = Env::new();
    assert!(env.tick().contains("no active runs"));
    fs::write(hint_path(&env), "list\n").expect("stale hint");
    // The server is gone: the early listing fails, and no run needed it.
    env.tmux(&["kill-server"]);
    let log = env.tmux_wrapper("");
    let out = env.tick();
    assert!(
        out.contains("no active runs") && !out.contains("tmux unknown"),
        "{out}"
    );
    assert_eq!(listings(&log).len(), 1, "the early listing");
    assert_eq!(fs::read_to_string(hint_path(&env)).expect("hint"), "none\n");
    // The next tick knows there is nothing to list.
    env.tick();
    assert_eq!(listings(&log).len(), 1, "no more listings");
}
