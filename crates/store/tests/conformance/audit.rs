//! The audit log: every change records its event in the same transaction,
//! a refused change records nothing, and a change whose event cannot be
//! written is undone.

use portcullis_app::audit::AuditFilter;
use portcullis_app::ports::{AuditStore, NewCredentials, SignIn};
use portcullis_app::{NewToken, SessionStore, StoreError, TokenPurpose, TokenStore, UserStore};
use portcullis_store::SqlStore;

use crate::fixtures::{
    MINUTE, T0, add_session, add_user, event, is_admin, new_user, recorded, refuse_audit_inserts, session, session_ids,
};

fn token(id: &str, purpose: TokenPurpose, email: Option<&str>) -> NewToken {
    NewToken {
        id: id.to_owned(),
        secret_hash: format!("hash-of-{id}"),
        purpose,
        email: email.map(str::to_owned),
        created_at: T0,
        expires_at: T0 + 60 * MINUTE,
    }
}

pub async fn audited_changes_record_their_event(store: SqlStore) {
    let root = add_user(&store, "root", true).await;
    let alice = store
        .insert_user(&new_user("alice", "alice@example.com", false), Some(&event("register", None)))
        .await
        .expect("insert");
    let bob = store
        .insert_user_with_token(
            &new_user("bob", "bob@example.com", false),
            &token("t1", TokenPurpose::VerifyEmail, Some("bob@example.com")),
            &[],
            Some(&event("register", None)),
        )
        .await
        .expect("insert with token");
    let success = event("login.success", Some(alice.id));
    let login = SignIn { attempt_key: "user:alice", audit: &success, mail: None };
    store.open_session(&session("s1", &alice, T0, T0 + MINUTE, false), &login).await.expect("login");
    add_session(&store, &session("s2", &alice, T0, T0 + MINUTE, false)).await;
    assert!(store.delete_session(alice.id, "s1", Some(&event("logout", Some(alice.id)))).await.expect("logout"));
    assert_eq!(
        store
            .delete_user_sessions(alice.id, None, Some(&event("session.revoked", Some(alice.id))))
            .await
            .expect("revoke"),
        1
    );
    assert!(
        store.set_admin(alice.id, true, "s", T0, Some(&event("admin.grant", Some(alice.id)))).await.expect("grant")
    );
    store.set_admin_lock(bob.id, Some(T0 + MINUTE), T0, Some(&event("admin.lock", Some(bob.id)))).await.expect("lock");
    assert!(
        store
            .verify_email_with_token("t1", bob.id, "bob@example.com", T0, Some(&event("email.verified", Some(bob.id))),)
            .await
            .expect("verify")
    );
    store
        .issue_token(
            bob.id,
            &token("t2", TokenPurpose::ResetPassword, None),
            &[],
            Some(&event("email.change", Some(bob.id))),
        )
        .await
        .expect("issue");
    let changed = NewCredentials {
        user_id: bob.id,
        hash: "h2",
        new_stamp: "st2",
        mails: &[],
        audit: Some(&event("password.changed", Some(bob.id))),
        now: T0,
    };
    store.change_password_with_mail(&changed).await.expect("change");
    let reset =
        NewCredentials { hash: "h3", new_stamp: "st3", audit: Some(&event("password.reset", Some(bob.id))), ..changed };
    assert!(store.reset_password_with_token("t2", &[], &reset).await.expect("reset"));
    assert!(store.delete_user(bob.id, Some(&event("admin.delete", Some(bob.id)))).await.expect("delete"));
    store.insert_audit(&event("login.failure", None)).await.expect("failure");

    let a = Some(alice.id);
    let b = Some(bob.id);
    let expected: Vec<(String, Option<i64>)> = [
        ("register", a),
        ("register", b),
        ("login.success", a),
        ("logout", a),
        ("session.revoked", a),
        ("admin.grant", a),
        ("admin.lock", b),
        ("email.verified", b),
        ("email.change", b),
        ("password.changed", b),
        ("password.reset", b),
        ("admin.delete", b),
        ("login.failure", None),
    ]
    .into_iter()
    .map(|(k, u)| (k.to_owned(), u))
    .collect();
    assert_eq!(recorded(&store).await, expected);
    let mine = store.list_audit(&AuditFilter { user_id: a, ..Default::default() }, 100).await.expect("list");
    assert_eq!(mine.len(), 5, "filtered by user");
    assert!(mine.iter().all(|e| e.ip.as_deref() == Some("192.0.2.9") && e.user_agent.is_some()));
    assert!(is_admin(&store, root.id).await);
}

pub async fn refused_changes_record_nothing(store: SqlStore) {
    let root = add_user(&store, "root", true).await;
    let alice = add_user(&store, "alice", false).await;
    assert!(
        !store.set_admin(root.id, false, "s", T0, Some(&event("admin.revoke", Some(root.id)))).await.expect("revoke")
    );
    assert!(!store.delete_user(root.id, Some(&event("admin.delete", Some(root.id)))).await.expect("delete"));
    assert!(!store.delete_session(alice.id, "nope", Some(&event("logout", Some(alice.id)))).await.expect("logout"));
    let taken = store.insert_user(&new_user("ALICE", "a2@example.com", false), Some(&event("register", None))).await;
    assert!(matches!(taken, Err(StoreError::UsernameTaken)), "{taken:?}");
    store
        .issue_token(alice.id, &token("t1", TokenPurpose::VerifyEmail, Some("root@example.com")), &[], None)
        .await
        .expect("issue");
    let verified = event("email.verified", None);
    let clash = store.verify_email_with_token("t1", alice.id, "root@example.com", T0, Some(&verified)).await;
    assert!(matches!(clash, Err(StoreError::EmailTaken)), "{clash:?}");
    assert_eq!(recorded(&store).await, Vec::new(), "nothing happened, nothing recorded");
}

pub async fn a_change_whose_event_cannot_be_written_is_undone(store: SqlStore) {
    let root = add_user(&store, "root", true).await;
    let alice = add_user(&store, "alice", false).await;
    add_session(&store, &session("s1", &alice, T0, T0 + MINUTE, false)).await;
    store
        .issue_token(alice.id, &token("t1", TokenPurpose::VerifyEmail, Some("new@example.com")), &[], None)
        .await
        .expect("issue");
    store.issue_token(alice.id, &token("t2", TokenPurpose::ResetPassword, None), &[], None).await.expect("issue");
    refuse_audit_inserts(&store).await;
    let ev = |kind: &str| event(kind, Some(alice.id));

    let e = ev("register");
    assert!(store.insert_user(&new_user("carol", "carol@example.com", false), Some(&e)).await.is_err());
    assert!(
        store
            .insert_user_with_token(
                &new_user("dave", "dave@example.com", false),
                &token("t3", TokenPurpose::VerifyEmail, None),
                &[],
                Some(&e),
            )
            .await
            .is_err()
    );
    assert!(store.user_by_login("carol").await.expect("lookup").is_none(), "no user without its event");
    assert!(store.user_by_login("dave").await.expect("lookup").is_none(), "no user without its event");
    assert!(store.token("t3").await.expect("token").is_none());

    let success = ev("login.success");
    let login = SignIn { attempt_key: "user:alice", audit: &success, mail: None };
    assert!(store.open_session(&session("s9", &alice, T0 + 5, T0 + MINUTE, false), &login).await.is_err());
    assert!(store.delete_session(alice.id, "s1", Some(&ev("logout"))).await.is_err());
    assert!(store.delete_user_sessions(alice.id, None, Some(&ev("session.revoked"))).await.is_err());
    assert!(store.set_admin(alice.id, true, "new", T0, Some(&ev("admin.grant"))).await.is_err());
    assert!(store.set_admin_lock(alice.id, Some(T0 + MINUTE), T0, Some(&ev("admin.lock"))).await.is_err());
    assert!(
        store
            .verify_email_with_token("t1", alice.id, "new@example.com", T0, Some(&ev("email.verified")))
            .await
            .is_err()
    );
    assert!(
        store
            .issue_token(alice.id, &token("t4", TokenPurpose::VerifyEmail, None), &[], Some(&ev("email.change")))
            .await
            .is_err()
    );
    let change = NewCredentials {
        user_id: alice.id,
        hash: "h2",
        new_stamp: "st2",
        mails: &[],
        audit: Some(&ev("password.changed")),
        now: T0,
    };
    assert!(store.change_password_with_mail(&change).await.is_err());
    assert!(store.reset_password_with_token("t2", &[], &change).await.is_err());
    assert!(store.delete_user(alice.id, Some(&ev("account.deleted"))).await.is_err());

    let after = store.user_by_id(alice.id).await.expect("lookup").expect("alice is still there");
    assert_eq!(after.last_login_at, alice.last_login_at, "login not recorded");
    assert!(!after.is_admin, "not granted");
    assert_eq!(after.security_stamp, alice.security_stamp);
    assert_eq!(after.password_hash, alice.password_hash, "password unchanged");
    assert_eq!(after.admin_locked_until, None, "not locked");
    assert_eq!(after.email, "alice@example.com");
    assert!(!after.email_verified);
    assert_eq!(session_ids(&store, alice.id, T0).await, ["s1"], "session not ended");
    let t1 = store.token("t1").await.expect("token").expect("t1");
    assert!(t1.used_at.is_none(), "verification link not used up");
    assert!(store.token("t2").await.expect("token").expect("t2").used_at.is_none(), "reset link not used up");
    assert!(store.token("t4").await.expect("token").is_none());
    assert!(is_admin(&store, root.id).await);
    assert!(store.insert_audit(&event("login.failure", None)).await.is_err(), "the log itself refuses");
}
