//! Moving in (`portcullis import`), backing up (`portcullis backup`) and
//! taking your data (`GET /account/export`), through the real binary and
//! over HTTP. The Flask database was made by the Flask tutorial app itself
//! (tests/fixtures/flask/make_app_db.py).

use std::path::{Path, PathBuf};
use std::process::Output;

use portcullis::testing::TestApp;
use sqlx::Row as _;

#[allow(dead_code, reason = "shared by several test binaries, each using the services it needs")]
#[path = "../crates/store/tests/support/services.rs"]
mod services;

/// The fixture, copied where a test may do what it likes with it.
fn flask_db(dir: &Path) -> PathBuf {
    let to = dir.join("app.db");
    std::fs::copy(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/flask/app.db"), &to).expect("copy fixture");
    to
}

/// Runs the `portcullis` binary on `app`'s data directory and database.
async fn cli(app: &TestApp, args: &[&str], extra: &[(&str, &str)]) -> Output {
    let mut cmd = tokio::process::Command::new(env!("CARGO_BIN_EXE_portcullis"));
    cmd.args(args)
        .env("PORTCULLIS_DATA_DIR", app.data_dir())
        .env("PORTCULLIS_DATABASE_URL", &app.config.database_url)
        .env("PORTCULLIS_LOG", "warn")
        .stdin(std::process::Stdio::null());
    for (k, v) in extra {
        cmd.env(k, v);
    }
    cmd.output().await.expect("run portcullis")
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// The last line of standard output.
fn summary(out: &Output) -> String {
    text(&out.stdout).lines().last().unwrap_or_default().to_owned()
}

async fn count(app: &TestApp, sql: &str) -> i64 {
    sqlx::query_scalar(sql).fetch_one(app.services.store.pool()).await.expect(sql)
}

async fn hash_of(app: &TestApp, username: &str) -> String {
    sqlx::query_scalar("SELECT password_hash FROM users WHERE username = $1")
        .bind(username)
        .fetch_one(app.services.store.pool())
        .await
        .expect("user")
}

/// Everything a re-run or a dry run must leave as it was.
async fn state(app: &TestApp) -> Vec<String> {
    let mut rows = Vec::new();
    for sql in [
        "SELECT id || ' ' || username || ' ' || email || ' ' || password_hash || ' ' || is_admin || ' ' || \
         email_verified || ' ' || security_stamp || ' ' || created_at AS r FROM users ORDER BY id",
        "SELECT id || ' ' || author_id || ' ' || title || ' ' || created_at AS r FROM posts ORDER BY id",
        "SELECT key || ' ' || attempts || ' ' || COALESCE(locked_until, 0) AS r FROM login_attempts ORDER BY key",
        "SELECT COUNT(*) || '' AS r FROM tokens",
    ] {
        for row in sqlx::query(sql).fetch_all(app.services.store.pool()).await.expect(sql) {
            rows.push(row.try_get::<String, _>("r").expect("r"));
        }
    }
    rows
}

#[tokio::test]
async fn flask_users_sign_in_with_their_flask_passwords_and_are_moved_to_argon2id() {
    let app = TestApp::spawn().await;
    // Someone here already has the name Carol: the Flask carol is skipped, never merged.
    let ours = app.create_user("Carol", "carol@elsewhere.example", "our carol's passphrase", false).await;
    let dir = tempfile::tempdir().expect("dir");
    let out = cli(&app, &["import", "flask-sqlite", flask_db(dir.path()).to_str().expect("path")], &[]).await;
    let stderr = text(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert_eq!(summary(&out), "imported 4 users, 3 posts; skipped 4", "{stderr}");
    assert!(stderr.contains("user id 3 (\"carol\"): username \"carol\" is taken; its 1 post skipped too"), "{stderr}");
    assert!(stderr.contains("user id 6 (\"bad name!\"): username \"bad name!\""), "{stderr}");
    assert_eq!(count(&app, "SELECT COUNT(*) FROM users WHERE username_normalized = 'bad name!'").await, 0);
    assert_eq!(count(&app, "SELECT COUNT(*) FROM users WHERE email = 'bad@example.com'").await, 0);
    // Ours is untouched.
    let carol = app.services.accounts.find_user("carol").await.expect("carol");
    assert_eq!(
        (carol.id, carol.email.as_str(), &carol.password_hash),
        (ours.id, ours.email.as_str(), &ours.password_hash)
    );

    // The Flask hashes were taken as they were.
    assert!(hash_of(&app, "alice").await.starts_with("scrypt:32768:8:1$"));
    assert!(hash_of(&app, "bob").await.starts_with("pbkdf2:sha256:600000$"));
    let alice = app.services.accounts.find_user("alice").await.expect("alice");
    assert!(alice.is_admin && alice.email_verified);
    assert_eq!(alice.created_at, 1_614_834_367_891, "2021-03-04 05:06:07.891 UTC");
    let first: i64 = count(&app, "SELECT created_at FROM posts WHERE title = 'Alice''s first'").await;
    assert_eq!(first, 1_654_589_350_000, "2022-06-07 08:09:10 UTC");
    assert_eq!(count(&app, &format!("SELECT COUNT(*) FROM posts WHERE author_id = {}", alice.id)).await, 2);
    // The plaintext verification and reset tokens stayed behind.
    assert_eq!(count(&app, "SELECT COUNT(*) FROM tokens").await, 0);

    // scrypt (alice) and pbkdf2 (bob): the Flask password works over HTTP,
    // the user sees their posts, and the hash is Argon2id afterwards.
    for (name, password, title) in
        [("alice", "alice-flask-pass", "Alice&#x27;s first"), ("bob", "bob-flask-password", "Bob writes")]
    {
        let c = app.client();
        let res = c.login(name, password, false).await;
        assert_eq!(res.status, 303, "{name}: {}", res.body);
        assert_eq!(res.location(), Some("/dashboard"));
        let dash = c.get("/dashboard").await;
        assert!(dash.body.contains(title), "{name}'s dashboard: {}", dash.body);
        let h = hash_of(&app, name).await;
        assert!(h.starts_with("$argon2id$"), "{name}: {h}");
        // And the new hash works too.
        assert_eq!(app.client().login(name, password, false).await.status, 303);
        assert_eq!(app.client().login(name, "wrong-password", false).await.status, 200);
    }

    // dave's lock from the Flask app holds, right password or not; erin's ran out.
    let res = app.client().login("dave", "dave-flask-pass", false).await;
    assert_eq!(res.status, 200);
    assert!(res.body.contains("temporarily locked"), "{}", res.body);
    let dave = app.services.accounts.find_user("dave").await.expect("dave");
    assert_eq!(app.services.accounts.locked_until(&dave).await.expect("lock"), Some(4_070_908_800_000));
    assert_eq!(app.client().login("erin", "erin-flask-pass", false).await.status, 303);
}

#[tokio::test]
async fn a_dry_run_changes_nothing_and_a_second_run_imports_nothing() {
    let app = TestApp::spawn().await;
    let dir = tempfile::tempdir().expect("dir");
    let db = flask_db(dir.path());
    let db = db.to_str().expect("path");
    let before = state(&app).await;
    let events = count(&app, "SELECT COUNT(*) FROM audit_events").await;
    let out = cli(&app, &["import", "flask-sqlite", db, "--dry-run"], &[]).await;
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(summary(&out), "imported 5 users, 4 posts; skipped 2");
    assert_eq!(state(&app).await, before, "a dry run wrote");
    assert_eq!(count(&app, "SELECT COUNT(*) FROM audit_events").await, events);

    let out = cli(&app, &["import", "flask-sqlite", db], &[]).await;
    assert_eq!(summary(&out), "imported 5 users, 4 posts; skipped 2", "{}", text(&out.stderr));
    let after = state(&app).await;
    assert_ne!(after, before);
    let out = cli(&app, &["import", "flask-sqlite", db], &[]).await;
    assert!(out.status.success());
    // Every user is present (with their posts): 6 users and 5 posts skipped.
    assert_eq!(summary(&out), "imported 0 users, 0 posts; skipped 11", "{}", text(&out.stderr));
    assert_eq!(state(&app).await, after, "a second run changed something");
    // A dry run after the import says the same as the second run.
    let out = cli(&app, &["import", "flask-sqlite", db, "--dry-run"], &[]).await;
    assert_eq!(summary(&out), "imported 0 users, 0 posts; skipped 11");

    // What cannot be read stops the command with a reason.
    let out = cli(&app, &["import", "flask-sqlite", "/nonexistent/app.db"], &[]).await;
    assert!(!out.status.success());
    assert!(text(&out.stderr).contains("cannot read"), "{}", text(&out.stderr));
    let not_flask = dir.path().join("other.db");
    std::fs::write(&not_flask, b"").expect("empty file");
    let out = cli(&app, &["import", "flask-sqlite", not_flask.to_str().expect("path")], &[]).await;
    assert!(!out.status.success());
    assert!(text(&out.stderr).contains("not a database of the Flask tutorial app"), "{}", text(&out.stderr));
}

#[tokio::test]
async fn csv_rows_are_checked_line_by_line_and_bcrypt_users_sign_in() {
    let app = TestApp::spawn().await;
    app.create_user("judy", "judy@example.com", "judy's own passphrase", false).await;
    let bcrypt_hash = bcrypt::hash("frank-bcrypt-pass", 4).expect("bcrypt");
    let argon = app.services.accounts.hasher().hash("ivan-argon-passphrase").await.expect("argon2");
    let csv = format!(
        "username,email,password_hash,is_admin,email_verified,created_at\n\
         frank,frank@example.com,{bcrypt_hash},0,1,2024-01-02 03:04:05\n\
         grace,grace@example.com,md5$abc$def,0,0,\n\
         heidi,heidi@example.com,too,few\n\
         ivan,ivan@example.com,\"{argon}\",1,0,\n\
         FRANK,other@example.com,{bcrypt_hash},0,0,\n\
         \"judy\",JUDY2@example.com,{bcrypt_hash},0,0,\n\
         kim,JUDY@EXAMPLE.COM,{bcrypt_hash},0,0,\n\
         \"multi\nline\",m@example.com,{bcrypt_hash},0,0,\n\
         leo,leo@example.com,{bcrypt_hash},maybe,0,\n"
    );
    let dir = tempfile::tempdir().expect("dir");
    let path = dir.path().join("users.csv");
    std::fs::write(&path, csv).expect("write csv");
    let path = path.to_str().expect("path");
    let out = cli(&app, &["import", "csv", path], &[]).await;
    let stderr = text(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert_eq!(summary(&out), "imported 2 users, 0 posts; skipped 7", "{stderr}");
    for expected in [
        "line 3: password hash format not supported",
        "line 4: malformed row: 4 fields where the header has 6",
        "line 6: username \"FRANK\" appears twice in the file",
        "line 7: username \"judy\" is taken",
        "line 8: email \"JUDY@EXAMPLE.COM\" is taken",
        "line 9: username \"multi\\nline\"",
        "line 11: is_admin \"maybe\" is not a flag",
    ] {
        assert!(stderr.contains(expected), "missing {expected:?} in:\n{stderr}");
    }
    let frank = app.services.accounts.find_user("frank").await.expect("frank");
    assert!(frank.email_verified && !frank.is_admin);
    assert_eq!(frank.created_at, 1_704_164_645_000);
    assert!(app.services.accounts.find_user("ivan").await.expect("ivan").is_admin);

    // bcrypt signs in over HTTP and is moved to Argon2id.
    assert!(hash_of(&app, "frank").await.starts_with("$2b$04$"));
    let res = app.client().login("frank", "frank-bcrypt-pass", false).await;
    assert_eq!(res.status, 303, "{}", res.body);
    assert!(hash_of(&app, "frank").await.starts_with("$argon2id$"));
    assert_eq!(app.client().login("ivan", "ivan-argon-passphrase", false).await.status, 303);

    // Again: nothing new.
    let out = cli(&app, &["import", "csv", path], &[]).await;
    assert_eq!(summary(&out), "imported 0 users, 0 posts; skipped 9", "{}", text(&out.stderr));

    // A header that is not the contract's, or no file: refused, non-zero.
    let bad = dir.path().join("bad.csv");
    std::fs::write(&bad, "user,mail\nx,y\n").expect("write");
    let out = cli(&app, &["import", "csv", bad.to_str().expect("path")], &[]).await;
    assert!(!out.status.success());
    assert!(text(&out.stderr).contains("username,email,password_hash,is_admin,email_verified,created_at"));
    let out = cli(&app, &["import", "csv", "/nonexistent.csv"], &[]).await;
    assert!(!out.status.success());
    assert!(text(&out.stderr).contains("cannot read /nonexistent.csv"), "{}", text(&out.stderr));
}

#[cfg(unix)]
fn mode(p: &Path) -> u32 {
    use std::os::unix::fs::PermissionsExt as _;
    std::fs::metadata(p).expect("metadata").permissions().mode() & 0o777
}

#[tokio::test]
async fn a_backup_taken_while_writes_go_on_opens_with_every_row() {
    let app = TestApp::spawn().await;
    let writer = app.create_user("writer", "writer@example.com", "a long passphrase", false).await;
    let actor = portcullis_domain::Actor { user_id: writer.id, is_admin: false };
    for i in 0..50 {
        app.services.posts.create(actor, &format!("before {i}"), "written before the backup").await.expect("post");
    }
    // Writes keep coming while the copy is taken.
    let posts = app.services.posts.clone();
    let (stop_tx, mut stop_rx) = tokio::sync::oneshot::channel::<()>();
    let writing = tokio::spawn(async move {
        let mut n = 0;
        while stop_rx.try_recv().is_err() {
            posts.create(actor, &format!("during {n}"), "written during the backup").await.expect("post");
            n += 1;
        }
        n
    });
    let dir = tempfile::tempdir().expect("dir");
    let file = dir.path().join("backup.db");
    let out = cli(&app, &["backup", file.to_str().expect("path")], &[]).await;
    let _ = stop_tx.send(());
    let during = writing.await.expect("writer");
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(during > 0, "no write went on during the backup");

    let url = format!("sqlite://{}?mode=ro", file.display());
    let copy = sqlx::SqlitePool::connect(&url).await.expect("the backup opens as a database");
    let check: String = sqlx::query_scalar("PRAGMA integrity_check").fetch_one(&copy).await.expect("check");
    assert_eq!(check, "ok");
    let before: i64 =
        sqlx::query_scalar("SELECT COUNT(*) FROM posts WHERE title LIKE 'before %'").fetch_one(&copy).await.expect("n");
    assert_eq!(before, 50, "every row written before the backup is in it");
    let in_copy: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM posts").fetch_one(&copy).await.expect("n");
    assert!(in_copy <= 50 + during, "{in_copy}");
    let users: i64 =
        sqlx::query_scalar("SELECT COUNT(*) FROM users WHERE username = 'writer'").fetch_one(&copy).await.expect("n");
    assert_eq!(users, 1);
    // One moment's snapshot: the posts' ids run without a gap.
    let max: i64 = sqlx::query_scalar("SELECT MAX(id) FROM posts").fetch_one(&copy).await.expect("max");
    assert_eq!(max, in_copy);
    copy.close().await;

    // The secret key beside it, both private.
    let key = dir.path().join("backup.db.secret.key");
    let ours = std::fs::read_to_string(app.data_dir().join("secret.key")).expect("secret key");
    assert_eq!(std::fs::read_to_string(&key).expect("key").trim(), ours.trim());
    #[cfg(unix)]
    {
        assert_eq!(mode(&file), 0o600);
        assert_eq!(mode(&key), 0o600);
    }

    // Never over an existing file.
    let len = std::fs::metadata(&file).expect("metadata").len();
    let out = cli(&app, &["backup", file.to_str().expect("path")], &[]).await;
    assert!(!out.status.success());
    assert!(text(&out.stderr).contains("already exists: not overwritten"), "{}", text(&out.stderr));
    assert_eq!(std::fs::metadata(&file).expect("metadata").len(), len);
}

#[tokio::test]
#[cfg_attr(portcullis_no_postgres, ignore = "needs PostgreSQL: set PORTCULLIS_TEST_POSTGRES_URL")]
async fn a_backup_of_postgresql_is_refused_naming_pg_dump() {
    let Some(url) = services::postgres_url() else {
        return;
    };
    let app = TestApp::spawn().await;
    let dir = tempfile::tempdir().expect("dir");
    let file = dir.path().join("pg.db");
    let out = cli(&app, &["backup", file.to_str().expect("path")], &[("PORTCULLIS_DATABASE_URL", &url)]).await;
    assert!(!out.status.success());
    assert!(text(&out.stderr).contains("pg_dump"), "{}", text(&out.stderr));
    assert!(!file.exists());
}

#[tokio::test]
async fn the_export_holds_the_users_data_and_no_secret() {
    let app = TestApp::spawn().await;
    let user = app.create_user("exporter", "exporter@example.com", "exporter's passphrase", false).await;
    let other = app.create_user("someone", "someone@example.com", "someone's passphrase", false).await;
    let c = app.client();
    c.set_user_agent("ExportTest/1.0 (X11; Linux x86_64) Firefox/120.0");
    assert_eq!(c.login("exporter", "exporter's passphrase", true).await.status, 303);
    let actor = portcullis_domain::Actor { user_id: user.id, is_admin: false };
    app.services.posts.create(actor, "My exported post", "Its content, mine to take").await.expect("post");
    let them = portcullis_domain::Actor { user_id: other.id, is_admin: false };
    app.services.posts.create(them, "Someone else's post", "not mine").await.expect("post");
    app.login_as(&other).await;
    let origin = portcullis_app::Origin::user(&portcullis_app::ClientInfo::default());
    let (_, token_value) =
        app.services.tokens.create(&user, "Backup script", "read", "30", &origin).await.expect("token");
    let credential = "{\"not\":\"a secret, but not for the export either\"}";
    let passkey = portcullis_app::passkey_store::NewPasskey {
        user_id: user.id,
        credential_id: "Y3JlZGVudGlhbC1pZA",
        name: "Work laptop",
        credential,
        sign_count: 0,
        backup_eligible: false,
        backed_up: false,
        now: 1,
    };
    use portcullis_app::passkey_store::PasskeyStore as _;
    app.services.store.insert_passkey(&passkey, None, None).await.expect("passkey").expect("new");

    assert!(c.get("/account").await.body.contains("href=\"/account/export\""), "linked from /account");
    let res = c.get("/account/export").await;
    assert_eq!(res.status, 200);
    assert_eq!(res.header("content-type"), Some("application/json"));
    assert_eq!(res.header("cache-control"), Some("no-store"));
    assert_eq!(res.header("content-disposition"), Some("attachment; filename=\"portcullis-export-exporter.json\""));
    let json: serde_json::Value = serde_json::from_str(&res.body).expect("JSON");
    assert_eq!(json["profile"]["username"], "exporter");
    assert_eq!(json["profile"]["email"], "exporter@example.com");
    let posts = json["posts"].as_array().expect("posts");
    assert_eq!(posts.len(), 1);
    assert_eq!(posts[0]["title"], "My exported post");
    assert_eq!(posts[0]["content"], "Its content, mine to take");
    let sessions = json["sessions"].as_array().expect("sessions");
    assert_eq!(sessions.len(), 1, "only this user's sessions");
    assert_eq!(sessions[0]["user_agent"], "ExportTest/1.0 (X11; Linux x86_64) Firefox/120.0");
    assert_eq!(sessions[0]["ip"], "127.0.0.1");
    assert_eq!(sessions[0]["current"], true);
    assert_eq!(sessions[0]["remember"], true);
    let kinds: Vec<&str> =
        json["audit_events"].as_array().expect("events").iter().filter_map(|e| e["kind"].as_str()).collect();
    assert!(kinds.contains(&"login.success") && kinds.contains(&"account.export"), "{kinds:?}");
    assert_eq!(json["two_factor"]["enabled"], false);
    let tokens = json["access_tokens"].as_array().expect("tokens");
    assert_eq!(tokens.len(), 1);
    assert_eq!((&tokens[0]["name"], &tokens[0]["scope"]), (&"Backup script".into(), &"read".into()));
    let keys = json["passkeys"].as_array().expect("passkeys");
    assert_eq!(keys.len(), 1);
    assert_eq!(keys[0]["name"], "Work laptop");

    // No hash, no secret: not the password hash, nor any session's secret
    // hash, nor the cookie's secret, nor the security stamp.
    let body = &res.body;
    assert!(!body.contains("argon2") && !body.contains("pbkdf2") && !body.contains("scrypt"), "{body}");
    let row = sqlx::query("SELECT password_hash, security_stamp FROM users WHERE id = $1")
        .bind(user.id)
        .fetch_one(app.services.store.pool())
        .await
        .expect("user");
    for column in ["password_hash", "security_stamp"] {
        let v: String = row.try_get(column).expect(column);
        assert!(!body.contains(&v), "{column} in the export");
    }
    let secrets: Vec<String> = sqlx::query_scalar("SELECT secret_hash FROM sessions")
        .fetch_all(app.services.store.pool())
        .await
        .expect("sessions");
    assert!(!secrets.is_empty());
    for s in secrets {
        assert!(!body.contains(&s), "a session's secret hash in the export");
    }
    let cookie = c.cookie(&app.session_cookie_name()).expect("session cookie");
    let (id, secret) = cookie.split_once('.').expect("id.secret");
    assert!(!body.contains(secret) && !body.contains(id), "the session cookie in the export");
    assert!(!body.contains("someone"), "another user's data in the export");
    let (_, token_secret) = portcullis_domain::access_token::parse(&token_value).expect("a well-formed token");
    assert!(!body.contains(&token_value) && !body.contains(token_secret), "the token in the export");
    assert!(!body.contains("Y3JlZGVudGlhbC1pZA") && !body.contains("not for the export"), "the credential");

    // Recorded.
    assert_eq!(
        count(
            &app,
            &format!("SELECT COUNT(*) FROM audit_events WHERE kind = 'account.export' AND user_id = {}", user.id)
        )
        .await,
        1
    );
    // Only for the signed-in.
    let res = app.client().get("/account/export").await;
    assert!(matches!(res.status, 302 | 303), "{}", res.status);
    assert_eq!(res.location(), Some("/login?next=%2Faccount%2Fexport"));
}
