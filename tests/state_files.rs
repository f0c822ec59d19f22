//! The state files: the cached `status` path never opens SQLite, nor does a status job of
//! the tmux bar that finds a tick due; the lock, status
//! cache, database, its WAL and state directory are private to the user; a committing
//! tick only appends to the WAL, which a writer folds into the database when large or old.

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
    // A tick due (the cache says so): a bar job (tmux sets TMUX) answers from the cache
    // alone and hands the tick off; from a shell the same call ticks inline, so it opens
    // the database.
    let cache = beside(&env.db, ".status");
    let mut c: serde_json::Value =
        serde_json::from_slice(&fs::read(&cache).expect("cache")).expect("cache json");
    c["last_full_tick"] = 1.into();
    fs::write(&cache, c.to_string()).expect("write cache");
    let job = env
        .cmd(&["status", "--format", "plain"])
        .env("TMUX", "/tmp/not-used,1,0")
        .output()
        .expect("status");
    assert_eq!(
        String::from_utf8_lossy(&job.stdout),
        cached,
        "a bar job, tick due"
    );
    assert_eq!(
        env.ok(&["status", "--format", "plain"]),
        "metawsm:!db\n",
        "from a shell, tick due"
    );
    // Without the cache the same call has to open the database, and says it cannot.
    fs::remove_file(beside(&env.db, ".status")).expect("rm cache");
    assert_eq!(
        env.ok(&["status", "--format", "plain"]),
        "metawsm:!db\n",
        "the control: this path does open SQLite"
    );
}

#[test]
fn a_bar_job_drops_the_cache_of_a_removed_database() {
    let env = Env::new();
    env.start("c", &["sleep", "1000000"]);
    env.tick();
    for side in ["", "-wal", "-shm"] {
        let _ = fs::remove_file(beside(&env.db, side));
    }
    let job = || {
        let out = env
            .cmd(&["status", "--format", "plain"])
            .env("TMUX", "/tmp/not-used,1,0")
            .output()
            .expect("status");
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    // The tick interval is 1 s: a call finds a tick due, its handed-off tick finds no
    // database and drops the cache, and the bar prints nothing, as without a database.
    common::wait_for(
        "an empty segment",
        std::time::Duration::from_secs(30),
        || (job() == "\n").then_some(()),
    );
    assert!(!beside(&env.db, ".status").exists());
    assert!(!env.db.exists(), "no database created");
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
    assert_eq!(
        mode(&beside(&env.db, ".observe")),
        0o600,
        "observation hint"
    );
    assert_eq!(mode(&env.db), 0o600, "database");
    // The WAL stays between processes (it holds the same rows), and its index with it.
    assert_eq!(mode(&beside(&env.db, "-wal")), 0o600, "WAL");
    assert_eq!(mode(&beside(&env.db, "-shm")), 0o600, "WAL index");
    assert_eq!(
        mode(env.db.parent().expect("dir")),
        0o700,
        "state directory"
    );
}

fn len(p: &std::path::Path) -> u64 {
    fs::metadata(p).map_or(0, |m| m.len())
}

/// A committing tick appends to the WAL and syncs nothing: the database file, written
/// only when the WAL is folded, keeps its bytes and mtime; the WAL stays for the next
/// process (SQLite's own close would fold and delete it, with 4 fsyncs, every tick).
#[test]
fn a_committing_tick_appends_to_the_wal_and_leaves_the_database_file_alone() {
    let env = Env::new();
    env.start("w", &["sleep", "1000000"]);
    env.tick();
    let wal = beside(&env.db, "-wal");
    let before = (
        fs::read(&env.db).expect("db"),
        fs::metadata(&env.db).expect("db").modified().ok(),
    );
    let wal_before = len(&wal);
    // A second later, so the tick commits a new last_full_tick.
    std::thread::sleep(std::time::Duration::from_millis(1100));
    env.tick();
    assert!(
        len(&wal) > wal_before,
        "the WAL grew: {wal_before} -> {}",
        len(&wal)
    );
    let after = (
        fs::read(&env.db).expect("db"),
        fs::metadata(&env.db).expect("db").modified().ok(),
    );
    assert!(
        before == after,
        "the database file changed on a committing tick"
    );
}

/// A WAL past the size bound is folded by the next writer as it closes (a tick), never by
/// a reader (listings, status): after it the WAL is empty and the database holds all.
#[test]
fn a_large_wal_is_folded_by_the_next_writer_never_by_a_reader() {
    use rusqlite::config::DbConfig;
    // No tick due for an hour: `status` below only reads (a due one would tick, and write).
    let env = Env::with_policy(fast_policy(
        json!({"operator": {"tick_interval_seconds": 3600}}),
    ));
    env.start("f", &["sleep", "1000000"]);
    env.tick();
    // Grow the WAL past the bound (256 KiB) as our writers do: no fold on close.
    let c = rusqlite::Connection::open(&env.db).expect("open");
    c.set_db_config(DbConfig::SQLITE_DBCONFIG_NO_CKPT_ON_CLOSE, true)
        .expect("config");
    c.execute(
        "INSERT INTO events(at, kind, message) VALUES (0, 'bulk', hex(randomblob(200000)))",
        [],
    )
    .expect("insert");
    drop(c);
    let wal = beside(&env.db, "-wal");
    let grown = len(&wal);
    assert!(grown > 300_000, "{grown}");
    for args in [
        &["run", "list"][..],
        &["log"],
        &["status", "--format", "plain"],
        &["tick", "--dry-run"],
    ] {
        env.ok(args);
        assert_eq!(len(&wal), grown, "{args:?} must not fold the WAL");
    }
    std::thread::sleep(std::time::Duration::from_millis(1100));
    env.tick();
    assert_eq!(len(&wal), 0, "the committing tick folded the WAL");
    assert!(
        len(&env.db) > 400_000,
        "the database holds the folded pages"
    );
    let n = env.sql("SELECT count(*) FROM events WHERE kind = 'bulk'");
    assert_eq!(n[0][0], "1");
}

/// However little is written, a writer folds a WAL that has not been folded for five
/// minutes: that bounds what a power loss can take back.
#[test]
fn an_old_wal_is_folded_by_the_next_writer() {
    let env = Env::new();
    env.start("o", &["sleep", "1000000"]);
    env.tick();
    let wal = beside(&env.db, "-wal");
    std::thread::sleep(std::time::Duration::from_millis(1100));
    env.tick();
    assert!(len(&wal) > 0, "a small WAL stays");
    let old = std::time::SystemTime::now() - std::time::Duration::from_secs(600);
    fs::File::options()
        .write(true)
        .open(&env.db)
        .and_then(|f| f.set_modified(old))
        .expect("age the database file");
    std::thread::sleep(std::time::Duration::from_millis(1100));
    env.tick();
    assert_eq!(len(&wal), 0, "folded");
}
