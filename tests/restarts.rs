//! Restart promises end to end: dedup never suppresses the retry of a failed restart; a
//! run a crash left in `stopping` is finished; `run restart` and `guide` reset the
//! budget; an attempt is counted before tmux runs.

mod common;

use common::{count_in, fast_policy, intent, rfc3339_secs, wait_for, Env};
use serde_json::json;
use std::fs;
use std::time::Duration;

const WAIT: Duration = Duration::from_secs(30);

fn attempts(env: &Env, run: &str) -> i64 {
    env.show(run)["operator"]["restart_attempts"]
        .as_i64()
        .unwrap_or(-1)
}

fn restart_times(env: &Env, run: &str) -> Vec<String> {
    let log: serde_json::Value =
        serde_json::from_str(&env.ok(&["log", "--run", run, "--limit", "1000", "--json"]))
            .expect("json");
    log.as_array()
        .into_iter()
        .flatten()
        .filter(|e| e["kind"] == "restart")
        .map(|e| e["at"].as_str().unwrap_or("").to_string())
        .collect()
}

#[test]
fn a_failed_restart_is_retried_when_its_cooldown_ends() {
    let mut env = Env::with_policy(fast_policy(json!({"operator": {
        "unhealthy_confirmations": 1, "min_observation_gap_seconds": 0,
        "restart_cooldown_seconds": 2, "restart_cooldown_max_seconds": 2
    }})));
    env.start("retry", &["sh", "-c", "exit 1"]);
    env.wait_pane_dead("retry");
    // The first restart's tmux call fails as a whole: the agent stays dead, the same
    // decision (intent and reason) comes back, and must still be acted on.
    let flag = env.path("failed-once");
    let log = env.tmux_wrapper(
        &format!(
            "case \"$*\" in *respawn-pane*) [ -e '{f}' ] || {{ : > '{f}'; echo 'refused' >&2; exit 1; }};; esac",
            f = flag.display()
        ),
    );
    let v = env.tick_json();
    assert_eq!(intent(&v, "retry").0, "auto_restart", "{v}");
    assert!(flag.exists(), "the restart reached tmux");
    assert_eq!(attempts(&env, "retry"), 1);
    // No tick during the cooldown (a noop there would end the episode): the first tick
    // after it sees the same decision as the failed one, and must act on it anyway.
    std::thread::sleep(Duration::from_millis(3100));
    let v = env.tick_json();
    assert_eq!(intent(&v, "retry").0, "auto_restart", "{v}");
    let t = restart_times(&env, "retry");
    assert_eq!(t.len(), 2, "retried once the cooldown ended: {t:?}");
    assert!(
        rfc3339_secs(&t[1]) - rfc3339_secs(&t[0]) >= 2,
        "retried inside the cooldown: {t:?}"
    );
    assert_eq!(attempts(&env, "retry"), 2);
    assert_eq!(count_in(&log, "respawn-pane"), 2, "tmux asked twice");
}

#[test]
fn a_run_left_in_stopping_by_a_crash_is_finished() {
    let env = Env::new();
    env.start("half", &["sleep", "1000000"]);
    env.tick();
    // As if `run stop` died after its first transition, before killing anything.
    env.sql("SELECT 1");
    let c = rusqlite::Connection::open(&env.db).expect("open");
    c.execute("UPDATE runs SET status = 'stopping' WHERE id = 'half'", [])
        .expect("update");
    drop(c);
    env.tick();
    assert_eq!(env.show("half")["status"], "stopped");
    let sessions = env.tmux_out(&["list-sessions", "-F", "#{session_name}"]);
    assert!(!sessions.lines().any(|s| s == "half"), "{sessions}");
}

#[test]
fn run_restart_and_guide_reset_the_restart_budget() {
    let env = Env::with_policy(fast_policy(json!({"operator": {
        "unhealthy_confirmations": 1, "min_observation_gap_seconds": 0,
        "restart_budget": 1, "restart_cooldown_seconds": 1, "restart_cooldown_max_seconds": 1
    }})));
    env.start("spent", &["sh", "-c", "exit 1"]);
    let spend = || {
        wait_for("budget spent", WAIT, || {
            let v = env.tick_json();
            std::thread::sleep(Duration::from_millis(200));
            (intent(&v, "spent").0 == "escalate_blocked").then_some(())
        });
        assert_eq!(attempts(&env, "spent"), 1);
    };
    spend();
    env.ok(&["run", "restart", "spent"]);
    assert_eq!(attempts(&env, "spent"), 0, "run restart resets");
    spend();
    let sig = env.ws.join(".metawsm");
    fs::create_dir_all(&sig).expect("mkdir");
    fs::write(
        sig.join("guidance-request.json"),
        r#"{"run_id":"spent","question":"Try again?"}"#,
    )
    .expect("write");
    let v = env.tick_json();
    assert_eq!(intent(&v, "spent").0, "escalate_guidance", "{v}");
    assert_eq!(attempts(&env, "spent"), 1);
    env.ok(&["guide", "spent", "--answer", "yes"]);
    assert_eq!(attempts(&env, "spent"), 0, "guide resets");
}

#[test]
fn an_attempt_is_counted_before_tmux_runs() {
    let mut env = Env::with_policy(fast_policy(json!({"operator": {
        "unhealthy_confirmations": 1, "min_observation_gap_seconds": 0
    }})));
    env.start("early", &["sh", "-c", "exit 1"]);
    env.wait_pane_dead("early");
    // The restart's tmux call hangs: while it does, the attempt must already be recorded.
    let pid = env.path("hung.pid");
    env.tmux_wrapper(&format!(
        "case \"$*\" in *respawn-pane*) echo $$ > '{}'; exec sleep 60;; esac",
        pid.display()
    ));
    let mut tick = env
        .cmd(&["tick"])
        .stdout(std::process::Stdio::null())
        .spawn()
        .expect("tick");
    let hung = wait_for("the restart to reach tmux", WAIT, || {
        fs::read_to_string(&pid).ok().filter(|s| s.ends_with('\n'))
    });
    let counted =
        env.sql("SELECT restart_attempts FROM operator_run_states WHERE run_id = 'early'");
    let _ = tick.kill();
    let _ = tick.wait();
    let _ = std::process::Command::new("kill").arg(hung.trim()).status();
    assert_eq!(counted, [["1"]], "attempt recorded while tmux was running");
}
