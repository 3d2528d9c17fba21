//! Session timeouts: idle, absolute, remember-me; the last-visit write.

use std::time::Duration;

use portcullis_app::AuthSettings;

use crate::world::{PW, World, minutes};

fn hours(n: u64) -> Duration {
    minutes(60 * n)
}

#[tokio::test]
async fn activity_keeps_a_session_past_the_idle_timeout_and_idleness_ends_it() {
    let w = World::new(AuthSettings {
        session_idle_timeout: hours(2),
        session_absolute_timeout: hours(24),
        ..AuthSettings::default()
    });
    w.user("alice").await;
    let s = w.sign_in("alice", PW, false).await.expect("sign in");
    for _ in 0..4 {
        w.advance(hours(2) - Duration::from_millis(1));
        assert!(w.signed_in(&s.cookie).await, "seen within the idle timeout");
    }
    w.advance(hours(2));
    assert!(!w.signed_in(&s.cookie).await, "idle for the whole timeout");
    assert_eq!(w.store.session_count(), 0, "and deleted, not just refused");
}

#[tokio::test]
async fn the_absolute_timeout_ends_even_a_busy_session() {
    let w = World::new(AuthSettings {
        session_idle_timeout: hours(1),
        session_absolute_timeout: hours(3),
        ..AuthSettings::default()
    });
    w.user("alice").await;
    let s = w.sign_in("alice", PW, false).await.expect("sign in");
    for _ in 0..5 {
        w.advance(minutes(35));
        assert!(w.signed_in(&s.cookie).await);
    }
    w.advance(minutes(5) - Duration::from_millis(1));
    assert!(w.signed_in(&s.cookie).await, "a millisecond before its end");
    w.advance(Duration::from_millis(1));
    assert!(!w.signed_in(&s.cookie).await, "at its end, busy or not");
}

#[tokio::test]
async fn a_remembered_session_outlives_the_short_timeouts_until_its_own_end() {
    let w = World::new(AuthSettings {
        session_idle_timeout: Duration::from_secs(1),
        session_absolute_timeout: Duration::from_secs(1),
        remember_duration: hours(24 * 7),
        ..AuthSettings::default()
    });
    w.user("alice").await;
    let remembered = w.sign_in("alice", PW, true).await.expect("sign in");
    let plain = w.sign_in("alice", PW, false).await.expect("sign in");
    assert_eq!(remembered.session.expires_at - remembered.session.created_at, 7 * 86_400_000);

    w.advance(Duration::from_millis(1500));
    assert!(w.signed_in(&remembered.cookie).await, "a remembered session outlives the short timeouts");
    assert!(!w.signed_in(&plain.cookie).await, "a plain session does not");

    // Unused for days: remembered sessions have no idle timeout, only their end.
    w.advance(hours(24 * 7) - Duration::from_millis(1501));
    assert!(w.signed_in(&remembered.cookie).await);
    w.advance(Duration::from_millis(1));
    assert!(!w.signed_in(&remembered.cookie).await);
}

#[tokio::test]
async fn the_last_visit_is_written_once_per_touch_interval() {
    // A 10 s idle timeout: the last visit is written at most once a second.
    let w = World::new(AuthSettings { session_idle_timeout: Duration::from_secs(10), ..AuthSettings::default() });
    let alice = w.user("alice").await;
    let s = w.sign_in("alice", PW, false).await.expect("sign in");
    let last_seen =
        || async { w.accounts.sessions_of(alice.id).await.expect("sessions").first().map(|s| s.last_seen_at) };
    let created = s.session.created_at;
    w.advance(Duration::from_millis(999));
    assert!(w.signed_in(&s.cookie).await);
    assert_eq!(last_seen().await, Some(created), "not yet a second on");
    w.advance(Duration::from_millis(1));
    assert!(w.signed_in(&s.cookie).await);
    assert_eq!(last_seen().await, Some(created + 1000), "moved on to now");
}

#[tokio::test]
async fn the_purge_deletes_expired_and_idle_sessions_only() {
    let w = World::new(AuthSettings {
        session_idle_timeout: hours(1),
        session_absolute_timeout: hours(24),
        remember_duration: hours(48),
        ..AuthSettings::default()
    });
    w.user("alice").await;
    let idle = w.sign_in("alice", PW, false).await.expect("sign in");
    let remembered = w.sign_in("alice", PW, true).await.expect("sign in");
    w.advance(minutes(60));
    assert_eq!(w.accounts.purge_expired_sessions().await.expect("purge"), 0, "seen no longer ago than the timeout");
    w.advance(Duration::from_millis(1));
    assert_eq!(w.accounts.purge_expired_sessions().await.expect("purge"), 1, "the idle one");
    assert_eq!(w.store.session_count(), 1);
    assert!(!w.signed_in(&idle.cookie).await);
    w.advance(hours(47) - Duration::from_millis(2));
    assert_eq!(w.accounts.purge_expired_sessions().await.expect("purge"), 0);
    w.advance(Duration::from_millis(1));
    assert_eq!(w.accounts.purge_expired_sessions().await.expect("purge"), 1, "the remembered one, at its end");
    assert!(!w.signed_in(&remembered.cookie).await);
}
