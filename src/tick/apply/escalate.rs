//! Escalations of new alerts, after the state commit and the actions, each at most once:
//! the changelog entry (owed when the file system refuses it), the notify command, the
//! tmux message and the bell.

use super::super::plan::Planned;
use super::act::ActionOutcome;
use crate::changelog;
use crate::cli::{CliError, Ctx};
use crate::model::{Intent, RunStatus};
use crate::notify;
use crate::policy::Policy;
use crate::store::{NewEvent, Store};
use crate::tmux::{self, Cmd, Observation};
use std::collections::HashMap;

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
    outcomes: &HashMap<String, ActionOutcome>,
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
            let status =
                p.status_after_action(outcomes.get(run_id).is_some_and(ActionOutcome::is_done));
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
    let ticked: Vec<(&str, bool)> = plans
        .iter()
        .map(|p| (p.run.id.as_str(), p.state.last_alert.is_some()))
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
        intent: p.gated.intent,
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
