//! Passkeys and the ceremonies that make and use them.

use std::sync::Arc;

use portcullis_app::UserStore;
use portcullis_app::mail::OutgoingMail;
use portcullis_app::passkey_store::{Ceremony, NewPasskey, PasskeyStore, PasskeyUse};
use portcullis_store::SqlStore;

use crate::fixtures::{MINUTE, T0, add_user, event, recorded, refuse_audit_inserts};

fn ceremony(id: &str, kind: &str, user_id: Option<i64>) -> Ceremony {
    Ceremony {
        id: id.to_owned(),
        kind: kind.to_owned(),
        user_id,
        name: user_id.map(|_| "Laptop".to_owned()),
        state: format!("{{\"state\":\"{id}\"}}"),
        created_at: T0,
        expires_at: T0 + 5 * MINUTE,
    }
}

fn passkey<'a>(user_id: i64, credential_id: &'a str, name: &'a str) -> NewPasskey<'a> {
    NewPasskey {
        user_id,
        credential_id,
        name,
        credential: "{\"cred\":{}}",
        sign_count: 3,
        backup_eligible: true,
        backed_up: false,
        now: T0,
    }
}

fn notice() -> OutgoingMail {
    OutgoingMail { recipient: "alice@example.com".into(), subject: "Passkey".into(), sealed: "sealed".into() }
}

pub async fn a_ceremony_is_taken_once_by_its_kind(store: SqlStore) {
    let alice = add_user(&store, "alice", false).await;
    let c = ceremony("c1", "register", Some(alice.id));
    store.insert_ceremony(&c).await.expect("insert");
    assert_eq!(store.take_ceremony("c1", "login").await.expect("take"), None, "another kind's handle takes nothing");
    assert_eq!(store.take_ceremony("c1", "register").await.expect("take"), Some(c.clone()));
    assert_eq!(store.take_ceremony("c1", "register").await.expect("take"), None, "a second finish finds nothing");
    let anonymous = ceremony("c2", "login", None);
    store.insert_ceremony(&anonymous).await.expect("insert");
    assert_eq!(store.take_ceremony("c2", "login").await.expect("take"), Some(anonymous));
}

pub async fn concurrent_takes_of_a_ceremony_let_exactly_one_win(store: SqlStore) {
    store.insert_ceremony(&ceremony("c1", "login", None)).await.expect("insert");
    let store = Arc::new(store);
    let tasks: Vec<_> = (0..8)
        .map(|_| {
            let s = Arc::clone(&store);
            tokio::spawn(async move { s.take_ceremony("c1", "login").await.expect("take").is_some() })
        })
        .collect();
    let mut won = 0;
    for t in tasks {
        won += usize::from(t.await.expect("task"));
    }
    assert_eq!(won, 1);
}

pub async fn purge_ceremonies_removes_only_expired_ones(store: SqlStore) {
    let mut old = ceremony("old", "login", None);
    old.expires_at = T0 + MINUTE;
    store.insert_ceremony(&old).await.expect("insert");
    store.insert_ceremony(&ceremony("new", "login", None)).await.expect("insert");
    assert_eq!(store.purge_ceremonies(T0 + 2 * MINUTE).await.expect("purge"), 1);
    assert!(store.take_ceremony("old", "login").await.expect("take").is_none());
    assert!(store.take_ceremony("new", "login").await.expect("take").is_some());
}

pub async fn passkeys_round_trip_with_their_mail_and_event(store: SqlStore) {
    let alice = add_user(&store, "alice", false).await;
    let bob = add_user(&store, "bob", false).await;
    let added = event("passkey.added", Some(alice.id));
    let id = store
        .insert_passkey(&passkey(alice.id, "cred-a", "Laptop"), Some(&notice()), Some(&added))
        .await
        .expect("insert")
        .expect("a new credential");
    let second = store.insert_passkey(&passkey(alice.id, "cred-b", "Phone"), None, None).await.expect("insert");
    assert!(second.is_some());
    let list = store.user_passkeys(alice.id).await.expect("list");
    assert_eq!(list.iter().map(|p| p.name.as_str()).collect::<Vec<_>>(), ["Laptop", "Phone"], "oldest first");
    let p = &list[0];
    assert_eq!((p.id, p.user_id, p.credential_id.as_str(), p.sign_count), (id, alice.id, "cred-a", 3));
    assert_eq!((p.backup_eligible, p.backed_up, p.created_at, p.last_used_at), (true, false, T0, None));
    assert_eq!(store.passkey_by_credential("cred-a").await.expect("find").as_ref(), Some(p));
    assert_eq!(store.passkey_by_credential("nope").await.expect("find"), None);
    assert!(store.user_passkeys(bob.id).await.expect("list").is_empty());
    assert_eq!(store.pending_mail_count().await.expect("count"), 1, "the notice is queued with it");
    assert_eq!(recorded(&store).await, [("passkey.added".to_owned(), Some(alice.id))]);

    // One credential id belongs to one passkey, whoever registers it again.
    let again = store.insert_passkey(&passkey(bob.id, "cred-a", "Stolen"), Some(&notice()), Some(&added)).await;
    assert_eq!(again.expect("no error"), None);
    assert!(store.user_passkeys(bob.id).await.expect("list").is_empty());
    assert_eq!(store.pending_mail_count().await.expect("count"), 1, "no mail for the refused one");
    assert_eq!(recorded(&store).await.len(), 1, "no event for it");
    assert_eq!(store.passkey_counts(&[alice.id, bob.id]).await.expect("counts"), [(alice.id, 2)]);
    assert!(store.passkey_counts(&[]).await.expect("counts").is_empty());
}

pub async fn rename_and_delete_touch_only_the_owners_passkey(store: SqlStore) {
    let alice = add_user(&store, "alice", false).await;
    let bob = add_user(&store, "bob", false).await;
    let id =
        store.insert_passkey(&passkey(alice.id, "cred-a", "Laptop"), None, None).await.expect("insert").expect("id");
    let renamed = event("passkey.renamed", Some(bob.id));
    assert!(!store.rename_passkey(bob.id, id, "Mine now", Some(&renamed)).await.expect("rename"));
    assert!(!store.delete_passkey(bob.id, id, Some(&notice()), Some(&renamed)).await.expect("delete"));
    assert!(recorded(&store).await.is_empty(), "nothing recorded for another's passkey");
    assert_eq!(store.pending_mail_count().await.expect("count"), 0);
    assert_eq!(store.user_passkeys(alice.id).await.expect("list")[0].name, "Laptop");

    let renamed = event("passkey.renamed", Some(alice.id));
    assert!(store.rename_passkey(alice.id, id, "Work laptop", Some(&renamed)).await.expect("rename"));
    assert_eq!(store.user_passkeys(alice.id).await.expect("list")[0].name, "Work laptop");
    let removed = event("passkey.removed", Some(alice.id));
    assert!(store.delete_passkey(alice.id, id, Some(&notice()), Some(&removed)).await.expect("delete"));
    assert!(!store.delete_passkey(alice.id, id, Some(&notice()), Some(&removed)).await.expect("delete"), "once");
    assert!(store.user_passkeys(alice.id).await.expect("list").is_empty());
    assert_eq!(store.pending_mail_count().await.expect("count"), 1);
    let kinds: Vec<String> = recorded(&store).await.into_iter().map(|(k, _)| k).collect();
    assert_eq!(kinds, ["passkey.renamed", "passkey.removed"]);
}

pub async fn a_use_moves_the_counter_forward_only(store: SqlStore) {
    let alice = add_user(&store, "alice", false).await;
    let id =
        store.insert_passkey(&passkey(alice.id, "cred-a", "Laptop"), None, None).await.expect("insert").expect("id");
    let used = |sign_count: i64, now: i64| PasskeyUse {
        id,
        credential: "{\"cred\":{\"counter\":9}}",
        sign_count,
        backup_eligible: true,
        backed_up: true,
        now,
    };
    assert!(store.record_passkey_use(&used(4, T0 + MINUTE)).await.expect("use"));
    let p = store.passkey_by_credential("cred-a").await.expect("find").expect("stored");
    assert_eq!((p.sign_count, p.backed_up, p.last_used_at), (4, true, Some(T0 + MINUTE)));
    assert_eq!(p.credential, "{\"cred\":{\"counter\":9}}");
    assert!(!store.record_passkey_use(&used(4, T0 + 2 * MINUTE)).await.expect("use"), "the same counter again");
    assert!(!store.record_passkey_use(&used(2, T0 + 2 * MINUTE)).await.expect("use"), "a counter going back");
    let p = store.passkey_by_credential("cred-a").await.expect("find").expect("stored");
    assert_eq!((p.sign_count, p.last_used_at), (4, Some(T0 + MINUTE)), "unchanged");
    // Authenticators without a counter always send zero.
    let mut synced = used(0, T0 + 3 * MINUTE);
    synced.id = store
        .insert_passkey(&NewPasskey { sign_count: 0, ..passkey(alice.id, "cred-z", "Synced") }, None, None)
        .await
        .expect("insert")
        .expect("id");
    assert!(store.record_passkey_use(&synced).await.expect("use"));
    assert!(store.record_passkey_use(&synced).await.expect("use"));
}

pub async fn deleting_a_user_deletes_their_passkeys_and_ceremonies(store: SqlStore) {
    let _admin = add_user(&store, "root", true).await;
    let alice = add_user(&store, "alice", false).await;
    store.insert_passkey(&passkey(alice.id, "cred-a", "Laptop"), None, None).await.expect("insert");
    store.insert_ceremony(&ceremony("c1", "register", Some(alice.id))).await.expect("insert");
    assert!(store.delete_user(alice.id, None).await.expect("delete"));
    assert_eq!(store.passkey_by_credential("cred-a").await.expect("find"), None);
    assert_eq!(store.take_ceremony("c1", "register").await.expect("take"), None);
}

pub async fn a_passkey_whose_event_cannot_be_written_is_not_stored(store: SqlStore) {
    let alice = add_user(&store, "alice", false).await;
    refuse_audit_inserts(&store).await;
    let added = event("passkey.added", Some(alice.id));
    assert!(store.insert_passkey(&passkey(alice.id, "cred-a", "Laptop"), Some(&notice()), Some(&added)).await.is_err());
    assert!(store.user_passkeys(alice.id).await.expect("list").is_empty());
    assert_eq!(store.pending_mail_count().await.expect("count"), 0);
}

pub async fn delete_user_passkeys_removes_all_of_one_users(store: SqlStore) {
    let alice = add_user(&store, "alice", false).await;
    let bob = add_user(&store, "bob", false).await;
    store.insert_passkey(&passkey(alice.id, "cred-a", "Laptop"), None, None).await.expect("insert");
    store.insert_passkey(&passkey(alice.id, "cred-b", "Phone"), None, None).await.expect("insert");
    store.insert_passkey(&passkey(bob.id, "cred-c", "Laptop"), None, None).await.expect("insert");
    let removed = event("passkey.removed", Some(alice.id));
    assert_eq!(store.delete_user_passkeys(alice.id, Some(&notice()), Some(&removed)).await.expect("delete"), 2);
    assert!(store.user_passkeys(alice.id).await.expect("list").is_empty());
    assert_eq!(store.user_passkeys(bob.id).await.expect("list").len(), 1, "another's stay");
    assert_eq!(store.pending_mail_count().await.expect("count"), 1);
    assert_eq!(store.delete_user_passkeys(alice.id, Some(&notice()), Some(&removed)).await.expect("delete"), 0);
    assert_eq!(store.pending_mail_count().await.expect("count"), 1, "nothing to say the second time");
    assert_eq!(recorded(&store).await.len(), 1);
}
