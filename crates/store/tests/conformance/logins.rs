//! A login's writes: the session, the noted login, the forgotten attempt,
//! the event and the mail, all or nothing.

use portcullis_app::mail::OutgoingMail;
use portcullis_app::ports::{OutboxStore, SignIn};
use portcullis_app::{SessionStore, UserStore};
use portcullis_store::SqlStore;

use crate::fixtures::{MINUTE, T0, add_user, event, recorded, refuse_audit_inserts, reserve, session, session_ids};

fn notice(to: &str) -> OutgoingMail {
    OutgoingMail { recipient: to.to_owned(), subject: "New sign-in".to_owned(), sealed: "sealed".to_owned() }
}

pub async fn open_session_writes_the_whole_login(store: SqlStore) {
    let alice = add_user(&store, "alice", false).await;
    let bob = add_user(&store, "bob", false).await;
    for key in ["user:alice", "name:other"] {
        assert_eq!(reserve(&store, key, T0, 5).await, 1);
    }
    let first = session("s1", &alice, T0 + MINUTE, T0 + 9 * MINUTE, true);
    let success = event("login.success", Some(alice.id));
    let mail = notice("alice@example.com");
    let login = SignIn { attempt_key: "user:alice", audit: &success, mail: Some(&mail) };
    store.open_session(&first, &login).await.expect("open");

    let found = store.session_with_user("s1").await.expect("lookup").expect("the session is stored");
    let s = &found.session;
    assert_eq!(
        (s.id.as_str(), s.created_at, s.expires_at, s.remember),
        ("s1", first.created_at, first.expires_at, true)
    );
    assert_eq!((s.ip.as_deref(), s.user_agent.as_deref()), (Some("192.0.2.7"), Some("conformance/1.0")));
    assert_eq!(found.user.id, alice.id);
    assert_eq!(found.user.last_login_at, Some(T0 + MINUTE), "the login is noted at the session's start");
    assert_eq!(store.user_by_id(bob.id).await.expect("get").expect("bob").last_login_at, None);
    let listed = store.list_users(Some("alice"), None, 10, T0).await.expect("list users");
    assert_eq!(listed[0].user.last_login_at, Some(T0 + MINUTE));
    assert_eq!(reserve(&store, "user:alice", T0, 5).await, 1, "the attempt is forgotten");
    assert_eq!(reserve(&store, "name:other", T0, 5).await, 2, "other counters stay");
    assert_eq!(recorded(&store).await, [("login.success".to_owned(), Some(alice.id))]);
    let claimed = store.claim_mail(T0 + MINUTE, T0 + 2 * MINUTE, 10).await.expect("claim");
    assert_eq!(claimed.len(), 1, "the notice is queued with the login");

    // Without a mail, and again for the same user: a second session.
    let second = session("s2", &alice, T0 + 2 * MINUTE, T0 + 9 * MINUTE, false);
    let login = SignIn { attempt_key: "user:alice", audit: &success, mail: None };
    store.open_session(&second, &login).await.expect("open");
    assert_eq!(session_ids(&store, alice.id, T0).await, ["s2", "s1"]);
    assert_eq!(store.user_by_id(alice.id).await.expect("get").expect("alice").last_login_at, Some(T0 + 2 * MINUTE));
    assert_eq!(store.pending_mail_count().await.expect("count"), 1, "no second mail");
    assert_eq!(recorded(&store).await.len(), 2);

    // A session id already taken opens nothing.
    assert!(store.open_session(&second, &login).await.is_err());
    assert_eq!(recorded(&store).await.len(), 2, "nothing recorded for it");
}

pub async fn a_login_whose_event_cannot_be_written_opens_nothing(store: SqlStore) {
    let alice = add_user(&store, "alice", false).await;
    assert_eq!(reserve(&store, "user:alice", T0, 5).await, 1);
    refuse_audit_inserts(&store).await;
    let success = event("login.success", Some(alice.id));
    let mail = notice("alice@example.com");
    let s1 = session("s1", &alice, T0 + MINUTE, T0 + 9 * MINUTE, false);
    let login = SignIn { attempt_key: "user:alice", audit: &success, mail: Some(&mail) };
    assert!(store.open_session(&s1, &login).await.is_err());
    assert!(store.session_with_user("s1").await.expect("lookup").is_none(), "no session");
    assert_eq!(store.user_by_id(alice.id).await.expect("get").expect("alice").last_login_at, None, "not noted");
    assert_eq!(store.pending_mail_count().await.expect("count"), 0, "no mail");
    assert_eq!(reserve(&store, "user:alice", T0, 5).await, 2, "the attempt still counts");
    // The writer goes on: the next login, with the log writable again, opens.
    let drop_trigger = match store.backend() {
        portcullis_store::Backend::Sqlite => "DROP TRIGGER audit_refused",
        portcullis_store::Backend::Postgres => "DROP TRIGGER audit_refused ON audit_events",
    };
    sqlx::raw_sql(drop_trigger).execute(store.pool()).await.expect("drop trigger");
    store.open_session(&s1, &login).await.expect("open");
    assert_eq!(session_ids(&store, alice.id, T0).await, ["s1"]);
}
