//! `<db>.status`: what the status line needs, written after every tick and mutation, so
//! the cached path never opens SQLite (process start alone is half of its 2 ms budget).

use crate::render::Counts;
use crate::store::{Store, StoreError};
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
/// non-blocking: a FIFO or /dev/zero planted at the path costs nothing.
pub fn read(db: &Path) -> Option<StatusCache> {
    let text = crate::fsio::read_bounded(&path(db), MAX_CACHE_BYTES).ok()??;
    serde_json::from_slice(&text).ok()
}

/// Snapshot the database's view into the cache file (temp file + rename: readers never
/// see a torn file). Best effort: a stale cache only delays what the bar shows.
pub fn refresh(store: &Store) -> Result<StatusCache, StoreError> {
    let meta = store.meta_many(&[
        "last_full_tick",
        "tick_interval",
        "tmux_options",
        "tmux_error",
        crate::unwritten::META_KEY,
    ])?;
    let mut rows = store.status_rows()?;
    crate::orphan::mark(&mut rows);
    let c = crate::render::classify(&rows);
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
    let tmp = target.with_extension(format!("status.tmp{}", std::process::id()));
    let text = serde_json::to_vec(&cache).map_err(|e| StoreError::Io(e.to_string()))?;
    let write = || -> std::io::Result<()> {
        let mut f = fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(&tmp)?;
        f.write_all(&text)?;
        fs::rename(&tmp, &target)
    };
    if let Err(e) = write() {
        let _ = fs::remove_file(&tmp);
        return Err(StoreError::Io(format!("write {}: {e}", target.display())));
    }
    Ok(cache)
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
