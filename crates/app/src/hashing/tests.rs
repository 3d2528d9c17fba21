//! The pool's tests: hashes and checks, sizes, lanes, shares.

use std::sync::Mutex;

use super::*;

fn cheap() -> Argon2Settings {
    Argon2Settings { memory_kib: 1024, iterations: 1, parallelism: 1 }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sign_in_waiting_goes_before_signed_in_users_checks() {
    let pool = Arc::new(HashPool::new(cheap(), 1, 8).expect("pool"));
    let order = Arc::new(Mutex::new(Vec::new()));
    // The one thread is busy until told.
    let (go, wait) = std::sync::mpsc::channel::<()>();
    let busy = {
        let (pool, place) = (pool.clone(), pool.admit().expect("place"));
        tokio::spawn(async move { pool.run_admitted(&place, move |_| wait.recv().is_ok()).await })
    };
    while pool.load().0 < 1 {
        tokio::task::yield_now().await;
    }
    // Two account-page checks queue first, then a sign-in.
    let mut queued = Vec::new();
    for (name, place) in [
        ("check 1", pool.admit_check(1, None).expect("share")),
        ("check 2", pool.admit_check(2, None).expect("share")),
        ("sign-in", pool.admit().expect("place")),
    ] {
        let (runner, order) = (pool.clone(), order.clone());
        queued.push(tokio::spawn(async move {
            runner.run_admitted(&place, move |_| order.lock().expect("order").push(name)).await
        }));
        while pool.load().1 < queued.len() {
            tokio::task::yield_now().await;
        }
    }
    go.send(()).expect("release");
    assert!(busy.await.expect("task").expect("job"));
    for q in queued {
        q.await.expect("task").expect("job");
    }
    assert_eq!(*order.lock().expect("order"), ["sign-in", "check 1", "check 2"]);
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
async fn the_dummy_hash_costs_what_a_real_one_does_and_matches_nothing() {
    let pool = HashPool::new(cheap(), 1, 4).expect("pool");
    let real = pool.hash("pw").await.expect("hash");
    // `$argon2id$v=19$m=1024,t=1,p=1`: the same computation when checked.
    let head = |h: &str| h.rsplitn(3, '$').nth(2).map(str::to_owned);
    assert_eq!(head(&pool.dummy_hash), head(&real), "{}", pool.dummy_hash);
    let (dummy, real) =
        (PasswordHash::new(&pool.dummy_hash).expect("a PHC string"), PasswordHash::new(&real).expect("phc"));
    assert_eq!(dummy.hash.map(|h| h.len()), real.hash.map(|h| h.len()));
    assert_eq!(dummy.salt.map(|s| s.len()), real.salt.map(|s| s.len()));
    for pw in ["", "pw", "password"] {
        assert!(!pool.verify(pw, &pool.dummy_hash).await.expect("verify").ok);
    }
    pool.verify_dummy("pw").await.expect("spent");
    assert_ne!(pool.dummy_hash, HashPool::new(cheap(), 1, 1).expect("pool").dummy_hash, "random for each pool");
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
async fn hashes_run_on_the_pools_threads_each_keeping_its_memory() {
    let pool = Arc::new(HashPool::new(cheap(), 2, 16).expect("pool"));
    let h = pool.hash("pw").await.expect("hash");
    let mut jobs = Vec::new();
    for _ in 0..12 {
        let (p, h) = (pool.clone(), h.clone());
        jobs.push(tokio::spawn(async move {
            assert!(p.verify("pw", &h).await.expect("verify").ok);
            p.run(|memory| {
                let name = std::thread::current().name().map(str::to_owned);
                #[cfg(target_os = "linux")]
                let nice = rustix::process::getpriority_process(Some(rustix::thread::gettid())).expect("nice");
                #[cfg(not(target_os = "linux"))]
                let nice = HASH_THREAD_NICE;
                (name, memory.as_ptr() as usize, memory.len(), nice)
            })
            .await
            .expect("run")
        }));
    }
    let mut seen = std::collections::HashMap::new();
    for j in jobs {
        let (name, buffer, len, nice) = j.await.expect("join");
        let name = name.expect("a named thread");
        assert!(name.starts_with("portcullis-hash-"), "{name}");
        assert_eq!(len, 1024, "one hash's worth of blocks");
        assert!(nice >= HASH_THREAD_NICE, "hash threads yield to page requests: nice {nice}");
        let first = *seen.entry(name).or_insert(buffer);
        assert_eq!(first, buffer, "a thread reuses its buffer");
    }
    assert!((1..=2).contains(&seen.len()), "{} threads for 2 workers", seen.len());
}

#[tokio::test]
async fn hashes_below_current_cost_need_rehash() {
    let weak = HashPool::new(cheap(), 1, 1).expect("pool");
    let h = weak.hash("secret-password").await.expect("hash");
    let strong = HashPool::new(Argon2Settings { memory_kib: 2048, iterations: 2, parallelism: 1 }, 1, 1).expect("pool");
    assert_eq!(strong.verify("secret-password", &h).await.expect("v"), Verified { ok: true, needs_rehash: true });
}

#[tokio::test]
async fn garbage_hashes_never_verify() {
    let pool = HashPool::new(cheap(), 1, 1).expect("pool");
    for junk in ["", "$argon2id$nonsense", "plaintext", "pbkdf2:sha256:1000$salt$zz", "md5$x$y", "scrypt:3:8:1$s$00"] {
        assert!(!pool.verify("x", junk).await.expect("verify").ok, "{junk}");
    }
}

#[tokio::test]
async fn bcrypt_hashes_verify_and_are_upgraded() {
    let pool = HashPool::new(cheap(), 1, 1).expect("pool");
    let h = bcrypt::hash("hunter2-but-longer", 4).expect("bcrypt");
    assert!(h.starts_with("$2b$04$"), "{h}");
    assert_eq!(pool.verify("hunter2-but-longer", &h).await.expect("v"), Verified { ok: true, needs_rehash: true });
    assert!(!pool.verify("hunter2-but-longe", &h).await.expect("v").ok);
    // Only the spellings bcrypt has: `$2x$` (a broken old one) and junk never match.
    assert!(!pool.verify("hunter2-but-longer", &h.replacen("$2b$", "$2x$", 1)).await.expect("v").ok);
    assert!(!pool.verify("x", "$2b$04$short").await.expect("v").ok);
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
