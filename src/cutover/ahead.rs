//! Verifying ahead of the fence: the full comparison runs while the source still takes
//! writes, then shrinking re-check rounds, and only what may have changed since the last round
//! began is compared again inside the write outage.
//!
//! 1. **Request.** Cutover records a pre-verification request for the plan
//!    (`crate::state::touched::request`, round 0, held by cutover's target session) and writes
//!    a cutover marker on the source, so even an idle apply commits a transaction. Change
//!    capture reads the request when a target transaction begins and, from then on, records in
//!    each target transaction (the same one as the changes: exactly once) the replica-identity
//!    keys it touched, each with the request's round as that transaction read it (a key
//!    touched again keeps the later round); a transaction that reads a round not yet
//!    acknowledged acknowledges it (`crate::cdc::touched`). Cutover waits for the
//!    acknowledgement: every change applied after it is recorded with that round or a later
//!    one. Apply records only while the session holding the request lives: a killed cutover's
//!    request costs nothing.
//! 2. **Pre-verification** (round 0). A full `verify` at the plan's level, begun after the
//!    acknowledgement, while replicating. Chunks differ where rows were in flight (the target
//!    lags): each differing chunk is then located, by bisection, to its differing keys
//!    (sub-ranges that match, and rows compared one by one), up to 2,000 keys a chunk.
//! 3. **Re-check rounds**, still replicating. Round k (1, 2, ...) begins by raising the
//!    request's round to k and waiting for its acknowledgement; then it compares the rows of
//!    the keys last touched in round k-1 and of the keys still pending (located differing
//!    ahead, or found differing by the round before) ([`crate::verify::compare_keys`]). Those
//!    found differing stay pending; touches it cannot compare by key (a table without a usable
//!    key, DDL or TRUNCATE) are left for after the fence. Rounds end when a round compared at
//!    most [`ROUND_DONE_KEYS`] keys (the keys touched during so short a round are as few), when
//!    a round did not shrink, after [`MAX_ROUNDS`], or when DDL or TRUNCATE was applied (the
//!    verification after the fence is then a full one anyway).
//! 4. **Re-check** after the fence, the final catch-up, sequences and large objects
//!    ([`crate::verify::recheck`]): the keys last touched in the last round or later, the keys
//!    still pending, the chunks that differed ahead and could not be located, and whole every
//!    table touched without a usable key (in any round); sequences and large objects in full.
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
//! **Why the rounds leave nothing out.** The same argument with round k's acknowledgement in
//! place of the first: a key round k found equal (both sides read after round k was
//! acknowledged) is equal at the end unless a change of it was applied after that
//! acknowledgement, and such a change is recorded with round k or later. Apply commits its
//! transactions one after another on one session, and acknowledges a round in the statement
//! before it records keys (so no key of that transaction is recorded with an earlier round):
//! when cutover sees round k acknowledged, every key that will ever be recorded with round
//! k-1 is committed, so round k's read of "last touched in round k-1" misses none. Each key's
//! round only rises, so a key's last round r is at most the last round K. If r = K it is
//! compared after the fence; if r < K, round r+1 read it (its round was r then, as rounds
//! only rise and r is its last) and compared it: equal, it stays equal (it was not touched
//! in round r+1 or later); differing, it stays pending until a later round finds it equal,
//! and pending keys are compared after the fence. Keys located differing ahead are pending
//! from round 1 on. Touches no round compares by key are compared after the fence, whatever
//! their round. So after the fence every key that may differ is compared again, and each
//! comparison, ahead or inside the outage, reads both sides after the acknowledgement it
//! relies on, in the same order as the single re-check did.
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

use crate::state::touched::Touch;
use crate::verify::{RecheckCounts, RoundCounts, VerifyOptions, VerifyReport};

/// A re-check round that compared at most this many keys is the last: the keys touched during
/// it, compared inside the outage, are about as few (at the 24,000 keys a second measured at
/// pgbench scale 50, some 0.05 s).
pub const ROUND_DONE_KEYS: usize = 1_000;
/// Re-check rounds before the fence, at most.
pub const MAX_ROUNDS: i32 = 6;

/// Whether another re-check round follows round `round`, which compared `keys` keys (the one
/// before it `prev`); `everything`: DDL or TRUNCATE was applied (the re-check after the fence
/// is a full one). With `PGMOVE_TEST_FORCE=cutover-rounds` at least two rounds are made.
pub fn another_round(round: i32, keys: usize, prev: Option<usize>, everything: bool) -> bool {
    if everything || round >= MAX_ROUNDS {
        return false;
    }
    if round < 2 && crate::testhook::forced("cutover-rounds") {
        return true;
    }
    keys > ROUND_DONE_KEYS && prev.is_none_or(|p| keys < p)
}

use super::{emit_marker, CutoverJob, StepError};

/// The pre-verification: its report, how long it took, and the options it ran with.
pub(super) struct Ahead {
    pub report: VerifyReport,
    /// Its differing chunks located to their differing keys.
    pub located: crate::verify::Located,
    pub secs: f64,
    pub opts: VerifyOptions,
    /// The re-check rounds made since.
    pub rounds: Vec<RoundCounts>,
    /// The last round begun (0: none since the full comparison).
    pub last_round: i32,
    /// Keys that may differ and were not touched since the last round began: found differing
    /// by the last round (or located differing ahead, without rounds), and touches no round
    /// could compare by key.
    pub pending: Vec<Touch>,
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
    wait_acked(job, source, target, 0, deadline).await?;
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
    // Until a round compares them, the located keys may differ.
    let mut pending = Vec::new();
    for ((schema, table), chunks) in &located {
        let key_columns = report
            .table(schema, table)
            .map(|t| t.key.clone())
            .unwrap_or_default();
        for key in chunks.values().flatten() {
            pending.push(Touch {
                schema: schema.clone(),
                table: table.clone(),
                key_columns: key_columns.clone(),
                key: key.clone(),
            });
        }
    }
    Ok(Ahead {
        report,
        located,
        secs,
        opts,
        rounds: Vec::new(),
        last_round: 0,
        pending,
    })
}

/// Waits (until `deadline`) for change capture to acknowledge round `round` of the request,
/// writing a marker now and then so an idle change capture commits a transaction.
async fn wait_acked(
    job: &CutoverJob,
    source: &Client,
    target: &Client,
    round: i32,
    deadline: Instant,
) -> Result<(), StepError> {
    let plan = &job.plan.name;
    let what = if round == 0 {
        "cutover: pre-verification requested".to_string()
    } else {
        format!("cutover: re-check round {round} requested")
    };
    let step = job.progress.step(&what, 0);
    let mut marker_at: Option<Instant> = None;
    loop {
        if crate::state::touched::acked(target, &job.target, plan, round).await? {
            break;
        }
        if marker_at.is_none_or(|t| t.elapsed() >= Duration::from_millis(500)) {
            emit_marker(&job.source, source, plan).await?;
            marker_at = Some(Instant::now());
        }
        if Instant::now() >= deadline {
            return Err(StepError::Other(format!(
                "change capture did not acknowledge the {} in time; is `pgmove apply` running? (pgmove status shows it)",
                if round == 0 { "pre-verification".to_string() } else { format!("re-check round {round}") }
            )));
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    step.finish("acknowledged by change capture");
    Ok(())
}

/// The re-check rounds before the fence (see the module docs): each compares the keys last
/// touched in the round before and the pending ones, until one is small.
pub(super) async fn rounds(
    job: &CutoverJob,
    source: &Client,
    target: &Client,
    ahead: &mut Ahead,
    deadline: Instant,
) -> Result<(), StepError> {
    let plan = &job.plan.name;
    let mut prev = None;
    loop {
        let k = crate::state::touched::next_round(target, &job.target, plan).await?;
        wait_acked(job, source, target, k, deadline).await?;
        crate::testhook::pause(&format!("cutover-round-{k}")).await;
        let t0 = Instant::now();
        let mut set = crate::state::touched::read_round(target, &job.target, plan, k - 1).await?;
        set.append(&mut ahead.pending);
        let everything = set.iter().any(|t| t.schema.is_empty());
        let step = job
            .progress
            .step(&format!("cutover: re-check round {k}"), 0);
        let c = if everything {
            crate::verify::KeysCompared {
                left: set,
                ..Default::default()
            }
        } else {
            crate::verify::compare_keys(&job.source, &job.target, &ahead.opts, set).await?
        };
        let r = RoundCounts {
            round: k,
            keys: c.compared,
            differing: c.differing,
            left: c.left.len() - c.differing,
            secs: t0.elapsed().as_secs_f64(),
        };
        step.finish(&format!("{} key(s), {} differing", r.keys, r.differing));
        tracing::info!(
            round = k,
            keys = r.keys,
            differing = r.differing,
            secs = r.secs,
            "cutover: re-check round before the fence"
        );
        ahead.pending = c.left;
        ahead.last_round = k;
        ahead.rounds.push(r);
        if !another_round(k, c.compared, prev, everything) || Instant::now() >= deadline {
            return Ok(());
        }
        prev = Some(c.compared);
    }
}

/// Compares again what may have changed since the pre-verification.
pub(super) async fn recheck(
    job: &CutoverJob,
    target: &Client,
    ahead: &Ahead,
) -> Result<(VerifyReport, RecheckCounts), StepError> {
    let mut touched =
        crate::state::touched::read_since(target, &job.target, &job.plan.name, ahead.last_round)
            .await?;
    touched.extend(ahead.pending.iter().cloned());
    let before = without_located(&ahead.report, &ahead.located);
    let (report, mut counts) = crate::verify::recheck(
        &job.source,
        &job.target,
        &ahead.opts,
        &before,
        &crate::verify::Located::new(),
        &touched,
    )
    .await?;
    counts.rounds = ahead.rounds.clone();
    Ok((report, counts))
}

/// The pre-verification's report without its located chunks: their differing keys are
/// pending from round 1 on (compared by the rounds, and after the fence while they differ), so
/// a table whose differing chunks were all located differs only by those keys.
fn without_located(report: &VerifyReport, located: &crate::verify::Located) -> VerifyReport {
    let mut r = report.clone();
    for t in &mut r.tables {
        let Some(chunks) = located.get(&(t.schema.clone(), t.name.clone())) else {
            continue;
        };
        t.differing_chunks
            .retain(|c| !chunks.contains_key(&c.index));
        if t.status == crate::verify::TableStatus::Differs && t.differing_chunks.is_empty() {
            t.status = crate::verify::TableStatus::Same;
        }
    }
    r
}

/// Ends the recording (whatever the outcome); a failure is only logged.
pub(super) async fn end(job: &CutoverJob, target: &Client) {
    if let Err(e) = crate::state::touched::end(target, &job.target, &job.plan.name).await {
        tracing::warn!(error = %e, "cutover: could not end the pre-verification's recording of touched keys");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rounds_go_on_while_they_shrink_and_are_large() {
        // Large and shrinking: another.
        assert!(another_round(1, 20_000, None, false));
        assert!(another_round(2, 5_000, Some(20_000), false));
        // Small enough: the keys touched during it are left for the outage.
        assert!(!another_round(1, ROUND_DONE_KEYS, None, false));
        assert!(!another_round(3, 10, Some(5_000), false));
        // Not shrinking: writes outpace the comparison, more rounds would not help.
        assert!(!another_round(2, 20_000, Some(20_000), false));
        // DDL or TRUNCATE: the verification after the fence is a full one.
        assert!(!another_round(1, 20_000, None, true));
        // At most MAX_ROUNDS.
        assert!(!another_round(MAX_ROUNDS, 20_000, Some(40_000), false));
    }

    #[test]
    fn a_table_whose_differing_chunks_were_all_located_differs_only_by_their_keys() {
        use crate::verify::{ChunkDiff, KeyRange, Method, TableReport, TableStatus};
        let chunk = |index| ChunkDiff {
            index,
            range: KeyRange::all(vec!["id".into()]),
            where_sql: String::new(),
            source_rows: 2,
            target_rows: 1,
            rows: Vec::new(),
        };
        let table = |name: &str, chunks: Vec<ChunkDiff>| TableReport {
            schema: "public".into(),
            name: name.into(),
            partitioned: false,
            partition_of: None,
            materialized_view: false,
            method: Method::KeyChunks,
            key: vec!["id".into()],
            source_rows: Some(10),
            target_rows: Some(9),
            chunks: 3,
            differing_chunks: chunks,
            notes: Vec::new(),
            status: TableStatus::Differs,
        };
        let report = VerifyReport {
            level: crate::verify::Level::Checksums,
            source: String::new(),
            target: String::new(),
            identical: false,
            tables: vec![
                table("a", vec![chunk(0), chunk(2)]),
                table("b", vec![chunk(1)]),
            ],
            sequences: Vec::new(),
            objects: Vec::new(),
            notes: Vec::new(),
            function_counts: Vec::new(),
            large_objects: None,
            excluded: Vec::new(),
            elapsed_seconds: 0.0,
        };
        let key = |k: &str| vec![vec![k.to_string()]];
        let located = crate::verify::Located::from([
            (
                ("public".to_string(), "a".to_string()),
                std::collections::BTreeMap::from([(0u64, key("1"))]),
            ),
            (
                ("public".to_string(), "b".to_string()),
                std::collections::BTreeMap::from([(1u64, key("5"))]),
            ),
        ]);
        let r = without_located(&report, &located);
        // a: chunk 2 was not located, it is still compared whole after the fence.
        assert_eq!(r.tables[0].status, TableStatus::Differs);
        let left: Vec<u64> = r.tables[0]
            .differing_chunks
            .iter()
            .map(|c| c.index)
            .collect();
        assert_eq!(left, vec![2]);
        // b: its one chunk was located: only its keys (pending) can differ.
        assert_eq!(r.tables[1].status, TableStatus::Same);
        assert!(r.tables[1].differing_chunks.is_empty());
    }
}
