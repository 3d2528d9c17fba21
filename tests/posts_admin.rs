//! Posts, authorization and the admin area over a real socket.

use portcullis::testing::{TestApp, TestClient, TestResponse};
use portcullis_app::User;
use portcullis_domain::Actor;

const PW: &str = "correct horse battery staple";

fn actor(u: &User) -> Actor {
    Actor { user_id: u.id, is_admin: u.is_admin }
}

fn is_login_redirect(res: &TestResponse) -> bool {
    matches!(res.status, 302 | 303) && res.location().is_some_and(|l| l.starts_with("/login?next="))
}

struct World {
    app: TestApp,
    owner: User,
    other: User,
    admin: User,
}

async fn world() -> World {
    let app = TestApp::spawn().await;
    let owner = app.create_user("owner", "owner@example.com", PW, false).await;
    let other = app.create_user("other", "other@example.com", PW, false).await;
    let admin = app.create_user("admin", "admin@example.com", PW, true).await;
    World { app, owner, other, admin }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Role {
    Anonymous,
    User,
    Owner,
    Admin,
}

impl World {
    async fn client(&self, role: Role) -> TestClient {
        match role {
            Role::Anonymous => self.app.client(),
            Role::User => self.app.login_as(&self.other).await,
            Role::Owner => self.app.login_as(&self.owner).await,
            Role::Admin => self.app.login_as(&self.admin).await,
        }
    }

    async fn post_of_owner(&self) -> i64 {
        self.app.services.posts.create(actor(&self.owner), "Owner's post", "Original words").await.expect("post")
    }
}

/// What a role should get from a route. `Login` means a redirect to the login page.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Outcome {
    Status(u16),
    Login,
}
use Outcome::{Login, Status};

/// Every route the router has, classified for every role. A route added to the
/// router without a line here fails the test.
#[tokio::test]
async fn route_table_every_route_for_every_role() {
    let w = world().await;
    let routes = portcullis_web::routes::route_list();
    assert!(routes.len() >= 20, "the table lists the router's routes");
    let victim = w.app.create_user("victim", "victim@example.com", PW, false).await;
    for (method, pattern) in routes {
        for role in [Role::Anonymous, Role::User, Role::Owner, Role::Admin] {
            let post_id = w.post_of_owner().await;
            let path = pattern
                .replace("/posts/{id}", &format!("/posts/{post_id}"))
                .replace("/admin/users/{id}/{action}", &format!("/admin/users/{}/unlock", victim.id))
                .replace("/admin/users/{id}/two-factor", &format!("/admin/users/{}/two-factor", victim.id))
                .replace("/account/sessions/{id}/revoke", "/account/sessions/AAAAAAAAAAAAAAAAAAAAAA/revoke")
                .replace("/account/passkeys/{id}/", "/account/passkeys/1/")
                .replace("/account/tokens/{id}/", "/account/tokens/1/")
                .replace("{token}", &format!("{}.{}", "A".repeat(22), "B".repeat(43)));
            assert!(!path.contains('{'), "unclassified path parameter in {pattern}");
            use Role::*;
            let expected: Outcome = match (method.as_str(), pattern) {
                (
                    "GET",
                    "/"
                    | "/static/app.css"
                    | "/static/password.js"
                    | "/static/passkeys.js"
                    | "/healthz"
                    | "/readyz"
                    | "/posts/{id}",
                ) => Status(200),
                ("GET", "/register" | "/login") => {
                    if role == Anonymous {
                        Status(200)
                    } else {
                        Status(303)
                    }
                }
                ("POST", "/register" | "/login") => {
                    if role == Anonymous {
                        Status(200)
                    } else {
                        Status(303)
                    }
                }
                ("POST", "/logout" | "/forgot-password") => Status(303),
                ("GET", "/forgot-password") => Status(200),
                (_, "/verify-email/{token}" | "/reset-password/{token}") => Status(400),
                // An administrator exists: the setup link is gone.
                (_, "/setup/{token}") => Status(404),
                ("POST", "/verify-email/resend") => {
                    if role == Anonymous {
                        Login
                    } else {
                        Status(303)
                    }
                }
                (
                    "GET",
                    "/logout" | "/dashboard" | "/posts/new" | "/account" | "/account/sessions" | "/account/activity"
                    | "/account/export",
                ) => {
                    if role == Anonymous {
                        Login
                    } else {
                        Status(200)
                    }
                }
                ("POST", "/posts/new") => {
                    if role == Anonymous {
                        Login
                    } else {
                        Status(200)
                    }
                }
                ("GET", "/posts/{id}/edit") => match role {
                    Anonymous => Login,
                    Owner => Status(200),
                    _ => Status(403),
                },
                ("POST", "/posts/{id}/edit") => match role {
                    Anonymous => Login,
                    Owner => Status(303),
                    _ => Status(403),
                },
                ("POST", "/posts/{id}/delete") => match role {
                    Anonymous => Login,
                    Owner | Admin => Status(303),
                    _ => Status(403),
                },
                (
                    "POST",
                    "/account/password" | "/account/sessions/revoke-others" | "/account/email" | "/account/delete",
                ) => {
                    if role == Anonymous {
                        Login
                    } else {
                        Status(303)
                    }
                }
                ("POST", "/account/sessions/{id}/revoke") => {
                    if role == Anonymous {
                        Login
                    } else {
                        Status(404)
                    }
                }
                // Passkeys: these servers' base URL is an IP address, so
                // passkeys are off; the ceremonies' bodies here are forms, not JSON.
                ("GET", "/account/passkeys") => {
                    if role == Anonymous {
                        Login
                    } else {
                        Status(200)
                    }
                }
                (
                    "POST",
                    "/account/passkeys/register/start"
                    | "/account/passkeys/register/finish"
                    | "/account/passkeys/confirm/start",
                ) => {
                    if role == Anonymous {
                        Login
                    } else {
                        Status(400)
                    }
                }
                ("POST", "/account/passkeys/{id}/rename") => {
                    if role == Anonymous {
                        Login
                    } else {
                        Status(303)
                    }
                }
                ("POST", "/account/passkeys/{id}/delete") => {
                    if role == Anonymous {
                        Login
                    } else {
                        Status(404)
                    }
                }
                ("POST", "/login/passkey/start" | "/login/passkey/finish") => {
                    if role == Anonymous {
                        Status(400)
                    } else {
                        Status(409)
                    }
                }
                // Personal access tokens: an empty form is refused with a
                // message on the page; nobody has token 1.
                ("GET", "/account/tokens") => {
                    if role == Anonymous {
                        Login
                    } else {
                        Status(200)
                    }
                }
                ("POST", "/account/tokens") => {
                    if role == Anonymous {
                        Login
                    } else {
                        Status(303)
                    }
                }
                ("POST", "/account/tokens/{id}/revoke") => {
                    if role == Anonymous {
                        Login
                    } else {
                        Status(404)
                    }
                }
                ("GET", "/admin") => match role {
                    Anonymous => Login,
                    Admin => Status(200),
                    _ => Status(403),
                },
                ("GET", "/admin/users" | "/admin/audit" | "/admin/users/{id}/{action}") => match role {
                    Anonymous => Login,
                    Admin => Status(200),
                    _ => Status(403),
                },
                ("POST", "/admin/users/{id}/{action}") => match role {
                    Anonymous => Login,
                    Admin => Status(303),
                    _ => Status(403),
                },
                other => two_factor_outcome(other, role)
                    .unwrap_or_else(|| panic!("route {other:?} is not classified: add it to this table")),
            };
            let c = w.client(role).await;
            let token =
                c.get(if role == Role::Anonymous { "/login" } else { "/dashboard" }).await.csrf_token().expect("token");
            let res = if method == reqwest::Method::GET {
                c.get(&path).await
            } else {
                let fields: Vec<(&str, &str)> = match pattern {
                    "/posts/{id}/edit" => vec![("title", "Edited"), ("content", "Edited words")],
                    "/login" => vec![("username", "nobody"), ("password", "wrong password")],
                    _ => vec![],
                };
                let mut all = fields;
                all.push(("csrf_token", &token));
                c.post_form(&path, &all).await
            };
            match expected {
                Status(code) => assert_eq!(res.status, code, "{method} {path} as {role:?}"),
                Login => {
                    assert!(is_login_redirect(&res), "{method} {path} as {role:?}: {} {:?}", res.status, res.location())
                }
            }
            if res.status == 200 && res.header("content-type").is_some_and(|t| t.starts_with("text/html")) {
                let title =
                    res.body.split("<title>").nth(1).and_then(|t| t.split("</title>").next()).unwrap_or("<missing>");
                // Charts' SVG carry their own <title>; the page has one, in its head.
                let head = res.body.split("</head>").next().unwrap_or_default();
                assert!(
                    !title.contains('<') && head.matches("<title>").count() == 1,
                    "{method} {path}: title {title:?}"
                );
                assert_eq!(res.body.matches("<h1").count(), 1, "{method} {path}: one main heading");
            }
            if res.status == 403 {
                assert!(res.body.contains("Forbidden"), "{method} {path}: the site's 403 page");
            }
        }
    }
}

#[tokio::test]
async fn ownership_matrix_changes_nothing_when_refused() {
    let w = world().await;
    let id = w.post_of_owner().await;
    let edit = format!("/posts/{id}/edit");
    let delete = format!("/posts/{id}/delete");

    // Another user: 403 with the contract's words, post unchanged.
    let c = w.client(Role::User).await;
    let page = c.get(&edit).await;
    assert_eq!(page.status, 403);
    assert!(page.body.contains("You can only edit your own posts"));
    let res = c.submit("/dashboard", &edit, &[("title", "Hacked"), ("content", "Hacked")]).await;
    assert_eq!(res.status, 403);
    assert!(res.body.contains("You can only edit your own posts"));
    let res = c.submit("/dashboard", &delete, &[]).await;
    assert_eq!(res.status, 403);
    let post = w.app.services.posts.get(id).await.expect("still there");
    assert_eq!((post.title.as_str(), post.content.as_str()), ("Owner's post", "Original words"));

    // The admin may delete but not edit.
    let admin = w.client(Role::Admin).await;
    assert_eq!(admin.submit("/dashboard", &edit, &[("title", "Admin words"), ("content", "x")]).await.status, 403);
    let res = admin.submit("/dashboard", &delete, &[]).await;
    assert_eq!(res.status, 303);
    assert!(w.app.services.posts.get(id).await.is_err());

    // The owner edits their own.
    let id = w.post_of_owner().await;
    let owner = w.client(Role::Owner).await;
    let res = owner
        .submit(
            &format!("/posts/{id}/edit"),
            &format!("/posts/{id}/edit"),
            &[("title", "New title"), ("content", "New words")],
        )
        .await;
    assert_eq!((res.status, res.location()), (303, Some(format!("/posts/{id}").as_str())));
    let shown = owner.get(&format!("/posts/{id}")).await;
    assert!(shown.body.contains("Post updated successfully") && shown.body.contains("New title"));

    // Unknown ids are 404 whatever the method.
    for path in ["/posts/999999", "/posts/999999/edit", "/posts/abc", "/posts/-1/edit"] {
        assert_eq!(owner.get(path).await.status, 404, "GET {path}");
    }
    for path in ["/posts/999999/edit", "/posts/999999/delete"] {
        assert_eq!(
            owner.submit("/dashboard", path, &[("title", "t"), ("content", "c")]).await.status,
            404,
            "POST {path}"
        );
    }
}

#[tokio::test]
async fn posts_are_validated_and_paginated_by_keyset() {
    let w = world().await;
    let c = w.client(Role::Owner).await;
    let res = c.submit("/posts/new", "/posts/new", &[("title", "   "), ("content", "")]).await;
    assert_eq!(res.status, 200);
    assert!(res.body.contains("Title is required") && res.body.contains("Content is required"));
    let long = "t".repeat(201);
    let res = c.submit("/posts/new", "/posts/new", &[("title", &long), ("content", "kept text")]).await;
    assert!(res.body.contains("at most 200") && res.body.contains("kept text"));

    for i in 0..25 {
        let res = c
            .submit("/posts/new", "/posts/new", &[("title", &format!("Post number {i:02}")), ("content", "body")])
            .await;
        assert_eq!(res.status, 303);
    }
    let mut seen = Vec::new();
    let mut page = "/".to_owned();
    for _ in 0..5 {
        let res = c.get(&page).await;
        assert_eq!(res.status, 200);
        let titles: Vec<String> =
            res.body.match_indices("Post number ").map(|(i, _)| res.body[i..i + 14].to_owned()).collect();
        assert!(titles.len() <= 10);
        seen.extend(titles);
        match res.body.split("?before=").nth(1).and_then(|s| s.split('"').next()) {
            Some(before) => page = format!("/?before={before}"),
            None => break,
        }
    }
    let expected: Vec<String> = (0..25).rev().map(|i| format!("Post number {i:02}")).collect();
    assert_eq!(seen, expected, "every post once, newest first");
    // The dashboard pages the user's own posts the same way.
    let dash = c.get("/dashboard").await;
    assert_eq!(dash.body.matches("Post number ").count(), 10);
    assert!(dash.body.contains("dashboard?before="));
    assert!(!w.client(Role::User).await.get("/dashboard").await.body.contains("Post number"));
}

#[tokio::test]
async fn hostile_text_is_escaped_on_every_page() {
    let app = TestApp::spawn().await;
    let evil = app.create_user("x.evil", "o'brien&co@example.com", PW, true).await;
    let script = "<script>alert('x')</script>";
    let id = app
        .services
        .posts
        .create(
            actor(&evil),
            &format!("{script} title"),
            &format!("{script} \"content\" & <img src=x onerror=alert(1)>"),
        )
        .await
        .expect("post");
    let c = app.login_as(&evil).await;
    for path in [
        "/".to_owned(),
        "/dashboard".into(),
        format!("/posts/{id}"),
        format!("/posts/{id}/edit"),
        "/admin/users".into(),
        format!("/admin/users/{}/lock", evil.id),
    ] {
        let res = c.get(&path).await;
        assert_eq!(res.status, 200, "{path}");
        assert!(!res.body.contains("<script>alert"), "{path}: raw script");
        assert!(!res.body.contains("<img src=x"), "{path}: raw img");
        assert!(!res.body.contains("o'brien&co"), "{path}: raw email");
    }
    assert!(c.get(&format!("/posts/{id}")).await.body.contains("&lt;script&gt;"));
}

#[tokio::test]
async fn admin_search_treats_sql_metacharacters_literally_and_pages() {
    let w = world().await;
    for i in 0..30 {
        w.app.create_user(&format!("member{i:02}"), &format!("m{i:02}@example.com"), PW, false).await;
    }
    w.app.create_user("under_score", "pct%sign@example.com", PW, false).await;
    let admin = w.client(Role::Admin).await;
    let count = |res: &TestResponse| res.body.matches("<tr>").count() - 1; // minus the header row

    let all = admin.get("/admin/users").await;
    assert_eq!(count(&all), 25, "first page");
    let next = all.body.split("after=").nth(1).and_then(|s| s.split('"').next()).expect("next page link");
    let page2 = admin.get(&format!("/admin/users?q=&after={next}")).await;
    assert_eq!(count(&page2), 34 - 25, "second page holds the rest");
    assert!(!page2.body.contains("after="), "no third page");

    for (q, expect) in [
        ("%", 1),
        ("_", 1),
        ("MEMBER1", 10),
        ("m0", 10),
        ("' OR '1'='1", 0),
        ("\\", 0),
        ("example.com", 25),
        ("%25", 0),
    ] {
        let encoded: String = q.bytes().map(|b| format!("%{b:02X}")).collect();
        let res = admin.get(&format!("/admin/users?q={encoded}")).await;
        assert_eq!(res.status, 200, "q={q:?}");
        let rows = if res.body.contains("No users match") { 0 } else { count(&res) };
        assert_eq!(rows, expect, "q={q:?}");
    }
}

#[tokio::test]
async fn a_demoted_admin_loses_access_on_the_next_request() {
    let w = world().await;
    let second = w.app.create_user("second", "second@example.com", PW, true).await;
    let second_client = w.app.login_as(&second).await;
    assert_eq!(second_client.get("/admin/users").await.status, 200);

    let admin = w.client(Role::Admin).await;
    let confirm = admin.get(&format!("/admin/users/{}/revoke-admin", second.id)).await;
    assert_eq!(confirm.status, 200);
    assert!(confirm.body.contains("Remove administrator"));
    let res = admin
        .post_form(
            &format!("/admin/users/{}/revoke-admin", second.id),
            &[("csrf_token", &confirm.csrf_token().expect("token"))],
        )
        .await;
    assert_eq!(res.status, 303);
    let list = admin.get("/admin/users").await;
    assert!(list.body.contains("second is no longer an administrator"));

    // The very next request: the old session is gone; a new login is not admin.
    assert!(is_login_redirect(&second_client.get("/admin/users").await));
    let fresh = w.app.client();
    fresh.login("second", PW, false).await;
    assert_eq!(fresh.get("/admin/users").await.status, 403);
}

#[tokio::test]
async fn the_last_admin_cannot_be_demoted_or_deleted() {
    let w = world().await;
    let admin = w.client(Role::Admin).await;
    for action in ["revoke-admin", "delete"] {
        let res = admin.submit("/admin/users", &format!("/admin/users/{}/{action}", w.admin.id), &[]).await;
        assert_eq!(res.status, 303);
        let page = admin.get(res.location().expect("location")).await;
        assert!(page.body.contains("flash error") && page.body.contains("last administrator"), "{action}");
    }
    let me = w.app.services.accounts.user(w.admin.id).await.expect("still there");
    assert!(me.is_admin);
}

#[tokio::test]
async fn admin_actions_lock_unlock_sessions_and_delete() {
    let w = world().await;
    let admin = w.client(Role::Admin).await;
    let victim = w.app.login_as(&w.other).await;
    let post = w.app.services.posts.create(actor(&w.other), "Doomed", "Post").await.expect("post");

    let act = |action: &str| format!("/admin/users/{}/{action}", w.other.id);
    assert_eq!(admin.submit("/admin/users", &act("lock"), &[]).await.status, 303);
    assert!(is_login_redirect(&victim.get("/dashboard").await), "lock ends the sessions");
    let c = w.app.client();
    assert!(c.login("other", PW, false).await.body.contains("locked by an administrator"));
    assert!(admin.get("/admin/users?q=other").await.body.contains("badge locked"));

    assert_eq!(admin.submit("/admin/users", &act("unlock"), &[]).await.status, 303);
    let c = w.app.client();
    assert_eq!(c.login("other", PW, false).await.status, 303);

    assert_eq!(admin.submit("/admin/users", &act("revoke-sessions"), &[]).await.status, 303);
    assert!(is_login_redirect(&c.get("/dashboard").await));

    assert_eq!(admin.submit("/admin/users", &act("delete"), &[]).await.status, 303);
    assert!(w.app.services.accounts.user(w.other.id).await.is_err());
    assert!(w.app.services.posts.get(post).await.is_err(), "their posts went too");
}

/// The two-factor routes, for [`route_table_every_route_for_every_role`]
/// (no password was given, so no pending sign-in waits for a code).
fn two_factor_outcome((method, pattern): (&str, &str), role: Role) -> Option<Outcome> {
    let signed_in = |ok: u16| if role == Role::Anonymous { Login } else { Status(ok) };
    let admin = |ok: u16| match role {
        Role::Anonymous => Login,
        Role::Admin => Status(ok),
        _ => Status(403),
    };
    Some(match (method, pattern) {
        ("GET", "/account/two-factor") => signed_in(200),
        ("POST", "/account/two-factor/setup" | "/account/two-factor/confirm") => signed_in(200),
        ("POST", "/account/two-factor/disable" | "/account/two-factor/recovery-codes") => signed_in(303),
        (_, "/login/two-factor") => Status(303),
        ("GET", "/admin/users/{id}/two-factor/reset") => admin(200),
        ("POST", "/admin/users/{id}/two-factor/reset") => admin(303),
        _ => return None,
    })
}
