//! Sessions and rate-limit counters on Redis: the same behaviour as on SQL.
//! Runs when `PORTCULLIS_TEST_REDIS_URL` is set (CI sets it); each test uses
//! its own key prefix and removes its keys afterwards.

#[allow(dead_code, reason = "shared by several test binaries, each using the services it needs")]
#[path = "support/services.rs"]
mod services;

use std::sync::Arc;

use portcullis_app::audit::{AuditEvent, AuditFilter};
use portcullis_app::mail::OutgoingMail;
use portcullis_app::ports::{AuditStore, RateLimitStore, SignIn};
use portcullis_app::{Clock as _, LoginThrottle, Session, SessionStore, UserStore};
use portcullis_store::SqlStore;
use portcullis_store::redis::RedisStore;

struct Fixture {
    redis: RedisStore,
    sql: SqlStore,
    prefix: String,
    url: String,
    _dir: tempfile::TempDir,
}

async fn fixture() -> Option<Fixture> {
    let url = services::redis_url()?;
    let dir = tempfile::tempdir().expect("tmp");
    let sql = SqlStore::connect(&format!("sqlite://{}/t.db", dir.path().display()), 4).await.expect("sqlite");
    sql.migrate().await.expect("migrate");
    let prefix = format!("portcullis-test-{}:", portcullis_app::tokens::random_b64(8));
    let redis = RedisStore::connect(&url, &prefix, Arc::new(sql.clone()))
        .await
        .expect("Redis must be reachable when the variable is set");
    Some(Fixture { redis, sql, prefix, url, _dir: dir })
}

impl Fixture {
    async fn cleanup(self) {
        let client = redis::Client::open(self.url.as_str()).expect("client");
        let mut conn = client.get_multiplexed_async_connection().await.expect("conn");
        let keys: Vec<String> =
            redis::cmd("KEYS").arg(format!("{}*", self.prefix)).query_async(&mut conn).await.expect("keys");
        if !keys.is_empty() {
            redis::cmd("DEL").arg(keys).query_async::<()>(&mut conn).await.expect("del");
        }
    }

    async fn user(&self, name: &str) -> portcullis_app::User {
        let new = portcullis_app::NewUser {
            username: portcullis_domain::Username::parse(name).expect("name"),
            email: portcullis_domain::Email::parse(&format!("{name}@example.com")).expect("email"),
            password_hash: "x".into(),
            is_admin: false,
            email_verified: false,
            security_stamp: "stamp".into(),
            now: 1,
        };
        self.sql.insert_user(&new, None).await.expect("user")
    }
}

fn session(id: &str, user_id: i64, created: i64, expires: i64, remember: bool) -> Session {
    Session {
        id: id.into(),
        secret_hash: format!("hash-{id}"),
        user_id,
        security_stamp: "stamp".into(),
        created_at: created,
        last_seen_at: created,
        expires_at: expires,
        remember,
        ip: Some("192.0.2.1".into()),
        user_agent: None,
    }
}

fn far() -> i64 {
    portcullis_app::SystemClock.now_ms() + 3_600_000
}

#[tokio::test]
#[cfg_attr(portcullis_no_redis, ignore = "needs Redis: set PORTCULLIS_TEST_REDIS_URL")]
async fn sessions_round_trip_with_their_user() {
    let Some(f) = fixture().await else { return };
    let alice = f.user("alice").await;
    let s = session("s1", alice.id, 10, far(), true);
    f.redis.insert_session(&s).await.expect("insert");
    assert!(f.redis.insert_session(&s).await.is_err(), "ids are unique");
    let found = f.redis.session_with_user("s1").await.expect("read").expect("found");
    let (got, user) = (&found.session, &found.user);
    assert_eq!(
        (got.secret_hash.as_str(), got.user_id, got.remember, got.ip.as_deref()),
        ("hash-s1", alice.id, true, Some("192.0.2.1"))
    );
    assert_eq!(got.user_agent, None);
    assert_eq!(user.username, "alice");
    f.redis.touch_session("s1", 10, 99).await.expect("touch");
    f.redis.touch_session("s1", 10, 120).await.expect("a parallel request's touch");
    assert_eq!(f.redis.session_with_user("s1").await.expect("read").expect("found").session.last_seen_at, 99);
    f.redis.touch_session("nope", 0, 99).await.expect("no session, no error");
    assert!(f.redis.session_with_user("nope").await.expect("read").is_none(), "and none made");
    assert!(f.redis.session_with_user("nope").await.expect("read").is_none());
    f.cleanup().await;
}

#[tokio::test]
#[cfg_attr(portcullis_no_redis, ignore = "needs Redis: set PORTCULLIS_TEST_REDIS_URL")]
async fn sessions_are_listed_and_revoked_per_user() {
    let Some(f) = fixture().await else { return };
    let alice = f.user("alice").await;
    let bob = f.user("bobby").await;
    for (id, created) in [("a1", 1), ("a2", 2), ("a3", 3)] {
        f.redis.insert_session(&session(id, alice.id, created, far(), false)).await.expect("insert");
    }
    f.redis.insert_session(&session("b1", bob.id, 1, far(), false)).await.expect("insert");
    let ids = |v: Vec<Session>| v.into_iter().map(|s| s.id).collect::<Vec<_>>();
    let now = portcullis_app::SystemClock.now_ms();
    assert_eq!(ids(f.redis.user_sessions(alice.id, now).await.expect("list")), vec!["a3", "a2", "a1"]);
    let event = |kind: &str, user: i64| AuditEvent { kind: kind.into(), user_id: Some(user), ..Default::default() };
    let logout = event("logout", bob.id);
    assert!(!f.redis.delete_session(bob.id, "a1", Some(&logout)).await.expect("delete"), "only the owner's");
    assert!(f.redis.delete_session(alice.id, "a1", Some(&event("logout", alice.id))).await.expect("delete"));
    let revoked = event("session.revoked", alice.id);
    assert_eq!(f.redis.delete_user_sessions(alice.id, Some("a3"), Some(&revoked)).await.expect("others"), 1);
    // The events of those ends are in the SQL log; the refused delete left none.
    let log = f.sql.list_audit(&AuditFilter::default(), 10).await.expect("audit");
    let kinds: Vec<_> = log.iter().map(|e| (e.kind.as_str(), e.user_id)).collect();
    assert_eq!(kinds, vec![("session.revoked", Some(alice.id)), ("logout", Some(alice.id))]);
    assert_eq!(ids(f.redis.user_sessions(alice.id, now).await.expect("list")), vec!["a3"]);
    assert_eq!(ids(f.redis.user_sessions(bob.id, now).await.expect("list")), vec!["b1"]);
    f.cleanup().await;
}

#[tokio::test]
#[cfg_attr(portcullis_no_redis, ignore = "needs Redis: set PORTCULLIS_TEST_REDIS_URL")]
async fn sessions_expire_in_redis_at_their_end() {
    let Some(f) = fixture().await else { return };
    let alice = f.user("alice").await;
    let soon = portcullis_app::SystemClock.now_ms() + 300;
    f.redis.insert_session(&session("short", alice.id, 1, soon, false)).await.expect("insert");
    assert!(f.redis.session_with_user("short").await.expect("read").is_some());
    tokio::time::sleep(std::time::Duration::from_millis(600)).await;
    assert!(f.redis.session_with_user("short").await.expect("read").is_none());
    assert!(f.redis.user_sessions(alice.id, portcullis_app::SystemClock.now_ms()).await.expect("list").is_empty());
    f.cleanup().await;
}

#[tokio::test]
#[cfg_attr(portcullis_no_redis, ignore = "needs Redis: set PORTCULLIS_TEST_REDIS_URL")]
async fn rate_limit_counters_count_per_window_and_race_free() {
    let Some(f) = fixture().await else { return };
    // Windows as the limiter makes them: the current minute and the next.
    let now = portcullis_app::SystemClock.now_ms();
    let w = now - now % 60_000;
    assert_eq!(f.redis.hit("login:192.0.2.1", w).await.expect("hit"), 1);
    assert_eq!(f.redis.hit("login:192.0.2.1", w).await.expect("hit"), 2);
    assert_eq!(f.redis.hit("login:192.0.2.2", w).await.expect("hit"), 1, "per client");
    assert_eq!(f.redis.hit("login:192.0.2.1", w + 60_000).await.expect("hit"), 1, "a new window starts at one");
    let mut tasks = Vec::new();
    for _ in 0..50 {
        let r = f.redis.clone();
        tasks.push(tokio::spawn(async move { r.hit("burst", w).await.expect("hit") }));
    }
    let mut counts = Vec::new();
    for t in tasks {
        counts.push(t.await.expect("join"));
    }
    counts.sort_unstable();
    assert_eq!(counts, (1..=50).collect::<Vec<i64>>());
    f.cleanup().await;
}

#[tokio::test]
#[cfg_attr(portcullis_no_redis, ignore = "needs Redis: set PORTCULLIS_TEST_REDIS_URL")]
async fn a_login_opens_its_session_in_redis_and_records_the_rest_in_sql() {
    let Some(f) = fixture().await else { return };
    let alice = f.user("alice").await;
    let key = "user:alice";
    assert_eq!(f.sql.reserve_attempt(key, 10, 5, 99, 0).await.expect("count"), 1);
    let event = AuditEvent { at: 20, kind: "login.success".into(), user_id: Some(alice.id), ..Default::default() };
    let mail =
        OutgoingMail { recipient: "alice@example.com".into(), subject: "New sign-in".into(), sealed: "x".into() };
    let s = session("s1", alice.id, 20, far(), false);
    f.redis.open_session(&s, &SignIn { attempt_key: key, audit: &event, mail: Some(&mail) }).await.expect("open");
    let found = f.redis.session_with_user("s1").await.expect("read").expect("the session is in Redis");
    assert_eq!(found.user.last_login_at, Some(20), "the login is noted in SQL");
    assert_eq!(f.sql.reserve_attempt(key, 30, 5, 99, 0).await.expect("count"), 1, "the attempt is forgotten");
    assert_eq!(f.sql.pending_mail_count().await.expect("mails"), 1);
    let kinds: Vec<String> =
        f.sql.list_audit(&AuditFilter::default(), 10).await.expect("audit").into_iter().map(|e| e.kind).collect();
    assert_eq!(kinds, ["login.success"]);
    f.cleanup().await;
}

#[tokio::test]
#[cfg_attr(portcullis_no_redis, ignore = "needs Redis: set PORTCULLIS_TEST_REDIS_URL")]
async fn active_sessions_are_counted_where_they_are_kept() {
    use portcullis_app::ports::OverviewStore as _;
    let Some(f) = fixture().await else { return };
    let alice = f.user("alice").await;
    let bob = f.user("bob").await;
    for (id, user, seen) in [("a1", alice.id, 100), ("a2", alice.id, 200), ("b1", bob.id, 300)] {
        let mut s = session(id, user, seen, far(), false);
        s.last_seen_at = seen;
        f.redis.insert_session(&s).await.expect("insert");
    }
    let count = |cutoff: i64| {
        let r = &f.redis;
        async move { r.active_sessions(0, cutoff).await.expect("count") }
    };
    assert_eq!(count(50).await, 3);
    assert_eq!(count(150).await, 2, "a1 is idle");
    // A page view moves a1 forward; a touch that lost its race does not.
    f.redis.touch_session("a1", 100, 400).await.expect("touch");
    f.redis.touch_session("a1", 100, 500).await.expect("stale touch");
    assert_eq!(count(350).await, 1, "a1 seen at 400");
    assert_eq!(count(450).await, 0, "not at 500");
    // Revoked or signed out: gone from the count at once.
    assert!(f.redis.delete_session(alice.id, "a1", None).await.expect("revoke"));
    f.redis.delete_user_sessions(bob.id, None, None).await.expect("sign out everywhere");
    assert_eq!(count(50).await, 1, "only a2");
    // The purge forgets the idle.
    f.redis.purge_sessions(1_000, 250).await.expect("purge");
    assert_eq!(count(0).await, 0);
    // The SQL store counts none of these: they are not there.
    assert_eq!(f.sql.active_sessions(0, 0).await.expect("sql count"), 0);
    f.cleanup().await;
}
