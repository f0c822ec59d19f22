//! `<db>.status`: what the status line needs, written after every tick and mutation, so
//! the cached path never opens SQLite (process start alone is half of its 2 ms budget).

use crate::model::rows::{ApprovalStatus, StatusRow};
use crate::model::FastMap;
use crate::model::{AgentSignal, Health};
use crate::render::Counts;
use crate::store::{AgentRow, ApprovalRow, GuidanceRow, OpState, RunRow, Store, StoreError};
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::fs;
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct StatusCache {
    pub last_full_tick: i64,
    pub tick_interval: Option<i64>,
    pub ok: i64,
    pub guidance: i64,
    pub blocked: i64,
    pub done: i64,
    #[serde(default)]
    pub orphaned: i64,
    #[serde(default)]
    pub approval: i64,
    pub tmux_options: HashMap<String, String>,
    pub tmux_error: String,
    /// Runs whose escalation could not be written to a changelog.
    #[serde(default)]
    pub unwritten: i64,
}

impl StatusCache {
    pub fn counts(&self) -> Counts {
        Counts {
            ok: self.ok,
            guidance: self.guidance,
            blocked: self.blocked,
            done: self.done,
            orphaned: self.orphaned,
            approval: self.approval,
        }
    }
}

pub fn path(db: &Path) -> PathBuf {
    let mut s = db.as_os_str().to_owned();
    s.push(".status");
    PathBuf::from(s)
}

/// Larger than any cache we write: a bigger file is not ours.
const MAX_CACHE_BYTES: u64 = 64 * 1024;

/// None when missing or unreadable: the caller falls back to the database. Bounded and
/// non-blocking: a FIFO or /dev/zero planted at the path costs nothing. Read under a
/// shared flock (None while a writer holds it): the file may become the swap file a
/// writer rewrites (`through_swap_file`), never while it is read.
pub fn read(db: &Path) -> Option<StatusCache> {
    let text = crate::fsio::read_bounded_shared(&path(db), MAX_CACHE_BYTES).ok()??;
    serde_json::from_slice(&text).ok()
}

/// Snapshot the database's view into the cache file (a whole file swapped in: readers
/// never see a torn file). Best effort: a stale cache only delays what the bar shows.
pub fn refresh(store: &Store) -> Result<StatusCache, StoreError> {
    refresh_from(store, None, None)
}

/// As `refresh`, with the status rows a tick built from the rows it read (`rows_of`),
/// when its connection wrote none of them since (`Store::status_writes`): the same
/// cache without the aggregate query (0.2-0.4 ms of CPU at 10 runs, 1-1.5 at 500).
/// `answered`: the socket of the tmux server that answered the tick, taken as alive
/// rather than probed again (`orphan::Probe::answered`).
pub fn refresh_from(
    store: &Store,
    rows: Option<&mut [StatusRow]>,
    answered: Option<&str>,
) -> Result<StatusCache, StoreError> {
    let meta = store.meta_many(&[
        "last_full_tick",
        "tick_interval",
        "tmux_options",
        "tmux_error",
        crate::unwritten::META_KEY,
    ])?;
    let mut queried;
    let rows = match rows {
        Some(rows) => rows,
        None => {
            queried = store.status_rows()?;
            &mut queried[..]
        }
    };
    crate::orphan::mark_with(rows, crate::orphan::Probe::answered(answered));
    let c = crate::render::classify(rows);
    let cache = StatusCache {
        last_full_tick: meta
            .get("last_full_tick")
            .and_then(|v| v.parse().ok())
            .unwrap_or(0),
        tick_interval: meta.get("tick_interval").and_then(|v| v.parse().ok()),
        ok: c.ok,
        guidance: c.guidance,
        blocked: c.blocked,
        done: c.done,
        orphaned: c.orphaned,
        approval: c.approval,
        tmux_options: meta
            .get("tmux_options")
            .and_then(|t| serde_json::from_str(t).ok())
            .unwrap_or_default(),
        tmux_error: meta.get("tmux_error").cloned().unwrap_or_default(),
        unwritten: crate::unwritten::parse(meta.get(crate::unwritten::META_KEY).map(String::as_str))
            .len() as i64,
    };
    let target = path(&store.path);
    let text = serde_json::to_vec(&cache).map_err(|e| StoreError::Io(e.to_string()))?;
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    if through_swap_file(&target, &text).is_some() {
        return Ok(cache);
    }
    let tmp = target.with_extension(format!("status.tmp{}", std::process::id()));
    let write = || -> std::io::Result<()> {
        let mut f = fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(&tmp)?;
        f.write_all(&text)?;
        drop(f);
        swap_in(&tmp, &target)
    };
    if let Err(e) = write() {
        let _ = fs::remove_file(&tmp);
        return Err(StoreError::Io(format!("write {}: {e}", target.display())));
    }
    Ok(cache)
}

/// The file the cache is written in before it is swapped in, kept between writes
/// (`through_swap_file`).
fn swap_path(target: &Path) -> PathBuf {
    let mut s = target.as_os_str().to_owned();
    s.push(".swap");
    PathBuf::from(s)
}

/// Writes the cache into the swap file beside it, then exchanges the two names: the old
/// cache becomes the next write's swap file. A fresh file each time cost 170 us where
/// this costs about 100 (ext4: an inode allocated and one freed, two directory entries
/// more). The file at `target` is always a whole cache, as with a fresh one.
///
/// The swap file is rewritten in place only under an exclusive flock, taken without
/// waiting, and only while it is still the file at its name (a writer that swapped it in
/// meanwhile made it the cache). Readers hold a shared flock while they read (`read`):
/// one that opened this file while it was the cache, and reads it still, keeps the
/// rewrite off. It is overwritten, then cut to length, never truncated to zero first:
/// ext4 (`auto_da_alloc`) writes a file truncated to zero out at its close, 0.3 ms.
///
/// None when it cannot be used now (a reader or writer holds it, it was swapped
/// meanwhile, no regular file at either name, any error before the exchange): the
/// caller writes a fresh file instead, as before.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
fn through_swap_file(target: &Path, text: &[u8]) -> Option<()> {
    use fs2::FileExt;
    use nix::fcntl::{renameat2, RenameFlags, AT_FDCWD};
    use std::os::unix::fs::MetadataExt;
    let swap = swap_path(target);
    // Never follows a link, never blocks on a FIFO planted at the name.
    let mut f = fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(false)
        .mode(0o600)
        .custom_flags(nix::libc::O_NOFOLLOW | nix::libc::O_NONBLOCK)
        .open(&swap)
        .ok()?;
    FileExt::try_lock_exclusive(&f).ok()?;
    let held = f.metadata().ok()?;
    let named = fs::symlink_metadata(&swap).ok()?;
    if !held.file_type().is_file() || (held.dev(), held.ino()) != (named.dev(), named.ino()) {
        return None;
    }
    if !fs::symlink_metadata(target).is_ok_and(|m| m.file_type().is_file()) {
        return None;
    }
    f.write_all(text).ok()?;
    if held.len() > text.len() as u64 {
        f.set_len(text.len() as u64).ok()?;
    }
    renameat2(
        AT_FDCWD,
        &swap,
        AT_FDCWD,
        target,
        RenameFlags::RENAME_EXCHANGE,
    )
    .ok()?;
    // The flock goes with the file, after the exchange: until then another writer
    // could take the swap file and rewrite it while it is being swapped in.
    drop(f);
    Some(())
}

/// Puts `tmp` at `target`, atomically. A rename over an existing file makes ext4 (its
/// default `auto_da_alloc`) start writing the new file out at once, 0.2-0.3 ms of a
/// tick; exchanging the two names does not, and the old cache is then unlinked. A
/// cache lost to a power cut is rebuilt from the database. Falls back to a rename when
/// there is no regular file to exchange with or the file system cannot exchange.
fn swap_in(tmp: &Path, target: &Path) -> std::io::Result<()> {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        use nix::fcntl::{renameat2, RenameFlags, AT_FDCWD};
        let regular = fs::symlink_metadata(target).is_ok_and(|m| m.file_type().is_file());
        if regular
            && renameat2(
                AT_FDCWD,
                tmp,
                AT_FDCWD,
                target,
                RenameFlags::RENAME_EXCHANGE,
            )
            .is_ok()
        {
            return fs::remove_file(tmp);
        }
    }
    fs::rename(tmp, target)
}

/// What `Store::status_rows` returns, from the rows a tick read (`runs`: the active
/// ones; the others by run id): the same rows, in any order, without the aggregate
/// query. The tests compare the two on a varied state.
pub fn rows_of(
    runs: &[RunRow],
    agents: &FastMap<String, Vec<AgentRow>>,
    pending: &FastMap<String, Vec<GuidanceRow>>,
    approvals: &FastMap<String, ApprovalRow>,
    states: &FastMap<String, OpState>,
) -> Vec<StatusRow> {
    runs.iter()
        .filter(|r| r.status.is_active())
        .map(|r| {
            let agents = agents.get(&r.id).map(Vec::as_slice).unwrap_or(&[]);
            let count = |f: fn(&AgentRow) -> bool| agents.iter().filter(|a| f(a)).count() as i64;
            StatusRow {
                status: r.status,
                pending_guidance: pending.get(&r.id).map_or(0, |p| p.len() as i64),
                dead_agents: count(|a| a.health == Health::Dead),
                waiting_agents: count(|a| {
                    a.signal == Some(AgentSignal::Waiting)
                        && !matches!(a.health, Health::Dead | Health::Exited)
                }),
                done_agents: count(|a| {
                    a.health == Health::Exited
                        || (a.signal == Some(AgentSignal::Done) && a.health != Health::Dead)
                }),
                agents: agents.len() as i64,
                last_alert: states.get(&r.id).and_then(|s| s.last_alert.clone()),
                tmux_socket: r.tmux_socket.clone(),
                orphaned: r.orphaned.is_some(),
                awaiting_approval: approvals
                    .get(&r.id)
                    .is_some_and(|a| a.status == ApprovalStatus::Pending),
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::OpenMode;

    #[test]
    fn round_trips_and_tolerates_garbage() {
        let dir = tempfile::tempdir().expect("tmp");
        let db = dir.path().join("state.db");
        let store = Store::open(&db, OpenMode::Create, false).expect("open");
        let c = refresh(&store).expect("refresh");
        assert_eq!(read(&db), Some(c));
        fs::write(path(&db), b"{not json").expect("w");
        assert_eq!(read(&db), None);
    }

    /// The rows a full tick reads, as `observe` reads them.
    fn rows_as_a_tick_reads_them(store: &Store) -> Vec<StatusRow> {
        let mut agents: FastMap<String, Vec<AgentRow>> = FastMap::default();
        for a in store.agents(None).expect("agents") {
            agents.entry(a.run_id.clone()).or_default().push(a);
        }
        rows_of(
            &store.runs(false).expect("runs"),
            &agents,
            &store.all_pending_guidance().expect("guidance"),
            &store.approvals().expect("approvals"),
            &store.op_states().expect("op states"),
        )
    }

    fn sorted(mut rows: Vec<StatusRow>) -> Vec<String> {
        let mut v: Vec<String> = rows.drain(..).map(|r| format!("{r:?}")).collect();
        v.sort();
        v
    }

    #[test]
    fn rows_built_in_memory_equal_the_aggregate_query() {
        let dir = tempfile::tempdir().expect("tmp");
        let db = dir.path().join("state.db");
        let store = Store::open(&db, OpenMode::Create, false).expect("open");
        let statuses = crate::model::RunStatus::NAMES;
        let healths = [
            "healthy", "idle", "stalled", "dead", "exited", "unknown", "bogus",
        ];
        let signals = [
            None,
            Some("working"),
            Some("waiting"),
            Some("done"),
            Some("bogus"),
        ];
        let guidance = ["pending", "answered", "withdrawn", "resolved"];
        let approvals = [None, Some("pending"), Some("dismissed"), Some("bogus")];
        let alerts = [None, Some("escalate_blocked"), Some("escalate_guidance")];
        // A small deterministic generator: every value of every column meets the others.
        let mut seed = 0x2545_f491_4f6c_dd1d_u64;
        let mut next = |n: usize| {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            (seed % n as u64) as usize
        };
        let c = &store.conn;
        // Every health meets every signal (35 agents in turn).
        let mut combo = 0;
        for i in 0..120 {
            let run = format!("r{i}");
            let status = statuses[i % statuses.len()];
            let socket = (next(3) > 0).then(|| format!("/nonexistent/sock{}", next(2)));
            let orphaned = (next(6) == 0).then_some("server gone");
            c.execute(
                "INSERT INTO runs(id, tickets, workspace, status, created_at, updated_at,
                                  status_changed_at, tmux_socket, orphaned)
                 VALUES (?1, '[]', '/ws', ?2, 1, 1, 1, ?3, ?4)",
                rusqlite::params![run, status, socket, orphaned],
            )
            .expect("run");
            for a in 0..next(5) {
                combo += 1;
                c.execute(
                    "INSERT INTO agents(run_id, name, session, argv, workdir, status, health,
                                        signal, started_at, updated_at)
                     VALUES (?1, ?2, ?3, '[]', '/ws', 'running', ?4, ?5, 1, 1)",
                    rusqlite::params![
                        run,
                        format!("a{a}"),
                        format!("{run}-a{a}"),
                        healths[combo % healths.len()],
                        signals[combo / healths.len() % signals.len()],
                    ],
                )
                .expect("agent");
            }
            for _ in 0..next(4) {
                c.execute(
                    "INSERT INTO guidance_requests(run_id, agent, root, question, status,
                                                   created_at, source)
                     VALUES (?1, 'a0', '/ws', 'q?', ?2, 1, ?3)",
                    rusqlite::params![
                        run,
                        guidance[next(guidance.len())],
                        ["file", "signal", "screen"][next(3)]
                    ],
                )
                .expect("guidance");
            }
            if let Some(st) = approvals[next(approvals.len())] {
                c.execute(
                    "INSERT INTO approvals(run_id, intent, reason, situation, status,
                                           created_at, updated_at)
                     VALUES (?1, 'auto_restart', 'why', 'sit', ?2, 1, 1)",
                    rusqlite::params![run, st],
                )
                .expect("approval");
            }
            if next(4) > 0 {
                c.execute(
                    "INSERT INTO operator_run_states(run_id, last_alert, updated_at)
                     VALUES (?1, ?2, 1)",
                    rusqlite::params![run, alerts[next(alerts.len())]],
                )
                .expect("op state");
            }
        }
        assert!(combo > 2 * healths.len() * signals.len(), "agents: {combo}");
        let sql = store.status_rows().expect("status rows");
        assert!(sql.len() > 40, "active runs: {}", sql.len());
        let memory = rows_as_a_tick_reads_them(&store);
        assert_eq!(sorted(memory), sorted(sql));
    }

    #[test]
    fn runs_sharing_a_server_are_marked_as_each_alone() {
        let dir = tempfile::tempdir().expect("tmp");
        let db = dir.path().join("state.db");
        let store = Store::open(&db, OpenMode::Create, false).expect("open");
        let live = dir.path().join("live");
        let _listener = std::os::unix::net::UnixListener::bind(&live).expect("bind");
        let live = live.to_string_lossy().into_owned();
        let gone = dir.path().join("gone").to_string_lossy().into_owned();
        let sockets = [
            Some(&live),
            Some(&live),
            Some(&gone),
            None,
            Some(&gone),
            Some(&live),
        ];
        for (i, socket) in sockets.iter().enumerate() {
            store
                .conn
                .execute(
                    "INSERT INTO runs(id, tickets, workspace, status, created_at, updated_at,
                                      status_changed_at, tmux_socket)
                     VALUES (?1, '[]', '/ws', 'running', ?2, 1, 1, ?3)",
                    rusqlite::params![format!("r{i}"), i as i64, socket],
                )
                .expect("run");
        }
        let mut rows = rows_as_a_tick_reads_them(&store);
        // What probing each row's socket on its own says.
        let alone: Vec<bool> = rows
            .iter()
            .map(|r| {
                r.tmux_socket
                    .as_deref()
                    .is_some_and(|s| crate::orphan::socket_gone(s).is_some())
            })
            .collect();
        assert_eq!(alone, [false, false, true, false, true, false]);
        crate::orphan::mark(&mut rows);
        let marked: Vec<bool> = rows.iter().map(|r| r.orphaned).collect();
        assert_eq!(marked, alone);
    }

    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    #[test]
    fn the_cache_and_its_swap_file_trade_places() {
        use std::os::unix::fs::MetadataExt;
        let dir = tempfile::tempdir().expect("tmp");
        let db = dir.path().join("state.db");
        let store = Store::open(&db, OpenMode::Create, false).expect("open");
        let inode = |p: &Path| fs::metadata(p).expect("metadata").ino();
        refresh(&store).expect("first");
        refresh(&store).expect("second");
        let (cache, swap) = (inode(&path(&db)), inode(&swap_path(&path(&db))));
        let c = refresh(&store).expect("third");
        // Before: a new file each time, the old one unlinked.
        assert_eq!(inode(&path(&db)), swap, "the swap file became the cache");
        assert_eq!(
            inode(&swap_path(&path(&db))),
            cache,
            "and the cache the swap file"
        );
        assert_eq!(read(&db), Some(c));
        let names: Vec<String> = fs::read_dir(dir.path())
            .expect("dir")
            .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
            .filter(|n| n.contains(".status"))
            .collect();
        assert_eq!(names.len(), 2, "no temporary file left: {names:?}");
    }

    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    #[test]
    fn a_cache_being_read_is_never_rewritten() {
        use std::io::{Read, Seek};
        let (_dir, db, mut store) = store_with_a_cache();
        refresh(&store).expect("second");
        // A reader opened the cache and holds it while two writes go by: the first swaps
        // it out, the second would rewrite it.
        let mut reader = fs::File::open(path(&db)).expect("open cache");
        fs2::FileExt::lock_shared(&reader).expect("shared flock");
        let mut before = Vec::new();
        reader.read_to_end(&mut before).expect("read");
        for t in ["11", "12"] {
            set_tick(&mut store, t);
            refresh(&store).expect("refresh");
        }
        let mut after = Vec::new();
        reader.rewind().expect("rewind");
        reader.read_to_end(&mut after).expect("read again");
        assert_eq!(after, before, "the file a reader holds is left as it was");
        assert_eq!(read(&db).map(|c| c.last_full_tick), Some(12));
    }

    /// A database in a temporary directory, its cache written once.
    fn store_with_a_cache() -> (tempfile::TempDir, PathBuf, Store) {
        let dir = tempfile::tempdir().expect("tmp");
        let db = dir.path().join("state.db");
        let store = Store::open(&db, OpenMode::Create, false).expect("open");
        refresh(&store).expect("first");
        (dir, db, store)
    }

    fn set_tick(store: &mut Store, t: &str) {
        let tx = store.write().expect("tx");
        tx.meta_set("last_full_tick", t).expect("meta");
        tx.commit().expect("commit");
    }

    #[test]
    fn a_held_or_planted_swap_file_is_not_used() {
        let (dir, db, mut store) = store_with_a_cache();
        // Another writer holds the swap file: written another way, without waiting.
        let swap = swap_path(&path(&db));
        let held = fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(false)
            .open(&swap)
            .expect("swap");
        fs2::FileExt::lock_exclusive(&held).expect("flock");
        set_tick(&mut store, "7");
        let t = std::time::Instant::now();
        assert_eq!(refresh(&store).expect("held").last_full_tick, 7);
        assert!(t.elapsed() < std::time::Duration::from_secs(1));
        assert_eq!(read(&db).map(|c| c.last_full_tick), Some(7));
        drop(held);
        // A link planted at its name is never followed.
        let outside = dir.path().join("outside");
        fs::write(&outside, b"untouched").expect("outside");
        fs::remove_file(&swap).expect("rm swap");
        std::os::unix::fs::symlink(&outside, &swap).expect("symlink");
        set_tick(&mut store, "8");
        assert_eq!(refresh(&store).expect("planted").last_full_tick, 8);
        assert_eq!(read(&db).map(|c| c.last_full_tick), Some(8));
        assert_eq!(fs::read(&outside).expect("outside"), b"untouched");
        assert!(fs::symlink_metadata(&swap)
            .expect("link")
            .file_type()
            .is_symlink());
    }

    #[test]
    fn status_writes_count_the_status_tables_only() {
        let dir = tempfile::tempdir().expect("tmp");
        let db = dir.path().join("state.db");
        let mut store = Store::open(&db, OpenMode::Create, false).expect("open");
        let before = store.status_writes();
        let tx = store.write().expect("tx");
        tx.meta_set("last_full_tick", "5").expect("meta");
        tx.commit().expect("commit");
        assert_eq!(store.status_writes(), before, "meta is not counted");
        store
            .conn
            .execute(
                "INSERT INTO runs(id, tickets, workspace, status, created_at, updated_at,
                                  status_changed_at) VALUES ('r', '[]', '/ws', 'running', 1, 1, 1)",
                [],
            )
            .expect("run");
        assert!(store.status_writes() > before, "a run row is counted");
    }

    #[test]
    fn endless_and_blocking_files_are_not_read() {
        let dir = tempfile::tempdir().expect("tmp");
        let db = dir.path().join("state.db");
        // Before: fs::read of /dev/zero grew until memory ran out.
        std::os::unix::fs::symlink("/dev/zero", path(&db)).expect("symlink");
        let t = std::time::Instant::now();
        assert_eq!(read(&db), None);
        fs::remove_file(path(&db)).expect("rm");
        nix::unistd::mkfifo(&path(&db), nix::sys::stat::Mode::from_bits_truncate(0o600))
            .expect("mkfifo");
        assert_eq!(read(&db), None);
        assert!(t.elapsed() < std::time::Duration::from_secs(2));
    }
}
