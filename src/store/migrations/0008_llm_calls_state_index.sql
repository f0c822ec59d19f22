-- The calls in flight (the global bound on LLM workers), found by index: a hook's
-- one-run tick reads them without a pass over every run's call. (What a hook looks up
-- by session or pane is indexed already: agents.session is UNIQUE, agents_pane.)
CREATE INDEX IF NOT EXISTS llm_calls_state ON llm_calls(state);
