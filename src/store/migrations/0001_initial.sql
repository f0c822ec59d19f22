-- The first schema.
CREATE TABLE IF NOT EXISTS runs (
    id TEXT PRIMARY KEY,
    tickets TEXT NOT NULL,
    workspace TEXT NOT NULL,
    doc_home_repo TEXT,
    ticket_dir TEXT,
    status TEXT NOT NULL,
    message TEXT NOT NULL DEFAULT '',
    created_at INTEGER NOT NULL,
    updated_at INTEGER NOT NULL,
    status_changed_at INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS agents (
    run_id TEXT NOT NULL REFERENCES runs(id) ON DELETE CASCADE,
    name TEXT NOT NULL,
    session TEXT NOT NULL UNIQUE,
    argv TEXT NOT NULL,
    workdir TEXT NOT NULL,
    status TEXT NOT NULL,
    health TEXT NOT NULL,
    last_activity_at INTEGER,
    last_progress_at INTEGER,
    exit_status INTEGER,
    exit_signal INTEGER,
    pane_id TEXT,
    started_at INTEGER NOT NULL,
    signal TEXT,
    signal_at INTEGER,
    updated_at INTEGER NOT NULL,
    PRIMARY KEY (run_id, name)
);
CREATE INDEX IF NOT EXISTS agents_pane ON agents(pane_id);
CREATE TABLE IF NOT EXISTS events (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    at INTEGER NOT NULL,
    run_id TEXT,
    agent TEXT,
    kind TEXT NOT NULL,
    from_state TEXT NOT NULL DEFAULT '',
    to_state TEXT NOT NULL DEFAULT '',
    message TEXT NOT NULL DEFAULT '',
    source TEXT NOT NULL DEFAULT 'rule'
);
CREATE INDEX IF NOT EXISTS events_run ON events(run_id, id);
CREATE TABLE IF NOT EXISTS operator_run_states (
    run_id TEXT PRIMARY KEY REFERENCES runs(id) ON DELETE CASCADE,
    restart_attempts INTEGER NOT NULL DEFAULT 0,
    last_restart_at INTEGER,
    cooldown_until INTEGER,
    unhealthy_streak INTEGER NOT NULL DEFAULT 0,
    last_observation_at INTEGER,
    healthy_since INTEGER,
    last_alert TEXT,
    last_alert_at INTEGER,
    last_decision TEXT,
    updated_at INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS guidance_requests (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    run_id TEXT NOT NULL REFERENCES runs(id) ON DELETE CASCADE,
    agent TEXT NOT NULL,
    root TEXT NOT NULL,
    question TEXT NOT NULL,
    context TEXT NOT NULL DEFAULT '',
    answer TEXT NOT NULL DEFAULT '',
    status TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    answered_at INTEGER
);
CREATE TABLE IF NOT EXISTS meta (
    key TEXT PRIMARY KEY,
    value TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS inbox (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    at INTEGER NOT NULL,
    event TEXT NOT NULL,
    run_id TEXT,
    args TEXT NOT NULL DEFAULT ''
);
CREATE TABLE IF NOT EXISTS llm_calls (
    run_id TEXT PRIMARY KEY REFERENCES runs(id) ON DELETE CASCADE,
    fingerprint TEXT NOT NULL,
    state TEXT NOT NULL,
    pid INTEGER,
    started_at INTEGER NOT NULL,
    finished_at INTEGER,
    request TEXT NOT NULL DEFAULT '',
    proposal TEXT,
    error TEXT
);
