//! A read cache: live sessions with their user, personal access tokens
//! with their user, and post lists, served from memory so that a page view
//! (or an API call) needs no database round trip.
//!
//! Correctness rests on marks (see `marks`). Every write this process
//! makes goes through the store's one way to write (`SqlStore::write`),
//! which names what the write may reach and marks it once the write is
//! over, however it ends; this cache only reads. An entry remembers the
//! write count from before its rows were read, and is used only while no
//! mark that concerns it is newer: no entry outlives a change made in this
//! process, and a login, which writes one user's rows, leaves every other
//! user's entries and the post lists alone.
//!
//! Changes made by another process on the same file (the command line, a
//! second server) are noticed by reading SQLite's `PRAGMA data_version` on
//! the connection this process writes on (see `writer`): SQLite moves
//! that value whenever another connection commits, and never for the
//! connection's own commits, so it moves only for changes made elsewhere,
//! and a reading that moved sets the mark of everything. An entry is used
//! only after a reading no older than [`READING_MAX_AGE`]: writes of several
//! statements take one on their way (dated from when they asked), and a
//! reader that finds the last one older takes one itself first. While
//! another reader is taking one, or this process is writing, a reader does
//! not wait: it reads the file as on a miss (see `CachedStore::current`).
//! So a read that starts that long after a change made elsewhere sees it,
//! a busy server seldom needs a trip of its own for that, and an idle one
//! makes none.
//!
//! Entries also age out after [`MAX_AGE`]; past [`REFRESH_AFTER`] one
//! reader reloads an entry while the others go on using it, so that the
//! readers of a busy session do not all miss at the same moment.
//!
//! A session's `last_seen_at` (the one write a page view makes, once a
//! minute at most) is updated in place, and its write marks nothing
//! (`Reach::LastSeen`).
//!
//! On PostgreSQL, other nodes' changes (and the command line's) are heard
//! as notices that triggers send at commit (see `notices`), and entries
//! are used only while this node is listening for them; the readings above
//! are SQLite's alone. Sessions kept in Redis are read through the cache
//! too ([`CachedStore::with_sessions`]): their changes are announced like
//! the triggers' notices (`SqlStore::announce`).

use std::borrow::Borrow;
use std::collections::HashMap;
use std::hash::Hash;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use async_trait::async_trait;

use portcullis_app::access_tokens::AccessToken;
use portcullis_app::audit::AuditEvent;
use portcullis_app::ports::{AccessTokenStore, SignIn, StoreResult};
use portcullis_app::{Post, PostStore, Session, SessionStore, SignedIn, User};

use crate::marks::Marks;
use crate::{Reach, SqlStore};

/// The oldest reading of SQLite's data version that an entry is used on.
pub const READING_MAX_AGE: Duration = Duration::from_millis(20);
/// The longest an entry is used, whatever the readings say.
pub const MAX_AGE: Duration = Duration::from_secs(30);
/// From this age on, the first reader of an entry reloads it.
pub const REFRESH_AFTER: Duration = Duration::from_secs(15);
/// Entries per map; a full map starts again empty.
const CAPACITY: usize = 10_000;
struct Entry<V> {
    /// The write count from before the value was read.
    since: u64,
    loaded: Instant,
    /// A reader has been sent to reload it.
    refreshing: bool,
    value: V,
}

/// A bounded map of values, each valid until a write marks it stale.
struct Map<K, V> {
    entries: Mutex<HashMap<K, Entry<V>>>,
}

impl<K: Eq + Hash, V: Clone> Map<K, V> {
    fn new() -> Self {
        Self { entries: Mutex::new(HashMap::new()) }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<K, Entry<V>>> {
        // A panic while holding the lock leaves nothing half-written worth keeping.
        self.entries.lock().unwrap_or_else(|poisoned| {
            let mut guard = poisoned.into_inner();
            guard.clear();
            guard
        })
    }

    fn get<Q: Eq + Hash + ?Sized>(&self, key: &Q, fresh: impl FnOnce(&V, u64) -> bool) -> Option<V>
    where
        K: Borrow<Q>,
    {
        self.get_at(key, fresh, Instant::now())
    }

    /// The value, if `fresh` says nothing it depends on changed since its
    /// entry's count and the entry is young enough at `now`. Past
    /// [`REFRESH_AFTER`] the first caller is answered `None`, to read the row
    /// again and `put` it, while later callers are still served.
    fn get_at<Q: Eq + Hash + ?Sized>(&self, key: &Q, fresh: impl FnOnce(&V, u64) -> bool, now: Instant) -> Option<V>
    where
        K: Borrow<Q>,
    {
        let mut map = self.lock();
        let entry = map.get_mut(key)?;
        let age = now.saturating_duration_since(entry.loaded);
        if age >= MAX_AGE || !fresh(&entry.value, entry.since) {
            return None;
        }
        if age >= REFRESH_AFTER && !entry.refreshing {
            entry.refreshing = true;
            return None;
        }
        Some(entry.value.clone())
    }

    fn put(&self, key: K, since: u64, value: V) {
        let mut map = self.lock();
        if map.len() >= CAPACITY {
            map.clear();
        }
        map.insert(key, Entry { since, loaded: Instant::now(), refreshing: false, value });
    }
}

type PostKey = (Option<i64>, Option<i64>, i64);

/// The cached store: reads of sessions and post lists from memory, every
/// write straight to [`SqlStore`], which marks what it reaches. The other
/// ports are the [`SqlStore`]'s own: nothing of theirs is kept.
pub struct CachedStore {
    sql: Arc<SqlStore>,
    /// Where sessions are kept when not in SQL (Redis).
    elsewhere: Option<Arc<dyn SessionStore>>,
    sessions: Map<String, Arc<SignedIn>>,
    /// Tokens by id, with their user; valid while the user's mark stays.
    tokens: Map<String, Arc<(AccessToken, User)>>,
    posts: Map<PostKey, Arc<[Post]>>,
    /// Held while a reader takes a reading for the others.
    reading: tokio::sync::Mutex<()>,
}

impl CachedStore {
    /// A cache in front of `sql`.
    pub fn new(sql: Arc<SqlStore>) -> Arc<Self> {
        Self::build(sql, None)
    }

    /// A cache in front of `sql`, with the sessions kept in `sessions`, whose
    /// changes announce themselves on `sql` (see `SqlStore::announce`).
    pub fn with_sessions(sql: Arc<SqlStore>, sessions: Arc<dyn SessionStore>) -> Arc<Self> {
        Self::build(sql, Some(sessions))
    }

    fn build(sql: Arc<SqlStore>, elsewhere: Option<Arc<dyn SessionStore>>) -> Arc<Self> {
        Arc::new(Self {
            sql,
            elsewhere,
            sessions: Map::new(),
            tokens: Map::new(),
            posts: Map::new(),
            reading: tokio::sync::Mutex::new(()),
        })
    }

    /// The store the sessions are kept in.
    fn kept(&self) -> &dyn SessionStore {
        self.elsewhere.as_deref().unwrap_or(&*self.sql)
    }

    /// The store's marks, which its writes set.
    fn marks(&self) -> &Marks {
        &self.sql.marks
    }

    /// Whether entries may be used now: there is a reading of the data
    /// version no older than [`READING_MAX_AGE`], taken here if need be.
    /// A reader never waits for one: while another reader takes it, or
    /// while the writing connection is busy with a write of this process,
    /// the answer is no, and the reader reads the file as on a miss.
    async fn current(&self) -> bool {
        // PostgreSQL: while the notices of other connections' changes are heard.
        if let Some(listening) = self.sql.following() {
            return listening;
        }
        let recent = || self.sql.version_read_at().is_some_and(|at| at.elapsed() < READING_MAX_AGE);
        if recent() {
            return true;
        }
        // Closed (shutting down), the store answers errors of its own.
        if self.sql.is_closed() {
            return false;
        }
        let Ok(_turn) = self.reading.try_lock() else { return false };
        if recent() {
            return true;
        }
        match self.sql.try_data_version().await {
            Some(Ok(_)) => true,
            None => false,
            Some(Err(e)) => {
                tracing::warn!(error = %e, "data version unreadable; the cache is cleared");
                self.marks().changed(Reach::Everything);
                // The next connection's first reading marks everything again.
                self.sql.close_writer().await;
                false
            }
        }
    }

    fn session_fresh(&self) -> impl FnOnce(&Arc<SignedIn>, u64) -> bool + '_ {
        |found, since| self.marks().unchanged(self.marks().user(found.user.id), since)
    }
}

#[async_trait]
impl SessionStore for CachedStore {
    async fn insert_session(&self, session: &Session) -> StoreResult<()> {
        // A new id: nothing cached can name it.
        self.kept().insert_session(session).await
    }

    async fn open_session(&self, session: &Session, login: &SignIn<'_>) -> StoreResult<()> {
        // Counted while the writing connection is still held: any later
        // change of this process to the user counts higher, so the row read
        // back is good until the user's mark moves. The session is cached
        // as it was written, with the user as the login left them: the
        // first page after a login is served from memory.
        if let Some(sessions) = &self.elsewhere {
            return sessions.open_session(session, login).await;
        }
        let (opened, count) = self.sql.open_session_counted(session, login).await?;
        if let Some(user) = opened {
            self.sessions.put(session.id.clone(), count, Arc::new(SignedIn { session: session.clone(), user }));
        }
        Ok(())
    }

    async fn session_with_user(&self, id: &str) -> StoreResult<Option<Arc<SignedIn>>> {
        let current = self.current().await;
        let since = self.marks().now();
        if current && let Some(hit) = self.sessions.get(id, self.session_fresh()) {
            return Ok(Some(hit));
        }
        let found = self.kept().session_with_user(id).await?;
        if let Some(pair) = &found {
            self.sessions.put(id.to_owned(), since, Arc::clone(pair));
        }
        Ok(found)
    }

    async fn touch_session(&self, id: &str, seen: i64, now: i64) -> StoreResult<()> {
        // Only this session's `last_seen_at` changes: update the entry first,
        // so that the requests on the same session that come next see it
        // touched, and those already past the cache write nothing (`seen`).
        if let Some(entry) = self.sessions.lock().get_mut(id) {
            let session = &mut Arc::make_mut(&mut entry.value).session;
            if session.last_seen_at > seen {
                return Ok(());
            }
            session.last_seen_at = now;
        }
        let written = self.kept().touch_session(id, seen, now).await;
        if written.is_err() {
            // The entry no longer says what is stored.
            self.marks().changed(Reach::Everything);
        }
        written
    }

    async fn delete_session(&self, user_id: i64, id: &str, audit: Option<&AuditEvent>) -> StoreResult<bool> {
        self.kept().delete_session(user_id, id, audit).await
    }

    async fn delete_user_sessions(
        &self,
        user_id: i64,
        except: Option<&str>,
        audit: Option<&AuditEvent>,
    ) -> StoreResult<u64> {
        self.kept().delete_user_sessions(user_id, except, audit).await
    }

    async fn user_sessions(&self, user_id: i64, now: i64) -> StoreResult<Vec<Session>> {
        self.kept().user_sessions(user_id, now).await
    }

    async fn purge_sessions(&self, now: i64, idle_cutoff: i64) -> StoreResult<u64> {
        self.kept().purge_sessions(now, idle_cutoff).await
    }
}

/// Tokens are revoked with their user's mark (`Reach::User`): by their
/// owner, an administrator's lock, a password reset, the user's deletion.
#[async_trait]
impl AccessTokenStore for CachedStore {
    async fn insert_access_token(&self, token: &AccessToken, audit: Option<&AuditEvent>) -> StoreResult<()> {
        // A new id: nothing cached can name it.
        self.sql.insert_access_token(token, audit).await
    }

    async fn access_token_with_user(&self, id: &str) -> StoreResult<Option<(AccessToken, User)>> {
        let current = self.current().await;
        let since = self.marks().now();
        let fresh =
            |found: &Arc<(AccessToken, User)>, since| self.marks().unchanged(self.marks().user(found.1.id), since);
        if current && let Some(hit) = self.tokens.get(id, fresh) {
            return Ok(Some((*hit).clone()));
        }
        let found = self.sql.access_token_with_user(id).await?;
        if let Some(pair) = &found {
            self.tokens.put(id.to_owned(), since, Arc::new(pair.clone()));
        }
        Ok(found)
    }

    async fn user_access_tokens(&self, user_id: i64) -> StoreResult<Vec<AccessToken>> {
        self.sql.user_access_tokens(user_id).await
    }

    async fn delete_access_token(&self, user_id: i64, id: &str, audit: Option<&AuditEvent>) -> StoreResult<bool> {
        self.sql.delete_access_token(user_id, id, audit).await
    }

    async fn touch_access_token(
        &self,
        id: &str,
        seen: Option<i64>,
        now: i64,
        ip: Option<&str>,
        audit: Option<&AuditEvent>,
    ) -> StoreResult<bool> {
        // As `touch_session`: the entry first, so that the requests that
        // come next see the use noted and write nothing.
        if let Some(entry) = self.tokens.lock().get_mut(id) {
            let token = &mut Arc::make_mut(&mut entry.value).0;
            if token.last_used_at != seen {
                return Ok(false);
            }
            token.last_used_at = Some(now);
            token.last_used_ip = ip.map(str::to_owned);
        }
        let written = self.sql.touch_access_token(id, seen, now, ip, audit).await;
        if !matches!(written, Ok(true)) {
            // Another node noted a use first, or the write failed: read it again.
            self.tokens.lock().remove(id);
        }
        written
    }

    async fn reveal_access_token(&self, user_id: i64, id: &str) -> StoreResult<bool> {
        self.sql.reveal_access_token(user_id, id).await
    }
}

#[async_trait]
impl PostStore for CachedStore {
    async fn insert_post(&self, author_id: i64, title: &str, content: &str, now: i64) -> StoreResult<i64> {
        self.sql.insert_post(author_id, title, content, now).await
    }

    async fn post_by_id(&self, id: i64) -> StoreResult<Option<Post>> {
        self.sql.post_by_id(id).await
    }

    async fn update_post(&self, id: i64, title: &str, content: &str, now: i64) -> StoreResult<()> {
        self.sql.update_post(id, title, content, now).await
    }

    async fn delete_post(&self, id: i64) -> StoreResult<()> {
        self.sql.delete_post(id).await
    }

    async fn list_posts(&self, author_id: Option<i64>, before_id: Option<i64>, limit: i64) -> StoreResult<Arc<[Post]>> {
        let current = self.current().await;
        let since = self.marks().now();
        let key = (author_id, before_id, limit);
        if current
            && let Some(hit) = self.posts.get(&key, |_, since| self.marks().unchanged(self.marks().posts(), since))
        {
            return Ok(hit);
        }
        let posts = self.sql.list_posts(author_id, before_id, limit).await?;
        self.posts.put(key, since, Arc::clone(&posts));
        Ok(posts)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn cached_sqlite() -> (Arc<SqlStore>, Arc<CachedStore>, tempfile::TempDir) {
        let dir = tempfile::tempdir().expect("temporary directory");
        let url = format!("sqlite://{}", dir.path().join("readings.db").display());
        let sql = Arc::new(SqlStore::connect(&url, 4).await.expect("connect"));
        sql.migrate().await.expect("migrate");
        let cache = CachedStore::new(sql.clone());
        (sql, cache, dir)
    }

    #[tokio::test]
    async fn a_reader_does_not_wait_for_a_busy_writer_nor_trust_an_old_reading() {
        let (sql, cache, _dir) = cached_sqlite().await;
        assert!(cache.list_posts(None, None, 10).await.expect("list").is_empty());
        let polls = sql.version_polls();
        let writing = sql.write(Reach::Uncached).await.expect("writer");
        // Another process writes a post while this one's writer is busy.
        sqlx::query(
            "INSERT INTO users (username, username_normalized, email, email_normalized, password_hash, security_stamp, \
             created_at, updated_at) VALUES ('o', 'o', 'o@example.com', 'o@example.com', 'x', 's', 0, 0)",
        )
        .execute(sql.pool())
        .await
        .expect("user elsewhere");
        sqlx::query(
            "INSERT INTO posts (author_id, title, content, created_at, updated_at) \
             SELECT id, 'elsewhere', 'body', 0, 0 FROM users",
        )
        .execute(sql.pool())
        .await
        .expect("post elsewhere");
        tokio::time::sleep(READING_MAX_AGE * 2).await;
        let read = tokio::time::timeout(Duration::from_secs(2), cache.list_posts(None, None, 10)).await;
        let posts = read.expect("the read did not wait for the writer").expect("list");
        assert_eq!(posts.len(), 1, "nor served what memory held from before the other's commit");
        assert_eq!(sql.version_polls(), polls, "and took no reading");
        drop(writing);
        cache.list_posts(None, None, 10).await.expect("list");
        assert_eq!(sql.version_polls(), polls + 1, "the next read, the writer free, takes one");
        drop(cache);
        sql.close().await;
    }

    #[tokio::test]
    async fn readers_take_a_reading_only_when_no_write_took_one_lately() {
        use crate::script::{Arg, Script};
        let (sql, cache, _dir) = cached_sqlite().await;
        let script = Script::new(vec!["DELETE FROM login_attempts WHERE key = $1".into()]);
        let write = || async {
            let mut conn = sql.write(Reach::Uncached).await.expect("writer");
            script.run(&mut conn, &[&[Arg::Text("k")]]).await.expect("write");
        };
        let read = || async { cache.list_posts(None, None, 10).await.expect("list") };
        // Reads and writes every few milliseconds for fifteen periods:
        // the writes' readings serve the readers.
        write().await;
        let until = Instant::now() + READING_MAX_AGE * 15;
        while Instant::now() < until {
            write().await;
            read().await;
            tokio::time::sleep(READING_MAX_AGE / 5).await;
        }
        let polls = sql.version_polls();
        assert!(polls <= 3, "readers took {polls} readings between writes");
        // Idle, nothing is read.
        tokio::time::sleep(READING_MAX_AGE * 10).await;
        assert_eq!(sql.version_polls(), polls, "no reading while nobody reads");
        // The first read after that takes one, for the reads that follow too.
        read().await;
        read().await;
        assert_eq!(sql.version_polls(), polls + 1);
        // A commit on another connection is seen by the next write's reading.
        let seen = cache.marks().now();
        sqlx::query("INSERT INTO login_attempts (key, attempts, updated_at) VALUES ('o', 1, 0)")
            .execute(sql.pool())
            .await
            .expect("elsewhere");
        write().await;
        assert!(!cache.marks().unchanged(cache.marks().posts(), seen), "the write found the other commit");
        drop(cache);
        sql.close().await;
    }

    #[test]
    fn an_old_entry_sends_one_reader_to_reload_it_and_serves_the_rest() {
        let map: Map<&str, u32> = Map::new();
        let fresh = |_: &u32, since: u64| since == 7;
        map.put("k", 7, 1);
        let loaded = map.lock().get("k").map(|e| e.loaded).expect("stored");
        let at = |d: Duration| loaded + d;
        assert_eq!(map.get_at("k", fresh, at(REFRESH_AFTER / 2)), Some(1));
        assert_eq!(map.get_at("k", |_, _| false, at(REFRESH_AFTER / 2)), None, "changed since");
        assert_eq!(map.get_at("k", fresh, at(REFRESH_AFTER)), None, "the first reader past the mark reloads");
        for _ in 0..3 {
            assert_eq!(map.get_at("k", fresh, at(REFRESH_AFTER)), Some(1), "the others are served meanwhile");
        }
        assert_eq!(map.get_at("k", fresh, at(MAX_AGE)), None, "never past the longest age");
        map.put("k", 7, 2);
        assert_eq!(map.get("k", fresh), Some(2), "the reloaded value replaces it");
        let loaded = map.lock().get("k").map(|e| e.loaded).expect("stored");
        assert_eq!(map.get_at("k", fresh, loaded + REFRESH_AFTER), None, "and is renewed in its turn");
    }
}
