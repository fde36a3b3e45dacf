//! Strategy pglogical: pgmove restores the schema (pre-data, then the keys pglogical applies
//! updates and deletes by), creates the provider node and the paired replication sets `NAME`
//! (updates and deletes) and `iNAME` (inserts and truncates) on the source, the subscriber node
//! and a subscription on the target, waits for pglogical's initial sync of every table, then
//! restores post-data and analyzes. Replication then runs inside the servers until cutover.

mod steps;

pub use self::steps::{plan_steps, STEPS};

/// The name stored in `pgmove.runs.strategy`.
pub const STRATEGY: &str = "pglogical";
