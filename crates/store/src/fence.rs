//! Settling, on PostgreSQL: a request that changed something answers only
//! once every other node's read cache has let go of what it changed.
//!
//! A change's notice (see `notices`) reaches the other nodes a moment after
//! its commit. Without more, the client's next request, sent to another
//! node, could come in that moment and be answered from that node's cache,
//! as if the session just revoked were still good. So once a request that
//! wrote is done, its node sends a fence, a notice of its own queued behind
//! the change's, and waits for each other node to answer it. A node reads
//! the notices in the order they were sent and answers a fence only after
//! the notices before it, so an answer means its cache has marked the
//! change. Rounds are shared: one covers every change this node made
//! before it was sent, and a request whose changes an earlier round covered
//! does not wait at all.
//!
//! Nodes know each other by the hello each says every [`HELLO_EVERY`]. A
//! node that stops answering (its connection hung, its machine gone) is
//! waited for at most [`GIVE_UP`]. That is safe because a node uses its
//! cache only while it has heard its own hello within [`LEASE`], which is
//! shorter: a node that has not read a fence has not read the hellos it
//! said after it either, so by the time another node gives up on it, it
//! has stopped using its cache.
//!
//! The notices of this module start with `!`, which no change notice does:
//! `!hello N`, `!who N` (everyone says hello to N, which just started
//! listening), `!bye N` (N stops), `!fence N R` (round R of node N) and
//! `!ack N R M` (node M has read round R of node N).

use std::collections::HashMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use tokio::sync::Notify;

use portcullis_app::ports::Settle;

use crate::{SqlStore, lock};

/// How often a listening node says hello.
pub(crate) const HELLO_EVERY: Duration = Duration::from_secs(1);
/// How recently a node must have heard its own hello to use its cache.
pub const LEASE: Duration = Duration::from_secs(3);
/// The longest a round waits for a node's answer; longer than [`LEASE`].
pub const GIVE_UP: Duration = Duration::from_secs(4);
/// Nodes heard from this recently are waited for.
const KNOWN_FOR: Duration = Duration::from_secs(4);
/// How long after it starts listening a node takes to hear the others
/// answer its `!who`, before its first round.
const WARM_UP: Duration = Duration::from_millis(300);

/// Sends the notice `$1` on the channel of the connection's schema.
pub(crate) const NOTIFY: &str = "SELECT pg_notify(portcullis_channel(current_schema()), $1)";

/// What a node knows of the others (see the module's documentation).
pub(crate) struct Nodes {
    /// This node's name in the notices: random, new at each start.
    me: String,
    heard: Mutex<Heard>,
    /// Woken when another node answers a round.
    answered: Notify,
    /// Held while a round is out; the number of the last round sent.
    rounds: tokio::sync::Mutex<u64>,
    /// The count of this node's changes the last finished round covered.
    settled: AtomicU64,
}

#[derive(Default)]
struct Heard {
    /// When this node last heard its own hello.
    own_hello: Option<Instant>,
    /// When it last started listening.
    listening_since: Option<Instant>,
    /// The other nodes: when each was last heard, and the last round of
    /// this node's it answered.
    others: HashMap<String, (Instant, u64)>,
}

/// A notice of this module, read.
#[derive(Debug, PartialEq, Eq)]
enum Control<'a> {
    Hello(&'a str),
    Who(&'a str),
    Bye(&'a str),
    Fence(&'a str, u64),
    Ack { to: &'a str, round: u64, from: &'a str },
}

impl<'a> Control<'a> {
    /// `words`, the words of a notice of this module after its `!`; `None`
    /// if malformed or unknown.
    fn parse(words: &[&'a str]) -> Option<Self> {
        let round = |w: &str| w.parse::<u64>().ok();
        match *words {
            ["hello", n] => Some(Self::Hello(n)),
            ["who", n] => Some(Self::Who(n)),
            ["bye", n] => Some(Self::Bye(n)),
            ["fence", n, r] => round(r).map(|r| Self::Fence(n, r)),
            ["ack", to, r, from] => round(r).map(|round| Self::Ack { to, round, from }),
            _ => None,
        }
    }
}

/// What a node makes of a notice it read.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Read {
    /// A change notice: the caller marks what it names.
    Change,
    /// One of this module's, taken in; nothing to answer.
    Taken,
    /// One of this module's, to be answered with this notice.
    Answer(String),
}

impl Nodes {
    pub(crate) fn new() -> Self {
        Self {
            me: hex::encode(rand::random::<[u8; 8]>()),
            heard: Mutex::new(Heard::default()),
            answered: Notify::new(),
            rounds: tokio::sync::Mutex::new(0),
            settled: AtomicU64::new(0),
        }
    }

    /// This node's hello.
    pub(crate) fn hello(&self) -> String {
        format!("!hello {}", self.me)
    }

    /// This node's goodbye.
    pub(crate) fn bye(&self) -> String {
        format!("!bye {}", self.me)
    }

    /// This node has started listening: it is not leased until it hears its
    /// own hello, or the notice this answers, which asks the others to say
    /// theirs.
    pub(crate) fn listening(&self) -> String {
        let mut heard = lock(&self.heard);
        heard.own_hello = None;
        heard.listening_since = Some(Instant::now());
        format!("!who {}", self.me)
    }

    /// This node has stopped listening.
    pub(crate) fn deaf(&self) {
        lock(&self.heard).own_hello = None;
    }

    /// Whether this node heard its own hello within [`LEASE`].
    pub(crate) fn leased(&self) -> bool {
        lock(&self.heard).own_hello.is_some_and(|at| at.elapsed() < LEASE)
    }

    /// Reads the notice `payload`. A malformed or unknown one of this
    /// module's is taken in and ignored.
    pub(crate) fn read(&self, payload: &str) -> Read {
        let Some(rest) = payload.strip_prefix('!') else { return Read::Change };
        let words: Vec<&str> = rest.split_whitespace().collect();
        let Some(control) = Control::parse(&words) else { return Read::Taken };
        let now = Instant::now();
        let mut heard = lock(&self.heard);
        let mut seen = |node: &str| {
            heard.others.entry(node.to_owned()).or_insert((now, 0)).0 = now;
        };
        match control {
            Control::Hello(n) | Control::Who(n) if n == self.me => {
                heard.own_hello = Some(now);
                Read::Taken
            }
            Control::Bye(n) => {
                heard.others.remove(n);
                drop(heard);
                // A round waiting for it need not.
                self.answered.notify_waiters();
                Read::Taken
            }
            Control::Hello(n) => {
                seen(n);
                Read::Taken
            }
            Control::Who(n) => {
                seen(n);
                Read::Answer(self.hello())
            }
            Control::Fence(n, round) if n != self.me => {
                seen(n);
                Read::Answer(format!("!ack {n} {round} {}", self.me))
            }
            Control::Ack { to, round, from } if to == self.me => {
                let other = heard.others.entry(from.to_owned()).or_insert((now, 0));
                *other = (now, other.1.max(round));
                drop(heard);
                self.answered.notify_waiters();
                Read::Taken
            }
            Control::Fence(..) | Control::Ack { .. } => Read::Taken,
        }
    }

    /// The other nodes heard within [`KNOWN_FOR`]: those a round waits for.
    /// One that starts listening later has marked everything as it started.
    fn known(&self) -> Vec<String> {
        let heard = lock(&self.heard);
        heard.others.iter().filter(|(_, (at, _))| at.elapsed() < KNOWN_FOR).map(|(node, _)| node.clone()).collect()
    }

    /// Those of `nodes` that are still to answer `round` (and have not said goodbye).
    fn unanswered(&self, nodes: &[String], round: u64) -> Vec<String> {
        let heard = lock(&self.heard);
        nodes.iter().filter(|n| heard.others.get(*n).is_some_and(|(_, answered)| *answered < round)).cloned().collect()
    }

    fn warm(&self) -> Option<Instant> {
        lock(&self.heard).listening_since.map(|since| since + WARM_UP)
    }
}

impl SqlStore {
    /// Sends `payload` on this schema's channel, on a connection of the pool.
    pub(crate) async fn notify(&self, payload: &str) -> Result<(), sqlx::Error> {
        sqlx::query(NOTIFY).bind(payload).execute(&self.pool).await.map(drop)
    }

    /// Tells the other nodes that this one stops (on PostgreSQL), so that
    /// their rounds no longer wait for it.
    pub async fn leave(&self) {
        if let Some(follower) = &self.follower {
            let _ = self.notify(&follower.nodes.bye()).await;
        }
    }

    /// One round (see the module's documentation) covering every change
    /// this node has made so far.
    async fn round(&self, nodes: &Nodes, count: u64) {
        let mut rounds = nodes.rounds.lock().await;
        if nodes.settled.load(Ordering::Acquire) >= count {
            return;
        }
        let covers = self.marks.written();
        if let Some(warm) = nodes.warm() {
            tokio::time::sleep_until(warm.into()).await;
        }
        *rounds += 1;
        let round = *rounds;
        let others = nodes.known();
        if !others.is_empty() {
            if let Err(e) = self.notify(&format!("!fence {} {round}", nodes.me)).await {
                tracing::warn!(error = %e, "cannot send a fence to the other nodes");
                return;
            }
            let deadline = tokio::time::Instant::now() + GIVE_UP;
            loop {
                let answer = nodes.answered.notified();
                tokio::pin!(answer);
                answer.as_mut().enable();
                let waiting = nodes.unanswered(&others, round);
                if waiting.is_empty() {
                    break;
                }
                if tokio::time::timeout_at(deadline, answer).await.is_err() {
                    tracing::warn!(nodes = ?waiting, "other nodes did not answer within {GIVE_UP:?}; going on");
                    break;
                }
            }
        }
        nodes.settled.fetch_max(covers, Ordering::AcqRel);
    }
}

#[async_trait]
impl Settle for SqlStore {
    fn written(&self) -> u64 {
        self.marks.written()
    }

    async fn settle(&self, count: u64) {
        let Some(follower) = &self.follower else { return };
        if follower.nodes.settled.load(Ordering::Acquire) < count {
            self.round(&follower.nodes, count).await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn control_notices_are_read_and_change_notices_are_not() {
        assert_eq!(Control::parse(&["hello", "ab"]), Some(Control::Hello("ab")));
        assert_eq!(Control::parse(&["fence", "ab", "7"]), Some(Control::Fence("ab", 7)));
        assert_eq!(Control::parse(&["ack", "ab", "7", "cd"]), Some(Control::Ack { to: "ab", round: 7, from: "cd" }));
        let a = Nodes::new();
        assert_eq!(a.read("u12 p"), Read::Change);
        assert_eq!(a.read("*"), Read::Change);
        assert_eq!(a.read("!fence ab seven"), Read::Taken, "malformed, read as nothing");
        assert_eq!(a.read("!later ab"), Read::Taken, "unknown, read as nothing");
    }

    #[test]
    fn a_node_answers_the_fences_and_the_questions_of_others_only() {
        let a = Nodes::new();
        let b = Nodes::new();
        let fence = format!("!fence {} 3", b.me);
        assert_eq!(a.read(&fence), Read::Answer(format!("!ack {} 3 {}", b.me, a.me)));
        assert_eq!(b.read(&fence), Read::Taken, "its own fence");
        let who = b.listening();
        assert_eq!(a.read(&who), Read::Answer(a.hello()));
        assert_eq!(b.read(&who), Read::Taken);
        assert_eq!(a.read("u5"), Read::Change, "a change notice is the caller's");
    }

    #[test]
    fn a_node_is_leased_only_after_hearing_its_own_hello() {
        let a = Nodes::new();
        let _ = a.listening();
        assert!(!a.leased());
        let b = Nodes::new();
        let _ = a.read(&b.hello());
        assert!(!a.leased(), "another's hello is not ours");
        let _ = a.read(&a.hello());
        assert!(a.leased());
        a.deaf();
        assert!(!a.leased());
        let who = a.listening();
        let _ = a.read(&who);
        assert!(a.leased(), "its own question heard back does as well");
    }

    #[test]
    fn a_round_waits_for_every_node_heard_until_it_answers_or_leaves() {
        let a = Nodes::new();
        let (b, c) = (Nodes::new(), Nodes::new());
        let _ = a.read(&b.hello());
        let _ = a.read(&c.hello());
        let mut others = a.known();
        others.sort();
        let mut both = vec![b.me.clone(), c.me.clone()];
        both.sort();
        assert_eq!(others, both);
        assert_eq!(a.unanswered(&others, 1), others);
        let Read::Answer(ack) = b.read(&format!("!fence {} 1", a.me)) else { panic!("b answers") };
        let _ = a.read(&ack);
        assert_eq!(a.unanswered(&others, 1), vec![c.me.clone()]);
        assert_eq!(a.unanswered(&others, 2).len(), 2, "an answer covers its round, not the next");
        let d = Nodes::new();
        let _ = a.read(&d.listening());
        assert_eq!(a.unanswered(&others, 1), vec![c.me.clone()], "one that came later is not waited for");
        let _ = a.read(&c.bye());
        assert!(a.unanswered(&others, 1).is_empty(), "a node gone is not waited for");
    }
}
