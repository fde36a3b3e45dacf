//! Strategy copy-cdc, the full load: a logical replication slot created with an exported
//! snapshot, then every table copied in parallel inside that snapshot, so the later change
//! capture starts exactly where the copy ends.
//!
//! Steps ([`STEPS`], each recorded in `pgmove.steps` under its name when it finishes; see
//! [`crate::strategy::steps`]; the schema step is `dump` then `pre-data`), each resumable:
//! 1. **slot**: `CREATE_REPLICATION_SLOT ... LOGICAL pgoutput (SNAPSHOT 'export')`; its
//!    consistent LSN is recorded with every chunk copied in its snapshot. The replication
//!    connection stays open and idle until the copy ends, so the snapshot stays importable.
//! 2. **schema**: `pg_dump --schema-only --snapshot=<exported>`, so the schema is the one of
//!    the slot's snapshot (DDL before it is in the dump, DDL after it in the stream); pre-data
//!    restored in one transaction (the dump-restore machinery), extensions first; partitioned
//!    parents and leaves created.
//! 3. **copy**: `jobs` workers; tables larger than `split_tables_larger_than` split into ctid
//!    block ranges (TID range scans); bytes streamed from `COPY ... TO STDOUT` into
//!    `COPY ... FROM STDIN` without parsing rows (binary when every column is a built-in type,
//!    text otherwise, since binary arrays and composites carry type OIDs that differ between
//!    servers). Each chunk commits on the target together with its `pgmove.copy_progress` row.
//! 4. **sequences** and **large objects**, then **post-data** (indexes by `index_jobs`
//!    workers, constraints, triggers) and `VACUUM ANALYZE` (**analyze**); then **loaded**, with
//!    the slot's consistent LSN, from which change capture starts.
//!
//! Resume: a chunk is either committed with its progress row or absent. The exported snapshot
//! dies with the process, so a rerun takes a fresh snapshot (from a temporary slot; the
//! permanent slot and its LSN stay) for the tables still to copy. A split table a run stopped
//! in the middle of keeps its done chunks when each is unchanged between its snapshot and the
//! new one (same relfilenode, same row count in its block range, no row written since: see
//! `SnapshotCheck`); they then belong to the new snapshot and only the missing chunks are
//! copied, in the block ranges recorded. Otherwise (or on a source before PostgreSQL 13) its
//! chunks are removed and it is copied again whole. Every table's rows carry the LSN of the
//! snapshot they were read in (`copy_progress.snapshot_lsn`; a resumed table's, the new one),
//! so change capture applies to each table only the changes committed after its own snapshot.

mod binary;
mod indexes;
mod steps;

pub use self::steps::{plan_steps, STEPS};

use self::indexes::{index_entries_by_table, IndexBuilder, SMALL_TABLE_BYTES};

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use futures_util::{SinkExt, StreamExt};

use crate::cdc::ddl;
use crate::cdc::slot::{self, ExportedSlot};
use crate::inspect::{self, Inventory, RelName, Table, TableKind};
use crate::matviews::refresh_populated_matviews;
use crate::owned;
use crate::pg::{quote, Endpoint, Lsn, PgError};
use crate::plan;
use crate::progress::Progress;
use crate::replica_identity::identity_clause;
use crate::state::State;
use crate::strategy::dump_restore::{self, DumpRestoreError, Restorer};
use crate::strategy::steps as step_name;
use crate::tools;
use crate::versions::{partition_publishing, PartitionPublishing};

/// The name recorded in `pgmove.runs.strategy`.
pub const STRATEGY: &str = "copy-cdc";

/// Heap block size, for ctid ranges.
const BLOCK: i64 = 8192;

#[derive(Debug, thiserror::Error)]
pub enum CopyError {
    #[error(transparent)]
    Restore(#[from] DumpRestoreError),
    #[error(transparent)]
    Pg(#[from] PgError),
    #[error(transparent)]
    Slot(#[from] slot::SlotError),
    #[error(transparent)]
    Inspect(#[from] inspect::InspectError),
    #[error(transparent)]
    Tool(#[from] tools::ToolError),
    #[error("copying {table} (chunk {chunk}) failed: {message}")]
    Chunk {
        table: String,
        chunk: i32,
        message: String,
    },
}

/// What the full load needs besides the dump-restore job (which carries connections, objects,
/// jobs and the dump directory for the schema).
#[derive(Clone, Debug)]
pub struct Job {
    pub base: dump_restore::Job,
    /// The permanent slot's name.
    pub slot: String,
    pub split_bytes: u64,
    /// Keep the slot after the load (for change capture); otherwise it is dropped.
    pub keep_slot: bool,
    /// The publication change capture streams (created before the slot).
    pub publication: String,
    /// `cdc.ddl`: unless `ignore`, the DDL event trigger goes on the source (online only).
    pub ddl: crate::plan::Ddl,
    /// `cdc.tables_without_key`: how tables without a key are published.
    pub tables_without_key: plan::TablesWithoutKey,
}

impl Job {
    /// Whether the DDL event trigger ([`crate::cdc::ddl`]) is installed on the source: for
    /// change capture (the slot is kept) when `cdc.ddl` is `replicate` or `refuse` (so the
    /// applier sees each DDL statement, to run it or to stop at it); never with `ignore`.
    pub fn installs_ddl_trigger(&self) -> bool {
        self.keep_slot && self.ddl != crate::plan::Ddl::Ignore
    }
}

/// One piece of work: a table, or a ctid block range of one.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Chunk {
    pub schema: String,
    pub table: String,
    pub columns: Vec<String>,
    pub binary: bool,
    /// 0-based, and how many the table has.
    pub index: i32,
    pub count: i32,
    /// Block range `[from, to)`; `to` none for the last chunk.
    pub blocks: Option<(i64, Option<i64>)>,
    pub est_bytes: i64,
}

impl Chunk {
    fn name(&self) -> String {
        format!("{}.{}", self.schema, self.table)
    }

    /// The source query.
    pub fn copy_out_sql(&self) -> String {
        let cols = self
            .columns
            .iter()
            .map(|c| quote::ident(c))
            .collect::<Vec<_>>()
            .join(", ");
        let filter = ctid_filter(self.blocks);
        format!(
            "COPY (SELECT {cols} FROM ONLY {}{filter}) TO STDOUT{}",
            quote::qualified(&self.schema, &self.table),
            if self.binary { " (FORMAT binary)" } else { "" }
        )
    }

    /// The target statement.
    pub fn copy_in_sql(&self) -> String {
        let cols = self
            .columns
            .iter()
            .map(|c| quote::ident(c))
            .collect::<Vec<_>>()
            .join(", ");
        // A table copied whole is truncated in the same transaction, which lets COPY write
        // its rows frozen: no hint-bit rewrite and almost nothing for VACUUM afterwards.
        let mut opts = Vec::new();
        if self.binary {
            opts.push("FORMAT binary");
        }
        if self.count == 1 {
            opts.push("FREEZE");
        }
        format!(
            "COPY {} ({cols}) FROM STDIN{}",
            quote::qualified(&self.schema, &self.table),
            if opts.is_empty() {
                String::new()
            } else {
                format!(" ({})", opts.join(", "))
            }
        )
    }

    /// Statements run on the target before the COPY, in its transaction.
    pub fn before_copy_sql(&self) -> String {
        if self.count == 1 {
            format!(
                "TRUNCATE ONLY {};",
                quote::qualified(&self.schema, &self.table)
            )
        } else {
            String::new()
        }
    }
}

/// The `WHERE` clause selecting a block range `[from, to)` (`to` none: to the table's end),
/// with a leading space; empty for a whole table.
fn ctid_filter(blocks: Option<(i64, Option<i64>)>) -> String {
    match blocks {
        None => String::new(),
        Some((from, None)) => format!(" WHERE ctid >= '({from},0)'::tid"),
        Some((from, Some(to))) => {
            format!(" WHERE ctid >= '({from},0)'::tid AND ctid < '({to},0)'::tid")
        }
    }
}

/// COPY data is re-chunked into messages of about this size: one row per message (as
/// PostgreSQL sends them) would cost a write and a flush per row.
const COPY_BUFFER: usize = 256 * 1024;

/// The majors of the two servers (`server_version_num / 10000`), which decide the COPY format.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Majors {
    pub source: u32,
    pub target: u32,
}

/// Whether every copied column of `t` may travel in binary between these majors: built-in
/// types (OID below 16384; not enums, composites or domains, whose OIDs differ), each one
/// [`binary::binary_ok`] for the pair. One text column sends the whole table as text.
fn binary_safe(t: &Table, majors: Majors) -> bool {
    t.columns.iter().filter(|c| !c.generated).all(|c| {
        c.type_oid < 16384
            && !c.flags.is_enum
            && !c.flags.is_composite
            && !c.flags.is_domain
            && binary::binary_ok(&c.base_type, majors.source, majors.target)
    })
}

/// The majors of both servers, read from each.
async fn majors(base: &dump_restore::Job) -> Result<Majors, CopyError> {
    async fn major(ep: &Endpoint) -> Result<u32, CopyError> {
        let client = ep.connect_short().await?;
        let num = ep.version_num(&client).await?;
        Ok((num / 10000).max(0) as u32)
    }
    Ok(Majors {
        source: major(&base.source).await?,
        target: major(&base.target).await?,
    })
}

/// Splits the tables that hold rows into chunks: one per table, or ctid block ranges of about
/// `split_bytes` for larger ones. Largest first, so the longest work starts early.
pub fn chunks(tables: &[&Table], split_bytes: u64, majors: Majors) -> Vec<Chunk> {
    let mut out = Vec::new();
    let mut sorted: Vec<&&Table> = tables
        .iter()
        .filter(|t| t.kind != TableKind::PartitionedParent && !t.foreign)
        .collect();
    sorted.sort_by_key(|t| std::cmp::Reverse(t.heap_bytes));
    for t in sorted {
        let columns: Vec<String> = t
            .columns
            .iter()
            .filter(|c| !c.generated)
            .map(|c| c.name.clone())
            .collect();
        let binary = binary_safe(t, majors);
        let split = split_bytes.max(BLOCK as u64) as i64;
        let n = if t.heap_bytes > split {
            ((t.heap_bytes + split - 1) / split).min(1024) as i32
        } else {
            1
        };
        if n == 1 {
            out.push(Chunk {
                schema: t.schema.clone(),
                table: t.name.clone(),
                columns,
                binary,
                index: 0,
                count: 1,
                blocks: None,
                est_bytes: t.heap_bytes,
            });
            continue;
        }
        let blocks = (t.heap_bytes + BLOCK - 1) / BLOCK;
        let per = (blocks + n as i64 - 1) / n as i64;
        for i in 0..n {
            let from = i as i64 * per;
            let to = if i == n - 1 { None } else { Some(from + per) };
            out.push(Chunk {
                schema: t.schema.clone(),
                table: t.name.clone(),
                columns: columns.clone(),
                binary,
                index: i,
                count: n,
                blocks: Some((from, to)),
                est_bytes: t.heap_bytes / n as i64,
            });
        }
    }
    out
}

/// Logs which tables the load copies in binary and which as text, for this pair of majors
/// ([`binary_safe`]): one line, each list comma-separated, each table named once.
fn log_copy_formats(all: &[Chunk], majors: Majors) {
    // Sets, sorted and each name once (a list searched per chunk cost O(tables²)).
    let mut binary: BTreeSet<String> = BTreeSet::new();
    let mut text: BTreeSet<String> = BTreeSet::new();
    for c in all {
        let list = if c.binary { &mut binary } else { &mut text };
        list.insert(c.name());
    }
    let binary: Vec<String> = binary.into_iter().collect();
    let text: Vec<String> = text.into_iter().collect();
    tracing::info!(
        source_major = majors.source,
        target_major = majors.target,
        binary = %binary.join(","),
        text = %text.join(","),
        "COPY format per table: binary where every column's binary form reads the same on both majors, text otherwise"
    );
}

/// What a full load did.
#[derive(Clone, Debug, Default, serde::Serialize)]
pub struct Outcome {
    pub consistent_lsn: Option<String>,
    pub chunks_copied: usize,
    /// Tables this run copied rows of (all their chunks, or the ones an earlier run left).
    pub tables_copied: usize,
    pub chunks_already_done: usize,
    pub tables_restarted: Vec<String>,
    pub rows: u64,
    pub bytes: u64,
    pub sequences_set: usize,
    pub large_objects_copied: usize,
    /// Extension configuration tables whose dumpable rows were copied.
    pub config_tables_copied: usize,
    pub slot_kept: bool,
}

/// Progress rows of this plan: table -> (chunks done, chunk count, snapshot lsn).
async fn done_chunks(
    state: &State<'_>,
) -> Result<BTreeMap<(String, String), (Vec<i32>, i32)>, PgError> {
    let rows = crate::state::copy::done(&state.client, state.target, &state.plan_name).await?;
    let mut out: BTreeMap<(String, String), (Vec<i32>, i32)> = BTreeMap::new();
    for (schema, table, chunk, chunks) in rows {
        let e = out.entry((schema, table)).or_insert((Vec::new(), 0));
        e.0.push(chunk);
        e.1 = chunks;
    }
    Ok(out)
}

/// A done chunk as its progress row recorded it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Recorded {
    pub chunk: i32,
    pub chunks: i32,
    pub rows: i64,
    /// Block range `[start_block, end_block)`, end none for the last chunk; both none in rows
    /// of earlier pgmove versions and of tables copied whole.
    pub start_block: Option<i64>,
    pub end_block: Option<i64>,
    pub relfilenode: Option<i64>,
    /// The snapshot it was read in (`pg_snapshot` as text).
    pub snapshot: Option<String>,
}

/// The recorded done chunks of this plan, per table.
async fn recorded_chunks(
    state: &State<'_>,
) -> Result<BTreeMap<(String, String), Vec<Recorded>>, PgError> {
    let rows = crate::state::copy::recorded(&state.client, state.target, &state.plan_name).await?;
    let mut out: BTreeMap<(String, String), Vec<Recorded>> = BTreeMap::new();
    for r in rows {
        out.entry((r.schema, r.table)).or_default().push(Recorded {
            chunk: r.chunk,
            chunks: r.chunks,
            rows: r.rows,
            start_block: r.start_block,
            end_block: r.end_block,
            relfilenode: r.relfilenode,
            snapshot: r.snapshot,
        });
    }
    Ok(out)
}

/// Why the done chunks of a split table cannot be kept: the table is copied again whole (the
/// reason is logged).
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct NotResumable(pub String);

/// The block ranges of every chunk of a split table, as the run that copied `done` cut it
/// (equal ranges of `per` blocks, the last open-ended), derived from the recorded ranges and
/// checked against each of them; why not when they are missing or do not fit.
pub fn recorded_ranges(done: &[Recorded]) -> Result<Vec<(i64, Option<i64>)>, NotResumable> {
    let count = done
        .first()
        .map(|r| r.chunks)
        .ok_or_else(|| NotResumable("no chunk recorded".to_string()))?;
    if count < 2 {
        return Err(NotResumable(format!(
            "recorded as {count} chunk(s), not split"
        )));
    }
    let mut per = None;
    for r in done {
        let start = r.start_block.ok_or_else(|| {
            NotResumable(format!(
                "chunk {} has no recorded block range (copied by an earlier pgmove version)",
                r.chunk
            ))
        })?;
        if r.chunk == 0 {
            per = r.end_block;
        } else if r.chunk > 0 && start % i64::from(r.chunk) == 0 {
            per = Some(start / i64::from(r.chunk));
        }
        if per.is_some() {
            break;
        }
    }
    let per = per.filter(|p| *p > 0).ok_or_else(|| {
        NotResumable("the recorded block ranges are not equal ranges".to_string())
    })?;
    let ranges: Vec<(i64, Option<i64>)> = (0..count)
        .map(|i| {
            let from = i64::from(i) * per;
            (from, (i < count - 1).then_some(from + per))
        })
        .collect();
    for r in done {
        let want = usize::try_from(r.chunk)
            .ok()
            .filter(|_| r.chunks == count)
            .and_then(|i| ranges.get(i));
        match want {
            Some((from, to)) if r.start_block == Some(*from) && r.end_block == *to => {}
            _ => {
                return Err(NotResumable(format!(
                    "chunk {} of {}: its recorded block range does not fit the other chunks'",
                    r.chunk, r.chunks
                )))
            }
        }
    }
    Ok(ranges)
}

/// In a session that imported the new snapshot: that snapshot as text, and its xmax (the
/// next xid, an xid8) as bigint.
const CURRENT_SNAPSHOT_SQL: &str = "SELECT pg_catalog.pg_current_snapshot()::text,
       pg_catalog.pg_snapshot_xmax(pg_catalog.pg_current_snapshot())::text::bigint";

/// The relfilenode of the table named `$1` (a qualified, quoted name), as bigint.
const FILENODE_SQL: &str = "SELECT pg_catalog.pg_relation_filenode($1::text::regclass)::bigint";

/// The xmin of a snapshot recorded as text (`pg_snapshot`: `xmin:xmax:xip,...`).
pub fn snapshot_xmin(snapshot: &str) -> Option<u64> {
    snapshot.split(':').next()?.trim().parse().ok()
}

/// Which rows visible in a snapshot whose xmax (next xid) is `next` may have been written
/// after an earlier snapshot whose xmin is `old_xmin` (both 64-bit xids): a condition on `x`,
/// a row's 32-bit xmin as bigint. A visible row's xid is below `next`, and taken as within
/// 2^32 of it: its 64-bit value is `next`'s epoch with the row's 32 bits, one epoch lower when
/// they are above `next`'s. The row may be new when that value is at or above `old_xmin`
/// (below it, its transaction had ended before the earlier snapshot, so that snapshot saw the
/// row; `pg_visible_in_snapshot` would also pass rows of transactions that ended after
/// `old_xmin` but before the snapshot, but it is documented not to work with subtransaction
/// ids, which a `pg_snapshot` does not list, so it could pass a row written in a savepoint
/// after the snapshot). xids 0 to 2 (invalid, bootstrap, frozen) are always old. When the
/// two snapshots are 2^31 xids or more apart, every row may be new. A false "may be new" only
/// costs a whole copy of the table.
pub fn newer_xmin_condition(old_xmin: u64, next: u64) -> String {
    if old_xmin >= next {
        return "false".to_string();
    }
    if next - old_xmin >= 1 << 31 {
        return "x > 2".to_string();
    }
    let (lo, hi) = (old_xmin & 0xFFFF_FFFF, next & 0xFFFF_FFFF);
    if lo < hi {
        format!("x > 2 AND x >= {lo} AND x < {hi}")
    } else {
        // The 32-bit counter wrapped between the two snapshots.
        format!("x > 2 AND (x >= {lo} OR x < {hi})")
    }
}

/// Run in the new snapshot, over the rows of `blocks` of the table (selected as the copy
/// selects them), returns two counts: the visible rows, and those of them matching `newer`
/// (from [`newer_xmin_condition`], on `x`, the row's xmin as bigint).
fn chunk_check_sql(schema: &str, table: &str, blocks: (i64, Option<i64>), newer: &str) -> String {
    format!(
        "SELECT count(*), count(*) FILTER (WHERE {newer})
  FROM (SELECT t.xmin::text::bigint AS x FROM ONLY {} t{}) s",
        quote::qualified(schema, table),
        ctid_filter(Some(blocks))
    )
}

/// A read-only session on the source inside the new exported snapshot, to check the done
/// chunks of half-copied split tables.
struct SnapshotCheck {
    client: tokio_postgres::Client,
    source: Endpoint,
    /// The new snapshot, as text, and its xmax.
    snapshot: String,
    xmax: i64,
}

impl SnapshotCheck {
    async fn open(source: &Endpoint, exported: &str) -> Result<SnapshotCheck, CopyError> {
        let client = source.connect().await?;
        client
            .batch_execute(&format!(
                "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY; SET TRANSACTION SNAPSHOT {};",
                quote::literal(exported)
            ))
            .await
            .map_err(|e| source.query_error("importing the snapshot", &e))?;
        let row = client
            .query_one(CURRENT_SNAPSHOT_SQL, &[])
            .await
            .map_err(|e| source.query_error("reading the snapshot", &e))?;
        Ok(SnapshotCheck {
            client,
            source: source.clone(),
            snapshot: row.get(0),
            xmax: row.get(1),
        })
    }

    /// The chunks of table `key` still to copy, in the block ranges the earlier run cut, when
    /// every done chunk is unchanged between its snapshot and this one: the table was not
    /// rewritten (same relfilenode), its block range holds as many rows as were copied, and
    /// none of them was written after the chunk's snapshot. Then the range's rows are
    /// exactly the rows copied. Why not otherwise (which check, which chunk).
    async fn resume(
        &self,
        key: &(String, String),
        done: &[Recorded],
        fresh: &[Chunk],
    ) -> Result<Result<Vec<Chunk>, NotResumable>, CopyError> {
        let ranges = match recorded_ranges(done) {
            Ok(r) => r,
            Err(why) => return Ok(Err(why)),
        };
        let Some(template) = fresh.first() else {
            return Ok(Err(NotResumable(
                "the table is no longer among those to copy".to_string(),
            )));
        };
        let (schema, table) = key;
        let name = quote::qualified(schema, table);
        let filenode: Option<i64> = self
            .client
            .query_one(FILENODE_SQL, &[&name])
            .await
            .map_err(|e| {
                self.source
                    .query_error(&format!("reading the relfilenode of {name}"), &e)
            })?
            .get(0);
        for r in done {
            let blocks = ranges[r.chunk as usize];
            if r.relfilenode.is_none() || r.relfilenode != filenode {
                return Ok(Err(NotResumable(format!(
                    "chunk {}: the table was rewritten since it was copied (relfilenode {:?} then, {:?} now: VACUUM FULL, CLUSTER or TRUNCATE)",
                    r.chunk, r.relfilenode, filenode
                ))));
            }
            let Some(old) = &r.snapshot else {
                return Ok(Err(NotResumable(format!(
                    "chunk {}: no recorded snapshot",
                    r.chunk
                ))));
            };
            let Some(old_xmin) = snapshot_xmin(old) else {
                return Ok(Err(NotResumable(format!(
                    "chunk {}: its recorded snapshot {old:?} cannot be read",
                    r.chunk
                ))));
            };
            let Ok(next) = u64::try_from(self.xmax) else {
                return Ok(Err(NotResumable(format!(
                    "the new snapshot's xmax {} is out of range",
                    self.xmax
                ))));
            };
            let newer = newer_xmin_condition(old_xmin, next);
            let row = self
                .client
                .query_one(&chunk_check_sql(schema, table, blocks, &newer), &[])
                .await
                .map_err(|e| {
                    self.source.query_error(
                        &format!("checking chunk {} of {name} against its snapshot", r.chunk),
                        &e,
                    )
                })?;
            let (rows, newer): (i64, i64) = (row.get(0), row.get(1));
            if rows != r.rows {
                return Ok(Err(NotResumable(format!(
                    "chunk {} (blocks {}..{}): {rows} row(s) now, {} copied: rows were deleted or added since",
                    r.chunk,
                    blocks.0,
                    blocks.1.map(|b| b.to_string()).unwrap_or_default(),
                    r.rows
                ))));
            }
            if newer > 0 {
                return Ok(Err(NotResumable(format!(
                    "chunk {} (blocks {}..{}): {newer} row(s) inserted or updated since it was copied",
                    r.chunk,
                    blocks.0,
                    blocks.1.map(|b| b.to_string()).unwrap_or_default()
                ))));
            }
        }
        let count = ranges.len() as i32;
        Ok(Ok((0..count)
            .filter(|i| !done.iter().any(|r| r.chunk == *i))
            .map(|i| Chunk {
                index: i,
                count,
                blocks: Some(ranges[i as usize]),
                ..template.clone()
            })
            .collect()))
    }
}

/// Runs the full load to the end, resuming what an earlier run left.
pub async fn run(job: &Job, progress: Progress) -> Result<Outcome, CopyError> {
    let base = &job.base;
    let state = State::open(&base.target, &base.plan_name).await?;
    state.finish_step(step_name::STATE, None).await?;
    let result = match state.step(step_name::LOADED).await? {
        // An earlier run finished the load; change capture resumes from pgmove.progress.
        // The source's inventory and the client programs are what the load is made of (which
        // tables, in what chunks, dumped and restored by which pg_dump and pg_restore): none
        // of them is used again once the load is recorded done, so a resumed run does not read
        // them a second time (`pgmove apply`'s preflight still checks both, every run).
        Some(lsn) => resume_loaded(job, lsn).await,
        None => load(job, &state, progress).await,
    };
    match &result {
        Ok(_) => {
            state
                .set_phase(STRATEGY, crate::state::Phase::Loaded, None)
                .await?;
            // Change capture takes the plan's lock next, on a connection of its own: this one
            // may not have ended on the server yet.
            state.release_lock().await?
        }
        Err(e) => {
            let _ = state
                .set_phase(STRATEGY, crate::state::Phase::Failed, Some(&e.to_string()))
                .await;
        }
    }
    result
}

/// A run after the load was recorded done (its consistent LSN `lsn`): the DDL trigger is
/// (re)installed (idempotent, it keeps its key), nothing else.
async fn resume_loaded(job: &Job, lsn: Option<String>) -> Result<Outcome, CopyError> {
    ensure_ddl_trigger(job).await?;
    Ok(Outcome {
        consistent_lsn: lsn,
        slot_kept: job.keep_slot,
        ..Outcome::default()
    })
}

/// The load (or what is left of it): the source's inventory, the client programs, the steps.
async fn load(job: &Job, state: &State<'_>, progress: Progress) -> Result<Outcome, CopyError> {
    let base = &job.base;
    let source_inv = inspect::inspect(&base.source).await?;
    let major = (source_inv.server.version_num / 10000).max(0) as u32;
    let pg_dump = tools::find("pg_dump", base.bin_dir.as_deref(), major)?;
    let pg_restore = tools::find("pg_restore", base.bin_dir.as_deref(), major)?;
    let psql = tools::find("psql", base.bin_dir.as_deref(), 0)?;
    run_steps(
        job,
        state,
        &source_inv,
        &pg_dump,
        &pg_restore,
        &psql,
        progress,
    )
    .await
}

async fn run_steps(
    job: &Job,
    state: &State<'_>,
    source_inv: &Inventory,
    pg_dump: &tools::Tool,
    pg_restore: &tools::Tool,
    psql: &tools::Tool,
    progress: Progress,
) -> Result<Outcome, CopyError> {
    let base = &job.base;
    let mut outcome = Outcome::default();
    // What is left to copy.
    let included = |schema: &str, name: &str| {
        schema != crate::state::SCHEMA
            && (base.schemas.is_empty() || base.schemas.iter().any(|s| s == schema))
            && !base
                .exclude
                .iter()
                .any(|g| crate::plan::glob_match(g, &format!("{schema}.{name}")))
    };
    let include = |t: &&Table| included(&t.schema, &t.name);
    let tables: Vec<&Table> = source_inv.user_tables().filter(include).collect();
    let majors = majors(base).await?;
    let all = chunks(&tables, job.split_bytes, majors);
    log_copy_formats(&all, majors);
    let done = done_chunks(state).await?;
    // Extension configuration tables: their dumpable rows are copied in the snapshot too
    // (those a run already copied are recorded in copy_progress like any table).
    let configs: Vec<ConfigTable> = config_tables(&base.source, source_inv)
        .await?
        .into_iter()
        .filter(|c| included(&c.schema, &c.table))
        .collect();
    let configs_todo: Vec<ConfigTable> = configs
        .iter()
        .filter(|c| !done.contains_key(&(c.schema.clone(), c.table.clone())))
        .cloned()
        .collect();
    let mut todo: Vec<Chunk> = Vec::new();
    let mut restart: Vec<(String, String)> = Vec::new();
    // Tables all copied by an earlier run, and split tables it left half copied (checked
    // inside the new snapshot below: kept or copied again whole).
    let mut complete: Vec<(String, String)> = Vec::new();
    let mut partial: Vec<((String, String), Vec<Chunk>)> = Vec::new();
    let mut by_table: BTreeMap<(String, String), Vec<Chunk>> = BTreeMap::new();
    for c in all {
        by_table
            .entry((c.schema.clone(), c.table.clone()))
            .or_default()
            .push(c);
    }
    for (key, cs) in by_table {
        match done.get(&key) {
            Some((finished, count)) if finished.len() as i32 == *count => {
                outcome.chunks_already_done += finished.len();
                complete.push(key);
            }
            Some(_) => partial.push((key, cs)),
            None => todo.extend(cs),
        }
    }
    todo.sort_by_key(|c| std::cmp::Reverse(c.est_bytes));
    // The snapshot: the permanent slot's on the first run, a temporary one's on a resume.
    let existing = slot::slot_exists(&base.source, &job.slot).await?;
    if existing.is_some() {
        // This plan's slot and publications (preflight refused unrecorded ones): their
        // records may still say `intended` after a kill between a create and its record.
        owned::confirm(state, &base.source, owned::SLOT, &job.slot).await?;
        for name in [
            job.publication.clone(),
            crate::plan::insert_only_publication_name(&job.publication),
        ] {
            owned::confirm(state, &base.source, owned::PUBLICATION, &name).await?;
        }
    }
    if existing.is_none() && job.keep_slot {
        // Before the slot: pgoutput reads the publication as of each change's position.
        let mut published = tables.clone();
        published.extend(config_publication_tables(source_inv, &configs));
        ensure_publication(job, state, &published, source_inv.server.version_num).await?;
    }
    // After the publication (the trigger adds new tables to it) and before the slot, so every
    // DDL after the slot's consistent point is in the stream. A rerun installs it again
    // (idempotent: the key stays).
    ensure_ddl_trigger(job).await?;
    // The slot (and its snapshot) comes before the schema dump, which is read inside that
    // snapshot: DDL committed before the slot's consistent point is in the dump and the copy,
    // DDL after it in the stream, and none in neither (issue: a column added between an
    // earlier dump and the slot arrived holding only its default).
    let mut exported = None;
    let mut slot_created = false;
    if !todo.is_empty() || !partial.is_empty() || !configs_todo.is_empty() {
        // Each slot is recorded on the target before it is created (see `crate::owned`).
        exported = Some(if existing.is_none() {
            owned::claim(state, &base.source, owned::SLOT, &job.slot).await?;
            crate::testhook::pause("copy-cdc-slot-recorded").await;
            let e = ExportedSlot::create(&base.source, &job.slot).await?;
            slot_created = true;
            (e, None)
        } else {
            let name = crate::plan::resume_slot_name(&job.slot);
            // A leftover resume slot of a killed run is dropped only when it is this plan's.
            if owned::claim(state, &base.source, owned::SLOT, &name).await? {
                let _ = slot::drop_slot(&base.source, &name).await;
                owned::claim(state, &base.source, owned::SLOT, &name).await?;
            }
            let e = ExportedSlot::create(&base.source, &name).await?;
            owned::created(state, owned::SLOT, &name).await?;
            (e, Some(name))
        });
    }
    crate::testhook::pause("copy-cdc-slot-created").await;
    if slot_created {
        // A kill before this line leaves the record `intended` and the slot there: the
        // rerun finds it this plan's (`owned::judge`) and says `created` above.
        owned::created(state, owned::SLOT, &job.slot).await?;
    }
    state.finish_step(step_name::SLOT, None).await?;
    let snapshot = exported
        .as_ref()
        .map(|(e, _)| e.snapshot_name().to_string());
    let schema = async {
        let mut restorer = Restorer::dump(
            base,
            state,
            pg_dump,
            pg_restore,
            psql,
            progress,
            STRATEGY,
            snapshot.as_deref(),
        )
        .await?;
        crate::testhook::pause("copy-cdc-schema-dumped").await;
        state
            .set_phase(STRATEGY, crate::state::Phase::Schema, None)
            .await?;
        restorer.pre_data(state).await?;
        restore_target_replica_identities(job, state).await?;
        Ok::<_, CopyError>(restorer)
    }
    .await;
    let mut restorer = match schema {
        Ok(r) => r,
        Err(e) => {
            // The exporting session is no longer needed; the permanent slot stays for a rerun.
            if let Some((exported, temp_name)) = exported {
                let _ = exported.release().await;
                if let Some(name) = temp_name {
                    let _ = slot::drop_slot(&base.source, &name).await;
                }
            }
            return Err(e);
        }
    };
    // Split tables a stopped run left half copied: their done chunks are kept when each is
    // unchanged between its snapshot and the new one, otherwise the table is copied again.
    let mut resumed: Vec<(String, String)> = Vec::new();
    let mut resumed_snapshot = None;
    if !partial.is_empty() {
        let recorded = recorded_chunks(state).await?;
        let check = match (&snapshot, source_inv.server.version_num >= 130000) {
            (Some(name), true) => Some(SnapshotCheck::open(&base.source, name).await?),
            _ => None,
        };
        for (key, cs) in partial {
            let done_here = recorded.get(&key).map(Vec::as_slice).unwrap_or(&[]);
            let verdict = match &check {
                Some(c) => c.resume(&key, done_here, &cs).await?,
                None => Err(NotResumable(
                    "the source is older than PostgreSQL 13 (no pg_snapshot to check the done chunks against)"
                        .to_string(),
                )),
            };
            match verdict {
                Ok(missing) => {
                    tracing::info!(
                        table = %format!("{}.{}", key.0, key.1),
                        kept = done_here.len(),
                        to_copy = missing.len(),
                        "resuming a split table: its done chunks are unchanged since their snapshot, only the missing chunks are copied"
                    );
                    outcome.chunks_already_done += done_here.len();
                    resumed.push(key);
                    todo.extend(missing);
                }
                Err(why) => {
                    tracing::warn!(
                        table = %format!("{}.{}", key.0, key.1),
                        "a split table left half copied is copied again whole: {why}"
                    );
                    restart.push(key);
                    todo.extend(cs);
                }
            }
        }
        resumed_snapshot = check.map(|c| c.snapshot);
        todo.sort_by_key(|c| std::cmp::Reverse(c.est_bytes));
    }
    if !restart.is_empty() || !resumed.is_empty() {
        // Tables a stopped run left half copied: start them again, atomically; the kept
        // chunks of the others now belong to the new snapshot (and its LSN, from which
        // change capture applies their changes).
        let mut sql = String::from("BEGIN;\n");
        for (s, t) in &restart {
            sql.push_str(&format!("TRUNCATE ONLY {};\n", quote::qualified(s, t)));
            sql.push_str(&crate::state::copy::forget_table_sql(&base.plan_name, s, t));
            outcome.tables_restarted.push(format!("{s}.{t}"));
        }
        if let (Some(snap), Some((e, _))) = (&resumed_snapshot, &exported) {
            for (s, t) in &resumed {
                sql.push_str(&crate::state::copy::rebase_table_sql(
                    &base.plan_name,
                    s,
                    t,
                    snap,
                    e.consistent_lsn(),
                ));
            }
        }
        sql.push_str("COMMIT;");
        state.client.batch_execute(&sql).await.map_err(|e| {
            base.target
                .query_error("restarting or resuming half-copied tables", &e)
        })?;
    }

    state
        .set_phase(STRATEGY, crate::state::Phase::Copy, None)
        .await?;
    if let Some((exported, temp_name)) = exported {
        let lsn = exported.consistent_lsn();
        outcome.consistent_lsn = Some(lsn.to_string());
        let (est_rows, est_bytes) = load_estimate(&tables, &todo);
        crate::state::load::start(
            &state.client,
            &base.target,
            &base.plan_name,
            todo.len() as i32,
            est_rows,
            est_bytes,
        )
        .await?;
        let step = progress.step("copy", todo.len() as u64);
        outcome.tables_copied = todo
            .iter()
            .map(|c| (&c.schema, &c.table))
            .collect::<std::collections::BTreeSet<_>>()
            .len();
        // Each table's indexes are built as soon as its last chunk is in, while other tables
        // still load (as pg_restore -j and pgcopydb do).
        let by_table = index_entries_by_table(base, restorer.pending_index_entries()).await?;
        let (done_tx, done_rx) = tokio::sync::mpsc::unbounded_channel();
        let builder = IndexBuilder {
            job: base.clone(),
            pg_restore: restorer.pg_restore().clone(),
            psql: restorer.psql().clone(),
            dir: restorer.dir.clone(),
            by_table,
            small: tables
                .iter()
                .filter(|t| t.heap_bytes < SMALL_TABLE_BYTES)
                .map(|t| (t.schema.clone(), t.name.clone()))
                .collect(),
            prefix: dump_restore::index_session::prefix(&base.target).await?,
        };
        let indexes = tokio::spawn(builder.run(done_rx));
        // Tables finished by an earlier run may still lack their indexes (a resumed table is
        // announced when its last missing chunk is in).
        for key in &complete {
            let _ = done_tx.send(key.clone());
        }
        let copied = copy_chunks(
            job,
            exported.snapshot_name(),
            lsn,
            todo,
            &step,
            est_rows,
            done_tx,
        )
        .await;
        if copied.is_ok() {
            crate::state::load::finish(&state.client, &base.target, &base.plan_name).await?;
        }
        // The configuration tables' rows, in the same snapshot (while it is still exported).
        let configs_copied = match &copied {
            Ok(_) => {
                Some(copy_config_tables(base, exported.snapshot_name(), lsn, &configs_todo).await)
            }
            Err(_) => None,
        };
        let built = indexes.await.map_err(|e| CopyError::Chunk {
            table: "?".into(),
            chunk: -1,
            message: format!("index builder failed: {e}"),
        })?;
        exported.release().await?;
        if let Some(name) = temp_name {
            slot::drop_slot(&base.source, &name).await?;
        }
        let (n, rows, bytes) = copied?;
        built?;
        if let Some(c) = configs_copied {
            outcome.config_tables_copied = c?;
        }
        restorer.refresh_done(state).await?;
        outcome.chunks_copied = n;
        outcome.rows = rows;
        outcome.bytes = bytes;
        step.finish("tables copied");
    } else if let Some(info) = &existing {
        outcome.consistent_lsn = info.confirmed_flush_lsn.map(|l| l.to_string());
    }
    state.finish_step(step_name::COPY, None).await?;

    // Sequences and large objects.
    state
        .set_phase(STRATEGY, crate::state::Phase::Sequences, None)
        .await?;
    outcome.sequences_set = copy_sequences(base, source_inv).await?;
    if base.large_objects {
        outcome.large_objects_copied = copy_large_objects(base).await?;
    }
    state.finish_step(step_name::SEQUENCES, None).await?;

    state
        .set_phase(STRATEGY, crate::state::Phase::PostData, None)
        .await?;
    restorer.post_data().await?;
    refresh_materialized_views(base).await?;
    state.finish_step(step_name::POST_DATA, None).await?;
    // VACUUM too: it sets the visibility map of the freshly copied tables.
    dump_restore::analyze(base, state, progress, STRATEGY, true).await?;
    restorer.remove_dump().await;
    if job.keep_slot {
        outcome.slot_kept = true;
    } else {
        slot::drop_slot(&base.source, &job.slot).await?;
    }
    state
        .finish_step(step_name::LOADED, outcome.consistent_lsn.as_deref())
        .await?;
    Ok(outcome)
}

/// An extension's configuration table (`pg_extension_config_dump`): pg_dump dumps its rows
/// matching `filter`, the extension's `extcondition` (`WHERE ...`, or empty: every row); the
/// other rows are the extension's own, which `CREATE EXTENSION` on the target puts there.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConfigTable {
    pub extension: String,
    pub schema: String,
    pub table: String,
    pub filter: String,
    /// The columns that hold data (not generated), in order, from the source's inventory.
    pub columns: Vec<String>,
}

/// The configuration tables of every extension: extension, schema, table and its dump
/// condition (`extcondition`: '' or `WHERE ...`). Sequences registered as configuration (their
/// value is dumped) are left out.
pub const CONFIG_TABLES_SQL: &str =
    "SELECT e.extname::text, n.nspname::text, c.relname::text, coalesce(x.cond, '')
  FROM pg_catalog.pg_extension e
  CROSS JOIN LATERAL unnest(e.extconfig, e.extcondition) AS x(reloid, cond)
  JOIN pg_catalog.pg_class c ON c.oid = x.reloid
  JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
 WHERE c.relkind = 'r' AND c.relpersistence = 'p'
 ORDER BY 2, 3";

/// The source's extension configuration tables ([`CONFIG_TABLES_SQL`]), with their columns
/// from `inv` (the source's inventory).
pub async fn config_tables(
    source: &Endpoint,
    inv: &Inventory,
) -> Result<Vec<ConfigTable>, CopyError> {
    let client = source.connect().await?;
    let rows = client
        .query(CONFIG_TABLES_SQL, &[])
        .await
        .map_err(|e| source.query_error("listing the extensions' configuration tables", &e))?;
    Ok(rows
        .iter()
        .map(|r| {
            let (schema, table): (String, String) = (r.get(1), r.get(2));
            let columns = inv
                .tables
                .iter()
                .find(|t| t.schema == schema && t.name == table)
                .map(|t| {
                    t.columns
                        .iter()
                        .filter(|c| !c.generated)
                        .map(|c| c.name.clone())
                        .collect()
                })
                .unwrap_or_default();
            ConfigTable {
                extension: r.get(0),
                schema,
                table,
                filter: r.get(3),
                columns,
            }
        })
        .collect())
}

/// The configuration tables change capture carries (in the publication): those with a replica
/// identity. Publishing one without would make every UPDATE and DELETE of it fail on the
/// source; their later changes are not replicated, and a warning says so.
fn config_publication_tables<'t>(inv: &'t Inventory, configs: &[ConfigTable]) -> Vec<&'t Table> {
    let mut out = Vec::new();
    for c in configs {
        let Some(t) = inv
            .tables
            .iter()
            .find(|t| t.schema == c.schema && t.name == c.table)
        else {
            continue;
        };
        if !t.owned {
            // CREATE PUBLICATION ... FOR TABLE needs the owner: on a managed server the
            // extension (and its table) belongs to whoever created it, not the migrating role.
            tracing::warn!(
                table = %format!("{}.{}", c.schema, c.table),
                extension = %c.extension,
                owner = %t.owner,
                "extension configuration table owned by another role: its rows are copied, but later changes to it are not replicated (publishing it needs its owner); check it before cutover (pgmove verify compares it)"
            );
        } else if t.has_replica_identity() {
            out.push(t);
        } else {
            tracing::warn!(
                table = %format!("{}.{}", c.schema, c.table),
                extension = %c.extension,
                "extension configuration table without a primary key or replica identity: its rows are copied, but later changes to it are not replicated (publishing it would make its UPDATEs and DELETEs fail on the source); check it before cutover (pgmove verify compares it)"
            );
        }
    }
    out
}

/// The primary key columns of the target table `$1` (a qualified, quoted name).
const PRIMARY_KEY_SQL: &str = "SELECT a.attname::text
  FROM pg_catalog.pg_index i
  CROSS JOIN LATERAL unnest(i.indkey::int2[]) WITH ORDINALITY AS k(attnum, ord)
  JOIN pg_catalog.pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = k.attnum
 WHERE i.indrelid = $1::text::regclass AND i.indisprimary
 ORDER BY k.ord";

/// The statement moving the staged rows (`pgmove_config_rows`) into `table`: on a conflict on
/// the primary key, the source's row replaces the target's (the target's extension install
/// put a row there that the source replaced); without a primary key, a conflicting row is
/// skipped (and counted).
fn config_upsert_sql(table: &str, columns: &[String], key: &[String]) -> String {
    let cols: Vec<String> = columns.iter().map(|c| quote::ident(c)).collect();
    let conflict = if key.is_empty() {
        "ON CONFLICT DO NOTHING".to_string()
    } else {
        let sets: Vec<String> = columns
            .iter()
            .filter(|c| !key.contains(c))
            .map(|c| format!("{0} = EXCLUDED.{0}", quote::ident(c)))
            .collect();
        let keys: Vec<String> = key.iter().map(|c| quote::ident(c)).collect();
        if sets.is_empty() {
            format!("ON CONFLICT ({}) DO NOTHING", keys.join(", "))
        } else {
            format!(
                "ON CONFLICT ({}) DO UPDATE SET {}",
                keys.join(", "),
                sets.join(", ")
            )
        }
    };
    format!(
        "INSERT INTO {table} ({cols}) SELECT {cols} FROM pg_temp.pgmove_config_rows {conflict}",
        cols = cols.join(", ")
    )
}

/// Copies the rows pg_dump would dump of each configuration table in `todo` (those matching
/// its extension's condition), read in the exported `snapshot`. On the target, in one
/// transaction per table: the rows matching the condition are deleted (a rerun, or rows the
/// target had), the source's are staged in a temporary table and inserted, replacing a row of
/// the extension's install that has the same primary key, and the table's progress row is
/// recorded with the snapshot's LSN (change capture applies its changes from there on).
/// Returns how many tables.
async fn copy_config_tables(
    base: &dump_restore::Job,
    snapshot: &str,
    lsn: Lsn,
    todo: &[ConfigTable],
) -> Result<usize, CopyError> {
    copy_config_rows(base, Some((snapshot, lsn)), todo).await
}

/// [`copy_config_tables`], in the exported snapshot and recording each table's progress with
/// its LSN when `snapshot` is given; otherwise in a repeatable-read transaction of its own and
/// without progress rows (strategy pglogical copies them once after its sync).
pub(crate) async fn copy_config_rows(
    base: &dump_restore::Job,
    snapshot: Option<(&str, Lsn)>,
    todo: &[ConfigTable],
) -> Result<usize, CopyError> {
    if todo.is_empty() {
        return Ok(0);
    }
    let source = base.source.connect().await?;
    let mut target = base.target.connect().await?;
    let begin = match snapshot {
        Some((name, _)) => format!(
            "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY; SET TRANSACTION SNAPSHOT {};",
            quote::literal(name)
        ),
        None => "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY;".to_string(),
    };
    source
        .batch_execute(&begin)
        .await
        .map_err(|e| base.source.query_error("importing the snapshot", &e))?;
    let unwritable = dump_restore::config_tables::unwritable(&base.target).await?;
    let mut n = 0;
    for c in todo {
        let table = quote::qualified(&c.schema, &c.table);
        if let Some(u) = unwritable
            .iter()
            .find(|u| u.schema == c.schema && u.table == c.table)
        {
            // Read in the snapshot: the rows the copy would move.
            let rows: i64 = source
                .query_one(
                    format!("SELECT count(*) FROM ONLY {table} {}", c.filter.trim()).as_str(),
                    &[],
                )
                .await
                .map_err(|e| {
                    base.source
                        .query_error("counting a configuration table's rows", &e)
                })?
                .get(0);
            let role = base.target.info.user();
            if rows > 0 {
                return Err(CopyError::Chunk {
                    table: format!("{}.{}", c.schema, c.table),
                    chunk: 0,
                    message: format!(
                        "the source has {rows} row(s) of its own in this configuration table of extension {}, and role {role} may not write it on the target (its owner is {}); fix: {}",
                        c.extension,
                        u.owner,
                        u.fix(role)
                    ),
                });
            }
            tracing::info!(
                table = %format!("{}.{}", c.schema, c.table),
                extension = %c.extension,
                owner = %u.owner,
                "an extension's configuration table that the target role may not write: the source has none of its own rows in it, so there is nothing to copy"
            );
            if let Some((_, lsn)) = snapshot {
                let tx = target
                    .transaction()
                    .await
                    .map_err(|e| base.target.query_error("BEGIN", &e))?;
                crate::state::copy::record_whole(
                    &tx,
                    &base.plan_name,
                    &c.schema,
                    &c.table,
                    0,
                    0,
                    lsn,
                )
                .await
                .map_err(|e| base.target.query_error("recording progress", &e))?;
                tx.commit()
                    .await
                    .map_err(|e| base.target.query_error("COMMIT", &e))?;
            }
            n += 1;
            continue;
        }
        let what = |step: &str| {
            format!(
                "{step} of {} (configuration table of extension {})",
                table, c.extension
            )
        };
        let columns = &c.columns;
        if columns.is_empty() {
            return Err(CopyError::Chunk {
                table: format!("{}.{}", c.schema, c.table),
                chunk: 0,
                message: format!(
                    "configuration table of extension {}: its columns are not in the source's inventory",
                    c.extension
                ),
            });
        }
        let key: Vec<String> = target
            .query(PRIMARY_KEY_SQL, &[&table])
            .await
            .map_err(|e| {
                base.target
                    .query_error(&what("reading the primary key"), &e)
            })?
            .iter()
            .map(|r| r.get(0))
            .collect();
        let cols = columns
            .iter()
            .map(|c| quote::ident(c))
            .collect::<Vec<_>>()
            .join(", ");
        let filter = c.filter.trim();
        let tx = target
            .transaction()
            .await
            .map_err(|e| base.target.query_error("BEGIN", &e))?;
        tx.batch_execute(&format!(
            "DELETE FROM ONLY {table} {filter};
             CREATE TEMPORARY TABLE pgmove_config_rows ON COMMIT DROP AS SELECT {cols} FROM ONLY {table} WITH NO DATA;"
        ))
        .await
        .map_err(|e| base.target.query_error(&what("preparing the copy"), &e))?;
        let out = source
            .copy_out(format!("COPY (SELECT {cols} FROM ONLY {table} {filter}) TO STDOUT").as_str())
            .await
            .map_err(|e| base.source.query_error(&what("COPY TO"), &e))?;
        let sink = tx
            .copy_in::<_, bytes::Bytes>(
                format!("COPY pg_temp.pgmove_config_rows ({cols}) FROM STDIN").as_str(),
            )
            .await
            .map_err(|e| base.target.query_error(&what("COPY FROM"), &e))?;
        futures_util::pin_mut!(out);
        futures_util::pin_mut!(sink);
        let mut bytes = 0u64;
        while let Some(data) = out.next().await {
            let data = data.map_err(|e| base.source.query_error(&what("COPY TO"), &e))?;
            bytes += data.len() as u64;
            sink.send(data)
                .await
                .map_err(|e| base.target.query_error(&what("COPY FROM"), &e))?;
        }
        let rows = sink
            .finish()
            .await
            .map_err(|e| base.target.query_error(&what("COPY FROM"), &e))?;
        let written = tx
            .execute(config_upsert_sql(&table, columns, &key).as_str(), &[])
            .await
            .map_err(|e| base.target.query_error(&what("inserting the rows"), &e))?;
        if written < rows {
            tracing::warn!(
                table = %format!("{}.{}", c.schema, c.table),
                extension = %c.extension,
                skipped = rows - written,
                "rows of an extension configuration table conflict with rows of the target's extension install (the table has no primary key to replace them by): the target's are kept; pgmove verify reports them"
            );
        }
        if let Some((_, lsn)) = snapshot {
            crate::state::copy::record_whole(
                &tx,
                &base.plan_name,
                &c.schema,
                &c.table,
                rows as i64,
                bytes as i64,
                lsn,
            )
            .await
            .map_err(|e| base.target.query_error(&what("recording progress"), &e))?;
        }
        tx.commit()
            .await
            .map_err(|e| base.target.query_error("COMMIT", &e))?;
        crate::testhook::pause("copy-cdc-config-table-copied").await;
        tracing::info!(
            table = %format!("{}.{}", c.schema, c.table),
            extension = %c.extension,
            rows,
            condition = %if filter.is_empty() { "every row" } else { filter },
            "extension configuration table: the rows pg_dump would dump were copied"
        );
        n += 1;
    }
    let _ = source.batch_execute("COMMIT").await;
    Ok(n)
}

/// The publication's members for the tables `chosen`: plain tables, and each partition tree as
/// its root (the leaves' changes are published under the leaves' own names), except a tree
/// with a leaf in `apart` (a keyless leaf, published for inserts only or not at all): its
/// leaves in `chosen` are members one by one, so that `apart`'s are not. Unlogged and foreign
/// tables are left out: their changes are not in the WAL and a publication refuses them (the
/// load copies the unlogged ones once).
pub fn publication_tables(chosen: &[&Table], apart: &[&Table]) -> Vec<String> {
    publication_members(chosen, apart, PartitionPublishing::ThroughRoot)
}

/// [`publication_tables`] for a source that publishes partitioned tables as `how` says: before
/// PostgreSQL 13 ([`PartitionPublishing::LeavesIndividually`]) every leaf partition of
/// `chosen` is a member and no partitioned table is (the source refuses them). The changes
/// are then published under the leaves' names as with a root, and each leaf is copied once by
/// the load (partitioned parents hold no rows and are never copied).
pub fn publication_members(
    chosen: &[&Table],
    apart: &[&Table],
    how: PartitionPublishing,
) -> Vec<String> {
    let split: HashSet<&RelName> = apart
        .iter()
        .filter(|t| t.kind == TableKind::Partition)
        .filter_map(|t| t.root.as_ref())
        .collect();
    let leaves = how == PartitionPublishing::LeavesIndividually;
    chosen
        .iter()
        .filter(|t| !t.foreign && !t.unlogged)
        .filter(|t| match t.kind {
            TableKind::Plain => true,
            TableKind::PartitionedParent => {
                !leaves && t.parent.is_none() && !split.contains(&t.rel_name())
            }
            TableKind::Partition => leaves || t.root.as_ref().is_some_and(|r| split.contains(r)),
        })
        .map(|t| quote::qualified(&t.schema, &t.name))
        .collect()
}

/// Creates the plan's publication(s) on the source unless they exist (this plan's: one of
/// that name that pgmove did not record creating is refused, see `crate::owned`). Each is
/// recorded on the target before the create and created with pgmove's comment.
async fn ensure_publication(
    job: &Job,
    state: &State<'_>,
    tables: &[&Table],
    source_version: i32,
) -> Result<(), CopyError> {
    let base = &job.base;
    log_partition_paths(tables, source_version);
    let mut names = vec![job.publication.clone()];
    if job.tables_without_key == plan::TablesWithoutKey::InsertOnly
        && !keyless_tables(tables).is_empty()
    {
        // As `publication_sql` decides: keyless tables and partitions get their own.
        names.push(crate::plan::insert_only_publication_name(&job.publication));
    }
    let mut exists = false;
    for name in &names {
        exists |= owned::claim(state, &base.source, owned::PUBLICATION, name).await?;
    }
    if exists {
        // Created (in one transaction) by a run killed before its record said so.
        for name in &names {
            owned::created(state, owned::PUBLICATION, name).await?;
        }
        return Ok(());
    }
    crate::testhook::pause("copy-cdc-publication-recorded").await;
    let client = base.source.connect().await?;
    if job.tables_without_key == plan::TablesWithoutKey::ReplicaIdentityFull {
        record_replica_identities(job, &client, &keyless_tables(tables)).await?;
    }
    client
        .batch_execute(&format!(
            "BEGIN;\n{}COMMIT;",
            publication_sql(job, tables, source_version)
        ))
        .await
        .map_err(|e| base.source.query_error(&format!("creating publication {} (the source role needs CREATE on the database and ownership of the tables)", job.publication), &e))?;
    for name in &names {
        owned::created(state, owned::PUBLICATION, name).await?;
    }
    Ok(())
}

/// Says in the log, per partitioned table of `tables`, how its changes travel: through its root
/// or leaf by leaf in the publication, and into the same leaves on the target (which the
/// schema step created from the source's schema: same leaves, same bounds).
fn log_partition_paths(tables: &[&Table], source_version: i32) {
    let how = partition_publishing(source_version);
    for root in tables
        .iter()
        .filter(|t| t.kind == TableKind::PartitionedParent && t.parent.is_none())
    {
        let leaves = tables
            .iter()
            .filter(|t| t.kind == TableKind::Partition && t.root.as_ref() == Some(&root.rel_name()))
            .count();
        tracing::info!(
            table = %root.qualified(),
            leaves,
            publication = %match how {
                PartitionPublishing::ThroughRoot => "through its root",
                PartitionPublishing::LeavesIndividually => "its leaves individually (a source before PostgreSQL 13 refuses a partitioned table in a publication)",
            },
            applied = "into the same leaves on the target (created from the source's schema: same leaves, same bounds)",
            "partitioned table: how its changes are published and applied"
        );
    }
}

/// Tables and partitions without a key or replica identity (cdc.tables_without_key): in a
/// publication that replicates updates and deletes, the source would refuse every UPDATE and
/// DELETE of them. A partition counts by itself: its changes are published under its own name
/// and identity, whatever its parent's.
fn keyless_tables<'t>(tables: &[&'t Table]) -> Vec<&'t Table> {
    tables
        .iter()
        .copied()
        .filter(|t| {
            t.kind != TableKind::PartitionedParent
                && !t.foreign
                && !t.unlogged
                && !t.has_replica_identity()
        })
        .collect()
}

/// The current replica identity of the source tables named `$1` (qualified names): schema,
/// table, `relreplident` (d, n, f or i) and the identity index's name when it is i.
const RI_CURRENT: &str = "SELECT n.nspname::text, c.relname::text, c.relreplident::text,
       (SELECT ic.relname::text FROM pg_catalog.pg_index i
          JOIN pg_catalog.pg_class ic ON ic.oid = i.indexrelid
         WHERE i.indrelid = c.oid AND i.indisreplident)
  FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
 WHERE c.oid = ANY($1::text[]::regclass[])";

/// The schema dump is read inside the slot's snapshot, after pgmove made the keyless tables
/// REPLICA IDENTITY FULL on the source: gives the target's copies the identity the source had
/// before (recorded by [`record_replica_identities`]), right after the pre-data restore.
/// Identities by index are left to post-data, which restores them with the index.
async fn restore_target_replica_identities(job: &Job, state: &State<'_>) -> Result<(), CopyError> {
    let base = &job.base;
    let recorded = crate::state::has_table(&state.client, &base.target, "replica_identity").await?;
    if !recorded {
        return Ok(());
    }
    let rows = crate::state::replica_identity::recorded(
        &state.client,
        &base.target,
        Some(&base.plan_name),
    )
    .await?;
    let mut sql = String::new();
    for crate::state::replica_identity::Identity {
        schema,
        table,
        mode,
        index,
    } in rows
    {
        if mode == "i" {
            continue;
        }
        if let Some(identity) = identity_clause(&mode, index.as_deref()) {
            sql.push_str(&format!(
                "ALTER TABLE {} REPLICA IDENTITY {identity};\n",
                quote::qualified(&schema, &table)
            ));
        }
    }
    if !sql.is_empty() {
        state.client.batch_execute(&sql).await.map_err(|e| {
            base.target.query_error(
                "giving the target's tables the source's replica identity",
                &e,
            )
        })?;
    }
    Ok(())
}

/// Records on the target the replica identity of each of `keyless` before it becomes FULL; a
/// rerun keeps the first record (the table may be FULL by then).
async fn record_replica_identities(
    job: &Job,
    source: &tokio_postgres::Client,
    keyless: &[&Table],
) -> Result<(), CopyError> {
    if keyless.is_empty() {
        return Ok(());
    }
    let base = &job.base;
    let names: Vec<String> = keyless
        .iter()
        .map(|t| quote::qualified(&t.schema, &t.name))
        .collect();
    let rows = source
        .query(RI_CURRENT, &[&names])
        .await
        .map_err(|e| base.source.query_error("reading replica identities", &e))?;
    let target = base.target.connect().await?;
    for r in rows {
        let identity = crate::state::replica_identity::Identity {
            schema: r.get(0),
            table: r.get(1),
            mode: r.get(2),
            index: r.get(3),
        };
        crate::state::replica_identity::record(&target, &base.target, &base.plan_name, &identity)
            .await?;
    }
    Ok(())
}

/// What the insert-only publication publishes on a source of `source_version`: inserts and
/// truncates; PostgreSQL 10 knows no `truncate` there (its pgoutput sends no TRUNCATE at all).
fn insert_only_publish(source_version: i32) -> &'static str {
    if source_version >= 110_000 {
        "insert, truncate"
    } else {
        "insert"
    }
}

/// The statements creating the plan's publication(s) on a source of `source_version`
/// (`server_version_num`: it decides how partitioned tables are members, see
/// [`publication_members`]), in order, each ending with `;`.
pub fn publication_sql(job: &Job, tables: &[&Table], source_version: i32) -> String {
    let keyless = keyless_tables(tables);
    let mut setup = String::new();
    let mut main: Vec<&Table> = tables.to_vec();
    match job.tables_without_key {
        plan::TablesWithoutKey::ReplicaIdentityFull => {
            for t in &keyless {
                setup.push_str(&format!(
                    "ALTER TABLE {} REPLICA IDENTITY FULL;\n",
                    quote::qualified(&t.schema, &t.name)
                ));
            }
        }
        plan::TablesWithoutKey::InsertOnly => {
            main.retain(|t| !keyless.iter().any(|k| std::ptr::eq(*k, *t)));
            // Keyless tables and partitions one by one, never a whole tree.
            let list: Vec<String> = keyless.iter().map(|t| t.qualified()).collect();
            if !list.is_empty() {
                let name = crate::plan::insert_only_publication_name(&job.publication);
                setup.push_str(&format!(
                    "CREATE PUBLICATION {} FOR TABLE {} WITH (publish = '{}');\n{}",
                    quote::ident(&name),
                    list.join(", "),
                    insert_only_publish(source_version),
                    owned::comment_sql(&name, &job.base.plan_name)
                ));
            }
        }
        // Refuse: preflight blocked the plan. Exclude: loaded once, never replicated.
        plan::TablesWithoutKey::Refuse | plan::TablesWithoutKey::Exclude => {
            main.retain(|t| !keyless.iter().any(|k| std::ptr::eq(*k, *t)));
        }
    }
    let apart: &[&Table] = if job.tables_without_key == plan::TablesWithoutKey::ReplicaIdentityFull
    {
        &[]
    } else {
        &keyless
    };
    let list = publication_members(&main, apart, partition_publishing(source_version));
    let sql = if list.is_empty() {
        format!("CREATE PUBLICATION {}", quote::ident(&job.publication))
    } else {
        format!(
            "CREATE PUBLICATION {} FOR TABLE {}",
            quote::ident(&job.publication),
            list.join(", ")
        )
    };
    format!(
        "{setup}{sql};\n{}",
        owned::comment_sql(&job.publication, &job.base.plan_name)
    )
}

/// Installs the DDL event trigger on the source when the plan wants it (see
/// [`Job::installs_ddl_trigger`]).
async fn ensure_ddl_trigger(job: &Job) -> Result<(), CopyError> {
    if !job.installs_ddl_trigger() {
        return Ok(());
    }
    let base = &job.base;
    ddl::install(&base.source, &base.plan_name, &base.schemas, &base.exclude).await?;
    tracing::info!(plan = %base.plan_name, policy = %job.ddl, "DDL event trigger installed on the source (cdc.ddl)");
    Ok(())
}

/// Per table, the LSN of the snapshot it was copied in.
pub async fn table_lsns(
    target: &Endpoint,
    plan: &str,
) -> Result<HashMap<(String, String), Lsn>, PgError> {
    let c = target.connect().await?;
    Ok(crate::state::copy::table_lsns(&c, target, plan)
        .await?
        .into_iter()
        .map(|(schema, table, lsn)| ((schema, table), lsn))
        .collect())
}

/// The rows and heap bytes the chunks `todo` hold as the source's statistics estimate them,
/// each chunk its table's share; the rows are unknown when a table's are (never analyzed).
fn load_estimate(tables: &[&Table], todo: &[Chunk]) -> (Option<i64>, i64) {
    let rows: HashMap<(&str, &str), Option<i64>> = tables
        .iter()
        .map(|t| ((t.schema.as_str(), t.name.as_str()), t.estimated_rows))
        .collect();
    let mut est_rows = Some(0.0f64);
    for c in todo {
        let table = rows
            .get(&(c.schema.as_str(), c.table.as_str()))
            .copied()
            .flatten();
        est_rows = est_rows
            .zip(table)
            .map(|(sum, r)| sum + r as f64 / c.count.max(1) as f64);
    }
    (
        est_rows.map(|r| r.round() as i64),
        todo.iter().map(|c| c.est_bytes).sum(),
    )
}

/// Copies the chunks with `jobs` workers; returns (chunks, rows, bytes). The step shows the
/// rows and bytes copied per second and the time left (from `est_rows`, the rows the chunks
/// are estimated to hold, see [`crate::rate::load_eta`]).
async fn copy_chunks(
    job: &Job,
    snapshot: &str,
    lsn: Lsn,
    todo: Vec<Chunk>,
    step: &crate::progress::Step,
    est_rows: Option<i64>,
    table_done: tokio::sync::mpsc::UnboundedSender<(String, String)>,
) -> Result<(usize, u64, u64), CopyError> {
    let base = &job.base;
    let chunks = todo.len() as u64;
    let mut chunks_done = 0u64;
    let snapshot_sql = SNAPSHOT_AND_FILENODE_SQL;
    // Chunks left per table; the table is announced when it reaches zero.
    let mut left: HashMap<(String, String), usize> = HashMap::new();
    for c in &todo {
        *left.entry((c.schema.clone(), c.table.clone())).or_insert(0) += 1;
    }
    let width = base.jobs.max(1);
    let source_pool = base.source.pool(width)?;
    let target_pool = base.target.pool(width)?;
    let queue = Arc::new(tokio::sync::Mutex::new(todo));
    let rows = Arc::new(AtomicU64::new(0));
    let bytes = Arc::new(AtomicU64::new(0));
    let committed = Arc::new(AtomicU64::new(0));
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<(String, String, i32, i32)>();
    let mut set = tokio::task::JoinSet::new();
    for _ in 0..width {
        let queue = queue.clone();
        let source_pool = source_pool.clone();
        let target_pool = target_pool.clone();
        let snapshot = snapshot.to_string();
        let plan = base.plan_name.clone();
        let source = base.source.clone();
        let target = base.target.clone();
        let rows = rows.clone();
        let bytes = bytes.clone();
        let committed = committed.clone();
        let tx = tx.clone();
        set.spawn(async move {
            let mut n = 0usize;
            loop {
                let chunk = match queue.lock().await.pop() {
                    Some(c) => c,
                    None => break,
                };
                let (r, b) = copy_one(
                    &source_pool,
                    &target_pool,
                    &source,
                    &target,
                    &snapshot,
                    lsn,
                    &plan,
                    &chunk,
                    snapshot_sql,
                )
                .await
                .map_err(|e| CopyError::Chunk {
                    table: chunk.name(),
                    chunk: chunk.index,
                    message: e.to_string(),
                })?;
                rows.fetch_add(r, Ordering::Relaxed);
                bytes.fetch_add(b, Ordering::Relaxed);
                let k = committed.fetch_add(1, Ordering::SeqCst) + 1;
                crate::testhook::pause(&format!("copy-cdc-chunks-committed-{k}")).await;
                let _ = tx.send((
                    chunk.schema.clone(),
                    chunk.table.clone(),
                    chunk.index,
                    chunk.count,
                ));
                n += 1;
            }
            Ok::<usize, CopyError>(n)
        });
    }
    drop(tx);
    // The queue pops from the end: reverse so the largest chunks go first.
    queue.lock().await.reverse();
    let mut total = 0;
    loop {
        tokio::select! {
            msg = rx.recv() => match msg {
                Some((schema, table, index, count)) => {
                    chunks_done += 1;
                    let (rows, bytes) = (rows.load(Ordering::Relaxed), bytes.load(Ordering::Relaxed));
                    let eta = crate::rate::load_eta(&crate::rate::LoadSoFar {
                        elapsed: step.elapsed(),
                        rows_done: rows,
                        estimated_rows: est_rows.map(|r| r.max(0) as u64),
                        chunks_done,
                        chunks,
                    });
                    step.item_done_moved(
                        &format!("{schema}.{table} {}/{count}", index + 1),
                        &crate::progress::Moved { rows, bytes, eta, last: chunks_done == chunks },
                    );
                    let key = (schema, table);
                    if let Some(n) = left.get_mut(&key) {
                        *n -= 1;
                        if *n == 0 {
                            let _ = table_done.send(key);
                        }
                    }
                }
                None => break,
            },
        }
    }
    while let Some(r) = set.join_next().await {
        match r {
            Ok(Ok(n)) => total += n,
            Ok(Err(e)) => {
                set.abort_all();
                return Err(e);
            }
            Err(e) => {
                set.abort_all();
                return Err(CopyError::Chunk {
                    table: "?".to_string(),
                    chunk: -1,
                    message: format!("copy worker failed: {e}"),
                });
            }
        }
    }
    Ok((
        total,
        rows.load(Ordering::Relaxed),
        bytes.load(Ordering::Relaxed),
    ))
}

/// In a session that imported a snapshot: the snapshot (`xmin:xmax:xip,...` as text) and the
/// relfilenode of the table named `$1` (a qualified, quoted name), as bigint.
/// `txid_current_snapshot()`: sources before PostgreSQL 13 have no `pg_current_snapshot()`;
/// from 13 on it is the same function under its older name (the same text).
const SNAPSHOT_AND_FILENODE_SQL: &str = "SELECT pg_catalog.txid_current_snapshot()::text,
       pg_catalog.pg_relation_filenode($1::text::regclass)::bigint";

/// Why one chunk's copy failed (its transaction rolled back).
#[derive(Debug, thiserror::Error)]
enum ChunkError {
    /// A connection of the side's pool (`"source"` or `"target"`).
    #[error("{0}: {1}")]
    Pool(&'static str, deadpool_postgres::PoolError),
    #[error(transparent)]
    Pg(#[from] PgError),
}

/// One chunk: COPY out of the snapshot, COPY in, progress row, commit. Returns (rows, bytes).
#[allow(clippy::too_many_arguments)]
async fn copy_one(
    source_pool: &deadpool_postgres::Pool,
    target_pool: &deadpool_postgres::Pool,
    source: &Endpoint,
    target: &Endpoint,
    snapshot: &str,
    lsn: Lsn,
    plan: &str,
    chunk: &Chunk,
    snapshot_sql: &str,
) -> Result<(u64, u64), ChunkError> {
    let src = source_pool
        .get()
        .await
        .map_err(|e| ChunkError::Pool("source", e))?;
    let dst = target_pool
        .get()
        .await
        .map_err(|e| ChunkError::Pool("target", e))?;
    // search_path pg_catalog: a `regclass`-like value is written schema-qualified, a name
    // the target resolves to the same object whatever its own search_path.
    src.batch_execute(&format!(
        "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY; SET TRANSACTION SNAPSHOT {}; SET LOCAL search_path = pg_catalog;",
        quote::literal(snapshot)
    ))
    .await
    .map_err(|e| source.query_error("importing the snapshot", &e))?;
    // What a rerun checks before keeping this chunk (see `resume_split_table`).
    let read = src
        .query_one(
            snapshot_sql,
            &[&quote::qualified(&chunk.schema, &chunk.table)],
        )
        .await
        .map_err(|e| {
            source.query_error(
                &format!("reading the snapshot and relfilenode of {}", chunk.name()),
                &e,
            )
        })?;
    let (snapshot_text, filenode): (String, Option<i64>) = (read.get(0), read.get(1));
    let (start_block, end_block) = match chunk.blocks {
        Some((from, to)) => (Some(from), to),
        None => (None, None),
    };
    dst.batch_execute(&format!(
        "BEGIN; SET LOCAL synchronous_commit = off; {}",
        chunk.before_copy_sql()
    ))
    .await
    .map_err(|e| target.query_error("BEGIN", &e))?;
    let result = async {
        let out = src
            .copy_out(chunk.copy_out_sql().as_str())
            .await
            .map_err(|e| source.query_error("COPY TO", &e))?;
        let sink = dst
            .copy_in::<_, bytes::Bytes>(chunk.copy_in_sql().as_str())
            .await
            .map_err(|e| target.query_error("COPY FROM", &e))?;
        futures_util::pin_mut!(out);
        futures_util::pin_mut!(sink);
        let mut n_bytes = 0u64;
        let mut buf = bytes::BytesMut::with_capacity(COPY_BUFFER * 2);
        while let Some(data) = out.next().await {
            let data = data.map_err(|e| source.query_error("COPY TO", &e))?;
            n_bytes += data.len() as u64;
            buf.extend_from_slice(&data);
            if buf.len() >= COPY_BUFFER {
                sink.send(buf.split().freeze())
                    .await
                    .map_err(|e| target.query_error("COPY FROM", &e))?;
            }
        }
        if !buf.is_empty() {
            sink.send(buf.split().freeze())
                .await
                .map_err(|e| target.query_error("COPY FROM", &e))?;
        }
        let rows = sink
            .finish()
            .await
            .map_err(|e| target.query_error("COPY FROM", &e))?;
        let record = crate::state::copy::NewChunk {
            plan_name: plan,
            schema: &chunk.schema,
            table: &chunk.table,
            chunk: chunk.index,
            chunks: chunk.count,
            rows: rows as i64,
            bytes: n_bytes as i64,
            snapshot_lsn: lsn,
            start_block,
            end_block,
            relfilenode: filenode,
            snapshot: Some(&snapshot_text),
        };
        crate::state::copy::record_chunk(&**dst, &record)
            .await
            .map_err(|e| target.query_error("recording progress", &e))?;
        Ok::<(u64, u64), ChunkError>((rows, n_bytes))
    }
    .await;
    match result {
        Ok(v) => {
            dst.batch_execute("COMMIT")
                .await
                .map_err(|e| target.query_error("COMMIT", &e))?;
            let _ = src.batch_execute("COMMIT").await;
            Ok(v)
        }
        Err(e) => {
            let _ = dst.batch_execute("ROLLBACK").await;
            let _ = src.batch_execute("ROLLBACK").await;
            Err(e)
        }
    }
}

/// Sets every selected sequence on the target to the source's current value.
async fn copy_sequences(base: &dump_restore::Job, inv: &Inventory) -> Result<usize, CopyError> {
    let source = base.source.connect().await?;
    let target = base.target.connect().await?;
    let mut n = 0;
    let mut values: HashMap<String, (i64, bool)> = HashMap::new();
    for s in &inv.sequences {
        if s.extension.is_some()
            || s.schema == crate::state::SCHEMA
            || (!base.schemas.is_empty() && !base.schemas.contains(&s.schema))
        {
            continue;
        }
        let q = quote::qualified(&s.schema, &s.name);
        let row = source
            .query_one(&format!("SELECT last_value, is_called FROM {q}"), &[])
            .await
            .map_err(|e| {
                base.source
                    .query_error(&format!("reading sequence {q}"), &e)
            })?;
        values.insert(q, (row.get(0), row.get(1)));
    }
    for (q, (v, called)) in values {
        target
            .execute(
                "SELECT pg_catalog.setval($1::text::regclass, $2, $3)",
                &[&q, &v, &called],
            )
            .await
            .map_err(|e| {
                base.target
                    .query_error(&format!("setting sequence {q}"), &e)
            })?;
        n += 1;
    }
    Ok(n)
}

/// A schema-only dump leaves materialized views empty: refresh those populated on the source.
async fn refresh_materialized_views(base: &dump_restore::Job) -> Result<(), CopyError> {
    let source = base.source.connect().await?;
    let target = base.target.connect().await?;
    refresh_populated_matviews(&base.source, &source, &base.target, &target, |s, _| {
        base.schemas.is_empty() || base.schemas.iter().any(|x| x == s)
    })
    .await?;
    Ok(())
}

/// Each large object's owner and the grants on it other than its owner's: (oid, owner,
/// privilege, grantee or NULL for PUBLIC, grantable), privilege NULL for an object with none.
const LO_PRIVILEGES: &str =
    "SELECT m.oid, pg_catalog.pg_get_userbyid(m.lomowner), a.privilege_type,
       CASE WHEN a.grantee = 0 THEN NULL ELSE pg_catalog.pg_get_userbyid(a.grantee) END,
       coalesce(a.is_grantable, false)
  FROM pg_catalog.pg_largeobject_metadata m
  LEFT JOIN LATERAL pg_catalog.aclexplode(m.lomacl) a ON a.grantee <> m.lomowner";

/// Each large object's comment: (oid, comment).
const LO_COMMENTS: &str = "SELECT d.objoid, d.description FROM pg_catalog.pg_description d
  WHERE d.classoid = 'pg_catalog.pg_largeobject'::pg_catalog.regclass AND d.objsubid = 0";

/// The statements giving large object `oid` its source owner and grants, for the roles that
/// exist on the target; the roles missing are added to `missing`.
fn large_object_privileges(
    base: &dump_restore::Job,
    oid: u32,
    rows: &[tokio_postgres::Row],
    roles: &HashSet<String>,
    missing: &mut std::collections::BTreeSet<String>,
) -> Vec<String> {
    let mut grants = Vec::new();
    let mut owner = None;
    for r in rows.iter().filter(|r| r.get::<_, u32>(0) == oid) {
        owner = Some(r.get::<_, String>(1));
        let Some(privilege) = r.get::<_, Option<String>>(2) else {
            continue;
        };
        let grantee = match r.get::<_, Option<String>>(3) {
            None => "PUBLIC".to_string(),
            Some(g) if roles.contains(&g) => crate::pg::quote::ident(&g),
            Some(g) => {
                missing.insert(g);
                continue;
            }
        };
        let option = if r.get::<_, bool>(4) {
            " WITH GRANT OPTION"
        } else {
            ""
        };
        grants.push(format!(
            "GRANT {privilege} ON LARGE OBJECT {oid} TO {grantee}{option}"
        ));
    }
    // Granted first, by the creating user: a change of owner hands its grants to the new owner.
    match owner {
        Some(o) if !base.no_owner && roles.contains(&o) => grants.push(format!(
            "ALTER LARGE OBJECT {oid} OWNER TO {}",
            crate::pg::quote::ident(&o)
        )),
        Some(o) if !base.no_owner => {
            missing.insert(o);
        }
        _ => {}
    }
    grants
}

/// Copies the large objects the target lacks, 1 MB at a time, with their comments, owners and
/// grants.
pub(crate) async fn copy_large_objects(base: &dump_restore::Job) -> Result<usize, CopyError> {
    const PIECE: i64 = 1 << 20;
    let source = base.source.connect().await?;
    let mut target = base.target.connect().await?;
    let privileges = source.query(LO_PRIVILEGES, &[]).await.map_err(|e| {
        base.source
            .query_error("listing large object owners and grants", &e)
    })?;
    let comments: HashMap<u32, String> = source
        .query(LO_COMMENTS, &[])
        .await
        .map_err(|e| base.source.query_error("listing large object comments", &e))?
        .iter()
        .map(|r| (r.get(0), r.get(1)))
        .collect();
    let roles: HashSet<String> = target
        .query(dump_restore::grants::TARGET_ROLES, &[])
        .await
        .map_err(|e| base.target.query_error("listing the target's roles", &e))?
        .iter()
        .map(|r| r.get(0))
        .collect();
    let mut missing = std::collections::BTreeSet::new();
    let on_source: Vec<u32> = source
        .query("SELECT oid FROM pg_largeobject_metadata ORDER BY oid", &[])
        .await
        .map_err(|e| base.source.query_error("listing large objects", &e))?
        .iter()
        .map(|r| r.get(0))
        .collect();
    let on_target: std::collections::HashSet<u32> = target
        .query("SELECT oid FROM pg_largeobject_metadata", &[])
        .await
        .map_err(|e| base.target.query_error("listing large objects", &e))?
        .iter()
        .map(|r| r.get(0))
        .collect();
    let mut n = 0;
    for oid in on_source.into_iter().filter(|o| !on_target.contains(o)) {
        let tx = target
            .transaction()
            .await
            .map_err(|e| base.target.query_error("BEGIN", &e))?;
        tx.execute("SELECT pg_catalog.lo_create($1)", &[&oid])
            .await
            .map_err(|e| {
                base.target
                    .query_error(&format!("creating large object {oid}"), &e)
            })?;
        let mut offset = 0i64;
        loop {
            let row = source
                .query_one(
                    "SELECT lo_get($1, $2, $3::int)",
                    &[&oid, &offset, &(PIECE as i32)],
                )
                .await
                .map_err(|e| {
                    base.source
                        .query_error(&format!("reading large object {oid}"), &e)
                })?;
            let data: Vec<u8> = row.get(0);
            if data.is_empty() {
                break;
            }
            tx.execute("SELECT lo_put($1, $2, $3)", &[&oid, &offset, &data])
                .await
                .map_err(|e| {
                    base.target
                        .query_error(&format!("writing large object {oid}"), &e)
                })?;
            offset += data.len() as i64;
            if (data.len() as i64) < PIECE {
                break;
            }
        }
        // Before the owner changes: COMMENT needs the object's owner.
        if let Some(comment) = comments.get(&oid) {
            let sql = format!(
                "COMMENT ON LARGE OBJECT {oid} IS {}",
                crate::pg::quote::literal(comment)
            );
            tx.batch_execute(&sql).await.map_err(|e| {
                base.target
                    .query_error(&format!("setting the comment of large object {oid}"), &e)
            })?;
        }
        for sql in large_object_privileges(base, oid, &privileges, &roles, &mut missing) {
            tx.batch_execute(&sql).await.map_err(|e| {
                base.target.query_error(
                    &format!("setting the owner and grants of large object {oid}"),
                    &e,
                )
            })?;
        }
        tx.commit()
            .await
            .map_err(|e| base.target.query_error("COMMIT", &e))?;
        n += 1;
    }
    if !missing.is_empty() {
        let names: Vec<String> = missing.iter().map(|r| crate::pg::quote::ident(r)).collect();
        tracing::warn!(
            "large objects: owner or grants to role(s) {} not given: missing on the target (`roles: skip`); create them, then ALTER LARGE OBJECT ... OWNER TO / GRANT as on the source",
            names.join(", ")
        );
    }
    Ok(n)
}

/// The statements and commands `apply` would run, step by step ([`STEPS`]), without running
/// anything.
pub async fn dry_run(job: &Job, source_inv: &Inventory) -> Result<Vec<String>, CopyError> {
    let base = &job.base;
    let p = dump_restore::Preview::new(base).await?;
    let tables: Vec<&Table> = source_inv
        .user_tables()
        .filter(|t| t.schema != crate::state::SCHEMA)
        .filter(|t| base.schemas.is_empty() || base.schemas.contains(&t.schema))
        .filter(|t| {
            !base
                .exclude
                .iter()
                .any(|g| crate::plan::glob_match(g, &format!("{}.{}", t.schema, t.name)))
        })
        .collect();
    let configs: Vec<ConfigTable> = config_tables(&base.source, source_inv)
        .await?
        .into_iter()
        .filter(|c| {
            (base.schemas.is_empty() || base.schemas.contains(&c.schema))
                && !base
                    .exclude
                    .iter()
                    .any(|g| crate::plan::glob_match(g, &format!("{}.{}", c.schema, c.table)))
        })
        .collect();
    let majors = majors(base).await?;
    let mut out = p.intro(STRATEGY);
    for (i, s) in STEPS.iter().enumerate() {
        out.push(step_name::heading(STEPS, i));
        out.extend(match s.name {
            step_name::STATE => p.state(),
            step_name::SLOT => slot_preview(job, source_inv, &tables, &configs, &p),
            step_name::DUMP => p.dump(true),
            step_name::PRE_DATA => p.pre_data(),
            step_name::COPY => copy_preview(job, &tables, &configs, &p, majors),
            step_name::SEQUENCES => vec![
                "SELECT pg_catalog.setval(...)  -- every sequence, from the source's value"
                    .to_string(),
                "SELECT lo_create(oid); SELECT lo_put(oid, offset, data)  -- large objects the target lacks, 1 MB at a time".to_string(),
                p.record(step_name::SEQUENCES, None),
            ],
            step_name::POST_DATA => p.post_data(&[
                "REFRESH MATERIALIZED VIEW ...;  -- each materialized view populated on the source".to_string(),
            ]),
            step_name::ANALYZE => p.analyze(true),
            step_name::LOADED => {
                let mut loaded = p.remove_dump();
                if !job.keep_slot {
                    loaded.push(format!(
                        "SELECT pg_drop_replication_slot({});  -- on the source: --stop-after-load, change capture does not follow",
                        quote::literal(&job.slot)
                    ));
                }
                loaded.push(p.record(step_name::LOADED, Some("<consistent LSN>")));
                if job.keep_slot {
                    loaded.push(format!(
                        "-- then change capture: the slot's changes (publication {}) applied on the target in commit order until cutover",
                        job.publication
                    ));
                }
                loaded
            }
            other => return Err(dump_restore::unlisted(other).into()),
        });
    }
    Ok(out)
}

/// Step `slot` of the dry run: the publication, the DDL trigger, the slot.
fn slot_preview(
    job: &Job,
    source_inv: &Inventory,
    tables: &[&Table],
    configs: &[ConfigTable],
    p: &dump_restore::Preview<'_>,
) -> Vec<String> {
    let base = &job.base;
    let mut out = Vec::new();
    if job.keep_slot {
        out.push(format!(
            "-- on the source ({}), unless publication {} exists",
            base.source.display(),
            job.publication
        ));
        let mut published = tables.to_vec();
        published.extend(config_publication_tables(source_inv, configs));
        out.extend(
            publication_sql(job, &published, source_inv.server.version_num)
                .lines()
                .map(str::to_string),
        );
    }
    if job.installs_ddl_trigger() {
        out.push(format!(
            "-- cdc.ddl {}: the DDL event trigger, on the source as a superuser (rds_superuser on RDS), in one transaction",
            job.ddl
        ));
        out.push(ddl::install_sql(
            &base.plan_name,
            &base.schemas,
            &base.exclude,
        ));
    }
    out.extend([
        format!("-- on a replication connection to the source ({}), kept open and idle until the copy ends", base.source.display()),
        format!(
            "CREATE_REPLICATION_SLOT {} LOGICAL pgoutput (SNAPSHOT 'export');",
            quote::ident(&job.slot)
        ),
        p.record(step_name::SLOT, None),
    ]);
    out
}

/// Step `copy` of the dry run: every chunk, then the extensions' configuration rows.
fn copy_preview(
    job: &Job,
    tables: &[&Table],
    configs: &[ConfigTable],
    p: &dump_restore::Preview<'_>,
    majors: Majors,
) -> Vec<String> {
    let mut out = vec![format!(
        "-- per chunk, {} at a time, on the source: BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY; SET TRANSACTION SNAPSHOT '<exported>'; SET LOCAL search_path = pg_catalog; and on the target: BEGIN; SET LOCAL synchronous_commit = off;",
        job.base.jobs
    )];
    out.push(format!(
        "{}  -- the load's start, chunks and estimates (for status), before the first chunk",
        crate::state::load::PREVIEW_START_SQL
    ));
    for c in chunks(tables, job.split_bytes, majors) {
        out.push(format!("{}  =>  {}", c.copy_out_sql(), c.copy_in_sql()));
    }
    out.push(format!(
        "{} COMMIT;  -- with each chunk",
        crate::state::copy::PREVIEW_SQL
    ));
    out.push(format!(
        "{}  -- after the last chunk",
        crate::state::load::PREVIEW_FINISH_SQL
    ));
    for c in configs {
        let table = quote::qualified(&c.schema, &c.table);
        let cols = c
            .columns
            .iter()
            .map(|x| quote::ident(x))
            .collect::<Vec<_>>()
            .join(", ");
        let filter = c.filter.trim();
        out.push(format!(
            "-- extension {} configuration table {table}: the rows pg_dump would dump (its dump condition), in the snapshot; on the target in one transaction: DELETE FROM ONLY {table} <the same condition>; CREATE TEMPORARY TABLE pgmove_config_rows ...; then the progress row",
            c.extension
        ));
        out.push(format!(
            "COPY (SELECT {cols} FROM ONLY {table} {filter}) TO STDOUT  =>  COPY pg_temp.pgmove_config_rows ({cols}) FROM STDIN; INSERT INTO {table} ... ON CONFLICT (primary key) DO UPDATE ..."
        ));
    }
    out.push(p.record(step_name::COPY, None));
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::inspect::{Column, ColumnFlags, ReplicaIdentity};

    const SAME: Majors = Majors {
        source: 15,
        target: 15,
    };

    fn table(name: &str, heap: i64, kind: TableKind, type_oid: u32) -> Table {
        Table {
            oid: 1,
            schema: "public".into(),
            name: name.into(),
            kind,
            foreign: false,
            unlogged: false,
            owner: "o".into(),
            parent: None,
            root: None,
            partition_depth: 0,
            partition_key: None,
            partition_bound: None,
            total_bytes: heap,
            heap_bytes: heap,
            estimated_rows: None,
            primary_key: vec![],
            replica_identity: ReplicaIdentity::Default,
            replica_identity_index: None,
            identity_index_candidates: vec![],
            has_select: true,
            row_security: false,
            force_row_security: false,
            owned: true,
            extension_owned: false,
            extension: None,
            columns: vec![
                Column {
                    name: "id".into(),
                    position: 1,
                    type_name: "integer".into(),
                    type_oid: 23,
                    base_type: "int4".into(),
                    not_null: true,
                    default: None,
                    generated: false,
                    identity: None,
                    flags: ColumnFlags::default(),
                },
                Column {
                    name: "v".into(),
                    position: 2,
                    type_name: "x".into(),
                    type_oid,
                    base_type: if type_oid == 2205 {
                        "regclass"
                    } else {
                        "float8"
                    }
                    .into(),
                    not_null: false,
                    default: None,
                    generated: false,
                    identity: None,
                    flags: ColumnFlags::default(),
                },
                Column {
                    name: "g".into(),
                    position: 3,
                    type_name: "integer".into(),
                    type_oid: 23,
                    base_type: "int4".into(),
                    not_null: false,
                    default: Some("id * 2".into()),
                    generated: true,
                    identity: None,
                    flags: ColumnFlags::default(),
                },
            ],
        }
    }

    #[test]
    fn keyless_partitions_are_published_apart_from_their_keyed_siblings() {
        let leaf = |name: &str, keyed: bool| {
            let mut t = table(name, 1, TableKind::Partition, 23);
            t.parent = Some(RelName::new("public", "r"));
            t.root = Some(RelName::new("public", "r"));
            t.partition_depth = 1;
            if keyed {
                t.primary_key = vec!["id".into()];
            }
            t
        };
        let root = table("r", 0, TableKind::PartitionedParent, 23);
        let (a, b) = (leaf("r_a", true), leaf("r_b", false));
        let mut keyed_root = table("k", 0, TableKind::PartitionedParent, 23);
        keyed_root.primary_key = vec!["id".into()];
        let mut k1 = leaf("k_1", true);
        k1.parent = Some(RelName::new("public", "k"));
        k1.root = Some(RelName::new("public", "k"));
        let mut plain = table("p", 1, TableKind::Plain, 23);
        plain.primary_key = vec!["id".into()];
        let all = [&root, &a, &b, &keyed_root, &k1, &plain];
        // The keyless leaf counts, its keyed sibling and the partitioned parents do not.
        let keyless = keyless_tables(&all);
        let names: Vec<&str> = keyless.iter().map(|t| t.name.as_str()).collect();
        assert_eq!(names, ["r_b"]);
        // Without it, tree r is published leaf by leaf; tree k as its root.
        let main: Vec<&Table> = all.iter().copied().filter(|t| t.name != "r_b").collect();
        assert_eq!(
            publication_tables(&main, &keyless),
            [r#""public"."r_a""#, r#""public"."k""#, r#""public"."p""#]
        );
        // Nothing apart: every tree as its root.
        assert_eq!(
            publication_tables(&all, &[]),
            [r#""public"."r""#, r#""public"."k""#, r#""public"."p""#]
        );
    }

    #[test]
    fn before_13_every_leaf_is_a_member_and_no_partitioned_table_is() {
        let mut root = table("ev", 0, TableKind::PartitionedParent, 23);
        root.primary_key = vec!["id".into()];
        // A 2-level tree: ev -> ev_eu (partitioned) -> ev_eu_1; ev -> ev_us.
        let mut mid = table("ev_eu", 0, TableKind::PartitionedParent, 23);
        mid.parent = Some(RelName::new("public", "ev"));
        mid.root = Some(RelName::new("public", "ev"));
        let leaf = |name: &str, parent: &str, keyed: bool| {
            let mut t = table(name, 1, TableKind::Partition, 23);
            t.parent = Some(RelName::new("public", parent));
            t.root = Some(RelName::new("public", "ev"));
            if keyed {
                t.primary_key = vec!["id".into()];
            }
            t
        };
        let (eu1, us, bare) = (
            leaf("ev_eu_1", "ev_eu", true),
            leaf("ev_us", "ev", true),
            leaf("ev_x", "ev", false),
        );
        let mut plain = table("p", 1, TableKind::Plain, 23);
        plain.primary_key = vec!["id".into()];
        let mut logless = table("u", 1, TableKind::Plain, 23);
        logless.unlogged = true;
        let all = [&root, &mid, &eu1, &us, &plain, &logless];
        let leaves = [
            r#""public"."ev_eu_1""#,
            r#""public"."ev_us""#,
            r#""public"."p""#,
        ];
        assert_eq!(
            publication_members(&all, &[], PartitionPublishing::LeavesIndividually),
            leaves
        );
        // 13+: the root only, exactly as publication_tables says.
        assert_eq!(
            publication_members(&all, &[], PartitionPublishing::ThroughRoot),
            [r#""public"."ev""#, r#""public"."p""#]
        );
        assert_eq!(
            publication_members(&all, &[], PartitionPublishing::ThroughRoot),
            publication_tables(&all, &[])
        );
        // A keyless leaf kept apart (insert-only publication) is not a member of the main one.
        let with_bare = [&root, &mid, &eu1, &us, &bare, &plain];
        let main: Vec<&Table> = with_bare
            .iter()
            .copied()
            .filter(|t| t.name != "ev_x")
            .collect();
        assert_eq!(
            publication_members(&main, &[&bare], PartitionPublishing::LeavesIndividually),
            leaves
        );
        // The per-major choice.
        assert_eq!(
            partition_publishing(120_022),
            PartitionPublishing::LeavesIndividually
        );
        assert_eq!(
            partition_publishing(100_023),
            PartitionPublishing::LeavesIndividually
        );
        assert_eq!(
            partition_publishing(130_018),
            PartitionPublishing::ThroughRoot
        );
        // PostgreSQL 10 has no `truncate` in a publication's publish list.
        assert_eq!(insert_only_publish(100_023), "insert");
        assert_eq!(insert_only_publish(110_022), "insert, truncate");
        assert_eq!(insert_only_publish(150_010), "insert, truncate");
    }

    #[test]
    fn large_tables_split_into_block_ranges_and_parents_are_skipped() {
        let big = table("big", 10 * 8192 * 100, TableKind::Plain, 25);
        let small = table("small", 8192, TableKind::Plain, 70000);
        let parent = table("parent", 0, TableKind::PartitionedParent, 25);
        let c = chunks(&[&small, &big, &parent], 3 * 8192 * 100, SAME);
        let big_chunks: Vec<&Chunk> = c.iter().filter(|c| c.table == "big").collect();
        assert_eq!(big_chunks.len(), 4);
        assert_eq!(big_chunks[0].blocks, Some((0, Some(250))));
        assert_eq!(big_chunks[3].blocks, Some((750, None)));
        assert!(c.iter().all(|c| c.table != "parent"));
        assert_eq!(c.last().map(|c| c.table.as_str()), Some("small"));
        // Generated columns are left to the target to compute.
        assert_eq!(big_chunks[0].columns, vec!["id", "v"]);
        assert!(big_chunks[0].binary);
        let small_chunk = c.iter().find(|c| c.table == "small").expect("small");
        assert!(!small_chunk.binary, "a user-defined type forces text");
    }

    #[test]
    fn reg_types_and_unstable_formats_across_majors_force_text() {
        let reg = table("reg", 8192, TableKind::Plain, 2205);
        let float = table("f", 8192, TableKind::Plain, 701);
        let c = chunks(&[&reg, &float], 1 << 30, SAME);
        let binary = |name: &str| c.iter().find(|c| c.table == name).expect(name).binary;
        assert!(
            !binary("reg"),
            "regclass travels as a name, never as an OID"
        );
        assert!(binary("f"));
        // float8 and int4 keep their binary form from 10 to 15; a type outside the stable
        // list does not.
        let older = Majors {
            source: 10,
            target: 15,
        };
        assert!(chunks(&[&float], 1 << 30, older)[0].binary);
        let mut point = table("pt", 8192, TableKind::Plain, 600);
        point.columns[1].base_type = "point".into();
        assert!(!chunks(&[&point], 1 << 30, older)[0].binary);
        assert!(chunks(&[&point], 1 << 30, SAME)[0].binary);
    }

    fn rec(chunk: i32, chunks: i32, start: Option<i64>, end: Option<i64>) -> Recorded {
        Recorded {
            chunk,
            chunks,
            rows: 10,
            start_block: start,
            end_block: end,
            relfilenode: Some(1),
            snapshot: Some("1:1:".into()),
        }
    }

    #[test]
    fn recorded_ranges_are_rebuilt_from_any_done_chunk_and_checked() {
        let want = vec![(0, Some(25)), (25, Some(50)), (50, Some(75)), (75, None)];
        // From chunk 0's end, from a middle chunk's start, from the last chunk alone.
        assert_eq!(
            recorded_ranges(&[rec(0, 4, Some(0), Some(25)), rec(2, 4, Some(50), Some(75))]),
            Ok(want.clone())
        );
        assert_eq!(
            recorded_ranges(&[rec(1, 4, Some(25), Some(50))]),
            Ok(want.clone())
        );
        assert_eq!(recorded_ranges(&[rec(3, 4, Some(75), None)]), Ok(want));
        // Rows of an earlier version, ranges that do not fit, a table not split: refused.
        assert!(recorded_ranges(&[rec(1, 4, None, None)])
            .unwrap_err()
            .0
            .contains("earlier pgmove version"));
        assert!(
            recorded_ranges(&[rec(0, 4, Some(0), Some(25)), rec(2, 4, Some(40), Some(75))])
                .unwrap_err()
                .0
                .contains("chunk 2 of 4")
        );
        assert!(
            recorded_ranges(&[rec(0, 4, Some(0), Some(25)), rec(3, 4, Some(75), Some(100))])
                .is_err()
        );
        assert!(
            recorded_ranges(&[rec(0, 4, Some(0), Some(25)), rec(5, 4, Some(125), None)]).is_err()
        );
        assert!(recorded_ranges(&[rec(0, 1, None, None)]).is_err());
        assert!(recorded_ranges(&[]).is_err());
    }

    #[test]
    fn a_row_is_new_when_its_widened_xmin_is_at_or_above_the_old_snapshot_xmin() {
        // Nothing written between the snapshots.
        assert_eq!(newer_xmin_condition(700, 700), "false");
        assert_eq!(newer_xmin_condition(800, 700), "false");
        // Same epoch: [old xmin, next) of the current one.
        assert_eq!(
            newer_xmin_condition(700, 750),
            "x > 2 AND x >= 700 AND x < 750"
        );
        let epoch = 3u64 << 32;
        assert_eq!(
            newer_xmin_condition(epoch + 700, epoch + 750),
            "x > 2 AND x >= 700 AND x < 750"
        );
        // The counter wrapped between them: the high 32-bit values are the previous epoch's
        // (new when at or above the old xmin), the low ones the current epoch's (new when
        // below next).
        let old = epoch - 10;
        assert_eq!(
            newer_xmin_condition(old, epoch + 10),
            "x > 2 AND (x >= 4294967286 OR x < 10)"
        );
        // Too far apart to tell: every row may be new.
        assert_eq!(newer_xmin_condition(5, 5 + (1 << 31)), "x > 2");
        // The xmin of a recorded snapshot.
        assert_eq!(snapshot_xmin("742:750:742,745"), Some(742));
        assert_eq!(snapshot_xmin("12884902588:12884902600:"), Some(12884902588));
        assert_eq!(snapshot_xmin("garbage"), None);
    }

    #[test]
    fn config_rows_replace_the_extension_install_rows_by_primary_key() {
        let cols = vec!["srid".to_string(), "auth name".to_string()];
        assert_eq!(
            config_upsert_sql("\"public\".\"srs\"", &cols, &["srid".to_string()]),
            "INSERT INTO \"public\".\"srs\" (\"srid\", \"auth name\") SELECT \"srid\", \"auth name\" FROM pg_temp.pgmove_config_rows ON CONFLICT (\"srid\") DO UPDATE SET \"auth name\" = EXCLUDED.\"auth name\""
        );
        assert!(config_upsert_sql("t", &cols, &[]).ends_with("ON CONFLICT DO NOTHING"));
        assert!(config_upsert_sql("t", &cols[..1], &cols[..1])
            .ends_with("ON CONFLICT (\"srid\") DO NOTHING"));
    }

    #[test]
    fn copy_statements_quote_and_filter() {
        let t = table("My \"T\"", 100, TableKind::Plain, 25);
        let c = &chunks(&[&t], 1 << 30, SAME)[0];
        assert_eq!(
            c.copy_out_sql(),
            r#"COPY (SELECT "id", "v" FROM ONLY "public"."My ""T""") TO STDOUT (FORMAT binary)"#
        );
        assert_eq!(
            c.copy_in_sql(),
            r#"COPY "public"."My ""T""" ("id", "v") FROM STDIN (FORMAT binary, FREEZE)"#
        );
        let mut r = c.clone();
        r.blocks = Some((10, Some(20)));
        assert!(r
            .copy_out_sql()
            .contains("WHERE ctid >= '(10,0)'::tid AND ctid < '(20,0)'::tid"));
    }
}
