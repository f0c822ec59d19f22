//! What a tick costs: it asks tmux only for what its agents need, a hook's tick looks at
//! its own sessions only, and the status bar never waits for a tick.

mod common;

use common::*;
use std::fs;
use std::time::{Duration, Instant};

fn calls(log: &std::path::Path) -> Vec<String> {
    fs::read_to_string(log)
        .unwrap_or_default()
        .lines()
        .map(str::to_string)
        .collect()
}

/// The one `list-panes` call in the log.
fn the_listing(log: &std::path::Path) -> String {
    let lists: Vec<String> = calls(log)
        .into_iter()
        .filter(|c| c.contains("list-panes"))
        .collect();
    assert_eq!(lists.len(), 1, "{lists:#?}");
    lists[0].clone()
}

#[test]
fn a_tick_over_batch_agents_does_not_ask_for_titles_or_commands() {
    let mut env = Env::new();
    env.start("r1", &["sleep", "1000"]);
    let log = env.log_tmux_calls();
    env.tick();
    let list = the_listing(&log);
    // tmux reads every pane's process from /proc for pane_current_command.
    assert!(
        !list.contains("pane_current_command") && !list.contains("pane_title"),
        "{list}"
    );
    assert_eq!(env.health("r1", "agent"), "healthy");
}

#[test]
fn a_hook_tick_lists_its_own_session_only() {
    let mut env = Env::new();
    env.start("other", &["sleep", "1000"]);
    env.start("dies", &["sh", "-c", "sleep 0.5; exit 3"]);
    env.wait_pane_dead("dies");
    let pane = env.tmux_out(&["display-message", "-p", "-t", "=dies:", "#{pane_id}"]);
    let log = env.log_tmux_calls();
    env.ok(&["hook", "pane-died", pane.trim(), "dies", "3"]);
    let list = the_listing(&log);
    assert!(
        list.contains("list-panes -s -t =dies ") && !list.contains(" -a "),
        "{list}"
    );
    wait_for("dies judged dead", Duration::from_secs(20), || {
        (env.health("dies", "agent") != "healthy").then_some(())
    });
    assert_eq!(env.health("other", "agent"), "healthy");
    // A session that is gone (session-closed always names one) fails the scoped
    // listing: what tmux printed before it is kept, so one spawn, never a listing of
    // every pane, and the agent reads as gone (not as "tmux unknown").
    env.tmux(&["kill-session", "-t", "=other"]);
    fs::remove_file(&log).expect("rm log");
    env.ok(&["hook", "session-closed", "other"]);
    let all = calls(&log);
    assert!(
        !all.iter().any(|c| c.contains("list-panes -a ")),
        "every pane listed for one gone session: {all:#?}"
    );
    assert_eq!(all.len(), 1, "{all:#?}");
    wait_for("other judged gone", Duration::from_secs(20), || {
        (env.health("other", "agent") != "healthy").then_some(())
    });
    let unknown = env.sql("SELECT count(*) FROM events WHERE message LIKE '%tmux unknown%'");
    assert_eq!(unknown, [["0"]]);
}

#[test]
fn run_start_asks_tmux_about_its_own_session_only() {
    let mut env = Env::new();
    env.start("other", &["sleep", "1000"]);
    let log = env.log_tmux_calls();
    env.start("new", &["sleep", "1000"]);
    let all = calls(&log);
    assert!(
        !all.iter().any(|c| c.contains("list-panes")),
        "run start listed panes: {all:#?}"
    );
    // The server answers on its socket: one spawn, the start batch itself.
    assert_eq!(all.len(), 1, "{all:#?}");
    assert!(all[0].contains("new-session"), "{all:#?}");
    assert_eq!(env.health("new", "agent"), "healthy");
    // A name tmux already uses (not by a registered agent) is still refused, by
    // new-session itself, and nothing is registered.
    env.tmux(&["new-session", "-d", "-s", "taken", "sleep 1000"]);
    let ws = env.ws.to_string_lossy().into_owned();
    let out = env.run(&[
        "run",
        "start",
        "--ticket",
        "T-1",
        "--workspace",
        &ws,
        "--id",
        "r2",
        "--session",
        "taken",
        "--",
        "sleep",
        "1000",
    ]);
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    assert!(
        String::from_utf8_lossy(&out.stderr)
            .contains("tmux session taken already exists; choose another with --session"),
        "{out:?}"
    );
    assert_eq!(
        env.sql("SELECT count(*) FROM runs WHERE id = 'r2'"),
        [["0"]]
    );
}

#[test]
fn a_hook_tick_reads_its_own_runs_rows_only() {
    let env = Env::new();
    env.start("other", &["sleep", "1000"]);
    env.start("dies", &["sh", "-c", "sleep 0.5; exit 3"]);
    env.wait_pane_dead("dies");
    // A row of another run that cannot be read: a tick that loads every run's rows
    // fails on it; a hook's tick never reads it.
    env.sql("UPDATE agents SET started_at = 'not a time' WHERE run_id = 'other'");
    let pane = env.tmux_out(&["display-message", "-p", "-t", "=dies:", "#{pane_id}"]);
    env.ok(&["hook", "pane-died", pane.trim(), "dies", "3"]);
    assert_ne!(env.health("dies", "agent"), "healthy");
}

#[test]
fn a_status_job_hands_a_due_tick_to_the_background() {
    let mut env = Env::new();
    env.start("r1", &["sleep", "1000"]);
    env.tick();
    let before = env.sql("SELECT value FROM meta WHERE key = 'last_full_tick'")[0][0].clone();
    // Every observation now takes 2 s (under the status watchdog's 3 s).
    env.tmux_wrapper("case \"$*\" in *list-panes*) sleep 2;; esac");
    std::thread::sleep(Duration::from_millis(1100));
    let t = Instant::now();
    let out = env
        .cmd(&["status", "--format", "plain"])
        .env("TMUX", "/tmp/not-used,1,0")
        .output()
        .expect("status");
    let took = t.elapsed();
    assert!(out.status.success());
    assert!(
        took < Duration::from_millis(1800),
        "the status job waited {took:?} for the tick"
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("1"));
    wait_for("the handed-off tick", Duration::from_secs(30), || {
        let now = env.sql("SELECT value FROM meta WHERE key = 'last_full_tick'")[0][0].clone();
        (now != before).then_some(())
    });
}

#[test]
fn a_timer_firing_spawns_tmux_once() {
    let mut env = Env::new();
    env.start("r1", &["sleep", "1000"]);
    let chain = env
        .sql("SELECT value FROM meta WHERE key = 'timer_chain'")
        .first()
        .map(|r| r[0].clone())
        .unwrap_or_else(|| "0".into());
    let log = env.log_tmux_calls();
    // The tick interval is 1 s: the firing finds a tick due.
    std::thread::sleep(Duration::from_millis(1100));
    env.ok(&["timer", "--chain", &chain]);
    let all = calls(&log);
    assert_eq!(all.len(), 1, "one spawn per firing: {all:#?}");
    assert!(
        all[0].contains("run-shell -b -d") && all[0].contains("list-panes"),
        "{}",
        all[0]
    );
    let due = env.sql("SELECT value FROM meta WHERE key = 'timer_next_due'");
    assert_eq!(due.len(), 1, "the re-arm is recorded");
    // Kill the re-armed chain's firing: only this test's server, by its socket.
    env.tmux(&["kill-server"]);
}

#[test]
fn a_gone_session_of_a_run_leaves_its_other_sessions_observed() {
    let mut env = Env::new();
    env.start("two", &["sleep", "1000"]);
    env.ok(&[
        "run",
        "add-agent",
        "two",
        "--agent",
        "second",
        "--session",
        "two-b",
        "--",
        "sleep",
        "1000",
    ]);
    env.tick();
    // The first session listed goes; the second is asked again on its own.
    env.tmux(&["kill-session", "-t", "=two"]);
    let log = env.log_tmux_calls();
    env.ok(&["hook", "session-closed", "two"]);
    let all = calls(&log);
    assert!(
        !all.iter().any(|c| c.contains("list-panes -a ")),
        "{all:#?}"
    );
    wait_for("the gone agent judged", Duration::from_secs(20), || {
        (env.health("two", "agent") != "healthy").then_some(())
    });
    assert_eq!(env.health("two", "second"), "healthy");
}

#[test]
fn an_alert_silence_hook_rearms_in_its_ticks_own_spawn() {
    let mut env = Env::new();
    env.start("quiet", &["sleep", "1000"]);
    let log = env.log_tmux_calls();
    env.ok(&["hook", "alert-silence", "quiet"]);
    let all = calls(&log);
    assert_eq!(all.len(), 1, "{all:#?}");
    assert!(
        all[0].contains("list-panes -s -t =quiet ")
            && all[0].ends_with("kill-session -C -t =quiet"),
        "{all:#?}"
    );
    // The lock busy: no tick, the session is re-armed on its own.
    let held = env.hold_lock();
    fs::remove_file(&log).expect("rm log");
    env.ok(&["hook", "alert-silence", "quiet"]);
    drop(held);
    let all = calls(&log);
    assert_eq!(all.len(), 1, "{all:#?}");
    assert!(all[0].ends_with("kill-session -C -t =quiet"), "{all:#?}");
}

/// The counts of the status cache file beside the database.
fn cached_counts(env: &Env) -> serde_json::Value {
    let mut p = env.db.clone().into_os_string();
    p.push(".status");
    let text = fs::read_to_string(&p).expect("status cache");
    let c: serde_json::Value = serde_json::from_str(&text).expect("cache json");
    serde_json::json!([
        c["ok"],
        c["guidance"],
        c["blocked"],
        c["done"],
        c["approval"]
    ])
}

#[test]
fn the_status_cache_of_a_tick_counts_what_the_tick_changed() {
    // A steady tick builds the cache from the rows it read; one that changed rows (an
    // agent finished) must count them as they are after it, as the query does.
    let env = Env::new();
    env.start("stays", &["sleep", "1000"]);
    env.start("ends", &["sh", "-c", "sleep 0.5; exit 0"]);
    env.tick();
    let before = cached_counts(&env);
    assert_eq!(before, serde_json::json!([2, 0, 0, 0, 0]));
    // Ticked once tmux knows the exit status (under load it can miss it for a while).
    assert_eq!(env.wait_exit_status("ends"), "0");
    env.tick();
    assert_eq!(env.health("ends", "agent"), "exited");
    let after_tick = cached_counts(&env);
    assert_ne!(after_tick, before);
    // The same counts from the database (no cache: `status` queries it and writes one).
    let mut p = env.db.clone().into_os_string();
    p.push(".status");
    fs::remove_file(&p).expect("rm cache");
    env.ok(&["status", "--no-tick"]);
    assert_eq!(cached_counts(&env), after_tick);
}

/// The status cache file beside the database, parsed.
fn cache_json(env: &Env) -> serde_json::Value {
    let mut p = env.db.clone().into_os_string();
    p.push(".status");
    serde_json::from_str(&fs::read_to_string(&p).expect("status cache")).expect("cache json")
}

fn plant_cache(env: &Env, cache: &serde_json::Value) {
    let mut p = env.db.clone().into_os_string();
    p.push(".status");
    fs::write(&p, serde_json::to_vec(cache).expect("json")).expect("plant cache");
}

#[test]
fn a_quiet_hook_reuses_the_status_counts_until_something_they_count_changes() {
    // At 500 runs the status query was 84% of a hook's instructions. A hook's tick that
    // wrote no status table keeps the cache's counts; one that did counts afresh.
    let env = Env::new();
    env.start("stays", &["sleep", "1000"]);
    env.tick();
    let cache = cache_json(&env);
    assert_eq!(cached_counts(&env), serde_json::json!([1, 0, 0, 0, 0]));
    assert!(cache["status_gen"].is_i64(), "stamped: {cache}");
    // Counts only the cache itself can supply.
    let mut planted = cache.clone();
    planted["by_server"][0]["counts"]["ok"] = serde_json::json!(7);
    plant_cache(&env, &planted);
    let pane = env.tmux_out(&["display-message", "-p", "-t", "=stays:", "#{pane_id}"]);
    env.ok(&["hook", "pane-exited", pane.trim()]);
    assert_eq!(cached_counts(&env), serde_json::json!([7, 0, 0, 0, 0]));
    // A hook whose tick changes a status table (its agent died) counts afresh.
    let pid = env.tmux_out(&["display-message", "-p", "-t", "=stays:", "#{pane_pid}"]);
    let killed = std::process::Command::new("kill")
        .args(["-KILL", pid.trim()])
        .status()
        .expect("kill");
    assert!(killed.success());
    env.wait_pane_dead("stays");
    env.ok(&["hook", "pane-died", pane.trim(), "stays", "137"]);
    // (Counted afresh: whatever the tick made of the death, never the planted 7.)
    let counted = cached_counts(&env);
    let runs: i64 = (0..5).map(|i| counted[i].as_i64().expect("a count")).sum();
    assert_eq!(runs, 1, "{counted}");
    // The same as counting from scratch (no cache: `status` queries and writes one).
    let mut p = env.db.clone().into_os_string();
    p.push(".status");
    fs::remove_file(&p).expect("rm cache");
    env.ok(&["status", "--no-tick"]);
    assert_eq!(cached_counts(&env), counted);
}
