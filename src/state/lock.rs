//! The plan lock: one `pgmove apply` per plan and target at a time. A session-level advisory
//! lock on the target whose key is `KEY_SQL` of the plan name, held by apply's state
//! connection (released when it ends, also when the process is killed).

use tokio_postgres::Client;

use crate::pg::{Endpoint, PgError};

/// The lock's key for the plan `$1`, the one expression every statement below uses: a bigint
/// (the one-bigint form of the advisory lock functions), which `pg_locks` shows split as
/// classid = key >> 32, objid = key & 0xffffffff, objsubid = 1.
macro_rules! key {
    () => {
        "hashtext('pgmove:' || $1::text)::bigint"
    };
}

/// The key as users can type it, for messages.
pub fn key_display(plan_name: &str) -> String {
    format!("hashtext('pgmove:{plan_name}')")
}

/// Takes the plan `$1`'s lock if free: true when taken.
const TAKE_SQL: &str = concat!("SELECT pg_try_advisory_lock(", key!(), ")");

/// Releases the plan `$1`'s lock held by this session: true when it was held.
const RELEASE_SQL: &str = concat!("SELECT pg_advisory_unlock(", key!(), ")");

/// The sessions other than this one holding the plan `$1`'s lock in this database (pids, in
/// order): an apply (or cutover's own applier) of the plan runs while there is one.
const HOLDERS_SQL: &str = concat!(
    "SELECT l.pid FROM pg_catalog.pg_locks l, (SELECT ",
    key!(),
    " AS k) h \
     WHERE l.locktype = 'advisory' AND l.granted AND l.objsubid = 1 \
       AND l.database = (SELECT oid FROM pg_catalog.pg_database WHERE datname = current_database()) \
       AND l.classid = ((h.k >> 32) & 4294967295)::oid \
       AND l.objid = (h.k & 4294967295)::oid \
       AND l.pid <> pg_backend_pid() \
     ORDER BY l.pid"
);

/// Takes the plan's lock on `c`'s session if free: true when taken.
pub async fn take(c: &Client, ep: &Endpoint, plan_name: &str) -> Result<bool, PgError> {
    let row = c
        .query_one(TAKE_SQL, &[&plan_name])
        .await
        .map_err(|e| ep.query_error("taking the plan's advisory lock", &e))?;
    Ok(row.get(0))
}

/// Releases the plan's lock held by `c`'s session.
pub async fn release(c: &Client, ep: &Endpoint, plan_name: &str) -> Result<(), PgError> {
    c.execute(RELEASE_SQL, &[&plan_name])
        .await
        .map_err(|e| ep.query_error("releasing the plan's advisory lock", &e))?;
    Ok(())
}

/// The pids of the other sessions holding the plan's lock (a running apply), in order.
pub async fn holders(c: &Client, ep: &Endpoint, plan_name: &str) -> Result<Vec<i32>, PgError> {
    let rows = c
        .query(HOLDERS_SQL, &[&plan_name])
        .await
        .map_err(|e| ep.query_error("reading pg_locks for the plan's advisory lock", &e))?;
    Ok(rows.iter().map(|r| r.get(0)).collect())
}

/// Whether an apply of the plan runs now (another session holds its lock).
pub async fn apply_running(c: &Client, ep: &Endpoint, plan_name: &str) -> Result<bool, PgError> {
    Ok(!holders(c, ep, plan_name).await?.is_empty())
}
