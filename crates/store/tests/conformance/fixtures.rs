//! What the conformance tests build their cases from: users, sessions,
//! audit events and the store's answers in a form easy to compare.

use portcullis_app::audit::{AuditEvent, AuditFilter};
use portcullis_app::ports::{AuditStore, NewCredentials};
use portcullis_app::{LoginThrottle, NewUser, PostStore, Session, SessionStore, User, UserStore};
use portcullis_domain::{Email, Username};
use portcullis_store::SqlStore;

pub const T0: i64 = 1_700_000_000_000;
pub const MINUTE: i64 = 60_000;

pub fn new_user(username: &str, email: &str, is_admin: bool) -> NewUser {
    NewUser {
        username: Username::parse(username).expect("valid username"),
        email: Email::parse(email).expect("valid email"),
        password_hash: format!("hash-of-{username}"),
        is_admin,
        email_verified: false,
        security_stamp: format!("stamp-of-{username}"),
        now: T0,
    }
}

/// Inserts `username` with the email `<username>@example.com`.
pub async fn add_user(store: &SqlStore, username: &str, is_admin: bool) -> User {
    store
        .insert_user(&new_user(username, &format!("{username}@example.com"), is_admin), None)
        .await
        .expect("insert user")
}

pub fn session(id: &str, user: &User, created_at: i64, expires_at: i64, remember: bool) -> Session {
    Session {
        id: id.to_owned(),
        secret_hash: format!("secret-of-{id}"),
        user_id: user.id,
        security_stamp: user.security_stamp.clone(),
        created_at,
        last_seen_at: created_at,
        expires_at,
        remember,
        ip: Some("192.0.2.7".to_owned()),
        user_agent: Some("conformance/1.0".to_owned()),
    }
}

pub async fn add_session(store: &SqlStore, s: &Session) {
    store.insert_session(s).await.expect("insert session");
}

pub async fn session_ids(store: &SqlStore, user_id: i64, now: i64) -> Vec<String> {
    store.user_sessions(user_id, now).await.expect("user sessions").into_iter().map(|s| s.id).collect()
}

pub async fn post_ids(store: &SqlStore, author: Option<i64>, before: Option<i64>, limit: i64) -> Vec<i64> {
    store.list_posts(author, before, limit).await.expect("list posts").iter().map(|p| p.id).collect()
}

pub async fn is_admin(store: &SqlStore, id: i64) -> bool {
    store.user_by_id(id).await.expect("user by id").expect("user exists").is_admin
}

pub async fn reserve(store: &SqlStore, key: &str, now: i64, threshold: i64) -> i64 {
    store.reserve_attempt(key, now, threshold, now + 15 * MINUTE, now - 15 * MINUTE).await.expect("reserve attempt")
}

/// Locks `key` from `now` until `until`, as one attempt over a threshold of one does.
pub async fn lock(store: &SqlStore, key: &str, now: i64, until: i64) {
    store.reserve_attempt(key, now, 1, until, now).await.expect("lock");
}

/// A new password and stamp for user `user_id`, with no mail nor event.
pub fn credentials<'a>(user_id: i64, hash: &'a str, new_stamp: &'a str, now: i64) -> NewCredentials<'a> {
    NewCredentials { user_id, hash, new_stamp, mails: &[], audit: None, now }
}

pub fn event(kind: &str, user_id: Option<i64>) -> AuditEvent {
    AuditEvent {
        at: T0,
        kind: kind.to_owned(),
        user_id,
        subject: Some("subject".into()),
        ip: Some("192.0.2.9".into()),
        user_agent: Some("conformance/1.0".into()),
        ..Default::default()
    }
}

/// Every recorded event as (kind, user id), oldest first.
pub async fn recorded(store: &SqlStore) -> Vec<(String, Option<i64>)> {
    let mut all = store.list_audit(&AuditFilter::default(), 1000).await.expect("list audit");
    all.reverse();
    all.into_iter().map(|e| (e.kind, e.user_id)).collect()
}

/// Makes every insert into the audit log fail, as a full disk or a lost
/// connection would.
pub async fn refuse_audit_inserts(store: &SqlStore) {
    let statements: &[&str] = match store.backend() {
        portcullis_store::Backend::Sqlite => &[
            "CREATE TRIGGER audit_refused BEFORE INSERT ON audit_events BEGIN SELECT RAISE(ABORT, 'audit refused'); END",
        ],
        portcullis_store::Backend::Postgres => &[
            "CREATE FUNCTION audit_refused() RETURNS trigger LANGUAGE plpgsql AS $f$ BEGIN RAISE EXCEPTION 'audit refused'; END $f$",
            "CREATE TRIGGER audit_refused BEFORE INSERT ON audit_events FOR EACH ROW EXECUTE FUNCTION audit_refused()",
        ],
    };
    for sql in statements {
        sqlx::raw_sql(sql).execute(store.pool()).await.unwrap_or_else(|e| panic!("{sql}: {e}"));
    }
}
