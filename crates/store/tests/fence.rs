//! Settling on PostgreSQL (see `portcullis_store::fence`): once a node has
//! settled its changes, no other node's cache serves what they changed,
//! and a node that stops answering is waited for only until its lease is over.

#[path = "support/cached.rs"]
mod cached;
#[allow(dead_code, reason = "shared by several test binaries, each using the services it needs")]
#[path = "support/services.rs"]
mod services;

use std::sync::Arc;
use std::time::{Duration, Instant};

use sqlx::{Connection as _, Executor as _, PgConnection};

use portcullis_app::ports::Settle as _;
use portcullis_app::{NewUser, SessionStore, User, UserStore};
use portcullis_domain::{Email, Username};
use portcullis_store::SqlStore;
use portcullis_store::cache::CachedStore;
use portcullis_store::fence::{GIVE_UP, LEASE};

use cached::{T0, session};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[cfg_attr(portcullis_no_postgres, ignore = "needs PostgreSQL: set PORTCULLIS_TEST_POSTGRES_URL")]
async fn a_revocation_settled_on_one_node_is_refused_on_the_other_at_once() {
    in_schema("at_once", at_once).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[cfg_attr(portcullis_no_postgres, ignore = "needs PostgreSQL: set PORTCULLIS_TEST_POSTGRES_URL")]
async fn a_node_that_stops_answering_is_waited_for_until_its_lease_is_over() {
    in_schema("hung", hung).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[cfg_attr(portcullis_no_postgres, ignore = "needs PostgreSQL: set PORTCULLIS_TEST_POSTGRES_URL")]
async fn a_node_that_left_is_not_waited_for() {
    in_schema("left", left).await;
}

/// Runs `scenario` on a URL whose tables live in a schema of their own.
async fn in_schema<F: std::future::Future<Output = ()> + Send + 'static>(name: &str, scenario: fn(String) -> F) {
    let Some(base) = services::postgres_url() else { return };
    let schema = format!("fence_{name}_{}_{}", std::process::id(), T0 % 1000);
    let mut admin = PgConnection::connect(&base).await.expect("PostgreSQL");
    admin.execute(format!(r#"DROP SCHEMA IF EXISTS "{schema}" CASCADE"#).as_str()).await.expect("drop");
    admin.execute(format!(r#"CREATE SCHEMA "{schema}""#).as_str()).await.expect("schema");
    let url = format!("{base}{}options=-c%20search_path%3D{schema}", if base.contains('?') { '&' } else { '?' });
    let outcome = tokio::spawn(scenario(url)).await;
    let _ = admin.execute(format!(r#"DROP SCHEMA "{schema}" CASCADE"#).as_str()).await;
    if let Err(e) = outcome {
        std::panic::resume_unwind(e.into_panic());
    }
}

/// Two nodes on `url`, both listening, B with a read cache that serves
/// from memory and that A has heard of.
struct Nodes {
    a: Arc<SqlStore>,
    b: Arc<SqlStore>,
    cache: Arc<CachedStore>,
    following: [tokio::task::JoinHandle<()>; 2],
    alice: User,
}

async fn two_nodes(url: &str) -> Nodes {
    let a = Arc::new(SqlStore::connect(url, 4).await.expect("node A"));
    a.migrate().await.expect("migrate");
    let b = Arc::new(SqlStore::connect(url, 4).await.expect("node B"));
    let following = [a.follow_changes().expect("A follows"), b.follow_changes().expect("B follows")];
    let cache = CachedStore::new(b.clone());
    let alice = a
        .insert_user(
            &NewUser {
                username: Username::parse("alice").expect("name"),
                email: Email::parse("alice@example.com").expect("email"),
                password_hash: "hash".into(),
                is_admin: false,
                email_verified: true,
                security_stamp: "stamp".into(),
                now: T0,
            },
            None,
        )
        .await
        .expect("user");
    a.insert_session(&session("probe", &alice)).await.expect("session");
    // B serves from memory once it listens: a change made behind the
    // triggers' back (they are off for it) is not seen.
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        assert!(cache.session_with_user("probe").await.expect("read").is_some());
        let mut conn = a.pool().acquire().await.expect("connection");
        conn.execute("ALTER TABLE sessions DISABLE TRIGGER USER").await.expect("triggers off");
        conn.execute("UPDATE sessions SET secret_hash = 'quiet' WHERE id = 'probe'").await.expect("update");
        conn.execute("ALTER TABLE sessions ENABLE TRIGGER USER").await.expect("triggers on");
        drop(conn);
        let read = cache.session_with_user("probe").await.expect("read").expect("live");
        sqlx::query("UPDATE sessions SET secret_hash = 'h' WHERE id = 'probe'").execute(a.pool()).await.expect("back");
        if read.session.secret_hash == "h" {
            break;
        }
        assert!(Instant::now() < deadline, "node B never served the session from memory");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // Each node says hello every second; by now A has heard B's.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    Nodes { a, b, cache, following, alice }
}

impl Nodes {
    /// A new session of Alice's, opened on A and served by B's cache.
    async fn cached_session(&self, id: &str) {
        self.a.insert_session(&session(id, &self.alice)).await.expect("session");
        for _ in 0..2 {
            assert!(self.cache.session_with_user(id).await.expect("read").is_some(), "{id} is live on B");
        }
    }

    async fn close(self) {
        for task in &self.following {
            task.abort();
        }
        self.a.close().await;
        self.b.close().await;
    }
}

async fn at_once(url: String) {
    let nodes = two_nodes(&url).await;
    let mut waits = Vec::new();
    for i in 0..20 {
        let id = format!("s{i}");
        nodes.cached_session(&id).await;
        assert!(nodes.a.delete_session(nodes.alice.id, &id, None).await.expect("revoke"), "revoked");
        let started = Instant::now();
        nodes.a.settle(nodes.a.written()).await;
        waits.push(started.elapsed());
        // No waiting here: the next request, wherever it goes.
        assert!(
            nodes.cache.session_with_user(&id).await.expect("read").is_none(),
            "round {i}: B served a session A had revoked and settled"
        );
    }
    waits.sort();
    eprintln!("settling took {:?} (median), {:?} (longest)", waits[waits.len() / 2], waits[waits.len() - 1]);
    nodes.close().await;
}

async fn hung(url: String) {
    let nodes = two_nodes(&url).await;
    nodes.cached_session("s").await;
    // B stops reading its notices, as a node whose connection hung.
    nodes.following[1].abort();
    assert!(nodes.a.delete_session(nodes.alice.id, "s", None).await.expect("revoke"), "revoked");
    let started = Instant::now();
    nodes.a.settle(nodes.a.written()).await;
    let waited = started.elapsed();
    assert!(waited >= GIVE_UP - Duration::from_millis(100), "A waited for B's answer, {waited:?}");
    assert!(waited < GIVE_UP + Duration::from_secs(2), "and gave up, {waited:?}");
    assert!(GIVE_UP > LEASE);
    assert!(
        nodes.cache.session_with_user("s").await.expect("read").is_none(),
        "B, unable to hear its own hello, no longer serves from memory"
    );
    nodes.close().await;
}

async fn left(url: String) {
    let nodes = two_nodes(&url).await;
    nodes.following[1].abort();
    nodes.b.leave().await;
    // A has read the goodbye once it reads its own notices after it.
    tokio::time::sleep(Duration::from_millis(200)).await;
    nodes.cached_session("s").await;
    assert!(nodes.a.delete_session(nodes.alice.id, "s", None).await.expect("revoke"), "revoked");
    let started = Instant::now();
    nodes.a.settle(nodes.a.written()).await;
    assert!(started.elapsed() < Duration::from_secs(2), "B said goodbye: not waited for, {:?}", started.elapsed());
    nodes.close().await;
}
