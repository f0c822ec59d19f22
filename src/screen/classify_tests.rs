//! Tests of screen/classify.rs: the patterns, screens recorded from the real Codex and
//! Claude CLIs, synthetic screens, which commands are interactive agents.

use super::*;

fn fixture(path: &str) -> String {
    let p = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/screens")
        .join(path);
    std::fs::read_to_string(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

fn read(kind: &str, screen: &str, title: &str) -> Reading {
    let pats: Vec<&Pattern> = builtin_patterns().iter().collect();
    classify(kind, &clean(screen, 200, MAX_BYTES * 4), title, &pats)
}

#[test]
fn builtin_patterns_parse() {
    let n = BUILTIN_PATTERNS
        .lines()
        .filter(|l| !l.trim().is_empty() && !l.trim_start().starts_with('#'))
        .count();
    assert_eq!(
        parse_patterns(BUILTIN_PATTERNS.lines()).map(|p| p.len()),
        Ok(n)
    );
    assert_eq!(builtin_patterns().len(), n);
}

#[test]
fn pattern_lines_are_checked() {
    let p = parse_pattern("claude  waiting line   ^❯ 1. Yes")
        .expect("ok")
        .expect("some");
    assert_eq!(
        (p.state, p.title, p.start, p.end),
        (ScreenState::Waiting, false, true, false)
    );
    assert!(p.matches("  ❯ 1. yes  "));
    assert!(!p.matches("x ❯ 1. Yes"));
    let p = parse_pattern("* idle line ^>$").expect("ok").expect("some");
    assert!(p.matches(">") && !p.matches("> hello"));
    assert_eq!(parse_pattern("  # comment"), Ok(None));
    assert_eq!(parse_pattern(""), Ok(None));
    for bad in [
        "codex busy line x",
        "codex working screen x",
        "vim working line x",
        "codex working line",
        "codex working line ^",
    ] {
        assert!(parse_pattern(bad).is_err(), "{bad}");
    }
}

/// Screens recorded from the real Codex CLI 0.169.0 in tmux (its sign-in screen needs
/// no network; a dummy API key reaches the composer; a prompt makes it try, and retry,
/// the unreachable service).
#[test]
fn recorded_codex_screens() {
    let dir = "codex-0.169.0";
    let cases: &[(&str, &str, ScreenState, &str)] = &[
        (
            "signin",
            "vm",
            ScreenState::Waiting,
            "Press enter to continue",
        ),
        ("apikey", "", ScreenState::Waiting, "Press enter to save"),
        (
            "permissions-choice",
            "",
            ScreenState::Waiting,
            "enter select",
        ),
        (
            "busy",
            "⠹ screen-scratch",
            ScreenState::Working,
            "esc to interrupt",
        ),
        ("busy", "", ScreenState::Working, "esc to interrupt"),
        (
            "reconnecting",
            "⠴ screen-scratch",
            ScreenState::Working,
            "esc to interrupt",
        ),
        (
            "idle",
            "screen-scratch",
            ScreenState::Idle,
            "? for shortcuts",
        ),
        (
            "interrupted",
            "screen-scratch",
            ScreenState::Idle,
            "? for shortcuts",
        ),
        (
            "approval",
            "[ ! ] Action Required | ws",
            ScreenState::Waiting,
            "Enter to confirm",
        ),
        ("done", "ws", ScreenState::Idle, "? for shortcuts"),
    ];
    for (name, title, want, matched) in cases {
        let r = read("codex", &fixture(&format!("{dir}/{name}.txt")), title);
        assert_eq!(r.state, *want, "{name}: {r:?}");
        assert!(
            r.matched.as_deref().is_some_and(|m| m.contains(matched)),
            "{name}: {r:?}"
        );
    }
    let r = read("codex", &fixture(&format!("{dir}/signin.txt")), "");
    assert_eq!(
        r.question,
        "Welcome to Codex, OpenAI's command-line coding agent / Choose how you want to use \
             Codex. / > 1. Sign in with ChatGPT / Usage included with Plus, Pro, Business, and \
             Enterprise plans / 2. Sign in with Device Code / Sign in from another device with a \
             one-time code / 3. Sign in another way / Use an API key or another provider / Press \
             enter to continue"
    );
    // The approval dialog, recorded with a fake Responses API standing in for the
    // model: its text is the question; its blinking title alone says waiting.
    let r = read(
        "codex",
        &fixture(&format!("{dir}/approval.txt")),
        "[ . ] Action Required | ws",
    );
    assert_eq!(
            r.question,
            "Would you like to run the following command? / Environment: local / Reason: Remove the build directory? / $ rm -rf build \
             / › 1. Yes, proceed (y) / 2. Yes, and don't ask again for commands that start with \
             `rm -rf build` (p) / 3. No, and tell Codex what to do differently (esc) / Press \
             enter to confirm or esc to cancel"
        );
    let pats: Vec<&Pattern> = builtin_patterns().iter().collect();
    for (title, want) in [
        ("[ ! ] Action Required | ws", Some(ScreenState::Waiting)),
        ("[ . ] Action Required | ws", Some(ScreenState::Waiting)),
        ("⠹ ws", Some(ScreenState::Working)),
        ("ws", None),
    ] {
        assert_eq!(title_says("codex", title, &pats), want, "{title}");
    }
    // The title alone: the spinner means working whatever the screen shows.
    assert_eq!(
        read("codex", "", "⠹ screen-scratch").state,
        ScreenState::Working
    );
    assert_eq!(
        read("codex", "", "screen-scratch").state,
        ScreenState::Unknown
    );
    // Captured with escapes (-e), cleaned: the same reading as the plain capture.
    for name in ["idle", "signin"] {
        let plain = read("codex", &fixture(&format!("{dir}/{name}.txt")), "");
        let ansi = read("codex", &fixture(&format!("{dir}/{name}.ansi.txt")), "");
        assert_eq!(ansi.state, plain.state, "{name}");
        assert_eq!(ansi.question, plain.question, "{name}");
    }
}

/// Screens recorded from the real Claude Code 2.1.328 in tmux, a local stand-in for
/// its service answering (a `Bash` tool call for the permission dialog, a 20 s wait
/// for the busy screen).
#[test]
fn recorded_claude_screens() {
    let dir = "claude-code-2.1.328";
    let cases: &[(&str, ScreenState, &str)] = &[
        ("api-key-dialog", ScreenState::Waiting, "Enter to confirm"),
        (
            "permission",
            ScreenState::Waiting,
            "Do you want to proceed?",
        ),
        ("busy", ScreenState::Working, "esc to interrupt"),
        ("idle", ScreenState::Idle, "^❯$"),
        ("interrupted", ScreenState::Idle, ""),
        ("unreachable", ScreenState::Unknown, ""),
    ];
    for (name, want, matched) in cases {
        let title = std::fs::read_to_string(
            std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("tests/fixtures/screens")
                .join(format!("{dir}/{name}.title")),
        )
        .unwrap_or_default();
        let r = read("claude", &fixture(&format!("{dir}/{name}.txt")), &title);
        assert_eq!(r.state, *want, "{name}: {r:?}");
        assert!(
            r.matched.as_deref().unwrap_or("").contains(matched),
            "{name}: {r:?}"
        );
    }
    let q = |name: &str| read("claude", &fixture(&format!("{dir}/{name}.txt")), "").question;
    assert_eq!(
        q("permission"),
        "Bash command / Tip: auto mode handles these prompts for you — choose \"switch to auto \
             mode\" below / Remove the build directory / rm -rf build / Do you want to proceed? / \
             ❯ 1. Yes / 2. Yes, and always allow access to /tmp/screen-scratch/cl/ws from this \
             project / 3. Yes, and switch to auto mode · auto mode handles these prompts for you / \
             4. No / Esc to cancel · Tab to amend"
    );
    assert_eq!(
        q("api-key-dialog"),
        "Detected a custom API key in your environment / ANTHROPIC_API_KEY: \
             sk-ant-...sk-ant-test-0000 / Do you want to use this API key? / Yes / ❯ No \
             (recommended) / Enter to confirm · Esc to cancel"
    );
}

#[test]
fn synthetic_screens() {
    let claude_dialog = "\
⏺ I'll remove the build directory.

╭───────────────────────────────────────────────────────────────╮
│ Bash command                                                  │
│                                                               │
│   rm -rf build/                                               │
│   Remove the build directory                                  │
│                                                               │
│ Do you want to proceed?                                       │
│ ❯ 1. Yes                                                      │
│   2. Yes, and don't ask again for rm commands in /w/project   │
│   3. No, and tell Claude what to do differently (esc)         │
╰───────────────────────────────────────────────────────────────╯
";
    let claude_busy = "\
⏺ Reading the tests.

✻ Pondering… (12s · ↑ 1.2k tokens · esc to interrupt)

╭───────────────────────────────────────────────────────────────╮
│ >                                                             │
╰───────────────────────────────────────────────────────────────╯
  ? for shortcuts
";
    let claude_idle = "\
⏺ Done: all 14 tests pass.

╭───────────────────────────────────────────────────────────────╮
│ >                                                             │
╰───────────────────────────────────────────────────────────────╯
  ? for shortcuts
";
    let codex_approval = "\
› clean the build

• I'll remove the build directory.

  Would you like to run the following command?

  $ rm -rf build

› 1. Yes, proceed (y)
  2. Yes, and don't ask again for this command (p)
  3. No, and tell Codex what to do differently (esc)

  Press enter to confirm or esc to cancel
";
    let aider_confirm = "\
Applied edit to src/lib.rs
Commit 3f2a1b9 fix: handle empty input
Run shell command? cargo test (Y)es/(N)o [Yes]:";
    let aider_idle = "Tokens: 2.1k sent, 310 received.\n\narchitect>";
    let gemini_idle = "\
╭────────────────────────────────────────────╮
│ >   Type your message or @path/to/file     │
╰────────────────────────────────────────────╯";
    let generic_yn = "Overwrite 3 files? [y/N]";
    let cases: &[(&str, &str, &str, ScreenState)] = &[
        (
            "claude dialog",
            "claude",
            claude_dialog,
            ScreenState::Waiting,
        ),
        ("claude busy", "claude", claude_busy, ScreenState::Working),
        ("claude idle", "claude", claude_idle, ScreenState::Idle),
        (
            "codex approval",
            "codex",
            codex_approval,
            ScreenState::Waiting,
        ),
        (
            "aider confirm",
            "aider",
            aider_confirm,
            ScreenState::Waiting,
        ),
        ("aider idle", "aider", aider_idle, ScreenState::Idle),
        ("gemini idle", "gemini", gemini_idle, ScreenState::Idle),
        ("generic y/N", "*", generic_yn, ScreenState::Waiting),
        ("unknown agent idle", "*", claude_idle, ScreenState::Unknown),
        (
            "plain output",
            "codex",
            "compiling...\nerror: x\n",
            ScreenState::Unknown,
        ),
        ("empty", "claude", "", ScreenState::Unknown),
    ];
    for (name, kind, screen, want) in cases {
        assert_eq!(read(kind, screen, "").state, *want, "{name}");
    }
    assert_eq!(
        read("claude", claude_dialog, "").question,
        "Bash command / rm -rf build/ / Remove the build directory / Do you want to proceed? \
             / ❯ 1. Yes / 2. Yes, and don't ask again for rm commands in /w/project / 3. No, and \
             tell Claude what to do differently (esc)"
    );
    assert_eq!(
            read("codex", codex_approval, "").question,
            "› clean the build / • I'll remove the build directory. / Would you like to run the following command? \
             / $ rm -rf build / › 1. Yes, proceed (y) / 2. Yes, and don't ask again for this \
             command (p) / 3. No, and tell Codex what to do differently (esc) / Press enter to \
             confirm or esc to cancel"
        );
    // Only the bottom of the screen counts: an old dialog scrolled far up does not.
    let mut old = String::from("Do you want to proceed?\n");
    for i in 0..30 {
        old.push_str(&format!("output {i}\n"));
    }
    assert_eq!(read("claude", &old, "").state, ScreenState::Unknown);
    // Hostile screen text cannot smuggle controls into the question.
    let r = read(
        "claude",
        "\u{1b}]52;c;eA==\u{7}Do you want to proceed?\u{1b}[31m\r\n❯ 1. Yes",
        "",
    );
    assert_eq!(r.question, "Do you want to proceed? / ❯ 1. Yes");
}

#[test]
fn interactive_start_commands() {
    let k = |s: &str| {
        agent_kind(&s.split(' ').map(String::from).collect::<Vec<_>>())
            .map(|k| (k.kind, k.interactive))
    };
    let cases: &[(&str, Option<(&str, bool)>)] = &[
        ("codex", Some(("codex", true))),
        (
            "codex --approve-for-me fix the tests",
            Some(("codex", true)),
        ),
        ("codex resume --last", Some(("codex", true))),
        ("codex exec --skip-git-repo-check -", Some(("codex", false))),
        ("codex -m gpt-5 e hello", Some(("codex", false))),
        ("codex review", Some(("codex", false))),
        ("/opt/node_modules/.bin/codex", Some(("codex", true))),
        ("npx -y @openai/codex@0.169.0", Some(("codex", true))),
        (
            "node /x/node_modules/@openai/codex/bin/codex.js exec",
            Some(("codex", false)),
        ),
        ("env -u OPENAI_BASE_URL A=1 codex", Some(("codex", true))),
        ("claude", Some(("claude", true))),
        (
            "claude --permission-mode acceptEdits",
            Some(("claude", true)),
        ),
        ("claude -p fix", Some(("claude", false))),
        ("claude --print", Some(("claude", false))),
        ("aider --model sonnet", Some(("aider", true))),
        ("aider --message fix", Some(("aider", false))),
        ("aider --message=fix", Some(("aider", false))),
        ("gemini", Some(("gemini", true))),
        ("gemini -p hi", Some(("gemini", false))),
        ("gemini -i hi", Some(("gemini", true))),
        ("opencode", Some(("opencode", true))),
        ("opencode run fix", Some(("opencode", false))),
        ("sh -c codex&&true", Some(("codex", true))),
        ("sleep 600", None),
        ("python agent.py", None),
        ("sh script.sh", None),
        ("", None),
    ];
    for (cmd, want) in cases {
        assert_eq!(k(cmd), *want, "{cmd}");
    }
    let argv = ["bash", "-lc", "cd /w; claude -p 'fix it'"].map(String::from);
    assert_eq!(
        agent_kind(&argv),
        Some(AgentKind {
            kind: "claude",
            interactive: false
        })
    );
}

#[test]
fn adopted_panes_are_interactive_and_policy_patterns_extend() {
    let v = |s: &str| s.split(' ').map(String::from).collect::<Vec<_>>();
    assert_eq!(interactive_kind(&v("codex"), false), Some("codex"));
    assert_eq!(interactive_kind(&v("codex exec -"), false), None);
    assert_eq!(interactive_kind(&v("codex exec -"), true), Some("codex"));
    assert_eq!(interactive_kind(&v("my-agent --x"), false), None);
    assert_eq!(interactive_kind(&v("my-agent --x"), true), Some("*"));
    let pats = patterns(&["* waiting line Approve deploy?".to_string()]);
    assert_eq!(pats.len(), builtin_patterns().len() + 1);
    let refs: Vec<&Pattern> = pats.iter().collect();
    let r = classify("*", "build ok\nApprove deploy? yes/no", "", &refs);
    assert_eq!(r.state, ScreenState::Waiting);
    assert_eq!(r.question, "build ok / Approve deploy? yes/no");
}
