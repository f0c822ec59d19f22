//! The workspace file contract kept from the original: `.metawsm/guidance-request.json`,
//! `guidance-response.json` and `implementation-complete.json` under each signal root.

use serde_json::Value;
use std::fs;
use std::io;
use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};

pub const MAX_SIGNAL_BYTES: u64 = 1 << 20;
pub const MAX_CONTEXT_BYTES: usize = 4096;
pub const GUIDANCE_REQUEST: &str = "guidance-request.json";
pub const GUIDANCE_RESPONSE: &str = "guidance-response.json";
pub const COMPLETION: &str = "implementation-complete.json";

pub use crate::model::asks::{Completion, GuidanceRequest};

/// One signal file: absent, parsed, or bad (with a one-line reason to record).
#[derive(Debug, Clone, PartialEq)]
pub enum Read_<T> {
    Absent,
    Found(PathBuf, T),
    Bad(PathBuf, String),
}

/// Roots: the workspace, then the doc-home repo directory when it exists.
pub fn roots(workspace: &str, doc_home_repo: Option<&str>) -> Vec<PathBuf> {
    let ws = PathBuf::from(workspace);
    let mut out = vec![ws.clone()];
    if let Some(repo) = doc_home_repo.filter(|r| !r.is_empty()) {
        let p = ws.join(repo);
        if p.is_dir() && p != ws {
            out.push(p);
        }
    }
    out
}

/// The entries of `<root>/.metawsm`, read once per tick: `None` when there is no such
/// directory (most runs), so the tick opens none of its files. Opening each signal file
/// blindly cost every run two failed opens per tick (1,000 at 500 runs).
/// Any other error (not a directory, no permission) names every file, so each is read
/// and reported as before.
pub fn present(root: &Path) -> Option<std::collections::HashSet<String>> {
    let dir = root.join(".metawsm");
    // A failed access(2) costs the kernel a third of a failed open (no file allocated):
    // 0.6 ms a tick at 500 runs without the directory.
    if nix::unistd::access(&dir, nix::unistd::AccessFlags::F_OK) == Err(nix::errno::Errno::ENOENT) {
        return None;
    }
    match fs::read_dir(&dir) {
        Ok(dir) => Some(
            dir.flatten()
                .filter_map(|e| e.file_name().into_string().ok())
                .collect(),
        ),
        Err(e) if e.kind() == io::ErrorKind::NotFound => None,
        Err(_) => Some(
            [GUIDANCE_REQUEST, COMPLETION, ARCHIVE]
                .map(String::from)
                .into(),
        ),
    }
}

pub fn signal_path(root: &Path, name: &str) -> PathBuf {
    root.join(".metawsm").join(name)
}

fn read_with<T>(root: &Path, name: &str, parse: fn(&[u8]) -> Result<T, String>) -> Read_<T> {
    let path = signal_path(root, name);
    match crate::fsio::read_bounded(&path, MAX_SIGNAL_BYTES) {
        Ok(None) => Read_::Absent,
        Err(crate::fsio::ReadError::TooLarge(..)) => {
            Read_::Bad(path, format!("larger than {MAX_SIGNAL_BYTES} bytes"))
        }
        Err(e) => Read_::Bad(path, format!("unreadable: {e}")),
        Ok(Some(bytes)) => match parse(&bytes) {
            Ok(v) => Read_::Found(path, v),
            Err(e) => Read_::Bad(path, e),
        },
    }
}

pub fn read_guidance(root: &Path) -> Read_<GuidanceRequest> {
    read_with(root, GUIDANCE_REQUEST, parse_guidance)
}

#[cfg(test)]
pub fn read_completion(root: &Path) -> Read_<Completion> {
    read_with(root, COMPLETION, parse_completion)
}

fn object(bytes: &[u8]) -> Result<serde_json::Map<String, Value>, String> {
    let text = std::str::from_utf8(bytes).map_err(|_| "not UTF-8".to_string())?;
    match serde_json::from_str::<Value>(text) {
        Ok(Value::Object(m)) => Ok(m),
        Ok(_) => Err("not a JSON object".into()),
        Err(e) => Err(format!("invalid JSON: {e}")),
    }
}

fn opt_string(m: &serde_json::Map<String, Value>, key: &str) -> Result<Option<String>, String> {
    match m.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) if s.trim().is_empty() => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.trim().to_string())),
        Some(_) => Err(format!("{key} must be a string")),
    }
}

fn truncate(mut s: String, max: usize) -> String {
    if s.len() > max {
        let mut cut = max;
        while !s.is_char_boundary(cut) {
            cut -= 1;
        }
        s.truncate(cut);
        s.push('…');
    }
    s
}

pub fn parse_guidance(bytes: &[u8]) -> Result<GuidanceRequest, String> {
    let m = object(bytes)?;
    let question = opt_string(&m, "question")?.ok_or("question is missing or blank")?;
    let context = match m.get("context") {
        None | Some(Value::Null) => String::new(),
        Some(Value::String(s)) => s.trim().to_string(),
        // Structured context is kept, compactly serialised.
        Some(other) => other.to_string(),
    };
    Ok(GuidanceRequest {
        run_id: opt_string(&m, "run_id")?,
        agent: opt_string(&m, "agent")?,
        question: truncate(question, MAX_CONTEXT_BYTES),
        context: truncate(context, MAX_CONTEXT_BYTES),
    })
}

pub fn parse_completion(bytes: &[u8]) -> Result<Completion, String> {
    let m = object(bytes)?;
    Ok(Completion {
        run_id: opt_string(&m, "run_id")?,
        agent: opt_string(&m, "agent")?,
        summary: opt_string(&m, "summary")?.unwrap_or_default(),
    })
}

/// A run-scoped file applies when it names no run or this run.
pub fn for_run(file_run: &Option<String>, run_id: &str) -> bool {
    file_run.as_deref().is_none_or(|r| r == run_id)
}

/// Where taken and superseded signal files go: `<root>/.metawsm/archive/`.
pub const ARCHIVE: &str = "archive";

/// `<root>/.metawsm`, opened from the workspace root down, never through a symlink: an
/// agent-writable tree must not redirect our writes or renames outside the workspace.
/// `Ok(None)`: it does not exist (and `create` is false).
fn signal_dir(root: &Path, workspace: &Path, create: bool) -> io::Result<Option<OwnedFd>> {
    let rel = crate::fsio::relative_to(workspace, root)?;
    match crate::fsio::open_beneath(workspace, &rel.join(".metawsm"), create) {
        Ok(fd) => Ok(Some(fd)),
        Err(e) if e.kind() == io::ErrorKind::NotFound && !create => Ok(None),
        Err(e) => Err(e),
    }
}

/// The answer file the agent reads, written beside the request: a fresh temp file
/// (O_EXCL, O_NOFOLLOW) renamed over the target, both inside the directory descriptor.
pub fn write_response(root: &Path, workspace: &Path, body: &Value) -> io::Result<PathBuf> {
    use nix::fcntl::{openat, renameat, OFlag};
    use nix::sys::stat::Mode;
    use nix::unistd::{unlinkat, UnlinkatFlags};
    let dir = signal_dir(root, workspace, true)?
        .ok_or_else(|| io::Error::other("no signal directory"))?;
    let path = signal_path(root, GUIDANCE_RESPONSE);
    let tmp = format!(".{}.tmp", crate::fsio::unique_name(GUIDANCE_RESPONSE, 0));
    let mut text = serde_json::to_string_pretty(body).map_err(io::Error::other)?;
    text.push('\n');
    let flags =
        OFlag::O_WRONLY | OFlag::O_CREAT | OFlag::O_EXCL | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC;
    let fd = openat(&dir, tmp.as_str(), flags, Mode::from_bits_truncate(0o644))?;
    let mut f = fs::File::from(fd);
    let written = io::Write::write_all(&mut f, text.as_bytes())
        .and_then(|_| f.sync_all())
        .and_then(|_| {
            renameat(&dir, tmp.as_str(), &dir, GUIDANCE_RESPONSE).map_err(io::Error::from)
        });
    if written.is_err() {
        let _ = unlinkat(&dir, tmp.as_str(), UnlinkatFlags::NoRemoveDir);
    }
    written.map(|_| path)
}

/// Moves `<root>/.metawsm/<name>` into the archive; returns the archive directory and
/// the new name, or None when there was no such file.
fn archive(
    root: &Path,
    workspace: &Path,
    name: &str,
    now: i64,
    suffix: &str,
) -> io::Result<Option<(OwnedFd, String)>> {
    let Some(dir) = signal_dir(root, workspace, false)? else {
        return Ok(None);
    };
    // Only plain files are ours to move (a planted directory or FIFO is left alone).
    match nix::sys::stat::fstatat(&dir, name, nix::fcntl::AtFlags::AT_SYMLINK_NOFOLLOW) {
        Err(nix::errno::Errno::ENOENT) => return Ok(None),
        Err(e) => return Err(e.into()),
        Ok(_) => {}
    }
    let arch = crate::fsio::open_subdir(&dir, ARCHIVE, true)?;
    let to = format!("{}{suffix}", crate::fsio::unique_name(name, now));
    match crate::fsio::rename_in(&dir, name, &arch, &to) {
        Ok(()) => Ok(Some((arch, to))),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e),
    }
}

/// Suffix of a request taken but not yet known to be recorded (see `take_guidance`).
const STAGED: &str = ".taken";

/// A request taken from `root`, and where its staged copy lies until it is recorded.
#[derive(Debug, Clone, PartialEq)]
pub struct Taken {
    pub staged: PathBuf,
    /// When it was taken (its recording, if any, is no older).
    pub taken_at: i64,
    pub request: GuidanceRequest,
}

/// Takes this run's guidance requests: the live request is moved to
/// `.metawsm/archive/<name>.<time>…taken` first and then read from there, so the
/// question recorded is exactly the one taken, and a newer one written meanwhile stays in
/// place for the next tick. Nothing is deleted. A staged copy becomes a plain archive
/// file (`settle`) once the tick committed it; one left by a tick that was killed is
/// taken again first (the caller skips it when it was recorded after all). A request for
/// another run is left where it is; one older than `since` (an earlier run's) is not
/// this run's.
pub fn take_guidance(
    root: &Path,
    workspace: &Path,
    run_id: &str,
    since: i64,
    now: i64,
) -> (Vec<Taken>, Vec<(PathBuf, String)>) {
    let (mut taken, mut bad) = (Vec::new(), Vec::new());
    let archive_dir = root.join(".metawsm").join(ARCHIVE);
    let mut staged: Vec<String> = fs::read_dir(&archive_dir)
        .map(|d| {
            d.flatten()
                .filter_map(|e| e.file_name().into_string().ok())
                .filter(|n| n.starts_with(GUIDANCE_REQUEST) && n.ends_with(STAGED))
                .collect()
        })
        .unwrap_or_default();
    match read_since(root, GUIDANCE_REQUEST, parse_guidance, since) {
        Read_::Found(_, g) if for_run(&g.run_id, run_id) => {
            match archive(root, workspace, GUIDANCE_REQUEST, now, STAGED) {
                Ok(Some((_, name))) => staged.push(name),
                Ok(None) => {}
                Err(e) => bad.push((
                    signal_path(root, GUIDANCE_REQUEST),
                    format!("cannot take it: {e}"),
                )),
            }
        }
        Read_::Bad(p, why) => bad.push((p, why)),
        _ => {}
    }
    // Oldest first: names carry the time they were taken.
    staged.sort_by_key(|n| (taken_time(n), n.clone()));
    for name in staged {
        let path = archive_dir.join(&name);
        match crate::fsio::read_bounded(&path, MAX_SIGNAL_BYTES) {
            Ok(Some(bytes)) => match parse_guidance(&bytes) {
                Ok(g) if for_run(&g.run_id, run_id) => taken.push(Taken {
                    staged: path,
                    taken_at: taken_time(&name),
                    request: g,
                }),
                // Another run's (swapped in between): it stays staged for that run.
                Ok(_) => {}
                Err(e) => {
                    bad.push((path.clone(), e));
                    settle(workspace, &path);
                }
            },
            Ok(None) => {}
            Err(e) => bad.push((path, format!("unreadable: {e}"))),
        }
    }
    (taken, bad)
}

/// `<name>.<unix time>.…`: the time a staged request was taken.
fn taken_time(name: &str) -> i64 {
    name.strip_prefix(GUIDANCE_REQUEST)
        .and_then(|r| r.strip_prefix('.'))
        .and_then(|r| r.split('.').next())
        .and_then(|t| t.parse().ok())
        .unwrap_or(0)
}

/// A staged request was recorded: it becomes a plain archive file (renamed inside the
/// archive directory's descriptor, opened from the workspace root down).
pub fn settle(workspace: &Path, staged: &Path) {
    let (Some(dir), Some(name)) = (staged.parent(), staged.file_name().and_then(|n| n.to_str()))
    else {
        return;
    };
    let Some(plain) = name.strip_suffix(STAGED) else {
        return;
    };
    let Ok(rel) = crate::fsio::relative_to(workspace, dir) else {
        return;
    };
    if let Ok(fd) = crate::fsio::open_beneath(workspace, &rel, false) {
        let _ = crate::fsio::rename_in(&fd, name, &fd, plain);
    }
}

/// A signal file, unless it was last written before `since` (left by an earlier run).
fn read_since<T>(
    root: &Path,
    name: &str,
    parse: fn(&[u8]) -> Result<T, String>,
    since: i64,
) -> Read_<T> {
    let path = signal_path(root, name);
    let older = fs::symlink_metadata(&path)
        .ok()
        .and_then(|m| m.modified().ok())
        .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
        // Whole seconds on both sides, and a second of slack for coarse file systems.
        .is_some_and(|d| (d.as_secs() as i64) + 1 < since);
    if older {
        return Read_::Absent;
    }
    read_with(root, name, parse)
}

/// This run's completion file, never one older than the run.
pub fn read_completion_since(root: &Path, since: i64) -> Read_<Completion> {
    read_since(root, COMPLETION, parse_completion, since)
}

/// Starting or restarting a run: signal files an earlier run left (completion, answer,
/// question) are moved into the archive so they cannot complete or answer this one.
/// Files that name another run are left to it. With `since` (a restart), a question is
/// only moved aside when it is older than the run: this run's questions are kept.
pub fn archive_leftovers(
    roots: &[PathBuf],
    workspace: &Path,
    run_id: &str,
    since: Option<i64>,
    now: i64,
) -> Vec<String> {
    let mut notes = Vec::new();
    for root in roots {
        for name in [COMPLETION, GUIDANCE_RESPONSE, GUIDANCE_REQUEST] {
            let path = signal_path(root, name);
            let Ok(Some(bytes)) = crate::fsio::read_bounded(&path, MAX_SIGNAL_BYTES) else {
                continue;
            };
            let owner = object(&bytes)
                .ok()
                .and_then(|m| opt_string(&m, "run_id").ok().flatten());
            if owner.as_deref().is_some_and(|o| o != run_id) {
                continue;
            }
            if name == GUIDANCE_REQUEST {
                if let Some(since) = since {
                    let fresh = fs::symlink_metadata(&path)
                        .ok()
                        .and_then(|m| m.modified().ok())
                        .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
                        .is_some_and(|d| (d.as_secs() as i64) + 1 >= since);
                    if fresh {
                        continue;
                    }
                }
            }
            match archive(root, workspace, name, now, "") {
                Ok(Some((_, to))) => notes.push(format!(
                    "{} moved to {}",
                    path.display(),
                    root.join(".metawsm").join(ARCHIVE).join(to).display()
                )),
                Ok(None) => {}
                Err(e) => notes.push(format!("{}: cannot move aside: {e}", path.display())),
            }
        }
    }
    notes
}

#[cfg(test)]
#[path = "signals_tests.rs"]
mod tests;
