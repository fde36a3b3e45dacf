//! What `status` and `cutover` read of a run of strategy pglogical: the plan's subscription on
//! the target (its state and the slot pglogical named for it), each table's sync state, the
//! tables of the plan's replication sets on the source, and the slot's lag on the source.
//! Reads only.

use serde::Serialize;
use tokio_postgres::Client;

use crate::pg::{Endpoint, Lsn, PgError};

/// Whether the `pglogical` extension is installed in the connected database.
const HAS_EXTENSION_SQL: &str =
    "SELECT EXISTS (SELECT 1 FROM pg_extension WHERE extname = 'pglogical')";

/// The subscription `$1` on the target: its state as pglogical shows it (`replicating`,
/// `initializing`, `down`, `disabled`, ...), whether it is enabled, its provider node and the
/// name of its slot on the provider. No row when there is no such subscription.
const SUBSCRIPTION_SQL: &str =
    "SELECT (SELECT st.status FROM pglogical.show_subscription_status(s.sub_name) st),
        s.sub_enabled, n.node_name::text, s.sub_slot_name::text
    FROM pglogical.subscription s JOIN pglogical.node n ON n.node_id = s.sub_origin
    WHERE s.sub_name = $1";

/// The sync state of the subscription `$1`: one row per table pglogical synchronized or is
/// synchronizing (schema, table, status letter of `pglogical.local_sync_status`), and one with
/// no table for the subscription's initial sync as a whole.
const SYNC_STATUS_SQL: &str =
    "SELECT l.sync_nspname::text, l.sync_relname::text, l.sync_status::text
    FROM pglogical.local_sync_status l JOIN pglogical.subscription s ON s.sub_id = l.sync_subid
    WHERE s.sub_name = $1
    ORDER BY 1 NULLS FIRST, 2";

/// The tables of the replication sets `$1` on the source (schema, table), each once.
const SET_TABLES_SQL: &str = "SELECT DISTINCT t.nspname::text, t.relname::text
    FROM pglogical.tables t WHERE t.set_name = ANY($1) ORDER BY 1, 2";

/// The slot `$1` on the source: active, confirmed position, the source's WAL position, the WAL
/// it retains (bytes), `wal_status`, the source's `max_slot_wal_keep_size`, and the replication
/// delay its walsender measures (seconds: replay, else flush, else write lag; NULL when it has
/// no measure, e.g. no walsender or long caught up).
pub(crate) const SLOT_SQL: &str = "SELECT s.active, s.confirmed_flush_lsn, pg_current_wal_lsn(),
        (pg_current_wal_lsn() - s.restart_lsn)::bigint, s.wal_status,
        current_setting('max_slot_wal_keep_size'),
        (SELECT extract(epoch FROM COALESCE(r.replay_lag, r.flush_lag, r.write_lag))::float8
           FROM pg_stat_replication r WHERE r.pid = s.active_pid)
    FROM pg_replication_slots s WHERE s.slot_name = $1";

/// The slot `$1`'s confirmed position (`confirmed_flush_lsn`) on the source.
const CONFIRMED_SQL: &str =
    "SELECT confirmed_flush_lsn FROM pg_replication_slots WHERE slot_name = $1";

/// The subscription's state when it does not exist on the target.
pub const MISSING: &str = "missing";
/// The subscription's state when the target has no pglogical extension.
pub const NO_EXTENSION: &str = "no pglogical extension";
/// pglogical's state of a subscription that applies changes.
pub const REPLICATING: &str = "replicating";
/// pglogical's state of a subscription whose apply worker is not running.
pub const DOWN: &str = "down";

/// The plan's subscription on the target.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Subscription {
    pub name: String,
    /// `pglogical.show_subscription_status`'s status: `replicating`, `initializing`, `down`,
    /// `disabled`, ...
    pub status: String,
    pub enabled: bool,
    pub provider_node: String,
    /// The subscription's slot on the source (pglogical names it).
    pub slot_name: String,
}

/// One table's sync state.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct TableSync {
    pub schema: String,
    pub table: String,
    /// As `pglogical.show_subscription_table` names it: `init`, `structure`, `data`,
    /// `constraints`, `sync_wait`, `catchup`, `synchronized`, `replicating`; `waiting` for a
    /// table of the sets whose sync has not started.
    pub state: String,
}

impl TableSync {
    /// The initial copy of the table is done.
    pub fn synced(&self) -> bool {
        matches!(self.state.as_str(), "synchronized" | "replicating")
    }
}

/// A pglogical run as `status` shows it.
#[derive(Clone, Debug, Serialize)]
pub struct PglogicalStatus {
    pub subscription: String,
    /// [`Subscription::status`], or [`MISSING`] or [`NO_EXTENSION`].
    pub state: String,
    pub enabled: Option<bool>,
    pub provider_node: Option<String>,
    pub slot_name: Option<String>,
    /// The subscription's initial sync as a whole (`local_sync_status` without a table).
    pub initial_sync: Option<String>,
    /// Every table of the plan's sets (read on the source) and every table the subscription
    /// synchronizes, with its state.
    pub tables: Vec<TableSync>,
    pub tables_synced: usize,
}

impl PglogicalStatus {
    pub fn replicating(&self) -> bool {
        self.state == REPLICATING
    }
}

/// The name `pglogical.show_subscription_table` gives a `local_sync_status` letter.
pub fn sync_state_name(letter: &str) -> &'static str {
    match letter {
        "i" => "init",
        "s" => "structure",
        "d" => "data",
        "c" => "constraints",
        "w" => "sync_wait",
        "u" => "catchup",
        "y" => "synchronized",
        "r" => "replicating",
        _ => "unknown",
    }
}

/// Whether the `pglogical` extension is installed where `c` is connected.
pub async fn has_extension(c: &Client, ep: &Endpoint) -> Result<bool, PgError> {
    Ok(c.query_one(HAS_EXTENSION_SQL, &[])
        .await
        .map_err(|e| ep.query_error("looking for the pglogical extension", &e))?
        .get(0))
}

/// The subscription `name` on the target, if the target has pglogical and the subscription.
pub async fn subscription(
    c: &Client,
    ep: &Endpoint,
    name: &str,
) -> Result<Option<Subscription>, PgError> {
    if !has_extension(c, ep).await? {
        return Ok(None);
    }
    let row = c
        .query_opt(SUBSCRIPTION_SQL, &[&name])
        .await
        .map_err(|e| ep.query_error(&format!("reading pglogical subscription {name}"), &e))?;
    Ok(row.map(|r| Subscription {
        name: name.to_string(),
        status: r
            .get::<_, Option<String>>(0)
            .unwrap_or_else(|| "unknown".into()),
        enabled: r.get(1),
        provider_node: r.get(2),
        slot_name: r.get(3),
    }))
}

/// The subscription's sync states: the initial sync as a whole, and each table's.
async fn sync_states(
    c: &Client,
    ep: &Endpoint,
    name: &str,
) -> Result<(Option<String>, Vec<TableSync>), PgError> {
    let rows = c
        .query(SYNC_STATUS_SQL, &[&name])
        .await
        .map_err(|e| ep.query_error("reading pglogical.local_sync_status", &e))?;
    let mut whole = None;
    let mut tables = Vec::new();
    for r in rows {
        let (schema, table, letter): (Option<String>, Option<String>, String) =
            (r.get(0), r.get(1), r.get(2));
        let state = sync_state_name(&letter).to_string();
        match (schema, table) {
            (Some(schema), Some(table)) => tables.push(TableSync {
                schema,
                table,
                state,
            }),
            _ => whole = Some(state),
        }
    }
    Ok((whole, tables))
}

/// The tables of the replication sets `sets` on the source (none when it has no pglogical).
async fn set_tables(
    s: &Client,
    ep: &Endpoint,
    sets: &[String],
) -> Result<Vec<(String, String)>, PgError> {
    if !has_extension(s, ep).await? {
        return Ok(Vec::new());
    }
    Ok(s.query(SET_TABLES_SQL, &[&sets])
        .await
        .map_err(|e| ep.query_error("reading the tables of the pglogical sets", &e))?
        .iter()
        .map(|r| (r.get(0), r.get(1)))
        .collect())
}

/// Every table of the sets with its state: the subscription's record of it, else `waiting`;
/// then the tables the subscription synchronizes outside the sets read.
pub fn merge_tables(in_sets: Vec<(String, String)>, synced: Vec<TableSync>) -> Vec<TableSync> {
    let mut out: Vec<TableSync> = in_sets
        .into_iter()
        .map(|(schema, table)| {
            let state = synced
                .iter()
                .find(|t| t.schema == schema && t.table == table)
                .map_or_else(|| "waiting".to_string(), |t| t.state.clone());
            TableSync {
                schema,
                table,
                state,
            }
        })
        .collect();
    for t in synced {
        if !out
            .iter()
            .any(|o| o.schema == t.schema && o.table == t.table)
        {
            out.push(t);
        }
    }
    out
}

/// The plan's pglogical state: subscription `subscription` on the target (`t`), tables of the
/// sets `sets` on the source (`s`).
pub async fn read(
    t: &Client,
    target: &Endpoint,
    s: &Client,
    source: &Endpoint,
    subscription_name: &str,
    sets: &[String],
) -> Result<PglogicalStatus, PgError> {
    let mut st = PglogicalStatus {
        subscription: subscription_name.to_string(),
        state: NO_EXTENSION.to_string(),
        enabled: None,
        provider_node: None,
        slot_name: None,
        initial_sync: None,
        tables: Vec::new(),
        tables_synced: 0,
    };
    if !has_extension(t, target).await? {
        return Ok(st);
    }
    let (whole, synced) = match subscription(t, target, subscription_name).await? {
        Some(sub) => {
            st.state = sub.status;
            st.enabled = Some(sub.enabled);
            st.provider_node = Some(sub.provider_node);
            st.slot_name = Some(sub.slot_name);
            sync_states(t, target, subscription_name).await?
        }
        None => {
            st.state = MISSING.to_string();
            (None, Vec::new())
        }
    };
    st.initial_sync = whole;
    st.tables = merge_tables(set_tables(s, source, sets).await?, synced);
    st.tables_synced = st.tables.iter().filter(|t| t.synced()).count();
    Ok(st)
}

/// The slot's confirmed position on the source: everything before it is applied and flushed
/// on the subscriber. None when there is no such slot.
pub async fn confirmed_lsn(s: &Client, ep: &Endpoint, slot: &str) -> Result<Option<Lsn>, PgError> {
    Ok(s.query_opt(CONFIRMED_SQL, &[&slot])
        .await
        .map_err(|e| ep.query_error(&format!("reading replication slot {slot}"), &e))?
        .and_then(|r| r.get(0)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(schema: &str, table: &str, state: &str) -> TableSync {
        TableSync {
            schema: schema.into(),
            table: table.into(),
            state: state.into(),
        }
    }

    #[test]
    fn tables_of_the_sets_without_a_record_are_waiting() {
        let sets = vec![
            ("public".to_string(), "a".to_string()),
            ("public".to_string(), "b".to_string()),
        ];
        let merged = merge_tables(
            sets,
            vec![t("public", "a", "replicating"), t("x", "c", "data")],
        );
        assert_eq!(
            merged,
            vec![
                t("public", "a", "replicating"),
                t("public", "b", "waiting"),
                t("x", "c", "data")
            ]
        );
        assert_eq!(merged.iter().filter(|t| t.synced()).count(), 1);
        assert!(t("s", "t", "synchronized").synced());
    }

    #[test]
    fn sync_letters_are_named_as_pglogical_names_them() {
        let names: Vec<&str> = ["i", "s", "d", "c", "w", "u", "y", "r", "?"]
            .iter()
            .map(|l| sync_state_name(l))
            .collect();
        assert_eq!(
            names,
            [
                "init",
                "structure",
                "data",
                "constraints",
                "sync_wait",
                "catchup",
                "synchronized",
                "replicating",
                "unknown"
            ]
        );
    }
}
