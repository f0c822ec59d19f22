//! The tmux plugin end to end (issue 5), against real isolated tmux servers.
//!
//! Every test starts its own server on a socket in a temp dir (`-f /dev/null`, see
//! tests/common), loads `tmux/metawsm.tmux` (or `tmux/metawsm.conf`) into it with the
//! test's DB and policy, and only ever kills the servers it started (harness Drop).
//! Waits poll with generous deadlines so the suite stays robust under CPU load.

mod common;

use common::{fast_policy, wait_for, write_exec, Env, BIN};
use serde_json::{json, Value};
use std::fs::{self, File, OpenOptions};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

const SEGMENT_LIMIT: Duration = Duration::from_millis(50);

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// A tmux config that sets the plugin options and runs the TPM entry file, the way a
/// user's tmux.conf (or TPM) does. `extra` lines go before the plugin is loaded.
fn write_conf(env: &Env, extra: &[&str]) -> PathBuf {
    let mut lines = vec![
        format!("set -g @metawsm-bin '{BIN}'"),
        format!("set -g @metawsm-db '{}'", env.db.display()),
        format!("set -g @metawsm-policy '{}'", env.policy.display()),
        "set -g @metawsm-interval 1".to_string(),
    ];
    lines.extend(extra.iter().map(|l| l.to_string()));
    lines.push(format!(
        "run-shell '{}'",
        repo().join("tmux/metawsm.tmux").display()
    ));
    let conf = env.path("plugin.conf");
    fs::write(&conf, lines.join("\n") + "\n").expect("write conf");
    conf
}

fn source(env: &Env, conf: &Path) {
    let out = env.tmux(&["source-file", &conf.to_string_lossy()]);
    assert!(
        out.status.success(),
        "source-file {}: {}",
        conf.display(),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Loads the plugin and waits until tmux-setup has finished inside the server.
fn load_plugin(env: &Env, extra: &[&str]) {
    let conf = write_conf(env, extra);
    source(env, &conf);
    wait_for("@metawsm-loaded", Duration::from_secs(20), || {
        (!env
            .tmux_out(&["show-options", "-gqv", "@metawsm-loaded"])
            .trim()
            .is_empty())
        .then_some(())
    });
}

fn option(env: &Env, name: &str) -> String {
    env.tmux_out(&["show-options", "-gqv", name])
        .trim_end_matches('\n')
        .to_string()
}

fn events(env: &Env) -> Vec<Value> {
    let out = env.run(&["log", "--json", "--limit", "100000"]);
    if !out.status.success() {
        return Vec::new();
    }
    serde_json::from_slice(&out.stdout).unwrap_or_default()
}

fn hook_events(env: &Env, run: &str, event: &str) -> Vec<Value> {
    events(env)
        .into_iter()
        .filter(|e| e["kind"] == "hook" && e["run_id"] == run && e["to"] == event)
        .collect()
}

fn meta_i64(env: &Env, key: &str) -> Option<i64> {
    env.sql(&format!("SELECT value FROM meta WHERE key = '{key}'"))
        .first()
        .and_then(|r| r[0].parse().ok())
}

fn set_meta(env: &Env, key: &str, value: &str) {
    let c = rusqlite::Connection::open(&env.db).expect("open db");
    c.busy_timeout(Duration::from_secs(5))
        .expect("busy timeout");
    c.execute(
        "INSERT INTO meta(key, value) VALUES (?1, ?2) ON CONFLICT(key) DO UPDATE SET value = excluded.value",
        [key, value],
    )
    .expect("set meta");
}

fn lock_file(env: &Env) -> File {
    let mut p = env.db.clone().into_os_string();
    p.push(".lock");
    OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(PathBuf::from(p))
        .expect("open lock file")
}

fn lock_busy(env: &Env) -> bool {
    let f = lock_file(env);
    match f.try_lock() {
        Ok(()) => {
            let _ = f.unlock();
            false
        }
        Err(_) => true,
    }
}

fn clients(env: &Env) -> String {
    env.tmux_out(&["list-clients", "-F", "#{client_name}"])
        .trim()
        .to_string()
}

fn status_plain(env: &Env) -> String {
    env.ok(&["status", "--no-tick", "--format", "plain"])
        .trim()
        .to_string()
}

// ---------------------------------------------------------------------------------
// 1. End to end: tmux alone (hooks + run-shell timer, zero clients) supervises a run.
// ---------------------------------------------------------------------------------

#[test]
fn tmux_alone_detects_a_dead_agent_and_restarts_it_with_no_client_attached() {
    // The end asserts a tick every second: the timer without backoff (idle_backoff.rs).
    let env = Env::with_policy(fast_policy(
        json!({"operator": {"idle_tick_max_seconds": 1}}),
    ));
    load_plugin(&env, &[]);
    assert_eq!(clients(&env), "", "no client may be attached");
    let job = option(&env, "@metawsm-job");
    assert!(
        option(&env, "status-right").contains(&job),
        "segment installed"
    );

    // Registration only (not a tick): the agent exits 1 after two seconds.
    env.start("dies", &["sh", "-c", "sleep 2; exit 1"]);
    let first_status = status_plain(&env);

    // Everything from here on is driven by tmux: the pane-died hook and the timer.
    let deadline = Instant::now() + Duration::from_secs(45);
    let (mut hook_seen, mut dead_shown, mut restarted) = (None, None, None);
    let mut shown = vec![first_status.clone()];
    while Instant::now() < deadline
        && (hook_seen.is_none() || dead_shown.is_none() || restarted.is_none())
    {
        let ev = events(&env);
        if hook_seen.is_none() {
            hook_seen = ev
                .iter()
                .find(|e| e["kind"] == "hook" && e["to"] == "pane-died" && e["run_id"] == "dies")
                .cloned();
        }
        if restarted.is_none() {
            restarted = ev
                .iter()
                .find(|e| e["kind"] == "restart" && e["run_id"] == "dies")
                .cloned();
        }
        let s = status_plain(&env);
        if s.contains('✖') && dead_shown.is_none() {
            dead_shown = Some(s.clone());
        }
        if shown.last() != Some(&s) {
            shown.push(s);
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let log = serde_json::to_string_pretty(&events(&env)).unwrap_or_default();
    let hook = hook_seen.unwrap_or_else(|| panic!("pane-died hook never fired; log: {log}"));
    // `#{hook_pane} #{q:session_name} #{pane_dead_status}`
    let msg = hook["message"].as_str().unwrap_or("");
    assert!(
        msg.starts_with('%') && msg.ends_with(" dies 1"),
        "hook args: {msg:?}"
    );
    assert!(
        dead_shown.is_some(),
        "status never showed the dead agent; shown: {shown:?}"
    );
    assert_eq!(first_status, "⚙1", "status before the death");
    let restart = restarted.unwrap_or_else(|| panic!("no restart; log: {log}"));
    assert_eq!(restart["to"], "ok", "restart outcome: {restart}");
    assert_eq!(restart["source"], "rule");

    let all = events(&env);
    assert!(
        all.iter().any(|e| e["kind"] == "decision"
            && e["to"] == "auto_restart"
            && e["message"].as_str().unwrap_or("").contains("corroborated")),
        "restart decided after corroboration; log: {log}"
    );
    let health_dead = all
        .iter()
        .find(|e| e["kind"] == "health" && e["to"] == "dead")
        .unwrap_or_else(|| panic!("no dead health event; log: {log}"));
    assert!(
        health_dead["source"] == "hook" || health_dead["source"] == "timer",
        "dead seen by a hook or timer tick: {health_dead}"
    );
    // Nothing but tmux ticked: no status job (no client) and no manual tick.
    for e in &all {
        let src = e["source"].as_str().unwrap_or("");
        assert!(
            src != "status" && src != "tick",
            "unexpected tick source: {e}"
        );
    }
    let show = env.show("dies");
    assert!(
        show["operator"]["restart_attempts"].as_i64().unwrap_or(0) >= 1,
        "restart_attempts: {}",
        show["operator"]
    );

    // Ticks continue with zero clients: the run-shell timer keeps last_full_tick moving.
    assert_eq!(clients(&env), "");
    let t0 = meta_i64(&env, "last_full_tick").expect("last_full_tick");
    std::thread::sleep(Duration::from_millis(3300));
    let t1 = meta_i64(&env, "last_full_tick").expect("last_full_tick");
    assert_eq!(clients(&env), "", "still no client attached");
    assert!(
        t1 >= t0 + 2,
        "timer ticks with no client: last_full_tick {t0} -> {t1} over 3.3 s"
    );
    let next_due = meta_i64(&env, "timer_next_due").expect("timer_next_due");
    assert!(next_due >= t1, "timer armed ahead: {next_due} vs {t1}");
    println!("e2e: status {shown:?}; last_full_tick {t0} -> {t1} over 3.3 s, 0 clients");
}

// ---------------------------------------------------------------------------------
// 2. 16 concurrent `status` calls during a long tick never wait.
// ---------------------------------------------------------------------------------

/// Runs 16 `status` calls at once; returns (latency, stdout, exit code) per call.
fn sixteen_status_calls(env: &Env) -> Vec<(Duration, String, Option<i32>)> {
    let barrier = std::sync::Barrier::new(16);
    std::thread::scope(|s| {
        let handles: Vec<_> = (0..16)
            .map(|_| {
                s.spawn(|| {
                    barrier.wait();
                    let t = Instant::now();
                    let out = env.cmd(&["status"]).output().expect("status");
                    (
                        t.elapsed(),
                        String::from_utf8_lossy(&out.stdout).trim().to_string(),
                        out.status.code(),
                    )
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().expect("thread"))
            .collect()
    })
}

/// Up to five rounds: every call must print the cached segment, exit 0 and never come
/// close to a lock wait (< 1 s, the lock is held for seconds); one round must have all 16
/// within 50 ms. (On a CPU-starved machine process start-up alone can exceed 50 ms for
/// the last of 16 processes, unrelated to locking: measured up to 94 ms with both cores
/// of a 2-CPU box saturated, hence the retries.)
fn assert_fast_rounds(env: &Env, expect: &str, what: &str) -> Vec<u128> {
    let mut best: Option<Vec<u128>> = None;
    for round in 1..=5 {
        if round > 1 {
            std::thread::sleep(Duration::from_millis(200));
        }
        let res = sixteen_status_calls(env);
        let mut ms: Vec<u128> = res.iter().map(|r| r.0.as_micros()).collect();
        ms.sort_unstable();
        for (lat, out, code) in &res {
            assert_eq!(code, &Some(0), "{what}: status exit code");
            assert_eq!(out, expect, "{what}: status printed the cached segment");
            assert!(
                *lat < Duration::from_secs(1),
                "{what}: status waited {lat:?}"
            );
        }
        println!("{what}: round {round} latencies (µs, sorted): {ms:?}");
        let ok = res.iter().all(|r| r.0 <= SEGMENT_LIMIT);
        if best.as_ref().is_none_or(|b| b.last() > ms.last()) {
            best = Some(ms.clone());
        }
        if ok {
            return ms;
        }
    }
    panic!("{what}: no round had all 16 status calls within 50 ms; best: {best:?}");
}

#[test]
fn sixteen_concurrent_status_calls_return_the_cached_segment_during_a_long_tick() {
    let mut env = Env::new();
    env.start("busy", &["sleep", "1000"]);
    env.tick();
    let cached = env.ok(&["status", "--no-tick"]).trim().to_string();
    assert_eq!(cached, "#[fg=green]⚙1#[default]");

    // A. Another process holds the state lock (as a long tick does). The last full tick
    //    is made stale so every status call wants to tick and must fall back at once.
    set_meta(&env, "last_full_tick", "0");
    let held = lock_file(&env);
    held.lock().expect("hold the state lock");
    let a = assert_fast_rounds(&env, &cached, "lock held");
    assert_eq!(
        meta_i64(&env, "last_full_tick"),
        Some(0),
        "no status call ticked"
    );
    held.unlock().expect("release");
    drop(held);

    // B. A real long tick: `tmux` on PATH takes 5 s per call, so the tick holds the lock
    //    for seconds. Status calls use the same PATH: had any touched tmux, it would
    //    have taken 5 s.
    let fake = env.path("slowbin");
    fs::create_dir_all(&fake).expect("mkdir");
    let real = String::from_utf8(
        std::process::Command::new("sh")
            .args(["-c", "command -v tmux"])
            .output()
            .expect("which tmux")
            .stdout,
    )
    .expect("utf8");
    write_exec(
        &fake.join("tmux"),
        &format!("#!/bin/sh\nsleep 5\nexec {} \"$@\"\n", real.trim()),
    );
    env.path_prefix = Some(fake);
    set_meta(&env, "last_full_tick", "0");
    let mut tick = env
        .cmd(&["tick"])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("spawn tick");
    wait_for(
        "the slow tick to take the lock",
        Duration::from_secs(20),
        || lock_busy(&env).then_some(()),
    );
    let t = Instant::now();
    let b = assert_fast_rounds(&env, &cached, "slow tick running");
    assert!(
        lock_busy(&env),
        "the slow tick still held the lock after the rounds ({:?})",
        t.elapsed()
    );
    let status = tick.wait().expect("wait tick");
    assert!(status.success(), "slow tick failed");
    assert!(
        meta_i64(&env, "last_full_tick").unwrap_or(0) > 0,
        "the slow tick finished"
    );
    println!(
        "max latency: lock held {} µs, slow tick {} µs",
        a.last().unwrap_or(&0),
        b.last().unwrap_or(&0)
    );
}

// ---------------------------------------------------------------------------------
// 3. Loading is idempotent, keeps users' hooks, and places the segment once.
// ---------------------------------------------------------------------------------

fn hook_lines(env: &Env, event: &str) -> Vec<String> {
    env.tmux_out(&["show-hooks", "-g", event])
        .lines()
        .filter(|l| l.starts_with(&format!("{event}[")))
        .map(str::to_string)
        .collect()
}

#[test]
fn loading_twice_registers_each_hook_once_and_keeps_user_hooks_and_status() {
    let env = Env::new();
    assert!(env
        .tmux(&["set-hook", "-g", "pane-died", "display-message user-hook"])
        .status
        .success());
    assert!(env
        .tmux(&["set-option", "-g", "status-right", "R %H:%M"])
        .status
        .success());
    let left_before = option(&env, "status-left");

    // TPM-style entry file twice, then the plain source-file config once more.
    let conf = write_conf(&env, &[]);
    source(&env, &conf);
    source(&env, &conf);
    source(&env, &repo().join("tmux/metawsm.conf"));
    wait_for("@metawsm-loaded", Duration::from_secs(20), || {
        (!option(&env, "@metawsm-loaded").is_empty()).then_some(())
    });

    let died = hook_lines(&env, "pane-died");
    assert_eq!(died.len(), 2, "pane-died hooks: {died:#?}");
    assert_eq!(died[0], "pane-died[0] display-message user-hook");
    assert!(
        died[1].starts_with("pane-died[91] run-shell -b \"exec ")
            && died[1].contains(" hook pane-died "),
        "ours: {}",
        died[1]
    );
    for ev in [
        "pane-died",
        "pane-exited",
        "session-closed",
        "alert-silence",
        "client-attached",
    ] {
        let ours: Vec<String> = hook_lines(&env, ev)
            .into_iter()
            .filter(|l| l.contains(&format!(" hook {ev}")))
            .collect();
        assert_eq!(ours.len(), 1, "{ev}: {ours:#?}");
        assert!(
            ours[0].starts_with(&format!("{ev}[91] ")),
            "{ev}: {}",
            ours[0]
        );
        assert!(ours[0].contains(">/dev/null 2>&1"), "silent: {}", ours[0]);
    }

    let job = option(&env, "@metawsm-job");
    assert!(
        job.starts_with("#(exec ") && job.contains(BIN) && job.ends_with(" status)"),
        "job: {job}"
    );
    let right = option(&env, "status-right");
    assert_eq!(right.matches(&job).count(), 1, "status-right: {right}");
    assert_eq!(right, format!("{job} R %H:%M"), "prepended, user text kept");
    assert_eq!(
        option(&env, "status-left"),
        left_before,
        "status-left untouched"
    );

    // A placeholder is replaced instead of adding a second segment.
    env.tmux(&[
        "set-option",
        "-g",
        "status-right",
        "#{metawsm_status} | %H:%M",
    ]);
    source(&env, &conf);
    assert_eq!(option(&env, "status-right"), format!("{job} | %H:%M"));
    // …also in status-left, and then status-right gets nothing.
    env.tmux(&["set-option", "-g", "status-right", "plain right"]);
    env.tmux(&["set-option", "-g", "status-left", "L #{metawsm_status}"]);
    source(&env, &conf);
    assert_eq!(option(&env, "status-left"), format!("L {job}"));
    assert_eq!(option(&env, "status-right"), "plain right");
    assert_eq!(hook_lines(&env, "pane-died").len(), 2, "still one each");

    // Reloading with another database swaps the segment in place (never two).
    env.tmux(&["set-option", "-g", "status-left", &left_before]);
    env.tmux(&["set-option", "-g", "status-right", "#{metawsm_status} R"]);
    source(&env, &conf);
    let other_db = env.path("other/state.db");
    env.tmux(&[
        "set-option",
        "-g",
        "@metawsm-db",
        &other_db.to_string_lossy(),
    ]);
    env.tmux(&[
        "run-shell",
        &repo().join("tmux/metawsm.tmux").to_string_lossy(),
    ]);
    let job2 = option(&env, "@metawsm-job");
    assert_ne!(job2, job);
    assert_eq!(option(&env, "status-right"), format!("{job2} R"));
    assert_eq!(
        hook_lines(&env, "session-closed").len(),
        1,
        "hooks replaced, not added"
    );
}

#[test]
fn status_auto_off_adds_no_segment_but_still_registers_hooks() {
    let env = Env::new();
    env.tmux(&["set-option", "-g", "status-right", "X"]);
    let left = option(&env, "status-left");
    load_plugin(&env, &["set -g @metawsm-status-auto off"]);
    assert_eq!(option(&env, "status-right"), "X");
    assert_eq!(option(&env, "status-left"), left);
    assert_eq!(hook_lines(&env, "pane-died").len(), 1);
    // A placeholder the user wrote is still honoured.
    env.tmux(&["set-option", "-g", "status-right", "#{metawsm_status}"]);
    source(&env, &env.path("plugin.conf"));
    assert_eq!(option(&env, "status-right"), option(&env, "@metawsm-job"));
}

// ---------------------------------------------------------------------------------
// 4. Hooks: silent and instant for strangers; queued, never lost, when the lock is busy.
// ---------------------------------------------------------------------------------

fn hook_call(env: &Env, args: &[&str]) -> Duration {
    let mut v = vec!["hook"];
    v.extend_from_slice(args);
    let t = Instant::now();
    let out = env.run(&v);
    let took = t.elapsed();
    assert_eq!(out.status.code(), Some(0), "hook {args:?} exit code");
    assert!(
        out.stdout.is_empty(),
        "hook {args:?} printed {:?}",
        out.stdout
    );
    assert!(
        out.stderr.is_empty(),
        "hook {args:?} stderr {:?}",
        out.stderr
    );
    took
}

#[test]
fn hooks_for_strangers_return_at_once_and_busy_hooks_queue_their_events() {
    let env = Env::new();
    let state_dir = env.db.parent().expect("state dir").to_path_buf();
    // No DB yet: nothing is ours, nothing is created.
    for args in [
        &["pane-died", "%99", "stranger", "1"][..],
        &["pane-exited", "%99"],
        &["session-closed", "stranger"],
        &["alert-silence", "stranger"],
        &["client-attached"],
        &["no-such-event", "x"],
        &[],
    ] {
        let took = hook_call(&env, args);
        assert!(took < Duration::from_secs(1), "{args:?} took {took:?}");
    }
    assert!(!state_dir.exists(), "hook created {}", state_dir.display());

    env.start("ours", &["sleep", "1000"]);
    let pane = env.show("ours")["agents"][0]["pane_id"]
        .as_str()
        .expect("pane id")
        .to_string();
    // DB exists, event is not ours: one indexed query, nothing queued.
    let took = hook_call(&env, &["pane-died", "%9999", "stranger", "1"]);
    println!("stranger hook with a DB: {took:?}");
    assert!(took < Duration::from_secs(1));
    assert!(env.sql("SELECT id FROM inbox").is_empty());

    // Lock busy: our events are queued within the bounded wait and the hook exits 0.
    let held = lock_file(&env);
    held.lock().expect("hold the state lock");
    let calls: [&[&str]; 3] = [
        &["pane-died", "%4242", "ours", "7"],
        &["pane-exited", &pane],
        &["session-closed", "ours"],
    ];
    for args in calls {
        let took = hook_call(&env, args);
        assert!(took < Duration::from_secs(3), "{args:?} took {took:?}");
    }
    let inbox = env.sql("SELECT event, run_id, args FROM inbox ORDER BY id");
    assert_eq!(
        inbox,
        vec![
            vec![
                "pane-died".to_string(),
                "ours".into(),
                "%4242 ours 7".into()
            ],
            vec!["pane-exited".into(), "ours".into(), pane.clone()],
            vec!["session-closed".into(), "ours".into(), "ours".into()],
        ]
    );
    held.unlock().expect("release");
    drop(held);

    // The next tick consumes every queued event: none lost.
    env.tick();
    assert!(env.sql("SELECT id FROM inbox").is_empty(), "inbox drained");
    assert_eq!(hook_events(&env, "ours", "pane-died").len(), 1);
    assert_eq!(hook_events(&env, "ours", "pane-exited").len(), 1);
    assert_eq!(hook_events(&env, "ours", "session-closed").len(), 1);
    assert_eq!(
        hook_events(&env, "ours", "pane-died")[0]["message"],
        "%4242 ours 7"
    );

    // Lock free: the hook ticks itself and the event is logged before it returns.
    hook_call(&env, &["pane-exited", &pane]);
    assert_eq!(hook_events(&env, "ours", "pane-exited").len(), 2);
    assert!(env.sql("SELECT id FROM inbox").is_empty());
}

// ---------------------------------------------------------------------------------
// 5. Status errors never break the bar; text from options is escaped.
// ---------------------------------------------------------------------------------

fn status_out(env: &Env, args: &[&str]) -> String {
    let mut v = vec!["status"];
    v.extend_from_slice(args);
    let out = env.run(&v);
    assert_eq!(out.status.code(), Some(0), "status {args:?} must exit 0");
    let s = String::from_utf8_lossy(&out.stdout).into_owned();
    assert_eq!(s.lines().count(), 1, "one line: {s:?}");
    s.trim_end().to_string()
}

#[test]
fn status_errors_print_markers_and_exit_zero() {
    // Invalid policy (bad JSON, then a bad value).
    let env = Env::new();
    fs::write(&env.policy, "{ not json").expect("policy");
    assert_eq!(status_out(&env, &[]), "#[fg=red]metawsm:!policy#[default]");
    assert_eq!(status_out(&env, &["--format", "plain"]), "metawsm:!policy");
    let j: Value = serde_json::from_str(&status_out(&env, &["--format", "json"])).expect("json");
    assert_eq!(j["error"], "metawsm:!policy");
    env.write_policy(&json!({"health": {"idle_seconds": -3}}));
    assert_eq!(status_out(&env, &["--format", "plain"]), "metawsm:!policy");

    // DB path is a directory.
    let env = Env::new();
    fs::create_dir_all(&env.db).expect("mkdir db");
    assert_eq!(status_out(&env, &[]), "#[fg=red]metawsm:!db#[default]");
    assert_eq!(status_out(&env, &["--format", "plain"]), "metawsm:!db");

    // DB is garbage: marker, and the file is left exactly as it was.
    let env = Env::new();
    fs::create_dir_all(env.db.parent().expect("dir")).expect("mkdir");
    let garbage: Vec<u8> = (0..8192u32).map(|i| (i * 31 % 251) as u8).collect();
    fs::write(&env.db, &garbage).expect("garbage");
    assert_eq!(status_out(&env, &["--format", "plain"]), "metawsm:!db");
    assert_eq!(status_out(&env, &[]), "#[fg=red]metawsm:!db#[default]");
    assert_eq!(fs::read(&env.db).expect("read"), garbage, "DB untouched");

    // No DB at all: empty segment (nothing registered), still exit 0.
    let env = Env::new();
    assert_eq!(status_out(&env, &[]), "");
    assert!(!env.db.exists(), "status never creates the DB");

    // tmux missing from PATH during a due tick: marker, exit 0.
    env.start("r", &["sleep", "1000"]);
    set_meta(&env, "last_full_tick", "0");
    let empty = env.path("emptybin");
    fs::create_dir_all(&empty).expect("mkdir");
    let out = env
        .cmd(&["status", "--format", "plain"])
        .env("PATH", &empty)
        .output()
        .expect("status");
    assert_eq!(out.status.code(), Some(0));
    let s = String::from_utf8_lossy(&out.stdout);
    assert!(s.contains("metawsm:!tmux"), "missing tmux marker: {s:?}");
}

#[test]
fn icon_options_are_escaped_in_the_segment_and_in_a_real_client_status_line() {
    let env = Env::new();
    let pwned = env.path("pwned");
    let icon = format!("#(touch {})", pwned.display());
    load_plugin(
        &env,
        &[
            &format!("set -g @metawsm-icon-ok '{icon}'"),
            "set -g status-interval 1",
            "set -g status-right-length 200",
            "set -g status-right '[#{metawsm_status}]'",
        ],
    );
    env.start("iconrun", &["sleep", "1000"]);
    env.tick();
    let seg = status_out(&env, &["--no-tick"]);
    // `#` doubled: tmux shows the text, never runs it.
    assert_eq!(seg, format!("#[fg=green]#{icon}1#[default]"));
    assert!(!seg.replace("##", "").contains("#("), "no live #(): {seg}");

    // A real client: an outer test server runs `tmux attach` to this one in a pane; the
    // inner client's status line is then visible with capture-pane on the outer server.
    let outer = env.attach_client();
    let want = format!("[{icon}1]");
    let bar = wait_for(
        "the client's bar to show the segment",
        Duration::from_secs(30),
        || {
            let screen = outer.tmux_out(&["capture-pane", "-p", "-t", "=view:"]);
            let last = screen.lines().rfind(|l| !l.trim().is_empty())?.to_string();
            last.contains(&want).then_some(last)
        },
    );
    assert!(!clients(&env).is_empty(), "a client is attached");
    // Several status-interval refreshes later the icon has still never run.
    std::thread::sleep(Duration::from_millis(2500));
    assert!(
        !pwned.exists(),
        "#() in an icon option was executed; bar: {bar}"
    );
    println!("client bar: {bar}");
}

// ---------------------------------------------------------------------------------
// 6. alert-silence: fires for a silent agent and is re-armed after each handling.
// ---------------------------------------------------------------------------------

#[test]
fn alert_silence_fires_the_hook_and_is_rearmed_with_kill_session_c() {
    let env = Env::with_policy(fast_policy(json!({
        "health": {"idle_seconds": 1, "activity_stalled_seconds": 2},
        // Stalled must not lead to a restart (a new session would reset the latch).
        "operator": {"unhealthy_confirmations": 100000}
    })));
    let user_log = env.path("user-alerts.log");
    // A user's own alert-silence hook at [0] logs every alert, for ours and for a control
    // session that nobody re-arms.
    load_plugin(
        &env,
        &[&format!(
            "set-hook -g alert-silence[0] 'run-shell -b \"echo #{{hook_session_name}} >> {}\"'",
            user_log.display()
        )],
    );
    for c in [
        vec!["new-session", "-d", "-s", "control", "sleep 100000"],
        vec!["set-option", "-t", "=control:", "silence-action", "any"],
        vec![
            "set-option",
            "-w",
            "-t",
            "=control:",
            "monitor-silence",
            "2",
        ],
    ] {
        assert!(env.tmux(&c).status.success(), "{c:?}");
    }
    env.start("quiet", &["sleep", "100000"]);
    assert_eq!(
        env.tmux_out(&["show-options", "-wv", "-t", "=quiet:", "monitor-silence"])
            .trim(),
        "2",
        "monitor-silence = health.activity_stalled_seconds"
    );
    // Three alerts for the same unattached session: only possible if re-armed each time.
    let alerts = wait_for("three alert-silence hooks", Duration::from_secs(40), || {
        let v = hook_events(&env, "quiet", "alert-silence");
        (v.len() >= 3).then_some(v)
    });
    assert_eq!(alerts[0]["message"], "quiet", "hook_session_name passed");
    let count = |user: &str, s: &str| user.lines().filter(|l| *l == s).count();
    let user = wait_for(
        "the user's hook to log both sessions",
        Duration::from_secs(20),
        || {
            let user = fs::read_to_string(&user_log).unwrap_or_default();
            (count(&user, "quiet") >= 3 && count(&user, "control") >= 1).then_some(user)
        },
    );
    // The control session went silent first and longer, yet alerted once: it latched.
    assert_eq!(
        count(&user, "control"),
        1,
        "without re-arming an alert latches: {user:?}"
    );
    assert!(
        env.health("quiet", "agent") == "stalled",
        "silent agent judged stalled: {}",
        env.health("quiet", "agent")
    );
    assert_eq!(clients(&env), "");
}

// ---------------------------------------------------------------------------------
// 7. doctor: plugin checks, and only FAIL lines make exit 1.
// ---------------------------------------------------------------------------------

fn doctor(env: &Env) -> (i32, String) {
    let out = env.run(&["doctor"]);
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let code = out.status.code().expect("exit code");
    assert_eq!(
        code == 1,
        text.lines().any(|l| l.starts_with("FAIL")),
        "exit {code} must match FAIL lines:\n{text}"
    );
    assert!(code == 0 || code == 1, "exit {code}");
    (code, text)
}

#[test]
fn doctor_reports_plugin_hooks_segment_and_timer() {
    // A fresh server without the plugin: warnings only, exit 0.
    let env = Env::new();
    let (code, text) = doctor(&env);
    assert_eq!(code, 0, "{text}");
    assert!(text.contains("warn plugin: not loaded"), "{text}");

    // Plugin loaded.
    load_plugin(&env, &[]);
    env.start("doc", &["sleep", "1000"]);
    let (code, text) = doctor(&env);
    assert_eq!(code, 0, "{text}");
    for want in [
        "ok   plugin: loaded (version ",
        "ok   hooks: registered at index 91",
        "ok   status segment: present",
        "ok   timer: armed",
    ] {
        assert!(text.contains(want), "missing {want:?} in:\n{text}");
    }

    // A theme overwrote status-right: a warning, still exit 0.
    env.tmux(&["set-option", "-g", "status-right", "theme %H:%M"]);
    let (code, text) = doctor(&env);
    assert_eq!(code, 0, "{text}");
    assert!(text.contains("warn status segment"), "{text}");

    // One of our hooks removed: FAIL, exit 1.
    assert!(env
        .tmux(&["set-hook", "-gu", "pane-died[91]"])
        .status
        .success());
    let (code, text) = doctor(&env);
    assert_eq!(code, 1, "{text}");
    assert!(
        text.lines()
            .any(|l| l.starts_with("FAIL hooks:") && l.contains("pane-died")),
        "{text}"
    );
}

// ---------------------------------------------------------------------------------
// The no-client timer is one chain: reloading supersedes, a busy lock only re-arms.
// ---------------------------------------------------------------------------------

#[test]
fn timer_chain_is_never_doubled_and_survives_a_busy_lock() {
    let env = Env::new();
    // A long interval: the real chain never fires during the test, so every tick
    // observed here comes from the `timer` calls below.
    load_plugin(&env, &["set -g @metawsm-interval 3600"]);
    env.start("t", &["sleep", "1000"]);
    let first = meta_i64(&env, "timer_chain").expect("timer_chain after run start");
    // Reloading the plugin arms a new chain; the old one must stop when it fires.
    source(&env, &env.path("plugin.conf"));
    let chain = meta_i64(&env, "timer_chain").expect("timer_chain");
    assert_eq!(chain, first + 1, "reload starts a new chain");
    let due = meta_i64(&env, "timer_next_due").expect("timer_next_due");

    set_meta(&env, "last_full_tick", "0");
    let old = first.to_string();
    let out = env.run(&["timer", "--chain", &old]);
    assert_eq!(out.status.code(), Some(0));
    assert!(out.stdout.is_empty() && out.stderr.is_empty());
    assert_eq!(
        meta_i64(&env, "last_full_tick"),
        Some(0),
        "superseded chain ticked"
    );
    assert_eq!(meta_i64(&env, "timer_chain"), Some(chain));

    // Lock busy for longer than the timer waits: no tick, but the chain is re-armed.
    let held = lock_file(&env);
    held.lock().expect("hold the state lock");
    set_meta(&env, "timer_next_due", "1");
    let cur = chain.to_string();
    let out = env.run(&["timer", "--chain", &cur]);
    assert_eq!(out.status.code(), Some(0));
    assert_eq!(
        meta_i64(&env, "last_full_tick"),
        Some(0),
        "no tick without the lock"
    );
    assert!(
        meta_i64(&env, "timer_next_due").unwrap_or(0) >= due,
        "re-armed while the lock was busy"
    );
    held.unlock().expect("release");
    drop(held);

    // The current chain ticks when due and stays the current chain.
    let out = env.run(&["timer", "--chain", &cur]);
    assert_eq!(out.status.code(), Some(0));
    assert!(
        meta_i64(&env, "last_full_tick").unwrap_or(0) > 0,
        "current chain ticked"
    );
    assert_eq!(meta_i64(&env, "timer_chain"), Some(chain));
}

/// With no @metawsm-bin, METAWSM_BIN, metawsm-tick on PATH or in ~/.local/bin, the entry
/// file runs the repo's own build: the newer of build-release.sh's per-target binary
/// (statically linked on Linux) and cargo's target/release.
#[test]
fn entry_file_runs_the_newest_of_the_repos_own_builds() {
    let env = Env::new();
    let plugin = env.path("plugin");
    fs::create_dir_all(plugin.join("tmux")).expect("plugin dir");
    fs::copy(
        repo().join("tmux/metawsm.tmux"),
        plugin.join("tmux/metawsm.tmux"),
    )
    .expect("copy entry file");
    let home = env.path("home");
    fs::create_dir_all(&home).expect("home");
    let log = env.path("called");
    let fake = |rel: &str, date: &str| {
        let p = plugin.join(rel);
        fs::create_dir_all(p.parent().expect("parent")).expect("build dir");
        write_exec(
            &p,
            &format!("#!/bin/sh\necho \"$0\" >> '{}'\n", log.display()),
        );
        let touched = std::process::Command::new("touch")
            .args(["-d", date])
            .arg(&p)
            .status()
            .expect("touch");
        assert!(touched.success());
    };
    let called = || -> String {
        let _ = fs::remove_file(&log);
        let ok = std::process::Command::new("bash")
            .arg(plugin.join("tmux/metawsm.tmux"))
            .env_clear()
            .env("HOME", &home)
            .env("PATH", "/usr/bin:/bin")
            .env("TMUX", format!("{},1,0", env.sock.display()))
            .status()
            .expect("entry file");
        assert!(ok.success());
        fs::read_to_string(&log)
            .unwrap_or_default()
            .trim()
            .to_string()
    };
    let per_target = "target/x86_64-unknown-linux-gnu/release/metawsm-tick";
    fake(per_target, "2026-01-01 00:00");
    assert!(
        called().ends_with(per_target),
        "only the per-target build: {}",
        called()
    );
    fake("target/release/metawsm-tick", "2026-02-01 00:00");
    let got = called();
    assert!(
        got.ends_with("/target/release/metawsm-tick"),
        "cargo's build is newer: {got}"
    );
    fake(per_target, "2026-03-01 00:00");
    let got = called();
    assert!(
        got.ends_with(per_target),
        "the per-target build is newer: {got}"
    );
}
