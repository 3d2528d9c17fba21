//! Every write that reaches what the read cache keeps — a session with its
//! user, a list of posts — is seen by the next read through the cache,
//! whether this process made it (through the store, which marks it) or
//! another process did (another connection to the file, as the command line
//! or a second server opens it, noticed through SQLite's data version).

use std::sync::Arc;
use std::time::Duration;

use portcullis_app::audit::AuditEvent;
use portcullis_app::ports::{NewCredentials, SignIn};
use portcullis_app::{
    NewToken, NewUser, PostStore, Session, SessionStore, SignedIn, TokenPurpose, TokenStore, User, UserStore,
};
use portcullis_domain::{Email, Username};
use portcullis_store::cache::{CachedStore, READING_MAX_AGE};
use portcullis_store::{Reach, SqlStore};

#[path = "support/cached.rs"]
mod cached;

use cached::{FAR, T0, session};

/// Who makes the change.
#[derive(Clone, Copy, Debug)]
enum By {
    /// This process, through its store.
    ThisProcess,
    /// Another connection to the same file.
    AnotherProcess,
}

struct Fixture {
    sql: Arc<SqlStore>,
    cache: Arc<CachedStore>,
    url: String,
    alice: User,
    post: i64,
    _dir: tempfile::TempDir,
}

impl Fixture {
    /// Alice with session `s1` and one post, both read into the cache.
    async fn new() -> Self {
        let dir = tempfile::tempdir().expect("tmp");
        let url = format!("sqlite://{}", dir.path().join("writes.db").display());
        let sql = Arc::new(SqlStore::connect(&url, 4).await.expect("sqlite"));
        sql.migrate().await.expect("migrate");
        let cache = CachedStore::new(sql.clone());
        let new = NewUser {
            username: Username::parse("alice").expect("name"),
            email: Email::parse("alice@example.com").expect("email"),
            password_hash: "hash".into(),
            is_admin: false,
            email_verified: false,
            security_stamp: "stamp".into(),
            now: T0,
        };
        let alice = sql.insert_user(&new, None).await.expect("user");
        // A second admin, so that Alice may be made one and deleted.
        let admin = NewUser {
            username: Username::parse("root").expect("name"),
            email: Email::parse("root@example.com").expect("email"),
            is_admin: true,
            ..new
        };
        sql.insert_user(&admin, None).await.expect("admin");
        cache.insert_session(&session("s1", &alice)).await.expect("session");
        let post = cache.insert_post(alice.id, "first", "post", T0).await.expect("post");
        let f = Self { sql, cache, url, alice, post, _dir: dir };
        assert_eq!(f.signed_in().await.map(|s| s.user.security_stamp.clone()), Some("stamp".into()));
        assert_eq!(f.titles().await, ["first"]);
        f
    }

    /// The store `by` writes through: this process's, or one of its own.
    async fn store(&self, by: By) -> Arc<SqlStore> {
        match by {
            By::ThisProcess => self.sql.clone(),
            By::AnotherProcess => Arc::new(SqlStore::connect(&self.url, 1).await.expect("second opener")),
        }
    }

    /// After a change `by` someone: another process's is noticed by the
    /// first read that starts a reading's age after it.
    async fn settle(&self, by: By, store: Arc<SqlStore>) {
        if let By::AnotherProcess = by {
            store.close().await;
            tokio::time::sleep(READING_MAX_AGE + Duration::from_millis(5)).await;
        }
    }

    async fn signed_in(&self) -> Option<Arc<SignedIn>> {
        self.cache.session_with_user("s1").await.expect("read")
    }

    async fn titles(&self) -> Vec<String> {
        let posts = self.cache.list_posts(None, None, 10).await.expect("list");
        posts.iter().map(|p| p.title.clone()).collect()
    }
}

fn event(kind: &str, user: &User) -> AuditEvent {
    AuditEvent { at: T0, kind: kind.into(), user_id: Some(user.id), ..Default::default() }
}

fn credentials<'a>(user: &User, stamp: &'a str, audit: Option<&'a AuditEvent>) -> NewCredentials<'a> {
    NewCredentials { user_id: user.id, hash: "new-hash", new_stamp: stamp, mails: &[], audit, now: T0 + 1 }
}

fn token(id: &str, purpose: TokenPurpose, email: Option<&str>) -> NewToken {
    NewToken {
        id: id.into(),
        secret_hash: "h".into(),
        purpose,
        email: email.map(str::to_owned),
        created_at: T0,
        expires_at: FAR,
    }
}

/// Every write that changes a session or its user, each made `by` someone,
/// and what the next read of the session shows for it.
async fn session_writes_are_seen(by: By) {
    type Check = fn(&User, Option<&SignedIn>) -> bool;
    let cases: [(&str, Check); 12] = [
        ("update_password_hash", |_, s| s.is_some_and(|s| s.user.password_hash == "upgraded")),
        ("set_admin", |_, s| s.is_some_and(|s| s.user.is_admin && s.user.security_stamp == "a-stamp")),
        ("set_admin_lock", |_, s| s.is_some_and(|s| s.user.admin_locked_until == Some(FAR))),
        ("delete_user", |_, s| s.is_none()),
        ("delete_session", |_, s| s.is_none()),
        ("delete_user_sessions", |_, s| s.is_none()),
        ("purge_sessions", |_, s| s.is_none()),
        ("open_session", |_, s| s.is_some_and(|s| s.user.last_login_at == Some(T0 + 9))),
        ("record_sign_in", |_, s| s.is_some_and(|s| s.user.last_login_at == Some(T0 + 8))),
        ("verify_email_with_token", |_, s| {
            s.is_some_and(|s| s.user.email_verified && s.user.email == "new@example.com")
        }),
        ("reset_password_with_token", |_, s| s.is_none()),
        ("change_password_with_mail", |_, s| s.is_some_and(|s| s.user.security_stamp == "c-stamp")),
    ];
    for (write, seen) in cases {
        let f = Fixture::new().await;
        let store = f.store(by).await;
        let (s, a) = (store.as_ref(), &f.alice);
        match write {
            "update_password_hash" => s.update_password_hash(a.id, "upgraded", T0).await,
            "set_admin" => s.set_admin(a.id, true, "a-stamp", T0, None).await.map(drop),
            "set_admin_lock" => s.set_admin_lock(a.id, Some(FAR), T0, None).await.map(drop),
            "delete_user" => s.delete_user(a.id, None).await.map(drop),
            "delete_session" => s.delete_session(a.id, "s1", Some(&event("logout", a))).await.map(drop),
            "delete_user_sessions" => s.delete_user_sessions(a.id, None, None).await.map(drop),
            "purge_sessions" => s.purge_sessions(FAR + 1, T0).await.map(drop),
            "open_session" => {
                let e = event("login.success", a);
                let login = SignIn { attempt_key: "user:1", audit: &e, mail: None };
                s.open_session(&Session { created_at: T0 + 9, ..session("s2", a) }, &login).await
            }
            "record_sign_in" => {
                let e = event("login.success", a);
                s.record_sign_in(a.id, T0 + 8, &SignIn { attempt_key: "user:1", audit: &e, mail: None }).await
            }
            "verify_email_with_token" => {
                let t = token("v1", TokenPurpose::VerifyEmail, Some("new@example.com"));
                s.issue_token(a.id, &t, &[], None).await.expect("token");
                s.verify_email_with_token("v1", a.id, "new@example.com", T0 + 1, None).await.map(drop)
            }
            "reset_password_with_token" => {
                s.issue_token(a.id, &token("r1", TokenPurpose::ResetPassword, None), &[], None).await.expect("token");
                s.reset_password_with_token("r1", &[], &credentials(a, "r-stamp", None)).await.map(drop)
            }
            "change_password_with_mail" => s.change_password_with_mail(&credentials(a, "c-stamp", None)).await,
            other => unreachable!("no write named {other}"),
        }
        .unwrap_or_else(|e| panic!("{write} by {by:?}: {e}"));
        f.settle(by, store).await;
        let found = f.signed_in().await;
        assert!(seen(a, found.as_deref()), "{write} by {by:?} is seen on the next read, found {found:?}");
    }
}

/// Every write that changes a list of posts, each made `by` someone.
async fn post_writes_are_seen(by: By) {
    let cases: [(&str, &[&str]); 4] = [
        ("insert_post", &["second", "first"]),
        ("update_post", &["renamed"]),
        ("delete_post", &[]),
        ("delete_user", &[]),
    ];
    for (write, titles) in cases {
        let f = Fixture::new().await;
        let store = f.store(by).await;
        let (s, a) = (store.as_ref(), &f.alice);
        match write {
            "insert_post" => s.insert_post(a.id, "second", "post", T0 + 1).await.map(drop),
            "update_post" => s.update_post(f.post, "renamed", "post", T0 + 1).await,
            "delete_post" => s.delete_post(f.post).await,
            "delete_user" => s.delete_user(a.id, None).await.map(drop),
            other => unreachable!("no write named {other}"),
        }
        .unwrap_or_else(|e| panic!("{write} by {by:?}: {e}"));
        f.settle(by, store).await;
        assert_eq!(f.titles().await, titles, "{write} by {by:?} is seen on the next read");
    }
}

#[tokio::test]
async fn a_change_to_a_session_or_its_user_made_by_this_process_is_seen_on_the_next_read() {
    session_writes_are_seen(By::ThisProcess).await;
}

#[tokio::test]
async fn a_change_to_a_session_or_its_user_made_by_another_process_is_seen_on_the_next_read() {
    session_writes_are_seen(By::AnotherProcess).await;
}

#[tokio::test]
async fn a_change_to_the_posts_made_by_this_process_is_seen_on_the_next_read() {
    post_writes_are_seen(By::ThisProcess).await;
}

#[tokio::test]
async fn a_change_to_the_posts_made_by_another_process_is_seen_on_the_next_read() {
    post_writes_are_seen(By::AnotherProcess).await;
}

#[tokio::test]
async fn a_write_dropped_after_its_commit_is_still_seen() {
    let f = Fixture::new().await;
    // A request whose client goes away once its change has committed: the
    // future is dropped while it still holds the writing connection.
    let request = async {
        let mut conn = f.sql.write(Reach::User(f.alice.id)).await.expect("writer");
        sqlx::query("UPDATE users SET is_admin = 1 WHERE id = $1")
            .bind(f.alice.id)
            .execute(&mut *conn)
            .await
            .expect("grant");
        std::future::pending::<()>().await;
    };
    assert!(tokio::time::timeout(Duration::from_millis(50), request).await.is_err(), "dropped");
    let found = f.signed_in().await.expect("live");
    assert!(found.user.is_admin, "the committed change is read, not the entry from before it");
}
