//! The one exclusive lock beside the database that serialises ticks and mutations.

use crate::timeutil::poll_until;
use fs2::FileExt;
use std::fs::{File, OpenOptions};
use std::io;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// Held while alive; dropping the file releases the flock.
#[derive(Debug)]
pub struct StateLock {
    _file: File,
}

#[derive(Debug, Clone, Copy)]
pub enum Wait {
    /// `try_lock`: the status line never waits for anyone.
    No,
    /// Poll for at most this long (hooks, migrations).
    Bounded(Duration),
    /// Block (commands a human runs).
    Forever,
}

pub fn lock_path(db: &Path) -> PathBuf {
    let mut s = db.as_os_str().to_owned();
    s.push(".lock");
    PathBuf::from(s)
}

impl StateLock {
    /// Ok(None) when the lock is busy and `wait` ran out.
    pub fn acquire(db: &Path, wait: Wait) -> io::Result<Option<StateLock>> {
        let path = lock_path(db);
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .mode(0o600)
            .open(&path)
            .map_err(|e| io::Error::new(e.kind(), format!("open lock {}: {e}", path.display())))?;
        match wait {
            Wait::Forever => {
                FileExt::lock_exclusive(&file)?;
                Ok(Some(StateLock { _file: file }))
            }
            Wait::No => Self::try_once(file),
            Wait::Bounded(limit) => {
                let got = poll_until(limit, Duration::from_millis(10), || {
                    match FileExt::try_lock_exclusive(&file) {
                        Ok(()) => Some(Ok(())),
                        Err(e) if is_contended(&e) => None,
                        Err(e) => Some(Err(e)),
                    }
                });
                match got {
                    Some(Ok(())) => Ok(Some(StateLock { _file: file })),
                    Some(Err(e)) => Err(e),
                    None => Ok(None),
                }
            }
        }
    }

    fn try_once(file: File) -> io::Result<Option<StateLock>> {
        match FileExt::try_lock_exclusive(&file) {
            Ok(()) => Ok(Some(StateLock { _file: file })),
            Err(e) if is_contended(&e) => Ok(None),
            Err(e) => Err(e),
        }
    }
}

fn is_contended(e: &io::Error) -> bool {
    e.kind() == io::ErrorKind::WouldBlock
        || e.raw_os_error() == fs2::lock_contended_error().raw_os_error()
}
