//! Personal access tokens: minting one (shown once, stored hashed),
//! listing and revoking them, and resolving a bearer token on an API
//! request under the limits every check of a secret goes through.

use std::net::IpAddr;
use std::sync::Arc;

use portcullis_domain::access_token::{self, ID_LEN, SECRET_LEN};
use portcullis_domain::{Actor, Scope};
use rand::Rng as _;

use crate::audit::Origin;
use crate::clock::Clock;
use crate::error::{AppError, FieldErrors};
use crate::limits::client_key;
use crate::model::User;
use crate::ports::{AccessTokenStore, LoginThrottle, RateLimitStore};
use crate::tokens;

/// A use is written down at most this often per token (unless from a new address).
pub const TOUCH_EVERY_MS: i64 = 60_000;
/// Lifetimes a token may be given, in days; 0 is "never expires".
pub const EXPIRY_CHOICES: [i64; 4] = [30, 90, 365, 0];
const DAY_MS: i64 = 86_400_000;
const MINUTE_MS: i64 = 60_000;

/// A stored token (never its secret).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AccessToken {
    /// Public part, looked up by.
    pub id: String,
    /// Hex SHA-256 of the secret.
    pub secret_hash: String,
    /// Whose.
    pub user_id: i64,
    /// The owner's label.
    pub name: String,
    /// What it may do.
    pub scope: Scope,
    /// Unix ms.
    pub created_at: i64,
    /// Unix ms; `None`: never.
    pub expires_at: Option<i64>,
    /// Unix ms of the last noted use.
    pub last_used_at: Option<i64>,
    /// Address of the last noted use.
    pub last_used_ip: Option<String>,
}

impl AccessToken {
    /// Whether it has expired at `now`.
    pub fn expired(&self, now: i64) -> bool {
        self.expires_at.is_some_and(|t| now >= t)
    }
}

/// A bearer token that was accepted.
#[derive(Clone, Debug)]
pub struct Authenticated {
    /// The token's user, as stored now.
    pub user: User,
    /// The token.
    pub token: AccessToken,
    /// The per-token allowance this minute.
    pub limit: RateWindow,
}

impl Authenticated {
    /// The user acting: with an admin's powers only on an `admin` token.
    pub fn actor(&self) -> Actor {
        Actor { user_id: self.user.id, is_admin: self.token.scope.acts_as_admin(self.user.is_admin) }
    }
}

/// Where a client stands in the per-token window.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RateWindow {
    /// Requests allowed per minute (0: unlimited).
    pub limit: u32,
    /// Left this minute.
    pub remaining: u32,
    /// Seconds until the window starts again.
    pub reset: u64,
}

/// Why a bearer token was not accepted.
#[derive(Debug)]
pub enum Refusal {
    /// Missing, malformed, unknown, wrong secret, expired, revoked, or its
    /// user locked: all alike to the caller.
    Unauthorized,
    /// Too many bad tokens from this client, or too many requests on this
    /// token: wait this many seconds.
    TooMany(u64, Option<RateWindow>),
    /// Something else went wrong.
    App(AppError),
}

impl From<AppError> for Refusal {
    fn from(e: AppError) -> Self {
        Refusal::App(e)
    }
}

impl From<crate::error::StoreError> for Refusal {
    fn from(e: crate::error::StoreError) -> Self {
        Refusal::App(e.into())
    }
}

/// The token use cases.
#[derive(Clone)]
pub struct AccessTokens {
    store: Arc<dyn AccessTokenStore>,
    throttle: Arc<dyn LoginThrottle>,
    counters: Arc<dyn RateLimitStore>,
    clock: Arc<dyn Clock>,
    /// Bad tokens per client per minute (0: no limit).
    bad_per_minute: u32,
    /// Requests per token per minute (0: no limit).
    per_token_per_minute: u32,
}

fn random_base62(n: usize) -> String {
    let mut rng = rand::rngs::OsRng;
    // 62 * 4 = 248: bytes below it map evenly onto base62.
    let mut out = String::with_capacity(n);
    while out.len() < n {
        let b: u8 = rng.r#gen();
        if b < 248 {
            out.push(access_token::base62_char(b));
        }
    }
    out
}

impl AccessTokens {
    /// Wires the use cases; `bad_per_minute` bad tokens per client and
    /// `per_token_per_minute` requests per token are allowed each minute.
    pub fn new(
        store: Arc<dyn AccessTokenStore>,
        throttle: Arc<dyn LoginThrottle>,
        counters: Arc<dyn RateLimitStore>,
        clock: Arc<dyn Clock>,
        bad_per_minute: u32,
        per_token_per_minute: u32,
    ) -> Self {
        Self { store, throttle, counters, clock, bad_per_minute, per_token_per_minute }
    }

    /// Creates a token for `user`; answers it with the value shown once.
    /// Fields: `name` (1–100 characters), `scope` (`admin` only for an
    /// admin), `expires_in_days` (30, 90, 365 or 0 for never).
    pub async fn create(
        &self,
        user: &User,
        name: &str,
        scope: &str,
        expires_in_days: &str,
        origin: &Origin,
    ) -> Result<(AccessToken, String), AppError> {
        let mut errors = FieldErrors::default();
        let name = name.trim();
        if name.is_empty() || name.chars().count() > 100 {
            errors.add("name", "Name must be 1 to 100 characters");
        }
        let scope = match Scope::parse(scope.trim()) {
            Some(s) if s.grantable_to(user.is_admin) => Some(s),
            Some(_) => {
                errors.add("scope", "Only administrators can create admin tokens");
                None
            }
            None => {
                errors.add("scope", "Scope must be read, write or admin");
                None
            }
        };
        let days = expires_in_days.trim().parse::<i64>().ok().filter(|d| EXPIRY_CHOICES.contains(d));
        if days.is_none() {
            errors.add("expires_in_days", "Expiry must be 30, 90, 365 or 0 (never)");
        }
        let (Some(scope), Some(days)) = (scope, days) else { return Err(AppError::Invalid(errors)) };
        if !errors.is_empty() {
            return Err(AppError::Invalid(errors));
        }
        let now = self.clock.now_ms();
        let id = random_base62(ID_LEN);
        let secret = random_base62(SECRET_LEN);
        let token = AccessToken {
            id: id.clone(),
            secret_hash: tokens::hash_secret(&secret),
            user_id: user.id,
            name: name.to_owned(),
            scope,
            created_at: now,
            expires_at: (days > 0).then(|| now.saturating_add(days * DAY_MS)),
            last_used_at: None,
            last_used_ip: None,
        };
        let detail = Some(format!("token {id} ({}, {})", scope.as_str(), name));
        let event = origin.event(now, "token.created", Some(user.id), Some(&user.username), detail);
        self.store.insert_access_token(&token, Some(&event)).await?;
        Ok((token, access_token::format(&id, &secret)))
    }

    /// A user's tokens, newest first.
    pub async fn list(&self, user_id: i64) -> Result<Vec<AccessToken>, AppError> {
        Ok(self.store.user_access_tokens(user_id).await?)
    }

    /// Revokes one of the user's own tokens.
    pub async fn revoke(&self, user: &User, id: &str, origin: &Origin) -> Result<(), AppError> {
        let detail = Some(format!("token {}", id.chars().take(ID_LEN).collect::<String>()));
        let event = origin.event(self.clock.now_ms(), "token.revoked", Some(user.id), Some(&user.username), detail);
        if self.store.delete_access_token(user.id, id, Some(&event)).await? { Ok(()) } else { Err(AppError::NotFound) }
    }

    /// Whether the token may be shown now: `true` once, the first time.
    pub async fn reveal(&self, user_id: i64, id: &str) -> Result<bool, AppError> {
        Ok(self.store.reveal_access_token(user_id, id).await?)
    }

    /// Resolves `Authorization: Bearer <value>` from `ip`. A client that
    /// sent too many bad tokens this minute is refused before any lookup;
    /// a malformed token costs the same lookup and count as an unknown one.
    pub async fn authenticate(&self, value: Option<&str>, ip: Option<IpAddr>) -> Result<Authenticated, Refusal> {
        let now = self.clock.now_ms();
        let client = ip.map_or_else(|| "unknown".to_owned(), client_key);
        let bad_key = format!("api-token:{client}");
        if self.bad_per_minute > 0
            && let Some(until) = self.throttle.locked_until(&bad_key, now).await?
        {
            return Err(Refusal::TooMany(secs(until - now), None));
        }
        let parsed = value.and_then(access_token::parse);
        let (id, secret) = parsed.unwrap_or(("", ""));
        let found = self.store.access_token_with_user(id).await?;
        let accepted = match (parsed, found) {
            (Some(_), Some((token, user))) => {
                let ok = tokens::secret_matches(secret, &token.secret_hash)
                    && !token.expired(now)
                    && user.admin_locked_until.is_none_or(|t| t <= now);
                ok.then_some((token, user))
            }
            _ => None,
        };
        let Some((token, user)) = accepted else {
            if self.bad_per_minute > 0 {
                let threshold = i64::from(self.bad_per_minute);
                self.throttle.reserve_attempt(&bad_key, now, threshold, now + MINUTE_MS, now - MINUTE_MS).await?;
            }
            return Err(Refusal::Unauthorized);
        };
        let limit = self.count_request(&token.id, now).await?;
        self.note_use(&token, &user, now, ip).await?;
        Ok(Authenticated { user, token, limit })
    }

    /// Counts one request on the token this minute.
    async fn count_request(&self, id: &str, now: i64) -> Result<RateWindow, Refusal> {
        let limit = self.per_token_per_minute;
        let window = now - now.rem_euclid(MINUTE_MS);
        let reset = secs(window + MINUTE_MS - now);
        if limit == 0 {
            return Ok(RateWindow { limit: 0, remaining: 0, reset });
        }
        let count = self.counters.hit(&format!("api:{id}"), window).await?;
        if count > i64::from(limit) {
            return Err(Refusal::TooMany(reset.max(1), Some(RateWindow { limit, remaining: 0, reset })));
        }
        let remaining = u32::try_from(i64::from(limit) - count).unwrap_or(0);
        Ok(RateWindow { limit, remaining, reset })
    }

    /// Notes the use: at most once a minute, or at once from a new address
    /// (recorded in the audit log).
    async fn note_use(&self, token: &AccessToken, user: &User, now: i64, ip: Option<IpAddr>) -> Result<(), Refusal> {
        let ip = ip.map(|i| i.to_canonical().to_string());
        let new_address = ip.is_some() && ip != token.last_used_ip;
        let due = token.last_used_at.is_none_or(|t| now - t >= TOUCH_EVERY_MS);
        if !(due || new_address) {
            return Ok(());
        }
        let event = new_address.then(|| {
            let detail = Some(format!("token {} from {}", token.id, ip.as_deref().unwrap_or("?")));
            let origin = Origin::user(&crate::model::ClientInfo {
                ip: ip.as_deref().and_then(|i| i.parse().ok()),
                user_agent: None,
            });
            origin.event(now, "token.used_new_address", Some(user.id), Some(&user.username), detail)
        });
        self.store.touch_access_token(&token.id, token.last_used_at, now, ip.as_deref(), event.as_ref()).await?;
        Ok(())
    }
}

fn secs(ms: i64) -> u64 {
    u64::try_from((ms + 999) / 1000).unwrap_or(60).max(1)
}
