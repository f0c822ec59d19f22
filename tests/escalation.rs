//! Escalation side effects end to end: a symlinked changelog is refused; tmux messages
//! and the bell reach a real client escaped and once per episode; a notify command that
//! hangs is killed after 5 s and the tick never waits for it.

mod common;

use common::{fast_policy, lines_exactly_after_quiet, wait_for, write_exec, Env};
use serde_json::json;
use std::fs;
use std::time::{Duration, Instant};

const WAIT: Duration = Duration::from_secs(30);

fn ask(env: &Env, run: &str, question: &str) {
    let sig = env.ws.join(".metawsm");
    fs::create_dir_all(&sig).expect("mkdir");
    fs::write(
        sig.join("guidance-request.json"),
        json!({"run_id": run, "question": question}).to_string(),
    )
    .expect("write request");
}

fn events(env: &Env, run: &str, kind: &str) -> Vec<String> {
    env.sql(&format!(
        "SELECT message FROM events WHERE run_id = '{run}' AND kind = '{kind}' ORDER BY id"
    ))
    .into_iter()
    .map(|r| r[0].clone())
    .collect()
}

#[test]
fn a_symlinked_changelog_is_refused() {
    let env = Env::new();
    let ticket = env.ws.join("ttmp/T-1--demo");
    fs::create_dir_all(&ticket).expect("ticket dir");
    // The link points inside the workspace, so only O_NOFOLLOW (not the containment
    // check) stands between the entry and the other file.
    let victim = env.ws.join("notes.md");
    fs::write(&victim, "untouched\n").expect("victim");
    std::os::unix::fs::symlink(&victim, ticket.join("changelog.md")).expect("symlink");
    env.start("link", &["sleep", "1000000"]);
    ask(&env, "link", "Which way?");
    env.tick();
    assert_eq!(fs::read_to_string(&victim).expect("victim"), "untouched\n");
    let why = events(&env, "link", "escalation_unwritten");
    assert_eq!(why.len(), 1, "{why:?}");
    // The link itself is left as it was.
    assert!(fs::symlink_metadata(ticket.join("changelog.md"))
        .expect("link")
        .file_type()
        .is_symlink());
}

#[test]
fn tmux_message_and_bell_reach_a_client_escaped_and_once_per_episode() {
    let mut env = Env::with_policy(fast_policy(json!({"operator": {"notify": {
        "tmux_message": true, "bell": true
    }}})));
    let client = env.attach_client();
    // The outer server hears the inner client's terminal: a BEL there is an alert-bell.
    let bells = env.path("bells");
    let hook = format!("run-shell \"echo bell >> '{}'\"", bells.display());
    assert!(client
        .tmux(&["set-hook", "-g", "alert-bell", &hook])
        .status
        .success());
    let calls = env.log_tmux_calls();
    let pwned = env.path("pwned");
    let question = format!("#(touch {}) #[fg=red]#{{session_name}}", pwned.display());
    env.start("esc", &["sleep", "1000000"]);
    ask(&env, "esc", &question);
    for _ in 0..4 {
        let out = env.tick();
        assert!(out.contains("esc escalate_guidance"), "{out}");
        std::thread::sleep(Duration::from_millis(300));
    }
    // One message per episode, its text with every `#` doubled…
    let log = fs::read_to_string(&calls).unwrap_or_default();
    let sent: Vec<&str> = log
        .lines()
        .filter(|l| l.contains("display-message -c"))
        .collect();
    assert_eq!(sent.len(), 1, "{log}");
    assert!(sent[0].contains("##(touch"), "{}", sent[0]);
    assert!(
        sent[0].contains("##[fg=red]##{session_name}"),
        "{}",
        sent[0]
    );
    // …shown literally on the client's status line, never run.
    let want = format!("#(touch {}", pwned.display());
    wait_for("the message on the client", WAIT, || {
        let screen = client.tmux_out(&["capture-pane", "-p", "-t", "=view:"]);
        screen.contains(&want).then_some(())
    });
    assert!(!pwned.exists(), "#() in a message was executed");
    // One bell for the episode.
    lines_exactly_after_quiet(
        &bells,
        "bell",
        1,
        Duration::from_secs(15),
        Duration::from_millis(1500),
    );
}

#[test]
fn a_hanging_notify_is_killed_after_5_s_and_the_tick_never_waits() {
    let env = Env::new();
    let pidfile = env.path("notify.pid");
    let script = env.path("hang.sh");
    write_exec(
        &script,
        &format!(
            "#!/bin/sh\necho $$ > '{}.tmp' && mv '{0}.tmp' '{0}'\nexec sleep 1000\n",
            pidfile.display()
        ),
    );
    env.write_policy(&fast_policy(json!({"operator": {"notify": {
        "command": [script.to_string_lossy()]
    }}})));
    env.start("hang", &["sleep", "1000000"]);
    ask(&env, "hang", "Anyone there?");
    let t = Instant::now();
    let out = env.tick();
    let tick_took = t.elapsed();
    assert!(out.contains("hang escalate_guidance"), "{out}");
    assert!(
        tick_took < Duration::from_secs(3),
        "the tick waited: {tick_took:?}"
    );
    let pid: i32 = wait_for("the notify command to start", WAIT, || {
        fs::read_to_string(&pidfile).ok()?.trim().parse().ok()
    });
    let alive = |pid: i32| {
        std::process::Command::new("kill")
            .args(["-0", &pid.to_string()])
            .stderr(std::process::Stdio::null())
            .status()
            .is_ok_and(|s| s.success())
    };
    assert!(alive(pid), "started");
    let gone = wait_for("the notify command killed", WAIT, || {
        (!alive(pid)).then(|| t.elapsed())
    });
    assert!(
        gone >= Duration::from_millis(4900),
        "killed before its 5 s: {gone:?}"
    );
    assert!(gone < Duration::from_secs(15), "{gone:?}");
    wait_for("notify_failed recorded", WAIT, || {
        events(&env, "hang", "notify_failed")
            .iter()
            .any(|m| m.contains("timed out after 5s"))
            .then_some(())
    });
}
