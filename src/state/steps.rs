//! `pgmove.steps`: the steps of a plan that finished (names in [`super::step`]).

use tokio_postgres::GenericClient;

use super::{step, State};
use crate::pg::{quote, Endpoint, Lsn, PgError};

/// Whether the plan `$1`'s step `$2` finished: its detail.
const STEP_SQL: &str = "SELECT detail FROM pgmove.steps WHERE plan_name = $1 AND step = $2";

/// The plan `$1`'s finished steps, in the order they finished.
const STEPS_SQL: &str =
    "SELECT step FROM pgmove.steps WHERE plan_name = $1 ORDER BY finished_at, step";

/// The plan `$1`'s steps whose name starts with `$2`.
const STEPS_PREFIXED_SQL: &str =
    "SELECT step FROM pgmove.steps WHERE plan_name = $1 AND left(step, length($2)) = $2";

impl State<'_> {
    /// Whether `step` finished, with its detail.
    pub async fn step(&self, step: &str) -> Result<Option<Option<String>>, PgError> {
        let row = self
            .client
            .query_opt(STEP_SQL, &[&self.plan_name, &step])
            .await
            .map_err(|e| self.target.query_error("reading pgmove.steps", &e))?;
        Ok(row.map(|r| r.get(0)))
    }

    /// Marks `step` finished.
    pub async fn finish_step(&self, step: &str, detail: Option<&str>) -> Result<(), PgError> {
        self.client
            .execute(&finish_step_sql(&self.plan_name, step, detail), &[])
            .await
            .map_err(|e| self.target.query_error("writing pgmove.steps", &e))?;
        Ok(())
    }

    /// Forgets the item and step records of this plan (a fresh run).
    pub async fn reset(&self) -> Result<(), PgError> {
        self.client
            .batch_execute(&format!(
                "DELETE FROM pgmove.steps WHERE plan_name = {p}; DELETE FROM pgmove.restore_items WHERE plan_name = {p};",
                p = quote::literal(&self.plan_name)
            ))
            .await
            .map_err(|e| self.target.query_error("resetting pgmove state", &e))
    }
}

/// The statement that marks a step finished, for inclusion in the step's own transaction.
pub fn finish_step_sql(plan_name: &str, step: &str, detail: Option<&str>) -> String {
    format!(
        "INSERT INTO pgmove.steps (plan_name, step, detail) VALUES ({}, {}, {}) \
         ON CONFLICT (plan_name, step) DO UPDATE SET finished_at = now(), detail = EXCLUDED.detail;\n",
        quote::literal(plan_name),
        quote::literal(step),
        detail.map(quote::literal).unwrap_or_else(|| "NULL".to_string())
    )
}

/// The statement that forgets the records of `steps` of a plan (cutover's, when an attempt
/// starts).
pub fn forget_steps_sql(plan_name: &str, steps: &[&str]) -> String {
    let list: Vec<String> = steps.iter().map(|s| quote::literal(s)).collect();
    format!(
        "DELETE FROM pgmove.steps WHERE plan_name = {} AND step IN ({});\n",
        quote::literal(plan_name),
        list.join(", ")
    )
}

/// The plan's finished steps, in the order they finished.
pub async fn finished(
    c: &impl GenericClient,
    ep: &Endpoint,
    plan_name: &str,
) -> Result<Vec<String>, PgError> {
    let rows = c
        .query(STEPS_SQL, &[&plan_name])
        .await
        .map_err(|e| ep.query_error("reading pgmove.steps", &e))?;
    Ok(rows.iter().map(|r| r.get(0)).collect())
}

/// The plan's steps marking DDL messages as applied by hand (whole step names, see
/// [`step::DDL_APPLIED_PREFIX`]).
pub async fn ddl_applied(
    c: &impl GenericClient,
    ep: &Endpoint,
    plan_name: &str,
) -> Result<Vec<String>, PgError> {
    let rows = c
        .query(STEPS_PREFIXED_SQL, &[&plan_name, &step::DDL_APPLIED_PREFIX])
        .await
        .map_err(|e| ep.query_error("reading pgmove.steps", &e))?;
    Ok(rows.iter().map(|r| r.get(0)).collect())
}

/// The statement a user runs on the target to mark the DDL message at `lsn` as applied by
/// hand (ends with `;`).
pub fn mark_ddl_applied_sql(plan_name: &str, lsn: Lsn) -> String {
    format!(
        "INSERT INTO pgmove.steps (plan_name, step) VALUES ({}, {});",
        quote::literal(plan_name),
        quote::literal(&format!("{}{lsn}", step::DDL_APPLIED_PREFIX))
    )
}
