//! Performance benchmarks for metawsm-tick (docs/performance.md). Run with
//!
//! ```text
//! cargo bench --bench perf              # full run, a few minutes on 2 cores
//! cargo bench --bench perf -- --quick   # fewer iterations, about a minute
//! cargo bench --bench perf -- --strict  # exit 1 when a goal is missed
//! cargo bench --bench perf -- --screen  # only the screen-reading figures
//! cargo bench --bench perf -- --status  # only `status` at cadence as a tmux status job (1,000 calls)
//! cargo bench --bench perf -- --idle    # idle cost with the plugin loaded (10 min; 1 with --quick)
//! cargo bench --bench perf -- --scale   # run start, run list and the hooks at N = 1 and 500
//! ```
//!
//! The binary measured is the one install.sh installs: unless `METAWSM_BENCH_BIN` names
//! another, the bench first runs `build-release.sh` (install.sh's build: statically
//! linked on Linux with glibc; a no-op when it is up to date) and measures what it
//! built. It prints that binary's path and whether it is statically linked.
//!
//! Peak RSS comes from `/usr/bin/time -v` when present, else from `wait4`'s rusage
//! (`METAWSM_BENCH_NO_GNU_TIME=1` forces the latter). `METAWSM_BENCH_BIN` measures
//! another build (an older one) with the same harness. `--idle`:
//! `METAWSM_BENCH_IDLE_SECONDS` (600) and `METAWSM_BENCH_IDLE_MAX` (sets
//! `operator.idle_tick_max_seconds`; 15 = no backoff).
//!
//! Cargo also builds the binary with the bench profile (= release: LTO, stripped, but
//! dynamically linked) before this runs, and passes its path in
//! `CARGO_BIN_EXE_metawsm-tick`: `METAWSM_BENCH_BIN=target/release/metawsm-tick` measures
//! that one. Every measurement runs
//! against the test harness's private tmux server (`tests/common`: `tmux -S
//! <tempdir>/sock -f /dev/null`) holding N registered runs whose agents are live `sleep`
//! processes; that server is killed by its socket at the end and nothing else is
//! touched. Each figure is a wall-clock time of a whole process (spawn → exit) taken from
//! this process with `std::process::Command`. Ratios compare medians measured interleaved
//! in the same run, so machine noise hits both sides alike. The goals (PASS/MISS) are
//! measured at real cadence: each sampled tick comes at least one second after the last
//! one, so it commits new state.
//!
//! One file per group of figures: `cadence.rs` (the goals), `back_to_back.rs` (the
//! earlier figures), `screen.rs`, `llm.rs`, `idle.rs`,
//! `scale.rs` (per-command costs against N); `world.rs` builds the world on the
//! test harness, `report.rs` times and prints.

#[path = "../../tests/common/mod.rs"]
mod common;

mod back_to_back;
mod cadence;
mod idle;
mod llm;
mod report;
mod scale;
mod screen;
mod world;

use common::{elf, which_tmux};
use report::{load_average, machine_info, print_rows};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Instant;
use world::{bench_bin, bench_policy, pane_format, World};

pub struct Opts {
    pub quick: bool,
    strict: bool,
    /// `--screen`: only the screen-reading figures.
    screen_only: bool,
    /// `--status`: only `status` at cadence (1,000 calls even with --quick).
    pub status_only: bool,
    /// `--idle`: only the idle cost (10 minutes by default).
    idle: bool,
    /// `--scale`: only the per-command costs against N (scale.rs).
    scale: bool,
}

impl Opts {
    fn parse() -> Opts {
        let mut o = Opts {
            quick: false,
            strict: false,
            screen_only: false,
            status_only: false,
            idle: false,
            scale: false,
        };
        // cargo passes `--bench`; anything else unknown is ignored too (filters etc.).
        for a in std::env::args().skip(1) {
            match a.as_str() {
                "--quick" => o.quick = true,
                "--strict" => o.strict = true,
                "--screen" => o.screen_only = true,
                "--status" => o.status_only = true,
                "--idle" => o.idle = true,
                "--scale" => o.scale = true,
                _ => {}
            }
        }
        o
    }

    pub fn iters(&self, full: usize, quick: usize) -> usize {
        if self.quick {
            quick
        } else {
            full
        }
    }
}

/// Builds the binary install.sh installs, with install.sh's own build script, and points
/// `METAWSM_BENCH_BIN` at it; unless `METAWSM_BENCH_BIN` already names a binary.
fn build_installed_binary() {
    if std::env::var_os("METAWSM_BENCH_BIN").is_some() {
        return;
    }
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("build-release.sh");
    eprintln!("building what install.sh installs: {}", script.display());
    let out = Command::new(&script)
        .stdin(Stdio::null())
        .stderr(Stdio::inherit())
        .output()
        .unwrap_or_else(|e| panic!("{}: {e}", script.display()));
    let path = String::from_utf8_lossy(&out.stdout).trim().to_string();
    assert!(
        out.status.success() && !path.is_empty(),
        "{} failed ({}): nothing to measure",
        script.display(),
        out.status
    );
    // Before any thread exists: the world commands read it (world.rs).
    std::env::set_var("METAWSM_BENCH_BIN", path);
}

/// Cargo runs the bench with LD_LIBRARY_PATH naming its target and toolchain library
/// directories. Every dynamically linked process started from here (tmux, a dynamically
/// linked metawsm-tick) would search them first: about 100 failed opens and 0.2 ms a
/// process on this machine, which a tmux status job or hook never pays. Those entries
/// are dropped (others kept); returns how many.
fn drop_cargo_library_path() -> usize {
    let Some(val) = std::env::var_os("LD_LIBRARY_PATH") else {
        return 0;
    };
    // The bench runs as <target>/<profile>/deps/perf-…
    let target = std::env::current_exe()
        .ok()
        .and_then(|e| e.ancestors().nth(3).map(Path::to_path_buf));
    let rustc = std::env::var("RUSTC").unwrap_or_else(|_| "rustc".into());
    let sysroot = Command::new(rustc)
        .args(["--print", "sysroot"])
        .output()
        .ok()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .filter(|s| !s.is_empty());
    let all: Vec<_> = std::env::split_paths(&val).collect();
    let keep: Vec<_> = all
        .iter()
        .filter(|p| {
            !target.as_deref().is_some_and(|t| p.starts_with(t))
                && !sysroot.as_deref().is_some_and(|s| p.starts_with(s))
        })
        .collect();
    let dropped = all.len() - keep.len();
    match std::env::join_paths(keep) {
        Ok(v) if !v.is_empty() => std::env::set_var("LD_LIBRARY_PATH", v),
        _ => std::env::remove_var("LD_LIBRARY_PATH"),
    }
    dropped
}

fn main() {
    let o = Opts::parse();
    let dropped = drop_cargo_library_path();
    build_installed_binary();
    let bin = bench_bin();
    let real_tmux = which_tmux();
    let fmt = pane_format();
    let started = Instant::now();
    println!(
        "# metawsm-tick benchmarks{}",
        if o.quick { " (--quick)" } else { "" }
    );
    println!();
    let linkage = match elf::linkage(Path::new(&bin)) {
        Ok(l) => l.to_string(),
        Err(e) => format!("linkage unknown: {e}"),
    };
    println!("binary: {bin}: {linkage}");
    if dropped > 0 {
        println!("LD_LIBRARY_PATH: cargo's {dropped} entries removed (no tmux job has them)");
    }
    print!("{}", machine_info(&real_tmux));
    println!();

    let mut rows = Vec::new();
    if o.idle {
        idle::bench_idle(&o, &real_tmux, &mut rows);
        print_rows(&rows, o.strict);
        return;
    }
    if o.scale {
        scale::bench_scale(&o, &real_tmux, &mut rows);
        print_rows(&rows, o.strict);
        return;
    }
    if o.status_only {
        cadence::bench_status_cadence(&o, &real_tmux, 10, &mut rows);
        print_rows(&rows, o.strict);
        return;
    }
    back_to_back::bench_floor(&o, &mut rows);
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
    if !worlds.is_empty() {
        let refs: Vec<(usize, &World)> = worlds.iter().map(|(n, w)| (*n, w)).collect();
        let cadence = cadence::bench_cadence(&o, &refs, &fmt);
        rows.extend(cadence::cadence_rows(&o, &cadence, &worlds, &bin));
    }
    for (n, w) in &worlds {
        let n = *n;
        figures.push(back_to_back::bench_ticks(&o, w, n, &fmt));
        if n == 10 || n == 500 {
            back_to_back::bench_status_cached(&o, w, n, &mut rows);
        }
        if n == 500 {
            back_to_back::bench_hook(&o, w, &mut rows);
            back_to_back::bench_rss_and_size(w, &mut rows);
        }
    }
    drop(worlds);
    back_to_back::tick_rows(&figures, &mut rows);
    if !o.screen_only {
        cadence::bench_status_cadence(&o, &real_tmux, 10, &mut rows);
        llm::bench_llm_status(&real_tmux, &mut rows);
    }
    screen::bench_quiet_interactive(&o, &real_tmux, &mut rows);

    let missed = print_rows(&rows, false);
    back_to_back::print_marginal(&figures);
    println!(
        "Load average at end: {}. Total bench time {:.0} s.",
        load_average(),
        started.elapsed().as_secs_f64()
    );
    if missed > 0 {
        println!("{missed} target(s) missed.");
        if o.strict {
            std::process::exit(1);
        }
    }
}
