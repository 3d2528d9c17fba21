-- Two-factor sign-in. The TOTP secret is stored sealed (AEAD under a key
-- derived from the site's secret), recovery codes as keyed hashes, and a
-- pending sign-in by the hash of its cookie's secret.

CREATE TABLE two_factor (
    user_id        INTEGER PRIMARY KEY REFERENCES users (id) ON DELETE CASCADE,
    -- The confirmed secret (sealed); NULL while only an enrolment is pending.
    secret         TEXT,
    enabled_at     INTEGER,
    -- The last step a code was accepted for: no code for it or before works again.
    last_step      INTEGER,
    -- An enrolment shown but not yet confirmed by a code (sealed).
    pending_secret TEXT,
    pending_at     INTEGER
);

CREATE TABLE recovery_codes (
    user_id   INTEGER NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    code_hash TEXT   NOT NULL,
    used_at   INTEGER,
    PRIMARY KEY (user_id, code_hash)
);

CREATE TABLE pending_sign_ins (
    id           TEXT   PRIMARY KEY,
    secret_hash  TEXT   NOT NULL,
    user_id      INTEGER NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    attempt_key  TEXT   NOT NULL,
    known_device INTEGER NOT NULL CHECK (known_device IN (0, 1)),
    remember     INTEGER NOT NULL CHECK (remember IN (0, 1)),
    next         TEXT,
    created_at   INTEGER NOT NULL,
    expires_at   INTEGER NOT NULL
);
CREATE INDEX pending_sign_ins_expires_at ON pending_sign_ins (expires_at);
CREATE INDEX pending_sign_ins_user_id ON pending_sign_ins (user_id);
