//! Fixed windows and delays: rate limits, audit retention, mail retries.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use async_trait::async_trait;
use portcullis_app::mail::{Mail, MailTransport, OutboxWorker};
use portcullis_app::{AuthSettings, ClientInfo, Clock as _, Origin};

use crate::world::{World, minutes};

#[tokio::test]
async fn a_rate_limit_holds_for_the_rest_of_its_minute() {
    let w = World::new(AuthSettings::default());
    let minute_start = w.clock.now_ms() - w.clock.now_ms().rem_euclid(60_000) + 60_000;
    w.clock.set(minute_start + 10_000);
    let limiter = w.limiter(3);
    for _ in 0..3 {
        assert_eq!(limiter.check("login", "10.0.0.1").await.expect("check"), None);
    }
    assert_eq!(limiter.check("login", "10.0.0.1").await.expect("check"), Some(50), "wait for the next minute");
    assert_eq!(limiter.check("login", "10.0.0.2").await.expect("check"), None, "per client");
    assert_eq!(limiter.check("register", "10.0.0.1").await.expect("check"), None, "per action");
    w.advance(Duration::from_millis(49_999));
    assert_eq!(limiter.check("login", "10.0.0.1").await.expect("check"), Some(1));
    w.advance(Duration::from_millis(1));
    assert_eq!(limiter.check("login", "10.0.0.1").await.expect("check"), None, "a new window");
    assert_eq!(limiter.purge().await.expect("purge"), 3, "the finished windows");
}

#[tokio::test]
async fn no_limit_means_no_counting() {
    let w = World::new(AuthSettings::default());
    let limiter = w.limiter(0);
    for _ in 0..100 {
        assert_eq!(limiter.check("login", "10.0.0.1").await.expect("check"), None);
    }
}

#[tokio::test]
async fn audit_events_are_kept_for_the_retention_and_no_longer() {
    let w = World::new(AuthSettings::default());
    let audit = w.audit(minutes(60 * 24));
    w.user("alice").await;
    let origin = Origin::user(&ClientInfo::default());
    w.accounts.authenticate("alice", "wrong password", None, &origin).await.expect_err("wrong");
    let events = w.store.audit_events();
    assert_eq!(events.len(), 2, "{events:?}");
    assert!(events.iter().all(|e| e.at == w.clock.now_ms()), "dated by the clock");
    w.advance(minutes(60 * 24));
    assert_eq!(audit.purge().await.expect("purge"), 0, "kept for the whole retention");
    w.advance(Duration::from_millis(1));
    assert_eq!(audit.purge().await.expect("purge"), 2);
    assert!(w.store.audit_events().is_empty());
}

/// Fails the first `failures` sends, then delivers.
struct Flaky {
    failures: usize,
    tries: AtomicUsize,
}

#[async_trait]
impl MailTransport for Flaky {
    async fn send(&self, _mail: &Mail) -> Result<(), String> {
        let n = self.tries.fetch_add(1, Ordering::SeqCst);
        if n < self.failures { Err("421 try again later".into()) } else { Ok(()) }
    }
}

/// Waits (in short steps, 2 s at most) until `done` holds.
async fn until(what: &str, mut done: impl FnMut() -> bool) {
    let deadline = std::time::Instant::now() + Duration::from_secs(2);
    while !done() {
        assert!(std::time::Instant::now() < deadline, "{what}");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

#[tokio::test]
async fn a_failed_mail_is_retried_after_its_backoff_on_the_clock() {
    let w = World::new(AuthSettings::default());
    let transport = Arc::new(Flaky { failures: 2, tries: AtomicUsize::new(0) });
    let mail = Mail { to: "a@example.com".into(), subject: "Hi".into(), text: "x".into(), html: "x".into() };
    w.store.enqueue_mail(&w.sealer.seal(&mail).expect("seal"), w.clock.now_ms()).await.expect("enqueue");
    let worker = OutboxWorker::new(
        w.store.clone(),
        transport.clone(),
        w.sealer.clone(),
        Arc::new(tokio::sync::Notify::new()),
        Duration::from_millis(5),
        w.clock.clone(),
    );
    let (stop, stopped) = tokio::sync::watch::channel(false);
    let running = tokio::spawn(worker.run(stopped));
    let tries = || transport.tries.load(Ordering::SeqCst);

    until("the first attempt", || tries() == 1).await;
    let row = w.store.outbox()[0].clone();
    assert_eq!((row.attempts, row.next_attempt_at), (1, w.clock.now_ms() + 1000), "due again in a second");
    // The worker polls every 5 ms, but the clock has not moved: no retry.
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert_eq!(tries(), 1);

    w.advance(Duration::from_millis(1000));
    until("the second attempt", || tries() == 2).await;
    assert_eq!(w.store.outbox()[0].next_attempt_at, w.clock.now_ms() + 2000, "then in two");
    w.advance(Duration::from_millis(1999));
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert_eq!(tries(), 2);
    w.advance(Duration::from_millis(1));
    until("the mail to be sent", || w.store.outbox()[0].sent_at == Some(w.clock.now_ms())).await;
    assert_eq!(tries(), 3);

    stop.send(true).expect("stop");
    running.await.expect("worker");
}
