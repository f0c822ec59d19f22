//! The tick's decisions, without I/O: from what `observe` read, the policy and the time,
//! each run's plan: health judgements, the rule decision, the LLM gate, the new operator
//! state, whether to alert and whether to log. `apply` and `ask` only carry it out.

use super::observe::{BadFile, RunInput, TickInput};
use crate::decide::{self, AgentView, Decision, PendingGuidance, RunView};
use crate::gate::{self, Gated};
use crate::health::{self, Judgement, Prior, Thresholds};
use crate::model::rows::{AgentRow, AgentUpdate, ApprovalRow, OpState, RunRow};
use crate::model::{AgentSignal, Health, Intent, Observation, Proposal, RunStatus, SessionState};
use crate::policy::{LlmMode, OnComplete, Policy};
use crate::screen::{self, Reading};
use crate::signals;
use std::path::PathBuf;

/// At most this many LLM workers run at once, whatever the number of runs.
pub const MAX_LLM_IN_FLIGHT: usize = 4;

/// What this tick does with the run's assist-mode approval.
#[derive(Debug, Clone, PartialEq)]
pub enum ApprovalChange {
    Keep,
    /// A new (or changed) action held for a human.
    Request(ApprovalRow),
    /// No longer wanted (healed, changed, or executed): why.
    Clear(&'static str),
}

/// Everything one run's tick does, decided before anything is done: `apply` writes and
/// acts from this alone and never reads the state back.
pub struct Planned {
    /// The action is held for a human's `approve` (assist mode).
    pub awaiting_approval: bool,
    pub approval: ApprovalChange,
    pub run: RunRow,
    pub agents: Vec<AgentRow>,
    pub judgements: Vec<Judgement>,
    /// Agent rows to rewrite and health changes to log (none when tmux is unknown).
    pub agent_changes: Vec<AgentChange>,
    pub new_guidance: Vec<(PathBuf, signals::GuidanceRequest)>,
    /// Questions agents that report `waiting` ask (answered by typing into the pane).
    pub new_questions: Vec<crate::question::NewQuestion>,
    /// Such questions whose agent moved on.
    pub withdrawn: Vec<i64>,
    /// Bad signal files not yet in the log.
    pub bad_files: Vec<String>,
    /// A new guidance request moves the running run to awaiting_guidance.
    pub to_awaiting: bool,
    /// The last pending question was a screen dialog that is gone: running again.
    pub back_to_running: bool,
    /// Every agent finished and signalled: the run is completed.
    pub to_completed: bool,
    /// The stale-run stop executes: the run is stopping.
    pub to_stopping: bool,
    /// The run's status once this tick's record is written.
    pub status_after: RunStatus,
    /// The tmux action: which agents' sessions to kill, and whether to start them again.
    pub action: Option<Action>,
    /// The operator state to write when it changed (restart attempt counted).
    pub new_state: Option<OpState>,
    pub pending: Option<PendingGuidance>,
    /// A dialog read from an agent's screen, to record as a pending question.
    pub screen_question: Option<PendingGuidance>,
    /// Screen questions whose dialog is gone.
    pub resolved_questions: Vec<i64>,
    pub decision: Decision,
    pub gated: Gated,
    pub state: OpState,
    pub alert: bool,
    /// The intent the alert speaks for (a vetoed action, not the LLM's noop).
    pub alert_intent: Intent,
    pub log_decision: bool,
    pub fingerprint: String,
    pub prev_state: OpState,
    /// The policy that judged this run and its LLM mode.
    pub policy: std::rc::Rc<Policy>,
    pub mode: LlmMode,
    /// Dry run: what the rules will do once corroboration completes.
    pub preview: Option<String>,
}

fn thresholds(p: &Policy) -> Thresholds {
    Thresholds {
        idle_seconds: p.health.idle_seconds,
        activity_stalled_seconds: p.health.activity_stalled_seconds,
        progress_stalled_seconds: p.health.progress_stalled_seconds,
    }
}

fn fnv(s: &str) -> String {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in s.bytes() {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    format!("{h:016x}")
}

fn signal_guidance(agents: &[AgentRow], judgements: &[Judgement]) -> Option<PendingGuidance> {
    agents
        .iter()
        .zip(judgements)
        .find(|(a, j)| a.signal == Some(AgentSignal::Waiting) && j.alive)
        .map(|(a, _)| PendingGuidance {
            agent: a.name.clone(),
            question: "(waiting for input at its prompt)".into(),
            context: String::new(),
            at_prompt: true,
        })
}

fn judge(a: &AgentRow, obs: &Observation, th: &Thresholds, now: i64) -> Judgement {
    let prior = Prior {
        last_activity_at: a.last_activity_at,
        last_progress_at: a.last_progress_at,
        started_at: a.started_at,
        signal: a.signal,
        exit_status: a.exit_status,
        exit_signal: a.exit_signal,
        health: Some(a.health),
    };
    health::judge(obs.agent(a), &prior, now, th)
}

/// Whether an interactive agent's screen is worth reading this tick: it is alive and
/// quiet, or its title (from the observation) says a dialog waits — Codex blinks its
/// title at an approval dialog, so such a pane is never quiet. A busy pane is not read.
fn worth_reading(
    a: &AgentRow,
    kind: &str,
    j: &Judgement,
    obs: &Observation,
    pats: &[&screen::Pattern],
) -> bool {
    if health::wants_screen(j) {
        return true;
    }
    let title = match obs.agent(a) {
        SessionState::Present(panes) => panes
            .iter()
            .find(|p| !p.dead)
            .map(|p| p.title.as_str())
            .unwrap_or(""),
        _ => "",
    };
    j.alive && screen::title_says(kind, title, pats) == Some(screen::ScreenState::Waiting)
}

/// The panes whose screens this tick reads: live interactive agents of active runs that
/// are quiet or show a dialog in their title, never a busy one. (run id, agent name,
/// pane) — read all in one tmux spawn.
pub fn screens_to_read(
    input: &TickInput,
    policy: &Policy,
    now: i64,
) -> Vec<(String, String, screen::Target)> {
    let th = thresholds(policy);
    let pats = screen::patterns(&policy.health.screen_patterns);
    let pats: Vec<&screen::Pattern> = pats.iter().filter(|p| p.title).collect();
    let mut out = Vec::new();
    for r in &input.runs {
        if !r.run.status.is_active() {
            continue;
        }
        for a in &r.agents {
            let Some(kind) = screen::interactive_kind(&a.argv, a.adopted) else {
                continue;
            };
            let j = judge(a, &input.obs, &th, now);
            if !worth_reading(a, kind, &j, &input.obs, &pats) {
                continue;
            }
            let target = j
                .pane_id
                .as_deref()
                .and_then(screen::Target::pane)
                .unwrap_or_else(|| screen::Target::session(&a.session));
            out.push((r.run.id.clone(), a.name.clone(), target));
        }
    }
    out
}

#[derive(Debug, Clone, PartialEq)]
pub struct AgentChange {
    pub name: String,
    pub update: Option<AgentUpdate>,
    /// (from, to as shown, why) when the health changed.
    pub health: Option<(Health, &'static str, String)>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    Restart,
    Stop,
}

impl Planned {
    /// The operator state after this tick (what `new_state` writes, or what was there).
    pub fn state_after(&self) -> &OpState {
        self.new_state.as_ref().unwrap_or(&self.prev_state)
    }

    /// The run's status after the action, given whether it succeeded.
    pub fn status_after_action(&self, ok: bool) -> RunStatus {
        if ok && self.action == Some(Action::Stop) && self.status_after == RunStatus::Stopping {
            RunStatus::Stopped
        } else {
            self.status_after
        }
    }

    /// The agents the action targets (every agent for a stop).
    pub fn targets(&self) -> impl Iterator<Item = &AgentRow> {
        let stop = self.action == Some(Action::Stop);
        self.agents
            .iter()
            .filter(move |a| stop || self.decision.targets.contains(&a.name))
    }
}

fn agent_changes(agents: &[AgentRow], judgements: &[Judgement]) -> Vec<AgentChange> {
    agents
        .iter()
        .zip(judgements)
        .filter(|(a, _)| a.status != "stopped")
        .map(|(a, j)| {
            let u = AgentUpdate {
                status: j.status.to_string(),
                health: j.health,
                last_activity_at: j.last_activity_at,
                last_progress_at: j.last_progress_at,
                exit_status: j.exit_status,
                exit_signal: j.exit_signal,
                pane_id: j.pane_id.clone(),
            };
            let changed = a.status != u.status
                || a.health != u.health
                || a.last_activity_at != u.last_activity_at
                || a.exit_status != u.exit_status
                || a.pane_id != u.pane_id;
            AgentChange {
                name: a.name.clone(),
                update: changed.then_some(u),
                health: (a.health != j.health).then(|| {
                    (
                        a.health,
                        health::shown_state(j.health, a.signal),
                        j.reason.clone(),
                    )
                }),
            }
        })
        .collect()
}

/// `global` judges runs without a policy of their own; `mode` overrides every run's.
pub fn plan(
    input: &TickInput,
    global: &Policy,
    mode: Option<LlmMode>,
    dry_run: bool,
    now: i64,
) -> Vec<Planned> {
    let global = std::rc::Rc::new(global.clone());
    input
        .runs
        .iter()
        .map(|r| {
            let policy = input
                .policies
                .get(&r.run.id)
                .cloned()
                .unwrap_or_else(|| global.clone());
            let th = thresholds(&policy);
            let mode = mode.unwrap_or(policy.operator.llm.mode);
            plan_run(r, input, &th, policy, mode, dry_run, now)
        })
        .collect()
}

#[allow(clippy::too_many_arguments)]
fn plan_run(
    r: &RunInput,
    input: &TickInput,
    th: &Thresholds,
    shared: std::rc::Rc<Policy>,
    mode: LlmMode,
    dry_run: bool,
    now: i64,
) -> Planned {
    let policy: &Policy = &shared;
    let run = r.run.clone();
    let agents = r.agents.clone();
    let prev = r.prev.clone();
    let obs = &input.obs;
    let tmux_error = &input.tmux_error;
    let calls = &input.calls;
    // Quiet interactive agents are judged again from their screens (read in `mod.rs`).
    let interactive = agents
        .iter()
        .any(|a| screen::interactive_kind(&a.argv, a.adopted).is_some());
    let pats = if interactive {
        screen::patterns(&policy.health.screen_patterns)
    } else {
        Vec::new()
    };
    let pats: Vec<&screen::Pattern> = pats.iter().collect();
    let readings: Vec<Option<Reading>> = agents
        .iter()
        .map(|a| {
            let kind = screen::interactive_kind(&a.argv, a.adopted)?;
            let s = input.screens.get(&(run.id.clone(), a.name.clone()))?;
            Some(screen::classify(kind, &s.text, &s.title, &pats))
        })
        .collect();
    // Agents whose screens this tick meant to read (a question from a screen stays open
    // only while its agent is one of them).
    let watched: Vec<bool> = agents
        .iter()
        .map(|a| {
            screen::interactive_kind(&a.argv, a.adopted)
                .is_some_and(|kind| worth_reading(a, kind, &judge(a, obs, th, now), obs, &pats))
        })
        .collect();
    let judgements: Vec<Judgement> = agents
        .iter()
        .zip(&readings)
        .map(|(a, reading)| {
            let mut j = judge(a, obs, th, now);
            // The original metawsm's wrapper keeps a shell: its exit marker tells.
            if let Some(&status) = input.markers.get(&a.session) {
                crate::original::judge_marker(&mut j, status);
                return j;
            }
            match reading {
                Some(r) => health::with_screen(j, r, now),
                None => j,
            }
        })
        .collect();

    let new_guidance = r.files.new_guidance.clone();
    let bad_files = r
        .files
        .bad_files
        .iter()
        .filter(|b| !b.logged)
        .map(|b: &BadFile| b.message.clone())
        .collect();
    let completions = &r.files.completions;
    // Questions read from screens close when their dialog is gone (tmux must be known).
    let resolved_questions: Vec<i64> = if tmux_error.is_some() {
        Vec::new()
    } else {
        r.screen_questions
            .iter()
            .filter(|(_, agent, question)| {
                let i = agents.iter().position(|a| &a.name == agent);
                let open = i.is_some_and(|i| {
                    decide::pane_question_open(
                        judgements[i].alive,
                        watched[i],
                        readings[i].as_ref(),
                        question,
                    )
                });
                !open
            })
            .map(|(id, _, _)| *id)
            .collect()
    };
    let recorded = r.recorded_guidance.clone().filter(|g| {
        !r.screen_questions
            .iter()
            .any(|(id, a, q)| resolved_questions.contains(id) && *a == g.agent && *q == g.question)
    });
    let from_screen = agents
        .iter()
        .zip(&readings)
        .zip(&judgements)
        .find_map(|((a, r), j)| {
            let quiet = now - j.last_activity_at.unwrap_or(a.started_at);
            decide::screen_question(&a.name, r.as_ref()?, quiet, policy)
        });
    // A dialog's text is recorded, so `guide` can answer it; a prompt is only described.
    let screen_question = from_screen.clone().filter(|g| !g.at_prompt);
    let pending = recorded
        .or_else(|| {
            new_guidance.first().map(|(_, g)| PendingGuidance {
                agent: g.agent.clone().unwrap_or_default(),
                question: g.question.clone(),
                context: g.context.clone(),
                at_prompt: false,
            })
        })
        .or_else(|| {
            r.new_questions.first().map(|q| PendingGuidance {
                agent: q.agent.clone(),
                question: q.question.clone(),
                context: q.context.clone(),
                at_prompt: false,
            })
        })
        .or_else(|| signal_guidance(&agents, &judgements))
        .or(from_screen);

    let view = RunView {
        id: run.id.clone(),
        status: run.status,
        status_changed_at: run.status_changed_at,
        agents: agents
            .iter()
            .zip(&judgements)
            .zip(&readings)
            .map(|((a, j), reading)| AgentView {
                name: a.name.clone(),
                health: j.health,
                alive: j.alive,
                exit_status: j.exit_status,
                last_activity_at: j.last_activity_at,
                stored_activity_at: a.last_activity_at,
                reason: j.reason.clone(),
                reported_done: a.signal == Some(AgentSignal::Done),
                interactive: screen::interactive_kind(&a.argv, a.adopted).map(|_| {
                    decide::Interactive {
                        hook_busy: a.signal == Some(AgentSignal::Working),
                        screen: reading.as_ref().map(|r| r.state),
                    }
                }),
                restartable: !a.argv.is_empty(),
                complete: completions
                    .iter()
                    .any(|c| c.agent.as_deref().is_none_or(|n| n == a.name)),
            })
            .collect(),
        guidance: pending.clone(),
        tmux_unknown: tmux_error.clone(),
    };
    let decision = crate::clock::hold(
        decide::decide(&view, &prev, policy, now),
        input.clock_hold.as_deref(),
    );
    let preview = if dry_run {
        decide::preview(&view, &prev, policy, now).map(|(intent, n)| {
            format!(
                "would {intent} after {n} more unhealthy observation{}",
                if n == 1 { "" } else { "s" }
            )
        })
    } else {
        None
    };
    let fingerprint = fnv(&format!(
        "{}|{}|{}|{}|{}",
        run.status,
        view.agents
            .iter()
            .map(|a| {
                // healthy↔idle flips are not worth a new LLM call.
                let h = if a.health == Health::Idle {
                    Health::Healthy
                } else {
                    a.health
                };
                format!("{}={}", a.name, h)
            })
            .collect::<Vec<_>>()
            .join(","),
        decision.intent,
        decide::stable_text(&decision.reason.to_string()),
        pending.as_ref().map(|g| g.question.as_str()).unwrap_or("")
    ));
    let call = calls.rows.get(&run.id);
    let proposal = call
        .filter(|c| c.state == "done" && c.fingerprint == fingerprint)
        .and_then(|c| c.proposal.as_deref())
        .and_then(Proposal::from_stored);
    // In auto mode an action waits (never the tick) for the LLM's answer on it — but
    // only if a worker slot can take the question (else the hold would never end).
    let own_in_flight = call.is_some_and(|c| c.state == "in_flight");
    let llm_pending = mode == LlmMode::Auto
        && (own_in_flight || calls.live < MAX_LLM_IN_FLIGHT)
        && !dry_run
        && decision.execute
        && gate::askable(run.status, &decision.reason)
        && gate::llm_pending(
            call.map(|c| gate::CallView {
                fingerprint: &c.fingerprint,
                state: &c.state,
                started_at: c.started_at,
                worker_alive: c.state == "in_flight" && calls.worker_alive(&run.id),
            }),
            &fingerprint,
            now,
            &policy.operator.llm,
        );
    let gated = gate::gate(
        &decision,
        &run.id,
        mode,
        proposal.as_ref(),
        llm_pending,
        policy.operator.llm.min_confidence,
    );
    // Assist mode holds the rules' action for a human: a pending approval, unless the
    // human dismissed this very situation in this episode.
    let situation = format!(
        "{}:{}",
        decision.intent,
        decide::stable_text(&decision.reason.to_string())
    );
    let held = mode == LlmMode::Assist && decision.execute && !gated.execute;
    let dismissed = r
        .approval
        .as_ref()
        .is_some_and(|a| a.status == "dismissed" && a.situation == situation);
    let awaiting_approval = held && !dismissed;
    let approval = match &r.approval {
        _ if awaiting_approval => match &r.approval {
            Some(a) if a.status == "pending" && a.situation == situation => ApprovalChange::Keep,
            _ => ApprovalChange::Request(ApprovalRow {
                run_id: run.id.clone(),
                intent: decision.intent.to_string(),
                targets: decision.targets.clone(),
                reason: decision.reason.to_string(),
                situation,
                status: "pending".into(),
                created_at: now,
            }),
        },
        Some(_) if gated.execute => ApprovalChange::Clear("executed"),
        Some(_) if !decision.execute && tmux_error.is_none() => {
            ApprovalChange::Clear("no longer wanted")
        }
        _ => ApprovalChange::Keep,
    };
    let mut state = decision.state.clone();
    // An LLM veto of a rule action is something a human must hear about (once per
    // episode); a held action is not news yet.
    let alert_intent =
        if gated.source == "llm" && gated.intent == Intent::Noop && decision.intent.is_action() {
            decision.intent
        } else {
            gated.intent
        };
    let alert = decide::take_alert(
        &mut state,
        alert_intent,
        &gated.reason,
        gated.execute || gated.held,
        // A held tick is no evidence that an episode ended.
        tmux_error.is_none() && input.clock_hold.is_none(),
        now,
    );
    let decision_fp = format!(
        "{}:{}:{}",
        gated.intent,
        gated.source,
        decide::stable_text(&gated.reason)
    );
    // An LLM override is always worth an event, a veto to noop included.
    let quiet = gated.intent == Intent::Noop && gated.source != "llm";
    let log_decision = !quiet
        && (alert || gated.execute || state.last_decision.as_deref() != Some(decision_fp.as_str()));
    state.last_decision = if quiet { None } else { Some(decision_fp) };

    // What the record writes: transitions in this order, each only from where it may.
    // (The rules never complete and stop a run in the same tick.)
    let asks = !new_guidance.is_empty() || screen_question.is_some();
    let to_awaiting = asks && run.status == RunStatus::Running;
    let mut status = if to_awaiting {
        RunStatus::AwaitingGuidance
    } else {
        run.status
    };
    // Screen questions resolved and nothing else pending (a new question is pending
    // whether it was inserted now or already there): the run goes back to running.
    let back_to_running = !resolved_questions.is_empty()
        && status == RunStatus::AwaitingGuidance
        && !asks
        && r.pending_count <= resolved_questions.len();
    if back_to_running {
        status = RunStatus::Running;
    }
    let to_completed = decision.complete && status == RunStatus::Running;
    let to_stopping = gated.execute
        && gated.intent == Intent::AutoStopStale
        && status.can_transition(RunStatus::Stopping);
    let status_after = if to_stopping {
        RunStatus::Stopping
    } else if to_completed {
        RunStatus::Completed
    } else {
        status
    };
    let restart = gated.execute && gated.intent == Intent::AutoRestart;
    // The attempt counts before tmux runs: a crash mid-restart still spends budget.
    let final_state = if restart {
        decide::after_restart(&state, now, policy)
    } else {
        state.clone()
    };
    // Actions need a known observation (what to kill); a run left stopping is finished.
    let action = if tmux_error.is_some() {
        None
    } else if restart {
        Some(Action::Restart)
    } else if (gated.execute && gated.intent == Intent::AutoStopStale)
        || run.status == RunStatus::Stopping
        // operator.on_complete = stop: a completion file ends the still-live agents too.
        || (decision.complete
            && run.status == RunStatus::Running
            && policy.operator.on_complete == OnComplete::Stop)
    {
        Some(Action::Stop)
    } else {
        None
    };
    let agent_changes = if tmux_error.is_some() {
        Vec::new()
    } else {
        agent_changes(&agents, &judgements)
    };
    Planned {
        agent_changes,
        to_awaiting,
        back_to_running,
        to_completed,
        to_stopping,
        status_after,
        action,
        new_state: (final_state != prev).then_some(final_state),
        awaiting_approval,
        approval,
        run,
        agents,
        judgements,
        new_guidance,
        new_questions: r.new_questions.clone(),
        withdrawn: r.withdrawn.clone(),
        bad_files,
        pending,
        screen_question,
        resolved_questions,
        decision,
        gated,
        state,
        alert,
        alert_intent,
        log_decision,
        fingerprint,
        prev_state: prev,
        policy: shared.clone(),
        mode,
        preview,
    }
}

#[cfg(test)]
#[path = "plan_tests.rs"]
mod tests;
