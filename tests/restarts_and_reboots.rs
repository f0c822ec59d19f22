//! A restart resumes the agent's conversation; a reboot loses no run. Fake `claude`
//! agents honour `--session-id`/`--resume` the way the real CLI does and record every
//! command line they were given; the tmux server is killed and started again for real.

mod common;

use common::{fast_policy, wait_for, write_exec, Env};
use serde_json::json;
use std::fs;
use std::time::Duration;

const WAIT: Duration = Duration::from_secs(30);

/// A fake Claude Code: `--session-id ID` starts conversation ID (it must be new), lives
/// `$LIFE` seconds (file `life`), then crashes; `--resume ID` continues ID when it exists
/// (and lives forever), else exits at once as the real CLI does. `fail-resume` makes
/// every resume exit at once. Each call appends its arguments, one line, to `args.log`.
fn fake_claude(env: &Env) -> String {
    let dir = env.path("bin");
    fs::create_dir_all(&dir).expect("bin");
    let d = env.path("fake");
    fs::create_dir_all(&d).expect("fake dir");
    write_exec(
        &dir.join("claude"),
        &format!(
            r#"#!/bin/sh
d='{d}'
printf '%s\n' "$*" >> "$d/args.log"
case "$1" in
--session-id)
  [ -e "$d/conv-$2" ] && {{ echo "session id $2 already in use" >&2; exit 1; }}
  : > "$d/conv-$2"; echo "started $2"; sleep "$(cat "$d/life" 2>/dev/null || echo 1000)"; exit 3 ;;
--resume)
  [ -e "$d/fail-resume" ] && {{ echo "resume failed" >&2; exit 1; }}
  [ -e "$d/conv-$2" ] || {{ echo "No conversation found with session ID: $2" >&2; exit 1; }}
  echo "resumed $2"; exec sleep 1000 ;;
esac
echo "unexpected: $*" >&2; exit 2
"#,
            d = d.display()
        ),
    );
    dir.join("claude").to_string_lossy().into_owned()
}

fn args_log(env: &Env) -> Vec<String> {
    fs::read_to_string(env.path("fake/args.log"))
        .unwrap_or_default()
        .lines()
        .map(str::to_string)
        .collect()
}

/// The log once the agent processes started so far have written their line: a start or
/// restart returns when tmux has the pane, before the program in it has run.
fn args_log_of(env: &Env, n: usize) -> Vec<String> {
    wait_for("the agents' argument lines", WAIT, || {
        let log = args_log(env);
        (log.len() >= n).then_some(log)
    })
}

/// Only death is unhealthy here (a quiet fake is never stalled): restarts follow crashes.
fn resume_policy() -> serde_json::Value {
    // Two observations a second apart: tmux has reported the death time by the second.
    fast_policy(
        json!({"health": {"idle_seconds": 60, "activity_stalled_seconds": 120},
            "operator": {
            "unhealthy_confirmations": 2, "min_observation_gap_seconds": 1,
            "restart_cooldown_seconds": 1, "restart_cooldown_max_seconds": 1,
            "resume_min_conversation_seconds": 1, "resume_failed_within_seconds": 10
        }}),
    )
}

/// Ticks until the run has restarted `n` times in all.
fn tick_until_restarts(env: &Env, run: &str, n: usize) {
    let deadline = std::time::Instant::now() + WAIT;
    loop {
        env.tick();
        let done = env.sql(&format!(
            "SELECT count(*) FROM events WHERE run_id = '{run}' AND kind = 'restart' AND to_state = 'ok'"
        ))[0][0]
            .parse::<usize>()
            .unwrap_or(0);
        if done >= n {
            return;
        }
        if std::time::Instant::now() > deadline {
            panic!(
                "{done} of {n} restarts after {WAIT:?}; log:\n{}\nargs: {:?}\npanes: {}\ntick: {}",
                env.ok(&["log", "--run", run, "--limit", "200"]),
                args_log(env),
                env.tmux_out(&[
                    "list-panes",
                    "-a",
                    "-F",
                    "#{session_name} #{pane_dead} #{pane_dead_status} #{pane_start_command}"
                ]),
                env.ok(&["tick", "--json"])
            );
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

#[test]
fn a_crash_resumes_the_same_conversation() {
    let env = Env::with_policy(resume_policy());
    let claude = fake_claude(&env);
    fs::write(env.path("fake/life"), "2").expect("life");
    env.start("c1", &[&claude, "--model", "opus", "implement MW-7"]);
    let first = args_log_of(&env, 1);
    assert_eq!(first.len(), 1, "{first:?}");
    let id = first[0]
        .strip_prefix("--session-id ")
        .and_then(|r| r.split(' ').next())
        .expect("metawsm-tick fixed a conversation id")
        .to_string();
    assert_eq!(id.len(), 36, "a uuid: {id}");
    let show = env.show("c1");
    assert_eq!(
        show["agents"][0]["resume_argv"],
        json!([claude, "--resume", id, "--model", "opus"])
    );
    env.wait_pane_dead("c1");
    tick_until_restarts(&env, "c1", 1);
    wait_for("the resumed agent", WAIT, || {
        (args_log(&env).len() >= 2).then_some(())
    });
    let log = args_log(&env);
    assert_eq!(
        log[1],
        format!("--resume {id} --model opus"),
        "{log:?}\n{}",
        env.ok(&["log", "--run", "c1"])
    );
    let show = env.show("c1");
    assert_eq!(show["agents"][0]["started_as"], "resume");
    // The log says which kind of restart ran.
    let events = env.ok(&["log", "--run", "c1"]);
    assert!(events.contains("resume (continuing"), "{events}");
    // It keeps running: the resumed conversation is the live agent.
    std::thread::sleep(Duration::from_millis(1500));
    env.tick();
    let show = env.show("c1");
    assert_eq!(show["agents"][0]["status"], "running", "{show}");
}

#[test]
fn a_resume_that_exits_at_once_is_followed_by_a_fresh_start() {
    let env = Env::with_policy(resume_policy());
    let claude = fake_claude(&env);
    fs::write(env.path("fake/life"), "2").expect("life");
    fs::write(env.path("fake/fail-resume"), "").expect("fail");
    env.start("c2", &[&claude, "go"]);
    env.wait_pane_dead("c2");
    tick_until_restarts(&env, "c2", 1);
    env.wait_pane_dead("c2");
    tick_until_restarts(&env, "c2", 2);
    let log = args_log_of(&env, 3);
    assert!(log.len() >= 3, "{log:?}");
    let a = log[0].split(' ').nth(1).expect("first id").to_string();
    assert_eq!(log[1], format!("--resume {a}"), "{log:?}");
    assert!(log[2].starts_with("--session-id "), "fresh: {log:?}");
    let b = log[2].split(' ').nth(1).expect("second id");
    assert_ne!(a, b, "a fresh start is a new conversation");
    let show = env.show("c2");
    assert_eq!(show["agents"][0]["started_as"], "fresh");
    assert_eq!(
        show["operator"]["restart_attempts"], 2,
        "the budget counts both"
    );
    let events = env.ok(&["log", "--run", "c2"]);
    assert!(events.contains("the last resume ended after"), "{events}");
}

#[test]
fn run_restart_fresh_and_policy_fresh_start_over() {
    let env = Env::with_policy(resume_policy());
    let claude = fake_claude(&env);
    env.start("c3", &[&claude, "go"]);
    std::thread::sleep(Duration::from_millis(1100));
    let out = env.ok(&["run", "restart", "c3"]);
    assert!(out.contains("resume"), "{out}");
    args_log_of(&env, 2); // the resumed process ran before the next restart replaces it
    let out = env.ok(&["run", "restart", "c3", "--fresh"]);
    assert!(out.contains("fresh (fresh start requested)"), "{out}");
    args_log_of(&env, 3);
    let mut p = resume_policy();
    p["operator"]["restart_mode"] = json!("fresh");
    env.write_policy(&p);
    std::thread::sleep(Duration::from_millis(1100));
    let out = env.ok(&["run", "restart", "c3"]);
    assert!(out.contains("operator.restart_mode is fresh"), "{out}");
    let log = args_log_of(&env, 4);
    assert_eq!(log.len(), 4, "{log:?}");
    assert!(log[1].starts_with("--resume "));
    assert!(log[2].starts_with("--session-id ") && log[3].starts_with("--session-id "));
}

/// Kills this test's own server and waits until it is really gone.
fn kill_server(env: &Env) {
    let out = env.tmux(&["kill-server"]);
    assert!(out.status.success());
    // Gone means its socket refuses connections (tmux leaves the file behind).
    wait_for("the server to go", WAIT, || {
        std::os::unix::net::UnixStream::connect(&env.sock)
            .is_err()
            .then_some(())
    });
}

fn restart_server(env: &Env) {
    kill_server(env);
    env.start_server();
}

#[test]
fn a_killed_server_orphans_the_run_and_revive_brings_it_back_with_its_budget() {
    let env = Env::with_policy(resume_policy());
    let claude = fake_claude(&env);
    fs::write(env.path("fake/life"), "2").expect("life");
    env.start("r1", &[&claude, "go"]);
    env.wait_pane_dead("r1");
    tick_until_restarts(&env, "r1", 1); // resumed: lives on; one attempt spent
    args_log_of(&env, 2);
    env.tick(); // seen alive on this server instance
    assert_eq!(env.show("r1")["operator"]["restart_attempts"], 1);

    kill_server(&env);
    // The socket is gone: orphaned, neither healthy nor dead.
    let list: serde_json::Value =
        serde_json::from_str(&env.ok(&["run", "list", "--json"])).expect("json");
    assert!(list[0]["orphaned"].is_string(), "{list}");
    // The bar says so within its interval (the cached segment is redrawn by the next tick).
    wait_for("the bar to count the orphan", WAIT, || {
        let bar = env.ok(&["status", "--format", "json"]);
        std::thread::sleep(Duration::from_millis(200));
        bar.contains("\"orphaned\":1").then_some(())
    });

    // The server comes back (a reboot): nothing starts by itself, the run stays orphaned.
    env.start_server();
    let setup = env.ok(&["tmux-setup"]);
    let _ = setup;
    let v = env.tick_json();
    assert!(
        v["runs"]
            .as_array()
            .is_none_or(|r| r.iter().all(|x| x["run"] != "r1")),
        "an orphaned run is not judged: {v}"
    );
    assert!(
        !env.tmux_out(&["list-sessions", "-F", "#{session_name}"])
            .contains("r1"),
        "no agent started by itself"
    );
    assert_eq!(args_log(&env).len(), 2, "no new agent process");
    let show = env.show("r1");
    assert!(
        show["orphaned"]
            .as_str()
            .is_some_and(|w| w.contains("restarted")),
        "{show}"
    );
    let doctor = String::from_utf8_lossy(&env.run(&["doctor"]).stdout).into_owned();
    assert!(doctor.contains("orphaned runs: r1"), "{doctor}");
    assert!(
        env.sql("SELECT value FROM meta WHERE key = 'orphan_notice'")
            .len()
            == 1,
        "the server told the user once"
    );

    let out = env.ok(&["run", "revive", "r1"]);
    assert!(out.contains("revived r1"), "{out}");
    assert!(out.contains("resume"), "the conversation continues: {out}");
    let log = args_log_of(&env, 3);
    assert_eq!(log.len(), 3, "{log:?}");
    assert!(log[2].starts_with("--resume "), "{log:?}");
    let show = env.show("r1");
    assert!(show["orphaned"].is_null(), "{show}");
    assert_eq!(show["operator"]["restart_attempts"], 1, "budget intact");
    std::thread::sleep(Duration::from_millis(1100));
    env.tick();
    assert_eq!(env.show("r1")["agents"][0]["status"], "running");
    // Nothing left to revive.
    assert!(env
        .ok(&["run", "revive", "--all"])
        .contains("no orphaned runs"));
    let out = env.run(&["run", "revive", "r1"]);
    assert_eq!(out.status.code(), Some(1));
}

#[test]
fn revive_on_server_start_brings_runs_back_when_the_policy_says_so() {
    let mut p = resume_policy();
    p["operator"]["revive_on_server_start"] = json!(true);
    let env = Env::with_policy(p);
    let claude = fake_claude(&env);
    env.start("r2", &[&claude, "go"]);
    std::thread::sleep(Duration::from_millis(1100));
    env.tick();
    restart_server(&env);
    env.ok(&["tmux-setup"]);
    wait_for("the revived agent", WAIT, || {
        (args_log(&env).len() >= 2).then_some(())
    });
    assert!(args_log(&env)[1].starts_with("--resume "));
    let show = env.show("r2");
    assert!(show["orphaned"].is_null(), "{show}");
}
