//! `<db>.handoff`: at most one status job per due period hands a tick off. A bar refresh
//! runs `status` in every client at once, and each that finds a tick due in the cache
//! would start one. The file holds the time of the last hand-off, read and rewritten
//! under a non-blocking flock: a call that finds it locked, or finds a hand-off younger
//! than one interval, starts nothing. (The child still re-checks under the state lock, so
//! a late or doubled hand-off never ticks twice.)

use crate::schedule::is_due;
use fs2::FileExt;
use std::fs::OpenOptions;
use std::io::Read;
use std::os::unix::fs::{FileExt as _, OpenOptionsExt};
use std::path::{Path, PathBuf};

pub fn path(db: &Path) -> PathBuf {
    let mut s = db.as_os_str().to_owned();
    s.push(".handoff");
    PathBuf::from(s)
}

/// True when this call may hand a tick off now: it recorded `now` as the last hand-off.
/// Never waits: a busy claim or any I/O problem means no hand-off (the next bar refresh
/// or the timer ticks).
pub fn claim(db: &Path, interval: i64, now: i64) -> bool {
    let p = path(db);
    // O_NONBLOCK: a FIFO planted at the path neither blocks the open nor the read.
    let Ok(mut f) = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .mode(0o600)
        .custom_flags(nix::libc::O_NOFOLLOW | nix::libc::O_NONBLOCK)
        .open(&p)
    else {
        return false;
    };
    if !f.metadata().is_ok_and(|m| m.is_file()) || f.try_lock_exclusive().is_err() {
        return false;
    }
    let mut buf = [0u8; 24];
    let n = f.read(&mut buf).unwrap_or(0);
    let last = std::str::from_utf8(&buf[..n])
        .ok()
        .and_then(|s| s.trim().parse::<i64>().ok())
        .unwrap_or(0);
    if !is_due(last, interval, now) {
        return false;
    }
    let text = now.to_string();
    f.write_all_at(text.as_bytes(), 0).is_ok() && f.set_len(text.len() as u64).is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_claim_per_interval_and_a_step_back_reclaims() {
        let dir = tempfile::tempdir().expect("tmp");
        let db = dir.path().join("state.db");
        assert!(claim(&db, 15, 1_000), "first claim");
        assert!(!claim(&db, 15, 1_000), "same second");
        assert!(!claim(&db, 15, 1_014), "within the interval");
        assert!(claim(&db, 15, 1_015), "next period");
        assert!(claim(&db, 15, 900), "clock stepped back");
        std::fs::write(path(&db), b"garbage").expect("w");
        assert!(claim(&db, 15, 900), "garbage counts as never");
    }

    #[test]
    fn a_held_or_foreign_claim_file_means_no_hand_off() {
        let dir = tempfile::tempdir().expect("tmp");
        let db = dir.path().join("state.db");
        let held = std::fs::File::create(path(&db)).expect("create");
        held.lock_exclusive().expect("lock");
        assert!(!claim(&db, 15, 1_000), "held by another caller");
        drop(held);
        assert!(claim(&db, 15, 1_000), "free again");
        std::fs::remove_file(path(&db)).expect("rm");
        nix::unistd::mkfifo(&path(&db), nix::sys::stat::Mode::from_bits_truncate(0o600))
            .expect("mkfifo");
        assert!(!claim(&db, 15, 2_000), "a FIFO is not ours");
        std::fs::remove_file(path(&db)).expect("rm");
        std::os::unix::fs::symlink(dir.path().join("elsewhere"), path(&db)).expect("ln");
        assert!(!claim(&db, 15, 2_000), "a symlink is not followed");
        assert!(!dir.path().join("elsewhere").exists());
    }
}
