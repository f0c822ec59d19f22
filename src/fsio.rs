//! File I/O on things the program does not control: bounded non-blocking reads, and
//! writes that stay inside a workspace (every directory opened from the workspace root
//! down with `O_NOFOLLOW|O_DIRECTORY`, every write and rename through those descriptors).

use nix::errno::Errno;
use nix::fcntl::{openat, renameat, OFlag};
use nix::sys::stat::{fstat, mkdirat, Mode, SFlag};
use std::fs::File;
use std::io::{self, Read};
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Component, Path};

/// Why a bounded read failed; `Display` is one line naming the path.
#[derive(Debug)]
pub enum ReadError {
    /// A FIFO, device, socket or directory where a file was expected.
    NotRegular(String, &'static str),
    /// Path, limit, and the size when fstat knew it.
    TooLarge(String, u64, Option<u64>),
    Io(String, io::Error),
}

impl std::fmt::Display for ReadError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ReadError::NotRegular(p, kind) => write!(f, "{p}: is {kind}, not a regular file"),
            ReadError::TooLarge(p, limit, _) => write!(f, "{p}: larger than {limit} bytes"),
            ReadError::Io(p, e) => write!(f, "{p}: {e}"),
        }
    }
}

fn kind_of(mode: u32) -> &'static str {
    match SFlag::from_bits_truncate(mode & SFlag::S_IFMT.bits()) {
        SFlag::S_IFIFO => "a FIFO",
        SFlag::S_IFDIR => "a directory",
        SFlag::S_IFCHR => "a character device",
        SFlag::S_IFBLK => "a block device",
        SFlag::S_IFSOCK => "a socket",
        _ => "not a plain file",
    }
}

/// Reads at most `limit` bytes of a regular file. `Ok(None)`: it does not exist.
/// O_NONBLOCK so a FIFO planted at the path cannot block the open; the type is checked
/// on the open descriptor, and at most limit+1 bytes are read (a file that grows, or
/// /proc-like files that report size 0, cannot make us read more).
pub fn read_bounded(path: &Path, limit: u64) -> Result<Option<Vec<u8>>, ReadError> {
    read_bounded_as(path, limit, false)
}

/// As `read_bounded`, under a shared flock taken without waiting: `Ok(None)` while a
/// writer holds an exclusive one (a file rewritten in place under it).
pub fn read_bounded_shared(path: &Path, limit: u64) -> Result<Option<Vec<u8>>, ReadError> {
    read_bounded_as(path, limit, true)
}

fn read_bounded_as(path: &Path, limit: u64, shared: bool) -> Result<Option<Vec<u8>>, ReadError> {
    let shown = || path.display().to_string();
    let file = match std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(nix::libc::O_NONBLOCK)
        .open(path)
    {
        Ok(f) => f,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(ReadError::Io(shown(), e)),
    };
    if shared && fs2::FileExt::try_lock_shared(&file).is_err() {
        return Ok(None);
    }
    read_open(file, limit, &shown()).map(Some)
}

fn read_open(file: File, limit: u64, shown: &str) -> Result<Vec<u8>, ReadError> {
    let st = fstat(file.as_fd()).map_err(|e| ReadError::Io(shown.into(), e.into()))?;
    if SFlag::from_bits_truncate(st.st_mode & SFlag::S_IFMT.bits()) != SFlag::S_IFREG {
        return Err(ReadError::NotRegular(shown.into(), kind_of(st.st_mode)));
    }
    if st.st_size as u64 > limit {
        return Err(ReadError::TooLarge(
            shown.into(),
            limit,
            Some(st.st_size as u64),
        ));
    }
    let mut buf = Vec::with_capacity((st.st_size.max(0) as u64).min(limit) as usize);
    file.take(limit + 1)
        .read_to_end(&mut buf)
        .map_err(|e| ReadError::Io(shown.into(), e))?;
    if buf.len() as u64 > limit {
        return Err(ReadError::TooLarge(shown.into(), limit, None));
    }
    Ok(buf)
}

fn dir_flags() -> OFlag {
    OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC
}

/// Opens one directory entry of `parent` as a directory, never through a symlink;
/// creates it (0755) first when `create` and it is missing.
pub fn open_subdir(parent: &OwnedFd, name: &str, create: bool) -> io::Result<OwnedFd> {
    match openat(parent, name, dir_flags(), Mode::empty()) {
        Err(Errno::ENOENT) if create => {
            match mkdirat(parent, name, Mode::from_bits_truncate(0o755)) {
                Ok(()) | Err(Errno::EEXIST) => {}
                Err(e) => return Err(e.into()),
            }
            openat(parent, name, dir_flags(), Mode::empty()).map_err(nofollow_error)
        }
        r => r.map_err(nofollow_error),
    }
}

fn nofollow_error(e: Errno) -> io::Error {
    match e {
        // O_NOFOLLOW on a symlink, O_DIRECTORY on anything else.
        Errno::ELOOP | Errno::ENOTDIR => {
            io::Error::other("a path component is a symlink or not a directory")
        }
        e => e.into(),
    }
}

/// The directory `workspace/rel`, opened component by component from the workspace root
/// with O_NOFOLLOW|O_DIRECTORY: a directory swapped for a symlink at any moment makes the
/// open fail instead of leading outside. `rel` must be relative without `..`. The
/// workspace path itself is the user's and is opened as given.
pub fn open_beneath(workspace: &Path, rel: &Path, create: bool) -> io::Result<OwnedFd> {
    let ws = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(nix::libc::O_DIRECTORY | nix::libc::O_CLOEXEC)
        .open(workspace)
        .map_err(|e| io::Error::new(e.kind(), format!("workspace {}: {e}", workspace.display())))?;
    let mut fd: OwnedFd = ws.into();
    for c in rel.components() {
        match c {
            Component::CurDir => {}
            Component::Normal(name) => {
                let name = name
                    .to_str()
                    .ok_or_else(|| io::Error::other(format!("{}: not UTF-8", rel.display())))?;
                fd = open_subdir(&fd, name, create).map_err(|e| {
                    io::Error::new(e.kind(), format!("{} in {}: {e}", name, rel.display()))
                })?;
            }
            _ => {
                return Err(io::Error::other(format!(
                    "{} is not a plain path inside the workspace",
                    rel.display()
                )))
            }
        }
    }
    Ok(fd)
}

/// `dir` relative to the (canonical) workspace, or an error when it is not inside it.
pub fn relative_to(workspace: &Path, dir: &Path) -> io::Result<std::path::PathBuf> {
    let ws = workspace.canonicalize()?;
    let d = if dir.is_absolute() {
        dir.to_path_buf()
    } else {
        ws.join(dir)
    };
    // Lexical first (a path under the workspace as given), then resolved.
    if let Ok(r) = d.strip_prefix(&ws).or_else(|_| d.strip_prefix(workspace)) {
        return Ok(r.to_path_buf());
    }
    let real = d.canonicalize()?;
    real.strip_prefix(&ws)
        .map(Path::to_path_buf)
        .map_err(|_| io::Error::other(format!("{} is outside the workspace", d.display())))
}

/// Renames `from` to `to`, both inside directory descriptors (no path is re-resolved).
pub fn rename_in(from_dir: &OwnedFd, from: &str, to_dir: &OwnedFd, to: &str) -> io::Result<()> {
    renameat(from_dir, from, to_dir, to).map_err(io::Error::from)
}

/// A name unique enough for one process in one directory: `<stem>.<unix>.<pid>.<n>`.
pub fn unique_name(stem: &str, now: i64) -> String {
    use std::sync::atomic::{AtomicU32, Ordering};
    static N: AtomicU32 = AtomicU32::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    format!(
        "{stem}.{now}.{}.{nanos:09}.{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs;
    use std::time::{Duration, Instant};

    #[test]
    fn fifos_devices_and_directories_are_refused_at_once() {
        let dir = tempfile::tempdir().expect("tmp");
        let fifo = dir.path().join("p");
        nix::unistd::mkfifo(&fifo, Mode::from_bits_truncate(0o600)).expect("mkfifo");
        let t = Instant::now();
        let e = read_bounded(&fifo, 10).expect_err("fifo").to_string();
        assert!(
            e.contains("is a FIFO") && e.contains(&fifo.display().to_string()),
            "{e}"
        );
        let e = read_bounded(Path::new("/dev/zero"), 10)
            .expect_err("dev")
            .to_string();
        assert!(e.contains("character device"), "{e}");
        let e = read_bounded(dir.path(), 10).expect_err("dir").to_string();
        assert!(e.contains("a directory"), "{e}");
        assert!(t.elapsed() < Duration::from_secs(2));
    }

    #[test]
    fn limits_and_absence() {
        let dir = tempfile::tempdir().expect("tmp");
        let p = dir.path().join("f");
        assert!(read_bounded(&p, 4).expect("absent").is_none());
        fs::write(&p, b"1234").expect("w");
        assert_eq!(read_bounded(&p, 4).expect("ok"), Some(b"1234".to_vec()));
        let e = read_bounded(&p, 3).expect_err("big").to_string();
        assert!(e.contains("larger than 3 bytes"), "{e}");
    }

    #[test]
    fn open_beneath_refuses_symlinked_components() {
        let ws = tempfile::tempdir().expect("tmp");
        let out = tempfile::tempdir().expect("tmp");
        fs::create_dir_all(ws.path().join("a/b")).expect("mkdir");
        std::os::unix::fs::symlink(out.path(), ws.path().join("a/link")).expect("ln");
        assert!(open_beneath(ws.path(), Path::new("a/b"), false).is_ok());
        assert!(open_beneath(ws.path(), Path::new("a/link"), false).is_err());
        assert!(open_beneath(ws.path(), Path::new("a/../a"), false).is_err());
        assert!(open_beneath(ws.path(), Path::new("a/link/x"), true).is_err());
        assert!(!out.path().join("x").exists());
        assert!(open_beneath(ws.path(), Path::new("a/c/d"), true).is_ok());
    }
}
