-- The administrators' overview counts events per kind and day, and
-- verified users, on indexes alone.
CREATE INDEX audit_events_kind_at ON audit_events (kind, at);
CREATE INDEX users_verified ON users (email_verified) WHERE email_verified = 1;
