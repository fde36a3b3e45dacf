//! `pgmove.load`: the latest copy-cdc load of a plan, when its copy step started and finished
//! and what it set out to copy, so `pgmove status` shows its rates and time left.

use tokio_postgres::GenericClient;

use crate::pg::{Endpoint, PgError};

/// Starts the plan `$1`'s load now: `$2` chunks, `$3` estimated rows (NULL: unknown), `$4`
/// estimated heap bytes; forgets the load before it.
const START_SQL: &str = "INSERT INTO pgmove.load (plan_name, chunks, estimated_rows, estimated_bytes) VALUES ($1, $2, $3, $4)
    ON CONFLICT (plan_name) DO UPDATE SET started_at = now(), finished_at = NULL, chunks = EXCLUDED.chunks,
      estimated_rows = EXCLUDED.estimated_rows, estimated_bytes = EXCLUDED.estimated_bytes";

/// Marks the plan `$1`'s load's chunks all copied now.
const FINISH_SQL: &str = "UPDATE pgmove.load SET finished_at = now() WHERE plan_name = $1";

/// The plan `$1`'s load: started (text), finished (text), chunks, estimated rows, estimated
/// bytes, then over the chunks recorded since it started (and before it finished): how many,
/// their rows and bytes; and the seconds from its start to its end (now, while it runs), on
/// the target's clock.
const READ_SQL: &str =
    "SELECT l.started_at::text, l.finished_at::text, l.chunks, l.estimated_rows, l.estimated_bytes,
       count(c.chunk), COALESCE(sum(c.rows), 0)::bigint, COALESCE(sum(c.bytes), 0)::bigint,
       extract(epoch FROM COALESCE(l.finished_at, now()) - l.started_at)::float8
  FROM pgmove.load l
  LEFT JOIN pgmove.copy_progress c ON c.plan_name = l.plan_name AND c.finished_at >= l.started_at
       AND c.finished_at <= COALESCE(l.finished_at, 'infinity')
 WHERE l.plan_name = $1
 GROUP BY l.plan_name";

/// A plan's latest load as recorded, with the chunks it copied so far.
#[derive(Clone, Debug, PartialEq)]
pub struct Load {
    pub started_at: String,
    pub finished_at: Option<String>,
    pub chunks: i32,
    pub estimated_rows: Option<i64>,
    pub estimated_bytes: i64,
    pub chunks_done: i64,
    pub rows: i64,
    pub bytes: i64,
    /// From its start to its end, or to now while it runs.
    pub elapsed_secs: f64,
}

/// Records that the plan's load starts now (replacing the record of an earlier one).
pub async fn start(
    c: &impl GenericClient,
    ep: &Endpoint,
    plan_name: &str,
    chunks: i32,
    estimated_rows: Option<i64>,
    estimated_bytes: i64,
) -> Result<(), PgError> {
    c.execute(
        START_SQL,
        &[&plan_name, &chunks, &estimated_rows, &estimated_bytes],
    )
    .await
    .map_err(|e| ep.query_error("writing pgmove.load", &e))?;
    Ok(())
}

/// Records that the plan's load copied its last chunk.
pub async fn finish(c: &impl GenericClient, ep: &Endpoint, plan_name: &str) -> Result<(), PgError> {
    c.execute(FINISH_SQL, &[&plan_name])
        .await
        .map_err(|e| ep.query_error("writing pgmove.load", &e))?;
    Ok(())
}

/// The plan's latest load, if a run of this pgmove recorded one.
pub async fn read(
    c: &impl GenericClient,
    ep: &Endpoint,
    plan_name: &str,
) -> Result<Option<Load>, PgError> {
    let row = c
        .query_opt(READ_SQL, &[&plan_name])
        .await
        .map_err(|e| ep.query_error("reading pgmove.load", &e))?;
    Ok(row.map(|r| Load {
        started_at: r.get(0),
        finished_at: r.get(1),
        chunks: r.get(2),
        estimated_rows: r.get(3),
        estimated_bytes: r.get(4),
        chunks_done: r.get(5),
        rows: r.get(6),
        bytes: r.get(7),
        elapsed_secs: r.get(8),
    }))
}

/// What the dry run shows of the load's record: written before the first chunk.
pub const PREVIEW_START_SQL: &str = "INSERT INTO pgmove.load (plan_name, chunks, estimated_rows, estimated_bytes) VALUES (...) ON CONFLICT (plan_name) DO UPDATE ...;";

/// What the dry run shows of the load's record: written after the last chunk.
pub const PREVIEW_FINISH_SQL: &str =
    "UPDATE pgmove.load SET finished_at = now() WHERE plan_name = ...;";
