//! Every read a tick makes, once: the database rows, one tmux observation, the signal
//! files in each watched run's workspace, and which LLM workers are alive.

use super::prefetch::Prefetch;
use crate::cli::{CliError, Ctx};
use crate::decide::PendingGuidance;
use crate::llm::Proposal;
use crate::model::asks::QuestionSource;
use crate::model::rows::CallState;
use crate::model::FastMap;
use crate::model::RunStatus;
use crate::signals::{self, Completion, GuidanceRequest, Read_};
use crate::store::{AgentRow, LlmCall, OpState, RunRow, Store};
use crate::tmux::Observation;
use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};

/// What one tick knows before it decides anything.
pub struct TickInput {
    pub runs: Vec<RunInput>,
    pub obs: Observation,
    pub tmux_error: Option<String>,
    pub calls: Calls,
    /// Screens of quiet interactive agents, by (run id, agent name): filled in by the
    /// tick after the observation, in one tmux spawn.
    pub screens: HashMap<(String, String), crate::screen::Screen>,
    /// Exit statuses read from the original metawsm's wrapper panes, by session.
    pub markers: HashMap<String, i64>,
    /// Runs' own project policies; a run absent here is judged by the global policy.
    pub policies: HashMap<String, std::rc::Rc<crate::policy::Policy>>,
    /// Why a run's project policy could not be used (`project_policy::PerRun`).
    pub policy_errors: HashMap<String, String>,
    /// Set on a fresh start after a clock step or a long gap (clock.rs): why the tick
    /// acts on nothing.
    pub clock_hold: Option<String>,
    /// Runs orphaned by a server restart, or seen on a new server instance: recorded.
    pub servers: Vec<ServerNote>,
    /// A full tick's status rows, built from what it read (status_cache::rows_of).
    pub status_rows: Option<Vec<crate::store::StatusRow>>,
    /// meta `status_gen` read before those rows (`status_cache::refresh_from`).
    pub status_gen: Option<i64>,
}

/// What the tick learnt of a run's server (docs/restarts.md).
pub struct ServerNote {
    pub run_id: String,
    pub orphaned: Option<String>,
    pub server: Option<String>,
}

/// One run as read from the database and its workspace.
pub struct RunInput {
    pub run: RunRow,
    pub agents: Vec<AgentRow>,
    pub prev: OpState,
    /// The oldest guidance request already recorded and not yet answered.
    pub recorded_guidance: Option<PendingGuidance>,
    /// Pending questions read from agents' screens: (id, agent, question). They close
    /// when the dialog leaves the screen.
    pub screen_questions: Vec<(i64, String, String)>,
    /// How many questions of the run are pending (of every source).
    pub pending_count: usize,
    /// The action assist mode holds for a human, or one dismissed in this episode.
    pub approval: Option<crate::store::ApprovalRow>,
    /// Recorded `waiting` questions whose agent moved on or is gone: withdrawn this tick.
    pub withdrawn: Vec<i64>,
    /// Agents that report `waiting` with no question recorded yet: their panes are read.
    pub unasked: Vec<(String, String)>,
    /// Their questions (filled in after the observation, in one tmux spawn).
    pub new_questions: Vec<crate::question::NewQuestion>,
    pub files: SignalFiles,
    /// Each agent's interactive kind (`screen::interactive_kind`), read once a tick.
    pub kinds: Vec<Option<&'static str>>,
}

impl RunInput {
    /// The interactive kind of the run's agent `i` (from `kinds`, else read again).
    pub fn kind(&self, i: usize) -> Option<&'static str> {
        match self.kinds.get(i) {
            Some(k) => *k,
            None => self
                .agents
                .get(i)
                .and_then(|a| crate::screen::interactive_kind(&a.argv, a.adopted)),
        }
    }
}

/// The signal files of a watched run (running or awaiting guidance).
#[derive(Default)]
pub struct SignalFiles {
    pub new_guidance: Vec<(PathBuf, GuidanceRequest)>,
    /// Staged request files taken this tick: settled once their questions are committed.
    pub taken: Vec<PathBuf>,
    pub completions: Vec<Completion>,
    pub bad_files: Vec<BadFile>,
}

/// A signal file that could not be used, and whether the log already says so.
#[derive(Debug, Clone, PartialEq)]
pub struct BadFile {
    /// "<path>: <why>", as logged.
    pub message: String,
    pub logged: bool,
}

/// The runs' LLM calls as this tick read them, and how many workers are alive.
pub struct Calls {
    pub rows: FastMap<String, LlmCall>,
    /// Live workers, over every run (the bound is global).
    pub live: usize,
    /// Runs whose in-flight call has a live worker (checked once per tick).
    pub alive: FastMap<String, bool>,
    /// The answers of done calls, parsed (llm.rs), by run.
    pub answers: FastMap<String, Proposal>,
}

impl Calls {
    pub fn worker_alive(&self, run_id: &str) -> bool {
        self.alive.get(run_id).copied().unwrap_or(false)
    }
}

/// `pre`: the listing a full tick started before it opened the database (prefetch.rs),
/// used when it fits what these rows need.
pub fn observe(
    store: &Store,
    ctx: &Ctx,
    only: Option<&str>,
    touched: &[String],
    take: Option<i64>,
    mut pre: Prefetch,
) -> Result<TickInput, CliError> {
    // Before any row the status rows are built from (status_cache::refresh_from).
    let status_gen = match only {
        Some(_) => None,
        None => store
            .meta_get(crate::status_cache::STATUS_GEN)
            .ok()
            .flatten()
            .and_then(|v| v.parse().ok()),
    };
    let runs: Vec<RunRow> = match only {
        Some(id) => {
            // A one-run tick (a hook's) also looks at the runs whose queued events it
            // just consumed, so their events do not wait for the next full tick.
            let mut v = vec![store.run(id)?];
            for other in touched.iter().filter(|r| *r != id) {
                if let Ok(r) = store.run(other) {
                    if r.status.is_active() {
                        v.push(r);
                    }
                }
            }
            v
        }
        None => store.runs(false)?,
    };
    let Rows {
        mut agents_by_run,
        mut states,
        mut pending_rows,
        mut approvals,
        calls: rows,
    } = match only {
        Some(_) => Rows::of(store, &runs)?,
        None => Rows::all(store)?,
    };
    // A full tick read every row the status line counts: its cache needs no query.
    let status_rows = only.is_none().then(|| {
        crate::status_cache::rows_of(&runs, &agents_by_run, &pending_rows, &approvals, &states)
    });
    // A full tick's listing is running (prefetch.rs): until `pre.take` the tick only
    // waits for tmux, ~8 ms at 500 runs. Each run's input is built now from what needs
    // no tmux rows (`Ahead`); only what does is filled in once tmux has answered.
    let mut runs: Vec<(RunInput, Ahead)> = runs
        .into_iter()
        .map(|run| {
            // Each run's rows are taken, not copied (run ids are unique).
            let agents = agents_by_run.remove(&run.id).unwrap_or_default();
            let pending = pending_rows.remove(&run.id).unwrap_or_default();
            let ahead = Ahead::read(&run, &agents, pending);
            let input = RunInput {
                prev: states.remove(&run.id).unwrap_or_default(),
                recorded_guidance: None,
                withdrawn: Vec::new(),
                approval: approvals.remove(&run.id),
                unasked: Vec::new(),
                new_questions: Vec::new(),
                kinds: agents
                    .iter()
                    .map(|a| crate::screen::interactive_kind(&a.argv, a.adopted))
                    .collect(),
                agents,
                pending_count: ahead.pending.len(),
                screen_questions: ahead
                    .pending
                    .iter()
                    .filter(|g| g.source == QuestionSource::Screen)
                    .map(|g| (g.id, g.agent.clone(), g.question.clone()))
                    .collect(),
                files: SignalFiles::default(),
                run,
            };
            (input, ahead)
        })
        .collect();
    let agents = || runs.iter().flat_map(|(r, _)| r.agents.iter());
    // Only what some agent of these runs needs from tmux (see `tmux::Wants`).
    let wants = crate::tmux::Wants {
        title: runs
            .iter()
            .any(|(r, _)| r.kinds.iter().any(Option::is_some)),
        command: agents().any(|a| crate::original::is_wrapped(&a.argv)),
    };
    // Each run is judged by its own policy (its project's `.metawsm/policy.json`), loaded
    // now: an edited file applies this tick. A run dropped below keeps an unused entry.
    let (policies, policy_errors) =
        crate::project_policy::per_run(ctx, runs.iter().map(|(r, _)| &r.run));
    // Whether each call in flight still has its worker: read right after the rows, the
    // nearer the better (a worker that ends between the two reads looks lost).
    let alive: FastMap<String, bool> = rows
        .values()
        .filter(|c| c.state == CallState::InFlight)
        .map(|c| {
            let alive = c
                .pid
                .is_some_and(|pid| crate::worker::worker_alive(pid, &c.run_id));
            (c.run_id.clone(), alive)
        })
        .collect();
    let answers = rows
        .values()
        .filter(|c| c.state == CallState::Done)
        .filter_map(|c| {
            Some((
                c.run_id.clone(),
                Proposal::from_stored(c.proposal.as_deref()?)?,
            ))
        })
        .collect();
    let calls = Calls {
        live: alive.values().filter(|a| **a).count(),
        alive,
        answers,
        rows,
    };
    // No runs, no tmux: the cheapest possible tick.
    let obs = if runs.is_empty() {
        Observation::Known(Default::default())
    } else if only.is_some() && !agents().any(|a| a.adopted) {
        // A one-run tick lists its own sessions only, unless an adopted agent's pane
        // (found by id, in any session) is among them.
        let sessions: Vec<&str> = agents().map(|a| a.session.as_str()).collect();
        ctx.tmux.observe_sessions(wants, &sessions)
    } else {
        pre.take(wants)
            .unwrap_or_else(|| ctx.tmux.observe_with(wants))
    };
    pre.settle(!runs.is_empty(), wants);
    crate::reaper::wake_if_lost(&obs);
    // A database shared by several tmux servers: each server supervises only its runs.
    if let Observation::Known(snap) = &obs {
        if let Some(here) = &snap.socket {
            runs.retain(|(r, _)| r.run.tmux_socket.as_deref().is_none_or(|s| s == here));
        }
    }
    // A reboot: runs whose agents died with an earlier instance of this server are
    // orphaned, left alone; runs seen on this instance remember it.
    let mut servers = Vec::new();
    if let Observation::Known(snap) = &obs {
        runs.retain(|(r, _)| {
            let (agents, r) = (&r.agents, &r.run);
            if let Some(why) = crate::orphan::left_by_restart(r, agents, &obs) {
                if r.orphaned.is_none() {
                    servers.push(ServerNote {
                        run_id: r.id.clone(),
                        orphaned: Some(why),
                        server: r.tmux_server.clone(),
                    });
                }
                return false;
            }
            let present = agents
                .iter()
                .any(|a| matches!(obs.agent(a), crate::tmux::SessionState::Present(_)));
            if present && (r.tmux_server != snap.server || r.orphaned.is_some()) {
                servers.push(ServerNote {
                    run_id: r.id.clone(),
                    orphaned: None,
                    server: snap.server.clone(),
                });
            }
            true
        });
    }
    let tmux_error = match &obs {
        Observation::Unknown(e) => Some(e.clone()),
        Observation::Known(_) => None,
    };
    // Agents of the original metawsm's wrapper never leave a dead pane: read its marker
    // (none wrapped among the runs, none to read).
    let markers = if wants.command {
        crate::original::exit_markers(
            &ctx.tmux,
            &obs,
            runs.iter().flat_map(|(r, _)| r.agents.iter()),
        )
    } else {
        HashMap::new()
    };
    // What needs tmux's rows: the signal files (the requests taken only for the runs
    // this server supervises), the questions still standing, the agents newly waiting.
    let runs = runs
        .into_iter()
        .map(|(mut r, ahead)| {
            if let Some(dirs) = ahead.dirs {
                r.files = read_signal_files(store, &r.run, dirs, ahead.since, take);
            }
            let agents = &r.agents;
            // A question the agent's `waiting` raised stands while it still waits (screen
            // questions close with their dialog, file requests when answered).
            let (kept, gone): (Vec<_>, Vec<_>) = ahead.pending.into_iter().partition(|g| {
                g.source != QuestionSource::Signal
                    || crate::question::still_pending(
                        agents.iter().find(|a| a.name == g.agent),
                        &obs,
                    )
            });
            r.unasked = agents
                .iter()
                .filter(|a| {
                    a.signal == Some(crate::model::AgentSignal::Waiting)
                        && !kept
                            .iter()
                            .any(|g| g.source == QuestionSource::Signal && g.agent == a.name)
                })
                .filter_map(|a| crate::question::live_pane(&obs, a).map(|p| (a.name.clone(), p)))
                .collect();
            r.recorded_guidance = kept.first().map(|g| PendingGuidance {
                agent: g.agent.clone(),
                question: g.question.clone(),
                context: g.context.clone(),
                at_prompt: false,
            });
            r.withdrawn = gone.iter().map(|g| g.id).collect();
            r
        })
        .collect();
    Ok(TickInput {
        status_rows,
        status_gen,
        servers,
        runs,
        obs,
        tmux_error,
        calls,
        screens: HashMap::new(),
        markers,
        policies,
        policy_errors,
        clock_hold: None,
    })
}

/// The rows of the runs a tick looks at, by run id.
struct Rows {
    agents_by_run: FastMap<String, Vec<AgentRow>>,
    states: FastMap<String, OpState>,
    pending_rows: FastMap<String, Vec<crate::store::GuidanceRow>>,
    approvals: FastMap<String, crate::store::ApprovalRow>,
    calls: FastMap<String, LlmCall>,
}

impl Rows {
    /// A full tick: each table read once.
    fn all(store: &Store) -> Result<Rows, CliError> {
        Ok(Rows {
            agents_by_run: store.agents_by_run()?,
            states: store.op_states()?,
            pending_rows: store.all_pending_guidance()?,
            approvals: store.approvals()?,
            calls: store.llm_calls()?,
        })
    }

    /// A one-run tick (a hook's): the rows of its runs only, by index, so its cost does
    /// not grow with the runs registered; and every call in flight (the bound on workers
    /// is global).
    fn of(store: &Store, runs: &[RunRow]) -> Result<Rows, CliError> {
        let mut rows = Rows {
            agents_by_run: FastMap::default(),
            states: FastMap::default(),
            pending_rows: FastMap::default(),
            approvals: FastMap::default(),
            calls: store.llm_calls_in_flight_rows()?,
        };
        for r in runs {
            let id = &r.id;
            rows.agents_by_run
                .insert(id.clone(), store.agents(Some(id))?);
            rows.states.insert(id.clone(), store.op_state(id)?);
            let pending = store.pending_guidance(id)?;
            if !pending.is_empty() {
                rows.pending_rows.insert(id.clone(), pending);
            }
            if let Some(a) = store.approval(id)? {
                rows.approvals.insert(id.clone(), a);
            }
            if let Some(c) = store.llm_call(id)? {
                rows.calls.insert(id.clone(), c);
            }
        }
        Ok(rows)
    }
}

/// What a run's input still needs once tmux has answered (see `observe`).
struct Ahead {
    /// Files older than this are not the run's signals.
    since: i64,
    /// A watched run's signal roots that have a `.metawsm` directory, with its entries
    /// (`signals::present`); None for a run not watched.
    dirs: Option<Vec<(PathBuf, HashSet<String>)>>,
    /// The run's pending questions: those its agents' `waiting` raised stand while the
    /// agent still waits, which tmux tells.
    pending: Vec<crate::store::GuidanceRow>,
}

impl Ahead {
    fn read(run: &RunRow, agents: &[AgentRow], pending: Vec<crate::store::GuidanceRow>) -> Ahead {
        // An adopted agent predates its run: files older than the run may be its own.
        let since = if agents.iter().any(|a| a.adopted) {
            i64::MIN
        } else {
            run.created_at
        };
        let watch = matches!(run.status, RunStatus::Running | RunStatus::AwaitingGuidance);
        // One directory read per root (an access(2) for most, which have none), in the
        // locked tick as before: a file written after it is read next tick, as a file
        // written after the old, later read was. The files themselves are read, and
        // requests taken, after tmux answered, for the runs this server supervises only.
        let dirs = watch.then(|| {
            signals::roots(&run.workspace, run.doc_home_repo.as_deref())
                .into_iter()
                .filter_map(|root| signals::present(&root).map(|names| (root, names)))
                .collect()
        });
        Ahead {
            since,
            dirs,
            pending,
        }
    }
}

/// `dirs`: the run's signal roots with their `.metawsm` entries (`Ahead::dirs`).
/// `take`: Some(now) to take the requests this tick records (see
/// `signals::take_guidance`). Files older than `since` are not the run's signals.
fn read_signal_files(
    store: &Store,
    run: &RunRow,
    dirs: Vec<(PathBuf, HashSet<String>)>,
    since: i64,
    take: Option<i64>,
) -> SignalFiles {
    let mut f = SignalFiles::default();
    // One event per file and problem, not one per tick.
    let bad = |p: &Path, why: String| {
        let path = p.display().to_string();
        let message = format!("{path}: {why}");
        let last = store
            .last_event_for(&run.id, "signal_invalid", &format!("{path}: "))
            .ok()
            .flatten();
        BadFile {
            logged: last.as_deref() == Some(message.as_str()),
            message,
        }
    };
    let ws = std::path::Path::new(&run.workspace);
    for (root, names) in dirs {
        // One directory read; a file that appears after it is read next tick.
        let has = |n: &str| names.contains(n);
        let requests = has(signals::GUIDANCE_REQUEST) || has(signals::ARCHIVE);
        match take {
            Some(_) if !requests => {}
            Some(now) => {
                let (taken, bad_taken) = signals::take_guidance(&root, ws, &run.id, since, now);
                f.bad_files
                    .extend(bad_taken.into_iter().map(|(p, why)| bad(&p, why)));
                for t in taken {
                    // Left staged by a tick killed after its commit: recorded already.
                    let recorded = store
                        .guidance_recorded_since(&run.id, &t.request.question, t.taken_at)
                        .unwrap_or(false);
                    if recorded {
                        signals::settle(ws, &t.staged);
                    } else {
                        f.new_guidance.push((root.clone(), t.request));
                        f.taken.push(t.staged);
                    }
                }
            }
            None if !has(signals::GUIDANCE_REQUEST) => {}
            None => match signals::read_guidance(&root) {
                Read_::Found(_, g) if signals::for_run(&g.run_id, &run.id) => {
                    f.new_guidance.push((root.clone(), g))
                }
                Read_::Bad(p, why) => f.bad_files.push(bad(&p, why)),
                _ => {}
            },
        }
        if !has(signals::COMPLETION) {
            continue;
        }
        match signals::read_completion_since(&root, since) {
            Read_::Found(_, c) if signals::for_run(&c.run_id, &run.id) => f.completions.push(c),
            Read_::Bad(p, why) => f.bad_files.push(bad(&p, why)),
            _ => {}
        }
    }
    f
}
