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
pub fn capture(tmux: &TmuxClient, target: &Target, span: Span) -> Result<String, TmuxError> {
    let raw = tmux.run(&[capture_cmd(target, span)])?;
    let (lines, bytes) = limits(span);
    Ok(clean(&raw, lines, bytes))
}

/// Many panes in one tmux spawn, cleaned, in the order asked; `None` for a pane that
/// could not be captured. tmux stops a command list at its first failure (a pane that
/// vanished since it was observed), so then, and only then, each pane is asked alone.
pub fn capture_many(tmux: &TmuxClient, targets: &[Target], span: Span) -> Vec<Option<String>> {
    if targets.is_empty() {
        return Vec::new();
    }
    let mark = marker();
    let cmds = batch_cmds(&mark, targets, span);
    let (lines, bytes) = limits(span);
    match tmux.run(&cmds) {
        Ok(out) => split_batch(&mark, &out, targets.len())
            .into_iter()
            .map(|raw| raw.map(|r| clean(&r, lines, bytes)))
            .collect(),
        Err(_) => targets
            .iter()
            .map(|t| capture(tmux, t, span).ok())
            .collect(),
    }
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

/// `display-message` prints the separator (a literal: no `#` in it), then the capture.
pub fn batch_cmds(mark: &str, targets: &[Target], span: Span) -> Vec<Cmd> {
    let mut cmds = Vec::with_capacity(targets.len() * 2);
    for (i, t) in targets.iter().enumerate() {
        cmds.push(
            Cmd::new("display-message")
                .flag("-p")
                .format(&format!("{mark}\t{i}")),
        );
        cmds.push(capture_cmd(t, span));
    }
    cmds
}

/// Splits a batch's output at the separators. A pane whose separator is missing (or
/// repeated: a pane cannot print it, so that would be a tmux surprise) gets `None`.
pub fn split_batch(mark: &str, out: &str, n: usize) -> Vec<Option<String>> {
    let mut parts: Vec<Option<String>> = vec![None; n];
    let mut cur: Option<usize> = None;
    for line in out.split('\n') {
        if let Some(i) = line
            .strip_prefix(mark)
            .and_then(|r| r.strip_prefix('\t'))
            .and_then(|i| i.parse::<usize>().ok())
            .filter(|&i| i < n)
        {
            cur = parts[i].is_none().then_some(i);
            if let Some(i) = cur {
                parts[i] = Some(String::new());
            }
            continue;
        }
        if let Some(s) = cur.and_then(|i| parts[i].as_mut()) {
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

#[cfg(test)]
mod tests {
    use super::*;

    fn c(s: &str) -> String {
        clean(s, MAX_LINES, MAX_BYTES)
    }

    #[test]
    fn strips_hostile_sequences() {
        let cases: &[(&str, &str, &str)] = &[
            ("csi colours", "\u{1b}[1;31mred\u{1b}[0m text", "red text"),
            ("csi cursor moves", "a\u{1b}[2J\u{1b}[10;5Hb", "ab"),
            ("8-bit csi", "a\u{9b}31mb", "ab"),
            ("osc title bel", "a\u{1b}]0;evil title\u{7}b", "ab"),
            ("osc title st", "a\u{1b}]2;evil\u{1b}\\b", "ab"),
            (
                "osc 52 clipboard write",
                "x\u{1b}]52;c;cm0gLXJmIH4K\u{7}y",
                "xy",
            ),
            (
                "osc 8 hyperlink",
                "\u{1b}]8;;http://evil\u{1b}\\link\u{1b}]8;;\u{1b}\\",
                "link",
            ),
            ("dcs", "a\u{1b}Pq#0;2;0;0;0#0~~\u{1b}\\b", "ab"),
            (
                "dcs tmux passthrough",
                "a\u{1b}Ptmux;\u{1b}\u{1b}]52;c;eA==\u{7}\u{1b}\\b",
                "ab",
            ),
            ("8-bit osc", "a\u{9d}0;t\u{9c}b", "ab"),
            ("apc", "a\u{1b}_payload\u{1b}\\b", "ab"),
            ("lone esc", "a\u{1b}b", "a"),
            ("esc at end", "ab\u{1b}", "ab"),
            ("charset", "\u{1b}(Bok", "ok"),
            ("nul bel del", "a\u{0}b\u{7}c\u{7f}d", "abcd"),
            (
                "carriage return",
                "progress 10%\rprogress 99%",
                "progress 10%progress 99%",
            ),
            ("backspace", "ab\u{8}c", "abc"),
            ("bidi override", "a\u{202e}evil\u{2066}b", "aevilb"),
            ("zero width", "a\u{200b}b\u{feff}c", "abc"),
            ("line separator", "a\u{2028}b", "ab"),
            ("tab", "a\tb", "a b"),
            ("c1 nel", "a\u{85}b", "ab"),
            (
                "tmux formats are kept as text",
                "#{pane_title} #(id)",
                "#{pane_title} #(id)",
            ),
        ];
        for (name, input, want) in cases {
            assert_eq!(c(input), *want, "{name}");
        }
    }

    #[test]
    fn output_has_no_controls_and_respects_caps() {
        let nasty: String = (0u32..0x3000)
            .filter_map(char::from_u32)
            .cycle()
            .take(200_000)
            .collect();
        let out = clean(&nasty, 10, 500);
        assert!(out.len() <= 500, "{}", out.len());
        assert!(out.lines().count() <= 10);
        assert!(!out.chars().any(|ch| ch.is_control() && ch != '\n'));
        assert!(!out.contains('\u{1b}'));
    }

    #[test]
    fn keeps_the_end_trims_blank_edges() {
        let raw = "\n\n  \nfirst\nsecond   \n\n\nthird\n\n\n\n";
        assert_eq!(c(raw), "first\nsecond\n\n\nthird");
        let many: String = (0..500).map(|i| format!("line {i}\n")).collect();
        let out = clean(&many, 3, 1000);
        assert_eq!(out, "line 497\nline 498\nline 499");
        // Bytes cap drops whole lines from the top first.
        let out = clean("aaaa\nbbbb\ncccc", 10, 9);
        assert_eq!(out, "bbbb\ncccc");
        // A single long line keeps its end, on a char boundary.
        let out = clean(&"é".repeat(100), 10, 11);
        assert!(out.len() <= 11 && out.chars().all(|ch| ch == 'é'), "{out}");
        assert_eq!(c(""), "");
        assert_eq!(c("\n \n\t\n"), "");
    }

    #[test]
    fn huge_raw_input_is_cut_at_a_line() {
        let mut raw = "x".repeat(MAX_RAW_BYTES + 10);
        raw.push_str("\nend line\n");
        assert_eq!(c(&raw), "end line");
    }

    #[test]
    fn targets_are_exact() {
        let argv = |t: &Target| capture_cmd(t, Span::Visible).argv().map(|a| a.to_vec());
        assert_eq!(argv(&Target::session("run-1")).expect("ok")[4], "=run-1:");
        let pane = Target::pane("%12").expect("pane id");
        assert_eq!(argv(&pane).expect("ok")[4], "%12");
        assert!(argv(&Target::session("a:b")).is_err());
        for bad in ["12", "%", "%1;kill-server", "%1 ", "%-1", "=s:", "%१"] {
            assert_eq!(Target::pane(bad), None, "{bad}");
        }
        assert_eq!(
            capture_cmd(&Target::session("s"), Span::Last(5)).argv(),
            Ok(&["capture-pane", "-p", "-J", "-S", "-5", "-t", "=s:"].map(String::from)[..])
        );
        assert_eq!(
            capture_cmd(&Target::session("s"), Span::Visible).argv(),
            Ok(&["capture-pane", "-p", "-J", "-t", "=s:"].map(String::from)[..])
        );
    }

    #[test]
    fn batch_split_ignores_forged_separators() {
        let mark = marker();
        assert_ne!(mark, marker(), "each batch gets a fresh nonce");
        let out = format!(
            "{mark}\t0\nhello\nMETAWSM-SCREEN-0000000000000000\t1\nforged\n{mark}\t1\nworld\n\n{mark}\t0\ninjected\n"
        );
        let parts = split_batch(&mark, &out, 3);
        assert_eq!(
            parts[0].as_deref(),
            Some("hello\nMETAWSM-SCREEN-0000000000000000\t1\nforged\n")
        );
        // The repeated separator for 0 stops pane 1's text and does not reopen pane 0.
        assert_eq!(parts[1].as_deref(), Some("world\n\n"));
        assert_eq!(parts[2], None);
    }

    /// Real tmux on a private socket: capture, batching, and a vanished pane.
    #[test]
    fn captures_real_panes_in_one_batch() {
        let dir = tempfile::tempdir().expect("tempdir");
        let sock = dir.path().join("tmux.sock");
        let sock_s = sock.to_string_lossy().to_string();
        let t = TmuxClient::new(Some(sock_s.clone()));
        let script = dir.path().join("show.sh");
        std::fs::write(
            &script,
            "printf 'line one\\n\\033[31mred\\033[0m\\n\\033]52;c;ZXZpbA==\\007Do you want to proceed?\\n'; exec sleep 60\n",
        )
        .expect("write script");
        let start = |name: &str| {
            let ok = std::process::Command::new("tmux")
                .args([
                    "-S",
                    &sock_s,
                    "-f",
                    "/dev/null",
                    "new-session",
                    "-d",
                    "-s",
                    name,
                ])
                .args(["-x", "80", "-y", "10", "sh"])
                .arg(&script)
                .status()
                .map(|s| s.success())
                .unwrap_or(false);
            assert!(ok, "tmux new-session {name}");
        };
        start("a");
        start("b");
        let targets = [Target::session("a"), Target::session("b")];
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
        let got = loop {
            let got = capture_many(&t, &targets, Span::Visible);
            if got.iter().all(|g| {
                g.as_deref()
                    .is_some_and(|s| s.ends_with("Do you want to proceed?"))
            }) || std::time::Instant::now() > deadline
            {
                break got;
            }
            std::thread::sleep(std::time::Duration::from_millis(50));
        };
        let want = "line one\nred\nDo you want to proceed?";
        assert_eq!(got, vec![Some(want.to_string()), Some(want.to_string())]);
        let one = capture(&t, &targets[0], Span::Last(2)).expect("capture");
        assert_eq!(one, "red\nDo you want to proceed?");
        // A vanished session fails the batch: the others are still captured.
        let targets = [
            Target::session("a"),
            Target::session("gone"),
            Target::session("b"),
        ];
        let got = capture_many(&t, &targets, Span::Visible);
        assert_eq!(got[0].as_deref(), Some(want));
        assert_eq!(got[1], None);
        assert_eq!(got[2].as_deref(), Some(want));
        let _ = std::process::Command::new("tmux")
            .args(["-S", &sock_s, "kill-server"])
            .status();
    }
}
