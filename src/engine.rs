//! One tick: observe (one tmux call) → decide (pure) → record → act → escalate → ask the LLM.
//! The caller holds the state lock.

use crate::changelog;
use crate::cli::{CliError, Ctx};
use crate::decide::{self, AgentView, Decision, PendingGuidance, RunView};
use crate::gate::{self, Gated};
use crate::health::{self, Judgement, Prior, Thresholds};
use crate::llm::{self, Proposal};
use crate::model::{AgentSignal, Health, Intent, RunStatus};
use crate::notify;
use crate::policy::{LlmMode, Policy};
use crate::signals::{self, Read_};
use crate::store::{self, AgentRow, AgentUpdate, NewEvent, OpState, RunRow, Store};
use crate::timeutil::{now_unix, rfc3339};
use crate::tmux::{self, Cmd, Observation, SessionState};
use serde_json::json;
use std::collections::HashMap;
use std::path::{Path, PathBuf};

#[derive(Debug, Clone)]
pub struct TickOptions {
    pub run: Option<String>,
    pub dry_run: bool,
    pub llm_mode: Option<LlmMode>,
    /// tick | status | hook | timer
    pub source: &'static str,
}

#[derive(Debug, Clone, serde::Serialize)]
pub struct AgentLine {
    pub name: String,
    pub session: String,
    pub health: String,
    pub reason: String,
}

#[derive(Debug, Clone, serde::Serialize)]
pub struct RunOutcome {
    pub run_id: String,
    pub status: String,
    pub intent: String,
    pub reason: String,
    pub decision_source: String,
    pub permitted: Vec<String>,
    pub llm: Option<String>,
    pub execute: bool,
    /// Outcome of the action when one ran: "ok" or the error.
    pub outcome: Option<String>,
    pub alert: bool,
    pub targets: Vec<String>,
    pub agents: Vec<AgentLine>,
}

#[derive(Debug, Clone, serde::Serialize)]
pub struct TickReport {
    pub at: String,
    pub dry_run: bool,
    pub tmux_error: Option<String>,
    pub runs: Vec<RunOutcome>,
}

struct Planned {
    run: RunRow,
    agents: Vec<AgentRow>,
    judgements: Vec<Judgement>,
    new_guidance: Vec<(PathBuf, signals::GuidanceRequest)>,
    bad_files: Vec<String>,
    pending: Option<PendingGuidance>,
    decision: Decision,
    gated: Gated,
    state: OpState,
    alert: bool,
    /// The intent the alert speaks for (a vetoed action, not the LLM's noop).
    alert_intent: Intent,
    log_decision: bool,
    fingerprint: String,
    prev_state: OpState,
}

fn thresholds(p: &Policy) -> Thresholds {
    Thresholds {
        idle_seconds: p.health.idle_seconds,
        activity_stalled_seconds: p.health.activity_stalled_seconds,
        progress_stalled_seconds: p.health.progress_stalled_seconds,
    }
}

fn fnv(s: &str) -> String {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in s.bytes() {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    format!("{h:016x}")
}

pub fn proposal_from_json(text: &str) -> Option<Proposal> {
    let v: serde_json::Value = serde_json::from_str(text).ok()?;
    Some(Proposal {
        intent: v.get("intent")?.as_str()?.parse().ok()?,
        target_run: v.get("target_run")?.as_str()?.to_string(),
        reason: llm::sanitize_text(v.get("reason")?.as_str()?),
        confidence: v.get("confidence")?.as_f64()?,
        needs_human: v.get("needs_human")?.as_bool()?,
    })
}

fn signal_guidance(agents: &[AgentRow], judgements: &[Judgement]) -> Option<PendingGuidance> {
    agents
        .iter()
        .zip(judgements)
        .find(|(a, j)| a.signal == Some(AgentSignal::Waiting) && j.alive)
        .map(|(a, _)| PendingGuidance {
            agent: a.name.clone(),
            question: "(waiting for input at its prompt)".into(),
            context: String::new(),
        })
}

pub fn tick(
    store: &mut Store,
    ctx: &Ctx,
    policy: &Policy,
    opts: &TickOptions,
) -> Result<TickReport, CliError> {
    let now = now_unix();
    let mode = opts.llm_mode.unwrap_or(policy.operator.llm.mode);
    let touched = if opts.dry_run {
        Vec::new()
    } else {
        drain_inbox(store, now)?
    };
    let mut runs: Vec<RunRow> = match &opts.run {
        Some(id) => {
            // A one-run tick (a hook's) also looks at the runs whose queued events it
            // just consumed, so their events do not wait for the next full tick.
            let mut v = vec![store.run(id)?];
            for other in touched.iter().filter(|r| *r != id) {
                if let Ok(r) = store.run(other) {
                    if r.status.is_active() {
                        v.push(r);
                    }
                }
            }
            v
        }
        None => store.runs(false)?,
    };
    let mut agents_by_run: HashMap<String, Vec<AgentRow>> = HashMap::new();
    for a in store.agents(None)? {
        agents_by_run.entry(a.run_id.clone()).or_default().push(a);
    }
    let states = store.op_states()?;
    let pending_rows = store.all_pending_guidance()?;
    let calls = store.llm_calls()?;
    // No runs, no tmux: the cheapest possible tick.
    let obs = if runs.is_empty() {
        Observation::Known(Default::default())
    } else {
        ctx.tmux.observe()
    };
    // A database shared by several tmux servers: each server supervises only its runs.
    if let Observation::Known(snap) = &obs {
        if let Some(here) = &snap.socket {
            runs.retain(|r| r.tmux_socket.as_deref().is_none_or(|s| s == here));
        }
    }
    let tmux_error = match &obs {
        Observation::Unknown(e) => Some(e.clone()),
        Observation::Known(_) => None,
    };
    let th = thresholds(policy);
    let calls = Calls {
        live: calls
            .values()
            .filter(|c| {
                c.state == "in_flight"
                    && c.pid
                        .is_some_and(|pid| crate::cmd::llm_worker::worker_alive(pid, &c.run_id))
            })
            .count(),
        rows: calls,
    };

    let mut plans = Vec::new();
    for run in runs {
        let agents = agents_by_run.remove(&run.id).unwrap_or_default();
        let prev = states.get(&run.id).cloned().unwrap_or_default();
        let judgements: Vec<Judgement> = agents
            .iter()
            .map(|a| {
                let prior = Prior {
                    last_activity_at: a.last_activity_at,
                    last_progress_at: a.last_progress_at,
                    started_at: a.started_at,
                    signal: a.signal,
                    exit_status: a.exit_status,
                    exit_signal: a.exit_signal,
                    health: Some(a.health),
                };
                health::judge(obs.panes(&a.session), &prior, now, &th)
            })
            .collect();

        let roots = signals::roots(&run.workspace, run.doc_home_repo.as_deref());
        let mut new_guidance = Vec::new();
        let mut bad_files = Vec::new();
        let mut completions = Vec::new();
        let watch = matches!(run.status, RunStatus::Running | RunStatus::AwaitingGuidance);
        if watch {
            for root in &roots {
                match signals::read_guidance(root) {
                    Read_::Found(_, g) if signals::for_run(&g.run_id, &run.id) => {
                        new_guidance.push((root.clone(), g))
                    }
                    Read_::Bad(p, why) => bad_files.push(format!("{}: {why}", p.display())),
                    _ => {}
                }
                match signals::read_completion(root) {
                    Read_::Found(_, c) if signals::for_run(&c.run_id, &run.id) => {
                        completions.push(c)
                    }
                    Read_::Bad(p, why) => bad_files.push(format!("{}: {why}", p.display())),
                    _ => {}
                }
            }
        }
        let pending = pending_rows
            .get(&run.id)
            .and_then(|v| v.first())
            .map(|g| PendingGuidance {
                agent: g.agent.clone(),
                question: g.question.clone(),
                context: g.context.clone(),
            })
            .or_else(|| {
                new_guidance.first().map(|(_, g)| PendingGuidance {
                    agent: g.agent.clone().unwrap_or_default(),
                    question: g.question.clone(),
                    context: g.context.clone(),
                })
            })
            .or_else(|| signal_guidance(&agents, &judgements));

        let view = RunView {
            id: run.id.clone(),
            status: run.status,
            status_changed_at: run.status_changed_at,
            agents: agents
                .iter()
                .zip(&judgements)
                .map(|(a, j)| AgentView {
                    name: a.name.clone(),
                    health: j.health,
                    alive: j.alive,
                    exit_status: j.exit_status,
                    last_activity_at: j.last_activity_at,
                    stored_activity_at: a.last_activity_at,
                    reason: j.reason.clone(),
                    reported_done: a.signal == Some(AgentSignal::Done),
                    complete: completions
                        .iter()
                        .any(|c| c.agent.as_deref().is_none_or(|n| n == a.name)),
                })
                .collect(),
            guidance: pending.clone(),
            tmux_unknown: tmux_error.clone(),
        };
        let decision = decide::decide(&view, &prev, policy, now);
        let fingerprint = fnv(&format!(
            "{}|{}|{}|{}|{}",
            run.status,
            view.agents
                .iter()
                .map(|a| {
                    // healthy↔idle flips are not worth a new LLM call.
                    let h = if a.health == Health::Idle {
                        Health::Healthy
                    } else {
                        a.health
                    };
                    format!("{}={}", a.name, h)
                })
                .collect::<Vec<_>>()
                .join(","),
            decision.intent,
            decide::stable_text(&decision.reason),
            pending.as_ref().map(|g| g.question.as_str()).unwrap_or("")
        ));
        let call = calls.rows.get(&run.id);
        let proposal = call
            .filter(|c| c.state == "done" && c.fingerprint == fingerprint)
            .and_then(|c| c.proposal.as_deref())
            .and_then(proposal_from_json);
        // In auto mode an action waits (never the tick) for the LLM's answer on it — but
        // only if a worker slot can take the question (else the hold would never end).
        let own_in_flight = call.is_some_and(|c| c.state == "in_flight");
        let llm_pending = mode == LlmMode::Auto
            && (own_in_flight || calls.live < MAX_LLM_IN_FLIGHT)
            && !opts.dry_run
            && decision.execute
            && gate::askable(run.status, &decision.reason)
            && gate::llm_pending(
                call.map(|c| gate::CallView {
                    fingerprint: &c.fingerprint,
                    state: &c.state,
                    started_at: c.started_at,
                    worker_alive: c.state == "in_flight"
                        && c.pid
                            .is_some_and(|pid| crate::cmd::llm_worker::worker_alive(pid, &run.id)),
                }),
                &fingerprint,
                now,
                &policy.operator.llm,
            );
        let gated = gate::gate(
            &decision,
            &run.id,
            mode,
            proposal.as_ref(),
            llm_pending,
            policy.operator.llm.min_confidence,
        );
        let mut state = decision.state.clone();
        // An LLM veto of a rule action is something a human must hear about (once per
        // episode); a held action is not news yet.
        let alert_intent =
            if gated.source == "llm" && gated.intent == Intent::Noop && decision.intent.is_action()
            {
                decision.intent
            } else {
                gated.intent
            };
        let alert = decide::take_alert(
            &mut state,
            alert_intent,
            &gated.reason,
            gated.execute || gated.held,
            tmux_error.is_none(),
            now,
        );
        let decision_fp = format!(
            "{}:{}:{}",
            gated.intent,
            gated.source,
            decide::stable_text(&gated.reason)
        );
        // An LLM override is always worth an event, a veto to noop included.
        let quiet = gated.intent == Intent::Noop && gated.source != "llm";
        let log_decision = !quiet
            && (alert
                || gated.execute
                || state.last_decision.as_deref() != Some(decision_fp.as_str()));
        state.last_decision = if quiet { None } else { Some(decision_fp) };
        plans.push(Planned {
            run,
            agents,
            judgements,
            new_guidance,
            bad_files,
            pending,
            decision,
            gated,
            state,
            alert,
            alert_intent,
            log_decision,
            fingerprint,
            prev_state: prev,
        });
    }

    let mut outcomes: HashMap<String, String> = HashMap::new();
    if !opts.dry_run {
        record(
            store,
            policy,
            &plans,
            &obs,
            now,
            opts.source,
            opts.run.is_none(),
        )?;
        act(store, ctx, policy, &plans, &obs, now, &mut outcomes)?;
        escalate(store, ctx, policy, &plans, &obs, now, &outcomes)?;
        if mode != LlmMode::Off {
            ask_llm(store, ctx, policy, mode, &plans, &calls, now)?;
        }
        if opts.source != "timer" {
            crate::cmd::timer::arm_if_stale(store, ctx, policy, now);
        }
        // Best effort: a stale cache only delays the bar until the next tick.
        let _ = crate::status_cache::refresh(store);
    }

    Ok(TickReport {
        at: rfc3339(now),
        dry_run: opts.dry_run,
        tmux_error,
        runs: plans
            .iter()
            .map(|p| RunOutcome {
                run_id: p.run.id.clone(),
                status: p.run.status.to_string(),
                intent: p.gated.intent.to_string(),
                reason: p.gated.reason.clone(),
                decision_source: p.gated.source.to_string(),
                permitted: p.decision.permitted.iter().map(|i| i.to_string()).collect(),
                llm: p.gated.llm_note.clone(),
                execute: p.gated.execute,
                outcome: outcomes.get(&p.run.id).cloned(),
                alert: p.alert,
                targets: p.decision.targets.clone(),
                agents: p
                    .agents
                    .iter()
                    .zip(&p.judgements)
                    .map(|(a, j)| AgentLine {
                        name: a.name.clone(),
                        session: a.session.clone(),
                        health: j.health.to_string(),
                        reason: j.reason.clone(),
                    })
                    .collect(),
            })
            .collect(),
    })
}

/// Signals and hook events queued by processes that could not take the lock.
/// Returns the runs whose tmux events were drained: they are due a look now.
pub fn drain_inbox(store: &mut Store, now: i64) -> Result<Vec<String>, CliError> {
    let mut touched = Vec::new();
    if !store.inbox_pending()? {
        return Ok(touched);
    }
    let tx = store.write()?;
    for item in store::inbox_drain(&tx)? {
        if item.event == "signal" {
            let mut parts = item.args.splitn(2, '\t');
            let (Some(agent), Some(state)) = (parts.next(), parts.next()) else {
                continue;
            };
            if let (Some(run), Ok(sig)) = (item.run_id.as_deref(), state.parse::<AgentSignal>()) {
                store::set_agent_signal(&tx, run, agent, sig, item.at)?;
                store::add_event(
                    &tx,
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
            store::add_event(
                &tx,
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

fn record(
    store: &mut Store,
    policy: &Policy,
    plans: &[Planned],
    obs: &Observation,
    now: i64,
    source: &str,
    full: bool,
) -> Result<(), CliError> {
    let tmux_unknown = matches!(obs, Observation::Unknown(_));
    let tx = store.write()?;
    for p in plans {
        let run_id = p.run.id.as_str();
        // An unknown observation never rewrites what we know about agents.
        if !tmux_unknown {
            for (a, j) in p.agents.iter().zip(&p.judgements) {
                let u = AgentUpdate {
                    status: j.status.to_string(),
                    health: j.health,
                    last_activity_at: j.last_activity_at,
                    last_progress_at: j.last_progress_at,
                    exit_status: j.exit_status,
                    exit_signal: j.exit_signal,
                    pane_id: j.pane_id.clone(),
                };
                let changed = a.status != u.status
                    || a.health != u.health
                    || a.last_activity_at != u.last_activity_at
                    || a.exit_status != u.exit_status
                    || a.pane_id != u.pane_id;
                if a.status == "stopped" {
                    continue;
                }
                if changed {
                    store::update_agent(&tx, run_id, &a.name, &u, now)?;
                }
                if a.health != j.health {
                    store::add_event(
                        &tx,
                        now,
                        &NewEvent {
                            run_id: Some(run_id),
                            agent: Some(&a.name),
                            kind: "health",
                            from_state: a.health.as_str(),
                            to_state: j.health.as_str(),
                            message: &j.reason,
                            source,
                        },
                    )?;
                }
            }
        }
        let mut status = p.run.status;
        for (root, g) in &p.new_guidance {
            let agent = g.agent.clone().unwrap_or_default();
            let id = store::add_guidance(
                &tx,
                run_id,
                &agent,
                &root.to_string_lossy(),
                &g.question,
                &g.context,
                now,
            )?;
            if id.is_some() {
                store::add_event(
                    &tx,
                    now,
                    &NewEvent {
                        run_id: Some(run_id),
                        agent: Some(&agent),
                        kind: "guidance_requested",
                        to_state: "pending",
                        message: &g.question,
                        source: "agent",
                        ..Default::default()
                    },
                )?;
            }
            if status == RunStatus::Running {
                store::transition_run(
                    &tx,
                    run_id,
                    status,
                    RunStatus::AwaitingGuidance,
                    "awaiting operator guidance",
                    now,
                    source,
                )?;
                status = RunStatus::AwaitingGuidance;
            }
        }
        for bad in &p.bad_files {
            // One event per file and problem, not one per tick.
            let path = bad.split(": ").next().unwrap_or(bad);
            let last = store::last_event_for(&tx, run_id, "signal_invalid", &format!("{path}: "))?;
            if last.as_deref() != Some(bad.as_str()) {
                store::add_event(
                    &tx,
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
        }
        if p.decision.complete && status == RunStatus::Running {
            store::transition_run(
                &tx,
                run_id,
                status,
                RunStatus::Completed,
                "completion signal detected",
                now,
                source,
            )?;
        }
        for note in &p.decision.notes {
            store::add_event(
                &tx,
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
            store::add_event(
                &tx,
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
        let mut state = p.state.clone();
        if p.gated.execute && p.gated.intent == Intent::AutoRestart {
            // The attempt counts before tmux runs: a crash mid-restart still spends budget.
            state = decide::after_restart(&state, now, policy);
        }
        if state != p.prev_state {
            store::put_op_state(&tx, run_id, &state, now)?;
        }
        if p.gated.execute
            && p.gated.intent == Intent::AutoStopStale
            && status.can_transition(RunStatus::Stopping)
        {
            store::transition_run(
                &tx,
                run_id,
                status,
                RunStatus::Stopping,
                &format!("stale run stopped: {}", p.gated.reason),
                now,
                source,
            )?;
        }
    }
    // A hook's tick of one run is not a full tick: it must not postpone the others.
    if full {
        store::meta_set(&tx, "last_full_tick", &now.to_string())?;
    }
    // Cached for the status line, which must not call tmux itself.
    match obs {
        Observation::Unknown(e) => store::meta_set(&tx, "tmux_error", e)?,
        Observation::Known(snap) if !plans.is_empty() => {
            store::meta_set(&tx, "tmux_error", "")?;
            let opts = serde_json::to_string(&snap.options).unwrap_or_else(|_| "{}".into());
            store::meta_set(&tx, "tmux_options", &opts)?;
        }
        Observation::Known(_) => store::meta_set(&tx, "tmux_error", "")?,
    }
    tx.commit()?;
    Ok(())
}

/// The environment every agent session gets, so agent-side adapters find their run.
pub fn agent_env(ctx: &Ctx, run_id: &str, agent: &str) -> Vec<(String, String)> {
    vec![
        ("METAWSM_RUN_ID".into(), run_id.into()),
        ("METAWSM_AGENT".into(), agent.into()),
        ("METAWSM_DB".into(), ctx.db.to_string_lossy().into_owned()),
    ]
}

pub fn agent_start_cmds(ctx: &Ctx, policy: &Policy, a: &AgentRow) -> Vec<Cmd> {
    tmux::start_agent_cmds(
        &a.session,
        &a.workdir,
        &a.argv,
        &agent_env(ctx, &a.run_id, &a.name),
        policy.health.activity_stalled_seconds,
    )
}

fn act(
    store: &mut Store,
    ctx: &Ctx,
    policy: &Policy,
    plans: &[Planned],
    obs: &Observation,
    now: i64,
    outcomes: &mut HashMap<String, String>,
) -> Result<(), CliError> {
    if matches!(obs, Observation::Unknown(_)) {
        return Ok(());
    }
    for p in plans {
        let restart = p.gated.execute && p.gated.intent == Intent::AutoRestart;
        let stop = (p.gated.execute && p.gated.intent == Intent::AutoStopStale)
            || p.run.status == RunStatus::Stopping;
        if !restart && !stop {
            continue;
        }
        let run_id = p.run.id.as_str();
        let targets: Vec<&AgentRow> = p
            .agents
            .iter()
            .filter(|a| stop || p.decision.targets.contains(&a.name))
            .collect();
        let mut cmds = Vec::new();
        for a in &targets {
            if matches!(obs.panes(&a.session), SessionState::Present(_)) {
                cmds.push(tmux::kill_session_cmd(&a.session));
            }
            if restart {
                cmds.extend(agent_start_cmds(ctx, policy, a));
            }
        }
        let result = if cmds.is_empty() {
            Ok(String::new())
        } else {
            ctx.tmux.run(&cmds)
        };
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
        if restart {
            if result.is_ok() {
                for a in &targets {
                    store::mark_agent_started(&tx, run_id, &a.name, now)?;
                }
            }
            let st = store::op_state_tx(&tx, run_id)?;
            let msg = format!(
                "restart of {names}: {outcome} (attempt {}/{}, cooldown until {})",
                st.restart_attempts,
                policy.operator.restart_budget,
                st.cooldown_until.map(rfc3339).unwrap_or_else(|| "-".into())
            );
            store::add_event(
                &tx,
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
            for a in &targets {
                store::mark_agent_stopped(&tx, run_id, &a.name, now)?;
            }
            let current = tx.query_row("SELECT status FROM runs WHERE id = ?1", [run_id], |r| {
                r.get::<_, String>(0)
            })?;
            if current == RunStatus::Stopping.as_str() {
                store::transition_run(
                    &tx,
                    run_id,
                    RunStatus::Stopping,
                    RunStatus::Stopped,
                    "run stopped",
                    now,
                    p.gated.source,
                )?;
            }
            store::add_event(
                &tx,
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
            store::add_event(
                &tx,
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
fn escalate(
    store: &mut Store,
    ctx: &Ctx,
    policy: &Policy,
    plans: &[Planned],
    obs: &Observation,
    now: i64,
    outcomes: &HashMap<String, String>,
) -> Result<(), CliError> {
    let mut events: Vec<(String, &'static str, String)> = Vec::new();
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
                format!("{} (restart: {outcome})", p.gated.reason),
            )
        } else {
            (event_name(p.alert_intent), p.gated.reason.clone())
        };
        if p.alert && p.alert_intent.is_escalation() {
            for (kind, msg) in write_changelog(p, policy, now) {
                events.push((run_id.to_string(), kind, msg));
            }
        }
        if !policy.operator.notify.command.is_empty() {
            // The status after this tick's transitions (guidance, completion, stop).
            let status = store.run(run_id).map(|r| r.status).unwrap_or(p.run.status);
            let n = notify::Notice {
                event,
                message: &message,
                run_id,
                run_status: status.as_str(),
                tickets: &p.run.tickets.join(", "),
                intent: p.gated.intent.as_str(),
            };
            if let Err(e) = notify::spawn(&ctx.self_args(), &policy.operator.notify.command, &n) {
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
    if !events.is_empty() {
        let tx = store.write()?;
        for (run_id, kind, msg) in &events {
            store::add_event(
                &tx,
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

fn write_changelog(p: &Planned, policy: &Policy, now: i64) -> Vec<(&'static str, String)> {
    let run = &p.run;
    let answer = if p.gated.intent == Intent::EscalateGuidance
        && p.pending
            .as_ref()
            .is_some_and(|g| !g.question.starts_with('('))
    {
        format!("metawsm-tick guide {} --answer '…'", run.id)
    } else {
        format!("metawsm-tick run show {}", run.id)
    };
    let at = rfc3339(now);
    let entry = changelog::format_entry(&changelog::Entry {
        at: &at,
        run_id: &run.id,
        intent: p.gated.intent.as_str(),
        summary: &p.gated.reason,
        question: p.pending.as_ref().map(|g| g.question.as_str()),
        context: p.pending.as_ref().map(|g| g.context.as_str()),
        attempts: p.state.restart_attempts,
        budget: policy.operator.restart_budget,
        answer_command: &answer,
    });
    let ws = Path::new(&run.workspace);
    let mut out = Vec::new();
    let tickets: Vec<&str> = if run.ticket_dir.is_some() {
        vec![run.tickets.first().map(String::as_str).unwrap_or("")]
    } else {
        run.tickets.iter().map(String::as_str).collect()
    };
    for t in tickets {
        let result = changelog::ticket_dir(
            ws,
            run.doc_home_repo.as_deref(),
            t,
            run.ticket_dir.as_deref(),
        )
        .and_then(|dir| changelog::append(ws, &dir, &entry));
        match result {
            Ok(path) => out.push(("escalation_written", path.display().to_string())),
            Err(e) => out.push(("escalation_unwritten", format!("ticket {t}: {e}"))),
        }
    }
    out
}

fn llm_context(p: &Planned, policy: &Policy, now: i64) -> serde_json::Value {
    let agents: Vec<serde_json::Value> = p
        .agents
        .iter()
        .zip(&p.judgements)
        .map(|(a, j)| {
            json!({
                "name": a.name,
                "session": a.session,
                "health": j.health.as_str(),
                "unhealthy": j.health.is_unhealthy(),
                "activity_age_seconds": j.last_activity_at.map(|t| now - t),
                "exit_status": j.exit_status,
                "exit_signal": j.exit_signal,
                "signal": a.signal.map(|s| s.as_str()),
                "reason": j.reason,
            })
        })
        .collect();
    json!({
        "run_id": p.run.id,
        "status": p.run.status.as_str(),
        "tickets": p.run.tickets,
        "rule": {"intent": p.decision.intent.as_str(), "reason": p.decision.reason},
        "permitted": p.decision.permitted.iter().map(|i| i.as_str()).collect::<Vec<_>>(),
        "restart": {
            "attempts": p.state.restart_attempts,
            "budget": policy.operator.restart_budget,
            "cooldown_until": p.state.cooldown_until.map(rfc3339),
        },
        "agents": agents,
        "guidance": p.pending.as_ref().map(|g| json!({
            "agent": g.agent,
            "question": g.question,
            "context": g.context,
        })),
    })
}

/// The runs' LLM calls as this tick read them, and how many workers are alive.
struct Calls {
    rows: HashMap<String, store::LlmCall>,
    live: usize,
}

/// At most this many LLM workers run at once, whatever the number of runs.
pub const MAX_LLM_IN_FLIGHT: usize = 4;

fn ask_llm(
    store: &mut Store,
    ctx: &Ctx,
    policy: &Policy,
    mode: LlmMode,
    plans: &[Planned],
    calls: &Calls,
    now: i64,
) -> Result<(), CliError> {
    let llm = &policy.operator.llm;
    // A global bound (counted once per tick, in `tick`): the first tick over many runs
    // must not start a fleet of LLM CLIs.
    let mut in_flight = calls.live;
    for p in plans {
        // Keep in step with gate::llm_pending, which predicts what happens here.
        if !gate::askable(p.run.status, &p.decision.reason) {
            continue;
        }
        let run_id = p.run.id.as_str();
        if let Some(c) = calls.rows.get(run_id) {
            if c.state == "in_flight" {
                let deadline = c.started_at + llm.timeout_seconds + 15;
                let alive = c
                    .pid
                    .is_some_and(|pid| crate::cmd::llm_worker::worker_alive(pid, run_id));
                if alive && now < deadline {
                    continue;
                }
                // A worker that died (or overstayed) is reaped, with whatever it started,
                // so the run is not stuck and nothing leaks.
                if let Some(pid) = c.pid {
                    crate::cmd::llm_worker::reap_worker(pid, run_id);
                }
                let why = if alive {
                    "worker overstayed its deadline (reaped)"
                } else {
                    "worker lost (reaped)"
                };
                let tx = store.write()?;
                if store::llm_call_finish(&tx, run_id, &c.fingerprint, None, Some(why), now)? {
                    store::add_event(
                        &tx,
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
                let reaped = c.error.as_deref().is_some_and(|e| e.contains("(reaped)"));
                let long = llm.min_interval_seconds.max(60).saturating_mul(10);
                let pause = match c.state.as_str() {
                    "done" if !p.decision.execute => continue,
                    _ if reaped => 0,
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
        let request = llm_context(p, policy, now).to_string();
        {
            let tx = store.write()?;
            store::llm_call_start(&tx, run_id, &p.fingerprint, &request, now)?;
            tx.commit()?;
        }
        match crate::cmd::llm_worker::spawn(ctx, run_id, &p.fingerprint) {
            Ok(pid) => store::llm_call_set_pid(&store.conn, run_id, i64::from(pid))?,
            Err(e) => {
                let tx = store.write()?;
                store::llm_call_finish(
                    &tx,
                    run_id,
                    &p.fingerprint,
                    None,
                    Some(&format!("spawn worker: {e}")),
                    now,
                )?;
                tx.commit()?;
            }
        }
    }
    Ok(())
}
