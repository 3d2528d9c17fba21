//! What the read cache's tests build their cases from.

use portcullis_app::{Session, User};

/// The time the cases start at (unix ms).
pub const T0: i64 = 1_700_000_000_000;
/// A time no case reaches.
pub const FAR: i64 = T0 + 1_000_000_000_000;

/// A session `id` of `user`, opened at [`T0`], living until [`FAR`].
pub fn session(id: &str, user: &User) -> Session {
    Session {
        id: id.into(),
        secret_hash: "h".into(),
        user_id: user.id,
        security_stamp: user.security_stamp.clone(),
        created_at: T0,
        last_seen_at: T0,
        expires_at: FAR,
        remember: false,
        ip: None,
        user_agent: None,
    }
}
