-- A personal access token's revocation is announced like a session's end
-- (see 0011_change_notices): nodes keep tokens with their user in the read
-- cache, and a token revoked on one node is refused on the next request to
-- any other. New tokens and a use's `last_used_at` are not announced: no
-- node holds a token before reading it, and a node keeps its own entries'
-- times.
CREATE TRIGGER access_tokens_deleted AFTER DELETE ON access_tokens
    REFERENCING OLD TABLE AS old_rows
    FOR EACH STATEMENT EXECUTE FUNCTION portcullis_sessions_deleted();
