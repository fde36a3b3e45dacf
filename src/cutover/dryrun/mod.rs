//! `pgmove cutover PLAN.yaml --dry-run`: the pre-cutover report, what a user reads before
//! committing to the switch. It never writes to either server: every session it opens is
//! read-only (`default_transaction_read_only = on`), it takes no lock, and it creates nothing
//! (not even the `pgmove` schema on a target that has none).
//!
//! What it reports ([`report`]):
//! 1. **The run**: strategy, phase and finished steps from the target's `pgmove` schema
//!    ([`crate::status::read`]), whether the full load finished, whether change capture ever
//!    ran (`pgmove.progress` has the plan's row), whether an apply is running now (it holds
//!    the plan's advisory lock on the target) and what an earlier cutover left behind.
//! 2. **Lag**: bytes (the source's `pg_current_wal_lsn()` minus `pgmove.progress.applied_lsn`)
//!    and seconds (since the target last committed applied changes, while behind), the slot's
//!    state (active means an apply is streaming now) and the WAL it retains. Measured before
//!    and after the comparison.
//! 3. **Tables**: row counts and (at `checksums`) chunk checksums by [`crate::verify::verify`]
//!    at the plan's `cutover.verify` level. While the target is behind (lag above zero before
//!    or after the comparison) differences are expected and reported as *in flight*
//!    (warnings); with no lag they are real and block.
//! 4. **Sequences**: each selected sequence's value on the source and on the target, and the
//!    value the target gets at cutover (`cutover.sequences: sync`: the source's `last_value`
//!    and `is_called` at that moment; the values shown are today's).
//! 5. **Objects that differ** (indexes, constraints, triggers, ... from verify's object
//!    inventory): missing on the target blocks; extra or differently defined on the target
//!    blocks when cutover verifies (its verification would fail), else warns. A schema change
//!    that may still be in flight (lag above zero and `cdc.ddl: replicate`) only warns.
//! 6. **Blockers** besides: invalid indexes on the target (`pg_index.indisvalid = false`);
//!    tables the plan excludes that have been written to on the source (a warning, see
//!    [`ExcludedWrites`]); the fence (`cutover.fence: read-only` needs the source role to own
//!    the database or be a superuser, and to be a superuser or a member of
//!    `pg_signal_backend`).
//! 7. **Estimated write outage**: the final catch-up (the lag now, at most `cutover.max_lag`,
//!    since cutover fences only once the lag is under it) plus the verification inside the
//!    outage plus about 1 s for the fence, the markers and the sequences. With pgmove's change
//!    capture, cutover verifies everything ahead of the fence (as long as this report's
//!    comparison took) and, fenced, compares again only what changed meanwhile
//!    (`crate::cutover::ahead`): estimated as the share of this report's comparison made of
//!    the changes applied while it ran (10 rows' cost per key), the rows of the chunks that
//!    differed and of the tables without a key, plus 0.2 s. With pglogical (or a fence left
//!    by a killed cutover) the whole comparison runs while fenced.
//!
//! For a run of strategy pglogical the applier is its subscription: the run must have reached
//! step `replicating`, the subscription must replicate, and the lag is its slot's confirmed
//! position on the source ([`crate::cutover::pglogical`]); the report shows the subscription
//! and each table's sync state, and that cutover drops the subscription once verified.
//!
//! Every finding names the object and the fix, as preflight findings do
//! ([`crate::report::Finding`]). [`DryRun::ready`] is true only when no finding blocks.
//!
//! Layout: `probe` reads both servers (read-only sessions, the queries), `findings` judges what
//! was read (findings, the outage estimate), `render` prints it; the types live here.

use std::collections::BTreeSet;
use std::fmt::Write as _;
use std::sync::Arc;
use std::time::Instant;

use serde::Serialize;
use tokio_postgres::Client;

use crate::pg::{quote, Endpoint, Lsn, PgError, Side};
use crate::plan::{Ddl, Fence, Plan, Sequences, VerifyLevel};
use crate::planner;
use crate::progress::Progress;
use crate::report::{Finding, Render, Severity};
use crate::verify::{
    self, Level, ObjectDiff, ObjectDifference, ObjectKind, TableStatus, VerifyError, VerifyOptions,
    VerifyReport,
};

mod findings;
mod probe;
mod render;

pub(crate) use findings::fence_findings;
use findings::*;
pub use probe::report;
use render::*;

/// The strategy whose runs can be cut over (`pgmove.runs.strategy`).
pub(super) const CUTOVER_STRATEGY: &str = "copy-cdc";
/// The fixed part of the outage: fence, session termination, markers, sequences.
pub(super) const FIXED_OUTAGE_SECS: f64 = 1.0;
/// Above this many tables, the text and Markdown reports list only the differing ones.
pub(super) const LIST_ALL_TABLES_UP_TO: usize = 30;

/// How the report works.
#[derive(Clone, Copy, Debug)]
pub struct DryRunOptions {
    /// The level of the comparison: the plan's `cutover.verify` (`none`: counts).
    pub verify_level: Level,
    /// Tables compared in parallel (one connection per job on each server).
    pub jobs: usize,
    pub progress: Progress,
}

impl DryRunOptions {
    /// The options the plan implies: its `cutover.verify` level (counts for `none`) and jobs.
    pub fn for_plan(plan: &Plan, progress: Progress) -> DryRunOptions {
        DryRunOptions {
            verify_level: match plan.cutover.verify {
                VerifyLevel::Checksums => Level::Checksums,
                VerifyLevel::Counts | VerifyLevel::None => Level::Counts,
            },
            jobs: plan.jobs.max(1) as usize,
            progress,
        }
    }
}

/// The report could not be made (a server could not be reached or read). Findings, blockers
/// included, are not errors: they are in the [`DryRun`].
#[derive(Debug, thiserror::Error)]
pub enum DryRunError {
    #[error(transparent)]
    Pg(#[from] PgError),
    #[error(transparent)]
    Verify(#[from] VerifyError),
}

/// The run as the target's `pgmove` schema records it.
#[derive(Clone, Debug, Serialize)]
pub struct RunState {
    /// `pgmove.runs.strategy`, when the plan ever ran.
    pub strategy: Option<String>,
    /// `pgmove.runs.phase`; `not started` when the target has no state for the plan.
    pub phase: String,
    pub steps_done: Vec<String>,
    pub last_error: Option<String>,
    /// The `loaded` step finished.
    pub full_load_done: bool,
    /// `pgmove.progress` has the plan's row.
    pub change_capture_ran: bool,
    pub replicated_transactions: Option<i64>,
    pub replicated_changes: Option<i64>,
    /// The pid (on the target) of the session holding the plan's advisory lock: a running
    /// `pgmove apply` (or cutover).
    pub apply_lock_pid: Option<i32>,
    /// `pgmove.cutover.state` of an earlier cutover (`requested`, `fenced`, `failed`, `done`).
    pub cutover_state: Option<String>,
    pub cutover_detail: Option<String>,
}

/// How far the target is behind the source.
#[derive(Clone, Debug, Serialize)]
pub struct LagReport {
    pub slot: String,
    pub slot_exists: bool,
    /// A walsender streams from the slot now.
    pub slot_active: bool,
    pub slot_active_pid: Option<i32>,
    /// `pg_replication_slots.wal_status` (13+): `reserved`, `extended`, `unreserved`, `lost`.
    pub slot_wal_status: Option<String>,
    pub retained_wal_bytes: Option<u64>,
    pub source_wal_lsn: Option<String>,
    /// `pgmove.progress.applied_lsn`.
    pub applied_lsn: Option<String>,
    /// Source WAL position minus applied position, when both are known.
    pub bytes: Option<u64>,
    /// Seconds since the target last committed applied changes, while behind (0 when not).
    pub seconds: Option<f64>,
    /// The same after the comparison (None when there was none).
    pub bytes_after_compare: Option<u64>,
    /// Whether an apply is streaming now: the slot is active or the plan's lock is held.
    pub streaming: bool,
    /// `cutover.max_lag`.
    pub max_lag_secs: f64,
}

/// One table's comparison, with its meaning for cutover.
#[derive(Clone, Debug, Serialize)]
pub struct TableCheck {
    pub schema: String,
    pub name: String,
    /// `same`, `in flight` (differs while the target is behind: expected), `differs`,
    /// `missing on target`, `missing on source`, `partitioned` (rows are in the partitions).
    pub state: String,
    pub source_rows: Option<i64>,
    pub target_rows: Option<i64>,
    /// `count`, `key-chunks`, `whole-table`, `none`.
    pub method: verify::Method,
    pub chunks: u64,
    pub differing_chunks: usize,
    /// `WHERE` conditions of the differing chunks (first few), to look at in psql.
    pub differing_where: Vec<String>,
    pub notes: Vec<String>,
}

/// A sequence and what cutover does with it.
#[derive(Clone, Debug, Serialize)]
pub struct SequenceCheck {
    pub schema: String,
    pub name: String,
    pub source_last_value: Option<i64>,
    pub source_is_called: Option<bool>,
    pub target_last_value: Option<i64>,
    pub target_is_called: Option<bool>,
    /// What the target gets at cutover (`setval(seq, value, is_called)` with the source's
    /// values at that moment; these are today's). None when it is not set.
    pub at_cutover_value: Option<i64>,
    pub at_cutover_is_called: Option<bool>,
    /// `set at cutover`, `already equal`, `left as is (cutover.sequences: skip)`,
    /// `missing on target`, `missing on source`.
    pub action: String,
}

/// A table the plan excludes that has been written to on the source.
///
/// Limitation: the counters of `pg_stat_user_tables` are cumulative since the statistics
/// were last reset (`pg_stat_database.stats_reset`, or since the cluster's statistics were
/// last lost, e.g. by a crash, when never reset), not since the migration started: a table
/// written to long ago shows up as well. That is why this is a warning, never a blocker.
#[derive(Clone, Debug, Serialize)]
pub struct ExcludedWrites {
    pub schema: String,
    pub name: String,
    pub inserts: i64,
    pub updates: i64,
    pub deletes: i64,
}

/// What the source role may do for `cutover.fence: read-only`.
#[derive(Clone, Debug, Serialize)]
pub struct FenceCheck {
    /// `read-only` or `none`.
    pub fence: String,
    pub role: String,
    pub database: String,
    pub database_owner: String,
    pub superuser: bool,
    /// Owns the database (directly or through a role it inherits).
    pub owns_database: bool,
    pub signal_backend: bool,
    /// Other sessions of superusers connected to the source database now (`user (count)`),
    /// which a non-superuser cannot terminate.
    pub superuser_sessions: Vec<String>,
}

/// The estimated write outage, and how it was estimated.
#[derive(Clone, Debug, Serialize)]
pub struct OutageEstimate {
    /// None when it cannot be estimated yet (no change capture, no comparison).
    pub seconds: Option<f64>,
    pub catch_up_secs: f64,
    pub verify_secs: f64,
    pub fixed_secs: f64,
    pub downtime_budget_secs: f64,
    /// The re-check rounds cutover is estimated to make before the fence (0: none, the
    /// verification runs whole while fenced or not at all).
    pub recheck_rounds: usize,
    pub how: String,
}

/// The pre-cutover report. `render_json` serializes every field.
#[derive(Clone, Debug, Serialize)]
pub struct DryRun {
    pub plan: String,
    /// Redacted addresses.
    pub source: String,
    pub target: String,
    /// No finding blocks: `pgmove cutover` could proceed now.
    pub ready: bool,
    pub blockers: usize,
    pub warnings: usize,
    pub run: RunState,
    pub lag: LagReport,
    /// `counts` or `checksums`; None when nothing was compared (no full load yet).
    pub verify_level: Option<Level>,
    /// `cutover.verify` of the plan: what cutover itself will run.
    pub cutover_verify: String,
    /// Seconds the comparison took.
    pub verify_secs: Option<f64>,
    /// Differences may be in flight: the target was behind before or after the comparison.
    pub in_flight: bool,
    pub tables: Vec<TableCheck>,
    /// `cutover.sequences`: `sync` or `skip`.
    pub sequences_mode: String,
    pub sequences: Vec<SequenceCheck>,
    /// Objects (indexes, constraints, triggers, columns, views, functions, ...) that differ.
    pub objects: Vec<ObjectDiff>,
    pub large_objects: Option<verify::LargeObjectReport>,
    /// `schema.index` of every invalid index on the target, in the plan's schemas.
    pub invalid_indexes: Vec<String>,
    pub excluded_written: Vec<ExcludedWrites>,
    /// `pg_stat_database.stats_reset` of the source database (None: never reset).
    pub stats_reset: Option<String>,
    pub fence: FenceCheck,
    pub outage: OutageEstimate,
    /// Blockers first, then warnings, then notes.
    pub findings: Vec<Finding>,
    pub elapsed_secs: f64,
    /// The steps `pgmove cutover` runs and records in `pgmove.steps`, in order
    /// ([`crate::cutover::steps`]).
    pub steps: Vec<&'static str>,
    /// Strategy pglogical: the subscription (the applier) and each table's sync state.
    pub pglogical: Option<crate::status::pglogical::PglogicalStatus>,
}

impl DryRun {
    /// Cutover could proceed: no finding blocks.
    pub fn ready(&self) -> bool {
        !self
            .findings
            .iter()
            .any(|f| f.severity == Severity::Blocker)
    }
}

impl Render for DryRun {
    fn render_text(&self) -> String {
        render_text(self)
    }

    fn render_markdown(&self) -> String {
        render_markdown(self)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn plan(extra: &str) -> Plan {
        crate::plan::parse(
            &format!(
                "version: 1\nname: shop\nstrategy: copy-cdc\nsource:\n  dsn: postgres://app@old/shop\ntarget:\n  dsn: postgres://app@new/shop\n{extra}"
            ),
            "shop.yaml",
        )
        .expect("valid plan")
    }

    fn fence(superuser: bool, owns: bool, signal: bool) -> FenceCheck {
        FenceCheck {
            fence: "read-only".into(),
            role: "app".into(),
            database: "shop".into(),
            database_owner: "owner".into(),
            superuser,
            owns_database: owns,
            signal_backend: signal,
            superuser_sessions: vec![],
        }
    }

    fn run(strategy: Option<&str>, loaded: bool, cdc: bool) -> RunState {
        RunState {
            strategy: strategy.map(str::to_string),
            phase: if loaded { "loaded" } else { "copy" }.into(),
            steps_done: if loaded {
                vec!["loaded".into()]
            } else {
                vec![]
            },
            last_error: None,
            full_load_done: loaded,
            change_capture_ran: cdc,
            replicated_transactions: cdc.then_some(3),
            replicated_changes: cdc.then_some(7),
            apply_lock_pid: None,
            cutover_state: None,
            cutover_detail: None,
        }
    }

    fn lag(exists: bool, bytes: u64, secs: f64) -> LagReport {
        LagReport {
            slot: "pgmove_shop".into(),
            slot_exists: exists,
            slot_active: false,
            slot_active_pid: None,
            slot_wal_status: Some("reserved".into()),
            retained_wal_bytes: Some(1024),
            source_wal_lsn: Some("0/10".into()),
            applied_lsn: Some("0/10".into()),
            bytes: Some(bytes),
            seconds: Some(secs),
            bytes_after_compare: None,
            streaming: false,
            max_lag_secs: 5.0,
        }
    }

    fn blockers(f: &[Finding]) -> Vec<&'static str> {
        f.iter()
            .filter(|f| f.severity == Severity::Blocker)
            .map(|f| f.check)
            .collect()
    }

    #[test]
    fn fence_needs_ownership_and_pg_signal_backend() {
        assert!(fence_findings(&fence(true, false, false)).is_empty());
        assert!(fence_findings(&fence(false, true, true)).is_empty());
        let f = fence_findings(&fence(false, false, true));
        assert_eq!(blockers(&f), vec!["fence-alter-database"]);
        assert!(f[0]
            .fix
            .as_deref()
            .unwrap_or("")
            .contains("ALTER DATABASE \"shop\" OWNER TO \"app\""));
        // Granting the owner role (often a superuser such as postgres) is never suggested.
        assert!(!f[0].fix.as_deref().unwrap_or("").contains("GRANT"));
        let f = fence_findings(&fence(false, true, false));
        assert_eq!(blockers(&f), vec!["fence-terminate"]);
        assert!(f[0]
            .fix
            .as_deref()
            .unwrap_or("")
            .contains("GRANT pg_signal_backend TO \"app\""));
        let mut none = fence(false, false, false);
        none.fence = "none".into();
        let f = fence_findings(&none);
        assert!(blockers(&f).is_empty());
        assert_eq!(f[0].check, "fence-none");
    }

    #[test]
    fn run_state_blockers() {
        let p = plan("");
        let f = run_findings(&p, &run(None, false, false), &lag(false, 0, 0.0));
        assert_eq!(blockers(&f), vec!["not-applied"]);
        assert!(f[0]
            .fix
            .as_deref()
            .unwrap_or("")
            .contains("pgmove apply shop.yaml"));
        let f = run_findings(&p, &run(Some("copy-cdc"), false, false), &lag(true, 0, 0.0));
        assert_eq!(blockers(&f), vec!["full-load"]);
        let f = run_findings(&p, &run(Some("copy-cdc"), true, false), &lag(false, 0, 0.0));
        assert_eq!(blockers(&f), vec!["change-capture", "slot-missing"]);
        let f = run_findings(&p, &run(Some("copy-cdc"), true, true), &lag(true, 0, 0.0));
        assert!(blockers(&f).is_empty(), "{f:?}");
        let f = run_findings(
            &p,
            &run(Some("dump-restore"), true, false),
            &lag(false, 0, 0.0),
        );
        assert_eq!(blockers(&f), vec!["strategy"]);
        let mut live = run(Some("copy-cdc"), true, true);
        live.cutover_state = Some("done".into());
        let f = run_findings(&p, &live, &lag(true, 0, 0.0));
        assert_eq!(blockers(&f), vec!["already-live"]);
    }

    #[test]
    fn outage_is_catch_up_plus_verify_plus_fixed() {
        let p = plan("cutover:\n  max_lag: 2s\n  verify: checksums\n");
        let o = estimate_outage(
            &p,
            &lag(true, 100, 10.0),
            &run(Some("copy-cdc"), true, true),
            Some(3.0),
            None,
        );
        assert_eq!(o.catch_up_secs, 2.0, "capped at max_lag");
        assert_eq!(o.seconds, Some(6.0));
        assert_eq!(o.verify_secs, 3.0);
        assert!(o.how.contains("cutover.verify: checksums"), "{}", o.how);
        let p = plan("cutover:\n  verify: none\n");
        let o = estimate_outage(
            &p,
            &lag(true, 0, 0.0),
            &run(Some("copy-cdc"), true, true),
            Some(3.0),
            None,
        );
        assert_eq!(o.seconds, Some(1.0));
        let o = estimate_outage(&p, &lag(true, 0, 0.0), &run(None, false, false), None, None);
        assert_eq!(o.seconds, None);
    }

    #[test]
    fn verified_ahead_the_outage_holds_only_the_recheck() {
        let p = plan("cutover:\n  max_lag: 2s\n  verify: checksums\n");
        // 1,000,000 rows compared in 4 s while 1,000 changes were applied, 20,000 rows in
        // flight, no keyless table: one round of 1,000 keys (0.04 s, 10 rows a key), during
        // which 10 keys are touched (0.0004 s), plus the rows in flight (2% of 4 s) and the
        // floor.
        let basis = findings::AheadBasis {
            rows_compared: 1_000_000.0,
            changes_applied: 1_000.0,
            rows_differing: 20_000.0,
            rows_keyless: 0.0,
        };
        let o = estimate_outage(
            &p,
            &lag(true, 0, 0.0),
            &run(Some("copy-cdc"), true, true),
            Some(4.0),
            Some(basis),
        );
        assert!(
            (o.verify_secs - (0.0004 + 4.0 * 0.02 + 0.2)).abs() < 1e-9,
            "{o:?}"
        );
        assert_eq!(o.recheck_rounds, 1, "{o:?}");
        assert!(o.how.contains("before the fence"), "{}", o.how);
        assert!(o.how.contains("1 re-check round(s)"), "{}", o.how);
        // Ten times the changes: round 1 compares 10,000 keys (0.4 s), round 2 the 1,000
        // touched meanwhile (0.04 s), and the 100 touched during it (0.004 s) are left for the
        // outage.
        let busy = findings::AheadBasis {
            changes_applied: 10_000.0,
            ..basis
        };
        assert_eq!(busy.rounds(4.0).0, 2);
        assert!(
            (busy.rounds(4.0).1 - 0.004).abs() < 1e-9,
            "{:?}",
            busy.rounds(4.0)
        );
        // Changes as fast as the rounds compare them: the rounds do not shrink, two are made.
        let flood = findings::AheadBasis {
            changes_applied: 100_000.0,
            ..basis
        };
        assert_eq!(flood.rounds(4.0).0, 2);
        // Never more than the full comparison.
        let all = findings::AheadBasis {
            rows_compared: 10.0,
            changes_applied: 1_000.0,
            ..Default::default()
        };
        let o = estimate_outage(
            &p,
            &lag(true, 0, 0.0),
            &run(Some("copy-cdc"), true, true),
            Some(4.0),
            Some(all),
        );
        assert_eq!(o.verify_secs, 4.0);
    }

    fn pgl(state: &str, enabled: bool) -> crate::status::pglogical::PglogicalStatus {
        crate::status::pglogical::PglogicalStatus {
            subscription: "pgmove_shop".into(),
            state: state.into(),
            enabled: Some(enabled),
            provider_node: Some("pgmove_shop_provider".into()),
            slot_name: Some("pgl_shop".into()),
            initial_sync: Some("replicating".into()),
            tables: vec![],
            tables_synced: 0,
        }
    }

    #[test]
    fn a_pglogical_run_is_judged_by_its_subscription() {
        let p = plan("");
        let mut r = run(Some("pglogical"), true, true);
        r.steps_done = vec!["replicating".into()];
        let l = lag(true, 0, 0.0);
        // Replicating: nothing blocks; a note says cutover drops the subscription.
        let f = pglogical_run_findings(&p, &r, &l, &pgl("replicating", true));
        assert!(blockers(&f).is_empty(), "{f:?}");
        assert!(f
            .iter()
            .any(|f| f.check == "subscription-dropped-at-cutover"));
        // Disabled: blocks, the fix enables it.
        let f = pglogical_run_findings(&p, &r, &l, &pgl("disabled", false));
        assert_eq!(blockers(&f), vec!["subscription"]);
        let fix = f[0].fix.clone().unwrap_or_default();
        assert!(
            fix.contains("pglogical.alter_subscription_enable('pgmove_shop', true)"),
            "{fix}"
        );
        // The sync not done: blocks, the fix is apply.
        let mut syncing = run(Some("pglogical"), false, false);
        syncing.steps_done = vec!["sync".into()];
        let f = pglogical_run_findings(&p, &syncing, &l, &pgl("initializing", true));
        assert_eq!(blockers(&f), vec!["full-load"]);
        // An earlier cutover caught up, fenced, and dropped the subscription: not blocked.
        let mut resumed = r.clone();
        resumed.cutover_state = Some("fenced".into());
        resumed.steps_done.push("cutover-catch-up".into());
        let f = pglogical_run_findings(&p, &resumed, &lag(false, 0, 0.0), &pgl("missing", true));
        assert!(blockers(&f).is_empty(), "{f:?}");
        assert!(f.iter().any(|f| f.check == "caught-up-before"));
    }

    #[test]
    fn excluded_writes_are_warnings_naming_the_reset() {
        let w = vec![ExcludedWrites {
            schema: "public".into(),
            name: "tmp_x".into(),
            inserts: 3,
            updates: 0,
            deletes: 1,
        }];
        let f = excluded_findings(&w, &Some("2024-01-01 00:00:00+00".into()));
        assert_eq!(f[0].severity, Severity::Warning);
        assert!(
            f[0].message
                .contains("since statistics were reset at 2024-01-01"),
            "{}",
            f[0].message
        );
        assert_eq!(f[0].object.as_deref(), Some("table \"public\".\"tmp_x\""));
    }
}
