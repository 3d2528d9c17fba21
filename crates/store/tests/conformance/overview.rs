//! The administrators' overview's counts.

use portcullis_app::overview::{DAY_MS, DailyCount};
use portcullis_app::passkey_store::{NewPasskey, PasskeyStore as _};
use portcullis_app::ports::{AuditStore, OverviewStore};
use portcullis_store::SqlStore;

use crate::fixtures::{T0, add_user, event};

pub async fn daily_events_count_each_kind_per_day_from_the_first(store: SqlStore) {
    let day0 = T0 / DAY_MS;
    let at = |day: i64, ms: i64| (day0 + day) * DAY_MS + ms;
    for (kind, when) in [
        ("login.success", at(-1, 5)), // before the window
        ("login.success", at(0, 0)),
        ("login.success", at(0, DAY_MS - 1)),
        ("login.success", at(2, 7)),
        ("login.failure", at(1, 1)),
        ("logout", at(1, 1)), // a kind not asked for
        ("login.success", at(40, 1)),
    ] {
        let mut e = event(kind, None);
        e.at = when;
        store.insert_audit(&e).await.expect("event");
    }
    let mut got =
        store.daily_events(&["login.success", "login.failure", "login.lockout"], at(0, 0)).await.expect("counts");
    got.sort_by(|a, b| (a.kind.as_str(), a.day).cmp(&(b.kind.as_str(), b.day)));
    let count = |kind: &str, day: i64, count: i64| DailyCount { kind: kind.to_owned(), day: day0 + day, count };
    assert_eq!(
        got,
        [
            count("login.failure", 1, 1),
            count("login.success", 0, 2),
            count("login.success", 2, 1),
            count("login.success", 40, 1)
        ]
    );
}

pub async fn user_counts_count_two_factor_and_passkey_users_once(store: SqlStore) {
    let alice = add_user(&store, "alice", true).await;
    let bob = add_user(&store, "bob", false).await;
    add_user(&store, "carol", false).await;
    // Alice has two-factor on and two passkeys; bob only an enrolment pending.
    for (user, secret) in [(alice.id, Some("sealed")), (bob.id, None)] {
        sqlx::query("INSERT INTO two_factor (user_id, secret, pending_secret) VALUES ($1, $2, 'sealed')")
            .bind(user)
            .bind(secret)
            .execute(store.pool())
            .await
            .expect("two-factor row");
    }
    for (credential_id, name) in [("cred-1", "Laptop"), ("cred-2", "Phone")] {
        let key = NewPasskey {
            user_id: alice.id,
            credential_id,
            name,
            credential: "{}",
            sign_count: 0,
            backup_eligible: false,
            backed_up: false,
            now: T0,
        };
        store.insert_passkey(&key, None, None).await.expect("passkey").expect("new");
    }
    let counts = store.user_counts().await.expect("counts");
    assert_eq!((counts.total, counts.admins, counts.two_factor, counts.passkeys), (3, 1, 1, 1));
}
