//! The read cache on PostgreSQL: two nodes on one schema, each its own
//! store; what one changes, the other's cache hears as a notice (see
//! `portcullis_store::cache` and the `0011_change_notices` migration).

#[path = "support/cached.rs"]
mod cached;
#[allow(dead_code, reason = "shared by several test binaries, each using the services it needs")]
#[path = "support/services.rs"]
mod services;

use std::sync::Arc;
use std::time::{Duration, Instant};

use sqlx::{Connection as _, Executor as _, PgConnection};

use portcullis_app::access_tokens::AccessToken;
use portcullis_app::ports::AccessTokenStore as _;
use portcullis_app::{NewUser, SessionStore, User, UserStore};
use portcullis_domain::{Email, Username};
use portcullis_store::SqlStore;
use portcullis_store::cache::CachedStore;

use cached::{T0, session};

/// How soon a change made on one node must be seen on the other.
const WITHIN: Duration = Duration::from_millis(100);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[cfg_attr(portcullis_no_postgres, ignore = "needs PostgreSQL: set PORTCULLIS_TEST_POSTGRES_URL")]
async fn a_session_revoked_on_one_node_is_refused_on_the_other_within_100_ms() {
    in_schema("sessions", scenario).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[cfg_attr(portcullis_no_postgres, ignore = "needs PostgreSQL: set PORTCULLIS_TEST_POSTGRES_URL")]
async fn a_token_revoked_on_one_node_is_refused_on_the_other_within_100_ms() {
    in_schema("tokens", token_scenario).await;
}

/// Runs `scenario` on a URL whose tables live in a schema of their own.
async fn in_schema<F: std::future::Future<Output = ()> + Send + 'static>(name: &str, scenario: fn(String) -> F) {
    let Some(base) = services::postgres_url() else { return };
    let schema = format!("notices_{name}_{}_{}", std::process::id(), T0 % 1000);
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

async fn alice(a: &SqlStore) -> User {
    a.insert_user(
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
    .expect("user")
}

async fn scenario(url: String) {
    let a = Arc::new(SqlStore::connect(&url, 4).await.expect("node A"));
    a.migrate().await.expect("migrate");
    let b = Arc::new(SqlStore::connect(&url, 4).await.expect("node B"));
    let cache = CachedStore::new(b.clone());
    let follower = b.follow_changes().expect("PostgreSQL follows");
    let alice = alice(&a).await;
    a.insert_session(&session("s1", &alice)).await.expect("session");

    // B serves the session from memory once it listens: a change made
    // behind the triggers' back (they are off for it) is not seen.
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        assert!(cache.session_with_user("s1").await.expect("read").is_some(), "the session is live");
        let mut conn = a.pool().acquire().await.expect("connection");
        conn.execute("ALTER TABLE sessions DISABLE TRIGGER USER").await.expect("triggers off");
        conn.execute("UPDATE sessions SET secret_hash = 'changed quietly' WHERE id = 's1'").await.expect("update");
        conn.execute("ALTER TABLE sessions ENABLE TRIGGER USER").await.expect("triggers on");
        drop(conn);
        let read = cache.session_with_user("s1").await.expect("read").expect("live");
        if read.session.secret_hash == "h" {
            break;
        }
        // Not listening yet: it read the table. Put the row back and try again.
        sqlx::query("UPDATE sessions SET secret_hash = 'h' WHERE id = 's1'").execute(a.pool()).await.expect("back");
        assert!(Instant::now() < deadline, "node B never served the session from memory");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }

    // Revoked on A: refused on B within the bound.
    assert!(a.delete_session(alice.id, "s1", None).await.expect("revoke"), "revoked");
    let revoked = Instant::now();
    while cache.session_with_user("s1").await.expect("read").is_some() {
        assert!(revoked.elapsed() < WITHIN, "node B still served the revoked session after {WITHIN:?}");
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    eprintln!("refused on the other node {:?} after the revocation", revoked.elapsed());
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

    // B serves the token from memory once it listens (a change made with
    // the triggers off is not seen).
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        assert!(cache.access_token_with_user("t1").await.expect("read").is_some(), "the token is live");
        sqlx::query("UPDATE access_tokens SET secret_hash = 'changed quietly' WHERE id = 't1'")
            .execute(a.pool())
            .await
            .expect("update");
        let (read, _) = cache.access_token_with_user("t1").await.expect("read").expect("live");
        if read.secret_hash == "h" {
            break;
        }
        sqlx::query("UPDATE access_tokens SET secret_hash = 'h' WHERE id = 't1'")
            .execute(a.pool())
            .await
            .expect("back");
        assert!(Instant::now() < deadline, "node B never served the token from memory");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }

    // Revoked on A: refused on B within the bound.
    assert!(a.delete_access_token(alice.id, "t1", None).await.expect("revoke"), "revoked");
    let revoked = Instant::now();
    while cache.access_token_with_user("t1").await.expect("read").is_some() {
        assert!(revoked.elapsed() < WITHIN, "node B still accepted the revoked token after {WITHIN:?}");
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    eprintln!("token refused on the other node {:?} after the revocation", revoked.elapsed());
    follower.abort();
    a.close().await;
    b.close().await;
}
