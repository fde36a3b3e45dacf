//! pglogical's steps (see [`crate::strategy::steps`]): the list `apply` runs, and how
//! `pgmove plan` shows each one. Cutover follows; it records its own steps.

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

/// [`STEPS`] as `pgmove plan` shows them.
pub fn plan_steps(f: &Facts<'_>) -> Vec<StepDef> {
    let (copy_secs, index_secs) = steps::copy_and_index_secs(f);
    STEPS
        .iter()
        .map(|s| {
            let estimate_secs = match s.name {
                steps::SYNC => Some(copy_secs),
                steps::POST_DATA => Some(index_secs),
                _ => Some(1),
            };
            StepDef {
                name: s.name,
                what: s.summary.to_string(),
                on: "target",
                why: s.summary.to_string(),
                estimate_secs,
            }
        })
        .collect()
}
