//! The rules for quiet interactive agents (never restarted or stopped on silence alone)
//! and the questions read from their screens.

use super::tests::{agent, interactive, policy, run, streak, NOW};
use super::*;

/// Quiet interactive agents: never restarted or stopped on silence alone.
#[test]
fn quiet_interactive_table() {
    let opt_in = {
        let mut p = policy();
        p.health.restart_quiet_interactive = true;
        p
    };
    let unknown = Some(ScreenState::Unknown);
    let mut hooked = interactive("a", Health::Stalled, unknown);
    hooked.interactive = Some(Interactive {
        hook_busy: true,
        screen: unknown,
    });
    let mut dead = interactive("a", Health::Dead, None);
    dead.alive = false;
    let mut stale = run(
        RunStatus::Running,
        vec![interactive("a", Health::Idle, Some(ScreenState::Working))],
    );
    stale.status_changed_at = NOW - 7200;
    stale.agents[0].stored_activity_at = Some(NOW - 7200);
    stale.agents[0].last_activity_at = Some(NOW - 7200);
    let mut stale_batch = stale.clone();
    stale_batch.agents[0].interactive = None;
    let mut stale_opt_in = stale.clone();
    stale_opt_in.agents[0].interactive = Some(Interactive::default());
    type Row = (
        &'static str,
        RunView,
        &'static Policy,
        Intent,
        &'static str,
        Vec<&'static str>,
    );
    let default: &'static Policy = Box::leak(Box::new(policy()));
    let opt_in: &'static Policy = Box::leak(Box::new(opt_in));
    let rows: Vec<Row> = vec![
        (
            "unknown screen: escalated, not restarted",
            run(
                RunStatus::Running,
                vec![interactive("a", Health::Stalled, unknown)],
            ),
            default,
            Intent::EscalateBlocked,
            "quiet interactive agent not restarted",
            vec![],
        ),
        (
            "policy opt-in restarts it",
            run(
                RunStatus::Running,
                vec![interactive("a", Health::Stalled, unknown)],
            ),
            opt_in,
            Intent::AutoRestart,
            "restart 1/3",
            vec!["a"],
        ),
        (
            "hook evidence of a hang restarts it",
            run(RunStatus::Running, vec![hooked]),
            default,
            Intent::AutoRestart,
            "restart 1/3",
            vec!["a"],
        ),
        (
            "a dead interactive agent is restarted as today",
            run(RunStatus::Running, vec![dead]),
            default,
            Intent::AutoRestart,
            "restart 1/3",
            vec!["a"],
        ),
        (
            "batch agent restarted, quiet interactive one left alone",
            run(
                RunStatus::Running,
                vec![
                    interactive("i", Health::Stalled, unknown),
                    agent("b", Health::Stalled),
                ],
            ),
            default,
            Intent::AutoRestart,
            "b: stalled reason",
            vec!["b"],
        ),
        (
            "stale run with a live interactive agent is not stopped",
            stale,
            default,
            Intent::Noop,
            "rejected: agent a is a live interactive agent",
            vec![],
        ),
        (
            "stale run of a batch agent is stopped as today",
            stale_batch,
            default,
            Intent::AutoStopStale,
            "verified",
            vec!["a"],
        ),
        (
            "stale opt-in",
            stale_opt_in,
            opt_in,
            Intent::AutoStopStale,
            "verified",
            vec!["a"],
        ),
    ];
    for (name, r, p, intent, has, targets) in rows {
        let d = decide(&r, &streak(2), p, NOW);
        assert_eq!(d.intent, intent, "{name}: {}", d.reason);
        assert!(d.reason.to_string().contains(has), "{name}: {}", d.reason);
        assert_eq!(d.targets, targets, "{name}");
    }
}

#[test]
fn screen_questions() {
    let p = policy();
    let reading = |state, question: &str| Reading {
        state,
        matched: None,
        question: question.into(),
        tail: "last\nlines".into(),
    };
    let stalled = p.health.activity_stalled_seconds;
    let q = |r: &Reading, quiet| screen_question("w1", r, quiet, &p).map(|g| g.question);
    let dialog = reading(ScreenState::Waiting, "Do you want to proceed? / 1. Yes");
    assert_eq!(
        q(&dialog, 301).as_deref(),
        Some("Do you want to proceed? / 1. Yes")
    );
    assert_eq!(
        screen_question("w1", &dialog, 301, &p).map(|g| (g.agent, g.context)),
        Some(("w1".into(), "last\nlines".into()))
    );
    let blank = reading(ScreenState::Waiting, "");
    assert_eq!(
        q(&blank, 1).as_deref(),
        Some("(waiting for a decision on its screen)")
    );
    let idle = reading(ScreenState::Idle, "");
    assert_eq!(q(&idle, stalled - 1), None);
    assert_eq!(
        q(&idle, stalled + 60).as_deref(),
        Some("(idle at its prompt for 16 min)")
    );
    assert_eq!(q(&reading(ScreenState::Working, ""), 99_999), None);
    assert_eq!(q(&reading(ScreenState::Unknown, ""), 99_999), None);

    assert!(pane_question_open(
        true,
        true,
        Some(&dialog),
        &dialog.question
    ));
    assert!(
        pane_question_open(true, true, None, &dialog.question),
        "not read: kept"
    );
    assert!(!pane_question_open(
        false,
        true,
        Some(&dialog),
        &dialog.question
    ));
    assert!(
        !pane_question_open(true, false, None, &dialog.question),
        "active again"
    );
    assert!(!pane_question_open(
        true,
        true,
        Some(&idle),
        &dialog.question
    ));
    assert!(!pane_question_open(
        true,
        true,
        Some(&dialog),
        "another dialog"
    ));
}
