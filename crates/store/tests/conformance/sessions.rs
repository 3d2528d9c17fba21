//! Sessions: storing, finding, touching, listing, ending and purging them.

use portcullis_app::SessionStore;
use portcullis_store::SqlStore;

use crate::fixtures::{MINUTE, T0, add_session, add_user, session, session_ids};

pub async fn session_round_trips_with_its_user(store: SqlStore) {
    let alice = add_user(&store, "Alice", true).await;
    let s = session("sid-1", &alice, T0, T0 + 60 * MINUTE, true);
    add_session(&store, &s).await;
    let mut bare = session("sid-2", &alice, T0 + 1, T0 + MINUTE, false);
    bare.ip = None;
    bare.user_agent = None;
    add_session(&store, &bare).await;

    let found = store.session_with_user("sid-1").await.expect("session").expect("found");
    let (got, user) = (&found.session, &found.user);
    assert_eq!(got.id, "sid-1");
    assert_eq!(got.secret_hash, "secret-of-sid-1");
    assert_eq!(got.user_id, alice.id);
    assert_eq!(got.security_stamp, alice.security_stamp);
    assert_eq!((got.created_at, got.last_seen_at, got.expires_at), (T0, T0, T0 + 60 * MINUTE));
    assert!(got.remember);
    assert_eq!(got.ip.as_deref(), Some("192.0.2.7"));
    assert_eq!(got.user_agent.as_deref(), Some("conformance/1.0"));
    assert_eq!(user.id, alice.id);
    assert_eq!(user.username, "Alice");
    assert_eq!(user.email, "Alice@example.com");
    assert!(user.is_admin);
    assert_eq!(user.created_at, T0);
    assert_eq!(user.security_stamp, alice.security_stamp);

    let found = store.session_with_user("sid-2").await.expect("session").expect("found");
    let (got, _) = (&found.session, &found.user);
    assert!(!got.remember);
    assert_eq!((got.ip.as_deref(), got.user_agent.as_deref()), (None, None));
    assert_eq!(got.created_at, T0 + 1);

    for missing in ["sid-3", "", "SID-1", "sid-%"] {
        assert!(store.session_with_user(missing).await.expect("session").is_none(), "{missing:?}");
    }
}

pub async fn session_needs_an_existing_user_and_a_unique_id(store: SqlStore) {
    let alice = add_user(&store, "alice", false).await;
    add_session(&store, &session("dup", &alice, T0, T0 + MINUTE, false)).await;
    assert!(
        store.insert_session(&session("dup", &alice, T0, T0 + MINUTE, false)).await.is_err(),
        "session ids are unique"
    );
    let mut ghost = session("ghost", &alice, T0, T0 + MINUTE, false);
    ghost.user_id = alice.id + 100;
    assert!(store.insert_session(&ghost).await.is_err(), "a session needs a user");
    assert!(store.session_with_user("ghost").await.expect("session").is_none());
}

pub async fn touch_session_sets_last_seen(store: SqlStore) {
    let alice = add_user(&store, "alice", false).await;
    add_session(&store, &session("s1", &alice, T0, T0 + 60 * MINUTE, false)).await;
    add_session(&store, &session("s2", &alice, T0, T0 + 60 * MINUTE, false)).await;
    store.touch_session("s1", T0, T0 + 5 * MINUTE).await.expect("touch");
    store.touch_session("s1", T0, T0 + 6 * MINUTE).await.expect("a parallel request's touch");
    let found = store.session_with_user("s1").await.expect("session").expect("found");
    let (s1, _) = (&found.session, &found.user);
    assert_eq!(s1.last_seen_at, T0 + 5 * MINUTE);
    assert_eq!((s1.created_at, s1.expires_at), (T0, T0 + 60 * MINUTE));
    let found = store.session_with_user("s2").await.expect("session").expect("found");
    let (s2, _) = (&found.session, &found.user);
    assert_eq!(s2.last_seen_at, T0);
    store.touch_session("missing", T0, T0).await.expect("no error");
}

pub async fn delete_session_deletes_only_the_owners_session(store: SqlStore) {
    let alice = add_user(&store, "alice", false).await;
    let bob = add_user(&store, "bob", false).await;
    add_session(&store, &session("sa", &alice, T0, T0 + MINUTE, false)).await;
    add_session(&store, &session("sa2", &alice, T0, T0 + MINUTE, false)).await;
    add_session(&store, &session("sb", &bob, T0, T0 + MINUTE, false)).await;

    assert!(!store.delete_session(bob.id, "sa", None).await.expect("delete"), "not bob's session");
    assert!(store.session_with_user("sa").await.expect("session").is_some());
    assert!(store.delete_session(alice.id, "sa", None).await.expect("delete"));
    assert!(store.session_with_user("sa").await.expect("session").is_none());
    assert!(!store.delete_session(alice.id, "sa", None).await.expect("delete again"));
    assert_eq!(session_ids(&store, alice.id, T0).await, ["sa2"]);
    assert_eq!(session_ids(&store, bob.id, T0).await, ["sb"]);
}

pub async fn delete_user_sessions_keeps_the_exception(store: SqlStore) {
    let alice = add_user(&store, "alice", false).await;
    let bob = add_user(&store, "bob", false).await;
    for (i, id) in ["a1", "a2", "a3", "a4"].iter().enumerate() {
        add_session(&store, &session(id, &alice, T0 + i as i64, T0 + MINUTE, false)).await;
    }
    add_session(&store, &session("b1", &bob, T0, T0 + MINUTE, false)).await;

    assert_eq!(store.delete_user_sessions(alice.id, Some("a2"), None).await.expect("delete"), 3);
    assert_eq!(session_ids(&store, alice.id, T0).await, ["a2"]);
    assert_eq!(
        store.delete_user_sessions(alice.id, Some("b1"), None).await.expect("delete"),
        1,
        "another user's session is no exception"
    );
    assert_eq!(session_ids(&store, bob.id, T0).await, ["b1"]);
    assert_eq!(store.delete_user_sessions(alice.id, None, None).await.expect("delete"), 0);
    add_session(&store, &session("a5", &alice, T0, T0 + MINUTE, false)).await;
    add_session(&store, &session("a6", &alice, T0, T0 + MINUTE, false)).await;
    assert_eq!(store.delete_user_sessions(alice.id, None, None).await.expect("delete"), 2);
    assert!(session_ids(&store, alice.id, T0).await.is_empty());
    assert_eq!(session_ids(&store, bob.id, T0).await, ["b1"]);
}

pub async fn user_sessions_lists_live_sessions_newest_first(store: SqlStore) {
    let alice = add_user(&store, "alice", false).await;
    let bob = add_user(&store, "bob", false).await;
    add_session(&store, &session("old", &alice, T0, T0 + 60 * MINUTE, false)).await;
    add_session(&store, &session("new", &alice, T0 + 2 * MINUTE, T0 + 60 * MINUTE, true)).await;
    add_session(&store, &session("mid", &alice, T0 + MINUTE, T0 + 60 * MINUTE, false)).await;
    add_session(&store, &session("gone", &alice, T0 + 3 * MINUTE, T0 + 10 * MINUTE, false)).await;
    add_session(&store, &session("bobs", &bob, T0, T0 + 60 * MINUTE, false)).await;

    assert_eq!(session_ids(&store, alice.id, T0 + 5 * MINUTE).await, ["gone", "new", "mid", "old"]);
    // A session whose expiry is now is over.
    assert_eq!(session_ids(&store, alice.id, T0 + 10 * MINUTE).await, ["new", "mid", "old"]);
    let listed = store.user_sessions(alice.id, T0 + 10 * MINUTE).await.expect("sessions");
    assert!(listed[0].remember);
    assert_eq!(listed[0].secret_hash, "secret-of-new");
    assert!(session_ids(&store, alice.id, T0 + 60 * MINUTE).await.is_empty());
    assert_eq!(session_ids(&store, bob.id, T0).await, ["bobs"]);
    assert!(session_ids(&store, bob.id + 100, T0).await.is_empty());
}

pub async fn purge_sessions_removes_expired_and_idle_sessions(store: SqlStore) {
    let alice = add_user(&store, "alice", false).await;
    let now = T0 + 120 * MINUTE;
    let idle_cutoff = now - 30 * MINUTE;
    let add = async |id: &str, last_seen_at: i64, expires_at: i64, remember: bool| {
        let mut s = session(id, &alice, T0, expires_at, remember);
        s.last_seen_at = last_seen_at;
        add_session(&store, &s).await;
    };
    let far = now + 1000 * MINUTE;
    add("expired", now - MINUTE, now - 1, false).await;
    add("expires-now", now - MINUTE, now, true).await;
    add("expired-remembered", now - MINUTE, now - MINUTE, true).await;
    add("idle", idle_cutoff - 1, far, false).await;
    add("idle-remembered", idle_cutoff - 1, far, true).await;
    add("at-cutoff", idle_cutoff, far, false).await;
    add("active", now - MINUTE, now + 1, false).await;

    assert_eq!(store.purge_sessions(now, idle_cutoff).await.expect("purge"), 4);
    let mut left = session_ids(&store, alice.id, now).await;
    left.sort();
    assert_eq!(left, ["active", "at-cutoff", "idle-remembered"]);
    assert_eq!(store.purge_sessions(now, idle_cutoff).await.expect("purge"), 0);
}
