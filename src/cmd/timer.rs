//! `metawsm-tick timer`: the server-side tick for when no client is attached (`#()` jobs
//! never run then). A self-re-arming `run-shell -b -d N`, guarded by `timer_next_due`.

use crate::cli::{CliResult, Ctx};
use crate::cmd::tick::{due, interval};
use crate::engine::{self, TickOptions};
use crate::lock::{StateLock, Wait};
use crate::policy::Policy;
use crate::store::{self, OpenMode, Store};
use crate::timeutil::now_unix;
use crate::tmux;
use std::time::Duration;

const HELP: &str = "\
Usage: metawsm-tick timer

Run by tmux ('run-shell -b -d N') after 'tmux-setup': ticks when due, then re-arms itself
once. A duplicate chain (armed twice) notices it is early and stops. Silent, exits 0.
";

pub fn main(parser: &mut lexopt::Parser, ctx: &Ctx) -> CliResult<i32> {
    if super::no_args(parser, HELP)? {
        return Ok(0);
    }
    let _ = nix::unistd::alarm::set(20);
    fire(ctx);
    Ok(0)
}

fn fire(ctx: &Ctx) {
    let Ok(mut st) = Store::open(&ctx.db, OpenMode::Existing, false) else {
        return;
    };
    let Ok(policy) = ctx.policy() else { return };
    let Ok(Some(_lock)) = StateLock::acquire(&ctx.db, Wait::Bounded(Duration::from_secs(5))) else {
        return;
    };
    let now = now_unix();
    let next_due = st
        .meta_get("timer_next_due")
        .ok()
        .flatten()
        .and_then(|v| v.parse::<i64>().ok());
    if next_due.is_some_and(|d| now + 1 < d) {
        // Another chain owns the schedule; this one ends here.
        return;
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
    let active = st.runs(false).map(|r| !r.is_empty()).unwrap_or(false);
    if active {
        arm(&mut st, ctx, &policy, now);
    } else if let Ok(tx) = st.write() {
        // Nothing to supervise: let the chain end; `run start` re-arms it.
        let _ = tx.execute("DELETE FROM meta WHERE key = 'timer_next_due'", []);
        let _ = tx.commit();
    }
}

/// The command tmux runs: absolute paths, `#` doubled (run-shell expands formats).
pub fn timer_command(ctx: &Ctx) -> String {
    let exe = crate::cli::current_exe();
    let mut words = vec![tmux::sh_quote(&exe.to_string_lossy())];
    words.extend(ctx.self_args().iter().map(|a| tmux::sh_quote(a)));
    words.push("timer".into());
    tmux::escape_format(&format!("exec {} >/dev/null 2>&1", words.join(" ")))
}

fn arm(st: &mut Store, ctx: &Ctx, policy: &Policy, now: i64) {
    let every = interval(st, policy).max(1);
    let cmd = tmux::cmd([
        "run-shell",
        "-b",
        "-d",
        &every.to_string(),
        &timer_command(ctx),
    ]);
    if ctx.tmux.run(&[cmd]).is_ok() {
        if let Ok(tx) = st.write() {
            let _ = store::meta_set(&tx, "timer_next_due", &(now + every).to_string());
            let _ = tx.commit();
        }
    }
}

/// Called by any tick (under the lock): re-arm a chain that broke (crash, server restart).
pub fn arm_if_stale(st: &mut Store, ctx: &Ctx, policy: &Policy, now: i64) {
    let setup = st.meta_get("plugin_setup").ok().flatten();
    if setup.as_deref() != Some("1") {
        return;
    }
    let every = interval(st, policy).max(1);
    let next_due = st
        .meta_get("timer_next_due")
        .ok()
        .flatten()
        .and_then(|v| v.parse::<i64>().ok());
    if next_due.is_some_and(|d| now <= d + every + 5) {
        return;
    }
    if !st.runs(false).map(|r| !r.is_empty()).unwrap_or(false) {
        return;
    }
    arm(st, ctx, policy, now);
}
