//! `metawsm-tick __notify -- CMD…` (hidden): runs the user's notify command detached
//! from the tick, killing its process group after 5 s.

use crate::cli::{self, CliResult};

pub fn main(parser: &mut lexopt::Parser) -> CliResult<i32> {
    let mut argv = Vec::new();
    if let Ok(raw) = parser.raw_args() {
        for a in raw {
            argv.push(cli::os_to_string(a, "notify argument")?);
        }
    }
    if argv.first().is_some_and(|a| a == "--") {
        argv.remove(0);
    }
    Ok(crate::notify::supervise(&argv))
}
