//! Every value on its way out of the program, escaped by the kind of place it goes to:
//! a tmux argument (`TmuxCmd`), a shell word inside a command tmux runs (`sh_word`), or
//! text printed for a human (`human`). Names, paths, questions and LLM text are hostile
//! bytes: each goes through exactly one of these, or is refused before anything runs.
//!
//! How tmux 3.3a treats an argument (measured on an isolated server):
//! - Its argv parser ends a command at any argument ending in an unescaped `;`, and turns
//!   a trailing `\;` into `;`. Every argument gets its trailing `;` written as `\;`.
//! - `new-session -c/-s`, `respawn-pane -c`, `rename-session`, `display-message` text and
//!   `run-shell` commands are format-expanded: `#` must be `##` there. Agent argv words,
//!   `-e` values, targets and `send-keys -l` text are passed on unexpanded.
//! - A session name is stored with `:` and `.` turned into `_`, and with `$`, `\` and
//!   control characters escaped (`a$b` becomes `a\$b`): such a name can never be found again.
//! - A positional argument starting with `-` is taken as a flag unless `--` comes first.

use std::borrow::Cow;
use std::fmt;

/// A value that cannot be passed to tmux as it is: refused before any tmux call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refused {
    pub what: String,
    pub value: String,
    pub why: &'static str,
}

impl fmt::Display for Refused {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {:?}: {}", self.what, self.value, self.why)
    }
}

impl std::error::Error for Refused {}

fn refuse(what: &str, value: &str, why: &'static str) -> Refused {
    Refused {
        what: what.to_string(),
        value: value.to_string(),
        why,
    }
}

/// Where a tmux command points. Sessions are always matched exactly (`=name`), panes by id.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Target<'a> {
    /// `=name`: the session itself (kill-session, has-session, …).
    Session(&'a str),
    /// `=name:`: the current pane of the session's current window (one-pane sessions).
    SessionPane(&'a str),
    /// `%N`: one pane by id.
    Pane(&'a str),
    /// A client name as list-clients printed it (`/dev/pts/N`).
    Client(&'a str),
}

/// One tmux command, built argument by argument, each by its kind. The first refused
/// value is kept and reported by `argv()`; `TmuxClient::run` checks every command of a
/// batch before it spawns tmux, so a refused value means no tmux call at all.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TmuxCmd {
    argv: Vec<String>,
    refused: Option<Refused>,
}

impl TmuxCmd {
    pub fn new(name: &'static str) -> TmuxCmd {
        TmuxCmd {
            argv: vec![name.to_string()],
            refused: None,
        }
    }

    fn push(mut self, arg: String) -> TmuxCmd {
        self.argv.push(escape_semicolon(&arg));
        self
    }

    fn check(mut self, r: Result<String, Refused>) -> TmuxCmd {
        match r {
            Ok(a) => self.push(a),
            Err(e) => {
                self.refused.get_or_insert(e);
                self
            }
        }
    }

    /// A flag or fixed word written in this program (`-d`, `remain-on-exit`, `on`).
    pub fn flag(self, f: &'static str) -> TmuxCmd {
        self.push(f.to_string())
    }

    /// Several fixed words.
    pub fn flags(self, fs: &[&'static str]) -> TmuxCmd {
        fs.iter().fold(self, |c, f| c.flag(f))
    }

    /// A number (`-d 8000`, `monitor-silence 900`).
    pub fn num(self, n: i64) -> TmuxCmd {
        self.push(n.to_string())
    }

    /// A format this program wrote (`-F`, `display-message -p`, a status-bar value):
    /// tmux expands it on purpose. Never put outside text in one; use `expanded`.
    pub fn format(self, fmt: &str) -> TmuxCmd {
        self.push(fmt.to_string())
    }

    /// A plain argv word tmux passes on unexpanded: an agent's argv element, a `-e`
    /// `KEY=VALUE`, an option name. Anything goes except a flag-like word where a flag
    /// could be parsed: put those after `end_of_flags`.
    pub fn word(self, what: &str, v: &str) -> TmuxCmd {
        let r = no_nul(what, v).map(str::to_string);
        self.check(r)
    }

    /// A value tmux format-expands (a `-c` directory, a run-shell command, message text
    /// already made safe for a terminal): `#` becomes `##`, so it arrives unchanged.
    pub fn expanded(self, what: &str, v: &str) -> TmuxCmd {
        let r = no_nul(what, v).map(escape_format);
        self.check(r)
    }

    /// The name of a new (or renamed) session: checked against what tmux can store and
    /// find again, then escaped as an expanded value.
    pub fn session_name(self, what: &str, name: &str) -> TmuxCmd {
        let r = check_session_name(what, name).map(|_| escape_format(name));
        self.check(r)
    }

    /// `-t TARGET`.
    pub fn target(self, t: Target<'_>) -> TmuxCmd {
        self.target_flag("-t", t)
    }

    /// A target after another flag (`-s`, `-c`).
    pub fn target_flag(self, flag: &'static str, t: Target<'_>) -> TmuxCmd {
        let r = target_arg(t);
        self.flag(flag).check(r)
    }

    /// `--`: every later argument is positional, even one starting with `-`.
    pub fn end_of_flags(self) -> TmuxCmd {
        self.flag("--")
    }

    /// Text typed into a pane as literal keys: `send-keys … -l -- TEXT`, last on the line.
    /// It is never a key name or a flag and never format-expanded. Control characters
    /// are refused: send them as named keys (`Enter`, `C-c`) in a command of their own.
    #[allow(dead_code)] // for typing answers into a waiting agent's pane (agents)
    pub fn literal_keys(self, what: &str, text: &str) -> TmuxCmd {
        let r = if text.is_empty() {
            Err(refuse(what, text, "is empty"))
        } else if text.chars().any(is_control) {
            Err(refuse(
                what,
                text,
                "contains control characters (send Enter and other keys by name)",
            ))
        } else {
            Ok(text.to_string())
        };
        self.flags(&["-l", "--"]).check(r)
    }

    /// Message text for `display-message` (last on the line): control characters shown
    /// escaped, `#` doubled, after `--` so a leading `-` is text.
    pub fn message(self, text: &str) -> TmuxCmd {
        let shown = human(text);
        self.end_of_flags().push(escape_drawn(&shown))
    }

    /// The argv (without `tmux`), or the first value that was refused.
    pub fn argv(&self) -> Result<&[String], Refused> {
        match &self.refused {
            Some(r) => Err(r.clone()),
            None => Ok(&self.argv),
        }
    }
}

/// tmux ends a command at an argument whose last byte is an unescaped `;`; `\;` at the end
/// stands for a literal `;` (tmux 3.3a cmd_parse_from_arguments).
fn escape_semicolon(arg: &str) -> String {
    match arg.strip_suffix(';') {
        Some(head) => format!("{head}\\;"),
        None => arg.to_string(),
    }
}

/// No argv element can hold a NUL byte.
fn no_nul<'a>(what: &str, v: &'a str) -> Result<&'a str, Refused> {
    if v.contains('\0') {
        Err(refuse(what, v, "contains a NUL byte"))
    } else {
        Ok(v)
    }
}

/// A value tmux format-expands once and then uses as data (a directory, a session
/// name, a job's command): `#` starts formats and `#()` jobs and `##` is one `#`, but a
/// run of `#` right before `[` is copied verbatim (it is left for the style drawer), so
/// such a run must stay as it is. Measured round trips on 3.3a: `#[fg=red]x`, `##[x`,
/// `#(echo)`, `#S#`, `a#`, `#[#[#S`.
pub fn escape_format(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 8);
    let mut run = 0;
    for c in s.chars() {
        if c == '#' {
            run += 1;
            continue;
        }
        let times = if c == '[' { 1 } else { 2 };
        out.extend(std::iter::repeat_n('#', run * times));
        run = 0;
        out.push(c);
    }
    out.extend(std::iter::repeat_n('#', run * 2));
    out
}

/// Text tmux expands and then draws (the status bar, a message): every `#` doubled, so
/// no format, job or style survives (a run of several `#` may show fewer).
pub fn escape_drawn(s: &str) -> String {
    s.replace('#', "##")
}

/// C0, DEL and C1 controls; they move cursors, set clipboards (OSC 52) or break lines.
fn is_control(c: char) -> bool {
    c.is_control()
}

/// Bidirectional overrides reorder what a terminal shows ("Trojan source").
fn is_bidi(c: char) -> bool {
    matches!(c, '\u{202A}'..='\u{202E}' | '\u{2066}'..='\u{2069}' | '\u{200E}' | '\u{200F}')
}

/// What tmux can store as a session name and find again with `=name`.
pub fn check_session_name(what: &str, name: &str) -> Result<(), Refused> {
    if name.is_empty() {
        return Err(refuse(what, name, "is empty"));
    }
    if name.contains(':') || name.contains('.') {
        return Err(refuse(
            what,
            name,
            "contains ':' or '.' (tmux rewrites them)",
        ));
    }
    if name.contains('$') || name.contains('\\') {
        return Err(refuse(
            what,
            name,
            "contains '$' or '\\' (tmux rewrites them)",
        ));
    }
    if name.chars().any(|c| is_control(c) || is_bidi(c)) {
        return Err(refuse(what, name, "contains control characters"));
    }
    Ok(())
}

fn target_arg(t: Target<'_>) -> Result<String, Refused> {
    match t {
        Target::Session(s) => check_session_name("session", s).map(|_| format!("={s}")),
        Target::SessionPane(s) => check_session_name("session", s).map(|_| format!("={s}:")),
        Target::Pane(p) => {
            let digits = p.strip_prefix('%').unwrap_or("");
            if !digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit()) {
                Ok(p.to_string())
            } else {
                Err(refuse("pane id", p, "is not a tmux pane id like %3"))
            }
        }
        Target::Client(c) => {
            if c.is_empty() || c.chars().any(is_control) {
                Err(refuse("client", c, "is not a tmux client name"))
            } else {
                Ok(c.to_string())
            }
        }
    }
}

/// One word for a command line tmux hands to `/bin/sh -c` inside a `#(…)` job or a
/// `run-shell`. Single quotes make it one literal word for sh; `(` and `)` are written
/// as `printf` output, because tmux ends a `#(…)` job at the `)` that balances its `(`
/// and a path's own parentheses need not balance. Newlines cannot be carried this way
/// (command substitution strips them), so they are refused. The caller still doubles `#`.
pub fn sh_word(what: &str, s: &str) -> Result<String, Refused> {
    if s.contains('\n') {
        return Err(refuse(what, s, "contains a newline"));
    }
    if s.contains('\0') {
        return Err(refuse(what, s, "contains a NUL byte"));
    }
    let q = sh_quote(s);
    Ok(q.replace('(', "'\"`printf '\\050'`\"'")
        .replace(')', "'\"`printf '\\051'`\"'"))
}

/// Shell-quote one word for `sh -c` (single quotes; `'` as `'\''`).
pub fn sh_quote(s: &str) -> String {
    if !s.is_empty()
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_./=:@%+,".contains(c))
    {
        return s.to_string();
    }
    format!("'{}'", s.replace('\'', "'\\''"))
}

/// Text for a terminal: control characters and bidi overrides shown escaped (`\n`,
/// `\u{1b}`), so outside text can neither forge a line nor send escape sequences.
/// JSON output stays exact and never goes through this.
pub fn human(s: &str) -> Cow<'_, str> {
    // Printable ASCII holds no control character and no bidi override: one byte scan
    // (without an early exit, so that it runs a word at a time).
    if !s
        .bytes()
        .fold(false, |bad, b| bad | !(0x20..0x7f).contains(&b))
    {
        return Cow::Borrowed(s);
    }
    if !s.chars().any(|c| is_control(c) || is_bidi(c)) {
        return Cow::Borrowed(s);
    }
    let mut out = String::with_capacity(s.len() + 8);
    for c in s.chars() {
        if is_control(c) || is_bidi(c) {
            out.extend(c.escape_default());
        } else {
            out.push(c);
        }
    }
    Cow::Owned(out)
}

/// `println!` for human output: the whole line goes through `human`, so no value in it
/// can add a line or reach the terminal as a control sequence.
#[macro_export]
macro_rules! say {
    ($($arg:tt)*) => {
        println!("{}", $crate::escape::human(&format!($($arg)*)))
    };
}

#[cfg(test)]
mod tests {
    use super::*;

    fn argv(c: &TmuxCmd) -> Vec<String> {
        c.argv().expect("accepted").to_vec()
    }

    #[test]
    fn trailing_semicolons_are_escaped_in_every_kind() {
        let c = TmuxCmd::new("respawn-pane")
            .end_of_flags()
            .word("argv", "a;")
            .word("argv", ";")
            .word("argv", "\\;")
            .word("argv", "a;b")
            .expanded("dir", "/x#;");
        assert_eq!(
            argv(&c),
            [
                "respawn-pane",
                "--",
                "a\\;",
                "\\;",
                "\\\\;",
                "a;b",
                "/x##\\;"
            ]
        );
    }

    #[test]
    fn runs_of_hashes_before_a_bracket_stay_as_they_are() {
        for (raw, esc) in [
            ("#[fg=red]x", "#[fg=red]x"),
            ("##[x", "##[x"),
            ("#S#", "##S##"),
            ("a#", "a##"),
            ("#[#[#S", "#[#[##S"),
            ("#[a##S]b", "#[a####S]b"),
        ] {
            assert_eq!(escape_format(raw), esc, "{raw}");
        }
        assert_eq!(escape_drawn("#[x #(y)"), "##[x ##(y)");
    }

    #[test]
    fn expanded_values_double_hashes() {
        let c = TmuxCmd::new("new-session")
            .flag("-c")
            .expanded("dir", "/w/#(touch x)#S");
        assert_eq!(argv(&c), ["new-session", "-c", "/w/##(touch x)##S"]);
    }

    #[test]
    fn session_names_tmux_would_rewrite_are_refused() {
        for bad in [
            "",
            "a:b",
            "a.b",
            "a$b",
            "a\\b",
            "a\nb",
            "a\tb",
            "\u{1b}]52",
            "\u{202e}x",
        ] {
            let c = TmuxCmd::new("new-session")
                .flag("-s")
                .session_name("--session", bad);
            let e = c.argv().expect_err(bad);
            assert_eq!(e.what, "--session");
        }
        let c = TmuxCmd::new("new-session")
            .flag("-s")
            .session_name("s", "#(x)-#S;")
            .target(Target::Session("a#b"))
            .target(Target::SessionPane("-x"));
        assert_eq!(
            argv(&c),
            [
                "new-session",
                "-s",
                "##(x)-##S\\;",
                "-t",
                "=a#b",
                "-t",
                "=-x:"
            ]
        );
    }

    #[test]
    fn targets_are_exact_or_refused() {
        let ok = TmuxCmd::new("kill-pane").target(Target::Pane("%12"));
        assert_eq!(argv(&ok), ["kill-pane", "-t", "%12"]);
        for bad in ["12", "%", "%1;", "%1 ", "=x"] {
            assert!(TmuxCmd::new("x").target(Target::Pane(bad)).argv().is_err());
        }
        assert!(TmuxCmd::new("x").target(Target::Client("")).argv().is_err());
    }

    #[test]
    fn literal_keys_are_never_flags_or_key_names() {
        let c = TmuxCmd::new("send-keys")
            .target(Target::Pane("%1"))
            .literal_keys("answer", "-t Enter #{x};");
        assert_eq!(
            argv(&c),
            ["send-keys", "-t", "%1", "-l", "--", "-t Enter #{x}\\;"]
        );
        assert!(TmuxCmd::new("send-keys")
            .literal_keys("answer", "y\n")
            .argv()
            .is_err());
        assert!(TmuxCmd::new("send-keys")
            .literal_keys("answer", "")
            .argv()
            .is_err());
    }

    #[test]
    fn first_refusal_is_reported() {
        let c = TmuxCmd::new("x")
            .target(Target::Pane("nope"))
            .session_name("s", "");
        assert_eq!(c.argv().expect_err("refused").what, "pane id");
        assert_eq!(
            c.argv().expect_err("refused").to_string(),
            "pane id \"nope\": is not a tmux pane id like %3"
        );
    }

    #[test]
    fn messages_are_human_text_after_dashes() {
        let c = TmuxCmd::new("display-message").message("-x #(a)\n\u{1b}[2J;");
        assert_eq!(
            argv(&c),
            ["display-message", "--", "-x ##(a)\\n\\u{1b}[2J\\;"]
        );
    }

    #[test]
    fn shell_words_survive_parentheses_and_refuse_newlines() {
        assert_eq!(sh_word("p", "/usr/bin/x").as_deref(), Ok("/usr/bin/x"));
        let w = sh_word("p", "/a (copy)/it's").expect("ok");
        assert!(!w.contains('(') && !w.contains(')'), "{w}");
        let out = std::process::Command::new("/bin/sh")
            .arg("-c")
            .arg(format!("printf %s {w}"))
            .output()
            .expect("sh");
        assert_eq!(String::from_utf8_lossy(&out.stdout), "/a (copy)/it's");
        assert!(sh_word("p", "a\nb").is_err());
    }

    #[test]
    fn human_text_escapes_controls_only() {
        assert_eq!(human("plain ✓ #x"), "plain ✓ #x");
        assert_eq!(
            human("a\nb\tc\u{1b}]52;x\u{7}"),
            "a\\nb\\tc\\u{1b}]52;x\\u{7}"
        );
        assert_eq!(human("\u{9b}2J \u{202e}"), "\\u{9b}2J \\u{202e}");
    }
}
