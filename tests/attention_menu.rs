//! `metawsm-tick menu`: the display-menu of runs that need a human. Without a client the
//! menu cannot open, so each item's command goes through tmux exactly as the menu would
//! send it: format-expanded once (`display-message -p`), then parsed (`source-file`).

mod common;

use common::{fast_policy, wait_for, Env};
use serde_json::{json, Value};
use std::fs;
use std::time::Duration;

fn run_item(env: &Env, command: &str) {
    let expanded = env.tmux_out(&["display-message", "-p", "--", command]);
    let file = env.path("item.tmux");
    fs::write(&file, expanded).unwrap();
    let out = env.tmux(&["source-file", &file.to_string_lossy()]);
    assert!(
        out.status.success(),
        "{command}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn menu_items_carry_hostile_paths_and_questions_as_text() {
    let mut env = Env::with_policy(fast_policy(json!({
        "operator": {"llm": {"mode": "assist", "command": "false", "min_interval_seconds": 3600}}
    })));
    // Every layer's special characters in the state path the items carry.
    let hostile = env.path("d b'\"$HOME #(touch pwned) ;x `id`");
    env.db = hostile.join("state.db");
    let empty = env.ok(&["menu", "--print"]);
    assert!(empty.contains("display-message"), "{empty}");

    env.start("r1", &["sh", "-c", "exit 3"]);
    wait_for("held for approval", Duration::from_secs(30), || {
        env.tick()
            .contains("action=awaiting-approval")
            .then_some(())
    });
    let ws2 = env.path("ws2");
    fs::create_dir_all(ws2.join(".metawsm")).unwrap();
    env.ok(&[
        "run",
        "start",
        "--ticket",
        "T-2",
        "--workspace",
        &ws2.to_string_lossy(),
        "--id",
        "r2",
        "--session",
        "r2",
        "--",
        "sleep",
        "1000",
    ]);
    // Written after the run started (older files belong to earlier runs).
    std::thread::sleep(Duration::from_millis(1100));
    let question = "#(touch pwned2) \"; kill-server; $(id) #{pane_id}";
    fs::write(
        ws2.join(".metawsm/guidance-request.json"),
        json!({ "question": question }).to_string(),
    )
    .unwrap();
    env.tick();

    let v: Value = serde_json::from_str(&env.ok(&["menu", "--print", "--json"])).unwrap();
    assert_eq!(v["argv"][0], "display-menu", "{v}");
    let items = v["items"].as_array().unwrap();
    let find = |prefix: &str, after: &str| {
        let start = items
            .iter()
            .position(|i| i["name"].as_str().unwrap_or("").starts_with(after))
            .unwrap_or_else(|| panic!("no {after} in {v}"));
        items[start..]
            .iter()
            .find(|i| i["name"].as_str().unwrap_or("").starts_with(prefix))
            .cloned()
            .unwrap_or_else(|| panic!("no {prefix} after {after}"))
    };
    // The question is shown as text: expanded once it reads exactly as written.
    let heading = find("-r2", "-r2");
    let shown = env.tmux_out(&[
        "display-message",
        "-p",
        "--",
        heading["name"].as_str().unwrap(),
    ]);
    // (cut to 60 characters for the menu)
    assert!(
        shown.contains("#(touch pwned2) \"; kill-server; $(id) #{pane"),
        "{shown}"
    );
    assert!(find("  answer", "-r2")["command"]
        .as_str()
        .unwrap()
        .starts_with("command-prompt"));

    // approve, as the menu runs it, reaches our binary with the hostile path intact.
    run_item(&env, find("  approve", "-r1")["command"].as_str().unwrap());
    wait_for("the approved restart", Duration::from_secs(20), || {
        let n = env.sql("SELECT count(*) FROM events WHERE run_id = 'r1' AND kind = 'restart'");
        (n[0][0] == "1").then_some(())
    });
    // go there: a pane target the menu's client would switch to.
    assert!(find("  go there", "-r2")["command"]
        .as_str()
        .unwrap()
        .starts_with("switch-client -t \"%"));

    // The answer prompt's route: the text in a tmux buffer, then guide --answer-buffer.
    env.tmux(&[
        "set-buffer",
        "-b",
        "metawsm-answer-r2",
        "--",
        "use \"pg\"; #(x)",
    ]);
    env.ok(&["guide", "r2", "--answer-buffer", "metawsm-answer-r2"]);
    let resp = fs::read_to_string(ws2.join(".metawsm/guidance-response.json")).unwrap();
    let resp: Value = serde_json::from_str(&resp).unwrap();
    assert_eq!(resp["answer"], "use \"pg\"; #(x)");
    assert!(
        env.tmux(&["show-buffer", "-b", "metawsm-answer-r2"])
            .status
            .code()
            != Some(0)
    );

    for p in ["pwned", "pwned2"] {
        assert!(!env.ws.join(p).exists() && !ws2.join(p).exists() && !env.path(p).exists());
    }
}

#[test]
fn the_plugin_binds_prefix_m_unless_told_not_to() {
    let env = Env::new();
    env.ok(&["tmux-setup", "--bin", common::BIN]);
    let keys = env.tmux_out(&["list-keys", "-T", "prefix", "M"]);
    assert!(keys.contains("run-shell -b"), "{keys}");
    assert!(keys.contains("menu --client"), "{keys}");
    env.tmux(&["set-option", "-g", "@metawsm-key", "F7"]);
    env.tmux(&["unbind-key", "M"]);
    env.ok(&["tmux-setup", "--bin", common::BIN]);
    assert!(env
        .tmux_out(&["list-keys", "-T", "prefix", "F7"])
        .contains("menu"));
    env.tmux(&["unbind-key", "F7"]);
    env.tmux(&["set-option", "-g", "@metawsm-key", "none"]);
    env.ok(&["tmux-setup", "--bin", common::BIN]);
    let all = env.tmux_out(&["list-keys", "-T", "prefix"]);
    assert!(!all.contains("menu --client"), "{all}");
}
