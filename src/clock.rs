//! Clock steps and suspends, without I/O (part of the decision core): how the time since
//! the last observation is read, and what a tick may do after a jump.
//!
//! A gap between two observations much longer than the tick interval (a suspend, a
//! forward step, nobody ticking) or a backward step means the stored times no longer
//! measure what they meant: the tick is a fresh start. It observes and records, stored
//! times in the future are clamped and activity is counted from now, and it acts on
//! nothing; the next normally spaced observation decides.

use crate::decide::Decision;
use crate::model::Intent;
use crate::reason::Reason;

/// A backward step smaller than this is jitter (NTP slews, second rounding), not a step.
pub const BACK_TOLERANCE: i64 = 5;

#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Step {
    /// Normally spaced, or the first observation ever.
    Steady,
    /// Seconds since the last observation, past `gap_limit`.
    Gap(i64),
    /// Seconds the clock went back.
    Back(i64),
}

/// "Much longer than the tick interval": five intervals, and never under two minutes
/// (a loaded machine or a status line that ticks late is not a suspend).
pub fn gap_limit(tick_interval: i64) -> i64 {
    tick_interval
        .saturating_mul(5)
        .max(tick_interval.saturating_add(120))
}

pub fn step(last_observed: Option<i64>, now: i64, tick_interval: i64) -> Step {
    let Some(last) = last_observed else {
        return Step::Steady;
    };
    let d = now.saturating_sub(last);
    if d < -BACK_TOLERANCE {
        Step::Back(-d)
    } else if d > gap_limit(tick_interval) {
        Step::Gap(d)
    } else {
        Step::Steady
    }
}

/// What the tick says (one event) when it starts afresh; None when steady.
pub fn note(step: Step, tick_interval: i64) -> Option<String> {
    match step {
        Step::Steady => None,
        Step::Gap(d) => Some(format!(
            "no observation for {d}s (tick interval {tick_interval}s): fresh start, \
             activity counted from now, acting on nothing until the next observation"
        )),
        Step::Back(d) => Some(format!(
            "clock stepped back {d}s: stored times in the future clamped to now, \
             acting on nothing until the next observation"
        )),
    }
}

/// A fresh start acts on nothing: a restart or stop decided on times that no longer mean
/// anything waits for the next observation. Escalations (a question, an exit) stand.
pub fn hold(mut d: Decision, why: Option<&str>) -> Decision {
    let Some(why) = why else { return d };
    if !d.intent.is_action() {
        return d;
    }
    d.reason = Reason::ClockHeld {
        why: why.to_owned(),
        held: d.intent,
        rule: Box::new(d.reason),
    };
    d.intent = Intent::Noop;
    d.execute = false;
    d.targets.clear();
    d
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::OpState;

    #[test]
    fn steps_are_classified() {
        let cases: &[(&str, Option<i64>, i64, i64, Step)] = &[
            ("first ever", None, 1000, 15, Step::Steady),
            ("normal", Some(985), 1000, 15, Step::Steady),
            (
                "late but not a gap",
                Some(1000 - 135),
                1000,
                15,
                Step::Steady,
            ),
            ("suspend", Some(1000 - 7200), 1000, 15, Step::Gap(7200)),
            (
                "five intervals of a slow tick",
                Some(0),
                3001,
                600,
                Step::Gap(3001),
            ),
            ("jitter back", Some(1003), 1000, 15, Step::Steady),
            ("step back", Some(4600), 1000, 15, Step::Back(3600)),
        ];
        for (name, last, now, interval, want) in cases {
            assert_eq!(step(*last, *now, *interval), *want, "{name}");
        }
        assert_eq!(gap_limit(15), 135);
        assert_eq!(gap_limit(60), 300);
        assert!(note(Step::Steady, 15).is_none());
        assert!(note(Step::Back(9), 15).is_some_and(|n| n.contains("back 9s")));
    }

    fn decision(intent: Intent) -> Decision {
        Decision {
            intent,
            reason: Reason::Nothing,
            permitted: vec![intent],
            execute: intent.is_action(),
            targets: vec!["a".into()],
            complete: false,
            state: OpState::default(),
            notes: vec![],
        }
    }

    #[test]
    fn a_fresh_start_holds_actions_only() {
        for (intent, held) in [
            (Intent::AutoStopStale, true),
            (Intent::AutoRestart, true),
            (Intent::EscalateGuidance, false),
            (Intent::EscalateBlocked, false),
            (Intent::Noop, false),
        ] {
            let d = hold(decision(intent), Some("fresh"));
            assert_eq!(
                d.intent == Intent::Noop && intent != Intent::Noop,
                held,
                "{intent}"
            );
            assert!(!d.execute, "{intent}");
            let same = hold(decision(intent), None);
            assert_eq!(same, decision(intent));
        }
    }
}
