//! The docs cannot rot: completions each shell accepts, a man page man renders, and the
//! generated part of docs/reference.md equal to what the current code prints.

use std::path::Path;
use std::process::{Command, Output, Stdio};

const BIN: &str = env!("CARGO_BIN_EXE_metawsm-tick");

fn run(args: &[&str]) -> String {
    let out = Command::new(BIN)
        .args(args)
        .env("METAWSM_DB", "/nonexistent/metawsm-docs-test/state.db")
        .stdin(Stdio::null())
        .output()
        .expect("run binary");
    assert!(out.status.success(), "{args:?}: {out:?}");
    String::from_utf8(out.stdout).expect("utf-8")
}

/// A shell the test needs; on CI (.ci/run installs it) its absence is a failure.
fn have(tool: &str) -> bool {
    let found = Command::new("sh")
        .args(["-c", &format!("command -v {tool}")])
        .stdout(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if !found {
        assert!(
            std::env::var_os("CI").is_none(),
            "{tool} missing on CI (.ci/run installs it)"
        );
        eprintln!("skipped: {tool} is not installed (apt-get install {tool})");
    }
    found
}

fn check(tool: &[&str], script: &Path) -> Output {
    let out = Command::new(tool[0])
        .args(&tool[1..])
        .arg(script)
        .output()
        .expect("run shell");
    assert!(
        out.status.success(),
        "{tool:?} rejects the script: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

#[test]
fn each_shell_accepts_its_completion_script() {
    let dir = tempfile::tempdir().unwrap();
    for (shell, check_cmd) in [
        ("bash", &["bash", "-n"][..]),
        ("zsh", &["zsh", "-n"][..]),
        ("fish", &["fish", "--no-execute"][..]),
    ] {
        let script = run(&["completions", shell]);
        assert!(
            script.contains("run") && script.contains("workspace"),
            "{shell}"
        );
        if !have(shell) {
            continue;
        }
        let path = dir.path().join(shell);
        std::fs::write(&path, script).unwrap();
        check(check_cmd, &path);
    }
}

/// The bash script, sourced, completes commands, subcommands, flags, choices and run ids
/// (the hidden `__runs` query, here over a real database).
#[test]
fn bash_completion_completes_commands_flags_and_run_ids() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("state.db");
    let script = dir.path().join("c.bash");
    std::fs::write(&script, run(&["completions", "bash"])).unwrap();
    let probe = |words: &str| -> String {
        let body = format!(
            "source {}\nCOMP_WORDS=({words}); COMP_CWORD=$((${{#COMP_WORDS[@]}}-1)); \
             _metawsm_tick; printf '%s\\n' \"${{COMPREPLY[*]}}\"",
            script.display()
        );
        let out = Command::new("bash")
            .args(["-c", &body])
            .env("METAWSM_DB", &db)
            .env(
                "PATH",
                format!(
                    "{}:{}",
                    Path::new(BIN).parent().unwrap().display(),
                    std::env::var("PATH").unwrap_or_default()
                ),
            )
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    };
    assert!(
        probe("metawsm-tick ''").contains("tick status run"),
        "top level"
    );
    assert!(probe("metawsm-tick run ''").contains("start adopt"));
    assert!(probe("metawsm-tick run start --w").contains("--workspace"));
    assert_eq!(probe("metawsm-tick status --format ''"), "tmux plain json");
    assert_eq!(probe("metawsm-tick signal ''"), "working waiting done");
    assert_eq!(
        probe("metawsm-tick --db x run stop ''"),
        "",
        "no database: no ids"
    );
}

#[test]
fn runs_query_is_silent_without_a_database() {
    assert_eq!(run(&["__runs"]), "");
}

#[test]
fn man_renders_the_page_with_every_command() {
    let page = run(&["man"]);
    if !have("man") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("metawsm-tick.1");
    std::fs::write(&path, page).unwrap();
    let out = Command::new("man")
        .arg("-l")
        .arg(&path)
        .env("MANPAGER", "cat")
        .env("PAGER", "cat")
        .env("MANWIDTH", "100")
        .output()
        .expect("man");
    assert!(out.status.success(), "{out:?}");
    let text = String::from_utf8_lossy(&out.stdout);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!err.contains("warning"), "roff warnings: {err}");
    for needle in [
        "METAWSM-TICK(1)",
        "metawsm-tick run start",
        "--workspace DIR",
        "metawsm-tick completions",
    ] {
        assert!(text.contains(needle), "man page lacks {needle:?}:\n{text}");
    }
}

/// docs/reference.md's "Every command and flag" is `metawsm-tick __reference`; a help
/// text changed without it fails here. `METAWSM_BLESS=1` rewrites the section.
#[test]
fn reference_commands_section_matches_the_code() {
    check_generated("commands", &run(&["__reference"]));
}

/// The policy key table is `metawsm-tick __policy-keys`, made from the one definition of
/// every key (src/policy/keys.rs).
#[test]
fn reference_policy_table_matches_the_keys() {
    let fresh = run(&["__policy-keys"]);
    assert!(fresh.contains("| `operator.restart_budget` |"), "{fresh}");
    check_generated("policy keys", &fresh);
}

/// The text between docs/reference.md's `generated: NAME` markers equals `fresh`, or is
/// rewritten to it under `METAWSM_BLESS=1`.
fn check_generated(name: &str, fresh: &str) {
    let (begin, end) = (
        format!("<!-- BEGIN generated: {name} -->\n"),
        format!("<!-- END generated: {name} -->\n"),
    );
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/reference.md");
    let doc = std::fs::read_to_string(&path).expect("docs/reference.md");
    let (Some(b), Some(e)) = (doc.find(&begin), doc.find(&end)) else {
        panic!("docs/reference.md lacks the {begin:?} … {end:?} markers");
    };
    let current = &doc[b + begin.len()..e];
    if current != fresh {
        if std::env::var_os("METAWSM_BLESS").is_some() {
            let new = format!("{}{begin}{fresh}{}", &doc[..b], &doc[e..]);
            std::fs::write(&path, new).unwrap();
            return;
        }
        let line = current
            .lines()
            .zip(fresh.lines())
            .position(|(a, b)| a != b)
            .unwrap_or(current.lines().count().min(fresh.lines().count()));
        panic!(
            "docs/reference.md ({name}) is stale (first difference at generated line {}); \
             run: METAWSM_BLESS=1 cargo test --test docs",
            line + 1
        );
    }
}
