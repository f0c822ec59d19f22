//! SQLite state: schema, migrations, and every query. Nothing else touches SQL.

use crate::lock::{StateLock, Wait};
use crate::model::{AgentSignal, Health, RunStatus};
use rusqlite::{
    params, Connection, OpenFlags, OptionalExtension, Transaction, TransactionBehavior,
};
use std::collections::HashMap;
use std::fmt;
use std::fs;
use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::time::Duration;

pub const SCHEMA_VERSION: i64 = 2;
/// `PRAGMA application_id` of our databases ("mwst"): tells ours from other SQLite files.
pub const APPLICATION_ID: i64 = 0x6d77_7374;

const MIGRATION_1: &str = "
CREATE TABLE IF NOT EXISTS runs (
    id TEXT PRIMARY KEY,
    tickets TEXT NOT NULL,
    workspace TEXT NOT NULL,
    doc_home_repo TEXT,
    ticket_dir TEXT,
    status TEXT NOT NULL,
    message TEXT NOT NULL DEFAULT '',
    created_at INTEGER NOT NULL,
    updated_at INTEGER NOT NULL,
    status_changed_at INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS agents (
    run_id TEXT NOT NULL REFERENCES runs(id) ON DELETE CASCADE,
    name TEXT NOT NULL,
    session TEXT NOT NULL UNIQUE,
    argv TEXT NOT NULL,
    workdir TEXT NOT NULL,
    status TEXT NOT NULL,
    health TEXT NOT NULL,
    last_activity_at INTEGER,
    last_progress_at INTEGER,
    exit_status INTEGER,
    exit_signal INTEGER,
    pane_id TEXT,
    started_at INTEGER NOT NULL,
    signal TEXT,
    signal_at INTEGER,
    updated_at INTEGER NOT NULL,
    PRIMARY KEY (run_id, name)
);
CREATE INDEX IF NOT EXISTS agents_pane ON agents(pane_id);
CREATE TABLE IF NOT EXISTS events (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    at INTEGER NOT NULL,
    run_id TEXT,
    agent TEXT,
    kind TEXT NOT NULL,
    from_state TEXT NOT NULL DEFAULT '',
    to_state TEXT NOT NULL DEFAULT '',
    message TEXT NOT NULL DEFAULT '',
    source TEXT NOT NULL DEFAULT 'rule'
);
CREATE INDEX IF NOT EXISTS events_run ON events(run_id, id);
CREATE TABLE IF NOT EXISTS operator_run_states (
    run_id TEXT PRIMARY KEY REFERENCES runs(id) ON DELETE CASCADE,
    restart_attempts INTEGER NOT NULL DEFAULT 0,
    last_restart_at INTEGER,
    cooldown_until INTEGER,
    unhealthy_streak INTEGER NOT NULL DEFAULT 0,
    last_observation_at INTEGER,
    healthy_since INTEGER,
    last_alert TEXT,
    last_alert_at INTEGER,
    last_decision TEXT,
    updated_at INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS guidance_requests (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    run_id TEXT NOT NULL REFERENCES runs(id) ON DELETE CASCADE,
    agent TEXT NOT NULL,
    root TEXT NOT NULL,
    question TEXT NOT NULL,
    context TEXT NOT NULL DEFAULT '',
    answer TEXT NOT NULL DEFAULT '',
    status TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    answered_at INTEGER
);
CREATE TABLE IF NOT EXISTS meta (
    key TEXT PRIMARY KEY,
    value TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS inbox (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    at INTEGER NOT NULL,
    event TEXT NOT NULL,
    run_id TEXT,
    args TEXT NOT NULL DEFAULT ''
);
CREATE TABLE IF NOT EXISTS llm_calls (
    run_id TEXT PRIMARY KEY REFERENCES runs(id) ON DELETE CASCADE,
    fingerprint TEXT NOT NULL,
    state TEXT NOT NULL,
    pid INTEGER,
    started_at INTEGER NOT NULL,
    finished_at INTEGER,
    request TEXT NOT NULL DEFAULT '',
    proposal TEXT,
    error TEXT
);
";

#[derive(Debug)]
pub enum StoreError {
    /// The file is there but is not ours, or is from a newer release.
    Incompatible(String),
    Busy(String),
    Io(String),
    Sql(String),
    Transition(String),
    NotFound(String),
}

impl fmt::Display for StoreError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            StoreError::Incompatible(m)
            | StoreError::Busy(m)
            | StoreError::Io(m)
            | StoreError::Sql(m)
            | StoreError::Transition(m)
            | StoreError::NotFound(m) => f.write_str(m),
        }
    }
}

impl std::error::Error for StoreError {}

impl From<rusqlite::Error> for StoreError {
    fn from(e: rusqlite::Error) -> Self {
        StoreError::Sql(format!("database: {e}"))
    }
}

pub type Result<T> = std::result::Result<T, StoreError>;

#[derive(Debug, Clone, PartialEq)]
pub struct RunRow {
    pub id: String,
    pub tickets: Vec<String>,
    pub workspace: String,
    pub doc_home_repo: Option<String>,
    pub ticket_dir: Option<String>,
    /// The tmux server (its `#{socket_path}`) the run's agents live on.
    pub tmux_socket: Option<String>,
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
}

#[derive(Debug, Clone, PartialEq)]
pub struct LlmCall {
    pub run_id: String,
    pub fingerprint: String,
    pub state: String,
    pub pid: Option<i64>,
    pub started_at: i64,
    pub finished_at: Option<i64>,
    pub proposal: Option<String>,
    pub error: Option<String>,
    /// The context JSON the tick prepared for the worker.
    pub request: String,
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

pub struct Store {
    pub conn: Connection,
    pub path: PathBuf,
}

pub enum OpenMode {
    /// Create the file and its directory when missing (commands that register state).
    Create,
    /// Fail with NotFound rather than create (status, hooks: never conjure a DB).
    Existing,
}

/// Create the state directory (0700) if it does not exist.
pub fn ensure_state_dir(db: &Path) -> Result<()> {
    let Some(dir) = db.parent().filter(|d| !d.as_os_str().is_empty()) else {
        return Ok(());
    };
    if dir.is_dir() {
        return Ok(());
    }
    fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .map_err(|e| StoreError::Io(format!("create state dir {}: {e}", dir.display())))
}

impl Store {
    /// Open (and migrate) the database. `held` says whether the caller already holds the
    /// state lock; migrations always run under it.
    pub fn open(path: &Path, mode: OpenMode, held: bool) -> Result<Store> {
        let exists = path.exists();
        if !exists {
            if let OpenMode::Existing = mode {
                return Err(StoreError::NotFound(format!(
                    "database {} does not exist",
                    path.display()
                )));
            }
            ensure_state_dir(path)?;
        }
        if path.is_dir() {
            return Err(StoreError::Io(format!(
                "database {} is a directory",
                path.display()
            )));
        }
        let flags = OpenFlags::SQLITE_OPEN_READ_WRITE
            | OpenFlags::SQLITE_OPEN_CREATE
            | OpenFlags::SQLITE_OPEN_NO_MUTEX;
        let conn = Connection::open_with_flags(path, flags)
            .map_err(|e| StoreError::Io(format!("open database {}: {e}", path.display())))?;
        if !exists {
            let _ = fs::set_permissions(path, fs::Permissions::from_mode(0o600));
        }
        conn.busy_timeout(Duration::from_secs(2))?;
        let store = Store {
            conn,
            path: path.to_path_buf(),
        };
        store.configure()?;
        let version = store.user_version()?;
        if version > SCHEMA_VERSION {
            return Err(StoreError::Incompatible(format!(
                "database {} has schema version {version}, newer than this metawsm-tick supports ({SCHEMA_VERSION}); upgrade metawsm-tick",
                path.display()
            )));
        }
        if version < SCHEMA_VERSION {
            store.migrate(held)?;
        } else {
            let app: i64 = store
                .conn
                .pragma_query_value(None, "application_id", |r| r.get(0))?;
            if app == 0 && store.has_our_tables()? {
                // Written before application_id existed (same schema): claim it.
                let _ = store
                    .conn
                    .pragma_update(None, "application_id", APPLICATION_ID);
            } else if app != APPLICATION_ID {
                return Err(StoreError::Incompatible(format!(
                    "{} is an SQLite database that metawsm-tick did not create; refusing to use it",
                    path.display()
                )));
            }
        }
        Ok(store)
    }

    fn configure(&self) -> Result<()> {
        let not_db = |e: rusqlite::Error| {
            StoreError::Incompatible(format!(
                "{} is not a metawsm database ({e})",
                self.path.display()
            ))
        };
        self.conn
            .pragma_update(None, "synchronous", "NORMAL")
            .map_err(not_db)?;
        self.conn
            .pragma_update(None, "foreign_keys", "ON")
            .map_err(not_db)?;
        Ok(())
    }

    fn user_version(&self) -> Result<i64> {
        self.conn
            .pragma_query_value(None, "user_version", |r| r.get(0))
            .map_err(|e| {
                StoreError::Incompatible(format!(
                    "{} is not a metawsm database ({e})",
                    self.path.display()
                ))
            })
    }

    fn migrate(&self, held: bool) -> Result<()> {
        // Fresh-DB init raced in 2/400 trials without the flock (journal_mode switch and
        // schema creation skip the busy handler), so migrations always hold it.
        let _guard = if held {
            None
        } else {
            match StateLock::acquire(&self.path, Wait::Bounded(Duration::from_secs(5))) {
                Ok(Some(g)) => Some(g),
                Ok(None) => {
                    return Err(StoreError::Busy(format!(
                        "database {} is being initialised by another process",
                        self.path.display()
                    )))
                }
                Err(e) => return Err(StoreError::Io(e.to_string())),
            }
        };
        let foreign: i64 = self.conn.query_row(
            "SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name NOT IN
             ('runs','agents','events','operator_run_states','guidance_requests','meta','inbox','llm_calls','sqlite_sequence')",
            [],
            |r| r.get(0),
        )?;
        let version = self.user_version()?;
        let app: i64 = self
            .conn
            .pragma_query_value(None, "application_id", |r| r.get(0))?;
        // An empty file is ours to create; an older one of ours (our tables, our id or
        // none yet) is ours to migrate; anything else is left exactly as it is.
        let ours = if version == 0 {
            foreign == 0
        } else {
            foreign == 0 && (app == APPLICATION_ID || app == 0) && self.has_our_tables()?
        };
        if !ours {
            return Err(StoreError::Incompatible(format!(
                "{} is an SQLite database that metawsm-tick did not create; refusing to modify it",
                self.path.display()
            )));
        }
        self.conn
            .pragma_update(None, "journal_mode", "WAL")
            .map_err(|e| StoreError::Sql(format!("set WAL on {}: {e}", self.path.display())))?;
        let tx = rusqlite::Transaction::new_unchecked(&self.conn, TransactionBehavior::Immediate)?;
        let version: i64 = tx.pragma_query_value(None, "user_version", |r| r.get(0))?;
        if version < 1 {
            tx.execute_batch(MIGRATION_1)?;
        }
        if version < 2 {
            // Runs remember their tmux server (several servers may share one database).
            tx.execute_batch("ALTER TABLE runs ADD COLUMN tmux_socket TEXT;")?;
        }
        tx.pragma_update(None, "application_id", APPLICATION_ID)?;
        tx.pragma_update(None, "user_version", SCHEMA_VERSION)?;
        tx.commit()?;
        Ok(())
    }

    fn has_our_tables(&self) -> Result<bool> {
        let n: i64 = self.conn.query_row(
            "SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name IN
             ('runs','agents','events','operator_run_states','guidance_requests','meta','inbox','llm_calls')",
            [],
            |r| r.get(0),
        )?;
        Ok(n == 8)
    }

    pub fn schema_version(&self) -> Result<i64> {
        self.user_version()
    }

    /// Every read-modify-write goes through BEGIN IMMEDIATE: a deferred transaction
    /// that upgrades to a write fails at once under contention, busy_timeout or not.
    pub fn write(&mut self) -> Result<Transaction<'_>> {
        Ok(self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)?)
    }

    // ---- meta -------------------------------------------------------------------

    pub fn meta_get(&self, key: &str) -> Result<Option<String>> {
        Ok(self
            .conn
            .query_row("SELECT value FROM meta WHERE key = ?1", [key], |r| r.get(0))
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

    pub fn runs(&self, all: bool) -> Result<Vec<RunRow>> {
        let mut stmt = self.conn.prepare_cached(
            "SELECT id, tickets, workspace, doc_home_repo, ticket_dir, status, message,
                    created_at, updated_at, status_changed_at, tmux_socket FROM runs
             ORDER BY created_at, id",
        )?;
        let rows = stmt.query_map([], run_from_row)?;
        let mut out = Vec::new();
        for r in rows {
            let r = r?;
            if all || r.status.is_active() {
                out.push(r);
            }
        }
        Ok(out)
    }

    pub fn run(&self, id: &str) -> Result<RunRow> {
        self.conn
            .query_row(
                "SELECT id, tickets, workspace, doc_home_repo, ticket_dir, status, message,
                        created_at, updated_at, status_changed_at, tmux_socket FROM runs
                 WHERE id = ?1",
                [id],
                run_from_row,
            )
            .optional()?
            .ok_or_else(|| StoreError::NotFound(format!("run {id} not found")))
    }

    pub fn agents(&self, run_id: Option<&str>) -> Result<Vec<AgentRow>> {
        let sql = "SELECT run_id, name, session, argv, workdir, status, health, last_activity_at,
                          last_progress_at, exit_status, exit_signal, pane_id, started_at, signal,
                          signal_at FROM agents";
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

    /// Which agent owns this session or pane (the hook fast path).
    pub fn agent_by_session_or_pane(
        &self,
        session: Option<&str>,
        pane: Option<&str>,
    ) -> Result<Option<(String, String)>> {
        Ok(self
            .conn
            .query_row(
                "SELECT run_id, name FROM agents WHERE session = ?1 OR pane_id = ?2 LIMIT 1",
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

    pub fn pending_guidance(&self, run_id: &str) -> Result<Vec<GuidanceRow>> {
        let mut stmt = self.conn.prepare_cached(
            "SELECT id, run_id, agent, root, question, context, created_at FROM guidance_requests
             WHERE run_id = ?1 AND status = 'pending' ORDER BY id",
        )?;
        let rows = stmt.query_map([run_id], guidance_from_row)?;
        let out = rows.collect::<rusqlite::Result<Vec<_>>>()?;
        Ok(out)
    }

    pub fn events(&self, run_id: Option<&str>, limit: i64) -> Result<Vec<EventRow>> {
        let mut stmt = self.conn.prepare_cached(
            "SELECT id, at, run_id, agent, kind, from_state, to_state, message, source FROM events
             WHERE (?1 IS NULL OR run_id = ?1) ORDER BY id DESC LIMIT ?2",
        )?;
        let rows = stmt.query_map(params![run_id, limit], |r| {
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

    pub fn llm_call(&self, run_id: &str) -> Result<Option<LlmCall>> {
        get_llm_call(&self.conn, run_id)
    }

    pub fn op_states(&self) -> Result<HashMap<String, OpState>> {
        let mut stmt = self.conn.prepare_cached(OP_STATE_SELECT)?;
        let mut out = HashMap::new();
        for r in stmt.query_map([], op_state_from_row)? {
            let (id, s) = r?;
            out.insert(id, s);
        }
        Ok(out)
    }

    pub fn all_pending_guidance(&self) -> Result<HashMap<String, Vec<GuidanceRow>>> {
        let mut stmt = self.conn.prepare_cached(
            "SELECT id, run_id, agent, root, question, context, created_at FROM guidance_requests
             WHERE status = 'pending' ORDER BY id",
        )?;
        let rows = stmt.query_map([], guidance_from_row)?;
        let mut out: HashMap<String, Vec<GuidanceRow>> = HashMap::new();
        for r in rows {
            let r = r?;
            out.entry(r.run_id.clone()).or_default().push(r);
        }
        Ok(out)
    }

    pub fn llm_calls(&self) -> Result<HashMap<String, LlmCall>> {
        let mut stmt = self.conn.prepare_cached(
            "SELECT run_id, fingerprint, state, pid, started_at, finished_at, proposal, error, request
             FROM llm_calls",
        )?;
        let rows = stmt.query_map([], llm_call_from_row)?;
        let mut out = HashMap::new();
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
                    COALESCE(a.done, 0), COALESCE(a.n, 0), o.last_alert
             FROM runs r
             LEFT JOIN a ON a.run_id = r.id
             LEFT JOIN g ON g.run_id = r.id
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
    })
}

fn llm_call_from_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<LlmCall> {
    Ok(LlmCall {
        run_id: r.get(0)?,
        fingerprint: r.get(1)?,
        state: r.get(2)?,
        pid: r.get(3)?,
        started_at: r.get(4)?,
        finished_at: r.get(5)?,
        proposal: r.get(6)?,
        error: r.get(7)?,
        request: r.get(8)?,
    })
}

fn run_from_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<RunRow> {
    let tickets: String = r.get(1)?;
    let status: String = r.get(5)?;
    Ok(RunRow {
        id: r.get(0)?,
        tickets: serde_json::from_str(&tickets).unwrap_or_default(),
        workspace: r.get(2)?,
        doc_home_repo: r.get(3)?,
        ticket_dir: r.get(4)?,
        status: status.parse().unwrap_or(RunStatus::Failed),
        message: r.get(6)?,
        created_at: r.get(7)?,
        updated_at: r.get(8)?,
        status_changed_at: r.get(9)?,
        tmux_socket: r.get(10)?,
    })
}

fn agent_from_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<AgentRow> {
    let argv: String = r.get(3)?;
    let health: String = r.get(6)?;
    let signal: Option<String> = r.get(13)?;
    Ok(AgentRow {
        run_id: r.get(0)?,
        name: r.get(1)?,
        session: r.get(2)?,
        argv: serde_json::from_str(&argv).unwrap_or_default(),
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
    })
}

fn get_op_state(conn: &Connection, run_id: &str) -> Result<OpState> {
    Ok(conn
        .query_row(
            &format!("{OP_STATE_SELECT} WHERE run_id = ?1"),
            [run_id],
            |r| Ok(op_state_from_row(r)?.1),
        )
        .optional()?
        .unwrap_or_default())
}

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
            "SELECT run_id, fingerprint, state, pid, started_at, finished_at, proposal, error, request
             FROM llm_calls WHERE run_id = ?1",
            [run_id],
            llm_call_from_row,
        )
        .optional()?)
}

// ---- writes inside a transaction ------------------------------------------------------

pub fn add_event(tx: &Connection, now: i64, e: &NewEvent<'_>) -> Result<()> {
    tx.execute(
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

/// The latest event of `kind` for the run whose message starts with `prefix`.
pub fn last_event_for(
    tx: &Connection,
    run_id: &str,
    kind: &str,
    prefix: &str,
) -> Result<Option<String>> {
    Ok(tx
        .query_row(
            "SELECT message FROM events WHERE run_id = ?1 AND kind = ?2
             AND substr(message, 1, length(?3)) = ?3 ORDER BY id DESC LIMIT 1",
            params![run_id, kind, prefix],
            |r| r.get(0),
        )
        .optional()?)
}

pub fn meta_set(tx: &Connection, key: &str, value: &str) -> Result<()> {
    tx.execute(
        "INSERT INTO meta(key, value) VALUES (?1, ?2)
         ON CONFLICT(key) DO UPDATE SET value = excluded.value",
        params![key, value],
    )?;
    Ok(())
}

pub fn insert_run(tx: &Connection, run: &RunRow) -> Result<()> {
    let tickets = serde_json::to_string(&run.tickets).unwrap_or_else(|_| "[]".into());
    let n = tx.execute(
        "INSERT OR IGNORE INTO runs(id, tickets, workspace, doc_home_repo, ticket_dir, status, message,
                          created_at, updated_at, status_changed_at, tmux_socket)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)",
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
            run.tmux_socket
        ],
    )?;
    if n == 0 {
        return Err(StoreError::Transition(format!(
            "run {} already exists",
            run.id
        )));
    }
    tx.execute(
        "INSERT OR IGNORE INTO operator_run_states(run_id, updated_at) VALUES (?1, ?2)",
        params![run.id, run.created_at],
    )?;
    Ok(())
}

pub fn insert_agent(tx: &Connection, a: &AgentRow, now: i64) -> Result<()> {
    let argv = serde_json::to_string(&a.argv).unwrap_or_else(|_| "[]".into());
    tx.execute(
        "INSERT INTO agents(run_id, name, session, argv, workdir, status, health, last_activity_at,
                            last_progress_at, exit_status, exit_signal, pane_id, started_at, signal,
                            signal_at, updated_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, NULL, NULL, ?10, ?11, NULL, NULL, ?12)",
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
            now
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
    tx: &Connection,
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
    let n = tx.execute(
        "UPDATE runs SET status = ?1, message = ?2, updated_at = ?3,
                status_changed_at = CASE WHEN status = ?1 THEN status_changed_at ELSE ?3 END
         WHERE id = ?4 AND status = ?5",
        params![to.as_str(), message, now, run_id, from.as_str()],
    )?;
    if n == 0 {
        let current: Option<String> = tx
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
        add_event(
            tx,
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

pub fn update_agent(
    tx: &Connection,
    run_id: &str,
    name: &str,
    u: &AgentUpdate,
    now: i64,
) -> Result<()> {
    tx.execute(
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
pub fn mark_agent_started(tx: &Connection, run_id: &str, name: &str, now: i64) -> Result<()> {
    tx.execute(
        "UPDATE agents SET status = 'running', health = 'healthy', last_activity_at = ?1,
                last_progress_at = ?1, exit_status = NULL, exit_signal = NULL, pane_id = NULL,
                started_at = ?1, signal = NULL, signal_at = ?1, updated_at = ?1
         WHERE run_id = ?2 AND name = ?3",
        params![now, run_id, name],
    )?;
    Ok(())
}

pub fn mark_agent_stopped(tx: &Connection, run_id: &str, name: &str, now: i64) -> Result<()> {
    tx.execute(
        "UPDATE agents SET status = 'stopped', health = 'dead', pane_id = NULL, updated_at = ?1
         WHERE run_id = ?2 AND name = ?3",
        params![now, run_id, name],
    )?;
    Ok(())
}

pub fn set_agent_signal(
    tx: &Connection,
    run_id: &str,
    name: &str,
    signal: AgentSignal,
    at: i64,
) -> Result<()> {
    // A queued (older) report never overwrites a newer one.
    tx.execute(
        "UPDATE agents SET signal = ?1, signal_at = ?2, updated_at = ?2
         WHERE run_id = ?3 AND name = ?4 AND (signal_at IS NULL OR signal_at <= ?2)",
        params![signal.as_str(), at, run_id, name],
    )?;
    Ok(())
}

pub fn put_op_state(tx: &Connection, run_id: &str, s: &OpState, now: i64) -> Result<()> {
    tx.execute(
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

pub fn op_state_tx(tx: &Connection, run_id: &str) -> Result<OpState> {
    get_op_state(tx, run_id)
}

/// Records a guidance request unless the same (agent, question) is already pending.
pub fn add_guidance(
    tx: &Connection,
    run_id: &str,
    agent: &str,
    root: &str,
    question: &str,
    context: &str,
    now: i64,
) -> Result<Option<i64>> {
    let exists = tx
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
    tx.execute(
        "INSERT INTO guidance_requests(run_id, agent, root, question, context, status, created_at)
         VALUES (?1, ?2, ?3, ?4, ?5, 'pending', ?6)",
        params![run_id, agent, root, question, context, now],
    )?;
    Ok(Some(tx.last_insert_rowid()))
}

pub fn answer_guidance(tx: &Connection, id: i64, answer: &str, now: i64) -> Result<()> {
    tx.execute(
        "UPDATE guidance_requests SET status = 'answered', answer = ?1, answered_at = ?2 WHERE id = ?3",
        params![answer, now, id],
    )?;
    Ok(())
}

pub fn inbox_drain(tx: &Connection) -> Result<Vec<InboxRow>> {
    let mut stmt =
        tx.prepare_cached("SELECT id, at, event, run_id, args FROM inbox ORDER BY id")?;
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
        tx.execute("DELETE FROM inbox WHERE id <= ?1", [last.id])?;
    }
    Ok(out)
}

pub fn delete_run(tx: &Connection, run_id: &str) -> Result<()> {
    tx.execute("DELETE FROM events WHERE run_id = ?1", [run_id])?;
    tx.execute("DELETE FROM runs WHERE id = ?1", [run_id])?;
    Ok(())
}

pub fn llm_call_start(
    tx: &Connection,
    run_id: &str,
    fingerprint: &str,
    request: &str,
    now: i64,
) -> Result<()> {
    tx.execute(
        "INSERT INTO llm_calls(run_id, fingerprint, state, pid, started_at, finished_at, request, proposal, error)
         VALUES (?1, ?2, 'in_flight', NULL, ?3, NULL, ?4, NULL, NULL)
         ON CONFLICT(run_id) DO UPDATE SET fingerprint = excluded.fingerprint, state = 'in_flight',
                pid = NULL, started_at = excluded.started_at, finished_at = NULL,
                request = excluded.request, proposal = NULL, error = NULL",
        params![run_id, fingerprint, now, request],
    )?;
    Ok(())
}

pub fn llm_call_set_pid(conn: &Connection, run_id: &str, pid: i64) -> Result<()> {
    conn.execute(
        "UPDATE llm_calls SET pid = ?1 WHERE run_id = ?2 AND state = 'in_flight'",
        params![pid, run_id],
    )?;
    Ok(())
}

/// The worker's result; only lands if the call it belongs to is still the current one.
pub fn llm_call_finish(
    tx: &Connection,
    run_id: &str,
    fingerprint: &str,
    proposal: Option<&str>,
    error: Option<&str>,
    now: i64,
) -> Result<bool> {
    let n = tx.execute(
        "UPDATE llm_calls SET state = ?1, finished_at = ?2, proposal = ?3, error = ?4
         WHERE run_id = ?5 AND fingerprint = ?6 AND state = 'in_flight'",
        params![
            if error.is_some() { "error" } else { "done" },
            now,
            proposal,
            error,
            run_id,
            fingerprint
        ],
    )?;
    Ok(n > 0)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn temp_store() -> (tempfile::TempDir, Store) {
        let dir = tempfile::tempdir().expect("tempdir");
        let store =
            Store::open(&dir.path().join("s/state.db"), OpenMode::Create, false).expect("open");
        (dir, store)
    }

    fn run(id: &str, status: RunStatus) -> RunRow {
        RunRow {
            id: id.into(),
            tickets: vec!["T-1".into()],
            workspace: "/tmp/ws".into(),
            doc_home_repo: None,
            ticket_dir: None,
            tmux_socket: None,
            status,
            message: String::new(),
            created_at: 10,
            updated_at: 10,
            status_changed_at: 10,
        }
    }

    #[test]
    fn creates_private_dir_and_file_and_sets_version() {
        let (dir, store) = temp_store();
        let meta = fs::metadata(dir.path().join("s")).expect("dir");
        assert_eq!(meta.permissions().mode() & 0o777, 0o700);
        let meta = fs::metadata(dir.path().join("s/state.db")).expect("db");
        assert_eq!(meta.permissions().mode() & 0o777, 0o600);
        assert_eq!(store.schema_version().expect("v"), SCHEMA_VERSION);
        let mode: String = store
            .conn
            .query_row("PRAGMA journal_mode", [], |r| r.get(0))
            .expect("mode");
        assert_eq!(mode, "wal");
    }

    #[test]
    fn transitions_are_compare_and_swap() {
        let (_d, mut store) = temp_store();
        let tx = store.write().expect("tx");
        insert_run(&tx, &run("r1", RunStatus::Running)).expect("insert");
        transition_run(
            &tx,
            "r1",
            RunStatus::Running,
            RunStatus::Stopping,
            "stop",
            20,
            "cli",
        )
        .expect("ok");
        let err = transition_run(
            &tx,
            "r1",
            RunStatus::Running,
            RunStatus::Stopping,
            "x",
            21,
            "cli",
        )
        .expect_err("stale from");
        assert!(
            err.to_string().contains("is stopping, not running"),
            "{err}"
        );
        let err = transition_run(
            &tx,
            "r1",
            RunStatus::Stopping,
            RunStatus::Completed,
            "x",
            21,
            "cli",
        )
        .expect_err("illegal");
        assert_eq!(
            err.to_string(),
            "illegal run transition stopping -> completed for run r1"
        );
        tx.commit().expect("commit");
        assert_eq!(store.run("r1").expect("run").status, RunStatus::Stopping);
    }

    #[test]
    fn refuses_newer_schema_and_foreign_files_without_touching_them() {
        let dir = tempfile::tempdir().expect("tempdir");
        let newer = dir.path().join("newer.db");
        {
            let c = Connection::open(&newer).expect("open");
            c.pragma_update(None, "user_version", 99).expect("v");
        }
        let before = fs::read(&newer).expect("read");
        let err = Store::open(&newer, OpenMode::Create, false)
            .err()
            .expect("must fail");
        assert!(err.to_string().contains("schema version 99"), "{err}");
        assert_eq!(fs::read(&newer).expect("read"), before);

        let junk = dir.path().join("junk.db");
        fs::write(
            &junk,
            b"this is not a database, just text padding padding padding",
        )
        .expect("w");
        let before = fs::read(&junk).expect("read");
        let err = Store::open(&junk, OpenMode::Create, false)
            .err()
            .expect("must fail");
        assert!(
            err.to_string().contains("is not a metawsm database"),
            "{err}"
        );
        assert_eq!(fs::read(&junk).expect("read"), before);

        let other = dir.path().join("other.db");
        {
            let c = Connection::open(&other).expect("open");
            c.execute_batch("CREATE TABLE notes(x TEXT);")
                .expect("create");
        }
        let err = Store::open(&other, OpenMode::Create, false)
            .err()
            .expect("must fail");
        assert!(err.to_string().contains("did not create"), "{err}");

        // Another application's file that happens to use user_version 1.
        let same_version = dir.path().join("same.db");
        {
            let c = Connection::open(&same_version).expect("open");
            c.execute_batch("CREATE TABLE notes(x TEXT); PRAGMA user_version = 1;")
                .expect("create");
        }
        let before = fs::read(&same_version).expect("read");
        let err = Store::open(&same_version, OpenMode::Create, false)
            .err()
            .expect("must fail");
        assert!(err.to_string().contains("did not create"), "{err}");
        assert_eq!(fs::read(&same_version).expect("read"), before);
    }

    #[test]
    fn migrates_a_version_1_database() {
        let dir = tempfile::tempdir().expect("tempdir");
        let p = dir.path().join("v1.db");
        {
            let c = Connection::open(&p).expect("open");
            c.execute_batch(MIGRATION_1).expect("v1 schema");
            c.execute_batch(
                "INSERT INTO runs(id, tickets, workspace, status, created_at, updated_at, status_changed_at)
                 VALUES ('old', '[\"T\"]', '/w', 'running', 1, 1, 1);
                 PRAGMA user_version = 1;",
            )
            .expect("v1 row");
        }
        let s = Store::open(&p, OpenMode::Existing, false).expect("migrated");
        assert_eq!(s.schema_version().expect("v"), SCHEMA_VERSION);
        let r = s.run("old").expect("row kept");
        assert_eq!((r.tickets, r.tmux_socket), (vec!["T".to_string()], None));
        let app: i64 = s
            .conn
            .pragma_query_value(None, "application_id", |r| r.get(0))
            .expect("app id");
        assert_eq!(app, APPLICATION_ID);
    }

    #[test]
    fn existing_mode_never_creates() {
        let dir = tempfile::tempdir().expect("tempdir");
        let p = dir.path().join("nope/state.db");
        assert!(matches!(
            Store::open(&p, OpenMode::Existing, false),
            Err(StoreError::NotFound(_))
        ));
        assert!(!p.exists());
    }

    #[test]
    fn reopen_keeps_everything() {
        let dir = tempfile::tempdir().expect("tempdir");
        let p = dir.path().join("state.db");
        {
            let mut s = Store::open(&p, OpenMode::Create, false).expect("open");
            let tx = s.write().expect("tx");
            insert_run(&tx, &run("r1", RunStatus::Running)).expect("insert");
            let st = OpState {
                restart_attempts: 2,
                last_restart_at: Some(100),
                cooldown_until: Some(160),
                unhealthy_streak: 1,
                ..Default::default()
            };
            put_op_state(&tx, "r1", &st, 100).expect("put");
            add_guidance(&tx, "r1", "a", "/r", "why?", "", 100).expect("g");
            assert_eq!(
                add_guidance(&tx, "r1", "a", "/r", "why?", "", 101).expect("g"),
                None
            );
            tx.commit().expect("commit");
        }
        let s = Store::open(&p, OpenMode::Existing, false).expect("reopen");
        assert_eq!(s.run("r1").expect("run").tickets, vec!["T-1".to_string()]);
        let st = s.op_state("r1").expect("state");
        assert_eq!((st.restart_attempts, st.cooldown_until), (2, Some(160)));
        assert_eq!(s.pending_guidance("r1").expect("g").len(), 1);
    }
}
