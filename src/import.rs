//! Taking over the original Go metawsm's active runs from its SQLite database, which is
//! opened read-only (`mode=ro`) and never modified: runs, tickets, workspace and doc-home
//! repo, agents with their tmux sessions (adopted as they are, never restarted), restart
//! state, and pending guidance questions.

use crate::model::{Health, RunStatus};
use crate::original;
use crate::store::{AgentRow, NewEvent, OpState, RunRow, StoreError, Tx};
use crate::timeutil::parse_rfc3339;
use rusqlite::{Connection, OpenFlags, OptionalExtension};
use serde_json::Value;
use std::collections::HashSet;
use std::path::{Path, PathBuf};

/// The original's active statuses (`isActiveRunStatus`): `completed` is not active.
const ACTIVE: [&str; 6] = [
    "planning",
    "running",
    "awaiting_guidance",
    "paused",
    "stopping",
    "closing",
];

/// One pending question carried over.
#[derive(Debug, Clone, PartialEq)]
pub struct Question {
    pub agent: String,
    pub root: String,
    pub question: String,
    pub context: String,
    pub created_at: i64,
}

/// Everything one original run becomes here.
#[derive(Debug, Clone, PartialEq)]
pub struct Imported {
    pub run: RunRow,
    pub agents: Vec<AgentRow>,
    pub state: OpState,
    pub questions: Vec<Question>,
    /// Things worth telling the user (e.g. extra workspaces).
    pub notes: Vec<String>,
}

#[derive(Debug, Default)]
pub struct Plan {
    pub runs: Vec<Imported>,
    /// (run id, why): already here.
    pub skipped: Vec<(String, String)>,
    /// (run id, why): could not be carried over.
    pub failed: Vec<(String, String)>,
}

/// Opens the original database read-only (`mode=ro`): never written, never created.
pub fn open_original(path: &Path) -> Result<Connection, String> {
    let meta = std::fs::metadata(path)
        .map_err(|e| format!("original database {}: {e}", path.display()))?;
    if !meta.is_file() {
        return Err(format!(
            "original database {} is not a file",
            path.display()
        ));
    }
    let flags = OpenFlags::SQLITE_OPEN_READ_ONLY
        | OpenFlags::SQLITE_OPEN_URI
        | OpenFlags::SQLITE_OPEN_NO_MUTEX;
    let uri = |extra: &str| format!("file:{}?mode=ro{extra}", uri_path(path));
    let try_open = |u: String| -> Result<Connection, String> {
        let c = Connection::open_with_flags(u, flags).map_err(|e| e.to_string())?;
        // Fails here, not at open, when the file is not SQLite or cannot be read.
        c.query_row("SELECT count(*) FROM sqlite_master", [], |r| {
            r.get::<_, i64>(0)
        })
        .map_err(|e| e.to_string())?;
        Ok(c)
    };
    // Without a -wal file everything is in the main file: `immutable=1` reads it without
    // locks or side files (`mode=ro` alone would create -shm/-wal next to it). With one
    // (the original is running), `mode=ro` also reads what the WAL holds.
    let mut wal = path.as_os_str().to_owned();
    wal.push("-wal");
    let conn = if Path::new(&wal).exists() {
        try_open(uri("")).or_else(|_| try_open(uri("&immutable=1")))
    } else {
        try_open(uri("&immutable=1"))
    }
    .map_err(|e| format!("open original database {}: {e}", path.display()))?;
    for t in ["runs", "run_tickets", "agents"] {
        if !opt_table(&conn, t) {
            return Err(format!(
                "{} is not a metawsm database (no {t} table)",
                path.display()
            ));
        }
    }
    Ok(conn)
}

/// A path as a URI path: `%`, `?` and `#` escaped so they stay part of the name.
fn uri_path(p: &Path) -> String {
    let mut out = String::new();
    for b in p.as_os_str().as_encoded_bytes() {
        match b {
            b'%' | b'?' | b'#' => out.push_str(&format!("%{b:02X}")),
            b if b.is_ascii() && !b.is_ascii_control() => out.push(*b as char),
            b => out.push_str(&format!("%{b:02X}")),
        }
    }
    out
}

fn time(s: &str) -> Option<i64> {
    parse_rfc3339(s)
}

fn opt_table(conn: &Connection, t: &str) -> bool {
    conn.query_row(
        "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?1",
        [t],
        |_| Ok(()),
    )
    .optional()
    .ok()
    .flatten()
    .is_some()
}

struct OrigAgent {
    name: String,
    workspace: String,
    session: String,
    health: String,
    last_activity_at: String,
    last_progress_at: String,
}

/// Reads every active run of the original and works out what it becomes here.
/// `exists` says whether a run id (or a session) is already registered; `config_dir` is
/// where the workspace-manager config lives; `socket` the tmux server we supervise.
#[allow(clippy::too_many_arguments)]
pub fn plan(
    conn: &Connection,
    project: Option<&Path>,
    config_dir: Option<&Path>,
    exists: &dyn Fn(&str) -> bool,
    session_taken: &dyn Fn(&str) -> bool,
    socket: Option<&str>,
    now: i64,
) -> Result<Plan, String> {
    let sql_err = |e: rusqlite::Error| format!("read original database: {e}");
    let mut stmt = conn
        .prepare(
            "SELECT run_id, status, created_at, updated_at, COALESCE(spec_json, '')
             FROM runs ORDER BY created_at, run_id",
        )
        .map_err(sql_err)?;
    let rows: Vec<(String, String, String, String, String)> = stmt
        .query_map([], |r| {
            Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?))
        })
        .map_err(sql_err)?
        .collect::<rusqlite::Result<_>>()
        .map_err(sql_err)?;
    let mut plan = Plan::default();
    let mut sessions_here: HashSet<String> = HashSet::new();
    for (id, status, created, updated, spec) in rows {
        if !ACTIVE.contains(&status.as_str()) {
            continue;
        }
        if exists(&id) {
            plan.skipped.push((id, "already exists".into()));
            continue;
        }
        match one_run(
            conn, project, &id, &status, &created, &updated, &spec, config_dir, socket, now,
        ) {
            Ok(imp) => {
                let clash = imp
                    .agents
                    .iter()
                    .find(|a| session_taken(&a.session) || sessions_here.contains(&a.session));
                if let Some(a) = clash {
                    plan.failed.push((
                        id,
                        format!(
                            "tmux session {} is already used by a registered agent",
                            a.session
                        ),
                    ));
                    continue;
                }
                sessions_here.extend(imp.agents.iter().map(|a| a.session.clone()));
                plan.runs.push(imp);
            }
            Err(e) => plan.failed.push((id, e)),
        }
    }
    Ok(plan)
}

#[allow(clippy::too_many_arguments)]
fn one_run(
    conn: &Connection,
    project: Option<&Path>,
    id: &str,
    status: &str,
    created: &str,
    updated: &str,
    spec: &str,
    config_dir: Option<&Path>,
    socket: Option<&str>,
    now: i64,
) -> Result<Imported, String> {
    let sql_err = |e: rusqlite::Error| format!("read original database: {e}");
    if !crate::names::valid_id(id) {
        return Err(format!("run id {id:?} is not usable here"));
    }
    let status: RunStatus = status
        .parse()
        .map_err(|_| format!("unknown status {status:?}"))?;
    let spec: Value = serde_json::from_str(spec).unwrap_or(Value::Null);
    let mut tickets: Vec<String> = {
        let mut s = conn
            .prepare("SELECT ticket FROM run_tickets WHERE run_id = ?1 ORDER BY ticket")
            .map_err(sql_err)?;
        let v = s
            .query_map([id], |r| r.get::<_, String>(0))
            .map_err(sql_err)?
            .collect::<rusqlite::Result<Vec<_>>>()
            .map_err(sql_err)?;
        v
    };
    if tickets.is_empty() {
        tickets = spec
            .get("tickets")
            .and_then(Value::as_array)
            .map(|a| {
                a.iter()
                    .filter_map(Value::as_str)
                    .map(str::to_string)
                    .collect()
            })
            .unwrap_or_default();
    }
    tickets.retain(|t| !t.trim().is_empty());
    if tickets.is_empty() {
        return Err("no tickets".into());
    }
    let agents: Vec<OrigAgent> = {
        let mut s = conn
            .prepare(
                "SELECT agent_name, workspace_name, session_name, COALESCE(health_state, ''),
                        COALESCE(last_activity_at, ''), COALESCE(last_progress_at, '')
                 FROM agents WHERE run_id = ?1 ORDER BY workspace_name, agent_name",
            )
            .map_err(sql_err)?;
        let v = s
            .query_map([id], |r| {
                Ok(OrigAgent {
                    name: r.get(0)?,
                    workspace: r.get(1)?,
                    session: r.get(2)?,
                    health: r.get(3)?,
                    last_activity_at: r.get(4)?,
                    last_progress_at: r.get(5)?,
                })
            })
            .map_err(sql_err)?
            .collect::<rusqlite::Result<Vec<_>>>()
            .map_err(sql_err)?;
        v
    };
    if agents.is_empty() {
        return Err("no agents".into());
    }
    let config_dir =
        config_dir.ok_or("no user config directory (HOME unset) for the workspace config")?;
    let doc_home = original::doc_home_repo(&spec);
    let repos = spec
        .get("repos")
        .and_then(Value::as_array)
        .map_or(0, Vec::len);
    let mut notes = Vec::new();
    let mut workspaces: Vec<(String, PathBuf)> = Vec::new();
    let mut out_agents = Vec::new();
    let names_dup = |n: &str| agents.iter().filter(|a| a.name == n).count() > 1;
    for a in &agents {
        let ws = match workspaces.iter().find(|(n, _)| n == &a.workspace) {
            Some((_, p)) => p.clone(),
            None => {
                let p = original::workspace_path(config_dir, &a.workspace)?;
                workspaces.push((a.workspace.clone(), p.clone()));
                p
            }
        };
        let workdir = doc_repo_path(&ws, doc_home.as_deref(), repos);
        let cmd = original::agent_command(&spec, &a.name).unwrap_or_default();
        // Two workspaces may both have a "planner": keep the names apart.
        let name = if names_dup(&a.name) {
            format!("{}@{}", a.name, a.workspace)
        } else {
            a.name.clone()
        };
        if !crate::names::valid_id(&name) {
            return Err(format!("agent name {name:?} is not usable here"));
        }
        if a.session.is_empty() {
            return Err(format!("agent {} has no tmux session", a.name));
        }
        let activity = time(&a.last_activity_at);
        out_agents.push(AgentRow {
            run_id: id.to_string(),
            name,
            session: a.session.clone(),
            argv: original::wrapped_argv(&cmd),
            workdir: workdir.to_string_lossy().into_owned(),
            status: "running".into(),
            health: a.health.parse().unwrap_or(Health::Unknown),
            last_activity_at: activity,
            last_progress_at: time(&a.last_progress_at),
            exit_status: None,
            exit_signal: None,
            pane_id: None,
            started_at: activity.unwrap_or(now),
            signal: None,
            signal_at: None,
            // The original created these sessions for the agent: they are the agent's own
            // (a restart replaces the session, as the original's did).
            adopted: false,
            keep_dead_pane: true,
            resume: Default::default(),
        });
    }
    let (_, workspace) = workspaces
        .first()
        .cloned()
        .ok_or("no workspace".to_string())?;
    if workspaces.len() > 1 {
        notes.push(format!(
            "{} workspaces; signals and the changelog use the first ({})",
            workspaces.len(),
            workspace.display()
        ));
    }
    let mut state = OpState::default();
    if opt_table(conn, "operator_run_states") {
        let row: Option<(i64, String, String)> = conn
            .query_row(
                "SELECT COALESCE(restart_attempts, 0), COALESCE(last_restart_at, ''),
                        COALESCE(cooldown_until, '')
                 FROM operator_run_states WHERE run_id = ?1",
                [id],
                |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
            )
            .optional()
            .map_err(sql_err)?;
        if let Some((attempts, last, cooldown)) = row {
            state.restart_attempts = attempts.max(0);
            state.last_restart_at = time(&last);
            state.cooldown_until = time(&cooldown);
        }
    }
    let mut questions = Vec::new();
    if opt_table(conn, "guidance_requests") {
        let mut s = conn
            .prepare(
                "SELECT COALESCE(agent_name, ''), COALESCE(workspace_name, ''), question,
                        COALESCE(context_text, ''), COALESCE(created_at, '')
                 FROM guidance_requests WHERE run_id = ?1 AND status = 'pending' ORDER BY id",
            )
            .map_err(sql_err)?;
        let rows = s
            .query_map([id], |r| {
                Ok((
                    r.get::<_, String>(0)?,
                    r.get::<_, String>(1)?,
                    r.get::<_, String>(2)?,
                    r.get::<_, String>(3)?,
                    r.get::<_, String>(4)?,
                ))
            })
            .map_err(sql_err)?
            .collect::<rusqlite::Result<Vec<_>>>()
            .map_err(sql_err)?;
        for (agent, ws_name, question, context, created) in rows {
            let root = workspaces
                .iter()
                .find(|(n, _)| *n == ws_name)
                .map(|(_, p)| p.clone())
                .unwrap_or_else(|| workspace.clone());
            // The original answered into the doc repo when the request was there.
            let root = original_signal_root(&root, doc_home.as_deref());
            questions.push(Question {
                agent,
                root: root.to_string_lossy().into_owned(),
                question,
                context,
                created_at: time(&created).unwrap_or(now),
            });
        }
    }
    // The policy the original ran this run with: its spec's, else the project's, else the
    // workspace's `.metawsm/policy.json`.
    let policy_path = spec
        .get("policy_path")
        .and_then(Value::as_str)
        .map(PathBuf::from)
        .filter(|p| p.is_absolute() && p.is_file())
        .map(|p| p.to_string_lossy().into_owned())
        .or_else(|| {
            let mut dirs: Vec<&Path> = project.into_iter().collect();
            dirs.push(&workspace);
            crate::project_policy::find(&dirs)
        });
    let created_at = time(created).unwrap_or(now);
    let updated_at = time(updated).unwrap_or(created_at);
    Ok(Imported {
        run: RunRow {
            id: id.to_string(),
            tickets,
            workspace: workspace.to_string_lossy().into_owned(),
            doc_home_repo: doc_home,
            ticket_dir: None,
            tmux_socket: socket.map(str::to_string),
            policy_path,
            orphaned: None,
            tmux_server: None,
            status,
            message: "imported from metawsm".into(),
            created_at,
            updated_at,
            status_changed_at: updated_at,
        },
        agents: out_agents,
        state,
        questions,
        notes,
    })
}

/// Where a pending request's file lives: the doc repo if it holds one, else the workspace.
fn original_signal_root(ws: &Path, doc_home: Option<&str>) -> PathBuf {
    if let Some(repo) = doc_home {
        let p = ws.join(repo);
        if crate::signals::signal_path(&p, "guidance-request.json").is_file() {
            return p;
        }
    }
    ws.to_path_buf()
}

/// The agents' working directory, as the original's `resolveDocRepoPath`:
/// `<ws>/<doc-home repo>` when it is a directory, else the workspace.
fn doc_repo_path(ws: &Path, doc_home: Option<&str>, _repos: usize) -> PathBuf {
    match doc_home {
        Some(r) if !r.contains("..") && ws.join(r).is_dir() => ws.join(r),
        _ => ws.to_path_buf(),
    }
}

/// Registers one imported run, its agents (sessions as they are), its restart state and
/// its pending questions, in the caller's transaction. Shared registration for runs
/// whose tmux sessions already exist.
pub fn register(
    tx: &Tx<'_>,
    imp: &Imported,
    source: &str,
    from: &str,
    now: i64,
) -> Result<(), StoreError> {
    tx.insert_run(&imp.run)?;
    for a in &imp.agents {
        tx.insert_agent(a, now)?;
    }
    if imp.state != OpState::default() {
        tx.put_op_state(&imp.run.id, &imp.state, now)?;
    }
    for q in &imp.questions {
        tx.add_guidance(
            &imp.run.id,
            &q.agent,
            &q.root,
            &q.question,
            &q.context,
            q.created_at,
        )?;
    }
    tx.add_event(
        now,
        &NewEvent {
            run_id: Some(&imp.run.id),
            kind: "run_imported",
            to_state: imp.run.status.as_str(),
            message: &format!(
                "from {from}: {} agent(s) adopted, restart attempts {}, {} pending question(s)",
                imp.agents.len(),
                imp.state.restart_attempts,
                imp.questions.len()
            ),
            source,
            ..Default::default()
        },
    )?;
    Ok(())
}
