//! `pgmove status`: what a run has done so far, read from the target's `pgmove` schema and the
//! source's replication slot. Never writes.

use std::fmt::Write as _;

use serde::Serialize;

use crate::pg::{Endpoint, Lsn, PgError};
use crate::plan::Plan;
use crate::planner;
use crate::report::Render;

pub mod pglogical;

/// One table's copy progress, as the state store sums it.
pub use crate::state::copy::TableRow as TableProgress;

/// The replication slot on the source, with lag.
#[derive(Clone, Debug, Serialize)]
pub struct SlotStatus {
    pub name: String,
    pub active: bool,
    pub source_wal_lsn: Option<String>,
    pub confirmed_flush_lsn: Option<String>,
    /// What the target has applied (`pgmove.progress`), when change capture ran.
    pub applied_lsn: Option<String>,
    /// Source WAL position minus what the target applied (or, before change capture, minus
    /// the slot's confirmed position).
    pub lag_bytes: Option<u64>,
    /// Seconds since the target last committed applied changes (while lag is above zero).
    pub lag_seconds: Option<f64>,
    /// Change capture's catch-up rate: source WAL bytes applied per second, measured over a
    /// window of 5 s or more (none before the first window closed, and for pglogical).
    pub catch_up_bytes_per_second: Option<f64>,
    /// The time to catch up: the lag at that rate (0 when there is no lag; none when the rate
    /// is unknown or zero).
    pub catch_up_eta_seconds: Option<f64>,
    pub retained_wal_bytes: Option<u64>,
    /// `pg_replication_slots.wal_status`: `reserved`, `extended`, `unreserved` (about to be
    /// lost) or `lost`.
    pub wal_status: Option<String>,
    /// When the slot is lost: what happened, why and the way out (`status` exits 4).
    pub lost: Option<String>,
}

/// The latest copy-cdc load: what it copied since its copy step started, how fast, and the
/// time left.
#[derive(Clone, Debug, Serialize)]
pub struct LoadStatus {
    pub started_at: String,
    /// When its last chunk was copied; none while it runs (or when it stopped before).
    pub finished_at: Option<String>,
    /// From its start to its end, or to now.
    pub elapsed_seconds: f64,
    pub chunks: i64,
    pub chunks_done: i64,
    /// Rows and COPY bytes of the chunks this load copied (not those an earlier run did).
    pub rows: i64,
    pub bytes: i64,
    /// What the source's statistics said the chunks hold: rows (none when a table was never
    /// analyzed) and heap bytes.
    pub estimated_rows: Option<i64>,
    pub estimated_bytes: i64,
    pub rows_per_second: Option<f64>,
    pub bytes_per_second: Option<f64>,
    /// The time left (0 once done; none before any rate is known).
    pub eta_seconds: Option<f64>,
}

impl LoadStatus {
    /// The load as recorded, with its rates and time left.
    pub fn of(l: crate::state::load::Load) -> LoadStatus {
        let elapsed =
            std::time::Duration::try_from_secs_f64(l.elapsed_secs.max(0.0)).unwrap_or_default();
        let rows = l.rows.max(0) as u64;
        let eta = crate::rate::load_eta(&crate::rate::LoadSoFar {
            elapsed,
            rows_done: rows,
            estimated_rows: l.estimated_rows.map(|r| r.max(0) as u64),
            chunks_done: l.chunks_done.max(0) as u64,
            chunks: l.chunks.max(0) as u64,
        });
        LoadStatus {
            started_at: l.started_at,
            finished_at: l.finished_at,
            elapsed_seconds: l.elapsed_secs,
            chunks: l.chunks as i64,
            chunks_done: l.chunks_done,
            rows: l.rows,
            bytes: l.bytes,
            estimated_rows: l.estimated_rows,
            estimated_bytes: l.estimated_bytes,
            rows_per_second: crate::rate::per_second(rows, elapsed),
            bytes_per_second: crate::rate::per_second(l.bytes.max(0) as u64, elapsed),
            eta_seconds: eta.map(|d| d.as_secs_f64()),
        }
    }
}

#[derive(Clone, Debug, Serialize)]
pub struct Status {
    pub plan: String,
    /// `not started` when the target has no pgmove state for the plan.
    pub phase: String,
    pub strategy: Option<String>,
    pub started_at: Option<String>,
    pub updated_at: Option<String>,
    pub last_error: Option<String>,
    /// Finished steps: the strategy's own in its order ([`crate::strategy::steps`]), then any
    /// other record (e.g. `ddl-applied <LSN>`) in the order they finished.
    pub steps_done: Vec<String>,
    /// The strategy's steps not finished yet, in order.
    pub steps_to_do: Vec<String>,
    pub restore_items_done: i64,
    pub tables: Vec<TableProgress>,
    /// Strategy copy-cdc: the latest load's rates and time left.
    pub load: Option<LoadStatus>,
    pub slot: Option<SlotStatus>,
    /// Change capture totals: transactions and changes applied.
    pub replicated_transactions: Option<i64>,
    pub replicated_changes: Option<i64>,
    /// Whether a `pgmove apply` of this plan runs now (it holds the plan's advisory lock on
    /// the target).
    pub apply_running: bool,
    /// Strategy pglogical: the subscription, each table's sync state (the slot, with its lag,
    /// is [`Status::slot`]).
    pub pglogical: Option<pglogical::PglogicalStatus>,
}

/// How a migration stands, for `status`'s exit code.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// Running, finished or not started: nothing to report.
    Fine,
    /// The last run failed (phase `failed` or an error recorded) and no apply runs now.
    Failed,
    /// An apply runs, the source has written past what the target applied, and the target
    /// has applied nothing for at least the stall threshold (seconds).
    Stalled(u64),
    /// The replication slot is lost.
    SlotLost,
}

/// The slot: active, confirmed LSN, current WAL position, retained WAL, wal_status, the
/// source's max_slot_wal_keep_size.
const SLOT_SQL: &str = "SELECT active, confirmed_flush_lsn, pg_current_wal_lsn(),
    (pg_current_wal_lsn() - restart_lsn)::bigint, wal_status,
    current_setting('max_slot_wal_keep_size')
    FROM pg_replication_slots WHERE slot_name = $1";

/// Reads the status of `plan` (whose slot is `slot`, read from the file `plan_file`).
pub async fn read(
    plan: &str,
    slot: &str,
    plan_file: &str,
    source: &Endpoint,
    target: &Endpoint,
) -> Result<Status, PgError> {
    read_with(plan, slot, plan_file, None, source, target).await
}

/// Reads the status of `plan`: a run of strategy pglogical shows its subscription, each
/// table's sync state and the subscription's slot; any other run, pgmove's slot.
pub async fn read_plan(
    plan: &Plan,
    source: &Endpoint,
    target: &Endpoint,
) -> Result<Status, PgError> {
    let names = plan.pglogical_names();
    let pgl = PglogicalNames {
        subscription: names.subscription,
        sets: vec![names.replication_set, names.insert_set],
    };
    read_with(
        &plan.name,
        &plan.slot_name(),
        &plan.file,
        Some(&pgl),
        source,
        target,
    )
    .await
}

/// What `status` looks for when the run's strategy is pglogical.
struct PglogicalNames {
    subscription: String,
    sets: Vec<String>,
}

async fn read_with(
    plan: &str,
    slot: &str,
    plan_file: &str,
    pgl_names: Option<&PglogicalNames>,
    source: &Endpoint,
    target: &Endpoint,
) -> Result<Status, PgError> {
    let t = target.connect_short().await?;
    let has_schema = crate::state::has_table(&t, target, "runs").await?
        && crate::state::has_table(&t, target, "copy_progress").await?;
    let mut status = Status {
        plan: plan.to_string(),
        phase: "not started".to_string(),
        strategy: None,
        started_at: None,
        updated_at: None,
        last_error: None,
        steps_done: vec![],
        steps_to_do: vec![],
        restore_items_done: 0,
        tables: vec![],
        load: None,
        slot: None,
        replicated_transactions: None,
        replicated_changes: None,
        apply_running: false,
        pglogical: None,
    };
    let mut applied: Option<(Lsn, f64)> = None;
    let mut catch_up_rate: Option<f64> = None;
    status.apply_running = crate::state::lock::apply_running(&t, target, plan).await?;
    if has_schema {
        if let Some(r) = crate::state::runs::read(&t, target, plan).await? {
            status.strategy = Some(r.strategy);
            status.phase = r.phase.as_str().to_string();
            status.started_at = r.started_at;
            status.updated_at = r.updated_at;
            status.last_error = r.last_error;
        }
        let finished = crate::state::steps::finished(&t, target, plan).await?;
        let list = status
            .strategy
            .as_deref()
            .map(crate::strategy::steps::of_named)
            .unwrap_or(&[]);
        (status.steps_done, status.steps_to_do) = done_and_to_do(list, finished);
        status.restore_items_done = crate::state::restore::count(&t, target, plan).await?;
        status.tables = crate::state::copy::tables(&t, target, plan).await?;
        // (A schema an older pgmove wrote has no load table until an apply upgrades it.)
        if crate::state::has_table(&t, target, "load").await? {
            status.load = crate::state::load::read(&t, target, plan)
                .await?
                .map(LoadStatus::of);
        }
        if crate::state::has_table(&t, target, "progress").await? {
            if let Some(p) = crate::state::progress::read(&t, target, plan).await? {
                applied = Some((p.applied_lsn, p.idle_secs));
                status.replicated_transactions = Some(p.transactions);
                status.replicated_changes = Some(p.changes);
            }
            // (The rate's columns came with the load table: schema version 2.)
            if crate::state::has_table(&t, target, "load").await? {
                catch_up_rate = crate::state::progress::rate(&t, target, plan).await?;
            }
        }
    }
    let s = source.connect_short().await?;
    if let Some(names) = pgl_names
        .filter(|_| status.strategy.as_deref() == Some(crate::strategy::pglogical::STRATEGY))
    {
        let pgl = pglogical::read(&t, target, &s, source, &names.subscription, &names.sets).await?;
        if let Some(slot) = pgl.slot_name.clone() {
            status.slot = pglogical_slot(&s, source, &slot, plan_file, target).await?;
        }
        status.pglogical = Some(pgl);
        return Ok(status);
    }
    if let Some(r) = s
        .query_opt(SLOT_SQL, &[&slot])
        .await
        .map_err(|e| source.query_error("reading the replication slot", &e))?
    {
        let confirmed: Option<Lsn> = r.get(1);
        let current: Option<Lsn> = r.get(2);
        let retained: Option<i64> = r.get(3);
        let wal_status: Option<String> = r.get(4);
        let lost = (wal_status.as_deref() == Some("lost")).then(|| {
            crate::cdc::slot::SlotLost {
                slot: slot.to_string(),
                max_slot_wal_keep_size: r.get(5),
            }
            .explain(plan_file, target.info.dbname())
        });
        let lag_bytes = match (current, applied.map(|(l, _)| l).or(confirmed)) {
            (Some(c), Some(f)) => Some(c.bytes_since(f)),
            _ => None,
        };
        let catch_up_eta = match (applied, lag_bytes) {
            (Some(_), Some(lag)) => crate::rate::eta(lag as f64, catch_up_rate),
            _ => None,
        };
        status.slot = Some(SlotStatus {
            name: slot.to_string(),
            active: r.get(0),
            source_wal_lsn: current.map(|l| l.to_string()),
            confirmed_flush_lsn: confirmed.map(|l| l.to_string()),
            applied_lsn: applied.map(|(l, _)| l.to_string()),
            lag_bytes,
            lag_seconds: match (current, applied) {
                (Some(c), Some((a, secs))) if c > a => Some(secs),
                (Some(_), Some(_)) => Some(0.0),
                _ => None,
            },
            catch_up_bytes_per_second: applied.and(catch_up_rate),
            catch_up_eta_seconds: catch_up_eta.map(|d| d.as_secs_f64()),
            retained_wal_bytes: retained.map(|b| b.max(0) as u64),
            wal_status,
            lost,
        });
    } else if slot_needed(&status, applied.is_some()) {
        // Change capture streams from this slot and it is gone: dropped on the source by
        // someone or something else. As lost as one the source invalidated.
        status.slot = Some(SlotStatus {
            name: slot.to_string(),
            active: false,
            source_wal_lsn: None,
            confirmed_flush_lsn: None,
            applied_lsn: applied.map(|(l, _)| l.to_string()),
            lag_bytes: None,
            lag_seconds: None,
            catch_up_bytes_per_second: None,
            catch_up_eta_seconds: None,
            retained_wal_bytes: None,
            wal_status: None,
            lost: Some(missing_slot(slot, plan_file, target.info.dbname())),
        });
    }
    Ok(status)
}

/// Whether the run still needs pgmove's slot: copy-cdc's change capture started (phase
/// `replicating`, or `failed` after it applied changes) and the target is not live.
fn slot_needed(status: &Status, applied_some: bool) -> bool {
    use crate::state::Phase;
    status.strategy.as_deref() == Some(crate::strategy::copy_cdc::STRATEGY)
        && (status.phase == Phase::Replicating.as_str()
            || (status.phase == Phase::Failed.as_str() && applied_some))
}

/// What a vanished slot means and the way out, for the plan file `plan_file` whose target
/// database is `target_db`.
fn missing_slot(slot: &str, plan_file: &str, target_db: &str) -> String {
    let db = crate::pg::quote::ident(target_db);
    format!(
        "the replication slot {} no longer exists on the source (dropped there, not by pgmove) while change capture still streams from it: \
         the changes since the target's applied position cannot be replicated, so the target cannot be cut over. \
         Way out: load again with a new slot, into an empty target: `pgmove cleanup {plan_file}`, \
         then on the target (connected to another database) `DROP DATABASE {db}; CREATE DATABASE {db};` \
         (or drop the tables the load copied), then `pgmove apply {plan_file}`",
        crate::pg::quote::literal(slot),
    )
}

/// The pglogical subscription's slot `slot` on the source, with its lag: bytes from its
/// confirmed position to the source's WAL position, seconds as its walsender measures them
/// (0 when nothing is left to confirm).
async fn pglogical_slot(
    s: &tokio_postgres::Client,
    source: &Endpoint,
    slot: &str,
    plan_file: &str,
    target: &Endpoint,
) -> Result<Option<SlotStatus>, PgError> {
    let Some(r) = s
        .query_opt(pglogical::SLOT_SQL, &[&slot])
        .await
        .map_err(|e| source.query_error("reading the subscription's replication slot", &e))?
    else {
        return Ok(None);
    };
    let confirmed: Option<Lsn> = r.get(1);
    let current: Option<Lsn> = r.get(2);
    let retained: Option<i64> = r.get(3);
    let wal_status: Option<String> = r.get(4);
    let measured: Option<f64> = r.get(6);
    let lost = (wal_status.as_deref() == Some("lost")).then(|| {
        crate::cdc::slot::SlotLost {
            slot: slot.to_string(),
            max_slot_wal_keep_size: r.get(5),
        }
        .explain(plan_file, target.info.dbname())
    });
    let lag_bytes = match (current, confirmed) {
        (Some(c), Some(f)) => Some(c.bytes_since(f)),
        _ => None,
    };
    let active: bool = r.get(0);
    Ok(Some(SlotStatus {
        name: slot.to_string(),
        active,
        source_wal_lsn: current.map(|l| l.to_string()),
        confirmed_flush_lsn: confirmed.map(|l| l.to_string()),
        applied_lsn: None,
        lag_bytes,
        lag_seconds: match (lag_bytes, measured) {
            (Some(0), _) => Some(0.0),
            (_, Some(secs)) => Some(secs.max(0.0)),
            // Behind and no walsender measure: caught up in all but the last records when
            // active, unknown when not.
            _ if active => Some(0.0),
            _ => None,
        },
        catch_up_bytes_per_second: None,
        catch_up_eta_seconds: None,
        retained_wal_bytes: retained.map(|b| b.max(0) as u64),
        wal_status,
        lost,
    }))
}

impl Verdict {
    /// Its name in `status --format json` (`verdict`): `fine`, `failed`, `stalled`,
    /// `slot-lost`.
    pub fn name(&self) -> &'static str {
        match self {
            Verdict::Fine => "fine",
            Verdict::Failed => "failed",
            Verdict::Stalled(_) => "stalled",
            Verdict::SlotLost => "slot-lost",
        }
    }
}

impl Status {
    /// The verdict behind `status`'s exit code; `stalled_after` is the stall threshold in
    /// seconds.
    pub fn verdict(&self, stalled_after: u64) -> Verdict {
        if let Some(slot) = &self.slot {
            if slot.lost.is_some() {
                return Verdict::SlotLost;
            }
            // pglogical applies inside the servers: its subscription replicating is the apply.
            let applying = self.apply_running
                || self
                    .pglogical
                    .as_ref()
                    .is_some_and(pglogical::PglogicalStatus::replicating);
            if applying
                && slot.lag_bytes.unwrap_or(0) > 0
                && slot.lag_seconds.is_some_and(|s| s >= stalled_after as f64)
            {
                return Verdict::Stalled(stalled_after);
            }
        }
        if !self.apply_running
            && (self.phase == crate::state::Phase::Failed.as_str() || self.last_error.is_some())
        {
            return Verdict::Failed;
        }
        if !self.apply_running && self.pglogical_broken().is_some() {
            return Verdict::Failed;
        }
        Verdict::Fine
    }

    /// Strategy pglogical: what is wrong with a subscription that should replicate (the
    /// run's initial sync is done and it is not cut over yet), if anything.
    pub fn pglogical_broken(&self) -> Option<String> {
        let pgl = self.pglogical.as_ref()?;
        let replicating_step = self
            .steps_done
            .iter()
            .any(|s| s == crate::state::step::REPLICATING);
        if !replicating_step || self.phase == crate::state::Phase::Live.as_str() {
            return None;
        }
        match pgl.state.as_str() {
            pglogical::REPLICATING => None,
            pglogical::MISSING | pglogical::NO_EXTENSION => Some(format!(
                "pglogical subscription {} is gone from the target ({}): nothing replicates the source's changes any more",
                pgl.subscription, pgl.state
            )),
            state => Some(format!(
                "pglogical subscription {} is {state}{}: the source's changes are not applied; its apply worker's error is in the target's server log",
                pgl.subscription,
                if pgl.enabled == Some(false) {
                    " (disabled)"
                } else {
                    ""
                }
            )),
        }
    }
}

/// Status has no Markdown layout: `--format markdown` prints the text.
impl Render for Status {
    fn render_markdown(&self) -> String {
        self.render_text()
    }

    fn render_text(&self) -> String {
        let mut o = String::new();
        let _ = writeln!(
            o,
            "plan {}: {}{}",
            self.plan,
            self.phase,
            self.strategy
                .as_ref()
                .map(|s| format!(" (strategy {s})"))
                .unwrap_or_default()
        );
        if let (Some(a), Some(b)) = (&self.started_at, &self.updated_at) {
            let _ = writeln!(o, "  started {a}, last update {b}");
        }
        if let Some(e) = &self.last_error {
            let _ = writeln!(o, "  last error: {e}");
        }
        if !self.steps_done.is_empty() {
            let _ = writeln!(o, "  steps done: {}", self.steps_done.join(", "));
        }
        if !self.steps_to_do.is_empty() {
            let _ = writeln!(o, "  steps to do: {}", self.steps_to_do.join(", "));
        }
        if self.restore_items_done > 0 {
            let _ = writeln!(o, "  restore items applied: {}", self.restore_items_done);
        }
        if !self.tables.is_empty() {
            let done = self
                .tables
                .iter()
                .filter(|t| t.chunks_done >= t.chunks as i64)
                .count();
            let rows: i64 = self.tables.iter().map(|t| t.rows).sum();
            let bytes: i64 = self.tables.iter().map(|t| t.bytes).sum();
            let _ = writeln!(
                o,
                "  copied: {done} table(s) complete, {rows} rows, {}",
                planner::bytes(bytes)
            );
            for t in self
                .tables
                .iter()
                .filter(|t| t.chunks_done < t.chunks as i64)
            {
                let _ = writeln!(
                    o,
                    "    {}.{}: {}/{} chunks",
                    t.schema, t.table, t.chunks_done, t.chunks
                );
            }
        }
        if let Some(l) = &self.load {
            let _ = writeln!(
                o,
                "  load: {} of {} chunk(s), {} rows, {} in {:.1}s: {}, {}, {}",
                l.chunks_done,
                l.chunks,
                l.rows,
                planner::bytes(l.bytes),
                l.elapsed_seconds,
                crate::rate::rows_text(l.rows_per_second),
                crate::rate::bytes_text(l.bytes_per_second),
                if l.finished_at.is_some() {
                    "finished".to_string()
                } else if !self.apply_running {
                    "stopped (no apply runs)".to_string()
                } else {
                    format!(
                        "ETA {}",
                        crate::rate::eta_text(
                            l.eta_seconds
                                .and_then(|s| std::time::Duration::try_from_secs_f64(s).ok())
                        )
                    )
                }
            );
        }
        if let Some(p) = &self.pglogical {
            let _ = writeln!(
                o,
                "  subscription {}: {}{}{}",
                p.subscription,
                p.state,
                p.provider_node
                    .as_ref()
                    .map(|n| format!(" (provider node {n})"))
                    .unwrap_or_default(),
                p.initial_sync
                    .as_ref()
                    .map(|s| format!(", initial sync {s}"))
                    .unwrap_or_default()
            );
            let _ = writeln!(
                o,
                "  tables: {} of {} synced",
                p.tables_synced,
                p.tables.len()
            );
            for t in &p.tables {
                let _ = writeln!(o, "    {}.{}: {}", t.schema, t.table, t.state);
            }
        }
        match &self.slot {
            Some(s) if s.lost.is_some() => {
                let _ = writeln!(
                    o,
                    "  slot {} LOST: {}",
                    s.name,
                    s.lost.as_deref().unwrap_or_default()
                );
            }
            Some(s) if self.pglogical.is_some() => {
                let _ = writeln!(
                    o,
                    "  slot {} ({}): source at {}, subscriber confirmed {}, lag {}{}, retains {} of WAL",
                    s.name,
                    if s.active { "active" } else { "inactive" },
                    s.source_wal_lsn.as_deref().unwrap_or("?"),
                    s.confirmed_flush_lsn.as_deref().unwrap_or("?"),
                    s.lag_bytes
                        .map(|b| planner::bytes(b as i64))
                        .unwrap_or_else(|| "?".into()),
                    s.lag_seconds
                        .map(|x| format!(" ({x:.1}s)"))
                        .unwrap_or_default(),
                    s.retained_wal_bytes
                        .map(|b| planner::bytes(b as i64))
                        .unwrap_or_else(|| "?".into()),
                );
            }
            Some(s) => {
                let _ = writeln!(
                    o,
                    "  slot {} ({}): source at {}, target applied {}, slot confirmed {}, lag {}{}, retains {} of WAL",
                    s.name,
                    if s.active { "active" } else { "inactive" },
                    s.source_wal_lsn.as_deref().unwrap_or("?"),
                    s.applied_lsn.as_deref().unwrap_or("-"),
                    s.confirmed_flush_lsn.as_deref().unwrap_or("?"),
                    s.lag_bytes
                        .map(|b| planner::bytes(b as i64))
                        .unwrap_or_else(|| "?".into()),
                    s.lag_seconds
                        .map(|x| format!(" ({x:.1}s)"))
                        .unwrap_or_default(),
                    s.retained_wal_bytes
                        .map(|b| planner::bytes(b as i64))
                        .unwrap_or_else(|| "?".into()),
                );
                if s.applied_lsn.is_some() {
                    let _ = writeln!(
                        o,
                        "  catch-up: {}, caught up in {}",
                        crate::rate::bytes_text(s.catch_up_bytes_per_second),
                        crate::rate::eta_text(
                            s.catch_up_eta_seconds
                                .and_then(|x| std::time::Duration::try_from_secs_f64(x).ok())
                        )
                    );
                }
            }
            None if self.pglogical.is_some() => {
                let _ = writeln!(o, "  no subscription slot on the source");
            }
            None => {
                let _ = writeln!(o, "  no replication slot on the source");
            }
        }
        if let (Some(t), Some(c)) = (self.replicated_transactions, self.replicated_changes) {
            let _ = writeln!(o, "  replicated: {t} transaction(s), {c} change(s)");
        }
        o
    }
}

/// The strategy's steps (`list`) split into done and to do by the `finished` records (in the
/// order they finished), each in the list's order; records not in the list follow the done
/// steps, as they finished.
fn done_and_to_do(
    list: &[crate::strategy::steps::Step],
    finished: Vec<String>,
) -> (Vec<String>, Vec<String>) {
    let (mut done, mut to_do) = (Vec::new(), Vec::new());
    for s in list {
        if finished.iter().any(|f| f == s.name) {
            done.push(s.name.to_string());
        } else {
            to_do.push(s.name.to_string());
        }
    }
    done.extend(
        finished
            .into_iter()
            .filter(|f| !list.iter().any(|s| s.name == f)),
    );
    (done, to_do)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn steps_show_in_the_strategys_order_with_what_is_left() {
        let list = crate::strategy::dump_restore::STEPS;
        let names: Vec<String> = list.iter().map(|s| s.name.to_string()).collect();
        // Finished out of order (a rerun records `state` and `dump` again), with a record of
        // change capture's that is no step of the list.
        let finished = ["pre-data", "ddl-applied 0/1", "state", "dump"]
            .map(str::to_string)
            .to_vec();
        let (done, to_do) = done_and_to_do(list, finished);
        assert_eq!(done, ["state", "dump", "pre-data", "ddl-applied 0/1"]);
        assert_eq!(to_do, names[3..].to_vec());
        assert_eq!(to_do.first().map(String::as_str), Some("data"));
        let (done, to_do) = done_and_to_do(list, Vec::new());
        assert!(done.is_empty());
        assert_eq!(to_do, names);
        // A strategy pgmove does not know (a newer release's): the records as they are.
        let (done, to_do) = done_and_to_do(&[], vec!["x".into(), "y".into()]);
        assert_eq!(done, ["x", "y"]);
        assert!(to_do.is_empty());
    }

    fn status(phase: &str, error: Option<&str>, running: bool, lag: Option<(u64, f64)>) -> Status {
        Status {
            plan: "p".into(),
            phase: phase.into(),
            strategy: Some("copy-cdc".into()),
            started_at: None,
            updated_at: None,
            last_error: error.map(str::to_string),
            steps_done: vec![],
            steps_to_do: vec![],
            restore_items_done: 0,
            tables: vec![],
            load: None,
            slot: lag.map(|(bytes, secs)| SlotStatus {
                name: "s".into(),
                active: running,
                source_wal_lsn: None,
                confirmed_flush_lsn: None,
                applied_lsn: None,
                lag_bytes: Some(bytes),
                lag_seconds: Some(secs),
                catch_up_bytes_per_second: None,
                catch_up_eta_seconds: None,
                retained_wal_bytes: None,
                wal_status: Some("reserved".into()),
                lost: None,
            }),
            replicated_transactions: None,
            replicated_changes: None,
            apply_running: running,
            pglogical: None,
        }
    }

    #[test]
    fn verdicts() {
        // Failed only once no apply runs (a rerun resuming clears nothing until it records).
        assert_eq!(
            status("failed", Some("boom"), false, None).verdict(600),
            Verdict::Failed
        );
        assert_eq!(
            status("replicating", Some("boom"), false, None).verdict(600),
            Verdict::Failed
        );
        assert_eq!(
            status("failed", Some("boom"), true, None).verdict(600),
            Verdict::Fine
        );
        assert_eq!(
            status("loaded", None, false, None).verdict(600),
            Verdict::Fine
        );
        // Stalled: running, behind, nothing applied for the threshold.
        let behind = status("replicating", None, true, Some((4096, 700.0)));
        assert_eq!(behind.verdict(600), Verdict::Stalled(600));
        assert_eq!(behind.verdict(800), Verdict::Fine);
        assert_eq!(
            status("replicating", None, true, Some((0, 700.0))).verdict(600),
            Verdict::Fine
        );
        assert_eq!(
            status("replicating", None, false, Some((4096, 700.0))).verdict(600),
            Verdict::Fine
        );
        // A lost slot wins.
        let mut lost = status("failed", Some("boom"), false, Some((4096, 700.0)));
        if let Some(s) = lost.slot.as_mut() {
            s.lost = Some("lost".into());
        }
        assert_eq!(lost.verdict(600), Verdict::SlotLost);
    }

    fn pglogical_run(state: &str, steps: &[&str], lag: Option<(u64, f64)>) -> Status {
        let mut s = status("replicating", None, false, lag);
        s.strategy = Some("pglogical".into());
        s.steps_done = steps.iter().map(|s| s.to_string()).collect();
        s.pglogical = Some(pglogical::PglogicalStatus {
            subscription: "pgmove_p".into(),
            state: state.into(),
            enabled: Some(state != "disabled"),
            provider_node: Some("pgmove_p_provider".into()),
            slot_name: Some("pgl_p".into()),
            initial_sync: Some("replicating".into()),
            tables: vec![pglogical::TableSync {
                schema: "public".into(),
                table: "t".into(),
                state: "replicating".into(),
            }],
            tables_synced: 1,
        });
        s
    }

    #[test]
    fn pglogical_verdicts_follow_the_subscription() {
        let done = ["state", "sync", "replicating"];
        assert_eq!(
            pglogical_run("replicating", &done, Some((0, 0.0))).verdict(600),
            Verdict::Fine
        );
        // Down or gone once the sync is done: failed, with the reason.
        let down = pglogical_run("down", &done, None);
        assert_eq!(down.verdict(600), Verdict::Failed);
        assert!(down
            .pglogical_broken()
            .is_some_and(|m| m.contains("pgmove_p is down")));
        let gone = pglogical_run("missing", &done, None);
        assert_eq!(gone.verdict(600), Verdict::Failed);
        // Still syncing (initializing) or cut over (live): nothing wrong.
        assert_eq!(
            pglogical_run("initializing", &["state", "sync"], None).verdict(600),
            Verdict::Fine
        );
        let mut live = pglogical_run("missing", &done, None);
        live.phase = "live".into();
        assert_eq!(live.verdict(600), Verdict::Fine);
        // Replicating inside the servers, no pgmove apply running: behind and nothing
        // confirmed for the threshold is stalled.
        let behind = pglogical_run("replicating", &done, Some((4096, 700.0)));
        assert!(!behind.apply_running);
        assert_eq!(behind.verdict(600), Verdict::Stalled(600));
        let t = behind.render_text();
        assert!(t.contains("subscription pgmove_p: replicating (provider node pgmove_p_provider), initial sync replicating"), "{t}");
        assert!(
            t.contains("tables: 1 of 1 synced\n    public.t: replicating"),
            "{t}"
        );
        assert!(t.contains("subscriber confirmed"), "{t}");
        let j: serde_json::Value = serde_json::from_str(&behind.render_json()).expect("json");
        assert_eq!(j["pglogical"]["state"], "replicating");
        assert_eq!(j["pglogical"]["tables"][0]["state"], "replicating");
    }

    #[test]
    fn a_load_and_a_catch_up_show_their_rates_and_time_left() {
        let mut s = status("copy", None, true, Some((10 * 1024 * 1024, 0.5)));
        // 4 of 10 chunks, 1000 of an estimated 5000 rows in 10 s: 40 s left at 100 rows/s.
        s.load = Some(LoadStatus::of(crate::state::load::Load {
            started_at: "2026-01-01 00:00:00+00".into(),
            finished_at: None,
            chunks: 10,
            estimated_rows: Some(5000),
            estimated_bytes: 1 << 20,
            chunks_done: 4,
            rows: 1000,
            bytes: 2 * 1024 * 1024,
            elapsed_secs: 10.0,
        }));
        if let Some(slot) = s.slot.as_mut() {
            slot.applied_lsn = Some("0/10".into());
            slot.catch_up_bytes_per_second = Some(1024.0 * 1024.0);
            slot.catch_up_eta_seconds = Some(10.0);
        }
        let t = s.render_text();
        assert!(
            t.contains("  load: 4 of 10 chunk(s), 1000 rows, 2.0 MB in 10.0s: 100 rows/s, 204.8 kB/s, ETA 40s\n"),
            "{t}"
        );
        assert!(
            t.contains("  catch-up: 1.0 MB/s, caught up in 10s\n"),
            "{t}"
        );
        let j: serde_json::Value = serde_json::from_str(&s.render_json()).expect("json");
        assert_eq!(j["load"]["rows_per_second"], 100.0);
        assert_eq!(j["load"]["bytes_per_second"], 209715.2);
        assert_eq!(j["load"]["eta_seconds"], 40.0);
        assert_eq!(j["load"]["estimated_rows"], 5000);
        assert_eq!(j["slot"]["catch_up_bytes_per_second"], 1048576.0);
        assert_eq!(j["slot"]["catch_up_eta_seconds"], 10.0);
        s.apply_running = false;
        assert!(s
            .render_text()
            .contains("204.8 kB/s, stopped (no apply runs)\n"));
        // Finished: no time left, the rate of the whole load.
        let mut done = s.load.clone().expect("load");
        done.finished_at = Some("2026-01-01 00:00:10+00".into());
        s.load = Some(done);
        assert!(s
            .render_text()
            .contains("100 rows/s, 204.8 kB/s, finished\n"));
    }

    #[test]
    fn markdown_is_the_text_and_json_has_every_field() {
        let s = status("replicating", Some("boom"), true, Some((4096, 2.5)));
        assert_eq!(s.render_markdown(), s.render_text());
        assert!(s
            .render_text()
            .starts_with("plan p: replicating (strategy copy-cdc)\n"));
        let j: serde_json::Value = serde_json::from_str(&s.render_json()).expect("json");
        assert_eq!(j["phase"], "replicating");
        assert_eq!(j["slot"]["lag_bytes"], 4096);
    }
}
