//! `metawsm-tick tick`: observe, decide and act for every active run, under the lock.

use crate::cli::{self, CliError, CliResult, Ctx};
use crate::lock::{StateLock, Wait};
use crate::policy::LlmMode;
use crate::store::OpenMode;
use crate::tick::{self, TickOptions, TickReport};
use crate::timeutil::poll_until;
use lexopt::prelude::*;
use std::time::Duration;

pub const HELP: &str = "\
Usage: metawsm-tick tick [--run ID|--ticket T] [--json] [--dry-run] [--llm-mode off|assist|auto] [--wait-llm]

Observe every active run with one tmux call, decide with the deterministic rules, act
(restart/stop), write escalations, notify, and start LLM proposals in the background.
Prints one line per run: <UTC time> <run> <intent> <reason> decision_source=rule|llm.

Options:
  --run ID          Only this run
  --ticket T        Only the ticket's one active run
  --json            Print the decisions as JSON
  --dry-run         Observe only: no tmux change, no file written, no notify, no state saved
  --llm-mode MODE   Override operator.llm.mode for this tick
  --wait-llm        Wait for LLM workers started by this tick, then tick again (humans, tests)
  -h, --help        Show this help
";

pub fn main(parser: &mut lexopt::Parser, ctx: &Ctx) -> CliResult<i32> {
    let mut opts = TickOptions {
        run: None,
        dry_run: false,
        llm_mode: None,
        source: crate::tick::TickSource::Tick,
    };
    let (mut json, mut wait_llm) = (false, false);
    let mut ticket = None;
    while let Some(arg) = parser.next()? {
        match arg {
            Long("run") => opts.run = Some(cli::os_to_string(parser.value()?, "--run")?),
            Long("ticket") => ticket = Some(cli::os_to_string(parser.value()?, "--ticket")?),
            Long("json") => json = true,
            Long("dry-run") => opts.dry_run = true,
            Long("wait-llm") => wait_llm = true,
            Long("llm-mode") => {
                let v = cli::os_to_string(parser.value()?, "--llm-mode")?;
                opts.llm_mode = Some(v.parse::<LlmMode>().map_err(|_| {
                    CliError::Usage(format!(
                        "invalid --llm-mode {v:?} (expected off|assist|auto)"
                    ))
                })?);
            }
            Short('h') | Long("help") => {
                cli::print_help(HELP);
                return Ok(0);
            }
            other => return Err(other.unexpected().into()),
        }
    }
    if ticket.is_some() {
        opts.run = Some(super::select::run_id(ctx, "tick", opts.run.take(), ticket)?);
    }
    let mut policy = None;
    let mut report = run_locked(ctx, &mut policy, &opts)?;
    if let Some(policy) = policy.as_ref().filter(|_| wait_llm && !opts.dry_run) {
        let limit = Duration::from_secs(policy.operator.llm.timeout_seconds.max(1) as u64 + 20);
        wait_for_workers(ctx, limit)?;
        report = run_locked(ctx, &mut Some(policy.clone()), &opts)?;
    }
    print_report(&report, json);
    // The process ends here: no need to free the report run by run.
    std::mem::forget(report);
    Ok(0)
}

/// Loads the policy into `policy` unless it holds one already: once the database
/// exists, after tmux has been asked, so that the load (0.1-0.25 ms) runs while tmux
/// answers; before that, first, so that a bad policy creates nothing.
pub fn run_locked(
    ctx: &Ctx,
    policy: &mut Option<crate::policy::Policy>,
    opts: &TickOptions,
) -> CliResult<TickReport> {
    if policy.is_none() && !ctx.db.exists() {
        *policy = Some(ctx.policy()?);
    }
    if opts.dry_run && !ctx.db.exists() {
        // Observe-only never creates state.
        return Ok(TickReport {
            at: crate::timeutil::rfc3339(crate::timeutil::now_unix()),
            dry_run: true,
            tmux_error: None,
            runs: Vec::new(),
            changed: false,
        });
    }
    crate::store::ensure_state_dir(&ctx.db)?;
    let _lock = StateLock::acquire(&ctx.db, Wait::Forever)
        .map_err(|e| CliError::Failure(format!("lock {}: {e}", ctx.db.display())))?;
    // tmux answers while SQLite opens and the rows are read.
    let pre = tick::prefetch(ctx, opts);
    let policy = match policy {
        Some(p) => &*p,
        None => policy.insert(ctx.policy()?),
    };
    // A dry run cannot write: its connection is read-only.
    let mode = if opts.dry_run {
        OpenMode::ReadOnly
    } else {
        OpenMode::Create
    };
    let mut store = ctx.open(mode, true)?;
    // `--run ID` looks at that run's own tmux server.
    let ctx = match &opts.run {
        Some(id) => ctx.for_run(&store.run(id)?),
        None => ctx.clone(),
    };
    let report = tick::run_prefetched(&mut store, &ctx, policy, opts, pre);
    // The process ends soon after (`--wait-llm` opens another).
    store.leave();
    report
}

fn wait_for_workers(ctx: &Ctx, limit: Duration) -> CliResult {
    let store = ctx.open(OpenMode::Create, false)?;
    // A worker that died leaves its row in flight until a tick reaps it: stop waiting then.
    let live = |s: &crate::store::Store| -> CliResult<bool> {
        Ok(s.llm_calls()?.values().any(|c| {
            c.state == crate::model::rows::CallState::InFlight
                && c.pid
                    .is_none_or(|pid| crate::worker::worker_alive(pid, &c.run_id))
        }))
    };
    let done = poll_until(limit, Duration::from_millis(50), || match live(&store) {
        Ok(true) => None,
        Ok(false) => Some(Ok(())),
        Err(e) => Some(Err(e)),
    });
    done.unwrap_or_else(|| {
        Err(CliError::Failure(
            "LLM workers still running after the timeout".into(),
        ))
    })
}

pub fn print_report(r: &TickReport, json: bool) {
    use crate::escape::human;
    use std::fmt::Write as _;
    if json {
        println!(
            "{}",
            serde_json::to_string_pretty(r).unwrap_or_else(|_| "{}".into())
        );
        return;
    }
    let mut out = String::new();
    if let Some(e) = &r.tmux_error {
        let _ = writeln!(out, "{}", human(&format!("{} tmux unknown: {e}", r.at)));
    }
    if r.runs.is_empty() {
        let _ = writeln!(out, "{} no active runs", r.at);
    }
    // One line buffer for every run, built without the formatting machinery.
    let mut line = String::new();
    for run in &r.runs {
        line.clear();
        for (i, part) in [r.at.as_str(), &run.run_id, run.intent.as_str(), &run.reason]
            .into_iter()
            .enumerate()
        {
            if i > 0 {
                line.push(' ');
            }
            line.push_str(part);
        }
        line.push_str(" decision_source=");
        line.push_str(run.decision_source.as_str());
        if let Some(n) = &run.llm {
            line.push_str(&format!(" {n}"));
        }
        if run.execute || run.outcome.is_some() {
            line.push_str(&format!(
                " action={}",
                run.outcome.as_ref().map_or(
                    if r.dry_run { "dry-run" } else { "pending" }.to_string(),
                    ToString::to_string
                )
            ));
        } else if run.awaiting_approval {
            line.push_str(" action=awaiting-approval (assist mode)");
        } else if run.intent.is_action() {
            // assist mode, or an LLM veto: say so rather than look like a silent failure.
            line.push_str(" action=not-executed");
        }
        if let Some(e) = &run.policy_error {
            line.push_str(&format!(
                " policy=unusable ({e}; judged by the global policy)"
            ));
        }
        if let Some(p) = &run.preview {
            line.push_str(&format!("; {p}"));
        }
        if let Some(why) = &run.escalation_unwritten {
            line.push_str(&format!(" escalation=not-written ({why})"));
        }
        let _ = writeln!(out, "{}", human(&line));
    }
    // One write for the whole report: a line-buffered stdout costs a syscall per run.
    print!("{out}");
}
