//! Hostile input files through the real binary: an invalid byte at every position (not
//! only near the start), nesting far beyond serde_json's recursion limit, and sizes
//! exactly at and just above each read cap (1 MiB for policy and signal files).

mod common;

use common::Env;
use serde_json::json;
use std::fs;
use std::process::Output;

const CAP: usize = 1 << 20;

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

fn check(env: &Env, bytes: &[u8]) -> Output {
    let file = env.path("p.json");
    fs::write(&file, bytes).expect("write policy");
    env.run(&["policy", "check", &file.to_string_lossy()])
}

/// Exit 2 and exactly one line naming the file.
fn refused(out: &Output) -> String {
    let err = text(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(err.starts_with("metawsm-tick: policy ~/p.json: "), "{err}");
    assert_eq!(err.matches('\n').count(), 1, "{err}");
    err
}

#[test]
fn policy_with_an_invalid_byte_at_every_position_is_refused_naming_the_byte() {
    let env = Env::new();
    let good = json!({"operator": {"restart_budget": 3, "llm": {"mode": "off"}},
                      "status": {"icon_ok": "ok"}})
    .to_string();
    assert!(check(&env, good.as_bytes()).status.success());
    for i in 0..=good.len() {
        let mut raw = good.clone().into_bytes();
        raw.insert(i, 0xff);
        let err = refused(&check(&env, &raw));
        assert!(
            err.ends_with(&format!("file is not valid UTF-8 (at byte {i})\n")),
            "byte {i}: {err}"
        );
    }
}

#[test]
fn policy_nested_beyond_the_recursion_limit_is_refused() {
    let env = Env::new();
    for depth in [129, 200, 100_000] {
        for (open, close) in [("[", "]"), (r#"{"a":"#, "}")] {
            let deep = format!("{}1{}", open.repeat(depth), close.repeat(depth));
            for doc in [
                deep.clone(),
                format!(r#"{{"operator":{deep}}}"#),
                format!(r#"{{"operator":{{"notify":{{"command":{deep}}}}}}}"#),
            ] {
                refused(&check(&env, doc.as_bytes()));
            }
        }
    }
}

#[test]
fn policy_exactly_at_the_size_cap_is_read_and_one_byte_more_is_refused() {
    let env = Env::new();
    let good = r#"{"operator":{"restart_budget":4}}"#;
    let padded = |n: usize| {
        let mut b = good.as_bytes().to_vec();
        b.resize(n, b' ');
        b
    };
    let out = check(&env, &padded(CAP));
    assert!(out.status.success(), "{}", text(&out.stderr));
    let err = refused(&check(&env, &padded(CAP + 1)));
    assert!(
        err.contains(&format!("too large ({} bytes", CAP + 1)),
        "{err}"
    );
}

fn guidance_count(env: &Env) -> String {
    env.sql("SELECT count(*) FROM guidance_requests")[0][0].clone()
}

#[test]
fn guidance_request_with_an_invalid_byte_at_every_position_is_never_recorded() {
    let env = Env::new();
    env.start("g", &["sleep", "1000000"]);
    let file = env.ws.join(".metawsm/guidance-request.json");
    fs::create_dir_all(file.parent().expect("dir")).expect("mkdir");
    let good =
        json!({"run_id": "g", "question": "Which one?", "context": {"k": ["v"]}}).to_string();
    for i in 0..=good.len() {
        let mut raw = good.clone().into_bytes();
        raw.insert(i, 0xc3);
        // 0xc3 is a lead byte: before an ASCII byte it is always invalid.
        assert!(std::str::from_utf8(&raw).is_err(), "{i}");
        fs::write(&file, &raw).expect("write");
        let out = env.run(&["tick"]);
        assert!(out.status.success(), "byte {i}: {}", text(&out.stderr));
        assert_eq!(
            guidance_count(&env),
            "0",
            "byte {i}: a repaired question was recorded"
        );
    }
    assert!(!env
        .sql("SELECT id FROM events WHERE kind = 'signal_invalid'")
        .is_empty());
    assert_eq!(env.show("g")["status"], "running");
}

#[test]
fn signal_files_nested_beyond_the_recursion_limit_are_invalid_not_fatal() {
    let env = Env::new();
    env.start("n", &["sleep", "1000000"]);
    let dir = env.ws.join(".metawsm");
    fs::create_dir_all(&dir).expect("mkdir");
    let deep = format!("{}1{}", "[".repeat(100_000), "]".repeat(100_000));
    for (name, doc) in [
        (
            "guidance-request.json",
            format!(r#"{{"run_id":"n","question":"q?","context":{deep}}}"#),
        ),
        ("implementation-complete.json", deep.clone()),
    ] {
        fs::write(dir.join(name), doc).expect("write");
        let out = env.run(&["tick"]);
        assert!(out.status.success(), "{name}: {}", text(&out.stderr));
        fs::remove_file(dir.join(name)).ok();
    }
    assert_eq!(guidance_count(&env), "0");
    assert_eq!(
        env.sql("SELECT count(*) FROM events WHERE kind = 'signal_invalid'")[0][0],
        "2"
    );
    assert_eq!(env.show("n")["status"], "running");
}

#[test]
fn guidance_request_exactly_at_the_size_cap_is_read() {
    let env = Env::new();
    env.start("big", &["sleep", "1000000"]);
    let file = env.ws.join(".metawsm/guidance-request.json");
    fs::create_dir_all(file.parent().expect("dir")).expect("mkdir");
    let mut raw = json!({"run_id": "big", "question": "Still there?"})
        .to_string()
        .into_bytes();
    raw.resize(CAP, b' ');
    fs::write(&file, &raw).expect("write");
    let out = env.ok(&["tick"]);
    assert!(out.contains("big escalate_guidance"), "{out}");
    assert_eq!(guidance_count(&env), "1");
}
