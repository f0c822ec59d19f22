use super::*;
use std::fs::File;
use std::io::Write;

const REPO_FIXTURES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/policy/");
const SHARED_FIXTURES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../shared/fixtures/");
const FIXTURES: [&str; 2] = ["metawsm-policy.a3640a4.json", "metawsm-policy.head.json"];

fn parse(text: &str) -> Result<Policy, PolicyError> {
    Policy::parse(text, "p.json")
}

fn ok(text: &str) -> Policy {
    match parse(text) {
        Ok(p) => p,
        Err(e) => panic!("{text}: {e}"),
    }
}

#[test]
fn defaults_are_valid_and_as_specified() {
    let p = Policy::default();
    assert_eq!(p.validate(), Ok(()));
    assert_eq!(p.tmux.session_pattern, "{agent}-{workspace}");
    assert_eq!(p.operator.llm.mode, LlmMode::Assist);
    assert_eq!(p.operator.llm.provider, LlmProvider::Codex);
    assert_eq!(p.operator.llm.command, "codex");
    assert_eq!(p.operator.llm.min_confidence, 0.5);
    assert!(p.operator.notify.command.is_empty());
    assert!(p.operator.notify.tmux_message && !p.operator.notify.bell);
    assert_eq!(p.status.icon_ok, "⚙");
    assert_eq!(p.status.color_done, "blue");
}

#[test]
fn original_fixtures_load_unchanged() {
    for name in FIXTURES {
        // The repo copy is required; shared/ beside the checkout is checked when present.
        let repo = Path::new(REPO_FIXTURES).join(name);
        assert!(repo.is_file(), "missing fixture {}", repo.display());
        let shared = Path::new(SHARED_FIXTURES).join(name);
        for path in [repo, shared].iter().filter(|p| p.is_file()) {
            let loaded = Policy::load(path).map_err(|e| e.to_string());
            // Their tmux/health/operator blocks are exactly our defaults.
            assert_eq!(loaded, Ok(Policy::default()), "{}", path.display());
        }
    }
}

#[test]
fn bad_inputs_give_exact_messages() {
    let long33 = format!(r#"{{"status":{{"icon_ok":"{}"}}}}"#, "x".repeat(33));
    let long_key = format!(r#"{{"{}":1}}"#, "k".repeat(70));
    let long_key_msg = format!("{}…: unknown key", "k".repeat(64));
    let cases: Vec<(&str, &str)> = vec![
        // Structure.
        ("", "file is empty"),
        (" \n\t\r\n", "file is empty"),
        ("{", "invalid JSON at line 1 column 1: EOF while parsing an object"),
        ("{\n  \"version\": 2,\n}", "invalid JSON at line 3 column 1: trailing comma"),
        ("{} x", "invalid JSON at line 1 column 4: trailing characters"),
        ("[1]", "top level must be a JSON object"),
        (
            r#"{"operator":{"restart_budget":1,"restart_budget":9}}"#,
            "duplicate key operator.restart_budget",
        ),
        ("null", "top level must be a JSON object"),
        ("42", "top level must be a JSON object"),
        // Unknown keys at every level; keys are case-sensitive.
        (r#"{"foo":1}"#, "foo: unknown key"),
        (r#"{"Version":2}"#, "Version: unknown key"),
        (r#"{"a\nb":1}"#, "a\\nb: unknown key"),
        (&long_key, &long_key_msg),
        (r#"{"tmux":{"pattern":"x"}}"#, "tmux.pattern: unknown key"),
        (r#"{"health":{"idle":1}}"#, "health.idle: unknown key"),
        (r#"{"operator":{"restat_budget":3}}"#, "operator.restat_budget: unknown key"),
        (r#"{"operator":{"llm":{"modle":"off"}}}"#, "operator.llm.modle: unknown key"),
        (r#"{"operator":{"notify":{"sound":true}}}"#, "operator.notify.sound: unknown key"),
        (r#"{"status":{"icon":"x"}}"#, "status.icon: unknown key"),
        (
            r#"{"health":{"screen_patterns":["codex busy line x"]}}"#,
            "health.screen_patterns[0]: state \"busy\" must be working|waiting|idle (in \"codex busy line x\")",
        ),
        (r#"{"health":{"screen_patterns":"x"}}"#, "health.screen_patterns must be an array of strings"),
        (r#"{"health":{"restart_quiet_interactive":1}}"#, "health.restart_quiet_interactive must be a boolean"),
        // Blocks that are not objects.
        (r#"{"tmux":[]}"#, "tmux must be an object"),
        (r#"{"health":null}"#, "health must be an object"),
        (r#"{"operator":"x"}"#, "operator must be an object"),
        (r#"{"operator":{"llm":null}}"#, "operator.llm must be an object"),
        (r#"{"operator":{"notify":1}}"#, "operator.notify must be an object"),
        (r#"{"status":true}"#, "status must be an object"),
        // Wrong types.
        (r#"{"version":"2"}"#, "version must be an integer"),
        (r#"{"version":3.0}"#, "version must be an integer"),
        (r#"{"version":1e2}"#, "version must be an integer"),
        (r#"{"version":9223372036854775808}"#, "version must be an integer"),
        (r#"{"health":{"idle_seconds":true}}"#, "health.idle_seconds must be an integer"),
        (r#"{"operator":{"restart_budget":"3"}}"#, "operator.restart_budget must be an integer"),
        (r#"{"tmux":{"session_pattern":5}}"#, "tmux.session_pattern must be a string"),
        (r#"{"operator":{"llm":{"mode":1}}}"#, "operator.llm.mode must be a string"),
        (r#"{"operator":{"llm":{"provider":[]}}}"#, "operator.llm.provider must be a string"),
        (r#"{"operator":{"llm":{"command":["codex"]}}}"#, "operator.llm.command must be a string"),
        (r#"{"operator":{"llm":{"model":false}}}"#, "operator.llm.model must be a string"),
        (r#"{"operator":{"llm":{"args":"-q"}}}"#, "operator.llm.args must be an array of strings"),
        (r#"{"operator":{"llm":{"args":["-q",1]}}}"#, "operator.llm.args must be an array of strings"),
        (r#"{"operator":{"llm":{"min_confidence":"0.5"}}}"#, "operator.llm.min_confidence must be a number"),
        (r#"{"operator":{"llm":{"max_tokens":4.5}}}"#, "operator.llm.max_tokens must be an integer"),
        (r#"{"operator":{"notify":{"command":5}}}"#, "operator.notify.command must be a string or an array of strings"),
        (r#"{"operator":{"notify":{"command":[["x"]]}}}"#, "operator.notify.command must be a string or an array of strings"),
        (r#"{"operator":{"notify":{"tmux_message":"yes"}}}"#, "operator.notify.tmux_message must be a boolean"),
        (r#"{"operator":{"notify":{"bell":1}}}"#, "operator.notify.bell must be a boolean"),
        (r#"{"status":{"color_ok":1}}"#, "status.color_ok must be a string"),
        // null never means "default".
        (r#"{"version":null}"#, "version must be an integer"),
        (r#"{"tmux":{"session_pattern":null}}"#, "tmux.session_pattern must be a string"),
        (r#"{"operator":{"llm":{"min_confidence":null}}}"#, "operator.llm.min_confidence must be a number"),
        (r#"{"operator":{"llm":{"args":null}}}"#, "operator.llm.args must be an array of strings"),
        (r#"{"operator":{"notify":{"command":null}}}"#, "operator.notify.command must be a string or an array of strings"),
        (r#"{"operator":{"notify":{"bell":null}}}"#, "operator.notify.bell must be a boolean"),
        // Enumerations.
        (r#"{"operator":{"llm":{"mode":"sometimes"}}}"#, "operator.llm.mode must be off|assist|auto"),
        (r#"{"operator":{"llm":{"mode":""}}}"#, "operator.llm.mode must be off|assist|auto"),
        (r#"{"operator":{"llm":{"provider":"gpt"}}}"#, "operator.llm.provider must be codex|claude|command|metawsm"),
        // Validation, field by field.
        (r#"{"version":0}"#, "version must be > 0"),
        (r#"{"version":-2}"#, "version must be > 0"),
        (r#"{"tmux":{"session_pattern":" \t"}}"#, "tmux.session_pattern cannot be empty"),
        (r#"{"health":{"idle_seconds":0}}"#, "health.idle_seconds must be > 0"),
        (r#"{"health":{"activity_stalled_seconds":-1}}"#, "health.activity_stalled_seconds must be > 0"),
        (r#"{"health":{"progress_stalled_seconds":0}}"#, "health.progress_stalled_seconds must be > 0"),
        (r#"{"health":{"idle_seconds":901}}"#, "health.activity_stalled_seconds must be >= health.idle_seconds"),
        (r#"{"operator":{"unhealthy_confirmations":0}}"#, "operator.unhealthy_confirmations must be > 0"),
        (r#"{"operator":{"restart_budget":0}}"#, "operator.restart_budget must be > 0"),
        (r#"{"operator":{"restart_cooldown_seconds":0}}"#, "operator.restart_cooldown_seconds must be > 0"),
        (r#"{"operator":{"restart_cooldown_max_seconds":-5}}"#, "operator.restart_cooldown_max_seconds must be > 0"),
        (r#"{"operator":{"stale_run_age_seconds":0}}"#, "operator.stale_run_age_seconds must be > 0"),
        (r#"{"operator":{"tick_interval_seconds":0}}"#, "operator.tick_interval_seconds must be > 0"),
        (r#"{"operator":{"restart_cooldown_seconds":901}}"#, "operator.restart_cooldown_max_seconds must be >= operator.restart_cooldown_seconds"),
        (r#"{"operator":{"min_observation_gap_seconds":-1}}"#, "operator.min_observation_gap_seconds must be >= 0"),
        (r#"{"operator":{"healthy_reset_seconds":-1}}"#, "operator.healthy_reset_seconds must be >= 0"),
        (r#"{"operator":{"llm":{"command":"  "}}}"#, "operator.llm.command cannot be empty"),
        (r#"{"operator":{"llm":{"timeout_seconds":0}}}"#, "operator.llm.timeout_seconds must be > 0"),
        (r#"{"operator":{"llm":{"max_tokens":0}}}"#, "operator.llm.max_tokens must be > 0"),
        (r#"{"operator":{"llm":{"min_interval_seconds":-1}}}"#, "operator.llm.min_interval_seconds must be >= 0"),
        (r#"{"operator":{"llm":{"min_confidence":1.01}}}"#, "operator.llm.min_confidence must be between 0 and 1"),
        (r#"{"operator":{"llm":{"min_confidence":-0.1}}}"#, "operator.llm.min_confidence must be between 0 and 1"),
        (r#"{"operator":{"llm":{"args":["--json",""]}}}"#, "operator.llm.args items cannot be empty"),
        (r#"{"operator":{"notify":{"command":["notify-send",""]}}}"#, "operator.notify.command items cannot be empty"),
        (&long33, "status.icon_ok must be at most 32 characters without control characters"),
        (r#"{"status":{"icon_done":"\u0007"}}"#, "status.icon_done must be at most 32 characters without control characters"),
        (r#"{"status":{"color_blocked":"red\n"}}"#, "status.color_blocked must be at most 32 characters without control characters"),
        // Upper bounds (one year).
        (r#"{"health":{"idle_seconds":31536001,"activity_stalled_seconds":31536001}}"#, "health.idle_seconds must be <= 31536000"),
        (r#"{"health":{"progress_stalled_seconds":31536001}}"#, "health.progress_stalled_seconds must be <= 31536000"),
        (r#"{"operator":{"unhealthy_confirmations":31536001}}"#, "operator.unhealthy_confirmations must be <= 31536000"),
        (r#"{"operator":{"restart_budget":9223372036854775807}}"#, "operator.restart_budget must be <= 31536000"),
        (r#"{"operator":{"restart_cooldown_max_seconds":31536001}}"#, "operator.restart_cooldown_max_seconds must be <= 31536000"),
        (r#"{"operator":{"stale_run_age_seconds":31536001}}"#, "operator.stale_run_age_seconds must be <= 31536000"),
        (r#"{"operator":{"min_observation_gap_seconds":31536001}}"#, "operator.min_observation_gap_seconds must be <= 31536000"),
        (r#"{"operator":{"healthy_reset_seconds":31536001}}"#, "operator.healthy_reset_seconds must be <= 31536000"),
        (r#"{"operator":{"tick_interval_seconds":31536001}}"#, "operator.tick_interval_seconds must be <= 31536000"),
        (r#"{"operator":{"llm":{"timeout_seconds":31536001}}}"#, "operator.llm.timeout_seconds must be <= 31536000"),
        (r#"{"operator":{"llm":{"min_interval_seconds":31536001}}}"#, "operator.llm.min_interval_seconds must be <= 31536000"),
    ];
    assert!(cases.len() >= 35);
    for (input, message) in cases {
        let expected = PolicyError {
            path: "p.json".to_owned(),
            message: message.to_owned(),
        };
        assert_eq!(parse(input), Err(expected), "input: {input}");
    }
}

#[test]
fn first_failing_rule_wins() {
    let text = r#"{"version":0,"tmux":{"session_pattern":""},"operator":{"restart_budget":0}}"#;
    assert_eq!(
        parse(text).map_err(|e| e.message),
        Err("version must be > 0".into())
    );
    let text = r#"{"health":{"idle_seconds":0},"operator":{"restart_budget":0}}"#;
    assert_eq!(
        parse(text).map_err(|e| e.message),
        Err("health.idle_seconds must be > 0".into())
    );
}

#[test]
fn error_display_is_one_line() {
    let e = PolicyError {
        path: "~/.config/metawsm/policy.json".into(),
        message: "version must be > 0".into(),
    };
    assert_eq!(
        e.to_string(),
        "policy ~/.config/metawsm/policy.json: version must be > 0"
    );
    let e = PolicyError {
        path: "a\nb.json".into(),
        message: "x\ry".into(),
    };
    assert_eq!(e.to_string(), "policy a\\nb.json: x\\ry");
}

#[test]
fn partial_files_keep_defaults() {
    let p = ok(r#"{"operator":{"restart_budget":5,"llm":{"mode":"off"}}}"#);
    let mut expected = Policy::default();
    expected.operator.restart_budget = 5;
    expected.operator.llm.mode = LlmMode::Off;
    assert_eq!(p, expected);
    assert_eq!(ok("{}"), Policy::default());
    assert_eq!(ok(r#"{"operator":{},"status":{}}"#), Policy::default());
    let p = ok(r#"{"status":{"icon_ok":"","color_ok":"colour82"}}"#);
    assert_eq!(p.status.icon_ok, "");
    assert_eq!(p.status.color_ok, "colour82");
    assert_eq!(p.status.icon_done, "✔");
}

#[test]
fn ignored_blocks_accept_any_content() {
    let p = ok(r#"{"workspace":5,"docs":null,"execution":[],"close":"x",
        "agent_profiles":{"a":1},"agents":[1,2],"git_pr":{"mode":"??"},"forum":true}"#);
    assert_eq!(p, Policy::default());
}

#[test]
fn enums_trim_and_lowercase() {
    let p = ok(r#"{"operator":{"llm":{"mode":" AUTO ","provider":"Command"}}}"#);
    assert_eq!(p.operator.llm.mode, LlmMode::Auto);
    assert_eq!(p.operator.llm.provider, LlmProvider::Command);
    assert_eq!(p.operator.llm.command, "codex");
    assert_eq!("Off".parse::<LlmMode>(), Ok(LlmMode::Off));
    assert_eq!(
        "x".parse::<LlmMode>(),
        Err("must be off|assist|auto".to_owned())
    );
    assert_eq!(" claude\n".parse::<LlmProvider>(), Ok(LlmProvider::Claude));
    // Every policy choice reads the same way (one definition, model::words!).
    assert_eq!(" Fresh".parse::<RestartMode>(), Ok(RestartMode::Fresh));
    assert_eq!("STOP".parse::<OnComplete>(), Ok(OnComplete::Stop));
    assert_eq!(
        "later".parse::<OnComplete>(),
        Err("must be keep|stop".to_owned())
    );
    for m in [LlmMode::Off, LlmMode::Assist, LlmMode::Auto] {
        assert_eq!(m.as_str().parse::<LlmMode>(), Ok(m));
    }
    for p in [
        LlmProvider::Codex,
        LlmProvider::Claude,
        LlmProvider::Command,
    ] {
        assert_eq!(p.as_str().parse::<LlmProvider>(), Ok(p));
    }
}

#[test]
fn claude_provider_defaults_its_command() {
    let p = ok(r#"{"operator":{"llm":{"provider":"claude"}}}"#);
    assert_eq!(p.operator.llm.command, "claude");
    let p = ok(r#"{"operator":{"llm":{"provider":"claude","command":"/opt/bin/claude-x"}}}"#);
    assert_eq!(p.operator.llm.command, "/opt/bin/claude-x");
    let p = ok(r#"{"operator":{"llm":{"command":"codex","provider":"claude"}}}"#);
    assert_eq!(p.operator.llm.command, "codex");
}

#[test]
fn notify_command_forms() {
    let cmd = |json: &str| {
        ok(&format!(
            r#"{{"operator":{{"notify":{{"command":{json}}}}}}}"#
        ))
    };
    // A single string is a shell command, as the original's --notify-cmd was.
    assert_eq!(
        cmd(r#""notify-send -u critical \"$METAWSM_MESSAGE\"""#)
            .operator
            .notify
            .command,
        vec!["sh", "-c", "notify-send -u critical \"$METAWSM_MESSAGE\""]
    );
    assert!(cmd(r#""""#).operator.notify.command.is_empty());
    assert!(cmd("[]").operator.notify.command.is_empty());
    assert_eq!(
        cmd(r#"["notify-send","-u","critical"]"#)
            .operator
            .notify
            .command,
        vec!["notify-send", "-u", "critical"]
    );
}

#[test]
fn numbers_are_typed_strictly() {
    let p = ok(r#"{"operator":{"llm":{"min_confidence":1}}}"#);
    assert_eq!(p.operator.llm.min_confidence, 1.0);
    let p = ok(r#"{"operator":{"llm":{"min_confidence":0}}}"#);
    assert_eq!(p.operator.llm.min_confidence, 0.0);
    let p = ok(r#"{"operator":{"min_observation_gap_seconds":0,"healthy_reset_seconds":0}}"#);
    assert_eq!(p.operator.min_observation_gap_seconds, 0);
    let p = ok(r#"{"health":{"idle_seconds":31536000,"activity_stalled_seconds":31536000}}"#);
    assert_eq!(p.health.idle_seconds, MAX_SECONDS);
}

#[test]
fn byte_order_mark_is_ignored() {
    assert_eq!(ok("\u{feff}{}"), Policy::default());
    assert_eq!(
        parse("\u{feff}").map_err(|e| e.message),
        Err("file is empty".into())
    );
}

fn customised() -> Policy {
    let mut p = Policy {
        version: 3,
        ..Policy::default()
    };
    p.tmux.session_pattern = "ai-{agent}".into();
    p.health.idle_seconds = 120;
    p.operator.restart_cooldown_max_seconds = 1800;
    p.operator.min_observation_gap_seconds = 0;
    p.operator.llm.mode = LlmMode::Auto;
    p.operator.llm.provider = LlmProvider::Command;
    p.operator.llm.command = "/usr/local/bin/advisor".into();
    p.operator.llm.args = vec!["--json".into(), "--model=x y".into()];
    p.operator.llm.model = "gpt-x".into();
    p.operator.llm.min_confidence = 0.75;
    p.operator.notify.command = vec!["notify-send".into(), "metawsm".into()];
    p.operator.notify.tmux_message = false;
    p.operator.notify.bell = true;
    p.status.icon_ok = "🤖".into();
    p.status.color_blocked = "#ff0000".into();
    p
}

#[test]
fn round_trips_through_pretty_json() {
    for p in [Policy::default(), customised()] {
        assert_eq!(p.validate(), Ok(()));
        let json = p.to_pretty_json();
        assert!(json.ends_with("}\n") && !json.ends_with("\n\n"));
        assert_eq!(parse(&json), Ok(p));
    }
    // Claude's implicit command survives the trip because it is written out.
    let p = ok(r#"{"operator":{"llm":{"provider":"claude"}}}"#);
    assert_eq!(parse(&p.to_pretty_json()), Ok(p));
}

#[test]
fn pretty_json_has_the_file_shape() {
    let json = Policy::default().to_pretty_json();
    assert!(json.starts_with("{\n  \"version\": 2,\n  \"tmux\": {\n    \"session_pattern\""));
    assert!(json.contains("\n      \"mode\": \"assist\",\n      \"provider\": \"codex\","));
    assert!(json.contains("\"min_confidence\": 0.5"));
    assert!(json.contains("\"command\": []"));
}

#[test]
fn load_missing_file_gives_defaults() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("nope").join("policy.json");
    assert_eq!(Policy::load(&path), Ok(Policy::default()));
}

#[test]
fn load_reads_and_validates() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("policy.json");
    std::fs::write(&path, r#"{"operator":{"restart_budget":7}}"#).expect("write");
    let p = Policy::load(&path).expect("load");
    assert_eq!(p.operator.restart_budget, 7);

    std::fs::write(&path, r#"{"operator":{"restart_budget":0}}"#).expect("write");
    let e = Policy::load(&path).expect_err("invalid");
    assert_eq!(e.message, "operator.restart_budget must be > 0");
    assert!(e.path.ends_with("policy.json"));

    std::fs::write(&path, b"{\"version\": \xff}").expect("write");
    let e = Policy::load(&path).expect_err("not utf-8");
    assert_eq!(e.message, "file is not valid UTF-8 (at byte 12)");

    let e = Policy::load(dir.path()).expect_err("directory");
    assert_eq!(e.message, "is a directory, not a regular file");
}

#[test]
fn load_refuses_a_huge_file_without_reading_it() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("policy.json");
    let mut f = File::create(&path).expect("create");
    f.write_all(b"{").expect("write");
    // Sparse 10 MB: the size check must fire on metadata alone.
    f.set_len(10 << 20).expect("set_len");
    drop(f);
    let e = Policy::load(&path).expect_err("too large");
    assert_eq!(
        e.message,
        "file is too large (10485760 bytes, limit 1048576)"
    );

    // Exactly at the limit is still read (and then parsed).
    let f = File::create(&path).expect("create");
    f.set_len(MAX_POLICY_BYTES).expect("set_len");
    drop(f);
    let e = Policy::load(&path).expect_err("NULs are not JSON");
    assert!(
        e.message.starts_with("invalid JSON at line 1 column 1:"),
        "{}",
        e.message
    );
}

#[cfg(target_os = "linux")]
#[test]
fn load_refuses_devices_and_fifos_without_reading() {
    // /dev/zero never ends and a FIFO with no writer blocks any blocking open.
    let e = Policy::load(Path::new("/dev/zero")).expect_err("endless");
    assert_eq!(e.message, "is a character device, not a regular file");
    let dir = tempfile::tempdir().expect("tempdir");
    let fifo = dir.path().join("policy.json");
    nix::unistd::mkfifo(&fifo, nix::sys::stat::Mode::from_bits_truncate(0o600)).expect("mkfifo");
    let e = Policy::load(&fifo).expect_err("fifo");
    assert_eq!(e.message, "is a FIFO, not a regular file");
}

#[test]
fn parse_refuses_oversized_text() {
    let text = " ".repeat(MAX_POLICY_BYTES as usize + 1);
    assert_eq!(
        parse(&text).map_err(|e| e.message),
        Err("file is too large (1048577 bytes, limit 1048576)".into())
    );
}

#[test]
fn home_is_shown_as_tilde() {
    let home = Some(OsStr::new("/home/ann"));
    let show = |p: &str, h: Option<&OsStr>| display_path(Path::new(p), h);
    assert_eq!(
        show("/home/ann/.config/metawsm/policy.json", home),
        "~/.config/metawsm/policy.json"
    );
    assert_eq!(show("/home/ann", home), "~");
    assert_eq!(show("/home/anna/p.json", home), "/home/anna/p.json");
    assert_eq!(show("/etc/p.json", home), "/etc/p.json");
    assert_eq!(show("rel/p.json", home), "rel/p.json");
    assert_eq!(
        show("/home/ann/p.json", Some(OsStr::new("/home/ann/"))),
        "~/p.json"
    );
    assert_eq!(show("/p.json", Some(OsStr::new("/"))), "/p.json");
    assert_eq!(show("/p.json", Some(OsStr::new(""))), "/p.json");
    assert_eq!(show("/home/ann/p.json", None), "/home/ann/p.json");
}

mod props {
    use super::super::*;
    use proptest::prelude::*;

    fn status_text() -> impl Strategy<Value = String> {
        "\\PC{0,32}"
    }

    proptest! {
        #[test]
        fn valid_policies_round_trip(
            idle in 1i64..=1000,
            extra in 0i64..=1000,
            budget in 1i64..=MAX_SECONDS,
            gap in 0i64..=MAX_SECONDS,
            mode in prop_oneof![Just(LlmMode::Off), Just(LlmMode::Assist), Just(LlmMode::Auto)],
            provider in prop_oneof![
                Just(LlmProvider::Codex), Just(LlmProvider::Claude), Just(LlmProvider::Command)
            ],
            command in "[a-z/]{1,12}",
            args in proptest::collection::vec("\\PC{1,8}", 0..4),
            permille in 0u32..=1000,
            notify in proptest::collection::vec("\\PC{1,8}", 0..3),
            bell: bool,
            icon in status_text(),
            color in status_text(),
        ) {
            let mut p = Policy::default();
            p.health.idle_seconds = idle;
            p.health.activity_stalled_seconds = idle + extra;
            p.operator.restart_budget = budget;
            p.operator.min_observation_gap_seconds = gap;
            p.operator.llm.mode = mode;
            p.operator.llm.provider = provider;
            p.operator.llm.command = command;
            p.operator.llm.args = args;
            // Few-digit decimals: serde_json's default float parser is exact for these.
            p.operator.llm.min_confidence = f64::from(permille) / 1000.0;
            p.operator.notify.command = notify;
            p.operator.notify.bell = bell;
            p.status.icon_blocked = icon;
            p.status.color_guidance = color;
            prop_assert_eq!(p.validate(), Ok(()));
            prop_assert_eq!(Policy::parse(&p.to_pretty_json(), "p"), Ok(p));
        }

        #[test]
        fn arbitrary_text_never_panics(text in "\\PC{0,200}") {
            let _ = Policy::parse(&text, "p");
        }
    }
}

/// Leaf paths of the serialised policy: what `policy show` prints.
fn leaf_paths(value: &serde_json::Value, at: &str, out: &mut Vec<String>) {
    match value {
        serde_json::Value::Object(map) => {
            for (name, inner) in map {
                let path = if at.is_empty() {
                    name.clone()
                } else {
                    format!("{at}.{name}")
                };
                leaf_paths(inner, &path, out);
            }
        }
        _ => out.push(at.to_owned()),
    }
}

#[test]
fn every_field_has_one_key() {
    let value = serde_json::to_value(Policy::default()).expect("serialise");
    let mut fields = Vec::new();
    leaf_paths(&value, "", &mut fields);
    fields.sort();
    let mut keys: Vec<String> = KEYS.iter().map(|k| k.path.to_owned()).collect();
    keys.sort();
    let before = keys.len();
    keys.dedup();
    assert_eq!(keys.len(), before, "a path is defined twice");
    assert_eq!(fields, keys, "struct fields and KEYS differ");
}

#[test]
fn table_is_consistent() {
    use keys::{Field, Rule};
    for key in KEYS {
        for rule in key.rules {
            let fits = match (rule, &key.field) {
                (Rule::AboveZero | Rule::Positive | Rule::NonNegative, Field::Int(..)) => true,
                (Rule::AtLeast(other), Field::Int(..)) => KEYS
                    .iter()
                    .any(|k| k.path == *other && matches!(k.field, Field::Int(..))),
                (Rule::NotBlank | Rule::StatusText, Field::Str(..)) => true,
                (Rule::Unit, Field::Number(..)) => true,
                (Rule::NoEmptyItems, Field::Strings(_) | Field::Command(_)) => true,
                (Rule::ScreenPatterns, Field::Strings(_)) => true,
                _ => false,
            };
            assert!(fits, "{}: {rule:?} does not fit its type", key.path);
        }
        if let Field::Choice {
            set,
            default,
            choices,
        } = &key.field
        {
            assert!(choices.contains(default), "{}", key.path);
            let mut p = Policy::default();
            for c in choices.iter() {
                assert_eq!(set(&mut p, c), Ok(()), "{}: {c}", key.path);
            }
        }
        assert!(
            !key.doc.is_empty() && !key.doc.contains('\n'),
            "{}",
            key.path
        );
    }
}

#[test]
fn docs_table_has_a_row_per_key() {
    let table = markdown_table();
    assert_eq!(table.lines().count(), KEYS.len() + 2);
    assert!(table.contains(
        "| `operator.restart_budget` | integer | 3 | > 0, ≤ 31536000 | restarts allowed before escalating |"
    ));
    assert!(table.contains("| `operator.llm.mode` | `off` \\| `assist` \\| `auto` | `assist` |"));
}
