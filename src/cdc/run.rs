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
//! is marked as applied on the target ([`crate::state::step::DDL_APPLIED_PREFIX`]).
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
use super::convert::{always_identity, convert, vals, AlwaysIdentity, Txn};
use super::ddl::{self, DdlConfig, DdlPolicy};
use super::pgoutput::{self, Message, OldTuple};
use super::sidework::{SideWork, Tick};
use super::spool::{self, Spools};
use super::stream::{ChangeStream, StreamError, StreamOptions};
use super::{applied_lsn, CdcError, CdcJob, CdcOutcome, MemoryBudget};
use crate::cdc::apply::{self, Change};
use crate::pg::{quote, Lsn};
use crate::state::step::DDL_APPLIED_PREFIX;

/// Run on the apply session: the target's triggers and foreign keys stay quiet.
const REPLICA_ROLE_SQL: &str = "SET session_replication_role = replica";

/// The apply session: the target connection with apply's settings and
/// `session_replication_role = replica`, and the target's `server_version_num`.
async fn apply_session(job: &CdcJob) -> Result<(tokio_postgres::Client, i32), CdcError> {
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
    let version = job.target.version_num(&target).await?;
    Ok((target, version))
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
        let text = step[DDL_APPLIED_PREFIX.len()..].trim();
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
/// (`Applier`); whatever happens, `run` returns only once that task is done with the
/// target transaction it had started, so a restart never races a commit of this run.
pub async fn run(
    job: &CdcJob,
    stop: tokio::sync::watch::Receiver<bool>,
) -> Result<CdcOutcome, CdcError> {
    let mut applier: Option<Applier> = None;
    let r = match ApplyLoop::start(job, stop, &mut applier).await {
        Ok(l) => l.run().await,
        Err(e) => Err(e),
    };
    if let Some(a) = applier {
        a.shutdown().await;
    }
    r
}

/// What the stream gave the loop next.
enum Next {
    /// A message (from the server, or replayed from the spool).
    Message(Message),
    /// Nothing for a while ([`idle_after`]).
    Idle,
    /// `stop` turned true.
    Stop,
    /// The server ended the stream.
    End,
}

/// A message [`ApplyLoop::unspool`] looked at.
enum Unspooled {
    /// Not part of a stream block: for [`ApplyLoop::receive`].
    Message(Message),
    /// Taken by the spool (or a Stream Start/Stop/Commit).
    Spooled,
    /// A subtransaction holding DDL rolled back in a streamed transaction: start over
    /// without streaming ([`ApplyLoop::restart_without_streaming`]).
    RestartWithoutStreaming,
}

/// What the loop does after a message.
enum Flow {
    Go,
    /// End the stream cleanly (the slot learns what the target committed), then fail.
    StopAndFail(CdcError),
}

/// One run of change capture on one target session: the replication stream, what is being
/// received (the transaction in hand, the spooled streamed ones, the batch for the target),
/// and what the target has committed so far.
struct ApplyLoop<'a> {
    job: &'a CdcJob,
    stop: tokio::sync::watch::Receiver<bool>,
    /// The apply task ([`run`] shuts it down, whatever happens here).
    applier: &'a mut Applier,
    stream: ChangeStream,
    stream_opts: StreamOptions,
    /// `ALTER TYPE ... ADD VALUE` runs in a transaction block from PostgreSQL 12 on only.
    target_version: i32,
    /// `None`: DDL messages are skipped.
    ddl_cfg: Option<DdlConfig>,
    budget: MemoryBudget,
    /// The relation cache: Relation messages by oid.
    rels: HashMap<u32, pgoutput::Relation>,
    always: AlwaysIdentity,
    /// The source transaction being received.
    txn: Option<Txn>,
    /// Streamed transactions (protocol 2): spooled until their Stream Commit, then replayed
    /// through this loop as ordinary transactions ([`spool`]).
    spools: Spools,
    replay: Option<spool::Replay>,
    /// Whole source transactions not yet handed to the applier.
    batch: Batch,
    /// End LSN of the last source transaction the target committed (and the slot confirmed).
    applied: Lsn,
    outcome: CdcOutcome,
    last_idle_advance: Instant,
    /// With exit_when_caught_up: the source's WAL position when the stream first went idle.
    caught_up_goal: Option<Lsn>,
    /// The catch-up rate: source WAL bytes applied per second ([`ApplyLoop::side_work`]).
    catch_up: crate::rate::Window,
    /// When the next lag sample is due ([`ApplyLoop::side_work`]).
    lag_samples: crate::rate::Window,
    /// The catch-up log line and the lag samples, written by a task of their own.
    side: SideWork,
}

/// How often the catch-up rate is measured and logged while behind the source.
const CATCH_UP_LOG_EVERY: Duration = Duration::from_secs(10);

/// How often the lag is recorded for `pgmove report` while changes flow.
const LAG_SAMPLE_EVERY: Duration = Duration::from_secs(10);

/// [`LAG_SAMPLE_EVERY`]; every second under the test hook `lag-samples-every-second` (a test
/// cannot wait for minutes of samples).
fn lag_sample_every() -> Duration {
    if crate::testhook::forced("lag-samples-every-second") {
        Duration::from_secs(1)
    } else {
        LAG_SAMPLE_EVERY
    }
}

impl<'a> ApplyLoop<'a> {
    /// Sets up the apply session and the apply task (in `applier_slot`), reads where the
    /// target is, and opens the stream from there.
    async fn start(
        job: &'a CdcJob,
        stop: tokio::sync::watch::Receiver<bool>,
        applier_slot: &'a mut Option<Applier>,
    ) -> Result<ApplyLoop<'a>, CdcError> {
        // What the stream and the loop need, read at once (each on a connection of its own:
        // none depends on another). A failure is told in this order, as when they were read
        // one after the other: the apply session's first (a role that cannot silence the
        // target's triggers is refused with its fix, whatever else fails).
        let (session, start, ddl_cfg, wal_sender_timeout, pubs, always) = tokio::join!(
            apply_session(job),
            applied_lsn(&job.target, &job.plan_name),
            ddl_config(job),
            wal_sender_timeout_ms(&job.source),
            publications(job),
            always_identity(job),
        );
        let (target, target_version) = session?;
        let start = start?;
        let ddl_cfg = ddl_cfg?;
        let pubs = pubs?;
        let always = always?;
        // Changes to different tables commute only when no trigger or foreign key fires.
        let applier = applier_slot.insert(Applier::start(job, target, true));
        let applied = start.unwrap_or(Lsn(0));
        let stream_opts = StreamOptions {
            // What the target committed reaches the slot soon, and `stop` (which waits for
            // the last confirmed LSN to be reported) does not wait up to a second for it.
            status_interval: Duration::from_millis(100),
            stall_timeout: crate::cdc::stream::stall_timeout_for(wal_sender_timeout),
            ..StreamOptions::default()
        };
        let pubs: Vec<&str> = pubs.iter().map(String::as_str).collect();
        let stream =
            ChangeStream::start_with(&job.source, &job.slot, &pubs, applied, &stream_opts).await?;
        tracing::info!(slot = %job.slot, from = %applied, "change capture started");

        let budget = MemoryBudget::of(job.memory_limit);
        let mut spools = Spools::new(budget.spool);
        spools.watch(ddl_cfg.as_ref().map(|c| ddl::prefix(&c.plan_name)));
        Ok(ApplyLoop {
            job,
            stop,
            applier,
            stream,
            stream_opts,
            target_version,
            ddl_cfg,
            budget,
            rels: HashMap::new(),
            always,
            txn: None,
            spools,
            replay: None,
            batch: Batch::default(),
            applied,
            outcome: CdcOutcome::default(),
            last_idle_advance: Instant::now(),
            caught_up_goal: None,
            catch_up: crate::rate::Window::new(CATCH_UP_LOG_EVERY),
            lag_samples: crate::rate::Window::new(lag_sample_every()),
            side: SideWork::start(
                job.source.clone(),
                job.target.clone(),
                job.plan_name.clone(),
            ),
        })
    }

    /// Receives and applies until stopped, caught up (with `exit_when_caught_up`), the end of
    /// the stream, or a failure.
    async fn run(mut self) -> Result<CdcOutcome, CdcError> {
        loop {
            let msg = match self.next().await? {
                Next::Message(m) => m,
                Next::Stop => {
                    // Stop: finish what is in hand (whole transactions only).
                    self.flush(true).await?;
                    break;
                }
                Next::Idle => {
                    if self.idle().await? {
                        break;
                    }
                    continue;
                }
                Next::End => break,
            };
            let msg = match self.unspool(msg)? {
                Unspooled::Message(m) => m,
                Unspooled::Spooled => continue,
                Unspooled::RestartWithoutStreaming => {
                    self = self.restart_without_streaming().await?;
                    continue;
                }
            };
            tracing::trace!(kind = msg.kind(), applied = %self.applied, "pgoutput message");
            if let Flow::StopAndFail(e) = self.receive(msg).await? {
                let _ = self.stream.stop().await;
                return Err(e);
            }
            self.send_large_transaction().await?;
        }
        self.finish().await
    }

    /// The next message: a committed streamed transaction's from the spool first, else the
    /// stream's, unless `stop` turned true or the stream stays silent for [`idle_after`].
    async fn next(&mut self) -> Result<Next, CdcError> {
        let replayed = match self.replay.as_mut() {
            Some(r) => r.next_message().map_err(|e| spool_error(e, self.applied))?,
            None => None,
        };
        if let Some(m) = replayed {
            return Ok(Next::Message(m));
        }
        self.replay = None;
        if *self.stop.borrow() {
            return Ok(Next::Stop);
        }
        let idle = idle_after(self.job, &self.batch);
        let next = tokio::select! {
            _ = self.stop.changed() => None,
            r = tokio::time::timeout(idle, self.stream.next()) => Some(r),
        };
        Ok(match next {
            None => Next::Stop,
            Some(Err(_elapsed)) => Next::Idle,
            Some(Ok(r)) => match r? {
                Some((_, m)) => Next::Message(m),
                None => Next::End,
            },
        })
    }

    /// The stream is silent: confirms the server's WAL end when nothing of ours is half
    /// received, hands over the batch in hand; true once caught up (`exit_when_caught_up`).
    async fn idle(&mut self) -> Result<bool, CdcError> {
        let had_batch = self.batch.end.is_some();
        let end = self.stream.server_wal_end();
        if self.txn.is_none()
            && self.spools.is_empty()
            && end > self.applier.queued.max(self.applied)
            && self.batch.end.is_none_or(|e| end > e)
            && (self.batch.end.is_some()
                || self.job.exit_when_caught_up
                || self.last_idle_advance.elapsed() > Duration::from_secs(2))
        {
            // No transaction of ours half received (nor a streamed one open) and the server
            // has sent everything before its WAL end: record and confirm that (with the batch
            // in hand, if any), so the slot does not hold WAL for other databases' or tables'
            // traffic.
            self.batch.end = Some(end);
            self.last_idle_advance = Instant::now();
        }
        // Caught up? Once nothing is left to hand over: wait for what was, then compare.
        let caught_up_check = self.job.exit_when_caught_up && self.txn.is_none() && !had_batch;
        self.flush(caught_up_check).await?;
        if caught_up_check {
            // The goal: the source's WAL position at the first check (read once).
            let goal = match self.caught_up_goal {
                Some(goal) => goal,
                None => *self.caught_up_goal.insert(current_wal_lsn(self.job).await?),
            };
            if self.applied >= goal {
                tracing::info!(applied = %self.applied, "caught up with the source");
                return Ok(true);
            }
        }
        Ok(false)
    }

    /// Streamed transactions: their messages wait in the spool until Stream Commit, then come
    /// back through [`ApplyLoop::next`] as Begin, messages, Commit. Nothing of them is applied
    /// or confirmed before; one aborted, or not committed before a restart, leaves no trace.
    fn unspool(&mut self, msg: Message) -> Result<Unspooled, CdcError> {
        let applied = self.applied;
        match msg {
            Message::StreamStart(s) => {
                self.spools
                    .start(s.xid, s.first_segment)
                    .map_err(|e| spool_error(e, applied))?;
            }
            Message::StreamStop => self.spools.stop(),
            Message::StreamAbort(a) => {
                if self.spools.abort(a.xid, a.subxid) {
                    // pgoutput sends a streamed message with the top-level xid: whether the
                    // DDL message belonged to the subtransaction that rolled back is unknown.
                    // Start over without streaming: the server then sends that transaction
                    // whole at its commit, without what rolled back.
                    tracing::warn!(
                        xid = a.xid,
                        subxid = a.subxid,
                        "a subtransaction rolled back in a streamed transaction holding DDL: resuming without streaming of in-progress transactions"
                    );
                    return Ok(Unspooled::RestartWithoutStreaming);
                }
            }
            Message::StreamCommit(c) => {
                self.replay = Some(
                    self.spools
                        .commit(&c)
                        .map_err(|e| spool_error(e, applied))?,
                );
            }
            m if self.spools.block().is_some() => {
                let raw = match (&m, self.stream.last_raw()) {
                    (Message::Begin(_) | Message::Commit(_), _) | (_, None) => None,
                    (_, Some((lsn, raw))) => Some((*lsn, raw.clone())),
                };
                let Some((lsn, raw)) = raw else {
                    return Err(CdcError::Apply {
                        lsn: applied,
                        message: format!("{} inside a stream block", m.kind()),
                    });
                };
                self.spools
                    .push(lsn, &m, raw)
                    .map_err(|e| spool_error(e, applied))?;
            }
            m => return Ok(Unspooled::Message(m)),
        }
        Ok(Unspooled::Spooled)
    }

    /// Applies what is in hand, then opens a new session without streaming of in-progress
    /// transactions, from what the target applied.
    async fn restart_without_streaming(mut self) -> Result<ApplyLoop<'a>, CdcError> {
        self.flush(true).await?;
        let _ = self.stream.stop().await;
        self.stream_opts.streaming = false;
        self.stream = restart_stream(self.job, self.applied, &self.stream_opts).await?;
        self.spools = Spools::new(self.budget.spool);
        self.txn = None;
        self.replay = None;
        Ok(self)
    }

    /// One message of an ordinary (or replayed) transaction.
    async fn receive(&mut self, msg: Message) -> Result<Flow, CdcError> {
        match msg {
            Message::Begin(b) => {
                self.txn = Some(Txn {
                    commit_lsn: b.final_lsn,
                    // Applied before a restart (the server normally skips those itself).
                    skip: b.final_lsn < self.applied,
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
                if self.rels.contains_key(&r.oid) {
                    if let Some(t) = self.txn.as_mut() {
                        convert(self.job, &self.rels, &self.always, t)?;
                    }
                }
                self.rels.insert(r.oid, r);
            }
            Message::Insert(i) => {
                let new = self.values(&i.new)?;
                self.push(
                    i.relation,
                    Change::Insert {
                        rel: i.relation,
                        new,
                    },
                );
            }
            Message::Update(u) => {
                let new = self.values(&u.new)?;
                let old = match &u.old {
                    Some(o) => Some(self.values(o.values())?),
                    None => None,
                };
                let rel = u.relation;
                self.push(rel, Change::Update { rel, old, new });
            }
            Message::Delete(d) => {
                let old = match &d.old {
                    OldTuple::Key(v) | OldTuple::Full(v) => self.values(v)?,
                };
                self.push(
                    d.relation,
                    Change::Delete {
                        rel: d.relation,
                        old,
                    },
                );
            }
            Message::Truncate(tr) => {
                let first = tr.relations.first().copied().unwrap_or(0);
                self.push(
                    first,
                    Change::Truncate {
                        rels: tr.relations,
                        cascade: tr.cascade,
                        restart_identity: tr.restart_identity,
                    },
                );
            }
            Message::Commit(c) => self.commit(c.end_lsn).await?,
            Message::Logical(m) => return self.logical(m).await,
            _ => {}
        }
        Ok(Flow::Go)
    }

    /// A tuple's values as the applier's.
    fn values(&self, vs: &[pgoutput::Value]) -> Result<Vec<apply::Val>, CdcError> {
        vals(vs).map_err(|e| CdcError::Apply {
            lsn: self.applied,
            message: e.to_string(),
        })
    }

    /// A change of the transaction in hand (none outside a transaction).
    fn push(&mut self, rel: u32, change: Change) {
        if let Some(t) = self.txn.as_mut() {
            t.push((rel, change));
        }
    }

    /// The transaction in hand committed at `end_lsn`: into the batch (handed over when full),
    /// or its last piece, or its `ADD VALUE` on its own.
    async fn commit(&mut self, end_lsn: Lsn) -> Result<(), CdcError> {
        let Some(mut t) = self.txn.take() else {
            return Ok(());
        };
        if t.skip {
            return Ok(()); // applied before a restart
        }
        if end_lsn <= self.applied {
            if t.open {
                // Begin said it was not applied yet (its commit LSN is past the progress
                // row), so this cannot happen; its pieces are rolled back.
                return Err(CdcError::Apply {
                    lsn: end_lsn,
                    message: format!("the transaction applied in pieces ends at {end_lsn}, at or before the progress row ({}): stopping before committing it twice", self.applied),
                });
            }
            return Ok(()); // applied before a restart
        }
        convert(self.job, &self.rels, &self.always, &mut t)?;
        if t.open {
            // Its last piece commits its target transaction, with the progress row.
            let last = Batch {
                items: t.sql,
                end: Some(end_lsn),
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
            return self.hand_over(last).await;
        }
        if let Some(statements) = t.autocommit.take() {
            if !t.sql.is_empty() {
                return Err(CdcError::Ddl {
                    lsn: end_lsn,
                    message: format!(
                        "the source transaction committed at {} holds changes after ALTER TYPE ... ADD VALUE, which the target (before PostgreSQL 12) can only run outside a transaction block: apply that transaction on the target yourself, mark its ADD VALUE message as applied ({DDL_APPLIED_PREFIX}<LSN>) and run pgmove apply again",
                        t.commit_lsn
                    ),
                });
            }
            // ADD VALUE on a target before PostgreSQL 12: the transactions in hand first, then
            // the statement on its own, then its progress row.
            self.flush(false).await?;
            let alone = Batch {
                end: Some(end_lsn),
                txns: 1,
                changes: t.changes,
                commit_after: true,
                autocommit: Some(statements),
                ..Batch::default()
            };
            return self.hand_over(alone).await;
        }
        let batch = &mut self.batch;
        batch.changes += t.changes;
        batch.txns += 1;
        batch.bytes += t.bytes;
        batch.items.extend(t.sql);
        batch.end = Some(end_lsn);
        // After ADD VALUE the target transaction commits before the next source transaction,
        // which may use the new value.
        batch.commit_after |= t.commit_after;
        if batch.commit_after
            || batch.changes as usize >= self.job.batch_changes
            || batch.bytes >= self.budget.piece
        {
            self.flush(false).await?;
        }
        Ok(())
    }

    /// A logical decoding message: the plan's DDL is turned into SQL at its place in the
    /// transaction, or stops the loop before that transaction (see the module documentation).
    async fn logical(&mut self, m: pgoutput::LogicalMessage) -> Result<Flow, CdcError> {
        let cfg = match &self.ddl_cfg {
            Some(cfg) if m.prefix == ddl::prefix(&cfg.plan_name) => cfg,
            _ => {
                tracing::debug!(prefix = %m.prefix, "logical decoding message (not applied)");
                return Ok(Flow::Go);
            }
        };
        let t = match self.txn.as_mut() {
            Some(t) if m.transactional => t,
            _ => {
                // The trigger writes only transactional messages; anyone can call
                // pg_logical_emit_message, so this one is not from it.
                tracing::warn!(lsn = %m.lsn, prefix = %m.prefix, "non-transactional message with pgmove's DDL prefix: not written by pgmove's trigger, ignored");
                return Ok(Flow::Go);
            }
        };
        if t.skip {
            return Ok(Flow::Go);
        }
        let action = match ddl::handle(&m, cfg) {
            Ok(None) => {
                tracing::debug!(lsn = %m.lsn, "DDL message skipped (excluded tables, or applied by hand)");
                return Ok(Flow::Go);
            }
            Ok(Some(action)) => action,
            Err(e) => {
                let commit_lsn = t.commit_lsn;
                // Whole transactions before this one: applied and confirmed; this one is not,
                // so the slot keeps it and a rerun stops here again.
                self.flush(true).await?;
                let message =
                    ddl_stop_message(&e, &self.job.plan_name, m.lsn, commit_lsn, self.applied);
                return Ok(Flow::StopAndFail(CdcError::Ddl {
                    lsn: m.lsn,
                    message,
                }));
            }
        };
        // The changes before the statement, with the relations before it.
        convert(self.job, &self.rels, &self.always, t)?;
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
                if self.target_version < 120000
                    || crate::testhook::forced("add-value-autocommit") =>
            {
                convert(self.job, &self.rels, &self.always, t)?;
                if t.open || !t.sql.is_empty() || t.autocommit.is_some() {
                    return Err(CdcError::Ddl {
                        lsn: action.lsn,
                        message: format!(
                            "ALTER TYPE ... ADD VALUE on the source (at {}) shares its transaction (commit at {}) with other changes, and the target (before PostgreSQL 12) cannot run ADD VALUE inside a transaction block: run `{}` on the target yourself, then mark the message as applied (`{}`) and run pgmove apply again",
                            action.lsn,
                            t.commit_lsn,
                            action.statement,
                            crate::state::steps::mark_ddl_applied_sql(
                                &self.job.plan_name,
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
        Ok(Flow::Go)
    }

    /// A transaction larger than a piece goes to the target piece by piece, all in one target
    /// transaction, so its size never counts ([`MemoryBudget`]).
    async fn send_large_transaction(&mut self) -> Result<(), CdcError> {
        let Some(t) = self.txn.as_mut() else {
            return Ok(());
        };
        if t.bytes < self.budget.piece {
            return Ok(());
        }
        if t.skip {
            t.pending.clear();
            t.bytes = 0;
            return Ok(());
        }
        convert(self.job, &self.rels, &self.always, t)?;
        let first = !t.open;
        if first {
            // The whole transactions in hand go first, in a target transaction of their own.
            self.flush(false).await?;
        }
        let Some(t) = self.txn.as_mut() else {
            return Ok(());
        };
        if first {
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
                first,
                last: false,
            }),
            ..Batch::default()
        };
        t.open = true;
        t.bytes = 0;
        self.hand_over(piece).await
    }

    /// Hands `b` to the apply task now, and records what the target committed meanwhile.
    async fn hand_over(&mut self, b: Batch) -> Result<(), CdcError> {
        self.applier
            .send(b, &mut self.stream, &mut self.applied, &mut self.outcome)
            .await?;
        self.applier
            .poll(&mut self.stream, &mut self.applied, &mut self.outcome)
    }

    /// Hands the batch in hand (if any) to the apply task, which commits it with its progress
    /// row in one target transaction; records (and confirms to the source) what the target
    /// committed meanwhile. With `wait`: returns once everything handed over is committed and
    /// confirmed.
    async fn flush(&mut self, wait: bool) -> Result<(), CdcError> {
        let b = std::mem::take(&mut self.batch);
        if b.end.is_some() {
            self.applier
                .send(b, &mut self.stream, &mut self.applied, &mut self.outcome)
                .await?;
        }
        let r = if wait {
            self.applier
                .wait(&mut self.stream, &mut self.applied, &mut self.outcome)
                .await
        } else {
            self.applier
                .poll(&mut self.stream, &mut self.applied, &mut self.outcome)
        };
        self.side_work();
        r
    }

    /// Every [`CATCH_UP_LOG_EVERY`] while behind the source: a log line with the lag (to the
    /// source's WAL position, read within 2 s, else to the end the stream reported), the
    /// catch-up rate (source WAL bytes applied per second) and the time to catch up at it.
    /// Every [`LAG_SAMPLE_EVERY`] while changes flow: a lag sample (`pgmove.lag_samples`, for
    /// `pgmove report`): the source's WAL position and what the target applied. Both from one
    /// reading of the source's WAL position, by the side-work task ([`SideWork`]): nothing here
    /// waits for a server, and best effort (a sample missed is a gap in a chart).
    fn side_work(&mut self) {
        let now = Instant::now();
        let log = self
            .catch_up
            .note(now, self.applied.0)
            .then(|| self.catch_up.rate());
        let sample = self.lag_samples.note(now, self.applied.0);
        if log.is_some() || sample {
            self.side.tick(Tick {
                applied: self.applied,
                stream_end: self.stream.server_wal_end(),
                log,
                sample,
            });
        }
    }

    /// What was handed over is committed (or failed) before the outcome is told.
    async fn finish(mut self) -> Result<CdcOutcome, CdcError> {
        self.applier
            .wait(&mut self.stream, &mut self.applied, &mut self.outcome)
            .await?;
        let _ = self.stream.stop().await;
        self.outcome.applied_lsn = self.applied.to_string();
        Ok(self.outcome)
    }
}

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
        .query_one(super::sidework::CURRENT_WAL_LSN_SQL, &[])
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
