//! Materialized views: a schema-only restore leaves them empty, so pgmove refreshes on the
//! target those populated on the source (after the copy-cdc load, and again at cutover). Below
//! the strategies so both they and cutover use it.

use crate::pg::{quote, Endpoint, PgError};

/// Materialized views populated on the source (schema, name).
const POPULATED_MATVIEWS_SQL: &str =
    "SELECT schemaname::text, matviewname::text FROM pg_matviews WHERE ispopulated ORDER BY 1, 2";

/// Refreshes on the target the materialized views populated on the source that `include`
/// selects (by schema and name); returns how many. A view built on another is retried after
/// the others, until a pass makes no progress. Used by the copy-cdc load and by cutover.
pub async fn refresh_populated_matviews(
    source_ep: &Endpoint,
    source: &tokio_postgres::Client,
    target_ep: &Endpoint,
    target: &tokio_postgres::Client,
    include: impl Fn(&str, &str) -> bool,
) -> Result<usize, PgError> {
    let mut todo: Vec<(String, String)> = source
        .query(POPULATED_MATVIEWS_SQL, &[])
        .await
        .map_err(|e| source_ep.query_error("listing materialized views", &e))?
        .iter()
        .map(|r| (r.get(0), r.get(1)))
        .filter(|(s, v): &(String, String)| include(s, v))
        .collect();
    let mut done = 0;
    while !todo.is_empty() {
        let mut failed = Vec::new();
        let mut last_error = None;
        for (s, v) in todo.iter() {
            let q = quote::qualified(s, v);
            match target
                .batch_execute(&format!("REFRESH MATERIALIZED VIEW {q}"))
                .await
            {
                Ok(()) => done += 1,
                Err(e) => {
                    last_error = Some(target_ep.query_error(&format!("refreshing {q}"), &e));
                    failed.push((s.clone(), v.clone()));
                }
            }
        }
        if failed.len() == todo.len() {
            if let Some(e) = last_error {
                return Err(e);
            }
        }
        todo = failed;
    }
    Ok(done)
}
