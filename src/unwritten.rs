//! Escalations that could not reach a changelog (no ticket directory, unwritable file):
//! kept per run in one meta key so the tick output and the status bar can say so, not
//! only an event. An entry lasts while the run's alert episode lasts.

use crate::store::Result;
use std::collections::{BTreeMap, HashSet};

pub const META_KEY: &str = "escalation_unwritten";
/// What the status bar shows while any escalation is unwritten.
pub const MARKER: &str = "metawsm:!changelog";

pub type Map = BTreeMap<String, String>;

pub fn parse(text: Option<&str>) -> Map {
    text.and_then(|t| serde_json::from_str(t).ok())
        .unwrap_or_default()
}

/// Pure: `updates` = (run, Some(why) when unwritten, None when written); runs that are
/// no longer alerting (`keep` false) are dropped.
pub fn update(
    mut m: Map,
    updates: &[(String, Option<String>)],
    keep: impl Fn(&str) -> bool,
) -> Map {
    for (run, why) in updates {
        match why {
            Some(w) => {
                m.insert(run.clone(), w.clone());
            }
            None => {
                m.remove(run);
            }
        }
    }
    m.retain(|run, _| keep(run));
    m
}

/// After a tick's escalations: records which entries were (not) written, and drops the
/// marks of runs whose alert episode ended. Nothing is written when there is nothing to do.
pub fn after_escalations(
    store: &mut crate::store::Store,
    ticked: &[(String, bool)],
    entries: &[(String, Option<String>)],
) -> Result<()> {
    let old = parse(store.meta_get(META_KEY)?.as_deref());
    if entries.is_empty() && old.is_empty() {
        return Ok(());
    }
    // `ticked` = (run, its alert episode is open); runs this tick did not look at keep theirs.
    let alerting: HashSet<String> = ticked
        .iter()
        .filter(|(_, open)| *open)
        .map(|(id, _)| id.clone())
        .chain(
            store
                .runs(false)?
                .into_iter()
                .map(|r| r.id)
                .filter(|id| !ticked.iter().any(|(t, _)| t == id)),
        )
        .collect();
    let new = update(old.clone(), entries, |r| alerting.contains(r));
    if new != old {
        let text = serde_json::to_string(&new).unwrap_or_else(|_| "{}".into());
        let tx = store.write()?;
        tx.meta_set(META_KEY, &text)?;
        tx.commit()?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entries_last_while_the_episode_does() {
        let m = update(
            Map::new(),
            &[
                ("a".into(), Some("no ticket dir".into())),
                ("b".into(), None),
            ],
            |_| true,
        );
        assert_eq!(m.get("a").map(String::as_str), Some("no ticket dir"));
        let m = update(m, &[("a".into(), None)], |_| true);
        assert!(m.is_empty());
        let m = update(m, &[("a".into(), Some("x".into()))], |_| true);
        assert!(update(m, &[], |r| r != "a").is_empty());
        assert!(parse(Some("garbage")).is_empty());
    }
}
