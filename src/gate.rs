//! The deterministic gate between the rule decision and an LLM proposal. Pure.

use crate::decide::{Decision, Reason};
use crate::model::rows::CallState;
use crate::model::Proposal;
use crate::model::{Intent, RunStatus};
use crate::policy::{LlmMode, LlmPolicy};

/// Who decided: the rules, or an LLM proposal the gate adopted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DecisionSource {
    Rule,
    Llm,
}

crate::model::words!(DecisionSource, "decision source", "", {
    Rule => "rule",
    Llm => "llm",
});

#[derive(Debug, Clone, PartialEq)]
pub struct Gated {
    pub intent: Intent,
    pub reason: String,
    pub execute: bool,
    pub source: DecisionSource,
    /// What the LLM said and what the gate did with it, for the tick line and the log.
    pub llm_note: Option<String>,
    /// An action waits for the LLM's answer on it (auto mode).
    pub held: bool,
}

/// Whether the LLM is consulted about a run at all (the tick asks only about these).
pub fn askable(status: RunStatus, rule_reason: &Reason) -> bool {
    matches!(status, RunStatus::Running | RunStatus::AwaitingGuidance)
        && !rule_reason.is_transient()
}

/// How long past its timeout a worker may take (writing its answer) before a tick calls it
/// lost: the worker's own watchdog fires at the same moment.
pub const WORKER_GRACE_SECONDS: i64 = 15;

/// When an in-flight call started at `started_at` is overdue.
pub fn call_deadline(started_at: i64, llm: &LlmPolicy) -> i64 {
    started_at + llm.timeout_seconds + WORKER_GRACE_SECONDS
}

/// The run's latest LLM call as the tick read it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct CallView<'a> {
    pub fingerprint: &'a str,
    pub state: CallState,
    pub started_at: i64,
    /// Its worker process still runs (only meaningful while in flight).
    pub worker_alive: bool,
}

/// True when an answer about exactly this decision (`fingerprint`) can still arrive: its
/// call is in flight with a live worker inside the deadline, or this tick is about to start
/// it (nothing in flight and `min_interval_seconds` passed). An error is an answer, and a
/// call about an earlier decision or a rate limit never counts: waiting is always bounded
/// by one call's timeout. Mirrors the start conditions in `tick::ask`.
pub fn llm_pending(
    call: Option<CallView<'_>>,
    fingerprint: &str,
    now: i64,
    llm: &LlmPolicy,
) -> bool {
    let Some(c) = call else {
        return true;
    };
    if c.state == CallState::InFlight {
        return c.fingerprint == fingerprint
            && c.worker_alive
            && now < call_deadline(c.started_at, llm);
    }
    // An action decision is asked at once (exempt from min_interval, see ask_llm).
    let _ = llm;
    c.fingerprint != fingerprint
}

/// What an LLM in `auto` mode may put in place of the rule's intent: only more human
/// attention, as in the original operator. It can never start an action the rule did not
/// choose, and never turn anything into silence (`noop`). Pure; the table is in
/// docs/from-metawsm.md.
///
/// | rule \ LLM          | noop | escalate_guidance | escalate_blocked | auto_restart | auto_stop_stale |
/// |---------------------|------|-------------------|------------------|--------------|-----------------|
/// | noop                | =    | yes (question)    | yes              | no           | no              |
/// | escalate_guidance   | no   | =                 | yes              | no           | no              |
/// | escalate_blocked    | no   | no                | =                | no           | no              |
/// | auto_restart        | no   | no                | yes              | =            | no              |
/// | auto_stop_stale     | no   | no                | yes              | no           | =               |
pub fn llm_may_choose(rule: Intent, llm: Intent) -> bool {
    match (rule, llm) {
        (r, l) if r == l => true,
        (_, Intent::EscalateBlocked) => true,
        (Intent::Noop, Intent::EscalateGuidance) => true,
        _ => false,
    }
}

/// The rule is the authority. `assist` never executes; `auto` lets the LLM pick another
/// intent only from `rule.permitted`, only for the run it was asked about. In `auto`, a
/// rule action is held (not executed this tick) while `pending` says the LLM's answer on
/// this very decision can still come, so it can choose e.g. escalate_blocked instead; an
/// error, a timeout or a rate limit lets the rule act.
pub fn gate(
    rule: &Decision,
    run_id: &str,
    mode: LlmMode,
    proposal: Option<&Proposal>,
    pending: bool,
    min_confidence: f64,
) -> Gated {
    let mut out = Gated {
        intent: rule.intent,
        reason: rule.reason.to_string(),
        execute: rule.execute,
        source: DecisionSource::Rule,
        llm_note: None,
        held: false,
    };
    if mode == LlmMode::Off {
        return out;
    }
    if mode == LlmMode::Assist {
        out.execute = false;
    }
    let Some(p) = proposal else {
        if mode == LlmMode::Auto && out.execute && pending {
            out.execute = false;
            out.held = true;
            out.llm_note = Some("held: waiting for the LLM on this decision".into());
        }
        return out;
    };
    let said = format!("llm_suggested={} reason={}", p.intent, p.reason);
    if p.target_run != run_id {
        out.llm_note = Some(format!("{said}; rejected: proposal is for another run"));
        return out;
    }
    if p.confidence < min_confidence {
        out.llm_note = Some(format!(
            "{said}; ignored: confidence {:.2} below {:.2}",
            p.confidence, min_confidence
        ));
        return out;
    }
    match mode {
        LlmMode::Assist | LlmMode::Off => {
            out.llm_note = Some(said);
        }
        LlmMode::Auto => {
            if p.intent == rule.intent {
                out.llm_note = Some(format!("{said}; agrees with rule"));
            } else if rule.permitted.contains(&p.intent) && llm_may_choose(rule.intent, p.intent) {
                out.intent = p.intent;
                out.reason = format!("{} (rule: {} {})", p.reason, rule.intent, rule.reason);
                // Only an action the rule itself chose can execute; permitted sets never
                // contain an action the rule did not pick.
                out.execute = p.intent.is_action() && p.intent == rule.intent;
                out.source = DecisionSource::Llm;
                out.llm_note = Some(format!("{said}; adopted"));
            } else {
                out.llm_note = Some(format!("{said}; rejected by policy gate"));
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::OpState;

    fn rule(intent: Intent, permitted: Vec<Intent>) -> Decision {
        Decision {
            intent,
            reason: Reason::Nothing,
            permitted,
            execute: intent.is_action(),
            targets: vec![],
            complete: false,
            state: OpState::default(),
            notes: vec![],
        }
    }

    fn prop(intent: Intent, run: &str, confidence: f64) -> Proposal {
        Proposal {
            intent,
            target_run: run.into(),
            reason: "llm says".into(),
            confidence,
            needs_human: false,
        }
    }

    const ALL_MODES: [LlmMode; 3] = [LlmMode::Off, LlmMode::Assist, LlmMode::Auto];

    #[test]
    fn off_is_the_rule() {
        let r = rule(
            Intent::AutoRestart,
            vec![Intent::AutoRestart, Intent::EscalateBlocked],
        );
        let g = gate(
            &r,
            "r1",
            LlmMode::Off,
            Some(&prop(Intent::EscalateBlocked, "r1", 1.0)),
            false,
            0.5,
        );
        assert_eq!(
            (g.intent, g.execute, g.source),
            (Intent::AutoRestart, true, DecisionSource::Rule)
        );
        assert_eq!(g.llm_note, None);
    }

    #[test]
    fn assist_never_executes() {
        for intent in [Intent::AutoRestart, Intent::AutoStopStale] {
            let r = rule(intent, vec![intent, Intent::Noop]);
            for p in [
                None,
                Some(prop(intent, "r1", 1.0)),
                Some(prop(Intent::Noop, "r1", 1.0)),
            ] {
                let g = gate(&r, "r1", LlmMode::Assist, p.as_ref(), false, 0.5);
                assert!(!g.execute, "{intent} {p:?}");
                assert_eq!(g.intent, intent);
            }
        }
        let g = gate(
            &rule(Intent::Noop, vec![Intent::Noop]),
            "r1",
            LlmMode::Assist,
            Some(&prop(Intent::EscalateBlocked, "r1", 0.9)),
            false,
            0.5,
        );
        assert_eq!(g.intent, Intent::Noop);
        assert_eq!(
            g.llm_note.as_deref(),
            Some("llm_suggested=escalate_blocked reason=llm says")
        );
    }

    #[test]
    fn auto_never_exceeds_permitted() {
        // Every rule intent × every proposed intent: the result is the rule's intent or a
        // permitted one, and executes only if the rule chose that action.
        for ri in Intent::ALL {
            let permitted = match ri {
                Intent::AutoRestart => vec![Intent::AutoRestart, Intent::EscalateBlocked],
                Intent::Noop => vec![Intent::Noop, Intent::EscalateBlocked],
                other => vec![other],
            };
            let r = rule(ri, permitted.clone());
            for pi in Intent::ALL {
                let g = gate(
                    &r,
                    "r1",
                    LlmMode::Auto,
                    Some(&prop(pi, "r1", 0.9)),
                    false,
                    0.5,
                );
                assert!(g.intent == ri || permitted.contains(&g.intent), "{ri} {pi}");
                if g.execute {
                    assert!(ri.is_action() && g.intent == ri, "{ri} {pi}");
                }
            }
        }
        let r = rule(Intent::Noop, vec![Intent::Noop, Intent::EscalateBlocked]);
        let g = gate(
            &r,
            "r1",
            LlmMode::Auto,
            Some(&prop(Intent::AutoRestart, "r1", 1.0)),
            false,
            0.5,
        );
        assert_eq!(
            (g.intent, g.execute, g.source),
            (Intent::Noop, false, DecisionSource::Rule)
        );
        assert!(g
            .llm_note
            .unwrap_or_default()
            .contains("rejected by policy gate"));
        let g = gate(
            &r,
            "r1",
            LlmMode::Auto,
            Some(&prop(Intent::EscalateBlocked, "r1", 1.0)),
            false,
            0.5,
        );
        assert_eq!(
            (g.intent, g.execute, g.source),
            (Intent::EscalateBlocked, false, DecisionSource::Llm)
        );
    }

    #[test]
    fn other_runs_and_low_confidence_are_ignored_in_every_mode() {
        let r = rule(Intent::Noop, vec![Intent::Noop, Intent::EscalateBlocked]);
        for mode in ALL_MODES {
            for p in [
                prop(Intent::EscalateBlocked, "r2", 1.0),
                prop(Intent::EscalateBlocked, "r1", 0.2),
            ] {
                let g = gate(&r, "r1", mode, Some(&p), false, 0.5);
                assert_eq!(
                    (g.intent, g.source),
                    (Intent::Noop, DecisionSource::Rule),
                    "{mode:?}"
                );
            }
        }
    }

    #[test]
    fn attention_table() {
        use Intent::*;
        // (rule, llm, may choose): only more attention, never silence, never an action.
        let table = [
            (Noop, Noop, true),
            (Noop, EscalateGuidance, true),
            (Noop, EscalateBlocked, true),
            (Noop, AutoRestart, false),
            (Noop, AutoStopStale, false),
            (EscalateGuidance, Noop, false),
            (EscalateGuidance, EscalateGuidance, true),
            (EscalateGuidance, EscalateBlocked, true),
            (EscalateGuidance, AutoRestart, false),
            (EscalateGuidance, AutoStopStale, false),
            (EscalateBlocked, Noop, false),
            (EscalateBlocked, EscalateGuidance, false),
            (EscalateBlocked, EscalateBlocked, true),
            (EscalateBlocked, AutoRestart, false),
            (EscalateBlocked, AutoStopStale, false),
            (AutoRestart, Noop, false),
            (AutoRestart, EscalateGuidance, false),
            (AutoRestart, EscalateBlocked, true),
            (AutoRestart, AutoRestart, true),
            (AutoRestart, AutoStopStale, false),
            (AutoStopStale, Noop, false),
            (AutoStopStale, EscalateGuidance, false),
            (AutoStopStale, EscalateBlocked, true),
            (AutoStopStale, AutoRestart, false),
            (AutoStopStale, AutoStopStale, true),
        ];
        assert_eq!(table.len(), Intent::ALL.len() * Intent::ALL.len());
        for (r, l, want) in table {
            assert_eq!(llm_may_choose(r, l), want, "{r} -> {l}");
        }
    }

    #[test]
    fn auto_noop_never_silences_an_action() {
        // Even a permitted set that (wrongly) listed noop cannot let the LLM veto.
        for action in [Intent::AutoRestart, Intent::AutoStopStale] {
            let r = rule(action, vec![action, Intent::EscalateBlocked, Intent::Noop]);
            let g = gate(
                &r,
                "r1",
                LlmMode::Auto,
                Some(&prop(Intent::Noop, "r1", 1.0)),
                false,
                0.5,
            );
            assert_eq!(
                (g.intent, g.execute, g.source),
                (action, true, DecisionSource::Rule)
            );
            assert!(g
                .llm_note
                .unwrap_or_default()
                .ends_with("rejected by policy gate"));
        }
        let r = rule(
            Intent::EscalateGuidance,
            vec![
                Intent::EscalateGuidance,
                Intent::EscalateBlocked,
                Intent::Noop,
            ],
        );
        let g = gate(
            &r,
            "r1",
            LlmMode::Auto,
            Some(&prop(Intent::Noop, "r1", 1.0)),
            false,
            0.5,
        );
        assert_eq!(g.intent, Intent::EscalateGuidance);
    }

    #[test]
    fn auto_can_escalate_a_restart_but_never_start_one() {
        let r = rule(
            Intent::AutoRestart,
            vec![Intent::AutoRestart, Intent::EscalateBlocked],
        );
        let g = gate(
            &r,
            "r1",
            LlmMode::Auto,
            Some(&prop(Intent::EscalateBlocked, "r1", 0.9)),
            false,
            0.5,
        );
        assert_eq!(
            (g.intent, g.execute, g.source),
            (Intent::EscalateBlocked, false, DecisionSource::Llm)
        );
        let g = gate(&r, "r1", LlmMode::Auto, None, false, 0.5);
        assert_eq!((g.intent, g.execute), (Intent::AutoRestart, true));
    }

    #[test]
    fn auto_holds_an_action_while_the_llm_may_still_answer() {
        let r = rule(
            Intent::AutoRestart,
            vec![Intent::AutoRestart, Intent::EscalateBlocked],
        );
        let g = gate(&r, "r1", LlmMode::Auto, None, true, 0.5);
        assert_eq!(
            (g.intent, g.execute, g.source),
            (Intent::AutoRestart, false, DecisionSource::Rule)
        );
        assert!(g.llm_note.unwrap_or_default().starts_with("held"));
        // Nothing pending: the rule acts.
        let g = gate(&r, "r1", LlmMode::Auto, None, false, 0.5);
        assert!(g.execute);
        // An answer that does not count (low confidence, other run) lets the rule act.
        for p in [
            prop(Intent::EscalateBlocked, "r1", 0.1),
            prop(Intent::EscalateBlocked, "r2", 1.0),
        ] {
            let g = gate(&r, "r1", LlmMode::Auto, Some(&p), true, 0.5);
            assert_eq!((g.intent, g.execute), (Intent::AutoRestart, true), "{p:?}");
        }
        // Holding is only for actions, and only in auto.
        let noop = rule(Intent::Noop, vec![Intent::Noop, Intent::EscalateBlocked]);
        let g = gate(&noop, "r1", LlmMode::Auto, None, true, 0.5);
        assert_eq!((g.execute, g.llm_note), (false, None));
        let g = gate(&r, "r1", LlmMode::Off, None, true, 0.5);
        assert!(g.execute);
        let g = gate(&r, "r1", LlmMode::Assist, None, true, 0.5);
        assert_eq!((g.execute, g.llm_note), (false, None));
    }

    #[test]
    fn pending_is_bounded_by_one_call() {
        let llm = LlmPolicy {
            timeout_seconds: 30,
            min_interval_seconds: 60,
            ..LlmPolicy::default()
        };
        let call = |fp, state, started_at, worker_alive| {
            Some(CallView {
                fingerprint: fp,
                state,
                started_at,
                worker_alive,
            })
        };
        let now = 1_000;
        // Never asked: this tick starts the call.
        assert!(llm_pending(None, "f", now, &llm));
        // In flight for this decision, live and within the deadline.
        assert!(llm_pending(
            call("f", CallState::InFlight, now - 5, true),
            "f",
            now,
            &llm
        ));
        assert!(!llm_pending(
            call("f", CallState::InFlight, now - 5, false),
            "f",
            now,
            &llm
        ));
        assert!(!llm_pending(
            call("f", CallState::InFlight, now - 45, true),
            "f",
            now,
            &llm
        ));
        // In flight for an earlier decision: never wait on it.
        assert!(!llm_pending(
            call("g", CallState::InFlight, now - 1, true),
            "f",
            now,
            &llm
        ));
        // Answered (or failed) for this decision: nothing more to wait for.
        assert!(!llm_pending(
            call("f", CallState::Done, now - 1, false),
            "f",
            now,
            &llm
        ));
        assert!(!llm_pending(
            call("f", CallState::Error, now - 100, false),
            "f",
            now,
            &llm
        ));
        // Another decision answered: a decision to act is asked at once (no min_interval).
        assert!(llm_pending(
            call("g", CallState::Done, now - 1, false),
            "f",
            now,
            &llm
        ));
        assert!(llm_pending(
            call("g", CallState::Error, now - 60, false),
            "f",
            now,
            &llm
        ));
    }

    #[test]
    fn askable_runs() {
        let x = Reason::Nothing;
        assert!(askable(RunStatus::Running, &x));
        assert!(askable(RunStatus::AwaitingGuidance, &x));
        assert!(!askable(
            RunStatus::Running,
            &Reason::TmuxUnreachable("boom".into())
        ));
        assert!(!askable(
            RunStatus::Running,
            &Reason::AwaitingCorroboration { streak: 1, need: 2 }
        ));
        assert!(!askable(RunStatus::Running, &Reason::Cooldown { until: 9 }));
        // A reason whose words merely look transient is not (an agent's question).
        assert!(askable(
            RunStatus::AwaitingGuidance,
            &Reason::Asks {
                agent: String::new(),
                question: "awaiting corroboration?".into()
            }
        ));
        for s in [RunStatus::Paused, RunStatus::Planning, RunStatus::Stopped] {
            assert!(!askable(s, &x));
        }
    }
}
