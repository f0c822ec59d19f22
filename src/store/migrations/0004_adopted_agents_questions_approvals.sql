-- Adopted agents (panes we did not start), where a question came from (a guidance file,
-- the agent's `waiting` signal, or its screen), and assist-mode approvals.
ALTER TABLE agents ADD COLUMN adopted INTEGER NOT NULL DEFAULT 0;
ALTER TABLE agents ADD COLUMN keep_dead_pane INTEGER NOT NULL DEFAULT 1;
ALTER TABLE guidance_requests ADD COLUMN source TEXT NOT NULL DEFAULT 'file';
CREATE INDEX IF NOT EXISTS guidance_run ON guidance_requests(run_id, status);
CREATE TABLE IF NOT EXISTS approvals (
    run_id TEXT PRIMARY KEY REFERENCES runs(id) ON DELETE CASCADE,
    intent TEXT NOT NULL,
    targets TEXT NOT NULL DEFAULT '[]',
    reason TEXT NOT NULL,
    situation TEXT NOT NULL,
    status TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    updated_at INTEGER NOT NULL
);
