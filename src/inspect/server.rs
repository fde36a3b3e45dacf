//! The server itself: version and locale, settings, the connecting role's rights, the platform.

use std::collections::HashMap;

use serde::Serialize;

use super::{InspectError, Reader};

/// The server and the database connected to.
#[derive(Clone, Debug, Default, Serialize)]
pub struct ServerInfo {
    /// `server_version_num`, e.g. 150018.
    pub version_num: i32,
    /// `version()`: the full version string.
    pub version: String,
    /// Whether the connecting role is a superuser.
    pub is_superuser: bool,
    /// `current_user`.
    pub current_user: String,
    /// `session_user`.
    pub session_user: String,
    /// `current_database()`.
    pub database: String,
    /// The database encoding, e.g. `UTF8`.
    pub encoding: String,
    pub lc_collate: String,
    pub lc_ctype: String,
    /// `libc` or `icu` (`datlocprovider`, PostgreSQL 15+); None before 15.
    pub locale_provider: Option<String>,
    /// The ICU locale of the database, when it uses ICU.
    pub icu_locale: Option<String>,
    /// `data_checksums`, when the setting is visible.
    pub data_checksums: Option<bool>,
    /// Whether the server is a standby (`pg_is_in_recovery()`).
    pub in_recovery: bool,
    /// What the server's signs showed ([`super::Inventory::platform_evidence`]) when the plan's
    /// `target.kind` overrides the detection (see [`super::Inventory::declare_platform`]);
    /// None when [`super::Inventory::platform`] is the detection itself.
    pub detected_platform: Option<Platform>,
}

/// The one row about the server and database.
const SERVER_SQL: &str = "\
SELECT current_setting('server_version_num')::int AS version_num,
       version() AS version,
       r.rolsuper AS is_superuser,
       current_user::text AS user_name,
       session_user::text AS session_name,
       current_database()::text AS database,
       pg_encoding_to_char(d.encoding)::text AS encoding,
       d.datcollate::text AS lc_collate,
       d.datctype::text AS lc_ctype,
       CASE to_jsonb(d) ->> 'datlocprovider'
            WHEN 'c' THEN 'libc' WHEN 'i' THEN 'icu' WHEN 'b' THEN 'builtin'
            ELSE to_jsonb(d) ->> 'datlocprovider' END AS locale_provider,
       coalesce(to_jsonb(d) ->> 'daticulocale', to_jsonb(d) ->> 'datlocale') AS icu_locale,
       (SELECT s.setting FROM pg_settings s WHERE s.name = 'data_checksums') AS data_checksums,
       pg_is_in_recovery() AS in_recovery
  FROM pg_database d, pg_roles r
 WHERE d.datname = current_database() AND r.rolname = current_user";

pub(super) async fn read_server(r: &Reader<'_>) -> Result<ServerInfo, InspectError> {
    const WHAT: &str = "the server version and database";
    let row = r.query_one(WHAT, SERVER_SQL, &[]).await?;
    let checksums: Option<String> = r.get(WHAT, &row, "data_checksums")?;
    Ok(ServerInfo {
        version_num: r.get(WHAT, &row, "version_num")?,
        version: r.get(WHAT, &row, "version")?,
        is_superuser: r.get(WHAT, &row, "is_superuser")?,
        current_user: r.get(WHAT, &row, "user_name")?,
        session_user: r.get(WHAT, &row, "session_name")?,
        database: r.get(WHAT, &row, "database")?,
        encoding: r.get(WHAT, &row, "encoding")?,
        lc_collate: r.get(WHAT, &row, "lc_collate")?,
        lc_ctype: r.get(WHAT, &row, "lc_ctype")?,
        locale_provider: r.get(WHAT, &row, "locale_provider")?,
        icu_locale: r.get(WHAT, &row, "icu_locale")?,
        data_checksums: checksums.as_deref().and_then(parse_bool),
        in_recovery: r.get(WHAT, &row, "in_recovery")?,
        detected_platform: None,
    })
}

/// The settings that decide what a migration can do. Times in milliseconds, sizes in MB,
/// whatever unit the server reports them in.
#[derive(Clone, Debug, Default, Serialize)]
pub struct Settings {
    /// `server_version`, e.g. `15.8 (Debian 15.8-1.pgdg120+1)`.
    pub server_version: String,
    /// `minimal`, `replica` or `logical`.
    pub wal_level: String,
    pub max_replication_slots: i64,
    /// Replication slots that exist (free = max - used, see
    /// [`super::Inventory::free_replication_slots`]).
    pub replication_slots_used: i64,
    pub max_wal_senders: i64,
    /// WAL senders running now (`pg_stat_replication`).
    pub wal_senders_used: i64,
    /// `wal_sender_timeout` in ms (0 = disabled).
    pub wal_sender_timeout_ms: i64,
    pub max_worker_processes: i64,
    pub max_logical_replication_workers: i64,
    pub max_sync_workers_per_subscription: i64,
    pub max_connections: i64,
    /// `idle_in_transaction_session_timeout` in ms (0 = disabled).
    pub idle_in_transaction_session_timeout_ms: i64,
    /// `max_slot_wal_keep_size` in MB, -1 = unlimited; None before PostgreSQL 13.
    pub max_slot_wal_keep_size_mb: Option<i64>,
    /// `shared_preload_libraries`; None when hidden from the connecting role (it needs
    /// superuser or `pg_read_all_settings` to see it).
    pub shared_preload_libraries: Option<Vec<String>>,
    /// `rds.logical_replication`, only where the setting exists (RDS, Aurora).
    pub rds_logical_replication: Option<bool>,
    /// `rds.extensions`: the extensions RDS allows, only where the setting exists.
    pub rds_extensions: Option<Vec<String>>,
    /// `rds.allowed_extensions`: the extensions an RDS administrator allows in this instance's
    /// parameter group (`*`: every one of `rds.extensions`), only where the setting exists.
    pub rds_allowed_extensions: Option<Vec<String>>,
    /// `hot_standby_feedback` (what a standby tells its primary so vacuum keeps the rows its
    /// queries still see); None when unreadable.
    pub hot_standby_feedback: Option<bool>,
    /// `max_standby_streaming_delay` in ms (-1: a standby query is never cancelled for
    /// replay); None when unreadable.
    pub max_standby_streaming_delay_ms: Option<i64>,
    /// Background workers running now, which `max_worker_processes` bounds: the processes of
    /// `pg_stat_activity` that are neither client backends, WAL senders nor the server's own
    /// processes (pglogical's supervisor and managers, the logical replication launcher,
    /// parallel workers...). None when the process types are hidden from the connecting role
    /// (it needs superuser or `pg_read_all_stats` to see them).
    pub background_workers_used: Option<i64>,
}

/// The settings read, with their unit: `setting` is in `unit` (e.g. `8kB`, `s`, `MB`).
const SETTINGS_SQL: &str = "\
SELECT name, setting, unit FROM pg_settings WHERE name = ANY($1::text[])";

/// The settings of RDS (and Aurora's plan management) read by name: a setting that a
/// preloaded library defines shows in `pg_settings`, but one only named in the configuration
/// (a placeholder, as on a server that imitates RDS) shows only through `current_setting`.
/// NULL where the setting does not exist.
const RDS_SETTINGS_SQL: &str = "\
SELECT current_setting('rds.logical_replication', true) AS rds_logical_replication,
       current_setting('rds.extensions', true) AS rds_extensions,
       current_setting('rds.allowed_extensions', true) AS rds_allowed_extensions";

/// How many WAL senders run now.
const WAL_SENDERS_SQL: &str = "SELECT count(*) AS n FROM pg_stat_replication";

/// Background workers running now (see [`Settings::background_workers_used`]), and how many
/// processes' types are hidden from the connecting role (then the first count is not known).
/// The excluded types are the server's own processes across versions 10 to 18.
const BACKGROUND_WORKERS_SQL: &str = "\
SELECT count(*) FILTER (WHERE backend_type NOT IN (
           'client backend', 'walsender', 'walreceiver', 'autovacuum launcher',
           'autovacuum worker', 'checkpointer', 'background writer', 'walwriter', 'startup',
           'archiver', 'logger', 'stats collector', 'standalone backend', 'wal summarizer',
           'slotsync worker', 'io worker')) AS workers,
       count(*) FILTER (WHERE backend_type IS NULL) AS hidden
  FROM pg_stat_activity";

const SETTING_NAMES: &[&str] = &[
    "server_version",
    "wal_level",
    "max_replication_slots",
    "max_wal_senders",
    "wal_sender_timeout",
    "max_worker_processes",
    "max_logical_replication_workers",
    "max_sync_workers_per_subscription",
    "max_connections",
    "idle_in_transaction_session_timeout",
    "max_slot_wal_keep_size",
    "shared_preload_libraries",
    "rds.logical_replication",
    "rds.extensions",
    "rds.allowed_extensions",
    "hot_standby_feedback",
    "max_standby_streaming_delay",
];

/// One `pg_settings` row.
#[derive(Clone, Debug)]
struct Raw {
    setting: String,
    unit: Option<String>,
}

pub(super) async fn read_settings(
    r: &Reader<'_>,
    notes: &mut Vec<String>,
) -> Result<Settings, InspectError> {
    const WHAT: &str = "the server settings";
    let names: Vec<String> = SETTING_NAMES.iter().map(|s| s.to_string()).collect();
    let rows = r.query(WHAT, SETTINGS_SQL, &[&names]).await?;
    let mut raw: HashMap<String, Raw> = HashMap::new();
    for row in &rows {
        let name: String = r.get(WHAT, row, "name")?;
        let setting: Option<String> = r.get(WHAT, row, "setting")?;
        let unit: Option<String> = r.get(WHAT, row, "unit")?;
        raw.insert(
            name,
            Raw {
                setting: setting.unwrap_or_default(),
                unit,
            },
        );
    }
    let row = r.query_one(WHAT, RDS_SETTINGS_SQL, &[]).await?;
    for (name, col) in [
        ("rds.logical_replication", "rds_logical_replication"),
        ("rds.extensions", "rds_extensions"),
        ("rds.allowed_extensions", "rds_allowed_extensions"),
    ] {
        let value: Option<String> = r.get(WHAT, &row, col)?;
        if let Some(setting) = value.filter(|_| !raw.contains_key(name)) {
            raw.insert(
                name.to_string(),
                Raw {
                    setting,
                    unit: None,
                },
            );
        }
    }
    let row = r.query_one(WHAT, WAL_SENDERS_SQL, &[]).await?;
    let wal_senders_used: i64 = r.get(WHAT, &row, "n")?;
    let row = r.query_one(WHAT, BACKGROUND_WORKERS_SQL, &[]).await?;
    let hidden: i64 = r.get(WHAT, &row, "hidden")?;
    let background_workers_used = if hidden > 0 {
        notes.push(
            "the process types of pg_stat_activity are hidden from this role, so the background \
             workers in use cannot be counted: it needs superuser or membership in \
             pg_read_all_stats (GRANT pg_read_all_stats TO <role>)"
                .to_string(),
        );
        None
    } else {
        Some(r.get::<i64>(WHAT, &row, "workers")?)
    };

    let side = r.side();
    let missing = |name: &str| InspectError::Decode {
        side,
        what: WHAT.to_string(),
        message: format!("the setting {name} is missing or not a number"),
    };
    let text = |name: &str| raw.get(name).map(|v| v.setting.clone());
    let int = |name: &str| -> Result<i64, InspectError> {
        raw.get(name)
            .and_then(|v| parse_number(&v.setting))
            .ok_or_else(|| missing(name))
    };
    let ms = |name: &str| -> Result<i64, InspectError> {
        raw.get(name)
            .and_then(|v| to_ms(parse_number(&v.setting)?, v.unit.as_deref()))
            .ok_or_else(|| missing(name))
    };
    let mb = |name: &str| -> Option<i64> {
        raw.get(name)
            .and_then(|v| to_mb(parse_number(&v.setting)?, v.unit.as_deref()))
    };

    let shared_preload_libraries = text("shared_preload_libraries").map(|s| split_list(&s));
    if shared_preload_libraries.is_none() {
        notes.push(
            "shared_preload_libraries is hidden from this role: it needs superuser or \
             membership in pg_read_all_settings (GRANT pg_read_all_settings TO <role>)"
                .to_string(),
        );
    }
    Ok(Settings {
        server_version: text("server_version").unwrap_or_default(),
        wal_level: text("wal_level").ok_or_else(|| missing("wal_level"))?,
        max_replication_slots: int("max_replication_slots")?,
        replication_slots_used: 0,
        max_wal_senders: int("max_wal_senders")?,
        wal_senders_used,
        wal_sender_timeout_ms: ms("wal_sender_timeout")?,
        max_worker_processes: int("max_worker_processes")?,
        max_logical_replication_workers: int("max_logical_replication_workers")?,
        max_sync_workers_per_subscription: int("max_sync_workers_per_subscription")?,
        max_connections: int("max_connections")?,
        idle_in_transaction_session_timeout_ms: ms("idle_in_transaction_session_timeout")?,
        max_slot_wal_keep_size_mb: mb("max_slot_wal_keep_size"),
        shared_preload_libraries,
        rds_logical_replication: text("rds.logical_replication")
            .as_deref()
            .and_then(parse_bool),
        rds_extensions: text("rds.extensions").map(|s| split_list(&s)),
        rds_allowed_extensions: text("rds.allowed_extensions").map(|s| split_list(&s)),
        hot_standby_feedback: text("hot_standby_feedback").as_deref().and_then(parse_bool),
        max_standby_streaming_delay_ms: raw
            .get("max_standby_streaming_delay")
            .and_then(|v| to_ms(parse_number(&v.setting)?, v.unit.as_deref())),
        background_workers_used,
    })
}

/// The rights of the connecting role.
#[derive(Clone, Debug, Default, Serialize)]
pub struct Rights {
    /// `rolsuper`.
    pub superuser: bool,
    /// `rolreplication`: may open replication connections and create slots.
    pub replication: bool,
    /// Member of `rds_superuser` (false when the role does not exist).
    pub rds_superuser: bool,
    /// Member of `rds_replication` (false when the role does not exist).
    pub rds_replication: bool,
    /// CREATE on the database (publications, schemas).
    pub create_on_database: bool,
    /// Member of `pg_read_all_data` (PostgreSQL 14+; false before).
    pub read_all_data: bool,
    /// Member of `pg_read_all_settings`.
    pub read_all_settings: bool,
    /// Member of `pg_read_all_stats`: sees other roles' backends in `pg_stat_activity`.
    pub read_all_stats: bool,
    /// `rolcreaterole`.
    pub create_role: bool,
    /// `rolcreatedb`.
    pub create_db: bool,
    /// `rolbypassrls`: row-level security policies never filter this role's reads.
    pub bypass_rls: bool,
    /// The owner of the database connected to.
    pub database_owner: String,
    /// Whether that owner is a superuser (never suggest granting it).
    pub database_owner_superuser: bool,
    /// The role has the database owner's rights (owner, or inherits the owning role).
    pub owns_database: bool,
    /// Member of `pg_signal_backend`: may terminate other non-superusers' sessions.
    pub signal_backend: bool,
    /// `SET session_replication_role = replica` is allowed (tried under a savepoint: superuser,
    /// `GRANT SET ON PARAMETER` on 15+, or RDS's rds_superuser).
    pub set_replication_role: bool,
    /// Extensions the server offers that are marked trusted (PostgreSQL 13+): a role with
    /// CREATE on the database may create them without being a superuser (or, on RDS and
    /// Aurora, a member of rds_superuser). Sorted; empty before 13, and for a superuser (who
    /// may create any: not read).
    pub trusted_extensions: Vec<String>,
    /// Every role that is not predefined (`pg_*`): whether it is a superuser and whether the
    /// connecting role is a member of it (what `ALTER ... OWNER TO` it needs).
    pub roles: Vec<RoleAccess>,
    /// Roles (not predefined) granted a privilege on something in this database: tables,
    /// columns, schemas, functions, default privileges, large objects.
    pub grantees: Vec<String>,
    /// `rolconnlimit` of the connecting role (-1: none).
    pub role_connection_limit: i64,
    /// Sessions of the connecting role now, on the whole server.
    pub role_connections: i64,
    /// `datconnlimit` of the database (-1: none).
    pub database_connection_limit: i64,
    /// Sessions connected to the database now.
    pub database_connections: i64,
    /// Client sessions on the whole server now (what counts against `max_connections`).
    pub client_connections: i64,
    /// `superuser_reserved_connections`: slots a non-superuser cannot use.
    pub superuser_reserved_connections: i64,
}

/// A role, as seen from the connecting role.
#[derive(Clone, Debug, Default, Serialize)]
pub struct RoleAccess {
    pub name: String,
    pub superuser: bool,
    /// The connecting role is a member (directly or not).
    pub member: bool,
}

impl Rights {
    /// Whether the role may use replication slots and replication connections:
    /// superuser, REPLICATION, or (RDS/Aurora) a member of `rds_replication`.
    pub fn can_replicate(&self) -> bool {
        self.superuser || self.replication || self.rds_replication
    }
}

/// The connecting role's attributes and memberships. A predefined or RDS role that does not
/// exist on this server gives false (the sub-select yields NULL).
const RIGHTS_SQL: &str = "\
SELECT r.rolsuper AS superuser,
       r.rolreplication AS replication,
       r.rolcreaterole AS create_role,
       r.rolcreatedb AS create_db,
       coalesce((SELECT pg_has_role(current_user, o.oid, 'MEMBER')
                   FROM pg_roles o WHERE o.rolname = 'rds_superuser'), false) AS rds_superuser,
       coalesce((SELECT pg_has_role(current_user, o.oid, 'MEMBER')
                   FROM pg_roles o WHERE o.rolname = 'rds_replication'), false) AS rds_replication,
       coalesce((SELECT pg_has_role(current_user, o.oid, 'MEMBER')
                   FROM pg_roles o WHERE o.rolname = 'pg_read_all_data'), false) AS read_all_data,
       coalesce((SELECT pg_has_role(current_user, o.oid, 'MEMBER')
                   FROM pg_roles o WHERE o.rolname = 'pg_read_all_settings'), false) AS read_all_settings,
       coalesce((SELECT pg_has_role(current_user, o.oid, 'MEMBER')
                   FROM pg_roles o WHERE o.rolname = 'pg_read_all_stats'), false) AS read_all_stats,
       has_database_privilege(current_database(), 'CREATE') AS create_on_database,
       r.rolbypassrls AS bypass_rls,
       pg_get_userbyid(d.datdba)::text AS database_owner,
       coalesce((SELECT o.rolsuper FROM pg_roles o WHERE o.oid = d.datdba), false) AS database_owner_superuser,
       pg_has_role(d.datdba, 'USAGE') AS owns_database,
       coalesce((SELECT pg_has_role(current_user, o.oid, 'MEMBER')
                   FROM pg_roles o WHERE o.rolname = 'pg_signal_backend'), false) AS signal_backend,
       r.rolconnlimit::int8 AS role_connection_limit,
       d.datconnlimit::int8 AS database_connection_limit,
       current_setting('superuser_reserved_connections')::int8 AS superuser_reserved_connections
  FROM pg_roles r, pg_database d
 WHERE r.rolname = current_user AND d.datname = current_database()";

/// Client sessions now: on the server, of the connecting role, on this database. Every role
/// sees every row of `pg_stat_activity` (only the query text is hidden).
const CONNECTIONS_SQL: &str = "\
SELECT count(*) FILTER (WHERE backend_type = 'client backend') AS client_connections,
       count(*) FILTER (WHERE backend_type = 'client backend' AND usename = current_user) AS role_connections,
       count(*) FILTER (WHERE backend_type = 'client backend' AND datname = current_database()) AS database_connections
  FROM pg_stat_activity";

/// Roles that are not predefined, with whether the connecting role is a member of each.
const ROLES_SQL: &str = "\
SELECT rolname::text AS name, rolsuper AS superuser, pg_has_role(oid, 'MEMBER') AS member
  FROM pg_roles WHERE rolname !~ '^pg_' ORDER BY rolname";

/// The roles (not predefined, not PUBLIC) named as grantees in this database's privileges
/// outside the system schemas and pgmove's: one `name` per row, sorted.
const GRANTEES_SQL: &str = "\
SELECT DISTINCT pg_catalog.pg_get_userbyid(a.grantee)::text AS name FROM (
    SELECT c.relacl AS acl FROM pg_catalog.pg_class c
      JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
     WHERE n.nspname !~ '^pg_' AND n.nspname NOT IN ('information_schema', 'pgmove')
    UNION ALL
    SELECT t.attacl FROM pg_catalog.pg_attribute t JOIN pg_catalog.pg_class c ON c.oid = t.attrelid
      JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
     WHERE t.attacl IS NOT NULL AND n.nspname !~ '^pg_' AND n.nspname NOT IN ('information_schema', 'pgmove')
    UNION ALL
    SELECT p.proacl FROM pg_catalog.pg_proc p JOIN pg_catalog.pg_namespace n ON n.oid = p.pronamespace
     WHERE n.nspname !~ '^pg_' AND n.nspname NOT IN ('information_schema', 'pgmove')
    UNION ALL
    SELECT nspacl FROM pg_catalog.pg_namespace
     WHERE nspname !~ '^pg_' AND nspname NOT IN ('information_schema', 'pgmove')
    UNION ALL
    SELECT defaclacl FROM pg_catalog.pg_default_acl
    UNION ALL
    SELECT lomacl FROM pg_catalog.pg_largeobject_metadata
) x, pg_catalog.aclexplode(x.acl) a
WHERE a.grantee <> 0 AND pg_catalog.pg_get_userbyid(a.grantee) !~ '^pg_'
ORDER BY 1";

/// The extensions the server offers in a version marked trusted, one `name` per row (the
/// `trusted` column arrived in PostgreSQL 13: read through jsonb, so older servers give none).
const TRUSTED_EXTENSIONS_SQL: &str = "\
SELECT DISTINCT v.name::text AS name FROM pg_available_extension_versions v
 WHERE (to_jsonb(v) ->> 'trusted') = 'true' ORDER BY 1";

/// Tried, under a savepoint, to learn whether the role may set it (undone right after).
const SET_REPLICATION_ROLE_SQL: &str = "SET LOCAL session_replication_role = replica";

pub(super) async fn read_rights(r: &Reader<'_>) -> Result<Rights, InspectError> {
    const WHAT: &str = "the rights of the connecting role";
    let row = r.query_one(WHAT, RIGHTS_SQL, &[]).await?;
    let conns = r.query_one(WHAT, CONNECTIONS_SQL, &[]).await?;
    let mut roles = Vec::new();
    for role in r.query(WHAT, ROLES_SQL, &[]).await? {
        roles.push(RoleAccess {
            name: r.get(WHAT, &role, "name")?,
            superuser: r.get(WHAT, &role, "superuser")?,
            member: r.get(WHAT, &role, "member")?,
        });
    }
    let mut grantees = Vec::new();
    for g in r.query(WHAT, GRANTEES_SQL, &[]).await? {
        grantees.push(r.get(WHAT, &g, "name")?);
    }
    let set_replication_role = r
        .try_query(WHAT, SET_REPLICATION_ROLE_SQL, &[])
        .await?
        .is_ok();
    // A superuser may create any extension, so only another role's preflight looks at which
    // are trusted; reading them reads every extension's control and script files (tens of
    // milliseconds of the server's time, on every command that inspects).
    let mut trusted_extensions = Vec::new();
    if !r.get::<bool>(WHAT, &row, "superuser")? {
        for e in r.query(WHAT, TRUSTED_EXTENSIONS_SQL, &[]).await? {
            trusted_extensions.push(r.get(WHAT, &e, "name")?);
        }
    }
    Ok(Rights {
        bypass_rls: r.get(WHAT, &row, "bypass_rls")?,
        database_owner: r.get(WHAT, &row, "database_owner")?,
        database_owner_superuser: r.get(WHAT, &row, "database_owner_superuser")?,
        owns_database: r.get(WHAT, &row, "owns_database")?,
        signal_backend: r.get(WHAT, &row, "signal_backend")?,
        set_replication_role,
        trusted_extensions,
        roles,
        grantees,
        role_connection_limit: r.get(WHAT, &row, "role_connection_limit")?,
        role_connections: r.get(WHAT, &conns, "role_connections")?,
        database_connection_limit: r.get(WHAT, &row, "database_connection_limit")?,
        database_connections: r.get(WHAT, &conns, "database_connections")?,
        client_connections: r.get(WHAT, &conns, "client_connections")?,
        superuser_reserved_connections: r.get(WHAT, &row, "superuser_reserved_connections")?,
        superuser: r.get(WHAT, &row, "superuser")?,
        replication: r.get(WHAT, &row, "replication")?,
        rds_superuser: r.get(WHAT, &row, "rds_superuser")?,
        rds_replication: r.get(WHAT, &row, "rds_replication")?,
        create_on_database: r.get(WHAT, &row, "create_on_database")?,
        read_all_data: r.get(WHAT, &row, "read_all_data")?,
        read_all_settings: r.get(WHAT, &row, "read_all_settings")?,
        read_all_stats: r.get(WHAT, &row, "read_all_stats")?,
        create_role: r.get(WHAT, &row, "create_role")?,
        create_db: r.get(WHAT, &row, "create_db")?,
    })
}

/// Where the server runs.
///
/// Heuristics, strongest first:
/// - **Aurora** (PostgreSQL-compatible): the function `aurora_version()` exists in `pg_proc`,
///   or a setting named `apg_*` / `aurora*` exists (Aurora's query plan management and Aurora
///   settings). Aurora also has every RDS sign below, so it is tested first.
/// - **RDS**: a setting `rds.extensions` or `rds.logical_replication` exists (defined by the
///   RDS-specific library preloaded on every RDS instance), or the role `rds_superuser` exists.
/// - **SelfManaged**: none of these. A self-managed server with a role someone named
///   `rds_superuser` is taken for RDS; the plan's `target.kind` overrides detection.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Platform {
    #[default]
    SelfManaged,
    Rds,
    Aurora,
}

impl Platform {
    /// How reports name it: `self-managed`, `RDS`, `Aurora`.
    pub fn label(self) -> &'static str {
        match self {
            Platform::SelfManaged => "self-managed",
            Platform::Rds => "RDS",
            Platform::Aurora => "Aurora",
        }
    }

    /// RDS or Aurora.
    pub fn is_managed(self) -> bool {
        matches!(self, Platform::Rds | Platform::Aurora)
    }
}

/// The signs of RDS and Aurora, one boolean each. Settings show in `pg_settings` when a
/// library defines them, and only through `current_setting` when they are only named in the
/// configuration (see [`RDS_SETTINGS_SQL`]): both are looked at.
const PLATFORM_SQL: &str = "\
SELECT EXISTS (SELECT 1 FROM pg_proc WHERE proname = 'aurora_version') AS aurora_function,
       coalesce((SELECT min(name) FROM pg_settings
                  WHERE name LIKE 'apg\\_%' OR name LIKE 'aurora%'),
                CASE WHEN current_setting('apg_plan_mgmt.capture_plan_baselines', true) IS NOT NULL
                     THEN 'apg_plan_mgmt.capture_plan_baselines' END) AS aurora_setting,
       coalesce((SELECT min(name) FROM pg_settings
                  WHERE name IN ('rds.extensions', 'rds.logical_replication')),
                CASE WHEN current_setting('rds.extensions', true) IS NOT NULL THEN 'rds.extensions'
                     WHEN current_setting('rds.logical_replication', true) IS NOT NULL
                     THEN 'rds.logical_replication' END) AS rds_setting,
       EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'rds_superuser') AS rds_superuser_role";

pub(super) async fn read_platform(r: &Reader<'_>) -> Result<(Platform, Vec<String>), InspectError> {
    const WHAT: &str = "the platform (RDS, Aurora)";
    let row = r.query_one(WHAT, PLATFORM_SQL, &[]).await?;
    let aurora_function: bool = r.get(WHAT, &row, "aurora_function")?;
    let aurora_setting: Option<String> = r.get(WHAT, &row, "aurora_setting")?;
    let rds_setting: Option<String> = r.get(WHAT, &row, "rds_setting")?;
    let rds_role: bool = r.get(WHAT, &row, "rds_superuser_role")?;
    Ok(classify_platform(
        aurora_function,
        aurora_setting.as_deref(),
        rds_setting.as_deref(),
        rds_role,
    ))
}

/// The platform from its signs, with the evidence in words.
pub(super) fn classify_platform(
    aurora_function: bool,
    aurora_setting: Option<&str>,
    rds_setting: Option<&str>,
    rds_superuser_role: bool,
) -> (Platform, Vec<String>) {
    let mut evidence = Vec::new();
    if aurora_function {
        evidence.push("function aurora_version() exists".to_string());
    }
    if let Some(s) = aurora_setting {
        evidence.push(format!("setting {s} exists"));
    }
    if let Some(s) = rds_setting {
        evidence.push(format!("setting {s} exists"));
    }
    if rds_superuser_role {
        evidence.push("role rds_superuser exists".to_string());
    }
    let platform = if aurora_function || aurora_setting.is_some() {
        Platform::Aurora
    } else if rds_setting.is_some() || rds_superuser_role {
        Platform::Rds
    } else {
        Platform::SelfManaged
    };
    (platform, evidence)
}

/// A boolean setting as PostgreSQL reads it (`on`, `true`, `yes`, `1`...).
pub(super) fn parse_bool(s: &str) -> Option<bool> {
    match s.trim().to_ascii_lowercase().as_str() {
        "on" | "true" | "yes" | "1" | "t" | "y" => Some(true),
        "off" | "false" | "no" | "0" | "f" | "n" => Some(false),
        _ => None,
    }
}

/// An integer setting; real-valued settings are rounded.
fn parse_number(s: &str) -> Option<i64> {
    let s = s.trim();
    s.parse::<i64>().ok().or_else(|| {
        s.parse::<f64>()
            .ok()
            .filter(|f| f.is_finite())
            .map(|f| f.round() as i64)
    })
}

/// Splits a `pg_settings` unit like `8kB` or `16MB` into its multiplier and base unit.
fn split_unit(unit: &str) -> (i128, &str) {
    let unit = unit.trim();
    let digits = unit.chars().take_while(|c| c.is_ascii_digit()).count();
    let mult = unit[..digits].parse::<i128>().unwrap_or(1).max(1);
    (mult, &unit[digits..])
}

/// A time setting in milliseconds. Negative values (-1 = disabled/unlimited) pass unchanged;
/// no unit is taken as milliseconds. None for a unit that is not a time.
pub(super) fn to_ms(value: i64, unit: Option<&str>) -> Option<i64> {
    if value < 0 {
        return Some(value);
    }
    let (mult, base) = split_unit(unit.unwrap_or("ms"));
    let (num, den): (i128, i128) = match base {
        "us" => (1, 1000),
        "ms" | "" => (1, 1),
        "s" => (1000, 1),
        "min" => (60_000, 1),
        "h" => (3_600_000, 1),
        "d" => (86_400_000, 1),
        _ => return None,
    };
    i64::try_from(i128::from(value) * mult * num / den).ok()
}

/// A memory setting in MB (rounded down). Negative values (-1 = unlimited) pass unchanged;
/// no unit is taken as MB. None for a unit that is not a size.
pub(super) fn to_mb(value: i64, unit: Option<&str>) -> Option<i64> {
    if value < 0 {
        return Some(value);
    }
    let (mult, base) = split_unit(unit.unwrap_or("MB"));
    let (num, den): (i128, i128) = match base {
        "B" => (1, 1024 * 1024),
        "kB" => (1, 1024),
        "MB" | "" => (1, 1),
        "GB" => (1024, 1),
        "TB" => (1024 * 1024, 1),
        _ => return None,
    };
    i64::try_from(i128::from(value) * mult * num / den).ok()
}

/// A list setting (`shared_preload_libraries`, `rds.extensions`): comma-separated, entries
/// possibly double-quoted, blanks trimmed, empty entries dropped.
pub(super) fn split_list(s: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut quoted = false;
    let mut chars = s.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '"' if quoted && chars.peek() == Some(&'"') => {
                chars.next();
                cur.push('"');
            }
            '"' => quoted = !quoted,
            ',' if !quoted => {
                let t = cur.trim();
                if !t.is_empty() {
                    out.push(t.to_string());
                }
                cur.clear();
            }
            _ => cur.push(c),
        }
    }
    let t = cur.trim();
    if !t.is_empty() {
        out.push(t.to_string());
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_normalise_to_milliseconds() {
        assert_eq!(to_ms(60000, Some("ms")), Some(60000));
        assert_eq!(to_ms(60, Some("s")), Some(60000));
        assert_eq!(to_ms(5, Some("min")), Some(300_000));
        assert_eq!(to_ms(2, Some("h")), Some(7_200_000));
        assert_eq!(to_ms(1, Some("d")), Some(86_400_000));
        assert_eq!(to_ms(0, Some("ms")), Some(0));
        assert_eq!(to_ms(-1, Some("s")), Some(-1));
        assert_eq!(to_ms(1500, Some("us")), Some(1));
        assert_eq!(to_ms(250, None), Some(250));
        assert_eq!(to_ms(1, Some("kB")), None);
    }

    #[test]
    fn sizes_normalise_to_megabytes() {
        assert_eq!(to_mb(1024, Some("MB")), Some(1024));
        assert_eq!(to_mb(-1, Some("MB")), Some(-1));
        assert_eq!(to_mb(2048, Some("kB")), Some(2));
        assert_eq!(to_mb(16384, Some("8kB")), Some(128));
        assert_eq!(to_mb(64, Some("16MB")), Some(1024));
        assert_eq!(to_mb(3, Some("GB")), Some(3072));
        assert_eq!(to_mb(1, Some("TB")), Some(1_048_576));
        assert_eq!(to_mb(1_048_576, Some("B")), Some(1));
        assert_eq!(to_mb(5, None), Some(5));
        assert_eq!(to_mb(5, Some("ms")), None);
    }

    #[test]
    fn lists_split_on_commas_outside_quotes() {
        assert_eq!(split_list(""), Vec::<String>::new());
        assert_eq!(split_list("pglogical"), vec!["pglogical"]);
        assert_eq!(
            split_list("pg_stat_statements, pglogical ,auto_explain"),
            vec!["pg_stat_statements", "pglogical", "auto_explain"]
        );
        assert_eq!(
            split_list(r#""a,b", c, "d""e""#),
            vec!["a,b", "c", r#"d"e"#]
        );
        assert_eq!(split_list(" , x ,, "), vec!["x"]);
    }

    #[test]
    fn booleans_read_like_postgres() {
        assert_eq!(parse_bool("on"), Some(true));
        assert_eq!(parse_bool("OFF"), Some(false));
        assert_eq!(parse_bool("1"), Some(true));
        assert_eq!(parse_bool("maybe"), None);
    }

    #[test]
    fn numbers_accept_reals() {
        assert_eq!(parse_number("10"), Some(10));
        assert_eq!(parse_number(" -1 "), Some(-1));
        assert_eq!(parse_number("0.5"), Some(1));
        assert_eq!(parse_number("x"), None);
    }

    #[test]
    fn platform_detection_prefers_aurora_over_rds() {
        let (p, ev) = classify_platform(false, None, None, false);
        assert_eq!(p, Platform::SelfManaged);
        assert!(ev.is_empty());
        let (p, ev) = classify_platform(false, None, Some("rds.extensions"), true);
        assert_eq!(p, Platform::Rds);
        assert_eq!(ev.len(), 2);
        assert_eq!(classify_platform(false, None, None, true).0, Platform::Rds);
        let (p, ev) = classify_platform(true, None, Some("rds.extensions"), true);
        assert_eq!(p, Platform::Aurora);
        assert!(ev[0].contains("aurora_version"));
        assert_eq!(
            classify_platform(
                false,
                Some("apg_plan_mgmt.capture_plan_baselines"),
                None,
                false
            )
            .0,
            Platform::Aurora
        );
    }
}
