//! `metawsm-tick run restart`: a human restart; resets the operator's restart budget.

use crate::cli::{self, CliError, CliResult, Ctx};
use crate::cmd::run_start;
use crate::engine;
use crate::model::RunStatus;
use crate::store::{self, NewEvent, OpState, OpenMode};
use crate::timeutil::now_unix;
use crate::tmux::{self, SessionState};
use lexopt::prelude::*;

const HELP: &str = "\
Usage: metawsm-tick run restart RUN [--agent NAME]

Kills and starts again the run's agents (or only NAME) with their stored argv and working
directory. A stopped, failed or completed run becomes running. Resets restart attempts,
cooldown and corroboration: a human decided.
";

pub fn main(parser: &mut lexopt::Parser, ctx: &Ctx) -> CliResult<i32> {
    let (mut id, mut only) = (None, None);
    while let Some(arg) = parser.next()? {
        match arg {
            Long("agent") => only = Some(cli::os_to_string(parser.value()?, "--agent")?),
            Short('h') | Long("help") => {
                cli::print_help(HELP);
                return Ok(0);
            }
            Value(v) if id.is_none() => id = Some(cli::os_to_string(v, "RUN")?),
            other => return Err(other.unexpected().into()),
        }
    }
    let id = id.ok_or_else(|| CliError::Usage("run restart: RUN is required".into()))?;
    let policy = ctx.policy()?;
    let _lock = run_start::lock(ctx)?;
    let mut st = ctx.open(OpenMode::Existing, true)?;
    let run = st.run(&id)?;
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
    let obs = ctx.tmux.observe();
    if let tmux::Observation::Unknown(e) = &obs {
        return Err(CliError::Failure(format!("tmux unreachable: {e}")));
    }
    let now = now_unix();
    let mut cmds = Vec::new();
    for a in &agents {
        if matches!(obs.panes(&a.session), SessionState::Present(_)) {
            cmds.push(tmux::kill_session_cmd(&a.session));
        }
        cmds.extend(engine::agent_start_cmds(ctx, &policy, a));
    }
    ctx.tmux
        .run(&cmds)
        .map_err(|e| CliError::Failure(format!("tmux: {e}")))?;
    let tx = st.write()?;
    if run.status != RunStatus::Running {
        store::transition_run(
            &tx,
            &id,
            run.status,
            RunStatus::Running,
            "restart requested",
            now,
            "cli",
        )?;
    }
    for a in &agents {
        store::mark_agent_started(&tx, &id, &a.name, now)?;
    }
    store::put_op_state(&tx, &id, &OpState::default(), now)?;
    let names: Vec<&str> = agents.iter().map(|a| a.name.as_str()).collect();
    store::add_event(
        &tx,
        now,
        &NewEvent {
            run_id: Some(&id),
            kind: "restart",
            to_state: "ok",
            message: &format!(
                "manual restart of {}; restart budget reset",
                names.join(",")
            ),
            source: "cli",
            ..Default::default()
        },
    )?;
    tx.commit().map_err(store::StoreError::from)?;
    let _ = crate::status_cache::refresh(&st);
    println!("restarted {} in {id}", names.join(", "));
    Ok(0)
}
