//! Which table each index and primary/unique constraint of the dump belongs to, and how large
//! that table is on the source: the post-data step (and copy-cdc's index builder) build the
//! indexes of small tables in batches, one transaction for many, and those of large tables
//! one per worker.

use std::collections::HashMap;

use super::toc::Entry;
use crate::pg::{Endpoint, PgError};

/// Source index names with their table, schema and the table's heap size: one row per index
/// of a user schema (schema, index name, table name, table heap bytes as bigint).
const INDEX_OWNERS_SQL: &str = "SELECT n.nspname, ci.relname, ct.relname,
           pg_catalog.pg_relation_size(ct.oid)::bigint
    FROM pg_catalog.pg_index i
    JOIN pg_catalog.pg_class ci ON ci.oid = i.indexrelid
    JOIN pg_catalog.pg_class ct ON ct.oid = i.indrelid
    JOIN pg_catalog.pg_namespace n ON n.oid = ci.relnamespace
    WHERE n.nspname NOT IN ('pg_catalog', 'information_schema')";

/// (schema, table).
pub(crate) type TableKey = (String, String);

/// Tables whose heap is below this many bytes have their indexes built in batches (an index
/// build on them takes milliseconds, less than starting pg_restore and psql).
pub(crate) const SMALL_TABLE_BYTES: i64 = 16 * 1024 * 1024;

/// One index of the source: its schema and name, its table and the table's heap bytes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct IndexOwner {
    pub schema: String,
    pub index: String,
    pub table: String,
    pub table_bytes: i64,
}

/// Every index of the source's user schemas with its table ([`INDEX_OWNERS_SQL`]).
pub(crate) async fn read(source: &Endpoint) -> Result<Vec<IndexOwner>, PgError> {
    let client = source.connect().await?;
    let rows = client
        .query(INDEX_OWNERS_SQL, &[])
        .await
        .map_err(|e| source.query_error("listing indexes", &e))?;
    Ok(rows
        .iter()
        .map(|r| IndexOwner {
            schema: r.get(0),
            index: r.get(1),
            table: r.get(2),
            table_bytes: r.get(3),
        })
        .collect())
}

/// The table of each INDEX and CONSTRAINT entry, found by name among `owners`: an index by
/// its name, a unique or primary-key constraint by its tag `"<table> <constraint>"` (its
/// index has the constraint's name). Other entries, and those of no known index, map to none.
pub(crate) struct Owners<'o> {
    by_index: HashMap<(&'o str, &'o str), &'o IndexOwner>,
    by_tag: HashMap<(&'o str, String), &'o IndexOwner>,
}

impl<'o> Owners<'o> {
    pub(crate) fn new(owners: &'o [IndexOwner]) -> Owners<'o> {
        let mut by_index = HashMap::with_capacity(owners.len());
        let mut by_tag = HashMap::with_capacity(owners.len());
        for o in owners {
            by_index.insert((o.schema.as_str(), o.index.as_str()), o);
            by_tag.insert((o.schema.as_str(), format!("{} {}", o.table, o.index)), o);
        }
        Owners { by_index, by_tag }
    }

    /// The index `e` builds (with its table), if it is one of the source's.
    pub(crate) fn of(&self, e: &Entry) -> Option<&'o IndexOwner> {
        match e.kind.as_str() {
            "INDEX" => self
                .by_index
                .get(&(e.schema.as_str(), e.tag.as_str()))
                .copied(),
            "CONSTRAINT" => self
                .by_tag
                .get(&(e.schema.as_str(), e.tag.clone()))
                .copied(),
            _ => None,
        }
    }
}

/// Groups the Indexes-wave entries by the table they belong to (entries whose table is not
/// found, such as those of partitioned parents, are left out).
pub(crate) fn group_by_table(
    entries: Vec<Entry>,
    owners: &[IndexOwner],
) -> HashMap<TableKey, Vec<Entry>> {
    let owners = Owners::new(owners);
    let mut out: HashMap<TableKey, Vec<Entry>> = HashMap::new();
    for e in entries {
        if let Some(o) = owners.of(&e) {
            out.entry((e.schema.clone(), o.table.clone()))
                .or_default()
                .push(e);
        }
    }
    out
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

    fn owner(schema: &str, index: &str, table: &str) -> IndexOwner {
        IndexOwner {
            schema: schema.into(),
            index: index.into(),
            table: table.into(),
            table_bytes: 8192,
        }
    }

    #[test]
    fn index_and_constraint_entries_are_placed_on_their_table() {
        let owners = vec![
            owner("public", "t_1_pkey", "t_1"),
            owner("public", "t_1_n", "t_1"),
            owner("public", "t 2_pkey", "t 2"),
            owner("other", "t_1_pkey", "t_1"),
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
