//! `metawsm-tick run stop`: run → stopping → stopped, every agent session killed.

use crate::cli::{self, CliError, CliResult, Ctx};
use crate::model::RunStatus;
use crate::store::OpenMode;
use crate::timeutil::now_unix;
use crate::tmux;
use lexopt::prelude::*;

pub const HELP: &str = "\
Usage: metawsm-tick run stop RUN|--ticket T

Moves the run to stopping, kills each agent's tmux session (exact target), then stopped.
";

pub fn main(parser: &mut lexopt::Parser, ctx: &Ctx) -> CliResult<i32> {
    let mut ticket = None;
    let mut id = None;
    while let Some(arg) = parser.next()? {
        match arg {
            Short('h') | Long("help") => {
                cli::print_help(HELP);
                return Ok(0);
            }
            Value(v) if id.is_none() => id = Some(cli::os_to_string(v, "RUN")?),
            Long("ticket") => ticket = Some(cli::os_to_string(parser.value()?, "--ticket")?),
            other => return Err(other.unexpected().into()),
        }
    }
    let id = super::select::run_id(ctx, "run stop", id, ticket)?;
    let _lock = super::lock(ctx)?;
    let mut st = ctx.open(OpenMode::Existing, true)?;
    let run = st.run(&id)?;
    let now = now_unix();
    // Stopping what is already over is not an error: say so and succeed.
    if matches!(
        run.status,
        RunStatus::Stopped | RunStatus::Completed | RunStatus::Closed
    ) {
        println!("{id} is already {}; nothing to stop", run.status);
        return Ok(0);
    }
    if run.status != RunStatus::Stopping {
        let tx = st.write()?;
        tx.transition_run(
            &id,
            run.status,
            RunStatus::Stopping,
            "stop requested",
            now,
            "cli",
        )?;
        tx.commit()?;
    }
    let agents = st.agents(Some(&id))?;
    // The run's own server, whichever server this command was started from.
    let rctx = ctx.for_run(&run);
    let obs = rctx.tmux.observe();
    // A server that is certainly gone took every session with it: nothing left to kill.
    let gone = match &obs {
        tmux::Observation::Unknown(e) => match crate::orphan::orphaned(&run) {
            Some(why) => Some(why),
            None => {
                return Err(CliError::Failure(format!(
                    "tmux unreachable ({e}); run {id} left in stopping"
                )))
            }
        },
        tmux::Observation::Known(_) => None,
    };
    let agents: Vec<&crate::store::AgentRow> = agents.iter().collect();
    let kept = crate::actions::keep_evidence(&rctx.tmux, &obs, &agents);
    let cmds = crate::actions::stop_cmds(&obs, &agents);
    if !cmds.is_empty() {
        rctx.tmux
            .run(&cmds)
            .map_err(|e| CliError::Failure(format!("tmux: {e}; run {id} left in stopping")))?;
    }
    let tx = st.write()?;
    crate::evidence::record(&tx, now, &id, &kept, "stop", "cli")?;
    crate::actions::mark_stopped(&tx, &id, &agents, now)?;
    tx.transition_run(
        &id,
        RunStatus::Stopping,
        RunStatus::Stopped,
        &match &gone {
            Some(why) => format!("run stopped; {why}, nothing left to kill"),
            None => "run stopped".to_string(),
        },
        now,
        "cli",
    )?;
    tx.commit()?;
    let _ = crate::status_cache::refresh(&st);
    match gone {
        Some(why) => crate::say!("stopped {id} ({why}; nothing left to kill)"),
        None => println!("stopped {id} ({} session(s) killed)", cmds.len()),
    }
    Ok(0)
}
