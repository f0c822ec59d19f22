//! `metawsm-tick import [--from PATH] [--dry-run]`: take over the original metawsm's
//! active runs. The original database is only ever read.

use crate::cli::{self, CliError, CliResult, Ctx};
use crate::import;
use crate::store::{self, OpenMode};
use crate::timeutil::{now_unix, rfc3339};
use crate::tmux::{Observation, SessionState};
use lexopt::prelude::*;
use std::path::PathBuf;

pub const HELP: &str = "\
Usage: metawsm-tick import [--from PATH] [--dry-run]

Takes over the active runs of the original metawsm: tickets, workspace (from the
workspace-manager config), doc-home repo, agents with their tmux sessions (adopted as they
are, never restarted), restart attempts and cooldown, and pending guidance questions. The
original database is opened read-only and never modified. Runs already here are reported
and skipped, so importing twice changes nothing.

Options:
  --from PATH   The original database [default: ./.metawsm/metawsm.db]
  --dry-run     Print what would be imported; write nothing
  -h, --help    Show this help
";

pub fn main(parser: &mut lexopt::Parser, ctx: &Ctx) -> CliResult<i32> {
    let mut from = None;
    let mut dry_run = false;
    while let Some(arg) = parser.next()? {
        match arg {
            Long("from") => from = Some(PathBuf::from(parser.value()?)),
            Long("dry-run") => dry_run = true,
            Short('h') | Long("help") => {
                cli::print_help(HELP);
                return Ok(0);
            }
            other => return Err(other.unexpected().into()),
        }
    }
    let from = cli::absolute(&from.unwrap_or_else(|| PathBuf::from(".metawsm/metawsm.db")));
    if cli::absolute(&ctx.db) == from {
        return Err(CliError::Usage(format!(
            "import: --from {} is our own database (--db)",
            from.display()
        )));
    }
    let orig = import::open_original(&from).map_err(CliError::Failure)?;
    let now = now_unix();
    let obs = ctx.tmux.observe();
    let socket = match &obs {
        Observation::Known(s) => s.socket.clone(),
        Observation::Unknown(_) => None,
    };
    let config = crate::original::user_config_dir();

    let _lock = if dry_run {
        None
    } else {
        store::ensure_state_dir(&ctx.db)?;
        Some(crate::cmd::lock(ctx)?)
    };
    // A dry run never creates our database either.
    let st = if dry_run && !ctx.db.exists() {
        None
    } else {
        Some(ctx.open(OpenMode::Create, !dry_run)?)
    };
    let exists = |id: &str| st.as_ref().is_some_and(|s| s.run(id).is_ok());
    let taken = |sess: &str| {
        st.as_ref()
            .is_some_and(|s| s.session_taken(sess).unwrap_or(false))
    };
    // The original's project: the directory holding its `.metawsm/`.
    let project = from
        .parent()
        .filter(|d| d.file_name().is_some_and(|n| n == ".metawsm"))
        .and_then(|d| d.parent());
    let plan = import::plan(
        &orig,
        project,
        config.as_deref(),
        &exists,
        &taken,
        socket.as_deref(),
        now,
    )
    .map_err(CliError::Failure)?;
    drop(orig);

    let verb = if dry_run { "would import" } else { "imported" };
    crate::say!("import from {} (read-only)", from.display());
    let from_s = from.to_string_lossy().into_owned();
    let mut st = st;
    let mut failed = plan.failed.len();
    let mut done = 0;
    for imp in &plan.runs {
        if !dry_run {
            let Some(s) = st.as_mut() else { continue };
            let saved = (|| -> Result<(), store::StoreError> {
                let tx = s.write()?;
                import::register(&tx, imp, "cli", &from_s, now)?;
                tx.commit()?;
                Ok(())
            })();
            if let Err(e) = saved {
                crate::say!("run {}: failed: {e}", imp.run.id);
                failed += 1;
                continue;
            }
        }
        done += 1;
        let agents: Vec<String> = imp
            .agents
            .iter()
            .map(|a| {
                let here = match obs.panes(&a.session) {
                    SessionState::Present(_) => "present",
                    SessionState::Absent => "absent: the next tick judges it dead",
                    SessionState::Unknown => "tmux unreachable",
                };
                format!("{} (session {}, {here})", a.name, a.session)
            })
            .collect();
        crate::say!(
            "run {}: {verb} ({}; tickets {}; workspace {}{}; agents {}; restart attempts {}{}; {} pending question(s))",
            imp.run.id,
            imp.run.status,
            imp.run.tickets.join(", "),
            imp.run.workspace,
            imp.run
                .doc_home_repo
                .as_deref()
                .map(|r| format!("; doc-home repo {r}"))
                .unwrap_or_default(),
            agents.join(", "),
            imp.state.restart_attempts,
            imp.state
                .cooldown_until
                .map(|c| format!(", cooldown until {}", rfc3339(c)))
                .unwrap_or_default(),
            imp.questions.len()
        );
        for n in &imp.notes {
            crate::say!("  note: {n}");
        }
    }
    for (id, why) in &plan.skipped {
        crate::say!("run {id}: skipped: {why}");
    }
    for (id, why) in &plan.failed {
        crate::say!("run {id}: not imported: {why}");
    }
    crate::say!(
        "{} {done}, skipped {}, failed {failed}{}",
        if dry_run { "would import" } else { "imported" },
        plan.skipped.len(),
        if dry_run {
            " (dry run: nothing written)"
        } else {
            ""
        }
    );
    if !dry_run && done > 0 {
        if let Some(s) = st.as_mut() {
            let _ = crate::status_cache::refresh(s);
            if let Ok(policy) = ctx.policy() {
                crate::schedule::wake(s, ctx, &policy, now);
            }
        }
    }
    Ok(if failed > 0 { 1 } else { 0 })
}
