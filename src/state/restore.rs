//! `pgmove.restore_items`: the items of a dump restored (by dump id).

use tokio_postgres::GenericClient;

use super::State;
use crate::pg::{quote, Endpoint, PgError};

/// Dump ids of the plan `$1`'s restored items.
const ITEMS_SQL: &str = "SELECT dump_id FROM pgmove.restore_items WHERE plan_name = $1";

/// How many items of the plan `$1` are restored (one bigint).
const COUNT_SQL: &str = "SELECT count(*) FROM pgmove.restore_items WHERE plan_name = $1";

impl State<'_> {
    /// Dump ids of restore items already applied.
    pub async fn finished_items(&self) -> Result<Vec<i32>, PgError> {
        let rows = self
            .client
            .query(ITEMS_SQL, &[&self.plan_name])
            .await
            .map_err(|e| self.target.query_error("reading pgmove.restore_items", &e))?;
        Ok(rows.iter().map(|r| r.get(0)).collect())
    }
}

/// The statement that records a restore item as applied, for inclusion in its transaction.
pub fn finish_item_sql(plan_name: &str, dump_id: i32, kind: &str, object: &str) -> String {
    format!(
        "INSERT INTO pgmove.restore_items (plan_name, dump_id, kind, object) VALUES ({}, {dump_id}, {}, {});\n",
        quote::literal(plan_name),
        quote::literal(kind),
        quote::literal(object)
    )
}

/// How many items of the plan are restored.
pub async fn count(c: &impl GenericClient, ep: &Endpoint, plan_name: &str) -> Result<i64, PgError> {
    let row = c
        .query_one(COUNT_SQL, &[&plan_name])
        .await
        .map_err(|e| ep.query_error("reading pgmove.restore_items", &e))?;
    Ok(row.get(0))
}
