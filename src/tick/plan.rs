//! The tick's decisions, without I/O: from what `observe` read, the policy and the time,
//! each run's plan: health judgements, the rule decision, the LLM gate, the new operator
//! state, whether to alert and whether to log. `apply` and `ask` only carry it out.
//! Here: the plan and the run's transitions; the agents' judgements and questions in
//! `plan_agents.rs`; the LLM fingerprint, hold and gate, approvals and alert dedup in
//! `plan_gate.rs`.

use super::observe::{BadFile, RunInput, TickInput};
use super::plan_agents::{agent_changes, judge_agents, questions, run_view, thresholds};
use super::plan_gate::{alerting, approval, fingerprint, gate_run, Alerting};
use crate::decide::{self, Decision, PendingGuidance};
use crate::gate::Gated;
use crate::health::{Judgement, Thresholds};
use crate::model::asks::{GuidanceRequest, NewQuestion};
use crate::model::rows::{AgentRow, OpState, RunRow};
use crate::model::{Intent, RunStatus};
use crate::policy::{LlmMode, OnComplete, Policy};
use std::path::PathBuf;

pub use super::plan_agents::{screens_to_read, AgentChange};
pub use super::plan_gate::{ApprovalChange, MAX_LLM_IN_FLIGHT};

/// Everything one run's tick does, decided before anything is done: `apply` writes and
/// acts from this alone and never reads the state back. The run's rows are borrowed from
/// the tick's input, which outlives the plans (copying them cost a tenth of a 500-run plan).
pub struct Planned<'a> {
    /// The action is held for a human's `approve` (assist mode).
    pub awaiting_approval: bool,
    pub approval: ApprovalChange,
    pub run: &'a RunRow,
    pub agents: &'a [AgentRow],
    pub judgements: Vec<Judgement>,
    /// Agent rows to rewrite and health changes to log (none when tmux is unknown).
    pub agent_changes: Vec<AgentChange>,
    pub new_guidance: Vec<(PathBuf, GuidanceRequest)>,
    /// Questions agents that report `waiting` ask (answered by typing into the pane).
    pub new_questions: Vec<NewQuestion>,
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
    pub prev_state: &'a OpState,
    /// The policy that judged this run and its LLM mode.
    pub policy: std::rc::Rc<Policy>,
    pub mode: LlmMode,
    /// Dry run: what the rules will do once corroboration completes.
    pub preview: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    Restart,
    Stop,
}

impl Planned<'_> {
    /// The operator state after this tick (what `new_state` writes, or what was there).
    pub fn state_after(&self) -> &OpState {
        self.new_state.as_ref().unwrap_or(self.prev_state)
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

/// `global` judges runs without a policy of their own; `mode` overrides every run's.
pub fn plan<'a>(
    input: &'a TickInput,
    global: &Policy,
    mode: Option<LlmMode>,
    dry_run: bool,
    now: i64,
) -> Vec<Planned<'a>> {
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
fn plan_run<'a>(
    r: &'a RunInput,
    input: &TickInput,
    th: &Thresholds,
    shared: std::rc::Rc<Policy>,
    mode: LlmMode,
    dry_run: bool,
    now: i64,
) -> Planned<'a> {
    let policy: &Policy = &shared;
    let run = &r.run;
    let agents = &r.agents;
    let prev = &r.prev;
    let tmux_error = &input.tmux_error;
    let seen = judge_agents(r, input, th, policy, now);
    let q = questions(r, &seen, tmux_error.is_none(), policy, now);
    let new_guidance = r.files.new_guidance.clone();
    let bad_files = r
        .files
        .bad_files
        .iter()
        .filter(|b| !b.logged)
        .map(|b: &BadFile| b.message.clone())
        .collect();

    let view = run_view(r, &seen, q.pending.clone(), tmux_error);
    let decision = crate::clock::hold(
        decide::decide(&view, prev, policy, now),
        input.clock_hold.as_deref(),
    );
    let preview = if dry_run {
        decide::preview(&view, prev, policy, now).map(|(intent, n)| {
            format!(
                "would {intent} after {n} more unhealthy observation{}",
                if n == 1 { "" } else { "s" }
            )
        })
    } else {
        None
    };
    let fingerprint = fingerprint(&view, &decision, q.pending.as_ref());
    let gated = gate_run(
        run,
        &decision,
        &input.calls,
        &fingerprint,
        mode,
        dry_run,
        policy,
        now,
    );
    let (awaiting_approval, approval) =
        approval(r, &decision, &gated, mode, tmux_error.is_none(), now);
    let Alerting {
        state,
        alert,
        alert_intent,
        log_decision,
    } = alerting(
        &decision,
        &gated,
        tmux_error.is_none() && input.clock_hold.is_none(),
        now,
    );

    // What the record writes: transitions in this order, each only from where it may.
    // (The rules never complete and stop a run in the same tick.)
    let resolved_questions = q.resolved;
    let screen_question = q.screen_question;
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
        agent_changes(agents, &seen.judgements)
    };
    Planned {
        agent_changes,
        to_awaiting,
        back_to_running,
        to_completed,
        to_stopping,
        status_after,
        action,
        new_state: (final_state != *prev).then_some(final_state),
        awaiting_approval,
        approval,
        run,
        agents,
        judgements: seen.judgements,
        new_guidance,
        new_questions: r.new_questions.clone(),
        withdrawn: r.withdrawn.clone(),
        bad_files,
        pending: q.pending,
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
