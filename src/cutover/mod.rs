//! Cutover: the moment the target takes over from the source.
//!
//! In order ([`run`]); each step is recorded in `pgmove.steps` under its name when it finishes
//! ([`steps::STEPS`]: `cutover-lag`, `cutover-fence`, `cutover-catch-up`, `cutover-sequences`,
//! `cutover-large-objects`, `cutover-verify`, `cutover-live`), and `cutover --dry-run` names
//! them:
//! 1. **Lag check.** A transactional logical-decoding message (prefix `pgmove.cutover.<plan>`)
//!    is written on the source and the time until the target has applied past it is measured:
//!    that is the replication delay, end to end. Repeated until it is within
//!    `cutover.max_lag` (or the timeout passes, and nothing was changed).
//! 2. **Fence** (`cutover.fence: read-only`): `ALTER DATABASE ... SET
//!    default_transaction_read_only = on` on the source database, then every other client
//!    session of that database is terminated (a session keeps the setting it started with), and
//!    cutover waits until they are gone. Walsenders are left alone. From here the write outage
//!    is measured.
//! 3. **Final catch-up.** Another marker is written and the target applies up to it: every
//!    transaction committed on the source before the fence is now on the target.
//! 4. **Sequences** (`cutover.sequences: sync`): every selected sequence on the target gets the
//!    source's `last_value`/`is_called` exactly (read from the sequence itself, so a `RESTART`
//!    or `setval(.., false)` is kept) and, when it differs, its definition (type, increment,
//!    min, max, start, cache, cycle), in one target transaction.
//! 5. **Large objects** changed since the load are copied again (compared by md5); those
//!    deleted on the source are removed. **Materialized views** populated on the source are
//!    refreshed on the target.
//! 6. **Verify** at `cutover.verify` (`none`, `counts`, `checksums`).
//! 7. **Live:** `pgmove.cutover` says `done` (a running apply sees it and stops), the run's
//!    phase becomes `live`, and the report gives the measured write outage.
//!
//! If any step fails before 7, the source is unfenced (its previous setting restored),
//! `pgmove.cutover` says `failed` with the reason, and replication goes on: a running apply
//! keeps streaming; when cutover ran change capture itself, `pgmove apply` picks it up again.
//! A cutover killed while the source is fenced leaves it fenced; rerunning `pgmove cutover`
//! finishes the job (`pgmove.cutover` remembers the setting to restore).
//!
//! Who applies: an apply of the plan that is running (it holds the plan's advisory lock on the
//! target, see [`crate::state::State::open`]) goes on applying and cutover only watches
//! `pgmove.progress`; when none runs, cutover takes the lock and runs change capture itself.
//!
//! A run of strategy pglogical (`pgmove.runs.strategy`) is cut over with pglogical as the
//! applier: the same steps, the subscription's slot telling what the target has applied, and
//! the subscription dropped once the target is verified (see [`pglogical`]).

pub mod ahead;
pub mod dryrun;
pub mod pglogical;
pub mod steps;

use std::fmt::Write as _;
use std::time::{Duration, Instant};

use serde::Serialize;
use tokio_postgres::Client;

use crate::cdc::CdcJob;
use crate::pg::{quote, Endpoint, Lsn, PgError};
use crate::plan::{Fence, Plan, Sequences, VerifyLevel};
use crate::progress::Progress;
use crate::report::{markdown, Render};
use crate::verify::{RecheckCounts, TableStatus, VerifyError};
use steps as step_name;

#[derive(Debug, thiserror::Error)]
pub enum CutoverError {
    #[error(transparent)]
    Pg(#[from] PgError),
    /// The plan is not in a state cutover can start from (exit 2).
    #[error("{0}")]
    NotReady(String),
    #[error(transparent)]
    Verify(#[from] VerifyError),
}

/// Who applies the changes while cutover runs.
#[derive(Clone, Debug)]
pub enum Applier {
    /// An apply of the plan (another process, or the apply this cutover runs in) streams.
    Running,
    /// Cutover runs change capture itself when no apply holds the plan's lock.
    OwnIfIdle(Box<CdcJob>),
}

/// What cutover needs.
#[derive(Clone)]
pub struct CutoverJob {
    pub plan: Plan,
    pub source: Endpoint,
    pub target: Endpoint,
    pub applier: Applier,
    /// How long to wait for the lag to come under `cutover.max_lag`.
    pub timeout: Duration,
    pub progress: Progress,
}

/// A session the fence terminated.
#[derive(Clone, Debug, Serialize)]
pub struct Terminated {
    pub pid: i32,
    pub user: Option<String>,
    pub application: Option<String>,
    pub client: Option<String>,
}

/// A sequence set on the target.
#[derive(Clone, Debug, Serialize)]
pub struct SequenceSet {
    pub sequence: String,
    pub value: i64,
    pub is_called: bool,
}

/// What cutover did; printed as text, markdown or JSON.
#[derive(Clone, Debug, Default, Serialize)]
pub struct CutoverReport {
    pub plan: String,
    /// `live` when the target took over, else `failed`.
    pub state: String,
    /// `running apply` or `cutover` (no apply was running, cutover applied itself).
    pub applier: String,
    /// Measured end-to-end replication delay of each lag check, in seconds.
    pub lag_checks_secs: Vec<f64>,
    pub max_lag_secs: f64,
    pub fence: String,
    /// Whether the source is fenced now (read-only).
    pub source_fenced: bool,
    pub sessions_terminated: Vec<Terminated>,
    /// The source position everything up to which is on the target.
    pub final_lsn: Option<String>,
    pub final_catch_up_secs: Option<f64>,
    pub sequences: Vec<SequenceSet>,
    pub large_objects_copied: usize,
    pub large_objects_removed: usize,
    pub materialized_views_refreshed: usize,
    pub verify: String,
    pub verify_identical: Option<bool>,
    /// The verification inside the outage (the re-check when verified ahead of the fence).
    pub verify_secs: Option<f64>,
    /// Verified ahead of the fence: how long the full comparison took, while replicating.
    pub pre_verify_secs: Option<f64>,
    /// Whether that comparison found everything identical already (what differed, behind
    /// the lag, was compared again after the fence).
    pub pre_verify_identical: Option<bool>,
    /// What the verification inside the outage compared again.
    pub recheck: Option<RecheckCounts>,
    /// `schema.table: status` of each table verification found different.
    pub differing: Vec<String>,
    /// From the fence to the target being live (or to the unfence after a failure).
    pub write_outage_secs: Option<f64>,
    pub elapsed_secs: f64,
    pub error: Option<String>,
    /// The source lost the replication slot: replication cannot go on.
    pub slot_lost: bool,
    /// Strategy pglogical: the subscription dropped so the target is independent, and what
    /// stays for `pgmove cleanup`.
    pub pglogical: Option<pglogical::Teardown>,
    /// Verification found differences (exit 3).
    #[serde(skip)]
    pub differences: bool,
}

impl CutoverReport {
    pub fn is_live(&self) -> bool {
        self.state == "live"
    }

    /// The parts of a verification made ahead of the fence, for the text report.
    fn verify_parts(&self) -> String {
        let (Some(pre), Some(c)) = (self.pre_verify_secs, &self.recheck) else {
            return String::new();
        };
        let what = if c.full {
            "everything compared again (DDL or TRUNCATE since, or objects differed)".to_string()
        } else {
            format!(
                "compared again: {} table(s), {} key(s) (touched since, or found differing ahead), {} chunk(s) that differed, {} table(s) whole",
                c.tables, c.keys, c.chunks, c.whole_tables
            )
        };
        let rounds = if c.rounds.is_empty() {
            String::new()
        } else {
            let keys: Vec<String> = c.rounds.iter().map(|r| r.keys.to_string()).collect();
            let secs: f64 = c.rounds.iter().map(|r| r.secs).sum();
            format!(
                ", then {} re-check round(s) of {} key(s) in {secs:.2}s",
                c.rounds.len(),
                keys.join(", ")
            )
        };
        format!(" while fenced; verified ahead in {pre:.2}s before the fence{rounds}, {what}")
    }
}

impl Render for CutoverReport {
    fn render_text(&self) -> String {
        let mut s = String::new();
        let _ = writeln!(
            s,
            "cutover of plan {}: {}",
            self.plan,
            if self.is_live() {
                "the target is live"
            } else {
                if self.source_fenced {
                    "FAILED, and the source is STILL READ-ONLY (see the error)"
                } else if self.slot_lost {
                    "FAILED, the source is not fenced, and the replication slot is LOST: replication cannot go on (see the error)"
                } else {
                    "FAILED, the source is not fenced and replication goes on"
                }
            }
        );
        let _ = writeln!(s, "  applier: {}", self.applier);
        if !self.lag_checks_secs.is_empty() {
            let _ = writeln!(
                s,
                "  lag checks: {} (max_lag {:.1}s)",
                self.lag_checks_secs
                    .iter()
                    .map(|l| format!("{l:.2}s"))
                    .collect::<Vec<_>>()
                    .join(", "),
                self.max_lag_secs
            );
        }
        let _ = writeln!(
            s,
            "  fence: {}{}; {} session(s) terminated",
            self.fence,
            if self.source_fenced {
                " (source database is read-only now)"
            } else {
                ""
            },
            self.sessions_terminated.len()
        );
        if let Some(l) = &self.final_lsn {
            let _ = writeln!(
                s,
                "  final catch-up: up to source LSN {l} in {:.2}s",
                self.final_catch_up_secs.unwrap_or(0.0)
            );
        }
        let _ = writeln!(s, "  sequences set: {}", self.sequences.len());
        for q in &self.sequences {
            let _ = writeln!(
                s,
                "    {} = {}{}",
                q.sequence,
                q.value,
                if q.is_called { "" } else { " (not called)" }
            );
        }
        let _ = writeln!(
            s,
            "  large objects: {} copied, {} removed; materialized views refreshed: {}",
            self.large_objects_copied,
            self.large_objects_removed,
            self.materialized_views_refreshed
        );
        match self.verify_identical {
            Some(true) => {
                let _ = writeln!(
                    s,
                    "  verify ({}): identical in {:.2}s{}",
                    self.verify,
                    self.verify_secs.unwrap_or(0.0),
                    self.verify_parts()
                );
            }
            Some(false) => {
                let _ = writeln!(
                    s,
                    "  verify ({}): DIFFERENCES{}",
                    self.verify,
                    self.verify_parts()
                );
                for d in &self.differing {
                    let _ = writeln!(s, "    {d}");
                }
            }
            None => {
                let _ = writeln!(s, "  verify: {}", self.verify);
            }
        }
        if let Some(o) = self.write_outage_secs {
            let _ = writeln!(s, "  write outage: {o:.2}s (measured from the fence)");
        }
        if let Some(t) = &self.pglogical {
            s.push_str(&pglogical::render(t));
        }
        let _ = writeln!(s, "  elapsed: {:.1}s", self.elapsed_secs);
        if let Some(e) = &self.error {
            let _ = writeln!(s, "  error: {e}");
        }
        s
    }

    fn render_markdown(&self) -> String {
        let mut s = format!(
            "## Cutover of plan {}: {}\n\n| | |\n|---|---|\n",
            markdown::code(&self.plan),
            if self.is_live() {
                "the target is live"
            } else {
                "failed"
            }
        );
        let mut row = |k: &str, v: String| {
            let _ = writeln!(s, "| {k} | {} |", markdown::cell(&v));
        };
        row("applier", self.applier.clone());
        row(
            "lag checks",
            self.lag_checks_secs
                .iter()
                .map(|l| format!("{l:.2}s"))
                .collect::<Vec<_>>()
                .join(", "),
        );
        row(
            "fence",
            format!(
                "{} ({} session(s) terminated){}",
                self.fence,
                self.sessions_terminated.len(),
                if self.source_fenced {
                    ", source read-only"
                } else {
                    ""
                }
            ),
        );
        row("final LSN", self.final_lsn.clone().unwrap_or_default());
        row("sequences set", self.sequences.len().to_string());
        row(
            "large objects copied / removed",
            format!(
                "{} / {}",
                self.large_objects_copied, self.large_objects_removed
            ),
        );
        row(
            "verify",
            match self.verify_identical {
                Some(true) => format!("{}: identical{}", self.verify, self.verify_parts()),
                Some(false) => format!("{}: differs: {}", self.verify, self.differing.join("; ")),
                None => self.verify.clone(),
            },
        );
        row(
            "write outage",
            self.write_outage_secs
                .map(|o| format!("{o:.2}s"))
                .unwrap_or_default(),
        );
        if let Some(t) = &self.pglogical {
            row(
                "pglogical",
                format!(
                    "subscription {} {}, slot {} {}; left for pgmove cleanup: {}",
                    t.subscription,
                    if t.subscription_dropped {
                        "dropped"
                    } else {
                        "already gone"
                    },
                    t.slot,
                    if t.slot_dropped {
                        "gone"
                    } else {
                        "still on the source"
                    },
                    t.left_for_cleanup.join("; ")
                ),
            );
        }
        if let Some(e) = &self.error {
            row("error", e.clone());
        }
        s
    }
}

/// Who applies the source's changes to the target during this cutover, and how cutover
/// knows how far it got.
enum Replica {
    /// pgmove's change capture (`pgmove.progress`): a running apply, or cutover's own.
    Pgmove(Option<crate::cdc::CaptureHandle>),
    /// A pglogical subscription (its slot's confirmed position on the source).
    Pglogical(pglogical::Follow),
}

/// The source database's own `default_transaction_read_only` setting (`ALTER DATABASE ... SET`),
/// if any.
pub(crate) const DB_READ_ONLY_SQL: &str =
    "SELECT (SELECT split_part(c, '=', 2) FROM unnest(s.setconfig) c
        WHERE c LIKE 'default_transaction_read_only=%')
    FROM pg_database d LEFT JOIN pg_db_role_setting s ON s.setdatabase = d.oid AND s.setrole = 0
    WHERE d.datname = current_database()";
/// Other client sessions of the current database: pid, user, application, client address.
const OTHER_SESSIONS_SQL: &str = "SELECT pid, usename::text, application_name, client_addr::text
    FROM pg_stat_activity
    WHERE datname = current_database() AND pid <> pg_backend_pid() AND backend_type = 'client backend'";
/// Selected sequences on the source, outside extensions and pgmove's schema: schema, name,
/// then their definition: type, start, increment, min, max, cycle, cache. (pg_sequences'
/// `last_value` is NULL whenever `is_called` is false, so the state is read from each
/// sequence itself, [`SEQUENCE_STATE_SQL`].)
const SEQUENCES_SQL: &str =
    "SELECT s.schemaname::text, s.sequencename::text, s.data_type::text, s.start_value,
        s.increment_by, s.min_value, s.max_value, s.cycle, s.cache_size
    FROM pg_sequences s
    JOIN pg_namespace n ON n.nspname = s.schemaname
    JOIN pg_class c ON c.relnamespace = n.oid AND c.relname = s.sequencename
    WHERE s.schemaname NOT IN ('pg_catalog', 'information_schema', 'pgmove')
      AND NOT EXISTS (SELECT 1 FROM pg_depend d WHERE d.classid = 'pg_class'::regclass
                      AND d.objid = c.oid AND d.deptype = 'e')
    ORDER BY 1, 2";
/// Every sequence's definition on the target, as [`SEQUENCES_SQL`] returns it.
const TARGET_SEQUENCES_SQL: &str =
    "SELECT schemaname::text, sequencename::text, data_type::text, start_value, increment_by,
        min_value, max_value, cycle, cache_size FROM pg_sequences";
/// One sequence's state (`{}`: its quoted name): last value and is_called, exactly as
/// `setval` takes them.
const SEQUENCE_STATE_SQL: &str = "SELECT last_value, is_called FROM {}";
/// A sequence's definition: type, start, increment, min, max, cycle, cache.
type SeqDef = (String, i64, i64, i64, i64, bool, i64);

fn seq_def(r: &tokio_postgres::Row) -> SeqDef {
    (
        r.get(2),
        r.get(3),
        r.get(4),
        r.get(5),
        r.get(6),
        r.get(7),
        r.get(8),
    )
}

/// `ALTER SEQUENCE` giving `q` the definition `d`.
fn alter_sequence_sql(q: &str, d: &SeqDef) -> String {
    let (ty, start, inc, min, max, cycle, cache) = d;
    // Only these three types are allowed for a sequence; anything else is left alone.
    let ty = match ty.as_str() {
        "smallint" | "integer" | "bigint" => format!(" AS {ty}"),
        _ => String::new(),
    };
    let cycle = if *cycle { "CYCLE" } else { "NO CYCLE" };
    format!(
        "ALTER SEQUENCE {q}{ty} INCREMENT BY {inc} MINVALUE {min} MAXVALUE {max} START WITH {start} CACHE {cache} {cycle};"
    )
}

/// Large objects: oid and md5 of the content.
const LARGE_OBJECTS_SQL: &str =
    "SELECT oid, md5(lo_get(oid)) FROM pg_largeobject_metadata ORDER BY oid";

/// Whether a session streams from the slot now.
async fn slot_active(source: &Endpoint, slot: &str) -> Result<bool, PgError> {
    let c = source.connect().await?;
    let row = c
        .query_opt(
            "SELECT active FROM pg_replication_slots WHERE slot_name = $1",
            &[&slot],
        )
        .await
        .map_err(|e| source.query_error("reading the replication slot", &e))?;
    Ok(row.map(|r| r.get(0)).unwrap_or(false))
}

/// Whether a `default_transaction_read_only` value means on (the boolean spellings the server
/// accepts).
pub(crate) fn is_on(value: &str) -> bool {
    matches!(
        value.trim().to_ascii_lowercase().as_str(),
        "on" | "true" | "yes" | "1" | "t" | "y" | "tr" | "tru" | "ye"
    )
}

/// From the plan's cutover record (state, recorded previous setting) and the database's
/// setting now: whether the source is (or may be) fenced by an earlier cutover, and the
/// setting to restore when unfencing. A record in `fenced` or `fencing` (recorded, killed
/// before or after the `ALTER DATABASE`) whose database is read-only now keeps its recorded
/// value; the current setting is taken as the previous one only when no fence of pgmove can
/// be in place.
fn resume_fence(
    record: Option<(String, Option<String>)>,
    current: Option<String>,
) -> (bool, Option<String>) {
    match record {
        Some((state, recorded))
            if crate::state::CutoverState::parse(&state) == crate::state::CutoverState::Fenced =>
        {
            (true, recorded)
        }
        Some((state, recorded))
            if crate::state::CutoverState::parse(&state) == crate::state::CutoverState::Fencing
                && current.as_deref().is_some_and(is_on) =>
        {
            (true, recorded)
        }
        _ => (false, current),
    }
}

/// The write outage: from the recorded fence (`pgmove.cutover.fenced_at`, the target's clock,
/// also when an earlier, killed cutover put it in place) when there is one, else from this
/// run's.
async fn outage_secs(target: &Client, plan: &str, fence: &Fenced) -> Option<f64> {
    let recorded = crate::state::cutover::outage_secs(target, plan).await;
    recorded
        .map(|s| s.max(0.0))
        .or_else(|| fence.at.map(|t| t.elapsed().as_secs_f64()))
}

/// Runs cutover. A failure after the fence unfences the source and is reported in the
/// returned report (`state: failed`); `Err` means cutover could not start or could not even
/// record its failure.
pub async fn run(job: &CutoverJob) -> Result<CutoverReport, CutoverError> {
    let started = Instant::now();
    let plan = &job.plan.name;
    let mut report = CutoverReport {
        plan: plan.clone(),
        state: "failed".into(),
        max_lag_secs: job.plan.cutover.max_lag.as_secs_f64(),
        fence: job.plan.cutover.fence.to_string(),
        verify: job.plan.cutover.verify.to_string(),
        ..Default::default()
    };
    let target = job.target.connect().await?;
    let source = job.source.connect().await?;
    // Our own session writes the markers, also once the database is read-only.
    source
        .batch_execute("SET default_transaction_read_only = off")
        .await
        .map_err(|e| job.source.query_error("setting up the session", &e))?;

    let run_row = if crate::state::has_table(&target, &job.target, "runs").await? {
        crate::state::runs::read(&target, &job.target, plan).await?
    } else {
        None
    };
    // The run's strategy, or (never applied) the plan's.
    let is_pglogical = match &run_row {
        Some(r) => r.strategy == crate::planner::Strategy::Pglogical.name(),
        None => job.plan.strategy == crate::plan::StrategyChoice::Pglogical,
    };
    // The steps an earlier attempt finished (forgotten below, once this attempt starts).
    let finished_before = if is_pglogical && run_row.is_some() {
        crate::state::steps::finished(&target, &job.target, plan).await?
    } else {
        Vec::new()
    };
    if is_pglogical {
        pglogical::check_run(
            job,
            &finished_before,
            run_row.as_ref().and_then(|r| r.last_error.as_deref()),
        )?;
    } else {
        match crate::state::progress::applied_lsn(&target, &job.target, plan).await {
            Ok(Some(_)) => {}
            Ok(None) | Err(_) => {
                // What stopped change capture, when a run recorded it, rather than "no progress".
                let recorded: Option<String> =
                    crate::state::runs::last_error(&target, &job.target, plan)
                        .await
                        .ok()
                        .flatten();
                return Err(CutoverError::NotReady(match recorded {
                    Some(e) => format!(
                        "plan {plan:?}: change capture stopped before it applied anything, with this error: {e}\n  hint: fix that, then run `pgmove apply` again; cutover needs change capture running and caught up"
                    ),
                    None => format!(
                        "plan {plan:?} has no change capture progress on the target: run `pgmove apply` (strategy copy-cdc) first and let it reach change capture"
                    ),
                }));
            }
        }
    }
    let previous = crate::state::cutover::read(&target, &job.target, plan).await?;
    if let Some(row) = &previous {
        if row.state == crate::state::CutoverState::Done {
            return Err(CutoverError::NotReady(format!(
                "plan {plan:?} was already cut over; the target is live (next: pgmove cleanup)"
            )));
        }
    }
    // The setting to restore when unfencing. A cutover killed after it recorded the fence
    // (state `fencing`: recorded, maybe applied; `fenced`: applied) left the source possibly
    // read-only: the recorded value is the previous one, never what the database says now
    // (that may be pgmove's own fence).
    let current: Option<String> = source
        .query_one(DB_READ_ONLY_SQL, &[])
        .await
        .map_err(|e| job.source.query_error("reading the database settings", &e))?
        .get(0);
    let (resumed_fence, prev_read_only) = resume_fence(
        previous.map(|r| (r.state.as_str().to_string(), r.prev_read_only)),
        current,
    );
    // pglogical: the subscription to follow (replicating, or past the catch-up already).
    let follow = if is_pglogical {
        let caught_up_before = finished_before.iter().any(|s| s == step_name::CATCH_UP);
        Some(pglogical::follow(job, &target, resumed_fence, caught_up_before).await?)
    } else {
        None
    };
    // A lost slot can never bring the target up to the source: nothing to cut over to.
    let slot = match &follow {
        Some(f) => f.slot.clone(),
        None => job.plan.slot_name(),
    };
    if follow.as_ref().is_none_or(|f| !f.caught_up_before) {
        if let Some(lost) = crate::cdc::slot::lost(&job.source, &source, &slot).await? {
            return Err(CutoverError::NotReady(format!(
                "cannot cut over plan {plan:?}: {}",
                lost.explain(&job.plan.file, job.target.info.dbname())
            )));
        }
    }
    crate::state::cutover::request(
        &target,
        &job.target,
        plan,
        prev_read_only.as_deref(),
        resumed_fence,
    )
    .await?;
    // This attempt's steps are recorded as it goes: an earlier attempt's records go.
    target
        .batch_execute(&crate::state::forget_steps_sql(plan, &step_name::names()))
        .await
        .map_err(|e| {
            job.target
                .query_error("forgetting an earlier cutover's steps", &e)
        })?;

    // Who applies.
    let mut own: Option<crate::cdc::CaptureHandle> = None;
    let lock = match &job.applier {
        _ if follow.is_some() => None,
        Applier::Running => None,
        Applier::OwnIfIdle(cdc) => {
            let lock = job.target.connect().await?;
            let got = crate::state::lock::take(&lock, &job.target, plan).await?;
            // The slot in use means an apply streams even if its lock session was lost (a
            // restarted target): leave the applying to it.
            let streaming = slot_active(&job.source, &cdc.slot).await?;
            if got && !streaming {
                own = Some(crate::cdc::Capture::start(
                    (**cdc).clone(),
                    crate::cdc::CapturePolicy::until_stopped(),
                ));
                Some(lock)
            } else {
                None
            }
        }
    };
    report.applier = match (&follow, &own) {
        (Some(f), _) => format!("pglogical subscription {}", f.subscription),
        (None, Some(_)) => "cutover (no apply was running)".into(),
        (None, None) => "running apply".into(),
    };
    let mut replica = match follow {
        Some(f) => Replica::Pglogical(f),
        None => Replica::Pgmove(own),
    };

    // A killed cutover left the source fenced: it stays fenced, and cutover goes on from there.
    let mut fence = Fenced {
        active: resumed_fence,
        at: resumed_fence.then(Instant::now),
        prev: prev_read_only,
    };
    let mut verified_ahead = false;
    let result = steps(
        job,
        &source,
        &target,
        &mut replica,
        &mut fence,
        &mut report,
        &mut verified_ahead,
    )
    .await;
    if let Err(e) = &result {
        report.error = Some(e.to_string());
    }
    let live = result.is_ok() && !report.differences;
    if live {
        report.state = "live".into();
        report.write_outage_secs = outage_secs(&target, plan, &fence).await;
        report.source_fenced = fence.active;
        target
            .batch_execute(&crate::state::cutover::done_sql(
                plan,
                &report.render_json(),
                &crate::state::finish_step_sql(plan, step_name::LIVE, None),
            ))
            .await
            .map_err(|e| job.target.query_error("recording the cutover", &e))?;
    } else {
        if fence.active {
            match unfence(&job.source, &source, &fence).await {
                Ok(()) => {
                    report.write_outage_secs = outage_secs(&target, plan, &fence).await;
                    fence.active = false;
                }
                Err(e) => {
                    let msg = format!(
                        "{}; AND unfencing the source failed: {e} (the source database {} is still read-only; run on it: {}; or run `pgmove cutover` again, or `pgmove cleanup`, which restore it from the record on the target)",
                        report.error.clone().unwrap_or_default(),
                        quote::ident(job.source.info.dbname()),
                        unfence_sql(job.source.info.dbname(), fence.prev.as_deref())
                    );
                    report.error = Some(msg);
                }
            }
        }
        report.source_fenced = fence.active;
        if let Some(lost) = crate::cdc::slot::lost_quietly(&job.source, &slot).await {
            report.slot_lost = true;
            report.error = Some(format!(
                "{}; {}",
                report.error.clone().unwrap_or_default(),
                lost.explain(&job.plan.file, job.target.info.dbname())
            ));
        }
        let _ = crate::state::cutover::ended(&target, plan, fence.active, report.error.as_deref())
            .await;
    }
    if let Some(o) = match &mut replica {
        Replica::Pgmove(own) => own.take(),
        Replica::Pglogical(_) => None,
    } {
        if let Err(e) = o.stop_and_wait().await {
            if report.error.is_none() {
                report.error = Some(format!("change capture: {e}"));
            }
        }
    }
    if verified_ahead {
        ahead::end(job, &target).await;
    }
    drop(lock);
    report.elapsed_secs = started.elapsed().as_secs_f64();
    Ok(report)
}

struct Fenced {
    active: bool,
    at: Option<Instant>,
    /// The database's own setting before the fence.
    prev: Option<String>,
}

/// A failure inside the steps; the report's error.
#[derive(Debug, thiserror::Error)]
enum StepError {
    #[error(transparent)]
    Pg(#[from] PgError),
    #[error(transparent)]
    Verify(#[from] VerifyError),
    #[error("{0}")]
    Other(String),
}

async fn steps(
    job: &CutoverJob,
    source: &Client,
    target: &Client,
    replica: &mut Replica,
    fence: &mut Fenced,
    report: &mut CutoverReport,
    verified_ahead: &mut bool,
) -> Result<(), StepError> {
    let deadline = Instant::now() + job.timeout;
    let level = match job.plan.cutover.verify {
        VerifyLevel::None => None,
        VerifyLevel::Counts => Some(crate::verify::Level::Counts),
        VerifyLevel::Checksums => Some(crate::verify::Level::Checksums),
    };

    // 1. Lag check (skipped when a killed cutover left the source fenced: go on from there),
    // and the verification ahead of the fence with its re-check rounds (see `ahead`), then
    // the lag again.
    let already_fenced = fence.active;
    let mut pre = None;
    if !already_fenced {
        lag_check(job, source, target, replica, report, deadline).await?;
        if let (Some(level), Replica::Pgmove(_)) = (level, &*replica) {
            *verified_ahead = true;
            let mut a = ahead::pre_verify(job, source, target, level, deadline).await?;
            report.pre_verify_secs = Some(a.secs);
            report.pre_verify_identical = Some(a.report.is_identical());
            // Re-check rounds while replicating: the keys touched meanwhile shrink.
            ahead::rounds(job, source, target, &mut a, deadline).await?;
            pre = Some(a);
            lag_check(job, source, target, replica, report, deadline).await?;
        }
    }
    record(job, target, step_name::LAG).await?;
    fence_and_rest(job, source, target, replica, fence, report, level, pre).await
}

/// Measures the lag until it is within `cutover.max_lag`.
async fn lag_check(
    job: &CutoverJob,
    source: &Client,
    target: &Client,
    replica: &mut Replica,
    report: &mut CutoverReport,
    deadline: Instant,
) -> Result<(), StepError> {
    let plan = &job.plan.name;
    let max_lag = job.plan.cutover.max_lag;
    {
        loop {
            let step = job.progress.step("cutover: waiting for the lag", 0);
            let t0 = Instant::now();
            let m = emit_marker(&job.source, source, plan).await?;
            let wait = wait_applied(job, source, target, replica, m, deadline).await;
            step.finish(&format!("lag {:.2}s", t0.elapsed().as_secs_f64()));
            wait?;
            let lag = t0.elapsed();
            report.lag_checks_secs.push(lag.as_secs_f64());
            tracing::info!(lag_secs = lag.as_secs_f64(), "cutover: lag check");
            if lag <= max_lag {
                break;
            }
            if Instant::now() >= deadline {
                return Err(StepError::Other(format!(
                    "the lag stayed above cutover.max_lag ({:.1}s) for the whole timeout ({:.0}s); nothing was changed",
                    max_lag.as_secs_f64(),
                    job.timeout.as_secs_f64()
                )));
            }
        }
    }
    Ok(())
}

/// Steps 2 to 7.
#[allow(clippy::too_many_arguments)]
async fn fence_and_rest(
    job: &CutoverJob,
    source: &Client,
    target: &Client,
    replica: &mut Replica,
    fence: &mut Fenced,
    report: &mut CutoverReport,
    level: Option<crate::verify::Level>,
    pre: Option<ahead::Ahead>,
) -> Result<(), StepError> {
    let plan = &job.plan.name;

    // 2. Fence.
    if job.plan.cutover.fence == Fence::ReadOnly {
        let db: String = source
            .query_one("SELECT current_database()", &[])
            .await
            .map_err(|e| job.source.query_error("reading the database name", &e))?
            .get(0);
        // Recorded before it is applied: the setting to restore and the moment the outage
        // starts. A cutover killed at any point from here leaves a record that a rerun or
        // `pgmove cleanup` restores exactly from. A resumed fence keeps its first record.
        let resumed = fence.active;
        if !resumed {
            crate::state::cutover::fencing(target, &job.target, plan, fence.prev.as_deref())
                .await?;
            fence.at = Some(Instant::now());
        }
        // From here the source may be read-only: any failure unfences it.
        fence.active = true;
        crate::testhook::pause("cutover-fence-recorded").await;
        if let Err(e) = source
            .batch_execute(&format!(
                "ALTER DATABASE {} SET default_transaction_read_only = on",
                quote::ident(&db)
            ))
            .await
        {
            // Refused by the server: not applied. A lost connection leaves it unknown, and
            // unfencing (restoring the recorded value) is then the safe way back.
            if e.as_db_error().is_some() && !resumed {
                fence.active = false;
            }
            return Err(job
                .source
                .query_error(
                    "fencing the source (ALTER DATABASE ... SET default_transaction_read_only = on; needs the database owner or a superuser)",
                    &e,
                )
                .into());
        }
        crate::testhook::pause("cutover-fence-applied").await;
        crate::state::cutover::fenced(target, &job.target, plan).await?;
        report.sessions_terminated = terminate_sessions(&job.source, source).await?;
        tracing::info!(
            database = %db,
            terminated = report.sessions_terminated.len(),
            "cutover: source fenced (read-only)"
        );
        crate::testhook::pause("cutover-fenced").await;
    } else {
        fence.at = Some(Instant::now());
    }
    record(job, target, step_name::FENCE).await?;

    // 3. Final catch-up.
    let t0 = Instant::now();
    let m = emit_marker(&job.source, source, plan).await?;
    let step = job.progress.step("cutover: final catch-up", 0);
    let wait = match replica {
        // An earlier attempt caught up and the source has been fenced since.
        Replica::Pglogical(f) if f.caught_up_before => Ok(()),
        _ => {
            wait_applied(
                job,
                source,
                target,
                replica,
                m,
                Instant::now() + job.timeout.max(Duration::from_secs(60)),
            )
            .await
        }
    };
    step.finish("caught up");
    wait?;
    report.final_lsn = Some(m.to_string());
    report.final_catch_up_secs = Some(t0.elapsed().as_secs_f64());
    crate::state::cutover::final_lsn(target, &job.target, plan, m).await?;
    record(job, target, step_name::CATCH_UP).await?;

    // 4. Sequences.
    if job.plan.cutover.sequences == Sequences::Sync {
        report.sequences = sync_sequences(job, source, target).await?;
    }
    record(job, target, step_name::SEQUENCES).await?;
    // 5. Large objects and materialized views.
    if job.plan.objects.large_objects {
        let (copied, removed) = sync_large_objects(job, source, target).await?;
        report.large_objects_copied = copied;
        report.large_objects_removed = removed;
    }
    report.materialized_views_refreshed = crate::matviews::refresh_populated_matviews(
        &job.source,
        source,
        &job.target,
        target,
        |s, v| selected(&job.plan, s, v),
    )
    .await?;
    record(job, target, step_name::LARGE_OBJECTS).await?;

    // 6. Verify: what may have changed since the verification ahead of the fence, or all.
    if let Some(level) = level {
        let t0 = Instant::now();
        let v = match &pre {
            Some(a) => {
                let (v, counts) = ahead::recheck(job, target, a).await?;
                report.recheck = Some(counts);
                v
            }
            None => {
                crate::verify::verify(&job.source, &job.target, &ahead::options(job, level)).await?
            }
        };
        report.verify_secs = Some(t0.elapsed().as_secs_f64());
        let identical = v.is_identical();
        report.verify_identical = Some(identical);
        if !identical {
            report.differences = true;
            report.differing =
                v.tables
                    .iter()
                    .filter(|t| t.status != TableStatus::Same)
                    .map(|t| {
                        format!(
                            "table {}: {} (source {} rows, target {} rows{})",
                            quote::qualified(&t.schema, &t.name),
                            t.status,
                            t.source_rows.map(|r| r.to_string()).unwrap_or("-".into()),
                            t.target_rows.map(|r| r.to_string()).unwrap_or("-".into()),
                            if t.differing_chunks.is_empty() {
                                String::new()
                            } else {
                                format!(
                                    ", differing rows where {}",
                                    t.differing_chunks
                                        .iter()
                                        .map(|c| c.where_sql.clone())
                                        .collect::<Vec<_>>()
                                        .join(" OR ")
                                )
                            }
                        )
                    })
                    .chain(v.sequences.iter().filter(|s| !s.equal).map(|s| {
                        format!("sequence {}: differs", quote::qualified(&s.schema, &s.name))
                    }))
                    .chain(v.objects.iter().map(|o| format!("{o:?}")))
                    .chain(
                        v.large_objects
                            .iter()
                            .filter(|l| !l.equal)
                            .map(|_| "large objects differ".to_string()),
                    )
                    .collect();
            report.error = Some(format!(
                "verification found differences: {}; the source was unfenced, replication goes on: fix the target and run pgmove cutover again",
                report.differing.join("; ")
            ));
        }
    }
    if !report.differences {
        record(job, target, step_name::VERIFY).await?;
        // 7. pglogical: the target goes independent (part of going live).
        if let Replica::Pglogical(f) = replica {
            report.pglogical = Some(pglogical::teardown(job, source, target, f).await?);
            crate::testhook::pause("cutover-pglogical-dropped").await;
        }
    }
    Ok(())
}

/// Records cutover step `step` as finished (see [`steps`](self::steps)).
async fn record(job: &CutoverJob, target: &Client, step: &str) -> Result<(), StepError> {
    target
        .batch_execute(&crate::state::finish_step_sql(&job.plan.name, step, None))
        .await
        .map_err(|e| {
            job.target
                .query_error("recording a cutover step in pgmove.steps", &e)
        })?;
    Ok(())
}

/// Writes a cutover marker on the source; its LSN. The transaction that carries it reaches
/// the target through the slot like any other.
async fn emit_marker(ep: &Endpoint, source: &Client, plan: &str) -> Result<Lsn, StepError> {
    let row = source
        .query_one(
            "SELECT pg_logical_emit_message(true, $1, now()::text)",
            &[&crate::plan::names::cutover_marker_prefix(plan)],
        )
        .await
        .map_err(|e| ep.query_error("writing the cutover marker (pg_logical_emit_message)", &e))?;
    Ok(row.get(0))
}

/// Waits until the target has applied past `lsn`.
async fn wait_applied(
    job: &CutoverJob,
    source: &Client,
    target: &Client,
    replica: &mut Replica,
    lsn: Lsn,
    deadline: Instant,
) -> Result<(), StepError> {
    let own = match replica {
        Replica::Pglogical(f) => {
            return pglogical::wait_confirmed(job, source, target, f, lsn, deadline).await
        }
        Replica::Pgmove(own) => own,
    };
    loop {
        let row = crate::state::progress::applied_lsn(target, &job.target, &job.plan.name).await?;
        if let Some(applied) = row {
            if applied >= lsn {
                return Ok(());
            }
        }
        if let Some(o) = own.as_mut() {
            if o.is_finished() {
                let why = "change capture stopped unexpectedly".to_string();
                let detail = match own.take() {
                    Some(o) => o.stop_and_wait().await.err().map_or(why, |e| e.to_string()),
                    None => why,
                };
                return Err(StepError::Other(format!(
                    "change capture stopped: {detail}"
                )));
            }
        }
        if Instant::now() >= deadline {
            return Err(StepError::Other(format!(
                "the target did not apply up to source LSN {lsn} in time; is `pgmove apply` running? (pgmove status shows the lag)"
            )));
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Terminates every other client session of the source database and waits until they are
/// gone (a session being terminated may still be committing).
async fn terminate_sessions(ep: &Endpoint, source: &Client) -> Result<Vec<Terminated>, StepError> {
    let rows = source
        .query(OTHER_SESSIONS_SQL, &[])
        .await
        .map_err(|e| ep.query_error("listing the source's sessions", &e))?;
    let sessions: Vec<Terminated> = rows
        .iter()
        .map(|r| Terminated {
            pid: r.get(0),
            user: r.get(1),
            application: r.get(2),
            client: r.get(3),
        })
        .collect();
    for s in &sessions {
        source
            .execute("SELECT pg_terminate_backend($1)", &[&s.pid])
            .await
            .map_err(|e| {
                ep.query_error(
                    &format!(
                        "terminating session {} (needs a superuser or membership in pg_signal_backend)",
                        s.pid
                    ),
                    &e,
                )
            })?;
    }
    let pids: Vec<i32> = sessions.iter().map(|s| s.pid).collect();
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let left: i64 = source
            .query_one(
                "SELECT count(*) FROM pg_stat_activity WHERE pid = ANY($1)",
                &[&pids],
            )
            .await
            .map_err(|e| ep.query_error("waiting for terminated sessions", &e))?
            .get(0);
        if left == 0 {
            break;
        }
        if Instant::now() >= deadline {
            return Err(StepError::Other(format!(
                "{left} terminated session(s) of the source did not exit within 30s"
            )));
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    Ok(sessions)
}

/// The statement that gives database `db` back its `default_transaction_read_only` setting
/// from before the fence: the recorded value, or none at all (`RESET`) when it had none.
pub fn unfence_sql(db: &str, prev: Option<&str>) -> String {
    match prev {
        Some(v) => format!(
            "ALTER DATABASE {} SET default_transaction_read_only = {}",
            quote::ident(db),
            quote::literal(v)
        ),
        None => format!(
            "ALTER DATABASE {} RESET default_transaction_read_only",
            quote::ident(db)
        ),
    }
}

async fn unfence(ep: &Endpoint, source: &Client, fence: &Fenced) -> Result<(), PgError> {
    let db: String = source
        .query_one("SELECT current_database()", &[])
        .await
        .map_err(|e| ep.query_error("reading the database name", &e))?
        .get(0);
    source
        .batch_execute(&unfence_sql(&db, fence.prev.as_deref()))
        .await
        .map_err(|e| ep.query_error("unfencing the source", &e))?;
    tracing::info!(database = %db, "cutover: source unfenced");
    Ok(())
}

fn selected(plan: &Plan, schema: &str, name: &str) -> bool {
    plan.objects.includes_schema(schema) && plan.objects.includes(schema, name)
}

/// Sets every selected sequence on the target to its source state, in one transaction.
async fn sync_sequences(
    job: &CutoverJob,
    source: &Client,
    target: &Client,
) -> Result<Vec<SequenceSet>, StepError> {
    let rows = source
        .query(SEQUENCES_SQL, &[])
        .await
        .map_err(|e| job.source.query_error("reading sequences", &e))?;
    let on_target: std::collections::HashMap<(String, String), SeqDef> = target
        .query(TARGET_SEQUENCES_SQL, &[])
        .await
        .map_err(|e| job.target.query_error("reading sequences", &e))?
        .iter()
        .map(|r| ((r.get(0), r.get(1)), seq_def(r)))
        .collect();
    let mut set = Vec::new();
    let mut sql = String::from("BEGIN;\n");
    for r in rows {
        let (schema, name): (String, String) = (r.get(0), r.get(1));
        if !selected(&job.plan, &schema, &name) {
            continue;
        }
        let q = quote::qualified(&schema, &name);
        // A definition changed on the source since the schema was copied (ALTER SEQUENCE)
        // is carried first, so the value below is within its bounds.
        let def = seq_def(&r);
        if on_target.get(&(schema.clone(), name.clone())) != Some(&def) {
            let _ = writeln!(sql, "{}", alter_sequence_sql(&q, &def));
        }
        let state = source
            .query_one(&SEQUENCE_STATE_SQL.replace("{}", &q), &[])
            .await
            .map_err(|e| job.source.query_error(&format!("reading sequence {q}"), &e))?;
        let (value, is_called): (i64, bool) = (state.get(0), state.get(1));
        let _ = writeln!(
            sql,
            "SELECT pg_catalog.setval({}, {value}, {is_called});",
            quote::literal(&q)
        );
        set.push(SequenceSet {
            sequence: q,
            value,
            is_called,
        });
    }
    sql.push_str("COMMIT;");
    if let Err(e) = target.batch_execute(&sql).await {
        let _ = target.batch_execute("ROLLBACK").await;
        return Err(job.target.query_error("setting sequences", &e).into());
    }
    Ok(set)
}

/// Copies the large objects whose content differs (or that the target lacks) and removes
/// those the source no longer has. Returns (copied, removed).
async fn sync_large_objects(
    job: &CutoverJob,
    source: &Client,
    target: &Client,
) -> Result<(usize, usize), StepError> {
    const PIECE: i32 = 1 << 20;
    let on_source: std::collections::BTreeMap<u32, String> = source
        .query(LARGE_OBJECTS_SQL, &[])
        .await
        .map_err(|e| job.source.query_error("listing large objects", &e))?
        .iter()
        .map(|r| (r.get(0), r.get(1)))
        .collect();
    let on_target: std::collections::BTreeMap<u32, String> = target
        .query(LARGE_OBJECTS_SQL, &[])
        .await
        .map_err(|e| job.target.query_error("listing large objects", &e))?
        .iter()
        .map(|r| (r.get(0), r.get(1)))
        .collect();
    let mut copied = 0;
    for (oid, md5) in &on_source {
        if on_target.get(oid) == Some(md5) {
            continue;
        }
        target
            .batch_execute("BEGIN")
            .await
            .map_err(|e| job.target.query_error("BEGIN", &e))?;
        let result: Result<(), StepError> = async {
            if on_target.contains_key(oid) {
                target
                    .execute("SELECT pg_catalog.lo_unlink($1)", &[oid])
                    .await
                    .map_err(|e| {
                        job.target
                            .query_error(&format!("replacing large object {oid}"), &e)
                    })?;
            }
            target
                .execute("SELECT pg_catalog.lo_create($1)", &[oid])
                .await
                .map_err(|e| {
                    job.target
                        .query_error(&format!("creating large object {oid}"), &e)
                })?;
            let mut offset = 0i64;
            loop {
                let data: Vec<u8> = source
                    .query_one("SELECT lo_get($1, $2, $3)", &[oid, &offset, &PIECE])
                    .await
                    .map_err(|e| {
                        job.source
                            .query_error(&format!("reading large object {oid}"), &e)
                    })?
                    .get(0);
                if data.is_empty() {
                    break;
                }
                target
                    .execute("SELECT lo_put($1, $2, $3)", &[oid, &offset, &data])
                    .await
                    .map_err(|e| {
                        job.target
                            .query_error(&format!("writing large object {oid}"), &e)
                    })?;
                offset += data.len() as i64;
                if data.len() < PIECE as usize {
                    break;
                }
            }
            Ok(())
        }
        .await;
        match result {
            Ok(()) => {
                target
                    .batch_execute("COMMIT")
                    .await
                    .map_err(|e| job.target.query_error("COMMIT", &e))?;
                copied += 1;
            }
            Err(e) => {
                let _ = target.batch_execute("ROLLBACK").await;
                return Err(e);
            }
        }
    }
    let mut removed = 0;
    for oid in on_target.keys().filter(|o| !on_source.contains_key(o)) {
        target
            .execute("SELECT pg_catalog.lo_unlink($1)", &[oid])
            .await
            .map_err(|e| {
                job.target
                    .query_error(&format!("removing large object {oid}"), &e)
            })?;
        removed += 1;
    }
    Ok((copied, removed))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_recorded_fence_keeps_its_previous_setting_on_a_rerun() {
        let rec =
            |state: &str, prev: Option<&str>| Some((state.to_string(), prev.map(String::from)));
        let on = Some("on".to_string());
        // Fenced, or recorded and the database read-only now: the recorded value (none).
        assert_eq!(resume_fence(rec("fenced", None), on.clone()), (true, None));
        assert_eq!(resume_fence(rec("fencing", None), on.clone()), (true, None));
        assert_eq!(
            resume_fence(rec("fencing", Some("off")), Some("true".into())),
            (true, Some("off".into()))
        );
        // Recorded but never applied, or over: what the database has now.
        assert_eq!(resume_fence(rec("fencing", Some("x")), None), (false, None));
        assert_eq!(
            resume_fence(rec("failed", None), on.clone()),
            (false, on.clone())
        );
        assert_eq!(
            resume_fence(None, Some("off".into())),
            (false, Some("off".into()))
        );
    }

    #[test]
    fn unfence_restores_exactly_the_previous_setting() {
        assert_eq!(
            unfence_sql("shop", None),
            "ALTER DATABASE \"shop\" RESET default_transaction_read_only"
        );
        assert_eq!(
            unfence_sql("a\"b", Some("on")),
            "ALTER DATABASE \"a\"\"b\" SET default_transaction_read_only = 'on'"
        );
        assert!(is_on("ON") && is_on("true") && !is_on("off") && !is_on("0"));
    }

    #[test]
    fn failed_report_says_so_and_lists_differences() {
        let r = CutoverReport {
            plan: "shop".into(),
            state: "failed".into(),
            fence: "read-only".into(),
            verify: "checksums".into(),
            verify_identical: Some(false),
            differing: vec!["table \"public\".\"t\": differs".into()],
            ..Default::default()
        };
        let t = r.render_text();
        assert!(t.contains("FAILED"), "{t}");
        assert!(t.contains("\"public\".\"t\": differs"), "{t}");
        assert!(!r.is_live());
        let j: serde_json::Value = serde_json::from_str(&r.render_json()).expect("json");
        assert_eq!(j["state"], "failed");
    }

    #[test]
    fn markdown_keeps_a_multi_line_error_in_its_row() {
        let r = CutoverReport {
            plan: "shop".into(),
            state: "failed".into(),
            error: Some("target: ERROR: relation \"a|b\" does not exist\nCONTEXT: <COPY>".into()),
            ..Default::default()
        };
        let m = r.render_markdown();
        assert!(m.starts_with("## Cutover of plan `shop`: failed\n"), "{m}");
        assert!(
            m.ends_with("| error | target: ERROR: relation \"a\\|b\" does not exist<br>CONTEXT: \\<COPY\\> |\n"),
            "{m}"
        );
    }
}
