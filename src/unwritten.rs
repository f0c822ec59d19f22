//! Escalations that could not reach a changelog (no ticket directory, unwritable file):
//! kept per run in one meta key so the tick output and the status bar can say so, not
//! only an event. An entry lasts while the run's alert episode lasts.

use crate::model::FastMap;
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
/// `ticked` = (run, its alert episode is open): a run this tick looked at keeps its entry
/// while its episode is open, one it did not look at (another server's) while it is active.
pub fn after_escalations(
    store: &mut crate::store::Store,
    ticked: &[(&str, bool)],
    entries: &[(String, Option<String>)],
) -> Result<()> {
    let old = parse(store.meta_get(META_KEY)?.as_deref());
    if entries.is_empty() && old.is_empty() {
        return Ok(());
    }
    let mut open: FastMap<&str, bool> = FastMap::default();
    for (run, o) in ticked {
        *open.entry(run).or_default() |= *o;
    }
    // Only a run this tick did not look at needs the active runs (a query over every
    // run); each one was also compared with every ticked run (quadratic in N).
    let unlooked = old
        .keys()
        .chain(entries.iter().map(|(run, _)| run))
        .any(|run| !open.contains_key(run.as_str()));
    let active: HashSet<String> = if unlooked {
        store.runs(false)?.into_iter().map(|r| r.id).collect()
    } else {
        HashSet::new()
    };
    let new = update(old.clone(), entries, |r| {
        open.get(r).copied().unwrap_or_else(|| active.contains(r))
    });
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
    fn marks_of_runs_the_tick_did_not_look_at_last_while_the_run_is_active() {
        use crate::store::{OpenMode, Store};
        let dir = tempfile::tempdir().expect("tmp");
        let mut store =
            Store::open(&dir.path().join("state.db"), OpenMode::Create, false).expect("open");
        for (id, status) in [("elsewhere", "running"), ("ended", "stopped")] {
            store
                .conn
                .execute(
                    "INSERT INTO runs(id, tickets, workspace, status, created_at, updated_at,
                                      status_changed_at) VALUES (?1, '[]', '/ws', ?2, 1, 1, 1)",
                    rusqlite::params![id, status],
                )
                .expect("run");
        }
        let marks = |store: &Store| parse(store.meta_get(META_KEY).expect("meta").as_deref());
        let old: Map = ["open", "closed", "elsewhere", "ended"]
            .iter()
            .map(|r| (r.to_string(), "why".to_string()))
            .collect();
        let tx = store.write().expect("tx");
        tx.meta_set(META_KEY, &serde_json::to_string(&old).expect("json"))
            .expect("set");
        tx.commit().expect("commit");
        // Looked at: kept while the episode is open. Not looked at: while active.
        after_escalations(&mut store, &[("open", true), ("closed", false)], &[]).expect("after");
        let kept: Vec<String> = marks(&store).into_keys().collect();
        assert_eq!(kept, ["elsewhere", "open"]);
        // A new entry of a run looked at, the others as before.
        after_escalations(
            &mut store,
            &[("open", true), ("new", true)],
            &[("new".into(), Some("no dir".into()))],
        )
        .expect("after");
        let kept: Vec<String> = marks(&store).into_keys().collect();
        assert_eq!(kept, ["elsewhere", "new", "open"]);
    }

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
