//! `metawsm-tick doctor`: one line per check; exit 1 if any check fails.

use crate::cli::{CliResult, Ctx};
use crate::cmd::tmux_setup;
use crate::store::{OpenMode, Store};
use crate::timeutil::{age, now_unix};
use crate::tmux::{self, Observation};

pub const HELP: &str = "\
Usage: metawsm-tick doctor

Checks: tmux found and its version (>= 3.3), server reachable, database path writable and
its schema version, policy valid; then, when a server is reachable: plugin loaded, hooks
registered, status segment present in status-right/left, age of the last tick, LLM
workers in flight. 'ok' and 'warn' lines pass; any 'FAIL' line makes the exit code 1.
";

struct Report {
    failed: bool,
}

impl Report {
    fn line(&mut self, level: &str, what: &str, detail: &str) {
        if level == "FAIL" {
            self.failed = true;
        }
        crate::say!("{level:<4} {what}: {detail}");
    }
}

fn version_ok(v: &str) -> bool {
    tmux::version_at_least(v, (3, 3))
}

pub fn main(parser: &mut lexopt::Parser, ctx: &Ctx) -> CliResult<i32> {
    if super::no_args(parser, HELP)? {
        return Ok(0);
    }
    let mut r = Report { failed: false };
    let mut server = false;
    match ctx.tmux.version() {
        Ok(v) if version_ok(&v) => r.line("ok", "tmux", &v),
        Ok(v) => r.line("FAIL", "tmux", &format!("{v} is older than 3.3")),
        Err(e) => r.line("FAIL", "tmux", &e.to_string()),
    }
    let target = ctx.tmux.socket().unwrap_or("default server").to_string();
    match ctx.tmux.observe() {
        Observation::Known(s) => {
            server = true;
            r.line(
                "ok",
                "server",
                &format!(
                    "{target} reachable ({} sessions, {} clients)",
                    s.sessions.len(),
                    s.clients.len()
                ),
            );
        }
        Observation::Unknown(e) => r.line("FAIL", "server", &format!("{target}: {e}")),
    }
    let store = match Store::open(&ctx.db, OpenMode::Create, false) {
        Ok(s) => {
            let v = s.schema_version().unwrap_or(-1);
            r.line(
                "ok",
                "database",
                &format!("{} (schema version {v})", ctx.db.display()),
            );
            Some(s)
        }
        Err(e) => {
            r.line("FAIL", "database", &e.to_string());
            None
        }
    };
    modes_check(&ctx.db, &mut r);
    let policy = ctx.policy();
    match &policy {
        Ok(_) if ctx.policy_path.exists() => {
            r.line("ok", "policy", &ctx.policy_path.display().to_string())
        }
        Ok(_) => r.line(
            "ok",
            "policy",
            &format!("{} absent: defaults", ctx.policy_path.display()),
        ),
        Err(e) => r.line("FAIL", "policy", &e.to_string()),
    }
    // Each active run is judged by its own policy: say which, and whether it loads.
    if let Some(s) = &store {
        for run in s.runs(false).unwrap_or_default() {
            let what = format!("policy {}", run.id);
            match crate::project_policy::for_run(ctx, &run) {
                Ok(_) => r.line("ok", &what, &crate::project_policy::describe(ctx, &run)),
                Err(e) => r.line("FAIL", &what, &e.to_string()),
            }
        }
    }
    // The status job and hooks carry these paths through tmux and sh.
    if let Err(e) = super::tmux_setup::status_job(ctx, &crate::cli::current_exe()) {
        r.line("FAIL", "paths", &e.to_string());
    }
    let loaded = if server {
        plugin_checks(ctx, &mut r)
    } else {
        r.line("warn", "plugin", "not checked (no tmux server)");
        false
    };
    if let Some(s) = &store {
        let now = now_unix();
        match s
            .meta_get("last_full_tick")
            .ok()
            .flatten()
            .and_then(|v| v.parse::<i64>().ok())
        {
            Some(t) => r.line("ok", "last tick", &format!("{} ago", age(now - t))),
            None => r.line("warn", "last tick", "never"),
        }
        if let Some(e) = s
            .meta_get("tmux_error")
            .ok()
            .flatten()
            .filter(|e| !e.is_empty())
        {
            r.line("warn", "last tick", &format!("tmux was unreachable: {e}"));
        }
        timer_check(s, policy.as_ref().ok(), now, loaded, &mut r);
        orphan_check(s, &mut r);
        notify_check(s, policy.as_ref().ok(), now, &mut r);
        if let Ok(p) = &policy {
            llm_command_check(ctx, s, p, server, &mut r);
        }
        match s.llm_calls_in_flight() {
            Ok(n) => r.line("ok", "llm workers", &format!("{n} in flight")),
            Err(e) => r.line("warn", "llm workers", &e.to_string()),
        }
    }
    Ok(if r.failed { 1 } else { 0 })
}

/// The notify command runs detached; its last recorded failure is shown here.
fn notify_check(s: &Store, policy: Option<&crate::policy::Policy>, now: i64, r: &mut Report) {
    let configured = policy.is_some_and(|p| !p.operator.notify.command.is_empty());
    match s.latest_event("notify_failed") {
        Ok(Some((at, run, msg))) => {
            let run = run.map(|id| format!(" (run {id})")).unwrap_or_default();
            r.line(
                "warn",
                "notify",
                &format!("last failure {} ago{run}: {msg}", age(now - at)),
            );
        }
        Ok(None) if configured => r.line("ok", "notify", "no failure recorded"),
        Ok(None) => r.line("ok", "notify", "no command configured"),
        Err(e) => r.line("warn", "notify", &e.to_string()),
    }
}

/// The state directory (0700) and the database, its WAL and index, lock and status cache
/// (0600): they hold questions, pane text and LLM answers, so nobody else may read them.
fn modes_check(db: &std::path::Path, r: &mut Report) {
    use std::os::unix::fs::PermissionsExt;
    let mut paths = vec![(db.parent().map(|p| p.to_path_buf()), 0o700, "chmod 700")];
    for p in [
        db.to_path_buf(),
        crate::store::wal_path(db),
        crate::store::side_path(db, "-shm"),
        crate::lock::lock_path(db),
        crate::status_cache::path(db),
    ] {
        paths.push((Some(p), 0o600, "chmod 600"));
    }
    let mut loose = Vec::new();
    for (path, want, fix) in paths {
        let Some(path) = path.filter(|p| !p.as_os_str().is_empty()) else {
            continue;
        };
        let Ok(m) = std::fs::metadata(&path) else {
            continue;
        };
        let mode = m.permissions().mode() & 0o777;
        if mode & 0o077 != 0 {
            let shown = crate::escape::human(&path.to_string_lossy()).into_owned();
            loose.push(format!(
                "{shown} is {mode:04o}, want {want:04o} (fix: {fix} '{shown}')"
            ));
        }
    }
    if loose.is_empty() {
        r.line("ok", "state modes", "private (directory 0700, files 0600)");
    } else {
        r.line("FAIL", "state modes", &loose.join("; "));
    }
}

/// Can ticks started by the tmux server (hooks, timer, status line) start the LLM CLI?
/// They run with the server's PATH, not this shell's.
fn llm_command_check(
    ctx: &Ctx,
    s: &Store,
    p: &crate::policy::Policy,
    server: bool,
    r: &mut Report,
) {
    if p.operator.llm.mode == crate::policy::LlmMode::Off {
        r.line("ok", "llm command", "not used (operator.llm.mode off)");
        return;
    }
    let server_path = if server {
        ctx.tmux
            .run(&[tmux::Cmd::new("show-environment").flags(&["-g", "PATH"])])
            .ok()
            .and_then(|o| o.trim().strip_prefix("PATH=").map(str::to_string))
    } else {
        None
    };
    match crate::llm_command::check(Some(s), &p.operator.llm.command, server_path.as_deref()) {
        Ok(m) => r.line("ok", "llm command", &crate::escape::human(&m)),
        Err(m) => r.line("FAIL", "llm command", &crate::escape::human(&m)),
    }
}

/// Active runs whose tmux server is certainly gone, or restarted since their agents ran:
/// nothing supervises them.
fn orphan_check(s: &Store, r: &mut Report) {
    let found: Vec<String> = crate::revive::orphaned_runs(s)
        .unwrap_or_default()
        .iter()
        .map(|(run, why)| format!("{} ({why})", run.id))
        .collect();
    if found.is_empty() {
        r.line("ok", "orphaned runs", "none");
    } else {
        r.line(
            "warn",
            "orphaned runs",
            &format!(
                "{}; revive them here (metawsm-tick run revive --all) or stop/forget them",
                found.join(", ")
            ),
        );
    }
}

/// The no-client timer (`run-shell -b -d N … timer`): armed while runs are active.
/// Always one line: a missing timer is the one thing nobody would otherwise notice.
fn timer_check(
    s: &Store,
    policy: Option<&crate::policy::Policy>,
    now: i64,
    plugin_loaded: bool,
    r: &mut Report,
) {
    let active = s.runs(false).map(|v| !v.is_empty()).unwrap_or(false);
    let setup = s.meta_get("plugin_setup").ok().flatten().as_deref() == Some("1");
    let next = s
        .meta_get("timer_next_due")
        .ok()
        .flatten()
        .and_then(|v| v.parse::<i64>().ok());
    let every = policy
        .map(|p| crate::schedule::interval(s, p))
        .unwrap_or(15);
    const FIX: &str = "fix: reload the plugin (tmux run-shell /path/to/metawsm/tmux/metawsm.tmux) or run 'metawsm-tick tick' once";
    match next {
        Some(d) if now <= d + every + 5 => r.line(
            "ok",
            "timer",
            &format!(
                "armed, next tick in {} (ticks with no client attached)",
                age((d - now).max(0))
            ),
        ),
        _ if !active => r.line("ok", "timer", "idle (no active runs)"),
        _ if !setup && !plugin_loaded => r.line(
            "warn",
            "timer",
            "not set up: the plugin is not loaded, so nothing ticks when no client is attached",
        ),
        Some(d) => r.line(
            "warn",
            "timer",
            &format!(
                "stale (was due {} ago); the next status or hook tick re-arms it; {FIX}",
                age(now - d)
            ),
        ),
        None => r.line(
            "FAIL",
            "timer",
            &format!(
                "missing: runs are active and nothing ticks them when no client is attached; {FIX}"
            ),
        ),
    }
}

/// Returns whether the plugin is loaded in the server.
fn plugin_checks(ctx: &Ctx, r: &mut Report) -> bool {
    let loaded = match ctx.tmux.run(&[tmux::Cmd::new("display-message")
        .flag("-p")
        .format("#{@metawsm-loaded}")])
    {
        Ok(o) => o.trim().to_string(),
        Err(e) => {
            r.line("warn", "plugin", &e.to_string());
            return false;
        }
    };
    if loaded.is_empty() {
        r.line(
            "warn",
            "plugin",
            "not loaded in this server (add tmux/metawsm.tmux to your tmux.conf)",
        );
        return false;
    }
    r.line("ok", "plugin", &format!("loaded (version {loaded})"));
    // Named look-ups: a bare `show-hooks -g` omits window/pane hooks such as pane-died.
    let cmds: Vec<tmux::Cmd> = super::hook::EVENTS
        .iter()
        .map(|ev| tmux::Cmd::new("show-hooks").flag("-g").flag(ev))
        .collect();
    let out = ctx.tmux.run(&cmds).unwrap_or_default();
    let missing: Vec<&str> = super::hook::EVENTS
        .iter()
        .copied()
        .filter(|ev| {
            let key = format!("{ev}[{}] ", tmux_setup::HOOK_INDEX);
            let ours = format!(" hook {ev}");
            !out.lines()
                .any(|l| l.starts_with(&key) && l.contains(&ours))
        })
        .collect();
    if missing.is_empty() {
        r.line(
            "ok",
            "hooks",
            &format!("registered at index {}", tmux_setup::HOOK_INDEX),
        );
    } else {
        r.line(
            "FAIL",
            "hooks",
            &format!(
                "missing at index {}: {} (reload the plugin: tmux run-shell …/metawsm.tmux)",
                tmux_setup::HOOK_INDEX,
                missing.join(", ")
            ),
        );
    }
    let job = ctx
        .tmux
        .run(&[tmux::Cmd::new("show-options").flags(&["-gv", "@metawsm-job"])])
        .unwrap_or_default();
    let job = job.trim();
    let bars = ctx
        .tmux
        .run(&[
            tmux::Cmd::new("show-options").flags(&["-gv", "status-right"]),
            tmux::Cmd::new("show-options").flags(&["-gv", "status-left"]),
        ])
        .unwrap_or_default();
    if !job.is_empty() && bars.contains(job) {
        r.line("ok", "status segment", "present");
    } else {
        r.line(
            "warn",
            "status segment",
            "not in status-right/left (a theme may have overwritten it; load metawsm after themes)",
        );
    }
    true
}

#[cfg(test)]
mod tests {
    #[test]
    fn versions() {
        assert!(super::version_ok("tmux 3.3a"));
        assert!(super::version_ok("tmux 3.10"));
        assert!(super::version_ok("tmux next-3.6"));
        assert!(super::version_ok("tmux master"));
        assert!(!super::version_ok("tmux 3.2a"));
        assert!(!super::version_ok("tmux 2.9"));
    }
}
