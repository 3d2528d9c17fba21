-- Two-factor sign-in. The TOTP secret is stored sealed (AEAD under a key
-- derived from the site's secret), recovery codes as keyed hashes, and a
-- pending sign-in by the hash of its cookie's secret.

CREATE TABLE two_factor (
    user_id        BIGINT PRIMARY KEY REFERENCES users (id) ON DELETE CASCADE,
    -- The confirmed secret (sealed); NULL while only an enrolment is pending.
    secret         TEXT,
    enabled_at     BIGINT,
    -- The last step a code was accepted for: no code for it or before works again.
    last_step      BIGINT,
    -- An enrolment shown but not yet confirmed by a code (sealed).
    pending_secret TEXT,
    pending_at     BIGINT
);

CREATE TABLE recovery_codes (
    user_id   BIGINT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    code_hash TEXT   NOT NULL,
    used_at   BIGINT,
    PRIMARY KEY (user_id, code_hash)
);

CREATE TABLE pending_sign_ins (
    id           TEXT   PRIMARY KEY,
    secret_hash  TEXT   NOT NULL,
    user_id      BIGINT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    attempt_key  TEXT   NOT NULL,
    known_device BIGINT NOT NULL CHECK (known_device IN (0, 1)),
    remember     BIGINT NOT NULL CHECK (remember IN (0, 1)),
    next         TEXT,
    created_at   BIGINT NOT NULL,
    expires_at   BIGINT NOT NULL
);
CREATE INDEX pending_sign_ins_expires_at ON pending_sign_ins (expires_at);
CREATE INDEX pending_sign_ins_user_id ON pending_sign_ins (user_id);
