//! When a full tick is due, and the server-side timer: a self-re-arming
//! `run-shell -b -d N`, guarded by `timer_next_due` and a chain number (`timer_chain`):
//! only the chain the database names keeps going.

use crate::cli::Ctx;
use crate::policy::Policy;
use crate::store::Store;
use crate::tmux;

/// Whether a full tick is due: the last one (any caller: `last`, 0 = never) is at least
/// `interval` seconds old. The one rule for the status line (fed from the cache file),
/// hooks and the timer (fed from the database). An interval below 1 s counts as 1 s (a
/// tick per call would be a storm). A last tick further in the future than one interval
/// means the clock stepped back: tick rather than stall until the clock catches up.
pub fn is_due(last: i64, interval: i64, now: i64) -> bool {
    let interval = interval.max(1);
    now.saturating_sub(last) >= interval || last > now.saturating_add(interval)
}

/// The tick interval in force: the one `tmux-setup` stored (`tick_interval` in the
/// database and the status cache), when positive, else the policy's.
pub fn effective_interval(stored: Option<i64>, policy: &Policy) -> i64 {
    stored
        .filter(|v| *v > 0)
        .unwrap_or(policy.operator.tick_interval_seconds)
}

/// `is_due`, fed from the database.
pub fn due(store: &Store, policy: &Policy, now: i64) -> bool {
    let meta = store
        .meta_many(&["last_full_tick", "tick_interval"])
        .unwrap_or_default();
    let num = |k: &str| meta.get(k).and_then(|v| v.parse::<i64>().ok());
    is_due(
        num("last_full_tick").unwrap_or(0),
        effective_interval(num("tick_interval"), policy),
        now,
    )
}

pub fn interval(store: &Store, policy: &Policy) -> i64 {
    effective_interval(meta_i64(store, "tick_interval"), policy)
}

pub fn meta_i64(st: &Store, key: &str) -> Option<i64> {
    st.meta_get(key)
        .ok()
        .flatten()
        .and_then(|v| v.parse::<i64>().ok())
}

pub fn active(st: &Store) -> bool {
    st.has_active_runs().unwrap_or(false)
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

/// Meta key: the wait the current chain was armed with, which a quiet firing doubles;
/// 0 (or none) for a new chain and after a tick that saw a change: the next firing
/// re-arms at the base interval.
const DELAY: &str = "timer_delay";

/// The longest the timer waits while its ticks find nothing changed
/// (`operator.idle_tick_max_seconds`), never below `base` (at or below it: no backoff)
/// and never past the clock's gap limit less one interval (a later firing would be
/// taken for a suspend, clock.rs).
pub fn max_delay(base: i64, policy: &Policy) -> i64 {
    let tick = policy.operator.tick_interval_seconds;
    let cap = crate::clock::gap_limit(tick).saturating_sub(tick);
    policy.operator.idle_tick_max_seconds.min(cap).max(base)
}

/// The wait a firing arms when its tick finds nothing changed: twice the last one
/// (`last`, 0 after a change), within `base..=max`.
pub fn next_delay(last: i64, base: i64, max: i64) -> i64 {
    last.saturating_mul(2).min(max).max(base)
}

fn arm_cmd(ctx: &Ctx, every: i64, chain: i64) -> tmux::Cmd {
    tmux::Cmd::new("run-shell")
        .flags(&["-b", "-d"])
        .num(every)
        .end_of_flags()
        .expanded("timer command", &timer_command(ctx, chain))
}

/// Records the armed firing: when it is due and the wait to double next (`delay`).
fn armed(st: &mut Store, at: i64, delay: i64) {
    if let Ok(tx) = st.write() {
        let _ = tx.meta_set("timer_next_due", &at.to_string());
        let _ = tx.meta_set(DELAY, &delay.to_string());
        let _ = tx.commit();
    }
}

/// Arms `chain` to fire in `every` seconds, remembering `delay` for the next quiet firing.
fn arm_in(st: &mut Store, ctx: &Ctx, now: i64, chain: i64, every: i64, delay: i64) {
    if ctx.tmux.run(&[arm_cmd(ctx, every, chain)]).is_ok() {
        armed(st, now + every, delay);
    }
}

/// Re-arms `chain` with the wait in force, the last one armed (a firing that did not
/// tick: the lock was busy, or another caller ticked lately), keeping what the next
/// quiet firing doubles.
pub fn arm(st: &mut Store, ctx: &Ctx, policy: &Policy, now: i64, chain: i64) {
    let base = interval(st, policy).max(1);
    let last = meta_i64(st, DELAY).unwrap_or(0);
    let every = last.min(max_delay(base, policy)).max(base);
    arm_in(st, ctx, now, chain, every, last);
}

/// A firing that ticks re-arms inside the tick's own tmux spawn (`run-shell` first in
/// the observation batch): one tmux process per firing. The wait is chosen before the
/// tick's outcome is known, doubling the last one (`next_delay`); `tick` runs the tick
/// and says whether it found anything changed. If it did and the chain was armed
/// longer than the base interval, a new chain is armed at the base (a second spawn,
/// only when something changed), and the long one stops when it fires. When the tick
/// made no tmux call at all the timer is armed on its own.
pub fn arm_with(
    st: &mut Store,
    ctx: &Ctx,
    policy: &Policy,
    now: i64,
    chain: i64,
    tick: impl FnOnce(&mut Store) -> bool,
) {
    let base = interval(st, policy).max(1);
    let max = max_delay(base, policy);
    let every = next_delay(meta_i64(st, DELAY).unwrap_or(0), base, max);
    tmux::ride_along(arm_cmd(ctx, every, chain));
    let changed = tick(st);
    let rode = tmux::take_riders().is_empty();
    match (rode, changed) {
        (true, false) => armed(st, now + every, every),
        (false, false) => arm_in(st, ctx, now, chain, every, every),
        (true, true) if every == base => armed(st, now + base, 0),
        (false, true) => arm_in(st, ctx, now, chain, base, 0),
        (true, true) => match take_chain_number(st) {
            Some(next) => arm_in(st, ctx, now, next, base, 0),
            None => armed(st, now + every, 0),
        },
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

fn set_up(st: &Store) -> bool {
    st.meta_get("plugin_setup").ok().flatten().as_deref() == Some("1")
}

/// Called by any tick (under the lock): re-arm a chain that broke (crash, server restart).
/// The new chain gets the next number, so a late survivor of the old one stops.
pub fn arm_if_stale(st: &mut Store, ctx: &Ctx, policy: &Policy, now: i64) {
    if !set_up(st) {
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
        arm_in(st, ctx, now, next, every, 0);
    }
}

/// Something changed outside the timer (a tick of a hook, the status bar or a command
/// saw a change; `run start`, `signal` and other commands changed state): the timer goes
/// back to the base interval. A chain asleep for longer than that is replaced by a new
/// one at the base (its own firing then stops); otherwise the next firing re-arms at
/// the base. A broken chain is re-armed as by `arm_if_stale`.
pub fn wake(st: &mut Store, ctx: &Ctx, policy: &Policy, now: i64) {
    if !set_up(st) {
        return;
    }
    let base = interval(st, policy).max(1);
    let next_due = meta_i64(st, "timer_next_due");
    let fresh = next_due.is_some_and(|d| now <= d + base + 5);
    if fresh && next_due.is_some_and(|d| d <= now + base) {
        if meta_i64(st, DELAY) != Some(0) {
            if let Ok(tx) = st.write() {
                let _ = tx.meta_set(DELAY, "0");
                let _ = tx.commit();
            }
        }
        return;
    }
    if !active(st) {
        return;
    }
    if let Some(next) = take_chain_number(st) {
        arm_in(st, ctx, now, next, base, 0);
    }
}

/// After a tick other than the timer's: `wake` when it saw a change, else `arm_if_stale`.
pub fn after_tick(st: &mut Store, ctx: &Ctx, policy: &Policy, now: i64, changed: bool) {
    if changed {
        wake(st, ctx, policy, now);
    } else {
        arm_if_stale(st, ctx, policy, now);
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
        let every = interval(st, policy).max(1);
        arm_in(st, ctx, now, next, every, 0);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn is_due_table() {
        // (last full tick, interval, now, due, why)
        let cases: &[(i64, i64, i64, bool, &str)] = &[
            (0, 15, 1_000, true, "never ticked"),
            (1_000, 15, 1_000, false, "just ticked"),
            (1_000, 15, 1_014, false, "one second before the boundary"),
            (1_000, 15, 1_015, true, "exactly at the boundary"),
            (1_000, 15, 1_016, true, "past the boundary"),
            (
                1_010,
                15,
                1_000,
                false,
                "a little ahead: same-second skew, not a step",
            ),
            (1_015, 15, 1_000, false, "ahead by exactly one interval"),
            (
                1_016,
                15,
                1_000,
                true,
                "clock stepped back by more than one interval",
            ),
            (
                1_000,
                0,
                1_000,
                false,
                "interval 0 counts as 1 s: not twice in a second",
            ),
            (1_000, 0, 1_001, true, "interval 0 counts as 1 s"),
            (1_000, -5, 1_000, false, "negative interval counts as 1 s"),
            (1_000, -5, 1_001, true, "negative interval counts as 1 s"),
            (
                i64::MIN,
                15,
                1_000,
                true,
                "garbage in the past: no overflow",
            ),
            (
                i64::MAX,
                15,
                1_000,
                true,
                "garbage in the future: no overflow",
            ),
            (
                1_000,
                i64::MAX,
                i64::MAX,
                false,
                "huge interval: no overflow",
            ),
        ];
        for &(last, interval, now, want, why) in cases {
            assert_eq!(
                is_due(last, interval, now),
                want,
                "{why}: last {last}, interval {interval}, now {now}"
            );
        }
    }

    #[test]
    fn the_stored_interval_wins_when_positive() {
        let policy = Policy::default();
        let own = policy.operator.tick_interval_seconds;
        assert_eq!(effective_interval(Some(5), &policy), 5);
        assert_eq!(effective_interval(Some(0), &policy), own);
        assert_eq!(effective_interval(Some(-3), &policy), own);
        assert_eq!(effective_interval(None, &policy), own);
    }

    #[test]
    fn the_wait_doubles_up_to_the_max_and_starts_at_the_base() {
        // (last armed, base, max, next, why)
        let cases: &[(i64, i64, i64, i64, &str)] = &[
            (0, 15, 60, 15, "a new chain or a change: the base"),
            (15, 15, 60, 30, "quiet: doubled"),
            (30, 15, 60, 60, "quiet: doubled to the max"),
            (60, 15, 60, 60, "quiet at the max: stays"),
            (45, 15, 60, 60, "never past the max"),
            (15, 15, 15, 15, "max = base: no backoff"),
            (7, 15, 60, 15, "never below the base"),
            (i64::MAX, 15, 60, 60, "garbage: no overflow"),
            (-4, 15, 60, 15, "negative garbage: the base"),
        ];
        for &(last, base, max, want, why) in cases {
            assert_eq!(next_delay(last, base, max), want, "{why}: last {last}");
        }
    }

    #[test]
    fn the_max_wait_is_the_policy_key_within_the_base_and_the_clock_gap() {
        let mut policy = Policy::default();
        assert_eq!(policy.operator.idle_tick_max_seconds, 60);
        assert_eq!(max_delay(15, &policy), 60, "the default");
        assert_eq!(max_delay(90, &policy), 90, "below the base: no backoff");
        policy.operator.idle_tick_max_seconds = 100_000;
        // The clock takes a gap over max(5 x 15, 15 + 120) = 135 s for a suspend.
        assert_eq!(max_delay(15, &policy), 120, "under the clock's gap limit");
    }
}
