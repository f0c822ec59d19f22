//! Writes of the operator's own state per run: the rules' state, assist-mode approvals and
//! the LLM calls.

use super::super::read::get_op_state;
use super::super::Result;
use super::Tx;
use crate::model::rows::*;
use rusqlite::params;

impl Tx<'_> {
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
                a.intent.as_str(),
                targets,
                a.reason,
                a.situation,
                a.status.as_str(),
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
                if error.is_some() {
                    CallState::Error
                } else {
                    CallState::Done
                }
                .as_str(),
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
