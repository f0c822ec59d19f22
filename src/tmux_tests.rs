//! Tests of tmux.rs.

use super::*;

#[test]
fn only_an_error_naming_the_session_itself_reads_as_gone() {
    assert!(names_gone("can't find window: a-1", "a-1"));
    assert!(names_gone("can't find session: a-1", "a-1"));
    assert!(!names_gone("can't find window: a-10", "a-1"));
    assert!(!names_gone("no server running on /tmp/x", "a-1"));
}

#[test]
fn unwanted_free_text_fields_are_not_asked_for() {
    assert_eq!(pane_format(Wants::ALL), PANE_FORMAT);
    let none = pane_format(Wants::default());
    assert!(!none.contains("pane_title") && !none.contains("pane_current_command"));
    assert!(none.ends_with("#{window_activity}\t\t"), "{none:?}");
    let title = pane_format(Wants {
        title: true,
        command: false,
    });
    assert!(title.contains("pane_title") && !title.contains("pane_current_command"));
    // Every row keeps its ten columns.
    let row = "a\t@1\t%1\t100\t0\t\t\t1700000000\t\t\n";
    assert_eq!(parse_snapshot(row).sessions["a"][0].current_command, "");
    // A listing that asked for more reads as one that asked for what is kept.
    let full = "a\t@1\t%1\t100\t0\t\t\t1700000000\tt\tbash\n";
    let mut snap = parse_snapshot(full);
    let title = Wants {
        title: true,
        command: false,
    };
    keep_only(&mut snap, title);
    assert_eq!(
        snap,
        parse_snapshot("a\t@1\t%1\t100\t0\t\t\t1700000000\tt\t\n")
    );
    assert!(Wants::ALL.covers(title) && !title.covers(Wants::ALL));
    assert!(title.covers(Wants::default()));
}

#[test]
fn parses_rows_options_and_free_text_last() {
    let text = "METAWSM-OPTS\t★\t\t\t\n\
                a\t@1\t%1\t100\t0\t\t\t1700000000\t⠹ proj\tbash\n\
                a\t@1\t%2\t101\t1\t3\t\t1700000001\t\tsh -c 'x\ty'\n\
                garbage line\n\
                b\t@2\t%3\t102\t1\t\t15\t\tvm\tsleep\n";
    let s = parse_snapshot(text);
    assert_eq!(
        s.options.get("@metawsm-icon-ok").map(String::as_str),
        Some("★")
    );
    assert_eq!(s.options.len(), 1);
    let a = &s.sessions["a"];
    assert_eq!(a.len(), 2);
    assert_eq!(a[1].dead_status, Some(3));
    assert_eq!(a[1].current_command, "sh -c 'x\ty'");
    assert_eq!((a[0].title.as_str(), a[1].title.as_str()), ("⠹ proj", ""));
    let b = &s.sessions["b"][0];
    assert!(b.dead);
    assert_eq!(
        (b.dead_status, b.dead_signal, b.window_activity),
        (None, Some(15), None)
    );
}

#[test]
fn quoting_is_safe() {
    assert_eq!(sh_quote("/usr/bin/x"), "/usr/bin/x");
    assert_eq!(sh_quote("a b"), "'a b'");
    assert_eq!(sh_quote("it's"), "'it'\\''s'");
    assert_eq!(sh_quote(""), "''");
    assert_eq!(escape_format("#(rm) #[fg=red]"), "##(rm) #[fg=red]");
    assert_eq!(escape_drawn("#(rm) #[fg=red]"), "##(rm) ##[fg=red]");
}

#[test]
fn agent_start_escapes_every_value() {
    let argv = vec![
        "sh".to_string(),
        "-c".into(),
        "sleep 1;".into(),
        "-x".into(),
    ];
    let env = [("K".to_string(), "v;".to_string())];
    let c = start_agent_cmds("s#1", "/w/#(touch x);", &argv, &env, 9);
    let new = c[0].argv().expect("new");
    assert_eq!(
        new,
        [
            "new-session",
            "-d",
            "-s",
            "s##1",
            "-c",
            "/w/##(touch x)\\;",
            "-e",
            "K=v\\;",
            "--",
            "sleep",
            "86400"
        ]
    );
    let respawn = c.last().expect("respawn").argv().expect("respawn");
    assert_eq!(
        &respawn[respawn.len() - 5..],
        ["--", "sh", "-c", "sleep 1\\;", "-x"]
    );
    assert!(start_agent_cmds("a:b", "/w", &argv, &[], 9)[0]
        .argv()
        .is_err());
}

#[test]
fn single_argv_is_not_run_by_a_shell() {
    let c = start_agent_cmds("s", "/w", &["prog with space".into()], &[], 900);
    let respawn = c.last().expect("respawn").argv().expect("respawn");
    assert_eq!(
        &respawn[respawn.len() - 3..],
        ["/usr/bin/env", "--", "prog with space"]
    );
}

#[test]
fn pane_rows_split_as_splitn_did() {
    let lines = [
        "",
        "a",
        "s\t@1\t%1\t42\t0\t\t\t1700000000\t\t",
        "s\t@1\t%1\t42\t1:1700000001\t3\t\t1700000000\ttitle\tcmd\textra\ttabs",
        "s\t@1\t%1\t42\t0\t\t\t1700000000\t",
        "é\t@1\t%1\t\t\t\t\t\t\u{1b}t\tc",
        "\t\t\t\t\t\t\t\t\t",
    ];
    for l in lines {
        let old: Vec<&str> = l.splitn(10, '\t').collect();
        let new = fields::<10>(l);
        match new {
            Some(f) => assert_eq!(f.to_vec(), old, "{l:?}"),
            None => assert!(old.len() < 10, "{l:?}"),
        }
    }
}
