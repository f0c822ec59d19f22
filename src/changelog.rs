//! Escalation summaries appended to the ticket's `changelog.md`, never outside the workspace.

use crate::model::Intent;
use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};

/// docmgr's layout is `ttmp/YYYY/MM/DD/TICKET--slug`; a few levels is enough.
const MAX_DEPTH: usize = 5;

#[derive(Debug, Clone, PartialEq)]
pub struct Entry<'a> {
    pub at: &'a str,
    pub run_id: &'a str,
    pub intent: Intent,
    pub summary: &'a str,
    pub question: Option<&'a str>,
    pub context: Option<&'a str>,
    pub attempts: i64,
    pub budget: i64,
    pub answer_command: &'a str,
}

/// One line per bullet: newlines in agent-provided text would forge headings.
fn one_line(s: &str) -> String {
    s.chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect::<String>()
        .trim()
        .to_string()
}

/// The original metawsm's entry (blank line, `## <RFC 3339 local time>`, blank line,
/// `Operator escalation for run`, `Intent`, `Summary`, `Requested decision`) so people and
/// scripts that grep for it still find it; our extra bullets follow.
pub fn format_entry(e: &Entry<'_>) -> String {
    let decision = if e.intent == Intent::EscalateGuidance {
        "answer the agent's question with the command below.".to_string()
    } else {
        format!(
            "review `metawsm-tick run show {}` and provide guidance.",
            e.run_id
        )
    };
    let mut s = format!(
        "\n## {}\n\n- Operator escalation for run `{}`\n- Intent: `{}`\n- Summary: {}\n- Requested decision: {decision}\n",
        e.at,
        e.run_id,
        e.intent,
        one_line(e.summary)
    );
    if let Some(q) = e.question {
        s.push_str(&format!("- Question: {}\n", one_line(q)));
    }
    if let Some(c) = e.context.filter(|c| !c.is_empty()) {
        s.push_str(&format!("- Context: {}\n", one_line(c)));
    }
    s.push_str(&format!(
        "- Restart attempts: {}/{}\n- Answer with: `{}`\n",
        e.attempts, e.budget, e.answer_command
    ));
    s
}

fn safe_ticket(ticket: &str) -> bool {
    !ticket.is_empty()
        && ticket != "."
        && ticket != ".."
        && !ticket.contains('/')
        && !ticket.contains('\\')
        && !ticket.contains('\0')
}

fn find_named(dir: &Path, ticket: &str, depth: usize) -> Option<PathBuf> {
    let mut entries: Vec<_> = fs::read_dir(dir).ok()?.filter_map(Result::ok).collect();
    entries.sort_by_key(|e| e.file_name());
    let prefix = format!("{ticket}--");
    for e in &entries {
        let name = e.file_name().to_string_lossy().into_owned();
        let is_dir = e.path().is_dir();
        if is_dir && (name == ticket || name.starts_with(&prefix)) {
            return Some(e.path());
        }
    }
    if depth == 0 {
        return None;
    }
    for e in entries {
        // Do not walk through symlinked directories while searching.
        let is_real_dir = e.file_type().map(|t| t.is_dir()).unwrap_or(false);
        if is_real_dir {
            if let Some(p) = find_named(&e.path(), ticket, depth - 1) {
                return Some(p);
            }
        }
    }
    None
}

/// What goes before an entry so its heading never glues to a last line without newline.
pub fn separator(last_byte: Option<u8>) -> &'static str {
    match last_byte {
        Some(b) if b != b'\n' => "\n",
        _ => "",
    }
}

/// Where tickets may live: `<ws>/<doc-home repo>/ttmp` when the repo is named, else
/// `<ws>/ttmp` and then `<ws>/<dir>/ttmp` for each immediate sub-directory (sorted;
/// symlinks not followed), as docmgr lays a workspace out.
pub fn ttmp_roots(ws: &Path, doc_home_repo: Option<&str>) -> Vec<PathBuf> {
    if let Some(repo) = doc_home_repo.filter(|r| !r.is_empty()) {
        return vec![ws.join(repo).join("ttmp")];
    }
    let mut out = vec![ws.join("ttmp")];
    let mut subs: Vec<PathBuf> = fs::read_dir(ws)
        .map(|rd| {
            rd.filter_map(Result::ok)
                .filter(|e| e.file_type().map(|t| t.is_dir()).unwrap_or(false))
                .map(|e| e.path().join("ttmp"))
                .filter(|p| p.is_dir())
                .collect()
        })
        .unwrap_or_default();
    subs.sort();
    out.extend(subs);
    out
}

/// The ticket directory, resolved and proven to be inside the workspace.
pub fn ticket_dir(
    workspace: &Path,
    doc_home_repo: Option<&str>,
    ticket: &str,
    explicit: Option<&str>,
) -> Result<PathBuf, String> {
    let ws = workspace
        .canonicalize()
        .map_err(|e| format!("workspace {}: {e}", workspace.display()))?;
    let candidate = match explicit {
        Some(dir) => {
            let p = Path::new(dir);
            if p.is_absolute() {
                p.to_path_buf()
            } else {
                ws.join(p)
            }
        }
        None => {
            if !safe_ticket(ticket) {
                return Err(format!("unsafe ticket name {ticket:?}"));
            }
            let roots = ttmp_roots(&ws, doc_home_repo);
            roots
                .iter()
                .find_map(|base| find_named(base, ticket, MAX_DEPTH))
                .ok_or_else(|| {
                    let searched = if doc_home_repo.is_some_and(|r| !r.is_empty()) {
                        roots[0].display().to_string()
                    } else {
                        format!("{}/ttmp or {}/*/ttmp", ws.display(), ws.display())
                    };
                    format!("no ticket directory for {ticket} under {searched}")
                })?
        }
    };
    let real = candidate
        .canonicalize()
        .map_err(|e| format!("ticket dir {}: {e}", candidate.display()))?;
    if !real.starts_with(&ws) {
        return Err(format!(
            "ticket dir {} resolves outside the workspace ({})",
            candidate.display(),
            real.display()
        ));
    }
    if !real.is_dir() {
        return Err(format!("ticket dir {} is not a directory", real.display()));
    }
    Ok(real)
}

/// Why an append did not happen. `retry`: the entry is still owed (the file system
/// failed mid-write: full, over quota, I/O error) rather than refused for good.
#[derive(Debug, Clone, PartialEq)]
pub struct AppendFailure {
    pub message: String,
    pub retry: bool,
}

impl std::fmt::Display for AppendFailure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

/// Appends `text` to `dir/changelog.md`, whole or not at all. Every directory from the
/// workspace root down to `dir` is opened with O_NOFOLLOW|O_DIRECTORY and the file is
/// opened inside the last one, so a directory swapped for a symlink at any moment cannot
/// lead the write outside. A short or failed write is cut back to the previous length.
/// An entry already at the end of the file (written, but its success not recorded) is
/// not written twice.
pub fn append(workspace: &Path, dir: &Path, text: &str) -> Result<PathBuf, AppendFailure> {
    use nix::fcntl::{openat, OFlag};
    use nix::sys::stat::Mode;
    let path = dir.join("changelog.md");
    let refused = |message: String| AppendFailure {
        message,
        retry: false,
    };
    let failed = |message: String| AppendFailure {
        message,
        retry: true,
    };
    let rel = crate::fsio::relative_to(workspace, dir)
        .map_err(|e| refused(format!("{}: {e}", dir.display())))?;
    let dirfd = crate::fsio::open_beneath(workspace, &rel, false)
        .map_err(|e| refused(format!("{}: {e}", dir.display())))?;
    // O_NONBLOCK: a FIFO planted at the name must not block us (it is refused below).
    // Read and write: the tail is compared before appending.
    let flags = OFlag::O_RDWR
        | OFlag::O_APPEND
        | OFlag::O_CREAT
        | OFlag::O_NOFOLLOW
        | OFlag::O_NONBLOCK
        | OFlag::O_CLOEXEC;
    let fd = openat(
        &dirfd,
        "changelog.md",
        flags,
        Mode::from_bits_truncate(0o644),
    )
    .map_err(|e| match e {
        nix::errno::Errno::ENOSPC | nix::errno::Errno::EDQUOT | nix::errno::Errno::EIO => {
            failed(format!("open {}: {e}", path.display()))
        }
        _ => refused(format!("open {}: {e}", path.display())),
    })?;
    let f = fs::File::from(fd);
    let meta = f
        .metadata()
        .map_err(|e| refused(format!("stat {}: {e}", path.display())))?;
    // A hard link would let an append land in a file outside the workspace.
    if !meta.is_file() || std::os::unix::fs::MetadataExt::nlink(&meta) != 1 {
        return Err(refused(format!("{} is not a plain file", path.display())));
    }
    let before = meta.len();
    if ends_with(&f, before, text.as_bytes()) {
        return Ok(path);
    }
    let mut last = [0u8; 1];
    let last = match before {
        0 => None,
        n => std::os::unix::fs::FileExt::read_at(&f, &mut last, n - 1)
            .ok()
            .filter(|r| *r == 1)
            .map(|_| last[0]),
    };
    let text = format!("{}{text}", separator(last));
    let written = (&f).write_all(text.as_bytes()).and_then(|_| f.sync_all());
    if let Err(e) = written {
        // No torn entry: back to the length it had, so a retry writes it whole once.
        let cut = f.set_len(before).and_then(|_| f.sync_all());
        let note = match cut {
            Ok(()) => "cut back, will retry".to_string(),
            Err(c) => format!("could not cut back: {c}"),
        };
        return Err(failed(format!("write {}: {e} ({note})", path.display())));
    }
    Ok(path)
}

/// Whether the file's last bytes are exactly `text`.
fn ends_with(f: &fs::File, len: u64, text: &[u8]) -> bool {
    use std::os::unix::fs::FileExt;
    let n = text.len() as u64;
    if text.is_empty() || len < n {
        return false;
    }
    let mut buf = vec![0u8; text.len()];
    match f.read_exact_at(&mut buf, len - n) {
        Ok(()) => buf == text,
        Err(_) => false,
    }
}

/// An entry the file system refused mid-write, kept (in the database's meta table) until
/// a later tick writes it whole.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Owed {
    pub run_id: String,
    pub workspace: String,
    pub doc_home_repo: Option<String>,
    pub ticket: String,
    pub ticket_dir: Option<String>,
    pub entry: String,
}

pub const OUTBOX_KEY: &str = "changelog_outbox";
/// A file system that stays full must not grow the database without bound.
const MAX_OWED: usize = 64;

/// Resolves the ticket directory and appends the entry.
pub fn deliver(o: &Owed) -> Result<PathBuf, AppendFailure> {
    let ws = Path::new(&o.workspace);
    let dir = ticket_dir(
        ws,
        o.doc_home_repo.as_deref(),
        &o.ticket,
        o.ticket_dir.as_deref(),
    )
    .map_err(|message| AppendFailure {
        message,
        retry: false,
    })?;
    append(ws, &dir, &o.entry)
}

pub fn load_outbox(text: Option<&str>) -> Vec<Owed> {
    text.and_then(|t| serde_json::from_str(t).ok())
        .unwrap_or_default()
}

pub fn outbox_text(owed: &[Owed]) -> String {
    serde_json::to_string(owed).unwrap_or_else(|_| "[]".into())
}

/// Delivers (or records as owed) one entry: the events to record, as (run, kind, message).
pub fn deliver_or_owe(o: Owed, owed: &mut Vec<Owed>) -> (&'static str, String) {
    match deliver(&o) {
        Ok(path) => ("escalation_written", path.display().to_string()),
        Err(e) if e.retry => {
            let msg = format!("ticket {}: {e}", o.ticket);
            if owed.len() < MAX_OWED {
                owed.push(o);
            }
            ("escalation_unwritten", msg)
        }
        Err(e) => ("escalation_unwritten", format!("ticket {}: {e}", o.ticket)),
    }
}

/// Tries every owed entry again; returns the events (a retry that fails the same way
/// again is not news) and keeps what is still owed.
pub fn retry_owed(owed: &mut Vec<Owed>) -> Vec<(String, &'static str, String)> {
    let mut events = Vec::new();
    for o in std::mem::take(owed) {
        match deliver(&o) {
            Ok(path) => events.push((
                o.run_id.clone(),
                "escalation_written",
                format!("{} (retried)", path.display()),
            )),
            Err(e) if e.retry => owed.push(o),
            Err(e) => events.push((
                o.run_id.clone(),
                "escalation_unwritten",
                format!("ticket {}: {e} (given up)", o.ticket),
            )),
        }
    }
    events
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::symlink;

    #[test]
    fn finds_docmgr_layout_and_exact_names() {
        let ws = tempfile::tempdir().expect("tmp");
        let t = ws.path().join("repo/ttmp/2026/02/07/MW-4--some-slug");
        fs::create_dir_all(&t).expect("mkdir");
        fs::create_dir_all(ws.path().join("repo/ttmp/MW-40--other")).expect("mkdir");
        let found = ticket_dir(ws.path(), Some("repo"), "MW-4", None).expect("found");
        assert!(found.ends_with("MW-4--some-slug"), "{}", found.display());
        assert!(ticket_dir(ws.path(), Some("repo"), "MW", None).is_err());
    }

    #[test]
    fn refuses_hostile_tickets_and_symlinks_out() {
        let ws = tempfile::tempdir().expect("tmp");
        let outside = tempfile::tempdir().expect("tmp");
        fs::create_dir_all(ws.path().join("ttmp")).expect("mkdir");
        for t in ["../../x", "..", "a/b", ""] {
            let err = ticket_dir(ws.path(), None, t, None).expect_err(t);
            assert!(err.contains("unsafe ticket"), "{err}");
        }
        symlink(outside.path(), ws.path().join("ttmp/EVIL--x")).expect("symlink");
        let err = ticket_dir(ws.path(), None, "EVIL", None).expect_err("outside");
        assert!(err.contains("outside the workspace"), "{err}");
        let err = ticket_dir(
            ws.path(),
            None,
            "x",
            Some(outside.path().to_str().expect("utf8")),
        )
        .expect_err("explicit outside");
        assert!(err.contains("outside the workspace"), "{err}");
    }

    #[test]
    fn fifos_and_hard_links_are_refused() {
        let ws = tempfile::tempdir().expect("tmp");
        let outside = tempfile::tempdir().expect("tmp");
        let a = ws.path().join("a");
        fs::create_dir_all(&a).expect("mkdir");
        nix::unistd::mkfifo(
            &a.join("changelog.md"),
            nix::sys::stat::Mode::from_bits_truncate(0o600),
        )
        .expect("mkfifo");
        // Without a reader the open fails (ENXIO); with one it is refused as not plain.
        append(ws.path(), &a, "x").expect_err("fifo");
        let b = ws.path().join("b");
        fs::create_dir_all(&b).expect("mkdir");
        let victim = outside.path().join("victim");
        fs::write(&victim, "keep").expect("w");
        fs::hard_link(&victim, b.join("changelog.md")).expect("link");
        let err = append(ws.path(), &b, "x").expect_err("hard link");
        assert!(err.message.contains("not a plain file"), "{err}");
        assert_eq!(fs::read_to_string(&victim).expect("r"), "keep");
    }

    /// The check-then-open race: a thread keeps exchanging the ticket directory with a
    /// symlink to a directory outside (renameat2 RENAME_EXCHANGE) while entries are
    /// appended. Not one byte may land outside.
    #[cfg(target_os = "linux")]
    #[test]
    fn a_directory_swapped_for_a_symlink_never_leads_outside() {
        use std::sync::atomic::{AtomicBool, Ordering};
        use std::sync::Arc;
        let ws = tempfile::tempdir().expect("tmp");
        let outside = tempfile::tempdir().expect("tmp");
        fs::create_dir_all(ws.path().join("ttmp/T-1")).expect("mkdir");
        symlink(outside.path(), ws.path().join("ttmp/swap")).expect("symlink");
        let dir = ticket_dir(ws.path(), None, "T-1", None).expect("dir");
        let ttmp = fs::File::open(ws.path().join("ttmp")).expect("open ttmp");
        let stop = Arc::new(AtomicBool::new(false));
        let swapper = {
            let stop = stop.clone();
            std::thread::spawn(move || {
                let mut swaps = 0u64;
                while !stop.load(Ordering::Relaxed) {
                    let _ = nix::fcntl::renameat2(
                        &ttmp,
                        "T-1",
                        &ttmp,
                        "swap",
                        nix::fcntl::RenameFlags::RENAME_EXCHANGE,
                    );
                    swaps += 1;
                }
                swaps
            })
        };
        let mut landed = 0;
        for _ in 0..3000 {
            if append(ws.path(), &dir, "x\n").is_ok() {
                landed += 1;
            }
        }
        stop.store(true, Ordering::Relaxed);
        let swaps = swapper.join().expect("swapper");
        assert!(swaps > 100, "the race never ran ({swaps} swaps)");
        let escaped = fs::read(outside.path().join("changelog.md")).unwrap_or_default();
        assert!(
            escaped.is_empty(),
            "{} bytes written outside the workspace ({landed} appends succeeded)",
            escaped.len()
        );
    }

    #[test]
    fn a_failed_append_is_owed_and_written_once() {
        let ws = tempfile::tempdir().expect("tmp");
        fs::create_dir_all(ws.path().join("ttmp/T-1")).expect("mkdir");
        let o = Owed {
            run_id: "r".into(),
            workspace: ws.path().to_string_lossy().into_owned(),
            doc_home_repo: None,
            ticket: "T-1".into(),
            ticket_dir: None,
            entry: "\n## e\n".into(),
        };
        let mut owed = vec![o.clone()];
        let events = retry_owed(&mut owed);
        assert!(owed.is_empty(), "{events:?}");
        assert_eq!(events[0].1, "escalation_written");
        // Written but not recorded as such (a crash): the next try does not repeat it.
        assert!(deliver(&o).is_ok());
        let text = fs::read_to_string(ws.path().join("ttmp/T-1/changelog.md")).expect("r");
        assert_eq!(text, "\n## e\n");
        // A ticket that does not resolve is not retried forever.
        let gone = Owed {
            ticket: "T-9".into(),
            ..o
        };
        let (kind, _) = deliver_or_owe(gone, &mut owed);
        assert_eq!(kind, "escalation_unwritten");
        assert!(owed.is_empty());
    }

    #[test]
    fn entry_is_one_heading_with_bullets() {
        let e = Entry {
            at: "2026-11-25T00:00:00Z",
            run_id: "run-1",
            intent: Intent::EscalateGuidance,
            summary: "agent asks\n## forged",
            question: Some("which db?"),
            context: Some(""),
            attempts: 1,
            budget: 3,
            answer_command: "metawsm-tick guide run-1 --answer …",
        };
        let s = format_entry(&e);
        assert_eq!(s.matches("\n## ").count(), 1, "{s}");
        assert!(s.starts_with(
            "\n## 2026-11-25T00:00:00Z\n\n- Operator escalation for run `run-1`\n- Intent: `escalate_guidance`\n- Summary: agent asks ## forged\n- Requested decision: "
        ), "{s}");
        assert!(s.contains("- Question: which db?\n"));
        assert!(!s.contains("Context"));
    }
}
