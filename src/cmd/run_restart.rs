//! `metawsm-tick run restart`: a human restart; resets the operator's restart budget.

use crate::cli::{self, CliError, CliResult, Ctx};
use crate::model::RunStatus;
use crate::store::{NewEvent, OpState, OpenMode};
use crate::timeutil::now_unix;
use crate::tmux;
use lexopt::prelude::*;

pub const HELP: &str = "\
Usage: metawsm-tick run restart RUN|--ticket T [--agent NAME] [--fresh]

Kills and starts again the run's agents (or only NAME) in their working directory. An
agent with a resume command continues its conversation (docs/restarts.md), unless --fresh
or operator.restart_mode = fresh. A stopped, failed or completed run becomes running.
Resets restart attempts, cooldown and corroboration: a human decided.

Options:
  --agent NAME   Only this agent
  --fresh        Start over instead of resuming the conversation
  --ticket T     The ticket's one active run, instead of RUN
  -h, --help     Show this help
";

pub fn main(parser: &mut lexopt::Parser, ctx: &Ctx) -> CliResult<i32> {
    let mut ticket = None;
    let (mut id, mut only, mut fresh) = (None, None, false);
    while let Some(arg) = parser.next()? {
        match arg {
            Long("agent") => only = Some(cli::os_to_string(parser.value()?, "--agent")?),
            Long("fresh") => fresh = true,
            Short('h') | Long("help") => {
                cli::print_help(HELP);
                return Ok(0);
            }
            Value(v) if id.is_none() => id = Some(cli::os_to_string(v, "RUN")?),
            Long("ticket") => ticket = Some(cli::os_to_string(parser.value()?, "--ticket")?),
            other => return Err(other.unexpected().into()),
        }
    }
    let id = super::select::run_id(ctx, "run restart", id, ticket)?;
    ctx.policy()?;
    let _lock = super::lock(ctx)?;
    let mut st = ctx.open(OpenMode::Existing, true)?;
    let run = st.run(&id)?;
    let policy = crate::project_policy::for_run(ctx, &run)?;
    let agents: Vec<_> = st
        .agents(Some(&id))?
        .into_iter()
        .filter(|a| only.as_deref().is_none_or(|n| n == a.name))
        .collect();
    if agents.is_empty() {
        return Err(CliError::Failure(match only {
            Some(n) => format!("run {id} has no agent {n}"),
            None => format!("run {id} has no agents"),
        }));
    }
    if run.status != RunStatus::Running && !run.status.can_transition(RunStatus::Running) {
        return Err(CliError::Failure(format!(
            "run {id} is {} and cannot be restarted",
            run.status
        )));
    }
    // The run's own server, whichever server this command was started from.
    let rctx = ctx.for_run(&run);
    let obs = rctx.tmux.observe();
    if let tmux::Observation::Unknown(e) = &obs {
        return Err(CliError::Failure(match crate::orphan::orphaned(&run) {
            Some(why) => format!(
                "run {id} is orphaned ({why}); stop or forget it ('run stop {id}', 'run forget {id}')"
            ),
            None => format!("tmux unreachable: {e}"),
        }));
    }
    let now = now_unix();
    let agents: Vec<&crate::store::AgentRow> = agents.iter().collect();
    let kept = crate::actions::keep_evidence(&rctx.tmux, &obs, &agents);
    let restart = crate::actions::restart(
        ctx,
        &policy,
        &obs,
        &agents,
        now,
        fresh,
        crate::actions::Place::AsBefore,
    );
    if let Some(e) = restart.refused.first() {
        return Err(CliError::Failure(format!("run {id}: {e}")));
    }
    // A completion or answer left from before must not finish or answer the new agents.
    let moved = crate::signals::archive_leftovers(
        &crate::signals::roots(&run.workspace, run.doc_home_repo.as_deref()),
        std::path::Path::new(&run.workspace),
        &id,
        Some(run.created_at),
        now,
    );
    rctx.tmux
        .run(&restart.cmds)
        .map_err(|e| CliError::Failure(format!("tmux: {e}")))?;
    crate::cmd::run_start::note_archived(&mut st, &id, &moved, now)?;
    // A pending question stays pending (and escalated once): only the processes restart.
    let questions = !st.pending_guidance(&id)?.is_empty();
    let tx = st.write()?;
    crate::evidence::record(&tx, now, &id, &kept, "restart", "cli")?;
    if run.status != RunStatus::Running && !(questions && run.status == RunStatus::AwaitingGuidance)
    {
        tx.transition_run(
            &id,
            run.status,
            RunStatus::Running,
            "restart requested",
            now,
            "cli",
        )?;
    }
    restart.mark_started(&tx, &id, now)?;
    let kinds = restart.kinds();
    // A human decided: budget, cooldown and corroboration start over; the alert episode
    // (and so the one changelog entry per question) does not.
    let prev = tx.op_state_tx(&id)?;
    let fresh = OpState {
        last_alert: prev.last_alert,
        last_alert_at: prev.last_alert_at,
        ..OpState::default()
    };
    tx.put_op_state(&id, &fresh, now)?;
    let names: Vec<&str> = agents.iter().map(|a| a.name.as_str()).collect();
    tx.add_event(
        now,
        &NewEvent {
            run_id: Some(&id),
            kind: "restart",
            to_state: "ok",
            message: &format!("manual restart, {kinds}; restart budget reset"),
            source: "cli",
            ..Default::default()
        },
    )?;
    tx.commit()?;
    let _ = crate::status_cache::refresh(&st);
    crate::schedule::wake(&mut st, ctx, &policy, now);
    crate::say!("restarted {} in {id} ({kinds})", names.join(", "));
    Ok(0)
}
