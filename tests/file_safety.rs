//! Files from outside the program: a FIFO never hangs a command, a read-only or full
//! file system is named as such, writes never leave the workspace, never tear, and
//! signal files are taken once and never outlive their run.

mod common;

use common::Env;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

/// Runs with a hard limit: a hang is a failure, not a stuck test.
fn bounded(mut c: Command, limit: Duration) -> (Output, Duration) {
    let t = Instant::now();
    let mut child = c
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn");
    while child.try_wait().expect("wait").is_none() {
        if t.elapsed() > limit {
            let _ = child.kill();
            let _ = child.wait();
            panic!("{c:?} still running after {limit:?}");
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    (child.wait_with_output().expect("output"), t.elapsed())
}

/// A small tmpfs at `dir`, unmounted on drop; None (with the reason printed) where the
/// test machine does not let us mount.
struct Tmpfs(PathBuf);

impl Tmpfs {
    fn mount(dir: &Path, size: &str) -> Option<Tmpfs> {
        fs::create_dir_all(dir).ok()?;
        let out = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(dir)
            .stderr(Stdio::piped())
            .output();
        match out {
            Ok(o) if o.status.success() => Some(Tmpfs(dir.to_path_buf())),
            Ok(o) => {
                println!(
                    "skipped: cannot mount a tmpfs here: {}",
                    String::from_utf8_lossy(&o.stderr).trim()
                );
                None
            }
            Err(e) => {
                println!("skipped: no mount command: {e}");
                None
            }
        }
    }

    fn remount(&self, opts: &str) {
        let st = Command::new("mount")
            .args(["-o", &format!("remount,{opts}")])
            .arg(&self.0)
            .status()
            .expect("remount");
        assert!(st.success(), "remount {opts}");
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(&self.0).status();
    }
}

#[test]
fn a_fifo_policy_never_hangs_a_command() {
    let env = Env::new();
    fs::remove_file(&env.policy).expect("rm policy");
    nix::unistd::mkfifo(&env.policy, nix::sys::stat::Mode::from_bits_truncate(0o600))
        .expect("mkfifo");
    let shown = env.policy.display().to_string();
    for args in [&["policy", "check"][..], &["tick"]] {
        let (out, _) = bounded(env.cmd(args), Duration::from_secs(20));
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {err}");
        assert!(
            err.contains("is a FIFO, not a regular file") && err.contains("policy.json"),
            "{args:?}: {err} ({shown})"
        );
    }
    // The status line's watchdog (3 s) used to fire on every call.
    let (out, took) = bounded(env.cmd(&["status"]), Duration::from_secs(20));
    assert!(out.status.success());
    assert!(took < Duration::from_millis(2500), "status took {took:?}");
}

#[test]
fn read_only_and_full_file_systems_are_named() {
    let env = Env::new();
    let Some(m) = Tmpfs::mount(&env.path("fs"), "1m") else {
        return;
    };
    let db = env.path("fs/state.db");
    let run = |args: &[&str]| {
        let mut c = env.cmd(&[]);
        c.args(["--db"]).arg(&db).args(args);
        bounded(c, Duration::from_secs(20)).0
    };
    let out = run(&["tick"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let refused = |args: &[&str]| {
        let out = run(args);
        let err = String::from_utf8_lossy(&out.stderr).into_owned();
        assert_eq!(out.status.code(), Some(1), "{args:?}: {err}");
        // Ours, or the OS's words when the lock file beside the database is refused.
        assert!(
            err.contains("the file system is read-only") || err.contains("Read-only file system"),
            "{err}"
        );
        assert!(err.contains(&*db.to_string_lossy()), "{err}");
        assert!(!err.contains("not a metawsm database"), "{err}");
    };
    // The WAL the tick left in place (ours never deletes it) can be read where nothing
    // can be written: a listing works; a tick, which must write, is refused and named.
    assert!(db_side_file(&db, "-wal").exists());
    m.remount("ro");
    let out = run(&["run", "list"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    refused(&["tick"]);
    m.remount("rw");
    // Folded and removed by another program (SQLite's default close): with no WAL to
    // read, SQLite must create one, so even a listing is refused, and named.
    let other = rusqlite::Connection::open(&db).expect("open");
    let _: i64 = other
        .query_row("SELECT count(*) FROM runs", [], |r| r.get(0))
        .expect("read");
    drop(other);
    assert!(!db_side_file(&db, "-wal").exists());
    m.remount("ro");
    refused(&["run", "list"]);
    m.remount("rw");
    let _ = fs::write(env.path("fs/fill"), vec![0u8; 2 << 20]);
    let out = run(&["tick"]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(err.contains("the file system is full"), "{err}");
    assert!(!err.contains("not a metawsm database"), "{err}");
}

fn db_side_file(db: &Path, suffix: &str) -> PathBuf {
    let mut p = db.as_os_str().to_owned();
    p.push(suffix);
    PathBuf::from(p)
}

/// The ticket directory escalations go to, and the run's escalation episode under way:
/// a guidance question in the workspace.
fn ask(env: &Env, question: &str) {
    let dir = env.ws.join(".metawsm");
    fs::create_dir_all(&dir).expect("mkdir");
    let tmp = dir.join("q.tmp");
    fs::write(
        &tmp,
        serde_json::json!({ "question": question }).to_string(),
    )
    .expect("w");
    fs::rename(&tmp, dir.join("guidance-request.json")).expect("rename");
}

fn entries(changelog: &Path) -> usize {
    fs::read(changelog)
        .map(|b| String::from_utf8_lossy(&b).matches("\n## ").count())
        .unwrap_or(0)
}

/// Disk full mid-append (RLIMIT_FSIZE with SIGXFSZ ignored: the write stops short, as on
/// a full disk): the entry is cut back, recorded as owed, and written whole, once, by a
/// later tick.
#[test]
fn a_short_changelog_write_is_cut_back_and_retried_once() {
    use std::os::unix::process::CommandExt;
    let env = Env::new();
    let ticket = env.ws.join("ttmp/T-1");
    fs::create_dir_all(&ticket).expect("ticket");
    let changelog = ticket.join("changelog.md");
    // A sparse 4 MiB file: the limit sits just above it, far above the database's size.
    let base: u64 = 4 << 20;
    fs::File::create(&changelog)
        .and_then(|f| f.set_len(base))
        .expect("sparse changelog");
    env.start("r1", &["sleep", "100000"]);
    ask(&env, "Which database?");
    let mut c = env.cmd(&["tick"]);
    // SAFETY: only async-signal-safe calls between fork and exec.
    unsafe {
        c.pre_exec(move || {
            let lim = nix::libc::rlimit {
                rlim_cur: base + 40,
                rlim_max: base + 40,
            };
            if nix::libc::setrlimit(nix::libc::RLIMIT_FSIZE, &lim) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            nix::libc::signal(nix::libc::SIGXFSZ, nix::libc::SIG_IGN);
            Ok(())
        });
    }
    let (out, _) = bounded(c, Duration::from_secs(30));
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        fs::metadata(&changelog).expect("meta").len(),
        base,
        "torn entry left behind"
    );
    let unwritten =
        env.sql("SELECT message FROM events WHERE kind = 'escalation_unwritten' AND run_id = 'r1'");
    assert_eq!(unwritten.len(), 1, "{unwritten:?}");
    assert!(unwritten[0][0].contains("will retry"), "{unwritten:?}");
    env.tick();
    env.tick();
    assert_eq!(entries(&changelog), 1, "written whole exactly once");
    let text = String::from_utf8_lossy(&fs::read(&changelog).expect("r")).into_owned();
    assert!(
        text.ends_with("metawsm-tick guide r1 --answer '…'`\n"),
        "{}",
        &text[text.len() - 200..]
    );
    assert!(text.contains("- Question: Which database?\n"));
}

/// A question written after the answered one was recorded survives `guide` and is
/// recorded by the next tick; every request file is kept in the archive, none deleted.
#[test]
fn a_newer_question_survives_guide() {
    let env = Env::new();
    fs::create_dir_all(env.ws.join("ttmp/T-1")).expect("ticket");
    env.start("r1", &["sleep", "100000"]);
    ask(&env, "first?");
    env.tick();
    assert_eq!(env.show("r1")["status"], "awaiting_guidance");
    ask(&env, "second?");
    env.ok(&["guide", "r1", "--answer", "yes"]);
    env.tick();
    let pending: Vec<String> = env
        .sql("SELECT question FROM guidance_requests WHERE run_id = 'r1' ORDER BY id")
        .into_iter()
        .map(|r| r[0].clone())
        .collect();
    assert_eq!(pending, ["first?", "second?"]);
    let archived = fs::read_dir(env.ws.join(".metawsm/archive"))
        .map(|d| d.count())
        .unwrap_or(0);
    assert_eq!(archived, 2, "both requests kept");
}

/// What an earlier run left in the workspace (completion, answer, question) cannot
/// complete or answer a new run: starting archives it, and a file older than the run is
/// never read as its signal.
#[test]
fn signal_files_of_an_earlier_run_are_not_this_runs() {
    let env = Env::new();
    fs::create_dir_all(env.ws.join("ttmp/T-1")).expect("ticket");
    let sig = env.ws.join(".metawsm");
    fs::create_dir_all(&sig).expect("mkdir");
    fs::write(sig.join("implementation-complete.json"), "{}").expect("w");
    fs::write(sig.join("guidance-response.json"), r#"{"answer":"old"}"#).expect("w");
    fs::write(sig.join("guidance-request.json"), r#"{"question":"old?"}"#).expect("w");
    env.start("r2", &["sh", "-c", "exit 0"]);
    for name in [
        "implementation-complete.json",
        "guidance-response.json",
        "guidance-request.json",
    ] {
        assert!(!sig.join(name).exists(), "{name} left in place");
    }
    common::wait_for("agent exit", Duration::from_secs(20), || {
        env.tick();
        (env.health("r2", "agent") == "exited").then_some(())
    });
    let s = env.show("r2");
    assert_ne!(s["status"], "completed", "{s}");
    assert_eq!(
        env.sql("SELECT count(*) FROM guidance_requests")[0][0],
        "0",
        "an old question was recorded"
    );
    // A completion file dated before the run (a copy, a failed move) is not its signal.
    let old = sig.join("implementation-complete.json");
    fs::write(&old, "{}").expect("w");
    let hour_ago = std::time::SystemTime::now() - Duration::from_secs(3600);
    fs::File::options()
        .write(true)
        .open(&old)
        .and_then(|f| f.set_modified(hour_ago))
        .expect("age");
    env.tick();
    assert_ne!(env.show("r2")["status"], "completed");
    // A fresh one is.
    fs::write(&old, "{}").expect("w");
    env.tick();
    assert_eq!(env.show("r2")["status"], "completed");
}
