//! `metawsm-tick run add-agent`: another agent, in its own session, for an existing run.

use crate::agents::{self, AgentSpec};
use crate::cli::{self, CliError, CliResult, Ctx};
use crate::store::OpenMode;
use crate::timeutil::now_unix;
use lexopt::prelude::*;

pub const HELP: &str = "\
Usage: metawsm-tick run add-agent RUN --agent NAME [--session NAME] -- CMD [ARGS…]

Starts another agent for RUN in its own tmux session (same working directory rules as
'run start').
";

pub fn main(parser: &mut lexopt::Parser, ctx: &Ctx) -> CliResult<i32> {
    let (mut run_id, mut agent, mut session, mut argv) = (None, None, None, None);
    loop {
        if let Some(a) = super::take_argv(parser)? {
            argv = Some(a);
            break;
        }
        let Some(arg) = parser.next()? else { break };
        match arg {
            Long("agent") => agent = Some(cli::os_to_string(parser.value()?, "--agent")?),
            Long("session") => session = Some(cli::os_to_string(parser.value()?, "--session")?),
            Short('h') | Long("help") => {
                cli::print_help(HELP);
                return Ok(0);
            }
            Value(v) if run_id.is_none() => run_id = Some(cli::os_to_string(v, "RUN")?),
            other => return Err(other.unexpected().into()),
        }
    }
    let run_id = run_id.ok_or_else(|| CliError::Usage("run add-agent: RUN is required".into()))?;
    let name = agent.ok_or_else(|| CliError::Usage("run add-agent: --agent is required".into()))?;
    let argv = argv.filter(|a| !a.is_empty()).ok_or_else(|| {
        CliError::Usage("run add-agent: the agent command is required after --".into())
    })?;
    ctx.policy()?;
    let _lock = super::lock(ctx)?;
    let mut st = ctx.open(OpenMode::Existing, true)?;
    let run = st.run(&run_id)?;
    let policy = crate::project_policy::for_run(ctx, &run)?;
    if !run.status.is_active() {
        return Err(CliError::Failure(format!(
            "run {run_id} is {}; restart it first",
            run.status
        )));
    }
    let a = agents::start_agent(
        &mut st,
        &ctx.for_run(&run),
        &policy,
        &run,
        AgentSpec {
            name,
            session,
            argv,
            resume_cmd: None,
        },
        now_unix(),
        false,
    )?;
    let _ = crate::status_cache::refresh(&st);
    crate::schedule::wake(&mut st, ctx, &policy, now_unix());
    crate::say!(
        "added agent {} to {} in tmux session {}",
        a.name,
        run.id,
        a.session
    );
    Ok(0)
}
