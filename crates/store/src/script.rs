//! Changes made of several statements, run as one transaction.
//!
//! On SQLite every statement is a trip to the connection's own thread, and
//! `BEGIN` and `COMMIT` are two more: each trip wakes that thread and then
//! the caller's. A [`Script`] sends the whole transaction, `BEGIN` to
//! `COMMIT`, as one query (SQLite runs the statements of a query in turn),
//! so a login's writes cost one trip. On PostgreSQL a prepared statement
//! holds one statement: there the statements go one by one inside a
//! transaction, as any other change does.
//!
//! On SQLite a script also reads `PRAGMA data_version` on its way, first
//! thing, for the read cache (see `writer`): while
//! writes come often, its readers need no trips of their own to know
//! whether another process has changed the file.
//!
//! A script whose caller stops waiting (a client gone, a time limit) may
//! leave its transaction open on the writing connection; the writer
//! remembers that and rolls it back before its next holder writes (see
//! `SqlStore::write`).

use std::sync::atomic::Ordering;

use sqlx::any::{AnyArguments, AnyRow};
use sqlx::query::Query;
use sqlx::{Any, AnyConnection};

use crate::WriteConn;
use crate::writer::Held;

/// A query on the `Any` driver.
pub(crate) type AnyQuery<'a> = Query<'a, Any, AnyArguments<'a>>;

/// A value for one parameter of a statement.
#[derive(Clone, Copy, Debug)]
pub(crate) enum Arg<'a> {
    Int(i64),
    MaybeInt(Option<i64>),
    Text(&'a str),
    MaybeText(Option<&'a str>),
}

impl<'a> Arg<'a> {
    fn bind(self, q: AnyQuery<'a>) -> AnyQuery<'a> {
        match self {
            Self::Int(v) => q.bind(v),
            Self::MaybeInt(v) => q.bind(v),
            Self::Text(v) => q.bind(v),
            Self::MaybeText(v) => q.bind(v),
        }
    }
}

/// Binds `args` to `q` in order.
pub(crate) fn bind_all<'a>(q: AnyQuery<'a>, args: &[Arg<'a>]) -> AnyQuery<'a> {
    args.iter().fold(q, |q, a| a.bind(q))
}

/// Statements that make one change together, each numbering its
/// parameters from `$1`.
pub(crate) struct Script {
    statements: Vec<String>,
    /// How many parameters each statement takes (its highest `$n`).
    arity: Vec<usize>,
    /// The data version's reading, then `BEGIN; …; COMMIT`, the parameters
    /// numbered on from one statement to the next, for SQLite.
    joined: String,
}

impl Script {
    /// A script of these statements, in this order.
    pub(crate) fn new(statements: Vec<String>) -> Self {
        let mut joined = format!("{READ_VERSION}; BEGIN; ");
        let mut arity = Vec::with_capacity(statements.len());
        for s in &statements {
            let (text, n) = renumber(s, arity.iter().sum());
            joined.push_str(&text);
            joined.push_str("; ");
            arity.push(n);
        }
        joined.push_str("COMMIT");
        Self { statements, arity, joined }
    }

    /// Runs the statements as one transaction, `args[i]` bound to
    /// statement `i`, and answers the rows they return, in order. On an
    /// error nothing of it stays.
    pub(crate) async fn run<'a>(
        &'a self,
        conn: &mut WriteConn<'_>,
        args: &[&[Arg<'a>]],
    ) -> Result<Vec<AnyRow>, sqlx::Error> {
        if !args.iter().map(|a| a.len()).eq(self.arity.iter().copied()) {
            let given: Vec<usize> = args.iter().map(|a| a.len()).collect();
            return Err(sqlx::Error::Protocol(format!("script takes {:?} parameters, given {given:?}", self.arity)));
        }
        let marks = conn.marks();
        match &mut conn.held {
            Held::Writer(conn, writer) => {
                let q = args.iter().fold(sqlx::query(&self.joined), |q, a| bind_all(q, a));
                // Cleared only if this future is not dropped on the way.
                writer.unfinished.store(true, Ordering::Relaxed);
                let asked = std::time::Instant::now();
                let rows = q.fetch_all(&mut **conn).await;
                writer.unfinished.store(false, Ordering::Relaxed);
                let mut rows = match rows {
                    Ok(rows) => rows,
                    Err(e) => {
                        // A statement failed and the ones after it, `COMMIT`
                        // among them, did not run.
                        roll_back(conn).await;
                        return Err(e);
                    }
                };
                // The first row is the reading (its statement always
                // answers one); the change stands whatever becomes of it.
                if !rows.is_empty() {
                    match sqlx::Row::try_get::<i64, _>(&rows.remove(0), 0) {
                        Ok(version) => writer.observe(version, asked, marks),
                        Err(e) => tracing::warn!(error = %e, "data version unreadable"),
                    }
                }
                Ok(rows)
            }
            Held::Pooled(conn) => {
                let mut tx = sqlx::Connection::begin(&mut **conn).await?;
                let mut rows = Vec::new();
                for (sql, a) in self.statements.iter().zip(args) {
                    rows.extend(bind_all(sqlx::query(sql), a).fetch_all(&mut *tx).await?);
                }
                tx.commit().await?;
                Ok(rows)
            }
        }
    }
}

/// The first statement of a script on SQLite: one row, one number.
pub(crate) const READ_VERSION: &str = "SELECT data_version FROM pragma_data_version";

/// Rolls back whatever transaction a script left open on `conn`. When none
/// is open SQLite answers with an error, which is expected and dropped.
pub(crate) async fn roll_back(conn: &mut AnyConnection) {
    if let Err(e) = sqlx::query("ROLLBACK").execute(conn).await {
        tracing::trace!(error = %e, "nothing to roll back");
    }
}

/// `sql` with every `$n` made `$(n + offset)`, and the highest `n` in it.
fn renumber(sql: &str, offset: usize) -> (String, usize) {
    let mut out = String::with_capacity(sql.len() + 16);
    let mut highest = 0;
    let mut rest = sql;
    while let Some(at) = rest.find('$') {
        out.push_str(&rest[..=at]);
        let after = &rest[at + 1..];
        let digits = after.bytes().take_while(u8::is_ascii_digit).count();
        match after[..digits].parse::<usize>() {
            Ok(n) => {
                highest = highest.max(n);
                out.push_str(&(n + offset).to_string());
            }
            Err(_) => out.push_str(&after[..digits]),
        }
        rest = &after[digits..];
    }
    out.push_str(rest);
    (out, highest)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parameters_are_numbered_on_through_the_statements() {
        assert_eq!(
            renumber("UPDATE t SET a = $1 WHERE id = $2 OR b = $1", 3),
            ("UPDATE t SET a = $4 WHERE id = $5 OR b = $4".to_owned(), 2)
        );
        assert_eq!(renumber("SELECT 1", 5), ("SELECT 1".to_owned(), 0));
        assert_eq!(renumber("SELECT $10, '$'", 0), ("SELECT $10, '$'".to_owned(), 10));
        let s = Script::new(vec!["DELETE FROM a WHERE k = $1".into(), "INSERT INTO b VALUES ($1, $2)".into()]);
        assert_eq!(
            s.joined,
            "SELECT data_version FROM pragma_data_version; BEGIN; DELETE FROM a WHERE k = $1; \
             INSERT INTO b VALUES ($2, $3); COMMIT"
        );
        assert_eq!(s.arity, [1, 2]);
    }
}
