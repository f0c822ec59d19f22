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

// ---------------------------------------------------------------------------------------
// Classification: (agent kind, screen text, pane title, patterns) → state. Pure.

/// What a quiet interactive agent's screen says it is doing.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ScreenState {
    /// A busy marker ("esc to interrupt", a spinner): working, just quiet.
    Working,
    /// A dialog (permission request, numbered choice list) waits for a decision.
    Waiting,
    /// At its input prompt: the turn is over.
    Idle,
    /// Nothing recognised.
    Unknown,
}

/// One screen pattern (see `screen_patterns.txt` for the format).
#[derive(Debug, Clone, PartialEq)]
pub struct Pattern {
    /// An agent kind, or `*` for any.
    pub agent: String,
    pub state: ScreenState,
    /// Matched against the pane title rather than a screen line.
    pub title: bool,
    /// Lowercased, anchors removed.
    text: String,
    start: bool,
    end: bool,
    /// The line as written, for reasons and `policy show`.
    pub source: String,
}

/// The patterns that ship with the binary.
pub const BUILTIN_PATTERNS: &str = include_str!("screen_patterns.txt");

/// Parses one pattern line; `Ok(None)` for blank and `#` comment lines.
pub fn parse_pattern(line: &str) -> Result<Option<Pattern>, String> {
    let line = line.trim();
    if line.is_empty() || line.starts_with('#') {
        return Ok(None);
    }
    let mut rest = line;
    let mut field = || {
        let r = rest.trim_start();
        let end = r.find(char::is_whitespace).unwrap_or(r.len());
        let (f, tail) = r.split_at(end);
        rest = tail;
        f
    };
    let (agent, state, place) = (field(), field(), field());
    let text = rest.trim();
    let state = match state {
        "working" => ScreenState::Working,
        "waiting" => ScreenState::Waiting,
        "idle" => ScreenState::Idle,
        other => {
            return Err(format!(
                "state {other:?} must be working|waiting|idle (in {line:?})"
            ))
        }
    };
    let title = match place {
        "line" => false,
        "title" => true,
        other => return Err(format!("place {other:?} must be line|title (in {line:?})")),
    };
    if agent != "*" && !KINDS.contains(&agent) {
        return Err(format!(
            "agent {agent:?} must be * or one of {} (in {line:?})",
            KINDS.join("|")
        ));
    }
    let start = text.starts_with('^');
    let text = text.strip_prefix('^').unwrap_or(text);
    let end = text.len() > 1 && text.ends_with('$');
    let text = if end { &text[..text.len() - 1] } else { text };
    if text.is_empty() {
        return Err(format!("pattern text is empty (in {line:?})"));
    }
    Ok(Some(Pattern {
        agent: agent.to_string(),
        state,
        title,
        text: text.to_lowercase(),
        start,
        end,
        source: line.to_string(),
    }))
}

/// Parses a whole pattern text (the shipped file, or policy lines).
pub fn parse_patterns<'a>(
    lines: impl IntoIterator<Item = &'a str>,
) -> Result<Vec<Pattern>, String> {
    let mut out = Vec::new();
    for l in lines {
        if let Some(p) = parse_pattern(l)? {
            out.push(p);
        }
    }
    Ok(out)
}

/// The shipped patterns, parsed once (a unit test proves they parse).
pub fn builtin_patterns() -> &'static [Pattern] {
    static P: std::sync::OnceLock<Vec<Pattern>> = std::sync::OnceLock::new();
    P.get_or_init(|| parse_patterns(BUILTIN_PATTERNS.lines()).unwrap_or_default())
}

impl Pattern {
    fn matches(&self, text: &str) -> bool {
        let t = text.trim().to_lowercase();
        match (self.start, self.end) {
            (true, true) => t == self.text,
            (true, false) => t.starts_with(&self.text),
            (false, true) => t.ends_with(&self.text),
            (false, false) => t.contains(&self.text),
        }
    }
}

/// What a screen was read as.
#[derive(Debug, Clone, PartialEq)]
pub struct Reading {
    pub state: ScreenState,
    /// The pattern that decided, as written.
    pub matched: Option<String>,
    /// For `Waiting`: the dialog's text on one line (` / ` between its lines).
    pub question: String,
    /// The last lines of the screen, for context.
    pub tail: String,
}

/// What the pane title alone says, by the `title` patterns (waiting first, then
/// working, then idle).
pub fn title_says(kind: &str, title: &str, patterns: &[&Pattern]) -> Option<ScreenState> {
    let title = clean(title, 1, 256);
    [
        ScreenState::Waiting,
        ScreenState::Working,
        ScreenState::Idle,
    ]
    .into_iter()
    .find(|&state| {
        patterns.iter().any(|p| {
            p.title && p.state == state && (p.agent == "*" || p.agent == kind) && p.matches(&title)
        })
    })
}

/// Lines read from the bottom of the visible screen.
pub const REGION_LINES: usize = 20;
/// Lines of context kept with a reading.
pub const TAIL_LINES: usize = 15;
const QUESTION_MAX_CHARS: usize = 600;

#[derive(Debug, Clone, Copy, PartialEq)]
enum Border {
    None,
    Top,
    Bottom,
    Side,
    /// A solid horizontal rule across the screen (Claude Code draws one above a dialog).
    Rule,
}

const BOX_TOP: &[char] = &['╭', '┌', '╔', '┏'];
const BOX_BOTTOM: &[char] = &['╰', '└', '╚', '┗'];
const BOX_SIDE: &[char] = &['│', '┃', '║'];
const BOX_FILL: &[char] = &['─', '━', '═', '╮', '┐', '╗', '┓', '╯', '┘', '╝', '┛'];

/// A screen line without its box drawing, and which border it was. A line of box
/// drawing only is a rule when solid, a blank when dashed (Claude Code's dashed lines
/// frame the command inside its dialog).
fn unbox(line: &str) -> (String, Border) {
    let t = line.trim();
    if !t.is_empty() && t.chars().all(|c| ('\u{2500}'..='\u{257F}').contains(&c)) {
        let solid = t.chars().any(|c| matches!(c, '─' | '━' | '═'));
        return (
            String::new(),
            if solid { Border::Rule } else { Border::None },
        );
    }
    let first = t.chars().next();
    let border = match first {
        Some(c) if BOX_TOP.contains(&c) => Border::Top,
        Some(c) if BOX_BOTTOM.contains(&c) => Border::Bottom,
        Some(c) if BOX_SIDE.contains(&c) => Border::Side,
        _ => Border::None,
    };
    let inner: String = match border {
        Border::Top | Border::Bottom => t
            .chars()
            .filter(|c| !BOX_TOP.contains(c) && !BOX_BOTTOM.contains(c) && !BOX_FILL.contains(c))
            .collect(),
        Border::Side => t
            .trim_start_matches(BOX_SIDE)
            .trim_end_matches(BOX_SIDE)
            .to_string(),
        Border::None | Border::Rule => t.to_string(),
    };
    (inner.trim().to_string(), border)
}

/// Reads a cleaned screen (`clean`'s output) and the pane title.
pub fn classify(kind: &str, screen: &str, title: &str, patterns: &[&Pattern]) -> Reading {
    let lines: Vec<(String, Border)> = screen.lines().map(unbox).collect();
    let mut region: Vec<usize> = lines
        .iter()
        .enumerate()
        .rev()
        .filter(|(_, (l, _))| !l.is_empty())
        .map(|(i, _)| i)
        .take(REGION_LINES)
        .collect();
    region.reverse();
    let tail = {
        let from = region.len().saturating_sub(TAIL_LINES);
        region
            .get(from)
            .map(|&i| {
                screen
                    .lines()
                    .skip(i)
                    .map(str::trim_end)
                    .collect::<Vec<_>>()
                    .join("\n")
            })
            .unwrap_or_default()
    };
    let title = clean(title, 1, 256);
    for state in [
        ScreenState::Waiting,
        ScreenState::Working,
        ScreenState::Idle,
    ] {
        // Screen lines first: a dialog's line gives the question, a title only the state.
        let mut candidates: Vec<&&Pattern> = patterns
            .iter()
            .filter(|p| p.state == state && (p.agent == "*" || p.agent == kind))
            .collect();
        candidates.sort_by_key(|p| p.title);
        for p in candidates {
            let hit = if p.title {
                p.matches(&title).then_some(None)
            } else {
                region
                    .iter()
                    .rev()
                    .find(|&&i| p.matches(&lines[i].0))
                    .map(|&i| Some(i))
            };
            if let Some(at) = hit {
                let question = match (state, at) {
                    (ScreenState::Waiting, Some(_)) => {
                        // The dialog spans every line a waiting pattern knows (a heading,
                        // its options, a footer), plus what surrounds them.
                        let hits: Vec<usize> = region
                            .iter()
                            .copied()
                            .filter(|&i| {
                                patterns.iter().any(|q| {
                                    q.state == ScreenState::Waiting
                                        && !q.title
                                        && (q.agent == "*" || q.agent == kind)
                                        && q.matches(&lines[i].0)
                                })
                            })
                            .collect();
                        let top = hits.first().copied().unwrap_or(0);
                        let bottom = hits.last().copied().unwrap_or(top);
                        dialog(&lines, top, bottom)
                    }
                    _ => String::new(),
                };
                return Reading {
                    state,
                    matched: Some(p.source.clone()),
                    question,
                    tail,
                };
            }
        }
    }
    Reading {
        state: ScreenState::Unknown,
        matched: None,
        question: String::new(),
        tail,
    }
}

/// The dialog spanning lines `top..=bottom`: its box when it is in one, else those
/// lines and the ones around them up to two blank lines in a row (at most 12 non-blank
/// lines each way).
fn dialog(lines: &[(String, Border)], top: usize, bottom: usize) -> String {
    let boxed = lines[top].1 == Border::Side;
    let mut from = top;
    let mut blanks = 0;
    let mut taken = 0;
    while from > 0 && taken < 12 {
        let (l, b) = &lines[from - 1];
        if boxed && *b != Border::Side || !boxed && matches!(b, Border::Bottom | Border::Rule) {
            break;
        }
        if l.is_empty() {
            blanks += 1;
            if blanks >= 2 {
                break;
            }
        } else {
            blanks = 0;
            taken += 1;
        }
        from -= 1;
    }
    let mut to = bottom + 1;
    let (mut blanks, mut taken) = (0, 0);
    while to < lines.len() && taken < 12 {
        let (l, b) = &lines[to];
        if boxed && *b != Border::Side || !boxed && matches!(b, Border::Top | Border::Rule) {
            break;
        }
        if l.is_empty() {
            blanks += 1;
            if blanks >= 2 {
                break;
            }
        } else {
            blanks = 0;
            taken += 1;
        }
        to += 1;
    }
    let text = lines[from..to]
        .iter()
        .map(|(l, _)| l.as_str())
        .filter(|l| !l.is_empty())
        .collect::<Vec<_>>()
        .join(" / ");
    let text = text.split_whitespace().collect::<Vec<_>>().join(" ");
    if text.chars().count() > QUESTION_MAX_CHARS {
        let mut t: String = text.chars().take(QUESTION_MAX_CHARS - 1).collect();
        t.push('…');
        t
    } else {
        text
    }
}

// ---------------------------------------------------------------------------------------
// Which agents are interactive: from the start command. Pure.

/// Agent kinds patterns can name.
pub const KINDS: [&str; 11] = [
    "codex", "claude", "aider", "gemini", "qwen", "opencode", "cursor", "copilot", "goose", "amp",
    "crush",
];

/// A recognised agent CLI and whether this start command runs it interactively.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AgentKind {
    pub kind: &'static str,
    pub interactive: bool,
}

/// Reads a start command: wrappers (`env`, `VAR=…`, `nice`, `npx`, `node script`,
/// `sh -c "…"`) are looked through; the first recognised program decides.
pub fn agent_kind(argv: &[String]) -> Option<AgentKind> {
    agent_kind_depth(argv, 0)
}

fn agent_kind_depth(argv: &[String], depth: usize) -> Option<AgentKind> {
    let mut after_flag = false;
    for (i, word) in argv.iter().enumerate() {
        let name = program_name(word);
        let rest = &argv[i + 1..];
        let assignment = word.split_once('=').is_some_and(|(k, _)| {
            !k.is_empty() && k.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
        });
        match name.as_str() {
            _ if word.starts_with('-') => {
                after_flag = true;
                continue;
            }
            _ if assignment => {}
            "env" | "nice" | "nohup" | "exec" | "time" | "stdbuf" | "npx" | "pnpx" | "bunx"
            | "node" | "bun" | "deno" | "run" | "dlx" | "npm" | "pnpm" | "yarn" => {}
            "sh" | "bash" | "zsh" | "dash" | "fish" => {
                let pos = rest.iter().position(|a| a == "-c" || a == "-lc")?;
                if depth >= 3 {
                    return None;
                }
                // Each command of the script (`cd /w; exec codex`), first agent wins.
                let script = rest.get(pos + 1)?;
                return script.split([';', '&', '|', '\n']).find_map(|part| {
                    let words: Vec<String> = part
                        .split_whitespace()
                        .map(|w| w.trim_matches(|c| c == '\'' || c == '"').to_string())
                        .filter(|w| !w.is_empty())
                        .collect();
                    agent_kind_depth(&words, depth + 1)
                });
            }
            n => match kind_of(n, rest) {
                Some(k) => return Some(k),
                // The value of a wrapper's option (`env -u NAME`, `nice -n 5`).
                None if after_flag => {}
                None => return None,
            },
        }
        after_flag = false;
    }
    None
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

/// The pattern kind of an agent known to be interactive, or None for a batch agent (or
/// a program not known as an agent CLI). An adopted pane is interactive whatever its
/// command: someone started it by hand.
pub fn interactive_kind(argv: &[String], adopted: bool) -> Option<&'static str> {
    match agent_kind(argv) {
        Some(k) if k.interactive || adopted => Some(k.kind),
        Some(_) => None,
        None => adopted.then_some("*"),
    }
}

/// The shipped patterns followed by the policy's (`health.screen_patterns`; validated
/// when the policy loads, so a line that does not parse here is skipped).
pub fn patterns(extra: &[String]) -> Vec<Pattern> {
    let mut out = builtin_patterns().to_vec();
    out.extend(extra.iter().filter_map(|l| parse_pattern(l).ok().flatten()));
    out
}

/// `/x/node_modules/.bin/codex` → `codex`; `@openai/codex@0.169.0` → `codex`;
/// `cli.js` stays `cli` (unrecognised).
fn program_name(word: &str) -> String {
    let base = word.rsplit('/').next().unwrap_or(word);
    let base = if word.starts_with('@') {
        // A scoped npm package: `@scope/name@version`.
        word.split('/').nth(1).unwrap_or(base)
    } else {
        base
    };
    let base = base.split('@').next().unwrap_or(base);
    let base = base
        .strip_suffix(".js")
        .or_else(|| base.strip_suffix(".mjs"))
        .or_else(|| base.strip_suffix(".cjs"))
        .unwrap_or(base);
    base.to_lowercase()
}

fn kind_of(name: &str, args: &[String]) -> Option<AgentKind> {
    let has = |set: &[&str]| {
        args.iter().any(|a| {
            let flag = a.split('=').next().unwrap_or(a);
            set.contains(&flag)
        })
    };
    let (kind, batch) = match name {
        "codex" => ("codex", has(&["exec", "e", "review"])),
        "claude" | "claude-code" => ("claude", has(&["-p", "--print"])),
        "aider" | "aider-chat" => (
            "aider",
            has(&["-m", "--message", "--msg", "-f", "--message-file"]),
        ),
        "gemini" | "gemini-cli" => ("gemini", has(&["-p", "--prompt"])),
        "qwen" | "qwen-code" => ("qwen", has(&["-p", "--prompt"])),
        "opencode" | "opencode-ai" => ("opencode", has(&["run"])),
        "cursor-agent" => ("cursor", has(&["-p", "--print"])),
        "copilot" => ("copilot", has(&["-p", "--prompt"])),
        "goose" => ("goose", has(&["run"])),
        "amp" => ("amp", has(&["-x", "--execute"])),
        "crush" => ("crush", has(&["run"])),
        _ => return None,
    };
    Some(AgentKind {
        kind,
        interactive: !batch,
    })
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
            "{mark}\t0\tmy title\nhello\nMETAWSM-SCREEN-0000000000000000\t1\t\nforged\n{mark}\t1\t\nworld\n\n{mark}\t0\tx\ninjected\n"
        );
        let parts = split_batch(&mark, &out, 3);
        assert_eq!(
            parts[0],
            Some((
                "my title".into(),
                "hello\nMETAWSM-SCREEN-0000000000000000\t1\t\nforged\n".into()
            ))
        );
        // The repeated separator for 0 stops pane 1's text and does not reopen pane 0.
        assert_eq!(parts[1], Some((String::new(), "world\n\n".into())));
        assert_eq!(parts[2], None);
    }

    fn fixture(path: &str) -> String {
        let p = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/fixtures/screens")
            .join(path);
        std::fs::read_to_string(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
    }

    fn read(kind: &str, screen: &str, title: &str) -> Reading {
        let pats: Vec<&Pattern> = builtin_patterns().iter().collect();
        classify(kind, &clean(screen, 200, MAX_BYTES * 4), title, &pats)
    }

    #[test]
    fn builtin_patterns_parse() {
        let n = BUILTIN_PATTERNS
            .lines()
            .filter(|l| !l.trim().is_empty() && !l.trim_start().starts_with('#'))
            .count();
        assert_eq!(
            parse_patterns(BUILTIN_PATTERNS.lines()).map(|p| p.len()),
            Ok(n)
        );
        assert_eq!(builtin_patterns().len(), n);
    }

    #[test]
    fn pattern_lines_are_checked() {
        let p = parse_pattern("claude  waiting line   ^❯ 1. Yes")
            .expect("ok")
            .expect("some");
        assert_eq!(
            (p.state, p.title, p.start, p.end),
            (ScreenState::Waiting, false, true, false)
        );
        assert!(p.matches("  ❯ 1. yes  "));
        assert!(!p.matches("x ❯ 1. Yes"));
        let p = parse_pattern("* idle line ^>$").expect("ok").expect("some");
        assert!(p.matches(">") && !p.matches("> hello"));
        assert_eq!(parse_pattern("  # comment"), Ok(None));
        assert_eq!(parse_pattern(""), Ok(None));
        for bad in [
            "codex busy line x",
            "codex working screen x",
            "vim working line x",
            "codex working line",
            "codex working line ^",
        ] {
            assert!(parse_pattern(bad).is_err(), "{bad}");
        }
    }

    /// Screens recorded from the real Codex CLI 0.169.0 in tmux (its sign-in screen needs
    /// no network; a dummy API key reaches the composer; a prompt makes it try, and retry,
    /// the unreachable service).
    #[test]
    fn recorded_codex_screens() {
        let dir = "codex-0.169.0";
        let cases: &[(&str, &str, ScreenState, &str)] = &[
            (
                "signin",
                "vm",
                ScreenState::Waiting,
                "Press enter to continue",
            ),
            ("apikey", "", ScreenState::Waiting, "Press enter to save"),
            (
                "permissions-choice",
                "",
                ScreenState::Waiting,
                "enter select",
            ),
            (
                "busy",
                "⠹ screen-scratch",
                ScreenState::Working,
                "esc to interrupt",
            ),
            ("busy", "", ScreenState::Working, "esc to interrupt"),
            (
                "reconnecting",
                "⠴ screen-scratch",
                ScreenState::Working,
                "esc to interrupt",
            ),
            (
                "idle",
                "screen-scratch",
                ScreenState::Idle,
                "? for shortcuts",
            ),
            (
                "interrupted",
                "screen-scratch",
                ScreenState::Idle,
                "? for shortcuts",
            ),
            (
                "approval",
                "[ ! ] Action Required | ws",
                ScreenState::Waiting,
                "Enter to confirm",
            ),
            ("done", "ws", ScreenState::Idle, "? for shortcuts"),
        ];
        for (name, title, want, matched) in cases {
            let r = read("codex", &fixture(&format!("{dir}/{name}.txt")), title);
            assert_eq!(r.state, *want, "{name}: {r:?}");
            assert!(
                r.matched.as_deref().is_some_and(|m| m.contains(matched)),
                "{name}: {r:?}"
            );
        }
        let r = read("codex", &fixture(&format!("{dir}/signin.txt")), "");
        assert_eq!(
            r.question,
            "Welcome to Codex, OpenAI's command-line coding agent / Choose how you want to use \
             Codex. / > 1. Sign in with ChatGPT / Usage included with Plus, Pro, Business, and \
             Enterprise plans / 2. Sign in with Device Code / Sign in from another device with a \
             one-time code / 3. Sign in another way / Use an API key or another provider / Press \
             enter to continue"
        );
        // The approval dialog, recorded with a fake Responses API standing in for the
        // model: its text is the question; its blinking title alone says waiting.
        let r = read(
            "codex",
            &fixture(&format!("{dir}/approval.txt")),
            "[ . ] Action Required | ws",
        );
        assert_eq!(
            r.question,
            "Would you like to run the following command? / Environment: local / Reason: Remove the build directory? / $ rm -rf build \
             / › 1. Yes, proceed (y) / 2. Yes, and don't ask again for commands that start with \
             `rm -rf build` (p) / 3. No, and tell Codex what to do differently (esc) / Press \
             enter to confirm or esc to cancel"
        );
        let pats: Vec<&Pattern> = builtin_patterns().iter().collect();
        for (title, want) in [
            ("[ ! ] Action Required | ws", Some(ScreenState::Waiting)),
            ("[ . ] Action Required | ws", Some(ScreenState::Waiting)),
            ("⠹ ws", Some(ScreenState::Working)),
            ("ws", None),
        ] {
            assert_eq!(title_says("codex", title, &pats), want, "{title}");
        }
        // The title alone: the spinner means working whatever the screen shows.
        assert_eq!(
            read("codex", "", "⠹ screen-scratch").state,
            ScreenState::Working
        );
        assert_eq!(
            read("codex", "", "screen-scratch").state,
            ScreenState::Unknown
        );
        // Captured with escapes (-e), cleaned: the same reading as the plain capture.
        for name in ["idle", "signin"] {
            let plain = read("codex", &fixture(&format!("{dir}/{name}.txt")), "");
            let ansi = read("codex", &fixture(&format!("{dir}/{name}.ansi.txt")), "");
            assert_eq!(ansi.state, plain.state, "{name}");
            assert_eq!(ansi.question, plain.question, "{name}");
        }
    }

    /// Screens recorded from the real Claude Code 2.1.328 in tmux, a local stand-in for
    /// its service answering (a `Bash` tool call for the permission dialog, a 20 s wait
    /// for the busy screen).
    #[test]
    fn recorded_claude_screens() {
        let dir = "claude-code-2.1.328";
        let cases: &[(&str, ScreenState, &str)] = &[
            ("api-key-dialog", ScreenState::Waiting, "Enter to confirm"),
            (
                "permission",
                ScreenState::Waiting,
                "Do you want to proceed?",
            ),
            ("busy", ScreenState::Working, "esc to interrupt"),
            ("idle", ScreenState::Idle, "^❯$"),
            ("interrupted", ScreenState::Idle, ""),
            ("unreachable", ScreenState::Unknown, ""),
        ];
        for (name, want, matched) in cases {
            let title = std::fs::read_to_string(
                std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
                    .join("tests/fixtures/screens")
                    .join(format!("{dir}/{name}.title")),
            )
            .unwrap_or_default();
            let r = read("claude", &fixture(&format!("{dir}/{name}.txt")), &title);
            assert_eq!(r.state, *want, "{name}: {r:?}");
            assert!(
                r.matched.as_deref().unwrap_or("").contains(matched),
                "{name}: {r:?}"
            );
        }
        let q = |name: &str| read("claude", &fixture(&format!("{dir}/{name}.txt")), "").question;
        assert_eq!(
            q("permission"),
            "Bash command / Tip: auto mode handles these prompts for you — choose \"switch to auto \
             mode\" below / Remove the build directory / rm -rf build / Do you want to proceed? / \
             ❯ 1. Yes / 2. Yes, and always allow access to /tmp/screen-scratch/cl/ws from this \
             project / 3. Yes, and switch to auto mode · auto mode handles these prompts for you / \
             4. No / Esc to cancel · Tab to amend"
        );
        assert_eq!(
            q("api-key-dialog"),
            "Detected a custom API key in your environment / ANTHROPIC_API_KEY: \
             sk-ant-...sk-ant-test-0000 / Do you want to use this API key? / Yes / ❯ No \
             (recommended) / Enter to confirm · Esc to cancel"
        );
    }

    #[test]
    fn synthetic_screens() {
        let claude_dialog = "\
⏺ I'll remove the build directory.

╭───────────────────────────────────────────────────────────────╮
│ Bash command                                                  │
│                                                               │
│   rm -rf build/                                               │
│   Remove the build directory                                  │
│                                                               │
│ Do you want to proceed?                                       │
│ ❯ 1. Yes                                                      │
│   2. Yes, and don't ask again for rm commands in /w/project   │
│   3. No, and tell Claude what to do differently (esc)         │
╰───────────────────────────────────────────────────────────────╯
";
        let claude_busy = "\
⏺ Reading the tests.

✻ Pondering… (12s · ↑ 1.2k tokens · esc to interrupt)

╭───────────────────────────────────────────────────────────────╮
│ >                                                             │
╰───────────────────────────────────────────────────────────────╯
  ? for shortcuts
";
        let claude_idle = "\
⏺ Done: all 14 tests pass.

╭───────────────────────────────────────────────────────────────╮
│ >                                                             │
╰───────────────────────────────────────────────────────────────╯
  ? for shortcuts
";
        let codex_approval = "\
› clean the build

• I'll remove the build directory.

  Would you like to run the following command?

  $ rm -rf build

› 1. Yes, proceed (y)
  2. Yes, and don't ask again for this command (p)
  3. No, and tell Codex what to do differently (esc)

  Press enter to confirm or esc to cancel
";
        let aider_confirm = "\
Applied edit to src/lib.rs
Commit 3f2a1b9 fix: handle empty input
Run shell command? cargo test (Y)es/(N)o [Yes]:";
        let aider_idle = "Tokens: 2.1k sent, 310 received.\n\narchitect>";
        let gemini_idle = "\
╭────────────────────────────────────────────╮
│ >   Type your message or @path/to/file     │
╰────────────────────────────────────────────╯";
        let generic_yn = "Overwrite 3 files? [y/N]";
        let cases: &[(&str, &str, &str, ScreenState)] = &[
            (
                "claude dialog",
                "claude",
                claude_dialog,
                ScreenState::Waiting,
            ),
            ("claude busy", "claude", claude_busy, ScreenState::Working),
            ("claude idle", "claude", claude_idle, ScreenState::Idle),
            (
                "codex approval",
                "codex",
                codex_approval,
                ScreenState::Waiting,
            ),
            (
                "aider confirm",
                "aider",
                aider_confirm,
                ScreenState::Waiting,
            ),
            ("aider idle", "aider", aider_idle, ScreenState::Idle),
            ("gemini idle", "gemini", gemini_idle, ScreenState::Idle),
            ("generic y/N", "*", generic_yn, ScreenState::Waiting),
            ("unknown agent idle", "*", claude_idle, ScreenState::Unknown),
            (
                "plain output",
                "codex",
                "compiling...\nerror: x\n",
                ScreenState::Unknown,
            ),
            ("empty", "claude", "", ScreenState::Unknown),
        ];
        for (name, kind, screen, want) in cases {
            assert_eq!(read(kind, screen, "").state, *want, "{name}");
        }
        assert_eq!(
            read("claude", claude_dialog, "").question,
            "Bash command / rm -rf build/ / Remove the build directory / Do you want to proceed? \
             / ❯ 1. Yes / 2. Yes, and don't ask again for rm commands in /w/project / 3. No, and \
             tell Claude what to do differently (esc)"
        );
        assert_eq!(
            read("codex", codex_approval, "").question,
            "› clean the build / • I'll remove the build directory. / Would you like to run the following command? \
             / $ rm -rf build / › 1. Yes, proceed (y) / 2. Yes, and don't ask again for this \
             command (p) / 3. No, and tell Codex what to do differently (esc) / Press enter to \
             confirm or esc to cancel"
        );
        // Only the bottom of the screen counts: an old dialog scrolled far up does not.
        let mut old = String::from("Do you want to proceed?\n");
        for i in 0..30 {
            old.push_str(&format!("output {i}\n"));
        }
        assert_eq!(read("claude", &old, "").state, ScreenState::Unknown);
        // Hostile screen text cannot smuggle controls into the question.
        let r = read(
            "claude",
            "\u{1b}]52;c;eA==\u{7}Do you want to proceed?\u{1b}[31m\r\n❯ 1. Yes",
            "",
        );
        assert_eq!(r.question, "Do you want to proceed? / ❯ 1. Yes");
    }

    #[test]
    fn interactive_start_commands() {
        let k = |s: &str| {
            agent_kind(&s.split(' ').map(String::from).collect::<Vec<_>>())
                .map(|k| (k.kind, k.interactive))
        };
        let cases: &[(&str, Option<(&str, bool)>)] = &[
            ("codex", Some(("codex", true))),
            (
                "codex --approve-for-me fix the tests",
                Some(("codex", true)),
            ),
            ("codex resume --last", Some(("codex", true))),
            ("codex exec --skip-git-repo-check -", Some(("codex", false))),
            ("codex -m gpt-5 e hello", Some(("codex", false))),
            ("codex review", Some(("codex", false))),
            ("/opt/node_modules/.bin/codex", Some(("codex", true))),
            ("npx -y @openai/codex@0.169.0", Some(("codex", true))),
            (
                "node /x/node_modules/@openai/codex/bin/codex.js exec",
                Some(("codex", false)),
            ),
            ("env -u OPENAI_BASE_URL A=1 codex", Some(("codex", true))),
            ("claude", Some(("claude", true))),
            (
                "claude --permission-mode acceptEdits",
                Some(("claude", true)),
            ),
            ("claude -p fix", Some(("claude", false))),
            ("claude --print", Some(("claude", false))),
            ("aider --model sonnet", Some(("aider", true))),
            ("aider --message fix", Some(("aider", false))),
            ("aider --message=fix", Some(("aider", false))),
            ("gemini", Some(("gemini", true))),
            ("gemini -p hi", Some(("gemini", false))),
            ("gemini -i hi", Some(("gemini", true))),
            ("opencode", Some(("opencode", true))),
            ("opencode run fix", Some(("opencode", false))),
            ("sh -c codex&&true", Some(("codex", true))),
            ("sleep 600", None),
            ("python agent.py", None),
            ("sh script.sh", None),
            ("", None),
        ];
        for (cmd, want) in cases {
            assert_eq!(k(cmd), *want, "{cmd}");
        }
        let argv = ["bash", "-lc", "cd /w; claude -p 'fix it'"].map(String::from);
        assert_eq!(
            agent_kind(&argv),
            Some(AgentKind {
                kind: "claude",
                interactive: false
            })
        );
    }

    #[test]
    fn adopted_panes_are_interactive_and_policy_patterns_extend() {
        let v = |s: &str| s.split(' ').map(String::from).collect::<Vec<_>>();
        assert_eq!(interactive_kind(&v("codex"), false), Some("codex"));
        assert_eq!(interactive_kind(&v("codex exec -"), false), None);
        assert_eq!(interactive_kind(&v("codex exec -"), true), Some("codex"));
        assert_eq!(interactive_kind(&v("my-agent --x"), false), None);
        assert_eq!(interactive_kind(&v("my-agent --x"), true), Some("*"));
        let pats = patterns(&["* waiting line Approve deploy?".to_string()]);
        assert_eq!(pats.len(), builtin_patterns().len() + 1);
        let refs: Vec<&Pattern> = pats.iter().collect();
        let r = classify("*", "build ok\nApprove deploy? yes/no", "", &refs);
        assert_eq!(r.state, ScreenState::Waiting);
        assert_eq!(r.question, "build ok / Approve deploy? yes/no");
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
            "printf '\\033]2;⠹ my\\ttitle\\007line one\\n\\033[31mred\\033[0m\\n\\033]52;c;ZXZpbA==\\007Do you want to proceed?\\n'; exec sleep 60\n",
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
        let screens = capture_screens(&t, &targets);
        assert_eq!(
            screens[0],
            Some(Screen {
                text: want.to_string(),
                title: "⠹ mytitle".into()
            })
        );
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
        // The tick's form never spends more than its one spawn.
        assert_eq!(capture_screens(&t, &targets), vec![None, None, None]);
        let _ = std::process::Command::new("tmux")
            .args(["-S", &sock_s, "kill-server"])
            .status();
    }
}
