//! Change data capture: the logical replication slot, the pgoutput stream, and the loop that
//! applies it to the target in source commit order, exactly once.
//!
//! The front door is this module: what to capture ([`CdcJob`], built from a plan by
//! [`CdcJob::for_plan`]), what it did ([`CdcOutcome`]) and how it failed ([`CdcError`]), how far
//! the target is ([`applied_lsn`]), and how to run it: [`Capture::start`] until a stop condition, with
//! retries of transient failures ([`CapturePolicy`]), or [`run`], one attempt of the loop.
//! Below it, private: the loop (`run.rs`), the task applying its batches to the target
//! (`applier.rs`), its side work off the apply path (`sidework.rs`: the catch-up log line and
//! the lag samples), the conversion of pgoutput messages into changes (`convert.rs`), the spool
//! of streamed transactions (`spool.rs`), the retries of transient failures (`retry.rs`) and
//! the handle with its stop conditions (`capture.rs`).

mod applier;
pub mod apply;
mod capture;
mod convert;
pub mod ddl;
pub mod pgoutput;
mod retry;
mod run;
mod sidework;
pub mod slot;
pub mod spool;
pub mod stream;
mod touched;

use std::collections::HashMap;
use std::time::Duration;

use crate::cdc::apply::{Change, Val};
use crate::cdc::ddl::DdlConfig;
use crate::cdc::stream::StreamError;
use crate::pg::{Endpoint, Lsn, PgError};

pub use capture::{Capture, CaptureHandle, CapturePolicy, StopSignal, Stopper};
pub use retry::RetryPolicy;
pub use run::run;

/// What the loop needs.
#[derive(Clone, Debug)]
pub struct CdcJob {
    pub plan_name: String,
    pub source: Endpoint,
    pub target: Endpoint,
    pub slot: String,
    pub publication: String,
    /// Per table, the LSN of the snapshot its rows were copied in.
    pub table_lsns: HashMap<(String, String), Lsn>,
    /// Source changes per target transaction, at most (whole source transactions are never
    /// split; a larger one goes alone).
    pub batch_changes: usize,
    /// `cdc.memory_limit`: bytes of changes held in memory, at most ([`MemoryBudget`]).
    pub memory_limit: usize,
    /// Return once everything the source had written when the stream went idle is applied
    /// (for scripted one-shot imports and tests); otherwise run until stopped.
    pub exit_when_caught_up: bool,
    /// `cdc.ddl`: what to do with the DDL messages of the plan's source trigger. `None`, or
    /// policy `ignore`: they are skipped. An empty key is read from the source at start
    /// ([`ddl::read_key`]); messages applied by hand are read from the target and added to
    /// `applied_by_hand`.
    pub ddl: Option<DdlConfig>,
}

/// Source changes per target transaction, at most, when the job comes from a plan.
const BATCH_CHANGES: usize = 5000;

impl CdcJob {
    /// The change-capture job of `plan`: its slot and publication, `cdc.memory_limit` and
    /// `cdc.ddl` ([`plan_ddl`]); `table_lsns` as the load recorded them.
    pub fn for_plan(
        plan: &crate::plan::Plan,
        source: &Endpoint,
        target: &Endpoint,
        table_lsns: HashMap<(String, String), Lsn>,
        exit_when_caught_up: bool,
    ) -> CdcJob {
        CdcJob {
            plan_name: plan.name.clone(),
            source: source.clone(),
            target: target.clone(),
            slot: plan.slot_name(),
            publication: plan.publication_name(),
            table_lsns,
            batch_changes: BATCH_CHANGES,
            memory_limit: usize::try_from(plan.cdc.memory_limit).unwrap_or(usize::MAX),
            exit_when_caught_up,
            ddl: plan_ddl(plan),
        }
    }
}

/// How [`CdcJob::memory_limit`] is shared out, so that what the loop holds stays under it
/// whatever the size or number of source transactions:
/// - three eighths for the messages of streamed (in-progress) transactions, all of them
///   together ([`Spools`](spool::Spools)); past it they go to temporary files;
/// - a thirty-second per piece of work handed to the target: a batch of whole transactions,
///   or a piece of a larger one (applied piece by piece inside one target transaction whose
///   last piece carries the progress row). At most `QUEUED_BATCHES` (cdc/applier.rs) wait, one is applied
///   (with its SQL text, about twice its size), one is being received, one is replayed from
///   the spool: about three eighths in all, allocation overhead included.
///
/// The rest is headroom for what is not counted (decoded messages on their way, the
/// replication driver's buffer, the target's results).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MemoryBudget {
    /// Bytes of streamed transactions' messages kept in memory, all transactions together.
    pub spool: usize,
    /// Bytes of changes per piece of work handed to the target (estimated, [`change_bytes`]).
    pub piece: usize,
}

impl MemoryBudget {
    pub fn of(limit: usize) -> MemoryBudget {
        MemoryBudget {
            spool: limit / 8 * 3,
            piece: (limit / 32).max(64 * 1024),
        }
    }
}

/// What a change takes in memory, about: its values (text and per-value overhead) and the
/// change itself. Its SQL text is about as long as its values.
pub fn change_bytes(c: &Change) -> usize {
    fn vals_bytes(v: &[Val]) -> usize {
        v.iter()
            .map(|v| {
                std::mem::size_of::<Val>()
                    + match v {
                        Val::Text(t) => t.len(),
                        _ => 0,
                    }
            })
            .sum()
    }
    let values = match c {
        Change::Insert { new, .. } => vals_bytes(new),
        Change::Update { old, new, .. } => {
            vals_bytes(new) + old.as_deref().map(vals_bytes).unwrap_or(0)
        }
        Change::Delete { old, .. } => vals_bytes(old),
        Change::Truncate { rels, .. } => rels.len() * 4,
    };
    values + std::mem::size_of::<apply::Item>() + 16
}

/// The [`CdcJob::ddl`] of a plan: its `cdc.ddl` and `exclude` globs (the key is read at start).
pub fn plan_ddl(plan: &crate::plan::Plan) -> Option<DdlConfig> {
    Some(DdlConfig {
        plan_name: plan.name.clone(),
        policy: plan.cdc.ddl.into(),
        exclude: plan.objects.exclude.clone(),
        replay_as: plan.owner.into(),
        ..Default::default()
    })
}

#[derive(Debug, thiserror::Error)]
pub enum CdcError {
    #[error(transparent)]
    Pg(#[from] PgError),
    #[error(transparent)]
    Stream(#[from] StreamError),
    #[error("source transaction ending at {lsn}: {message}")]
    Apply { lsn: Lsn, message: String },
    /// A DDL statement the loop must not (or cannot) replay: it stopped before its transaction.
    #[error("{message}")]
    Ddl { lsn: Lsn, message: String },
    /// The target failed applying a batch (the last source transaction in it ends at `lsn`).
    #[error("source transaction ending at {lsn}: {source}")]
    Applying {
        lsn: Lsn,
        #[source]
        source: PgError,
    },
    /// the retrying runner (`cdc/retry.rs`) retried transient failures for too long.
    #[error("gave up after retrying for {}s ({attempts} attempts without progress); last error: {last}", elapsed.as_secs())]
    GaveUp {
        elapsed: Duration,
        attempts: u32,
        last: Box<CdcError>,
    },
    /// The task running change capture ended without an outcome (it panicked or was
    /// cancelled); see [`CaptureHandle::wait`].
    #[error("{0}")]
    Task(String),
}

/// What a run of the loop did.
#[derive(Clone, Debug, Default, serde::Serialize)]
pub struct CdcOutcome {
    pub transactions: u64,
    pub changes: u64,
    pub applied_lsn: String,
}

/// The LSN the target has applied up to, if change capture ever ran.
pub async fn applied_lsn(target: &Endpoint, plan: &str) -> Result<Option<Lsn>, PgError> {
    let c = target.connect_short().await?;
    crate::state::progress::applied_lsn(&c, target, plan).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_memory_limit_is_shared_out_under_itself() {
        let b = MemoryBudget::of(64 << 20);
        assert_eq!(b.spool, 24 << 20);
        assert_eq!(b.piece, 2 << 20);
        // The spool, and the pieces waiting, applied (with their SQL, twice), received and
        // replayed stay under the limit.
        assert!(b.spool + (applier::QUEUED_BATCHES + 5) * b.piece < 64 << 20);
        // A tiny limit still makes pieces worth a round trip.
        assert_eq!(MemoryBudget::of(1 << 20).piece, 64 * 1024);
    }

    #[test]
    fn a_change_counts_its_values() {
        let small = Change::Insert {
            rel: 1,
            new: vec![Val::Text("1".into()), Val::Null],
        };
        let large = Change::Update {
            rel: 1,
            old: Some(vec![Val::Text("1".into()), Val::Null]),
            new: vec![Val::Text("x".repeat(10_000)), Val::Unchanged],
        };
        assert!(change_bytes(&small) > 2 * std::mem::size_of::<Val>());
        assert!(change_bytes(&large) > 10_000 + change_bytes(&small));
    }

    #[test]
    fn a_plans_job_has_its_names_limits_and_ddl_policy() {
        let plan = crate::plan::parse(
            "version: 1\nname: shop\nsource:\n  dsn: postgres://app@old/shop\ntarget:\n  dsn: postgres://app@new/shop\nstrategy: copy-cdc\ncdc:\n  slot: my_slot\n  memory_limit: 64MB\n  ddl: refuse\nobjects:\n  exclude: [public.tmp_*]\n",
            "shop.yaml",
        )
        .expect("a valid plan");
        let ep = |side| {
            Endpoint::from_dsn(side, "postgres://app@old/shop", None, &|_| None).expect("a DSN")
        };
        let (source, target) = (ep(crate::pg::Side::Source), ep(crate::pg::Side::Target));
        let lsns: HashMap<(String, String), Lsn> =
            [(("public".to_string(), "t".to_string()), Lsn(42))].into();
        let job = CdcJob::for_plan(&plan, &source, &target, lsns.clone(), true);
        assert_eq!(job.plan_name, "shop");
        assert_eq!(job.slot, "my_slot");
        assert_eq!(job.publication, plan.publication_name());
        assert_eq!(job.table_lsns, lsns);
        assert_eq!(job.batch_changes, 5000);
        assert_eq!(job.memory_limit, 64 << 20);
        assert!(job.exit_when_caught_up);
        let ddl = job.ddl.expect("cdc.ddl is configured");
        assert_eq!(ddl.policy, ddl::DdlPolicy::Refuse);
        assert_eq!(ddl.exclude, vec!["public.tmp_*".to_string()]);
        assert!(
            ddl.key.is_empty(),
            "the key is read from the source at start"
        );
    }
}
