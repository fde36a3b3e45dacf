//! Preflight checks: each one a function over the plan, both inventories and the chosen
//! strategy, returning findings with a severity, the object concerned and the exact fix.

use crate::inspect::{Inventory, Platform, TableKind};
use crate::pg::Side;
use crate::plan::{Plan, TablesWithoutKey};
use crate::planner::{self, Strategy};
use crate::tools::{Tool, ToolError};

mod cross_major;
mod pglogical;

pub use self::cross_major::removed_types;
pub use self::pglogical::pglogical_access;
pub use self::pglogical::{
    generated_columns as pglogical_generated, pglogical_available, pglogical_capacity,
    pglogical_generated_columns, pglogical_preload, pglogical_versions,
    preloaded as pglogical_preloaded, probe_provider, provider_findings,
    version as pglogical_version, ProviderProbe,
};

/// What the checks return (the cutover dry run judges with the same type).
pub use crate::report::{Finding, Severity};

/// What the checks look at.
pub struct Context<'a> {
    pub plan: &'a Plan,
    pub source: &'a Inventory,
    pub target: &'a Inventory,
    /// The strategy the planner chose (checks for online strategies run when it is online).
    pub strategy: Option<Strategy>,
    /// pg_dump and pg_restore as found, or why not.
    pub pg_dump: Result<Tool, ToolError>,
    pub pg_restore: Result<Tool, ToolError>,
    /// The result of trying a replication connection to the source, when one was tried.
    pub replication_probe: Option<Result<(), ProbeError>>,
}

/// Why a replication connection to the source (psql `IDENTIFY_SYSTEM`) did not succeed.
#[derive(Debug, thiserror::Error)]
pub enum ProbeError {
    /// No psql to try it with.
    #[error(transparent)]
    NoPsql(#[from] ToolError),
    #[error("cannot run psql: {0}")]
    Spawn(std::io::Error),
    /// The server refused: psql's message, the password redacted.
    #[error("{0}")]
    Refused(String),
}

impl Context<'_> {
    fn online(&self) -> bool {
        self.strategy.is_some_and(Strategy::is_online)
    }
    fn uses_dump(&self) -> bool {
        // copy-cdc and pglogical also take their schema from pg_dump.
        self.strategy.is_some()
    }
}

type Check = fn(&Context) -> Vec<Finding>;

/// Every check, in report order.
pub const CHECKS: &[Check] = &[
    server_versions,
    target_kind,
    standby_source,
    standby_target,
    rds_proxy_source,
    wal_level,
    replication_slots_and_senders,
    wal_sender_timeout,
    idle_in_transaction_timeout,
    max_slot_wal_keep_size,
    source_rights,
    row_security,
    publication_ownership,
    ddl_event_triggers,
    ddl_messages,
    pglogical_ddl,
    source_sequences,
    target_rights,
    target_schemas,
    target_row_security,
    replication_role,
    connections,
    fence_rights,
    replication_connection,
    pglogical_preload,
    pglogical_available,
    pglogical_versions,
    pglogical_capacity,
    pglogical_generated_columns,
    tables_without_key,
    unlogged_tables,
    partitioned_tables,
    partitioned_publication,
    removed_types,
    extensions,
    client_versions,
    encoding,
    target_not_empty,
    pgmove_schema,
    large_objects,
    long_transactions,
    inactive_slots,
    owners,
    missing_grantees,
    downtime_budget,
];

/// The target's major must be at least the source's (`crate::versions::pair_blocker`).
pub fn server_versions(ctx: &Context) -> Vec<Finding> {
    let (s, t) = (ctx.source.server.version_num, ctx.target.server.version_num);
    match crate::versions::pair_blocker(s, t) {
        None => vec![],
        Some(why) => vec![Finding::new(Severity::Blocker, "server-versions", Some(Side::Target), why)
            .object(format!("PostgreSQL {}", ctx.target.settings.server_version))
            .fix(format!(
                "move into a target running PostgreSQL {} or newer (upgrade this target, or create a new one of that major)",
                crate::versions::major_label(s)
            ))],
    }
}

/// Runs every check.
pub fn run(ctx: &Context) -> Vec<Finding> {
    let mut out: Vec<Finding> = CHECKS.iter().flat_map(|c| c(ctx)).collect();
    out.sort_by_key(|f| f.severity);
    out
}

fn is_rds(inv: &Inventory) -> bool {
    matches!(inv.platform, Platform::Rds | Platform::Aurora)
}

/// Whether the role may open replication connections (RDS: rds_superuser has it too).
fn has_replication_right(inv: &Inventory) -> bool {
    let r = &inv.rights;
    r.superuser || r.replication || r.rds_replication || r.rds_superuser
}

/// Who can run a fix that needs more than the migrating role has.
fn admin(inv: &Inventory) -> &'static str {
    if is_rds(inv) {
        "the master user"
    } else {
        "a superuser"
    }
}

/// Where a setting of `inv` is changed on RDS/Aurora: the DB parameter group on RDS; on
/// Aurora the DB cluster parameter group, but for `max_connections`, an instance setting.
fn parameter_group(inv: &Inventory, setting: &str) -> &'static str {
    if inv.platform == Platform::Aurora && setting != "max_connections" {
        "DB cluster parameter group"
    } else {
        "DB parameter group"
    }
}

/// The fix that sets `settings` on RDS/Aurora: not SQL, so not the master user, but whoever
/// manages the instance in AWS, with the exact AWS CLI calls; `reboot` for settings that
/// take a restart.
fn parameter_group_fix(inv: &Inventory, settings: &[(&str, &str)], reboot: bool) -> String {
    let first = settings.first().map(|s| s.0).unwrap_or("");
    let group = parameter_group(inv, first);
    let cluster = group.starts_with("DB cluster");
    let assignments: Vec<String> = settings.iter().map(|(k, v)| format!("{k} = {v}")).collect();
    let method = if reboot {
        "pending-reboot"
    } else {
        "immediate"
    };
    let params: Vec<String> = settings
        .iter()
        .map(|(k, v)| format!("ParameterName={k},ParameterValue={v},ApplyMethod={method}"))
        .collect();
    let modify = if cluster {
        format!(
            "aws rds modify-db-cluster-parameter-group --db-cluster-parameter-group-name <group> --parameters {}",
            params.join(" ")
        )
    } else {
        format!(
            "aws rds modify-db-parameter-group --db-parameter-group-name <group> --parameters {}",
            params.join(" ")
        )
    };
    let (then, reboot_cmd) = match (reboot, cluster) {
        (false, _) => (String::new(), String::new()),
        (true, true) => (
            ", then reboot the writer instance".to_string(),
            "; aws rds reboot-db-instance --db-instance-identifier <writer-instance>".to_string(),
        ),
        (true, false) => (
            ", then reboot the instance".to_string(),
            "; aws rds reboot-db-instance --db-instance-identifier <instance>".to_string(),
        ),
    };
    format!(
        "not SQL (the master user cannot change it): in AWS, set {} in the {}'s {group}{then}: {modify}{reboot_cmd}",
        assignments.join(" and "),
        inv.side
    )
}

fn restart_fix(inv: &Inventory, setting: &str, value: &str) -> String {
    if is_rds(inv) {
        parameter_group_fix(inv, &[(setting, value)], true)
    } else {
        format!(
            "ALTER SYSTEM SET {setting} = '{value}'; then restart the {} server",
            inv.side
        )
    }
}

/// `target.kind` declares a platform the target shows no sign of (or signs of another):
/// the checks and fixes follow the plan, and the report names both.
pub fn target_kind(ctx: &Context) -> Vec<Finding> {
    let t = ctx.target;
    let detected = t.detected_platform();
    if !t.platform_declared() || t.platform == detected {
        return vec![];
    }
    let evidence = if t.platform_evidence.is_empty() {
        "no sign of RDS or Aurora".to_string()
    } else {
        t.platform_evidence.join(", ")
    };
    vec![Finding::new(
        Severity::Warning,
        "target-kind",
        Some(Side::Target),
        format!(
            "target.kind is {} but the target looks {} ({evidence}); the checks and fixes follow target.kind ({})",
            ctx.plan.target.kind,
            detected.label(),
            t.platform.label()
        ),
    )
    .object("target.kind")
    .fix(format!(
        "if the target is {}, set target.kind: auto (or {}); keep {} only if the server hides what it runs on",
        detected.label(),
        match detected {
            Platform::SelfManaged => "self-managed",
            Platform::Rds => "rds",
            Platform::Aurora => "aurora",
        },
        ctx.plan.target.kind
    ))]
}

/// A standby (read replica) source: the online strategies cannot use it (see
/// `planner::standby_source_reason`); dump-restore can, if replay does not cancel its snapshot.
pub fn standby_source(ctx: &Context) -> Vec<Finding> {
    let s = ctx.source;
    if !s.server.in_recovery || ctx.strategy.is_none() {
        return vec![];
    }
    let feedback = s.settings.hot_standby_feedback;
    let delay = s.settings.max_standby_streaming_delay_ms;
    let settings_fix = if is_rds(s) {
        parameter_group_fix(
            s,
            &[
                ("hot_standby_feedback", "1"),
                ("max_standby_streaming_delay", "-1"),
            ],
            false,
        )
    } else {
        "as a superuser, on the replica: ALTER SYSTEM SET hot_standby_feedback = on; ALTER SYSTEM SET max_standby_streaming_delay = -1; SELECT pg_reload_conf();".to_string()
    };
    if ctx.online() {
        let primary = if is_rds(s) {
            "point source.dsn at the primary: the instance endpoint of the source (RDS) or its cluster (writer) endpoint (Aurora), not a read replica or reader endpoint"
        } else {
            "point source.dsn at the primary server"
        };
        return vec![Finding::new(
            Severity::Blocker,
            "source-standby",
            Some(Side::Source),
            format!(
                "{}: strategy {} cannot use it",
                planner::standby_source_reason(s),
                ctx.strategy.map(Strategy::name).unwrap_or("")
            ),
        )
        .object(format!("database {}", s.server.database))
        .fix(format!(
            "{primary}; or set strategy: dump-restore, which can read from the replica with the writes stopped on the primary (then, so that replay does not cancel the dump's snapshot: {settings_fix})"
        ))];
    }
    let show = |v: Option<String>| v.unwrap_or_else(|| "unknown".to_string());
    let values = format!(
        "hot_standby_feedback is {}, max_standby_streaming_delay is {}",
        show(feedback.map(|f| if f {
            "on".to_string()
        } else {
            "off".to_string()
        })),
        show(delay.map(|d| if d < 0 {
            "-1".to_string()
        } else {
            format!("{d} ms")
        }))
    );
    if feedback == Some(true) && delay == Some(-1) {
        return vec![Finding::new(
            Severity::Info,
            "source-standby",
            Some(Side::Source),
            format!("the source is a standby (read replica): dump-restore reads from it ({values}, so replay waits for the dump rather than cancel it); it copies what the replica has replayed, so stop the writes on the primary and let the replica catch up first"),
        )
        .object(format!("database {}", s.server.database))];
    }
    vec![Finding::new(
        Severity::Warning,
        "source-standby",
        Some(Side::Source),
        format!("the source is a standby (read replica) and {values}: replay can cancel the dump's long-running snapshot (\"canceling statement due to conflict with recovery\"); the dump also copies only what the replica has replayed, so stop the writes on the primary and let the replica catch up first"),
    )
    .object(format!("database {}", s.server.database))
    .fix(format!("{settings_fix}  (or a max_standby_streaming_delay longer than the dump takes, where it is capped; put them back after the move)"))]
}

/// A standby target accepts no writes.
pub fn standby_target(ctx: &Context) -> Vec<Finding> {
    let t = ctx.target;
    if !t.server.in_recovery {
        return vec![];
    }
    let fix = if is_rds(t) {
        "point target.dsn at the primary: the target instance's endpoint (RDS) or its cluster (writer) endpoint (Aurora), not a read replica or reader endpoint"
    } else {
        "point target.dsn at the primary server, or promote this standby first (SELECT pg_promote();)"
    };
    vec![Finding::new(
        Severity::Blocker,
        "target-standby",
        Some(Side::Target),
        "the target is a standby (read replica, in recovery): it accepts no writes, so nothing can be moved into it".to_string(),
    )
    .object(format!("database {}", t.server.database))
    .fix(fix)]
}

/// An RDS Proxy endpoint as the source of an online strategy: RDS Proxy carries no
/// replication connections, so neither the slot's stream nor pglogical's subscription can go
/// through it.
pub fn rds_proxy_source(ctx: &Context) -> Vec<Finding> {
    if !ctx.online() {
        return vec![];
    }
    let hosts = planner::source_hosts(ctx.plan);
    match planner::rds_proxy_host(&hosts) {
        Some(host) => vec![rds_proxy_finding(host, ctx.strategy)],
        None => vec![],
    }
}

/// The blocker for an RDS Proxy `host` as the source of `strategy`.
fn rds_proxy_finding(host: &str, strategy: Option<Strategy>) -> Finding {
    Finding::new(
        Severity::Blocker,
        "source-rds-proxy",
        Some(Side::Source),
        format!(
            "the source host {host} is an RDS Proxy endpoint: RDS Proxy does not carry replication connections, so strategy {} cannot stream changes through it",
            strategy.map(Strategy::name).unwrap_or("")
        ),
    )
    .object(format!("host {host}"))
    .fix("point source.dsn at the instance endpoint (RDS: <instance>.<id>.<region>.rds.amazonaws.com) or the cluster (writer) endpoint (Aurora: <cluster>.cluster-<id>.<region>.rds.amazonaws.com), not the proxy; or set strategy: dump-restore, which needs no replication connection")
}

/// wal_level must be logical on the source for online strategies.
pub fn wal_level(ctx: &Context) -> Vec<Finding> {
    let s = ctx.source;
    if !ctx.online() || s.settings.wal_level == "logical" {
        return vec![];
    }
    let fix = if is_rds(s) {
        format!(
            "{}  (rds.logical_replication = 1 sets wal_level = logical)",
            parameter_group_fix(s, &[("rds.logical_replication", "1")], true)
        )
    } else {
        "ALTER SYSTEM SET wal_level = 'logical'; then restart the source server (a reload is not enough)".to_string()
    };
    let rds_setting = match s.settings.rds_logical_replication {
        Some(on) if is_rds(s) => format!(
            " (rds.logical_replication is {})",
            if on { "1" } else { "0" }
        ),
        _ => String::new(),
    };
    vec![Finding::new(
        Severity::Blocker,
        "wal-level",
        Some(Side::Source),
        format!(
            "wal_level is {}{rds_setting}; logical decoding needs wal_level = logical, which takes a server restart",
            s.settings.wal_level
        ),
    )
    .object("setting wal_level")
    .fix(fix)]
}

/// One replication slot and one WAL sender are needed on the source for online strategies.
pub fn replication_slots_and_senders(ctx: &Context) -> Vec<Finding> {
    let s = ctx.source;
    let mut out = vec![];
    // pglogical counts its own (`pglogical-slots`, `pglogical-wal-senders`).
    if !ctx.online() || ctx.strategy == Some(Strategy::Pglogical) {
        return out;
    }
    if s.free_replication_slots() < 1 {
        out.push(
            Finding::new(
                Severity::Blocker,
                "replication-slots",
                Some(Side::Source),
                format!(
                    "max_replication_slots = {} and {} slot(s) exist: none is free for pgmove",
                    s.settings.max_replication_slots, s.settings.replication_slots_used
                ),
            )
            .object("setting max_replication_slots")
            .fix(restart_fix(
                s,
                "max_replication_slots",
                &(s.settings.max_replication_slots + 1).to_string(),
            )),
        );
    }
    if s.free_wal_senders() < 1 {
        out.push(
            Finding::new(
                Severity::Blocker,
                "wal-senders",
                Some(Side::Source),
                format!(
                    "max_wal_senders = {} and {} are in use: none is free for pgmove",
                    s.settings.max_wal_senders, s.settings.wal_senders_used
                ),
            )
            .object("setting max_wal_senders")
            .fix(restart_fix(
                s,
                "max_wal_senders",
                &(s.settings.max_wal_senders + 2).to_string(),
            )),
        );
    }
    out
}

/// wal_sender_timeout 0 or at least 10 s (AWS DMS's advice), or replication drops under load.
pub fn wal_sender_timeout(ctx: &Context) -> Vec<Finding> {
    let t = ctx.source.settings.wal_sender_timeout_ms;
    if !ctx.online() || t == 0 || t >= 10_000 {
        return vec![];
    }
    vec![Finding::new(
        Severity::Warning,
        "wal-sender-timeout",
        Some(Side::Source),
        format!("wal_sender_timeout is {t} ms; below 10000 ms a busy apply can be disconnected"),
    )
    .object("setting wal_sender_timeout")
    .fix(if is_rds(ctx.source) {
        parameter_group_fix(ctx.source, &[("wal_sender_timeout", "60000")], false)
    } else {
        "ALTER SYSTEM SET wal_sender_timeout = '60s'; SELECT pg_reload_conf();".to_string()
    })]
}

/// A nonzero idle_in_transaction_session_timeout can end the snapshot the copy relies on.
pub fn idle_in_transaction_timeout(ctx: &Context) -> Vec<Finding> {
    let t = ctx.source.settings.idle_in_transaction_session_timeout_ms;
    if !ctx.online() || t == 0 {
        return vec![];
    }
    vec![Finding::new(
        Severity::Warning,
        "idle-in-transaction-timeout",
        Some(Side::Source),
        format!("idle_in_transaction_session_timeout is {t} ms; the transaction that holds the exported snapshot can be ended by it"),
    )
    .object("setting idle_in_transaction_session_timeout")
    .fix(format!(
        "ALTER ROLE {} SET idle_in_transaction_session_timeout = 0;",
        crate::pg::quote::ident(&ctx.source.server.current_user)
    ))]
}

/// A capped max_slot_wal_keep_size can invalidate the slot during a long copy.
pub fn max_slot_wal_keep_size(ctx: &Context) -> Vec<Finding> {
    match ctx.source.settings.max_slot_wal_keep_size_mb {
        Some(mb) if ctx.online() && mb >= 0 => vec![Finding::new(
            Severity::Warning,
            "max-slot-wal-keep-size",
            Some(Side::Source),
            format!("max_slot_wal_keep_size is {mb} MB; if the copy takes longer than that much WAL, the slot is invalidated and the migration must start over"),
        )
        .object("setting max_slot_wal_keep_size")
        .fix(if is_rds(ctx.source) {
            format!(
                "{}  (or a size larger than the WAL written during the copy)",
                parameter_group_fix(ctx.source, &[("max_slot_wal_keep_size", "-1")], false)
            )
        } else {
            "ALTER SYSTEM SET max_slot_wal_keep_size = -1; SELECT pg_reload_conf();  -- or a size larger than the WAL written during the copy".to_string()
        })],
        _ => vec![],
    }
}

/// The source role must read every selected table, and replicate for online strategies.
pub fn source_rights(ctx: &Context) -> Vec<Finding> {
    let s = ctx.source;
    let user = crate::pg::quote::ident(&s.server.current_user);
    let mut out = vec![];
    if ctx.online() && !has_replication_right(s) {
        let fix = if is_rds(s) {
            format!("as the master user: GRANT rds_replication TO {user};")
        } else {
            format!("as a superuser: ALTER ROLE {user} WITH REPLICATION;")
        };
        out.push(
            Finding::new(
                Severity::Blocker,
                "source-replication-right",
                Some(Side::Source),
                format!(
                    "role {} has no REPLICATION right; logical decoding needs it",
                    s.server.current_user
                ),
            )
            .object(format!("role {}", s.server.current_user))
            .fix(fix),
        );
    }
    if s.rights.superuser {
        return out;
    }
    // USAGE on each schema that holds selected tables: without it nothing in it can be read.
    let mut schemas: Vec<&str> = planner::selected_tables(ctx.plan, s)
        .map(|t| t.schema.as_str())
        .collect();
    schemas.sort();
    schemas.dedup();
    for sc in schemas
        .iter()
        .filter_map(|n| s.schema(n))
        .filter(|sc| !sc.usage)
    {
        out.push(
            Finding::new(
                Severity::Blocker,
                "source-schema-usage",
                Some(Side::Source),
                format!(
                    "role {} has no USAGE on schema {} of the source, so it can read none of the tables in it",
                    s.server.current_user, sc.name
                ),
            )
            .object(format!("schema {}", sc.name))
            .fix(format!(
                "as {} (the schema's owner){}: GRANT USAGE ON SCHEMA {} TO {user};",
                crate::pg::quote::ident(&sc.owner),
                if is_rds(s) { "" } else { " or a superuser" },
                crate::pg::quote::ident(&sc.name)
            )),
        );
    }
    let unreadable: Vec<&crate::inspect::Table> = planner::selected_tables(ctx.plan, s)
        .filter(|t| !t.has_select)
        .collect();
    if !unreadable.is_empty() {
        let names: Vec<String> = unreadable
            .iter()
            .map(|t| format!("{}.{}", t.schema, t.name))
            .collect();
        let mut owners: Vec<String> = unreadable
            .iter()
            .map(|t| crate::pg::quote::ident(&t.owner))
            .collect();
        owners.sort();
        owners.dedup();
        let mut in_schemas: Vec<&str> = unreadable.iter().map(|t| t.schema.as_str()).collect();
        in_schemas.sort();
        in_schemas.dedup();
        let grants: Vec<String> = in_schemas
            .iter()
            .map(|sc| {
                format!(
                    "GRANT SELECT ON ALL TABLES IN SCHEMA {} TO {user};",
                    crate::pg::quote::ident(sc)
                )
            })
            .collect();
        let read_all = if s.server.version_num >= 140_000 {
            format!(
                "  -- or, as {}: GRANT pg_read_all_data TO {user};",
                admin(s)
            )
        } else {
            String::new()
        };
        out.push(
            Finding::new(
                Severity::Blocker,
                "source-select",
                Some(Side::Source),
                format!(
                    "role {} cannot SELECT {} selected table(s): {}",
                    s.server.current_user,
                    unreadable.len(),
                    list(&names)
                ),
            )
            .object(list(&names))
            .fix(format!(
                "as the tables' owner ({}){}: {}{read_all}",
                owners.join(", "),
                if is_rds(s) { "" } else { " or a superuser" },
                grants.join(" ")
            )),
        );
    }
    out
}

/// The target role must be able to create schemas and objects in the database.
pub fn target_rights(ctx: &Context) -> Vec<Finding> {
    let t = ctx.target;
    if t.rights.create_on_database || t.rights.superuser {
        return vec![];
    }
    vec![Finding::new(
        Severity::Blocker,
        "target-create",
        Some(Side::Target),
        format!(
            "role {} has no CREATE right on database {}",
            t.server.current_user, t.server.database
        ),
    )
    .object(format!("database {}", t.server.database))
    .fix(format!(
        "{}: GRANT CREATE ON DATABASE {} TO {};",
        if is_rds(t) {
            format!(
                "as the master user (or the database owner, {})",
                t.rights.database_owner
            )
        } else {
            format!(
                "as the database owner ({}) or a superuser",
                t.rights.database_owner
            )
        },
        crate::pg::quote::ident(&t.server.database),
        crate::pg::quote::ident(&t.server.current_user)
    ))]
}

/// Tables whose row-level security policies would hide rows from the source role: the
/// copy, verify and the cutover checks run with `row_security = off`, so reading such a table
/// fails instead of returning fewer rows. A role sees every row when it is a superuser or
/// has BYPASSRLS, or when it owns the table and the table does not FORCE row level security.
pub fn row_security(ctx: &Context) -> Vec<Finding> {
    let s = ctx.source;
    let r = &s.rights;
    if r.superuser || r.bypass_rls {
        return vec![];
    }
    let mut out = vec![];
    for t in planner::selected_tables(ctx.plan, s).filter(|t| t.row_security) {
        if t.owned && !t.force_row_security {
            continue;
        }
        let user = crate::pg::quote::ident(&s.server.current_user);
        let table = t.qualified();
        // The master user cannot give BYPASSRLS on RDS/Aurora: there the fix is the owner.
        let bypass = if is_rds(s) {
            String::new()
        } else {
            format!("as {}: ALTER ROLE {user} BYPASSRLS;  -- or, ", admin(s))
        };
        let (why, fix) = if t.force_row_security {
            (
                format!("has FORCE ROW LEVEL SECURITY, so its policies filter even its owner ({})", t.owner),
                format!(
                    "{bypass}if the policies may be lifted for the owner: ALTER TABLE {table} NO FORCE ROW LEVEL SECURITY; and migrate as its owner"
                ),
            )
        } else {
            (
                format!("has row-level security enabled and role {} is neither its owner ({}), a superuser, nor BYPASSRLS", s.server.current_user, t.owner),
                format!(
                    "{bypass}as {} or {}: ALTER TABLE {table} OWNER TO {user}; or migrate as {}",
                    crate::pg::quote::ident(&t.owner),
                    admin(s),
                    crate::pg::quote::ident(&t.owner),
                ),
            )
        };
        out.push(
            Finding::new(
                Severity::Blocker,
                "row-security",
                Some(Side::Source),
                format!(
                    "table {} {why}: its policies would hide rows from pgmove, which reads with row_security = off and so would fail on it rather than copy or compare part of it",
                    t.display_name()
                ),
            )
            .object(t.display_name())
            .fix(fix),
        );
    }
    out
}

/// Tables with FORCE ROW LEVEL SECURITY keep it on the target, where their policies filter
/// even their owner. pgmove's sessions run with `row_security = off`, so a target role that is
/// neither a superuser nor BYPASSRLS is refused (an error, never fewer rows) when change
/// capture applies a change to such a table or verify reads it, once the restore has enabled
/// the policies (after the data: the load itself goes through). dump-restore with
/// `cutover.verify: none` reads nothing after the restore.
pub fn target_row_security(ctx: &Context) -> Vec<Finding> {
    let t = ctx.target;
    if t.rights.superuser || t.rights.bypass_rls {
        return vec![];
    }
    // Offline and unverified, nothing reads or changes the tables after the restore.
    if !ctx.online() && ctx.plan.cutover.verify == crate::plan::VerifyLevel::None {
        return vec![];
    }
    let forced: Vec<&crate::inspect::Table> = planner::selected_tables(ctx.plan, ctx.source)
        .filter(|x| x.row_security && x.force_row_security)
        .collect();
    if forced.is_empty() {
        return vec![];
    }
    let alter = |force: &str| {
        let sql: Vec<String> = forced
            .iter()
            .map(|x| format!("ALTER TABLE {} {force} ROW LEVEL SECURITY;", x.qualified()))
            .collect();
        sql.join(" ")
    };
    let lift = format!(
        "for the migration, on the source: {}  and after cutover, on the target: {}",
        alter("NO FORCE"),
        alter("FORCE")
    );
    let user = crate::pg::quote::ident(&t.server.current_user);
    let fix = if is_rds(t) {
        // The master user cannot give BYPASSRLS on RDS/Aurora.
        lift
    } else {
        format!("as a superuser on the target: ALTER ROLE {user} BYPASSRLS;  -- or, {lift}")
    };
    let forced: Vec<String> = forced.iter().map(|x| x.display_name()).collect();
    vec![Finding::new(
        Severity::Blocker,
        "target-row-security",
        Some(Side::Target),
        format!(
            "{} table(s) with FORCE ROW LEVEL SECURITY keep it on the target, where the policies filter even the owner: role {} (neither a superuser nor BYPASSRLS) would be refused applying changes to them and verifying them: {}",
            forced.len(),
            t.server.current_user,
            list(&forced)
        ),
    )
    .object(list(&forced))
    .fix(fix)]
}

/// copy-cdc publishes the selected tables with `CREATE PUBLICATION ... FOR TABLE`, which
/// needs CREATE on the source database and ownership of every table listed.
pub fn publication_ownership(ctx: &Context) -> Vec<Finding> {
    let s = ctx.source;
    if ctx.strategy != Some(Strategy::CopyCdc) || s.rights.superuser {
        return vec![];
    }
    let user = crate::pg::quote::ident(&s.server.current_user);
    let mut out = vec![];
    if !s.rights.create_on_database {
        out.push(
            Finding::new(
                Severity::Blocker,
                "publication-create",
                Some(Side::Source),
                format!(
                    "role {} has no CREATE right on the source database {}: CREATE PUBLICATION needs it",
                    s.server.current_user, s.server.database
                ),
            )
            .object(format!("database {}", s.server.database))
            .fix(format!(
                "as the database owner ({}) or {}: GRANT CREATE ON DATABASE {} TO {user};",
                s.rights.database_owner,
                admin(s),
                crate::pg::quote::ident(&s.server.database)
            )),
        );
    }
    for t in planner::selected_tables(ctx.plan, s).filter(|t| !t.owned) {
        out.push(
            Finding::new(
                Severity::Blocker,
                "publication-ownership",
                Some(Side::Source),
                format!(
                    "table {} is owned by {}, not by role {}: CREATE PUBLICATION ... FOR TABLE needs the table's owner",
                    t.display_name(),
                    t.owner,
                    s.server.current_user
                ),
            )
            .object(t.display_name())
            .fix(format!(
                "as {} or {}: ALTER TABLE {} OWNER TO {user};  -- or run pgmove as {} on the source",
                crate::pg::quote::ident(&t.owner),
                admin(s),
                t.qualified(),
                crate::pg::quote::ident(&t.owner),
            )),
        );
    }
    out
}

/// copy-cdc captures DDL (cdc.ddl replicate or refuse) with event triggers on the source,
/// which only a superuser (RDS/Aurora: a member of rds_superuser) may create; otherwise the
/// master user installs them once (`pgmove setup-sql`). The check is
/// [`crate::cdc::ddl::setup::preflight`]; here without reading the source's catalogs (`plan`
/// and `apply` replace its finding with the one from what the source holds).
pub fn ddl_event_triggers(ctx: &Context) -> Vec<Finding> {
    if ctx.strategy != Some(Strategy::CopyCdc) {
        return vec![];
    }
    crate::cdc::ddl::setup::preflight(ctx.plan, ctx.source, None)
}

/// `cdc.ddl` under pglogical (see `cdc::ddl::guard`): pglogical replays schema changes only
/// as SQL text sent through `pglogical.replicate_ddl_command`, and pgmove does not queue the
/// ones it sees (a trigger sees only the client's whole query string, which may hold other
/// statements); with `replicate` a guard on the source refuses those that bypass pglogical
/// (a warning says so, with the call), with `refuse` all of them. The guard's event triggers
/// take a superuser (RDS/Aurora: rds_superuser).
pub fn pglogical_ddl(ctx: &Context) -> Vec<Finding> {
    use crate::plan::Ddl;
    if ctx.strategy != Some(Strategy::Pglogical) || ctx.plan.cdc.ddl == Ddl::Ignore {
        return vec![];
    }
    let s = ctx.source;
    let mut out = Vec::new();
    if ctx.plan.cdc.ddl == Ddl::Replicate {
        let sets = ctx.plan.pglogical_names();
        out.push(
            Finding::new(
                Severity::Warning,
                "pglogical-ddl",
                Some(Side::Source),
                "cdc.ddl is replicate, and pglogical replicates a schema change only when it is sent through pglogical.replicate_ddl_command: pgmove does not queue the schema changes it sees on the source (a trigger sees only the client's whole query string, so a change sent together with other statements, or run inside a function or DO block, would run those again on the target, rows twice), so during the move it refuses, on the source, a schema change to a moved table that does not go through pglogical".to_string(),
            )
            .fix(format!(
                "send schema changes to moved tables through pglogical, with schema-qualified names: SELECT pglogical.replicate_ddl_command('ALTER TABLE public.t ADD COLUMN c int', ARRAY[{}, {}]); or set cdc.ddl: refuse (none until the cutover) or ignore (they stay on the source)",
                crate::pg::quote::literal(&sets.replication_set),
                crate::pg::quote::literal(&sets.insert_set)
            )),
        );
    }
    // Event triggers, unless the master user installed them (`pgmove setup-sql`): the check is
    // `cdc::ddl::setup::guard_preflight`; `plan` and `apply` replace its blocker with the one
    // from what the source holds.
    out.extend(crate::cdc::ddl::setup::guard_preflight(ctx.plan, s, None));
    out
}

/// pg_dump and the cutover's sequence sync read each sequence with SELECT.
pub fn source_sequences(ctx: &Context) -> Vec<Finding> {
    let s = ctx.source;
    if s.rights.superuser {
        return vec![];
    }
    let unreadable: Vec<String> = s
        .sequences
        .iter()
        .filter(|q| q.extension.is_none() && !q.has_select)
        .filter(|q| ctx.plan.objects.includes_schema(&q.schema) && q.schema != crate::state::SCHEMA)
        .filter(|q| match &q.owned_by {
            Some(c) => ctx.plan.objects.includes(&c.table.schema, &c.table.name),
            None => true,
        })
        .map(|q| format!("{}.{}", q.schema, q.name))
        .collect();
    if unreadable.is_empty() {
        return vec![];
    }
    let user = crate::pg::quote::ident(&s.server.current_user);
    let mut schemas: Vec<&str> = unreadable
        .iter()
        .filter_map(|n| n.split_once('.').map(|(s, _)| s))
        .collect();
    schemas.dedup();
    let grants: Vec<String> = schemas
        .iter()
        .map(|sc| {
            format!(
                "GRANT SELECT ON ALL SEQUENCES IN SCHEMA {} TO {user};",
                crate::pg::quote::ident(sc)
            )
        })
        .collect();
    vec![Finding::new(
        Severity::Blocker,
        "source-sequence-select",
        Some(Side::Source),
        format!(
            "role {} cannot SELECT {} sequence(s): {}; pg_dump and the sequence sync at cutover read them",
            s.server.current_user,
            unreadable.len(),
            list(&unreadable)
        ),
    )
    .object(list(&unreadable))
    .fix(format!(
        "as the sequences' owner or {}: {}",
        admin(s),
        grants.join(" ")
    ))]
}

/// The target role must be able to create objects in every schema that already exists on the
/// target (new schemas need CREATE on the database: `target-create`).
pub fn target_schemas(ctx: &Context) -> Vec<Finding> {
    let t = ctx.target;
    if t.rights.superuser {
        return vec![];
    }
    let mut names: Vec<&str> = planner::selected_tables(ctx.plan, ctx.source)
        .map(|x| x.schema.as_str())
        .collect();
    names.sort();
    names.dedup();
    let user = crate::pg::quote::ident(&t.server.current_user);
    names
        .into_iter()
        .filter_map(|n| t.schema(n))
        .filter(|sc| !sc.create)
        .map(|sc| {
            let owner = if sc.owner == "pg_database_owner" {
                format!("the database owner ({})", t.rights.database_owner)
            } else {
                sc.owner.clone()
            };
            Finding::new(
                Severity::Blocker,
                "target-schema-create",
                Some(Side::Target),
                format!(
                    "role {} has no CREATE right on schema {} of the target, where the tables must be created",
                    t.server.current_user, sc.name
                ),
            )
            .object(format!("schema {}", sc.name))
            .fix(format!(
                "as {owner} or {}: GRANT CREATE ON SCHEMA {} TO {user};",
                admin(t),
                crate::pg::quote::ident(&sc.name)
            ))
        })
        .collect()
}

/// copy-cdc applies changes with `session_replication_role = replica` so the target's
/// triggers and foreign keys do not fire a second time; without the right apply refuses.
pub fn replication_role(ctx: &Context) -> Vec<Finding> {
    let t = ctx.target;
    if ctx.strategy != Some(Strategy::CopyCdc)
        || t.rights.superuser
        || t.rights.set_replication_role
    {
        return vec![];
    }
    let user = crate::pg::quote::ident(&t.server.current_user);
    let fix = if is_rds(t) {
        format!("as the master user: GRANT rds_superuser TO {user};  (on RDS/Aurora only members of rds_superuser may set session_replication_role)")
    } else if t.server.version_num >= 150_000 {
        format!("as a superuser: GRANT SET ON PARAMETER session_replication_role TO {user};")
    } else {
        "run pgmove on the target as a superuser (before PostgreSQL 15 only a superuser may set session_replication_role)".to_string()
    };
    vec![Finding::new(
        Severity::Blocker,
        "target-replication-role",
        Some(Side::Target),
        format!(
            "role {} may not SET session_replication_role = replica on the target: replicated changes would fire the target's triggers and foreign keys again (duplicate rows, failed inserts)",
            t.server.current_user
        ),
    )
    .object("setting session_replication_role")
    .fix(fix)]
}

/// Connections pgmove opens on one server at most: `jobs` (or `index_jobs`) workers plus its
/// control sessions (state and progress, the snapshot or the change apply). Replication
/// connections count against max_wal_senders, not here.
pub fn connections_needed(plan: &Plan) -> i64 {
    i64::from(plan.jobs.max(plan.index_jobs).max(1)) + 2
}

/// `jobs` must fit the connections the servers have free for the role.
pub fn connections(ctx: &Context) -> Vec<Finding> {
    let need = connections_needed(ctx.plan);
    let mut out = vec![];
    for inv in [ctx.source, ctx.target] {
        let r = &inv.rights;
        // The session that took the inventory is counted but is pgmove's own.
        let mut limits: Vec<(i64, String, String)> = vec![];
        let reserved = if r.superuser {
            0
        } else {
            r.superuser_reserved_connections
        };
        let others = (r.client_connections - 1).max(0);
        limits.push((
            inv.settings.max_connections - reserved - others,
            format!(
                "max_connections is {}, {} are reserved for superusers and {} are in use",
                inv.settings.max_connections, reserved, others
            ),
            restart_fix(
                inv,
                "max_connections",
                &(inv.settings.max_connections + need).to_string(),
            ),
        ));
        if r.role_connection_limit >= 0 && !r.superuser {
            limits.push((
                r.role_connection_limit - (r.role_connections - 1).max(0),
                format!(
                    "role {} may open {} connection(s) (CONNECTION LIMIT) and has {} open",
                    inv.server.current_user,
                    r.role_connection_limit,
                    (r.role_connections - 1).max(0)
                ),
                format!(
                    "as {}: ALTER ROLE {} CONNECTION LIMIT {};",
                    admin(inv),
                    crate::pg::quote::ident(&inv.server.current_user),
                    r.role_connections - 1 + need
                ),
            ));
        }
        if r.database_connection_limit >= 0 && !r.superuser {
            limits.push((
                r.database_connection_limit - (r.database_connections - 1).max(0),
                format!(
                    "database {} accepts {} connection(s) (CONNECTION LIMIT) and has {} open",
                    inv.server.database,
                    r.database_connection_limit,
                    (r.database_connections - 1).max(0)
                ),
                format!(
                    "as the database owner or {}: ALTER DATABASE {} CONNECTION LIMIT {};",
                    admin(inv),
                    crate::pg::quote::ident(&inv.server.database),
                    r.database_connections - 1 + need
                ),
            ));
        }
        if let Some((free, why, fix)) = limits.into_iter().min_by_key(|l| l.0) {
            if free < need {
                out.push(
                    Finding::new(
                        Severity::Blocker,
                        "connections",
                        Some(inv.side),
                        format!(
                            "pgmove needs up to {need} connections on the {} (jobs: {}, index_jobs: {}, plus 2 of its own) but only {} are free: {why}",
                            inv.side,
                            ctx.plan.jobs,
                            ctx.plan.index_jobs,
                            free.max(0)
                        ),
                    )
                    .object(format!("database {}", inv.server.database))
                    .fix(format!(
                        "lower jobs (and index_jobs) to {} or less, or {fix}",
                        (free - 2).max(1)
                    )),
                );
            }
        }
    }
    out
}

/// The cutover fence (cutover.fence: read-only) needs the source database's owner (ALTER
/// DATABASE ... SET) and pg_signal_backend: the same check `cutover --dry-run` makes.
pub fn fence_rights(ctx: &Context) -> Vec<Finding> {
    if !ctx.online() {
        return vec![];
    }
    let s = ctx.source;
    crate::cutover::dryrun::fence_findings(&crate::cutover::dryrun::FenceCheck {
        fence: ctx.plan.cutover.fence.to_string(),
        role: s.server.current_user.clone(),
        database: s.server.database.clone(),
        database_owner: s.rights.database_owner.clone(),
        superuser: s.rights.superuser,
        owns_database: s.rights.owns_database,
        signal_backend: s.rights.signal_backend,
        // Who is connected at cutover is for `cutover --dry-run` to say.
        superuser_sessions: vec![],
    })
}

/// A replication connection must be allowed by pg_hba.conf (tried, not guessed).
pub fn replication_connection(ctx: &Context) -> Vec<Finding> {
    // Without the REPLICATION right the walsender refuses the role whatever pg_hba.conf says:
    // `source-replication-right` names that fix, and pg_hba advice would send the user astray.
    if !has_replication_right(ctx.source) {
        return vec![];
    }
    match (&ctx.replication_probe, ctx.online()) {
        (Some(Err(e)), true) if is_rds(ctx.source) => vec![Finding::new(
            Severity::Blocker,
            "replication-connection",
            Some(Side::Source),
            format!("a replication connection to the source was refused: {e}"),
        )
        .fix(format!(
            "RDS/Aurora has no pg_hba.conf to edit: check that rds.logical_replication = 1 in the source's {} (then reboot), that the source's security group admits pgmove's address, that source.dsn names the instance or cluster endpoint (not an RDS Proxy or reader endpoint), and that the role can log in with this password",
            parameter_group(ctx.source, "rds.logical_replication")
        ))],
        (Some(Err(e)), true) => vec![Finding::new(
            Severity::Blocker,
            "replication-connection",
            Some(Side::Source),
            format!("a replication connection to the source was refused: {e}"),
        )
        .fix(format!(
            "add to the source's pg_hba.conf: host {} {} <pgmove-host>/32 scram-sha-256  (then SELECT pg_reload_conf();)",
            ctx.source.server.database, ctx.source.server.current_user
        ))],
        _ => vec![],
    }
}

/// Unlogged tables with change capture: the load copies them (UNLOGGED on the target too), but
/// their changes are not in the WAL, so a publication refuses them and nothing later arrives.
pub fn unlogged_tables(ctx: &Context) -> Vec<Finding> {
    if !ctx.online() {
        return vec![];
    }
    let unlogged: Vec<String> = planner::selected_tables(ctx.plan, ctx.source)
        .filter(|t| t.unlogged)
        .map(|t| format!("{}.{}", t.schema, t.name))
        .collect();
    if unlogged.is_empty() {
        return vec![];
    }
    if ctx.strategy == Some(Strategy::Pglogical) {
        return vec![Finding::new(
            Severity::Warning,
            "unlogged-tables",
            Some(Side::Source),
            format!(
                "{} unlogged table(s): {}; pglogical refuses unlogged tables in a replication set, so they are in neither {} nor {}: pglogical neither synchronizes nor replicates their rows",
                unlogged.len(),
                list(&unlogged),
                ctx.plan.replication_set(),
                ctx.plan.insert_set()
            ),
        )
        .object(list(&unlogged))
        .fix("make them logged on the source (ALTER TABLE <table> SET LOGGED;) to move their rows, or leave them out with objects.exclude")];
    }
    vec![Finding::new(
        Severity::Warning,
        "unlogged-tables",
        Some(Side::Source),
        format!(
            "{} unlogged table(s): {}; the load copies them (they stay UNLOGGED on the target), but their later changes are not replicated (an unlogged table is not written to the WAL and cannot be published); add them to objects.exclude to leave them out, or make them logged on the source: ALTER TABLE <table> SET LOGGED",
            unlogged.len(),
            list(&unlogged)
        ),
    )
    .object(list(&unlogged))]
}

/// Tables without a primary key or replica identity: what CDC will do with them.
pub fn tables_without_key(ctx: &Context) -> Vec<Finding> {
    let keyless: Vec<String> = planner::selected_tables(ctx.plan, ctx.source)
        .filter(|t| t.kind != TableKind::PartitionedParent && !t.has_replica_identity())
        // Unlogged tables are never published (see unlogged_tables).
        .filter(|t| !(ctx.online() && t.unlogged))
        .map(|t| format!("{}.{}", t.schema, t.name))
        .collect();
    if keyless.is_empty() {
        return vec![];
    }
    let what = format!(
        "{} table(s) have no primary key or replica identity: {}",
        keyless.len(),
        list(&keyless)
    );
    if !ctx.online() {
        return vec![Finding::new(
            Severity::Info,
            "tables-without-key",
            Some(Side::Source),
            format!("{what}; the offline copy moves them as they are"),
        )
        .object(list(&keyless))];
    }
    if ctx.strategy == Some(Strategy::Pglogical) {
        return vec![pglogical::tables_without_key(ctx, what, list(&keyless))];
    }
    let choices = "set cdc.tables_without_key to one of: replica-identity-full (pgmove sets REPLICA IDENTITY FULL on the source: updates and deletes replicate, each matching all columns), insert-only (only inserts replicate), exclude (leave them out), or add a primary key: ALTER TABLE <table> ADD PRIMARY KEY (...)";
    let (severity, message) = match ctx.plan.cdc.tables_without_key {
        TablesWithoutKey::Refuse => (
            Severity::Blocker,
            format!("{what}; their updates and deletes cannot be replicated and cdc.tables_without_key is refuse"),
        ),
        TablesWithoutKey::ReplicaIdentityFull => (
            Severity::Warning,
            format!("{what}; pgmove will run ALTER TABLE ... REPLICA IDENTITY FULL on the source (more WAL per update)"),
        ),
        TablesWithoutKey::InsertOnly => (
            Severity::Warning,
            format!("{what}; only their inserts (and truncates) will be replicated, through a second publication that publishes nothing else, so the source keeps accepting their updates and deletes (cdc.tables_without_key: insert-only)"),
        ),
        TablesWithoutKey::Exclude => (
            Severity::Warning,
            format!("{what}; the load copies them once, their later changes are not replicated (cdc.tables_without_key: exclude); add them to objects.exclude to leave them out entirely"),
        ),
    };
    let f = Finding::new(severity, "tables-without-key", Some(Side::Source), message)
        .object(list(&keyless));
    vec![if severity == Severity::Blocker {
        f.fix(choices)
    } else {
        f
    }]
}

/// Partitioned tables: how they are handled.
pub fn partitioned_tables(ctx: &Context) -> Vec<Finding> {
    let roots: Vec<String> = planner::selected_tables(ctx.plan, ctx.source)
        .filter(|t| t.kind == TableKind::PartitionedParent && t.parent.is_none())
        .map(|t| format!("{}.{}", t.schema, t.name))
        .collect();
    if roots.is_empty() {
        return vec![];
    }
    let p = &ctx.source.partitioning;
    vec![Finding::new(
        Severity::Info,
        "partitioned-tables",
        Some(Side::Source),
        format!(
            "{} partitioned table(s) ({} leaf partition(s), up to {} level(s)): created as on the source, data loaded into the leaves only",
            roots.len(),
            p.leaves,
            p.max_depth
        ),
    )
    .object(list(&roots))]
}

/// copy-cdc publishes partitioned tables through their roots from PostgreSQL 13; before, a
/// publication refuses a partitioned table, so their leaves are published individually
/// (`crate::versions::partition_publishing`): said as information. A leaf created during
/// change capture joins the publication through the DDL trigger only: with `cdc.ddl: ignore`
/// its rows would not be replicated, which is a warning.
pub fn partitioned_publication(ctx: &Context) -> Vec<Finding> {
    if ctx.strategy != Some(Strategy::CopyCdc) {
        return vec![];
    }
    let roots: Vec<String> = planner::selected_tables(ctx.plan, ctx.source)
        .filter(|t| t.kind == TableKind::PartitionedParent && t.parent.is_none())
        .map(|t| format!("{}.{}", t.schema, t.name))
        .collect();
    let Some(note) = crate::versions::leaves_published_note(ctx.source.server.version_num, &roots)
    else {
        return vec![];
    };
    let mut out = vec![Finding::new(
        Severity::Info,
        "partitioned-publication",
        Some(Side::Source),
        note,
    )
    .object(list(&roots))];
    if ctx.plan.cdc.ddl == crate::plan::Ddl::Ignore {
        out.push(
            Finding::new(
                Severity::Warning,
                "partitioned-publication",
                Some(Side::Source),
                format!(
                    "with cdc.ddl: ignore, a partition created or attached on the PostgreSQL {} source during change capture is not added to the publication: its rows are not replicated",
                    crate::versions::major_label(ctx.source.server.version_num)
                ),
            )
            .object(list(&roots))
            .fix("set cdc.ddl: replicate (the DDL trigger adds each new leaf to the publication in its creating transaction), or create the partitions before apply"),
        );
    }
    out
}

/// copy-cdc's DDL trigger (`cdc.ddl` replicate or refuse) reaches the applier through logical
/// decoding messages, which pgoutput sends from PostgreSQL 14 only
/// (`crate::versions::logical_messages`): on an older source DDL during change capture is not
/// replayed (nor refused) on the target, which is a warning with what to do.
pub fn ddl_messages(ctx: &Context) -> Vec<Finding> {
    let source = ctx.source.server.version_num;
    if ctx.strategy != Some(Strategy::CopyCdc)
        || ctx.plan.cdc.ddl == crate::plan::Ddl::Ignore
        || crate::versions::logical_messages(source)
    {
        return vec![];
    }
    vec![Finding::new(
        Severity::Warning,
        "ddl-not-streamed",
        Some(Side::Source),
        format!(
            "the source is PostgreSQL {}: pgoutput sends logical decoding messages (how the DDL trigger's statements reach the target) from PostgreSQL 14 only, so DDL run on the source during change capture is not replayed on the target (cdc.ddl {} has no effect there); the trigger still adds new tables and partitions to the publication in their creating transaction, so their rows are streamed",
            crate::versions::major_label(source),
            ctx.plan.cdc.ddl
        ),
    )
    .fix("run each DDL statement on the target too, before the source writes rows that need it (create a new partition or table on the target first, then on the source); a change for a table the target lacks stops apply, nothing is skipped")]
}

/// The Debian package that provides an extension, for fixes.
pub fn extension_package(name: &str, major: i32) -> String {
    match name {
        n if n.starts_with("postgis") || n == "address_standardizer" => {
            format!("postgresql-{major}-postgis-3")
        }
        "pglogical" => format!("postgresql-{major}-pglogical"),
        "vector" => format!("postgresql-{major}-pgvector"),
        "timescaledb" => "timescaledb-2-postgresql-<major>".to_string(),
        _ => "postgresql-contrib".to_string(),
    }
}

/// Every extension of the source must be installed or available on the target; on RDS and
/// Aurora also in the target's `rds.extensions` allowlist. The target role must be able to
/// create those it lacks: a superuser, on RDS/Aurora a member of rds_superuser, or anyone with
/// CREATE on the database for a trusted extension (PostgreSQL 13+).
pub fn extensions(ctx: &Context) -> Vec<Finding> {
    let t = ctx.target;
    let mut out = vec![];
    let major = t.server.version_num / 10000;
    for e in &ctx.source.extensions {
        if e.name == "plpgsql" || e.name == "pglogical" {
            continue;
        }
        if t.extension(&e.name).is_some() {
            continue;
        }
        let allowlist = t.settings.rds_extensions.as_ref().filter(|_| is_rds(t));
        if t.available_extension(&e.name).is_none() {
            let fix = if is_rds(t) {
                format!("extension {} is not offered by this RDS/Aurora engine version: upgrade the target's engine to one that offers it, or drop it on the source (DROP EXTENSION {};) once nothing uses it, or leave the objects that use it out (objects.exclude)", e.name, crate::pg::quote::ident(&e.name))
            } else {
                format!(
                    "apt-get install {} on the target host",
                    extension_package(&e.name, major)
                )
            };
            out.push(
                Finding::new(
                    Severity::Blocker,
                    "extension-missing",
                    Some(Side::Target),
                    format!(
                        "extension {} {} is used on the source but not available on the target",
                        e.name, e.version
                    ),
                )
                .object(format!("extension {}", e.name))
                .fix(fix),
            );
            continue;
        }
        if let Some(allowed) = allowlist {
            if !allowed.iter().any(|a| a == &e.name) {
                out.push(
                    Finding::new(
                        Severity::Blocker,
                        "extension-not-allowed",
                        Some(Side::Target),
                        format!(
                            "extension {} {} is used on the source and is not in the target's rds.extensions (the extensions {} allows: {}), so nobody can create it there",
                            e.name,
                            e.version,
                            t.platform.label(),
                            list(allowed)
                        ),
                    )
                    .object(format!("extension {}", e.name))
                    .fix(format!(
                        "ask AWS to support {} on the target's engine, or drop it on the source (DROP EXTENSION {};) once nothing uses it, or leave the objects that use it out of the move (objects.exclude) and drop it on the source",
                        e.name,
                        crate::pg::quote::ident(&e.name)
                    )),
                );
                continue;
            }
        }
        // rds.allowed_extensions narrows rds.extensions per instance (`*`: no narrowing).
        if let Some(allowed) = t
            .settings
            .rds_allowed_extensions
            .as_ref()
            .filter(|l| is_rds(t) && !l.iter().any(|x| x == "*"))
        {
            if !allowed.iter().any(|a| a == &e.name) {
                let mut list_with = allowed.clone();
                list_with.push(e.name.clone());
                out.push(
                    Finding::new(
                        Severity::Blocker,
                        "extension-not-allowed",
                        Some(Side::Target),
                        format!(
                            "extension {} {} is used on the source and the target's rds.allowed_extensions ({}) leaves it out, so nobody can create it there",
                            e.name,
                            e.version,
                            list(allowed)
                        ),
                    )
                    .object(format!("extension {}", e.name))
                    .fix(parameter_group_fix(
                        t,
                        &[("rds.allowed_extensions", &format!("\"{}\"", list_with.join(",")))],
                        false,
                    )),
                );
                continue;
            }
        }
        let r = &t.rights;
        let trusted = r.trusted_extensions.iter().any(|x| x == &e.name);
        if r.superuser || (is_rds(t) && r.rds_superuser) || trusted {
            continue;
        }
        let create = format!(
            "CREATE EXTENSION IF NOT EXISTS {} SCHEMA {};",
            crate::pg::quote::ident(&e.name),
            crate::pg::quote::ident(&e.schema)
        );
        let (who, fix) = if is_rds(t) {
            (
                "a member of rds_superuser",
                format!(
                    "as the master user, in the target database {}: {create}  (pgmove then finds it installed)  -- or, as the master user: GRANT rds_superuser TO {};",
                    t.server.database,
                    crate::pg::quote::ident(&t.server.current_user)
                ),
            )
        } else {
            (
                "a superuser",
                format!(
                    "as a superuser, in the target database {}: {create}  (pgmove then finds it installed)",
                    t.server.database
                ),
            )
        };
        out.push(
            Finding::new(
                Severity::Blocker,
                "extension-create",
                Some(Side::Target),
                format!(
                    "extension {} is not installed in the target database and role {} may not create it: it is not a trusted extension, so only {who} may",
                    e.name, t.server.current_user
                ),
            )
            .object(format!("extension {}", e.name))
            .fix(fix),
        );
    }
    out
}

/// pg_dump and pg_restore must be at least the source server's major version.
pub fn client_versions(ctx: &Context) -> Vec<Finding> {
    if !ctx.uses_dump() {
        return vec![];
    }
    let major = |v: i32| (v / 10000).max(0) as u32;
    let source_major = major(ctx.source.server.version_num);
    let mut out = vec![];
    for (r, package_major) in [
        (&ctx.pg_dump, source_major),
        (&ctx.pg_restore, source_major),
    ] {
        if let Err(e) = r {
            out.push(
                Finding::new(Severity::Blocker, "client-version", None, e.to_string()).fix(
                    format!(
                        "apt-get install {}, or set bin_dir in the plan",
                        crate::tools::package(package_major)
                    ),
                ),
            );
        }
    }
    out
}

/// The databases' encodings must match; collations should.
pub fn encoding(ctx: &Context) -> Vec<Finding> {
    let (s, t) = (&ctx.source.server, &ctx.target.server);
    let mut out = vec![];
    if s.encoding != t.encoding {
        out.push(
            Finding::new(
                Severity::Blocker,
                "encoding",
                Some(Side::Target),
                format!("the source database is {} and the target database is {}: text would be converted or refused", s.encoding, t.encoding),
            )
            .object(format!("database {}", t.database))
            .fix(format!("create the target database with the source's encoding: CREATE DATABASE {} ENCODING '{}' TEMPLATE template0;", crate::pg::quote::ident(&t.database), s.encoding)),
        );
    }
    if s.lc_collate != t.lc_collate {
        out.push(
            Finding::new(
                Severity::Warning,
                "collation",
                Some(Side::Target),
                format!("collation differs (source {}, target {}): text sorts and unique indexes on text may behave differently", s.lc_collate, t.lc_collate),
            )
            .object(format!("database {}", t.database)),
        );
    }
    out
}

/// The selected tables must not exist on the target yet, unless an earlier run is resuming.
pub fn target_not_empty(ctx: &Context) -> Vec<Finding> {
    let resuming = ctx.target.table(crate::state::SCHEMA, "runs").is_some();
    let clashes: Vec<String> = planner::selected_tables(ctx.plan, ctx.source)
        .filter(|t| ctx.target.table(&t.schema, &t.name).is_some())
        .map(|t| format!("{}.{}", t.schema, t.name))
        .collect();
    if clashes.is_empty() {
        return vec![];
    }
    if resuming {
        return vec![Finding::new(
            Severity::Info,
            "resume",
            Some(Side::Target),
            format!(
                "the target holds an earlier pgmove run ({} of the tables exist); apply resumes it",
                clashes.len()
            ),
        )];
    }
    vec![Finding::new(
        Severity::Blocker,
        "target-not-empty",
        Some(Side::Target),
        format!("{} selected table(s) already exist on the target: {}", clashes.len(), list(&clashes)),
    )
    .object(list(&clashes))
    .fix("migrate into an empty database (CREATE DATABASE ...), drop those tables on the target, or leave them out with objects.exclude")]
}

/// A schema named `pgmove` that pgmove did not create (no marker table, see
/// `state::MARKER_TABLE`). On the target pgmove keeps its state there: a blocker. On the
/// source it is a user schema, but it cannot arrive on the target under that name: a blocker
/// unless the plan leaves it out (`objects.exclude: ["pgmove.*"]`, or an `objects.schemas`
/// list without it), which the report then says.
pub fn pgmove_schema(ctx: &Context) -> Vec<Finding> {
    let schema = crate::state::SCHEMA;
    let marker = crate::state::MARKER_TABLE;
    let foreign =
        |inv: &Inventory| inv.schema(schema).is_some() && inv.table(schema, marker).is_none();
    let mut out = Vec::new();
    // A state schema of a pgmove version from before the marker: apply adopts it.
    let earlier =
        ctx.target.table(schema, "runs").is_some() && ctx.target.table(schema, "steps").is_some();
    if foreign(ctx.target) && !earlier {
        out.push(
            Finding::new(
                Severity::Blocker,
                "pgmove-schema",
                Some(Side::Target),
                format!("the target has a schema named {schema} that pgmove did not create (it has no table {schema}.{marker}); pgmove keeps its state in a schema of that name, and never writes into nor drops one it did not create"),
            )
            .object(schema)
            .fix(format!("rename it on the target: ALTER SCHEMA {schema} RENAME TO pgmove_data; (or migrate into another database)")),
        );
    }
    if foreign(ctx.source)
        && ctx.strategy == Some(Strategy::CopyCdc)
        && ctx.plan.cdc.ddl != crate::plan::Ddl::Ignore
    {
        out.push(
            Finding::new(
                Severity::Blocker,
                "pgmove-schema",
                Some(Side::Source),
                format!("DDL capture (cdc.ddl) keeps its trigger functions in a schema named {schema} on the source, and the source has one pgmove did not create (no table {schema}.{marker}): pgmove will not write into it"),
            )
            .object(schema)
            .fix(format!("rename it on the source (ALTER SCHEMA {schema} RENAME TO pgmove_data;), or set cdc.ddl: ignore and apply schema changes on the target yourself")),
        );
    }
    if foreign(ctx.source) {
        let tables = ctx
            .source
            .tables
            .iter()
            .filter(|t| t.schema == schema)
            .count();
        let listed_elsewhere = !ctx.plan.objects.schemas.is_empty();
        let excluded = ctx
            .plan
            .objects
            .exclude
            .iter()
            .any(|g| crate::plan::glob_match(g, &format!("{schema}.*")));
        if excluded || listed_elsewhere {
            let why = if excluded {
                "objects.exclude leaves it out"
            } else {
                "objects.schemas does not list it"
            };
            out.push(
                Finding::new(
                    Severity::Info,
                    "pgmove-schema",
                    Some(Side::Source),
                    format!("the source's own schema {schema} ({tables} table(s)) is excluded: {why}; it stays on the source and is not verified"),
                )
                .object(schema),
            );
        } else {
            out.push(
                Finding::new(
                    Severity::Blocker,
                    "pgmove-schema",
                    Some(Side::Source),
                    format!("the source has its own schema named {schema} ({tables} table(s)); pgmove keeps its state in a schema of that name on the target, so it cannot move it under that name"),
                )
                .object(schema)
                .fix(format!("rename it on the source (ALTER SCHEMA {schema} RENAME TO pgmove_data;) and in the applications that use it, or leave it on the source with objects.exclude: [\"{schema}.*\"]")),
            );
        }
    }
    out
}

/// Large objects: moved or left out.
pub fn large_objects(ctx: &Context) -> Vec<Finding> {
    let n = ctx.source.large_objects;
    if n == 0 {
        return vec![];
    }
    if ctx.plan.objects.large_objects {
        vec![Finding::new(
            Severity::Info,
            "large-objects",
            Some(Side::Source),
            format!(
                "{n} large object(s) will be copied{}",
                if ctx.online() {
                    "; logical decoding does not carry their later changes, so they are copied again at cutover"
                } else {
                    ""
                }
            ),
        )]
    } else {
        vec![Finding::new(
            Severity::Warning,
            "large-objects",
            Some(Side::Source),
            format!("{n} large object(s) will NOT be moved (objects.large_objects: false); columns of type oid that point at them will dangle"),
        )
        .fix("set objects.large_objects: true")]
    }
}

/// Long transactions on the source delay the snapshot and hold back cleanup.
pub fn long_transactions(ctx: &Context) -> Vec<Finding> {
    ctx.source
        .long_transactions
        .iter()
        .map(|t| {
            Finding::new(
                Severity::Warning,
                "long-transaction",
                Some(Side::Source),
                format!(
                    "backend {} ({}) has been in a transaction for {} s{}",
                    t.pid,
                    t.user.as_deref().unwrap_or("?"),
                    t.age_seconds,
                    if ctx.online() {
                        "; creating the replication slot waits for it to end"
                    } else {
                        ""
                    }
                ),
            )
            .object(format!("pid {}", t.pid))
            .fix(format!(
                "end it when safe: SELECT pg_terminate_backend({});",
                t.pid
            ))
        })
        .collect()
}

/// Inactive slots retain WAL and fill the source's disk.
pub fn inactive_slots(ctx: &Context) -> Vec<Finding> {
    ctx.source
        .inactive_slots_retaining_wal()
        .into_iter()
        .map(|s| {
            Finding::new(
                Severity::Warning,
                "inactive-slot",
                Some(Side::Source),
                format!(
                    "replication slot {} is inactive and retains {} of WAL",
                    s.name,
                    planner::bytes(s.retained_wal_bytes.unwrap_or(0) as i64)
                ),
            )
            .object(format!("slot {}", s.name))
            .fix(format!(
                "if unused: SELECT pg_drop_replication_slot({});",
                crate::pg::quote::literal(&s.name)
            ))
        })
        .collect()
}

/// owner: keep gives each object its source owner on the target (`ALTER ... OWNER TO`), which
/// needs the role to exist there and the target role to be a member of it.
/// Roles granted privileges on the source that the target lacks: those grants are left out
/// (reported by name by apply); everything else moves.
pub fn missing_grantees(ctx: &Context) -> Vec<Finding> {
    // roles: create makes them before the restore (`crate::roles`).
    if !ctx.uses_dump() || ctx.plan.roles == crate::plan::Roles::Create {
        return vec![];
    }
    let missing: Vec<String> = ctx
        .source
        .rights
        .grantees
        .iter()
        .filter(|g| !ctx.target.rights.roles.iter().any(|r| &r.name == *g))
        .cloned()
        .collect();
    if missing.is_empty() {
        return vec![];
    }
    let create: Vec<String> = missing
        .iter()
        .map(|g| format!("CREATE ROLE {};", crate::pg::quote::ident(g)))
        .collect();
    vec![Finding::new(
        Severity::Warning,
        "grantees-missing",
        Some(Side::Target),
        format!(
            "privileges granted to {} role(s) missing on the target will be left out: {} (roles: skip creates no roles; apply lists the grants it leaves out)",
            missing.len(),
            list(&missing)
        ),
    )
    .object(list(&missing))
    .fix(format!(
        "to keep them, create the roles on the target before apply (as {}, or a role with CREATEROLE): {}",
        admin(ctx.target),
        create.join(" ")
    ))]
}

pub fn owners(ctx: &Context) -> Vec<Finding> {
    if !matches!(ctx.plan.owner, crate::plan::Owner::Keep) {
        return vec![];
    }
    let t = ctx.target;
    let mut owners: Vec<String> = planner::selected_tables(ctx.plan, ctx.source)
        .map(|t| t.owner.clone())
        .filter(|o| o != &t.server.current_user)
        .collect();
    owners.sort();
    owners.dedup();
    if owners.is_empty() || t.rights.superuser {
        return vec![];
    }
    let user = crate::pg::quote::ident(&t.server.current_user);
    let mut out = vec![];
    for o in owners {
        let q = crate::pg::quote::ident(&o);
        match t.rights.roles.iter().find(|r| r.name == o) {
            // roles: create makes it (and the migrating role a member) before the restore.
            None if ctx.plan.roles == crate::plan::Roles::Create => {}
            None => out.push(
                Finding::new(
                    Severity::Blocker,
                    "owner-missing",
                    Some(Side::Target),
                    format!("owner: keep gives tables to role {o}, which does not exist on the target"),
                )
                .object(format!("role {o}"))
                .fix(format!(
                    "create it on the target first (as {}: CREATE ROLE {q};), set roles: create, or set owner: target-user",
                    admin(t)
                )),
            ),
            Some(r) if r.member => {}
            Some(r) if r.superuser => out.push(
                Finding::new(
                    Severity::Blocker,
                    "owner-membership",
                    Some(Side::Target),
                    format!(
                        "owner: keep gives tables to role {o}, a superuser: only a superuser may give objects to it, and role {} is not one",
                        t.server.current_user
                    ),
                )
                .object(format!("role {o}"))
                // Granting a superuser role would hand out superuser: never suggested.
                .fix(format!(
                    "set owner: target-user (the tables then belong to {user}; ALTER TABLE ... OWNER TO {q} afterwards, as a superuser), or run pgmove on the target as a superuser"
                )),
            ),
            Some(_) => out.push(
                Finding::new(
                    Severity::Blocker,
                    "owner-membership",
                    Some(Side::Target),
                    format!(
                        "owner: keep gives tables to role {o}, and role {} is not a member of it (ALTER ... OWNER TO needs membership)",
                        t.server.current_user
                    ),
                )
                .object(format!("role {o}"))
                .fix(format!(
                    "as {} (or a role with ADMIN OPTION on {q}): GRANT {q} TO {user};  -- or set owner: target-user",
                    admin(t)
                )),
            ),
        }
    }
    out
}

/// An explicitly chosen offline strategy that overruns the downtime budget.
pub fn downtime_budget(ctx: &Context) -> Vec<Finding> {
    if ctx.strategy != Some(Strategy::DumpRestore) {
        return vec![];
    }
    let tables: Vec<_> = planner::selected_tables(ctx.plan, ctx.source).collect();
    let data: i64 = tables.iter().map(|t| t.heap_bytes.max(0)).sum();
    let index: i64 = tables
        .iter()
        .map(|t| (t.total_bytes - t.heap_bytes).max(0))
        .sum();
    let est = planner::estimate_copy(
        data,
        index,
        ctx.plan.jobs,
        ctx.plan.index_jobs,
        tables.len(),
    );
    if est <= ctx.plan.downtime {
        return vec![];
    }
    vec![Finding::new(
        Severity::Warning,
        "downtime-budget",
        None,
        format!(
            "dump-restore keeps the source offline for about {}, more than the downtime budget of {}",
            planner::human(est),
            planner::human(ctx.plan.downtime)
        ),
    )
    .fix("raise downtime, or use strategy: auto to let an online strategy be chosen")]
}

fn list(items: &[String]) -> String {
    const MAX: usize = 10;
    if items.len() <= MAX {
        items.join(", ")
    } else {
        format!(
            "{}, and {} more",
            items[..MAX].join(", "),
            items.len() - MAX
        )
    }
}

#[cfg(test)]
pub(super) mod tests {
    use super::*;
    use crate::inspect::{AvailableExtension, Extension};
    use crate::planner::tests::{plan, source, target};
    use crate::tools::ToolError;

    pub(super) fn run(
        check: Check,
        plan: &Plan,
        strategy: Strategy,
        s: &Inventory,
        t: &Inventory,
    ) -> Vec<Finding> {
        let missing = || ToolError::NotFound {
            name: "x".to_string(),
            looked: String::new(),
            want: 0,
        };
        check(&Context {
            plan,
            source: s,
            target: t,
            strategy: Some(strategy),
            pg_dump: Err(missing()),
            pg_restore: Err(missing()),
            replication_probe: None,
        })
    }

    #[test]
    fn a_target_older_than_the_source_blocks_every_strategy_with_the_fix() {
        let p = plan("");
        let mut s = source();
        s.server.version_num = 160_004;
        s.settings.server_version = "16.4".to_string();
        for strategy in [
            Strategy::DumpRestore,
            Strategy::CopyCdc,
            Strategy::Pglogical,
        ] {
            let f = run(server_versions, &p, strategy, &s, &target());
            assert_eq!(f.len(), 1, "{f:#?}");
            assert_eq!(f[0].severity, Severity::Blocker);
            assert!(
                f[0].message.contains("the target runs PostgreSQL 15 and the source PostgreSQL 16: moving into an older major is unsupported"),
                "{}",
                f[0].message
            );
            let fix = f[0].fix.as_deref().unwrap_or_default();
            assert!(fix.contains("PostgreSQL 16 or newer"), "{fix}");
        }
        // The same major, or a newer target: nothing to say.
        assert!(run(server_versions, &p, Strategy::CopyCdc, &source(), &target()).is_empty());
        assert!(run(server_versions, &p, Strategy::CopyCdc, &source(), &s).is_empty());
    }

    #[test]
    fn ddl_is_not_streamed_from_a_source_before_14() {
        let p = plan("");
        let mut s = source();
        for (v, warned) in [
            (100_023, true),
            (120_022, true),
            (130_018, true),
            (140_015, false),
        ] {
            s.server.version_num = v;
            let f = run(ddl_messages, &p, Strategy::CopyCdc, &s, &target());
            assert_eq!(f.len(), usize::from(warned), "{v}: {f:#?}");
            if warned {
                assert_eq!(f[0].severity, Severity::Warning);
                assert_eq!(f[0].check, "ddl-not-streamed");
                assert!(
                    f[0].message.contains("from PostgreSQL 14 only"),
                    "{}",
                    f[0].message
                );
                assert!(
                    f[0].fix
                        .as_deref()
                        .unwrap_or_default()
                        .contains("on the target too"),
                    "{f:#?}"
                );
            }
        }
        s.server.version_num = 120_022;
        // Not with cdc.ddl ignore, nor for other strategies.
        assert!(run(
            ddl_messages,
            &plan("cdc:\n  ddl: ignore\n"),
            Strategy::CopyCdc,
            &s,
            &target()
        )
        .is_empty());
        assert!(run(ddl_messages, &p, Strategy::DumpRestore, &s, &target()).is_empty());
    }

    #[test]
    fn partitioned_tables_publish_their_leaves_on_a_source_before_13() {
        let p = plan("");
        let mut s = source();
        s.server.version_num = 120_022;
        let f = run(
            partitioned_publication,
            &p,
            Strategy::CopyCdc,
            &s,
            &target(),
        );
        // No longer a blocker: information saying which path the tables take.
        assert_eq!(f.len(), 1, "{f:#?}");
        assert_eq!(f[0].severity, Severity::Info);
        assert_eq!(f[0].object.as_deref(), Some("public.events"));
        assert!(f[0].message.contains("PostgreSQL 12"), "{}", f[0].message);
        assert!(
            f[0].message
                .contains("publishes their leaf partitions individually"),
            "{}",
            f[0].message
        );
        // With cdc.ddl ignore, a leaf created during capture would not be published: a warning.
        let ignore = plan("cdc:\n  ddl: ignore\n");
        let f = run(
            partitioned_publication,
            &ignore,
            Strategy::CopyCdc,
            &s,
            &target(),
        );
        assert_eq!(f.len(), 2, "{f:#?}");
        assert_eq!(f[1].severity, Severity::Warning);
        assert!(f[1].message.contains("not replicated"), "{}", f[1].message);
        assert!(
            f[1].fix
                .as_deref()
                .unwrap_or_default()
                .contains("cdc.ddl: replicate"),
            "{f:#?}"
        );
        // Other strategies, and a 13+ source: nothing.
        assert!(run(
            partitioned_publication,
            &p,
            Strategy::DumpRestore,
            &s,
            &target()
        )
        .is_empty());
        assert!(run(
            partitioned_publication,
            &p,
            Strategy::CopyCdc,
            &source(),
            &target()
        )
        .is_empty());
    }

    #[test]
    fn a_declared_kind_the_server_does_not_show_is_a_warning_naming_both() {
        let p = crate::plan::parse(
            "version: 1\nname: shop\nsource:\n  dsn: postgres://a@h1/db\ntarget:\n  dsn: postgres://b@h2/db\n  kind: aurora\n",
            "test.yaml",
        )
        .expect("plan");
        let mut t = target();
        crate::planner::apply_target_kind(&p, &mut t);
        let f = run(target_kind, &p, Strategy::DumpRestore, &source(), &t);
        assert_eq!(f.len(), 1, "{f:#?}");
        assert_eq!(f[0].severity, Severity::Warning);
        assert!(
            f[0].message.contains("target.kind is aurora but the target looks self-managed (no sign of RDS or Aurora)"),
            "{}",
            f[0].message
        );
        // Declared as detected: nothing to say.
        let mut t = target();
        t.platform = Platform::Aurora;
        crate::planner::apply_target_kind(&p, &mut t);
        assert!(run(target_kind, &p, Strategy::DumpRestore, &source(), &t).is_empty());
    }

    #[test]
    fn parameter_group_fixes_name_the_cluster_group_on_aurora_and_the_db_group_on_rds() {
        let mut s = source();
        s.platform = Platform::Rds;
        let rds = parameter_group_fix(&s, &[("rds.logical_replication", "1")], true);
        assert!(rds.starts_with("not SQL (the master user cannot change it): in AWS, set rds.logical_replication = 1 in the source's DB parameter group, then reboot the instance: aws rds modify-db-parameter-group --db-parameter-group-name <group> --parameters ParameterName=rds.logical_replication,ParameterValue=1,ApplyMethod=pending-reboot; aws rds reboot-db-instance"), "{rds}");
        s.platform = Platform::Aurora;
        let aurora = parameter_group_fix(&s, &[("rds.logical_replication", "1")], true);
        assert!(aurora.contains("in the source's DB cluster parameter group, then reboot the writer instance: aws rds modify-db-cluster-parameter-group --db-cluster-parameter-group-name <group>"), "{aurora}");
        // max_connections is an instance setting on Aurora too.
        assert!(restart_fix(&s, "max_connections", "100").contains("DB parameter group"));
    }

    #[test]
    fn an_rds_proxy_source_blocks_the_online_strategies_only() {
        let p = crate::plan::parse(
            "version: 1\nname: shop\nsource:\n  dsn: postgres://a@shop.proxy-c1a2b3.us-east-1.rds.amazonaws.com/db\ntarget:\n  dsn: postgres://b@h2/db\n",
            "test.yaml",
        )
        .expect("plan");
        let (s, t) = (source(), target());
        let f = run(rds_proxy_source, &p, Strategy::CopyCdc, &s, &t);
        assert_eq!(f.len(), 1, "{f:#?}");
        assert_eq!(f[0].check, "source-rds-proxy");
        assert!(f[0].message.contains("the source host shop.proxy-c1a2b3.us-east-1.rds.amazonaws.com is an RDS Proxy endpoint: RDS Proxy does not carry replication connections, so strategy copy-cdc cannot stream"), "{}", f[0].message);
        assert!(f[0]
            .fix
            .as_deref()
            .unwrap_or("")
            .contains("cluster (writer) endpoint"));
        assert!(!run(rds_proxy_source, &p, Strategy::Pglogical, &s, &t).is_empty());
        assert!(run(rds_proxy_source, &p, Strategy::DumpRestore, &s, &t).is_empty());
        assert!(run(rds_proxy_source, &plan(""), Strategy::CopyCdc, &s, &t).is_empty());
    }

    #[test]
    fn a_standby_target_is_a_blocker_and_a_standby_source_only_for_online_strategies() {
        let p = plan("");
        let mut s = source();
        let mut t = target();
        t.server.in_recovery = true;
        let f = run(standby_target, &p, Strategy::DumpRestore, &s, &t);
        assert_eq!(f.len(), 1);
        assert_eq!(f[0].check, "target-standby");
        s.server.in_recovery = true;
        let t = target();
        let f = run(standby_source, &p, Strategy::CopyCdc, &s, &t);
        assert_eq!((f.len(), f[0].severity), (1, Severity::Blocker), "{f:#?}");
        assert!(f[0]
            .fix
            .as_deref()
            .unwrap_or("")
            .contains("strategy: dump-restore"));
        s.settings.hot_standby_feedback = Some(false);
        s.settings.max_standby_streaming_delay_ms = Some(30_000);
        let f = run(standby_source, &p, Strategy::DumpRestore, &s, &t);
        assert_eq!((f.len(), f[0].severity), (1, Severity::Warning), "{f:#?}");
        assert!(
            f[0].message
                .contains("hot_standby_feedback is off, max_standby_streaming_delay is 30000 ms"),
            "{}",
            f[0].message
        );
        s.settings.hot_standby_feedback = Some(true);
        s.settings.max_standby_streaming_delay_ms = Some(-1);
        let f = run(standby_source, &p, Strategy::DumpRestore, &s, &t);
        assert_eq!((f.len(), f[0].severity), (1, Severity::Info), "{f:#?}");
    }

    #[test]
    fn extensions_outside_the_allowlist_or_beyond_the_role_are_one_blocker_each() {
        let p = plan("");
        let mut s = source();
        for name in ["hstore", "pg_partman", "citext"] {
            s.extensions.push(Extension {
                name: name.to_string(),
                version: "1.0".to_string(),
                schema: "public".to_string(),
                relocatable: true,
            });
        }
        let mut t = target();
        t.extensions.retain(|e| e.name == "plpgsql");
        t.platform = Platform::Rds;
        t.rights.superuser = false;
        t.settings.rds_extensions = Some(
            ["postgis", "hstore", "citext"]
                .iter()
                .map(|x| x.to_string())
                .collect(),
        );
        t.rights.trusted_extensions = vec!["citext".to_string(), "hstore".to_string()];
        t.available_extensions = ["postgis", "hstore", "pg_partman", "citext"]
            .iter()
            .map(|n| AvailableExtension {
                name: n.to_string(),
                default_version: Some("1.0".to_string()),
                installed_version: None,
            })
            .collect();
        let f = run(extensions, &p, Strategy::DumpRestore, &s, &t);
        let checks: Vec<(&str, &str)> = f
            .iter()
            .map(|x| (x.check, x.object.as_deref().unwrap_or("")))
            .collect();
        assert_eq!(
            checks,
            [
                ("extension-create", "extension postgis"),
                ("extension-not-allowed", "extension pg_partman"),
            ],
            "{f:#?}"
        );
        assert!(f[0].fix.as_deref().unwrap_or("").starts_with("as the master user, in the target database shop: CREATE EXTENSION IF NOT EXISTS \"postgis\" SCHEMA \"public\";"), "{f:#?}");
        assert!(
            f[1].fix
                .as_deref()
                .unwrap_or("")
                .starts_with("ask AWS to support pg_partman"),
            "{f:#?}"
        );
        // A member of rds_superuser may create what the allowlist allows.
        t.rights.rds_superuser = true;
        let f = run(extensions, &p, Strategy::DumpRestore, &s, &t);
        assert_eq!(f.len(), 1, "{f:#?}");
        assert_eq!(f[0].check, "extension-not-allowed");
        // rds.allowed_extensions narrows the list further, unless it is `*`.
        t.settings.rds_allowed_extensions = Some(vec!["postgis".to_string(), "citext".to_string()]);
        let f = run(extensions, &p, Strategy::DumpRestore, &s, &t);
        let objects: Vec<&str> = f.iter().filter_map(|x| x.object.as_deref()).collect();
        assert_eq!(
            objects,
            ["extension hstore", "extension pg_partman"],
            "{f:#?}"
        );
        assert!(
            f[0].fix
                .as_deref()
                .unwrap_or("")
                .contains("set rds.allowed_extensions = \"postgis,citext,hstore\""),
            "{f:#?}"
        );
        t.settings.rds_allowed_extensions = Some(vec!["*".to_string()]);
        assert_eq!(run(extensions, &p, Strategy::DumpRestore, &s, &t).len(), 1);
    }

    #[test]
    fn a_source_tables_row_security_fix_offers_bypassrls_only_where_it_can_be_given() {
        let p = plan("");
        let mut s = source();
        s.rights.superuser = false;
        s.tables[0].row_security = true;
        s.tables[0].force_row_security = true;
        let t = target();
        let fix = |s: &Inventory| {
            let found = run(row_security, &p, Strategy::CopyCdc, s, &t);
            assert_eq!(found.len(), 1, "{found:#?}");
            found[0].fix.clone().unwrap_or_default()
        };
        assert!(fix(&s).contains("BYPASSRLS"), "{}", fix(&s));
        assert!(
            fix(&s).contains("NO FORCE ROW LEVEL SECURITY"),
            "{}",
            fix(&s)
        );
        // The master user cannot give BYPASSRLS on RDS/Aurora: the owner's way only.
        s.platform = Platform::Rds;
        assert!(!fix(&s).contains("BYPASSRLS"), "{}", fix(&s));
        assert!(
            fix(&s).contains("NO FORCE ROW LEVEL SECURITY"),
            "{}",
            fix(&s)
        );
        s.tables[0].force_row_security = false;
        s.tables[0].owned = false;
        assert!(!fix(&s).contains("BYPASSRLS"), "{}", fix(&s));
        assert!(fix(&s).contains("OWNER TO"), "{}", fix(&s));
    }

    #[test]
    fn forced_row_security_blocks_a_target_role_without_bypassrls() {
        let p = plan("");
        let mut s = source();
        s.tables[0].row_security = true;
        s.tables[0].force_row_security = true;
        let name = s.tables[0].display_name();
        let mut t = target();
        t.rights.superuser = false;
        for strategy in [Strategy::DumpRestore, Strategy::CopyCdc] {
            let found = run(target_row_security, &p, strategy, &s, &t);
            assert_eq!(found.len(), 1, "{found:#?}");
            assert_eq!(found[0].severity, Severity::Blocker);
            assert!(found[0].message.contains(&name), "{found:#?}");
            assert!(
                found[0]
                    .fix
                    .as_deref()
                    .is_some_and(|f| f.contains("ALTER ROLE \"migrator\" BYPASSRLS;")),
                "{found:#?}"
            );
        }
        // On RDS/Aurora the master user cannot give BYPASSRLS: the fix lifts FORCE instead.
        t.platform = Platform::Aurora;
        let found = run(target_row_security, &p, Strategy::CopyCdc, &s, &t);
        let fix = found[0].fix.clone().unwrap_or_default();
        let table = s.tables[0].qualified();
        assert!(!fix.contains("BYPASSRLS"), "{fix}");
        assert!(
            fix.contains(&format!(
                "on the source: ALTER TABLE {table} NO FORCE ROW LEVEL SECURITY;"
            )) && fix.contains(&format!(
                "on the target: ALTER TABLE {table} FORCE ROW LEVEL SECURITY;"
            )),
            "{fix}"
        );
        t.platform = Platform::SelfManaged;
        // dump-restore without verification: nothing reads the table after the restore.
        let unverified = plan("cutover:\n  verify: none\n");
        assert!(run(
            target_row_security,
            &unverified,
            Strategy::DumpRestore,
            &s,
            &t
        )
        .is_empty());
        assert_eq!(
            run(target_row_security, &unverified, Strategy::CopyCdc, &s, &t).len(),
            1
        );
        // Not forced: the target role owns the table (or is a member of its owner).
        s.tables[0].force_row_security = false;
        assert!(run(target_row_security, &p, Strategy::CopyCdc, &s, &t).is_empty());
        s.tables[0].force_row_security = true;
        t.rights.bypass_rls = true;
        assert!(run(target_row_security, &p, Strategy::CopyCdc, &s, &t).is_empty());
        t.rights.bypass_rls = false;
        t.rights.superuser = true;
        assert!(run(target_row_security, &p, Strategy::CopyCdc, &s, &t).is_empty());
    }
}
