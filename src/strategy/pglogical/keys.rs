//! Step `keys`: the primary keys and replica-identity indexes, restored from post-data before
//! pglogical's sync (it applies updates and deletes by them, and refuses a table without one
//! in a set that replicates them); the rest of post-data waits until the sync is done.

use std::collections::HashSet;

use crate::pg::{Endpoint, PgError};
use crate::strategy::dump_restore::toc::Entry;

/// On the source: every primary-key or replica-identity index: schema, index name, table.
pub const KEY_INDEXES_SQL: &str = "SELECT n.nspname::text, ci.relname::text, ct.relname::text
  FROM pg_catalog.pg_index i
  JOIN pg_catalog.pg_class ci ON ci.oid = i.indexrelid
  JOIN pg_catalog.pg_class ct ON ct.oid = i.indrelid
  JOIN pg_catalog.pg_namespace n ON n.oid = ci.relnamespace
 WHERE (i.indisprimary OR i.indisreplident)
   AND n.nspname NOT IN ('pg_catalog', 'information_schema', 'pglogical')";

/// A key index: (schema, index, table).
pub type KeyIndex = (String, String, String);

/// The source's key indexes ([`KEY_INDEXES_SQL`]).
pub async fn key_indexes(source: &Endpoint) -> Result<Vec<KeyIndex>, PgError> {
    let c = source.connect().await?;
    Ok(c.query(KEY_INDEXES_SQL, &[])
        .await
        .map_err(|e| source.query_error("listing primary keys and replica-identity indexes", &e))?
        .iter()
        .map(|r| (r.get(0), r.get(1), r.get(2)))
        .collect())
}

/// The post-data entries that create one of `keys`: an `INDEX` tagged with its name, or a
/// `CONSTRAINT` tagged `<table> <index>` (a primary key or unique constraint's index has the
/// constraint's name). pg_dump writes `REPLICA IDENTITY USING INDEX` in the same entry.
pub fn key_entries(entries: &[Entry], keys: &[KeyIndex]) -> Vec<Entry> {
    let indexes: HashSet<(&str, &str)> = keys
        .iter()
        .map(|(s, i, _)| (s.as_str(), i.as_str()))
        .collect();
    let constraints: HashSet<(&str, String)> = keys
        .iter()
        .map(|(s, i, t)| (s.as_str(), format!("{t} {i}")))
        .collect();
    entries
        .iter()
        .filter(|e| match e.kind.as_str() {
            "INDEX" => indexes.contains(&(e.schema.as_str(), e.tag.as_str())),
            "CONSTRAINT" => constraints.contains(&(e.schema.as_str(), e.tag.clone())),
            _ => false,
        })
        .cloned()
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::strategy::dump_restore::toc;

    #[test]
    fn only_key_indexes_and_constraints_are_picked() {
        let listing = "\
3290; 2606 16552 CONSTRAINT public t t_pkey postgres
3291; 2606 16553 CONSTRAINT public t t_code_key postgres
3292; 1259 16554 INDEX public u_ri postgres
3293; 1259 16555 INDEX public u_other postgres
3294; 2606 16556 FK CONSTRAINT public c c_t_fkey postgres
";
        let entries = toc::parse(listing).expect("toc");
        let keys = vec![
            ("public".to_string(), "t_pkey".to_string(), "t".to_string()),
            ("public".to_string(), "u_ri".to_string(), "u".to_string()),
        ];
        let picked: Vec<i32> = key_entries(&entries, &keys)
            .iter()
            .map(|e| e.dump_id)
            .collect();
        assert_eq!(picked, [3290, 3292]);
    }
}
