//! The current-password checks of the account pages: the login's lockout
//! counter and threshold, an audit record of every wrong password, and a
//! fair share of the hashing pool.

use std::sync::Arc;

use portcullis_app::{AppError, AuthSettings, ClientInfo, Origin};
use portcullis_domain::Password;

use crate::world::{PW, World, minutes};

fn settings() -> AuthSettings {
    AuthSettings { lockout_threshold: 5, lockout_duration: minutes(15), ..AuthSettings::default() }
}

fn from(ip: &str) -> Origin {
    Origin::user(&ClientInfo { ip: Some(ip.parse().expect("ip")), user_agent: None })
}

fn kinds(w: &World, kind: &str) -> usize {
    w.store.audit_events().iter().filter(|e| e.kind == kind).count()
}

#[tokio::test]
async fn wrong_current_passwords_lock_the_account_like_failed_logins() {
    let w = World::new(settings());
    let alice = w.user("alice").await;
    let session = w.sign_in("alice", PW, false).await.expect("signed in").session;
    let new = Password::parse("a brand new passphrase", w.accounts.password_policy()).expect("policy");
    let origin = from("198.51.100.1");
    let mut answers = Vec::new();
    for i in 0..45 {
        let guess = format!("guess number {i}");
        answers.push(w.accounts.change_password(&session, &guess, &new, &origin).await.map(|_| ()));
    }
    let wrong = answers.iter().filter(|r| matches!(r, Err(AppError::InvalidCredentials))).count();
    let locked = answers.iter().filter(|r| matches!(r, Err(AppError::Locked))).count();
    assert_eq!((wrong, locked), (5, 40), "the threshold is checked, the rest refused unchecked");
    assert_eq!(kinds(&w, "login.failure"), 5, "every wrong password is recorded as a failed login");
    assert_eq!(kinds(&w, "login.locked"), 40);
    let failure = w.store.audit_events().into_iter().find(|e| e.kind == "login.failure").expect("event");
    assert_eq!((failure.user_id, failure.ip.as_deref()), (Some(alice.id), Some("198.51.100.1")));

    // Locked: the right password changes nothing, on every page.
    let r = w.accounts.change_password(&session, PW, &new, &origin).await;
    assert!(matches!(r, Err(AppError::Locked)), "{r:?}");
    let r = w.accounts.request_email_change(alice.id, PW, "new@example.com", &origin).await;
    assert!(matches!(r, Err(AppError::Locked)), "{r:?}");
    let r = w.accounts.delete_own_account(alice.id, PW, &origin).await;
    assert!(matches!(r, Err(AppError::Locked)), "{r:?}");
    assert_eq!(w.accounts.user(alice.id).await.expect("still there").password_hash, alice.password_hash);
    // The same counter as the login's: the account is locked for logins too.
    assert!(matches!(w.sign_in("alice", PW, false).await, Err(AppError::Locked)));

    w.advance(minutes(15));
    w.accounts.change_password(&session, PW, &new, &origin).await.expect("the lock ran out");
}

#[tokio::test]
async fn parallel_wrong_passwords_never_exceed_the_threshold() {
    let w = Arc::new(World::new(settings()));
    let alice = w.user("alice").await;
    let mut tasks = Vec::new();
    for i in 0..30 {
        let w = w.clone();
        // From many addresses, so that only the lockout (and the user's share) applies.
        let origin = from(&format!("198.51.100.{i}"));
        tasks.push(tokio::spawn(async move {
            let guess = format!("guess number {i}");
            loop {
                match w.accounts.delete_own_account(alice.id, &guess, &origin).await {
                    Err(AppError::TooMany { .. }) => tokio::task::yield_now().await,
                    other => return other,
                }
            }
        }));
    }
    let mut wrong = 0;
    for t in tasks {
        match t.await.expect("join") {
            Err(AppError::InvalidCredentials) => wrong += 1,
            Err(AppError::Locked) => {}
            other => panic!("{other:?}"),
        }
    }
    assert_eq!(wrong, 5, "exactly the threshold was verified");
}

#[tokio::test]
async fn one_user_s_flood_gets_its_share_and_logins_still_get_in() {
    let w = Arc::new(World::new(AuthSettings { lockout_threshold: 1000, ..settings() }));
    let alice = w.user("alice").await;
    w.user("bob").await;
    let mut flood = Vec::new();
    for i in 0..40 {
        let w = w.clone();
        flood.push(tokio::spawn(async move {
            w.accounts.delete_own_account(alice.id, &format!("guess {i}"), &from("198.51.100.1")).await
        }));
    }
    let bob = w.sign_in("bob", PW, false).await;
    let mut too_many = 0;
    for t in flood {
        match t.await.expect("join") {
            Err(AppError::TooMany { retry_after }) => {
                assert!(retry_after >= 1);
                too_many += 1;
            }
            Err(AppError::InvalidCredentials) => {}
            other => panic!("{other:?}"),
        }
    }
    bob.expect("another user signs in during the flood");
    assert!(too_many >= 30, "one user holds two places at most: {too_many} refused of 40");
}
