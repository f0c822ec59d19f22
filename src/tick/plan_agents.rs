//! The agents' part of the plan, without I/O: each agent judged (health from its panes,
//! its screen, the original wrapper's exit marker), the screens worth reading, the
//! questions pending or resolved, and the view the rules decide on.

use super::observe::{RunInput, TickInput};
use crate::decide::{self, AgentView, PendingGuidance, RunView};
use crate::health::{self, Judgement, Prior, Thresholds};
use crate::model::rows::{AgentRow, AgentUpdate};
use crate::model::{AgentSignal, Health, Observation, SessionState};
use crate::policy::Policy;
use crate::screen::classify::{self as screen, Reading};

pub(super) fn thresholds(p: &Policy) -> Thresholds {
    Thresholds {
        idle_seconds: p.health.idle_seconds,
        activity_stalled_seconds: p.health.activity_stalled_seconds,
        progress_stalled_seconds: p.health.progress_stalled_seconds,
    }
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

/// A screen the tick reads (all in one tmux spawn): the agent's pane, else its session.
pub struct ScreenWanted {
    pub run_id: String,
    pub agent: String,
    pub pane: Option<String>,
    pub session: String,
}

/// The panes whose screens this tick reads: live interactive agents of active runs that
/// are quiet or show a dialog in their title, never a busy one.
pub fn screens_to_read(input: &TickInput, policy: &Policy, now: i64) -> Vec<ScreenWanted> {
    let th = thresholds(policy);
    // Parsed at the first interactive agent: most ticks have none (0.05 ms saved).
    let all = std::cell::OnceCell::new();
    let title_pats = std::cell::OnceCell::new();
    let mut out = Vec::new();
    for r in &input.runs {
        if !r.run.status.is_active() {
            continue;
        }
        for (i, a) in r.agents.iter().enumerate() {
            let Some(kind) = r.kind(i) else {
                continue;
            };
            let j = judge(a, &input.obs, &th, now);
            let pats: &Vec<&screen::Pattern> = title_pats.get_or_init(|| {
                all.get_or_init(|| screen::patterns(&policy.health.screen_patterns))
                    .iter()
                    .filter(|p| p.title)
                    .collect()
            });
            if !worth_reading(a, kind, &j, &input.obs, pats) {
                continue;
            }
            out.push(ScreenWanted {
                run_id: r.run.id.clone(),
                agent: a.name.clone(),
                pane: j.pane_id,
                session: a.session.clone(),
            });
        }
    }
    out
}

/// Each agent of a run as this tick sees it, index by index with the run's agents.
/// A run without an interactive agent (most) has no readings nor watched screens: those
/// two are left empty, not filled with one `None`/`false` an agent (two allocations a
/// run); read them with `reading` and `watched`.
pub(super) struct Seen<'a> {
    /// Each agent's interactive kind (`screen::interactive_kind`), read once.
    pub kinds: std::borrow::Cow<'a, [Option<&'static str>]>,
    /// What the screen of a quiet interactive agent shows.
    readings: Vec<Option<Reading>>,
    /// Whether this tick meant to read the agent's screen (a question from a screen stays
    /// open only while its agent is one of them).
    watched: Vec<bool>,
    pub judgements: Vec<Judgement>,
}

impl Seen<'_> {
    /// What agent `i`'s screen shows, if it was read.
    pub fn reading(&self, i: usize) -> Option<&Reading> {
        self.readings.get(i).and_then(Option::as_ref)
    }

    /// Whether this tick meant to read agent `i`'s screen.
    pub fn watched(&self, i: usize) -> bool {
        self.watched.get(i).copied().unwrap_or(false)
    }
}

/// Judges every agent of the run; quiet interactive agents again from their screens
/// (read in `mod.rs`), agents of the original wrapper from its exit marker.
pub(super) fn judge_agents<'a>(
    r: &'a RunInput,
    input: &TickInput,
    th: &Thresholds,
    policy: &Policy,
    now: i64,
) -> Seen<'a> {
    let agents = &r.agents;
    let obs = &input.obs;
    // The kinds `observe` read, borrowed (`RunInput::kind` reads them again only for an
    // input built without them).
    let kinds: std::borrow::Cow<[Option<&'static str>]> = if r.kinds.len() == agents.len() {
        std::borrow::Cow::Borrowed(&r.kinds)
    } else {
        (0..agents.len()).map(|i| r.kind(i)).collect()
    };
    let interactive = kinds.iter().any(Option::is_some);
    let pats = if interactive {
        screen::patterns(&policy.health.screen_patterns)
    } else {
        Vec::new()
    };
    let pats: Vec<&screen::Pattern> = pats.iter().collect();
    // No interactive agent: no screen read or watched (see `Seen`).
    let (readings, watched): (Vec<Option<Reading>>, Vec<bool>) = if !interactive {
        (Vec::new(), Vec::new())
    } else {
        agents
            .iter()
            .zip(kinds.iter())
            .map(|(a, kind)| {
                let Some(kind) = *kind else {
                    return (None, false);
                };
                let reading = input
                    .screens
                    .get(&(r.run.id.clone(), a.name.clone()))
                    .map(|s| screen::classify(kind, &s.text, &s.title, &pats));
                let watched = worth_reading(a, kind, &judge(a, obs, th, now), obs, &pats);
                (reading, watched)
            })
            .unzip()
    };
    let judgements: Vec<Judgement> = agents
        .iter()
        .enumerate()
        .map(|(i, a)| {
            let reading = readings.get(i).and_then(Option::as_ref);
            let mut j = judge(a, obs, th, now);
            // The original metawsm's wrapper keeps a shell: its exit marker tells.
            if let Some(&status) = input.markers.get(&a.session) {
                health::judge_marker(&mut j, status);
                return j;
            }
            match reading {
                Some(r) => health::with_screen(j, r, now),
                None => j,
            }
        })
        .collect();
    Seen {
        kinds,
        readings,
        watched,
        judgements,
    }
}

/// The run's questions this tick.
pub(super) struct Questions {
    /// Screen questions whose dialog is gone.
    pub resolved: Vec<i64>,
    /// A dialog read from an agent's screen, to record as a pending question.
    pub screen_question: Option<PendingGuidance>,
    /// The question the run waits on, oldest source first.
    pub pending: Option<PendingGuidance>,
}

pub(super) fn questions(
    r: &RunInput,
    seen: &Seen,
    tmux_known: bool,
    policy: &Policy,
    now: i64,
) -> Questions {
    let agents = &r.agents;
    // Questions read from screens close when their dialog is gone (tmux must be known).
    let resolved: Vec<i64> = if !tmux_known {
        Vec::new()
    } else {
        r.screen_questions
            .iter()
            .filter(|(_, agent, question)| {
                let i = agents.iter().position(|a| &a.name == agent);
                let open = i.is_some_and(|i| {
                    decide::pane_question_open(
                        seen.judgements[i].alive,
                        seen.watched(i),
                        seen.reading(i),
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
            .any(|(id, a, q)| resolved.contains(id) && *a == g.agent && *q == g.question)
    });
    let from_screen = agents
        .iter()
        .zip(&seen.judgements)
        .enumerate()
        .find_map(|(i, (a, j))| {
            let quiet = now - j.last_activity_at.unwrap_or(a.started_at);
            decide::screen_question(&a.name, seen.reading(i)?, quiet, policy)
        });
    // A dialog's text is recorded, so `guide` can answer it; a prompt is only described.
    let screen_question = from_screen.clone().filter(|g| !g.at_prompt);
    let pending = recorded
        .or_else(|| {
            r.files.new_guidance.first().map(|(_, g)| PendingGuidance {
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
        .or_else(|| signal_guidance(agents, &seen.judgements))
        .or(from_screen);
    Questions {
        resolved,
        screen_question,
        pending,
    }
}

/// What the rules see of the run.
pub(super) fn run_view(
    r: &RunInput,
    seen: &Seen,
    pending: Option<PendingGuidance>,
    tmux_error: &Option<String>,
) -> RunView {
    let run = &r.run;
    RunView {
        id: run.id.clone(),
        status: run.status,
        status_changed_at: run.status_changed_at,
        agents: r
            .agents
            .iter()
            .zip(&seen.judgements)
            .zip(seen.kinds.iter())
            .enumerate()
            .map(|(i, ((a, j), kind))| AgentView {
                name: a.name.clone(),
                health: j.health,
                alive: j.alive,
                exit_status: j.exit_status,
                last_activity_at: j.last_activity_at,
                stored_activity_at: a.last_activity_at,
                reason: j.reason.clone(),
                reported_done: a.signal == Some(AgentSignal::Done),
                interactive: kind.map(|_| decide::Interactive {
                    hook_busy: a.signal == Some(AgentSignal::Working),
                    screen: seen.reading(i).map(|r| r.state),
                }),
                restartable: !a.argv.is_empty(),
                complete: r
                    .files
                    .completions
                    .iter()
                    .any(|c| c.agent.as_deref().is_none_or(|n| n == a.name)),
            })
            .collect(),
        guidance: pending,
        tmux_unknown: tmux_error.clone(),
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct AgentChange {
    pub name: String,
    pub update: AgentUpdate,
    /// (from, to as shown, why) when the health changed.
    pub health: Option<(Health, &'static str, String)>,
}

/// The agents whose row or health this tick changes (an agent nothing changed for
/// needs no entry: most of them, most ticks).
pub(super) fn agent_changes(agents: &[AgentRow], judgements: &[Judgement]) -> Vec<AgentChange> {
    agents
        .iter()
        .zip(judgements)
        .filter(|(a, _)| a.status != "stopped")
        .filter_map(|(a, j)| {
            let changed = a.status != j.status
                || a.health != j.health
                || a.last_activity_at != j.last_activity_at
                || a.exit_status != j.exit_status
                || a.pane_id != j.pane_id;
            // A health change is a change of the row too.
            changed.then(|| AgentChange {
                name: a.name.clone(),
                update: AgentUpdate {
                    status: j.status.to_string(),
                    health: j.health,
                    last_activity_at: j.last_activity_at,
                    last_progress_at: j.last_progress_at,
                    exit_status: j.exit_status,
                    exit_signal: j.exit_signal,
                    pane_id: j.pane_id.clone(),
                },
                health: (a.health != j.health).then(|| {
                    (
                        a.health,
                        health::shown_state(j.health, a.signal),
                        j.reason.clone(),
                    )
                }),
            })
        })
        .collect()
}
