//! Tests of llm.rs: the provider invocations, the prompt, sanitising. The answers'
//! parsing in llm_answer_tests.rs.

use super::*;

pub(super) const RUN: &str = "run-1";

pub(super) fn answer(
    intent: &str,
    run: &str,
    reason: &str,
    confidence: &str,
    needs_human: &str,
) -> String {
    format!(
        r#"{{"intent":{},"target_run":{},"reason":{},"confidence":{confidence},"needs_human":{needs_human}}}"#,
        Value::from(intent),
        Value::from(run),
        Value::from(reason)
    )
}

pub(super) fn good() -> String {
    answer("escalate_blocked", RUN, "agent is blocked", "0.9", "true")
}

pub(super) fn parse(kind: ProviderKind, text: &str) -> Result<Proposal, String> {
    parse_answer(kind, text.as_bytes(), RUN)
}

pub(super) fn expected() -> Proposal {
    Proposal {
        intent: Intent::EscalateBlocked,
        target_run: RUN.to_string(),
        reason: "agent is blocked".to_string(),
        confidence: 0.9,
        needs_human: true,
    }
}

pub(super) fn strs(v: &[&str]) -> Vec<String> {
    v.iter().map(|s| s.to_string()).collect()
}

#[test]
fn codex_invocation() {
    let inv = build_invocation(
        ProviderKind::Codex,
        "codex",
        &strs(&["-c", "x=1"]),
        "gpt-5",
        4096,
        Path::new("/t/schema.json"),
        Path::new("/t/out.json"),
    );
    assert_eq!(inv.program, "codex");
    assert_eq!(
        inv.args,
        strs(&[
            "exec",
            "--skip-git-repo-check",
            "--sandbox",
            "read-only",
            "--ephemeral",
            "--model",
            "gpt-5",
            "--output-schema",
            "/t/schema.json",
            "-o",
            "/t/out.json",
            "-c",
            "x=1",
            "-"
        ])
    );
    assert_eq!(
        inv.answer,
        AnswerSource::OutputFile(PathBuf::from("/t/out.json"))
    );
    assert_eq!(inv.kind, ProviderKind::Codex);

    let inv = build_invocation(
        ProviderKind::Codex,
        "/bin/codex",
        &[],
        "",
        0,
        Path::new("s"),
        Path::new("o"),
    );
    assert_eq!(
        inv.args,
        strs(&[
            "exec",
            "--skip-git-repo-check",
            "--sandbox",
            "read-only",
            "--ephemeral",
            "--output-schema",
            "s",
            "-o",
            "o",
            "-"
        ])
    );
}

#[test]
fn claude_invocation() {
    let schema = response_schema().to_string();
    let inv = build_invocation(
        ProviderKind::Claude,
        "claude",
        &strs(&["--max-turns", "1"]),
        "sonnet",
        4096,
        Path::new("s"),
        Path::new("o"),
    );
    assert_eq!(inv.program, "claude");
    let want = [
        "-p",
        "--output-format",
        "json",
        "--json-schema",
        schema.as_str(),
        "--model",
        "sonnet",
        "--max-turns",
        "1",
    ];
    assert_eq!(inv.args, strs(&want));
    assert_eq!(inv.answer, AnswerSource::Stdout);
    assert!(!schema.contains('\n'), "schema is compact");

    let inv = build_invocation(
        ProviderKind::Claude,
        "claude",
        &[],
        "",
        1,
        Path::new("s"),
        Path::new("o"),
    );
    let want = [
        "-p",
        "--output-format",
        "json",
        "--json-schema",
        schema.as_str(),
    ];
    assert_eq!(inv.args, strs(&want));
}

#[test]
fn command_invocation() {
    let inv = build_invocation(
        ProviderKind::Command,
        "/usr/local/bin/my-llm",
        &strs(&["--fast"]),
        "m",
        100,
        Path::new("s"),
        Path::new("o"),
    );
    assert_eq!(inv.program, "/usr/local/bin/my-llm");
    assert_eq!(inv.args, strs(&["--fast"]));
    assert_eq!(inv.answer, AnswerSource::Stdout);
    assert_eq!(inv.kind, ProviderKind::Command);
}

#[test]
fn no_max_tokens_flag_anywhere() {
    for kind in [
        ProviderKind::Codex,
        ProviderKind::Claude,
        ProviderKind::Command,
    ] {
        let inv = build_invocation(kind, "x", &[], "m", 777, Path::new("s"), Path::new("o"));
        for a in &inv.args {
            assert!(
                !a.contains("max-tokens") && !a.contains("max_tokens"),
                "{kind:?}: {a}"
            );
            assert_ne!(a, "777");
        }
    }
}

#[test]
fn schema_is_strict() {
    let s = response_schema();
    assert_eq!(s["type"], "object");
    assert_eq!(s["additionalProperties"], false);
    let required: Vec<&str> = s["required"]
        .as_array()
        .map(|a| a.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default();
    assert_eq!(required, FIELDS);
    let props = s["properties"].as_object().cloned().unwrap_or_default();
    assert_eq!(props.len(), 5);
    let intents: Vec<&str> = s["properties"]["intent"]["enum"]
        .as_array()
        .map(|a| a.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default();
    assert_eq!(intents, Intent::ALL.map(|i| i.as_str()));
    assert_eq!(s["properties"]["reason"]["maxLength"], 500);
    assert_eq!(s["properties"]["confidence"]["type"], "number");
    assert_eq!(s["properties"]["confidence"]["minimum"], 0);
    assert_eq!(s["properties"]["confidence"]["maximum"], 1);
    assert_eq!(s["properties"]["needs_human"]["type"], "boolean");
}

#[test]
fn prompt_lists_intents_and_ends_with_context() {
    let ctx = json!({"run_id": "run-7", "note": "line1\nline2"});
    let p = build_prompt(&ctx, &[Intent::Noop, Intent::EscalateBlocked]);
    assert!(p.contains(
            "Allowed intents: noop, escalate_guidance, escalate_blocked, auto_restart, auto_stop_stale."
        ));
    assert!(p.contains("permitted for this run: noop, escalate_blocked."));
    assert!(p.contains("\"run-7\""));
    assert!(p.contains("guidance question yourself"));
    assert!(p.contains("markdown"));
    let tail = format!("Context JSON:\n{}", ctx);
    assert!(p.ends_with(&tail), "{p}");
    assert!(!ctx.to_string().contains('\n'), "context is one line");
    let p = build_prompt(&ctx, &[]);
    assert!(p.contains("permitted for this run: noop."));
}

#[test]
fn sanitize_examples() {
    assert_eq!(
        sanitize_text("ok #(rm -rf ~) \u{1b}[31mred\u{1b}[0m"),
        "ok red"
    );
    assert_eq!(sanitize_text("a #{?a,#{b},c} b"), "a b");
    assert_eq!(sanitize_text("a #[fg=red]b"), "a b");
    assert_eq!(sanitize_text("a #{unterminated b c"), "a");
    assert_eq!(sanitize_text("##{x}{y} z"), "z");
    assert_eq!(sanitize_text("#\u{1b}[0m{x} y"), "y");
    assert_eq!(sanitize_text("price # 5 #1"), "price # 5 #1");
    assert_eq!(sanitize_text("  a\t\r\n b\u{7f}c\u{85}d  "), "a b c d");
    assert_eq!(sanitize_text("x\u{1b}]0;title\u{7}y"), "xy");
    assert_eq!(
        sanitize_text("x\u{1b}]8;;http://e\u{1b}\\link\u{1b}]8;;\u{1b}\\y"),
        "xlinky"
    );
    assert_eq!(sanitize_text("x\u{9b}31my"), "xy");
    assert_eq!(sanitize_text("a\u{202e}b"), "a b");
    assert_eq!(sanitize_text("(plain) [text] {ok}"), "(plain) [text] {ok}");
}

#[test]
fn strip_ansi_keeps_newlines_and_tabs() {
    assert_eq!(
        strip_ansi("\u{1b}[1;32m$ ls\u{1b}[0m\r\nfile\tx\u{7}\n\u{1b}(Bdone"),
        "$ ls\nfile\tx\ndone"
    );
    assert_eq!(strip_ansi("a\u{1b}]0;t\u{1b}\\b\u{0}c"), "abc");
    assert_eq!(strip_ansi("#{not tmux-escaped}"), "#{not tmux-escaped}");
}

#[test]
fn proposal_serializes_intent_as_name() {
    let v = serde_json::to_value(expected()).unwrap_or_default();
    assert_eq!(v["intent"], "escalate_blocked");
    assert_eq!(v["target_run"], RUN);
}
