//! Personal access tokens for the JSON API.

use std::sync::Arc;

use portcullis_app::UserStore;
use portcullis_app::access_tokens::AccessToken;
use portcullis_app::ports::AccessTokenStore;
use portcullis_domain::Scope;
use portcullis_store::SqlStore;

use crate::fixtures::{MINUTE, T0, add_user, event, recorded, refuse_audit_inserts};

fn token(id: &str, user_id: i64, created_at: i64) -> AccessToken {
    AccessToken {
        id: id.to_owned(),
        secret_hash: format!("hash-of-{id}"),
        user_id,
        name: format!("name of {id}"),
        scope: Scope::Write,
        created_at,
        expires_at: Some(created_at + 30 * 24 * 60 * MINUTE),
        last_used_at: None,
        last_used_ip: None,
    }
}

fn ids(tokens: &[AccessToken]) -> Vec<&str> {
    tokens.iter().map(|t| t.id.as_str()).collect()
}

pub async fn tokens_round_trip_with_their_user_and_event(store: SqlStore) {
    let alice = add_user(&store, "alice", false).await;
    let bob = add_user(&store, "bob", false).await;
    store
        .insert_access_token(&token("t1", alice.id, T0), Some(&event("token.created", Some(alice.id))))
        .await
        .expect("1");
    store.insert_access_token(&token("t2", alice.id, T0 + MINUTE), None).await.expect("2");
    store.insert_access_token(&token("t3", bob.id, T0), None).await.expect("3");
    let (t, user) = store.access_token_with_user("t1").await.expect("read").expect("found");
    assert_eq!(t, token("t1", alice.id, T0));
    assert_eq!(user.username.as_str(), "alice");
    assert!(store.access_token_with_user("nope").await.expect("read").is_none());
    assert_eq!(ids(&store.user_access_tokens(alice.id).await.expect("list")), ["t2", "t1"], "newest first");
    assert_eq!(recorded(&store).await.last(), Some(&("token.created".to_owned(), Some(alice.id))));
}

pub async fn a_token_whose_event_cannot_be_written_is_not_stored(store: SqlStore) {
    let alice = add_user(&store, "alice", false).await;
    refuse_audit_inserts(&store).await;
    let r = store.insert_access_token(&token("t1", alice.id, T0), Some(&event("token.created", Some(alice.id)))).await;
    assert!(r.is_err());
    assert!(store.access_token_with_user("t1").await.expect("read").is_none());
}

pub async fn delete_touches_only_the_owners_token(store: SqlStore) {
    let alice = add_user(&store, "alice", false).await;
    let bob = add_user(&store, "bob", false).await;
    store.insert_access_token(&token("t1", alice.id, T0), None).await.expect("insert");
    assert!(!store.delete_access_token(bob.id, "t1", None).await.expect("delete"), "not bob's");
    assert!(store.access_token_with_user("t1").await.expect("read").is_some());
    assert!(
        store.delete_access_token(alice.id, "t1", Some(&event("token.revoked", Some(alice.id)))).await.expect("del")
    );
    assert!(!store.delete_access_token(alice.id, "t1", None).await.expect("again"), "gone already");
    assert!(store.access_token_with_user("t1").await.expect("read").is_none());
    assert_eq!(recorded(&store).await.last(), Some(&("token.revoked".to_owned(), Some(alice.id))));
}

pub async fn concurrent_touches_from_one_reading_note_one_use(store: SqlStore) {
    let alice = add_user(&store, "alice", false).await;
    store.insert_access_token(&token("t1", alice.id, T0), None).await.expect("insert");
    let store = Arc::new(store);
    let tasks: Vec<_> = (0..8)
        .map(|i| {
            let s = Arc::clone(&store);
            tokio::spawn(async move {
                let ip = format!("192.0.2.{i}");
                s.touch_access_token("t1", None, T0 + MINUTE, Some(&ip), None).await.expect("touch")
            })
        })
        .collect();
    let mut won = 0;
    for t in tasks {
        won += usize::from(t.await.expect("task"));
    }
    assert_eq!(won, 1, "one use noted per reading");
    let (t, _) = store.access_token_with_user("t1").await.expect("read").expect("found");
    assert_eq!(t.last_used_at, Some(T0 + MINUTE));
    assert!(t.last_used_ip.is_some_and(|ip| ip.starts_with("192.0.2.")));
    // A later request that read that use notes the next one.
    assert!(store.touch_access_token("t1", Some(T0 + MINUTE), T0 + 2 * MINUTE, None, None).await.expect("touch"));
    assert!(!store.touch_access_token("t1", Some(T0 + MINUTE), T0 + 3 * MINUTE, None, None).await.expect("stale"));
}

pub async fn a_token_is_revealed_once_and_only_to_its_owner(store: SqlStore) {
    let alice = add_user(&store, "alice", false).await;
    let bob = add_user(&store, "bob", false).await;
    store.insert_access_token(&token("t1", alice.id, T0), None).await.expect("insert");
    assert!(!store.reveal_access_token(bob.id, "t1").await.expect("reveal"));
    assert!(store.reveal_access_token(alice.id, "t1").await.expect("reveal"));
    assert!(!store.reveal_access_token(alice.id, "t1").await.expect("again"));
}

pub async fn an_admin_lock_and_deleting_the_user_end_their_tokens(store: SqlStore) {
    let _root = add_user(&store, "root", true).await;
    let alice = add_user(&store, "alice", false).await;
    let bob = add_user(&store, "bob", false).await;
    store.insert_access_token(&token("a1", alice.id, T0), None).await.expect("insert");
    store.insert_access_token(&token("b1", bob.id, T0), None).await.expect("insert");
    store.insert_access_token(&token("b2", bob.id, T0), None).await.expect("insert");
    // Clearing a lock ends nothing; a lock ends all of the user's tokens.
    assert!(store.set_admin_lock(alice.id, None, T0, None).await.expect("unlock"));
    assert_eq!(store.user_access_tokens(alice.id).await.expect("list").len(), 1);
    assert!(store.set_admin_lock(alice.id, Some(T0 + 60 * MINUTE), T0, None).await.expect("lock"));
    assert!(store.user_access_tokens(alice.id).await.expect("list").is_empty());
    assert_eq!(store.user_access_tokens(bob.id).await.expect("list").len(), 2, "others' tokens stay");
    assert!(store.delete_user(bob.id, None).await.expect("delete"));
    assert!(store.access_token_with_user("b1").await.expect("read").is_none());
    assert!(store.access_token_with_user("b2").await.expect("read").is_none());
}
