//! Examples that cannot rot: every line of every ```` ```sh ```` block in README.md and
//! docs/guide.md runs here, in order, against a real isolated tmux server, with HOME,
//! METAWSM_DB and METAWSM_TMUX_SOCKET in a temp dir and stand-ins for the agent CLIs
//! (tests/fixtures/bin/codex, claude) that reject flags today's CLIs reject. A line must
//! exit 0; a trailing `# → TEXT` means its output must contain TEXT. Blocks marked
//! ```` ```sh no-run ```` (set-up, development) are not run.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

const BIN: &str = env!("CARGO_BIN_EXE_metawsm-tick");

struct Example {
    line: usize,
    command: String,
    expect: Option<String>,
}

/// The runnable lines of one document, each with its 1-based line number.
fn examples(doc: &str) -> Vec<Example> {
    let mut out = Vec::new();
    let mut inside = None::<bool>;
    for (i, line) in doc.lines().enumerate() {
        if let Some(info) = line.strip_prefix("```") {
            inside = match inside {
                Some(_) => None,
                None => Some(info.trim() == "sh"),
            };
            continue;
        }
        if inside != Some(true) || line.trim().is_empty() || line.starts_with('#') {
            continue;
        }
        let (command, expect) = match line.split_once("# → ") {
            Some((c, e)) => (c, Some(e.trim().to_string())),
            None => (line, None),
        };
        out.push(Example {
            line: i + 1,
            command: command.trim_end().to_string(),
            expect,
        });
    }
    out
}

struct Sandbox {
    dir: tempfile::TempDir,
    home: PathBuf,
    sock: PathBuf,
    path: String,
}

impl Sandbox {
    fn new() -> Sandbox {
        let dir = tempfile::tempdir().unwrap();
        let home = dir.path().join("home");
        std::fs::create_dir(&home).unwrap();
        let sock = dir.path().join("sock");
        let root = Path::new(env!("CARGO_MANIFEST_DIR"));
        // The installed binary first (install.sh puts it there; pages without the
        // quick start use the built one), then the stand-ins.
        let path = format!(
            "{}:{}:{}:{}",
            home.join(".local/bin").display(),
            Path::new(BIN).parent().unwrap().display(),
            root.join("tests/fixtures/bin").display(),
            std::env::var("PATH").unwrap_or_default()
        );
        let sb = Sandbox {
            dir,
            home,
            sock,
            path,
        };
        // The user's tmux server, already running (the quick start loads the plugin into it).
        let out = sb
            .cmd("tmux")
            .args(["-S"])
            .arg(&sb.sock)
            .args(["-f", "/dev/null", "new-session", "-d", "-s", "shell"])
            .output()
            .unwrap();
        assert!(out.status.success(), "start tmux: {out:?}");
        sb
    }

    fn cmd(&self, program: &str) -> Command {
        let mut c = Command::new(program);
        c.env_clear()
            .env("HOME", &self.home)
            .env("PATH", &self.path)
            .env("LANG", "C.UTF-8")
            .env("TERM", "xterm-256color")
            .env("METAWSM_TMUX_SOCKET", &self.sock)
            .env(
                "METAWSM_DB",
                self.home.join(".local/state/metawsm/state.db"),
            )
            // install.sh installs this binary instead of building a release one.
            .env("METAWSM_INSTALL_BINARY", BIN)
            .current_dir(env!("CARGO_MANIFEST_DIR"))
            .stdin(Stdio::null());
        c
    }

    /// Runs one example; Err names the document line and what went wrong.
    fn run(&self, doc: &str, ex: &Example) -> Result<(), String> {
        let out = self
            .cmd("timeout")
            .args(["60", "bash", "-c", &ex.command])
            .output()
            .map_err(|e| format!("{doc}:{}: cannot run bash: {e}", ex.line))?;
        let stdout = String::from_utf8_lossy(&out.stdout);
        let stderr = String::from_utf8_lossy(&out.stderr);
        if !out.status.success() {
            return Err(format!(
                "{doc}:{}: `{}` exited {:?}\nstdout: {stdout}\nstderr: {stderr}",
                ex.line,
                ex.command,
                out.status.code()
            ));
        }
        if let Some(want) = &ex.expect {
            if !stdout.contains(want.as_str()) {
                return Err(format!(
                    "{doc}:{}: `{}` printed {stdout:?}, the doc shows {want:?}",
                    ex.line, ex.command
                ));
            }
        }
        Ok(())
    }
}

impl Drop for Sandbox {
    fn drop(&mut self) {
        let _ = self
            .cmd("tmux")
            .arg("-S")
            .arg(&self.sock)
            .arg("kill-server")
            .stderr(Stdio::null())
            .status();
        let _ = &self.dir;
    }
}

/// Runs every example of a document in one sandbox (the examples of a page build on
/// each other), stopping at the first failure.
fn check_doc(rel: &str) {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join(rel);
    let doc = std::fs::read_to_string(&path).unwrap();
    let exs = examples(&doc);
    assert!(!exs.is_empty(), "{rel}: no ```sh examples found");
    let sb = Sandbox::new();
    for ex in &exs {
        if let Err(e) = sb.run(rel, ex) {
            panic!("{e}");
        }
    }
}

#[test]
fn readme_examples_run() {
    check_doc("README.md");
}

#[test]
fn guide_examples_run() {
    check_doc("docs/guide.md");
}

#[test]
fn extraction_skips_no_run_blocks_and_reads_expected_output() {
    let doc = "```sh no-run\n./install.sh\n```\ntext\n```sh\n# a comment\nls   # prose\nmetawsm-tick status --format plain # → ⚙1\n```\n```toml\nx = 1\n```\n";
    let exs = examples(doc);
    assert_eq!(exs.len(), 2);
    assert_eq!(exs[0].command, "ls   # prose");
    assert_eq!(exs[0].expect, None);
    assert_eq!(exs[1].command, "metawsm-tick status --format plain");
    assert_eq!(exs[1].expect.as_deref(), Some("⚙1"));
    assert_eq!(exs[1].line, 8);
}

/// The stand-ins reject what today's CLIs reject, so an example with a removed flag
/// fails here instead of starting an agent that dies at once.
#[test]
fn stand_ins_reject_flags_the_real_clis_reject() {
    let sb = Sandbox::new();
    for (cmd, code) in [
        ("codex --full-auto 'x'", 2),
        ("codex exec --sandbox sometimes 'x'", 2),
        ("claude --permission-mode yolo -p x", 1),
        ("claude --frobnicate -p x", 1),
    ] {
        let out = sb.cmd("bash").args(["-c", cmd]).output().unwrap();
        assert_eq!(out.status.code(), Some(code), "{cmd}: {out:?}");
    }
    for cmd in [
        "codex exec --skip-git-repo-check --sandbox read-only --ephemeral -o /dev/null -",
        "claude -p --output-format json --permission-mode acceptEdits x",
    ] {
        let out = sb.cmd("bash").args(["-c", cmd]).output().unwrap();
        assert!(out.status.success(), "{cmd}: {out:?}");
    }
}
