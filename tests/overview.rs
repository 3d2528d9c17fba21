//! `/admin`: the administrators' overview counts what happened, and only
//! administrators see it.

use portcullis::testing::TestApp;

#[allow(dead_code, reason = "shared by several test binaries, each using the services it needs")]
#[path = "../crates/store/tests/support/services.rs"]
mod services;

const PW: &str = "correct horse battery staple";

/// The text of the element with `id`.
fn text_of(html: &str, id: &str) -> String {
    let start = html.find(&format!("id=\"{id}\"")).unwrap_or_else(|| panic!("#{id} in page"));
    let rest = &html[start..];
    let open = rest.find('>').expect("tag end") + 1;
    let close = rest.find("</").expect("close tag");
    rest[open..close].trim().to_owned()
}

/// The sum of the table `id`'s second column.
fn table_total(html: &str, id: &str) -> i64 {
    let start = html.find(&format!("<table class=\"table\" id=\"{id}\"")).expect("table");
    let table = &html[start..start + html[start..].find("</table>").expect("end")];
    table
        .split("<tr><td>")
        .skip(1)
        .map(|row| row.split("</td><td>").nth(1).and_then(|v| v.split('<').next()).expect("cell"))
        .map(|v| v.parse::<i64>().expect("number"))
        .sum()
}

#[tokio::test]
async fn the_overview_counts_what_happened() {
    let app = TestApp::spawn_with(&[("PORTCULLIS_LOCKOUT_THRESHOLD", "3")]).await;
    let admin = app.create_user("root", "root@example.com", PW, true).await;
    let alice = app.create_user("alice", "alice@example.com", PW, false).await;
    let bobby = app.create_user("bobby", "bob@example.com", PW, false).await;
    // Bobby has two-factor sign-in, alice two passkeys; root only a pending enrolment.
    for (user, secret) in [(bobby.id, Some("sealed")), (admin.id, None)] {
        sqlx::query(
            "INSERT INTO two_factor (user_id, secret, enabled_at, pending_secret) VALUES ($1, $2, 1, 'sealed')",
        )
        .bind(user)
        .bind(secret)
        .execute(app.services.store.pool())
        .await
        .expect("two-factor row");
    }
    use portcullis_app::passkey_store::{NewPasskey, PasskeyStore as _};
    for (credential_id, name) in [("Y3JlZC1vbmU", "Laptop"), ("Y3JlZC10d28", "Phone")] {
        let key = NewPasskey {
            user_id: alice.id,
            credential_id,
            name,
            credential: "{}",
            sign_count: 0,
            backup_eligible: false,
            backed_up: false,
            now: 1,
        };
        app.services.store.insert_passkey(&key, None, None).await.expect("passkey").expect("new");
    }

    // Two sign-ins, three failures that lock bobby, one refused while locked.
    assert_eq!(app.client().login("alice", PW, false).await.status, 303);
    let stranger = app.client();
    for i in 0..3 {
        assert_eq!(stranger.login("bobby", &format!("wrong {i}"), false).await.status, 200);
    }
    assert!(stranger.login("bobby", PW, false).await.body.contains("temporarily locked"));
    let c = app.client();
    assert_eq!(c.login("root", PW, false).await.status, 303);

    let res = c.get("/admin").await;
    assert_eq!(res.status, 200);
    let html = &res.body;
    assert_eq!(table_total(html, "table-sign-ins"), 2, "{html}");
    assert_eq!(table_total(html, "table-failures"), 3);
    assert_eq!(table_total(html, "table-lockouts"), 1);
    assert_eq!(html.matches("<svg class=\"chart").count(), 3);
    assert_eq!(text_of(html, "count-users"), "3");
    assert_eq!(text_of(html, "count-admins"), "1");
    assert_eq!(text_of(html, "count-two-factor"), "1", "a pending enrolment is not two-factor sign-in");
    assert_eq!(text_of(html, "count-passkeys"), "1", "users with passkeys, not passkeys");
    assert_eq!(text_of(html, "count-sessions"), "2");
    assert!(!html.contains("style=\""), "no inline styles under the CSP");
    assert!(html.contains("href=\"/admin\""), "the navigation links the overview");
    drop(admin);

    // Thirty days on, today's events have left the charts.
    app.advance(std::time::Duration::from_secs(31 * 86_400));
    let c = app.client();
    c.login("root", PW, false).await;
    let html = c.get("/admin").await.body;
    assert_eq!(table_total(&html, "table-sign-ins"), 1, "only the sign-in just now");
    assert_eq!(table_total(&html, "table-lockouts"), 0);
}

#[tokio::test]
async fn only_administrators_see_the_overview() {
    let app = TestApp::spawn().await;
    let alice = app.create_user("alice", "alice@example.com", PW, false).await;
    let anon = app.client().get("/admin").await;
    assert!(matches!(anon.status, 302 | 303), "{}", anon.status);
    assert_eq!(anon.location(), Some("/login?next=%2Fadmin"));
    let c = app.login_as(&alice).await;
    assert_eq!(c.get("/admin").await.status, 403);
}

#[tokio::test]
#[cfg_attr(portcullis_no_redis, ignore = "needs Redis: set PORTCULLIS_TEST_REDIS_URL")]
async fn with_sessions_in_redis_the_overview_counts_them_there() {
    let Some(redis) = services::redis_url() else { return };
    let prefix = format!("portcullis-overview-{}:", portcullis_app::tokens::random_b64(8));
    let app = TestApp::spawn_with(&[("PORTCULLIS_REDIS_URL", &redis), ("PORTCULLIS_REDIS_PREFIX", &prefix)]).await;
    app.create_user("root", "root@example.com", PW, true).await;
    app.create_user("alice", "alice@example.com", PW, false).await;
    assert_eq!(app.client().login("alice", PW, false).await.status, 303);
    let c = app.client();
    assert_eq!(c.login("root", PW, false).await.status, 303);
    let html = c.get("/admin").await.body;
    assert_eq!(text_of(&html, "count-sessions"), "2", "{html}");
}
