//! Passkeys over a real socket, with a software authenticator: adding one,
//! signing in with it, and what an attacker would try — replaying or
//! finishing a ceremony twice, an expired ceremony, no CSRF header, another
//! user's passkey, a cloned authenticator, a locked account.

use std::time::Duration;

use portcullis::testing::{TestApp, TestClient, TestResponse};
use portcullis_app::Clock as _;
use portcullis_app::audit::AuditFilter;
use portcullis_app::ports::AuditStore as _;
use serde_json::{Value, json};

#[path = "support/softkey.rs"]
mod softkey;

use softkey::SoftKey;

const PW: &str = "correct horse battery staple";
/// WebAuthn needs a host name: the relying party is `localhost`.
const ORIGIN: &str = "http://localhost:8080";
const GONE: &str = "expired or was already used";

async fn spawn() -> TestApp {
    TestApp::spawn_with(&[("PORTCULLIS_BASE_URL", ORIGIN)]).await
}

/// POSTs `body` as JSON with `token` in `X-CSRF-Token` (none if `None`).
async fn post_json(c: &TestClient, path: &str, token: Option<&str>, body: &Value) -> TestResponse {
    let mut extra = vec![("content-type", "application/json")];
    if let Some(t) = token {
        extra.push(("x-csrf-token", t));
    }
    c.send(reqwest::Method::POST, path, Some(body.to_string()), &extra).await
}

fn json_of(res: &TestResponse) -> Value {
    serde_json::from_str(&res.body).unwrap_or_else(|e| panic!("not JSON ({e}): {} {}", res.status, res.body))
}

async fn token(c: &TestClient, page: &str) -> String {
    c.get(page).await.csrf_token().expect("a CSRF token on the page")
}

/// Starts adding a passkey named `name`: the ceremony's handle and options.
async fn start_registration(c: &TestClient, name: &str) -> (String, Value) {
    let t = token(c, "/account/passkeys").await;
    let res = post_json(c, "/account/passkeys/register/start", Some(&t), &json!({ "name": name })).await;
    assert_eq!(res.status, 200, "{}", res.body);
    let v = json_of(&res);
    (v["handle"].as_str().expect("a handle").to_owned(), v["options"].clone())
}

async fn finish_registration(c: &TestClient, handle: &str, response: &Value) -> TestResponse {
    let t = token(c, "/account/passkeys").await;
    post_json(c, "/account/passkeys/register/finish", Some(&t), &json!({ "handle": handle, "response": response }))
        .await
}

/// Adds a passkey through the whole ceremony.
async fn add_passkey(c: &TestClient, key: &mut SoftKey, name: &str) {
    let (handle, options) = start_registration(c, name).await;
    let res = finish_registration(c, &handle, &key.register(&options)).await;
    assert_eq!(res.status, 200, "{}", res.body);
}

/// Starts a sign-in on an anonymous client.
async fn start_sign_in(c: &TestClient) -> (String, Value) {
    let t = token(c, "/login").await;
    let res = post_json(c, "/login/passkey/start", Some(&t), &json!({})).await;
    assert_eq!(res.status, 200, "{}", res.body);
    let v = json_of(&res);
    (v["handle"].as_str().expect("a handle").to_owned(), v["options"].clone())
}

async fn finish_sign_in(c: &TestClient, body: &Value) -> TestResponse {
    let t = token(c, "/login").await;
    post_json(c, "/login/passkey/finish", Some(&t), body).await
}

async fn events(app: &TestApp, kind: &str) -> Vec<portcullis_app::audit::AuditEvent> {
    let filter = AuditFilter { kind: Some(kind.to_owned()), ..Default::default() };
    app.services.store.list_audit(&filter, 100).await.expect("audit")
}

#[tokio::test]
async fn a_passkey_is_added_and_signs_in_without_a_password() {
    let app = spawn().await;
    let alice = app.create_user("alice", "alice@example.com", PW, false).await;
    let c = app.login_as(&alice).await;
    let page = c.get("/account/passkeys").await;
    assert!(page.body.contains("You have no passkeys yet"), "{}", page.body);
    let mail_before = app.services.store.pending_mail_count().await.expect("count");
    let mut key = SoftKey::new(ORIGIN, 7);
    add_passkey(&c, &mut key, "MacBook Touch ID").await;
    let page = c.get("/account/passkeys").await;
    assert!(page.body.contains("MacBook Touch ID") && page.body.contains("never"), "{}", page.body);
    assert_eq!(events(&app, "passkey.added").await.len(), 1);
    assert_eq!(app.services.store.pending_mail_count().await.expect("count"), mail_before + 1, "the owner is told");

    // Anyone else's browser: no name, no password.
    let anon = app.client();
    let login = anon.get("/login").await;
    assert!(login.body.contains("Sign in with a passkey"));
    assert!(login.body.contains("autocomplete=\"username webauthn\""));
    let (handle, options) = start_sign_in(&anon).await;
    assert!(options["publicKey"]["allowCredentials"].as_array().is_none_or(Vec::is_empty), "usernameless");
    let res = finish_sign_in(&anon, &json!({ "handle": handle, "response": key.assert(&options) })).await;
    assert_eq!(res.status, 200, "{}", res.body);
    assert_eq!(json_of(&res)["redirect"], "/dashboard");
    let session = res.set_cookie(&app.session_cookie_name()).expect("a session cookie");
    assert!(!session.to_ascii_lowercase().contains("max-age"), "not remembered: {session}");
    assert!(res.set_cookies().iter().any(|c| c.starts_with("portcullis_device=")), "{:?}", res.set_cookies());
    let dash = anon.get("/dashboard").await;
    assert_eq!(dash.status, 200);
    assert!(dash.body.contains("Welcome, alice!"));
    let success = events(&app, "login.success").await;
    assert_eq!(success[0].detail.as_deref(), Some("by passkey"));
    let page = c.get("/account/passkeys").await;
    assert!(!page.body.contains("never"), "the last use is shown: {}", page.body);
}

#[tokio::test]
async fn next_and_remember_me_carry_over_to_a_passkey_sign_in() {
    let app = spawn().await;
    let alice = app.create_user("alice", "alice@example.com", PW, false).await;
    let mut key = SoftKey::new(ORIGIN, 7);
    add_passkey(&app.login_as(&alice).await, &mut key, "Laptop").await;
    let anon = app.client();
    let (handle, options) = start_sign_in(&anon).await;
    let body = json!({ "handle": handle, "response": key.assert(&options), "remember_me": true, "next": "/posts/new" });
    let res = finish_sign_in(&anon, &body).await;
    assert_eq!(res.status, 200, "{}", res.body);
    assert_eq!(json_of(&res)["redirect"], "/posts/new");
    let session = res.set_cookie(&app.session_cookie_name()).expect("a session cookie");
    assert!(session.to_ascii_lowercase().contains("max-age"), "remembered: {session}");
    // Somewhere else is no place to land.
    let anon = app.client();
    let (handle, options) = start_sign_in(&anon).await;
    let body = json!({ "handle": handle, "response": key.assert(&options), "next": "//evil.example/" });
    assert_eq!(json_of(&finish_sign_in(&anon, &body).await)["redirect"], "/dashboard");
}

#[tokio::test]
async fn a_ceremony_cannot_be_finished_twice_or_replayed() {
    let app = spawn().await;
    let alice = app.create_user("alice", "alice@example.com", PW, false).await;
    let c = app.login_as(&alice).await;
    let mut key = SoftKey::new(ORIGIN, 7);
    let (handle, options) = start_registration(&c, "Laptop").await;
    let response = key.register(&options);
    assert_eq!(finish_registration(&c, &handle, &response).await.status, 200);
    let again = finish_registration(&c, &handle, &response).await;
    assert_eq!(again.status, 400);
    assert!(json_of(&again)["error"].as_str().expect("a message").contains(GONE));
    assert_eq!(app.services.passkeys.list(&alice).await.expect("list").len(), 1);

    let anon = app.client();
    let (handle, options) = start_sign_in(&anon).await;
    let body = json!({ "handle": handle, "response": key.assert(&options) });
    assert_eq!(finish_sign_in(&anon, &body).await.status, 200);
    // The same answer again, from another browser: the ceremony is spent.
    let thief = app.client();
    let replay = finish_sign_in(&thief, &body).await;
    assert_eq!(replay.status, 400, "{}", replay.body);
    assert!(json_of(&replay)["error"].as_str().expect("a message").contains(GONE));
    assert!(replay.set_cookie(&app.session_cookie_name()).is_none(), "no session");
    // An answer signed for one ceremony does not finish another.
    let (other, _) = start_sign_in(&thief).await;
    let body = json!({ "handle": other, "response": key.assert(&options) });
    let res = finish_sign_in(&thief, &body).await;
    assert_eq!(res.status, 400);
    assert!(res.set_cookie(&app.session_cookie_name()).is_none());
    assert_eq!(thief.get("/dashboard").await.status, 303);
}

#[tokio::test]
async fn an_expired_ceremony_is_refused() {
    let app = spawn().await;
    let alice = app.create_user("alice", "alice@example.com", PW, false).await;
    let c = app.login_as(&alice).await;
    let mut key = SoftKey::new(ORIGIN, 7);
    let (handle, options) = start_registration(&c, "Laptop").await;
    app.advance(Duration::from_secs(5 * 60 + 1));
    let res = finish_registration(&c, &handle, &key.register(&options)).await;
    assert_eq!(res.status, 400);
    assert!(json_of(&res)["error"].as_str().expect("a message").contains(GONE));
    assert!(app.services.passkeys.list(&alice).await.expect("list").is_empty());

    let c = app.login_as(&alice).await;
    add_passkey(&c, &mut key, "Laptop").await;
    let anon = app.client();
    let (handle, options) = start_sign_in(&anon).await;
    app.advance(Duration::from_secs(4 * 60));
    let (late_handle, late_options) = start_sign_in(&anon).await;
    app.advance(Duration::from_secs(61));
    let res = finish_sign_in(&anon, &json!({ "handle": handle, "response": key.assert(&options) })).await;
    assert_eq!(res.status, 400, "past five minutes: {}", res.body);
    let res = finish_sign_in(&anon, &json!({ "handle": late_handle, "response": key.assert(&late_options) })).await;
    assert_eq!(res.status, 200, "within five minutes: {}", res.body);
}

#[tokio::test]
async fn the_signed_in_ceremony_needs_the_csrf_header() {
    let app = spawn().await;
    let alice = app.create_user("alice", "alice@example.com", PW, false).await;
    let c = app.login_as(&alice).await;
    let body = json!({ "name": "Laptop" });
    assert_eq!(post_json(&c, "/account/passkeys/register/start", None, &body).await.status, 403);
    let forged = "A".repeat(86);
    assert_eq!(post_json(&c, "/account/passkeys/register/start", Some(&forged), &body).await.status, 403);
    // A token from another visitor's page is bound to that visitor.
    let other = app.client();
    let theirs = token(&other, "/login").await;
    assert_eq!(post_json(&c, "/account/passkeys/register/start", Some(&theirs), &body).await.status, 403);
    let finish = json!({ "handle": "x", "response": {} });
    assert_eq!(post_json(&c, "/account/passkeys/register/finish", None, &finish).await.status, 403);
    assert_eq!(post_json(&app.client(), "/login/passkey/start", None, &json!({})).await.status, 403);
    // With the page's token it is accepted.
    let mine = token(&c, "/account/passkeys").await;
    assert_eq!(post_json(&c, "/account/passkeys/register/start", Some(&mine), &body).await.status, 200);
}

#[tokio::test]
async fn removing_a_passkey_needs_the_right_password() {
    let app = spawn().await;
    let alice = app.create_user("alice", "alice@example.com", PW, false).await;
    let c = app.login_as(&alice).await;
    add_passkey(&c, &mut SoftKey::new(ORIGIN, 7), "Laptop").await;
    let id = app.services.passkeys.list(&alice).await.expect("list")[0].id;
    let action = format!("/account/passkeys/{id}/delete");
    let res = c.submit("/account/passkeys", &action, &[("password", "wrong password here")]).await;
    assert_eq!(res.status, 303);
    assert!(c.get("/account/passkeys").await.body.contains("flash error"));
    assert_eq!(app.services.passkeys.list(&alice).await.expect("list").len(), 1, "kept");
    assert_eq!(events(&app, "login.failure").await.len(), 1, "counted like a failed login");
    let res = c.submit("/account/passkeys", &action, &[]).await;
    assert_eq!(res.status, 303);
    assert_eq!(app.services.passkeys.list(&alice).await.expect("list").len(), 1, "no password, no removal");

    let mail_before = app.services.store.pending_mail_count().await.expect("count");
    let res = c.submit("/account/passkeys", &action, &[("password", PW)]).await;
    assert_eq!(res.status, 303);
    assert!(app.services.passkeys.list(&alice).await.expect("list").is_empty());
    assert_eq!(events(&app, "passkey.removed").await.len(), 1);
    assert_eq!(app.services.store.pending_mail_count().await.expect("count"), mail_before + 1);
}

#[tokio::test]
async fn another_users_passkey_cannot_be_renamed_removed_or_used_to_confirm() {
    let app = spawn().await;
    let alice = app.create_user("alice", "alice@example.com", PW, false).await;
    let bob = app.create_user("bob", "bob@example.com", PW, false).await;
    let mut alices = SoftKey::new(ORIGIN, 7);
    add_passkey(&app.login_as(&alice).await, &mut alices, "Laptop").await;
    let id = app.services.passkeys.list(&alice).await.expect("list")[0].id;
    let b = app.login_as(&bob).await;
    let res = b.submit("/account/passkeys", &format!("/account/passkeys/{id}/rename"), &[("name", "Mine")]).await;
    assert_eq!(res.status, 404);
    let res = b.submit("/account/passkeys", &format!("/account/passkeys/{id}/delete"), &[("password", PW)]).await;
    assert_eq!(res.status, 404);
    // Nor with an assertion of alice's passkey as the proof.
    let t = token(&b, "/account/passkeys").await;
    let start = json_of(&post_json(&b, "/account/passkeys/confirm/start", Some(&t), &json!({})).await);
    let fields = [
        ("passkey_handle", start["handle"].as_str().expect("handle").to_owned()),
        ("passkey_response", alices.assert(&start["options"]).to_string()),
    ];
    let fields: Vec<(&str, &str)> = fields.iter().map(|(k, v)| (*k, v.as_str())).collect();
    assert_eq!(b.submit("/account/passkeys", &format!("/account/passkeys/{id}/delete"), &fields).await.status, 404);
    let left = app.services.passkeys.list(&alice).await.expect("list");
    assert_eq!((left.len(), left[0].name.as_str()), (1, "Laptop"));
    assert!(events(&app, "passkey.removed").await.is_empty() && events(&app, "passkey.renamed").await.is_empty());
    assert_eq!(b.submit("/account/passkeys", "/account/passkeys/abc/delete", &[]).await.status, 404);
    // Alice renames her own.
    let a = app.login_as(&alice).await;
    let res =
        a.submit("/account/passkeys", &format!("/account/passkeys/{id}/rename"), &[("name", "Work laptop")]).await;
    assert_eq!(res.status, 303);
    assert_eq!(app.services.passkeys.list(&alice).await.expect("list")[0].name, "Work laptop");
}

#[tokio::test]
async fn a_passkey_confirms_the_removal_of_another() {
    let app = spawn().await;
    let alice = app.create_user("alice", "alice@example.com", PW, false).await;
    let c = app.login_as(&alice).await;
    let mut laptop = SoftKey::new(ORIGIN, 7);
    let mut phone = SoftKey::new(ORIGIN, 9);
    add_passkey(&c, &mut laptop, "Laptop").await;
    add_passkey(&c, &mut phone, "Phone").await;
    let list = app.services.passkeys.list(&alice).await.expect("list");
    let laptop_id = list[0].id;
    let confirm = |key: &mut SoftKey, start: &Value| {
        vec![
            ("passkey_handle".to_owned(), start["handle"].as_str().expect("handle").to_owned()),
            ("passkey_response".to_owned(), key.assert(&start["options"]).to_string()),
        ]
    };
    let action = format!("/account/passkeys/{laptop_id}/delete");
    // Not with the passkey being removed.
    let t = token(&c, "/account/passkeys").await;
    let start = json_of(&post_json(&c, "/account/passkeys/confirm/start", Some(&t), &json!({})).await);
    let fields = confirm(&mut laptop, &start);
    let fields: Vec<(&str, &str)> = fields.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    assert_eq!(c.submit("/account/passkeys", &action, &fields).await.status, 303);
    assert_eq!(app.services.passkeys.list(&alice).await.expect("list").len(), 2, "kept");
    // With the other one.
    let t = token(&c, "/account/passkeys").await;
    let start = json_of(&post_json(&c, "/account/passkeys/confirm/start", Some(&t), &json!({})).await);
    let fields = confirm(&mut phone, &start);
    let fields: Vec<(&str, &str)> = fields.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    assert_eq!(c.submit("/account/passkeys", &action, &fields).await.status, 303);
    let left = app.services.passkeys.list(&alice).await.expect("list");
    assert_eq!(left.iter().map(|p| p.name.as_str()).collect::<Vec<_>>(), ["Phone"]);
}

#[tokio::test]
async fn a_counter_going_backwards_is_refused_and_recorded() {
    let app = spawn().await;
    let alice = app.create_user("alice", "alice@example.com", PW, false).await;
    let mut key = SoftKey::new(ORIGIN, 7);
    add_passkey(&app.login_as(&alice).await, &mut key, "Laptop").await;
    let anon = app.client();
    key.counter = 10;
    let (handle, options) = start_sign_in(&anon).await;
    assert_eq!(finish_sign_in(&anon, &json!({ "handle": handle, "response": key.assert(&options) })).await.status, 200);
    let stored = &app.services.passkeys.list(&alice).await.expect("list")[0];
    assert_eq!(stored.sign_count, 11);
    // A clone of the authenticator, behind the original.
    let clone = app.client();
    let (handle, options) = start_sign_in(&clone).await;
    let res = finish_sign_in(&clone, &json!({ "handle": handle, "response": key.assert_at(&options, 5) })).await;
    assert_eq!(res.status, 400, "{}", res.body);
    assert!(res.set_cookie(&app.session_cookie_name()).is_none());
    assert_eq!(events(&app, "passkey.refused").await.len(), 1);
    assert_eq!(app.services.passkeys.list(&alice).await.expect("list")[0].sign_count, 11, "unchanged");
    // The original goes on.
    let (handle, options) = start_sign_in(&clone).await;
    assert_eq!(
        finish_sign_in(&clone, &json!({ "handle": handle, "response": key.assert(&options) })).await.status,
        200
    );
}

#[tokio::test]
async fn a_sign_in_without_user_verification_is_refused() {
    let app = spawn().await;
    let alice = app.create_user("alice", "alice@example.com", PW, false).await;
    let mut key = SoftKey::new(ORIGIN, 7);
    add_passkey(&app.login_as(&alice).await, &mut key, "Laptop").await;
    key.user_verified = false;
    let anon = app.client();
    let (handle, options) = start_sign_in(&anon).await;
    let res = finish_sign_in(&anon, &json!({ "handle": handle, "response": key.assert(&options) })).await;
    assert_eq!(res.status, 400, "{}", res.body);
    assert!(res.set_cookie(&app.session_cookie_name()).is_none());
}

#[tokio::test]
async fn a_locked_account_cannot_sign_in_with_a_passkey() {
    let app = spawn().await;
    let alice = app.create_user("alice", "alice@example.com", PW, false).await;
    let mut key = SoftKey::new(ORIGIN, 7);
    add_passkey(&app.login_as(&alice).await, &mut key, "Laptop").await;
    let guesser = app.client();
    for _ in 0..5 {
        guesser.login("alice", "not the password", false).await;
    }
    let anon = app.client();
    let (handle, options) = start_sign_in(&anon).await;
    let res = finish_sign_in(&anon, &json!({ "handle": handle, "response": key.assert(&options) })).await;
    assert_eq!(res.status, 403, "{}", res.body);
    assert!(json_of(&res)["error"].as_str().expect("a message").contains("temporarily locked"));
    assert!(res.set_cookie(&app.session_cookie_name()).is_none());
    app.advance(Duration::from_secs(15 * 60 + 1));
    let (handle, options) = start_sign_in(&anon).await;
    let res = finish_sign_in(&anon, &json!({ "handle": handle, "response": key.assert(&options) })).await;
    assert_eq!(res.status, 200, "the lock has passed: {}", res.body);
}

#[tokio::test]
async fn an_administrators_lock_holds_against_a_passkey() {
    let app = spawn().await;
    let _root = app.create_user("root", "root@example.com", PW, true).await;
    let alice = app.create_user("alice", "alice@example.com", PW, false).await;
    let mut key = SoftKey::new(ORIGIN, 7);
    add_passkey(&app.login_as(&alice).await, &mut key, "Laptop").await;
    let until = app.clock.now_ms() + 3_600_000;
    sqlx::query("UPDATE users SET admin_locked_until = $1 WHERE id = $2")
        .bind(until)
        .bind(alice.id)
        .execute(app.services.store.pool())
        .await
        .expect("lock");
    let anon = app.client();
    let (handle, options) = start_sign_in(&anon).await;
    let res = finish_sign_in(&anon, &json!({ "handle": handle, "response": key.assert(&options) })).await;
    assert_eq!(res.status, 403, "{}", res.body);
    assert!(json_of(&res)["error"].as_str().expect("a message").contains("administrator"));
}

#[tokio::test]
async fn admin_list_counts_passkeys_and_deleting_a_user_removes_them() {
    let app = spawn().await;
    let root = app.create_user("root", "root@example.com", PW, true).await;
    let alice = app.create_user("alice", "alice@example.com", PW, false).await;
    let mut key = SoftKey::new(ORIGIN, 7);
    add_passkey(&app.login_as(&alice).await, &mut key, "Laptop").await;
    let admin = app.login_as(&root).await;
    let list = admin.get("/admin/users?q=alice").await;
    assert!(list.body.contains("1 passkey<"), "{}", list.body);
    let res = admin
        .submit(&format!("/admin/users/{}/delete", alice.id), &format!("/admin/users/{}/delete", alice.id), &[])
        .await;
    assert_eq!(res.status, 303, "{}", res.body);
    let anon = app.client();
    let (handle, options) = start_sign_in(&anon).await;
    let res = finish_sign_in(&anon, &json!({ "handle": handle, "response": key.assert(&options) })).await;
    assert_eq!(res.status, 400, "the passkey went with its user: {}", res.body);
}

// The store's tests read the same variables; one file says how for all.
#[allow(dead_code, reason = "shared by several test binaries, each using the services it needs")]
#[path = "../crates/store/tests/support/services.rs"]
mod services;

/// Two nodes on one PostgreSQL database: a ceremony begun on one is
/// finished on the other, and only once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[cfg_attr(portcullis_no_postgres, ignore = "needs PostgreSQL: set PORTCULLIS_TEST_POSTGRES_URL")]
async fn a_ceremony_begun_on_one_node_finishes_on_the_other() {
    use sqlx::{Connection as _, Executor as _};
    let Some(base) = services::postgres_url() else {
        return;
    };
    let nanos =
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.subsec_nanos()).unwrap_or(0);
    let schema = format!("passkeys_{}_{nanos}", std::process::id());
    let mut admin = sqlx::PgConnection::connect(&base).await.expect("PostgreSQL");
    admin.execute(format!(r#"CREATE SCHEMA "{schema}""#).as_str()).await.expect("schema");
    let sep = if base.contains('?') { '&' } else { '?' };
    let url = format!("{base}{sep}options=-c%20search_path%3D{schema}");
    let vars = [
        ("PORTCULLIS_BASE_URL", ORIGIN),
        ("PORTCULLIS_DATABASE_URL", url.as_str()),
        ("PORTCULLIS_SECRET_KEY", "passkeys-two-nodes-0123456789abcdef0123456789"),
    ];
    let one = TestApp::spawn_with(&vars).await;
    let two = TestApp::spawn_with(&vars).await;

    let alice = one.create_user("alice", "alice@example.com", PW, false).await;
    let on_one = one.login_as(&alice).await;
    let on_two = two.client();
    on_two.set_cookie(&two.session_cookie_name(), &on_one.cookie(&one.session_cookie_name()).expect("session"));
    let mut key = SoftKey::new(ORIGIN, 7);
    let (handle, options) = start_registration(&on_one, "Laptop").await;
    let response = key.register(&options);
    let res = finish_registration(&on_two, &handle, &response).await;
    assert_eq!(res.status, 200, "finished on the other node: {}", res.body);
    assert_eq!(finish_registration(&on_one, &handle, &response).await.status, 400, "and only once");

    let anon_two = two.client();
    let (handle, options) = start_sign_in(&anon_two).await;
    let anon_one = one.client();
    let body = json!({ "handle": handle, "response": key.assert(&options) });
    let res = finish_sign_in(&anon_one, &body).await;
    assert_eq!(res.status, 200, "signed in on the other node: {}", res.body);
    assert_eq!(finish_sign_in(&two.client(), &body).await.status, 400, "and only once");
    assert!(anon_one.get("/dashboard").await.body.contains("Welcome, alice!"));

    one.stop().await;
    two.stop().await;
    admin.execute(format!(r#"DROP SCHEMA "{schema}" CASCADE"#).as_str()).await.expect("drop schema");
}

#[tokio::test]
async fn a_site_at_an_ip_address_does_not_offer_passkeys() {
    // Browsers refuse a relying party named by an IP address.
    let app = TestApp::spawn_with(&[("PORTCULLIS_BASE_URL", "http://127.0.0.1:8080")]).await;
    let anon = app.client();
    let login = anon.get("/login").await;
    assert_eq!(login.status, 200);
    assert!(!login.body.contains("Sign in with a passkey"), "not offered where it cannot work");
    assert!(login.body.contains("name=\"password\""), "the password still works");
    let csrf = login.csrf_token().expect("token");
    let res = post_json(&anon, "/login/passkey/start", Some(&csrf), &json!({})).await;
    assert_eq!(res.status, 400, "{}", res.body);
}

#[tokio::test]
async fn a_passkey_with_user_verification_needs_no_second_factor() {
    use portcullis_domain::totp;
    let app = spawn().await;
    let alice = app.create_user("alice", "alice@example.com", PW, false).await;
    let c = app.login_as(&alice).await;
    let mut key = SoftKey::new(ORIGIN, 7);
    add_passkey(&c, &mut key, "Laptop").await;
    // Two-factor sign-in on, through the pages.
    let setup = c.submit("/account/two-factor", "/account/two-factor/setup", &[]).await;
    let text = setup.body.split("id=\"totp-secret\">").nth(1).and_then(|s| s.split('<').next()).expect("secret");
    let secret = totp::secret_from_base32(text).expect("base32");
    let code = totp::code_for_step(&secret, totp::step_at(app.clock.now_ms()), 6);
    let token = setup.csrf_token().expect("token");
    let done = c.post_form("/account/two-factor/confirm", &[("code", &code), ("csrf_token", &token)]).await;
    assert_eq!(done.status, 200, "{}", done.body);

    // A password alone leads to the second step…
    let other = app.client();
    assert_eq!(other.login("alice", PW, false).await.location(), Some("/login/two-factor"));
    // …a verified passkey signs in at once.
    let anon = app.client();
    let (handle, options) = start_sign_in(&anon).await;
    let res = finish_sign_in(&anon, &json!({ "handle": handle, "response": key.assert(&options) })).await;
    assert_eq!(res.status, 200, "{}", res.body);
    assert_eq!(json_of(&res)["redirect"], "/dashboard");
    assert!(res.set_cookie(&app.session_cookie_name()).is_some());
    assert_eq!(anon.get("/dashboard").await.status, 200);
}
