//! metawsm-tick: keeps AI coding agents in tmux moving. One short process per call.

mod actions;
mod adopt;
mod agents;
mod changelog;
mod cli;
mod clock;
mod cmd;
mod decide;
mod escape;
mod evidence;
mod fsio;
mod gate;
mod health;
mod import;
mod json_dups;
mod llm;
mod llm_command;
mod llm_request;
mod lock;
mod menu;
mod model;
mod names;
mod notify;
mod original;
mod orphan;
mod policy;
mod proc;
mod project_policy;
mod question;
mod reaper;
mod reason;
mod render;
mod resume;
mod revive;
mod schedule;
mod screen;
mod signals;
mod status_cache;
mod status_handoff;
mod store;
mod tick;
mod timeutil;
mod tmux;
mod unwritten;
mod worker;

use cli::{CliError, Globals, EXIT_OK};
use lexopt::prelude::*;

fn main() {
    store::configure_sqlite();
    quiet_on_closed_pipe();
    let code = match real_main() {
        Ok(code) => code,
        Err(e) => {
            eprintln!("metawsm-tick: {}", escape::human(&e.to_string()));
            e.code()
        }
    };
    std::process::exit(code);
}

/// `metawsm-tick log | head -1`: a reader that stops early closes our stdout. Rust
/// ignores SIGPIPE and `println!` then panics; end quietly with 0 instead, as ripgrep
/// does. (SIGPIPE stays ignored: a worker writing to a child that exited must get an
/// error, not die.)
fn quiet_on_closed_pipe() {
    let default = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        let msg = info
            .payload()
            .downcast_ref::<String>()
            .map(String::as_str)
            .or_else(|| info.payload().downcast_ref::<&str>().copied())
            .unwrap_or("");
        if msg.contains("Broken pipe") {
            if msg.starts_with("failed printing to stdout") {
                std::process::exit(EXIT_OK);
            }
            if msg.starts_with("failed printing to stderr") {
                std::process::exit(cli::EXIT_FAILURE);
            }
        }
        default(info)
    }));
}

fn real_main() -> Result<i32, CliError> {
    let mut parser = lexopt::Parser::from_env();
    let mut g = Globals::default();
    while let Some(arg) = parser.next()? {
        match arg {
            Long("db") => g.db = Some(parser.value()?.into()),
            Long("policy") => g.policy = Some(parser.value()?.into()),
            Long("tmux-socket") => {
                g.socket = Some(cli::os_to_string(parser.value()?, "--tmux-socket")?)
            }
            Short('h') | Long("help") => {
                cli::print_help(cmd::commands::TOP_HELP);
                return Ok(EXIT_OK);
            }
            Short('V') | Long("version") => {
                println!("metawsm-tick {}", cli::VERSION);
                return Ok(EXIT_OK);
            }
            Value(v) => {
                let name = cli::os_to_string(v, "command")?;
                return cmd::dispatch(&name, &mut parser, &g);
            }
            other => return Err(other.unexpected().into()),
        }
    }
    cmd::dispatch("tick", &mut parser, &g)
}
