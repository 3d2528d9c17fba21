//! Readings of SQLite's `PRAGMA data_version` on the writing connection
//! (see `writer`): it moves whenever another connection commits, and never
//! for the connection's own commits, so on the one connection this process
//! writes on it moves only for changes made by another process. A reading
//! that moved marks everything (see `marks`). Every script takes one on its
//! way (see `script`), and the read cache takes one itself when the last is
//! too old (see `cache`).

use std::sync::atomic::Ordering;
use std::time::Instant;

use portcullis_app::StoreError;

use crate::marks::{Marks, Reach};
use crate::writer::{Held, WriteConn, Writer};
use crate::{SqlStore, backend_err, lock, script};

/// A reading of `PRAGMA data_version`.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Reading {
    version: i64,
    at: Instant,
}

impl Writer {
    /// Notes a reading of `PRAGMA data_version` on the writing connection,
    /// asked for `at`, and marks everything if it moved: another process
    /// has committed (or this is a new connection's first reading, which
    /// cannot tell what came before). The time is when the question was
    /// sent, not when the answer came: a commit made elsewhere while the
    /// answer was on its way (a script waiting for another process's lock,
    /// say) is not in it, and the reading must not look younger than that
    /// commit.
    pub(crate) fn observe(&self, version: i64, at: Instant, marks: &Marks) {
        let moved = lock(&self.read).replace(Reading { version, at }).map(|r| r.version) != Some(version);
        if moved {
            marks.changed(Reach::Everything);
        }
    }
}

impl SqlStore {
    /// SQLite's `PRAGMA data_version` on the writing connection: it moves
    /// when another connection commits, never for this one's own commits.
    #[cfg(test)]
    pub(crate) async fn data_version(&self) -> Result<i64, StoreError> {
        read_version(&mut self.write(Reach::Uncached).await?).await
    }

    /// SQLite's `PRAGMA data_version` on the writing connection, if that is
    /// free at this moment; `None` if it is busy (or this is not SQLite).
    /// It moves when another connection commits, never for this one's own
    /// commits; a reading that moved marks everything.
    pub(crate) async fn try_data_version(&self) -> Option<Result<i64, StoreError>> {
        Some(match self.try_write(Reach::Uncached).await? {
            Ok(mut conn) => read_version(&mut conn).await,
            Err(e) => Err(e),
        })
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
}

/// Reads `PRAGMA data_version` on `conn` and, on the writing connection,
/// notes the reading (see [`Writer::observe`]).
async fn read_version(conn: &mut WriteConn<'_>) -> Result<i64, StoreError> {
    let asked = Instant::now();
    let version =
        sqlx::query_scalar::<_, i64>(script::READ_VERSION).fetch_one(&mut **conn).await.map_err(backend_err)?;
    let marks = conn.marks;
    if let Held::Writer(_, writer) = &conn.held {
        writer.polls.fetch_add(1, Ordering::Relaxed);
        writer.observe(version, asked, marks);
    }
    Ok(version)
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::script::{Arg, Script};
    use crate::tests::{rows, sqlite};

    fn insert_script() -> Script {
        Script::new(vec!["INSERT INTO t (x) VALUES ($1)".into()])
    }

    /// Inserts `x` into `t` with `script`, a write that reaches nothing cached.
    async fn insert_one(store: &SqlStore, script: &Script, x: i64) -> Vec<sqlx::any::AnyRow> {
        let mut conn = store.write(Reach::Uncached).await.expect("writer");
        script.run(&mut conn, &[&[Arg::Int(x)]]).await.expect("run")
    }

    #[tokio::test]
    async fn a_script_reads_the_data_version_on_its_way() {
        let (store, _dir) = sqlite(4).await;
        let insert = insert_script();
        let run = |x: i64| insert_one(&store, &insert, x);
        // These writes reach nothing cached: every count is a reading that moved.
        let moved = || store.marks.now();
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
        let (store, _dir) = sqlite(4).await;
        let insert = insert_script();
        let run = |x: i64| insert_one(&store, &insert, x);
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
}
