//! Tests of the screen module: cleaning, targets, batching, real panes. Classifying in
//! classify_tests.rs.

use super::*;

fn c(s: &str) -> String {
    clean(s, MAX_LINES, MAX_BYTES)
}

#[test]
fn strips_hostile_sequences() {
    let cases: &[(&str, &str, &str)] = &[
        ("csi colours", "\u{1b}[1;31mred\u{1b}[0m text", "red text"),
        ("csi cursor moves", "a\u{1b}[2J\u{1b}[10;5Hb", "ab"),
        ("8-bit csi", "a\u{9b}31mb", "ab"),
        ("osc title bel", "a\u{1b}]0;evil title\u{7}b", "ab"),
        ("osc title st", "a\u{1b}]2;evil\u{1b}\\b", "ab"),
        (
            "osc 52 clipboard write",
            "x\u{1b}]52;c;cm0gLXJmIH4K\u{7}y",
            "xy",
        ),
        (
            "osc 8 hyperlink",
            "\u{1b}]8;;http://evil\u{1b}\\link\u{1b}]8;;\u{1b}\\",
            "link",
        ),
        ("dcs", "a\u{1b}Pq#0;2;0;0;0#0~~\u{1b}\\b", "ab"),
        (
            "dcs tmux passthrough",
            "a\u{1b}Ptmux;\u{1b}\u{1b}]52;c;eA==\u{7}\u{1b}\\b",
            "ab",
        ),
        ("8-bit osc", "a\u{9d}0;t\u{9c}b", "ab"),
        ("apc", "a\u{1b}_payload\u{1b}\\b", "ab"),
        ("lone esc", "a\u{1b}b", "a"),
        ("esc at end", "ab\u{1b}", "ab"),
        ("charset", "\u{1b}(Bok", "ok"),
        ("nul bel del", "a\u{0}b\u{7}c\u{7f}d", "abcd"),
        (
            "carriage return",
            "progress 10%\rprogress 99%",
            "progress 10%progress 99%",
        ),
        ("backspace", "ab\u{8}c", "abc"),
        ("bidi override", "a\u{202e}evil\u{2066}b", "aevilb"),
        ("zero width", "a\u{200b}b\u{feff}c", "abc"),
        ("line separator", "a\u{2028}b", "ab"),
        ("tab", "a\tb", "a b"),
        ("c1 nel", "a\u{85}b", "ab"),
        (
            "tmux formats are kept as text",
            "#{pane_title} #(id)",
            "#{pane_title} #(id)",
        ),
    ];
    for (name, input, want) in cases {
        assert_eq!(c(input), *want, "{name}");
    }
}

#[test]
fn output_has_no_controls_and_respects_caps() {
    let nasty: String = (0u32..0x3000)
        .filter_map(char::from_u32)
        .cycle()
        .take(200_000)
        .collect();
    let out = clean(&nasty, 10, 500);
    assert!(out.len() <= 500, "{}", out.len());
    assert!(out.lines().count() <= 10);
    assert!(!out.chars().any(|ch| ch.is_control() && ch != '\n'));
    assert!(!out.contains('\u{1b}'));
}

#[test]
fn keeps_the_end_trims_blank_edges() {
    let raw = "\n\n  \nfirst\nsecond   \n\n\nthird\n\n\n\n";
    assert_eq!(c(raw), "first\nsecond\n\n\nthird");
    let many: String = (0..500).map(|i| format!("line {i}\n")).collect();
    let out = clean(&many, 3, 1000);
    assert_eq!(out, "line 497\nline 498\nline 499");
    // Bytes cap drops whole lines from the top first.
    let out = clean("aaaa\nbbbb\ncccc", 10, 9);
    assert_eq!(out, "bbbb\ncccc");
    // A single long line keeps its end, on a char boundary.
    let out = clean(&"é".repeat(100), 10, 11);
    assert!(out.len() <= 11 && out.chars().all(|ch| ch == 'é'), "{out}");
    assert_eq!(c(""), "");
    assert_eq!(c("\n \n\t\n"), "");
}

#[test]
fn huge_raw_input_is_cut_at_a_line() {
    let mut raw = "x".repeat(MAX_RAW_BYTES + 10);
    raw.push_str("\nend line\n");
    assert_eq!(c(&raw), "end line");
}

#[test]
fn targets_are_exact() {
    let argv = |t: &Target| capture_cmd(t, Span::Visible).argv().map(|a| a.to_vec());
    assert_eq!(argv(&Target::session("run-1")).expect("ok")[4], "=run-1:");
    let pane = Target::pane("%12").expect("pane id");
    assert_eq!(argv(&pane).expect("ok")[4], "%12");
    assert!(argv(&Target::session("a:b")).is_err());
    for bad in ["12", "%", "%1;kill-server", "%1 ", "%-1", "=s:", "%१"] {
        assert_eq!(Target::pane(bad), None, "{bad}");
    }
    assert_eq!(
        capture_cmd(&Target::session("s"), Span::Last(5)).argv(),
        Ok(&["capture-pane", "-p", "-J", "-S", "-5", "-t", "=s:"].map(String::from)[..])
    );
    assert_eq!(
        capture_cmd(&Target::session("s"), Span::Visible).argv(),
        Ok(&["capture-pane", "-p", "-J", "-t", "=s:"].map(String::from)[..])
    );
}

#[test]
fn batch_split_ignores_forged_separators() {
    let mark = marker();
    assert_ne!(mark, marker(), "each batch gets a fresh nonce");
    let out = format!(
            "{mark}\t0\tmy title\nhello\nMETAWSM-SCREEN-0000000000000000\t1\t\nforged\n{mark}\t1\t\nworld\n\n{mark}\t0\tx\ninjected\n"
        );
    let parts = split_batch(&mark, &out, 3);
    assert_eq!(
        parts[0],
        Some((
            "my title".into(),
            "hello\nMETAWSM-SCREEN-0000000000000000\t1\t\nforged\n".into()
        ))
    );
    // The repeated separator for 0 stops pane 1's text and does not reopen pane 0.
    assert_eq!(parts[1], Some((String::new(), "world\n\n".into())));
    assert_eq!(parts[2], None);
}

/// Real tmux on a private socket: capture, batching, and a vanished pane.
#[test]
fn captures_real_panes_in_one_batch() {
    let dir = tempfile::tempdir().expect("tempdir");
    let sock = dir.path().join("tmux.sock");
    let sock_s = sock.to_string_lossy().to_string();
    let t = TmuxClient::new(Some(sock_s.clone()));
    let script = dir.path().join("show.sh");
    std::fs::write(
            &script,
            "printf '\\033]2;⠹ my\\ttitle\\007line one\\n\\033[31mred\\033[0m\\n\\033]52;c;ZXZpbA==\\007Do you want to proceed?\\n'; exec sleep 60\n",
        )
        .expect("write script");
    let start = |name: &str| {
        let ok = std::process::Command::new("tmux")
            .args([
                "-S",
                &sock_s,
                "-f",
                "/dev/null",
                "new-session",
                "-d",
                "-s",
                name,
            ])
            .args(["-x", "80", "-y", "10", "sh"])
            .arg(&script)
            .status()
            .map(|s| s.success())
            .unwrap_or(false);
        assert!(ok, "tmux new-session {name}");
    };
    start("a");
    start("b");
    let targets = [Target::session("a"), Target::session("b")];
    let ms = std::time::Duration::from_millis;
    let got = crate::timeutil::poll_until(ms(20_000), ms(50), || {
        let got = capture_many(&t, &targets, Span::Visible);
        got.iter()
            .all(|g| {
                g.as_deref()
                    .is_some_and(|s| s.ends_with("Do you want to proceed?"))
            })
            .then_some(got)
    })
    .unwrap_or_else(|| capture_many(&t, &targets, Span::Visible));
    let want = "line one\nred\nDo you want to proceed?";
    assert_eq!(got, vec![Some(want.to_string()), Some(want.to_string())]);
    let screens = capture_screens(&t, &targets);
    assert_eq!(
        screens[0],
        Some(Screen {
            text: want.to_string(),
            title: "⠹ mytitle".into()
        })
    );
    let one = capture(&t, &targets[0], Span::Last(2)).expect("capture");
    assert_eq!(one, "red\nDo you want to proceed?");
    // A vanished session fails the batch: the others are still captured.
    let targets = [
        Target::session("a"),
        Target::session("gone"),
        Target::session("b"),
    ];
    let got = capture_many(&t, &targets, Span::Visible);
    assert_eq!(got[0].as_deref(), Some(want));
    assert_eq!(got[1], None);
    assert_eq!(got[2].as_deref(), Some(want));
    // The tick's form never spends more than its one spawn.
    assert_eq!(capture_screens(&t, &targets), vec![None, None, None]);
    let _ = std::process::Command::new("tmux")
        .args(["-S", &sock_s, "kill-server"])
        .status();
}
