//! The mail outbox: claiming under a lease and marking sent.

use portcullis_app::mail::OutgoingMail;
use portcullis_app::ports::OutboxStore;
use portcullis_store::SqlStore;

use crate::fixtures::{MINUTE, T0};

pub async fn outbox_claims_each_mail_once_and_marks_a_batch_sent(store: SqlStore) {
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
