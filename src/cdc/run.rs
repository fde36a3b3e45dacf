//! The change-capture loop: pgoutput from the slot, applied to the target in source commit
//! order, exactly once.
//!
//! One target transaction carries one or more whole source transactions and the end LSN of
//! the last one in `pgmove.progress`; only after it commits is that LSN confirmed to the
//! source. A restart streams from `pgmove.progress`, and the server (and a check here) skips
//! every transaction that ended at or before it: nothing is lost, nothing applied twice.
//!
//! Tables copied from a later snapshot than the slot's (a resumed full load) carry their
//! snapshot LSN; their changes committed before it are already in the copy and are skipped.
//!
//! DDL (`cdc.ddl`, see [`crate::cdc::ddl`]): the source's event trigger puts each table DDL
//! statement into the stream as a logical decoding message. Its SQL runs on the target at
//! exactly that point, in the same target transaction as the changes around it: the changes
//! received before it are turned into SQL first, with the relations as they were then, and the
//! later ones with the Relation messages that follow. A statement that cannot be replayed (or
//! any, with `refuse`) stops the loop before its source transaction: what came before is
//! applied and confirmed, the transaction itself is not, so a rerun stops at it again until it
//! is marked as applied on the target ([`DDL_APPLIED_STEP`]).
//!
//! Streamed transactions (pgoutput protocol 2, PostgreSQL 14+, see [`crate::cdc::stream`]): the
//! changes, Relation and DDL messages of a large transaction arrive before its commit, in
//! Stream Start/Stop blocks interleaved with other transactions. They are spooled per
//! top-level xid ([`crate::cdc::spool`], memory then a temporary file), a subtransaction's
//! dropped on its Stream Abort, the whole transaction's on its own; at Stream Commit the spool
//! is replayed through this loop as Begin, messages, Commit, so it is applied exactly like an
//! ordinary transaction at its place in the commit order (same snapshot filter, batching,
//! progress row, confirmation). Nothing streamed is confirmed before its commit is applied:
//! while a streamed transaction is open the loop does not advance the slot on idle, and
//! after a restart the server streams it again from its start. pgoutput sends a streamed
//! message with the top-level xid, so when a subtransaction rolls back and a pgmove DDL message
//! may have been part of it, the loop starts the session over without streaming (the server
//! then sends that transaction whole at its commit).

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::mpsc;

use crate::cdc::apply::{self, Change, Rel, Val};
use crate::cdc::ddl::{self, DdlConfig, DdlPolicy};
use crate::cdc::pgoutput::{self, Message, OldTuple, Value};
use crate::cdc::spool::{self, Spools};
use crate::cdc::stream::{ChangeStream, StreamError, StreamOptions};
use crate::pg::{quote, Endpoint, Lsn, PgError};

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

/// How [`CdcJob::memory_limit`] is shared out, so that what the loop holds stays under it
/// whatever the size or number of source transactions:
/// - three eighths for the messages of streamed (in-progress) transactions, all of them
///   together ([`Spools`]); past it they go to temporary files;
/// - a thirty-second per piece of work handed to the target: a batch of whole transactions,
///   or a piece of a larger one (applied piece by piece inside one target transaction whose
///   last piece carries the progress row). At most [`QUEUED_BATCHES`] wait, one is applied
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
        ..Default::default()
    })
}

/// Prefix of the `pgmove.steps` rows (on the target) marking a DDL message as applied by hand:
/// `ddl-applied <LSN of the message>`. Change capture then skips that message.
pub const DDL_APPLIED_STEP: &str = crate::state::step::DDL_APPLIED_PREFIX;

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
    /// [`crate::cdc::retry::run`] retried transient failures for too long.
    #[error("gave up after retrying for {}s ({attempts} attempts without progress); last error: {last}", elapsed.as_secs())]
    GaveUp {
        elapsed: Duration,
        attempts: u32,
        last: Box<CdcError>,
    },
}

/// What a run of the loop did.
#[derive(Clone, Debug, Default, serde::Serialize)]
pub struct CdcOutcome {
    pub transactions: u64,
    pub changes: u64,
    pub applied_lsn: String,
}

/// Run on the apply session: the target's triggers and foreign keys stay quiet.
const REPLICA_ROLE_SQL: &str = "SET session_replication_role = replica";

/// The LSN the target has applied up to, if change capture ever ran.
pub async fn applied_lsn(target: &Endpoint, plan: &str) -> Result<Option<Lsn>, PgError> {
    let c = target.connect_short().await?;
    crate::state::progress::applied_lsn(&c, target, plan).await
}

fn progress_sql(plan: &str, lsn: Lsn, txns: u64, changes: u64) -> String {
    crate::state::progress::save_sql(plan, lsn, txns, changes)
}

/// A column value of the stream that cannot be applied.
#[derive(Debug, thiserror::Error)]
enum ValueError {
    #[error("a value is not valid UTF-8")]
    NotUtf8,
    #[error("binary tuple data was not asked for")]
    Binary,
}

fn val(v: &Value) -> Result<Val, ValueError> {
    Ok(match v {
        Value::Null => Val::Null,
        Value::Unchanged => Val::Unchanged,
        Value::Text(b) => {
            Val::Text(String::from_utf8(b.to_vec()).map_err(|_| ValueError::NotUtf8)?)
        }
        Value::Binary(_) => return Err(ValueError::Binary),
    })
}

fn vals(vs: &[Value]) -> Result<Vec<Val>, ValueError> {
    vs.iter().map(val).collect()
}

fn rel_of(r: &pgoutput::Relation) -> Rel {
    Rel {
        schema: r.schema().to_string(),
        name: r.name.clone(),
        columns: r.columns.iter().map(|c| c.name.clone()).collect(),
        key: r.columns.iter().map(|c| c.is_key()).collect(),
        full: r.replica_identity == pgoutput::ReplicaIdentity::Full,
    }
}

/// A source transaction being received.
struct Txn {
    /// Its commit LSN (Begin's `final_lsn`, the Commit's `commit_lsn`).
    commit_lsn: Lsn,
    /// Applied before a restart: everything in it is skipped.
    skip: bool,
    /// Changes not yet turned into SQL: all made with the relations as they are in the cache.
    pending: Vec<(u32, Change)>,
    /// The transaction's changes and SQL so far, in stream order (changes and DDL).
    sql: Vec<apply::Item>,
    /// Changes turned into SQL.
    changes: u64,
    /// Bytes of `pending` and `sql` ([`change_bytes`]).
    bytes: usize,
    /// Pieces of it were handed to the target: its target transaction is open, and the rest
    /// goes there too, the last piece with the progress row.
    open: bool,
    /// It holds `ALTER TYPE ... ADD VALUE`: its target transaction commits right after it.
    commit_after: bool,
    /// On a target before PostgreSQL 12: the `ADD VALUE` it holds (all it holds), run in
    /// autocommit ([`ddl::DdlAction::add_value_autocommit`]).
    autocommit: Option<Vec<String>>,
}

impl Txn {
    /// A change received (made with the relations as they are in the cache).
    fn push(&mut self, change: (u32, Change)) {
        self.bytes += change_bytes(&change.1);
        self.pending.push(change);
    }
}

/// The target's `GENERATED ALWAYS` identity columns: schema, table, column, a row each.
const ALWAYS_IDENTITY: &str = "SELECT n.nspname::text, c.relname::text, a.attname::text
  FROM pg_catalog.pg_attribute a
  JOIN pg_catalog.pg_class c ON c.oid = a.attrelid
  JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
 WHERE a.attidentity = 'a' AND NOT a.attisdropped AND a.attnum > 0";

/// `GENERATED ALWAYS` identity columns by (schema, table).
type AlwaysIdentity = HashMap<(String, String), HashSet<String>>;

/// The target's [`ALWAYS_IDENTITY`] columns.
async fn always_identity(job: &CdcJob) -> Result<AlwaysIdentity, CdcError> {
    let client = job.target.connect().await?;
    let rows = client.query(ALWAYS_IDENTITY, &[]).await.map_err(|e| {
        job.target
            .query_error("listing the target's GENERATED ALWAYS identity columns", &e)
    })?;
    let mut out = AlwaysIdentity::new();
    for r in rows {
        out.entry((r.get(0), r.get(1)))
            .or_default()
            .insert(r.get(2));
    }
    Ok(out)
}

/// An UPDATE may set a `GENERATED ALWAYS` identity column only to DEFAULT (the target refuses
/// "column ... can only be updated to DEFAULT"), and such a column changes on the source only
/// by `SET ... = DEFAULT`, which the target's own sequence cannot repeat: an update leaves
/// such a column (not part of the replica identity) as it is on the target, like a TOASTed
/// value that did not change. Cutover's verification reports a value that did change.
fn keep_always_identity(rel: &pgoutput::Relation, always: &AlwaysIdentity, change: &mut Change) {
    let Change::Update { new, .. } = change else {
        return;
    };
    let Some(cols) = always.get(&(rel.schema().to_string(), rel.name.clone())) else {
        return;
    };
    for (c, v) in rel.columns.iter().zip(new.iter_mut()) {
        if !c.is_key() && cols.contains(&c.name) {
            *v = Val::Unchanged;
        }
    }
}

/// Turns the transaction's pending changes into SQL with the relation cache as it is now
/// (call it before the cache changes, and before DDL SQL is appended).
fn convert(
    job: &CdcJob,
    rels: &HashMap<u32, pgoutput::Relation>,
    always: &AlwaysIdentity,
    t: &mut Txn,
) -> Result<(), CdcError> {
    let pending = std::mem::take(&mut t.pending);
    if pending.is_empty() || t.skip {
        return Ok(());
    }
    let changes: Vec<Change> = pending
        .into_iter()
        .filter(|(oid, _)| {
            // Skip what the copy of a later snapshot already holds.
            let key = rels
                .get(oid)
                .map(|r| (r.schema().to_string(), r.name.clone()));
            match key.and_then(|k| job.table_lsns.get(&k)) {
                Some(snap) => t.commit_lsn >= *snap,
                None => true,
            }
        })
        .map(|(oid, mut ch)| {
            if let Some(r) = rels.get(&oid) {
                keep_always_identity(r, always, &mut ch);
            }
            ch
        })
        .collect();
    let n = changes.len() as u64;
    let lookup = |oid: u32| rels.get(&oid).map(|r| Arc::new(rel_of(r)));
    let items = apply::to_items(changes, &lookup).map_err(|e| CdcError::Apply {
        lsn: t.commit_lsn,
        message: e.to_string(),
    })?;
    t.changes += n;
    t.sql.extend(items);
    Ok(())
}

/// The DDL configuration the loop runs with: `None` when DDL messages are skipped. Reads the
/// trigger's key from the source and the messages applied by hand from the target.
async fn ddl_config(job: &CdcJob) -> Result<Option<DdlConfig>, CdcError> {
    let mut cfg = match &job.ddl {
        Some(c) if c.policy != DdlPolicy::Ignore => c.clone(),
        _ => return Ok(None),
    };
    if cfg.key.is_empty() {
        match ddl::read_key(&job.source, &cfg.plan_name).await? {
            Some(k) => cfg.key = k,
            None => tracing::warn!(
                plan = %cfg.plan_name,
                "cdc.ddl is not ignore, but the DDL event trigger is not installed on the source: schema changes there are not seen (pgmove apply installs it before the slot is created)"
            ),
        }
    }
    let c = job.target.connect().await?;
    let rows = crate::state::steps::ddl_applied(&c, &job.target, &cfg.plan_name).await?;
    for step in rows {
        let text = step[DDL_APPLIED_STEP.len()..].trim();
        match text.parse::<Lsn>() {
            Ok(lsn) => cfg.applied_by_hand.push(lsn),
            Err(_) => tracing::warn!(
                step = %step,
                "pgmove.steps row not understood: it should be 'ddl-applied <LSN>', as the error message gave it"
            ),
        }
    }
    Ok(Some(cfg))
}

/// What the user does about a DDL statement the loop stopped at.
fn ddl_stop_message(
    e: &ddl::DdlError,
    plan: &str,
    lsn: Lsn,
    commit_lsn: Lsn,
    applied: Lsn,
) -> String {
    let mark = crate::state::steps::mark_ddl_applied_sql(plan, lsn);
    format!(
        "{e}. Change capture stopped before the source transaction holding it (commit at {commit_lsn}): the target has every change before it (applied up to {applied}), none of that transaction, and the slot keeps it, so every apply stops here again until the statement is marked as applied. To go on: run the statement on the target yourself, then mark it there with `{mark}` and run pgmove apply again"
    )
}

/// Runs until `stop` turns true (then finishes the batch in hand and returns), or fails.
///
/// Batches are applied by a task of their own while the next ones are received and decoded
/// ([`Applier`]); whatever happens, `run` returns only once that task is done with the
/// target transaction it had started, so a restart never races a commit of this run.
pub async fn run(
    job: &CdcJob,
    stop: tokio::sync::watch::Receiver<bool>,
) -> Result<CdcOutcome, CdcError> {
    let mut applier: Option<Applier> = None;
    let r = run_loop(job, stop, &mut applier).await;
    if let Some(a) = applier {
        a.shutdown().await;
    }
    r
}

async fn run_loop(
    job: &CdcJob,
    mut stop: tokio::sync::watch::Receiver<bool>,
    applier_slot: &mut Option<Applier>,
) -> Result<CdcOutcome, CdcError> {
    let target = job.target.connect().await?;
    let mut settings: String = apply::SESSION_SETTINGS
        .iter()
        .map(|(k, v)| format!("SET {k} = {};", quote::literal(v)))
        .collect();
    settings.push_str("SET synchronous_commit = on;");
    target
        .batch_execute(&settings)
        .await
        .map_err(|e| job.target.query_error("setting up the apply session", &e))?;
    // Triggers and foreign keys on the target must not fire for replicated rows (the source
    // already ran them): without the right, apply refuses rather than fire them (a trigger
    // that inserts elsewhere ends on a duplicate key, or worse, silently doubles rows).
    // `pgmove plan` reports it (preflight `target-replication-role`).
    target
        .batch_execute(REPLICA_ROLE_SQL)
        .await
        .map_err(|e| {
            job.target.query_error(
                "setting session_replication_role = replica for the apply session (needed so the target's triggers and foreign keys do not fire again for replicated changes; as a superuser: GRANT SET ON PARAMETER session_replication_role TO the target role, on RDS/Aurora GRANT rds_superuser to it)",
                &e,
            )
        })?;
    // `ALTER TYPE ... ADD VALUE` runs in a transaction block from PostgreSQL 12 on only.
    let target_version: i32 = target
        .query_one(
            "SELECT pg_catalog.current_setting('server_version_num')::int",
            &[],
        )
        .await
        .map_err(|e| job.target.query_error("reading the server version", &e))?
        .get(0);
    // Changes to different tables commute only when no trigger or foreign key fires.
    let applier = applier_slot.insert(Applier::start(job, target, true));
    let start = applied_lsn(&job.target, &job.plan_name).await?;
    let mut applied = start.unwrap_or(Lsn(0));
    let ddl_cfg = ddl_config(job).await?;
    let mut stream_opts = StreamOptions {
        // What the target committed reaches the slot soon, and `stop` (which waits for
        // the last confirmed LSN to be reported) does not wait up to a second for it.
        status_interval: Duration::from_millis(100),
        stall_timeout: crate::cdc::stream::stall_timeout_for(
            wal_sender_timeout_ms(&job.source).await,
        ),
        ..StreamOptions::default()
    };
    let pubs = publications(job).await?;
    let pubs: Vec<&str> = pubs.iter().map(String::as_str).collect();
    let mut stream =
        ChangeStream::start_with(&job.source, &job.slot, &pubs, applied, &stream_opts).await?;
    tracing::info!(slot = %job.slot, from = %applied, "change capture started");

    let mut rels: HashMap<u32, pgoutput::Relation> = HashMap::new();
    let always = always_identity(job).await?;
    let mut txn: Option<Txn> = None;
    // Streamed transactions (protocol 2): spooled until their Stream Commit, then replayed
    // through this loop as ordinary transactions ([`spool`]).
    let budget = MemoryBudget::of(job.memory_limit);
    let mut spools = Spools::new(budget.spool);
    spools.watch(ddl_cfg.as_ref().map(|c| ddl::prefix(&c.plan_name)));
    let mut replay: Option<spool::Replay> = None;
    let mut batch = Batch::default();
    let mut outcome = CdcOutcome::default();
    let mut last_idle_advance = Instant::now();
    // With exit_when_caught_up: the source's WAL position when the stream first went idle.
    let mut caught_up_goal: Option<Lsn> = None;

    loop {
        // A committed streamed transaction goes through first, message by message.
        let replayed = match replay.as_mut() {
            Some(r) => r.next_message().map_err(|e| spool_error(e, applied))?,
            None => None,
        };
        if replayed.is_none() {
            replay = None;
        }
        let stopping = *stop.borrow();
        let next = if let Some(m) = replayed {
            Some(Ok(Ok(Some((Lsn(0), m)))))
        } else if stopping {
            None
        } else {
            tokio::select! {
                _ = stop.changed() => None,
                r = tokio::time::timeout(idle_after(job, &batch), stream.next()) => Some(r),
            }
        };
        let msg = match next {
            None => {
                // Stop: finish what is in hand (whole transactions only).
                flush(
                    applier,
                    &mut stream,
                    &mut batch,
                    &mut applied,
                    &mut outcome,
                    true,
                )
                .await?;
                break;
            }
            Some(Err(_elapsed)) => {
                let had_batch = batch.end.is_some();
                let end = stream.server_wal_end();
                if txn.is_none()
                    && spools.is_empty()
                    && end > applier.queued.max(applied)
                    && batch.end.is_none_or(|e| end > e)
                    && (batch.end.is_some()
                        || job.exit_when_caught_up
                        || last_idle_advance.elapsed() > Duration::from_secs(2))
                {
                    // No transaction of ours half received (nor a streamed one open) and the
                    // server has sent everything before its WAL end: record and confirm that
                    // (with the batch in hand, if any), so the slot does not hold WAL for other
                    // databases' or tables' traffic.
                    batch.end = Some(end);
                    last_idle_advance = Instant::now();
                }
                // Caught up? Once nothing is left to hand over: wait for what was, then compare.
                let caught_up_check = job.exit_when_caught_up && txn.is_none() && !had_batch;
                flush(
                    applier,
                    &mut stream,
                    &mut batch,
                    &mut applied,
                    &mut outcome,
                    caught_up_check,
                )
                .await?;
                if caught_up_check {
                    let goal = *caught_up_goal.get_or_insert(current_wal_lsn(job).await?);
                    if applied >= goal {
                        tracing::info!(%applied, "caught up with the source");
                        break;
                    }
                }
                continue;
            }
            Some(Ok(r)) => match r? {
                Some((_, m)) => m,
                None => break,
            },
        };
        // Streamed transactions: their messages wait in the spool until Stream Commit, then
        // come back above as Begin, messages, Commit. Nothing of them is applied or confirmed
        // before; one aborted, or not committed before a restart, leaves no trace.
        let msg = match msg {
            Message::StreamStart(s) => {
                spools
                    .start(s.xid, s.first_segment)
                    .map_err(|e| spool_error(e, applied))?;
                continue;
            }
            Message::StreamStop => {
                spools.stop();
                continue;
            }
            Message::StreamAbort(a) => {
                if spools.abort(a.xid, a.subxid) {
                    // pgoutput sends a streamed message with the top-level xid: whether the
                    // DDL message belonged to the subtransaction that rolled back is unknown.
                    // Start over without streaming: the server then sends that transaction
                    // whole at its commit, without what rolled back.
                    tracing::warn!(
                        xid = a.xid,
                        subxid = a.subxid,
                        "a subtransaction rolled back in a streamed transaction holding DDL: resuming without streaming of in-progress transactions"
                    );
                    flush(
                        applier,
                        &mut stream,
                        &mut batch,
                        &mut applied,
                        &mut outcome,
                        true,
                    )
                    .await?;
                    let _ = stream.stop().await;
                    stream_opts.streaming = false;
                    stream = restart_stream(job, applied, &stream_opts).await?;
                    spools = Spools::new(budget.spool);
                    txn = None;
                    replay = None;
                }
                continue;
            }
            Message::StreamCommit(c) => {
                replay = Some(spools.commit(&c).map_err(|e| spool_error(e, applied))?);
                continue;
            }
            m if spools.block().is_some() => {
                let raw = match (&m, stream.last_raw()) {
                    (Message::Begin(_) | Message::Commit(_), _) | (_, None) => None,
                    (_, Some((lsn, raw))) => Some((*lsn, raw.clone())),
                };
                let Some((lsn, raw)) = raw else {
                    return Err(CdcError::Apply {
                        lsn: applied,
                        message: format!("{} inside a stream block", m.kind()),
                    });
                };
                spools
                    .push(lsn, &m, raw)
                    .map_err(|e| spool_error(e, applied))?;
                continue;
            }
            m => m,
        };
        tracing::trace!(kind = msg.kind(), %applied, "pgoutput message");
        match msg {
            Message::Begin(b) => {
                txn = Some(Txn {
                    commit_lsn: b.final_lsn,
                    // Applied before a restart (the server normally skips those itself).
                    skip: b.final_lsn < applied,
                    pending: Vec::new(),
                    sql: Vec::new(),
                    changes: 0,
                    bytes: 0,
                    open: false,
                    commit_after: false,
                    autocommit: None,
                })
            }
            Message::Relation(r) => {
                // A relation already known is described again after it changed (DDL): the
                // changes received so far were made with its earlier shape.
                if rels.contains_key(&r.oid) {
                    if let Some(t) = txn.as_mut() {
                        convert(job, &rels, &always, t)?;
                    }
                }
                rels.insert(r.oid, r);
            }
            Message::Insert(i) => {
                let new = vals(&i.new).map_err(|m| CdcError::Apply {
                    lsn: applied,
                    message: m.to_string(),
                })?;
                if let Some(t) = txn.as_mut() {
                    t.push((
                        i.relation,
                        Change::Insert {
                            rel: i.relation,
                            new,
                        },
                    ));
                }
            }
            Message::Update(u) => {
                let new = vals(&u.new).map_err(|m| CdcError::Apply {
                    lsn: applied,
                    message: m.to_string(),
                })?;
                let old = match &u.old {
                    Some(o) => Some(vals(o.values()).map_err(|m| CdcError::Apply {
                        lsn: applied,
                        message: m.to_string(),
                    })?),
                    None => None,
                };
                if let Some(t) = txn.as_mut() {
                    t.push((
                        u.relation,
                        Change::Update {
                            rel: u.relation,
                            old,
                            new,
                        },
                    ));
                }
            }
            Message::Delete(d) => {
                let old = match &d.old {
                    OldTuple::Key(v) | OldTuple::Full(v) => vals(v),
                }
                .map_err(|m| CdcError::Apply {
                    lsn: applied,
                    message: m.to_string(),
                })?;
                if let Some(t) = txn.as_mut() {
                    t.push((
                        d.relation,
                        Change::Delete {
                            rel: d.relation,
                            old,
                        },
                    ));
                }
            }
            Message::Truncate(tr) => {
                if let Some(t) = txn.as_mut() {
                    let first = tr.relations.first().copied().unwrap_or(0);
                    t.push((
                        first,
                        Change::Truncate {
                            rels: tr.relations.clone(),
                            cascade: tr.cascade,
                            restart_identity: tr.restart_identity,
                        },
                    ));
                }
            }
            Message::Commit(c) => {
                let mut t = match txn.take() {
                    Some(t) => t,
                    None => continue,
                };
                if t.skip {
                    continue; // applied before a restart
                }
                if c.end_lsn <= applied {
                    if t.open {
                        // Begin said it was not applied yet (its commit LSN is past the
                        // progress row), so this cannot happen; its pieces are rolled back.
                        return Err(CdcError::Apply {
                            lsn: c.end_lsn,
                            message: format!("the transaction applied in pieces ends at {}, at or before the progress row ({applied}): stopping before committing it twice", c.end_lsn),
                        });
                    }
                    continue; // applied before a restart
                }
                convert(job, &rels, &always, &mut t)?;
                if t.open {
                    // Its last piece commits its target transaction, with the progress row.
                    let last = Batch {
                        items: t.sql,
                        end: Some(c.end_lsn),
                        txns: 1,
                        changes: t.changes,
                        bytes: t.bytes,
                        piece: Some(Piece {
                            commit_lsn: t.commit_lsn,
                            first: false,
                            last: true,
                        }),
                        ..Batch::default()
                    };
                    applier
                        .send(last, &mut stream, &mut applied, &mut outcome)
                        .await?;
                    applier.poll(&mut stream, &mut applied, &mut outcome)?;
                    continue;
                }
                if let Some(statements) = t.autocommit.take() {
                    if !t.sql.is_empty() {
                        return Err(CdcError::Ddl {
                            lsn: c.end_lsn,
                            message: format!(
                                "the source transaction committed at {} holds changes after ALTER TYPE ... ADD VALUE, which the target (before PostgreSQL 12) can only run outside a transaction block: apply that transaction on the target yourself, mark its ADD VALUE message as applied ({DDL_APPLIED_STEP}<LSN>) and run pgmove apply again",
                                t.commit_lsn
                            ),
                        });
                    }
                    // ADD VALUE on a target before PostgreSQL 12: the transactions in hand
                    // first, then the statement on its own, then its progress row.
                    flush(
                        applier,
                        &mut stream,
                        &mut batch,
                        &mut applied,
                        &mut outcome,
                        false,
                    )
                    .await?;
                    let alone = Batch {
                        end: Some(c.end_lsn),
                        txns: 1,
                        changes: t.changes,
                        commit_after: true,
                        autocommit: Some(statements),
                        ..Batch::default()
                    };
                    applier
                        .send(alone, &mut stream, &mut applied, &mut outcome)
                        .await?;
                    applier.poll(&mut stream, &mut applied, &mut outcome)?;
                    continue;
                }
                batch.changes += t.changes;
                batch.txns += 1;
                batch.bytes += t.bytes;
                batch.items.extend(t.sql);
                batch.end = Some(c.end_lsn);
                // After ADD VALUE the target transaction commits before the next source
                // transaction, which may use the new value.
                batch.commit_after |= t.commit_after;
                if batch.commit_after
                    || batch.changes as usize >= job.batch_changes
                    || batch.bytes >= budget.piece
                {
                    flush(
                        applier,
                        &mut stream,
                        &mut batch,
                        &mut applied,
                        &mut outcome,
                        false,
                    )
                    .await?;
                }
            }
            Message::Logical(m) => {
                let cfg = match &ddl_cfg {
                    Some(cfg) if m.prefix == ddl::prefix(&cfg.plan_name) => cfg,
                    _ => {
                        tracing::debug!(prefix = %m.prefix, "logical decoding message (not applied)");
                        continue;
                    }
                };
                let t = match txn.as_mut() {
                    Some(t) if m.transactional => t,
                    _ => {
                        // The trigger writes only transactional messages; anyone can call
                        // pg_logical_emit_message, so this one is not from it.
                        tracing::warn!(lsn = %m.lsn, prefix = %m.prefix, "non-transactional message with pgmove's DDL prefix: not written by pgmove's trigger, ignored");
                        continue;
                    }
                };
                if t.skip {
                    continue;
                }
                match ddl::handle(&m, cfg) {
                    Ok(None) => {
                        tracing::debug!(lsn = %m.lsn, "DDL message skipped (excluded tables, or applied by hand)");
                    }
                    Ok(Some(action)) => {
                        // The changes before the statement, with the relations before it.
                        convert(job, &rels, &always, t)?;
                        tracing::info!(lsn = %action.lsn, tag = %action.tag, statement = %action.statement, "replicating DDL from the source");
                        for nt in &action.new_tables {
                            if nt.published {
                                tracing::info!(table = %format!("{}.{}", nt.schema, nt.name), "new table on the source: published from its creation on, its rows are replicated");
                            } else {
                                tracing::warn!(
                                    table = %format!("{}.{}", nt.schema, nt.name),
                                    reason = %nt.reason.as_deref().unwrap_or("not in the publication"),
                                    "new table on the source is created on the target but its rows are NOT replicated; give it a primary key on the source before writing to it, or copy its rows yourself"
                                );
                            }
                        }
                        match action.add_value_autocommit {
                            Some(statements)
                                if target_version < 120000
                                    || crate::testhook::forced("add-value-autocommit") =>
                            {
                                convert(job, &rels, &always, t)?;
                                if t.open || !t.sql.is_empty() || t.autocommit.is_some() {
                                    return Err(CdcError::Ddl {
                                        lsn: action.lsn,
                                        message: format!(
                                            "ALTER TYPE ... ADD VALUE on the source (at {}) shares its transaction (commit at {}) with other changes, and the target (before PostgreSQL 12) cannot run ADD VALUE inside a transaction block: run `{}` on the target yourself, then mark the message as applied (`{}`) and run pgmove apply again",
                                            action.lsn,
                                            t.commit_lsn,
                                            action.statement,
                                            crate::state::steps::mark_ddl_applied_sql(
                                                &job.plan_name,
                                                action.lsn
                                            )
                                            .trim_end_matches(';'),
                                        ),
                                    });
                                }
                                t.autocommit = Some(statements);
                            }
                            Some(_) => {
                                t.commit_after = true;
                                t.sql.push(action.sql.into());
                            }
                            None => t.sql.push(action.sql.into()),
                        }
                    }
                    Err(e) => {
                        let commit_lsn = t.commit_lsn;
                        // Whole transactions before this one: applied and confirmed; this one
                        // is not, so the slot keeps it and a rerun stops here again.
                        flush(
                            applier,
                            &mut stream,
                            &mut batch,
                            &mut applied,
                            &mut outcome,
                            true,
                        )
                        .await?;
                        let message =
                            ddl_stop_message(&e, &job.plan_name, m.lsn, commit_lsn, applied);
                        let _ = stream.stop().await;
                        return Err(CdcError::Ddl {
                            lsn: m.lsn,
                            message,
                        });
                    }
                }
            }
            _ => {}
        }
        // A transaction larger than a piece goes to the target piece by piece, all in one
        // target transaction, so its size never counts ([`MemoryBudget`]).
        if let Some(t) = txn.as_mut() {
            if t.bytes >= budget.piece {
                if t.skip {
                    t.pending.clear();
                    t.bytes = 0;
                    continue;
                }
                convert(job, &rels, &always, t)?;
                if !t.open {
                    // The whole transactions in hand go first, in a target transaction of
                    // their own.
                    flush(
                        applier,
                        &mut stream,
                        &mut batch,
                        &mut applied,
                        &mut outcome,
                        false,
                    )
                    .await?;
                    tracing::debug!(commit_lsn = %t.commit_lsn, bytes = t.bytes, "large source transaction: applied in pieces");
                }
                let piece = Batch {
                    items: std::mem::take(&mut t.sql),
                    end: None,
                    txns: 0,
                    changes: 0,
                    bytes: t.bytes,
                    piece: Some(Piece {
                        commit_lsn: t.commit_lsn,
                        first: !t.open,
                        last: false,
                    }),
                    ..Batch::default()
                };
                t.open = true;
                t.bytes = 0;
                applier
                    .send(piece, &mut stream, &mut applied, &mut outcome)
                    .await?;
                applier.poll(&mut stream, &mut applied, &mut outcome)?;
            }
        }
    }
    // What was handed over is committed (or failed) before the outcome is told.
    applier
        .wait(&mut stream, &mut applied, &mut outcome)
        .await?;
    let _ = stream.stop().await;
    outcome.applied_lsn = applied.to_string();
    Ok(outcome)
}

/// A new replication session from `applied`, once the previous one let the slot go (which
/// takes the server a moment).
/// The plan's publications that exist on the source: the main one, and the insert-only one
/// of `cdc.tables_without_key: insert-only` when it was created.
async fn publications(job: &CdcJob) -> Result<Vec<String>, CdcError> {
    let extra = crate::plan::insert_only_publication_name(&job.publication);
    let c = job.source.connect().await?;
    let has_extra = c
        .query_opt("SELECT 1 FROM pg_publication WHERE pubname = $1", &[&extra])
        .await
        .map_err(|e| job.source.query_error("reading pg_publication", &e))?
        .is_some();
    Ok(if has_extra {
        vec![job.publication.clone(), extra]
    } else {
        vec![job.publication.clone()]
    })
}

async fn restart_stream(
    job: &CdcJob,
    applied: Lsn,
    opts: &StreamOptions,
) -> Result<ChangeStream, CdcError> {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let pubs = publications(job).await?;
        let pubs: Vec<&str> = pubs.iter().map(String::as_str).collect();
        match ChangeStream::start_with(&job.source, &job.slot, &pubs, applied, opts).await {
            Ok(s) => return Ok(s),
            Err(StreamError::Stream { ref message, .. })
                if message.to_lowercase().contains("is active for pid")
                    && Instant::now() < deadline =>
            {
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            Err(e) => return Err(e.into()),
        }
    }
}

fn spool_error(e: spool::SpoolError, applied: Lsn) -> CdcError {
    CdcError::Apply {
        lsn: applied,
        message: e.to_string(),
    }
}

/// The source's current WAL write position.
async fn current_wal_lsn(job: &CdcJob) -> Result<Lsn, CdcError> {
    let c = job.source.connect().await?;
    let row = c
        .query_one("SELECT pg_current_wal_lsn()", &[])
        .await
        .map_err(|e| job.source.query_error("reading the WAL position", &e))?;
    Ok(row.get(0))
}

/// How long the stream may be silent before the loop looks around: soon when a batch is in
/// hand (the target should not wait while changes are here) or when it is to exit once caught
/// up; else every 200 ms (idle progress, stop).
/// The source's `wal_sender_timeout` in ms (the unit of `pg_settings.setting` for it).
const WAL_SENDER_TIMEOUT_SQL: &str =
    "SELECT setting::bigint FROM pg_settings WHERE name = 'wal_sender_timeout'";

/// The source's `wal_sender_timeout` in ms, or the default 60 s when it cannot be read (the
/// stream opening next reports a connection problem better).
async fn wal_sender_timeout_ms(source: &crate::pg::Endpoint) -> i64 {
    let read = async {
        let client = source.connect_short().await.ok()?;
        let row = client.query_one(WAL_SENDER_TIMEOUT_SQL, &[]).await.ok()?;
        row.try_get::<_, i64>(0).ok()
    };
    match tokio::time::timeout(Duration::from_secs(30), read).await {
        Ok(Some(ms)) => ms,
        _ => 60_000,
    }
}

fn idle_after(job: &CdcJob, batch: &Batch) -> Duration {
    if batch.end.is_some() || job.exit_when_caught_up {
        Duration::from_millis(10)
    } else {
        Duration::from_millis(200)
    }
}

/// Whole source transactions for one target transaction.
#[derive(Debug, Default)]
struct Batch {
    items: Vec<apply::Item>,
    /// End LSN of its last transaction, or a later one the server said it sent everything
    /// before; `None`: nothing to apply or record.
    end: Option<Lsn>,
    txns: u64,
    changes: u64,
    /// Bytes of its changes ([`change_bytes`]).
    bytes: usize,
    /// A piece of one large source transaction, applied in the target transaction its first
    /// piece begins and its last commits; `None`: whole transactions, in a target transaction
    /// of their own (maybe with other such batches).
    piece: Option<Piece>,
    /// Its target transaction takes no later batch: it holds `ALTER TYPE ... ADD VALUE`,
    /// whose new value the next source transactions may use.
    commit_after: bool,
    /// `ALTER TYPE ... ADD VALUE` on a target before PostgreSQL 12: these statements, each
    /// on its own (no transaction block), then the progress row; `items` is empty.
    autocommit: Option<Vec<String>>,
}

/// Where a piece of a large transaction goes in its target transaction.
#[derive(Clone, Copy, Debug)]
struct Piece {
    /// The source transaction's commit LSN (for messages).
    commit_lsn: Lsn,
    /// Begins the target transaction.
    first: bool,
    /// Commits it, with the progress row (the batch's `end`).
    last: bool,
}

impl Batch {
    fn append(&mut self, next: Batch) {
        self.items.extend(next.items);
        self.end = next.end.max(self.end);
        self.txns += next.txns;
        self.changes += next.changes;
        self.bytes += next.bytes;
        self.commit_after |= next.commit_after;
    }
}

/// A batch the target committed.
#[derive(Debug)]
struct Done {
    end: Lsn,
    txns: u64,
    changes: u64,
}

/// Batches handed over, at most, beyond the one the apply task is applying: the stream waits
/// (and the server with it) when the target is this far behind.
const QUEUED_BATCHES: usize = 2;

/// The apply task and its channels: batches go in, in order; what the target committed comes
/// back, in order, and is confirmed to the source only then.
struct Applier {
    tx: Option<mpsc::Sender<Batch>>,
    done: mpsc::UnboundedReceiver<Result<Done, CdcError>>,
    task: Option<tokio::task::JoinHandle<()>>,
    /// Tells the task to start no other batch.
    halt: Arc<AtomicBool>,
    /// End LSN of the last batch handed over.
    queued: Lsn,
}

impl Drop for Applier {
    fn drop(&mut self) {
        // If `run` is dropped mid-way: the target transaction in progress ends as it ends
        // (as a statement in flight always did), no other one starts.
        self.halt.store(true, Ordering::SeqCst);
    }
}

impl Applier {
    /// Starts the apply task on the target session `client` (set up for applying).
    fn start(job: &CdcJob, client: tokio_postgres::Client, reorder_tables: bool) -> Applier {
        let (tx, rx) = mpsc::channel(QUEUED_BATCHES);
        let (done_tx, done) = mpsc::unbounded_channel();
        let halt = Arc::new(AtomicBool::new(false));
        let ctx = ApplyCtx {
            plan_name: job.plan_name.clone(),
            target: job.target.clone(),
            client,
            reorder_tables,
            // Batches waiting when the target is behind go into one transaction, up to this.
            max_changes: job.batch_changes.max(1).saturating_mul(4),
            max_bytes: MemoryBudget::of(job.memory_limit).piece,
        };
        let task = tokio::spawn(apply_task(ctx, rx, done_tx, halt.clone()));
        Applier {
            tx: Some(tx),
            done,
            task: Some(task),
            halt,
            queued: Lsn(0),
        }
    }

    /// Records a committed batch, or returns the task's error.
    fn record(
        r: Option<Result<Done, CdcError>>,
        stream: &mut ChangeStream,
        applied: &mut Lsn,
        outcome: &mut CdcOutcome,
    ) -> Result<(), CdcError> {
        match r {
            Some(Ok(d)) => {
                stream.confirm(d.end);
                *applied = d.end.max(*applied);
                outcome.transactions += d.txns;
                outcome.changes += d.changes;
                Ok(())
            }
            Some(Err(e)) => Err(e),
            None => Err(CdcError::Apply {
                lsn: *applied,
                message: "the apply task ended unexpectedly".to_string(),
            }),
        }
    }

    /// Records the batches committed so far, without waiting.
    fn poll(
        &mut self,
        stream: &mut ChangeStream,
        applied: &mut Lsn,
        outcome: &mut CdcOutcome,
    ) -> Result<(), CdcError> {
        loop {
            match self.done.try_recv() {
                Ok(r) => Self::record(Some(r), stream, applied, outcome)?,
                Err(mpsc::error::TryRecvError::Empty) => return Ok(()),
                Err(mpsc::error::TryRecvError::Disconnected) => {
                    return if *applied >= self.queued {
                        Ok(())
                    } else {
                        Self::record(None, stream, applied, outcome)
                    }
                }
            }
        }
    }

    /// Waits until every batch handed over is committed and recorded.
    async fn wait(
        &mut self,
        stream: &mut ChangeStream,
        applied: &mut Lsn,
        outcome: &mut CdcOutcome,
    ) -> Result<(), CdcError> {
        self.poll(stream, applied, outcome)?;
        while *applied < self.queued {
            let r = self.done.recv().await;
            Self::record(r, stream, applied, outcome)?;
        }
        Ok(())
    }

    /// Hands a batch over (waiting while [`QUEUED_BATCHES`] wait already).
    async fn send(
        &mut self,
        b: Batch,
        stream: &mut ChangeStream,
        applied: &mut Lsn,
        outcome: &mut CdcOutcome,
    ) -> Result<(), CdcError> {
        let end = b.end.unwrap_or(self.queued);
        let sent = match &self.tx {
            Some(tx) => tx.send(b).await.is_ok(),
            None => false,
        };
        if !sent {
            // The task stopped: it failed, and says why.
            self.tx = None;
            self.wait(stream, applied, outcome).await?;
            return Self::record(None, stream, applied, outcome);
        }
        self.queued = end.max(self.queued);
        Ok(())
    }

    /// Ends the task: it starts no other batch, and this returns once the transaction it is
    /// applying (if any) has ended.
    async fn shutdown(mut self) {
        self.halt.store(true, Ordering::SeqCst);
        self.tx = None;
        if let Some(task) = self.task.take() {
            let _ = task.await;
        }
    }
}

/// What the apply task owns.
struct ApplyCtx {
    plan_name: String,
    target: Endpoint,
    client: tokio_postgres::Client,
    reorder_tables: bool,
    max_changes: usize,
    max_bytes: usize,
}

/// Applies batches in order, each (with the ones waiting behind it, up to `max_changes` and
/// `max_bytes`) in one target transaction with its progress row, and the pieces of a large
/// transaction in one target transaction, committed with its last piece; reports each commit,
/// or the first failure and stops. A target transaction left open (pieces of a transaction
/// whose end never came) is rolled back.
async fn apply_task(
    ctx: ApplyCtx,
    mut rx: mpsc::Receiver<Batch>,
    done: mpsc::UnboundedSender<Result<Done, CdcError>>,
    halt: Arc<AtomicBool>,
) {
    // A piece received while merging batches: next.
    let mut held: Option<Batch> = None;
    // A target transaction is open (pieces applied, the last one not yet).
    let mut open = false;
    loop {
        let mut b = match held.take() {
            Some(b) => b,
            None => match rx.recv().await {
                Some(b) => b,
                None => break,
            },
        };
        if halt.load(Ordering::SeqCst) {
            break;
        }
        if let Some(p) = b.piece {
            let r = apply_piece(&ctx, &b, p).await;
            // A failed piece rolled its transaction back (or the session is gone).
            open = r.is_ok() && !p.last;
            match r {
                Err(e) => {
                    let _ = done.send(Err(e));
                    break;
                }
                Ok(()) if p.last => {
                    let d = Done {
                        end: b.end.unwrap_or(p.commit_lsn),
                        txns: b.txns,
                        changes: b.changes,
                    };
                    if done.send(Ok(d)).is_err() {
                        break;
                    }
                }
                Ok(()) => {}
            }
            continue;
        }
        while !b.commit_after
            && b.autocommit.is_none()
            && (b.changes as usize) < ctx.max_changes
            && b.bytes < ctx.max_bytes
        {
            match rx.try_recv() {
                Ok(next) if next.piece.is_none() && next.autocommit.is_none() => b.append(next),
                Ok(next) => {
                    held = Some(next);
                    break;
                }
                Err(_) => break,
            }
        }
        let end = match b.end {
            Some(e) => e,
            None => continue,
        };
        if let Some(statements) = &b.autocommit {
            if let Err(e) = run_autocommit(&ctx, statements, end).await {
                let _ = done.send(Err(e));
                break;
            }
            crate::testhook::pause("cdc-add-value-autocommitted").await;
        }
        if b.commit_after {
            crate::testhook::pause("cdc-add-value-commit").await;
        }
        let r = watched_commit(&ctx, &b, end).await.map(|()| Done {
            end,
            txns: b.txns,
            changes: b.changes,
        });
        let failed = r.is_err();
        if b.commit_after && !failed {
            crate::testhook::pause("cdc-add-value-committed").await;
        }
        if done.send(r).is_err() || failed {
            break;
        }
    }
    if open {
        let _ = ctx.client.batch_execute("ROLLBACK").await;
    }
}

/// The savepoint each piece of a large transaction runs under, so that when its merged
/// statements fail it runs again change by change in the same target transaction.
const PIECE_SAVEPOINT: &str = "pgmove_piece";

/// One piece of a large transaction as one simple query: `BEGIN` for the first, the
/// statements (under [`PIECE_SAVEPOINT`] with `savepoint`), the progress row and `COMMIT` for
/// the last.
fn piece_sql(first: bool, savepoint: bool, statements: &[String], last: Option<&str>) -> String {
    let mut sql = String::with_capacity(
        statements.iter().map(|s| s.len() + 1).sum::<usize>()
            + last.map(str::len).unwrap_or(0)
            + 96,
    );
    if first {
        sql.push_str("BEGIN;\n");
    }
    if savepoint {
        sql.push_str(&format!("SAVEPOINT {PIECE_SAVEPOINT};\n"));
    }
    for s in statements {
        sql.push_str(s);
        sql.push('\n');
    }
    if savepoint {
        sql.push_str(&format!("RELEASE SAVEPOINT {PIECE_SAVEPOINT};\n"));
    }
    if let Some(progress) = last {
        sql.push_str(progress);
        sql.push_str("COMMIT;");
    }
    sql
}

/// Applies one piece of a large transaction in its target transaction (begun by the first
/// piece, committed with the progress row by the last). Merged statements first; if the
/// server refuses them, back to the piece's savepoint and the piece again change by change.
/// On failure the target transaction is rolled back: nothing of the source transaction stays.
async fn apply_piece(ctx: &ApplyCtx, b: &Batch, p: Piece) -> Result<(), CdcError> {
    let lsn = b.end.unwrap_or(p.commit_lsn);
    let progress = match (p.last, b.end) {
        (true, Some(end)) => Some(progress_sql(&ctx.plan_name, end, b.txns, b.changes)),
        _ => None,
    };
    let failed = |e: &tokio_postgres::Error| CdcError::Applying {
        lsn,
        source: ctx.target.query_error("applying changes", e),
    };
    let fast = apply::batch_sql(&b.items, ctx.reorder_tables).map_err(|e| CdcError::Apply {
        lsn,
        message: e.to_string(),
    });
    let fast = match fast {
        Ok(f) => f,
        Err(e) => {
            let _ = ctx.client.batch_execute("ROLLBACK").await;
            return Err(e);
        }
    };
    let e = match ctx
        .client
        .batch_execute(&piece_sql(p.first, true, &fast, progress.as_deref()))
        .await
    {
        Ok(()) => return Ok(()),
        Err(e) => e,
    };
    let plain = match apply::plain_sql(&b.items) {
        Ok(plain) if plain != fast && e.as_db_error().is_some() => plain,
        Ok(_) => {
            let _ = ctx.client.batch_execute("ROLLBACK").await;
            return Err(failed(&e));
        }
        Err(pe) => {
            let _ = ctx.client.batch_execute("ROLLBACK").await;
            return Err(CdcError::Apply {
                lsn,
                message: pe.to_string(),
            });
        }
    };
    tracing::debug!(
        error = %crate::pg::error_text(&e),
        %lsn,
        "the merged statements of a piece failed; applying it change by change"
    );
    let retry = format!("ROLLBACK TO SAVEPOINT {PIECE_SAVEPOINT};\n")
        + &piece_sql(false, false, &plain, progress.as_deref());
    if let Err(e) = ctx.client.batch_execute(&retry).await {
        let _ = ctx.client.batch_execute("ROLLBACK").await;
        return Err(failed(&e));
    }
    Ok(())
}

/// How long a target transaction may go unanswered before it is logged and the target pinged.
const TARGET_STALL_AFTER: Duration = Duration::from_secs(30);
/// How long the ping (a new connection and `SELECT 1`) may take.
const TARGET_PING_TIMEOUT: Duration = Duration::from_secs(10);

/// [`commit_batch`], watched: every [`TARGET_STALL_AFTER`] without an answer it is logged as a
/// stall and the target is pinged on a new connection. A target that does not answer the ping
/// either is hung (a stopped server or a dead network, which keepalives cannot see while the
/// peer's kernel still acknowledges): the transaction is given up as a lost session, which
/// run retries. A target that answers is merely slow (or the transaction waits for a lock):
/// it is waited for.
async fn watched_commit(ctx: &ApplyCtx, b: &Batch, end: Lsn) -> Result<(), CdcError> {
    let commit = commit_batch(ctx, b, end);
    tokio::pin!(commit);
    let started = Instant::now();
    let mut logged = false;
    loop {
        tokio::select! {
            r = &mut commit => {
                if logged {
                    tracing::info!(lsn = %end, waited_secs = started.elapsed().as_secs(), "the target answers again");
                }
                return r;
            }
            _ = tokio::time::sleep(TARGET_STALL_AFTER) => {
                logged = true;
                let waited = started.elapsed().as_secs();
                tracing::warn!(
                    lsn = %end,
                    waited_secs = waited,
                    "stall: the target has not answered for {waited} s while applying the source transaction ending at {end}; pinging it on a new connection"
                );
                let ping = async {
                    let c = ctx.target.connect().await.ok()?;
                    c.simple_query("SELECT 1").await.ok()
                };
                match tokio::time::timeout(TARGET_PING_TIMEOUT, ping).await {
                    Ok(Some(_)) => tracing::warn!(
                        lsn = %end,
                        "the target answers a new connection: the transaction is slow or waits for a lock (see pg_stat_activity on the target); still waiting"
                    ),
                    _ => {
                        return Err(CdcError::Applying {
                            lsn: end,
                            source: PgError::Lost {
                                side: crate::pg::Side::Target,
                                message: format!(
                                    "stall: no answer for {} s, and a new connection got none within {} s either: the target server or the network is hung",
                                    started.elapsed().as_secs(),
                                    TARGET_PING_TIMEOUT.as_secs()
                                ),
                            },
                        });
                    }
                }
            }
        }
    }
}

/// Runs `statements` one by one, each in its own transaction (a target before PostgreSQL 12
/// runs `ALTER TYPE ... ADD VALUE` only outside a transaction block); the progress row
/// follows in a transaction of its own.
async fn run_autocommit(ctx: &ApplyCtx, statements: &[String], end: Lsn) -> Result<(), CdcError> {
    for s in statements {
        ctx.client
            .batch_execute(s)
            .await
            .map_err(|e| CdcError::Applying {
                lsn: end,
                source: ctx
                    .target
                    .query_error(&format!("replaying the source's DDL ({s})"), &e),
            })?;
    }
    Ok(())
}

/// `BEGIN; statements; progress row; COMMIT;` as one simple query.
fn transaction_sql(statements: &[String], progress: &str) -> String {
    let mut sql = String::with_capacity(
        statements.iter().map(|s| s.len() + 1).sum::<usize>() + progress.len() + 16,
    );
    sql.push_str("BEGIN;\n");
    for s in statements {
        sql.push_str(s);
        sql.push('\n');
    }
    sql.push_str(progress);
    sql.push_str("COMMIT;");
    sql
}

/// Applies the batch and its progress row in one target transaction. Merged statements
/// ([`apply::batch_sql`]) first; if the server refuses them, the batch again change by
/// change ([`apply::plain_sql`]), whose result is the reference.
async fn commit_batch(ctx: &ApplyCtx, b: &Batch, end: Lsn) -> Result<(), CdcError> {
    let progress = progress_sql(&ctx.plan_name, end, b.txns, b.changes);
    let fast = apply::batch_sql(&b.items, ctx.reorder_tables).map_err(|e| CdcError::Apply {
        lsn: end,
        message: e.to_string(),
    })?;
    let failed = |e: &tokio_postgres::Error| CdcError::Applying {
        lsn: end,
        source: ctx.target.query_error("applying changes", e),
    };
    let e = match ctx
        .client
        .batch_execute(&transaction_sql(&fast, &progress))
        .await
    {
        Ok(()) => return Ok(()),
        Err(e) => e,
    };
    let _ = ctx.client.batch_execute("ROLLBACK").await;
    // Only the server's refusal is worth another try; a broken session is not.
    if e.as_db_error().is_none() {
        return Err(failed(&e));
    }
    let plain = apply::plain_sql(&b.items).map_err(|e| CdcError::Apply {
        lsn: end,
        message: e.to_string(),
    })?;
    if plain == fast {
        return Err(failed(&e));
    }
    tracing::debug!(
        error = %crate::pg::error_text(&e),
        %end,
        "the merged statements of a batch failed; applying it change by change"
    );
    if let Err(e) = ctx
        .client
        .batch_execute(&transaction_sql(&plain, &progress))
        .await
    {
        let _ = ctx.client.batch_execute("ROLLBACK").await;
        return Err(failed(&e));
    }
    Ok(())
}

/// Hands the batch in hand (if any) to the apply task, which commits it with its progress row
/// in one target transaction; records (and confirms to the source) what the target committed
/// meanwhile. With `wait`: returns once everything handed over is committed and confirmed.
async fn flush(
    applier: &mut Applier,
    stream: &mut ChangeStream,
    batch: &mut Batch,
    applied: &mut Lsn,
    outcome: &mut CdcOutcome,
    wait: bool,
) -> Result<(), CdcError> {
    let b = std::mem::take(batch);
    if b.end.is_some() {
        applier.send(b, stream, applied, outcome).await?;
    }
    if wait {
        applier.wait(stream, applied, outcome).await
    } else {
        applier.poll(stream, applied, outcome)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn updates_leave_generated_always_identity_columns_that_are_not_the_key() {
        let col = |name: &str, key: bool| pgoutput::Column {
            flags: if key { pgoutput::COLUMN_KEY } else { 0 },
            name: name.into(),
            type_oid: 23,
            type_modifier: -1,
        };
        let rel = pgoutput::Relation {
            xid: None,
            oid: 7,
            namespace: "fx".into(),
            name: "tickets".into(),
            replica_identity: pgoutput::ReplicaIdentity::Default,
            columns: vec![col("code", true), col("n", false), col("v", false)],
        };
        let mut always = AlwaysIdentity::new();
        always.insert(
            ("fx".into(), "tickets".into()),
            ["n".to_string(), "code".to_string()].into_iter().collect(),
        );
        let text = |s: &str| Val::Text(s.into());
        let mut update = Change::Update {
            rel: 7,
            old: None,
            new: vec![text("t1"), text("1"), text("changed")],
        };
        keep_always_identity(&rel, &always, &mut update);
        // The key stays (it finds the row; set only when it changed), `n` is left alone.
        assert_eq!(
            update,
            Change::Update {
                rel: 7,
                old: None,
                new: vec![text("t1"), Val::Unchanged, text("changed")],
            }
        );
        // Inserts carry every value (OVERRIDING SYSTEM VALUE).
        let mut insert = Change::Insert {
            rel: 7,
            new: vec![text("t2"), text("2"), text("x")],
        };
        let before = insert.clone();
        keep_always_identity(&rel, &always, &mut insert);
        assert_eq!(insert, before);
    }

    #[test]
    fn the_memory_limit_is_shared_out_under_itself() {
        let b = MemoryBudget::of(64 << 20);
        assert_eq!(b.spool, 24 << 20);
        assert_eq!(b.piece, 2 << 20);
        // The spool, and the pieces waiting, applied (with their SQL, twice), received and
        // replayed stay under the limit.
        assert!(b.spool + (QUEUED_BATCHES + 5) * b.piece < 64 << 20);
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
    fn pieces_begin_once_and_commit_with_the_progress_row() {
        let stmts = vec!["INSERT 1;".to_string(), "INSERT 2;".to_string()];
        let first = piece_sql(true, true, &stmts, None);
        assert_eq!(
            first,
            "BEGIN;\nSAVEPOINT pgmove_piece;\nINSERT 1;\nINSERT 2;\nRELEASE SAVEPOINT pgmove_piece;\n"
        );
        let middle = piece_sql(false, true, &stmts, None);
        assert!(!middle.contains("BEGIN") && !middle.contains("COMMIT"));
        let last = piece_sql(false, true, &stmts, Some("PROGRESS;"));
        assert!(last.ends_with("RELEASE SAVEPOINT pgmove_piece;\nPROGRESS;COMMIT;"));
        // The change-by-change retry runs after ROLLBACK TO SAVEPOINT, without one of its own.
        let retry = piece_sql(false, false, &stmts, Some("PROGRESS;"));
        assert_eq!(retry, "INSERT 1;\nINSERT 2;\nPROGRESS;COMMIT;");
    }
}
