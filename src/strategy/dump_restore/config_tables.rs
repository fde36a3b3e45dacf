//! Extension configuration tables (`pg_extension_config_dump`, e.g. PostGIS's
//! `spatial_ref_sys`) on a target whose role may not write them: on a managed server the
//! extension belongs to whoever created it (the master user, or another member of
//! `rds_superuser`), not to the role pgmove restores as. pg_dump dumps only the rows of such a
//! table that match the extension's condition (the user's own rows, not the extension's); when
//! the source has none, there is nothing to restore into it and the item is left out; when it
//! has some, the restore stops before the data with the fix: a grant by the table's owner.

use std::collections::HashSet;

use crate::pg::{quote, Endpoint, PgError};

/// The target's extension configuration tables that the connecting role may not INSERT
/// into: schema, table, owner.
const UNWRITABLE_SQL: &str =
    "SELECT n.nspname::text, c.relname::text, pg_catalog.pg_get_userbyid(c.relowner)::text
  FROM pg_catalog.pg_extension e
  CROSS JOIN LATERAL unnest(e.extconfig) AS x(reloid)
  JOIN pg_catalog.pg_class c ON c.oid = x.reloid
  JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
 WHERE c.relkind = 'r' AND NOT pg_catalog.has_table_privilege(c.oid, 'INSERT')";

/// The source's dump condition (`extcondition`: '' or `WHERE ...`) of configuration table
/// `$1` (a qualified, quoted name); no row when it is none.
const CONDITION_SQL: &str = "SELECT coalesce(x.cond, '')
  FROM pg_catalog.pg_extension e
  CROSS JOIN LATERAL unnest(e.extconfig, e.extcondition) AS x(reloid, cond)
 WHERE x.reloid = $1::text::regclass";

/// A configuration table the target role cannot write.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Unwritable {
    pub schema: String,
    pub table: String,
    pub owner: String,
}

impl Unwritable {
    /// The statement its owner runs so that `role` may restore the source's rows into it.
    pub fn fix(&self, role: &str) -> String {
        format!(
            "as {} (on RDS/Aurora: the master user, if it created the extension): GRANT INSERT, UPDATE, DELETE ON {} TO {};",
            quote::ident(&self.owner),
            quote::qualified(&self.schema, &self.table),
            quote::ident(role)
        )
    }
}

/// The target's configuration tables its role may not write.
pub async fn unwritable(target: &Endpoint) -> Result<HashSet<Unwritable>, PgError> {
    let c = target.connect().await?;
    let rows = c.query(UNWRITABLE_SQL, &[]).await.map_err(|e| {
        target.query_error(
            "listing the extensions' configuration tables the role may not write",
            &e,
        )
    })?;
    Ok(rows
        .iter()
        .map(|r| Unwritable {
            schema: r.get(0),
            table: r.get(1),
            owner: r.get(2),
        })
        .collect())
}

/// How many rows pg_dump dumps of configuration table `schema.table` on the source: those
/// matching its extension's condition.
pub async fn dumpable_rows(source: &Endpoint, schema: &str, table: &str) -> Result<i64, PgError> {
    let c = source.connect().await?;
    let name = quote::qualified(schema, table);
    let what = format!("counting the dumped rows of configuration table {name}");
    let cond: String = c
        .query_opt(CONDITION_SQL, &[&name])
        .await
        .map_err(|e| source.query_error(&what, &e))?
        .map(|r| r.get(0))
        .unwrap_or_default();
    let row = c
        .query_one(
            format!("SELECT count(*) FROM ONLY {name} {}", cond.trim()).as_str(),
            &[],
        )
        .await
        .map_err(|e| source.query_error(&what, &e))?;
    Ok(row.get(0))
}
