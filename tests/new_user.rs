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
