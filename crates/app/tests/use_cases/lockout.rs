//! Failed logins: the threshold, the window, the device allowance.

use portcullis_app::accounts::DeviceCookie;
use portcullis_app::{AppError, AuthSettings, ClientInfo, Clock as _, Origin};

use crate::world::{PW, World, minutes};

fn settings() -> AuthSettings {
    AuthSettings { lockout_threshold: 3, lockout_duration: minutes(15), ..AuthSettings::default() }
}

fn origin() -> Origin {
    Origin::user(&ClientInfo::default())
}

/// Tries `password` from a browser showing `device`; `Ok` when it signed in.
async fn attempt(w: &World, name: &str, password: &str, device: Option<&DeviceCookie>) -> Result<(), AppError> {
    let login = w.accounts.authenticate(name, password, device, &origin()).await?;
    w.accounts.sign_in(login, false, ClientInfo::default(), "a browser", &origin()).await.map(|_| ())
}

fn is_locked(r: &Result<(), AppError>) -> bool {
    matches!(r, Err(AppError::Locked))
}

fn is_refused(r: &Result<(), AppError>) -> bool {
    matches!(r, Err(AppError::InvalidCredentials))
}

#[tokio::test]
async fn the_threshold_locks_the_account_for_the_window_and_no_longer() {
    let w = World::new(settings());
    let alice = w.user("alice").await;
    for _ in 0..3 {
        assert!(is_refused(&attempt(&w, "alice", "wrong password", None).await));
    }
    let start = w.clock.now_ms();
    assert!(is_locked(&attempt(&w, "alice", PW, None).await), "the right password is refused once locked");
    assert_eq!(w.accounts.locked_until(&alice).await.expect("lock"), Some(start + 15 * 60_000));

    w.advance(minutes(15) - std::time::Duration::from_millis(1));
    assert!(is_locked(&attempt(&w, "alice", PW, None).await), "a millisecond before the end");
    w.advance(std::time::Duration::from_millis(1));
    assert_eq!(w.accounts.locked_until(&alice).await.expect("lock"), None);
    attempt(&w, "alice", PW, None).await.expect("free again when the window is over");
}

#[tokio::test]
async fn attempts_while_locked_do_not_extend_the_lock() {
    let w = World::new(settings());
    let alice = w.user("alice").await;
    for _ in 0..3 {
        attempt(&w, "alice", "wrong password", None).await.expect_err("wrong");
    }
    let until = w.accounts.locked_until(&alice).await.expect("lock").expect("locked");
    w.advance(minutes(10));
    for _ in 0..5 {
        assert!(is_locked(&attempt(&w, "alice", "wrong password", None).await));
    }
    assert_eq!(w.accounts.locked_until(&alice).await.expect("lock"), Some(until));
}

#[tokio::test]
async fn failures_older_than_the_window_are_forgotten() {
    let w = World::new(settings());
    w.user("alice").await;
    for _ in 0..2 {
        attempt(&w, "alice", "wrong password", None).await.expect_err("wrong");
    }
    w.advance(minutes(15) + std::time::Duration::from_millis(1));
    for _ in 0..2 {
        assert!(is_refused(&attempt(&w, "alice", "wrong password", None).await), "counting started again");
    }
    attempt(&w, "alice", PW, None).await.expect("two in this window: not locked");

    // Within the window, the same four failures lock.
    let w = World::new(settings());
    w.user("alice").await;
    for _ in 0..2 {
        attempt(&w, "alice", "wrong password", None).await.expect_err("wrong");
    }
    w.advance(minutes(15));
    attempt(&w, "alice", "wrong password", None).await.expect_err("wrong");
    assert!(is_locked(&attempt(&w, "alice", PW, None).await));
}

#[tokio::test]
async fn a_success_forgets_the_failures_before_it() {
    let w = World::new(settings());
    let alice = w.user("alice").await;
    for _ in 0..2 {
        attempt(&w, "alice", "wrong password", None).await.expect_err("wrong");
    }
    attempt(&w, "alice", PW, None).await.expect("right");
    assert_eq!(w.store.counter(&format!("user:{}", alice.id)), None);
    for _ in 0..2 {
        assert!(is_refused(&attempt(&w, "alice", "wrong password", None).await));
    }
    attempt(&w, "alice", PW, None).await.expect("still under the threshold");
}

#[tokio::test]
async fn names_nobody_has_lock_alike() {
    let w = World::new(settings());
    for _ in 0..3 {
        assert!(is_refused(&attempt(&w, "ghost", "wrong password", None).await));
    }
    assert!(is_locked(&attempt(&w, "ghost", "wrong password", None).await));
    w.advance(minutes(15));
    assert!(is_refused(&attempt(&w, "ghost", "wrong password", None).await));
}

#[tokio::test]
async fn a_browser_that_signed_in_before_keeps_its_own_allowance() {
    let w = World::new(settings());
    let alice = w.user("alice").await;
    w.user("bob").await;
    let own = DeviceCookie { user_id: alice.id, nonce: "alices-laptop".into() };
    // Strangers lock the account...
    for _ in 0..3 {
        attempt(&w, "alice", "a stranger's guess", None).await.expect_err("wrong");
    }
    assert!(is_locked(&attempt(&w, "alice", PW, None).await));
    // ...but not its owner's browser, which counts on its own key.
    attempt(&w, "alice", PW, Some(&own)).await.expect("the owner's browser gets in");
    // A cookie for another account is no allowance for this one.
    let bobs = DeviceCookie { user_id: alice.id + 1, nonce: "bobs-laptop".into() };
    assert!(is_locked(&attempt(&w, "alice", PW, Some(&bobs)).await));

    // The browser's own failures lock the browser, for the window.
    for _ in 0..3 {
        assert!(is_refused(&attempt(&w, "alice", "a typo", Some(&own)).await));
    }
    assert!(is_locked(&attempt(&w, "alice", PW, Some(&own)).await));
    w.advance(minutes(15));
    attempt(&w, "alice", PW, Some(&own)).await.expect("its lock ran out with the window");
}

#[tokio::test]
async fn a_password_reset_and_an_unlock_clear_the_lock() {
    let w = World::new(settings());
    let alice = w.user("alice").await;
    for _ in 0..3 {
        attempt(&w, "alice", "wrong password", None).await.expect_err("wrong");
    }
    assert!(is_locked(&attempt(&w, "alice", PW, None).await));
    w.accounts.unlock_user(alice.id, &Origin::command_line()).await.expect("unlock");
    attempt(&w, "alice", PW, None).await.expect("unlocked");

    for _ in 0..3 {
        attempt(&w, "alice", "wrong password", None).await.expect_err("wrong");
    }
    w.accounts.request_password_reset("alice@example.com").await.expect("asked");
    let link = crate::tokens::wait_for_link(&w, "reset-password", 1).await;
    w.accounts.reset_password(&link, "a brand new passphrase", &origin()).await.expect("reset");
    attempt(&w, "alice", "a brand new passphrase", None).await.expect("a reset clears the lock");
}

fn is_admin_locked(r: &Result<(), AppError>) -> bool {
    matches!(r, Err(AppError::AdminLocked))
}

#[tokio::test]
async fn an_administrator_s_lock_holds_until_unlocked_even_for_known_browsers() {
    let w = World::new(settings());
    let alice = w.user("alice").await;
    let own = DeviceCookie { user_id: alice.id, nonce: "alices-laptop".into() };
    w.accounts.lock_user(alice.id, &Origin::command_line()).await.expect("lock");
    assert!(is_admin_locked(&attempt(&w, "alice", PW, Some(&own)).await), "the owner is told, even on their browser");
    assert!(is_refused(&attempt(&w, "alice", "a stranger's guess", None).await), "a stranger sees a wrong password");
    w.advance(minutes(60 * 24 * 30));
    assert!(is_admin_locked(&attempt(&w, "alice", PW, None).await), "long past the lockout duration");
    w.accounts.unlock_user(alice.id, &Origin::command_line()).await.expect("unlock");
    attempt(&w, "alice", PW, Some(&own)).await.expect("until an administrator unlocks it");
}

#[tokio::test]
async fn no_administrator_locks_themselves_or_the_last_active_one() {
    let w = World::new(settings());
    let reg = |name: &str| portcullis_app::accounts::Registration {
        username: name.into(),
        email: format!("{name}@example.com"),
        password: PW.into(),
        is_admin: true,
        email_verified: true,
    };
    let root = w.accounts.register(reg("root"), &Origin::command_line()).await.expect("admin");
    let other = w.accounts.register(reg("other"), &Origin::command_line()).await.expect("admin");
    let by = |u: &portcullis_app::User| Origin::admin(&ClientInfo::default(), u.id, &u.username);
    let r = w.accounts.lock_user(root.id, &by(&root)).await;
    assert!(matches!(r, Err(AppError::Refused(_))), "not themselves: {r:?}");
    w.accounts.lock_user(other.id, &by(&root)).await.expect("another admin, while root is active");
    let r = w.accounts.lock_user(root.id, &Origin::command_line()).await;
    assert!(matches!(r, Err(AppError::Refused(_))), "root is the last active admin: {r:?}");
    assert!(w.sign_in("root", PW, false).await.is_ok());
}

#[tokio::test]
async fn stale_counters_are_forgotten_and_live_ones_kept() {
    let w = World::new(settings());
    w.user("alice").await;
    w.user("bob").await;
    for _ in 0..3 {
        attempt(&w, "alice", "wrong password", None).await.expect_err("wrong");
    }
    attempt(&w, "bob", "wrong password", None).await.expect_err("wrong");
    assert_eq!(w.store.counter_keys().len(), 2);

    // Alice's lock and Bob's one attempt still count: nothing goes.
    w.advance(minutes(14));
    assert_eq!(w.accounts.purge_stale_attempts().await.expect("purge"), 0);
    assert_eq!(w.store.counter_keys().len(), 2);

    // Past the lock and past the longest window (mail's hour), both would
    // start again at one: both go.
    w.advance(minutes(60));
    assert_eq!(w.accounts.purge_stale_attempts().await.expect("purge"), 2);
    assert!(w.store.counter_keys().is_empty());
    attempt(&w, "alice", PW, None).await.expect("alice signs in");
}
