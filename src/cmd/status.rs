//! `metawsm-tick status`: the status-line segment. Prints fast, never waits for anyone.

use crate::cli::{self, CliError, CliResult, Ctx};
use crate::lock::{StateLock, Wait};
use crate::policy::Policy;
use crate::policy::StatusPolicy;
use crate::render::{self, Format};
use crate::schedule::{due, effective_interval, is_due};
use crate::status_cache::{self, StatusCache};
use crate::store::{OpenMode, Store, StoreError};
use crate::tick::{self, TickOptions};
use crate::timeutil::now_unix;
use lexopt::prelude::*;
use std::collections::HashMap;
use std::time::Duration;

pub const HELP: &str = "\
Usage: metawsm-tick status [--format tmux|plain|json] [--no-tick]

Prints the compact segment for status-right, e.g. ⚙3 ?1 ✖1 (working, needs guidance,
dead/blocked; ✔ done), from the cache file beside the database, without touching tmux.
When the last full tick is older than operator.tick_interval_seconds, a tmux status job
(TMUX set) starts one in the background (one for all clients) and prints at once; from a
shell the tick runs first if the lock is free. Never fails the bar: problems print a
marker such as metawsm:!policy and exit 0 (see 'metawsm-tick doctor').

Options:
  --format F   tmux (default, with #[fg=…] styles), plain, or json
  --no-tick    Never tick, only render
";

pub fn main(parser: &mut lexopt::Parser, ctx: &Ctx) -> CliResult<i32> {
    let (mut format, mut no_tick) = (Format::Tmux, false);
    while let Some(arg) = parser.next()? {
        match arg {
            Long("format") => {
                format = match cli::os_to_string(parser.value()?, "--format")?.as_str() {
                    "tmux" => Format::Tmux,
                    "plain" => Format::Plain,
                    "json" => Format::Json,
                    other => {
                        return Err(CliError::Usage(format!(
                            "status: --format {other:?} (expected tmux|plain|json)"
                        )))
                    }
                }
            }
            Long("no-tick") => no_tick = true,
            Short('h') | Long("help") => {
                cli::print_help(HELP);
                return Ok(0);
            }
            other => return Err(other.unexpected().into()),
        }
    }
    // A wedged tmux call must never freeze a client's bar: tmux never times out a job.
    // What the watchdog prints is in the asked format (JSON stays JSON).
    let timeout = marker_only(&Default::default(), format, "metawsm:!timeout");
    crate::cli::watchdog(3, Some(timeout));
    let (seg, hand_off) = segment(ctx, format, no_tick);
    println!("{seg}");
    if hand_off {
        tick_in_background(ctx);
    }
    Ok(0)
}

/// A status job of the tmux bar (tmux sets `TMUX` for it) never runs a tick: one that
/// finds a tick due hands it off and prints from the cache. From a plain shell the tick
/// runs inline, so the segment printed is fresh.
fn bar_job() -> bool {
    std::env::var_os("TMUX").is_some()
}

/// The bar's due path, decided from the cache file alone (no SQLite): true when this
/// call is the one (of all clients' status jobs) to hand the tick off this due period.
fn claim_hand_off(ctx: &Ctx, no_tick: bool, c: &StatusCache, policy: &Policy, now: i64) -> bool {
    let interval = effective_interval(c.tick_interval, policy);
    !no_tick
        && is_due(c.last_full_tick, interval, now)
        && crate::status_handoff::claim(&ctx.db, interval, now)
}

/// After the segment is printed: closes the job's pipe (tmux has its output and waits for
/// nothing more), then forks the tick into its own session. No exec: the child already
/// has the policy and the arguments, and the bar job exits right after the fork, so a
/// hand-off costs the status call about what a cached answer does.
fn tick_in_background(ctx: &Ctx) {
    use nix::unistd::{dup2_stderr, dup2_stdin, dup2_stdout, fork, setsid, ForkResult};
    use std::io::Write;
    let _ = std::io::stdout().flush();
    let Ok(null) = std::fs::File::options()
        .read(true)
        .write(true)
        .open("/dev/null")
    else {
        return;
    };
    // The child must never hold the job's pipe: no fork unless all three are replaced.
    if dup2_stdin(&null).is_err() || dup2_stdout(&null).is_err() || dup2_stderr(&null).is_err() {
        return;
    }
    drop(null);
    // SAFETY: the process is single-threaded here (the watchdog is an alarm, not a
    // thread), so the child may run any code.
    if let Ok(ForkResult::Child) = unsafe { fork() } {
        let _ = setsid();
        // Not a bar job any more: nobody waits for it, so it may wait for the lock and
        // run as long as the timer's tick (alarms are not inherited across fork).
        crate::cli::watchdog(20, None);
        tick_if_due(ctx);
        std::process::exit(0);
    }
}

/// The handed-off tick: waits a moment for the state lock (a tick in progress finishes
/// first), then ticks if one is still due. The tick refreshes the cache.
fn tick_if_due(ctx: &Ctx) {
    let Ok(policy) = ctx.policy() else { return };
    let mut store = match Store::open(&ctx.db, OpenMode::Existing, false) {
        Ok(s) => s,
        Err(StoreError::NotFound(_)) => {
            // The database is gone: so is what the cache shows (the bar prints nothing,
            // as without a database).
            let _ = std::fs::remove_file(status_cache::path(&ctx.db));
            return;
        }
        Err(_) => return,
    };
    let Ok(Some(_lock)) = StateLock::acquire(&ctx.db, Wait::Bounded(Duration::from_secs(5))) else {
        return;
    };
    if due(&store, &policy, now_unix()) {
        let _ = tick::run(&mut store, ctx, &policy, &tick_options());
    } else {
        // The cache said due and the database did not: the cache is behind, catch it up.
        let _ = status_cache::refresh(&store);
    }
}

fn tick_options() -> TickOptions {
    TickOptions {
        run: None,
        dry_run: false,
        llm_mode: None,
        source: crate::tick::TickSource::Status,
    }
}

/// The segment, and whether this call is to hand a due tick off (after printing).
fn segment(ctx: &Ctx, format: Format, no_tick: bool) -> (String, bool) {
    let policy = match ctx.policy() {
        Ok(p) => p,
        Err(_) => {
            return (
                marker_only(&Default::default(), format, "metawsm:!policy"),
                false,
            )
        }
    };
    let now = now_unix();
    // The common case: answered from the cache file without SQLite or tmux; so is a bar
    // job that finds a tick due.
    let cached = status_cache::read(&ctx.db);
    if let Some(c) = &cached {
        let interval = effective_interval(c.tick_interval, &policy);
        if no_tick || !is_due(c.last_full_tick, interval, now) {
            return (from_cache(c, &policy.status, format), false);
        }
        if bar_job() {
            let hand = claim_hand_off(ctx, no_tick, c, &policy, now);
            return (from_cache(c, &policy.status, format), hand);
        }
    }
    let mut store = match Store::open(&ctx.db, OpenMode::Existing, false) {
        Ok(s) => s,
        Err(StoreError::NotFound(_)) => return (String::new(), false),
        Err(_) => return (marker_only(&policy.status, format, "metawsm:!db"), false),
    };
    if cached.is_none() && bar_job() {
        // No cache yet (or it was removed): write it once from the database, then as above.
        return match status_cache::refresh(&store) {
            Ok(c) => {
                let hand = claim_hand_off(ctx, no_tick, &c, &policy, now);
                (from_cache(&c, &policy.status, format), hand)
            }
            Err(_) => (marker_only(&policy.status, format, "metawsm:!db"), false),
        };
    }
    if !no_tick && due(&store, &policy, now) {
        // try_lock only: a busy lock means someone else is ticking right now.
        if let Ok(Some(_lock)) = StateLock::acquire(&ctx.db, Wait::No) {
            // Re-check under the lock: another status call may have just ticked.
            if due(&store, &policy, now)
                && tick::run(&mut store, ctx, &policy, &tick_options()).is_err()
            {
                return (marker_only(&policy.status, format, "metawsm:!tick"), false);
            }
        }
    }
    let seg = match status_cache::refresh(&store) {
        Ok(c) => from_cache(&c, &policy.status, format),
        Err(_) => match (cached, store.status_rows()) {
            (_, Ok(rows)) => render::render(
                &status_cache::count(&rows),
                &render::style(&policy.status, &HashMap::new()),
                format,
                None,
            ),
            (Some(c), Err(_)) => from_cache(&c, &policy.status, format),
            (None, Err(_)) => marker_only(&policy.status, format, "metawsm:!db"),
        },
    };
    (seg, false)
}

fn marker_only(p: &StatusPolicy, format: Format, marker: &str) -> String {
    render::render(
        &Default::default(),
        &render::style(p, &HashMap::new()),
        format,
        Some(marker),
    )
}

fn from_cache(c: &StatusCache, p: &StatusPolicy, format: Format) -> String {
    let marker = if !c.tmux_error.is_empty() {
        Some("metawsm:!tmux")
    } else {
        (c.unwritten > 0).then_some(crate::unwritten::MARKER)
    };
    render::render(
        &c.counts(),
        &render::style(p, &c.tmux_options),
        format,
        marker,
    )
}
