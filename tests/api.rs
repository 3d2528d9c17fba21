//! The JSON API and personal access tokens, over a real socket: every route
//! for every kind of token and owner, expiry, revocation, the events that
//! end tokens, cookies ignored, problem documents, pagination, the OpenAPI
//! document.

use std::time::Duration;

use portcullis::testing::{TestApp, TestClient};
use portcullis_app::{Origin, User};
use portcullis_domain::Actor;
use reqwest::Method;
use serde_json::Value;

const PW: &str = "correct horse battery";

struct Res {
    status: u16,
    headers: reqwest::header::HeaderMap,
    body: String,
}

impl Res {
    fn json(&self) -> Value {
        serde_json::from_str(&self.body).unwrap_or(Value::Null)
    }
    fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }
    fn assert_problem(&self, status: u16) {
        assert_eq!(self.status, status, "{}", self.body);
        assert_eq!(self.header("content-type"), Some("application/problem+json"), "{status}: {}", self.body);
        let j = self.json();
        assert_eq!(j["status"], status, "{}", self.body);
        assert!(j["type"].is_string() && j["title"].is_string() && j["detail"].is_string(), "{}", self.body);
    }
}

async fn call(app: &TestApp, method: Method, path: &str, token: Option<&str>, body: Option<(&str, &str)>) -> Res {
    let mut req = reqwest::Client::new().request(method, app.url(path));
    if let Some(t) = token {
        req = req.header("authorization", format!("Bearer {t}"));
    }
    if let Some((ct, b)) = body {
        req = req.header("content-type", ct).body(b.to_owned());
    }
    let res = req.send().await.expect("request");
    let status = res.status().as_u16();
    let headers = res.headers().clone();
    Res { status, headers, body: res.text().await.unwrap_or_default() }
}

/// Creates a token through the page, as a person would, and reads it off
/// the page that shows it once.
async fn token_via_page(app: &TestApp, user: &User, scope: &str, days: &str) -> (TestClient, String) {
    let client = app.login_as(user).await;
    let res = client
        .submit(
            "/account/tokens",
            "/account/tokens",
            &[("name", "script"), ("scope", scope), ("expires_in_days", days)],
        )
        .await;
    assert_eq!(res.status, 303, "{}", res.body);
    let page = client.get("/account/tokens").await;
    let start = page.body.find("pcat_").expect("the new token is shown");
    let token: String = page.body[start..].chars().take_while(|c| c.is_ascii_alphanumeric() || *c == '_').collect();
    assert_eq!(token.len(), 59);
    let again = client.get("/account/tokens").await;
    assert!(!again.body.contains(&token), "shown once only");
    (client, token)
}

async fn token(app: &TestApp, user: &User, scope: &str) -> String {
    let (_, value) = app
        .services
        .tokens
        .create(user, "t", scope, "30", &Origin::user(&portcullis_app::ClientInfo { ip: None, user_agent: None }))
        .await
        .expect("token");
    value
}

fn actor(u: &User) -> Actor {
    Actor { user_id: u.id, is_admin: u.is_admin }
}

#[tokio::test]
async fn a_token_is_made_on_the_page_shown_once_and_works() {
    let app = TestApp::spawn().await;
    let alice = app.create_user("alice", "alice@example.com", PW, false).await;
    let (client, value) = token_via_page(&app, &alice, "read", "30").await;
    let me = call(&app, Method::GET, "/api/v1/me", Some(&value), None).await;
    assert_eq!(me.status, 200, "{}", me.body);
    assert_eq!(me.json()["username"], "alice");
    // A replayed reveal cookie shows nothing: the store has it shown.
    let page = client.get("/account/tokens").await;
    assert!(page.body.contains("script") && !page.body.contains(&value));
    assert!(page.body.contains("127.0.0.1"), "last used from");
    // Admin scope is refused to a non-admin.
    let res = client
        .submit("/account/tokens", "/account/tokens", &[("name", "x"), ("scope", "admin"), ("expires_in_days", "0")])
        .await;
    assert_eq!(res.status, 303);
    assert!(client.get("/account/tokens").await.body.contains("Only administrators"));
    assert_eq!(app.services.tokens.list(alice.id).await.expect("list").len(), 1);
}

#[derive(Clone, Copy, Debug, PartialEq)]
enum Tok {
    Read,
    Write,
    Admin,
    AdminsWrite,
    None,
    Expired,
    Revoked,
}

/// Every route, for every kind of token, on the caller's own post, another's, as an admin.
#[tokio::test]
async fn route_table_every_api_route_for_every_token() {
    let app = TestApp::spawn().await;
    let owner = app.create_user("owner", "owner@example.com", PW, false).await;
    let other = app.create_user("other", "other@example.com", PW, false).await;
    let admin = app.create_user("admin", "admin@example.com", PW, true).await;
    let routes = portcullis_web::api::route_list();
    assert_eq!(routes.len(), 9);
    for kind in [Tok::Read, Tok::Write, Tok::Admin, Tok::AdminsWrite, Tok::None, Tok::Expired, Tok::Revoked] {
        for (method, pattern) in &routes {
            for theirs in [false, true] {
                let holder = match kind {
                    Tok::Admin | Tok::AdminsWrite => &admin,
                    _ if theirs => &other,
                    _ => &owner,
                };
                let value = match kind {
                    Tok::Read => Some(token(&app, holder, "read").await),
                    Tok::Write | Tok::AdminsWrite => Some(token(&app, holder, "write").await),
                    Tok::Admin => Some(token(&app, holder, "admin").await),
                    Tok::None => None,
                    Tok::Expired => {
                        let v = token(&app, holder, "write").await;
                        app.advance(Duration::from_secs(31 * 86_400));
                        Some(v)
                    }
                    Tok::Revoked => {
                        let v = token(&app, holder, "write").await;
                        let id = &v[5..21];
                        let o = Origin::user(&portcullis_app::ClientInfo { ip: None, user_agent: None });
                        app.services.tokens.revoke(holder, id, &o).await.expect("revoke");
                        Some(v)
                    }
                };
                let post = app.services.posts.create(actor(&owner), "Owner's", "words").await.expect("post");
                let session = app
                    .services
                    .accounts
                    .start_session(holder, false, portcullis_app::ClientInfo { ip: None, user_agent: None })
                    .await
                    .expect("session");
                let path =
                    pattern.replace("/posts/{id}", &format!("/posts/{post}")).replace("{id}", &session.session.id);
                let body = match (method.as_str(), pattern.contains("posts")) {
                    ("POST" | "PATCH", true) => Some(("application/json", r#"{"title":"T","content":"C"}"#)),
                    _ => None,
                };
                let res = call(&app, method.clone(), &path, value.as_deref(), body).await;
                let writes = method != Method::GET;
                let admin_route = pattern.contains("/admin/");
                let on_post = pattern.contains("posts/{id}");
                let expected = match kind {
                    Tok::None | Tok::Expired | Tok::Revoked => 401,
                    _ if admin_route => {
                        if kind == Tok::Admin {
                            200
                        } else {
                            403
                        }
                    }
                    Tok::Read if writes => 403,
                    _ if !writes => 200,
                    // Writes: own post, or an admin's admin token deleting.
                    _ if on_post && method == Method::PATCH => {
                        if holder.id == owner.id {
                            200
                        } else {
                            403
                        }
                    }
                    _ if on_post => {
                        if holder.id == owner.id || kind == Tok::Admin {
                            204
                        } else {
                            403
                        }
                    }
                    _ if method == Method::POST => 201,
                    _ => 204,
                };
                assert_eq!(res.status, expected, "{kind:?} {method} {pattern} theirs={theirs}: {}", res.body);
                if expected >= 400 {
                    res.assert_problem(expected);
                }
                if expected == 401 {
                    assert!(res.header("www-authenticate").is_some_and(|v| v.starts_with("Bearer")));
                }
                if kind == Tok::Expired {
                    app.advance(Duration::ZERO);
                }
                if expected == 201 {
                    assert!(res.header("location").is_some_and(|l| l.starts_with("/api/v1/posts/")));
                }
            }
        }
    }
}

#[tokio::test]
async fn tokens_die_on_expiry_reset_lock_and_deletion() {
    let app = TestApp::spawn().await;
    let alice = app.create_user("alice", "alice@example.com", PW, false).await;
    let admin = app.create_user("admin", "admin@example.com", PW, true).await;
    let me = |t: String| {
        let app = &app;
        async move { call(app, Method::GET, "/api/v1/me", Some(&t), None).await.status }
    };
    // Expiry, on the server's clock.
    let t = token(&app, &alice, "read").await;
    assert_eq!(me(t.clone()).await, 200);
    app.advance(Duration::from_secs(29 * 86_400));
    assert_eq!(me(t.clone()).await, 200);
    app.advance(Duration::from_secs(2 * 86_400));
    assert_eq!(me(t).await, 401);
    // A lock by an admin.
    let t = token(&app, &alice, "read").await;
    let by_admin = Origin::user(&portcullis_app::ClientInfo { ip: None, user_agent: None });
    let admin_origin = portcullis_app::Origin { actor: Some((admin.id, admin.username.clone())), ..by_admin };
    app.services.accounts.lock_user(alice.id, &admin_origin).await.expect("lock");
    assert_eq!(me(t).await, 401);
    app.services.accounts.unlock_user(alice.id, &admin_origin).await.expect("unlock");
    assert!(app.services.tokens.list(alice.id).await.expect("list").is_empty(), "the lock deleted them");
    // A password reset.
    let t = token(&app, &alice, "write").await;
    assert_eq!(me(t.clone()).await, 200);
    app.services.accounts.request_password_reset("alice@example.com").await.expect("reset");
    let link = reset_link(&app).await;
    let value = link.rsplit('/').next().expect("token");
    app.services.accounts.reset_password(value, "a brand new passphrase", &admin_origin).await.expect("reset");
    assert_eq!(me(t).await, 401);
    // Deletion.
    let t = token(&app, &alice, "write").await;
    app.services.accounts.delete_user(alice.id, &admin_origin).await.expect("delete");
    assert_eq!(me(t).await, 401);
}

async fn reset_link(app: &TestApp) -> String {
    for _ in 0..100 {
        let outbox = app.data_dir().join("outbox");
        if let Ok(dir) = std::fs::read_dir(&outbox) {
            for e in dir.flatten() {
                let text = std::fs::read_to_string(e.path()).unwrap_or_default();
                if let Some(i) = text.find("/reset-password/") {
                    let link: String =
                        text[i..].chars().take_while(|c| !c.is_whitespace() && *c != '"' && *c != '<').collect();
                    return link;
                }
            }
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("no reset mail");
}

#[tokio::test]
async fn cookies_are_ignored_and_no_csrf_applies() {
    let app = TestApp::spawn().await;
    let alice = app.create_user("alice", "alice@example.com", PW, false).await;
    let browser = app.login_as(&alice).await;
    let res = browser.send(Method::GET, "/api/v1/me", None, &[]).await;
    assert_eq!(res.status, 401, "a session cookie does not authenticate the API");
    let res = browser.send(Method::POST, "/api/v1/posts", Some("title=a&content=b".into()), &[]).await;
    assert_eq!(res.status, 401);
    assert!(app.services.posts.list(None, None, 10).await.expect("list").is_empty());
    // A token needs no CSRF field.
    let t = token(&app, &alice, "write").await;
    let res = call(
        &app,
        Method::POST,
        "/api/v1/posts",
        Some(&t),
        Some(("application/json", r#"{"title":"Hi","content":"There"}"#)),
    )
    .await;
    assert_eq!(res.status, 201, "{}", res.body);
}

#[tokio::test]
async fn every_error_is_a_problem_document() {
    let app = TestApp::spawn().await;
    let alice = app.create_user("alice", "alice@example.com", PW, false).await;
    let t = token(&app, &alice, "write").await;
    let read = token(&app, &alice, "read").await;
    let post = |ct: &'static str, body: String| {
        let (app, t) = (&app, t.clone());
        async move { call(app, Method::POST, "/api/v1/posts", Some(&t), Some((ct, &body))).await }
    };
    post("application/json", "{not json".into()).await.assert_problem(400);
    call(&app, Method::GET, "/api/v1/me", Some("pcat_nonsense"), None).await.assert_problem(401);
    call(&app, Method::POST, "/api/v1/posts", Some(&read), Some(("application/json", "{}"))).await.assert_problem(403);
    call(&app, Method::GET, "/api/v1/posts/999999", Some(&t), None).await.assert_problem(404);
    call(&app, Method::GET, "/api/v2/nothing", Some(&t), None).await.assert_problem(404);
    call(&app, Method::PUT, "/api/v1/me", Some(&t), None).await.assert_problem(405);
    post("application/json", format!(r#"{{"title":"{}"}}"#, "x".repeat(200_000))).await.assert_problem(413);
    post("text/plain", "hello".into()).await.assert_problem(415);
    let res = post("application/json", r#"{"title":"","content":5}"#.into()).await;
    res.assert_problem(422);
    assert!(res.json()["errors"]["content"].is_array(), "{}", res.body);
    let res = call(&app, Method::GET, "/api/v1/posts?per_page=101", Some(&t), None).await;
    res.assert_problem(422);
    assert!(res.json()["errors"]["per_page"].is_array());
}

#[tokio::test]
async fn rate_limits_bound_guessing_and_each_token() {
    let app = TestApp::spawn_with(&[
        ("PORTCULLIS_RATE_LIMIT_PER_MINUTE", "5"),
        ("PORTCULLIS_API_RATE_LIMIT_PER_MINUTE", "3"),
    ])
    .await;
    let alice = app.create_user("alice", "alice@example.com", PW, false).await;
    let t = token(&app, &alice, "read").await;
    let first = call(&app, Method::GET, "/api/v1/me", Some(&t), None).await;
    assert_eq!(first.header("ratelimit-limit"), Some("3"));
    assert_eq!(first.header("ratelimit-remaining"), Some("2"));
    call(&app, Method::GET, "/api/v1/me", Some(&t), None).await;
    call(&app, Method::GET, "/api/v1/me", Some(&t), None).await;
    let over = call(&app, Method::GET, "/api/v1/me", Some(&t), None).await;
    over.assert_problem(429);
    assert!(over.header("retry-after").is_some());
    app.advance(Duration::from_secs(61));
    assert_eq!(call(&app, Method::GET, "/api/v1/me", Some(&t), None).await.status, 200);
    // Guessing: malformed and unknown tokens count alike, then even a right one waits.
    for i in 0..5 {
        // The right token with its last character changed (to one it is not).
        let other = if t.ends_with('x') { 'y' } else { 'x' };
        let bad = if i % 2 == 0 { "garbage".to_owned() } else { format!("{}{other}", &t[..t.len() - 1]) };
        assert_eq!(call(&app, Method::GET, "/api/v1/me", Some(&bad), None).await.status, 401);
    }
    call(&app, Method::GET, "/api/v1/me", Some("garbage"), None).await.assert_problem(429);
}

#[tokio::test]
async fn lists_paginate_with_a_link_header() {
    let app = TestApp::spawn().await;
    let alice = app.create_user("alice", "alice@example.com", PW, false).await;
    for i in 0..5 {
        app.services.posts.create(actor(&alice), &format!("Post {i}"), "words").await.expect("post");
    }
    let t = token(&app, &alice, "read").await;
    let p1 = call(&app, Method::GET, "/api/v1/posts?per_page=2", Some(&t), None).await;
    assert_eq!(p1.json().as_array().map(Vec::len), Some(2));
    let link = p1.header("link").expect("link").to_owned();
    assert!(link.contains("page=2&per_page=2>; rel=\"next\""), "{link}");
    let p3 = call(&app, Method::GET, "/api/v1/posts?page=3&per_page=2", Some(&t), None).await;
    assert_eq!(p3.json().as_array().map(Vec::len), Some(1));
    let link = p3.header("link").expect("link");
    assert!(!link.contains("rel=\"next\"") && link.contains("rel=\"prev\""), "{link}");
}

#[tokio::test]
async fn the_openapi_document_lists_every_route_and_the_docs_page_renders() {
    let app = TestApp::spawn().await;
    let doc = call(&app, Method::GET, "/api/openapi.json", None, None).await;
    assert_eq!(doc.status, 200);
    let j = doc.json();
    assert!(j["openapi"].as_str().is_some_and(|v| v.starts_with("3.1")));
    assert_eq!(j["components"]["securitySchemes"]["bearer"]["scheme"], "bearer");
    let mut listed = 0;
    for (method, path) in portcullis_web::api::route_list() {
        let op = &j["paths"][path][method.as_str().to_ascii_lowercase()];
        assert!(op.is_object(), "{method} {path} is in the document");
        listed += 1;
    }
    let total: usize =
        j["paths"].as_object().map(|p| p.values().map(|v| v.as_object().map_or(0, |o| o.len())).sum()).unwrap_or(0);
    assert_eq!(total, listed, "and nothing else");
    let docs = call(&app, Method::GET, "/api/docs", None, None).await;
    assert_eq!(docs.status, 200);
    assert!(docs.body.contains("/api/v1/posts") && !docs.body.contains("<script"));
}

/// What the document says of a post's fields is what the server does: a
/// blank title or content (white space, control characters) is refused,
/// and so is one over the limit, so the document bounds both and wants a
/// visible character; a null in a change leaves the field as it is.
#[tokio::test]
async fn the_document_states_the_post_fields_rules_the_server_applies() {
    use portcullis_domain::post::{CONTENT_MAX, TITLE_MAX};
    let app = TestApp::spawn().await;
    let j = call(&app, Method::GET, "/api/openapi.json", None, None).await.json();
    for schema in ["NewPost", "PostChange"] {
        let props = &j["components"]["schemas"][schema]["properties"];
        assert_eq!(props["title"]["minLength"], 1, "{schema}: {props}");
        assert_eq!(props["title"]["maxLength"], TITLE_MAX, "{schema}: {props}");
        assert_eq!(props["content"]["minLength"], 1, "{schema}: {props}");
        assert_eq!(props["content"]["maxLength"], CONTENT_MAX, "{schema}: {props}");
        assert!(props["title"]["pattern"].is_string() && props["content"]["pattern"].is_string(), "{props}");
    }
    let page = &j["paths"]["/api/v1/posts"]["get"]["parameters"][0];
    assert!(page["description"].as_str().is_some_and(|d| d.contains("422")), "the depth rule is stated: {page}");

    let alice = app.create_user("alice", "alice@example.com", PW, false).await;
    let t = token(&app, &alice, "write").await;
    let send = |method: Method, path: String, body: String| {
        let (app, t) = (&app, t.clone());
        async move { call(app, method, &path, Some(&t), Some(("application/json", &body))).await }
    };
    let res = send(Method::POST, "/api/v1/posts".into(), r#"{"title":"","content":""}"#.into()).await;
    res.assert_problem(422);
    assert!(res.json()["errors"]["title"].is_array() && res.json()["errors"]["content"].is_array(), "{}", res.body);
    let res =
        send(Method::POST, "/api/v1/posts".into(), r#"{"title":" \u0001\t ","content":" \u0000\n"}"#.into()).await;
    res.assert_problem(422);
    assert!(res.json()["errors"]["title"].is_array() && res.json()["errors"]["content"].is_array(), "{}", res.body);
    let long = serde_json::json!({ "title": "t".repeat(TITLE_MAX + 1), "content": "c".repeat(CONTENT_MAX + 1) });
    let res = send(Method::POST, "/api/v1/posts".into(), long.to_string()).await;
    res.assert_problem(422);
    assert!(res.json()["errors"]["title"].is_array() && res.json()["errors"]["content"].is_array(), "{}", res.body);
    let longest = serde_json::json!({ "title": "é".repeat(TITLE_MAX), "content": "c".repeat(CONTENT_MAX) });
    let res = send(Method::POST, "/api/v1/posts".into(), longest.to_string()).await;
    assert_eq!(res.status, 201, "{}", res.body);
    let path = res.header("location").expect("location").to_owned();
    let res = send(Method::PATCH, path.clone(), r#"{"title":null,"content":""}"#.into()).await;
    res.assert_problem(422);
    assert!(res.json()["errors"]["content"].is_array(), "{}", res.body);
    let res = send(Method::PATCH, path, r#"{"title":null,"content":"new"}"#.into()).await;
    assert_eq!(res.status, 200, "{}", res.body);
    assert_eq!(res.json()["title"], "é".repeat(TITLE_MAX));
    assert_eq!(res.json()["content"], "new");
}

// The store's tests read the same variables; one file says how for all.
#[allow(dead_code, reason = "shared by several test binaries, each using the services it needs")]
#[path = "../crates/store/tests/support/services.rs"]
mod services;

/// PostgreSQL refuses NUL in text: a NUL in a search, a post's content or a
/// session id must not reach it as a 500. The search finds nobody, the
/// content loses its NULs, the session is not found.
#[tokio::test]
#[cfg_attr(portcullis_no_postgres, ignore = "needs PostgreSQL: set PORTCULLIS_TEST_POSTGRES_URL")]
async fn nul_characters_are_answered_not_500_on_postgresql() {
    use sqlx::{Connection as _, Executor as _};
    let Some(base) = services::postgres_url() else {
        return;
    };
    let nanos =
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.subsec_nanos()).unwrap_or(0);
    let schema = format!("api_nul_{}_{nanos}", std::process::id());
    let mut admin = sqlx::PgConnection::connect(&base).await.expect("PostgreSQL");
    admin.execute(format!(r#"CREATE SCHEMA "{schema}""#).as_str()).await.expect("schema");
    let sep = if base.contains('?') { '&' } else { '?' };
    let url = format!("{base}{sep}options=-c%20search_path%3D{schema}");
    let app = TestApp::spawn_with(&[("PORTCULLIS_DATABASE_URL", url.as_str())]).await;

    let root = app.create_user("root", "root@example.com", PW, true).await;
    let t = token(&app, &root, "admin").await;
    let res = call(&app, Method::GET, "/api/v1/admin/users?q=%00", Some(&t), None).await;
    assert_eq!(res.status, 200, "{}", res.body);
    assert_eq!(res.json(), serde_json::json!([]));
    let res = call(&app, Method::GET, "/api/v1/admin/users?q=ro%00ot", Some(&t), None).await;
    assert_eq!(res.status, 200, "{}", res.body);
    let body = r#"{"title":"a\u0000b","content":"x\u0000y"}"#;
    let res = call(&app, Method::POST, "/api/v1/posts", Some(&t), Some(("application/json", body))).await;
    assert_eq!(res.status, 201, "{}", res.body);
    assert_eq!((res.json()["title"].clone(), res.json()["content"].clone()), ("ab".into(), "xy".into()));
    let path = res.header("location").expect("location").to_owned();
    let body = r#"{"content":"\u0000"}"#;
    call(&app, Method::PATCH, &path, Some(&t), Some(("application/json", body))).await.assert_problem(422);
    let body = r#"{"content":"\u0000z"}"#;
    let res = call(&app, Method::PATCH, &path, Some(&t), Some(("application/json", body))).await;
    assert_eq!(res.status, 200, "{}", res.body);
    assert_eq!(res.json()["content"], "z");
    call(&app, Method::DELETE, "/api/v1/sessions/%00", Some(&t), None).await.assert_problem(404);
    call(&app, Method::DELETE, "/api/v1/sessions/a%00b", Some(&t), None).await.assert_problem(404);

    app.stop().await;
    admin.execute(format!(r#"DROP SCHEMA "{schema}" CASCADE"#).as_str()).await.expect("drop schema");
}
