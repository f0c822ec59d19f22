//! Classification: (agent kind, screen text, pane title, patterns) → state. Pure.

use super::clean;
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
    pub(super) start: bool,
    pub(super) end: bool,
    /// The line as written, for reasons and `policy show`.
    pub source: String,
}

/// The patterns that ship with the binary.
pub const BUILTIN_PATTERNS: &str = include_str!("../screen_patterns.txt");

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
    pub(super) fn matches(&self, text: &str) -> bool {
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
pub(super) const QUESTION_MAX_CHARS: usize = 600;

#[derive(Debug, Clone, Copy, PartialEq)]
pub(super) enum Border {
    None,
    Top,
    Bottom,
    Side,
    /// A solid horizontal rule across the screen (Claude Code draws one above a dialog).
    Rule,
}

pub(super) const BOX_TOP: &[char] = &['╭', '┌', '╔', '┏'];
pub(super) const BOX_BOTTOM: &[char] = &['╰', '└', '╚', '┗'];
pub(super) const BOX_SIDE: &[char] = &['│', '┃', '║'];
pub(super) const BOX_FILL: &[char] = &['─', '━', '═', '╮', '┐', '╗', '┓', '╯', '┘', '╝', '┛'];

/// A screen line without its box drawing, and which border it was. A line of box
/// drawing only is a rule when solid, a blank when dashed (Claude Code's dashed lines
/// frame the command inside its dialog).
pub(super) fn unbox(line: &str) -> (String, Border) {
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
pub(super) fn dialog(lines: &[(String, Border)], top: usize, bottom: usize) -> String {
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

pub(super) fn agent_kind_depth(argv: &[String], depth: usize) -> Option<AgentKind> {
    let mut after_flag = false;
    for (i, word) in argv.iter().enumerate() {
        let name = program_name(word);
        let rest = &argv[i + 1..];
        let assignment = word.split_once('=').is_some_and(|(k, _)| {
            !k.is_empty() && k.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
        });
        match &*name {
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
pub(super) fn program_name(word: &str) -> std::borrow::Cow<'_, str> {
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
    // Every agent's start command is read several times a tick: no copy when it is
    // already lower case.
    if base
        .bytes()
        .any(|b| b.is_ascii_uppercase() || !b.is_ascii())
    {
        std::borrow::Cow::Owned(base.to_lowercase())
    } else {
        std::borrow::Cow::Borrowed(base)
    }
}

pub(super) fn kind_of(name: &str, args: &[String]) -> Option<AgentKind> {
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
