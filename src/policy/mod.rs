//! The JSON policy file: thresholds, restart budget, LLM and notification settings, status
//! bar look. Keys that a file does not set keep their defaults, field by field.
//!
//! Every key is defined once, in `keys::KEYS` (path, type, default, rules, doc); that table
//! drives the defaults, the parser, validation and the docs table. Parsing walks a
//! `serde_json::Value` by hand rather than deriving `Deserialize`, so that every error names
//! the full key path and unknown keys are rejected: the Go tool ignored them, which let typos
//! such as `restat_budget` silently fall back to defaults.

mod keys;
mod parse;
#[cfg(test)]
mod tests;

use crate::model::words;
pub use keys::markdown_table;
use keys::KEYS;

use std::ffi::OsStr;
use std::fmt;
use std::path::Path;

use serde::Serialize;

/// Largest policy file we read; anything bigger is certainly not a hand-written policy.
pub const MAX_POLICY_BYTES: u64 = 1 << 20;

/// Upper bound (one year) for durations and counters: larger values are typos, and keeping
/// them small keeps timestamp arithmetic far from i64 overflow.
const MAX_SECONDS: i64 = 31_536_000;

/// tmux status strings are rendered on every redraw; keep them short.
const MAX_STATUS_CHARS: usize = 32;

/// Longest key name quoted back in an "unknown key" message.
const MAX_KEY_CHARS: usize = 64;

/// A value of each field type, only a starting point: `Policy::default()` overwrites every
/// field with its default from `KEYS` (a test checks that every field has an entry).
trait Blank {
    fn blank() -> Self;
}

macro_rules! blank_is {
    ($($t:ty = $v:expr),* $(,)?) => {
        $(impl Blank for $t {
            fn blank() -> Self {
                $v
            }
        })*
    };
}

blank_is!(
    i64 = 0,
    f64 = 0.0,
    bool = false,
    String = String::new(),
    Vec<String> = Vec::new(),
    RestartMode = RestartMode::Resume,
    OnComplete = OnComplete::Keep,
    LlmMode = LlmMode::Off,
    LlmProvider = LlmProvider::Codex,
);

/// Declares a policy struct as written, plus its `Blank` value.
macro_rules! blank_struct {
    ($(#[$sm:meta])* pub struct $name:ident { $($(#[$fm:meta])* pub $field:ident : $ty:ty,)* }) => {
        $(#[$sm])* pub struct $name { $($(#[$fm])* pub $field: $ty,)* }
        impl Blank for $name {
            fn blank() -> Self {
                $name { $($field: Blank::blank(),)* }
            }
        }
    };
}

blank_struct! {
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Policy {
    pub version: i64,
    pub tmux: TmuxPolicy,
    pub health: HealthPolicy,
    pub operator: OperatorPolicy,
    pub status: StatusPolicy,
}
}

blank_struct! {
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TmuxPolicy {
    pub session_pattern: String,
}
}

blank_struct! {
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct HealthPolicy {
    pub idle_seconds: i64,
    pub activity_stalled_seconds: i64,
    pub progress_stalled_seconds: i64,
    /// A quiet live interactive agent whose screen says nothing known may be restarted
    /// without hook evidence of a hang (docs/screen.md).
    pub restart_quiet_interactive: bool,
    /// Extra screen patterns, one line each, in the shipped patterns' format.
    pub screen_patterns: Vec<String>,
}
}

blank_struct! {
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct OperatorPolicy {
    pub unhealthy_confirmations: i64,
    pub restart_budget: i64,
    pub restart_cooldown_seconds: i64,
    pub restart_cooldown_max_seconds: i64,
    pub stale_run_age_seconds: i64,
    pub min_observation_gap_seconds: i64,
    pub healthy_reset_seconds: i64,
    pub tick_interval_seconds: i64,
    /// The longest the no-client timer waits while its ticks find nothing changed.
    pub idle_tick_max_seconds: i64,
    pub llm: LlmPolicy,
    pub notify: NotifyPolicy,
    /// What happens to still-live agents when a completion file completes their run.
    pub on_complete: OnComplete,
    /// Agent CLI names `run adopt --scan` recognises, besides the built-in ones.
    pub agent_names: Vec<String>,
    /// Restarts continue the agent's conversation when it has a resume command (resume)
    /// or always start over (fresh). docs/restarts.md.
    pub restart_mode: RestartMode,
    /// A conversation younger than this is started over rather than resumed.
    pub resume_min_conversation_seconds: i64,
    /// A resumed agent that ends this soon failed to resume: the next start is fresh.
    pub resume_failed_within_seconds: i64,
    /// A server that starts and finds runs orphaned by its predecessor revives them.
    pub revive_on_server_start: bool,
}
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RestartMode {
    Resume,
    Fresh,
}

words!(RestartMode, choice, {
    Resume => "resume",
    Fresh => "fresh",
});

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OnComplete {
    /// Leave them at their prompt (the run is completed and no longer supervised).
    Keep,
    /// Kill their panes/sessions.
    Stop,
}

words!(OnComplete, choice, {
    Keep => "keep",
    Stop => "stop",
});

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LlmMode {
    Off,
    Assist,
    Auto,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LlmProvider {
    Codex,
    Claude,
    Command,
    /// The original metawsm's call form: `<command> exec [--model M] <prompt>`.
    Metawsm,
}

words!(LlmMode, choice, {
    Off => "off",
    Assist => "assist",
    Auto => "auto",
});

words!(LlmProvider, choice, {
    Codex => "codex",
    Claude => "claude",
    Command => "command",
    Metawsm => "metawsm",
});

blank_struct! {
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct LlmPolicy {
    pub mode: LlmMode,
    pub provider: LlmProvider,
    pub command: String,
    pub args: Vec<String>,
    pub model: String,
    pub timeout_seconds: i64,
    pub max_tokens: i64,
    pub min_confidence: f64,
    pub min_interval_seconds: i64,
}
}

blank_struct! {
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct NotifyPolicy {
    /// argv of a program to run; empty means none. A string in the file becomes
    /// `["sh", "-c", STRING]`.
    pub command: Vec<String>,
    pub tmux_message: bool,
    pub bell: bool,
}
}

blank_struct! {
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct StatusPolicy {
    pub icon_ok: String,
    pub icon_guidance: String,
    pub icon_blocked: String,
    pub icon_done: String,
    pub color_ok: String,
    pub color_guidance: String,
    pub color_blocked: String,
    pub color_done: String,
    /// Runs with an action held for `metawsm-tick approve` (assist mode).
    pub icon_approval: String,
    pub color_approval: String,
}
}

#[derive(Debug, Clone, PartialEq)]
pub struct PolicyError {
    pub path: String,
    pub message: String,
}

impl fmt::Display for PolicyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "policy {}: {}",
            OneLine(&self.path),
            OneLine(&self.message)
        )
    }
}

impl std::error::Error for PolicyError {}

/// Escapes control characters so a message stays on one line (file names may hold newlines).
struct OneLine<'a>(&'a str);

impl fmt::Display for OneLine<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for c in self.0.chars() {
            if c.is_control() {
                write!(f, "{}", c.escape_default())?;
            } else {
                write!(f, "{c}")?;
            }
        }
        Ok(())
    }
}

impl LlmMode {
    /// The mode and what it means for the user, in one line.
    pub fn meaning(self) -> &'static str {
        match self {
            LlmMode::Off => {
                "operator.llm.mode = off: the rules act alone (restarts and stops run by themselves); no LLM is called"
            }
            LlmMode::Assist => {
                "operator.llm.mode = assist: restarts and stops wait for you (metawsm-tick approve RUN, or the tmux menu); the LLM only comments"
            }
            LlmMode::Auto => {
                "operator.llm.mode = auto: restarts and stops run by themselves; the LLM may veto or escalate them instead"
            }
        }
    }
}

impl Default for Policy {
    /// Every key's default from `KEYS`.
    fn default() -> Self {
        let mut p = <Policy as Blank>::blank();
        for key in KEYS {
            key.set_default(&mut p);
        }
        p
    }
}

impl Default for TmuxPolicy {
    fn default() -> Self {
        Policy::default().tmux
    }
}

impl Default for HealthPolicy {
    fn default() -> Self {
        Policy::default().health
    }
}

impl Default for OperatorPolicy {
    fn default() -> Self {
        Policy::default().operator
    }
}

impl Default for LlmPolicy {
    fn default() -> Self {
        Policy::default().operator.llm
    }
}

impl Default for NotifyPolicy {
    fn default() -> Self {
        Policy::default().operator.notify
    }
}

impl Default for StatusPolicy {
    fn default() -> Self {
        Policy::default().status
    }
}

impl Policy {
    /// Loads and validates `path`; a missing file means the defaults.
    pub fn load(path: &Path) -> Result<Policy, PolicyError> {
        let shown = display_path(path, std::env::var_os("HOME").as_deref());
        match read_capped(path) {
            Ok(Some(text)) => Policy::parse(&text, &shown),
            Ok(None) => Ok(Policy::default()),
            Err(message) => Err(PolicyError {
                path: shown,
                message,
            }),
        }
    }

    /// Parses and validates policy text; `path_display` only labels errors.
    pub fn parse(text: &str, path_display: &str) -> Result<Policy, PolicyError> {
        parse::parse_text(text).map_err(|message| PolicyError {
            path: path_display.to_owned(),
            message,
        })
    }

    /// Checks every key's rules from `KEYS`, in table order: the first failing rule wins.
    pub fn validate(&self) -> Result<(), String> {
        keys::validate(self)
    }

    /// The effective policy in the file format (2-space indent, trailing newline).
    pub fn to_pretty_json(&self) -> String {
        // Cannot fail: all map keys are strings and no Serialize impl here returns an error
        // (a non-finite min_confidence becomes `null`, which validate() rejects anyway).
        let mut out = serde_json::to_string_pretty(self).expect("policy always serializes");
        out.push('\n');
        out
    }
}

fn too_large(len: u64) -> String {
    format!("file is too large ({len} bytes, limit {MAX_POLICY_BYTES})")
}

/// Reads at most MAX_POLICY_BYTES, never blocking (a FIFO is refused, not waited on).
/// `Ok(None)` means the file does not exist.
fn read_capped(path: &Path) -> Result<Option<String>, String> {
    use crate::fsio::{read_bounded, ReadError};
    let bytes = match read_bounded(path, MAX_POLICY_BYTES) {
        Ok(Some(b)) => b,
        Ok(None) => return Ok(None),
        Err(ReadError::NotRegular(_, kind)) => {
            return Err(format!("is {kind}, not a regular file"))
        }
        Err(ReadError::TooLarge(_, _, Some(len))) => return Err(too_large(len)),
        Err(ReadError::TooLarge(_, _, None)) => {
            return Err(format!(
                "file is too large (over {MAX_POLICY_BYTES} bytes, limit {MAX_POLICY_BYTES})"
            ))
        }
        Err(ReadError::Io(_, e)) => return Err(format!("cannot read file: {e}")),
    };
    String::from_utf8(bytes).map(Some).map_err(|e| {
        format!(
            "file is not valid UTF-8 (at byte {})",
            e.utf8_error().valid_up_to()
        )
    })
}

/// `path` with a leading `$HOME` shown as `~`, for shorter, shareable messages.
fn display_path(path: &Path, home: Option<&OsStr>) -> String {
    // A HOME of "" or "/" would turn every (or no) path into "~": ignore those.
    let home = home
        .map(Path::new)
        .filter(|h| h.is_absolute() && h.parent().is_some());
    if let Some(rest) = home.and_then(|h| path.strip_prefix(h).ok()) {
        if rest.as_os_str().is_empty() {
            return "~".to_owned();
        }
        return format!("~/{}", rest.display());
    }
    path.display().to_string()
}
