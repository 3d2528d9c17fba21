//! Raw Argon2id verification rate at the configured cost, for comparing the
//! login flow against: `bench/run.sh` runs it pinned to the server's core.
//!
//! `cargo bench --bench argon2_rate -- [--seconds 10] [--threads N]`
//!
//! The cost comes from the same configuration as the server
//! (`PORTCULLIS_ARGON2_MEMORY_KIB` / `_ITERATIONS` / `_PARALLELISM`, default
//! 19456 / 2 / 1). Threads default to the cores this process may run on
//! (one under `taskset -c 0`), like the server's hash pool. Each thread
//! verifies one stored hash in a loop through `HashPool::verify`, whose
//! bookkeeping (two semaphores, a blocking-thread hand-off) costs microseconds
//! against tens of milliseconds of Argon2. Prints `FIGURE` lines.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use portcullis::config::{Config, Sources};
use portcullis_app::HashPool;

fn arg(args: &[String], name: &str) -> Option<String> {
    args.iter().position(|a| a == name).and_then(|i| args.get(i + 1).cloned())
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let seconds: f64 = arg(&args, "--seconds").map_or(10.0, |s| s.parse().expect("--seconds is a number"));
    let threads: usize = arg(&args, "--threads").map_or_else(
        || std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1),
        |s| s.parse().expect("--threads is a number"),
    );
    let label = arg(&args, "--label").unwrap_or_else(|| "argon2id-raw".to_owned());
    let sources = Sources::from_process().expect("configuration sources");
    let config = Config::load(&sources).expect("configuration");
    let settings = config.argon2;

    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(threads)
        .enable_all()
        .build()
        .expect("tokio runtime");
    let pool = Arc::new(HashPool::new(settings, threads, threads).expect("hash pool"));
    let stored = rt.block_on(pool.hash("password-0001")).expect("hash");
    let done = Arc::new(AtomicU64::new(0));

    // One verification first so that page faults of the first run are not counted.
    let first = rt.block_on(pool.verify("password-0001", &stored)).expect("verify");
    assert!(first.ok, "the hash verifies");

    let start = Instant::now();
    let end = start + Duration::from_secs_f64(seconds);
    rt.block_on(async {
        let mut tasks = Vec::new();
        for _ in 0..threads {
            let (pool, stored, done) = (pool.clone(), stored.clone(), done.clone());
            tasks.push(tokio::spawn(async move {
                while Instant::now() < end {
                    let v = pool.verify("password-0001", &stored).await.expect("verify");
                    assert!(v.ok);
                    done.fetch_add(1, Ordering::Relaxed);
                }
            }));
        }
        for t in tasks {
            t.await.expect("verify task");
        }
    });
    let elapsed = start.elapsed().as_secs_f64();
    let n = done.load(Ordering::Relaxed);
    println!(
        "# argon2id m={} t={} p={} threads={} verifications={} seconds={:.2}",
        settings.memory_kib, settings.iterations, settings.parallelism, threads, n, elapsed
    );
    println!("FIGURE {label} hash_verify verif_per_s {:.2}", n as f64 / elapsed);
    println!("FIGURE {label} hash_verify ms_per_verif {:.1}", 1000.0 * elapsed * threads as f64 / n.max(1) as f64);
}
