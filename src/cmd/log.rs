//! `metawsm-tick log`: the audit log.

use crate::cli::{self, CliError, CliResult, Ctx};
use crate::store::OpenMode;
use crate::timeutil::rfc3339;
use lexopt::prelude::*;
use serde_json::json;

pub const HELP: &str = "\
Usage: metawsm-tick log [--run ID] [--limit N] [--json]

Shows the audit log (oldest first): every transition, health change, decision, action
and its outcome, escalation, hook event and LLM proposal.

Options:
  --run ID     Only this run
  --limit N    The last N events [default: 50]
  --json       One JSON array
";

pub fn main(parser: &mut lexopt::Parser, ctx: &Ctx) -> CliResult<i32> {
    let (mut run, mut limit, mut as_json) = (None, 50i64, false);
    while let Some(arg) = parser.next()? {
        match arg {
            Long("run") => run = Some(cli::os_to_string(parser.value()?, "--run")?),
            Long("limit") => {
                let v = cli::os_to_string(parser.value()?, "--limit")?;
                limit = v.parse::<i64>().ok().filter(|n| *n > 0).ok_or_else(|| {
                    CliError::Usage(format!("log: --limit {v:?} must be a positive integer"))
                })?;
            }
            Long("json") => as_json = true,
            Short('h') | Long("help") => {
                cli::print_help(HELP);
                return Ok(0);
            }
            other => return Err(other.unexpected().into()),
        }
    }
    let st = ctx.open(OpenMode::ReadOnly, false)?;
    if let Some(id) = &run {
        // An unknown run is an error (exit 1), as for `run show`, not an empty log.
        st.run(id)?;
    }
    let events = st.events(run.as_deref(), limit)?;
    if as_json {
        let v: Vec<_> = events
            .iter()
            .map(|e| json!({"id": e.id, "at": rfc3339(e.at), "run_id": e.run_id, "agent": e.agent, "kind": e.kind,
                            "from": e.from_state, "to": e.to_state, "message": e.message, "source": e.source}))
            .collect();
        println!(
            "{}",
            serde_json::to_string_pretty(&v).unwrap_or_else(|_| "[]".into())
        );
        return Ok(0);
    }
    for e in &events {
        let arrow = match (e.from_state.is_empty(), e.to_state.is_empty()) {
            (true, true) => String::new(),
            (true, false) => format!(" {}", e.to_state),
            _ => format!(" {} -> {}", e.from_state, e.to_state),
        };
        crate::say!(
            "{} {} {}{}{} [{}] {}",
            rfc3339(e.at),
            e.run_id.as_deref().unwrap_or("-"),
            e.kind,
            e.agent
                .as_deref()
                .map(|a| format!(" agent={}", crate::names::or_placeholder(a)))
                .unwrap_or_default(),
            arrow,
            e.source,
            e.message
        );
    }
    Ok(0)
}
