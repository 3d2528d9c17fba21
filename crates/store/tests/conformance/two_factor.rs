//! Two-factor settings, recovery codes and pending sign-ins.

use std::sync::Arc;

use portcullis_app::TwoFactorStore;
use portcullis_app::model::PendingSignIn;
use portcullis_app::ports::TwoFactorChange;
use portcullis_store::SqlStore;
use tokio::task::JoinSet;

use crate::fixtures::{MINUTE, T0, add_user, event, recorded, refuse_audit_inserts};

fn change(event: Option<&portcullis_app::audit::AuditEvent>) -> TwoFactorChange<'_> {
    TwoFactorChange { mails: &[], audit: event, now: T0 }
}

fn hashes(prefix: &str) -> Vec<String> {
    (0..10).map(|i| format!("{prefix}{i}")).collect()
}

/// Turns 2FA on for `user_id` with secret `sealed`, last step 100.
async fn enable(store: &SqlStore, user_id: i64, sealed: &str) {
    assert!(store.start_enrolment(user_id, sealed, T0).await.expect("start"));
    assert!(store.confirm_enrolment(user_id, sealed, 100, &hashes("h"), &change(None)).await.expect("confirm"));
}

pub async fn enrolment_is_pending_until_confirmed_with_its_own_secret(store: SqlStore) {
    let alice = add_user(&store, "alice", false).await;
    let bob = add_user(&store, "bob", false).await;
    assert!(store.two_factor(alice.id).await.expect("read").is_none());
    assert!(store.start_enrolment(alice.id, "sealed-1", T0).await.expect("start"));
    assert!(store.start_enrolment(alice.id, "sealed-2", T0 + 1).await.expect("start again replaces"));
    let rec = store.two_factor(alice.id).await.expect("read").expect("row");
    assert!(!rec.enabled());
    assert_eq!((rec.pending_secret.as_deref(), rec.pending_at), (Some("sealed-2"), Some(T0 + 1)));
    assert!(store.two_factor_users(&[alice.id, bob.id]).await.expect("read").is_empty());
    let ev = event("two_factor.enabled", Some(alice.id));
    assert!(
        !store.confirm_enrolment(alice.id, "sealed-1", 7, &hashes("h"), &change(Some(&ev))).await.expect("stale"),
        "a replaced enrolment does not confirm"
    );
    assert!(recorded(&store).await.is_empty(), "nothing recorded for a refused change");
    assert!(store.confirm_enrolment(alice.id, "sealed-2", 7, &hashes("h"), &change(Some(&ev))).await.expect("ok"));
    let rec = store.two_factor(alice.id).await.expect("read").expect("row");
    assert!(rec.enabled());
    assert_eq!((rec.secret.as_deref(), rec.last_step, rec.enabled_at), (Some("sealed-2"), Some(7), Some(T0)));
    assert_eq!((rec.pending_secret, rec.recovery_left), (None, 10));
    assert_eq!(recorded(&store).await, vec![("two_factor.enabled".to_owned(), Some(alice.id))]);
    assert!(!store.start_enrolment(alice.id, "sealed-3", T0).await.expect("refused while on"));
    assert!(!store.confirm_enrolment(alice.id, "sealed-2", 8, &hashes("x"), &change(None)).await.expect("once"));
    assert_eq!(store.two_factor_users(&[bob.id, alice.id]).await.expect("read"), vec![alice.id]);
    assert!(store.two_factor_users(&[]).await.expect("read").is_empty());
}

pub async fn accept_step_moves_only_forward_once_under_races(store: SqlStore) {
    let alice = add_user(&store, "alice", false).await;
    assert!(!store.accept_step(alice.id, 5).await.expect("off"), "2FA off: nothing accepted");
    enable(&store, alice.id, "s").await;
    assert!(!store.accept_step(alice.id, 100).await.expect("the same step"));
    assert!(!store.accept_step(alice.id, 99).await.expect("an earlier step"));
    let store = Arc::new(store);
    let mut set = JoinSet::new();
    for _ in 0..20 {
        let s = store.clone();
        set.spawn(async move { s.accept_step(alice.id, 101).await.expect("accept") });
    }
    let wins = set.join_all().await.into_iter().filter(|w| *w).count();
    assert_eq!(wins, 1, "one code, one acceptance");
    assert_eq!(store.two_factor(alice.id).await.expect("read").expect("row").last_step, Some(101));
}

pub async fn recovery_codes_work_once_and_are_replaced_whole(store: SqlStore) {
    let alice = add_user(&store, "alice", false).await;
    let bob = add_user(&store, "bob", false).await;
    enable(&store, alice.id, "s").await;
    assert_eq!(store.use_recovery_code(bob.id, "h1", &change(None)).await.expect("other user"), None);
    let ev = event("two_factor.recovery_used", Some(alice.id));
    assert_eq!(store.use_recovery_code(alice.id, "h1", &change(Some(&ev))).await.expect("use"), Some(9));
    assert_eq!(store.use_recovery_code(alice.id, "h1", &change(Some(&ev))).await.expect("again"), None);
    assert_eq!(recorded(&store).await.len(), 1, "recorded once");
    let store = Arc::new(store);
    let mut set = JoinSet::new();
    for _ in 0..10 {
        let s = store.clone();
        set.spawn(async move { s.use_recovery_code(alice.id, "h2", &change(None)).await.expect("use") });
    }
    let wins = set.join_all().await.into_iter().flatten().count();
    assert_eq!(wins, 1, "a code works once however many try it at once");
    assert_eq!(store.two_factor(alice.id).await.expect("read").expect("row").recovery_left, 8);
    assert!(store.replace_recovery_codes(alice.id, &hashes("n"), &change(None)).await.expect("replace"));
    assert_eq!(store.two_factor(alice.id).await.expect("read").expect("row").recovery_left, 10);
    assert_eq!(store.use_recovery_code(alice.id, "h3", &change(None)).await.expect("old"), None, "old codes die");
    assert_eq!(store.use_recovery_code(alice.id, "n3", &change(None)).await.expect("new"), Some(9));
    assert!(!store.replace_recovery_codes(bob.id, &hashes("b"), &change(None)).await.expect("off"));
}

pub async fn disabling_removes_secret_codes_and_pending_sign_ins(store: SqlStore) {
    let alice = add_user(&store, "alice", false).await;
    enable(&store, alice.id, "s").await;
    store.insert_pending_sign_in(&pending("p1", alice.id, T0 + 5 * MINUTE)).await.expect("pending");
    let ev = event("two_factor.disabled", Some(alice.id));
    assert!(store.disable_two_factor(alice.id, &change(Some(&ev))).await.expect("off"));
    assert!(store.two_factor(alice.id).await.expect("read").is_none());
    assert!(store.pending_sign_in("p1").await.expect("read").is_none());
    assert_eq!(store.use_recovery_code(alice.id, "h1", &change(None)).await.expect("use"), None);
    assert!(!store.disable_two_factor(alice.id, &change(Some(&ev))).await.expect("off already"));
    assert_eq!(recorded(&store).await.len(), 1);
}

pub async fn a_two_factor_change_whose_event_cannot_be_written_is_undone(store: SqlStore) {
    let alice = add_user(&store, "alice", false).await;
    enable(&store, alice.id, "s").await;
    refuse_audit_inserts(&store).await;
    let ev = event("two_factor.disabled", Some(alice.id));
    assert!(store.disable_two_factor(alice.id, &change(Some(&ev))).await.is_err());
    assert!(store.use_recovery_code(alice.id, "h1", &change(Some(&ev))).await.is_err());
    let rec = store.two_factor(alice.id).await.expect("read").expect("still on");
    assert!(rec.enabled());
    assert_eq!(rec.recovery_left, 10);
}

fn pending(id: &str, user_id: i64, expires_at: i64) -> PendingSignIn {
    PendingSignIn {
        id: id.to_owned(),
        secret_hash: "hash".into(),
        user_id,
        attempt_key: format!("user:{user_id}"),
        known_device: true,
        remember: true,
        next: Some("/posts/new".into()),
        created_at: T0,
        expires_at,
    }
}

pub async fn pending_sign_ins_round_trip_delete_once_and_purge(store: SqlStore) {
    let alice = add_user(&store, "alice", false).await;
    store.insert_pending_sign_in(&pending("p1", alice.id, T0 + 5 * MINUTE)).await.expect("insert");
    store.insert_pending_sign_in(&pending("p2", alice.id, T0 + MINUTE)).await.expect("insert");
    let p = store.pending_sign_in("p1").await.expect("read").expect("found");
    assert_eq!((p.user_id, p.known_device, p.remember), (alice.id, true, true));
    assert_eq!(
        (p.next.as_deref(), p.attempt_key.as_str(), p.expires_at),
        (Some("/posts/new"), "user:1", T0 + 5 * MINUTE)
    );
    assert_eq!(store.purge_pending_sign_ins(T0 + MINUTE).await.expect("purge"), 1);
    assert!(store.pending_sign_in("p2").await.expect("read").is_none());
    assert!(store.delete_pending_sign_in("p1").await.expect("delete"));
    assert!(!store.delete_pending_sign_in("p1").await.expect("delete"), "once");
}
