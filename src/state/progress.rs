//! `pgmove.progress`: change capture's position on the target, one row per plan, written in
//! the transaction of the changes it describes ([`save_sql`]).

use tokio_postgres::GenericClient;

use crate::pg::{quote, Endpoint, Lsn, PgError};

/// The plan `$1`'s applied LSN: the end of the last source transaction applied.
const APPLIED_SQL: &str = "SELECT applied_lsn FROM pgmove.progress WHERE plan_name = $1";

/// The plan `$1`'s row: applied LSN, transactions, changes, seconds since it last moved (the
/// target's clock).
const READ_SQL: &str = "SELECT applied_lsn, transactions, changes, extract(epoch FROM now() - updated_at)::float8 FROM pgmove.progress WHERE plan_name = $1";

/// The plan `$1`'s rate of change capture: source WAL bytes applied per second over the last
/// measuring window ([`RATE_WINDOW_SECS`]) closed; while nothing was applied for longer than
/// a window, over the window open since (falling to 0 when stalled). NULL before a first
/// window closed. Only on a schema at version 2 or later.
const RATE_SQL: &str = "SELECT CASE WHEN now() - updated_at > interval '5 s' AND window_at IS NOT NULL
            THEN (applied_lsn - window_lsn)::float8 / GREATEST(extract(epoch FROM now() - window_at)::float8, 0.001)
            ELSE bytes_per_second END
    FROM pgmove.progress WHERE plan_name = $1";

/// How long the window over which change capture's rate is measured lasts, at least (the
/// `interval '5 s'` of `RATE_SQL` and [`save_sql`]).
pub const RATE_WINDOW_SECS: u64 = 5;

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

/// The plan's rate of change capture in source WAL bytes applied per second (see
/// `RATE_SQL`), if measured.
pub async fn rate(
    c: &impl GenericClient,
    ep: &Endpoint,
    plan_name: &str,
) -> Result<Option<f64>, PgError> {
    let row = c
        .query_opt(RATE_SQL, &[&plan_name])
        .await
        .map_err(|e| ep.query_error("reading pgmove.progress", &e))?;
    Ok(row.and_then(|r| r.get(0)))
}

/// The statement that moves the plan's position to `lsn`, adding `txns` and `changes`, for
/// the transaction that applied them. It also measures the rate: once the window open since
/// `window_at` (at `window_lsn`) lasted [`RATE_WINDOW_SECS`], the bytes applied over it per
/// second go to `bytes_per_second` and a new window opens.
pub fn save_sql(plan_name: &str, lsn: Lsn, txns: u64, changes: u64) -> String {
    format!(
        "INSERT INTO pgmove.progress (plan_name, applied_lsn, transactions, changes, window_lsn, window_at) VALUES ({p}, '{lsn}', {txns}, {changes}, '{lsn}', now())
         ON CONFLICT (plan_name) DO UPDATE SET applied_lsn = EXCLUDED.applied_lsn,
           transactions = pgmove.progress.transactions + EXCLUDED.transactions,
           changes = pgmove.progress.changes + EXCLUDED.changes, updated_at = now(),
           bytes_per_second = CASE WHEN pgmove.progress.window_at IS NULL OR now() - pgmove.progress.window_at < interval '{w} s' THEN pgmove.progress.bytes_per_second
             ELSE (EXCLUDED.applied_lsn - pgmove.progress.window_lsn)::float8 / extract(epoch FROM now() - pgmove.progress.window_at)::float8 END,
           window_lsn = CASE WHEN pgmove.progress.window_at IS NULL OR now() - pgmove.progress.window_at >= interval '{w} s' THEN EXCLUDED.applied_lsn ELSE pgmove.progress.window_lsn END,
           window_at = CASE WHEN pgmove.progress.window_at IS NULL OR now() - pgmove.progress.window_at >= interval '{w} s' THEN now() ELSE pgmove.progress.window_at END;",
        p = quote::literal(plan_name),
        w = RATE_WINDOW_SECS
    )
}
