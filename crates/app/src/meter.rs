//! Counts of what the use cases did — sign-ins by outcome, lockouts,
//! requests refused by a rate limit — as plain atomics that whoever exports
//! them (the binary's Prometheus listener) reads when asked. Counting is one
//! relaxed atomic add; nothing here knows of any metrics library.

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

/// How a sign-in attempt ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LoginOutcome {
    /// The password was right and a session opened.
    Success,
    /// Unknown name or wrong password.
    Failure,
    /// Refused unchecked: the name or account is locked.
    Locked,
}

impl LoginOutcome {
    /// Every outcome, in label order.
    pub const ALL: [LoginOutcome; 3] = [LoginOutcome::Success, LoginOutcome::Failure, LoginOutcome::Locked];

    /// The outcome's label (`success`, `failure`, `locked`).
    pub fn label(self) -> &'static str {
        match self {
            LoginOutcome::Success => "success",
            LoginOutcome::Failure => "failure",
            LoginOutcome::Locked => "locked",
        }
    }

    /// The outcome an audit event of `kind` records, if it records one.
    pub fn of_event(kind: &str) -> Option<Self> {
        match kind {
            "login.success" => Some(LoginOutcome::Success),
            "login.failure" => Some(LoginOutcome::Failure),
            "login.locked" => Some(LoginOutcome::Locked),
            _ => None,
        }
    }
}

/// The audit kind of the failure that locked a name or account.
pub const LOCKOUT_EVENT: &str = "login.lockout";

/// Sign-in counters of one node.
#[derive(Debug, Default)]
pub struct Meter {
    logins: [AtomicU64; 3],
    lockouts: AtomicU64,
}

impl Meter {
    /// Counts what an audit event of `kind` says happened, if anything.
    pub fn saw(&self, kind: &str) {
        if let Some(outcome) = LoginOutcome::of_event(kind) {
            self.logins[outcome as usize].fetch_add(1, Ordering::Relaxed);
        } else if kind == LOCKOUT_EVENT {
            self.lockouts.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Sign-in attempts that ended so.
    pub fn logins(&self, outcome: LoginOutcome) -> u64 {
        self.logins[outcome as usize].load(Ordering::Relaxed)
    }

    /// Names and accounts locked by failures.
    pub fn lockouts(&self) -> u64 {
        self.lockouts.load(Ordering::Relaxed)
    }
}

/// Requests refused by a rate limit, per action. Only refusals take the
/// lock, and the actions are the few the code names.
#[derive(Debug, Default)]
pub struct RefusalCounts(Mutex<BTreeMap<String, u64>>);

impl RefusalCounts {
    /// Counts one refusal of `action`.
    pub fn count(&self, action: &str) {
        let mut map = self.0.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        match map.get_mut(action) {
            Some(n) => *n += 1,
            None => {
                map.insert(action.to_owned(), 1);
            }
        }
    }

    /// Every action refused so far, with its count.
    pub fn snapshot(&self) -> Vec<(String, u64)> {
        let map = self.0.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        map.iter().map(|(k, v)| (k.clone(), *v)).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_count_their_outcome_and_others_nothing() {
        let m = Meter::default();
        for kind in ["login.success", "login.failure", "login.failure", "login.locked", LOCKOUT_EVENT, "logout"] {
            m.saw(kind);
        }
        assert_eq!(m.logins(LoginOutcome::Success), 1);
        assert_eq!(m.logins(LoginOutcome::Failure), 2);
        assert_eq!(m.logins(LoginOutcome::Locked), 1);
        assert_eq!(m.lockouts(), 1);
    }

    #[test]
    fn refusals_are_counted_per_action() {
        let r = RefusalCounts::default();
        r.count("login");
        r.count("login");
        r.count("register");
        assert_eq!(r.snapshot(), vec![("login".to_owned(), 2), ("register".to_owned(), 1)]);
    }
}
