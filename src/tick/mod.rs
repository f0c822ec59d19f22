//! One tick: observe (every read, one tmux call) → plan (pure) → apply (one transaction,
//! then the actions and escalations) → ask the LLM. The caller holds the state lock.

mod apply;
mod ask;
mod observe;
mod plan;
mod plan_agents;
mod plan_gate;
mod prefetch;
mod quiet;

use apply::LAST_OBSERVED;
pub use apply::{drain_inbox, ActionOutcome};
pub use prefetch::Prefetch;

use crate::cli::{CliError, Ctx};
use crate::gate::DecisionSource;
use crate::model::{Intent, RunStatus};
use crate::policy::{LlmMode, Policy};
use crate::store::Store;
use crate::timeutil::{now_unix, rfc3339};
use std::collections::HashMap;

#[derive(Debug, Clone)]
pub struct TickOptions {
    pub run: Option<String>,
    pub dry_run: bool,
    pub llm_mode: Option<LlmMode>,
    pub source: TickSource,
}

/// What started the tick; its word is the source of the events the tick records.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TickSource {
    Tick,
    Status,
    Hook,
    Timer,
    /// A command acting now (`approve`).
    Cli,
}

crate::model::words!(TickSource, "tick source", "", {
    Tick => "tick",
    Status => "status",
    Hook => "hook",
    Timer => "timer",
    Cli => "cli",
});

impl TickSource {
    /// Whether the caller reads the per-run report (`tick` prints it, `approve` checks
    /// it). The timer, the status bar and the hooks only need the tick done.
    fn reports(self) -> bool {
        matches!(self, TickSource::Tick | TickSource::Cli)
    }
}

#[derive(Debug, Clone, serde::Serialize)]
pub struct AgentLine {
    pub name: String,
    pub session: String,
    /// Serialized as its word, as a `String` of it was.
    pub health: crate::model::Health,
    pub reason: String,
}

#[derive(Debug, Clone, serde::Serialize)]
pub struct RunOutcome {
    pub run_id: String,
    pub status: RunStatus,
    pub intent: Intent,
    pub reason: String,
    pub decision_source: DecisionSource,
    /// Serialized as their words: taken from the decision, not copied as text.
    pub permitted: Vec<Intent>,
    pub llm: Option<String>,
    pub execute: bool,
    /// Outcome of the action when one ran.
    pub outcome: Option<ActionOutcome>,
    /// Why this tick's escalation entry could not be written (no ticket directory…).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub escalation_unwritten: Option<String>,
    /// Dry run: what the rules will do once corroboration completes.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub preview: Option<String>,
    /// The run's project policy could not be loaded: it was judged by the global one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub policy_error: Option<String>,
    pub alert: bool,
    /// Assist mode holds the action for `metawsm-tick approve`.
    pub awaiting_approval: bool,
    pub targets: Vec<String>,
    pub agents: Vec<AgentLine>,
}

#[derive(Debug, Clone, serde::Serialize)]
pub struct TickReport {
    pub at: String,
    pub dry_run: bool,
    pub tmux_error: Option<String>,
    pub runs: Vec<RunOutcome>,
    /// The tick found something changed (quiet.rs): the no-client timer's wait resets.
    #[serde(skip)]
    pub changed: bool,
}

/// Reads the time since the last observation; on a step (clock.rs) clamps the stored
/// times, counts activity from now and records one event. Returns why the tick must act
/// on nothing, if it must. A dry run only reads.
fn clock_step(
    store: &mut Store,
    policy: &Policy,
    now: i64,
    dry_run: bool,
) -> Result<Option<String>, CliError> {
    let interval = policy.operator.tick_interval_seconds;
    let last = store
        .meta_get(LAST_OBSERVED)?
        .and_then(|v| v.parse::<i64>().ok());
    let step = crate::clock::step(last, now, interval);
    let note = crate::clock::note(step, interval);
    // A steady tick writes nothing here (its record carries LAST_OBSERVED): the status
    // line's ticks stay one write transaction.
    let Some(n) = note.as_ref().filter(|_| !dry_run) else {
        return Ok(note);
    };
    let tx = store.write()?;
    tx.meta_set(LAST_OBSERVED, &now.to_string())?;
    tx.clock_fresh_start(now, policy.operator.restart_cooldown_max_seconds)?;
    tx.add_event(
        now,
        &crate::store::NewEvent {
            kind: "clock",
            message: n,
            source: "rule",
            ..Default::default()
        },
    )?;
    tx.commit()?;
    Ok(note)
}

/// Starts a full tick's tmux observation (prefetch.rs), so tmux answers while the tick
/// opens the database and reads it; a one-run tick starts none. The caller holds the
/// state lock.
pub fn prefetch(ctx: &Ctx, opts: &TickOptions) -> Prefetch {
    match opts.run {
        Some(_) => Prefetch::none(),
        None => Prefetch::start(&ctx.db, &ctx.tmux, opts.dry_run),
    }
}

/// A tick on an open database: its observation starts first (`prefetch`).
pub fn run(
    store: &mut Store,
    ctx: &Ctx,
    policy: &Policy,
    opts: &TickOptions,
) -> Result<TickReport, CliError> {
    run_prefetched(store, ctx, policy, opts, prefetch(ctx, opts))
}

/// A tick whose observation `pre` started before the database was opened.
pub fn run_prefetched(
    store: &mut Store,
    ctx: &Ctx,
    policy: &Policy,
    opts: &TickOptions,
    pre: Prefetch,
) -> Result<TickReport, CliError> {
    let now = now_unix();
    let touched = if opts.dry_run {
        Vec::new()
    } else {
        drain_inbox(store, now)?
    };
    // Clock stepped back or a long gap: a fresh start (see clock.rs), stored future times
    // clamped before anything reads them.
    let clock_hold = clock_step(store, policy, now, opts.dry_run)?;
    // A real tick takes the guidance requests it records; a dry run only looks.
    let take = (!opts.dry_run).then_some(now);
    let mut input = observe::observe(store, ctx, opts.run.as_deref(), &touched, take, pre)?;
    // Each run's project policy was loaded with the rows (observe.rs).
    let policy_errors = std::mem::take(&mut input.policy_errors);
    input.clock_hold = clock_hold;
    if input.tmux_error.is_none() {
        let wanted = plan::screens_to_read(&input, policy, now);
        let targets: Vec<_> = wanted
            .iter()
            .map(|w| {
                w.pane
                    .as_deref()
                    .and_then(crate::screen::Target::pane)
                    .unwrap_or_else(|| crate::screen::Target::session(&w.session))
            })
            .collect();
        let screens = crate::screen::capture_screens(&ctx.tmux, &targets);
        for (w, s) in wanted.into_iter().zip(screens) {
            if let Some(s) = s {
                input.screens.insert((w.run_id, w.agent), s);
            }
        }
    }
    if input.tmux_error.is_none() {
        read_questions(ctx, &mut input);
    }
    // Taken before the plans borrow the input.
    let status_rows = input.status_rows.take();
    let status_gen = input.status_gen;
    let tmux_error = input.tmux_error.clone();
    let plans = plan::plan(&input, policy, opts.llm_mode, opts.dry_run, now);

    let mut changed = false;
    let mut outcomes: HashMap<String, ActionOutcome> = HashMap::new();
    let mut unwritten: HashMap<String, String> = HashMap::new();
    if !opts.dry_run {
        apply::record(
            store,
            &plans,
            &input.obs,
            now,
            opts.source.as_str(),
            opts.run.is_none(),
            opts.run.is_none() && status_gen.is_none(),
        )?;
        note_servers(store, &input.servers, now)?;
        // Committed: the requests taken this tick are recorded for good.
        for r in &input.runs {
            for staged in &r.files.taken {
                crate::signals::settle(std::path::Path::new(&r.run.workspace), staged);
            }
        }
        let mut restarts: HashMap<String, String> = HashMap::new();
        apply::act(
            store,
            ctx,
            &plans,
            &input.obs,
            now,
            &mut outcomes,
            &mut restarts,
        )?;
        apply::escalate(
            store,
            ctx,
            policy,
            &plans,
            &input.obs,
            now,
            &outcomes,
            &restarts,
            &mut unwritten,
        )?;
        let asked = plans.iter().any(|p| p.mode != LlmMode::Off)
            && ask::ask_llm(store, ctx, &plans, &input.calls, now)?;
        changed = quiet::changed(&touched, &input, &plans, asked);
        if opts.source != TickSource::Timer {
            crate::schedule::after_tick(store, ctx, policy, now, changed);
        }
        // Best effort: a stale cache only delays the bar until the next tick. The rows
        // read before this tick's writes stand if no commit wrote a status table since
        // (`status_gen` has not moved: refresh_from).
        let rows = status_rows;
        // The server that just answered is alive: the cache need not connect to it.
        let answered = match &input.obs {
            crate::tmux::Observation::Known(snap) => snap.socket.as_deref(),
            crate::tmux::Observation::Unknown(_) => None,
        };
        let _ = crate::status_cache::refresh_from(store, rows.as_deref(), status_gen, answered);
        // Freed by the exit, as the rows they came from (below).
        std::mem::forget(rows);
    }

    if !opts.source.reports() {
        // The process ends with this tick: freeing every row and plan one by one cost a
        // tenth of a firing's CPU at 500 runs, and the report nobody reads as much again.
        std::mem::forget(plans);
        std::mem::forget(input);
        return Ok(TickReport {
            at: rfc3339(now),
            dry_run: opts.dry_run,
            tmux_error,
            runs: Vec::new(),
            changed,
        });
    }
    // The plans are not read again: their texts move into the report.
    let mut plans = plans;
    let runs = plans
        .iter_mut()
        .map(|p| RunOutcome {
            run_id: p.run.id.clone(),
            status: p.run.status,
            intent: p.gated.intent,
            reason: std::mem::take(&mut p.gated.reason),
            decision_source: p.gated.source,
            permitted: std::mem::take(&mut p.decision.permitted),
            llm: p.gated.llm_note.take(),
            execute: p.gated.execute,
            outcome: outcomes.get(&p.run.id).cloned(),
            escalation_unwritten: unwritten.get(&p.run.id).cloned(),
            preview: p.preview.take(),
            policy_error: policy_errors.get(&p.run.id).cloned(),
            alert: p.alert,
            awaiting_approval: p.awaiting_approval,
            targets: std::mem::take(&mut p.decision.targets),
            agents: p
                .agents
                .iter()
                .zip(&mut p.judgements)
                .map(|(a, j)| AgentLine {
                    name: a.name.clone(),
                    session: a.session.clone(),
                    health: j.health,
                    reason: std::mem::take(&mut j.reason),
                })
                .collect(),
        })
        .collect();
    // As above: the rows and plans live until the process ends (a caller that ticks
    // again, `--wait-llm`, leaks one tick's worth).
    std::mem::forget(plans);
    std::mem::forget(input);
    Ok(TickReport {
        at: rfc3339(now),
        dry_run: opts.dry_run,
        tmux_error,
        changed,
        runs,
    })
}

/// The pane text of agents that just reported `waiting`: their question and its context,
/// all panes in one tmux spawn (only when some agent newly waits).
fn read_questions(ctx: &Ctx, input: &mut observe::TickInput) {
    let targets: Vec<crate::screen::Target> = input
        .runs
        .iter()
        .flat_map(|r| r.unasked.iter())
        .filter_map(|(_, pane)| crate::screen::Target::pane(pane))
        .collect();
    if targets.is_empty() {
        return;
    }
    let mut tails = crate::screen::capture_many(
        &ctx.tmux,
        &targets,
        crate::screen::Span::Last(crate::question::CONTEXT_LINES),
    )
    .into_iter();
    for r in &mut input.runs {
        for (agent, pane) in &r.unasked {
            if crate::screen::Target::pane(pane).is_none() {
                continue;
            }
            let tail = tails.next().flatten().unwrap_or_default();
            let (question, context) = crate::question::from_tail(&tail);
            r.new_questions.push(crate::question::NewQuestion {
                agent: agent.clone(),
                source: crate::model::asks::QuestionSource::Signal,
                question,
                context,
            });
        }
    }
}

/// Records runs orphaned by a server restart (once, with an event) and the server
/// instance runs were seen on. Rare: only when something changed.
fn note_servers(
    store: &mut Store,
    notes: &[observe::ServerNote],
    now: i64,
) -> Result<(), CliError> {
    if notes.is_empty() {
        return Ok(());
    }
    let tx = store.write()?;
    for n in notes {
        tx.set_run_orphaned(&n.run_id, n.orphaned.as_deref())?;
        tx.set_run_server(&n.run_id, None, n.server.as_deref())?;
        if let Some(why) = &n.orphaned {
            tx.add_event(
                now,
                &crate::store::NewEvent {
                    run_id: Some(&n.run_id),
                    kind: "orphaned",
                    to_state: "orphaned",
                    message: &format!("{why}; revive with: metawsm-tick run revive {}", n.run_id),
                    source: "tick",
                    ..Default::default()
                },
            )?;
        }
    }
    tx.commit()?;
    Ok(())
}
