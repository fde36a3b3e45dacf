//! pglogical's steps (see [`crate::strategy::steps`]): the list `apply` runs, and how
//! `pgmove plan` shows each one. Cutover follows; it records its own steps.

use crate::inspect::TableKind;
use crate::plan::TablesWithoutKey;
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
        summary: "dump the source's schema",
    },
    Step {
        name: steps::PRE_DATA,
        summary: "restore the schema in one transaction",
    },
    Step {
        name: steps::KEYS,
        summary: "primary keys and replica identity indexes, before the sync",
    },
    Step {
        name: steps::PROVIDER,
        summary: "provider node and the paired replication sets NAME and iNAME, on the source",
    },
    Step {
        name: steps::SUBSCRIPTION,
        summary: "subscriber node and subscription, on the target",
    },
    Step {
        name: steps::SYNC,
        summary: "pglogical copies every table",
    },
    Step {
        name: steps::POST_DATA,
        summary: "restore the other indexes, constraints and the rest; refresh materialized views",
    },
    Step {
        name: steps::ANALYZE,
        summary: "statistics and the visibility map",
    },
    Step {
        name: steps::REPLICATING,
        summary: "the initial sync is done; pglogical replicates until cutover",
    },
];

/// [`STEPS`] as `pgmove plan` shows them: what, on which side, why and an estimate, with the
/// exact node, set and subscription names of the plan.
pub fn plan_steps(f: &Facts<'_>) -> Vec<StepDef> {
    let (copy_secs, index_secs) = steps::copy_and_index_secs(f);
    let (plan, tables) = (f.plan, f.tables);
    let n = plan.pglogical_names();
    let keyless = tables
        .iter()
        .filter(|t| t.kind != TableKind::PartitionedParent && !t.has_replica_identity())
        .count();
    let leaves = tables
        .iter()
        .filter(|t| t.kind != TableKind::PartitionedParent)
        .count();
    let keyless_note = if keyless == 0 {
        String::new()
    } else {
        match plan.cdc.tables_without_key {
            TablesWithoutKey::InsertOnly => format!(
                "; {keyless} table(s) without a key in {} only (cdc.tables_without_key: insert-only)",
                n.insert_set
            ),
            TablesWithoutKey::Exclude => format!(
                "; {keyless} table(s) without a key in neither set (cdc.tables_without_key: exclude)"
            ),
            _ => format!("; {keyless} table(s) without a key block the plan (see preflight)"),
        }
    };
    let provider_dsn = if plan.pglogical.provider_dsn.is_some() {
        "pglogical.provider_dsn"
    } else {
        "source.dsn"
    };
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
                steps::DUMP => (
                    "pg_dump --schema-only".to_string(),
                    "source",
                    "pgmove restores the schema itself: pglogical's synchronize_structure is not used".to_string(),
                    Some(1),
                ),
                steps::PRE_DATA => (
                    "restore pre-data in one transaction (extensions first, partitions as on the source)".to_string(),
                    "target",
                    "tables without indexes load fastest".to_string(),
                    Some(1),
                ),
                steps::KEYS => (
                    "create the primary keys and replica identity indexes".to_string(),
                    "target",
                    "pglogical finds the rows of replicated updates and deletes by them".to_string(),
                    Some((index_secs / 4) + 1),
                ),
                steps::PROVIDER => (
                    format!(
                        "CREATE EXTENSION pglogical where missing; provider node {} (its DSN: {provider_dsn}, with the source's password); set {} (update, delete) and set {} (insert, truncate); {leaves} table(s){keyless_note}; sequences in {}",
                        n.provider_node, n.replication_set, n.insert_set, n.replication_set
                    ),
                    "source",
                    "each change reaches the target through exactly one of the paired sets, so a table without a key can still replicate its inserts".to_string(),
                    Some(1),
                ),
                steps::SUBSCRIPTION => (
                    format!(
                        "CREATE EXTENSION pglogical where missing; subscriber node {}; subscription {} to sets {} and {} (synchronize_structure false, synchronize_data true, forward_origins '{{}}')",
                        n.subscriber_node, n.subscription, n.replication_set, n.insert_set
                    ),
                    "target",
                    "the subscription's apply worker runs inside the target server and connects to the source as the provider DSN gives it".to_string(),
                    Some(1),
                ),
                steps::SYNC => (
                    format!(
                        "wait until pglogical has copied every table ({} in all, {}) and subscription {} is replicating",
                        leaves,
                        bytes(f.data_bytes),
                        n.subscription
                    ),
                    "both",
                    "pglogical copies the tables in its own snapshot and then streams what changed since".to_string(),
                    Some(copy_secs + 1),
                ),
                steps::POST_DATA => (
                    format!("build the other indexes and constraints ({} at a time), then the rest of post-data; refresh materialized views", plan.index_jobs),
                    "target",
                    "after the sync, as pg_restore does: the copy is faster without them".to_string(),
                    Some(index_secs + 1),
                ),
                steps::ANALYZE => (
                    "VACUUM ANALYZE".to_string(),
                    "target",
                    "the target's planner needs statistics before traffic arrives".to_string(),
                    Some((tables.len() as u64 / 50).max(1)),
                ),
                steps::REPLICATING => (
                    format!("record the initial sync as done; subscription {} keeps replicating inside the servers", n.subscription),
                    "target",
                    "apply returns here; no pgmove process needs to run until cutover".to_string(),
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
