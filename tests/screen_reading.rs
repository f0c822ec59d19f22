//! Quiet interactive agents are judged from their screens (docs/screen.md), end to end
//! with real tmux: a dialog is escalated as waiting with its text, a bare prompt as idle,
//! a busy marker stays healthy, none of them restarted; a batch agent (`codex exec`)
//! going silent is still restarted. Screens are read in one tmux spawn per tick, and
//! only those of quiet interactive panes.

mod common;

use common::{fast_policy, intent, wait_for, write_exec, Env};
use serde_json::json;
use std::time::Duration;

const WAIT: Duration = Duration::from_secs(40);

/// A fake `codex`: prints a screen (sets a title too), then stays silent. Named `codex`
/// so the start command is recognised as the interactive CLI (or, with `exec`, as batch).
fn fake_codex(env: &Env, name: &str, screen: &str) -> String {
    let dir = env.path(&format!("bin-{name}"));
    std::fs::create_dir_all(&dir).expect("mkdir");
    let path = dir.join("codex");
    let body = format!(
        "#!/bin/sh\nprintf '\\033]2;%s\\007' \"fake codex\"\ncat <<'EOF'\n{screen}\nEOF\nread answer\nprintf '\\033[2J\\033[Hanswered: %s\\n' \"$answer\"\nexec sleep 1000000\n"
    );
    write_exec(&path, &body);
    path.to_string_lossy().into_owned()
}

/// Codex at an approval dialog: it blinks its title every half second, so the pane is
/// never quiet; the title alone gets its screen read.
fn blinking_codex(env: &Env) -> String {
    let dir = env.path("bin-blink");
    std::fs::create_dir_all(&dir).expect("mkdir");
    let path = dir.join("codex");
    let body = format!(
        "#!/bin/sh\ncat <<'EOF'\n{DIALOG}\nEOF\nwhile :; do\n  printf '\\033]2;[ ! ] Action Required | ws\\007'; sleep 0.5\n  printf '\\033]2;[ . ] Action Required | ws\\007'; sleep 0.5\ndone\n"
    );
    write_exec(&path, &body);
    path.to_string_lossy().into_owned()
}

const DIALOG: &str = "\
• I'll clean the build directory.

  Would you like to run the following command?

  $ rm -rf build

› 1. Yes, proceed (y)
  2. No, and tell Codex what to do differently (esc)

  Press enter to confirm or esc to cancel";

const IDLE: &str = "\
■ Conversation interrupted - use /feedback if something went wrong

› Ask Codex to do anything

  ? for shortcuts";

const BUSY: &str = "\
› list the files here

• Working (12s • esc to interrupt)

› Ask Codex to do anything
  ? for shortcuts";

fn events(env: &Env, run: &str, kind: &str) -> Vec<String> {
    env.sql(&format!(
        "SELECT message FROM events WHERE run_id = '{run}' AND kind = '{kind}' ORDER BY id"
    ))
    .into_iter()
    .map(|r| r[0].clone())
    .collect()
}

#[test]
fn quiet_interactive_agents_are_read_not_restarted_and_batch_agents_still_are() {
    let mut env = Env::with_policy(fast_policy(json!({"operator": {
        "unhealthy_confirmations": 1, "min_observation_gap_seconds": 0
    }})));
    let calls = env.log_tmux_calls();
    let dialog = fake_codex(&env, "dialog", DIALOG);
    env.start("dialog", &[&dialog]);
    let idle = fake_codex(&env, "idle", IDLE);
    env.start("idle", &[&idle]);
    let busy = fake_codex(&env, "busy", BUSY);
    env.start("busy", &[&busy, "--approve-for-me"]);
    let blink = blinking_codex(&env);
    env.start("blink", &[&blink]);
    // A screen no pattern knows: held, escalated as blocked, not restarted.
    let odd = fake_codex(&env, "odd", "compiling 3 crates\nwarning: unused variable");
    env.start("odd", &[&odd]);
    // The same busy screen, started as `codex exec`: a batch agent, never read.
    let batch = fake_codex(&env, "batch", BUSY);
    env.start("batch", &[&batch, "exec", "--skip-git-repo-check", "-"]);

    // Tick until the batch agent has been restarted for its silence and the idle agent
    // has been quiet past the stall threshold (4 s) and escalated.
    let mut seen: Vec<(String, String, String)> = Vec::new();
    wait_for(
        "the batch agent restarted and the idle, unrecognised and blinking ones escalated",
        WAIT,
        || {
            let v = env.tick_json();
            for run in ["dialog", "idle", "busy", "odd", "blink", "batch"] {
                let (i, r) = intent(&v, run);
                seen.push((run.to_string(), i, r));
            }
            std::thread::sleep(Duration::from_millis(300));
            let restarted = !events(&env, "batch", "restart").is_empty();
            let escalated = |who: &str, intent: &str, has: &str| {
                seen.iter()
                    .any(|(run, i, r)| run == who && i == intent && r.contains(has))
            };
            let idle_escalated = escalated("idle", "escalate_guidance", "idle at its prompt")
                && escalated("blink", "escalate_guidance", "Would you like to run")
                && escalated("odd", "escalate_blocked", "not restarted");
            (restarted && idle_escalated).then_some(())
        },
    );

    // The dialog: escalated as waiting, with the dialog's text as the question.
    let asked = seen
        .iter()
        .find(|(run, i, _)| run == "dialog" && i == "escalate_guidance")
        .map(|(_, _, r)| r.clone())
        .expect("dialog escalated");
    assert!(
        asked.contains(
            "Would you like to run the following command? / $ rm -rf build / › 1. Yes, proceed (y)"
        ),
        "{asked}"
    );
    // Recorded as a question from the screen: the run waits for guidance.
    let q = env.sql(
        "SELECT question, context, status, source FROM guidance_requests WHERE run_id = 'dialog'",
    );
    assert_eq!(q.len(), 1, "one recorded question: {q:?}");
    assert!(
        q[0][0].contains("Would you like to run the following command?"),
        "{q:?}"
    );
    assert!(q[0][1].contains("Press enter to confirm"), "context: {q:?}");
    assert_eq!((q[0][2].as_str(), q[0][3].as_str()), ("pending", "screen"));
    assert_eq!(env.show("dialog")["status"], "awaiting_guidance");
    // Answered in the pane by a human: the dialog leaves the screen, the question closes
    // and the run is running again.
    env.tmux(&["send-keys", "-t", "=dialog:", "y", "Enter"]);
    wait_for("the dialog gone from the screen", WAIT, || {
        env.tmux_out(&["capture-pane", "-p", "-t", "=dialog:"])
            .contains("answered: y")
            .then_some(())
    });
    // `guide` now refuses to type: the screen no longer shows the question.
    // `guide` reads the screen itself (not a tick): its tmux calls are set apart.
    let log_lines = || {
        std::fs::read_to_string(&calls)
            .unwrap_or_default()
            .lines()
            .count()
    };
    let mut by_guide = Vec::new();
    let before = log_lines();
    let out = env.run(&["guide", "dialog", "--answer", "yes"]);
    by_guide.push(before..log_lines());
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("no longer shows"),
        "{out:?}"
    );
    wait_for("the screen question resolved", WAIT, || {
        env.tick();
        let st = env.sql("SELECT status FROM guidance_requests WHERE run_id = 'dialog'");
        (st[0][0] == "resolved" && env.show("dialog")["status"] == "running").then_some(())
    });

    // Never quiet (its title blinks), still read and escalated with the dialog.
    let q = env.sql("SELECT question, source FROM guidance_requests WHERE run_id = 'blink'");
    assert_eq!(q.len(), 1, "{q:?}");
    assert!(
        q[0][0].contains("Would you like to run the following command? / $ rm -rf build"),
        "{q:?}"
    );

    // Answered with `guide`, typed into the pane while the dialog is there.
    let before = log_lines();
    env.ok(&["guide", "blink", "--answer", "y"]);
    by_guide.push(before..log_lines());
    let st = env.sql("SELECT status, answer FROM guidance_requests WHERE run_id = 'blink'");
    assert_eq!(st, [["answered", "y"]]);
    // No `working` signal is made up for an agent without hooks.
    assert_eq!(
        env.sql("SELECT signal FROM agents WHERE run_id = 'blink'"),
        [["NULL"]]
    );

    // Idle at its prompt: escalated with the last lines, never as a question to answer
    // by file.
    let (_, _, r) = seen
        .iter()
        .rev()
        .find(|(run, _, _)| run == "idle")
        .expect("idle seen");
    assert!(r.contains("idle at its prompt"), "{r}");

    // Busy: silent longer than the stall threshold, healthy all along.
    assert_eq!(env.health("busy", "agent"), "healthy");
    for (run, i, r) in &seen {
        if run == "busy" {
            assert_eq!(i, "noop", "busy: {r}");
        }
    }

    // Unrecognised screen: a human hears about it, the conversation is kept.
    assert!(
        seen.iter().any(|(run, i, r)| run == "odd"
            && i == "escalate_blocked"
            && r.contains("quiet interactive agent not restarted")
            && r.contains("screen not recognised")),
        "{seen:?}"
    );

    // None of the interactive agents was restarted; the batch agent was.
    for run in ["dialog", "idle", "busy", "odd", "blink"] {
        assert!(events(&env, run, "restart").is_empty(), "{run} restarted");
    }
    assert!(!events(&env, "batch", "restart").is_empty());

    // Cost: captures only in one spawn per tick, never of the batch agent's pane.
    let log = std::fs::read_to_string(&calls).unwrap_or_default();
    // Screen reads only: the last lines kept as evidence before a restart (`-S -N`, see
    // src/evidence.rs) are another matter.
    let not_guide: Vec<&str> = log
        .lines()
        .enumerate()
        .filter(|(i, _)| !by_guide.iter().any(|r| r.contains(i)))
        .map(|(_, l)| l)
        .collect();
    let capture_calls: Vec<&str> = not_guide
        .iter()
        .copied()
        .filter(|l| l.contains("capture-pane") && !l.contains("capture-pane -p -J -S -"))
        .collect();
    assert!(!capture_calls.is_empty(), "screens were read: {log}");
    // Each tick observes with one list-panes spawn (nothing else here lists panes).
    let ticks = not_guide
        .iter()
        .filter(|l| l.contains("list-panes"))
        .count();
    assert!(
        capture_calls.len() <= ticks,
        "{} capture spawns for {ticks} ticks",
        capture_calls.len()
    );
    assert!(
        capture_calls
            .iter()
            .any(|l| l.matches("capture-pane").count() >= 2),
        "several panes in one spawn: {capture_calls:?}"
    );
    let interactive_panes: Vec<String> = env
        .sql(
            "SELECT pane_id FROM agents WHERE run_id IN ('dialog', 'idle', 'busy', 'odd', 'blink')",
        )
        .into_iter()
        .map(|r| r[0].clone())
        .collect();
    for l in &capture_calls {
        let words: Vec<&str> = l.split(' ').collect();
        for w in words.windows(2).filter(|w| w[0] == "-t") {
            assert!(
                interactive_panes.iter().any(|p| p == w[1]),
                "read a pane that is not a quiet interactive agent's: {l}"
            );
        }
    }
}
