//! The world every figure runs in: the test harness's private tmux server
//! (`tests/common`) holding N registered runs whose agents are live processes, plus a
//! counting `tmux` wrapper the bench puts on PATH only when it counts spawns.

use crate::common::{merge, Env};
use crate::report::timed;
use std::ffi::OsStr;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

const MANIFEST_DIR: &str = env!("CARGO_MANIFEST_DIR");
/// Used only if `src/tmux.rs` cannot be read; the live constant is parsed from there.
const PANE_FORMAT_FALLBACK: &str = "#{session_name}\t#{window_id}\t#{pane_id}\t#{pane_pid}\t#{pane_dead}\t#{pane_dead_status}\t#{pane_dead_signal}\t#{window_activity}\t#{pane_title}\t#{pane_current_command}";

pub fn manifest_path(rel: &str) -> PathBuf {
    Path::new(MANIFEST_DIR).join(rel)
}

/// The observation format the binary uses, read from the source so the two never drift.
pub fn pane_format() -> String {
    let src = fs::read_to_string(manifest_path("src/tmux.rs")).unwrap_or_default();
    src.lines()
        .find(|l| l.contains("pub const PANE_FORMAT: &str ="))
        .and_then(|l| {
            let start = l.find('"')? + 1;
            let end = l.rfind('"')?;
            (end > start).then(|| l[start..end].replace("\\t", "\t"))
        })
        .unwrap_or_else(|| PANE_FORMAT_FALLBACK.to_string())
}

/// Thresholds far away (nothing becomes due while the bench runs); `extra` on top.
pub fn bench_policy(extra: serde_json::Value) -> serde_json::Value {
    let mut p = serde_json::json!({
        "health": {
            "idle_seconds": 86400,
            "activity_stalled_seconds": 86400,
            "progress_stalled_seconds": 86400
        },
        "operator": {
            "tick_interval_seconds": 86400,
            "stale_run_age_seconds": 604800,
            "llm": {"mode": "off"},
            "notify": {"tmux_message": false}
        }
    });
    merge(&mut p, extra);
    p
}

/// The binary measured: `METAWSM_BENCH_BIN` (main.rs sets it to what install.sh
/// installs), else cargo's bench build.
pub fn bench_bin() -> String {
    std::env::var("METAWSM_BENCH_BIN").unwrap_or_else(|_| crate::common::BIN.to_string())
}

/// A copy of `c` (arguments and environment) running `program` with `before` first.
pub fn with_program(c: &Command, program: &OsStr, before: &[&OsStr]) -> Command {
    let mut n = Command::new(program);
    n.args(before).args(c.get_args());
    for (k, v) in c.get_envs() {
        match v {
            Some(v) => n.env(k, v),
            None => n.env_remove(k),
        };
    }
    n
}

pub struct World {
    pub env: Env,
    pub real_tmux: PathBuf,
    /// Directory holding the counting `tmux` wrapper; prepended to PATH when `counting`.
    pub wrap: PathBuf,
    /// One line per tmux spawn through the wrapper (its argv joined by spaces).
    count_file: PathBuf,
    /// The argv of the last spawn through the wrapper, one argument per line.
    args_file: PathBuf,
    /// Extra environment for the binary (fake LLM settings).
    pub extra_env: Vec<(String, String)>,
}

impl World {
    pub fn new(n: usize, policy: &serde_json::Value, real_tmux: &Path) -> World {
        World::with_agents(
            n,
            policy,
            real_tmux,
            r#"["sleep","1000000"]"#,
            "sleep 1000000",
        )
    }

    /// N runs whose agents have the start command `argv` (JSON, as stored) and really
    /// run `shell` in their panes.
    pub fn with_agents(
        n: usize,
        policy: &serde_json::Value,
        real_tmux: &Path,
        argv: &str,
        shell: &str,
    ) -> World {
        let mut env = Env::with_policy(policy.clone());
        let args_file = env.path("tmux-args");
        let count_file = env.tmux_wrapper(&format!(
            "printf '%s\\n' \"$@\" > '{}'",
            args_file.display()
        ));
        // Only counted commands go through the wrapper: it costs a shell per spawn.
        let wrap = env.path_prefix.take().expect("the wrapper's directory");
        let w = World {
            env,
            real_tmux: real_tmux.to_path_buf(),
            wrap,
            count_file,
            args_file,
            extra_env: Vec::new(),
        };
        // A tick with no runs creates and migrates the database without calling tmux
        // (with the binary measured, which may be an older build).
        timed(&mut w.cmd(&["tick"], false));
        if n > 0 {
            w.env.register_many(n, argv, shell);
        }
        // Two warm-up ticks: the first records pane ids, the second must change nothing.
        // LLM off here, so no worker starts before a scenario sets its environment.
        for _ in 0..2 {
            timed(&mut w.cmd(&["tick", "--llm-mode", "off"], false));
        }
        w
    }

    /// The pid of this world's tmux server.
    pub fn server_pid(&self) -> i32 {
        self.env
            .tmux_out(&["display-message", "-p", "#{pid}"])
            .trim()
            .parse()
            .expect("server pid")
    }

    /// The tmux server's CPU time so far (ns, `/proc/<pid>/schedstat`: exact, where
    /// `/proc/<pid>/stat` counts clock ticks of 10 ms), read once the server has settled:
    /// a request's last turns (the client's EOF) run after the client exits. None off
    /// Linux.
    pub fn server_cpu_ns(pid: i32) -> Option<u64> {
        let read = || -> Option<u64> {
            std::fs::read_to_string(format!("/proc/{pid}/schedstat"))
                .ok()?
                .split_whitespace()
                .next()?
                .parse()
                .ok()
        };
        let mut last = read()?;
        for _ in 0..100 {
            std::thread::sleep(std::time::Duration::from_micros(300));
            let now = read()?;
            if now == last {
                return Some(now);
            }
            last = now;
        }
        Some(last)
    }

    /// The real tmux on this world's server, for timing a bare query.
    pub fn tmux(&self) -> Command {
        let mut c = Command::new(&self.real_tmux);
        c.arg("-S").arg(&self.env.sock).env_remove("TMUX");
        c
    }

    pub fn tmux_ok(&self, args: &[&str]) {
        let out = self.env.tmux(args);
        assert!(
            out.status.success(),
            "tmux {:?}…: {}",
            &args[..args.len().min(8)],
            String::from_utf8_lossy(&out.stderr)
        );
    }

    /// The binary against this world; `counting` puts the tmux wrapper first on PATH.
    pub fn cmd(&self, args: &[&str], counting: bool) -> Command {
        let mut c = self.env.cmd(args);
        // `METAWSM_BENCH_BIN`: measure another build (an older one) with the same harness.
        if let Some(bin) = std::env::var_os("METAWSM_BENCH_BIN") {
            c = with_program(&c, &bin, &[]);
        }
        for (k, v) in &self.extra_env {
            c.env(k, v);
        }
        if counting {
            let path = std::env::var("PATH").unwrap_or_default();
            c.env("PATH", format!("{}:{path}", self.wrap.display()));
        }
        c
    }

    /// The `-F` format of the last `list-panes` a counted command ran: the tick's own.
    pub fn observed_format(&self) -> Option<String> {
        let args = fs::read_to_string(&self.args_file).ok()?;
        let args: Vec<&str> = args.lines().collect();
        let lp = args.iter().position(|a| *a == "list-panes")?;
        let f = args[lp..].iter().position(|a| *a == "-F")?;
        args.get(lp + f + 1).map(|s| s.to_string())
    }

    pub fn reset_count(&self) {
        let _ = fs::remove_file(&self.count_file);
    }

    pub fn tmux_spawns(&self) -> Vec<String> {
        fs::read_to_string(&self.count_file)
            .unwrap_or_default()
            .lines()
            .map(str::to_string)
            .collect()
    }

    /// The bench's own connection, closed as the binary closes its own: without folding
    /// the WAL into the database. SQLite's default close would fold and delete it, so
    /// every tick measured after a bench read would start without a WAL and pay for one.
    pub fn db(&self) -> rusqlite::Connection {
        let c = rusqlite::Connection::open(&self.env.db).expect("open db");
        c.set_db_config(
            rusqlite::config::DbConfig::SQLITE_DBCONFIG_NO_CKPT_ON_CLOSE,
            true,
        )
        .expect("no checkpoint on close");
        c
    }

    /// The first column of the first row of `q`, as an integer (0 when none).
    pub fn sql_i64(&self, q: &str) -> i64 {
        self.db()
            .query_row(q, [], |r| r.get::<_, Option<i64>>(0))
            .ok()
            .flatten()
            .unwrap_or(0)
    }

    pub fn last_full_tick(&self) -> i64 {
        self.sql_i64("SELECT CAST(value AS INTEGER) FROM meta WHERE key = 'last_full_tick'")
    }
}
