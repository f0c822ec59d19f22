//! Coming from the original Go metawsm: its notify command form, its gate, its selectors,
//! its changelog entry, its project policy and its database are taken over unchanged.

mod common;

use common::{fast_policy, lines_exactly_after_quiet, wait_for, Env};
use serde_json::{json, Value};
use std::fs;
use std::time::Duration;

fn events(env: &Env, run: &str, kind: &str) -> Vec<Value> {
    let all: Value =
        serde_json::from_str(&env.ok(&["log", "--run", run, "--limit", "1000", "--json"]))
            .expect("json");
    all.as_array()
        .map(|a| a.iter().filter(|e| e["kind"] == kind).cloned().collect())
        .unwrap_or_default()
}

fn sleeper(env: &Env, id: &str) {
    env.start(id, &["sh", "-c", "while :; do echo tick; sleep 1; done"]);
}

fn ask(env: &Env, question: &str) {
    let sig = env.ws.join(".metawsm");
    fs::create_dir_all(&sig).expect("mkdir");
    fs::write(
        sig.join("guidance-request.json"),
        json!({"agent": "agent", "question": question}).to_string(),
    )
    .expect("request");
}

/// A string notify command is a shell command (`sh -c`), as the original's `--notify-cmd`
/// was; METAWSM_RUN_STATUS is the status after this tick's transition.
#[test]
fn notify_string_runs_through_a_shell_with_the_new_status() {
    let env = Env::new();
    let log = env.path("notes.log");
    let cmd = format!(
        "printf '%s|%s|%s\\n' \"$METAWSM_EVENT\" \"$METAWSM_RUN_STATUS\" \"$METAWSM_INTENT\" >> '{}'",
        log.display()
    );
    env.write_policy(&fast_policy(
        json!({"operator": {"notify": {"command": cmd}}}),
    ));
    sleeper(&env, "r1");
    ask(&env, "Which database?");
    env.tick();
    // Exactly one line, and no late duplicate.
    lines_exactly_after_quiet(
        &log,
        "|",
        1,
        Duration::from_secs(10),
        Duration::from_millis(1500),
    );
    let notes = fs::read_to_string(&log).unwrap_or_default();
    assert_eq!(
        notes.trim(),
        "guidance_needed|awaiting_guidance|escalate_guidance"
    );
    assert!(events(&env, "r1", "notify_failed").is_empty());
}

/// A notify command that fails or hangs is no longer silent: `notify_failed` in the log
/// and in doctor.
#[test]
fn notify_failure_is_recorded_and_shown() {
    let env = Env::new();
    env.write_policy(&fast_policy(
        json!({"operator": {"notify": {"command": "echo nope >&2; exit 3"}}}),
    ));
    sleeper(&env, "r1");
    ask(&env, "Which database?");
    env.tick();
    let ev = wait_for("notify_failed", Duration::from_secs(10), || {
        let e = events(&env, "r1", "notify_failed");
        (!e.is_empty()).then_some(e)
    });
    let msg = ev[0]["message"].as_str().unwrap_or_default();
    assert!(
        msg.starts_with("guidance_needed: notify command \"sh\" exited with status 3"),
        "{msg}"
    );
    let doctor = String::from_utf8_lossy(&env.run(&["doctor"]).stdout).into_owned();
    assert!(
        doctor
            .lines()
            .any(|l| l.starts_with("warn") && l.contains("notify") && l.contains("status 3")),
        "{doctor}"
    );
}

/// A custom `operator.llm.command` (neither codex nor claude) is called the way the original
/// called it: `<command> exec [--model M] <prompt>`, the answer on stdout.
#[test]
fn custom_llm_command_is_called_as_the_original_did() {
    let env = Env::new();
    let argv_log = env.path("argv.log");
    let wrapper = env.path("my-llm");
    common::write_exec(
        &wrapper,
        &format!(
            "#!/bin/sh\n[ \"$1\" = exec ] || exit 9\nprintf '%s\\n' \"$1 $2 $3\" >> '{log}'\n\
             for last; do :; done\ncase \"$last\" in *'\"run_id\":\"r1\"'*) ;; *) exit 8;; esac\n\
             echo 'thinking…'\n\
             echo '{{\"intent\":\"escalate_blocked\",\"target_run\":\"r1\",\"reason\":\"wrapper says\",\"confidence\":0.9,\"needs_human\":true}}'\n",
            log = argv_log.display()
        ),
    );
    env.write_policy(&fast_policy(json!({"operator": {"llm": {
        "mode": "assist", "command": wrapper.to_string_lossy(), "model": "m1",
        "min_interval_seconds": 0
    }}})));
    sleeper(&env, "r1");
    ask(&env, "Which database?");
    env.ok(&["tick", "--wait-llm"]);
    let proposals = events(&env, "r1", "llm");
    assert!(
        proposals
            .iter()
            .any(|e| e["to"] == "proposal" && e["message"].to_string().contains("wrapper says")),
        "{proposals:?}"
    );
    let argv = fs::read_to_string(&argv_log).expect("wrapper ran");
    assert!(argv.starts_with("exec --model m1"), "{argv}");
    let policy: Value = serde_json::from_str(&env.ok(&["policy", "show"])).expect("json");
    assert_eq!(policy["operator"]["llm"]["provider"], "metawsm");
}

fn file_state(p: &std::path::Path) -> (Vec<u8>, std::time::SystemTime) {
    let bytes = fs::read(p).expect("read original db");
    let mtime = fs::metadata(p).and_then(|m| m.modified()).expect("mtime");
    (bytes, mtime)
}

/// `import` takes over the original's active runs from a database in its schema: the
/// original is never modified, sessions are adopted as they are (not restarted), restart
/// state and pending questions come along, a second import changes nothing, and a pane
/// whose agent returned to the wrapper's shell is judged by its exit marker.
#[test]
fn import_takes_over_the_original_database() {
    use common::original::{workspace_config, wrapped, OriginalDb};
    let env = Env::new();
    let config = env.path("config");
    let proj = env.path("proj");
    let ws = env.path("workspaces/mw-7-20260207-075350");
    fs::create_dir_all(ws.join("app/.metawsm")).expect("mkdir");
    workspace_config(&config, "mw-7-20260207-075350", &ws);
    let db_path = proj.join(".metawsm/metawsm.db");
    {
        let db = OriginalDb::create(&db_path);
        db.run(
            "run-20260207-075350",
            "awaiting_guidance",
            &["MW-7"],
            json!({"doc_home_repo": "app"}),
            &[
                ("coder", "mw-7-20260207-075350", "coder-mw-7", "sleep 600"),
                (
                    "planner",
                    "mw-7-20260207-075350",
                    "planner-mw-7",
                    "(exit 3)",
                ),
            ],
        );
        db.op_state(
            "run-20260207-075350",
            2,
            "2026-02-07T08:00:00-08:00",
            "2099-01-01T00:00:00-08:00",
        );
        db.guidance(
            "run-20260207-075350",
            "mw-7-20260207-075350",
            "planner",
            "Which database?",
            "pending",
        );
        db.guidance(
            "run-20260207-075350",
            "mw-7-20260207-075350",
            "planner",
            "Old one?",
            "answered",
        );
        db.run(
            "run-done",
            "completed",
            &["MW-1"],
            json!({}),
            &[("a", "mw-7-20260207-075350", "a-done", "true")],
        );
        db.run(
            "run-lost",
            "running",
            &["MW-9"],
            json!({}),
            &[("a", "nowhere", "a-lost", "true")],
        );
    }
    // The original's panes: its wrapper keeps a shell after the agent ends.
    let app = ws.join("app");
    // HOME: the login shell must not read this machine's own profile.
    let home = format!("HOME={}", env.dir.path().display());
    for (session, cmd) in [("coder-mw-7", "sleep 600"), ("planner-mw-7", "(exit 3)")] {
        let out = env.tmux(&[
            "new-session",
            "-d",
            "-e",
            &home,
            "-s",
            session,
            "-c",
            &app.to_string_lossy(),
            &wrapped(cmd),
        ]);
        assert!(out.status.success(), "{out:?}");
    }
    let pid = |s: &str| {
        env.tmux_out(&[
            "display-message",
            "-p",
            "-t",
            &format!("={s}:"),
            "#{pane_pid}",
        ])
    };
    let coder_pid = pid("coder-mw-7");
    let before = file_state(&db_path);
    let import = |extra: &[&str]| {
        let mut args = vec!["import"];
        args.extend_from_slice(extra);
        let out = env
            .cmd(&args)
            .current_dir(&proj)
            .env("XDG_CONFIG_HOME", &config)
            .output()
            .expect("import");
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
        )
    };

    let (code, out) = import(&["--dry-run"]);
    assert_eq!(code, Some(1), "run-lost cannot be resolved: {out}");
    assert!(
        out.contains("run run-20260207-075350: would import (awaiting_guidance; tickets MW-7"),
        "{out}"
    );
    assert!(out.contains("dry run: nothing written"), "{out}");
    assert!(!env.db.exists(), "a dry run creates nothing");

    let (code, out) = import(&[]);
    assert_eq!(code, Some(1), "{out}");
    assert!(out.contains("run run-20260207-075350: imported"), "{out}");
    assert!(out.contains("coder (session coder-mw-7, present)"), "{out}");
    assert!(
        out.contains("run run-lost: not imported: read workspace config"),
        "{out}"
    );
    assert!(
        !out.contains("run-done"),
        "completed runs are not active: {out}"
    );

    let show = env.show("run-20260207-075350");
    assert_eq!(show["status"], "awaiting_guidance");
    assert_eq!(show["tickets"], json!(["MW-7"]));
    assert_eq!(show["workspace"], ws.to_string_lossy().as_ref());
    assert_eq!(show["doc_home_repo"], "app");
    assert_eq!(show["operator"]["restart_attempts"], 2);
    assert!(show["operator"]["cooldown_until"].as_i64().unwrap_or(0) > 4_000_000_000);
    let guidance = show["guidance"].as_array().cloned().unwrap_or_default();
    assert_eq!(guidance.len(), 1, "{show}");
    assert_eq!(guidance[0]["question"], "Which database?");
    assert_eq!(guidance[0]["agent"], "planner");

    // Idempotent: a second import reports and skips, and changes nothing.
    let rows = |env: &Env| env.sql("SELECT count(*) FROM events").concat();
    let n = rows(&env);
    let (_, out) = import(&["--from", &db_path.to_string_lossy()]);
    assert!(
        out.contains("run run-20260207-075350: skipped: already exists"),
        "{out}"
    );
    assert_eq!(rows(&env), n);

    // The original's file is never modified, and nothing is left beside it.
    assert!(before == file_state(&db_path), "original database changed");
    let beside: Vec<_> = fs::read_dir(proj.join(".metawsm"))
        .expect("ls")
        .filter_map(|e| e.ok().map(|e| e.file_name()))
        .collect();
    assert_eq!(beside, vec![std::ffi::OsString::from("metawsm.db")]);

    // Adopted, not restarted; the returned-to-shell pane is judged by its marker.
    wait_for("planner marker", Duration::from_secs(15), || {
        env.tick();
        (env.health("run-20260207-075350", "planner") == "dead").then_some(())
    });
    assert_eq!(pid("coder-mw-7"), coder_pid, "coder was restarted");
    let show = env.show("run-20260207-075350");
    let planner = show["agents"]
        .as_array()
        .and_then(|a| a.iter().find(|x| x["name"] == "planner").cloned())
        .expect("planner");
    assert_eq!(planner["exit_status"], 3, "{planner}");
    assert_ne!(env.health("run-20260207-075350", "coder"), "dead");
}

/// The original's changelog entry, found in a docmgr layout without --doc-home-repo
/// (`<ws>/<repo>/ttmp/YYYY/MM/DD/TICKET--slug/`), never glued to a last line that lacks
/// its newline; the guidance response names the agent as the original did.
#[test]
fn changelog_entry_as_the_original_in_a_docmgr_tree() {
    let env = Env::new();
    let ticket = env
        .ws
        .join("metawsm/ttmp/2026/02/07/T-1--bootstrap-context");
    fs::create_dir_all(&ticket).expect("ticket dir");
    fs::create_dir_all(env.ws.join("other/ttmp/2026/02/07/T-2--x")).expect("decoy");
    let log = ticket.join("changelog.md");
    fs::write(&log, "# Changelog\n\n- earlier work").expect("changelog");
    sleeper(&env, "r1");
    let sig = env.ws.join(".metawsm");
    fs::create_dir_all(&sig).expect("mkdir");
    // No "agent" key: the run's only agent asked.
    fs::write(
        sig.join("guidance-request.json"),
        r#"{"question":"Which database?","context":{"options":["pg","sqlite"]}}"#,
    )
    .expect("request");
    // The heading carries the local offset, as the original's did.
    let out = env
        .cmd(&["tick"])
        .env("TZ", "PST+8")
        .output()
        .expect("tick");
    let out = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(!out.contains("not-written"), "{out}");
    let text = fs::read_to_string(&log).expect("read");
    let (before, entry) = text.split_once("\n## ").expect("an entry");
    assert_eq!(before, "# Changelog\n\n- earlier work\n", "{text}");
    let lines: Vec<&str> = entry.lines().collect();
    assert!(
        lines[0].len() == 25 && lines[0].ends_with("-08:00"),
        "{text}"
    );
    assert_eq!(
        &lines[1..4],
        &[
            "",
            "- Operator escalation for run `r1`",
            "- Intent: `escalate_guidance`",
        ],
        "{text}"
    );
    assert!(lines[4].starts_with("- Summary: ") && lines[4].ends_with("Which database?"));
    assert_eq!(
        &lines[5..7],
        &[
            "- Requested decision: answer the agent's question with the command below.",
            "- Question: Which database?",
        ],
        "{text}"
    );
    assert_eq!(
        lines.last().copied(),
        Some("- Answer with: `metawsm-tick guide r1 --answer '…'`"),
        "{text}"
    );
    env.ok(&["guide", "r1", "--answer", "sqlite"]);
    let resp: Value = serde_json::from_str(
        &fs::read_to_string(sig.join("guidance-response.json")).expect("response"),
    )
    .expect("json");
    assert_eq!(resp["agent"], "agent", "{resp}");
    assert_eq!(resp["answer"], "sqlite");
}

/// No ticket directory: the tick line and the status bar say so, not only the log.
#[test]
fn unwritten_escalation_is_shown() {
    let env = Env::new();
    sleeper(&env, "r1");
    ask(&env, "Which database?");
    let out = env.tick();
    assert!(
        out.contains("escalation=not-written (ticket T-1: no ticket directory for T-1"),
        "{out}"
    );
    let bar = env.ok(&["status", "--format", "plain", "--no-tick"]);
    assert!(bar.contains("metawsm:!changelog"), "{bar}");
    // The ticket appears: the next escalation episode is written and the mark goes.
    fs::create_dir_all(env.ws.join("ttmp/T-1--demo")).expect("ticket");
    env.ok(&["guide", "r1", "--answer", "pg"]);
    ask(&env, "And the schema?");
    let out = env.tick();
    assert!(!out.contains("not-written"), "{out}");
    let bar = env.ok(&["status", "--format", "plain", "--no-tick"]);
    assert!(!bar.contains("metawsm:!changelog"), "{bar}");
}

/// `--ticket T` as the original accepted it: the ticket's one active run; two → exit 2
/// listing them; none → exit 1.
#[test]
fn ticket_selects_its_one_active_run() {
    let env = Env::new();
    sleeper(&env, "r1");
    let show: Value =
        serde_json::from_str(&env.ok(&["run", "show", "--ticket", "T-1", "--json"])).expect("json");
    assert_eq!(show["id"], "r1");
    let out = env.ok(&["tick", "--ticket", "T-1"]);
    assert!(out.contains(" r1 "), "{out}");
    ask(&env, "Which database?");
    env.tick();
    env.ok(&["guide", "--ticket", "T-1", "--answer", "pg"]);
    sleeper(&env, "r2");
    for args in [
        &["run", "show", "--ticket", "T-1"][..],
        &["run", "stop", "--ticket", "T-1"],
        &["run", "restart", "--ticket", "T-1"],
        &["tick", "--ticket", "T-1"],
        &["guide", "--ticket", "T-1", "--answer", "x"],
    ] {
        let out = env.run(args);
        assert_eq!(out.status.code(), Some(2), "{args:?}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(
            err.contains("ticket T-1 has 2 active runs: r1 (running), r2 (running)"),
            "{args:?}: {err}"
        );
    }
    assert_eq!(
        env.run(&["run", "stop", "--ticket", "NOPE"]).status.code(),
        Some(1)
    );
    env.ok(&["run", "stop", "r2"]);
    env.ok(&["run", "stop", "--ticket", "T-1"]);
    assert_eq!(env.show("r1")["status"], "stopped");
}

/// `tick --dry-run` previews the action corroboration will lead to (the original's dry
/// run showed the restart), and writes nothing: repeated dry runs show the same preview.
#[test]
fn dry_run_previews_the_restart() {
    let env = Env::new();
    env.start("r1", &["sh", "-c", "exit 1"]);
    wait_for("pane dead", Duration::from_secs(15), || {
        env.tmux_out(&["display-message", "-p", "-t", "=r1:", "#{pane_dead}"])
            .trim()
            .eq("1")
            .then_some(())
    });
    let before = env.sql("SELECT count(*) FROM events").concat();
    for _ in 0..2 {
        let out = env.ok(&["tick", "--dry-run"]);
        assert!(
            out.contains("awaiting corroboration")
                && out.contains("; would auto_restart after 1 more unhealthy observation"),
            "{out}"
        );
    }
    assert_eq!(env.sql("SELECT count(*) FROM events").concat(), before);
    let show = env.show("r1");
    assert_eq!(show["operator"]["unhealthy_streak"], 0);
    assert_eq!(show["operator"]["restart_attempts"], 0);
}

/// The binary without `--policy`: the project's and the user's files decide.
fn bare(env: &Env, cwd: &std::path::Path, args: &[&str]) -> std::process::Output {
    std::process::Command::new(common::BIN)
        .arg("--db")
        .arg(&env.db)
        .arg("--tmux-socket")
        .arg(&env.sock)
        .args(args)
        .current_dir(cwd)
        .env_remove("TMUX")
        .env_remove("TMUX_PANE")
        .env_remove("METAWSM_DB")
        .env_remove("METAWSM_POLICY")
        .env_remove("METAWSM_TMUX_SOCKET")
        .env("HOME", env.dir.path())
        .env("XDG_CONFIG_HOME", env.path("config"))
        .stdin(std::process::Stdio::null())
        .output()
        .expect("run binary")
}

/// A `--policy` (or `$METAWSM_POLICY`) that does not exist is an error, not the defaults.
#[test]
fn missing_explicit_policy_is_an_error() {
    let env = Env::new();
    let out = env.run(&["--policy", "/nonexistent/policy.json", "tick"]);
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("policy /nonexistent/policy.json: no such file (given by --policy)"),
        "{err}"
    );
    let out = bare(&env, env.dir.path(), &["tick"]);
    assert_eq!(out.status.code(), Some(0), "no policy anywhere: defaults");
}

/// The project's `.metawsm/policy.json` (the original's own file, here its fixture with
/// `llm.mode: off`) is recorded on the run and judges it; `run show` and `doctor` say so.
#[test]
fn each_run_is_judged_by_its_project_policy() {
    let env = Env::new();
    let proj = env.path("proj");
    fs::create_dir_all(proj.join(".metawsm")).expect("mkdir");
    let fixture = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/fixtures/policy/metawsm-policy.a3640a4.json"
    );
    let mut p: Value =
        serde_json::from_str(&fs::read_to_string(fixture).expect("fixture")).expect("json");
    let fast =
        fast_policy(json!({"operator": {"llm": {"mode": "off"}, "unhealthy_confirmations": 1}}));
    for k in ["health", "operator"] {
        p[k] = fast[k].clone();
    }
    let project_file = proj.join(".metawsm/policy.json");
    fs::write(&project_file, p.to_string()).expect("project policy");
    // The user's own file says assist: it applies only to runs without a project policy.
    fs::create_dir_all(env.path("config/metawsm")).expect("mkdir");
    let user =
        fast_policy(json!({"operator": {"llm": {"mode": "assist"}, "unhealthy_confirmations": 1}}));
    fs::write(env.path("config/metawsm/policy.json"), user.to_string()).expect("user policy");
    let other = env.path("elsewhere");
    fs::create_dir_all(&other).expect("mkdir");
    let ws = env.ws.to_string_lossy().into_owned();
    for (id, cwd) in [("inproj", &proj), ("outside", &other)] {
        let out = bare(
            &env,
            cwd,
            &[
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
                "sh",
                "-c",
                "exit 1",
            ],
        );
        assert!(out.status.success(), "{out:?}");
    }
    let show: Value =
        serde_json::from_slice(&bare(&env, &proj, &["run", "show", "inproj", "--json"]).stdout)
            .expect("json");
    assert_eq!(
        show["policy"],
        format!("{} (project)", project_file.display()),
        "{show}"
    );
    let actions = wait_for("both decided", Duration::from_secs(20), || {
        let out = String::from_utf8_lossy(&bare(&env, &other, &["tick"]).stdout).into_owned();
        let line = |id: &str| {
            out.lines()
                .find(|l| l.contains(&format!(" {id} auto_restart ")))
                .map(str::to_string)
        };
        match (line("inproj"), line("outside")) {
            (Some(a), Some(b)) => Some((a, b)),
            _ => None,
        }
    });
    assert!(
        actions.0.contains("action=ok"),
        "project policy (off) restarts: {actions:?}"
    );
    assert!(
        actions.1.contains("action=awaiting-approval (assist mode)"),
        "user policy (assist): {actions:?}"
    );
    // Read again at every use: an edit applies at once (here a broken file shows).
    fs::write(&project_file, "{ broken").expect("edit");
    let doctor = String::from_utf8_lossy(&bare(&env, &other, &["doctor"]).stdout).into_owned();
    assert!(
        doctor
            .lines()
            .any(|l| l.starts_with("FAIL") && l.contains("policy inproj")),
        "{doctor}"
    );
    let out = String::from_utf8_lossy(&bare(&env, &other, &["tick"]).stdout).into_owned();
    assert!(
        out.lines()
            .any(|l| l.contains(" inproj ") && l.contains(" policy=unusable (policy ")),
        "{out}"
    );
    fs::write(&project_file, p.to_string()).expect("restore");
    let doctor = String::from_utf8_lossy(&bare(&env, &other, &["doctor"]).stdout).into_owned();
    assert!(
        doctor.contains("policy inproj")
            && doctor.contains(&format!("{} (project)", project_file.display())),
        "{doctor}"
    );
}

/// `run adopt` of a pane the original started: its wrapper's exit marker is read too.
#[test]
fn adopted_original_pane_is_judged_by_its_exit_marker() {
    let env = Env::new();
    let home = format!("HOME={}", env.dir.path().display());
    let out = env.tmux(&[
        "new-session",
        "-d",
        "-e",
        &home,
        "-s",
        "orig-agent",
        "-c",
        &env.ws.to_string_lossy(),
        &common::original::wrapped("(exit 4)"),
    ]);
    assert!(out.status.success(), "{out:?}");
    let ws = env.ws.to_string_lossy().into_owned();
    env.ok(&[
        "run",
        "adopt",
        "--ticket",
        "T-1",
        "--workspace",
        &ws,
        "--id",
        "a1",
        "--agent",
        "agent",
        "=orig-agent",
    ]);
    wait_for("marker judged", Duration::from_secs(15), || {
        env.tick();
        (env.health("a1", "agent") == "dead").then_some(())
    });
    let agent = env.show("a1")["agents"][0].clone();
    assert_eq!(agent["exit_status"], 4, "{agent}");
}
