//! `metawsm-tick dismiss RUN`: drop the action assist mode held; the same situation is
//! not proposed again until the run recovers (the episode ends).

use crate::cli::{CliError, CliResult, Ctx};
use crate::model::rows::ApprovalStatus;
use crate::store::{NewEvent, OpenMode};
use crate::timeutil::now_unix;

pub const HELP: &str = "\
Usage: metawsm-tick dismiss RUN

Drops the action assist mode holds for the run (see `metawsm-tick approve`). The same
situation is not proposed again until the run recovers; a different one is.
";

pub fn main(parser: &mut lexopt::Parser, ctx: &Ctx) -> CliResult<i32> {
    let Some(id) = super::one_run(parser, HELP, "dismiss")? else {
        return Ok(0);
    };
    let _lock = super::lock(ctx)?;
    let st = ctx.open(OpenMode::Existing, true)?;
    st.run(&id)?;
    let Some(mut held) = st
        .approval(&id)?
        .filter(|a| a.status == ApprovalStatus::Pending)
    else {
        return Err(CliError::Failure(format!(
            "run {id} has no action awaiting approval"
        )));
    };
    let now = now_unix();
    held.status = ApprovalStatus::Dismissed;
    let mut st = st;
    let tx = st.write()?;
    tx.put_approval(&held, now)?;
    tx.add_event(
        now,
        &NewEvent {
            run_id: Some(&id),
            kind: "approval_dismissed",
            to_state: "dismissed",
            message: &format!("{}: {}", held.intent, held.reason),
            source: "cli",
            ..Default::default()
        },
    )?;
    tx.commit()?;
    let _ = crate::status_cache::refresh(&st);
    crate::say!("dismissed {} for {id}", held.intent);
    Ok(0)
}
