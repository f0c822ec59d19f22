//! `metawsm-tick guide RUN --answer TEXT`: a human answers the oldest pending question.

use crate::cli::{self, CliError, CliResult, Ctx};
use crate::model::RunStatus;
use crate::signals;
use crate::store::{NewEvent, OpenMode};
use crate::timeutil::{now_unix, rfc3339};
use lexopt::prelude::*;
use serde_json::json;
use std::path::{Path, PathBuf};

const HELP: &str = "\
Usage: metawsm-tick guide RUN|--ticket T --answer TEXT

Answers the run's oldest pending guidance request: writes .metawsm/guidance-response.json
beside the request (guidance_id, run_id, agent, question, answer, answered_at) and moves
the run back to running. Resets the restart budget. Request files are never deleted:
each was moved to .metawsm/archive/ when its question was recorded, so a newer question
written meanwhile stays and is recorded by the next tick.
";

pub fn main(parser: &mut lexopt::Parser, ctx: &Ctx) -> CliResult<i32> {
    let mut ticket = None;
    let (mut id, mut answer) = (None, None);
    while let Some(arg) = parser.next()? {
        match arg {
            Long("answer") => answer = Some(cli::os_to_string(parser.value()?, "--answer")?),
            Short('h') | Long("help") => {
                cli::print_help(HELP);
                return Ok(0);
            }
            Value(v) if id.is_none() => id = Some(cli::os_to_string(v, "RUN")?),
            Long("ticket") => ticket = Some(cli::os_to_string(parser.value()?, "--ticket")?),
            other => return Err(other.unexpected().into()),
        }
    }
    let id = super::select::run_id(ctx, "guide", id, ticket)?;
    let answer = answer
        .filter(|a| !a.trim().is_empty())
        .ok_or_else(|| CliError::Usage("guide: --answer TEXT is required".into()))?;
    let _lock = super::lock(ctx)?;
    let mut st = ctx.open(OpenMode::Existing, true)?;
    let run = st.run(&id)?;
    let pending = st.pending_guidance(&id)?;
    let Some(req) = pending.first() else {
        return Err(CliError::Failure(format!(
            "run {id} has no pending guidance requests (status {})",
            run.status
        )));
    };
    let now = now_unix();
    // As the original: the asking agent, which a request without one means the run's
    // only agent; the key is left out (never null) when it cannot be known.
    let agent = if req.agent.is_empty() {
        let agents = st.agents(Some(&id))?;
        match agents.as_slice() {
            [only] => only.name.clone(),
            _ => String::new(),
        }
    } else {
        req.agent.clone()
    };
    let mut body = json!({
        "guidance_id": req.id,
        "run_id": id,
        "question": req.question,
        "answer": answer,
        "answered_at": rfc3339(now),
    });
    if !agent.is_empty() {
        body["agent"] = json!(agent);
    }
    let path = signals::write_response(&PathBuf::from(&req.root), Path::new(&run.workspace), &body)
        .map_err(|e| CliError::Failure(format!("write guidance response in {}: {e}", req.root)))?;
    let tx = st.write()?;
    tx.answer_guidance(req.id, &answer, now)?;
    tx.add_event(
        now,
        &NewEvent {
            run_id: Some(&id),
            agent: Some(&req.agent),
            kind: "guidance_answered",
            from_state: "pending",
            to_state: "answered",
            message: &req.question,
            source: "cli",
        },
    )?;
    let mut state = tx.op_state_tx(&id)?;
    state.restart_attempts = 0;
    state.cooldown_until = None;
    state.last_alert = None;
    tx.put_op_state(&id, &state, now)?;
    if pending.len() == 1 && run.status == RunStatus::AwaitingGuidance {
        tx.transition_run(
            &id,
            run.status,
            RunStatus::Running,
            "guidance answered",
            now,
            "cli",
        )?;
    }
    tx.commit()?;
    let _ = crate::status_cache::refresh(&st);
    crate::say!("answered #{} for {id}: {}", req.id, path.display());
    Ok(0)
}
