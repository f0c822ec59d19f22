//! Assist mode holds the rules' actions for a human: a pending approval that `approve`
//! executes once (if the rules still want it) and `dismiss` drops. Real tmux per test.

mod common;

use common::{fast_policy, wait_for, write_exec, Env};
use serde_json::{json, Value};
use std::fs;
use std::time::Duration;

fn assist_env() -> Env {
    Env::with_policy(fast_policy(json!({
        "operator": {"llm": {"mode": "assist", "command": "false", "min_interval_seconds": 3600}}
    })))
}

fn restarts(env: &Env, run: &str) -> usize {
    env.sql(&format!(
        "SELECT count(*) FROM events WHERE run_id = '{run}' AND kind = 'restart'"
    ))[0][0]
        .parse()
        .unwrap_or(0)
}

fn held(env: &Env, run: &str) -> String {
    wait_for(
        "an action held for approval",
        Duration::from_secs(30),
        || {
            let out = env.tick();
            out.lines()
                .find(|l| l.contains(run) && l.contains("action=awaiting-approval (assist mode)"))
                .map(str::to_string)
        },
    )
}

#[test]
fn approve_executes_once_and_the_bar_counts_it() {
    let env = assist_env();
    fs::create_dir_all(env.ws.join("ttmp/T-1")).unwrap();
    env.start("r1", &["sh", "-c", "exit 3"]);
    let line = held(&env, "r1");
    assert!(line.contains("auto_restart"), "{line}");
    let show = env.show("r1");
    assert_eq!(show["approval"]["status"], "pending", "{show}");
    assert_eq!(show["approval"]["intent"], "auto_restart");
    let bar = env.ok(&["status", "--format", "plain", "--no-tick"]);
    assert!(bar.contains("⏸1"), "{bar}");
    assert!(env
        .ok(&["log", "--run", "r1"])
        .contains("approval_requested"));
    let log = fs::read_to_string(env.ws.join("ttmp/T-1/changelog.md")).unwrap();
    assert!(
        log.contains("`metawsm-tick approve r1` or `metawsm-tick dismiss r1`"),
        "{log}"
    );
    // Held, not executed, however often it ticks.
    env.tick();
    assert_eq!(restarts(&env, "r1"), 0);

    let out = env.ok(&["approve", "r1"]);
    assert!(out.contains("approved auto_restart for r1"), "{out}");
    assert_eq!(restarts(&env, "r1"), 1);
    assert!(env.show("r1")["approval"].is_null());
    let again = env.run(&["approve", "r1"]);
    assert_eq!(again.status.code(), Some(1));
    assert_eq!(restarts(&env, "r1"), 1, "approve executes once");
    let bar = env.ok(&["status", "--format", "plain", "--no-tick"]);
    assert!(!bar.contains("⏸"), "{bar}");
    let mode = env.ok(&["policy", "mode"]);
    assert!(
        mode.starts_with("operator.llm.mode = assist: restarts and stops wait for you"),
        "{mode}"
    );
}

#[test]
fn approve_after_the_agent_recovered_does_nothing_and_dismiss_is_not_asked_again() {
    let env = assist_env();
    // Quiet until poked: stalls, then recovers when `ping` appears.
    let agent = env.path("pinger");
    write_exec(
        &agent,
        &format!(
            "#!/bin/sh\nwhile true; do if [ -e {ws}/ping ]; then echo pong; rm -f {ws}/ping; fi; sleep 0.2; done\n",
            ws = env.ws.display()
        ),
    );
    env.start("r1", &[&agent.to_string_lossy()]);
    held(&env, "r1");
    fs::write(env.ws.join("ping"), "").unwrap();
    // Recovered as tmux sees it (its output reached the pane), checked without a change.
    wait_for("the agent recovered", Duration::from_secs(10), || {
        let v: Value = serde_json::from_str(&env.ok(&["tick", "--dry-run", "--json"])).ok()?;
        let r = v["runs"]
            .as_array()?
            .iter()
            .find(|r| r["run_id"] == "r1")?
            .clone();
        (r["agents"][0]["health"] == "healthy").then_some(())
    });
    let out = env.run(&["approve", "r1"]);
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("nothing done: the situation changed"), "{err}");
    assert!(err.contains("the rules now want noop"), "{err}");
    assert_eq!(restarts(&env, "r1"), 0);
    assert!(env.show("r1")["approval"].is_null());

    // Dismissed: the same situation is not proposed again within the episode.
    env.start("r2", &["sh", "-c", "exit 3"]);
    held(&env, "r2");
    env.ok(&["dismiss", "r2"]);
    let show: Value = env.show("r2");
    assert_eq!(show["approval"]["status"], "dismissed");
    for _ in 0..3 {
        let out = env.tick();
        let line = out
            .lines()
            .find(|l| l.contains("r2"))
            .unwrap_or("")
            .to_string();
        assert!(!line.contains("awaiting-approval"), "{line}");
        std::thread::sleep(Duration::from_millis(1100));
    }
    assert_eq!(restarts(&env, "r2"), 0);
    let bar = env.ok(&["status", "--format", "plain", "--no-tick"]);
    assert!(!bar.contains("⏸"), "{bar}");
    assert_eq!(env.run(&["approve", "r2"]).status.code(), Some(1));
}
