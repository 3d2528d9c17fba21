//! Posts: writing, changing, deleting and listing them.

use std::collections::HashSet;

use portcullis_app::{PostStore, UserStore};
use portcullis_store::SqlStore;

use crate::fixtures::{MINUTE, T0, add_user, post_ids};

pub async fn post_round_trips_with_its_author(store: SqlStore) {
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

pub async fn update_post_changes_title_content_and_time(store: SqlStore) {
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

pub async fn delete_post_removes_only_that_post(store: SqlStore) {
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

pub async fn list_posts_pages_newest_first(store: SqlStore) {
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

pub async fn list_posts_of_one_author(store: SqlStore) {
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
