//! Which program `operator.llm.command` names, resolved once where the user configures
//! it. Ticks run with whatever PATH their process has: the tmux server's for hooks, the
//! timer and the status line, the shell's for ticks by hand. A `codex` under
//! `~/.local/bin` or an npm prefix is found by one and "failed to start" in the other.
//! So `run start` and `tmux-setup` record the absolute path they see (meta
//! `llm_command`), and workers run that path while the policy names the same command.

use crate::policy::{LlmMode, Policy};
use crate::store::Store;
use std::ffi::OsStr;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

const META_KEY: &str = "llm_command";

fn executable(p: &Path) -> bool {
    std::fs::metadata(p).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}

/// `command` as `execvp` would find it on `path`: a name with a `/` is taken as it is.
pub fn find_on(command: &str, path: Option<&OsStr>) -> Option<PathBuf> {
    if command.is_empty() {
        return None;
    }
    if command.contains('/') {
        let p = crate::cli::absolute(Path::new(command));
        return executable(&p).then_some(p);
    }
    std::env::split_paths(path?)
        .filter(|d| d.is_absolute())
        .map(|d| d.join(command))
        .find(|p| executable(p))
}

/// Records the absolute path this process finds for the policy's LLM command (when the
/// LLM is on and the command is a bare name). Best effort: a miss records nothing.
pub fn record(st: &mut Store, policy: &Policy) {
    let l = &policy.operator.llm;
    if l.mode == LlmMode::Off || l.command.contains('/') {
        return;
    }
    let Some(found) = find_on(&l.command, std::env::var_os("PATH").as_deref()) else {
        return;
    };
    let value = serde_json::json!({"command": l.command, "path": found.to_string_lossy()});
    if let Ok(tx) = st.write() {
        let _ = tx.meta_set(META_KEY, &value.to_string());
        let _ = tx.commit();
    }
}

/// The recorded absolute path for `command`, if one was recorded and still runs.
pub fn recorded(st: &Store, command: &str) -> Option<PathBuf> {
    let v: serde_json::Value = serde_json::from_str(&st.meta_get(META_KEY).ok()??).ok()?;
    if v.get("command")?.as_str()? != command {
        return None;
    }
    let p = PathBuf::from(v.get("path")?.as_str()?);
    executable(&p).then_some(p)
}

/// What a worker runs: the recorded path, else the command as configured (PATH lookup).
pub fn program(st: &Store, command: &str) -> String {
    if command.contains('/') {
        return command.to_string();
    }
    recorded(st, command)
        .map(|p| p.to_string_lossy().into_owned())
        .unwrap_or_else(|| command.to_string())
}

/// Where ticks started by the tmux server would find the command: the recorded path,
/// else the server's PATH. Err explains why they cannot start it.
pub fn check(
    st: Option<&Store>,
    command: &str,
    server_path: Option<&str>,
) -> Result<String, String> {
    if command.contains('/') {
        return find_on(command, None)
            .map(|p| format!("{} (absolute)", p.display()))
            .ok_or_else(|| format!("{command} is not an executable file"));
    }
    if let Some(p) = st.and_then(|s| recorded(s, command)) {
        return Ok(format!("{command} -> {} (recorded)", p.display()));
    }
    match server_path {
        Some(path) => find_on(command, Some(OsStr::new(path)))
            .map(|p| format!("{command} -> {} (on the tmux server's PATH)", p.display()))
            .ok_or_else(|| {
                format!(
                    "{command} is not on the tmux server's PATH ({path}), so ticks from hooks and the timer cannot start it; fix: run 'metawsm-tick run start' or reload the plugin from a shell that finds it (the path is recorded), or set operator.llm.command to an absolute path"
                )
            }),
        None => find_on(command, std::env::var_os("PATH").as_deref())
            .map(|p| format!("{command} -> {} (on this shell's PATH; no tmux server to ask)", p.display()))
            .ok_or_else(|| {
                format!("{command} is not on PATH and no path was recorded; set operator.llm.command to an absolute path")
            }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_executables_only_on_absolute_path_entries() {
        let dir = tempfile::tempdir().expect("tmp");
        let exe = dir.path().join("tool");
        std::fs::write(&exe, b"#!/bin/sh\n").expect("w");
        let path = format!("relative:{}", dir.path().display());
        assert_eq!(find_on("tool", None), None);
        assert_eq!(
            find_on("tool", Some(OsStr::new(&path))),
            None,
            "not executable"
        );
        std::fs::set_permissions(&exe, std::fs::Permissions::from_mode(0o755)).expect("chmod");
        assert_eq!(find_on("tool", Some(OsStr::new(&path))), Some(exe.clone()));
        assert_eq!(find_on(&exe.to_string_lossy(), None), Some(exe));
        assert_eq!(find_on("", Some(OsStr::new(&path))), None);
    }
}
