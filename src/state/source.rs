//! The source's own `pgmove` schema, made by the DDL capture (`crate::cdc::ddl`): its marker
//! (the same [`super::MARKER_TABLE`] as the target's) and `pgmove.objects`, the record of what
//! the capture created per plan, written in the transaction that creates it; `pgmove cleanup`
//! drops exactly these (by exact name). This schema is not versioned: the capture's install
//! SQL creates it idempotently.

use tokio_postgres::GenericClient;

use crate::pg::{quote, Endpoint, PgError};

/// The record's table.
pub const RECORD_TABLE: &str = "objects";

/// Kinds of [`RECORD_TABLE`] rows.
pub const RECORD_EVENT_TRIGGER: &str = "event trigger";
pub const RECORD_FUNCTION: &str = "function";
pub const RECORD_TABLE_KIND: &str = "table";

/// Refuses to install into a `pgmove` schema pgmove did not create (no marker table): a user's
/// own schema of that name is never written to.
pub const GUARD_SQL: &str = "DO $pgmove_guard$
BEGIN
  IF EXISTS (SELECT 1 FROM pg_catalog.pg_namespace WHERE nspname = 'pgmove')
     AND pg_catalog.to_regclass('pgmove.created_by_pgmove') IS NULL THEN
    RAISE EXCEPTION 'the source has a schema named pgmove that pgmove did not create (it has no table pgmove.created_by_pgmove): pgmove does not install its DDL capture (cdc.ddl: replicate) into it'
      USING HINT = 'rename it on the source (ALTER SCHEMA pgmove RENAME TO pgmove_data;), or set cdc.ddl to ignore or refuse';
  END IF;
END
$pgmove_guard$;
";

/// Whether the record exists (one boolean).
const HAS_RECORD_SQL: &str = "SELECT to_regclass('pgmove.objects') IS NOT NULL";

/// What the plan `$1`'s capture recorded creating: (kind, exact name) rows.
const RECORDED_SQL: &str =
    "SELECT kind, name FROM pgmove.objects WHERE plan_name = $1 ORDER BY kind, name";

/// The plans that recorded objects: one name a row.
const RECORDED_PLANS_SQL: &str = "SELECT DISTINCT plan_name FROM pgmove.objects";

/// Creates the record if missing and records the plan's objects (`(kind, name)`), for the
/// transaction that creates them.
pub fn record_sql(plan_name: &str, objects: &[(&str, &str)]) -> String {
    let rows: Vec<String> = objects
        .iter()
        .map(|(kind, name)| {
            format!(
                "({}, {}, {})",
                quote::literal(plan_name),
                quote::literal(kind),
                quote::literal(name)
            )
        })
        .collect();
    format!(
        "CREATE TABLE IF NOT EXISTS {table} (
    plan_name  text NOT NULL,
    kind       text NOT NULL,
    name       text NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (kind, name)
);
REVOKE ALL ON TABLE {table} FROM PUBLIC;
INSERT INTO {table} (plan_name, kind, name) VALUES {rows} ON CONFLICT (kind, name) DO NOTHING;
",
        table = quote::qualified(super::SCHEMA, RECORD_TABLE),
        rows = rows.join(", ")
    )
}

/// Lets `role` use a capture the master user installed (`pgmove setup-sql`, see
/// `crate::cdc::ddl::setup`): USAGE on the schema, SELECT on the record (cleanup reads it) and
/// on the marker. Run by the schema's owner after the capture's install SQL.
pub fn grant_use_sql(role: &str) -> String {
    let r = quote::ident(role);
    format!(
        "GRANT USAGE ON SCHEMA {schema} TO {r};\nGRANT SELECT ON TABLE {record} TO {r};\nGRANT SELECT ON TABLE {marker} TO {r};\n",
        schema = quote::ident(super::SCHEMA),
        record = quote::qualified(super::SCHEMA, RECORD_TABLE),
        marker = quote::qualified(super::SCHEMA, super::MARKER_TABLE),
    )
}

/// What the plan's capture recorded creating on this server: (kind, name), none when there is
/// no record.
pub async fn recorded(
    c: &impl GenericClient,
    ep: &Endpoint,
    plan_name: &str,
) -> Result<Vec<(String, String)>, PgError> {
    let has: bool = c
        .query_one(HAS_RECORD_SQL, &[])
        .await
        .map_err(|e| ep.query_error("looking for pgmove.objects", &e))?
        .get(0);
    if !has {
        return Ok(Vec::new());
    }
    let rows = c
        .query(RECORDED_SQL, &[&plan_name])
        .await
        .map_err(|e| ep.query_error("reading pgmove.objects", &e))?;
    Ok(rows.iter().map(|r| (r.get(0), r.get(1))).collect())
}

/// The plans that recorded objects (the record must exist).
pub async fn recorded_plans(c: &impl GenericClient, ep: &Endpoint) -> Result<Vec<String>, PgError> {
    let rows = c
        .query(RECORDED_PLANS_SQL, &[])
        .await
        .map_err(|e| ep.query_error("listing pgmove's recorded plans", &e))?;
    Ok(rows.iter().map(|r| r.get(0)).collect())
}
