//! Writes of runs and their agents: registration, status transitions (compare and
//! swap), agent starts, stops, signals and launch records.

use super::super::{Result, StoreError};
use super::Tx;
use crate::model::rows::*;
use crate::model::{AgentSignal, RunStatus};
use rusqlite::{params, OptionalExtension};

impl Tx<'_> {
    /// A new run and its first event (`run_started`, `run_adopted`), naming its tickets.
    pub fn register_run(&self, run: &RunRow, kind: &str, now: i64) -> Result<()> {
        self.insert_run(run)?;
        self.add_event(
            now,
            &NewEvent {
                run_id: Some(&run.id),
                kind,
                to_state: "running",
                message: &format!("tickets {}", run.tickets.join(", ")),
                source: "cli",
                ..Default::default()
            },
        )?;
        Ok(())
    }

    pub fn insert_run(&self, run: &RunRow) -> Result<()> {
        let tickets = serde_json::to_string(&run.tickets).unwrap_or_else(|_| "[]".into());
        let n = self.tx.execute(
            "INSERT OR IGNORE INTO runs(id, tickets, workspace, doc_home_repo, ticket_dir, status, message,
                              created_at, updated_at, status_changed_at, tmux_socket, policy_path)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12)",
            params![
                run.id,
                tickets,
                run.workspace,
                run.doc_home_repo,
                run.ticket_dir,
                run.status.as_str(),
                run.message,
                run.created_at,
                run.updated_at,
                run.status_changed_at,
                run.tmux_socket,
                run.policy_path
            ],
        )?;
        if n == 0 {
            return Err(StoreError::Transition(format!(
                "run {} already exists",
                run.id
            )));
        }
        self.tx.execute(
            "INSERT OR IGNORE INTO operator_run_states(run_id, updated_at) VALUES (?1, ?2)",
            params![run.id, run.created_at],
        )?;
        Ok(())
    }

    pub fn insert_agent(&self, a: &AgentRow, now: i64) -> Result<()> {
        let argv = serde_json::to_string(&a.argv).unwrap_or_else(|_| "[]".into());
        self.tx.execute(
            "INSERT INTO agents(run_id, name, session, argv, workdir, status, health, last_activity_at,
                                last_progress_at, exit_status, exit_signal, pane_id, started_at, signal,
                                signal_at, updated_at, adopted, keep_dead_pane, resume_argv,
                                conversation_id, start_kind, conversation_since, resume_explicit)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, NULL, NULL, ?10, ?11, NULL, NULL, ?12, ?13, ?14,
                     ?15, ?16, ?17, ?18, ?19)",
            params![
                a.run_id,
                a.name,
                a.session,
                argv,
                a.workdir,
                a.status,
                a.health.as_str(),
                a.last_activity_at,
                a.last_progress_at,
                a.pane_id,
                a.started_at,
                now,
                a.adopted,
                a.keep_dead_pane,
                resume_argv(&a.resume),
                a.resume.conversation,
                a.resume.kind.as_str(),
                a.resume.since,
                a.resume.explicit
            ],
        )
        .map_err(|e| match e {
            rusqlite::Error::SqliteFailure(f, _)
                if f.code == rusqlite::ErrorCode::ConstraintViolation =>
            {
                StoreError::Transition(format!(
                    "agent {} or session {} is already registered",
                    a.name, a.session
                ))
            }
            other => other.into(),
        })?;
        Ok(())
    }

    /// Compare-and-swap a run's status: refuses illegal transitions and lost races.
    pub fn transition_run(
        &self,
        run_id: &str,
        from: RunStatus,
        to: RunStatus,
        message: &str,
        now: i64,
        source: &str,
    ) -> Result<()> {
        if !from.can_transition(to) {
            return Err(StoreError::Transition(format!(
                "illegal run transition {from} -> {to} for run {run_id}"
            )));
        }
        let n = self.tx.execute(
            "UPDATE runs SET status = ?1, message = ?2, updated_at = ?3,
                    status_changed_at = CASE WHEN status = ?1 THEN status_changed_at ELSE ?3 END
             WHERE id = ?4 AND status = ?5",
            params![to.as_str(), message, now, run_id, from.as_str()],
        )?;
        if n == 0 {
            let current: Option<String> = self
                .tx
                .query_row("SELECT status FROM runs WHERE id = ?1", [run_id], |r| {
                    r.get(0)
                })
                .optional()?;
            return Err(match current {
                None => StoreError::NotFound(format!("run {run_id} not found")),
                Some(cur) => StoreError::Transition(format!(
                    "run {run_id} is {cur}, not {from}; refusing {from} -> {to}"
                )),
            });
        }
        if from != to {
            self.add_event(
                now,
                &NewEvent {
                    run_id: Some(run_id),
                    kind: "transition",
                    from_state: from.as_str(),
                    to_state: to.as_str(),
                    message,
                    source,
                    ..Default::default()
                },
            )?;
        }
        Ok(())
    }

    pub fn update_agent(&self, run_id: &str, name: &str, u: &AgentUpdate, now: i64) -> Result<()> {
        self.tx.execute(
            "UPDATE agents SET status = ?1, health = ?2, last_activity_at = ?3, last_progress_at = ?4,
                    exit_status = ?5, exit_signal = ?6, pane_id = ?7, updated_at = ?8
             WHERE run_id = ?9 AND name = ?10",
            params![
                u.status,
                u.health.as_str(),
                u.last_activity_at,
                u.last_progress_at,
                u.exit_status,
                u.exit_signal,
                u.pane_id,
                now,
                run_id,
                name
            ],
        )?;
        Ok(())
    }

    /// A (re)start: fresh pane, activity reset, exit and signal cleared.
    /// A (re)start: fresh pane, activity reset, exit and signal cleared. An adopted pane
    /// respawned `in_place` keeps its pane id; one restarted elsewhere now runs in a session
    /// of our own (ours to kill, with remain-on-exit).
    pub fn mark_agent_started(
        &self,
        run_id: &str,
        name: &str,
        now: i64,
        in_place: bool,
    ) -> Result<()> {
        self.tx.execute(
            "UPDATE agents SET status = 'running', health = 'healthy', last_activity_at = ?1,
                    last_progress_at = ?1, exit_status = NULL, exit_signal = NULL,
                    pane_id = CASE WHEN ?4 THEN pane_id ELSE NULL END,
                    adopted = CASE WHEN ?4 THEN adopted ELSE 0 END,
                    keep_dead_pane = CASE WHEN ?4 THEN keep_dead_pane ELSE 1 END,
                    started_at = ?1, signal = NULL, signal_at = ?1, updated_at = ?1
             WHERE run_id = ?2 AND name = ?3",
            params![now, run_id, name, in_place],
        )?;
        Ok(())
    }

    /// What a (re)start ran: its command (a fresh Claude start gets a new conversation
    /// id) and how a later restart can continue it.
    pub fn set_agent_launch(
        &self,
        run_id: &str,
        name: &str,
        argv: &[String],
        r: &crate::resume::Resume,
    ) -> Result<()> {
        self.tx.execute(
            "UPDATE agents SET argv = ?3, resume_argv = ?4, conversation_id = ?5, start_kind = ?6,
                    conversation_since = ?7, resume_explicit = ?8
             WHERE run_id = ?1 AND name = ?2",
            params![
                run_id,
                name,
                serde_json::to_string(argv).unwrap_or_else(|_| "[]".into()),
                resume_argv(r),
                r.conversation,
                r.kind.as_str(),
                r.since,
                r.explicit
            ],
        )?;
        Ok(())
    }

    /// A run left behind by a server restart (`why`), or found again (`None`).
    pub fn set_run_orphaned(&self, run_id: &str, why: Option<&str>) -> Result<()> {
        self.tx.execute(
            "UPDATE runs SET orphaned = ?2 WHERE id = ?1",
            params![run_id, why],
        )?;
        Ok(())
    }

    /// The server (socket path and instance) a run's agents now live on.
    pub fn set_run_server(
        &self,
        run_id: &str,
        socket: Option<&str>,
        instance: Option<&str>,
    ) -> Result<()> {
        self.tx.execute(
            "UPDATE runs SET tmux_socket = COALESCE(?2, tmux_socket), tmux_server = ?3 WHERE id = ?1",
            params![run_id, socket, instance],
        )?;
        Ok(())
    }

    pub fn mark_agent_stopped(&self, run_id: &str, name: &str, now: i64) -> Result<()> {
        self.tx.execute(
            "UPDATE agents SET status = 'stopped', health = 'dead', pane_id = NULL, updated_at = ?1
             WHERE run_id = ?2 AND name = ?3",
            params![now, run_id, name],
        )?;
        Ok(())
    }

    pub fn set_agent_signal(
        &self,
        run_id: &str,
        name: &str,
        signal: AgentSignal,
        at: i64,
    ) -> Result<()> {
        // A queued (older) report never overwrites a newer one.
        self.tx.execute(
            "UPDATE agents SET signal = ?1, signal_at = ?2, updated_at = ?2
             WHERE run_id = ?3 AND name = ?4 AND (signal_at IS NULL OR signal_at <= ?2)",
            params![signal.as_str(), at, run_id, name],
        )?;
        Ok(())
    }

    pub fn delete_run(&self, run_id: &str) -> Result<()> {
        self.tx
            .execute("DELETE FROM events WHERE run_id = ?1", [run_id])?;
        self.tx
            .execute("DELETE FROM runs WHERE id = ?1", [run_id])?;
        Ok(())
    }
}

fn resume_argv(r: &crate::resume::Resume) -> Option<String> {
    r.argv.as_ref().and_then(|a| serde_json::to_string(a).ok())
}
