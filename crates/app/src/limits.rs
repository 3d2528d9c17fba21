//! Per-client rate limits on the forms attackers hammer: a fixed one-minute
//! window per (action, client IP), counted in the store so every node sees it.

use std::net::{IpAddr, Ipv6Addr};
use std::sync::Arc;

use crate::clock::Clock;
use crate::error::AppError;
use crate::ports::RateLimitStore;

const WINDOW_MS: i64 = 60_000;

/// A client as every per-client limit counts it: an IPv4 address on its
/// own (an IPv4-mapped IPv6 address too), an IPv6 client by its /64, which
/// one subscriber usually holds whole.
pub fn client_key(ip: IpAddr) -> String {
    match ip.to_canonical() {
        IpAddr::V4(v4) => v4.to_string(),
        IpAddr::V6(v6) => format!("{}/64", Ipv6Addr::from(u128::from(v6) & !u128::from(u64::MAX))),
    }
}

/// Counts attempts and says when a client must wait.
#[derive(Clone)]
pub struct RateLimiter {
    store: Arc<dyn RateLimitStore>,
    per_minute: u32,
    clock: Arc<dyn Clock>,
    refused: Arc<crate::meter::RefusalCounts>,
}

impl RateLimiter {
    /// `per_minute` attempts per client per action, in windows of `clock`'s
    /// minutes; 0 turns limits off.
    pub fn new(store: Arc<dyn RateLimitStore>, per_minute: u32, clock: Arc<dyn Clock>) -> Self {
        Self { store, per_minute, clock, refused: Arc::default() }
    }

    /// Counts one attempt at `action` by `client`. `Ok(None)` lets it through;
    /// `Ok(Some(secs))` refuses it and says how many seconds to wait.
    pub async fn check(&self, action: &str, client: &str) -> Result<Option<u64>, AppError> {
        if self.per_minute == 0 {
            return Ok(None);
        }
        let now = self.clock.now_ms();
        let window = now - now.rem_euclid(WINDOW_MS);
        let count = self.store.hit(&format!("{action}:{client}"), window).await?;
        if count <= i64::from(self.per_minute) {
            return Ok(None);
        }
        self.refused.count(action);
        let wait_ms = (window + WINDOW_MS - now).max(1);
        Ok(Some(u64::try_from((wait_ms + 999) / 1000).unwrap_or(60)))
    }

    /// Attempts refused so far, per action (for metrics).
    pub fn refusals(&self) -> Vec<(String, u64)> {
        self.refused.snapshot()
    }

    /// Forgets finished windows.
    pub async fn purge(&self) -> Result<u64, AppError> {
        let now = self.clock.now_ms();
        Ok(self.store.purge_rate_limits(now - now.rem_euclid(WINDOW_MS)).await?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(ip: &str) -> String {
        client_key(ip.parse().expect("an address"))
    }

    #[test]
    fn ipv6_clients_are_counted_per_64_and_ipv4_per_address() {
        assert_eq!(key("2001:db8:1:2:aaaa::1"), key("2001:db8:1:2:ffff:1:2:3"));
        assert_eq!(key("2001:db8:1:2::9"), "2001:db8:1:2::/64");
        assert_ne!(key("2001:db8:1:2::1"), key("2001:db8:1:3::1"));
        assert_eq!(key("203.0.113.7"), "203.0.113.7");
        assert_eq!(key("::ffff:203.0.113.7"), "203.0.113.7", "an IPv4 client on a dual-stack socket");
    }
}
