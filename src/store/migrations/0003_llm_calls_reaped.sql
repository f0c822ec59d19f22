-- A call the tick gave up on (its worker died or overstayed) is retried at once, not
-- after the long pause an LLM error earns.
ALTER TABLE llm_calls ADD COLUMN reaped INTEGER NOT NULL DEFAULT 0;
