//! SQLite connections kept between queries rather than handed back to
//! sqlx's pool. The pool checks every connection it is handed back with a
//! ping, which on SQLite is one more trip to the connection's thread, as
//! dear as the query itself, made from a task spawned for it. SQLite needs
//! no check between two holders: a connection's commands run in order on
//! its own thread, so a rollback that a dropped transaction left queued runs
//! before the next holder's first command. A connection goes back through
//! the pool (and its check) once it has been kept for [`KEEP_FOR`], and at
//! most half the pool is kept, so that callers of `SqlStore::pool` always
//! find connections.

use std::ops::{Deref, DerefMut};
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use sqlx::pool::PoolConnection;
use sqlx::{Any, AnyConnection};

use portcullis_app::StoreError;

use crate::{SqlStore, backend_err, lock};

/// How long an SQLite connection may go from query to query without
/// passing through the pool's own check.
pub(crate) const KEEP_FOR: Duration = Duration::from_secs(1);

/// The kept connections (see the module's documentation).
pub(crate) struct Kept {
    conns: Mutex<Vec<(PoolConnection<Any>, Instant)>>,
    cap: usize,
    /// Set by `SqlStore::close`: from then on every connection goes back.
    closed: AtomicBool,
}

impl std::fmt::Debug for Kept {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Kept").field("cap", &self.cap).finish_non_exhaustive()
    }
}

impl Kept {
    /// Keeps at most `cap` connections.
    pub(crate) fn new(cap: usize) -> Self {
        Self { conns: Mutex::new(Vec::new()), cap, closed: AtomicBool::new(false) }
    }

    /// Hands every kept connection back to the pool, and those in use when
    /// they are done.
    pub(crate) fn close(&self) {
        self.closed.store(true, Ordering::Release);
        drop(std::mem::take(&mut *lock(&self.conns)));
    }

    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        lock(&self.conns).len()
    }
}

/// A connection for one query or transaction. Dropped, it goes back to
/// the kept list (SQLite) or to the pool.
pub(crate) struct Conn<'a> {
    conn: Option<PoolConnection<Any>>,
    pub(crate) since: Instant,
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
            let mut list = lock(&kept.conns);
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
    /// A connection to read on: the most recently used kept one (SQLite),
    /// else one from the pool. Changes go on [`SqlStore::write`]'s.
    pub(crate) async fn read(&self) -> Result<Conn<'_>, StoreError> {
        let kept = self.kept.as_deref();
        if let Some((conn, since)) = kept.and_then(|k| lock(&k.conns).pop()) {
            return Ok(Conn { conn: Some(conn), since, kept });
        }
        let conn = self.pool.acquire().await.map_err(backend_err)?;
        Ok(Conn { conn: Some(conn), since: Instant::now(), kept })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tests::{rows, sqlite};

    fn kept(store: &SqlStore) -> usize {
        store.kept.as_ref().map_or(0, |k| k.len())
    }

    #[tokio::test]
    async fn a_transaction_dropped_on_a_kept_connection_is_undone_before_the_next_holder() {
        let (store, _dir) = sqlite(4).await;
        {
            let mut conn = store.read().await.expect("conn");
            let mut tx = sqlx::Connection::begin(&mut *conn).await.expect("begin");
            sqlx::query("INSERT INTO t (x) VALUES (1)").execute(&mut *tx).await.expect("insert");
            // Dropped uncommitted, as when a request's future is dropped.
        }
        assert_eq!(kept(&store), 1, "the connection is kept");
        {
            let mut conn = store.read().await.expect("conn");
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
            let mut conn = store.read().await.expect("conn");
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
        let conn = store.read().await.expect("conn");
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
        let mut conn = store.read().await.expect("conn");
        conn.since = Instant::now().checked_sub(KEEP_FOR * 2).expect("a past instant");
        drop(conn);
        assert_eq!(kept(&store), 0);
        drop(store.read().await.expect("conn"));
        assert_eq!(kept(&store), 1, "a fresh one is kept");
        store.close().await;
    }

    #[tokio::test]
    async fn a_pool_of_one_keeps_nothing() {
        let (store, _dir) = sqlite(1).await;
        assert!(store.kept.is_none(), "a pool of one has nothing to spare");
        drop(store.read().await.expect("conn"));
        assert_eq!(rows(&store).await, Vec::<i64>::new());
        store.close().await;
    }
}
