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
    /// meta `status_gen` when the counts were built (it changes with every commit that
    /// wrote a status table: `Tx::commit`). A refresh that finds the same number reuses
    /// `by_server` instead of querying every active run (`refresh_from`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status_gen: Option<i64>,
    /// The counts by tmux server, as the rows say: a server found gone turns all its runs
    /// orphaned (`total`). Empty when there are no active runs.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub by_server: Vec<ServerShare>,
    /// The version of metawsm-tick that counted them: another version's rules may count
    /// differently, so its counts are not reused.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub counted_by: String,
}

/// One tmux server's runs in the counts (`StatusCache::by_server`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ServerShare {
    pub socket: Option<String>,
    pub runs: i64,
    /// Its runs' buckets while its server is not known to be gone.
    pub counts: Counts,
}

/// The status rows by server, each share counted as its rows say (no server probed).
pub fn shares(rows: &[StatusRow]) -> Vec<ServerShare> {
    let mut out: Vec<ServerShare> = Vec::new();
    let mut index: HashMap<Option<&str>, usize> = HashMap::new();
    let mut last = usize::MAX;
    for r in rows {
        // Most runs share one server: the last row's share, without hashing the path.
        let i = if out.get(last).is_some_and(|s| s.socket == r.tmux_socket) {
            last
        } else {
            *index.entry(r.tmux_socket.as_deref()).or_insert_with(|| {
                out.push(ServerShare {
                    socket: r.tmux_socket.clone(),
                    ..ServerShare::default()
                });
                out.len() - 1
            })
        };
        last = i;
        out[i].runs += 1;
        out[i].counts += crate::render::classify(std::slice::from_ref(r));
    }
    out
}

/// The counts of these rows, each server probed once (what a refresh counts).
pub fn count(rows: &[StatusRow]) -> Counts {
    total(&shares(rows), &mut crate::orphan::Probe::default())
}

/// The counts the status line shows: each server's share, or all its runs orphaned when
/// `probe` finds it gone (one probe per server), as `orphan::mark` then
/// `render::classify` count them row by row.
pub fn total(shares: &[ServerShare], probe: &mut crate::orphan::Probe) -> Counts {
    let mut c = Counts::default();
    for s in shares {
        if probe.gone(s.socket.as_deref()).is_some() {
            c.blocked += s.runs;
            c.orphaned += s.runs;
        } else {
            c += s.counts;
        }
    }
    c
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
    refresh_from(store, None, None, None)
}

/// The meta key `Tx::commit` changes (`StatusCache::status_gen`).
pub const STATUS_GEN: &str = "status_gen";

/// `StatusCache::counted_by` of the caches this build writes.
const COUNTED_BY: &str = env!("CARGO_PKG_VERSION");

/// As `refresh`, with the status rows a tick built from the rows it read (`rows_of`):
/// the same cache without the aggregate query (0.2-0.4 ms of CPU at 10 runs, 1-1.5 at
/// 500).
/// `rows_gen`: meta `status_gen` as it was before those rows were read; the rows are
/// used only if it is still the same. Otherwise, the cache on disk is reused when this
/// version counted it and its stamp is today's `status_gen` (no status table written
/// since: a hook's quiet tick at 500 runs spent 84% of its instructions on the query),
/// else the query runs. `answered`: the socket of the tmux server that answered the
/// tick, taken as alive rather than probed again (`orphan::Probe::answered`).
pub fn refresh_from(
    store: &Store,
    rows: Option<&[StatusRow]>,
    rows_gen: Option<i64>,
    answered: Option<&str>,
) -> Result<StatusCache, StoreError> {
    // Read before any status row: a later change then shows as a newer number (the
    // cache is never stamped newer than its rows).
    let meta = store.meta_many(&[
        "last_full_tick",
        "tick_interval",
        "tmux_options",
        "tmux_error",
        crate::unwritten::META_KEY,
        STATUS_GEN,
    ])?;
    let gen: Option<i64> = meta.get(STATUS_GEN).and_then(|v| v.parse().ok());
    // The tick's rows stand only if nothing changed the status tables since they were
    // read (another process's write would be lost from the counts until the next one).
    let (by_server, status_gen) = match rows.filter(|_| rows_gen == gen) {
        Some(rows) => (shares(rows), gen),
        None => match gen
            .and_then(|_| read(&store.path))
            .filter(|old| old.status_gen == gen && old.counted_by == COUNTED_BY)
        {
            Some(old) => (old.by_server, gen),
            None => (shares(&store.status_rows()?), gen),
        },
    };
    let c = total(&by_server, &mut crate::orphan::Probe::answered(answered));
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
        status_gen,
        by_server,
        counted_by: COUNTED_BY.to_string(),
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
#[path = "status_cache_tests.rs"]
mod tests;
