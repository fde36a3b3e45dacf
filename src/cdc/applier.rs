//! The apply task: batches of whole source transactions (and pieces of large ones) applied to
//! the target in order, each target transaction with its progress row, while the loop receives
//! the next ones; what the target committed goes back to the loop, in order.
//!
//! One target session applies everything, on purpose: exactly-once rests on the progress row
//! being committed in the same target transaction as the changes it counts, so after `kill -9`
//! the target holds every source transaction up to that row and none after it. Independent
//! tables' changes on parallel sessions would each need their own progress row and a commit
//! barrier to keep commit order at the progress row; the measurements (README, Benchmarks) put
//! the limit elsewhere (the source's decoding, pgmove's start), so it is not done.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::mpsc;

use super::apply;
use super::stream::ChangeStream;
use super::{CdcError, CdcJob, CdcOutcome, MemoryBudget};
use crate::pg::{Endpoint, Lsn, PgError};

/// The progress row of the plan: `lsn` applied, with the transactions and changes it adds.
fn progress_sql(plan: &str, lsn: Lsn, txns: u64, changes: u64) -> String {
    crate::state::progress::save_sql(plan, lsn, txns, changes)
}

/// Whole source transactions for one target transaction.
#[derive(Debug, Default)]
pub(super) struct Batch {
    pub(super) items: Vec<apply::Item>,
    /// End LSN of its last transaction, or a later one the server said it sent everything
    /// before; `None`: nothing to apply or record.
    pub(super) end: Option<Lsn>,
    pub(super) txns: u64,
    pub(super) changes: u64,
    /// Bytes of its changes ([`change_bytes`]).
    pub(super) bytes: usize,
    /// A piece of one large source transaction, applied in the target transaction its first
    /// piece begins and its last commits; `None`: whole transactions, in a target transaction
    /// of their own (maybe with other such batches).
    pub(super) piece: Option<Piece>,
    /// Its target transaction takes no later batch: it holds `ALTER TYPE ... ADD VALUE`,
    /// whose new value the next source transactions may use.
    pub(super) commit_after: bool,
    /// `ALTER TYPE ... ADD VALUE` on a target before PostgreSQL 12: these statements, each
    /// on its own (no transaction block), then the progress row; `items` is empty.
    pub(super) autocommit: Option<Vec<String>>,
}

/// Where a piece of a large transaction goes in its target transaction.
#[derive(Clone, Copy, Debug)]
pub(super) struct Piece {
    /// The source transaction's commit LSN (for messages).
    pub(super) commit_lsn: Lsn,
    /// Begins the target transaction.
    pub(super) first: bool,
    /// Commits it, with the progress row (the batch's `end`).
    pub(super) last: bool,
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
pub(super) const QUEUED_BATCHES: usize = 2;

/// The apply task and its channels: batches go in, in order; what the target committed comes
/// back, in order, and is confirmed to the source only then.
pub(super) struct Applier {
    tx: Option<mpsc::Sender<Batch>>,
    done: mpsc::UnboundedReceiver<Result<Done, CdcError>>,
    task: Option<tokio::task::JoinHandle<()>>,
    /// Tells the task to start no other batch.
    halt: Arc<AtomicBool>,
    /// End LSN of the last batch handed over.
    pub(super) queued: Lsn,
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
    pub(super) fn start(
        job: &CdcJob,
        client: tokio_postgres::Client,
        reorder_tables: bool,
    ) -> Applier {
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
            touched: super::touched::Recorder::new(&job.plan_name),
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
    pub(super) fn poll(
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
    pub(super) async fn wait(
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
    pub(super) async fn send(
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
    pub(super) async fn shutdown(mut self) {
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
    /// Records the keys touched while cutover pre-verifies (read when a transaction begins).
    touched: super::touched::Recorder,
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
            let r = match p.first {
                true => ctx.touched.refresh(&ctx.client, &ctx.target).await,
                false => Ok(()),
            };
            let r = match r {
                Ok(()) => apply_piece(&ctx, &b, p).await,
                Err(e) => Err(e),
            };
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
        let r = watched_commit(&ctx, &b, end).await;
        let r = r.map(|()| Done {
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
        Ok(mut f) => {
            f.push(ctx.touched.sql(b));
            f
        }
        Err(e) => {
            let _ = ctx.client.batch_execute("ROLLBACK").await;
            return Err(e);
        }
    };
    let e = match run_piece(
        ctx,
        apply::has_full_checks(&fast),
        |end| piece_sql(p.first, true, &fast, end),
        progress.as_deref(),
    )
    .await
    {
        Ok(()) => return Ok(()),
        // A `REPLICA IDENTITY FULL` change that matched no row: change by change it would
        // match none either (those changes are never merged).
        Err(Refused::Miss(m)) => {
            let _ = ctx.client.batch_execute("ROLLBACK").await;
            return Err(Refused::Miss(m).into_error(ctx, lsn));
        }
        Err(Refused::Server(e)) => e,
    };
    let plain = match apply::plain_sql(&b.items).map(|mut p| {
        p.push(ctx.touched.sql(b));
        p
    }) {
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
    let retry = |end: Option<&str>| {
        format!("ROLLBACK TO SAVEPOINT {PIECE_SAVEPOINT};\n")
            + &piece_sql(false, false, &plain, end)
    };
    if let Err(e) = run_piece(
        ctx,
        apply::has_full_checks(&plain),
        retry,
        progress.as_deref(),
    )
    .await
    {
        let _ = ctx.client.batch_execute("ROLLBACK").await;
        return Err(e.into_error(ctx, lsn));
    }
    Ok(())
}

/// Runs a piece's SQL (`sql(end)`: with `end`, the progress row and `COMMIT` close it): as one
/// simple query, or, when `checked` ([`apply::has_full_checks`]), without its end first, read
/// ([`run_checked`]), then the end.
async fn run_piece(
    ctx: &ApplyCtx,
    checked: bool,
    sql: impl Fn(Option<&str>) -> String,
    progress: Option<&str>,
) -> Result<(), Refused> {
    if !checked {
        return ctx
            .client
            .batch_execute(&sql(progress))
            .await
            .map_err(Refused::Server);
    }
    run_checked(ctx, &sql(None)).await?;
    if let Some(progress) = progress {
        ctx.client
            .batch_execute(&format!("{progress}COMMIT;"))
            .await
            .map_err(Refused::Server)?;
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
    // The read of cutover's request (whether to record touched keys) is a target round trip
    // too: a target that hangs there is noticed like one that hangs in the commit.
    let commit = async {
        ctx.touched.refresh(&ctx.client, &ctx.target).await?;
        commit_batch(ctx, b, end).await
    };
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

/// `BEGIN; statements; progress row;` and, with `commit`, `COMMIT;`, as one simple query.
fn transaction_sql(statements: &[String], progress: &str, commit: bool) -> String {
    let mut sql = String::with_capacity(
        statements.iter().map(|s| s.len() + 1).sum::<usize>() + progress.len() + 16,
    );
    sql.push_str("BEGIN;\n");
    for s in statements {
        sql.push_str(s);
        sql.push('\n');
    }
    sql.push_str(progress);
    if commit {
        sql.push_str("COMMIT;");
    }
    sql
}

/// Why the target did not take a batch's statements.
enum Refused {
    /// The server's error (or a broken session).
    Server(tokio_postgres::Error),
    /// A `REPLICA IDENTITY FULL` change matched no row: the server's message for it.
    Miss(String),
}

impl Refused {
    /// Whether the batch may be tried again change by change: the server refused it.
    fn retry(&self) -> bool {
        match self {
            Refused::Server(e) => e.as_db_error().is_some(),
            Refused::Miss(_) => true,
        }
    }

    fn into_error(self, ctx: &ApplyCtx, lsn: Lsn) -> CdcError {
        CdcError::Applying {
            lsn,
            source: match self {
                Refused::Server(e) => ctx.target.query_error("applying changes", &e),
                Refused::Miss(m) => PgError::Query {
                    side: crate::pg::Side::Target,
                    message: format!("applying changes: {m}"),
                },
            },
        }
    }
}

/// The first `REPLICA IDENTITY FULL` change among `messages` that matched no row, as the
/// server would word its error (see [`apply::has_full_checks`]).
fn full_miss(messages: &[tokio_postgres::SimpleQueryMessage]) -> Option<String> {
    messages.iter().find_map(|m| match m {
        tokio_postgres::SimpleQueryMessage::Row(r) => {
            let message = r.get(0).filter(|t| t.starts_with(apply::FULL_MISS))?;
            let mut s = format!("ERROR: {message}");
            if let Some(d) = r.get(1) {
                s.push_str(&format!(" (detail: {d})"));
            }
            if let Some(h) = r.get(2) {
                s.push_str(&format!(" (hint: {h})"));
            }
            Some(s)
        }
        _ => None,
    })
}

/// Runs `sql` (the target transaction open, its end not in it) and reads what its
/// `REPLICA IDENTITY FULL` statements returned.
async fn run_checked(ctx: &ApplyCtx, sql: &str) -> Result<(), Refused> {
    let messages = ctx
        .client
        .simple_query(sql)
        .await
        .map_err(Refused::Server)?;
    match full_miss(&messages) {
        Some(m) => Err(Refused::Miss(m)),
        None => Ok(()),
    }
}

/// Runs the statements and the progress row in one target transaction and commits it: as one
/// simple query, or, when a `REPLICA IDENTITY FULL` change must be seen to match its row
/// ([`apply::has_full_checks`]), all but the `COMMIT` first, read, then the `COMMIT`.
async fn run_transaction(
    ctx: &ApplyCtx,
    statements: &[String],
    progress: &str,
) -> Result<(), Refused> {
    if !apply::has_full_checks(statements) {
        return ctx
            .client
            .batch_execute(&transaction_sql(statements, progress, true))
            .await
            .map_err(Refused::Server);
    }
    run_checked(ctx, &transaction_sql(statements, progress, false)).await?;
    ctx.client
        .batch_execute("COMMIT")
        .await
        .map_err(Refused::Server)
}

/// Applies the batch and its progress row in one target transaction. Merged statements
/// ([`apply::batch_sql`]) first; if the server refuses them, the batch again change by
/// change ([`apply::plain_sql`]), whose result is the reference.
async fn commit_batch(ctx: &ApplyCtx, b: &Batch, end: Lsn) -> Result<(), CdcError> {
    let progress = progress_sql(&ctx.plan_name, end, b.txns, b.changes) + &ctx.touched.sql(b);
    let fast = apply::batch_sql(&b.items, ctx.reorder_tables).map_err(|e| CdcError::Apply {
        lsn: end,
        message: e.to_string(),
    })?;
    let e = match run_transaction(ctx, &fast, &progress).await {
        Ok(()) => return Ok(()),
        Err(e) => e,
    };
    let _ = ctx.client.batch_execute("ROLLBACK").await;
    // Only the server's refusal is worth another try; a broken session is not.
    if !e.retry() {
        return Err(e.into_error(ctx, end));
    }
    let plain = apply::plain_sql(&b.items).map_err(|e| CdcError::Apply {
        lsn: end,
        message: e.to_string(),
    })?;
    if plain == fast {
        return Err(e.into_error(ctx, end));
    }
    if let Refused::Server(e) = &e {
        tracing::debug!(
            error = %crate::pg::error_text(e),
            %end,
            "the merged statements of a batch failed; applying it change by change"
        );
    }
    if let Err(e) = run_transaction(ctx, &plain, &progress).await {
        let _ = ctx.client.batch_execute("ROLLBACK").await;
        return Err(e.into_error(ctx, end));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

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
