//! The deterministic rule engine: (run snapshot, persisted state, policy, now) → decision.
//! Pure: no I/O, so every rule is a row in a table test.

use crate::model::OpState;
use crate::model::{Health, Intent, RunStatus};
use crate::policy::Policy;
pub use crate::reason::Reason;
use crate::screen::{Reading, ScreenState};

#[derive(Debug, Clone, PartialEq)]
pub struct AgentView {
    pub name: String,
    pub health: Health,
    /// A live pane exists (from this tick's observation).
    pub alive: bool,
    pub exit_status: Option<i64>,
    /// Activity as observed this tick.
    pub last_activity_at: Option<i64>,
    /// Activity as stored before this tick (what staleness is measured from).
    pub stored_activity_at: Option<i64>,
    pub reason: String,
    /// A completion signal covers this agent.
    pub complete: bool,
    /// The agent reported it finished its turn (`signal done`): quiet on purpose.
    pub reported_done: bool,
    /// Set for interactive agents (adopted, or an interactive CLI's start command).
    pub interactive: Option<Interactive>,
    /// A restart command is known (an adopted pane may have none: then escalate).
    pub restartable: bool,
}

/// What is known of an interactive agent beyond tmux's pane row.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Interactive {
    /// Its hooks last said it is mid-turn (`signal working`): silence then is a hang.
    pub hook_busy: bool,
    /// What its screen said this tick (read only while it is quiet).
    pub screen: Option<ScreenState>,
}

impl AgentView {
    /// A live interactive agent that nothing says is hung: never restarted or stopped
    /// for being quiet unless the policy opts in.
    fn quiet_by_choice(&self, policy: &Policy) -> bool {
        self.alive
            && self.interactive.is_some_and(|i| !i.hook_busy)
            && !policy.health.restart_quiet_interactive
    }
}

/// The question a quiet interactive agent's screen puts to a human, if any: a dialog's
/// text, or, once it has been quiet for the stall threshold, that it sits idle at its
/// prompt (with the last lines as context).
pub fn screen_question(
    agent: &str,
    reading: &Reading,
    quiet_seconds: i64,
    policy: &Policy,
) -> Option<PendingGuidance> {
    // A dialog's own text is a question; the other two are descriptions of a prompt.
    let (question, at_prompt) = match reading.state {
        ScreenState::Waiting if !reading.question.is_empty() => (reading.question.clone(), false),
        ScreenState::Waiting => ("(waiting for a decision on its screen)".into(), true),
        ScreenState::Idle if quiet_seconds >= policy.health.activity_stalled_seconds => (
            format!("(idle at its prompt for {} min)", quiet_seconds / 60),
            true,
        ),
        _ => return None,
    };
    Some(PendingGuidance {
        agent: agent.to_string(),
        question,
        context: reading.tail.clone(),
        at_prompt,
    })
}

/// Whether a question recorded from an agent's screen is still open: the agent is alive
/// and either its screen was not read while it stayed quiet (a failed capture proves
/// nothing) or it still shows that dialog. Activity again (not quiet), another screen,
/// or a dead agent means the dialog was answered or abandoned.
pub fn pane_question_open(
    alive: bool,
    quiet: bool,
    reading: Option<&Reading>,
    question: &str,
) -> bool {
    alive
        && quiet
        && reading.is_none_or(|r| r.state == ScreenState::Waiting && r.question == question)
}

#[derive(Debug, Clone, PartialEq)]
pub struct PendingGuidance {
    pub agent: String,
    pub question: String,
    pub context: String,
    /// No written question: the agent waits at its prompt (`signal waiting`, or what its
    /// screen shows), so the answer is typed there rather than given with `guide`.
    pub at_prompt: bool,
}

#[derive(Debug, Clone, PartialEq)]
pub struct RunView {
    pub id: String,
    pub status: RunStatus,
    pub status_changed_at: i64,
    pub agents: Vec<AgentView>,
    pub guidance: Option<PendingGuidance>,
    /// Some(reason) when tmux could not be asked this tick.
    pub tmux_unknown: Option<String>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Decision {
    pub intent: Intent,
    pub reason: Reason,
    /// What the gate lets anyone (the LLM included) choose for this run right now.
    pub permitted: Vec<Intent>,
    pub execute: bool,
    /// Agents the action targets.
    pub targets: Vec<String>,
    /// All agents finished and signalled completion: the run becomes `completed`.
    pub complete: bool,
    /// Operator state after this observation (streak, healthy window, budget reset).
    pub state: OpState,
    /// Things worth an audit event that are not the decision itself.
    pub notes: Vec<String>,
}

/// What the rules will do once corroboration completes, for a dry run (which never
/// advances the streak): the decision the same situation gets after the missing
/// observations, and how many are missing. `None` unless the decision waits on them.
pub fn preview(run: &RunView, prev: &OpState, policy: &Policy, now: i64) -> Option<(Intent, i64)> {
    let d = decide(run, prev, policy, now);
    let Reason::AwaitingCorroboration { streak, need } = d.reason else {
        return None;
    };
    let ahead = OpState {
        unhealthy_streak: need - 1,
        last_observation_at: None,
        ..prev.clone()
    };
    let later = decide(run, &ahead, policy, now);
    (later.intent != Intent::Noop).then_some((later.intent, (need - streak).max(1)))
}

/// Cooldown after the n-th attempt (1-based): base × 2^(n−1), capped.
pub fn cooldown_for(attempt: i64, policy: &Policy) -> i64 {
    let base = policy.operator.restart_cooldown_seconds.max(1);
    let cap = policy.operator.restart_cooldown_max_seconds.max(base);
    let shift = (attempt - 1).clamp(0, 40) as u32;
    base.saturating_mul(1_i64 << shift).min(cap)
}

/// Operator state after a restart attempt, successful or not.
pub fn after_restart(state: &OpState, now: i64, policy: &Policy) -> OpState {
    let attempts = state.restart_attempts + 1;
    OpState {
        restart_attempts: attempts,
        last_restart_at: Some(now),
        cooldown_until: Some(now + cooldown_for(attempts, policy)),
        // Every restart needs fresh corroboration before the next one.
        unhealthy_streak: 0,
        healthy_since: None,
        ..state.clone()
    }
}

/// Dedup of alerts (notify + changelog): true when this (intent, reason) is new for the
/// run. Never gates an action. A `noop` seen with real evidence (tmux known) ends the
/// episode; an executed restart is routine (an event, not an alert), while a restart that
/// will not happen (assist mode, LLM veto) is exactly what a human must hear about.
pub fn take_alert(
    state: &mut OpState,
    intent: Intent,
    reason: &str,
    execute: bool,
    evidence: bool,
    now: i64,
) -> bool {
    match intent {
        Intent::Noop => {
            if evidence {
                state.last_alert = None;
            }
            return false;
        }
        Intent::AutoRestart if execute => return false,
        _ => {}
    }
    let fp = format!("{}:{}", intent.as_str(), reason);
    // Digits carry ages and counters ("activity_age=61s"): without them a reason names the
    // same situation, so a stalled agent past its budget alerts once, not every tick.
    if state
        .last_alert
        .as_deref()
        .is_some_and(|a| stable_text(a) == stable_text(&fp))
    {
        return false;
    }
    state.last_alert = Some(fp);
    state.last_alert_at = Some(now);
    true
}

/// A reason without its measurements: digit runs that stand alone (`61s`, `(3/3)`,
/// `for 7201s`) are dropped, digits inside names (`w1`, `run-42`, `T-7`) are kept, so
/// "agent w1 …" and "agent w2 …" stay different while ages do not make a new situation.
pub fn stable_text(s: &str) -> String {
    let mut w = Stable::new(String::with_capacity(s.len()));
    let _ = std::fmt::Write::write_str(&mut w, s);
    w.out
}

/// `stable_text` as a filter: what reaches `out` is `stable_text` of everything written,
/// however it is split. A plan writes reasons through it without building them first.
pub struct Stable<W> {
    out: W,
    prev: Option<char>,
    dropping: bool,
}

impl<W: std::fmt::Write> Stable<W> {
    pub fn new(out: W) -> Stable<W> {
        Stable {
            out,
            prev: None,
            dropping: false,
        }
    }
}

impl<W: std::fmt::Write> std::fmt::Write for Stable<W> {
    fn write_str(&mut self, s: &str) -> std::fmt::Result {
        // Most reasons carry no digit: every char passes and the last one is `prev`.
        if !s.bytes().any(|b| b.is_ascii_digit()) {
            if let Some(c) = s.chars().next_back() {
                self.prev = Some(c);
                self.dropping = false;
            }
            return self.out.write_str(s);
        }
        for c in s.chars() {
            if c.is_ascii_digit() {
                if !self.dropping {
                    let in_name = self
                        .prev
                        .is_some_and(|p| p.is_alphanumeric() || p == '-' || p == '_');
                    self.dropping = !in_name;
                }
                if !self.dropping {
                    self.out.write_char(c)?;
                }
            } else {
                self.dropping = false;
                self.out.write_char(c)?;
            }
            self.prev = Some(c);
        }
        Ok(())
    }
}

fn permitted_for(intent: Intent, guidance: bool) -> Vec<Intent> {
    match intent {
        Intent::Noop if guidance => vec![
            Intent::Noop,
            Intent::EscalateGuidance,
            Intent::EscalateBlocked,
        ],
        Intent::Noop => vec![Intent::Noop, Intent::EscalateBlocked],
        Intent::EscalateGuidance => vec![Intent::EscalateGuidance, Intent::EscalateBlocked],
        Intent::EscalateBlocked => vec![Intent::EscalateBlocked],
        // Never noop: an LLM may ask for a human instead of an action, not silence it.
        Intent::AutoRestart => vec![Intent::AutoRestart, Intent::EscalateBlocked],
        Intent::AutoStopStale => vec![Intent::AutoStopStale, Intent::EscalateBlocked],
    }
}

pub fn decide(run: &RunView, prev: &OpState, policy: &Policy, now: i64) -> Decision {
    let op = &policy.operator;
    let mut state = prev.clone();
    let mut notes = Vec::new();
    let mk = |intent: Intent,
              reason: Reason,
              targets: Vec<String>,
              state: OpState,
              notes: Vec<String>| Decision {
        intent,
        reason,
        permitted: permitted_for(intent, run.guidance.is_some()),
        execute: intent.is_action(),
        targets,
        complete: false,
        state,
        notes,
    };

    if let Some(why) = &run.tmux_unknown {
        // Unknown is never evidence: no streak change, no action.
        return mk(
            Intent::Noop,
            Reason::TmuxUnreachable(why.clone()),
            vec![],
            state,
            notes,
        );
    }
    if !matches!(
        run.status,
        RunStatus::Running | RunStatus::AwaitingGuidance | RunStatus::Paused | RunStatus::Planning
    ) {
        return mk(
            Intent::Noop,
            Reason::RunInactive(run.status),
            vec![],
            state,
            notes,
        );
    }

    // An agent a completion file covers has finished: its exit is not a fault.
    let unhealthy: Vec<&AgentView> = run
        .agents
        .iter()
        .filter(|a| a.health.is_unhealthy() && !a.complete)
        .collect();

    // Streak and healthy window: persisted, so a per-call process corroborates across calls.
    if unhealthy.is_empty() {
        state.unhealthy_streak = 0;
        let since = *state.healthy_since.get_or_insert(now);
        if state.restart_attempts > 0 && now - since >= op.healthy_reset_seconds {
            notes.push(format!(
                "restart attempts reset to 0 after {}s healthy (were {})",
                now - since,
                state.restart_attempts
            ));
            state.restart_attempts = 0;
            state.cooldown_until = None;
        }
    } else if run.status == RunStatus::Running {
        state.healthy_since = None;
        let counted = state
            .last_observation_at
            .is_none_or(|t| now - t >= op.min_observation_gap_seconds);
        if counted {
            state.unhealthy_streak += 1;
            state.last_observation_at = Some(now);
        }
    }

    // 0. A completion file covering every agent completes the run by itself, whatever the
    // agents do now: an interactive agent that finished stays at its prompt (alive, quiet,
    // maybe "waiting") and must never be restarted for it.
    if !run.agents.is_empty() && run.agents.iter().all(|a| a.complete) {
        let mut d = mk(Intent::Noop, Reason::Completed, vec![], state, notes);
        d.complete = true;
        return d;
    }

    // 1. A pending question is always for a human.
    if let Some(g) = &run.guidance {
        return mk(
            Intent::EscalateGuidance,
            Reason::Asks {
                agent: g.agent.clone(),
                question: g.question.clone(),
            },
            vec![],
            state,
            notes,
        );
    }

    // 2. Stale: no sign of life for stale_run_age, verified against live tmux evidence.
    let last_sign = run
        .agents
        .iter()
        .filter_map(|a| a.stored_activity_at)
        .chain([run.status_changed_at])
        .chain(prev.last_restart_at)
        .max()
        .unwrap_or(run.status_changed_at);
    let age = now - last_sign;
    if age >= op.stale_run_age_seconds {
        let threshold = op.stale_run_age_seconds;
        let window = policy.health.activity_stalled_seconds;
        let busy = run.agents.iter().find(|a| {
            a.alive
                && (a.reported_done
                    || a.last_activity_at.is_some_and(|t| now - t < window)
                    || a.quiet_by_choice(policy))
        });
        return match busy {
            Some(a) if a.reported_done => mk(
                Intent::Noop,
                Reason::StaleButDone {
                    age,
                    threshold,
                    agent: a.name.clone(),
                },
                vec![],
                state,
                notes,
            ),
            Some(a) if a.quiet_by_choice(policy) => mk(
                Intent::Noop,
                Reason::StaleButInteractive {
                    age,
                    threshold,
                    agent: a.name.clone(),
                },
                vec![],
                state,
                notes,
            ),
            Some(a) => mk(
                Intent::Noop,
                Reason::StaleButActive {
                    age,
                    threshold,
                    agent: a.name.clone(),
                    ago: now - a.last_activity_at.unwrap_or(now),
                    window,
                },
                vec![],
                state,
                notes,
            ),
            None => mk(
                Intent::AutoStopStale,
                Reason::StaleVerified {
                    age,
                    threshold,
                    window,
                },
                run.agents.iter().map(|a| a.name.clone()).collect(),
                state,
                notes,
            ),
        };
    }

    // 3. Unhealthy agents of a running run: corroborate, then budget, then cooldown.
    if !unhealthy.is_empty() {
        if run.status != RunStatus::Running {
            return mk(
                Intent::Noop,
                Reason::UnhealthyNotRunning {
                    count: unhealthy.len(),
                    status: run.status,
                },
                vec![],
                state,
                notes,
            );
        }
        let need = op.unhealthy_confirmations;
        if state.unhealthy_streak < need {
            return mk(
                Intent::Noop,
                Reason::AwaitingCorroboration {
                    streak: state.unhealthy_streak,
                    need,
                },
                vec![],
                state,
                notes,
            );
        }
        // A quiet interactive agent is left alone: its conversation is worth more than a
        // restart that nothing says it needs. A human hears about it instead.
        let (held, unhealthy): (Vec<&AgentView>, Vec<&AgentView>) = unhealthy
            .into_iter()
            .partition(|a| a.health == Health::Stalled && a.quiet_by_choice(policy));
        if unhealthy.is_empty() {
            let detail = held
                .iter()
                .map(|a| format!("{}: {}", a.name, a.reason))
                .collect::<Vec<_>>()
                .join("; ");
            return mk(
                Intent::EscalateBlocked,
                Reason::QuietInteractive { detail },
                vec![],
                state,
                notes,
            );
        }
        // Nothing to restart with (an adopted pane tmux knows no start command for): a
        // human decides, rather than a restart that cannot happen.
        if let Some(a) = unhealthy.iter().find(|a| !a.restartable) {
            return mk(
                Intent::EscalateBlocked,
                Reason::NoRestartCommand {
                    agent: a.name.clone(),
                    detail: a.reason.clone(),
                },
                vec![],
                state,
                notes,
            );
        }
        if state.restart_attempts >= op.restart_budget {
            let detail = unhealthy
                .iter()
                .map(|a| format!("{}: {}", a.name, a.reason))
                .collect::<Vec<_>>()
                .join("; ");
            return mk(
                Intent::EscalateBlocked,
                Reason::BudgetExhausted {
                    attempts: state.restart_attempts,
                    budget: op.restart_budget,
                    detail,
                },
                vec![],
                state,
                notes,
            );
        }
        if let Some(until) = state.cooldown_until.filter(|&u| now < u) {
            return mk(
                Intent::Noop,
                Reason::Cooldown { until },
                vec![],
                state,
                notes,
            );
        }
        let targets: Vec<String> = unhealthy.iter().map(|a| a.name.clone()).collect();
        let detail = unhealthy
            .iter()
            .map(|a| format!("{}: {}", a.name, a.reason))
            .collect::<Vec<_>>()
            .join("; ");
        return mk(
            Intent::AutoRestart,
            Reason::RestartCorroborated {
                attempt: state.restart_attempts + 1,
                budget: op.restart_budget,
                detail,
            },
            targets,
            state,
            notes,
        );
    }

    // 4. Finished agents (full completion was rule 0): a silent exit 0 is a blocker.
    let exited: Vec<&AgentView> = run
        .agents
        .iter()
        .filter(|a| a.health == Health::Exited)
        .collect();
    if let Some(a) = exited.iter().find(|a| !a.complete) {
        return mk(
            Intent::EscalateBlocked,
            Reason::ExitedWithoutCompletion {
                agent: a.name.clone(),
            },
            vec![],
            state,
            notes,
        );
    }

    mk(Intent::Noop, Reason::Nothing, vec![], state, notes)
}

#[cfg(test)]
#[path = "decide_tests.rs"]
mod tests;

#[cfg(test)]
#[path = "decide_screen_tests.rs"]
mod screen_tests;
