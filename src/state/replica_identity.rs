//! `pgmove.replica_identity`: the source tables' replica identities before copy-cdc set
//! REPLICA IDENTITY FULL, so the target's copies and, at cleanup, the source get them back.

use tokio_postgres::GenericClient;

use crate::pg::{Endpoint, PgError};

/// The identities recorded for plan `$1` (all plans when NULL): schema, table, relreplident
/// (d, n, f or i), index name.
const RECORDED_SQL: &str = "SELECT schema_name, table_name, relreplident, index_name
  FROM pgmove.replica_identity WHERE $1::text IS NULL OR plan_name = $1 ORDER BY 1, 2";

/// Records one identity of plan `$1` (a rerun keeps the first record).
const RECORD_SQL: &str =
    "INSERT INTO pgmove.replica_identity VALUES ($1, $2, $3, $4, $5) ON CONFLICT DO NOTHING";

/// One recorded identity.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Identity {
    pub schema: String,
    pub table: String,
    /// `relreplident`: d, n, f or i.
    pub mode: String,
    /// The identity index, for i.
    pub index: Option<String>,
}

/// The identities recorded for the plan (`None`: every plan's), by schema and table.
pub async fn recorded(
    c: &impl GenericClient,
    ep: &Endpoint,
    plan_name: Option<&str>,
) -> Result<Vec<Identity>, PgError> {
    let rows = c
        .query(RECORDED_SQL, &[&plan_name])
        .await
        .map_err(|e| ep.query_error("reading pgmove.replica_identity", &e))?;
    Ok(rows
        .iter()
        .map(|r| Identity {
            schema: r.get(0),
            table: r.get(1),
            mode: r.get(2),
            index: r.get(3),
        })
        .collect())
}

/// Records a table's identity before it becomes FULL; a rerun keeps the first record.
pub async fn record(
    c: &impl GenericClient,
    ep: &Endpoint,
    plan_name: &str,
    i: &Identity,
) -> Result<(), PgError> {
    c.execute(
        RECORD_SQL,
        &[&plan_name, &i.schema, &i.table, &i.mode, &i.index],
    )
    .await
    .map_err(|e| {
        ep.query_error(
            &format!("recording the replica identity of {}.{}", i.schema, i.table),
            &e,
        )
    })?;
    Ok(())
}
