//! A bar refresh runs `status` in every client at once: those that find a tick due hand
//! one tick off between them, never one each. Its own test binary: it makes this
//! process the reaper of orphans (each handed-off tick is one), which would disturb
//! other tests' children in a shared binary.

mod common;

use common::*;
use std::fs;
use std::time::Duration;

/// This process's children, zombies included (none is reaped until we wait for it).
fn children() -> Vec<i32> {
    let me = std::process::id().to_string();
    let mut pids = Vec::new();
    for e in fs::read_dir("/proc").expect("/proc").flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        let Ok(pid) = name.parse::<i32>() else {
            continue;
        };
        let stat = fs::read_to_string(e.path().join("stat")).unwrap_or_default();
        // After the command name: state, then the parent's pid.
        let ppid = stat
            .rsplit_once(')')
            .and_then(|(_, rest)| rest.split_whitespace().nth(1).map(str::to_string));
        if ppid.as_deref() == Some(me.as_str()) {
            pids.push(pid);
        }
    }
    pids
}

#[test]
fn sixteen_bar_jobs_that_find_a_tick_due_start_one_tick() {
    // A long interval: the storm cannot span two due periods, however slow the machine.
    let mut env = Env::with_policy(fast_policy(
        serde_json::json!({"operator": {"tick_interval_seconds": 600}}),
    ));
    env.start("r1", &["sleep", "1000"]);
    env.tick();
    let shown = env.ok(&["status", "--no-tick"]).trim().to_string();
    // The last full tick long ago, in the database and in the cache the bar reads.
    env.sql("UPDATE meta SET value = '1' WHERE key = 'last_full_tick'");
    let cache = std::path::PathBuf::from(format!("{}.status", env.db.display()));
    let mut c: serde_json::Value =
        serde_json::from_slice(&fs::read(&cache).expect("cache")).expect("cache json");
    c["last_full_tick"] = 1.into();
    fs::write(&cache, c.to_string()).expect("write cache");
    let log = env.log_tmux_calls();

    // Every handed-off tick outlives the status call that started it: it becomes our
    // child, so counting our new children counts the hand-offs.
    nix::sys::prctl::set_child_subreaper(true).expect("subreaper");
    let before = children();
    let barrier = std::sync::Barrier::new(16);
    let outs: Vec<_> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..16)
            .map(|_| {
                s.spawn(|| {
                    barrier.wait();
                    // As tmux runs a status job.
                    env.cmd(&["status"])
                        .env("TMUX", "/tmp/not-used,1,0")
                        .output()
                        .expect("status")
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().expect("thread"))
            .collect()
    });
    for o in &outs {
        assert!(o.status.success(), "status failed: {o:?}");
        assert_eq!(String::from_utf8_lossy(&o.stdout).trim(), shown);
    }
    let handed: Vec<i32> = children()
        .into_iter()
        .filter(|p| !before.contains(p))
        .collect();
    for &p in &handed {
        let _ = nix::sys::wait::waitpid(nix::unistd::Pid::from_raw(p), None);
    }
    assert_eq!(handed.len(), 1, "hand-offs by 16 bar jobs: {handed:?}");
    wait_for("the handed-off tick", Duration::from_secs(30), || {
        (env.sql("SELECT value FROM meta WHERE key = 'last_full_tick'")[0][0] != "1").then_some(())
    });
    let ticks = fs::read_to_string(&log)
        .unwrap_or_default()
        .lines()
        .filter(|l| l.contains("list-panes"))
        .count();
    assert_eq!(ticks, 1, "observations after the storm");
}
