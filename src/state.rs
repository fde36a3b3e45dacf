//! The `pgmove` schema on the target: what has been done, so a rerun after a crash resumes.
//!
//! Progress rows are written in the same transaction as the work they describe wherever the
//! work runs in a transaction pgmove controls (see `strategy::dump_restore`).

use tokio_postgres::Client;

use crate::pg::{quote, Endpoint, PgError};

/// The schema pgmove owns on the target (and, for online strategies, on the source).
pub const SCHEMA: &str = "pgmove";

/// Creates the schema and its tables if missing. Idempotent.
const CREATE_SQL: &str = "
CREATE SCHEMA IF NOT EXISTS pgmove;
COMMENT ON SCHEMA pgmove IS 'pgmove migration state; removed by pgmove cleanup';
CREATE TABLE IF NOT EXISTS pgmove.runs (
    plan_name   text PRIMARY KEY,
    strategy    text NOT NULL,
    phase       text NOT NULL,
    started_at  timestamptz NOT NULL DEFAULT now(),
    updated_at  timestamptz NOT NULL DEFAULT now(),
    last_error  text
);
CREATE TABLE IF NOT EXISTS pgmove.steps (
    plan_name   text NOT NULL,
    step        text NOT NULL,
    finished_at timestamptz NOT NULL DEFAULT now(),
    detail      text,
    PRIMARY KEY (plan_name, step)
);
CREATE TABLE IF NOT EXISTS pgmove.restore_items (
    plan_name   text NOT NULL,
    dump_id     integer NOT NULL,
    kind        text NOT NULL,
    object      text NOT NULL,
    finished_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (plan_name, dump_id)
);
CREATE TABLE IF NOT EXISTS pgmove.copy_progress (
    plan_name    text NOT NULL,
    schema_name  text NOT NULL,
    table_name   text NOT NULL,
    chunk        integer NOT NULL,
    chunks       integer NOT NULL,
    rows         bigint NOT NULL,
    bytes        bigint NOT NULL,
    snapshot_lsn pg_lsn NOT NULL,
    finished_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (plan_name, schema_name, table_name, chunk)
);
CREATE TABLE IF NOT EXISTS pgmove.progress (
    plan_name    text PRIMARY KEY,
    applied_lsn  pg_lsn NOT NULL,
    transactions bigint NOT NULL DEFAULT 0,
    changes      bigint NOT NULL DEFAULT 0,
    updated_at   timestamptz NOT NULL DEFAULT now()
);
CREATE TABLE IF NOT EXISTS pgmove.cutover (
    plan_name      text PRIMARY KEY,
    state          text NOT NULL,
    requested_at   timestamptz NOT NULL DEFAULT now(),
    fenced_at      timestamptz,
    prev_read_only text,
    final_lsn      pg_lsn,
    finished_at    timestamptz,
    detail         text
);
";

/// The state of one plan's run on the target.
pub struct State<'a> {
    pub target: &'a Endpoint,
    pub client: Client,
    pub plan_name: String,
}

impl<'a> State<'a> {
    /// Connects to the target and makes sure the schema exists.
    pub async fn open(target: &'a Endpoint, plan_name: &str) -> Result<State<'a>, PgError> {
        let client = target.connect().await?;
        client
            .batch_execute(CREATE_SQL)
            .await
            .map_err(|e| target.query_error("creating the pgmove schema on the target", &e))?;
        // One apply per plan at a time: a session-level advisory lock, released when this
        // connection ends (also when the process is killed).
        let row = client
            .query_one(
                "SELECT pg_try_advisory_lock(hashtext('pgmove:' || $1::text))",
                &[&plan_name],
            )
            .await
            .map_err(|e| target.query_error("taking the plan's advisory lock", &e))?;
        if !row.get::<_, bool>(0) {
            return Err(PgError::Query {
                side: target.side,
                message: format!(
                    "another pgmove apply of plan {plan_name:?} is running against this target; wait for it or stop it first"
                ),
            });
        }
        Ok(State {
            target,
            client,
            plan_name: plan_name.to_string(),
        })
    }

    /// Records the run's strategy and current phase (and clears or sets its last error).
    pub async fn set_phase(
        &self,
        strategy: &str,
        phase: &str,
        error: Option<&str>,
    ) -> Result<(), PgError> {
        self.client
            .execute(
                "INSERT INTO pgmove.runs (plan_name, strategy, phase, last_error) VALUES ($1, $2, $3, $4)
                 ON CONFLICT (plan_name) DO UPDATE SET strategy = EXCLUDED.strategy, phase = EXCLUDED.phase,
                   last_error = EXCLUDED.last_error, updated_at = now()",
                &[&self.plan_name, &strategy, &phase, &error],
            )
            .await
            .map_err(|e| self.target.query_error("recording the run phase", &e))?;
        Ok(())
    }

    /// Whether `step` finished, with its detail.
    pub async fn step(&self, step: &str) -> Result<Option<Option<String>>, PgError> {
        let row = self
            .client
            .query_opt(
                "SELECT detail FROM pgmove.steps WHERE plan_name = $1 AND step = $2",
                &[&self.plan_name, &step],
            )
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

    /// Dump ids of restore items already applied.
    pub async fn finished_items(&self) -> Result<Vec<i32>, PgError> {
        let rows = self
            .client
            .query(
                "SELECT dump_id FROM pgmove.restore_items WHERE plan_name = $1",
                &[&self.plan_name],
            )
            .await
            .map_err(|e| self.target.query_error("reading pgmove.restore_items", &e))?;
        Ok(rows.iter().map(|r| r.get(0)).collect())
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

/// The statement that records a restore item as applied, for inclusion in its transaction.
pub fn finish_item_sql(plan_name: &str, dump_id: i32, kind: &str, object: &str) -> String {
    format!(
        "INSERT INTO pgmove.restore_items (plan_name, dump_id, kind, object) VALUES ({}, {dump_id}, {}, {});\n",
        quote::literal(plan_name),
        quote::literal(kind),
        quote::literal(object)
    )
}
