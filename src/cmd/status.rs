//! `metawsm-tick status`: the status-line segment. Prints fast, never waits for anyone.

use crate::cli::{self, CliError, CliResult, Ctx};
use crate::lock::{StateLock, Wait};
use crate::policy::StatusPolicy;
use crate::render::{self, Format};
use crate::schedule::due;
use crate::status_cache::{self, StatusCache};
use crate::store::{OpenMode, Store, StoreError};
use crate::tick::{self, TickOptions};
use crate::timeutil::now_unix;
use lexopt::prelude::*;
use std::collections::HashMap;

pub const HELP: &str = "\
Usage: metawsm-tick status [--format tmux|plain|json] [--no-tick]

Prints the compact segment for status-right, e.g. ⚙3 ?1 ✖1 (working, needs guidance,
dead/blocked; ✔ done). Runs a full tick only when the last one is older than
operator.tick_interval_seconds and the lock is free; otherwise prints from the database
without touching tmux. Never fails the bar: problems print a marker such as
metawsm:!policy and exit 0 (see 'metawsm-tick doctor').

Options:
  --format F   tmux (default, with #[fg=…] styles), plain, or json
  --no-tick    Never tick, only render
";

pub fn main(parser: &mut lexopt::Parser, ctx: &Ctx) -> CliResult<i32> {
    let (mut format, mut no_tick, mut handed) = (Format::Tmux, false, false);
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
            // Internal: the background tick a status job handed off (see `hand_off`).
            Long("handed-off") => handed = true,
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
    let seg = segment(ctx, format, no_tick, handed);
    if !handed {
        println!("{seg}");
    }
    Ok(0)
}

/// A status job of the tmux bar (`TMUX` is set) that finds a tick due starts it as a
/// background `status --handed-off` and prints from the cache: the bar never waits for
/// a tick (its p99 was the tick's cost). The child re-checks under the lock, so several
/// clients at once start at most one tick. From a plain shell the tick runs inline, so
/// the segment printed is fresh.
fn hand_off(ctx: &Ctx) -> bool {
    use std::os::unix::process::CommandExt;
    if std::env::var_os("TMUX").is_none() {
        return false;
    }
    std::process::Command::new(cli::current_exe())
        .args(ctx.self_args())
        .args(["status", "--handed-off"])
        // Never the job's pipe: tmux would wait for it (and the child for the bar).
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .process_group(0)
        .spawn()
        .is_ok()
}

fn segment(ctx: &Ctx, format: Format, no_tick: bool, handed: bool) -> String {
    let policy = match ctx.policy() {
        Ok(p) => p,
        Err(_) => return marker_only(&Default::default(), format, "metawsm:!policy"),
    };
    let now = now_unix();
    // The common case: no tick due, answered from the cache file without SQLite or tmux.
    let cached = status_cache::read(&ctx.db);
    if let Some(c) = &cached {
        let interval = c
            .tick_interval
            .filter(|i| *i > 0)
            .unwrap_or(policy.operator.tick_interval_seconds);
        let fresh = now - c.last_full_tick < interval && c.last_full_tick <= now + interval;
        if no_tick || fresh {
            return from_cache(c, &policy.status, format);
        }
    }
    let mut store = match Store::open(&ctx.db, OpenMode::Existing, false) {
        Ok(s) => s,
        Err(StoreError::NotFound(_)) => return String::new(),
        Err(_) => return marker_only(&policy.status, format, "metawsm:!db"),
    };
    let due_now = !no_tick && due(&store, &policy, now);
    if due_now && !handed && hand_off(ctx) {
        return match cached {
            Some(c) => from_cache(&c, &policy.status, format),
            None => status_cache::refresh(&store)
                .map(|c| from_cache(&c, &policy.status, format))
                .unwrap_or_else(|_| marker_only(&policy.status, format, "metawsm:!db")),
        };
    }
    if due_now {
        // try_lock only: a busy lock means someone else is ticking right now.
        if let Ok(Some(_lock)) = StateLock::acquire(&ctx.db, Wait::No) {
            // Re-check under the lock: another status call may have just ticked.
            if due(&store, &policy, now) {
                let opts = TickOptions {
                    run: None,
                    dry_run: false,
                    llm_mode: None,
                    source: "status",
                };
                if tick::run(&mut store, ctx, &policy, &opts).is_err() {
                    return marker_only(&policy.status, format, "metawsm:!tick");
                }
            }
        }
    }
    match status_cache::refresh(&store) {
        Ok(c) => from_cache(&c, &policy.status, format),
        Err(_) => match (cached, store.status_rows()) {
            (_, Ok(mut rows)) => render::render(
                &{
                    crate::orphan::mark(&mut rows);
                    render::classify(&rows)
                },
                &render::style(&policy.status, &HashMap::new()),
                format,
                None,
            ),
            (Some(c), Err(_)) => from_cache(&c, &policy.status, format),
            (None, Err(_)) => marker_only(&policy.status, format, "metawsm:!db"),
        },
    }
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
