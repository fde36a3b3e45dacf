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

use std::collections::HashMap;
use std::time::{Duration, Instant};

use super::applier::{Applier, Batch, Piece};
use super::convert::{always_identity, convert, vals, Txn};
use super::ddl::{self, DdlConfig, DdlPolicy};
use super::pgoutput::{self, Message, OldTuple};
use super::spool::{self, Spools};
use super::stream::{ChangeStream, StreamError, StreamOptions};
use super::{applied_lsn, CdcError, CdcJob, CdcOutcome, MemoryBudget, DDL_APPLIED_STEP};
use crate::cdc::apply::{self, Change};
use crate::pg::{quote, Lsn};

/// Run on the apply session: the target's triggers and foreign keys stay quiet.
const REPLICA_ROLE_SQL: &str = "SET session_replication_role = replica";

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
    let rows = c
        .query(
            "SELECT step FROM pgmove.steps WHERE plan_name = $1 AND left(step, length($2)) = $2",
            &[&cfg.plan_name, &DDL_APPLIED_STEP],
        )
        .await
        .map_err(|e| job.target.query_error("reading pgmove.steps", &e))?;
    for r in rows {
        let step: String = r.get(0);
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
    let mark = format!(
        "INSERT INTO pgmove.steps (plan_name, step) VALUES ({}, {});",
        quote::literal(plan),
        quote::literal(&format!("{DDL_APPLIED_STEP}{lsn}"))
    );
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
                    message: m,
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
                    message: m,
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
                                            "ALTER TYPE ... ADD VALUE on the source (at {}) shares its transaction (commit at {}) with other changes, and the target (before PostgreSQL 12) cannot run ADD VALUE inside a transaction block: run `{}` on the target yourself, then mark the message as applied (`INSERT INTO pgmove.steps (plan_name, step) VALUES ('{}', '{}{}')`) and run pgmove apply again",
                                            action.lsn,
                                            t.commit_lsn,
                                            action.statement,
                                            job.plan_name.replace('\'', "''"),
                                            DDL_APPLIED_STEP,
                                            action.lsn
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

/// The plan's publications that exist on the source: the main one, and the insert-only one
/// of `cdc.tables_without_key: insert-only` when it was created.
async fn publications(job: &CdcJob) -> Result<Vec<String>, CdcError> {
    let extra = crate::strategy::copy_cdc::insert_only_publication(&job.publication);
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

/// A new replication session from `applied`, once the previous one let the slot go (which
/// takes the server a moment).
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

/// How long the stream may be silent before the loop looks around: soon when a batch is in
/// hand (the target should not wait while changes are here) or when it is to exit once caught
/// up; else every 200 ms (idle progress, stop).
fn idle_after(job: &CdcJob, batch: &Batch) -> Duration {
    if batch.end.is_some() || job.exit_when_caught_up {
        Duration::from_millis(10)
    } else {
        Duration::from_millis(200)
    }
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
