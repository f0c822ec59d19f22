//! When a full tick is due, and the server-side timer: a self-re-arming
//! `run-shell -b -d N`, guarded by `timer_next_due` and a chain number (`timer_chain`):
//! only the chain the database names keeps going.

use crate::cli::Ctx;
use crate::policy::Policy;
use crate::store::Store;
use crate::tmux;

/// A full tick is due when the last one (any caller) is older than the interval.
pub fn due(store: &Store, policy: &Policy, now: i64) -> bool {
    let meta = store
        .meta_many(&["last_full_tick", "tick_interval"])
        .unwrap_or_default();
    let interval = meta
        .get("tick_interval")
        .and_then(|v| v.parse::<i64>().ok())
        .filter(|v| *v > 0)
        .unwrap_or(policy.operator.tick_interval_seconds);
    let last = meta
        .get("last_full_tick")
        .and_then(|v| v.parse::<i64>().ok())
        .unwrap_or(0);
    // A last tick in the future means the clock stepped back: tick rather than stall.
    now - last >= interval || last > now + interval
}

pub fn interval(store: &Store, policy: &Policy) -> i64 {
    store
        .meta_get("tick_interval")
        .ok()
        .flatten()
        .and_then(|v| v.parse::<i64>().ok())
        .filter(|v| *v > 0)
        .unwrap_or(policy.operator.tick_interval_seconds)
}
pub fn meta_i64(st: &Store, key: &str) -> Option<i64> {
    st.meta_get(key)
        .ok()
        .flatten()
        .and_then(|v| v.parse::<i64>().ok())
}

pub fn active(st: &Store) -> bool {
    st.runs(false).map(|r| !r.is_empty()).unwrap_or(false)
}

/// The shell command tmux runs: absolute paths, each a quoted word (the caller passes
/// it as an expanded value: run-shell expands formats).
pub fn timer_command(ctx: &Ctx, chain: i64) -> String {
    let exe = crate::cli::current_exe();
    let mut words = vec![tmux::sh_quote(&exe.to_string_lossy())];
    words.extend(ctx.self_args().iter().map(|a| tmux::sh_quote(a)));
    words.push("timer".into());
    words.push("--chain".into());
    words.push(chain.to_string());
    format!("exec {} >/dev/null 2>&1", words.join(" "))
}

fn arm_cmd(ctx: &Ctx, every: i64, chain: i64) -> tmux::Cmd {
    tmux::Cmd::new("run-shell")
        .flags(&["-b", "-d"])
        .num(every)
        .end_of_flags()
        .expanded("timer command", &timer_command(ctx, chain))
}

fn armed(st: &mut Store, at: i64) {
    if let Ok(tx) = st.write() {
        let _ = tx.meta_set("timer_next_due", &at.to_string());
        let _ = tx.commit();
    }
}

pub fn arm(st: &mut Store, ctx: &Ctx, policy: &Policy, now: i64, chain: i64) {
    let every = interval(st, policy).max(1);
    if ctx.tmux.run(&[arm_cmd(ctx, every, chain)]).is_ok() {
        armed(st, now + every);
    }
}

/// A firing that ticks re-arms inside the tick's own tmux spawn (`run-shell` first in
/// the observation batch): one tmux process per firing. `tick` runs the tick; when it
/// made no tmux call at all the timer is armed on its own.
pub fn arm_with(
    st: &mut Store,
    ctx: &Ctx,
    policy: &Policy,
    now: i64,
    chain: i64,
    tick: impl FnOnce(&mut Store),
) {
    let every = interval(st, policy).max(1);
    tmux::ride_along(arm_cmd(ctx, every, chain));
    tick(st);
    if tmux::take_riders().is_empty() {
        armed(st, now + every);
    } else {
        arm(st, ctx, policy, now, chain);
    }
}

/// A fresh chain number, taken in one IMMEDIATE transaction: two processes arming at
/// once (tmux-setup need not hold the state lock) never share a number, and the older
/// chain stops at its next firing.
fn take_chain_number(st: &mut Store) -> Option<i64> {
    let tx = st.write().ok()?;
    let next = tx.meta_increment("timer_chain").ok()?;
    tx.commit().ok()?;
    Some(next)
}

/// Called by any tick (under the lock): re-arm a chain that broke (crash, server restart).
/// The new chain gets the next number, so a late survivor of the old one stops.
pub fn arm_if_stale(st: &mut Store, ctx: &Ctx, policy: &Policy, now: i64) {
    let setup = st.meta_get("plugin_setup").ok().flatten();
    if setup.as_deref() != Some("1") {
        return;
    }
    let every = interval(st, policy).max(1);
    if meta_i64(st, "timer_next_due").is_some_and(|d| now <= d + every + 5) {
        return;
    }
    if !active(st) {
        return;
    }
    if let Some(next) = take_chain_number(st) {
        arm(st, ctx, policy, now, next);
    }
}

/// `tmux-setup` (server start or plugin reload): always a new chain in this server, even
/// when the schedule looks fresh (the server may have just been restarted, taking the old
/// chain with it). A surviving old chain sees the new number and stops.
pub fn arm_new_chain(st: &mut Store, ctx: &Ctx, policy: &Policy, now: i64) {
    if !active(st) {
        return;
    }
    if let Some(next) = take_chain_number(st) {
        arm(st, ctx, policy, now, next);
    }
}
