//! The state files: the cached `status` path never opens SQLite, and the lock, status
//! cache, database and state directory are private to the user.

mod common;

use common::{fast_policy, Env};
use serde_json::json;
use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::PathBuf;

fn beside(db: &std::path::Path, suffix: &str) -> PathBuf {
    let mut p = db.as_os_str().to_owned();
    p.push(suffix);
    PathBuf::from(p)
}

#[test]
fn cached_status_never_opens_sqlite() {
    // No tick due for an hour: every status call below is the cached path.
    let env = Env::with_policy(fast_policy(
        json!({"operator": {"tick_interval_seconds": 3600}}),
    ));
    env.start("c", &["sleep", "1000000"]);
    env.tick();
    let cached = env.ok(&["status", "--format", "plain"]);
    assert_eq!(cached, "⚙1\n");
    // The database becomes a directory: any SQLite open of it fails.
    fs::rename(&env.db, env.path("moved.db")).expect("move db");
    for side in ["-wal", "-shm"] {
        let _ = fs::remove_file(beside(&env.db, side));
    }
    fs::create_dir(&env.db).expect("dir in the db's place");
    for args in [
        &["status", "--format", "plain"][..],
        &["status", "--format", "plain", "--no-tick"],
    ] {
        assert_eq!(env.ok(args), cached, "{args:?}");
    }
    // Without the cache the same call has to open the database, and says it cannot.
    fs::remove_file(beside(&env.db, ".status")).expect("rm cache");
    assert_eq!(
        env.ok(&["status", "--format", "plain"]),
        "metawsm:!db\n",
        "the control: this path does open SQLite"
    );
}

#[test]
fn lock_status_cache_and_database_are_private() {
    let env = Env::new();
    env.start("m", &["sleep", "1000000"]);
    env.tick();
    let mode = |p: &std::path::Path| {
        fs::metadata(p)
            .unwrap_or_else(|e| panic!("{}: {e}", p.display()))
            .permissions()
            .mode()
            & 0o777
    };
    assert_eq!(mode(&beside(&env.db, ".lock")), 0o600, "lock");
    assert_eq!(mode(&beside(&env.db, ".status")), 0o600, "status cache");
    assert_eq!(mode(&env.db), 0o600, "database");
    assert_eq!(
        mode(env.db.parent().expect("dir")),
        0o700,
        "state directory"
    );
}
