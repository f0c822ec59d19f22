//! Shared vocabulary: run statuses, agent health, operator intents.

pub mod panes;
pub mod proposal;
pub mod rows;

pub use panes::{Observation, SessionState};
pub use proposal::Proposal;
pub use rows::OpState;

use std::fmt;
use std::str::FromStr;

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

impl RunStatus {
    pub const ALL: [RunStatus; 11] = [
        RunStatus::Created,
        RunStatus::Planning,
        RunStatus::Running,
        RunStatus::AwaitingGuidance,
        RunStatus::Paused,
        RunStatus::Failed,
        RunStatus::Stopping,
        RunStatus::Stopped,
        RunStatus::Closing,
        RunStatus::Closed,
        RunStatus::Completed,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            RunStatus::Created => "created",
            RunStatus::Planning => "planning",
            RunStatus::Running => "running",
            RunStatus::AwaitingGuidance => "awaiting_guidance",
            RunStatus::Paused => "paused",
            RunStatus::Failed => "failed",
            RunStatus::Stopping => "stopping",
            RunStatus::Stopped => "stopped",
            RunStatus::Closing => "closing",
            RunStatus::Closed => "closed",
            RunStatus::Completed => "completed",
        }
    }

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

impl fmt::Display for RunStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for RunStatus {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        RunStatus::ALL
            .iter()
            .copied()
            .find(|st| st.as_str() == s)
            .ok_or_else(|| format!("unknown run status {s:?}"))
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

impl Health {
    pub fn as_str(self) -> &'static str {
        match self {
            Health::Healthy => "healthy",
            Health::Idle => "idle",
            Health::Stalled => "stalled",
            Health::Dead => "dead",
            Health::Exited => "exited",
            Health::Unknown => "unknown",
        }
    }

    pub fn is_unhealthy(self) -> bool {
        matches!(self, Health::Dead | Health::Stalled)
    }
}

impl fmt::Display for Health {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Health {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        Ok(match s {
            "healthy" => Health::Healthy,
            "idle" => Health::Idle,
            "stalled" => Health::Stalled,
            "dead" => Health::Dead,
            "exited" => Health::Exited,
            "unknown" => Health::Unknown,
            _ => return Err(format!("unknown health {s:?}")),
        })
    }
}

/// What an agent reported about itself through `metawsm-tick signal`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum AgentSignal {
    Working,
    Waiting,
    Done,
}

impl AgentSignal {
    pub fn as_str(self) -> &'static str {
        match self {
            AgentSignal::Working => "working",
            AgentSignal::Waiting => "waiting",
            AgentSignal::Done => "done",
        }
    }
}

impl FromStr for AgentSignal {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        Ok(match s {
            "working" => AgentSignal::Working,
            "waiting" => AgentSignal::Waiting,
            "done" => AgentSignal::Done,
            _ => {
                return Err(format!(
                    "unknown signal {s:?} (expected working|waiting|done)"
                ))
            }
        })
    }
}

/// The operator's allowlisted intents.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Intent {
    Noop,
    EscalateGuidance,
    EscalateBlocked,
    AutoRestart,
    AutoStopStale,
}

impl Intent {
    pub const ALL: [Intent; 5] = [
        Intent::Noop,
        Intent::EscalateGuidance,
        Intent::EscalateBlocked,
        Intent::AutoRestart,
        Intent::AutoStopStale,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Intent::Noop => "noop",
            Intent::EscalateGuidance => "escalate_guidance",
            Intent::EscalateBlocked => "escalate_blocked",
            Intent::AutoRestart => "auto_restart",
            Intent::AutoStopStale => "auto_stop_stale",
        }
    }

    /// Intents that change tmux (the others only alert).
    pub fn is_action(self) -> bool {
        matches!(self, Intent::AutoRestart | Intent::AutoStopStale)
    }

    pub fn is_escalation(self) -> bool {
        matches!(self, Intent::EscalateGuidance | Intent::EscalateBlocked)
    }
}

impl fmt::Display for Intent {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Intent {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        Intent::ALL
            .iter()
            .copied()
            .find(|i| i.as_str() == s)
            .ok_or_else(|| format!("unknown intent {s:?}"))
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
        assert!("AUTO_RESTART".parse::<Intent>().is_err());
    }
}
