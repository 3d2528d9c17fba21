//! Login answers cost the same whether the account exists or not: an unknown
//! name and a known name with a wrong password are timed side by side at the
//! default Argon2id cost. (Timing belongs in a benchmark,
//! not in a test: the machines are shared and noisy.)
//!
//! `cargo bench --bench login_timing`

use std::collections::BTreeMap;
use std::hint::black_box;
use std::time::Duration;

use criterion::{Criterion, criterion_group, criterion_main};
use portcullis::config::{Config, Sources};
use portcullis::server;
use portcullis_app::AppError;
use portcullis_app::accounts::Registration;

fn login_timing(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build().expect("tokio runtime");
    let dir = tempfile::tempdir().expect("temp dir");
    let mut map = BTreeMap::new();
    map.insert("PORTCULLIS_DATA_DIR".to_owned(), dir.path().display().to_string());
    // Never lock during the measurement.
    map.insert("PORTCULLIS_LOCKOUT_THRESHOLD".to_owned(), "1000".to_owned());
    map.insert("PORTCULLIS_LOG".to_owned(), "warn".to_owned());
    let config = Config::load(&Sources::from_map(map)).expect("configuration");
    let services = rt.block_on(server::open(&config)).expect("open the store");
    let accounts = services.accounts.clone();
    rt.block_on(accounts.register(
        Registration {
            username: "alice".into(),
            email: "alice@example.com".into(),
            password: "correct horse battery staple".into(),
            is_admin: false,
            email_verified: true,
        },
        &portcullis_app::Origin::default(),
    ))
    .expect("register");

    let mut g = c.benchmark_group("login_answer");
    g.sample_size(20).measurement_time(Duration::from_secs(10));
    g.bench_function("unknown_user", |b| {
        b.iter(|| {
            let r = rt.block_on(accounts.authenticate(
                black_box("mallory"),
                "wrong password!",
                None,
                &portcullis_app::Origin::default(),
            ));
            assert!(matches!(r, Err(AppError::InvalidCredentials)));
        })
    });
    g.bench_function("known_user_wrong_password", |b| {
        b.iter(|| {
            let r = rt.block_on(accounts.authenticate(
                black_box("alice"),
                "wrong password!",
                None,
                &portcullis_app::Origin::default(),
            ));
            assert!(matches!(r, Err(AppError::InvalidCredentials)));
        })
    });
    g.finish();
    rt.block_on(services.store.close());
}

criterion_group!(benches, login_timing);
criterion_main!(benches);
