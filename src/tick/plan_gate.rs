//! The LLM's and the human's part of the plan, without I/O: the fingerprint of the
//! situation, the hold of an action for the LLM's answer, the gate, assist mode's
//! approval, and the dedup of alerts and decision events per episode.

use super::observe::{Calls, RunInput};
use crate::decide::{self, Decision, PendingGuidance, RunView};
use crate::gate::{self, DecisionSource, Gated};
use crate::model::rows::{ApprovalRow, ApprovalStatus, CallState, OpState, RunRow};
use crate::model::{Health, Intent};
use crate::policy::{LlmMode, Policy};

/// At most this many LLM workers run at once, whatever the number of runs.
pub const MAX_LLM_IN_FLIGHT: usize = 4;

fn fnv(s: &str) -> String {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in s.bytes() {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    format!("{h:016x}")
}

/// The situation an LLM answer is about: a new fingerprint, a new question.
pub(super) fn fingerprint(
    view: &RunView,
    decision: &Decision,
    pending: Option<&PendingGuidance>,
) -> String {
    fnv(&format!(
        "{}|{}|{}|{}|{}",
        view.status,
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
        decide::stable_text(&decision.reason.to_string()),
        pending.map(|g| g.question.as_str()).unwrap_or("")
    ))
}

/// The rules' decision through the LLM gate: the answer on this very situation, if any,
/// and whether the action waits for one.
#[allow(clippy::too_many_arguments)]
pub(super) fn gate_run(
    run: &RunRow,
    decision: &Decision,
    calls: &Calls,
    fingerprint: &str,
    mode: LlmMode,
    dry_run: bool,
    policy: &Policy,
    now: i64,
) -> Gated {
    let call = calls.rows.get(&run.id);
    let proposal = call
        .filter(|c| c.state == CallState::Done && c.fingerprint == fingerprint)
        .and_then(|c| calls.answers.get(&c.run_id));
    // In auto mode an action waits (never the tick) for the LLM's answer on it — but
    // only if a worker slot can take the question (else the hold would never end).
    let own_in_flight = call.is_some_and(|c| c.state == CallState::InFlight);
    let llm_pending = mode == LlmMode::Auto
        && (own_in_flight || calls.live < MAX_LLM_IN_FLIGHT)
        && !dry_run
        && decision.execute
        && gate::askable(run.status, &decision.reason)
        && gate::llm_pending(
            call.map(|c| gate::CallView {
                fingerprint: &c.fingerprint,
                state: c.state,
                started_at: c.started_at,
                worker_alive: c.state == CallState::InFlight && calls.worker_alive(&run.id),
            }),
            fingerprint,
            now,
            &policy.operator.llm,
        );
    gate::gate(
        decision,
        &run.id,
        mode,
        proposal,
        llm_pending,
        policy.operator.llm.min_confidence,
    )
}

/// What this tick does with the run's assist-mode approval.
#[derive(Debug, Clone, PartialEq)]
pub enum ApprovalChange {
    Keep,
    /// A new (or changed) action held for a human.
    Request(ApprovalRow),
    /// No longer wanted (healed, changed, or executed): why.
    Clear(&'static str),
}

/// Assist mode holds the rules' action for a human: a pending approval, unless the
/// human dismissed this very situation in this episode. (awaiting approval, the change)
pub(super) fn approval(
    r: &RunInput,
    decision: &Decision,
    gated: &Gated,
    mode: LlmMode,
    tmux_known: bool,
    now: i64,
) -> (bool, ApprovalChange) {
    let situation = format!(
        "{}:{}",
        decision.intent,
        decide::stable_text(&decision.reason.to_string())
    );
    let held = mode == LlmMode::Assist && decision.execute && !gated.execute;
    let dismissed = r
        .approval
        .as_ref()
        .is_some_and(|a| a.status == ApprovalStatus::Dismissed && a.situation == situation);
    let awaiting_approval = held && !dismissed;
    let change = match &r.approval {
        _ if awaiting_approval => match &r.approval {
            Some(a) if a.status == ApprovalStatus::Pending && a.situation == situation => {
                ApprovalChange::Keep
            }
            _ => ApprovalChange::Request(ApprovalRow {
                run_id: r.run.id.clone(),
                intent: decision.intent,
                targets: decision.targets.clone(),
                reason: decision.reason.to_string(),
                situation,
                status: ApprovalStatus::Pending,
                created_at: now,
            }),
        },
        Some(_) if gated.execute => ApprovalChange::Clear("executed"),
        Some(_) if !decision.execute && tmux_known => ApprovalChange::Clear("no longer wanted"),
        _ => ApprovalChange::Keep,
    };
    (awaiting_approval, change)
}

/// Whether this tick alerts and logs its decision, once per episode each.
pub(super) struct Alerting {
    /// The rules' operator state with the alert and decision dedup applied.
    pub state: OpState,
    pub alert: bool,
    /// The intent the alert speaks for (a vetoed action, not the LLM's noop).
    pub alert_intent: Intent,
    pub log_decision: bool,
}

/// `settled`: this tick is evidence an episode may have ended (tmux known, no clock hold).
pub(super) fn alerting(decision: &Decision, gated: &Gated, settled: bool, now: i64) -> Alerting {
    let mut state = decision.state.clone();
    // An LLM veto of a rule action is something a human must hear about (once per
    // episode); a held action is not news yet.
    let alert_intent = if gated.source == DecisionSource::Llm
        && gated.intent == Intent::Noop
        && decision.intent.is_action()
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
        // A held tick is no evidence that an episode ended.
        settled,
        now,
    );
    let decision_fp = format!(
        "{}:{}:{}",
        gated.intent,
        gated.source,
        decide::stable_text(&gated.reason)
    );
    // An LLM override is always worth an event, a veto to noop included.
    let quiet = gated.intent == Intent::Noop && gated.source != DecisionSource::Llm;
    let log_decision = !quiet
        && (alert || gated.execute || state.last_decision.as_deref() != Some(decision_fp.as_str()));
    state.last_decision = if quiet { None } else { Some(decision_fp) };
    Alerting {
        state,
        alert,
        alert_intent,
        log_decision,
    }
}
