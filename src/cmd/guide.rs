//! `metawsm-tick guide RUN --answer TEXT`: a human answers the oldest pending question.

use crate::cli::{self, CliError, CliResult, Ctx};
use crate::model::asks::QuestionSource;
use crate::model::{AgentSignal, RunStatus};
use crate::question;
use crate::signals;
use crate::store::{GuidanceRow, NewEvent, OpenMode, RunRow, Store};
use crate::timeutil::{now_unix, rfc3339};
use crate::tmux::{Cmd, Target};
use lexopt::prelude::*;
use serde_json::json;
use std::path::{Path, PathBuf};

pub const HELP: &str = "\
Usage: metawsm-tick guide RUN|--ticket T (--answer TEXT | --answer-buffer NAME) [--print]

Answers the run's oldest pending question.
  A request from a guidance file: writes .metawsm/guidance-response.json beside it
  (guidance_id, run_id, agent, question, answer, answered_at). Request files are never
  deleted: each was moved to .metawsm/archive/ when its question was recorded, so a
  newer question written meanwhile stays and is recorded by the next tick.
  A question the agent asks at its prompt (it reported waiting, or its screen shows a
  dialog): types the answer into its pane, only while it still waits: one line as
  literal keys, several as one bracketed paste, then Enter.
Either way the answer is recorded, the restart budget reset, and the run moved back to
running.

Options:
  --answer TEXT          The answer
  --answer-buffer NAME   Take the answer from a tmux paste buffer (deleted after; the
                         tmux menu's answer prompt uses this)
  --print                Show what would be written or typed; change nothing
  -h, --help             Show this help
";

pub fn main(parser: &mut lexopt::Parser, ctx: &Ctx) -> CliResult<i32> {
    let mut ticket = None;
    let (mut id, mut answer, mut buffer, mut print) = (None, None, None, false);
    while let Some(arg) = parser.next()? {
        match arg {
            Long("answer") => answer = Some(cli::os_to_string(parser.value()?, "--answer")?),
            Long("answer-buffer") => {
                buffer = Some(cli::os_to_string(parser.value()?, "--answer-buffer")?)
            }
            Long("print") => print = true,
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
    let answer = match (answer, buffer) {
        (Some(_), Some(_)) => {
            return Err(CliError::Usage(
                "guide: --answer and --answer-buffer exclude each other".into(),
            ))
        }
        (Some(a), None) => Some(a),
        (None, Some(b)) => Some(read_buffer(ctx, &b)?),
        (None, None) => None,
    };
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
    if req.source != QuestionSource::File {
        return answer_in_pane(ctx, &mut st, &run, req, pending.len(), &answer, print, now);
    }
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
    if print {
        crate::say!(
            "would write in {}/.metawsm/guidance-response.json:",
            req.root
        );
        println!(
            "{}",
            serde_json::to_string_pretty(&body).unwrap_or_default()
        );
        return Ok(0);
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
    answered(&tx, &run, pending.len(), now)?;
    tx.commit()?;
    let _ = crate::status_cache::refresh(&st);
    crate::say!("answered #{} for {id}: {}", req.id, path.display());
    Ok(0)
}

/// A human answered: budget, cooldown and the alert episode start over, and the run
/// runs again once its last question is answered.
fn answered(tx: &crate::store::Tx<'_>, run: &RunRow, pending: usize, now: i64) -> CliResult<()> {
    let mut op = tx.op_state_tx(&run.id)?;
    op.restart_attempts = 0;
    op.cooldown_until = None;
    op.last_alert = None;
    tx.put_op_state(&run.id, &op, now)?;
    if pending == 1 && run.status == RunStatus::AwaitingGuidance {
        tx.transition_run(
            &run.id,
            run.status,
            RunStatus::Running,
            "guidance answered",
            now,
            "cli",
        )?;
    }
    Ok(())
}

/// A menu's answer prompt leaves the text in a tmux buffer (never in a shell command).
fn read_buffer(ctx: &Ctx, name: &str) -> CliResult<String> {
    let out = ctx
        .tmux
        .run(&[Cmd::new("show-buffer").flag("-b").word("buffer name", name)])
        .map_err(|e| CliError::Failure(format!("guide: tmux buffer {name}: {e}")))?;
    let _ = ctx.tmux.run(&[Cmd::new("delete-buffer")
        .flag("-b")
        .word("buffer name", name)]);
    Ok(out)
}

/// Types the answer into the waiting agent's pane: re-checked under the lock that it
/// still waits there, refused (nothing typed) otherwise.
#[allow(clippy::too_many_arguments)]
fn answer_in_pane(
    ctx: &Ctx,
    st: &mut Store,
    run: &RunRow,
    req: &GuidanceRow,
    pending: usize,
    answer: &str,
    print: bool,
    now: i64,
) -> CliResult<i32> {
    let id = &run.id;
    let text = question::normalise(answer).map_err(|e| CliError::Usage(format!("guide: {e}")))?;
    let agents = st.agents(Some(id))?;
    let Some(agent) = agents.iter().find(|a| a.name == req.agent) else {
        return Err(CliError::Failure(format!(
            "run {id} has no agent {}; nothing typed",
            req.agent
        )));
    };
    if req.source == QuestionSource::Signal && agent.signal != Some(AgentSignal::Waiting) {
        return Err(CliError::Failure(format!(
            "agent {} of run {id} no longer waits (it reported {}); nothing typed",
            agent.name,
            agent.signal.map(|s| s.as_str()).unwrap_or("nothing")
        )));
    }
    let rctx = ctx.for_run(run);
    let Some(pane) = agent.pane_id.clone() else {
        return Err(CliError::Failure(format!(
            "agent {} of run {id} has no known pane; nothing typed",
            agent.name
        )));
    };
    let state = rctx
        .tmux
        .run(&[Cmd::new("display-message")
            .flag("-p")
            .target(Target::Pane(&pane))
            .format("#{pane_dead}\t#{pane_in_mode}")])
        .map_err(|e| {
            CliError::Failure(format!(
                "agent {}'s pane {pane} is gone ({e}); nothing typed",
                agent.name
            ))
        })?;
    match state.trim().split_once('\t') {
        Some(("0", "0")) => {}
        Some(("0", _)) => {
            return Err(CliError::Failure(format!(
                "pane {pane} of agent {} is in copy or view mode: leave it (q) and answer again; nothing typed",
                agent.name
            )))
        }
        _ => {
            return Err(CliError::Failure(format!(
                "agent {}'s pane {pane} is dead; nothing typed",
                agent.name
            )))
        }
    }
    // A dialog read from the screen is answered only while it is still there.
    if req.source == QuestionSource::Screen {
        let policy = rctx.policy()?;
        let kind = crate::screen::interactive_kind(&agent.argv, agent.adopted).unwrap_or("*");
        if !crate::screen::still_asks(
            &rctx.tmux,
            &pane,
            kind,
            &policy.health.screen_patterns,
            &req.question,
        ) {
            return Err(CliError::Failure(format!(
                "agent {}'s screen no longer shows question #{}; nothing typed",
                agent.name, req.id
            )));
        }
    }
    let cmds = question::answer_cmds(&pane, id, &text);
    if print {
        crate::say!(
            "would type into pane {pane} (agent {} of run {id}, question #{}):",
            agent.name,
            req.id
        );
        for c in &cmds {
            let argv = c
                .argv()
                .map_err(|e| CliError::Usage(format!("guide: {e}")))?;
            let words: Vec<String> = argv.iter().map(|w| crate::escape::sh_quote(w)).collect();
            println!("tmux {}", words.join(" "));
        }
        return Ok(0);
    }
    rctx.tmux
        .run(&cmds)
        .map_err(|e| CliError::Failure(format!("tmux: typing into pane {pane}: {e}")))?;
    let tx = st.write()?;
    tx.answer_guidance(req.id, &text, now)?;
    tx.add_event(
        now,
        &NewEvent {
            run_id: Some(id),
            agent: Some(&req.agent),
            kind: "guidance_answered",
            from_state: "pending",
            to_state: "answered",
            message: &format!("typed into pane {pane}: {}", req.question),
            source: "cli",
        },
    )?;
    // The agent has its answer: it works again until it says otherwise. Only an agent
    // whose hooks asked: for one read from its screen, a `working` signal would later
    // pass for hook evidence of a hang (docs/screen.md).
    if req.source == QuestionSource::Signal {
        tx.set_agent_signal(id, &agent.name, AgentSignal::Working, now)?;
    }
    answered(&tx, run, pending, now)?;
    tx.commit()?;
    let _ = crate::status_cache::refresh(st);
    crate::say!(
        "answered #{} for {id}: typed into pane {pane} (agent {})",
        req.id,
        agent.name
    );
    Ok(0)
}
