//! The `pgmove` schema on the target: what has been done, so a rerun after a crash resumes.
//!
//! Progress rows are written in the same transaction as the work they describe wherever the
//! work runs in a transaction pgmove controls (see `strategy::dump_restore`).

use tokio_postgres::Client;

use crate::pg::{quote, Endpoint, PgError};

/// The schema pgmove owns on the target (and, for online strategies, on the source).
pub const SCHEMA: &str = "pgmove";

/// The table that proves a `pgmove` schema is pgmove's: created with the schema, in the same
/// transaction, on whichever server pgmove creates the schema (the target's state, the source's
/// DDL capture). Cleanup drops a `pgmove` schema only when it holds this table; pgmove never
/// writes into a `pgmove` schema without it.
pub const MARKER_TABLE: &str = "created_by_pgmove";

/// Creates the marker in a `pgmove` schema just created (or adopted: see [`Owner::Earlier`]).
/// Idempotent; run in the transaction that creates the schema.
pub const CREATE_MARKER_SQL: &str = "
CREATE TABLE IF NOT EXISTS pgmove.created_by_pgmove (
    created_at timestamptz NOT NULL DEFAULT now(),
    note       text NOT NULL
);
INSERT INTO pgmove.created_by_pgmove (note)
    SELECT 'this schema was created by pgmove; pgmove cleanup drops it'
    WHERE NOT EXISTS (SELECT 1 FROM pgmove.created_by_pgmove);
";

/// The comment earlier pgmove versions (without the marker) gave the target's state schema.
const EARLIER_COMMENT: &str = "pgmove migration state; removed by pgmove cleanup";

/// Who the `pgmove` schema of the connected database belongs to. One row: whether it exists,
/// whether it holds [`MARKER_TABLE`], and whether it is the state schema of an earlier pgmove
/// (its comment and its `runs` and `steps` tables).
const OWNER_SQL: &str = "SELECT n.oid IS NOT NULL, \
        to_regclass('pgmove.created_by_pgmove') IS NOT NULL, \
        n.oid IS NOT NULL AND obj_description(n.oid, 'pg_namespace') = $1::text \
          AND to_regclass('pgmove.runs') IS NOT NULL AND to_regclass('pgmove.steps') IS NOT NULL \
     FROM (SELECT 1) one LEFT JOIN pg_namespace n ON n.nspname = 'pgmove'";

/// Who a server's `pgmove` schema belongs to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Owner {
    /// There is none.
    Absent,
    /// pgmove's: it holds the marker.
    Pgmove,
    /// The state schema of a pgmove version from before the marker (adopted: the marker is
    /// added when apply opens it).
    Earlier,
    /// Someone else's: pgmove never writes into it nor drops it.
    Foreign,
}

/// Who the `pgmove` schema of `ep` belongs to.
pub async fn owner(c: &Client, ep: &Endpoint) -> Result<Owner, PgError> {
    let row = c
        .query_one(OWNER_SQL, &[&EARLIER_COMMENT])
        .await
        .map_err(|e| ep.query_error("looking for the pgmove schema", &e))?;
    Ok(match (row.get(0), row.get(1), row.get(2)) {
        (false, _, _) => Owner::Absent,
        (true, true, _) => Owner::Pgmove,
        (true, false, true) => Owner::Earlier,
        (true, false, false) => Owner::Foreign,
    })
}

/// Why pgmove will not use a foreign `pgmove` schema on `side`, and the fix.
pub fn foreign_schema_message(side: crate::pg::Side) -> String {
    format!(
        "the {side} has a schema named pgmove that pgmove did not create (it has no table pgmove.{MARKER_TABLE}); pgmove keeps its own state in a schema of that name, so it will not write into it nor drop it; \
         fix: rename it on the {side} (ALTER SCHEMA pgmove RENAME TO pgmove_data;), or migrate into another database"
    )
}

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
-- What a rerun needs to keep the done chunks of a split table (copy-cdc): the chunk's ctid
-- block range [start_block, end_block) (end NULL for the last), the source table's
-- relfilenode and the snapshot (pg_snapshot as text) it was read in. NULL in rows of earlier
-- versions: such chunks cannot be checked, their table is copied again whole.
ALTER TABLE pgmove.copy_progress
    ADD COLUMN IF NOT EXISTS start_block bigint,
    ADD COLUMN IF NOT EXISTS end_block   bigint,
    ADD COLUMN IF NOT EXISTS relfilenode bigint,
    ADD COLUMN IF NOT EXISTS snapshot    text;
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

/// Whether table `pgmove.<table>` exists on the server `client` is connected to (`ep`, for the
/// error). `table` is one of pgmove's own table names.
pub async fn has_table(client: &Client, ep: &Endpoint, table: &str) -> Result<bool, PgError> {
    let name = format!("{SCHEMA}.{table}");
    let row = client
        .query_one("SELECT to_regclass($1) IS NOT NULL", &[&name])
        .await
        .map_err(|e| ep.query_error(&format!("looking for {name}"), &e))?;
    Ok(row.get(0))
}

/// Takes the plan `$1`'s session-level advisory lock if free: true when taken.
const TAKE_LOCK_SQL: &str = "SELECT pg_try_advisory_lock(hashtext('pgmove:' || $1::text))";

/// Releases the plan `$1`'s advisory lock held by this session: true when it was held.
const RELEASE_LOCK_SQL: &str = "SELECT pg_advisory_unlock(hashtext('pgmove:' || $1::text))";

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
        if owner(&client, target).await? == Owner::Foreign {
            return Err(PgError::Query {
                side: target.side,
                message: foreign_schema_message(target.side),
            });
        }
        // One implicit transaction: the schema never exists without its marker.
        client
            .batch_execute(&format!("{CREATE_SQL}{CREATE_MARKER_SQL}"))
            .await
            .map_err(|e| target.query_error("creating the pgmove schema on the target", &e))?;
        // One apply per plan at a time: a session-level advisory lock, released when this
        // connection ends (also when the process is killed).
        let row = client
            .query_one(TAKE_LOCK_SQL, &[&plan_name])
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

    /// Lets go of the plan's lock before this connection ends, for a step that hands the plan
    /// over to the next one in the same process (which opens its own state).
    pub async fn release_lock(&self) -> Result<(), PgError> {
        self.client
            .execute(RELEASE_LOCK_SQL, &[&self.plan_name])
            .await
            .map_err(|e| {
                self.target
                    .query_error("releasing the plan's advisory lock", &e)
            })?;
        Ok(())
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

/// The statement that records a restore item as applied, for inclusion in its transaction.
pub fn finish_item_sql(plan_name: &str, dump_id: i32, kind: &str, object: &str) -> String {
    format!(
        "INSERT INTO pgmove.restore_items (plan_name, dump_id, kind, object) VALUES ({}, {dump_id}, {}, {});\n",
        quote::literal(plan_name),
        quote::literal(kind),
        quote::literal(object)
    )
}
