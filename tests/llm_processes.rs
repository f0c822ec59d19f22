//! What an LLM provider may do to the machine: its output is capped (the provider killed
//! past it) and nothing it starts outlives the worker, not even a grandchild that left
//! the process group with setsid (Linux: the worker is a child subreaper).

mod common;

use common::{fast_policy, wait_for, write_exec, Env};
use serde_json::{json, Value};
use std::fs;
use std::path::Path;
use std::time::{Duration, Instant};

/// A run asked about in assist mode, the provider being `script` (a plain command).
fn env_with_provider(script: &str) -> Env {
    let env = Env::new();
    let provider = env.path("provider");
    write_exec(&provider, script);
    env.write_policy(&fast_policy(json!({"operator": {"llm": {
        "mode": "assist", "timeout_seconds": 20, "min_interval_seconds": 3600,
        "provider": "command", "command": provider.to_string_lossy(),
    }}})));
    env
}

fn settle(env: &Env, id: &str) -> Value {
    wait_for("llm call to finish", Duration::from_secs(30), || {
        let l = env.show(id)["llm"].clone();
        (l.is_object() && l["state"] != "in_flight").then_some(l)
    })
}

fn alive(pid: i32) -> bool {
    fs::read_to_string(format!("/proc/{pid}/stat"))
        .ok()
        .and_then(|s| {
            let st = s
                .get(s.rfind(')')? + 1..)?
                .split_whitespace()
                .next()?
                .to_owned();
            Some(st != "Z" && st != "X")
        })
        .unwrap_or(false)
}

#[test]
fn a_provider_printing_forever_is_killed_at_the_cap() {
    let env = env_with_provider("#!/bin/sh\necho $$ > \"$0.pid\"\nexec yes\n");
    env.start("r1", &["sleep", "100000"]);
    env.tick();
    let l = settle(&env, "r1");
    assert_eq!(l["state"], "error", "{l}");
    let err = l["error"].as_str().unwrap_or("");
    assert!(
        err.contains("wrote more than 4194304 bytes (killed)"),
        "{err}"
    );
    let pid: i32 = fs::read_to_string(env.path("provider.pid"))
        .expect("pid")
        .trim()
        .parse()
        .expect("pid");
    assert!(!alive(pid), "provider {pid} still running");
}

#[cfg(target_os = "linux")]
#[test]
fn a_grandchild_that_calls_setsid_is_gone_afterwards() {
    let answer =
        r#"{"intent":"noop","target_run":"r1","reason":"ok","confidence":0.9,"needs_human":false}"#;
    let script = format!(
        "#!/bin/sh\ncat >/dev/null\nsetsid sh -c 'echo $$ > \"$1\"; exec sleep 300' sh \"$0.grandchild\" </dev/null >/dev/null 2>&1 &\n\
         while [ ! -s \"$0.grandchild\" ]; do sleep 0.05; done\necho '{answer}'\n"
    );
    let env = env_with_provider(&script);
    env.start("r1", &["sleep", "100000"]);
    env.tick();
    let l = settle(&env, "r1");
    assert_eq!(l["state"], "done", "{l}");
    let file = env.path("provider.grandchild");
    let pid: i32 = fs::read_to_string(&file)
        .expect("grandchild pid")
        .trim()
        .parse()
        .expect("pid");
    // Its own session: a process-group kill never reached it.
    let deadline = Instant::now() + Duration::from_secs(5);
    while alive(pid) && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    let survived = alive(pid);
    if survived {
        let _ = nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(pid),
            nix::sys::signal::Signal::SIGKILL,
        );
    }
    assert!(!survived, "grandchild {pid} outlived the worker");
    assert!(Path::new(&file).exists());
}
