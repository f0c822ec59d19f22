//! Stopping and restarting agents: the part the tick, `run stop`, `run restart` and
//! `run revive` share. Each caller keeps its own preconditions, run transitions and event
//! wording; the evidence capture, the tmux commands, the launch choice (resume or fresh)
//! and the agent rows written afterwards are built here, once.

use crate::agents::Launch;
use crate::cli::Ctx;
use crate::policy::Policy;
use crate::store::{AgentRow, Tx};
use crate::tmux::{Cmd, Observation, SessionState, TmuxClient};

/// Whether the agent's panes (an adopted agent's own pane only) are on the server.
pub fn present(obs: &Observation, a: &AgentRow) -> bool {
    matches!(obs.agent(a), SessionState::Present(_))
}

/// The last output of the agents about to be killed, in one spawn: it goes with their
/// panes, so it is kept first. Record it with `crate::evidence::record`.
pub fn keep_evidence(
    tmux: &TmuxClient,
    obs: &Observation,
    agents: &[&AgentRow],
) -> Vec<(String, String)> {
    let present: Vec<&AgentRow> = agents.iter().copied().filter(|a| present(obs, a)).collect();
    crate::evidence::capture(tmux, &present)
}

/// The commands that kill these agents: an adopted agent's pane only, never the user's
/// session around it; nothing for an agent already gone.
pub fn stop_cmds(obs: &Observation, agents: &[&AgentRow]) -> Vec<Cmd> {
    agents
        .iter()
        .flat_map(|a| crate::adopt::stop_cmds(a, present(obs, a)))
        .collect()
}

/// After the stop commands ran: the agents are stopped.
pub fn mark_stopped(
    tx: &Tx,
    run_id: &str,
    agents: &[&AgentRow],
    now: i64,
) -> crate::store::Result<()> {
    for a in agents {
        tx.mark_agent_stopped(run_id, &a.name, now)?;
    }
    Ok(())
}

/// Where the restarted agents go.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Place {
    /// Where they were: an adopted pane still present is respawned in place.
    AsBefore,
    /// The old panes are gone with their server: every agent starts in a session of our own.
    NewServer,
}

/// One agent's restart: how it starts, and whether in its own (adopted) pane.
pub struct Started {
    pub launch: Launch,
    pub in_place: bool,
}

/// The restart of a set of agents, built before anything runs.
pub struct Restart {
    pub cmds: Vec<Cmd>,
    pub started: Vec<Started>,
    /// Agents that cannot be restarted (e.g. no restart command), with why.
    pub refused: Vec<String>,
}

/// Builds the restart of `agents`: per agent, resume the conversation when it is worth
/// it, else start over (`crate::agents::restart_launch`; `fresh` forces starting over).
pub fn restart(
    ctx: &Ctx,
    policy: &Policy,
    obs: &Observation,
    agents: &[&AgentRow],
    now: i64,
    fresh: bool,
    place: Place,
) -> Restart {
    let mut r = Restart {
        cmds: Vec::new(),
        started: Vec::new(),
        refused: Vec::new(),
    };
    for a in agents {
        let mut launch = crate::agents::restart_launch(a, obs, policy, now, fresh);
        let present = match place {
            Place::AsBefore => present(obs, a),
            Place::NewServer => {
                launch.row.adopted = false;
                false
            }
        };
        match crate::adopt::restart_cmds(ctx, policy, &launch.row, present) {
            Ok(c) => r.cmds.extend(c),
            Err(e) => r.refused.push(e),
        }
        r.started.push(Started {
            in_place: a.adopted && present,
            launch,
        });
    }
    r
}

impl Restart {
    /// "NAME: resume (why); NAME: fresh (why)", for events, notices and the changelog.
    pub fn kinds(&self) -> String {
        self.started
            .iter()
            .map(|s| {
                let l = &s.launch;
                format!("{}: {} ({})", l.row.name, l.kind.as_str(), l.why)
            })
            .collect::<Vec<_>>()
            .join("; ")
    }

    /// After the restart commands ran: the agents started now, with what they ran.
    pub fn mark_started(&self, tx: &Tx, run_id: &str, now: i64) -> crate::store::Result<()> {
        for s in &self.started {
            let l = &s.launch;
            tx.mark_agent_started(run_id, &l.row.name, now, s.in_place)?;
            tx.set_agent_launch(run_id, &l.row.name, &l.start_argv, &l.row.resume)?;
        }
        Ok(())
    }
}
