//! Whether a tick found anything changed: the no-client timer doubles its wait while
//! consecutive ticks find nothing (schedule.rs), and goes back to the base interval as
//! soon as one does. Read from what the tick already holds: no I/O.
//!
//! Changed means any of: an event came in (inbox), the clock stepped, tmux could not be
//! read, a server note; a signal file taken or a bad one; a question asked,
//! withdrawn or resolved; an agent's status, health, exit status or pane changed (not
//! mere activity: a busy agent is expected); a run's status, operator state (other than
//! the count of unhealthy observations in a row) or approval changed; an alert or a logged decision; a rule action wanted (restart,
//! stop) that no human holds; an action held for the LLM, an LLM call in flight, or
//! one started or reaped by this tick.

use super::observe::TickInput;
use super::plan::Planned;
use crate::model::rows::{CallState, OpState};

pub(super) fn changed(
    touched: &[String],
    input: &TickInput,
    plans: &[Planned],
    asked: bool,
) -> bool {
    asked
        || !touched.is_empty()
        || input.clock_hold.is_some()
        || input.tmux_error.is_some()
        || !input.servers.is_empty()
        || input
            .calls
            .rows
            .values()
            .any(|c| c.state == CallState::InFlight)
        || input.runs.iter().any(|r| {
            !r.files.taken.is_empty()
                || r.files.bad_files.iter().any(|b| !b.logged)
                || !r.unasked.is_empty()
                || !r.new_questions.is_empty()
                || !r.withdrawn.is_empty()
        })
        || plans.iter().any(plan_changed)
}

fn plan_changed(p: &Planned) -> bool {
    let agent_changed = p
        .agents
        .iter()
        .zip(&p.judgements)
        .filter(|(a, _)| a.status != "stopped")
        .any(|(a, j)| {
            a.status != j.status
                || a.health != j.health
                || a.exit_status != j.exit_status
                || a.pane_id != j.pane_id
        });
    agent_changed
        || p.status_after != p.run.status
        || p.action.is_some()
        || p.new_state
            .as_ref()
            .is_some_and(|s| state_changed(p.prev_state, s))
        || !matches!(p.approval, super::plan::ApprovalChange::Keep)
        || p.alert
        || p.log_decision
        || p.gated.held
        || (p.decision.intent.is_action() && !p.awaiting_approval)
        || !p.new_guidance.is_empty()
        || !p.new_questions.is_empty()
        || !p.withdrawn.is_empty()
        || !p.bad_files.is_empty()
        || !p.resolved_questions.is_empty()
        || p.screen_question.is_some()
}

/// An unhealthy agent counts one more observation each tick; while the rules wait on that
/// count they want an action (counted above), once they gave up it changes nothing.
fn state_changed(prev: &OpState, next: &OpState) -> bool {
    let mut p = prev.clone();
    p.unhealthy_streak = next.unhealthy_streak;
    p.last_observation_at = next.last_observation_at;
    p != *next
}
