//! Every write: methods of `Tx`, one BEGIN IMMEDIATE transaction. Nothing outside the
//! store writes SQL; a caller opens a `Tx` with `Store::write`, calls these, commits.
//! Here: the transaction, events, meta keys, the inbox; runs and agents in `runs.rs`,
//! questions in `questions.rs`, the operator's state, approvals and LLM calls in
//! `operator.rs`.

mod operator;
mod questions;
mod runs;

use super::Result;
use crate::model::rows::*;
use rusqlite::{params, OptionalExtension, Transaction};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

/// A write transaction (BEGIN IMMEDIATE). Dropped without `commit`, it rolls back.
pub struct Tx<'a> {
    pub(super) tx: Transaction<'a>,
    /// The connection's count of rows written to the status tables (`Store::status_writes`)
    /// and its value at BEGIN: see `commit`.
    pub(super) status_writes: Arc<AtomicU64>,
    pub(super) at_begin: u64,
}

/// meta `status_gen` (`status_cache::STATUS_GEN`) changes with every committed
/// transaction that wrote a status table; it starts at a random number, so a status
/// cache left beside a new database never matches it by chance.
pub(super) const BUMP_STATUS_GEN: &str = "INSERT INTO meta(key, value)
     VALUES ('status_gen', abs(random() % 1000000000000))
     ON CONFLICT(key) DO UPDATE SET value = value + 1";

impl Tx<'_> {
    /// Commits; when the transaction wrote any status table, meta `status_gen` changes in
    /// it first (the status cache is reused only while that number stands:
    /// `status_cache::refresh_from`). Every write of ours goes through here, so only a
    /// program writing the database behind our back leaves it unchanged; the next full
    /// tick counts from its own rows and heals the cache.
    pub fn commit(self) -> Result<()> {
        if self.status_writes.load(Ordering::Relaxed) != self.at_begin {
            self.tx.execute(BUMP_STATUS_GEN, [])?;
        }
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

    /// Moves meta `status_gen`, or starts it. A full tick that found none (a database
    /// from before it, where nothing has written a status table since) starts it, so
    /// that a steady world's cache gets stamped too.
    pub fn bump_status_gen(&self) -> Result<()> {
        self.tx.execute(BUMP_STATUS_GEN, [])?;
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
        // (statement, whether it takes the cooldown cap as ?2)
        for (sql, capped) in [
            (
                "UPDATE runs SET created_at = MIN(created_at, ?1), updated_at = MIN(updated_at, ?1),
                     status_changed_at = MIN(status_changed_at, ?1)
                 WHERE MAX(created_at, updated_at, status_changed_at) > ?1",
                false,
            ),
            (
                "UPDATE agents SET started_at = MIN(started_at, ?1), updated_at = MIN(updated_at, ?1),
                     signal_at = MIN(signal_at, ?1)
                 WHERE MAX(started_at, updated_at, COALESCE(signal_at, 0)) > ?1",
                false,
            ),
            (
                "UPDATE agents SET last_activity_at = ?1, last_progress_at = ?1
                 WHERE status != 'stopped'
                   AND (last_activity_at IS NULL OR last_activity_at != ?1
                        OR last_progress_at IS NULL OR last_progress_at != ?1)",
                false,
            ),
            (
                "UPDATE operator_run_states SET last_restart_at = MIN(last_restart_at, ?1),
                     last_observation_at = MIN(last_observation_at, ?1),
                     healthy_since = MIN(healthy_since, ?1), last_alert_at = MIN(last_alert_at, ?1),
                     cooldown_until = MIN(cooldown_until, ?1 + ?2), updated_at = MIN(updated_at, ?1)
                 WHERE MAX(COALESCE(last_restart_at, 0), COALESCE(last_observation_at, 0),
                           COALESCE(healthy_since, 0), COALESCE(last_alert_at, 0), updated_at) > ?1
                    OR COALESCE(cooldown_until, 0) > ?1 + ?2",
                true,
            ),
            (
                "UPDATE llm_calls SET started_at = MIN(started_at, ?1) WHERE started_at > ?1",
                false,
            ),
        ] {
            // SQLite's multi-argument MIN is NULL when any argument is: NULLs stay NULL.
            n += if capped {
                self.tx.execute(sql, params![now, cooldown_cap])?
            } else {
                self.tx.execute(sql, params![now])?
            };
        }
        Ok(n)
    }

    /// Cached: a tick's record sets four keys, each was prepared again.
    pub fn meta_set(&self, key: &str, value: &str) -> Result<()> {
        self.tx
            .prepare_cached(
                "INSERT INTO meta(key, value) VALUES (?1, ?2)
                 ON CONFLICT(key) DO UPDATE SET value = excluded.value",
            )?
            .execute(params![key, value])?;
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
}
