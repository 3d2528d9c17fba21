//! The read cache on PostgreSQL: two nodes on one schema, each its own
//! store; what one changes, the other's cache hears as a notice (see
//! `portcullis_store::cache` and the `0011_change_notices` migration).

#[path = "support/cached.rs"]
mod cached;
#[path = "support/nodes.rs"]
mod nodes;
#[allow(dead_code, reason = "shared by several test binaries, each using the services it needs")]
#[path = "support/services.rs"]
mod services;

use std::sync::Arc;
use std::time::{Duration, Instant};

use portcullis_app::SessionStore;
use portcullis_app::access_tokens::AccessToken;
use portcullis_app::ports::AccessTokenStore as _;
use portcullis_store::SqlStore;
use portcullis_store::cache::CachedStore;

use cached::{T0, session};
use nodes::{alice, in_schema, until_served_from_memory};

/// How soon a change made on one node must be seen on the other.
const WITHIN: Duration = Duration::from_millis(100);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[cfg_attr(portcullis_no_postgres, ignore = "needs PostgreSQL: set PORTCULLIS_TEST_POSTGRES_URL")]
async fn a_session_revoked_on_one_node_is_refused_on_the_other_within_100_ms() {
    in_schema("notices_sessions", scenario).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[cfg_attr(portcullis_no_postgres, ignore = "needs PostgreSQL: set PORTCULLIS_TEST_POSTGRES_URL")]
async fn a_token_revoked_on_one_node_is_refused_on_the_other_within_100_ms() {
    in_schema("notices_tokens", token_scenario).await;
}

async fn scenario(url: String) {
    let a = Arc::new(SqlStore::connect(&url, 4).await.expect("node A"));
    a.migrate().await.expect("migrate");
    let b = Arc::new(SqlStore::connect(&url, 4).await.expect("node B"));
    let cache = CachedStore::new(b.clone());
    let follower = b.follow_changes().expect("PostgreSQL follows");
    let alice = alice(&a).await;
    a.insert_session(&session("s1", &alice)).await.expect("session");

    let read = || {
        let cache = cache.clone();
        async move { cache.session_with_user("s1").await.expect("read").map(|s| s.session.secret_hash.clone()) }
    };
    until_served_from_memory(&a, "sessions", "s1", &read).await;

    // Revoked on A: refused on B within the bound.
    assert!(a.delete_session(alice.id, "s1", None).await.expect("revoke"), "revoked");
    refused_within_bound("session", read).await;
    follower.abort();
    a.close().await;
    b.close().await;
}

async fn token_scenario(url: String) {
    let a = Arc::new(SqlStore::connect(&url, 4).await.expect("node A"));
    a.migrate().await.expect("migrate");
    let b = Arc::new(SqlStore::connect(&url, 4).await.expect("node B"));
    let cache = CachedStore::new(b.clone());
    let follower = b.follow_changes().expect("PostgreSQL follows");
    let alice = alice(&a).await;
    let token = AccessToken {
        id: "t1".into(),
        secret_hash: "h".into(),
        user_id: alice.id,
        name: "script".into(),
        scope: portcullis_domain::Scope::Read,
        created_at: T0,
        expires_at: None,
        last_used_at: None,
        last_used_ip: None,
    };
    a.insert_access_token(&token, None).await.expect("token");

    let read = || {
        let cache = cache.clone();
        async move { cache.access_token_with_user("t1").await.expect("read").map(|t| t.0.secret_hash.clone()) }
    };
    until_served_from_memory(&a, "access_tokens", "t1", &read).await;

    // Revoked on A: refused on B within the bound.
    assert!(a.delete_access_token(alice.id, "t1", None).await.expect("revoke"), "revoked");
    refused_within_bound("token", read).await;
    follower.abort();
    a.close().await;
    b.close().await;
}

/// Reads through node B's cache (`read`) until it refuses the `what` just
/// revoked on A, failing past [`WITHIN`].
async fn refused_within_bound<F: Future<Output = Option<String>>>(what: &str, read: impl Fn() -> F) {
    let revoked = Instant::now();
    while read().await.is_some() {
        assert!(revoked.elapsed() < WITHIN, "node B still accepted the revoked {what} after {WITHIN:?}");
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    eprintln!("{what} refused on the other node {:?} after the revocation", revoked.elapsed());
}
