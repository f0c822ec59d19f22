//! `--idle`: the cost of the plugin loaded with no client attached.

use crate::common::procs::cpu_seconds;
use crate::report::{load_average, row, timed, Row};
use crate::world::{bench_policy, World};
use crate::Opts;
use std::path::Path;
use std::time::Duration;

/// For 10 and 500 runs, the plugin loaded (`tmux-setup`: hooks, timer at the default
/// 15 s tick interval, backing off to `operator.idle_tick_max_seconds` while nothing
/// changes: the default unless `METAWSM_BENCH_IDLE_MAX` sets it), no client attached, for `METAWSM_BENCH_IDLE_SECONDS` (600 by
/// default; 60 with --quick). Reads `/proc/<server pid>/stat` before and after: the tmux
/// server's own CPU (utime + stime) and that of the children it reaped (cutime + cstime:
/// each firing's shell, metawsm-tick and the tmux clients metawsm-tick reaped), "ours",
/// as CPU s/hour; and the tmux spawns per firing through the counting wrapper on the
/// server's PATH.
pub fn bench_idle(o: &Opts, real_tmux: &Path, rows: &mut Vec<Row>) {
    let secs: u64 = std::env::var("METAWSM_BENCH_IDLE_SECONDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(if o.quick { 60 } else { 600 });
    // An older build refuses keys it does not know: the max only when asked for.
    let mut op = serde_json::json!({"tick_interval_seconds": 15});
    if let Some(max) = std::env::var("METAWSM_BENCH_IDLE_MAX")
        .ok()
        .and_then(|v| v.parse::<i64>().ok())
    {
        op["idle_tick_max_seconds"] = max.into();
    }
    let policy = bench_policy(serde_json::json!({ "operator": op }));
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
        let pid: i32 = w
            .env
            .tmux_out(&["display-message", "-p", "#{pid}"])
            .trim()
            .parse()
            .expect("server pid");
        start.push((pid, cpu_seconds(pid), w.last_full_tick()));
    }
    let load0 = load_average();
    println!("idle: measuring {secs} s with the plugin loaded and no client attached (load average {load0})…");
    std::thread::sleep(Duration::from_secs(secs));
    let load1 = load_average();
    for ((n, w), (pid, (s0, c0), t0)) in worlds.iter().zip(&start) {
        let (s1, c1) = cpu_seconds(*pid);
        let per_hour = 3600.0 / secs as f64;
        let (server, ours) = ((s1 - s0) * per_hour, (c1 - c0) * per_hour);
        let spawns = w.tmux_spawns();
        let firings = spawns.iter().filter(|l| l.contains("run-shell")).count();
        let ticks = w.last_full_tick() - t0;
        let goal = if *n >= 500 { 4.0 } else { 1.0 };
        rows.push(row(
            &format!("idle cost, N={n}, plugin loaded, no client, {secs} s: ours / tmux server"),
            format!(
                "{ours:.2} / {server:.2} CPU s/hour; {} tmux spawns for {firings} timer firings ({:.0} an hour); last tick advanced {ticks} s; load average {load0} → {load1}",
                spawns.len(),
                firings as f64 * per_hour
            ),
            &format!("ours ≤ {goal} CPU s/hour, 1 spawn per firing"),
            Some(ours <= goal && spawns.len() <= firings),
        ));
        println!("idle N={n}: ours {ours:.2} CPU s/hour, tmux server {server:.2}, {} spawns / {firings} firings", spawns.len());
    }
}
