//! The rules as tables: each rule a row (`rule_table`), the operator state's counters,
//! cooldowns and alert dedup. Quiet interactive agents and their screen questions in
//! decide_screen_tests.rs.

use super::*;

pub(super) const NOW: i64 = 100_000;

pub(super) fn policy() -> Policy {
    Policy::default()
}

pub(super) fn agent(name: &str, health: Health) -> AgentView {
    let alive = matches!(health, Health::Healthy | Health::Idle | Health::Stalled);
    AgentView {
        name: name.into(),
        health,
        alive,
        exit_status: match health {
            Health::Dead => Some(1),
            Health::Exited => Some(0),
            _ => None,
        },
        last_activity_at: Some(NOW - if health == Health::Stalled { 1000 } else { 10 }),
        stored_activity_at: Some(NOW - if health == Health::Stalled { 1000 } else { 10 }),
        reason: format!("{} reason", health),
        complete: false,
        reported_done: false,
        interactive: None,
        restartable: true,
    }
}

pub(super) fn run(status: RunStatus, agents: Vec<AgentView>) -> RunView {
    RunView {
        id: "run-1".into(),
        status,
        status_changed_at: NOW - 100,
        agents,
        guidance: None,
        tmux_unknown: None,
    }
}

pub(super) fn streak(n: i64) -> OpState {
    OpState {
        unhealthy_streak: n,
        last_observation_at: Some(NOW - 60),
        ..Default::default()
    }
}

pub(super) struct Case {
    name: &'static str,
    run: RunView,
    state: OpState,
    intent: Intent,
    reason_has: &'static str,
    targets: Vec<&'static str>,
}

pub(super) fn interactive(name: &str, health: Health, screen: Option<ScreenState>) -> AgentView {
    AgentView {
        interactive: Some(Interactive {
            hook_busy: false,
            screen,
        }),
        ..agent(name, health)
    }
}

/// A dry run sees where corroboration leads, without counting anything.
#[test]
fn preview_after_corroboration() {
    let dead = run(RunStatus::Running, vec![agent("a", Health::Dead)]);
    let p = policy();
    assert_eq!(
        preview(&dead, &OpState::default(), &p, NOW),
        Some((Intent::AutoRestart, 1))
    );
    let mut three = policy();
    three.operator.unhealthy_confirmations = 3;
    assert_eq!(
        preview(&dead, &OpState::default(), &three, NOW),
        Some((Intent::AutoRestart, 2))
    );
    let spent = OpState {
        restart_attempts: p.operator.restart_budget,
        ..Default::default()
    };
    assert_eq!(
        preview(&dead, &spent, &p, NOW),
        Some((Intent::EscalateBlocked, 1))
    );
    // Nothing to corroborate, or already corroborated: no preview.
    let ok = run(RunStatus::Running, vec![agent("a", Health::Healthy)]);
    assert_eq!(preview(&ok, &OpState::default(), &p, NOW), None);
    assert_eq!(preview(&dead, &streak(1), &p, NOW), None);
}

#[test]
fn rule_table() {
    let guidance = Some(PendingGuidance {
        agent: "a".into(),
        question: "which db?".into(),
        context: String::new(),
        at_prompt: false,
    });
    let mut stale_dead = run(RunStatus::Running, vec![agent("a", Health::Dead)]);
    stale_dead.status_changed_at = NOW - 7200;
    stale_dead.agents[0].stored_activity_at = Some(NOW - 7200);
    stale_dead.agents[0].last_activity_at = Some(NOW - 7200);
    let mut stale_busy = stale_dead.clone();
    stale_busy.agents = vec![agent("a", Health::Healthy)];
    stale_busy.agents[0].stored_activity_at = Some(NOW - 7200);
    let mut stale_done = stale_dead.clone();
    stale_done.agents = vec![agent("a", Health::Idle)];
    stale_done.agents[0].stored_activity_at = Some(NOW - 7200);
    stale_done.agents[0].last_activity_at = Some(NOW - 7200);
    stale_done.agents[0].reported_done = true;
    let mut stale_with_guidance = stale_dead.clone();
    stale_with_guidance.guidance = guidance.clone();
    let mut guided = run(RunStatus::AwaitingGuidance, vec![agent("a", Health::Dead)]);
    guided.guidance = guidance.clone();
    let mut unknown = run(RunStatus::Running, vec![agent("a", Health::Unknown)]);
    unknown.tmux_unknown = Some("no server".into());
    let mut done = run(
        RunStatus::Running,
        vec![agent("a", Health::Exited), agent("b", Health::Exited)],
    );
    done.agents.iter_mut().for_each(|a| a.complete = true);
    let mut half_done = done.clone();
    half_done.agents[1].complete = false;
    // An interactive agent that wrote its completion file and sits at its prompt.
    let mut live_complete = run(RunStatus::Running, vec![agent("a", Health::Idle)]);
    live_complete.agents[0].complete = true;
    live_complete.guidance = guidance.clone();
    let mut gone_complete = run(RunStatus::Running, vec![agent("a", Health::Dead)]);
    gone_complete.agents[0].complete = true;
    let mut unrestartable = run(
        RunStatus::Running,
        vec![agent("a", Health::Healthy), agent("b", Health::Dead)],
    );
    unrestartable.agents[1].restartable = false;
    let mut unrestartable_healthy = run(RunStatus::Running, vec![agent("a", Health::Idle)]);
    unrestartable_healthy.agents[0].restartable = false;

    let cases = vec![
        Case {
            name: "healthy",
            run: run(RunStatus::Running, vec![agent("a", Health::Healthy)]),
            state: OpState::default(),
            intent: Intent::Noop,
            reason_has: "no deterministic action",
            targets: vec![],
        },
        Case {
            name: "idle is healthy",
            run: run(RunStatus::Running, vec![agent("a", Health::Idle)]),
            state: streak(5),
            intent: Intent::Noop,
            reason_has: "no deterministic",
            targets: vec![],
        },
        Case {
            name: "guidance first",
            run: guided,
            state: streak(5),
            intent: Intent::EscalateGuidance,
            reason_has: "agent a asks: which db?",
            targets: vec![],
        },
        Case {
            name: "guidance beats stale",
            run: stale_with_guidance,
            state: OpState::default(),
            intent: Intent::EscalateGuidance,
            reason_has: "which db?",
            targets: vec![],
        },
        Case {
            name: "stale verified",
            run: stale_dead,
            state: OpState::default(),
            intent: Intent::AutoStopStale,
            reason_has: "verified",
            targets: vec!["a"],
        },
        Case {
            name: "stale rejected by an agent that reported done",
            run: stale_done,
            state: OpState::default(),
            intent: Intent::Noop,
            reason_has: "is alive and reported done",
            targets: vec![],
        },
        Case {
            name: "stale rejected by live activity",
            run: stale_busy,
            state: OpState::default(),
            intent: Intent::Noop,
            reason_has: "rejected: agent a has recent activity",
            targets: vec![],
        },
        Case {
            name: "first unhealthy observation",
            run: run(RunStatus::Running, vec![agent("a", Health::Dead)]),
            state: OpState::default(),
            intent: Intent::Noop,
            reason_has: "awaiting corroboration (1/2",
            targets: vec![],
        },
        Case {
            name: "corroborated",
            run: run(
                RunStatus::Running,
                vec![agent("a", Health::Dead), agent("b", Health::Healthy)],
            ),
            state: streak(1),
            intent: Intent::AutoRestart,
            reason_has: "restart 1/3",
            targets: vec!["a"],
        },
        Case {
            name: "stalled is unhealthy",
            run: run(RunStatus::Running, vec![agent("a", Health::Stalled)]),
            state: streak(1),
            intent: Intent::AutoRestart,
            reason_has: "corroborated",
            targets: vec!["a"],
        },
        Case {
            name: "budget exhausted",
            run: run(RunStatus::Running, vec![agent("a", Health::Dead)]),
            state: OpState {
                restart_attempts: 3,
                ..streak(1)
            },
            intent: Intent::EscalateBlocked,
            reason_has: "restart budget exhausted (3/3)",
            targets: vec![],
        },
        Case {
            name: "budget beats cooldown",
            run: run(RunStatus::Running, vec![agent("a", Health::Dead)]),
            state: OpState {
                restart_attempts: 3,
                cooldown_until: Some(NOW + 50),
                ..streak(1)
            },
            intent: Intent::EscalateBlocked,
            reason_has: "exhausted",
            targets: vec![],
        },
        Case {
            name: "cooldown",
            run: run(RunStatus::Running, vec![agent("a", Health::Dead)]),
            state: OpState {
                restart_attempts: 1,
                cooldown_until: Some(NOW + 50),
                ..streak(1)
            },
            intent: Intent::Noop,
            reason_has: "restart cooldown active until",
            targets: vec![],
        },
        Case {
            name: "cooldown over",
            run: run(RunStatus::Running, vec![agent("a", Health::Dead)]),
            state: OpState {
                restart_attempts: 1,
                cooldown_until: Some(NOW),
                ..streak(1)
            },
            intent: Intent::AutoRestart,
            reason_has: "restart 2/3",
            targets: vec!["a"],
        },
        Case {
            name: "paused suppresses restart",
            run: run(RunStatus::Paused, vec![agent("a", Health::Dead)]),
            state: streak(5),
            intent: Intent::Noop,
            reason_has: "run is paused",
            targets: vec![],
        },
        Case {
            name: "tmux unknown",
            run: unknown,
            state: streak(1),
            intent: Intent::Noop,
            reason_has: "tmux unreachable",
            targets: vec![],
        },
        Case {
            name: "stopped run",
            run: run(RunStatus::Stopped, vec![agent("a", Health::Dead)]),
            state: streak(5),
            intent: Intent::Noop,
            reason_has: "run is stopped",
            targets: vec![],
        },
        Case {
            name: "all complete",
            run: done,
            state: OpState::default(),
            intent: Intent::Noop,
            reason_has: "completion signal detected",
            targets: vec![],
        },
        Case {
            name: "a live agent's completion file completes the run, before its question",
            run: live_complete,
            state: streak(0),
            intent: Intent::Noop,
            reason_has: "completion signal detected",
            targets: vec![],
        },
        Case {
            name: "a completed agent whose pane is gone is not restarted",
            run: gone_complete,
            state: streak(5),
            intent: Intent::Noop,
            reason_has: "completion signal detected",
            targets: vec![],
        },
        Case {
            name: "no restart command escalates instead of restarting",
            run: unrestartable,
            state: streak(5),
            intent: Intent::EscalateBlocked,
            reason_has: "agent b has no restart command",
            targets: vec![],
        },
        Case {
            name: "no restart command is no problem while healthy",
            run: unrestartable_healthy,
            state: streak(0),
            intent: Intent::Noop,
            reason_has: "no deterministic action",
            targets: vec![],
        },
        Case {
            name: "exit 0 without signal",
            run: half_done,
            state: OpState::default(),
            intent: Intent::EscalateBlocked,
            reason_has: "agent b exited without completion signal",
            targets: vec![],
        },
    ];
    for c in cases {
        let d = decide(&c.run, &c.state, &policy(), NOW);
        assert_eq!(d.intent, c.intent, "{}: {}", c.name, d.reason);
        assert!(
            d.reason.to_string().contains(c.reason_has),
            "{}: {:?}",
            c.name,
            d.reason
        );
        assert_eq!(d.targets, c.targets, "{}", c.name);
        assert_eq!(d.execute, c.intent.is_action(), "{}", c.name);
        assert!(
            d.permitted.contains(&d.intent),
            "{}: permitted must include the rule",
            c.name
        );
    }
}

#[test]
fn observations_closer_than_the_gap_count_once() {
    let r = run(RunStatus::Running, vec![agent("a", Health::Dead)]);
    let d1 = decide(&r, &OpState::default(), &policy(), NOW);
    assert_eq!(d1.state.unhealthy_streak, 1);
    let d2 = decide(&r, &d1.state, &policy(), NOW + 1);
    assert_eq!(d2.state.unhealthy_streak, 1, "inside the gap");
    assert_eq!(d2.intent, Intent::Noop);
    let d3 = decide(&r, &d2.state, &policy(), NOW + 5);
    assert_eq!(d3.state.unhealthy_streak, 2);
    assert_eq!(d3.intent, Intent::AutoRestart);
}

#[test]
fn healthy_resets_streak_and_later_the_budget() {
    let r = run(RunStatus::Running, vec![agent("a", Health::Healthy)]);
    let s = OpState {
        restart_attempts: 2,
        ..streak(1)
    };
    let d = decide(&r, &s, &policy(), NOW);
    assert_eq!((d.state.unhealthy_streak, d.state.restart_attempts), (0, 2));
    assert_eq!(d.state.healthy_since, Some(NOW));
    let d = decide(&r, &d.state, &policy(), NOW + 599);
    assert_eq!(d.state.restart_attempts, 2);
    let d = decide(&r, &d.state, &policy(), NOW + 600);
    assert_eq!(d.state.restart_attempts, 0);
    assert_eq!(d.notes.len(), 1);
}

#[test]
fn cooldown_ladder_doubles_and_caps() {
    let p = policy();
    let ladder: Vec<i64> = (1..=6).map(|n| cooldown_for(n, &p)).collect();
    assert_eq!(ladder, vec![60, 120, 240, 480, 900, 900]);
    let s = after_restart(
        &OpState {
            restart_attempts: 1,
            unhealthy_streak: 2,
            ..Default::default()
        },
        NOW,
        &p,
    );
    assert_eq!(
        (s.restart_attempts, s.cooldown_until, s.unhealthy_streak),
        (2, Some(NOW + 120), 0)
    );
}

#[test]
fn stable_text_drops_measurements_not_names() {
    assert_eq!(stable_text("agent w1 asks: x"), "agent w1 asks: x");
    assert_ne!(stable_text("agent w1 asks"), stable_text("agent w2 asks"));
    assert_eq!(
        stable_text("no recent activity (activity_age=61s, threshold=4s)"),
        stable_text("no recent activity (activity_age=5s, threshold=4s)")
    );
    assert_eq!(
        stable_text("restart budget exhausted (3/3) run-42"),
        "restart budget exhausted (/) run-42"
    );
}

/// `stable_text` as it was written before it became a filter (`Stable`).
fn stable_text_char_by_char(s: &str) -> String {
    let mut out = String::new();
    let mut prev: Option<char> = None;
    let mut dropping = false;
    for c in s.chars() {
        if c.is_ascii_digit() {
            if !dropping {
                let in_name = prev.is_some_and(|p| p.is_alphanumeric() || p == '-' || p == '_');
                dropping = !in_name;
            }
            if !dropping {
                out.push(c);
            }
        } else {
            dropping = false;
            out.push(c);
        }
        prev = Some(c);
    }
    out
}

#[test]
fn stable_text_filters_a_stream_however_it_is_split() {
    use std::fmt::Write as _;
    let texts = [
        "",
        "no deterministic action required",
        "agent w1 asks: x",
        "no recent activity (activity_age=61s, threshold=4s)",
        "restart budget exhausted (3/3) run-42",
        "42 at the start, é9 ü 7 _8 -9 a9b 10",
        "ümlaut9 x 9",
    ];
    for t in texts {
        let want = stable_text_char_by_char(t);
        assert_eq!(stable_text(t), want, "{t:?}");
        let cuts: Vec<usize> = (0..=t.len()).filter(|i| t.is_char_boundary(*i)).collect();
        for &a in &cuts {
            for &b in cuts.iter().filter(|b| **b >= a) {
                let mut whole = String::new();
                let mut w2 = Stable::new(&mut whole);
                write!(w2, "{t}").expect("a String takes any text");
                assert_eq!(whole, want, "{t:?}");
                let mut got = String::new();
                let mut w3 = Stable::new(&mut got);
                for part in [&t[..a], &t[a..b], &t[b..]] {
                    w3.write_str(part).expect("a String takes any text");
                }
                assert_eq!(got, want, "{t:?} cut at {a}, {b}");
            }
        }
    }
}

#[test]
fn alerts_are_deduplicated_per_intent_and_reason() {
    let mut s = OpState::default();
    assert!(take_alert(
        &mut s,
        Intent::EscalateBlocked,
        "x",
        false,
        true,
        NOW
    ));
    assert!(!take_alert(
        &mut s,
        Intent::EscalateBlocked,
        "x",
        false,
        true,
        NOW + 1
    ));
    // Same situation, older: ages in the reason do not make a new alert.
    let stalled = |age: i64| format!("budget exhausted (1/1); a: no activity (age={age}s)");
    let mut t = OpState::default();
    assert!(take_alert(
        &mut t,
        Intent::EscalateBlocked,
        &stalled(5),
        false,
        true,
        NOW
    ));
    assert!(!take_alert(
        &mut t,
        Intent::EscalateBlocked,
        &stalled(6),
        false,
        true,
        NOW + 1
    ));
    assert!(!take_alert(
        &mut t,
        Intent::EscalateBlocked,
        &stalled(61),
        false,
        true,
        NOW + 56
    ));
    assert_eq!(t.last_alert_at, Some(NOW));
    assert!(take_alert(
        &mut s,
        Intent::EscalateBlocked,
        "y",
        false,
        true,
        NOW + 2
    ));
    // An executed restart is routine; one that will not execute is worth an alert.
    assert!(!take_alert(
        &mut s,
        Intent::AutoRestart,
        "z",
        true,
        true,
        NOW + 3
    ));
    assert!(take_alert(
        &mut s,
        Intent::AutoRestart,
        "z",
        false,
        true,
        NOW + 3
    ));
    assert!(!take_alert(
        &mut s,
        Intent::AutoRestart,
        "z",
        false,
        true,
        NOW + 4
    ));
    // A noop without evidence (tmux unknown) does not end the episode; with it, it does.
    assert!(!take_alert(
        &mut s,
        Intent::Noop,
        "tmux unreachable",
        false,
        false,
        NOW + 5
    ));
    assert!(!take_alert(
        &mut s,
        Intent::AutoRestart,
        "z",
        false,
        true,
        NOW + 6
    ));
    assert!(!take_alert(
        &mut s,
        Intent::Noop,
        "fine",
        false,
        true,
        NOW + 7
    ));
    assert!(take_alert(
        &mut s,
        Intent::AutoRestart,
        "z",
        false,
        true,
        NOW + 8
    ));
}
