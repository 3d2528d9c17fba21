//! Password hashing: Argon2id on a bounded pool of blocking threads, and
//! verification of the Werkzeug hashes a Flask app leaves behind.
//!
//! The pool has `workers` threads' worth of permits and admits at most
//! `queue` more waiting jobs; past that a caller gets [`PoolBusy`] at once,
//! so a login flood gets quick refusals instead of an unbounded queue, and
//! page requests keep their threads.
//!
//! Argon2's working memory (`m_cost` KiB per hash) is kept between jobs, one
//! buffer per worker, rather than allocated and freed each time: freed
//! buffers of that size stay in the allocator's per-thread arenas, and with
//! blocking threads coming and going the process would grow to many times
//! `workers × m_cost`.

use std::sync::{Arc, Mutex};

use argon2::password_hash::rand_core::OsRng;
use argon2::password_hash::{Output, ParamsString, PasswordHash, SaltString};
use argon2::{Algorithm, Argon2, Block, Params, Version};
use subtle::ConstantTimeEq;
use tokio::sync::Semaphore;

use crate::error::AppError;
use crate::settings::Argon2Settings;

/// The pool is full: try again later.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("password hashing pool is full")]
pub struct PoolBusy;

/// A reserved place in the hashing pool (released when dropped).
#[derive(Debug)]
pub struct Admission {
    _permit: tokio::sync::OwnedSemaphorePermit,
}

/// The outcome of checking a password against a stored hash.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Verified {
    /// The password matched.
    pub ok: bool,
    /// The hash is not Argon2id at the current cost and should be replaced.
    pub needs_rehash: bool,
}

/// Argon2id hashing and verification on a bounded blocking pool.
pub struct HashPool {
    argon2: Argon2<'static>,
    params: Params,
    memory: Arc<Memory>,
    settings: Argon2Settings,
    workers: Arc<Semaphore>,
    admission: Arc<Semaphore>,
    dummy_hash: String,
}

impl HashPool {
    /// A pool of `workers` concurrent hashes with up to `queue` more waiting.
    pub fn new(settings: Argon2Settings, workers: usize, queue: usize) -> Result<Self, AppError> {
        let params = Params::new(settings.memory_kib, settings.iterations, settings.parallelism, None)
            .map_err(|e| AppError::Internal(format!("argon2 parameters: {e}")))?;
        let argon2 = Argon2::new(Algorithm::Argon2id, Version::V0x13, params.clone());
        let workers = workers.max(1);
        // A hash of a random password: unknown users are checked against it so
        // that they cost exactly what a real user costs.
        let dummy_hash = hash_with(&argon2, &params, &format!("{:x}", rand::random::<u128>()))?;
        Ok(Self {
            argon2,
            params,
            memory: Arc::new(Memory { spare: Mutex::new(Vec::new()), keep: workers }),
            settings,
            workers: Arc::new(Semaphore::new(workers)),
            admission: Arc::new(Semaphore::new(workers + queue)),
            dummy_hash,
        })
    }

    /// Default sizes for this machine: one worker per core, four waiting per worker.
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
        let argon2 = self.argon2.clone();
        let params = self.params.clone();
        let memory = self.memory.clone();
        let password = password.to_owned();
        self.run(move || memory.with(params.block_count(), |blocks| hash_in(&argon2, &params, &password, blocks)))
            .await?
    }

    /// Checks `password` against a stored hash of any supported format.
    pub async fn verify(&self, password: &str, stored: &str) -> Result<Verified, AppError> {
        let place = self.admit()?;
        self.verify_admitted(place, password, stored).await
    }

    /// Spends one verification on nothing, so unknown users cost the same as known ones.
    pub async fn verify_dummy(&self, password: &str) -> Result<(), AppError> {
        let place = self.admit()?;
        self.verify_dummy_admitted(place, password).await
    }

    /// Reserves a place in the pool, or refuses at once when it is full. A
    /// caller that must not do anything (such as counting a login attempt)
    /// unless its check will really run takes its place first.
    pub fn admit(&self) -> Result<Admission, PoolBusy> {
        self.admission.clone().try_acquire_owned().map(|p| Admission { _permit: p }).map_err(|_| PoolBusy)
    }

    /// [`HashPool::verify`] in a place already reserved.
    pub async fn verify_admitted(&self, place: Admission, password: &str, stored: &str) -> Result<Verified, AppError> {
        let settings = self.settings;
        let memory = self.memory.clone();
        let password = password.to_owned();
        let stored = stored.to_owned();
        self.run_admitted(place, move || verify_in(settings, &password, &stored, &memory)).await
    }

    /// [`HashPool::verify_dummy`] in a place already reserved.
    pub async fn verify_dummy_admitted(&self, place: Admission, password: &str) -> Result<(), AppError> {
        let dummy = self.dummy_hash.clone();
        self.verify_admitted(place, password, &dummy).await.map(|_| ())
    }

    async fn run<T: Send + 'static>(&self, job: impl FnOnce() -> T + Send + 'static) -> Result<T, AppError> {
        let place = self.admit()?;
        self.run_admitted(place, job).await
    }

    async fn run_admitted<T: Send + 'static>(
        &self,
        _place: Admission,
        job: impl FnOnce() -> T + Send + 'static,
    ) -> Result<T, AppError> {
        let _worker =
            self.workers.clone().acquire_owned().await.map_err(|_| AppError::Internal("hash pool closed".into()))?;
        tokio::task::spawn_blocking(job).await.map_err(|e| AppError::Internal(format!("hash task: {e}")))
    }
}

/// Argon2 working memory kept for the next job.
struct Memory {
    spare: Mutex<Vec<Vec<Block>>>,
    keep: usize,
}

impl Memory {
    /// Runs `job` on at least `blocks` blocks of working memory, taken from
    /// the spares (or allocated) and given back afterwards.
    fn with<T>(&self, blocks: usize, job: impl FnOnce(&mut [Block]) -> T) -> T {
        let spare = self.spare.lock().map(|mut s| s.pop()).unwrap_or(None);
        let mut buffer = match spare {
            Some(b) if b.len() >= blocks => b,
            _ => vec![Block::default(); blocks],
        };
        let out = job(&mut buffer);
        if let Ok(mut spare) = self.spare.lock()
            && spare.len() < self.keep
        {
            spare.push(buffer);
        }
        out
    }
}

fn internal(e: impl std::fmt::Display) -> AppError {
    AppError::Internal(format!("argon2: {e}"))
}

fn hash_with(argon2: &Argon2<'_>, params: &Params, password: &str) -> Result<String, AppError> {
    hash_in(argon2, params, password, &mut vec![Block::default(); params.block_count()])
}

/// A new Argon2id PHC string for `password`, computed in `blocks`.
fn hash_in(argon2: &Argon2<'_>, params: &Params, password: &str, blocks: &mut [Block]) -> Result<String, AppError> {
    let salt = SaltString::generate(&mut OsRng);
    let mut salt_buf = [0u8; 64];
    let salt_bytes = salt.as_salt().decode_b64(&mut salt_buf).map_err(internal)?;
    let len = params.output_len().unwrap_or(Params::DEFAULT_OUTPUT_LEN);
    let output = Output::init_with(len, |out| {
        argon2.hash_password_into_with_memory(password.as_bytes(), salt_bytes, out, &mut *blocks).map_err(Into::into)
    })
    .map_err(internal)?;
    let phc = PasswordHash {
        algorithm: Algorithm::Argon2id.ident(),
        version: Some(Version::V0x13.into()),
        params: ParamsString::try_from(params).map_err(internal)?,
        salt: Some(salt.as_salt()),
        hash: Some(output),
    };
    Ok(phc.to_string())
}

/// Whether `password` matches an Argon2 PHC string, computed in memory from `memory`.
fn argon2_matches(parsed: &PasswordHash<'_>, password: &str, memory: &Memory) -> Option<bool> {
    let algorithm = Algorithm::try_from(parsed.algorithm).ok()?;
    let version = parsed.version.map(Version::try_from).transpose().ok()?.unwrap_or_default();
    let params = Params::try_from(parsed).ok()?;
    let expected = parsed.hash?;
    let mut salt_buf = [0u8; 64];
    let salt = parsed.salt?.decode_b64(&mut salt_buf).ok()?;
    let argon2 = Argon2::new(algorithm, version, params.clone());
    let mut out = vec![0u8; expected.len()];
    memory
        .with(params.block_count(), |blocks| {
            argon2.hash_password_into_with_memory(password.as_bytes(), salt, &mut out, blocks)
        })
        .ok()?;
    Some(bool::from(out.as_slice().ct_eq(expected.as_bytes())))
}

/// Synchronous verification, for callers already off the async threads.
pub fn verify_with(current: Argon2Settings, password: &str, stored: &str) -> Verified {
    verify_in(current, password, stored, &Memory { spare: Mutex::new(Vec::new()), keep: 0 })
}

fn verify_in(current: Argon2Settings, password: &str, stored: &str, memory: &Memory) -> Verified {
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
    let ok = werkzeug::verify(password, stored).unwrap_or(false);
    Verified { ok, needs_rehash: true }
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
mod tests {
    use super::*;

    fn cheap() -> Argon2Settings {
        Argon2Settings { memory_kib: 1024, iterations: 1, parallelism: 1 }
    }

    #[tokio::test]
    async fn argon2id_round_trips_long_and_unicode_passwords() {
        let pool = HashPool::new(cheap(), 2, 2).expect("pool");
        let long: String = "ab€🔐".repeat(64);
        for pw in ["correct horse battery staple", "pässwörd-日本語-🔐", long.as_str()] {
            let h = pool.hash(pw).await.expect("hash");
            assert!(h.starts_with("$argon2id$v=19$m=1024,t=1,p=1$"), "{h}");
            assert_eq!(pool.verify(pw, &h).await.expect("verify"), Verified { ok: true, needs_rehash: false });
            let wrong = format!("{pw}x");
            assert!(!pool.verify(&wrong, &h).await.expect("verify").ok);
        }
        // Two hashes of one password differ: the salt is random.
        assert_ne!(pool.hash("same").await.expect("h"), pool.hash("same").await.expect("h"));
    }

    #[tokio::test]
    async fn hashes_agree_with_the_argon2_crates_own() {
        use argon2::{PasswordHasher as _, PasswordVerifier as _};
        let pool = HashPool::new(cheap(), 1, 1).expect("pool");
        let ours = pool.hash("correct horse").await.expect("hash");
        let theirs = PasswordHash::new(&ours).expect("a PHC string");
        let params = Params::new(1024, 1, 1, None).expect("params");
        let reference = Argon2::new(Algorithm::Argon2id, Version::V0x13, params);
        assert!(reference.verify_password(b"correct horse", &theirs).is_ok());
        assert!(reference.verify_password(b"correct horsf", &theirs).is_err());
        let salt = SaltString::generate(&mut OsRng);
        let made_elsewhere = reference.hash_password(b"battery staple", &salt).expect("hash").to_string();
        assert!(pool.verify("battery staple", &made_elsewhere).await.expect("verify").ok);
        assert!(!pool.verify("battery stapler", &made_elsewhere).await.expect("verify").ok);
        // Argon2i and Argon2d hashes verify too (and are marked for rehash).
        for alg in [Algorithm::Argon2i, Algorithm::Argon2d] {
            let other = Argon2::new(alg, Version::V0x13, Params::new(1024, 1, 1, None).expect("params"));
            let h = other.hash_password(b"legacy", &salt).expect("hash").to_string();
            assert_eq!(pool.verify("legacy", &h).await.expect("verify"), Verified { ok: true, needs_rehash: true });
        }
    }

    #[tokio::test]
    async fn working_memory_is_kept_once_per_worker() {
        let pool = Arc::new(HashPool::new(cheap(), 2, 8).expect("pool"));
        let h = pool.hash("pw").await.expect("hash");
        let mut jobs = Vec::new();
        for _ in 0..8 {
            let (p, h) = (pool.clone(), h.clone());
            jobs.push(tokio::spawn(async move { p.verify("pw", &h).await }));
        }
        for j in jobs {
            assert!(j.await.expect("join").expect("verify").ok);
        }
        let spare = pool.memory.spare.lock().expect("lock");
        assert!((1..=2).contains(&spare.len()), "{} buffers kept for 2 workers", spare.len());
        assert!(spare.iter().all(|b| b.len() == 1024), "each the size of one hash");
    }

    #[tokio::test]
    async fn hashes_below_current_cost_need_rehash() {
        let weak = HashPool::new(cheap(), 1, 1).expect("pool");
        let h = weak.hash("secret-password").await.expect("hash");
        let strong =
            HashPool::new(Argon2Settings { memory_kib: 2048, iterations: 2, parallelism: 1 }, 1, 1).expect("pool");
        assert_eq!(strong.verify("secret-password", &h).await.expect("v"), Verified { ok: true, needs_rehash: true });
    }

    #[tokio::test]
    async fn garbage_hashes_never_verify() {
        let pool = HashPool::new(cheap(), 1, 1).expect("pool");
        for junk in
            ["", "$argon2id$nonsense", "plaintext", "pbkdf2:sha256:1000$salt$zz", "md5$x$y", "scrypt:3:8:1$s$00"]
        {
            assert!(!pool.verify("x", junk).await.expect("verify").ok, "{junk}");
        }
    }

    #[tokio::test]
    async fn a_full_pool_refuses_at_once() {
        let pool = Arc::new(
            HashPool::new(Argon2Settings { memory_kib: 8192, iterations: 3, parallelism: 1 }, 1, 0).expect("pool"),
        );
        let mut tasks = Vec::new();
        for _ in 0..8 {
            let p = pool.clone();
            tasks.push(tokio::spawn(async move { p.hash("pw-pw-pw-pw").await }));
        }
        let mut busy = 0;
        for t in tasks {
            if matches!(t.await.expect("join"), Err(AppError::Busy)) {
                busy += 1;
            }
        }
        assert!(busy >= 1, "expected refusals when 8 jobs meet a pool of 1");
    }
}
