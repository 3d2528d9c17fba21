//! The login throttle: counting failed attempts and locking.

use std::sync::Arc;

use portcullis_app::LoginThrottle;
use portcullis_store::SqlStore;
use tokio::task::JoinSet;

use crate::fixtures::{MINUTE, T0, lock, reserve};

pub async fn reserve_attempt_counts_and_locks_at_the_threshold(store: SqlStore) {
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

pub async fn reserve_attempt_with_threshold_one_locks_at_once(store: SqlStore) {
    assert_eq!(reserve(&store, "k", T0, 1).await, 1);
    assert_eq!(store.locked_until("k", T0).await.expect("locked"), Some(T0 + 15 * MINUTE));
    assert_eq!(reserve(&store, "k", T0 + 1, 1).await, 2);
    // After the lock, the window restarts and locks again at once.
    let later = T0 + 16 * MINUTE;
    assert_eq!(reserve(&store, "k", later, 1).await, 1);
    assert_eq!(store.locked_until("k", later).await.expect("locked"), Some(later + 15 * MINUTE));
}

pub async fn reserve_attempt_restarts_after_the_lock_passes(store: SqlStore) {
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

pub async fn reserve_attempt_restarts_when_the_window_has_passed(store: SqlStore) {
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
    lock(&store, "name:erin", T0, T0 + 100 * MINUTE).await;
    let now = T0 + 50 * MINUTE;
    assert_eq!(store.reserve_attempt("name:erin", now, 3, now + window, now - window).await.expect("r"), 2);
    assert_eq!(store.locked_until("name:erin", now).await.expect("locked"), Some(T0 + 100 * MINUTE));
}

pub async fn concurrent_reserve_attempts_count_each_attempt_once(store: SqlStore) {
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

pub async fn clear_attempts_forgets_only_the_given_keys(store: SqlStore) {
    for key in ["name:a", "name:b", "user:1"] {
        assert_eq!(reserve(&store, key, T0, 5).await, 1);
        assert_eq!(reserve(&store, key, T0, 5).await, 2);
    }
    lock(&store, "user:2", T0, T0 + MINUTE).await;
    store.clear_attempts(&["name:a".to_owned(), "user:2".to_owned(), "name:none".to_owned()]).await.expect("clear");
    assert_eq!(store.locked_until("user:2", T0).await.expect("locked"), None);
    assert_eq!(reserve(&store, "name:a", T0, 5).await, 1);
    assert_eq!(reserve(&store, "user:2", T0, 5).await, 1);
    assert_eq!(reserve(&store, "name:b", T0, 5).await, 3);
    assert_eq!(reserve(&store, "user:1", T0, 5).await, 3);
    store.clear_attempts(&[]).await.expect("clear nothing");
    assert_eq!(reserve(&store, "name:b", T0, 5).await, 4);
}

pub async fn purge_attempts_forgets_only_counters_that_would_start_again(store: SqlStore) {
    let window = 15 * MINUTE;
    // Locked until T0 + window; locked until later; unlocked and recent; unlocked and old.
    lock(&store, "name:locked", T0, T0 + window).await;
    lock(&store, "name:locked-long", T0, T0 + 10 * window).await;
    assert_eq!(reserve(&store, "user:recent", T0 + 2 * window, 5).await, 1);
    assert_eq!(reserve(&store, "user:old", T0, 5).await, 1);
    let now = T0 + 2 * window;
    assert_eq!(store.purge_attempts(now, now - window).await.expect("purge"), 2, "the run-out lock and the old one");
    assert_eq!(store.locked_until("name:locked-long", now).await.expect("locked"), Some(T0 + 10 * window));
    assert_eq!(reserve(&store, "user:recent", now, 5).await, 2, "a live counter is kept");
    assert_eq!(reserve(&store, "user:old", now, 5).await, 1);
    assert_eq!(reserve(&store, "name:locked", now, 5).await, 1);
    assert_eq!(store.purge_attempts(now, now - window).await.expect("purge"), 0, "nothing more to forget");
}
