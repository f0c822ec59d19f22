//! Every write: methods of `Tx`, one BEGIN IMMEDIATE transaction. Nothing outside the
//! store writes SQL; a caller opens a `Tx` with `Store::write`, calls these, commits.

use super::read::get_op_state;
use super::{Result, StoreError};
use crate::model::rows::*;
use crate::model::{AgentSignal, RunStatus};
use rusqlite::{params, OptionalExtension, Transaction};

/// A write transaction (BEGIN IMMEDIATE). Dropped without `commit`, it rolls back.
pub struct Tx<'a> {
    pub(super) tx: Transaction<'a>,
}

impl Tx<'_> {
    pub fn commit(self) -> Result<()> {
        Ok(self.tx.commit()?)
    }

    pub fn add_event(&self, now: i64, e: &NewEvent<'_>) -> Result<()> {
        self.tx.execute(
            "INSERT INTO events(at, run_id, agent, kind, from_state, to_state, message, source)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
            params![
                now,
                e.run_id,
                e.agent,
                e.kind,
                e.from_state,
                e.to_state,
                e.message,
                if e.source.is_empty() {
                    "rule"
                } else {
                    e.source
                }
            ],
        )?;
        Ok(())
    }

    pub fn meta_delete(&self, key: &str) -> Result<()> {
        self.tx.execute("DELETE FROM meta WHERE key = ?1", [key])?;
        Ok(())
    }

    /// A fresh start after a clock step or a long gap (see clock.rs): every stored time in
    /// the future comes back to `now` (a cooldown to at most `now + cooldown_cap`), and
    /// the activity of every agent not stopped counts from `now`. Returns the number of
    /// rows changed.
    pub fn clock_fresh_start(&self, now: i64, cooldown_cap: i64) -> Result<usize> {
        let mut n = 0;
        for sql in [
            "UPDATE runs SET created_at = MIN(created_at, ?1), updated_at = MIN(updated_at, ?1),
                 status_changed_at = MIN(status_changed_at, ?1)
             WHERE MAX(created_at, updated_at, status_changed_at) > ?1",
            "UPDATE agents SET started_at = MIN(started_at, ?1), updated_at = MIN(updated_at, ?1),
                 signal_at = MIN(signal_at, ?1)
             WHERE MAX(started_at, updated_at, COALESCE(signal_at, 0)) > ?1",
            "UPDATE agents SET last_activity_at = ?1, last_progress_at = ?1
             WHERE status != 'stopped'
               AND (last_activity_at IS NULL OR last_activity_at != ?1
                    OR last_progress_at IS NULL OR last_progress_at != ?1)",
            "UPDATE operator_run_states SET last_restart_at = MIN(last_restart_at, ?1),
                 last_observation_at = MIN(last_observation_at, ?1),
                 healthy_since = MIN(healthy_since, ?1), last_alert_at = MIN(last_alert_at, ?1),
                 cooldown_until = MIN(cooldown_until, ?1 + ?2), updated_at = MIN(updated_at, ?1)
             WHERE MAX(COALESCE(last_restart_at, 0), COALESCE(last_observation_at, 0),
                       COALESCE(healthy_since, 0), COALESCE(last_alert_at, 0), updated_at) > ?1
                OR COALESCE(cooldown_until, 0) > ?1 + ?2",
            "UPDATE llm_calls SET started_at = MIN(started_at, ?1) WHERE started_at > ?1",
        ] {
            // SQLite's multi-argument MIN is NULL when any argument is: NULLs stay NULL.
            n += if sql.contains("?2") {
                self.tx.execute(sql, params![now, cooldown_cap])?
            } else {
                self.tx.execute(sql, params![now])?
            };
        }
        Ok(n)
    }

    pub fn meta_set(&self, key: &str, value: &str) -> Result<()> {
        self.tx.execute(
            "INSERT INTO meta(key, value) VALUES (?1, ?2)
             ON CONFLICT(key) DO UPDATE SET value = excluded.value",
            params![key, value],
        )?;
        Ok(())
    }

    /// Adds one to an integer meta value (missing or garbage counts as 0), returns it.
    pub fn meta_increment(&self, key: &str) -> Result<i64> {
        let cur: Option<String> = self
            .tx
            .query_row("SELECT value FROM meta WHERE key = ?1", [key], |r| r.get(0))
            .optional()?;
        let next = cur.and_then(|v| v.parse::<i64>().ok()).unwrap_or(0) + 1;
        self.meta_set(key, &next.to_string())?;
        Ok(next)
    }

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

    pub fn put_op_state(&self, run_id: &str, s: &OpState, now: i64) -> Result<()> {
        self.tx.execute(
            "INSERT INTO operator_run_states(run_id, restart_attempts, last_restart_at, cooldown_until,
                    unhealthy_streak, last_observation_at, healthy_since, last_alert, last_alert_at,
                    last_decision, updated_at)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)
             ON CONFLICT(run_id) DO UPDATE SET restart_attempts = excluded.restart_attempts,
                    last_restart_at = excluded.last_restart_at, cooldown_until = excluded.cooldown_until,
                    unhealthy_streak = excluded.unhealthy_streak,
                    last_observation_at = excluded.last_observation_at,
                    healthy_since = excluded.healthy_since, last_alert = excluded.last_alert,
                    last_alert_at = excluded.last_alert_at, last_decision = excluded.last_decision,
                    updated_at = excluded.updated_at",
            params![
                run_id,
                s.restart_attempts,
                s.last_restart_at,
                s.cooldown_until,
                s.unhealthy_streak,
                s.last_observation_at,
                s.healthy_since,
                s.last_alert,
                s.last_alert_at,
                s.last_decision,
                now
            ],
        )?;
        Ok(())
    }

    pub fn op_state_tx(&self, run_id: &str) -> Result<OpState> {
        get_op_state(&self.tx, run_id)
    }

    /// Records a guidance request unless the same (agent, question) is already pending.
    pub fn add_guidance(
        &self,
        run_id: &str,
        agent: &str,
        root: &str,
        question: &str,
        context: &str,
        now: i64,
    ) -> Result<Option<i64>> {
        self.add_question(run_id, agent, root, question, context, "file", now)
    }

    /// Records a dialog read from an agent's screen as a question (source `screen`, no
    /// signal directory: it is answered in the pane) unless the same one is pending.
    pub fn add_screen_question(
        &self,
        run_id: &str,
        agent: &str,
        question: &str,
        context: &str,
        now: i64,
    ) -> Result<Option<i64>> {
        self.add_question(run_id, agent, "", question, context, "screen", now)
    }

    #[allow(clippy::too_many_arguments)]
    fn add_question(
        &self,
        run_id: &str,
        agent: &str,
        root: &str,
        question: &str,
        context: &str,
        source: &str,
        now: i64,
    ) -> Result<Option<i64>> {
        let exists = self
            .tx
            .query_row(
                "SELECT id FROM guidance_requests WHERE run_id = ?1 AND agent = ?2 AND question = ?3
                 AND status = 'pending'",
                params![run_id, agent, question],
                |r| r.get::<_, i64>(0),
            )
            .optional()?;
        if exists.is_some() {
            return Ok(None);
        }
        self.tx.execute(
            "INSERT INTO guidance_requests(run_id, agent, root, question, context, status,
                                           created_at, source)
             VALUES (?1, ?2, ?3, ?4, ?5, 'pending', ?6, ?7)",
            params![run_id, agent, root, question, context, now, source],
        )?;
        Ok(Some(self.tx.last_insert_rowid()))
    }

    /// A screen question whose dialog left the screen (answered in the pane, or the agent
    /// moved on): no longer pending, and no answer recorded.
    pub fn resolve_screen_question(&self, id: i64, now: i64) -> Result<()> {
        self.tx.execute(
            "UPDATE guidance_requests SET status = 'resolved', answered_at = ?1
             WHERE id = ?2 AND status = 'pending' AND source = 'screen'",
            params![now, id],
        )?;
        Ok(())
    }

    /// A question an agent asks at its prompt (`source` = signal | screen), answered by
    /// typing into its pane: at most one pending per agent (the first one stands).
    pub fn add_pane_question(
        &self,
        run_id: &str,
        agent: &str,
        source: &str,
        question: &str,
        context: &str,
        now: i64,
    ) -> Result<Option<i64>> {
        let exists = self
            .tx
            .query_row(
                "SELECT id FROM guidance_requests WHERE run_id = ?1 AND agent = ?2
                 AND source <> 'file' AND status = 'pending'",
                params![run_id, agent],
                |r| r.get::<_, i64>(0),
            )
            .optional()?;
        if exists.is_some() {
            return Ok(None);
        }
        self.tx.execute(
            "INSERT INTO guidance_requests(run_id, agent, root, question, context, status,
                                           created_at, source)
             VALUES (?1, ?2, '', ?3, ?4, 'pending', ?5, ?6)",
            params![run_id, agent, question, context, now, source],
        )?;
        Ok(Some(self.tx.last_insert_rowid()))
    }

    /// A pane question nobody needs to answer any more (the agent moved on or is gone).
    pub fn withdraw_question(&self, id: i64, now: i64) -> Result<bool> {
        let n = self.tx.execute(
            "UPDATE guidance_requests SET status = 'withdrawn', answered_at = ?1
             WHERE id = ?2 AND status = 'pending'",
            params![now, id],
        )?;
        Ok(n > 0)
    }

    /// Records (or refreshes) the action assist mode holds for the run.
    pub fn put_approval(&self, a: &ApprovalRow, now: i64) -> Result<()> {
        let targets = serde_json::to_string(&a.targets).unwrap_or_else(|_| "[]".into());
        self.tx.execute(
            "INSERT INTO approvals(run_id, intent, targets, reason, situation, status,
                                   created_at, updated_at)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)
             ON CONFLICT(run_id) DO UPDATE SET intent = excluded.intent,
                    targets = excluded.targets, reason = excluded.reason,
                    situation = excluded.situation, status = excluded.status,
                    updated_at = excluded.updated_at",
            params![
                a.run_id,
                a.intent,
                targets,
                a.reason,
                a.situation,
                a.status,
                a.created_at,
                now
            ],
        )?;
        Ok(())
    }

    pub fn clear_approval(&self, run_id: &str) -> Result<bool> {
        Ok(self
            .tx
            .execute("DELETE FROM approvals WHERE run_id = ?1", [run_id])?
            > 0)
    }

    pub fn answer_guidance(&self, id: i64, answer: &str, now: i64) -> Result<()> {
        self.tx.execute(
            "UPDATE guidance_requests SET status = 'answered', answer = ?1, answered_at = ?2 WHERE id = ?3",
            params![answer, now, id],
        )?;
        Ok(())
    }

    pub fn inbox_drain(&self) -> Result<Vec<InboxRow>> {
        let mut stmt = self
            .tx
            .prepare_cached("SELECT id, at, event, run_id, args FROM inbox ORDER BY id")?;
        let rows = stmt.query_map([], |r| {
            Ok(InboxRow {
                id: r.get(0)?,
                at: r.get(1)?,
                event: r.get(2)?,
                run_id: r.get(3)?,
                args: r.get(4)?,
            })
        })?;
        let out = rows.collect::<rusqlite::Result<Vec<_>>>()?;
        if let Some(last) = out.last() {
            self.tx
                .execute("DELETE FROM inbox WHERE id <= ?1", [last.id])?;
        }
        Ok(out)
    }

    pub fn delete_run(&self, run_id: &str) -> Result<()> {
        self.tx
            .execute("DELETE FROM events WHERE run_id = ?1", [run_id])?;
        self.tx
            .execute("DELETE FROM runs WHERE id = ?1", [run_id])?;
        Ok(())
    }

    pub fn llm_call_start(
        &self,
        run_id: &str,
        fingerprint: &str,
        request: &str,
        now: i64,
    ) -> Result<()> {
        self.tx.execute(
            "INSERT INTO llm_calls(run_id, fingerprint, state, pid, started_at, finished_at, request, proposal, error)
             VALUES (?1, ?2, 'in_flight', NULL, ?3, NULL, ?4, NULL, NULL)
             ON CONFLICT(run_id) DO UPDATE SET fingerprint = excluded.fingerprint, state = 'in_flight',
                    pid = NULL, started_at = excluded.started_at, finished_at = NULL,
                    request = excluded.request, proposal = NULL, error = NULL, reaped = 0, unstarted = 0",
            params![run_id, fingerprint, now, request],
        )?;
        Ok(())
    }

    /// The worker's result; only lands if the call it belongs to is still the current one.
    /// Ends an in-flight call whose worker the tick reaped; false if it was not in flight.
    pub fn llm_call_reaped(
        &self,
        run_id: &str,
        fingerprint: &str,
        why: &str,
        now: i64,
    ) -> Result<bool> {
        let n = self.tx.execute(
            "UPDATE llm_calls SET state = 'error', finished_at = ?1, error = ?2, reaped = 1
             WHERE run_id = ?3 AND fingerprint = ?4 AND state = 'in_flight'",
            params![now, why, run_id, fingerprint],
        )?;
        Ok(n > 0)
    }

    /// `unstarted`: the error is that the LLM program could not be started at all.
    #[allow(clippy::too_many_arguments)]
    pub fn llm_call_finish(
        &self,
        run_id: &str,
        fingerprint: &str,
        proposal: Option<&str>,
        error: Option<&str>,
        unstarted: bool,
        now: i64,
    ) -> Result<bool> {
        let n = self.tx.execute(
            "UPDATE llm_calls SET state = ?1, finished_at = ?2, proposal = ?3, error = ?4,
                    unstarted = ?7
             WHERE run_id = ?5 AND fingerprint = ?6 AND state = 'in_flight'",
            params![
                if error.is_some() { "error" } else { "done" },
                now,
                proposal,
                error,
                run_id,
                fingerprint,
                unstarted
            ],
        )?;
        Ok(n > 0)
    }
}

fn resume_argv(r: &crate::resume::Resume) -> Option<String> {
    r.argv.as_ref().and_then(|a| serde_json::to_string(a).ok())
}
