//! What every handler can reach.

use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use ipnet::IpNet;
use portcullis_app::accounts::Passkeys;
use portcullis_app::audit::Audit;
use portcullis_app::limits::RateLimiter;
use portcullis_app::{Accounts, Posts};

use crate::cookies::Signer;
use crate::templates::Templates;
use crate::trace::RequestIds;

/// HTTP-facing settings, read from configuration by the binary.
#[derive(Clone, Debug)]
pub struct WebConfig {
    /// The public URL; https turns on `Secure`, `__Host-` and HSTS.
    pub base_url: url::Url,
    /// Key for every HMAC the web layer makes (CSRF, signed cookies).
    pub secret_key: Vec<u8>,
    /// Largest request body accepted.
    pub body_limit: usize,
    /// Longest a request may take, from its headers' arrival to the answer,
    /// reading the body included.
    pub request_timeout: Duration,
    /// Longest a client may take to send a request's headers, and to start
    /// the next request on a kept-alive connection.
    pub header_timeout: Duration,
    /// Open connections served at once.
    pub max_connections: usize,
    /// Peers whose `X-Forwarded-For` is believed.
    pub trusted_proxies: Vec<IpNet>,
}

impl WebConfig {
    /// Whether the site is served over https.
    pub fn is_https(&self) -> bool {
        self.base_url.scheme() == "https"
    }
}

/// Shared state: the use cases, the templates and the keys.
#[derive(Clone)]
pub struct AppState(Arc<Inner>);

/// The contents of [`AppState`].
pub struct Inner {
    /// Account and session use cases.
    pub accounts: Accounts,
    /// Post use cases.
    pub posts: Posts,
    /// Personal access tokens.
    pub tokens: portcullis_app::access_tokens::AccessTokens,
    /// Passkey use cases.
    pub passkeys: Passkeys,
    /// Per-client limits on sensitive forms.
    pub limiter: RateLimiter,
    /// The security log.
    pub audit: Audit,
    /// Renders pages.
    pub templates: Templates,
    /// HTTP settings.
    pub config: WebConfig,
    /// Signs cookies and CSRF tokens.
    pub signer: Signer,
    /// Names requests that arrive without an id.
    pub request_ids: RequestIds,
    /// Request metrics, when they are exported.
    pub http_metrics: Option<crate::metrics::HttpMetrics>,
    /// The administrators' overview.
    pub overview: Option<portcullis_app::overview::Overview>,
    /// Where other nodes cache what this one writes (several nodes on
    /// PostgreSQL): a request that wrote answers once they let go of it.
    pub settle: Option<Arc<dyn portcullis_app::ports::Settle>>,
}

impl std::ops::Deref for AppState {
    type Target = Inner;
    fn deref(&self) -> &Inner {
        &self.0
    }
}

impl AppState {
    /// Builds the state.
    pub fn new(
        accounts: Accounts,
        posts: Posts,
        tokens: portcullis_app::access_tokens::AccessTokens,
        passkeys: Passkeys,
        limiter: RateLimiter,
        audit: Audit,
        config: WebConfig,
    ) -> Self {
        let signer = Signer::new(&config.secret_key);
        Self(Arc::new(Inner {
            accounts,
            posts,
            tokens,
            passkeys,
            limiter,
            audit,
            templates: Templates,
            config,
            signer,
            request_ids: RequestIds::default(),
            http_metrics: None,
            overview: None,
            settle: None,
        }))
    }

    /// This state with the administrators' overview and, if given, request
    /// metrics; only on a state not yet shared.
    pub fn with_operations(
        mut self,
        overview: portcullis_app::overview::Overview,
        http_metrics: Option<crate::metrics::HttpMetrics>,
    ) -> Self {
        if let Some(inner) = Arc::get_mut(&mut self.0) {
            inner.overview = Some(overview);
            inner.http_metrics = http_metrics;
        }
        self
    }

    /// This state with requests that wrote waiting for `settle` before
    /// they answer; only on a state not yet shared.
    pub fn with_settle(mut self, settle: Arc<dyn portcullis_app::ports::Settle>) -> Self {
        if let Some(inner) = Arc::get_mut(&mut self.0) {
            inner.settle = Some(settle);
        }
        self
    }

    /// Counts an attempt at `action` by this client; refuses with 429 over the limit.
    pub async fn rate_limit(
        &self,
        action: &str,
        client: &portcullis_app::model::ClientInfo,
    ) -> Result<(), crate::WebError> {
        match self.limiter.check(action, &rate_limit_key(client.ip)).await? {
            None => Ok(()),
            Some(wait) => Err(crate::WebError::TooManyRequests(wait)),
        }
    }
}

/// Who a per-IP rate limit counts (see `portcullis_app::limits::client_key`).
pub fn rate_limit_key(ip: Option<IpAddr>) -> String {
    ip.map_or_else(|| "unknown".to_owned(), portcullis_app::limits::client_key)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(ip: &str) -> String {
        rate_limit_key(Some(ip.parse().expect("an address")))
    }

    #[test]
    fn ipv6_clients_are_counted_per_64() {
        assert_eq!(key("2001:db8:1:2:aaaa::1"), key("2001:db8:1:2:ffff:1:2:3"));
        assert_eq!(key("2001:db8:1:2::9"), "2001:db8:1:2::/64");
        assert_ne!(key("2001:db8:1:2::1"), key("2001:db8:1:3::1"));
    }

    #[test]
    fn ipv4_clients_are_counted_per_address() {
        assert_eq!(key("203.0.113.7"), "203.0.113.7");
        assert_ne!(key("203.0.113.7"), key("203.0.113.8"));
        assert_eq!(key("::ffff:203.0.113.7"), "203.0.113.7", "an IPv4 client on a dual-stack socket");
        assert_eq!(rate_limit_key(None), "unknown");
    }
}
