//! The no-client timer backs off while nothing changes: its wait doubles from the tick
//! interval up to `operator.idle_tick_max_seconds`, and goes back to the interval as soon
//! as a tick (its own or a hook's) finds a change. A real tmux server on a private
//! socket, the plugin set up in it, nobody attached: every full tick is the timer's.
//! Small intervals (1 s, at most 4 s) keep it short; waits poll to deadlines.

mod common;

use common::{fast_policy, Env, BIN};
use serde_json::json;
use std::fs;
use std::time::{Duration, Instant};

/// last_full_tick, timer_delay, timer_next_due, timer_chain (absent: -1).
fn timer_meta(env: &Env) -> [i64; 4] {
    let rows = env.sql(
        "SELECT key, value FROM meta WHERE key IN \
         ('last_full_tick', 'timer_delay', 'timer_next_due', 'timer_chain')",
    );
    let get = |k: &str| {
        rows.iter()
            .find(|r| r[0] == k)
            .and_then(|r| r[1].parse().ok())
            .unwrap_or(-1)
    };
    [
        get("last_full_tick"),
        get("timer_delay"),
        get("timer_next_due"),
        get("timer_chain"),
    ]
}

/// Watches the timer's full ticks (no client, so nothing else makes one) until `done`
/// says so; returns every distinct meta snapshot seen, in order.
fn watch(
    env: &Env,
    what: &str,
    limit: Duration,
    done: impl Fn(&[[i64; 4]]) -> bool,
) -> Vec<[i64; 4]> {
    let mut seen: Vec<[i64; 4]> = Vec::new();
    let deadline = Instant::now() + limit;
    loop {
        let m = timer_meta(env);
        if seen.last() != Some(&m) {
            seen.push(m);
        }
        if done(&seen) {
            return seen;
        }
        assert!(
            Instant::now() < deadline,
            "{what}: not within {limit:?}; seen (last_full_tick, delay, next_due, chain): {seen:?}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Seconds between consecutive full ticks in `seen`.
fn gaps(seen: &[[i64; 4]]) -> Vec<i64> {
    let mut ticks: Vec<i64> = seen.iter().map(|m| m[0]).filter(|t| *t > 0).collect();
    ticks.dedup();
    ticks.windows(2).map(|w| w[1] - w[0]).collect()
}

fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64)
}

fn policy(max: i64) -> serde_json::Value {
    // A quiet agent stays healthy: nothing but the test changes anything.
    fast_policy(json!({
        "health": {"idle_seconds": 3000, "activity_stalled_seconds": 3600},
        "operator": {"idle_tick_max_seconds": max}
    }))
}

#[test]
fn the_timer_backs_off_while_nothing_changes_and_resets_on_a_change() {
    let env = Env::with_policy(policy(4));
    let stop = env.path("stop");
    let agent = format!(
        "while [ ! -e '{}' ]; do sleep 0.2; done; exit 1",
        stop.display()
    );
    env.start("quiet", &["sh", "-c", &agent]);
    env.ok(&["tmux-setup", "--bin", BIN]);

    // Nothing changes: the wait grows 1 → 2 → 4 s and stays at 4.
    let seen = watch(&env, "backed off to 4 s", Duration::from_secs(60), |s| {
        gaps(s).iter().any(|g| *g >= 3)
    });
    let delays: Vec<i64> = seen.iter().map(|m| m[1]).collect();
    assert!(
        delays.contains(&2) && delays.contains(&4),
        "the wait doubles 1 → 2 → 4: {seen:?}"
    );
    assert!(
        delays.iter().all(|d| *d <= 4),
        "never past the max: {seen:?}"
    );
    assert!(
        gaps(&seen).iter().all(|g| *g <= 6),
        "no firing waits past the max (+ load): {seen:?}"
    );

    // A change only a tick can see (a signal file, no hook): the firing that finds it
    // re-arms at the base interval, on a new chain (the long one stops when it fires).
    let [_, _, _, chain] = timer_meta(&env);
    let sig = env.ws.join(".metawsm");
    fs::create_dir_all(&sig).expect("mkdir");
    fs::write(
        sig.join("guidance-request.json"),
        r#"{"question":"which branch?"}"#,
    )
    .expect("write request");
    let seen = watch(
        &env,
        "reset by the timer's tick",
        Duration::from_secs(30),
        |s| {
            s.last()
                .is_some_and(|m| m[1] == 0 && m[3] > chain && m[2] > 0)
        },
    );
    let [tick, _, next_due, _] = *seen.last().expect("seen");
    assert!(
        next_due - tick <= 2,
        "re-armed at the 1 s base, not the 4 s max: next due {next_due}, tick {tick}; {seen:?}"
    );
    assert!(
        !env.sql("SELECT id FROM guidance_requests WHERE run_id = 'quiet'")
            .is_empty(),
        "the request was taken"
    );

    // Quiet again (the question waits for a human): it backs off again, now up to 8 s
    // (the policy is read per firing), so the hook below has seconds to spare on a
    // loaded machine.
    env.write_policy(&policy(8));
    watch(&env, "backed off again", Duration::from_secs(30), |s| {
        s.last().is_some_and(|m| m[1] >= 2)
    });

    // An agent dies while the timer sleeps (armed >= 6 s ahead): its pane-died hook
    // ticks, sees it, and wakes the timer before the sleeping chain would have fired.
    // (The run waits for an answer, so the rules do not restart it: the death is the only
    // change, and only the hook's tick sees it.)
    let seen = watch(
        &env,
        "asleep for 6 s or more",
        Duration::from_secs(40),
        |s| s.last().is_some_and(|m| m[2] - now() >= 6),
    );
    let [_, _, asleep_until, chain] = *seen.last().expect("seen");
    fs::write(&stop, "").expect("stop the agent");
    // tmux fires pane-died once it has reaped the process; under load tmux 3.3a can miss
    // the exit, and then fires nothing until something else wakes its reaper (our tick
    // does: src/reaper.rs). So the hook tmux would run is also run here, as tmux runs
    // it, once the pane reads dead: what is tested is what a hook's tick does.
    env.wait_pane_dead("quiet");
    let pane = env.tmux_out(&["display-message", "-p", "-t", "=quiet:", "#{pane_id}"]);
    env.ok(&["hook", "pane-died", pane.trim(), "quiet", "1"]);
    // (The new number is taken first, then the chain armed and its wait recorded.)
    let seen = watch(&env, "woken by the hook", Duration::from_secs(30), |s| {
        s.last().is_some_and(|m| m[3] > chain && m[1] <= 1)
    });
    let woken = now();
    assert!(
        woken < asleep_until,
        "woken at {woken}, before the sleeping chain's firing at {asleep_until}: {seen:?}"
    );

    // idle_tick_max_seconds = the tick interval: no backoff (the policy is read per firing).
    env.write_policy(&policy(1));
    let from = seen.len();
    let seen = watch(
        &env,
        "five ticks at the base",
        Duration::from_secs(30),
        |s| gaps(&s[from.min(s.len())..]).len() >= 5,
    );
    let tail = &seen[from.min(seen.len())..];
    assert!(
        tail.iter().all(|m| m[1] <= 1),
        "never armed past the base: {tail:?}"
    );
    assert!(
        gaps(tail).iter().all(|g| *g <= 2),
        "a tick every second (+ load): {tail:?}"
    );
}
