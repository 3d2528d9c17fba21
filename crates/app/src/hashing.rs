//! Password hashing: Argon2id on a bounded pool of threads of its own, and
//! verification of the Werkzeug hashes a Flask app leaves behind.
//!
//! The pool has `workers` threads and admits at most `queue` more waiting
//! jobs; past that a caller gets [`PoolBusy`] at once, so a login flood gets
//! quick refusals instead of an unbounded queue.
//!
//! Each thread keeps its Argon2 working memory (`m_cost` KiB) from one job to
//! the next rather than allocating and freeing it each time: freed buffers of
//! that size stay in the allocator's per-thread arenas, and the process would
//! grow to many times `workers × m_cost`. On Linux the threads run at a lower
//! CPU priority (nice +10), so that while hashes queue up, page requests are
//! still served first.

pub mod fair_share;
mod jobs;

use std::net::IpAddr;
use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};

use argon2::password_hash::rand_core::OsRng;
use argon2::password_hash::{Output, ParamsString, PasswordHash, SaltString};
use argon2::{Algorithm, Argon2, Block, Params, Version};
use subtle::ConstantTimeEq;
use tokio::sync::Semaphore;

use self::jobs::{Jobs, Lane};
use crate::error::AppError;
use crate::settings::Argon2Settings;

/// The pool is full: try again later.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("password hashing pool is full")]
pub struct PoolBusy;

/// A reserved place in the hashing pool (released when dropped).
#[derive(Debug, Clone)]
pub struct Admission {
    _permit: Arc<tokio::sync::OwnedSemaphorePermit>,
    _share: Option<Arc<fair_share::Held>>,
}

/// The outcome of checking a password against a stored hash.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Verified {
    /// The password matched.
    pub ok: bool,
    /// The hash is not Argon2id at the current cost and should be replaced.
    pub needs_rehash: bool,
}

/// Work for a hashing thread, given that thread's Argon2 memory.
type Job = Box<dyn FnOnce(&mut Vec<Block>) + Send>;

/// The niceness of the hashing threads (Linux).
pub const HASH_THREAD_NICE: i32 = 10;

/// Argon2id hashing and verification on a bounded pool of threads.
pub struct HashPool {
    argon2: Argon2<'static>,
    params: Params,
    settings: Argon2Settings,
    jobs: Arc<Jobs>,
    admission: Arc<Semaphore>,
    shares: fair_share::Shares,
    caps: fair_share::Caps,
    dummy_hash: String,
    load: Arc<Load>,
}

/// What the pool is doing, for metrics.
#[derive(Debug, Default)]
struct Load {
    /// Jobs a thread is running.
    running: AtomicUsize,
    /// Jobs queued, not yet started.
    queued: AtomicUsize,
    /// Places refused because the pool was full.
    refused: AtomicU64,
}

impl HashPool {
    /// A pool of `workers` concurrent hashes with up to `queue` more waiting.
    pub fn new(settings: Argon2Settings, workers: usize, queue: usize) -> Result<Self, AppError> {
        let params = Params::new(settings.memory_kib, settings.iterations, settings.parallelism, None)
            .map_err(|e| AppError::Internal(format!("argon2 parameters: {e}")))?;
        let argon2 = Argon2::new(Algorithm::Argon2id, Version::V0x13, params.clone());
        let workers = workers.max(1);
        // Unknown users are checked against this so that they cost exactly
        // what a real user costs.
        let dummy_hash = dummy_phc(&params)?;
        let jobs = Arc::new(Jobs::default());
        for i in 0..workers {
            let queue = jobs.clone();
            std::thread::Builder::new()
                .name(format!("portcullis-hash-{i}"))
                .spawn(move || work(&queue))
                .map_err(|e| AppError::Internal(format!("hash thread: {e}")))?;
        }
        Ok(Self {
            argon2,
            params,
            settings,
            jobs,
            admission: Arc::new(Semaphore::new(workers + queue)),
            shares: fair_share::Shares::default(),
            caps: fair_share::Caps::for_pool(workers + queue),
            dummy_hash,
            load: Arc::default(),
        })
    }

    /// Default sizes for this machine: one worker per core, sixteen waiting per worker.
    pub fn default_sizes() -> (usize, usize) {
        let cores = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(2);
        (cores, cores * 16)
    }

    /// The cost new hashes are made with.
    pub fn settings(&self) -> Argon2Settings {
        self.settings
    }

    /// Hashes a new password (Argon2id, PHC string, random salt).
    pub async fn hash(&self, password: &str) -> Result<String, AppError> {
        let place = self.admit()?;
        self.hash_admitted(&place, password).await
    }

    /// [`HashPool::hash`] in a place already reserved.
    pub async fn hash_admitted(&self, place: &Admission, password: &str) -> Result<String, AppError> {
        let argon2 = self.argon2.clone();
        let params = self.params.clone();
        let password = password.to_owned();
        self.run_admitted(place, move |memory| hash_in(&argon2, &params, &password, memory)).await?
    }

    /// Checks `password` against a stored hash of any supported format.
    pub async fn verify(&self, password: &str, stored: &str) -> Result<Verified, AppError> {
        let place = self.admit()?;
        self.verify_admitted(&place, password, stored).await
    }

    /// Spends one verification on nothing, so unknown users cost the same as known ones.
    pub async fn verify_dummy(&self, password: &str) -> Result<(), AppError> {
        let place = self.admit()?;
        self.verify_dummy_admitted(&place, password).await
    }

    /// Reserves a place in the pool, or refuses at once when it is full. A
    /// caller that must not do anything (such as counting a login attempt)
    /// unless its check will really run takes its place first.
    pub fn admit(&self) -> Result<Admission, PoolBusy> {
        self.admission.clone().try_acquire_owned().map(|p| Admission { _permit: Arc::new(p), _share: None }).map_err(
            |_| {
                self.note_refused();
                PoolBusy
            },
        )
    }

    /// Counts a check turned away because the pool was full (the web layer
    /// turns some away before they ask, see [`HashPool::is_full`]).
    pub fn note_refused(&self) {
        self.load.refused.fetch_add(1, Ordering::Relaxed);
    }

    /// Hashes running now, hashes queued behind them, and places refused
    /// so far.
    pub fn load(&self) -> (usize, usize, u64) {
        let l = &self.load;
        (l.running.load(Ordering::Relaxed), l.queued.load(Ordering::Relaxed), l.refused.load(Ordering::Relaxed))
    }

    /// Reserves a place for a signed-in user's password check, within the
    /// user's, the client's and all such checks' fair share (see
    /// [`fair_share`]): over a share the answer is [`AppError::TooMany`]
    /// (429), when the pool is full [`AppError::Busy`] (503).
    pub fn admit_check(&self, user_id: i64, client: Option<IpAddr>) -> Result<Admission, AppError> {
        let share = self
            .shares
            .take(fair_share::principals(user_id, client), self.caps)
            .ok_or(AppError::TooMany { retry_after: 1 })?;
        let permit = self.admission.clone().try_acquire_owned().map_err(|_| {
            self.note_refused();
            AppError::Busy
        })?;
        Ok(Admission { _permit: Arc::new(permit), _share: Some(Arc::new(share)) })
    }

    /// Whether every place is taken, so [`HashPool::admit`] would refuse now.
    /// Lets the web layer turn a login flood away before doing any work.
    pub fn is_full(&self) -> bool {
        self.admission.available_permits() == 0
    }

    /// [`HashPool::verify`] in a place already reserved.
    pub async fn verify_admitted(&self, place: &Admission, password: &str, stored: &str) -> Result<Verified, AppError> {
        let settings = self.settings;
        let password = password.to_owned();
        let stored = stored.to_owned();
        self.run_admitted(place, move |memory| verify_in(settings, &password, &stored, memory)).await
    }

    /// [`HashPool::verify_dummy`] in a place already reserved.
    pub async fn verify_dummy_admitted(&self, place: &Admission, password: &str) -> Result<(), AppError> {
        let dummy = self.dummy_hash.clone();
        self.verify_admitted(place, password, &dummy).await.map(|_| ())
    }

    #[cfg(test)]
    async fn run<T: Send + 'static>(
        &self,
        job: impl FnOnce(&mut Vec<Block>) -> T + Send + 'static,
    ) -> Result<T, AppError> {
        let place = self.admit()?;
        self.run_admitted(&place, job).await
    }

    /// Queues `job` for a hashing thread and waits for its answer. The place
    /// is held until the job has run, even if the caller stops waiting, and
    /// as long as the caller keeps its [`Admission`].
    async fn run_admitted<T: Send + 'static>(
        &self,
        place: &Admission,
        job: impl FnOnce(&mut Vec<Block>) -> T + Send + 'static,
    ) -> Result<T, AppError> {
        let (tx, rx) = tokio::sync::oneshot::channel();
        // A signed-in user's check waits behind every sign-in.
        let lane = if place._share.is_some() { Lane::Later } else { Lane::First };
        let place = place.clone();
        let load = Arc::clone(&self.load);
        load.queued.fetch_add(1, Ordering::Relaxed);
        let job: Job = Box::new(move |memory| {
            load.queued.fetch_sub(1, Ordering::Relaxed);
            let running = Running::start(load);
            let out = job(memory);
            drop(running);
            // Given back before the answer, so the caller never finds its own place still taken.
            drop(place);
            let _ = tx.send(out);
        });
        self.jobs.push(job, lane).map_err(|()| AppError::Internal("hash pool stopped".into()))?;
        rx.await.map_err(|_| AppError::Internal("hash job failed".into()))
    }
}

/// A job running, counted until dropped (a panicking job too).
struct Running(Arc<Load>);

impl Running {
    fn start(load: Arc<Load>) -> Self {
        load.running.fetch_add(1, Ordering::Relaxed);
        Self(load)
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        self.0.running.fetch_sub(1, Ordering::Relaxed);
    }
}

impl Drop for HashPool {
    fn drop(&mut self) {
        self.jobs.close();
    }
}

/// A hashing thread: takes jobs until the pool is dropped.
fn work(queue: &Jobs) {
    lower_priority();
    let mut memory = Vec::new();
    loop {
        let Some(job) = queue.pop() else { return };
        // A job that panics loses its answer (the caller sees an error), not the thread.
        if std::panic::catch_unwind(AssertUnwindSafe(|| job(&mut memory))).is_err() {
            tracing::error!("a password hashing job panicked");
        }
    }
}

/// Makes this thread yield the CPU to page requests (Linux; elsewhere a no-op).
fn lower_priority() {
    #[cfg(target_os = "linux")]
    {
        let me = Some(rustix::thread::gettid());
        let current = rustix::process::getpriority_process(me).unwrap_or(0);
        if let Err(e) = rustix::process::setpriority_process(me, current.max(HASH_THREAD_NICE)) {
            tracing::debug!(error = %e, "hash thread priority unchanged");
        }
    }
}

/// At least `blocks` blocks of `memory`, grown if it is smaller.
fn blocks(memory: &mut Vec<Block>, blocks: usize) -> &mut [Block] {
    if memory.len() < blocks {
        *memory = vec![Block::default(); blocks];
    }
    &mut memory[..blocks]
}

fn internal(e: impl std::fmt::Display) -> AppError {
    AppError::Internal(format!("argon2: {e}"))
}

/// A new Argon2id PHC string for `password`, computed in `memory`.
fn hash_in(argon2: &Argon2<'_>, params: &Params, password: &str, memory: &mut Vec<Block>) -> Result<String, AppError> {
    let blocks = blocks(memory, params.block_count());
    let salt = SaltString::generate(&mut OsRng);
    let mut salt_buf = [0u8; 64];
    let salt_bytes = salt.as_salt().decode_b64(&mut salt_buf).map_err(internal)?;
    let len = params.output_len().unwrap_or(Params::DEFAULT_OUTPUT_LEN);
    let output = Output::init_with(len, |out| {
        argon2.hash_password_into_with_memory(password.as_bytes(), salt_bytes, out, &mut *blocks).map_err(Into::into)
    })
    .map_err(internal)?;
    phc(params, &salt, output)
}

/// An Argon2id PHC string with these parameters, salt and output.
fn phc(params: &Params, salt: &SaltString, output: Output) -> Result<String, AppError> {
    let phc = PasswordHash {
        algorithm: Algorithm::Argon2id.ident(),
        version: Some(Version::V0x13.into()),
        params: ParamsString::try_from(params).map_err(internal)?,
        salt: Some(salt.as_salt()),
        hash: Some(output),
    };
    Ok(phc.to_string())
}

/// A PHC string with the pool's parameters, a random salt and a random
/// output. Checking a password against it runs the same Argon2 computation
/// as a real check, and no password matches it (but for odds of 2^-256).
/// Nothing is hashed to make it: no Argon2 memory is taken at start.
fn dummy_phc(params: &Params) -> Result<String, AppError> {
    let len = params.output_len().unwrap_or(Params::DEFAULT_OUTPUT_LEN);
    let random: Vec<u8> = (0..len).map(|_| rand::random::<u8>()).collect();
    phc(params, &SaltString::generate(&mut OsRng), Output::new(&random).map_err(internal)?)
}

/// Whether `password` matches an Argon2 PHC string, computed in `memory`.
fn argon2_matches(parsed: &PasswordHash<'_>, password: &str, memory: &mut Vec<Block>) -> Option<bool> {
    let algorithm = Algorithm::try_from(parsed.algorithm).ok()?;
    let version = parsed.version.map(Version::try_from).transpose().ok()?.unwrap_or_default();
    let params = Params::try_from(parsed).ok()?;
    let expected = parsed.hash?;
    let mut salt_buf = [0u8; 64];
    let salt = parsed.salt?.decode_b64(&mut salt_buf).ok()?;
    let argon2 = Argon2::new(algorithm, version, params.clone());
    let mut out = vec![0u8; expected.len()];
    let blocks = blocks(memory, params.block_count());
    argon2.hash_password_into_with_memory(password.as_bytes(), salt, &mut out, blocks).ok()?;
    Some(bool::from(out.as_slice().ct_eq(expected.as_bytes())))
}

/// Checks `password` against `stored`, computing Argon2 in `memory`.
fn verify_in(current: Argon2Settings, password: &str, stored: &str, memory: &mut Vec<Block>) -> Verified {
    if stored.starts_with("$argon2") {
        let Ok(parsed) = PasswordHash::new(stored) else {
            return Verified { ok: false, needs_rehash: false };
        };
        let ok = argon2_matches(&parsed, password, memory).unwrap_or(false);
        let needs_rehash = match Params::try_from(&parsed) {
            Ok(p) => {
                parsed.algorithm != Algorithm::Argon2id.ident()
                    || p.m_cost() != current.memory_kib
                    || p.t_cost() != current.iterations
                    || p.p_cost() != current.parallelism
            }
            Err(_) => true,
        };
        return Verified { ok, needs_rehash };
    }
    let ok = if stored.starts_with("$2") {
        bcrypt_matches(password, stored)
    } else {
        werkzeug::verify(password, stored).unwrap_or(false)
    };
    Verified { ok, needs_rehash: true }
}

/// Whether `password` matches a bcrypt hash (`$2b$`, and the older `$2a$`
/// and `$2y$` spellings), as other apps' imported users carry. Like the apps
/// that made them, only the first 72 bytes of the password count.
fn bcrypt_matches(password: &str, stored: &str) -> bool {
    let known = ["$2a$", "$2b$", "$2y$"].iter().any(|p| stored.starts_with(p));
    known && bcrypt::verify(password, stored).unwrap_or(false)
}

/// Werkzeug's `generate_password_hash` formats:
/// `pbkdf2:sha256:N$salt$hex`, `pbkdf2:sha512:N$salt$hex` and `scrypt:N:r:p$salt$hex`.
/// The salt is used as the text it is; the hex is the derived key.
pub mod werkzeug {
    use super::ConstantTimeEq;

    /// `Some(matches)` for a Werkzeug hash we understand, `None` otherwise.
    pub fn verify(password: &str, stored: &str) -> Option<bool> {
        let mut parts = stored.splitn(3, '$');
        let method = parts.next()?;
        let salt = parts.next()?;
        let expected = hex::decode(parts.next()?).ok()?;
        if expected.is_empty() || expected.len() > 1024 {
            return None;
        }
        let mut out = vec![0u8; expected.len()];
        let mut m = method.split(':');
        match m.next()? {
            "pbkdf2" => {
                let digest = m.next().unwrap_or("sha256");
                let rounds: u32 = match m.next() {
                    Some(n) => n.parse().ok()?,
                    None => 600_000,
                };
                if rounds == 0 || rounds > 10_000_000 {
                    return None;
                }
                match digest {
                    "sha256" => {
                        pbkdf2::pbkdf2_hmac::<sha2::Sha256>(password.as_bytes(), salt.as_bytes(), rounds, &mut out)
                    }
                    "sha512" => {
                        pbkdf2::pbkdf2_hmac::<sha2::Sha512>(password.as_bytes(), salt.as_bytes(), rounds, &mut out)
                    }
                    _ => return None,
                }
            }
            "scrypt" => {
                let n: u64 = m.next().map_or(Some(32_768), |s| s.parse().ok())?;
                let r: u32 = m.next().map_or(Some(8), |s| s.parse().ok())?;
                let p: u32 = m.next().map_or(Some(1), |s| s.parse().ok())?;
                if !n.is_power_of_two() || n < 2 || r == 0 || p == 0 || r > 64 || p > 64 {
                    return None;
                }
                let log_n = u8::try_from(n.trailing_zeros()).ok()?;
                if log_n > 20 {
                    return None;
                }
                let params = scrypt::Params::new(log_n, r, p, out.len()).ok()?;
                scrypt::scrypt(password.as_bytes(), salt.as_bytes(), &params, &mut out).ok()?;
            }
            _ => return None,
        }
        Some(bool::from(out.ct_eq(&expected)))
    }
}

#[cfg(test)]
mod tests;
