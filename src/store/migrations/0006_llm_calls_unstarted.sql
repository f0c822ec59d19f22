-- The LLM program could not be started at all (not installed, not on PATH): such a call
-- is retried after min_interval, not after the long pause a wrong answer earns.
ALTER TABLE llm_calls ADD COLUMN unstarted INTEGER NOT NULL DEFAULT 0;
