//! What reaches a terminal or a pipe: a reader that closes early never makes a command
//! panic, and the status watchdog prints in the format that was asked for.

mod common;

use common::{write_exec, Env};
use std::fs;
use std::process::Stdio;
use std::time::{Duration, Instant};

/// Runs the binary with stdout a pipe whose reading end is already closed: the first
/// write fails with EPIPE, every time (what `log | head -1` does when head exits first,
/// without the race).
fn with_closed_stdout(env: &Env, args: &[&str]) -> std::process::Output {
    let (reader, writer) = std::io::pipe().expect("pipe");
    drop(reader);
    let mut c = env.cmd(args);
    c.stdout(writer).stderr(Stdio::piped());
    let child = c.spawn().expect("spawn");
    drop(c);
    child.wait_with_output().expect("wait")
}

#[test]
fn a_closed_stdout_ends_every_printing_command_quietly() {
    let env = Env::new();
    env.start("p1", &["sleep", "1000"]);
    env.tick();
    for args in [
        &["log"][..],
        &["log", "--json"],
        &["run", "show", "p1"],
        &["run", "list"],
        &["tick"],
        &["status", "--format", "plain"],
        &["doctor"],
        &["--help"],
        &["policy", "show"],
    ] {
        let out = with_closed_stdout(&env, args);
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(!err.contains("panicked"), "{args:?} panicked: {err}");
        assert_eq!(out.status.code(), Some(0), "{args:?}: {err}");
        assert!(err.is_empty(), "{args:?} wrote to stderr: {err}");
    }
}

#[test]
fn status_json_stays_json_when_the_watchdog_fires() {
    let env = Env::new();
    env.start("w1", &["sleep", "1000"]);
    // A due tick, no cache, and a tmux that hangs: the 3 s watchdog ends the call.
    fs::remove_file(format!("{}.status", env.db.display())).ok();
    let c = rusqlite::Connection::open(&env.db).expect("db");
    c.busy_timeout(Duration::from_secs(5)).expect("busy");
    c.execute(
        "INSERT INTO meta(key, value) VALUES ('last_full_tick', '0') ON CONFLICT(key) DO UPDATE SET value = '0'",
        [],
    )
    .expect("meta");
    drop(c);
    let bin = env.path("hangbin");
    fs::create_dir_all(&bin).expect("mkdir");
    write_exec(&bin.join("tmux"), "#!/bin/sh\nexec sleep 8\n");
    let path = format!(
        "{}:{}",
        bin.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    // (plain and tmux printed the marker already; JSON is the case that broke)
    fs::remove_file(format!("{}.status", env.db.display())).ok();
    let started = Instant::now();
    let out = env
        .cmd(&["status", "--format", "json"])
        .env("PATH", &path)
        .output()
        .expect("status");
    let took = started.elapsed();
    assert_eq!(out.status.code(), Some(0));
    assert!(
        took >= Duration::from_secs(2),
        "the watchdog fired: {took:?}"
    );
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(text.lines().count(), 1, "one line: {text:?}");
    let v: serde_json::Value = serde_json::from_str(text.trim()).expect("status JSON");
    assert_eq!(v["error"], "metawsm:!timeout", "{v}");
}
