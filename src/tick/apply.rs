//! Carrying out the plan: the state it implies in one transaction, then the tmux actions
//! (restart, stop) and the escalations of new alerts (changelog, notify, tmux message,
//! bell), each at most once.

use super::plan::{Action, Planned};
use crate::changelog;
use crate::cli::{CliError, Ctx};
use crate::model::{AgentSignal, Intent, RunStatus};
use crate::notify;
use crate::policy::Policy;
use crate::store::{AgentRow, NewEvent, Store};
use crate::timeutil::rfc3339;
use crate::tmux::{self, Cmd, Observation};
use std::collections::HashMap;

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
) -> Result<(), CliError> {
    let tx = store.write()?;
    for p in plans {
        let run_id = p.run.id.as_str();
        // Empty when tmux is unknown: an unknown observation never rewrites agents.
        for c in &p.agent_changes {
            if let Some(u) = &c.update {
                tx.update_agent(run_id, &c.name, u, now)?;
            }
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
            super::plan::ApprovalChange::Keep => {}
            super::plan::ApprovalChange::Request(a) => {
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
            super::plan::ApprovalChange::Clear(why) => {
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
                .add_pane_question(run_id, &q.agent, q.source, &q.question, &q.context, now)?
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
                    source: p.gated.source,
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
    // When this tick observed, for the next one's clock check (tick::clock_step).
    tx.meta_set(super::LAST_OBSERVED, &now.to_string())?;
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

pub fn act(
    store: &mut Store,
    ctx: &Ctx,
    plans: &[Planned],
    obs: &Observation,
    now: i64,
    outcomes: &mut HashMap<String, String>,
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
            Ok(_) => "ok".to_string(),
            Err(e) => format!("failed: {e}"),
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
            p.gated.source,
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
                    source: p.gated.source,
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
                    p.gated.source,
                )?;
            }
            tx.add_event(
                now,
                &NewEvent {
                    run_id: Some(run_id),
                    kind: "stop",
                    to_state: "ok",
                    message: &format!("stopped {names}"),
                    source: p.gated.source,
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
                    message: &outcome,
                    source: p.gated.source,
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

fn event_name(intent: Intent) -> &'static str {
    match intent {
        Intent::EscalateGuidance => "guidance_needed",
        Intent::EscalateBlocked => "escalation_blocked",
        Intent::AutoStopStale => "stale_candidate_verified",
        Intent::AutoRestart => "auto_restart_candidate",
        Intent::Noop => "noop",
    }
}

/// Side effects of new alerts, after the state commit (at most once per alert):
/// changelog entry, notify command, tmux message and bell.
#[allow(clippy::too_many_arguments)]
pub fn escalate(
    store: &mut Store,
    ctx: &Ctx,
    policy: &Policy,
    plans: &[Planned],
    obs: &Observation,
    now: i64,
    outcomes: &HashMap<String, String>,
    restarts: &HashMap<String, String>,
    unwritten: &mut HashMap<String, String>,
) -> Result<(), CliError> {
    // Entries a full file system refused earlier are owed first.
    let mut owed = changelog::load_outbox(store.meta_get(changelog::OUTBOX_KEY)?.as_deref());
    let owed_before = owed.clone();
    let mut events = changelog::retry_owed(&mut owed);
    let mut entries: Vec<(String, Option<String>)> = events
        .iter()
        .filter(|(_, kind, _)| *kind == "escalation_written")
        .map(|(run, _, _)| (run.clone(), None))
        .collect();
    let mut messages: Vec<String> = Vec::new();
    for p in plans {
        let completed = p.decision.complete && p.run.status == RunStatus::Running;
        let run_id = p.run.id.as_str();
        // As in the original, an executed restart is notified too (routine for the bar).
        let restarted = (p.gated.execute && p.gated.intent == Intent::AutoRestart)
            .then(|| outcomes.get(run_id))
            .flatten();
        if !p.alert && !completed && restarted.is_none() {
            continue;
        }
        let (event, message) = if completed {
            ("run_completed", "completion signal detected".to_string())
        } else if let (false, Some(outcome)) = (p.alert, restarted) {
            (
                event_name(Intent::AutoRestart),
                match restarts.get(run_id) {
                    // Which kind of restart ran: resume or fresh, and why.
                    Some(k) => format!("{} (restart: {outcome}, {k})", p.gated.reason),
                    None => format!("{} (restart: {outcome})", p.gated.reason),
                },
            )
        } else {
            let mut m = p.gated.reason.clone();
            // What the agent's pane shows: the question's context, on one line.
            if let Some(g) = p
                .pending
                .as_ref()
                .filter(|_| p.alert_intent == Intent::EscalateGuidance)
            {
                let tail: Vec<&str> = g
                    .context
                    .lines()
                    .map(str::trim)
                    .filter(|l| !l.is_empty() && *l != g.question)
                    .collect();
                if !tail.is_empty() {
                    let from = tail.len().saturating_sub(3);
                    m.push_str(&format!(" — {}", tail[from..].join(" / ")));
                }
            }
            (event_name(p.alert_intent), m)
        };
        if p.alert && (p.alert_intent.is_escalation() || p.awaiting_approval) {
            let results = write_changelog(p, &p.policy, now, restarts.get(run_id), &mut owed);
            let failed: Vec<&str> = results
                .iter()
                .filter(|(k, _)| *k == "escalation_unwritten")
                .map(|(_, m)| m.as_str())
                .collect();
            let why = (!failed.is_empty()).then(|| failed.join("; "));
            if let Some(w) = &why {
                unwritten.insert(run_id.to_string(), w.clone());
            }
            entries.push((run_id.to_string(), why));
            for (kind, msg) in results {
                events.push((run_id.to_string(), kind, msg));
            }
        }
        if !p.policy.operator.notify.command.is_empty() {
            // The status after this tick's transitions (guidance, completion, stop).
            let status = p.status_after_action(outcomes.get(run_id).is_some_and(|o| o == "ok"));
            let n = notify::Notice {
                event,
                message: &message,
                run_id,
                run_status: status.as_str(),
                tickets: &p.run.tickets.join(", "),
                intent: p.gated.intent.as_str(),
            };
            if let Err(e) = notify::spawn(&ctx.self_args(), &p.policy.operator.notify.command, &n) {
                events.push((run_id.to_string(), "notify_failed", e));
            }
        }
        if !p.alert && !completed {
            continue;
        }
        messages.push(format!("metawsm: {run_id} {event}: {message}"));
    }
    if !messages.is_empty() {
        if let Observation::Known(snap) = obs {
            let mut cmds = Vec::new();
            if policy.operator.notify.tmux_message {
                for c in &snap.clients {
                    for m in &messages {
                        let text: String = m.chars().take(300).collect();
                        cmds.push(
                            Cmd::new("display-message")
                                .target_flag("-c", tmux::Target::Client(&c.name))
                                .flag("-d")
                                .num(8000)
                                .message(&text),
                        );
                    }
                }
            }
            if !cmds.is_empty() {
                let _ = ctx.tmux.run(&cmds);
            }
            if policy.operator.notify.bell {
                for c in &snap.clients {
                    notify::bell(&c.tty);
                }
            }
        }
    }
    let ticked: Vec<(String, bool)> = plans
        .iter()
        .map(|p| (p.run.id.clone(), p.state.last_alert.is_some()))
        .collect();
    crate::unwritten::after_escalations(store, &ticked, &entries)?;
    if !events.is_empty() || owed != owed_before {
        let tx = store.write()?;
        if owed != owed_before {
            tx.meta_set(changelog::OUTBOX_KEY, &changelog::outbox_text(&owed))?;
        }
        for (run_id, kind, msg) in &events {
            tx.add_event(
                now,
                &NewEvent {
                    run_id: Some(run_id),
                    kind,
                    message: msg,
                    source: "rule",
                    ..Default::default()
                },
            )?;
        }
        tx.commit()?;
    }
    Ok(())
}

fn write_changelog(
    p: &Planned,
    policy: &Policy,
    now: i64,
    restarted: Option<&String>,
    owed: &mut Vec<changelog::Owed>,
) -> Vec<(&'static str, String)> {
    let run = &p.run;
    let answer = if p.awaiting_approval {
        // Written inside backquotes: "`approve …` or `dismiss …`".
        format!(
            "metawsm-tick approve {id}` or `metawsm-tick dismiss {id}",
            id = run.id
        )
    } else if p.gated.intent == Intent::EscalateGuidance
        && p.pending.as_ref().is_some_and(|g| !g.at_prompt)
    {
        format!("metawsm-tick guide {} --answer '…'", run.id)
    } else {
        format!("metawsm-tick run show {}", run.id)
    };
    let at = crate::timeutil::rfc3339_local(now);
    let summary = match restarted {
        Some(k) => format!("{} (restart ran: {k})", p.gated.reason),
        None => p.gated.reason.clone(),
    };
    let entry = changelog::format_entry(&changelog::Entry {
        at: &at,
        run_id: &run.id,
        intent: p.gated.intent.as_str(),
        summary: &summary,
        question: p.pending.as_ref().map(|g| g.question.as_str()),
        context: p.pending.as_ref().map(|g| g.context.as_str()),
        attempts: p.state.restart_attempts,
        budget: policy.operator.restart_budget,
        answer_command: &answer,
    });
    let tickets: Vec<&str> = if run.ticket_dir.is_some() {
        vec![run.tickets.first().map(String::as_str).unwrap_or("")]
    } else {
        run.tickets.iter().map(String::as_str).collect()
    };
    tickets
        .into_iter()
        .map(|t| {
            let o = changelog::Owed {
                run_id: run.id.clone(),
                workspace: run.workspace.clone(),
                doc_home_repo: run.doc_home_repo.clone(),
                ticket: t.to_string(),
                ticket_dir: run.ticket_dir.clone(),
                entry: entry.clone(),
            };
            changelog::deliver_or_owe(o, owed)
        })
        .collect()
}
