//! What the tmux server showed, as the core sees it: panes by session (tmux.rs builds it).

use std::collections::HashMap;

#[derive(Debug, Clone, PartialEq)]
pub struct PaneRow {
    pub session: String,
    pub window_id: String,
    pub pane_id: String,
    pub pid: Option<i64>,
    pub dead: bool,
    /// When the pane died (`1:<pane_dead_time>` in the dead field: no extra column).
    pub dead_at: Option<i64>,
    pub dead_status: Option<i64>,
    pub dead_signal: Option<i64>,
    pub window_activity: Option<i64>,
    /// What the program in the pane set as its title (Codex: a spinner while working,
    /// "Action Required" at an approval dialog: docs/screen.md).
    pub title: String,
    pub current_command: String,
}

/// What one `list-panes -a` told us: panes by session, plus our user options.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Snapshot {
    pub sessions: super::FastMap<String, Vec<PaneRow>>,
    pub options: HashMap<String, String>,
    pub clients: Vec<Client>,
    /// The server's own `#{socket_path}`: which server this snapshot describes.
    pub socket: Option<String>,
    /// This server instance (`pid:start_time`): a server restarted on the same socket
    /// (a reboot) is another instance, and its predecessor's agents died with it.
    pub server: Option<String>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Client {
    pub name: String,
    pub tty: String,
}

/// The tri-state answer: reachable with the panes, or unknown with the reason.
#[derive(Debug, Clone, PartialEq)]
pub enum Observation {
    Known(Snapshot),
    Unknown(String),
}

impl Observation {
    pub fn panes(&self, session: &str) -> SessionState<'_> {
        match self {
            Observation::Unknown(_) => SessionState::Unknown,
            Observation::Known(s) => match s.sessions.get(session) {
                Some(p) if !p.is_empty() => SessionState::Present(p),
                _ => SessionState::Absent,
            },
        }
    }

    /// What the tick sees of one agent: an adopted pane is looked up by its pane id (its
    /// session holds the user's other panes), a started agent by its own session.
    pub fn agent(&self, a: &super::rows::AgentRow) -> SessionState<'_> {
        if !a.adopted {
            return self.panes(&a.session);
        }
        match (self, a.pane_id.as_deref()) {
            (Observation::Unknown(_), _) => SessionState::Unknown,
            (Observation::Known(snap), Some(id)) => snap
                .sessions
                .values()
                .flat_map(|v| v.iter().enumerate().map(move |(i, p)| (v, i, p)))
                .find(|(_, _, p)| p.pane_id == id)
                .map(|(v, i, _)| SessionState::Present(std::slice::from_ref(&v[i])))
                .unwrap_or(SessionState::Absent),
            (Observation::Known(_), None) => SessionState::Absent,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub enum SessionState<'a> {
    Present(&'a [PaneRow]),
    Absent,
    Unknown,
}
