//! Issue 4 end to end: LLM proposals through the detached `__llm-worker`, the strict
//! parser and the deterministic gate, against the fake Codex CLI in tests/fake-llm.
//!
//! Every test runs the real binary against a private tmux server (tests/common) with a
//! `codex` wrapper first on PATH that execs tests/fake-llm/fake-codex with this test's
//! FAKE_LLM_* settings. Processes are found by markers only this test's processes carry
//! (its FAKE_LLM_LOG path in the environment, its database path on the worker's command
//! line), never by name, and only those are ever killed.

mod common;

use common::{fast_policy, wait_for, write_exec, Env};
use serde_json::{json, Value};
use std::fs;
use std::path::PathBuf;
use std::sync::{RwLock, RwLockReadGuard, RwLockWriteGuard};
use std::time::{Duration, Instant};

const FAKE: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fake-llm/fake-codex");

/// Generous for a debug build on a loaded machine, far below any fake's sleep.
const QUICK: Duration = Duration::from_secs(1);

/// Every test holds this shared; the latency measurement takes it exclusively, so its
/// numbers are not this file's own tests competing for the CPU.
static MEASURE: RwLock<()> = RwLock::new(());

fn shared() -> RwLockReadGuard<'static, ()> {
    MEASURE.read().unwrap_or_else(|e| e.into_inner())
}

fn exclusive() -> RwLockWriteGuard<'static, ()> {
    MEASURE.write().unwrap_or_else(|e| e.into_inner())
}

fn merge(a: &mut Value, b: Value) {
    match (a, b) {
        (Value::Object(a), Value::Object(b)) => {
            for (k, v) in b {
                merge(a.entry(k).or_insert(Value::Null), v);
            }
        }
        (a, b) => *a = b,
    }
}

fn sh_quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', r"'\''"))
}

struct Llm {
    env: Env,
    bin: PathBuf,
    log: PathBuf,
    pidfile: PathBuf,
    prompt: PathBuf,
    /// Last field, so released only after Drop killed this test's processes and the
    /// tmux server and temp dir (in `env`) are gone.
    _guard: Guard,
}

enum Guard {
    Shared(#[allow(dead_code)] RwLockReadGuard<'static, ()>),
    Exclusive(#[allow(dead_code)] RwLockWriteGuard<'static, ()>),
}

impl Llm {
    /// The fast test policy, LLM in assist mode talking to the fake `codex` with a 10 s
    /// timeout and one call per run (min_interval 3600), then `policy` merged on top.
    fn new(policy: Value, fake: &[(&str, &str)]) -> Llm {
        Llm::with_guard(policy, fake, Guard::Shared(shared()))
    }

    fn with_guard(policy: Value, fake: &[(&str, &str)], guard: Guard) -> Llm {
        let mut p = fast_policy(json!({"operator": {"llm": {
            "mode": "assist", "timeout_seconds": 10, "min_interval_seconds": 3600
        }}}));
        merge(&mut p, policy);
        let mut env = Env::with_policy(p);
        let bin = env.path("bin");
        fs::create_dir_all(&bin).expect("bin dir");
        env.path_prefix = Some(bin.clone());
        let llm = Llm {
            log: env.path("fake-argv.log"),
            pidfile: env.path("fake.pid"),
            prompt: env.path("fake-prompt.txt"),
            bin,
            env,
            _guard: guard,
        };
        llm.set_fake(fake);
        llm
    }

    /// (Re)writes the `codex` wrapper; the rename makes the switch atomic for a running tick.
    fn set_fake(&self, fake: &[(&str, &str)]) {
        let mut body = String::from("#!/bin/sh\n");
        let files = [
            ("FAKE_LLM_LOG", self.log.to_string_lossy().into_owned()),
            (
                "FAKE_LLM_PIDFILE",
                self.pidfile.to_string_lossy().into_owned(),
            ),
            (
                "FAKE_LLM_PROMPT",
                self.prompt.to_string_lossy().into_owned(),
            ),
        ];
        for (k, v) in files
            .iter()
            .map(|(k, v)| (*k, v.as_str()))
            .chain(fake.iter().copied())
        {
            body.push_str(&format!("export {k}={}\n", sh_quote(v)));
        }
        body.push_str(&format!("exec {} \"$@\"\n", sh_quote(FAKE)));
        let tmp = self.bin.join("codex.tmp");
        write_exec(&tmp, &body);
        fs::rename(&tmp, self.bin.join("codex")).expect("install wrapper");
    }

    fn sleeper(&self, id: &str) {
        self.env.start(id, &["sleep", "100000"]);
    }

    fn dying(&self, id: &str) {
        self.env.start(id, &["sh", "-c", "exit 1"]);
    }

    fn timed(&self, args: &[&str]) -> (String, Duration) {
        let t = Instant::now();
        let out = self.env.ok(args);
        (out, t.elapsed())
    }

    /// A plain `tick` that must not wait for the LLM.
    fn quick_tick(&self) -> String {
        let (out, took) = self.timed(&["tick"]);
        assert!(
            took < QUICK,
            "tick took {took:?} (must never wait for the LLM)"
        );
        out
    }

    fn tick_json(&self, extra: &[&str]) -> Value {
        let mut args = vec!["tick", "--json"];
        args.extend_from_slice(extra);
        serde_json::from_str(&self.env.ok(&args)).expect("tick json")
    }

    fn llm(&self, id: &str) -> Value {
        self.env.show(id)["llm"].clone()
    }

    /// Waits for the run's LLM call to leave `in_flight`; returns the `run show` llm object.
    fn settle(&self, id: &str, limit: Duration) -> Value {
        wait_for(&format!("llm call of {id} to finish"), limit, || {
            let l = self.llm(id);
            (l.is_object() && l["state"] != "in_flight").then_some(l)
        })
    }

    /// Like `settle`, but a run with no call at all (corroborating, cooling down: the
    /// LLM is not asked about those) is settled too.
    fn settle_any(&self, id: &str, limit: Duration) {
        wait_for(&format!("llm call of {id} to finish"), limit, || {
            let l = self.llm(id);
            (!l.is_object() || l["state"] != "in_flight").then_some(())
        });
    }

    fn events(&self, id: &str) -> Vec<Value> {
        let out = self
            .env
            .ok(&["log", "--run", id, "--json", "--limit", "500"]);
        serde_json::from_str::<Vec<Value>>(&out).expect("log json")
    }

    fn invocations(&self) -> Vec<String> {
        fs::read_to_string(&self.log)
            .unwrap_or_default()
            .lines()
            .map(str::to_string)
            .collect()
    }

    fn call_pid(&self, id: &str) -> Option<i32> {
        self.env
            .sql(&format!("SELECT pid FROM llm_calls WHERE run_id = '{id}'"))
            .first()
            .and_then(|r| r[0].parse().ok())
    }

    /// (fake pid, its background child) once the fake wrote them.
    fn fake_pids(&self) -> (i32, i32) {
        wait_for("fake pidfile", Duration::from_secs(5), || {
            let s = fs::read_to_string(&self.pidfile).ok()?;
            let mut it = s.lines().filter_map(|l| l.trim().parse::<i32>().ok());
            Some((it.next()?, it.next()?))
        })
    }

    /// Live workers of this test's database.
    fn workers(&self) -> Vec<i32> {
        let db = self.env.db.to_string_lossy().into_owned();
        live_procs()
            .into_iter()
            .filter(|p| {
                let cmd = cmdline(*p);
                cmd.contains("__llm-worker") && cmd.contains(&db)
            })
            .collect()
    }

    /// Live processes started by this test's fake (they inherit its FAKE_LLM_LOG).
    fn fakes(&self) -> Vec<i32> {
        let marker = format!("FAKE_LLM_LOG={}", self.log.display());
        live_procs()
            .into_iter()
            .filter(|p| environ(*p).contains(&marker))
            .collect()
    }

    fn restarts(&self, id: &str) -> usize {
        self.events(id)
            .iter()
            .filter(|e| e["kind"] == "restart")
            .count()
    }
}

impl Drop for Llm {
    /// Leaves nothing behind even when an assertion failed mid-test; only this test's own
    /// workers and fakes are touched.
    fn drop(&mut self) {
        let workers = self.workers();
        for pid in workers.iter().copied().chain(self.fakes()) {
            let _ = nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(pid),
                nix::sys::signal::Signal::SIGKILL,
            );
        }
        for pid in workers {
            let deadline = Instant::now() + Duration::from_secs(2);
            while !gone(pid) && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(10));
            }
            for dir in call_dirs(pid) {
                let _ = fs::remove_dir_all(dir);
            }
        }
    }
}

fn stat_state(pid: i32) -> Option<String> {
    let s = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    s.get(s.rfind(')')? + 1..)?
        .split_whitespace()
        .next()
        .map(str::to_string)
}

/// Gone or a zombie (a zombie has released everything but its table entry).
fn gone(pid: i32) -> bool {
    stat_state(pid).is_none_or(|s| s == "Z" || s == "X")
}

fn live_procs() -> Vec<i32> {
    fs::read_dir("/proc")
        .expect("/proc")
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse::<i32>().ok())
        .filter(|p| !gone(*p))
        .collect()
}

fn cmdline(pid: i32) -> String {
    fs::read(format!("/proc/{pid}/cmdline"))
        .map(|b| String::from_utf8_lossy(&b).replace('\0', " "))
        .unwrap_or_default()
}

fn environ(pid: i32) -> Vec<String> {
    fs::read(format!("/proc/{pid}/environ"))
        .map(|b| {
            b.split(|c| *c == 0)
                .map(|v| String::from_utf8_lossy(v).into_owned())
                .collect()
        })
        .unwrap_or_default()
}

/// The per-call directories a worker made (`metawsm-llm-<pid>-*` in the temp dir).
fn call_dirs(worker: i32) -> Vec<PathBuf> {
    let prefix = format!("metawsm-llm-{worker}-");
    fs::read_dir(std::env::temp_dir())
        .map(|d| {
            d.flatten()
                .filter(|e| e.file_name().to_string_lossy().starts_with(&prefix))
                .map(|e| e.path())
                .collect()
        })
        .unwrap_or_default()
}

fn run0(report: &Value) -> &Value {
    &report["runs"][0]
}

fn permits(report: &Value, intent: &str) -> bool {
    run0(report)["permitted"]
        .as_array()
        .is_some_and(|a| a.iter().any(|i| i == intent))
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let i = ((p * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len()) - 1;
    sorted[i]
}

// ---- 1. every fake mode ----------------------------------------------------------------

#[test]
fn good_answer_is_stored_and_suggested_in_assist() {
    let t = Llm::new(json!({}), &[("FAKE_LLM_MODE", "good")]);
    t.sleeper("r1");
    let first = t.quick_tick();
    assert!(!first.contains("llm_suggested"), "{first}");

    let l = t.settle("r1", Duration::from_secs(10));
    assert_eq!(l["state"], "done", "{l}");
    assert_eq!(l["error"], Value::Null);
    let p = &l["proposal"];
    assert_eq!(p["intent"], "escalate_blocked");
    assert_eq!(p["target_run"], "r1");
    assert_eq!(p["reason"], "fake says blocked");
    assert_eq!(p["confidence"], 0.9);
    assert_eq!(p["needs_human"], true);

    // Assist shows the suggestion beside the rule's noop, and only suggests.
    let out = t.quick_tick();
    assert!(
        out.contains(
            "r1 noop no deterministic action required decision_source=rule \
             llm_suggested=escalate_blocked reason=fake says blocked"
        ),
        "{out}"
    );
    let r = t.tick_json(&[]);
    assert_eq!(run0(&r)["intent"], "noop");
    assert_eq!(run0(&r)["decision_source"], "rule");
    assert_eq!(
        run0(&r)["llm"],
        "llm_suggested=escalate_blocked reason=fake says blocked"
    );
    assert_eq!(run0(&r)["execute"], false);

    let ev = t.events("r1");
    let llm_ev: Vec<&Value> = ev.iter().filter(|e| e["kind"] == "llm").collect();
    assert_eq!(llm_ev.len(), 1, "{ev:?}");
    assert_eq!(llm_ev[0]["to"], "proposal");
    assert_eq!(llm_ev[0]["source"], "llm");
    // One call for an unchanged decision, however many ticks.
    assert_eq!(t.invocations().len(), 1);

    // The context reached the model on stdin.
    let prompt = fs::read_to_string(&t.prompt).expect("prompt");
    let ctx: Value = prompt
        .lines()
        .skip_while(|l| *l != "Context JSON:")
        .nth(1)
        .and_then(|l| serde_json::from_str(l).ok())
        .expect("context json line");
    assert_eq!(ctx["run_id"], "r1");
    assert_eq!(ctx["status"], "running");
    assert_eq!(ctx["rule"]["intent"], "noop");
    assert_eq!(ctx["permitted"], json!(["noop", "escalate_blocked"]));
    assert_eq!(ctx["agents"][0]["name"], "agent");
}

/// `command` provider: answer on stdout, the last complete JSON object wins.
#[test]
fn command_provider_uses_the_last_complete_object() {
    for (mode, reason) in [
        ("noise", "fake says blocked"),
        ("two", "fake says blocked"),
        ("nested", r#"fake says {"a":{"b":1}} blocked"#),
    ] {
        let t = Llm::new(
            json!({"operator": {"llm": {"provider": "command", "command": "codex"}}}),
            &[("FAKE_LLM_MODE", mode)],
        );
        t.sleeper("r1");
        t.quick_tick();
        let l = t.settle("r1", Duration::from_secs(10));
        assert_eq!(l["state"], "done", "{mode}: {l}");
        assert_eq!(l["proposal"]["intent"], "escalate_blocked", "{mode}");
        assert_eq!(l["proposal"]["reason"], reason, "{mode}");
        // No codex flags for a plain command.
        assert_eq!(t.invocations(), vec![String::new()], "{mode}");
    }
}

/// With codex the output file must hold exactly one object: noise or two objects are errors.
#[test]
fn codex_output_file_must_be_one_object() {
    for mode in ["noise", "two"] {
        let t = Llm::new(json!({}), &[("FAKE_LLM_MODE", mode)]);
        t.sleeper("r1");
        t.quick_tick();
        let l = t.settle("r1", Duration::from_secs(10));
        assert_eq!(l["state"], "error", "{mode}: {l}");
        let e = l["error"].as_str().unwrap_or_default();
        assert!(
            e.starts_with("rejected answer: answer is not a single JSON object"),
            "{mode}: {e}"
        );
        assert_eq!(l["proposal"], Value::Null);
    }
}

#[test]
fn invalid_answers_are_rejected_naming_the_problem() {
    for (mode, fake_extra, want) in [
        (
            "wrongtypes",
            None,
            "rejected answer: confidence must be a number",
        ),
        (
            "disallowed",
            None,
            "rejected answer: disallowed intent \"rm_rf\"",
        ),
        (
            "otherrun",
            None,
            "rejected answer: target_run \"run-other\" is not the run asked (\"r1\")",
        ),
        (
            "good",
            Some(("FAKE_LLM_CONFIDENCE", "1.5")),
            "rejected answer: confidence must be between 0 and 1",
        ),
    ] {
        let mut fake = vec![("FAKE_LLM_MODE", mode)];
        fake.extend(fake_extra);
        let t = Llm::new(json!({}), &fake);
        t.sleeper("r1");
        t.quick_tick();
        let l = t.settle("r1", Duration::from_secs(10));
        assert_eq!(l["state"], "error", "{mode}: {l}");
        assert_eq!(l["error"], want, "{mode}");
        assert_eq!(l["proposal"], Value::Null, "{mode}");
        let r = t.tick_json(&[]);
        assert_eq!(run0(&r)["llm"], Value::Null, "{mode}");
        assert_eq!(run0(&r)["decision_source"], "rule", "{mode}");
        let ev = t.events("r1");
        assert!(
            ev.iter().any(|e| e["kind"] == "llm"
                && e["to"] == "error"
                && e["message"] == format!("error: {want}")),
            "{mode}: {ev:?}"
        );
    }
}

#[test]
fn hostile_reason_is_sanitised_everywhere() {
    // Auto mode, so the hostile reason also becomes the decision's reason (the LLM may
    // escalate a run the rules see as noop) and travels into events and alerts.
    let t = Llm::new(
        json!({"operator": {"llm": {"mode": "auto"}}}),
        &[("FAKE_LLM_MODE", "hostile")],
    );
    t.sleeper("r1");
    t.quick_tick();
    let l = t.settle("r1", Duration::from_secs(10));
    assert_eq!(l["state"], "done", "{l}");
    assert_eq!(l["proposal"]["reason"], "pwned red");

    let plain = t.quick_tick();
    let json_out = t.env.ok(&["tick", "--json"]);
    let r: Value = serde_json::from_str(&json_out).expect("json");
    assert_eq!(run0(&r)["intent"], "escalate_blocked");
    assert_eq!(run0(&r)["decision_source"], "llm");
    assert!(plain.contains("pwned red"), "{plain}");
    let show_json = t.env.ok(&["run", "show", "r1", "--json"]);
    let show_text = t.env.ok(&["run", "show", "r1"]);
    let log_json = t.env.ok(&["log", "--run", "r1", "--json"]);
    let log_text = t.env.ok(&["log", "--run", "r1"]);
    let status_plain = t.env.ok(&["status", "--format", "plain", "--no-tick"]);
    let status_tmux = t.env.ok(&["status", "--no-tick"]);
    let db_dump = t
        .env
        .sql("SELECT message FROM events UNION ALL SELECT coalesce(proposal, '') FROM llm_calls")
        .concat()
        .join("\n");
    for (name, text) in [
        ("tick", &plain),
        ("tick --json", &json_out),
        ("run show --json", &show_json),
        ("run show", &show_text),
        ("log --json", &log_json),
        ("log", &log_text),
        ("status plain", &status_plain),
        ("status tmux", &status_tmux),
        ("database", &db_dump),
    ] {
        assert!(!text.contains("#("), "{name}: {text}");
        assert!(!text.contains("rm -rf"), "{name}: {text}");
        assert!(!text.contains('\u{1b}'), "{name}: {text:?}");
        assert!(!text.contains("\\u001b"), "{name}: {text}");
        // The tmux status format has its own #[fg=…] styles; nothing else may.
        if name != "status tmux" {
            assert!(!text.contains("#["), "{name}: {text}");
        }
    }
    // The run is counted as blocked in the bar, through the LLM's escalation.
    assert!(status_plain.contains('1'), "{status_plain}");
}

#[test]
fn failing_llm_is_an_error() {
    let t = Llm::new(json!({}), &[("FAKE_LLM_MODE", "fail")]);
    t.sleeper("r1");
    t.quick_tick();
    let l = t.settle("r1", Duration::from_secs(10));
    assert_eq!(l["state"], "error", "{l}");
    assert_eq!(
        l["error"],
        "codex exited with 3: fake-codex: error: model unavailable"
    );
    assert!(t.workers().is_empty());
}

/// timeout_seconds=2: the worker kills the LLM's whole process group, records "timed out",
/// and the worker, the fake and the fake's background child are all gone.
fn times_out_cleanly(mode: &str) {
    let t = Llm::new(
        json!({"operator": {"llm": {"timeout_seconds": 2}}}),
        &[("FAKE_LLM_MODE", mode), ("FAKE_LLM_SLEEP", "60")],
    );
    t.sleeper("r1");
    let (_, first) = t.timed(&["tick"]);
    let (fake, child) = t.fake_pids();
    let worker = t.call_pid("r1").expect("worker pid recorded");
    assert!(!gone(worker) && !gone(fake) && !gone(child));
    // Ticks while the LLM hangs.
    let mut during = Vec::new();
    for _ in 0..5 {
        let (_, d) = t.timed(&["tick"]);
        during.push(d);
    }
    let worst = during.iter().max().copied().unwrap_or_default();
    eprintln!("{mode}: first tick {first:?}, worst of 5 ticks while the LLM hangs {worst:?}");
    assert!(first < QUICK && worst < QUICK, "{first:?} {during:?}");

    let t0 = Instant::now();
    let l = t.settle("r1", Duration::from_secs(10));
    assert_eq!(l["state"], "error", "{l}");
    assert_eq!(
        l["error"], "codex timed out after 2s (process group killed)",
        "{l}"
    );
    wait_for(
        "worker, fake and its child to be gone",
        Duration::from_secs(3),
        || (gone(worker) && gone(fake) && gone(child)).then_some(()),
    );
    eprintln!(
        "{mode}: result recorded and processes gone {:?} after polling began",
        t0.elapsed()
    );
    assert!(t.workers().is_empty() && t.fakes().is_empty());
    // The timeout is final for this decision: later ticks do not restart the call.
    t.quick_tick();
    assert_eq!(t.invocations().len(), 1);
}

#[test]
fn slow_llm_times_out_and_leaves_nothing() {
    times_out_cleanly("slow");
}

#[test]
fn hanging_llm_times_out_and_leaves_nothing() {
    // `pidfile`: hangs with a background child holding stdout open.
    times_out_cleanly("pidfile");
}

// ---- 2. the gate, end to end ------------------------------------------------------------

/// Ticks (1.1 s apart, the observation gap) until the rule wants a restart; returns that
/// tick's report. Waits for any LLM call in between so each decision got its answer.
fn until_rule_restarts(t: &Llm, id: &str) -> Value {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let r = t.tick_json(&[]);
        if permits(&r, "auto_restart") {
            return r;
        }
        assert!(
            Instant::now() < deadline,
            "rule never chose auto_restart: {r}"
        );
        t.settle_any(id, Duration::from_secs(10));
        std::thread::sleep(Duration::from_millis(1100));
    }
}

#[test]
fn assist_never_executes_even_when_the_llm_says_restart() {
    let t = Llm::new(
        json!({"operator": {"llm": {"min_interval_seconds": 0}}}),
        &[("FAKE_LLM_INTENT", "auto_restart")],
    );
    t.dying("r1");
    let r = until_rule_restarts(&t, "r1");
    assert_eq!(run0(&r)["intent"], "auto_restart");
    assert_eq!(run0(&r)["execute"], false, "{r}");
    let r = t.tick_json(&["--wait-llm"]);
    assert_eq!(run0(&r)["intent"], "auto_restart");
    assert_eq!(run0(&r)["execute"], false, "{r}");
    assert_eq!(run0(&r)["outcome"], Value::Null);
    assert_eq!(
        run0(&r)["llm"],
        "llm_suggested=auto_restart reason=fake says blocked"
    );
    for _ in 0..3 {
        let r = t.tick_json(&[]);
        assert_eq!(run0(&r)["execute"], false, "{r}");
    }
    let show = t.env.show("r1");
    assert_eq!(show["operator"]["restart_attempts"], 0);
    assert_eq!(t.restarts("r1"), 0);
    assert_eq!(show["agents"][0]["health"], "dead");
}

/// The control for the test above: with the LLM off the same run is restarted.
#[test]
fn off_mode_restarts_the_same_run() {
    let t = Llm::new(json!({"operator": {"llm": {"mode": "off"}}}), &[]);
    t.dying("r1");
    let deadline = Instant::now() + Duration::from_secs(10);
    while t.restarts("r1") == 0 {
        assert!(Instant::now() < deadline, "no restart in off mode");
        t.quick_tick();
        std::thread::sleep(Duration::from_millis(300));
    }
    assert!(t.invocations().is_empty() && t.env.show("r1")["llm"].is_null());
}

#[test]
fn auto_llm_can_replace_a_restart_with_an_escalation() {
    let t = Llm::new(
        json!({"operator": {"llm": {"mode": "auto", "min_interval_seconds": 0}}}),
        &[("FAKE_LLM_INTENT", "escalate_blocked")],
    );
    t.dying("r1");
    // The first tick where the rule wants the restart holds it for the LLM…
    let r = until_rule_restarts(&t, "r1");
    assert_eq!(run0(&r)["intent"], "auto_restart", "{r}");
    assert_eq!(run0(&r)["execute"], false, "{r}");
    assert_eq!(run0(&r)["outcome"], Value::Null);
    assert_eq!(
        run0(&r)["llm"],
        "held: waiting for the LLM on this decision"
    );
    // …whose answer replaces it.
    let r = t.tick_json(&["--wait-llm"]);
    assert_eq!(run0(&r)["intent"], "escalate_blocked", "{r}");
    assert_eq!(run0(&r)["decision_source"], "llm");
    assert_eq!(run0(&r)["execute"], false);
    assert!(run0(&r)["reason"]
        .as_str()
        .unwrap_or_default()
        .starts_with("fake says blocked (rule: auto_restart unhealthy state corroborated"));
    for _ in 0..3 {
        let r = t.tick_json(&[]);
        assert_eq!(run0(&r)["intent"], "escalate_blocked", "{r}");
    }
    let show = t.env.show("r1");
    assert_eq!(show["operator"]["restart_attempts"], 0);
    assert_eq!(show["agents"][0]["health"], "dead");
    assert_eq!(t.restarts("r1"), 0);
    let ev = t.events("r1");
    assert!(
        ev.iter().any(|e| e["kind"] == "decision"
            && e["to"] == "escalate_blocked"
            && e["source"] == "llm"),
        "{ev:?}"
    );
}

/// As in the original operator, an LLM cannot veto a rule's restart into silence: its
/// `noop` is rejected by the gate and the dead agent is restarted.
#[test]
fn auto_llm_noop_cannot_silence_a_restart() {
    let t = Llm::new(
        json!({"operator": {"llm": {"mode": "auto", "min_interval_seconds": 0}}}),
        &[
            ("FAKE_LLM_INTENT", "noop"),
            ("FAKE_LLM_REASON", "let it rest"),
        ],
    );
    t.dying("r1");
    let r = until_rule_restarts(&t, "r1");
    assert!(
        !run0(&r)["permitted"]
            .as_array()
            .is_some_and(|p| p.iter().any(|i| i == "noop")),
        "{r}"
    );
    let r = t.tick_json(&["--wait-llm"]);
    assert_eq!(run0(&r)["intent"], "auto_restart", "{r}");
    assert_eq!(run0(&r)["decision_source"], "rule");
    assert_eq!(run0(&r)["execute"], true, "{r}");
    assert!(run0(&r)["llm"]
        .as_str()
        .unwrap_or_default()
        .ends_with("rejected by policy gate"));
    assert_eq!(t.restarts("r1"), 1);
}

/// Controls for the veto: agreeing or failing LLMs let the rule's restart happen.
#[test]
fn auto_restart_proceeds_when_the_llm_agrees() {
    let t = Llm::new(
        json!({"operator": {"llm": {"mode": "auto", "min_interval_seconds": 0}}}),
        &[("FAKE_LLM_INTENT", "auto_restart")],
    );
    t.dying("r1");
    let r = until_rule_restarts(&t, "r1");
    assert_eq!(run0(&r)["execute"], false, "held first: {r}");
    let r = t.tick_json(&["--wait-llm"]);
    assert_eq!(run0(&r)["intent"], "auto_restart", "{r}");
    assert_eq!(run0(&r)["execute"], true);
    assert_eq!(run0(&r)["outcome"], "ok");
    assert_eq!(
        run0(&r)["llm"],
        "llm_suggested=auto_restart reason=fake says blocked; agrees with rule"
    );
    assert_eq!(t.restarts("r1"), 1);
    assert_eq!(t.env.show("r1")["operator"]["restart_attempts"], 1);
}

#[test]
fn auto_restart_proceeds_when_the_llm_fails() {
    let t = Llm::new(
        json!({"operator": {"llm": {"mode": "auto", "min_interval_seconds": 0}}}),
        &[("FAKE_LLM_MODE", "fail")],
    );
    t.dying("r1");
    let r = until_rule_restarts(&t, "r1");
    assert_eq!(run0(&r)["execute"], false, "held first: {r}");
    let r = t.tick_json(&["--wait-llm"]);
    assert_eq!(run0(&r)["intent"], "auto_restart", "{r}");
    assert_eq!(run0(&r)["execute"], true, "{r}");
    assert_eq!(t.restarts("r1"), 1);
}

#[test]
fn auto_rejects_an_action_the_rule_did_not_choose() {
    let t = Llm::new(
        json!({"operator": {"llm": {"mode": "auto"}}}),
        &[("FAKE_LLM_INTENT", "auto_restart")],
    );
    t.sleeper("r1");
    let pane = t
        .env
        .tmux_out(&["display-message", "-p", "-t", "=r1:", "#{pane_id}"]);
    let r = t.tick_json(&["--wait-llm"]);
    assert_eq!(run0(&r)["intent"], "noop", "{r}");
    assert_eq!(run0(&r)["decision_source"], "rule");
    assert_eq!(run0(&r)["execute"], false);
    assert_eq!(
        run0(&r)["llm"],
        "llm_suggested=auto_restart reason=fake says blocked; rejected by policy gate"
    );
    assert_eq!(t.llm("r1")["proposal"]["intent"], "auto_restart");
    assert_eq!(t.restarts("r1"), 0);
    assert_eq!(t.env.show("r1")["operator"]["restart_attempts"], 0);
    let after = t
        .env
        .tmux_out(&["display-message", "-p", "-t", "=r1:", "#{pane_id}"]);
    assert_eq!(pane, after, "the agent's pane was replaced");
}

#[test]
fn low_confidence_is_recorded_but_ignored() {
    let t = Llm::new(
        json!({"operator": {"llm": {"mode": "auto", "min_confidence": 0.5}}}),
        &[("FAKE_LLM_CONFIDENCE", "0.2")],
    );
    t.sleeper("r1");
    let r = t.tick_json(&["--wait-llm"]);
    let l = t.llm("r1");
    assert_eq!(l["state"], "done");
    assert_eq!(l["proposal"]["confidence"], 0.2);
    assert_eq!(run0(&r)["intent"], "noop", "{r}");
    assert_eq!(run0(&r)["decision_source"], "rule");
    assert_eq!(
        run0(&r)["llm"],
        "llm_suggested=escalate_blocked reason=fake says blocked; ignored: confidence 0.20 below 0.50"
    );
}

/// The worker already refuses another run's answer (see the otherrun case above); the gate
/// refuses it too should one ever be stored.
#[test]
fn gate_refuses_a_stored_proposal_for_another_run() {
    let t = Llm::new(json!({"operator": {"llm": {"mode": "auto"}}}), &[]);
    t.sleeper("r1");
    let r = t.tick_json(&["--wait-llm"]);
    assert_eq!(run0(&r)["intent"], "escalate_blocked", "adopted first: {r}");
    let n = rusqlite::Connection::open(&t.env.db)
        .expect("db")
        .execute(
            "UPDATE llm_calls SET proposal = replace(proposal, '\"target_run\":\"r1\"', \
             '\"target_run\":\"r2\"')",
            [],
        )
        .expect("update");
    assert_eq!(n, 1);
    assert_eq!(t.llm("r1")["proposal"]["target_run"], "r2");
    let r = t.tick_json(&[]);
    assert_eq!(run0(&r)["intent"], "noop", "{r}");
    assert_eq!(run0(&r)["decision_source"], "rule");
    assert!(run0(&r)["llm"]
        .as_str()
        .unwrap_or_default()
        .ends_with("; rejected: proposal is for another run"));
}

// ---- 3. never block ---------------------------------------------------------------------

#[test]
fn status_never_waits_for_the_llm() {
    // Slow fake, auto mode; thresholds keep the rule at noop with no restarts, so every
    // tick the bar triggers is the same work.
    let t = Llm::with_guard(
        json!({
            "health": {"idle_seconds": 600, "activity_stalled_seconds": 1200},
            "operator": {"unhealthy_confirmations": 1000,
                         "llm": {"mode": "auto", "timeout_seconds": 60, "min_interval_seconds": 0}}
        }),
        &[("FAKE_LLM_MODE", "slow"), ("FAKE_LLM_SLEEP", "30")],
        Guard::Exclusive(exclusive()),
    );
    t.sleeper("r1");
    let (_, first) = t.timed(&["status"]);
    assert!(first < QUICK, "first status {first:?}");
    let (fake, _) = t.fake_pids();
    assert_eq!(t.llm("r1")["state"], "in_flight");
    let mut took = Vec::with_capacity(200);
    let mut ticks = 0;
    for i in 0..200 {
        if i == 100 {
            // The decision changes mid-way (agent dies): still no second call.
            t.env.tmux(&["kill-session", "-t", "=r1"]);
        }
        let before = t
            .env
            .sql("SELECT value FROM meta WHERE key = 'last_full_tick'");
        let (out, d) = t.timed(&["status"]);
        assert!(!out.trim().is_empty());
        if t.env
            .sql("SELECT value FROM meta WHERE key = 'last_full_tick'")
            != before
        {
            ticks += 1;
        }
        took.push(d);
        assert!(t.workers().len() <= 1, "more than one worker for the run");
    }
    took.sort();
    let (p50, p99, max) = (percentile(&took, 0.5), percentile(&took, 0.99), took[199]);
    eprintln!(
        "200 status calls with a 30 s LLM in flight: p50 {p50:?} p99 {p99:?} max {max:?} \
         ({ticks} of them ran a full tick)"
    );
    assert!(ticks >= 1, "no status call ticked");
    assert!(p99 < Duration::from_millis(50), "p99 {p99:?}");
    // One call, one worker, still in flight, never duplicated.
    assert_eq!(t.invocations().len(), 1);
    assert_eq!(t.workers().len(), 1);
    assert!(!gone(fake));
    assert_eq!(t.llm("r1")["state"], "in_flight");
    assert_eq!(t.env.sql("SELECT count(*) FROM llm_calls")[0][0], "1");
}

#[test]
fn min_interval_spaces_calls_for_a_run() {
    let t = Llm::new(
        json!({"operator": {"llm": {"min_interval_seconds": 3}}}),
        &[],
    );
    t.sleeper("r1");
    t.quick_tick();
    let first = t.settle("r1", Duration::from_secs(10));
    let started = |t: &Llm| -> i64 {
        t.env
            .sql("SELECT started_at FROM llm_calls WHERE run_id = 'r1'")[0][0]
            .parse()
            .expect("started_at")
    };
    let t0 = started(&t);
    let real0 = Instant::now();
    // A new decision (the agent dies) wants a new call, but not before 3 s.
    t.env.tmux(&["kill-session", "-t", "=r1"]);
    let deadline = Instant::now() + Duration::from_secs(8);
    let mut blocked_ticks = 0;
    loop {
        t.quick_tick();
        let n = t.invocations().len();
        if n == 2 {
            break;
        }
        assert_eq!(n, 1);
        blocked_ticks += 1;
        assert!(
            Instant::now() < deadline,
            "no second call after min_interval"
        );
        std::thread::sleep(Duration::from_millis(150));
    }
    let gap = started(&t) - t0;
    eprintln!(
        "second call after {:?} ({blocked_ticks} ticks refused it), started_at gap {gap}s",
        real0.elapsed()
    );
    assert!(gap >= 3, "second call {gap}s after the first");
    // Whole seconds: at least 2 s of real time passed, so several ticks were refused.
    assert!(blocked_ticks >= 5, "{blocked_ticks}");
    assert_ne!(t.llm("r1")["fingerprint"], first["fingerprint"]);
}

// ---- 4. reaping -------------------------------------------------------------------------

#[test]
fn stale_in_flight_record_is_reaped() {
    let t = Llm::new(
        json!({"operator": {"llm": {"timeout_seconds": 30}}}),
        &[("FAKE_LLM_MODE", "pidfile")],
    );
    t.sleeper("r1");
    t.quick_tick();
    let (fake, child) = t.fake_pids();
    let worker = t.call_pid("r1").expect("worker pid");
    assert_eq!(t.workers(), vec![worker]);
    // Still alive: ticks leave the call alone.
    t.quick_tick();
    assert_eq!(t.llm("r1")["state"], "in_flight");

    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(worker),
        nix::sys::signal::Signal::SIGKILL,
    )
    .expect("kill worker");
    wait_for("worker to die", Duration::from_secs(3), || {
        gone(worker).then_some(())
    });
    // The orphaned LLM (and the killed worker's call directory) are still there until
    // the tick reaps the worker's session.
    assert!(!gone(fake) && !gone(child));
    assert_eq!(call_dirs(worker).len(), 1);
    t.quick_tick();
    let l = t.llm("r1");
    assert_eq!(l["state"], "error", "{l}");
    assert_eq!(l["error"], "worker lost (reaped)");
    wait_for(
        "orphaned fake and child to be gone",
        Duration::from_secs(3),
        || (gone(fake) && gone(child)).then_some(()),
    );
    assert!(
        call_dirs(worker).is_empty(),
        "reaped worker's directory left behind"
    );
    assert!(t
        .events("r1")
        .iter()
        .any(|e| e["kind"] == "llm" && e["message"] == "error: worker lost (reaped)"));

    // A new call may start once the interval allows it.
    let mut p: Value = serde_json::from_str(&fs::read_to_string(&t.env.policy).expect("policy"))
        .expect("policy json");
    p["operator"]["llm"]["min_interval_seconds"] = json!(0);
    t.env.write_policy(&p);
    t.set_fake(&[("FAKE_LLM_MODE", "good")]);
    t.env.ok(&["tick", "--wait-llm"]);
    let l = t.llm("r1");
    assert_eq!(l["state"], "done", "{l}");
    assert_eq!(t.invocations().len(), 2);
}

// ---- 5. the exact argv ------------------------------------------------------------------

#[test]
fn codex_argv_is_exact() {
    for model in ["", "gpt-5-mini"] {
        let t = Llm::new(
            json!({"operator": {"llm": {"model": model, "max_tokens": 1234}}}),
            &[],
        );
        t.sleeper("r1");
        t.env.ok(&["tick", "--wait-llm"]);
        assert_eq!(
            t.llm("r1")["state"],
            "done",
            "the fake found its schema file"
        );
        let lines = t.invocations();
        assert_eq!(lines.len(), 1);
        let argv: Vec<&str> = lines[0].split(' ').collect();
        let mut want = vec![
            "exec",
            "--skip-git-repo-check",
            "--sandbox",
            "read-only",
            "--ephemeral",
        ];
        if !model.is_empty() {
            want.extend(["--model", model]);
        }
        assert_eq!(argv.len(), want.len() + 5, "{argv:?}");
        assert_eq!(&argv[..want.len()], &want[..], "{argv:?}");
        let rest = &argv[want.len()..];
        assert_eq!(rest[0], "--output-schema", "{argv:?}");
        assert!(rest[1].ends_with("/schema.json"), "{argv:?}");
        assert_eq!(rest[2], "-o", "{argv:?}");
        assert!(rest[3].ends_with("/answer.json"), "{argv:?}");
        assert_eq!(rest[4], "-", "{argv:?}");
        assert!(!lines[0].contains("--max-tokens") && !lines[0].contains("1234"));
        // The per-call directory is private and gone afterwards.
        let dir = std::path::Path::new(rest[1]).parent().expect("dir");
        assert!(!dir.exists(), "{} left behind", dir.display());
    }
}

// ---- 6. limits: the worker cap and the answer size ----------------------------------------

/// Six runs each want a call while every call takes 30 s: at most 4 workers (and 4 LLM
/// processes) exist at any time, whatever the number of ticks.
#[test]
fn at_most_four_llm_workers_in_flight_overall() {
    let t = Llm::new(
        json!({}),
        &[("FAKE_LLM_MODE", "slow"), ("FAKE_LLM_SLEEP", "30")],
    );
    for i in 0..6 {
        t.sleeper(&format!("r{i}"));
    }
    let in_flight = || {
        t.env
            .sql("SELECT count(*) FROM llm_calls WHERE state = 'in_flight'")[0][0]
            .parse::<usize>()
            .unwrap_or(0)
    };
    // A worker is a session leader (setsid); a process it forks keeps the worker's
    // command line until it execs, so only leaders are counted.
    let leaders = || {
        t.workers()
            .into_iter()
            .filter(|p| {
                let stat = fs::read_to_string(format!("/proc/{p}/stat")).unwrap_or_default();
                let f: Vec<&str> = stat
                    .get(stat.rfind(')').unwrap_or(0) + 1..)
                    .unwrap_or("")
                    .split_whitespace()
                    .collect();
                f.get(3) == Some(&p.to_string().as_str())
            })
            .count()
    };
    let mut peak = 0;
    for _ in 0..4 {
        t.env.tick();
        for _ in 0..5 {
            peak = peak.max(leaders());
            std::thread::sleep(Duration::from_millis(100));
        }
        assert!(in_flight() <= 4, "{} calls in flight", in_flight());
    }
    wait_for(
        "four calls reaching the LLM",
        Duration::from_secs(15),
        || (t.invocations().len() == 4).then_some(()),
    );
    peak = peak.max(leaders());
    assert_eq!(peak, 4, "live workers at the peak");
    assert_eq!(in_flight(), 4);
    assert_eq!(t.invocations().len(), 4, "LLM processes started");
}
/// A `codex` that leaves its answer file as a 1 TiB sparse file: the worker must refuse
/// it by its size, never read (or allocate) it whole.
#[test]
fn an_oversized_answer_file_is_refused_by_size() {
    let t = Llm::new(json!({}), &[]);
    write_exec(
        &t.bin.join("codex"),
        "#!/bin/sh\ncat >/dev/null\nout=\nwhile [ $# -gt 0 ]; do\n  case \"$1\" in -o) out=$2; shift ;; esac\n  shift\ndone\ntruncate -s 1T \"$out\"\n",
    );
    t.sleeper("r1");
    t.env.tick();
    let l = t.settle("r1", Duration::from_secs(20));
    assert_eq!(l["state"], "error", "{l}");
    let err = l["error"].as_str().unwrap_or("");
    assert!(
        ["more than", "larger than", "too large"]
            .iter()
            .any(|w| err.contains(w)),
        "refused by its size: {err}"
    );
    assert!(t.workers().is_empty());
}

/// A `command` provider that prints far more than the cap and then stays: it is killed
/// as soon as it passes the cap, long before its timeout.
#[test]
fn a_provider_printing_past_the_cap_is_killed_early() {
    let t = Llm::new(
        json!({"operator": {"llm": {"provider": "command", "command": "chatty", "timeout_seconds": 20}}}),
        &[],
    );
    write_exec(
        &t.bin.join("chatty"),
        "#!/bin/sh\ncat >/dev/null\nhead -c 16777216 /dev/zero | tr '\\0' x\nexec sleep 60\n",
    );
    t.sleeper("r1");
    let started = Instant::now();
    t.env.tick();
    let l = t.settle("r1", Duration::from_secs(30));
    let took = started.elapsed();
    assert_eq!(l["state"], "error", "{l}");
    let err = l["error"].as_str().unwrap_or("");
    assert!(
        ["more than", "larger than", "too large"]
            .iter()
            .any(|w| err.contains(w)),
        "killed for its size: {err}"
    );
    assert!(
        took < Duration::from_secs(15),
        "waited for the timeout: {took:?}"
    );
}
