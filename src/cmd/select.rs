//! `--ticket T` wherever the original metawsm accepted it: the ticket's one active run.

use crate::cli::{CliError, CliResult, Ctx};
use crate::store::OpenMode;

/// The run named by `id`, or by `ticket` (its one active run). Two active runs for the
/// ticket are a usage error (exit 2) that lists them; none is a failure (exit 1).
pub fn run_id(
    ctx: &Ctx,
    what: &str,
    id: Option<String>,
    ticket: Option<String>,
) -> CliResult<String> {
    match (id, ticket) {
        (Some(_), Some(_)) => Err(CliError::Usage(format!(
            "{what}: give RUN or --ticket, not both"
        ))),
        (Some(id), None) => Ok(id),
        (None, None) => Err(CliError::Usage(format!(
            "{what}: RUN or --ticket T is required"
        ))),
        (None, Some(t)) => {
            let st = ctx.open(OpenMode::ReadOnly, false)?;
            let runs: Vec<_> = st
                .runs(false)?
                .into_iter()
                .filter(|r| r.tickets.contains(&t))
                .collect();
            match runs.as_slice() {
                [one] => Ok(one.id.clone()),
                [] => Err(CliError::Failure(format!(
                    "{what}: no active run for ticket {t}"
                ))),
                many => Err(CliError::Usage(format!(
                    "{what}: ticket {t} has {} active runs: {}; name one",
                    many.len(),
                    many.iter()
                        .map(|r| format!("{} ({})", r.id, r.status))
                        .collect::<Vec<_>>()
                        .join(", ")
                ))),
            }
        }
    }
}
