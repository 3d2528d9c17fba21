//! The one way to write: [`SqlStore::write`] hands out the connection a
//! change is made on, and takes the [`Reach`] of that change, which the
//! connection marks for the read cache when it is let go (see `marks`).
//!
//! On SQLite that connection is the one writing connection of this
//! process. SQLite lets one connection write at a time whatever we do;
//! here every change this process makes goes over the same connection, in
//! turn, so writers queue on a lock of ours instead of sleeping in SQLite's
//! busy handler. It also lets the read cache tell this process's commits
//! from another's: SQLite moves a connection's `PRAGMA data_version` only
//! for commits made on other connections, so on this one it moves only for
//! changes made by another process, and a reading that moved marks
//! everything (see `version`). On PostgreSQL changes go over the pool: its server orders
//! the writers.

use std::ops::{Deref, DerefMut};
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use sqlx::{Any, AnyConnection, Connection as _};

use portcullis_app::StoreError;

use crate::kept::Conn;
use crate::marks::{Marks, Reach};
use crate::version::Reading;
use crate::{SqlStore, backend_err, lock, script};

/// SQLite's one writing connection (see the module's documentation).
#[derive(Debug, Default)]
pub(crate) struct Writer {
    /// Opened from the pool on first use, then detached from it.
    pub(crate) conn: tokio::sync::Mutex<Option<AnyConnection>>,
    /// A script (see `script`) was sent and its caller stopped waiting
    /// before the answer: the transaction it opened may still be open.
    /// Only read and written under `conn`'s lock.
    pub(crate) unfinished: AtomicBool,
    /// The connection's last reading of `PRAGMA data_version`, by the
    /// read cache or by a script on its way (see `script`);
    /// `None` until the connection's first. Written under `conn`'s lock.
    pub(crate) read: Mutex<Option<Reading>>,
    /// Readings taken on their own rather than by a script.
    pub(crate) polls: AtomicU64,
}

/// The connection a change is written on, from [`SqlStore::write`]: the
/// writer (SQLite) or one of the pool (PostgreSQL). Held, it keeps this
/// process's other writers waiting; let go, it marks its [`Reach`] for the
/// read cache, whether the change committed, failed, or was dropped on the
/// way with the request that made it.
pub struct WriteConn<'a> {
    pub(crate) held: Held<'a>,
    pub(crate) marks: &'a Marks,
    reach: Reach,
    marked: bool,
}

/// What a [`WriteConn`] holds.
pub(crate) enum Held<'a> {
    Writer(tokio::sync::MappedMutexGuard<'a, AnyConnection>, &'a Writer),
    Pooled(Conn<'a>),
}

impl<'a> WriteConn<'a> {
    /// Opens a transaction on this connection: rolled back if dropped uncommitted.
    pub async fn begin(&mut self) -> Result<sqlx::Transaction<'_, Any>, sqlx::Error> {
        sqlx::Connection::begin(&mut **self).await
    }

    /// Whether this is SQLite's writing connection, where a [`script::Script`]
    /// is one trip.
    pub(crate) fn is_writer(&self) -> bool {
        matches!(self.held, Held::Writer(..))
    }

    /// The marks, for a script's reading of the data version.
    pub(crate) fn marks(&self) -> &'a Marks {
        self.marks
    }

    /// Lets the connection go once the change is made, marking its reach
    /// while this process's other writers still wait: any later change of
    /// theirs counts higher. Answers the count, which a row read back in
    /// the change is good for until a mark that concerns it moves.
    pub(crate) fn finish(mut self) -> u64 {
        self.marked = true;
        self.marks.changed_here(self.reach)
    }
}

impl Drop for WriteConn<'_> {
    fn drop(&mut self) {
        // Before the fields, so before the lock is let go.
        if !self.marked {
            self.marks.changed_here(self.reach);
        }
    }
}

impl Deref for WriteConn<'_> {
    type Target = AnyConnection;
    fn deref(&self) -> &AnyConnection {
        match &self.held {
            Held::Writer(c, _) => c,
            Held::Pooled(c) => c,
        }
    }
}

impl DerefMut for WriteConn<'_> {
    fn deref_mut(&mut self) -> &mut AnyConnection {
        match &mut self.held {
            Held::Writer(c, _) => c,
            Held::Pooled(c) => c,
        }
    }
}

impl SqlStore {
    /// The connection to make a change on, once this process's other
    /// writers are done with it (see [`WriteConn`]). `reach` says what the
    /// change may touch of what the read cache keeps; there is no way to
    /// write without saying it:
    ///
    /// ```
    /// # async fn demo(store: &portcullis_store::SqlStore) -> Result<(), Box<dyn std::error::Error>> {
    /// use portcullis_store::Reach;
    /// let mut conn = store.write(Reach::Posts).await?;
    /// sqlx::query("DELETE FROM posts WHERE id = $1").bind(7_i64).execute(&mut *conn).await?;
    /// # Ok(()) }
    /// ```
    ///
    /// ```compile_fail
    /// # async fn demo(store: &portcullis_store::SqlStore) -> Result<(), Box<dyn std::error::Error>> {
    /// // A write that does not say what it touches does not build.
    /// let mut conn = store.write().await?;
    /// sqlx::query("DELETE FROM posts WHERE id = $1").bind(7_i64).execute(&mut *conn).await?;
    /// # Ok(()) }
    /// ```
    pub async fn write(&self, reach: Reach) -> Result<WriteConn<'_>, StoreError> {
        let Some(writer) = &self.writer else {
            return Ok(self.write_conn(Held::Pooled(self.read().await?), reach));
        };
        let slot = writer.conn.lock().await;
        self.writing(writer, slot, reach).await
    }

    /// The writing connection if no one holds it at this moment (SQLite only).
    pub(crate) async fn try_write(&self, reach: Reach) -> Option<Result<WriteConn<'_>, StoreError>> {
        let writer = self.writer.as_deref()?;
        let slot = writer.conn.try_lock().ok()?;
        Some(self.writing(writer, slot, reach).await)
    }

    fn write_conn<'a>(&'a self, held: Held<'a>, reach: Reach) -> WriteConn<'a> {
        WriteConn { held, marks: &self.marks, reach, marked: false }
    }

    /// The writing connection behind `slot`, opened if need be, with what
    /// an abandoned script left rolled back.
    async fn writing<'a>(
        &'a self,
        writer: &'a Writer,
        mut slot: tokio::sync::MutexGuard<'a, Option<AnyConnection>>,
        reach: Reach,
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
        Ok(self.write_conn(Held::Writer(conn, writer), reach))
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
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::time::Duration;

    use super::*;
    use crate::tests::{rows, sqlite};

    #[tokio::test]
    async fn a_transaction_dropped_on_the_writer_is_undone_before_the_next_write() {
        let (store, _dir) = sqlite(4).await;
        {
            let mut conn = store.write(Reach::Uncached).await.expect("writer");
            let mut tx = conn.begin().await.expect("begin");
            sqlx::query("INSERT INTO t (x) VALUES (1)").execute(&mut *tx).await.expect("insert");
        }
        sqlx::query("INSERT INTO t (x) VALUES (2)")
            .execute(&mut *store.write(Reach::Uncached).await.expect("writer"))
            .await
            .expect("insert");
        assert_eq!(rows(&store).await, vec![2], "read on another connection");
        store.close().await;
    }

    #[tokio::test]
    async fn a_write_marks_its_reach_however_it_ends() {
        let (store, _dir) = sqlite(4).await;
        let marks = &store.marks;
        // Committed.
        let before = marks.now();
        sqlx::query("INSERT INTO t (x) VALUES (1)")
            .execute(&mut *store.write(Reach::User(3)).await.expect("writer"))
            .await
            .expect("insert");
        assert!(!marks.unchanged(marks.user(3), before), "a committed write is marked");
        assert!(marks.unchanged(marks.posts(), before), "only where it reached");
        // Dropped on the way, after its commit, as a request whose client
        // went away: the connection is let go all the same.
        let before = marks.now();
        let write = async {
            let mut conn = store.write(Reach::Posts).await.expect("writer");
            sqlx::query("INSERT INTO t (x) VALUES (2)").execute(&mut *conn).await.expect("insert");
            std::future::pending::<()>().await;
        };
        assert!(tokio::time::timeout(Duration::from_millis(50), write).await.is_err(), "cancelled");
        assert!(!marks.unchanged(marks.posts(), before), "a cancelled write is marked");
        // Failed.
        let before = marks.now();
        let failed = sqlx::query("INSERT INTO t (x) VALUES (NULL)")
            .execute(&mut *store.write(Reach::UserAndPosts(4)).await.expect("writer"))
            .await;
        assert!(failed.is_err(), "x is NOT NULL");
        assert!(!marks.unchanged(marks.user(4), before), "a failed write is marked too");
        // Finished early: marked once, with the count it answers.
        let before = marks.now();
        let conn = store.write(Reach::User(5)).await.expect("writer");
        let count = conn.finish();
        assert_eq!(count, before + 1);
        assert_eq!(marks.now(), count, "finishing marks once");
        assert_eq!(rows(&store).await, vec![1, 2]);
        store.close().await;
    }

    #[tokio::test]
    async fn a_write_on_postgres_marks_its_reach_too() {
        let Some(url) = std::env::var("PORTCULLIS_TEST_POSTGRES_URL").ok().filter(|u| !u.is_empty()) else {
            // As the store's integration tests do (tests/support/services.rs).
            assert!(
                std::env::var_os("PORTCULLIS_TEST_REQUIRE_SERVICES").is_none(),
                "PORTCULLIS_TEST_POSTGRES_URL is not set, and this run requires PostgreSQL"
            );
            eprintln!("PORTCULLIS_TEST_POSTGRES_URL is not set: PostgreSQL not tested");
            return;
        };
        let store = SqlStore::connect(&url, 2).await.expect("connect");
        let before = store.marks.now();
        sqlx::query("SELECT 1").execute(&mut *store.write(Reach::Posts).await.expect("conn")).await.expect("select");
        assert!(!store.marks.unchanged(store.marks.posts(), before));
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
        let mut conn = store.write(Reach::Uncached).await.expect("writer");
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
            .execute(&mut *store.write(Reach::Uncached).await.expect("writer"))
            .await
            .expect("insert");
        assert_eq!(rows(&store).await, vec![1, 2, 4], "read on another connection");
        store.close().await;
    }

    #[tokio::test]
    async fn a_script_abandoned_half_way_is_undone_before_the_next_write() {
        use script::Arg;
        let (store, _dir) = sqlite(4).await;
        let script = slow_script();
        {
            let mut conn = store.write(Reach::Uncached).await.expect("writer");
            // The count takes seconds: the caller stops waiting after the
            // first insert and before the second, as a request dropped on a
            // time limit would.
            let run = script.run(&mut conn, &[&[Arg::Int(1)], &[Arg::Int(20_000_000)], &[Arg::Int(2)]]);
            assert!(tokio::time::timeout(Duration::from_millis(200), run).await.is_err(), "still counting");
        }
        sqlx::query("INSERT INTO t (x) VALUES (3)")
            .execute(&mut *store.write(Reach::Uncached).await.expect("writer"))
            .await
            .expect("insert");
        assert_eq!(rows(&store).await, vec![3], "read on another connection");
        store.close().await;
    }

    #[tokio::test]
    async fn parallel_writers_take_turns_on_one_connection() {
        let (store, _dir) = sqlite(4).await;
        let store = Arc::new(store);
        let writers: Vec<_> = (0..16)
            .map(|x| {
                let store = store.clone();
                tokio::spawn(async move {
                    let mut conn = store.write(Reach::Uncached).await.expect("writer");
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
            .execute(&mut *store.write(Reach::Uncached).await.expect("writer"))
            .await
            .expect("insert");
        assert_eq!(store.data_version().await.expect("version"), before, "its own commits do not move it");
        sqlx::query("INSERT INTO t (x) VALUES (17)").execute(store.pool()).await.expect("insert elsewhere");
        assert_ne!(store.data_version().await.expect("version"), before, "another connection's do");
        store.close().await;
        assert!(store.is_closed());
    }
}
