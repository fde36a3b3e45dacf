//! A strategy is one list of named steps. Each strategy module has a `STEPS` list (name and a
//! one-line summary, in the order `apply` runs them) that every command walks:
//! - `pgmove plan` shows each step with what it does, where, why and an estimate
//!   ([`StepDef`], built by the strategy's `plan_steps`);
//! - `pgmove apply --dry-run` prints each step's [`heading`], then its exact commands and SQL;
//! - `pgmove apply` records each step under its name in `pgmove.steps` when it finishes
//!   (`State::finish_step`), and resumes by those records where a step can be skipped;
//! - `pgmove status` shows the steps done and to do, by the same names, in this order.
//!
//! The names are stored on users' targets: never rename one (an older target's records would
//! no longer match).

pub use crate::step_list::{heading, heading_name, Step};

use crate::inspect::{Inventory, Table};
use crate::plan::Plan;
use crate::planner::Strategy;

/// The step names (stored in `pgmove.steps`; defined with the state store).
pub use crate::state::step::{
    ANALYZE, COPY, DATA, DONE, DUMP, KEYS, LOADED, POST_DATA, PRE_DATA, PROVIDER, REPLICATING,
    SEQUENCES, SLOT, STATE, SUBSCRIPTION, SYNC,
};

/// One step as `pgmove plan` shows it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StepDef {
    pub name: &'static str,
    pub what: String,
    /// `source`, `target`, or `both`.
    pub on: &'static str,
    pub why: String,
    /// Seconds, when it can be estimated.
    pub estimate_secs: Option<u64>,
}

/// What `pgmove plan` knows when it lays out a strategy's steps.
pub struct Facts<'a> {
    pub plan: &'a Plan,
    pub source: &'a Inventory,
    /// The selected tables.
    pub tables: &'a [&'a Table],
    pub data_bytes: i64,
    pub index_bytes: i64,
}

/// The steps `apply` runs for `strategy`, in order (empty for a strategy pgmove cannot run).
pub fn of(strategy: Strategy) -> &'static [Step] {
    match strategy {
        Strategy::DumpRestore => super::dump_restore::STEPS,
        Strategy::CopyCdc => super::copy_cdc::STEPS,
        Strategy::Pglogical => super::pglogical::STEPS,
    }
}

/// The steps of the strategy recorded as `name` in `pgmove.runs.strategy`.
pub fn of_named(name: &str) -> &'static [Step] {
    Strategy::ALL
        .into_iter()
        .find(|s| s.name() == name)
        .map(of)
        .unwrap_or(&[])
}

/// Estimated seconds to copy the data with `jobs` workers and to build its indexes.
pub fn copy_and_index_secs(f: &Facts<'_>) -> (u64, u64) {
    let workers = (f.plan.jobs.max(1) as usize).min(f.tables.len().max(1)) as f64;
    let copy_secs =
        (f.data_bytes.max(0) as f64 / (crate::planner::COPY_BYTES_PER_SEC * workers)).ceil() as u64;
    let index_secs = (f.index_bytes.max(0) as f64
        / (crate::planner::INDEX_BYTES_PER_SEC * f.plan.index_jobs.max(1) as f64))
        .ceil() as u64;
    (copy_secs, index_secs)
}

/// What `pgmove plan` shows of a step its strategy's `plan_steps` does not describe: its
/// summary, without a why (none is undescribed: the planner's unit test
/// `plan_steps_are_the_strategys_step_list` checks every named step has a why).
pub fn undescribed(s: &Step) -> (String, &'static str, String, Option<u64>) {
    (s.summary.to_string(), "target", String::new(), None)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_strategy_that_runs_has_unique_step_names() {
        for s in Strategy::ALL.into_iter().filter(|s| s.runs_when_named()) {
            let names: Vec<&str> = of(s).iter().map(|x| x.name).collect();
            assert!(!names.is_empty(), "{s:?}");
            let mut unique = names.clone();
            unique.sort_unstable();
            unique.dedup();
            assert_eq!(unique.len(), names.len(), "{names:?}");
            assert_eq!(of_named(s.name()), of(s));
        }
        assert!(of_named("nonsense").is_empty());
    }
}
