//! The one definition of every policy key: path, type and default (with the field it
//! fills), rules, one-line doc. Defaults, parsing, validation and the docs table all walk
//! `KEYS`; a key added to a struct without an entry here fails `every_field_has_one_key`.
//!
//! The order is the order of checks (the first failing rule is reported), grouped by block
//! in file order: a block's keys are read before the next block is opened.

use super::{LlmMode, LlmProvider, OnComplete, Policy, RestartMode, MAX_SECONDS, MAX_STATUS_CHARS};

/// How a key's field is read and written, and its default.
pub struct Access<T: 'static> {
    pub get: fn(&Policy) -> &T,
    pub set: fn(&mut Policy) -> &mut T,
}

/// A key's JSON type, its field and its default.
pub enum Field {
    /// A JSON integer (3.0, "3" and values outside i64 are refused).
    Int(Access<i64>, i64),
    Number(Access<f64>, f64),
    Bool(Access<bool>, bool),
    Str(Access<String>, &'static str),
    /// An array of strings; the default is empty.
    Strings(Access<Vec<String>>),
    /// An array of strings is an argv (no shell); one string is a shell command, run as
    /// `sh -c STRING` the way the original's `--notify-cmd` went through a shell. "" and []
    /// both mean "no command" (the default).
    Command(Access<Vec<String>>),
    /// A string parsed with the enum's `FromStr` (whose error reads "must be a|b|c").
    Choice {
        set: fn(&mut Policy, &str) -> Result<(), String>,
        default: &'static str,
        choices: &'static [&'static str],
    },
}

/// A check on a key's value; messages are "<path> <problem>".
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Rule {
    /// > 0, no upper bound.
    AboveZero,
    /// (0, one year]: durations and counters that must be set.
    Positive,
    /// [0, one year]: durations where 0 means "off".
    NonNegative,
    /// >= another integer key.
    AtLeast(&'static str),
    NotBlank,
    /// A finite number in 0..=1.
    Unit,
    NoEmptyItems,
    /// Short, without control characters: tmux renders it on every redraw.
    StatusText,
    /// Each line a screen pattern (checked while reading, before any other rule).
    ScreenPatterns,
}

pub struct Key {
    pub path: &'static str,
    pub field: Field,
    pub rules: &'static [Rule],
    pub doc: &'static str,
}

/// `at!(T: a.b.c)`: the `Access` to `policy.a.b.c` of type `T`.
macro_rules! at {
    ($t:ty: $($f:ident).+) => {{
        fn get(p: &Policy) -> &$t {
            &p.$($f).+
        }
        fn set(p: &mut Policy) -> &mut $t {
            &mut p.$($f).+
        }
        Access { get, set }
    }};
}

/// `choice!(E: a.b, "default")`: an enum field set through `E::from_str`.
macro_rules! choice {
    ($t:ident: $($f:ident).+, $default:expr) => {{
        fn set(p: &mut Policy, s: &str) -> Result<(), String> {
            p.$($f).+ = s.parse::<$t>()?;
            Ok(())
        }
        Field::Choice { set, default: $default, choices: &$t::NAMES }
    }};
}

macro_rules! key {
    ($path:expr, $field:expr, [$($rule:expr),*], $doc:expr) => {
        Key { path: $path, field: $field, rules: &[$($rule),*], doc: $doc }
    };
}

use Field::{Bool, Command, Int, Number, Str, Strings};
use Rule::*;

pub static KEYS: &[Key] = &[
    key!("version", Int(at!(i64: version), 2), [AboveZero], "the original tool's file version; its files carry 2"),
    key!("tmux.session_pattern", Str(at!(String: tmux.session_pattern), "{agent}-{workspace}"), [NotBlank], "tmux session name of a started run's agent"),
    key!("health.idle_seconds", Int(at!(i64: health.idle_seconds), 300), [Positive], "quiet this long: the agent is idle"),
    key!("health.progress_stalled_seconds", Int(at!(i64: health.progress_stalled_seconds), 1200), [Positive], "no progress (nor activity) this long: stalled"),
    key!("health.activity_stalled_seconds", Int(at!(i64: health.activity_stalled_seconds), 900), [Positive, AtLeast("health.idle_seconds")], "no pane activity this long: stalled; also the agents' `monitor-silence`"),
    key!("health.restart_quiet_interactive", Bool(at!(bool: health.restart_quiet_interactive), false), [], "a quiet live interactive agent whose screen says nothing known may be restarted without hook evidence of a hang ([screen.md](screen.md))"),
    key!("health.screen_patterns", Strings(at!(Vec<String>: health.screen_patterns)), [ScreenPatterns], "extra screen patterns, one line each, in the shipped patterns' format ([screen.md](screen.md))"),
    key!("operator.unhealthy_confirmations", Int(at!(i64: operator.unhealthy_confirmations), 2), [Positive], "unhealthy observations in a row before acting"),
    key!("operator.restart_budget", Int(at!(i64: operator.restart_budget), 3), [Positive], "restarts allowed before escalating"),
    key!("operator.restart_cooldown_seconds", Int(at!(i64: operator.restart_cooldown_seconds), 60), [Positive], "first wait between restarts (doubles each time)"),
    key!("operator.stale_run_age_seconds", Int(at!(i64: operator.stale_run_age_seconds), 3600), [Positive], "a run with no sign of life this long is stale"),
    key!("operator.tick_interval_seconds", Int(at!(i64: operator.tick_interval_seconds), 15), [Positive], "minimum age of the last full tick before `status`/the timer tick again"),
    key!("operator.idle_tick_max_seconds", Int(at!(i64: operator.idle_tick_max_seconds), 60), [Positive], "the no-client timer's longest wait: while its ticks find nothing changed, the wait doubles from the tick interval up to this (hooks report crashes and silence at once); 60 cuts idle CPU to about a quarter of a 15 s timer's; capped at the clock's gap limit less one interval; at or below the tick interval: no backoff ([performance.md](performance.md#idle-cost-the-plugin-loaded-no-client-attached))"),
    key!("operator.restart_cooldown_max_seconds", Int(at!(i64: operator.restart_cooldown_max_seconds), 900), [Positive, AtLeast("operator.restart_cooldown_seconds")], "longest wait between restarts"),
    key!("operator.min_observation_gap_seconds", Int(at!(i64: operator.min_observation_gap_seconds), 5), [NonNegative], "observations closer than this do not count as confirmations"),
    key!("operator.healthy_reset_seconds", Int(at!(i64: operator.healthy_reset_seconds), 600), [NonNegative], "healthy this long: the restart budget is refilled"),
    key!("operator.resume_min_conversation_seconds", Int(at!(i64: operator.resume_min_conversation_seconds), 60), [NonNegative], "a conversation younger than this is started over rather than resumed"),
    key!("operator.resume_failed_within_seconds", Int(at!(i64: operator.resume_failed_within_seconds), 15), [NonNegative], "a resumed agent that ends this soon failed to resume: the next start is fresh"),
    key!("operator.on_complete", choice!(OnComplete: operator.on_complete, "keep"), [], "what a completion file does to still-live agents ([interactive.md](interactive.md#completion))"),
    key!("operator.restart_mode", choice!(RestartMode: operator.restart_mode, "resume"), [], "restarts continue the agent's conversation when it has a resume command, or always start over ([restarts.md](restarts.md))"),
    key!("operator.revive_on_server_start", Bool(at!(bool: operator.revive_on_server_start), false), [], "a tmux server that starts and finds runs orphaned by its predecessor revives them"),
    key!("operator.agent_names", Strings(at!(Vec<String>: operator.agent_names)), [], "agent CLI names `run adopt --scan` recognises besides the built-in ones"),
    key!("operator.llm.mode", choice!(LlmMode: operator.llm.mode, "assist"), [], "what the LLM may do (see LLM proposals)"),
    key!("operator.llm.provider", choice!(LlmProvider: operator.llm.provider, "codex"), [], "how the LLM is called; when unset, a `command` named neither `codex` nor `claude` means `metawsm`"),
    key!("operator.llm.command", Str(at!(String: operator.llm.command), "codex"), [NotBlank], "the LLM CLI; `claude` by default for that provider"),
    key!("operator.llm.timeout_seconds", Int(at!(i64: operator.llm.timeout_seconds), 30), [Positive], "hard wall-clock limit of one call"),
    key!("operator.llm.max_tokens", Int(at!(i64: operator.llm.max_tokens), 400), [AboveZero], "accepted for compatibility, not passed (neither CLI has such a flag)"),
    key!("operator.llm.min_interval_seconds", Int(at!(i64: operator.llm.min_interval_seconds), 60), [NonNegative], "at most one new call per run per interval"),
    key!("operator.llm.min_confidence", Number(at!(f64: operator.llm.min_confidence), 0.5), [Unit], "proposals below this confidence are ignored"),
    key!("operator.llm.args", Strings(at!(Vec<String>: operator.llm.args)), [NoEmptyItems], "extra arguments"),
    key!("operator.llm.model", Str(at!(String: operator.llm.model), ""), [], "passed as `--model` when set"),
    key!("operator.notify.command", Command(at!(Vec<String>: operator.notify.command)), [NoEmptyItems], "argv array, or a string run with `sh -c`; empty: none"),
    key!("operator.notify.tmux_message", Bool(at!(bool: operator.notify.tmux_message), true), [], "`display-message` on every attached client"),
    key!("operator.notify.bell", Bool(at!(bool: operator.notify.bell), false), [], "a BEL on every attached client's terminal"),
    key!("status.icon_ok", Str(at!(String: status.icon_ok), "⚙"), [StatusText], "bar symbol: runs that are fine"),
    key!("status.icon_guidance", Str(at!(String: status.icon_guidance), "?"), [StatusText], "bar symbol: runs waiting for guidance"),
    key!("status.icon_blocked", Str(at!(String: status.icon_blocked), "✖"), [StatusText], "bar symbol: blocked runs"),
    key!("status.icon_done", Str(at!(String: status.icon_done), "✔"), [StatusText], "bar symbol: completed runs"),
    key!("status.color_ok", Str(at!(String: status.color_ok), "green"), [StatusText], "tmux colour name or `#rrggbb`"),
    key!("status.color_guidance", Str(at!(String: status.color_guidance), "yellow"), [StatusText], "tmux colour name or `#rrggbb`"),
    key!("status.color_blocked", Str(at!(String: status.color_blocked), "red"), [StatusText], "tmux colour name or `#rrggbb`"),
    key!("status.color_done", Str(at!(String: status.color_done), "blue"), [StatusText], "tmux colour name or `#rrggbb`"),
    key!("status.icon_approval", Str(at!(String: status.icon_approval), "⏸"), [StatusText], "bar symbol: runs with an action awaiting `approve` (assist mode)"),
    key!("status.color_approval", Str(at!(String: status.color_approval), "magenta"), [StatusText], "tmux colour name or `#rrggbb`"),
];

impl Key {
    /// Writes this key's default into `p`.
    pub(super) fn set_default(&self, p: &mut Policy) {
        match &self.field {
            Int(a, d) => *(a.set)(p) = *d,
            Number(a, d) => *(a.set)(p) = *d,
            Bool(a, d) => *(a.set)(p) = *d,
            Str(a, d) => *(a.set)(p) = (*d).to_owned(),
            Strings(a) | Command(a) => (a.set)(p).clear(),
            // A default outside its own choices is a table bug that `table_is_consistent`
            // catches; the field then keeps its blank value.
            Field::Choice { set, default, .. } => {
                let _ = set(p, default);
            }
        }
    }

    fn int(&self, p: &Policy) -> Option<i64> {
        match &self.field {
            Int(a, _) => Some(*(a.get)(p)),
            _ => None,
        }
    }

    /// Checks one rule (a rule that does not fit the field's type is a table bug, caught by
    /// `table_is_consistent`, and passes).
    fn check(&self, rule: Rule, p: &Policy) -> Result<(), String> {
        let path = self.path;
        let fail = |problem: String| Err(format!("{path} {problem}"));
        match (rule, &self.field) {
            (AboveZero, _) | (Positive, _) | (NonNegative, _) => {
                let Some(v) = self.int(p) else { return Ok(()) };
                let min = if rule == NonNegative { 0 } else { 1 };
                if v < min {
                    return fail(format!("must be {}", if min == 0 { ">= 0" } else { "> 0" }));
                }
                if rule != AboveZero && v > MAX_SECONDS {
                    return fail(format!("must be <= {MAX_SECONDS}"));
                }
                Ok(())
            }
            (AtLeast(other), _) => {
                let min = KEYS.iter().find(|k| k.path == other).and_then(|k| k.int(p));
                match (self.int(p), min) {
                    (Some(v), Some(min)) if v < min => fail(format!("must be >= {other}")),
                    _ => Ok(()),
                }
            }
            (NotBlank, Str(a, _)) if (a.get)(p).trim().is_empty() => {
                fail("cannot be empty".to_owned())
            }
            (Unit, Number(a, _)) => {
                let v = *(a.get)(p);
                if v.is_finite() && (0.0..=1.0).contains(&v) {
                    Ok(())
                } else {
                    fail("must be between 0 and 1".to_owned())
                }
            }
            (NoEmptyItems, Strings(a) | Command(a)) if (a.get)(p).iter().any(String::is_empty) => {
                fail("items cannot be empty".to_owned())
            }
            (StatusText, Str(a, _)) => {
                let v = (a.get)(p);
                if v.chars().count() > MAX_STATUS_CHARS || v.chars().any(char::is_control) {
                    return fail(format!(
                        "must be at most {MAX_STATUS_CHARS} characters \
                         without control characters"
                    ));
                }
                Ok(())
            }
            _ => Ok(()),
        }
    }
}

/// Every rule of every key, in table order. Screen patterns were checked while reading.
pub(super) fn validate(p: &Policy) -> Result<(), String> {
    for key in KEYS {
        for &rule in key.rules {
            key.check(rule, p)?;
        }
    }
    Ok(())
}

/// The docs' policy table (Markdown), one row per key.
pub fn markdown_table() -> String {
    let mut s = String::from("| key | type | default | rule | meaning |\n|---|---|---|---|---|\n");
    for key in KEYS {
        let (kind, default) = match &key.field {
            Int(_, d) => ("integer".to_owned(), d.to_string()),
            Number(_, d) => ("number".to_owned(), d.to_string()),
            Bool(_, d) => ("boolean".to_owned(), d.to_string()),
            Str(_, d) => ("string".to_owned(), code(&format!("{d:?}"))),
            Strings(_) => ("array of strings".to_owned(), code("[]")),
            Command(_) => ("string or array of strings".to_owned(), code("[]")),
            Field::Choice {
                default, choices, ..
            } => {
                let list: Vec<String> = choices.iter().map(|c| code(c)).collect();
                (list.join(" \\| "), code(default))
            }
        };
        let rules: Vec<String> = key.rules.iter().map(|r| rule_text(*r)).collect();
        s.push_str(&format!(
            "| {} | {kind} | {default} | {} | {} |\n",
            code(key.path),
            rules.join("; "),
            key.doc.replace('|', "\\|")
        ));
    }
    s
}

fn code(text: &str) -> String {
    format!("`{}`", text.replace('|', "\\|"))
}

fn rule_text(rule: Rule) -> String {
    match rule {
        AboveZero => "> 0".to_owned(),
        Positive => format!("> 0, ≤ {MAX_SECONDS}"),
        NonNegative => format!("≥ 0, ≤ {MAX_SECONDS}"),
        AtLeast(other) => format!("≥ {}", code(other)),
        NotBlank => "not blank".to_owned(),
        Unit => "0 to 1".to_owned(),
        NoEmptyItems => "no empty items".to_owned(),
        StatusText => format!("≤ {MAX_STATUS_CHARS} chars, no control chars"),
        ScreenPatterns => "each a valid screen pattern".to_owned(),
    }
}
