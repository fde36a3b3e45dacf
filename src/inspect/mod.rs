//! A read-only inventory of one server: what the planner and the preflight checks decide on.
//!
//! [`inspect`] connects to one [`Endpoint`] and reads, without writing anything:
//! the server (version, encoding, locale), the replication settings, the rights of the
//! connecting role, the platform (self-managed, RDS, Aurora), extensions, schemas, tables with
//! their columns, partitioning, sequences, large objects, replication slots, long-running
//! transactions, publications, subscriptions and pglogical.
//!
//! # Writes nothing
//!
//! Every catalog read runs in one `REPEATABLE READ READ ONLY` transaction, so the inventory is
//! one consistent picture of the catalogs and the server refuses any write. The transaction is
//! rolled back at the end. Optional reads (pglogical's tables, subscriptions) run under a
//! savepoint so a missing right becomes a [`Inventory::notes`] entry instead of a failure.
//!
//! Two physical, non-transactional facts are read afterwards, in short read-only transactions
//! over batches of [`BATCH`] relations: table sizes (`pg_total_relation_size`) and sequence
//! positions (`pg_sequence_last_value`). Both functions lock the relation until the end of the
//! transaction; doing them all in the catalog transaction would hold one lock per table, index
//! and TOAST table at once and run out of the shared lock table (`max_locks_per_transaction`)
//! on databases with thousands of tables. Neither value is MVCC data, so reading them outside
//! the snapshot loses no consistency.
//!
//! Reading consumes no transaction id and writes no WAL of its own (the integration tests check
//! the WAL between two positions with `pg_walinspect`).

/// The non-system schema filter used by every catalog query over `n` (a `pg_namespace`).
/// Kept as a macro so the queries stay `const` strings.
macro_rules! user_schema_filter {
    () => {
        "n.nspname NOT IN ('pg_catalog', 'information_schema') \
         AND n.nspname NOT LIKE 'pg\\_toast%' AND n.nspname NOT LIKE 'pg\\_temp\\_%'"
    };
}

mod activity;
mod objects;
mod server;
mod tables;

use std::collections::HashMap;

use serde::Serialize;
use tokio_postgres::types::{FromSql, ToSql};
use tokio_postgres::{Client, Row};

use crate::pg::{Endpoint, Lsn, PgError, Side};

pub use activity::{LongTransaction, ReplicationSlot};
pub use objects::{
    AvailableExtension, Extension, Pglogical, Publication, Schema, Sequence, Subscription,
};
pub use server::{Platform, Rights, RoleAccess, ServerInfo, Settings};
pub use tables::{
    Column, ColumnFlags, ColumnRef, Identity, PartitioningSummary, RelName, ReplicaIdentity, Table,
    TableKind,
};

/// A transaction open longer than this (seconds) is reported by [`inspect`].
pub const LONG_TRANSACTION_SECS: u64 = 300;

/// Relations per short transaction when measuring sizes and reading sequence positions.
pub const BATCH: usize = 200;

/// The oldest server pgmove inspects (`server_version_num`).
pub const MIN_VERSION_NUM: i32 = 100_000;

/// What to do about a server older than PostgreSQL 10 on `side`.
fn unsupported_fix(side: Side) -> &'static str {
    match side {
        Side::Source => "upgrade the source to PostgreSQL 10 or newer first (pg_upgrade), or move it offline with the PostgreSQL 15 client tools yourself (pg_dump dumps servers from 9.2): pg_dump -Fd -j 4 -f <dir> '<source dsn>', then pg_restore -j 4 --no-owner -d '<target dsn>' <dir>",
        Side::Target => "move into a target running PostgreSQL 10 or newer (at least the source's major)",
    }
}

/// The version of the server, read first and alone (`SERVER_SQL` uses functions older servers
/// lack): `server_version_num` and `server_version` (`9.6.24`).
const VERSION_SQL: &str = "\
SELECT current_setting('server_version_num')::int AS version_num,
       current_setting('server_version') AS server_version";

/// Why an inventory could not be taken. Every message names the side; none holds a password.
#[derive(Debug, thiserror::Error)]
pub enum InspectError {
    /// Connecting or a query failed.
    #[error(transparent)]
    Pg(#[from] PgError),
    /// The server is older than [`MIN_VERSION_NUM`]: what is missing and what to do.
    #[error("{side}: PostgreSQL {version} is not supported: pgmove needs PostgreSQL 10 or newer. Its inspection reads catalogs PostgreSQL 10 introduced (pg_sequence, pg_publication, pg_class.relispartition, pg_attribute.attidentity, pg_stat_activity.backend_type, pg_current_wal_lsn()), and copy-cdc's change capture (pgoutput) needs a PostgreSQL 10 source.\n  hint: {}", unsupported_fix(*.side))]
    Unsupported { side: Side, version: String },
    /// The server answered something the catalog reading did not expect.
    #[error("{side}: unexpected answer while reading {what}: {message}")]
    Decode {
        side: Side,
        what: String,
        message: String,
    },
}

/// What [`inspect_with`] can be told.
#[derive(Clone, Debug)]
pub struct InspectOptions {
    /// A transaction open longer than this many seconds is listed in
    /// [`Inventory::long_transactions`].
    pub long_transaction_secs: u64,
}

impl Default for InspectOptions {
    fn default() -> Self {
        InspectOptions {
            long_transaction_secs: LONG_TRANSACTION_SECS,
        }
    }
}

/// Everything pgmove knows about one server and database.
#[derive(Clone, Debug, Serialize)]
pub struct Inventory {
    /// Which side this server is.
    pub side: Side,
    /// The redacted address (never a password).
    pub endpoint: String,
    pub server: ServerInfo,
    pub settings: Settings,
    /// The rights of the connecting role (per-table SELECT is [`Table::has_select`]).
    pub rights: Rights,
    pub platform: Platform,
    /// What the platform detection saw, in words, e.g. `GUC rds.extensions exists`.
    pub platform_evidence: Vec<String>,
    /// Extensions installed in this database.
    pub extensions: Vec<Extension>,
    /// Extensions the server could install (`pg_available_extensions`).
    pub available_extensions: Vec<AvailableExtension>,
    /// Non-system schemas.
    pub schemas: Vec<Schema>,
    /// Ordinary, partitioned and foreign tables in non-system schemas, by schema and name.
    pub tables: Vec<Table>,
    pub partitioning: PartitioningSummary,
    /// Sequences in non-system schemas, by schema and name.
    pub sequences: Vec<Sequence>,
    /// Number of large objects (`pg_largeobject_metadata`).
    pub large_objects: i64,
    /// Every replication slot of the server (all databases).
    pub replication_slots: Vec<ReplicationSlot>,
    /// Backends (any database) in a transaction longer than the threshold, oldest first.
    pub long_transactions: Vec<LongTransaction>,
    /// `pg_current_wal_lsn()`, or `pg_last_wal_replay_lsn()` on a standby (None when a
    /// standby has replayed nothing yet).
    #[serde(serialize_with = "serialize_lsn")]
    pub wal_lsn: Option<Lsn>,
    /// Publications in this database.
    pub publications: Vec<Publication>,
    /// Subscriptions of this database.
    pub subscriptions: Vec<Subscription>,
    /// pglogical, when the extension is installed in this database.
    pub pglogical: Option<Pglogical>,
    /// What could not be read and why (missing rights), for the report.
    pub notes: Vec<String>,
}

impl Inventory {
    /// The table `schema.name` (exact, case-sensitive names).
    pub fn table(&self, schema: &str, name: &str) -> Option<&Table> {
        self.tables
            .iter()
            .find(|t| t.schema == schema && t.name == name)
    }

    /// The table with this oid.
    pub fn table_by_oid(&self, oid: u32) -> Option<&Table> {
        self.tables.iter().find(|t| t.oid == oid)
    }

    /// The sequence `schema.name`.
    pub fn sequence(&self, schema: &str, name: &str) -> Option<&Sequence> {
        self.sequences
            .iter()
            .find(|s| s.schema == schema && s.name == name)
    }

    /// The schema called `name`.
    pub fn schema(&self, name: &str) -> Option<&Schema> {
        self.schemas.iter().find(|s| s.name == name)
    }

    /// The installed extension called `name`.
    pub fn extension(&self, name: &str) -> Option<&Extension> {
        self.extensions.iter().find(|e| e.name == name)
    }

    /// The extension `name` as the server could install it, when it can.
    pub fn available_extension(&self, name: &str) -> Option<&AvailableExtension> {
        self.available_extensions.iter().find(|e| e.name == name)
    }

    /// Tables that are not part of an extension (what a migration moves).
    pub fn user_tables(&self) -> impl Iterator<Item = &Table> {
        self.tables.iter().filter(|t| !t.extension_owned)
    }

    /// `max_replication_slots` minus the slots that exist, never negative.
    pub fn free_replication_slots(&self) -> i64 {
        (self.settings.max_replication_slots - self.settings.replication_slots_used).max(0)
    }

    /// `max_wal_senders` minus the senders running, never negative.
    pub fn free_wal_senders(&self) -> i64 {
        (self.settings.max_wal_senders - self.settings.wal_senders_used).max(0)
    }

    /// Bytes of all tables with their indexes and TOAST (partitioned parents hold none, so
    /// partitions are counted once).
    pub fn total_size_bytes(&self) -> i64 {
        self.tables.iter().map(|t| t.total_bytes).sum()
    }

    /// Bytes of the tables that are not part of an extension.
    pub fn user_size_bytes(&self) -> i64 {
        self.user_tables().map(|t| t.total_bytes).sum()
    }

    /// Tables that hold rows (not partitioned parents, not foreign) and have no replica
    /// identity: UPDATE and DELETE on them cannot be replicated logically.
    pub fn tables_without_replica_identity(&self) -> impl Iterator<Item = &Table> {
        self.user_tables()
            .filter(|t| t.holds_rows() && !t.has_replica_identity())
    }

    /// Tables the connecting role may not SELECT.
    pub fn tables_without_select(&self) -> impl Iterator<Item = &Table> {
        self.tables.iter().filter(|t| !t.has_select)
    }

    /// Whether any table column uses a PostGIS type.
    pub fn uses_postgis(&self) -> bool {
        self.tables
            .iter()
            .any(|t| t.columns.iter().any(|c| c.flags.uses_postgis))
    }

    /// Whether the server is RDS or Aurora (as detected, or as the plan's `target.kind`
    /// declares it: see [`Inventory::declare_platform`]).
    pub fn is_managed(&self) -> bool {
        self.platform.is_managed()
    }

    /// Makes `declared` (the plan's `target.kind`) this server's platform: every check and fix
    /// then follows it. What detection saw is kept ([`Inventory::detected_platform`]).
    pub fn declare_platform(&mut self, declared: Platform) {
        if self.server.detected_platform.is_none() {
            self.server.detected_platform = Some(self.platform);
        }
        self.platform = declared;
    }

    /// What the server's signs showed, whether or not the plan overrides it.
    pub fn detected_platform(&self) -> Platform {
        self.server.detected_platform.unwrap_or(self.platform)
    }

    /// Whether the platform comes from the plan (`target.kind`) rather than detection.
    pub fn platform_declared(&self) -> bool {
        self.server.detected_platform.is_some()
    }

    /// The platform and why, for reports: `RDS (detected: setting rds.extensions exists)`,
    /// `Aurora (from target.kind; detected: RDS — setting rds.extensions exists)`.
    pub fn platform_description(&self) -> String {
        let evidence = if self.platform_evidence.is_empty() {
            "no sign of RDS or Aurora".to_string()
        } else {
            self.platform_evidence.join(", ")
        };
        if self.platform_declared() {
            format!(
                "{} (from target.kind; detected: {} — {evidence})",
                self.platform.label(),
                self.detected_platform().label()
            )
        } else {
            format!("{} (detected: {evidence})", self.platform.label())
        }
    }

    /// The slot called `name`.
    pub fn replication_slot(&self, name: &str) -> Option<&ReplicationSlot> {
        self.replication_slots.iter().find(|s| s.name == name)
    }

    /// Inactive slots that keep WAL on the server, most retained first.
    pub fn inactive_slots_retaining_wal(&self) -> Vec<&ReplicationSlot> {
        let mut v: Vec<&ReplicationSlot> = self
            .replication_slots
            .iter()
            .filter(|s| !s.active && s.retained_wal_bytes.unwrap_or(0) > 0)
            .collect();
        v.sort_by_key(|s| std::cmp::Reverse(s.retained_wal_bytes.unwrap_or(0)));
        v
    }
}

/// Takes the inventory of `ep` with the default options.
pub async fn inspect(ep: &Endpoint) -> Result<Inventory, InspectError> {
    inspect_with(ep, &InspectOptions::default()).await
}

/// Takes the inventory of `ep`. Read-only: see the module documentation.
pub async fn inspect_with(ep: &Endpoint, opts: &InspectOptions) -> Result<Inventory, InspectError> {
    let client = ep.connect().await?;
    let r = Reader {
        ep,
        client: &client,
    };
    let mut notes = Vec::new();

    r.execute(
        "starting a read-only transaction",
        "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY",
    )
    .await?;
    // A table locked ACCESS EXCLUSIVE by a long DDL must not hang the inventory forever.
    r.execute("setting lock_timeout", "SET LOCAL lock_timeout = '30s'")
        .await?;

    // The version alone first: the queries below need PostgreSQL 10 (9.4 lacks to_jsonb).
    let row = r.query_one("the server version", VERSION_SQL, &[]).await?;
    let version_num: i32 = r.get("the server version", &row, "version_num")?;
    if version_num < MIN_VERSION_NUM {
        return Err(InspectError::Unsupported {
            side: ep.side,
            version: r.get("the server version", &row, "server_version")?,
        });
    }
    let server = server::read_server(&r).await?;
    let mut settings = server::read_settings(&r, &mut notes).await?;
    let (platform, platform_evidence) = server::read_platform(&r).await?;
    let rights = server::read_rights(&r).await?;
    let extensions = objects::read_extensions(&r).await?;
    let available_extensions = objects::read_available_extensions(&r).await?;
    let schemas = objects::read_schemas(&r).await?;
    let mut tables = tables::read_tables(&r, server.version_num).await?;
    let mut sequences = objects::read_sequences(&r).await?;
    let large_objects = objects::read_large_objects(&r).await?;
    let wal_lsn = activity::read_wal_lsn(&r).await?;
    let replication_slots = activity::read_slots(&r, wal_lsn).await?;
    let long_transactions = activity::read_long_transactions(&r, opts).await?;
    let publications = objects::read_publications(&r).await?;
    let subscriptions = objects::read_subscriptions(&r, &mut notes).await?;
    let pglogical = match extensions.iter().find(|e| e.name == "pglogical") {
        Some(ext) => Some(objects::read_pglogical(&r, ext, &mut notes).await?),
        None => None,
    };
    r.execute("ending the read-only transaction", "ROLLBACK")
        .await?;

    tables::measure_sizes(&r, &mut tables, &mut notes).await?;
    objects::read_sequence_values(&r, &mut sequences).await?;

    let partitioning = tables::summarize_partitioning(&tables);
    settings.replication_slots_used = i64::try_from(replication_slots.len()).unwrap_or(i64::MAX);

    Ok(Inventory {
        side: ep.side,
        endpoint: ep.display(),
        server,
        settings,
        rights,
        platform,
        platform_evidence,
        extensions,
        available_extensions,
        schemas,
        tables,
        partitioning,
        sequences,
        large_objects,
        replication_slots,
        long_transactions,
        wal_lsn,
        publications,
        subscriptions,
        pglogical,
        notes,
    })
}

/// Runs the catalog queries of one inventory on one connection and turns every failure into
/// an [`InspectError`] that names the side.
pub(crate) struct Reader<'a> {
    pub(crate) ep: &'a Endpoint,
    pub(crate) client: &'a Client,
}

impl Reader<'_> {
    pub(crate) fn side(&self) -> Side {
        self.ep.side
    }

    /// A statement without result.
    pub(crate) async fn execute(&self, what: &str, sql: &str) -> Result<(), InspectError> {
        self.client
            .batch_execute(sql)
            .await
            .map_err(|e| self.ep.query_error(what, &e).into())
    }

    /// The rows of `sql`.
    pub(crate) async fn query(
        &self,
        what: &str,
        sql: &str,
        params: &[&(dyn ToSql + Sync)],
    ) -> Result<Vec<Row>, InspectError> {
        self.client
            .query(sql, params)
            .await
            .map_err(|e| self.ep.query_error(what, &e).into())
    }

    /// The one row of `sql`.
    pub(crate) async fn query_one(
        &self,
        what: &str,
        sql: &str,
        params: &[&(dyn ToSql + Sync)],
    ) -> Result<Row, InspectError> {
        self.client
            .query_one(sql, params)
            .await
            .map_err(|e| self.ep.query_error(what, &e).into())
    }

    /// The rows of `sql`, or the server's refusal (`Ok(Err(text))`) when it fails: the query
    /// runs under a savepoint so the transaction survives a missing right.
    pub(crate) async fn try_query(
        &self,
        what: &str,
        sql: &str,
        params: &[&(dyn ToSql + Sync)],
    ) -> Result<Result<Vec<Row>, String>, InspectError> {
        self.execute(what, "SAVEPOINT pgmove_inspect").await?;
        match self.client.query(sql, params).await {
            Ok(rows) => {
                self.execute(what, "RELEASE SAVEPOINT pgmove_inspect")
                    .await?;
                Ok(Ok(rows))
            }
            Err(e) => {
                self.execute(what, "ROLLBACK TO SAVEPOINT pgmove_inspect")
                    .await?;
                let message = match self.ep.query_error(what, &e) {
                    PgError::Query { message, .. } => message,
                    other => other.to_string(),
                };
                Ok(Err(message))
            }
        }
    }

    /// Column `col` of `row`, NULL only where `T` is an `Option`.
    pub(crate) fn get<'r, T: FromSql<'r>>(
        &self,
        what: &str,
        row: &'r Row,
        col: &str,
    ) -> Result<T, InspectError> {
        row.try_get(col).map_err(|e| InspectError::Decode {
            side: self.side(),
            what: format!("{what} (column {col})"),
            message: e.to_string(),
        })
    }
}

/// Serializes an optional LSN as `"16/B374D848"` (or null).
pub(crate) fn serialize_lsn<S: serde::Serializer>(
    lsn: &Option<Lsn>,
    s: S,
) -> Result<S::Ok, S::Error> {
    match lsn {
        Some(l) => s.serialize_str(&l.to_string()),
        None => s.serialize_none(),
    }
}

/// Groups rows by a key, keeping their order: used to attach columns to tables.
pub(crate) fn index_by<K: std::hash::Hash + Eq + Copy, V>(
    items: &[V],
    key: impl Fn(&V) -> K,
) -> HashMap<K, usize> {
    items.iter().enumerate().map(|(i, v)| (key(v), i)).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_server_before_10_is_refused_naming_what_is_missing_and_what_to_do() {
        let source = InspectError::Unsupported {
            side: Side::Source,
            version: "9.6.24".to_string(),
        }
        .to_string();
        assert!(
            source.starts_with(
                "source: PostgreSQL 9.6.24 is not supported: pgmove needs PostgreSQL 10 or newer"
            ),
            "{source}"
        );
        for missing in [
            "pg_sequence",
            "pg_publication",
            "relispartition",
            "pgoutput",
        ] {
            assert!(source.contains(missing), "{source}");
        }
        assert!(source.contains("hint: upgrade the source"), "{source}");
        assert!(source.contains("pg_dump -Fd"), "{source}");
        let target = InspectError::Unsupported {
            side: Side::Target,
            version: "9.4.26".to_string(),
        }
        .to_string();
        assert!(
            target.contains("hint: move into a target running PostgreSQL 10 or newer"),
            "{target}"
        );
        assert!(!target.contains("pg_dump -Fd"), "{target}");
    }
}
