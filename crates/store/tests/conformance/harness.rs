//! Where each conformance test runs: a fresh SQLite file, or a PostgreSQL
//! schema of its own, migrated first and cleaned up whatever the test does.

use std::any::Any;
use std::future::Future;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use portcullis_store::SqlStore;
use sqlx::{Connection as _, Executor as _, PgConnection};

use crate::services::{self, POSTGRES_URL_VAR};

/// Enough connections for the concurrency tests to overlap.
const MAX_CONNECTIONS: u32 = 8;
/// A test that hangs fails instead, and still cleans up.
const TEST_TIMEOUT: Duration = Duration::from_secs(120);

enum Failure {
    Setup(String),
    Panic(Box<dyn Any + Send>),
}

/// Runs `test` on a migrated SQLite database in a fresh temporary file.
pub async fn run_sqlite<F, Fut>(test: F)
where
    F: FnOnce(SqlStore) -> Fut,
    Fut: Future<Output = ()> + Send + 'static,
{
    let dir = tempfile::tempdir().expect("temporary directory");
    let url = format!("sqlite://{}", dir.path().join("conformance.db").display());
    let outcome = open_and_run(&url, test).await;
    drop(dir);
    finish(outcome);
}

/// Runs `test` on a migrated PostgreSQL schema of its own, dropped
/// afterwards whatever happened. Skips when no server is configured (fails
/// instead when the run requires one, see `services`); fails when one is
/// configured but cannot be reached.
pub async fn run_postgres<F, Fut>(name: &str, test: F)
where
    F: FnOnce(SqlStore) -> Fut,
    Fut: Future<Output = ()> + Send + 'static,
{
    let Some(base) = services::postgres_url() else {
        return;
    };
    let schema = schema_name(name);
    let mut admin = PgConnection::connect(&base)
        .await
        .unwrap_or_else(|e| panic!("cannot reach PostgreSQL at {POSTGRES_URL_VAR}: {e}"));
    admin
        .execute(format!(r#"CREATE SCHEMA "{schema}""#).as_str())
        .await
        .unwrap_or_else(|e| panic!("cannot create schema {schema}: {e}"));
    let outcome = open_and_run(&with_search_path(&base, &schema), test).await;
    let dropped = admin.execute(format!(r#"DROP SCHEMA "{schema}" CASCADE"#).as_str()).await;
    let _ = admin.close().await;
    finish(outcome);
    dropped.unwrap_or_else(|e| panic!("cannot drop schema {schema}: {e}"));
}

async fn open_and_run<F, Fut>(url: &str, test: F) -> Result<(), Failure>
where
    F: FnOnce(SqlStore) -> Fut,
    Fut: Future<Output = ()> + Send + 'static,
{
    let store = SqlStore::connect(url, MAX_CONNECTIONS).await.map_err(|e| Failure::Setup(format!("connect: {e}")))?;
    let outcome = match store.migrate().await {
        Err(e) => Err(Failure::Setup(format!("migrate: {e}"))),
        // On a task of its own, so a panic is caught and cleanup still runs.
        Ok(()) => {
            let mut task = tokio::spawn(test(store.clone()));
            match tokio::time::timeout(TEST_TIMEOUT, &mut task).await {
                Ok(Ok(())) => Ok(()),
                Ok(Err(e)) if e.is_panic() => Err(Failure::Panic(e.into_panic())),
                Ok(Err(e)) => Err(Failure::Setup(format!("test task failed: {e}"))),
                Err(_) => {
                    task.abort();
                    let _ = task.await;
                    Err(Failure::Setup(format!("timed out after {TEST_TIMEOUT:?}")))
                }
            }
        }
    };
    store.close().await;
    outcome
}

fn finish(outcome: Result<(), Failure>) {
    match outcome {
        Ok(()) => {}
        Err(Failure::Setup(message)) => panic!("{message}"),
        Err(Failure::Panic(payload)) => std::panic::resume_unwind(payload),
    }
}

/// A schema name no other test (or run) uses at the same time.
fn schema_name(test: &str) -> String {
    static NEXT: AtomicU32 = AtomicU32::new(0);
    let nanos = SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.subsec_nanos()).unwrap_or_default();
    let short: String = test.chars().take(30).collect();
    format!("conformance_{short}_{}_{nanos}_{}", std::process::id(), NEXT.fetch_add(1, Ordering::Relaxed))
}

/// The URL with `schema` first on the search path of every connection
/// (libpq's `options`, which sqlx's PgConnectOptions reads from the URL).
fn with_search_path(base: &str, schema: &str) -> String {
    let sep = if base.contains('?') { '&' } else { '?' };
    format!("{base}{sep}options=-c%20search_path%3D{schema}")
}
