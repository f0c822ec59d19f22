//! `metawsm-tick run list`: runs at a glance.

use crate::cli::{self, CliResult, Ctx};
use crate::store::{OpenMode, StoreError};
use crate::timeutil::{age, now_unix};
use lexopt::prelude::*;
use serde_json::json;

pub const HELP: &str = "\
Usage: metawsm-tick run list [--all] [--json]

Lists active runs (or all with --all): id, status, tickets, agents with their health, age.
A run whose tmux server is certainly gone (socket absent or refusing connections) shows
as orphaned(<status>): nothing supervises it; 'run stop' or 'run forget' it.
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
    let st = match crate::store::Store::open(&ctx.db, OpenMode::ReadOnly, false) {
        Ok(s) => s,
        // No database yet: no run was ever started.
        Err(crate::store::StoreError::NotFound(_)) => {
            println!("{}", if as_json { "[]" } else { "no runs" });
            return Ok(0);
        }
        Err(e) => return Err(e.into()),
    };
    let runs = st.runs(all)?;
    let all_agents = st.agents(None)?;
    // By run, so each row finds its agents without a pass over all of them.
    let mut agents: std::collections::HashMap<&str, Vec<&crate::store::AgentRow>> =
        std::collections::HashMap::new();
    for a in &all_agents {
        agents.entry(a.run_id.as_str()).or_default().push(a);
    }
    let agents_of = |run: &str| agents.get(run).map(Vec::as_slice).unwrap_or(&[]);
    let now = now_unix();
    // Only active runs can be orphaned: a finished run has nothing left on any server.
    let mut probe = crate::orphan::Probe::default();
    let orphaned: Vec<Option<String>> = runs
        .iter()
        .map(|r| {
            if r.status.is_active() {
                probe.gone(r.tmux_socket.as_deref())
            } else {
                None
            }
        })
        .collect();
    if as_json {
        let v: Vec<_> = runs
            .iter()
            .zip(&orphaned)
            .map(|(r, o)| {
                json!({
                    "id": r.id, "status": r.status.as_str(), "orphaned": o, "tickets": r.tickets,
                    "workspace": r.workspace, "created_at": r.created_at, "updated_at": r.updated_at,
                    "agents": agents_of(&r.id).iter().map(|a| json!({
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
        crate::say!("no {}runs", if all { "" } else { "active " });
        return Ok(0);
    }
    crate::say!(
        "{:<28} {:<18} {:<16} {:<6} AGENTS",
        "RUN",
        "STATUS",
        "TICKETS",
        "AGE"
    );
    for (r, o) in runs.iter().zip(&orphaned) {
        let status = match o {
            Some(_) => format!("orphaned({})", r.status),
            None => r.status.to_string(),
        };
        let ags: Vec<String> = agents_of(&r.id)
            .iter()
            .map(|a| format!("{}={}", a.name, a.health))
            .collect();
        crate::say!(
            "{:<28} {:<18} {:<16} {:<6} {}",
            r.id,
            status,
            r.tickets.join(","),
            age(now - r.created_at),
            ags.join(" ")
        );
    }
    Ok(0)
}
