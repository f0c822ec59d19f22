//! `metawsm-tick signal working|waiting|done`: agent-side adapters report state, so
//! "waiting for input" is known at once instead of guessed from silence.

use crate::cli::{self, CliError, CliResult, Ctx};
use crate::lock::{StateLock, Wait};
use crate::model::AgentSignal;
use crate::store::{NewEvent, OpenMode};
use crate::timeutil::now_unix;
use lexopt::prelude::*;
use std::time::Duration;

pub const HELP: &str = "\
Usage: metawsm-tick signal [--pane %ID] [--run ID --agent NAME] working|waiting|done
       metawsm-tick signal --codex JSON

Records what the agent in a pane reports. The agent is found from --run/--agent, else
from $METAWSM_RUN_ID/$METAWSM_AGENT (set in every agent session), else from --pane or
$TMUX_PANE. Exit 0 when recorded, 1 when the pane is not a metawsm agent, 2 on usage.

--codex: Codex's notify program (`metawsm-tick init codex`). The state comes from the
last argument, Codex's JSON: agent-turn-complete is done, a type naming an approval or
input is waiting; anything else is ignored (exit 0).
";

pub fn main(parser: &mut lexopt::Parser, ctx: &Ctx) -> CliResult<i32> {
    let (mut pane, mut run, mut agent, mut state) = (None, None, None, None);
    let (mut codex, mut codex_json) = (false, None);
    while let Some(arg) = parser.next()? {
        match arg {
            Long("codex") => codex = true,
            // Codex appends its JSON after the configured arguments: the last one counts.
            Value(v) if codex => codex_json = Some(cli::os_to_string(v, "JSON")?),
            Long("pane") => pane = Some(cli::os_to_string(parser.value()?, "--pane")?),
            Long("run") => run = Some(cli::os_to_string(parser.value()?, "--run")?),
            Long("agent") => agent = Some(cli::os_to_string(parser.value()?, "--agent")?),
            Short('h') | Long("help") => {
                cli::print_help(HELP);
                return Ok(0);
            }
            Value(v) if state.is_none() => {
                let s = cli::os_to_string(v, "state")?;
                state = Some(
                    s.parse::<AgentSignal>()
                        .map_err(|e| CliError::Usage(format!("signal: {e}")))?,
                );
            }
            other => return Err(other.unexpected().into()),
        }
    }
    if codex {
        match codex_json.as_deref().and_then(codex_state) {
            Some(s) => state = Some(s),
            None => return Ok(0),
        }
    }
    let state = state.ok_or_else(|| {
        CliError::Usage("signal: state (working|waiting|done) is required".into())
    })?;
    let env = |k: &str| std::env::var(k).ok().filter(|v| !v.is_empty());
    let st = ctx.open(OpenMode::Existing, false)?;
    let (run_id, name) = match (run, agent) {
        (Some(r), Some(a)) => (r, a),
        (Some(_), None) | (None, Some(_)) => {
            return Err(CliError::Usage(
                "signal: --run and --agent go together".into(),
            ))
        }
        (None, None) => match (
            env("METAWSM_RUN_ID"),
            env("METAWSM_AGENT"),
            pane.or_else(|| env("TMUX_PANE")),
        ) {
            (Some(r), Some(a), _) => (r, a),
            (_, _, Some(p)) => st
                .agent_by_session_or_pane(None, Some(&p))?
                .ok_or_else(|| CliError::Failure(format!("pane {p} is not a metawsm agent")))?,
            _ => {
                return Err(CliError::Usage(
                    "signal: no --pane, --run/--agent, or $TMUX_PANE to identify the agent".into(),
                ))
            }
        },
    };
    if !st.agents(Some(&run_id))?.iter().any(|a| a.name == name) {
        return Err(CliError::Failure(format!(
            "run {run_id} has no agent {name}"
        )));
    }
    let now = now_unix();
    drop(st);
    let lock = StateLock::acquire(&ctx.db, Wait::Bounded(Duration::from_millis(500)))
        .map_err(|e| CliError::Failure(format!("lock: {e}")))?;
    let mut st = ctx.open(OpenMode::Existing, lock.is_some())?;
    if lock.is_none() {
        // Never lost: queued for the lock holder or the next tick.
        st.inbox_push(
            "signal",
            Some(&run_id),
            &format!("{name}\t{}", state.as_str()),
            now,
        )?;
        return Ok(0);
    }
    // Reports queued while the lock was busy are older than this one: apply them first.
    crate::tick::drain_inbox(&mut st, now)?;
    let tx = st.write()?;
    tx.set_agent_signal(&run_id, &name, state, now)?;
    tx.add_event(
        now,
        &NewEvent {
            run_id: Some(&run_id),
            agent: Some(&name),
            kind: "signal",
            to_state: state.as_str(),
            message: "reported by the agent",
            source: "agent",
            ..Default::default()
        },
    )?;
    tx.commit()?;
    let _ = crate::status_cache::refresh(&st);
    // The tick reads what the report means (a question on screen, a finished agent):
    // a timer backed off while nothing happened must not wait its long delay for it.
    if let Ok(policy) = ctx.policy() {
        crate::schedule::wake(&mut st, ctx, &policy, now);
    }
    Ok(0)
}

/// The state a Codex notification reports, if any.
fn codex_state(json: &str) -> Option<AgentSignal> {
    let v: serde_json::Value = serde_json::from_str(json).ok()?;
    let t = v.get("type")?.as_str()?;
    if t == "agent-turn-complete" {
        Some(AgentSignal::Done)
    } else if t.contains("approval") || t.contains("input") {
        Some(AgentSignal::Waiting)
    } else {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codex_notifications_map_to_states() {
        let s = |j: &str| codex_state(j);
        assert_eq!(
            s(r#"{"type":"agent-turn-complete"}"#),
            Some(AgentSignal::Done)
        );
        assert_eq!(
            s(r#"{"type": "approval-requested"}"#),
            Some(AgentSignal::Waiting)
        );
        assert_eq!(s(r#"{"type":"something-else"}"#), None);
        assert_eq!(s(r#"{"msg":"\"type\":\"agent-turn-complete\""}"#), None);
        assert_eq!(s("not json"), None);
    }
}
