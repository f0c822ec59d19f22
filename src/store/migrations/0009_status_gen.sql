-- meta 'status_gen': a number that changes whenever anything the status line counts
-- changes (the columns `Store::status_rows` reads), whoever writes it: these triggers,
-- not our code, keep it. The status cache carries the number it was built at, so a
-- hook's one-run tick that changed none of them reuses the cache's counts instead of
-- querying every active run (status_cache.rs). Updates of other columns (the times a
-- tick writes every run) leave it alone.
-- It starts at a random number: a cache left beside a new database (the old one
-- deleted) must not match it by chance.
INSERT OR IGNORE INTO meta(key, value)
VALUES ('status_gen', CAST(abs(random() % 1000000000000) AS TEXT));

CREATE TRIGGER IF NOT EXISTS status_gen_runs_insert AFTER INSERT ON runs
BEGIN UPDATE meta SET value = CAST(value AS INTEGER) + 1 WHERE key = 'status_gen'; END;
CREATE TRIGGER IF NOT EXISTS status_gen_runs_delete AFTER DELETE ON runs
BEGIN UPDATE meta SET value = CAST(value AS INTEGER) + 1 WHERE key = 'status_gen'; END;
CREATE TRIGGER IF NOT EXISTS status_gen_runs_update AFTER UPDATE ON runs
WHEN old.id IS NOT new.id OR old.status IS NOT new.status
  OR old.tmux_socket IS NOT new.tmux_socket OR old.orphaned IS NOT new.orphaned
BEGIN UPDATE meta SET value = CAST(value AS INTEGER) + 1 WHERE key = 'status_gen'; END;

CREATE TRIGGER IF NOT EXISTS status_gen_agents_insert AFTER INSERT ON agents
BEGIN UPDATE meta SET value = CAST(value AS INTEGER) + 1 WHERE key = 'status_gen'; END;
CREATE TRIGGER IF NOT EXISTS status_gen_agents_delete AFTER DELETE ON agents
BEGIN UPDATE meta SET value = CAST(value AS INTEGER) + 1 WHERE key = 'status_gen'; END;
CREATE TRIGGER IF NOT EXISTS status_gen_agents_update AFTER UPDATE ON agents
WHEN old.run_id IS NOT new.run_id OR old.health IS NOT new.health
  OR old.signal IS NOT new.signal
BEGIN UPDATE meta SET value = CAST(value AS INTEGER) + 1 WHERE key = 'status_gen'; END;

CREATE TRIGGER IF NOT EXISTS status_gen_guidance_insert AFTER INSERT ON guidance_requests
BEGIN UPDATE meta SET value = CAST(value AS INTEGER) + 1 WHERE key = 'status_gen'; END;
CREATE TRIGGER IF NOT EXISTS status_gen_guidance_delete AFTER DELETE ON guidance_requests
BEGIN UPDATE meta SET value = CAST(value AS INTEGER) + 1 WHERE key = 'status_gen'; END;
CREATE TRIGGER IF NOT EXISTS status_gen_guidance_update AFTER UPDATE ON guidance_requests
WHEN old.run_id IS NOT new.run_id OR old.status IS NOT new.status
BEGIN UPDATE meta SET value = CAST(value AS INTEGER) + 1 WHERE key = 'status_gen'; END;

CREATE TRIGGER IF NOT EXISTS status_gen_approvals_insert AFTER INSERT ON approvals
BEGIN UPDATE meta SET value = CAST(value AS INTEGER) + 1 WHERE key = 'status_gen'; END;
CREATE TRIGGER IF NOT EXISTS status_gen_approvals_delete AFTER DELETE ON approvals
BEGIN UPDATE meta SET value = CAST(value AS INTEGER) + 1 WHERE key = 'status_gen'; END;
CREATE TRIGGER IF NOT EXISTS status_gen_approvals_update AFTER UPDATE ON approvals
WHEN old.run_id IS NOT new.run_id OR old.status IS NOT new.status
BEGIN UPDATE meta SET value = CAST(value AS INTEGER) + 1 WHERE key = 'status_gen'; END;

CREATE TRIGGER IF NOT EXISTS status_gen_states_insert AFTER INSERT ON operator_run_states
BEGIN UPDATE meta SET value = CAST(value AS INTEGER) + 1 WHERE key = 'status_gen'; END;
CREATE TRIGGER IF NOT EXISTS status_gen_states_delete AFTER DELETE ON operator_run_states
BEGIN UPDATE meta SET value = CAST(value AS INTEGER) + 1 WHERE key = 'status_gen'; END;
CREATE TRIGGER IF NOT EXISTS status_gen_states_update AFTER UPDATE ON operator_run_states
WHEN old.run_id IS NOT new.run_id OR old.last_alert IS NOT new.last_alert
BEGIN UPDATE meta SET value = CAST(value AS INTEGER) + 1 WHERE key = 'status_gen'; END;
