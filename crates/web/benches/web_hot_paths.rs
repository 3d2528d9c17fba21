//! Per-request work of the web layer: CSRF token mint and check, and the
//! dashboard page render.
//!
//! `cargo bench -p portcullis-web --bench web_hot_paths`

use std::hint::black_box;
use std::time::Duration;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use portcullis_app::model::ClientInfo;
use portcullis_app::{Post, Session, SignedIn, User};
use portcullis_web::context::{Flash, RequestCtx};
use portcullis_web::cookies::Signer;
use portcullis_web::csrf::{self, Binding};
use portcullis_web::pages::{Dashboard, PostList};
use portcullis_web::templates::Templates;

const SECRET: &[u8] = b"0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";

fn csrf_tokens(c: &mut Criterion) {
    let signer = Signer::new(SECRET);
    let session_binding = Binding::Session("Yk3l2n0vXy9QbM4tZ8rW1A");
    let anon_binding = Binding::Anon("c2VjcmV0LWZvci1hbm9ueW1vdXMtdmlz");
    let token = csrf::mint(&signer, session_binding);
    let foreign = csrf::mint(&signer, Binding::Session("someone-else"));

    let mut g = c.benchmark_group("csrf");
    g.throughput(Throughput::Elements(1));
    g.bench_function("mint_session", |b| b.iter(|| csrf::mint(&signer, black_box(session_binding))));
    g.bench_function("mint_anon", |b| b.iter(|| csrf::mint(&signer, black_box(anon_binding))));
    g.bench_function("check_valid", |b| {
        b.iter(|| assert!(csrf::check(&signer, black_box(session_binding), black_box(&token))))
    });
    g.bench_function("check_foreign_binding", |b| {
        b.iter(|| assert!(!csrf::check(&signer, black_box(session_binding), black_box(&foreign))))
    });
    g.bench_function("check_garbage", |b| {
        b.iter(|| assert!(!csrf::check(&signer, black_box(session_binding), black_box("not a token"))))
    });
    g.finish();
}

fn user() -> User {
    User {
        id: 2,
        username: "user0001".into(),
        email: "user0001@example.com".into(),
        password_hash: "$argon2id$v=19$m=19456,t=2,p=1$c2FsdHNhbHRzYWx0$aGFzaGhhc2hoYXNoaGFzaGhhc2hoYXNoaGFzaA".into(),
        is_admin: false,
        email_verified: true,
        security_stamp: "stamp-0001".into(),
        created_at: 1_700_000_000_000,
        updated_at: 1_700_000_000_000,
        last_login_at: Some(1_700_000_100_000),
        admin_locked_until: None,
    }
}

fn session() -> Session {
    Session {
        id: "Yk3l2n0vXy9QbM4tZ8rW1A".into(),
        secret_hash: "0".repeat(64),
        user_id: 2,
        security_stamp: "stamp-0001".into(),
        created_at: 1_700_000_100_000,
        last_seen_at: 1_700_000_100_000,
        expires_at: 1_700_086_500_000,
        remember: false,
        ip: Some("127.0.0.1".into()),
        user_agent: Some("portcullis-bench/1.0".into()),
    }
}

/// The dashboard of a user with `n` posts, as `GET /dashboard` renders it.
fn dashboard(c: &mut Criterion) {
    let templates = Templates;
    let signer = Signer::new(SECRET);
    let ctx = RequestCtx {
        auth: Some(std::sync::Arc::new(SignedIn { session: session(), user: user() })),
        csrf_token: csrf::mint(&signer, Binding::Session("Yk3l2n0vXy9QbM4tZ8rW1A")),
        flashes: Vec::new(),
        client: ClientInfo {
            ip: Some(std::net::Ipv4Addr::LOCALHOST.into()),
            user_agent: Some("portcullis-bench/1.0".into()),
        },
        path_and_query: "/dashboard".into(),
    };
    let posts = |n: i64| -> Vec<Post> {
        (0..n)
            .map(|i| Post {
                id: 100 + i,
                author_id: 2,
                author: "user0001".into(),
                title: format!("Post {i} by user0001"),
                content: "Lorem ipsum dolor sit amet, consectetur adipiscing elit. ".repeat(4),
                created_at: 1_700_000_200_000 + i * 1000,
                updated_at: 1_700_000_200_000 + i * 1000,
            })
            .collect()
    };

    let mut g = c.benchmark_group("render_dashboard");
    g.throughput(Throughput::Elements(1));
    for n in [3, 10] {
        let list = posts(n);
        let more = n >= 10; // a full page (PAGE_SIZE) links to the next one
        g.bench_function(format!("{n}_posts"), |b| {
            b.iter(|| {
                let list = PostList { posts: &list, next_before: more.then_some(100), paged: false };
                let r = templates.render(&Dashboard { ctx: black_box(&ctx), list });
                assert_eq!(r.status(), 200);
                r
            })
        });
    }
    let with_flash = RequestCtx { flashes: vec![Flash::success("Post created successfully")], ..ctx.clone() };
    let list = posts(3);
    g.bench_function("3_posts_with_flash", |b| {
        b.iter(|| {
            let list = PostList { posts: &list, next_before: None, paged: false };
            templates.render(&Dashboard { ctx: black_box(&with_flash), list })
        })
    });
    g.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default().warm_up_time(Duration::from_secs(1)).measurement_time(Duration::from_secs(4));
    targets = csrf_tokens, dashboard
}
criterion_main!(benches);
