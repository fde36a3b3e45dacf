//! The logical replication slot of copy-cdc, created with an exported snapshot.
//!
//! Choice of replication client (tokio-postgres has no replication protocol), evaluated on
//! what this module and the later CDC stream need:
//!
//! - **pgwire-replication 0.5 — chosen.** Its *gated* session (`connect_gated`) authenticates
//!   (SCRAM-SHA-256, cleartext; MD5 behind a feature) and then runs simple queries and
//!   replication commands on the one walsender connection until told to start, so
//!   `CREATE_REPLICATION_SLOT ... (SNAPSHOT 'export')` runs there and the connection then stays
//!   open and idle for as long as we hold the client: exactly what keeps an exported snapshot
//!   alive. It is small (about 5k lines), and streams pgoutput with explicit applied-LSN
//!   standby feedback, keepalives kept under backpressure, bounded replay and metrics.
//!   Limits: TLS takes a `TlsConfig` (mode, CA file, SNI, client cert), not our rustls
//!   `ClientConfig`, so [`replication_config`] maps our sslmode onto it (below), and
//!   `sslrootcert=system` means the Mozilla roots (webpki-roots) instead of the OS store;
//!   `START_REPLICATION` is fixed at `proto_version '1'` without `streaming`, so large
//!   transactions reach us whole at commit (the server spills them to disk meanwhile) —
//!   correct for commit-order apply, but the CDC issue must live with it or patch it; no
//!   SCRAM channel binding. Its rustls dependency enabled aws-lc-rs next to our ring; the
//!   vendored copy takes rustls without default features (ring only, which it installs as the
//!   process default itself).
//! - **pg_walstream 0.10 — not chosen.** Complete (protocol v1-4 with streaming and two-phase,
//!   slot commands with `EXPORT_SNAPSHOT`, pgoutput decoding, SCRAM, libpq-style conninfo with
//!   every sslmode), but about 67k lines with its own connection layer, configured only through
//!   a conninfo string (our password and settings re-serialised into it), no way to pass our
//!   rustls configuration either, and snapshot helpers that own the copy and the stream
//!   lifecycle pgmove builds itself. The fallback if proto v2 streaming turns out to matter.
//!
//! sslmode mapping for the replication connection (the same table as [`crate::pg::tls`]):
//! `disable` → plain; `allow`/`prefer` → TLS if offered, unverified; `require` → TLS,
//! unverified, or chain-verified (verify-ca) when a root certificate is known, as libpq does;
//! `verify-ca`/`verify-full` as named, with the host (or IP) as the name checked. A Unix socket
//! never uses TLS. pgwire-replication 0.5's verify-ca wrongly refuses a certificate that does
//! not name the host (it misses rustls' `NotValidForNameContext`); [`open_session`] works around
//! it. The configuration is first validated by [`crate::pg::tls::client_config`], so
//! a missing or unreadable root certificate fails with the same message as a normal connection.
//!
//! The replication connection is opened with `idle_in_transaction_session_timeout=0` (the
//! walsender holds a transaction open while the snapshot is exported, and a source-wide timeout
//! would end it mid-copy), `statement_timeout=0` and server-side TCP keepalives (a NAT or load
//! balancer would otherwise drop the idle connection during a long copy).
//!
//! Public API:
//! - [`ExportedSlot::create`] creates the slot and holds its snapshot;
//!   [`ExportedSlot::snapshot_name`], [`ExportedSlot::consistent_lsn`],
//!   [`ExportedSlot::slot_name`], [`ExportedSlot::is_held`]; [`ExportedSlot::release`] closes the
//!   connection and waits until the server has ended it (the slot stays). Dropping an
//!   `ExportedSlot` also closes the connection, without waiting.
//! - [`slot_exists`] reads the slot from `pg_replication_slots` ([`SlotInfo`]).
//! - [`drop_slot`] drops it, idempotently.
//! - [`open_session`] opens a gated replication session ([`Session`]) with the same connection
//!   handling, for the CDC stream; [`replication_config`] is the configuration it starts from.
//! - [`lost`] tells whether the slot was invalidated (`wal_status = 'lost'`, WAL it needed was
//!   removed past `max_slot_wal_keep_size`); [`SlotLost::explain`] says so, why, and the way out.
//! - [`SlotError`] names the side, never holds a password, and carries a [`SlotProblem`] and a
//!   hint for the failures a DBA can fix.

use std::time::{Duration, Instant};

use pgwire_replication::{PgWireError, ReplicationClient, ReplicationConfig, TlsConfig};

use crate::pg::{self, quote, Endpoint, Lsn, Side, SslMode};

/// A failure the user can act on, recognised in the server's or the driver's words.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SlotProblem {
    /// A slot of that name exists already.
    AlreadyExists,
    /// The slot is in use by another connection.
    SlotActive,
    /// pg_hba.conf has no line for this connection.
    NoHbaEntry,
    /// The role lacks the REPLICATION attribute (or `rds_replication`).
    MissingRight,
    /// `wal_level` is below `logical`.
    WalLevel,
    /// `max_replication_slots` are all taken.
    NoFreeSlot,
    /// `max_wal_senders` (or `max_connections`) are all taken.
    NoFreeWalSender,
    /// The password was refused or missing.
    Authentication,
    /// The server's certificate did not verify, or TLS could not be set up.
    Tls,
    /// Nothing answered at the address.
    Unreachable,
    /// The server cannot take the connection now (starting up, shutting down, recovering) or
    /// the connection broke while it was being set up: a later attempt may work.
    Unavailable,
}

/// A failure creating, inspecting or dropping the slot. The text names the side and never
/// contains a password.
#[derive(Debug, thiserror::Error)]
pub enum SlotError {
    /// Opening the replication connection failed.
    #[error("{side} ({endpoint}): cannot open a replication connection: {message}{}", hint_suffix(.hint))]
    Connect {
        side: Side,
        endpoint: String,
        problem: Option<SlotProblem>,
        message: String,
        hint: Option<String>,
    },
    /// `CREATE_REPLICATION_SLOT` failed.
    #[error("{side}: cannot create replication slot {slot}: {message}{}", hint_suffix(.hint))]
    Create {
        side: Side,
        slot: String,
        problem: Option<SlotProblem>,
        message: String,
        hint: Option<String>,
    },
    /// Reading, dropping or releasing the slot failed.
    #[error("{side}: replication slot {slot}: {message}{}", hint_suffix(.hint))]
    Slot {
        side: Side,
        slot: String,
        problem: Option<SlotProblem>,
        message: String,
        hint: Option<String>,
    },
    /// The normal (non-replication) connection failed.
    #[error(transparent)]
    Pg(#[from] pg::PgError),
}

impl SlotError {
    /// The recognised problem, if any.
    pub fn problem(&self) -> Option<SlotProblem> {
        match self {
            SlotError::Connect { problem, .. }
            | SlotError::Create { problem, .. }
            | SlotError::Slot { problem, .. } => *problem,
            SlotError::Pg(_) => None,
        }
    }

    /// What to do about it, if known.
    pub fn hint(&self) -> Option<&str> {
        match self {
            SlotError::Connect { hint, .. }
            | SlotError::Create { hint, .. }
            | SlotError::Slot { hint, .. } => hint.as_deref(),
            SlotError::Pg(pg::PgError::Connect { hint, .. }) => hint.as_deref(),
            SlotError::Pg(_) => None,
        }
    }
}

fn hint_suffix(hint: &Option<String>) -> String {
    crate::report::Hint::suffix(hint.as_deref())
}

/// The slot as `pg_replication_slots` shows it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SlotInfo {
    pub name: String,
    /// The output plugin (`pgoutput`); `None` for a physical slot.
    pub plugin: Option<String>,
    /// `logical` or `physical`.
    pub slot_type: String,
    /// The database of a logical slot.
    pub database: Option<String>,
    /// Whether a connection is using the slot now.
    pub active: bool,
    pub active_pid: Option<i32>,
    pub temporary: bool,
    /// Where a consumer resumes: everything before it was confirmed.
    pub confirmed_flush_lsn: Option<Lsn>,
    /// The oldest WAL the slot keeps.
    pub restart_lsn: Option<Lsn>,
    /// `reserved`, `extended`, `unreserved` or `lost` (PostgreSQL 13+; `None` before). A `lost`
    /// slot cannot be resumed.
    pub wal_status: Option<String>,
}

/// A logical slot just created with an exported snapshot, and the replication connection that
/// keeps the snapshot alive. Import it with `BEGIN ISOLATION LEVEL REPEATABLE READ;
/// SET TRANSACTION SNAPSHOT '<snapshot_name>'` on any number of connections until
/// [`release`](Self::release).
pub struct ExportedSlot {
    side: Side,
    endpoint: Endpoint,
    slot_name: String,
    snapshot_name: String,
    consistent_lsn: Lsn,
    backend_pid: i32,
    client: Option<ReplicationClient>,
}

impl std::fmt::Debug for ExportedSlot {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ExportedSlot")
            .field("side", &self.side)
            .field("slot_name", &self.slot_name)
            .field("snapshot_name", &self.snapshot_name)
            .field("consistent_lsn", &self.consistent_lsn)
            .field("backend_pid", &self.backend_pid)
            .finish()
    }
}

/// How long [`ExportedSlot::release`] waits for the server to end the walsender.
const RELEASE_WAIT: Duration = Duration::from_secs(30);

/// After this long inside `CREATE_REPLICATION_SLOT`, say what it waits for.
const SLOW_CREATE: Duration = Duration::from_secs(15);

impl ExportedSlot {
    /// Creates logical slot `name` (plugin pgoutput) on `source`, exporting a snapshot, and
    /// keeps the replication connection open so the snapshot stays importable.
    ///
    /// The server answers only once every transaction running when the command started has
    /// ended (the slot's consistent point): a session idle in a transaction on the source
    /// makes this wait; a warning says so after a while.
    pub async fn create(source: &Endpoint, name: &str) -> Result<ExportedSlot, SlotError> {
        let session = open_session(source, name, |cfg| cfg).await?;
        let (mut client, backend_pid, version) = (
            session.client,
            session.backend_pid,
            session.server_version_num,
        );
        let protocol = |what: &str| SlotError::Create {
            side: source.side,
            slot: quote::ident(name),
            problem: None,
            message: format!("unexpected answer from the server: {what}"),
            hint: None,
        };

        let command = create_command(name, version);
        tracing::debug!(side = %source.side, %command, "creating the replication slot");
        let started = Instant::now();
        let result = {
            let create = client.simple_query(&command);
            tokio::pin!(create);
            loop {
                tokio::select! {
                    r = &mut create => break r,
                    _ = tokio::time::sleep(SLOW_CREATE) => tracing::warn!(
                        side = %source.side,
                        slot = name,
                        waited_s = started.elapsed().as_secs(),
                        "creating the replication slot waits for every transaction open on the {} to end; \
                         look for old ones: SELECT pid, state, xact_start FROM pg_stat_activity \
                         WHERE backend_xid IS NOT NULL OR backend_xmin IS NOT NULL ORDER BY xact_start",
                        source.side
                    ),
                }
            }
        };
        let rows = result.map_err(|e| {
            let message = wire_text(source, &e);
            let (problem, hint) = classify(source, name, &message);
            SlotError::Create {
                side: source.side,
                slot: quote::ident(name),
                problem,
                message,
                hint,
            }
        })?;
        // slot_name, consistent_point, snapshot_name, output_plugin
        let row = rows
            .first()
            .ok_or_else(|| protocol("CREATE_REPLICATION_SLOT returned no row"))?;
        let consistent_lsn: Lsn = text(row, 1)
            .and_then(|s| s.parse().ok())
            .ok_or_else(|| protocol("consistent_point is not an LSN"))?;
        let snapshot_name = text(row, 2)
            .filter(|s| !s.is_empty())
            .ok_or_else(|| protocol("no snapshot was exported"))?;
        tracing::info!(
            side = %source.side,
            slot = name,
            %consistent_lsn,
            snapshot = %snapshot_name,
            "replication slot created with an exported snapshot"
        );
        Ok(ExportedSlot {
            side: source.side,
            endpoint: source.clone(),
            slot_name: name.to_string(),
            snapshot_name,
            consistent_lsn,
            backend_pid,
            client: Some(client),
        })
    }

    /// The exported snapshot, for `SET TRANSACTION SNAPSHOT`.
    pub fn snapshot_name(&self) -> &str {
        &self.snapshot_name
    }

    /// The slot's consistent point: the snapshot shows exactly the transactions committed
    /// before it, and decoding from the slot starts with the first one committed after it.
    pub fn consistent_lsn(&self) -> Lsn {
        self.consistent_lsn
    }

    /// The slot's name.
    pub fn slot_name(&self) -> &str {
        &self.slot_name
    }

    /// The process id of the walsender holding the snapshot on the source.
    pub fn backend_pid(&self) -> i32 {
        self.backend_pid
    }

    /// Whether the replication connection is still open on our side. (A connection the server
    /// or the network ended while idle shows only when a snapshot import fails.)
    pub fn is_held(&self) -> bool {
        self.client.as_ref().is_some_and(|c| c.is_running())
    }

    /// Releases the snapshot: closes the replication connection and waits until the server
    /// has ended its walsender, so the snapshot can no longer be imported when this returns.
    /// The slot stays.
    pub async fn release(mut self) -> Result<(), SlotError> {
        // Dropping a gated client closes its gate: the worker sends Terminate and ends.
        drop(self.client.take());
        let client = self.endpoint.connect().await?;
        let deadline = Instant::now() + RELEASE_WAIT;
        loop {
            let row = client
                .query_one(
                    "SELECT count(*) FROM pg_stat_activity WHERE pid = $1",
                    &[&self.backend_pid],
                )
                .await
                .map_err(|e| self.slot_error(&self.endpoint.query_error("release", &e)))?;
            let alive: i64 = row.get(0);
            if alive == 0 {
                tracing::debug!(side = %self.side, slot = %self.slot_name, "exported snapshot released");
                return Ok(());
            }
            if Instant::now() >= deadline {
                return Err(SlotError::Slot {
                    side: self.side,
                    slot: quote::ident(&self.slot_name),
                    problem: None,
                    message: format!(
                        "the replication connection holding the exported snapshot (pid {}) is still open after {}s",
                        self.backend_pid,
                        RELEASE_WAIT.as_secs()
                    ),
                    hint: Some(format!(
                        "end it with SELECT pg_terminate_backend({})",
                        self.backend_pid
                    )),
                });
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    fn slot_error(&self, e: &pg::PgError) -> SlotError {
        SlotError::Slot {
            side: self.side,
            slot: quote::ident(&self.slot_name),
            problem: None,
            message: e.to_string(),
            hint: None,
        }
    }
}

/// An authenticated replication session that has not started streaming
/// ([`ReplicationClient::connect_gated`]): run replication commands with `simple_query`, or
/// `start()` it to stream from the configured slot.
pub struct Session {
    pub client: ReplicationClient,
    /// The walsender's process id on the server.
    pub backend_pid: i32,
    /// `server_version_num`, e.g. 150004.
    pub server_version_num: i32,
}

/// Opens a gated replication session on `ep` for slot `slot`, with the configuration from
/// [`replication_config`] passed through `adjust` (to set the publication, start LSN...), and
/// waits until it is connected and authenticated (at most `connect_timeout`).
///
/// verify-ca (and require with a root certificate) is honoured also when the certificate does
/// not name the host: pgwire-replication 0.5 then wrongly refuses it (it does not recognise
/// rustls' `NotValidForNameContext`), which tells that the chain verified, so the session is
/// opened again naming one of the names the certificate presents; that attempt verifies the
/// chain again.
pub async fn open_session(
    ep: &Endpoint,
    slot: &str,
    adjust: impl Fn(ReplicationConfig) -> ReplicationConfig,
) -> Result<Session, SlotError> {
    let cfg = adjust(replication_config(ep, slot)?);
    let verify_ca = cfg.tls.mode == pgwire_replication::SslMode::VerifyCa;
    match open_once(ep, cfg.clone()).await {
        Err((e, Some(wire))) if verify_ca && is_name_mismatch(&wire) => {
            let Some(name) = name_in_certificate(&wire.to_string()) else {
                return Err(e);
            };
            tracing::debug!(
                side = %ep.side,
                %name,
                "verify-ca: the certificate does not name the host; connecting again naming {name}"
            );
            let mut cfg = cfg;
            cfg.tls = cfg.tls.with_sni_hostname(name);
            open_once(ep, cfg).await.map_err(|(e, _)| e)
        }
        other => other.map_err(|(e, _)| e),
    }
}

fn is_name_mismatch(e: &PgWireError) -> bool {
    e.is_tls() && e.to_string().contains("not valid for name")
}

/// One attempt; the driver's error is kept for [`open_session`]'s retry.
async fn open_once(
    ep: &Endpoint,
    cfg: ReplicationConfig,
) -> Result<Session, (SlotError, Option<PgWireError>)> {
    let timeout = connect_timeout(ep);
    let mut client = ReplicationClient::connect_gated(cfg)
        .await
        .map_err(|e| (connect_error(ep, &e), Some(e)))?;
    // The first query completes the connection and authentication.
    let rows = tokio::time::timeout(
        timeout,
        client.simple_query("SELECT pg_backend_pid(), current_setting('server_version_num')"),
    )
    .await
    .map_err(|_| {
        let e = SlotError::Connect {
            side: ep.side,
            endpoint: ep.display(),
            problem: Some(SlotProblem::Unreachable),
            message: format!("no answer within {}s", timeout.as_secs()),
            hint: Some(format!(
                "is {}:{} reachable from here? (firewall, security group, listen_addresses)",
                ep.info.host(),
                ep.info.port()
            )),
        };
        (e, None)
    })?
    .map_err(|e| (connect_error(ep, &e), Some(e)))?;
    let parsed = rows.first().and_then(|row| {
        Some((
            text(row, 0)?.parse::<i32>().ok()?,
            text(row, 1)?.parse::<i32>().ok()?,
        ))
    });
    let Some((backend_pid, server_version_num)) = parsed else {
        let e = SlotError::Connect {
            side: ep.side,
            endpoint: ep.display(),
            problem: None,
            message: "unexpected answer to SELECT pg_backend_pid(), current_setting('server_version_num')".to_string(),
            hint: None,
        };
        return Err((e, None));
    };
    Ok(Session {
        client,
        backend_pid,
        server_version_num,
    })
}

/// A name the server's certificate is valid for, from rustls' "certificate not valid for
/// name ...; certificate is only valid for DnsName(\"a\") or IpAddress(1.2.3.4)": a plain DNS
/// name first, then an address, then a wildcard name with its `*` filled in.
fn name_in_certificate(message: &str) -> Option<String> {
    let list = message.split("is only valid for ").nth(1)?;
    let mut dns = Vec::new();
    let mut ips = Vec::new();
    let mut rest = list;
    while let Some(i) = rest.find("DnsName(\"") {
        rest = &rest[i + "DnsName(\"".len()..];
        let end = rest.find("\")")?;
        dns.push(rest[..end].to_string());
        rest = &rest[end..];
    }
    let mut rest = list;
    while let Some(i) = rest.find("IpAddress(") {
        rest = &rest[i + "IpAddress(".len()..];
        let end = rest.find(')')?;
        ips.push(rest[..end].to_string());
        rest = &rest[end..];
    }
    let plain = dns.iter().filter(|n| !n.starts_with("*.")).cloned();
    let wild = dns
        .iter()
        .filter_map(|n| n.strip_prefix("*.").map(|d| format!("pgmove.{d}")));
    plain
        .chain(
            ips.into_iter()
                .filter(|ip| ip.parse::<std::net::IpAddr>().is_ok()),
        )
        .chain(wild)
        .find(|n| rustls::pki_types::ServerName::try_from(n.as_str()).is_ok())
}

/// The slot `name` on `source`, from `pg_replication_slots` over a normal connection; `None`
/// when there is none.
pub async fn slot_exists(source: &Endpoint, name: &str) -> Result<Option<SlotInfo>, SlotError> {
    let client = source.connect().await?;
    let row = client
        .query_opt(
            "SELECT slot_name::text, plugin::text, slot_type, database::text, active, active_pid, \
                    temporary, confirmed_flush_lsn, restart_lsn, to_jsonb(s) ->> 'wal_status' \
             FROM pg_replication_slots s WHERE slot_name = $1",
            &[&name],
        )
        .await
        .map_err(|e| catalog_error(source, name, "reading pg_replication_slots", &e))?;
    Ok(row.map(|r| SlotInfo {
        name: r.get(0),
        plugin: r.get(1),
        slot_type: r.get(2),
        database: r.get(3),
        active: r.get(4),
        active_pid: r.get(5),
        temporary: r.get(6),
        confirmed_flush_lsn: r.get(7),
        restart_lsn: r.get(8),
        wal_status: r.get(9),
    }))
}

/// Drops the slot `name` on `source`. Idempotent: `true` if a slot was dropped, `false` if
/// there was none. A slot in use by another connection is an error that names its process.
pub async fn drop_slot(source: &Endpoint, name: &str) -> Result<bool, SlotError> {
    let client = source.connect().await?;
    let result = client
        .query(
            "SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots \
             WHERE slot_name = $1",
            &[&name],
        )
        .await;
    match result {
        Ok(rows) => {
            if !rows.is_empty() {
                tracing::info!(side = %source.side, slot = name, "replication slot dropped");
            }
            Ok(!rows.is_empty())
        }
        // Dropped by someone else between the lookup and the drop.
        Err(e) if e.code() == Some(&tokio_postgres::error::SqlState::UNDEFINED_OBJECT) => Ok(false),
        Err(e) => Err(catalog_error(source, name, "dropping", &e)),
    }
}

fn catalog_error(
    source: &Endpoint,
    name: &str,
    context: &str,
    e: &tokio_postgres::Error,
) -> SlotError {
    let message = pg::redact(
        &format!("{context}: {}", pg::error_text(e)),
        source.info.password.as_ref(),
    );
    let (problem, hint) = classify(source, name, &message);
    SlotError::Slot {
        side: source.side,
        slot: quote::ident(name),
        problem,
        message,
        hint,
    }
}

/// The replication command: the parenthesized option list from PostgreSQL 15, the legacy
/// keyword (accepted from 10) before.
fn create_command(name: &str, server_version_num: i32) -> String {
    if server_version_num >= 150_000 {
        format!(
            "CREATE_REPLICATION_SLOT {} LOGICAL pgoutput (SNAPSHOT 'export')",
            quote::ident(name)
        )
    } else {
        format!(
            "CREATE_REPLICATION_SLOT {} LOGICAL pgoutput EXPORT_SNAPSHOT",
            quote::ident(name)
        )
    }
}

fn text(row: &[Option<bytes::Bytes>], i: usize) -> Option<String> {
    row.get(i)
        .and_then(|v| v.as_ref())
        .map(|b| String::from_utf8_lossy(b).into_owned())
}

fn connect_timeout(ep: &Endpoint) -> Duration {
    Duration::from_secs(ep.info.connect_timeout.unwrap_or(30).max(2))
}

/// Session settings for the walsender that holds the snapshot; see the module documentation.
/// The walsender decodes every pgoutput value with its own session's output functions, so
/// the same [`pg::OUTPUT_SETTINGS`] as every other session follow (exact floats, ISO dates,
/// UTC, hex bytea, `money` under lc_monetary C), and `search_path = pg_catalog` so a
/// `regclass`-like value is written schema-qualified (a name the target resolves to the same
/// object whatever its search_path), never as a bare name resolved against the source's.
const SESSION_OPTIONS: &str = "-c idle_in_transaction_session_timeout=0 -c statement_timeout=0 \
     -c tcp_keepalives_idle=60 -c tcp_keepalives_interval=10 -c tcp_keepalives_count=6";

/// The startup options of the replication connection: the DSN's own, then
/// [`SESSION_OPTIONS`], the output settings and the search path, last so that they win.
fn startup_options(user: Option<&str>) -> String {
    let pinned = format!(
        "{SESSION_OPTIONS} {} -c search_path=pg_catalog",
        pg::OUTPUT_SETTINGS
    );
    match user {
        Some(o) if !o.trim().is_empty() => format!("{o} {pinned}"),
        _ => pinned,
    }
}

/// The pgwire-replication configuration for `ep` (slot `slot`; no publication, as the session
/// never starts streaming).
pub fn replication_config(ep: &Endpoint, slot: &str) -> Result<ReplicationConfig, SlotError> {
    let info = &ep.info;
    let tls_error = |message: String| SlotError::Connect {
        side: ep.side,
        endpoint: ep.display(),
        problem: Some(SlotProblem::Tls),
        message,
        hint: None,
    };
    // Same validation and messages as the normal connections (roots needed and readable,
    // client certificate and key together).
    pg::tls::client_config(info).map_err(|e| tls_error(e.0))?;

    let host = info.host().to_string();
    let connect_to = match (&info.hostaddr, info.is_socket()) {
        // The first of a multi-host list, as `host()` is.
        (Some(addr), false) => addr.split(',').next().unwrap_or(addr).trim().to_string(),
        _ => host.clone(),
    };
    let root = info
        .sslrootcert
        .as_ref()
        .filter(|p| p.as_os_str() != "system")
        .cloned();
    // libpq skips a missing root file unless verification is asked for.
    let has_root = info
        .sslrootcert
        .as_ref()
        .is_some_and(|p| p.as_os_str() == "system" || p.exists());
    let mut tls = if info.is_socket() {
        TlsConfig::disabled()
    } else {
        match info.sslmode() {
            SslMode::Disable => TlsConfig::disabled(),
            SslMode::Allow | SslMode::Prefer => TlsConfig {
                mode: pgwire_replication::SslMode::Prefer,
                ..TlsConfig::default()
            },
            SslMode::Require if !has_root => TlsConfig::require(),
            SslMode::Require | SslMode::VerifyCa => TlsConfig::verify_ca(root),
            SslMode::VerifyFull => TlsConfig::verify_full(root),
        }
    };
    if !info.is_socket() {
        // The name checked (verify-full) and sent as SNI is the host, also when it is an IP
        // address or when hostaddr says where to connect.
        tls = tls.with_sni_hostname(host);
        if let (Some(cert), Some(key)) = (&info.sslcert, &info.sslkey) {
            tls = tls.with_client_cert(cert.clone(), key.clone());
        }
    }
    let password = info
        .password
        .as_ref()
        .map(|p| p.expose().to_string())
        .unwrap_or_default();
    let mut cfg = ReplicationConfig::new(
        connect_to,
        info.user(),
        password,
        info.dbname(),
        slot,
        "pgmove_unused",
    )
    .with_port(info.port())
    .with_tls(tls);
    cfg.application_name = Some(
        info.application_name
            .clone()
            .unwrap_or_else(|| "pgmove".to_string()),
    );
    cfg.options = Some(startup_options(info.options.as_deref()));
    Ok(cfg)
}

/// The driver's error as text, without its category prefix for server errors, redacted.
fn wire_text(ep: &Endpoint, e: &PgWireError) -> String {
    let text = match e {
        PgWireError::Server(m) => m.clone(),
        other => other.to_string(),
    };
    pg::redact(&text, ep.info.password.as_ref())
}

/// The cause of a replication driver error. pgwire-replication 0.5 keeps a server error's
/// SQLSTATE only in its text (`"<message> (SQLSTATE 57P01)"`), so it is read from there.
/// The slot's `wal_status` (`reserved`, `extended`, `unreserved`, `lost`) and the source's
/// `max_slot_wal_keep_size`; no row when there is no such slot. Before PostgreSQL 13 there is
/// neither (a slot is never invalidated): NULL and `-1`.
pub const WAL_STATUS_SQL: &str = "SELECT to_jsonb(s) ->> 'wal_status', \
     coalesce(current_setting('max_slot_wal_keep_size', true), '-1') \
     FROM pg_replication_slots s WHERE s.slot_name = $1";

/// A slot the source invalidated: the WAL it still needed is gone, so change capture from it
/// can never go on.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct SlotLost {
    pub slot: String,
    /// The source's `max_slot_wal_keep_size` now (`-1`: unlimited, set after the loss).
    pub max_slot_wal_keep_size: String,
}

impl SlotLost {
    /// What happened, why, and the commands that get the migration going again, for the plan
    /// file `plan_file` whose target database is `target_db`.
    pub fn explain(&self, plan_file: &str, target_db: &str) -> String {
        let f = shell_word(plan_file);
        let db = quote::ident(target_db);
        format!(
            "the replication slot {slot} on the source is lost (pg_replication_slots.wal_status = 'lost'): \
             it fell so far behind that it held more WAL than the source's max_slot_wal_keep_size = {v} allows, \
             and the source removed WAL it still needed; the changes since cannot be streamed from it any more, \
             so change capture cannot go on and the target cannot be cut over. \
             Way out: load again with a new slot, into an empty target: `pgmove cleanup {f}`, \
             then on the target (connected to another database) `DROP DATABASE {db}; CREATE DATABASE {db};` \
             (or drop the tables the load copied), then `pgmove apply {f}`; \
             first raise max_slot_wal_keep_size on the source (or set it to -1), and keep apply running so the slot does not fall that far behind",
            slot = quote::literal(&self.slot),
            v = self.max_slot_wal_keep_size,
        )
    }
}

/// A path as one shell word (quoted only when it needs to be).
fn shell_word(s: &str) -> String {
    if !s.is_empty()
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"/._-+:,@%=".contains(&b))
    {
        s.to_string()
    } else {
        format!("'{}'", s.replace('\'', "'\\''"))
    }
}

/// Whether the source invalidated `slot` (`None` also when there is no such slot).
pub async fn lost(
    source: &Endpoint,
    client: &tokio_postgres::Client,
    slot: &str,
) -> Result<Option<SlotLost>, pg::PgError> {
    let row = client
        .query_opt(WAL_STATUS_SQL, &[&slot])
        .await
        .map_err(|e| source.query_error("reading the replication slot's wal_status", &e))?;
    Ok(row.and_then(|r| {
        let status: Option<String> = r.get(0);
        (status.as_deref() == Some("lost")).then(|| SlotLost {
            slot: slot.to_string(),
            max_slot_wal_keep_size: r.get(1),
        })
    }))
}

/// [`lost`] on a connection of its own; errors count as "not known to be lost".
pub async fn lost_quietly(source: &Endpoint, slot: &str) -> Option<SlotLost> {
    let c = source.connect().await.ok()?;
    lost(source, &c, slot).await.ok().flatten()
}

pub fn wire_cause(e: &PgWireError) -> pg::Cause {
    match e {
        PgWireError::Server(m) => sqlstate_in(m)
            .map(pg::Cause::Server)
            .unwrap_or(pg::Cause::Other),
        PgWireError::Io(io) if pg::io_is_network(io) => pg::Cause::Connection,
        // The driver's worker task ended unexpectedly (its connection is gone with it).
        PgWireError::Task(_) => pg::Cause::Connection,
        _ => pg::Cause::Other,
    }
}

/// The SQLSTATE at the end of pgwire-replication's text of a server error.
fn sqlstate_in(message: &str) -> Option<String> {
    let rest = message.rsplit_once("(SQLSTATE ")?.1;
    let code = rest.get(..5)?;
    (code.bytes().all(|b| b.is_ascii_alphanumeric()) && rest[5..].starts_with(')'))
        .then(|| code.to_string())
}

fn connect_error(ep: &Endpoint, e: &PgWireError) -> SlotError {
    let message = wire_text(ep, e);
    let (mut problem, mut hint) = classify(ep, "", &message);
    if problem.is_none() {
        let lower = message.to_lowercase();
        if e.is_tls() || lower.contains("certificate") || lower.contains("unknownissuer") {
            problem = Some(SlotProblem::Tls);
            hint = Some(if lower.contains("does not support tls") {
                "the server has no TLS: enable ssl on it, or lower sslmode".to_string()
            } else {
                "the server's certificate did not verify: check sslrootcert (the CA that signed the server certificate) and, for verify-full, that the host name is in the certificate".to_string()
            });
        } else if lower.contains("connection refused") {
            problem = Some(SlotProblem::Unreachable);
            hint = Some(format!(
                "is the server running and accepting TCP connections on {}:{}? (listen_addresses, port, firewall)",
                ep.info.host(),
                ep.info.port()
            ));
        } else if wire_cause(e).is_transient() {
            problem = Some(SlotProblem::Unavailable);
        }
    }
    SlotError::Connect {
        side: ep.side,
        endpoint: ep.display(),
        problem,
        message,
        hint,
    }
}

/// Recognises the failures a DBA can fix, in the server's words, and says how.
fn classify(ep: &Endpoint, slot: &str, message: &str) -> (Option<SlotProblem>, Option<String>) {
    let lower = message.to_lowercase();
    let user = quote::ident(ep.info.user());
    let side = ep.side;
    if lower.contains("already exists") {
        return (
            Some(SlotProblem::AlreadyExists),
            Some(format!(
                "a previous run created it: run `pgmove apply PLAN.yaml` again to resume from it, \
                 or `pgmove cleanup PLAN.yaml` to remove it and start over \
                 (by hand: SELECT pg_drop_replication_slot({}))",
                quote::literal(slot)
            )),
        );
    }
    if lower.contains("is active for pid") {
        let pid = message
            .split("PID ")
            .nth(1)
            .map(|s| {
                s.chars()
                    .take_while(char::is_ascii_digit)
                    .collect::<String>()
            })
            .filter(|s| !s.is_empty())
            .unwrap_or_else(|| "<pid>".to_string());
        return (
            Some(SlotProblem::SlotActive),
            Some(format!(
                "another connection uses the slot (a running `pgmove apply`?): stop it, \
                 or end it with SELECT pg_terminate_backend({pid})"
            )),
        );
    }
    if lower.contains("no pg_hba.conf entry") {
        let addr = message
            .split("host \"")
            .nth(1)
            .and_then(|s| s.split('"').next())
            .unwrap_or("CLIENT_ADDRESS");
        let mask = if addr.contains(':') { 128 } else { 32 };
        let kind = if lower.contains("ssl encryption") || lower.contains("ssl on") {
            "hostssl"
        } else {
            "host"
        };
        return (
            Some(SlotProblem::NoHbaEntry),
            Some(format!(
                "allow the replication connection in the {side}'s pg_hba.conf; a logical \
                 replication connection matches the database name, not the `replication` keyword: \
                 `{kind} {db} {user} {addr}/{mask} scram-sha-256`, then SELECT pg_reload_conf()",
                db = ep.info.dbname(),
                user = ep.info.user(),
            )),
        );
    }
    if lower.contains("superuser or replication role")
        || lower.contains("permission denied to start wal sender")
        || lower.contains("replication attribute")
        || lower.contains("permission denied to use replication slots")
        || lower.contains("superuser or replication role to use replication slots")
    {
        return (
            Some(SlotProblem::MissingRight),
            Some(format!(
                "the role needs the REPLICATION attribute: a superuser runs `ALTER ROLE {user} REPLICATION;` \
                 (on RDS/Aurora the master user runs `GRANT rds_replication TO {user};`)"
            )),
        );
    }
    if lower.contains("wal_level") {
        return (
            Some(SlotProblem::WalLevel),
            Some(format!(
                "logical decoding needs wal_level = logical on the {side}: a superuser runs \
                 `ALTER SYSTEM SET wal_level = logical;` and restarts the server \
                 (on RDS/Aurora: set rds.logical_replication = 1 in the DB parameter group and reboot)"
            )),
        );
    }
    if lower.contains("all replication slots are in use") {
        return (
            Some(SlotProblem::NoFreeSlot),
            Some(format!(
                "every slot allowed by max_replication_slots is taken on the {side}: drop unused ones \
                 (SELECT slot_name, active FROM pg_replication_slots), or raise it with \
                 `ALTER SYSTEM SET max_replication_slots = N;` and a restart"
            )),
        );
    }
    if lower.contains("max_wal_senders") || lower.contains("too many clients") {
        return (
            Some(SlotProblem::NoFreeWalSender),
            Some(format!(
                "every connection allowed by max_wal_senders (or max_connections) is taken on the {side}: \
                 end unused replication connections (SELECT * FROM pg_stat_replication), or raise it with \
                 `ALTER SYSTEM SET max_wal_senders = N;` and a restart"
            )),
        );
    }
    if lower.contains("password authentication failed")
        || lower.contains("password missing")
        || lower.contains("no password")
    {
        return (
            Some(SlotProblem::Authentication),
            Some("check the password: the plan's `password: {env: NAME}` or `{file: PATH}`, PGPASSWORD, or ~/.pgpass".to_string()),
        );
    }
    (None, None)
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_lost_slot_says_why_and_the_way_out() {
        let l = SlotLost {
            slot: "pgmove_shop".into(),
            max_slot_wal_keep_size: "1MB".into(),
        };
        let t = l.explain("/tmp/my plan.yaml", "shop");
        assert!(t.contains("'pgmove_shop' on the source is lost"), "{t}");
        assert!(t.contains("max_slot_wal_keep_size = 1MB"), "{t}");
        assert!(t.contains("`pgmove cleanup '/tmp/my plan.yaml'`"), "{t}");
        assert!(
            t.contains("`DROP DATABASE \"shop\"; CREATE DATABASE \"shop\";`"),
            "{t}"
        );
        assert!(t.contains("`pgmove apply '/tmp/my plan.yaml'`"), "{t}");
        assert_eq!(shell_word("plans/a-b_c.yaml"), "plans/a-b_c.yaml");
        assert_eq!(shell_word("it's"), "'it'\\''s'");
    }

    use super::*;

    fn endpoint(dsn: &str) -> Endpoint {
        Endpoint::from_dsn(
            Side::Source,
            dsn,
            Some(pg::Secret::new("s3cret-pw")),
            &|_| None,
        )
        .expect("valid dsn")
    }

    #[test]
    fn command_syntax_follows_the_server_version() {
        assert_eq!(
            create_command("pgmove_shop", 150_004),
            r#"CREATE_REPLICATION_SLOT "pgmove_shop" LOGICAL pgoutput (SNAPSHOT 'export')"#
        );
        assert_eq!(
            create_command("pgmove_shop", 140_010),
            r#"CREATE_REPLICATION_SLOT "pgmove_shop" LOGICAL pgoutput EXPORT_SNAPSHOT"#
        );
    }

    #[test]
    fn sslmodes_map_onto_the_driver() {
        use pgwire_replication::SslMode as W;
        let dir = tempfile::tempdir().expect("tempdir");
        let ca = dir.path().join("ca.pem");
        std::fs::write(&ca, test_ca_pem()).expect("write");
        let ca = ca.display().to_string();
        let cases = [
            ("sslmode=disable".to_string(), W::Disable),
            ("sslmode=allow".to_string(), W::Prefer),
            ("sslmode=prefer".to_string(), W::Prefer),
            ("sslmode=require".to_string(), W::Require),
            (format!("sslmode=require sslrootcert={ca}"), W::VerifyCa),
            (format!("sslmode=verify-ca sslrootcert={ca}"), W::VerifyCa),
            (
                format!("sslmode=verify-full sslrootcert={ca}"),
                W::VerifyFull,
            ),
        ];
        for (opts, want) in cases {
            let ep = endpoint(&format!("host=10.0.0.5 user=u dbname=d {opts}"));
            let cfg = replication_config(&ep, "s").expect(&opts);
            assert_eq!(cfg.tls.mode, want, "{opts}");
            if want != W::Disable {
                assert_eq!(cfg.tls.sni_hostname.as_deref(), Some("10.0.0.5"));
            }
        }
        let ep = endpoint("host=/tmp user=u sslmode=require");
        let cfg = replication_config(&ep, "s").expect("socket");
        assert_eq!(cfg.tls.mode, W::Disable);
        let ep = endpoint("host=db hostaddr=10.1.1.1 user=u sslmode=require");
        let cfg = replication_config(&ep, "s").expect("hostaddr");
        assert_eq!(cfg.host, "10.1.1.1");
        assert_eq!(cfg.tls.sni_hostname.as_deref(), Some("db"));
    }

    #[test]
    fn verify_without_a_root_fails_like_normal_connections() {
        let ep = endpoint("host=h user=u sslmode=verify-full");
        let err = replication_config(&ep, "s").expect_err("needs a root");
        assert_eq!(err.problem(), Some(SlotProblem::Tls));
        let text = err.to_string();
        assert!(text.starts_with("source"), "{text}");
        assert!(text.contains("sslrootcert"), "{text}");
    }

    #[test]
    fn session_options_keep_the_walsender_alive_and_keep_user_options() {
        let ep = endpoint("host=h user=u options='-c search_path=x'");
        let cfg = replication_config(&ep, "s").expect("config");
        let o = cfg.options.expect("options");
        assert!(o.starts_with("-c search_path=x "), "{o}");
        assert!(o.contains("idle_in_transaction_session_timeout=0"), "{o}");
        assert!(
            o.ends_with(&format!(
                "{} -c search_path=pg_catalog",
                pg::OUTPUT_SETTINGS
            )),
            "the walsender decodes with the pinned output settings: {o}"
        );
        assert_eq!(cfg.application_name.as_deref(), Some("pgmove"));
    }

    #[test]
    fn known_failures_get_hints() {
        let ep = endpoint("host=h user=migrator dbname=shop");
        let cases = [
            (
                r#"replication slot "s" already exists (SQLSTATE 42710)"#,
                SlotProblem::AlreadyExists,
                "pgmove cleanup",
            ),
            (
                r#"no pg_hba.conf entry for host "10.0.0.9", user "migrator", database "shop", no encryption (SQLSTATE 28000)"#,
                SlotProblem::NoHbaEntry,
                "10.0.0.9/32",
            ),
            (
                "must be superuser or replication role to start walsender (SQLSTATE 42501)",
                SlotProblem::MissingRight,
                "rds_replication",
            ),
            (
                "permission denied to start WAL sender (SQLSTATE 42501)",
                SlotProblem::MissingRight,
                "ALTER ROLE \"migrator\" REPLICATION",
            ),
            (
                "logical decoding requires wal_level >= logical (SQLSTATE 55000)",
                SlotProblem::WalLevel,
                "ALTER SYSTEM SET wal_level = logical",
            ),
            (
                "all replication slots are in use (SQLSTATE 53400)",
                SlotProblem::NoFreeSlot,
                "max_replication_slots",
            ),
            (
                "number of requested standby connections exceeds max_wal_senders (currently 10)",
                SlotProblem::NoFreeWalSender,
                "max_wal_senders",
            ),
            (
                r#"replication slot "s" is active for PID 4242 (SQLSTATE 55006)"#,
                SlotProblem::SlotActive,
                "pg_terminate_backend(4242)",
            ),
        ];
        for (message, problem, needle) in cases {
            let (p, h) = classify(&ep, "s", message);
            assert_eq!(p, Some(problem), "{message}");
            let h = h.expect("hint");
            assert!(h.contains(needle), "{message}: {h}");
        }
        assert_eq!(classify(&ep, "s", "something else"), (None, None));
    }

    #[test]
    fn errors_name_the_side_and_hide_the_password() {
        let ep = endpoint("postgres://u@h/d");
        let e = PgWireError::Server("password authentication failed for s3cret-pw".into());
        let err = connect_error(&ep, &e);
        let text = err.to_string();
        assert!(
            text.starts_with("source (postgres://u:********@h"),
            "{text}"
        );
        assert!(!text.contains("s3cret-pw"), "{text}");
        assert_eq!(err.problem(), Some(SlotProblem::Authentication));
    }

    #[test]
    fn a_name_the_certificate_presents_is_found() {
        let m = r#"tls error: TLS handshake failed: invalid peer certificate: certificate not valid for name "db.invalid"; certificate is only valid for DnsName("localhost") or IpAddress(127.0.0.1)"#;
        assert_eq!(name_in_certificate(m).as_deref(), Some("localhost"));
        let m = r#"certificate not valid for name "10.0.0.5"; certificate is only valid for DnsName("*.abc.eu-west-1.rds.amazonaws.com"), IpAddress(10.9.9.9) or DnsName("db.internal")"#;
        assert_eq!(name_in_certificate(m).as_deref(), Some("db.internal"));
        let m = r#"certificate not valid for name "x"; certificate is only valid for DnsName("*.abc.rds.amazonaws.com")"#;
        assert_eq!(
            name_in_certificate(m).as_deref(),
            Some("pgmove.abc.rds.amazonaws.com")
        );
        let m = r#"certificate not valid for name "x"; certificate is not valid for any names (according to its subjectAltName extension)"#;
        assert_eq!(name_in_certificate(m), None);
    }

    fn test_ca_pem() -> String {
        let key = rcgen::KeyPair::generate().expect("key");
        let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).expect("params");
        params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        params.self_signed(&key).expect("self-signed").pem()
    }
}
