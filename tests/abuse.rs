//! Abuse resistance over a real socket: lockout with device cookies, per-IP
//! rate limits behind trusted and untrusted proxies, and the audit record.

#[allow(dead_code, reason = "shared by several test binaries, each using the services it needs")]
#[path = "../crates/store/tests/support/services.rs"]
mod services;

use portcullis::testing::{SmtpSink, TestApp};

const PW: &str = "correct horse battery staple";

async fn guess(app: &TestApp, who: &str, n: usize) {
    for i in 0..n {
        let res = app.client().login(who, &format!("wrong guess {i}"), false).await;
        assert_eq!(res.status, 200);
    }
}

#[tokio::test]
async fn the_owners_browser_keeps_its_own_allowance() {
    let app = TestApp::spawn_with(&[("PORTCULLIS_LOCKOUT_THRESHOLD", "3")]).await;
    app.create_user("alice", "alice@example.com", PW, false).await;
    app.create_user("bobby", "bob@example.com", PW, false).await;

    // The owner signed in on this browser before: it holds a device cookie.
    let owner = app.client();
    let res = owner.login("alice", PW, false).await;
    assert_eq!(res.status, 303);
    let device = res.set_cookie("portcullis_device").expect("device cookie");
    assert!(device.contains("HttpOnly") && device.contains("Max-Age="), "{device}");
    owner.submit("/dashboard", "/logout", &[]).await;

    // A stranger locks the name.
    guess(&app, "alice", 4).await;
    assert!(app.client().login("alice", PW, false).await.body.contains("temporarily locked"), "locked for others");

    // The owner's browser still gets in.
    assert_eq!(owner.login("alice", PW, false).await.status, 303);

    // The cookie is for alice only, and a forged one is worthless.
    guess(&app, "bobby", 4).await;
    owner.submit("/dashboard", "/logout", &[]).await;
    let res = owner.login("bobby", PW, false).await;
    assert!(res.body.contains("temporarily locked"));
    let forged = app.client();
    let value = owner.cookie("portcullis_device").expect("cookie");
    let mut tampered = value.clone();
    tampered.insert(0, 'x');
    forged.set_cookie("portcullis_device", &tampered);
    assert!(forged.login("alice", PW, false).await.body.contains("temporarily locked"));

    // The device has a threshold of its own.
    for i in 0..3 {
        owner.submit("/dashboard", "/logout", &[]).await;
        owner.login("alice", &format!("owner typo {i}"), false).await;
    }
    assert!(owner.login("alice", PW, false).await.body.contains("temporarily locked"));
}

#[tokio::test]
async fn an_admin_lock_is_not_bypassed_by_a_device_cookie() {
    let app = TestApp::spawn().await;
    let alice = app.create_user("alice", "alice@example.com", PW, false).await;
    let admin = app.create_user("admin", "admin@example.com", PW, true).await;
    let owner = app.client();
    assert_eq!(owner.login("alice", PW, false).await.status, 303);
    owner.submit("/dashboard", "/logout", &[]).await;
    let a = app.login_as(&admin).await;
    assert_eq!(a.submit("/admin/users", &format!("/admin/users/{}/lock", alice.id), &[]).await.status, 303);
    assert!(owner.login("alice", PW, false).await.body.contains("locked by an administrator"));
    assert_eq!(a.submit("/admin/users", &format!("/admin/users/{}/unlock", alice.id), &[]).await.status, 303);
    assert_eq!(owner.login("alice", PW, false).await.status, 303);
}

#[tokio::test]
async fn rate_limits_answer_429_with_retry_after() {
    let app = TestApp::spawn_with(&[("PORTCULLIS_RATE_LIMIT_PER_MINUTE", "3")]).await;
    app.create_user("alice", "alice@example.com", PW, false).await;
    let c = app.client();
    for _ in 0..3 {
        assert_eq!(c.login("alice", "wrong password!", false).await.status, 200);
    }
    let res = c.login("alice", PW, false).await;
    assert_eq!(res.status, 429);
    let wait: u64 = res.header("retry-after").expect("Retry-After").parse().expect("seconds");
    assert!((1..=60).contains(&wait), "{wait}");
    assert!(res.body.contains("Too many requests") && res.body.contains("/static/app.css"), "the site's page");
    assert!(res.set_cookie("portcullis_session").is_none());

    // Each form has its own allowance, and other pages are not limited.
    for _ in 0..10 {
        assert_eq!(c.get("/login").await.status, 200);
    }
    for (page, action, fields) in [
        ("/register", "/register", vec![("username", "x"), ("email", "bad"), ("password", "p")]),
        ("/forgot-password", "/forgot-password", vec![("email", "nobody@example.com")]),
    ] {
        for _ in 0..3 {
            assert_ne!(c.submit(page, action, &fields).await.status, 429, "{action}");
        }
        assert_eq!(c.submit(page, action, &fields).await.status, 429, "{action}");
    }
    for _ in 0..3 {
        assert_eq!(c.get("/verify-email/nonsense").await.status, 400);
    }
    assert_eq!(c.get("/verify-email/nonsense").await.status, 429);
}

#[tokio::test]
async fn forwarded_for_is_believed_only_from_trusted_proxies() {
    // Untrusted peer: X-Forwarded-For is ignored, so changing it does not escape the limit.
    let app = TestApp::spawn_with(&[("PORTCULLIS_RATE_LIMIT_PER_MINUTE", "2")]).await;
    let c = app.client();
    let mut statuses = Vec::new();
    for i in 0..4 {
        let token = c.get("/login").await.csrf_token().expect("token");
        let body = format!("username=nobody&password=wrong+one&csrf_token={token}");
        let ip = format!("198.51.100.{i}");
        let res = c.send(reqwest::Method::POST, "/login", Some(body), &[("x-forwarded-for", &ip)]).await;
        statuses.push(res.status);
    }
    assert_eq!(statuses, vec![200, 200, 429, 429]);

    // Trusted peer: each forwarded client has its own allowance, and the IP is recorded.
    let app = TestApp::spawn_with(&[
        ("PORTCULLIS_RATE_LIMIT_PER_MINUTE", "2"),
        ("PORTCULLIS_TRUSTED_PROXIES", "127.0.0.0/8"),
    ])
    .await;
    app.create_user("alice", "alice@example.com", PW, false).await;
    let c = app.client();
    for i in 0..4 {
        let token = c.get("/login").await.csrf_token().expect("token");
        let body = format!("username=nobody&password=wrong+one&csrf_token={token}");
        let ip = format!("198.51.100.{i}");
        let res = c
            .send(reqwest::Method::POST, "/login", Some(body), &[("x-forwarded-for", &format!("10.9.9.9, {ip}"))])
            .await;
        assert_eq!(res.status, 200, "client {ip}");
    }
    let token = c.get("/login").await.csrf_token().expect("token");
    let body = format!("username=alice&password={}&csrf_token={token}", PW.replace(' ', "+"));
    let res = c.send(reqwest::Method::POST, "/login", Some(body), &[("x-forwarded-for", "203.0.113.7")]).await;
    assert_eq!(res.status, 303);
    let sessions = c.get("/account/sessions").await;
    assert!(sessions.body.contains("203.0.113.7"), "the client's address, not the proxy's");
}

#[tokio::test]
async fn the_audit_record_shows_what_happened() {
    let app = TestApp::spawn_with(&[("PORTCULLIS_LOCKOUT_THRESHOLD", "2")]).await;
    app.create_user("alice", "alice@example.com", PW, false).await;
    let admin = app.create_user("admin", "admin@example.com", PW, true).await;
    let c = app.client();
    c.set_user_agent("Mozilla/5.0 (X11; Linux x86_64) Firefox/128.0");
    c.login("alice", "wrong password!", false).await;
    assert_eq!(c.login("alice", PW, false).await.status, 303);
    c.submit("/account", "/account/password", &[("current_password", PW), ("new_password", "another fine passphrase")])
        .await;
    guess(&app, "alice", 3).await;

    let page = c.get("/account/activity").await;
    assert_eq!(page.status, 200);
    for kind in ["login.failure", "login.success", "password.changed", "login.locked"] {
        assert!(page.body.contains(kind), "{kind} listed");
    }
    assert!(page.body.contains("Firefox on Linux") && page.body.contains("127.0.0.1"));

    let a = app.login_as(&admin).await;
    let all = a.get("/admin/audit").await;
    assert_eq!(all.status, 200);
    assert!(all.body.contains("<td>login.success") && all.body.contains("alice"));
    let only = a.get("/admin/audit?user=alice&kind=login.locked").await;
    assert!(only.body.contains("<td>login.locked") && !only.body.contains("<td>login.success"));
    let nobody = a.get("/admin/audit?user=ghost").await;
    assert!(nobody.body.contains("No events match"));
    assert_eq!(c.get("/admin/audit").await.status, 403);
}

#[tokio::test]
async fn a_new_browser_gets_a_sign_in_notice_and_a_known_one_does_not() {
    let sink = SmtpSink::start().await;
    let url = sink.url();
    let app = TestApp::spawn_with(&[("PORTCULLIS_SMTP_URL", &url)]).await;
    app.create_user("alice", "alice@example.com", PW, false).await;
    let c = app.client();
    c.set_user_agent("Mozilla/5.0 (Windows NT 10.0) Edg/120.0");
    assert_eq!(c.login("alice", PW, false).await.status, 303);
    let mails = sink.wait_for(1, 10).await;
    assert!(mails[0].contains("Subject: New sign-in to your account") && mails[0].contains("Edge on Windows"));
    c.submit("/dashboard", "/logout", &[]).await;
    assert_eq!(c.login("alice", PW, false).await.status, 303);
    // A notice is queued in the login's own transaction: none now means none at all.
    let queued: i64 =
        sqlx::query_scalar("SELECT COUNT(*) FROM outbox").fetch_one(app.services.store.pool()).await.expect("count");
    assert_eq!(queued, 1, "the same browser again: no notice");
    assert_eq!(sink.messages().len(), 1, "the same browser again: no notice");
}

#[tokio::test]
#[cfg_attr(portcullis_no_redis, ignore = "needs Redis: set PORTCULLIS_TEST_REDIS_URL")]
async fn sessions_and_counters_live_in_redis_when_configured() {
    let Some(redis) = services::redis_url() else {
        return;
    };
    let prefix = format!("portcullis-e2e-{}:", portcullis_app::tokens::random_b64(8));
    let app = TestApp::spawn_with(&[
        ("PORTCULLIS_REDIS_URL", &redis),
        ("PORTCULLIS_REDIS_PREFIX", &prefix),
        ("PORTCULLIS_RATE_LIMIT_PER_MINUTE", "3"),
    ])
    .await;
    app.create_user("alice", "alice@example.com", PW, false).await;
    let c = app.client();
    assert_eq!(c.login("alice", PW, true).await.status, 303);
    assert_eq!(c.get("/dashboard").await.status, 200);
    assert!(c.get("/account/sessions").await.body.contains("this session"));
    let count = |table: &'static str| {
        let pool = app.services.store.pool().clone();
        async move {
            let n: i64 =
                sqlx::query_scalar(&format!("SELECT COUNT(*) FROM {table}")).fetch_one(&pool).await.expect("count");
            n
        }
    };
    assert_eq!(count("sessions").await, 0, "the session is not in SQL");
    let old = c.cookie("portcullis_session").expect("cookie");
    c.submit("/dashboard", "/logout", &[]).await;
    let replay = app.client();
    replay.set_cookie("portcullis_session", &old);
    assert_eq!(replay.get("/dashboard").await.status, 303, "logout removed it from Redis");

    for _ in 0..2 {
        assert_eq!(c.login("alice", "wrong password!", false).await.status, 200);
    }
    assert_eq!(c.login("alice", "wrong password!", false).await.status, 429, "the 4th attempt this minute");
    assert_eq!(count("rate_limits").await, 0, "the counters are not in SQL");
}

#[tokio::test]
async fn a_full_hash_pool_refuses_password_forms_before_any_other_work() {
    let app = TestApp::spawn_with(&[("PORTCULLIS_HASH_WORKERS", "1"), ("PORTCULLIS_HASH_QUEUE", "0")]).await;
    let alice = app.create_user("alice", "alice@example.com", PW, false).await;
    let signed_in = app.login_as(&alice).await;
    // Every place in the pool taken, as by a flood in progress.
    let place = app.services.accounts.hasher().admit().expect("a free place");
    let anon = app.client();
    // Not even a CSRF token: refused as busy, not as forged, and no attempt counted.
    for (path, fields) in [
        ("/login", vec![("username", "alice"), ("password", "wrong")]),
        ("/register", vec![("username", "bob"), ("email", "bob@example.com"), ("password", PW)]),
        ("/reset-password/abc.def", vec![("password", PW)]),
        ("/setup/abc", vec![("username", "root"), ("email", "root@example.com"), ("password", PW)]),
    ] {
        let res = anon.post_form(path, &fields).await;
        assert_eq!(res.status, 503, "{path}");
        assert!(res.header("retry-after").is_some(), "{path}: Retry-After");
        assert!(res.body.contains("Service unavailable"), "{path}: the site's error page");
    }
    let res = signed_in.post_form("/account/password", &[("current_password", PW), ("new_password", "x")]).await;
    assert_eq!(res.status, 503);
    // Pages that hash nothing are served as usual.
    assert_eq!(signed_in.get("/dashboard").await.status, 200);
    assert_eq!(anon.get("/login").await.status, 200);
    drop(place);
    let res = app.client().login("alice", PW, false).await;
    assert_eq!(res.status, 303, "a free pool admits again, and nothing was counted");
}

#[tokio::test]
async fn a_full_hash_pool_answers_503_without_counting_an_attempt() {
    let app = TestApp::spawn_with(&[
        ("PORTCULLIS_HASH_WORKERS", "1"),
        ("PORTCULLIS_HASH_QUEUE", "0"),
        ("PORTCULLIS_LOCKOUT_THRESHOLD", "3"),
        ("PORTCULLIS_ARGON2_MEMORY_KIB", "8192"),
        ("PORTCULLIS_ARGON2_ITERATIONS", "2"),
    ])
    .await;
    app.create_user("alice", "alice@example.com", PW, false).await;
    let mut tasks = Vec::new();
    for _ in 0..30 {
        let c = app.client();
        tasks.push(tokio::spawn(async move { c.login("alice", PW, false).await }));
    }
    let (mut ok, mut busy) = (0, 0);
    for t in tasks {
        let res = t.await.expect("join");
        assert!(!res.body.contains("temporarily locked"), "the owner was locked out by a full pool");
        match res.status {
            303 => ok += 1,
            503 => {
                assert!(res.header("retry-after").is_some());
                busy += 1;
            }
            other => panic!("unexpected status {other}"),
        }
    }
    assert!(ok >= 1 && busy >= 1, "{ok} signed in, {busy} refused");
    assert_eq!(app.client().login("alice", PW, false).await.status, 303);
}
