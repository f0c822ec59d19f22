//! Issue 6: the reliability suite. Concurrency (16 processes × 100 rounds of mixed
//! commands against one DB), crash safety (SIGKILL of `tick` at random points, 200 times),
//! a bad-input corpus with exact outcomes, and a black-box property test of the policy
//! parser through the real binary. Each test uses its own private tmux server.
//!
//! Scale it up for a soak: `METAWSM_SOAK_ROUNDS` (default 100 rounds per process),
//! `METAWSM_SOAK_KILLS` (default 200 kills), `METAWSM_SOAK_SEED` (random delays; the seed
//! used is printed), `PROPTEST_CASES` (default 256 for the CLI property test: 4 s on 2
//! loaded cores, in parallel with the slower tests of this file).

mod common;

use common::{count_in, fast_policy, which_tmux, write_exec, Env, BIN};
use serde_json::{json, Value};
use std::fs;
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

/// A live agent that prints every second, so the tiny test thresholds keep it healthy.
const CHATTY: &[&str] = &["sh", "-c", "while :; do echo working; sleep 1; done"];

fn env_num(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// One value from the DB through a fresh connection, as a short-lived process would.
fn q_i64(db: &Path, sql: &str) -> i64 {
    let c = rusqlite::Connection::open(db).expect("open db");
    c.busy_timeout(Duration::from_secs(10)).expect("busy");
    c.query_row(sql, [], |r| r.get(0)).expect(sql)
}

fn q_rows(db: &Path, sql: &str) -> Vec<(i64, String, String)> {
    let c = rusqlite::Connection::open(db).expect("open db");
    c.busy_timeout(Duration::from_secs(10)).expect("busy");
    let mut stmt = c.prepare(sql).expect("prepare");
    let rows = stmt
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
        .expect("query");
    rows.map(|r| r.expect("row")).collect()
}

fn integrity(db: &Path) -> String {
    let c = rusqlite::Connection::open(db).expect("open db");
    c.busy_timeout(Duration::from_secs(10)).expect("busy");
    c.query_row("PRAGMA integrity_check", [], |r| r.get(0))
        .expect("integrity_check")
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

fn describe(args: &[&str], out: &Output) -> String {
    format!(
        "{args:?} -> {:?}\nstdout: {}\nstderr: {}",
        out.status,
        text(&out.stdout),
        text(&out.stderr)
    )
}

/// Cooldown after the k-th attempt (1-based), as the policy ladder defines it.
fn cooldown_after(k: i64, base: i64, max: i64) -> i64 {
    (base << (k - 1).clamp(0, 40)).min(max)
}

/// A tiny xorshift: the only randomness the suite needs, reproducible from its seed.
struct Rng(u64);

impl Rng {
    fn new() -> (Rng, u64) {
        let seed = std::env::var("METAWSM_SOAK_SEED")
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or_else(|| {
                std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map(|d| d.as_nanos() as u64)
                    .unwrap_or(1)
            })
            | 1;
        (Rng(seed), seed)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0 % n
    }
}

// ---- concurrency ----------------------------------------------------------------------

#[test]
fn sixteen_processes_hundred_rounds_mixed_commands() {
    let procs = 16;
    let rounds = env_num("METAWSM_SOAK_ROUNDS", 100) as usize;
    // A budget small enough to be spent during the storm, so "attempts == budget" and
    // "exactly one escalation" are really tested, not just "attempts <= budget".
    let (budget, cooldown, cooldown_max) = (2, 1, 1);
    let mut env = Env::with_policy(fast_policy(json!({"operator": {
        "restart_budget": budget,
        "restart_cooldown_seconds": cooldown,
        "restart_cooldown_max_seconds": cooldown_max
    }})));
    env.start("loop", &["sh", "-c", "sleep 0.3; exit 1"]);
    env.start("calm", CHATTY);
    let pane = env.sql("SELECT pane_id FROM agents WHERE run_id = 'loop'")[0][0].clone();
    let calls = env.log_tmux_calls();
    let env = Arc::new(env);
    let escalated = || {
        q_i64(
            &env.db,
            "SELECT count(*) FROM events WHERE run_id = 'loop' AND kind = 'decision' \
             AND to_state = 'escalate_blocked'",
        )
    };
    let failures = Arc::new(Mutex::new(Vec::<String>::new()));
    let done = Arc::new(AtomicBool::new(false));
    let max_attempts = Arc::new(AtomicI64::new(0));

    // Samples the restart counter while the storm runs (fresh connection each time).
    let sampler = {
        let (db, done, max_attempts) = (env.db.clone(), done.clone(), max_attempts.clone());
        thread::spawn(move || {
            let mut samples = 0;
            while !done.load(Ordering::Relaxed) {
                let a = q_i64(
                    &db,
                    "SELECT COALESCE(MAX(restart_attempts), 0) FROM operator_run_states",
                );
                max_attempts.fetch_max(a, Ordering::Relaxed);
                samples += 1;
                thread::sleep(Duration::from_millis(50));
            }
            samples
        })
    };

    let started = Instant::now();
    // After its rounds, the storm goes on until the budget is spent and escalated (on a
    // loaded machine that can take longer than 100 rounds), up to a deadline.
    let spent = Arc::new(AtomicBool::new(false));
    let deadline = started + Duration::from_secs(90);
    let workers: Vec<_> = (0..procs)
        .map(|w| {
            let (env, failures, pane) = (env.clone(), failures.clone(), pane.clone());
            let spent = spent.clone();
            thread::spawn(move || {
                let mut counts = [0usize; 3];
                for r in 0.. {
                    if r >= rounds && (spent.load(Ordering::Relaxed) || Instant::now() > deadline) {
                        break;
                    }
                    let which = (w + r) % 3;
                    counts[which] += 1;
                    let args: Vec<&str> = match which {
                        0 => vec!["status"],
                        1 => vec!["hook", "pane-died", &pane, "loop", "1"],
                        _ => vec!["tick"],
                    };
                    let out = env.run(&args);
                    let err = text(&out.stderr);
                    if !out.status.success()
                        || err.contains("database is locked")
                        || err.contains("panicked")
                    {
                        failures.lock().expect("lock").push(describe(&args, &out));
                    }
                }
                counts
            })
        })
        .collect();
    while !workers.iter().all(|w| w.is_finished()) {
        if escalated() > 0 {
            spent.store(true, Ordering::Relaxed);
        }
        thread::sleep(Duration::from_millis(100));
    }
    let mut totals = [0usize; 3];
    for w in workers {
        let c = w.join().expect("worker thread");
        for i in 0..3 {
            totals[i] += c[i];
        }
    }
    let elapsed = started.elapsed();
    done.store(true, Ordering::Relaxed);
    let samples = sampler.join().expect("sampler");

    let failures = failures.lock().expect("lock");
    assert!(
        failures.is_empty(),
        "{} of {} commands failed; first: {}",
        failures.len(),
        totals.iter().sum::<usize>(),
        failures[0]
    );
    assert_eq!(integrity(&env.db), "ok");

    let attempts = q_i64(
        &env.db,
        "SELECT restart_attempts FROM operator_run_states WHERE run_id = 'loop'",
    );
    let restarts = q_rows(
        &env.db,
        "SELECT at, to_state, message FROM events WHERE run_id = 'loop' AND kind = 'restart' ORDER BY id",
    );
    let peak = max_attempts.load(Ordering::Relaxed);
    eprintln!(
        "concurrency: {procs}×{rounds} = {} commands (status {}, hook {}, tick {}) in {:.1}s, \
         {} restarts, attempts {attempts} (peak sampled {peak} over {samples} samples)",
        totals.iter().sum::<usize>(),
        totals[0],
        totals[1],
        totals[2],
        elapsed.as_secs_f64(),
        restarts.len()
    );
    assert_eq!(attempts, budget, "the budget was spent exactly");
    assert!(peak <= budget, "sampled restart_attempts {peak} > budget");
    assert_eq!(escalated(), 1, "exactly one escalate_blocked decision");
    let respawns = count_in(&calls, "respawn-pane") as i64;
    assert!(
        (1..=attempts).contains(&respawns),
        "{respawns} respawns by tmux for {attempts} attempts"
    );
    assert!(
        restarts.len() as i64 <= budget,
        "{} restarts with budget {budget}: {restarts:?}",
        restarts.len()
    );
    assert_eq!(
        restarts.len() as i64,
        attempts,
        "every attempt has exactly one restart event: {restarts:?}"
    );
    for (k, pair) in restarts.windows(2).enumerate() {
        let gap = pair[1].0 - pair[0].0;
        let need = cooldown_after(k as i64 + 1, cooldown, cooldown_max);
        assert!(
            gap >= need,
            "restarts {} and {} are {gap}s apart, inside the {need}s cooldown: {restarts:?}",
            k + 1,
            k + 2
        );
    }
    // The healthy run was never touched by the storm.
    assert_eq!(env.health("calm", "agent"), "healthy");
    assert_eq!(
        q_i64(
            &env.db,
            "SELECT count(*) FROM events WHERE run_id = 'calm' AND kind = 'restart'"
        ),
        0
    );
}

// ---- crash safety ---------------------------------------------------------------------

/// Every entry: `\n## <time>\n\n` then the bullets (the original metawsm's four, then
/// ours), in order, each on one line.
fn check_changelog(log: &str) -> Vec<(String, String, String)> {
    assert!(
        log.is_empty() || log.starts_with("\n## "),
        "changelog does not start with an entry: {log:?}"
    );
    let mut entries = Vec::new();
    for chunk in log.split("\n## ").skip(1) {
        let lines: Vec<&str> = chunk.split('\n').collect();
        let torn = || format!("torn entry: {chunk:?}\nin:\n{log}");
        assert!(lines.len() >= 9, "{}", torn());
        // RFC 3339 with the local offset (`Z` or `±HH:MM`).
        assert!(
            (lines[0].ends_with('Z') && lines[0].len() == 20) || lines[0].len() == 25,
            "{}",
            torn()
        );
        assert_eq!(lines[1], "", "{}", torn());
        let run = lines[2]
            .strip_prefix("- Operator escalation for run `")
            .and_then(|s| s.strip_suffix('`'))
            .unwrap_or_else(|| panic!("{}", torn()));
        let intent = lines[3]
            .strip_prefix("- Intent: `")
            .and_then(|s| s.strip_suffix('`'))
            .unwrap_or_else(|| panic!("{}", torn()));
        let summary = lines[4]
            .strip_prefix("- Summary: ")
            .unwrap_or_else(|| panic!("{}", torn()));
        assert!(lines[5].starts_with("- Requested decision: "), "{}", torn());
        let mut i = 6;
        for optional in ["- Question: ", "- Context: "] {
            if lines[i].starts_with(optional) {
                i += 1;
            }
        }
        assert!(lines[i].starts_with("- Restart attempts: "), "{}", torn());
        assert!(
            lines[i + 1].starts_with("- Answer with: `") && lines[i + 1].ends_with('`'),
            "{}",
            torn()
        );
        // The entry ends with its newline: nothing after the last bullet but the split.
        assert_eq!(lines.len(), i + 3, "{}", torn());
        assert_eq!(lines[i + 2], "", "{}", torn());
        entries.push((run.to_string(), intent.to_string(), summary.to_string()));
    }
    entries
}

fn guidance_file(env: &Env, question: &str) {
    let dir = env.ws.join(".metawsm");
    fs::create_dir_all(&dir).expect("mkdir");
    let tmp = dir.join("guidance-request.json.tmp");
    fs::write(
        &tmp,
        json!({"run_id": "guided", "agent": "agent", "question": question}).to_string(),
    )
    .expect("write request");
    fs::rename(tmp, dir.join("guidance-request.json")).expect("rename");
}

#[test]
fn sigkill_tick_at_random_points() {
    let kills = env_num("METAWSM_SOAK_KILLS", 200);
    let (mut rng, seed) = Rng::new();
    eprintln!("crash safety: seed {seed} (METAWSM_SOAK_SEED={seed} reproduces the delays)");
    // A restart every second or so for as long as the test runs; alerts every episode.
    let mut env = Env::with_policy(fast_policy(json!({"operator": {
        "unhealthy_confirmations": 1,
        "min_observation_gap_seconds": 0,
        "restart_budget": 100000,
        "restart_cooldown_seconds": 1,
        "restart_cooldown_max_seconds": 1
    }})));
    let ticket = env.ws.join("ttmp/2026/11/25/T-1--crash-safety");
    fs::create_dir_all(&ticket).expect("ticket dir");
    let changelog = ticket.join("changelog.md");
    env.start("loop", &["sh", "-c", "sleep 0.3; exit 1"]);
    env.start("guided", CHATTY);
    let mut episode = 0;
    guidance_file(&env, &format!("Q-{episode}"));
    // Every restart tmux really performs is logged by the wrapper before it runs.
    let calls = env.log_tmux_calls();
    let respawns = || count_in(&calls, "respawn-pane") as i64;

    let attempts = || {
        q_i64(
            &env.db,
            "SELECT restart_attempts FROM operator_run_states WHERE run_id = 'loop'",
        )
    };
    let (mut last, mut killed, mut early, mut finished, mut answered) = (attempts(), 0, 0, 0, 0);
    let started = Instant::now();
    for i in 0..kills {
        // Now and then a human answers, and the agent asks the next question: a new
        // escalation episode, so changelog appends keep happening under the kills.
        if i % 8 == 7
            && q_i64(
                &env.db,
                "SELECT count(*) FROM guidance_requests WHERE run_id = 'guided' AND status = 'pending'",
            ) > 0
        {
            env.ok(&["guide", "guided", "--answer", &format!("A-{episode}")]);
            episode += 1;
            answered += 1;
            guidance_file(&env, &format!("Q-{episode}"));
        }
        let mut child = env
            .cmd(&["tick"])
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn tick");
        thread::sleep(Duration::from_micros(rng.below(30_001)));
        // Mid-tick means the tick held the state lock when it died, not that it was
        // still starting up.
        let held = env.lock_held();
        let _ = child.kill();
        let out = child.wait_with_output().expect("wait");
        match out.status.signal() {
            Some(9) if held => killed += 1,
            Some(9) => early += 1,
            _ => {
                assert!(
                    out.status.success(),
                    "an unkilled tick failed: {}",
                    describe(&["tick"], &out)
                );
                finished += 1;
            }
        }
        // An attempt is counted before tmux runs: whatever the kill interrupted, tmux
        // never respawned more often than the DB has attempts for. (The log first: an
        // in-flight wrapper can only add a respawn whose attempt is already counted.)
        let done = respawns();
        let now = attempts();
        assert!(
            done <= now,
            "{done} respawns by tmux but {now} restart attempts recorded, after kill {i}"
        );
        last = now;
        if i % 50 == 49 {
            assert_eq!(integrity(&env.db), "ok", "after kill {i}");
        }
        // Every fourth round a tick runs to completion, so the scenario moves on
        // (agents die, get restarted, questions get escalated) however slow the machine.
        if i % 4 == 3 {
            env.tick();
        }
    }
    assert_eq!(integrity(&env.db), "ok");
    // The next tick completes normally and reports both runs.
    let v = env.tick_json();
    let runs: Vec<&str> = v["runs"]
        .as_array()
        .expect("runs")
        .iter()
        .filter_map(|r| r["run_id"].as_str())
        .collect();
    assert!(runs.contains(&"loop") && runs.contains(&"guided"), "{v}");
    assert!(v["tmux_error"].is_null(), "{v}");
    assert!(attempts() >= last);

    let log = fs::read_to_string(&changelog).unwrap_or_default();
    let entries = check_changelog(&log);
    let mut seen = std::collections::HashSet::new();
    for (run, intent, summary) in &entries {
        assert!(
            seen.insert((run.clone(), intent.clone(), summary.clone())),
            "duplicated changelog entry for one episode: {run} {intent} {summary}\n{log}"
        );
    }
    let guided = entries.iter().filter(|e| e.0 == "guided").count();
    let restarts = q_i64(
        &env.db,
        "SELECT count(*) FROM events WHERE run_id = 'loop' AND kind = 'restart'",
    );
    eprintln!(
        "crash safety: {kills} SIGKILLs in {:.1}s: {killed} landed mid-tick (lock held), \
         {early} before the lock, {finished} ticks had already finished; {restarts} restarts \
         ({} respawns by tmux, attempts {}); {answered} questions answered, {} changelog \
         entries ({guided} guidance episodes)",
        started.elapsed().as_secs_f64(),
        respawns(),
        attempts(),
        entries.len()
    );
    assert!(killed > 0, "no kill landed inside a tick");
    assert!(restarts > 0, "the crash loop was never restarted");
    assert!(guided > 0, "no guidance escalation reached the changelog");
    // At most once per episode: a kill between the state commit and the append may lose
    // an entry, never repeat one.
    assert!(
        guided <= episode + 1,
        "{guided} entries for {} episodes",
        episode + 1
    );
}

/// Regression: the reason of a stalled agent carries its age, which grows every tick;
/// the alert latch used to see a new alert each time (a changelog entry per tick).
#[test]
fn stalled_agent_past_its_budget_escalates_once() {
    let env = Env::with_policy(fast_policy(json!({
        "health": {"idle_seconds": 1, "activity_stalled_seconds": 2},
        "operator": {
            "unhealthy_confirmations": 1,
            "min_observation_gap_seconds": 0,
            "restart_budget": 1,
            "restart_cooldown_seconds": 1,
            "restart_cooldown_max_seconds": 1
        }
    })));
    let ticket = env.ws.join("ttmp/T-1--stalled");
    fs::create_dir_all(&ticket).expect("ticket dir");
    env.start("quiet", &["sleep", "1000000"]);
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut blocked_ticks = 0;
    while blocked_ticks < 6 {
        assert!(Instant::now() < deadline, "never escalated");
        let out = env.tick();
        if out.contains(" quiet escalate_blocked ") {
            blocked_ticks += 1;
        }
        thread::sleep(Duration::from_millis(600));
    }
    let log = fs::read_to_string(ticket.join("changelog.md")).expect("changelog");
    let entries = check_changelog(&log);
    assert_eq!(entries.len(), 1, "one entry per episode:\n{log}");
    assert!(entries[0].2.contains("no recent activity"), "{log}");
}

// ---- bad input: policy files --------------------------------------------------------------

fn policy_corpus() -> Vec<(String, Vec<u8>, String)> {
    let mut c: Vec<(&str, String, &str)> = vec![
        ("empty", "".into(), "file is empty"),
        ("blank", " \n\t\n".into(), "file is empty"),
        (
            "truncated",
            "{".into(),
            "invalid JSON at line 1 column 1: EOF while parsing an object",
        ),
        (
            "trailing-comma",
            "{\n  \"version\": 2,\n}".into(),
            "invalid JSON at line 3 column 1: trailing comma",
        ),
        ("array", "[1]".into(), "top level must be a JSON object"),
        ("unknown-top", r#"{"foo":1}"#.into(), "foo: unknown key"),
        (
            "unknown-operator",
            r#"{"operator":{"restat_budget":3}}"#.into(),
            "operator.restat_budget: unknown key",
        ),
        (
            "unknown-llm",
            r#"{"operator":{"llm":{"modle":"off"}}}"#.into(),
            "operator.llm.modle: unknown key",
        ),
        (
            "unknown-notify",
            r#"{"operator":{"notify":{"sound":true}}}"#.into(),
            "operator.notify.sound: unknown key",
        ),
        (
            "operator-not-object",
            r#"{"operator":"x"}"#.into(),
            "operator must be an object",
        ),
        (
            "version-string",
            r#"{"version":"2"}"#.into(),
            "version must be an integer",
        ),
        (
            "version-zero",
            r#"{"version":0}"#.into(),
            "version must be > 0",
        ),
        (
            "pattern-number",
            r#"{"tmux":{"session_pattern":5}}"#.into(),
            "tmux.session_pattern must be a string",
        ),
        (
            "pattern-blank",
            r#"{"tmux":{"session_pattern":" "}}"#.into(),
            "tmux.session_pattern cannot be empty",
        ),
        (
            "idle-bool",
            r#"{"health":{"idle_seconds":true}}"#.into(),
            "health.idle_seconds must be an integer",
        ),
        (
            "idle-zero",
            r#"{"health":{"idle_seconds":0}}"#.into(),
            "health.idle_seconds must be > 0",
        ),
        (
            "activity-negative",
            r#"{"health":{"activity_stalled_seconds":-1}}"#.into(),
            "health.activity_stalled_seconds must be > 0",
        ),
        (
            "progress-huge",
            r#"{"health":{"progress_stalled_seconds":31536001}}"#.into(),
            "health.progress_stalled_seconds must be <= 31536000",
        ),
        (
            "idle-over-activity",
            r#"{"health":{"idle_seconds":901}}"#.into(),
            "health.activity_stalled_seconds must be >= health.idle_seconds",
        ),
        (
            "confirmations-string",
            r#"{"operator":{"unhealthy_confirmations":"2"}}"#.into(),
            "operator.unhealthy_confirmations must be an integer",
        ),
        (
            "confirmations-zero",
            r#"{"operator":{"unhealthy_confirmations":0}}"#.into(),
            "operator.unhealthy_confirmations must be > 0",
        ),
        (
            "budget-zero",
            r#"{"operator":{"restart_budget":0}}"#.into(),
            "operator.restart_budget must be > 0",
        ),
        (
            "budget-float",
            r#"{"operator":{"restart_budget":3.5}}"#.into(),
            "operator.restart_budget must be an integer",
        ),
        (
            "budget-i64-max",
            r#"{"operator":{"restart_budget":9223372036854775807}}"#.into(),
            "operator.restart_budget must be <= 31536000",
        ),
        (
            "cooldown-zero",
            r#"{"operator":{"restart_cooldown_seconds":0}}"#.into(),
            "operator.restart_cooldown_seconds must be > 0",
        ),
        (
            "cooldown-max-negative",
            r#"{"operator":{"restart_cooldown_max_seconds":-5}}"#.into(),
            "operator.restart_cooldown_max_seconds must be > 0",
        ),
        (
            "cooldown-over-max",
            r#"{"operator":{"restart_cooldown_seconds":901}}"#.into(),
            "operator.restart_cooldown_max_seconds must be >= operator.restart_cooldown_seconds",
        ),
        (
            "stale-zero",
            r#"{"operator":{"stale_run_age_seconds":0}}"#.into(),
            "operator.stale_run_age_seconds must be > 0",
        ),
        (
            "gap-negative",
            r#"{"operator":{"min_observation_gap_seconds":-1}}"#.into(),
            "operator.min_observation_gap_seconds must be >= 0",
        ),
        (
            "reset-huge",
            r#"{"operator":{"healthy_reset_seconds":31536001}}"#.into(),
            "operator.healthy_reset_seconds must be <= 31536000",
        ),
        (
            "interval-zero",
            r#"{"operator":{"tick_interval_seconds":0}}"#.into(),
            "operator.tick_interval_seconds must be > 0",
        ),
        (
            "interval-null",
            r#"{"operator":{"tick_interval_seconds":null}}"#.into(),
            "operator.tick_interval_seconds must be an integer",
        ),
        (
            "llm-not-object",
            r#"{"operator":{"llm":null}}"#.into(),
            "operator.llm must be an object",
        ),
        (
            "mode-unknown",
            r#"{"operator":{"llm":{"mode":"sometimes"}}}"#.into(),
            "operator.llm.mode must be off|assist|auto",
        ),
        (
            "mode-number",
            r#"{"operator":{"llm":{"mode":1}}}"#.into(),
            "operator.llm.mode must be a string",
        ),
        (
            "provider-unknown",
            r#"{"operator":{"llm":{"provider":"gpt"}}}"#.into(),
            "operator.llm.provider must be codex|claude|command|metawsm",
        ),
        (
            "command-blank",
            r#"{"operator":{"llm":{"command":"  "}}}"#.into(),
            "operator.llm.command cannot be empty",
        ),
        (
            "command-array",
            r#"{"operator":{"llm":{"command":["codex"]}}}"#.into(),
            "operator.llm.command must be a string",
        ),
        (
            "args-string",
            r#"{"operator":{"llm":{"args":"-q"}}}"#.into(),
            "operator.llm.args must be an array of strings",
        ),
        (
            "args-empty-item",
            r#"{"operator":{"llm":{"args":["--json",""]}}}"#.into(),
            "operator.llm.args items cannot be empty",
        ),
        (
            "model-bool",
            r#"{"operator":{"llm":{"model":false}}}"#.into(),
            "operator.llm.model must be a string",
        ),
        (
            "timeout-zero",
            r#"{"operator":{"llm":{"timeout_seconds":0}}}"#.into(),
            "operator.llm.timeout_seconds must be > 0",
        ),
        (
            "max-tokens-zero",
            r#"{"operator":{"llm":{"max_tokens":0}}}"#.into(),
            "operator.llm.max_tokens must be > 0",
        ),
        (
            "confidence-high",
            r#"{"operator":{"llm":{"min_confidence":1.01}}}"#.into(),
            "operator.llm.min_confidence must be between 0 and 1",
        ),
        (
            "confidence-string",
            r#"{"operator":{"llm":{"min_confidence":"0.5"}}}"#.into(),
            "operator.llm.min_confidence must be a number",
        ),
        (
            "llm-interval-negative",
            r#"{"operator":{"llm":{"min_interval_seconds":-1}}}"#.into(),
            "operator.llm.min_interval_seconds must be >= 0",
        ),
        (
            "notify-command-number",
            r#"{"operator":{"notify":{"command":5}}}"#.into(),
            "operator.notify.command must be a string or an array of strings",
        ),
        (
            "notify-command-empty-item",
            r#"{"operator":{"notify":{"command":["notify-send",""]}}}"#.into(),
            "operator.notify.command items cannot be empty",
        ),
        (
            "tmux-message-string",
            r#"{"operator":{"notify":{"tmux_message":"yes"}}}"#.into(),
            "operator.notify.tmux_message must be a boolean",
        ),
        (
            "bell-number",
            r#"{"operator":{"notify":{"bell":1}}}"#.into(),
            "operator.notify.bell must be a boolean",
        ),
        (
            "icon-too-long",
            format!(r#"{{"status":{{"icon_ok":"{}"}}}}"#, "x".repeat(33)),
            "status.icon_ok must be at most 32 characters without control characters",
        ),
        (
            "color-number",
            r#"{"status":{"color_ok":1}}"#.into(),
            "status.color_ok must be a string",
        ),
        (
            "color-control",
            r#"{"status":{"color_blocked":"red\n"}}"#.into(),
            "status.color_blocked must be at most 32 characters without control characters",
        ),
        (
            "status-unknown",
            r#"{"status":{"icon":"x"}}"#.into(),
            "status.icon: unknown key",
        ),
    ];
    let mut out: Vec<(String, Vec<u8>, String)> = c
        .drain(..)
        .map(|(n, t, m)| (n.to_string(), t.into_bytes(), m.to_string()))
        .collect();
    // 10 MB of valid-looking JSON: refused by size before it is read.
    let mut big = b"{\"version\":2,\"pad\":\"".to_vec();
    big.resize(10 * 1024 * 1024 - 2, b'x');
    big.extend_from_slice(b"\"}");
    out.push((
        "ten-megabytes".into(),
        big,
        "file is too large (10485760 bytes, limit 1048576)".into(),
    ));
    out.push((
        "not-utf8".into(),
        b"{\"version\":\xff}".to_vec(),
        "file is not valid UTF-8 (at byte 11)".into(),
    ));
    out
}

#[test]
fn malformed_policies_exit_2_naming_the_field() {
    let env = Env::new();
    let corpus = policy_corpus();
    assert!(corpus.len() >= 30, "{}", corpus.len());
    for (name, bytes, message) in &corpus {
        let file = env.path(&format!("{name}.json"));
        fs::write(&file, bytes).expect("write policy");
        let shown = format!("~/{name}.json");
        let expected = format!("metawsm-tick: policy {shown}: {message}\n");

        let file_arg = file.to_string_lossy().into_owned();
        let out = env.run(&["policy", "check", &file_arg]);
        let args = ["policy", "check", name.as_str()];
        assert_eq!(out.status.code(), Some(2), "{}", describe(&args, &out));
        assert_eq!(text(&out.stderr), expected, "{}", describe(&args, &out));
        assert!(out.stdout.is_empty(), "{}", describe(&args, &out));

        // The same file as the policy of a tick: refused the same way, nothing created.
        let out = env.run(&["--policy", &file_arg, "tick"]);
        let args = ["--policy", name.as_str(), "tick"];
        assert_eq!(out.status.code(), Some(2), "{}", describe(&args, &out));
        assert_eq!(text(&out.stderr), expected, "{}", describe(&args, &out));
        assert!(!env.db.exists(), "a tick with a bad policy created the DB");
    }
    // The status bar never fails: it shows a marker instead.
    let file = env.path("budget-zero.json");
    let out = env.run(&[
        "--policy",
        &file.to_string_lossy(),
        "status",
        "--format",
        "plain",
    ]);
    assert!(out.status.success(), "{}", describe(&["status"], &out));
    assert_eq!(text(&out.stdout), "metawsm:!policy\n");
}

// ---- bad input: signal files --------------------------------------------------------------

#[test]
fn malformed_and_oversized_signal_files_are_recorded_not_fatal() {
    let env = Env::new();
    env.start("sig", CHATTY);
    let root = env.ws.canonicalize().expect("ws");
    let dir = root.join(".metawsm");
    fs::create_dir_all(&dir).expect("mkdir");
    let over = vec![b' '; (1 << 20) + 1];
    let cases: Vec<(&str, Vec<u8>, String)> = vec![
        (
            "guidance-request.json",
            b"{".to_vec(),
            "invalid JSON: EOF while parsing an object at line 1 column 1".into(),
        ),
        (
            "guidance-request.json",
            b"[]".to_vec(),
            "not a JSON object".into(),
        ),
        (
            "guidance-request.json",
            b"{}".to_vec(),
            "question is missing or blank".into(),
        ),
        (
            "guidance-request.json",
            br#"{"question":"   "}"#.to_vec(),
            "question is missing or blank".into(),
        ),
        (
            "guidance-request.json",
            br#"{"question":3}"#.to_vec(),
            "question must be a string".into(),
        ),
        (
            "guidance-request.json",
            br#"{"question":"q","agent":5}"#.to_vec(),
            "agent must be a string".into(),
        ),
        (
            "guidance-request.json",
            br#"{"question":"q","run_id":[]}"#.to_vec(),
            "run_id must be a string".into(),
        ),
        (
            "guidance-request.json",
            b"\xff\xfe{}".to_vec(),
            "not UTF-8".into(),
        ),
        (
            "guidance-request.json",
            over.clone(),
            "larger than 1048576 bytes".into(),
        ),
        (
            "implementation-complete.json",
            b"done!".to_vec(),
            "invalid JSON: expected value at line 1 column 1".into(),
        ),
        (
            "implementation-complete.json",
            b"42".to_vec(),
            "not a JSON object".into(),
        ),
        (
            "implementation-complete.json",
            br#"{"summary":{"a":1}}"#.to_vec(),
            "summary must be a string".into(),
        ),
        (
            "implementation-complete.json",
            over,
            "larger than 1048576 bytes".into(),
        ),
    ];
    for (file, bytes, why) in &cases {
        let path = dir.join(file);
        fs::write(&path, bytes).expect("write signal");
        let out = env.run(&["tick"]);
        assert!(out.status.success(), "{}", describe(&["tick", file], &out));
        let last = q_rows(
            &env.db,
            "SELECT id, kind, message FROM events WHERE run_id = 'sig' AND kind = 'signal_invalid' ORDER BY id DESC LIMIT 1",
        );
        let expected = format!("{}: {why}", path.display());
        assert_eq!(
            last.first().map(|r| r.2.as_str()),
            Some(expected.as_str()),
            "{file} {:?}",
            String::from_utf8_lossy(&bytes[..bytes.len().min(40)])
        );
        fs::remove_file(&path).expect("rm");
    }
    // Nothing of it changed the run: still running, no guidance recorded, agent healthy.
    let v = env.show("sig");
    assert_eq!(v["status"], "running", "{v}");
    assert_eq!(env.health("sig", "agent"), "healthy");
    assert_eq!(q_i64(&env.db, "SELECT count(*) FROM guidance_requests"), 0);
    // One event per distinct problem: the same bad file seen again is not logged again
    // (the two blank-question cases give the same message back to back).
    let distinct = 1 + cases
        .windows(2)
        .filter(|w| (w[0].0, &w[0].2) != (w[1].0, &w[1].2))
        .count();
    assert_eq!(
        q_i64(
            &env.db,
            "SELECT count(*) FROM events WHERE kind = 'signal_invalid'"
        ),
        distinct as i64
    );
}

// ---- bad input: tmux missing or gone ------------------------------------------------------

fn agent_state(env: &Env, run: &str) -> (String, String) {
    let r = env.sql(&format!(
        "SELECT status, health FROM agents WHERE run_id = '{run}'"
    ));
    (r[0][0].clone(), r[0][1].clone())
}

fn assert_tmux_unknown(env: &Env, out: &Output, what: &str, before: &(String, String)) {
    assert!(out.status.success(), "{}", describe(&[what], out));
    let stdout = text(&out.stdout);
    assert!(
        stdout
            .lines()
            .next()
            .is_some_and(|l| l.contains(" tmux unknown: ")),
        "{what}: {stdout}"
    );
    assert!(stdout.contains("noop tmux unreachable"), "{what}: {stdout}");
    assert_eq!(
        &agent_state(env, "t"),
        before,
        "{what}: agent state changed"
    );
    assert_eq!(
        q_i64(
            &env.db,
            "SELECT count(*) FROM events WHERE run_id = 't' AND kind IN ('health','restart','stop')"
        ),
        0,
        "{what}: an unknown observation changed health or acted"
    );
    let seg = env.ok(&["status", "--no-tick", "--format", "plain"]);
    assert!(seg.contains("metawsm:!tmux"), "{what}: status {seg:?}");
}

#[test]
fn tmux_missing_or_server_gone_is_unknown_never_dead() {
    let env = Env::new();
    env.start("t", CHATTY);
    env.tick();
    let before = agent_state(&env, "t");
    assert_eq!(before, ("running".to_string(), "healthy".to_string()));

    // 1. No tmux on PATH at all.
    let empty = env.path("empty-path");
    fs::create_dir_all(&empty).expect("mkdir");
    let out = env
        .cmd(&["tick"])
        .env("PATH", &empty)
        .output()
        .expect("tick");
    assert_tmux_unknown(&env, &out, "tmux missing", &before);
    assert!(
        text(&out.stdout).contains("tmux unknown: tmux not found on PATH"),
        "{}",
        text(&out.stdout)
    );

    // 2. The server dies during the tick: tmux is found, but the server is gone by the
    //    time the observation reaches it (the wrapper kills it first).
    let real = which_tmux();
    let wrap = env.path("wrap");
    fs::create_dir_all(&wrap).expect("mkdir");
    write_exec(
        &wrap.join("tmux"),
        &format!(
            "#!/bin/sh\n'{real}' -S '{sock}' kill-server 2>/dev/null\nexec '{real}' \"$@\"\n",
            real = real.display(),
            sock = env.sock.display()
        ),
    );
    let path = format!(
        "{}:{}",
        wrap.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let out = env
        .cmd(&["tick"])
        .env("PATH", &path)
        .output()
        .expect("tick");
    assert_tmux_unknown(&env, &out, "server killed mid-tick", &before);
    assert_eq!(
        env.tmux(&["list-sessions"]).status.code(),
        Some(1),
        "the server should be gone"
    );

    // 3. And it stays gone: later ticks keep saying unknown, never dead.
    for _ in 0..3 {
        let out = env.run(&["tick"]);
        assert_tmux_unknown(&env, &out, "server gone", &before);
    }
}

// ---- bad input: foreign or newer databases ------------------------------------------------

/// The schema version this binary writes, read from a database it creates.
fn supported_schema() -> i64 {
    let env = Env::new();
    env.tick();
    q_i64(&env.db, "PRAGMA user_version")
}

#[test]
fn foreign_or_newer_database_is_refused_and_never_written() {
    let env = Env::new();
    fs::create_dir_all(env.db.parent().expect("parent")).expect("mkdir");
    let junk: Vec<u8> = b"this is not a database\n".repeat(200);
    let newer = {
        let p = env.path("newer.db");
        let c = rusqlite::Connection::open(&p).expect("open");
        c.execute_batch("CREATE TABLE runs(id TEXT); PRAGMA user_version = 99;")
            .expect("schema");
        drop(c);
        fs::read(&p).expect("read")
    };
    let cases: [(&str, &[u8], String); 2] = [
        (
            "not a database",
            &junk,
            format!(
                "metawsm-tick: {} is not a metawsm database (file is not a database)\n",
                env.db.display()
            ),
        ),
        (
            "schema version 99",
            &newer,
            format!(
                "metawsm-tick: database {} has schema version 99, newer than this metawsm-tick \
                 supports ({}); upgrade metawsm-tick\n",
                env.db.display(),
                supported_schema()
            ),
        ),
    ];
    for (what, bytes, message) in cases {
        fs::write(&env.db, bytes).expect("write db");
        let mtime = fs::metadata(&env.db).and_then(|m| m.modified()).ok();
        for args in [
            &["tick"][..],
            &["run", "list"],
            &["log"],
            &[
                "run",
                "start",
                "--ticket",
                "T-1",
                "--workspace",
                &env.ws.to_string_lossy(),
                "--",
                "true",
            ],
        ] {
            let out = env.run(args);
            assert_eq!(
                out.status.code(),
                Some(1),
                "{what}: {}",
                describe(args, &out)
            );
            assert_eq!(
                text(&out.stderr),
                message,
                "{what}: {}",
                describe(args, &out)
            );
        }
        // The status bar and hooks never fail, and never touch the file either.
        let out = env.run(&["status", "--format", "plain"]);
        assert!(
            out.status.success(),
            "{what}: {}",
            describe(&["status"], &out)
        );
        assert_eq!(text(&out.stdout), "metawsm:!db\n", "{what}");
        let out = env.run(&["hook", "pane-died", "%1", "t", "1"]);
        assert!(out.status.success() && out.stdout.is_empty() && out.stderr.is_empty());
        assert_eq!(
            fs::read(&env.db).expect("read"),
            bytes,
            "{what}: file changed"
        );
        assert_eq!(
            fs::metadata(&env.db).and_then(|m| m.modified()).ok(),
            mtime,
            "{what}: file rewritten"
        );
        for side in ["-wal", "-journal"] {
            let p = PathBuf::from(format!("{}{side}", env.db.display()));
            assert!(
                !p.exists() || fs::metadata(&p).map(|m| m.len()).unwrap_or(0) == 0,
                "{what}: {side} written"
            );
        }
    }
}

// ---- fuzz: the policy parser through the binary -----------------------------------------

mod cli_fuzz {
    use super::*;
    use proptest::prelude::*;

    static KEYS: [&str; 40] = [
        "version",
        "tmux",
        "health",
        "operator",
        "status",
        "session_pattern",
        "idle_seconds",
        "activity_stalled_seconds",
        "progress_stalled_seconds",
        "unhealthy_confirmations",
        "restart_budget",
        "restart_cooldown_seconds",
        "restart_cooldown_max_seconds",
        "stale_run_age_seconds",
        "min_observation_gap_seconds",
        "healthy_reset_seconds",
        "tick_interval_seconds",
        "llm",
        "notify",
        "mode",
        "provider",
        "command",
        "args",
        "model",
        "timeout_seconds",
        "max_tokens",
        "min_confidence",
        "min_interval_seconds",
        "tmux_message",
        "bell",
        "icon_ok",
        "icon_guidance",
        "icon_blocked",
        "icon_done",
        "color_ok",
        "color_guidance",
        "color_blocked",
        "color_done",
        "workspace",
        "bogus",
    ];

    static WORDS: [&str; 7] = ["off", "assist", "auto", "codex", "claude", "command", ""];

    fn key() -> impl Strategy<Value = String> {
        prop_oneof![
            8 => proptest::sample::select(&KEYS[..]).prop_map(str::to_string),
            1 => "\\PC{0,12}",
        ]
    }

    /// JSON trees shaped like policies: real key names, values of every type.
    fn value() -> impl Strategy<Value = Value> {
        let leaf = prop_oneof![
            Just(Value::Null),
            any::<bool>().prop_map(Value::from),
            any::<i64>().prop_map(Value::from),
            (-10i64..100_000).prop_map(Value::from),
            any::<f64>()
                .prop_map(|f| serde_json::Number::from_f64(f).map_or(Value::Null, Value::Number)),
            "\\PC{0,40}".prop_map(Value::from),
            proptest::sample::select(&WORDS[..]).prop_map(Value::from),
        ];
        leaf.prop_recursive(4, 48, 8, |inner| {
            prop_oneof![
                proptest::collection::vec(inner.clone(), 0..4).prop_map(Value::from),
                proptest::collection::btree_map(key(), inner, 0..6)
                    .prop_map(|m| Value::Object(m.into_iter().collect())),
            ]
        })
    }

    /// Text near JSON: a policy-shaped tree, then maybe cut or spliced with junk.
    fn policy_text() -> impl Strategy<Value = Vec<u8>> {
        (
            proptest::collection::btree_map(key(), value(), 0..6),
            0usize..3,
            any::<usize>(),
            proptest::collection::vec(any::<u8>(), 0..8),
        )
            .prop_map(|(m, how, at, junk)| {
                let mut t =
                    serde_json::to_vec(&Value::Object(m.into_iter().collect())).expect("json");
                match how {
                    0 => {}
                    1 => t.truncate(at % (t.len() + 1)),
                    _ => {
                        let at = at % (t.len() + 1);
                        t.splice(at..at, junk);
                    }
                }
                t
            })
    }

    fn config() -> ProptestConfig {
        ProptestConfig {
            cases: super::env_num("PROPTEST_CASES", 256) as u32,
            failure_persistence: None,
            ..ProptestConfig::default()
        }
    }

    proptest! {
        #![proptest_config(config())]

        /// `policy check` answers 0 or 2 with one line naming the problem, never crashes.
        #[test]
        fn policy_check_never_crashes(bytes in policy_text()) {
            let dir = tempfile::tempdir().expect("tmp");
            let file = dir.path().join("p.json");
            fs::write(&file, &bytes).expect("write");
            let out = Command::new(BIN)
                .args(["policy", "check"])
                .arg(&file)
                .env("HOME", dir.path())
                .stdin(Stdio::null())
                .output()
                .expect("run");
            let err = text(&out.stderr);
            match out.status.code() {
                Some(0) => prop_assert!(err.is_empty(), "{}", err),
                Some(2) => {
                    prop_assert!(err.starts_with("metawsm-tick: policy ~/p.json: "), "{}", err);
                    prop_assert_eq!(err.matches('\n').count(), 1, "{}", err);
                }
                other => prop_assert!(false, "exit {:?} for {:?}: {}", other,
                    String::from_utf8_lossy(&bytes), err),
            }
        }
    }
}
