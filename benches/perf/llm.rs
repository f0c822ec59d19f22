//! 6. `status` while LLM workers sit on a 30 s answer.

use crate::common::procs::processes_in_session;
use crate::report::{pct, row, timed, Row};
use crate::world::{bench_policy, manifest_path, World};
use std::path::Path;
use std::time::{Duration, Instant};

/// Processes in the sessions of the LLM workers recorded in the DB (a worker calls
/// setsid; the LLM CLI runs in its own process group inside that session).
fn worker_processes(w: &World) -> Vec<i32> {
    w.env
        .sql("SELECT pid FROM llm_calls WHERE pid IS NOT NULL")
        .iter()
        .filter_map(|r| r.first()?.parse::<i32>().ok())
        .filter(|&sid| sid > 1)
        .flat_map(processes_in_session)
        .collect()
}

/// Kills every LLM worker and everything in its session; how many were signalled.
fn kill_workers(w: &World) -> usize {
    use nix::sys::signal::{kill, Signal};
    use nix::unistd::Pid;
    worker_processes(w)
        .into_iter()
        .filter(|&p| kill(Pid::from_raw(p), Signal::SIGKILL).is_ok())
        .count()
}

pub fn bench_llm_status(real_tmux: &Path, rows: &mut Vec<Row>) {
    let n = 10;
    let fake = manifest_path("tests/fake-llm/fake-codex");
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
    w.extra_env = vec![
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
    let deadline = Instant::now() + Duration::from_secs(5);
    while !worker_processes(&w).is_empty() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
    }
    let survivors = worker_processes(&w);
    assert!(
        survivors.is_empty(),
        "LLM worker processes survived the kill: {survivors:?}"
    );
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
