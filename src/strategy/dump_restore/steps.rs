//! dump-restore's steps (see [`crate::strategy::steps`]): the list, and how `pgmove plan`
//! shows each one.

use crate::inspect::TableKind;
use crate::planner::bytes;
use crate::strategy::steps::{self, Facts, Step, StepDef};

/// The steps `apply` runs and records, in order.
pub const STEPS: &[Step] = &[
    Step {
        name: steps::STATE,
        summary: "the state schema on the target",
    },
    Step {
        name: steps::DUMP,
        summary: "dump the source into the dump directory",
    },
    Step {
        name: steps::PRE_DATA,
        summary: "restore the schema in one transaction",
    },
    Step {
        name: steps::DATA,
        summary: "restore the data, item by item",
    },
    Step {
        name: steps::POST_DATA,
        summary: "restore indexes, constraints and the rest, item by item",
    },
    Step {
        name: steps::ANALYZE,
        summary: "statistics",
    },
    Step {
        name: steps::DONE,
        summary: "the run is complete",
    },
];

/// [`STEPS`] as `pgmove plan` shows them.
pub fn plan_steps(f: &Facts<'_>) -> Vec<StepDef> {
    let (copy_secs, index_secs) = steps::copy_and_index_secs(f);
    let (plan, tables) = (f.plan, f.tables);
    let extensions: Vec<&str> = f
        .source
        .extensions
        .iter()
        .map(|e| e.name.as_str())
        .filter(|n| *n != "plpgsql")
        .collect();
    let parents = tables
        .iter()
        .filter(|t| t.kind == TableKind::PartitionedParent)
        .count();
    let leaves = tables
        .iter()
        .filter(|t| t.kind == TableKind::Partition)
        .count();
    STEPS
        .iter()
        .map(|s| {
            let (what, on, why, estimate_secs) = match s.name {
                steps::STATE => (
                    "create the pgmove state schema (pgmove.runs, pgmove.steps, pgmove.restore_items)".to_string(),
                    "target",
                    "progress lives in the target, committed with the work, so a rerun resumes exactly".to_string(),
                    Some(0),
                ),
                steps::DUMP => (
                    format!("pg_dump -Fd -j {} of {} table(s), {}", plan.jobs, tables.len(), bytes(f.data_bytes)),
                    "source",
                    "the native dump is the reference for exactness; directory format allows parallel dump and per-item restore".to_string(),
                    Some(copy_secs / 2 + 1),
                ),
                steps::PRE_DATA => (
                    if extensions.is_empty() {
                        "restore the schema (pre-data) in one transaction".to_string()
                    } else {
                        format!("restore the schema (pre-data) in one transaction, extensions first: {}", extensions.join(", "))
                    },
                    "target",
                    "all or nothing: a failure leaves no half-made schema".to_string(),
                    Some(1),
                ),
                steps::DATA => (
                    format!("restore the data, {} item(s) at a time, largest first{}", plan.jobs, if leaves > 0 {
                        format!("; {parents} partitioned table(s) load into their {leaves} leaf partition(s), never twice")
                    } else {
                        String::new()
                    }),
                    "target",
                    "each table's COPY commits with its progress row; indexes come later so the load is fast".to_string(),
                    Some(copy_secs / 2 + 1),
                ),
                steps::POST_DATA => (
                    format!("build indexes and primary/unique keys ({} at a time), attach partition indexes, add foreign keys, triggers, materialized view data", plan.index_jobs),
                    "target",
                    "building indexes after the load is several times faster than maintaining them row by row".to_string(),
                    Some(index_secs + 1),
                ),
                steps::ANALYZE => (
                    "ANALYZE".to_string(),
                    "target",
                    "the target's planner needs statistics before traffic arrives".to_string(),
                    Some((tables.len() as u64 / 50).max(1)),
                ),
                steps::DONE => (
                    "record the run as done; remove the dump directory unless you chose it (--dump-dir)".to_string(),
                    "target",
                    "a rerun of a finished plan does nothing; the dump is not left on disk".to_string(),
                    Some(0),
                ),
                _ => steps::undescribed(s),
            };
            StepDef {
                name: s.name,
                what,
                on,
                why,
                estimate_secs,
            }
        })
        .collect()
}
