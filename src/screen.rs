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
#[path = "screen_tests.rs"]
mod tests;
