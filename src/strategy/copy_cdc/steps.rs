//! copy-cdc's steps (see [`crate::strategy::steps`]): the list of the full load, and how
//! `pgmove plan` shows each one. Change capture and cutover follow the load; they are not
//! steps of this list (change capture runs until cutover, which records its own steps).

use crate::planner::bytes;
use crate::strategy::steps::{self, Facts, Step, StepDef};

/// The steps `apply` runs and records, in order.
pub const STEPS: &[Step] = &[
    Step {
        name: steps::STATE,
        summary: "the state schema on the target",
    },
    Step {
        name: steps::SLOT,
        summary: "publication, DDL trigger and replication slot with its exported snapshot, on the source",
    },
    Step {
        name: steps::DUMP,
        summary: "dump the source's schema in the slot's snapshot",
    },
    Step {
        name: steps::PRE_DATA,
        summary: "restore the schema in one transaction",
    },
    Step {
        name: steps::COPY,
        summary: "copy the tables in the snapshot, chunk by chunk",
    },
    Step {
        name: steps::SEQUENCES,
        summary: "set sequences, copy large objects",
    },
    Step {
        name: steps::POST_DATA,
        summary: "restore indexes, constraints and the rest; refresh materialized views",
    },
    Step {
        name: steps::ANALYZE,
        summary: "statistics and the visibility map",
    },
    Step {
        name: steps::LOADED,
        summary: "the full load is complete; change capture starts at the slot's consistent LSN",
    },
];

/// [`STEPS`] as `pgmove plan` shows them.
pub fn plan_steps(f: &Facts<'_>) -> Vec<StepDef> {
    let (copy_secs, index_secs) = steps::copy_and_index_secs(f);
    let (plan, tables) = (f.plan, f.tables);
    let split = tables
        .iter()
        .filter(|t| t.heap_bytes > plan.split_tables_larger_than as i64)
        .count();
    STEPS
        .iter()
        .map(|s| {
            let (what, on, why, estimate_secs) = match s.name {
                steps::STATE => (
                    "create the pgmove state schema".to_string(),
                    "target",
                    "progress lives in the target, committed with the work".to_string(),
                    Some(0),
                ),
                steps::SLOT => (
                    format!("create replication slot {} (pgoutput) with an exported snapshot, after publication {}", plan.slot_name(), plan.publication_name()),
                    "source",
                    "the copy and the later change capture meet exactly at the slot's consistent LSN".to_string(),
                    Some(1),
                ),
                steps::DUMP => (
                    "pg_dump --schema-only, in the slot's snapshot".to_string(),
                    "source",
                    "the schema is the one the copied rows were read in".to_string(),
                    Some(1),
                ),
                steps::PRE_DATA => (
                    "restore pre-data in one transaction (extensions first, partitions as on the source)".to_string(),
                    "target",
                    "tables without indexes load fastest".to_string(),
                    Some(1),
                ),
                steps::COPY => (
                    format!(
                        "COPY {} table(s) in the snapshot, {} at a time{}; each chunk commits with its pgmove.copy_progress row",
                        tables.len(),
                        plan.jobs,
                        if split > 0 { format!("; {split} table(s) over {} split into ctid ranges", bytes(plan.split_tables_larger_than as i64)) } else { String::new() }
                    ),
                    "both",
                    "streams COPY bytes between the servers without parsing rows or touching disk".to_string(),
                    Some(copy_secs + 1),
                ),
                steps::SEQUENCES => (
                    "set sequences, copy large objects".to_string(),
                    "target",
                    "neither is carried by COPY of tables".to_string(),
                    Some(1),
                ),
                steps::POST_DATA => (
                    format!("build indexes and constraints ({} at a time), then the rest of post-data; refresh materialized views", plan.index_jobs),
                    "target",
                    "after the load, as pg_restore does".to_string(),
                    Some(index_secs + 1),
                ),
                steps::ANALYZE => (
                    "VACUUM ANALYZE".to_string(),
                    "target",
                    "the target's planner needs statistics before traffic arrives; VACUUM sets the copied tables' visibility map".to_string(),
                    Some((tables.len() as u64 / 50).max(1)),
                ),
                steps::LOADED => (
                    "record the load as complete at the slot's consistent LSN; remove the dump directory unless you chose it (--dump-dir)".to_string(),
                    "target",
                    "change capture applies what changed after that LSN; a rerun does not copy again".to_string(),
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
