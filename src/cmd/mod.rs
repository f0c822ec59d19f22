//! One file per subcommand; this file only routes.

pub mod approve;
pub mod commands;
pub mod completions;
pub mod dismiss;
pub mod doctor;
pub mod guide;
pub mod hook;
pub mod import;
pub mod init;
pub mod llm_worker;
pub mod log;
pub mod man;
pub mod menu;
pub mod notify_run;
pub mod policy;
pub mod run;
pub mod run_add_agent;
pub mod run_adopt;
pub mod run_forget;
pub mod run_list;
pub mod run_restart;
pub mod run_revive;
pub mod run_show;
pub mod run_start;
pub mod run_stop;
pub mod select;
pub mod signal;
pub mod status;
pub mod svg;
pub mod tick;
pub mod timer;
pub mod tmux_setup;

use crate::cli::{CliError, CliResult, Ctx, Globals};
use crate::lock::{StateLock, Wait};
use std::time::Duration;

pub fn dispatch(name: &str, parser: &mut lexopt::Parser, g: &Globals) -> CliResult<i32> {
    let ctx = Ctx::resolve(g);
    match name {
        "tick" => tick::main(parser, &ctx),
        "status" => status::main(parser, &ctx),
        "run" => run::main(parser, &ctx),
        "guide" => guide::main(parser, &ctx),
        "approve" => approve::main(parser, &ctx),
        "dismiss" => dismiss::main(parser, &ctx),
        "menu" => menu::main(parser, &ctx),
        "signal" => signal::main(parser, &ctx),
        "log" => log::main(parser, &ctx),
        "policy" => policy::main(parser, &ctx),
        "doctor" => doctor::main(parser, &ctx),
        "hook" => hook::main(parser, &ctx),
        "import" => import::main(parser, &ctx),
        "timer" => timer::main(parser, &ctx),
        "tmux-setup" => tmux_setup::main(parser, &ctx),
        "completions" => completions::main(parser, &ctx),
        "man" => man::main(parser, &ctx),
        "init" => init::main(parser, &ctx),
        "__runs" => completions::runs(parser, &ctx),
        "__reference" => man::reference(parser, &ctx),
        "__svg" => svg::main(parser, &ctx),
        "__policy-keys" => policy::keys(parser, &ctx),
        "__llm-worker" => llm_worker::main(parser, &ctx),
        "__notify" => notify_run::main(parser, &ctx),
        other => Err(CliError::Usage(format!(
            "unknown command '{other}' (see metawsm-tick --help)"
        ))),
    }
}

/// Parses a subcommand that takes one RUN and `--help`: None when help was printed.
pub fn one_run(parser: &mut lexopt::Parser, help: &str, cmd: &str) -> CliResult<Option<String>> {
    use lexopt::prelude::*;
    let mut id = None;
    while let Some(arg) = parser.next()? {
        match arg {
            Short('h') | Long("help") => {
                crate::cli::print_help(help);
                return Ok(None);
            }
            Value(v) if id.is_none() => id = Some(crate::cli::os_to_string(v, "RUN")?),
            other => return Err(other.unexpected().into()),
        }
    }
    id.map(Some)
        .ok_or_else(|| CliError::Usage(format!("{cmd}: RUN is required")))
}

/// Parses a subcommand that takes only `--help`.
pub fn no_args(parser: &mut lexopt::Parser, help: &str) -> CliResult<bool> {
    use lexopt::prelude::*;
    match parser.next()? {
        None => Ok(false),
        Some(Short('h') | Long("help")) => {
            crate::cli::print_help(help);
            Ok(true)
        }
        Some(other) => Err(other.unexpected().into()),
    }
}

/// If the next argument is `--`, everything after it: the agent's argv (no shell).
pub fn take_argv(parser: &mut lexopt::Parser) -> CliResult<Option<Vec<String>>> {
    let Some(mut raw) = parser.try_raw_args() else {
        return Ok(None);
    };
    if raw.peek().and_then(|a| a.to_str()) != Some("--") {
        return Ok(None);
    }
    raw.next();
    let mut argv = Vec::new();
    for v in raw {
        argv.push(crate::cli::os_to_string(v, "agent command")?);
    }
    Ok(Some(argv))
}

/// The state lock for a command that changes state: waits up to 30 s for a tick.
pub fn lock(ctx: &Ctx) -> CliResult<StateLock> {
    StateLock::acquire(&ctx.db, Wait::Bounded(Duration::from_secs(30)))
        .map_err(|e| CliError::Failure(format!("lock: {e}")))?
        .ok_or_else(|| {
            CliError::Failure("another metawsm-tick holds the state lock for more than 30 s".into())
        })
}
