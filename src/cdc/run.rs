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

use std::collections::HashMap;
use std::time::{Duration, Instant};

use crate::cdc::apply::{self, Change, Rel, Val};
use crate::cdc::pgoutput::{self, Message, OldTuple, Value};
use crate::cdc::stream::{ChangeStream, StreamError};
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
    /// Return once everything the source had written when the stream went idle is applied
    /// (for scripted one-shot imports and tests); otherwise run until stopped.
    pub exit_when_caught_up: bool,
}

#[derive(Debug, thiserror::Error)]
pub enum CdcError {
    #[error(transparent)]
    Pg(#[from] PgError),
    #[error(transparent)]
    Stream(#[from] StreamError),
    #[error("source transaction ending at {lsn}: {message}")]
    Apply { lsn: Lsn, message: String },
}

/// What a run of the loop did.
#[derive(Clone, Debug, Default, serde::Serialize)]
pub struct CdcOutcome {
    pub transactions: u64,
    pub changes: u64,
    pub applied_lsn: String,
}

/// `pgmove.progress` of the plan: the end LSN of the last applied source transaction.
const PROGRESS_SQL: &str = "SELECT applied_lsn FROM pgmove.progress WHERE plan_name = $1";

/// The LSN the target has applied up to, if change capture ever ran.
pub async fn applied_lsn(target: &Endpoint, plan: &str) -> Result<Option<Lsn>, PgError> {
    let c = target.connect().await?;
    let row = c
        .query_opt(PROGRESS_SQL, &[&plan])
        .await
        .map_err(|e| target.query_error("reading pgmove.progress", &e))?;
    Ok(row.map(|r| r.get(0)))
}

fn progress_sql(plan: &str, lsn: Lsn, txns: u64, changes: u64) -> String {
    format!(
        "INSERT INTO pgmove.progress (plan_name, applied_lsn, transactions, changes) VALUES ({p}, '{lsn}', {txns}, {changes})
         ON CONFLICT (plan_name) DO UPDATE SET applied_lsn = EXCLUDED.applied_lsn,
           transactions = pgmove.progress.transactions + EXCLUDED.transactions,
           changes = pgmove.progress.changes + EXCLUDED.changes, updated_at = now();",
        p = quote::literal(plan)
    )
}

fn val(v: &Value) -> Result<Val, String> {
    Ok(match v {
        Value::Null => Val::Null,
        Value::Unchanged => Val::Unchanged,
        Value::Text(b) => Val::Text(
            String::from_utf8(b.to_vec()).map_err(|_| "a value is not valid UTF-8".to_string())?,
        ),
        Value::Binary(_) => return Err("binary tuple data was not asked for".to_string()),
    })
}

fn vals(vs: &[Value]) -> Result<Vec<Val>, String> {
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
    changes: Vec<(u32, Change)>,
}

/// Runs until `stop` turns true (then finishes the batch in hand and returns), or fails.
pub async fn run(
    job: &CdcJob,
    mut stop: tokio::sync::watch::Receiver<bool>,
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
    // already ran them). Needs superuser (or rds_superuser); without it, say so.
    if let Err(e) = target
        .batch_execute("SET session_replication_role = replica")
        .await
    {
        tracing::warn!(
            error = %crate::pg::error_text(&e),
            "cannot set session_replication_role = replica on the target: its triggers will fire for replicated changes"
        );
    }
    let start = applied_lsn(&job.target, &job.plan_name).await?;
    let mut applied = start.unwrap_or(Lsn(0));
    let mut stream = ChangeStream::start(&job.source, &job.slot, &job.publication, applied).await?;
    tracing::info!(slot = %job.slot, from = %applied, "change capture started");

    let mut rels: HashMap<u32, pgoutput::Relation> = HashMap::new();
    let mut txn: Option<Txn> = None;
    let mut batch: Vec<String> = Vec::new();
    let mut batch_changes = 0u64;
    let mut batch_txns = 0u64;
    let mut batch_end: Option<Lsn> = None;
    let mut outcome = CdcOutcome::default();
    let mut last_idle_advance = Instant::now();
    // With exit_when_caught_up: the source's WAL position when the stream first went idle.
    let mut caught_up_goal: Option<Lsn> = None;

    loop {
        let stopping = *stop.borrow();
        let next = if stopping {
            None
        } else {
            tokio::select! {
                _ = stop.changed() => None,
                r = tokio::time::timeout(Duration::from_millis(200), stream.next()) => Some(r),
            }
        };
        let msg = match next {
            None => {
                // Stop: finish what is in hand (whole transactions only).
                if !batch.is_empty() {
                    flush(
                        job,
                        &target,
                        &mut stream,
                        &mut batch,
                        &mut batch_end,
                        &mut batch_txns,
                        &mut batch_changes,
                        &mut applied,
                        &mut outcome,
                    )
                    .await?;
                }
                break;
            }
            Some(Err(_elapsed)) => {
                if !batch.is_empty() {
                    flush(
                        job,
                        &target,
                        &mut stream,
                        &mut batch,
                        &mut batch_end,
                        &mut batch_txns,
                        &mut batch_changes,
                        &mut applied,
                        &mut outcome,
                    )
                    .await?;
                } else if txn.is_none()
                    && stream.server_wal_end() > applied
                    && (job.exit_when_caught_up
                        || last_idle_advance.elapsed() > Duration::from_secs(2))
                {
                    // Nothing of ours in flight and the server has sent everything before its
                    // WAL end: record and confirm it, so the slot does not hold WAL for other
                    // databases' or tables' traffic.
                    let end = stream.server_wal_end();
                    target
                        .batch_execute(&progress_sql(&job.plan_name, end, 0, 0))
                        .await
                        .map_err(|e| job.target.query_error("writing pgmove.progress", &e))?;
                    stream.confirm(end);
                    applied = end;
                    last_idle_advance = Instant::now();
                }
                if job.exit_when_caught_up && txn.is_none() && batch.is_empty() {
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
        match msg {
            Message::Begin(_) => {
                txn = Some(Txn {
                    changes: Vec::new(),
                })
            }
            Message::Relation(r) => {
                rels.insert(r.oid, r);
            }
            Message::Insert(i) => {
                let new = vals(&i.new).map_err(|m| CdcError::Apply {
                    lsn: applied,
                    message: m,
                })?;
                if let Some(t) = txn.as_mut() {
                    t.changes.push((
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
                    message: m,
                })?;
                let old = match &u.old {
                    Some(o) => Some(vals(o.values()).map_err(|m| CdcError::Apply {
                        lsn: applied,
                        message: m,
                    })?),
                    None => None,
                };
                if let Some(t) = txn.as_mut() {
                    t.changes.push((
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
                    message: m,
                })?;
                if let Some(t) = txn.as_mut() {
                    t.changes.push((
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
                    t.changes.push((
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
                let t = txn.take().unwrap_or(Txn {
                    changes: Vec::new(),
                });
                if c.end_lsn <= applied {
                    continue; // applied before a restart
                }
                let changes: Vec<Change> = t
                    .changes
                    .into_iter()
                    .filter(|(oid, _)| {
                        // Skip what the copy of a later snapshot already holds.
                        let key = rels
                            .get(oid)
                            .map(|r| (r.schema().to_string(), r.name.clone()));
                        match key.and_then(|k| job.table_lsns.get(&k)) {
                            Some(snap) => c.commit_lsn >= *snap,
                            None => true,
                        }
                    })
                    .map(|(_, ch)| ch)
                    .collect();
                let lookup = |oid: u32| rels.get(&oid).map(rel_of);
                let sql = apply::to_sql(&changes, &lookup).map_err(|e| CdcError::Apply {
                    lsn: c.end_lsn,
                    message: e.to_string(),
                })?;
                batch_changes += changes.len() as u64;
                batch_txns += 1;
                batch.extend(sql);
                batch_end = Some(c.end_lsn);
                if batch_changes as usize >= job.batch_changes {
                    flush(
                        job,
                        &target,
                        &mut stream,
                        &mut batch,
                        &mut batch_end,
                        &mut batch_txns,
                        &mut batch_changes,
                        &mut applied,
                        &mut outcome,
                    )
                    .await?;
                }
            }
            Message::Logical(m) => {
                tracing::debug!(prefix = %m.prefix, "logical decoding message (not applied)");
            }
            _ => {}
        }
    }
    let _ = stream.stop().await;
    outcome.applied_lsn = applied.to_string();
    Ok(outcome)
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

/// Applies the batch and its progress row in one target transaction, then confirms its LSN.
#[allow(clippy::too_many_arguments)]
async fn flush(
    job: &CdcJob,
    target: &tokio_postgres::Client,
    stream: &mut ChangeStream,
    batch: &mut Vec<String>,
    batch_end: &mut Option<Lsn>,
    batch_txns: &mut u64,
    batch_changes: &mut u64,
    applied: &mut Lsn,
    outcome: &mut CdcOutcome,
) -> Result<(), CdcError> {
    let end = match batch_end.take() {
        Some(e) => e,
        None => {
            batch.clear();
            return Ok(());
        }
    };
    let mut sql = String::from("BEGIN;\n");
    for s in batch.iter() {
        sql.push_str(s);
        sql.push('\n');
    }
    sql.push_str(&progress_sql(
        &job.plan_name,
        end,
        *batch_txns,
        *batch_changes,
    ));
    sql.push_str("COMMIT;");
    if let Err(e) = target.batch_execute(&sql).await {
        let _ = target.batch_execute("ROLLBACK").await;
        return Err(CdcError::Apply {
            lsn: end,
            message: job.target.query_error("applying changes", &e).to_string(),
        });
    }
    stream.confirm(end);
    *applied = end;
    outcome.transactions += *batch_txns;
    outcome.changes += *batch_changes;
    batch.clear();
    *batch_txns = 0;
    *batch_changes = 0;
    Ok(())
}
