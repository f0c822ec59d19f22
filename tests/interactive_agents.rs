//! Interactive agents the user already runs: adopted from their tmux sessions, answered in
//! their pane, completed by their completion file. Real tmux server per test.

mod common;

use common::{wait_for, write_exec, Env};
use serde_json::Value;
use std::fs;
use std::time::Duration;

fn pane_of(env: &Env, target: &str) -> (String, String) {
    let out = env.tmux_out(&[
        "display-message",
        "-p",
        "-t",
        target,
        "#{pane_id}\t#{pane_pid}",
    ]);
    let mut f = out.trim().splitn(2, '\t');
    (
        f.next().unwrap_or("").to_string(),
        f.next().unwrap_or("").to_string(),
    )
}

fn run_of(tick: &Value, run: &str) -> Value {
    tick["runs"]
        .as_array()
        .and_then(|a| a.iter().find(|r| r["run_id"] == run))
        .cloned()
        .unwrap_or(Value::Null)
}

#[test]
fn adopt_keeps_the_session_untouched_and_escalates_without_a_restart_command() {
    let env = Env::new();
    let ws = env.ws.to_string_lossy().into_owned();
    // A session the user started, with a command tmux remembers.
    env.tmux(&["new-session", "-d", "-s", "work", "-c", &ws, "sleep 1000"]);
    let (pane, pid) = pane_of(&env, "=work:");
    let out = env.ok(&["run", "adopt", "--ticket", "T-1", "--id", "r1", "=work"]);
    assert!(out.contains(&format!("adopted {pane}")), "{out}");
    assert!(out.contains("exit status not observable"), "{out}");
    let show = env.show("r1");
    let a = &show["agents"][0];
    assert_eq!(a["adopted"], true);
    assert_eq!(a["pane_id"], pane.as_str());
    assert_eq!(
        show["workspace"],
        fs::canonicalize(&env.ws).unwrap().to_str().unwrap()
    );
    assert_eq!(
        a["argv"],
        serde_json::json!(["/bin/sh", "-c", "sleep 1000"])
    );
    // Nothing set on the pane: remain-on-exit stays the user's (unset).
    let opt = env.tmux_out(&["show-options", "-p", "-t", &pane, "remain-on-exit"]);
    assert_eq!(
        opt.trim(),
        "",
        "remain-on-exit must not be set without --keep-dead-pane"
    );
    for _ in 0..3 {
        let t = env.tick_json();
        assert_eq!(run_of(&t, "r1")["intent"], "noop", "{t}");
    }
    assert_eq!(
        pane_of(&env, "=work:"),
        (pane.clone(), pid),
        "pane restarted or replaced"
    );
    assert_eq!(env.show("r1")["agents"][0]["health"], "healthy");

    // A shell pane: tmux knows no start command, so nothing to restart with.
    env.tmux(&["new-session", "-d", "-s", "bare", "-c", &ws]);
    let (bare, bare_pid) = pane_of(&env, "=bare:");
    wait_for("the shell's cwd", Duration::from_secs(10), || {
        let p = env.tmux_out(&["display-message", "-p", "-t", &bare, "#{pane_current_path}"]);
        (!p.trim().is_empty()).then_some(())
    });
    let out = env.ok(&[
        "run", "adopt", "--ticket", "T-2", "--id", "r2", "--agent", "shell", &bare,
    ]);
    assert!(out.contains("restart command: none"), "{out}");
    assert!(env
        .ok(&["run", "show", "r2"])
        .contains("no restart command"));
    // The agent goes away: the pane closes (no remain-on-exit), the rules escalate.
    let _ = std::process::Command::new("kill")
        .args(["-KILL", &bare_pid])
        .status();
    let t = wait_for("escalation", Duration::from_secs(20), || {
        let t = env.tick_json();
        let r = run_of(&t, "r2");
        (r["intent"] == "escalate_blocked").then_some(r)
    });
    assert!(
        t["reason"]
            .as_str()
            .unwrap_or("")
            .contains("no restart command"),
        "{t}"
    );
    let restarts = env.sql("SELECT count(*) FROM events WHERE run_id = 'r2' AND kind = 'restart'");
    assert_eq!(restarts[0][0], "0");
    // The other adopted session was never touched.
    assert_eq!(pane_of(&env, "=work:").0, pane);
    // Already supervised: refused.
    let again = env.run(&["run", "adopt", "--ticket", "T-1", "=work"]);
    assert_eq!(again.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&again.stderr).contains("already supervised"));
}

#[test]
fn keep_dead_pane_sets_remain_on_exit_and_an_adopted_pane_restarts_in_place() {
    let env = Env::new();
    let ws = env.ws.to_string_lossy().into_owned();
    env.tmux(&["new-session", "-d", "-s", "work", "-c", &ws, "sleep 1000"]);
    let (pane, pid) = pane_of(&env, "=work:");
    env.ok(&[
        "run",
        "adopt",
        "--ticket",
        "T-1",
        "--id",
        "r1",
        "--keep-dead-pane",
        "=work",
    ]);
    let opt = env.tmux_out(&["show-options", "-p", "-t", &pane, "remain-on-exit"]);
    assert!(opt.contains("on"), "{opt}");
    let _ = std::process::Command::new("kill")
        .args(["-TERM", &pid])
        .status();
    let restarted = wait_for("restart", Duration::from_secs(20), || {
        env.tick();
        let (p, newpid) = pane_of(&env, "=work:");
        (newpid != pid && !newpid.is_empty()).then_some(p)
    });
    assert_eq!(restarted, pane, "respawned in place, same pane id");
    let dead = env.tmux_out(&["display-message", "-p", "-t", &pane, "#{pane_dead}"]);
    assert_eq!(dead.trim(), "0");
}

#[test]
fn scan_finds_agents_by_command_and_below_an_npm_launcher() {
    let env = Env::new();
    let bin = env.path("bin");
    fs::create_dir_all(&bin).unwrap();
    // A fake `claude`, and npm's shape for Codex: `node` whose child is `codex`.
    write_exec(&bin.join("claude"), "#!/bin/sh\nsleep 1000\n");
    write_exec(&bin.join("codex"), "#!/bin/sh\nsleep 1000\n");
    write_exec(
        &bin.join("node"),
        &format!("#!/bin/sh\n{}/codex\n", bin.display()),
    );
    let claude = bin.join("claude").to_string_lossy().into_owned();
    let node = bin.join("node").to_string_lossy().into_owned();
    env.tmux(&["new-session", "-d", "-s", "c1", &claude]);
    env.tmux(&["new-session", "-d", "-s", "n1", &node]);
    env.tmux(&["new-session", "-d", "-s", "plain", "sleep 1000"]);
    let (cpane, _) = pane_of(&env, "=c1:");
    let (npane, _) = pane_of(&env, "=n1:");
    let found: Value = wait_for("both agents", Duration::from_secs(10), || {
        let v: Value = serde_json::from_str(&env.ok(&["run", "adopt", "--scan", "--json"])).ok()?;
        (v.as_array()?.len() == 2).then_some(v)
    });
    let by_pane = |p: &str| {
        found
            .as_array()
            .unwrap()
            .iter()
            .find(|f| f["pane"] == p)
            .cloned()
            .unwrap_or(Value::Null)
    };
    assert_eq!(by_pane(&cpane)["agent"], "claude", "{found}");
    assert_eq!(by_pane(&npane)["agent"], "codex", "{found}");
    assert_eq!(by_pane(&npane)["via"], "child_process", "{found}");
    assert!(by_pane(&cpane)["adopt"]
        .as_str()
        .unwrap()
        .contains(&format!("run adopt --ticket TICKET --agent claude {cpane}")));
    // Adopted panes are no longer listed.
    env.ok(&["run", "adopt", "--ticket", "T-1", &cpane]);
    let v: Value = serde_json::from_str(&env.ok(&["run", "adopt", "--scan", "--json"])).unwrap();
    assert_eq!(v.as_array().unwrap().len(), 1, "{v}");
    assert_eq!(v[0]["pane"], npane.as_str());
    // A name from the policy is recognised too.
    let plain = env.ok(&["run", "adopt", "--scan"]);
    assert!(!plain.contains("=plain"), "{plain}");
}

#[test]
fn a_live_agent_that_writes_its_completion_file_completes_without_restart() {
    let env = Env::new();
    let ws = env.ws.to_string_lossy().into_owned();
    // Finished its work, wrote the file, and stays quiet at its prompt.
    env.tmux(&[
        "new-session",
        "-d",
        "-s",
        "work",
        "-c",
        &ws,
        "mkdir -p .metawsm && echo '{}' > .metawsm/implementation-complete.json; sleep 1000",
    ]);
    let (pane, pid) = pane_of(&env, "=work:");
    wait_for("completion file", Duration::from_secs(10), || {
        env.ws
            .join(".metawsm/implementation-complete.json")
            .exists()
            .then_some(())
    });
    env.ok(&["run", "adopt", "--ticket", "T-1", "--id", "r1", "=work"]);
    env.tick();
    assert_eq!(env.show("r1")["status"], "completed");
    // Quiet far past the stall threshold: never restarted, still alive (on_complete=keep).
    std::thread::sleep(Duration::from_secs(5));
    env.tick();
    env.tick();
    assert_eq!(pane_of(&env, "=work:"), (pane, pid));
    let restarts = env.sql("SELECT count(*) FROM events WHERE kind = 'restart'");
    assert_eq!(restarts[0][0], "0");

    // on_complete = stop: the live agent is stopped with the run's completion.
    let mut p = common::fast_policy(serde_json::json!({"operator": {"on_complete": "stop"}}));
    env.write_policy(&p);
    env.tmux(&["new-session", "-d", "-s", "w2", "-c", &ws, "sleep 1000"]);
    env.ok(&["run", "adopt", "--ticket", "T-2", "--id", "r2", "=w2"]);
    env.tick();
    assert_eq!(env.show("r2")["status"], "completed");
    let has = env.tmux(&["has-session", "-t", "=w2"]);
    assert!(!has.status.success(), "on_complete=stop kills the agent");
    p["operator"]["on_complete"] = "bogus".into();
    env.write_policy(&p);
    let bad = env.run(&["tick"]);
    assert_eq!(bad.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&bad.stderr).contains("operator.on_complete"));
}

/// A fake interactive agent: for each round it waits for `go<N>`, prints a question,
/// reports `waiting` from its pane, reads one answer from its terminal (a bracketed
/// paste is one answer, markers removed), writes it to `answer<N>.txt` and reports
/// `working`.
fn fake_interactive_agent(env: &Env) -> std::path::PathBuf {
    let script = env.path("fake-agent");
    let body = format!(
        r#"#!/bin/bash
cd "{ws}"
printf '\e[?2004h'
for n in 1 2; do
  while [ ! -e go$n ]; do sleep 0.05; done
  echo "working on round $n..."
  echo "Which database should I use for round $n? [pg/sqlite]"
  "{bin}" --db "{db}" signal waiting
  IFS= read -r line
  if [[ $line == $'\e[200~'* ]]; then
    acc=${{line#$'\e[200~'}}
    while [[ $acc != *$'\e[201~'* ]]; do IFS= read -r more || break; acc+=$'\n'"$more"; done
    line=${{acc%$'\e[201~'*}}
  fi
  printf '%s' "$line" > answer$n.tmp && mv answer$n.tmp answer$n.txt
  "{bin}" --db "{db}" signal working
done
sleep 1000
"#,
        ws = env.ws.display(),
        bin = common::BIN,
        db = env.db.display()
    );
    write_exec(&script, &body);
    script
}

#[test]
fn a_waiting_adopted_agent_is_answered_in_its_pane_byte_exact() {
    let env = Env::new();
    let ws = env.ws.to_string_lossy().into_owned();
    fs::create_dir_all(env.ws.join("ttmp/T-1")).unwrap();
    let agent = fake_interactive_agent(&env);
    // The user's own session, started before metawsm-tick knows about it.
    env.tmux(&[
        "new-session",
        "-d",
        "-s",
        "mine",
        "-c",
        &ws,
        &agent.to_string_lossy(),
    ]);
    let (pane, pid) = pane_of(&env, "=mine:");
    env.ok(&[
        "run", "adopt", "--ticket", "T-1", "--id", "r1", "--agent", "bot", "=mine",
    ]);
    fs::write(env.ws.join("go1"), "").unwrap();
    let t = wait_for("the question escalated", Duration::from_secs(20), || {
        let t = env.tick_json();
        let r = run_of(&t, "r1");
        (r["intent"] == "escalate_guidance").then_some(r)
    });
    assert_eq!(
        t["reason"], "agent bot asks: Which database should I use for round 1? [pg/sqlite]",
        "{t}"
    );
    let show = env.show("r1");
    let g = &show["guidance"][0];
    assert_eq!(g["source"], "signal");
    assert!(
        g["context"]
            .as_str()
            .unwrap()
            .contains("working on round 1..."),
        "{g}"
    );
    let human = env.ok(&["run", "show", "r1"]);
    assert!(human.contains("| working on round 1..."), "{human}");
    let log = fs::read_to_string(env.ws.join("ttmp/T-1/changelog.md")).unwrap();
    assert!(
        log.contains("- Question: Which database should I use for round 1?"),
        "{log}"
    );
    assert!(log.contains("working on round 1..."), "{log}");
    assert!(log.contains("metawsm-tick guide r1 --answer"), "{log}");

    // Quotes, a format and a job, a command separator, a second line.
    let answer =
        "use \"pg\" and 'sqlite' #(touch pwned) #{pane_id} ; rm -rf /tmp/nothing;\nsecond line;";
    let printed = env.ok(&["guide", "r1", "--answer", answer, "--print"]);
    assert!(
        printed.contains(&format!("would type into pane {pane}")),
        "{printed}"
    );
    assert!(printed.contains("paste-buffer"), "{printed}");
    assert!(
        !env.ws.join("answer1.txt").exists(),
        "--print types nothing"
    );
    let out = env.ok(&["guide", "r1", "--answer", answer]);
    assert!(out.contains(&format!("typed into pane {pane}")), "{out}");
    let got = wait_for("the agent's answer file", Duration::from_secs(10), || {
        fs::read_to_string(env.ws.join("answer1.txt")).ok()
    });
    assert_eq!(got, answer);
    assert!(!env.ws.join("pwned").exists());
    // Back to healthy and running, the question answered.
    let t = wait_for("healthy again", Duration::from_secs(10), || {
        let t = env.tick_json();
        let r = run_of(&t, "r1");
        (r["intent"] == "noop" && r["agents"][0]["health"] == "healthy").then_some(r)
    });
    assert_eq!(t["status"], "running", "{t}");
    assert!(env.show("r1")["guidance"].as_array().unwrap().is_empty());
    let again = env.run(&["guide", "r1", "--answer", "x"]);
    assert_eq!(again.status.code(), Some(1));

    // Round 2: the agent moved on before the human answered: nothing is typed.
    fs::write(env.ws.join("go2"), "").unwrap();
    wait_for("round 2 asked", Duration::from_secs(20), || {
        let t = env.tick_json();
        (run_of(&t, "r1")["reason"]
            .as_str()
            .unwrap_or("")
            .contains("round 2"))
        .then_some(())
    });
    env.ok(&["signal", "--run", "r1", "--agent", "bot", "working"]);
    let refused = env.run(&["guide", "r1", "--answer", "too late"]);
    assert_eq!(refused.status.code(), Some(1));
    assert!(
        String::from_utf8_lossy(&refused.stderr).contains("no longer waits"),
        "{}",
        String::from_utf8_lossy(&refused.stderr)
    );
    env.ok(&["signal", "--run", "r1", "--agent", "bot", "waiting"]);
    // One line: typed as literal keys.
    env.ok(&["guide", "r1", "--answer", "sqlite; \"final\" #(x)"]);
    let got = wait_for("round 2 answer", Duration::from_secs(10), || {
        fs::read_to_string(env.ws.join("answer2.txt")).ok()
    });
    assert_eq!(got, "sqlite; \"final\" #(x)");
    // The agent itself was never restarted.
    assert_eq!(pane_of(&env, "=mine:"), (pane, pid));
}
