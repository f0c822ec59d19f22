//! Runs that used to get stuck: a run whose tmux server is gone ("orphaned") can be
//! seen, stopped and forgotten; `run stop` of a stopped run succeeds; `log --run` of an
//! unknown run fails; the plugin's timer is armed when `run start` creates the server.
//! Real tmux servers on private sockets, real databases, real processes.

mod common;

use common::{wait_for, Env, BIN};
use serde_json::Value;
use std::fs;
use std::os::unix::net::UnixListener;
use std::path::PathBuf;
use std::time::Duration;

fn json(env: &Env, args: &[&str]) -> Value {
    serde_json::from_str(&env.ok(args)).expect("json")
}

#[test]
fn a_run_whose_server_is_gone_is_orphaned_and_can_be_stopped_and_forgotten() {
    let env = Env::new();
    env.start("r1", &["sleep", "100000"]);
    env.start("r2", &["sleep", "100000"]);
    env.tick();
    // r2 lives on a custom socket whose server died and left its socket file behind.
    let stale = env.path("stale.sock");
    drop(UnixListener::bind(&stale).expect("bind"));
    env.sql(&format!(
        "UPDATE runs SET tmux_socket = '{}' WHERE id = 'r2'",
        stale.display()
    ));
    // r1's own server goes away (tmux leaves its socket file, refusing connections).
    assert!(env.tmux(&["kill-server"]).status.success());
    // kill-server returns before the server has closed its socket.
    wait_for("the server gone", Duration::from_secs(10), || {
        std::os::unix::net::UnixStream::connect(&env.sock)
            .is_err()
            .then_some(())
    });

    let list = env.ok(&["run", "list"]);
    assert!(list.contains("orphaned(running)"), "{list}");
    let listed = json(&env, &["run", "list", "--json"]);
    assert!(
        listed
            .as_array()
            .expect("array")
            .iter()
            .all(|r| r["orphaned"].as_str().is_some_and(|w| w.contains("gone"))),
        "{listed}"
    );
    // The bar no longer counts them as healthy.
    env.ok(&["tick"]);
    let bar = json(&env, &["status", "--format", "json"]);
    assert_eq!(bar["ok"], 0, "{bar}");
    assert_eq!(bar["orphaned"], 2, "{bar}");
    let doctor = String::from_utf8_lossy(&env.run(&["doctor"]).stdout).into_owned();
    assert!(
        doctor.contains("orphaned runs: r1") && doctor.contains("r2 ("),
        "{doctor}"
    );
    let show = env.ok(&["run", "show", "r2"]);
    assert!(show.contains("orphaned:  tmux server gone"), "{show}");

    // Restart cannot bring it back on a server that is gone: it says why.
    let out = env.run(&["run", "restart", "r1"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("run r1 is orphaned"),
        "{out:?}"
    );
    // Stop finishes: nothing is left to kill.
    let out = env.ok(&["run", "stop", "r1"]);
    assert!(out.contains("nothing left to kill"), "{out}");
    assert_eq!(env.show("r1")["status"], "stopped");
    // Forget works on an orphaned run that was never stopped.
    env.ok(&["run", "forget", "r2"]);
    assert!(env.sql("SELECT id FROM runs WHERE id = 'r2'").is_empty());
    let bar = json(&env, &["status", "--format", "json", "--no-tick"]);
    assert_eq!(bar["runs"], 0, "{bar}");
}

#[test]
fn a_live_server_is_never_called_orphaned() {
    let env = Env::new();
    env.start("r1", &["sleep", "100000"]);
    let listed = json(&env, &["run", "list", "--json"]);
    assert_eq!(listed[0]["orphaned"], Value::Null, "{listed}");
    let out = env.run(&["run", "forget", "r1"]);
    assert_eq!(
        out.status.code(),
        Some(1),
        "a live running run is not forgotten"
    );
}

#[test]
fn stopping_a_stopped_run_succeeds_and_log_of_an_unknown_run_fails() {
    let env = Env::new();
    env.start("r1", &["sleep", "100000"]);
    env.ok(&["run", "stop", "r1"]);
    let again = env.run(&["run", "stop", "r1"]);
    assert_eq!(again.status.code(), Some(0), "{again:?}");
    assert!(String::from_utf8_lossy(&again.stdout).contains("already stopped"));
    let log = env.run(&["log", "--run", "no-such-run"]);
    assert_eq!(log.status.code(), Some(1), "{log:?}");
    assert!(String::from_utf8_lossy(&log.stderr).contains("no-such-run"));
    assert_eq!(env.run(&["log", "--run", "r1"]).status.code(), Some(0));
}

#[test]
fn run_start_that_creates_the_server_lets_the_plugin_arm_the_timer() {
    let env = Env::new();
    // No server yet: `run start` creates it, and the server loads ~/.tmux.conf (HOME is
    // the test dir), which loads the plugin.
    assert!(env.tmux(&["kill-server"]).status.success());
    wait_for("the server gone", Duration::from_secs(10), || {
        std::os::unix::net::UnixStream::connect(&env.sock)
            .is_err()
            .then_some(())
    });
    let entry = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tmux/metawsm.tmux");
    let conf = [
        format!("set -g @metawsm-bin '{BIN}'"),
        format!("set -g @metawsm-db '{}'", env.db.display()),
        format!("set -g @metawsm-policy '{}'", env.policy.display()),
        "set -g @metawsm-interval 30".to_string(),
        format!("run-shell '{}'", entry.display()),
    ];
    fs::write(env.path(".tmux.conf"), conf.join("\n") + "\n").expect("conf");
    let t = std::time::Instant::now();
    env.start("r1", &["sleep", "100000"]);
    let took = t.elapsed();
    wait_for("the timer armed", Duration::from_secs(20), || {
        env.sql("SELECT value FROM meta WHERE key = 'timer_next_due'")
            .first()
            .map(|_| ())
    });
    let doctor = String::from_utf8_lossy(&env.run(&["doctor"]).stdout).into_owned();
    assert!(doctor.contains("timer: armed"), "{doctor}");
    // No placeholder session left behind; the agent's session is there.
    let sessions = env.tmux_out(&["list-sessions", "-F", "#{session_name}"]);
    assert_eq!(sessions.trim(), "r1", "{sessions}");
    assert!(
        took < Duration::from_secs(5),
        "run start waited {took:?} (tmux-setup waiting on its lock)"
    );
}

#[test]
fn doctor_always_prints_the_timer_and_fails_when_it_is_missing() {
    let env = Env::new();
    env.start("r1", &["sleep", "100000"]);
    // The plugin ran once (plugin_setup) but no timer is armed while a run is active.
    env.sql("INSERT OR REPLACE INTO meta(key, value) VALUES ('plugin_setup', '1')");
    env.sql("DELETE FROM meta WHERE key = 'timer_next_due'");
    let out = env.run(&["doctor"]);
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(text.contains("FAIL timer: missing"), "{text}");
    assert!(text.contains("metawsm.tmux"), "the fix is named: {text}");
    assert_eq!(out.status.code(), Some(1));
    // Without the plugin ever set up, the line is still there.
    env.sql("DELETE FROM meta WHERE key = 'plugin_setup'");
    let text = String::from_utf8_lossy(&env.run(&["doctor"]).stdout).into_owned();
    assert!(text.contains("timer: not set up"), "{text}");
}

#[test]
fn the_plugin_arms_the_timer_while_another_process_holds_the_lock() {
    let env = Env::new();
    env.start("r1", &["sleep", "100000"]);
    env.tick();
    // Someone holds the state lock for longer than tmux-setup would wait for it.
    let mut lock = env.db.clone().into_os_string();
    lock.push(".lock");
    let held = fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(PathBuf::from(lock))
        .expect("lock file");
    held.lock().expect("hold the state lock");
    let entry = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tmux/metawsm.tmux");
    let conf = env.path("plugin.conf");
    fs::write(
        &conf,
        [
            format!("set -g @metawsm-bin '{BIN}'"),
            format!("set -g @metawsm-db '{}'", env.db.display()),
            format!("set -g @metawsm-policy '{}'", env.policy.display()),
            "set -g @metawsm-interval 30".to_string(),
            format!("run-shell '{}'", entry.display()),
        ]
        .join("\n")
            + "\n",
    )
    .expect("conf");
    let out = env.tmux(&["source-file", &conf.to_string_lossy()]);
    assert!(out.status.success());
    wait_for("the timer armed", Duration::from_secs(20), || {
        env.sql("SELECT value FROM meta WHERE key = 'timer_next_due'")
            .first()
            .map(|_| ())
    });
    let armed = env.sql("SELECT value FROM meta WHERE key = 'plugin_setup'");
    assert_eq!(armed[0][0], "1");
    held.unlock().expect("release");
}
