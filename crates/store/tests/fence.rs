//! Settling on PostgreSQL (see `portcullis_store::fence`): once a node has
//! settled its changes, no other node's cache serves what they changed,
//! and a node that stops answering is waited for only until its lease is over.

#[path = "support/cached.rs"]
mod cached;
#[path = "support/nodes.rs"]
mod nodes;
#[allow(dead_code, reason = "shared by several test binaries, each using the services it needs")]
#[path = "support/services.rs"]
mod services;

use std::sync::Arc;
use std::time::{Duration, Instant};

use portcullis_app::ports::Settle as _;
use portcullis_app::{SessionStore, User};
use portcullis_store::SqlStore;
use portcullis_store::cache::CachedStore;
use portcullis_store::fence::{GIVE_UP, LEASE};

use cached::session;
use nodes::{alice, in_schema, until_served_from_memory};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[cfg_attr(portcullis_no_postgres, ignore = "needs PostgreSQL: set PORTCULLIS_TEST_POSTGRES_URL")]
async fn a_revocation_settled_on_one_node_is_refused_on_the_other_at_once() {
    in_schema("fence_at_once", at_once).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[cfg_attr(portcullis_no_postgres, ignore = "needs PostgreSQL: set PORTCULLIS_TEST_POSTGRES_URL")]
async fn a_node_that_stops_answering_is_waited_for_until_its_lease_is_over() {
    in_schema("fence_hung", hung).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[cfg_attr(portcullis_no_postgres, ignore = "needs PostgreSQL: set PORTCULLIS_TEST_POSTGRES_URL")]
async fn a_node_that_left_is_not_waited_for() {
    in_schema("fence_left", left).await;
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
    let alice = alice(&a).await;
    a.insert_session(&session("probe", &alice)).await.expect("session");
    let read = || {
        let cache = cache.clone();
        async move { cache.session_with_user("probe").await.expect("read").map(|s| s.session.secret_hash.clone()) }
    };
    until_served_from_memory(&a, "sessions", "probe", read).await;
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
