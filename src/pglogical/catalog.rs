//! Reads of pglogical's catalogs (schema `pglogical`), each query a constant with what it
//! returns. Every function takes the connection and its endpoint (for errors naming the side).

use tokio_postgres::GenericClient;

use crate::pg::{Endpoint, Lsn, PgError};

/// The installed pglogical's version: one row and one text column, or no row.
pub const EXTENSION_SQL: &str =
    "SELECT extversion::text FROM pg_catalog.pg_extension WHERE extname = 'pglogical'";

/// This database's local node: its name and its interface's DSN (no row: no local node).
pub const LOCAL_NODE_SQL: &str = "SELECT n.node_name::text, i.if_dsn
  FROM pglogical.local_node l
  JOIN pglogical.node n ON n.node_id = l.node_id
  JOIN pglogical.node_interface i ON i.if_id = l.node_local_interface";

/// Nodes named `$1` (text): the name (zero or one row).
pub const NODE_SQL: &str = "SELECT node_name::text FROM pglogical.node WHERE node_name = $1";

/// Sets named in `$1` (text[]): name and its flags insert, update, delete, truncate.
pub const SETS_SQL: &str = "SELECT set_name::text, replicate_insert, replicate_update,
       replicate_delete, replicate_truncate
  FROM pglogical.replication_set WHERE set_name = ANY($1::text[]) ORDER BY 1";

/// Tables of the sets named in `$1` (text[]): set, schema, table.
pub const SET_TABLES_SQL: &str = "SELECT s.set_name::text, n.nspname::text, c.relname::text
  FROM pglogical.replication_set_table t
  JOIN pglogical.replication_set s ON s.set_id = t.set_id
  JOIN pg_catalog.pg_class c ON c.oid = t.set_reloid
  JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
 WHERE s.set_name = ANY($1::text[]) ORDER BY 1, 2, 3";

/// Sequences of the sets named in `$1` (text[]): set, schema, sequence.
pub const SET_SEQUENCES_SQL: &str = "SELECT s.set_name::text, n.nspname::text, c.relname::text
  FROM pglogical.replication_set_seq q
  JOIN pglogical.replication_set s ON s.set_id = q.set_id
  JOIN pg_catalog.pg_class c ON c.oid = q.set_seqoid
  JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
 WHERE s.set_name = ANY($1::text[]) ORDER BY 1, 2, 3";

/// The subscription named `$1` (text): name, enabled, its slot's name on the provider (also
/// its replication origin's name on the subscriber), its sets, and its provider node's name
/// (zero or one row).
pub const SUBSCRIPTION_SQL: &str = "SELECT s.sub_name::text, s.sub_enabled, s.sub_slot_name::text,
       s.sub_replication_sets::text[], n.node_name::text
  FROM pglogical.subscription s
  JOIN pglogical.node n ON n.node_id = s.sub_origin
 WHERE s.sub_name = $1";

/// `pglogical.show_subscription_status` of subscription `$1` (name): its status
/// (`initializing`, `replicating`, `down`, `disabled`, `unknown`) as text.
pub const SUBSCRIPTION_STATUS_SQL: &str =
    "SELECT status::text FROM pglogical.show_subscription_status($1::text::name)";

/// The sync status rows of subscription `$1` (text): schema and table (both NULL for the
/// subscription's own initial sync) and `sync_status` as text (`r`: ready).
pub const SYNC_STATUS_SQL: &str = "SELECT l.sync_nspname::text, l.sync_relname::text,
       l.sync_status::text
  FROM pglogical.local_sync_status l
  JOIN pglogical.subscription s ON s.sub_id = l.sync_subid
 WHERE s.sub_name = $1
 ORDER BY 1 NULLS FIRST, 2";

/// The table whose rows a COPY is writing now on this server (pglogical's initial copy),
/// schema-qualified, or no row.
pub const COPY_IN_PROGRESS_SQL: &str = "SELECT p.relid::regclass::text
  FROM pg_catalog.pg_stat_progress_copy p
 WHERE p.datname = current_database() AND p.command = 'COPY FROM'
 LIMIT 1";

/// On the provider: the slot named `$1` (text): its `confirmed_flush_lsn` as text (NULL
/// before the subscriber confirmed anything); no row when there is no such slot.
pub const SLOT_CONFIRMED_SQL: &str = "SELECT confirmed_flush_lsn::text
  FROM pg_catalog.pg_replication_slots WHERE slot_name = $1";

/// The server's current WAL write position as text.
pub const CURRENT_LSN_SQL: &str = "SELECT pg_catalog.pg_current_wal_lsn()::text";

/// The local node: name and DSN.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LocalNode {
    pub name: String,
    pub dsn: String,
}

/// A replication set and its flags.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Set {
    pub name: String,
    pub insert: bool,
    pub update: bool,
    pub delete: bool,
    pub truncate: bool,
}

/// A member of a set: (set, schema, relation).
pub type Member = (String, String, String);

/// A subscription as its catalog row says.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Subscription {
    pub name: String,
    pub enabled: bool,
    /// The slot on the provider; pglogical names the subscriber's replication origin the same.
    pub slot_name: String,
    pub sets: Vec<String>,
    pub provider_node: String,
}

/// One row of `local_sync_status`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SyncRow {
    /// None for the subscription's own initial sync.
    pub table: Option<(String, String)>,
    pub status: String,
}

/// The installed pglogical's version, if the extension is installed in this database.
pub async fn extension_version(
    c: &impl GenericClient,
    ep: &Endpoint,
) -> Result<Option<String>, PgError> {
    Ok(c.query_opt(EXTENSION_SQL, &[])
        .await
        .map_err(|e| ep.query_error("looking for the pglogical extension", &e))?
        .map(|r| r.get(0)))
}

/// This database's local pglogical node (None without the extension or without a node).
pub async fn local_node(
    c: &impl GenericClient,
    ep: &Endpoint,
) -> Result<Option<LocalNode>, PgError> {
    if extension_version(c, ep).await?.is_none() {
        return Ok(None);
    }
    Ok(c.query_opt(LOCAL_NODE_SQL, &[])
        .await
        .map_err(|e| ep.query_error("reading pglogical's local node", &e))?
        .map(|r| LocalNode {
            name: r.get(0),
            dsn: r.get(1),
        }))
}

/// Whether a node named `name` exists (false without the extension).
pub async fn node_exists(
    c: &impl GenericClient,
    ep: &Endpoint,
    name: &str,
) -> Result<bool, PgError> {
    if extension_version(c, ep).await?.is_none() {
        return Ok(false);
    }
    Ok(c.query_opt(NODE_SQL, &[&name])
        .await
        .map_err(|e| ep.query_error("reading pglogical's nodes", &e))?
        .is_some())
}

/// The sets among `names` that exist, with their flags (none without the extension).
pub async fn sets(
    c: &impl GenericClient,
    ep: &Endpoint,
    names: &[String],
) -> Result<Vec<Set>, PgError> {
    if extension_version(c, ep).await?.is_none() {
        return Ok(Vec::new());
    }
    Ok(c.query(SETS_SQL, &[&names])
        .await
        .map_err(|e| ep.query_error("reading pglogical's replication sets", &e))?
        .iter()
        .map(|r| Set {
            name: r.get(0),
            insert: r.get(1),
            update: r.get(2),
            delete: r.get(3),
            truncate: r.get(4),
        })
        .collect())
}

/// The tables of the sets `names`: (set, schema, table).
pub async fn set_tables(
    c: &impl GenericClient,
    ep: &Endpoint,
    names: &[String],
) -> Result<Vec<Member>, PgError> {
    members(c, ep, SET_TABLES_SQL, names, "tables").await
}

/// The sequences of the sets `names`: (set, schema, sequence).
pub async fn set_sequences(
    c: &impl GenericClient,
    ep: &Endpoint,
    names: &[String],
) -> Result<Vec<Member>, PgError> {
    members(c, ep, SET_SEQUENCES_SQL, names, "sequences").await
}

async fn members(
    c: &impl GenericClient,
    ep: &Endpoint,
    sql: &str,
    names: &[String],
    what: &str,
) -> Result<Vec<Member>, PgError> {
    if extension_version(c, ep).await?.is_none() {
        return Ok(Vec::new());
    }
    Ok(c.query(sql, &[&names])
        .await
        .map_err(|e| ep.query_error(&format!("reading the replication sets' {what}"), &e))?
        .iter()
        .map(|r| (r.get(0), r.get(1), r.get(2)))
        .collect())
}

/// The subscription named `name` (None without the extension or the subscription).
pub async fn subscription(
    c: &impl GenericClient,
    ep: &Endpoint,
    name: &str,
) -> Result<Option<Subscription>, PgError> {
    if extension_version(c, ep).await?.is_none() {
        return Ok(None);
    }
    Ok(c.query_opt(SUBSCRIPTION_SQL, &[&name])
        .await
        .map_err(|e| ep.query_error(&format!("reading pglogical subscription {name}"), &e))?
        .map(|r| Subscription {
            name: r.get(0),
            enabled: r.get(1),
            slot_name: r.get(2),
            sets: r.get(3),
            provider_node: r.get(4),
        }))
}

/// The status `show_subscription_status` gives subscription `name`.
pub async fn subscription_status(
    c: &impl GenericClient,
    ep: &Endpoint,
    name: &str,
) -> Result<String, PgError> {
    Ok(c.query_one(SUBSCRIPTION_STATUS_SQL, &[&name])
        .await
        .map_err(|e| {
            ep.query_error(
                &format!("reading the status of pglogical subscription {name}"),
                &e,
            )
        })?
        .get(0))
}

/// The sync status rows of subscription `name` (`local_sync_status`).
pub async fn sync_status(
    c: &impl GenericClient,
    ep: &Endpoint,
    name: &str,
) -> Result<Vec<SyncRow>, PgError> {
    Ok(c.query(SYNC_STATUS_SQL, &[&name])
        .await
        .map_err(|e| ep.query_error("reading pglogical.local_sync_status", &e))?
        .iter()
        .map(|r| {
            let (schema, table): (Option<String>, Option<String>) = (r.get(0), r.get(1));
            SyncRow {
                table: schema.zip(table),
                status: r.get::<_, Option<String>>(2).unwrap_or_default(),
            }
        })
        .collect())
}

/// The table a COPY writes into on this server now, if any.
pub async fn copy_in_progress(
    c: &impl GenericClient,
    ep: &Endpoint,
) -> Result<Option<String>, PgError> {
    Ok(c.query_opt(COPY_IN_PROGRESS_SQL, &[])
        .await
        .map_err(|e| ep.query_error("reading pg_stat_progress_copy", &e))?
        .map(|r| r.get(0)))
}

/// On the provider: how far the subscriber confirmed slot `slot` (None: no such slot, or
/// nothing confirmed yet).
pub async fn slot_confirmed(
    c: &impl GenericClient,
    ep: &Endpoint,
    slot: &str,
) -> Result<Option<Lsn>, PgError> {
    let text: Option<String> = c
        .query_opt(SLOT_CONFIRMED_SQL, &[&slot])
        .await
        .map_err(|e| ep.query_error(&format!("reading replication slot {slot}"), &e))?
        .and_then(|r| r.get(0));
    Ok(text.and_then(|t| t.parse().ok()))
}

/// The server's current WAL position.
pub async fn current_lsn(c: &impl GenericClient, ep: &Endpoint) -> Result<Lsn, PgError> {
    let text: String = c
        .query_one(CURRENT_LSN_SQL, &[])
        .await
        .map_err(|e| ep.query_error("reading the current WAL position", &e))?
        .get(0);
    text.parse().map_err(|_| PgError::Query {
        side: ep.side,
        message: format!("the server returned an unreadable WAL position {text:?}"),
    })
}
