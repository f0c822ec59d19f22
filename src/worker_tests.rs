use super::*;
use nix::sys::signal::kill;
use std::os::unix::fs::PermissionsExt;

#[test]
fn private_dirs_are_0700_and_fresh() {
    let a = private_dir().expect("dir");
    let b = private_dir().expect("dir");
    assert_ne!(a, b);
    let mode = fs::metadata(&a).expect("meta").permissions().mode() & 0o777;
    assert_eq!(mode, 0o700);
    let _ = fs::remove_dir_all(&a);
    let _ = fs::remove_dir_all(&b);
}

#[test]
fn zombies_are_not_alive() {
    let mut child = Command::new("true").spawn().expect("spawn");
    let pid = i64::from(child.id());
    // Not reaped yet: a zombie, which kill(0) alone would call alive.
    let dead = poll_until(Duration::from_secs(5), Duration::from_millis(10), || {
        (!pid_alive(pid)).then_some(())
    });
    assert!(dead.is_some(), "zombie still counted alive");
    if have_proc() {
        assert!(
            kill(Pid::from_raw(pid as i32), None).is_ok(),
            "still a zombie"
        );
    }
    let _ = child.wait();
    assert!(!worker_alive(pid, "r1"));
}

#[test]
fn stderr_tail_is_last_line_sanitised_and_short() {
    let dir = tempfile::tempdir().expect("tmp");
    let p = dir.path().join("err");
    let long = "x".repeat(500);
    fs::write(&p, format!("first\n\u{1b}[31mboom #(rm -rf ~) {long}\n\n")).expect("write");
    let t = stderr_tail(&p);
    assert!(t.chars().count() <= STDERR_TAIL_CHARS, "{t}");
    assert!(!t.contains('\u{1b}') && !t.contains("#("));
    fs::write(&p, "model unavailable\n").expect("write");
    assert_eq!(stderr_tail(&p), "model unavailable");
    assert_eq!(stderr_tail(&dir.path().join("missing")), "");
}

#[test]
fn sweep_removes_only_old_dirs_of_dead_workers() {
    let dead = {
        let mut c = Command::new("true").spawn().expect("spawn");
        let _ = c.wait();
        c.id() as i32
    };
    let me = std::process::id() as i32;
    let base = std::env::temp_dir();
    let mk = |name: String, mode: u32, old: bool| {
        let d = base.join(name);
        fs::DirBuilder::new().mode(mode).create(&d).expect("mkdir");
        fs::set_permissions(&d, fs::Permissions::from_mode(mode)).expect("chmod");
        if old {
            let t = std::time::SystemTime::now() - Duration::from_secs(3600);
            fs::File::open(&d)
                .and_then(|f| f.set_modified(t))
                .expect("age");
        }
        d
    };
    let orphan = mk(format!("{DIR_PREFIX}{dead}-t1"), 0o700, true);
    let fresh = mk(format!("{DIR_PREFIX}{dead}-t2"), 0o700, false);
    let open = mk(format!("{DIR_PREFIX}{dead}-t3"), 0o755, true);
    let live = mk(format!("{DIR_PREFIX}{me}-t4"), 0o700, true);
    let target = mk(format!("sweep-target-{dead}"), 0o700, true);
    let link = base.join(format!("{DIR_PREFIX}{dead}-t5"));
    std::os::unix::fs::symlink(&target, &link).expect("symlink");
    let only = |p: i32| p == dead || p == me;
    remove_call_dirs(only, Duration::from_secs(60));
    let exists = |p: &Path| fs::symlink_metadata(p).is_ok();
    let left = [
        exists(&orphan),
        exists(&fresh),
        exists(&open),
        exists(&live),
        exists(&link) && exists(&target),
    ];
    for p in [&orphan, &fresh, &open, &live, &target] {
        let _ = fs::remove_dir_all(p);
    }
    let _ = fs::remove_file(&link);
    assert_eq!(left, [false, true, true, true, true]);
}

#[test]
fn only_a_program_that_never_ran_is_unstarted() {
    let dir = tempfile::tempdir().expect("tmp");
    let script = dir.path().join("llm");
    // A provider that ran and failed may say anything on stderr, these words too.
    fs::write(
        &script,
        "#!/bin/sh\necho 'daemon failed to start' >&2\nexit 1\n",
    )
    .expect("write");
    fs::set_permissions(&script, fs::Permissions::from_mode(0o755)).expect("chmod");
    let mut policy = crate::policy::Policy::default();
    policy.operator.llm.provider = LlmProvider::Command;
    let work = private_dir().expect("dir");
    let program = script.to_string_lossy().into_owned();
    let ran = run_llm(&policy, &work, "prompt", 10, "r1", &program).expect_err("fails");
    let missing = run_llm(&policy, &work, "prompt", 10, "r1", "/nonexistent/llm");
    let _ = fs::remove_dir_all(&work);
    assert!(ran.message.contains("failed to start"), "{ran:?}");
    assert!(!ran.unstarted, "{ran:?}");
    assert!(missing.expect_err("fails").unstarted);
}
