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

/// FNV-1a, fed as text is written (no string built per run).
struct Fnv(u64);

impl Fnv {
    fn new() -> Fnv {
        Fnv(0xcbf2_9ce4_8422_2325)
    }
}

impl std::fmt::Write for Fnv {
    fn write_str(&mut self, s: &str) -> std::fmt::Result {
        for b in s.bytes() {
            self.0 ^= u64::from(b);
            self.0 = self.0.wrapping_mul(0x0100_0000_01b3);
        }
        Ok(())
    }
}

/// The situation an LLM answer is about: a new fingerprint, a new question. The hash of
/// `status|name=health,…|intent|stable reason|question`, written straight into it.
pub(super) fn fingerprint(
    view: &RunView,
    decision: &Decision,
    pending: Option<&PendingGuidance>,
) -> String {
    use std::fmt::Write as _;
    let mut h = Fnv::new();
    let mut put = |s: &str| {
        let _ = h.write_str(s);
    };
    put(view.status.as_str());
    put("|");
    for (i, a) in view.agents.iter().enumerate() {
        // healthy↔idle flips are not worth a new LLM call.
        let health = if a.health == Health::Idle {
            Health::Healthy
        } else {
            a.health
        };
        put(if i == 0 { "" } else { "," });
        put(&a.name);
        put("=");
        put(health.as_str());
    }
    put("|");
    put(decision.intent.as_str());
    put("|");
    let _ = write!(decide::Stable::new(&mut h), "{}", decision.reason);
    let _ = h.write_str("|");
    let _ = h.write_str(pending.map(|g| g.question.as_str()).unwrap_or(""));
    hex16(h.0)
}

/// `format!("{:016x}", v)` without the formatting machinery: 1,000 instructions a run
/// through `format!`, a tenth of a 500-run plan.
fn hex16(v: u64) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut out = [0u8; 16];
    for (i, d) in out.iter_mut().enumerate() {
        *d = DIGITS[((v >> ((15 - i) * 4)) & 0xf) as usize];
    }
    // ASCII digits: always UTF-8.
    String::from_utf8_lossy(&out).into_owned()
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
    let held = mode == LlmMode::Assist && decision.execute && !gated.execute;
    // Nothing held and nothing on record: nothing to compare the situation with.
    if !held && r.approval.is_none() {
        return (false, ApprovalChange::Keep);
    }
    let mut situation = format!("{}:", decision.intent);
    let _ = std::fmt::Write::write_fmt(
        &mut decide::Stable::new(&mut situation),
        format_args!("{}", decision.reason),
    );
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
    // An LLM override is always worth an event, a veto to noop included.
    let quiet = gated.intent == Intent::Noop && gated.source != DecisionSource::Llm;
    let decision_fp = (!quiet).then(|| {
        format!(
            "{}:{}:{}",
            gated.intent,
            gated.source,
            decide::stable_text(&gated.reason)
        )
    });
    let log_decision = !quiet
        && (alert || gated.execute || state.last_decision.as_deref() != decision_fp.as_deref());
    state.last_decision = decision_fp;
    Alerting {
        state,
        alert,
        alert_intent,
        log_decision,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::decide::AgentView;
    use crate::model::RunStatus;
    use crate::reason::Reason;

    #[test]
    fn hex16_is_format_016x() {
        let mut v: u64 = 0x9e37_79b9_7f4a_7c15;
        for x in [0, 1, 0xf, 0x10, u64::MAX, 0x0123_4567_89ab_cdef] {
            assert_eq!(hex16(x), format!("{x:016x}"));
        }
        for _ in 0..1000 {
            v = v.wrapping_mul(0x0100_0000_01b3) ^ (v >> 7);
            assert_eq!(hex16(v), format!("{v:016x}"));
        }
    }

    /// The fingerprint as it was built before it was written straight into the hash.
    fn built_then_hashed(
        view: &RunView,
        d: &Decision,
        pending: Option<&PendingGuidance>,
    ) -> String {
        let text = format!(
            "{}|{}|{}|{}|{}",
            view.status,
            view.agents
                .iter()
                .map(|a| {
                    let h = if a.health == Health::Idle {
                        Health::Healthy
                    } else {
                        a.health
                    };
                    format!("{}={}", a.name, h)
                })
                .collect::<Vec<_>>()
                .join(","),
            d.intent,
            decide::stable_text(&d.reason.to_string()),
            pending.map(|g| g.question.as_str()).unwrap_or("")
        );
        let mut h = Fnv::new();
        let _ = std::fmt::Write::write_str(&mut h, &text);
        format!("{:016x}", h.0)
    }

    #[test]
    fn the_fingerprint_hashes_the_text_it_always_hashed() {
        let agent = |name: &str, health: Health| AgentView {
            name: name.into(),
            health,
            alive: true,
            exit_status: None,
            last_activity_at: None,
            stored_activity_at: None,
            reason: String::new(),
            reported_done: false,
            interactive: None,
            restartable: true,
            complete: false,
        };
        let views = [
            Vec::new(),
            vec![agent("w1", Health::Idle)],
            vec![agent("w1", Health::Healthy), agent("w2-é", Health::Stalled)],
        ];
        let reasons = [
            Reason::Nothing,
            Reason::Completed,
            Reason::RunInactive(RunStatus::Paused),
            Reason::AwaitingCorroboration { streak: 2, need: 3 },
            Reason::StaleVerified {
                age: 7201,
                threshold: 3600,
                window: 60,
            },
        ];
        let question = PendingGuidance {
            agent: "w1".into(),
            question: "proceed 3 times? | yes".into(),
            context: String::new(),
            at_prompt: false,
        };
        for agents in &views {
            for reason in &reasons {
                for pending in [None, Some(&question)] {
                    let view = RunView {
                        id: "run-42".into(),
                        status: RunStatus::Running,
                        status_changed_at: 0,
                        agents: agents.clone(),
                        guidance: None,
                        tmux_unknown: None,
                    };
                    let d = Decision {
                        intent: Intent::EscalateBlocked,
                        reason: reason.clone(),
                        permitted: Vec::new(),
                        execute: false,
                        targets: Vec::new(),
                        complete: false,
                        state: OpState::default(),
                        notes: Vec::new(),
                    };
                    assert_eq!(
                        fingerprint(&view, &d, pending),
                        built_then_hashed(&view, &d, pending)
                    );
                }
            }
        }
    }
}
