//! The administrators' overview: sign-ins, failures and lockouts per day,
//! how many users there are and of which kind, live sessions, and how the
//! mail outbox is doing. Every number is one indexed query (see the
//! operations migration) so the page stays fast with a million users.

use std::sync::Arc;
use std::time::Duration;

use crate::clock::{Clock, ms};
use crate::error::AppError;
use crate::meter::LOCKOUT_EVENT;
use crate::ports::OverviewStore;

/// One day in milliseconds; days are UTC.
pub const DAY_MS: i64 = 86_400_000;

/// Days the overview looks back, today included.
pub const DAYS: usize = 30;

/// The audit kinds the charts count.
pub const CHART_KINDS: [&str; 3] = ["login.success", "login.failure", LOCKOUT_EVENT];

/// User counts. Two-factor and passkey counts are `None` where the store
/// has no such feature yet.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct UserCounts {
    /// Every account.
    pub total: i64,
    /// With a verified email address.
    pub verified: i64,
    /// Administrators.
    pub admins: i64,
    /// With two-factor sign-in on.
    pub two_factor: i64,
    /// With at least one passkey.
    pub passkeys: i64,
}

/// The mail outbox.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct OutboxHealth {
    /// Mails not sent yet.
    pub pending: i64,
    /// When the oldest of them was queued (unix ms).
    pub oldest_at: Option<i64>,
}

/// Events of one kind on one UTC day, as the store counts them.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DailyCount {
    /// The audit kind.
    pub kind: String,
    /// Days since the epoch (UTC).
    pub day: i64,
    /// Events.
    pub count: i64,
}

/// One day of the charts.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Day {
    /// The day's start (unix ms, UTC midnight).
    pub start_ms: i64,
    /// Successful sign-ins.
    pub sign_ins: i64,
    /// Failed sign-ins.
    pub failures: i64,
    /// Names or accounts locked by failures.
    pub lockouts: i64,
}

/// Everything the overview page shows.
#[derive(Clone, Debug, Default)]
pub struct Report {
    /// The last [`DAYS`] days, oldest first, today last.
    pub days: Vec<Day>,
    /// User counts.
    pub users: UserCounts,
    /// Sessions neither expired nor idle too long.
    pub active_sessions: i64,
    /// Outbox health.
    pub outbox: OutboxHealth,
    /// When the report was made (unix ms).
    pub now: i64,
}

/// Live numbers a metrics scrape reads.
#[derive(Clone, Debug, Default)]
pub struct Gauges {
    /// Sessions neither expired nor idle too long.
    pub active_sessions: i64,
    /// Outbox health.
    pub outbox: OutboxHealth,
    /// When they were read (unix ms).
    pub now: i64,
}

/// The overview use case.
#[derive(Clone)]
pub struct Overview {
    store: Arc<dyn OverviewStore>,
    clock: Arc<dyn Clock>,
    idle_timeout: Duration,
}

impl Overview {
    /// Reads `store`; a session unused for `idle_timeout` is not active.
    pub fn new(store: Arc<dyn OverviewStore>, clock: Arc<dyn Clock>, idle_timeout: Duration) -> Self {
        Self { store, clock, idle_timeout }
    }

    /// The overview as of now.
    pub async fn report(&self) -> Result<Report, AppError> {
        let now = self.clock.now_ms();
        let today = now.div_euclid(DAY_MS);
        let first = today - (DAYS as i64 - 1);
        let counts = self.store.daily_events(&CHART_KINDS, first * DAY_MS).await?;
        let gauges = self.gauges().await?;
        Ok(Report {
            days: days(first, &counts),
            users: self.store.user_counts().await?,
            active_sessions: gauges.active_sessions,
            outbox: gauges.outbox,
            now,
        })
    }

    /// Active sessions and the outbox, for a metrics scrape.
    pub async fn gauges(&self) -> Result<Gauges, AppError> {
        let now = self.clock.now_ms();
        let idle_cutoff = now - ms(self.idle_timeout);
        Ok(Gauges {
            active_sessions: self.store.active_sessions(now, idle_cutoff).await?,
            outbox: self.store.outbox_health().await?,
            now,
        })
    }
}

/// [`DAYS`] days from day `first` (days since the epoch), filled from `counts`.
pub fn days(first: i64, counts: &[DailyCount]) -> Vec<Day> {
    let mut days: Vec<Day> =
        (0..DAYS as i64).map(|i| Day { start_ms: (first + i) * DAY_MS, ..Day::default() }).collect();
    for c in counts {
        let Some(day) = usize::try_from(c.day - first).ok().and_then(|i| days.get_mut(i)) else { continue };
        match c.kind.as_str() {
            "login.success" => day.sign_ins += c.count,
            "login.failure" => day.failures += c.count,
            LOCKOUT_EVENT => day.lockouts += c.count,
            _ => {}
        }
    }
    days
}

#[cfg(test)]
mod tests {
    use super::*;

    fn count(kind: &str, day: i64, count: i64) -> DailyCount {
        DailyCount { kind: kind.into(), day, count }
    }

    #[test]
    fn days_are_filled_oldest_first_and_outsiders_dropped() {
        let counts = [
            count("login.success", 100, 3),
            count("login.failure", 129, 2),
            count(LOCKOUT_EVENT, 129, 1),
            count("login.success", 99, 50),
            count("login.success", 130, 50),
            count("logout", 110, 7),
        ];
        let d = days(100, &counts);
        assert_eq!(d.len(), DAYS);
        assert_eq!(d[0], Day { start_ms: 100 * DAY_MS, sign_ins: 3, failures: 0, lockouts: 0 });
        assert_eq!(d[29], Day { start_ms: 129 * DAY_MS, sign_ins: 0, failures: 2, lockouts: 1 });
        assert_eq!(d.iter().map(|d| d.sign_ins).sum::<i64>(), 3);
    }
}
