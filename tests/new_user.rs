//! The small things a new user trips over: states and names shown rightly, state file
//! modes, the LLM command found whichever process ticks, evidence kept before a stop,
//! escalations that could not be written made visible. Real tmux, files and processes.

mod common;

use common::Env;
use std::fs;

#[test]
fn a_waiting_agent_is_logged_as_waiting_and_a_missing_name_has_a_placeholder() {
    let env = Env::new();
    env.start("r1", &["sleep", "100000"]);
    env.tick();
    env.ok(&["signal", "--run", "r1", "--agent", "agent", "waiting"]);
    env.tick();
    let log = env.ok(&["log", "--run", "r1"]);
    let line = log
        .lines()
        .find(|l| l.contains(" health "))
        .unwrap_or_else(|| panic!("no health line: {log}"));
    assert!(line.contains("-> waiting"), "{line}");
    assert!(!line.contains("idle for"), "{line}");

    // A guidance request that names no agent.
    let dir = env.ws.join(".metawsm");
    fs::create_dir_all(&dir).expect("dir");
    fs::write(
        dir.join("guidance-request.json"),
        br#"{"question": "Which database?"}"#,
    )
    .expect("request");
    env.tick();
    let log = env.ok(&["log", "--run", "r1"]);
    assert!(!log.contains("agent= "), "{log}");
    let show = env.ok(&["run", "show", "r1"]);
    let g = show
        .lines()
        .find(|l| l.starts_with("guidance:"))
        .unwrap_or_else(|| panic!("no guidance line: {show}"));
    assert!(g.contains("#1 (unnamed): Which database?"), "{g}");
}

#[test]
fn doctor_checks_the_modes_of_the_state_files() {
    use std::os::unix::fs::PermissionsExt;
    let env = Env::new();
    env.start("r1", &["sleep", "100000"]);
    env.tick();
    let text = String::from_utf8_lossy(&env.run(&["doctor"]).stdout).into_owned();
    assert!(text.contains("ok   state modes: private"), "{text}");
    let dir = env.db.parent().expect("dir").to_path_buf();
    fs::set_permissions(&dir, fs::Permissions::from_mode(0o755)).expect("chmod");
    let lock = env.path("state/state.db.lock");
    fs::set_permissions(&lock, fs::Permissions::from_mode(0o644)).expect("chmod");
    let out = env.run(&["doctor"]);
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let line = text
        .lines()
        .find(|l| l.contains("state modes"))
        .unwrap_or_else(|| panic!("{text}"));
    assert!(line.starts_with("FAIL"), "{line}");
    assert!(line.contains("0755, want 0700 (fix: chmod 700"), "{line}");
    assert!(line.contains("state.db.lock is 0644"), "{line}");
    assert_eq!(out.status.code(), Some(1));
}
