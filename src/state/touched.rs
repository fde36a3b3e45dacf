//! `pgmove.verify_ahead` and `pgmove.touched`: cutover's verification before the fence (see
//! `crate::cutover::ahead`). While a plan has a `verify_ahead` row, change capture records the
//! keys it touches in `pgmove.touched`, in the transaction of the changes ([`record_sql`]);
//! the first such transaction sets `acked_at`, after which every change applied is recorded.

use tokio_postgres::GenericClient;

use crate::pg::{quote, Endpoint, PgError};

/// Starts (or restarts) plan `$1`'s pre-verification: its touched keys forgotten, a fresh
/// request waiting for change capture's acknowledgement.
const START_SQL: &str = "DELETE FROM pgmove.touched WHERE plan_name = $1";
const REQUEST_SQL: &str = "INSERT INTO pgmove.verify_ahead (plan_name) VALUES ($1)
    ON CONFLICT (plan_name) DO UPDATE SET requested_at = now(), acked_at = NULL";

/// Whether plan `$1`'s change capture acknowledged the request (NULL: no request).
const ACKED_SQL: &str = "SELECT acked_at IS NOT NULL FROM pgmove.verify_ahead WHERE plan_name = $1";

/// Whether plan `$1` has a pre-verification in progress.
const ACTIVE_SQL: &str = "SELECT EXISTS (SELECT 1 FROM pgmove.verify_ahead WHERE plan_name = $1)";

/// Ends plan `$1`'s pre-verification: the request and its keys go.
const END_SQL: &str = "DELETE FROM pgmove.verify_ahead WHERE plan_name = $1";

/// Plan `$1`'s touched keys: schema, table, key columns, key (empty: the whole table; an empty
/// schema and table: every table).
const READ_SQL: &str = "SELECT schema_name, table_name, key_columns, key FROM pgmove.touched
    WHERE plan_name = $1 ORDER BY 1, 2";

/// One key touched (or a whole table, or everything) by change capture.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct Touch {
    /// Empty with `table`: every table.
    pub schema: String,
    pub table: String,
    /// The replica identity's columns the key is made of.
    pub key_columns: Vec<String>,
    /// Empty: the whole table.
    pub key: Vec<String>,
}

/// Asks change capture to record what it touches from now on, forgetting an earlier request's
/// keys.
pub async fn request(c: &impl GenericClient, ep: &Endpoint, plan: &str) -> Result<(), PgError> {
    for sql in [START_SQL, REQUEST_SQL] {
        c.execute(sql, &[&plan])
            .await
            .map_err(|e| ep.query_error("requesting the cutover's pre-verification", &e))?;
    }
    Ok(())
}

/// Whether change capture acknowledged the request (it records every change from then on).
pub async fn acked(c: &impl GenericClient, ep: &Endpoint, plan: &str) -> Result<bool, PgError> {
    let row = c
        .query_opt(ACKED_SQL, &[&plan])
        .await
        .map_err(|e| ep.query_error("reading pgmove.verify_ahead", &e))?;
    Ok(row.is_some_and(|r| r.get(0)))
}

/// Whether a pre-verification of the plan is in progress (change capture must record).
pub async fn active(c: &impl GenericClient, ep: &Endpoint, plan: &str) -> Result<bool, PgError> {
    let row = c
        .query_one(ACTIVE_SQL, &[&plan])
        .await
        .map_err(|e| ep.query_error("reading pgmove.verify_ahead", &e))?;
    Ok(row.get(0))
}

/// The keys recorded since the acknowledgement.
pub async fn read(
    c: &impl GenericClient,
    ep: &Endpoint,
    plan: &str,
) -> Result<Vec<Touch>, PgError> {
    let rows = c
        .query(READ_SQL, &[&plan])
        .await
        .map_err(|e| ep.query_error("reading pgmove.touched", &e))?;
    Ok(rows
        .iter()
        .map(|r| Touch {
            schema: r.get(0),
            table: r.get(1),
            key_columns: r.get(2),
            key: r.get(3),
        })
        .collect())
}

/// Ends the pre-verification: change capture stops recording, the keys go.
pub async fn end(c: &impl GenericClient, ep: &Endpoint, plan: &str) -> Result<(), PgError> {
    for sql in [END_SQL, START_SQL] {
        c.execute(sql, &[&plan])
            .await
            .map_err(|e| ep.query_error("ending the cutover's pre-verification", &e))?;
    }
    Ok(())
}

/// `ARRAY['a', 'b']::text[]`.
fn text_array(values: &[String]) -> String {
    let v: Vec<String> = values.iter().map(|x| quote::literal(x)).collect();
    format!("ARRAY[{}]::text[]", v.join(", "))
}

/// The statements change capture adds to a target transaction while plan `plan` is being
/// pre-verified: `touches` recorded (only while the request is there: a capture that has not
/// seen the end yet writes nothing), and the acknowledgement.
pub fn record_sql(plan: &str, touches: &[Touch]) -> String {
    let p = quote::literal(plan);
    let mut sql = String::new();
    if !touches.is_empty() {
        let rows: Vec<String> = touches
            .iter()
            .map(|t| {
                format!(
                    "({p}, {}, {}, {}, {})",
                    quote::literal(&t.schema),
                    quote::literal(&t.table),
                    text_array(&t.key_columns),
                    text_array(&t.key)
                )
            })
            .collect();
        sql.push_str(&format!(
            "INSERT INTO pgmove.touched (plan_name, schema_name, table_name, key_columns, key)
SELECT v.* FROM (VALUES {}) v
WHERE EXISTS (SELECT 1 FROM pgmove.verify_ahead WHERE plan_name = {p})
ON CONFLICT DO NOTHING;\n",
            rows.join(",\n")
        ));
    }
    sql.push_str(&format!(
        "UPDATE pgmove.verify_ahead SET acked_at = clock_timestamp() WHERE plan_name = {p} AND acked_at IS NULL;\n"
    ));
    sql
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn record_sql_quotes_and_acknowledges() {
        let s = record_sql(
            "p'1",
            &[Touch {
                schema: "s".into(),
                table: "t\"x".into(),
                key_columns: vec!["id".into()],
                key: vec!["it's".into()],
            }],
        );
        assert!(
            s.contains("('p''1', 's', 't\"x', ARRAY['id']::text[], ARRAY['it''s']::text[])"),
            "{s}"
        );
        assert!(s.contains("ON CONFLICT DO NOTHING;"), "{s}");
        assert!(
            s.ends_with("WHERE plan_name = 'p''1' AND acked_at IS NULL;\n"),
            "{s}"
        );
        let only_ack = record_sql("p", &[]);
        assert!(!only_ack.contains("INSERT"), "{only_ack}");
        assert!(
            only_ack.contains("UPDATE pgmove.verify_ahead"),
            "{only_ack}"
        );
    }
}
