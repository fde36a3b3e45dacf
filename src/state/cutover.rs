//! `pgmove.cutover`: one row per plan, the cutover's state ([`CutoverState`]) and what undoing
//! its fence needs (the source's `default_transaction_read_only` before it).

use tokio_postgres::GenericClient;

use super::{runs, CutoverState, Phase};
use crate::pg::{quote, Endpoint, Lsn, PgError};

/// The plan `$1`'s row: state, the read-only setting to restore, when the fence was recorded
/// (text), the detail (the report as JSON, or the error).
const ROW_SQL: &str =
    "SELECT state, prev_read_only, fenced_at::text, detail FROM pgmove.cutover WHERE plan_name = $1";

/// Seconds since the plan `$1`'s recorded fence (the target's clock); NULL without one.
const OUTAGE_SQL: &str =
    "SELECT extract(epoch FROM clock_timestamp() - fenced_at)::float8 FROM pgmove.cutover WHERE plan_name = $1";

/// Records a cutover request for plan `$1` in state `$3` (requested, or fenced when resuming
/// a fence), with the setting `$2` to restore; keeps the recorded fence time only for a
/// resumed fence.
const REQUEST_SQL: &str =
    "INSERT INTO pgmove.cutover (plan_name, state, prev_read_only) VALUES ($1, $3, $2)
             ON CONFLICT (plan_name) DO UPDATE SET state = EXCLUDED.state,
               requested_at = now(), finished_at = NULL, detail = NULL,
               prev_read_only = EXCLUDED.prev_read_only,
               fenced_at = CASE WHEN EXCLUDED.state = 'fenced' THEN pgmove.cutover.fenced_at END";

/// Records that the fence of plan `$1` is about to be applied, with the setting `$2` to
/// restore, and its time.
const FENCING_SQL: &str = "UPDATE pgmove.cutover SET state = 'fencing', fenced_at = clock_timestamp(), prev_read_only = $2 WHERE plan_name = $1";

/// Records that the fence of plan `$1` is applied.
const FENCED_SQL: &str = "UPDATE pgmove.cutover SET state = 'fenced' WHERE plan_name = $1";

/// Records the final LSN `$2` (text) of plan `$1`'s cutover.
const FINAL_LSN_SQL: &str =
    "UPDATE pgmove.cutover SET final_lsn = $2::text::pg_lsn WHERE plan_name = $1";

/// Records that plan `$1`'s cutover ended in state `$2` (fenced or failed) with error `$3`.
const ENDED_SQL: &str =
    "UPDATE pgmove.cutover SET state = $2, finished_at = now(), detail = $3 WHERE plan_name = $1";

/// A plan's cutover row.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Cutover {
    pub state: CutoverState,
    /// The source database's `default_transaction_read_only` before the fence (none: unset).
    pub prev_read_only: Option<String>,
    pub fenced_at: Option<String>,
    pub detail: Option<String>,
}

/// The plan's cutover row, if a cutover was requested.
pub async fn read(
    c: &impl GenericClient,
    ep: &Endpoint,
    plan_name: &str,
) -> Result<Option<Cutover>, PgError> {
    let row = c
        .query_opt(ROW_SQL, &[&plan_name])
        .await
        .map_err(|e| ep.query_error("reading pgmove.cutover", &e))?;
    Ok(row.map(|r| Cutover {
        state: CutoverState::parse(r.get(0)),
        prev_read_only: r.get(1),
        fenced_at: r.get(2),
        detail: r.get(3),
    }))
}

/// The plan's cutover state, with the server's error as is (for a watcher that reconnects).
pub async fn state(
    c: &impl GenericClient,
    plan_name: &str,
) -> Result<Option<CutoverState>, tokio_postgres::Error> {
    Ok(c.query_opt(ROW_SQL, &[&plan_name])
        .await?
        .map(|r| CutoverState::parse(r.get(0))))
}

/// Seconds since the recorded fence, when there is one and it can be read.
pub async fn outage_secs(c: &impl GenericClient, plan_name: &str) -> Option<f64> {
    match c.query_opt(OUTAGE_SQL, &[&plan_name]).await {
        Ok(Some(r)) => r.get::<_, Option<f64>>(0),
        _ => None,
    }
}

/// Records a cutover request (`resumed_fence`: a killed cutover's fence is still in place).
pub async fn request(
    c: &impl GenericClient,
    ep: &Endpoint,
    plan_name: &str,
    prev_read_only: Option<&str>,
    resumed_fence: bool,
) -> Result<(), PgError> {
    let state = if resumed_fence {
        CutoverState::Fenced
    } else {
        CutoverState::Requested
    };
    c.execute(REQUEST_SQL, &[&plan_name, &prev_read_only, &state.as_str()])
        .await
        .map_err(|e| ep.query_error("recording the cutover request", &e))?;
    Ok(())
}

/// Records the fence before it is applied: the setting to restore and the outage's start.
pub async fn fencing(
    c: &impl GenericClient,
    ep: &Endpoint,
    plan_name: &str,
    prev_read_only: Option<&str>,
) -> Result<(), PgError> {
    c.execute(FENCING_SQL, &[&plan_name, &prev_read_only])
        .await
        .map_err(|e| ep.query_error("recording the fence", &e))?;
    Ok(())
}

/// Records that the fence is applied.
pub async fn fenced(c: &impl GenericClient, ep: &Endpoint, plan_name: &str) -> Result<(), PgError> {
    c.execute(FENCED_SQL, &[&plan_name])
        .await
        .map_err(|e| ep.query_error("recording the fence", &e))?;
    Ok(())
}

/// Records the final LSN.
pub async fn final_lsn(
    c: &impl GenericClient,
    ep: &Endpoint,
    plan_name: &str,
    lsn: Lsn,
) -> Result<(), PgError> {
    c.execute(FINAL_LSN_SQL, &[&plan_name, &lsn.to_string()])
        .await
        .map_err(|e| ep.query_error("recording the final LSN", &e))?;
    Ok(())
}

/// The transaction that records the cutover done (`detail`: the report) and the run live, with
/// `also` (statements, e.g. the step record) committed in it.
pub fn done_sql(plan_name: &str, detail: &str, also: &str) -> String {
    format!(
        "BEGIN;
                 UPDATE pgmove.cutover SET state = 'done', finished_at = now(), detail = {d} WHERE plan_name = {p};
                 {live}                 {also}
                 COMMIT;",
        p = quote::literal(plan_name),
        d = quote::literal(detail),
        live = runs::set_phase_sql(plan_name, &Phase::Live),
    )
}

/// Records that the cutover ended without going live: `fenced` (the source stays read-only)
/// or failed, with the error.
pub async fn ended(
    c: &impl GenericClient,
    plan_name: &str,
    still_fenced: bool,
    error: Option<&str>,
) -> Result<u64, tokio_postgres::Error> {
    let state = if still_fenced {
        CutoverState::Fenced
    } else {
        CutoverState::Failed
    };
    c.execute(ENDED_SQL, &[&plan_name, &state.as_str(), &error])
        .await
}
