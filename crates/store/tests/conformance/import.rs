//! Importing users: names taken are found without regard to case, a batch
//! writes users with their posts and locks, and skips (never overwrites) a
//! user whose name was taken meanwhile.

use portcullis_app::import::{ImportStore, ImportedUser};
use portcullis_app::{LoginThrottle, PostStore, UserStore};
use portcullis_store::SqlStore;

use crate::fixtures::{T0, add_user};

fn imported(name: &str, posts: usize, locked_until: Option<i64>) -> ImportedUser {
    ImportedUser {
        username: name.to_owned(),
        username_normalized: name.to_lowercase(),
        email: format!("{name}@example.com"),
        email_normalized: format!("{name}@example.com").to_lowercase(),
        password_hash: "scrypt:32768:8:1$salt$00ff".into(),
        is_admin: false,
        email_verified: true,
        security_stamp: format!("stamp-{name}"),
        created_at: T0 - 1000,
        locked_until,
        posts: (0..posts).map(|i| (format!("{name} {i}"), "content".to_owned(), T0 - 500 + i as i64)).collect(),
    }
}

pub async fn taken_names_are_found_without_regard_to_case(store: SqlStore) {
    add_user(&store, "Alice", false).await;
    let names = ["alice".to_owned(), "bob".to_owned()];
    let emails = ["alice@example.com".to_owned(), "nobody@example.com".to_owned()];
    let (taken_names, taken_emails) = store.taken_names(&names, &emails).await.expect("taken");
    assert_eq!(taken_names.into_iter().collect::<Vec<_>>(), ["alice"]);
    assert_eq!(taken_emails.len(), 1, "the fixture's email is alice@example.com, stored lower case");
    let (none, _) = store.taken_names(&[], &[]).await.expect("empty lists");
    assert!(none.is_empty());
}

pub async fn a_batch_writes_users_with_their_posts_and_locks_and_skips_taken_names(store: SqlStore) {
    let ours = add_user(&store, "Carol", false).await;
    // 450 users: more than one statement's worth of rows, of users and of posts.
    let mut batch: Vec<ImportedUser> = (0..450).map(|i| imported(&format!("user{i:03}"), 2, None)).collect();
    batch.push(imported("carol", 3, None));
    batch.push(imported("dave", 1, Some(T0 + 60_000)));
    let written = store.insert_imported(&batch, 5, T0).await.expect("import");
    assert_eq!(written.iter().filter(|w| **w).count(), 451);
    assert!(!written[450], "carol is taken: skipped");
    let carol = store.user_by_id(ours.id).await.expect("read").expect("carol");
    assert_eq!(carol.password_hash, ours.password_hash, "never overwritten");
    assert!(store.list_posts(Some(carol.id), None, 10).await.expect("posts").is_empty(), "no posts given to ours");
    let dave = store.user_by_login("dave").await.expect("read").expect("dave");
    assert_eq!(dave.created_at, T0 - 1000);
    assert_eq!(dave.password_hash, "scrypt:32768:8:1$salt$00ff");
    assert!(dave.email_verified && !dave.is_admin);
    let key = portcullis_domain::lockout::account_key(dave.id);
    assert_eq!(store.locked_until(&key, T0).await.expect("lock"), Some(T0 + 60_000));
    // The next attempt is refused: the counter stands at the threshold.
    assert_eq!(crate::fixtures::reserve(&store, &key, T0 + 1, 5).await, 6);
    let u7 = store.user_by_login("user007").await.expect("read").expect("user007");
    let posts = store.list_posts(Some(u7.id), None, 10).await.expect("posts");
    assert_eq!(posts.len(), 2);
    assert_eq!(posts.iter().map(|p| p.created_at).min(), Some(T0 - 500));
    // Again: everything is taken, nothing changes.
    let again = store.insert_imported(&batch, 5, T0).await.expect("again");
    assert!(again.iter().all(|w| !w));
    assert_eq!(store.list_posts(None, None, 2000).await.expect("posts").len(), 450 * 2 + 1);
}
