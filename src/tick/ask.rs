//! Asking the LLM: which runs get a question this tick, and starting (or reaping) their
//! detached workers. The answer is read by a later tick's plan.

use super::observe::Calls;
use super::plan::{Planned, MAX_LLM_IN_FLIGHT};
use crate::cli::{CliError, Ctx};
use crate::gate;
use crate::llm_request::{AgentContext, Guidance, Request, Restart, Rule};
use crate::policy::{LlmMode, Policy};
use crate::store::{CallState, NewEvent, Store};
use crate::timeutil::rfc3339;

fn llm_context(p: &Planned, policy: &Policy, now: i64) -> Request {
    Request {
        run_id: p.run.id.clone(),
        status: p.run.status.as_str().into(),
        tickets: p.run.tickets.clone(),
        rule: Rule {
            intent: p.decision.intent.as_str().into(),
            reason: p.decision.reason.to_string(),
        },
        permitted: p
            .decision
            .permitted
            .iter()
            .map(|i| i.as_str().into())
            .collect(),
        restart: Restart {
            attempts: p.state.restart_attempts,
            budget: policy.operator.restart_budget,
            cooldown_until: p.state.cooldown_until.map(rfc3339),
        },
        agents: p
            .agents
            .iter()
            .zip(&p.judgements)
            .map(|(a, j)| AgentContext {
                name: a.name.clone(),
                session: a.session.clone(),
                health: j.health.as_str().into(),
                unhealthy: j.health.is_unhealthy(),
                activity_age_seconds: j.last_activity_at.map(|t| now - t),
                exit_status: j.exit_status,
                exit_signal: j.exit_signal,
                signal: a.signal.map(|s| s.as_str().into()),
                reason: j.reason.clone(),
                pane_tail: None,
            })
            .collect(),
        guidance: p.pending.as_ref().map(|g| Guidance {
            agent: g.agent.clone(),
            question: g.question.clone(),
            context: g.context.clone(),
        }),
    }
}

pub fn ask_llm(
    store: &mut Store,
    ctx: &Ctx,
    plans: &[Planned],
    calls: &Calls,
    now: i64,
) -> Result<bool, CliError> {
    // Whether a call was started or reaped: the next tick has an answer to wait for.
    let mut acted = false;
    // A global bound (counted once per tick, in `tick`): the first tick over many runs
    // must not start a fleet of LLM CLIs.
    let mut in_flight = calls.live;
    for p in plans {
        // Each run by its own policy (its mode may be off).
        let (policy, mode): (&Policy, LlmMode) = (&p.policy, p.mode);
        let llm = &policy.operator.llm;
        if mode == LlmMode::Off {
            continue;
        }
        // Keep in step with gate::llm_pending, which predicts what happens here.
        if !gate::askable(p.run.status, &p.decision.reason) {
            continue;
        }
        let run_id = p.run.id.as_str();
        if let Some(c) = calls.rows.get(run_id) {
            if c.state == CallState::InFlight {
                let deadline = gate::call_deadline(c.started_at, llm);
                let alive = calls.worker_alive(run_id);
                if alive && now < deadline {
                    continue;
                }
                // A worker that died (or overstayed) is reaped, with whatever it started,
                // so the run is not stuck and nothing leaks.
                if let Some(pid) = c.pid {
                    crate::worker::reap_worker(pid, run_id);
                }
                let why = if alive {
                    "worker overstayed its deadline (reaped)"
                } else {
                    "worker lost (reaped)"
                };
                acted = true;
                let tx = store.write()?;
                if tx.llm_call_reaped(run_id, &c.fingerprint, why, now)? {
                    tx.add_event(
                        now,
                        &NewEvent {
                            run_id: Some(run_id),
                            kind: "llm",
                            to_state: "error",
                            message: &format!("error: {why}"),
                            source: "llm",
                            ..Default::default()
                        },
                    )?;
                }
                tx.commit()?;
            } else if c.fingerprint == p.fingerprint {
                // The same situation is asked again only after a long pause: a failing
                // LLM (say, `codex` not installed) must not be called every interval, and
                // an answer that holds back a rule action (a veto) must not last forever.
                // A reaped worker is retried at once.
                let long = llm.min_interval_seconds.max(60).saturating_mul(10);
                // A program that could not start (say, installed since) is worth another
                // try after min_interval, not after the long pause.
                let unstarted = c.unstarted;
                let pause = match c.state {
                    CallState::Done if !p.decision.execute => continue,
                    _ if c.reaped => 0,
                    _ if unstarted => llm.min_interval_seconds,
                    _ => long,
                };
                if now - c.started_at < pause {
                    continue;
                }
            }
            // In auto mode a decision to act is asked at once so the LLM can judge it
            // before it runs; everything else respects min_interval.
            let urgent = mode == LlmMode::Auto && p.decision.execute;
            if !urgent && now - c.started_at < llm.min_interval_seconds {
                continue;
            }
        }
        if in_flight >= MAX_LLM_IN_FLIGHT {
            continue;
        }
        in_flight += 1;
        acted = true;
        let request = serde_json::to_string(&llm_context(p, policy, now)).unwrap_or_default();
        {
            let tx = store.write()?;
            tx.llm_call_start(run_id, &p.fingerprint, &request, now)?;
            tx.commit()?;
        }
        match crate::worker::spawn(ctx, run_id, &p.fingerprint) {
            Ok(pid) => store.llm_call_set_pid(run_id, i64::from(pid))?,
            Err(e) => {
                let tx = store.write()?;
                tx.llm_call_finish(
                    run_id,
                    &p.fingerprint,
                    None,
                    Some(&format!("spawn worker: {e}")),
                    false,
                    now,
                )?;
                tx.commit()?;
            }
        }
    }
    Ok(acted)
}
