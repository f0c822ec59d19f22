//! `metawsm-tick hook EVENT …`: tmux hooks land here. Silent, always exits 0: any output
//! or failure would be dumped into some pane's view mode.

use crate::cli::{CliResult, Ctx};
use crate::lock::{StateLock, Wait};
use crate::schedule::due;
use crate::store::{OpenMode, Store};
use crate::tick::{self, TickOptions};
use crate::timeutil::now_unix;
use crate::tmux;
use std::time::Duration;

pub const HELP: &str = "\
Usage: metawsm-tick hook EVENT [ARGS…]

Called by the hooks that 'tmux-setup' registers (index 91):
  pane-died PANE SESSION STATUS   pane-exited PANE   session-closed SESSION
  alert-silence SESSION           client-attached
An event for a session that is not one of our agents returns at once. For ours it is
queued, then a tick runs for that run if the lock frees within a moment; otherwise the
lock holder or the next tick handles it. alert-silence re-arms the session afterwards
(kill-session -C; tmux latches the alert otherwise). Prints nothing and exits 0, always.
";

pub const EVENTS: [&str; 5] = [
    "pane-died",
    "pane-exited",
    "session-closed",
    "alert-silence",
    "client-attached",
];

pub fn main(parser: &mut lexopt::Parser, ctx: &Ctx) -> CliResult<i32> {
    let mut args = Vec::new();
    if let Ok(raw) = parser.raw_args() {
        for a in raw {
            args.push(a.to_string_lossy().into_owned());
        }
    }
    if args.first().is_some_and(|a| a == "-h" || a == "--help") {
        crate::cli::print_help(HELP);
        return Ok(0);
    }
    crate::cli::watchdog(10, None);
    handle(ctx, &args);
    Ok(0)
}

fn handle(ctx: &Ctx, args: &[String]) {
    let Some(event) = args.first().map(String::as_str) else {
        return;
    };
    if !EVENTS.contains(&event) {
        return;
    }
    // The common case (a pane that is not ours) costs one DB open and one indexed query;
    // a missing database means nothing is ours, and is never created here.
    let Ok(mut store) = Store::open(&ctx.db, OpenMode::Existing, false) else {
        return;
    };
    let now = now_unix();
    let (session, pane) = match event {
        "pane-died" => (args.get(2).cloned(), args.get(1).cloned()),
        "pane-exited" => (None, args.get(1).cloned()),
        "session-closed" | "alert-silence" => (args.get(1).cloned(), None),
        _ => (None, None),
    };
    let run_id = if event == "client-attached" {
        None
    } else {
        match store.agent_by_session_or_pane(session.as_deref(), pane.as_deref()) {
            Ok(Some((run, _))) => Some(run),
            _ => return,
        }
    };
    // Queued before anything else can fail: whoever ticks next records it.
    if let Some(run) = &run_id {
        if store
            .inbox_push(event, Some(run), &args[1..].join(" "), now)
            .is_err()
        {
            return;
        }
    }
    // alert-silence latches once per unattached session until re-armed. The event is
    // safely queued, so re-arm whether or not we get the lock (a busy lock must not
    // silence the session for good): last in the tick's observation spawn, or alone.
    let rearm = session
        .as_deref()
        .filter(|_| event == "alert-silence")
        .map(|s| {
            tmux::Cmd::new("kill-session")
                .flag("-C")
                .target(tmux::Target::Session(s))
        });
    if let Some(c) = rearm {
        tmux::ride_after(c);
    }
    tick_now(ctx, &mut store, run_id, now);
    let left = tmux::take_trailers();
    if !left.is_empty() {
        let _ = ctx.tmux.run(&left);
    }
}

/// A tick for `run` (or a full tick when due, for client-attached) if the lock frees
/// within a moment; otherwise the queued event waits for the holder or the next tick.
fn tick_now(ctx: &Ctx, store: &mut Store, run_id: Option<String>, now: i64) {
    let Ok(policy) = ctx.policy() else { return };
    if run_id.is_none() && !due(store, &policy, now) {
        return;
    }
    let Ok(Some(_lock)) = StateLock::acquire(&ctx.db, Wait::Bounded(Duration::from_millis(300)))
    else {
        return;
    };
    let opts = TickOptions {
        run: run_id,
        dry_run: false,
        llm_mode: None,
        source: crate::tick::TickSource::Hook,
    };
    if tick::run(store, ctx, &policy, &opts).is_err() {
        return;
    }
    // Events queued while we ticked would otherwise wait for the next tick.
    if store.inbox_pending().unwrap_or(false) {
        let opts = TickOptions { run: None, ..opts };
        let _ = tick::run(store, ctx, &policy, &opts);
    }
}
