-- The overview counts live sessions (seen within the idle timeout and not
-- expired) on an index holding both times, never reading the table. It
-- takes the place of the index on last_seen_at alone, which the purge of
-- idle sessions uses as well, so a page view still updates one index.
CREATE INDEX sessions_live ON sessions (last_seen_at, expires_at);
DROP INDEX sessions_last_seen_at;
