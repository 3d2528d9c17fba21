//! Wiring: configuration → store → use cases → router → a listening server.

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use portcullis_app::SystemClock;
use portcullis_app::accounts::{AccountPorts, Passkeys};
use portcullis_app::audit::Audit;
use portcullis_app::limits::RateLimiter;
use portcullis_app::mail::{MailTransport, Mailer, OutboxWorker, Sealer};
use portcullis_app::ports::RateLimitStore;
use portcullis_app::{Accounts, Clock, HashPool, OutboxStore, PostStore, Posts, SessionStore};
use portcullis_store::redis::RedisStore;
use portcullis_web::mail::MailTemplates;
use tokio::sync::Notify;

use crate::mail::{DirMailer, SmtpMailer};
use portcullis_store::cache::CachedStore;
use portcullis_store::{Backend, SqlStore};
use portcullis_web::{AppState, WebConfig};
use tokio::net::TcpListener;

use crate::config::{Config, ConfigError};

/// Why start-up failed; each names the variable to fix when there is one.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// A configuration value.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// Anything else, with context.
    #[error("{0}")]
    Other(String),
}

/// Everything a running node holds.
#[derive(Clone)]
pub struct Services {
    /// The store.
    pub store: SqlStore,
    /// Account use cases.
    pub accounts: Accounts,
    /// Post use cases.
    pub posts: Posts,
    /// Personal access tokens.
    pub tokens: portcullis_app::access_tokens::AccessTokens,
    /// Passkey use cases.
    pub passkeys: Passkeys,
    /// Rate limits.
    pub limiter: RateLimiter,
    /// The security log.
    pub audit: Audit,
    /// HMAC key.
    pub secret_key: Vec<u8>,
    /// Seals outbox bodies.
    pub sealer: Sealer,
    /// Wakes the outbox worker.
    pub wake: Arc<Notify>,
    /// Where mail goes.
    pub transport: Arc<dyn MailTransport>,
    /// What every timeout, lifetime and window is measured on.
    pub clock: Arc<dyn Clock>,
    /// The administrators' overview.
    pub overview: portcullis_app::overview::Overview,
    /// The metrics recorder, when `PORTCULLIS_METRICS_BIND` is set.
    pub metrics: Option<crate::metrics::Exporter>,
}

/// SMTP when configured, else the dev outbox in the data dir.
fn mail_transport(config: &Config) -> Result<Arc<dyn MailTransport>, StartError> {
    let from: lettre::message::Mailbox = config
        .mail_from
        .parse()
        .map_err(|e| StartError::Config(ConfigError { var: "PORTCULLIS_MAIL_FROM".into(), message: format!("{e}") }))?;
    match &config.smtp_url {
        Some(url) => {
            let t = SmtpMailer::new(url, from)
                .map_err(|e| StartError::Config(ConfigError { var: "PORTCULLIS_SMTP_URL".into(), message: e }))?;
            Ok(Arc::new(t))
        }
        None => {
            let dir = config.data_dir.join("outbox");
            let t = DirMailer::new(dir.clone(), from)
                .map_err(|e| StartError::Other(format!("cannot create {}: {e}", dir.display())))?;
            Ok(Arc::new(t))
        }
    }
}

/// A node's background work: the purger, the outbox worker, the listening.
pub struct Background {
    purger: tokio::task::JoinHandle<()>,
    /// On PostgreSQL, the listening for other nodes' changes (for the read cache).
    follower: Option<tokio::task::JoinHandle<()>>,
    ceremonies: tokio::task::JoinHandle<()>,
    worker: tokio::task::JoinHandle<()>,
    stop: tokio::sync::watch::Sender<bool>,
    store: SqlStore,
}

impl Background {
    /// Stops: the worker finishes the mail it is sending (for at most 20 s).
    pub async fn shutdown(self) {
        self.purger.abort();
        if let Some(follower) = &self.follower {
            follower.abort();
            // The other nodes stop waiting for this one's answers.
            self.store.leave().await;
        }
        self.ceremonies.abort();
        let _ = self.stop.send(true);
        let mut worker = self.worker;
        if tokio::time::timeout(Duration::from_secs(20), &mut worker).await.is_err() {
            worker.abort();
        }
    }
}

/// Starts the background work of a node: the session purger, the outbox
/// worker and, on PostgreSQL, the listening for other nodes' changes.
pub fn start_background(services: &Services) -> Background {
    let store: Arc<dyn OutboxStore> = Arc::new(services.store.clone());
    let worker = OutboxWorker::new(
        store,
        services.transport.clone(),
        services.sealer.clone(),
        services.wake.clone(),
        Duration::from_secs(1),
        services.clock.clone(),
    );
    let (stop, stopped) = tokio::sync::watch::channel(false);
    Background {
        purger: spawn_purger(services.accounts.clone(), services.limiter.clone(), services.audit.clone()),
        follower: services.store.follow_changes(),
        ceremonies: spawn_ceremony_purger(services.passkeys.clone()),
        worker: tokio::spawn(worker.run(stopped)),
        stop,
        store: services.store.clone(),
    }
}

/// Reads the secret key from configuration or the data dir, generating it
/// (mode 0600) on first start.
fn load_secret(config: &Config) -> Result<Vec<u8>, StartError> {
    if let Some(k) = &config.secret_key {
        return Ok(k.as_bytes().to_vec());
    }
    let path = config.data_dir.join("secret.key");
    match std::fs::read_to_string(&path) {
        Ok(s) if s.trim().len() >= 32 => Ok(s.trim().as_bytes().to_vec()),
        Ok(_) => Err(StartError::Other(format!("{} is too short; delete it to generate a new one", path.display()))),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let key = hex::encode(rand::random::<[u8; 32]>());
            write_private(&path, &key)
                .map_err(|e| StartError::Other(format!("cannot write {}: {e}", path.display())))?;
            tracing::info!(path = %path.display(), "generated a new secret key");
            Ok(key.into_bytes())
        }
        Err(e) => Err(StartError::Other(format!("cannot read {}: {e}", path.display()))),
    }
}

fn write_private(path: &Path, contents: &str) -> std::io::Result<()> {
    use std::io::Write as _;
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt as _;
        opts.mode(0o600);
    }
    let mut f = opts.open(path)?;
    f.write_all(contents.as_bytes())?;
    f.sync_all()
}

/// Opens the data dir and the store, applies migrations, and builds the use
/// cases on the system clock.
pub async fn open(config: &Config) -> Result<Services, StartError> {
    open_with_clock(config, Arc::new(SystemClock)).await
}

/// [`open`], with the use cases reading the time from `clock`.
pub async fn open_with_clock(config: &Config, clock: Arc<dyn Clock>) -> Result<Services, StartError> {
    crate::files::private_by_default();
    crate::files::warn_if_loose(&config.data_dir, &config.database_url);
    std::fs::create_dir_all(&config.data_dir).map_err(|e| {
        StartError::Config(ConfigError {
            var: "PORTCULLIS_DATA_DIR".into(),
            message: format!("cannot create {}: {e}", config.data_dir.display()),
        })
    })?;
    let secret_key = load_secret(config)?;
    let store =
        SqlStore::connect(&config.database_url, config.database_max_connections).await.map_err(|e| ConfigError {
            var: "PORTCULLIS_DATABASE_URL".into(),
            message: format!("cannot open {}: {e}", portcullis_store::redact(&config.database_url)),
        })?;
    let applied = store.apply_migrations().await.map_err(|e| StartError::Other(e.to_string()))?;
    match applied.as_slice() {
        [] => tracing::info!("no migrations pending"),
        names => tracing::info!("applied {} migration(s): {}", names.len(), names.join(", ")),
    }
    let hasher = Arc::new(
        HashPool::new(config.argon2, config.hash_workers, config.hash_queue)
            .map_err(|e| StartError::Other(e.to_string()))?,
    );
    let shared = Arc::new(store.clone());
    let renderer = Arc::new(MailTemplates);
    let sealer = Sealer::new(&secret_key);
    let wake = Arc::new(Notify::new());
    let mailer = Mailer::new(renderer, sealer.clone(), wake.clone());
    // Sessions and rate-limit counters: in Redis when configured, else in SQL.
    let mut redis: Option<Arc<RedisStore>> = None;
    let (sessions, counters): (Arc<dyn SessionStore>, Arc<dyn RateLimitStore>) = match &config.redis_url {
        Some(url) => {
            let connected = RedisStore::connect(url, &config.redis_prefix, shared.clone()).await.map_err(|e| {
                StartError::Config(ConfigError {
                    var: "PORTCULLIS_REDIS_URL".into(),
                    message: format!("cannot connect to {}: {e}", portcullis_store::redact(url)),
                })
            })?;
            let kept = Arc::new(connected);
            redis = Some(kept.clone());
            (kept.clone(), kept)
        }
        None => (shared.clone(), shared.clone()),
    };
    // The overview counts active sessions where they are kept.
    let overview_store: Arc<dyn portcullis_app::ports::OverviewStore> = match &redis {
        Some(r) => r.clone(),
        None => shared.clone(),
    };
    let mut ports = AccountPorts {
        users: shared.clone(),
        sessions,
        throttle: shared.clone(),
        tokens: shared.clone(),
        audit: shared.clone(),
        two_factor: shared.clone(),
    };
    let mut post_store: Arc<dyn PostStore> = shared.clone();
    // Sessions and post lists are read from memory (see
    // `portcullis_store::cache`): on SQLite, other processes' changes are
    // found through the file; on PostgreSQL, every node hears the others'
    // as notices (once `start_background` listens), and sessions kept in
    // Redis announce their changes the same way. Only SQLite with Redis is
    // not cached: a change another process made in Redis leaves no trace
    // in the file.
    let cached = match (store.backend(), &redis) {
        (Backend::Sqlite, None) => Some(CachedStore::new(shared.clone())),
        (Backend::Postgres, None) => Some(CachedStore::new(shared.clone())),
        (Backend::Postgres, Some(redis)) => Some(CachedStore::with_sessions(shared.clone(), redis.clone())),
        (Backend::Sqlite, Some(_)) => None,
    };
    let mut token_store: Arc<dyn portcullis_app::ports::AccessTokenStore> = shared.clone();
    if let Some(cached) = cached {
        ports.sessions = cached.clone();
        token_store = cached.clone();
        post_store = cached;
    }
    let accounts = Accounts::new(ports, mailer, hasher, config.auth.clone(), clock.clone());
    let posts = Posts::new(post_store, clock.clone());
    let tokens = portcullis_app::access_tokens::AccessTokens::new(
        token_store,
        shared.clone(),
        counters.clone(),
        clock.clone(),
        config.rate_limit_per_minute,
        config.api_rate_limit_per_minute,
    );
    let passkeys = Passkeys::new(accounts.clone(), shared.clone());
    let limiter = RateLimiter::new(counters, config.rate_limit_per_minute, clock.clone());
    let overview =
        portcullis_app::overview::Overview::new(overview_store, clock.clone(), config.auth.session_idle_timeout);
    let audit = Audit::new(shared, config.audit_retention, clock.clone());
    let transport = mail_transport(config)?;
    let metrics = config.metrics_bind.map(|_| crate::metrics::Exporter::new()).transpose()?;
    Ok(Services {
        store,
        accounts,
        posts,
        tokens,
        passkeys,
        limiter,
        audit,
        secret_key,
        sealer,
        wake,
        transport,
        clock,
        overview,
        metrics,
    })
}

/// The HTTP state for these services.
pub fn web_state(config: &Config, services: &Services) -> Result<AppState, StartError> {
    let web = WebConfig {
        base_url: config.base_url.clone(),
        secret_key: services.secret_key.clone(),
        body_limit: config.body_limit,
        request_timeout: config.request_timeout,
        header_timeout: config.header_timeout,
        max_connections: config.max_connections,
        trusted_proxies: config.trusted_proxies.clone(),
    };
    let state = AppState::new(
        services.accounts.clone(),
        services.posts.clone(),
        services.tokens.clone(),
        services.passkeys.clone(),
        services.limiter.clone(),
        services.audit.clone(),
        web,
    );
    let state =
        state.with_operations(services.overview.clone(), services.metrics.as_ref().map(crate::metrics::Exporter::http));
    // Several nodes on PostgreSQL each cache what the others write.
    Ok(match services.store.backend() {
        Backend::Postgres => state.with_settle(Arc::new(services.store.clone())),
        Backend::Sqlite => state,
    })
}

/// Deletes expired sessions, finished rate-limit windows and old audit
/// events now and then.
pub fn spawn_purger(accounts: Accounts, limiter: RateLimiter, audit: Audit) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let every =
            (accounts.settings().session_idle_timeout / 2).clamp(Duration::from_secs(1), Duration::from_secs(300));
        let mut tick = tokio::time::interval(every);
        loop {
            tick.tick().await;
            match accounts.purge_expired_sessions().await {
                Ok(0) => {}
                Ok(n) => tracing::debug!(sessions = n, "purged expired sessions"),
                Err(e) => tracing::warn!(error = %e, "session purge failed"),
            }
            if let Err(e) = limiter.purge().await {
                tracing::warn!(error = %e, "rate-limit purge failed");
            }
            if let Err(e) = audit.purge().await {
                tracing::warn!(error = %e, "audit purge failed");
            }
            if let Err(e) = accounts.purge_pending_sign_ins().await {
                tracing::warn!(error = %e, "pending sign-in purge failed");
            }
            if let Err(e) = accounts.purge_stale_attempts().await {
                tracing::warn!(error = %e, "attempt counter purge failed");
            }
        }
    })
}

/// Deletes passkey ceremonies past their time now and then.
pub fn spawn_ceremony_purger(passkeys: Passkeys) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(Duration::from_secs(300));
        loop {
            tick.tick().await;
            if let Err(e) = passkeys.purge().await {
                tracing::warn!(error = %e, "passkey ceremony purge failed");
            }
        }
    })
}

/// Binds the listener, failing with the variable named.
pub async fn bind(addr: SocketAddr) -> Result<TcpListener, StartError> {
    TcpListener::bind(addr).await.map_err(|e| {
        StartError::Config(ConfigError {
            var: "PORTCULLIS_BIND".into(),
            message: format!("cannot listen on {addr}: {e}"),
        })
    })
}

/// Binds the metrics listener when `PORTCULLIS_METRICS_BIND` is set and
/// serves `/metrics` on it until `shutdown` completes; its address.
pub async fn start_metrics(
    config: &Config,
    services: &Services,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> Result<Option<SocketAddr>, StartError> {
    let (Some(addr), Some(exporter)) = (config.metrics_bind, services.metrics.clone()) else { return Ok(None) };
    let listener = crate::metrics::bind(addr).await?;
    let local = listener.local_addr().map_err(|e| StartError::Other(e.to_string()))?;
    let upkeep = exporter.spawn_upkeep();
    let services = services.clone();
    tokio::spawn(async move {
        if let Err(e) = crate::metrics::serve(listener, exporter, services, shutdown).await {
            tracing::error!(error = %e, "the metrics listener stopped");
        }
        upkeep.abort();
    });
    Ok(Some(local))
}

/// Serves until `shutdown` completes; in-flight requests finish. The
/// connection limits are in `crate::listen`.
pub async fn serve(
    listener: TcpListener,
    state: AppState,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    crate::listen::serve(listener, state, shutdown).await
}

/// Completes on SIGINT or SIGTERM.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {},
        () = term => {},
    }
    tracing::info!("shutting down: finishing in-flight requests");
}
