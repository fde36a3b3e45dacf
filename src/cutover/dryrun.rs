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
//!    since cutover fences only once the lag is under it) plus the time this report's
//!    verification took at the plan's `cutover.verify` level (cutover runs the same while
//!    writes are fenced) plus about 1 s for the fence, the markers and the sequences.
//!
//! Every finding names the object and the fix, as preflight findings do
//! ([`crate::preflight::Finding`]). [`DryRun::ready`] is true only when no finding blocks.

use std::collections::BTreeSet;
use std::fmt::Write as _;
use std::sync::Arc;
use std::time::Instant;

use serde::Serialize;
use tokio_postgres::Client;

use crate::pg::{quote, Endpoint, Lsn, PgError, Side};
use crate::plan::{Ddl, Fence, Plan, Sequences, VerifyLevel};
use crate::planner;
use crate::preflight::{Finding, Severity};
use crate::progress::Progress;
use crate::verify::{
    self, Level, ObjectDiff, ObjectDifference, ObjectKind, TableStatus, VerifyError, VerifyOptions,
    VerifyReport,
};

/// The strategy whose runs can be cut over (`pgmove.runs.strategy`).
const CUTOVER_STRATEGY: &str = "copy-cdc";
/// The fixed part of the outage: fence, session termination, markers, sequences.
const FIXED_OUTAGE_SECS: f64 = 1.0;
/// Above this many tables, the text and Markdown reports list only the differing ones.
const LIST_ALL_TABLES_UP_TO: usize = 30;

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
}

impl DryRun {
    /// Cutover could proceed: no finding blocks.
    pub fn ready(&self) -> bool {
        !self
            .findings
            .iter()
            .any(|f| f.severity == Severity::Blocker)
    }

    pub fn render_text(&self) -> String {
        render_text(self)
    }

    pub fn render_markdown(&self) -> String {
        render_markdown(self)
    }

    pub fn render_json(&self) -> String {
        serde_json::to_string_pretty(self).unwrap_or_else(|e| format!("{{\"error\":\"{e}\"}}"))
    }
}

fn finding(
    severity: Severity,
    check: &'static str,
    side: Option<Side>,
    message: String,
) -> Finding {
    Finding {
        severity,
        check,
        side,
        object: None,
        message,
        fix: None,
    }
}

/// Builder methods (preflight keeps its own private).
trait FindingExt {
    fn with_object(self, o: impl Into<String>) -> Self;
    fn with_fix(self, f: impl Into<String>) -> Self;
}

impl FindingExt for Finding {
    fn with_object(mut self, o: impl Into<String>) -> Finding {
        self.object = Some(o.into());
        self
    }
    fn with_fix(mut self, f: impl Into<String>) -> Finding {
        self.fix = Some(f.into());
        self
    }
}

/// Every session of the report is read-only.
async fn connect_read_only(ep: &Endpoint) -> Result<Client, PgError> {
    let c = ep.connect().await?;
    c.batch_execute("SET default_transaction_read_only = on; SET search_path = pg_catalog;")
        .await
        .map_err(|e| ep.query_error("setting up a read-only session", &e))?;
    Ok(c)
}

/// The session holding the plan's advisory lock (`pg_try_advisory_lock(hashtext('pgmove:' ||
/// plan))`, a bigint key: high half in `classid`, low half in `objid`), if any.
const APPLY_LOCK_SQL: &str = "SELECT l.pid FROM pg_locks l
    WHERE l.locktype = 'advisory' AND l.granted AND l.objsubid = 1
      AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database())
      AND ((l.classid::int8 << 32) | l.objid::int8) = hashtext('pgmove:' || $1::text)::int8
    LIMIT 1";
/// The slot: active, its walsender's pid, wal_status (13+, NULL before).
const SLOT_SQL: &str = "SELECT s.active, s.active_pid, to_jsonb(s) ->> 'wal_status'
    FROM pg_replication_slots s WHERE s.slot_name = $1";
/// Invalid indexes: schema, index, table, definition.
const INVALID_INDEXES_SQL: &str =
    "SELECT n.nspname::text, ic.relname::text, tc.relname::text, pg_get_indexdef(i.indexrelid)
    FROM pg_index i
    JOIN pg_class ic ON ic.oid = i.indexrelid
    JOIN pg_class tc ON tc.oid = i.indrelid
    JOIN pg_namespace n ON n.oid = ic.relnamespace
    WHERE NOT i.indisvalid AND n.nspname <> 'information_schema' AND n.nspname !~ '^pg_'
    ORDER BY 1, 2";
/// Tables written to since the statistics were reset.
const WRITTEN_TABLES_SQL: &str =
    "SELECT schemaname::text, relname::text, n_tup_ins, n_tup_upd, n_tup_del
    FROM pg_stat_user_tables WHERE n_tup_ins + n_tup_upd + n_tup_del > 0 ORDER BY 1, 2";
const STATS_RESET_SQL: &str =
    "SELECT stats_reset::text FROM pg_stat_database WHERE datname = current_database()";
/// The role's rights for the fence.
const FENCE_RIGHTS_SQL: &str = "SELECT current_user::text, r.rolsuper,
        pg_has_role(current_user, d.datdba, 'USAGE'), pg_get_userbyid(d.datdba)::text, d.datname::text,
        pg_has_role(current_user, 'pg_signal_backend', 'USAGE')
    FROM pg_roles r CROSS JOIN pg_database d
    WHERE r.rolname = current_user AND d.datname = current_database()";
/// Other client sessions of superusers on the current database.
const SUPERUSER_SESSIONS_SQL: &str = "SELECT a.usename::text, count(*)::int8
    FROM pg_stat_activity a JOIN pg_roles r ON r.oid = a.usesysid
    WHERE a.datname = current_database() AND a.pid <> pg_backend_pid()
      AND a.backend_type = 'client backend' AND r.rolsuper
    GROUP BY 1 ORDER BY 1";

/// Makes the pre-cutover report. Reads only.
pub async fn report(
    plan: &Plan,
    source: &Endpoint,
    target: &Endpoint,
    opts: DryRunOptions,
) -> Result<DryRun, DryRunError> {
    let started = Instant::now();
    let src = connect_read_only(source).await?;
    let tgt = connect_read_only(target).await?;
    let slot = plan.slot_name();
    let status = crate::status::read(&plan.name, &slot, &plan.file, source, target).await?;

    // The run.
    let has_cutover_table: bool = tgt
        .query_one("SELECT to_regclass('pgmove.cutover') IS NOT NULL", &[])
        .await
        .map_err(|e| target.query_error("looking for pgmove.cutover", &e))?
        .get(0);
    let (cutover_state, cutover_detail) = if has_cutover_table {
        match tgt
            .query_opt(
                "SELECT state, detail FROM pgmove.cutover WHERE plan_name = $1",
                &[&plan.name],
            )
            .await
            .map_err(|e| target.query_error("reading pgmove.cutover", &e))?
        {
            Some(r) => (Some(r.get::<_, String>(0)), r.get::<_, Option<String>>(1)),
            None => (None, None),
        }
    } else {
        (None, None)
    };
    let apply_lock_pid: Option<i32> = tgt
        .query_opt(APPLY_LOCK_SQL, &[&plan.name])
        .await
        .map_err(|e| target.query_error("looking for a running apply (pg_locks)", &e))?
        .map(|r| r.get(0));
    let run = RunState {
        strategy: status.strategy.clone(),
        phase: status.phase.clone(),
        steps_done: status.steps_done.clone(),
        last_error: status.last_error.clone(),
        full_load_done: status.steps_done.iter().any(|s| s == "loaded"),
        change_capture_ran: status.replicated_transactions.is_some(),
        replicated_transactions: status.replicated_transactions,
        replicated_changes: status.replicated_changes,
        apply_lock_pid,
        cutover_state,
        cutover_detail,
    };

    // Lag.
    let slot_row = src
        .query_opt(SLOT_SQL, &[&slot])
        .await
        .map_err(|e| source.query_error("reading the replication slot", &e))?;
    let applied = applied_lsn(&tgt, target, &plan.name).await?;
    let mut lag = LagReport {
        slot: slot.clone(),
        slot_exists: slot_row.is_some(),
        slot_active: false,
        slot_active_pid: None,
        slot_wal_status: None,
        retained_wal_bytes: None,
        source_wal_lsn: None,
        applied_lsn: applied.map(|l| l.to_string()),
        bytes: None,
        seconds: None,
        bytes_after_compare: None,
        streaming: run.apply_lock_pid.is_some(),
        max_lag_secs: plan.cutover.max_lag.as_secs_f64(),
    };
    if let Some(r) = &slot_row {
        lag.slot_active = r.get(0);
        lag.slot_active_pid = r.get(1);
        lag.slot_wal_status = r.get(2);
        lag.streaming |= lag.slot_active;
    }
    match &status.slot {
        Some(s) => {
            lag.retained_wal_bytes = s.retained_wal_bytes;
            lag.source_wal_lsn = s.source_wal_lsn.clone();
            if s.applied_lsn.is_some() {
                lag.applied_lsn = s.applied_lsn.clone();
                lag.bytes = s.lag_bytes;
                lag.seconds = s.lag_seconds;
            }
        }
        None => {
            let current = current_wal_lsn(&src, source).await?;
            lag.source_wal_lsn = Some(current.to_string());
            lag.bytes = applied.map(|a| current.bytes_since(a));
        }
    }

    let mut findings = run_findings(plan, &run, &lag);

    // The comparison, once the full load is done.
    let mut dry = DryRun {
        plan: plan.name.clone(),
        source: source.display(),
        target: target.display(),
        ready: false,
        blockers: 0,
        warnings: 0,
        run,
        lag,
        verify_level: None,
        cutover_verify: plan.cutover.verify.to_string(),
        verify_secs: None,
        in_flight: false,
        tables: Vec::new(),
        sequences_mode: plan.cutover.sequences.to_string(),
        sequences: Vec::new(),
        objects: Vec::new(),
        large_objects: None,
        invalid_indexes: Vec::new(),
        excluded_written: Vec::new(),
        stats_reset: None,
        fence: fence_check(plan, &src, source).await?,
        outage: OutageEstimate {
            seconds: None,
            catch_up_secs: 0.0,
            verify_secs: 0.0,
            fixed_secs: FIXED_OUTAGE_SECS,
            downtime_budget_secs: plan.downtime.as_secs_f64(),
            how: String::new(),
        },
        findings: Vec::new(),
        elapsed_secs: 0.0,
    };

    // Invalid indexes on the target.
    let invalid = tgt
        .query(INVALID_INDEXES_SQL, &[])
        .await
        .map_err(|e| target.query_error("listing invalid indexes", &e))?;
    for r in invalid {
        let (schema, index, table, def): (String, String, String, String) =
            (r.get(0), r.get(1), r.get(2), r.get(3));
        if !plan.objects.includes_schema(&schema) {
            continue;
        }
        let q = quote::qualified(&schema, &index);
        findings.push(
            finding(
                Severity::Blocker,
                "invalid-index",
                Some(Side::Target),
                format!(
                    "index {q} on table {} is invalid (pg_index.indisvalid = false: a failed CREATE INDEX CONCURRENTLY or REINDEX); queries cannot use it and, if unique, it enforces nothing reliable",
                    quote::qualified(&schema, &table)
                ),
            )
            .with_object(format!("index {q}"))
            .with_fix(format!(
                "on the target: REINDEX INDEX CONCURRENTLY {q};  -- if that fails again (e.g. duplicates for a unique index), fix the data or DROP INDEX CONCURRENTLY {q}; and recreate it: {def}"
            )),
        );
        dry.invalid_indexes.push(format!("{schema}.{index}"));
    }

    // Excluded tables written to on the source.
    let reset: Option<String> = src
        .query_one(STATS_RESET_SQL, &[])
        .await
        .map_err(|e| source.query_error("reading pg_stat_database", &e))?
        .get(0);
    dry.stats_reset = reset;
    if !plan.objects.exclude.is_empty() {
        let rows = src
            .query(WRITTEN_TABLES_SQL, &[])
            .await
            .map_err(|e| source.query_error("reading pg_stat_user_tables", &e))?;
        for r in rows {
            let (schema, name): (String, String) = (r.get(0), r.get(1));
            if !plan.objects.includes_schema(&schema) || plan.objects.includes(&schema, &name) {
                continue;
            }
            dry.excluded_written.push(ExcludedWrites {
                schema,
                name,
                inserts: r.get(2),
                updates: r.get(3),
                deletes: r.get(4),
            });
        }
    }
    findings.extend(excluded_findings(&dry.excluded_written, &dry.stats_reset));
    findings.extend(fence_findings(&dry.fence));

    if dry.run.full_load_done {
        let objects = plan.objects.clone();
        let vopts = VerifyOptions {
            level: opts.verify_level,
            schemas: plan.objects.schemas.clone(),
            include: Arc::new(move |s: &str, t: &str| objects.includes(s, t)),
            jobs: opts.jobs.max(1),
            large_objects: plan.objects.large_objects,
            progress: opts.progress,
            ..Default::default()
        }
        .with_plan(plan);
        let t0 = Instant::now();
        let v = verify::verify(source, target, &vopts).await?;
        let secs = t0.elapsed().as_secs_f64();
        dry.verify_level = Some(opts.verify_level);
        dry.verify_secs = Some(secs);
        // The lag after the comparison: did the source move on meanwhile?
        let after_src = current_wal_lsn(&src, source).await?;
        let after_applied = applied_lsn(&tgt, target, &plan.name).await?;
        dry.lag.bytes_after_compare = after_applied.map(|a| after_src.bytes_since(a));
        dry.in_flight = dry.lag.bytes.is_none_or(|b| b > 0)
            || dry.lag.bytes_after_compare.is_none_or(|b| b > 0);
        let invalid: BTreeSet<String> = dry.invalid_indexes.iter().cloned().collect();
        let assessed = assess_comparison(plan, &v, dry.in_flight, &invalid);
        dry.tables = assessed.tables;
        dry.sequences = assessed.sequences;
        dry.objects = v.objects.clone();
        dry.large_objects = v.large_objects.clone();
        findings.extend(assessed.findings);
    }

    dry.outage = estimate_outage(plan, &dry.lag, &dry.run, dry.verify_secs);
    if let Some(o) = dry.outage.seconds {
        if o > dry.outage.downtime_budget_secs && plan.cutover.fence == Fence::ReadOnly {
            findings.push(
                finding(
                    Severity::Warning,
                    "outage-over-budget",
                    None,
                    format!(
                        "the estimated write outage (~{:.0}s) is longer than the plan's downtime budget ({})",
                        o.ceil(),
                        planner::human(plan.downtime)
                    ),
                )
                .with_object("plan downtime")
                .with_fix(if plan.cutover.verify == VerifyLevel::Checksums {
                    format!(
                        "set cutover.verify: counts (this report's checksums took {:.1}s), cut over when the lag is lower, or raise downtime:",
                        dry.outage.verify_secs
                    )
                } else {
                    "cut over when the lag is lower, or raise downtime:".to_string()
                }),
            );
        }
    }
    findings.sort_by_key(|f| f.severity);
    dry.blockers = findings
        .iter()
        .filter(|f| f.severity == Severity::Blocker)
        .count();
    dry.warnings = findings
        .iter()
        .filter(|f| f.severity == Severity::Warning)
        .count();
    dry.findings = findings;
    dry.ready = dry.ready();
    dry.elapsed_secs = started.elapsed().as_secs_f64();
    Ok(dry)
}

async fn current_wal_lsn(src: &Client, ep: &Endpoint) -> Result<Lsn, PgError> {
    Ok(src
        .query_one("SELECT pg_current_wal_lsn()", &[])
        .await
        .map_err(|e| ep.query_error("reading the source's WAL position", &e))?
        .get(0))
}

async fn applied_lsn(tgt: &Client, ep: &Endpoint, plan: &str) -> Result<Option<Lsn>, PgError> {
    let exists: bool = tgt
        .query_one("SELECT to_regclass('pgmove.progress') IS NOT NULL", &[])
        .await
        .map_err(|e| ep.query_error("looking for pgmove.progress", &e))?
        .get(0);
    if !exists {
        return Ok(None);
    }
    Ok(tgt
        .query_opt(
            "SELECT applied_lsn FROM pgmove.progress WHERE plan_name = $1",
            &[&plan],
        )
        .await
        .map_err(|e| ep.query_error("reading pgmove.progress", &e))?
        .map(|r| r.get(0)))
}

async fn fence_check(plan: &Plan, src: &Client, ep: &Endpoint) -> Result<FenceCheck, PgError> {
    let r = src
        .query_one(FENCE_RIGHTS_SQL, &[])
        .await
        .map_err(|e| ep.query_error("reading the source role's rights", &e))?;
    let superuser_sessions = src
        .query(SUPERUSER_SESSIONS_SQL, &[])
        .await
        .map_err(|e| ep.query_error("listing the source's sessions", &e))?
        .iter()
        .map(|r| format!("{} ({})", r.get::<_, String>(0), r.get::<_, i64>(1)))
        .collect();
    Ok(FenceCheck {
        fence: plan.cutover.fence.to_string(),
        role: r.get(0),
        superuser: r.get(1),
        owns_database: r.get(2),
        database_owner: r.get(3),
        database: r.get(4),
        signal_backend: r.get(5),
        superuser_sessions,
    })
}

/// Findings about the run and the lag.
fn run_findings(plan: &Plan, run: &RunState, lag: &LagReport) -> Vec<Finding> {
    let file = &plan.file;
    let mut out = Vec::new();
    let apply_fix = format!(
        "pgmove apply {file} --yes  (strategy copy-cdc: it loads the target, then replicates changes until cutover)"
    );
    if run.strategy.is_none() {
        out.push(
            finding(
                Severity::Blocker,
                "not-applied",
                Some(Side::Target),
                format!(
                    "plan {} has never been applied to this target (no pgmove state for it): there is nothing to cut over",
                    plan.name
                ),
            )
            .with_object(format!("plan {}", plan.name))
            .with_fix(format!("run apply first: {apply_fix}")),
        );
        return out;
    }
    if run.phase == "live" || run.cutover_state.as_deref() == Some("done") {
        out.push(
            finding(
                Severity::Blocker,
                "already-live",
                Some(Side::Target),
                format!(
                    "plan {} was already cut over: the target is live",
                    plan.name
                ),
            )
            .with_object(format!("plan {}", plan.name))
            .with_fix(format!(
                "nothing to do; remove pgmove's artifacts: pgmove cleanup {file}"
            )),
        );
        return out;
    }
    if let Some(s) = run.strategy.as_deref().filter(|s| *s != CUTOVER_STRATEGY) {
        out.push(
            finding(
                Severity::Blocker,
                "strategy",
                None,
                format!(
                    "the run used strategy {s}; pgmove cutover works with copy-cdc runs (change capture into pgmove.progress)"
                ),
            )
            .with_object(format!("plan {}", plan.name))
            .with_fix(format!(
                "for an offline move the target is complete once apply finishes: run pgmove verify {file}; for an online move set strategy: copy-cdc and start over (pgmove cleanup, then apply)"
            )),
        );
        return out;
    }
    if !run.full_load_done {
        out.push(
            finding(
                Severity::Blocker,
                "full-load",
                Some(Side::Target),
                format!(
                    "the full load has not finished (phase {}{})",
                    run.phase,
                    run.last_error
                        .as_deref()
                        .map(|e| format!(", last error: {e}"))
                        .unwrap_or_default()
                ),
            )
            .with_object(format!("plan {}", plan.name))
            .with_fix(format!(
                "{}: {apply_fix}",
                if run.apply_lock_pid.is_some() {
                    "an apply is running: wait until it reports the full load done (pgmove status shows the phase)"
                } else {
                    "run apply again, it resumes where it stopped"
                }
            )),
        );
    } else if !run.change_capture_ran {
        out.push(
            finding(
                Severity::Blocker,
                "change-capture",
                Some(Side::Target),
                "change capture never ran (pgmove.progress has no row for the plan): the target holds the snapshot of the full load, and the changes since are not on it".to_string(),
            )
            .with_object(format!("plan {}", plan.name))
            .with_fix(format!(
                "run apply (without --stop-after-load) and let it reach change capture: {apply_fix}"
            )),
        );
    }
    if run.full_load_done {
        if let Some(e) = &run.last_error {
            out.push(
                finding(
                    Severity::Warning,
                    "last-apply-error",
                    None,
                    format!("the last apply stopped with an error (phase {}): {e}", run.phase),
                )
                .with_object(format!("plan {}", plan.name))
                .with_fix(format!(
                    "fix the cause; cutover runs change capture itself when no apply runs and may hit it again (pgmove status {file} shows it)"
                )),
            );
        }
    }
    if !lag.slot_exists {
        out.push(
            finding(
                Severity::Blocker,
                "slot-missing",
                Some(Side::Source),
                format!(
                    "replication slot {} does not exist on the source: the changes since the target's last applied position cannot be replicated",
                    lag.slot
                ),
            )
            .with_object(format!("replication slot {}", lag.slot))
            .with_fix(format!(
                "start over: pgmove cleanup {file} and pgmove apply {file} --yes (a dropped slot cannot be recovered)"
            )),
        );
    } else if lag.slot_wal_status.as_deref() == Some("lost") {
        out.push(
            finding(
                Severity::Blocker,
                "slot-lost",
                Some(Side::Source),
                format!(
                    "replication slot {} is invalidated (wal_status lost): the WAL it needed was removed (max_slot_wal_keep_size)",
                    lag.slot
                ),
            )
            .with_object(format!("replication slot {}", lag.slot))
            .with_fix(format!(
                "start over into an empty target: pgmove cleanup {file}, drop and re-create the target database (or drop the tables the load copied), raise max_slot_wal_keep_size (or -1), then pgmove apply {file} --yes"
            )),
        );
    } else if lag.slot_wal_status.as_deref() == Some("unreserved") {
        out.push(
            finding(
                Severity::Warning,
                "slot-unreserved",
                Some(Side::Source),
                format!(
                    "replication slot {} is about to lose WAL it needs (wal_status unreserved)",
                    lag.slot
                ),
            )
            .with_object(format!("replication slot {}", lag.slot))
            .with_fix(
                "keep an apply streaming, or ALTER SYSTEM SET max_slot_wal_keep_size = -1; SELECT pg_reload_conf(); on the source",
            ),
        );
    }
    match run.cutover_state.as_deref() {
        Some("fenced") => out.push(
            finding(
                Severity::Warning,
                "cutover-interrupted",
                Some(Side::Source),
                "an earlier cutover was interrupted with the source fenced (read-only): writes on the source are stopped now".to_string(),
            )
            .with_object("pgmove.cutover")
            .with_fix(format!("pgmove cutover {file} finishes it (and unfences the source if it fails)")),
        ),
        Some("requested") => out.push(
            finding(
                Severity::Info,
                "cutover-requested",
                None,
                "a cutover was requested and has not finished: it may be under way now (or was stopped before the fence, which changed nothing)".to_string(),
            )
            .with_object("pgmove.cutover")
            .with_fix(format!("pgmove status {file} shows whether it goes on")),
        ),
        Some("failed") => out.push(
            finding(
                Severity::Info,
                "cutover-failed-before",
                None,
                format!(
                    "an earlier cutover failed{}; the source was unfenced and replication went on",
                    run.cutover_detail
                        .as_deref()
                        .map(|d| format!(": {d}"))
                        .unwrap_or_default()
                ),
            )
            .with_object("pgmove.cutover"),
        ),
        _ => {}
    }
    if run.change_capture_ran && lag.slot_exists {
        if lag.slot_active && run.apply_lock_pid.is_none() {
            out.push(
                finding(
                    Severity::Warning,
                    "slot-in-use",
                    Some(Side::Source),
                    format!(
                        "slot {} is in use (walsender pid {}) but no pgmove apply of this plan holds its lock on the target",
                        lag.slot,
                        lag.slot_active_pid.map(|p| p.to_string()).unwrap_or("?".into())
                    ),
                )
                .with_object(format!("replication slot {}", lag.slot))
                .with_fix(format!(
                    "find the consumer: SELECT * FROM pg_stat_replication WHERE pid = {}; on the source; stop it, or run cutover while it runs",
                    lag.slot_active_pid.map(|p| p.to_string()).unwrap_or("<pid>".into())
                )),
            );
        }
        if !lag.streaming {
            out.push(
                finding(
                    Severity::Info,
                    "no-apply-running",
                    None,
                    match lag.bytes {
                        Some(0) => "no apply is streaming now; cutover will run change capture itself (the target is caught up now)".to_string(),
                        b => format!(
                            "no apply is streaming now; cutover will run change capture itself and first catch up the {} it is behind",
                            b.map(|b| planner::bytes(b as i64)).unwrap_or("?".into())
                        ),
                    },
                )
                .with_object(format!("replication slot {}", lag.slot)),
            );
        } else if lag.seconds.is_some_and(|s| s > lag.max_lag_secs) {
            out.push(
                finding(
                    Severity::Info,
                    "lag-above-max",
                    None,
                    format!(
                        "the target is {:.1}s behind, more than cutover.max_lag ({:.1}s): cutover waits until it is under",
                        lag.seconds.unwrap_or(0.0),
                        lag.max_lag_secs
                    ),
                )
                .with_object("cutover.max_lag"),
            );
        }
    }
    out
}

fn excluded_findings(written: &[ExcludedWrites], stats_reset: &Option<String>) -> Vec<Finding> {
    let since = match stats_reset {
        Some(t) => format!("since statistics were reset at {t}"),
        None => "since statistics were reset (never explicitly: since the statistics were last lost, e.g. by a crash, or the cluster was created)".to_string(),
    };
    written
        .iter()
        .map(|w| {
            let q = quote::qualified(&w.schema, &w.name);
            finding(
                Severity::Warning,
                "excluded-table-written",
                Some(Side::Source),
                format!(
                    "table {q} is excluded by the plan (objects.exclude) but has been written to on the source: {} insert(s), {} update(s), {} delete(s) {since}; its rows will not be on the target after cutover",
                    w.inserts, w.updates, w.deletes
                ),
            )
            .with_object(format!("table {q}"))
            .with_fix(format!(
                "if the applications still need it, move it yourself after the fence (pg_dump -t '{}.{}' | psql on the target) or remove it from objects.exclude and start over; if it is scratch data, nothing to do",
                w.schema, w.name
            ))
        })
        .collect()
}

/// Whether the source role can fence: ALTER DATABASE ... SET (owner or superuser) and
/// terminate the other sessions (superuser or pg_signal_backend).
/// Shared with `pgmove plan` ([`crate::preflight::fence_rights`]).
pub(crate) fn fence_findings(f: &FenceCheck) -> Vec<Finding> {
    let mut out = Vec::new();
    let role = quote::ident(&f.role);
    let db = quote::ident(&f.database);
    if f.fence != Fence::ReadOnly.to_string() {
        out.push(
            finding(
                Severity::Warning,
                "fence-none",
                Some(Side::Source),
                "cutover.fence is none: pgmove will not stop writes on the source; a write that reaches it after the final catch-up is not on the target".to_string(),
            )
            .with_object("cutover.fence")
            .with_fix("stop the applications' writes yourself before pgmove cutover, or set cutover.fence: read-only"),
        );
        return out;
    }
    if !f.superuser && !f.owns_database {
        out.push(
            finding(
                Severity::Blocker,
                "fence-alter-database",
                Some(Side::Source),
                format!(
                    "role {} can neither own nor bypass database {}: the fence (ALTER DATABASE {db} SET default_transaction_read_only = on) needs its owner ({}) or a superuser",
                    f.role, f.database, f.database_owner
                ),
            )
            .with_object(format!("database {}", f.database))
            .with_fix(format!(
                "as a superuser (RDS/Aurora: the master user): ALTER DATABASE {db} OWNER TO {role};  -- or run pgmove on the source as {}; or set cutover.fence: none and stop the writes yourself",
                quote::ident(&f.database_owner)
            )),
        );
    }
    if !f.superuser && !f.signal_backend {
        out.push(
            finding(
                Severity::Blocker,
                "fence-terminate",
                Some(Side::Source),
                format!(
                    "role {} cannot terminate other roles' sessions: the fence ends every other session of database {} (a session keeps the read-only setting it started with), which needs a superuser or membership in pg_signal_backend",
                    f.role, f.database
                ),
            )
            .with_object(format!("role {}", f.role))
            .with_fix(format!(
                "as a superuser (RDS/Aurora: the master user): GRANT pg_signal_backend TO {role};"
            )),
        );
    }
    if !f.superuser && !f.superuser_sessions.is_empty() {
        out.push(
            finding(
                Severity::Warning,
                "fence-superuser-sessions",
                Some(Side::Source),
                format!(
                    "superusers are connected to database {} now ({}); a non-superuser cannot terminate their sessions, and cutover waits for every session to end",
                    f.database,
                    f.superuser_sessions.join(", ")
                ),
            )
            .with_object(format!("database {}", f.database))
            .with_fix("disconnect those sessions before cutover"),
        );
    }
    out
}

/// What a comparison means for cutover.
struct Assessed {
    tables: Vec<TableCheck>,
    sequences: Vec<SequenceCheck>,
    findings: Vec<Finding>,
}

/// Classifies verify's differences: expected while in flight, fixed by cutover itself
/// (sequences, large objects), or blocking.
fn assess_comparison(
    plan: &Plan,
    v: &VerifyReport,
    in_flight: bool,
    invalid_indexes: &BTreeSet<String>,
) -> Assessed {
    let cutover_verifies = plan.cutover.verify != VerifyLevel::None;
    // A schema change may still be on its way to the target.
    let ddl_in_flight = in_flight && plan.cdc.ddl == Ddl::Replicate;
    let mut findings = Vec::new();
    let mut tables = Vec::new();
    let mut in_flight_tables = Vec::new();
    // Materialized views' contents: cutover refreshes them on the target before it verifies.
    for t in v.tables.iter().filter(|t| !t.materialized_view) {
        let q = quote::qualified(&t.schema, &t.name);
        let state = match t.status {
            TableStatus::Same if t.partitioned => "partitioned",
            TableStatus::Same => "same",
            TableStatus::Differs if in_flight => "in flight",
            TableStatus::Differs => "differs",
            TableStatus::MissingOnTarget => "missing on target",
            TableStatus::MissingOnSource => "missing on source",
        };
        match t.status {
            TableStatus::Same => {}
            TableStatus::Differs if in_flight => in_flight_tables.push(format!(
                "{q} ({} rows on the source, {} on the target)",
                rows(t.source_rows),
                rows(t.target_rows)
            )),
            TableStatus::Differs => findings.push(
                finding(
                    Severity::Blocker,
                    "table-differs",
                    Some(Side::Target),
                    format!(
                        "table {q} differs although the target has applied everything: {} rows on the source, {} on the target, {} of {} chunk(s) differ{}",
                        rows(t.source_rows),
                        rows(t.target_rows),
                        t.differing_chunks.len(),
                        t.chunks,
                        if t.notes.is_empty() {
                            String::new()
                        } else {
                            format!("; {}", t.notes.join("; "))
                        }
                    ),
                )
                .with_object(format!("table {q}"))
                .with_fix(format!(
                    "find the rows: pgmove verify {} shows the differing key ranges; fix the target (or reload the table) before cutover",
                    plan.file
                )),
            ),
            TableStatus::MissingOnTarget => findings.push(
                finding(
                    if ddl_in_flight { Severity::Warning } else { Severity::Blocker },
                    "table-missing-on-target",
                    Some(Side::Target),
                    format!(
                        "table {q} is on the source ({} rows) but not on the target{}",
                        rows(t.source_rows),
                        if ddl_in_flight { "; it may be in flight (created on the source, cdc.ddl: replicate)" } else { "" }
                    ),
                )
                .with_object(format!("table {q}"))
                .with_fix(format!(
                    "if it was created after the load with cdc.ddl other than replicate, create and load it on the target yourself (pg_dump -t '{}.{}' | psql), or add it to objects.exclude",
                    t.schema, t.name
                )),
            ),
            TableStatus::MissingOnSource => findings.push(
                finding(
                    if ddl_in_flight || !cutover_verifies { Severity::Warning } else { Severity::Blocker },
                    "table-missing-on-source",
                    Some(Side::Target),
                    format!(
                        "table {q} is on the target ({} rows) but not on the source{}",
                        rows(t.target_rows),
                        if cutover_verifies { "; cutover's verification would fail on it" } else { "" }
                    ),
                )
                .with_object(format!("table {q}"))
                .with_fix(format!("drop it on the target if it is not wanted: DROP TABLE {q};")),
            ),
        }
        tables.push(TableCheck {
            schema: t.schema.clone(),
            name: t.name.clone(),
            state: state.to_string(),
            source_rows: t.source_rows,
            target_rows: t.target_rows,
            method: t.method,
            chunks: t.chunks,
            differing_chunks: t.differing_chunks.len(),
            differing_where: t
                .differing_chunks
                .iter()
                .take(5)
                .map(|c| c.where_sql.clone())
                .collect(),
            notes: t.notes.clone(),
        });
    }
    if !in_flight_tables.is_empty() {
        findings.push(
            finding(
                Severity::Warning,
                "rows-in-flight",
                Some(Side::Target),
                format!(
                    "{} table(s) differ while the target is behind the source, as expected: {}",
                    in_flight_tables.len(),
                    list(&in_flight_tables)
                ),
            )
            .with_object(list(
                &in_flight_tables
                    .iter()
                    .map(|t| t.split(' ').next().unwrap_or("").to_string())
                    .collect::<Vec<_>>(),
            ))
            .with_fix(
                "nothing to do: cutover applies the rest after the fence and verifies again; run this report when no writes are under way to see them match",
            ),
        );
    }

    // Sequences.
    let sync = plan.cutover.sequences == Sequences::Sync;
    let mut sequences = Vec::new();
    for s in &v.sequences {
        let q = quote::qualified(&s.schema, &s.name);
        let mut c = SequenceCheck {
            schema: s.schema.clone(),
            name: s.name.clone(),
            source_last_value: s.source.as_ref().map(|x| x.last_value),
            source_is_called: s.source.as_ref().map(|x| x.is_called),
            target_last_value: s.target.as_ref().map(|x| x.last_value),
            target_is_called: s.target.as_ref().map(|x| x.is_called),
            at_cutover_value: None,
            at_cutover_is_called: None,
            action: String::new(),
        };
        match (&s.source, &s.target) {
            (Some(src), Some(tgt)) => {
                if src.definition != tgt.definition {
                    findings.push(
                        finding(
                            if cutover_verifies && !ddl_in_flight {
                                Severity::Blocker
                            } else {
                                Severity::Warning
                            },
                            "sequence-definition",
                            Some(Side::Target),
                            format!(
                                "sequence {q} is defined differently: source {}, target {}",
                                src.definition, tgt.definition
                            ),
                        )
                        .with_object(format!("sequence {q}"))
                        .with_fix(format!(
                            "ALTER SEQUENCE {q} ... on the target to match the source"
                        )),
                    );
                }
                if sync {
                    c.at_cutover_value = Some(src.last_value);
                    c.at_cutover_is_called = Some(src.is_called);
                    c.action = if src.last_value == tgt.last_value && src.is_called == tgt.is_called
                    {
                        "already equal".into()
                    } else {
                        "set at cutover".into()
                    };
                } else {
                    c.action = "left as is (cutover.sequences: skip)".into();
                    if src.next_value != tgt.next_value {
                        findings.push(
                            finding(
                                if cutover_verifies { Severity::Blocker } else { Severity::Warning },
                                "sequence-not-synced",
                                Some(Side::Target),
                                format!(
                                    "sequence {q} will hand out {} on the target but {} on the source, and cutover.sequences is skip{}",
                                    tgt.next_value,
                                    src.next_value,
                                    if cutover_verifies { ": cutover's verification would fail on it" } else { ": inserts on the target may collide" }
                                ),
                            )
                            .with_object(format!("sequence {q}"))
                            .with_fix("set cutover.sequences: sync, or set it on the target yourself after the fence: SELECT setval(...)"),
                        );
                    }
                }
            }
            (Some(_), None) => {
                c.action = "missing on target".into();
                findings.push(
                    finding(
                        if ddl_in_flight { Severity::Warning } else { Severity::Blocker },
                        "sequence-missing-on-target",
                        Some(Side::Target),
                        format!("sequence {q} is on the source but not on the target{}", if sync { ": cutover cannot set it" } else { "" }),
                    )
                    .with_object(format!("sequence {q}"))
                    .with_fix(format!("create it on the target as on the source (pg_dump --schema-only -t '{}.{}' | psql)", s.schema, s.name)),
                );
            }
            (None, _) => {
                c.action = "missing on source".into();
                findings.push(
                    finding(
                        if cutover_verifies && !ddl_in_flight {
                            Severity::Blocker
                        } else {
                            Severity::Warning
                        },
                        "sequence-missing-on-source",
                        Some(Side::Target),
                        format!("sequence {q} is on the target but not on the source"),
                    )
                    .with_object(format!("sequence {q}"))
                    .with_fix(format!(
                        "drop it on the target if it is not wanted: DROP SEQUENCE {q};"
                    )),
                );
            }
        }
        sequences.push(c);
    }

    // Objects.
    for o in &v.objects {
        let name = format!("{}.{}", o.schema, o.name);
        let shown = if o.schema.is_empty() {
            o.name.clone()
        } else {
            name.clone()
        };
        // An invalid index has its own finding.
        if o.kind == ObjectKind::Index
            && invalid_indexes.contains(&name)
            && o.target
                .as_deref()
                .is_some_and(|d| d.ends_with("[INVALID]"))
        {
            continue;
        }
        let (severity, what, fix) = match o.difference {
            ObjectDifference::MissingOnTarget => (
                if ddl_in_flight {
                    Severity::Warning
                } else {
                    Severity::Blocker
                },
                "is on the source but not on the target".to_string(),
                format!(
                    "create it on the target as on the source: {}",
                    o.source.as_deref().unwrap_or("(see pgmove verify)")
                ),
            ),
            ObjectDifference::MissingOnSource => (
                if cutover_verifies && !ddl_in_flight {
                    Severity::Blocker
                } else {
                    Severity::Warning
                },
                format!(
                    "is on the target but not on the source{}",
                    if cutover_verifies {
                        ": cutover's verification would fail on it"
                    } else {
                        ""
                    }
                ),
                format!(
                    "drop it on the target if it is not wanted{}",
                    o.target
                        .as_deref()
                        .map(|d| format!(" (it is: {d})"))
                        .unwrap_or_default()
                ),
            ),
            ObjectDifference::Definition => (
                if cutover_verifies && !ddl_in_flight {
                    Severity::Blocker
                } else {
                    Severity::Warning
                },
                format!(
                    "{}: source {}, target {}",
                    o.property.as_deref().map_or_else(
                        || "is defined differently".to_string(),
                        |p| format!("differs in {p}")
                    ),
                    o.source.as_deref().unwrap_or("-"),
                    o.target.as_deref().unwrap_or("-")
                ),
                "redefine it on the target as on the source".to_string(),
            ),
        };
        findings.push(
            finding(
                severity,
                match o.difference {
                    ObjectDifference::MissingOnTarget => "object-missing-on-target",
                    ObjectDifference::MissingOnSource => "object-missing-on-source",
                    ObjectDifference::Definition => "object-differs",
                },
                Some(Side::Target),
                format!(
                    "{} {shown} {what}{}",
                    o.kind,
                    if ddl_in_flight {
                        " (may be in flight: cdc.ddl replicate and the target is behind)"
                    } else {
                        ""
                    }
                ),
            )
            .with_object(format!("{} {shown}", o.kind))
            .with_fix(fix),
        );
    }

    if let Some(lo) = &v.large_objects {
        if !lo.equal {
            findings.push(
                finding(
                    Severity::Info,
                    "large-objects",
                    None,
                    format!(
                        "large objects differ ({} on the source, {} on the target): cutover copies the changed ones and removes those the source no longer has",
                        lo.source_count, lo.target_count
                    ),
                )
                .with_object("large objects"),
            );
        }
    }
    Assessed {
        tables,
        sequences,
        findings,
    }
}

/// Catch-up (the lag now, at most max_lag) + verification at the plan's level + fixed part.
fn estimate_outage(
    plan: &Plan,
    lag: &LagReport,
    run: &RunState,
    verify_secs: Option<f64>,
) -> OutageEstimate {
    let max_lag = plan.cutover.max_lag.as_secs_f64();
    let catch_up = lag.seconds.unwrap_or(0.0).min(max_lag);
    let verify = if plan.cutover.verify == VerifyLevel::None {
        0.0
    } else {
        verify_secs.unwrap_or(0.0)
    };
    let known = run.change_capture_ran
        && (verify_secs.is_some() || plan.cutover.verify == VerifyLevel::None);
    let fence = plan.cutover.fence == Fence::ReadOnly;
    let how = if !known {
        "not estimated: change capture has not run and nothing was compared yet".to_string()
    } else {
        format!(
            "final catch-up: the lag now, at most cutover.max_lag (cutover fences only once the lag is under it); {}; {FIXED_OUTAGE_SECS:.0}s fixed for the fence, terminating sessions, the markers and the sequences{}",
            if plan.cutover.verify == VerifyLevel::None {
                "no verification (cutover.verify: none)".to_string()
            } else {
                format!(
                    "verification: as long as this report's own comparison took (cutover.verify: {}, run while writes are fenced)",
                    plan.cutover.verify
                )
            },
            if fence {
                ""
            } else {
                "; cutover.fence is none, so add whatever stopping the applications takes"
            }
        )
    };
    OutageEstimate {
        seconds: known.then_some(catch_up + verify + FIXED_OUTAGE_SECS),
        catch_up_secs: catch_up,
        verify_secs: verify,
        fixed_secs: FIXED_OUTAGE_SECS,
        downtime_budget_secs: plan.downtime.as_secs_f64(),
        how,
    }
}

fn rows(n: Option<i64>) -> String {
    n.map(|n| n.to_string()).unwrap_or_else(|| "-".to_string())
}

/// At most ten names, then how many more.
fn list(items: &[String]) -> String {
    if items.len() <= 10 {
        items.join(", ")
    } else {
        format!("{} and {} more", items[..10].join(", "), items.len() - 10)
    }
}

fn seq_value(v: Option<i64>, called: Option<bool>) -> String {
    match (v, called) {
        (Some(v), Some(true)) => v.to_string(),
        (Some(v), Some(false)) => format!("{v} (not called)"),
        _ => "-".to_string(),
    }
}

fn lag_line(l: &LagReport) -> String {
    let mut s = format!(
        "source at {}, target applied {}: {} behind",
        l.source_wal_lsn.as_deref().unwrap_or("?"),
        l.applied_lsn.as_deref().unwrap_or("-"),
        l.bytes
            .map(|b| planner::bytes(b as i64))
            .unwrap_or_else(|| "?".into())
    );
    if let Some(x) = l.seconds {
        let _ = write!(s, " ({x:.1}s)");
    }
    if let Some(b) = l.bytes_after_compare {
        let _ = write!(s, ", {} after the comparison", planner::bytes(b as i64));
    }
    s
}

fn slot_line(l: &LagReport) -> String {
    if !l.slot_exists {
        return format!("slot {} missing on the source", l.slot);
    }
    format!(
        "slot {} {}{}, retains {} of WAL",
        l.slot,
        if l.slot_active {
            "active (an apply is streaming)"
        } else {
            "inactive"
        },
        l.slot_wal_status
            .as_deref()
            .map(|w| format!(", wal_status {w}"))
            .unwrap_or_default(),
        l.retained_wal_bytes
            .map(|b| planner::bytes(b as i64))
            .unwrap_or_else(|| "?".into())
    )
}

fn applier_line(d: &DryRun) -> String {
    match d.run.apply_lock_pid {
        Some(pid) => format!("a pgmove apply is running (target pid {pid} holds the plan's lock); cutover asks it to cut over"),
        None => "no pgmove apply is running; cutover runs change capture itself".to_string(),
    }
}

fn fence_line(f: &FenceCheck) -> String {
    if f.fence != Fence::ReadOnly.to_string() {
        return format!("{}: pgmove does not stop writes on the source", f.fence);
    }
    let rights = if f.superuser {
        "superuser".to_string()
    } else {
        format!(
            "{}, {}",
            if f.owns_database {
                "owns the database"
            } else {
                "does NOT own the database"
            },
            if f.signal_backend {
                "member of pg_signal_backend"
            } else {
                "NOT a member of pg_signal_backend"
            }
        )
    };
    let can = f.superuser || (f.owns_database && f.signal_backend);
    format!(
        "{}: ALTER DATABASE {} SET default_transaction_read_only = on, then terminate the other sessions; role {} ({rights}) {}",
        f.fence,
        quote::ident(&f.database),
        f.role,
        if can { "can" } else { "cannot" }
    )
}

fn verdict(d: &DryRun) -> String {
    if d.ready() {
        "Ready: `pgmove cutover` can proceed.".to_string()
    } else {
        format!(
            "Blocked: {} blocker(s) to fix before `pgmove cutover`.",
            d.blockers.max(1)
        )
    }
}

fn listed_tables(d: &DryRun) -> (Vec<&TableCheck>, usize) {
    if d.tables.len() <= LIST_ALL_TABLES_UP_TO {
        (d.tables.iter().collect(), 0)
    } else {
        let shown: Vec<&TableCheck> = d
            .tables
            .iter()
            .filter(|t| t.state != "same" && t.state != "partitioned")
            .collect();
        let hidden = d.tables.len() - shown.len();
        (shown, hidden)
    }
}

fn table_line(t: &TableCheck) -> String {
    let q = format!("{}.{}", t.schema, t.name);
    match t.state.as_str() {
        "partitioned" => format!("{q}: partitioned (rows are in its partitions)"),
        "same" => format!(
            "{q}: same, {} rows, {} chunk(s)",
            rows(t.source_rows),
            t.chunks
        ),
        _ => {
            let mut s = format!(
                "{q}: {}, {} rows on the source, {} on the target",
                t.state,
                rows(t.source_rows),
                rows(t.target_rows)
            );
            if t.chunks > 0 {
                let _ = write!(
                    s,
                    ", {} of {} chunk(s) differ",
                    t.differing_chunks, t.chunks
                );
            }
            for n in &t.notes {
                let _ = write!(s, "; {n}");
            }
            s
        }
    }
}

fn sequence_line(s: &SequenceCheck) -> String {
    format!(
        "{}.{}: source {}, target {} -> {}",
        s.schema,
        s.name,
        seq_value(s.source_last_value, s.source_is_called),
        seq_value(s.target_last_value, s.target_is_called),
        match s.at_cutover_value {
            Some(_) => format!(
                "at cutover {} ({})",
                seq_value(s.at_cutover_value, s.at_cutover_is_called),
                s.action
            ),
            None => s.action.clone(),
        }
    )
}

fn outage_line(o: &OutageEstimate) -> String {
    match o.seconds {
        Some(secs) => format!(
            "~{:.0}s = final catch-up {:.1}s + verification {:.1}s + fixed {:.0}s (downtime budget {})",
            secs.ceil(),
            o.catch_up_secs,
            o.verify_secs,
            o.fixed_secs,
            planner::human(std::time::Duration::from_secs_f64(o.downtime_budget_secs))
        ),
        None => "unknown".to_string(),
    }
}

fn render_text(d: &DryRun) -> String {
    let mut o = String::new();
    let _ = writeln!(o, "pgmove cutover --dry-run: plan {}", d.plan);
    let _ = writeln!(o, "  source: {}", d.source);
    let _ = writeln!(o, "  target: {}", d.target);
    let _ = writeln!(o);
    let _ = writeln!(o, "Run");
    let _ = writeln!(
        o,
        "  strategy {}, phase {}; full load {}; change capture {}",
        d.run.strategy.as_deref().unwrap_or("-"),
        d.run.phase,
        if d.run.full_load_done {
            "done"
        } else {
            "not done"
        },
        match (d.run.replicated_transactions, d.run.replicated_changes) {
            (Some(t), Some(c)) => format!("ran: {t} transaction(s), {c} change(s) applied"),
            _ => "never ran".to_string(),
        }
    );
    let _ = writeln!(o, "  {}", applier_line(d));
    if let Some(s) = &d.run.cutover_state {
        let _ = writeln!(o, "  earlier cutover: {s}");
    }
    let _ = writeln!(o);
    let _ = writeln!(o, "Lag");
    let _ = writeln!(o, "  {}", lag_line(&d.lag));
    let _ = writeln!(o, "  {}", slot_line(&d.lag));
    let _ = writeln!(o);
    match d.verify_level {
        None => {
            let _ = writeln!(
                o,
                "Tables, sequences, objects: not compared (the full load has not finished)"
            );
        }
        Some(level) => {
            let _ = writeln!(
                o,
                "Tables ({level}, {} table(s) compared in {:.1}s{})",
                d.tables.len(),
                d.verify_secs.unwrap_or(0.0),
                if d.in_flight {
                    "; the target is behind: differences are in flight"
                } else {
                    ""
                }
            );
            let (shown, hidden) = listed_tables(d);
            for t in shown {
                let _ = writeln!(o, "  {}", table_line(t));
            }
            if hidden > 0 {
                let _ = writeln!(
                    o,
                    "  ({hidden} identical table(s) not listed; --format json lists every table)"
                );
            }
            if d.tables.is_empty() {
                let _ = writeln!(o, "  none");
            }
            let _ = writeln!(o);
            let _ = writeln!(o, "Sequences (cutover.sequences: {})", d.sequences_mode);
            for s in &d.sequences {
                let _ = writeln!(o, "  {}", sequence_line(s));
            }
            if d.sequences.is_empty() {
                let _ = writeln!(o, "  none");
            }
            let _ = writeln!(o);
            let _ = writeln!(o, "Objects that differ");
            for x in &d.objects {
                let _ = writeln!(
                    o,
                    "  {} {}: {}",
                    x.kind,
                    if x.schema.is_empty() {
                        x.name.clone()
                    } else {
                        format!("{}.{}", x.schema, x.name)
                    },
                    x.difference
                );
            }
            if d.objects.is_empty() {
                let _ = writeln!(o, "  none");
            }
            if let Some(lo) = &d.large_objects {
                let _ = writeln!(
                    o,
                    "  large objects: {} on the source, {} on the target{}",
                    lo.source_count,
                    lo.target_count,
                    if lo.equal { ", equal" } else { ", differ" }
                );
            }
        }
    }
    let _ = writeln!(o);
    let _ = writeln!(o, "Fence");
    let _ = writeln!(o, "  {}", fence_line(&d.fence));
    let _ = writeln!(o);
    let _ = writeln!(o, "Estimated write outage: {}", outage_line(&d.outage));
    let _ = writeln!(o, "  how: {}", d.outage.how);
    let _ = writeln!(o);
    for (sev, title) in [
        (Severity::Blocker, "Blockers"),
        (Severity::Warning, "Warnings"),
        (Severity::Info, "Notes"),
    ] {
        let group: Vec<&Finding> = d.findings.iter().filter(|f| f.severity == sev).collect();
        if group.is_empty() {
            continue;
        }
        let _ = writeln!(o, "{title} ({})", group.len());
        for f in group {
            let side = f.side.map(|s| format!("{s}: ")).unwrap_or_default();
            let _ = writeln!(o, "  - [{}] {side}{}", f.check, f.message);
            if let Some(fix) = &f.fix {
                let _ = writeln!(o, "    fix: {fix}");
            }
        }
        let _ = writeln!(o);
    }
    let _ = writeln!(o, "{}", verdict(d));
    o
}

fn md(s: &str) -> String {
    s.replace('|', "\\|").replace('\n', " ")
}

fn render_markdown(d: &DryRun) -> String {
    let mut o = String::new();
    let _ = writeln!(o, "# pgmove cutover dry run: plan `{}`\n", d.plan);
    let _ = writeln!(o, "**{}**\n", verdict(d));
    let _ = writeln!(o, "| | |\n|---|---|");
    let _ = writeln!(o, "| source | `{}` |", md(&d.source));
    let _ = writeln!(o, "| target | `{}` |", md(&d.target));
    let _ = writeln!(
        o,
        "| run | strategy {}, phase {}, full load {}, change capture {} |",
        d.run.strategy.as_deref().unwrap_or("-"),
        md(&d.run.phase),
        if d.run.full_load_done {
            "done"
        } else {
            "not done"
        },
        if d.run.change_capture_ran {
            "ran"
        } else {
            "never ran"
        }
    );
    let _ = writeln!(o, "| applier | {} |", md(&applier_line(d)));
    let _ = writeln!(o, "| lag | {} |", md(&lag_line(&d.lag)));
    let _ = writeln!(o, "| slot | {} |", md(&slot_line(&d.lag)));
    let _ = writeln!(o, "| fence | {} |", md(&fence_line(&d.fence)));
    let _ = writeln!(
        o,
        "| estimated write outage | {}: {} |",
        outage_line(&d.outage),
        md(&d.outage.how)
    );
    let _ = writeln!(o, "\n## Findings\n");
    if d.findings.is_empty() {
        let _ = writeln!(o, "None.");
    } else {
        let _ = writeln!(o, "| severity | check | side | object | finding | fix |");
        let _ = writeln!(o, "|---|---|---|---|---|---|");
        for f in &d.findings {
            let _ = writeln!(
                o,
                "| {:?} | {} | {} | {} | {} | {} |",
                f.severity,
                f.check,
                f.side.map(|s| s.to_string()).unwrap_or_default(),
                md(f.object.as_deref().unwrap_or("")),
                md(&f.message),
                md(f.fix.as_deref().unwrap_or(""))
            );
        }
    }
    if let Some(level) = d.verify_level {
        let _ = writeln!(
            o,
            "\n## Tables ({level}, {:.1}s)\n",
            d.verify_secs.unwrap_or(0.0)
        );
        let (shown, hidden) = listed_tables(d);
        if shown.is_empty() {
            let _ = writeln!(o, "None listed.");
        } else {
            let _ = writeln!(
                o,
                "| table | state | source rows | target rows | chunks | differing |"
            );
            let _ = writeln!(o, "|---|---|---|---|---|---|");
            for t in shown {
                let _ = writeln!(
                    o,
                    "| `{}.{}` | {} | {} | {} | {} | {} |",
                    md(&t.schema),
                    md(&t.name),
                    t.state,
                    rows(t.source_rows),
                    rows(t.target_rows),
                    t.chunks,
                    t.differing_chunks
                );
            }
        }
        if hidden > 0 {
            let _ = writeln!(o, "\n{hidden} identical table(s) not listed.");
        }
        let _ = writeln!(
            o,
            "\n## Sequences (cutover.sequences: {})\n",
            d.sequences_mode
        );
        if d.sequences.is_empty() {
            let _ = writeln!(o, "None.");
        } else {
            let _ = writeln!(o, "| sequence | source | target | at cutover |");
            let _ = writeln!(o, "|---|---|---|---|");
            for s in &d.sequences {
                let _ = writeln!(
                    o,
                    "| `{}.{}` | {} | {} | {} |",
                    md(&s.schema),
                    md(&s.name),
                    seq_value(s.source_last_value, s.source_is_called),
                    seq_value(s.target_last_value, s.target_is_called),
                    match s.at_cutover_value {
                        Some(_) => seq_value(s.at_cutover_value, s.at_cutover_is_called),
                        None => s.action.clone(),
                    }
                );
            }
        }
        let _ = writeln!(o, "\n## Objects that differ\n");
        if d.objects.is_empty() {
            let _ = writeln!(o, "None.");
        } else {
            let _ = writeln!(o, "| kind | object | difference |");
            let _ = writeln!(o, "|---|---|---|");
            for x in &d.objects {
                let _ = writeln!(
                    o,
                    "| {} | `{}` | {} |",
                    x.kind,
                    md(&if x.schema.is_empty() {
                        x.name.clone()
                    } else {
                        format!("{}.{}", x.schema, x.name)
                    }),
                    x.difference
                );
            }
        }
    }
    o
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
        );
        assert_eq!(o.seconds, Some(1.0));
        let o = estimate_outage(&p, &lag(true, 0, 0.0), &run(None, false, false), None);
        assert_eq!(o.seconds, None);
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
