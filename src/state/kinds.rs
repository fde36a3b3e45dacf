//! The stored vocabulary of the state schema: run phases, cutover states, step names. The
//! strings are stored in users' databases: never change one (an upgraded target reads the rows
//! of older releases); add new ones.

use std::fmt;

/// The phase of a plan's run (`pgmove.runs.phase`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Phase {
    /// dump-restore: pg_dump of the source.
    Dump,
    /// copy-cdc: the schema (pre-data) is restored.
    Schema,
    /// dump-restore: the data items are restored.
    Data,
    /// copy-cdc: the tables are copied.
    Copy,
    /// copy-cdc: the sequences are set.
    Sequences,
    /// Indexes, constraints, triggers (post-data).
    PostData,
    /// ANALYZE (or VACUUM ANALYZE).
    Analyze,
    /// dump-restore finished.
    Done,
    /// copy-cdc: the full load finished, change capture has not started.
    Loaded,
    /// copy-cdc: change capture applies the source's changes.
    Replicating,
    /// Cutover finished: the target is live.
    Live,
    /// The last run stopped on an error (`pgmove.runs.last_error`).
    Failed,
    /// A phase this release does not know (written by a newer one), kept as read.
    Other(String),
}

impl Phase {
    /// The stored string.
    pub fn as_str(&self) -> &str {
        match self {
            Phase::Dump => "dump",
            Phase::Schema => "schema",
            Phase::Data => "data",
            Phase::Copy => "copy",
            Phase::Sequences => "sequences",
            Phase::PostData => "post-data",
            Phase::Analyze => "analyze",
            Phase::Done => "done",
            Phase::Loaded => "loaded",
            Phase::Replicating => "replicating",
            Phase::Live => "live",
            Phase::Failed => "failed",
            Phase::Other(s) => s,
        }
    }

    /// The phase a stored string names.
    pub fn parse(s: &str) -> Phase {
        const KNOWN: [Phase; 12] = [
            Phase::Dump,
            Phase::Schema,
            Phase::Data,
            Phase::Copy,
            Phase::Sequences,
            Phase::PostData,
            Phase::Analyze,
            Phase::Done,
            Phase::Loaded,
            Phase::Replicating,
            Phase::Live,
            Phase::Failed,
        ];
        KNOWN
            .into_iter()
            .find(|p| p.as_str() == s)
            .unwrap_or_else(|| Phase::Other(s.to_string()))
    }
}

impl fmt::Display for Phase {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The state of a plan's cutover (`pgmove.cutover.state`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum CutoverState {
    /// Requested; the source is not fenced.
    Requested,
    /// The fence is recorded and maybe applied (a killed cutover may have left it on).
    Fencing,
    /// The source is read-only.
    Fenced,
    /// The target is live.
    Done,
    /// Failed; the source is not fenced.
    Failed,
    /// A state this release does not know (written by a newer one), kept as read.
    Other(String),
}

impl CutoverState {
    /// The stored string.
    pub fn as_str(&self) -> &str {
        match self {
            CutoverState::Requested => "requested",
            CutoverState::Fencing => "fencing",
            CutoverState::Fenced => "fenced",
            CutoverState::Done => "done",
            CutoverState::Failed => "failed",
            CutoverState::Other(s) => s,
        }
    }

    /// The state a stored string names.
    pub fn parse(s: &str) -> CutoverState {
        match s {
            "requested" => CutoverState::Requested,
            "fencing" => CutoverState::Fencing,
            "fenced" => CutoverState::Fenced,
            "done" => CutoverState::Done,
            "failed" => CutoverState::Failed,
            other => CutoverState::Other(other.to_string()),
        }
    }
}

impl fmt::Display for CutoverState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Names of the steps recorded in `pgmove.steps`: the names every strategy's step list
/// (`crate::strategy::steps`) and cutover's (`crate::cutover::steps`) use. They are stored on
/// users' targets: never rename one (an older target's records would no longer match).
pub mod step {
    /// The state schema is in place on the target (created or upgraded).
    pub const STATE: &str = "state";
    /// copy-cdc: the publication, the DDL trigger and the replication slot with its snapshot.
    pub const SLOT: &str = "slot";
    /// The source is dumped (dump-restore: everything; copy-cdc: the schema, in the slot's
    /// snapshot; detail: the dump directory).
    pub const DUMP: &str = "dump";
    /// The schema (pre-data) is restored, in one transaction with its record.
    pub const PRE_DATA: &str = "pre-data";
    /// dump-restore: the data items are restored.
    pub const DATA: &str = "data";
    /// copy-cdc: the tables are copied in the snapshot.
    pub const COPY: &str = "copy";
    /// copy-cdc: sequences are set and large objects copied.
    pub const SEQUENCES: &str = "sequences";
    /// Indexes, constraints and the rest of post-data are restored.
    pub const POST_DATA: &str = "post-data";
    /// The target has statistics (ANALYZE ran).
    pub const ANALYZE: &str = "analyze";
    /// dump-restore: the run is complete (the dump directory is removed).
    pub const DONE: &str = "done";
    /// copy-cdc: the full load is complete; change capture starts from here (detail: the
    /// consistent LSN).
    pub const LOADED: &str = "loaded";
    /// Prefix of the rows marking a DDL message as applied by hand: `ddl-applied <LSN of the
    /// message>`. Change capture then skips that message.
    pub const DDL_APPLIED_PREFIX: &str = "ddl-applied ";
    /// pglogical: the primary keys and replica identity indexes are restored (before the sync:
    /// pglogical applies updates and deletes by them).
    pub const KEYS: &str = "keys";
    /// pglogical: the provider node and the paired replication sets (with their tables and
    /// sequences) exist on the source.
    pub const PROVIDER: &str = "provider";
    /// pglogical: the subscriber node and the subscription exist on the target.
    pub const SUBSCRIPTION: &str = "subscription";
    /// pglogical: every table's initial copy is done (pglogical.local_sync_status ready).
    pub const SYNC: &str = "sync";
    /// pglogical: the load is complete; the subscription replicates inside the servers until
    /// cutover.
    pub const REPLICATING: &str = "replicating";

    /// Cutover's steps.
    pub mod cutover {
        pub const LAG: &str = "cutover-lag";
        pub const FENCE: &str = "cutover-fence";
        pub const CATCH_UP: &str = "cutover-catch-up";
        pub const SEQUENCES: &str = "cutover-sequences";
        pub const LARGE_OBJECTS: &str = "cutover-large-objects";
        pub const VERIFY: &str = "cutover-verify";
        pub const LIVE: &str = "cutover-live";
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stored_strings_read_back_as_the_same_value() {
        for s in [
            "dump",
            "schema",
            "data",
            "copy",
            "sequences",
            "post-data",
            "analyze",
            "done",
            "loaded",
            "replicating",
            "live",
            "failed",
        ] {
            let p = Phase::parse(s);
            assert!(!matches!(p, Phase::Other(_)), "{s}");
            assert_eq!(p.as_str(), s);
        }
        assert_eq!(Phase::parse("later"), Phase::Other("later".into()));
        for s in ["requested", "fencing", "fenced", "done", "failed"] {
            let c = CutoverState::parse(s);
            assert!(!matches!(c, CutoverState::Other(_)), "{s}");
            assert_eq!(c.to_string(), s);
        }
    }
}
