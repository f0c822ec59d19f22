//! Escalation summaries appended to the ticket's `changelog.md`, never outside the workspace.

use std::fs::{self, OpenOptions};
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

/// docmgr's layout is `ttmp/YYYY/MM/DD/TICKET--slug`; a few levels is enough.
const MAX_DEPTH: usize = 5;

#[derive(Debug, Clone, PartialEq)]
pub struct Entry<'a> {
    pub at: &'a str,
    pub run_id: &'a str,
    pub intent: &'a str,
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
    let decision = if e.intent == "escalate_guidance" {
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

/// Appends with one O_APPEND write, then fsync. The file must resolve inside `workspace`.
pub fn append(workspace: &Path, dir: &Path, text: &str) -> Result<PathBuf, String> {
    let ws = workspace
        .canonicalize()
        .map_err(|e| format!("workspace {}: {e}", workspace.display()))?;
    let path = dir.join("changelog.md");
    if let Ok(real) = path.canonicalize() {
        if !real.starts_with(&ws) {
            return Err(format!("{} resolves outside the workspace", path.display()));
        }
    }
    let mut f = OpenOptions::new()
        .read(true)
        .append(true)
        .create(true)
        .mode(0o644)
        // A symlink planted after the check must not be followed, nor a FIFO block us.
        .custom_flags(nix::libc::O_NOFOLLOW | nix::libc::O_NONBLOCK)
        .open(&path)
        .map_err(|e| format!("open {}: {e}", path.display()))?;
    let meta = f
        .metadata()
        .map_err(|e| format!("stat {}: {e}", path.display()))?;
    // A hard link would let an append land in a file outside the workspace.
    if !meta.is_file() || std::os::unix::fs::MetadataExt::nlink(&meta) != 1 {
        return Err(format!("{} is not a plain file", path.display()));
    }
    let mut last = [0u8; 1];
    let last = match meta.len() {
        0 => None,
        n => std::os::unix::fs::FileExt::read_at(&f, &mut last, n - 1)
            .ok()
            .filter(|r| *r == 1)
            .map(|_| last[0]),
    };
    let text = format!("{}{text}", separator(last));
    f.write_all(text.as_bytes())
        .map_err(|e| format!("write {}: {e}", path.display()))?;
    f.sync_all()
        .map_err(|e| format!("fsync {}: {e}", path.display()))?;
    Ok(path)
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
        assert!(err.contains("not a plain file"), "{err}");
        assert_eq!(fs::read_to_string(&victim).expect("r"), "keep");
    }

    #[test]
    fn entry_is_one_heading_with_bullets() {
        let e = Entry {
            at: "2026-11-25T00:00:00Z",
            run_id: "run-1",
            intent: "escalate_guidance",
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
