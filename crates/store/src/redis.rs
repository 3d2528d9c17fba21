//! Sessions and rate-limit counters in Redis (`PORTCULLIS_REDIS_URL`), for
//! deployments that want them out of the SQL database. Users stay in SQL:
//! a session lookup reads the session here and its user there.
//!
//! Keys: `<prefix>session:<id>` (a hash, expiring at the session's end),
//! `<prefix>user-sessions:<user id>` (a set of session ids),
//! `<prefix>live-sessions` (every session id, scored by when it was last
//! seen, for counting the active ones), and `<prefix>rl:<key>:<window>` (a
//! counter that expires with its window).
//!
//! Redis and the SQL database share no transaction: the audit event of a
//! session's end (logout, revocation) is written to SQL right after the
//! session is removed here, and a failure to write it is an error.

use std::collections::HashMap;
use std::sync::Arc;

use async_trait::async_trait;
use redis::aio::ConnectionManager;

use portcullis_app::audit::AuditEvent;
use portcullis_app::overview::{DailyCount, OutboxHealth, UserCounts};
use portcullis_app::ports::{AuditStore, OverviewStore, RateLimitStore, SignIn, StoreResult};
use portcullis_app::{Session, SessionStore, SignedIn, StoreError, UserStore};

use crate::{Reach, SqlStore};

/// Sessions and counters on Redis.
#[derive(Clone)]
pub struct RedisStore {
    conn: ConnectionManager,
    sql: Arc<SqlStore>,
    prefix: String,
}

fn redis_err(e: redis::RedisError) -> StoreError {
    StoreError::Backend(format!("redis: {e}"))
}

impl RedisStore {
    /// Connects to `url`; keys start with `prefix` (e.g. `portcullis:`).
    /// Users and audit events stay in `sql`.
    pub async fn connect(url: &str, prefix: &str, sql: Arc<SqlStore>) -> Result<Self, String> {
        let client = redis::Client::open(url).map_err(|e| e.to_string())?;
        let mut conn = client.get_connection_manager().await.map_err(|e| e.to_string())?;
        redis::cmd("PING").query_async::<String>(&mut conn).await.map_err(|e| e.to_string())?;
        Ok(Self { conn, sql, prefix: prefix.to_owned() })
    }

    fn session_key(&self, id: &str) -> String {
        format!("{}session:{id}", self.prefix)
    }

    fn user_key(&self, user_id: i64) -> String {
        format!("{}user-sessions:{user_id}", self.prefix)
    }

    fn live_key(&self) -> String {
        format!("{}live-sessions", self.prefix)
    }

    async fn load(&self, id: &str) -> StoreResult<Option<Session>> {
        let mut conn = self.conn.clone();
        let map: HashMap<String, String> =
            redis::cmd("HGETALL").arg(self.session_key(id)).query_async(&mut conn).await.map_err(redis_err)?;
        if map.is_empty() {
            return Ok(None);
        }
        let text = |k: &str| map.get(k).cloned().unwrap_or_default();
        let num = |k: &str| map.get(k).and_then(|v| v.parse::<i64>().ok()).unwrap_or(0);
        let opt = |k: &str| map.get(k).filter(|v| !v.is_empty()).cloned();
        Ok(Some(Session {
            id: id.to_owned(),
            secret_hash: text("secret_hash"),
            user_id: num("user_id"),
            security_stamp: text("security_stamp"),
            created_at: num("created_at"),
            last_seen_at: num("last_seen_at"),
            expires_at: num("expires_at"),
            remember: num("remember") != 0,
            ip: opt("ip"),
            user_agent: opt("user_agent"),
        }))
    }

    async fn remove(&self, user_id: i64, ids: &[String]) -> StoreResult<u64> {
        if ids.is_empty() {
            return Ok(0);
        }
        let mut conn = self.conn.clone();
        let keys: Vec<String> = ids.iter().map(|id| self.session_key(id)).collect();
        let removed: u64 = redis::cmd("DEL").arg(&keys).query_async(&mut conn).await.map_err(redis_err)?;
        redis::pipe()
            .cmd("SREM")
            .arg(self.user_key(user_id))
            .arg(ids)
            .ignore()
            .cmd("ZREM")
            .arg(self.live_key())
            .arg(ids)
            .ignore()
            .query_async::<()>(&mut conn)
            .await
            .map_err(redis_err)?;
        Ok(removed)
    }

    async fn ids_of(&self, user_id: i64) -> StoreResult<Vec<String>> {
        let mut conn = self.conn.clone();
        redis::cmd("SMEMBERS").arg(self.user_key(user_id)).query_async(&mut conn).await.map_err(redis_err)
    }
}

#[async_trait]
impl SessionStore for RedisStore {
    async fn open_session(&self, session: &Session, login: &SignIn<'_>) -> StoreResult<()> {
        // No transaction spans Redis and SQL: the login is recorded first,
        // as a login with no session to show for it harms no one.
        self.sql.record_sign_in(session.user_id, session.created_at, login).await?;
        self.insert_session(session).await
    }

    async fn insert_session(&self, s: &Session) -> StoreResult<()> {
        let mut conn = self.conn.clone();
        let key = self.session_key(&s.id);
        let exists: bool = redis::cmd("EXISTS").arg(&key).query_async(&mut conn).await.map_err(redis_err)?;
        if exists {
            return Err(StoreError::Backend("session id already exists".into()));
        }
        redis::pipe()
            .atomic()
            .cmd("HSET")
            .arg(&key)
            .arg("secret_hash")
            .arg(&s.secret_hash)
            .arg("user_id")
            .arg(s.user_id)
            .arg("security_stamp")
            .arg(&s.security_stamp)
            .arg("created_at")
            .arg(s.created_at)
            .arg("last_seen_at")
            .arg(s.last_seen_at)
            .arg("expires_at")
            .arg(s.expires_at)
            .arg("remember")
            .arg(i64::from(s.remember))
            .arg("ip")
            .arg(s.ip.as_deref().unwrap_or(""))
            .arg("user_agent")
            .arg(s.user_agent.as_deref().unwrap_or(""))
            .ignore()
            .cmd("PEXPIREAT")
            .arg(&key)
            .arg(s.expires_at)
            .ignore()
            .cmd("SADD")
            .arg(self.user_key(s.user_id))
            .arg(&s.id)
            .ignore()
            .cmd("ZADD")
            .arg(self.live_key())
            .arg(s.last_seen_at)
            .arg(&s.id)
            .ignore()
            .query_async::<()>(&mut conn)
            .await
            .map_err(redis_err)
    }

    async fn session_with_user(&self, id: &str) -> StoreResult<Option<Arc<SignedIn>>> {
        let Some(session) = self.load(id).await? else { return Ok(None) };
        Ok(self.sql.user_by_id(session.user_id).await?.map(|user| Arc::new(SignedIn { session, user })))
    }

    async fn touch_session(&self, id: &str, seen: i64, now: i64) -> StoreResult<()> {
        // In one step: HSET on a key that expired meanwhile would bring it
        // back without a TTL, and a parallel request may have touched it.
        const TOUCH: &str = "local at = redis.call('HGET', KEYS[1], 'last_seen_at') \
            if at and tonumber(at) <= tonumber(ARGV[1]) then redis.call('HSET', KEYS[1], 'last_seen_at', ARGV[2]) \
            redis.call('ZADD', KEYS[2], ARGV[2], ARGV[3]) end \
            return 0";
        let mut conn = self.conn.clone();
        redis::cmd("EVAL")
            .arg(TOUCH)
            .arg(2)
            .arg(self.session_key(id))
            .arg(self.live_key())
            .arg(seen)
            .arg(now)
            .arg(id)
            .query_async::<()>(&mut conn)
            .await
            .map_err(redis_err)
    }

    async fn delete_session(&self, user_id: i64, id: &str, audit: Option<&AuditEvent>) -> StoreResult<bool> {
        let deleted = match self.load(id).await? {
            Some(s) if s.user_id == user_id => self.remove(user_id, &[id.to_owned()]).await? > 0,
            _ => false,
        };
        if deleted {
            self.sql.announce(Reach::User(user_id)).await?;
        }
        if let (true, Some(event)) = (deleted, audit) {
            self.sql.insert_audit(event).await?;
        }
        Ok(deleted)
    }

    async fn delete_user_sessions(
        &self,
        user_id: i64,
        except: Option<&str>,
        audit: Option<&AuditEvent>,
    ) -> StoreResult<u64> {
        let ids: Vec<String> =
            self.ids_of(user_id).await?.into_iter().filter(|id| Some(id.as_str()) != except).collect();
        let removed = self.remove(user_id, &ids).await?;
        if removed > 0 {
            self.sql.announce(Reach::User(user_id)).await?;
        }
        if let Some(event) = audit {
            self.sql.insert_audit(event).await?;
        }
        Ok(removed)
    }

    async fn user_sessions(&self, user_id: i64, now: i64) -> StoreResult<Vec<Session>> {
        let mut out = Vec::new();
        let mut gone = Vec::new();
        for id in self.ids_of(user_id).await? {
            match self.load(&id).await? {
                Some(s) if s.expires_at > now => out.push(s),
                Some(_) => {}
                None => gone.push(id),
            }
        }
        if !gone.is_empty() {
            let mut conn = self.conn.clone();
            redis::pipe()
                .cmd("SREM")
                .arg(self.user_key(user_id))
                .arg(&gone)
                .ignore()
                .cmd("ZREM")
                .arg(self.live_key())
                .arg(&gone)
                .ignore()
                .query_async::<()>(&mut conn)
                .await
                .map_err(redis_err)?;
        }
        out.sort_by(|a, b| b.created_at.cmp(&a.created_at).then_with(|| b.id.cmp(&a.id)));
        Ok(out)
    }

    async fn purge_sessions(&self, _now: i64, idle_cutoff: i64) -> StoreResult<u64> {
        // Redis drops each session at its end by itself (PEXPIREAT); idle
        // sessions are refused at lookup and deleted then. Sessions not seen
        // since the idle cutoff leave the count of live ones.
        let mut conn = self.conn.clone();
        redis::cmd("ZREMRANGEBYSCORE")
            .arg(self.live_key())
            .arg("-inf")
            .arg(idle_cutoff)
            .query_async::<()>(&mut conn)
            .await
            .map_err(redis_err)?;
        Ok(0)
    }
}

/// The overview's numbers from SQL, but the active sessions, which are here.
#[async_trait]
impl OverviewStore for RedisStore {
    async fn daily_events(&self, kinds: &[&str], since: i64) -> StoreResult<Vec<DailyCount>> {
        self.sql.daily_events(kinds, since).await
    }

    async fn user_counts(&self) -> StoreResult<UserCounts> {
        self.sql.user_counts().await
    }

    /// Sessions seen after `idle_cutoff`. One that reached its end within
    /// the idle timeout of its last use still counts until the purge after
    /// that timeout: the count is of the last idle timeout's sessions.
    async fn active_sessions(&self, _now: i64, idle_cutoff: i64) -> StoreResult<i64> {
        let mut conn = self.conn.clone();
        redis::cmd("ZCOUNT")
            .arg(self.live_key())
            .arg(format!("({idle_cutoff}"))
            .arg("+inf")
            .query_async(&mut conn)
            .await
            .map_err(redis_err)
    }

    async fn outbox_health(&self) -> StoreResult<OutboxHealth> {
        self.sql.outbox_health().await
    }
}

#[async_trait]
impl RateLimitStore for RedisStore {
    async fn hit(&self, key: &str, window_start: i64) -> StoreResult<i64> {
        let mut conn = self.conn.clone();
        let k = format!("{}rl:{key}:{window_start}", self.prefix);
        let (count,): (i64,) = redis::pipe()
            .atomic()
            .cmd("INCR")
            .arg(&k)
            .cmd("PEXPIREAT")
            .arg(&k)
            .arg(window_start + 120_000)
            .ignore()
            .query_async(&mut conn)
            .await
            .map_err(redis_err)?;
        Ok(count)
    }

    async fn purge_rate_limits(&self, _before: i64) -> StoreResult<u64> {
        // Counters expire by themselves.
        Ok(0)
    }
}
