//! Evidence kept before a pane is killed. A stop or restart (by a rule or by hand) kills
//! the agent's pane and with it the agent's last output, which is what a person coming
//! back to investigate needs most. So the last lines of each pane about to go are
//! captured first (one tmux spawn, cleaned of escapes and controls, capped) and kept as
//! an `evidence` event of the run (the log), which `run show` shows per agent.

use crate::screen::{self, Span, Target};
use crate::store::{AgentRow, NewEvent, Tx};
use crate::tmux::TmuxClient;

/// Lines and bytes kept per pane.
pub const LINES: usize = 40;
pub const MAX_BYTES: usize = 4096;
/// The event kind; `to_state` says what came next (`stop` or `restart`).
pub const KIND: &str = "evidence";

fn target(a: &AgentRow) -> Target {
    // An adopted agent's own pane, never the user's session around it.
    match (a.adopted, a.pane_id.as_deref().and_then(Target::pane)) {
        (true, Some(t)) => t,
        _ => Target::session(&a.session),
    }
}

/// The last bytes of `text`, cut at a line start when one is near.
fn cap(text: &str) -> String {
    if text.len() <= MAX_BYTES {
        return text.to_string();
    }
    let mut cut = text.len() - MAX_BYTES;
    while !text.is_char_boundary(cut) {
        cut += 1;
    }
    let tail = &text[cut..];
    match tail.find('\n') {
        Some(i) if i + 1 < tail.len() => tail[i + 1..].to_string(),
        _ => tail.to_string(),
    }
}

/// The panes of these agents (all present on the server), in one spawn; agents whose
/// pane showed nothing are left out.
pub fn capture(tmux: &TmuxClient, agents: &[&AgentRow]) -> Vec<(String, String)> {
    let targets: Vec<Target> = agents.iter().map(|a| target(a)).collect();
    screen::capture_many(tmux, &targets, Span::Last(LINES))
        .into_iter()
        .zip(agents)
        .filter_map(|(text, a)| {
            let text = cap(text?.trim_end());
            (!text.trim().is_empty()).then(|| (a.name.clone(), text))
        })
        .collect()
}

/// Records what `capture` kept, before `next` (stop | restart) happens.
pub fn record(
    tx: &Tx,
    now: i64,
    run_id: &str,
    kept: &[(String, String)],
    next: &str,
    source: &str,
) -> crate::store::Result<()> {
    for (agent, text) in kept {
        tx.add_event(
            now,
            &NewEvent {
                run_id: Some(run_id),
                agent: Some(agent),
                kind: KIND,
                to_state: next,
                message: text,
                source,
                ..Default::default()
            },
        )?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cap_keeps_the_end_from_a_line_start() {
        assert_eq!(cap("short"), "short");
        let long = format!("{}\nlast line", "é".repeat(MAX_BYTES));
        let c = cap(&long);
        assert!(c.len() <= MAX_BYTES, "{}", c.len());
        assert!(c.ends_with("last line"));
    }
}
