//! The ports of `portcullis-app` on SQLite and PostgreSQL. One set of plain
//! SQL, run through sqlx's `Any` driver; the schema is per backend
//! (`migrations/sqlite`, `migrations/postgres`). Constraint violations come
//! back as domain errors, never as 500s.

mod access_tokens;
mod audit;
mod backup;
pub mod cache;
pub mod fence;
pub mod import;
mod kept;
mod limits;
mod marks;
mod notices;
mod outbox;
mod overview;
mod passkeys;
mod posts;
pub mod redis;
mod script;
mod sessions;
mod throttle;
mod tokens;
mod two_factor;
mod users;
mod version;
mod writer;

use std::str::FromStr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use sqlx::any::{AnyConnectOptions, AnyPoolOptions};
use sqlx::{AnyPool, Connection as _, Executor as _};

use portcullis_app::StoreError;

pub use marks::Reach;
pub use writer::WriteConn;

use kept::Kept;
use marks::Marks;
use writer::Writer;

/// Which database a URL names.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Backend {
    /// Embedded, one node.
    Sqlite,
    /// Shared, several nodes.
    Postgres,
}

/// Why the store could not be opened.
#[derive(Debug, thiserror::Error)]
pub enum OpenError {
    /// The URL is not `sqlite://…` or `postgres://…`.
    #[error("unsupported scheme in {0:?}: use sqlite://… or postgres://…")]
    Scheme(String),
    /// The URL could not be parsed or the database reached.
    #[error("{0}")]
    Connect(String),
    /// A migration failed.
    #[error("migration failed: {0}")]
    Migrate(String),
}

impl Backend {
    /// The backend a URL names, from its scheme.
    pub fn from_url(url: &str) -> Result<Self, OpenError> {
        let scheme = url.split_once(':').map(|(s, _)| s.to_ascii_lowercase()).unwrap_or_default();
        match scheme.as_str() {
            "sqlite" => Ok(Self::Sqlite),
            "postgres" | "postgresql" => Ok(Self::Postgres),
            _ => Err(OpenError::Scheme(redact(url))),
        }
    }
}

/// The URL with any password replaced, for messages.
pub fn redact(url: &str) -> String {
    match url::Url::parse(url) {
        Ok(mut u) if u.password().is_some() => {
            let _ = u.set_password(Some("***"));
            u.to_string()
        }
        _ => url.to_owned(),
    }
}

static SQLITE_MIGRATIONS: sqlx::migrate::Migrator = sqlx::migrate!("../../migrations/sqlite");
static POSTGRES_MIGRATIONS: sqlx::migrate::Migrator = sqlx::migrate!("../../migrations/postgres");

/// The store: every port on one connection pool. Reads go on
/// [`SqlStore::read`]'s connections, changes on [`SqlStore::write`]'s, which
/// marks what they reach for the read cache (see `marks`). Clones share
/// the pool, the writer and the marks.
#[derive(Clone, Debug)]
pub struct SqlStore {
    pool: AnyPool,
    backend: Backend,
    kept: Option<Arc<Kept>>,
    writer: Option<Arc<Writer>>,
    marks: Arc<Marks>,
    /// On PostgreSQL, the listening for other connections' changes.
    follower: Option<Arc<notices::Follower>>,
}

/// Locks a mutex under which nothing is left half-done.
fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

fn backend_err(e: sqlx::Error) -> StoreError {
    StoreError::Backend(e.to_string())
}

impl SqlStore {
    /// Connects (creating an SQLite file if needed) with at most `max_connections`.
    pub async fn connect(url: &str, max_connections: u32) -> Result<Self, OpenError> {
        sqlx::any::install_default_drivers();
        let backend = Backend::from_url(url)?;
        let url = match backend {
            Backend::Sqlite if !url.contains("mode=") => {
                format!("{url}{}mode=rwc", if url.contains('?') { '&' } else { '?' })
            }
            _ => url.to_owned(),
        };
        let options = AnyConnectOptions::from_str(&url).map_err(|e| OpenError::Connect(e.to_string()))?;
        // One plain attempt first: an unreachable server fails at once rather
        // than after the pool's retries.
        let probe = sqlx::AnyConnection::connect_with(&options).await.map_err(|e| OpenError::Connect(e.to_string()))?;
        probe.close().await.map_err(|e| OpenError::Connect(e.to_string()))?;
        let pool = AnyPoolOptions::new()
            .max_connections(max_connections.max(1))
            .acquire_timeout(Duration::from_secs(10))
            // A ping before each use finds a server connection that died; an
            // SQLite connection is a file in this process, and a ping would
            // only be one more round trip to its worker thread per query.
            .test_before_acquire(backend != Backend::Sqlite)
            .after_connect(move |conn, _meta| {
                Box::pin(async move {
                    if backend == Backend::Sqlite {
                        // WAL lets readers run beside the writer; a busy
                        // writer makes others wait rather than fail.
                        conn.execute("PRAGMA journal_mode = WAL").await?;
                        conn.execute("PRAGMA synchronous = NORMAL").await?;
                        conn.execute("PRAGMA foreign_keys = ON").await?;
                        conn.execute("PRAGMA busy_timeout = 10000").await?;
                    }
                    Ok(())
                })
            })
            .connect_with(options)
            .await
            .map_err(|e| OpenError::Connect(e.to_string()))?;
        let sqlite = backend == Backend::Sqlite;
        let kept = (sqlite && max_connections >= 2).then(|| Arc::new(Kept::new(max_connections as usize / 2)));
        let writer = sqlite.then(|| Arc::new(Writer::default()));
        let follower = (!sqlite).then(|| Arc::new(notices::Follower::new(&url)));
        Ok(Self { pool, backend, kept, writer, marks: Arc::default(), follower })
    }

    /// Applies pending migrations.
    pub async fn migrate(&self) -> Result<(), OpenError> {
        self.apply_migrations().await.map(drop)
    }

    /// Applies pending migrations and names those it applied
    /// (`<version> <description>`), oldest first; none when none were pending.
    pub async fn apply_migrations(&self) -> Result<Vec<String>, OpenError> {
        let migrator = match self.backend {
            Backend::Sqlite => &SQLITE_MIGRATIONS,
            Backend::Postgres => &POSTGRES_MIGRATIONS,
        };
        // sqlx keeps what it applied in `_sqlx_migrations`; before the first
        // run the table does not exist, and everything is pending.
        let done: Vec<i64> = sqlx::query_scalar("SELECT version FROM _sqlx_migrations WHERE success")
            .fetch_all(&self.pool)
            .await
            .unwrap_or_default();
        let pending: Vec<String> = migrator
            .iter()
            .filter(|m| m.migration_type.is_up_migration() && !done.contains(&m.version))
            .map(|m| format!("{} {}", m.version, m.description))
            .collect();
        migrator.run(&self.pool).await.map_err(|e| OpenError::Migrate(e.to_string()))?;
        Ok(pending)
    }

    /// Which backend this is.
    pub fn backend(&self) -> Backend {
        self.backend
    }

    /// The pool, for tests and tools. A change made on it is another
    /// connection's to this store: on SQLite the read cache sees it as it
    /// sees another process's.
    pub fn pool(&self) -> &AnyPool {
        &self.pool
    }

    /// Whether [`SqlStore::close`] has been called.
    pub fn is_closed(&self) -> bool {
        self.pool.is_closed()
    }

    /// Closes every connection.
    pub async fn close(&self) {
        if let Some(kept) = &self.kept {
            // The pool waits for its connections: hand the kept ones back,
            // and those in use when they are done.
            kept.close();
        }
        self.close_writer().await;
        self.pool.close().await;
    }
}

fn flag(b: bool) -> i64 {
    i64::from(b)
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// A store on a fresh SQLite file with one table, `t (x)`.
    pub(crate) async fn sqlite(max: u32) -> (SqlStore, tempfile::TempDir) {
        let dir = tempfile::tempdir().expect("temporary directory");
        let url = format!("sqlite://{}", dir.path().join("kept.db").display());
        let store = SqlStore::connect(&url, max).await.expect("connect");
        sqlx::raw_sql("CREATE TABLE t (x INTEGER NOT NULL)").execute(store.pool()).await.expect("table");
        (store, dir)
    }

    /// The rows of `t`, read on a connection of the pool.
    pub(crate) async fn rows(store: &SqlStore) -> Vec<i64> {
        sqlx::query_scalar("SELECT x FROM t ORDER BY x").fetch_all(store.pool()).await.expect("select")
    }
}
