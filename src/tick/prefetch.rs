//! A full tick's tmux observation, started before the tick opens the database: tmux (a
//! client process and the server's work, on the other core) answers while the tick
//! opens SQLite and reads its rows, so the tick costs about the larger of the two
//! rather than their sum. tmux is spawned from the tick's own thread and collected
//! once the rows are read (`tmux::start_observe`). What to ask is known before the
//! rows: a full tick lists every pane, and which free-text fields (`tmux::Wants`) it
//! asks for, and whether it asks at all, come from the hint the previous full tick
//! left beside the database (`<db>.observe`, rewritten only when it changes).
//! `observe` checks the hint against the rows and asks again when it was wrong (rare:
//! an agent of a new kind, the first tick after an upgrade).

use crate::tmux::{Observation, PendingObservation, TmuxClient, Wants};
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

/// What a full tick asked tmux for: whether it had runs to observe, and which fields.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct Hint {
    pub runs: bool,
    pub wants: Wants,
}

impl Hint {
    fn to_text(self) -> String {
        let words = [
            (self.runs, "list"),
            (self.wants.title, "title"),
            (self.wants.command, "command"),
        ];
        let on: Vec<&str> = words.iter().filter(|(on, _)| *on).map(|w| w.1).collect();
        if on.is_empty() {
            "none\n".into()
        } else {
            format!("{}\n", on.join(" "))
        }
    }

    /// None for anything but the words `to_text` writes.
    fn parse(text: &str) -> Option<Hint> {
        let mut h = Hint::default();
        for w in text.split_whitespace() {
            match w {
                "list" => h.runs = true,
                "title" => h.wants.title = true,
                "command" => h.wants.command = true,
                "none" => {}
                _ => return None,
            }
        }
        Some(h)
    }
}

fn path(db: &Path) -> PathBuf {
    crate::store::side_path(db, ".observe")
}

/// Small and plain: anything else at the path is not a hint.
fn read(db: &Path) -> Option<Hint> {
    let bytes = crate::fsio::read_bounded(&path(db), 64).ok()??;
    Hint::parse(std::str::from_utf8(&bytes).ok()?)
}

/// Best effort (a lost hint costs one sequential tick); never through a symlink, never
/// blocked by a FIFO. The reader holds the state lock
/// as the writer does, so a plain rewrite is never read half-written but by a crash,
/// which `parse` refuses.
fn write(db: &Path, hint: Hint) {
    let Ok(mut f) = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .custom_flags(nix::libc::O_NOFOLLOW | nix::libc::O_NONBLOCK)
        .open(path(db))
    else {
        return;
    };
    let _ = f.write_all(hint.to_text().as_bytes());
}

/// The observation a tick started early, if any, and what the hint said.
pub struct Prefetch {
    /// None: a one-run tick (its batch names sessions only the rows know).
    db: Option<PathBuf>,
    /// Rewritten when the tick finds it wrong (never by a dry run).
    writable: bool,
    hint: Option<Hint>,
    pending: Option<PendingObservation>,
}

impl Prefetch {
    /// Nothing started: the tick observes once it has read its rows.
    pub fn none() -> Prefetch {
        Prefetch {
            db: None,
            writable: false,
            hint: None,
            pending: None,
        }
    }

    /// A full tick: starts the listing its hint describes (none without a hint, or when
    /// the last full tick had no runs). Riders (`tmux::ride_along`) go with it.
    pub fn start(db: &Path, tmux: &TmuxClient, dry_run: bool) -> Prefetch {
        let hint = read(db);
        let pending = hint.filter(|h| h.runs).map(|h| tmux.start_observe(h.wants));
        Prefetch {
            db: Some(db.to_path_buf()),
            writable: !dry_run,
            hint,
            pending,
        }
    }

    /// The started observation when it fits a tick that has runs and needs `need`;
    /// None when nothing was started or it lacks a field, and the caller asks again.
    /// An error stands whatever was asked (a gone server or a missing tmux says so the
    /// same for any format).
    pub fn take(&mut self, need: Wants) -> Option<Observation> {
        let pending = self.pending.take()?;
        let fits = pending.wants().covers(need);
        let obs = pending.collect(need);
        match obs {
            Observation::Unknown(_) => Some(obs),
            Observation::Known(_) if fits => Some(obs),
            Observation::Known(_) => None,
        }
    }

    /// After the rows are read: remembers what this full tick needed, for the next one.
    /// Waits for a listing nobody took (no runs after all): its riders ran with it.
    pub fn settle(mut self, runs: bool, need: Wants) {
        drop(self.pending.take());
        let Some(db) = self.db.as_deref().filter(|_| self.writable) else {
            return;
        };
        let now = Hint { runs, wants: need };
        if self.hint != Some(now) {
            write(db, now);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hints_round_trip_and_garbage_is_no_hint() {
        for runs in [false, true] {
            for title in [false, true] {
                for command in [false, true] {
                    let h = Hint {
                        runs,
                        wants: Wants { title, command },
                    };
                    assert_eq!(Hint::parse(&h.to_text()), Some(h));
                }
            }
        }
        assert_eq!(Hint::parse("list titles"), None);
        assert_eq!(Hint::parse("{\"x\":1}"), None);
    }

    #[test]
    fn endless_and_blocking_files_are_no_hint() {
        let dir = tempfile::tempdir().expect("tmp");
        let db = dir.path().join("state.db");
        std::os::unix::fs::symlink("/dev/zero", path(&db)).expect("symlink");
        assert_eq!(read(&db), None);
        // Not followed when written either.
        write(&db, Hint::default());
        assert_eq!(read(&db), None);
        std::fs::remove_file(path(&db)).expect("rm");
        nix::unistd::mkfifo(&path(&db), nix::sys::stat::Mode::from_bits_truncate(0o600))
            .expect("mkfifo");
        assert_eq!(read(&db), None);
        write(&db, Hint::default());
        std::fs::remove_file(path(&db)).expect("rm");
        write(&db, Hint::default());
        assert_eq!(read(&db), Some(Hint::default()));
    }
}
