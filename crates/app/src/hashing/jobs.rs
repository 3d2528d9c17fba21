//! The jobs waiting for a hashing thread, in two lanes: sign-ins first.

use std::collections::VecDeque;
use std::sync::{Condvar, Mutex};

use super::Job;

/// Which queue a job waits in.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Lane {
    /// Sign-ins, registrations, resets: taken first.
    First,
    /// Signed-in users' checks of their current password (the account
    /// pages): taken only when no job of the first lane waits, so that a
    /// flood of them, already bounded by its fair share, delays no sign-in
    /// by more than the hashes running.
    Later,
}

/// The jobs waiting for a hashing thread, in two lanes.
#[derive(Default)]
pub(super) struct Jobs {
    queued: Mutex<Queued>,
    ready: Condvar,
}

#[derive(Default)]
struct Queued {
    first: VecDeque<Job>,
    later: VecDeque<Job>,
    closed: bool,
}

impl Jobs {
    fn lock(&self) -> std::sync::MutexGuard<'_, Queued> {
        self.queued.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Queues `job` in `lane`; refused once the pool is dropped.
    pub(super) fn push(&self, job: Job, lane: Lane) -> Result<(), ()> {
        let mut q = self.lock();
        if q.closed {
            return Err(());
        }
        match lane {
            Lane::First => q.first.push_back(job),
            Lane::Later => q.later.push_back(job),
        }
        drop(q);
        self.ready.notify_one();
        Ok(())
    }

    /// The next job (the first lane's before the later's), waiting for one;
    /// `None` once the pool is dropped and nothing is left.
    pub(super) fn pop(&self) -> Option<Job> {
        let mut q = self.lock();
        loop {
            if let Some(job) = q.first.pop_front().or_else(|| q.later.pop_front()) {
                return Some(job);
            }
            if q.closed {
                return None;
            }
            q = self.ready.wait(q).unwrap_or_else(std::sync::PoisonError::into_inner);
        }
    }

    pub(super) fn close(&self) {
        self.lock().closed = true;
        self.ready.notify_all();
    }
}
