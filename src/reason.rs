//! Why the rules decided what they did: one variant per rule outcome, so code matches the
//! variant and only `Display` knows the words (the tick line, the log, alerts).

use crate::model::RunStatus;
use crate::timeutil::rfc3339;
use std::fmt;

#[derive(Debug, Clone, PartialEq)]
pub enum Reason {
    /// tmux could not be asked this tick: nothing is known.
    TmuxUnreachable(String),
    /// The run is not in a state the rules act on (stopped, completed, …).
    RunInactive(RunStatus),
    /// A guidance question is pending (`agent` may be empty).
    Asks { agent: String, question: String },
    /// No sign of life for `age` seconds, and no live pane was active within `window`.
    StaleVerified {
        age: i64,
        threshold: i64,
        window: i64,
    },
    /// Stale by the clock, but the agent is alive and said it is done.
    StaleButDone {
        age: i64,
        threshold: i64,
        agent: String,
    },
    /// Stale by the clock, but a live interactive agent is quiet by choice.
    StaleButInteractive {
        age: i64,
        threshold: i64,
        agent: String,
    },
    /// Stale by the clock, but the agent's pane was active `ago` seconds ago.
    StaleButActive {
        age: i64,
        threshold: i64,
        agent: String,
        ago: i64,
        window: i64,
    },
    /// Unhealthy agents, but the run is not running (e.g. awaiting guidance).
    UnhealthyNotRunning { count: usize, status: RunStatus },
    /// Unhealthy, not yet seen in enough intervals to act.
    AwaitingCorroboration { streak: i64, need: i64 },
    /// Only quiet interactive agents are unhealthy, and nothing says they hang.
    QuietInteractive { detail: String },
    /// Unhealthy, and nothing to restart it with (adopted without a start command).
    NoRestartCommand { agent: String, detail: String },
    /// Unhealthy and out of restarts: a human must look.
    BudgetExhausted {
        attempts: i64,
        budget: i64,
        detail: String,
    },
    /// Unhealthy, but the last restart's cooldown runs until `until`.
    Cooldown { until: i64 },
    /// Unhealthy and corroborated: restart number `attempt`.
    RestartCorroborated {
        attempt: i64,
        budget: i64,
        detail: String,
    },
    /// Every agent exited and signalled completion.
    Completed,
    /// An agent exited without a completion signal.
    ExitedWithoutCompletion { agent: String },
    /// Nothing to do.
    Nothing,
    /// A fresh start after a clock step or a long gap (see clock.rs): the rule's action
    /// waits for a normally spaced observation.
    ClockHeld {
        why: String,
        held: crate::model::Intent,
        rule: Box<Reason>,
    },
}

fn stale(f: &mut fmt::Formatter<'_>, age: i64, threshold: i64) -> fmt::Result {
    write!(
        f,
        "run appears stale (no sign of life for {age}s, threshold={threshold}s)"
    )
}

impl fmt::Display for Reason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Reason::TmuxUnreachable(why) => write!(f, "tmux unreachable: {why}"),
            Reason::RunInactive(status) => write!(f, "run is {status}"),
            Reason::Asks { agent, question } if agent.is_empty() => {
                write!(f, "agent asks: {question}")
            }
            Reason::Asks { agent, question } => write!(f, "agent {agent} asks: {question}"),
            Reason::StaleVerified {
                age,
                threshold,
                window,
            } => {
                stale(f, *age, *threshold)?;
                write!(f, "; verified: no live pane active within {window}s")
            }
            Reason::StaleButDone {
                age,
                threshold,
                agent,
            } => {
                stale(f, *age, *threshold)?;
                write!(f, "; rejected: agent {agent} is alive and reported done")
            }
            Reason::StaleButInteractive {
                age,
                threshold,
                agent,
            } => {
                stale(f, *age, *threshold)?;
                write!(f, "; rejected: agent {agent} is a live interactive agent")
            }
            Reason::StaleButActive {
                age,
                threshold,
                agent,
                ago,
                window,
            } => {
                stale(f, *age, *threshold)?;
                write!(
                    f,
                    "; rejected: agent {agent} has recent activity ({ago}s ago, window {window}s)"
                )
            }
            Reason::UnhealthyNotRunning { count, status } => {
                write!(f, "{count} unhealthy agent(s) but run is {status}")
            }
            Reason::AwaitingCorroboration { streak, need } => {
                write!(
                    f,
                    "awaiting corroboration ({streak}/{need} unhealthy intervals)"
                )
            }
            Reason::QuietInteractive { detail } => write!(
                f,
                "quiet interactive agent not restarted (screen not recognised, no hook \
                 evidence of a hang, health.restart_quiet_interactive off); {detail}"
            ),
            Reason::NoRestartCommand { agent, detail } => write!(
                f,
                "agent {agent} has no restart command (adopted without one): {detail}"
            ),
            Reason::BudgetExhausted {
                attempts,
                budget,
                detail,
            } => write!(
                f,
                "restart budget exhausted ({attempts}/{budget}); {detail}"
            ),
            Reason::Cooldown { until } => {
                write!(f, "restart cooldown active until {}", rfc3339(*until))
            }
            Reason::RestartCorroborated {
                attempt,
                budget,
                detail,
            } => write!(
                f,
                "unhealthy state corroborated, restart {attempt}/{budget}: {detail}"
            ),
            Reason::Completed => f.write_str("completion signal detected"),
            Reason::ExitedWithoutCompletion { agent } => {
                write!(f, "agent {agent} exited without completion signal")
            }
            Reason::Nothing => f.write_str("no deterministic action required"),
            Reason::ClockHeld { why, held, rule } => write!(f, "{why} (held {held}: {rule})"),
        }
    }
}

impl Reason {
    /// Transient states not worth an LLM call: it would hold the run's one slot exactly
    /// when the action it could judge comes due.
    pub fn is_transient(&self) -> bool {
        matches!(
            self,
            Reason::TmuxUnreachable(_)
                | Reason::AwaitingCorroboration { .. }
                | Reason::Cooldown { .. }
                | Reason::ClockHeld { .. }
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn words_are_the_ones_the_log_has_always_had() {
        let cases = [
            (
                Reason::Asks {
                    agent: String::new(),
                    question: "q?".into(),
                },
                "agent asks: q?",
            ),
            (
                Reason::StaleButActive {
                    age: 7200,
                    threshold: 3600,
                    agent: "a".into(),
                    ago: 5,
                    window: 60,
                },
                "run appears stale (no sign of life for 7200s, threshold=3600s); rejected: \
                 agent a has recent activity (5s ago, window 60s)",
            ),
            (
                Reason::AwaitingCorroboration { streak: 1, need: 2 },
                "awaiting corroboration (1/2 unhealthy intervals)",
            ),
            (
                Reason::Cooldown { until: 0 },
                "restart cooldown active until 1970-01-01T00:00:00Z",
            ),
            (Reason::Nothing, "no deterministic action required"),
        ];
        for (r, want) in cases {
            assert_eq!(r.to_string(), want);
        }
    }
}
