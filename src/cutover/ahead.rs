//! Verifying ahead of the fence: the full comparison runs while the source still takes
//! writes, and only what may have changed since is compared again inside the write outage.
//!
//! 1. **Request.** Cutover records a pre-verification request for the plan
//!    (`crate::state::touched::request`) and writes a cutover marker on the source, so even an
//!    idle apply commits a transaction. Change capture reads the request when a target
//!    transaction begins and, from then on, records in each target transaction (the same one
//!    as the changes: exactly once) the replica-identity keys it touched; the first such
//!    transaction acknowledges the request (`crate::cdc::touched`). Cutover waits for the
//!    acknowledgement: every change applied after it is recorded.
//! 2. **Pre-verification.** A full `verify` at the plan's level, begun after the
//!    acknowledgement, while replicating. Chunks differ where rows were in flight (the target
//!    lags): each differing chunk is then located, by bisection, to its differing keys
//!    (sub-ranges that match, and rows compared one by one), up to 2,000 keys a chunk.
//! 3. **Re-check** after the fence, the final catch-up, sequences and large objects
//!    ([`crate::verify::recheck`]): the located differing keys (or whole the chunks that could
//!    not be located), the rows of every touched key,
//!    and whole every table touched without a usable key; sequences and large objects in full.
//!
//! **Why an untouched chunk that matched is identical at the end.** Let chunk C match when
//! the target was read at time T (after the acknowledgement) and the source at time S (any
//! order of T and S). Target: a row of C changed after T would have been changed by change
//! capture after the acknowledgement, so recorded; untouched rows are as they were at T.
//! Source: a change committed after S has a position past everything the acknowledging
//! transaction applied (that transaction committed before the pre-verification began), so
//! it is applied after the acknowledgement: recorded. So the untouched rows of C are on both
//! sides as they were when C matched, and the touched ones are compared again. (A match of
//! C's count and checksum as a whole makes its rows the same on both sides but for an md5
//! collision of the sums: the guarantee of verify itself.) The same holds for each sub-range
//! the bisection of a differing chunk found matching, and for each row it compared one by one
//! and found equal (all compared after the acknowledgement): only the keys it found differing,
//! and the touched ones, can differ at the end. At `counts` a touched table is counted again.
//!
//! **What it cannot see:** a write to the target by anyone but pgmove between the
//! pre-verification and the fence is not recorded (a trigger on the target is not an
//! option: it would fire for pgmove's own writes). The target must not be written during a
//! migration (README says so); `pgmove verify` after cutover compares everything. DDL or
//! TRUNCATE replicated meanwhile, or objects that differed at the pre-verification, make the
//! re-check a full verification. The object inventory is compared again in any case (a
//! schema change change capture did not carry, `cdc.ddl: ignore`, is seen); objects'
//! properties (owners, privileges, comments) only ahead. A cutover resumed on a fenced source,
//! and one of a pglogical run (pglogical applies, it records nothing), verify everything
//! inside the outage as before.

use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio_postgres::Client;

use crate::verify::{RecheckCounts, VerifyOptions, VerifyReport};

use super::{emit_marker, CutoverJob, StepError};

/// The pre-verification: its report, how long it took, and the options it ran with.
pub(super) struct Ahead {
    pub report: VerifyReport,
    /// Its differing chunks located to their differing keys.
    pub located: crate::verify::Located,
    pub secs: f64,
    pub opts: VerifyOptions,
}

/// The verify options of the plan at `level`.
pub(super) fn options(job: &CutoverJob, level: crate::verify::Level) -> VerifyOptions {
    let objects = job.plan.objects.clone();
    VerifyOptions {
        level,
        schemas: job.plan.objects.schemas.clone(),
        include: Arc::new(move |s: &str, t: &str| objects.includes(s, t)),
        jobs: job.plan.jobs.max(1) as usize,
        large_objects: job.plan.objects.large_objects,
        progress: job.progress,
        ..Default::default()
    }
    .with_plan(&job.plan)
}

/// Requests the recording of touched keys, waits for change capture's acknowledgement (until
/// `deadline`), then verifies everything.
pub(super) async fn pre_verify(
    job: &CutoverJob,
    source: &Client,
    target: &Client,
    level: crate::verify::Level,
    deadline: Instant,
) -> Result<Ahead, StepError> {
    let plan = &job.plan.name;
    crate::state::touched::request(target, &job.target, plan).await?;
    let step = job.progress.step("cutover: pre-verification requested", 0);
    let mut marker_at: Option<Instant> = None;
    loop {
        if crate::state::touched::acked(target, &job.target, plan).await? {
            break;
        }
        // A marker now and then: an idle change capture commits a transaction for it.
        if marker_at.is_none_or(|t| t.elapsed() >= Duration::from_millis(500)) {
            emit_marker(&job.source, source, plan).await?;
            marker_at = Some(Instant::now());
        }
        if Instant::now() >= deadline {
            return Err(StepError::Other(
                "change capture did not acknowledge the pre-verification in time; is `pgmove apply` running? (pgmove status shows it)".to_string(),
            ));
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    step.finish("acknowledged by change capture");
    crate::testhook::pause("cutover-pre-verify-acked").await;
    let opts = options(job, level);
    let t0 = Instant::now();
    let report = crate::verify::verify(&job.source, &job.target, &opts).await?;
    // Chunks differ mostly by rows in flight (the target lags): located to their keys now,
    // only those are compared again inside the outage, not the whole chunks.
    let located = crate::verify::locate(&job.source, &job.target, &opts, &report).await?;
    let secs = t0.elapsed().as_secs_f64();
    tracing::info!(
        secs,
        identical = report.is_identical(),
        "cutover: pre-verification done (chunks that differ are compared again after the fence)"
    );
    crate::testhook::pause("cutover-pre-verified").await;
    Ok(Ahead {
        report,
        located,
        secs,
        opts,
    })
}

/// Compares again what may have changed since the pre-verification.
pub(super) async fn recheck(
    job: &CutoverJob,
    target: &Client,
    ahead: &Ahead,
) -> Result<(VerifyReport, RecheckCounts), StepError> {
    let touched = crate::state::touched::read(target, &job.target, &job.plan.name).await?;
    Ok(crate::verify::recheck(
        &job.source,
        &job.target,
        &ahead.opts,
        &ahead.report,
        &ahead.located,
        &touched,
    )
    .await?)
}

/// Ends the recording (whatever the outcome); a failure is only logged.
pub(super) async fn end(job: &CutoverJob, target: &Client) {
    if let Err(e) = crate::state::touched::end(target, &job.target, &job.plan.name).await {
        tracing::warn!(error = %e, "cutover: could not end the pre-verification's recording of touched keys");
    }
}
