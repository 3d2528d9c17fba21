-- Personal access tokens for the JSON API: `pcat_` + id + secret + checksum;
-- only the SHA-256 of the secret is kept. A token goes with its user.
CREATE TABLE access_tokens (
    id           TEXT    PRIMARY KEY,
    secret_hash  TEXT    NOT NULL,
    user_id      INTEGER    NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    name         TEXT    NOT NULL,
    scope        TEXT    NOT NULL,
    created_at   INTEGER    NOT NULL,
    expires_at   INTEGER,
    last_used_at INTEGER,
    last_used_ip TEXT,
    -- 1 once the page that shows the token once has shown it.
    revealed     INTEGER    NOT NULL DEFAULT 0
);
CREATE INDEX access_tokens_user ON access_tokens (user_id, created_at);
