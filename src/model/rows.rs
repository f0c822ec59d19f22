//! The rows the store reads and writes.

use super::{AgentSignal, Health, Intent, RunStatus};

#[derive(Debug, Clone, PartialEq)]
pub struct RunRow {
    pub id: String,
    pub tickets: Vec<String>,
    pub workspace: String,
    pub doc_home_repo: Option<String>,
    pub ticket_dir: Option<String>,
    /// The tmux server (its `#{socket_path}`) the run's agents live on.
    pub tmux_socket: Option<String>,
    /// The project policy file recorded for this run (absolute), if one was found.
    pub policy_path: Option<String>,
    /// Why its agents cannot be on the server any more (the server restarted since).
    pub orphaned: Option<String>,
    /// The server instance (`pid:start_time`) a tick last saw the run's agents on.
    pub tmux_server: Option<String>,
    pub status: RunStatus,
    pub message: String,
    pub created_at: i64,
    pub updated_at: i64,
    pub status_changed_at: i64,
}

#[derive(Debug, Clone, PartialEq)]
pub struct AgentRow {
    pub run_id: String,
    pub name: String,
    pub session: String,
    pub argv: Vec<String>,
    pub workdir: String,
    pub status: String,
    pub health: Health,
    pub last_activity_at: Option<i64>,
    pub last_progress_at: Option<i64>,
    pub exit_status: Option<i64>,
    pub exit_signal: Option<i64>,
    pub pane_id: Option<String>,
    pub started_at: i64,
    pub signal: Option<AgentSignal>,
    pub signal_at: Option<i64>,
    /// Registered by `run adopt`: a pane we did not start (never killed as a session).
    pub adopted: bool,
    /// The pane keeps `remain-on-exit` (exit status observable).
    pub keep_dead_pane: bool,
    /// How a restart can continue its conversation (docs/restarts.md).
    pub resume: Resume,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct OpState {
    pub restart_attempts: i64,
    pub last_restart_at: Option<i64>,
    pub cooldown_until: Option<i64>,
    pub unhealthy_streak: i64,
    pub last_observation_at: Option<i64>,
    pub healthy_since: Option<i64>,
    pub last_alert: Option<String>,
    pub last_alert_at: Option<i64>,
    /// Fingerprint of the last logged decision, so a repeated one is not logged every tick.
    pub last_decision: Option<String>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct GuidanceRow {
    pub id: i64,
    pub run_id: String,
    pub agent: String,
    pub root: String,
    pub question: String,
    pub context: String,
    pub created_at: i64,
    pub source: super::asks::QuestionSource,
}

#[derive(Debug, Clone, PartialEq)]
pub struct EventRow {
    pub id: i64,
    pub at: i64,
    pub run_id: Option<String>,
    pub agent: Option<String>,
    pub kind: String,
    pub from_state: String,
    pub to_state: String,
    pub message: String,
    pub source: String,
}

#[derive(Debug, Clone, PartialEq)]
pub struct InboxRow {
    pub id: i64,
    pub at: i64,
    pub event: String,
    pub run_id: Option<String>,
    pub args: String,
}

#[derive(Debug, Clone, PartialEq)]
pub struct StatusRow {
    pub status: RunStatus,
    pub pending_guidance: i64,
    pub dead_agents: i64,
    pub waiting_agents: i64,
    pub done_agents: i64,
    pub agents: i64,
    pub last_alert: Option<String>,
    pub tmux_socket: Option<String>,
    /// Recorded as orphaned (`runs.orphaned`); `status_cache::total` also counts the
    /// runs whose server is gone now, one probe per server.
    pub orphaned: bool,
    /// An action assist mode holds for a human's `approve`.
    pub awaiting_approval: bool,
}

/// An action the rules want that assist mode holds: pending until `approve` (which runs
/// it if the rules still want it) or `dismiss` (not proposed again in the episode).
#[derive(Debug, Clone, PartialEq)]
pub struct ApprovalRow {
    pub run_id: String,
    pub intent: Intent,
    pub targets: Vec<String>,
    pub reason: String,
    /// The situation without its measurements (intent and stable reason).
    pub situation: String,
    pub status: ApprovalStatus,
    pub created_at: i64,
}

/// An assist-mode approval waits for a human, or the human dismissed its situation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ApprovalStatus {
    Pending,
    Dismissed,
}

super::words!(ApprovalStatus, "approval status", "", {
    Pending => "pending",
    Dismissed => "dismissed",
});

/// Where an LLM call is: its worker runs, or it ended with an answer or an error.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CallState {
    InFlight,
    Done,
    Error,
}

super::words!(CallState, "call state", "", {
    InFlight => "in_flight",
    Done => "done",
    Error => "error",
});

#[derive(Debug, Clone, PartialEq)]
pub struct LlmCall {
    pub run_id: String,
    pub fingerprint: String,
    pub state: CallState,
    pub pid: Option<i64>,
    pub started_at: i64,
    pub finished_at: Option<i64>,
    pub proposal: Option<String>,
    pub error: Option<String>,
    /// The context JSON the tick prepared for the worker.
    pub request: String,
    /// The tick gave up on its worker (dead or overdue) and ended the call.
    pub reaped: bool,
    /// The LLM program could not be started at all (see `worker::CallError`).
    pub unstarted: bool,
}

/// A new event to append to the audit log.
#[derive(Debug, Clone, Default)]
pub struct NewEvent<'a> {
    pub run_id: Option<&'a str>,
    pub agent: Option<&'a str>,
    pub kind: &'a str,
    pub from_state: &'a str,
    pub to_state: &'a str,
    pub message: &'a str,
    pub source: &'a str,
}

/// Fields a tick learns about an agent from one observation.
#[derive(Debug, Clone, PartialEq)]
pub struct AgentUpdate {
    pub status: String,
    pub health: Health,
    pub last_activity_at: Option<i64>,
    pub last_progress_at: Option<i64>,
    pub exit_status: Option<i64>,
    pub exit_signal: Option<i64>,
    pub pane_id: Option<String>,
}

/// How an agent's current process was started.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum StartKind {
    #[default]
    Fresh,
    Resume,
}

super::words!(StartKind, "start kind", " (expected fresh|resume)", {
    Fresh => "fresh",
    Resume => "resume",
});

/// What an agent needs to be resumed, kept on its row.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Resume {
    /// The command that continues the agent's conversation, if it has one.
    pub argv: Option<Vec<String>>,
    /// Claude Code's fixed `--session-id`, or a Codex session id its notify reported.
    pub conversation: Option<String>,
    /// How the agent's current process was started.
    pub kind: StartKind,
    /// When the conversation a resume would continue began (its last fresh start).
    pub since: Option<i64>,
    /// The resume command was given by the user (`--resume-cmd`): never derived again.
    pub explicit: bool,
}
