//! Tests of signals.rs.

use super::*;

#[test]
fn guidance_shapes() {
    let g = parse_guidance(br#"{"question":" which db? ","context":{"blocked_checks":["a"]}}"#)
        .expect("ok");
    assert_eq!(g.question, "which db?");
    assert_eq!(g.context, r#"{"blocked_checks":["a"]}"#);
    assert_eq!(g.agent, None);
    let bad: [&[u8]; 7] = [
        b"",
        b"{",
        b"[]",
        br#"{"question":""}"#,
        br#"{"question":3}"#,
        br#"{"question":"q","agent":5}"#,
        b"\xff\xfe",
    ];
    for b in bad {
        assert!(
            parse_guidance(b).is_err(),
            "{:?}",
            String::from_utf8_lossy(b)
        );
    }
}

#[test]
fn completion_accepts_empty_object() {
    let c = parse_completion(b"{}").expect("ok");
    assert_eq!(c.run_id, None);
    assert!(for_run(&c.run_id, "r1"));
    assert!(!for_run(&Some("r2".into()), "r1"));
}

#[test]
fn a_fifo_is_refused_without_blocking() {
    let dir = tempfile::tempdir().expect("tmp");
    fs::create_dir_all(dir.path().join(".metawsm")).expect("mkdir");
    let p = signal_path(dir.path(), GUIDANCE_REQUEST);
    nix::unistd::mkfifo(&p, nix::sys::stat::Mode::from_bits_truncate(0o600)).expect("mkfifo");
    let t = std::time::Instant::now();
    match read_guidance(dir.path()) {
        Read_::Bad(_, why) => assert!(why.contains("is a FIFO, not a regular file"), "{why}"),
        other => panic!("{other:?}"),
    }
    assert!(t.elapsed() < std::time::Duration::from_secs(1));
}

#[test]
fn responses_never_leave_the_workspace() {
    let ws = tempfile::tempdir().expect("tmp");
    let outside = tempfile::tempdir().expect("tmp");
    let body = serde_json::json!({"answer": "x"});
    let p = write_response(ws.path(), ws.path(), &body).expect("write");
    assert!(p.starts_with(ws.path().canonicalize().expect("canon")));
    // A symlinked .metawsm pointing outside is refused, and nothing is deleted there.
    let evil = tempfile::tempdir().expect("tmp");
    std::os::unix::fs::symlink(outside.path(), evil.path().join(".metawsm")).expect("symlink");
    fs::write(outside.path().join(GUIDANCE_REQUEST), "keep").expect("w");
    assert!(write_response(evil.path(), evil.path(), &body).is_err());
    archive_leftovers(&[evil.path().to_path_buf()], evil.path(), "r", None, 0);
    assert!(outside.path().join(GUIDANCE_REQUEST).exists());
    assert!(!outside.path().join(GUIDANCE_RESPONSE).exists());
    // A root outside the workspace is refused.
    assert!(write_response(outside.path(), ws.path(), &body).is_err());
}

/// The check-then-open race on `.metawsm`: a thread keeps exchanging it with a
/// symlink to a directory outside while answers are written. Nothing lands outside.
#[cfg(target_os = "linux")]
#[test]
fn a_signal_dir_swapped_for_a_symlink_never_leads_outside() {
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::Arc;
    let ws = tempfile::tempdir().expect("tmp");
    let outside = tempfile::tempdir().expect("tmp");
    fs::create_dir_all(ws.path().join(".metawsm")).expect("mkdir");
    std::os::unix::fs::symlink(outside.path(), ws.path().join("swap")).expect("symlink");
    let wsdir = fs::File::open(ws.path()).expect("open ws");
    let stop = Arc::new(AtomicBool::new(false));
    let swapper = {
        let stop = stop.clone();
        std::thread::spawn(move || {
            while !stop.load(Ordering::Relaxed) {
                let _ = nix::fcntl::renameat2(
                    &wsdir,
                    ".metawsm",
                    &wsdir,
                    "swap",
                    nix::fcntl::RenameFlags::RENAME_EXCHANGE,
                );
            }
        })
    };
    let body = serde_json::json!({"answer": "x"});
    for _ in 0..1500 {
        let _ = write_response(ws.path(), ws.path(), &body);
    }
    stop.store(true, Ordering::Relaxed);
    swapper.join().expect("swapper");
    let escaped: Vec<_> = fs::read_dir(outside.path())
        .expect("outside")
        .flatten()
        .map(|e| e.file_name())
        .collect();
    assert!(escaped.is_empty(), "written outside: {escaped:?}");
}

#[test]
fn oversized_and_missing_files() {
    let dir = tempfile::tempdir().expect("tmp");
    assert_eq!(read_guidance(dir.path()), Read_::Absent);
    fs::create_dir_all(dir.path().join(".metawsm")).expect("mkdir");
    let big = vec![b' '; (MAX_SIGNAL_BYTES + 10) as usize];
    fs::write(signal_path(dir.path(), GUIDANCE_REQUEST), big).expect("w");
    match read_guidance(dir.path()) {
        Read_::Bad(_, why) => assert!(why.contains("larger than"), "{why}"),
        other => panic!("{other:?}"),
    }
}

/// Property tests (issue 6's fuzzing, proptest standing in for cargo-fuzz): agents
/// write these files, so any bytes at all must give Ok or a one-line reason.
mod props {
    use super::super::*;
    use proptest::prelude::*;
    use serde_json::json;

    fn config() -> ProptestConfig {
        ProptestConfig {
            cases: 256,
            failure_persistence: None,
            ..ProptestConfig::default()
        }
    }

    /// Any JSON value, nested a little.
    fn value() -> impl Strategy<Value = Value> {
        let leaf = prop_oneof![
            Just(Value::Null),
            any::<bool>().prop_map(Value::from),
            any::<i64>().prop_map(Value::from),
            any::<f64>().prop_map(|f| {
                serde_json::Number::from_f64(f).map_or(Value::Null, Value::Number)
            }),
            "\\PC{0,30}".prop_map(Value::from),
            "[ \\t\\n]{0,3}".prop_map(Value::from),
        ];
        leaf.prop_recursive(3, 24, 4, |inner| {
            prop_oneof![
                proptest::collection::vec(inner.clone(), 0..4).prop_map(Value::from),
                proptest::collection::btree_map("[a-z_]{0,10}", inner, 0..4)
                    .prop_map(|m| Value::Object(m.into_iter().collect())),
            ]
        })
    }

    /// Objects with the contract's keys (each maybe absent) holding any value.
    fn signal_object() -> impl Strategy<Value = Vec<u8>> {
        let field = || proptest::option::of(value());
        (field(), field(), field(), field(), field()).prop_map(|(q, c, a, r, s)| {
            let mut m = serde_json::Map::new();
            for (k, v) in [
                ("question", q),
                ("context", c),
                ("agent", a),
                ("run_id", r),
                ("summary", s),
            ] {
                if let Some(v) = v {
                    m.insert(k.into(), v);
                }
            }
            serde_json::to_vec(&Value::Object(m)).expect("json")
        })
    }

    fn check_guidance(raw: &[u8]) -> Result<(), TestCaseError> {
        match parse_guidance(raw) {
            Ok(g) => {
                prop_assert!(!g.question.is_empty());
                prop_assert!(g.question.len() <= MAX_CONTEXT_BYTES + '…'.len_utf8());
                prop_assert!(g.context.len() <= MAX_CONTEXT_BYTES + '…'.len_utf8());
                for s in [&g.run_id, &g.agent].into_iter().flatten() {
                    prop_assert!(!s.is_empty() && s.trim() == s.as_str(), "{:?}", s);
                }
            }
            Err(e) => prop_assert!(!e.is_empty() && !e.contains('\n'), "{:?}", e),
        }
        Ok(())
    }

    fn check_completion(raw: &[u8]) -> Result<(), TestCaseError> {
        match parse_completion(raw) {
            Ok(c) => {
                prop_assert_eq!(c.summary.trim(), c.summary.as_str());
                for s in [&c.run_id, &c.agent].into_iter().flatten() {
                    prop_assert!(!s.is_empty() && s.trim() == s.as_str(), "{:?}", s);
                }
            }
            Err(e) => prop_assert!(!e.is_empty() && !e.contains('\n'), "{:?}", e),
        }
        Ok(())
    }

    proptest! {
        #![proptest_config(config())]

        #[test]
        fn parsers_never_panic_on_bytes(raw in proptest::collection::vec(any::<u8>(), 0..1024)) {
            check_guidance(&raw)?;
            check_completion(&raw)?;
        }

        #[test]
        fn parsers_never_panic_on_json_ish(s in "[{}\\[\\]\":,\\\\ a-z0-9.\\-]{0,200}") {
            check_guidance(s.as_bytes())?;
            check_completion(s.as_bytes())?;
        }

        #[test]
        fn contract_shaped_objects_parse_or_say_why(raw in signal_object()) {
            check_guidance(&raw)?;
            check_completion(&raw)?;
        }

        #[test]
        fn long_questions_are_cut_on_a_char_boundary(q in "\\PC{1,3000}") {
            let raw = json!({"question": q}).to_string();
            let t = q.trim();
            match parse_guidance(raw.as_bytes()) {
                Err(e) => prop_assert!(t.is_empty(), "{}", e),
                Ok(g) if t.len() <= MAX_CONTEXT_BYTES => prop_assert_eq!(g.question.as_str(), t),
                Ok(g) => {
                    let kept = g.question.strip_suffix('…').expect("marked as cut");
                    prop_assert!(t.starts_with(kept));
                    prop_assert!(kept.len() + 4 > MAX_CONTEXT_BYTES);
                }
            }
        }

        #[test]
        fn files_with_any_content_are_found_or_bad(raw in proptest::collection::vec(any::<u8>(), 0..600)) {
            let dir = tempfile::tempdir().expect("tmp");
            fs::create_dir_all(dir.path().join(".metawsm")).expect("mkdir");
            for name in [GUIDANCE_REQUEST, COMPLETION] {
                fs::write(signal_path(dir.path(), name), &raw).expect("write");
            }
            prop_assert!(!matches!(read_guidance(dir.path()), Read_::Absent));
            prop_assert!(!matches!(read_completion(dir.path()), Read_::Absent));
        }
    }
}
