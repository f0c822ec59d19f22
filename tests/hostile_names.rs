//! Hostile bytes as workspace, session name, agent name, ticket, agent argv and question
//! text, against a real isolated tmux server: the agent's cwd and argv arrive byte for
//! byte, nothing else runs (a `touch` marker never appears), no stray session is left,
//! and what tmux cannot represent is refused with a clear error before any tmux call.

mod common;

use common::{wait_for, write_exec, Env};
use std::ffi::OsStr;
use std::fs;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::process::Output;
use std::time::Duration;

/// Writes its cwd (`pwd -P`, newline-terminated) and its argv (NUL-separated), then idles.
const AGENT: &str = r#"#!/bin/sh
out=$1; shift
pwd -P > "$out.cwd"
for a in "$@"; do printf '%s\0' "$a"; done > "$out.argv"
: > "$out.done"
exec sleep 600
"#;

struct Case {
    env: Env,
    agent: PathBuf,
    marker: PathBuf,
    n: std::cell::Cell<usize>,
}

impl Case {
    fn new() -> Case {
        Case::with(Env::new())
    }

    fn with(env: Env) -> Case {
        let agent = env.path("agent");
        write_exec(&agent, AGENT);
        let marker = env.path("pwned");
        let m = marker.to_str().expect("utf-8 temp path");
        // The marker path is used inside session names: tmux rewrites '.' and ':'.
        assert!(!m.contains('.') && !m.contains(':'), "{m}");
        Case {
            env,
            agent,
            marker,
            n: std::cell::Cell::new(0),
        }
    }

    fn hostile(&self) -> Vec<String> {
        let m = self.marker.to_str().expect("utf-8");
        vec![
            format!("ws#(touch {m})"),
            format!("#(touch {m})"),
            "w#{session_name}x".into(),
            "F#Sharp-proj".into(),
            "#[fg=red]red".into(),
            "ws;".into(),
            ";".into(),
            "\\;".into(),
            "a\\\\;".into(),
            "q\"u'o".into(),
            format!("$(touch {m})"),
            format!("`touch {m}`"),
            "new\nline".into(),
            "tab\tx".into(),
            "n".repeat(250),
            "-dash".into(),
            "par)en(".into(),
            "#S;".into(),
        ]
    }

    fn next_id(&self) -> String {
        self.n.set(self.n.get() + 1);
        format!("h{}", self.n.get())
    }

    /// `run start` of the fake agent writing to `out`, with `extra` argv after it.
    fn start(&self, id: &str, ws: &Path, opts: &[&OsStr], out: &Path, extra: &[&OsStr]) -> Output {
        let mut c = self.env.cmd(&["run", "start", "--id", id, "--workspace"]);
        c.arg(ws);
        for o in opts {
            c.arg(o);
        }
        c.arg("--").arg(&self.agent).arg(out);
        for e in extra {
            c.arg(e);
        }
        c.output().expect("run start")
    }

    fn sessions(&self) -> Vec<Vec<u8>> {
        let out = self
            .env
            .tmux(&["-u", "list-sessions", "-F", "#{session_name}"]);
        let mut v: Vec<Vec<u8>> = out
            .stdout
            .split(|b| *b == b'\n')
            .filter(|l| !l.is_empty())
            .map(<[u8]>::to_vec)
            .collect();
        v.sort();
        v
    }

    fn only_keepalive(&self, what: &str) {
        assert_eq!(
            self.sessions(),
            vec![b"keepalive".to_vec()],
            "{what}: a stray session is left"
        );
    }

    /// Waits for the agent's report: (cwd, argv after the output path).
    fn report(&self, out: &Path) -> (Vec<u8>, Vec<Vec<u8>>) {
        let done = PathBuf::from(format!("{}.done", out.display()));
        wait_for("the agent's report", Duration::from_secs(20), || {
            done.exists().then_some(())
        });
        let mut cwd = fs::read(format!("{}.cwd", out.display())).expect("cwd");
        assert_eq!(cwd.pop(), Some(b'\n'));
        let argv = fs::read(format!("{}.argv", out.display())).expect("argv");
        let mut parts: Vec<Vec<u8>> = argv.split(|b| *b == 0).map(<[u8]>::to_vec).collect();
        assert_eq!(parts.pop(), Some(Vec::new()), "NUL-terminated");
        (cwd, parts)
    }

    fn stop(&self, id: &str) {
        self.env.ok(&["run", "stop", id]);
    }

    fn assert_no_marker(&self, what: &str) {
        assert!(
            !self.marker.exists(),
            "{what}: a command hidden in a name ran"
        );
    }
}

fn os(s: &str) -> &OsStr {
    OsStr::new(s)
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// What tmux can hold as a session name and find again (it rewrites the others).
fn representable_session(s: &str) -> bool {
    !s.is_empty() && !s.chars().any(|c| ":.$\\".contains(c) || c.is_control())
}

/// The same string as human output shows it.
fn shown(s: &str) -> String {
    s.replace('\n', "\\n").replace('\t', "\\t")
}

#[test]
fn hostile_values_arrive_byte_for_byte_and_run_nothing() {
    let c = Case::new();
    // The plugin's hooks too: session-closed and pane-died pass session names to sh.
    c.env.ok(&["tmux-setup"]);
    let mut closed = Vec::new();
    let root = c.env.path("wsroot");
    for h in c.hostile() {
        let id = c.next_id();
        // The hostile string as the last path component of the workspace (a string with
        // '/' becomes nested directories: the path still contains it whole).
        let ws = root.join(&id).join(&h);
        fs::create_dir_all(&ws).expect("workspace");
        let out = c.env.path(&format!("{id}-out"));
        let session_ok = representable_session(&h);
        if !session_ok {
            let o = c.start(
                &id,
                &ws,
                &[os("--session"), os(&h), os("--ticket"), os(&h)],
                &out,
                &[],
            );
            assert_eq!(
                o.status.code(),
                Some(2),
                "{h:?} as --session: {}",
                stderr(&o)
            );
            assert!(stderr(&o).contains("invalid --session"), "{}", stderr(&o));
            c.only_keepalive(&format!("refused session {h:?}"));
        }
        let mut opts = vec![os("--ticket"), os(&h)];
        if session_ok {
            opts.extend([os("--session"), os(&h)]);
        }
        // As argv elements, among plain ones; `x;` then `run-shell …` is the old
        // command-injection shape.
        let touch = format!("touch {}", c.marker.display());
        let argv = [os(&h), os("x;"), os("run-shell"), os(&touch), os("")];
        let o = c.start(&id, &ws, &opts, &out, &argv);
        assert!(
            o.status.success(),
            "{h:?}: run start failed: {}",
            stderr(&o)
        );
        let (cwd, got) = c.report(&out);
        assert_eq!(
            cwd,
            ws.canonicalize().expect("canon").as_os_str().as_bytes(),
            "{h:?}: the agent's cwd"
        );
        let want: Vec<Vec<u8>> = argv.iter().map(|a| a.as_bytes().to_vec()).collect();
        assert_eq!(got, want, "{h:?}: the agent's argv");
        let show = c.env.show(&id);
        assert_eq!(show["tickets"][0], h.trim(), "{h:?}: ticket stored exactly");
        let session = show["agents"][0]["session"]
            .as_str()
            .expect("session")
            .to_string();
        if session_ok {
            assert_eq!(session, h, "{h:?}: the session name");
            closed.push(id.clone());
        }
        let mut want_sessions = vec![b"keepalive".to_vec(), session.into_bytes()];
        want_sessions.sort();
        assert_eq!(c.sessions(), want_sessions, "{h:?}: sessions");
        // Human output escapes what JSON keeps exact.
        let human = c.env.ok(&["run", "show", &id]);
        assert!(
            human
                .lines()
                .any(|l| l == format!("tickets:   {}", shown(h.trim()))),
            "{h:?}: run show prints the ticket escaped:\n{human}"
        );
        c.stop(&id);
        c.only_keepalive(&format!("after stopping {h:?}"));
        c.assert_no_marker(&format!("{h:?}"));
    }
    // Each session-closed hook carried its hostile session name through run-shell and sh
    // back to the binary, which matched it to its run.
    for id in &closed {
        wait_for(
            &format!("the session-closed hook of {id}"),
            Duration::from_secs(20),
            || {
                c.env.tick();
                let log = c.env.ok(&["log", "--json", "--run", id]);
                let v: serde_json::Value = serde_json::from_str(&log).ok()?;
                v.as_array()?
                    .iter()
                    .any(|e| e["kind"] == "hook" && e["to"] == "session-closed")
                    .then_some(())
            },
        );
    }
    // A `#()` job runs asynchronously: give one a moment before the final look.
    std::thread::sleep(Duration::from_millis(300));
    c.assert_no_marker("after every case");
}

#[test]
fn hostile_agent_names_are_refused_before_tmux() {
    let c = Case::new();
    for h in c.hostile() {
        let id = c.next_id();
        let out = c.env.path(&format!("{id}-out"));
        let ws = c.env.ws.clone();
        let o = c.start(
            &id,
            &ws,
            &[os("--agent"), os(&h), os("--ticket"), os("T")],
            &out,
            &[],
        );
        assert_eq!(o.status.code(), Some(2), "{h:?} as --agent: {}", stderr(&o));
        assert!(stderr(&o).contains("invalid agent name"), "{}", stderr(&o));
        assert!(!stderr(&o).contains('\n') || stderr(&o).lines().count() == 1);
    }
    c.only_keepalive("refused agent names");
    c.assert_no_marker("refused agent names");
}

#[test]
fn non_utf8_workspace_and_argv_are_refused_with_a_clear_error() {
    let c = Case::new();
    let bad = OsStr::from_bytes(b"ws-\xff\xfe-x");
    let ws = c.env.path("wsroot").join(bad);
    fs::create_dir_all(&ws).expect("workspace");
    let id = c.next_id();
    let out = c.env.path("u-out");
    let o = c.start(&id, &ws, &[os("--ticket"), os("T")], &out, &[]);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert!(
        stderr(&o).contains("--workspace") && stderr(&o).contains("not valid UTF-8"),
        "{}",
        stderr(&o)
    );
    let id = c.next_id();
    let ws = c.env.ws.clone();
    let o = c.start(&id, &ws, &[os("--ticket"), os("T")], &out, &[bad]);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert!(stderr(&o).contains("not valid UTF-8"), "{}", stderr(&o));
    c.only_keepalive("refused non-UTF-8 values");
    assert!(!c.env.db.exists() || c.env.sql("SELECT id FROM runs").is_empty());
}

/// Questions from an agent's request file: JSON keeps them exact, human output shows
/// control characters escaped (no forged tick line, no OSC 52 or CSI reaching the
/// terminal), and the tmux message to an attached client runs nothing.
#[test]
fn hostile_questions_are_exact_in_json_and_escaped_for_humans() {
    let policy =
        common::fast_policy(serde_json::json!({"operator": {"notify": {"tmux_message": true}}}));
    let c = Case::with(Env::with_policy(policy));
    let client = c.env.attach_client();
    let id = c.next_id();
    let out = c.env.path("q-out");
    let ws = c.env.ws.clone();
    let o = c.start(&id, &ws, &[os("--ticket"), os("T")], &out, &[]);
    assert!(o.status.success(), "{}", stderr(&o));
    c.report(&out);
    let m = c.marker.display().to_string();
    let forged = "2026-01-01T00:00:00Z other-run auto_restart forged";
    let crafted = format!(
        "Which db? #(touch {m}) $(touch {m});\n{forged}\u{1b}]52;c;cHduZWQ=\u{7}\u{1b}[2J\r\ttab"
    );
    let sig = ws.join(".metawsm");
    fs::create_dir_all(&sig).expect("mkdir");
    let no_controls = |what: &str, text: &str| {
        assert!(
            !text.chars().any(|ch| ch.is_control() && ch != '\n'),
            "{what}: raw control characters: {text:?}"
        );
        assert!(
            !text.lines().any(|l| l.starts_with(forged)),
            "{what}: {text}"
        );
    };
    let mut questions = vec![crafted.clone()];
    questions.extend(c.hostile());
    for (i, question) in questions.iter().enumerate() {
        let req = serde_json::json!({"agent": "agent", "question": question});
        fs::write(sig.join("guidance-request.json"), req.to_string()).expect("request");
        let tick = c.env.ok(&["tick"]);
        no_controls("tick", &tick);
        if i == 0 {
            assert!(tick.contains("\\n2026-01-01T00:00:00Z other-run"), "{tick}");
            assert!(tick.contains("\\u{1b}]52;"), "{tick}");
            // The escalation reached the client as a tmux message, shown as text.
            wait_for("the message on the client", Duration::from_secs(20), || {
                let screen = client.tmux_out(&["capture-pane", "-p", "-t", "=view:"]);
                screen.contains("Which db? #(touch").then_some(())
            });
        }
        let show = c.env.show(&id);
        assert_eq!(
            show["guidance"][0]["question"],
            question.trim(),
            "{question:?}: stored exactly"
        );
        no_controls("run show", &c.env.ok(&["run", "show", &id]));
        no_controls("log", &c.env.ok(&["log", "--run", &id]));
        c.env.ok(&["guide", &id, "--answer", "ok"]);
        c.assert_no_marker(&format!("question {question:?}"));
    }
    c.stop(&id);
    c.only_keepalive("after the questions");
    std::thread::sleep(Duration::from_millis(300));
    c.assert_no_marker("question text");
}

mod props {
    use super::*;
    use proptest::prelude::*;
    use proptest::test_runner::{Config, TestRunner};

    #[test]
    fn random_cwd_and_argv_arrive_byte_for_byte() {
        let c = Case::new();
        let root = c.env.path("wsroot");
        // Any character, but often the ones tmux and sh give a meaning to (each branch of
        // the alternation is about equally likely).
        const HOSTILE: &str = r#"#[(S{\[]?|;|[()$`'"\\\n\t]"#;
        let component = proptest::string::string_regex(&format!("({HOSTILE}|[^/\\x00]){{1,30}}"))
            .expect("regex")
            .prop_filter("not . or ..", |s| s != "." && s != "..");
        let argv = proptest::collection::vec(
            proptest::string::string_regex(&format!("({HOSTILE}|[^\\x00]){{0,20}}"))
                .expect("regex"),
            0..4,
        );
        let mut runner = TestRunner::new(Config {
            cases: 8,
            failure_persistence: None,
            ..Config::default()
        });
        runner
            .run(&(component, argv), |(dir, argv)| {
                let id = c.next_id();
                let ws = root.join(&id).join(&dir);
                fs::create_dir_all(&ws).expect("workspace");
                let out = c.env.path(&format!("{id}-out"));
                let extra: Vec<&OsStr> = argv.iter().map(|a| os(a)).collect();
                let o = c.start(
                    &id,
                    &ws,
                    &[os("--ticket"), os("T"), os("--session"), os(&id)],
                    &out,
                    &extra,
                );
                prop_assert!(o.status.success(), "{}", stderr(&o));
                let (cwd, got) = c.report(&out);
                prop_assert_eq!(
                    cwd,
                    ws.canonicalize()
                        .expect("canon")
                        .as_os_str()
                        .as_bytes()
                        .to_vec()
                );
                let want: Vec<Vec<u8>> = argv.iter().map(|a| a.as_bytes().to_vec()).collect();
                prop_assert_eq!(got, want);
                c.stop(&id);
                Ok(())
            })
            .expect("property");
        c.only_keepalive("after the random cases");
    }
}

/// The status job and the hooks tmux-setup installs carry the binary, database and
/// policy paths through tmux's `#()` parser and `sh`: parentheses (tmux ends a job at
/// the `)` that balances its `(`), `#`, quotes and `;` must all survive; a newline,
/// which cannot, is refused by tmux-setup and doctor with a clear message.
#[test]
fn status_job_and_hooks_survive_hostile_paths() {
    let c = Case::new();
    let env = &c.env;
    let weird = env.path("p (a)b) #[x]#S it's;");
    let dbdir = weird.join("db)x");
    fs::create_dir_all(&dbdir).expect("mkdir");
    let bin = weird.join("bin(1");
    std::os::unix::fs::symlink(common::BIN, &bin).expect("symlink");
    let db = dbdir.join("state.db");
    let policy = weird.join("pol)icy.json");
    let p = common::fast_policy(serde_json::json!({"status": {"icon_ok": "OK"}}));
    fs::write(&policy, p.to_string()).expect("policy");
    for o in [
        &["set", "-g", "status-interval", "1"][..],
        &["set", "-g", "status-right-length", "200"],
        &["set", "-g", "status-right", "[#{metawsm_status}]"],
    ] {
        assert!(env.tmux(o).status.success(), "{o:?}");
    }
    let weird_cmd = |args: &[&str]| {
        let mut cmd = std::process::Command::new(common::BIN);
        cmd.arg("--db")
            .arg(&db)
            .arg("--policy")
            .arg(&policy)
            .arg("--tmux-socket")
            .arg(&env.sock)
            .args(args)
            .env_remove("TMUX")
            .env("HOME", env.dir.path())
            .stdin(std::process::Stdio::null());
        cmd.output().expect("run")
    };
    let mut setup = vec!["tmux-setup", "--bin"];
    let bin_s = bin.to_str().expect("utf-8");
    setup.push(bin_s);
    let o = weird_cmd(&setup);
    assert!(o.status.success(), "tmux-setup: {}", stderr(&o));
    let ws = c.env.ws.to_str().expect("utf-8");
    let o = weird_cmd(&[
        "run",
        "start",
        "--ticket",
        "T",
        "--workspace",
        ws,
        "--id",
        "par",
        "--session",
        "par",
        "--",
        "sleep",
        "1000",
    ]);
    assert!(o.status.success(), "run start: {}", stderr(&o));
    let outer = env.attach_client();
    wait_for(
        "the status job to show the run in the client's bar",
        Duration::from_secs(30),
        || {
            outer
                .tmux_out(&["capture-pane", "-p", "-t", "=view:"])
                .contains("[OK1]")
                .then_some(())
        },
    );
    // The client-attached hook ran the binary with these paths too.
    wait_for(
        "a hook event in the database",
        Duration::from_secs(30),
        || {
            let o = weird_cmd(&["log", "--json", "--limit", "1000"]);
            let v: serde_json::Value = serde_json::from_slice(&o.stdout).ok()?;
            v.as_array()?
                .iter()
                .any(|e| e["kind"] == "hook")
                .then_some(())
        },
    );
    c.assert_no_marker("hostile paths");

    // A newline cannot be carried into a `#()` job: refused, naming the path.
    let nl = env.path("new\nline");
    fs::create_dir_all(&nl).expect("mkdir");
    let mut cmd = env.cmd(&["tmux-setup"]);
    let o = cmd
        .arg("--bin")
        .arg(nl.join("metawsm-tick"))
        .output()
        .expect("tmux-setup");
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert!(
        stderr(&o).contains("binary path") && stderr(&o).contains("newline"),
        "{}",
        stderr(&o)
    );
    let o = std::process::Command::new(common::BIN)
        .arg("--db")
        .arg(nl.join("state.db"))
        .arg("--policy")
        .arg(&policy)
        .arg("--tmux-socket")
        .arg(&env.sock)
        .arg("doctor")
        .env_remove("TMUX")
        .output()
        .expect("doctor");
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(
        out.lines()
            .any(|l| l.starts_with("FAIL paths") && l.contains("newline")),
        "{out}"
    );
    assert_eq!(o.status.code(), Some(1), "{out}");
}

/// tmux prints a pane's command (its argv[0]) raw: an agent that renames itself with a
/// newline and a well-formed row must not make another run's dead agent look alive.
#[test]
fn a_process_title_cannot_forge_another_sessions_pane() {
    let c = Case::new();
    c.env.start("victim", &["sh", "-c", "exit 3"]);
    // Pane and window ids are no secret: any process of the user can list them.
    let ids = wait_for("the victim's dead pane", Duration::from_secs(20), || {
        let out = c.env.tmux_out(&[
            "display-message",
            "-p",
            "-t",
            "=victim:",
            "#{pane_dead}\t#{window_id}\t#{pane_id}",
        ]);
        out.strip_prefix("1\t").map(|s| s.trim().to_string())
    });
    let (window, pane) = ids.split_once('\t').expect("ids");
    let forged = format!("sleep\nvictim\t{window}\t{pane}\t1\t0\t\t\t1700000000\tsleep");
    c.env.start(
        "attacker",
        &["bash", "-c", "exec -a \"$0\" sleep 1000", &forged],
    );
    wait_for("the forged title", Duration::from_secs(20), || {
        let out = c
            .env
            .tmux_out(&["list-panes", "-a", "-F", "#{pane_current_command}"]);
        out.contains(&format!("\t{pane}\t")).then_some(())
    });
    let tick = c.env.tick_json();
    let victim = tick["runs"]
        .as_array()
        .and_then(|r| r.iter().find(|r| r["run_id"] == "victim"))
        .expect("victim in the tick");
    assert_eq!(victim["agents"][0]["health"], "dead", "{victim}");
    let attacker = tick["runs"]
        .as_array()
        .and_then(|r| r.iter().find(|r| r["run_id"] == "attacker"))
        .expect("attacker in the tick");
    assert_ne!(attacker["agents"][0]["health"], "dead", "{attacker}");
}
