//! Prometheus metrics: a second listener serves `/metrics`; the counters
//! move with what clients do, and request labels are route templates.

use portcullis::testing::TestApp;

const PW: &str = "correct horse battery staple";

/// The value of the sample of `name` whose labels include `labels`, if any.
fn sample(text: &str, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
    text.lines().filter(|l| !l.starts_with('#')).find_map(|line| {
        let (series, value) = line.rsplit_once(' ')?;
        let (family, rest) = series.split_once('{').unwrap_or((series, ""));
        let matches = family == name && labels.iter().all(|(k, v)| rest.contains(&format!("{k}=\"{v}\"")));
        matches.then(|| value.parse().ok()).flatten()
    })
}

async fn scrape(app: &TestApp) -> String {
    let addr = app.metrics_addr.expect("a metrics listener");
    let res = reqwest::get(format!("http://{addr}/metrics")).await.expect("scrape");
    assert_eq!(res.status(), 200);
    let ct = res.headers().get("content-type").and_then(|v| v.to_str().ok()).unwrap_or_default().to_owned();
    assert!(ct.starts_with("text/plain"), "{ct}");
    res.text().await.expect("body")
}

#[tokio::test]
async fn counters_move_with_logins_failures_lockouts_and_429s() {
    let app = TestApp::spawn_with(&[
        ("PORTCULLIS_METRICS_BIND", "127.0.0.1:0"),
        ("PORTCULLIS_LOCKOUT_THRESHOLD", "3"),
        ("PORTCULLIS_RATE_LIMIT_PER_MINUTE", "7"),
    ])
    .await;
    let before = scrape(&app).await;
    for family in [
        "portcullis_logins_total",
        "portcullis_lockouts_total",
        "portcullis_rate_limited_total",
        "portcullis_hash_pool_in_use",
        "portcullis_hash_pool_waiting",
        "portcullis_hash_pool_refused_total",
        "portcullis_outbox_pending",
        "portcullis_outbox_oldest_age_seconds",
        "portcullis_sessions_active",
        "portcullis_db_pool_connections",
    ] {
        assert!(before.contains(&format!("# HELP {family} ")), "{family} described:\n{before}");
        assert!(sample(&before, family, &[]).is_some(), "{family} present:\n{before}");
    }
    assert_eq!(sample(&before, "portcullis_logins_total", &[("outcome", "success")]), Some(0.0));
    for action in ["login", "register", "forgot", "reset", "verify", "password-check", "two-factor", "passkey", "setup"]
    {
        let labels = [("action", action)];
        assert_eq!(sample(&before, "portcullis_rate_limited_total", &labels), Some(0.0), "{action}:\n{before}");
    }

    let alice = app.create_user("alice", "alice@example.com", PW, false).await;
    app.create_user("bobby", "bob@example.com", PW, false).await;
    let actor = portcullis_domain::Actor { user_id: alice.id, is_admin: false };
    let post_id = app.services.posts.create(actor, "Hello", "World").await.expect("post");
    let c = app.client();
    assert_eq!(c.login("alice", PW, false).await.status, 303);
    assert_eq!(c.get(&format!("/posts/{post_id}")).await.status, 200);
    assert_eq!(c.get("/no/such/page").await.status, 404);
    let origin = portcullis_app::Origin::user(&portcullis_app::ClientInfo::default());
    let (_, token) = app.services.tokens.create(&alice, "metrics", "read", "30", &origin).await.expect("token");
    let bearer = format!("Bearer {token}");
    let auth = [("authorization", bearer.as_str())];
    for (path, status) in
        [(format!("/api/v1/posts/{post_id}"), 200), ("/api/v1/me".into(), 200), ("/api/v1/nothing/here".into(), 404)]
    {
        assert_eq!(c.send(reqwest::Method::GET, &path, None, &auth).await.status, status, "{path}");
    }
    let stranger = app.client();
    assert_eq!(stranger.login("bobby", "wrong password", false).await.status, 200);
    stranger.login("bobby", "wrong password 2", false).await;
    stranger.login("bobby", "wrong password 3", false).await;
    assert!(stranger.login("bobby", PW, false).await.body.contains("temporarily locked"));
    // Seven attempts a minute: two more for a name nobody has (not enough
    // to lock it), then 429s.
    let mut statuses = Vec::new();
    for _ in 0..6 {
        statuses.push(stranger.login("nobody", "whatever", false).await.status);
    }
    assert!(statuses.contains(&429), "{statuses:?}");

    let after = scrape(&app).await;
    let n = |labels: &[(&str, &str)], name: &str| sample(&after, name, labels).unwrap_or(0.0);
    assert_eq!(n(&[("outcome", "success")], "portcullis_logins_total"), 1.0, "{after}");
    assert!(n(&[("outcome", "failure")], "portcullis_logins_total") >= 3.0, "{after}");
    assert!(n(&[("outcome", "locked")], "portcullis_logins_total") >= 1.0, "{after}");
    assert_eq!(n(&[], "portcullis_lockouts_total"), 1.0, "{after}");
    assert!(n(&[("action", "login")], "portcullis_rate_limited_total") >= 1.0, "{after}");
    assert!(n(&[], "portcullis_sessions_active") >= 1.0, "{after}");

    // Route labels are templates, never paths.
    let post = [("route", "/posts/{id}"), ("method", "GET"), ("status", "200")];
    assert_eq!(n(&post, "portcullis_http_requests_total"), 1.0, "{after}");
    let login = [("route", "/login"), ("method", "POST"), ("status", "429")];
    assert!(n(&login, "portcullis_http_requests_total") >= 1.0, "{after}");
    let unmatched = [("route", "unmatched"), ("method", "GET"), ("status", "404")];
    assert_eq!(n(&unmatched, "portcullis_http_requests_total"), 2.0, "a page and an API path:\n{after}");
    let api_post = [("route", "/api/v1/posts/{id}"), ("method", "GET"), ("status", "200")];
    assert_eq!(n(&api_post, "portcullis_http_requests_total"), 1.0, "{after}");
    let me = [("route", "/api/v1/me"), ("method", "GET"), ("status", "200")];
    assert_eq!(n(&me, "portcullis_http_requests_total"), 1.0, "{after}");
    assert!(!after.contains(&format!("/posts/{post_id}\"")), "a raw path in a label:\n{after}");
    assert!(!after.contains("/no/such/page"), "a raw path in a label:\n{after}");
    let buckets = [("route", "/posts/{id}"), ("method", "GET"), ("le", "+Inf")];
    assert_eq!(n(&buckets, "portcullis_http_request_duration_seconds_bucket"), 1.0, "{after}");
}

#[tokio::test]
async fn metrics_are_never_on_the_main_port_and_off_by_default() {
    let app = TestApp::spawn_with(&[("PORTCULLIS_METRICS_BIND", "127.0.0.1:0")]).await;
    assert_eq!(app.client().get("/metrics").await.status, 404);
    assert!(scrape(&app).await.contains("portcullis_logins_total"));
    let off = TestApp::spawn().await;
    assert!(off.metrics_addr.is_none());
    assert_eq!(off.client().get("/metrics").await.status, 404);
}

#[test]
fn a_bad_metrics_bind_stops_start_up_naming_the_variable() {
    let dir = tempfile::tempdir().expect("dir");
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_portcullis"))
        .env_clear()
        .env("PORTCULLIS_DATA_DIR", dir.path())
        .env("PORTCULLIS_METRICS_BIND", "not an address")
        .arg("serve")
        .output()
        .expect("run");
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(err.contains("PORTCULLIS_METRICS_BIND"), "{err}");
}
