//! The tmux actions of the plan (restart, stop), after the state commit: the evidence
//! kept, the sessions killed or started, the rows marked, one event each.

use super::super::plan::{Action, Planned};
use crate::cli::{CliError, Ctx};
use crate::model::RunStatus;
use crate::store::{AgentRow, NewEvent, Store};
use crate::timeutil::rfc3339;
use crate::tmux::{self, Observation};
use std::collections::HashMap;

pub fn act(
    store: &mut Store,
    ctx: &Ctx,
    plans: &[Planned],
    obs: &Observation,
    now: i64,
    outcomes: &mut HashMap<String, ActionOutcome>,
    restarts: &mut HashMap<String, String>,
) -> Result<(), CliError> {
    for p in plans {
        // None when tmux is unknown: what to kill is then unknown too.
        let Some(action) = p.action else { continue };
        let restart = action == Action::Restart;
        let run_id = p.run.id.as_str();
        let targets: Vec<&AgentRow> = p.targets().collect();
        let kept = crate::actions::keep_evidence(&ctx.tmux, obs, &targets);
        let (cmds, restarted) = if restart {
            let mut r = crate::actions::restart(
                ctx,
                &p.policy,
                obs,
                &targets,
                now,
                false,
                crate::actions::Place::AsBefore,
            );
            (std::mem::take(&mut r.cmds), Some(r))
        } else {
            (crate::actions::stop_cmds(obs, &targets), None)
        };
        let refused = restarted
            .as_ref()
            .map(|r| r.refused.clone())
            .unwrap_or_default();
        let result = if !refused.is_empty() {
            Err(tmux::TmuxError::Failed(refused.join("; ")))
        } else if cmds.is_empty() {
            Ok(String::new())
        } else {
            ctx.tmux.run(&cmds)
        };
        let kinds = restarted.as_ref().map(|r| r.kinds()).unwrap_or_default();
        let outcome = match &result {
            Ok(_) => ActionOutcome::Done,
            Err(e) => ActionOutcome::Failed(e.to_string()),
        };
        let names = targets
            .iter()
            .map(|a| a.name.as_str())
            .collect::<Vec<_>>()
            .join(",");
        let tx = store.write()?;
        crate::evidence::record(
            &tx,
            now,
            run_id,
            &kept,
            if restart { "restart" } else { "stop" },
            p.gated.source.as_str(),
        )?;
        if restart {
            if let (Ok(_), Some(r)) = (&result, &restarted) {
                r.mark_started(&tx, run_id, now)?;
            }
            let st = p.state_after();
            let msg = format!(
                "restart of {names}: {outcome}, {kinds} (attempt {}/{}, cooldown until {})",
                st.restart_attempts,
                p.policy.operator.restart_budget,
                st.cooldown_until.map(rfc3339).unwrap_or_else(|| "-".into())
            );
            tx.add_event(
                now,
                &NewEvent {
                    run_id: Some(run_id),
                    agent: None,
                    kind: "restart",
                    to_state: if result.is_ok() { "ok" } else { "failed" },
                    message: &msg,
                    source: p.gated.source.as_str(),
                    ..Default::default()
                },
            )?;
        } else if result.is_ok() {
            crate::actions::mark_stopped(&tx, run_id, &targets, now)?;
            if p.status_after == RunStatus::Stopping {
                tx.transition_run(
                    run_id,
                    RunStatus::Stopping,
                    RunStatus::Stopped,
                    "run stopped",
                    now,
                    p.gated.source.as_str(),
                )?;
            }
            tx.add_event(
                now,
                &NewEvent {
                    run_id: Some(run_id),
                    kind: "stop",
                    to_state: "ok",
                    message: &format!("stopped {names}"),
                    source: p.gated.source.as_str(),
                    ..Default::default()
                },
            )?;
        } else {
            tx.add_event(
                now,
                &NewEvent {
                    run_id: Some(run_id),
                    kind: "stop",
                    to_state: "failed",
                    message: &outcome.to_string(),
                    source: p.gated.source.as_str(),
                    ..Default::default()
                },
            )?;
        }
        tx.commit()?;
        outcomes.insert(run_id.to_string(), outcome);
        if restart && result.is_ok() {
            restarts.insert(run_id.to_string(), kinds);
        }
    }
    Ok(())
}

/// What a tick's action (restart, stop) came to. Its words ("ok", "failed: …") appear
/// only where it is stored or printed.
#[derive(Debug, Clone, PartialEq)]
pub enum ActionOutcome {
    Done,
    Failed(String),
}

impl ActionOutcome {
    pub fn is_done(&self) -> bool {
        *self == ActionOutcome::Done
    }
}

impl std::fmt::Display for ActionOutcome {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ActionOutcome::Done => f.write_str("ok"),
            ActionOutcome::Failed(e) => write!(f, "failed: {e}"),
        }
    }
}

impl serde::Serialize for ActionOutcome {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}
