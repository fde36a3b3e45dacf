//! What a plan's runs left in the state store, read back for `pgmove report`: the steps with
//! the times they finished, the load's chunks, restore items, change capture's lag samples
//! (`pgmove.lag_samples`, written here too) and the cutover's record. Reads only, except
//! [`sample_lag`].

use tokio_postgres::GenericClient;

use crate::pg::{Endpoint, Lsn, PgError};

/// The plan `$1`'s finished steps: name, seconds since the epoch it finished at, detail; in
/// the order they finished.
const STEPS_SQL: &str =
    "SELECT step, extract(epoch FROM finished_at)::float8, detail FROM pgmove.steps
  WHERE plan_name = $1 ORDER BY finished_at, step";

/// The plan `$1`'s run: strategy, phase, started and updated (seconds since the epoch), last
/// error.
const RUN_SQL: &str = "SELECT strategy, phase, extract(epoch FROM started_at)::float8,
       extract(epoch FROM updated_at)::float8, last_error
  FROM pgmove.runs WHERE plan_name = $1";

/// The plan `$1`'s copied chunks: seconds since the epoch each finished at, its rows and
/// bytes; in the order they finished.
const CHUNKS_SQL: &str =
    "SELECT extract(epoch FROM finished_at)::float8, rows, bytes FROM pgmove.copy_progress
  WHERE plan_name = $1 ORDER BY finished_at";

/// The plan `$1`'s load record: started and finished (seconds since the epoch, finished NULL
/// while it runs), its chunks, estimated rows and bytes.
const LOAD_SQL: &str =
    "SELECT extract(epoch FROM started_at)::float8, extract(epoch FROM finished_at)::float8,
       chunks, estimated_rows, estimated_bytes
  FROM pgmove.load WHERE plan_name = $1";

/// The plan `$1`'s restored dump items (dump-restore): how many, the first and last finish
/// (seconds since the epoch).
const RESTORE_SQL: &str = "SELECT count(*), extract(epoch FROM min(finished_at))::float8,
       extract(epoch FROM max(finished_at))::float8
  FROM pgmove.restore_items WHERE plan_name = $1";

/// The plan `$1`'s change capture: applied position (text), source transactions and changes
/// applied, last update (seconds since the epoch).
const PROGRESS_SQL: &str =
    "SELECT applied_lsn::text, transactions, changes, extract(epoch FROM updated_at)::float8
  FROM pgmove.progress WHERE plan_name = $1";

/// The plan `$1`'s lag samples: seconds since the epoch, the lag in bytes (never negative),
/// the applied position (text); oldest first.
const LAG_SQL: &str = "SELECT extract(epoch FROM sampled_at)::float8,
       greatest(source_lsn - applied_lsn, 0)::float8, applied_lsn::text
  FROM pgmove.lag_samples WHERE plan_name = $1 ORDER BY sampled_at";

/// The plan `$1`'s cutover record: state, requested, fenced and finished (seconds since the
/// epoch), the final position (text) and the detail (its report as JSON, or the error).
const CUTOVER_SQL: &str =
    "SELECT state, extract(epoch FROM requested_at)::float8, extract(epoch FROM fenced_at)::float8,
       extract(epoch FROM finished_at)::float8, final_lsn::text, detail
  FROM pgmove.cutover WHERE plan_name = $1";

/// Records a lag sample of the plan `$1`: the source at `$2`, the target applied up to `$3`
/// (pg_lsn text); drops the plan's samples older than 14 days.
const SAMPLE_SQL: &str = "WITH old AS (DELETE FROM pgmove.lag_samples
      WHERE plan_name = $1 AND sampled_at < clock_timestamp() - interval '14 days')
  INSERT INTO pgmove.lag_samples (plan_name, source_lsn, applied_lsn)
  VALUES ($1, $2::text::pg_lsn, $3::text::pg_lsn) ON CONFLICT DO NOTHING";

/// A finished step.
#[derive(Clone, Debug, PartialEq)]
pub struct Step {
    pub name: String,
    pub finished_at: f64,
    pub detail: Option<String>,
}

/// The run row.
#[derive(Clone, Debug, PartialEq)]
pub struct Run {
    pub strategy: String,
    pub phase: String,
    pub started_at: f64,
    pub updated_at: f64,
    pub last_error: Option<String>,
}

/// A copied chunk.
#[derive(Clone, Debug, PartialEq)]
pub struct Chunk {
    pub finished_at: f64,
    pub rows: i64,
    pub bytes: i64,
}

/// The load record.
#[derive(Clone, Debug, PartialEq)]
pub struct Load {
    pub started_at: f64,
    pub finished_at: Option<f64>,
    pub chunks: i32,
    pub estimated_rows: Option<i64>,
    pub estimated_bytes: i64,
}

/// The restored dump items.
#[derive(Clone, Debug, PartialEq)]
pub struct Restore {
    pub items: i64,
    pub first_at: Option<f64>,
    pub last_at: Option<f64>,
}

/// Change capture's position.
#[derive(Clone, Debug, PartialEq)]
pub struct Progress {
    pub applied_lsn: String,
    pub transactions: i64,
    pub changes: i64,
    pub updated_at: f64,
}

/// A lag sample.
#[derive(Clone, Debug, PartialEq)]
pub struct LagSample {
    pub at: f64,
    pub lag_bytes: f64,
    pub applied_lsn: String,
}

/// The cutover record.
#[derive(Clone, Debug, PartialEq)]
pub struct Cutover {
    pub state: String,
    pub requested_at: f64,
    pub fenced_at: Option<f64>,
    pub finished_at: Option<f64>,
    pub final_lsn: Option<String>,
    pub detail: Option<String>,
}

/// Everything recorded of a plan (what the schema has: a table an older schema lacks reads as
/// empty).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct History {
    pub run: Option<Run>,
    pub steps: Vec<Step>,
    pub load: Option<Load>,
    pub chunks: Vec<Chunk>,
    pub restore: Option<Restore>,
    pub progress: Option<Progress>,
    pub lag: Vec<LagSample>,
    pub cutover: Option<Cutover>,
}

/// Reads what the plan's runs recorded on the target (`c`). Nothing when the target has no
/// `pgmove` schema.
pub async fn read(
    c: &tokio_postgres::Client,
    ep: &Endpoint,
    plan_name: &str,
) -> Result<History, PgError> {
    let mut h = History::default();
    let err = |what: &'static str| move |e: tokio_postgres::Error| ep.query_error(what, &e);
    if !super::has_table(c, ep, "runs").await? {
        return Ok(h);
    }
    if let Some(r) = c
        .query_opt(RUN_SQL, &[&plan_name])
        .await
        .map_err(err("reading pgmove.runs"))?
    {
        h.run = Some(Run {
            strategy: r.get(0),
            phase: r.get(1),
            started_at: r.get(2),
            updated_at: r.get(3),
            last_error: r.get(4),
        });
    }
    h.steps = c
        .query(STEPS_SQL, &[&plan_name])
        .await
        .map_err(err("reading pgmove.steps"))?
        .iter()
        .map(|r| Step {
            name: r.get(0),
            finished_at: r.get(1),
            detail: r.get(2),
        })
        .collect();
    h.chunks = c
        .query(CHUNKS_SQL, &[&plan_name])
        .await
        .map_err(err("reading pgmove.copy_progress"))?
        .iter()
        .map(|r| Chunk {
            finished_at: r.get(0),
            rows: r.get(1),
            bytes: r.get(2),
        })
        .collect();
    let r = c
        .query_one(RESTORE_SQL, &[&plan_name])
        .await
        .map_err(err("reading pgmove.restore_items"))?;
    let items: i64 = r.get(0);
    if items > 0 {
        h.restore = Some(Restore {
            items,
            first_at: r.get(1),
            last_at: r.get(2),
        });
    }
    if let Some(r) = c
        .query_opt(PROGRESS_SQL, &[&plan_name])
        .await
        .map_err(err("reading pgmove.progress"))?
    {
        h.progress = Some(Progress {
            applied_lsn: r.get(0),
            transactions: r.get(1),
            changes: r.get(2),
            updated_at: r.get(3),
        });
    }
    if let Some(r) = c
        .query_opt(CUTOVER_SQL, &[&plan_name])
        .await
        .map_err(err("reading pgmove.cutover"))?
    {
        h.cutover = Some(Cutover {
            state: r.get(0),
            requested_at: r.get(1),
            fenced_at: r.get(2),
            finished_at: r.get(3),
            final_lsn: r.get(4),
            detail: r.get(5),
        });
    }
    if super::has_table(c, ep, "load").await? {
        if let Some(r) = c
            .query_opt(LOAD_SQL, &[&plan_name])
            .await
            .map_err(err("reading pgmove.load"))?
        {
            h.load = Some(Load {
                started_at: r.get(0),
                finished_at: r.get(1),
                chunks: r.get(2),
                estimated_rows: r.get(3),
                estimated_bytes: r.get(4),
            });
        }
    }
    if super::has_table(c, ep, "lag_samples").await? {
        h.lag = c
            .query(LAG_SQL, &[&plan_name])
            .await
            .map_err(err("reading pgmove.lag_samples"))?
            .iter()
            .map(|r| LagSample {
                at: r.get(0),
                lag_bytes: r.get(1),
                applied_lsn: r.get(2),
            })
            .collect();
    }
    Ok(h)
}

/// Records that the source was at `source` while the target had applied up to `applied`.
pub async fn sample_lag(
    c: &impl GenericClient,
    ep: &Endpoint,
    plan_name: &str,
    source: Lsn,
    applied: Lsn,
) -> Result<(), PgError> {
    c.execute(
        SAMPLE_SQL,
        &[&plan_name, &source.to_string(), &applied.to_string()],
    )
    .await
    .map_err(|e| ep.query_error("writing pgmove.lag_samples", &e))?;
    Ok(())
}
