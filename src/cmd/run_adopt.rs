//! `metawsm-tick run adopt`: supervise agents that already run in tmux (started by the user
//! or another tool), without restarting or touching them; `--scan` finds them.

use crate::adopt::{self, PaneInfo};
use crate::cli::{self, CliError, CliResult, Ctx};
use crate::model::{Health, RunStatus};
use crate::names;
use crate::store::{self, AgentRow, NewEvent, OpenMode, RunRow};
use crate::timeutil::now_unix;
use crate::tmux;
use lexopt::prelude::*;
use std::collections::HashSet;
use std::path::PathBuf;

pub const HELP: &str = "\
Usage: metawsm-tick run adopt --ticket T [OPTIONS] TARGET… [-- CMD [ARGS…]]
       metawsm-tick run adopt --scan [--json]

Registers panes that already run an agent as one run, without restarting them or changing
their options. TARGET is an exact session name (=name or name: its active pane) or a pane
id (%N). The restart command is CMD when given, else the pane's #{pane_start_command} when
tmux knows one, else none: the rules then escalate instead of restarting.

Options:
  --ticket T           Ticket id (repeat for several tickets)
  --workspace DIR      The run's workspace [default: the first pane's current path]
  --id ID              Run id [default: run-YYYYMMDD-HHMMSS, UTC]
  --agent NAME         Agent name [default: the agent CLI detected, else 'agent']
  --keep-dead-pane     Set remain-on-exit on the pane, so an exit leaves its status
                       (without it the pane closes on exit and only its absence is seen)
  --doc-home-repo REPO Repository inside the workspace that holds the docs (ttmp/)
  --ticket-dir DIR     Ticket directory for escalation entries (inside the workspace)
  --resume-cmd CMD     Shell command (sh -c) that continues the agent's conversation on a
                       restart [default: derived for Claude Code and Codex]
  --scan               List unsupervised panes that run a known agent CLI (codex, claude,
                       aider, gemini, opencode, goose, amp, cursor-agent, plus the policy's
                       operator.agent_names), by the pane's command or a process below it
  --json               With --scan: JSON
  -h, --help           Show this help
";

#[derive(Default)]
struct Args {
    tickets: Vec<String>,
    workspace: Option<PathBuf>,
    id: Option<String>,
    agent: Option<String>,
    keep_dead_pane: bool,
    resume_cmd: Option<Vec<String>>,
    repo: Option<String>,
    ticket_dir: Option<String>,
    scan: bool,
    json: bool,
    targets: Vec<String>,
    argv: Option<Vec<String>>,
}

pub fn main(parser: &mut lexopt::Parser, ctx: &Ctx) -> CliResult<i32> {
    let mut a = Args::default();
    loop {
        if let Some(v) = super::take_argv(parser)? {
            a.argv = Some(v);
            break;
        }
        let Some(arg) = parser.next()? else { break };
        match arg {
            Long("ticket") => a
                .tickets
                .push(cli::os_to_string(parser.value()?, "--ticket")?),
            Long("workspace") => a.workspace = Some(PathBuf::from(parser.value()?)),
            Long("id") => a.id = Some(cli::os_to_string(parser.value()?, "--id")?),
            Long("agent") => a.agent = Some(cli::os_to_string(parser.value()?, "--agent")?),
            Long("keep-dead-pane") => a.keep_dead_pane = true,
            Long("resume-cmd") => {
                let c = cli::os_to_string(parser.value()?, "--resume-cmd")?;
                a.resume_cmd = Some(crate::resume::shell_command(&c));
            }
            Long("doc-home-repo") => {
                a.repo = Some(cli::os_to_string(parser.value()?, "--doc-home-repo")?)
            }
            Long("ticket-dir") => {
                a.ticket_dir = Some(cli::os_to_string(parser.value()?, "--ticket-dir")?)
            }
            Long("scan") => a.scan = true,
            Long("json") => a.json = true,
            Short('h') | Long("help") => {
                cli::print_help(HELP);
                return Ok(0);
            }
            Value(v) => a.targets.push(cli::os_to_string(v, "TARGET")?),
            other => return Err(other.unexpected().into()),
        }
    }
    if a.scan {
        if !a.targets.is_empty() || !a.tickets.is_empty() || a.argv.is_some() {
            return Err(CliError::Usage(
                "run adopt: --scan takes no TARGET, --ticket or command".into(),
            ));
        }
        return scan(ctx, a.json);
    }
    if a.json {
        return Err(CliError::Usage("run adopt: --json goes with --scan".into()));
    }
    adopt(ctx, a)
}

/// Control characters in names and paths are shown escaped, never sent to the terminal.
fn shown(s: &str) -> String {
    crate::escape::human(s).into_owned()
}

fn scan(ctx: &Ctx, json: bool) -> CliResult<i32> {
    let policy = ctx.policy()?;
    let out = ctx
        .tmux
        .run(&[tmux::Cmd::new("list-panes")
            .flags(&["-a", "-F"])
            .format(adopt::PANE_INFO_FORMAT)])
        .map_err(|e| CliError::Failure(format!("tmux: {e}")))?;
    let infos: Vec<PaneInfo> = out.lines().filter_map(adopt::parse_pane_info).collect();
    // Panes already supervised: adopted ones by id, our own sessions' panes by session.
    let mut supervised = HashSet::new();
    if ctx.db.exists() {
        let st = ctx.open(OpenMode::ReadOnly, false)?;
        let active: HashSet<String> = st.runs(false)?.into_iter().map(|r| r.id).collect();
        let mut ours = HashSet::new();
        for ag in st.agents(None)? {
            if !active.contains(&ag.run_id) {
                continue;
            }
            match (ag.adopted, ag.pane_id) {
                (true, Some(p)) => {
                    supervised.insert(p);
                }
                _ => {
                    ours.insert(ag.session);
                }
            }
        }
        for p in &infos {
            if ours.contains(&p.session) {
                supervised.insert(p.pane_id.clone());
            }
        }
    }
    let found = adopt::scan(
        &infos,
        &supervised,
        &adopt::proc_table(),
        &adopt::known_agents(&policy),
    );
    if json {
        println!(
            "{}",
            serde_json::to_string_pretty(&found).unwrap_or_else(|_| "[]".into())
        );
        return Ok(0);
    }
    if found.is_empty() {
        println!("no unsupervised agent panes found");
    }
    for f in &found {
        println!(
            "{}  {}  {} (via {})  {}\n    {}",
            f.pane,
            shown(&f.target),
            shown(&f.agent),
            f.via,
            shown(&f.path),
            shown(&f.adopt)
        );
    }
    Ok(0)
}

fn adopt(ctx: &Ctx, a: Args) -> CliResult<i32> {
    let mut seen = HashSet::new();
    let tickets: Vec<String> = a
        .tickets
        .iter()
        .map(|t| t.trim().to_string())
        .filter(|t| !t.is_empty() && seen.insert(t.clone()))
        .collect();
    if tickets.is_empty() {
        return Err(CliError::Usage("run adopt: --ticket is required".into()));
    }
    if a.targets.is_empty() {
        return Err(CliError::Usage(
            "run adopt: at least one TARGET (=session or %pane) is required (or --scan)".into(),
        ));
    }
    if let Some(r) = &a.repo {
        if r.contains("..") || r.starts_with('/') || r.is_empty() {
            return Err(CliError::Usage(format!(
                "run adopt: --doc-home-repo {r:?} must be a relative name inside the workspace"
            )));
        }
    }
    if let Some(i) = &a.id {
        if !names::valid_id(i) {
            return Err(CliError::Usage(format!(
                "run adopt: --id {i:?} may only contain letters, digits, '-', '_' and '.'"
            )));
        }
    }
    if let Some(n) = &a.agent {
        if !names::valid_id(n) {
            return Err(CliError::Usage(format!(
                "run adopt: --agent {n:?} may only contain letters, digits, '-', '_' and '.'"
            )));
        }
    }
    let explicit = a.argv.filter(|v| !v.is_empty());
    let policy = ctx.policy()?;
    let known = adopt::known_agents(&policy);
    let mut panes: Vec<PaneInfo> = Vec::new();
    for t in &a.targets {
        let mut p = adopt::pane_info(ctx, t).map_err(CliError::Failure)?;
        // A pane that has just started may not have a current directory for tmux yet.
        for _ in 0..20 {
            if !p.path.is_empty() || p.dead || a.workspace.is_some() {
                break;
            }
            std::thread::sleep(std::time::Duration::from_millis(50));
            p = adopt::pane_info(ctx, t).map_err(CliError::Failure)?;
        }
        if p.dead {
            return Err(CliError::Failure(format!(
                "run adopt: pane {} ({}) is dead; nothing to adopt",
                p.pane_id,
                shown(t)
            )));
        }
        if panes.iter().any(|q| q.pane_id == p.pane_id) {
            continue;
        }
        if panes.iter().any(|q| q.session == p.session) {
            return Err(CliError::Usage(format!(
                "run adopt: {} and another target are in the same session {}; adopt one pane per session",
                p.pane_id,
                shown(&p.session)
            )));
        }
        panes.push(p);
    }
    let ws_given = a.workspace.clone();
    let ws_raw = match &ws_given {
        Some(w) => w.clone(),
        None if panes[0].path.is_empty() => {
            return Err(CliError::Usage(format!(
                "run adopt: tmux does not know pane {}'s current directory; pass --workspace DIR",
                panes[0].pane_id
            )))
        }
        None => PathBuf::from(&panes[0].path),
    };
    let ws = ws_raw
        .canonicalize()
        .map_err(|e| CliError::Usage(format!("run adopt: workspace {}: {e}", ws_raw.display())))?;
    if !ws.is_dir() {
        return Err(CliError::Usage(format!(
            "run adopt: workspace {} is not a directory",
            ws.display()
        )));
    }
    store::ensure_state_dir(&ctx.db)?;
    let _lock = super::lock(ctx)?;
    let mut st = ctx.open(OpenMode::Create, true)?;
    for p in &panes {
        if let Some((run, agent)) =
            st.agent_by_session_or_pane(Some(&p.session), Some(&p.pane_id))?
        {
            return Err(CliError::Failure(format!(
                "run adopt: pane {} (session {}) is already supervised as agent {agent} of run {run}",
                p.pane_id,
                shown(&p.session)
            )));
        }
    }
    let now = now_unix();
    let run_id = match a.id {
        Some(i) => {
            if st.run(&i).is_ok() {
                return Err(CliError::Failure(format!("run {i} already exists")));
            }
            i
        }
        None => super::run_start::unique_id(&st, now),
    };
    let run = RunRow {
        id: run_id.clone(),
        tickets,
        workspace: ws.to_string_lossy().into_owned(),
        doc_home_repo: a.repo,
        ticket_dir: a.ticket_dir,
        tmux_socket: panes
            .first()
            .map(|p| p.socket.clone())
            .filter(|s| !s.is_empty()),
        policy_path: crate::project_policy::find_for(&ws),
        orphaned: None,
        tmux_server: None,
        status: RunStatus::Running,
        message: "run adopted".into(),
        created_at: now,
        updated_at: now,
        status_changed_at: now,
    };
    let mut agents: Vec<AgentRow> = Vec::new();
    let procs = adopt::proc_table();
    for p in &panes {
        let base = a.agent.clone().unwrap_or_else(|| {
            adopt::detect(&p.current_command, p.pid, &procs, &known)
                .map(|(n, _)| n)
                .filter(|n| names::valid_id(n))
                .unwrap_or_else(|| "agent".into())
        });
        let mut name = base.clone();
        let mut n = 2;
        while agents.iter().any(|x| x.name == name) {
            name = format!("{base}-{n}");
            n += 1;
        }
        let argv = explicit
            .clone()
            .or_else(|| adopt::restart_argv(&p.start_command))
            .unwrap_or_default();
        let resume = crate::resume::for_adopted(&argv, a.resume_cmd.as_deref());
        agents.push(AgentRow {
            run_id: run_id.clone(),
            name,
            session: p.session.clone(),
            argv,
            workdir: if p.path.is_empty() {
                run.workspace.clone()
            } else {
                p.path.clone()
            },
            status: "running".into(),
            health: Health::Healthy,
            last_activity_at: Some(now),
            last_progress_at: Some(now),
            exit_status: None,
            exit_signal: None,
            pane_id: Some(p.pane_id.clone()),
            started_at: now,
            signal: None,
            signal_at: None,
            adopted: true,
            keep_dead_pane: a.keep_dead_pane,
            resume,
        });
    }
    if a.keep_dead_pane {
        // The only option we ever set on an adopted pane, and only when asked to.
        let cmds: Vec<_> = panes
            .iter()
            .map(|p| {
                tmux::Cmd::new("set-option")
                    .flag("-p")
                    .target(tmux::Target::Pane(&p.pane_id))
                    .flags(&["remain-on-exit", "on"])
            })
            .collect();
        ctx.tmux
            .run(&cmds)
            .map_err(|e| CliError::Failure(format!("tmux: set remain-on-exit: {e}")))?;
    }
    let tx = st.write()?;
    tx.register_run(&run, "run_adopted", now)?;
    for ag in &agents {
        tx.insert_agent(ag, now)?;
        tx.add_event(
            now,
            &NewEvent {
                run_id: Some(&run.id),
                agent: Some(&ag.name),
                kind: "agent_adopted",
                to_state: "running",
                message: &format!(
                    "pane {} session {} restart argv {}",
                    ag.pane_id.as_deref().unwrap_or("?"),
                    ag.session,
                    serde_json::to_string(&ag.argv).unwrap_or_default()
                ),
                source: "cli",
                ..Default::default()
            },
        )?;
    }
    tx.commit()?;
    for ag in &agents {
        println!(
            "adopted {} (session {}) as agent {} of {}; restart command: {}",
            ag.pane_id.as_deref().unwrap_or("?"),
            shown(&ag.session),
            ag.name,
            run.id,
            if ag.argv.is_empty() {
                "none (the rules escalate instead of restarting)".to_string()
            } else {
                shown(
                    &ag.argv
                        .iter()
                        .map(|w| tmux::sh_quote(w))
                        .collect::<Vec<_>>()
                        .join(" "),
                )
            }
        );
        for line in adopt::observability(ag) {
            println!("  {line}");
        }
    }
    let _ = crate::status_cache::refresh(&st);
    crate::schedule::wake(&mut st, ctx, &policy, now);
    Ok(0)
}
