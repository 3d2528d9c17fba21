-- Counters are purged by age (see `purge_attempts`).
CREATE INDEX login_attempts_updated_at ON login_attempts (updated_at);

-- Counters for names no account has were keyed by the text typed, which
-- may be a password typed into the name box; they are keyed by a keyed
-- hash now. Forget the old ones (at worst a guesser's count starts again).
DELETE FROM login_attempts WHERE key LIKE 'name:%';
