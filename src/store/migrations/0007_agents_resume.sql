-- What a restart needs to continue an agent's conversation (docs/restarts.md): the resume
-- command, the conversation id, how the current process was started and since when the
-- conversation runs, and whether the user gave the resume command.
ALTER TABLE agents ADD COLUMN resume_argv TEXT;
ALTER TABLE agents ADD COLUMN conversation_id TEXT;
ALTER TABLE agents ADD COLUMN start_kind TEXT NOT NULL DEFAULT 'fresh';
ALTER TABLE agents ADD COLUMN conversation_since INTEGER;
ALTER TABLE agents ADD COLUMN resume_explicit INTEGER NOT NULL DEFAULT 0;
-- A run whose tmux server restarted after its agents started (a reboot): nothing of it is
-- left on the new server. Set by the tick or tmux-setup, cleared by `run revive`.
-- tmux_server: the server instance (`pid:start_time`) a tick last saw the agents on.
ALTER TABLE runs ADD COLUMN orphaned TEXT;
ALTER TABLE runs ADD COLUMN tmux_server TEXT;
