//! Performance benchmarks for metawsm-tick (docs/performance.md). Run with
//!
//! ```text
//! cargo bench --bench perf              # full run, a few minutes on 2 cores
//! cargo bench --bench perf -- --quick   # fewer iterations, about a minute
//! cargo bench --bench perf -- --strict  # exit 1 when a goal is missed
//! cargo bench --bench perf -- --screen  # only the screen-reading figures
//! cargo bench --bench perf -- --idle    # idle cost with the plugin loaded (10 min; 1 with --quick)
//! cargo bench --bench perf -- --scale   # run start, run list and the hooks at N = 1 and 500
//! cargo bench --bench perf -- --status  # only `status` at cadence as a tmux status job (1,000 calls)
//! ```
//!
//! Peak RSS comes from `/usr/bin/time -v` when present, else from `wait4`'s rusage
//! (`METAWSM_BENCH_NO_GNU_TIME=1` forces the latter).
//!
//! Cargo builds the binary with the bench profile (= release: LTO, stripped) before this
//! runs, and passes its path in `CARGO_BIN_EXE_metawsm-tick`. Every measurement runs
//! against a private tmux server (`tmux -S <tempdir>/sock -f /dev/null`) holding N
//! registered runs whose agents are live `sleep` processes; that server is killed by its
//! socket at the end and nothing else is touched. Each figure is a wall-clock time of a
//! whole process (spawn → exit) taken from this process with `std::process::Command`.
//! Ratios compare medians measured interleaved in the same run, so machine noise hits
//! both sides alike. The goals (PASS/MISS) are measured at real cadence: each sampled
//! tick comes at least one second after the last one, so it commits new state.

use std::fmt::Write as _;
use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

mod scale;

const BIN: &str = env!("CARGO_BIN_EXE_metawsm-tick");
const MANIFEST_DIR: &str = env!("CARGO_MANIFEST_DIR");
/// Used only if `src/tmux.rs` cannot be read; the live constant is parsed from there.
const PANE_FORMAT_FALLBACK: &str = "#{session_name}\t#{window_id}\t#{pane_id}\t#{pane_pid}\t#{pane_dead}\t#{pane_dead_status}\t#{pane_dead_signal}\t#{window_activity}\t#{pane_title}\t#{pane_current_command}";

struct Opts {
    quick: bool,
    strict: bool,
    /// `--screen`: only the screen-reading figures.
    screen_only: bool,
    /// `--idle`: only the idle cost (10 minutes by default).
    idle: bool,
    /// `--scale`: only the per-command costs against N (benches/scale).
    scale: bool,
    /// `--status`: only `status` at cadence (1,000 calls even with --quick).
    status_only: bool,
}

impl Opts {
    fn parse() -> Opts {
        let mut o = Opts {
            quick: false,
            strict: false,
            screen_only: false,
            idle: false,
            scale: false,
            status_only: false,
        };
        // cargo passes `--bench`; anything else unknown is ignored too (filters etc.).
        for a in std::env::args().skip(1) {
            match a.as_str() {
                "--quick" => o.quick = true,
                "--strict" => o.strict = true,
                "--screen" => o.screen_only = true,
                "--idle" => o.idle = true,
                "--scale" => o.scale = true,
                "--status" => o.status_only = true,
                _ => {}
            }
        }
        o
    }

    fn iters(&self, full: usize, quick: usize) -> usize {
        if self.quick {
            quick
        } else {
            full
        }
    }
}

// ---- statistics ---------------------------------------------------------------------

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

/// Nearest-rank percentile (p in 0..=100) of durations in milliseconds.
fn pct(samples: &[f64], p: f64) -> f64 {
    assert!(!samples.is_empty(), "no samples");
    let mut v = samples.to_vec();
    v.sort_by(|a, b| a.total_cmp(b));
    let rank = ((p / 100.0) * v.len() as f64).ceil() as usize;
    v[rank.clamp(1, v.len()) - 1]
}

fn median(samples: &[f64]) -> f64 {
    let mut v = samples.to_vec();
    v.sort_by(|a, b| a.total_cmp(b));
    let n = v.len();
    if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    }
}

// ---- helpers ------------------------------------------------------------------------

fn which(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|d| d.join(name))
        .find(|p| p.is_file())
}

fn first_line(cmd: &str, args: &[&str]) -> String {
    Command::new(cmd)
        .args(args)
        .stdin(Stdio::null())
        .output()
        .ok()
        .map(|o| {
            String::from_utf8_lossy(&o.stdout)
                .lines()
                .next()
                .unwrap_or("")
                .trim()
                .to_string()
        })
        .unwrap_or_else(|| "unknown".into())
}

/// The observation format the binary uses, read from the source so the two never drift.
fn pane_format() -> String {
    let src = fs::read_to_string(Path::new(MANIFEST_DIR).join("src/tmux.rs")).unwrap_or_default();
    src.lines()
        .find(|l| l.contains("pub const PANE_FORMAT: &str ="))
        .and_then(|l| {
            let start = l.find('"')? + 1;
            let end = l.rfind('"')?;
            (end > start).then(|| l[start..end].replace("\\t", "\t"))
        })
        .unwrap_or_else(|| PANE_FORMAT_FALLBACK.to_string())
}

fn write_exec(path: &Path, body: &str) {
    fs::write(path, body).expect("write script");
    fs::set_permissions(path, fs::Permissions::from_mode(0o755)).expect("chmod");
}

/// Runs `c` to completion with output discarded; panics with its stderr on failure.
fn timed(c: &mut Command) -> f64 {
    c.stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    let t = Instant::now();
    let out = c.output().expect("spawn");
    let d = t.elapsed();
    assert!(
        out.status.success(),
        "{c:?} failed ({:?}): {}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    ms(d)
}

// ---- the world: a private tmux server with N live agents ---------------------------

struct World {
    dir: tempfile::TempDir,
    sock: PathBuf,
    db: PathBuf,
    policy: PathBuf,
    ws: PathBuf,
    real_tmux: PathBuf,
    /// Directory holding the counting `tmux` wrapper; prepended to PATH when `counting`.
    wrap: PathBuf,
    count_file: PathBuf,
    env: Vec<(String, String)>,
}

fn bench_policy(extra: serde_json::Value) -> serde_json::Value {
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

fn merge(a: &mut serde_json::Value, b: serde_json::Value) {
    match (a, b) {
        (serde_json::Value::Object(a), serde_json::Value::Object(b)) => {
            for (k, v) in b {
                merge(a.entry(k).or_insert(serde_json::Value::Null), v);
            }
        }
        (a, b) => *a = b,
    }
}

impl World {
    fn new(n: usize, policy: &serde_json::Value, real_tmux: &Path) -> World {
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
    fn with_agents(
        n: usize,
        policy: &serde_json::Value,
        real_tmux: &Path,
        argv: &str,
        shell: &str,
    ) -> World {
        let dir = tempfile::Builder::new()
            .prefix("mtperf")
            .tempdir_in("/tmp")
            .expect("tempdir");
        let ws = dir.path().join("ws");
        fs::create_dir_all(&ws).expect("ws");
        let wrap = dir.path().join("wrap");
        fs::create_dir_all(&wrap).expect("wrap");
        let count_file = dir.path().join("tmux-count");
        write_exec(
            &wrap.join("tmux"),
            &format!(
                "#!/bin/sh\necho \"$*\" >> '{}'\nprintf '%s\\n' \"$@\" > '{}'\nexec '{}' \"$@\"\n",
                count_file.display(),
                dir.path().join("tmux-args").display(),
                real_tmux.display()
            ),
        );
        let w = World {
            sock: dir.path().join("sock"),
            db: dir.path().join("state/state.db"),
            policy: dir.path().join("policy.json"),
            ws,
            real_tmux: real_tmux.to_path_buf(),
            wrap,
            count_file,
            env: Vec::new(),
            dir,
        };
        fs::write(
            &w.policy,
            serde_json::to_string_pretty(policy).expect("json"),
        )
        .expect("policy");
        w.tmux_ok(&[
            "-f",
            "/dev/null",
            "new-session",
            "-d",
            "-s",
            "keepalive",
            "sleep 1000000",
        ]);
        // A tick with no runs creates and migrates the database without calling tmux.
        timed(&mut w.cmd(&["tick"], false));
        w.register(n, argv, shell);
        // Two warm-up ticks: the first records pane ids, the second must change nothing.
        // LLM off here, so no worker starts before a scenario sets its environment.
        for _ in 0..2 {
            timed(&mut w.cmd(&["tick", "--llm-mode", "off"], false));
        }
        w
    }

    fn tmux(&self) -> Command {
        let mut c = Command::new(&self.real_tmux);
        c.arg("-S").arg(&self.sock).env_remove("TMUX");
        c
    }

    fn tmux_ok(&self, args: &[&str]) {
        let out = self
            .tmux()
            .args(args)
            .stdin(Stdio::null())
            .output()
            .expect("tmux");
        assert!(
            out.status.success(),
            "tmux {:?}…: {}",
            &args[..args.len().min(8)],
            String::from_utf8_lossy(&out.stderr)
        );
    }

    /// N runs with one agent each: rows inserted directly, sessions made in one tmux call.
    fn register(&self, n: usize, argv: &str, shell: &str) {
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
        if n == 0 {
            return;
        }
        // tmux refuses one client message over ~16 KiB ("command too long"): batches of 50.
        let ids: Vec<usize> = (0..n).collect();
        for chunk in ids.chunks(50) {
            let mut args: Vec<String> = Vec::new();
            for &i in chunk {
                if !args.is_empty() {
                    args.push(";".into());
                }
                for a in [
                    "new-session",
                    "-d",
                    "-s",
                    &format!("bench-{i:04}-agent"),
                    "-c",
                    &ws,
                    shell,
                ] {
                    args.push(a.to_string());
                }
            }
            let refs: Vec<&str> = args.iter().map(String::as_str).collect();
            self.tmux_ok(&refs);
        }
    }

    /// The binary against this world; `counting` puts the tmux wrapper first on PATH.
    fn cmd(&self, args: &[&str], counting: bool) -> Command {
        // `METAWSM_BENCH_BIN`: measure another build (an older one) with the same harness.
        let bin = std::env::var("METAWSM_BENCH_BIN").unwrap_or_else(|_| BIN.to_string());
        let mut c = Command::new(bin);
        c.arg("--db")
            .arg(&self.db)
            .arg("--policy")
            .arg(&self.policy)
            .arg("--tmux-socket")
            .arg(&self.sock)
            .args(args)
            .env_remove("TMUX")
            .env_remove("TMUX_PANE")
            .env_remove("METAWSM_DB")
            .env_remove("METAWSM_POLICY")
            .env_remove("METAWSM_TMUX_SOCKET")
            .env("HOME", self.dir.path());
        for (k, v) in &self.env {
            c.env(k, v);
        }
        if counting {
            let path = std::env::var("PATH").unwrap_or_default();
            c.env("PATH", format!("{}:{path}", self.wrap.display()));
        }
        c
    }

    /// The `-F` format of the last `list-panes` a counted command ran: the tick's own.
    fn observed_format(&self) -> Option<String> {
        let args = fs::read_to_string(self.dir.path().join("tmux-args")).ok()?;
        let args: Vec<&str> = args.lines().collect();
        let lp = args.iter().position(|a| *a == "list-panes")?;
        let f = args[lp..].iter().position(|a| *a == "-F")?;
        args.get(lp + f + 1).map(|s| s.to_string())
    }

    fn reset_count(&self) {
        let _ = fs::remove_file(&self.count_file);
    }

    fn tmux_spawns(&self) -> Vec<String> {
        fs::read_to_string(&self.count_file)
            .unwrap_or_default()
            .lines()
            .map(str::to_string)
            .collect()
    }

    fn sql_i64(&self, q: &str) -> i64 {
        let c = rusqlite::Connection::open(&self.db).expect("open db");
        c.query_row(q, [], |r| r.get(0)).expect("query")
    }
}

impl Drop for World {
    fn drop(&mut self) {
        // Only this world's server, by its own socket.
        let _ = self
            .tmux()
            .arg("kill-server")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
    }
}

// ---- report -------------------------------------------------------------------------

struct Row {
    metric: String,
    value: String,
    target: String,
    pass: Option<bool>,
}

fn row(metric: &str, value: String, target: &str, pass: Option<bool>) -> Row {
    Row {
        metric: metric.into(),
        value,
        target: target.into(),
        pass,
    }
}

fn machine_info(real_tmux: &Path) -> String {
    let cpu = fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split_once(':'))
                .map(|(_, v)| v.trim().to_string())
        })
        .unwrap_or_else(|| "unknown".into());
    let nproc = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(0);
    let rustc = std::env::var("RUSTC").unwrap_or_else(|_| "rustc".into());
    let load = fs::read_to_string("/proc/loadavg").unwrap_or_default();
    let mut s = String::new();
    let _ = writeln!(s, "- nproc: {nproc}");
    let _ = writeln!(s, "- CPU: {cpu}");
    let _ = writeln!(
        s,
        "- tmux: {}",
        first_line(&real_tmux.to_string_lossy(), &["-V"])
    );
    let _ = writeln!(s, "- rustc: {}", first_line(&rustc, &["-V"]));
    let _ = writeln!(s, "- kernel: {}", first_line("uname", &["-sr"]));
    let _ = writeln!(
        s,
        "- load average at start: {}",
        load.split_whitespace()
            .take(3)
            .collect::<Vec<_>>()
            .join(" ")
    );
    s
}

// ---- measurements -------------------------------------------------------------------

/// 0. What any process costs from this harness: the floor under every figure below.
fn bench_floor(o: &Opts, rows: &mut Vec<Row>) {
    let iters = o.iters(500, 200);
    let (mut t, mut v) = (Vec::new(), Vec::new());
    for _ in 0..iters {
        t.push(timed(&mut Command::new("true")));
        v.push(timed(Command::new(BIN).arg("--version")));
    }
    rows.push(row(
        "process floor: `true` / `metawsm-tick --version`: median",
        format!("{:.2} / {:.2} ms", median(&t), median(&v)),
        "reported",
        None,
    ));
}

/// 1. `status` when no tick is due: no tmux process may be spawned.
fn bench_status_cached(o: &Opts, w: &World, n: usize, rows: &mut Vec<Row>) {
    let iters = o.iters(500, 200);
    let seg = w
        .cmd(&["status", "--format", "plain"], false)
        .output()
        .expect("status");
    let seg = String::from_utf8_lossy(&seg.stdout).trim().to_string();
    assert!(
        !seg.contains("metawsm:!"),
        "status shows an error marker: {seg:?}"
    );
    w.reset_count();
    let mut t = Vec::with_capacity(iters);
    for _ in 0..iters {
        t.push(timed(&mut w.cmd(&["status"], true)));
    }
    let spawned = w.tmux_spawns();
    assert!(
        spawned.is_empty(),
        "cached status spawned tmux {} times: {:?}",
        spawned.len(),
        &spawned[..spawned.len().min(3)]
    );
    let m = median(&t);
    rows.push(row(
        &format!("status, cached path (N={n}, {iters} runs): median"),
        format!("{m:.2} ms (p95 {:.2}, tmux spawns 0)", pct(&t, 95.0)),
        "≤ 2 ms, 0 tmux",
        Some(m <= 2.0),
    ));
    println!(
        "N={n}: status cached: segment {seg:?}, median {m:.2} ms over {iters} runs, 0 tmux spawns"
    );
}

struct TickFigures {
    n: usize,
    tick: Vec<f64>,
    lp: Vec<f64>,
}

/// 2. A full tick with nothing to do, interleaved with bare `list-panes -a`.
fn bench_ticks(o: &Opts, w: &World, n: usize, fmt: &str) -> TickFigures {
    // Exactly one tmux spawn per tick, counted through the wrapper.
    let counted = 5;
    w.reset_count();
    for _ in 0..counted {
        timed(&mut w.cmd(&["tick"], true));
    }
    let spawned = w.tmux_spawns();
    let fmt = w.observed_format().unwrap_or_else(|| fmt.to_string());
    let fmt = fmt.as_str();
    assert_eq!(
        spawned.len(),
        counted,
        "N={n}: expected one tmux spawn per tick, got {spawned:#?}"
    );
    // Nothing was due: no action, no escalation.
    let actions = w.sql_i64(
        "SELECT count(*) FROM events WHERE kind IN ('restart','stop','decision','health')",
    );
    assert_eq!(actions, 0, "N={n}: the bench world is not quiet");
    let iters = if n >= 500 {
        o.iters(40, 15)
    } else {
        o.iters(100, 30)
    };
    let mut f = TickFigures {
        n,
        tick: Vec::with_capacity(iters),
        lp: Vec::with_capacity(iters),
    };
    for _ in 0..iters {
        f.tick.push(timed(&mut w.cmd(&["tick"], false)));
        f.lp.push(timed(w.tmux().args(["list-panes", "-a", "-F", fmt])));
    }
    println!(
        "N={n}: tick median {:.2} ms, list-panes median {:.2} ms over {iters} interleaved pairs",
        median(&f.tick),
        median(&f.lp)
    );
    f
}

/// 5. The cost of reading quiet interactive agents' screens (docs/screen.md).
///
/// A tick over ten runs whose agents are interactive (`codex`) and quiet at their prompt,
/// against the same tick where the quiet agents are batch programs (no screen read),
/// interleaved; and the cached status path over the interactive world (still no tmux).
fn bench_quiet_interactive(o: &Opts, real_tmux: &Path, rows: &mut Vec<Row>) {
    let n = 10;
    // Quiet after 1 s, never stalled: every tick reads (and keeps) the same screens.
    let policy = bench_policy(serde_json::json!({"health": {"idle_seconds": 1}}));
    let screen =
        "printf '› Ask Codex to do anything\\n\\n  ? for shortcuts\\n'; exec sleep 1000000";
    let with = World::with_agents(n, &policy, real_tmux, r#"["codex"]"#, screen);
    let without = World::with_agents(n, &policy, real_tmux, r#"["sleep","1000000"]"#, screen);
    std::thread::sleep(Duration::from_millis(1500));
    for w in [&with, &without] {
        for _ in 0..2 {
            timed(&mut w.cmd(&["tick"], false));
        }
    }
    let idle = with.sql_i64(
        "SELECT count(*) FROM events WHERE kind = 'health' AND message LIKE 'idle at its prompt%'",
    );
    assert_eq!(
        idle, n as i64,
        "every interactive agent read as idle at its prompt"
    );
    // Spawns per tick: 1 observation + 1 capture with screens, 1 without.
    for (w, want) in [(&with, 2), (&without, 1)] {
        w.reset_count();
        for _ in 0..3 {
            timed(&mut w.cmd(&["tick"], true));
        }
        let spawned = w.tmux_spawns();
        assert_eq!(spawned.len(), 3 * want, "tmux spawns: {spawned:#?}");
    }
    let captures = with
        .tmux_spawns()
        .iter()
        .filter(|l| l.contains("capture-pane"))
        .count();
    assert_eq!(captures, 3, "one capture spawn per tick");
    let iters = o.iters(200, 50);
    let (mut a, mut b) = (Vec::with_capacity(iters), Vec::with_capacity(iters));
    for _ in 0..iters {
        a.push(timed(&mut with.cmd(&["tick"], false)));
        b.push(timed(&mut without.cmd(&["tick"], false)));
    }
    let actions =
        with.sql_i64("SELECT count(*) FROM events WHERE kind IN ('restart','stop','decision')");
    assert_eq!(actions, 0, "reading screens changed nothing else");
    let (ma, mb) = (median(&a), median(&b));
    rows.push(row(
        &format!("tick, {n} quiet interactive panes / {n} quiet batch panes: median"),
        format!(
            "{ma:.2} / {mb:.2} ms = ratio {:.2} (p95 {:.2} / {:.2}, {iters} pairs, tmux spawns 2 / 1)",
            ma / mb,
            pct(&a, 95.0),
            pct(&b, 95.0)
        ),
        "reported; 1 extra spawn",
        None,
    ));
    println!("N={n}: tick with screens {ma:.2} ms, without {mb:.2} ms over {iters} pairs");
    // The status path never reads screens: the same with and without interactive agents.
    bench_status_cached(o, &without, n, rows);
    bench_status_cached(o, &with, n, rows);
}

/// 3. A hook for a session that is not ours.
fn bench_hook(o: &Opts, w: &World, rows: &mut Vec<Row>) {
    let iters = o.iters(500, 200);
    w.reset_count();
    let mut t = Vec::with_capacity(iters);
    for _ in 0..iters {
        t.push(timed(
            &mut w.cmd(&["hook", "pane-died", "%999", "not-ours", "1"], true),
        ));
    }
    assert!(
        w.tmux_spawns().is_empty(),
        "a hook for a foreign session spawned tmux"
    );
    let inbox = w.sql_i64("SELECT count(*) FROM inbox");
    assert_eq!(inbox, 0, "a foreign hook queued an event");
    let m = median(&t);
    rows.push(row(
        &format!("hook pane-died, not ours (N=500, {iters} runs): median"),
        format!("{m:.2} ms (p95 {:.2})", pct(&t, 95.0)),
        "≤ 2 ms",
        Some(m <= 2.0),
    ));
}

/// Peak RSS (KiB) of one tick: GNU time when present, else wait4's rusage.
fn peak_rss_kib(w: &World) -> (u64, &'static str) {
    let gnu_time = std::env::var_os("METAWSM_BENCH_NO_GNU_TIME").is_none();
    if gnu_time && Path::new("/usr/bin/time").is_file() {
        let mut c = Command::new("/usr/bin/time");
        c.arg("-v").arg(BIN);
        let probe = w.cmd(&["tick"], false);
        c.args(probe.get_args());
        for (k, v) in probe.get_envs() {
            match v {
                Some(v) => c.env(k, v),
                None => c.env_remove(k),
            };
        }
        let out = c.stdin(Stdio::null()).output().expect("time -v");
        let err = String::from_utf8_lossy(&out.stderr);
        if out.status.success() {
            if let Some(kib) = err
                .lines()
                .find_map(|l| l.trim().strip_prefix("Maximum resident set size (kbytes):"))
                .and_then(|v| v.trim().parse().ok())
            {
                return (kib, "/usr/bin/time -v");
            }
        }
    }
    // Reaped below by wait4, which std's Child cannot do (it would lose the rusage).
    #[allow(clippy::zombie_processes)]
    let child = w
        .cmd(&["tick"], false)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn tick");
    let mut status = 0;
    // SAFETY: an all-zero rusage is a valid value, and wait4 only writes into the two
    // out-parameters we own; the pid is our direct child, reaped exactly once here.
    let mut ru: nix::libc::rusage = unsafe { std::mem::zeroed() };
    let r = unsafe { nix::libc::wait4(child.id() as i32, &mut status, 0, &mut ru) };
    assert_eq!(r, child.id() as i32, "wait4 failed");
    (ru.ru_maxrss as u64, "wait4 rusage")
}

fn bench_rss_and_size(w: &World, rows: &mut Vec<Row>) {
    let mut worst = 0;
    let mut how = "";
    for _ in 0..5 {
        let (kib, h) = peak_rss_kib(w);
        worst = worst.max(kib);
        how = h;
    }
    let mb = worst as f64 / 1024.0;
    rows.push(row(
        "peak RSS of a tick (N=500, worst of 5)",
        format!("{mb:.1} MiB ({worst} KiB, {how})"),
        "≤ 20 MB",
        Some(mb <= 20.0),
    ));
    let bytes = fs::metadata(BIN).map(|m| m.len()).unwrap_or(0);
    let stripped = fs::read(BIN)
        .map(|b| !b.windows(8).any(|w| w == b".symtab\0"))
        .unwrap_or(false);
    rows.push(row(
        "release binary size",
        format!(
            "{:.2} MB ({bytes} bytes, {})",
            bytes as f64 / 1e6,
            if stripped { "stripped" } else { "NOT stripped" }
        ),
        "reported",
        None,
    ));
}

/// Session ids of every process on the machine, for finding a worker's descendants.
fn processes_in_session(sid: i32) -> Vec<i32> {
    let mut out = Vec::new();
    let Ok(rd) = fs::read_dir("/proc") else {
        return out;
    };
    for e in rd.flatten() {
        let Ok(pid) = e.file_name().to_string_lossy().parse::<i32>() else {
            continue;
        };
        let Ok(stat) = fs::read_to_string(e.path().join("stat")) else {
            continue;
        };
        // pid (comm) state ppid pgrp session …; comm may contain spaces, so split after ')'.
        let Some(rest) = stat.rsplit_once(')').map(|(_, r)| r) else {
            continue;
        };
        let f: Vec<&str> = rest.split_whitespace().collect();
        // Zombies are dead already; they wait for init to reap them.
        if f.first() != Some(&"Z") && f.get(3).and_then(|s| s.parse::<i32>().ok()) == Some(sid) {
            out.push(pid);
        }
    }
    out
}

/// Kills every LLM worker recorded in the DB and everything in its session (the worker
/// calls setsid; the LLM CLI runs in its own process group inside that session).
fn kill_workers(w: &World) -> usize {
    use nix::sys::signal::{kill, Signal};
    use nix::unistd::Pid;
    let c = rusqlite::Connection::open(&w.db).expect("open db");
    let mut stmt = c
        .prepare("SELECT pid FROM llm_calls WHERE pid IS NOT NULL")
        .expect("prepare");
    let pids: Vec<i64> = stmt
        .query_map([], |r| r.get(0))
        .expect("query")
        .map(|r| r.expect("row"))
        .collect();
    let mut killed = 0;
    for pid in pids {
        let Ok(sid) = i32::try_from(pid) else {
            continue;
        };
        if sid <= 1 {
            continue;
        }
        for p in processes_in_session(sid) {
            if kill(Pid::from_raw(p), Signal::SIGKILL).is_ok() {
                killed += 1;
            }
        }
    }
    killed
}

/// 5. `status` while LLM workers sit on a 30 s answer.
fn bench_llm_status(real_tmux: &Path, rows: &mut Vec<Row>) {
    let n = 10;
    let fake = Path::new(MANIFEST_DIR).join("tests/fake-llm/fake-codex");
    let policy = bench_policy(serde_json::json!({
        "operator": {
            "tick_interval_seconds": 1,
            "llm": {
                "mode": "auto",
                "provider": "codex",
                "command": fake.to_string_lossy(),
                "timeout_seconds": 60,
                "min_interval_seconds": 60
            }
        }
    }));
    let mut w = World::new(n, &policy, real_tmux);
    w.env = vec![
        ("FAKE_LLM_MODE".into(), "slow".into()),
        ("FAKE_LLM_SLEEP".into(), "30".into()),
    ];
    let calls = 200;
    // Paced so the run spans several tick intervals: some calls run the full tick.
    let pace = Duration::from_millis(25);
    let mut t = Vec::with_capacity(calls);
    for _ in 0..calls {
        let start = Instant::now();
        t.push(timed(&mut w.cmd(&["status"], false)));
        if let Some(rest) = pace.checked_sub(start.elapsed()) {
            std::thread::sleep(rest);
        }
    }
    let in_flight = w.sql_i64("SELECT count(*) FROM llm_calls WHERE state = 'in_flight'");
    let ticks = w.sql_i64("SELECT count(*) FROM llm_calls");
    let killed = kill_workers(&w);
    let survivors = || -> usize {
        let c = rusqlite::Connection::open(&w.db).expect("open db");
        let mut stmt = c
            .prepare("SELECT pid FROM llm_calls WHERE pid IS NOT NULL")
            .expect("prepare");
        let pids: Vec<i64> = stmt
            .query_map([], |r| r.get(0))
            .expect("query")
            .map(|r| r.expect("row"))
            .collect();
        pids.iter()
            .map(|&p| processes_in_session(p as i32).len())
            .sum()
    };
    let deadline = Instant::now() + Duration::from_secs(5);
    while survivors() > 0 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
    }
    assert_eq!(survivors(), 0, "LLM worker processes survived the kill");
    // The tick caps concurrent LLM workers (tick::plan::MAX_LLM_IN_FLIGHT = 4).
    assert_eq!(
        in_flight,
        (n as i64).min(4),
        "every run up to the global cap should have had a slow LLM call in flight ({ticks} calls recorded)"
    );
    let (p50, p99) = (pct(&t, 50.0), pct(&t, 99.0));
    rows.push(row(
        &format!("status with {in_flight} LLM calls in flight ({n} runs, 30 s fake), {calls} calls: p50 / p99"),
        format!(
            "{p50:.2} / {p99:.2} ms (max {:.2}; {killed} worker processes killed after)",
            pct(&t, 100.0)
        ),
        "p99 ≤ 10 ms",
        Some(p99 <= 10.0),
    ));
    drop(w);
}

// ---- real cadence: every tick commits new state ------------------------------------

/// The figures the issue sets goals for, at the cadence ticks really run: each world is
/// ticked at most once per wall-clock second (the DB's clock has one-second resolution),
/// so every sampled tick commits new state (`last_full_tick` moves; asserted), paid with
/// its real commit, status-cache write and close-time checkpoint. Each tick sample is
/// paired with a bare `tmux list-panes -a -F <the tick's own format>` on the same
/// server, the pair's order alternating, and every world is sampled in every round, so
/// machine load hits both sides and every N alike.
struct Cadence {
    n: usize,
    tick: Vec<f64>,
    lp: Vec<f64>,
}

fn last_full_tick(w: &World) -> i64 {
    let c = rusqlite::Connection::open(&w.db).expect("open db");
    c.query_row(
        "SELECT CAST(value AS INTEGER) FROM meta WHERE key = 'last_full_tick'",
        [],
        |r| r.get(0),
    )
    .unwrap_or(0)
}

fn bench_cadence(o: &Opts, worlds: &[(usize, &World)], fallback: &str) -> Vec<Cadence> {
    // The bare query asks exactly what the tick asks (read from the argv it spawned).
    let fmts: Vec<String> = worlds
        .iter()
        .map(|(_, w)| {
            timed(&mut w.cmd(&["tick"], true));
            w.observed_format().unwrap_or_else(|| fallback.to_string())
        })
        .collect();
    let rounds = o.iters(60, 12);
    let mut out: Vec<Cadence> = worlds
        .iter()
        .map(|(n, _)| Cadence {
            n: *n,
            tick: Vec::with_capacity(rounds),
            lp: Vec::with_capacity(rounds),
        })
        .collect();
    let mut last: Vec<i64> = worlds.iter().map(|(_, w)| last_full_tick(w)).collect();
    // Start on a fresh second so the first sample commits too.
    std::thread::sleep(Duration::from_millis(1100));
    for round in 0..rounds {
        let began = Instant::now();
        for (i, (n, w)) in worlds.iter().enumerate() {
            let tick = || timed(&mut w.cmd(&["tick"], false));
            let fmt = fmts[i].as_str();
            let lp = || timed(w.tmux().args(["list-panes", "-a", "-F", fmt]));
            let (t, l) = if round % 2 == 0 {
                let t = tick();
                (t, lp())
            } else {
                let l = lp();
                (tick(), l)
            };
            out[i].tick.push(t);
            out[i].lp.push(l);
            let now = last_full_tick(w);
            assert!(
                now > last[i],
                "N={n}: round {round}: the tick did not commit a new last_full_tick ({now} after {})",
                last[i]
            );
            last[i] = now;
        }
        // The next round's ticks fall in a later second of the DB's clock.
        if let Some(rest) = Duration::from_millis(1050).checked_sub(began.elapsed()) {
            std::thread::sleep(rest);
        }
    }
    out
}

/// Goal for the median tick / median bare query ratio at real cadence.
fn cadence_goal(n: usize) -> f64 {
    if n >= 500 {
        1.5
    } else {
        2.0
    }
}

/// The physical floor of a tick: a process start, one tmux query and one small commit.
/// The commit is timed here, in-process, the way the binary commits (WAL, NORMAL, a meta
/// row that changes, then close).
fn small_commit_ms(w: &World, iters: usize) -> f64 {
    let mut t = Vec::with_capacity(iters);
    for i in 0..iters {
        let start = Instant::now();
        let c = rusqlite::Connection::open(&w.db).expect("open db");
        c.pragma_update(None, "synchronous", "NORMAL")
            .expect("sync");
        c.execute(
            "INSERT OR REPLACE INTO meta(key, value) VALUES ('bench_floor', ?1)",
            rusqlite::params![format!("{i}-{:?}", Instant::now())],
        )
        .expect("commit");
        drop(c);
        t.push(ms(start.elapsed()));
    }
    median(&t)
}

/// `status` at the default status interval (6.): every call a client makes, most
/// answered from the cache, the share that finds a tick due paying for it.
fn bench_status_cadence(o: &Opts, real_tmux: &Path, n: usize, rows: &mut Vec<Row>) {
    // tmux's default status-interval is 15 s, the default tick interval 15 s too: with
    // one client every status call can find a tick due, with c clients about 1 in c.
    // Scaled down in time, not in share: tick interval 1 s, a call every 50 ms, so 1 in
    // 20 calls finds a tick due (20 clients at the defaults). Run as tmux runs a status
    // job (`TMUX` set): the bar's path, which hands a due tick off. 1,000 calls, so the
    // p99 is the 10th slowest and the due calls (about 50) are all above the p95.
    // Interleaved with each call, the same call in a world where no tick is ever due:
    // the p99/p50 this machine's noise alone gives the cached path.
    let policy = bench_policy(serde_json::json!({"operator": {"tick_interval_seconds": 1}}));
    let w = World::new(n, &policy, real_tmux);
    let control = World::new(n, &bench_policy(serde_json::json!({})), real_tmux);
    let calls = if o.status_only {
        1000
    } else {
        o.iters(1000, 200)
    };
    let pace = Duration::from_millis(50);
    let before = last_full_tick(&w);
    let cache = PathBuf::from(format!("{}.status", w.db.display()));
    let cached_tick = || -> i64 {
        fs::read(&cache)
            .ok()
            .and_then(|b| serde_json::from_slice::<serde_json::Value>(&b).ok())
            .and_then(|v| v["last_full_tick"].as_i64())
            .unwrap_or(0)
    };
    // As tmux runs a status job: TMUX set (a due tick is handed off).
    let job = |w: &World| {
        timed(
            w.cmd(&["status"], false)
                .env("TMUX", "/tmp/bench-status-job,1,0"),
        )
    };
    let (mut t, mut due, mut ctl) = (Vec::with_capacity(calls), Vec::new(), Vec::new());
    for i in 0..calls {
        let start = Instant::now();
        if i % 2 == 1 {
            ctl.push(job(&control));
        }
        // What the cache file says before the call: did this call find a tick due?
        let found_due = unix_now() - cached_tick() >= 1;
        let d = job(&w);
        t.push(d);
        if found_due {
            due.push(d);
        }
        if i % 2 == 0 {
            ctl.push(job(&control));
        }
        if let Some(rest) = pace.checked_sub(start.elapsed()) {
            std::thread::sleep(rest);
        }
    }
    // The last handed-off tick may still be running.
    std::thread::sleep(Duration::from_millis(500));
    let ticks = last_full_tick(&w) - before;
    let (p50, p99) = (pct(&t, 50.0), pct(&t, 99.0));
    let due_fig = if due.is_empty() {
        "none".to_string()
    } else {
        format!("median {:.2}, max {:.2} ms", median(&due), pct(&due, 100.0))
    };
    rows.push(row(
        &format!(
            "status at cadence as a tmux status job (N={n}, {calls} calls 50 ms apart, tick interval 1 s): p50 / p99"
        ),
        format!(
            "{p50:.2} / {p99:.2} ms = p99/p50 {:.2} (max {:.2}; {} calls found a tick due: {due_fig}; ticks advanced {ticks} s)",
            p99 / p50,
            pct(&t, 100.0),
            due.len()
        ),
        "p99 ≤ 2 × p50",
        Some(p99 <= 2.0 * p50),
    ));
    let (c50, c99) = (pct(&ctl, 50.0), pct(&ctl, 99.0));
    rows.push(row(
        &format!("the same status job, no tick ever due (control, interleaved, {calls} calls): p50 / p99"),
        format!(
            "{c50:.2} / {c99:.2} ms = p99/p50 {:.2} (max {:.2}): the machine's noise",
            c99 / c50,
            pct(&ctl, 100.0)
        ),
        "reported",
        None,
    ));
}

fn unix_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

// ---- idle cost: the plugin loaded, no client attached --------------------------------

/// (utime + stime, cutime + cstime) of a process, in seconds: its own CPU and that of
/// the children it reaped (for the tmux server: the timer's shells and our binary, with
/// the tmux clients our binary spawned and reaped).
fn cpu_seconds(pid: &str) -> (f64, f64) {
    let stat = fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    let rest = stat.rsplit_once(')').map(|(_, r)| r).unwrap_or("");
    let f: Vec<f64> = rest
        .split_whitespace()
        .map(|v| v.parse().unwrap_or(0.0))
        .collect();
    // After the comm: state is 0, utime 11, stime 12, cutime 13, cstime 14.
    let tck = 100.0; // USER_HZ on Linux
    let get = |i: usize| f.get(i).copied().unwrap_or(0.0) / tck;
    (get(11) + get(12), get(13) + get(14))
}

/// `--idle`: for 10 and 500 runs, the plugin loaded (`tmux-setup`: hooks, timer at the
/// default 15 s tick interval), no client attached, for `METAWSM_BENCH_IDLE_SECONDS`
/// (600 by default; 60 with --quick). Reports the tmux server's own CPU and ours (every
/// timer firing: shell, metawsm-tick and the tmux clients it spawned), as CPU s/hour,
/// and the tmux spawns per firing through the counting wrapper on the server's PATH.
fn bench_idle(o: &Opts, real_tmux: &Path, rows: &mut Vec<Row>) {
    let secs: u64 = std::env::var("METAWSM_BENCH_IDLE_SECONDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(if o.quick { 60 } else { 600 });
    let policy = bench_policy(serde_json::json!({"operator": {"tick_interval_seconds": 15}}));
    let worlds: Vec<(usize, World)> = [10usize, 500]
        .iter()
        .map(|&n| (n, World::new(n, &policy, real_tmux)))
        .collect();
    let mut start = Vec::new();
    for (_, w) in &worlds {
        // The server's PATH (for the timer's tmux calls) gets the counting wrapper.
        let path = std::env::var("PATH").unwrap_or_default();
        w.tmux_ok(&[
            "set-environment",
            "-g",
            "PATH",
            &format!("{}:{path}", w.wrap.display()),
        ]);
        timed(&mut w.cmd(&["tmux-setup"], false));
        w.reset_count();
        let out = w
            .tmux()
            .args(["display-message", "-p", "#{pid}"])
            .output()
            .expect("server pid");
        let pid = String::from_utf8_lossy(&out.stdout).trim().to_string();
        start.push((pid.clone(), cpu_seconds(&pid), last_full_tick(w)));
    }
    println!("idle: measuring {secs} s with the plugin loaded and no client attached…");
    std::thread::sleep(Duration::from_secs(secs));
    for ((n, w), (pid, (s0, c0), t0)) in worlds.iter().zip(&start) {
        let (s1, c1) = cpu_seconds(pid);
        let per_hour = 3600.0 / secs as f64;
        let (server, ours) = ((s1 - s0) * per_hour, (c1 - c0) * per_hour);
        let spawns = w.tmux_spawns();
        let firings = spawns.iter().filter(|l| l.contains("run-shell")).count();
        let ticks = last_full_tick(w) - t0;
        let goal = if *n >= 500 { 4.0 } else { 1.0 };
        rows.push(row(
            &format!("idle cost, N={n}, plugin loaded, no client, {secs} s: ours / tmux server"),
            format!(
                "{ours:.2} / {server:.2} CPU s/hour; {} tmux spawns for {firings} timer firings; last tick advanced {ticks} s",
                spawns.len()
            ),
            &format!("ours ≤ {goal} CPU s/hour, 1 spawn per firing"),
            Some(ours <= goal && spawns.len() <= firings),
        ));
        println!("idle N={n}: ours {ours:.2} CPU s/hour, tmux server {server:.2}, {} spawns / {firings} firings", spawns.len());
    }
}

/// The results table; the number of goals missed (exit 1 with `strict`).
fn print_rows(rows: &[Row], strict: bool) -> usize {
    println!();
    println!("| metric | value | target | result |");
    println!("|---|---|---|---|");
    let mut missed = 0;
    for r in rows {
        let res = match r.pass {
            Some(true) => "PASS",
            Some(false) => {
                missed += 1;
                "**MISS**"
            }
            None => "—",
        };
        println!("| {} | {} | {} | {} |", r.metric, r.value, r.target, res);
    }
    if strict && missed > 0 {
        println!("{missed} goal(s) missed.");
        std::process::exit(1);
    }
    missed
}

fn main() {
    let o = Opts::parse();
    let real_tmux = which("tmux").expect("tmux is not on PATH: the benchmarks need tmux ≥ 3.3");
    let fmt = pane_format();
    let started = Instant::now();
    println!(
        "# metawsm-tick benchmarks{}",
        if o.quick { " (--quick)" } else { "" }
    );
    println!();
    println!("binary: {BIN}");
    let info = machine_info(&real_tmux);
    print!("{info}");
    println!();

    let mut rows = Vec::new();
    if o.idle {
        bench_idle(&o, &real_tmux, &mut rows);
        print_rows(&rows, o.strict);
        return;
    }
    if o.scale {
        scale::bench_scale(&o, &real_tmux, &mut rows);
        print_rows(&rows, o.strict);
        return;
    }
    if o.status_only {
        bench_status_cadence(&o, &real_tmux, 10, &mut rows);
        print_rows(&rows, o.strict);
        return;
    }
    bench_floor(&o, &mut rows);
    let mut figures = Vec::new();
    let sizes: &[usize] = if o.screen_only { &[] } else { &[10, 50, 500] };
    let worlds: Vec<(usize, World)> = sizes
        .iter()
        .map(|&n| {
            (
                n,
                World::new(n, &bench_policy(serde_json::json!({})), &real_tmux),
            )
        })
        .collect();
    let mut cadence = Vec::new();
    if !worlds.is_empty() {
        let refs: Vec<(usize, &World)> = worlds.iter().map(|(n, w)| (*n, w)).collect();
        cadence = bench_cadence(&o, &refs, &fmt);
    }
    let version = median(
        &(0..o.iters(100, 30))
            .map(|_| timed(Command::new(BIN).arg("--version")))
            .collect::<Vec<_>>(),
    );
    for (c, (_, w)) in cadence.iter().zip(&worlds) {
        let (t, l) = (median(&c.tick), median(&c.lp));
        let goal = cadence_goal(c.n);
        let ratio = t / l;
        let floor = version + l + small_commit_ms(w, o.iters(50, 15));
        rows.push(row(
            &format!("tick at real cadence (commits every sample), N={}: median / bare list-panes median", c.n),
            format!(
                "{t:.2} / {l:.2} ms = ratio {ratio:.2}; p99 {:.2} / {:.2} ms; floor {floor:.2} ms (tick = {:.2} × floor); {} pairs",
                pct(&c.tick, 99.0),
                pct(&c.lp, 99.0),
                t / floor,
                c.tick.len()
            ),
            &format!("ratio ≤ {goal}"),
            Some(ratio <= goal),
        ));
        println!(
            "N={}: at cadence tick {t:.2} ms (p99 {:.2}), list-panes {l:.2} ms (p99 {:.2}), ratio {ratio:.2} (goal ≤ {goal}): {}",
            c.n,
            pct(&c.tick, 99.0),
            pct(&c.lp, 99.0),
            if ratio <= goal { "PASS" } else { "MISS" }
        );
    }
    for (n, w) in &worlds {
        let n = *n;
        figures.push(bench_ticks(&o, w, n, &fmt));
        if n == 10 || n == 500 {
            bench_status_cached(&o, w, n, &mut rows);
        }
        if n == 500 {
            bench_hook(&o, w, &mut rows);
            bench_rss_and_size(w, &mut rows);
        }
    }
    drop(worlds);
    for f in &figures {
        let (t, l) = (median(&f.tick), median(&f.lp));
        rows.push(row(
            &format!("tick back to back (mostly the same second: little to commit), N={}: median / list-panes median", f.n),
            format!(
                "{t:.2} / {l:.2} ms = ratio {:.2} (tick p99 {:.2} ms, {} pairs)",
                t / l,
                pct(&f.tick, 99.0),
                f.tick.len()
            ),
            "reported",
            None,
        ));
    }
    if !o.screen_only {
        bench_status_cadence(&o, &real_tmux, 10, &mut rows);
    }
    if !o.screen_only {
        bench_llm_status(&real_tmux, &mut rows);
    }
    bench_quiet_interactive(&o, &real_tmux, &mut rows);

    let missed = print_rows(&rows, false);
    // Cost per run, from the two ends of the tick series.
    if let (Some(a), Some(b)) = (figures.first(), figures.last()) {
        let per_run = (median(&b.tick) - median(&a.tick)) / (b.n - a.n) as f64;
        let lp_per = (median(&b.lp) - median(&a.lp)) / (b.n - a.n) as f64;
        println!();
        println!(
            "Marginal cost per registered run: tick {:.1} µs, list-panes {:.1} µs.",
            per_run * 1000.0,
            lp_per * 1000.0
        );
    }
    println!(
        "Load average at end: {}. Total bench time {:.0} s.",
        fs::read_to_string("/proc/loadavg")
            .unwrap_or_default()
            .split_whitespace()
            .take(3)
            .collect::<Vec<_>>()
            .join(" "),
        started.elapsed().as_secs_f64()
    );
    if missed > 0 {
        println!("{missed} target(s) missed.");
        if o.strict {
            std::process::exit(1);
        }
    }
}
