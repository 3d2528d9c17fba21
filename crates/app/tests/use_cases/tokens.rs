//! Link lifetimes: password reset and email verification.

use std::time::Duration;

use portcullis_app::accounts::Registration;
use portcullis_app::error::TokenProblem;
use portcullis_app::{AppError, AuthSettings, ClientInfo, Origin};

use crate::world::{PW, World, minutes};

/// Waits (in short steps, 2 s at most) until `n` mails with a `path` link
/// are queued, and answers the last link's token.
pub async fn wait_for_link(w: &World, path: &str, n: usize) -> String {
    let deadline = std::time::Instant::now() + Duration::from_secs(2);
    loop {
        let links = w.links(path);
        if links.len() >= n {
            return links.last().cloned().unwrap_or_default();
        }
        assert!(std::time::Instant::now() < deadline, "no {path} mail was queued");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

fn origin() -> Origin {
    Origin::user(&ClientInfo::default())
}

fn expired<T>(r: Result<T, AppError>) -> bool {
    matches!(r, Err(AppError::Token(TokenProblem::Expired)))
}

#[tokio::test]
async fn a_reset_link_works_until_its_lifetime_is_over() {
    let w = World::new(AuthSettings { reset_token_ttl: minutes(60), ..AuthSettings::default() });
    w.user("alice").await;
    w.accounts.request_password_reset("alice@example.com").await.expect("asked");
    let token = wait_for_link(&w, "reset-password", 1).await;
    w.advance(minutes(60) - Duration::from_millis(1));
    w.accounts.check_reset_token(&token).await.expect("still valid a millisecond before its end");
    w.advance(Duration::from_millis(1));
    assert!(expired(w.accounts.check_reset_token(&token).await));
    assert!(expired(w.accounts.reset_password(&token, "a brand new passphrase", &origin()).await));
    w.sign_in("alice", PW, false).await.expect("the password is unchanged");
}

#[tokio::test]
async fn a_reset_ends_every_session_and_its_link_works_once() {
    let w = World::new(AuthSettings::default());
    w.user("alice").await;
    let before = w.sign_in("alice", PW, true).await.expect("sign in");
    w.accounts.request_password_reset("alice@example.com").await.expect("asked");
    let token = wait_for_link(&w, "reset-password", 1).await;
    w.advance(minutes(30));
    w.accounts.reset_password(&token, "a brand new passphrase", &origin()).await.expect("reset");
    assert!(!w.signed_in(&before.cookie).await);
    let again = w.accounts.reset_password(&token, "another new passphrase", &origin()).await;
    assert!(matches!(again, Err(AppError::Token(TokenProblem::Used))));
    w.sign_in("alice", "a brand new passphrase", false).await.expect("the new password works");
}

#[tokio::test]
async fn a_verification_link_expires_and_a_new_one_replaces_it() {
    let w = World::new(AuthSettings { verify_token_ttl: minutes(48 * 60), ..AuthSettings::default() });
    let reg = Registration {
        username: "alice".into(),
        email: "alice@example.com".into(),
        password: PW.into(),
        ..Registration::default()
    };
    let alice = w.accounts.register(reg, &Origin::command_line()).await.expect("register");
    assert!(!alice.email_verified);
    let first = wait_for_link(&w, "verify-email", 1).await;
    w.advance(minutes(48 * 60));
    assert!(expired(w.accounts.verify_email(&first, &origin()).await));

    assert!(w.accounts.resend_verification(&alice).await.expect("resend"));
    let second = wait_for_link(&w, "verify-email", 2).await;
    assert!(matches!(w.accounts.verify_email(&first, &origin()).await, Err(AppError::Token(TokenProblem::Invalid))));
    w.advance(minutes(48 * 60) - Duration::from_millis(1));
    let verified = w.accounts.verify_email(&second, &origin()).await.expect("verify");
    assert!(verified.email_verified);
}
