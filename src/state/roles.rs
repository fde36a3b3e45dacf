//! `pgmove.created_roles`: the roles `roles: create` made for each plan (never dropped by
//! cleanup: they own the moved data; listed so the report says so).

use tokio_postgres::GenericClient;

use crate::pg::{quote, Endpoint, PgError};

/// The roles the plan `$1`'s runs created (names, in order).
const RECORDED_SQL: &str =
    "SELECT role_name FROM pgmove.created_roles WHERE plan_name = $1 ORDER BY 1";

/// The roles the plan's runs created, in order.
pub async fn created(
    c: &impl GenericClient,
    ep: &Endpoint,
    plan_name: &str,
) -> Result<Vec<String>, PgError> {
    let rows = c
        .query(RECORDED_SQL, &[&plan_name])
        .await
        .map_err(|e| ep.query_error("reading pgmove.created_roles", &e))?;
    Ok(rows.iter().map(|r| r.get(0)).collect())
}

/// The statement that records a role as created (with the attributes `left_out`, if any), for
/// the transaction that creates it.
pub fn record_sql(plan_name: &str, role: &str, left_out: &[&str]) -> String {
    format!(
        "INSERT INTO pgmove.created_roles (plan_name, role_name, left_out) VALUES ({}, {}, {}) ON CONFLICT DO NOTHING;\n",
        quote::literal(plan_name),
        quote::literal(role),
        if left_out.is_empty() {
            "NULL".to_string()
        } else {
            quote::literal(&left_out.join(" "))
        }
    )
}
