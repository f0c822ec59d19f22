-- Runs remember their tmux server (several servers may share one database).
ALTER TABLE runs ADD COLUMN tmux_socket TEXT;
