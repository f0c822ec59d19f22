//! The agent-adapter path end to end: `metawsm-tick signal` found by `--run/--agent` and
//! by `$TMUX_PANE`, a `waiting` agent escalated and shown as `?`, `done` never judged
//! stalled, and signals queued while the lock is busy applied in order, none lost.

mod common;

use common::{fast_policy, intent, wait_for, Env};
use serde_json::json;
use std::time::Duration;

const WAIT: Duration = Duration::from_secs(30);

fn pane(env: &Env, run: &str) -> String {
    env.sql(&format!(
        "SELECT pane_id FROM agents WHERE run_id = '{run}'"
    ))[0][0]
        .clone()
}

fn signals(env: &Env, run: &str) -> Vec<String> {
    env.sql(&format!(
        "SELECT to_state FROM events WHERE run_id = '{run}' AND kind = 'signal' ORDER BY id"
    ))
    .into_iter()
    .map(|r| r[0].clone())
    .collect()
}

#[test]
fn waiting_agent_is_escalated_and_shown_as_guidance_and_done_is_never_stalled() {
    let env = Env::with_policy(fast_policy(json!({"operator": {
        "unhealthy_confirmations": 1, "min_observation_gap_seconds": 0
    }})));
    // Three silent agents: one will ask, one is done, one (the control) says nothing.
    for id in ["ask", "fin", "ctl"] {
        env.start(id, &["sleep", "1000000"]);
    }
    env.ok(&["signal", "--run", "ask", "--agent", "agent", "waiting"]);
    // `done` through $TMUX_PANE, as an agent hook inside the pane would send it.
    let out = env
        .cmd(&["signal", "done"])
        .env("TMUX_PANE", pane(&env, "fin"))
        .output()
        .expect("signal");
    assert!(out.status.success(), "{out:?}");
    assert_eq!(signals(&env, "ask"), ["waiting"]);
    assert_eq!(signals(&env, "fin"), ["done"]);

    let v = env.tick_json();
    let (i, r) = intent(&v, "ask");
    assert_eq!(i, "escalate_guidance", "{r}");
    assert!(r.contains("waiting for input at its prompt"), "{r}");
    let seg = env.ok(&["status", "--no-tick", "--format", "plain"]);
    assert!(seg.contains("?1"), "the bar shows the waiting run: {seg:?}");

    // Past the stalled threshold the control agent is stalled (and restarted); the
    // `done` and `waiting` agents, just as silent, are not.
    wait_for("the control agent judged stalled", WAIT, || {
        env.tick();
        std::thread::sleep(Duration::from_millis(300));
        (!env
            .sql("SELECT id FROM events WHERE run_id = 'ctl' AND kind = 'restart'")
            .is_empty())
        .then_some(())
    });
    for run in ["fin", "ask"] {
        assert_ne!(env.health(run, "agent"), "stalled", "{run}");
        assert!(
            env.sql(&format!(
                "SELECT id FROM events WHERE run_id = '{run}' AND kind = 'restart'"
            ))
            .is_empty(),
            "{run} was restarted"
        );
    }

    // Identification errors: a pane that is no agent is 1, nothing to go by is 2.
    let out = env
        .cmd(&["signal", "done"])
        .env("TMUX_PANE", "%9999")
        .output()
        .expect("signal");
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    assert_eq!(env.run(&["signal", "done"]).status.code(), Some(2));
}

#[test]
fn signals_sent_while_the_lock_is_held_are_queued_and_applied_in_order() {
    let env = Env::new();
    env.start("q", &["sleep", "1000000"]);
    env.tick();
    let held = env.hold_lock();
    // The last one decides the state: applied out of order, it would not be `waiting`.
    for state in ["done", "working", "waiting"] {
        env.ok(&["signal", "--run", "q", "--agent", "agent", state]);
    }
    assert_eq!(
        env.sql("SELECT count(*) FROM inbox")[0][0],
        "3",
        "queued, not applied"
    );
    assert!(signals(&env, "q").is_empty());
    drop(held);
    let v = env.tick_json();
    assert_eq!(signals(&env, "q"), ["done", "working", "waiting"]);
    assert_eq!(env.show("q")["agents"][0]["signal"], "waiting");
    assert_eq!(intent(&v, "q").0, "escalate_guidance");
    assert_eq!(env.sql("SELECT count(*) FROM inbox")[0][0], "0");
}
