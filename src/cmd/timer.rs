//! `metawsm-tick timer`: the server-side tick for when no client is attached (`#()` jobs
//! never run then). A self-re-arming `run-shell -b -d N`, guarded by `timer_next_due`
//! and a chain number (`timer_chain`): only the chain the database names keeps going.

use crate::cli::{self, CliResult, Ctx};
use crate::cmd::tick::{due, interval};
use crate::engine::{self, TickOptions};
use crate::lock::{StateLock, Wait};
use crate::policy::Policy;
use crate::store::{self, OpenMode, Store};
use crate::timeutil::now_unix;
use crate::tmux;
use lexopt::prelude::*;
use std::time::Duration;

const HELP: &str = "\
Usage: metawsm-tick timer [--chain N]

Run by tmux ('run-shell -b -d N') after 'tmux-setup': ticks when due, then re-arms itself
once. Each armed chain carries a number; a chain that is not the current one (armed
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
    crate::cli::watchdog(20, false);
    fire(ctx, chain);
    Ok(0)
}

fn meta_i64(st: &Store, key: &str) -> Option<i64> {
    st.meta_get(key)
        .ok()
        .flatten()
        .and_then(|v| v.parse::<i64>().ok())
}

fn active(st: &Store) -> bool {
    st.runs(false).map(|r| !r.is_empty()).unwrap_or(false)
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
    if due(&st, &policy, now) {
        let opts = TickOptions {
            run: None,
            dry_run: false,
            llm_mode: None,
            source: "timer",
        };
        let _ = engine::tick(&mut st, ctx, &policy, &opts);
    }
    if active(&st) {
        arm(&mut st, ctx, &policy, now, chain.unwrap_or(current));
    } else if let Ok(tx) = st.write() {
        // Nothing to supervise: let the chain end; `run start` re-arms it.
        let _ = tx.execute("DELETE FROM meta WHERE key = 'timer_next_due'", []);
        let _ = tx.commit();
    }
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

fn arm(st: &mut Store, ctx: &Ctx, policy: &Policy, now: i64, chain: i64) {
    let every = interval(st, policy).max(1);
    let cmd = tmux::Cmd::new("run-shell")
        .flags(&["-b", "-d"])
        .num(every)
        .end_of_flags()
        .expanded("timer command", &timer_command(ctx, chain));
    if ctx.tmux.run(&[cmd]).is_ok() {
        if let Ok(tx) = st.write() {
            let _ = store::meta_set(&tx, "timer_next_due", &(now + every).to_string());
            let _ = store::meta_set(&tx, "timer_chain", &chain.to_string());
            let _ = tx.commit();
        }
    }
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
    let next = meta_i64(st, "timer_chain").unwrap_or(0) + 1;
    arm(st, ctx, policy, now, next);
}

/// `tmux-setup` (server start or plugin reload): always a new chain in this server, even
/// when the schedule looks fresh (the server may have just been restarted, taking the old
/// chain with it). A surviving old chain sees the new number and stops.
pub fn arm_new_chain(st: &mut Store, ctx: &Ctx, policy: &Policy, now: i64) {
    if !active(st) {
        return;
    }
    let next = meta_i64(st, "timer_chain").unwrap_or(0) + 1;
    arm(st, ctx, policy, now, next);
}
