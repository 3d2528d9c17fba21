//! Administrators: granting and revoking, and that the last one can be
//! neither demoted nor deleted, even by concurrent changes.

use std::sync::Arc;

use portcullis_app::{PostStore, SessionStore, UserStore};
use portcullis_store::SqlStore;

use crate::fixtures::{
    MINUTE, T0, add_session, add_user, event, is_admin, lock, post_ids, recorded, session, session_ids,
};

pub async fn set_admin_grants_and_revokes(store: SqlStore) {
    let root = add_user(&store, "root", true).await;
    let alice = add_user(&store, "alice", false).await;
    assert_eq!(store.count_admins().await.expect("count"), 1);

    assert!(store.set_admin(alice.id, true, "s1", T0 + 1, None).await.expect("grant"));
    let a = store.user_by_id(alice.id).await.expect("get").expect("found");
    assert!(a.is_admin);
    assert_eq!(a.security_stamp, "s1");
    assert_eq!(a.updated_at, T0 + 1);
    assert_eq!(store.count_admins().await.expect("count"), 2);

    assert!(store.set_admin(root.id, false, "s2", T0 + 2, None).await.expect("revoke"));
    let r = store.user_by_id(root.id).await.expect("get").expect("found");
    assert!(!r.is_admin);
    assert_eq!(r.security_stamp, "s2");
    assert_eq!(store.count_admins().await.expect("count"), 1);

    // Granting twice, and revoking a non-admin, change nothing but the stamp.
    assert!(store.set_admin(alice.id, true, "s3", T0 + 3, None).await.expect("grant"));
    assert!(store.set_admin(root.id, false, "s4", T0 + 4, None).await.expect("revoke"));
    assert_eq!(store.count_admins().await.expect("count"), 1);
    assert!(is_admin(&store, alice.id).await);
    assert!(!is_admin(&store, root.id).await);

    assert!(!store.set_admin(alice.id + 100, true, "s5", T0, None).await.expect("unknown user"), "no such user");
}

pub async fn set_admin_refuses_to_demote_the_last_admin(store: SqlStore) {
    let root = add_user(&store, "root", true).await;
    let alice = add_user(&store, "alice", false).await;
    assert!(!store.set_admin(root.id, false, "s1", T0 + 1, None).await.expect("revoke"));
    let r = store.user_by_id(root.id).await.expect("get").expect("found");
    assert!(r.is_admin);
    assert_eq!(r.security_stamp, root.security_stamp, "nothing changed");
    assert_eq!(r.updated_at, T0);
    assert_eq!(store.count_admins().await.expect("count"), 1);

    // Revoking a user who is no admin is no threat to the last admin.
    assert!(store.set_admin(alice.id, false, "s2", T0 + 2, None).await.expect("revoke"));
    assert_eq!(store.count_admins().await.expect("count"), 1);
}

pub async fn set_admin_lock_never_locks_the_last_unlocked_admin(store: SqlStore) {
    let root = add_user(&store, "root", true).await;
    let alice = add_user(&store, "alice", false).await;
    let until = Some(T0 + 60 * MINUTE);
    assert!(!store.set_admin_lock(root.id, until, T0, Some(&event("admin.lock", Some(root.id)))).await.expect("lock"));
    let r = store.user_by_id(root.id).await.expect("get").expect("found");
    assert_eq!((r.admin_locked_until, r.updated_at), (None, T0), "nothing changed");
    assert!(recorded(&store).await.is_empty(), "nothing recorded");
    // A user who is no admin may be locked; an unlock always goes through.
    assert!(store.set_admin_lock(alice.id, until, T0, None).await.expect("lock"));
    assert!(store.set_admin_lock(alice.id, None, T0, None).await.expect("unlock"));
    // With a second admin whose lock has passed, the first may be locked.
    assert!(store.set_admin(alice.id, true, "grant", T0, None).await.expect("grant"));
    assert!(store.set_admin_lock(alice.id, Some(T0 - 1), T0 - 2, None).await.expect("a lock that has passed"));
    assert!(store.set_admin_lock(root.id, until, T0, None).await.expect("lock"));
    assert!(!store.set_admin_lock(alice.id, until, T0, None).await.expect("lock"), "and then not the other");
}

pub async fn concurrent_admin_locks_leave_an_admin_unlocked(store: SqlStore) {
    for round in 0..20 {
        let a = add_user(&store, &format!("lock-a{round}"), false).await.id;
        let b = add_user(&store, &format!("lock-b{round}"), false).await.id;
        only_admins(&store, a, b).await;
        let barrier = Arc::new(tokio::sync::Barrier::new(2));
        let lock = |id: i64| {
            let store = store.clone();
            let barrier = barrier.clone();
            tokio::spawn(async move {
                barrier.wait().await;
                store.set_admin_lock(id, Some(T0 + 60 * MINUTE), T0, None).await
            })
        };
        let (ta, tb) = (lock(a), lock(b));
        let ra = ta.await.expect("task").expect("lock a");
        let rb = tb.await.expect("task").expect("lock b");
        assert!(ra != rb, "round {round}: exactly one lock succeeds ({ra}, {rb})");
        for (id, locked) in [(a, ra), (b, rb)] {
            let u = store.user_by_id(id).await.expect("get").expect("found");
            assert_eq!(u.admin_locked_until.is_some(), locked, "round {round}");
            // Unlocked again for the next round's pair.
            store.set_admin_lock(id, None, T0, None).await.expect("unlock");
        }
    }
}

pub async fn set_admin_revokes_a_non_admin_when_there_is_no_admin(store: SqlStore) {
    let alice = add_user(&store, "alice", false).await;
    assert_eq!(store.count_admins().await.expect("count"), 0);
    assert!(store.set_admin(alice.id, false, "s1", T0 + 1, None).await.expect("revoke"));
    let a = store.user_by_id(alice.id).await.expect("get").expect("found");
    assert!(!a.is_admin);
    assert_eq!(a.security_stamp, "s1");
    assert!(store.delete_user(alice.id, None).await.expect("delete"));
}

/// Makes `a` and `b` the only two admins.
async fn only_admins(store: &SqlStore, a: i64, b: i64) {
    assert!(store.set_admin(a, true, "grant", T0, None).await.expect("grant"));
    assert!(store.set_admin(b, true, "grant", T0, None).await.expect("grant"));
    let others = store.list_users(None, None, 1000, T0).await.expect("list users");
    for s in others {
        if s.user.is_admin && s.user.id != a && s.user.id != b {
            assert!(store.set_admin(s.user.id, false, "revoke", T0, None).await.expect("revoke"));
        }
    }
    assert_eq!(store.count_admins().await.expect("count"), 2);
}

pub async fn concurrent_demotions_leave_an_admin(store: SqlStore) {
    for round in 0..20 {
        let a = add_user(&store, &format!("adm-a{round}"), false).await.id;
        let b = add_user(&store, &format!("adm-b{round}"), false).await.id;
        only_admins(&store, a, b).await;
        let barrier = Arc::new(tokio::sync::Barrier::new(2));
        let demote = |id: i64| {
            let store = store.clone();
            let barrier = barrier.clone();
            tokio::spawn(async move {
                barrier.wait().await;
                store.set_admin(id, false, "demoted", T0 + 1, None).await
            })
        };
        let (ta, tb) = (demote(a), demote(b));
        let ra = ta.await.expect("task").expect("demote a");
        let rb = tb.await.expect("task").expect("demote b");
        let admins = store.count_admins().await.expect("count");
        assert_eq!(admins, 1, "round {round}: ({ra}, {rb}) left {admins} admins");
        assert!(ra != rb, "round {round}: exactly one demotion succeeds");
        assert_eq!(is_admin(&store, a).await, !ra);
        assert_eq!(is_admin(&store, b).await, !rb);
    }
}

pub async fn delete_user_cascades_to_posts_and_sessions(store: SqlStore) {
    let alice = add_user(&store, "alice", false).await;
    let bob = add_user(&store, "bob", false).await;
    let a1 = store.insert_post(alice.id, "a1", "x", T0).await.expect("post");
    let b1 = store.insert_post(bob.id, "b1", "x", T0).await.expect("post");
    let a2 = store.insert_post(alice.id, "a2", "x", T0).await.expect("post");
    add_session(&store, &session("sa1", &alice, T0, T0 + MINUTE, false)).await;
    add_session(&store, &session("sa2", &alice, T0, T0 + MINUTE, true)).await;
    add_session(&store, &session("sb1", &bob, T0, T0 + MINUTE, false)).await;
    lock(&store, &format!("user:{}", alice.id), T0, T0 + MINUTE).await;

    assert!(store.delete_user(alice.id, None).await.expect("delete"));
    assert!(store.user_by_id(alice.id).await.expect("get").is_none());
    assert!(!store.username_taken("alice").await.expect("taken"));
    assert!(store.post_by_id(a1).await.expect("post").is_none());
    assert!(store.post_by_id(a2).await.expect("post").is_none());
    assert!(store.session_with_user("sa1").await.expect("session").is_none());
    assert!(store.session_with_user("sa2").await.expect("session").is_none());
    assert!(session_ids(&store, alice.id, T0).await.is_empty());

    assert!(store.post_by_id(b1).await.expect("post").is_some());
    assert!(store.session_with_user("sb1").await.expect("session").is_some());
    assert_eq!(post_ids(&store, None, None, 10).await, [b1]);

    assert!(!store.delete_user(alice.id, None).await.expect("delete again"));
    // The name is free again.
    add_user(&store, "alice", false).await;
}

pub async fn delete_user_refuses_the_last_admin(store: SqlStore) {
    let root = add_user(&store, "root", true).await;
    let alice = add_user(&store, "alice", false).await;
    let post = store.insert_post(root.id, "t", "c", T0).await.expect("post");
    add_session(&store, &session("sr", &root, T0, T0 + MINUTE, false)).await;

    assert!(!store.delete_user(root.id, None).await.expect("delete"));
    assert!(store.user_by_id(root.id).await.expect("get").is_some());
    assert!(store.post_by_id(post).await.expect("post").is_some());
    assert!(store.session_with_user("sr").await.expect("session").is_some());

    assert!(store.set_admin(alice.id, true, "s", T0, None).await.expect("grant"));
    assert!(store.delete_user(root.id, None).await.expect("delete"));
    assert_eq!(store.count_admins().await.expect("count"), 1);
    assert!(!store.delete_user(alice.id, None).await.expect("delete"));
    assert!(!store.delete_user(root.id + 100, None).await.expect("unknown"));
}

pub async fn concurrent_deletion_and_demotion_leave_an_admin(store: SqlStore) {
    for round in 0..20 {
        let a = add_user(&store, &format!("adm-a{round}"), false).await.id;
        let b = add_user(&store, &format!("adm-b{round}"), false).await.id;
        only_admins(&store, a, b).await;
        let barrier = Arc::new(tokio::sync::Barrier::new(2));
        let (s1, s2) = (store.clone(), store.clone());
        let (b1, b2) = (barrier.clone(), barrier.clone());
        let ta = tokio::spawn(async move {
            b1.wait().await;
            s1.delete_user(a, None).await
        });
        let tb = tokio::spawn(async move {
            b2.wait().await;
            s2.set_admin(b, false, "demoted", T0 + 1, None).await
        });
        let deleted = ta.await.expect("task").expect("delete a");
        let demoted = tb.await.expect("task").expect("demote b");
        let admins = store.count_admins().await.expect("count");
        assert_eq!(admins, 1, "round {round}: (deleted {deleted}, demoted {demoted}) left {admins} admins");
        assert!(deleted != demoted, "round {round}: exactly one succeeds");
        assert_eq!(store.user_by_id(a).await.expect("get").is_none(), deleted);
    }
}
