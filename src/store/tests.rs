use super::*;
use crate::model::RunStatus;
use rusqlite::Connection;
use std::collections::HashMap;

fn temp_store() -> (tempfile::TempDir, Store) {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = Store::open(&dir.path().join("s/state.db"), OpenMode::Create, false).expect("open");
    (dir, store)
}

fn run(id: &str, status: RunStatus) -> RunRow {
    RunRow {
        id: id.into(),
        tickets: vec!["T-1".into()],
        workspace: "/tmp/ws".into(),
        doc_home_repo: None,
        ticket_dir: None,
        tmux_socket: None,
        policy_path: None,
        orphaned: None,
        tmux_server: None,
        status,
        message: String::new(),
        created_at: 10,
        updated_at: 10,
        status_changed_at: 10,
    }
}

#[test]
fn creates_private_dir_and_file_and_sets_version() {
    let (dir, store) = temp_store();
    let meta = fs::metadata(dir.path().join("s")).expect("dir");
    assert_eq!(meta.permissions().mode() & 0o777, 0o700);
    let meta = fs::metadata(dir.path().join("s/state.db")).expect("db");
    assert_eq!(meta.permissions().mode() & 0o777, 0o600);
    assert_eq!(store.schema_version().expect("v"), SCHEMA_VERSION);
    let mode: String = store
        .conn
        .query_row("PRAGMA journal_mode", [], |r| r.get(0))
        .expect("mode");
    assert_eq!(mode, "wal");
}

#[test]
fn transitions_are_compare_and_swap() {
    let (_d, mut store) = temp_store();
    let tx = store.write().expect("tx");
    tx.insert_run(&run("r1", RunStatus::Running))
        .expect("insert");
    tx.transition_run(
        "r1",
        RunStatus::Running,
        RunStatus::Stopping,
        "stop",
        20,
        "cli",
    )
    .expect("ok");
    let err = tx
        .transition_run(
            "r1",
            RunStatus::Running,
            RunStatus::Stopping,
            "x",
            21,
            "cli",
        )
        .expect_err("stale from");
    assert!(
        err.to_string().contains("is stopping, not running"),
        "{err}"
    );
    let err = tx
        .transition_run(
            "r1",
            RunStatus::Stopping,
            RunStatus::Completed,
            "x",
            21,
            "cli",
        )
        .expect_err("illegal");
    assert_eq!(
        err.to_string(),
        "illegal run transition stopping -> completed for run r1"
    );
    tx.commit().expect("commit");
    assert_eq!(store.run("r1").expect("run").status, RunStatus::Stopping);
}

#[test]
fn refuses_newer_schema_and_foreign_files_without_touching_them() {
    let dir = tempfile::tempdir().expect("tempdir");
    let newer = dir.path().join("newer.db");
    {
        let c = Connection::open(&newer).expect("open");
        c.pragma_update(None, "user_version", 99).expect("v");
    }
    let before = fs::read(&newer).expect("read");
    let err = Store::open(&newer, OpenMode::Create, false)
        .err()
        .expect("must fail");
    assert!(matches!(err, StoreError::NewerSchema(_)), "{err:?}");
    assert!(err.to_string().contains("schema version 99"), "{err}");
    assert_eq!(fs::read(&newer).expect("read"), before);

    let junk = dir.path().join("junk.db");
    fs::write(
        &junk,
        b"this is not a database, just text padding padding padding",
    )
    .expect("w");
    let before = fs::read(&junk).expect("read");
    let err = Store::open(&junk, OpenMode::Create, false)
        .err()
        .expect("must fail");
    assert!(matches!(err, StoreError::Foreign(_)), "{err:?}");
    assert!(
        err.to_string().contains("is not a metawsm database"),
        "{err}"
    );
    assert_eq!(fs::read(&junk).expect("read"), before);

    let other = dir.path().join("other.db");
    {
        let c = Connection::open(&other).expect("open");
        c.execute_batch("CREATE TABLE notes(x TEXT);")
            .expect("create");
    }
    let err = Store::open(&other, OpenMode::Create, false)
        .err()
        .expect("must fail");
    assert!(matches!(err, StoreError::Foreign(_)), "{err:?}");
    assert!(err.to_string().contains("did not create"), "{err}");

    // Another application's file that happens to use user_version 1.
    let same_version = dir.path().join("same.db");
    {
        let c = Connection::open(&same_version).expect("open");
        c.execute_batch("CREATE TABLE notes(x TEXT); PRAGMA user_version = 1;")
            .expect("create");
    }
    let before = fs::read(&same_version).expect("read");
    let err = Store::open(&same_version, OpenMode::Create, false)
        .err()
        .expect("must fail");
    assert!(err.to_string().contains("did not create"), "{err}");
    assert_eq!(fs::read(&same_version).expect("read"), before);
}

#[test]
fn migrates_a_version_1_database() {
    let dir = tempfile::tempdir().expect("tempdir");
    let p = dir.path().join("v1.db");
    {
        let c = Connection::open(&p).expect("open");
        c.execute_batch(MIGRATIONS[0]).expect("v1 schema");
        c.execute_batch(
            "INSERT INTO runs(id, tickets, workspace, status, created_at, updated_at, status_changed_at)
             VALUES ('old', '[\"T\"]', '/w', 'running', 1, 1, 1);
             PRAGMA user_version = 1;",
        )
        .expect("v1 row");
    }
    let s = Store::open(&p, OpenMode::Existing, false).expect("migrated");
    assert_eq!(s.schema_version().expect("v"), SCHEMA_VERSION);
    let r = s.run("old").expect("row kept");
    assert_eq!((r.tickets, r.tmux_socket), (vec!["T".to_string()], None));
    let app: i64 = s
        .conn
        .pragma_query_value(None, "application_id", |r| r.get(0))
        .expect("app id");
    assert_eq!(app, APPLICATION_ID);
}

#[test]
fn existing_mode_never_creates() {
    let dir = tempfile::tempdir().expect("tempdir");
    let p = dir.path().join("nope/state.db");
    assert!(matches!(
        Store::open(&p, OpenMode::Existing, false),
        Err(StoreError::NotFound(_))
    ));
    assert!(!p.exists());
}

#[test]
fn reopen_keeps_everything() {
    let dir = tempfile::tempdir().expect("tempdir");
    let p = dir.path().join("state.db");
    {
        let mut s = Store::open(&p, OpenMode::Create, false).expect("open");
        let tx = s.write().expect("tx");
        tx.insert_run(&run("r1", RunStatus::Running))
            .expect("insert");
        let st = OpState {
            restart_attempts: 2,
            last_restart_at: Some(100),
            cooldown_until: Some(160),
            unhealthy_streak: 1,
            ..Default::default()
        };
        tx.put_op_state("r1", &st, 100).expect("put");
        tx.add_guidance("r1", "a", "/r", "why?", "", 100)
            .expect("g");
        assert_eq!(
            tx.add_guidance("r1", "a", "/r", "why?", "", 101)
                .expect("g"),
            None
        );
        tx.commit().expect("commit");
    }
    let s = Store::open(&p, OpenMode::Existing, false).expect("reopen");
    assert_eq!(s.run("r1").expect("run").tickets, vec!["T-1".to_string()]);
    let st = s.op_state("r1").expect("state");
    assert_eq!((st.restart_attempts, st.cooldown_until), (2, Some(160)));
    assert_eq!(s.pending_guidance("r1").expect("g").len(), 1);
}

#[test]
fn a_write_lock_held_elsewhere_is_busy_by_kind() {
    let (dir, mut store) = temp_store();
    let other = Connection::open(dir.path().join("s/state.db")).expect("open");
    other.execute_batch("BEGIN IMMEDIATE").expect("hold");
    store
        .conn
        .busy_timeout(std::time::Duration::from_millis(50))
        .expect("timeout");
    let err = store.write().err().expect("must be busy");
    assert!(matches!(err, StoreError::Busy(_)), "{err:?}");
    other.execute_batch("ROLLBACK").expect("release");
    assert!(store.write().is_ok());
}

#[test]
fn migrations_are_numbered_files_and_a_fresh_database_has_them_all() {
    let (_dir, store) = temp_store();
    assert_eq!(store.schema_version().expect("version"), SCHEMA_VERSION);
    assert_eq!(SCHEMA_VERSION as usize, MIGRATIONS.len());
}

#[test]
fn has_active_runs_is_runs_false_not_empty() {
    let (_d, mut store) = temp_store();
    assert!(!store.has_active_runs().expect("none"));
    let tx = store.write().expect("tx");
    for (id, status) in [("c", RunStatus::Closed), ("s", RunStatus::Stopped)] {
        tx.insert_run(&run(id, status)).expect("insert");
    }
    tx.commit().expect("commit");
    assert!(!store.has_active_runs().expect("only finished"));
    assert!(store.runs(false).expect("runs").is_empty());
    let tx = store.write().expect("tx");
    tx.insert_run(&run("p", RunStatus::Paused)).expect("insert");
    tx.commit().expect("commit");
    assert!(store.has_active_runs().expect("one paused"));
    assert!(!store.runs(false).expect("runs").is_empty());
}

#[test]
fn what_a_hook_looks_up_is_found_by_index_not_by_a_pass_over_every_run() {
    let (_d, store) = temp_store();
    for q in [
        read::AGENT_BY_SESSION_OR_PANE,
        "SELECT 1 FROM agents WHERE session = ?1",
        "SELECT run_id FROM llm_calls WHERE state = 'in_flight'",
    ] {
        let mut stmt = store
            .conn
            .prepare(&format!("EXPLAIN QUERY PLAN {q}"))
            .expect("explain");
        let plan: Vec<String> = stmt
            .query_map(
                rusqlite::params_from_iter(["s", "%1"].iter().take(q.matches('?').count())),
                |r| r.get::<_, String>(3),
            )
            .expect("plan")
            .map(|r| r.expect("row"))
            .collect();
        assert!(
            plan.iter().all(|step| !step.starts_with("SCAN")),
            "{q}: {plan:?}"
        );
    }
}

#[test]
fn read_only_never_creates_and_never_writes() {
    let dir = tempfile::tempdir().expect("tempdir");
    let p = dir.path().join("s/state.db");
    assert!(matches!(
        Store::open(&p, OpenMode::ReadOnly, false),
        Err(StoreError::NotFound(_))
    ));
    assert!(!dir.path().join("s").exists(), "nothing created");
    let mut w = Store::open(&p, OpenMode::Create, false).expect("create");
    w.write()
        .and_then(|tx| {
            tx.meta_set("k", "v")?;
            tx.commit()
        })
        .expect("write");
    drop(w);
    let mut r = Store::open(&p, OpenMode::ReadOnly, false).expect("read-only");
    assert_eq!(
        r.meta_get("k").expect("read").as_deref(),
        Some("v"),
        "reads the WAL"
    );
    let refused = r.write().and_then(|tx| {
        tx.meta_set("k", "w")?;
        tx.commit()
    });
    assert!(refused.is_err(), "a read-only store cannot write");
    assert_eq!(r.meta_get("k").expect("read").as_deref(), Some("v"));
}

/// A writer's close leaves a small, fresh WAL in place (no fold, no fsync); a reader's
/// close never folds, however large the WAL.
#[test]
fn closing_folds_only_a_large_wal_and_only_after_a_write() {
    let dir = tempfile::tempdir().expect("tempdir");
    let p = dir.path().join("state.db");
    let wal = wal_path(&p);
    let write = |value: &str| {
        let mut s = Store::open(&p, OpenMode::Create, false).expect("open");
        let tx = s.write().expect("tx");
        tx.meta_set("k", value).expect("set");
        tx.commit().expect("commit");
    };
    write("small");
    let small = fs::metadata(&wal).expect("the WAL stays").len();
    assert!(small > 0 && small <= WAL_FOLD_BYTES, "{small}");
    let big = "x".repeat(WAL_FOLD_BYTES as usize);
    {
        // Grown past the bound by a connection that does not fold: a reader leaves it.
        let c = Connection::open(&p).expect("open");
        c.set_db_config(DbConfig::SQLITE_DBCONFIG_NO_CKPT_ON_CLOSE, true)
            .expect("config");
        c.execute("UPDATE meta SET value = ?1 WHERE key = 'k'", [&big])
            .expect("grow");
    }
    let grown = fs::metadata(&wal).expect("wal").len();
    assert!(grown > WAL_FOLD_BYTES, "{grown}");
    drop(Store::open(&p, OpenMode::Existing, false).expect("reader"));
    assert_eq!(
        fs::metadata(&wal).expect("wal").len(),
        grown,
        "a reader never folds"
    );
    write("after");
    assert_eq!(
        fs::metadata(&wal).expect("wal").len(),
        0,
        "the writer folded it"
    );
    let r = Store::open(&p, OpenMode::ReadOnly, false).expect("open");
    assert_eq!(r.meta_get("k").expect("read").as_deref(), Some("after"));
}

/// A reader in the middle of a read does not hold a writer's close for the busy timeout
/// (2 s): the fold waits briefly, gives up, and a later writer folds.
#[test]
fn a_fold_waits_briefly_for_a_reader() {
    let dir = tempfile::tempdir().expect("tempdir");
    let p = dir.path().join("state.db");
    let write = |value: &str| {
        let mut s = Store::open(&p, OpenMode::Create, false).expect("open");
        let tx = s.write().expect("tx");
        tx.meta_set("k", value).expect("set");
        tx.commit().expect("commit");
        let start = std::time::Instant::now();
        drop(s);
        start.elapsed()
    };
    write("first");
    let reader = Connection::open(&p).expect("reader");
    reader
        .set_db_config(DbConfig::SQLITE_DBCONFIG_NO_CKPT_ON_CLOSE, true)
        .expect("config");
    reader.execute_batch("BEGIN").expect("begin");
    let _: i64 = reader
        .query_row("SELECT count(*) FROM meta", [], |r| r.get(0))
        .expect("read");
    let closing = write(&"x".repeat(WAL_FOLD_BYTES as usize));
    assert!(closing < Duration::from_secs(1), "{closing:?}");
    assert!(fs::metadata(wal_path(&p)).expect("wal").len() > WAL_FOLD_BYTES);
    reader.execute_batch("COMMIT").expect("end the read");
    drop(reader);
    write("later");
    assert_eq!(fs::metadata(wal_path(&p)).expect("wal").len(), 0);
}

#[test]
fn runs_and_agents_by_run_keep_the_orders_sql_gave() {
    // Runs sorted in Rust must come out as `ORDER BY created_at, id` did; agents grouped
    // from a rowid scan as `ORDER BY run_id, rowid` grouped them.
    let (_dir, store) = temp_store();
    let c = &store.conn;
    let runs = [("b", 5), ("a", 5), ("Z", 5), ("é", 1), ("c", 9), ("a-1", 5)];
    for (id, at) in runs {
        c.execute(
            "INSERT INTO runs(id, tickets, workspace, status, created_at, updated_at,
                              status_changed_at) VALUES (?1, '[]', '/ws', 'running', ?2, 1, 1)",
            rusqlite::params![id, at],
        )
        .expect("run");
    }
    for (i, name) in ["z", "a", "m", "b"].iter().enumerate() {
        for (id, _) in runs {
            c.execute(
                "INSERT INTO agents(run_id, name, session, argv, workdir, status, health,
                                    started_at, updated_at)
                 VALUES (?1, ?2, ?3, '[]', '/ws', 'running', 'healthy', ?4, 1)",
                rusqlite::params![id, name, format!("{id}-{name}"), i as i64],
            )
            .expect("agent");
        }
    }
    let sql: Vec<String> = c
        .prepare("SELECT id FROM runs ORDER BY created_at, id")
        .expect("prepare")
        .query_map([], |r| r.get(0))
        .expect("query")
        .collect::<rusqlite::Result<_>>()
        .expect("rows");
    let ids: Vec<String> = store
        .runs(true)
        .expect("runs")
        .into_iter()
        .map(|r| r.id)
        .collect();
    assert_eq!(ids, sql);
    let mut grouped: HashMap<String, Vec<String>> = HashMap::new();
    for a in store.agents(None).expect("agents") {
        grouped.entry(a.run_id).or_default().push(a.name);
    }
    let by_run: HashMap<String, Vec<String>> = store
        .agents_by_run()
        .expect("agents by run")
        .into_iter()
        .map(|(k, v)| (k, v.into_iter().map(|a| a.name).collect()))
        .collect();
    assert_eq!(by_run, grouped);
    assert_eq!(by_run["a"], ["z", "a", "m", "b"]);
}
