//! Mail and the account lifecycle over real sockets, with a real SMTP server.

use std::time::Duration;

use portcullis::testing::{SmtpSink, TestApp, TestClient, find_link};

const PW: &str = "correct horse battery staple";
const NEW_PW: &str = "a completely new passphrase";
const BASE: &str = "http://portcullis.test:8080";

async fn app_with(sink: &SmtpSink, extra: &[(&str, &str)]) -> TestApp {
    let url = sink.url();
    let mut vars = vec![("PORTCULLIS_SMTP_URL", url.as_str()), ("PORTCULLIS_BASE_URL", BASE)];
    vars.extend_from_slice(extra);
    TestApp::spawn_with(&vars).await
}

/// The path of a link in a mail, checked to be absolute under the base URL.
fn path_of(link: &str) -> String {
    assert!(link.starts_with(BASE), "links are built from PORTCULLIS_BASE_URL, not the Host header: {link}");
    link[BASE.len()..].to_owned()
}

/// Waits (in 20 ms steps, 10 s at most) until the outbox holds `n` unsent
/// mails the worker has tried and failed to send.
async fn wait_for_failed_attempts(app: &TestApp, n: i64) {
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        let failed: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM outbox WHERE sent_at IS NULL AND attempts > 0")
            .fetch_one(app.services.store.pool())
            .await
            .expect("count");
        if failed >= n {
            return;
        }
        assert!(std::time::Instant::now() < deadline, "the worker did not try the mail");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

async fn register(c: &TestClient, username: &str, email: &str) {
    let res = c.submit("/register", "/register", &[("username", username), ("email", email), ("password", PW)]).await;
    assert_eq!(res.status, 303, "{}", res.body);
}

#[tokio::test]
async fn verification_mail_link_verifies_once() {
    let sink = SmtpSink::start().await;
    let app = app_with(&sink, &[]).await;
    let c = app.client();
    register(&c, "alice", "alice@example.com").await;
    assert!(c.get("/dashboard").await.body.contains("Please confirm your email address"), "unverified banner");

    let mails = sink.wait_for(1, 10).await;
    assert_eq!(mails.len(), 1);
    let mail = &mails[0];
    assert!(mail.contains("To: alice@example.com") && mail.contains("Subject: Confirm your email address"));
    assert!(
        mail.contains("Content-Type: text/plain") && mail.contains("Content-Type: text/html"),
        "text and HTML parts"
    );
    let path = path_of(&find_link(mail, "/verify-email/").expect("link"));

    let res = c.get(&path).await;
    assert_eq!((res.status, res.location()), (303, Some("/dashboard")), "{path}\n{mail}\n{}", res.body);
    let dash = c.get("/dashboard").await;
    assert!(
        dash.body.contains("your email address is confirmed")
            && !dash.body.contains("Please confirm your email address")
    );
    assert!(app.services.accounts.find_user("alice").await.expect("user").email_verified);

    // Single use, and tampering is caught.
    let again = app.client().get(&path).await;
    assert_eq!(again.status, 400);
    assert!(again.body.contains("already been used"));
    let mut tampered = path.clone();
    tampered.pop();
    tampered.push(if path.ends_with('A') { 'B' } else { 'A' });
    let bad = app.client().get(&tampered).await;
    assert_eq!(bad.status, 400);
    assert!(bad.body.contains("not valid"));
    assert_eq!(app.client().get("/verify-email/garbage").await.status, 400);
}

#[tokio::test]
async fn expired_links_are_refused_and_resend_sends_a_new_one() {
    let sink = SmtpSink::start().await;
    let app = app_with(&sink, &[("PORTCULLIS_VERIFY_TOKEN_TTL", "1s")]).await;
    let c = app.client();
    register(&c, "alice", "alice@example.com").await;
    let first = path_of(&find_link(&sink.wait_for(1, 10).await[0], "/verify-email/").expect("link"));
    app.advance(Duration::from_secs(1));
    let res = c.get(&first).await;
    assert_eq!(res.status, 400);
    assert!(res.body.contains("expired"));

    let res = c.submit("/dashboard", "/verify-email/resend", &[]).await;
    assert_eq!(res.status, 303);
    let mails = sink.wait_for(2, 10).await;
    let second = path_of(&find_link(&mails[1], "/verify-email/").expect("link"));
    assert_ne!(first, second);
    assert_eq!(c.get(&second).await.status, 303);
}

#[tokio::test]
async fn forgot_password_answers_the_same_for_known_and_unknown_addresses() {
    let sink = SmtpSink::start().await;
    let app = app_with(&sink, &[]).await;
    app.create_user("alice", "alice@example.com", PW, false).await;
    let ask = |email: &'static str| {
        let c = app.client();
        async move {
            let res = c.submit("/forgot-password", "/forgot-password", &[("email", email)]).await;
            let next = c.get(res.location().unwrap_or("/")).await;
            (
                res.status,
                res.location().map(str::to_owned),
                next.status,
                next.body.split("<main").nth(1).map(|m| {
                    let token_free: String = m.lines().filter(|l| !l.contains("csrf_token")).collect();
                    token_free
                }),
            )
        }
    };
    let known = ask("alice@example.com").await;
    let unknown = ask("nobody@example.com").await;
    assert_eq!(known, unknown, "identical responses");
    assert_eq!(known.0, 303);
    let mails = sink.wait_for(1, 10).await;
    // The unknown address was looked up after the known one; give it a moment to queue anything.
    tokio::time::sleep(Duration::from_millis(100)).await;
    let queued: i64 =
        sqlx::query_scalar("SELECT COUNT(*) FROM outbox").fetch_one(app.services.store.pool()).await.expect("count");
    assert_eq!(queued, 1, "only the real account gets a mail");
    assert_eq!(sink.messages().len(), 1, "only the real account gets a mail");
    assert!(mails[0].contains("To: alice@example.com") && mails[0].contains("/reset-password/"));
}

#[tokio::test]
async fn reset_sets_the_password_kills_sessions_and_clears_the_lock() {
    let sink = SmtpSink::start().await;
    let app = app_with(&sink, &[("PORTCULLIS_LOCKOUT_THRESHOLD", "2")]).await;
    let alice = app.create_user("alice", "alice@example.com", PW, false).await;
    let logged_in = app.login_as(&alice).await;
    assert_eq!(logged_in.get("/dashboard").await.status, 200);
    // A stranger locks the account.
    for _ in 0..3 {
        app.client().login("alice", "wrong guess!", false).await;
    }
    assert!(app.client().login("alice", PW, false).await.body.contains("temporarily locked"));

    let c = app.client();
    c.submit("/forgot-password", "/forgot-password", &[("email", "ALICE@example.com")]).await;
    let path = path_of(&find_link(&sink.wait_for(1, 10).await[0], "/reset-password/").expect("link"));
    let page = c.get(&path).await;
    assert_eq!(page.status, 200);
    assert_eq!(page.header("referrer-policy"), Some("no-referrer"));

    // The policy applies.
    let res = c.submit(&path, &path, &[("password", "short")]).await;
    assert_eq!(res.status, 200);
    assert!(res.body.contains("Password must be at least 8 characters"));

    let res = c.submit(&path, &path, &[("password", NEW_PW)]).await;
    assert_eq!((res.status, res.location()), (303, Some("/login")));
    assert_eq!(res.header("referrer-policy"), Some("no-referrer"));

    assert_eq!(logged_in.get("/dashboard").await.status, 303, "every old session ended");
    assert_eq!(app.client().login("alice", PW, false).await.status, 200, "old password no longer works");
    assert_eq!(app.client().login("alice", NEW_PW, false).await.status, 303, "new password works and the lock is gone");

    let mails = sink.wait_for(2, 10).await;
    assert!(mails[1].contains("Subject: Your password was changed"));
    // Single use.
    let again = app.client().get(&path).await;
    assert_eq!(again.status, 400);
    assert!(again.body.contains("already been used"));
}

#[tokio::test]
async fn reset_links_expire() {
    let sink = SmtpSink::start().await;
    let app = app_with(&sink, &[("PORTCULLIS_RESET_TOKEN_TTL", "1s")]).await;
    app.create_user("alice", "alice@example.com", PW, false).await;
    let c = app.client();
    c.submit("/forgot-password", "/forgot-password", &[("email", "alice@example.com")]).await;
    let path = path_of(&find_link(&sink.wait_for(1, 10).await[0], "/reset-password/").expect("link"));
    app.advance(Duration::from_secs(1));
    let res = c.get(&path).await;
    assert_eq!(res.status, 400);
    assert!(res.body.contains("expired"));
    let token = c.get("/forgot-password").await.csrf_token().expect("token");
    let res = c.post_form(&path, &[("password", NEW_PW), ("csrf_token", &token)]).await;
    assert_eq!(res.status, 400);
    assert_eq!(app.client().login("alice", PW, false).await.status, 303, "password unchanged");
}

#[tokio::test]
async fn changing_the_password_ends_other_sessions_and_notifies() {
    let sink = SmtpSink::start().await;
    let app = app_with(&sink, &[]).await;
    let alice = app.create_user("alice", "alice@example.com", PW, false).await;
    let here = app.login_as(&alice).await;
    let elsewhere = app.login_as(&alice).await;

    let res = here
        .submit("/account", "/account/password", &[("current_password", "not it at all"), ("new_password", NEW_PW)])
        .await;
    assert_eq!(res.status, 303);
    assert!(here.get("/account").await.body.contains("Current password is incorrect"));
    assert_eq!(elsewhere.get("/dashboard").await.status, 200, "nothing changed");

    let before = here.cookie("portcullis_session").expect("cookie");
    let res = here.submit("/account", "/account/password", &[("current_password", PW), ("new_password", NEW_PW)]).await;
    assert_eq!(res.status, 303);
    assert_ne!(here.cookie("portcullis_session").expect("cookie"), before, "this session was rotated");
    assert_eq!(here.get("/dashboard").await.status, 200, "and stays signed in");
    assert_eq!(elsewhere.get("/dashboard").await.status, 303, "the other one ended");
    let mails = sink.wait_for(1, 10).await;
    assert!(mails.iter().any(|m| m.contains("Subject: Your password was changed")));
}

#[tokio::test]
async fn the_sessions_page_lists_logins_and_revokes_one() {
    let app = TestApp::spawn().await;
    app.create_user("alice", "alice@example.com", PW, false).await;
    let laptop = app.client();
    laptop.set_user_agent("Mozilla/5.0 (X11; Linux x86_64) Chrome/120.0");
    laptop.login("alice", PW, false).await;
    let phone = app.client();
    phone.set_user_agent("Mozilla/5.0 (iPhone; CPU iPhone OS 17_0) Safari/604.1");
    phone.login("alice", PW, true).await;

    let page = laptop.get("/account/sessions").await;
    assert_eq!(page.status, 200);
    assert!(page.body.contains("Chrome on Linux") && page.body.contains("Safari on iPhone"));
    assert!(page.body.contains("127.0.0.1"));
    assert_eq!(page.body.matches("this session").count(), 1);
    let phone_id = phone.cookie("portcullis_session").expect("cookie").split('.').next().expect("id").to_owned();
    assert!(page.body.contains(&format!("/account/sessions/{phone_id}/revoke")));

    let res = laptop.submit("/account/sessions", &format!("/account/sessions/{phone_id}/revoke"), &[]).await;
    assert_eq!(res.status, 303);
    assert_eq!(phone.get("/dashboard").await.status, 303, "revoked");
    assert_eq!(laptop.get("/dashboard").await.status, 200);
    // Another user's session id is not ours to revoke.
    let bob = app.create_user("bobby", "bob@example.com", PW, false).await;
    let bob_client = app.login_as(&bob).await;
    let bob_id = bob_client.cookie("portcullis_session").expect("cookie").split('.').next().expect("id").to_owned();
    assert_eq!(
        laptop.submit("/account/sessions", &format!("/account/sessions/{bob_id}/revoke"), &[]).await.status,
        404
    );
    assert_eq!(bob_client.get("/dashboard").await.status, 200);
}

#[tokio::test]
async fn mail_waits_while_the_smtp_server_is_down() {
    let mut sink = SmtpSink::start().await;
    let app = app_with(&sink, &[]).await;
    sink.stop().await;
    let c = app.client();
    // The user's request does not fail because mail is down.
    register(&c, "alice", "alice@example.com").await;
    wait_for_failed_attempts(&app, 1).await;
    assert!(sink.messages().is_empty());
    assert_eq!(app.services.store.pending_mail_count().await.expect("count"), 1);
    sink.resume().await;
    // Past the longest backoff: the retry is due.
    app.advance(portcullis_app::mail::backoff(i64::MAX));
    let mails = sink.wait_for(1, 20).await;
    assert_eq!(mails.len(), 1, "delivered once the server is back");
    assert!(mails[0].contains("/verify-email/"));
}

#[tokio::test]
async fn a_restart_between_queueing_and_sending_loses_nothing() {
    let dir = tempfile::tempdir().expect("tmp");
    let mut sink = SmtpSink::start().await;
    let url = sink.url();
    sink.stop().await;
    let vars = [("PORTCULLIS_SMTP_URL", url.as_str()), ("PORTCULLIS_BASE_URL", BASE)];
    let app = TestApp::spawn_in(dir.path(), &vars).await;
    register(&app.client(), "alice", "alice@example.com").await;
    app.stop().await;

    sink.resume().await;
    let app = TestApp::spawn_in(dir.path(), &vars).await;
    // The first node may have tried once and set a retry: let it be due.
    app.advance(portcullis_app::mail::backoff(i64::MAX));
    let mails = sink.wait_for(1, 20).await;
    assert_eq!(mails.len(), 1);
    assert!(mails[0].contains("To: alice@example.com"));
    // Marked sent: no node claims it again.
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while app.services.store.pending_mail_count().await.expect("count") > 0 {
        assert!(std::time::Instant::now() < deadline, "the mail was sent but not marked");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(sink.messages().len(), 1, "sent exactly once");
    app.stop().await;
}

#[tokio::test]
async fn without_smtp_mail_goes_to_the_dev_outbox() {
    let app = TestApp::spawn().await;
    register(&app.client(), "alice", "alice@example.com").await;
    let outbox = app.data_dir().join("outbox");
    let mut found = Vec::new();
    for _ in 0..100 {
        found = std::fs::read_dir(&outbox)
            .map(|d| {
                d.filter_map(Result::ok)
                    .map(|e| e.path())
                    .filter(|p| p.extension().is_some_and(|x| x == "eml"))
                    .collect()
            })
            .unwrap_or_default();
        if !found.is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(found.len(), 1);
    let eml = std::fs::read_to_string(&found[0]).expect("read eml");
    let link = find_link(&eml, "/verify-email/").expect("link in the .eml");
    assert!(link.starts_with("http://127.0.0.1:8080/verify-email/"), "{link}");
}

#[tokio::test]
async fn no_token_or_password_is_stored_in_plain_text() {
    let sink = SmtpSink::start().await;
    let app = app_with(&sink, &[]).await;
    let c = app.client();
    register(&c, "alice", "alice@example.com").await;
    let session_cookie = c.cookie("portcullis_session").expect("cookie");
    c.submit("/forgot-password", "/forgot-password", &[("email", "alice@example.com")]).await;
    let mails = sink.wait_for(2, 10).await;
    let verify = find_link(&mails.join("\n"), "/verify-email/").expect("verify link");
    let reset = find_link(&mails.join("\n"), "/reset-password/").expect("reset link");
    // Queue one more mail that stays unsent, so a pending body is in the table too.
    let mut sink = sink;
    sink.stop().await;
    c.submit("/dashboard", "/verify-email/resend", &[]).await;
    wait_for_failed_attempts(&app, 1).await;

    let secret_of = |v: &str| v.rsplit('.').next().expect("secret").to_owned();
    let mut haystack = Vec::new();
    for entry in std::fs::read_dir(app.data_dir()).expect("data dir").filter_map(Result::ok) {
        if entry.file_name().to_string_lossy().starts_with("portcullis.db") {
            haystack.extend(std::fs::read(entry.path()).expect("read db file"));
        }
    }
    let text = String::from_utf8_lossy(&haystack);
    assert!(text.contains("alice@example.com"), "the scan reads the database");
    for needle in [PW.to_owned(), secret_of(&session_cookie), secret_of(&verify), secret_of(&reset)] {
        assert!(!text.contains(&needle), "found {needle:?} in the database files");
    }
}

#[tokio::test]
async fn changing_the_email_confirms_the_new_address_and_warns_the_old() {
    let sink = SmtpSink::start().await;
    let app = app_with(&sink, &[]).await;
    app.create_user("alice", "alice@example.com", PW, false).await;
    app.create_user("bobby", "bob@example.com", PW, false).await;
    let c = app.client();
    c.login("alice", PW, false).await;
    sink.wait_for(1, 10).await; // the new sign-in notice

    // Wrong password, or an address someone has: nothing happens.
    c.submit(
        "/account",
        "/account/email",
        &[("current_password", "wrong password!"), ("new_email", "new@example.com")],
    )
    .await;
    assert!(c.get("/account").await.body.contains("Current password is incorrect"));
    c.submit("/account", "/account/email", &[("current_password", PW), ("new_email", "BOB@example.com")]).await;
    assert!(c.get("/account").await.body.contains("Email already registered"));

    let res =
        c.submit("/account", "/account/email", &[("current_password", PW), ("new_email", "new@example.com")]).await;
    assert_eq!(res.status, 303);
    let mails = sink.wait_for(3, 10).await;
    let to_new = mails.iter().find(|m| m.contains("To: new@example.com")).expect("confirmation to the new address");
    let to_old = mails
        .iter()
        .find(|m| m.contains("To: alice@example.com") && m.contains("being changed"))
        .expect("notice to the old");
    assert!(to_old.contains("new@example.com"));
    assert_eq!(app.services.accounts.find_user("alice").await.expect("user").email, "alice@example.com", "not yet");

    let path = path_of(&find_link(to_new, "/verify-email/").expect("link"));
    // A scanner's HEAD or GET changes nothing: the page asks.
    assert_eq!(c.send(reqwest::Method::HEAD, &path, None, &[]).await.status, 200);
    let scanner = app.client();
    let page = scanner.get(&path).await;
    assert_eq!(page.status, 200);
    assert!(page.body.contains("new@example.com") && page.body.contains(&format!("action=\"{path}\"")));
    assert_eq!(page.header("referrer-policy"), Some("no-referrer"));
    assert_eq!(app.services.accounts.find_user("alice").await.expect("user").email, "alice@example.com", "asked only");
    // Without the page's CSRF token the button does nothing.
    assert_eq!(app.client().post_form(&path, &[]).await.status, 403);
    // The button, from the page.
    let res = c.submit(&path, &path, &[]).await;
    assert_eq!(res.status, 303);
    let user = app.services.accounts.find_user("alice").await.expect("user");
    assert_eq!((user.email.as_str(), user.email_verified), ("new@example.com", true));
    // Spent: the link is refused now, and asks nothing.
    assert_eq!(c.get(&path).await.status, 400);
    assert_eq!(c.submit("/account", &path, &[]).await.status, 400);
}

#[tokio::test]
async fn deleting_the_account_needs_the_password_and_removes_everything() {
    let app = TestApp::spawn().await;
    let alice = app.create_user("alice", "alice@example.com", PW, false).await;
    let post = app
        .services
        .posts
        .create(portcullis_domain::Actor { user_id: alice.id, is_admin: false }, "Mine", "Words")
        .await
        .expect("post");
    let c = app.login_as(&alice).await;
    c.submit("/account", "/account/delete", &[("current_password", "wrong password!")]).await;
    assert!(app.services.accounts.user(alice.id).await.is_ok(), "wrong password: nothing deleted");
    let res = c.submit("/account", "/account/delete", &[("current_password", PW)]).await;
    assert_eq!((res.status, res.location()), (303, Some("/")));
    assert!(app.services.accounts.user(alice.id).await.is_err());
    assert!(app.services.posts.get(post).await.is_err());
    assert_eq!(c.get("/dashboard").await.status, 303, "signed out");
    assert_eq!(app.client().login("alice", PW, false).await.status, 200, "gone");
}

/// A real SQLite outbox that counts how often the worker claims from it.
struct CountingOutbox {
    store: portcullis_store::SqlStore,
    claims: std::sync::atomic::AtomicUsize,
    marks: std::sync::atomic::AtomicUsize,
}

#[async_trait::async_trait]
impl portcullis_app::ports::OutboxStore for CountingOutbox {
    async fn claim_mail(
        &self,
        now: i64,
        lease_until: i64,
        limit: i64,
    ) -> portcullis_app::ports::StoreResult<Vec<portcullis_app::mail::ClaimedMail>> {
        self.claims.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        self.store.claim_mail(now, lease_until, limit).await
    }
    async fn mark_mails_sent(&self, ids: &[i64], now: i64) -> portcullis_app::ports::StoreResult<()> {
        self.marks.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        self.store.mark_mails_sent(ids, now).await
    }
    async fn mark_mail_failed(
        &self,
        id: i64,
        attempts: i64,
        next_attempt_at: i64,
        error: &str,
    ) -> portcullis_app::ports::StoreResult<()> {
        self.store.mark_mail_failed(id, attempts, next_attempt_at, error).await
    }
}

#[tokio::test]
async fn the_outbox_claims_again_only_after_a_full_batch() {
    use portcullis_app::mail::{Mail, OutboxWorker, Sealer};
    use std::sync::Arc;
    use std::sync::atomic::Ordering;

    let dir = tempfile::tempdir().expect("tempdir");
    let url = format!("sqlite://{}", dir.path().join("outbox.db").display());
    let store = portcullis_store::SqlStore::connect(&url, 4).await.expect("store");
    store.migrate().await.expect("migrate");
    let outbox = Arc::new(CountingOutbox { store, claims: Default::default(), marks: Default::default() });
    let sealer = Sealer::new(b"a secret key of thirty-two bytes!");
    let queue = |n: usize| {
        let (outbox, sealer) = (outbox.clone(), sealer.clone());
        async move {
            for i in 0..n {
                let mail = Mail {
                    to: format!("user{i}@example.com"),
                    subject: format!("Message {i}"),
                    text: "Hello".into(),
                    html: "<p>Hello</p>".into(),
                };
                let sealed = sealer.seal(&mail).expect("seal");
                outbox
                    .store
                    .enqueue_mail(&sealed, portcullis_app::Clock::now_ms(&portcullis_app::SystemClock))
                    .await
                    .expect("enqueue");
            }
        }
    };
    let sink = SmtpSink::start().await;
    let from: lettre::message::Mailbox = "Portcullis <noreply@example.com>".parse().expect("mailbox");
    let transport = Arc::new(portcullis::mail::SmtpMailer::new(&sink.url(), from).expect("smtp"));
    let wake = Arc::new(tokio::sync::Notify::new());
    // The poll interval is longer than the test: every send below is the
    // worker's own doing, at start or when woken.
    // Once woken, it waits a second for more mails: far longer than the
    // test takes to queue those it queues together.
    let clock = Arc::new(portcullis_app::SystemClock);
    let worker =
        OutboxWorker::new(outbox.clone(), transport, sealer.clone(), wake.clone(), Duration::from_secs(600), clock)
            .gathering(Duration::from_secs(1));
    // Waits (in short steps) until the worker marked `n` batches sent; then
    // a moment more, in which a wrong extra claim would follow at once.
    let marked = |n: usize| {
        let outbox = outbox.clone();
        async move {
            let deadline = std::time::Instant::now() + Duration::from_secs(10);
            while outbox.marks.load(Ordering::SeqCst) < n {
                assert!(std::time::Instant::now() < deadline, "no mark");
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    };
    let (stop, stopped) = tokio::sync::watch::channel(false);

    // One mail waiting at start: one claim takes it, and a batch that was
    // not full means nothing else was due, so there is no second claim.
    queue(1).await;
    let running = tokio::spawn(worker.run(stopped));
    assert_eq!(sink.wait_for(1, 10).await.len(), 1);
    marked(1).await;
    assert_eq!(outbox.claims.load(Ordering::SeqCst), 1, "no claim finds the outbox empty after a partial batch");
    assert_eq!(outbox.marks.load(Ordering::SeqCst), 1);

    // A burst larger than a batch: a full batch is followed by another
    // claim at once, without waiting for the poll.
    queue(21).await;
    wake.notify_one();
    assert_eq!(sink.wait_for(22, 20).await.len(), 22, "all of the burst sent without the poll");
    marked(3).await;
    assert_eq!(outbox.claims.load(Ordering::SeqCst), 3, "20, then the last one, then waiting");
    assert_eq!(outbox.marks.load(Ordering::SeqCst), 3, "one mark per batch, not per mail");
    assert_eq!(outbox.store.pending_mail_count().await.expect("count"), 0);

    // Mails queued a few milliseconds apart, each waking the worker, as
    // sign-ins do: the worker waits after the first and sends them as one
    // batch, with one mark, where it would otherwise take each on its own.
    for _ in 0..5 {
        queue(1).await;
        wake.notify_one();
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(sink.wait_for(27, 20).await.len(), 27);
    assert_eq!(outbox.marks.load(Ordering::SeqCst), 4, "the five mails went out in one batch");
    assert_eq!(outbox.store.pending_mail_count().await.expect("count"), 0);

    let _ = stop.send(true);
    tokio::time::timeout(Duration::from_secs(10), running).await.expect("worker stops").expect("join");
}
