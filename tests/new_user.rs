//! The small things a new user trips over: states and names shown rightly, state file
//! modes, the LLM command found whichever process ticks, evidence kept before a stop,
//! escalations that could not be written made visible. Real tmux, files and processes.

mod common;

use common::Env;
use std::fs;

#[test]
fn a_waiting_agent_is_logged_as_waiting_and_a_missing_name_has_a_placeholder() {
    let env = Env::new();
    env.start("r1", &["sleep", "100000"]);
    env.tick();
    env.ok(&["signal", "--run", "r1", "--agent", "agent", "waiting"]);
    env.tick();
    let log = env.ok(&["log", "--run", "r1"]);
    let line = log
        .lines()
        .find(|l| l.contains(" health "))
        .unwrap_or_else(|| panic!("no health line: {log}"));
    assert!(line.contains("-> waiting"), "{line}");
    assert!(!line.contains("idle for"), "{line}");

    // A guidance request that names no agent.
    let dir = env.ws.join(".metawsm");
    fs::create_dir_all(&dir).expect("dir");
    fs::write(
        dir.join("guidance-request.json"),
        br#"{"question": "Which database?"}"#,
    )
    .expect("request");
    env.tick();
    let log = env.ok(&["log", "--run", "r1"]);
    assert!(!log.contains("agent= "), "{log}");
    let show = env.ok(&["run", "show", "r1"]);
    let g = show
        .lines()
        .find(|l| l.starts_with("guidance:") && l.contains("Which database?"))
        .unwrap_or_else(|| panic!("no guidance line: {show}"));
    // #1 is the waiting agent's own question (typed into its pane), #2 the file's.
    assert!(g.contains("#2 (unnamed): Which database?"), "{g}");
}

#[test]
fn doctor_checks_the_modes_of_the_state_files() {
    use std::os::unix::fs::PermissionsExt;
    let env = Env::new();
    env.start("r1", &["sleep", "100000"]);
    env.tick();
    let text = String::from_utf8_lossy(&env.run(&["doctor"]).stdout).into_owned();
    assert!(text.contains("ok   state modes: private"), "{text}");
    let dir = env.db.parent().expect("dir").to_path_buf();
    fs::set_permissions(&dir, fs::Permissions::from_mode(0o755)).expect("chmod");
    let lock = env.path("state/state.db.lock");
    fs::set_permissions(&lock, fs::Permissions::from_mode(0o644)).expect("chmod");
    let out = env.run(&["doctor"]);
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let line = text
        .lines()
        .find(|l| l.contains("state modes"))
        .unwrap_or_else(|| panic!("{text}"));
    assert!(line.starts_with("FAIL"), "{line}");
    assert!(line.contains("0755, want 0700 (fix: chmod 700"), "{line}");
    assert!(line.contains("state.db.lock is 0644"), "{line}");
    assert_eq!(out.status.code(), Some(1));
}

fn fake_codex_dir(env: &Env) -> std::path::PathBuf {
    let dir = env.path("userbin");
    fs::create_dir_all(&dir).expect("userbin");
    let src = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fake-llm/fake-codex");
    common::write_exec(
        &dir.join("codex"),
        &fs::read_to_string(src).expect("fake-codex"),
    );
    dir
}

/// The README quick start, literally, on a machine whose tmux server was started before
/// `codex` was on PATH (an npm prefix, ~/.local/bin…): install.sh loads the plugin into
/// the running server, `run start` from the user's shell registers the run, and the
/// server's own ticks (the timer, with the server's PATH) get an LLM proposal.
#[test]
fn quick_start_ends_with_a_run_in_the_bar_and_a_proposal_from_a_codex_off_the_servers_path() {
    use std::process::{Command, Stdio};
    let env = Env::new();
    assert!(env.tmux(&["kill-server"]).status.success());
    common::wait_for(
        "the old server gone",
        std::time::Duration::from_secs(10),
        || {
            std::os::unix::net::UnixStream::connect(&env.sock)
                .is_err()
                .then_some(())
        },
    );
    let home = env.dir.path().to_path_buf();
    let plain_path = std::env::var("PATH").unwrap_or_default();
    let which = Command::new("sh")
        .args(["-c", "command -v codex"])
        .env("PATH", &plain_path)
        .output()
        .expect("sh");
    if which.status.success() {
        eprintln!("skipped: a real codex is on this machine's PATH");
        return;
    }
    let userbin = fake_codex_dir(&env);
    let user_path = format!("{}:{plain_path}", userbin.display());
    let policy = common::fast_policy(serde_json::json!({
        "operator": {"llm": {"mode": "assist", "provider": "codex", "command": "codex",
                             "min_interval_seconds": 1, "timeout_seconds": 20}}
    }));
    fs::create_dir_all(home.join(".config/metawsm")).expect("config dir");
    fs::write(
        home.join(".config/metawsm/policy.json"),
        serde_json::to_string(&policy).expect("json"),
    )
    .expect("policy");
    let ws = env.path("mw-7");
    fs::create_dir_all(&ws).expect("ws");
    let sock = env.sock.to_string_lossy().into_owned();
    let user = |program: &std::path::Path, path: &str| {
        let mut c = Command::new(program);
        c.env_clear()
            .env("HOME", &home)
            .env("PATH", path)
            .env("TMUX_TMPDIR", &home)
            .env("METAWSM_TMUX_SOCKET", &sock)
            .env("LC_ALL", "C.UTF-8")
            .env("TERM", "xterm")
            .stdin(Stdio::null());
        c
    };
    // The user's tmux server, started before codex was on PATH.
    let started = user(std::path::Path::new("tmux"), &plain_path)
        .args([
            "-S",
            &sock,
            "-f",
            "/dev/null",
            "new-session",
            "-d",
            "-s",
            "user",
            "sleep 1000000",
        ])
        .status()
        .expect("tmux");
    assert!(started.success());

    // ./install.sh
    let install = user(
        &std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("install.sh"),
        &plain_path,
    )
    .env("METAWSM_INSTALL_BINARY", common::BIN)
    .arg("--yes")
    .output()
    .expect("install.sh");
    let said = String::from_utf8_lossy(&install.stdout).into_owned();
    assert!(install.status.success(), "{said}");
    assert!(
        said.contains("loaded the plugin into the running server"),
        "{said}"
    );
    let bin = home.join(".local/bin/metawsm-tick");

    // metawsm-tick run start --ticket MW-7 --workspace ~/work/mw-7 -- <agent>
    let out = user(&bin, &user_path)
        .args(["run", "start", "--ticket", "MW-7", "--workspace"])
        .arg(&ws)
        .args(["--", "sleep", "1000000"])
        .output()
        .expect("run start");
    let said = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "{said} {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let id = said
        .split_whitespace()
        .nth(1)
        .expect("started <id>")
        .to_string();

    // Nobody ticks by hand: the server's timer (with the server's PATH) does.
    let show = || -> serde_json::Value {
        let out = user(&bin, &plain_path)
            .args(["run", "show", &id, "--json"])
            .output()
            .expect("show");
        serde_json::from_slice(&out.stdout).unwrap_or_default()
    };
    let llm = common::wait_for(
        "an LLM answer from the server's ticks",
        std::time::Duration::from_secs(60),
        || {
            let v = show();
            let llm = v["llm"].clone();
            (llm["state"] == "done" || llm["state"] == "error").then_some(llm)
        },
    );
    assert_eq!(llm["state"], "done", "{llm}");
    assert!(llm["proposal"]["intent"].is_string(), "{llm}");

    // The run is in the bar.
    let bar = user(&bin, &plain_path)
        .args(["status", "--no-tick", "--format", "plain"])
        .output()
        .expect("status");
    assert_eq!(String::from_utf8_lossy(&bar.stdout).trim(), "⚙1");
    let right = env.tmux_out(&["show-options", "-gv", "status-right"]);
    assert!(right.contains("status)"), "{right}");
    let doctor = user(&bin, &plain_path)
        .arg("doctor")
        .output()
        .expect("doctor");
    let text = String::from_utf8_lossy(&doctor.stdout).into_owned();
    assert!(text.contains("ok   llm command: codex -> "), "{text}");
    assert!(text.contains("(recorded)"), "{text}");
}

#[test]
fn an_llm_that_could_not_start_is_asked_again_soon_and_doctor_says_why() {
    // Thresholds far away: the situation (and so the question) stays the same.
    let env = Env::with_policy(common::fast_policy(serde_json::json!({
        "health": {"idle_seconds": 300, "activity_stalled_seconds": 900},
        "operator": {"llm": {"mode": "assist", "provider": "codex",
                             "command": "metawsm-no-such-llm", "min_interval_seconds": 1}}
    })));
    env.start("r1", &["sleep", "100000"]);
    let errors = || {
        env.sql("SELECT count(*) FROM events WHERE kind = 'llm' AND to_state = 'error'")[0][0]
            .parse::<i64>()
            .unwrap_or(0)
    };
    env.ok(&["tick", "--wait-llm"]);
    // (--wait-llm ticks again afterwards, which may already have asked again.)
    assert!(errors() >= 1);
    let err = env.sql(
        "SELECT message FROM events WHERE kind = 'llm' AND to_state = 'error' ORDER BY id LIMIT 1",
    )[0][0]
        .clone();
    assert!(err.contains("failed to start"), "{err}");
    // The situation is unchanged: a model error would wait ten minutes; this is retried.
    common::wait_for("a second try", std::time::Duration::from_secs(20), || {
        env.ok(&["tick", "--wait-llm"]);
        (errors() >= 2).then_some(())
    });
    let text = String::from_utf8_lossy(&env.run(&["doctor"]).stdout).into_owned();
    assert!(
        text.contains("FAIL llm command: metawsm-no-such-llm is not on the tmux server's PATH"),
        "{text}"
    );
}

#[test]
fn a_panes_last_lines_are_kept_before_a_stop_or_a_restart() {
    let env = Env::new();
    env.start(
        "r1",
        &[
            "sh",
            "-c",
            "echo hello-evidence; printf '\\033[31mred\\033[0m\\n'; sleep 100000",
        ],
    );
    env.start("r2", &["sh", "-c", "echo crash-evidence; exit 3"]);
    common::wait_for(
        "the agent's output",
        std::time::Duration::from_secs(20),
        || {
            env.tmux_out(&["capture-pane", "-p", "-t", "=r1:"])
                .contains("red")
                .then_some(())
        },
    );
    // By hand: run stop.
    env.ok(&["run", "stop", "r1"]);
    let show = env.ok(&["run", "show", "r1"]);
    assert!(
        show.contains("last output of agent (kept before the stop at "),
        "{show}"
    );
    assert!(show.contains("  | hello-evidence"), "{show}");
    assert!(show.contains("  | red"), "escapes removed: {show}");
    let kept = &env.show("r1")["last_output"][0];
    assert!(
        !kept["text"].as_str().unwrap_or("").contains('\u{1b}'),
        "{kept}"
    );
    // By the rules: a crash-looping agent is restarted; its dead pane's output is kept.
    common::wait_for("a rule restart", std::time::Duration::from_secs(30), || {
        env.tick();
        (!env
            .sql("SELECT id FROM events WHERE run_id = 'r2' AND kind = 'restart'")
            .is_empty())
        .then_some(())
    });
    let rows = env.sql(
        "SELECT to_state, source, message FROM events WHERE run_id = 'r2' AND kind = 'evidence'",
    );
    assert_eq!(rows.len(), 1, "{rows:?}");
    assert_eq!(rows[0][0], "restart");
    assert_eq!(rows[0][1], "rule");
    assert!(rows[0][2].contains("crash-evidence"), "{rows:?}");
}

#[test]
fn run_show_says_when_an_escalation_could_not_be_written() {
    let env = Env::new();
    env.start("r1", &["sleep", "100000"]);
    let dir = env.ws.join(".metawsm");
    fs::create_dir_all(&dir).expect("dir");
    fs::write(
        dir.join("guidance-request.json"),
        br#"{"agent": "agent", "question": "Which database?"}"#,
    )
    .expect("request");
    env.tick();
    let show = env.ok(&["run", "show", "r1"]);
    assert!(
        show.contains("escalation: NOT WRITTEN to the ticket's changelog (ticket T-1: "),
        "{show}"
    );
    let v = env.show("r1");
    assert!(
        v["escalation_unwritten"]
            .as_str()
            .is_some_and(|w| w.contains("no ticket directory")),
        "{v}"
    );
}
