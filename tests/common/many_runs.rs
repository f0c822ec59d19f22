//! Many registered runs at once (hundreds), faster than `run start` one by one: rows
//! inserted in one transaction, sessions made in a few tmux calls.

use super::Env;

impl Env {
    /// Registers runs `bench-0000` … with one agent each (session `bench-NNNN-agent`)
    /// whose stored start command is `argv` (JSON, as stored) and which really runs
    /// `shell` in its pane. The database must exist (one `tick` creates it).
    pub fn register_many(&self, n: usize, argv: &str, shell: &str) {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .expect("clock")
            .as_secs() as i64;
        let ws = self.ws.to_string_lossy().into_owned();
        let mut c = rusqlite::Connection::open(&self.db).expect("open db");
        let tx = c.transaction().expect("tx");
        for i in 0..n {
            let run = format!("bench-{i:04}");
            let session = format!("bench-{i:04}-agent");
            tx.execute(
                "INSERT INTO runs(id, tickets, workspace, status, message, created_at, updated_at,
                                  status_changed_at)
                 VALUES (?1, '[\"T-1\"]', ?2, 'running', 'run started', ?3, ?3, ?3)",
                rusqlite::params![run, ws, now],
            )
            .expect("run");
            tx.execute(
                "INSERT INTO operator_run_states(run_id, updated_at) VALUES (?1, ?2)",
                rusqlite::params![run, now],
            )
            .expect("op state");
            tx.execute(
                "INSERT INTO agents(run_id, name, session, argv, workdir, status, health,
                                    last_activity_at, last_progress_at, started_at, updated_at)
                 VALUES (?1, 'agent', ?2, ?5, ?3, 'running', 'healthy', ?4, ?4, ?4, ?4)",
                rusqlite::params![run, session, ws, now, argv],
            )
            .expect("agent");
        }
        tx.commit().expect("commit");
        // tmux refuses one client message over ~16 KiB ("command too long"): batches of 50.
        let ids: Vec<usize> = (0..n).collect();
        for chunk in ids.chunks(50) {
            let mut args: Vec<String> = Vec::new();
            for &i in chunk {
                if !args.is_empty() {
                    args.push(";".into());
                }
                let session = format!("bench-{i:04}-agent");
                for a in ["new-session", "-d", "-s", &session, "-c", &ws, shell] {
                    args.push(a.to_string());
                }
            }
            let refs: Vec<&str> = args.iter().map(String::as_str).collect();
            let out = self.tmux(&refs);
            assert!(
                out.status.success(),
                "tmux new-session ×{}: {}",
                chunk.len(),
                String::from_utf8_lossy(&out.stderr)
            );
        }
    }
}
