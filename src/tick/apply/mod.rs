//! Carrying out the plan: the state it implies in one transaction (`record.rs`), then
//! the tmux actions, restart and stop (`act.rs`), and the escalations of new alerts,
//! changelog, notify, tmux message and bell (`escalate.rs`), each at most once.

mod act;
mod escalate;
mod record;

pub use act::{act, ActionOutcome};
pub use escalate::escalate;
pub(crate) use record::LAST_OBSERVED;
pub use record::{drain_inbox, record};
