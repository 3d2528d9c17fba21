//! Hot paths that need the real services: session lookup (cookie → session ⋈
//! user on a real SQLite store), password verification at the configured
//! (default) Argon2id cost, the `next` check, and what the metrics add to a
//! request (its counter and histogram, into the Prometheus recorder).
//!
//! `cargo bench --bench hot_paths` (criterion; `-- session` etc. to filter).

use std::collections::BTreeMap;
use std::hint::black_box;
use std::time::Duration;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use portcullis::config::{Config, Sources};
use portcullis::server::{self, Services};
use portcullis_app::accounts::Registration;
use portcullis_app::model::ClientInfo;
use portcullis_app::{Argon2Settings, HashPool};
use portcullis_domain::safe_next;

/// Users (each with one live session) in the store the lookup runs against.
const USERS: usize = 1_000;

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread().enable_all().build().expect("tokio runtime")
}

/// Services on a fresh SQLite data directory. Argon2 is cheap here: it only
/// pays for registering the users, which is not what is measured.
async fn services(dir: &std::path::Path) -> Services {
    let mut map = BTreeMap::new();
    map.insert("PORTCULLIS_DATA_DIR".to_owned(), dir.display().to_string());
    map.insert("PORTCULLIS_ARGON2_MEMORY_KIB".to_owned(), "1024".to_owned());
    map.insert("PORTCULLIS_ARGON2_ITERATIONS".to_owned(), "1".to_owned());
    map.insert("PORTCULLIS_LOG".to_owned(), "warn".to_owned());
    let config = Config::load(&Sources::from_map(map)).expect("bench configuration");
    server::open(&config).await.expect("open the store")
}

fn session_lookup(c: &mut Criterion) {
    let rt = runtime();
    let dir = tempfile::tempdir().expect("temp dir");
    let services = rt.block_on(services(dir.path()));
    let accounts = &services.accounts;
    let cookies: Vec<String> = rt.block_on(async {
        let mut cookies = Vec::with_capacity(USERS);
        for i in 0..USERS {
            let reg = Registration {
                username: format!("user{i:04}"),
                email: format!("user{i:04}@example.com"),
                password: format!("password-{i:04}"),
                is_admin: false,
                email_verified: true,
            };
            let user = accounts.register(reg, &portcullis_app::Origin::default()).await.expect("register");
            let client =
                ClientInfo { ip: Some(std::net::Ipv4Addr::LOCALHOST.into()), user_agent: Some("bench".into()) };
            let new = accounts.start_session(&user, false, client).await.expect("start session");
            cookies.push(new.cookie);
        }
        cookies
    });
    // A cookie whose id exists but whose secret is wrong: the same read, then a refusal.
    let forged = {
        let (id, _) = cookies[0].split_once('.').expect("cookie is id.secret");
        format!("{id}.AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA")
    };

    let mut g = c.benchmark_group("session_lookup");
    g.throughput(Throughput::Elements(1));
    let mut i = 0usize;
    g.bench_function("resolve_session_live_1000_users", |b| {
        b.iter(|| {
            i = (i + 1) % cookies.len();
            let found = rt.block_on(accounts.resolve_session(black_box(&cookies[i]))).expect("lookup");
            assert!(found.is_some(), "session is live");
            found
        })
    });
    g.bench_function("resolve_session_wrong_secret", |b| {
        b.iter(|| {
            let found = rt.block_on(accounts.resolve_session(black_box(&forged))).expect("lookup");
            assert!(found.is_none(), "forged cookie is refused");
        })
    });
    g.bench_function("resolve_session_malformed_cookie", |b| {
        b.iter(|| rt.block_on(accounts.resolve_session(black_box("not-a-session-cookie"))).expect("lookup"))
    });
    g.finish();
    rt.block_on(services.store.close());
}

fn password_verify(c: &mut Criterion) {
    let rt = runtime();
    let settings = Argon2Settings::default();
    let (workers, queue) = HashPool::default_sizes();
    let pool = HashPool::new(settings, workers, queue).expect("hash pool");
    let stored = rt.block_on(pool.hash("password-0001")).expect("hash");
    assert!(stored.starts_with("$argon2id$"), "{stored}");

    let mut g = c.benchmark_group("password_verify");
    g.sample_size(10).measurement_time(Duration::from_secs(8)).throughput(Throughput::Elements(1));
    let id = format!("argon2id_m{}_t{}_p{}", settings.memory_kib, settings.iterations, settings.parallelism);
    g.bench_function(format!("{id}_match"), |b| {
        b.iter(|| {
            let v = rt.block_on(pool.verify(black_box("password-0001"), &stored)).expect("verify");
            assert!(v.ok && !v.needs_rehash);
        })
    });
    g.bench_function(format!("{id}_mismatch"), |b| {
        b.iter(|| {
            let v = rt.block_on(pool.verify(black_box("wrong-password"), &stored)).expect("verify");
            assert!(!v.ok);
        })
    });
    g.finish();
}

fn next_check(c: &mut Criterion) {
    let mut g = c.benchmark_group("safe_next");
    let long = format!("/posts/1?{}", "a=b&".repeat(400));
    let cases: [(&str, &str); 6] = [
        ("local_path", "/posts/42/edit"),
        ("local_with_query", "/admin/users?q=user0001&after=120"),
        ("scheme_relative", "//evil.example"),
        ("encoded_scheme_relative", "/%2F%2Fevil.example"),
        ("absolute_url", "https://evil.example/login"),
        ("long_query_1600b", long.as_str()),
    ];
    for (name, input) in cases {
        g.bench_function(name, |b| b.iter(|| safe_next(black_box(input))));
    }
    g.finish();
}

/// What `PORTCULLIS_METRICS_BIND` adds to every request: one counter and
/// one histogram sample, by route template, method and status.
fn metrics_record(c: &mut Criterion) {
    use axum::http::{Method, StatusCode};
    use portcullis_web::metrics::MatchedRoute;
    let exporter = portcullis::metrics::Exporter::new().expect("exporter");
    let http = exporter.http();
    let routes = portcullis_web::routes::route_list();
    let index = routes.iter().position(|(_, p)| *p == "/dashboard").expect("the dashboard route");
    let dashboard = Some(MatchedRoute { template: "/dashboard", index });
    // The API's routes are counted after the pages', in their own order.
    let me = portcullis_web::api::route_templates().iter().position(|t| *t == "/api/v1/me").expect("the API's me");
    let api = Some(MatchedRoute { template: "/api/v1/me", index: routes.len() + me });
    let mut g = c.benchmark_group("metrics");
    g.throughput(Throughput::Elements(1));
    g.bench_function("record_page_request", |b| {
        b.iter(|| http.record(black_box(dashboard), &Method::GET, StatusCode::OK, Duration::from_micros(250)));
    });
    g.bench_function("record_api_request", |b| {
        b.iter(|| http.record(black_box(api), &Method::GET, StatusCode::OK, Duration::from_micros(250)));
    });
    g.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default().warm_up_time(Duration::from_secs(1)).measurement_time(Duration::from_secs(4));
    targets = session_lookup, password_verify, next_check, metrics_record
}
criterion_main!(benches);
