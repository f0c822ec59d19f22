//! Every read, as `Store` methods (plus the few single-statement writes that need no
//! transaction).

use super::{Result, Store, StoreError};
use crate::model::rows::*;
use crate::model::FastMap;
use crate::model::{Health, Intent, RunStatus};
use rusqlite::{params, Connection, OptionalExtension};
use std::collections::HashMap;

impl Store {
    // ---- meta -------------------------------------------------------------------

    /// Cached: a tick reads several keys, each would be prepared again.
    pub fn meta_get(&self, key: &str) -> Result<Option<String>> {
        Ok(self
            .conn
            .prepare_cached("SELECT value FROM meta WHERE key = ?1")?
            .query_row([key], |r| r.get(0))
            .optional()?)
    }

    pub fn meta_many(&self, keys: &[&str]) -> Result<HashMap<String, String>> {
        let mut stmt = self.conn.prepare_cached("SELECT key, value FROM meta")?;
        let rows = stmt.query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?)))?;
        let mut out = HashMap::new();
        for r in rows {
            let (k, v) = r?;
            if keys.contains(&k.as_str()) {
                out.insert(k, v);
            }
        }
        Ok(out)
    }

    // ---- reads ------------------------------------------------------------------

    /// By creation time, then id. Sorted here: SQLite's sorter copied every whole row.
    pub fn runs(&self, all: bool) -> Result<Vec<RunRow>> {
        let mut stmt = self.conn.prepare_cached(
            "SELECT id, tickets, workspace, doc_home_repo, ticket_dir, status, message,
                    created_at, updated_at, status_changed_at, tmux_socket, policy_path, orphaned, tmux_server FROM runs",
        )?;
        let rows = stmt.query_map([], run_from_row)?;
        let mut out = Vec::new();
        for r in rows {
            let r = r?;
            if all || r.status.is_active() {
                out.push(r);
            }
        }
        // Ids are unique, and SQLite compares TEXT byte by byte as `str` does.
        out.sort_unstable_by(|a, b| (a.created_at, &a.id).cmp(&(b.created_at, &b.id)));
        Ok(out)
    }

    /// Whether any run is supervised: the statuses alone, stopping at the first active
    /// one (the timer asks this every firing; loading every row cost a 500-run load).
    pub fn has_active_runs(&self) -> Result<bool> {
        let mut stmt = self.conn.prepare_cached("SELECT status FROM runs")?;
        let mut rows = stmt.query([])?;
        while let Some(r) = rows.next()? {
            let status: String = r.get(0)?;
            if status.parse::<RunStatus>().is_ok_and(RunStatus::is_active) {
                return Ok(true);
            }
        }
        Ok(false)
    }

    pub fn run(&self, id: &str) -> Result<RunRow> {
        self.conn
            .query_row(
                "SELECT id, tickets, workspace, doc_home_repo, ticket_dir, status, message,
                        created_at, updated_at, status_changed_at, tmux_socket, policy_path, orphaned, tmux_server FROM runs
                 WHERE id = ?1",
                [id],
                run_from_row,
            )
            .optional()?
            .ok_or_else(|| StoreError::NotFound(format!("run {id} not found")))
    }

    pub fn agents(&self, run_id: Option<&str>) -> Result<Vec<AgentRow>> {
        let sql = AGENT_SELECT;
        let mut out = Vec::new();
        match run_id {
            Some(id) => {
                let mut stmt = self
                    .conn
                    .prepare_cached(&format!("{sql} WHERE run_id = ?1 ORDER BY rowid"))?;
                for r in stmt.query_map([id], agent_from_row)? {
                    out.push(r?);
                }
            }
            None => {
                let mut stmt = self
                    .conn
                    .prepare_cached(&format!("{sql} ORDER BY run_id, rowid"))?;
                for r in stmt.query_map([], agent_from_row)? {
                    out.push(r?);
                }
            }
        }
        Ok(out)
    }

    /// Every agent, by run id, each run's in insertion order (as `agents(Some(id))`):
    /// one table scan, no sort.
    pub fn agents_by_run(&self) -> Result<FastMap<String, Vec<AgentRow>>> {
        let mut stmt = self
            .conn
            .prepare_cached(&format!("{AGENT_SELECT} ORDER BY rowid"))?;
        let mut out: FastMap<String, Vec<AgentRow>> = FastMap::default();
        for r in stmt.query_map([], agent_from_row)? {
            let a = r?;
            match out.get_mut(&a.run_id) {
                Some(v) => v.push(a),
                None => {
                    out.insert(a.run_id.clone(), vec![a]);
                }
            }
        }
        Ok(out)
    }

    /// Which agent owns this session or pane (the hook fast path).
    pub fn agent_by_session_or_pane(
        &self,
        session: Option<&str>,
        pane: Option<&str>,
    ) -> Result<Option<(String, String)>> {
        Ok(self
            .conn
            .query_row(
                AGENT_BY_SESSION_OR_PANE,
                params![session.unwrap_or("\u{0}"), pane.unwrap_or("\u{0}")],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .optional()?)
    }

    pub fn session_taken(&self, session: &str) -> Result<bool> {
        Ok(self
            .conn
            .query_row("SELECT 1 FROM agents WHERE session = ?1", [session], |_| {
                Ok(())
            })
            .optional()?
            .is_some())
    }

    pub fn op_state(&self, run_id: &str) -> Result<OpState> {
        get_op_state(&self.conn, run_id)
    }

    /// Whether this question was recorded for the run at or after `since` (any status).
    pub fn guidance_recorded_since(
        &self,
        run_id: &str,
        question: &str,
        since: i64,
    ) -> Result<bool> {
        let n: i64 = self.conn.query_row(
            "SELECT count(*) FROM guidance_requests
             WHERE run_id = ?1 AND question = ?2 AND created_at >= ?3",
            params![run_id, question, since],
            |r| r.get(0),
        )?;
        Ok(n > 0)
    }

    pub fn pending_guidance(&self, run_id: &str) -> Result<Vec<GuidanceRow>> {
        let mut stmt = self.conn.prepare_cached(
            "SELECT id, run_id, agent, root, question, context, created_at, source FROM guidance_requests
             WHERE run_id = ?1 AND status = 'pending' ORDER BY id",
        )?;
        let rows = stmt.query_map([run_id], guidance_from_row)?;
        let out = rows.collect::<rusqlite::Result<Vec<_>>>()?;
        Ok(out)
    }

    pub fn events(&self, run_id: Option<&str>, limit: i64) -> Result<Vec<EventRow>> {
        self.events_of(run_id, None, limit)
    }

    /// The last `limit` events (oldest first), of one kind when `kind` is given.
    pub fn events_of(
        &self,
        run_id: Option<&str>,
        kind: Option<&str>,
        limit: i64,
    ) -> Result<Vec<EventRow>> {
        let mut stmt = self.conn.prepare_cached(
            "SELECT id, at, run_id, agent, kind, from_state, to_state, message, source FROM events
             WHERE (?1 IS NULL OR run_id = ?1) AND (?3 IS NULL OR kind = ?3)
             ORDER BY id DESC LIMIT ?2",
        )?;
        let rows = stmt.query_map(params![run_id, limit, kind], |r| {
            Ok(EventRow {
                id: r.get(0)?,
                at: r.get(1)?,
                run_id: r.get(2)?,
                agent: r.get(3)?,
                kind: r.get(4)?,
                from_state: r.get(5)?,
                to_state: r.get(6)?,
                message: r.get(7)?,
                source: r.get(8)?,
            })
        })?;
        let mut out = rows.collect::<rusqlite::Result<Vec<_>>>()?;
        out.reverse();
        Ok(out)
    }

    /// The newest event of `kind` (any run): (at, run_id, message).
    pub fn latest_event(&self, kind: &str) -> Result<Option<(i64, Option<String>, String)>> {
        Ok(self
            .conn
            .query_row(
                "SELECT at, run_id, message FROM events WHERE kind = ?1 ORDER BY id DESC LIMIT 1",
                [kind],
                |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
            )
            .optional()?)
    }

    /// The latest event of `kind` for the run whose message starts with `prefix`.
    pub fn last_event_for(&self, run_id: &str, kind: &str, prefix: &str) -> Result<Option<String>> {
        Ok(self
            .conn
            .query_row(
                "SELECT message FROM events WHERE run_id = ?1 AND kind = ?2
                 AND substr(message, 1, length(?3)) = ?3 ORDER BY id DESC LIMIT 1",
                params![run_id, kind, prefix],
                |r| r.get(0),
            )
            .optional()?)
    }

    pub fn llm_call(&self, run_id: &str) -> Result<Option<LlmCall>> {
        get_llm_call(&self.conn, run_id)
    }

    pub fn op_states(&self) -> Result<FastMap<String, OpState>> {
        let mut stmt = self.conn.prepare_cached(OP_STATE_SELECT)?;
        let mut out = FastMap::default();
        for r in stmt.query_map([], op_state_from_row)? {
            let (id, s) = r?;
            out.insert(id, s);
        }
        Ok(out)
    }

    pub fn all_pending_guidance(&self) -> Result<FastMap<String, Vec<GuidanceRow>>> {
        let mut stmt = self.conn.prepare_cached(
            "SELECT id, run_id, agent, root, question, context, created_at, source FROM guidance_requests
             WHERE status = 'pending' ORDER BY id",
        )?;
        let rows = stmt.query_map([], guidance_from_row)?;
        let mut out: FastMap<String, Vec<GuidanceRow>> = FastMap::default();
        for r in rows {
            let r = r?;
            out.entry(r.run_id.clone()).or_default().push(r);
        }
        Ok(out)
    }

    /// Every run's approval row (pending or dismissed).
    pub fn approvals(&self) -> Result<FastMap<String, ApprovalRow>> {
        self.approvals_where("", [])
    }

    pub fn approval(&self, run_id: &str) -> Result<Option<ApprovalRow>> {
        Ok(self
            .approvals_where("WHERE run_id = ?1", [run_id])?
            .remove(run_id))
    }

    fn approvals_where<P: rusqlite::Params>(
        &self,
        filter: &str,
        params: P,
    ) -> Result<FastMap<String, ApprovalRow>> {
        let mut stmt = self.conn.prepare_cached(&format!(
            "SELECT run_id, intent, targets, reason, situation, status, created_at FROM approvals {filter}"
        ))?;
        let rows = stmt.query_map(params, |r| {
            let targets: String = r.get(2)?;
            Ok(ApprovalRow {
                run_id: r.get(0)?,
                // An intent this build does not know holds nothing it could approve.
                intent: r.get::<_, String>(1)?.parse().unwrap_or(Intent::Noop),
                targets: serde_json::from_str(&targets).unwrap_or_default(),
                reason: r.get(3)?,
                situation: r.get(4)?,
                // A status this build does not know holds nothing back.
                status: r
                    .get::<_, String>(5)?
                    .parse()
                    .unwrap_or(ApprovalStatus::Dismissed),
                created_at: r.get(6)?,
            })
        })?;
        let mut out = FastMap::default();
        for r in rows {
            let r = r?;
            out.insert(r.run_id.clone(), r);
        }
        Ok(out)
    }

    pub fn llm_calls(&self) -> Result<FastMap<String, LlmCall>> {
        self.llm_calls_where("", [])
    }

    /// The calls in flight, of every run (the bound on workers is global): with the
    /// calls of the runs a one-run tick reads, all it needs of the table.
    pub fn llm_calls_in_flight_rows(&self) -> Result<FastMap<String, LlmCall>> {
        self.llm_calls_where("WHERE state = 'in_flight'", [])
    }

    fn llm_calls_where<P: rusqlite::Params>(
        &self,
        filter: &str,
        params: P,
    ) -> Result<FastMap<String, LlmCall>> {
        let mut stmt = self.conn.prepare_cached(&format!(
            "SELECT run_id, fingerprint, state, pid, started_at, finished_at, proposal, error, request,
                    reaped, unstarted
             FROM llm_calls {filter}"
        ))?;
        let rows = stmt.query_map(params, llm_call_from_row)?;
        let mut out = FastMap::default();
        for r in rows {
            let r = r?;
            out.insert(r.run_id.clone(), r);
        }
        Ok(out)
    }

    /// One query for the status line: per active run, what a human needs to know.
    pub fn status_rows(&self) -> Result<Vec<StatusRow>> {
        let mut stmt = self.conn.prepare_cached(
            // One pass over each table: correlated subqueries cost O(runs × rows), and
            // guidance_requests (never pruned, no run_id index) made that 100+ ms at 500 runs.
            "WITH a AS (
                SELECT run_id,
                    count(*) FILTER (WHERE health = 'dead') AS dead,
                    count(*) FILTER (WHERE signal = 'waiting' AND health NOT IN ('dead', 'exited')) AS waiting,
                    count(*) FILTER (WHERE health = 'exited' OR (signal = 'done' AND health <> 'dead')) AS done,
                    count(*) AS n
                FROM agents GROUP BY run_id),
             g AS (SELECT run_id, count(*) AS n FROM guidance_requests WHERE status = 'pending' GROUP BY run_id)
             SELECT r.status, COALESCE(g.n, 0), COALESCE(a.dead, 0), COALESCE(a.waiting, 0),
                    COALESCE(a.done, 0), COALESCE(a.n, 0), o.last_alert, r.tmux_socket,
                    ap.status IS NOT NULL, r.orphaned IS NOT NULL
             FROM runs r
             LEFT JOIN a ON a.run_id = r.id
             LEFT JOIN g ON g.run_id = r.id
             LEFT JOIN approvals ap ON ap.run_id = r.id AND ap.status = 'pending'
             LEFT JOIN operator_run_states o ON o.run_id = r.id
             WHERE r.status IN ('planning','running','awaiting_guidance','paused','stopping','closing')",
        )?;
        let rows = stmt.query_map([], |r| {
            let status: String = r.get(0)?;
            Ok(StatusRow {
                status: status.parse().unwrap_or(RunStatus::Failed),
                pending_guidance: r.get(1)?,
                dead_agents: r.get(2)?,
                waiting_agents: r.get(3)?,
                done_agents: r.get(4)?,
                agents: r.get(5)?,
                last_alert: r.get(6)?,
                tmux_socket: r.get(7)?,
                orphaned: r.get(9)?,
                awaiting_approval: r.get(8)?,
            })
        })?;
        let out = rows.collect::<rusqlite::Result<Vec<_>>>()?;
        Ok(out)
    }

    pub fn llm_calls_in_flight(&self) -> Result<i64> {
        Ok(self.conn.query_row(
            "SELECT count(*) FROM llm_calls WHERE state = 'in_flight'",
            [],
            |r| r.get(0),
        )?)
    }

    // ---- writes outside a transaction (single statements) ------------------------

    /// Hooks record their event with one autocommit INSERT and no flock.
    pub fn inbox_push(
        &self,
        event: &str,
        run_id: Option<&str>,
        args: &str,
        now: i64,
    ) -> Result<()> {
        self.conn.execute(
            "INSERT INTO inbox(at, event, run_id, args) VALUES (?1, ?2, ?3, ?4)",
            params![now, event, run_id, args],
        )?;
        Ok(())
    }

    pub fn inbox_pending(&self) -> Result<bool> {
        Ok(self
            .conn
            .query_row("SELECT 1 FROM inbox LIMIT 1", [], |_| Ok(()))
            .optional()?
            .is_some())
    }

    pub fn llm_call_set_pid(&self, run_id: &str, pid: i64) -> Result<()> {
        self.conn.execute(
            "UPDATE llm_calls SET pid = ?1 WHERE run_id = ?2 AND state = 'in_flight'",
            params![pid, run_id],
        )?;
        Ok(())
    }
}

fn guidance_from_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<GuidanceRow> {
    Ok(GuidanceRow {
        id: r.get(0)?,
        run_id: r.get(1)?,
        agent: r.get(2)?,
        root: r.get(3)?,
        question: r.get(4)?,
        context: r.get(5)?,
        created_at: r.get(6)?,
        // A source this build does not know is answered the safe way: by file.
        source: r
            .get::<_, String>(7)?
            .parse()
            .unwrap_or(crate::model::asks::QuestionSource::File),
    })
}

fn llm_call_from_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<LlmCall> {
    Ok(LlmCall {
        run_id: r.get(0)?,
        fingerprint: r.get(1)?,
        // A state this build does not know is an ended call (asked again, never waited on).
        state: r.get::<_, String>(2)?.parse().unwrap_or(CallState::Error),
        pid: r.get(3)?,
        started_at: r.get(4)?,
        finished_at: r.get(5)?,
        proposal: r.get(6)?,
        error: r.get(7)?,
        request: r.get(8)?,
        reaped: r.get(9)?,
        unstarted: r.get(10)?,
    })
}

/// A JSON array of strings as we store them (`["sleep","1000"]`), None when it is not
/// one. Every run and agent row holds one: plain ones (no escape, no space) are split
/// here, anything else goes through serde_json; both read the same.
fn string_array(s: &str) -> Option<Vec<String>> {
    plain_string_array(s).or_else(|| serde_json::from_str(s).ok())
}

fn plain_string_array(s: &str) -> Option<Vec<String>> {
    if s == "[]" {
        return Some(Vec::new());
    }
    let inner = s.strip_prefix("[\"")?.strip_suffix("\"]")?;
    if inner.bytes().any(|b| b == b'\\' || b < 0x20) {
        return None;
    }
    inner
        .split("\",\"")
        .map(|p| (!p.contains('"')).then(|| p.to_string()))
        .collect()
}

fn run_from_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<RunRow> {
    let tickets: String = r.get(1)?;
    let status: String = r.get(5)?;
    Ok(RunRow {
        id: r.get(0)?,
        tickets: string_array(&tickets).unwrap_or_default(),
        workspace: r.get(2)?,
        doc_home_repo: r.get(3)?,
        ticket_dir: r.get(4)?,
        status: status.parse().unwrap_or(RunStatus::Failed),
        message: r.get(6)?,
        created_at: r.get(7)?,
        updated_at: r.get(8)?,
        status_changed_at: r.get(9)?,
        tmux_socket: r.get(10)?,
        policy_path: r.get(11)?,
        orphaned: r.get(12)?,
        tmux_server: r.get(13)?,
    })
}

const AGENT_SELECT: &str =
    "SELECT run_id, name, session, argv, workdir, status, health, last_activity_at,
                          last_progress_at, exit_status, exit_signal, pane_id, started_at, signal,
                          signal_at, adopted, keep_dead_pane, resume_argv, conversation_id,
                          start_kind, conversation_since, resume_explicit FROM agents";

fn agent_from_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<AgentRow> {
    let argv: String = r.get(3)?;
    let health: String = r.get(6)?;
    let signal: Option<String> = r.get(13)?;
    Ok(AgentRow {
        run_id: r.get(0)?,
        name: r.get(1)?,
        session: r.get(2)?,
        argv: string_array(&argv).unwrap_or_default(),
        workdir: r.get(4)?,
        status: r.get(5)?,
        health: health.parse().unwrap_or(Health::Unknown),
        last_activity_at: r.get(7)?,
        last_progress_at: r.get(8)?,
        exit_status: r.get(9)?,
        exit_signal: r.get(10)?,
        pane_id: r.get(11)?,
        started_at: r.get(12)?,
        signal: signal.and_then(|s| s.parse().ok()),
        signal_at: r.get(14)?,
        adopted: r.get::<_, i64>(15)? != 0,
        keep_dead_pane: r.get::<_, i64>(16)? != 0,
        resume: crate::resume::Resume {
            argv: r
                .get::<_, Option<String>>(17)?
                .and_then(|s| string_array(&s)),
            conversation: r.get(18)?,
            kind: r.get::<_, String>(19)?.parse().unwrap_or_default(),
            since: r.get(20)?,
            explicit: r.get::<_, i64>(21)? != 0,
        },
    })
}

pub(super) fn get_op_state(conn: &Connection, run_id: &str) -> Result<OpState> {
    Ok(conn
        .query_row(
            &format!("{OP_STATE_SELECT} WHERE run_id = ?1"),
            [run_id],
            |r| Ok(op_state_from_row(r)?.1),
        )
        .optional()?
        .unwrap_or_default())
}

pub(super) const AGENT_BY_SESSION_OR_PANE: &str =
    "SELECT run_id, name FROM agents WHERE session = ?1 OR pane_id = ?2 LIMIT 1";

const OP_STATE_SELECT: &str = "SELECT run_id, restart_attempts, last_restart_at, cooldown_until,
    unhealthy_streak, last_observation_at, healthy_since, last_alert, last_alert_at, last_decision
    FROM operator_run_states";

fn op_state_from_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<(String, OpState)> {
    Ok((
        r.get(0)?,
        OpState {
            restart_attempts: r.get(1)?,
            last_restart_at: r.get(2)?,
            cooldown_until: r.get(3)?,
            unhealthy_streak: r.get(4)?,
            last_observation_at: r.get(5)?,
            healthy_since: r.get(6)?,
            last_alert: r.get(7)?,
            last_alert_at: r.get(8)?,
            last_decision: r.get(9)?,
        },
    ))
}

fn get_llm_call(conn: &Connection, run_id: &str) -> Result<Option<LlmCall>> {
    Ok(conn
        .query_row(
            "SELECT run_id, fingerprint, state, pid, started_at, finished_at, proposal, error, request,
                    reaped, unstarted
             FROM llm_calls WHERE run_id = ?1",
            [run_id],
            llm_call_from_row,
        )
        .optional()?)
}

#[cfg(test)]
mod string_array_tests {
    use super::{plain_string_array, string_array};

    #[test]
    fn plain_arrays_read_as_serde_json_reads_them() {
        let mut texts: Vec<String> = [
            "[]",
            "[\"\"]",
            "[\"a\"]",
            "[\"a\",\"\"]",
            "[\"]\"]",
            "[\"a\",\"b c\",\"é\u{7f}\"]",
            "[ \"a\" ]",
            "[\"a\" ,\"b\"]",
            "[\"a\"\"b\"]",
            "[\"a\\\"b\"]",
            "[\"a\\nb\"]",
            "[\"a\nb\"]",
            "[\"",
            "[\"]",
            "\"a\"",
            "[\"a\"]x",
            "[1]",
            "null",
            "",
            "[\"a\",]",
            "[\"a\",\"b\"",
            "{\"a\":1}",
        ]
        .map(String::from)
        .to_vec();
        // What the store writes: serde_json of arbitrary strings.
        let pieces = [
            "", "a", "\"", "\\", ",", "\",\"", "]", "[", "\n", "\u{1}", "é", " ",
        ];
        for a in pieces {
            for b in pieces {
                texts.push(serde_json::to_string(&[a, b]).expect("json"));
                texts.push(serde_json::to_string(&[format!("x{a}y{b}z")]).expect("json"));
            }
        }
        for t in &texts {
            let want: Option<Vec<String>> = serde_json::from_str(t).ok();
            assert_eq!(string_array(t), want, "{t:?}");
            if let Some(plain) = plain_string_array(t) {
                assert_eq!(Some(plain), want, "{t:?}");
            }
        }
        assert!(plain_string_array("[\"sleep\",\"1000000\"]").is_some());
    }
}
