//! `pgmove.source_objects`: the record of what copy-cdc creates on the source outside its
//! `pgmove` schema (slots, publications), the proof that an object of such a name is pgmove's
//! (see `crate::owned`, which judges the records).

use tokio_postgres::GenericClient;

use crate::pg::{Endpoint, PgError};

/// The record's table.
pub const TABLE: &str = "source_objects";

/// The state of a row once the object exists (before: `intended`).
pub const CREATED: &str = "created";

/// The plan `$1`'s records: kind, name, source database, source system identifier (NULL when
/// it was not readable), state.
const RECORDS_SQL: &str = "SELECT kind, name, source_database, source_system_id, state \
     FROM pgmove.source_objects WHERE plan_name = $1 ORDER BY kind, name";

/// Writes (or rewrites) one record as `intended`: $1 plan, $2 kind, $3 name, $4 source
/// endpoint, $5 database, $6 system identifier.
const INTEND_SQL: &str = "INSERT INTO pgmove.source_objects \
       (plan_name, kind, name, source, source_database, source_system_id, state) \
     VALUES ($1, $2, $3, $4, $5, $6, 'intended') \
     ON CONFLICT (plan_name, kind, name) DO UPDATE SET source = EXCLUDED.source, \
       source_database = EXCLUDED.source_database, source_system_id = EXCLUDED.source_system_id, \
       state = 'intended', recorded_at = now()";

/// Marks one record `created`: $1 plan, $2 kind, $3 name.
const CREATED_SQL: &str =
    "UPDATE pgmove.source_objects SET state = 'created', recorded_at = now() \
     WHERE plan_name = $1 AND kind = $2 AND name = $3";

/// One record row.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Row {
    pub kind: String,
    pub name: String,
    pub source_database: String,
    pub source_system_id: Option<String>,
    pub state: String,
}

/// An object about to be created.
pub struct Intended<'a> {
    pub kind: &'a str,
    pub name: &'a str,
    /// The source endpoint, as displayed (no secret).
    pub source: &'a str,
    pub database: &'a str,
    pub system_id: Option<&'a str>,
}

/// The plan's records, by kind and name (the table must exist: see `state::has_table`).
pub async fn records(
    c: &impl GenericClient,
    ep: &Endpoint,
    plan_name: &str,
) -> Result<Vec<Row>, PgError> {
    let rows = c
        .query(RECORDS_SQL, &[&plan_name])
        .await
        .map_err(|e| ep.query_error(&format!("reading pgmove.{TABLE}"), &e))?;
    Ok(rows
        .iter()
        .map(|r| Row {
            kind: r.get(0),
            name: r.get(1),
            source_database: r.get(2),
            source_system_id: r.get(3),
            state: r.get(4),
        })
        .collect())
}

/// Records an object as `intended`, before it is created.
pub async fn intend(
    c: &impl GenericClient,
    ep: &Endpoint,
    plan_name: &str,
    o: &Intended<'_>,
) -> Result<(), PgError> {
    c.execute(
        INTEND_SQL,
        &[
            &plan_name,
            &o.kind,
            &o.name,
            &o.source,
            &o.database,
            &o.system_id,
        ],
    )
    .await
    .map_err(|e| {
        ep.query_error(
            &format!("recording the {} {} pgmove creates", o.kind, o.name),
            &e,
        )
    })?;
    Ok(())
}

/// Marks an object's record `created`.
pub async fn created(
    c: &impl GenericClient,
    ep: &Endpoint,
    plan_name: &str,
    kind: &str,
    name: &str,
) -> Result<(), PgError> {
    c.execute(CREATED_SQL, &[&plan_name, &kind, &name])
        .await
        .map_err(|e| ep.query_error(&format!("recording the {kind} {name} as created"), &e))?;
    Ok(())
}
