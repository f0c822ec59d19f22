//! The tick's decisions beyond `decide`: the hold for the LLM, alert and log dedup, the
//! LLM fingerprint, and what the record writes. Inputs built by hand, no I/O.

use super::*;
use crate::model::{Health, Intent, Observation, RunStatus};

use crate::model::panes::Snapshot;
use crate::model::rows::{CallState, LlmCall};
use crate::tick::observe::{Calls, SignalFiles};
use std::collections::HashMap;

const NOW: i64 = 1_000_000;

fn run_row(status: RunStatus) -> RunRow {
    RunRow {
        id: "r1".into(),
        tickets: vec!["T-1".into()],
        workspace: "/nonexistent".into(),
        doc_home_repo: None,
        ticket_dir: None,
        tmux_socket: None,
        policy_path: None,
        orphaned: None,
        tmux_server: None,
        status,
        message: String::new(),
        created_at: NOW - 100,
        updated_at: NOW - 100,
        status_changed_at: NOW - 100,
    }
}

fn agent_row(name: &str) -> AgentRow {
    AgentRow {
        run_id: "r1".into(),
        name: name.into(),
        session: format!("s-{name}"),
        argv: vec!["sleep".into(), "1000".into()],
        workdir: "/nonexistent".into(),
        status: "running".into(),
        health: Health::Healthy,
        last_activity_at: Some(NOW - 10),
        last_progress_at: Some(NOW - 10),
        exit_status: None,
        exit_signal: None,
        pane_id: None,
        started_at: NOW - 100,
        signal: None,
        signal_at: None,
        adopted: false,
        keep_dead_pane: true,
        resume: Default::default(),
    }
}

/// One run whose agent's session is gone (dead), with this operator state.
fn input(status: RunStatus, prev: OpState) -> TickInput {
    TickInput {
        status_rows: None,
        status_gen: None,
        servers: Vec::new(),
        runs: vec![RunInput {
            run: run_row(status),
            agents: vec![agent_row("a")],
            prev,
            recorded_guidance: None,
            screen_questions: Vec::new(),
            pending_count: 0,
            approval: None,
            withdrawn: Vec::new(),
            unasked: Vec::new(),
            new_questions: Vec::new(),
            files: SignalFiles::default(),
            kinds: Vec::new(),
        }],
        obs: Observation::Known(Snapshot::default()),
        tmux_error: None,
        calls: Calls {
            rows: Default::default(),
            live: 0,
            alive: Default::default(),
            answers: Default::default(),
        },
        screens: HashMap::new(),
        markers: HashMap::new(),
        policies: HashMap::new(),
        policy_errors: HashMap::new(),
        clock_hold: None,
    }
}

/// A dead agent seen long enough: the rules restart it.
fn corroborated() -> OpState {
    OpState {
        unhealthy_streak: 99,
        ..Default::default()
    }
}

fn one(input: &TickInput, mode: LlmMode, dry_run: bool, now: i64) -> Planned<'_> {
    plan(input, &Policy::default(), Some(mode), dry_run, now)
        .pop()
        .expect("one plan")
}

#[test]
fn hold_for_the_llm_table() {
    let in_flight_elsewhere = |live| {
        let mut i = input(RunStatus::Running, corroborated());
        i.calls.live = live;
        i
    };
    type Row = (&'static str, TickInput, LlmMode, bool, bool, Option<Action>);
    let rows: Vec<Row> = vec![
        // (case, input, mode, dry run, held, action)
        (
            "auto: the restart waits for the LLM's answer",
            input(RunStatus::Running, corroborated()),
            LlmMode::Auto,
            false,
            true,
            None,
        ),
        (
            "auto, every worker slot busy elsewhere: no hold that could never end",
            in_flight_elsewhere(MAX_LLM_IN_FLIGHT),
            LlmMode::Auto,
            false,
            false,
            Some(Action::Restart),
        ),
        (
            "auto, one slot left: held",
            in_flight_elsewhere(MAX_LLM_IN_FLIGHT - 1),
            LlmMode::Auto,
            false,
            true,
            None,
        ),
        (
            "off: the rule acts",
            input(RunStatus::Running, corroborated()),
            LlmMode::Off,
            false,
            false,
            Some(Action::Restart),
        ),
        (
            "assist: never executes, never holds",
            input(RunStatus::Running, corroborated()),
            LlmMode::Assist,
            false,
            false,
            None,
        ),
        (
            "dry run: nothing would ask, so nothing waits",
            input(RunStatus::Running, corroborated()),
            LlmMode::Auto,
            true,
            false,
            Some(Action::Restart),
        ),
    ];
    for (case, i, mode, dry, held, action) in rows {
        let p = one(&i, mode, dry, NOW);
        assert_eq!(p.decision.intent, Intent::AutoRestart, "{case}");
        assert_eq!(p.gated.held, held, "{case}");
        assert_eq!(p.action, action, "{case}");
        // The attempt is counted (written before tmux runs) exactly when the restart runs.
        let attempts = p.state_after().restart_attempts;
        assert_eq!(attempts, i64::from(action.is_some()), "{case}");
    }
}

#[test]
fn an_answer_on_an_earlier_decision_does_not_end_the_hold() {
    let mut i = input(RunStatus::Running, corroborated());
    let fp = one(&i, LlmMode::Auto, false, NOW).fingerprint;
    let call = |fingerprint: &str, state: CallState| LlmCall {
        run_id: "r1".into(),
        fingerprint: fingerprint.into(),
        state,
        pid: None,
        started_at: NOW - 5,
        finished_at: Some(NOW - 1),
        proposal: None,
        error: Some("boom".into()),
        request: String::new(),
        reaped: false,
        unstarted: false,
    };
    i.calls
        .rows
        .insert("r1".into(), call("older", CallState::Error));
    assert!(one(&i, LlmMode::Auto, false, NOW).gated.held);
    // An error about this very decision is an answer: the rule acts.
    i.calls
        .rows
        .insert("r1".into(), call(&fp, CallState::Error));
    let p = one(&i, LlmMode::Auto, false, NOW);
    assert!(!p.gated.held);
    assert_eq!(p.action, Some(Action::Restart));
}

#[test]
fn an_answer_counts_only_on_the_decision_it_was_asked_about() {
    let mut i = input(RunStatus::Running, corroborated());
    let fp = one(&i, LlmMode::Auto, false, NOW).fingerprint;
    let done = |fingerprint: &str| LlmCall {
        run_id: "r1".into(),
        fingerprint: fingerprint.into(),
        state: CallState::Done,
        pid: None,
        started_at: NOW - 5,
        finished_at: Some(NOW - 1),
        proposal: None,
        error: None,
        request: String::new(),
        reaped: false,
        unstarted: false,
    };
    // The answers arrive parsed (observe.rs): a confident veto of the restart.
    i.calls.answers.insert(
        "r1".into(),
        crate::model::Proposal {
            intent: Intent::Noop,
            target_run: "r1".into(),
            reason: "the agent is fine".into(),
            confidence: 0.99,
            needs_human: false,
        },
    );
    // An answer about another situation is no answer: the action waits for one.
    i.calls.rows.insert("r1".into(), done("older"));
    let p = one(&i, LlmMode::Auto, false, NOW);
    assert!(p.gated.held);
    assert_eq!(p.action, None);
    // On this very decision it is weighed (the gate's own table says how).
    i.calls.rows.insert("r1".into(), done(&fp));
    let p = one(&i, LlmMode::Auto, false, NOW);
    assert!(!p.gated.held);
    let note = p.gated.llm_note.unwrap_or_default();
    assert!(note.starts_with("llm_suggested=noop"), "{note}");
}

#[test]
fn alerts_and_decision_events_once_per_episode() {
    // Out of restarts: escalate_blocked, a human must hear it — once.
    let exhausted = OpState {
        restart_attempts: 3,
        ..corroborated()
    };
    let exhausted = input(RunStatus::Running, exhausted);
    let first = one(&exhausted, LlmMode::Off, false, NOW);
    assert_eq!(first.decision.intent, Intent::EscalateBlocked);
    assert!(first.alert && first.log_decision);
    let again = first.new_state.clone().expect("alert recorded");
    for later in [NOW + 1, NOW + 61, NOW + 600] {
        let i = input(RunStatus::Running, again.clone());
        let p = one(&i, LlmMode::Off, false, later);
        assert_eq!(p.decision.intent, Intent::EscalateBlocked);
        assert!(!p.alert, "ages in the reason are not a new situation");
        assert!(!p.log_decision, "the same decision is logged once");
    }
    // tmux unknown is no evidence: the episode does not end, nothing is news.
    let mut unknown = input(RunStatus::Running, again.clone());
    unknown.obs = Observation::Unknown("no server".into());
    unknown.tmux_error = Some("no server".into());
    let p = one(&unknown, LlmMode::Off, false, NOW + 5);
    assert!(!p.alert);
    assert!(p.agent_changes.is_empty(), "unknown never rewrites agents");
    assert_eq!(p.action, None);
    assert_eq!(
        p.state_after().last_alert,
        again.last_alert,
        "an unknown tick keeps the episode"
    );
}

#[test]
fn fingerprint_names_the_situation_not_the_clock() {
    let base = input(RunStatus::Running, OpState::default());
    let fp = |i: &TickInput, now| one(i, LlmMode::Off, false, now).fingerprint;
    assert_eq!(fp(&base, NOW), fp(&base, NOW + 30));
    let ask = |q: &str| {
        let mut i = input(RunStatus::Running, OpState::default());
        i.runs[0].recorded_guidance = Some(PendingGuidance {
            agent: "a".into(),
            question: q.into(),
            context: String::new(),
            at_prompt: false,
        });
        i
    };
    assert_ne!(fp(&ask("which db?"), NOW), fp(&ask("which port?"), NOW));
    assert_eq!(fp(&ask("which db?"), NOW), fp(&ask("which db?"), NOW + 9));
    assert_ne!(fp(&base, NOW), fp(&ask("which db?"), NOW));
}

#[test]
fn what_the_record_writes() {
    // A new guidance file: the run waits for a human, the agent change is recorded.
    let mut i = input(RunStatus::Running, OpState::default());
    i.runs[0].files.new_guidance.push((
        PathBuf::from("/ws"),
        GuidanceRequest {
            run_id: Some("r1".into()),
            agent: Some("a".into()),
            question: "which db?".into(),
            context: String::new(),
        },
    ));
    let p = one(&i, LlmMode::Off, false, NOW);
    assert!(p.to_awaiting && !p.to_completed && !p.to_stopping);
    assert_eq!(p.status_after, RunStatus::AwaitingGuidance);
    assert_eq!(p.decision.intent, Intent::EscalateGuidance);
    let change = &p.agent_changes[0];
    assert_eq!(change.update.health, Health::Dead);
    assert_eq!(change.health.as_ref().map(|h| h.0), Some(Health::Healthy));

    // Bad signal files already in the log are not logged again.
    let mut i = input(RunStatus::Running, OpState::default());
    i.runs[0].files.bad_files = vec![
        BadFile {
            message: "/ws/a.json: bad".into(),
            logged: true,
        },
        BadFile {
            message: "/ws/b.json: bad".into(),
            logged: false,
        },
    ];
    assert_eq!(
        one(&i, LlmMode::Off, false, NOW).bad_files,
        vec!["/ws/b.json: bad".to_string()]
    );

    // A run left stopping (a crash mid-stop) is finished: stop, then stopped if it worked.
    let stopping = input(RunStatus::Stopping, OpState::default());
    let p = one(&stopping, LlmMode::Off, false, NOW);
    assert_eq!(p.action, Some(Action::Stop));
    assert_eq!(p.status_after_action(true), RunStatus::Stopped);
    assert_eq!(p.status_after_action(false), RunStatus::Stopping);
    assert_eq!(p.targets().count(), 1);
}

#[test]
fn a_fresh_start_after_a_clock_step_acts_on_nothing() {
    let mut i = input(RunStatus::Running, corroborated());
    i.clock_hold = Some("clock stepped back 60s".into());
    let p = one(&i, LlmMode::Off, false, NOW);
    assert_eq!(p.decision.intent, Intent::Noop);
    assert_eq!(p.action, None);
    assert!(!p.alert);
    assert!(
        p.decision.reason.to_string().contains("held auto_restart"),
        "{}",
        p.decision.reason
    );
    // The next, steady observation acts.
    i.clock_hold = None;
    assert_eq!(
        one(&i, LlmMode::Off, false, NOW).action,
        Some(Action::Restart)
    );
}
