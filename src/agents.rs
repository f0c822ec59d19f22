//! Agents' tmux sessions: how one is started (session, environment, rows) for `run start`,
//! `run add-agent`, `run restart` and the tick's restarts.

use crate::cli::{CliError, CliResult, Ctx};
use crate::model::Health;
use crate::names;
use crate::policy::Policy;
use crate::store::{AgentRow, NewEvent, RunRow, Store};
use crate::tmux::{self, Cmd, SessionState};
use std::path::Path;

pub struct AgentSpec {
    pub name: String,
    pub session: Option<String>,
    pub argv: Vec<String>,
    /// `--resume-cmd`: how a restart continues the conversation (else derived).
    pub resume_cmd: Option<Vec<String>>,
}

/// The environment every agent session gets, so agent-side adapters find their run.
pub fn agent_env(ctx: &Ctx, run_id: &str, agent: &str) -> Vec<(String, String)> {
    vec![
        ("METAWSM_RUN_ID".into(), run_id.into()),
        ("METAWSM_AGENT".into(), agent.into()),
        ("METAWSM_DB".into(), ctx.db.to_string_lossy().into_owned()),
    ]
}

pub fn agent_start_cmds(ctx: &Ctx, policy: &Policy, a: &AgentRow) -> Vec<Cmd> {
    tmux::start_agent_cmds(
        &a.session,
        &a.workdir,
        &a.argv,
        &agent_env(ctx, &a.run_id, &a.name),
        policy.health.activity_stalled_seconds,
    )
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
    // Claude Code gets a conversation id of ours, so a restart can resume exactly it.
    let (argv, resume) = crate::resume::prepare(
        &spec.argv,
        spec.resume_cmd.as_deref(),
        None,
        false,
        &mut crate::resume::new_uuid,
        now,
    );
    let agent = AgentRow {
        run_id: run.id.clone(),
        name: spec.name.clone(),
        session: session.clone(),
        argv,
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
        adopted: false,
        keep_dead_pane: true,
        resume,
    };
    let mut cmds = agent_start_cmds(ctx, policy, &agent);
    cmds.push(
        tmux::Cmd::new("display-message")
            .flag("-p")
            .target(tmux::Target::SessionPane(&session))
            .format("#{pane_id}\t#{socket_path}"),
    );
    // new-session goes first and refuses a name in use, so tmux is asked nothing before
    // (listing every pane to look for the name grew with the server).
    let out = ctx.tmux.run(&cmds).map_err(|e| match e {
        tmux::TmuxError::Failed(m) if m.starts_with("duplicate session") => CliError::Failure(
            format!("tmux session {session} already exists; choose another with --session"),
        ),
        e => CliError::Failure(format!("tmux: start session {session}: {e}")),
    })?;
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
            tx.register_run(run, "run_started", now)?;
        }
        tx.insert_agent(&agent, now)?;
        tx.add_event(
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
        tx.commit()
    })();
    if let Err(e) = saved {
        // Nothing half-registered: the session goes if the rows could not be written.
        let _ = ctx.tmux.run(&[tmux::kill_session_cmd(&session)]);
        return Err(e.into());
    }
    Ok(agent)
}

/// What one agent's restart runs: a resume of its conversation or a fresh start (with a
/// new conversation id where the agent needs one), and why. `row` is the agent as it will
/// be stored once the restart ran (its `argv` is the command the restart runs).
pub struct Launch {
    pub kind: crate::resume::StartKind,
    pub why: String,
    pub row: AgentRow,
    /// The start command to store (a resume leaves it as it was).
    pub start_argv: Vec<String>,
}

pub fn restart_launch(
    a: &AgentRow,
    obs: &tmux::Observation,
    policy: &Policy,
    now: i64,
    fresh_requested: bool,
) -> Launch {
    use crate::resume::{choose, prepare, ResumePolicy, StartKind};
    // When did the last process end? A dead pane's death time; a live one (or one gone
    // with its server) is being replaced now.
    let died_at = match obs.agent(a) {
        // tmux reports the death time with the exit status, a moment after the pane is
        // dead, and may still show the placeholder's (replaced at the start). Until this
        // process's own time is in, `now` bounds it from above: never guessed from
        // activity, which would make every conversation look young.
        SessionState::Present(panes) if panes.iter().all(|p| p.dead) => Some(
            panes
                .iter()
                .filter_map(|p| p.dead_at.filter(|t| *t > a.started_at))
                .max()
                .unwrap_or(now)
                .min(now),
        ),
        _ => None,
    };
    let o = &policy.operator;
    let rp = ResumePolicy {
        fresh_only: o.restart_mode == crate::policy::RestartMode::Fresh,
        min_conversation_seconds: o.resume_min_conversation_seconds,
        resume_failed_within_seconds: o.resume_failed_within_seconds,
    };
    let (kind, why) = choose(&a.resume, a.started_at, died_at, now, &rp, fresh_requested);
    match (kind, &a.resume.argv) {
        (StartKind::Resume, Some(resume_argv)) => Launch {
            kind,
            why,
            row: AgentRow {
                argv: resume_argv.clone(),
                resume: crate::resume::Resume {
                    kind: StartKind::Resume,
                    ..a.resume.clone()
                },
                ..a.clone()
            },
            start_argv: a.argv.clone(),
        },
        _ => {
            let (argv, resume) = prepare(
                &a.argv,
                None,
                Some(&a.resume),
                true,
                &mut crate::resume::new_uuid,
                now,
            );
            Launch {
                kind: StartKind::Fresh,
                why,
                row: AgentRow {
                    argv: argv.clone(),
                    resume,
                    ..a.clone()
                },
                start_argv: argv,
            }
        }
    }
}
