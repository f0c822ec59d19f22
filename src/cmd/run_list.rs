//! `metawsm-tick run list`: runs at a glance.

use crate::cli::{self, CliResult, Ctx};
use crate::store::{OpenMode, StoreError};
use crate::timeutil::{age, now_unix};
use lexopt::prelude::*;
use serde_json::json;

const HELP: &str = "\
Usage: metawsm-tick run list [--all] [--json]

Lists active runs (or all with --all): id, status, tickets, agents with their health, age.
";

pub fn main(parser: &mut lexopt::Parser, ctx: &Ctx) -> CliResult<i32> {
    let (mut all, mut as_json) = (false, false);
    while let Some(arg) = parser.next()? {
        match arg {
            Long("all") => all = true,
            Long("json") => as_json = true,
            Short('h') | Long("help") => {
                cli::print_help(HELP);
                return Ok(0);
            }
            other => return Err(other.unexpected().into()),
        }
    }
    let st = match ctx.open(OpenMode::Existing, false) {
        Ok(s) => s,
        Err(crate::cli::CliError::Failure(m)) if m.contains("does not exist") => {
            println!("{}", if as_json { "[]" } else { "no runs" });
            return Ok(0);
        }
        Err(e) => return Err(e),
    };
    let runs = st.runs(all)?;
    let agents = st.agents(None)?;
    let now = now_unix();
    if as_json {
        let v: Vec<_> = runs
            .iter()
            .map(|r| {
                json!({
                    "id": r.id, "status": r.status.as_str(), "tickets": r.tickets,
                    "workspace": r.workspace, "created_at": r.created_at, "updated_at": r.updated_at,
                    "agents": agents.iter().filter(|a| a.run_id == r.id).map(|a| json!({
                        "name": a.name, "session": a.session, "status": a.status, "health": a.health.as_str(),
                    })).collect::<Vec<_>>(),
                })
            })
            .collect();
        println!(
            "{}",
            serde_json::to_string_pretty(&v).map_err(|e| StoreError::Io(e.to_string()))?
        );
        return Ok(0);
    }
    if runs.is_empty() {
        println!("no {}runs", if all { "" } else { "active " });
        return Ok(0);
    }
    println!(
        "{:<28} {:<18} {:<16} {:<6} AGENTS",
        "RUN", "STATUS", "TICKETS", "AGE"
    );
    for r in &runs {
        let ags: Vec<String> = agents
            .iter()
            .filter(|a| a.run_id == r.id)
            .map(|a| format!("{}={}", a.name, a.health))
            .collect();
        println!(
            "{:<28} {:<18} {:<16} {:<6} {}",
            r.id,
            r.status.as_str(),
            r.tickets.join(","),
            age(now - r.created_at),
            ags.join(" ")
        );
    }
    Ok(0)
}
