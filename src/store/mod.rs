//! SQLite state: opening, migrations (`migrations/NNNN_*.sql`), errors by kind. Reads are
//! `Store` methods (read.rs), writes `Tx` methods (write.rs), rows in crate::model::rows. Nothing
//! else touches SQL.

mod read;
mod write;

pub use crate::model::rows::*;
pub use write::Tx;

use crate::lock::{StateLock, Wait};
use rusqlite::config::DbConfig;
use rusqlite::{Connection, OpenFlags, TransactionBehavior};
use std::fmt;
use std::fs;
use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

pub const SCHEMA_VERSION: i64 = MIGRATIONS.len() as i64;
/// `PRAGMA application_id` of our databases ("mwst"): tells ours from other SQLite files.
pub const APPLICATION_ID: i64 = 0x6d77_7374;

/// The schema, one numbered file per version: migration N brings `user_version` from
/// N-1 to N. To change the schema, add the next numbered file and its line below.
const MIGRATIONS: &[&str] = &[
    include_str!("migrations/0001_initial.sql"),
    include_str!("migrations/0002_runs_tmux_socket.sql"),
    include_str!("migrations/0003_llm_calls_reaped.sql"),
    include_str!("migrations/0004_adopted_agents_questions_approvals.sql"),
    include_str!("migrations/0005_runs_policy_path.sql"),
    include_str!("migrations/0006_llm_calls_unstarted.sql"),
    include_str!("migrations/0007_agents_resume.sql"),
    include_str!("migrations/0008_llm_calls_state_index.sql"),
];

/// What went wrong, by kind (from SQLite's result codes, never from message text); the
/// text is for humans.
#[derive(Debug)]
pub enum StoreError {
    /// The file is not a metawsm database (another program's, or not SQLite at all).
    Foreign(String),
    /// A metawsm database from a newer release.
    NewerSchema(String),
    /// Another process holds the database (busy or locked past the busy timeout).
    Busy(String),
    /// The file system: missing, read-only, full, unreadable.
    Io(String),
    Sql(String),
    Transition(String),
    NotFound(String),
}

impl fmt::Display for StoreError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            StoreError::Foreign(m)
            | StoreError::NewerSchema(m)
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
        use rusqlite::ErrorCode as C;
        let m = format!("database: {e}");
        match e.sqlite_error_code() {
            Some(C::DatabaseBusy | C::DatabaseLocked) => StoreError::Busy(m),
            Some(
                C::ReadOnly
                | C::DiskFull
                | C::SystemIoFailure
                | C::CannotOpen
                | C::PermissionDenied,
            ) => StoreError::Io(m),
            Some(C::NotADatabase) => StoreError::Foreign(m),
            _ => StoreError::Sql(m),
        }
    }
}

pub type Result<T> = std::result::Result<T, StoreError>;

/// A failure to read the database header, said as what it is: only SQLite's own
/// "not a database" is a foreign file; a read-only or full file system (SQLite reports
/// "unable to open" or "disk I/O error" for those) is named as such.
fn open_error(path: &Path, e: rusqlite::Error) -> StoreError {
    use nix::sys::statvfs::{statvfs, FsFlags};
    use rusqlite::ErrorCode;
    let code = e.sqlite_error_code();
    if matches!(
        code,
        Some(ErrorCode::NotADatabase | ErrorCode::DatabaseCorrupt)
    ) {
        return StoreError::Foreign(format!(
            "{} is not a metawsm database ({e})",
            path.display()
        ));
    }
    let dir = path
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let fs = statvfs(dir).ok();
    let why = if fs
        .as_ref()
        .is_some_and(|v| v.flags().contains(FsFlags::ST_RDONLY))
    {
        "the file system is read-only"
    } else if code == Some(ErrorCode::DiskFull)
        || fs.as_ref().is_some_and(|v| v.blocks_available() == 0)
    {
        "the file system is full"
    } else if matches!(
        code,
        Some(ErrorCode::ReadOnly | ErrorCode::PermissionDenied)
    ) {
        "no write permission"
    } else {
        "cannot use it"
    };
    StoreError::Io(format!("database {}: {why} ({e})", path.display()))
}

pub struct Store {
    pub conn: Connection,
    pub path: PathBuf,
    /// Rows written to the tables the status line counts, by this connection (see
    /// `status_writes`).
    status_writes: Arc<AtomicU64>,
}

/// The tables `status_rows` reads: a transaction that wrote any of them moves meta
/// `status_gen` as it commits (`Tx::commit`), so status counts made before are not reused.
const STATUS_TABLES: [&str; 5] = [
    "runs",
    "agents",
    "guidance_requests",
    "approvals",
    "operator_run_states",
];

pub enum OpenMode {
    /// Create the file and its directory when missing (commands that register state).
    Create,
    /// Fail with NotFound rather than create (status, hooks: never conjure a DB).
    Existing,
    /// As `Existing`, read-only (listings, `--dry-run`): the connection cannot write,
    /// so it never appends to the WAL nor migrates (an older schema is opened as
    /// `Existing` to migrate it first).
    ReadOnly,
}

/// The WAL is folded into the database (`wal_checkpoint(TRUNCATE)`) when a writer closes
/// and it is larger than this; below it a commit appends to the WAL and syncs nothing.
/// Every process that opens the database first (no other connection) rebuilds the WAL
/// index by reading the whole WAL, so the bound keeps that read small.
pub const WAL_FOLD_BYTES: u64 = 256 * 1024;
/// ... and at least this often while anything is written, which bounds what a power
/// loss can take back (a kill takes nothing back: the WAL is in the page cache).
pub const WAL_FOLD_AGE: Duration = Duration::from_secs(300);

const BUSY_TIMEOUT: Duration = Duration::from_secs(2);
/// How long a fold waits for the write lock and for readers to finish.
const FOLD_WAIT: Duration = Duration::from_millis(100);

/// Process-wide SQLite settings, before anything opens a database (`main`, while the
/// process has one thread; SQLite ignores them once initialised). Memory statistics
/// off: with them on, every allocation SQLite makes takes a mutex to count itself.
pub fn configure_sqlite() {
    // SAFETY: called once, before SQLite is initialised and before any other thread
    // exists; MEMSTATUS takes one int argument.
    unsafe {
        rusqlite::ffi::sqlite3_config(rusqlite::ffi::SQLITE_CONFIG_MEMSTATUS, 0);
    }
}

/// A file beside the database: its name plus `suffix` (SQLite's `-wal`, `-shm`).
pub fn side_path(db: &Path, suffix: &str) -> PathBuf {
    let mut p = db.as_os_str().to_owned();
    p.push(suffix);
    PathBuf::from(p)
}

/// The WAL beside the database (it persists between processes).
pub fn wal_path(db: &Path) -> PathBuf {
    side_path(db, "-wal")
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
            if let OpenMode::Existing | OpenMode::ReadOnly = mode {
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
        let read_only = matches!(mode, OpenMode::ReadOnly);
        let flags = if read_only {
            OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX
        } else {
            OpenFlags::SQLITE_OPEN_READ_WRITE
                | OpenFlags::SQLITE_OPEN_CREATE
                | OpenFlags::SQLITE_OPEN_NO_MUTEX
        };
        let mut conn = Connection::open_with_flags(path, flags)
            .map_err(|e| StoreError::Io(format!("open database {}: {e}", path.display())))?;
        if !exists {
            let _ = fs::set_permissions(path, fs::Permissions::from_mode(0o600));
        }
        conn.busy_timeout(BUSY_TIMEOUT)?;
        // The WAL outlives the process: the last connection to close would otherwise copy
        // it into the database and delete it, with 4 fsyncs, at the end of every tick.
        // A writer folds it when it closes and the WAL is large or old (`Drop`).
        conn.set_db_config(DbConfig::SQLITE_DBCONFIG_NO_CKPT_ON_CLOSE, true)?;
        // Counts every row this connection inserts, updates or deletes in the status
        // tables (rolled back or not: a count too high only costs the query back).
        let status_writes = Arc::new(AtomicU64::new(0));
        let counter = Arc::clone(&status_writes);
        conn.update_hook(Some(
            move |_: rusqlite::hooks::Action, _: &str, table: &str, _: i64| {
                if STATUS_TABLES.contains(&table) {
                    counter.fetch_add(1, Ordering::Relaxed);
                }
            },
        ))?;
        let store = Store {
            conn,
            path: path.to_path_buf(),
            status_writes,
        };
        store.configure()?;
        let version = store.user_version()?;
        if version > SCHEMA_VERSION {
            return Err(StoreError::NewerSchema(format!(
                "database {} has schema version {version}, newer than this metawsm-tick supports ({SCHEMA_VERSION}); upgrade metawsm-tick",
                path.display()
            )));
        }
        if version < SCHEMA_VERSION && read_only {
            drop(store);
            return Store::open(path, OpenMode::Existing, held);
        }
        if version < SCHEMA_VERSION {
            store.migrate(held)?;
        } else {
            let app: i64 = store
                .conn
                .pragma_query_value(None, "application_id", |r| r.get(0))?;
            if app == 0 && store.has_our_tables()? {
                // Written before application_id existed (same schema): claim it.
                if !read_only {
                    let _ = store
                        .conn
                        .pragma_update(None, "application_id", APPLICATION_ID);
                }
            } else if app != APPLICATION_ID {
                return Err(StoreError::Foreign(format!(
                    "{} is an SQLite database that metawsm-tick did not create; refusing to use it",
                    path.display()
                )));
            }
        }
        Ok(store)
    }

    fn configure(&self) -> Result<()> {
        let not_db = |e: rusqlite::Error| open_error(&self.path, e);
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
            .map_err(|e| open_error(&self.path, e))
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
             ('runs','agents','events','operator_run_states','guidance_requests','meta','inbox','llm_calls','approvals','sqlite_sequence')",
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
            return Err(StoreError::Foreign(format!(
                "{} is an SQLite database that metawsm-tick did not create; refusing to modify it",
                self.path.display()
            )));
        }
        self.conn
            .pragma_update(None, "journal_mode", "WAL")
            .map_err(|e| StoreError::Sql(format!("set WAL on {}: {e}", self.path.display())))?;
        let tx = rusqlite::Transaction::new_unchecked(&self.conn, TransactionBehavior::Immediate)?;
        let version: i64 = tx.pragma_query_value(None, "user_version", |r| r.get(0))?;
        for (i, sql) in MIGRATIONS.iter().enumerate() {
            if version <= i as i64 {
                tx.execute_batch(sql)?;
            }
        }
        tx.pragma_update(None, "application_id", APPLICATION_ID)?;
        tx.pragma_update(None, "user_version", SCHEMA_VERSION)?;
        // A migration may change what the status line counts, outside any `Tx`: a status
        // cache stamped before it must not be reused (and a new database starts one).
        tx.execute(write::BUMP_STATUS_GEN, [])?;
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

    /// How many rows of the status tables this connection has written so far (what
    /// `Tx::commit` compares).
    #[cfg(test)]
    pub fn status_writes(&self) -> u64 {
        self.status_writes.load(Ordering::Relaxed)
    }

    pub fn schema_version(&self) -> Result<i64> {
        self.user_version()
    }

    /// Every read-modify-write goes through BEGIN IMMEDIATE: a deferred transaction
    /// that upgrades to a write fails at once under contention, busy_timeout or not.
    pub fn write(&mut self) -> Result<Tx<'_>> {
        let status_writes = Arc::clone(&self.status_writes);
        let at_begin = status_writes.load(Ordering::Relaxed);
        Ok(Tx {
            tx: self
                .conn
                .transaction_with_behavior(TransactionBehavior::Immediate)?,
            status_writes,
            at_begin,
        })
    }

    /// Fold the WAL into the database file (`wal_checkpoint(TRUNCATE)`: copy the
    /// committed pages, sync the database, empty the WAL) when it is larger than
    /// `WAL_FOLD_BYTES` or older than `WAL_FOLD_AGE` (the database file is written only
    /// by a fold, so its mtime is the last one). 2 fsyncs, and 1 for the next commit's
    /// new WAL header; a commit in between syncs nothing. TRUNCATE, not PASSIVE: a
    /// checkpointed WAL left in place is read again, and copied again, by the next
    /// process (the first connection rebuilds the WAL index and forgets what was
    /// checkpointed). It waits at most `FOLD_WAIT` for readers to finish; readers
    /// never wait for it. Returns whether it folded.
    fn fold_wal_if_due(&self) -> Result<bool> {
        let Ok(wal) = fs::metadata(wal_path(&self.path)) else {
            return Ok(false);
        };
        let old = || {
            fs::metadata(&self.path)
                .and_then(|m| m.modified())
                .ok()
                .and_then(|t| t.elapsed().ok())
                .is_some_and(|age| age >= WAL_FOLD_AGE)
        };
        if wal.len() == 0 || (wal.len() <= WAL_FOLD_BYTES && !old()) {
            return Ok(false);
        }
        // It holds the write lock while it waits for readers: wait briefly, so that no
        // writer waits long for it; a fold cut short is done by a later writer.
        self.conn.busy_timeout(FOLD_WAIT)?;
        let busy = self
            .conn
            .query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |r| {
                r.get::<_, i64>(0)
            });
        self.conn.busy_timeout(BUSY_TIMEOUT)?;
        Ok(busy? == 0)
    }
}

impl Store {
    /// The end of a process's work with the database: folds the WAL when due, as `Drop`
    /// does, then leaves the connection for the process's exit to close. Closing it
    /// writes nothing (no checkpoint on close: see `open`); it only frees the schema and
    /// the cached statements, 0.25 M instructions at the end of every tick. What is
    /// committed is in the WAL already, as after a kill. Only for a process about to
    /// end: the connection's memory and files stay until then.
    pub fn leave(self) {
        if self.conn.total_changes() > 0 {
            let _ = self.fold_wal_if_due();
        }
        std::mem::forget(self);
    }
}

/// Closing replaces SQLite's close-time checkpoint (disabled at open): a connection that
/// changed rows folds the WAL when it is due; readers (the status path, listings)
/// never do.
impl Drop for Store {
    fn drop(&mut self) {
        if self.conn.total_changes() > 0 {
            let _ = self.fold_wal_if_due();
        }
    }
}

#[cfg(test)]
mod tests;
