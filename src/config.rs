//! Configuration: `PORTCULLIS_*` environment variables over an optional TOML
//! file (`PORTCULLIS_CONFIG`, default `./portcullis.toml` when present).
//! Every value is parsed and checked before anything starts; a bad one is
//! reported in one line naming the variable.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use ipnet::IpNet;
use portcullis_app::{Argon2Settings, AuthSettings};

/// A configuration value that cannot be used.
#[derive(Debug, thiserror::Error)]
#[error("{var}: {message}")]
pub struct ConfigError {
    /// The variable, e.g. `PORTCULLIS_BIND`.
    pub var: String,
    /// What is wrong with it.
    pub message: String,
}

fn err(var: &str, message: impl Into<String>) -> ConfigError {
    ConfigError { var: var.to_owned(), message: message.into() }
}

/// Everything Portcullis reads from its configuration.
#[derive(Clone, Debug)]
pub struct Config {
    /// Listen address.
    pub bind: SocketAddr,
    /// Where `/metrics` is served (unset: nowhere).
    pub metrics_bind: Option<SocketAddr>,
    /// Public URL.
    pub base_url: url::Url,
    /// Data directory (database, secret key, dev outbox).
    pub data_dir: PathBuf,
    /// `sqlite://…` or `postgres://…`.
    pub database_url: String,
    /// Connections in the database pool.
    pub database_max_connections: u32,
    /// `redis://…`: sessions and rate-limit counters live there.
    pub redis_url: Option<String>,
    /// Prefix of every Redis key (several sites can share one Redis).
    pub redis_prefix: String,
    /// HMAC key, when given; otherwise generated into the data dir.
    pub secret_key: Option<String>,
    /// SMTP URL; unset means the dev outbox.
    pub smtp_url: Option<String>,
    /// Sender address.
    pub mail_from: String,
    /// Account settings.
    pub auth: AuthSettings,
    /// Argon2id cost.
    pub argon2: Argon2Settings,
    /// Concurrent password hashes.
    pub hash_workers: usize,
    /// Password hashes allowed to wait.
    pub hash_queue: usize,
    /// Attempts per client IP per minute on the sensitive forms (0 = off).
    pub rate_limit_per_minute: u32,
    /// API requests per personal access token per minute (0: no limit).
    pub api_rate_limit_per_minute: u32,
    /// Proxies whose `X-Forwarded-For` is believed.
    pub trusted_proxies: Vec<IpNet>,
    /// Largest request body, in bytes.
    pub body_limit: usize,
    /// Longest a request may take, reading its body included.
    pub request_timeout: Duration,
    /// Longest a client may take to send a request's headers; also how long
    /// an idle keep-alive connection is kept.
    pub header_timeout: Duration,
    /// Open connections served at once; more are closed as soon as accepted.
    pub max_connections: usize,
    /// How long audit events are kept.
    pub audit_retention: Duration,
    /// Tracing filter.
    pub log: String,
    /// `pretty` or `json`.
    pub log_json: bool,
}

/// Where values come from: the environment, then the file.
pub struct Sources {
    env: BTreeMap<String, String>,
    file: BTreeMap<String, String>,
}

impl Sources {
    /// The process environment and the TOML file it points to.
    pub fn from_process() -> Result<Self, ConfigError> {
        let env: BTreeMap<String, String> = std::env::vars().filter(|(k, _)| k.starts_with("PORTCULLIS_")).collect();
        let (path, explicit) = match env.get("PORTCULLIS_CONFIG") {
            Some(p) => (PathBuf::from(p), true),
            None => (PathBuf::from("portcullis.toml"), false),
        };
        let file = if explicit || path.exists() { read_toml(&path)? } else { BTreeMap::new() };
        Ok(Self { env, file })
    }

    /// Explicit values (as environment variables would give them), no file.
    pub fn from_map(env: BTreeMap<String, String>) -> Self {
        Self { env, file: BTreeMap::new() }
    }

    fn get(&self, var: &str) -> Option<String> {
        self.env.get(var).cloned().or_else(|| self.file.get(var).cloned())
    }
}

/// Reads a TOML file of `key = value` lines; keys are the variable names in
/// lower case without the `PORTCULLIS_` prefix (`bind`, `lockout_threshold`).
fn read_toml(path: &Path) -> Result<BTreeMap<String, String>, ConfigError> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| err("PORTCULLIS_CONFIG", format!("cannot read {}: {e}", path.display())))?;
    let table: toml::Table = text
        .parse()
        .map_err(|e: toml::de::Error| err("PORTCULLIS_CONFIG", format!("{}: {}", path.display(), e.message())))?;
    let mut out = BTreeMap::new();
    for (k, v) in table {
        let value = match v {
            toml::Value::String(s) => s,
            toml::Value::Integer(i) => i.to_string(),
            toml::Value::Boolean(b) => b.to_string(),
            toml::Value::Float(f) => f.to_string(),
            toml::Value::Array(a) => a
                .iter()
                .map(|x| x.as_str().map(str::to_owned).unwrap_or_else(|| x.to_string()))
                .collect::<Vec<_>>()
                .join(","),
            other => {
                return Err(err("PORTCULLIS_CONFIG", format!("{k}: unsupported value {other}")));
            }
        };
        out.insert(format!("PORTCULLIS_{}", k.to_ascii_uppercase()), value);
    }
    Ok(out)
}

fn duration(src: &Sources, var: &str, default: &str) -> Result<Duration, ConfigError> {
    let raw = src.get(var).unwrap_or_else(|| default.to_owned());
    let d = humantime::parse_duration(raw.trim())
        .map_err(|e| err(var, format!("{raw:?} is not a duration like 90s, 15m, 2h or 30d ({e})")))?;
    if d.is_zero() {
        return Err(err(var, "must be longer than zero"));
    }
    Ok(d)
}

fn boolean(src: &Sources, var: &str, default: bool) -> Result<bool, ConfigError> {
    match src.get(var).map(|s| s.trim().to_ascii_lowercase()) {
        None => Ok(default),
        Some(v) => match v.as_str() {
            "1" | "true" | "yes" | "on" => Ok(true),
            "0" | "false" | "no" | "off" => Ok(false),
            _ => Err(err(var, format!("{v:?} is neither true nor false"))),
        },
    }
}

/// `PORTCULLIS_TOTP_ISSUER`: a name for authenticator apps, without a colon.
fn totp_issuer(src: &Sources) -> Result<String, ConfigError> {
    let issuer = src.get("PORTCULLIS_TOTP_ISSUER").unwrap_or_else(|| "Portcullis".into()).trim().to_owned();
    if issuer.is_empty() || issuer.contains(':') || issuer.chars().count() > 64 {
        return Err(err("PORTCULLIS_TOTP_ISSUER", format!("{issuer:?} must be 1–64 characters without a colon")));
    }
    Ok(issuer)
}

fn number<T>(src: &Sources, var: &str, default: T, min: T, max: T) -> Result<T, ConfigError>
where
    T: std::str::FromStr + PartialOrd + std::fmt::Display + Copy,
{
    let Some(raw) = src.get(var) else {
        return Ok(default);
    };
    let n: T = raw.trim().parse().map_err(|_| err(var, format!("{raw:?} is not a whole number")))?;
    if n < min || n > max {
        return Err(err(var, format!("{n} is out of range ({min}–{max})")));
    }
    Ok(n)
}

/// Connections served at once unless configured: 4096, or fewer when the
/// process may not open that many files, keeping 256 descriptors for the
/// database pool, the data files, mail and the listener.
pub fn default_max_connections() -> usize {
    const PREFERRED: usize = 4096;
    const RESERVED: u64 = 256;
    #[cfg(unix)]
    {
        let limit = rustix::process::getrlimit(rustix::process::Resource::Nofile);
        if let Some(files) = limit.current {
            let room = usize::try_from(files.saturating_sub(RESERVED)).unwrap_or(PREFERRED);
            return room.clamp(16, PREFERRED);
        }
    }
    PREFERRED
}

impl Config {
    /// Parses and checks every value.
    pub fn load(src: &Sources) -> Result<Self, ConfigError> {
        let bind_raw = src.get("PORTCULLIS_BIND").unwrap_or_else(|| "127.0.0.1:8080".into());
        let bind = bind_raw
            .trim()
            .parse()
            .map_err(|_| err("PORTCULLIS_BIND", format!("{bind_raw:?} is not an address like 127.0.0.1:8080")))?;

        let metrics_bind = match src.get("PORTCULLIS_METRICS_BIND") {
            None => None,
            Some(raw) if raw.trim().is_empty() => None,
            Some(raw) => Some(raw.trim().parse().map_err(|_| {
                err("PORTCULLIS_METRICS_BIND", format!("{raw:?} is not an address like 127.0.0.1:9090"))
            })?),
        };

        let base_raw = src.get("PORTCULLIS_BASE_URL").unwrap_or_else(|| "http://127.0.0.1:8080".into());
        let base_url =
            url::Url::parse(base_raw.trim()).map_err(|e| err("PORTCULLIS_BASE_URL", format!("{base_raw:?}: {e}")))?;
        if !matches!(base_url.scheme(), "http" | "https") || base_url.host_str().is_none() {
            return Err(err("PORTCULLIS_BASE_URL", format!("{base_raw:?} must be an http:// or https:// URL")));
        }

        let data_dir = PathBuf::from(src.get("PORTCULLIS_DATA_DIR").unwrap_or_else(|| "./portcullis-data".into()));
        let database_url = match src.get("PORTCULLIS_DATABASE_URL") {
            Some(u) => {
                let u = u.trim().to_owned();
                portcullis_store::Backend::from_url(&u).map_err(|e| err("PORTCULLIS_DATABASE_URL", e.to_string()))?;
                u
            }
            None => format!("sqlite://{}", data_dir.join("portcullis.db").display()),
        };
        let redis_url = src.get("PORTCULLIS_REDIS_URL").filter(|s| !s.trim().is_empty());
        if let Some(r) = &redis_url
            && !(r.starts_with("redis://") || r.starts_with("rediss://"))
        {
            return Err(err("PORTCULLIS_REDIS_URL", "must start with redis:// or rediss://"));
        }
        let secret_key = src.get("PORTCULLIS_SECRET_KEY").filter(|s| !s.is_empty());
        if let Some(k) = &secret_key
            && k.len() < 32
        {
            return Err(err("PORTCULLIS_SECRET_KEY", "must be at least 32 characters (e.g. `openssl rand -hex 32`)"));
        }
        let smtp_url = src.get("PORTCULLIS_SMTP_URL").filter(|s| !s.trim().is_empty());
        if let Some(s) = &smtp_url {
            let scheme = s.split_once("://").map(|(a, _)| a).unwrap_or("");
            if !matches!(scheme, "smtp" | "smtps") {
                return Err(err("PORTCULLIS_SMTP_URL", "must be smtp://host:port or smtps://host:port"));
            }
            if let Err(e) = lettre::AsyncSmtpTransport::<lettre::Tokio1Executor>::from_url(s) {
                return Err(err("PORTCULLIS_SMTP_URL", e.to_string()));
            }
        }
        let mail_from = src.get("PORTCULLIS_MAIL_FROM").unwrap_or_else(|| "Portcullis <no-reply@localhost>".into());
        if mail_from.parse::<lettre::message::Mailbox>().is_err() {
            return Err(err("PORTCULLIS_MAIL_FROM", format!("{mail_from:?} is not an address like Name <user@host>")));
        }

        let auth = AuthSettings {
            min_password_length: number(src, "PORTCULLIS_MIN_PASSWORD_LENGTH", 8usize, 1, 256)?,
            lockout_threshold: number(src, "PORTCULLIS_LOCKOUT_THRESHOLD", 5u32, 1, 1000)?,
            lockout_duration: duration(src, "PORTCULLIS_LOCKOUT_DURATION", "15m")?,
            session_idle_timeout: duration(src, "PORTCULLIS_SESSION_IDLE_TIMEOUT", "2h")?,
            session_absolute_timeout: duration(src, "PORTCULLIS_SESSION_ABSOLUTE_TIMEOUT", "24h")?,
            remember_duration: duration(src, "PORTCULLIS_REMEMBER_DURATION", "30d")?,
            reset_token_ttl: duration(src, "PORTCULLIS_RESET_TOKEN_TTL", "1h")?,
            verify_token_ttl: duration(src, "PORTCULLIS_VERIFY_TOKEN_TTL", "48h")?,
            base_url: base_url.as_str().trim_end_matches('/').to_owned(),
            new_device_mail: boolean(src, "PORTCULLIS_NEW_DEVICE_MAIL", true)?,
            mail_per_hour: number(src, "PORTCULLIS_MAIL_RATE_LIMIT_PER_HOUR", 3u32, 0, 10_000)?,
            totp_issuer: totp_issuer(src)?,
            require_two_factor_for_admins: boolean(src, "PORTCULLIS_REQUIRE_2FA_FOR_ADMINS", false)?,
        };
        let argon2 = Argon2Settings {
            memory_kib: number(src, "PORTCULLIS_ARGON2_MEMORY_KIB", 19_456u32, 8, 4 * 1024 * 1024)?,
            iterations: number(src, "PORTCULLIS_ARGON2_ITERATIONS", 2u32, 1, 100)?,
            parallelism: number(src, "PORTCULLIS_ARGON2_PARALLELISM", 1u32, 1, 64)?,
        };
        if argon2.memory_kib < 8 * argon2.parallelism {
            return Err(err("PORTCULLIS_ARGON2_MEMORY_KIB", "must be at least 8 × PORTCULLIS_ARGON2_PARALLELISM"));
        }
        let (workers, queue) = portcullis_app::HashPool::default_sizes();
        let trusted_proxies = src
            .get("PORTCULLIS_TRUSTED_PROXIES")
            .unwrap_or_default()
            .split(|c: char| c == ',' || c.is_whitespace())
            .filter(|s| !s.is_empty())
            .map(|s| {
                s.parse::<IpNet>().or_else(|_| s.parse::<std::net::IpAddr>().map(IpNet::from)).map_err(|_| {
                    err("PORTCULLIS_TRUSTED_PROXIES", format!("{s:?} is not a CIDR like 10.0.0.0/8 or an IP address"))
                })
            })
            .collect::<Result<Vec<_>, _>>()?;
        let log_format = src.get("PORTCULLIS_LOG_FORMAT").unwrap_or_else(|| "pretty".into());
        let log_json = match log_format.trim() {
            "pretty" => false,
            "json" => true,
            other => {
                return Err(err("PORTCULLIS_LOG_FORMAT", format!("{other:?} is neither pretty nor json")));
            }
        };
        let log = src.get("PORTCULLIS_LOG").unwrap_or_else(|| "info".into());
        tracing_subscriber::EnvFilter::try_new(&log).map_err(|e| err("PORTCULLIS_LOG", e.to_string()))?;

        Ok(Self {
            bind,
            metrics_bind,
            base_url,
            data_dir,
            database_url,
            database_max_connections: number(src, "PORTCULLIS_DATABASE_MAX_CONNECTIONS", 16u32, 1, 1000)?,
            redis_url,
            redis_prefix: src.get("PORTCULLIS_REDIS_PREFIX").unwrap_or_else(|| "portcullis:".into()),
            secret_key,
            smtp_url,
            mail_from,
            auth,
            argon2,
            hash_workers: number(src, "PORTCULLIS_HASH_WORKERS", workers, 1, 1024)?,
            hash_queue: number(src, "PORTCULLIS_HASH_QUEUE", queue, 0, 100_000)?,
            rate_limit_per_minute: number(src, "PORTCULLIS_RATE_LIMIT_PER_MINUTE", 20u32, 0, 1_000_000)?,
            api_rate_limit_per_minute: number(src, "PORTCULLIS_API_RATE_LIMIT_PER_MINUTE", 600u32, 0, 10_000_000)?,
            trusted_proxies,
            body_limit: number(src, "PORTCULLIS_BODY_LIMIT", 64 * 1024usize, 1024, 64 * 1024 * 1024)?,
            request_timeout: duration(src, "PORTCULLIS_REQUEST_TIMEOUT", "30s")?,
            header_timeout: duration(src, "PORTCULLIS_HEADER_TIMEOUT", "10s")?,
            max_connections: number(src, "PORTCULLIS_MAX_CONNECTIONS", default_max_connections(), 1, 1_000_000)?,
            audit_retention: duration(src, "PORTCULLIS_AUDIT_RETENTION", "90d")?,
            log,
            log_json,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn load(pairs: &[(&str, &str)]) -> Result<Config, ConfigError> {
        let map = pairs.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect();
        Config::load(&Sources::from_map(map))
    }

    #[test]
    fn defaults_follow_the_contract() {
        let c = load(&[]).expect("defaults load");
        assert_eq!(c.bind.to_string(), "127.0.0.1:8080");
        assert_eq!(c.auth.lockout_threshold, 5);
        assert_eq!(c.auth.lockout_duration, Duration::from_secs(900));
        assert_eq!(c.auth.remember_duration, Duration::from_secs(30 * 86400));
        assert_eq!(c.argon2, Argon2Settings { memory_kib: 19_456, iterations: 2, parallelism: 1 });
        assert!(c.database_url.starts_with("sqlite://") && c.database_url.ends_with("portcullis.db"));
        assert_eq!(c.rate_limit_per_minute, 20);
        assert_eq!(c.header_timeout, Duration::from_secs(10));
        assert!((16..=4096).contains(&c.max_connections), "{}", c.max_connections);
        assert_eq!(c.auth.mail_per_hour, 3);
        let c = load(&[("PORTCULLIS_MAIL_RATE_LIMIT_PER_HOUR", "0")]).expect("loads");
        assert_eq!(c.auth.mail_per_hour, 0, "0 turns the mail limit off");
    }

    #[test]
    fn two_factor_settings_default_and_parse() {
        let c = load(&[]).expect("defaults load");
        assert_eq!((c.auth.totp_issuer.as_str(), c.auth.require_two_factor_for_admins), ("Portcullis", false));
        let c = load(&[("PORTCULLIS_TOTP_ISSUER", "Acme Corp"), ("PORTCULLIS_REQUIRE_2FA_FOR_ADMINS", "true")])
            .expect("loads");
        assert_eq!((c.auth.totp_issuer.as_str(), c.auth.require_two_factor_for_admins), ("Acme Corp", true));
    }

    #[test]
    fn connection_limits_parse() {
        let c = load(&[("PORTCULLIS_HEADER_TIMEOUT", "3s"), ("PORTCULLIS_MAX_CONNECTIONS", "250")]).expect("loads");
        assert_eq!(c.header_timeout, Duration::from_secs(3));
        assert_eq!(c.max_connections, 250);
    }

    #[test]
    fn bad_values_name_their_variable() {
        for (var, value) in [
            ("PORTCULLIS_SESSION_IDLE_TIMEOUT", "soon"),
            ("PORTCULLIS_DATABASE_URL", "mysql://x/y"),
            ("PORTCULLIS_BIND", "nowhere"),
            ("PORTCULLIS_BASE_URL", "ftp://x"),
            ("PORTCULLIS_LOCKOUT_THRESHOLD", "-1"),
            ("PORTCULLIS_TRUSTED_PROXIES", "10.0.0.0/99"),
            ("PORTCULLIS_LOG_FORMAT", "xml"),
            ("PORTCULLIS_SECRET_KEY", "short"),
            ("PORTCULLIS_SMTP_URL", "http://mail"),
            ("PORTCULLIS_HEADER_TIMEOUT", "0s"),
            ("PORTCULLIS_HEADER_TIMEOUT", "later"),
            ("PORTCULLIS_MAX_CONNECTIONS", "0"),
            ("PORTCULLIS_MAX_CONNECTIONS", "many"),
            ("PORTCULLIS_MAIL_RATE_LIMIT_PER_HOUR", "lots"),
            ("PORTCULLIS_TOTP_ISSUER", "Acme: Inc"),
            ("PORTCULLIS_TOTP_ISSUER", " "),
            ("PORTCULLIS_REQUIRE_2FA_FOR_ADMINS", "maybe"),
        ] {
            let e = load(&[(var, value)]).expect_err(var);
            assert_eq!(e.var, var);
            assert!(e.to_string().starts_with(&format!("{var}: ")), "{e}");
        }
    }

    #[test]
    fn durations_and_lists_parse() {
        let c = load(&[
            ("PORTCULLIS_SESSION_IDLE_TIMEOUT", "90s"),
            ("PORTCULLIS_TRUSTED_PROXIES", "10.0.0.0/8, 127.0.0.1"),
        ])
        .expect("loads");
        assert_eq!(c.auth.session_idle_timeout, Duration::from_secs(90));
        assert_eq!(c.trusted_proxies.len(), 2);
    }
}
