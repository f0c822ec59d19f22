//! The state a tick's plan implies, in one transaction (and the queued inbox before it).

use super::super::plan::{ApprovalChange, Planned};
use crate::cli::CliError;
use crate::model::{AgentSignal, RunStatus};
use crate::store::{NewEvent, Store};
use crate::tmux::Observation;

/// Meta key: when the last real tick observed (any tick, full or one-run); written with
/// the tick's record.
pub(crate) const LAST_OBSERVED: &str = "last_observed_at";

/// Signals and hook events queued by processes that could not take the lock.
/// Returns the runs whose tmux events were drained: they are due a look now.
pub fn drain_inbox(store: &mut Store, now: i64) -> Result<Vec<String>, CliError> {
    let mut touched = Vec::new();
    if !store.inbox_pending()? {
        return Ok(touched);
    }
    let tx = store.write()?;
    for item in tx.inbox_drain()? {
        if item.event == "signal" {
            let mut parts = item.args.splitn(2, '\t');
            let (Some(agent), Some(state)) = (parts.next(), parts.next()) else {
                continue;
            };
            if let (Some(run), Ok(sig)) = (item.run_id.as_deref(), state.parse::<AgentSignal>()) {
                tx.set_agent_signal(run, agent, sig, item.at)?;
                tx.add_event(
                    now,
                    &NewEvent {
                        run_id: Some(run),
                        agent: Some(agent),
                        kind: "signal",
                        to_state: sig.as_str(),
                        message: "reported by the agent (queued)",
                        source: "agent",
                        ..Default::default()
                    },
                )?;
            }
        } else {
            if let Some(r) = &item.run_id {
                if !touched.contains(r) {
                    touched.push(r.clone());
                }
            }
            tx.add_event(
                now,
                &NewEvent {
                    run_id: item.run_id.as_deref(),
                    kind: "hook",
                    to_state: &item.event,
                    message: &item.args,
                    source: "tmux",
                    ..Default::default()
                },
            )?;
        }
    }
    tx.commit()?;
    Ok(touched)
}

pub fn record(
    store: &mut Store,
    plans: &[Planned],
    obs: &Observation,
    now: i64,
    source: &str,
    full: bool,
    // No meta `status_gen` yet (a database from before it): this commit starts it.
    start_status_gen: bool,
) -> Result<(), CliError> {
    let tx = store.write()?;
    for p in plans {
        let run_id = p.run.id.as_str();
        // Empty when tmux is unknown: an unknown observation never rewrites agents.
        for c in &p.agent_changes {
            tx.update_agent(run_id, &c.name, &c.update, now)?;
            if let Some((from, to, why)) = &c.health {
                tx.add_event(
                    now,
                    &NewEvent {
                        run_id: Some(run_id),
                        agent: Some(&c.name),
                        kind: "health",
                        from_state: from.as_str(),
                        to_state: to,
                        message: why,
                        source,
                    },
                )?;
            }
        }
        // Screen questions whose dialog is gone close first, so a dialog replaced by
        // another one keeps the run waiting for the new one.
        for id in &p.resolved_questions {
            tx.resolve_screen_question(*id, now)?;
            tx.add_event(
                now,
                &NewEvent {
                    run_id: Some(run_id),
                    kind: "guidance_resolved",
                    to_state: "resolved",
                    message: "the dialog left the agent's screen",
                    source: "rule",
                    ..Default::default()
                },
            )?;
        }
        // New questions: guidance files (root = their directory), then a dialog read
        // from a screen (answered in the pane).
        let asks = p
            .new_guidance
            .iter()
            .map(|(root, g)| {
                let agent = g.agent.clone().unwrap_or_default();
                (agent, Some(root.to_string_lossy()), &g.question, &g.context)
            })
            .chain(
                p.screen_question
                    .iter()
                    .map(|g| (g.agent.clone(), None, &g.question, &g.context)),
            );
        for (agent, root, question, context) in asks {
            let (id, by) = match &root {
                Some(root) => (
                    tx.add_guidance(run_id, &agent, root, question, context, now)?,
                    "agent",
                ),
                None => (
                    tx.add_screen_question(run_id, &agent, question, context, now)?,
                    "screen",
                ),
            };
            if id.is_some() {
                tx.add_event(
                    now,
                    &NewEvent {
                        run_id: Some(run_id),
                        agent: (!agent.is_empty()).then_some(agent.as_str()),
                        kind: "guidance_requested",
                        to_state: "pending",
                        message: question,
                        source: by,
                        ..Default::default()
                    },
                )?;
            }
        }
        if p.to_awaiting {
            tx.transition_run(
                run_id,
                RunStatus::Running,
                RunStatus::AwaitingGuidance,
                "awaiting operator guidance",
                now,
                source,
            )?;
        }
        if p.back_to_running {
            tx.transition_run(
                run_id,
                RunStatus::AwaitingGuidance,
                RunStatus::Running,
                "question resolved on the agent's screen",
                now,
                source,
            )?;
        }
        match &p.approval {
            ApprovalChange::Keep => {}
            ApprovalChange::Request(a) => {
                tx.put_approval(a, now)?;
                tx.add_event(
                    now,
                    &NewEvent {
                        run_id: Some(run_id),
                        kind: "approval_requested",
                        to_state: "pending",
                        message: &format!(
                            "{} held by assist mode: {} (approve: metawsm-tick approve {run_id}; dismiss: metawsm-tick dismiss {run_id})",
                            a.intent, a.reason
                        ),
                        source: "rule",
                        ..Default::default()
                    },
                )?;
            }
            ApprovalChange::Clear(why) => {
                if tx.clear_approval(run_id)? {
                    tx.add_event(
                        now,
                        &NewEvent {
                            run_id: Some(run_id),
                            kind: "approval_cleared",
                            to_state: why,
                            message: &format!("{why}: {}", p.decision.reason),
                            source: "rule",
                            ..Default::default()
                        },
                    )?;
                }
            }
        }
        for id in &p.withdrawn {
            if tx.withdraw_question(*id, now)? {
                tx.add_event(
                    now,
                    &NewEvent {
                        run_id: Some(run_id),
                        kind: "guidance_withdrawn",
                        from_state: "pending",
                        to_state: "withdrawn",
                        message: &format!("question #{id}: the agent no longer waits"),
                        source,
                        ..Default::default()
                    },
                )?;
            }
        }
        for q in &p.new_questions {
            if tx
                .add_pane_question(
                    run_id,
                    &q.agent,
                    q.source.as_str(),
                    &q.question,
                    &q.context,
                    now,
                )?
                .is_some()
            {
                tx.add_event(
                    now,
                    &NewEvent {
                        run_id: Some(run_id),
                        agent: Some(&q.agent),
                        kind: "guidance_requested",
                        to_state: "pending",
                        message: &format!("[{}] {}", q.source, q.question),
                        source: "agent",
                        ..Default::default()
                    },
                )?;
            }
        }
        for bad in &p.bad_files {
            tx.add_event(
                now,
                &NewEvent {
                    run_id: Some(run_id),
                    kind: "signal_invalid",
                    message: bad,
                    source: "rule",
                    ..Default::default()
                },
            )?;
        }
        if p.to_completed {
            tx.transition_run(
                run_id,
                RunStatus::Running,
                RunStatus::Completed,
                "completion signal detected",
                now,
                source,
            )?;
        }
        for note in &p.decision.notes {
            tx.add_event(
                now,
                &NewEvent {
                    run_id: Some(run_id),
                    kind: "operator",
                    message: note,
                    source: "rule",
                    ..Default::default()
                },
            )?;
        }
        if p.log_decision {
            let msg = match &p.gated.llm_note {
                Some(n) => format!("{} [{}]", p.gated.reason, n),
                None => p.gated.reason.clone(),
            };
            tx.add_event(
                now,
                &NewEvent {
                    run_id: Some(run_id),
                    kind: "decision",
                    to_state: p.gated.intent.as_str(),
                    message: &msg,
                    source: p.gated.source.as_str(),
                    ..Default::default()
                },
            )?;
        }
        if let Some(state) = &p.new_state {
            tx.put_op_state(run_id, state, now)?;
        }
        if p.to_stopping {
            let from = if p.back_to_running {
                RunStatus::Running
            } else if p.to_awaiting {
                RunStatus::AwaitingGuidance
            } else {
                p.run.status
            };
            tx.transition_run(
                run_id,
                from,
                RunStatus::Stopping,
                &format!("stale run stopped: {}", p.gated.reason),
                now,
                source,
            )?;
        }
    }
    // A hook's tick of one run is not a full tick: it must not postpone the others.
    if full {
        tx.meta_set("last_full_tick", &now.to_string())?;
    }
    if start_status_gen {
        tx.bump_status_gen()?;
    }
    // When this tick observed, for the next one's clock check (tick::clock_step).
    tx.meta_set(LAST_OBSERVED, &now.to_string())?;
    // Cached for the status line, which must not call tmux itself.
    match obs {
        Observation::Unknown(e) => tx.meta_set("tmux_error", e)?,
        Observation::Known(snap) if !plans.is_empty() => {
            tx.meta_set("tmux_error", "")?;
            let opts = serde_json::to_string(&snap.options).unwrap_or_else(|_| "{}".into());
            tx.meta_set("tmux_options", &opts)?;
        }
        Observation::Known(_) => tx.meta_set("tmux_error", "")?,
    }
    tx.commit()?;
    Ok(())
}
