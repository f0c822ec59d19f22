//! `metawsm-tick run show`: one run in full.

use crate::cli::{self, CliResult, Ctx};
use crate::model::asks::QuestionSource;
use crate::store::OpenMode;
use crate::timeutil::{age, now_unix, rfc3339};
use lexopt::prelude::*;
use serde_json::json;

pub const HELP: &str = "\
Usage: metawsm-tick run show RUN|--ticket T [--json]

Shows the run, its agents, operator state (restart budget, cooldown), pending guidance,
the latest LLM proposal and the last 10 events.
";

pub fn main(parser: &mut lexopt::Parser, ctx: &Ctx) -> CliResult<i32> {
    let mut ticket = None;
    let (mut id, mut as_json) = (None, false);
    while let Some(arg) = parser.next()? {
        match arg {
            Long("json") => as_json = true,
            Short('h') | Long("help") => {
                cli::print_help(HELP);
                return Ok(0);
            }
            Value(v) if id.is_none() => id = Some(cli::os_to_string(v, "RUN")?),
            Long("ticket") => ticket = Some(cli::os_to_string(parser.value()?, "--ticket")?),
            other => return Err(other.unexpected().into()),
        }
    }
    let id = super::select::run_id(ctx, "run show", id, ticket)?;
    let st = ctx.open(OpenMode::ReadOnly, false)?;
    let run = st.run(&id)?;
    let agents = st.agents(Some(&id))?;
    let op = st.op_state(&id)?;
    let guidance = st.pending_guidance(&id)?;
    let call = st.llm_call(&id)?;
    let approval = st.approval(&id)?;
    let events = st.events(Some(&id), 10)?;
    // An escalation that never reached the ticket's changelog: nobody would find it there.
    let unwritten =
        crate::unwritten::parse(st.meta_get(crate::unwritten::META_KEY)?.as_deref()).remove(&id);
    // The last output kept before each stop or restart killed a pane: the latest per agent.
    let mut evidence = st.events_of(Some(&id), Some(crate::evidence::KIND), 50)?;
    evidence.reverse();
    let mut seen = std::collections::HashSet::new();
    evidence.retain(|e| seen.insert(e.agent.clone()));
    evidence.reverse();
    let now = now_unix();
    let orphaned = if run.status.is_active() {
        crate::orphan::orphaned(&run)
    } else {
        None
    };
    if as_json {
        let v = json!({
            "id": run.id, "status": run.status.as_str(), "orphaned": orphaned, "tmux_socket": run.tmux_socket, "tickets": run.tickets, "workspace": run.workspace, "policy": crate::project_policy::describe(ctx, &run),
            "doc_home_repo": run.doc_home_repo, "ticket_dir": run.ticket_dir, "message": run.message,
            "created_at": run.created_at, "updated_at": run.updated_at,
            "agents": agents.iter().map(|a| json!({
                "name": a.name, "session": a.session, "argv": a.argv, "workdir": a.workdir,
                "status": a.status, "health": a.health.as_str(), "last_activity_at": a.last_activity_at,
                "exit_status": a.exit_status, "exit_signal": a.exit_signal, "pane_id": a.pane_id,
                "signal": a.signal.map(|s| s.as_str()),
                "adopted": a.adopted, "keep_dead_pane": a.keep_dead_pane,
                "observability": crate::adopt::observability(a),
                "resume_argv": a.resume.argv, "conversation_id": a.resume.conversation,
                "started_as": a.resume.kind.as_str(), "resume_cmd_explicit": a.resume.explicit,
            })).collect::<Vec<_>>(),
            "operator": {
                "restart_attempts": op.restart_attempts, "last_restart_at": op.last_restart_at,
                "cooldown_until": op.cooldown_until, "unhealthy_streak": op.unhealthy_streak,
                "healthy_since": op.healthy_since, "last_alert": op.last_alert,
            },
            "guidance": guidance.iter().map(|g| json!({"id": g.id, "agent": g.agent, "question": g.question, "context": g.context, "source": g.source})).collect::<Vec<_>>(),
            "approval": approval.as_ref().map(|a| json!({"intent": a.intent, "targets": a.targets, "reason": a.reason, "status": a.status, "created_at": a.created_at})),
            "llm": call.as_ref().map(|c| json!({"state": c.state, "fingerprint": c.fingerprint, "proposal": c.proposal.as_ref().and_then(|p| serde_json::from_str::<serde_json::Value>(p).ok()), "error": c.error})),
            "escalation_unwritten": unwritten,
            "last_output": evidence.iter().map(|e| json!({"at": e.at, "agent": e.agent, "before": e.to_state, "text": e.message})).collect::<Vec<_>>(),
            "events": events.iter().map(|e| json!({"at": e.at, "kind": e.kind, "agent": e.agent, "from": e.from_state, "to": e.to_state, "message": e.message, "source": e.source})).collect::<Vec<_>>(),
        });
        println!("{}", serde_json::to_string_pretty(&v).unwrap_or_default());
        return Ok(0);
    }
    crate::say!("run:       {}", run.id);
    crate::say!("status:    {} ({})", run.status, run.message);
    if let Some(why) = &orphaned {
        crate::say!(
            "orphaned:  {why}; nothing supervises this run (metawsm-tick run stop {} | run forget {})",
            run.id, run.id
        );
    }
    if let Some(why) = &unwritten {
        crate::say!("escalation: NOT WRITTEN to the ticket's changelog ({why}); see 'metawsm-tick log --run {}'", run.id);
    }
    crate::say!("tickets:   {}", run.tickets.join(", "));
    crate::say!("workspace: {}", run.workspace);
    crate::say!("policy:    {}", crate::project_policy::describe(ctx, &run));
    crate::say!(
        "created:   {} ({} ago)",
        rfc3339(run.created_at),
        age(now - run.created_at)
    );
    crate::say!("agents:");
    for a in &agents {
        crate::say!(
            "  - {} session={} status={} health={} activity_age={} exit={}{}",
            a.name,
            a.session,
            a.status,
            a.health,
            a.last_activity_at
                .map(|t| age(now - t))
                .unwrap_or_else(|| "-".into()),
            a.exit_status
                .map(|s| s.to_string())
                .unwrap_or_else(|| "-".into()),
            a.signal
                .map(|s| format!(" signal={}", s.as_str()))
                .unwrap_or_default()
        );
        crate::say!(
            "      started as: {}; command: {}",
            a.resume.kind.as_str(),
            crate::tmux::sh_quote_argv(&a.argv)
        );
        match &a.resume.argv {
            Some(r) => crate::say!(
                "      resume: {}{}",
                crate::tmux::sh_quote_argv(r),
                if a.resume.explicit {
                    " (--resume-cmd)"
                } else {
                    " (derived)"
                }
            ),
            None => crate::say!("      resume: none (restarts start over)"),
        }
        for line in crate::adopt::observability(a) {
            println!("      {line}");
        }
    }
    crate::say!(
        "operator:  restart_attempts={} cooldown_until={} unhealthy_streak={}",
        op.restart_attempts,
        op.cooldown_until.map(rfc3339).unwrap_or_else(|| "-".into()),
        op.unhealthy_streak
    );
    for g in &guidance {
        // A file request is answered by file; a pane question by typing into the pane.
        let (tag, how) = if g.source == QuestionSource::File {
            (String::new(), "")
        } else {
            (format!(" [{}]", g.source), ", typed into its pane")
        };
        crate::say!(
            "guidance:  #{} {}{tag}: {} (answer{how}: metawsm-tick guide {} --answer …)",
            g.id,
            crate::names::or_placeholder(&g.agent),
            g.question,
            run.id
        );
        if g.source != QuestionSource::File {
            for line in g.context.lines() {
                crate::say!("    | {line}");
            }
        }
    }
    if let Some(a) = &approval {
        if a.status == crate::model::rows::ApprovalStatus::Pending {
            crate::say!(
                "approval:  {} of {} held by assist mode: {} (metawsm-tick approve {id} | metawsm-tick dismiss {id})",
                a.intent,
                a.targets.join(", "),
                a.reason
            );
        } else {
            crate::say!(
                "approval:  {} dismissed: {} (not proposed again until the run recovers)",
                a.intent,
                a.reason
            );
        }
    }
    if let Some(c) = call {
        crate::say!(
            "llm:       {} {}",
            c.state,
            c.proposal.or(c.error).unwrap_or_default()
        );
    }
    for e in &evidence {
        crate::say!(
            "last output of {} (kept before the {} at {}):",
            crate::names::or_placeholder(e.agent.as_deref().unwrap_or("")),
            e.to_state,
            rfc3339(e.at)
        );
        for line in e.message.lines() {
            crate::say!("  | {line}");
        }
    }
    crate::say!("events:");
    for e in &events {
        crate::say!(
            "  {} {} {} {}",
            rfc3339(e.at),
            e.kind,
            e.to_state,
            e.message
        );
    }
    Ok(0)
}
