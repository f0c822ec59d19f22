//! Reading an agent's screen: capture panes through tmux (many in one spawn), and clean
//! what comes back so it is safe to store, log, show and match against patterns.
//!
//! Everything a pane shows is hostile bytes: whoever runs in it chooses them.

use crate::tmux::{self, Cmd, TmuxClient, TmuxError};
use std::hash::{BuildHasher, Hasher};

/// Default bounds of a cleaned capture: enough for a dialog and its context, small
/// enough for a changelog entry or a database row.
pub const MAX_LINES: usize = 60;
pub const MAX_BYTES: usize = 8 * 1024;
/// Raw capture text beyond this (from the end) is not even looked at.
const MAX_RAW_BYTES: usize = 1024 * 1024;

/// What part of a pane to capture.
#[allow(dead_code)] // `Last`: evidence before stop/restart, question context (small, agents)
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Span {
    /// The screen as it is displayed now (the alternate screen of a full-screen TUI).
    Visible,
    /// The last `n` non-blank-trailing lines, scrollback included.
    Last(usize),
}

/// A pane target that can only be built from a session name (`=name:`, exact, the
/// session's active pane) or a pane id (`%N`): never a prefix match, never a format.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target(Kind);

#[derive(Debug, Clone, PartialEq, Eq)]
enum Kind {
    Session(String),
    Pane(String),
}

impl Target {
    pub fn session(name: &str) -> Target {
        Target(Kind::Session(name.to_string()))
    }

    /// `%` followed by digits only; anything else is refused.
    pub fn pane(id: &str) -> Option<Target> {
        let digits = id.strip_prefix('%')?;
        (!digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit()))
            .then(|| Target(Kind::Pane(id.to_string())))
    }

    fn arg(&self) -> tmux::Target<'_> {
        match &self.0 {
            Kind::Session(s) => tmux::Target::SessionPane(s),
            Kind::Pane(p) => tmux::Target::Pane(p),
        }
    }
}

/// The tmux command capturing one pane (`-J`: wrapped lines joined).
pub fn capture_cmd(target: &Target, span: Span) -> Cmd {
    let mut c = Cmd::new("capture-pane").flags(&["-p", "-J"]);
    if let Span::Last(n) = span {
        c = c.flag("-S").num(-(n.max(1) as i64));
    }
    c.target(target.arg())
}

fn limits(span: Span) -> (usize, usize) {
    match span {
        Span::Visible => (MAX_LINES.max(200), MAX_BYTES * 4),
        Span::Last(n) => (n.clamp(1, MAX_LINES.max(200)), MAX_BYTES * 4),
    }
}

/// One pane, cleaned (at most `n` lines for `Span::Last(n)`).
#[allow(dead_code)] // evidence before stop/restart, question context (small, agents)
pub fn capture(tmux: &TmuxClient, target: &Target, span: Span) -> Result<String, TmuxError> {
    let raw = tmux.run(&[capture_cmd(target, span)])?;
    let (lines, bytes) = limits(span);
    Ok(clean(&raw, lines, bytes))
}

/// Many panes in one tmux spawn, cleaned, in the order asked; `None` for a pane that
/// could not be captured. tmux stops a command list at its first failure (a pane that
/// vanished since it was observed), so then, and only then, each pane is asked alone.
#[allow(dead_code)] // evidence before stop/restart, question context (small, agents)
pub fn capture_many(tmux: &TmuxClient, targets: &[Target], span: Span) -> Vec<Option<String>> {
    if targets.is_empty() {
        return Vec::new();
    }
    match batch(tmux, targets, span) {
        Some(got) => got.into_iter().map(|s| s.map(|s| s.text)).collect(),
        None => targets
            .iter()
            .map(|t| capture(tmux, t, span).ok())
            .collect(),
    }
}

/// A pane's visible screen and title, cleaned.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Screen {
    pub text: String,
    pub title: String,
}

/// The visible screens and titles of many panes in exactly one tmux spawn (the tick's
/// budget): when the batch fails (a pane vanished meanwhile) every pane gets `None`
/// for this tick rather than one spawn each.
pub fn capture_screens(tmux: &TmuxClient, targets: &[Target]) -> Vec<Option<Screen>> {
    if targets.is_empty() {
        return Vec::new();
    }
    batch(tmux, targets, Span::Visible).unwrap_or_else(|| vec![None; targets.len()])
}

fn batch(tmux: &TmuxClient, targets: &[Target], span: Span) -> Option<Vec<Option<Screen>>> {
    let mark = marker();
    let out = tmux.run(&batch_cmds(&mark, targets, span)).ok()?;
    let (lines, bytes) = limits(span);
    Some(
        split_batch(&mark, &out, targets.len())
            .into_iter()
            .map(|part| {
                part.map(|(title, raw)| Screen {
                    text: clean(&raw, lines, bytes),
                    title: clean(&title, 1, 256),
                })
            })
            .collect(),
    )
}

/// A separator line no pane can forge: it carries a random nonce the pane never saw.
fn marker() -> String {
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u128(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or(0),
    );
    h.write_u32(std::process::id());
    format!("METAWSM-SCREEN-{:016x}", h.finish())
}

/// Per pane, `display-message` prints the separator and the pane's title (tmux drops
/// control characters from titles, so it stays on the separator's line), then the
/// capture follows.
pub fn batch_cmds(mark: &str, targets: &[Target], span: Span) -> Vec<Cmd> {
    let mut cmds = Vec::with_capacity(targets.len() * 2);
    for (i, t) in targets.iter().enumerate() {
        cmds.push(
            Cmd::new("display-message")
                .flag("-p")
                .target(t.arg())
                .format(&format!("{mark}\t{i}\t#{{pane_title}}")),
        );
        cmds.push(capture_cmd(t, span));
    }
    cmds
}

/// Splits a batch's output at the separators into (title, text) per pane. A pane whose
/// separator is missing (or repeated: a pane cannot print it, so that would be a tmux
/// surprise) gets `None`.
pub fn split_batch(mark: &str, out: &str, n: usize) -> Vec<Option<(String, String)>> {
    let mut parts: Vec<Option<(String, String)>> = vec![None; n];
    let mut cur: Option<usize> = None;
    for line in out.split('\n') {
        let head = line.strip_prefix(mark).and_then(|r| r.strip_prefix('\t'));
        if let Some((i, title)) = head.and_then(|r| {
            let (i, title) = r.split_once('\t').unwrap_or((r, ""));
            i.parse::<usize>()
                .ok()
                .filter(|&i| i < n)
                .map(|i| (i, title))
        }) {
            cur = parts[i].is_none().then_some(i);
            if let Some(i) = cur {
                parts[i] = Some((title.to_string(), String::new()));
            }
            continue;
        }
        if let Some((_, s)) = cur.and_then(|i| parts[i].as_mut()) {
            if s.len() <= MAX_RAW_BYTES {
                s.push_str(line);
                s.push('\n');
            }
        }
    }
    parts
}

/// Clean text from a pane: escape sequences (CSI, OSC — OSC 52 clipboard writes
/// included —, DCS, SOS/PM/APC, 8-bit C1 forms, lone ESC) and control characters
/// removed (TAB becomes a space), invisible or line-breaking format characters dropped,
/// trailing spaces trimmed, blank lines at both ends dropped; at most `max_lines`
/// lines and `max_bytes` bytes, keeping the end (where prompts and dialogs are).
pub fn clean(raw: &str, max_lines: usize, max_bytes: usize) -> String {
    // A bounded tail, from a line start, so a huge capture costs nothing extra.
    let raw = if raw.len() > MAX_RAW_BYTES {
        let mut cut = raw.len() - MAX_RAW_BYTES;
        while !raw.is_char_boundary(cut) {
            cut += 1;
        }
        let tail = &raw[cut..];
        tail.find('\n').map_or(tail, |i| &tail[i + 1..])
    } else {
        raw
    };
    let plain = crate::llm::strip_ansi(raw);
    let mut lines: Vec<String> = plain
        .split('\n')
        .map(|l| {
            l.chars()
                .filter_map(|c| match c {
                    '\t' => Some(' '),
                    // Zero-width and line/paragraph separators: invisible, or a line
                    // break some readers honour and others do not.
                    '\u{200B}'..='\u{200F}' | '\u{2028}' | '\u{2029}' | '\u{2060}' | '\u{FEFF}' => {
                        None
                    }
                    c => Some(c),
                })
                .collect::<String>()
                .trim_end()
                .to_string()
        })
        .collect();
    while lines.last().is_some_and(|l| l.is_empty()) {
        lines.pop();
    }
    let first = lines
        .iter()
        .position(|l| !l.is_empty())
        .unwrap_or(lines.len());
    let start = first.max(lines.len().saturating_sub(max_lines));
    let mut kept: &[String] = &lines[start..];
    // Whole lines from the top go first; a single line too long loses its head.
    let mut total: usize = kept.iter().map(|l| l.len() + 1).sum();
    while total > max_bytes + 1 && kept.len() > 1 {
        total -= kept[0].len() + 1;
        kept = &kept[1..];
    }
    let mut text = kept.join("\n");
    if text.len() > max_bytes {
        let mut cut = text.len() - max_bytes;
        while !text.is_char_boundary(cut) {
            cut += 1;
        }
        text.drain(..cut);
    }
    text
}

/// Whether the pane still shows the dialog recorded as `question` (read now, in one
/// spawn): `guide` types an answer only then, never into a screen that moved on.
pub fn still_asks(
    tmux: &TmuxClient,
    pane: &str,
    kind: &str,
    extra_patterns: &[String],
    question: &str,
) -> bool {
    let Some(target) = Target::pane(pane) else {
        return false;
    };
    let Some(Some(s)) = capture_screens(tmux, &[target]).into_iter().next() else {
        return false;
    };
    let pats = patterns(extra_patterns);
    let pats: Vec<&Pattern> = pats.iter().collect();
    let r = classify(kind, &s.text, &s.title, &pats);
    r.state == ScreenState::Waiting && r.question == question
}

pub mod classify;
pub use classify::*;

#[cfg(test)]
mod classify_tests;
#[cfg(test)]
mod tests;
