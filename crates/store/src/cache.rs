//! A read cache for the one-node SQLite deployment: live sessions with their
//! user, and post lists, served from memory so that a page view needs no
//! database round trip.
//!
//! Correctness rests on one generation counter. Every write that can change
//! a cached row (users, sessions, tokens, posts) goes through this store and
//! moves the counter on once it has committed; an entry is used only while
//! the counter still has the value read before its row was loaded, so no
//! entry outlives a change made in this process. Changes made by another
//! process on the same file (the command line, a second server) are noticed
//! by a watcher polling SQLite's `PRAGMA data_version`, which moves whenever
//! another connection commits: they are seen within [`WATCH_INTERVAL`].
//! Entries also age out after [`MAX_AGE`]; past [`REFRESH_AFTER`] one reader
//! reloads an entry while the others go on using it, so that the readers of a
//! busy session do not all miss at the same moment.
//!
//! A session's `last_seen_at` (the one write a page view makes, once a
//! minute at most) is updated in place, and written over the watcher's own
//! connection: SQLite does not move that connection's `data_version` for its
//! own commits, so the write does not read as a foreign change that would
//! clear the cache.
//!
//! Not for PostgreSQL or Redis: other nodes change those behind this
//! process's back, with no cheap way to know. `server::open` installs the
//! cache only on SQLite.

use std::borrow::Borrow;
use std::collections::HashMap;
use std::hash::Hash;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use sqlx::AnyConnection;

use portcullis_app::audit::AuditEvent;
use portcullis_app::mail::OutgoingMail;
use portcullis_app::ports::{NewCredentials, StoreResult};
use portcullis_app::{
    NewToken, NewUser, Post, PostStore, Session, SessionStore, SignedIn, TokenRecord, TokenStore, User, UserStore,
    UserSummary,
};

use crate::sessions::touch_on;
use crate::{SqlStore, backend_err};

/// How often the watcher asks SQLite whether another connection committed.
pub const WATCH_INTERVAL: Duration = Duration::from_millis(20);
/// The longest an entry is used, whatever the watcher says.
pub const MAX_AGE: Duration = Duration::from_secs(30);
/// From this age on, the first reader of an entry reloads it.
pub const REFRESH_AFTER: Duration = Duration::from_secs(15);
/// Entries per map; a full map starts again empty.
const CAPACITY: usize = 10_000;

struct Entry<V> {
    generation: u64,
    loaded: Instant,
    /// A reader has been sent to reload it.
    refreshing: bool,
    value: V,
}

/// A bounded map whose entries are valid for one generation.
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

    fn get<Q: Eq + Hash + ?Sized>(&self, key: &Q, generation: u64) -> Option<V>
    where
        K: Borrow<Q>,
    {
        self.get_at(key, generation, Instant::now())
    }

    /// The value, if its entry is of this generation and young enough at
    /// `now`. Past [`REFRESH_AFTER`] the first caller is answered `None`, to
    /// read the row again and `put` it, while later callers are still served.
    fn get_at<Q: Eq + Hash + ?Sized>(&self, key: &Q, generation: u64, now: Instant) -> Option<V>
    where
        K: Borrow<Q>,
    {
        let mut map = self.lock();
        let entry = map.get_mut(key)?;
        let age = now.saturating_duration_since(entry.loaded);
        if entry.generation != generation || age >= MAX_AGE {
            return None;
        }
        if age >= REFRESH_AFTER && !entry.refreshing {
            entry.refreshing = true;
            return None;
        }
        Some(entry.value.clone())
    }

    fn put(&self, key: K, generation: u64, value: V) {
        let mut map = self.lock();
        if map.len() >= CAPACITY {
            map.clear();
        }
        map.insert(key, Entry { generation, loaded: Instant::now(), refreshing: false, value });
    }
}

type PostKey = (Option<i64>, Option<i64>, i64);

/// The cached store: reads of sessions and post lists from memory, everything
/// else straight to [`SqlStore`].
pub struct CachedStore {
    sql: Arc<SqlStore>,
    generation: Arc<AtomicU64>,
    sessions: Map<String, Arc<SignedIn>>,
    posts: Map<PostKey, Arc<[Post]>>,
    /// The watcher's connection, opened on first use. Session touches go
    /// over it too (see the module's documentation).
    own: tokio::sync::Mutex<Option<AnyConnection>>,
}

impl CachedStore {
    /// A cache in front of `sql`, with its watcher running on the current
    /// Tokio runtime; the watcher stops when the store is dropped.
    pub fn new(sql: Arc<SqlStore>) -> Arc<Self> {
        let store = Arc::new(Self {
            sql,
            generation: Arc::new(AtomicU64::new(0)),
            sessions: Map::new(),
            posts: Map::new(),
            own: tokio::sync::Mutex::new(None),
        });
        tokio::spawn(watch(Arc::downgrade(&store)));
        store
    }

    fn current(&self) -> u64 {
        self.generation.load(Ordering::Acquire)
    }

    /// Forgets every entry (lazily: they no longer match).
    fn changed(&self) {
        self.generation.fetch_add(1, Ordering::AcqRel);
    }

    /// Runs a write and, whatever its outcome, forgets every entry.
    async fn write<T>(&self, done: impl std::future::Future<Output = StoreResult<T>>) -> StoreResult<T> {
        let result = done.await;
        self.changed();
        result
    }
}

/// The connection in `slot`, opened from the pool if there is none.
async fn connected<'a>(
    slot: &'a mut Option<AnyConnection>,
    sql: &SqlStore,
) -> Result<&'a mut AnyConnection, sqlx::Error> {
    match slot {
        Some(conn) => Ok(conn),
        None => Ok(slot.insert(sql.pool().acquire().await?.detach())),
    }
}

/// Polls `PRAGMA data_version` on the store's own connection and moves the
/// generation when another connection (in this process or another) commits.
async fn watch(store: Weak<CachedStore>) {
    let mut last: Option<i64> = None;
    let mut tick = tokio::time::interval(WATCH_INTERVAL);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        let Some(store) = store.upgrade() else { return };
        let mut own = store.own.lock().await;
        let polled = match connected(&mut own, &store.sql).await {
            Ok(conn) => sqlx::query_scalar::<_, i64>("PRAGMA data_version").fetch_one(conn).await,
            Err(e) => Err(e),
        };
        match polled {
            Ok(version) => {
                if last.is_some_and(|l| l != version) {
                    store.changed();
                }
                last = Some(version);
            }
            Err(e) => {
                tracing::warn!(error = %e, "cache watcher failed; the cache is cleared");
                store.changed();
                *own = None;
                last = None;
            }
        }
    }
}

#[async_trait]
impl SessionStore for CachedStore {
    async fn insert_session(&self, session: &Session) -> StoreResult<()> {
        // A new id: nothing cached can name it.
        self.sql.insert_session(session).await
    }

    async fn session_with_user(&self, id: &str) -> StoreResult<Option<Arc<SignedIn>>> {
        let generation = self.current();
        if let Some(hit) = self.sessions.get(id, generation) {
            return Ok(Some(hit));
        }
        let found = self.sql.session_with_user(id).await?;
        if let Some(pair) = &found {
            self.sessions.put(id.to_owned(), generation, Arc::clone(pair));
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
        let mut own = self.own.lock().await;
        let written = match connected(&mut own, &self.sql).await {
            Ok(conn) => touch_on(conn, id, seen, now).await,
            Err(e) => Err(backend_err(e)),
        };
        if written.is_err() {
            // The entry no longer says what is stored (a broken connection
            // is the watcher's to replace).
            self.changed();
        }
        written
    }

    async fn delete_session(&self, user_id: i64, id: &str, audit: Option<&AuditEvent>) -> StoreResult<bool> {
        self.write(self.sql.delete_session(user_id, id, audit)).await
    }

    async fn delete_user_sessions(
        &self,
        user_id: i64,
        except: Option<&str>,
        audit: Option<&AuditEvent>,
    ) -> StoreResult<u64> {
        self.write(self.sql.delete_user_sessions(user_id, except, audit)).await
    }

    async fn user_sessions(&self, user_id: i64, now: i64) -> StoreResult<Vec<Session>> {
        self.sql.user_sessions(user_id, now).await
    }

    async fn purge_sessions(&self, now: i64, idle_cutoff: i64) -> StoreResult<u64> {
        self.write(self.sql.purge_sessions(now, idle_cutoff)).await
    }
}

#[async_trait]
impl PostStore for CachedStore {
    async fn insert_post(&self, author_id: i64, title: &str, content: &str, now: i64) -> StoreResult<i64> {
        self.write(self.sql.insert_post(author_id, title, content, now)).await
    }

    async fn post_by_id(&self, id: i64) -> StoreResult<Option<Post>> {
        self.sql.post_by_id(id).await
    }

    async fn update_post(&self, id: i64, title: &str, content: &str, now: i64) -> StoreResult<()> {
        self.write(self.sql.update_post(id, title, content, now)).await
    }

    async fn delete_post(&self, id: i64) -> StoreResult<()> {
        self.write(self.sql.delete_post(id)).await
    }

    async fn list_posts(&self, author_id: Option<i64>, before_id: Option<i64>, limit: i64) -> StoreResult<Arc<[Post]>> {
        let generation = self.current();
        let key = (author_id, before_id, limit);
        if let Some(hit) = self.posts.get(&key, generation) {
            return Ok(hit);
        }
        let posts = self.sql.list_posts(author_id, before_id, limit).await?;
        self.posts.put(key, generation, Arc::clone(&posts));
        Ok(posts)
    }
}

#[async_trait]
impl UserStore for CachedStore {
    async fn insert_user(&self, user: &NewUser, audit: Option<&AuditEvent>) -> StoreResult<User> {
        self.sql.insert_user(user, audit).await
    }

    async fn user_by_id(&self, id: i64) -> StoreResult<Option<User>> {
        self.sql.user_by_id(id).await
    }

    async fn user_by_login(&self, normalized: &str) -> StoreResult<Option<User>> {
        self.sql.user_by_login(normalized).await
    }

    async fn username_taken(&self, normalized: &str) -> StoreResult<bool> {
        self.sql.username_taken(normalized).await
    }

    async fn email_taken(&self, normalized: &str) -> StoreResult<bool> {
        self.sql.email_taken(normalized).await
    }

    async fn list_users(
        &self,
        query: Option<&str>,
        after_id: Option<i64>,
        limit: i64,
        now: i64,
    ) -> StoreResult<Vec<UserSummary>> {
        self.sql.list_users(query, after_id, limit, now).await
    }

    async fn update_password_hash(&self, id: i64, hash: &str, now: i64) -> StoreResult<()> {
        self.write(self.sql.update_password_hash(id, hash, now)).await
    }

    async fn set_password(&self, id: i64, hash: &str, new_stamp: &str, now: i64) -> StoreResult<()> {
        self.write(self.sql.set_password(id, hash, new_stamp, now)).await
    }

    async fn set_admin(
        &self,
        id: i64,
        is_admin: bool,
        new_stamp: &str,
        now: i64,
        audit: Option<&AuditEvent>,
    ) -> StoreResult<bool> {
        self.write(self.sql.set_admin(id, is_admin, new_stamp, now, audit)).await
    }

    async fn count_admins(&self) -> StoreResult<i64> {
        self.sql.count_admins().await
    }

    async fn record_login(&self, id: i64, now: i64, audit: Option<&AuditEvent>) -> StoreResult<()> {
        self.write(self.sql.record_login(id, now, audit)).await
    }

    async fn delete_user(&self, id: i64, audit: Option<&AuditEvent>) -> StoreResult<bool> {
        self.write(self.sql.delete_user(id, audit)).await
    }

    async fn set_admin_lock(
        &self,
        id: i64,
        until: Option<i64>,
        now: i64,
        audit: Option<&AuditEvent>,
    ) -> StoreResult<()> {
        self.write(self.sql.set_admin_lock(id, until, now, audit)).await
    }

    async fn ping(&self) -> StoreResult<()> {
        self.sql.ping().await
    }
}

#[async_trait]
impl TokenStore for CachedStore {
    async fn insert_user_with_token(
        &self,
        user: &NewUser,
        token: &NewToken,
        mails: &[OutgoingMail],
        audit: Option<&AuditEvent>,
    ) -> StoreResult<User> {
        self.sql.insert_user_with_token(user, token, mails, audit).await
    }

    async fn issue_token(
        &self,
        user_id: i64,
        token: &NewToken,
        mails: &[OutgoingMail],
        audit: Option<&AuditEvent>,
    ) -> StoreResult<()> {
        self.sql.issue_token(user_id, token, mails, audit).await
    }

    async fn token(&self, id: &str) -> StoreResult<Option<TokenRecord>> {
        self.sql.token(id).await
    }

    async fn verify_email_with_token(
        &self,
        token_id: &str,
        user_id: i64,
        email: &str,
        now: i64,
        audit: Option<&AuditEvent>,
    ) -> StoreResult<bool> {
        self.write(self.sql.verify_email_with_token(token_id, user_id, email, now, audit)).await
    }

    async fn reset_password_with_token(
        &self,
        token_id: &str,
        lockout_keys: &[String],
        change: &NewCredentials<'_>,
    ) -> StoreResult<bool> {
        self.write(self.sql.reset_password_with_token(token_id, lockout_keys, change)).await
    }

    async fn change_password_with_mail(&self, change: &NewCredentials<'_>) -> StoreResult<()> {
        self.write(self.sql.change_password_with_mail(change)).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_old_entry_sends_one_reader_to_reload_it_and_serves_the_rest() {
        let map: Map<&str, u32> = Map::new();
        map.put("k", 7, 1);
        let loaded = map.lock().get("k").map(|e| e.loaded).expect("stored");
        let at = |d: Duration| loaded + d;
        assert_eq!(map.get_at("k", 7, at(REFRESH_AFTER / 2)), Some(1));
        assert_eq!(map.get_at("k", 8, at(REFRESH_AFTER / 2)), None, "another generation");
        assert_eq!(map.get_at("k", 7, at(REFRESH_AFTER)), None, "the first reader past the mark reloads");
        for _ in 0..3 {
            assert_eq!(map.get_at("k", 7, at(REFRESH_AFTER)), Some(1), "the others are served meanwhile");
        }
        assert_eq!(map.get_at("k", 7, at(MAX_AGE)), None, "never past the longest age");
        map.put("k", 7, 2);
        assert_eq!(map.get("k", 7), Some(2), "the reloaded value replaces it");
        let loaded = map.lock().get("k").map(|e| e.loaded).expect("stored");
        assert_eq!(map.get_at("k", 7, loaded + REFRESH_AFTER), None, "and is renewed in its turn");
    }
}
