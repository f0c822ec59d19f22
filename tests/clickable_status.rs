//! The status segment is clickable (a `#[range=user|metawsm]` and a `MouseDown1Status`
//! binding that opens the menu) only on tmux 3.4 or later, which added user ranges; on an
//! older server, tmux-setup leaves the bar and the mouse exactly as they were.

mod common;

use common::Env;

const CLICK: [&str; 4] = ["list-keys", "-T", "root", "MouseDown1Status"];

fn server_has_user_ranges(env: &Env) -> bool {
    let v = env.tmux_out(&["display-message", "-p", "#{version}"]);
    let num: String = v
        .trim()
        .trim_start_matches(|c: char| !c.is_ascii_digit())
        .chars()
        .take_while(|c| c.is_ascii_digit() || *c == '.')
        .collect();
    let mut it = num.split('.').map(|p| p.parse::<u32>().unwrap_or(0));
    // A version without a number is a git build: newer than any release.
    num.is_empty() || (it.next().unwrap_or(0), it.next().unwrap_or(0)) >= (3, 4)
}

#[test]
fn the_servers_own_version_decides_whether_the_segment_is_clickable() {
    let env = Env::new();
    let before = env.tmux_out(&CLICK);
    env.ok(&["tmux-setup", "--bin", common::BIN]);
    let bar = env.tmux_out(&["show-options", "-gv", "status-right"]);
    assert!(bar.contains("#(exec "), "{bar}");
    if server_has_user_ranges(&env) {
        assert!(bar.starts_with("#[range=user|metawsm]#(exec "), "{bar}");
        assert!(env.tmux_out(&CLICK).contains("mouse_status_range"));
    } else {
        // tmux 3.3a (this machine): no range in the bar, tmux's own click binding intact.
        assert!(!bar.contains("range="), "{bar}");
        assert_eq!(env.tmux_out(&CLICK), before);
        assert!(before.contains("MouseDown1Status"), "{before}");
    }
}

#[test]
fn a_newer_tmux_gets_the_range_and_binding_and_click_off_takes_them_back() {
    let env = Env::new();
    let before = env.tmux_out(&CLICK);
    let setup = ["tmux-setup", "--bin", common::BIN, "--tmux-version", "3.4"];
    env.ok(&setup);
    env.ok(&setup);
    let bar = env.tmux_out(&["show-options", "-gv", "status-right"]);
    assert!(bar.starts_with("#[range=user|metawsm]#(exec "), "{bar}");
    assert_eq!(bar.matches("#(exec ").count(), 1, "{bar}");
    assert!(bar.contains("status)#[norange] "), "{bar}");
    // The real tmux parsed the nested command lines: the condition, the menu on the
    // clicking client, and tmux's own action for every other click.
    let bound = env.tmux_out(&CLICK);
    assert!(
        bound.contains("if-shell -F \"#{==:#{mouse_status_range},metawsm}\""),
        "{bound}"
    );
    assert!(bound.contains("menu --client '#{client_name}'"), "{bound}");
    assert!(
        bound.trim_end().ends_with("\"switch-client -t=\""),
        "{bound}"
    );

    env.tmux(&["set-option", "-g", "@metawsm-click", "off"]);
    env.ok(&setup);
    let bar = env.tmux_out(&["show-options", "-gv", "status-right"]);
    assert!(
        bar.starts_with("#(exec ") && !bar.contains("range="),
        "{bar}"
    );
    let restored = env.tmux_out(&CLICK);
    assert!(!restored.contains("mouse_status_range"), "{restored}");
    assert!(
        restored.contains("switch-client -t =") || restored == before,
        "{restored}"
    );
}
