//! The lockout rule: which counter a failed login is counted on, how many
//! failures a window holds before the counter locks, and when it starts again.
//!
//! Failures are counted per account (or per name typed, when no account has
//! it, under a keyed hash of the name so that a password typed into the
//! name box is never stored), not per client, so a guesser spreading over many addresses gains
//! nothing. A browser that signed in to the account before shows a device
//! cookie and counts on its own counter instead (OWASP's device cookies):
//! strangers' guesses then lock the strangers out, not the owner.

/// How many failures lock a counter, and for how long.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LockoutRule {
    /// Failures a window holds; the next attempt is refused unchecked.
    pub threshold: u32,
    /// How long a lock lasts, and how long an unlocked failure is remembered (ms).
    pub window_ms: i64,
}

/// A browser's claim that it signed in to `user_id` before.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DeviceClaim<'a> {
    /// The account the browser signed in to.
    pub user_id: i64,
    /// The browser's own random name.
    pub nonce: &'a str,
}

/// The counter an attempt is counted on.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AttemptKey {
    /// The counter's name in the throttle.
    pub key: String,
    /// The attempt came from a browser that signed in to this account before.
    pub known_device: bool,
}

/// A counter as the throttle keeps it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Counter {
    /// Attempts in the current window.
    pub attempts: i64,
    /// Locked until (unix ms), once the window reached the threshold.
    pub locked_until: Option<i64>,
    /// The last attempt (unix ms).
    pub last_at: i64,
}

impl Counter {
    /// Whether the next attempt would start this counter again at one: its
    /// lock has run out, or, unlocked, its last attempt is older than
    /// `window_start`. Such a counter may as well be forgotten.
    pub fn is_stale(&self, now: i64, window_start: i64) -> bool {
        match self.locked_until {
            Some(until) => until <= now,
            None => self.last_at < window_start,
        }
    }
}

/// What counting one attempt at `now` needs: handed to the throttle, which
/// applies [`Reservation::count`] atomically.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Reservation {
    /// When the attempt is made (unix ms).
    pub now: i64,
    /// Failures a window holds (at least one).
    pub threshold: i64,
    /// The lock this attempt sets if it reaches the threshold.
    pub lock_until: i64,
    /// An unlocked counter whose last attempt is older than this starts again.
    pub window_start: i64,
}

/// The counter of an account.
pub fn account_key(user_id: i64) -> String {
    format!("user:{user_id}")
}

/// The counter of a name nobody has, given the keyed hash of the name
/// (username or email, normalized): never the text itself.
pub fn name_key(name_hash: &str) -> String {
    format!("name:{name_hash}")
}

/// The counter a login attempt is counted on: the browser's own when it
/// shows a device cookie for this very account, else the account's, else
/// (no such account) the name's, by the keyed hash of the normalized name.
pub fn attempt_key(account: Option<i64>, name_hash: &str, device: Option<DeviceClaim<'_>>) -> AttemptKey {
    match (account, device) {
        (Some(id), Some(d)) if d.user_id == id => AttemptKey { key: format!("device:{}", d.nonce), known_device: true },
        (Some(id), _) => AttemptKey { key: account_key(id), known_device: false },
        (None, _) => AttemptKey { key: name_key(name_hash), known_device: false },
    }
}

/// Every counter that can hold an account's failures, bar browsers' own:
/// what a password reset or an unlock clears. The name counters are there
/// because guesses made before the account existed were counted on them;
/// they are given as the keyed hashes of the normalized username and email.
pub fn account_keys(user_id: i64, username_hash: &str, email_hash: &str) -> Vec<String> {
    vec![account_key(user_id), name_key(username_hash), name_key(email_hash)]
}

impl LockoutRule {
    /// The threshold as counted, never below one.
    pub fn threshold(&self) -> i64 {
        i64::from(self.threshold.max(1))
    }

    /// What counting an attempt made at `now` needs.
    pub fn reserve(&self, now: i64) -> Reservation {
        Reservation {
            now,
            threshold: self.threshold(),
            lock_until: now.saturating_add(self.window_ms),
            window_start: now.saturating_sub(self.window_ms),
        }
    }

    /// Whether an attempt that made the window's count `attempts` may be
    /// checked: the first `threshold` of a window are, the rest are refused
    /// unchecked, so no more guesses than that are ever verified.
    pub fn admits(&self, attempts: i64) -> bool {
        attempts <= self.threshold()
    }
}

impl Reservation {
    /// The counter after this attempt, given the one before (if any). A lock
    /// that has run out, or an unlocked window whose last attempt is older
    /// than the window, starts again at one; reaching the threshold locks.
    pub fn count(&self, before: Option<Counter>) -> Counter {
        let lock_at_one = if self.threshold <= 1 { Some(self.lock_until) } else { None };
        let fresh = Counter { attempts: 1, locked_until: lock_at_one, last_at: self.now };
        let Some(before) = before else { return fresh };
        if before.is_stale(self.now, self.window_start) {
            return fresh;
        }
        let attempts = before.attempts.saturating_add(1);
        let locked_until = match before.locked_until {
            None if attempts >= self.threshold => Some(self.lock_until),
            kept => kept,
        };
        Counter { attempts, locked_until, last_at: self.now }
    }
}

/// The time an administrator's lock is set to last until: it holds until an
/// administrator lifts it.
pub const UNTIL_UNLOCKED: i64 = i64::MAX;

/// Whether an administrator's lock (until, unix ms) holds at `now`.
pub fn admin_lock_holds(until: Option<i64>, now: i64) -> bool {
    until.is_some_and(|t| t > now)
}

#[cfg(test)]
mod tests {
    use super::*;

    const MIN: i64 = 60_000;
    const RULE: LockoutRule = LockoutRule { threshold: 3, window_ms: 15 * MIN };

    /// Counts `n` attempts at `now` on `counter`, answering the admitted ones.
    fn attempts(counter: &mut Option<Counter>, now: i64, n: usize) -> usize {
        (0..n)
            .filter(|_| {
                let c = RULE.reserve(now).count(*counter);
                *counter = Some(c);
                RULE.admits(c.attempts)
            })
            .count()
    }

    #[test]
    fn exactly_the_threshold_is_admitted_then_the_lock_holds_for_the_window() {
        let mut c = None;
        assert_eq!(attempts(&mut c, 0, 10), 3);
        assert_eq!(c.and_then(|c| c.locked_until), Some(15 * MIN));
        assert_eq!(attempts(&mut c, 15 * MIN - 1, 1), 0, "still locked a millisecond before the end");
        assert_eq!(attempts(&mut c, 15 * MIN, 1), 1, "free again when the lock runs out");
        assert_eq!(c.map(|c| c.attempts), Some(1), "and counting starts again");
    }

    #[test]
    fn failures_older_than_the_window_are_forgotten() {
        let mut c = None;
        assert_eq!(attempts(&mut c, 0, 2), 2);
        assert_eq!(attempts(&mut c, 15 * MIN, 1), 1, "the window holds them yet");
        assert_eq!(c.map(|c| c.attempts), Some(3));
        let mut c = None;
        attempts(&mut c, 0, 2);
        assert_eq!(attempts(&mut c, 15 * MIN + 1, 3), 3, "past the window the count starts at one");
    }

    #[test]
    fn a_lock_is_not_extended_by_attempts_made_while_it_holds() {
        let mut c = None;
        attempts(&mut c, 0, 3);
        attempts(&mut c, 10 * MIN, 5);
        assert_eq!(c.and_then(|c| c.locked_until), Some(15 * MIN));
    }

    #[test]
    fn a_threshold_of_zero_counts_as_one() {
        let rule = LockoutRule { threshold: 0, window_ms: MIN };
        let c = rule.reserve(0).count(None);
        assert!(rule.admits(c.attempts));
        assert_eq!(c.locked_until, Some(MIN));
        assert!(!rule.admits(rule.reserve(1).count(Some(c)).attempts));
    }

    #[test]
    fn a_browser_that_signed_in_before_counts_on_its_own_key() {
        let own = DeviceClaim { user_id: 7, nonce: "n1" };
        let k = attempt_key(Some(7), "alice", Some(own));
        assert_eq!(k, AttemptKey { key: "device:n1".into(), known_device: true });
        // A cookie for another account is no claim on this one.
        let other = DeviceClaim { user_id: 8, nonce: "n1" };
        assert_eq!(attempt_key(Some(7), "alice", Some(other)).key, "user:7");
        assert_eq!(attempt_key(Some(7), "alice", None), AttemptKey { key: "user:7".into(), known_device: false });
        // A name nobody has counts on the name, cookie or not.
        assert_eq!(attempt_key(None, "ghost", Some(own)).key, "name:ghost");
    }

    #[test]
    fn an_account_s_keys_cover_its_names_but_not_its_browsers() {
        let keys = account_keys(7, "0a1b", "2c3d");
        assert_eq!(keys, ["user:7", "name:0a1b", "name:2c3d"]);
        assert!(!keys.iter().any(|k| k.starts_with("device:")));
    }

    #[test]
    fn an_admin_lock_holds_until_its_time() {
        assert!(admin_lock_holds(Some(10), 9));
        assert!(!admin_lock_holds(Some(10), 10));
        assert!(!admin_lock_holds(None, 0));
    }

    #[test]
    fn a_counter_is_stale_once_its_lock_ran_out_or_its_window_passed() {
        let locked = Counter { attempts: 5, locked_until: Some(100), last_at: 10 };
        assert!(!locked.is_stale(99, 50), "locked until 100");
        assert!(locked.is_stale(100, 50), "the lock has run out");
        let open = Counter { attempts: 2, locked_until: None, last_at: 10 };
        assert!(!open.is_stale(1000, 10), "its last attempt is in the window");
        assert!(open.is_stale(1000, 11), "its last attempt is before the window");
    }
}
