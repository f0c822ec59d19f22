//! Shared harness: a private tmux server per test (socket in a temp dir, `-f /dev/null`),
//! a temp state DB and policy, and the real binary. Only ever kills the server it started.
#![allow(dead_code)]

pub mod elf;
pub mod many_runs;
pub mod original;
pub mod procs;

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

pub const BIN: &str = env!("CARGO_BIN_EXE_metawsm-tick");

/// Every environment variable the binary reads (`grep -rn 'env::var' src/`), removed from
/// both the binary's and the test tmux server's environment: a developer's own
/// `$TMUX`, `$METAWSM_DB`, `$XDG_STATE_HOME`… must never reach a test (agents inherit
/// the server's environment, and run `metawsm-tick signal` from inside it).
pub const ENV_READ: &[&str] = &[
    "TMUX",
    "TMUX_PANE",
    "METAWSM_DB",
    "METAWSM_POLICY",
    "METAWSM_TMUX_SOCKET",
    "METAWSM_RUN_ID",
    "METAWSM_AGENT",
    "XDG_STATE_HOME",
    "XDG_CONFIG_HOME",
];

fn clear_env(c: &mut Command) -> &mut Command {
    for k in ENV_READ {
        c.env_remove(k);
    }
    c
}

pub struct Env {
    pub dir: tempfile::TempDir,
    pub sock: PathBuf,
    pub db: PathBuf,
    pub policy: PathBuf,
    pub ws: PathBuf,
    /// Extra entries prepended to PATH for the binary (fake tmux/codex wrappers).
    pub path_prefix: Option<PathBuf>,
}

/// A policy with tiny thresholds so tests run in seconds; `extra` is merged on top.
pub fn fast_policy(extra: serde_json::Value) -> serde_json::Value {
    let mut base = serde_json::json!({
        "health": {"idle_seconds": 2, "activity_stalled_seconds": 4, "progress_stalled_seconds": 3600},
        "operator": {
            "unhealthy_confirmations": 2,
            "min_observation_gap_seconds": 1,
            "restart_budget": 3,
            "restart_cooldown_seconds": 2,
            "restart_cooldown_max_seconds": 8,
            "healthy_reset_seconds": 600,
            "stale_run_age_seconds": 3600,
            "tick_interval_seconds": 1,
            "llm": {"mode": "off"},
            "notify": {"tmux_message": false}
        }
    });
    merge(&mut base, extra);
    base
}

/// Merges `b` into `a`, key by key (objects recursively; anything else replaces).
pub fn merge(a: &mut serde_json::Value, b: serde_json::Value) {
    match (a, b) {
        (serde_json::Value::Object(a), serde_json::Value::Object(b)) => {
            for (k, v) in b {
                merge(a.entry(k).or_insert(serde_json::Value::Null), v);
            }
        }
        (a, b) => *a = b,
    }
}

impl Env {
    pub fn new() -> Env {
        Env::with_policy(fast_policy(serde_json::json!({})))
    }

    pub fn with_policy(policy: serde_json::Value) -> Env {
        let dir = tempfile::Builder::new()
            .prefix("mt")
            .tempdir_in("/tmp")
            .expect("tempdir");
        let sock = dir.path().join("sock");
        let ws = dir.path().join("ws");
        fs::create_dir_all(&ws).expect("ws");
        let env = Env {
            db: dir.path().join("state/state.db"),
            policy: dir.path().join("policy.json"),
            sock,
            ws,
            dir,
            path_prefix: None,
        };
        env.write_policy(&policy);
        env.start_server();
        env
    }

    /// Starts the private server on this env's socket, held up by a `keepalive` session
    /// (also after a kill: the same socket path, a new server instance, as a reboot).
    pub fn start_server(&self) {
        let out = self.tmux(&[
            "-f",
            "/dev/null",
            "new-session",
            "-d",
            "-s",
            "keepalive",
            "sleep 1000000",
        ]);
        assert!(
            out.status.success(),
            "start tmux: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    pub fn write_policy(&self, policy: &serde_json::Value) {
        fs::write(
            &self.policy,
            serde_json::to_string_pretty(policy).expect("json"),
        )
        .expect("policy");
    }

    pub fn tmux(&self, args: &[&str]) -> Output {
        let mut c = Command::new("tmux");
        clear_env(&mut c)
            .arg("-S")
            .arg(&self.sock)
            .args(args)
            .stdin(Stdio::null())
            .output()
            .expect("tmux")
    }

    pub fn tmux_out(&self, args: &[&str]) -> String {
        String::from_utf8_lossy(&self.tmux(args).stdout).into_owned()
    }

    /// The binary with this env's db, policy and socket, and a clean environment.
    pub fn cmd(&self, args: &[&str]) -> Command {
        let mut c = Command::new(BIN);
        clear_env(&mut c)
            .arg("--db")
            .arg(&self.db)
            .arg("--policy")
            .arg(&self.policy)
            .arg("--tmux-socket")
            .arg(&self.sock)
            .args(args)
            .env("HOME", self.dir.path())
            .stdin(Stdio::null());
        if let Some(p) = &self.path_prefix {
            let path = std::env::var("PATH").unwrap_or_default();
            c.env("PATH", format!("{}:{path}", p.display()));
        }
        c
    }

    pub fn run(&self, args: &[&str]) -> Output {
        self.cmd(args).output().expect("run binary")
    }

    /// Runs and asserts exit 0; returns stdout.
    pub fn ok(&self, args: &[&str]) -> String {
        let out = self.run(args);
        assert!(
            out.status.success(),
            "{args:?} failed ({:?}):\nstdout: {}\nstderr: {}",
            out.status.code(),
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// `run start` in the workspace with the given id and argv.
    pub fn start(&self, id: &str, argv: &[&str]) -> String {
        let ws = self.ws.to_string_lossy().into_owned();
        let mut args = vec![
            "run",
            "start",
            "--ticket",
            "T-1",
            "--workspace",
            &ws,
            "--id",
            id,
            "--session",
            id,
            "--",
        ];
        args.extend_from_slice(argv);
        self.ok(&args)
    }

    pub fn tick(&self) -> String {
        self.ok(&["tick"])
    }

    pub fn tick_json(&self) -> serde_json::Value {
        serde_json::from_str(&self.ok(&["tick", "--json"])).expect("tick json")
    }

    pub fn show(&self, id: &str) -> serde_json::Value {
        serde_json::from_str(&self.ok(&["run", "show", id, "--json"])).expect("show json")
    }

    pub fn sql(&self, query: &str) -> Vec<Vec<String>> {
        let c = rusqlite::Connection::open(&self.db).expect("open db");
        let mut stmt = c.prepare(query).expect("prepare");
        let n = stmt.column_count();
        let rows = stmt
            .query_map([], |r| {
                Ok((0..n)
                    .map(|i| match r.get_ref(i).expect("col") {
                        rusqlite::types::ValueRef::Null => "NULL".to_string(),
                        rusqlite::types::ValueRef::Integer(v) => v.to_string(),
                        rusqlite::types::ValueRef::Real(v) => v.to_string(),
                        rusqlite::types::ValueRef::Text(t) => {
                            String::from_utf8_lossy(t).into_owned()
                        }
                        rusqlite::types::ValueRef::Blob(_) => "<blob>".to_string(),
                    })
                    .collect())
            })
            .expect("query");
        rows.map(|r| r.expect("row")).collect()
    }

    pub fn health(&self, id: &str, agent: &str) -> String {
        let v = self.show(id);
        v["agents"]
            .as_array()
            .and_then(|a| a.iter().find(|x| x["name"] == agent))
            .map(|a| a["health"].as_str().unwrap_or("").to_string())
            .unwrap_or_default()
    }

    pub fn path(&self, rel: &str) -> PathBuf {
        self.dir.path().join(rel)
    }
}

impl Drop for Env {
    fn drop(&mut self) {
        // Only the server this test started, by its own socket.
        let _ = Command::new("tmux")
            .arg("-S")
            .arg(&self.sock)
            .arg("kill-server")
            .env_remove("TMUX")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
    }
}

/// Polls `f` every 50 ms until it returns Some or the deadline passes.
pub fn wait_for<T>(what: &str, limit: Duration, mut f: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + limit;
    loop {
        if let Some(v) = f() {
            return v;
        }
        if Instant::now() >= deadline {
            panic!("timed out after {limit:?} waiting for {what}");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

pub fn write_exec(path: &Path, body: &str) {
    use std::os::unix::fs::PermissionsExt;
    fs::write(path, body).expect("write script");
    fs::set_permissions(path, fs::Permissions::from_mode(0o755)).expect("chmod");
}

/// The real tmux binary, first on PATH.
pub fn which_tmux() -> PathBuf {
    let path = std::env::var_os("PATH").expect("PATH");
    std::env::split_paths(&path)
        .map(|d| d.join("tmux"))
        .find(|p| p.is_file())
        .expect("tmux on PATH")
}

impl Env {
    /// Puts a `tmux` wrapper first on the binary's PATH that appends each call's argv
    /// (one line, words joined by spaces) to the returned log, then runs the real tmux.
    /// Counting `respawn-pane` in it counts the restarts tmux really performed.
    pub fn log_tmux_calls(&mut self) -> PathBuf {
        self.tmux_wrapper("")
    }

    /// Like `log_tmux_calls`, with a shell `script` run after logging and before the real
    /// tmux: it may fail the call (`exit 1`) or hang it (`exec sleep 60`).
    pub fn tmux_wrapper(&mut self, script: &str) -> PathBuf {
        let dir = self.path("tmux-wrap");
        fs::create_dir_all(&dir).expect("mkdir");
        let log = self.path("tmux-calls.log");
        write_exec(
            &dir.join("tmux"),
            &format!(
                "#!/bin/sh\nprintf '%s\\n' \"$*\" >> '{}'\n{script}\nexec '{}' \"$@\"\n",
                log.display(),
                which_tmux().display()
            ),
        );
        self.path_prefix = Some(dir);
        log
    }

    /// Waits until tmux shows the session's pane dead, without ticking.
    pub fn wait_pane_dead(&self, session: &str) {
        let target = format!("={session}:");
        wait_for("pane dead", Duration::from_secs(30), || {
            (self
                .tmux_out(&["display-message", "-p", "-t", &target, "#{pane_dead}"])
                .trim()
                == "1")
                .then_some(())
        });
    }

    /// Waits until tmux reports the exit status of the dead pane of `session`. Under
    /// load tmux can miss an exit until its reaper is woken (docs/testing.md); a dry-run
    /// tick meanwhile wakes it, as any tick does, and records nothing.
    pub fn wait_exit_status(&self, session: &str) -> String {
        let target = format!("={session}:");
        wait_for("exit status in tmux", Duration::from_secs(30), || {
            self.ok(&["tick", "--dry-run"]);
            let st = self.tmux_out(&[
                "display-message",
                "-p",
                "-t",
                &target,
                "#{pane_dead_status}",
            ]);
            let st = st.trim();
            (!st.is_empty()).then(|| st.to_string())
        })
    }

    /// Attaches a real client to this server: an outer test server runs `tmux attach` in
    /// a pane. Keep the returned Env alive as long as the client is needed.
    pub fn attach_client(&self) -> Env {
        let outer = Env::new();
        let attach = format!(
            "env -u TMUX tmux -S '{}' attach -t keepalive",
            self.sock.display()
        );
        let out = outer.tmux(&[
            "new-session",
            "-d",
            "-x",
            "150",
            "-y",
            "8",
            "-s",
            "view",
            &attach,
        ]);
        assert!(
            out.status.success(),
            "outer: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        wait_for("a client attached", Duration::from_secs(20), || {
            (!self
                .tmux_out(&["list-clients", "-F", "#{client_name}"])
                .trim()
                .is_empty())
            .then_some(())
        });
        outer
    }

    /// Takes the state lock as a long tick would; released when the file is dropped.
    pub fn hold_lock(&self) -> fs::File {
        let mut p = self.db.clone().into_os_string();
        p.push(".lock");
        let f = fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(PathBuf::from(p))
            .expect("lock file");
        f.lock().expect("hold the state lock");
        f
    }

    /// True while another process holds the state lock.
    pub fn lock_held(&self) -> bool {
        let mut p = self.db.clone().into_os_string();
        p.push(".lock");
        let Ok(f) = fs::OpenOptions::new()
            .read(true)
            .write(true)
            .open(PathBuf::from(p))
        else {
            return false;
        };
        match f.try_lock() {
            Ok(()) => {
                let _ = f.unlock();
                false
            }
            Err(_) => true,
        }
    }
}

/// Occurrences of `word` in the file (0 when it does not exist).
pub fn count_in(path: &Path, word: &str) -> usize {
    fs::read_to_string(path)
        .map(|s| s.matches(word).count())
        .unwrap_or(0)
}

/// Polls the number of lines of `file` containing `word` until it reaches `expected`
/// (or panics at `limit`), then watches it for a further `quiet` period and asserts it
/// did not grow: a late duplicate is caught. Panics show the file.
pub fn lines_exactly_after_quiet(
    file: &Path,
    word: &str,
    expected: usize,
    limit: Duration,
    quiet: Duration,
) {
    let read = || fs::read_to_string(file).unwrap_or_default();
    let count = || read().lines().filter(|l| l.contains(word)).count();
    let deadline = Instant::now() + limit;
    loop {
        let n = count();
        assert!(
            n <= expected,
            "{n} > {expected} lines with {word:?}:\n{}",
            read()
        );
        if n == expected {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "{n} lines with {word:?} after {limit:?}, want {expected}:\n{}",
            read()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    let until = Instant::now() + quiet;
    while Instant::now() < until {
        std::thread::sleep(Duration::from_millis(100));
        assert_eq!(
            count(),
            expected,
            "lines with {word:?} grew during the quiet period:\n{}",
            read()
        );
    }
}

/// Unix seconds of a UTC RFC 3339 time as the binary prints it (`2026-11-25T10:15:00Z`),
/// parsed in full so that a gap across midnight or a month end is right.
pub fn rfc3339_secs(s: &str) -> i64 {
    let n = |r: std::ops::Range<usize>| -> i64 {
        s.get(r)
            .and_then(|t| t.parse().ok())
            .unwrap_or_else(|| panic!("not an RFC 3339 UTC time: {s:?}"))
    };
    assert!(
        s.len() == 20 && s.ends_with('Z'),
        "not an RFC 3339 UTC time: {s:?}"
    );
    let (y, m, d) = (n(0..4), n(5..7), n(8..10));
    // Days from civil (Howard Hinnant's algorithm).
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let doy = (153 * ((m + 9) % 12) + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146097 + doe - 719468;
    days * 86400 + n(11..13) * 3600 + n(14..16) * 60 + n(17..19)
}

/// (intent, reason) of one run in a `tick --json` report ("" when absent).
pub fn intent(tick: &serde_json::Value, run: &str) -> (String, String) {
    let r = tick["runs"]
        .as_array()
        .and_then(|a| a.iter().find(|r| r["run_id"] == run))
        .cloned()
        .unwrap_or(serde_json::Value::Null);
    (
        r["intent"].as_str().unwrap_or("").to_string(),
        r["reason"].as_str().unwrap_or("").to_string(),
    )
}
