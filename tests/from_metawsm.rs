//! Coming from the original Go metawsm: its notify command form, its gate, its selectors,
//! its changelog entry, its project policy and its database are taken over unchanged.

mod common;

use common::{fast_policy, wait_for, Env};
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
    let notes = wait_for("notify", Duration::from_secs(10), || {
        fs::read_to_string(&log).ok().filter(|s| !s.is_empty())
    });
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
