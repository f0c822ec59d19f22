//! `metawsm-tick run revive`: start an orphaned run's agents again on this tmux server.

use crate::cli::{self, CliError, CliResult, Ctx};
use crate::store::OpenMode;
use crate::timeutil::now_unix;
use lexopt::prelude::*;

pub const HELP: &str = "\
Usage: metawsm-tick run revive RUN | --all

Starts every agent of an orphaned run (its tmux server is gone, or restarted since the
agents ran: a reboot) again on this tmux server, each in a session of its own, resuming
its conversation where it has a resume command (docs/restarts.md). The run keeps its
history, restart budget and pending questions. A run that is not orphaned is left alone.

Options:
  --all        Every orphaned run
  -h, --help   Show this help

Exit codes: 0 revived (or nothing orphaned with --all), 1 a revive failed or RUN is not
orphaned, 2 usage error.
";

pub fn main(parser: &mut lexopt::Parser, ctx: &Ctx) -> CliResult<i32> {
    let (mut id, mut all) = (None, false);
    while let Some(arg) = parser.next()? {
        match arg {
            Long("all") => all = true,
            Short('h') | Long("help") => {
                cli::print_help(HELP);
                return Ok(0);
            }
            Value(v) if id.is_none() => id = Some(cli::os_to_string(v, "RUN")?),
            other => return Err(other.unexpected().into()),
        }
    }
    if all == id.is_some() {
        return Err(CliError::Usage("run revive: give RUN or --all".into()));
    }
    ctx.policy()?;
    let _lock = super::lock(ctx)?;
    let mut st = ctx.open(OpenMode::Existing, true)?;
    let orphaned = crate::revive::orphaned_runs(&st)?;
    let chosen: Vec<_> = match &id {
        Some(i) => {
            let run = st.run(i)?;
            match orphaned.into_iter().find(|(r, _)| &r.id == i) {
                Some(o) => vec![o],
                None => {
                    return Err(CliError::Failure(format!(
                    "run {i} is {} and not orphaned: its tmux server is there (use run restart)",
                    run.status
                )))
                }
            }
        }
        None => orphaned,
    };
    if chosen.is_empty() {
        crate::say!("no orphaned runs");
        return Ok(0);
    }
    let obs = ctx.tmux.observe();
    let now = now_unix();
    let mut failed = 0;
    for (run, why) in &chosen {
        match crate::revive::revive(&mut st, ctx, run, &obs, now, "cli") {
            Ok(kinds) => crate::say!("revived {} ({why}): {kinds}", run.id),
            Err(e) => {
                failed += 1;
                eprintln!(
                    "{}",
                    crate::escape::human(&format!("metawsm-tick: {}: {e}", run.id))
                );
            }
        }
    }
    let _ = crate::status_cache::refresh(&st);
    if let Ok(policy) = ctx.policy() {
        crate::schedule::wake(&mut st, ctx, &policy, now);
    }
    Ok(if failed > 0 { 1 } else { 0 })
}
