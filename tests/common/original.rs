//! A database in the original Go metawsm's schema (its `internal/store/sqlite.go` Init),
//! with its timestamp format (RFC 3339, local offset, "" for none).

use rusqlite::{params, Connection};
use std::path::Path;

pub const SCHEMA: &str = "
PRAGMA journal_mode=WAL;
CREATE TABLE IF NOT EXISTS schema_migrations (version INTEGER PRIMARY KEY, applied_at TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS runs (run_id TEXT PRIMARY KEY, status TEXT NOT NULL, created_at TEXT NOT NULL,
  updated_at TEXT NOT NULL, spec_json TEXT NOT NULL, policy_json TEXT NOT NULL, error_text TEXT NOT NULL DEFAULT '');
CREATE TABLE IF NOT EXISTS run_tickets (run_id TEXT NOT NULL, ticket TEXT NOT NULL, PRIMARY KEY (run_id, ticket));
CREATE TABLE IF NOT EXISTS steps (run_id TEXT NOT NULL, step_index INTEGER NOT NULL, name TEXT NOT NULL,
  kind TEXT NOT NULL, command_text TEXT NOT NULL, blocking INTEGER NOT NULL, ticket TEXT NOT NULL DEFAULT '',
  workspace_name TEXT NOT NULL DEFAULT '', agent_name TEXT NOT NULL DEFAULT '', status TEXT NOT NULL,
  error_text TEXT NOT NULL DEFAULT '', started_at TEXT NOT NULL DEFAULT '', finished_at TEXT NOT NULL DEFAULT '',
  PRIMARY KEY (run_id, step_index));
CREATE TABLE IF NOT EXISTS agents (run_id TEXT NOT NULL, agent_name TEXT NOT NULL, workspace_name TEXT NOT NULL,
  session_name TEXT NOT NULL, status TEXT NOT NULL, health_state TEXT NOT NULL,
  last_activity_at TEXT NOT NULL DEFAULT '', last_progress_at TEXT NOT NULL DEFAULT '',
  PRIMARY KEY (run_id, agent_name, workspace_name));
CREATE TABLE IF NOT EXISTS events (id INTEGER PRIMARY KEY AUTOINCREMENT, run_id TEXT NOT NULL,
  entity_type TEXT NOT NULL, entity_id TEXT NOT NULL, event_type TEXT NOT NULL, from_state TEXT NOT NULL DEFAULT '',
  to_state TEXT NOT NULL DEFAULT '', message TEXT NOT NULL DEFAULT '', created_at TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS run_briefs (run_id TEXT PRIMARY KEY, ticket TEXT NOT NULL, goal TEXT NOT NULL,
  scope TEXT NOT NULL, done_criteria TEXT NOT NULL, constraints_text TEXT NOT NULL, merge_intent TEXT NOT NULL,
  qa_json TEXT NOT NULL, created_at TEXT NOT NULL, updated_at TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS guidance_requests (id INTEGER PRIMARY KEY AUTOINCREMENT, run_id TEXT NOT NULL,
  workspace_name TEXT NOT NULL, agent_name TEXT NOT NULL, question TEXT NOT NULL,
  context_text TEXT NOT NULL DEFAULT '', answer_text TEXT NOT NULL DEFAULT '', status TEXT NOT NULL,
  created_at TEXT NOT NULL, answered_at TEXT NOT NULL DEFAULT '');
CREATE TABLE IF NOT EXISTS doc_sync_states (run_id TEXT NOT NULL, ticket TEXT NOT NULL, workspace_name TEXT NOT NULL,
  doc_home_repo TEXT NOT NULL DEFAULT '', doc_authority_mode TEXT NOT NULL DEFAULT '',
  doc_seed_mode TEXT NOT NULL DEFAULT '', status TEXT NOT NULL, revision TEXT NOT NULL DEFAULT '',
  error_text TEXT NOT NULL DEFAULT '', updated_at TEXT NOT NULL, PRIMARY KEY (run_id, ticket, workspace_name));
CREATE TABLE IF NOT EXISTS operator_run_states (run_id TEXT PRIMARY KEY, restart_attempts INTEGER NOT NULL DEFAULT 0,
  last_restart_at TEXT NOT NULL DEFAULT '', cooldown_until TEXT NOT NULL DEFAULT '', updated_at TEXT NOT NULL);
";

pub struct OriginalDb {
    pub conn: Connection,
}

impl OriginalDb {
    pub fn create(path: &Path) -> OriginalDb {
        if let Some(d) = path.parent() {
            std::fs::create_dir_all(d).expect("mkdir");
        }
        let conn = Connection::open(path).expect("open original db");
        conn.execute_batch(SCHEMA).expect("original schema");
        OriginalDb { conn }
    }

    /// A run with its tickets; `agents` = (name, workspace, session, command).
    pub fn run(
        &self,
        id: &str,
        status: &str,
        tickets: &[&str],
        spec_extra: serde_json::Value,
        agents: &[(&str, &str, &str, &str)],
    ) {
        let mut spec = serde_json::json!({
            "run_id": id, "mode": "bootstrap", "tickets": tickets, "repos": ["app"],
            "agents": agents.iter().map(|(n, _, _, c)| serde_json::json!({
                "name": n, "profile": "p", "runner": "shell", "skills": [], "command": c
            })).collect::<Vec<_>>(),
            "dry_run": false, "created_at": "2026-02-07T07:53:50-08:00"
        });
        if let (Some(s), Some(e)) = (spec.as_object_mut(), spec_extra.as_object()) {
            for (k, v) in e {
                s.insert(k.clone(), v.clone());
            }
        }
        self.conn
            .execute(
                "INSERT INTO runs VALUES (?1, ?2, '2026-02-07T07:53:50-08:00', '2026-02-07T08:10:00-08:00', ?3, '{}', '')",
                params![id, status, spec.to_string()],
            )
            .expect("run");
        for t in tickets {
            self.conn
                .execute("INSERT INTO run_tickets VALUES (?1, ?2)", params![id, t])
                .expect("ticket");
        }
        for (name, ws, session, _) in agents {
            self.conn
                .execute(
                    "INSERT INTO agents VALUES (?1, ?2, ?3, ?4, 'running', 'healthy', '2026-02-07T08:09:00-08:00', '')",
                    params![id, name, ws, session],
                )
                .expect("agent");
        }
    }

    pub fn op_state(&self, id: &str, attempts: i64, last: &str, cooldown: &str) {
        self.conn
            .execute(
                "INSERT OR REPLACE INTO operator_run_states VALUES (?1, ?2, ?3, ?4, ?3)",
                params![id, attempts, last, cooldown],
            )
            .expect("op state");
    }

    pub fn guidance(&self, id: &str, ws: &str, agent: &str, question: &str, status: &str) {
        self.conn
            .execute(
                "INSERT INTO guidance_requests(run_id, workspace_name, agent_name, question, context_text, status, created_at)
                 VALUES (?1, ?2, ?3, ?4, '{\"options\":[\"pg\",\"sqlite\"]}', ?5, '2026-02-07T08:05:00-08:00')",
                params![id, ws, agent, question, status],
            )
            .expect("guidance");
    }
}

/// The original's agent wrapper (`wrapAgentCommandForTmux`) as a tmux shell command.
pub fn wrapped(cmd: &str) -> String {
    format!(
        "bash -lc '{cmd}; status=$?; printf \"\\n[metawsm] agent command exited with status %s at %s\\n\" \"$status\" \"$(date -Iseconds)\"; exec bash'"
    )
}

/// `<config>/workspace-manager/workspaces/<name>.json` with its `path`.
pub fn workspace_config(config: &Path, name: &str, path: &Path) {
    let d = config.join("workspace-manager/workspaces");
    std::fs::create_dir_all(&d).expect("mkdir");
    std::fs::write(
        d.join(format!("{name}.json")),
        serde_json::json!({"name": name, "path": path}).to_string(),
    )
    .expect("workspace config");
}
