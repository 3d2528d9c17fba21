//! The store's health check.

use portcullis_app::UserStore;
use portcullis_store::SqlStore;

pub async fn ping_answers(store: SqlStore) {
    store.ping().await.expect("ping");
    assert_eq!(store.count_admins().await.expect("count"), 0);
}
