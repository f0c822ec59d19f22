//! Tests of llm.rs: reading a provider's answer (every kind of noise, bad types, bad
//! bytes, hostile text, the size cap), by table and by property.

use super::tests::{answer, expected, good, parse, RUN};
use super::*;
use proptest::prelude::*;

#[test]
fn good_answer_all_kinds() {
    assert_eq!(parse(ProviderKind::Codex, &good()), Ok(expected()));
    assert_eq!(
        parse(ProviderKind::Codex, &format!("\n  {}\n", good())),
        Ok(expected())
    );
    assert_eq!(parse(ProviderKind::Command, &good()), Ok(expected()));
    let env = format!(
        r#"{{"type":"result","subtype":"success","is_error":false,"result":"","structured_output":{}}}"#,
        good()
    );
    assert_eq!(parse(ProviderKind::Claude, &env), Ok(expected()));
}

#[test]
fn command_noise_and_multiple_objects() {
    let noisy = format!("thinking...\nresult: {} (done)\n", good());
    assert_eq!(parse(ProviderKind::Command, &noisy), Ok(expected()));

    let first = answer("noop", RUN, "first", "0.1", "false");
    let two = format!("{first}\n{}", good());
    assert_eq!(parse(ProviderKind::Command, &two), Ok(expected()));
    // Codex output file must hold exactly one object.
    assert!(parse(ProviderKind::Codex, &two).is_err());
    assert!(parse(ProviderKind::Codex, &noisy).is_err());

    // Noise objects that are not JSON are skipped.
    let junk = format!("{{not json}} {} {{also: not}}", good());
    assert_eq!(parse(ProviderKind::Command, &junk), Ok(expected()));

    // Truncated trailing object: the previous complete one wins.
    let truncated = format!("{} {{\"intent\":\"noop\",\"x\":{{\"a\":1}}", good());
    assert_eq!(parse(ProviderKind::Command, &truncated), Ok(expected()));

    // A stray unclosed `{` in leading noise does not hide the answer.
    let stray = format!("progress {{ 50%\n{}", good());
    assert_eq!(parse(ProviderKind::Command, &stray), Ok(expected()));
}

#[test]
fn braces_inside_strings_and_nested_objects() {
    let reason = r#"saw {"a":{"b":1}} and } then { and \" quote"#;
    let text = format!(
        "noise }} {{ {}",
        answer("noop", RUN, reason, "0.5", "false")
    );
    let p = parse(ProviderKind::Command, &text);
    assert_eq!(p.map(|p| p.reason), Ok(sanitize_text(reason)));

    // A nested object is found whole (and then rejected as an unknown field).
    let nested = r#"x {"intent":"noop","target_run":"run-1","reason":"r","confidence":1,"needs_human":false,"extra":{"a":{"b":"}"}}} y"#;
    assert_eq!(
        parse(ProviderKind::Command, nested),
        Err("unknown field extra".to_string())
    );
}

#[test]
fn wrong_types() {
    let cases = [
        (
            answer("noop", RUN, "r", "0.5", "false").replace("\"noop\"", "1"),
            "intent must be a string",
        ),
        (
            answer("noop", RUN, "r", "0.5", "false").replace("\"run-1\"", "null"),
            "target_run must be a string",
        ),
        (
            answer("noop", RUN, "r", "0.5", "false").replace("\"r\"", "[\"r\"]"),
            "reason must be a string",
        ),
        (
            answer("noop", RUN, "r", "\"high\"", "false"),
            "confidence must be a number",
        ),
        (
            answer("noop", RUN, "r", "true", "false"),
            "confidence must be a number",
        ),
        (
            answer("noop", RUN, "r", "0.5", "\"yes\""),
            "needs_human must be a boolean",
        ),
        (
            answer("noop", RUN, "r", "0.5", "1"),
            "needs_human must be a boolean",
        ),
    ];
    for (text, err) in cases {
        for kind in [ProviderKind::Codex, ProviderKind::Command] {
            assert_eq!(parse(kind, &text), Err(err.to_string()), "{text}");
        }
    }
}

#[test]
fn missing_and_extra_fields() {
    let missing = r#"{"intent":"noop","target_run":"run-1","reason":"r","confidence":0.5}"#;
    assert_eq!(
        parse(ProviderKind::Codex, missing),
        Err("missing field needs_human".to_string())
    );
    let extra = good().replace("}", r#","command":"rm -rf ~"}"#);
    assert_eq!(
        parse(ProviderKind::Codex, &extra),
        Err("unknown field command".to_string())
    );
}

#[test]
fn disallowed_intents() {
    for bad in ["AUTO_RESTART", "rm", "", "Noop"] {
        let text = answer(bad, RUN, "r", "0.5", "false");
        assert_eq!(
            parse(ProviderKind::Codex, &text),
            Err(format!("disallowed intent \"{bad}\""))
        );
    }
    for i in Intent::ALL {
        let text = answer(i.as_str(), RUN, "r", "0.5", "false");
        assert_eq!(parse(ProviderKind::Codex, &text).map(|p| p.intent), Ok(i));
    }
}

#[test]
fn other_run_rejected() {
    let text = answer("noop", "run-2", "r", "0.5", "false");
    assert_eq!(
        parse(ProviderKind::Codex, &text),
        Err("target_run \"run-2\" is not the run asked (\"run-1\")".to_string())
    );
}

#[test]
fn confidence_bounds() {
    for bad in ["-0.1", "1.5", "1e308"] {
        let text = answer("noop", RUN, "r", bad, "false");
        assert_eq!(
            parse(ProviderKind::Codex, &text),
            Err("confidence must be between 0 and 1".to_string()),
            "{bad}"
        );
    }
    // 1e309 overflows f64: serde_json refuses the document itself.
    let text = answer("noop", RUN, "r", "1e309", "false");
    assert!(parse(ProviderKind::Codex, &text).is_err());
    assert!(parse(ProviderKind::Command, &text).is_err());
    for ok in ["0", "1", "0.0", "1.0", "0.25"] {
        let text = answer("noop", RUN, "r", ok, "false");
        assert!(parse(ProviderKind::Codex, &text).is_ok(), "{ok}");
    }
}

#[test]
fn reason_length_limit() {
    let at = "é".repeat(MAX_REASON_CHARS);
    let text = answer("noop", RUN, &at, "0.5", "false");
    assert_eq!(parse(ProviderKind::Codex, &text).map(|p| p.reason), Ok(at));
    let over = "a".repeat(MAX_REASON_CHARS + 1);
    let text = answer("noop", RUN, &over, "0.5", "false");
    assert_eq!(
        parse(ProviderKind::Codex, &text),
        Err("reason exceeds 500 characters".to_string())
    );
}

#[test]
fn hostile_reason_is_sanitised() {
    let reason = "pwned #(rm -rf ~) #[fg=red]\u{1b}[31mred\u{1b}[0m\nnext #{pane_id} line\u{7}";
    let text = answer("noop", RUN, reason, "0.5", "false");
    let p = parse(ProviderKind::Codex, &text);
    assert_eq!(p.map(|p| p.reason), Ok("pwned red next line".to_string()));
}

#[test]
fn error_messages_do_not_echo_much() {
    let long = format!("{}\u{1b}[31m\nmore", "x".repeat(300));
    let text = answer(&long, RUN, "r", "0.5", "false");
    let err = parse(ProviderKind::Codex, &text).err().unwrap_or_default();
    assert!(err.starts_with("disallowed intent"));
    assert!(err.chars().count() < 120, "{err}");
    assert!(!err.contains('\n') && !err.contains('\u{1b}'));
}

#[test]
fn bad_bytes() {
    for kind in [
        ProviderKind::Codex,
        ProviderKind::Claude,
        ProviderKind::Command,
    ] {
        assert_eq!(
            parse_answer(kind, b"{\"intent\":\"\xff\"}", RUN),
            Err("answer is not valid UTF-8".to_string())
        );
        assert_eq!(
            parse_answer(kind, b"", RUN),
            Err("empty answer".to_string())
        );
        assert_eq!(
            parse_answer(kind, b" \n\t", RUN),
            Err("empty answer".to_string())
        );
        let big = vec![b' '; MAX_ANSWER_BYTES + 1];
        assert_eq!(
            parse_answer(kind, &big, RUN),
            Err("answer too large".to_string())
        );
    }
    assert!(parse(ProviderKind::Command, "no json here").is_err());
    assert!(parse(ProviderKind::Codex, "[1,2]").is_err());
}

#[test]
fn codex_file_with_trailing_text_rejected() {
    let text = format!("{}\nDone.", good());
    let err = parse(ProviderKind::Codex, &text).err().unwrap_or_default();
    assert!(
        err.starts_with("answer is not a single JSON object"),
        "{err}"
    );
    let text = format!("Here you go: {}", good());
    assert!(parse(ProviderKind::Codex, &text).is_err());
}

#[test]
fn claude_envelopes() {
    let result_str = format!(
        r#"{{"type":"result","subtype":"success","is_error":false,"result":{}}}"#,
        Value::from(good())
    );
    assert_eq!(parse(ProviderKind::Claude, &result_str), Ok(expected()));

    // Result string must be exactly one object.
    let chatty = format!(
        r#"{{"type":"result","subtype":"success","result":{}}}"#,
        Value::from(format!("Sure! {}", good()))
    );
    assert!(parse(ProviderKind::Claude, &chatty).is_err());

    let failed =
        r#"{"type":"result","subtype":"error_max_structured_output_retries","is_error":true}"#;
    assert_eq!(
        parse(ProviderKind::Claude, failed),
        Err(
            "claude reported an error (subtype \"error_max_structured_output_retries\")"
                .to_string()
        )
    );
    let is_error = format!(
        r#"{{"type":"result","subtype":"success","is_error":true,"structured_output":{}}}"#,
        good()
    );
    assert!(parse(ProviderKind::Claude, &is_error).is_err());
    let bare = r#"{"type":"result","subtype":"success","is_error":false}"#;
    assert!(parse(ProviderKind::Claude, bare).is_err());

    // Verbose mode prints an array of messages; the result is the last.
    let array = format!(
        r#"[{{"type":"system","subtype":"init"}},{{"type":"result","subtype":"success","structured_output":{}}}]"#,
        good()
    );
    assert_eq!(parse(ProviderKind::Claude, &array), Ok(expected()));

    // The structured output is validated like any answer.
    let other = format!(
        r#"{{"subtype":"success","structured_output":{}}}"#,
        answer("auto_restart", "run-9", "r", "0.5", "false")
    );
    assert!(parse(ProviderKind::Claude, &other).is_err());
}

fn has_tmux_seq(s: &str) -> bool {
    s.contains("#{") || s.contains("#(") || s.contains("#[")
}

fn json_ish() -> impl Strategy<Value = String> {
    "[{}\\[\\]\":,\\\\ a-z0-9.]{0,200}"
}

proptest! {
    #[test]
    fn parse_never_panics_on_bytes(raw in proptest::collection::vec(any::<u8>(), 0..512)) {
        for kind in [ProviderKind::Codex, ProviderKind::Claude, ProviderKind::Command] {
            let _ = parse_answer(kind, &raw, RUN);
        }
    }

    #[test]
    fn parse_never_panics_on_json_ish(s in json_ish()) {
        for kind in [ProviderKind::Codex, ProviderKind::Claude, ProviderKind::Command] {
            if let Err(e) = parse_answer(kind, s.as_bytes(), RUN) {
                prop_assert!(!e.contains('\n'));
            }
        }
    }

    #[test]
    fn answer_found_after_brace_free_noise(
        pre in "[}\\[\\]\":,\\\\ a-z0-9.]{0,200}",
        post in json_ish(),
        reason in "[ -~]{0,100}",
    ) {
        // Noise without `{` before the answer can never capture it; noise
        // after it may only add objects that fail to parse.
        let text = format!("{pre}{}{post}", answer("noop", RUN, &reason, "0.5", "false"));
        let p = parse_answer(ProviderKind::Command, text.as_bytes(), RUN);
        if !post.contains('{') {
            prop_assert_eq!(p.map(|p| p.reason), Ok(sanitize_text(&reason)));
        }
    }

    #[test]
    fn valid_answers_round_trip(reason in "\\PC{0,120}", conf in 0.0f64..=1.0, nh in any::<bool>()) {
        let text = answer("escalate_guidance", RUN, &reason, &conf.to_string(), &nh.to_string());
        for kind in [ProviderKind::Codex, ProviderKind::Command] {
            let p = parse_answer(kind, text.as_bytes(), RUN);
            prop_assert!(p.is_ok(), "{:?}", p);
            if let Ok(p) = p {
                prop_assert_eq!(p.intent, Intent::EscalateGuidance);
                prop_assert_eq!(p.target_run.as_str(), RUN);
                prop_assert_eq!(p.reason, sanitize_text(&reason));
                // serde_json's default float parser may be off by an ulp.
                prop_assert!((p.confidence - conf).abs() < 1e-12);
                prop_assert_eq!(p.needs_human, nh);
            }
        }
    }

    #[test]
    fn sanitize_output_is_safe(s in any::<String>()) {
        let out = sanitize_text(&s);
        prop_assert!(!out.chars().any(|c| c.is_control()));
        prop_assert!(!has_tmux_seq(&out), "{:?}", out);
        prop_assert_eq!(out.trim(), out.as_str());
        prop_assert!(!out.contains("  "));
    }

    #[test]
    fn sanitize_output_is_safe_on_tmuxish(s in "[#{}()\\[\\]\\x00-\\x1f\\x7f\\u{80}-\\u{9f}a-c ]{0,120}") {
        let out = sanitize_text(&s);
        prop_assert!(!out.chars().any(|c| c.is_control()));
        prop_assert!(!has_tmux_seq(&out), "{:?}", out);
        prop_assert_eq!(sanitize_text(&out), out.clone());
    }

    #[test]
    fn strip_ansi_output_has_only_newline_and_tab_controls(s in any::<String>()) {
        let out = strip_ansi(&s);
        prop_assert!(!out.chars().any(|c| c.is_control() && c != '\n' && c != '\t'));
    }

    /// Claude's envelopes (structured_output, a JSON `result` string, the verbose
    /// array) carry any valid answer through unchanged.
    #[test]
    fn valid_answers_round_trip_through_claude(
        reason in "\\PC{0,120}",
        conf in 0.0f64..=1.0,
        how in 0usize..3,
    ) {
        let inner = answer("noop", RUN, &reason, &conf.to_string(), "true");
        let text = match how {
            0 => format!(r#"{{"type":"result","subtype":"success","is_error":false,"structured_output":{inner}}}"#),
            1 => format!(r#"{{"type":"result","subtype":"success","is_error":false,"result":{}}}"#, Value::from(inner)),
            _ => format!(r#"[{{"type":"system","subtype":"init"}},{{"type":"result","subtype":"success","structured_output":{inner}}}]"#),
        };
        let p = parse_answer(ProviderKind::Claude, text.as_bytes(), RUN);
        prop_assert!(p.is_ok(), "{:?}", p);
        if let Ok(p) = p {
            prop_assert_eq!(p.intent, Intent::Noop);
            prop_assert_eq!(p.reason, sanitize_text(&reason));
            prop_assert!((p.confidence - conf).abs() < 1e-12);
            prop_assert!(p.needs_human);
        }
    }

    /// Nesting far beyond serde_json's recursion limit (128), wherever it sits: a
    /// one-line error, never a stack overflow.
    #[test]
    fn deep_nesting_is_an_error_never_a_crash(
        depth in prop_oneof![120usize..140, 1_000usize..20_000],
        object in any::<bool>(),
        at in 0usize..3,
    ) {
        let (open, close) = if object { (r#"{"a":"#, "}") } else { ("[", "]") };
        let deep = format!("{}1{}", open.repeat(depth), close.repeat(depth));
        let good = answer("noop", RUN, "fine", "0.5", "false");
        let text = match at {
            0 => deep,
            1 => good.replacen(r#""fine""#, &deep, 1),
            _ => format!(r#"{{"type":"result","structured_output":{deep}}}"#),
        };
        for kind in [ProviderKind::Codex, ProviderKind::Claude, ProviderKind::Command] {
            if let Err(e) = parse_answer(kind, text.as_bytes(), RUN) {
                prop_assert!(!e.contains('\n'), "{}", e);
            }
        }
    }

    /// An invalid byte anywhere in a valid answer, for every provider: never a
    /// panic, and never an answer whose text was silently repaired.
    #[test]
    fn invalid_utf8_at_any_position(reason in "[ -~]{0,60}", bad in 0x80u8..=0xff) {
        let good = answer("noop", RUN, &reason, "0.5", "false");
        let claude = format!(r#"{{"type":"result","structured_output":{good}}}"#);
        for (kind, text) in [
            (ProviderKind::Codex, &good),
            (ProviderKind::Command, &good),
            (ProviderKind::Claude, &claude),
        ] {
            for i in 0..=text.len() {
                let mut raw = text.as_bytes().to_vec();
                raw.insert(i, bad);
                if std::str::from_utf8(&raw).is_ok() {
                    continue;
                }
                match parse_answer(kind, &raw, RUN) {
                    Ok(p) => prop_assert!(!p.reason.contains('\u{fffd}'), "{:?}", p),
                    Err(e) => prop_assert!(!e.contains('\n'), "{}", e),
                }
            }
        }
    }
}

/// The answer cap, exactly: a valid answer padded to the limit is read, one byte
/// more is refused.
#[test]
fn answer_size_cap_is_exact() {
    let good = answer("noop", RUN, "fine", "0.5", "false");
    for (size, ok) in [
        (MAX_ANSWER_BYTES - 1, true),
        (MAX_ANSWER_BYTES, true),
        (MAX_ANSWER_BYTES + 1, false),
    ] {
        let mut raw = good.clone().into_bytes();
        raw.resize(size, b' ');
        for kind in [ProviderKind::Codex, ProviderKind::Command] {
            let p = parse_answer(kind, &raw, RUN);
            assert_eq!(p.is_ok(), ok, "{size} bytes: {p:?}");
        }
    }
}
