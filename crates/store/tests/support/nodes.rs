//! Two nodes on one PostgreSQL schema: what the tests of notices and of
//! settling build their cases from.

use std::time::{Duration, Instant};

use sqlx::{Connection as _, Executor as _, PgConnection};

use portcullis_app::{NewUser, User, UserStore as _};
use portcullis_domain::{Email, Username};
use portcullis_store::SqlStore;

use crate::cached::T0;
use crate::services;

/// Runs `scenario` on a URL whose tables live in a schema of their own,
/// named after `name`, dropped afterwards.
pub async fn in_schema<F: Future<Output = ()> + Send + 'static>(name: &str, scenario: fn(String) -> F) {
    let Some(base) = services::postgres_url() else { return };
    let schema = format!("{name}_{}_{}", std::process::id(), T0 % 1000);
    let mut admin = PgConnection::connect(&base).await.expect("PostgreSQL");
    admin.execute(format!(r#"DROP SCHEMA IF EXISTS "{schema}" CASCADE"#).as_str()).await.expect("drop");
    admin.execute(format!(r#"CREATE SCHEMA "{schema}""#).as_str()).await.expect("schema");
    let url = format!("{base}{}options=-c%20search_path%3D{schema}", if base.contains('?') { '&' } else { '?' });
    let outcome = tokio::spawn(scenario(url)).await;
    let _ = admin.execute(format!(r#"DROP SCHEMA "{schema}" CASCADE"#).as_str()).await;
    if let Err(e) = outcome {
        std::panic::resume_unwind(e.into_panic());
    }
}

/// The user Alice, made on `store`.
pub async fn alice(store: &SqlStore) -> User {
    store
        .insert_user(
            &NewUser {
                username: Username::parse("alice").expect("name"),
                email: Email::parse("alice@example.com").expect("email"),
                password_hash: "hash".into(),
                is_admin: false,
                email_verified: true,
                security_stamp: "stamp".into(),
                now: T0,
            },
            None,
        )
        .await
        .expect("user")
}

/// Waits until the other node serves row `id` of `table` from memory:
/// `read` is that node's read through its cache, answering the row's
/// `secret_hash` (`h`). A change made on `a` behind the triggers' back
/// (they are off for it) is not seen from memory; until the node listens,
/// it is, and the row is put back for another try. Once served from
/// memory, the row stays changed in the table and cached as it was.
pub async fn until_served_from_memory<F: Future<Output = Option<String>>>(
    a: &SqlStore,
    table: &str,
    id: &str,
    read: impl Fn() -> F,
) {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        assert!(read().await.is_some(), "{table} {id} is live");
        let mut conn = a.pool().acquire().await.expect("connection");
        conn.execute(format!("ALTER TABLE {table} DISABLE TRIGGER USER").as_str()).await.expect("triggers off");
        sqlx::query(&format!("UPDATE {table} SET secret_hash = 'changed quietly' WHERE id = $1"))
            .bind(id)
            .execute(&mut *conn)
            .await
            .expect("update");
        conn.execute(format!("ALTER TABLE {table} ENABLE TRIGGER USER").as_str()).await.expect("triggers on");
        drop(conn);
        if read().await.expect("live") == "h" {
            return;
        }
        sqlx::query(&format!("UPDATE {table} SET secret_hash = 'h' WHERE id = $1"))
            .bind(id)
            .execute(a.pool())
            .await
            .expect("back");
        // Not every table's updates are announced (a token's are not): say
        // that everything changed, so that what the node read is read again.
        sqlx::query("SELECT pg_notify(portcullis_channel(current_schema()), '*')")
            .execute(a.pool())
            .await
            .expect("notice");
        assert!(Instant::now() < deadline, "the other node never served {table} {id} from memory");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}
