//! The store's conformance suite. Every test is written once, as an async
//! function taking a fresh, migrated `SqlStore`, and runs on SQLite (a new
//! file per test) and, when `PORTCULLIS_TEST_POSTGRES_URL` is set, on
//! PostgreSQL (a new schema per test, dropped afterwards), so both backends
//! are held to the same behaviour.

use std::collections::HashSet;
use std::sync::Arc;

use portcullis_app::audit::{AuditEvent, AuditFilter};
use portcullis_app::mail::OutgoingMail;
use portcullis_app::ports::{AuditStore, NewCredentials, OutboxStore, SignIn};
use portcullis_app::{
    LoginThrottle, NewToken, NewUser, PostStore, Session, SessionStore, StoreError, TokenPurpose, TokenStore, User,
    UserStore,
};
use portcullis_domain::{Email, Username};
use portcullis_store::SqlStore;
use tokio::task::JoinSet;

/// Runs each listed test on both backends, as `sqlite::<name>` and `postgres::<name>`.
macro_rules! conformance {
    ($($name:ident),+ $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    crate::harness::run_sqlite(crate::$name).await;
                }
            )+
        }
        mod postgres {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    crate::harness::run_postgres(stringify!($name), crate::$name).await;
                }
            )+
        }
    };
}

conformance! {
    insert_user_returns_the_stored_user,
    usernames_are_unique_case_insensitively,
    emails_are_unique_case_insensitively,
    concurrent_inserts_of_one_username_let_exactly_one_win,
    concurrent_inserts_of_one_email_let_exactly_one_win,
    user_by_login_finds_normalized_username_or_email,
    list_users_pages_by_id,
    list_users_shows_current_locks,
    list_users_searches_username_and_email_case_insensitively,
    list_users_search_matches_metacharacters_literally,
    list_users_search_pages_by_id,
    password_updates_keep_or_change_the_stamp,
    set_admin_grants_and_revokes,
    set_admin_refuses_to_demote_the_last_admin,
    set_admin_revokes_a_non_admin_when_there_is_no_admin,
    concurrent_demotions_leave_an_admin,
    delete_user_cascades_to_posts_and_sessions,
    delete_user_refuses_the_last_admin,
    concurrent_deletion_and_demotion_leave_an_admin,
    ping_answers,
    session_round_trips_with_its_user,
    session_needs_an_existing_user_and_a_unique_id,
    touch_session_sets_last_seen,
    delete_session_deletes_only_the_owners_session,
    delete_user_sessions_keeps_the_exception,
    user_sessions_lists_live_sessions_newest_first,
    purge_sessions_removes_expired_and_idle_sessions,
    reserve_attempt_counts_and_locks_at_the_threshold,
    reserve_attempt_with_threshold_one_locks_at_once,
    reserve_attempt_restarts_after_the_lock_passes,
    reserve_attempt_restarts_when_the_window_has_passed,
    concurrent_reserve_attempts_count_each_attempt_once,
    lock_locks_until_the_given_time,
    clear_attempts_forgets_only_the_given_keys,
    post_round_trips_with_its_author,
    update_post_changes_title_content_and_time,
    delete_post_removes_only_that_post,
    list_posts_pages_newest_first,
    list_posts_of_one_author,
    audited_changes_record_their_event,
    refused_changes_record_nothing,
    a_change_whose_event_cannot_be_written_is_undone,
    outbox_claims_each_mail_once_and_marks_a_batch_sent,
    open_session_writes_the_whole_login,
    a_login_whose_event_cannot_be_written_opens_nothing,
}

mod harness {
    use std::any::Any;
    use std::future::Future;
    use std::sync::atomic::{AtomicU32, Ordering};
    use std::time::{Duration, SystemTime, UNIX_EPOCH};

    use portcullis_store::SqlStore;
    use sqlx::{Connection as _, Executor as _, PgConnection};

    /// The PostgreSQL server to test against; unset means SQLite only.
    const POSTGRES_URL_VAR: &str = "PORTCULLIS_TEST_POSTGRES_URL";
    /// Enough connections for the concurrency tests to overlap.
    const MAX_CONNECTIONS: u32 = 8;
    /// A test that hangs fails instead, and still cleans up.
    const TEST_TIMEOUT: Duration = Duration::from_secs(120);

    enum Failure {
        Setup(String),
        Panic(Box<dyn Any + Send>),
    }

    /// Runs `test` on a migrated SQLite database in a fresh temporary file.
    pub async fn run_sqlite<F, Fut>(test: F)
    where
        F: FnOnce(SqlStore) -> Fut,
        Fut: Future<Output = ()> + Send + 'static,
    {
        let dir = tempfile::tempdir().expect("temporary directory");
        let url = format!("sqlite://{}", dir.path().join("conformance.db").display());
        let outcome = open_and_run(&url, test).await;
        drop(dir);
        finish(outcome);
    }

    /// Runs `test` on a migrated PostgreSQL schema of its own, dropped
    /// afterwards whatever happened. Does nothing when no server is configured;
    /// fails when one is configured but cannot be reached.
    pub async fn run_postgres<F, Fut>(name: &str, test: F)
    where
        F: FnOnce(SqlStore) -> Fut,
        Fut: Future<Output = ()> + Send + 'static,
    {
        let Some(base) = std::env::var(POSTGRES_URL_VAR).ok().filter(|u| !u.is_empty()) else {
            eprintln!("{POSTGRES_URL_VAR} is not set: PostgreSQL not tested");
            return;
        };
        let schema = schema_name(name);
        let mut admin = PgConnection::connect(&base)
            .await
            .unwrap_or_else(|e| panic!("cannot reach PostgreSQL at {POSTGRES_URL_VAR}: {e}"));
        admin
            .execute(format!(r#"CREATE SCHEMA "{schema}""#).as_str())
            .await
            .unwrap_or_else(|e| panic!("cannot create schema {schema}: {e}"));
        let outcome = open_and_run(&with_search_path(&base, &schema), test).await;
        let dropped = admin.execute(format!(r#"DROP SCHEMA "{schema}" CASCADE"#).as_str()).await;
        let _ = admin.close().await;
        finish(outcome);
        dropped.unwrap_or_else(|e| panic!("cannot drop schema {schema}: {e}"));
    }

    async fn open_and_run<F, Fut>(url: &str, test: F) -> Result<(), Failure>
    where
        F: FnOnce(SqlStore) -> Fut,
        Fut: Future<Output = ()> + Send + 'static,
    {
        let store =
            SqlStore::connect(url, MAX_CONNECTIONS).await.map_err(|e| Failure::Setup(format!("connect: {e}")))?;
        let outcome = match store.migrate().await {
            Err(e) => Err(Failure::Setup(format!("migrate: {e}"))),
            // On a task of its own, so a panic is caught and cleanup still runs.
            Ok(()) => {
                let mut task = tokio::spawn(test(store.clone()));
                match tokio::time::timeout(TEST_TIMEOUT, &mut task).await {
                    Ok(Ok(())) => Ok(()),
                    Ok(Err(e)) if e.is_panic() => Err(Failure::Panic(e.into_panic())),
                    Ok(Err(e)) => Err(Failure::Setup(format!("test task failed: {e}"))),
                    Err(_) => {
                        task.abort();
                        let _ = task.await;
                        Err(Failure::Setup(format!("timed out after {TEST_TIMEOUT:?}")))
                    }
                }
            }
        };
        store.close().await;
        outcome
    }

    fn finish(outcome: Result<(), Failure>) {
        match outcome {
            Ok(()) => {}
            Err(Failure::Setup(message)) => panic!("{message}"),
            Err(Failure::Panic(payload)) => std::panic::resume_unwind(payload),
        }
    }

    /// A schema name no other test (or run) uses at the same time.
    fn schema_name(test: &str) -> String {
        static NEXT: AtomicU32 = AtomicU32::new(0);
        let nanos = SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.subsec_nanos()).unwrap_or_default();
        let short: String = test.chars().take(30).collect();
        format!("conformance_{short}_{}_{nanos}_{}", std::process::id(), NEXT.fetch_add(1, Ordering::Relaxed))
    }

    /// The URL with `schema` first on the search path of every connection
    /// (libpq's `options`, which sqlx's PgConnectOptions reads from the URL).
    fn with_search_path(base: &str, schema: &str) -> String {
        let sep = if base.contains('?') { '&' } else { '?' };
        format!("{base}{sep}options=-c%20search_path%3D{schema}")
    }
}

// ---------------------------------------------------------------- helpers

const T0: i64 = 1_700_000_000_000;
const MINUTE: i64 = 60_000;

fn new_user(username: &str, email: &str, is_admin: bool) -> NewUser {
    NewUser {
        username: Username::parse(username).expect("valid username"),
        email: Email::parse(email).expect("valid email"),
        password_hash: format!("hash-of-{username}"),
        is_admin,
        email_verified: false,
        security_stamp: format!("stamp-of-{username}"),
        now: T0,
    }
}

/// Inserts `username` with the email `<username>@example.com`.
async fn add_user(store: &SqlStore, username: &str, is_admin: bool) -> User {
    store
        .insert_user(&new_user(username, &format!("{username}@example.com"), is_admin), None)
        .await
        .expect("insert user")
}

fn session(id: &str, user: &User, created_at: i64, expires_at: i64, remember: bool) -> Session {
    Session {
        id: id.to_owned(),
        secret_hash: format!("secret-of-{id}"),
        user_id: user.id,
        security_stamp: user.security_stamp.clone(),
        created_at,
        last_seen_at: created_at,
        expires_at,
        remember,
        ip: Some("192.0.2.7".to_owned()),
        user_agent: Some("conformance/1.0".to_owned()),
    }
}

async fn add_session(store: &SqlStore, s: &Session) {
    store.insert_session(s).await.expect("insert session");
}

async fn session_ids(store: &SqlStore, user_id: i64, now: i64) -> Vec<String> {
    store.user_sessions(user_id, now).await.expect("user sessions").into_iter().map(|s| s.id).collect()
}

async fn listed_names(store: &SqlStore, query: Option<&str>) -> Vec<String> {
    store
        .list_users(query, None, 100, T0)
        .await
        .unwrap_or_else(|e| panic!("list_users({query:?}): {e}"))
        .into_iter()
        .map(|s| s.user.username)
        .collect()
}

async fn post_ids(store: &SqlStore, author: Option<i64>, before: Option<i64>, limit: i64) -> Vec<i64> {
    store.list_posts(author, before, limit).await.expect("list posts").iter().map(|p| p.id).collect()
}

async fn is_admin(store: &SqlStore, id: i64) -> bool {
    store.user_by_id(id).await.expect("user by id").expect("user exists").is_admin
}

// ---------------------------------------------------------------- users

async fn insert_user_returns_the_stored_user(store: SqlStore) {
    let mut input = new_user("AliCe.1", "Alice.One@Example.COM", true);
    input.email_verified = true;
    let alice = store.insert_user(&input, None).await.expect("insert");
    assert!(alice.id > 0);
    assert_eq!(alice.username, "AliCe.1", "case as typed");
    assert_eq!(alice.email, "Alice.One@Example.COM", "case as typed");
    assert_eq!(alice.password_hash, "hash-of-AliCe.1");
    assert!(alice.is_admin);
    assert!(alice.email_verified);
    assert_eq!(alice.security_stamp, "stamp-of-AliCe.1");
    assert_eq!((alice.created_at, alice.updated_at), (T0, T0));
    assert_eq!(alice.last_login_at, None);

    let bob = add_user(&store, "bob", false).await;
    assert!(bob.id > alice.id, "ids grow");
    assert!(!bob.is_admin);
    assert!(!bob.email_verified);

    let found = store.user_by_id(alice.id).await.expect("by id").expect("found");
    assert_eq!(found.id, alice.id);
    assert_eq!(found.username, alice.username);
    assert_eq!(found.email, alice.email);
    assert!(found.is_admin && found.email_verified);
    assert_eq!(found.last_login_at, None);
    assert!(store.user_by_id(bob.id + 100).await.expect("by id").is_none());
}

async fn usernames_are_unique_case_insensitively(store: SqlStore) {
    add_user(&store, "Alice", false).await;
    for clash in ["Alice", "alice", "ALICE", "aLiCe"] {
        let err =
            store.insert_user(&new_user(clash, "other@example.com", false), None).await.expect_err("username is taken");
        assert!(matches!(err, StoreError::UsernameTaken), "{clash}: {err:?}");
    }
    assert!(store.username_taken("alice").await.expect("taken"));
    assert!(!store.username_taken("alicia").await.expect("taken"));
    assert!(!store.username_taken("alice@example.com").await.expect("taken"), "an email is not a username");
    // Nothing was half-inserted.
    assert_eq!(listed_names(&store, None).await, ["Alice"]);
    assert!(!store.email_taken("other@example.com").await.expect("taken"));
}

async fn emails_are_unique_case_insensitively(store: SqlStore) {
    store.insert_user(&new_user("bob", "Bob@Example.com", false), None).await.expect("insert");
    for clash in ["Bob@Example.com", "bob@example.com", "BOB@EXAMPLE.COM"] {
        let err = store.insert_user(&new_user("robert", clash, false), None).await.expect_err("email is taken");
        assert!(matches!(err, StoreError::EmailTaken), "{clash}: {err:?}");
    }
    assert!(store.email_taken("bob@example.com").await.expect("taken"));
    assert!(!store.email_taken("rob@example.com").await.expect("taken"));
    assert!(!store.email_taken("bob").await.expect("taken"));
    assert!(!store.username_taken("robert").await.expect("taken"));
}

/// Runs the two inserts at the same time and answers their results.
async fn insert_pair(store: &SqlStore, a: NewUser, b: NewUser) -> (Result<User, StoreError>, Result<User, StoreError>) {
    let barrier = Arc::new(tokio::sync::Barrier::new(2));
    let spawn = |u: NewUser| {
        let store = store.clone();
        let barrier = barrier.clone();
        tokio::spawn(async move {
            barrier.wait().await;
            store.insert_user(&u, None).await
        })
    };
    let (ta, tb) = (spawn(a), spawn(b));
    (ta.await.expect("task"), tb.await.expect("task"))
}

async fn concurrent_inserts_of_one_username_let_exactly_one_win(store: SqlStore) {
    for round in 0..10 {
        let (a, b) = insert_pair(
            &store,
            new_user(&format!("racer{round}"), &format!("a{round}@example.com"), false),
            new_user(&format!("RACER{round}"), &format!("b{round}@example.com"), false),
        )
        .await;
        match (&a, &b) {
            (Ok(_), Err(StoreError::UsernameTaken)) | (Err(StoreError::UsernameTaken), Ok(_)) => {}
            other => panic!("round {round}: expected one winner, got {other:?}"),
        }
        assert!(store.username_taken(&format!("racer{round}")).await.expect("taken"));
    }
    assert_eq!(listed_names(&store, None).await.len(), 10);
}

async fn concurrent_inserts_of_one_email_let_exactly_one_win(store: SqlStore) {
    for round in 0..10 {
        let (a, b) = insert_pair(
            &store,
            new_user(&format!("first{round}"), &format!("same{round}@example.com"), false),
            new_user(&format!("second{round}"), &format!("SAME{round}@Example.com"), false),
        )
        .await;
        match (&a, &b) {
            (Ok(_), Err(StoreError::EmailTaken)) | (Err(StoreError::EmailTaken), Ok(_)) => {}
            other => panic!("round {round}: expected one winner, got {other:?}"),
        }
    }
    assert_eq!(listed_names(&store, None).await.len(), 10);
}

async fn user_by_login_finds_normalized_username_or_email(store: SqlStore) {
    let alice = store.insert_user(&new_user("Alice", "Alice.Smith@Example.com", false), None).await.expect("insert");
    let bob = add_user(&store, "bob", false).await;
    for login in ["alice", "alice.smith@example.com"] {
        let found =
            store.user_by_login(login).await.expect("by login").unwrap_or_else(|| panic!("{login} finds alice"));
        assert_eq!(found.id, alice.id, "{login}");
        assert_eq!(found.username, "Alice");
    }
    let found = store.user_by_login("bob@example.com").await.expect("by login").expect("found");
    assert_eq!(found.id, bob.id);
    for missing in ["carol", "alice@example.com", "", "%", "ali_e"] {
        assert!(store.user_by_login(missing).await.expect("by login").is_none(), "{missing:?}");
    }
}

async fn list_users_pages_by_id(store: SqlStore) {
    let mut ids = Vec::new();
    for i in 0..7 {
        ids.push(add_user(&store, &format!("user{i}"), i == 0).await.id);
    }
    let mut seen = Vec::new();
    let mut after = None;
    loop {
        let page = store.list_users(None, after, 3, T0).await.expect("list users");
        assert!(page.len() <= 3);
        if page.is_empty() {
            break;
        }
        after = page.last().map(|s| s.user.id);
        seen.extend(page.iter().map(|s| s.user.id));
    }
    assert_eq!(seen, ids, "every user once, by id");
    let first = store.list_users(None, None, 2, T0).await.expect("list users");
    assert_eq!(first[0].user.username, "user0");
    assert!(first[0].user.is_admin);
    assert_eq!(first[0].user.email, "user0@example.com");
    assert!(first.iter().all(|s| s.locked_until.is_none()));
    assert!(store.list_users(None, Some(ids[6]), 10, T0).await.expect("list users").is_empty());
    assert!(store.list_users(Some(""), None, 0, T0).await.expect("list users").is_empty(), "limit 0");
    assert_eq!(listed_names(&store, Some("")).await.len(), 7, "an empty query is no filter");
}

async fn list_users_shows_current_locks(store: SqlStore) {
    let alice = add_user(&store, "alice", false).await;
    let bob = add_user(&store, "bob", false).await;
    let carol = add_user(&store, "carol", false).await;
    let until = T0 + 15 * MINUTE;
    store.lock(&format!("user:{}", alice.id), T0, until, 5).await.expect("lock");
    store.lock(&format!("user:{}", bob.id), T0 - 30 * MINUTE, T0 - MINUTE, 5).await.expect("lock");
    // A failed login under the name does not lock the account row.
    store.lock("name:carol", T0, until, 5).await.expect("lock");
    let list = store.list_users(None, None, 10, T0).await.expect("list users");
    let locks: Vec<(i64, Option<i64>)> = list.iter().map(|s| (s.user.id, s.locked_until)).collect();
    assert_eq!(locks, [(alice.id, Some(until)), (bob.id, None), (carol.id, None)]);
    let later = store.list_users(None, None, 10, until).await.expect("list users");
    assert!(later.iter().all(|s| s.locked_until.is_none()), "lock passed");
}

async fn list_users_searches_username_and_email_case_insensitively(store: SqlStore) {
    store.insert_user(&new_user("Alice", "alice@wonderland.example", false), None).await.expect("insert");
    store.insert_user(&new_user("Malice", "m@example.com", false), None).await.expect("insert");
    store.insert_user(&new_user("bob", "Bob.ALICEson@Example.org", false), None).await.expect("insert");
    store.insert_user(&new_user("carol", "carol@example.net", false), None).await.expect("insert");
    assert_eq!(listed_names(&store, Some("alice")).await, ["Alice", "Malice", "bob"]);
    assert_eq!(listed_names(&store, Some("ALICE")).await, ["Alice", "Malice", "bob"]);
    assert_eq!(listed_names(&store, Some("WONDER")).await, ["Alice"]);
    assert_eq!(listed_names(&store, Some("EXAMPLE")).await.len(), 4);
    assert_eq!(listed_names(&store, Some(".org")).await, ["bob"]);
    assert_eq!(listed_names(&store, Some("Carol@Example.Net")).await, ["carol"]);
    assert!(listed_names(&store, Some("dave")).await.is_empty());
}

async fn list_users_search_matches_metacharacters_literally(store: SqlStore) {
    for (name, email) in [
        ("under_score", "u1@example.com"),
        ("underxscore", "u2@example.com"),
        ("percent", "per%cent@example.com"),
        ("perxcent", "perxcent@example.com"),
        ("quote", "o'brien@example.com"),
        ("noquote", "obrien@example.com"),
        ("backslash", r#""back\slash"@example.com"#),
        ("backxslash", "backxslash@example.com"),
    ] {
        store.insert_user(&new_user(name, email, false), None).await.unwrap_or_else(|e| panic!("insert {name}: {e}"));
    }
    let cases: &[(&str, &[&str])] = &[
        ("_", &["under_score"]),
        ("r_s", &["under_score"]),
        ("%", &["percent"]),
        ("r%c", &["percent"]),
        ("%%", &[]),
        ("'", &["quote"]),
        ("o'b", &["quote"]),
        ("''", &[]),
        ("\\", &["backslash"]),
        ("k\\s", &["backslash"]),
        ("\\\\", &[]),
        ("\\%", &[]),
        ("\\_", &[]),
        ("k\\", &["backslash"]),
        ("' OR '1'='1", &[]),
        ("\"", &["backslash"]),
        ("[a-z]", &[]),
        ("*", &[]),
        ("rxs", &["underxscore"]),
        ("rxc", &["perxcent"]),
        ("kxs", &["backxslash"]),
    ];
    for (query, expected) in cases {
        assert_eq!(listed_names(&store, Some(query)).await, *expected, "query {query:?}");
    }
}

async fn list_users_search_pages_by_id(store: SqlStore) {
    let mut matching = Vec::new();
    for i in 0..9 {
        let name = if i % 3 == 0 { format!("team_{i}") } else { format!("teamx{i}") };
        let user = add_user(&store, &name, false).await;
        if i % 3 == 0 {
            matching.push(user.id);
        }
    }
    let first = store.list_users(Some("M_"), None, 2, T0).await.expect("list users");
    let first: Vec<i64> = first.iter().map(|s| s.user.id).collect();
    assert_eq!(first, matching[..2]);
    let second = store.list_users(Some("M_"), Some(first[1]), 2, T0).await.expect("list users");
    let second: Vec<i64> = second.iter().map(|s| s.user.id).collect();
    assert_eq!(second, matching[2..]);
}

async fn password_updates_keep_or_change_the_stamp(store: SqlStore) {
    let alice = add_user(&store, "alice", false).await;
    let bob = add_user(&store, "bob", false).await;

    store.update_password_hash(alice.id, "rehashed", T0 + 1).await.expect("update hash");
    let a = store.user_by_id(alice.id).await.expect("get").expect("found");
    assert_eq!(a.password_hash, "rehashed");
    assert_eq!(a.security_stamp, alice.security_stamp, "an upgrade keeps sessions");
    assert_eq!((a.created_at, a.updated_at), (T0, T0 + 1));

    store.set_password(alice.id, "new-hash", "new-stamp", T0 + 2).await.expect("set password");
    let a = store.user_by_id(alice.id).await.expect("get").expect("found");
    assert_eq!(a.password_hash, "new-hash");
    assert_eq!(a.security_stamp, "new-stamp");
    assert_eq!(a.updated_at, T0 + 2);

    let b = store.user_by_id(bob.id).await.expect("get").expect("found");
    assert_eq!(b.password_hash, bob.password_hash, "other users untouched");
    assert_eq!(b.security_stamp, bob.security_stamp);
    assert_eq!(b.updated_at, T0);

    // Unknown ids are no error.
    store.update_password_hash(bob.id + 100, "x", T0).await.expect("update hash");
    store.set_password(bob.id + 100, "x", "y", T0).await.expect("set password");
}

async fn set_admin_grants_and_revokes(store: SqlStore) {
    let root = add_user(&store, "root", true).await;
    let alice = add_user(&store, "alice", false).await;
    assert_eq!(store.count_admins().await.expect("count"), 1);

    assert!(store.set_admin(alice.id, true, "s1", T0 + 1, None).await.expect("grant"));
    let a = store.user_by_id(alice.id).await.expect("get").expect("found");
    assert!(a.is_admin);
    assert_eq!(a.security_stamp, "s1");
    assert_eq!(a.updated_at, T0 + 1);
    assert_eq!(store.count_admins().await.expect("count"), 2);

    assert!(store.set_admin(root.id, false, "s2", T0 + 2, None).await.expect("revoke"));
    let r = store.user_by_id(root.id).await.expect("get").expect("found");
    assert!(!r.is_admin);
    assert_eq!(r.security_stamp, "s2");
    assert_eq!(store.count_admins().await.expect("count"), 1);

    // Granting twice, and revoking a non-admin, change nothing but the stamp.
    assert!(store.set_admin(alice.id, true, "s3", T0 + 3, None).await.expect("grant"));
    assert!(store.set_admin(root.id, false, "s4", T0 + 4, None).await.expect("revoke"));
    assert_eq!(store.count_admins().await.expect("count"), 1);
    assert!(is_admin(&store, alice.id).await);
    assert!(!is_admin(&store, root.id).await);

    assert!(!store.set_admin(alice.id + 100, true, "s5", T0, None).await.expect("unknown user"), "no such user");
}

async fn set_admin_refuses_to_demote_the_last_admin(store: SqlStore) {
    let root = add_user(&store, "root", true).await;
    let alice = add_user(&store, "alice", false).await;
    assert!(!store.set_admin(root.id, false, "s1", T0 + 1, None).await.expect("revoke"));
    let r = store.user_by_id(root.id).await.expect("get").expect("found");
    assert!(r.is_admin);
    assert_eq!(r.security_stamp, root.security_stamp, "nothing changed");
    assert_eq!(r.updated_at, T0);
    assert_eq!(store.count_admins().await.expect("count"), 1);

    // Revoking a user who is no admin is no threat to the last admin.
    assert!(store.set_admin(alice.id, false, "s2", T0 + 2, None).await.expect("revoke"));
    assert_eq!(store.count_admins().await.expect("count"), 1);
}

async fn set_admin_revokes_a_non_admin_when_there_is_no_admin(store: SqlStore) {
    let alice = add_user(&store, "alice", false).await;
    assert_eq!(store.count_admins().await.expect("count"), 0);
    assert!(store.set_admin(alice.id, false, "s1", T0 + 1, None).await.expect("revoke"));
    let a = store.user_by_id(alice.id).await.expect("get").expect("found");
    assert!(!a.is_admin);
    assert_eq!(a.security_stamp, "s1");
    assert!(store.delete_user(alice.id, None).await.expect("delete"));
}

/// Makes `a` and `b` the only two admins.
async fn only_admins(store: &SqlStore, a: i64, b: i64) {
    assert!(store.set_admin(a, true, "grant", T0, None).await.expect("grant"));
    assert!(store.set_admin(b, true, "grant", T0, None).await.expect("grant"));
    let others = store.list_users(None, None, 1000, T0).await.expect("list users");
    for s in others {
        if s.user.is_admin && s.user.id != a && s.user.id != b {
            assert!(store.set_admin(s.user.id, false, "revoke", T0, None).await.expect("revoke"));
        }
    }
    assert_eq!(store.count_admins().await.expect("count"), 2);
}

async fn concurrent_demotions_leave_an_admin(store: SqlStore) {
    for round in 0..20 {
        let a = add_user(&store, &format!("adm-a{round}"), false).await.id;
        let b = add_user(&store, &format!("adm-b{round}"), false).await.id;
        only_admins(&store, a, b).await;
        let barrier = Arc::new(tokio::sync::Barrier::new(2));
        let demote = |id: i64| {
            let store = store.clone();
            let barrier = barrier.clone();
            tokio::spawn(async move {
                barrier.wait().await;
                store.set_admin(id, false, "demoted", T0 + 1, None).await
            })
        };
        let (ta, tb) = (demote(a), demote(b));
        let ra = ta.await.expect("task").expect("demote a");
        let rb = tb.await.expect("task").expect("demote b");
        let admins = store.count_admins().await.expect("count");
        assert_eq!(admins, 1, "round {round}: ({ra}, {rb}) left {admins} admins");
        assert!(ra != rb, "round {round}: exactly one demotion succeeds");
        assert_eq!(is_admin(&store, a).await, !ra);
        assert_eq!(is_admin(&store, b).await, !rb);
    }
}

async fn delete_user_cascades_to_posts_and_sessions(store: SqlStore) {
    let alice = add_user(&store, "alice", false).await;
    let bob = add_user(&store, "bob", false).await;
    let a1 = store.insert_post(alice.id, "a1", "x", T0).await.expect("post");
    let b1 = store.insert_post(bob.id, "b1", "x", T0).await.expect("post");
    let a2 = store.insert_post(alice.id, "a2", "x", T0).await.expect("post");
    add_session(&store, &session("sa1", &alice, T0, T0 + MINUTE, false)).await;
    add_session(&store, &session("sa2", &alice, T0, T0 + MINUTE, true)).await;
    add_session(&store, &session("sb1", &bob, T0, T0 + MINUTE, false)).await;
    store.lock(&format!("user:{}", alice.id), T0, T0 + MINUTE, 5).await.expect("lock");

    assert!(store.delete_user(alice.id, None).await.expect("delete"));
    assert!(store.user_by_id(alice.id).await.expect("get").is_none());
    assert!(!store.username_taken("alice").await.expect("taken"));
    assert!(store.post_by_id(a1).await.expect("post").is_none());
    assert!(store.post_by_id(a2).await.expect("post").is_none());
    assert!(store.session_with_user("sa1").await.expect("session").is_none());
    assert!(store.session_with_user("sa2").await.expect("session").is_none());
    assert!(session_ids(&store, alice.id, T0).await.is_empty());

    assert!(store.post_by_id(b1).await.expect("post").is_some());
    assert!(store.session_with_user("sb1").await.expect("session").is_some());
    assert_eq!(post_ids(&store, None, None, 10).await, [b1]);

    assert!(!store.delete_user(alice.id, None).await.expect("delete again"));
    // The name is free again.
    add_user(&store, "alice", false).await;
}

async fn delete_user_refuses_the_last_admin(store: SqlStore) {
    let root = add_user(&store, "root", true).await;
    let alice = add_user(&store, "alice", false).await;
    let post = store.insert_post(root.id, "t", "c", T0).await.expect("post");
    add_session(&store, &session("sr", &root, T0, T0 + MINUTE, false)).await;

    assert!(!store.delete_user(root.id, None).await.expect("delete"));
    assert!(store.user_by_id(root.id).await.expect("get").is_some());
    assert!(store.post_by_id(post).await.expect("post").is_some());
    assert!(store.session_with_user("sr").await.expect("session").is_some());

    assert!(store.set_admin(alice.id, true, "s", T0, None).await.expect("grant"));
    assert!(store.delete_user(root.id, None).await.expect("delete"));
    assert_eq!(store.count_admins().await.expect("count"), 1);
    assert!(!store.delete_user(alice.id, None).await.expect("delete"));
    assert!(!store.delete_user(root.id + 100, None).await.expect("unknown"));
}

async fn concurrent_deletion_and_demotion_leave_an_admin(store: SqlStore) {
    for round in 0..20 {
        let a = add_user(&store, &format!("adm-a{round}"), false).await.id;
        let b = add_user(&store, &format!("adm-b{round}"), false).await.id;
        only_admins(&store, a, b).await;
        let barrier = Arc::new(tokio::sync::Barrier::new(2));
        let (s1, s2) = (store.clone(), store.clone());
        let (b1, b2) = (barrier.clone(), barrier.clone());
        let ta = tokio::spawn(async move {
            b1.wait().await;
            s1.delete_user(a, None).await
        });
        let tb = tokio::spawn(async move {
            b2.wait().await;
            s2.set_admin(b, false, "demoted", T0 + 1, None).await
        });
        let deleted = ta.await.expect("task").expect("delete a");
        let demoted = tb.await.expect("task").expect("demote b");
        let admins = store.count_admins().await.expect("count");
        assert_eq!(admins, 1, "round {round}: (deleted {deleted}, demoted {demoted}) left {admins} admins");
        assert!(deleted != demoted, "round {round}: exactly one succeeds");
        assert_eq!(store.user_by_id(a).await.expect("get").is_none(), deleted);
    }
}

async fn ping_answers(store: SqlStore) {
    store.ping().await.expect("ping");
    assert_eq!(store.count_admins().await.expect("count"), 0);
}

// ---------------------------------------------------------------- sessions

async fn session_round_trips_with_its_user(store: SqlStore) {
    let alice = add_user(&store, "Alice", true).await;
    let s = session("sid-1", &alice, T0, T0 + 60 * MINUTE, true);
    add_session(&store, &s).await;
    let mut bare = session("sid-2", &alice, T0 + 1, T0 + MINUTE, false);
    bare.ip = None;
    bare.user_agent = None;
    add_session(&store, &bare).await;

    let found = store.session_with_user("sid-1").await.expect("session").expect("found");
    let (got, user) = (&found.session, &found.user);
    assert_eq!(got.id, "sid-1");
    assert_eq!(got.secret_hash, "secret-of-sid-1");
    assert_eq!(got.user_id, alice.id);
    assert_eq!(got.security_stamp, alice.security_stamp);
    assert_eq!((got.created_at, got.last_seen_at, got.expires_at), (T0, T0, T0 + 60 * MINUTE));
    assert!(got.remember);
    assert_eq!(got.ip.as_deref(), Some("192.0.2.7"));
    assert_eq!(got.user_agent.as_deref(), Some("conformance/1.0"));
    assert_eq!(user.id, alice.id);
    assert_eq!(user.username, "Alice");
    assert_eq!(user.email, "Alice@example.com");
    assert!(user.is_admin);
    assert_eq!(user.created_at, T0);
    assert_eq!(user.security_stamp, alice.security_stamp);

    let found = store.session_with_user("sid-2").await.expect("session").expect("found");
    let (got, _) = (&found.session, &found.user);
    assert!(!got.remember);
    assert_eq!((got.ip.as_deref(), got.user_agent.as_deref()), (None, None));
    assert_eq!(got.created_at, T0 + 1);

    for missing in ["sid-3", "", "SID-1", "sid-%"] {
        assert!(store.session_with_user(missing).await.expect("session").is_none(), "{missing:?}");
    }
}

async fn session_needs_an_existing_user_and_a_unique_id(store: SqlStore) {
    let alice = add_user(&store, "alice", false).await;
    add_session(&store, &session("dup", &alice, T0, T0 + MINUTE, false)).await;
    assert!(
        store.insert_session(&session("dup", &alice, T0, T0 + MINUTE, false)).await.is_err(),
        "session ids are unique"
    );
    let mut ghost = session("ghost", &alice, T0, T0 + MINUTE, false);
    ghost.user_id = alice.id + 100;
    assert!(store.insert_session(&ghost).await.is_err(), "a session needs a user");
    assert!(store.session_with_user("ghost").await.expect("session").is_none());
}

async fn touch_session_sets_last_seen(store: SqlStore) {
    let alice = add_user(&store, "alice", false).await;
    add_session(&store, &session("s1", &alice, T0, T0 + 60 * MINUTE, false)).await;
    add_session(&store, &session("s2", &alice, T0, T0 + 60 * MINUTE, false)).await;
    store.touch_session("s1", T0, T0 + 5 * MINUTE).await.expect("touch");
    store.touch_session("s1", T0, T0 + 6 * MINUTE).await.expect("a parallel request's touch");
    let found = store.session_with_user("s1").await.expect("session").expect("found");
    let (s1, _) = (&found.session, &found.user);
    assert_eq!(s1.last_seen_at, T0 + 5 * MINUTE);
    assert_eq!((s1.created_at, s1.expires_at), (T0, T0 + 60 * MINUTE));
    let found = store.session_with_user("s2").await.expect("session").expect("found");
    let (s2, _) = (&found.session, &found.user);
    assert_eq!(s2.last_seen_at, T0);
    store.touch_session("missing", T0, T0).await.expect("no error");
}

async fn delete_session_deletes_only_the_owners_session(store: SqlStore) {
    let alice = add_user(&store, "alice", false).await;
    let bob = add_user(&store, "bob", false).await;
    add_session(&store, &session("sa", &alice, T0, T0 + MINUTE, false)).await;
    add_session(&store, &session("sa2", &alice, T0, T0 + MINUTE, false)).await;
    add_session(&store, &session("sb", &bob, T0, T0 + MINUTE, false)).await;

    assert!(!store.delete_session(bob.id, "sa", None).await.expect("delete"), "not bob's session");
    assert!(store.session_with_user("sa").await.expect("session").is_some());
    assert!(store.delete_session(alice.id, "sa", None).await.expect("delete"));
    assert!(store.session_with_user("sa").await.expect("session").is_none());
    assert!(!store.delete_session(alice.id, "sa", None).await.expect("delete again"));
    assert_eq!(session_ids(&store, alice.id, T0).await, ["sa2"]);
    assert_eq!(session_ids(&store, bob.id, T0).await, ["sb"]);
}

async fn delete_user_sessions_keeps_the_exception(store: SqlStore) {
    let alice = add_user(&store, "alice", false).await;
    let bob = add_user(&store, "bob", false).await;
    for (i, id) in ["a1", "a2", "a3", "a4"].iter().enumerate() {
        add_session(&store, &session(id, &alice, T0 + i as i64, T0 + MINUTE, false)).await;
    }
    add_session(&store, &session("b1", &bob, T0, T0 + MINUTE, false)).await;

    assert_eq!(store.delete_user_sessions(alice.id, Some("a2"), None).await.expect("delete"), 3);
    assert_eq!(session_ids(&store, alice.id, T0).await, ["a2"]);
    assert_eq!(
        store.delete_user_sessions(alice.id, Some("b1"), None).await.expect("delete"),
        1,
        "another user's session is no exception"
    );
    assert_eq!(session_ids(&store, bob.id, T0).await, ["b1"]);
    assert_eq!(store.delete_user_sessions(alice.id, None, None).await.expect("delete"), 0);
    add_session(&store, &session("a5", &alice, T0, T0 + MINUTE, false)).await;
    add_session(&store, &session("a6", &alice, T0, T0 + MINUTE, false)).await;
    assert_eq!(store.delete_user_sessions(alice.id, None, None).await.expect("delete"), 2);
    assert!(session_ids(&store, alice.id, T0).await.is_empty());
    assert_eq!(session_ids(&store, bob.id, T0).await, ["b1"]);
}

async fn user_sessions_lists_live_sessions_newest_first(store: SqlStore) {
    let alice = add_user(&store, "alice", false).await;
    let bob = add_user(&store, "bob", false).await;
    add_session(&store, &session("old", &alice, T0, T0 + 60 * MINUTE, false)).await;
    add_session(&store, &session("new", &alice, T0 + 2 * MINUTE, T0 + 60 * MINUTE, true)).await;
    add_session(&store, &session("mid", &alice, T0 + MINUTE, T0 + 60 * MINUTE, false)).await;
    add_session(&store, &session("gone", &alice, T0 + 3 * MINUTE, T0 + 10 * MINUTE, false)).await;
    add_session(&store, &session("bobs", &bob, T0, T0 + 60 * MINUTE, false)).await;

    assert_eq!(session_ids(&store, alice.id, T0 + 5 * MINUTE).await, ["gone", "new", "mid", "old"]);
    // A session whose expiry is now is over.
    assert_eq!(session_ids(&store, alice.id, T0 + 10 * MINUTE).await, ["new", "mid", "old"]);
    let listed = store.user_sessions(alice.id, T0 + 10 * MINUTE).await.expect("sessions");
    assert!(listed[0].remember);
    assert_eq!(listed[0].secret_hash, "secret-of-new");
    assert!(session_ids(&store, alice.id, T0 + 60 * MINUTE).await.is_empty());
    assert_eq!(session_ids(&store, bob.id, T0).await, ["bobs"]);
    assert!(session_ids(&store, bob.id + 100, T0).await.is_empty());
}

async fn purge_sessions_removes_expired_and_idle_sessions(store: SqlStore) {
    let alice = add_user(&store, "alice", false).await;
    let now = T0 + 120 * MINUTE;
    let idle_cutoff = now - 30 * MINUTE;
    let add = async |id: &str, last_seen_at: i64, expires_at: i64, remember: bool| {
        let mut s = session(id, &alice, T0, expires_at, remember);
        s.last_seen_at = last_seen_at;
        add_session(&store, &s).await;
    };
    let far = now + 1000 * MINUTE;
    add("expired", now - MINUTE, now - 1, false).await;
    add("expires-now", now - MINUTE, now, true).await;
    add("expired-remembered", now - MINUTE, now - MINUTE, true).await;
    add("idle", idle_cutoff - 1, far, false).await;
    add("idle-remembered", idle_cutoff - 1, far, true).await;
    add("at-cutoff", idle_cutoff, far, false).await;
    add("active", now - MINUTE, now + 1, false).await;

    assert_eq!(store.purge_sessions(now, idle_cutoff).await.expect("purge"), 4);
    let mut left = session_ids(&store, alice.id, now).await;
    left.sort();
    assert_eq!(left, ["active", "at-cutoff", "idle-remembered"]);
    assert_eq!(store.purge_sessions(now, idle_cutoff).await.expect("purge"), 0);
}

// ---------------------------------------------------------------- login throttle

async fn reserve(store: &SqlStore, key: &str, now: i64, threshold: i64) -> i64 {
    store.reserve_attempt(key, now, threshold, now + 15 * MINUTE, now - 15 * MINUTE).await.expect("reserve attempt")
}

async fn reserve_attempt_counts_and_locks_at_the_threshold(store: SqlStore) {
    let key = "name:alice";
    assert_eq!(reserve(&store, key, T0, 3).await, 1);
    assert_eq!(store.locked_until(key, T0).await.expect("locked"), None);
    assert_eq!(reserve(&store, key, T0 + 1, 3).await, 2);
    assert_eq!(store.locked_until(key, T0 + 1).await.expect("locked"), None);
    assert_eq!(reserve(&store, key, T0 + 2, 3).await, 3);
    let until = T0 + 2 + 15 * MINUTE;
    assert_eq!(
        store.locked_until(key, T0 + 2).await.expect("locked"),
        Some(until),
        "locked when the count reaches the threshold"
    );
    // Further attempts count on but do not extend the lock.
    assert_eq!(reserve(&store, key, T0 + 3, 3).await, 4);
    assert_eq!(reserve(&store, key, T0 + MINUTE, 3).await, 5);
    assert_eq!(store.locked_until(key, T0 + MINUTE).await.expect("locked"), Some(until));
    assert_eq!(store.locked_until(key, until).await.expect("locked"), None);
    // Keys count apart.
    assert_eq!(reserve(&store, "name:bob", T0 + 3, 3).await, 1);
    assert_eq!(reserve(&store, "name:ALICE", T0 + 3, 3).await, 1);
    assert_eq!(store.locked_until("name:bob", T0).await.expect("locked"), None);
    assert_eq!(store.locked_until("unknown", T0).await.expect("locked"), None);
}

async fn reserve_attempt_with_threshold_one_locks_at_once(store: SqlStore) {
    assert_eq!(reserve(&store, "k", T0, 1).await, 1);
    assert_eq!(store.locked_until("k", T0).await.expect("locked"), Some(T0 + 15 * MINUTE));
    assert_eq!(reserve(&store, "k", T0 + 1, 1).await, 2);
    // After the lock, the window restarts and locks again at once.
    let later = T0 + 16 * MINUTE;
    assert_eq!(reserve(&store, "k", later, 1).await, 1);
    assert_eq!(store.locked_until("k", later).await.expect("locked"), Some(later + 15 * MINUTE));
}

async fn reserve_attempt_restarts_after_the_lock_passes(store: SqlStore) {
    let key = "user:1";
    for n in 1..=3 {
        assert_eq!(reserve(&store, key, T0, 3).await, n);
    }
    let until = T0 + 15 * MINUTE;
    assert_eq!(store.locked_until(key, T0).await.expect("locked"), Some(until));
    // One millisecond before the lock ends, it still counts on.
    assert_eq!(reserve(&store, key, until - 1, 3).await, 4);
    // Once it has passed (at `locked_until` itself), counting starts again.
    assert_eq!(reserve(&store, key, until, 3).await, 1);
    assert_eq!(store.locked_until(key, until).await.expect("locked"), None);
    assert_eq!(reserve(&store, key, until + 1, 3).await, 2);
    assert_eq!(reserve(&store, key, until + 2, 3).await, 3);
    assert_eq!(
        store.locked_until(key, until + 2).await.expect("locked"),
        Some(until + 2 + 15 * MINUTE),
        "locks again at the threshold"
    );
}

async fn reserve_attempt_restarts_when_the_window_has_passed(store: SqlStore) {
    let key = "name:carol";
    let window = 15 * MINUTE;
    assert_eq!(store.reserve_attempt(key, T0, 3, T0 + window, T0 - window).await.expect("r"), 1);
    assert_eq!(store.reserve_attempt(key, T0 + 1, 3, T0 + 1 + window, T0 + 1 - window).await.expect("r"), 2);
    // Last attempt exactly at the window's start: still in it.
    let now = T0 + 1 + window;
    assert_eq!(store.reserve_attempt(key, now, 3, now + window, now - window).await.expect("r"), 3);
    assert_eq!(store.locked_until(key, now).await.expect("locked"), Some(now + window));

    let other = "name:dave";
    assert_eq!(store.reserve_attempt(other, T0, 3, T0 + window, T0 - window).await.expect("r"), 1);
    assert_eq!(store.reserve_attempt(other, T0 + 1, 3, T0 + 1 + window, T0 + 1 - window).await.expect("r"), 2);
    // Last attempt one millisecond before the window: a new window.
    let now = T0 + 2 + window;
    assert_eq!(store.reserve_attempt(other, now, 3, now + window, now - window).await.expect("r"), 1);
    assert_eq!(store.locked_until(other, now).await.expect("locked"), None);
    assert_eq!(store.reserve_attempt(other, now + 1, 3, now + 1 + window, now + 1 - window).await.expect("r"), 2);

    // A locked key does not restart because its attempts are old: only the
    // lock's end restarts it.
    store.lock("name:erin", T0, T0 + 100 * MINUTE, 3).await.expect("lock");
    let now = T0 + 50 * MINUTE;
    assert_eq!(store.reserve_attempt("name:erin", now, 3, now + window, now - window).await.expect("r"), 5);
    assert_eq!(store.locked_until("name:erin", now).await.expect("locked"), Some(T0 + 100 * MINUTE));
}

async fn concurrent_reserve_attempts_count_each_attempt_once(store: SqlStore) {
    let threshold = 5;
    let barrier = Arc::new(tokio::sync::Barrier::new(50));
    let mut tasks = JoinSet::new();
    for i in 0..50 {
        let store = store.clone();
        let barrier = barrier.clone();
        tasks.spawn(async move {
            barrier.wait().await;
            let now = T0 + i;
            store.reserve_attempt("name:target", now, threshold, now + 15 * MINUTE, now - 15 * MINUTE).await
        });
    }
    let mut counts = Vec::new();
    while let Some(joined) = tasks.join_next().await {
        counts.push(joined.expect("task").expect("reserve attempt"));
    }
    counts.sort_unstable();
    assert_eq!(counts, (1..=50).collect::<Vec<i64>>(), "each count exactly once");
    assert_eq!(counts.iter().filter(|&&n| n <= threshold).count(), 5, "no more tries than the threshold");
    let until = store.locked_until("name:target", T0 + 50).await.expect("locked").expect("locked after the burst");
    assert!((T0 + 15 * MINUTE..T0 + 50 + 15 * MINUTE).contains(&until), "{until}");
}

async fn lock_locks_until_the_given_time(store: SqlStore) {
    let until = T0 + 30 * MINUTE;
    store.lock("user:7", T0, until, 5).await.expect("lock");
    assert_eq!(store.locked_until("user:7", T0).await.expect("locked"), Some(until));
    assert_eq!(store.locked_until("user:7", until - 1).await.expect("locked"), Some(until));
    assert_eq!(store.locked_until("user:7", until).await.expect("locked"), None);
    // Any attempt while locked is over the threshold.
    assert!(reserve(&store, "user:7", T0 + 1, 5).await > 5);

    // Locking a key with attempts replaces its state.
    assert_eq!(reserve(&store, "user:8", T0, 5).await, 1);
    store.lock("user:8", T0 + 1, until, 5).await.expect("lock");
    assert_eq!(store.locked_until("user:8", T0 + 1).await.expect("locked"), Some(until));
    assert_eq!(reserve(&store, "user:8", T0 + 2, 5).await, 7);
    // Locking again moves the end.
    store.lock("user:8", T0 + 3, until + MINUTE, 5).await.expect("lock");
    assert_eq!(store.locked_until("user:8", T0 + 3).await.expect("locked"), Some(until + MINUTE));
    // A lock in the past locks nothing, and the next attempt starts afresh.
    store.lock("user:9", T0 - 2 * MINUTE, T0 - MINUTE, 5).await.expect("lock");
    assert_eq!(store.locked_until("user:9", T0).await.expect("locked"), None);
    assert_eq!(reserve(&store, "user:9", T0, 5).await, 1);
}

async fn clear_attempts_forgets_only_the_given_keys(store: SqlStore) {
    for key in ["name:a", "name:b", "user:1"] {
        assert_eq!(reserve(&store, key, T0, 5).await, 1);
        assert_eq!(reserve(&store, key, T0, 5).await, 2);
    }
    store.lock("user:2", T0, T0 + MINUTE, 5).await.expect("lock");
    store.clear_attempts(&["name:a".to_owned(), "user:2".to_owned(), "name:none".to_owned()]).await.expect("clear");
    assert_eq!(store.locked_until("user:2", T0).await.expect("locked"), None);
    assert_eq!(reserve(&store, "name:a", T0, 5).await, 1);
    assert_eq!(reserve(&store, "user:2", T0, 5).await, 1);
    assert_eq!(reserve(&store, "name:b", T0, 5).await, 3);
    assert_eq!(reserve(&store, "user:1", T0, 5).await, 3);
    store.clear_attempts(&[]).await.expect("clear nothing");
    assert_eq!(reserve(&store, "name:b", T0, 5).await, 4);
}

// ---------------------------------------------------------------- posts

async fn post_round_trips_with_its_author(store: SqlStore) {
    let alice = add_user(&store, "Alice", false).await;
    let title = "Hello, 'world' — 100% _real_ \\o/";
    let content = "Line one\nLine two: <b>not html</b> \u{1F600}";
    let id = store.insert_post(alice.id, title, content, T0).await.expect("insert post");
    assert!(id > 0);
    let post = store.post_by_id(id).await.expect("get").expect("found");
    assert_eq!(post.id, id);
    assert_eq!(post.author_id, alice.id);
    assert_eq!(post.author, "Alice");
    assert_eq!(post.title, title);
    assert_eq!(post.content, content);
    assert_eq!((post.created_at, post.updated_at), (T0, T0));
    let next = store.insert_post(alice.id, "t", "c", T0).await.expect("insert");
    assert!(next > id, "ids grow");
    assert!(store.post_by_id(next + 100).await.expect("get").is_none());
    assert!(store.insert_post(alice.id + 100, "t", "c", T0).await.is_err(), "a post needs an author");
}

async fn update_post_changes_title_content_and_time(store: SqlStore) {
    let alice = add_user(&store, "alice", false).await;
    let id = store.insert_post(alice.id, "old", "old body", T0).await.expect("insert");
    let other = store.insert_post(alice.id, "other", "body", T0).await.expect("insert");
    store.update_post(id, "new", "new body", T0 + MINUTE).await.expect("update");
    let post = store.post_by_id(id).await.expect("get").expect("found");
    assert_eq!((post.title.as_str(), post.content.as_str()), ("new", "new body"));
    assert_eq!((post.created_at, post.updated_at), (T0, T0 + MINUTE));
    assert_eq!(post.author_id, alice.id);
    let untouched = store.post_by_id(other).await.expect("get").expect("found");
    assert_eq!((untouched.title.as_str(), untouched.updated_at), ("other", T0));
    store.update_post(other + 100, "x", "y", T0).await.expect("unknown post is no error");
}

async fn delete_post_removes_only_that_post(store: SqlStore) {
    let alice = add_user(&store, "alice", false).await;
    let a = store.insert_post(alice.id, "a", "a", T0).await.expect("insert");
    let b = store.insert_post(alice.id, "b", "b", T0).await.expect("insert");
    store.delete_post(a).await.expect("delete");
    assert!(store.post_by_id(a).await.expect("get").is_none());
    assert!(store.post_by_id(b).await.expect("get").is_some());
    store.delete_post(a).await.expect("deleting twice is no error");
    assert_eq!(post_ids(&store, None, None, 10).await, [b]);
    assert!(store.user_by_id(alice.id).await.expect("get").is_some());
}

async fn list_posts_pages_newest_first(store: SqlStore) {
    let alice = add_user(&store, "alice", false).await;
    let bob = add_user(&store, "Bob", false).await;
    let mut ids = Vec::new();
    for i in 0..7 {
        let author = if i % 2 == 0 { &alice } else { &bob };
        ids.push(store.insert_post(author.id, &format!("post {i}"), "body", T0 + i).await.expect("insert"));
    }
    let newest_first: Vec<i64> = ids.iter().rev().copied().collect();
    assert_eq!(post_ids(&store, None, None, 100).await, newest_first);

    let mut seen = Vec::new();
    let mut before = None;
    loop {
        let page = post_ids(&store, None, before, 3).await;
        assert!(page.len() <= 3);
        let Some(&last) = page.last() else { break };
        seen.extend(page);
        before = Some(last);
    }
    assert_eq!(seen, newest_first, "every post once, newest first");

    let posts = store.list_posts(None, None, 2).await.expect("list");
    assert_eq!(posts[0].author, "alice");
    assert_eq!(posts[0].title, "post 6");
    assert_eq!(posts[1].author, "Bob");
    assert_eq!(posts[1].author_id, bob.id);
    assert!(post_ids(&store, None, Some(ids[0]), 10).await.is_empty());
    assert!(post_ids(&store, None, None, 0).await.is_empty());
}

async fn list_posts_of_one_author(store: SqlStore) {
    let alice = add_user(&store, "alice", false).await;
    let bob = add_user(&store, "bob", false).await;
    let carol = add_user(&store, "carol", false).await;
    let mut alices = Vec::new();
    let mut bobs = Vec::new();
    for i in 0..6 {
        let author = if i % 3 == 0 { &bob } else { &alice };
        let id = store.insert_post(author.id, "t", "c", T0 + i).await.expect("insert");
        if author.id == alice.id {
            alices.push(id);
        } else {
            bobs.push(id);
        }
    }
    alices.reverse();
    bobs.reverse();
    assert_eq!(post_ids(&store, Some(alice.id), None, 100).await, alices);
    assert_eq!(post_ids(&store, Some(bob.id), None, 100).await, bobs);
    assert!(post_ids(&store, Some(carol.id), None, 100).await.is_empty());

    let first = post_ids(&store, Some(alice.id), None, 2).await;
    assert_eq!(first, alices[..2]);
    let rest = post_ids(&store, Some(alice.id), first.last().copied(), 10).await;
    assert_eq!(rest, alices[2..]);
    let posts = store.list_posts(Some(bob.id), None, 10).await.expect("list");
    assert!(posts.iter().all(|p| p.author == "bob" && p.author_id == bob.id));

    let seen: HashSet<i64> = post_ids(&store, None, None, 100).await.into_iter().collect();
    assert_eq!(seen.len(), 6);
}

// ---------------------------------------------------------------- audit

fn event(kind: &str, user_id: Option<i64>) -> AuditEvent {
    AuditEvent {
        at: T0,
        kind: kind.to_owned(),
        user_id,
        subject: Some("subject".into()),
        ip: Some("192.0.2.9".into()),
        user_agent: Some("conformance/1.0".into()),
        ..Default::default()
    }
}

fn token(id: &str, purpose: TokenPurpose, email: Option<&str>) -> NewToken {
    NewToken {
        id: id.to_owned(),
        secret_hash: format!("hash-of-{id}"),
        purpose,
        email: email.map(str::to_owned),
        created_at: T0,
        expires_at: T0 + 60 * MINUTE,
    }
}

/// Every recorded event as (kind, user id), oldest first.
async fn recorded(store: &SqlStore) -> Vec<(String, Option<i64>)> {
    let mut all = store.list_audit(&AuditFilter::default(), 1000).await.expect("list audit");
    all.reverse();
    all.into_iter().map(|e| (e.kind, e.user_id)).collect()
}

async fn audited_changes_record_their_event(store: SqlStore) {
    let root = add_user(&store, "root", true).await;
    let alice = store
        .insert_user(&new_user("alice", "alice@example.com", false), Some(&event("register", None)))
        .await
        .expect("insert");
    let bob = store
        .insert_user_with_token(
            &new_user("bob", "bob@example.com", false),
            &token("t1", TokenPurpose::VerifyEmail, Some("bob@example.com")),
            &[],
            Some(&event("register", None)),
        )
        .await
        .expect("insert with token");
    let success = event("login.success", Some(alice.id));
    let login = SignIn { attempt_key: "user:alice", audit: &success, mail: None };
    store.open_session(&session("s1", &alice, T0, T0 + MINUTE, false), &login).await.expect("login");
    add_session(&store, &session("s2", &alice, T0, T0 + MINUTE, false)).await;
    assert!(store.delete_session(alice.id, "s1", Some(&event("logout", Some(alice.id)))).await.expect("logout"));
    assert_eq!(
        store
            .delete_user_sessions(alice.id, None, Some(&event("session.revoked", Some(alice.id))))
            .await
            .expect("revoke"),
        1
    );
    assert!(
        store.set_admin(alice.id, true, "s", T0, Some(&event("admin.grant", Some(alice.id)))).await.expect("grant")
    );
    store.set_admin_lock(bob.id, Some(T0 + MINUTE), T0, Some(&event("admin.lock", Some(bob.id)))).await.expect("lock");
    assert!(
        store
            .verify_email_with_token("t1", bob.id, "bob@example.com", T0, Some(&event("email.verified", Some(bob.id))),)
            .await
            .expect("verify")
    );
    store
        .issue_token(
            bob.id,
            &token("t2", TokenPurpose::ResetPassword, None),
            &[],
            Some(&event("email.change", Some(bob.id))),
        )
        .await
        .expect("issue");
    let changed = NewCredentials {
        user_id: bob.id,
        hash: "h2",
        new_stamp: "st2",
        mails: &[],
        audit: Some(&event("password.changed", Some(bob.id))),
        now: T0,
    };
    store.change_password_with_mail(&changed).await.expect("change");
    let reset =
        NewCredentials { hash: "h3", new_stamp: "st3", audit: Some(&event("password.reset", Some(bob.id))), ..changed };
    assert!(store.reset_password_with_token("t2", &[], &reset).await.expect("reset"));
    assert!(store.delete_user(bob.id, Some(&event("admin.delete", Some(bob.id)))).await.expect("delete"));
    store.insert_audit(&event("login.failure", None)).await.expect("failure");

    let a = Some(alice.id);
    let b = Some(bob.id);
    let expected: Vec<(String, Option<i64>)> = [
        ("register", a),
        ("register", b),
        ("login.success", a),
        ("logout", a),
        ("session.revoked", a),
        ("admin.grant", a),
        ("admin.lock", b),
        ("email.verified", b),
        ("email.change", b),
        ("password.changed", b),
        ("password.reset", b),
        ("admin.delete", b),
        ("login.failure", None),
    ]
    .into_iter()
    .map(|(k, u)| (k.to_owned(), u))
    .collect();
    assert_eq!(recorded(&store).await, expected);
    let mine = store.list_audit(&AuditFilter { user_id: a, ..Default::default() }, 100).await.expect("list");
    assert_eq!(mine.len(), 5, "filtered by user");
    assert!(mine.iter().all(|e| e.ip.as_deref() == Some("192.0.2.9") && e.user_agent.is_some()));
    assert!(is_admin(&store, root.id).await);
}

async fn refused_changes_record_nothing(store: SqlStore) {
    let root = add_user(&store, "root", true).await;
    let alice = add_user(&store, "alice", false).await;
    assert!(
        !store.set_admin(root.id, false, "s", T0, Some(&event("admin.revoke", Some(root.id)))).await.expect("revoke")
    );
    assert!(!store.delete_user(root.id, Some(&event("admin.delete", Some(root.id)))).await.expect("delete"));
    assert!(!store.delete_session(alice.id, "nope", Some(&event("logout", Some(alice.id)))).await.expect("logout"));
    let taken = store.insert_user(&new_user("ALICE", "a2@example.com", false), Some(&event("register", None))).await;
    assert!(matches!(taken, Err(StoreError::UsernameTaken)), "{taken:?}");
    store
        .issue_token(alice.id, &token("t1", TokenPurpose::VerifyEmail, Some("root@example.com")), &[], None)
        .await
        .expect("issue");
    let verified = event("email.verified", None);
    let clash = store.verify_email_with_token("t1", alice.id, "root@example.com", T0, Some(&verified)).await;
    assert!(matches!(clash, Err(StoreError::EmailTaken)), "{clash:?}");
    assert_eq!(recorded(&store).await, Vec::new(), "nothing happened, nothing recorded");
}

/// Makes every insert into the audit log fail, as a full disk or a lost
/// connection would.
async fn refuse_audit_inserts(store: &SqlStore) {
    let statements: &[&str] = match store.backend() {
        portcullis_store::Backend::Sqlite => &[
            "CREATE TRIGGER audit_refused BEFORE INSERT ON audit_events BEGIN SELECT RAISE(ABORT, 'audit refused'); END",
        ],
        portcullis_store::Backend::Postgres => &[
            "CREATE FUNCTION audit_refused() RETURNS trigger LANGUAGE plpgsql AS $f$ BEGIN RAISE EXCEPTION 'audit refused'; END $f$",
            "CREATE TRIGGER audit_refused BEFORE INSERT ON audit_events FOR EACH ROW EXECUTE FUNCTION audit_refused()",
        ],
    };
    for sql in statements {
        sqlx::raw_sql(sql).execute(store.pool()).await.unwrap_or_else(|e| panic!("{sql}: {e}"));
    }
}

async fn a_change_whose_event_cannot_be_written_is_undone(store: SqlStore) {
    let root = add_user(&store, "root", true).await;
    let alice = add_user(&store, "alice", false).await;
    add_session(&store, &session("s1", &alice, T0, T0 + MINUTE, false)).await;
    store
        .issue_token(alice.id, &token("t1", TokenPurpose::VerifyEmail, Some("new@example.com")), &[], None)
        .await
        .expect("issue");
    store.issue_token(alice.id, &token("t2", TokenPurpose::ResetPassword, None), &[], None).await.expect("issue");
    refuse_audit_inserts(&store).await;
    let ev = |kind: &str| event(kind, Some(alice.id));

    let e = ev("register");
    assert!(store.insert_user(&new_user("carol", "carol@example.com", false), Some(&e)).await.is_err());
    assert!(
        store
            .insert_user_with_token(
                &new_user("dave", "dave@example.com", false),
                &token("t3", TokenPurpose::VerifyEmail, None),
                &[],
                Some(&e),
            )
            .await
            .is_err()
    );
    assert!(store.user_by_login("carol").await.expect("lookup").is_none(), "no user without its event");
    assert!(store.user_by_login("dave").await.expect("lookup").is_none(), "no user without its event");
    assert!(store.token("t3").await.expect("token").is_none());

    let success = ev("login.success");
    let login = SignIn { attempt_key: "user:alice", audit: &success, mail: None };
    assert!(store.open_session(&session("s9", &alice, T0 + 5, T0 + MINUTE, false), &login).await.is_err());
    assert!(store.delete_session(alice.id, "s1", Some(&ev("logout"))).await.is_err());
    assert!(store.delete_user_sessions(alice.id, None, Some(&ev("session.revoked"))).await.is_err());
    assert!(store.set_admin(alice.id, true, "new", T0, Some(&ev("admin.grant"))).await.is_err());
    assert!(store.set_admin_lock(alice.id, Some(T0 + MINUTE), T0, Some(&ev("admin.lock"))).await.is_err());
    assert!(
        store
            .verify_email_with_token("t1", alice.id, "new@example.com", T0, Some(&ev("email.verified")))
            .await
            .is_err()
    );
    assert!(
        store
            .issue_token(alice.id, &token("t4", TokenPurpose::VerifyEmail, None), &[], Some(&ev("email.change")))
            .await
            .is_err()
    );
    let change = NewCredentials {
        user_id: alice.id,
        hash: "h2",
        new_stamp: "st2",
        mails: &[],
        audit: Some(&ev("password.changed")),
        now: T0,
    };
    assert!(store.change_password_with_mail(&change).await.is_err());
    assert!(store.reset_password_with_token("t2", &[], &change).await.is_err());
    assert!(store.delete_user(alice.id, Some(&ev("account.deleted"))).await.is_err());

    let after = store.user_by_id(alice.id).await.expect("lookup").expect("alice is still there");
    assert_eq!(after.last_login_at, alice.last_login_at, "login not recorded");
    assert!(!after.is_admin, "not granted");
    assert_eq!(after.security_stamp, alice.security_stamp);
    assert_eq!(after.password_hash, alice.password_hash, "password unchanged");
    assert_eq!(after.admin_locked_until, None, "not locked");
    assert_eq!(after.email, "alice@example.com");
    assert!(!after.email_verified);
    assert_eq!(session_ids(&store, alice.id, T0).await, ["s1"], "session not ended");
    let t1 = store.token("t1").await.expect("token").expect("t1");
    assert!(t1.used_at.is_none(), "verification link not used up");
    assert!(store.token("t2").await.expect("token").expect("t2").used_at.is_none(), "reset link not used up");
    assert!(store.token("t4").await.expect("token").is_none());
    assert!(is_admin(&store, root.id).await);
    assert!(store.insert_audit(&event("login.failure", None)).await.is_err(), "the log itself refuses");
}

async fn outbox_claims_each_mail_once_and_marks_a_batch_sent(store: SqlStore) {
    for i in 0..3 {
        let mail = OutgoingMail {
            recipient: format!("user{i}@example.com"),
            subject: format!("Message {i}"),
            sealed: format!("sealed-{i}"),
        };
        store.enqueue_mail(&mail, T0).await.expect("enqueue");
    }
    let claimed = store.claim_mail(T0, T0 + MINUTE, 10).await.expect("claim");
    assert_eq!(claimed.iter().map(|m| m.sealed.as_str()).collect::<Vec<_>>(), ["sealed-0", "sealed-1", "sealed-2"]);
    assert!(store.claim_mail(T0, T0 + MINUTE, 10).await.expect("claim").is_empty(), "leased, not claimed twice");

    // Two marked sent in one call; the third is left to its lease.
    store.mark_mails_sent(&[claimed[0].id, claimed[2].id], T0 + 1).await.expect("mark");
    store.mark_mails_sent(&[], T0 + 1).await.expect("marking nothing is allowed");
    assert_eq!(store.pending_mail_count().await.expect("count"), 1);
    let again = store.claim_mail(T0 + MINUTE, T0 + 2 * MINUTE, 10).await.expect("claim after the lease");
    assert_eq!(again.iter().map(|m| m.id).collect::<Vec<_>>(), [claimed[1].id], "only the unsent one comes back");
    let bodies: Vec<String> =
        sqlx::query_scalar("SELECT sealed_body FROM outbox ORDER BY id").fetch_all(store.pool()).await.expect("bodies");
    assert_eq!(bodies, ["", "sealed-1", ""], "a sent mail's body is forgotten");
}

// ---------------------------------------------------------------- logins

fn notice(to: &str) -> OutgoingMail {
    OutgoingMail { recipient: to.to_owned(), subject: "New sign-in".to_owned(), sealed: "sealed".to_owned() }
}

async fn open_session_writes_the_whole_login(store: SqlStore) {
    let alice = add_user(&store, "alice", false).await;
    let bob = add_user(&store, "bob", false).await;
    for key in ["user:alice", "name:other"] {
        assert_eq!(reserve(&store, key, T0, 5).await, 1);
    }
    let first = session("s1", &alice, T0 + MINUTE, T0 + 9 * MINUTE, true);
    let success = event("login.success", Some(alice.id));
    let mail = notice("alice@example.com");
    let login = SignIn { attempt_key: "user:alice", audit: &success, mail: Some(&mail) };
    store.open_session(&first, &login).await.expect("open");

    let found = store.session_with_user("s1").await.expect("lookup").expect("the session is stored");
    let s = &found.session;
    assert_eq!(
        (s.id.as_str(), s.created_at, s.expires_at, s.remember),
        ("s1", first.created_at, first.expires_at, true)
    );
    assert_eq!((s.ip.as_deref(), s.user_agent.as_deref()), (Some("192.0.2.7"), Some("conformance/1.0")));
    assert_eq!(found.user.id, alice.id);
    assert_eq!(found.user.last_login_at, Some(T0 + MINUTE), "the login is noted at the session's start");
    assert_eq!(store.user_by_id(bob.id).await.expect("get").expect("bob").last_login_at, None);
    let listed = store.list_users(Some("alice"), None, 10, T0).await.expect("list users");
    assert_eq!(listed[0].user.last_login_at, Some(T0 + MINUTE));
    assert_eq!(reserve(&store, "user:alice", T0, 5).await, 1, "the attempt is forgotten");
    assert_eq!(reserve(&store, "name:other", T0, 5).await, 2, "other counters stay");
    assert_eq!(recorded(&store).await, [("login.success".to_owned(), Some(alice.id))]);
    let claimed = store.claim_mail(T0 + MINUTE, T0 + 2 * MINUTE, 10).await.expect("claim");
    assert_eq!(claimed.len(), 1, "the notice is queued with the login");

    // Without a mail, and again for the same user: a second session.
    let second = session("s2", &alice, T0 + 2 * MINUTE, T0 + 9 * MINUTE, false);
    let login = SignIn { attempt_key: "user:alice", audit: &success, mail: None };
    store.open_session(&second, &login).await.expect("open");
    assert_eq!(session_ids(&store, alice.id, T0).await, ["s2", "s1"]);
    assert_eq!(store.user_by_id(alice.id).await.expect("get").expect("alice").last_login_at, Some(T0 + 2 * MINUTE));
    assert_eq!(store.pending_mail_count().await.expect("count"), 1, "no second mail");
    assert_eq!(recorded(&store).await.len(), 2);

    // A session id already taken opens nothing.
    assert!(store.open_session(&second, &login).await.is_err());
    assert_eq!(recorded(&store).await.len(), 2, "nothing recorded for it");
}

async fn a_login_whose_event_cannot_be_written_opens_nothing(store: SqlStore) {
    let alice = add_user(&store, "alice", false).await;
    assert_eq!(reserve(&store, "user:alice", T0, 5).await, 1);
    refuse_audit_inserts(&store).await;
    let success = event("login.success", Some(alice.id));
    let mail = notice("alice@example.com");
    let s1 = session("s1", &alice, T0 + MINUTE, T0 + 9 * MINUTE, false);
    let login = SignIn { attempt_key: "user:alice", audit: &success, mail: Some(&mail) };
    assert!(store.open_session(&s1, &login).await.is_err());
    assert!(store.session_with_user("s1").await.expect("lookup").is_none(), "no session");
    assert_eq!(store.user_by_id(alice.id).await.expect("get").expect("alice").last_login_at, None, "not noted");
    assert_eq!(store.pending_mail_count().await.expect("count"), 0, "no mail");
    assert_eq!(reserve(&store, "user:alice", T0, 5).await, 2, "the attempt still counts");
    // The writer goes on: the next login, with the log writable again, opens.
    let drop_trigger = match store.backend() {
        portcullis_store::Backend::Sqlite => "DROP TRIGGER audit_refused",
        portcullis_store::Backend::Postgres => "DROP TRIGGER audit_refused ON audit_events",
    };
    sqlx::raw_sql(drop_trigger).execute(store.pool()).await.expect("drop trigger");
    store.open_session(&s1, &login).await.expect("open");
    assert_eq!(session_ids(&store, alice.id, T0).await, ["s1"]);
}
