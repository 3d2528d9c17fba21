//! The foundation over a real socket: health, pages, headers, limits, and the CLI.

use std::io::Write as _;
use std::process::{Command, Stdio};

use portcullis::testing::TestApp;

fn assert_security_headers(res: &portcullis::testing::TestResponse, what: &str) {
    let csp = res.header("content-security-policy").unwrap_or_else(|| panic!("{what}: no CSP"));
    assert!(csp.contains("frame-ancestors 'none'"), "{what}: {csp}");
    assert!(!csp.contains("unsafe-inline"), "{what}: {csp}");
    assert_eq!(res.header("x-content-type-options"), Some("nosniff"), "{what}");
    assert!(res.header("referrer-policy").is_some(), "{what}: no Referrer-Policy");
    assert!(res.header("x-request-id").is_some(), "{what}: no request id");
}

#[tokio::test]
async fn health_readiness_home_and_errors() {
    let app = TestApp::spawn().await;
    let c = app.client();

    let h = c.get("/healthz").await;
    assert_eq!((h.status, h.body.as_str()), (200, "ok"));
    let r = c.get("/readyz").await;
    assert_eq!(r.status, 200);
    let (a, b) = (h.header("x-request-id"), r.header("x-request-id"));
    assert!(a.is_some_and(|a| a.len() >= 16) && a != b, "each request its own id: {a:?} {b:?}");

    let home = c.get("/").await;
    assert_eq!(home.status, 200);
    assert!(home.body.contains(">Home<") && home.body.contains(">Login<") && home.body.contains(">Register<"));
    assert!(!home.body.contains("Logout") && !home.body.contains("Dashboard"));
    assert!(!home.body.contains("<script>") && !home.body.contains("style="), "no inline script or style");

    let nf = c.get("/no/such/page").await;
    assert_eq!(nf.status, 404);
    assert!(nf.body.contains("Page not found") && nf.body.contains("/static/app.css"), "site's own 404 page");

    let bad_method = c.submit("/login", "/healthz", &[]).await;
    assert_eq!(bad_method.status, 405);
    assert!(bad_method.body.contains("Method not allowed"));

    for res in [&h, &r, &home, &nf, &bad_method, &c.get("/static/app.css").await, &c.get("/login").await] {
        assert_security_headers(res, "response");
    }
    assert!(home.header("strict-transport-security").is_none(), "no HSTS over http");
}

#[tokio::test]
async fn https_base_url_sends_hsts() {
    let app = TestApp::spawn_with(&[("PORTCULLIS_BASE_URL", "https://portcullis.example")]).await;
    let res = app.client().get("/").await;
    assert!(res.header("strict-transport-security").is_some_and(|v| v.contains("max-age=")));
}

#[tokio::test]
async fn large_bodies_get_413_and_change_nothing() {
    let app = TestApp::spawn_with(&[("PORTCULLIS_BODY_LIMIT", "4096")]).await;
    let c = app.client();
    let token = c.get("/register").await.csrf_token().expect("token");
    let huge = "x".repeat(10_000);
    let res = c
        .post_form(
            "/register",
            &[("csrf_token", &token), ("username", "biggy"), ("email", "b@example.com"), ("password", &huge)],
        )
        .await;
    assert_eq!(res.status, 413);
    assert!(res.body.contains("Request too large"));
    assert!(app.services.accounts.find_user("biggy").await.is_err(), "no user created");
}

#[tokio::test]
async fn first_start_creates_data_dir_secret_and_database() {
    let dir = tempfile::tempdir().expect("tmp");
    let data = dir.path().join("nested/data");
    let app = TestApp::spawn_in(&data, &[]).await;
    let key = data.join("secret.key");
    let meta = std::fs::metadata(&key).expect("secret key written");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        assert_eq!(meta.permissions().mode() & 0o777, 0o600);
    }
    assert!(data.join("portcullis.db").exists());
    let first = std::fs::read_to_string(&key).expect("read key");
    app.stop().await;
    // A restart keeps the key, so cookies stay valid.
    let app = TestApp::spawn_in(&data, &[]).await;
    assert_eq!(std::fs::read_to_string(&key).expect("read key"), first);
    app.stop().await;
}

// ---- the command line ------------------------------------------------------

fn portcullis(
    data_dir: &std::path::Path,
    args: &[&str],
    stdin: Option<&str>,
    env: &[(&str, &str)],
) -> (i32, String, String) {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_portcullis"));
    cmd.args(args)
        .env_clear()
        .env("PORTCULLIS_DATA_DIR", data_dir)
        .env("PORTCULLIS_ARGON2_MEMORY_KIB", "1024")
        .env("PORTCULLIS_ARGON2_ITERATIONS", "1")
        .env("PORTCULLIS_LOG", "warn")
        .current_dir(data_dir.parent().unwrap_or(data_dir))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    for (k, v) in env {
        cmd.env(k, v);
    }
    let mut child = cmd.spawn().expect("spawn portcullis");
    if let Some(mut input) = child.stdin.take()
        && let Some(s) = stdin
    {
        input.write_all(s.as_bytes()).expect("write stdin");
    }
    let out = child.wait_with_output().expect("wait");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// The running server reads sessions from memory; a change the command line
/// makes in the same database still reaches it (well within a second).
#[tokio::test]
async fn a_command_line_change_reaches_the_running_server() {
    let app = TestApp::spawn().await;
    app.create_user("root", "root@example.com", "a long passphrase", true).await;
    let bob = app.create_user("bob", "bob@example.com", "a long passphrase", false).await;
    let client = app.login_as(&bob).await;
    assert_eq!(client.get("/dashboard").await.status, 200);
    assert_eq!(client.get("/admin/users").await.status, 403);

    let data = app.data_dir().to_owned();
    let (code, _, err) =
        tokio::task::spawn_blocking(move || portcullis(&data, &["user", "set-admin", "bob"], None, &[]))
            .await
            .expect("join");
    assert_eq!(code, 0, "{err}");
    // A privilege change ends the user's sessions: the old cookie stops working.
    let mut ended = false;
    for _ in 0..50 {
        let r = client.get("/dashboard").await;
        if r.status == 303 && r.location().is_some_and(|l| l.starts_with("/login")) {
            ended = true;
            break;
        }
        assert_eq!(r.status, 200);
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    assert!(ended, "the session ended by the command line was still served");
    let again = app.login_as(&bob).await;
    assert_eq!(again.get("/admin/users").await.status, 200, "and the new session is an admin's");
    app.stop().await;
}

#[test]
fn cli_creates_lists_and_promotes_users() {
    let dir = tempfile::tempdir().expect("tmp");
    let data = dir.path().join("data");
    let (code, _, err) = portcullis(
        &data,
        &["user", "create", "--username", "Alice", "--email", "alice@example.com", "--password-stdin"],
        Some("a long passphrase\n"),
        &[],
    );
    assert_eq!(code, 0, "{err}");

    // Same name in another case: refused, one line, non-zero.
    let (code, _, err) = portcullis(
        &data,
        &["user", "create", "--username", "alice", "--email", "other@example.com", "--password-stdin"],
        Some("another passphrase\n"),
        &[],
    );
    assert_ne!(code, 0);
    assert_eq!(err.trim().lines().count(), 1, "{err}");
    assert!(err.contains("Username already exists"), "{err}");

    let (code, _, err) = portcullis(
        &data,
        &["user", "create", "--username", "bob", "--email", "ALICE@example.com", "--password-stdin"],
        Some("another passphrase\n"),
        &[],
    );
    assert_ne!(code, 0);
    assert!(err.contains("Email already registered"), "{err}");

    let (code, _, err) = portcullis(
        &data,
        &["user", "create", "--username", "weak", "--email", "weak@example.com", "--password-stdin"],
        Some("password\n"),
        &[],
    );
    assert_ne!(code, 0);
    assert!(err.contains("too common"), "{err}");

    let (code, _, err) = portcullis(
        &data,
        &["user", "create", "--username", "bad", "--email", "not-an-email", "--password-stdin"],
        Some("fine passphrase\n"),
        &[],
    );
    assert_ne!(code, 0);
    assert!(err.contains("valid email"), "{err}");

    let (code, out, _) = portcullis(&data, &["user", "list"], None, &[]);
    assert_eq!(code, 0);
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines.len(), 1, "{out}");
    assert!(lines[0].contains("Alice") && lines[0].contains("alice@example.com") && lines[0].contains("admin=false"));

    let (code, _, err) = portcullis(&data, &["user", "set-admin", "alice"], None, &[]);
    assert_eq!(code, 0, "{err}");
    let (_, out, _) = portcullis(&data, &["user", "list"], None, &[]);
    assert!(out.contains("admin=true"), "{out}");

    // The last admin cannot be demoted.
    let (code, _, err) = portcullis(&data, &["user", "set-admin", "alice", "--revoke"], None, &[]);
    assert_ne!(code, 0);
    assert!(err.contains("last administrator"), "{err}");

    let (code, _, _) = portcullis(&data, &["user", "unlock", "alice"], None, &[]);
    assert_eq!(code, 0);
    let (code, _, err) = portcullis(&data, &["user", "unlock", "nobody"], None, &[]);
    assert_ne!(code, 0);
    assert!(err.contains("no such user"), "{err}");
}

#[test]
fn bad_configuration_stops_start_up_naming_the_variable() {
    let dir = tempfile::tempdir().expect("tmp");
    let data = dir.path().join("data");
    for (var, value) in [
        ("PORTCULLIS_DATABASE_URL", "mysql://localhost/x"),
        ("PORTCULLIS_SESSION_IDLE_TIMEOUT", "a while"),
        ("PORTCULLIS_LOCKOUT_THRESHOLD", "many"),
        ("PORTCULLIS_DATABASE_URL", "postgres://nobody@127.0.0.1:1/none"),
    ] {
        let (code, _, err) = portcullis(&data, &["serve"], None, &[(var, value)]);
        assert_eq!(code, 2, "{var}={value}: {err}");
        assert_eq!(err.trim().lines().count(), 1, "{err}");
        assert!(err.contains(var), "{err}");
    }
    let (code, _, err) = portcullis(&data, &["migrate"], None, &[]);
    assert_eq!(code, 0, "{err}");
}

#[test]
fn every_command_has_help() {
    let dir = tempfile::tempdir().expect("tmp");
    for args in [
        vec!["--help"],
        vec!["serve", "--help"],
        vec!["migrate", "--help"],
        vec!["user", "--help"],
        vec!["user", "create", "--help"],
        vec!["user", "list", "--help"],
        vec!["user", "set-admin", "--help"],
        vec!["user", "unlock", "--help"],
    ] {
        let (code, out, _) = portcullis(dir.path(), &args, None, &[]);
        assert_eq!(code, 0, "{args:?}");
        assert!(out.contains("Usage:"), "{args:?}: {out}");
    }
}

#[tokio::test]
async fn large_responses_are_gzipped_and_small_pages_are_not() {
    let app = TestApp::spawn().await;
    let c = app.client();
    let gzip = [("accept-encoding", "gzip")];
    let css_len = c.get("/static/app.css").await.body.len();
    assert!(css_len > usize::from(portcullis_web::site::COMPRESS_ABOVE), "the stylesheet is {css_len} bytes");
    let css = c.send(reqwest::Method::GET, "/static/app.css", None, &gzip).await;
    assert_eq!((css.status, css.header("content-encoding")), (200, Some("gzip")));
    assert!(css.header("vary").is_some_and(|v| v.to_ascii_lowercase().contains("accept-encoding")));
    let plain = c.get("/static/app.css").await;
    assert_eq!(plain.header("content-encoding"), None, "only for clients that ask");
    let page = c.send(reqwest::Method::GET, "/login", None, &gzip).await;
    assert_eq!((page.status, page.header("content-encoding")), (200, None));
    assert!(page.body.len() < usize::from(portcullis_web::site::COMPRESS_ABOVE) && page.csrf_token().is_some());
}

#[tokio::test]
async fn a_handler_that_panics_gets_the_error_page_and_the_site_goes_on() {
    use axum::body::{Body, to_bytes};
    use axum::http::{Request, StatusCode};
    use axum::routing::get;

    let app = TestApp::spawn().await;
    let state = portcullis::server::web_state(&app.config, &app.services).expect("web state");
    let routes = axum::Router::new().route(
        "/boom",
        get(|| async {
            if std::hint::black_box(true) {
                panic!("secret detail of the failure");
            }
            "unreachable"
        }),
    );
    let call = |path: &str| Request::get(path).body(Body::empty()).expect("request");
    let peer = Some(std::net::IpAddr::from([127, 0, 0, 1]));
    let res = portcullis_web::context::request_context(state.clone(), peer, call("/boom"), routes.clone())
        .await
        .expect("always an answer");
    assert_eq!(res.status(), StatusCode::INTERNAL_SERVER_ERROR);
    let h = res.headers();
    assert!(h.get("content-type").is_some_and(|v| v.as_bytes().starts_with(b"text/html")), "{h:?}");
    assert!(h.get("content-security-policy").is_some() && h.get("x-request-id").is_some(), "{h:?}");
    let body = to_bytes(res.into_body(), 1 << 20).await.expect("body");
    let body = String::from_utf8_lossy(&body);
    assert!(body.contains("Something went wrong"), "{body}");
    assert!(!body.contains("secret detail"), "the panic's message stays in the log: {body}");

    // The same routes answer the next request as usual.
    let res = portcullis_web::context::request_context(state, peer, call("/nothing-here"), routes)
        .await
        .expect("always an answer");
    assert_eq!(res.status(), StatusCode::NOT_FOUND);
}
