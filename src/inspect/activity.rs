//! What runs on the server: the WAL position, replication slots, long transactions.

use serde::Serialize;

use super::{serialize_lsn, InspectError, InspectOptions, Reader};
use crate::pg::Lsn;

/// The current WAL position: the insert position on a primary, the replayed position on a
/// standby (NULL there until something was replayed).
const WAL_LSN_SQL: &str = "\
SELECT CASE WHEN pg_is_in_recovery() THEN pg_last_wal_replay_lsn()
            ELSE pg_current_wal_lsn() END AS lsn";

pub(super) async fn read_wal_lsn(r: &Reader<'_>) -> Result<Option<Lsn>, InspectError> {
    const WHAT: &str = "the WAL position";
    let row = r.query_one(WHAT, WAL_LSN_SQL, &[]).await?;
    r.get(WHAT, &row, "lsn")
}

/// A replication slot (of any database).
#[derive(Clone, Debug, Serialize)]
pub struct ReplicationSlot {
    pub name: String,
    /// The output plugin of a logical slot (`pgoutput`, `pglogical_output`...).
    pub plugin: Option<String>,
    /// `physical` or `logical`.
    pub slot_type: String,
    /// The database of a logical slot.
    pub database: Option<String>,
    pub active: bool,
    pub active_pid: Option<i32>,
    pub temporary: bool,
    #[serde(serialize_with = "serialize_lsn")]
    pub restart_lsn: Option<Lsn>,
    #[serde(serialize_with = "serialize_lsn")]
    pub confirmed_flush_lsn: Option<Lsn>,
    /// WAL the slot keeps on the server: current WAL position minus `restart_lsn`.
    pub retained_wal_bytes: Option<u64>,
    /// `reserved`, `extended`, `unreserved` or `lost` (PostgreSQL 13+).
    pub wal_status: Option<String>,
}

/// Every replication slot; the version-dependent `wal_status` (13+) through `to_jsonb` so the
/// query runs on every version.
const SLOTS_SQL: &str = "\
SELECT s.slot_name::text AS name,
       s.plugin::text AS plugin,
       s.slot_type AS slot_type,
       s.database::text AS database,
       s.active AS active,
       s.active_pid AS active_pid,
       s.temporary AS temporary,
       s.restart_lsn AS restart_lsn,
       s.confirmed_flush_lsn AS confirmed_flush_lsn,
       to_jsonb(s) ->> 'wal_status' AS wal_status
  FROM pg_replication_slots s
 ORDER BY s.slot_name";

pub(super) async fn read_slots(
    r: &Reader<'_>,
    wal_lsn: Option<Lsn>,
) -> Result<Vec<ReplicationSlot>, InspectError> {
    const WHAT: &str = "the replication slots";
    let mut out = Vec::new();
    for row in r.query(WHAT, SLOTS_SQL, &[]).await? {
        let restart_lsn: Option<Lsn> = r.get(WHAT, &row, "restart_lsn")?;
        out.push(ReplicationSlot {
            name: r.get(WHAT, &row, "name")?,
            plugin: r.get(WHAT, &row, "plugin")?,
            slot_type: r.get(WHAT, &row, "slot_type")?,
            database: r.get(WHAT, &row, "database")?,
            active: r.get(WHAT, &row, "active")?,
            active_pid: r.get(WHAT, &row, "active_pid")?,
            temporary: r.get(WHAT, &row, "temporary")?,
            restart_lsn,
            confirmed_flush_lsn: r.get(WHAT, &row, "confirmed_flush_lsn")?,
            retained_wal_bytes: retained(wal_lsn, restart_lsn),
            wal_status: r.get(WHAT, &row, "wal_status")?,
        });
    }
    Ok(out)
}

/// Bytes between a slot's restart point and the current position, when both are known.
pub(super) fn retained(current: Option<Lsn>, restart: Option<Lsn>) -> Option<u64> {
    Some(current?.bytes_since(restart?))
}

/// A backend in a transaction for longer than the threshold.
#[derive(Clone, Debug, Serialize)]
pub struct LongTransaction {
    pub pid: i32,
    /// None for background processes.
    pub user: Option<String>,
    pub database: Option<String>,
    /// `active`, `idle in transaction`...
    pub state: Option<String>,
    pub backend_type: Option<String>,
    /// Seconds since the transaction began.
    pub age_seconds: i64,
    /// It holds a transaction id: creating a logical slot waits for it to end.
    pub has_xid: bool,
    /// It holds a snapshot (`backend_xmin`): vacuum cannot remove rows it might see.
    pub holds_snapshot: bool,
    /// The last query, at most 200 characters.
    pub query: Option<String>,
}

/// Backends of any database in a transaction older than `$1` seconds, oldest first, not this
/// one. Without `pg_read_all_stats` other roles' rows have NULL times and are not seen.
const LONG_TRANSACTIONS_SQL: &str = "\
SELECT a.pid,
       a.usename::text AS user_name,
       a.datname::text AS database,
       a.state,
       a.backend_type,
       floor(extract(epoch FROM clock_timestamp() - a.xact_start))::int8 AS age_seconds,
       a.backend_xid IS NOT NULL AS has_xid,
       a.backend_xmin IS NOT NULL AS holds_snapshot,
       left(a.query, 200) AS query
  FROM pg_stat_activity a
 WHERE a.xact_start IS NOT NULL
   AND a.xact_start < clock_timestamp() - $1::float8 * interval '1 second'
   AND a.pid <> pg_backend_pid()
 ORDER BY a.xact_start";

pub(super) async fn read_long_transactions(
    r: &Reader<'_>,
    opts: &InspectOptions,
) -> Result<Vec<LongTransaction>, InspectError> {
    const WHAT: &str = "the long-running transactions";
    let secs = opts.long_transaction_secs as f64;
    let mut out = Vec::new();
    for row in r.query(WHAT, LONG_TRANSACTIONS_SQL, &[&secs]).await? {
        out.push(LongTransaction {
            pid: r.get(WHAT, &row, "pid")?,
            user: r.get(WHAT, &row, "user_name")?,
            database: r.get(WHAT, &row, "database")?,
            state: r.get(WHAT, &row, "state")?,
            backend_type: r.get(WHAT, &row, "backend_type")?,
            age_seconds: r.get(WHAT, &row, "age_seconds")?,
            has_xid: r.get(WHAT, &row, "has_xid")?,
            holds_snapshot: r.get(WHAT, &row, "holds_snapshot")?,
            query: r.get(WHAT, &row, "query")?,
        });
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retained_wal_needs_both_positions() {
        assert_eq!(retained(Some(Lsn(1000)), Some(Lsn(400))), Some(600));
        assert_eq!(retained(Some(Lsn(400)), Some(Lsn(1000))), Some(0));
        assert_eq!(retained(None, Some(Lsn(1))), None);
        assert_eq!(retained(Some(Lsn(1)), None), None);
    }
}
