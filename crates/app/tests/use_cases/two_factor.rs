//! Two-factor sign-in on the settable clock: one step of skew, no replay,
//! a pending sign-in that runs out, wrong codes that lock, recovery codes
//! that work once.

use std::time::Duration;

use portcullis_app::accounts::{CodeUsed, FirstStep, PENDING_SIGN_IN_TTL, SecondStep};
use portcullis_app::{AppError, AuthSettings, ClientInfo, Clock as _, Origin, User};
use portcullis_domain::totp;

use crate::world::{PW, World};

fn origin() -> Origin {
    Origin::user(&ClientInfo::default())
}

/// Turns 2FA on for `user` with a code for now; the secret and the recovery codes.
async fn enrol(w: &World, user: &User) -> (Vec<u8>, Vec<String>) {
    let e = w.accounts.start_two_factor(user).await.expect("start");
    assert!(e.uri.starts_with("otpauth://totp/Portcullis:"), "{}", e.uri);
    let secret = totp::secret_from_base32(&e.secret_base32).expect("base32");
    let code = code_at(w, &secret, 0);
    let codes = w.accounts.confirm_two_factor(user, &code, &origin()).await.expect("confirm");
    (secret, codes)
}

/// The code `offset` steps from now.
fn code_at(w: &World, secret: &[u8], offset: i64) -> String {
    totp::code_for_step(secret, totp::step_at(w.clock.now_ms()) + offset, 6)
}

/// The first step: a right password for an account with 2FA gives a pending sign-in's cookie.
async fn password_step(w: &World, name: &str, remember: bool, next: Option<&str>) -> String {
    let login = w.accounts.authenticate(name, PW, None, &origin()).await.expect("password");
    match w.accounts.first_step(login, remember, next).await.expect("first step") {
        FirstStep::SecondFactor { cookie } => cookie,
        FirstStep::Open(_) => panic!("2FA is on: no session without a code"),
    }
}

async fn code_step(w: &World, cookie: &str, code: &str) -> Result<SecondStep, AppError> {
    w.accounts.second_step(cookie, code, ClientInfo::default(), "a browser", &origin()).await
}

fn next_step(w: &World) {
    w.advance(Duration::from_secs(30));
}

#[tokio::test]
async fn one_step_of_skew_either_way_is_accepted_and_no_more() {
    let w = World::new(AuthSettings { lockout_threshold: 50, ..AuthSettings::default() });
    let alice = w.user("alice").await;
    let (secret, _) = enrol(&w, &alice).await;
    for offset in [2, -2] {
        next_step(&w);
        let cookie = password_step(&w, "alice", false, None).await;
        assert!(matches!(code_step(&w, &cookie, &code_at(&w, &secret, offset)).await, Err(AppError::Invalid(_))));
    }
    // Steps move on, so that each accepted code is for a step later than the last.
    for offset in [-1, 0, 1] {
        w.advance(Duration::from_secs(90));
        let cookie = password_step(&w, "alice", false, None).await;
        let done = code_step(&w, &cookie, &code_at(&w, &secret, offset)).await.expect("within the skew");
        assert_eq!(done.used, CodeUsed::Totp);
        assert!(w.signed_in(&done.session.cookie).await);
    }
}

#[tokio::test]
async fn a_code_accepted_once_is_refused_after() {
    let w = World::new(AuthSettings::default());
    let alice = w.user("alice").await;
    let (secret, _) = enrol(&w, &alice).await;
    let code = code_at(&w, &secret, 0);
    let cookie = password_step(&w, "alice", false, None).await;
    assert!(
        matches!(code_step(&w, &cookie, &code).await, Err(AppError::Invalid(_))),
        "the enrolment's own code is used up"
    );
    next_step(&w);
    let code = code_at(&w, &secret, 0);
    code_step(&w, &cookie, &code).await.expect("the next step's code");
    let again = password_step(&w, "alice", false, None).await;
    assert!(matches!(code_step(&w, &again, &code).await, Err(AppError::Invalid(_))), "replayed");
    let previous = code_at(&w, &secret, -1);
    assert!(matches!(code_step(&w, &again, &previous).await, Err(AppError::Invalid(_))), "an earlier step");
}

#[tokio::test]
async fn a_pending_sign_in_lives_five_minutes_and_keeps_next_and_remember() {
    let w = World::new(AuthSettings::default());
    let alice = w.user("alice").await;
    let (secret, _) = enrol(&w, &alice).await;
    next_step(&w);
    let cookie = password_step(&w, "alice", true, Some("/posts/new")).await;
    assert_eq!(w.store.session_count(), 0, "no session between the steps");
    w.advance(PENDING_SIGN_IN_TTL - Duration::from_millis(1));
    assert!(w.accounts.pending_sign_in(&cookie).await.expect("read").is_some(), "still alive");
    let done = code_step(&w, &cookie, &code_at(&w, &secret, 0)).await.expect("just in time");
    assert!(done.remember && done.session.session.remember);
    assert_eq!(done.next.as_deref(), Some("/posts/new"));

    next_step(&w);
    let late = password_step(&w, "alice", false, None).await;
    w.advance(PENDING_SIGN_IN_TTL);
    let code = code_at(&w, &secret, 0);
    assert!(matches!(code_step(&w, &late, &code).await, Err(AppError::NotFound)), "expired");
    assert_eq!(w.store.pending_sign_in_count(), 0, "and deleted");
    assert!(matches!(code_step(&w, "not.acookie", &code).await, Err(AppError::NotFound)));
}

#[tokio::test]
async fn wrong_codes_lock_the_account_at_the_threshold_and_drop_the_pending_sign_in() {
    let w = World::new(AuthSettings { lockout_threshold: 3, ..AuthSettings::default() });
    let alice = w.user("alice").await;
    let (secret, _) = enrol(&w, &alice).await;
    next_step(&w);
    // The right password counted one attempt; two wrong codes make three.
    let cookie = password_step(&w, "alice", false, None).await;
    for _ in 0..2 {
        assert!(matches!(code_step(&w, &cookie, "000000").await, Err(AppError::Invalid(_))));
    }
    let right = code_at(&w, &secret, 0);
    assert!(matches!(code_step(&w, &cookie, &right).await, Err(AppError::Locked)), "locked, whatever the code");
    assert!(matches!(code_step(&w, &cookie, &right).await, Err(AppError::NotFound)), "the pending sign-in is gone");
    assert!(matches!(w.accounts.authenticate("alice", PW, None, &origin()).await, Err(AppError::Locked)));
    assert!(w.store.audit_events().iter().any(|e| e.kind == "login.locked"));
}

#[tokio::test]
async fn a_recovery_code_works_once() {
    let w = World::new(AuthSettings::default());
    let alice = w.user("alice").await;
    let (_, codes) = enrol(&w, &alice).await;
    assert_eq!(codes.len(), 10);
    let cookie = password_step(&w, "alice", false, None).await;
    let done = code_step(&w, &cookie, &codes[3].to_uppercase()).await.expect("recovery code");
    assert_eq!(done.used, CodeUsed::Recovery { left: 9 });
    let again = password_step(&w, "alice", false, None).await;
    assert!(matches!(code_step(&w, &again, &codes[3]).await, Err(AppError::Invalid(_))), "used up");
    assert_eq!(w.accounts.two_factor_status(alice.id).await.expect("status").recovery_left, 9);
    assert!(w.store.audit_events().iter().any(|e| e.kind == "two_factor.recovery_used"));
}

#[tokio::test]
async fn turning_off_needs_the_password_and_a_code() {
    let w = World::new(AuthSettings::default());
    let alice = w.user("alice").await;
    let (secret, codes) = enrol(&w, &alice).await;
    next_step(&w);
    let code = code_at(&w, &secret, 0);
    assert!(matches!(
        w.accounts.disable_two_factor(alice.id, "wrong password", &code, &origin()).await,
        Err(AppError::InvalidCredentials)
    ));
    assert!(matches!(
        w.accounts.disable_two_factor(alice.id, PW, "123456", &origin()).await,
        Err(AppError::Invalid(_))
    ));
    assert!(w.accounts.has_two_factor(alice.id).await.expect("read"));
    w.accounts.disable_two_factor(alice.id, PW, &codes[0], &origin()).await.expect("off with a recovery code");
    assert!(!w.accounts.has_two_factor(alice.id).await.expect("read"));
    let login = w.accounts.authenticate("alice", PW, None, &origin()).await.expect("password");
    assert!(matches!(w.accounts.first_step(login, false, None).await, Ok(FirstStep::Open(_))));
}
