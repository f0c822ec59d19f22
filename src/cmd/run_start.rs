//! `metawsm-tick run start`: register a run and start its first agent.

use crate::agents::{start_agent, AgentSpec};
use crate::cli::{self, CliError, CliResult, Ctx};
use crate::model::RunStatus;
use crate::names;
use crate::policy::Policy;
use crate::store::{self, OpenMode, RunRow, Store};
use crate::timeutil::{compact, now_unix};
use crate::tmux;
use lexopt::prelude::*;
use std::path::PathBuf;

pub const HELP: &str = "\
Usage: metawsm-tick run start --ticket T --workspace DIR [OPTIONS] -- CMD [ARGS…]

Registers a run and starts CMD (as an argv, no shell unless you pass one) detached in its
own tmux session, in DIR/REPO when --doc-home-repo names an existing directory, else DIR.
The session keeps a dead pane with the exit status when the agent exits.

Options:
  --ticket T           Ticket id (repeat for several tickets)
  --workspace DIR      The run's workspace directory (must exist)
  --id ID              Run id [default: run-YYYYMMDD-HHMMSS, UTC]
  --agent NAME         Agent name [default: agent]
  --doc-home-repo REPO Repository inside the workspace that holds the docs (ttmp/)
  --ticket-dir DIR     Ticket directory for escalation entries (inside the workspace)
  --session NAME       tmux session name [default: policy tmux.session_pattern]
  --resume-cmd CMD     Shell command (run with sh -c in the agent's directory) that
                       continues the agent's conversation on a restart [default: derived
                       for Claude Code and Codex, see docs/restarts.md]
  -h, --help           Show this help
";

pub fn main(parser: &mut lexopt::Parser, ctx: &Ctx) -> CliResult<i32> {
    let mut tickets = Vec::new();
    let (mut workspace, mut id, mut agent, mut repo, mut ticket_dir, mut session) =
        (None, None, "agent".to_string(), None, None, None);
    let mut argv = None;
    let mut resume_cmd = None;
    loop {
        if let Some(a) = super::take_argv(parser)? {
            argv = Some(a);
            break;
        }
        let Some(arg) = parser.next()? else { break };
        match arg {
            Long("ticket") => tickets.push(cli::os_to_string(parser.value()?, "--ticket")?),
            Long("workspace") => workspace = Some(PathBuf::from(parser.value()?)),
            Long("id") => id = Some(cli::os_to_string(parser.value()?, "--id")?),
            Long("agent") => agent = cli::os_to_string(parser.value()?, "--agent")?,
            Long("doc-home-repo") => {
                repo = Some(cli::os_to_string(parser.value()?, "--doc-home-repo")?)
            }
            Long("ticket-dir") => {
                ticket_dir = Some(cli::os_to_string(parser.value()?, "--ticket-dir")?)
            }
            Long("session") => session = Some(cli::os_to_string(parser.value()?, "--session")?),
            Long("resume-cmd") => {
                let c = cli::os_to_string(parser.value()?, "--resume-cmd")?;
                resume_cmd = Some(crate::resume::shell_command(&c));
            }
            Short('h') | Long("help") => {
                cli::print_help(HELP);
                return Ok(0);
            }
            other => return Err(other.unexpected().into()),
        }
    }
    let mut seen = std::collections::HashSet::new();
    let tickets: Vec<String> = tickets
        .into_iter()
        .map(|t| t.trim().to_string())
        .filter(|t| !t.is_empty() && seen.insert(t.clone()))
        .collect();
    if tickets.is_empty() {
        return Err(CliError::Usage("run start: --ticket is required".into()));
    }
    let workspace =
        workspace.ok_or_else(|| CliError::Usage("run start: --workspace is required".into()))?;
    let argv = argv.filter(|a| !a.is_empty()).ok_or_else(|| {
        CliError::Usage("run start: the agent command is required after --".into())
    })?;
    if let Some(r) = &repo {
        if r.contains("..") || r.starts_with('/') || r.is_empty() {
            return Err(CliError::Usage(format!(
                "run start: --doc-home-repo {r:?} must be a relative name inside the workspace"
            )));
        }
    }
    let ws = workspace.canonicalize().map_err(|e| {
        CliError::Usage(format!(
            "run start: --workspace {}: {e}",
            workspace.display()
        ))
    })?;
    // The workspace is stored as text and becomes the agent's cwd byte for byte: a
    // path that is not UTF-8 cannot be carried, so it is refused rather than mangled.
    if ws.to_str().is_none() {
        return Err(CliError::Usage(format!(
            "run start: --workspace {:?} is not valid UTF-8",
            ws
        )));
    }
    if !ws.is_dir() {
        return Err(CliError::Usage(format!(
            "run start: --workspace {} is not a directory",
            ws.display()
        )));
    }
    if let Some(i) = &id {
        if !names::valid_id(i) {
            return Err(CliError::Usage(format!(
                "run start: --id {i:?} may only contain letters, digits, '-', '_' and '.'"
            )));
        }
    }
    // The project's own policy, as the original read it: recorded on the run.
    let project_policy = crate::project_policy::find_for(&ws);
    let policy = match (&project_policy, ctx.policy_given_by) {
        (Some(p), None) => Policy::load(std::path::Path::new(p))?,
        _ => ctx.policy()?,
    };
    store::ensure_state_dir(&ctx.db)?;
    // Before the lock: a server this command starts loads its config, and the plugin's
    // tmux-setup in it wants the lock too.
    let boot = boot_server(ctx);
    let spec = AgentSpec {
        name: agent,
        session,
        argv,
        resume_cmd,
    };
    let started = start_locked(ctx, &policy, tickets, ws, id, repo, ticket_dir, spec);
    if let Some(b) = boot {
        let _ = ctx.tmux.run(&[tmux::kill_session_cmd(&b)]);
    }
    started
}

/// When no server answers, start one on a short-lived placeholder session, without the
/// state lock: new-session returns once the server has loaded its config (and the
/// plugin's tmux-setup has run). The caller kills the placeholder once the agent's own
/// session keeps the server alive.
fn boot_server(ctx: &Ctx) -> Option<String> {
    // A socket that accepts connections is a live server: no tmux spawn to learn it (a
    // spawn costs more the more panes the server holds). Anything else asks tmux.
    let socket = ctx.tmux.socket().map(str::to_string).or_else(|| {
        let inside = std::env::var("TMUX").ok()?;
        inside.split(',').next().map(str::to_string)
    });
    if socket.is_some_and(|s| crate::orphan::server_state(&s) == crate::orphan::ServerState::Alive)
    {
        return None;
    }
    if !matches!(ctx.tmux.observe_server(), tmux::Observation::Unknown(_)) {
        return None;
    }
    let name = format!("metawsm-boot-{}", std::process::id());
    ctx.tmux
        .run(&[tmux::Cmd::new("new-session")
            .flag("-d")
            .flag("-s")
            .session_name("session name", &name)
            .end_of_flags()
            .flags(&["sleep", "300"])])
        .ok()
        .map(|_| name)
}

#[allow(clippy::too_many_arguments)]
fn start_locked(
    ctx: &Ctx,
    policy: &Policy,
    tickets: Vec<String>,
    ws: PathBuf,
    id: Option<String>,
    repo: Option<String>,
    ticket_dir: Option<String>,
    spec: AgentSpec,
) -> CliResult<i32> {
    let _lock = super::lock(ctx)?;
    let mut st = ctx.open(OpenMode::Create, true)?;
    let now = now_unix();
    let run_id = match id {
        Some(i) => {
            if st.run(&i).is_ok() {
                return Err(CliError::Failure(format!("run {i} already exists")));
            }
            i
        }
        None => unique_id(&st, now),
    };
    let run = RunRow {
        id: run_id.clone(),
        tickets,
        workspace: ws.to_string_lossy().into_owned(),
        doc_home_repo: repo,
        ticket_dir,
        tmux_socket: None,
        policy_path: crate::project_policy::find_for(&ws),
        orphaned: None,
        tmux_server: None,
        status: RunStatus::Running,
        message: "run started".into(),
        created_at: now,
        updated_at: now,
        status_changed_at: now,
    };
    // What an earlier run left in this workspace must not complete or answer this one.
    let moved = crate::signals::archive_leftovers(
        &crate::signals::roots(&run.workspace, run.doc_home_repo.as_deref()),
        &ws,
        &run.id,
        None,
        now,
    );
    let a = start_agent(&mut st, ctx, policy, &run, spec, now, true)?;
    note_archived(&mut st, &run.id, &moved, now)?;
    crate::say!(
        "started {} agent {} in tmux session {} ({})",
        run.id,
        a.name,
        a.session,
        a.workdir
    );
    let _ = crate::status_cache::refresh(&st);
    // The user's shell PATH: ticks run by the tmux server may not find the LLM CLI.
    crate::llm_command::record(&mut st, policy);
    crate::schedule::wake(&mut st, ctx, policy, now);
    Ok(0)
}

/// One event per signal file moved aside when a run starts or restarts.
pub fn note_archived(st: &mut Store, run_id: &str, notes: &[String], now: i64) -> CliResult {
    if notes.is_empty() {
        return Ok(());
    }
    let tx = st.write()?;
    for n in notes {
        tx.add_event(
            now,
            &store::NewEvent {
                run_id: Some(run_id),
                kind: "signal_archived",
                message: n,
                source: "cli",
                ..Default::default()
            },
        )?;
    }
    tx.commit()?;
    Ok(())
}

pub fn unique_id(st: &Store, now: i64) -> String {
    let base = format!("run-{}", compact(now));
    let mut id = base.clone();
    let mut n = 2;
    while st.run(&id).is_ok() {
        id = format!("{base}-{n}");
        n += 1;
    }
    id
}
