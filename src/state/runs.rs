//! `pgmove.runs`: one row per plan, its strategy, phase and last error.

use tokio_postgres::GenericClient;

use super::{Phase, State};
use crate::pg::{quote, Endpoint, PgError};

/// Writes the plan `$1`'s run row: strategy `$2`, phase `$3`, last error `$4`.
const SET_PHASE_SQL: &str =
    "INSERT INTO pgmove.runs (plan_name, strategy, phase, last_error) VALUES ($1, $2, $3, $4)
     ON CONFLICT (plan_name) DO UPDATE SET strategy = EXCLUDED.strategy, phase = EXCLUDED.phase,
       last_error = EXCLUDED.last_error, updated_at = now()";

/// The plan `$1`'s run row: strategy, phase, started, updated (as text), last error.
const RUN_SQL: &str = "SELECT strategy, phase, started_at::text, updated_at::text, last_error FROM pgmove.runs WHERE plan_name = $1";

/// The plan `$1`'s last recorded error (none when the row or the error is missing).
const LAST_ERROR_SQL: &str = "SELECT last_error FROM pgmove.runs WHERE plan_name = $1";

/// A plan's run row.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Run {
    pub strategy: String,
    pub phase: Phase,
    pub started_at: Option<String>,
    pub updated_at: Option<String>,
    pub last_error: Option<String>,
}

impl State<'_> {
    /// Records the run's strategy and current phase (and clears or sets its last error).
    pub async fn set_phase(
        &self,
        strategy: &str,
        phase: Phase,
        error: Option<&str>,
    ) -> Result<(), PgError> {
        self.client
            .execute(
                SET_PHASE_SQL,
                &[&self.plan_name, &strategy, &phase.as_str(), &error],
            )
            .await
            .map_err(|e| self.target.query_error("recording the run phase", &e))?;
        Ok(())
    }
}

/// The plan's run row, if a run was recorded.
pub async fn read(
    c: &impl GenericClient,
    ep: &Endpoint,
    plan_name: &str,
) -> Result<Option<Run>, PgError> {
    let row = c
        .query_opt(RUN_SQL, &[&plan_name])
        .await
        .map_err(|e| ep.query_error("reading pgmove.runs", &e))?;
    Ok(row.map(|r| Run {
        strategy: r.get(0),
        phase: Phase::parse(r.get(1)),
        started_at: r.get(2),
        updated_at: r.get(3),
        last_error: r.get(4),
    }))
}

/// The error the plan's last run recorded, if any.
pub async fn last_error(
    c: &impl GenericClient,
    ep: &Endpoint,
    plan_name: &str,
) -> Result<Option<String>, PgError> {
    let row = c
        .query_opt(LAST_ERROR_SQL, &[&plan_name])
        .await
        .map_err(|e| ep.query_error("reading pgmove.runs", &e))?;
    Ok(row.and_then(|r| r.get(0)))
}

/// The statement that sets the plan's phase (keeping strategy and error), for inclusion in
/// the transaction of the work that reaches it.
pub fn set_phase_sql(plan_name: &str, phase: &Phase) -> String {
    format!(
        "UPDATE pgmove.runs SET phase = {}, updated_at = now() WHERE plan_name = {};\n",
        quote::literal(phase.as_str()),
        quote::literal(plan_name)
    )
}
