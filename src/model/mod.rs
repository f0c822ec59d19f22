//! Shared vocabulary: run statuses, agent health, operator intents.

pub mod asks;
pub mod fastmap;
pub mod panes;
pub mod proposal;
pub mod rows;

pub use fastmap::FastMap;
pub use panes::{Observation, SessionState};
pub use proposal::Proposal;
pub use rows::OpState;

/// The words of a unit enum, written once: `as_str`, `Display`, `Serialize`, `ALL`, `NAMES` and
/// `FromStr`, whose error is "unknown WHAT \"x\"" plus `hint`. A policy `choice` reads
/// its value trimmed and in any case, and its error reads as a predicate ("must be
/// off|assist|auto") so the caller prefixes the key.
macro_rules! words {
    (@names $ty:ident, { $($v:ident => $s:literal),+ }) => {
        impl $ty {
            /// Every variant, in declaration order.
            #[allow(dead_code)]
            pub const ALL: [$ty; [$($s),+].len()] = [$($ty::$v),+];
            /// Their words, in the same order.
            #[allow(dead_code)]
            pub const NAMES: [&'static str; [$($s),+].len()] = [$($s),+];

            pub fn as_str(self) -> &'static str {
                match self {
                    $($ty::$v => $s,)+
                }
            }
        }

        impl std::fmt::Display for $ty {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(self.as_str())
            }
        }

        impl serde::Serialize for $ty {
            fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.serialize_str(self.as_str())
            }
        }
    };
    ($ty:ident, choice, { $($v:ident => $s:literal),+ $(,)? }) => {
        $crate::model::words!(@names $ty, { $($v => $s),+ });

        impl std::str::FromStr for $ty {
            type Err = String;
            fn from_str(s: &str) -> Result<Self, String> {
                match s.trim().to_lowercase().as_str() {
                    $($s => Ok($ty::$v),)+
                    _ => Err(format!("must be {}", $ty::NAMES.join("|"))),
                }
            }
        }
    };
    ($ty:ident, $what:literal, $hint:literal, { $($v:ident => $s:literal),+ $(,)? }) => {
        $crate::model::words!(@names $ty, { $($v => $s),+ });

        impl std::str::FromStr for $ty {
            type Err = String;
            fn from_str(s: &str) -> Result<Self, String> {
                match s {
                    $($s => Ok($ty::$v),)+
                    _ => Err(format!("unknown {} {s:?}{}", $what, $hint)),
                }
            }
        }
    };
}
pub(crate) use words;

/// Run lifecycle, as in the original operator (reference §1.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RunStatus {
    Created,
    Planning,
    Running,
    AwaitingGuidance,
    Paused,
    Failed,
    Stopping,
    Stopped,
    Closing,
    Closed,
    Completed,
}

words!(RunStatus, "run status", "", {
    Created => "created",
    Planning => "planning",
    Running => "running",
    AwaitingGuidance => "awaiting_guidance",
    Paused => "paused",
    Failed => "failed",
    Stopping => "stopping",
    Stopped => "stopped",
    Closing => "closing",
    Closed => "closed",
    Completed => "completed",
});

impl RunStatus {
    /// Statuses the operator supervises.
    pub fn is_active(self) -> bool {
        matches!(
            self,
            RunStatus::Planning
                | RunStatus::Running
                | RunStatus::AwaitingGuidance
                | RunStatus::Paused
                | RunStatus::Stopping
                | RunStatus::Closing
        )
    }

    /// The transition table of the original HSM; a self-transition is always allowed.
    pub fn can_transition(self, to: RunStatus) -> bool {
        use RunStatus::*;
        if self == to {
            return true;
        }
        match self {
            Created => matches!(to, Planning),
            Planning => matches!(to, Running | Paused | Failed | Stopping),
            Running => matches!(
                to,
                AwaitingGuidance | Paused | Failed | Completed | Stopping
            ),
            AwaitingGuidance => matches!(to, Running | Failed | Stopping),
            Paused => matches!(to, Running | Stopping),
            Failed => matches!(to, Running | Stopping),
            Stopping => matches!(to, Stopped),
            Stopped => matches!(to, Running),
            Completed => matches!(to, Closing | Running),
            Closing => matches!(to, Closed | Failed),
            Closed => false,
        }
    }
}

/// Health of one agent as judged from one observation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Health {
    Healthy,
    Idle,
    Stalled,
    /// Session absent, or the pane died with a non-zero status or a signal.
    Dead,
    /// The pane died with status 0: the agent finished.
    Exited,
    /// tmux could not be asked; never treated as dead.
    Unknown,
}

words!(Health, "health", "", {
    Healthy => "healthy",
    Idle => "idle",
    Stalled => "stalled",
    Dead => "dead",
    Exited => "exited",
    Unknown => "unknown",
});

impl Health {
    pub fn is_unhealthy(self) -> bool {
        matches!(self, Health::Dead | Health::Stalled)
    }
}

/// What an agent reported about itself through `metawsm-tick signal`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum AgentSignal {
    Working,
    Waiting,
    Done,
}

words!(AgentSignal, "signal", " (expected working|waiting|done)", {
    Working => "working",
    Waiting => "waiting",
    Done => "done",
});

/// The operator's allowlisted intents.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Intent {
    Noop,
    EscalateGuidance,
    EscalateBlocked,
    AutoRestart,
    AutoStopStale,
}

words!(Intent, "intent", "", {
    Noop => "noop",
    EscalateGuidance => "escalate_guidance",
    EscalateBlocked => "escalate_blocked",
    AutoRestart => "auto_restart",
    AutoStopStale => "auto_stop_stale",
});

impl Intent {
    /// The intent an alert key stored by `decide::take_alert` ("<intent>:<reason>") is
    /// about.
    pub fn of_alert(key: &str) -> Option<Intent> {
        key.split_once(':').map_or(key, |(i, _)| i).parse().ok()
    }

    /// Intents that change tmux (the others only alert).
    pub fn is_action(self) -> bool {
        matches!(self, Intent::AutoRestart | Intent::AutoStopStale)
    }

    pub fn is_escalation(self) -> bool {
        matches!(self, Intent::EscalateGuidance | Intent::EscalateBlocked)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn run_transitions_follow_the_table() {
        use RunStatus::*;
        assert!(Running.can_transition(Stopping));
        assert!(Stopping.can_transition(Stopped));
        assert!(Stopped.can_transition(Running));
        assert!(!Stopped.can_transition(Completed));
        assert!(!Closed.can_transition(Running));
        assert!(Closed.can_transition(Closed));
        assert!(!Created.can_transition(Running));
    }

    #[test]
    fn names_round_trip() {
        for s in RunStatus::ALL {
            assert_eq!(s.as_str().parse::<RunStatus>(), Ok(s));
        }
        for i in Intent::ALL {
            assert_eq!(i.as_str().parse::<Intent>(), Ok(i));
        }
        for h in Health::ALL {
            assert_eq!(h.to_string().parse::<Health>(), Ok(h));
        }
        for a in AgentSignal::ALL {
            assert_eq!(a.as_str().parse::<AgentSignal>(), Ok(a));
        }
        assert!("AUTO_RESTART".parse::<Intent>().is_err());
        assert_eq!(
            "bogus".parse::<AgentSignal>(),
            Err("unknown signal \"bogus\" (expected working|waiting|done)".to_string())
        );
    }
}
