//! The ports of `portcullis-app` on SQLite and PostgreSQL. One set of plain
//! SQL, run through sqlx's `Any` driver; the schema is per backend
//! (`migrations/sqlite`, `migrations/postgres`). Constraint violations come
//! back as domain errors, never as 500s.

mod audit;
pub mod cache;
mod limits;
mod outbox;
mod posts;
pub mod redis;
mod script;
mod sessions;
mod throttle;
mod tokens;
mod users;

use std::ops::{Deref, DerefMut};
use std::str::FromStr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use sqlx::any::{AnyConnectOptions, AnyPoolOptions};
use sqlx::pool::PoolConnection;
use sqlx::{Any, AnyConnection, AnyPool, Connection as _, Executor as _};

use portcullis_app::StoreError;

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

/// The store: every port on one connection pool.
#[derive(Clone, Debug)]
pub struct SqlStore {
    pool: AnyPool,
    backend: Backend,
    kept: Option<Arc<Kept>>,
    writer: Option<Arc<Writer>>,
}

/// SQLite's one writing connection. SQLite lets one connection write at a
/// time whatever we do; here every change this process makes goes over the
/// same connection, in turn, so writers queue on a lock of ours instead of
/// sleeping in SQLite's busy handler. It also lets the read cache tell this
/// process's commits from another's: SQLite moves a connection's
/// `PRAGMA data_version` only for commits made on other connections, so on
/// this one it moves only for changes made by another process.
/// (PostgreSQL writes over the pool: its server orders the writers.)
#[derive(Debug, Default)]
struct Writer {
    /// Opened from the pool on first use, then detached from it.
    conn: tokio::sync::Mutex<Option<AnyConnection>>,
    /// A script (see `script`) was sent and its caller stopped waiting
    /// before the answer: the transaction it opened may still be open.
    /// Only read and written under `conn`'s lock.
    unfinished: AtomicBool,
    /// The connection's last reading of `PRAGMA data_version`, by the
    /// read cache or by a script on its way (see `script`);
    /// `None` until the connection's first. Written under `conn`'s lock.
    read: Mutex<Option<Reading>>,
    /// Called when a reading differs from the one before it, and for a
    /// connection's first (see [`SqlStore::on_foreign_commit`]).
    on_change: Mutex<Vec<ChangeHook>>,
    /// Readings taken on their own rather than by a script.
    polls: AtomicU64,
}

/// A reading of `PRAGMA data_version`.
#[derive(Clone, Copy, Debug)]
struct Reading {
    version: i64,
    at: Instant,
}

/// What to call when another connection has committed.
struct ChangeHook(Box<dyn Fn() + Send + Sync>);

impl std::fmt::Debug for ChangeHook {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ChangeHook")
    }
}

/// Locks a mutex under which nothing is left half-done.
fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

impl Writer {
    /// Notes a reading of `PRAGMA data_version` on the writing connection,
    /// asked for `at`, and tells the hooks if it moved. The time is when the
    /// question was sent, not when the answer came: a commit made elsewhere
    /// while the answer was on its way (a script waiting for another
    /// process's lock, say) is not in it, and the reading must not look
    /// younger than that commit.
    fn observe(&self, version: i64, at: Instant) {
        let moved = lock(&self.read).replace(Reading { version, at }).map(|r| r.version) != Some(version);
        if moved {
            for hook in lock(&self.on_change).iter() {
                (hook.0)();
            }
        }
    }
}

/// The connection a change is written on: the writer (SQLite) or one of
/// the pool (PostgreSQL). Held, it keeps other writers of this process waiting.
pub(crate) enum WriteConn<'a> {
    Writer(tokio::sync::MappedMutexGuard<'a, AnyConnection>, &'a Writer),
    Pooled(Conn<'a>),
}

impl WriteConn<'_> {
    /// Opens a transaction on this connection: rolled back if dropped uncommitted.
    pub(crate) async fn begin(&mut self) -> Result<sqlx::Transaction<'_, Any>, sqlx::Error> {
        sqlx::Connection::begin(&mut **self).await
    }
}

impl Deref for WriteConn<'_> {
    type Target = AnyConnection;
    fn deref(&self) -> &AnyConnection {
        match self {
            Self::Writer(c, _) => c,
            Self::Pooled(c) => c,
        }
    }
}

impl DerefMut for WriteConn<'_> {
    fn deref_mut(&mut self) -> &mut AnyConnection {
        match self {
            Self::Writer(c, _) => c,
            Self::Pooled(c) => c,
        }
    }
}

fn backend_err(e: sqlx::Error) -> StoreError {
    StoreError::Backend(e.to_string())
}

/// How long an SQLite connection may go from query to query without
/// passing through the pool's own check.
const KEEP_FOR: Duration = Duration::from_secs(1);

/// SQLite connections kept between queries rather than handed back to
/// sqlx's pool. The pool checks every connection it is handed back with a
/// ping, which on SQLite is one more trip to the connection's thread, as
/// dear as the query itself, made from a task spawned for it. SQLite needs
/// no check between two holders: a connection's commands run in order on
/// its own thread, so a rollback that a dropped transaction left queued runs
/// before the next holder's first command. A connection goes back through
/// the pool (and its check) once it has been kept for [`KEEP_FOR`], and at
/// most half the pool is kept, so that callers of [`SqlStore::pool`] always
/// find connections.
struct Kept {
    conns: Mutex<Vec<(PoolConnection<Any>, Instant)>>,
    cap: usize,
    /// Set by [`SqlStore::close`]: from then on every connection goes back.
    closed: AtomicBool,
}

impl std::fmt::Debug for Kept {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Kept").field("cap", &self.cap).finish_non_exhaustive()
    }
}

impl Kept {
    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<(PoolConnection<Any>, Instant)>> {
        // Nothing is left half-done under this lock: a panic elsewhere
        // leaves a list that is still good.
        self.conns.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

/// A connection for one query or transaction. Dropped, it goes back to
/// the kept list (SQLite) or to the pool.
pub(crate) struct Conn<'a> {
    conn: Option<PoolConnection<Any>>,
    since: Instant,
    kept: Option<&'a Kept>,
}

impl Deref for Conn<'_> {
    type Target = AnyConnection;
    fn deref(&self) -> &AnyConnection {
        self.conn.as_ref().expect("a connection until dropped")
    }
}

impl DerefMut for Conn<'_> {
    fn deref_mut(&mut self) -> &mut AnyConnection {
        self.conn.as_mut().expect("a connection until dropped")
    }
}

impl Drop for Conn<'_> {
    fn drop(&mut self) {
        let (Some(conn), Some(kept)) = (self.conn.take(), self.kept) else { return };
        if self.since.elapsed() < KEEP_FOR && !kept.closed.load(Ordering::Acquire) {
            let mut list = kept.lock();
            if list.len() < kept.cap {
                list.push((conn, self.since));
                return;
            }
        }
        // Back to the pool, which checks it.
        drop(conn);
    }
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
        let kept = (backend == Backend::Sqlite && max_connections >= 2).then(|| {
            Arc::new(Kept {
                conns: Mutex::new(Vec::new()),
                cap: max_connections as usize / 2,
                closed: AtomicBool::new(false),
            })
        });
        let writer = (backend == Backend::Sqlite).then(|| Arc::new(Writer::default()));
        Ok(Self { pool, backend, kept, writer })
    }

    /// A connection: the most recently used kept one (SQLite), else one from the pool.
    pub(crate) async fn conn(&self) -> Result<Conn<'_>, StoreError> {
        let kept = self.kept.as_deref();
        if let Some((conn, since)) = kept.and_then(|k| k.lock().pop()) {
            return Ok(Conn { conn: Some(conn), since, kept });
        }
        let conn = self.pool.acquire().await.map_err(backend_err)?;
        Ok(Conn { conn: Some(conn), since: Instant::now(), kept })
    }

    /// The connection to write on, once this process's other writers are
    /// done with it (see [`Writer`]).
    pub(crate) async fn wconn(&self) -> Result<WriteConn<'_>, StoreError> {
        let Some(writer) = &self.writer else {
            return Ok(WriteConn::Pooled(self.conn().await?));
        };
        let slot = writer.conn.lock().await;
        self.writing(writer, slot).await
    }

    /// The writing connection if no one holds it at this moment (SQLite only).
    pub(crate) async fn try_wconn(&self) -> Option<Result<WriteConn<'_>, StoreError>> {
        let writer = self.writer.as_deref()?;
        let slot = writer.conn.try_lock().ok()?;
        Some(self.writing(writer, slot).await)
    }

    /// The writing connection behind `slot`, opened if need be, with what
    /// an abandoned script left rolled back.
    async fn writing<'a>(
        &'a self,
        writer: &'a Writer,
        mut slot: tokio::sync::MutexGuard<'a, Option<AnyConnection>>,
    ) -> Result<WriteConn<'a>, StoreError> {
        if slot.is_none() {
            *slot = Some(self.pool.acquire().await.map_err(backend_err)?.detach());
        }
        let mut conn = tokio::sync::MutexGuard::try_map(slot, Option::as_mut)
            .map_err(|_| StoreError::Backend("the writing connection is missing".into()))?;
        if writer.unfinished.load(Ordering::Relaxed) {
            script::roll_back(&mut conn).await;
            // Cleared only once done: a holder dropped on the way leaves it for the next.
            writer.unfinished.store(false, Ordering::Relaxed);
        }
        Ok(WriteConn::Writer(conn, writer))
    }

    /// SQLite's `PRAGMA data_version` on the writing connection: it moves
    /// when another connection commits, never for this one's own commits.
    /// The reading goes to the hooks of [`SqlStore::on_foreign_commit`].
    #[cfg(test)]
    pub(crate) async fn data_version(&self) -> Result<i64, StoreError> {
        read_version(&mut self.wconn().await?).await
    }

    /// SQLite's `PRAGMA data_version` on the writing connection, if that is
    /// free at this moment; `None` if it is busy (or this is not SQLite).
    /// It moves when another connection commits, never for this one's own
    /// commits; the reading goes to the hooks of [`SqlStore::on_foreign_commit`].
    pub(crate) async fn try_data_version(&self) -> Option<Result<i64, StoreError>> {
        Some(match self.try_wconn().await? {
            Ok(mut conn) => read_version(&mut conn).await,
            Err(e) => Err(e),
        })
    }

    /// Calls `hook` whenever the writing connection finds that another
    /// connection has committed since its last reading of
    /// `PRAGMA data_version`, and at the first reading of each connection
    /// it opens (which cannot tell what came before). Readings are taken
    /// by [`SqlStore::try_data_version`] and by every script on the way. SQLite only.
    pub(crate) fn on_foreign_commit(&self, hook: impl Fn() + Send + Sync + 'static) {
        if let Some(writer) = &self.writer {
            lock(&writer.on_change).push(ChangeHook(Box::new(hook)));
        }
    }

    /// When the writing connection last read `PRAGMA data_version`, if it has.
    pub(crate) fn version_read_at(&self) -> Option<Instant> {
        self.writer.as_ref().and_then(|w| *lock(&w.read)).map(|r| r.at)
    }

    /// How many readings have been taken on their own rather than by a script.
    #[cfg(test)]
    pub(crate) fn version_polls(&self) -> u64 {
        self.writer.as_ref().map_or(0, |w| w.polls.load(Ordering::Relaxed))
    }

    /// Closes the writing connection (at shutdown, or after a failure that
    /// may have broken it); a later write opens another.
    pub(crate) async fn close_writer(&self) {
        if let Some(writer) = &self.writer {
            let mut slot = writer.conn.lock().await;
            // Another connection's readings do not compare with this one's.
            *lock(&writer.read) = None;
            let old = slot.take();
            drop(slot);
            if let Some(conn) = old {
                let _ = conn.close().await;
            }
        }
    }

    /// Applies pending migrations.
    pub async fn migrate(&self) -> Result<(), OpenError> {
        let migrator = match self.backend {
            Backend::Sqlite => &SQLITE_MIGRATIONS,
            Backend::Postgres => &POSTGRES_MIGRATIONS,
        };
        migrator.run(&self.pool).await.map_err(|e| OpenError::Migrate(e.to_string()))
    }

    /// Which backend this is.
    pub fn backend(&self) -> Backend {
        self.backend
    }

    /// The pool, for tests and tools.
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
            kept.closed.store(true, Ordering::Release);
            drop(std::mem::take(&mut *kept.lock()));
        }
        self.close_writer().await;
        self.pool.close().await;
    }
}

/// Reads `PRAGMA data_version` on `conn` and, on the writing connection,
/// hands the reading to its hooks.
async fn read_version(conn: &mut WriteConn<'_>) -> Result<i64, StoreError> {
    let asked = Instant::now();
    let version =
        sqlx::query_scalar::<_, i64>(script::READ_VERSION).fetch_one(&mut **conn).await.map_err(backend_err)?;
    if let WriteConn::Writer(_, writer) = conn {
        writer.polls.fetch_add(1, Ordering::Relaxed);
        writer.observe(version, asked);
    }
    Ok(version)
}

fn flag(b: bool) -> i64 {
    i64::from(b)
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn sqlite(max: u32) -> (SqlStore, tempfile::TempDir) {
        let dir = tempfile::tempdir().expect("temporary directory");
        let url = format!("sqlite://{}", dir.path().join("kept.db").display());
        let store = SqlStore::connect(&url, max).await.expect("connect");
        sqlx::raw_sql("CREATE TABLE t (x INTEGER NOT NULL)").execute(store.pool()).await.expect("table");
        (store, dir)
    }

    fn kept(store: &SqlStore) -> usize {
        store.kept.as_ref().map_or(0, |k| k.lock().len())
    }

    async fn rows(store: &SqlStore) -> Vec<i64> {
        sqlx::query_scalar("SELECT x FROM t ORDER BY x").fetch_all(store.pool()).await.expect("select")
    }

    #[tokio::test]
    async fn a_transaction_dropped_on_a_kept_connection_is_undone_before_the_next_holder() {
        let (store, _dir) = sqlite(4).await;
        {
            let mut conn = store.conn().await.expect("conn");
            let mut tx = sqlx::Connection::begin(&mut *conn).await.expect("begin");
            sqlx::query("INSERT INTO t (x) VALUES (1)").execute(&mut *tx).await.expect("insert");
            // Dropped uncommitted, as when a request's future is dropped.
        }
        assert_eq!(kept(&store), 1, "the connection is kept");
        {
            let mut conn = store.conn().await.expect("conn");
            assert_eq!(kept(&store), 0, "the kept connection is the one handed out");
            sqlx::query("INSERT INTO t (x) VALUES (2)").execute(&mut *conn).await.expect("insert");
        }
        // Read on another connection: the first insert was rolled back, and
        // the second was not made inside the abandoned transaction.
        let mut other = store.pool().acquire().await.expect("another connection");
        let seen: Vec<i64> = sqlx::query_scalar("SELECT x FROM t").fetch_all(&mut *other).await.expect("select");
        assert_eq!(seen, vec![2]);
        drop(other);
        store.close().await;
    }

    #[tokio::test]
    async fn at_most_half_the_pool_is_kept_and_close_takes_them_back() {
        let (store, _dir) = sqlite(4).await;
        let mut held = Vec::new();
        for x in 0..4 {
            let mut conn = store.conn().await.expect("conn");
            sqlx::query("INSERT INTO t (x) VALUES ($1)").bind(x).execute(&mut *conn).await.expect("insert");
            held.push(conn);
        }
        drop(held);
        assert_eq!(kept(&store), 2);
        // The pool still has connections for those who ask it directly.
        let direct = tokio::time::timeout(Duration::from_secs(5), store.pool().acquire()).await;
        assert!(matches!(direct, Ok(Ok(_))), "the pool has a free connection");
        drop(direct);
        assert_eq!(rows(&store).await, vec![0, 1, 2, 3]);
        tokio::time::timeout(Duration::from_secs(5), store.close()).await.expect("close does not wait on kept ones");
        assert_eq!(kept(&store), 0);
    }

    #[tokio::test]
    async fn a_connection_in_use_when_the_store_closes_goes_back_to_the_pool() {
        let (store, _dir) = sqlite(4).await;
        let conn = store.conn().await.expect("conn");
        let closing = tokio::spawn({
            let store = store.clone();
            async move { store.close().await }
        });
        tokio::time::sleep(Duration::from_millis(50)).await;
        drop(conn);
        tokio::time::timeout(Duration::from_secs(5), closing)
            .await
            .expect("close finishes once the connection is dropped")
            .expect("close task");
        assert_eq!(kept(&store), 0);
    }

    #[tokio::test]
    async fn a_connection_kept_long_enough_goes_back_through_the_pool() {
        let (store, _dir) = sqlite(4).await;
        let mut conn = store.conn().await.expect("conn");
        conn.since = Instant::now().checked_sub(KEEP_FOR * 2).expect("a past instant");
        drop(conn);
        assert_eq!(kept(&store), 0);
        drop(store.conn().await.expect("conn"));
        assert_eq!(kept(&store), 1, "a fresh one is kept");
        store.close().await;
    }

    #[tokio::test]
    async fn a_transaction_dropped_on_the_writer_is_undone_before_the_next_write() {
        let (store, _dir) = sqlite(4).await;
        {
            let mut conn = store.wconn().await.expect("writer");
            let mut tx = conn.begin().await.expect("begin");
            sqlx::query("INSERT INTO t (x) VALUES (1)").execute(&mut *tx).await.expect("insert");
        }
        sqlx::query("INSERT INTO t (x) VALUES (2)")
            .execute(&mut *store.wconn().await.expect("writer"))
            .await
            .expect("insert");
        assert_eq!(rows(&store).await, vec![2], "read on another connection");
        store.close().await;
    }

    /// Two inserts into `t` with a slow count between them.
    fn slow_script() -> script::Script {
        script::Script::new(vec![
            "INSERT INTO t (x) VALUES ($1)".into(),
            "WITH RECURSIVE c(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM c WHERE n < $1) SELECT count(*) AS n FROM c"
                .into(),
            "INSERT INTO t (x) VALUES ($1)".into(),
        ])
    }

    #[tokio::test]
    async fn a_script_is_one_transaction_and_answers_its_rows() {
        use script::Arg;
        let (store, _dir) = sqlite(4).await;
        let script = slow_script();
        let mut conn = store.wconn().await.expect("writer");
        let answer = script.run(&mut conn, &[&[Arg::Int(1)], &[Arg::Int(10)], &[Arg::Int(2)]]).await.expect("run");
        assert_eq!(answer.len(), 1);
        assert_eq!(sqlx::Row::try_get::<i64, _>(&answer[0], "n").expect("n"), 10);
        // One that fails half-way leaves nothing, and the writer goes on.
        let failed = script.run(&mut conn, &[&[Arg::Int(3)], &[Arg::Int(1)], &[Arg::MaybeInt(None)]]).await;
        assert!(failed.is_err(), "x is NOT NULL");
        let wrong = script.run(&mut conn, &[&[Arg::Int(3)]]).await;
        assert!(wrong.is_err(), "a script refuses the wrong number of parameters");
        drop(conn);
        sqlx::query("INSERT INTO t (x) VALUES (4)")
            .execute(&mut *store.wconn().await.expect("writer"))
            .await
            .expect("insert");
        assert_eq!(rows(&store).await, vec![1, 2, 4], "read on another connection");
        store.close().await;
    }

    #[tokio::test]
    async fn a_script_reads_the_data_version_on_its_way() {
        use script::Arg;
        use std::sync::atomic::AtomicUsize;
        let (store, _dir) = sqlite(4).await;
        let moves = Arc::new(AtomicUsize::new(0));
        store.on_foreign_commit({
            let moves = moves.clone();
            move || {
                moves.fetch_add(1, Ordering::SeqCst);
            }
        });
        let script = script::Script::new(vec!["INSERT INTO t (x) VALUES ($1)".into()]);
        let run = |x: i64| {
            let (store, script) = (&store, &script);
            async move {
                let mut conn = store.wconn().await.expect("writer");
                script.run(&mut conn, &[&[Arg::Int(x)]]).await.expect("run")
            }
        };
        let moved = || moves.load(Ordering::SeqCst);
        assert!(store.version_read_at().is_none(), "nothing read yet");
        assert!(run(1).await.is_empty(), "the reading is not among the script's rows");
        assert_eq!(moved(), 1, "a connection's first reading counts as a move");
        let first = store.version_read_at().expect("a reading");
        run(2).await;
        assert_eq!(moved(), 1, "its own commits do not move it");
        assert!(store.version_read_at().expect("a reading") > first, "each script reads again");
        sqlx::query("INSERT INTO t (x) VALUES (3)").execute(store.pool()).await.expect("insert elsewhere");
        run(4).await;
        assert_eq!(moved(), 2, "the next script finds another connection's commit");
        store.close_writer().await;
        assert!(store.version_read_at().is_none(), "a closed connection's readings are forgotten");
        run(5).await;
        assert_eq!(moved(), 3, "a new connection's first reading counts as a move");
        assert_eq!(store.version_polls(), 0, "scripts are not polls");
        assert_eq!(rows(&store).await, vec![1, 2, 3, 4, 5]);
        store.close().await;
    }

    #[tokio::test]
    async fn a_reading_is_dated_from_before_a_commit_it_may_not_have_seen() {
        use script::Arg;
        let (store, _dir) = sqlite(4).await;
        let script = script::Script::new(vec!["INSERT INTO t (x) VALUES ($1)".into()]);
        let run = |x: i64| {
            let (store, script) = (&store, &script);
            async move {
                let mut conn = store.wconn().await.expect("writer");
                script.run(&mut conn, &[&[Arg::Int(x)]]).await.expect("run")
            }
        };
        run(1).await;
        // Another connection holds SQLite's write lock: the script reads the
        // data version, then waits for the lock until that one commits.
        let mut other = store.pool().acquire().await.expect("another connection");
        sqlx::query("BEGIN IMMEDIATE").execute(&mut *other).await.expect("lock");
        sqlx::query("INSERT INTO t (x) VALUES (2)").execute(&mut *other).await.expect("insert elsewhere");
        let (_, committed) = tokio::join!(run(3), async {
            tokio::time::sleep(Duration::from_millis(100)).await;
            let at = Instant::now();
            sqlx::query("COMMIT").execute(&mut *other).await.expect("commit elsewhere");
            at
        });
        let read_at = store.version_read_at().expect("a reading");
        assert!(read_at < committed, "the reading does not look younger than the commit it missed");
        assert_eq!(rows(&store).await, vec![1, 2, 3]);
        drop(other);
        store.close().await;
    }

    #[tokio::test]
    async fn a_script_abandoned_half_way_is_undone_before_the_next_write() {
        use script::Arg;
        let (store, _dir) = sqlite(4).await;
        let script = slow_script();
        {
            let mut conn = store.wconn().await.expect("writer");
            // The count takes seconds: the caller stops waiting after the
            // first insert and before the second, as a request dropped on a
            // time limit would.
            let run = script.run(&mut conn, &[&[Arg::Int(1)], &[Arg::Int(20_000_000)], &[Arg::Int(2)]]);
            assert!(tokio::time::timeout(Duration::from_millis(200), run).await.is_err(), "still counting");
        }
        sqlx::query("INSERT INTO t (x) VALUES (3)")
            .execute(&mut *store.wconn().await.expect("writer"))
            .await
            .expect("insert");
        assert_eq!(rows(&store).await, vec![3], "read on another connection");
        store.close().await;
    }

    #[tokio::test]
    async fn parallel_writers_take_turns_on_one_connection() {
        let (store, _dir) = sqlite(4).await;
        let writers: Vec<_> = (0..16)
            .map(|x| {
                let store = store.clone();
                tokio::spawn(async move {
                    let mut conn = store.wconn().await.expect("writer");
                    let mut tx = conn.begin().await.expect("begin");
                    sqlx::query("INSERT INTO t (x) VALUES ($1)").bind(x).execute(&mut *tx).await.expect("insert");
                    tokio::task::yield_now().await;
                    sqlx::query("UPDATE t SET x = x WHERE x = $1").bind(x).execute(&mut *tx).await.expect("update");
                    tx.commit().await.expect("commit");
                })
            })
            .collect();
        for w in writers {
            w.await.expect("writer task");
        }
        assert_eq!(rows(&store).await, (0..16).collect::<Vec<i64>>());
        let before = store.data_version().await.expect("version");
        sqlx::query("INSERT INTO t (x) VALUES (16)")
            .execute(&mut *store.wconn().await.expect("writer"))
            .await
            .expect("insert");
        assert_eq!(store.data_version().await.expect("version"), before, "its own commits do not move it");
        sqlx::query("INSERT INTO t (x) VALUES (17)").execute(store.pool()).await.expect("insert elsewhere");
        assert_ne!(store.data_version().await.expect("version"), before, "another connection's do");
        store.close().await;
        assert!(store.is_closed());
    }

    #[tokio::test]
    async fn a_pool_of_one_keeps_nothing() {
        let (store, _dir) = sqlite(1).await;
        assert!(store.kept.is_none(), "a pool of one has nothing to spare");
        drop(store.conn().await.expect("conn"));
        assert_eq!(rows(&store).await, Vec::<i64>::new());
        store.close().await;
    }
}
