//! Fair shares of the hashing pool for signed-in users' password checks:
//! each user, each client address, and all such checks together hold at
//! most a bounded number of places at once, so that one principal (or many
//! signed-in accounts) flooding the account pages cannot starve logins.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};

use crate::limits::client_key;

/// Places one user's password checks may hold at once.
pub const PER_USER: usize = 2;

/// The names shares are counted under.
pub fn principals(user_id: i64, client: Option<IpAddr>) -> Vec<String> {
    let mut keys = vec!["checks".to_owned(), format!("user:{user_id}")];
    if let Some(ip) = client {
        keys.push(format!("ip:{}", client_key(ip)));
    }
    keys
}

/// How many places each kind of principal may hold, for a pool of `places`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Caps {
    /// One user.
    pub user: usize,
    /// One client address.
    pub client: usize,
    /// Every signed-in check together: the rest is kept for logins.
    pub all_checks: usize,
}

impl Caps {
    /// Caps for a pool of `places`: a user two, an address an eighth (at
    /// least two), all checks together half (at least one).
    pub fn for_pool(places: usize) -> Self {
        Self { user: PER_USER, client: (places / 8).max(PER_USER), all_checks: (places / 2).max(1) }
    }

    fn of(&self, key: &str) -> usize {
        if key == "checks" {
            self.all_checks
        } else if key.starts_with("user:") {
            self.user
        } else {
            self.client
        }
    }
}

/// Places held, per principal.
#[derive(Clone, Debug, Default)]
pub struct Shares {
    held: Arc<Mutex<HashMap<String, usize>>>,
}

/// Places taken under some principals, given back when dropped.
#[derive(Debug)]
pub struct Held {
    held: Arc<Mutex<HashMap<String, usize>>>,
    keys: Vec<String>,
}

impl Shares {
    /// Takes one place under every key, or none when any is at its cap.
    pub fn take(&self, keys: Vec<String>, caps: Caps) -> Option<Held> {
        let mut held = self.held.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        if keys.iter().any(|k| held.get(k).copied().unwrap_or(0) >= caps.of(k)) {
            return None;
        }
        for k in &keys {
            *held.entry(k.clone()).or_insert(0) += 1;
        }
        Some(Held { held: self.held.clone(), keys })
    }
}

impl Drop for Held {
    fn drop(&mut self) {
        let mut held = self.held.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        for k in &self.keys {
            if let Some(n) = held.get_mut(k) {
                *n = n.saturating_sub(1);
                if *n == 0 {
                    held.remove(k);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_principal_at_its_cap_is_refused_until_a_place_comes_back() {
        let shares = Shares::default();
        let caps = Caps::for_pool(34);
        assert_eq!(caps, Caps { user: 2, client: 4, all_checks: 17 });
        let ip: IpAddr = "198.51.100.7".parse().expect("ip");
        let a = shares.take(principals(1, Some(ip)), caps).expect("first");
        let _b = shares.take(principals(1, Some(ip)), caps).expect("second");
        assert!(shares.take(principals(1, Some(ip)), caps).is_none(), "a user holds two at most");
        let _c = shares.take(principals(2, Some(ip)), caps).expect("another user, same address");
        let _d = shares.take(principals(3, Some(ip)), caps).expect("and a fourth from it");
        assert!(shares.take(principals(4, Some(ip)), caps).is_none(), "an address holds four at most");
        drop(a);
        assert!(shares.take(principals(1, Some(ip)), caps).is_some(), "given back when dropped");
    }
}
