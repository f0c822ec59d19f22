-- The project policy (`.metawsm/policy.json`) found when the run was started, adopted
-- or imported: each run is judged by its own policy.
ALTER TABLE runs ADD COLUMN policy_path TEXT;
