//! Bringing orphaned runs back: their tmux server is gone (or restarted), so every agent
//! starts again on the current server — resuming its conversation where it can — while
//! the run keeps its history, restart budget and pending questions (docs/restarts.md).

use crate::cli::{CliError, Ctx};
use crate::store::{NewEvent, RunRow, Store};
use crate::tmux::{self, Observation};

/// Runs orphaned now: their server is certainly gone, or restarted since their agents ran.
pub fn orphaned_runs(st: &Store) -> Result<Vec<(RunRow, String)>, CliError> {
    let mut probe = crate::orphan::Probe::default();
    Ok(st
        .runs(false)?
        .into_iter()
        .filter_map(|r| {
            let why = r
                .orphaned
                .clone()
                .or_else(|| probe.gone(r.tmux_socket.as_deref()))?;
            Some((r, why))
        })
        .collect())
}

/// Starts the run's agents on `ctx`'s server in one tmux call and records it. The
/// caller holds the state lock. Returns what ran, per agent.
pub fn revive(
    st: &mut Store,
    ctx: &Ctx,
    run: &RunRow,
    obs: &Observation,
    now: i64,
    source: &str,
) -> Result<String, CliError> {
    let Observation::Known(snap) = obs else {
        return Err(CliError::Failure(
            "tmux unreachable: nothing to revive on".into(),
        ));
    };
    let policy = crate::project_policy::for_run(ctx, run)?;
    let agents = st.agents(Some(&run.id))?;
    if agents.is_empty() {
        return Err(CliError::Failure(format!("run {} has no agents", run.id)));
    }
    // Nothing of the old panes is left: every agent starts in a session of our own.
    let agents: Vec<&crate::store::AgentRow> = agents.iter().collect();
    let restart = crate::actions::restart(
        ctx,
        &policy,
        obs,
        &agents,
        now,
        false,
        crate::actions::Place::NewServer,
    );
    if let Some(e) = restart.refused.first() {
        return Err(CliError::Failure(format!("run {}: {e}", run.id)));
    }
    ctx.tmux
        .run(&restart.cmds)
        .map_err(|e| CliError::Failure(format!("tmux: revive {}: {e}", run.id)))?;
    let kinds = restart.kinds();
    let tx = st.write()?;
    restart.mark_started(&tx, &run.id, now)?;
    tx.set_run_orphaned(&run.id, None)?;
    tx.set_run_server(&run.id, snap.socket.as_deref(), snap.server.as_deref())?;
    // History, budget and pending questions stay as they were: only the processes return.
    tx.add_event(
        now,
        &NewEvent {
            run_id: Some(&run.id),
            kind: "revive",
            to_state: "ok",
            message: &format!("revived on this tmux server, {kinds}"),
            source,
            ..Default::default()
        },
    )?;
    tx.commit()?;
    Ok(kinds)
}

/// The one-time notice (and the opt-in revive) when a server starts and finds runs its
/// predecessor left behind. Returns the message shown, if any.
pub fn on_server_start(
    st: &mut Store,
    ctx: &Ctx,
    policy: &crate::policy::Policy,
    now: i64,
) -> Result<Option<String>, CliError> {
    let obs = ctx.tmux.observe();
    let Observation::Known(snap) = &obs else {
        return Ok(None);
    };
    let (Some(here), Some(instance)) = (snap.socket.clone(), snap.server.clone()) else {
        return Ok(None);
    };
    let mut left = Vec::new();
    for r in st.runs(false)? {
        if r.tmux_socket.as_deref() != Some(here.as_str()) {
            continue;
        }
        let agents = st.agents(Some(&r.id))?;
        let why = r
            .orphaned
            .clone()
            .or_else(|| crate::orphan::left_by_restart(&r, &agents, &obs));
        if let Some(why) = why {
            left.push((r, why));
        }
    }
    if left.is_empty() {
        return Ok(None);
    }
    // Once per server instance, however often the config is loaded.
    let key = "orphan_notice";
    if st.meta_get(key)?.as_deref() == Some(instance.as_str()) {
        return Ok(None);
    }
    {
        let tx = st.write()?;
        for (r, why) in &left {
            if r.orphaned.is_none() {
                tx.set_run_orphaned(&r.id, Some(why))?;
            }
        }
        tx.meta_set(key, &instance)?;
        tx.commit()?;
    }
    let ids: Vec<&str> = left.iter().map(|(r, _)| r.id.as_str()).collect();
    let msg = if policy.operator.revive_on_server_start {
        let mut done = Vec::new();
        for (r, _) in &left {
            let r = st.run(&r.id)?;
            match revive(st, ctx, &r, &obs, now, "tmux-setup") {
                Ok(_) => done.push(r.id.clone()),
                Err(e) => eprintln!("metawsm-tick: revive {}: {e}", r.id),
            }
        }
        format!(
            "metawsm: revived {} orphaned run(s): {}",
            done.len(),
            done.join(" ")
        )
    } else {
        format!(
            "metawsm: {} run(s) orphaned by a server restart ({}): metawsm-tick run revive --all",
            ids.len(),
            ids.join(" ")
        )
    };
    let _ = ctx
        .tmux
        .run(&[tmux::Cmd::new("display-message").message(&msg)]);
    Ok(Some(msg))
}
