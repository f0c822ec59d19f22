//! `metawsm-tick __notify -- CMD…` (hidden): runs the user's notify command detached
//! from the tick, killing its process group after 5 s. A failure or timeout is recorded
//! as a `notify_failed` event (shown by `log` and `doctor`): nobody watches this process.

use crate::cli::{self, CliResult, Ctx};
use crate::store::{self, NewEvent, OpenMode, Store};

pub fn main(parser: &mut lexopt::Parser, ctx: &Ctx) -> CliResult<i32> {
    let mut argv = Vec::new();
    if let Ok(raw) = parser.raw_args() {
        for a in raw {
            argv.push(cli::os_to_string(a, "notify argument")?);
        }
    }
    if argv.first().is_some_and(|a| a == "--") {
        argv.remove(0);
    }
    match crate::notify::supervise(&argv) {
        Ok(()) => Ok(0),
        Err(why) => {
            let run = std::env::var("METAWSM_RUN_ID").ok();
            let event = std::env::var("METAWSM_EVENT").unwrap_or_default();
            let msg = format!("{event}: {why}");
            let _ = record_failure(ctx, run.as_deref(), &msg);
            Ok(1)
        }
    }
}

fn record_failure(ctx: &Ctx, run: Option<&str>, msg: &str) -> Result<(), store::StoreError> {
    let mut s = Store::open(&ctx.db, OpenMode::Existing, false)?;
    let now = crate::timeutil::now_unix();
    let tx = s.write()?;
    // A run forgotten meanwhile must not lose the record (events.run_id has no FK).
    tx.add_event(
        now,
        &NewEvent {
            run_id: run,
            kind: "notify_failed",
            message: msg,
            source: "rule",
            ..Default::default()
        },
    )?;
    tx.commit()?;
    Ok(())
}
