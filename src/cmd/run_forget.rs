//! `metawsm-tick run forget`: delete a finished run's rows.

use crate::cli::{self, CliError, CliResult, Ctx};
use crate::model::RunStatus;
use crate::store::OpenMode;
use lexopt::prelude::*;

pub const HELP: &str = "\
Usage: metawsm-tick run forget RUN

Deletes a stopped or completed run and everything recorded about it (agents, events,
operator state, guidance). So is an orphaned run (its tmux server is certainly gone:
socket absent or refusing connections). Any other run is refused: stop it first
('run stop').
";

pub fn main(parser: &mut lexopt::Parser, ctx: &Ctx) -> CliResult<i32> {
    let mut id = None;
    while let Some(arg) = parser.next()? {
        match arg {
            Short('h') | Long("help") => {
                cli::print_help(HELP);
                return Ok(0);
            }
            Value(v) if id.is_none() => id = Some(cli::os_to_string(v, "RUN")?),
            other => return Err(other.unexpected().into()),
        }
    }
    let id = id.ok_or_else(|| CliError::Usage("run forget: RUN is required".into()))?;
    let _lock = super::lock(ctx)?;
    let mut st = ctx.open(OpenMode::Existing, true)?;
    let run = st.run(&id)?;
    // An orphaned run (its tmux server certainly gone) has nothing left to stop.
    let finished = matches!(run.status, RunStatus::Stopped | RunStatus::Completed);
    if !finished && crate::orphan::orphaned(&run).is_none() {
        return Err(CliError::Failure(format!(
            "run {id} is {}; stop it before forgetting it",
            run.status
        )));
    }
    let tx = st.write()?;
    tx.delete_run(&id)?;
    tx.commit()?;
    let _ = crate::status_cache::refresh(&st);
    println!("forgot {id}");
    Ok(0)
}
