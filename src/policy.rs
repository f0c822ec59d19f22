//! The JSON policy file: thresholds, restart budget, LLM and notification settings, status
//! bar look. Keys that a file does not set keep their defaults, field by field.
//!
//! Parsing walks a `serde_json::Value` by hand rather than deriving `Deserialize`, so that
//! every error names the full key path and unknown keys are rejected: the Go tool ignored
//! them, which let typos such as `restat_budget` silently fall back to defaults.

use std::ffi::OsStr;
use std::fmt;
use std::path::Path;
use std::str::FromStr;

use serde::Serialize;
use serde_json::{Map, Value};

/// Largest policy file we read; anything bigger is certainly not a hand-written policy.
pub const MAX_POLICY_BYTES: u64 = 1 << 20;

/// Upper bound (one year) for durations and counters: larger values are typos, and keeping
/// them small keeps timestamp arithmetic far from i64 overflow.
const MAX_SECONDS: i64 = 31_536_000;

/// tmux status strings are rendered on every redraw; keep them short.
const MAX_STATUS_CHARS: usize = 32;

/// Longest key name quoted back in an "unknown key" message.
const MAX_KEY_CHARS: usize = 64;

/// Our blocks, then those of the original Go tool's policy that we accept (so its files load
/// unchanged) but never read.
const TOP_KEYS: [&str; 13] = [
    "version",
    "tmux",
    "health",
    "operator",
    "status",
    "workspace",
    "docs",
    "execution",
    "close",
    "agent_profiles",
    "agents",
    "git_pr",
    "forum",
];

const TMUX_KEYS: [&str; 1] = ["session_pattern"];
const HEALTH_KEYS: [&str; 5] = [
    "idle_seconds",
    "activity_stalled_seconds",
    "progress_stalled_seconds",
    "restart_quiet_interactive",
    "screen_patterns",
];
const OPERATOR_KEYS: [&str; 16] = [
    "on_complete",
    "restart_mode",
    "resume_min_conversation_seconds",
    "resume_failed_within_seconds",
    "revive_on_server_start",
    "agent_names",
    "unhealthy_confirmations",
    "restart_budget",
    "restart_cooldown_seconds",
    "restart_cooldown_max_seconds",
    "stale_run_age_seconds",
    "min_observation_gap_seconds",
    "healthy_reset_seconds",
    "tick_interval_seconds",
    "llm",
    "notify",
];
const LLM_KEYS: [&str; 9] = [
    "mode",
    "provider",
    "command",
    "args",
    "model",
    "timeout_seconds",
    "max_tokens",
    "min_confidence",
    "min_interval_seconds",
];
const NOTIFY_KEYS: [&str; 3] = ["command", "tmux_message", "bell"];
const STATUS_KEYS: [&str; 10] = [
    "icon_approval",
    "color_approval",
    "icon_ok",
    "icon_guidance",
    "icon_blocked",
    "icon_done",
    "color_ok",
    "color_guidance",
    "color_blocked",
    "color_done",
];

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Policy {
    pub version: i64,
    pub tmux: TmuxPolicy,
    pub health: HealthPolicy,
    pub operator: OperatorPolicy,
    pub status: StatusPolicy,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TmuxPolicy {
    pub session_pattern: String,
}

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

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum RestartMode {
    Resume,
    Fresh,
}

impl FromStr for RestartMode {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "resume" => Ok(RestartMode::Resume),
            "fresh" => Ok(RestartMode::Fresh),
            _ => Err(format!("unknown value {s:?} (expected resume|fresh)")),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum OnComplete {
    /// Leave them at their prompt (the run is completed and no longer supervised).
    Keep,
    /// Kill their panes/sessions.
    Stop,
}

impl FromStr for OnComplete {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "keep" => Ok(OnComplete::Keep),
            "stop" => Ok(OnComplete::Stop),
            _ => Err(format!("unknown value {s:?} (expected keep|stop)")),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum LlmMode {
    Off,
    Assist,
    Auto,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum LlmProvider {
    Codex,
    Claude,
    Command,
    /// The original metawsm's call form: `<command> exec [--model M] <prompt>`.
    Metawsm,
}

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

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct NotifyPolicy {
    /// argv of a program to run; empty means none. A string in the file becomes
    /// `["sh", "-c", STRING]`.
    pub command: Vec<String>,
    pub tmux_message: bool,
    pub bell: bool,
}

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
    pub fn as_str(self) -> &'static str {
        match self {
            LlmMode::Off => "off",
            LlmMode::Assist => "assist",
            LlmMode::Auto => "auto",
        }
    }

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

impl FromStr for LlmMode {
    /// The error reads as a predicate ("must be off|assist|auto") so callers can prefix a name.
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        match s.trim().to_lowercase().as_str() {
            "off" => Ok(LlmMode::Off),
            "assist" => Ok(LlmMode::Assist),
            "auto" => Ok(LlmMode::Auto),
            _ => Err("must be off|assist|auto".to_owned()),
        }
    }
}

impl fmt::Display for LlmMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl LlmProvider {
    pub fn as_str(self) -> &'static str {
        match self {
            LlmProvider::Codex => "codex",
            LlmProvider::Claude => "claude",
            LlmProvider::Command => "command",
            LlmProvider::Metawsm => "metawsm",
        }
    }
}

impl FromStr for LlmProvider {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        match s.trim().to_lowercase().as_str() {
            "codex" => Ok(LlmProvider::Codex),
            "claude" => Ok(LlmProvider::Claude),
            "command" => Ok(LlmProvider::Command),
            "metawsm" => Ok(LlmProvider::Metawsm),
            _ => Err("must be codex|claude|command|metawsm".to_owned()),
        }
    }
}

impl fmt::Display for LlmProvider {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl Default for Policy {
    fn default() -> Self {
        Policy {
            // 2 is the original tool's version; its files carry it.
            version: 2,
            tmux: TmuxPolicy::default(),
            health: HealthPolicy::default(),
            operator: OperatorPolicy::default(),
            status: StatusPolicy::default(),
        }
    }
}

impl Default for TmuxPolicy {
    fn default() -> Self {
        TmuxPolicy {
            session_pattern: "{agent}-{workspace}".to_owned(),
        }
    }
}

impl Default for HealthPolicy {
    fn default() -> Self {
        HealthPolicy {
            idle_seconds: 300,
            activity_stalled_seconds: 900,
            progress_stalled_seconds: 1200,
            restart_quiet_interactive: false,
            screen_patterns: Vec::new(),
        }
    }
}

impl Default for OperatorPolicy {
    fn default() -> Self {
        OperatorPolicy {
            unhealthy_confirmations: 2,
            restart_budget: 3,
            restart_cooldown_seconds: 60,
            restart_cooldown_max_seconds: 900,
            stale_run_age_seconds: 3600,
            min_observation_gap_seconds: 5,
            healthy_reset_seconds: 600,
            tick_interval_seconds: 15,
            llm: LlmPolicy::default(),
            notify: NotifyPolicy::default(),
            on_complete: OnComplete::Keep,
            agent_names: Vec::new(),
            restart_mode: RestartMode::Resume,
            resume_min_conversation_seconds: 60,
            resume_failed_within_seconds: 15,
            revive_on_server_start: false,
        }
    }
}

impl Default for LlmPolicy {
    fn default() -> Self {
        LlmPolicy {
            mode: LlmMode::Assist,
            provider: LlmProvider::Codex,
            command: "codex".to_owned(),
            args: Vec::new(),
            model: String::new(),
            timeout_seconds: 30,
            max_tokens: 400,
            min_confidence: 0.5,
            min_interval_seconds: 60,
        }
    }
}

impl Default for NotifyPolicy {
    fn default() -> Self {
        NotifyPolicy {
            command: Vec::new(),
            tmux_message: true,
            bell: false,
        }
    }
}

impl Default for StatusPolicy {
    fn default() -> Self {
        StatusPolicy {
            icon_ok: "⚙".to_owned(),
            icon_guidance: "?".to_owned(),
            icon_blocked: "✖".to_owned(),
            icon_done: "✔".to_owned(),
            color_ok: "green".to_owned(),
            color_guidance: "yellow".to_owned(),
            color_blocked: "red".to_owned(),
            color_done: "blue".to_owned(),
            icon_approval: "⏸".to_owned(),
            color_approval: "magenta".to_owned(),
        }
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
        parse_text(text).map_err(|message| PolicyError {
            path: path_display.to_owned(),
            message,
        })
    }

    pub fn validate(&self) -> Result<(), String> {
        if self.version <= 0 {
            return Err("version must be > 0".to_owned());
        }
        if self.tmux.session_pattern.trim().is_empty() {
            return Err("tmux.session_pattern cannot be empty".to_owned());
        }

        let h = &self.health;
        positive("health.idle_seconds", h.idle_seconds)?;
        positive(
            "health.activity_stalled_seconds",
            h.activity_stalled_seconds,
        )?;
        positive(
            "health.progress_stalled_seconds",
            h.progress_stalled_seconds,
        )?;
        if h.activity_stalled_seconds < h.idle_seconds {
            return Err(
                "health.activity_stalled_seconds must be >= health.idle_seconds".to_owned(),
            );
        }

        let o = &self.operator;
        positive(
            "operator.unhealthy_confirmations",
            o.unhealthy_confirmations,
        )?;
        positive("operator.restart_budget", o.restart_budget)?;
        positive(
            "operator.restart_cooldown_seconds",
            o.restart_cooldown_seconds,
        )?;
        positive(
            "operator.restart_cooldown_max_seconds",
            o.restart_cooldown_max_seconds,
        )?;
        positive("operator.stale_run_age_seconds", o.stale_run_age_seconds)?;
        positive("operator.tick_interval_seconds", o.tick_interval_seconds)?;
        if o.restart_cooldown_max_seconds < o.restart_cooldown_seconds {
            return Err("operator.restart_cooldown_max_seconds must be >= \
                 operator.restart_cooldown_seconds"
                .to_owned());
        }
        non_negative(
            "operator.min_observation_gap_seconds",
            o.min_observation_gap_seconds,
        )?;
        non_negative("operator.healthy_reset_seconds", o.healthy_reset_seconds)?;
        non_negative(
            "operator.resume_min_conversation_seconds",
            o.resume_min_conversation_seconds,
        )?;
        non_negative(
            "operator.resume_failed_within_seconds",
            o.resume_failed_within_seconds,
        )?;

        // llm.mode and llm.provider are enums: bad values were already rejected by the parser.
        let llm = &o.llm;
        if llm.command.trim().is_empty() {
            return Err("operator.llm.command cannot be empty".to_owned());
        }
        positive("operator.llm.timeout_seconds", llm.timeout_seconds)?;
        if llm.max_tokens <= 0 {
            return Err("operator.llm.max_tokens must be > 0".to_owned());
        }
        non_negative(
            "operator.llm.min_interval_seconds",
            llm.min_interval_seconds,
        )?;
        if !(llm.min_confidence.is_finite() && (0.0..=1.0).contains(&llm.min_confidence)) {
            return Err("operator.llm.min_confidence must be between 0 and 1".to_owned());
        }
        if llm.args.iter().any(String::is_empty) {
            return Err("operator.llm.args items cannot be empty".to_owned());
        }
        if o.notify.command.iter().any(String::is_empty) {
            return Err("operator.notify.command items cannot be empty".to_owned());
        }

        let s = &self.status;
        for (name, value) in [
            ("status.icon_ok", &s.icon_ok),
            ("status.icon_guidance", &s.icon_guidance),
            ("status.icon_blocked", &s.icon_blocked),
            ("status.icon_done", &s.icon_done),
            ("status.color_ok", &s.color_ok),
            ("status.color_guidance", &s.color_guidance),
            ("status.color_blocked", &s.color_blocked),
            ("status.color_done", &s.color_done),
            ("status.icon_approval", &s.icon_approval),
            ("status.color_approval", &s.color_approval),
        ] {
            if value.chars().count() > MAX_STATUS_CHARS || value.chars().any(char::is_control) {
                return Err(format!(
                    "{name} must be at most {MAX_STATUS_CHARS} characters \
                     without control characters"
                ));
            }
        }
        Ok(())
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

/// Range check for durations and counters that must be set: (0, one year].
fn positive(name: &str, value: i64) -> Result<(), String> {
    if value <= 0 {
        return Err(format!("{name} must be > 0"));
    }
    at_most_a_year(name, value)
}

/// Range check for durations where 0 means "off": [0, one year].
fn non_negative(name: &str, value: i64) -> Result<(), String> {
    if value < 0 {
        return Err(format!("{name} must be >= 0"));
    }
    at_most_a_year(name, value)
}

fn at_most_a_year(name: &str, value: i64) -> Result<(), String> {
    if value > MAX_SECONDS {
        return Err(format!("{name} must be <= {MAX_SECONDS}"));
    }
    Ok(())
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

fn parse_text(text: &str) -> Result<Policy, String> {
    if text.len() as u64 > MAX_POLICY_BYTES {
        return Err(too_large(text.len() as u64));
    }
    // Some editors write a UTF-8 byte order mark; it carries no meaning in JSON.
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    if text.trim().is_empty() {
        return Err("file is empty".to_owned());
    }
    let value: Value = serde_json::from_str(text).map_err(|e| json_error(&e))?;
    crate::json_dups::check(text)?;
    let Value::Object(root) = &value else {
        return Err("top level must be a JSON object".to_owned());
    };

    let mut p = Policy::default();
    let top = Block::new(root, String::new(), &TOP_KEYS)?;
    top.int("version", &mut p.version)?;

    if let Some(b) = top.block("tmux", &TMUX_KEYS)? {
        b.string("session_pattern", &mut p.tmux.session_pattern)?;
    }

    if let Some(b) = top.block("health", &HEALTH_KEYS)? {
        let h = &mut p.health;
        b.int("idle_seconds", &mut h.idle_seconds)?;
        b.int("activity_stalled_seconds", &mut h.activity_stalled_seconds)?;
        b.int("progress_stalled_seconds", &mut h.progress_stalled_seconds)?;
        b.boolean(
            "restart_quiet_interactive",
            &mut h.restart_quiet_interactive,
        )?;
        b.string_array("screen_patterns", &mut h.screen_patterns)?;
        for (i, line) in h.screen_patterns.iter().enumerate() {
            crate::screen::parse_pattern(line)
                .map_err(|e| format!("health.screen_patterns[{i}]: {e}"))?;
        }
    }

    if let Some(b) = top.block("operator", &OPERATOR_KEYS)? {
        let o = &mut p.operator;
        b.int("unhealthy_confirmations", &mut o.unhealthy_confirmations)?;
        b.int("restart_budget", &mut o.restart_budget)?;
        b.int("restart_cooldown_seconds", &mut o.restart_cooldown_seconds)?;
        b.int(
            "restart_cooldown_max_seconds",
            &mut o.restart_cooldown_max_seconds,
        )?;
        b.int("stale_run_age_seconds", &mut o.stale_run_age_seconds)?;
        b.int(
            "min_observation_gap_seconds",
            &mut o.min_observation_gap_seconds,
        )?;
        b.int("healthy_reset_seconds", &mut o.healthy_reset_seconds)?;
        b.int("tick_interval_seconds", &mut o.tick_interval_seconds)?;
        b.parsed("on_complete", &mut o.on_complete)?;
        b.parsed("restart_mode", &mut o.restart_mode)?;
        b.int(
            "resume_min_conversation_seconds",
            &mut o.resume_min_conversation_seconds,
        )?;
        b.int(
            "resume_failed_within_seconds",
            &mut o.resume_failed_within_seconds,
        )?;
        b.boolean("revive_on_server_start", &mut o.revive_on_server_start)?;
        b.string_array("agent_names", &mut o.agent_names)?;

        if let Some(l) = b.block("llm", &LLM_KEYS)? {
            let llm = &mut o.llm;
            l.parsed("mode", &mut llm.mode)?;
            l.parsed("provider", &mut llm.provider)?;
            l.string("command", &mut llm.command)?;
            // Claude's CLI is not called "codex": follow the provider unless told otherwise.
            if llm.provider == LlmProvider::Claude && !l.has("command") {
                llm.command = "claude".to_owned();
            }
            // Without a provider, the command says how to call it: a wrapper that is
            // neither codex nor claude is called as the original metawsm called it.
            if !l.has("provider") {
                llm.provider = provider_for_command(&llm.command);
            }
            l.string_array("args", &mut llm.args)?;
            l.string("model", &mut llm.model)?;
            l.int("timeout_seconds", &mut llm.timeout_seconds)?;
            l.int("max_tokens", &mut llm.max_tokens)?;
            l.number("min_confidence", &mut llm.min_confidence)?;
            l.int("min_interval_seconds", &mut llm.min_interval_seconds)?;
        }

        if let Some(n) = b.block("notify", &NOTIFY_KEYS)? {
            let notify = &mut o.notify;
            n.command("command", &mut notify.command)?;
            n.boolean("tmux_message", &mut notify.tmux_message)?;
            n.boolean("bell", &mut notify.bell)?;
        }
    }

    if let Some(b) = top.block("status", &STATUS_KEYS)? {
        let s = &mut p.status;
        b.string("icon_ok", &mut s.icon_ok)?;
        b.string("icon_guidance", &mut s.icon_guidance)?;
        b.string("icon_blocked", &mut s.icon_blocked)?;
        b.string("icon_done", &mut s.icon_done)?;
        b.string("color_ok", &mut s.color_ok)?;
        b.string("color_guidance", &mut s.color_guidance)?;
        b.string("color_blocked", &mut s.color_blocked)?;
        b.string("color_done", &mut s.color_done)?;
        b.string("icon_approval", &mut s.icon_approval)?;
        b.string("color_approval", &mut s.color_approval)?;
    }

    p.validate()?;
    Ok(p)
}

/// The provider a bare `operator.llm.command` implies (by its file name).
fn provider_for_command(command: &str) -> LlmProvider {
    let name = Path::new(command.trim())
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    match name.as_str() {
        "codex" => LlmProvider::Codex,
        "claude" => LlmProvider::Claude,
        _ => LlmProvider::Metawsm,
    }
}

/// "invalid JSON at line L column C: msg", without serde's own trailing position.
fn json_error(e: &serde_json::Error) -> String {
    let full = e.to_string();
    let suffix = format!(" at line {} column {}", e.line(), e.column());
    let msg = full.strip_suffix(&suffix).unwrap_or(&full);
    format!(
        "invalid JSON at line {} column {}: {msg}",
        e.line(),
        e.column()
    )
}

/// One JSON object of the policy, with its dotted path for messages.
struct Block<'a> {
    map: &'a Map<String, Value>,
    path: String,
}

impl<'a> Block<'a> {
    /// Rejects keys outside `known` (case-sensitive).
    fn new(map: &'a Map<String, Value>, path: String, known: &[&str]) -> Result<Self, String> {
        let block = Block { map, path };
        if let Some(key) = map.keys().find(|k| !known.contains(&k.as_str())) {
            return Err(format!("{}: unknown key", block.key_path(&quote_key(key))));
        }
        Ok(block)
    }

    fn key_path(&self, key: &str) -> String {
        if self.path.is_empty() {
            key.to_owned()
        } else {
            format!("{}.{key}", self.path)
        }
    }

    fn has(&self, key: &str) -> bool {
        self.map.contains_key(key)
    }

    fn block(&self, key: &str, known: &[&str]) -> Result<Option<Block<'a>>, String> {
        let Some(value) = self.map.get(key) else {
            return Ok(None);
        };
        let path = self.key_path(key);
        match value {
            Value::Object(map) => Block::new(map, path, known).map(Some),
            _ => Err(format!("{path} must be an object")),
        }
    }

    /// Overwrites `out` with `convert(value)` if `key` is present; `null` is a type error.
    fn set<T>(
        &self,
        key: &str,
        out: &mut T,
        expected: &str,
        convert: impl FnOnce(&Value) -> Option<T>,
    ) -> Result<(), String> {
        if let Some(value) = self.map.get(key) {
            *out = convert(value)
                .ok_or_else(|| format!("{} must be {expected}", self.key_path(key)))?;
        }
        Ok(())
    }

    /// JSON integers only: 3.0, "3" and values outside i64 are rejected.
    fn int(&self, key: &str, out: &mut i64) -> Result<(), String> {
        self.set(key, out, "an integer", Value::as_i64)
    }

    fn number(&self, key: &str, out: &mut f64) -> Result<(), String> {
        self.set(key, out, "a number", Value::as_f64)
    }

    fn boolean(&self, key: &str, out: &mut bool) -> Result<(), String> {
        self.set(key, out, "a boolean", Value::as_bool)
    }

    fn string(&self, key: &str, out: &mut String) -> Result<(), String> {
        self.set(key, out, "a string", |v| v.as_str().map(str::to_owned))
    }

    fn string_array(&self, key: &str, out: &mut Vec<String>) -> Result<(), String> {
        self.set(key, out, "an array of strings", strings)
    }

    /// A command: an array of strings is an argv (no shell); one string is a shell command,
    /// run as `sh -c STRING` the way the original's `--notify-cmd` went through a shell.
    /// "" and [] both mean "no command".
    fn command(&self, key: &str, out: &mut Vec<String>) -> Result<(), String> {
        self.set(key, out, "a string or an array of strings", |v| match v {
            Value::String(s) if s.trim().is_empty() => Some(Vec::new()),
            Value::String(s) => Some(vec!["sh".to_owned(), "-c".to_owned(), s.clone()]),
            _ => strings(v),
        })
    }

    /// A string parsed with `FromStr`, whose error reads "must be a|b|c".
    fn parsed<T: FromStr<Err = String>>(&self, key: &str, out: &mut T) -> Result<(), String> {
        let mut text = None;
        self.set(key, &mut text, "a string", |v| {
            v.as_str().map(|s| Some(s.to_owned()))
        })?;
        if let Some(text) = text {
            *out = text
                .parse()
                .map_err(|e| format!("{} {e}", self.key_path(key)))?;
        }
        Ok(())
    }
}

fn strings(value: &Value) -> Option<Vec<String>> {
    value
        .as_array()?
        .iter()
        .map(|item| item.as_str().map(str::to_owned))
        .collect()
}

/// A key as quoted in messages: control characters escaped, long names cut short.
fn quote_key(key: &str) -> String {
    let mut out: String = OneLine(key).to_string();
    if out.chars().count() > MAX_KEY_CHARS {
        out = out.chars().take(MAX_KEY_CHARS).collect();
        out.push('…');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs::File;
    use std::io::Write;

    const REPO_FIXTURES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/policy/");
    const SHARED_FIXTURES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../shared/fixtures/");
    const FIXTURES: [&str; 2] = ["metawsm-policy.a3640a4.json", "metawsm-policy.head.json"];

    fn parse(text: &str) -> Result<Policy, PolicyError> {
        Policy::parse(text, "p.json")
    }

    fn ok(text: &str) -> Policy {
        match parse(text) {
            Ok(p) => p,
            Err(e) => panic!("{text}: {e}"),
        }
    }

    #[test]
    fn defaults_are_valid_and_as_specified() {
        let p = Policy::default();
        assert_eq!(p.validate(), Ok(()));
        assert_eq!(p.tmux.session_pattern, "{agent}-{workspace}");
        assert_eq!(p.operator.llm.mode, LlmMode::Assist);
        assert_eq!(p.operator.llm.provider, LlmProvider::Codex);
        assert_eq!(p.operator.llm.command, "codex");
        assert_eq!(p.operator.llm.min_confidence, 0.5);
        assert!(p.operator.notify.command.is_empty());
        assert!(p.operator.notify.tmux_message && !p.operator.notify.bell);
        assert_eq!(p.status.icon_ok, "⚙");
        assert_eq!(p.status.color_done, "blue");
    }

    #[test]
    fn original_fixtures_load_unchanged() {
        for name in FIXTURES {
            // The repo copy is required; shared/ beside the checkout is checked when present.
            let repo = Path::new(REPO_FIXTURES).join(name);
            assert!(repo.is_file(), "missing fixture {}", repo.display());
            let shared = Path::new(SHARED_FIXTURES).join(name);
            for path in [repo, shared].iter().filter(|p| p.is_file()) {
                let loaded = Policy::load(path).map_err(|e| e.to_string());
                // Their tmux/health/operator blocks are exactly our defaults.
                assert_eq!(loaded, Ok(Policy::default()), "{}", path.display());
            }
        }
    }

    #[test]
    fn bad_inputs_give_exact_messages() {
        let long33 = format!(r#"{{"status":{{"icon_ok":"{}"}}}}"#, "x".repeat(33));
        let long_key = format!(r#"{{"{}":1}}"#, "k".repeat(70));
        let long_key_msg = format!("{}…: unknown key", "k".repeat(64));
        let cases: Vec<(&str, &str)> = vec![
            // Structure.
            ("", "file is empty"),
            (" \n\t\r\n", "file is empty"),
            ("{", "invalid JSON at line 1 column 1: EOF while parsing an object"),
            ("{\n  \"version\": 2,\n}", "invalid JSON at line 3 column 1: trailing comma"),
            ("{} x", "invalid JSON at line 1 column 4: trailing characters"),
            ("[1]", "top level must be a JSON object"),
            (
                r#"{"operator":{"restart_budget":1,"restart_budget":9}}"#,
                "duplicate key operator.restart_budget",
            ),
            ("null", "top level must be a JSON object"),
            ("42", "top level must be a JSON object"),
            // Unknown keys at every level; keys are case-sensitive.
            (r#"{"foo":1}"#, "foo: unknown key"),
            (r#"{"Version":2}"#, "Version: unknown key"),
            (r#"{"a\nb":1}"#, "a\\nb: unknown key"),
            (&long_key, &long_key_msg),
            (r#"{"tmux":{"pattern":"x"}}"#, "tmux.pattern: unknown key"),
            (r#"{"health":{"idle":1}}"#, "health.idle: unknown key"),
            (r#"{"operator":{"restat_budget":3}}"#, "operator.restat_budget: unknown key"),
            (r#"{"operator":{"llm":{"modle":"off"}}}"#, "operator.llm.modle: unknown key"),
            (r#"{"operator":{"notify":{"sound":true}}}"#, "operator.notify.sound: unknown key"),
            (r#"{"status":{"icon":"x"}}"#, "status.icon: unknown key"),
            (
                r#"{"health":{"screen_patterns":["codex busy line x"]}}"#,
                "health.screen_patterns[0]: state \"busy\" must be working|waiting|idle (in \"codex busy line x\")",
            ),
            (r#"{"health":{"screen_patterns":"x"}}"#, "health.screen_patterns must be an array of strings"),
            (r#"{"health":{"restart_quiet_interactive":1}}"#, "health.restart_quiet_interactive must be a boolean"),
            // Blocks that are not objects.
            (r#"{"tmux":[]}"#, "tmux must be an object"),
            (r#"{"health":null}"#, "health must be an object"),
            (r#"{"operator":"x"}"#, "operator must be an object"),
            (r#"{"operator":{"llm":null}}"#, "operator.llm must be an object"),
            (r#"{"operator":{"notify":1}}"#, "operator.notify must be an object"),
            (r#"{"status":true}"#, "status must be an object"),
            // Wrong types.
            (r#"{"version":"2"}"#, "version must be an integer"),
            (r#"{"version":3.0}"#, "version must be an integer"),
            (r#"{"version":1e2}"#, "version must be an integer"),
            (r#"{"version":9223372036854775808}"#, "version must be an integer"),
            (r#"{"health":{"idle_seconds":true}}"#, "health.idle_seconds must be an integer"),
            (r#"{"operator":{"restart_budget":"3"}}"#, "operator.restart_budget must be an integer"),
            (r#"{"tmux":{"session_pattern":5}}"#, "tmux.session_pattern must be a string"),
            (r#"{"operator":{"llm":{"mode":1}}}"#, "operator.llm.mode must be a string"),
            (r#"{"operator":{"llm":{"provider":[]}}}"#, "operator.llm.provider must be a string"),
            (r#"{"operator":{"llm":{"command":["codex"]}}}"#, "operator.llm.command must be a string"),
            (r#"{"operator":{"llm":{"model":false}}}"#, "operator.llm.model must be a string"),
            (r#"{"operator":{"llm":{"args":"-q"}}}"#, "operator.llm.args must be an array of strings"),
            (r#"{"operator":{"llm":{"args":["-q",1]}}}"#, "operator.llm.args must be an array of strings"),
            (r#"{"operator":{"llm":{"min_confidence":"0.5"}}}"#, "operator.llm.min_confidence must be a number"),
            (r#"{"operator":{"llm":{"max_tokens":4.5}}}"#, "operator.llm.max_tokens must be an integer"),
            (r#"{"operator":{"notify":{"command":5}}}"#, "operator.notify.command must be a string or an array of strings"),
            (r#"{"operator":{"notify":{"command":[["x"]]}}}"#, "operator.notify.command must be a string or an array of strings"),
            (r#"{"operator":{"notify":{"tmux_message":"yes"}}}"#, "operator.notify.tmux_message must be a boolean"),
            (r#"{"operator":{"notify":{"bell":1}}}"#, "operator.notify.bell must be a boolean"),
            (r#"{"status":{"color_ok":1}}"#, "status.color_ok must be a string"),
            // null never means "default".
            (r#"{"version":null}"#, "version must be an integer"),
            (r#"{"tmux":{"session_pattern":null}}"#, "tmux.session_pattern must be a string"),
            (r#"{"operator":{"llm":{"min_confidence":null}}}"#, "operator.llm.min_confidence must be a number"),
            (r#"{"operator":{"llm":{"args":null}}}"#, "operator.llm.args must be an array of strings"),
            (r#"{"operator":{"notify":{"command":null}}}"#, "operator.notify.command must be a string or an array of strings"),
            (r#"{"operator":{"notify":{"bell":null}}}"#, "operator.notify.bell must be a boolean"),
            // Enumerations.
            (r#"{"operator":{"llm":{"mode":"sometimes"}}}"#, "operator.llm.mode must be off|assist|auto"),
            (r#"{"operator":{"llm":{"mode":""}}}"#, "operator.llm.mode must be off|assist|auto"),
            (r#"{"operator":{"llm":{"provider":"gpt"}}}"#, "operator.llm.provider must be codex|claude|command|metawsm"),
            // Validation, field by field.
            (r#"{"version":0}"#, "version must be > 0"),
            (r#"{"version":-2}"#, "version must be > 0"),
            (r#"{"tmux":{"session_pattern":" \t"}}"#, "tmux.session_pattern cannot be empty"),
            (r#"{"health":{"idle_seconds":0}}"#, "health.idle_seconds must be > 0"),
            (r#"{"health":{"activity_stalled_seconds":-1}}"#, "health.activity_stalled_seconds must be > 0"),
            (r#"{"health":{"progress_stalled_seconds":0}}"#, "health.progress_stalled_seconds must be > 0"),
            (r#"{"health":{"idle_seconds":901}}"#, "health.activity_stalled_seconds must be >= health.idle_seconds"),
            (r#"{"operator":{"unhealthy_confirmations":0}}"#, "operator.unhealthy_confirmations must be > 0"),
            (r#"{"operator":{"restart_budget":0}}"#, "operator.restart_budget must be > 0"),
            (r#"{"operator":{"restart_cooldown_seconds":0}}"#, "operator.restart_cooldown_seconds must be > 0"),
            (r#"{"operator":{"restart_cooldown_max_seconds":-5}}"#, "operator.restart_cooldown_max_seconds must be > 0"),
            (r#"{"operator":{"stale_run_age_seconds":0}}"#, "operator.stale_run_age_seconds must be > 0"),
            (r#"{"operator":{"tick_interval_seconds":0}}"#, "operator.tick_interval_seconds must be > 0"),
            (r#"{"operator":{"restart_cooldown_seconds":901}}"#, "operator.restart_cooldown_max_seconds must be >= operator.restart_cooldown_seconds"),
            (r#"{"operator":{"min_observation_gap_seconds":-1}}"#, "operator.min_observation_gap_seconds must be >= 0"),
            (r#"{"operator":{"healthy_reset_seconds":-1}}"#, "operator.healthy_reset_seconds must be >= 0"),
            (r#"{"operator":{"llm":{"command":"  "}}}"#, "operator.llm.command cannot be empty"),
            (r#"{"operator":{"llm":{"timeout_seconds":0}}}"#, "operator.llm.timeout_seconds must be > 0"),
            (r#"{"operator":{"llm":{"max_tokens":0}}}"#, "operator.llm.max_tokens must be > 0"),
            (r#"{"operator":{"llm":{"min_interval_seconds":-1}}}"#, "operator.llm.min_interval_seconds must be >= 0"),
            (r#"{"operator":{"llm":{"min_confidence":1.01}}}"#, "operator.llm.min_confidence must be between 0 and 1"),
            (r#"{"operator":{"llm":{"min_confidence":-0.1}}}"#, "operator.llm.min_confidence must be between 0 and 1"),
            (r#"{"operator":{"llm":{"args":["--json",""]}}}"#, "operator.llm.args items cannot be empty"),
            (r#"{"operator":{"notify":{"command":["notify-send",""]}}}"#, "operator.notify.command items cannot be empty"),
            (&long33, "status.icon_ok must be at most 32 characters without control characters"),
            (r#"{"status":{"icon_done":"\u0007"}}"#, "status.icon_done must be at most 32 characters without control characters"),
            (r#"{"status":{"color_blocked":"red\n"}}"#, "status.color_blocked must be at most 32 characters without control characters"),
            // Upper bounds (one year).
            (r#"{"health":{"idle_seconds":31536001,"activity_stalled_seconds":31536001}}"#, "health.idle_seconds must be <= 31536000"),
            (r#"{"health":{"progress_stalled_seconds":31536001}}"#, "health.progress_stalled_seconds must be <= 31536000"),
            (r#"{"operator":{"unhealthy_confirmations":31536001}}"#, "operator.unhealthy_confirmations must be <= 31536000"),
            (r#"{"operator":{"restart_budget":9223372036854775807}}"#, "operator.restart_budget must be <= 31536000"),
            (r#"{"operator":{"restart_cooldown_max_seconds":31536001}}"#, "operator.restart_cooldown_max_seconds must be <= 31536000"),
            (r#"{"operator":{"stale_run_age_seconds":31536001}}"#, "operator.stale_run_age_seconds must be <= 31536000"),
            (r#"{"operator":{"min_observation_gap_seconds":31536001}}"#, "operator.min_observation_gap_seconds must be <= 31536000"),
            (r#"{"operator":{"healthy_reset_seconds":31536001}}"#, "operator.healthy_reset_seconds must be <= 31536000"),
            (r#"{"operator":{"tick_interval_seconds":31536001}}"#, "operator.tick_interval_seconds must be <= 31536000"),
            (r#"{"operator":{"llm":{"timeout_seconds":31536001}}}"#, "operator.llm.timeout_seconds must be <= 31536000"),
            (r#"{"operator":{"llm":{"min_interval_seconds":31536001}}}"#, "operator.llm.min_interval_seconds must be <= 31536000"),
        ];
        assert!(cases.len() >= 35);
        for (input, message) in cases {
            let expected = PolicyError {
                path: "p.json".to_owned(),
                message: message.to_owned(),
            };
            assert_eq!(parse(input), Err(expected), "input: {input}");
        }
    }

    #[test]
    fn first_failing_rule_wins() {
        let text = r#"{"version":0,"tmux":{"session_pattern":""},"operator":{"restart_budget":0}}"#;
        assert_eq!(
            parse(text).map_err(|e| e.message),
            Err("version must be > 0".into())
        );
        let text = r#"{"health":{"idle_seconds":0},"operator":{"restart_budget":0}}"#;
        assert_eq!(
            parse(text).map_err(|e| e.message),
            Err("health.idle_seconds must be > 0".into())
        );
    }

    #[test]
    fn error_display_is_one_line() {
        let e = PolicyError {
            path: "~/.config/metawsm/policy.json".into(),
            message: "version must be > 0".into(),
        };
        assert_eq!(
            e.to_string(),
            "policy ~/.config/metawsm/policy.json: version must be > 0"
        );
        let e = PolicyError {
            path: "a\nb.json".into(),
            message: "x\ry".into(),
        };
        assert_eq!(e.to_string(), "policy a\\nb.json: x\\ry");
    }

    #[test]
    fn partial_files_keep_defaults() {
        let p = ok(r#"{"operator":{"restart_budget":5,"llm":{"mode":"off"}}}"#);
        let mut expected = Policy::default();
        expected.operator.restart_budget = 5;
        expected.operator.llm.mode = LlmMode::Off;
        assert_eq!(p, expected);
        assert_eq!(ok("{}"), Policy::default());
        assert_eq!(ok(r#"{"operator":{},"status":{}}"#), Policy::default());
        let p = ok(r#"{"status":{"icon_ok":"","color_ok":"colour82"}}"#);
        assert_eq!(p.status.icon_ok, "");
        assert_eq!(p.status.color_ok, "colour82");
        assert_eq!(p.status.icon_done, "✔");
    }

    #[test]
    fn ignored_blocks_accept_any_content() {
        let p = ok(r#"{"workspace":5,"docs":null,"execution":[],"close":"x",
            "agent_profiles":{"a":1},"agents":[1,2],"git_pr":{"mode":"??"},"forum":true}"#);
        assert_eq!(p, Policy::default());
    }

    #[test]
    fn enums_trim_and_lowercase() {
        let p = ok(r#"{"operator":{"llm":{"mode":" AUTO ","provider":"Command"}}}"#);
        assert_eq!(p.operator.llm.mode, LlmMode::Auto);
        assert_eq!(p.operator.llm.provider, LlmProvider::Command);
        assert_eq!(p.operator.llm.command, "codex");
        assert_eq!("Off".parse::<LlmMode>(), Ok(LlmMode::Off));
        assert_eq!(
            "x".parse::<LlmMode>(),
            Err("must be off|assist|auto".to_owned())
        );
        assert_eq!(" claude\n".parse::<LlmProvider>(), Ok(LlmProvider::Claude));
        for m in [LlmMode::Off, LlmMode::Assist, LlmMode::Auto] {
            assert_eq!(m.as_str().parse::<LlmMode>(), Ok(m));
        }
        for p in [
            LlmProvider::Codex,
            LlmProvider::Claude,
            LlmProvider::Command,
        ] {
            assert_eq!(p.as_str().parse::<LlmProvider>(), Ok(p));
        }
    }

    #[test]
    fn claude_provider_defaults_its_command() {
        let p = ok(r#"{"operator":{"llm":{"provider":"claude"}}}"#);
        assert_eq!(p.operator.llm.command, "claude");
        let p = ok(r#"{"operator":{"llm":{"provider":"claude","command":"/opt/bin/claude-x"}}}"#);
        assert_eq!(p.operator.llm.command, "/opt/bin/claude-x");
        let p = ok(r#"{"operator":{"llm":{"command":"codex","provider":"claude"}}}"#);
        assert_eq!(p.operator.llm.command, "codex");
    }

    #[test]
    fn notify_command_forms() {
        let cmd = |json: &str| {
            ok(&format!(
                r#"{{"operator":{{"notify":{{"command":{json}}}}}}}"#
            ))
        };
        // A single string is a shell command, as the original's --notify-cmd was.
        assert_eq!(
            cmd(r#""notify-send -u critical \"$METAWSM_MESSAGE\"""#)
                .operator
                .notify
                .command,
            vec!["sh", "-c", "notify-send -u critical \"$METAWSM_MESSAGE\""]
        );
        assert!(cmd(r#""""#).operator.notify.command.is_empty());
        assert!(cmd("[]").operator.notify.command.is_empty());
        assert_eq!(
            cmd(r#"["notify-send","-u","critical"]"#)
                .operator
                .notify
                .command,
            vec!["notify-send", "-u", "critical"]
        );
    }

    #[test]
    fn numbers_are_typed_strictly() {
        let p = ok(r#"{"operator":{"llm":{"min_confidence":1}}}"#);
        assert_eq!(p.operator.llm.min_confidence, 1.0);
        let p = ok(r#"{"operator":{"llm":{"min_confidence":0}}}"#);
        assert_eq!(p.operator.llm.min_confidence, 0.0);
        let p = ok(r#"{"operator":{"min_observation_gap_seconds":0,"healthy_reset_seconds":0}}"#);
        assert_eq!(p.operator.min_observation_gap_seconds, 0);
        let p = ok(r#"{"health":{"idle_seconds":31536000,"activity_stalled_seconds":31536000}}"#);
        assert_eq!(p.health.idle_seconds, MAX_SECONDS);
    }

    #[test]
    fn byte_order_mark_is_ignored() {
        assert_eq!(ok("\u{feff}{}"), Policy::default());
        assert_eq!(
            parse("\u{feff}").map_err(|e| e.message),
            Err("file is empty".into())
        );
    }

    fn customised() -> Policy {
        let mut p = Policy {
            version: 3,
            ..Policy::default()
        };
        p.tmux.session_pattern = "ai-{agent}".into();
        p.health.idle_seconds = 120;
        p.operator.restart_cooldown_max_seconds = 1800;
        p.operator.min_observation_gap_seconds = 0;
        p.operator.llm.mode = LlmMode::Auto;
        p.operator.llm.provider = LlmProvider::Command;
        p.operator.llm.command = "/usr/local/bin/advisor".into();
        p.operator.llm.args = vec!["--json".into(), "--model=x y".into()];
        p.operator.llm.model = "gpt-x".into();
        p.operator.llm.min_confidence = 0.75;
        p.operator.notify.command = vec!["notify-send".into(), "metawsm".into()];
        p.operator.notify.tmux_message = false;
        p.operator.notify.bell = true;
        p.status.icon_ok = "🤖".into();
        p.status.color_blocked = "#ff0000".into();
        p
    }

    #[test]
    fn round_trips_through_pretty_json() {
        for p in [Policy::default(), customised()] {
            assert_eq!(p.validate(), Ok(()));
            let json = p.to_pretty_json();
            assert!(json.ends_with("}\n") && !json.ends_with("\n\n"));
            assert_eq!(parse(&json), Ok(p));
        }
        // Claude's implicit command survives the trip because it is written out.
        let p = ok(r#"{"operator":{"llm":{"provider":"claude"}}}"#);
        assert_eq!(parse(&p.to_pretty_json()), Ok(p));
    }

    #[test]
    fn pretty_json_has_the_file_shape() {
        let json = Policy::default().to_pretty_json();
        assert!(json.starts_with("{\n  \"version\": 2,\n  \"tmux\": {\n    \"session_pattern\""));
        assert!(json.contains("\n      \"mode\": \"assist\",\n      \"provider\": \"codex\","));
        assert!(json.contains("\"min_confidence\": 0.5"));
        assert!(json.contains("\"command\": []"));
    }

    #[test]
    fn load_missing_file_gives_defaults() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("nope").join("policy.json");
        assert_eq!(Policy::load(&path), Ok(Policy::default()));
    }

    #[test]
    fn load_reads_and_validates() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("policy.json");
        std::fs::write(&path, r#"{"operator":{"restart_budget":7}}"#).expect("write");
        let p = Policy::load(&path).expect("load");
        assert_eq!(p.operator.restart_budget, 7);

        std::fs::write(&path, r#"{"operator":{"restart_budget":0}}"#).expect("write");
        let e = Policy::load(&path).expect_err("invalid");
        assert_eq!(e.message, "operator.restart_budget must be > 0");
        assert!(e.path.ends_with("policy.json"));

        std::fs::write(&path, b"{\"version\": \xff}").expect("write");
        let e = Policy::load(&path).expect_err("not utf-8");
        assert_eq!(e.message, "file is not valid UTF-8 (at byte 12)");

        let e = Policy::load(dir.path()).expect_err("directory");
        assert_eq!(e.message, "is a directory, not a regular file");
    }

    #[test]
    fn load_refuses_a_huge_file_without_reading_it() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("policy.json");
        let mut f = File::create(&path).expect("create");
        f.write_all(b"{").expect("write");
        // Sparse 10 MB: the size check must fire on metadata alone.
        f.set_len(10 << 20).expect("set_len");
        drop(f);
        let e = Policy::load(&path).expect_err("too large");
        assert_eq!(
            e.message,
            "file is too large (10485760 bytes, limit 1048576)"
        );

        // Exactly at the limit is still read (and then parsed).
        let f = File::create(&path).expect("create");
        f.set_len(MAX_POLICY_BYTES).expect("set_len");
        drop(f);
        let e = Policy::load(&path).expect_err("NULs are not JSON");
        assert!(
            e.message.starts_with("invalid JSON at line 1 column 1:"),
            "{}",
            e.message
        );
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn load_refuses_devices_and_fifos_without_reading() {
        // /dev/zero never ends and a FIFO with no writer blocks any blocking open.
        let e = Policy::load(Path::new("/dev/zero")).expect_err("endless");
        assert_eq!(e.message, "is a character device, not a regular file");
        let dir = tempfile::tempdir().expect("tempdir");
        let fifo = dir.path().join("policy.json");
        nix::unistd::mkfifo(&fifo, nix::sys::stat::Mode::from_bits_truncate(0o600))
            .expect("mkfifo");
        let e = Policy::load(&fifo).expect_err("fifo");
        assert_eq!(e.message, "is a FIFO, not a regular file");
    }

    #[test]
    fn parse_refuses_oversized_text() {
        let text = " ".repeat(MAX_POLICY_BYTES as usize + 1);
        assert_eq!(
            parse(&text).map_err(|e| e.message),
            Err("file is too large (1048577 bytes, limit 1048576)".into())
        );
    }

    #[test]
    fn home_is_shown_as_tilde() {
        let home = Some(OsStr::new("/home/ann"));
        let show = |p: &str, h: Option<&OsStr>| display_path(Path::new(p), h);
        assert_eq!(
            show("/home/ann/.config/metawsm/policy.json", home),
            "~/.config/metawsm/policy.json"
        );
        assert_eq!(show("/home/ann", home), "~");
        assert_eq!(show("/home/anna/p.json", home), "/home/anna/p.json");
        assert_eq!(show("/etc/p.json", home), "/etc/p.json");
        assert_eq!(show("rel/p.json", home), "rel/p.json");
        assert_eq!(
            show("/home/ann/p.json", Some(OsStr::new("/home/ann/"))),
            "~/p.json"
        );
        assert_eq!(show("/p.json", Some(OsStr::new("/"))), "/p.json");
        assert_eq!(show("/p.json", Some(OsStr::new(""))), "/p.json");
        assert_eq!(show("/home/ann/p.json", None), "/home/ann/p.json");
    }

    mod props {
        use super::super::*;
        use proptest::prelude::*;

        fn status_text() -> impl Strategy<Value = String> {
            "\\PC{0,32}"
        }

        proptest! {
            #[test]
            fn valid_policies_round_trip(
                idle in 1i64..=1000,
                extra in 0i64..=1000,
                budget in 1i64..=MAX_SECONDS,
                gap in 0i64..=MAX_SECONDS,
                mode in prop_oneof![Just(LlmMode::Off), Just(LlmMode::Assist), Just(LlmMode::Auto)],
                provider in prop_oneof![
                    Just(LlmProvider::Codex), Just(LlmProvider::Claude), Just(LlmProvider::Command)
                ],
                command in "[a-z/]{1,12}",
                args in proptest::collection::vec("\\PC{1,8}", 0..4),
                permille in 0u32..=1000,
                notify in proptest::collection::vec("\\PC{1,8}", 0..3),
                bell: bool,
                icon in status_text(),
                color in status_text(),
            ) {
                let mut p = Policy::default();
                p.health.idle_seconds = idle;
                p.health.activity_stalled_seconds = idle + extra;
                p.operator.restart_budget = budget;
                p.operator.min_observation_gap_seconds = gap;
                p.operator.llm.mode = mode;
                p.operator.llm.provider = provider;
                p.operator.llm.command = command;
                p.operator.llm.args = args;
                // Few-digit decimals: serde_json's default float parser is exact for these.
                p.operator.llm.min_confidence = f64::from(permille) / 1000.0;
                p.operator.notify.command = notify;
                p.operator.notify.bell = bell;
                p.status.icon_blocked = icon;
                p.status.color_guidance = color;
                prop_assert_eq!(p.validate(), Ok(()));
                prop_assert_eq!(Policy::parse(&p.to_pretty_json(), "p"), Ok(p));
            }

            #[test]
            fn arbitrary_text_never_panics(text in "\\PC{0,200}") {
                let _ = Policy::parse(&text, "p");
            }
        }
    }
}
