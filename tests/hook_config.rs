//! `metawsm-tick init tmux|claude|codex`: the printed configuration names this binary and
//! works as printed (a real tmux server loads the tmux lines; the Claude and Codex
//! commands record the agent's state).

mod common;

use common::{wait_for, Env, BIN};
use std::fs;
use std::process::{Command, Stdio};
use std::time::Duration;

#[test]
fn init_tmux_lines_load_the_plugin_into_a_real_server() {
    let env = Env::new();
    let lines = env.ok(&["init", "tmux"]);
    assert!(
        lines.contains(&format!("set -g @metawsm-bin '{BIN}'")),
        "{lines}"
    );
    let conf = env.path("init.conf");
    let head = format!(
        "set -g @metawsm-db '{}'\nset -g @metawsm-policy '{}'\n",
        env.db.display(),
        env.policy.display()
    );
    fs::write(&conf, head + &lines).expect("conf");
    let out = env.tmux(&["source-file", &conf.to_string_lossy()]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // tmux-setup ran with this binary: the status segment calls it.
    wait_for("status segment", Duration::from_secs(20), || {
        let right = env.tmux_out(&["show-options", "-gv", "status-right"]);
        right.contains(BIN).then_some(())
    });
    assert_eq!(
        env.tmux_out(&["show-options", "-gv", "@metawsm-bin"])
            .trim(),
        BIN
    );
}

#[test]
fn init_claude_hooks_call_the_binary_silently() {
    let env = Env::new();
    let json: serde_json::Value =
        serde_json::from_str(&env.ok(&["init", "claude"])).expect("valid JSON");
    let mut commands = Vec::new();
    fn collect(v: &serde_json::Value, out: &mut Vec<String>) {
        match v {
            serde_json::Value::Object(m) => m.iter().for_each(|(k, x)| match x.as_str() {
                Some(s) if k == "command" => out.push(s.to_string()),
                _ => collect(x, out),
            }),
            serde_json::Value::Array(a) => a.iter().for_each(|x| collect(x, out)),
            _ => {}
        }
    }
    collect(&json["hooks"], &mut commands);
    assert!(commands.len() >= 7, "{commands:?}");
    for c in &commands {
        assert!(c.starts_with(&format!("{BIN} signal ")), "{c}");
    }
    // Outside any agent pane: no output, exit 0 (Claude Code shows output, blocks on 2).
    let out = Command::new("sh")
        .arg("-c")
        .arg(&commands[0])
        .env_remove("TMUX")
        .env_remove("TMUX_PANE")
        .env("METAWSM_DB", &env.db)
        .stdin(Stdio::null())
        .output()
        .expect("sh");
    assert!(out.status.success());
    assert!(out.stdout.is_empty() && out.stderr.is_empty(), "{out:?}");
}

#[test]
fn init_codex_notify_records_the_turn_end() {
    let env = Env::new();
    let line = env.ok(&["init", "codex"]);
    assert_eq!(
        line,
        format!("notify = [\"{BIN}\", \"signal\", \"--codex\"]\n")
    );
    env.start("r1", &["sh", "-c", "sleep 1000"]);
    let signal = |json: &str| {
        let out = env
            .cmd(&["signal", "--codex", "--run", "r1", "--agent", "agent", json])
            .output()
            .expect("run");
        assert!(out.status.success(), "{out:?}");
        env.sql("SELECT signal FROM agents WHERE run_id = 'r1'")[0][0].clone()
    };
    // Codex appends its JSON last; an unmapped type is ignored.
    assert_eq!(signal(r#"{"type":"something-else"}"#), "NULL");
    assert_eq!(signal(r#"{"type":"agent-turn-complete"}"#), "done");
}
