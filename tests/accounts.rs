//! Accounts and sessions over a real socket, tried as a user and as an attacker would.

use std::time::Duration;

use portcullis::testing::{TestApp, TestClient, TestResponse};

const PW: &str = "correct horse battery staple";

/// The page without its per-request parts (CSRF tokens are masked afresh each time).
fn normalized(res: &TestResponse) -> String {
    let mut body = res.body.clone();
    while let Some(token) = portcullis::testing::csrf_token(&body).filter(|t| t != "TOKEN") {
        body = body.replace(&token, "TOKEN");
    }
    body
}

async fn register(c: &TestClient, username: &str, email: &str, password: &str) -> TestResponse {
    c.submit("/register", "/register", &[("username", username), ("email", email), ("password", password)]).await
}

#[tokio::test]
async fn register_logs_in_and_lands_on_the_dashboard() {
    let app = TestApp::spawn().await;
    let c = app.client();
    let res = c
        .submit(
            "/register",
            "/register",
            &[
                ("username", "alice"),
                ("email", "alice@example.com"),
                ("password", PW),
                ("is_admin", "1"),
                ("email_verified", "1"),
                ("role", "admin"),
            ],
        )
        .await;
    assert_eq!(res.status, 303, "{}", res.body);
    assert_eq!(res.location(), Some("/dashboard"));
    let dash = c.get("/dashboard").await;
    assert_eq!(dash.status, 200);
    assert!(dash.body.contains("Welcome, alice!"));
    assert!(dash.body.contains("Logout") && dash.body.contains("New Post") && !dash.body.contains(">Register<"));
    assert_eq!(dash.header("cache-control"), Some("no-store"));
    let user = app.services.accounts.find_user("alice").await.expect("created");
    assert!(!user.is_admin && !user.email_verified, "extra form fields are ignored");
    assert!(user.password_hash.starts_with("$argon2id$"));
}

#[tokio::test]
async fn registration_errors_use_the_contract_wording() {
    let app = TestApp::spawn_with(&[("PORTCULLIS_MIN_PASSWORD_LENGTH", "10")]).await;
    app.create_user("alice", "alice@example.com", PW, false).await;
    let c = app.client();
    let cases = [
        ("ALICE", "new@example.com", PW, "Username already exists"),
        ("bob", "Alice@Example.com", PW, "Email already registered"),
        ("bob", "bob@example.com", "short", "Password must be at least 10 characters"),
        ("bob", "bob@example.com", "password123", "too common"),
        ("b", "bob@example.com", PW, "between 3 and 32"),
        ("bad name", "bob@example.com", PW, "may only contain"),
        ("bob", "not-an-email", PW, "valid email"),
    ];
    for (u, e, p, msg) in cases {
        let res = register(&c, u, e, p).await;
        assert_eq!(res.status, 200, "{u}/{e}");
        assert!(res.body.contains("class=\"flash error\""), "{u}/{e}");
        assert!(res.body.contains(msg), "{u}/{e}: expected {msg:?}");
        assert!(
            !res.body.contains(p) || p == PW && !res.body.contains("value=\"correct horse"),
            "never echo the password"
        );
        assert!(c.cookie("portcullis_session").is_none(), "not logged in");
    }
    // What was typed is kept (escaped).
    let res = register(&c, "bob", "<b>@example.com", "short").await;
    assert!(res.body.contains("value=\"bob\"") && res.body.contains("&lt;b&gt;@example.com"));
    assert!(app.services.accounts.find_user("bob").await.is_err());
}

#[tokio::test]
async fn login_by_username_or_email_in_any_case() {
    let app = TestApp::spawn().await;
    app.create_user("Alice", "alice@example.com", PW, false).await;
    for id in ["Alice", "alice", "alice@example.com", "ALICE@EXAMPLE.COM"] {
        let c = app.client();
        let res = c.login(id, PW, false).await;
        assert_eq!(res.status, 303, "{id}");
        assert_eq!(res.location(), Some("/dashboard"));
        assert!(c.get("/dashboard").await.body.contains("Welcome, Alice!"));
        // Signed in: the login page sends you on.
        let again = c.get("/login").await;
        assert_eq!((again.status, again.location()), (303, Some("/dashboard")));
    }
}

#[tokio::test]
async fn wrong_password_and_unknown_user_look_the_same() {
    let app = TestApp::spawn().await;
    app.create_user("alice", "alice@example.com", PW, false).await;
    let c = app.client();
    let wrong = c.login("alice", "not the password", false).await;
    let unknown = c.login("mallory", "not the password", false).await;
    assert_eq!(wrong.status, 200);
    assert_eq!(unknown.status, wrong.status);
    assert!(wrong.body.contains("Invalid username or password") && wrong.body.contains("flash error"));
    assert_eq!(normalized(&wrong).replace("alice", "X"), normalized(&unknown).replace("mallory", "X"));
    assert!(c.cookie("portcullis_session").is_none());
}

#[tokio::test]
async fn next_is_followed_only_to_local_paths() {
    let app = TestApp::spawn().await;
    app.create_user("alice", "alice@example.com", PW, false).await;

    // A protected page sends you to login with next, and you come back to it.
    let c = app.client();
    let res = c.get("/posts/new?draft=1").await;
    assert!(matches!(res.status, 302 | 303));
    assert_eq!(res.location(), Some("/login?next=%2Fposts%2Fnew%3Fdraft%3D1"));
    let page = c.get(res.location().expect("location")).await;
    let token = page.csrf_token().expect("token");
    let action = page
        .body
        .split("action=\"")
        .nth(1)
        .and_then(|s| s.split('"').next())
        .expect("form action")
        .replace("&amp;", "&")
        .replace("&#x2f;", "/");
    let res = c.post_form(&action, &[("username", "alice"), ("password", PW), ("csrf_token", &token)]).await;
    assert_eq!(res.location(), Some("/posts/new?draft=1"));

    let hostile = [
        "//evil.com",
        "///evil.com",
        "/\\evil.com",
        "\\\\evil.com",
        "https://evil.com",
        "https:evil.com",
        "http:/evil.com",
        "javascript:alert(1)",
        "//evil.com/%2e%2e",
        "/%2F%2Fevil.com",
        "/%5Cevil.com",
        " //evil.com",
        "/\t/evil.com",
        "/\r\n/evil.com",
        "%2F%2Fevil.com",
        "evil.com",
        "//evil.com@good.com",
        "/%09/evil.com",
    ];
    for next in hostile {
        let c = app.client();
        let encoded: String = portcullis_form(next);
        let page = format!("/login?next={encoded}");
        // Through the query string.
        let res = c.submit(&page, &page, &[("username", "alice"), ("password", PW)]).await;
        assert_eq!(res.status, 303, "{next:?}");
        assert_eq!(res.location(), Some("/dashboard"), "query next {next:?}");
        // And through the form field.
        let c = app.client();
        let res = c.submit("/login", "/login", &[("username", "alice"), ("password", PW), ("next", next)]).await;
        assert_eq!(res.location(), Some("/dashboard"), "form next {next:?}");
    }
}

fn portcullis_form(s: &str) -> String {
    s.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b"-_.".contains(&b) { (b as char).to_string() } else { format!("%{b:02X}") }
        })
        .collect()
}

#[tokio::test]
async fn a_cookie_from_before_login_never_becomes_authenticated() {
    let app = TestApp::spawn().await;
    app.create_user("alice", "alice@example.com", PW, false).await;
    let victim = app.client();
    // An attacker plants a session cookie of their choosing before the victim logs in.
    let planted = "AAAAAAAAAAAAAAAAAAAAAA.BBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBB";
    victim.set_cookie("portcullis_session", planted);
    victim.get("/login").await;
    let before = victim.cookie_header();
    let res = victim.login("alice", PW, false).await;
    assert_eq!(res.status, 303);
    let after = victim.cookie("portcullis_session").expect("new session cookie");
    assert_ne!(after, planted);

    // Replaying every cookie the browser had before login gets nothing.
    let attacker = app.client();
    for pair in before.split("; ") {
        if let Some((k, v)) = pair.split_once('=') {
            attacker.set_cookie(k, v);
        }
    }
    attacker.set_cookie("portcullis_session", planted);
    let res = attacker.get("/dashboard").await;
    assert!(matches!(res.status, 302 | 303), "pre-login cookies are anonymous");
    assert_eq!(victim.get("/dashboard").await.status, 200);
}

#[tokio::test]
async fn cookie_flags_follow_the_base_url() {
    let app = TestApp::spawn().await;
    app.create_user("alice", "alice@example.com", PW, false).await;
    let c = app.client();
    let res = c.login("alice", PW, false).await;
    let sc = res.set_cookie("portcullis_session").expect("session cookie");
    for flag in ["HttpOnly", "SameSite=Lax", "Path=/"] {
        assert!(sc.contains(flag), "{sc}");
    }
    assert!(!sc.contains("Secure") && !sc.contains("Max-Age") && !sc.contains("Expires"), "{sc}");

    let app = TestApp::spawn_with(&[("PORTCULLIS_BASE_URL", "https://portcullis.example")]).await;
    app.create_user("alice", "alice@example.com", PW, false).await;
    let c = app.client();
    let res = c.login("alice", PW, false).await;
    assert_eq!(res.status, 303, "{}", res.body);
    let sc = res.set_cookie("__Host-portcullis_session").expect("__Host- session cookie");
    for flag in ["HttpOnly", "SameSite=Lax", "Path=/", "Secure"] {
        assert!(sc.contains(flag), "{sc}");
    }
    assert!(!sc.contains("Domain="), "{sc}");
    assert_eq!(c.get("/dashboard").await.status, 200);
}

#[tokio::test]
async fn remember_me_gives_a_persistent_cookie_and_a_long_session() {
    let app = TestApp::spawn_with(&[
        ("PORTCULLIS_SESSION_ABSOLUTE_TIMEOUT", "1s"),
        ("PORTCULLIS_SESSION_IDLE_TIMEOUT", "1s"),
        ("PORTCULLIS_REMEMBER_DURATION", "7d"),
    ])
    .await;
    app.create_user("alice", "alice@example.com", PW, false).await;
    let c = app.client();
    let res = c.login("alice", PW, true).await;
    let sc = res.set_cookie("portcullis_session").expect("cookie");
    assert!(sc.contains(&format!("Max-Age={}", 7 * 86400)), "{sc}");
    app.advance(Duration::from_millis(1500));
    assert_eq!(c.get("/dashboard").await.status, 200, "a remembered session outlives the short timeouts");

    let plain = app.client();
    plain.login("alice", PW, false).await;
    app.advance(Duration::from_millis(1500));
    assert_eq!(plain.get("/dashboard").await.status, 303, "a plain session does not");
}

#[tokio::test]
async fn idle_timeout_is_enforced_on_the_server() {
    let app = TestApp::spawn_with(&[
        ("PORTCULLIS_SESSION_IDLE_TIMEOUT", "2s"),
        ("PORTCULLIS_SESSION_ABSOLUTE_TIMEOUT", "1h"),
    ])
    .await;
    app.create_user("alice", "alice@example.com", PW, false).await;
    let c = app.client();
    c.login("alice", PW, false).await;
    // Activity keeps it alive past the idle timeout...
    for _ in 0..4 {
        app.advance(Duration::from_millis(900));
        assert_eq!(c.get("/dashboard").await.status, 200);
    }
    // ...and idleness ends it, even though the cookie is still sent.
    app.advance(Duration::from_millis(2300));
    let res = c.get("/dashboard").await;
    assert_eq!(res.status, 303);
    assert!(res.location().is_some_and(|l| l.starts_with("/login")));
}

#[tokio::test]
async fn absolute_timeout_ends_even_a_busy_session() {
    let app = TestApp::spawn_with(&[
        ("PORTCULLIS_SESSION_IDLE_TIMEOUT", "1h"),
        ("PORTCULLIS_SESSION_ABSOLUTE_TIMEOUT", "2s"),
    ])
    .await;
    app.create_user("alice", "alice@example.com", PW, false).await;
    let c = app.client();
    c.login("alice", PW, false).await;
    let cookie = c.cookie("portcullis_session").expect("cookie");
    for _ in 0..3 {
        assert_eq!(c.get("/dashboard").await.status, 200);
        app.advance(Duration::from_millis(500));
    }
    app.advance(Duration::from_millis(800));
    c.set_cookie("portcullis_session", &cookie);
    assert_eq!(c.get("/dashboard").await.status, 303);
}

#[tokio::test]
async fn logout_ends_the_session_on_the_server() {
    let app = TestApp::spawn().await;
    let alice = app.create_user("alice", "alice@example.com", PW, false).await;
    let c = app.login_as(&alice).await;
    assert_eq!(c.get("/dashboard").await.status, 200);
    let stolen = c.cookie("portcullis_session").expect("cookie");

    // GET only asks.
    let confirm = c.get("/logout").await;
    assert_eq!(confirm.status, 200);
    assert!(confirm.body.contains("<button type=\"submit\">Log out</button>"));
    assert_eq!(c.get("/dashboard").await.status, 200, "GET /logout changed nothing");

    let res = c.submit("/dashboard", "/logout", &[]).await;
    assert_eq!((res.status, res.location()), (303, Some("/")));
    let sc = res.set_cookie("portcullis_session").expect("cleared");
    assert!(sc.contains("Max-Age=0"), "{sc}");
    let home = c.get("/").await;
    assert!(home.body.contains("logged out") && home.body.contains("flash info"));

    let replay = app.client();
    replay.set_cookie("portcullis_session", &stolen);
    assert_eq!(replay.get("/dashboard").await.status, 303, "the old cookie is dead");
    assert!(app.services.accounts.sessions_of(alice.id).await.expect("sessions").is_empty());
}

#[tokio::test]
async fn flash_messages_show_once() {
    let app = TestApp::spawn().await;
    let c = app.client();
    register(&c, "alice", "alice@example.com", PW).await;
    let first = c.get("/dashboard").await;
    assert!(first.body.contains("flash success"));
    let second = c.get("/dashboard").await;
    assert!(!second.body.contains("flash success"));
}

/// For each form: no token, a token from another visitor, and an altered
/// token are all refused with 403, and nothing changes.
#[tokio::test]
async fn an_anonymous_token_works_only_with_the_cookie_it_was_served_to() {
    let app = TestApp::spawn().await;
    app.create_user("alice", "alice@example.com", PW, false).await;
    const ANON: &str = "portcullis_anon";
    async fn login(c: &TestClient, token: String) -> TestResponse {
        c.post_form("/login", &[("username", "alice"), ("password", PW), ("csrf_token", &token)]).await
    }

    // A visitor without a cookie gets one; a visitor with one keeps it.
    let c = app.client();
    let first = c.get("/login").await;
    let secret = c.cookie(ANON).expect("an anonymous cookie");
    assert!(first.set_cookie(ANON).is_some_and(|v| v.contains("HttpOnly")));
    let token = first.csrf_token().expect("token");
    assert!(c.get("/login").await.set_cookie(ANON).is_none(), "the cookie is kept");

    // The token with another secret, made up or another visitor's: refused,
    // and nobody is signed in.
    let mallory = app.client();
    mallory.get("/login").await;
    for other in [mallory.cookie(ANON).expect("cookie"), "A".repeat(secret.len())] {
        let attacker = app.client();
        attacker.set_cookie(ANON, &other);
        let res = login(&attacker, token.clone()).await;
        assert_eq!(res.status, 403, "a token served to {secret} with the cookie {other}");
        assert!(attacker.cookie(&app.session_cookie_name()).is_none());
    }
    // A cookie that is not a secret of ours is replaced, and a form posted
    // with it is refused.
    for bad in [format!("{secret}."), format!("{secret}.c2lnbmF0dXJl"), "x".into(), format!("+{}", &secret[1..])] {
        let odd = app.client();
        odd.set_cookie(ANON, &bad);
        let res = login(&odd, token.clone()).await;
        assert_eq!(res.status, 403, "cookie {bad:?}");
        assert!(odd.get("/login").await.set_cookie(ANON).is_some(), "a new cookie for {bad:?}");
        let fresh = odd.cookie(ANON).expect("cookie");
        assert!(fresh != bad && fresh.len() == secret.len(), "{bad:?} became {fresh:?}");
    }

    // The token with its own cookie signs in.
    let res = login(&c, token).await;
    assert_eq!(res.status, 303, "{}", res.body);
    assert!(c.cookie(&app.session_cookie_name()).is_some());
}

#[tokio::test]
async fn every_state_changing_form_refuses_bad_csrf_tokens() {
    let app = TestApp::spawn().await;
    let alice = app.create_user("alice", "alice@example.com", PW, false).await;
    let bob = app.create_user("bobby", "bob@example.com", PW, false).await;
    let post_id = app
        .services
        .posts
        .create(portcullis_domain::Actor { user_id: alice.id, is_admin: false }, "Hello", "World")
        .await
        .expect("post");

    let foreign_anon = app.client().get("/login").await.csrf_token().expect("token");
    let foreign_user = app.login_as(&bob).await.get("/dashboard").await.csrf_token().expect("token");

    // (path, fields, signed in as alice?)
    let edit = format!("/posts/{post_id}/edit");
    let delete = format!("/posts/{post_id}/delete");
    type Fields<'a> = Vec<(&'a str, &'a str)>;
    let forms: Vec<(&str, Fields, bool)> = vec![
        ("/register", vec![("username", "mallory"), ("email", "m@example.com"), ("password", PW)], false),
        ("/login", vec![("username", "alice"), ("password", PW)], false),
        ("/logout", vec![], true),
        ("/posts/new", vec![("title", "Injected"), ("content", "x")], true),
        (&edit, vec![("title", "Defaced"), ("content", "x")], true),
        (&delete, vec![], true),
        ("/account/password", vec![("current_password", PW), ("new_password", "a brand new passphrase")], true),
        ("/account/sessions/revoke-others", vec![], true),
    ];
    for (path, fields, signed_in) in forms {
        let c = if signed_in { app.login_as(&alice).await } else { app.client() };
        let own = c.get(if signed_in { "/dashboard" } else { "/login" }).await.csrf_token().expect("own token");
        let mut tampered = own.clone();
        let flip = if tampered.ends_with('A') { 'B' } else { 'A' };
        tampered.pop();
        tampered.push(flip);
        let foreign = if signed_in { foreign_user.clone() } else { foreign_anon.clone() };
        for (label, token) in [
            ("missing", None),
            ("foreign", Some(foreign)),
            ("tampered", Some(tampered)),
            ("empty", Some(String::new())),
        ] {
            let mut all = fields.clone();
            if let Some(t) = &token {
                all.push(("csrf_token", t));
            }
            let res = c.post_form(path, &all).await;
            assert_eq!(res.status, 403, "{path} with a {label} token");
            assert!(res.body.contains("Forbidden"), "{path}: the site's 403 page");
        }
        // The same request with its own token is accepted.
        let mut all = fields.clone();
        all.push(("csrf_token", &own));
        let res = c.post_form(path, &all).await;
        assert_ne!(res.status, 403, "{path} with a good token");
        // Only this last request changed anything; undo what it did.
        if path == "/register" {
            assert!(app.services.accounts.find_user("mallory").await.is_ok());
        }
        if path == "/account/password" {
            let alice_now = app.services.accounts.find_user("alice").await.expect("alice");
            let s = app.services.accounts.start_session(&alice_now, false, Default::default()).await.expect("s");
            let p = portcullis_domain::Password::parse(PW, Default::default()).expect("pw");
            app.services
                .accounts
                .change_password(&s.session, "a brand new passphrase", &p, &portcullis_app::Origin::default())
                .await
                .expect("restore");
        }
    }
    let post = app.services.posts.get(post_id).await;
    assert!(post.is_err(), "deleted only by the request with a valid token");
    let titles: Vec<String> =
        app.services.posts.list(None, None, 50).await.expect("list").iter().map(|p| p.title.clone()).collect();
    assert_eq!(titles, vec!["Injected".to_owned()], "only the valid-token post exists");
}

#[tokio::test]
async fn cross_site_requests_are_refused_even_with_a_token() {
    let app = TestApp::spawn().await;
    let alice = app.create_user("alice", "alice@example.com", PW, false).await;
    let c = app.login_as(&alice).await;
    let token = c.get("/posts/new").await.csrf_token().expect("token");
    let body = format!("title=x&content=y&csrf_token={token}");
    for headers in [
        vec![("origin", "https://evil.example")],
        vec![("sec-fetch-site", "cross-site")],
        vec![("sec-fetch-site", "same-site")],
        vec![("origin", "null")],
        vec![("origin", "https://evil.example"), ("sec-fetch-site", "cross-site")],
    ] {
        let res = c.send(reqwest::Method::POST, "/posts/new", Some(body.clone()), &headers).await;
        assert_eq!(res.status, 403, "{headers:?}");
    }
    // A same-origin form on a no-referrer page: browsers send `Origin: null`
    // with `Sec-Fetch-Site: same-origin`, and that is accepted.
    let token = c.get("/posts/new").await.csrf_token().expect("token");
    let res = c
        .send(
            reqwest::Method::POST,
            "/posts/new",
            Some(format!("title=x&content=y&csrf_token={token}")),
            &[("origin", "null"), ("sec-fetch-site", "same-origin")],
        )
        .await;
    assert_eq!(res.status, 303);
    let same = format!("http://{}", app.addr);
    let res = c
        .send(reqwest::Method::POST, "/posts/new", Some(body), &[("origin", &same), ("sec-fetch-site", "same-origin")])
        .await;
    assert_eq!(res.status, 303);
}

#[tokio::test]
async fn parallel_requests_on_one_session_write_its_last_visit_once() {
    // A 10 s idle timeout: the last visit is written at most once a second.
    let app = TestApp::spawn_with(&[("PORTCULLIS_SESSION_IDLE_TIMEOUT", "10s")]).await;
    let user = app.create_user("alice", "alice@example.com", PW, false).await;
    let c = app.login_as(&user).await;
    // Open the connections first, so that the requests below arrive together.
    let pages = futures::future::join_all((0..32).map(|_| c.get("/dashboard"))).await;
    assert!(pages.iter().all(|p| p.status == 200));
    let pool = app.services.store.pool();
    for sql in [
        "CREATE TABLE touches (at INTEGER NOT NULL)",
        "CREATE TRIGGER counted AFTER UPDATE OF last_seen_at ON sessions BEGIN INSERT INTO touches VALUES (NEW.last_seen_at); END",
    ] {
        sqlx::query(sql).execute(pool).await.expect("count the writes");
    }
    let before: i64 = sqlx::query_scalar("SELECT last_seen_at FROM sessions").fetch_one(pool).await.expect("session");

    app.advance(Duration::from_millis(1100));
    let pages = futures::future::join_all((0..32).map(|_| c.get("/dashboard"))).await;
    assert!(pages.iter().all(|p| p.status == 200 && p.body.contains("Welcome, alice!")));
    let writes: Vec<i64> = sqlx::query_scalar("SELECT at FROM touches").fetch_all(pool).await.expect("writes");
    assert_eq!(writes.len(), 1, "one write for 32 requests: {writes:?}");
    assert!(writes[0] >= before + 1000, "the visit moved on");
    let stored: i64 = sqlx::query_scalar("SELECT last_seen_at FROM sessions").fetch_one(pool).await.expect("session");
    assert_eq!(stored, writes[0]);
}

#[tokio::test]
async fn a_werkzeug_user_logs_in_and_is_upgraded_to_argon2id() {
    let app = TestApp::spawn().await;
    let user = app.create_user("flasky", "flasky@example.com", PW, false).await;
    let fixtures: serde_json::Value =
        serde_json::from_str(include_str!("../crates/app/tests/fixtures/werkzeug_hashes.json")).expect("json");
    let entry = fixtures["hashes"]
        .as_array()
        .expect("list")
        .iter()
        .find(|h| h["method"] == "scrypt")
        .expect("scrypt fixture")
        .clone();
    let (password, hash) = (entry["password"].as_str().expect("pw"), entry["hash"].as_str().expect("hash"));
    sqlx::query("UPDATE users SET password_hash = $1 WHERE id = $2")
        .bind(hash)
        .bind(user.id)
        .execute(app.services.store.pool())
        .await
        .expect("plant werkzeug hash");

    let c = app.client();
    assert_eq!(c.login("flasky", "wrong password!", false).await.status, 200);
    let res = c.login("flasky", password, false).await;
    assert_eq!(res.status, 303);
    let upgraded = app.services.accounts.user(user.id).await.expect("user").password_hash;
    assert!(upgraded.starts_with("$argon2id$v=19$m=1024,t=1,p=1$"), "{upgraded}");
    // And the new hash works.
    assert_eq!(app.client().login("flasky", password, false).await.status, 303);
}

#[tokio::test]
async fn parallel_guesses_never_exceed_the_lockout_threshold() {
    let app =
        TestApp::spawn_with(&[("PORTCULLIS_LOCKOUT_THRESHOLD", "3"), ("PORTCULLIS_LOCKOUT_DURATION", "2s")]).await;
    app.create_user("alice", "alice@example.com", PW, false).await;
    for target in ["alice", "ghost"] {
        let mut tasks = Vec::new();
        for i in 0..30 {
            let c = app.client();
            let target = target.to_owned();
            tasks.push(tokio::spawn(async move { c.login(&target, &format!("guess number {i}"), false).await }));
        }
        let (mut invalid, mut locked) = (0, 0);
        for t in tasks {
            let res = t.await.expect("join");
            assert_eq!(res.status, 200);
            if res.body.contains("Invalid username or password") {
                invalid += 1;
            } else if res.body.contains("temporarily locked") {
                locked += 1;
            }
        }
        assert_eq!(invalid, 3, "{target}: exactly the threshold was evaluated");
        assert_eq!(locked, 27, "{target}");
    }
    // Locked: even the right password is refused, with the same answer as for a stranger.
    let right = app.client().login("alice", PW, false).await;
    let ghost = app.client().login("ghost", PW, false).await;
    assert!(right.body.contains("temporarily locked"));
    assert_eq!(normalized(&right).replace("alice", "X"), normalized(&ghost).replace("ghost", "X"));
    // Until the lock runs out.
    app.advance(Duration::from_millis(2200));
    assert_eq!(app.client().login("alice", PW, false).await.status, 303);
}
