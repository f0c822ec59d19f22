//! The original Go metawsm's conventions, so a project can switch to us without losing
//! running work: how it wrapped agent commands (its panes never die; an exit leaves a
//! marker line and a shell), where its workspaces live (the workspace-manager config) and
//! which repository holds a run's docs. Pure except the config read and the pane capture.

use crate::screen::{self, Span, Target};
use crate::store::AgentRow;
use crate::tmux::{Observation, SessionState, TmuxClient};
use serde_json::Value;
use std::collections::HashMap;
use std::path::{Path, PathBuf};

/// The line the original's wrapper prints when the agent command ends.
pub const EXIT_MARKER: &str = "[metawsm] agent command exited with status ";

/// How much of a returned-to-shell pane is read for the marker (the original read 200).
const MARKER_LINES: usize = 200;

/// The status in the **last** exit marker of `text` (the original's rule), if any.
pub fn last_exit_status(text: &str) -> Option<i64> {
    text.rmatch_indices(EXIT_MARKER).find_map(|(i, _)| {
        let rest = &text[i + EXIT_MARKER.len()..];
        let digits: String = rest.chars().take_while(char::is_ascii_digit).collect();
        (!digits.is_empty() && digits.len() <= 9)
            .then(|| digits.parse().ok())
            .flatten()
    })
}

/// The original's `normalizeAgentCommand`: empty → `bash`; `codex exec` gains
/// `--skip-git-repo-check`.
pub fn normalize_command(cmd: &str) -> String {
    let cmd = cmd.trim();
    if cmd.is_empty() {
        return "bash".into();
    }
    if cmd.contains("codex exec") && !cmd.contains("--skip-git-repo-check") {
        return cmd.replacen("codex exec", "codex exec --skip-git-repo-check", 1);
    }
    cmd.to_string()
}

/// The argv the original ran an agent with: `bash -lc '<cmd>; …marker…; exec bash'`. A
/// restart of an imported agent runs exactly this again, so it behaves as it did.
pub fn wrapped_argv(cmd: &str) -> Vec<String> {
    let body = format!(
        "{}; status=$?; printf '\\n{EXIT_MARKER}%s at %s\\n' \"$status\" \"$(date -Iseconds)\"; exec bash",
        normalize_command(cmd)
    );
    vec!["bash".into(), "-lc".into(), body]
}

/// An agent started through the original's wrapper (imported, or adopted from its pane).
pub fn is_wrapped(argv: &[String]) -> bool {
    argv.iter().any(|a| a.contains(EXIT_MARKER.trim_end()))
}

/// Shells the wrapper's `exec bash` leaves in the pane once the agent has returned. (A
/// non-interactive `bash -lc` running the agent is reported as `bash` too, so this only
/// skips panes whose foreground program took the terminal for itself.)
fn at_shell(current_command: &str) -> bool {
    matches!(
        current_command.trim_start_matches('-'),
        "bash" | "sh" | "zsh" | "dash"
    )
}

/// The last exit marker of every wrapped agent that is back at its shell, by session
/// (one tmux spawn for all of them; none when there are none).
pub fn exit_markers<'a>(
    tmux: &TmuxClient,
    obs: &Observation,
    agents: impl Iterator<Item = &'a AgentRow>,
) -> HashMap<String, i64> {
    let mut out = HashMap::new();
    let mut targets = Vec::new();
    let mut which = Vec::new();
    for a in agents {
        if !is_wrapped(&a.argv) {
            continue;
        }
        let SessionState::Present(panes) = obs.panes(&a.session) else {
            continue;
        };
        let first = &panes[0];
        if first.dead || !at_shell(&first.current_command) {
            continue;
        }
        if let Some(t) = Target::pane(&first.pane_id) {
            targets.push(t);
            which.push(a.session.clone());
        }
    }
    if targets.is_empty() {
        return out;
    }
    let texts = screen::capture_many(tmux, &targets, Span::Last(MARKER_LINES));
    for (session, text) in which.into_iter().zip(texts) {
        if let Some(status) = text.as_deref().and_then(last_exit_status) {
            out.insert(session, status);
        }
    }
    out
}

/// `os.UserConfigDir()` as Go computes it.
pub fn user_config_dir() -> Option<PathBuf> {
    let home = std::env::var_os("HOME")
        .filter(|h| !h.is_empty())
        .map(PathBuf::from);
    if cfg!(target_os = "macos") {
        return home.map(|h| h.join("Library/Application Support"));
    }
    std::env::var_os("XDG_CONFIG_HOME")
        .map(PathBuf::from)
        .filter(|p| p.is_absolute())
        .or_else(|| home.map(|h| h.join(".config")))
}

/// A workspace's directory from `<config>/workspace-manager/workspaces/<name>.json`
/// (its `path`), as the original resolved it.
pub fn workspace_path(config_dir: &Path, name: &str) -> Result<PathBuf, String> {
    if name.is_empty() || name.contains('/') || name.contains('\0') || name.starts_with('.') {
        return Err(format!("unsafe workspace name {name:?}"));
    }
    let p = config_dir
        .join("workspace-manager/workspaces")
        .join(format!("{name}.json"));
    let text = read_small(&p).map_err(|e| format!("read workspace config {}: {e}", p.display()))?;
    let v: Value = serde_json::from_slice(&text)
        .map_err(|e| format!("parse workspace config {}: {e}", p.display()))?;
    let path = v
        .get("path")
        .and_then(Value::as_str)
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .ok_or_else(|| format!("workspace config {} has no path", p.display()))?;
    Ok(PathBuf::from(path))
}

/// A small outside file, through the one bounded non-blocking reader (fsio): a FIFO
/// must not hang us, at most 1 MiB.
fn read_small(p: &Path) -> std::io::Result<Vec<u8>> {
    match crate::fsio::read_bounded(p, 1 << 20) {
        Ok(Some(b)) => Ok(b),
        Ok(None) => Err(std::io::ErrorKind::NotFound.into()),
        Err(crate::fsio::ReadError::Io(_, e)) => Err(e),
        Err(crate::fsio::ReadError::NotRegular(_, kind)) => Err(std::io::Error::other(format!(
            "is {kind}, not a regular file"
        ))),
        Err(crate::fsio::ReadError::TooLarge(_, limit, _)) => {
            Err(std::io::Error::other(format!("larger than {limit} bytes")))
        }
    }
}

/// The run's doc-home repo from its spec: `doc_home_repo`, else `doc_repo`, else the
/// first of `repos` (the original's `effectiveDocHomeRepo`).
pub fn doc_home_repo(spec: &Value) -> Option<String> {
    let field = |k: &str| {
        spec.get(k)
            .and_then(Value::as_str)
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(str::to_string)
    };
    field("doc_home_repo")
        .or_else(|| field("doc_repo"))
        .or_else(|| {
            spec.get("repos")
                .and_then(Value::as_array)
                .and_then(|r| r.first())
                .and_then(Value::as_str)
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .map(str::to_string)
        })
}

/// The agent command the spec gives for `agent` (`agents[].command`), if any.
pub fn agent_command(spec: &Value, agent: &str) -> Option<String> {
    spec.get("agents")?
        .as_array()?
        .iter()
        .find(|a| a.get("name").and_then(Value::as_str) == Some(agent))?
        .get("command")?
        .as_str()
        .map(str::to_string)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn last_marker_wins() {
        let text = "x\n[metawsm] agent command exited with status 0 at 2026-02-07T07:00:00-08:00\n\
                    $ again\n[metawsm] agent command exited with status 17 at 2026-02-07T08:00:00-08:00\n$ ";
        assert_eq!(last_exit_status(text), Some(17));
        assert_eq!(last_exit_status("no marker"), None);
        assert_eq!(
            last_exit_status("[metawsm] agent command exited with status %s at %s"),
            None
        );
    }

    #[test]
    fn wrapper_and_normalisation_as_the_original() {
        assert_eq!(normalize_command("  "), "bash");
        assert_eq!(
            normalize_command("codex exec --full-auto 'x'"),
            "codex exec --skip-git-repo-check --full-auto 'x'"
        );
        let argv = wrapped_argv("codex exec 'x'");
        assert_eq!(argv[..2], ["bash", "-lc"]);
        assert!(argv[2].starts_with("codex exec --skip-git-repo-check 'x'; status=$?; printf"));
        assert!(argv[2].ends_with("; exec bash"));
        assert!(is_wrapped(&argv));
        assert!(!is_wrapped(&["codex".to_string()]));
    }

    #[test]
    fn doc_home_repo_order() {
        let spec = serde_json::json!({"doc_repo": "docs", "repos": ["a", "b"]});
        assert_eq!(doc_home_repo(&spec).as_deref(), Some("docs"));
        let spec = serde_json::json!({"doc_home_repo": "home", "doc_repo": "docs"});
        assert_eq!(doc_home_repo(&spec).as_deref(), Some("home"));
        let spec = serde_json::json!({"repos": ["a", "b"]});
        assert_eq!(doc_home_repo(&spec).as_deref(), Some("a"));
        assert_eq!(doc_home_repo(&serde_json::json!({})), None);
    }
}
