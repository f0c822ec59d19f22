//! Clock steps and suspends, with the binary's test clock (METAWSM_TEST_CLOCK_OFFSET
//! shifts only the program's clock): a backward step leaves nothing latched in the
//! future, and a jump longer than stale_run_age never stops a healthy agent on the first
//! tick after it.

mod common;

use common::{fast_policy, Env};
use serde_json::json;
use std::time::Duration;

const OFFSET: &str = "METAWSM_TEST_CLOCK_OFFSET";

fn tick_at(env: &Env, offset: i64) -> serde_json::Value {
    let out = env
        .cmd(&["tick", "--json"])
        .env(OFFSET, offset.to_string())
        .output()
        .expect("tick");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("json")
}

fn events(env: &Env, kind: &str) -> usize {
    env.sql(&format!(
        "SELECT count(*) FROM events WHERE kind = '{kind}'"
    ))[0][0]
        .parse()
        .unwrap_or(0)
}

#[test]
fn a_jump_past_stale_run_age_does_not_stop_a_healthy_agent() {
    let env = Env::with_policy(fast_policy(json!({
        "health": {"idle_seconds": 600, "activity_stalled_seconds": 3600, "progress_stalled_seconds": 3600},
        "operator": {"stale_run_age_seconds": 600}
    })));
    env.start("r1", &["sleep", "100000"]);
    tick_at(&env, 0);
    // Suspended for two hours: the first tick after resuming.
    let v = tick_at(&env, 7200);
    assert_eq!(v["runs"][0]["intent"], "noop", "{v}");
    assert_eq!(env.show("r1")["status"], "running");
    assert_eq!(events(&env, "clock"), 1);
    // The next, normally spaced tick: the agent was quiet for seconds, not hours.
    let v = tick_at(&env, 7205);
    assert_eq!(v["runs"][0]["intent"], "noop", "{v}");
    assert_eq!(env.show("r1")["status"], "running");
    assert_eq!(env.health("r1", "agent"), "healthy");
    assert!(env.tmux(&["has-session", "-t", "=r1"]).status.success());
    assert_eq!(events(&env, "stop"), 0);
}

#[test]
fn after_a_backward_step_nothing_stays_latched_in_the_future() {
    let env = Env::with_policy(fast_policy(json!({
        "operator": {"stale_run_age_seconds": 86400, "unhealthy_confirmations": 2,
                     "min_observation_gap_seconds": 1}
    })));
    env.start("r1", &["sh", "-c", "exit 1"]);
    // Observed dead once while the clock ran an hour ahead.
    common::wait_for("dead", Duration::from_secs(20), || {
        let v = tick_at(&env, 3600);
        (env.health("r1", "agent") == "dead").then_some(v)
    });
    // The clock is set right (an hour back): corroboration must resume, not wait an hour.
    let mut restarted = false;
    for _ in 0..6 {
        std::thread::sleep(Duration::from_millis(1100));
        tick_at(&env, 0);
        if events(&env, "restart") > 0 {
            restarted = true;
            break;
        }
    }
    let future = env.sql(
        "SELECT count(*) FROM operator_run_states WHERE last_observation_at > strftime('%s','now') + 60",
    );
    assert!(restarted, "still latched: {:?}", env.show("r1")["operator"]);
    assert_eq!(future[0][0], "0");
    assert_eq!(events(&env, "clock"), 1);
}
