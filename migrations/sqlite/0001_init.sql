-- Users, sessions, failed-login counters and posts. Times are Unix milliseconds;
-- flags are 0/1 so both backends read them alike.

CREATE TABLE users (
    id                  INTEGER PRIMARY KEY AUTOINCREMENT,
    username            TEXT    NOT NULL,
    username_normalized TEXT    NOT NULL,
    email               TEXT    NOT NULL,
    email_normalized    TEXT    NOT NULL,
    password_hash       TEXT    NOT NULL,
    is_admin            INTEGER NOT NULL DEFAULT 0 CHECK (is_admin IN (0, 1)),
    email_verified      INTEGER NOT NULL DEFAULT 0 CHECK (email_verified IN (0, 1)),
    security_stamp      TEXT    NOT NULL,
    created_at          INTEGER NOT NULL,
    updated_at          INTEGER NOT NULL,
    last_login_at       INTEGER,
    -- Case-insensitive uniqueness, enforced here and not only by a lookup.
    CONSTRAINT users_username_key UNIQUE (username_normalized),
    CONSTRAINT users_email_key UNIQUE (email_normalized)
);
CREATE INDEX users_admins ON users (is_admin) WHERE is_admin = 1;

CREATE TABLE sessions (
    id             TEXT    PRIMARY KEY,
    secret_hash    TEXT    NOT NULL,
    user_id        INTEGER NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    security_stamp TEXT    NOT NULL,
    created_at     INTEGER NOT NULL,
    last_seen_at   INTEGER NOT NULL,
    expires_at     INTEGER NOT NULL,
    remember       INTEGER NOT NULL CHECK (remember IN (0, 1)),
    ip             TEXT,
    user_agent     TEXT
);
CREATE INDEX sessions_user_id ON sessions (user_id);
CREATE INDEX sessions_expires_at ON sessions (expires_at);

CREATE TABLE login_attempts (
    key          TEXT    PRIMARY KEY,
    attempts     INTEGER NOT NULL,
    locked_until INTEGER,
    updated_at   INTEGER NOT NULL
);

CREATE TABLE posts (
    id         INTEGER PRIMARY KEY AUTOINCREMENT,
    author_id  INTEGER NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    title      TEXT    NOT NULL,
    content    TEXT    NOT NULL,
    created_at INTEGER NOT NULL,
    updated_at INTEGER NOT NULL
);
CREATE INDEX posts_author_id ON posts (author_id, id);
