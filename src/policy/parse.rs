//! Policy text to `Policy`: every key of `KEYS` read from its block, unknown keys refused
//! (the typo guard), then the rules checked.

use std::path::Path;

use serde_json::{Map, Value};

use super::keys::{Field, Key, Rule, KEYS};
use super::{too_large, LlmProvider, OneLine, Policy, MAX_KEY_CHARS, MAX_POLICY_BYTES};

/// Top-level blocks of the original Go tool's policy that we accept (so its files load
/// unchanged) but never read.
const IGNORED_TOP: [&str; 8] = [
    "workspace",
    "docs",
    "execution",
    "close",
    "agent_profiles",
    "agents",
    "git_pr",
    "forum",
];

pub(super) fn parse_text(text: &str) -> Result<Policy, String> {
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
    refuse_unknown(root, "")?;
    // Each block is checked for unknown keys once, not once per key under it.
    let mut checked = Vec::new();
    for key in KEYS {
        let (block, name) = key.path.rsplit_once('.').unwrap_or(("", key.path));
        if let Some(value) = open(root, block, &mut checked)?.and_then(|b| b.get(name)) {
            read(key, value, &mut p)?;
        }
    }

    if let Some(l) = open(root, "operator.llm", &mut checked)? {
        let llm = &mut p.operator.llm;
        // Claude's CLI is not called "codex": follow the provider unless told otherwise.
        if llm.provider == LlmProvider::Claude && !l.contains_key("command") {
            llm.command = "claude".to_owned();
        }
        // Without a provider, the command says how to call it: a wrapper that is
        // neither codex nor claude is called as the original metawsm called it.
        if !l.contains_key("provider") {
            llm.provider = provider_for_command(&llm.command);
        }
    }

    p.validate()?;
    Ok(p)
}

/// The object at dotted `path` (each level checked for unknown keys, unless it is in
/// `checked` already), or `None` when a level is absent.
fn open<'a>(
    root: &'a Map<String, Value>,
    path: &str,
    checked: &mut Vec<String>,
) -> Result<Option<&'a Map<String, Value>>, String> {
    let mut map = root;
    let mut at = String::new();
    for name in path.split('.').filter(|n| !n.is_empty()) {
        at = if at.is_empty() {
            name.to_owned()
        } else {
            format!("{at}.{name}")
        };
        match map.get(name) {
            None => return Ok(None),
            Some(Value::Object(inner)) => {
                if !checked.contains(&at) {
                    refuse_unknown(inner, &at)?;
                    checked.push(at.clone());
                }
                map = inner;
            }
            Some(_) => return Err(format!("{at} must be an object")),
        }
    }
    Ok(Some(map))
}

/// Refuses keys (case-sensitive) that are neither a key nor a block under `block`.
fn refuse_unknown(map: &Map<String, Value>, block: &str) -> Result<(), String> {
    let prefix = if block.is_empty() {
        String::new()
    } else {
        format!("{block}.")
    };
    let known = |name: &str| {
        (block.is_empty() && IGNORED_TOP.contains(&name))
            || KEYS.iter().any(|k| {
                k.path
                    .strip_prefix(&prefix)
                    .and_then(|rest| rest.split('.').next())
                    == Some(name)
            })
    };
    match map.keys().find(|k| !known(k)) {
        Some(name) => Err(format!("{prefix}{}: unknown key", quote_key(name))),
        None => Ok(()),
    }
}

/// Overwrites the key's field with `value`; a wrong type (`null` included) is an error.
fn read(key: &Key, value: &Value, p: &mut Policy) -> Result<(), String> {
    let path = key.path;
    let wrong = |expected: &str| format!("{path} must be {expected}");
    match &key.field {
        Field::Int(a, _) => *(a.set)(p) = value.as_i64().ok_or_else(|| wrong("an integer"))?,
        Field::Number(a, _) => *(a.set)(p) = value.as_f64().ok_or_else(|| wrong("a number"))?,
        Field::Bool(a, _) => *(a.set)(p) = value.as_bool().ok_or_else(|| wrong("a boolean"))?,
        Field::Str(a, _) => {
            *(a.set)(p) = value.as_str().ok_or_else(|| wrong("a string"))?.to_owned();
        }
        Field::Strings(a) => {
            let lines = strings(value).ok_or_else(|| wrong("an array of strings"))?;
            if key.rules.contains(&Rule::ScreenPatterns) {
                for (i, line) in lines.iter().enumerate() {
                    crate::screen::parse_pattern(line).map_err(|e| format!("{path}[{i}]: {e}"))?;
                }
            }
            *(a.set)(p) = lines;
        }
        Field::Command(a) => {
            *(a.set)(p) = match value {
                Value::String(s) if s.trim().is_empty() => Vec::new(),
                Value::String(s) => vec!["sh".to_owned(), "-c".to_owned(), s.clone()],
                _ => strings(value).ok_or_else(|| wrong("a string or an array of strings"))?,
            };
        }
        Field::Choice { set, .. } => {
            let text = value.as_str().ok_or_else(|| wrong("a string"))?;
            set(p, text).map_err(|e| format!("{path} {e}"))?;
        }
    }
    Ok(())
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
