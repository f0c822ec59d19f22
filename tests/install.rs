//! Integration tests for `install.sh` (and a smoke test of the agent hook scripts).
//!
//! Nothing is built and no real tmux server is touched: every test runs the script in
//! its own temporary HOME/PREFIX with a clean environment (no TMUX, no XDG_* variables,
//! TMUX_TMPDIR pointing into the sandbox so `tmux ls` finds no server), and installs a
//! stub "binary" through METAWSM_INSTALL_BINARY (which implies --no-build).

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::SystemTime;

const MARKER: &str = "# metawsm-tick (added by install.sh)";
const TPM_LINE: &str = "run '~/.tmux/plugins/tpm/tpm'";

const STUB: &str = r#"#!/bin/sh
case "$1" in
--version) echo "metawsm-tick 0.0.0" ;;
doctor) echo "ok    stub doctor" ;;
signal | hook) echo "$TMUX_PANE $*" >> "${STUB_LOG:-/dev/null}" ;;
esac
exit 0
"#;

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// One entry of a tree snapshot: relative path, and for files (contents, mtime, mode).
type Entry = (PathBuf, Option<(Vec<u8>, SystemTime, u32)>);

struct Sandbox {
    dir: tempfile::TempDir,
}

impl Sandbox {
    fn new() -> Sandbox {
        let dir = tempfile::tempdir().expect("tempdir");
        for d in ["home", "prefix", "tmp", "tmux"] {
            fs::create_dir_all(dir.path().join(d)).unwrap();
        }
        let stub = dir.path().join("stub-metawsm-tick");
        fs::write(&stub, STUB).unwrap();
        fs::set_permissions(&stub, fs::Permissions::from_mode(0o755)).unwrap();
        Sandbox { dir }
    }
    fn root(&self) -> &Path {
        self.dir.path()
    }
    fn home(&self) -> PathBuf {
        self.root().join("home")
    }
    fn conf(&self) -> PathBuf {
        self.home().join(".tmux.conf")
    }
    fn stub(&self) -> PathBuf {
        self.root().join("stub-metawsm-tick")
    }
    fn installed(&self) -> PathBuf {
        self.root().join("prefix/bin/metawsm-tick")
    }

    /// A clean environment: only PATH survives from the caller.
    fn command(&self, program: &Path) -> Command {
        let mut cmd = Command::new(program);
        cmd.env_clear()
            .env("PATH", std::env::var_os("PATH").unwrap_or_default())
            .env("HOME", self.home())
            .env("PREFIX", self.root().join("prefix"))
            .env("TMUX_TMPDIR", self.root().join("tmux"))
            .env("TMPDIR", self.root().join("tmp"))
            .env("LC_ALL", "C")
            .env("METAWSM_INSTALL_BINARY", self.stub())
            .current_dir(self.root()) // install.sh must cd to its own directory
            .stdin(Stdio::null());
        cmd
    }

    fn install(&self, args: &[&str]) -> Output {
        let out = self
            .command(&repo().join("install.sh"))
            .args(args)
            .output()
            .expect("run install.sh");
        eprintln!(
            "--- install.sh {:?}: {}\n{}{}",
            args,
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        out
    }

    fn install_ok(&self, args: &[&str]) -> Output {
        let out = self.install(args);
        assert!(
            out.status.success(),
            "install.sh {args:?} failed: {}",
            out.status
        );
        out
    }

    /// Every file and directory under the sandbox except the scratch TMPDIR, with file
    /// contents and modification times: equal snapshots mean nothing was written.
    fn snapshot(&self) -> Vec<Entry> {
        fn walk(base: &Path, dir: &Path, out: &mut Vec<Entry>) {
            let mut entries: Vec<_> = fs::read_dir(dir)
                .unwrap()
                .map(|e| e.unwrap().path())
                .collect();
            entries.sort();
            for p in entries {
                let rel = p.strip_prefix(base).unwrap().to_path_buf();
                if rel == Path::new("tmp") {
                    continue;
                }
                let meta = fs::symlink_metadata(&p).unwrap();
                if meta.is_dir() {
                    out.push((rel, None));
                    walk(base, &p, out);
                } else {
                    let data = fs::read(&p).unwrap();
                    out.push((
                        rel,
                        Some((data, meta.modified().unwrap(), meta.permissions().mode())),
                    ));
                }
            }
        }
        let mut out = Vec::new();
        walk(self.root(), self.root(), &mut out);
        out
    }
}

fn marked_lines(text: &str) -> Vec<&str> {
    text.lines().filter(|l| l.contains(MARKER)).collect()
}

fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}
fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

#[test]
fn install_twice_is_idempotent() {
    let sb = Sandbox::new();
    sb.install_ok(&["--yes"]);

    let bin = sb.installed();
    let meta = fs::metadata(&bin).expect("binary installed into $PREFIX/bin");
    assert!(meta.is_file());
    assert_eq!(
        meta.permissions().mode() & 0o777,
        0o755,
        "binary is chmod 755"
    );
    assert_eq!(fs::read(&bin).unwrap(), STUB.as_bytes());
    let v = Command::new(&bin).arg("--version").output().unwrap();
    assert_eq!(
        String::from_utf8_lossy(&v.stdout).trim(),
        "metawsm-tick 0.0.0"
    );

    // ~/.tmux.conf did not exist: it is created with exactly one marked line that
    // runs this repository's entry file.
    let conf = fs::read_to_string(sb.conf()).expect("~/.tmux.conf created");
    let marked = marked_lines(&conf);
    assert_eq!(marked.len(), 1, "exactly one marked line:\n{conf}");
    let entry = repo().join("tmux/metawsm.tmux");
    assert!(marked[0].starts_with("run-shell '"), "{}", marked[0]);
    assert!(marked[0].contains(entry.to_str().unwrap()), "{}", marked[0]);
    assert!(marked[0].ends_with(MARKER));
    assert!(conf.ends_with('\n'));

    let conf_after_first = fs::read(sb.conf()).unwrap();
    let first = sb.snapshot();

    let out = sb.install_ok(&["--yes"]);
    assert_eq!(
        fs::read(sb.conf()).unwrap(),
        conf_after_first,
        "second run changed tmux.conf"
    );
    assert_eq!(sb.snapshot(), first, "second run wrote something");
    assert!(stdout(&out).contains("doctor"), "doctor output is printed");

    // Uninstall removes the binary and the file install.sh created.
    sb.install_ok(&["--uninstall"]);
    assert!(!bin.exists(), "binary removed");
    assert!(!sb.conf().exists(), "created ~/.tmux.conf removed again");
}

#[test]
fn line_goes_before_tpm_and_uninstall_restores_bytes() {
    let sb = Sandbox::new();
    let original =
        format!("set -g mouse on\n# my settings\n\nset -g @plugin 'tmux-plugins/tpm'\n{TPM_LINE}");
    fs::write(sb.conf(), &original).unwrap();

    sb.install_ok(&["--yes"]);
    let conf = fs::read_to_string(sb.conf()).unwrap();
    let lines: Vec<&str> = conf.split('\n').collect();
    assert_eq!(marked_lines(&conf).len(), 1, "{conf}");
    assert_eq!(*lines.last().unwrap(), TPM_LINE, "TPM stays last:\n{conf}");
    assert!(
        lines[lines.len() - 2].ends_with(MARKER),
        "marked line right before TPM:\n{conf}"
    );
    assert!(!conf.ends_with('\n'), "no newline invented at the end");
    // Everything else is untouched.
    let without: Vec<&str> = lines
        .iter()
        .copied()
        .filter(|l| !l.ends_with(MARKER))
        .collect();
    assert_eq!(without.join("\n"), original);

    // Idempotent with a TPM line too.
    let after = fs::read(sb.conf()).unwrap();
    sb.install_ok(&["--yes"]);
    assert_eq!(fs::read(sb.conf()).unwrap(), after);

    sb.install_ok(&["--uninstall"]);
    assert_eq!(
        fs::read_to_string(sb.conf()).unwrap(),
        original,
        "byte-for-byte restore"
    );
    assert!(!sb.installed().exists(), "binary removed");
}

#[test]
fn appended_line_and_added_newline_are_reversed() {
    let sb = Sandbox::new();
    let original = "set -g status-right '#{metawsm_status} %H:%M'\nset -g mouse on"; // no final newline
    fs::write(sb.conf(), original).unwrap();

    sb.install_ok(&["--yes"]);
    let conf = fs::read_to_string(sb.conf()).unwrap();
    assert!(conf.starts_with(&format!("{original}\n")), "{conf}");
    let last = conf.trim_end_matches('\n').rsplit('\n').next().unwrap();
    assert!(last.ends_with(MARKER), "appended at the end:\n{conf}");
    assert!(conf.ends_with('\n'));

    sb.install_ok(&["--uninstall"]);
    assert_eq!(fs::read_to_string(sb.conf()).unwrap(), original);
    assert!(!sb.installed().exists());
}

#[test]
fn no_tmux_conf_help_and_bad_flags() {
    let sb = Sandbox::new();
    sb.install_ok(&["--no-tmux-conf", "--yes"]);
    assert!(sb.installed().is_file(), "binary still installed");
    assert!(!sb.conf().exists(), "--no-tmux-conf created ~/.tmux.conf");
    assert!(!sb.home().join(".config/tmux/tmux.conf").exists());

    let help = sb.install(&["--help"]);
    assert_eq!(help.status.code(), Some(0));
    let text = stdout(&help);
    for flag in [
        "--prefix",
        "--no-tmux-conf",
        "--yes",
        "--uninstall",
        "--no-build",
        "-h",
        "--help",
    ] {
        assert!(
            text.contains(flag),
            "--help does not mention {flag}:\n{text}"
        );
    }
    assert!(text.contains("METAWSM_INSTALL_BINARY") && text.contains("PREFIX"));
    assert_eq!(sb.install(&["-h"]).status.code(), Some(0));

    let before = sb.snapshot();
    let bad = sb.install(&["--frobnicate"]);
    assert_eq!(bad.status.code(), Some(2));
    let err = stderr(&bad);
    assert_eq!(err.lines().count(), 1, "one line on stderr: {err:?}");
    assert!(err.contains("--frobnicate"), "{err}");
    assert!(stdout(&bad).is_empty());
    assert_eq!(sb.snapshot(), before, "a usage error changed files");

    let missing = sb.install(&["--prefix"]);
    assert_eq!(missing.status.code(), Some(2));
    assert_eq!(stderr(&missing).lines().count(), 1);
}

#[test]
fn uninstall_without_install_changes_nothing() {
    // Empty HOME.
    let sb = Sandbox::new();
    let before = sb.snapshot();
    sb.install_ok(&["--uninstall"]);
    assert_eq!(sb.snapshot(), before);

    // A user's config without our line, and an unrelated state directory.
    let sb = Sandbox::new();
    fs::write(sb.conf(), format!("set -g mouse on\n{TPM_LINE}\n")).unwrap();
    fs::create_dir_all(sb.home().join(".local/state/metawsm")).unwrap();
    fs::write(sb.home().join(".local/state/metawsm/metawsm.db"), b"db").unwrap();
    let before = sb.snapshot();
    sb.install_ok(&["--uninstall"]);
    assert_eq!(sb.snapshot(), before);
}

#[test]
fn agent_hook_scripts_signal_the_binary_silently() {
    let sb = Sandbox::new();
    let log = sb.root().join("signals.log");
    let hooks = repo().join("hooks");
    let run = |script: &str, args: &[&str], pane: &str| {
        let out = sb
            .command(&hooks.join(script))
            .args(args)
            .env("METAWSM_BIN", sb.stub())
            .env("STUB_LOG", &log)
            .env("TMUX_PANE", pane)
            .output()
            .expect("run hook script");
        assert!(out.status.success(), "{script} {args:?}: {}", out.status);
        assert!(
            out.stdout.is_empty() && out.stderr.is_empty(),
            "{script} printed something"
        );
    };
    run(
        "codex-notify",
        &[
            r#"{"type":"agent-turn-complete","thread-id":"t","input-messages":["say \"type\": \"x\""]}"#,
        ],
        "%1",
    );
    run("codex-notify", &[r#"{"type": "approval-requested"}"#], "%2");
    run("codex-notify", &[r#"{"type":"something-else"}"#], "%3");
    run("codex-notify", &["not json"], "%3");
    run("codex-notify", &[], "%3");
    run("claude-hook.sh", &["working"], "%4");
    run("claude-hook.sh", &["done"], "%4");
    run("claude-hook.sh", &["bogus"], "%4");
    run("claude-hook.sh", &["waiting"], ""); // not in tmux: nothing
    run("tmux-hook.sh", &["pane-died", "%5", "1"], "");
    let got = fs::read_to_string(&log).unwrap_or_default();
    assert_eq!(
        got,
        "%1 signal done\n%2 signal waiting\n%4 signal working\n%4 signal done\n hook pane-died %5 1\n"
    );

    let json = fs::read_to_string(hooks.join("claude-hooks.json")).unwrap();
    for event in [
        "UserPromptSubmit",
        "PreToolUse",
        "PostToolUse",
        "Notification",
        "PermissionRequest",
        "Stop",
        "StopFailure",
    ] {
        assert!(
            json.contains(&format!("\"{event}\"")),
            "claude-hooks.json lacks {event}"
        );
    }
    assert!(json.contains("__METAWSM_HOOKS_DIR__/claude-hook.sh"));
}

/// A tmux server the sandbox's `tmux` finds (default socket under its TMUX_TMPDIR);
/// killed through that socket when dropped.
struct SandboxServer<'a>(&'a Sandbox);

impl Drop for SandboxServer<'_> {
    fn drop(&mut self) {
        let _ = self
            .0
            .command(Path::new("tmux"))
            .arg("kill-server")
            .output();
    }
}

#[test]
fn install_loads_the_plugin_into_a_running_server() {
    let sb = Sandbox::new();
    let tmux = |args: &[&str]| {
        sb.command(Path::new("tmux"))
            .args(args)
            .output()
            .expect("tmux")
    };
    let out = tmux(&[
        "-f",
        "/dev/null",
        "new-session",
        "-d",
        "-s",
        "user",
        "sleep 1000000",
    ]);
    assert!(out.status.success(), "start server: {}", stderr(&out));
    let _server = SandboxServer(&sb);
    // The real binary, so that loading really runs `tmux-setup` inside the server.
    let out = sb
        .command(&repo().join("install.sh"))
        .env("METAWSM_INSTALL_BINARY", env!("CARGO_BIN_EXE_metawsm-tick"))
        .arg("--yes")
        .output()
        .expect("install.sh");
    assert!(out.status.success(), "{}\n{}", stdout(&out), stderr(&out));
    assert!(
        stdout(&out).contains("tmux: loaded the plugin into the running server"),
        "{}",
        stdout(&out)
    );
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    loop {
        let loaded = stdout(&tmux(&["show-options", "-gqv", "@metawsm-loaded"]));
        if !loaded.trim().is_empty() {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "plugin never loaded");
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    let hooks = stdout(&tmux(&["show-hooks", "-g", "pane-died"]));
    assert!(hooks.contains("pane-died[91]"), "{hooks}");
    assert!(
        hooks.contains(&sb.installed().display().to_string()),
        "the hook runs the installed binary: {hooks}"
    );
    // The user's own session was left alone.
    assert!(stdout(&tmux(&["list-sessions", "-F", "#{session_name}"])).contains("user"));
}

#[test]
fn state_dir_is_private_and_a_server_named_by_the_environment_is_found() {
    let sb = Sandbox::new();
    // A server on a private socket, named only by METAWSM_TMUX_SOCKET (then by $TMUX).
    let sock = sb.root().join("custom.sock");
    let started = Command::new("tmux")
        .arg("-S")
        .arg(&sock)
        .args([
            "-f",
            "/dev/null",
            "new-session",
            "-d",
            "-s",
            "k",
            "sleep 100000",
        ])
        .env_remove("TMUX")
        .stdin(Stdio::null())
        .status()
        .expect("tmux");
    assert!(started.success());
    let kill = || {
        let _ = Command::new("tmux")
            .arg("-S")
            .arg(&sock)
            .arg("kill-server")
            .stdin(Stdio::null())
            .stderr(Stdio::null())
            .status();
    };
    let out = sb
        .command(&repo().join("install.sh"))
        .arg("--no-tmux-conf")
        .env("METAWSM_TMUX_SOCKET", &sock)
        .output()
        .expect("install");
    let text = stdout(&out);
    let via_tmux = sb
        .command(&repo().join("install.sh"))
        .arg("--no-tmux-conf")
        .env("TMUX", format!("{},1,0", sock.display()))
        .output()
        .expect("install");
    kill();
    assert!(out.status.success(), "{text}");
    assert!(!text.contains("no server"), "{text}");
    assert!(
        text.contains(&format!("a server {} is running", sock.display())),
        "{text}"
    );
    assert!(
        stdout(&via_tmux).contains("is running"),
        "{}",
        stdout(&via_tmux)
    );
    let state = sb.home().join(".local/state/metawsm");
    let mode = fs::metadata(&state)
        .expect("state dir")
        .permissions()
        .mode()
        & 0o777;
    assert_eq!(mode, 0o700, "state dir mode {mode:o}");
}

#[test]
fn uninstall_never_suggests_sourcing_a_config_it_deleted() {
    let sb = Sandbox::new();
    sb.install_ok(&["--yes"]);
    assert!(sb.conf().exists(), "install.sh created the config");
    let out = sb.install_ok(&["--uninstall"]);
    assert!(!sb.conf().exists());
    let text = stdout(&out);
    assert!(
        !text.contains(&format!("source-file {}", sb.conf().display())),
        "{text}"
    );
}
