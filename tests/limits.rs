//! Limits on everything a signed-in user (or anyone) can repeat: the
//! current-password checks of the account pages, the hashing pool's fair
//! shares, the mails the site sends, and what failures record.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use portcullis::testing::{TestApp, TestClient, TestResponse};

const PW: &str = "correct horse battery staple";

/// The audit events of `kind`, as the store holds them.
async fn events(app: &TestApp, kind: &str) -> Vec<(Option<i64>, Option<String>, Option<String>)> {
    sqlx::query_as("SELECT user_id, subject, detail FROM audit_events WHERE kind = $1 ORDER BY id")
        .bind(kind)
        .fetch_all(app.services.store.pool())
        .await
        .expect("audit")
}

/// The flash shown on the page a redirect leads to.
async fn follow(c: &TestClient, res: &TestResponse) -> String {
    c.get(res.location().unwrap_or("/")).await.body
}

#[tokio::test]
async fn guessing_the_current_password_locks_the_account_at_the_threshold() {
    let app = TestApp::spawn().await;
    let alice = app.create_user("alice", "alice@example.com", PW, false).await;
    let c = app.login_as(&alice).await;
    let token = c.get("/account").await.csrf_token().expect("token");
    let mut flashes = Vec::new();
    for i in 0..45 {
        let guess = format!("guess number {i}");
        let fields = [
            ("current_password", guess.as_str()),
            ("new_password", "a brand new passphrase"),
            ("csrf_token", token.as_str()),
        ];
        let res = c.post_form("/account/password", &fields).await;
        assert_eq!(res.status, 303, "guess {i}");
        flashes.push(follow(&c, &res).await);
    }
    let wrong = flashes.iter().filter(|b| b.contains("Current password is incorrect")).count();
    let locked = flashes.iter().filter(|b| b.contains("temporarily locked and nothing was changed")).count();
    assert_eq!((wrong, locked), (5, 40), "the default threshold of five, then refusals");
    assert_eq!(events(&app, "login.failure").await.len(), 5, "each wrong password recorded");
    assert!(events(&app, "login.failure").await.iter().all(|e| e.0 == Some(alice.id)));

    // Even the right password is refused now, and nothing changes.
    for (action, fields) in [
        ("/account/password", vec![("current_password", PW), ("new_password", "a brand new passphrase")]),
        ("/account/email", vec![("current_password", PW), ("new_email", "new@example.com")]),
        ("/account/delete", vec![("current_password", PW)]),
    ] {
        let res = c.submit("/account", action, &fields).await;
        assert!(follow(&c, &res).await.contains("temporarily locked"), "{action}");
    }
    assert_eq!(app.services.accounts.user(alice.id).await.expect("kept").password_hash, alice.password_hash);
    assert!(app.client().login("alice", PW, false).await.body.contains("temporarily locked"), "logins too");
}

#[tokio::test]
async fn password_checks_are_rate_limited_per_user_and_per_client() {
    let app = TestApp::spawn_with(&[("PORTCULLIS_RATE_LIMIT_PER_MINUTE", "3")]).await;
    let alice = app.create_user("alice", "alice@example.com", PW, false).await;
    let c = app.login_as(&alice).await;
    // One allowance for every page that checks the password.
    for action in ["/account/password", "/account/email", "/account/delete"] {
        let res = c.submit("/account", action, &[("current_password", "nope"), ("new_email", "x@example.com")]).await;
        assert_eq!(res.status, 303, "{action}");
    }
    let res = c.submit("/account", "/account/delete", &[("current_password", PW)]).await;
    assert_eq!(res.status, 429);
    assert!(res.header("retry-after").is_some());
    assert!(app.services.accounts.user(alice.id).await.is_ok(), "not deleted");
}

#[tokio::test]
async fn a_flood_from_one_user_is_refused_while_others_still_sign_in() {
    // A small pool and a real cost, so that a flood would fill it.
    let app = TestApp::spawn_with(&[
        ("PORTCULLIS_HASH_WORKERS", "1"),
        ("PORTCULLIS_HASH_QUEUE", "4"),
        ("PORTCULLIS_ARGON2_MEMORY_KIB", "8192"),
        ("PORTCULLIS_ARGON2_ITERATIONS", "2"),
        ("PORTCULLIS_LOCKOUT_THRESHOLD", "1000"),
    ])
    .await;
    let mallory = app.create_user("mallory", "mallory@example.com", PW, false).await;
    app.create_user("bob", "bob@example.com", PW, false).await;
    let flooder = Arc::new(app.login_as(&mallory).await);
    let token = flooder.get("/account").await.csrf_token().expect("token");
    let stop = Arc::new(AtomicBool::new(false));
    let mut flood = Vec::new();
    for i in 0..40 {
        let (c, token, stop) = (flooder.clone(), token.clone(), stop.clone());
        flood.push(tokio::spawn(async move {
            let mut statuses = Vec::new();
            while !stop.load(Ordering::Relaxed) {
                let guess = format!("guess {i}");
                let res = c.post_form("/account/delete", &[("current_password", &guess), ("csrf_token", &token)]).await;
                statuses.push(res.status);
            }
            statuses
        }));
    }
    tokio::time::sleep(Duration::from_millis(50)).await;
    let mut logins = Vec::new();
    for _ in 0..8 {
        let c = app.client();
        logins.push(c.login("bob", PW, false).await.status);
    }
    stop.store(true, Ordering::Relaxed);
    let mut statuses = Vec::new();
    for t in flood {
        statuses.extend(t.await.expect("join"));
    }
    assert!(logins.iter().all(|s| *s == 303), "bob's logins during the flood: {logins:?}");
    let refused = statuses.iter().filter(|s| **s == 429).count();
    assert!(refused > 0, "the flood gets 429: {statuses:?}");
    assert!(!statuses.contains(&503), "the flood never fills the pool");
}

/// Mails queued for `to`, as the outbox table holds them.
async fn mails_to(app: &TestApp, to: &str) -> i64 {
    sqlx::query_scalar("SELECT COUNT(*) FROM outbox WHERE recipient = $1")
        .bind(to)
        .fetch_one(app.services.store.pool())
        .await
        .expect("count")
}

/// The page's `<main>`, without its CSRF token.
fn main_of(body: &str) -> String {
    body.split("<main").nth(1).unwrap_or("").lines().filter(|l| !l.contains("csrf_token")).collect()
}

#[tokio::test]
async fn resends_and_resets_are_capped_per_address_without_telling_who_has_it() {
    let app = TestApp::spawn().await;
    let c = app.client();
    let fields = [("username", "carol"), ("email", "carol@example.com"), ("password", PW)];
    assert_eq!(c.submit("/register", "/register", &fields).await.status, 303);
    let token = c.get("/dashboard").await.csrf_token().expect("token");
    let mut pages = Vec::new();
    for _ in 0..40 {
        let res = c.post_form("/verify-email/resend", &[("csrf_token", &token)]).await;
        assert_eq!(res.status, 303);
        pages.push(follow(&c, &res).await);
    }
    assert_eq!(mails_to(&app, "carol@example.com").await, 4, "the registration's and three resends");
    assert_eq!(pages.iter().filter(|p| p.contains("We sent a new confirmation link")).count(), 3);
    assert_eq!(pages.iter().filter(|p| p.contains("We sent you a mail recently")).count(), 37);
    app.advance(Duration::from_secs(3600));
    let res = c.post_form("/verify-email/resend", &[("csrf_token", &token)]).await;
    assert!(follow(&c, &res).await.contains("We sent a new confirmation link"), "an hour later");

    // Forgot-password: the same answers for an address with an account and one without.
    app.create_user("alice", "alice@example.com", PW, false).await;
    let mut answers = Vec::new();
    for to in ["alice@example.com", "nobody@example.com"] {
        let mut seen = Vec::new();
        for _ in 0..5 {
            let anyone = app.client();
            let res = anyone.submit("/forgot-password", "/forgot-password", &[("email", to)]).await;
            seen.push((res.status, res.location().map(str::to_owned), main_of(&follow(&anyone, &res).await)));
        }
        answers.push(seen);
    }
    assert_eq!(answers[0], answers[1], "no enumeration");
    assert!(answers[0][4].2.contains("recently"), "{}", answers[0][4].2);
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_eq!(mails_to(&app, "alice@example.com").await, 3);
}

#[tokio::test]
async fn the_mail_allowance_is_configurable() {
    let app = TestApp::spawn_with(&[("PORTCULLIS_MAIL_RATE_LIMIT_PER_HOUR", "1")]).await;
    let alice = app.create_user("alice", "alice@example.com", PW, false).await;
    let c = app.login_as(&alice).await;
    let change = [("current_password", PW), ("new_email", "new@example.com")];
    let first = c.submit("/account", "/account/email", &change).await;
    assert!(follow(&c, &first).await.contains("We sent a confirmation link"));
    let second = c.submit("/account", "/account/email", &change).await;
    assert!(follow(&c, &second).await.contains("We sent you a mail recently"));
    assert_eq!(mails_to(&app, "new@example.com").await, 1);
}

#[tokio::test]
async fn a_password_typed_as_the_name_is_stored_nowhere() {
    let app = TestApp::spawn().await;
    app.create_user("alice", "alice@example.com", PW, false).await;
    let typed = "Hunter2-Typed-In-The-Wrong-Box";
    for _ in 0..3 {
        assert_eq!(app.client().login(typed, "whatever", false).await.status, 200);
    }
    let pool = app.services.store.pool();
    let rows: Vec<(Option<String>, Option<String>)> =
        sqlx::query_as("SELECT subject, detail FROM audit_events WHERE kind LIKE 'login.%'")
            .fetch_all(pool)
            .await
            .expect("audit");
    assert_eq!(rows.len(), 3);
    for (subject, detail) in &rows {
        assert_eq!(subject.as_deref(), Some("unknown identifier"));
        let d = detail.as_deref().unwrap_or("");
        assert!(d.starts_with("identifier ") && !d.to_lowercase().contains("hunter2"), "{d}");
    }
    let keys: Vec<String> = sqlx::query_scalar("SELECT key FROM login_attempts").fetch_all(pool).await.expect("keys");
    assert!(!keys.is_empty() && keys.iter().all(|k| !k.to_lowercase().contains("hunter2")), "{keys:?}");
}

/// The page's `<main>` with `name` made neutral, for comparing two answers.
fn answer_of(res: &TestResponse, name: &str) -> String {
    main_of(&res.body).replace(name, "NAME")
}

#[tokio::test]
async fn an_admin_lock_lasts_until_unlocked_and_shows_only_to_the_right_password() {
    let app = TestApp::spawn().await;
    let root = app.create_user("root", "root@example.com", PW, true).await;
    let alice = app.create_user("alice", "alice@example.com", PW, false).await;
    app.create_user("bob", "bob@example.com", PW, false).await;
    let admin = app.login_as(&root).await;
    assert_eq!(admin.submit("/admin/users", &format!("/admin/users/{}/lock", alice.id), &[]).await.status, 303);
    let users = admin.get("/admin/users?q=alice").await.body;
    assert!(users.contains("locked by an administrator"), "worded apart from a failed-login lock");
    app.advance(Duration::from_secs(24 * 3600));

    // A wrong password: the same answer as for an account nobody locked.
    let locked = app.client().login("alice", "a stranger's guess", false).await;
    let free = app.client().login("bob", "a stranger's guess", false).await;
    assert_eq!((locked.status, answer_of(&locked, "alice")), (free.status, answer_of(&free, "bob")));
    assert!(!locked.body.contains("administrator"));
    // The right password: only then the owner is told.
    let owner = app.client().login("alice", PW, false).await;
    assert_eq!(owner.status, 200);
    assert!(owner.body.contains("locked by an administrator"), "a day later, still locked");

    // No administrator locks themselves, and the last active one cannot be locked.
    let admin = app.login_as(&root).await;
    let res = admin.submit("/admin/users", &format!("/admin/users/{}/lock", root.id), &[]).await;
    assert!(follow(&admin, &res).await.contains("cannot lock your own account"));
    assert_eq!(app.client().login("root", PW, false).await.status, 303);

    assert_eq!(admin.submit("/admin/users", &format!("/admin/users/{}/unlock", alice.id), &[]).await.status, 303);
    assert_eq!(app.client().login("alice", PW, false).await.status, 303);
}
