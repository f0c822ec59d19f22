//! `metawsm-tick __llm-worker --run ID --fingerprint FP` (hidden): the detached LLM
//! worker a tick starts; the work itself is in `crate::worker`.

use crate::cli::{self, CliError, CliResult, Ctx};
use lexopt::prelude::*;

pub fn main(parser: &mut lexopt::Parser, ctx: &Ctx) -> CliResult<i32> {
    let (mut run, mut fp) = (None, None);
    while let Some(arg) = parser.next()? {
        match arg {
            Long("run") => run = Some(cli::os_to_string(parser.value()?, "--run")?),
            Long("fingerprint") => fp = Some(cli::os_to_string(parser.value()?, "--fingerprint")?),
            other => return Err(other.unexpected().into()),
        }
    }
    let (Some(run), Some(fp)) = (run, fp) else {
        return Err(CliError::Usage(
            "__llm-worker: --run and --fingerprint are required".into(),
        ));
    };
    crate::worker::serve(ctx, &run, &fp)
}
