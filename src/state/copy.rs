//! `pgmove.copy_progress`: the chunks of tables copy-cdc copied, each row committed in the
//! transaction of the rows it describes.

use tokio_postgres::GenericClient;

use crate::pg::{quote, Endpoint, Lsn, PgError};

/// The plan `$1`'s chunk rows: schema, table, chunk, chunk count.
const DONE_SQL: &str =
    "SELECT schema_name, table_name, chunk, chunks FROM pgmove.copy_progress WHERE plan_name = $1";

/// The plan `$1`'s chunk rows: schema, table, chunk, chunk count, rows, block range, the
/// source relfilenode and snapshot they were read in.
const RECORDED_SQL: &str = "SELECT schema_name, table_name, chunk, chunks, rows,
       start_block, end_block, relfilenode, snapshot
  FROM pgmove.copy_progress WHERE plan_name = $1 ORDER BY 1, 2, 3";

/// Per table of the plan `$1`: schema, table, the LSN of the snapshot it was copied in.
const TABLE_LSNS_SQL: &str = "SELECT schema_name, table_name, max(snapshot_lsn) FROM pgmove.copy_progress WHERE plan_name = $1 GROUP BY 1, 2";

/// Per table of the plan `$1`: schema, table, chunks done, chunk count, rows, bytes, snapshot
/// LSN (text).
const TABLES_SQL: &str = "SELECT schema_name, table_name, count(*), max(chunks), sum(rows)::bigint, sum(bytes)::bigint, max(snapshot_lsn)::text
    FROM pgmove.copy_progress WHERE plan_name = $1 GROUP BY 1, 2 ORDER BY 1, 2";

/// Records a chunk: $1 plan, $2 schema, $3 table, $4 chunk, $5 chunks, $6 rows, $7 bytes,
/// $8 snapshot LSN, $9 start block, $10 end block, $11 relfilenode, $12 snapshot.
const RECORD_SQL: &str = "INSERT INTO pgmove.copy_progress (plan_name, schema_name, table_name, chunk, chunks, rows, bytes, snapshot_lsn, start_block, end_block, relfilenode, snapshot) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)";

/// Records a table copied whole: $1 plan, $2 schema, $3 table, $4 rows, $5 bytes, $6 LSN.
const RECORD_WHOLE_SQL: &str = "INSERT INTO pgmove.copy_progress (plan_name, schema_name, table_name, chunk, chunks, rows, bytes, snapshot_lsn) VALUES ($1, $2, $3, 0, 1, $4, $5, $6)";

/// One chunk row, as recorded.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ChunkRow {
    pub schema: String,
    pub table: String,
    pub chunk: i32,
    pub chunks: i32,
    pub rows: i64,
    pub start_block: Option<i64>,
    pub end_block: Option<i64>,
    pub relfilenode: Option<i64>,
    pub snapshot: Option<String>,
}

/// One table's progress, summed over its chunks (`pgmove status` shows it, json included).
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct TableRow {
    pub schema: String,
    pub table: String,
    pub chunks_done: i64,
    pub chunks: i32,
    pub rows: i64,
    pub bytes: i64,
    pub snapshot_lsn: Option<String>,
}

/// A chunk to record (in the transaction that copied it).
pub struct NewChunk<'a> {
    pub plan_name: &'a str,
    pub schema: &'a str,
    pub table: &'a str,
    pub chunk: i32,
    pub chunks: i32,
    pub rows: i64,
    pub bytes: i64,
    pub snapshot_lsn: Lsn,
    pub start_block: Option<i64>,
    pub end_block: Option<i64>,
    pub relfilenode: Option<i64>,
    pub snapshot: Option<&'a str>,
}

/// The plan's chunks done: (schema, table, chunk, chunk count), unordered.
pub async fn done(
    c: &impl GenericClient,
    ep: &Endpoint,
    plan_name: &str,
) -> Result<Vec<(String, String, i32, i32)>, PgError> {
    let rows = c
        .query(DONE_SQL, &[&plan_name])
        .await
        .map_err(|e| ep.query_error("reading pgmove.copy_progress", &e))?;
    Ok(rows
        .iter()
        .map(|r| (r.get(0), r.get(1), r.get(2), r.get(3)))
        .collect())
}

/// The plan's chunk rows in full, by schema, table, chunk.
pub async fn recorded(
    c: &impl GenericClient,
    ep: &Endpoint,
    plan_name: &str,
) -> Result<Vec<ChunkRow>, PgError> {
    let rows = c
        .query(RECORDED_SQL, &[&plan_name])
        .await
        .map_err(|e| ep.query_error("reading pgmove.copy_progress", &e))?;
    Ok(rows
        .iter()
        .map(|r| ChunkRow {
            schema: r.get(0),
            table: r.get(1),
            chunk: r.get(2),
            chunks: r.get(3),
            rows: r.get(4),
            start_block: r.get(5),
            end_block: r.get(6),
            relfilenode: r.get(7),
            snapshot: r.get(8),
        })
        .collect())
}

/// Per table, the LSN of the snapshot it was copied in: (schema, table, LSN).
pub async fn table_lsns(
    c: &impl GenericClient,
    ep: &Endpoint,
    plan_name: &str,
) -> Result<Vec<(String, String, Lsn)>, PgError> {
    let rows = c
        .query(TABLE_LSNS_SQL, &[&plan_name])
        .await
        .map_err(|e| ep.query_error("reading pgmove.copy_progress", &e))?;
    Ok(rows
        .iter()
        .map(|r| (r.get(0), r.get(1), r.get(2)))
        .collect())
}

/// Per table, the progress summed over its chunks, by schema and table.
pub async fn tables(
    c: &impl GenericClient,
    ep: &Endpoint,
    plan_name: &str,
) -> Result<Vec<TableRow>, PgError> {
    let rows = c
        .query(TABLES_SQL, &[&plan_name])
        .await
        .map_err(|e| ep.query_error("reading pgmove.copy_progress", &e))?;
    Ok(rows
        .iter()
        .map(|r| TableRow {
            schema: r.get(0),
            table: r.get(1),
            chunks_done: r.get(2),
            chunks: r.get(3),
            rows: r.get(4),
            bytes: r.get(5),
            snapshot_lsn: r.get(6),
        })
        .collect())
}

/// Records a chunk in the caller's transaction (the one that copied its rows); the error is
/// the server's, for the caller to name the chunk.
pub async fn record_chunk(
    c: &impl GenericClient,
    n: &NewChunk<'_>,
) -> Result<u64, tokio_postgres::Error> {
    c.execute(
        RECORD_SQL,
        &[
            &n.plan_name,
            &n.schema,
            &n.table,
            &n.chunk,
            &n.chunks,
            &n.rows,
            &n.bytes,
            &n.snapshot_lsn,
            &n.start_block,
            &n.end_block,
            &n.relfilenode,
            &n.snapshot,
        ],
    )
    .await
}

/// Records a table copied whole (one chunk of one) in the caller's transaction.
pub async fn record_whole(
    c: &impl GenericClient,
    plan_name: &str,
    schema: &str,
    table: &str,
    rows: i64,
    bytes: i64,
    lsn: Lsn,
) -> Result<u64, tokio_postgres::Error> {
    c.execute(
        RECORD_WHOLE_SQL,
        &[&plan_name, &schema, &table, &rows, &bytes, &lsn],
    )
    .await
}

/// The statement that forgets a table's chunks (it is copied again), for the transaction
/// that empties it.
pub fn forget_table_sql(plan_name: &str, schema: &str, table: &str) -> String {
    format!(
        "DELETE FROM pgmove.copy_progress WHERE plan_name = {} AND schema_name = {} AND table_name = {};\n",
        quote::literal(plan_name),
        quote::literal(schema),
        quote::literal(table)
    )
}

/// The statement that moves a table's kept chunks to a new snapshot (and its LSN).
pub fn rebase_table_sql(
    plan_name: &str,
    schema: &str,
    table: &str,
    snapshot: &str,
    lsn: Lsn,
) -> String {
    format!(
        "UPDATE pgmove.copy_progress SET snapshot = {}, snapshot_lsn = {}::pg_lsn WHERE plan_name = {} AND schema_name = {} AND table_name = {};\n",
        quote::literal(snapshot),
        quote::literal(&lsn.to_string()),
        quote::literal(plan_name),
        quote::literal(schema),
        quote::literal(table)
    )
}

/// What the dry run shows of the record written with each chunk.
pub const PREVIEW_SQL: &str = "INSERT INTO pgmove.copy_progress (...) VALUES (...);";
