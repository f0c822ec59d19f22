//! `metawsm-tick run …`: routes to one file per run subcommand.

use crate::cli::{self, CliError, CliResult, Ctx};
use lexopt::prelude::*;

pub const HELP: &str = "\
Usage: metawsm-tick run <COMMAND>

Commands:
  start       Register a run and start its agent in its own tmux session
  adopt       Supervise agents already running in tmux panes (or --scan for them)
  add-agent   Add another agent (its own session) to a run
  list        List runs (active ones unless --all)
  show        Show one run: agents, operator state, guidance, recent events
  stop        Stop a run and kill its agent sessions
  restart     Restart a run's agents (all, or one with --agent); resets the restart budget
  forget      Delete a stopped or completed run's rows
  revive      Start an orphaned run's agents again on this tmux server (after a reboot)

Run 'metawsm-tick run <COMMAND> --help' for details.
";

pub fn main(parser: &mut lexopt::Parser, ctx: &Ctx) -> CliResult<i32> {
    let Some(arg) = parser.next()? else {
        cli::print_help(HELP);
        return Err(CliError::Usage(
            "run: missing command (start|adopt|add-agent|list|show|stop|restart|forget|revive)"
                .into(),
        ));
    };
    match arg {
        Short('h') | Long("help") => {
            cli::print_help(HELP);
            Ok(0)
        }
        Value(v) => match cli::os_to_string(v, "run command")?.as_str() {
            "start" => super::run_start::main(parser, ctx),
            "adopt" => super::run_adopt::main(parser, ctx),
            "add-agent" => super::run_add_agent::main(parser, ctx),
            "list" => super::run_list::main(parser, ctx),
            "show" => super::run_show::main(parser, ctx),
            "stop" => super::run_stop::main(parser, ctx),
            "restart" => super::run_restart::main(parser, ctx),
            "forget" => super::run_forget::main(parser, ctx),
            "revive" => super::run_revive::main(parser, ctx),
            other => Err(CliError::Usage(format!(
                "run: unknown command '{other}' (start|adopt|add-agent|list|show|stop|restart|forget|revive)"
            ))),
        },
        other => Err(other.unexpected().into()),
    }
}
