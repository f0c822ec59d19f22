//! The earlier figures, back to back: the process floor, the cached `status`, a full
//! tick with nothing to do (mostly in the same second: little to commit), a foreign
//! hook, peak RSS and binary size.

use crate::report::{median, pct, row, timed, Row};
use crate::world::{bench_bin, with_program, World};
use crate::Opts;
use std::fs;
use std::path::Path;
use std::process::{Command, Stdio};

/// 0. What any process costs from this harness: the floor under every figure below.
pub fn bench_floor(o: &Opts, rows: &mut Vec<Row>) {
    let iters = o.iters(500, 200);
    let (mut t, mut v) = (Vec::new(), Vec::new());
    let bin = bench_bin();
    for _ in 0..iters {
        t.push(timed(&mut Command::new("true")));
        v.push(timed(Command::new(&bin).arg("--version")));
    }
    rows.push(row(
        "process floor: `true` / `metawsm-tick --version`: median",
        format!("{:.2} / {:.2} ms", median(&t), median(&v)),
        "reported",
        None,
    ));
}

/// 1. `status` when no tick is due: no tmux process may be spawned.
pub fn bench_status_cached(o: &Opts, w: &World, n: usize, rows: &mut Vec<Row>) {
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

pub struct TickFigures {
    pub n: usize,
    pub tick: Vec<f64>,
    pub lp: Vec<f64>,
}

/// 2. A full tick with nothing to do, interleaved with bare `list-panes -a`.
pub fn bench_ticks(o: &Opts, w: &World, n: usize, fmt: &str) -> TickFigures {
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

pub fn tick_rows(figures: &[TickFigures], rows: &mut Vec<Row>) {
    for f in figures {
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
}

/// Cost per run, from the two ends of the tick series.
pub fn print_marginal(figures: &[TickFigures]) {
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
}

/// 3. A hook for a session that is not ours.
pub fn bench_hook(o: &Opts, w: &World, rows: &mut Vec<Row>) {
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
        let probe = w.cmd(&["tick"], false);
        let mut c = with_program(
            &probe,
            "/usr/bin/time".as_ref(),
            &["-v".as_ref(), probe.get_program()],
        );
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

/// 4. Peak RSS of a tick at N = 500 and the release binary's size.
pub fn bench_rss_and_size(w: &World, rows: &mut Vec<Row>) {
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
    let bin = bench_bin();
    let bytes = fs::metadata(&bin).map(|m| m.len()).unwrap_or(0);
    let stripped = fs::read(&bin)
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
