//! `metawsm-tick timer`: the server-side tick for when no client is attached (`#()` jobs
//! never run then). A self-re-arming `run-shell -b -d N`, guarded by `timer_next_due`
//! and a chain number (`timer_chain`): only the chain the database names keeps going.

use crate::cli::{self, CliResult, Ctx};
use crate::lock::{StateLock, Wait};
use crate::schedule::{active, arm, due, meta_i64};
use crate::store::{OpenMode, Store};
use crate::tick::{self, TickOptions};
use crate::timeutil::now_unix;
use lexopt::prelude::*;
use std::time::Duration;

pub const HELP: &str = "\
Usage: metawsm-tick timer [--chain N]

Run by tmux ('run-shell -b -d N') after 'tmux-setup': ticks when due, then re-arms itself
once. While its ticks find nothing changed the wait doubles from the tick interval up to
operator.idle_tick_max_seconds; a tick that finds a change (its own, a hook's, a
command's) brings it back to the tick interval. Each armed chain carries a number; a chain that is not the current one (armed
twice, or replaced after it went stale) stops. While a long tick holds the lock it only
re-arms. Silent, exits 0.
";

pub fn main(parser: &mut lexopt::Parser, ctx: &Ctx) -> CliResult<i32> {
    let mut chain = None;
    while let Some(arg) = parser.next()? {
        match arg {
            Long("chain") => {
                chain = cli::os_to_string(parser.value()?, "--chain")?
                    .parse::<i64>()
                    .ok()
            }
            Short('h') | Long("help") => {
                cli::print_help(HELP);
                return Ok(0);
            }
            other => return Err(other.unexpected().into()),
        }
    }
    crate::cli::watchdog(20, None);
    fire(ctx, chain);
    Ok(0)
}

fn fire(ctx: &Ctx, chain: Option<i64>) {
    let Ok(mut st) = Store::open(&ctx.db, OpenMode::Existing, false) else {
        return;
    };
    let Ok(policy) = ctx.policy() else { return };
    let current = meta_i64(&st, "timer_chain").unwrap_or(0);
    // Superseded: a newer chain owns the schedule; this one ends here.
    if chain.is_some_and(|c| c != current) {
        return;
    }
    let Ok(Some(_lock)) = StateLock::acquire(&ctx.db, Wait::Bounded(Duration::from_secs(5))) else {
        // A long tick holds the lock. Keep the schedule alive (the holder does not
        // re-arm a chain that is merely late), and tick next time.
        if let Some(c) = chain {
            if active(&st) {
                arm(&mut st, ctx, &policy, now_unix(), c);
            }
        }
        return;
    };
    let now = now_unix();
    let current = meta_i64(&st, "timer_chain").unwrap_or(0);
    match chain {
        Some(c) if c != current => return,
        Some(_) => {}
        // Without a chain number (armed by an older version): the schedule decides.
        None => {
            if meta_i64(&st, "timer_next_due").is_some_and(|d| now + 1 < d) {
                return;
            }
        }
    }
    let opts = TickOptions {
        run: None,
        dry_run: false,
        llm_mode: None,
        source: crate::tick::TickSource::Timer,
    };
    if due(&st, &policy, now) && active(&st) {
        // Re-armed inside the tick's observation; the next firing ends the chain when no
        // run is left to supervise.
        // A tick that fails counts as a change: the timer does not back off blind.
        crate::schedule::arm_with(&mut st, ctx, &policy, now, chain.unwrap_or(current), |st| {
            tick::run(st, ctx, &policy, &opts).map_or(true, |r| r.changed)
        });
        return;
    }
    if due(&st, &policy, now) {
        let _ = tick::run(&mut st, ctx, &policy, &opts);
    }
    if active(&st) {
        arm(&mut st, ctx, &policy, now, chain.unwrap_or(current));
    } else if let Ok(tx) = st.write() {
        // Nothing to supervise: let the chain end; `run start` re-arms it.
        let _ = tx.meta_delete("timer_next_due");
        let _ = tx.commit();
    }
}
