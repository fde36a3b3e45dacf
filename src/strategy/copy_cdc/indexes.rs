//! The full load's index builds: each table's indexes (and primary/unique constraints) built
//! as soon as its last chunk is in, `index_jobs` at a time, while other tables still load.
//!
//! Every build is a `pg_restore -L | psql --single-transaction` of TOC entries, and pg_restore
//! reads the dump's whole TOC each time: one process pair per index would cost O(tables) each,
//! O(tables²) in all (1,000 tables: 1,200 builds of ~40 ms). The indexes of small tables are
//! therefore built in batches: when a worker is free it takes every small table finished
//! meanwhile (up to [`BATCH_ENTRIES`] entries), so the number of processes stays bounded by
//! how long each takes, not by the table count. A large table's indexes are still built one
//! per worker, in parallel with each other.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use tokio::sync::mpsc::error::TryRecvError;
use tokio::sync::mpsc::UnboundedReceiver;

use super::CopyError;
use crate::strategy::dump_restore::{self, toc::Entry};
use crate::tools;

/// Source index names with their table and schema, to place each index TOC entry: one row
/// per index of a user schema (schema, index name, table name).
const INDEX_OWNERS_SQL: &str = "SELECT n.nspname, ci.relname, ct.relname
    FROM pg_index i
    JOIN pg_class ci ON ci.oid = i.indexrelid
    JOIN pg_class ct ON ct.oid = i.indrelid
    JOIN pg_namespace n ON n.oid = ci.relnamespace
    WHERE n.nspname NOT IN ('pg_catalog', 'information_schema')";

pub(super) type TableKey = (String, String);

/// Tables whose heap is below this many bytes have their indexes built in batches (an index
/// build on them takes milliseconds, less than starting pg_restore and psql).
pub(super) const SMALL_TABLE_BYTES: i64 = 16 * 1024 * 1024;

/// At most this many TOC entries in one batch: one transaction, whose locks (two per index:
/// the table's and the index's) must fit the server's lock table (by default 64 per
/// connection).
pub(super) const BATCH_ENTRIES: usize = 100;

/// Groups the Indexes-wave entries by the table they belong to (entries whose table is not
/// found, such as those of partitioned parents, are left for the post-data step).
pub(super) async fn index_entries_by_table(
    base: &dump_restore::Job,
    entries: Vec<Entry>,
) -> Result<HashMap<TableKey, Vec<Entry>>, CopyError> {
    let client = base.source.connect().await?;
    let rows = client
        .query(INDEX_OWNERS_SQL, &[])
        .await
        .map_err(|e| base.source.query_error("listing indexes", &e))?;
    let owners: Vec<(String, String, String)> = rows
        .iter()
        .map(|r| (r.get(0), r.get(1), r.get(2)))
        .collect();
    Ok(group_by_table(entries, &owners))
}

/// [`index_entries_by_table`] on the rows of [`INDEX_OWNERS_SQL`] (schema, index, table).
fn group_by_table(
    entries: Vec<Entry>,
    owners: &[(String, String, String)],
) -> HashMap<TableKey, Vec<Entry>> {
    // (schema, index name) -> table; a unique or primary-key constraint's index has its name,
    // and its CONSTRAINT entry's tag is "<table> <constraint>".
    let mut by_index: HashMap<(&str, &str), &str> = HashMap::with_capacity(owners.len());
    let mut by_tag: HashMap<(&str, String), &str> = HashMap::with_capacity(owners.len());
    for (schema, index, table) in owners {
        by_index.insert((schema, index), table);
        by_tag.insert((schema, format!("{table} {index}")), table);
    }
    let mut out: HashMap<TableKey, Vec<Entry>> = HashMap::new();
    for e in entries {
        let table = match e.kind.as_str() {
            "INDEX" => by_index.get(&(e.schema.as_str(), e.tag.as_str())).copied(),
            "CONSTRAINT" => by_tag.get(&(e.schema.as_str(), e.tag.clone())).copied(),
            _ => None,
        };
        if let Some(t) = table {
            out.entry((e.schema.clone(), t.to_string()))
                .or_default()
                .push(e);
        }
    }
    out
}

/// Builds each table's indexes once the table is loaded, `index_jobs` at a time.
pub(super) struct IndexBuilder {
    pub job: dump_restore::Job,
    pub pg_restore: tools::Tool,
    pub psql: tools::Tool,
    pub dir: std::path::PathBuf,
    pub by_table: HashMap<TableKey, Vec<Entry>>,
    /// Tables under [`SMALL_TABLE_BYTES`]: their indexes are built in batches.
    pub small: HashSet<TableKey>,
}

fn builder_error(message: String) -> CopyError {
    CopyError::Chunk {
        table: "?".into(),
        chunk: -1,
        message,
    }
}

async fn acquire(
    permits: &Arc<tokio::sync::Semaphore>,
) -> Result<tokio::sync::OwnedSemaphorePermit, CopyError> {
    permits
        .clone()
        .acquire_owned()
        .await
        .map_err(|e| builder_error(format!("index builder: {e}")))
}

impl IndexBuilder {
    /// Builds the indexes of each table `done` announces; returns how many entries it built.
    pub(super) async fn run(
        mut self,
        mut done: UnboundedReceiver<TableKey>,
    ) -> Result<usize, CopyError> {
        let permits = Arc::new(tokio::sync::Semaphore::new(self.job.index_jobs.max(1)));
        let mut set = tokio::task::JoinSet::new();
        let mut built = 0;
        // Large tables the batching below took off the channel, to build next.
        let mut later: Vec<TableKey> = Vec::new();
        loop {
            let key = match later.pop() {
                Some(k) => k,
                None => match done.recv().await {
                    Some(k) => k,
                    None => break,
                },
            };
            let entries = self.by_table.remove(&key).unwrap_or_default();
            if entries.is_empty() {
                continue;
            }
            if self.small.contains(&key) {
                let mut batch = entries;
                // Once a worker is free, the small tables finished meanwhile join the batch.
                let permit = acquire(&permits).await?;
                while batch.len() < BATCH_ENTRIES {
                    match done.try_recv() {
                        Ok(k) if self.small.contains(&k) => {
                            batch.extend(self.by_table.remove(&k).unwrap_or_default())
                        }
                        Ok(k) => later.push(k),
                        Err(TryRecvError::Empty | TryRecvError::Disconnected) => break,
                    }
                }
                set.spawn(self.build(batch, permit));
            } else {
                // A large table: each index on its own worker.
                for e in entries {
                    let permit = acquire(&permits).await?;
                    set.spawn(self.build(vec![e], permit));
                }
            }
            while let Some(r) = set.try_join_next() {
                built += r.map_err(|e| builder_error(e.to_string()))??;
            }
        }
        while let Some(r) = set.join_next().await {
            built += r.map_err(|e| builder_error(e.to_string()))??;
        }
        Ok(built)
    }

    /// One transaction building `entries` and recording each as restored.
    fn build(
        &self,
        entries: Vec<Entry>,
        permit: tokio::sync::OwnedSemaphorePermit,
    ) -> impl std::future::Future<Output = Result<usize, CopyError>> + Send + 'static {
        let (job, pg_restore, psql, dir) = (
            self.job.clone(),
            self.pg_restore.clone(),
            self.psql.clone(),
            self.dir.clone(),
        );
        async move {
            let _permit = permit;
            let what = match entries.as_slice() {
                [one] => one.object(),
                many => format!("{} indexes and constraints of small tables", many.len()),
            };
            let items: Vec<&Entry> = entries.iter().collect();
            dump_restore::restore_batch(
                &job,
                &pg_restore,
                &psql,
                &dir,
                &items,
                "SET maintenance_work_mem = '256MB';\n",
                &what,
            )
            .await?;
            Ok(entries.len())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(id: i32, kind: &str, tag: &str) -> Entry {
        Entry {
            dump_id: id,
            kind: kind.into(),
            schema: "public".into(),
            tag: tag.into(),
            owner: "postgres".into(),
            line: String::new(),
        }
    }

    #[test]
    fn index_and_constraint_entries_are_placed_on_their_table() {
        let owners = vec![
            ("public".into(), "t_1_pkey".into(), "t_1".into()),
            ("public".into(), "t_1_n".into(), "t_1".into()),
            ("public".into(), "t 2_pkey".into(), "t 2".into()),
            ("other".into(), "t_1_pkey".into(), "t_1".into()),
        ];
        let entries = vec![
            entry(1, "CONSTRAINT", "t_1 t_1_pkey"),
            entry(2, "INDEX", "t_1_n"),
            entry(3, "CONSTRAINT", "t 2 t 2_pkey"),
            entry(4, "INDEX", "parent_idx"),
        ];
        let by = group_by_table(entries, &owners);
        let ids = |t: &str| -> Vec<i32> {
            by.get(&("public".to_string(), t.to_string()))
                .map(|v| v.iter().map(|e| e.dump_id).collect())
                .unwrap_or_default()
        };
        assert_eq!(ids("t_1"), vec![1, 2]);
        assert_eq!(ids("t 2"), vec![3]);
        assert_eq!(
            by.len(),
            2,
            "an index of no known table is left for post-data: {by:?}"
        );
    }
}
