//! Step `analyze`: `VACUUM (ANALYZE)` (or `ANALYZE` alone) of the target's tables after a load,
//! on `jobs` connections, many small tables a statement.
//!
//! `vacuumdb --jobs` (what pgmove ran before) sends one statement a table, and every `VACUUM`
//! statement ends by scanning `pg_class` to update the database's frozen xid
//! (`vac_update_datfrozenxid`): with N tables that is N scans of an N-row catalog, O(N²)
//! (80 s of a 270 s load of 10,000 small tables). One statement naming up to
//! [`BATCH_TABLES`] tables does that scan once; each table is still vacuumed in a transaction
//! of its own by the server. Tables of [`ALONE_BYTES`] or more get a statement each, largest
//! first, so that the `jobs` connections share the big ones.
//!
//! What is processed is what vacuumdb processed: every ordinary table and materialized view of
//! the target database outside the system schemas (and outside pgmove's own schema), restricted
//! to the plan's `objects.schemas` when it names some. A table the role may not vacuum is
//! skipped by the server with a warning, as vacuumdb's were.

use std::collections::VecDeque;
use std::sync::Mutex;

use crate::pg::{quote, Endpoint, PgError};
use crate::progress::Step;

/// Tables named in one statement at the most.
pub const BATCH_TABLES: usize = 100;

/// A table (heap, TOAST and indexes) of this size or more is vacuumed in a statement of its own.
pub const ALONE_BYTES: i64 = 64 * 1024 * 1024;

/// The target's ordinary tables and materialized views outside the system schemas and
/// pgmove's own (`$1`: the schemas to keep, every one when empty), largest first: schema,
/// name, total size in bytes (`pg_total_relation_size`: a freshly loaded table's `relpages` is
/// still 0).
const TABLES_SQL: &str = "\
SELECT n.nspname::text, c.relname::text, pg_catalog.pg_total_relation_size(c.oid)::bigint
  FROM pg_catalog.pg_class c
  JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
 WHERE c.relkind IN ('r', 'm')
   AND n.nspname NOT IN ('pg_catalog', 'information_schema', 'pgmove')
   AND n.nspname !~ '^pg_(toast|temp_)'
   AND (cardinality($1::text[]) = 0 OR n.nspname = ANY ($1::text[]))
 ORDER BY 3 DESC, 1, 2";

/// A table to vacuum.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Table {
    pub schema: String,
    pub name: String,
    pub bytes: i64,
}

/// The statements' tables: those of [`ALONE_BYTES`] or more one a statement, the rest up to
/// [`BATCH_TABLES`] a statement (`per_statement` lowers that: 1 for servers before 11, which
/// take one table a statement); largest first, as given.
pub fn batches(tables: Vec<Table>, per_statement: usize) -> Vec<Vec<Table>> {
    let per = per_statement.clamp(1, BATCH_TABLES);
    let mut out: Vec<Vec<Table>> = Vec::new();
    let mut small: Vec<Table> = Vec::new();
    for t in tables {
        if t.bytes >= ALONE_BYTES {
            out.push(vec![t]);
            continue;
        }
        small.push(t);
        if small.len() == per {
            out.push(std::mem::take(&mut small));
        }
    }
    if !small.is_empty() {
        out.push(small);
    }
    out
}

/// The statement for one batch.
pub fn statement(tables: &[Table], vacuum: bool) -> String {
    let names: Vec<String> = tables
        .iter()
        .map(|t| quote::qualified(&t.schema, &t.name))
        .collect();
    if vacuum {
        format!("VACUUM (ANALYZE) {}", names.join(", "))
    } else {
        format!("ANALYZE {}", names.join(", "))
    }
}

/// What the step does, for `--dry-run`.
pub fn describe(jobs: usize, vacuum: bool) -> String {
    format!(
        "-- on the target, {} connection(s): {} of every table and materialized view (outside the system schemas and pgmove's; the plan's objects.schemas when given), up to {BATCH_TABLES} small tables a statement, tables of {} MB or more one a statement, largest first",
        jobs.max(1),
        if vacuum { "VACUUM (ANALYZE)" } else { "ANALYZE" },
        ALONE_BYTES / (1024 * 1024)
    )
}

/// The tables to process on the target.
pub async fn tables(
    c: &tokio_postgres::Client,
    target: &Endpoint,
    schemas: &[String],
) -> Result<Vec<Table>, PgError> {
    let rows = c
        .query(TABLES_SQL, &[&schemas])
        .await
        .map_err(|e| target.query_error("listing the tables to vacuum and analyze", &e))?;
    Ok(rows
        .iter()
        .map(|r| Table {
            schema: r.get(0),
            name: r.get(1),
            bytes: r.get(2),
        })
        .collect())
}

/// Runs the batches on `jobs` connections to `target`, each batch as one statement; a batch
/// that fails is run again table by table, so that the error names its table. `step` counts
/// the tables.
pub async fn run(
    target: &Endpoint,
    batches: Vec<Vec<Table>>,
    jobs: usize,
    vacuum: bool,
    step: &Step,
) -> Result<(), PgError> {
    let width = jobs.max(1).min(batches.len().max(1));
    let queue = Mutex::new(batches.into_iter().collect::<VecDeque<_>>());
    let next = || queue.lock().unwrap_or_else(|p| p.into_inner()).pop_front();
    let worker = || async {
        let c = target.connect().await?;
        while let Some(batch) = next() {
            run_batch(&c, target, &batch, vacuum).await?;
            for t in &batch {
                step.item_done(&format!("{}.{}", t.schema, t.name));
            }
        }
        Ok::<(), PgError>(())
    };
    futures_util::future::try_join_all((0..width).map(|_| worker())).await?;
    Ok(())
}

/// One batch, or (when it fails) its tables one by one.
async fn run_batch(
    c: &tokio_postgres::Client,
    target: &Endpoint,
    batch: &[Table],
    vacuum: bool,
) -> Result<(), PgError> {
    let first = c.batch_execute(&statement(batch, vacuum)).await;
    if first.is_ok() {
        return Ok(());
    }
    let verb = if vacuum {
        "VACUUM (ANALYZE)"
    } else {
        "ANALYZE"
    };
    if batch.len() == 1 {
        let t = &batch[0];
        return first.map_err(|e| {
            target.query_error(&format!("{verb} of table {}.{}", t.schema, t.name), &e)
        });
    }
    for t in batch {
        c.batch_execute(&statement(std::slice::from_ref(t), vacuum))
            .await
            .map_err(|e| {
                target.query_error(&format!("{verb} of table {}.{}", t.schema, t.name), &e)
            })?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(name: &str, bytes: i64) -> Table {
        Table {
            schema: "public".into(),
            name: name.into(),
            bytes,
        }
    }

    #[test]
    fn big_tables_go_alone_and_small_ones_in_hundreds() {
        let mut tables = vec![t("big", ALONE_BYTES), t("bigger", ALONE_BYTES * 2)];
        tables.extend((0..250).map(|i| t(&format!("s{i}"), 8192)));
        let b = batches(tables, BATCH_TABLES);
        let sizes: Vec<usize> = b.iter().map(Vec::len).collect();
        assert_eq!(sizes, vec![1, 1, 100, 100, 50]);
        assert_eq!(b[0][0].name, "big");
        assert_eq!(b.iter().map(Vec::len).sum::<usize>(), 252);
    }

    #[test]
    fn one_table_a_statement_before_postgresql_11() {
        let b = batches(vec![t("a", 1), t("b", 1)], 1);
        assert_eq!(b.len(), 2);
        assert!(batches(Vec::new(), BATCH_TABLES).is_empty());
    }

    #[test]
    fn statements_quote_every_name() {
        let tables = vec![
            t("plain", 1),
            Table {
                schema: "Odd \"s\"".into(),
                name: "x;y".into(),
                bytes: 1,
            },
        ];
        assert_eq!(
            statement(&tables, true),
            "VACUUM (ANALYZE) \"public\".\"plain\", \"Odd \"\"s\"\"\".\"x;y\""
        );
        assert_eq!(
            statement(&tables[..1], false),
            "ANALYZE \"public\".\"plain\""
        );
    }
}
