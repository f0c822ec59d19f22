//! Integration tests for `install.sh` (and a smoke test of the agent hook scripts).
//!
//! Nothing is built and no real tmux server is touched: every test runs the script in
//! its own temporary HOME/PREFIX with a clean environment (no TMUX, no XDG_* variables,
//! TMUX_TMPDIR pointing into the sandbox so `tmux ls` finds no server), and installs a
//! stub "binary" through METAWSM_INSTALL_BINARY (which implies --no-build) — except
//! `install_builds_a_statically_linked_binary`, which builds the release binary for real
//! (in the repository's target directory, shared with the bench: built once), and the
//! build-release.sh tests, which run it with stand-in `cargo`, `rustc` and `cc`.

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::SystemTime;

#[path = "common/elf.rs"]
mod elf;

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
    /// tmux as the sandbox's user runs it (its default socket under the sandbox's TMUX_TMPDIR).
    fn tmux(&self, args: &[&str]) -> std::process::Output {
        self.command(Path::new("tmux"))
            .args(args)
            .output()
            .expect("tmux")
    }

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
    let tmux = |args: &[&str]| sb.tmux(args);
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

/// The real Rust toolchain for a command whose HOME is the sandbox's.
fn with_toolchain(cmd: &mut Command) -> &mut Command {
    let home = std::env::var_os("HOME").map(PathBuf::from);
    for (var, dir) in [("CARGO_HOME", ".cargo"), ("RUSTUP_HOME", ".rustup")] {
        match std::env::var_os(var) {
            Some(v) => cmd.env(var, v),
            None => match &home {
                Some(h) => cmd.env(var, h.join(dir)),
                None => cmd,
            },
        };
    }
    // The same target directory as this test run (or the repository's): built once.
    for var in ["RUSTUP_TOOLCHAIN", "CARGO_TARGET_DIR"] {
        if let Some(v) = std::env::var_os(var) {
            cmd.env(var, v);
        }
    }
    cmd
}

/// README's first command for real: install.sh builds the release binary. On a Linux
/// glibc host it must be statically linked (each tick, hook and status call starts a
/// process; docs/performance.md), and it must work: a tick against a tmux server.
#[test]
fn install_builds_a_statically_linked_binary() {
    let sb = Sandbox::new();
    let tmux = |args: &[&str]| sb.tmux(args);
    let out = tmux(&["-f", "/dev/null", "new-session", "-d", "-s", "user"]);
    assert!(out.status.success(), "start server: {}", stderr(&out));
    let _server = SandboxServer(&sb);
    let out = with_toolchain(
        sb.command(&repo().join("install.sh"))
            .env_remove("METAWSM_INSTALL_BINARY")
            .arg("--yes"),
    )
    .output()
    .expect("install.sh");
    assert!(out.status.success(), "{}\n{}", stdout(&out), stderr(&out));
    let bin = sb.installed();
    let linkage = elf::linkage(&bin);
    eprintln!("installed {}: {linkage:?}", bin.display());
    if cfg!(all(
        target_os = "linux",
        target_env = "gnu",
        any(target_arch = "x86_64", target_arch = "aarch64")
    )) {
        assert!(
            matches!(linkage, Ok(elf::Linkage::Static { .. })),
            "not statically linked: {linkage:?}\n{}",
            stderr(&out)
        );
    }
    let tick = sb.command(&bin).arg("tick").output().expect("tick");
    assert!(
        tick.status.success(),
        "{}\n{}",
        stdout(&tick),
        stderr(&tick)
    );
    let status = sb.command(&bin).arg("status").output().expect("status");
    assert!(status.status.success(), "{}", stderr(&status));
}

/// Stand-ins for the toolchain: `rustc -vV` names $FAKE_HOST, `cc` finds $FAKE_LIBC_A
/// (or no static libc), `cargo` logs its arguments and the RUSTFLAGS variables it got,
/// then writes a stub binary saying which build it is (or fails the static one when
/// $FAKE_STATIC_FAILS is set).
const FAKE_RUSTC: &str =
    "#!/bin/sh\n[ \"$1\" = -vV ] && printf 'rustc 1.0.0\\nhost: %s\\n' \"$FAKE_HOST\"\n";
const FAKE_CC: &str =
    "#!/bin/sh\n[ \"$1\" = -print-file-name=libc.a ] && echo \"${FAKE_LIBC_A:-libc.a}\"\n";
const FAKE_CARGO: &str = r#"#!/bin/sh
{ echo "cargo $*"; env | grep RUSTFLAGS | sort; } >> "$FAKE_LOG"
dir=$CARGO_TARGET_DIR/release kind=dynamic
case " $* " in
*" --target "*)
	[ -z "${FAKE_STATIC_FAILS:-}" ] || { echo "error: linking with cc failed: cannot find -lc" >&2; exit 101; }
	dir=$CARGO_TARGET_DIR/$FAKE_HOST/release kind=static ;;
esac
mkdir -p "$dir"
printf '#!/bin/sh\necho "metawsm-tick 0.0.0 %s"\n' "$kind" > "$dir/metawsm-tick"
chmod 755 "$dir/metawsm-tick"
"#;

/// install.sh (without a prebuilt binary) with the stand-in toolchain on `host`; the
/// installed binary's `--version`, cargo's log, install.sh's stderr.
fn fake_build(sb: &Sandbox, host: &str, env: &[(&str, &str)]) -> (String, String, String) {
    fake_install(sb, host, env, &[])
}

fn fake_install(
    sb: &Sandbox,
    host: &str,
    env: &[(&str, &str)],
    args: &[&str],
) -> (String, String, String) {
    let fake = sb.root().join("fakebin");
    fs::create_dir_all(&fake).unwrap();
    for (name, text) in [
        ("rustc", FAKE_RUSTC),
        ("cc", FAKE_CC),
        ("cargo", FAKE_CARGO),
    ] {
        fs::write(fake.join(name), text).unwrap();
        fs::set_permissions(fake.join(name), fs::Permissions::from_mode(0o755)).unwrap();
    }
    let log = sb.root().join("cargo.log");
    let _ = fs::remove_file(&log);
    let path = std::env::var("PATH").unwrap_or_default();
    let mut cmd = sb.command(&repo().join("install.sh"));
    cmd.env_remove("METAWSM_INSTALL_BINARY")
        .env("PATH", format!("{}:{path}", fake.display()))
        .env("CARGO_TARGET_DIR", sb.root().join("cargo-target"))
        .env("FAKE_HOST", host)
        .env("FAKE_LOG", &log)
        .args(["--no-tmux-conf", "--yes"])
        .args(args);
    for (k, v) in env {
        cmd.env(k, v);
    }
    let out = cmd.output().expect("install.sh");
    assert!(out.status.success(), "{}\n{}", stdout(&out), stderr(&out));
    let v = Command::new(sb.installed())
        .arg("--version")
        .output()
        .expect("installed binary runs");
    (
        stdout(&v).trim().to_string(),
        fs::read_to_string(&log).unwrap_or_default(),
        stderr(&out),
    )
}

#[test]
fn build_is_static_on_linux_gnu_only_and_falls_back_to_the_normal_build() {
    let sb = Sandbox::new();
    let libc_a = sb.root().join("libc.a");
    fs::write(&libc_a, b"").unwrap();
    let libc_a = libc_a.to_str().unwrap();
    let var = "CARGO_TARGET_X86_64_UNKNOWN_LINUX_GNU_RUSTFLAGS";

    // Linux glibc with a static libc: only the static build, the flag for that target
    // only (the user's own flags for it kept, ours after them).
    let (version, log, _) = fake_build(
        &sb,
        "x86_64-unknown-linux-gnu",
        &[("FAKE_LIBC_A", libc_a), (var, "-C target-cpu=native")],
    );
    assert_eq!(version, "metawsm-tick 0.0.0 static");
    assert_eq!(
        log,
        format!("cargo build --release --locked --target x86_64-unknown-linux-gnu\n{var}=-C target-cpu=native -C target-feature=+crt-static\n")
    );

    // The static build fails (no libc.a after all): the normal build, one line saying so.
    let (version, log, err) = fake_build(
        &sb,
        "x86_64-unknown-linux-gnu",
        &[("FAKE_LIBC_A", libc_a), ("FAKE_STATIC_FAILS", "1")],
    );
    assert_eq!(version, "metawsm-tick 0.0.0 dynamic");
    assert!(log.ends_with("\ncargo build --release --locked\n"), "{log}");
    let notes: Vec<&str> = err
        .lines()
        .filter(|l| l.contains("not statically linked"))
        .collect();
    assert_eq!(notes.len(), 1, "{err}");
    assert!(notes[0].contains("the static build failed"), "{err}");

    // No static libc: the static build is not even tried.
    let (version, log, err) = fake_build(&sb, "aarch64-unknown-linux-gnu", &[]);
    assert_eq!(version, "metawsm-tick 0.0.0 dynamic");
    assert_eq!(log, "cargo build --release --locked\n");
    assert!(
        err.contains("not statically linked (no static libc.a"),
        "{err}"
    );

    // A global RUSTFLAGS would override the per-target flags: the normal build, said so.
    let (version, _, err) = fake_build(
        &sb,
        "aarch64-unknown-linux-gnu",
        &[("FAKE_LIBC_A", libc_a), ("RUSTFLAGS", "-C debuginfo=1")],
    );
    assert_eq!(version, "metawsm-tick 0.0.0 dynamic");
    assert!(err.contains("RUSTFLAGS is set"), "{err}");

    // macOS (and anything else): the normal build, nothing to say about it.
    for host in ["aarch64-apple-darwin", "x86_64-unknown-linux-musl"] {
        let (version, log, err) = fake_build(&sb, host, &[("FAKE_LIBC_A", libc_a)]);
        assert_eq!(version, "metawsm-tick 0.0.0 dynamic", "{host}");
        assert_eq!(log, "cargo build --release --locked\n", "{host}");
        assert!(!err.contains("statically"), "{host}: {err}");
    }

    // --no-build installs the newer of the two builds there are.
    let target = sb.root().join("cargo-target");
    let dynamic = target.join("release/metawsm-tick");
    let stat = target.join("x86_64-unknown-linux-gnu/release/metawsm-tick");
    let now = SystemTime::now();
    for (newer, older, kind) in [(&dynamic, &stat, "dynamic"), (&stat, &dynamic, "static")] {
        let set = |p: &Path, t: SystemTime| {
            fs::File::options()
                .write(true)
                .open(p)
                .and_then(|f| f.set_modified(t))
                .unwrap()
        };
        set(newer, now);
        set(older, now - std::time::Duration::from_secs(60));
        let (version, log, _) = fake_install(&sb, "x86_64-unknown-linux-gnu", &[], &["--no-build"]);
        assert_eq!(version, format!("metawsm-tick 0.0.0 {kind}"));
        assert_eq!(log, "", "--no-build ran cargo");
    }
}
