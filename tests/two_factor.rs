//! Two-factor sign-in over a real socket: enrolment, the second step,
//! recovery codes, replays, lockout under a parallel burst, the
//! administrator's and the command line's reset, and the rule for admins.

use std::process::Command;
use std::time::Duration;

use portcullis::testing::{SmtpSink, TestApp, TestClient, TestResponse, find_link};
use portcullis_app::Clock as _;
use portcullis_domain::totp;

const PW: &str = "correct horse battery staple";

/// What an enrolment leaves the test: the secret and the recovery codes.
struct Enrolled {
    secret: Vec<u8>,
    codes: Vec<String>,
}

/// The text of every element with class `recovery-code`.
fn recovery_codes(body: &str) -> Vec<String> {
    body.split("class=\"recovery-code\">").skip(1).filter_map(|s| s.split('<').next()).map(str::to_owned).collect()
}

/// The base32 secret in the element with id `totp-secret`.
fn secret_on(body: &str) -> Vec<u8> {
    let text = body.split("id=\"totp-secret\">").nth(1).and_then(|s| s.split('<').next()).expect("#totp-secret");
    totp::secret_from_base32(text).expect("a base32 secret")
}

/// The code `offset` steps from the server's now.
fn code(app: &TestApp, secret: &[u8], offset: i64) -> String {
    totp::code_for_step(secret, totp::step_at(app.clock.now_ms()) + offset, 6)
}

/// Enrols through the pages, then moves the clock to the next step (the
/// enrolment's own code is used up).
async fn enrol(app: &TestApp, c: &TestClient) -> Enrolled {
    let setup = c.submit("/account/two-factor", "/account/two-factor/setup", &[]).await;
    assert_eq!(setup.status, 200, "{}", setup.body);
    let secret = secret_on(&setup.body);
    let token = setup.csrf_token().expect("token");
    let done =
        c.post_form("/account/two-factor/confirm", &[("code", &code(app, &secret, 0)), ("csrf_token", &token)]).await;
    assert_eq!(done.status, 200, "{}", done.body);
    let codes = recovery_codes(&done.body);
    assert_eq!(codes.len(), 10, "ten recovery codes, each in .recovery-code");
    app.advance(Duration::from_secs(30));
    Enrolled { secret, codes }
}

async fn sign_out(c: &TestClient) {
    let res = c.submit("/dashboard", "/logout", &[]).await;
    assert_eq!(res.status, 303);
}

/// The password step: 303 to the second step, and no session cookie.
async fn password_step(app: &TestApp, c: &TestClient, name: &str, remember: bool) -> TestResponse {
    let res = c.login(name, PW, remember).await;
    assert_eq!(res.status, 303, "{}", res.body);
    assert_eq!(res.location(), Some("/login/two-factor"));
    assert!(res.set_cookie(&app.session_cookie_name()).is_none(), "no session cookie between the steps");
    assert!(c.cookie(&app.session_cookie_name()).is_none());
    res
}

async fn code_step(c: &TestClient, code: &str) -> TestResponse {
    c.submit("/login/two-factor", "/login/two-factor", &[("code", code)]).await
}

#[tokio::test]
async fn enrol_sign_out_then_sign_in_with_password_and_code() {
    let app = TestApp::spawn_with(&[("PORTCULLIS_TOTP_ISSUER", "Acme Test")]).await;
    let alice = app.create_user("alice", "alice@example.com", PW, false).await;
    let c = app.login_as(&alice).await;
    let account = c.get("/account").await;
    assert!(account.body.contains("href=\"/account/two-factor\""), "the account page links to 2FA");
    let page = c.get("/account/two-factor").await;
    assert!(page.body.contains("Set up two-factor sign-in"));

    let setup = c.submit("/account/two-factor", "/account/two-factor/setup", &[]).await;
    assert!(setup.body.contains("<svg") && setup.body.contains("otpauth://totp/Acme%20Test:alice?"), "{}", setup.body);
    let svg = setup.body.split("<svg").nth(1).and_then(|s| s.split("</svg>").next()).expect("svg");
    assert!(!svg.contains("style") && !svg.contains("script"), "the QR code needs no style or script");
    assert!(setup.header("content-security-policy").is_some_and(|p| p.contains("style-src 'self'")));
    let secret = secret_on(&setup.body);
    let token = setup.csrf_token().expect("token");
    let wrong = c.post_form("/account/two-factor/confirm", &[("code", "000000"), ("csrf_token", &token)]).await;
    assert!(wrong.body.contains("flash error") && secret_on(&wrong.body) == secret, "the same secret, again");
    let done =
        c.post_form("/account/two-factor/confirm", &[("code", &code(&app, &secret, 0)), ("csrf_token", &token)]).await;
    assert_eq!(recovery_codes(&done.body).len(), 10);
    assert!(done.body.contains("download=\"portcullis-recovery-codes.txt\""));
    assert!(c.get("/account/two-factor").await.body.contains("10 recovery codes left"));
    assert!(recovery_codes(&c.get("/account/two-factor").await.body).is_empty(), "the codes are shown once");
    app.advance(Duration::from_secs(30));

    sign_out(&c).await;
    password_step(&app, &c, "alice", false).await;
    assert!(c.get("/dashboard").await.location().is_some_and(|l| l.starts_with("/login")), "not signed in yet");
    let form = c.get("/login/two-factor").await;
    assert_eq!(form.status, 200);
    assert!(form.body.contains("name=\"code\""));
    let res = code_step(&c, &code(&app, &secret, 0)).await;
    assert_eq!(res.status, 303, "{}", res.body);
    assert_eq!(res.location(), Some("/dashboard"));
    assert!(res.set_cookie(&app.session_cookie_name()).is_some());
    assert!(c.get("/dashboard").await.body.contains("Welcome, alice!"));
    let events = app.services.audit.list(&Default::default(), 50).await.expect("audit");
    assert!(events.iter().any(|e| e.kind == "two_factor.enabled" && e.user_id == Some(alice.id)));
    assert!(events.iter().any(|e| e.kind == "login.success" && e.user_id == Some(alice.id)));
}

#[tokio::test]
async fn a_recovery_code_works_once_and_the_page_says_how_many_remain() {
    let app = TestApp::spawn().await;
    let alice = app.create_user("alice", "alice@example.com", PW, false).await;
    let c = app.login_as(&alice).await;
    let e = enrol(&app, &c).await;
    sign_out(&c).await;
    password_step(&app, &c, "alice", false).await;
    let res = code_step(&c, &e.codes[0]).await;
    assert_eq!(res.status, 303, "{}", res.body);
    let dash = c.get("/dashboard").await;
    assert!(dash.body.contains("9 recovery codes left"), "{}", dash.body);
    assert!(c.get("/account/two-factor").await.body.contains("9 recovery codes left"));
    sign_out(&c).await;
    password_step(&app, &c, "alice", false).await;
    let again = code_step(&c, &e.codes[0]).await;
    assert_eq!(again.status, 200);
    assert!(again.body.contains("flash error"));
    assert!(again.set_cookie(&app.session_cookie_name()).is_none());
    let other = code_step(&c, &e.codes[1].to_uppercase()).await;
    assert_eq!(other.status, 303, "another code, typed in capitals");
}

#[tokio::test]
async fn a_replayed_code_is_refused() {
    let app = TestApp::spawn().await;
    let alice = app.create_user("alice", "alice@example.com", PW, false).await;
    let c = app.login_as(&alice).await;
    let e = enrol(&app, &c).await;
    sign_out(&c).await;
    let now = code(&app, &e.secret, 0);
    password_step(&app, &c, "alice", false).await;
    assert_eq!(code_step(&c, &now).await.status, 303);
    // Someone who saw the code, from another browser, within its step.
    let thief = app.client();
    password_step(&app, &thief, "alice", false).await;
    let replay = code_step(&thief, &now).await;
    assert_eq!(replay.status, 200);
    assert!(replay.body.contains("flash error"));
    assert!(thief.cookie(&app.session_cookie_name()).is_none());
    let before = code_step(&thief, &code(&app, &e.secret, -1)).await;
    assert_eq!(before.status, 200, "a step before the one used is refused too");
}

#[tokio::test]
async fn wrong_codes_lock_at_the_threshold_even_in_a_parallel_burst() {
    let app = TestApp::spawn_with(&[("PORTCULLIS_LOCKOUT_THRESHOLD", "5")]).await;
    let alice = app.create_user("alice", "alice@example.com", PW, false).await;
    let c = app.login_as(&alice).await;
    let e = enrol(&app, &c).await;
    sign_out(&c).await;

    // A stranger has the password: one attempt counted, then a burst of 50 wrong codes at once.
    let thief = app.client();
    password_step(&app, &thief, "alice", false).await;
    let token = thief.get("/login/two-factor").await.csrf_token().expect("token");
    let burst = (0..50).map(|i| {
        let thief = &thief;
        let token = token.clone();
        async move {
            let wrong = format!("{:06}", (i * 7919) % 1_000_000);
            thief.post_form("/login/two-factor", &[("code", &wrong), ("csrf_token", &token)]).await.status
        }
    });
    let statuses = futures::future::join_all(burst).await;
    // Refused (200), locked (303), or over the user's fair share of checks at once (429): never a session.
    assert!(statuses.iter().all(|s| [200, 303, 429].contains(s)), "{statuses:?}");
    // Whatever the fair share turned away (429) was not checked; go on one by one until the lock.
    let mut locked = statuses.contains(&303);
    for _ in 0..6 {
        if locked {
            break;
        }
        let res = thief.post_form("/login/two-factor", &[("code", "999999"), ("csrf_token", &token)]).await;
        locked = res.status == 303;
    }
    assert!(locked, "the lock was reached: {statuses:?}");
    let events = app.services.audit.list(&Default::default(), 500).await.expect("audit");
    let checked =
        events.iter().filter(|e| e.kind == "login.failure" && e.detail.as_deref() == Some("second factor")).count();
    assert!(checked <= 5, "{checked} codes were checked: at most the threshold");
    assert!(events.iter().any(|e| e.kind == "login.locked"));
    // The pending sign-in is gone: even the right code does nothing now.
    let right =
        thief.post_form("/login/two-factor", &[("code", &code(&app, &e.secret, 0)), ("csrf_token", &token)]).await;
    assert_eq!(right.status, 303);
    assert_eq!(right.location(), Some("/login"));
    assert!(thief.cookie(&app.session_cookie_name()).is_none());
    // And the account is locked for the password too.
    let res = app.client().login("alice", PW, false).await;
    assert!(res.body.contains("temporarily locked"), "{}", res.body);
}

#[tokio::test]
async fn wrong_codes_one_by_one_lock_at_the_threshold() {
    let app = TestApp::spawn_with(&[("PORTCULLIS_LOCKOUT_THRESHOLD", "3")]).await;
    let alice = app.create_user("alice", "alice@example.com", PW, false).await;
    let c = app.login_as(&alice).await;
    let e = enrol(&app, &c).await;
    sign_out(&c).await;
    let thief = app.client();
    password_step(&app, &thief, "alice", false).await;
    for _ in 0..2 {
        let res = code_step(&thief, "111111").await;
        assert_eq!(res.status, 200);
    }
    let locked = code_step(&thief, &code(&app, &e.secret, 0)).await;
    assert_eq!(locked.location(), Some("/login"), "the third attempt is over the threshold");
    assert!(thief.get("/login").await.body.contains("temporarily locked"));
}

#[tokio::test]
async fn next_and_remember_me_survive_the_second_step() {
    let app = TestApp::spawn().await;
    let alice = app.create_user("alice", "alice@example.com", PW, false).await;
    let c = app.login_as(&alice).await;
    let e = enrol(&app, &c).await;
    sign_out(&c).await;
    let gate = c.get("/posts/new").await;
    assert!(gate.location().is_some_and(|l| l.contains("next=")));
    let res = c
        .submit(
            "/login?next=/posts/new",
            "/login?next=/posts/new",
            &[("username", "alice"), ("password", PW), ("remember_me", "on"), ("next", "/posts/new")],
        )
        .await;
    assert_eq!(res.location(), Some("/login/two-factor"));
    assert!(res.set_cookie(&app.session_cookie_name()).is_none());
    let done = code_step(&c, &code(&app, &e.secret, 0)).await;
    assert_eq!(done.location(), Some("/posts/new"));
    let cookie = done.set_cookie(&app.session_cookie_name()).expect("session cookie");
    assert!(cookie.contains("Max-Age=2592000"), "remembered: {cookie}");
}

#[tokio::test]
async fn a_pending_sign_in_runs_out_after_five_minutes() {
    let app = TestApp::spawn().await;
    let alice = app.create_user("alice", "alice@example.com", PW, false).await;
    let c = app.login_as(&alice).await;
    let e = enrol(&app, &c).await;
    sign_out(&c).await;
    password_step(&app, &c, "alice", false).await;
    let token = c.get("/login/two-factor").await.csrf_token().expect("token");
    app.advance(Duration::from_secs(5 * 60));
    let res = c.post_form("/login/two-factor", &[("code", &code(&app, &e.secret, 0)), ("csrf_token", &token)]).await;
    assert_eq!(res.location(), Some("/login"));
    assert!(c.cookie(&app.session_cookie_name()).is_none());
    // Without a pending sign-in there is nothing to enter a code for.
    assert_eq!(app.client().get("/login/two-factor").await.location(), Some("/login"));
}

#[tokio::test]
async fn turning_off_needs_password_and_code_and_new_codes_need_the_password() {
    let app = TestApp::spawn().await;
    let alice = app.create_user("alice", "alice@example.com", PW, false).await;
    let c = app.login_as(&alice).await;
    let e = enrol(&app, &c).await;
    let renew =
        c.submit("/account/two-factor", "/account/two-factor/recovery-codes", &[("password", "wrong one")]).await;
    assert_eq!(renew.status, 303);
    let renew = c.submit("/account/two-factor", "/account/two-factor/recovery-codes", &[("password", PW)]).await;
    let fresh = recovery_codes(&renew.body);
    assert_eq!(fresh.len(), 10);
    assert!(fresh.iter().all(|f| !e.codes.contains(f)));
    let off = c
        .submit("/account/two-factor", "/account/two-factor/disable", &[("password", PW), ("code", &e.codes[0])])
        .await;
    assert_eq!(off.status, 303);
    assert!(app.services.accounts.has_two_factor(alice.id).await.expect("read"), "an old code does nothing");
    let off = c
        .submit("/account/two-factor", "/account/two-factor/disable", &[("password", "wrong"), ("code", &fresh[0])])
        .await;
    assert_eq!(off.status, 303);
    assert!(app.services.accounts.has_two_factor(alice.id).await.expect("read"), "the password is needed");
    let off = c
        .submit(
            "/account/two-factor",
            "/account/two-factor/disable",
            &[("password", PW), ("code", &code(&app, &e.secret, 0))],
        )
        .await;
    assert_eq!(off.status, 303);
    assert!(!app.services.accounts.has_two_factor(alice.id).await.expect("read"));
    sign_out(&c).await;
    assert_eq!(c.login("alice", PW, false).await.location(), Some("/dashboard"), "the password alone again");
}

#[tokio::test]
async fn an_admin_resets_a_users_two_factor_and_so_does_the_command_line() {
    let mut sink = SmtpSink::start().await;
    let app = TestApp::spawn_with(&[("PORTCULLIS_SMTP_URL", &sink.url())]).await;
    let admin = app.create_user("root", "root@example.com", PW, true).await;
    let alice = app.create_user("alice", "alice@example.com", PW, false).await;
    let bob = app.create_user("bob", "bob@example.com", PW, false).await;
    let a = app.login_as(&alice).await;
    enrol(&app, &a).await;
    let b = app.login_as(&bob).await;
    enrol(&app, &b).await;
    let mails = sink.wait_for(2, 10).await;
    assert!(mails.iter().all(|m| m.contains("Two-factor sign-in is on")), "{mails:?}");

    let root = app.login_as(&admin).await;
    let list = root.get("/admin/users").await;
    assert!(list.body.contains("2FA") && list.body.contains(&format!("/admin/users/{}/two-factor/reset", alice.id)));
    let confirm = root.get(&format!("/admin/users/{}/two-factor/reset", alice.id)).await;
    assert_eq!(confirm.status, 200);
    let token = confirm.csrf_token().expect("token");
    let path = format!("/admin/users/{}/two-factor/reset", alice.id);
    assert_eq!(root.post_form(&path, &[]).await.status, 403, "no CSRF token, no change");
    assert!(app.services.accounts.has_two_factor(alice.id).await.expect("read"));
    let res = root.post_form(&path, &[("csrf_token", &token)]).await;
    assert_eq!(res.status, 303);
    assert!(!app.services.accounts.has_two_factor(alice.id).await.expect("read"));
    assert_eq!(a.get(&path).await.status, 403, "not for users");
    let mails = sink.wait_for(3, 10).await;
    assert!(mails.iter().any(|m| m.contains("An administrator turned two-factor sign-in off")));
    let events = app.services.audit.list(&Default::default(), 100).await.expect("audit");
    let reset = events.iter().find(|e| e.kind == "two_factor.reset").expect("recorded");
    assert_eq!((reset.user_id, reset.actor_id), (Some(alice.id), Some(admin.id)));

    let out = Command::new(env!("CARGO_BIN_EXE_portcullis"))
        .args(["user", "reset-2fa", "bob"])
        .env_clear()
        .env("PORTCULLIS_DATA_DIR", app.data_dir())
        .env("PORTCULLIS_LOG", "warn")
        .output()
        .expect("run");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(!app.services.accounts.has_two_factor(bob.id).await.expect("read"));
    let again = Command::new(env!("CARGO_BIN_EXE_portcullis"))
        .args(["user", "reset-2fa", "bob"])
        .env_clear()
        .env("PORTCULLIS_DATA_DIR", app.data_dir())
        .env("PORTCULLIS_LOG", "warn")
        .output()
        .expect("run");
    assert!(!again.status.success(), "off already: said, non-zero");
    let events = app.services.audit.list(&Default::default(), 100).await.expect("audit");
    assert!(events.iter().any(|e| e.kind == "two_factor.reset" && e.user_id == Some(bob.id)));
    sink.stop().await;
}

#[tokio::test]
async fn admins_without_two_factor_are_sent_to_enrol_when_required() {
    let app = TestApp::spawn_with(&[("PORTCULLIS_REQUIRE_2FA_FOR_ADMINS", "true")]).await;
    let admin = app.create_user("root", "root@example.com", PW, true).await;
    let root = app.login_as(&admin).await;
    for path in ["/admin", "/admin/users", "/admin/audit", "/admin/users/1/lock"] {
        let res = root.get(path).await;
        assert_eq!(res.location(), Some("/account/two-factor"), "{path}");
    }
    enrol(&app, &root).await;
    assert_eq!(root.get("/admin/users").await.status, 200);
    let user = app.create_user("alice", "alice@example.com", PW, false).await;
    assert_eq!(app.login_as(&user).await.get("/admin/users").await.status, 403, "users still get 403");
}

#[tokio::test]
async fn a_password_reset_keeps_two_factor_on() {
    let sink = SmtpSink::start().await;
    let app = TestApp::spawn_with(&[("PORTCULLIS_SMTP_URL", &sink.url())]).await;
    let alice = app.create_user("alice", "alice@example.com", PW, false).await;
    let c = app.login_as(&alice).await;
    let e = enrol(&app, &c).await;
    sign_out(&c).await;
    c.submit("/forgot-password", "/forgot-password", &[("email", "alice@example.com")]).await;
    let mails = sink.wait_for(2, 10).await;
    let link = mails.iter().find_map(|m| find_link(m, "/reset-password/")).expect("reset link");
    let path = format!("/reset-password/{}", link.rsplit('/').next().expect("token"));
    let new_pw = "another long passphrase";
    let res = c.submit(&path, &path, &[("password", new_pw)]).await;
    assert_eq!(res.status, 303, "{}", res.body);
    assert!(app.services.accounts.has_two_factor(alice.id).await.expect("read"));
    let login = c.login("alice", new_pw, false).await;
    assert_eq!(login.location(), Some("/login/two-factor"), "the second step is still asked for");
    assert_eq!(code_step(&c, &code(&app, &e.secret, 0)).await.location(), Some("/dashboard"));
}
