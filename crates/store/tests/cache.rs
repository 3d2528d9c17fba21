//! The read cache of the one-node SQLite deployment: what it serves from
//! memory, and that no change, made here or by another process, is missed.

use std::sync::Arc;

use portcullis_app::audit::AuditEvent;
use portcullis_app::ports::SignIn;
use portcullis_app::{NewUser, PostStore, Session, SessionStore, User, UserStore};
use portcullis_domain::{Email, Username};
use portcullis_store::cache::{CachedStore, READING_MAX_AGE};
use portcullis_store::{Reach, SqlStore};

#[path = "support/cached.rs"]
mod cached;

use cached::{FAR, T0, session};

struct Fixture {
    sql: Arc<SqlStore>,
    cache: Arc<CachedStore>,
    url: String,
    _dir: tempfile::TempDir,
}

async fn fixture() -> Fixture {
    let dir = tempfile::tempdir().expect("tmp");
    let url = format!("sqlite://{}", dir.path().join("cache.db").display());
    let sql = SqlStore::connect(&url, 4).await.expect("sqlite");
    sql.migrate().await.expect("migrate");
    let sql = Arc::new(sql);
    let cache = CachedStore::new(sql.clone());
    // An administrator besides the users under test, so that any of them
    // may be made an admin and locked (the last one never is).
    let mut root = new_user("root");
    root.is_admin = true;
    sql.insert_user(&root, None).await.expect("root");
    Fixture { sql, cache, url, _dir: dir }
}

fn new_user(name: &str) -> NewUser {
    NewUser {
        username: Username::parse(name).expect("name"),
        email: Email::parse(&format!("{name}@example.com")).expect("email"),
        password_hash: "hash".into(),
        is_admin: false,
        email_verified: true,
        security_stamp: format!("stamp-{name}"),
        now: T0,
    }
}

async fn user(store: &dyn UserStore, name: &str) -> User {
    store.insert_user(&new_user(name), None).await.expect("user")
}

/// `user` logs in at `at`, opening session `id`, through `store`.
async fn log_in(store: &dyn SessionStore, id: &str, user: &User, at: i64) {
    let s = Session { created_at: at, last_seen_at: at, ..session(id, user) };
    let event = AuditEvent { at, kind: "login.success".into(), user_id: Some(user.id), ..Default::default() };
    store.open_session(&s, &SignIn { attempt_key: "k", audit: &event, mail: None }).await.expect("login");
}

/// Alice with session `s1` and one post, her session and her post list read
/// into the cache.
async fn alice_cached(f: &Fixture) -> User {
    let alice = user(f.sql.as_ref(), "alice").await;
    f.cache.insert_session(&session("s1", &alice)).await.expect("session");
    f.cache.insert_post(alice.id, "t", "c", T0).await.expect("post");
    assert!(f.cache.session_with_user("s1").await.expect("read").is_some());
    assert_eq!(f.cache.list_posts(Some(alice.id), None, 10).await.expect("list").len(), 1);
    alice
}

/// Changes Alice behind the cache's back: written by this process on its
/// writing connection, declared on purpose as reaching nothing cached, so
/// neither the marks nor the readings of the data version hear of it. What
/// the cache then answers came from memory.
async fn change_alice_unseen(f: &Fixture, alice: &User) {
    let mut conn = f.sql.write(Reach::Uncached).await.expect("writer");
    sqlx::query("UPDATE users SET is_admin = 1, security_stamp = 'unseen-stamp' WHERE id = $1")
        .bind(alice.id)
        .execute(&mut *conn)
        .await
        .expect("grant");
    sqlx::query(
        "INSERT INTO posts (author_id, title, content, created_at, updated_at) VALUES ($1, 'unseen', 'post', 0, 0)",
    )
    .bind(alice.id)
    .execute(&mut *conn)
    .await
    .expect("post");
    drop(conn);
    // Long enough for the next read to take a reading first.
    tokio::time::sleep(READING_MAX_AGE * 5).await;
}

async fn alice_from_memory(f: &Fixture, alice: &User) -> bool {
    let found = f.cache.session_with_user("s1").await.expect("read").expect("live");
    let posts = f.cache.list_posts(Some(alice.id), None, 10).await.expect("list");
    !found.user.is_admin && posts.len() == 1
}

#[tokio::test]
async fn sessions_and_post_lists_are_served_from_memory() {
    let f = fixture().await;
    let alice = alice_cached(&f).await;
    change_alice_unseen(&f, &alice).await;

    // What was read is answered from memory…
    let found = f.cache.session_with_user("s1").await.expect("from memory").expect("cached");
    let (s, u) = (&found.session, &found.user);
    assert_eq!((s.id.as_str(), u.id), ("s1", alice.id));
    assert!(alice_from_memory(&f, &alice).await, "the session and the list as they were read");
    // …and nothing else is.
    f.sql.insert_session(&session("s2", &alice)).await.expect("session");
    let s2 = f.cache.session_with_user("s2").await.expect("read").expect("a miss goes to the database");
    assert!(s2.user.is_admin, "and finds what is stored");
    assert_eq!(f.cache.list_posts(None, None, 10).await.expect("list").len(), 2, "another list is another key");
}

#[tokio::test]
async fn another_users_login_leaves_what_is_cached() {
    let f = fixture().await;
    let alice = alice_cached(&f).await;
    let bob = user(f.sql.as_ref(), "bob").await;
    f.cache.insert_session(&session("b1", &bob)).await.expect("session");
    assert!(f.cache.session_with_user("b1").await.expect("read").is_some());
    change_alice_unseen(&f, &alice).await;

    // Bob logs out and in again: his rows change, Alice's do not.
    assert!(f.cache.delete_session(bob.id, "b1", None).await.expect("logout"));
    log_in(f.cache.as_ref(), "b2", &bob, T0 + 9).await;
    f.cache.touch_session("s1", T0, T0 + 1).await.expect("touch");

    assert!(alice_from_memory(&f, &alice).await, "Alice's session and posts are still served from memory");
    assert!(f.cache.session_with_user("b1").await.expect("read").is_none(), "Bob's old session is gone at once");
    let b2 = f.cache.session_with_user("b2").await.expect("read").expect("live");
    assert_eq!(b2.user.last_login_at, Some(T0 + 9), "and his new one reads his row as it is now");

    // A change to Alice herself, through the cache, is seen at once.
    assert!(f.sql.set_admin_lock(alice.id, Some(FAR), T0, None).await.expect("lock"));
    let found = f.cache.session_with_user("s1").await.expect("read").expect("live");
    assert!(found.user.is_admin && found.user.admin_locked_until == Some(FAR), "her row is read again");
    f.cache.insert_post(bob.id, "bob's", "post", T0).await.expect("post");
    assert_eq!(
        f.cache.list_posts(Some(alice.id), None, 10).await.expect("list").len(),
        2,
        "a new post re-reads the lists"
    );
}

#[tokio::test]
async fn the_session_a_login_opens_is_served_from_memory() {
    let f = fixture().await;
    let alice = user(f.sql.as_ref(), "alice").await;
    log_in(f.cache.as_ref(), "s1", &alice, T0 + 3).await;
    change_alice_unseen(&f, &alice).await;
    let found = f.cache.session_with_user("s1").await.expect("read").expect("live");
    assert_eq!(found.user.last_login_at, Some(T0 + 3), "the user as the login left them");
    assert!(!found.user.is_admin, "from memory: the change behind the cache's back does not show");
    assert_eq!(found.session.id, "s1");

    // A change to the user after the login, through the cache, is not missed.
    log_in(f.cache.as_ref(), "s2", &alice, T0 + 4).await;
    assert!(f.sql.set_admin_lock(alice.id, Some(FAR), T0, None).await.expect("lock"));
    let found = f.cache.session_with_user("s2").await.expect("read").expect("live");
    assert_eq!(found.user.admin_locked_until, Some(FAR), "read from the file");
    assert_eq!(found.user.last_login_at, Some(T0 + 4));
}

#[tokio::test]
async fn a_change_made_through_the_store_or_the_cache_is_seen_at_once() {
    let f = fixture().await;
    let alice = user(f.sql.as_ref(), "alice").await;
    let bob = user(f.sql.as_ref(), "bob").await;
    for id in ["s1", "s2", "s3"] {
        f.cache.insert_session(&session(id, &alice)).await.expect("session");
    }
    f.cache.insert_session(&session("b1", &bob)).await.expect("session");
    let read = |id: &'static str| {
        let c = f.cache.clone();
        async move { c.session_with_user(id).await.expect("read") }
    };

    assert!(read("s1").await.is_some());
    assert!(f.cache.delete_session(alice.id, "s1", None).await.expect("logout"));
    assert!(read("s1").await.is_none(), "a logout ends the session at once");

    assert!(!read("s2").await.expect("live").user.is_admin);
    assert!(f.sql.set_admin(alice.id, true, "new-stamp", T0, None).await.expect("grant"));
    let found = read("s2").await.expect("still stored");
    let (s2, a2) = (&found.session, &found.user);
    assert!(a2.is_admin, "the user is read again");
    assert_ne!(s2.security_stamp, a2.security_stamp, "and the stamp change shows");

    assert!(f.sql.set_admin_lock(bob.id, Some(FAR), T0, None).await.expect("lock"));
    assert_eq!(read("b1").await.expect("live").user.admin_locked_until, Some(FAR));

    f.cache.touch_session("s3", T0, T0 + 5).await.expect("touch");
    assert_eq!(read("s3").await.expect("live").session.last_seen_at, T0 + 5);
    assert_eq!(f.cache.delete_user_sessions(alice.id, None, None).await.expect("end all"), 2);
    assert!(read("s3").await.is_none());

    assert!(f.cache.list_posts(None, None, 10).await.expect("list").is_empty());
    let id = f.cache.insert_post(bob.id, "first", "post", T0).await.expect("post");
    assert_eq!(f.cache.list_posts(None, None, 10).await.expect("list").len(), 1, "a new post shows at once");
    f.cache.update_post(id, "renamed", "post", T0 + 1).await.expect("update");
    assert_eq!(f.cache.list_posts(None, None, 10).await.expect("list")[0].title, "renamed");
    assert!(f.sql.delete_user(bob.id, None).await.expect("delete"));
    assert!(f.cache.list_posts(None, None, 10).await.expect("list").is_empty(), "the author's posts went with them");
    assert!(read("b1").await.is_none());
}

#[tokio::test]
async fn a_touch_is_written_and_keeps_what_is_cached() {
    let f = fixture().await;
    let alice = alice_cached(&f).await;

    f.cache.touch_session("s1", T0, T0 + 7).await.expect("touch");
    let stored = f.sql.session_with_user("s1").await.expect("read the file").expect("stored");
    assert_eq!(stored.session.last_seen_at, T0 + 7, "written to the file");
    f.cache.touch_session("s1", T0, T0 + 9).await.expect("a parallel request's touch");
    assert_eq!(f.cache.session_with_user("s1").await.expect("read").expect("live").session.last_seen_at, T0 + 7);
    let stored = f.sql.session_with_user("s1").await.expect("read the file").expect("stored");
    assert_eq!(stored.session.last_seen_at, T0 + 7, "and not to the file");

    // After a new reading, what was read before is still served
    // from memory: the touch did not read as another connection's commit.
    change_alice_unseen(&f, &alice).await;
    assert!(alice_from_memory(&f, &alice).await);
    let found = f.cache.session_with_user("s1").await.expect("from memory").expect("cached");
    assert_eq!(found.session.last_seen_at, T0 + 7);
}

#[tokio::test]
async fn a_change_made_by_another_process_is_noticed() {
    let f = fixture().await;
    let alice = user(f.sql.as_ref(), "alice").await;
    f.cache.insert_session(&session("s1", &alice)).await.expect("session");
    assert!(f.cache.session_with_user("s1").await.expect("read").is_some());
    assert!(f.cache.list_posts(None, None, 10).await.expect("list").is_empty());

    // Another connection to the file, as the command line or a second server opens it.
    let other = SqlStore::connect(&f.url, 1).await.expect("second opener");
    assert!(other.set_admin(alice.id, true, "other-stamp", T0, None).await.expect("grant"));
    other.insert_post(alice.id, "from", "elsewhere", T0).await.expect("post");
    other.close().await;

    // The first read that starts the reading's age after the change sees it.
    tokio::time::sleep(READING_MAX_AGE).await;
    let found = f.cache.session_with_user("s1").await.expect("read").expect("live");
    assert!(found.user.is_admin, "the outside grant was noticed");
    assert_eq!(f.cache.list_posts(None, None, 10).await.expect("list").len(), 1, "and the outside post");
}
