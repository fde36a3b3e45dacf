//! `pgmove.verify_ahead` and `pgmove.touched`: cutover's verification before the fence (see
//! `crate::cutover::ahead`). While a plan has a `verify_ahead` row whose holder (the target
//! session of the cutover that made it) lives, change capture records the keys it touches in
//! `pgmove.touched`, in the transaction of the changes ([`record_sql`]), each with the round
//! it read from the request; a transaction that reads a round not yet acknowledged
//! acknowledges it (`acked_round`; `acked_at` is the first acknowledgement), after which every
//! change applied is recorded with that round or a later one.

use std::collections::BTreeSet;

use tokio_postgres::GenericClient;

use crate::pg::{quote, Endpoint, PgError};

/// Starts (or restarts) plan `$1`'s pre-verification: its touched keys forgotten, a fresh
/// request (round 0) waiting for change capture's acknowledgement, held by this session.
const START_SQL: &str = "DELETE FROM pgmove.touched WHERE plan_name = $1";
const REQUEST_SQL: &str = "INSERT INTO pgmove.verify_ahead (plan_name, holder_pid, holder_start)
    SELECT $1, pid, backend_start FROM pg_stat_activity WHERE pid = pg_backend_pid()
    ON CONFLICT (plan_name) DO UPDATE SET requested_at = now(), acked_at = NULL, round = 0,
        acked_round = NULL, holder_pid = EXCLUDED.holder_pid,
        holder_start = EXCLUDED.holder_start";

/// Whether plan `$1`'s change capture acknowledged round `$2` (or a later one); no row: no
/// request.
const ACKED_SQL: &str = "SELECT acked_at IS NOT NULL AND acked_round >= $2
    FROM pgmove.verify_ahead WHERE plan_name = $1";

/// Begins the next round of plan `$1`'s pre-verification; returns its number.
const NEXT_ROUND_SQL: &str =
    "UPDATE pgmove.verify_ahead SET round = round + 1 WHERE plan_name = $1 RETURNING round";

/// Whether plan `$1` has a pre-verification in progress: a request whose holder session (pid
/// and start time, so a reused pid does not count) is still connected. A role that may not
/// see the holder's start time (another role's session, without `pg_read_all_stats`) reads it
/// as NULL: the pid alone then says so.
const ACTIVE_SQL: &str = "SELECT EXISTS (SELECT 1 FROM pgmove.verify_ahead v
    JOIN pg_stat_activity a ON a.pid = v.holder_pid
        AND (a.backend_start = v.holder_start OR a.backend_start IS NULL)
    WHERE v.plan_name = $1)";

/// Ends plan `$1`'s pre-verification: the request and its keys go.
const END_SQL: &str = "DELETE FROM pgmove.verify_ahead WHERE plan_name = $1";

/// Plan `$1`'s touched keys last touched in round `$2` or later, and every wholly touched
/// table (whatever its round): schema, table, key columns, key (empty: the whole table; an
/// empty schema and table: every table).
const READ_SINCE_SQL: &str = "SELECT schema_name, table_name, key_columns, key FROM pgmove.touched
    WHERE plan_name = $1 AND (round >= $2 OR key = '{}') ORDER BY 1, 2";

/// Plan `$1`'s touches last touched in round `$2` exactly (same columns).
const READ_ROUND_SQL: &str = "SELECT schema_name, table_name, key_columns, key FROM pgmove.touched
    WHERE plan_name = $1 AND round = $2 ORDER BY 1, 2";

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

/// Whether change capture acknowledged round `round` of the request (or a later one): every
/// change it applies from then on is recorded with that round or a later one.
pub async fn acked(
    c: &impl GenericClient,
    ep: &Endpoint,
    plan: &str,
    round: i32,
) -> Result<bool, PgError> {
    let row = c
        .query_opt(ACKED_SQL, &[&plan, &round])
        .await
        .map_err(|e| ep.query_error("reading pgmove.verify_ahead", &e))?;
    Ok(row.is_some_and(|r| r.get::<_, Option<bool>>(0).unwrap_or(false)))
}

/// Begins the next round; its number. Fails when the request is gone.
pub async fn next_round(c: &impl GenericClient, ep: &Endpoint, plan: &str) -> Result<i32, PgError> {
    let row = c
        .query_opt(NEXT_ROUND_SQL, &[&plan])
        .await
        .map_err(|e| ep.query_error("beginning a re-check round (pgmove.verify_ahead)", &e))?;
    row.map(|r| r.get(0)).ok_or_else(|| {
        PgError::Query {
            side: ep.side,
            message: format!(
            "the pre-verification request of plan {plan:?} is gone from pgmove.verify_ahead on the target (removed by `pgmove cleanup` or by hand?); run `pgmove cutover` again"
            ),
        }
    })
}

/// Whether a pre-verification of the plan is in progress (change capture must record): its
/// request is there and the cutover session holding it still lives.
pub async fn active(c: &impl GenericClient, ep: &Endpoint, plan: &str) -> Result<bool, PgError> {
    let row = c
        .query_one(ACTIVE_SQL, &[&plan])
        .await
        .map_err(|e| ep.query_error("reading pgmove.verify_ahead", &e))?;
    Ok(row.get(0))
}

/// The keys last touched in round `round` or later, and every wholly touched table.
pub async fn read_since(
    c: &impl GenericClient,
    ep: &Endpoint,
    plan: &str,
    round: i32,
) -> Result<Vec<Touch>, PgError> {
    read_with(c, ep, READ_SINCE_SQL, plan, round).await
}

/// The touches last touched in round `round` exactly.
pub async fn read_round(
    c: &impl GenericClient,
    ep: &Endpoint,
    plan: &str,
    round: i32,
) -> Result<Vec<Touch>, PgError> {
    read_with(c, ep, READ_ROUND_SQL, plan, round).await
}

async fn read_with(
    c: &impl GenericClient,
    ep: &Endpoint,
    sql: &str,
    plan: &str,
    round: i32,
) -> Result<Vec<Touch>, PgError> {
    let rows = c
        .query(sql, &[&plan, &round])
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
/// pre-verified: the acknowledgement of the request's round when not yet acknowledged, then
/// `touches` recorded with the request's round (only while the request is there: a capture
/// that has not seen the end yet writes nothing), a key touched again taking the later round.
/// The acknowledgement comes first: the insert's snapshot is then no older than the round it
/// acknowledged, so no key is recorded with an earlier round than the one acknowledged.
pub fn record_sql(plan: &str, touches: &[Touch]) -> String {
    let p = quote::literal(plan);
    let mut sql = format!(
        "UPDATE pgmove.verify_ahead SET acked_at = coalesce(acked_at, clock_timestamp()), acked_round = round WHERE plan_name = {p} AND acked_round IS DISTINCT FROM round;\n"
    );
    // One row per key (ON CONFLICT DO UPDATE may not meet a row twice in a statement).
    let mut seen = BTreeSet::new();
    let rows: Vec<String> = touches
        .iter()
        .filter(|t| seen.insert((&t.schema, &t.table, &t.key)))
        .map(|t| {
            format!(
                "({}, {}, {}, {})",
                quote::literal(&t.schema),
                quote::literal(&t.table),
                text_array(&t.key_columns),
                text_array(&t.key)
            )
        })
        .collect();
    if !rows.is_empty() {
        sql.push_str(&format!(
            "INSERT INTO pgmove.touched (plan_name, schema_name, table_name, key_columns, key, round)
SELECT a.plan_name, v.s, v.t, v.c, v.k, a.round FROM (VALUES {}) v(s, t, c, k)
JOIN pgmove.verify_ahead a ON a.plan_name = {p}
ON CONFLICT (plan_name, schema_name, table_name, key) DO UPDATE SET round = EXCLUDED.round
WHERE pgmove.touched.round < EXCLUDED.round;\n",
            rows.join(",\n")
        ));
    }
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
            s.contains("('s', 't\"x', ARRAY['id']::text[], ARRAY['it''s']::text[])"),
            "{s}"
        );
        assert!(s.contains("ON a.plan_name = 'p''1'"), "{s}");
        assert!(
            s.contains("WHERE pgmove.touched.round < EXCLUDED.round;"),
            "{s}"
        );
        // The acknowledgement first (see record_sql).
        assert!(
            s.starts_with("UPDATE pgmove.verify_ahead SET acked_at"),
            "{s}"
        );
        assert!(
            s.find("UPDATE").unwrap_or(usize::MAX) < s.find("INSERT").unwrap_or(0),
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
