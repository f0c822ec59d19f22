//! Issue 2: runs in tmux, SQLite state, policy, health — against a real tmux server.

mod common;

use common::{fast_policy, wait_for, Env};
use serde_json::json;
use std::time::Duration;

const WAIT: Duration = Duration::from_secs(15);

/// Health tests must not be disturbed by restarts.
fn observe_only() -> Env {
    Env::with_policy(fast_policy(
        json!({"operator": {"unhealthy_confirmations": 1000}}),
    ))
}

fn wait_health(env: &Env, id: &str, want: &str) {
    wait_for(&format!("{id} to become {want}"), WAIT, || {
        env.tick();
        (env.health(id, "agent") == want).then_some(())
    });
}

#[test]
fn sleeping_agent_is_healthy_and_runs_in_its_session() {
    let env = observe_only();
    let out = env.start("r1", &["sleep", "1000"]);
    assert!(out.contains("started r1"), "{out}");
    env.tick();
    assert_eq!(env.health("r1", "agent"), "healthy");
    let panes = env.tmux_out(&[
        "list-panes",
        "-t",
        "=r1:",
        "-F",
        "#{pane_current_command} #{pane_current_path}",
    ]);
    assert!(panes.starts_with("sleep "), "{panes}");
    assert!(
        panes
            .trim_end()
            .ends_with(env.ws.file_name().and_then(|n| n.to_str()).unwrap_or("?")),
        "{panes}"
    );
    let remain = env.tmux_out(&["show-options", "-w", "-t", "=r1:", "-v", "remain-on-exit"]);
    assert_eq!(remain.trim(), "on");
    let list = env.ok(&["run", "list"]);
    assert!(
        list.contains("r1") && list.contains("agent=healthy"),
        "{list}"
    );
}

#[test]
fn exit_codes_decide_dead_or_exited() {
    let env = observe_only();
    env.start("fail3", &["sh", "-c", "exit 3"]);
    env.start("ok0", &["sh", "-c", "exit 0"]);
    wait_health(&env, "fail3", "dead");
    let a = &env.show("fail3")["agents"][0];
    assert_eq!(a["exit_status"], 3);
    assert_eq!(a["status"], "failed");
    wait_health(&env, "ok0", "exited");
    assert_eq!(env.show("ok0")["agents"][0]["exit_status"], 0);
}

#[test]
fn session_killed_from_outside_is_dead() {
    let env = observe_only();
    env.start("victim", &["sleep", "1000"]);
    env.tick();
    assert!(env
        .tmux(&["kill-session", "-t", "=victim"])
        .status
        .success());
    env.tick();
    let a = &env.show("victim")["agents"][0];
    assert_eq!(a["health"], "dead");
    assert_eq!(a["status"], "dead");
}

#[test]
fn silence_goes_idle_then_stalled_but_output_stays_healthy() {
    let env = observe_only();
    env.start("quiet", &["sleep", "1000"]);
    // Prints every second, detached: window_activity moves, session_activity would not.
    env.start(
        "busy",
        &["sh", "-c", "while :; do echo tick; sleep 1; done"],
    );
    wait_health(&env, "quiet", "idle");
    wait_health(&env, "quiet", "stalled");
    // By now more than activity_stalled_seconds (4 s) have passed since start.
    assert_eq!(env.health("busy", "agent"), "healthy");
    let v = env.show("quiet");
    let kinds: Vec<String> = v["events"]
        .as_array()
        .map(|e| {
            e.iter()
                .map(|x| format!("{}:{}", x["kind"], x["to"]))
                .collect()
        })
        .unwrap_or_default();
    assert!(kinds.iter().any(|k| k.contains("\"idle\"")), "{kinds:?}");
    assert!(kinds.iter().any(|k| k.contains("\"stalled\"")), "{kinds:?}");
}

#[test]
fn unreachable_tmux_is_unknown_never_dead() {
    let env = observe_only();
    env.start("r1", &["sleep", "1000"]);
    env.tick();
    // Socket dead: our own server, killed by its socket.
    assert!(env.tmux(&["kill-server"]).status.success());
    let out = env.tick();
    assert!(out.contains("tmux unknown"), "{out}");
    assert!(out.contains("tmux unreachable"), "{out}");
    assert_eq!(
        env.health("r1", "agent"),
        "healthy",
        "stored health must not change"
    );
    let events = env.ok(&["log", "--run", "r1", "--json"]);
    assert!(!events.contains("\"dead\""), "{events}");
}

#[test]
fn missing_tmux_binary_is_unknown_never_dead() {
    let mut env = observe_only();
    env.start("r1", &["sleep", "1000"]);
    env.tick();
    let bin = env.path("nobin");
    std::fs::create_dir_all(&bin).expect("mkdir");
    let out = env.cmd(&["tick"]).env("PATH", &bin).output().expect("run");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("tmux not found"), "{text}");
    env.path_prefix = None;
    assert_eq!(env.health("r1", "agent"), "healthy");
}

#[test]
fn sessions_sharing_a_prefix_never_confuse_each_other() {
    let env = observe_only();
    env.start("run", &["sh", "-c", "exit 5"]);
    env.start("run-42", &["sleep", "1000"]);
    wait_health(&env, "run", "dead");
    assert_eq!(env.health("run-42", "agent"), "healthy");
    assert_eq!(env.show("run")["agents"][0]["exit_status"], 5);
    env.ok(&["run", "stop", "run"]);
    let sessions = env.tmux_out(&["list-sessions", "-F", "#{session_name}"]);
    assert!(
        sessions.lines().any(|s| s == "run-42"),
        "stop of `run` killed run-42: {sessions}"
    );
    assert!(!sessions.lines().any(|s| s == "run"), "{sessions}");
}

#[test]
fn two_hundred_runs_cost_one_tmux_call_per_tick() {
    // Default health thresholds: registering 200 runs takes longer than the tiny ones.
    let mut env = Env::with_policy(json!({"operator": {"llm": {"mode": "off"}}}));
    for i in 0..200 {
        env.start(&format!("r{i:03}"), &["sleep", "1000"]);
    }
    let count = env.log_tmux_calls();
    let out = env.tick_json();
    assert_eq!(out["runs"].as_array().map(Vec::len), Some(200));
    let calls = std::fs::read_to_string(&count).unwrap_or_default();
    assert_eq!(calls.lines().count(), 1, "tmux calls: {calls}");
    assert!(calls.contains("list-panes -a"), "{calls}");
    for r in out["runs"].as_array().into_iter().flatten() {
        assert_eq!(r["agents"][0]["health"], "healthy", "{r}");
    }
}

#[test]
fn policy_errors_name_the_file_and_field() {
    let env = Env::new();
    let cases = [
        (
            json!({"operator": {"restart_budget": 0}}),
            "operator.restart_budget must be > 0",
        ),
        (
            json!({"health": {"idle_seconds": 10, "activity_stalled_seconds": 5}}),
            "health.activity_stalled_seconds must be >= health.idle_seconds",
        ),
        (
            json!({"operator": {"llm": {"mode": "maybe"}}}),
            "operator.llm.mode must be off|assist|auto",
        ),
        (
            json!({"operator": {"restat_budget": 3}}),
            "operator.restat_budget: unknown key",
        ),
        (
            json!({"tmux": {"session_pattern": " "}}),
            "tmux.session_pattern cannot be empty",
        ),
        (
            json!({"operator": {"unhealthy_confirmations": "2"}}),
            "operator.unhealthy_confirmations must be an integer",
        ),
    ];
    for (policy, msg) in cases {
        env.write_policy(&policy);
        let out = env.run(&["policy", "check"]);
        assert_eq!(out.status.code(), Some(2), "{policy}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains(msg), "{policy}: {err}");
        // HOME is the test's temp dir, so the path is shown as ~/policy.json.
        assert!(err.contains("policy ~/policy.json: "), "{err}");
        assert_eq!(err.trim().lines().count(), 1, "{err}");
        let out = env.run(&["tick"]);
        assert_eq!(
            out.status.code(),
            Some(2),
            "tick with a bad policy must exit 2"
        );
    }
    // The original's policy files load unchanged.
    for f in ["metawsm-policy.a3640a4.json", "metawsm-policy.head.json"] {
        let p = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/policy/").to_string() + f;
        let out = env.ok(&["policy", "check", &p]);
        assert!(out.contains(": ok"), "{out}");
    }
}

#[test]
fn run_list_before_any_run_says_so_and_creates_nothing() {
    let env = Env::new();
    assert_eq!(env.ok(&["run", "list"]).trim(), "no runs");
    assert_eq!(env.ok(&["run", "list", "--json"]).trim(), "[]");
    assert!(!env.db.exists(), "run list created the database");
}

#[test]
fn state_survives_reopen_and_illegal_transitions_are_refused() {
    let env = observe_only();
    env.start("r1", &["sleep", "1000"]);
    env.tick();
    env.ok(&["run", "stop", "r1"]);
    // Stopping it again is not an error: the command says so and exits 0 (illegal
    // transitions are refused by the store: see its transitions_are_compare_and_swap).
    let out = env.run(&["run", "stop", "r1"]);
    assert_eq!(out.status.code(), Some(0));
    assert!(String::from_utf8_lossy(&out.stdout).contains("already stopped"));
    // Every later process reopens the same file and sees the same state.
    let v = env.show("r1");
    assert_eq!(v["status"], "stopped");
    assert_eq!(v["tickets"], json!(["T-1"]));
    assert_eq!(env.ok(&["run", "list"]).trim(), "no active runs");
    assert!(env.ok(&["run", "list", "--all"]).contains("stopped"));
    // The schema version is the number of migration files (one per version).
    let migrations =
        std::fs::read_dir(concat!(env!("CARGO_MANIFEST_DIR"), "/src/store/migrations"))
            .expect("migrations")
            .filter(|e| {
                e.as_ref()
                    .is_ok_and(|e| e.path().extension().is_some_and(|x| x == "sql"))
            })
            .count();
    let rows = env.sql("PRAGMA user_version");
    assert_eq!(rows[0][0], migrations.to_string());
    let mode = std::fs::metadata(&env.db)
        .map(|m| std::os::unix::fs::PermissionsExt::mode(&m.permissions()) & 0o777);
    assert_eq!(mode.ok(), Some(0o600));
    env.ok(&["run", "forget", "r1"]);
    assert!(env.run(&["run", "show", "r1"]).status.code() == Some(1));
}

#[test]
fn refuses_an_existing_session_name_and_bad_arguments() {
    let env = observe_only();
    env.tmux(&["new-session", "-d", "-s", "taken", "sleep 1000"]);
    let ws = env.ws.to_string_lossy().into_owned();
    let out = env.run(&[
        "run",
        "start",
        "--ticket",
        "T",
        "--workspace",
        &ws,
        "--session",
        "taken",
        "--",
        "true",
    ]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("already exists"));
    for (args, needle) in [
        (
            vec!["run", "start", "--workspace", ws.as_str(), "--", "true"],
            "--ticket is required",
        ),
        (
            vec!["run", "start", "--ticket", "T", "--workspace", ws.as_str()],
            "agent command is required",
        ),
        (
            vec![
                "run",
                "start",
                "--ticket",
                "T",
                "--workspace",
                "/nonexistent/x",
                "--",
                "true",
            ],
            "/nonexistent/x",
        ),
        (vec!["run", "frobnicate"], "unknown command 'frobnicate'"),
        (vec!["tick", "--bogus"], "--bogus"),
        (
            vec!["tick", "--llm-mode", "sometimes"],
            "invalid --llm-mode",
        ),
    ] {
        let out = env.run(&args);
        assert_eq!(out.status.code(), Some(2), "{args:?}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains(needle), "{args:?}: {err}");
        assert_eq!(err.trim().lines().count(), 1, "{args:?}: {err}");
    }
}

#[test]
fn every_command_has_help() {
    let env = Env::new();
    for cmd in [
        vec!["--help"],
        vec!["tick", "--help"],
        vec!["status", "--help"],
        vec!["run", "--help"],
        vec!["run", "start", "--help"],
        vec!["run", "add-agent", "--help"],
        vec!["run", "list", "--help"],
        vec!["run", "show", "--help"],
        vec!["run", "stop", "--help"],
        vec!["run", "restart", "--help"],
        vec!["run", "forget", "--help"],
        vec!["guide", "--help"],
        vec!["signal", "--help"],
        vec!["log", "--help"],
        vec!["policy", "--help"],
        vec!["doctor", "--help"],
        vec!["hook", "--help"],
        vec!["timer", "--help"],
        vec!["tmux-setup", "--help"],
    ] {
        let out = env.ok(&cmd);
        assert!(
            out.starts_with("Usage:") || out.contains("Usage:"),
            "{cmd:?}: {out}"
        );
    }
    assert!(env.ok(&["--version"]).starts_with("metawsm-tick "));
}

#[test]
fn add_agent_gets_its_own_session_and_policy_commands_work() {
    let env = observe_only();
    env.start("r1", &["sleep", "1000"]);
    env.ok(&[
        "run",
        "add-agent",
        "r1",
        "--agent",
        "reviewer",
        "--session",
        "r1-rev",
        "--",
        "sleep",
        "1000",
    ]);
    env.tick();
    let v = env.show("r1");
    assert_eq!(v["agents"].as_array().map(Vec::len), Some(2));
    assert_eq!(v["agents"][1]["session"], "r1-rev");
    assert_eq!(v["agents"][1]["health"], "healthy");
    std::fs::remove_file(&env.policy).expect("rm policy");
    env.ok(&["policy", "init"]);
    assert_eq!(env.run(&["policy", "init"]).status.code(), Some(1));
    env.ok(&["policy", "init", "--force"]);
    let shown: serde_json::Value =
        serde_json::from_str(&env.ok(&["policy", "show"])).expect("json");
    assert_eq!(shown["operator"]["restart_budget"], 3);
}

#[test]
fn a_database_shared_by_two_servers_keeps_each_run_on_its_own_server() {
    let env = observe_only();
    env.start("mine", &["sleep", "1000"]);
    env.tick();
    // A second private server using the same database.
    let other = env.path("other.sock");
    let other_s = other.to_string_lossy().into_owned();
    let tmux_b = |args: &[&str]| {
        std::process::Command::new("tmux")
            .arg("-S")
            .arg(&other)
            .args(args)
            .env_remove("TMUX")
            .stdin(std::process::Stdio::null())
            .output()
            .expect("tmux b")
    };
    assert!(tmux_b(&[
        "-f",
        "/dev/null",
        "new-session",
        "-d",
        "-s",
        "b",
        "sleep 1000"
    ])
    .status
    .success());
    let from_b = |args: &[&str]| {
        let mut all = vec!["--tmux-socket", other_s.as_str()];
        all.extend_from_slice(args);
        let out = std::process::Command::new(common::BIN)
            .arg("--db")
            .arg(&env.db)
            .arg("--policy")
            .arg(&env.policy)
            .args(&all)
            .env_remove("TMUX")
            .env("HOME", env.dir.path())
            .stdin(std::process::Stdio::null())
            .output()
            .expect("run");
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    let out = from_b(&["tick"]);
    assert!(
        out.contains("no active runs"),
        "server b must not judge server a's run: {out}"
    );
    assert_eq!(env.health("mine", "agent"), "healthy");
    assert!(
        !tmux_b(&["has-session", "-t", "=mine"]).status.success(),
        "no duplicate agent on b"
    );
    // Commands aimed at the run reach its own server.
    from_b(&["run", "stop", "mine"]);
    assert!(!env.tmux(&["has-session", "-t", "=mine"]).status.success());
    let _ = tmux_b(&["kill-server"]);
}
