//! `metawsm-tick approve RUN`: run the action assist mode held, if the rules still want
//! exactly it now; otherwise say what changed and do nothing.

use crate::cli::{CliError, CliResult, Ctx};
use crate::policy::LlmMode;
use crate::store::{NewEvent, OpenMode};
use crate::tick::{self, ActionOutcome, TickOptions};
use crate::timeutil::now_unix;

pub const HELP: &str = "\
Usage: metawsm-tick approve RUN

Executes the action that assist mode (operator.llm.mode = assist) holds for the run
(a restart or a stop, shown as awaiting approval in `run show`, the log and the bar's
⏸ count), after checking under the state lock that the rules still want exactly that
action now. If the situation changed (the agent recovered, another action is due), it
says what the rules want now, drops the approval and does nothing (exit 1).
`metawsm-tick dismiss RUN` drops it instead.
";

pub fn main(parser: &mut lexopt::Parser, ctx: &Ctx) -> CliResult<i32> {
    let Some(id) = super::one_run(parser, HELP, "approve")? else {
        return Ok(0);
    };
    let policy = ctx.policy()?;
    let _lock = super::lock(ctx)?;
    let mut st = ctx.open(OpenMode::Existing, true)?;
    let run = st.run(&id)?;
    let Some(held) = st
        .approval(&id)?
        .filter(|a| a.status == crate::model::rows::ApprovalStatus::Pending)
    else {
        return Err(CliError::Failure(format!(
            "run {id} has no action awaiting approval"
        )));
    };
    let rctx = ctx.for_run(&run);
    let opts = TickOptions {
        run: Some(id.clone()),
        dry_run: true,
        llm_mode: Some(LlmMode::Off),
        source: crate::tick::TickSource::Cli,
    };
    // What the rules want now, without changing anything.
    let now_wants = tick::run(&mut st, &rctx, &policy, &opts)?
        .runs
        .into_iter()
        .find(|r| r.run_id == id);
    let same = now_wants
        .as_ref()
        .is_some_and(|r| r.execute && r.intent == held.intent && r.targets == held.targets);
    let now = now_unix();
    if !same {
        let what = now_wants
            .map(|r| format!("{} ({})", r.intent, r.reason))
            .unwrap_or_else(|| "nothing (the run is not supervised)".into());
        let tx = st.write()?;
        tx.clear_approval(&id)?;
        tx.add_event(
            now,
            &NewEvent {
                run_id: Some(&id),
                kind: "approval_cleared",
                to_state: "changed",
                message: &format!("approve refused: the rules now want {what}"),
                source: "cli",
                ..Default::default()
            },
        )?;
        tx.commit()?;
        let _ = crate::status_cache::refresh(&st);
        return Err(CliError::Failure(format!(
            "run {id}: nothing done: the situation changed since {} was held ({}); the rules now want {what}",
            held.intent, held.reason
        )));
    }
    {
        let tx = st.write()?;
        tx.add_event(
            now,
            &NewEvent {
                run_id: Some(&id),
                kind: "approval_approved",
                to_state: held.intent.as_str(),
                message: &held.reason,
                source: "cli",
                ..Default::default()
            },
        )?;
        tx.commit()?;
    }
    // The same tick a rule action gets, with assist mode lifted for this run only.
    let report = tick::run(
        &mut st,
        &rctx,
        &policy,
        &TickOptions {
            dry_run: false,
            ..opts
        },
    )?;
    let r = report.runs.into_iter().find(|r| r.run_id == id);
    match r {
        Some(r) if r.execute && r.intent == held.intent => {
            let outcome = r.outcome.unwrap_or(ActionOutcome::Done);
            crate::say!(
                "approved {} for {id} ({}): {outcome}",
                held.intent,
                held.targets.join(", ")
            );
            Ok(if outcome.is_done() { 0 } else { 1 })
        }
        Some(r) => Err(CliError::Failure(format!(
            "run {id}: nothing done: the rules now want {} ({})",
            r.intent, r.reason
        ))),
        None => Err(CliError::Failure(format!(
            "run {id}: nothing done: the run is not supervised by this server"
        ))),
    }
}
