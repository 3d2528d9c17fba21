-- Every committed change to what a node's read cache keeps (a user's row,
-- their sessions, posts) is announced on a channel of this schema with
-- NOTIFY, which PostgreSQL delivers at commit and never for a rolled-back
-- change. Each node listens (crates/store/src/notices.rs) and marks its
-- cache. Made by triggers, so every writer is heard: other nodes, the
-- command line, an operator's psql.
--
-- A notice's payload is tokens separated by spaces: `u<id>` a user's row or
-- sessions, `p` the posts, `*` anything (a statement that changed more
-- than 100 users).

-- The channel of a schema's notices.
CREATE FUNCTION portcullis_channel(schema TEXT) RETURNS TEXT LANGUAGE sql IMMUTABLE AS
$$ SELECT 'portcullis_' || left(md5(schema), 16) $$;

-- The users named by `ids`, or everything when there are too many.
CREATE FUNCTION portcullis_users_notice(ids BIGINT[]) RETURNS TEXT LANGUAGE sql IMMUTABLE AS
$$ SELECT CASE
       WHEN cardinality(ids) > 100 THEN '*'
       ELSE coalesce((SELECT string_agg('u' || id, ' ') FROM unnest(ids) AS id), '')
   END $$;

CREATE FUNCTION portcullis_users_changed() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    ids BIGINT[];
    notice TEXT;
BEGIN
    IF TG_OP = 'DELETE' THEN
        SELECT array_agg(id) INTO ids FROM (SELECT DISTINCT id FROM old_rows LIMIT 101) AS s;
        -- A user's posts go with them.
        notice := portcullis_users_notice(ids) || ' p';
    ELSE
        SELECT array_agg(id) INTO ids FROM (SELECT DISTINCT id FROM new_rows LIMIT 101) AS s;
        notice := portcullis_users_notice(ids);
        -- Post lists show their authors' names.
        IF EXISTS (SELECT 1 FROM old_rows AS o JOIN new_rows AS n USING (id)
                   WHERE o.username IS DISTINCT FROM n.username) THEN
            notice := notice || ' p';
        END IF;
    END IF;
    IF ids IS NOT NULL THEN
        PERFORM pg_notify(portcullis_channel(TG_TABLE_SCHEMA), notice);
    END IF;
    RETURN NULL;
END $$;

CREATE TRIGGER users_updated AFTER UPDATE ON users
    REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION portcullis_users_changed();
CREATE TRIGGER users_deleted AFTER DELETE ON users
    REFERENCING OLD TABLE AS old_rows
    FOR EACH STATEMENT EXECUTE FUNCTION portcullis_users_changed();

CREATE FUNCTION portcullis_sessions_deleted() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    ids BIGINT[];
BEGIN
    SELECT array_agg(user_id) INTO ids FROM (SELECT DISTINCT user_id FROM old_rows LIMIT 101) AS s;
    IF ids IS NOT NULL THEN
        PERFORM pg_notify(portcullis_channel(TG_TABLE_SCHEMA), portcullis_users_notice(ids));
    END IF;
    RETURN NULL;
END $$;

CREATE TRIGGER sessions_deleted AFTER DELETE ON sessions
    REFERENCING OLD TABLE AS old_rows
    FOR EACH STATEMENT EXECUTE FUNCTION portcullis_sessions_deleted();

-- A page view moves `last_seen_at` alone: that is not announced (a node
-- keeps its own entries' times, and entries age out).
CREATE FUNCTION portcullis_session_updated() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify(portcullis_channel(TG_TABLE_SCHEMA), 'u' || OLD.user_id || ' u' || NEW.user_id);
    RETURN NULL;
END $$;

CREATE TRIGGER sessions_updated AFTER UPDATE OF secret_hash, user_id, security_stamp, expires_at, remember, ip, user_agent
    ON sessions FOR EACH ROW EXECUTE FUNCTION portcullis_session_updated();

CREATE FUNCTION portcullis_posts_changed() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify(portcullis_channel(TG_TABLE_SCHEMA), 'p');
    RETURN NULL;
END $$;

CREATE TRIGGER posts_changed AFTER INSERT OR UPDATE OR DELETE ON posts
    FOR EACH STATEMENT EXECUTE FUNCTION portcullis_posts_changed();
