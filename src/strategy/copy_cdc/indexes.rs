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
use crate::strategy::dump_restore::{self, index_owners, toc::Entry};
use crate::tools;

pub(super) use crate::strategy::dump_restore::index_owners::{TableKey, SMALL_TABLE_BYTES};

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
    let owners = index_owners::read(&base.source).await?;
    Ok(index_owners::group_by_table(entries, &owners))
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
    /// What each build's transaction starts with ([`dump_restore::index_session`]).
    pub prefix: String,
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
        let (job, pg_restore, psql, dir, prefix) = (
            self.job.clone(),
            self.pg_restore.clone(),
            self.psql.clone(),
            self.dir.clone(),
            self.prefix.clone(),
        );
        async move {
            let _permit = permit;
            let what = match entries.as_slice() {
                [one] => one.object(),
                many => format!("{} indexes and constraints of small tables", many.len()),
            };
            let items: Vec<&Entry> = entries.iter().collect();
            dump_restore::restore_batch(&job, &pg_restore, &psql, &dir, &items, &prefix, &what)
                .await?;
            Ok(entries.len())
        }
    }
}
