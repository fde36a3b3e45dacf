//! Preflight of strategy pglogical: the extension preloaded, available and of one major on
//! both servers, the right to create it, room for its workers, slots and WAL senders, and
//! whether the provider DSN (how the *target server* reaches the source) answers.
//!
//! What pglogical 2 runs, which the counts below follow: on every server where it is preloaded
//! a supervisor, and a manager per database with a pglogical node; on the subscriber the
//! subscription's apply worker (which also copies the tables of the initial sync) and at most
//! one table sync worker at a time; on the provider one WAL sender and one logical slot for
//! the subscription, and one more of each while a table sync runs.

use super::{admin, is_rds, list, restart_fix, Context, Finding, Severity};
use crate::inspect::{Inventory, Platform, Table};
use crate::pg::{Endpoint, Side};
use crate::plan::Plan;
use crate::planner::Strategy;

/// The extension's name.
const EXTENSION: &str = "pglogical";

fn applies(ctx: &Context) -> bool {
    ctx.strategy == Some(Strategy::Pglogical)
}

/// Whether `shared_preload_libraries` lists pglogical (None: hidden from the role).
pub fn preloaded(inv: &Inventory) -> Option<bool> {
    inv.settings
        .shared_preload_libraries
        .as_ref()
        .map(|l| l.iter().any(|x| x == EXTENSION))
}

/// The pglogical version this server has or would install: the installed one, else the
/// default of `pg_available_extensions`.
pub fn version(inv: &Inventory) -> Option<String> {
    if let Some(e) = inv.extension(EXTENSION) {
        return Some(e.version.clone());
    }
    inv.available_extension(EXTENSION).and_then(|a| {
        a.installed_version
            .clone()
            .or_else(|| a.default_version.clone())
    })
}

/// The major of a version string: `2` of `2.4.2`.
fn major(v: &str) -> &str {
    v.split('.').next().unwrap_or(v)
}

fn parameter_group(inv: &Inventory) -> String {
    match inv.platform {
        Platform::Aurora => format!("the DB cluster parameter group of the {}", inv.side),
        _ => format!("the DB parameter group of the {}", inv.side),
    }
}

/// pglogical must be in `shared_preload_libraries` on both servers (a restart to change).
pub fn pglogical_preload(ctx: &Context) -> Vec<Finding> {
    if !applies(ctx) {
        return vec![];
    }
    let mut out = vec![];
    for inv in [ctx.source, ctx.target] {
        let libs = match &inv.settings.shared_preload_libraries {
            Some(libs) => libs.clone(),
            None => {
                out.push(
                    Finding::new(
                        Severity::Blocker,
                        "pglogical-preload",
                        Some(inv.side),
                        format!(
                            "role {} cannot read shared_preload_libraries, so whether pglogical is preloaded on the {} is unknown",
                            inv.server.current_user, inv.side
                        ),
                    )
                    .object("setting shared_preload_libraries")
                    .fix(format!(
                        "as {}: GRANT pg_read_all_settings TO {};",
                        admin(inv),
                        crate::pg::quote::ident(&inv.server.current_user)
                    )),
                );
                continue;
            }
        };
        if libs.iter().any(|l| l == EXTENSION) {
            continue;
        }
        let mut new = libs.clone();
        new.push(EXTENSION.to_string());
        let fix = if is_rds(inv) {
            format!(
                "in {}: set shared_preload_libraries = '{}' and rds.logical_replication = 1, then reboot the {}",
                parameter_group(inv),
                new.join(","),
                inv.side
            )
        } else {
            format!(
                "ALTER SYSTEM SET shared_preload_libraries = '{}'; then restart the {} server (a reload is not enough)",
                new.join(","),
                inv.side
            )
        };
        out.push(
            Finding::new(
                Severity::Blocker,
                "pglogical-preload",
                Some(inv.side),
                format!(
                    "pglogical is not in the {}'s shared_preload_libraries ({}): its workers start only from there, at server start",
                    inv.side,
                    if libs.is_empty() { "empty".to_string() } else { libs.join(",") }
                ),
            )
            .object("setting shared_preload_libraries")
            .fix(fix),
        );
    }
    out
}

/// The extension must be installable (or installed) on both servers, by a role that may.
pub fn pglogical_available(ctx: &Context) -> Vec<Finding> {
    if !applies(ctx) {
        return vec![];
    }
    let mut out = vec![];
    for inv in [ctx.source, ctx.target] {
        let major = inv.server.version_num / 10000;
        if version(inv).is_none() {
            let fix = if is_rds(inv) {
                format!("this RDS/Aurora engine version does not offer pglogical: upgrade the {} to a minor version that lists it in pg_available_extensions", inv.side)
            } else {
                format!(
                    "on the {} host: apt-get install {} (or the pglogical_{major} package of your distribution), then restart it with pglogical preloaded",
                    inv.side,
                    super::extension_package(EXTENSION, major)
                )
            };
            out.push(
                Finding::new(
                    Severity::Blocker,
                    "pglogical-missing",
                    Some(inv.side),
                    format!(
                        "the pglogical extension is not available on the {} (not in pg_available_extensions of PostgreSQL {major})",
                        inv.side
                    ),
                )
                .object("extension pglogical")
                .fix(fix),
            );
            continue;
        }
        let r = &inv.rights;
        if inv.extension(EXTENSION).is_none() && !r.superuser && !(is_rds(inv) && r.rds_superuser) {
            out.push(
                Finding::new(
                    Severity::Blocker,
                    "pglogical-create-extension",
                    Some(inv.side),
                    format!(
                        "pglogical is not installed in database {} of the {}, and role {} may not install it (CREATE EXTENSION pglogical needs {})",
                        inv.server.database,
                        inv.side,
                        inv.server.current_user,
                        if is_rds(inv) { "rds_superuser" } else { "a superuser" }
                    ),
                )
                .object("extension pglogical")
                .fix(format!(
                    "as {}, in database {}: CREATE EXTENSION pglogical;",
                    admin(inv),
                    crate::pg::quote::ident(&inv.server.database)
                )),
            );
        }
    }
    out
}

/// On RDS/Aurora, an extension is created only when `rds.extensions` (`allowed`: the
/// extensions the server allows) lists it: pglogical not installed and not listed is a
/// blocker, whoever connects (the master user could not create it either).
fn not_allowed(inv: &Inventory, allowed: Option<&[String]>) -> Option<Finding> {
    let allowed = allowed?;
    if !is_rds(inv) || inv.extension(EXTENSION).is_some() || allowed.iter().any(|a| a == EXTENSION)
    {
        return None;
    }
    Some(
        Finding::new(
            Severity::Blocker,
            "pglogical-missing",
            Some(inv.side),
            format!(
                "pglogical is not in the {}'s rds.extensions ({}): RDS/Aurora creates only the extensions listed there, so not even the master user can create it",
                inv.side,
                if allowed.is_empty() { "empty".to_string() } else { allowed.join(",") }
            ),
        )
        .object("extension pglogical")
        .fix(format!(
            "use an engine version of the {} that lists pglogical in rds.extensions (and, if rds.allowed_extensions is set in {}, add pglogical to it), or another strategy (copy-cdc or dump-restore)",
            inv.side,
            parameter_group(inv)
        )),
    )
}

/// What only the server itself tells, read as the connecting role: `rds.extensions` (a
/// custom setting, which `pg_settings` does not list where it is a placeholder; NULL where
/// it does not exist), whether the role may call `pg_replication_origin_session_setup`
/// (superusers only, unless granted; RDS/Aurora let `rds_superuser` call it), and for an installed pglogical its schema, whether the role has USAGE
/// on it, and the tables and views of that schema the role may not SELECT (pgmove reads
/// them; on the source, pglogical's own subscriber connections, which log in as the provider
/// DSN's role, read them too; NULLs without the extension). One row.
const ACCESS_SQL: &str = "\
SELECT pg_catalog.current_setting('rds.extensions', true) AS rds_extensions,
       pg_catalog.has_function_privilege(
         'pg_catalog.pg_replication_origin_session_setup(text)', 'EXECUTE') AS origin_setup,
       e.extnamespace::regnamespace::text AS schema,
       pg_catalog.has_schema_privilege(e.extnamespace, 'USAGE') AS usage,
       CASE WHEN e.oid IS NOT NULL THEN ARRAY(
         SELECT c.relname::text FROM pg_catalog.pg_class c
          WHERE c.relnamespace = e.extnamespace AND c.relkind IN ('r', 'v')
            AND NOT pg_catalog.has_table_privilege(c.oid, 'SELECT')
          ORDER BY 1) END AS unreadable
  FROM (SELECT 1) one
  LEFT JOIN pg_catalog.pg_extension e ON e.extname = 'pglogical'";

/// What [`ACCESS_SQL`] found about an installed pglogical.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Access {
    pub schema: String,
    pub usage: bool,
    pub unreadable: Vec<String>,
}

/// What [`ACCESS_SQL`] found on one server.
#[derive(Clone, Debug, Default)]
struct Probe {
    /// `rds.extensions` (None where the setting does not exist).
    allowed: Option<Vec<String>>,
    /// The role may call `pg_replication_origin_session_setup`.
    origin_setup: bool,
    /// The installed pglogical (None without the extension).
    access: Option<Access>,
}

/// Reads [`Probe`] on `ep`.
async fn read_access(ep: &Endpoint) -> Result<Probe, crate::pg::PgError> {
    let c = ep.connect().await?;
    let what = "reading the role's rights on pglogical's schema";
    let row = c
        .query_one(ACCESS_SQL, &[])
        .await
        .map_err(|e| ep.query_error(what, &e))?;
    let get = |e: tokio_postgres::Error| crate::pg::PgError::Query {
        side: ep.side,
        message: format!("{what}: {e}"),
    };
    let allowed: Option<String> = row.try_get("rds_extensions").map_err(get)?;
    let origin_setup: bool = row.try_get("origin_setup").map_err(get)?;
    let schema: Option<String> = row.try_get("schema").map_err(get)?;
    let access = match schema {
        Some(schema) => Some(Access {
            schema,
            usage: row
                .try_get::<_, Option<bool>>("usage")
                .map_err(get)?
                .unwrap_or(false),
            unreadable: row
                .try_get::<_, Option<Vec<String>>>("unreadable")
                .map_err(get)?
                .unwrap_or_default(),
        }),
        None => None,
    };
    // A comma-separated list of plain extension names.
    let allowed = allowed.map(|a| {
        a.split(',')
            .map(|x| x.trim().trim_matches('"').to_string())
            .filter(|x| !x.is_empty())
            .collect()
    });
    Ok(Probe {
        allowed,
        origin_setup,
        access,
    })
}

/// pglogical's initial copy writes each table on the target through the subscriber node's
/// own connection, which logs in as the target's role: it sets up the subscription's
/// replication origin there (`pg_replication_origin_session_setup`, superusers only unless
/// granted) and `SET session_replication_role = replica`. Without either the subscription
/// goes down at its first table (the error only in the target server's log). A blocker on the
/// target naming what is missing and the grants.
pub fn subscriber_findings(inv: &Inventory, origin_setup: bool) -> Vec<Finding> {
    let r = &inv.rights;
    if inv.side != Side::Target || r.superuser || (origin_setup && r.set_replication_role) {
        return vec![];
    }
    let user = crate::pg::quote::ident(&inv.server.current_user);
    let mut missing = Vec::new();
    let mut grants = Vec::new();
    if !origin_setup {
        missing.push("call pg_replication_origin_session_setup");
        grants.push(format!("GRANT EXECUTE ON FUNCTION pg_catalog.pg_replication_origin_session_setup(text), pg_catalog.pg_replication_origin_session_reset() TO {user};"));
    }
    if !r.set_replication_role {
        missing.push("SET session_replication_role");
        grants.push(format!(
            "GRANT SET ON PARAMETER session_replication_role TO {user};"
        ));
    }
    let fix = if is_rds(inv) {
        format!("connect to the target as the master user, or as the master user: GRANT rds_superuser TO {user};  -- RDS/Aurora let rds_superuser do both")
    } else {
        format!("as a superuser: {}", grants.join(" "))
    };
    vec![Finding::new(
        Severity::Blocker,
        "pglogical-subscriber-rights",
        Some(Side::Target),
        format!(
            "role {} may not {} on the target, which pglogical's initial copy does through the subscriber node's connection (as that role): the subscription would go down at its first table",
            inv.server.current_user,
            missing.join(" nor ")
        ),
    )
    .object(format!("role {}", inv.server.current_user))
    .fix(fix)]
}

/// An installed pglogical the connecting role may not use: created by another role (on
/// RDS/Aurora the master user, who then owns its schema and tables), it needs USAGE on the
/// schema and SELECT on its tables, which its owner grants. A blocker naming the grants and
/// who runs them.
pub fn access_findings(inv: &Inventory, access: Option<&Access>) -> Vec<Finding> {
    let Some(a) = access else {
        return vec![];
    };
    if inv.rights.superuser || (a.usage && a.unreadable.is_empty()) {
        return vec![];
    }
    let role = crate::pg::quote::ident(&inv.server.current_user);
    let schema = crate::pg::quote::ident(&a.schema);
    let mut missing = Vec::new();
    if !a.usage {
        missing.push(format!("USAGE on schema {}", a.schema));
    }
    if !a.unreadable.is_empty() {
        missing.push(format!(
            "SELECT on {} of its tables ({})",
            a.unreadable.len(),
            list(&a.unreadable)
        ));
    }
    let what = if inv.side == Side::Source {
        "pgmove reads them and calls its functions, and pglogical's subscriber connections (as the provider DSN's role) read them"
    } else {
        "pgmove reads them and calls its functions"
    };
    vec![Finding::new(
        Severity::Blocker,
        "pglogical-access",
        Some(inv.side),
        format!(
            "role {} on the {} lacks {} of the installed pglogical extension, which another role created: {what}",
            inv.server.current_user,
            inv.side,
            missing.join(" and ")
        ),
    )
    .object(format!("schema {}", a.schema))
    .fix(format!(
        "as {} (or the extension's owner), in database {}: GRANT USAGE ON SCHEMA {schema} TO {role}; GRANT SELECT ON ALL TABLES IN SCHEMA {schema} TO {role};",
        admin(inv),
        crate::pg::quote::ident(&inv.server.database)
    ))]
}

/// What strategy pglogical needs of the server `ep` of `inv` that only the server tells, read
/// there now as the plan's role: on RDS/Aurora pglogical in `rds.extensions` when it is not
/// installed, the rights on an installed one, and on the target those of pglogical's
/// initial copy. A
/// failed read is a warning saying what could not be checked.
pub async fn pglogical_access(ep: &Endpoint, inv: &Inventory) -> Vec<Finding> {
    if version(inv).is_none() {
        return vec![]; // not available at all: pglogical_available says so
    }
    match read_access(ep).await {
        Ok(p) => {
            let allowed = inv.settings.rds_extensions.clone().or(p.allowed);
            let mut out: Vec<Finding> = not_allowed(inv, allowed.as_deref()).into_iter().collect();
            out.extend(access_findings(inv, p.access.as_ref()));
            out.extend(subscriber_findings(inv, p.origin_setup));
            out
        }
        Err(e) => vec![Finding::new(
            Severity::Warning,
            "pglogical-access",
            Some(inv.side),
            format!(
                "whether role {} may use pglogical on the {} could not be read: {e}",
                inv.server.current_user, inv.side
            ),
        )],
    }
}

/// Both servers must run the same pglogical major (its protocol between provider and
/// subscriber changes across majors).
pub fn pglogical_versions(ctx: &Context) -> Vec<Finding> {
    if !applies(ctx) {
        return vec![];
    }
    let (Some(s), Some(t)) = (version(ctx.source), version(ctx.target)) else {
        return vec![];
    };
    if major(&s) == major(&t) {
        return vec![];
    }
    let (older, newer) = if major(&s) < major(&t) {
        (Side::Source, &t)
    } else {
        (Side::Target, &s)
    };
    vec![Finding::new(
        Severity::Blocker,
        "pglogical-version",
        Some(older),
        format!("pglogical {s} on the source and {t} on the target: both must run the same major version"),
    )
    .object("extension pglogical")
    .fix(format!(
        "install pglogical {}.x on the {older} (ALTER EXTENSION pglogical UPDATE; after upgrading the package if it is installed)",
        major(newer)
    ))]
}

/// The stored generated columns of the tables pglogical would synchronize and replicate
/// (the selected tables that hold rows, are logged, and are not left out of both sets by
/// `cdc.tables_without_key: exclude`), as (table, column) in inventory order. pglogical 2.4
/// copies and applies them as ordinary columns, which the target refuses (issue #335).
pub fn generated_columns<'a>(plan: &'a Plan, source: &'a Inventory) -> Vec<(&'a Table, &'a str)> {
    use crate::plan::TablesWithoutKey as K;
    let exclude = plan.cdc.tables_without_key == K::Exclude;
    crate::planner::selected_tables(plan, source)
        .filter(|t| t.holds_rows() && !t.unlogged)
        .filter(|t| !exclude || t.has_replica_identity_index())
        .flat_map(|t| t.generated_columns().map(move |c| (t, c.name.as_str())))
        .collect()
}

/// Stored generated columns cannot go through pglogical 2: its initial copy sends them to the
/// target (`COPY ... : column "c" is a generated column`, and the subscription goes down), and
/// its apply would write them too. A blocker naming each, with the strategies that handle
/// them and the statement that makes each an ordinary column.
pub fn pglogical_generated_columns(ctx: &Context) -> Vec<Finding> {
    if !applies(ctx) {
        return vec![];
    }
    let cols = generated_columns(ctx.plan, ctx.source);
    if cols.is_empty() {
        return vec![];
    }
    let names: Vec<String> = cols
        .iter()
        .map(|(t, c)| format!("{}.{c}", t.display_name()))
        .collect();
    let statements: Vec<String> = cols
        .iter()
        .map(|(t, c)| {
            format!(
                "ALTER TABLE {} ALTER COLUMN {} DROP EXPRESSION;",
                t.qualified(),
                crate::pg::quote::ident(c)
            )
        })
        .collect();
    vec![Finding::new(
        Severity::Blocker,
        "pglogical-generated-columns",
        Some(Side::Source),
        format!(
            "{} stored generated column(s) in tables pglogical would copy and replicate: {}; pglogical 2 sends a generated column's values like any other column, which the target refuses (its initial table copy fails with \"column ... is a generated column\" and the subscription goes down; pglogical issue #335)",
            names.len(),
            list(&names)
        ),
    )
    .object(list(&names))
    .fix(format!(
        "use strategy copy-cdc or dump-restore (or auto with pglogical.prefer: false), which compute generated columns on the target; or, if they may become ordinary columns that keep their current values and are no longer computed, on the source: {}",
        list(&statements)
    ))]
}

/// What one server needs of a resource, and what of it is in use now.
struct Need<'a> {
    setting: &'static str,
    max: i64,
    used: i64,
    need: i64,
    used_what: &'a str,
    need_what: String,
}

fn short(inv: &Inventory, n: Need) -> Option<Finding> {
    let free = (n.max - n.used).max(0);
    if free >= n.need {
        return None;
    }
    Some(
        Finding::new(
            Severity::Blocker,
            match n.setting {
                "max_worker_processes" => "pglogical-workers",
                "max_replication_slots" => "pglogical-slots",
                _ => "pglogical-wal-senders",
            },
            Some(inv.side),
            format!(
                "{} = {} and {} {} in use now, so {free} are free; pglogical needs {} on the {}: {}",
                n.setting, n.max, n.used, n.used_what, n.need, inv.side, n.need_what
            ),
        )
        .object(format!("setting {}", n.setting))
        .fix(capacity_fix(
            inv,
            n.setting,
            &(n.used + n.need + 2).max(n.max + n.need - free).to_string(),
        )),
    )
}

/// How to raise `setting` to `value`: on Aurora in the DB cluster parameter group (where
/// Aurora keeps the worker, slot and sender settings logical replication needs), on RDS in
/// the DB parameter group (both with the AWS CLI calls), elsewhere `ALTER SYSTEM`; a restart
/// each time. The one wording every preflight check uses ([`restart_fix`]).
fn capacity_fix(inv: &Inventory, setting: &str, value: &str) -> String {
    restart_fix(inv, setting, value)
}

/// Room for pglogical's workers on both servers and for its slots and WAL senders on the
/// source, counted from what runs now (`pg_stat_activity`, `pg_replication_slots`,
/// `pg_stat_replication`). A rerun counts the subscription it finds as already running.
pub fn pglogical_capacity(ctx: &Context) -> Vec<Finding> {
    if !applies(ctx) {
        return vec![];
    }
    let names = ctx.plan.pglogical_names();
    let (s, t) = (ctx.source, ctx.target);
    let has_node = |inv: &Inventory| inv.pglogical.as_ref().is_some_and(|p| p.node.is_some());
    let subscribed = t
        .pglogical
        .as_ref()
        .is_some_and(|p| p.subscriptions.iter().any(|x| x == &names.subscription));
    let mut out = vec![];

    // Workers, on each server.
    let target_need: Vec<(i64, String)> = vec![
        (
            i64::from(preloaded(t) != Some(true)),
            "the supervisor, once preloaded".to_string(),
        ),
        (
            i64::from(!has_node(t)),
            format!("a manager for database {}", t.server.database),
        ),
        (
            i64::from(!subscribed),
            format!("the apply worker of subscription {}", names.subscription),
        ),
        (1, "one table sync worker at a time".to_string()),
    ];
    let source_need: Vec<(i64, String)> = vec![
        (
            i64::from(preloaded(s) != Some(true)),
            "the supervisor, once preloaded".to_string(),
        ),
        (
            i64::from(!has_node(s)),
            format!("a manager for database {}", s.server.database),
        ),
    ];
    for (inv, parts) in [(t, target_need), (s, source_need)] {
        let need: i64 = parts.iter().map(|p| p.0).sum();
        let what: Vec<String> = parts.into_iter().filter(|p| p.0 > 0).map(|p| p.1).collect();
        if need == 0 {
            continue;
        }
        match inv.settings.background_workers_used {
            Some(used) => out.extend(short(
                inv,
                Need {
                    setting: "max_worker_processes",
                    max: inv.settings.max_worker_processes,
                    used,
                    need,
                    used_what: "background workers are",
                    need_what: list(&what),
                },
            )),
            None => out.push(
                Finding::new(
                    Severity::Warning,
                    "pglogical-workers",
                    Some(inv.side),
                    format!(
                        "pglogical needs {need} background worker(s) on the {} ({}) within max_worker_processes = {}, but role {} cannot see which processes run now, so pgmove cannot count the free ones",
                        inv.side,
                        list(&what),
                        inv.settings.max_worker_processes,
                        inv.server.current_user
                    ),
                )
                .object("setting max_worker_processes")
                .fix(format!(
                    "as {}: GRANT pg_read_all_stats TO {}; then run plan again",
                    admin(inv),
                    crate::pg::quote::ident(&inv.server.current_user)
                )),
            ),
        }
    }

    // Slots and WAL senders, on the source.
    let running = i64::from(subscribed);
    for (setting, max, used, used_what) in [
        (
            "max_replication_slots",
            s.settings.max_replication_slots,
            s.settings.replication_slots_used,
            "replication slots exist (pg_replication_slots)",
        ),
        (
            "max_wal_senders",
            s.settings.max_wal_senders,
            s.settings.wal_senders_used,
            "WAL senders are (pg_stat_replication)",
        ),
    ] {
        out.extend(short(
            s,
            Need {
                setting,
                max,
                used,
                need: 2 - running,
                used_what,
                need_what: if running == 1 {
                    format!(
                        "one more for a table sync (subscription {} is counted among those in use)",
                        names.subscription
                    )
                } else {
                    format!(
                        "one for subscription {} and one for the table sync that runs beside it",
                        names.subscription
                    )
                },
            },
        ));
    }
    out
}

/// Where the subscription's provider DSN comes from, for messages.
fn provider_dsn_origin(plan: &Plan) -> &'static str {
    if plan.pglogical.provider_dsn.is_some() {
        "pglogical.provider_dsn"
    } else {
        "source.dsn"
    }
}

/// A host the target server would resolve to itself when the source's DSN names it.
fn is_local_host(host: &str) -> bool {
    host.starts_with('/')
        || host.eq_ignore_ascii_case("localhost")
        || host.starts_with("127.")
        || host == "::1"
}

/// What the provider probe (made from pgmove's host) found.
#[derive(Debug)]
pub enum ProviderProbe {
    /// Connected, to the source's database on the source's server.
    Reached,
    /// Connected, but not to the source: what it reached instead.
    Elsewhere(String),
    /// Connected, as a role without the REPLICATION right.
    NoReplication(String),
    /// Connected, as a role that may not read the installed pglogical's schema (USAGE on it,
    /// SELECT on its tables), which the subscriber reads on the provider.
    NoPglogicalAccess(String),
    /// Did not connect: the error, the password redacted.
    Failed(String),
}

/// Catalog facts that tell one server and database from another: the database's name, when
/// the postmaster started, whether the connecting role may replicate (a superuser, the
/// REPLICATION attribute, or on RDS/Aurora membership in `rds_replication`), and whether it
/// may read the installed pglogical's schema (true without the extension).
const PROVIDER_IDENTITY_SQL: &str = "\
SELECT current_database()::text AS database,
       pg_postmaster_start_time()::text AS started,
       current_user::text AS role,
       (SELECT r.rolsuper OR r.rolreplication FROM pg_roles r WHERE r.rolname = current_user)
       OR EXISTS (SELECT 1 FROM pg_roles g WHERE g.rolname = 'rds_replication'
                    AND pg_has_role(current_user, g.oid, 'MEMBER')) AS replicates,
       COALESCE((SELECT pg_catalog.has_schema_privilege(e.extnamespace, 'USAGE')
                        AND NOT EXISTS (SELECT 1 FROM pg_catalog.pg_class c
                                         WHERE c.relnamespace = e.extnamespace
                                           AND c.relkind IN ('r', 'v')
                                           AND NOT pg_catalog.has_table_privilege(c.oid, 'SELECT'))
                   FROM pg_catalog.pg_extension e WHERE e.extname = 'pglogical'), true)
         AS pglogical_readable";

/// The same facts of the source, read once beside the probe.
async fn identity(ep: &Endpoint) -> Result<(String, String, String, bool, bool), String> {
    let client = ep.connect().await.map_err(|e| match e {
        // The address is already in the finding's message.
        crate::pg::PgError::Connect { message, .. } => message,
        other => other.to_string(),
    })?;
    let row = client
        .query_one(PROVIDER_IDENTITY_SQL, &[])
        .await
        .map_err(|e| ep.query_error("the provider's identity", &e).to_string())?;
    let get = |c: &str| {
        row.try_get::<_, Option<String>>(c)
            .map_err(|e| e.to_string())
    };
    Ok((
        get("database")?.unwrap_or_default(),
        get("started")?.unwrap_or_default(),
        get("role")?.unwrap_or_default(),
        row.try_get::<_, Option<bool>>("replicates")
            .map_err(|e| e.to_string())?
            .unwrap_or(false),
        row.try_get::<_, Option<bool>>("pglogical_readable")
            .map_err(|e| e.to_string())?
            .unwrap_or(true),
    ))
}

/// Tries `pglogical.provider_dsn` from pgmove's host, with the source's password (read-only:
/// one query of the catalogs). None when the plan has no provider_dsn (the source's DSN is
/// then what the inventory already reached).
pub async fn probe_provider(plan: &Plan, source: &Endpoint) -> Option<ProviderProbe> {
    let dsn = plan.pglogical.provider_dsn.as_deref()?;
    let secret = source.info.password.clone();
    // Without pgmove's PG* environment: the target server does not have it either.
    let provider = match Endpoint::from_dsn(Side::Source, dsn, secret.clone(), &|_| None) {
        Ok(ep) => ep,
        Err(e) => return Some(ProviderProbe::Failed(e.to_string())),
    };
    let redact = |s: String| crate::pg::redact(&s, secret.as_ref());
    let timeout = std::time::Duration::from_secs(15);
    let (p, s) = match tokio::time::timeout(timeout, async {
        tokio::join!(identity(&provider), identity(source))
    })
    .await
    {
        Ok(r) => r,
        Err(_) => {
            return Some(ProviderProbe::Failed(format!(
                "no answer within {} s",
                timeout.as_secs()
            )))
        }
    };
    Some(match (p, s) {
        (Err(e), _) => ProviderProbe::Failed(redact(e)),
        (Ok(p), Ok(s)) if p.0 != s.0 || p.1 != s.1 => ProviderProbe::Elsewhere(format!(
            "database {} of a server started at {} (the source is database {} of a server started at {})",
            p.0, p.1, s.0, s.1
        )),
        (Ok(p), _) if !p.3 => ProviderProbe::NoReplication(p.2),
        (Ok(p), _) if !p.4 => ProviderProbe::NoPglogicalAccess(p.2),
        (Ok(_), Err(e)) => ProviderProbe::Failed(redact(format!(
            "it answered, but source.dsn did not, so the two could not be compared: {e}"
        ))),
        (Ok(_), Ok(_)) => ProviderProbe::Reached,
    })
}

/// The provider DSN's findings: what the probe from pgmove's host found, and that the target
/// server's own connection is tried by apply before it creates anything (pgmove cannot open a
/// connection from the target server without writing there).
pub fn provider_findings(
    plan: &Plan,
    source: &Inventory,
    source_ep: &Endpoint,
    target_ep: &Endpoint,
    probe: Option<&ProviderProbe>,
) -> Vec<Finding> {
    let origin = provider_dsn_origin(plan);
    let shown = match &plan.pglogical.provider_dsn {
        Some(d) => Endpoint::from_dsn(Side::Source, d, None, &|_| None)
            .map(|e| e.display())
            .unwrap_or_else(|_| "(unparsable)".to_string()),
        None => source_ep.display(),
    };
    // pgmove cannot open a connection from the target server without writing there.
    let by_apply = "the target server's own connection cannot be tried without writing there: apply tries it when it creates the subscription (pglogical.create_subscription connects from the target server before it records anything) and stops there with pglogical's error";
    let mut out = vec![];
    match probe {
        Some(ProviderProbe::Failed(e)) => out.push(
            Finding::new(
                Severity::Warning,
                "provider-dsn",
                Some(Side::Source),
                format!("pgmove's host cannot connect to the source as {origin} gives it ({shown}): {e}. The target server may still reach it (NAT, VPC peering); {by_apply}"),
            )
            .object(origin)
            .fix("check the address, port and database in pglogical.provider_dsn, and that the source's pg_hba.conf admits the target server's address for this role, both for the database and for replication"),
        ),
        Some(ProviderProbe::Elsewhere(what)) => out.push(
            Finding::new(
                Severity::Blocker,
                "provider-dsn",
                Some(Side::Source),
                format!("{origin} ({shown}) reaches {what}: the subscription would replicate from another database than the one pgmove moves"),
            )
            .object(origin)
            .fix("make pglogical.provider_dsn name the source's own database and server, as the target server reaches them"),
        ),
        Some(ProviderProbe::NoPglogicalAccess(role)) => {
            let r = crate::pg::quote::ident(role);
            out.push(
                Finding::new(
                    Severity::Blocker,
                    "provider-dsn",
                    Some(Side::Source),
                    format!("{origin} ({shown}) connects as role {role}, which may not read pglogical's schema on the source (USAGE on it, SELECT on its tables): the subscription reads its table list there as that role and would go down (\"permission denied for view tables\")"),
                )
                .object(format!("role {role}"))
                .fix(format!(
                    "as {} on the source: GRANT USAGE ON SCHEMA \"pglogical\" TO {r}; GRANT SELECT ON ALL TABLES IN SCHEMA \"pglogical\" TO {r};",
                    admin(source)
                )),
            )
        }
        Some(ProviderProbe::NoReplication(role)) => out.push(
            Finding::new(
                Severity::Blocker,
                "provider-dsn",
                Some(Side::Source),
                format!("{origin} ({shown}) connects as role {role}, which has no REPLICATION right: the subscription's replication connection would be refused"),
            )
            .object(format!("role {role}"))
            .fix(if is_rds(source) {
                format!(
                    "as the master user on the source: GRANT rds_replication TO {};  -- or name a role that has it in provider_dsn",
                    crate::pg::quote::ident(role)
                )
            } else {
                format!(
                    "as {} on the source: ALTER ROLE {} WITH REPLICATION;  -- or name a role that has it in provider_dsn",
                    admin(source),
                    crate::pg::quote::ident(role)
                )
            }),
        ),
        Some(ProviderProbe::Reached) | None => {
            let local = source_ep.info.host().to_string();
            if probe.is_none()
                && is_local_host(&local)
                && !is_local_host(target_ep.info.host())
            {
                out.push(
                    Finding::new(
                        Severity::Blocker,
                        "provider-dsn",
                        Some(Side::Source),
                        format!("the subscription would reach the source as source.dsn gives it ({shown}), a host local to pgmove's machine, but it connects from the target server ({}), where that host is the target server itself", target_ep.display()),
                    )
                    .object("source.dsn")
                    .fix("set pglogical.provider_dsn to the address the target server reaches the source by, e.g. provider_dsn: host=<source address> port=5432 dbname=<db> user=<role>"),
                );
            } else {
                out.push(Finding::new(
                    Severity::Info,
                    "provider-dsn",
                    Some(Side::Source),
                    format!(
                        "the subscription connects from the target server ({}) to the source as {origin} gives it ({shown}), with the source's password; {}; {by_apply}",
                        target_ep.display(),
                        if probe.is_some() { "pgmove's host reaches it, as the same server and database" } else { "pgmove's host reaches it" }
                    ),
                ));
            }
        }
    }
    out
}

/// Tables without a primary key or replica-identity index, in pglogical's terms: which set
/// each goes to. `what` says how many and which; `objects` lists them.
pub fn tables_without_key(ctx: &Context, what: String, objects: String) -> Finding {
    use crate::plan::TablesWithoutKey as K;
    let (set, iset) = (ctx.plan.replication_set(), ctx.plan.insert_set());
    let choices = format!(
        "set cdc.tables_without_key to insert-only (they go to set {iset} only: their inserts and truncates replicate, and their updates and deletes keep working on the source but do not reach the target) or exclude (in neither set: pglogical does not synchronize or replicate them), or add a primary key: ALTER TABLE <table> ADD PRIMARY KEY (...)"
    );
    let (severity, message) = match ctx.plan.cdc.tables_without_key {
        K::Refuse => (
            Severity::Blocker,
            format!("{what}; pglogical refuses them in set {set}, which replicates updates and deletes, and cdc.tables_without_key is refuse"),
        ),
        K::ReplicaIdentityFull => (
            Severity::Blocker,
            format!("{what}; cdc.tables_without_key is replica-identity-full, but pglogical refuses a table without a primary key or replica-identity index in set {set} (updates and deletes) even with REPLICA IDENTITY FULL"),
        ),
        K::InsertOnly => (
            Severity::Warning,
            format!("{what}; they go to set {iset} only (cdc.tables_without_key: insert-only): pglogical synchronizes them and replicates their inserts and truncates; their updates and deletes still succeed on the source but do not reach the target"),
        ),
        K::Exclude => (
            Severity::Warning,
            format!("{what}; they are in neither {set} nor {iset} (cdc.tables_without_key: exclude): pglogical neither synchronizes nor replicates them; add them to objects.exclude to leave them out entirely"),
        ),
    };
    let f =
        Finding::new(severity, "tables-without-key", Some(Side::Source), message).object(objects);
    if severity == Severity::Blocker {
        f.fix(choices)
    } else {
        f
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::inspect::{AvailableExtension, Pglogical, Rights, ServerInfo, Settings};
    use crate::tools::ToolError;

    const PLAN: &str = "version: 1\nname: shop\nstrategy: pglogical\nsource:\n  dsn: postgres://a@h1/db\ntarget:\n  dsn: postgres://b@h2/db\n";

    /// A PostgreSQL 15 server with pglogical 2.4.2 preloaded and installable, room for it, a
    /// superuser: what these tests then take away.
    fn server(side: Side) -> Inventory {
        Inventory {
            side,
            endpoint: format!("postgres://m@{side}/db"),
            server: ServerInfo {
                version_num: 150_008,
                current_user: "migrator".to_string(),
                database: "db".to_string(),
                ..ServerInfo::default()
            },
            settings: Settings {
                wal_level: "logical".to_string(),
                max_replication_slots: 10,
                max_wal_senders: 10,
                max_worker_processes: 8,
                background_workers_used: Some(2),
                shared_preload_libraries: Some(vec!["pglogical".to_string()]),
                ..Settings::default()
            },
            rights: Rights {
                superuser: true,
                ..Rights::default()
            },
            platform: Platform::SelfManaged,
            platform_evidence: vec![],
            extensions: vec![],
            available_extensions: vec![AvailableExtension {
                name: "pglogical".to_string(),
                default_version: Some("2.4.2".to_string()),
                installed_version: None,
            }],
            schemas: vec![],
            tables: vec![],
            partitioning: Default::default(),
            sequences: vec![],
            large_objects: 0,
            replication_slots: vec![],
            long_transactions: vec![],
            wal_lsn: None,
            publications: vec![],
            subscriptions: vec![],
            pglogical: None,
            notes: vec![],
        }
    }

    fn run(check: fn(&Context) -> Vec<Finding>, s: &Inventory, t: &Inventory) -> Vec<Finding> {
        run_as(Some(Strategy::Pglogical), check, s, t)
    }

    fn run_as(
        strategy: Option<Strategy>,
        check: fn(&Context) -> Vec<Finding>,
        s: &Inventory,
        t: &Inventory,
    ) -> Vec<Finding> {
        let plan = crate::plan::parse(PLAN, "p.yaml").expect("plan");
        let missing = || ToolError::NotFound {
            name: "x".to_string(),
            looked: String::new(),
            want: 0,
        };
        check(&Context {
            plan: &plan,
            source: s,
            target: t,
            strategy,
            pg_dump: Err(missing()),
            pg_restore: Err(missing()),
            replication_probe: None,
        })
    }

    #[test]
    fn a_ready_pair_has_no_pglogical_finding() {
        let (s, t) = (server(Side::Source), server(Side::Target));
        for check in [
            pglogical_preload,
            pglogical_available,
            pglogical_versions,
            pglogical_capacity,
            pglogical_generated_columns,
        ] {
            assert!(run(check, &s, &t).is_empty());
        }
    }

    #[test]
    fn rds_and_aurora_fixes_name_the_parameter_group() {
        let mut s = server(Side::Source);
        s.platform = Platform::Rds;
        s.settings.shared_preload_libraries = Some(vec!["pg_stat_statements".to_string()]);
        let mut t = server(Side::Target);
        t.platform = Platform::Aurora;
        t.settings.shared_preload_libraries = Some(vec![]);
        let f = run(pglogical_preload, &s, &t);
        assert_eq!(f.len(), 2, "{f:#?}");
        let fix = |i: usize| f[i].fix.clone().unwrap_or_default();
        assert!(fix(0).starts_with("in the DB parameter group of the source: set shared_preload_libraries = 'pg_stat_statements,pglogical' and rds.logical_replication = 1, then reboot the source"), "{}", fix(0));
        assert!(
            fix(1).starts_with("in the DB cluster parameter group of the target"),
            "{}",
            fix(1)
        );
        assert!(f[1].message.contains("(empty)"), "{}", f[1].message);
    }

    #[test]
    fn hidden_settings_and_rights_are_named_with_their_grant() {
        let mut s = server(Side::Source);
        s.settings.shared_preload_libraries = None;
        s.settings.background_workers_used = None;
        s.pglogical = None;
        let f = run(pglogical_preload, &s, &server(Side::Target));
        assert_eq!(f.len(), 1, "{f:#?}");
        assert_eq!(f[0].severity, Severity::Blocker);
        assert_eq!(
            f[0].fix.as_deref(),
            Some("as a superuser: GRANT pg_read_all_settings TO \"migrator\";")
        );
        // Workers that cannot be counted: a warning with the grant, not a guess.
        let f = run(pglogical_capacity, &s, &server(Side::Target));
        assert_eq!(f.len(), 1, "{f:#?}");
        assert_eq!(f[0].severity, Severity::Warning);
        assert!(f[0].message.contains("pglogical needs 2 background worker(s) on the source (the supervisor, once preloaded, a manager for database db)"), "{}", f[0].message);
        assert!(f[0]
            .fix
            .as_deref()
            .unwrap_or("")
            .contains("GRANT pg_read_all_stats TO \"migrator\""));

        // Not a superuser, extension not installed: CREATE EXTENSION needs one.
        let mut t = server(Side::Target);
        t.rights.superuser = false;
        let f = run(pglogical_available, &server(Side::Source), &t);
        assert_eq!(f.len(), 1, "{f:#?}");
        assert_eq!(f[0].check, "pglogical-create-extension");
        assert_eq!(
            f[0].fix.as_deref(),
            Some("as a superuser, in database \"db\": CREATE EXTENSION pglogical;")
        );
        // Installed already: nothing to create.
        t.extensions.push(crate::inspect::Extension {
            name: "pglogical".to_string(),
            version: "2.4.2".to_string(),
            schema: "pglogical".to_string(),
            relocatable: false,
        });
        assert!(run(pglogical_available, &server(Side::Source), &t).is_empty());
    }

    #[test]
    fn on_rds_pglogical_must_be_in_rds_extensions() {
        let mut t = server(Side::Target);
        t.platform = Platform::Aurora;
        let listed = vec!["postgis".to_string(), "pglogical".to_string()];
        // Listed: no finding; no list (not RDS, or the setting does not exist): none.
        assert!(not_allowed(&t, Some(&listed)).is_none());
        assert!(not_allowed(&t, None).is_none());
        let f = not_allowed(&t, Some(&listed[..1])).expect("a blocker");
        assert_eq!(f.check, "pglogical-missing");
        assert_eq!(f.severity, Severity::Blocker);
        assert_eq!(f.side, Some(Side::Target));
        assert!(
            f.message
                .starts_with("pglogical is not in the target's rds.extensions (postgis)"),
            "{}",
            f.message
        );
        assert!(
            f.fix.as_deref().unwrap_or("").contains(
                "rds.allowed_extensions is set in the DB cluster parameter group of the target"
            ),
            "{:?}",
            f.fix
        );
        // Installed already (by the master user): nothing to create, nothing to allow.
        t.extensions.push(crate::inspect::Extension {
            name: "pglogical".to_string(),
            version: "2.4.2".to_string(),
            schema: "pglogical".to_string(),
            relocatable: false,
        });
        assert!(not_allowed(&t, Some(&listed[..1])).is_none());
        // Self-managed servers have no such list.
        assert!(not_allowed(&server(Side::Source), Some(&[])).is_none());
    }

    #[test]
    fn a_pglogical_another_role_installed_needs_its_grants() {
        let mut s = server(Side::Source);
        s.platform = Platform::Rds;
        s.rights.superuser = false;
        let full = Access {
            schema: "pglogical".to_string(),
            usage: true,
            unreadable: vec![],
        };
        assert!(access_findings(&s, None).is_empty());
        assert!(access_findings(&s, Some(&full)).is_empty());
        let none = Access {
            usage: false,
            unreadable: vec!["node".to_string(), "tables".to_string()],
            ..full.clone()
        };
        let f = access_findings(&s, Some(&none));
        assert_eq!(f.len(), 1, "{f:#?}");
        assert_eq!(f[0].severity, Severity::Blocker);
        assert_eq!(f[0].check, "pglogical-access");
        assert!(
            f[0].message.starts_with("role migrator on the source lacks USAGE on schema pglogical and SELECT on 2 of its tables (node, tables)"),
            "{}",
            f[0].message
        );
        assert!(f[0].message.contains("provider DSN"), "{}", f[0].message);
        assert_eq!(
            f[0].fix.as_deref(),
            Some("as the master user (or the extension's owner), in database \"db\": GRANT USAGE ON SCHEMA \"pglogical\" TO \"migrator\"; GRANT SELECT ON ALL TABLES IN SCHEMA \"pglogical\" TO \"migrator\";")
        );
        // A superuser needs no grant.
        s.rights.superuser = true;
        assert!(access_findings(&s, Some(&none)).is_empty());
    }

    #[test]
    fn the_targets_role_must_set_up_origins_and_the_replication_role() {
        let mut t = server(Side::Target);
        t.rights.superuser = false;
        t.rights.set_replication_role = true;
        assert!(subscriber_findings(&t, true).is_empty());
        // The source's role does not write through the subscriber node.
        assert!(subscriber_findings(&server(Side::Source), false).is_empty());
        let f = subscriber_findings(&t, false);
        assert_eq!(f.len(), 1, "{f:#?}");
        assert_eq!(f[0].check, "pglogical-subscriber-rights");
        assert!(
            f[0].message.starts_with(
                "role migrator may not call pg_replication_origin_session_setup on the target"
            ),
            "{}",
            f[0].message
        );
        assert_eq!(f[0].fix.as_deref(), Some("as a superuser: GRANT EXECUTE ON FUNCTION pg_catalog.pg_replication_origin_session_setup(text), pg_catalog.pg_replication_origin_session_reset() TO \"migrator\";"));
        t.rights.set_replication_role = false;
        let f = subscriber_findings(&t, false);
        assert!(
            f[0].message.contains(
                "call pg_replication_origin_session_setup nor SET session_replication_role"
            ),
            "{}",
            f[0].message
        );
        assert!(f[0]
            .fix
            .as_deref()
            .unwrap_or("")
            .ends_with(" GRANT SET ON PARAMETER session_replication_role TO \"migrator\";"));
        t.platform = Platform::Aurora;
        let f = subscriber_findings(&t, true);
        assert_eq!(f[0].fix.as_deref(), Some("connect to the target as the master user, or as the master user: GRANT rds_superuser TO \"migrator\";  -- RDS/Aurora let rds_superuser do both"));
        t.rights.superuser = true;
        assert!(subscriber_findings(&t, false).is_empty());
    }

    #[test]
    fn another_major_is_a_blocker_on_the_older_side() {
        let mut t = server(Side::Target);
        t.available_extensions[0].default_version = Some("1.2.2".to_string());
        let f = run(pglogical_versions, &server(Side::Source), &t);
        assert_eq!(f.len(), 1, "{f:#?}");
        assert_eq!(f[0].side, Some(Side::Target));
        assert!(f[0]
            .message
            .contains("pglogical 2.4.2 on the source and 1.2.2 on the target"));
        assert!(f[0]
            .fix
            .as_deref()
            .unwrap_or("")
            .contains("install pglogical 2.x on the target"));
        // Another minor is fine.
        t.available_extensions[0].default_version = Some("2.3.4".to_string());
        assert!(run(pglogical_versions, &server(Side::Source), &t).is_empty());
    }

    #[test]
    fn a_rerun_counts_its_own_subscription_as_running() {
        let mut s = server(Side::Source);
        s.settings.max_replication_slots = 3;
        s.settings.replication_slots_used = 2;
        s.settings.max_wal_senders = 3;
        s.settings.wal_senders_used = 2;
        let mut t = server(Side::Target);
        t.settings.max_worker_processes = 4;
        t.settings.background_workers_used = Some(3);
        // First run: 1 free of each, 2 needed on the source, 3 workers on the target.
        let f = run(pglogical_capacity, &s, &t);
        let checks: Vec<&str> = f.iter().map(|x| x.check).collect();
        assert_eq!(
            checks,
            [
                "pglogical-workers",
                "pglogical-slots",
                "pglogical-wal-senders"
            ],
            "{f:#?}"
        );
        assert!(
            f[0].message.contains("pglogical needs 3 on the target"),
            "{}",
            f[0].message
        );
        assert!(
            f[0].fix
                .as_deref()
                .unwrap_or("")
                .contains("max_worker_processes = '"),
            "{:?}",
            f[0].fix
        );
        // On Aurora the fix is in the DB cluster parameter group, on RDS in the DB one.
        let mut aurora = t.clone();
        aurora.platform = Platform::Aurora;
        let f = run(pglogical_capacity, &s, &aurora);
        let fix = f[0].fix.as_deref().unwrap_or("");
        assert!(
            fix.contains("set max_worker_processes = 8 in the target's DB cluster parameter group, then reboot the writer instance"),
            "{fix}"
        );
        let mut rds = t.clone();
        rds.platform = Platform::Rds;
        let f = run(pglogical_capacity, &s, &rds);
        assert!(
            f[0].fix
                .as_deref()
                .unwrap_or("")
                .contains("in the target's DB parameter group, then reboot the instance"),
            "{:?}",
            f[0].fix
        );
        // A rerun: its nodes and subscription exist, their workers and slot are in use.
        s.pglogical = Some(Pglogical {
            version: "2.4.2".to_string(),
            schema: "pglogical".to_string(),
            node: Some("pgmove_shop_provider".to_string()),
            replication_sets: vec![],
            subscriptions: vec![],
        });
        t.pglogical = Some(Pglogical {
            node: Some("pgmove_shop_subscriber".to_string()),
            subscriptions: vec!["pgmove_shop".to_string()],
            ..s.pglogical.clone().expect("set above")
        });
        assert!(run(pglogical_capacity, &s, &t).is_empty());
    }

    /// A logged table `public.<name>` with a primary key (or none) and columns `id` and
    /// `generated` (names of stored generated columns).
    fn table_with(name: &str, key: bool, generated: &[&str]) -> crate::inspect::Table {
        use crate::inspect::{Column, ColumnFlags, TableKind};
        let col = |name: &str, position: i16, generated: bool| Column {
            name: name.to_string(),
            position,
            type_name: "text".to_string(),
            type_oid: 25,
            base_type: "text".to_string(),
            not_null: false,
            default: generated.then(|| "lower(id)".to_string()),
            generated,
            identity: None,
            flags: ColumnFlags::default(),
        };
        let mut columns = vec![col("id", 1, false)];
        columns.extend((2..).zip(generated).map(|(i, g)| col(g, i, true)));
        crate::inspect::Table {
            schema: "public".into(),
            name: name.into(),
            kind: TableKind::Plain,
            primary_key: if key { vec!["id".into()] } else { Vec::new() },
            columns,
            ..crate::inspect::Table::default()
        }
    }

    #[test]
    fn generated_columns_block_with_each_table_and_column() {
        let mut s = server(Side::Source);
        s.tables = vec![
            table_with("people", true, &["name_lc", "Upper Name"]),
            table_with("plain", true, &[]),
            crate::inspect::Table {
                unlogged: true,
                ..table_with("scratch", true, &["g"])
            },
            table_with("keyless", false, &["k"]),
        ];
        let t = server(Side::Target);
        let f = run(pglogical_generated_columns, &s, &t);
        assert_eq!(f.len(), 1, "{f:#?}");
        assert_eq!(f[0].severity, Severity::Blocker);
        assert_eq!(f[0].check, "pglogical-generated-columns");
        assert_eq!(f[0].side, Some(Side::Source));
        // Unlogged tables are copied by pgmove without them, not by pglogical.
        assert!(
            f[0].message.starts_with("3 stored generated column(s) in tables pglogical would copy and replicate: public.people.name_lc, public.people.Upper Name, public.keyless.k;"),
            "{}",
            f[0].message
        );
        assert!(f[0].message.contains("issue #335"), "{}", f[0].message);
        let fix = f[0].fix.clone().unwrap_or_default();
        assert!(
            fix.starts_with("use strategy copy-cdc or dump-restore"),
            "{fix}"
        );
        assert!(
            fix.contains(
                "ALTER TABLE \"public\".\"people\" ALTER COLUMN \"Upper Name\" DROP EXPRESSION;"
            ),
            "{fix}"
        );
        // A keyless table left out of both sets by cdc.tables_without_key: exclude is not
        // pglogical's to copy.
        let plan = crate::plan::parse(
            &format!("{PLAN}cdc:\n  tables_without_key: exclude\n"),
            "p.yaml",
        )
        .expect("plan");
        let cols: Vec<String> = generated_columns(&plan, &s)
            .iter()
            .map(|(t, c)| format!("{}.{c}", t.name))
            .collect();
        assert_eq!(cols, ["people.name_lc", "people.Upper Name"]);
        // Another strategy computes them on the target: not this check's business.
        for other in [Strategy::CopyCdc, Strategy::DumpRestore] {
            assert!(run_as(Some(other), pglogical_generated_columns, &s, &t).is_empty());
        }
        // None: no finding.
        s.tables.truncate(1);
        s.tables[0].columns.truncate(1);
        assert!(run(pglogical_generated_columns, &s, &t).is_empty());
    }

    fn ep(side: Side, dsn: &str) -> Endpoint {
        Endpoint::from_dsn(
            side,
            dsn,
            Some(crate::pg::Secret::new("s3cret".to_string())),
            &|_| None,
        )
        .expect("dsn")
    }

    #[test]
    fn the_provider_dsn_findings_say_what_pgmove_could_try() {
        let plan = crate::plan::parse(PLAN, "p.yaml").expect("plan");
        let s = server(Side::Source);
        let remote_src = ep(Side::Source, "host=db1.internal dbname=db user=m");
        let remote_dst = ep(Side::Target, "host=db2.internal dbname=db user=m");
        // The source's DSN, reachable from pgmove: a note saying where the target's try is.
        let f = provider_findings(&plan, &s, &remote_src, &remote_dst, None);
        assert_eq!(f.len(), 1, "{f:#?}");
        assert_eq!(f[0].severity, Severity::Info);
        assert!(
            f[0].message.contains("as source.dsn gives it"),
            "{}",
            f[0].message
        );
        assert!(f[0]
            .message
            .contains("apply tries it when it creates the subscription"));
        // A source DSN local to pgmove's host, and a target elsewhere: the target server would
        // reach itself.
        for local in [
            "host=/var/run/postgresql dbname=db",
            "host=localhost dbname=db",
            "host=127.0.0.1 dbname=db",
        ] {
            let f = provider_findings(&plan, &s, &ep(Side::Source, local), &remote_dst, None);
            assert_eq!(f[0].severity, Severity::Blocker, "{local}: {f:#?}");
            assert!(f[0]
                .fix
                .as_deref()
                .unwrap_or("")
                .contains("set pglogical.provider_dsn"));
        }
        // Both on one machine (as in tests): no blocker.
        let f = provider_findings(
            &plan,
            &s,
            &ep(Side::Source, "host=127.0.0.1 port=5432 dbname=db"),
            &ep(Side::Target, "host=localhost port=5433 dbname=db"),
            None,
        );
        assert_eq!(f[0].severity, Severity::Info, "{f:#?}");

        let with_dsn = crate::plan::parse(
            &format!("{PLAN}pglogical:\n  provider_dsn: host=10.0.0.5 dbname=db user=rep\n"),
            "p.yaml",
        )
        .expect("plan");
        let f = provider_findings(
            &with_dsn,
            &s,
            &remote_src,
            &remote_dst,
            Some(&ProviderProbe::Failed("timeout".to_string())),
        );
        assert_eq!(f[0].severity, Severity::Warning, "{f:#?}");
        assert!(f[0].message.contains("pgmove's host cannot connect to the source as pglogical.provider_dsn gives it (postgres://rep@10.0.0.5:5432/db"), "{}", f[0].message);
        assert!(f[0].message.contains(": timeout."), "{}", f[0].message);
        let f = provider_findings(
            &with_dsn,
            &s,
            &remote_src,
            &remote_dst,
            Some(&ProviderProbe::NoReplication("rep".to_string())),
        );
        assert_eq!(f[0].severity, Severity::Blocker);
        assert_eq!(f[0].fix.as_deref(), Some("as a superuser on the source: ALTER ROLE \"rep\" WITH REPLICATION;  -- or name a role that has it in provider_dsn"));
        // A role that may not read pglogical's schema there: the grants.
        let f = provider_findings(
            &with_dsn,
            &s,
            &remote_src,
            &remote_dst,
            Some(&ProviderProbe::NoPglogicalAccess("rep".to_string())),
        );
        assert_eq!(f[0].severity, Severity::Blocker);
        assert_eq!(f[0].fix.as_deref(), Some("as a superuser on the source: GRANT USAGE ON SCHEMA \"pglogical\" TO \"rep\"; GRANT SELECT ON ALL TABLES IN SCHEMA \"pglogical\" TO \"rep\";"));
        // On RDS/Aurora the right comes from rds_replication, which the master user grants.
        let mut rds = s.clone();
        rds.platform = Platform::Rds;
        let f = provider_findings(
            &with_dsn,
            &rds,
            &remote_src,
            &remote_dst,
            Some(&ProviderProbe::NoReplication("rep".to_string())),
        );
        assert_eq!(f[0].fix.as_deref(), Some("as the master user on the source: GRANT rds_replication TO \"rep\";  -- or name a role that has it in provider_dsn"));
        let f = provider_findings(
            &with_dsn,
            &s,
            &remote_src,
            &remote_dst,
            Some(&ProviderProbe::Reached),
        );
        assert_eq!(f[0].severity, Severity::Info);
        assert!(f[0].message.contains("as the same server and database"));
        // The password is never shown.
        for probe in [
            None,
            Some(ProviderProbe::Reached),
            Some(ProviderProbe::Failed("x".to_string())),
        ] {
            for f in provider_findings(&with_dsn, &s, &remote_src, &remote_dst, probe.as_ref()) {
                assert!(!format!("{f:?}").contains("s3cret"), "{f:?}");
            }
        }
    }
}
