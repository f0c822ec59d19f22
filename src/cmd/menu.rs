//! `metawsm-tick menu`: a tmux menu of the runs that need a human, with what can be done
//! about each (answer, approve, dismiss, restart, stop, go there).

use crate::cli::{self, CliError, CliResult, Ctx};
use crate::menu::{self, Entry};
use crate::store::OpenMode;
use lexopt::prelude::*;

pub const HELP: &str = "\
Usage: metawsm-tick menu [--client NAME] [--print [--json]]

Opens a tmux display-menu on the client listing the runs that need a human (a pending
question, an action awaiting approval, a dead or blocked agent), each with its actions:
answer (a prompt whose text goes to `guide` through a tmux buffer), approve, dismiss,
restart, stop (confirmed), and go there (switch-client to the agent's pane). The plugin
binds it to prefix + M (tmux option @metawsm-key; `none` for no binding) and, on tmux 3.4
or later, to a click on the status segment (@metawsm-click off: no click).

Options:
  --client NAME   The tmux client to show it on [default: the current one]
  --print         Print the tmux command instead of running it (--json: as JSON)
  -h, --help      Show this help
";

pub fn main(parser: &mut lexopt::Parser, ctx: &Ctx) -> CliResult<i32> {
    let (mut client, mut print, mut json) = (None, false, false);
    while let Some(arg) = parser.next()? {
        match arg {
            Long("client") => client = Some(cli::os_to_string(parser.value()?, "--client")?),
            Long("print") => print = true,
            Long("json") => json = true,
            Short('h') | Long("help") => {
                cli::print_help(HELP);
                return Ok(0);
            }
            other => return Err(other.unexpected().into()),
        }
    }
    let entries = if ctx.db.exists() {
        entries(ctx)?
    } else {
        Vec::new()
    };
    let inv = super::tmux_setup::invocation(ctx, &cli::current_exe(), &[])?;
    let cmd = menu::menu_cmd(&entries, &inv, client.as_deref())
        .map_err(|e| CliError::Usage(format!("menu: {e}")))?;
    let argv = cmd
        .argv()
        .map_err(|e| CliError::Usage(format!("menu: {e}")))?
        .to_vec();
    if print {
        if json {
            let items =
                menu::items(&entries, &inv).map_err(|e| CliError::Usage(format!("menu: {e}")))?;
            let v = serde_json::json!({
                "argv": argv,
                "items": items.iter().map(|(n, c)| serde_json::json!({"name": n, "command": c})).collect::<Vec<_>>(),
            });
            println!("{}", serde_json::to_string_pretty(&v).unwrap_or_default());
        } else {
            let words: Vec<String> = argv.iter().map(|w| crate::escape::sh_quote(w)).collect();
            println!("tmux {}", words.join(" "));
        }
        return Ok(0);
    }
    ctx.tmux
        .run(&[cmd])
        .map_err(|e| CliError::Failure(format!("tmux: {e}")))?;
    Ok(0)
}

/// Active runs needing a human, most urgent first.
fn entries(ctx: &Ctx) -> CliResult<Vec<Entry>> {
    let st = ctx.open(OpenMode::ReadOnly, false)?;
    let runs = st.runs(false)?;
    let mut agents = st.agents(None)?;
    let guidance = st.all_pending_guidance()?;
    let approvals = st.approvals()?;
    let states = st.op_states()?;
    let mut out = Vec::new();
    for r in runs {
        let mine: Vec<_> = agents
            .iter()
            .filter(|a| a.run_id == r.id)
            .cloned()
            .collect();
        agents.retain(|a| a.run_id != r.id);
        let question = guidance.get(&r.id).and_then(|v| v.first());
        let approval = approvals
            .get(&r.id)
            .filter(|a| a.status == crate::model::rows::ApprovalStatus::Pending);
        let dead = mine.iter().find(|a| a.health == crate::model::Health::Dead);
        let waiting = mine
            .iter()
            .find(|a| a.signal == Some(crate::model::AgentSignal::Waiting));
        let blocked = states
            .get(&r.id)
            .and_then(|s| s.last_alert.as_deref())
            .is_some_and(|a| {
                crate::model::Intent::of_alert(a) == Some(crate::model::Intent::EscalateBlocked)
            });
        let why = if let Some(q) = question {
            format!(
                "{} asks: {}",
                crate::names::or_placeholder(&q.agent),
                q.question
            )
        } else if let Some(a) = approval {
            format!("awaiting approval: {} {}", a.intent, a.targets.join(","))
        } else if let Some(a) = waiting {
            format!("{} waits at its prompt", a.name)
        } else if let Some(a) = dead {
            format!("{} is dead", a.name)
        } else if blocked {
            "blocked".to_string()
        } else {
            continue;
        };
        let pane_of = |name: &str| {
            mine.iter()
                .find(|a| a.name == name)
                .and_then(|a| a.pane_id.clone())
        };
        let pane = question
            .and_then(|q| pane_of(&q.agent))
            .or_else(|| waiting.and_then(|a| a.pane_id.clone()))
            .or_else(|| mine.iter().find_map(|a| a.pane_id.clone()));
        out.push(Entry {
            run_id: r.id.clone(),
            why,
            question: question.is_some(),
            approval: approval.is_some(),
            pane,
        });
    }
    Ok(out)
}
