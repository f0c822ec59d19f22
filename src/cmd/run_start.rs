//! `metawsm-tick run start`: register a run and start its first agent.

use crate::cli::{self, CliError, CliResult, Ctx};
use crate::engine;
use crate::lock::{StateLock, Wait};
use crate::model::{Health, RunStatus};
use crate::names;
use crate::policy::Policy;
use crate::store::{self, AgentRow, NewEvent, OpenMode, RunRow, Store};
use crate::timeutil::{compact, now_unix};
use crate::tmux::{self, SessionState};
use lexopt::prelude::*;
use std::path::{Path, PathBuf};
use std::time::Duration;

const HELP: &str = "\
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
  -h, --help           Show this help
";

pub struct AgentSpec {
    pub name: String,
    pub session: Option<String>,
    pub argv: Vec<String>,
}

pub fn main(parser: &mut lexopt::Parser, ctx: &Ctx) -> CliResult<i32> {
    let mut tickets = Vec::new();
    let (mut workspace, mut id, mut agent, mut repo, mut ticket_dir, mut session) =
        (None, None, "agent".to_string(), None, None, None);
    let mut argv = None;
    loop {
        if let Some(a) = super::run::take_argv(parser)? {
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
    let policy = ctx.policy()?;
    store::ensure_state_dir(&ctx.db)?;
    let _lock = lock(ctx)?;
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
        status: RunStatus::Running,
        message: "run started".into(),
        created_at: now,
        updated_at: now,
        status_changed_at: now,
    };
    let spec = AgentSpec {
        name: agent,
        session,
        argv,
    };
    let a = start_agent(&mut st, ctx, &policy, &run, spec, now, true)?;
    println!(
        "started {} agent {} in tmux session {} ({})",
        run.id, a.name, a.session, a.workdir
    );
    let _ = crate::status_cache::refresh(&st);
    crate::cmd::timer::arm_if_stale(&mut st, ctx, &policy, now);
    Ok(0)
}

pub fn lock(ctx: &Ctx) -> CliResult<StateLock> {
    StateLock::acquire(&ctx.db, Wait::Bounded(Duration::from_secs(30)))
        .map_err(|e| CliError::Failure(format!("lock: {e}")))?
        .ok_or_else(|| {
            CliError::Failure("another metawsm-tick holds the state lock for more than 30 s".into())
        })
}

fn unique_id(st: &Store, now: i64) -> String {
    let base = format!("run-{}", compact(now));
    let mut id = base.clone();
    let mut n = 2;
    while st.run(&id).is_ok() {
        id = format!("{base}-{n}");
        n += 1;
    }
    id
}

/// Working directory: DIR/REPO when that directory exists, else DIR.
pub fn workdir(run: &RunRow) -> String {
    if let Some(r) = &run.doc_home_repo {
        let p = Path::new(&run.workspace).join(r);
        if p.is_dir() {
            return p.to_string_lossy().into_owned();
        }
    }
    run.workspace.clone()
}

/// Creates the tmux session and the rows (and the run row when `new_run`), or nothing.
pub fn start_agent(
    st: &mut Store,
    ctx: &Ctx,
    policy: &Policy,
    run: &RunRow,
    spec: AgentSpec,
    now: i64,
    new_run: bool,
) -> CliResult<AgentRow> {
    // Names travel through tab-separated queues and tmux formats: keep them plain.
    if !names::valid_id(&spec.name) {
        return Err(CliError::Usage(format!(
            "invalid agent name {:?}",
            spec.name
        )));
    }
    let ws_name = Path::new(&run.workspace)
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "workspace".into());
    let session = match spec.session {
        Some(s) => {
            crate::escape::check_session_name("--session", &s)
                .map_err(|e| CliError::Usage(format!("invalid {e}")))?;
            s
        }
        None => names::session_name(&policy.tmux.session_pattern, &spec.name, &ws_name),
    };
    if st.session_taken(&session)? {
        return Err(CliError::Failure(format!(
            "session {session} is already used by a registered agent"
        )));
    }
    let obs = ctx.tmux.observe();
    match obs.panes(&session) {
        SessionState::Present(_) => {
            return Err(CliError::Failure(format!(
                "tmux session {session} already exists; choose another with --session"
            )))
        }
        SessionState::Absent | SessionState::Unknown => {}
    }
    let agent = AgentRow {
        run_id: run.id.clone(),
        name: spec.name.clone(),
        session: session.clone(),
        argv: spec.argv,
        workdir: workdir(run),
        status: "running".into(),
        health: Health::Healthy,
        last_activity_at: Some(now),
        last_progress_at: Some(now),
        exit_status: None,
        exit_signal: None,
        pane_id: None,
        started_at: now,
        signal: None,
        signal_at: None,
    };
    let mut cmds = engine::agent_start_cmds(ctx, policy, &agent);
    cmds.push(
        tmux::Cmd::new("display-message")
            .flag("-p")
            .target(tmux::Target::SessionPane(&session))
            .format("#{pane_id}\t#{socket_path}"),
    );
    let out = ctx
        .tmux
        .run(&cmds)
        .map_err(|e| CliError::Failure(format!("tmux: start session {session}: {e}")))?;
    let mut last = out.lines().last().unwrap_or("").splitn(2, '\t');
    let pane = last
        .next()
        .map(str::trim)
        .filter(|p| p.starts_with('%'))
        .map(str::to_string);
    // The run remembers its server: ticks on another server must leave it alone.
    let socket = last.next().map(str::trim).filter(|s| !s.is_empty());
    let agent = AgentRow {
        pane_id: pane,
        ..agent
    };
    let run = &RunRow {
        tmux_socket: run.tmux_socket.clone().or(socket.map(str::to_string)),
        ..run.clone()
    };
    let saved = (|| -> Result<(), crate::store::StoreError> {
        let tx = st.write()?;
        if new_run {
            store::insert_run(&tx, run)?;
            store::add_event(
                &tx,
                now,
                &NewEvent {
                    run_id: Some(&run.id),
                    kind: "run_started",
                    to_state: "running",
                    message: &format!("tickets {}", run.tickets.join(", ")),
                    source: "cli",
                    ..Default::default()
                },
            )?;
        }
        store::insert_agent(&tx, &agent, now)?;
        store::add_event(
            &tx,
            now,
            &NewEvent {
                run_id: Some(&run.id),
                agent: Some(&agent.name),
                kind: "agent_started",
                to_state: "running",
                message: &format!(
                    "session {} argv {}",
                    agent.session,
                    serde_json::to_string(&agent.argv).unwrap_or_default()
                ),
                source: "cli",
                ..Default::default()
            },
        )?;
        tx.commit().map_err(crate::store::StoreError::from)
    })();
    if let Err(e) = saved {
        // Nothing half-registered: the session goes if the rows could not be written.
        let _ = ctx.tmux.run(&[tmux::kill_session_cmd(&session)]);
        return Err(e.into());
    }
    Ok(agent)
}
