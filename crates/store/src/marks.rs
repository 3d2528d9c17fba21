//! What a write may have changed, counted so that the read cache (see
//! `cache`) can tell an entry read before a change from one read after it.
//!
//! Every write this process makes names its [`Reach`] when it opens the
//! writing connection (`SqlStore::write`), and the connection marks it when
//! it is let go, after the commit, whatever became of the write: committed,
//! failed, or dropped half-way with its request. A write counts itself
//! (`seq`) and sets the marks of what it may have changed to that count:
//! the mark of the user's stripe for a change to a user or their sessions,
//! the posts' mark for a change to a post, the mark of everything for a
//! change made by another process or of unknown reach. An entry remembers
//! the count from before its rows were read, and is used only while no mark
//! that concerns it is newer.

use std::sync::atomic::{AtomicU64, Ordering};

/// What a write may change of what the read cache keeps. Every write
/// names one when it opens the writing connection (`SqlStore::write`): a
/// new kind of cached row gets a variant here, and each write that touches
/// it names it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Reach {
    /// Nothing the cache keeps: failed-login counters, rate limits, mail,
    /// audit events, tokens; or rows no entry can name yet (a new user, a
    /// new session).
    Uncached,
    /// A session's `last_seen_at` alone: the cache moves its entry itself,
    /// before the write (see `CachedStore::touch_session`).
    LastSeen,
    /// A user's row, or their sessions.
    User(i64),
    /// Posts.
    Posts,
    /// A user with everything that goes with them, posts included.
    UserAndPosts(i64),
    /// Anything: rows whose owners are not known one by one.
    Everything,
}

/// Users share marks by their id modulo this: a change to one user sends
/// the sessions of the few others on the same stripe to reload too.
pub(crate) const STRIPES: usize = 1024;

/// The write counter and the marks (see the module's documentation).
pub(crate) struct Marks {
    seq: AtomicU64,
    /// Writes of this process that reached something cached (see `fence`).
    here: AtomicU64,
    everything: AtomicU64,
    posts: AtomicU64,
    users: Box<[AtomicU64]>,
}

impl std::fmt::Debug for Marks {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Marks").field("seq", &self.seq).finish_non_exhaustive()
    }
}

impl Default for Marks {
    fn default() -> Self {
        Self {
            seq: AtomicU64::new(0),
            here: AtomicU64::new(0),
            everything: AtomicU64::new(0),
            posts: AtomicU64::new(0),
            users: (0..STRIPES).map(|_| AtomicU64::new(0)).collect(),
        }
    }
}

impl Marks {
    /// The count to remember for a row about to be read.
    pub(crate) fn now(&self) -> u64 {
        self.seq.load(Ordering::Acquire)
    }

    /// The mark of user `id`'s stripe.
    pub(crate) fn user(&self, id: i64) -> &AtomicU64 {
        let stripe = usize::try_from(id.rem_euclid(STRIPES as i64)).unwrap_or(0);
        &self.users[stripe]
    }

    /// The posts' mark.
    pub(crate) fn posts(&self) -> &AtomicU64 {
        &self.posts
    }

    /// Counts a write that is over and marks what it reached; answers the
    /// count. A write that reached nothing cached counts nothing.
    pub(crate) fn changed(&self, reach: Reach) -> u64 {
        if matches!(reach, Reach::Uncached | Reach::LastSeen) {
            return self.now();
        }
        let count = self.seq.fetch_add(1, Ordering::AcqRel) + 1;
        let mark = |m: &AtomicU64| {
            m.fetch_max(count, Ordering::AcqRel);
        };
        match reach {
            Reach::Uncached | Reach::LastSeen => {}
            Reach::User(id) => mark(self.user(id)),
            Reach::Posts => mark(&self.posts),
            Reach::UserAndPosts(id) => {
                mark(self.user(id));
                mark(&self.posts);
            }
            Reach::Everything => mark(&self.everything),
        }
        count
    }

    /// Marks `reach` for a write of this process that is over (see
    /// `writer`), counting it among [`Marks::written`] if it reached
    /// anything cached.
    pub(crate) fn changed_here(&self, reach: Reach) -> u64 {
        if !matches!(reach, Reach::Uncached | Reach::LastSeen) {
            self.here.fetch_add(1, Ordering::AcqRel);
        }
        self.changed(reach)
    }

    /// How many writes of this process have reached something cached: the
    /// other nodes' caches may still hold what they changed until a round
    /// of `fence` covers them.
    pub(crate) fn written(&self) -> u64 {
        self.here.load(Ordering::Acquire)
    }

    /// No change to anything, nor to `mark`, since `since`.
    pub(crate) fn unchanged(&self, mark: &AtomicU64, since: u64) -> bool {
        self.everything.load(Ordering::Acquire) <= since && mark.load(Ordering::Acquire) <= since
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_mark_stales_only_what_was_read_before_it() {
        let marks = Marks::default();
        let before = marks.now();
        marks.changed(Reach::User(5));
        assert!(!marks.unchanged(marks.user(5), before), "user 5 changed after the read");
        assert!(!marks.unchanged(marks.user(5 + STRIPES as i64), before), "so did its stripe");
        assert!(marks.unchanged(marks.user(6), before), "user 6 did not");
        assert!(marks.unchanged(marks.posts(), before), "nor did the posts");
        let after = marks.now();
        assert!(marks.unchanged(marks.user(5), after), "a read after the change is good");
        marks.changed(Reach::Posts);
        assert!(!marks.unchanged(marks.posts(), after));
        assert!(marks.unchanged(marks.user(5), after));
        marks.changed(Reach::UserAndPosts(-3));
        assert!(!marks.unchanged(marks.user(-3), after), "any id has a stripe");
        let later = marks.now();
        marks.changed(Reach::Everything);
        assert!(!marks.unchanged(marks.user(6), later), "everything stales every entry");
        assert!(!marks.unchanged(marks.posts(), later));
    }

    #[test]
    fn a_write_that_reaches_nothing_cached_counts_nothing() {
        let marks = Marks::default();
        let before = marks.now();
        assert_eq!(marks.changed(Reach::Uncached), before);
        assert_eq!(marks.changed(Reach::LastSeen), before);
        assert_eq!(marks.now(), before);
        assert!(marks.unchanged(marks.user(1), before) && marks.unchanged(marks.posts(), before));
    }
}
