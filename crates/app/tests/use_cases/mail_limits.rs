//! Mails with links: a few an hour per destination address and per
//! account, the same answer for addresses nobody has.

use portcullis_app::accounts::Registration;
use portcullis_app::{AppError, AuthSettings, ClientInfo, Origin};

use crate::world::{PW, World, minutes};

fn settings() -> AuthSettings {
    AuthSettings { mail_per_hour: 3, ..AuthSettings::default() }
}

fn origin() -> Origin {
    Origin::user(&ClientInfo::default())
}

fn mails_to(w: &World, to: &str) -> usize {
    w.store.outbox().iter().filter_map(|m| w.sealer.open(&m.sealed)).filter(|m| m.to.eq_ignore_ascii_case(to)).count()
}

#[tokio::test]
async fn verification_resends_stop_at_the_hourly_allowance() {
    let w = World::new(settings());
    let reg = Registration {
        username: "carol".into(),
        email: "carol@example.com".into(),
        password: PW.into(),
        ..Default::default()
    };
    let carol = w.accounts.register(reg, &origin()).await.expect("register");
    assert_eq!(mails_to(&w, "carol@example.com"), 1, "the mail of the registration");
    let mut answers = Vec::new();
    for _ in 0..40 {
        answers.push(w.accounts.resend_verification(&carol).await);
    }
    assert_eq!(answers.iter().filter(|r| matches!(r, Ok(true))).count(), 3);
    assert_eq!(answers.iter().filter(|r| matches!(r, Err(AppError::SentRecently))).count(), 37);
    assert_eq!(mails_to(&w, "carol@example.com"), 4, "three resends, no more");
    w.advance(minutes(60));
    assert!(w.accounts.resend_verification(&carol).await.expect("an hour later"));
}

#[tokio::test]
async fn email_change_confirmations_are_limited_per_address_and_per_account() {
    let w = World::new(settings());
    let alice = w.user("alice").await;
    let bob = w.user("bob").await;
    // One account, many addresses: the account's allowance.
    for i in 0..3 {
        let to = format!("new{i}@example.com");
        w.accounts.request_email_change(alice.id, PW, &to, &origin()).await.expect("sent");
    }
    let r = w.accounts.request_email_change(alice.id, PW, "new9@example.com", &origin()).await;
    assert!(matches!(r, Err(AppError::SentRecently)), "{r:?}");
    assert_eq!(mails_to(&w, "new9@example.com"), 0);
    // Another account aiming at an address already sent three: the address's allowance.
    let r = w.accounts.request_email_change(bob.id, PW, "NEW0@example.com", &origin()).await;
    assert!(r.is_ok(), "{r:?}");
    w.accounts.request_email_change(bob.id, PW, "new0@example.com", &origin()).await.expect("its third");
    let r = w.accounts.request_email_change(bob.id, PW, "new0@example.com", &origin()).await;
    assert!(matches!(r, Err(AppError::SentRecently)), "the address had three this hour: {r:?}");
    assert_eq!(mails_to(&w, "new0@example.com"), 3);
}

#[tokio::test]
async fn reset_requests_are_limited_per_address_known_or_not() {
    let w = World::new(settings());
    w.user("alice").await;
    for to in ["alice@example.com", "nobody@example.com"] {
        let mut answers = Vec::new();
        for _ in 0..10 {
            answers.push(w.accounts.request_password_reset(to).await);
        }
        let ok = answers.iter().filter(|r| r.is_ok()).count();
        let recent = answers.iter().filter(|r| matches!(r, Err(AppError::SentRecently))).count();
        assert_eq!((ok, recent), (3, 7), "{to}: the same answers whether anyone has it");
    }
    crate::tokens::wait_for_link(&w, "reset-password", 3).await;
    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    assert_eq!(mails_to(&w, "alice@example.com"), 3);
    // Stored as a keyed hash, never as the address.
    assert!(w.store.counter_keys().iter().all(|k| !k.contains("alice") && !k.contains("nobody")));
}
