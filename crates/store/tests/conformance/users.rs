//! Users: creation and uniqueness, lookup, listing and search, passwords.

use std::sync::Arc;

use portcullis_app::{NewUser, StoreError, TokenStore, User, UserStore};
use portcullis_store::SqlStore;

use crate::fixtures::{MINUTE, T0, add_user, credentials, lock, new_user};

pub async fn insert_user_returns_the_stored_user(store: SqlStore) {
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

pub async fn usernames_are_unique_case_insensitively(store: SqlStore) {
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

pub async fn emails_are_unique_case_insensitively(store: SqlStore) {
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

pub async fn concurrent_inserts_of_one_username_let_exactly_one_win(store: SqlStore) {
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

pub async fn concurrent_inserts_of_one_email_let_exactly_one_win(store: SqlStore) {
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

pub async fn user_by_login_finds_normalized_username_or_email(store: SqlStore) {
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

pub async fn list_users_pages_by_id(store: SqlStore) {
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

pub async fn list_users_shows_current_locks(store: SqlStore) {
    let alice = add_user(&store, "alice", false).await;
    let bob = add_user(&store, "bob", false).await;
    let carol = add_user(&store, "carol", false).await;
    let until = T0 + 15 * MINUTE;
    lock(&store, &format!("user:{}", alice.id), T0, until).await;
    lock(&store, &format!("user:{}", bob.id), T0 - 30 * MINUTE, T0 - MINUTE).await;
    // A failed login under the name does not lock the account row.
    lock(&store, "name:carol", T0, until).await;
    let list = store.list_users(None, None, 10, T0).await.expect("list users");
    let locks: Vec<(i64, Option<i64>)> = list.iter().map(|s| (s.user.id, s.locked_until)).collect();
    assert_eq!(locks, [(alice.id, Some(until)), (bob.id, None), (carol.id, None)]);
    let later = store.list_users(None, None, 10, until).await.expect("list users");
    assert!(later.iter().all(|s| s.locked_until.is_none()), "lock passed");
}

pub async fn list_users_searches_username_and_email_case_insensitively(store: SqlStore) {
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

pub async fn list_users_search_matches_metacharacters_literally(store: SqlStore) {
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

pub async fn list_users_search_pages_by_id(store: SqlStore) {
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

pub async fn password_updates_keep_or_change_the_stamp(store: SqlStore) {
    let alice = add_user(&store, "alice", false).await;
    let bob = add_user(&store, "bob", false).await;

    store.update_password_hash(alice.id, "rehashed", T0 + 1).await.expect("update hash");
    let a = store.user_by_id(alice.id).await.expect("get").expect("found");
    assert_eq!(a.password_hash, "rehashed");
    assert_eq!(a.security_stamp, alice.security_stamp, "an upgrade keeps sessions");
    assert_eq!((a.created_at, a.updated_at), (T0, T0 + 1));

    store
        .change_password_with_mail(&credentials(alice.id, "new-hash", "new-stamp", T0 + 2))
        .await
        .expect("set password");
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
    store.change_password_with_mail(&credentials(bob.id + 100, "x", "y", T0)).await.expect("set password");
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
