-- Passkeys (WebAuthn credentials) and the state of ceremonies in progress,
-- kept here so that any node can finish a ceremony another started.

CREATE TABLE passkeys (
    id             INTEGER PRIMARY KEY AUTOINCREMENT,
    user_id        INTEGER NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    -- base64url of the credential id the authenticator chose.
    credential_id  TEXT    NOT NULL,
    name           TEXT    NOT NULL,
    -- The credential as the WebAuthn library serialises it (public key,
    -- counter, flags): no secret.
    credential     TEXT    NOT NULL,
    sign_count     INTEGER NOT NULL DEFAULT 0,
    backup_eligible INTEGER NOT NULL DEFAULT 0 CHECK (backup_eligible IN (0, 1)),
    backed_up      INTEGER NOT NULL DEFAULT 0 CHECK (backed_up IN (0, 1)),
    created_at     INTEGER NOT NULL,
    last_used_at   INTEGER,
    CONSTRAINT passkeys_credential_key UNIQUE (credential_id)
);
CREATE INDEX passkeys_user ON passkeys (user_id);

CREATE TABLE passkey_ceremonies (
    -- SHA-256 (hex) of the handle the browser holds.
    id         TEXT    PRIMARY KEY,
    kind       TEXT    NOT NULL,
    user_id    INTEGER REFERENCES users (id) ON DELETE CASCADE,
    name       TEXT,
    state      TEXT    NOT NULL,
    created_at INTEGER NOT NULL,
    expires_at INTEGER NOT NULL
);
CREATE INDEX passkey_ceremonies_expires ON passkey_ceremonies (expires_at);
