//! Tests of status_cache.rs (moved out whole: the module and its tests passed 650 lines).

use super::*;
use crate::store::OpenMode;

#[test]
fn round_trips_and_tolerates_garbage() {
    let dir = tempfile::tempdir().expect("tmp");
    let db = dir.path().join("state.db");
    let store = Store::open(&db, OpenMode::Create, false).expect("open");
    let c = refresh(&store).expect("refresh");
    assert_eq!(read(&db), Some(c));
    fs::write(path(&db), b"{not json").expect("w");
    assert_eq!(read(&db), None);
}

/// The rows a full tick reads, as `observe` reads them.
fn rows_as_a_tick_reads_them(store: &Store) -> Vec<StatusRow> {
    let mut agents: FastMap<String, Vec<AgentRow>> = FastMap::default();
    for a in store.agents(None).expect("agents") {
        agents.entry(a.run_id.clone()).or_default().push(a);
    }
    rows_of(
        &store.runs(false).expect("runs"),
        &agents,
        &store.all_pending_guidance().expect("guidance"),
        &store.approvals().expect("approvals"),
        &store.op_states().expect("op states"),
    )
}

fn sorted(mut rows: Vec<StatusRow>) -> Vec<String> {
    let mut v: Vec<String> = rows.drain(..).map(|r| format!("{r:?}")).collect();
    v.sort();
    v
}

#[test]
fn rows_built_in_memory_equal_the_aggregate_query() {
    let dir = tempfile::tempdir().expect("tmp");
    let db = dir.path().join("state.db");
    let store = Store::open(&db, OpenMode::Create, false).expect("open");
    let statuses = crate::model::RunStatus::NAMES;
    let healths = [
        "healthy", "idle", "stalled", "dead", "exited", "unknown", "bogus",
    ];
    let signals = [
        None,
        Some("working"),
        Some("waiting"),
        Some("done"),
        Some("bogus"),
    ];
    let guidance = ["pending", "answered", "withdrawn", "resolved"];
    let approvals = [None, Some("pending"), Some("dismissed"), Some("bogus")];
    let alerts = [None, Some("escalate_blocked"), Some("escalate_guidance")];
    // A small deterministic generator: every value of every column meets the others.
    let mut seed = 0x2545_f491_4f6c_dd1d_u64;
    let mut next = |n: usize| {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        (seed % n as u64) as usize
    };
    let c = &store.conn;
    // Every health meets every signal (35 agents in turn).
    let mut combo = 0;
    for i in 0..120 {
        let run = format!("r{i}");
        let status = statuses[i % statuses.len()];
        let socket = (next(3) > 0).then(|| format!("/nonexistent/sock{}", next(2)));
        let orphaned = (next(6) == 0).then_some("server gone");
        c.execute(
            "INSERT INTO runs(id, tickets, workspace, status, created_at, updated_at,
                              status_changed_at, tmux_socket, orphaned)
             VALUES (?1, '[]', '/ws', ?2, 1, 1, 1, ?3, ?4)",
            rusqlite::params![run, status, socket, orphaned],
        )
        .expect("run");
        for a in 0..next(5) {
            combo += 1;
            c.execute(
                "INSERT INTO agents(run_id, name, session, argv, workdir, status, health,
                                    signal, started_at, updated_at)
                 VALUES (?1, ?2, ?3, '[]', '/ws', 'running', ?4, ?5, 1, 1)",
                rusqlite::params![
                    run,
                    format!("a{a}"),
                    format!("{run}-a{a}"),
                    healths[combo % healths.len()],
                    signals[combo / healths.len() % signals.len()],
                ],
            )
            .expect("agent");
        }
        for _ in 0..next(4) {
            c.execute(
                "INSERT INTO guidance_requests(run_id, agent, root, question, status,
                                               created_at, source)
                 VALUES (?1, 'a0', '/ws', 'q?', ?2, 1, ?3)",
                rusqlite::params![
                    run,
                    guidance[next(guidance.len())],
                    ["file", "signal", "screen"][next(3)]
                ],
            )
            .expect("guidance");
        }
        if let Some(st) = approvals[next(approvals.len())] {
            c.execute(
                "INSERT INTO approvals(run_id, intent, reason, situation, status,
                                       created_at, updated_at)
                 VALUES (?1, 'auto_restart', 'why', 'sit', ?2, 1, 1)",
                rusqlite::params![run, st],
            )
            .expect("approval");
        }
        if next(4) > 0 {
            c.execute(
                "INSERT INTO operator_run_states(run_id, last_alert, updated_at)
                 VALUES (?1, ?2, 1)",
                rusqlite::params![run, alerts[next(alerts.len())]],
            )
            .expect("op state");
        }
    }
    assert!(combo > 2 * healths.len() * signals.len(), "agents: {combo}");
    let sql = store.status_rows().expect("status rows");
    assert!(sql.len() > 40, "active runs: {}", sql.len());
    let memory = rows_as_a_tick_reads_them(&store);
    // Counted by server, as a reused cache keeps them (every socket here is gone).
    let mut marked = sql.clone();
    crate::orphan::mark(&mut marked);
    assert_eq!(
        total(&shares(&sql), &mut crate::orphan::Probe::default()),
        crate::render::classify(&marked)
    );
    assert_eq!(sorted(memory), sorted(sql));
}

#[test]
fn runs_sharing_a_server_are_marked_as_each_alone() {
    let dir = tempfile::tempdir().expect("tmp");
    let db = dir.path().join("state.db");
    let store = Store::open(&db, OpenMode::Create, false).expect("open");
    let live = dir.path().join("live");
    let _listener = std::os::unix::net::UnixListener::bind(&live).expect("bind");
    let live = live.to_string_lossy().into_owned();
    let gone = dir.path().join("gone").to_string_lossy().into_owned();
    let sockets = [
        Some(&live),
        Some(&live),
        Some(&gone),
        None,
        Some(&gone),
        Some(&live),
    ];
    for (i, socket) in sockets.iter().enumerate() {
        store
            .conn
            .execute(
                "INSERT INTO runs(id, tickets, workspace, status, created_at, updated_at,
                                  status_changed_at, tmux_socket)
                 VALUES (?1, '[]', '/ws', 'running', ?2, 1, 1, ?3)",
                rusqlite::params![format!("r{i}"), i as i64, socket],
            )
            .expect("run");
    }
    let mut rows = rows_as_a_tick_reads_them(&store);
    // What probing each row's socket on its own says.
    let alone: Vec<bool> = rows
        .iter()
        .map(|r| {
            r.tmux_socket
                .as_deref()
                .is_some_and(|s| crate::orphan::socket_gone(s).is_some())
        })
        .collect();
    assert_eq!(alone, [false, false, true, false, true, false]);
    let unmarked = rows.clone();
    crate::orphan::mark(&mut rows);
    let marked: Vec<bool> = rows.iter().map(|r| r.orphaned).collect();
    assert_eq!(marked, alone);
    // Counted by server (what a reused cache keeps), the same as row by row.
    let by_server = shares(&unmarked);
    assert_eq!(by_server.len(), 3, "{by_server:?}");
    assert_eq!(
        total(&by_server, &mut crate::orphan::Probe::default()),
        crate::render::classify(&rows)
    );
}

/// Run `r`, inserted with plain SQL rather than through a `Tx`.
fn insert_run_behind_our_back(store: &Store) {
    store
        .conn
        .execute_batch(
            "INSERT INTO runs(id, tickets, workspace, status, created_at, updated_at,
                              status_changed_at)
             VALUES ('r', '[]', '/ws', 'running', 1, 1, 1)",
        )
        .expect("run");
}

#[test]
fn status_gen_changes_with_each_commit_that_wrote_a_status_table() {
    let dir = tempfile::tempdir().expect("tmp");
    let db = dir.path().join("state.db");
    let mut store = Store::open(&db, OpenMode::Create, false).expect("open");
    let gen = |store: &Store| -> Option<i64> {
        store
            .meta_get(STATUS_GEN)
            .expect("meta")
            .map(|v| v.parse().expect("a number"))
    };
    // A new database starts one (its creation is a migration).
    let created = gen(&store);
    assert!(created.is_some());
    // Written behind our back (not through a `Tx`): not seen, as documented.
    insert_run_behind_our_back(&store);
    assert_eq!(gen(&store), created);
    let event = crate::model::rows::NewEvent {
        run_id: Some("r"),
        agent: None,
        kind: "note",
        from_state: "",
        to_state: "",
        message: "m",
        source: "test",
    };
    // (what the transaction does, whether it is committed, whether status_gen changes)
    type Step = fn(&crate::store::Tx<'_>, &crate::model::rows::NewEvent<'_>);
    let steps: [(&str, Step, bool, bool); 5] = [
        (
            "a status table, committed",
            |tx, _| tx.set_run_orphaned("r", Some("gone")).expect("w"),
            true,
            true,
        ),
        (
            "events and meta only",
            |tx, e| {
                tx.add_event(1, e).expect("event");
                tx.meta_set("last_full_tick", "5").expect("meta");
            },
            true,
            false,
        ),
        (
            "a status table, rolled back",
            |tx, _| tx.set_run_orphaned("r", None).expect("w"),
            false,
            false,
        ),
        (
            "a status table again",
            |tx, _| tx.set_run_orphaned("r", None).expect("w"),
            true,
            true,
        ),
        ("nothing", |_, _| {}, true, false),
    ];
    for (what, step, commit, changes) in steps {
        let before = gen(&store);
        let tx = store.write().expect("begin");
        step(&tx, &event);
        if commit {
            tx.commit().expect("commit");
        } else {
            drop(tx);
        }
        let after = gen(&store);
        assert!(after.is_some() || before.is_none(), "{what}");
        assert_eq!(after != before, changes, "{what}: {before:?} -> {after:?}");
    }
}

#[test]
fn a_refresh_reuses_the_counts_only_while_status_gen_stands() {
    let dir = tempfile::tempdir().expect("tmp");
    let db = dir.path().join("state.db");
    let store = Store::open(&db, OpenMode::Create, false).expect("open");
    insert_run_behind_our_back(&store);
    assert_eq!(
        refresh(&store).expect("refresh").ok,
        1,
        "no cache yet: counted"
    );
    let mut writer = Store::open(&db, OpenMode::Existing, false).expect("writer");
    let tx = writer.write().expect("begin");
    tx.set_run_orphaned("r", None).expect("w");
    tx.commit().expect("commit");
    let fresh = refresh(&store).expect("refresh");
    assert_eq!((fresh.ok, fresh.blocked), (1, 0));
    assert!(fresh.status_gen.is_some());
    // A cache whose counts could only come from itself.
    let mut planted = fresh.clone();
    planted.by_server[0].counts.ok = 7;
    fs::write(path(&db), serde_json::to_vec(&planted).expect("json")).expect("plant");
    let reused = refresh(&store).expect("refresh");
    assert_eq!(reused.ok, 7, "reused while nothing counted changed");
    // A status table written by another process of ours makes the next refresh query.
    let mut other = Store::open(&db, OpenMode::Existing, false).expect("second store");
    let tx = other.write().expect("begin");
    let state = crate::store::OpState {
        last_alert: Some("escalate_blocked".into()),
        ..Default::default()
    };
    tx.put_op_state("r", &state, 1).expect("alert");
    tx.commit().expect("commit");
    let again = refresh(&store).expect("refresh");
    assert_eq!((again.ok, again.blocked), (0, 1));
    assert_ne!(again.status_gen, fresh.status_gen);
    // A cache without a stamp (an older build's) is never reused.
    let mut unstamped = again.clone();
    unstamped.status_gen = None;
    unstamped.by_server[0].counts.blocked = 9;
    fs::write(path(&db), serde_json::to_vec(&unstamped).expect("json")).expect("plant");
    assert_eq!(refresh(&store).expect("refresh").blocked, 1);
    // Another version's counts are not reused either (its rules may count otherwise).
    let mut foreign = again.clone();
    foreign.counted_by = "0.0.0-other".into();
    foreign.by_server[0].counts.blocked = 9;
    fs::write(path(&db), serde_json::to_vec(&foreign).expect("json")).expect("plant");
    assert_eq!(refresh(&store).expect("refresh").blocked, 1);
    // A tick's rows (none here: they could only come from it) stand while the number
    // read before them stands; read before it changed, they give way to the query.
    let stale = again.status_gen.map(|g| g - 1);
    let c = refresh_from(&store, Some(&[]), stale, None).expect("refresh");
    assert_eq!((c.blocked, c.status_gen), (1, again.status_gen));
    let c = refresh_from(&store, Some(&[]), again.status_gen, None).expect("refresh");
    assert_eq!((c.blocked, c.status_gen), (0, again.status_gen));
}

#[cfg(all(target_os = "linux", target_env = "gnu"))]
#[test]
fn the_cache_and_its_swap_file_trade_places() {
    use std::os::unix::fs::MetadataExt;
    let dir = tempfile::tempdir().expect("tmp");
    let db = dir.path().join("state.db");
    let store = Store::open(&db, OpenMode::Create, false).expect("open");
    let inode = |p: &Path| fs::metadata(p).expect("metadata").ino();
    refresh(&store).expect("first");
    refresh(&store).expect("second");
    let (cache, swap) = (inode(&path(&db)), inode(&swap_path(&path(&db))));
    let c = refresh(&store).expect("third");
    // Before: a new file each time, the old one unlinked.
    assert_eq!(inode(&path(&db)), swap, "the swap file became the cache");
    assert_eq!(
        inode(&swap_path(&path(&db))),
        cache,
        "and the cache the swap file"
    );
    assert_eq!(read(&db), Some(c));
    let names: Vec<String> = fs::read_dir(dir.path())
        .expect("dir")
        .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
        .filter(|n| n.contains(".status"))
        .collect();
    assert_eq!(names.len(), 2, "no temporary file left: {names:?}");
}

#[cfg(all(target_os = "linux", target_env = "gnu"))]
#[test]
fn a_cache_being_read_is_never_rewritten() {
    use std::io::{Read, Seek};
    let (_dir, db, mut store) = store_with_a_cache();
    refresh(&store).expect("second");
    // A reader opened the cache and holds it while two writes go by: the first swaps
    // it out, the second would rewrite it.
    let mut reader = fs::File::open(path(&db)).expect("open cache");
    fs2::FileExt::lock_shared(&reader).expect("shared flock");
    let mut before = Vec::new();
    reader.read_to_end(&mut before).expect("read");
    for t in ["11", "12"] {
        set_tick(&mut store, t);
        refresh(&store).expect("refresh");
    }
    let mut after = Vec::new();
    reader.rewind().expect("rewind");
    reader.read_to_end(&mut after).expect("read again");
    assert_eq!(after, before, "the file a reader holds is left as it was");
    assert_eq!(read(&db).map(|c| c.last_full_tick), Some(12));
}

/// A database in a temporary directory, its cache written once.
fn store_with_a_cache() -> (tempfile::TempDir, PathBuf, Store) {
    let dir = tempfile::tempdir().expect("tmp");
    let db = dir.path().join("state.db");
    let store = Store::open(&db, OpenMode::Create, false).expect("open");
    refresh(&store).expect("first");
    (dir, db, store)
}

fn set_tick(store: &mut Store, t: &str) {
    let tx = store.write().expect("tx");
    tx.meta_set("last_full_tick", t).expect("meta");
    tx.commit().expect("commit");
}

#[test]
fn a_held_or_planted_swap_file_is_not_used() {
    let (dir, db, mut store) = store_with_a_cache();
    // Another writer holds the swap file: written another way, without waiting.
    let swap = swap_path(&path(&db));
    let held = fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(false)
        .open(&swap)
        .expect("swap");
    fs2::FileExt::lock_exclusive(&held).expect("flock");
    set_tick(&mut store, "7");
    let t = std::time::Instant::now();
    assert_eq!(refresh(&store).expect("held").last_full_tick, 7);
    assert!(t.elapsed() < std::time::Duration::from_secs(1));
    assert_eq!(read(&db).map(|c| c.last_full_tick), Some(7));
    drop(held);
    // A link planted at its name is never followed.
    let outside = dir.path().join("outside");
    fs::write(&outside, b"untouched").expect("outside");
    fs::remove_file(&swap).expect("rm swap");
    std::os::unix::fs::symlink(&outside, &swap).expect("symlink");
    set_tick(&mut store, "8");
    assert_eq!(refresh(&store).expect("planted").last_full_tick, 8);
    assert_eq!(read(&db).map(|c| c.last_full_tick), Some(8));
    assert_eq!(fs::read(&outside).expect("outside"), b"untouched");
    assert!(fs::symlink_metadata(&swap)
        .expect("link")
        .file_type()
        .is_symlink());
}

#[test]
fn status_writes_count_the_status_tables_only() {
    let dir = tempfile::tempdir().expect("tmp");
    let db = dir.path().join("state.db");
    let mut store = Store::open(&db, OpenMode::Create, false).expect("open");
    let before = store.status_writes();
    let tx = store.write().expect("tx");
    tx.meta_set("last_full_tick", "5").expect("meta");
    tx.commit().expect("commit");
    assert_eq!(store.status_writes(), before, "meta is not counted");
    store
        .conn
        .execute(
            "INSERT INTO runs(id, tickets, workspace, status, created_at, updated_at,
                              status_changed_at) VALUES ('r', '[]', '/ws', 'running', 1, 1, 1)",
            [],
        )
        .expect("run");
    assert!(store.status_writes() > before, "a run row is counted");
}

#[test]
fn endless_and_blocking_files_are_not_read() {
    let dir = tempfile::tempdir().expect("tmp");
    let db = dir.path().join("state.db");
    // Before: fs::read of /dev/zero grew until memory ran out.
    std::os::unix::fs::symlink("/dev/zero", path(&db)).expect("symlink");
    let t = std::time::Instant::now();
    assert_eq!(read(&db), None);
    fs::remove_file(path(&db)).expect("rm");
    nix::unistd::mkfifo(&path(&db), nix::sys::stat::Mode::from_bits_truncate(0o600))
        .expect("mkfifo");
    assert_eq!(read(&db), None);
    assert!(t.elapsed() < std::time::Duration::from_secs(2));
}
