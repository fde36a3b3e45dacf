//! `pgmove.progress`: change capture's position on the target, one row per plan, written in
//! the transaction of the changes it describes ([`save_sql`]).

use tokio_postgres::GenericClient;

use crate::pg::{quote, Endpoint, Lsn, PgError};

/// The plan `$1`'s applied LSN: the end of the last source transaction applied.
const APPLIED_SQL: &str = "SELECT applied_lsn FROM pgmove.progress WHERE plan_name = $1";

/// The plan `$1`'s row: applied LSN, transactions, changes, seconds since it last moved (the
/// target's clock).
const READ_SQL: &str = "SELECT applied_lsn, transactions, changes, extract(epoch FROM now() - updated_at)::float8 FROM pgmove.progress WHERE plan_name = $1";

/// A plan's change capture position.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Progress {
    pub applied_lsn: Lsn,
    pub transactions: i64,
    pub changes: i64,
    /// Seconds since the row last changed.
    pub idle_secs: f64,
}

/// The LSN the target has applied up to, if change capture ever ran.
pub async fn applied_lsn(
    c: &impl GenericClient,
    ep: &Endpoint,
    plan_name: &str,
) -> Result<Option<Lsn>, PgError> {
    let row = c
        .query_opt(APPLIED_SQL, &[&plan_name])
        .await
        .map_err(|e| ep.query_error("reading pgmove.progress", &e))?;
    Ok(row.map(|r| r.get(0)))
}

/// The plan's row, if change capture ever ran.
pub async fn read(
    c: &impl GenericClient,
    ep: &Endpoint,
    plan_name: &str,
) -> Result<Option<Progress>, PgError> {
    let row = c
        .query_opt(READ_SQL, &[&plan_name])
        .await
        .map_err(|e| ep.query_error("reading pgmove.progress", &e))?;
    Ok(row.map(|r| Progress {
        applied_lsn: r.get(0),
        transactions: r.get(1),
        changes: r.get(2),
        idle_secs: r.get(3),
    }))
}

/// The statement that moves the plan's position to `lsn`, adding `txns` and `changes`, for
/// the transaction that applied them.
pub fn save_sql(plan_name: &str, lsn: Lsn, txns: u64, changes: u64) -> String {
    format!(
        "INSERT INTO pgmove.progress (plan_name, applied_lsn, transactions, changes) VALUES ({p}, '{lsn}', {txns}, {changes})
         ON CONFLICT (plan_name) DO UPDATE SET applied_lsn = EXCLUDED.applied_lsn,
           transactions = pgmove.progress.transactions + EXCLUDED.transactions,
           changes = pgmove.progress.changes + EXCLUDED.changes, updated_at = now();",
        p = quote::literal(plan_name)
    )
}
