-- Index for the purge of idle sessions.
CREATE INDEX sessions_last_seen_at ON sessions (last_seen_at);
