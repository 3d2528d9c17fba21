//! On PostgreSQL, the changes other connections commit reach this node's
//! read cache as notices. Triggers on the tables the cache keeps (migration
//! `0011_change_notices`) send, at commit, a notice naming what changed:
//! `u<id>` for a user's row or sessions, `p` for the posts, `*` for more
//! than that. Each node listens on its schema's channel and marks what a
//! notice names (see `marks`), as its own writes mark theirs. So another
//! node's change, the command line's, or an operator's in psql reaches the
//! cache a notice's trip after its commit.
//!
//! A notice lost is a stale entry, so the cache is used only while the
//! listening connection is up and this node has lately heard its own hello
//! on it (`SqlStore::following`, and see `fence`): when it drops,
//! everything is marked and entries are not used until it listens again;
//! once it does, everything is marked once more, since notices sent in
//! between were lost.
//!
//! The notices of `fence`, which start with `!`, travel on the same
//! channel: the answer to one is sent on the listening connection itself,
//! after every notice read before it.

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use sqlx::postgres::PgListener;

use portcullis_app::StoreError;

use crate::fence::{HELLO_EVERY, Nodes, Read};
use crate::marks::Reach;
use crate::{Backend, SqlStore, backend_err};

/// How long to wait before listening again after the connection dropped.
const RETRY_AFTER: Duration = Duration::from_secs(1);

/// The listening state of a PostgreSQL store.
pub(crate) struct Follower {
    /// Where to listen: the store's own URL.
    url: String,
    /// The listening connection is up and has marked everything since it
    /// came up.
    live: AtomicBool,
    /// The other nodes on the channel.
    pub(crate) nodes: Nodes,
}

impl std::fmt::Debug for Follower {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The URL may hold a password.
        f.debug_struct("Follower").field("live", &self.live).finish_non_exhaustive()
    }
}

impl Follower {
    pub(crate) fn new(url: &str) -> Self {
        Self { url: url.to_owned(), live: AtomicBool::new(false), nodes: Nodes::new() }
    }
}

/// What a notice's payload names. A token this version does not know
/// names everything.
fn reaches(payload: &str) -> impl Iterator<Item = Reach> + '_ {
    payload.split_whitespace().map(|token| match token {
        "p" => Reach::Posts,
        "*" => Reach::Everything,
        other => other.strip_prefix('u').and_then(|id| id.parse().ok()).map_or(Reach::Everything, Reach::User),
    })
}

/// The payload of a notice naming `reach`.
fn payload(reach: Reach) -> String {
    match reach {
        Reach::Uncached | Reach::LastSeen => String::new(),
        Reach::User(id) => format!("u{id}"),
        Reach::Posts => "p".to_owned(),
        Reach::UserAndPosts(id) => format!("u{id} p"),
        Reach::Everything => "*".to_owned(),
    }
}

impl SqlStore {
    /// On PostgreSQL, whether the cache may use its entries: the notices of
    /// other connections' changes are being heard. `None` on SQLite, which
    /// finds such changes another way (see `version`).
    pub(crate) fn following(&self) -> Option<bool> {
        self.follower.as_ref().map(|f| f.live.load(Ordering::Acquire) && f.nodes.leased())
    }

    /// On PostgreSQL, starts listening for the notices of committed changes
    /// (see the module's documentation) and answers the task that does;
    /// abort it to stop. Needs the migrations applied. `None` on SQLite.
    pub fn follow_changes(&self) -> Option<tokio::task::JoinHandle<()>> {
        let follower = self.follower.clone()?;
        let store = self.clone();
        Some(tokio::spawn(async move {
            tokio::join!(store.follow(&follower), store.say_hello(&follower));
        }))
    }

    /// Says this node's hello every [`HELLO_EVERY`] while it listens.
    async fn say_hello(&self, follower: &Follower) {
        let mut every = tokio::time::interval(HELLO_EVERY);
        every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        while !self.is_closed() {
            every.tick().await;
            if follower.live.load(Ordering::Acquire)
                && let Err(e) = self.notify(&follower.nodes.hello()).await
            {
                tracing::warn!(error = %e, "cannot say hello to the other nodes");
            }
        }
    }

    async fn follow(&self, follower: &Follower) {
        loop {
            match listen(&follower.url).await {
                Ok((mut listener, channel)) => {
                    self.marks.changed(Reach::Everything);
                    follower.live.store(true, Ordering::Release);
                    // Heard back, this question also starts the lease.
                    let who = follower.nodes.listening();
                    let ended = match say(&mut listener, &channel, &who).await {
                        Err(e) => Some(e),
                        Ok(()) => loop {
                            match listener.try_recv().await {
                                Ok(Some(notice)) => match follower.nodes.read(notice.payload()) {
                                    Read::Change => {
                                        for reach in reaches(notice.payload()) {
                                            self.marks.changed(reach);
                                        }
                                    }
                                    Read::Taken => {}
                                    Read::Answer(answer) => {
                                        if let Err(e) = say(&mut listener, &channel, &answer).await {
                                            break Some(e);
                                        }
                                    }
                                },
                                Ok(None) => break None,
                                Err(e) => break Some(e),
                            }
                        },
                    };
                    follower.live.store(false, Ordering::Release);
                    follower.nodes.deaf();
                    self.marks.changed(Reach::Everything);
                    tracing::warn!(error = ended.map(|e| e.to_string()), "change notices lost; listening again");
                }
                Err(e) => tracing::warn!(error = %e, "cannot listen for change notices"),
            }
            if self.is_closed() {
                return;
            }
            tokio::time::sleep(RETRY_AFTER).await;
        }
    }

    /// Marks `reach` for the read caches, after a change made outside the
    /// database (sessions in Redis): this process's at once, and on
    /// PostgreSQL every node's, by a notice like the triggers'.
    pub async fn announce(&self, reach: Reach) -> Result<(), StoreError> {
        let mut conn = self.write(reach).await?;
        if self.backend == Backend::Postgres {
            sqlx::query(crate::fence::NOTIFY).bind(payload(reach)).execute(&mut *conn).await.map_err(backend_err)?;
        }
        Ok(())
    }
}

/// A connection listening on the channel of its schema (the URL's search
/// path), and the channel's name.
async fn listen(url: &str) -> Result<(PgListener, String), sqlx::Error> {
    let mut listener = PgListener::connect(url).await?;
    let channel: String =
        sqlx::query_scalar("SELECT portcullis_channel(current_schema())").fetch_one(&mut listener).await?;
    listener.listen(&channel).await?;
    Ok((listener, channel))
}

/// Sends `payload` on `channel` from the listening connection: after every
/// notice it has read.
async fn say(listener: &mut PgListener, channel: &str, payload: &str) -> Result<(), sqlx::Error> {
    sqlx::query("SELECT pg_notify($1, $2)").bind(channel).bind(payload).execute(listener).await.map(drop)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_payload_names_what_changed_and_anything_unknown_is_everything() {
        let got: Vec<Reach> = reaches("u12 p u-3 *  x u").collect();
        assert_eq!(
            got,
            vec![
                Reach::User(12),
                Reach::Posts,
                Reach::User(-3),
                Reach::Everything,
                Reach::Everything,
                Reach::Everything
            ]
        );
        for reach in [Reach::User(7), Reach::Posts, Reach::UserAndPosts(9), Reach::Everything] {
            let back: Vec<Reach> = reaches(&payload(reach)).collect();
            let expected = match reach {
                Reach::UserAndPosts(id) => vec![Reach::User(id), Reach::Posts],
                other => vec![other],
            };
            assert_eq!(back, expected, "{reach:?} survives the trip");
        }
        assert_eq!(reaches(&payload(Reach::Uncached)).count(), 0);
    }
}
