//! Issue 3: the rule engine acting on a real tmux server — restart budget, cooldown,
//! stale runs, guidance, completion, escalations, dry-run, concurrency, path safety.

mod common;

use common::{
    count_in, fast_policy, intent, lines_exactly_after_quiet, rfc3339_secs, wait_for, write_exec,
    Env,
};
use serde_json::{json, Value};
use std::fs;
use std::path::Path;
use std::time::{Duration, Instant};

const WAIT: Duration = Duration::from_secs(30);

fn events(env: &Env, run: &str, kind: &str) -> Vec<Value> {
    let all: Value =
        serde_json::from_str(&env.ok(&["log", "--run", run, "--limit", "1000", "--json"]))
            .expect("json");
    all.as_array()
        .map(|a| a.iter().filter(|e| e["kind"] == kind).cloned().collect())
        .unwrap_or_default()
}

fn ticket_dir(env: &Env) -> std::path::PathBuf {
    let d = env.ws.join("ttmp/2026/11/25/T-1--demo-ticket");
    fs::create_dir_all(&d).expect("ticket dir");
    d
}

fn notify_script(env: &Env) -> std::path::PathBuf {
    let log = env.path("notify.log");
    let script = env.path("notify.sh");
    write_exec(
        &script,
        &format!(
            "#!/bin/sh\nprintf '%s|%s|%s|%s|%s|%s\\n' \"$METAWSM_EVENT\" \"$METAWSM_RUN_ID\" \"$METAWSM_RUN_STATUS\" \"$METAWSM_TICKETS\" \"$METAWSM_INTENT\" \"$METAWSM_MESSAGE\" >> '{}'\n",
            log.display()
        ),
    );
    script
}

/// The notify log reaches `n` lines (generous deadline) and stays there for 1.5 s more.
fn notify_lines_exactly(env: &Env, n: usize) {
    lines_exactly_after_quiet(
        &env.path("notify.log"),
        "|",
        n,
        Duration::from_secs(15),
        Duration::from_millis(1500),
    );
}

#[test]
fn crash_loop_is_corroborated_restarted_within_budget_then_escalated_once() {
    let env = Env::new();
    let dir = ticket_dir(&env);
    let script = notify_script(&env);
    env.write_policy(&fast_policy(json!({"operator": {
        "restart_budget": 2, "restart_cooldown_seconds": 2, "restart_cooldown_max_seconds": 8,
        "notify": {"command": [script.to_string_lossy()]}
    }})));
    env.start("loop", &["sh", "-c", "exit 1"]);
    wait_for("agent dead", WAIT, || {
        (env.health("loop", "agent") == "dead" || {
            env.tick();
            false
        })
        .then_some(())
    });
    // Exactly `unhealthy_confirmations` (2) spaced observations: the first only counts.
    let mut v = env.tick_json();
    let (i, r) = intent(&v, "loop");
    if i == "noop" {
        assert!(r.contains("awaiting corroboration"), "{r}");
        std::thread::sleep(Duration::from_millis(1100));
        v = env.tick_json();
    }
    let (i, r) = intent(&v, "loop");
    assert_eq!(i, "auto_restart", "{r}");
    assert_eq!(env.show("loop")["operator"]["restart_attempts"], 1);

    let started = Instant::now();
    let mut blocked_at = None;
    while started.elapsed() < WAIT {
        let v = env.tick_json();
        if intent(&v, "loop").0 == "escalate_blocked" {
            blocked_at.get_or_insert(Instant::now());
            if blocked_at.is_some_and(|t| t.elapsed() > Duration::from_secs(2)) {
                break;
            }
        }
        std::thread::sleep(Duration::from_millis(300));
    }
    assert!(blocked_at.is_some(), "never escalated");
    let restarts = events(&env, "loop", "restart");
    assert_eq!(restarts.len(), 2, "budget is 2: {restarts:?}");
    // Ladder: the second attempt waits at least the first cooldown (2 s). Full
    // timestamps: a gap across midnight is still a gap.
    let t0 = restarts[0]["at"].as_str().unwrap_or("");
    let t1 = restarts[1]["at"].as_str().unwrap_or("");
    assert!(
        rfc3339_secs(t1) - rfc3339_secs(t0) >= 2,
        "two restarts inside one cooldown: {t0} {t1}"
    );
    assert_eq!(env.show("loop")["operator"]["restart_attempts"], 2);

    let log = fs::read_to_string(dir.join("changelog.md")).expect("changelog written");
    assert_eq!(
        log.matches("\n## ").count(),
        1,
        "one entry per episode: {log}"
    );
    assert!(log.contains("- Intent: `escalate_blocked`"), "{log}");
    assert!(log.contains("restart budget exhausted (2/2)"), "{log}");
    assert!(log.contains("metawsm-tick run show loop"), "{log}");
    // As in the original: each executed restart notifies (2), then the escalation once.
    notify_lines_exactly(&env, 3);
    let notes = fs::read_to_string(env.path("notify.log")).unwrap_or_default();
    let escalations: Vec<&str> = notes
        .lines()
        .filter(|l| l.starts_with("escalation_blocked|"))
        .collect();
    assert_eq!(escalations.len(), 1, "one escalation notify: {notes}");
    assert!(
        escalations[0].starts_with(
            "escalation_blocked|loop|running|T-1|escalate_blocked|restart budget exhausted"
        ),
        "{notes}"
    );
    let restarts = notes
        .lines()
        .filter(|l| l.starts_with("auto_restart_candidate|loop|running|T-1|auto_restart|"))
        .count();
    assert_eq!(restarts, 2, "one notify per executed restart: {notes}");
    assert_eq!(
        events(&env, "loop", "decision")
            .iter()
            .filter(|e| e["to"] == "escalate_blocked")
            .count(),
        1
    );
}

#[test]
fn attempts_reset_after_a_healthy_window() {
    let env = Env::with_policy(fast_policy(
        json!({"operator": {"healthy_reset_seconds": 2, "restart_cooldown_seconds": 1}}),
    ));
    let flag = env.path("healthy-now");
    let cmd = format!(
        "if [ -e '{}' ]; then exec sleep 1000; else exit 1; fi",
        flag.display()
    );
    env.start("flaky", &["sh", "-c", &cmd]);
    fs::write(&flag, "").ok();
    fs::remove_file(&flag).ok();
    wait_for("first restart", WAIT, || {
        env.tick();
        let n = env.show("flaky")["operator"]["restart_attempts"]
            .as_i64()
            .unwrap_or(0);
        if n >= 1 {
            fs::write(&flag, "").ok();
            Some(())
        } else {
            std::thread::sleep(Duration::from_millis(300));
            None
        }
    });
    // The restarted agent may have died before the flag existed; the next restart sticks.
    wait_for("healthy and reset", WAIT, || {
        env.tick();
        std::thread::sleep(Duration::from_millis(300));
        let v = env.show("flaky");
        let alive = v["agents"][0]["health"] == "healthy" || v["agents"][0]["health"] == "idle";
        (alive && v["operator"]["restart_attempts"] == 0).then_some(())
    });
    let notes = events(&env, "flaky", "operator");
    assert!(
        notes.iter().any(|e| e["message"]
            .as_str()
            .unwrap_or("")
            .contains("restart attempts reset to 0")),
        "{notes:?}"
    );
}

#[test]
fn stale_dead_run_is_stopped_and_busy_one_is_not() {
    let env = Env::with_policy(fast_policy(
        json!({"operator": {"stale_run_age_seconds": 2, "unhealthy_confirmations": 1000}}),
    ));
    env.start("deadold", &["sh", "-c", "exit 1"]);
    env.start(
        "busyold",
        &["sh", "-c", "while :; do echo work; sleep 0.5; done"],
    );
    // No tick for longer than the stale age: the stored sign of life is the start.
    std::thread::sleep(Duration::from_millis(2500));
    let v = env.tick_json();
    let (i, r) = intent(&v, "deadold");
    assert_eq!(i, "auto_stop_stale", "{r}");
    assert!(r.contains("verified"), "{r}");
    let (i, r) = intent(&v, "busyold");
    assert_eq!(i, "noop", "{r}");
    assert!(
        r.contains("rejected: agent agent has recent activity"),
        "{r}"
    );
    assert_eq!(env.show("deadold")["status"], "stopped");
    assert_eq!(env.show("busyold")["status"], "running");
    let sessions = env.tmux_out(&["list-sessions", "-F", "#{session_name}"]);
    assert!(!sessions.lines().any(|s| s == "deadold"), "{sessions}");
    assert!(sessions.lines().any(|s| s == "busyold"), "{sessions}");
}

#[test]
fn guidance_request_escalates_once_and_guide_resumes() {
    let env = Env::new();
    let dir = ticket_dir(&env);
    env.start("ask", &["sleep", "1000"]);
    let sig = env.ws.join(".metawsm");
    fs::create_dir_all(&sig).expect("mkdir");
    fs::write(
        sig.join("guidance-request.json"),
        r#"{"agent":"agent","question":"Which database?","context":{"options":["pg","sqlite"]}}"#,
    )
    .expect("write");
    let v = env.tick_json();
    let (i, r) = intent(&v, "ask");
    assert_eq!(i, "escalate_guidance");
    assert!(r.contains("Which database?"), "{r}");
    env.tick();
    env.tick();
    let s = env.show("ask");
    assert_eq!(s["status"], "awaiting_guidance");
    assert_eq!(s["guidance"][0]["question"], "Which database?");
    let log = fs::read_to_string(dir.join("changelog.md")).expect("changelog");
    assert_eq!(log.matches("\n## ").count(), 1, "{log}");
    assert!(log.contains("- Question: Which database?"), "{log}");
    assert!(
        log.contains(r#"- Context: {"options":["pg","sqlite"]}"#),
        "{log}"
    );
    assert!(log.contains("metawsm-tick guide ask --answer"), "{log}");
    let out = env.ok(&["guide", "ask", "--answer", "Use Postgres"]);
    assert!(out.contains("answered"), "{out}");
    let resp: Value = serde_json::from_str(
        &fs::read_to_string(sig.join("guidance-response.json")).expect("response"),
    )
    .expect("json");
    assert_eq!(resp["answer"], "Use Postgres");
    assert_eq!(resp["question"], "Which database?");
    assert_eq!(resp["run_id"], "ask");
    assert_eq!(resp["agent"], "agent");
    assert!(resp["answered_at"].as_str().unwrap_or("").ends_with('Z'));
    assert!(!sig.join("guidance-request.json").exists());
    assert_eq!(env.show("ask")["status"], "running");
    assert_eq!(intent(&env.tick_json(), "ask").0, "noop");
    assert_eq!(
        env.run(&["guide", "ask", "--answer", "again"])
            .status
            .code(),
        Some(1)
    );
}

#[test]
fn completion_needs_the_signal() {
    let env = Env::new();
    let dir = ticket_dir(&env);
    let script = notify_script(&env);
    env.write_policy(&fast_policy(
        json!({"operator": {"notify": {"command": [script.to_string_lossy()]}}}),
    ));
    env.start("silent", &["sh", "-c", "exit 0"]);
    // On a loaded machine tmux can show the pane dead without its exit status (it can
    // even miss the exit until its reaper is woken: docs/testing.md), and such an agent
    // is judged dead (a crash) and restarted. This test is about the completion signal,
    // so it starts ticking once tmux knows the status.
    assert_eq!(env.wait_exit_status("silent"), "0");
    let v = wait_for("exited", WAIT, || {
        let v = env.tick_json();
        (intent(&v, "silent").0 == "escalate_blocked").then_some(v)
    });
    assert!(intent(&v, "silent")
        .1
        .contains("agent agent exited without completion signal"));
    // Later ticks see the same situation: the same episode, one entry, one notify.
    for _ in 0..4 {
        assert_eq!(intent(&env.tick_json(), "silent").0, "escalate_blocked");
    }
    let log = fs::read_to_string(dir.join("changelog.md")).expect("changelog");
    assert_eq!(log.matches("\n## ").count(), 1, "{log}");
    notify_lines_exactly(&env, 1);

    let sig = env.ws.join(".metawsm");
    fs::create_dir_all(&sig).expect("mkdir");
    fs::write(
        sig.join("implementation-complete.json"),
        r#"{"run_id":"silent","summary":"done"}"#,
    )
    .expect("write");
    env.tick();
    assert_eq!(env.show("silent")["status"], "completed");
    assert!(!events(&env, "silent", "transition").is_empty());
    notify_lines_exactly(&env, 2);
    let notes = fs::read_to_string(env.path("notify.log")).unwrap_or_default();
    let last = notes.lines().nth(1).unwrap_or("");
    assert!(
        last.starts_with("run_completed|silent|completed|T-1|"),
        "{notes}"
    );
}

/// Every table (whatever the schema has, `meta` included), every file in the workspace
/// and the state directory (the DB file itself, its status cache) with size and mtime
/// and bytes, and tmux's panes.
type Snapshot = (Vec<(String, Vec<Vec<String>>)>, Vec<String>, String);

fn snapshot(env: &Env) -> Snapshot {
    fn walk(p: &Path, out: &mut Vec<String>) {
        if let Ok(rd) = fs::read_dir(p) {
            for e in rd.flatten() {
                let path = e.path();
                // SQLite's shared-memory index is rebuilt by any reader; not state.
                if path.to_string_lossy().ends_with("-shm") {
                    continue;
                }
                let m = e.metadata().map(|m| (m.len(), m.modified().ok())).ok();
                // An empty WAL holds nothing (any reader creates one where none is: the
                // test's own `env.sql` deletes it on close). Its header and every
                // committed page would make it non-empty, and count.
                if path.to_string_lossy().ends_with("-wal") && m.is_some_and(|m| m.0 == 0) {
                    continue;
                }
                let bytes = if path.is_file() {
                    fs::read(&path).unwrap_or_default()
                } else {
                    Vec::new()
                };
                out.push(format!("{} {m:?} {bytes:?}", path.display()));
                walk(&path, out);
            }
        }
    }
    // Files first: our own read of the tables below must not be mistaken for a change.
    let mut files = Vec::new();
    walk(&env.ws, &mut files);
    walk(env.db.parent().expect("state dir"), &mut files);
    files.sort();
    assert!(
        files.iter().any(|f| f.contains("state.db.status ")),
        "the status cache exists: {files:?}"
    );
    let tables = env.sql("SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name");
    assert!(tables.iter().any(|t| t[0] == "meta"), "{tables:?}");
    let db = tables
        .iter()
        .map(|t| {
            let rows = env.sql(&format!("SELECT * FROM \"{}\" ORDER BY 1", t[0]));
            (t[0].clone(), rows)
        })
        .collect();
    let tmux = env.tmux_out(&[
        "list-panes",
        "-a",
        "-F",
        "#{session_name} #{pane_id} #{pane_pid} #{pane_dead}",
    ]);
    (db, files, tmux)
}

#[test]
fn dry_run_changes_nothing() {
    let mut env = Env::new();
    ticket_dir(&env);
    let script = notify_script(&env);
    env.write_policy(&fast_policy(json!({"operator": {"notify": {
        "command": [script.to_string_lossy()], "tmux_message": true
    }}})));
    // A real client, so that a tmux message would have somewhere to go.
    let _client = env.attach_client();
    env.start("dying", &["sh", "-c", "exit 1"]);
    env.start("asker", &["sleep", "1000"]);
    wait_for("dead", WAIT, || {
        env.tick();
        (env.health("dying", "agent") == "dead").then_some(())
    });
    fs::create_dir_all(env.ws.join(".metawsm")).expect("mkdir");
    fs::write(
        env.ws.join(".metawsm/guidance-request.json"),
        r#"{"run_id":"asker","question":"ok?"}"#,
    )
    .expect("w");
    std::thread::sleep(Duration::from_millis(1100));
    let calls = env.log_tmux_calls();
    let notes = env.path("notify.log");
    let messages = || count_in(&calls, "display-message -c");
    // Read the DB once (and close it) before the file snapshot, so that the snapshot
    // sees the files as they are after a reader, not a WAL our reader checkpoints.
    env.sql("SELECT 1");
    let before = snapshot(&env);
    let out = env.ok(&["tick", "--dry-run"]);
    assert!(out.contains("dying auto_restart"), "{out}");
    assert!(out.contains("action=dry-run"), "{out}");
    assert!(out.contains("asker escalate_guidance"), "{out}");
    let after = snapshot(&env);
    assert_eq!(before.0, after.0, "database changed");
    assert_eq!(before.1, after.1, "files changed");
    assert_eq!(before.2, after.2, "tmux changed");
    for (file, word) in [(&notes, "|"), (&calls, "display-message -c")] {
        lines_exactly_after_quiet(file, word, 0, Duration::ZERO, Duration::from_millis(1500));
    }
    // The same situation without --dry-run does notify and message: the checks above
    // watch the right places.
    let out = env.tick();
    assert!(out.contains("asker escalate_guidance"), "{out}");
    wait_for("the real tick's notify", WAIT, || {
        (count_in(&notes, "guidance_needed|asker") == 1).then_some(())
    });
    assert!(messages() >= 1, "no display-message from the real tick");
}

/// Eight ticks started at once, when a restart has just become due: the lock lets one
/// of them restart, and tmux sees exactly one respawn.
#[test]
fn eight_concurrent_ticks_never_double_restart() {
    let mut env = Env::with_policy(fast_policy(json!({"operator": {
        "unhealthy_confirmations": 1, "min_observation_gap_seconds": 0,
        "restart_cooldown_seconds": 30, "restart_cooldown_max_seconds": 60
    }})));
    env.start("race", &["sh", "-c", "exit 1"]);
    // No tick before the burst: the agent is seen dead by tmux only, so the first
    // restart becomes due inside the burst, not in a setup tick.
    env.wait_pane_dead("race");
    assert_eq!(env.show("race")["operator"]["restart_attempts"], 0);
    let calls = env.log_tmux_calls();
    let kids: Vec<_> = (0..8)
        .map(|_| {
            env.cmd(&["tick"])
                .stdout(std::process::Stdio::null())
                .spawn()
                .expect("spawn")
        })
        .collect();
    for mut k in kids {
        assert!(k.wait().expect("wait").success());
    }
    assert_eq!(count_in(&calls, "respawn-pane"), 1, "respawns by tmux");
    let restarts = events(&env, "race", "restart");
    assert_eq!(restarts.len(), 1, "{restarts:?}");
    assert_eq!(env.show("race")["operator"]["restart_attempts"], 1);
}

#[test]
fn hostile_ticket_and_symlinked_ticket_dir_write_nothing_outside() {
    let env = Env::new();
    let outside = tempfile::tempdir().expect("tmp");
    let ws = env.ws.to_string_lossy().into_owned();
    fs::create_dir_all(env.ws.join("ttmp")).expect("mkdir");
    std::os::unix::fs::symlink(outside.path(), env.ws.join("ttmp/EVIL--escape")).expect("symlink");
    env.ok(&[
        "run",
        "start",
        "--ticket",
        "../../x",
        "--workspace",
        &ws,
        "--id",
        "hostile",
        "--session",
        "hostile",
        "--",
        "sh",
        "-c",
        "exit 0",
    ]);
    env.ok(&[
        "run",
        "start",
        "--ticket",
        "EVIL",
        "--workspace",
        &ws,
        "--id",
        "evil",
        "--session",
        "evil",
        "--",
        "sh",
        "-c",
        "exit 0",
    ]);
    wait_for("escalations", WAIT, || {
        env.tick();
        (events(&env, "hostile", "escalation_unwritten").len() == 1
            && events(&env, "evil", "escalation_unwritten").len() == 1)
            .then_some(())
    });
    let why = events(&env, "hostile", "escalation_unwritten")[0]["message"]
        .as_str()
        .unwrap_or("")
        .to_string();
    assert!(why.contains("unsafe ticket name"), "{why}");
    let why = events(&env, "evil", "escalation_unwritten")[0]["message"]
        .as_str()
        .unwrap_or("")
        .to_string();
    assert!(why.contains("outside the workspace"), "{why}");
    assert_eq!(
        fs::read_dir(outside.path()).map(|d| d.count()).unwrap_or(1),
        0,
        "wrote outside the workspace"
    );
    assert!(!env.dir.path().join("x").exists());
}
