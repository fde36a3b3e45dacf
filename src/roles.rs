//! `roles: create`: before the schema restore, the roles the moved objects need are created on
//! the target (owners and grantees of the moved schemas' objects, default privileges and large
//! objects; every role that is a member of one of them, directly or through other roles; and
//! the roles any of those is a direct member of), when they exist on the source and not on the
//! target.
//!
//! What is carried, read from the source's catalogs (all readable by any role, as
//! `pg_dumpall --roles-only --no-role-passwords` reads them; pgmove reads them itself rather
//! than run and parse pg_dumpall, to create only the roles the moved objects need, leave out
//! per role what the target refuses and skip the managed services' roles): the attributes
//! (`pg_roles`: LOGIN, INHERIT, CREATEROLE, CREATEDB, CONNECTION LIMIT, VALID UNTIL, and
//! SUPERUSER, REPLICATION, BYPASSRLS where the connecting role may give them), the role's
//! comment, its settings (`ALTER ROLE ... SET`, and `... IN DATABASE` for the moved database:
//! `roles::config`) and its memberships (`GRANT role TO member`, in roles created by pgmove or that
//! the target has, such as `pg_read_all_data`). Passwords are never carried (pg_roles hides
//! them): the report names the roles that can log in, whose password must be set. Security
//! labels are not carried.
//!
//! What the connecting role may not give (`roles::rights`: on PostgreSQL 15 a CREATEROLE role, such
//! as the RDS/Aurora master user, gives neither SUPERUSER, REPLICATION nor BYPASSRLS, and grants
//! membership in no superuser role) is left out and reported by role, with the fix (on
//! RDS/Aurora the service's equivalent, e.g. `GRANT rds_replication`). Roles of the managed
//! services themselves (`pg_*`, `rds_*`, `rdsadmin`, `rdsrepladmin`, ...) are never created
//! and are reported as skipped when the source has them (a source that is itself RDS).
//!
//! Roles are cluster-wide and end up owning the user's data: each one created is recorded in
//! the target's `pgmove.created_roles` (in the transaction that creates it, with its comment)
//! and in the report, and `pgmove cleanup` never drops them. A role already on the target that
//! pgmove did not create is left alone, not altered. On a rerun nothing is created; the source
//! memberships and settings of the roles pgmove created that the target lacks are tried again,
//! and the report says the same as the first run about what the target refused.

mod config;
mod report;
mod rights;

use std::collections::{BTreeMap, BTreeSet};

use tokio_postgres::Client;

use crate::pg::{quote, Endpoint, PgError};
use crate::state;

pub use config::Setting;
pub use report::{LeftOut, NotDone, Report, Skipped};
pub use rights::Giver;

/// Names of the managed services' own roles that `roles: create` never creates: the prefixes
/// (`pg_` is reserved by PostgreSQL, `rds_` by RDS/Aurora) and whole names.
const SERVICE_PREFIXES: [&str; 2] = ["pg_", "rds_"];
const SERVICE_NAMES: [&str; 4] = [
    "rdsadmin",
    "rdsrepladmin",
    "rdstopmgr",
    "rdswriteforwarduser",
];

/// Whether `name` is one of the managed services' own roles (never created).
pub fn is_service_role(name: &str) -> bool {
    SERVICE_PREFIXES.iter().any(|p| name.starts_with(p)) || SERVICE_NAMES.contains(&name)
}

/// The `LIKE` patterns of [`is_service_role`], for [`NEEDED_SQL`].
fn service_patterns() -> Vec<String> {
    let esc = |s: &str| {
        s.replace('\\', "\\\\")
            .replace('_', "\\_")
            .replace('%', "\\%")
    };
    SERVICE_PREFIXES
        .iter()
        .map(|p| format!("{}%", esc(p)))
        .chain(SERVICE_NAMES.iter().map(|n| esc(n)))
        .collect()
}

/// The roles the moved objects need on the source, with their attributes: name, superuser,
/// inherit, createrole, createdb, login, replication, bypassrls, connection limit, valid until
/// (text or NULL), comment (or NULL). `$1`: the plan's schemas (empty: every schema but the
/// system ones and `pgmove`); `$2`: whether large objects move; `$3`: the `LIKE` patterns of
/// the managed services' roles, whose members are not followed. Owners and ACL
/// grantees/grantors of schemas, relations, columns, functions, types, collations, operators,
/// operator classes and families, conversions, text search configurations and dictionaries,
/// extended statistics, event triggers, default privileges and large objects; then their
/// members, recursively, and the direct parents of all those. Built-in roles (oid below 16384:
/// the bootstrap superuser, `pg_*`) are left out.
const NEEDED_SQL: &str = "
WITH RECURSIVE nsp AS (
  SELECT oid FROM pg_catalog.pg_namespace
   WHERE nspname NOT IN ('information_schema', 'pgmove') AND nspname NOT LIKE 'pg\\_%'
     AND (cardinality($1::text[]) = 0 OR nspname = ANY($1::text[]))
), owned (r, acl) AS (
  SELECT nspowner, nspacl FROM pg_catalog.pg_namespace WHERE oid IN (SELECT oid FROM nsp)
  UNION ALL SELECT relowner, relacl FROM pg_catalog.pg_class WHERE relnamespace IN (SELECT oid FROM nsp)
  UNION ALL SELECT c.relowner, a.attacl FROM pg_catalog.pg_attribute a
      JOIN pg_catalog.pg_class c ON c.oid = a.attrelid
     WHERE c.relnamespace IN (SELECT oid FROM nsp) AND a.attacl IS NOT NULL
  UNION ALL SELECT proowner, proacl FROM pg_catalog.pg_proc WHERE pronamespace IN (SELECT oid FROM nsp)
  UNION ALL SELECT typowner, typacl FROM pg_catalog.pg_type WHERE typnamespace IN (SELECT oid FROM nsp)
  UNION ALL SELECT collowner, NULL FROM pg_catalog.pg_collation WHERE collnamespace IN (SELECT oid FROM nsp)
  UNION ALL SELECT oprowner, NULL FROM pg_catalog.pg_operator WHERE oprnamespace IN (SELECT oid FROM nsp)
  UNION ALL SELECT opcowner, NULL FROM pg_catalog.pg_opclass WHERE opcnamespace IN (SELECT oid FROM nsp)
  UNION ALL SELECT opfowner, NULL FROM pg_catalog.pg_opfamily WHERE opfnamespace IN (SELECT oid FROM nsp)
  UNION ALL SELECT conowner, NULL FROM pg_catalog.pg_conversion WHERE connamespace IN (SELECT oid FROM nsp)
  UNION ALL SELECT cfgowner, NULL FROM pg_catalog.pg_ts_config WHERE cfgnamespace IN (SELECT oid FROM nsp)
  UNION ALL SELECT dictowner, NULL FROM pg_catalog.pg_ts_dict WHERE dictnamespace IN (SELECT oid FROM nsp)
  UNION ALL SELECT stxowner, NULL FROM pg_catalog.pg_statistic_ext WHERE stxnamespace IN (SELECT oid FROM nsp)
  UNION ALL SELECT evtowner, NULL FROM pg_catalog.pg_event_trigger WHERE evtname NOT LIKE 'pgmove\\_%'
  UNION ALL SELECT defaclrole, defaclacl FROM pg_catalog.pg_default_acl
     WHERE defaclnamespace = 0 OR defaclnamespace IN (SELECT oid FROM nsp)
  UNION ALL SELECT lomowner, lomacl FROM pg_catalog.pg_largeobject_metadata WHERE $2::bool
), ids AS (
  SELECT r AS id FROM owned
  UNION SELECT (pg_catalog.aclexplode(acl)).grantee FROM owned WHERE acl IS NOT NULL
  UNION SELECT (pg_catalog.aclexplode(acl)).grantor FROM owned WHERE acl IS NOT NULL
), needed AS (
  SELECT id FROM ids WHERE id >= 16384
), down (id) AS (
  SELECT id FROM needed
  UNION SELECT m.member FROM pg_catalog.pg_auth_members m
     JOIN down d ON m.roleid = d.id
     JOIN pg_catalog.pg_roles p ON p.oid = d.id
    WHERE NOT (p.rolname::text LIKE ANY($3::text[]))
), related AS (
  SELECT id FROM down
  UNION SELECT m.roleid FROM pg_catalog.pg_auth_members m WHERE m.member IN (SELECT id FROM down)
)
SELECT r.rolname::text, r.rolsuper, r.rolinherit, r.rolcreaterole, r.rolcreatedb, r.rolcanlogin,
       r.rolreplication, r.rolbypassrls, r.rolconnlimit, r.rolvaliduntil::text,
       pg_catalog.shobj_description(r.oid, 'pg_authid')
  FROM pg_catalog.pg_roles r
 WHERE r.oid IN (SELECT id FROM related) AND r.oid >= 16384
 ORDER BY 1";

/// Memberships on a server with a role named `$1` on either side: role, member, admin option.
/// The other side may be any role (built-in ones such as `pg_read_all_data` included).
const MEMBERSHIPS_SQL: &str = "SELECT r.rolname::text, m.rolname::text, a.admin_option
  FROM pg_catalog.pg_auth_members a
  JOIN pg_catalog.pg_roles r ON r.oid = a.roleid
  JOIN pg_catalog.pg_roles m ON m.oid = a.member
 WHERE r.rolname = ANY($1::text[]) OR m.rolname = ANY($1::text[])
 ORDER BY 1, 2";

/// The target's roles named `$1`: name, superuser, createdb, replication, bypassrls, and
/// whether the connecting role has ADMIN OPTION on it (directly or through a role).
const TARGET_ROLES_SQL: &str = "SELECT rolname::text, rolsuper, rolcreatedb, rolreplication, \
     rolbypassrls, pg_catalog.pg_has_role(current_user, oid, 'MEMBER WITH ADMIN OPTION') \
     FROM pg_catalog.pg_roles WHERE rolname = ANY($1::text[])";

/// A source role and its attributes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Role {
    pub name: String,
    pub superuser: bool,
    pub inherit: bool,
    pub createrole: bool,
    pub createdb: bool,
    pub login: bool,
    pub replication: bool,
    pub bypassrls: bool,
    pub connlimit: i32,
    pub valid_until: Option<String>,
    pub comment: Option<String>,
}

impl Role {
    /// Whether the role has `attr` (one of [`rights::REFUSABLE`]).
    fn has(&self, attr: &str) -> bool {
        has_attr(
            attr,
            [
                self.superuser,
                self.createdb,
                self.replication,
                self.bypassrls,
            ],
        )
    }
}

/// Whether a role whose SUPERUSER, CREATEDB, REPLICATION and BYPASSRLS are `flags` (in that
/// order) has `attr` (one of [`rights::REFUSABLE`]); the source's and the target's roles alike.
fn has_attr(attr: &str, [superuser, createdb, replication, bypassrls]: [bool; 4]) -> bool {
    match attr {
        "SUPERUSER" => superuser,
        "CREATEDB" => createdb,
        "REPLICATION" => replication,
        "BYPASSRLS" => bypassrls,
        _ => false,
    }
}

/// A role as the target has it: what `roles: create` needs to know to report and grant.
#[derive(Clone, Debug, PartialEq, Eq)]
struct TargetRole {
    superuser: bool,
    createdb: bool,
    replication: bool,
    bypassrls: bool,
    /// The connecting role has ADMIN OPTION on it.
    admin: bool,
}

impl TargetRole {
    fn has(&self, attr: &str) -> bool {
        has_attr(
            attr,
            [
                self.superuser,
                self.createdb,
                self.replication,
                self.bypassrls,
            ],
        )
    }
}

/// The `CREATE ROLE` statement for `r` as `giver` creates it, and the attributes left out
/// (those `giver` may not give).
pub fn create_sql(r: &Role, giver: &Giver) -> (String, Vec<&'static str>) {
    let mut left_out = Vec::new();
    let mut attr = |on: bool, yes: &'static str, no: &'static str| {
        if on && !giver.may_give(yes) {
            left_out.push(yes);
            no
        } else if on {
            yes
        } else {
            no
        }
    };
    let attrs = [
        attr(r.superuser, "SUPERUSER", "NOSUPERUSER"),
        attr(r.inherit, "INHERIT", "NOINHERIT"),
        attr(r.createrole, "CREATEROLE", "NOCREATEROLE"),
        attr(r.createdb, "CREATEDB", "NOCREATEDB"),
        attr(r.login, "LOGIN", "NOLOGIN"),
        attr(r.replication, "REPLICATION", "NOREPLICATION"),
        attr(r.bypassrls, "BYPASSRLS", "NOBYPASSRLS"),
    ];
    let mut sql = format!(
        "CREATE ROLE {} WITH {} CONNECTION LIMIT {}",
        quote::ident(&r.name),
        attrs.join(" "),
        r.connlimit
    );
    if let Some(v) = &r.valid_until {
        sql.push_str(&format!(" VALID UNTIL {}", quote::literal(v)));
    }
    (sql, left_out)
}

/// `COMMENT ON ROLE` for a role's comment (no semicolon).
fn comment_sql(role: &str, comment: &str) -> String {
    format!(
        "COMMENT ON ROLE {} IS {}",
        quote::ident(role),
        quote::literal(comment)
    )
}

/// What `roles: create` finds before creating anything: the roles the moved objects need (from
/// the source) with their memberships and settings, and what the target has of them.
struct Survey {
    roles: Vec<Role>,
    /// The source's memberships with a needed role on either side: role, member, admin.
    memberships: Vec<(String, String, bool)>,
    /// The source's settings of the needed roles.
    settings: Vec<Setting>,
    /// The target's roles among those named by `roles` and `memberships`.
    on_target: BTreeMap<String, TargetRole>,
    /// The connecting role on the target.
    giver: Giver,
}

impl Survey {
    /// Reads the source's needed roles ([`NEEDED_SQL`]), their memberships and settings, and,
    /// over `t` (a connection to `target`), which of them and of the roles in those
    /// memberships exist there, and who is connected.
    async fn read(
        source: &Endpoint,
        target: &Endpoint,
        t: &Client,
        schemas: &[String],
        large_objects: bool,
        managed: bool,
    ) -> Result<Survey, PgError> {
        let s = source.connect().await?;
        let roles: Vec<Role> = s
            .query(NEEDED_SQL, &[&schemas, &large_objects, &service_patterns()])
            .await
            .map_err(|e| source.query_error("reading the roles the moved objects need", &e))?
            .iter()
            .map(|r| Role {
                name: r.get(0),
                superuser: r.get(1),
                inherit: r.get(2),
                createrole: r.get(3),
                createdb: r.get(4),
                login: r.get(5),
                replication: r.get(6),
                bypassrls: r.get(7),
                connlimit: r.get(8),
                valid_until: r.get(9),
                comment: r.get(10),
            })
            .collect();
        let names: Vec<String> = roles.iter().map(|r| r.name.clone()).collect();
        let memberships: Vec<(String, String, bool)> = s
            .query(MEMBERSHIPS_SQL, &[&names])
            .await
            .map_err(|e| source.query_error("reading role memberships", &e))?
            .iter()
            .map(|r| (r.get(0), r.get(1), r.get(2)))
            .collect();
        let creatable: Vec<String> = names
            .iter()
            .filter(|n| !is_service_role(n))
            .cloned()
            .collect();
        let settings = read_settings(source, &s, &creatable).await?;
        let me = t
            .query_one(rights::ME_SQL, &[])
            .await
            .map_err(|e| target.query_error("reading the target role's rights", &e))?;
        let giver = Giver {
            name: me.get(0),
            superuser: me.get(1),
            createrole: me.get(2),
            createdb: me.get(3),
            replication: me.get(4),
            bypassrls: me.get(5),
            version_num: me.get(6),
            database: me.get(7),
            managed,
        };
        let mut sv = Survey {
            roles,
            memberships,
            settings,
            on_target: BTreeMap::new(),
            giver,
        };
        sv.read_target(target, t).await?;
        Ok(sv)
    }

    /// Every role name the survey knows: the needed roles and both sides of their memberships.
    fn all_names(&self) -> Vec<String> {
        let mut all: BTreeSet<String> = self.roles.iter().map(|r| r.name.clone()).collect();
        for (r, m, _) in &self.memberships {
            all.insert(r.clone());
            all.insert(m.clone());
        }
        all.into_iter().collect()
    }

    /// (Re)reads which of [`Survey::all_names`] the target has ([`TARGET_ROLES_SQL`]).
    async fn read_target(&mut self, target: &Endpoint, t: &Client) -> Result<(), PgError> {
        self.on_target = t
            .query(TARGET_ROLES_SQL, &[&self.all_names()])
            .await
            .map_err(|e| target.query_error("listing the target's roles", &e))?
            .iter()
            .map(|r| {
                (
                    r.get(0),
                    TargetRole {
                        superuser: r.get(1),
                        createdb: r.get(2),
                        replication: r.get(3),
                        bypassrls: r.get(4),
                        admin: r.get(5),
                    },
                )
            })
            .collect();
        Ok(())
    }

    /// The needed roles the target lacks that pgmove may create: the ones to create.
    fn missing(&self) -> impl Iterator<Item = &Role> {
        self.roles
            .iter()
            .filter(|r| !is_service_role(&r.name) && !self.on_target.contains_key(&r.name))
    }

    /// The needed roles pgmove never creates, with why.
    fn skipped(&self) -> Vec<Skipped> {
        self.roles
            .iter()
            .filter(|r| is_service_role(&r.name))
            .map(|r| Skipped {
                role: r.name.clone(),
                reason: report::skip_reason(self.on_target.contains_key(&r.name)),
            })
            .collect()
    }

    /// For a role created by a connecting role that is not a superuser: the `GRANT` that makes
    /// the connecting role its member, so that `owner: keep` may give it objects (ALTER ...
    /// OWNER TO needs that membership). `None` when no grant is needed.
    fn join_sql(&self, r: &Role) -> Option<String> {
        (!self.giver.superuser).then(|| {
            format!(
                "GRANT {} TO {};",
                quote::ident(&r.name),
                quote::ident(&self.giver.name)
            )
        })
    }

    /// The attributes the source gives role `r` that the target role lacks and the connecting
    /// role may not give: what `roles: create` left out.
    fn left_out(&self, r: &Role) -> Option<LeftOut> {
        let t = self.on_target.get(&r.name)?;
        let attrs: Vec<&'static str> = rights::REFUSABLE
            .into_iter()
            .filter(|a| r.has(a) && !t.has(a) && !self.giver.may_give(a))
            .collect();
        (!attrs.is_empty()).then(|| LeftOut {
            role: r.name.clone(),
            fix: self.giver.fix_left_out(&r.name, &attrs),
            attributes: attrs,
        })
    }

    /// For a source membership (`role`, `member`) with one side created by pgmove and absent
    /// from the target: why it cannot be granted, `None` when the connecting role may grant
    /// it. `will_exist`: roles about to be created (dry run).
    fn refusal(&self, role: &str, member: &str, will_exist: &BTreeSet<String>) -> Option<String> {
        for r in [role, member] {
            if !self.on_target.contains_key(r) && !will_exist.contains(r) {
                return Some(if is_service_role(r) {
                    format!(
                        "role {r} is not on the target (named as a managed service's own role: skipped)"
                    )
                } else {
                    format!("role {r} is not on the target")
                });
            }
        }
        match self.on_target.get(role) {
            Some(t) => self.giver.may_not_grant(role, t.superuser, t.admin),
            // Created by this run: not a superuser unless the giver is one, and its creator
            // has ADMIN OPTION on it from PostgreSQL 16 on.
            None => None,
        }
    }
}

/// The settings of the roles `names` on the server `c` is connected to ([`config::SETTINGS_SQL`]).
async fn read_settings(
    ep: &Endpoint,
    c: &Client,
    names: &[String],
) -> Result<Vec<Setting>, PgError> {
    Ok(c.query(config::SETTINGS_SQL, &[&names])
        .await
        .map_err(|e| ep.query_error("reading role settings", &e))?
        .iter()
        .filter_map(|r| {
            let entry: String = r.get(2);
            Setting::parse(r.get(0), r.get(1), &entry)
        })
        .collect())
}

/// `roles: create` for `plan`, before its strategy runs: opens the plan's state on the target
/// (creating the `pgmove` schema if needed), creates the roles, and lets go of the plan's
/// lock again for the strategy. `managed`: the target is RDS or Aurora (fixes name the master
/// user and the service's equivalents).
pub async fn run(
    plan: &crate::plan::Plan,
    source: &Endpoint,
    target: &Endpoint,
    managed: bool,
) -> Result<Report, PgError> {
    let st = state::State::open(target, &plan.name).await?;
    let report = create(
        source,
        &st,
        &plan.objects.schemas,
        plan.objects.large_objects,
        managed,
    )
    .await;
    st.release_lock().await?;
    report
}

/// What `roles: create` would run on the target for `plan` (for `apply --dry-run`): a comment
/// line, then per missing role its `CREATE ROLE` (and the migrating role's `GRANT` when it is
/// not a superuser), comment and settings, then the source's memberships of those roles: the
/// `GRANT`s, or a comment saying why one would not be granted. Reads both servers, writes
/// nothing.
pub async fn dry_run(
    plan: &crate::plan::Plan,
    source: &Endpoint,
    target: &Endpoint,
    managed: bool,
) -> Result<Vec<String>, PgError> {
    let t = target.connect().await?;
    let sv = Survey::read(
        source,
        target,
        &t,
        &plan.objects.schemas,
        plan.objects.large_objects,
        managed,
    )
    .await?;
    let mut out = vec![format!(
        "-- roles: create: on the target ({}), before the schema restore, each in one transaction with its row in pgmove.created_roles; passwords are not carried",
        target.display()
    )];
    for s in sv.skipped() {
        out.push(format!("-- role {} skipped: {}", s.role, s.reason));
    }
    let missing: BTreeSet<String> = sv.missing().map(|r| r.name.clone()).collect();
    for r in sv.missing() {
        let (sql, left_out) = create_sql(r, &sv.giver);
        out.push(format!("{sql};"));
        if !left_out.is_empty() {
            out.push(format!(
                "-- role {} without {} ({})",
                r.name,
                left_out.join(", "),
                sv.giver.fix_left_out(&r.name, &left_out)
            ));
        }
        if let Some(join) = sv.join_sql(r) {
            out.push(join);
        }
        if let Some(c) = &r.comment {
            out.push(format!("{};", comment_sql(&r.name, c)));
        }
        for s in sv.settings.iter().filter(|s| s.role == r.name) {
            out.push(format!("{};", s.alter_sql(&sv.giver.database)));
        }
    }
    for (role, member, admin) in &sv.memberships {
        if !(missing.contains(role) || missing.contains(member)) {
            continue;
        }
        let sql = report::grant_sql(role, member, *admin);
        match sv.refusal(role, member, &missing) {
            None => out.push(format!("{sql};")),
            Some(why) => out.push(format!("-- not granted: {sql}; ({why})")),
        }
    }
    Ok(out)
}

/// Runs `sql` on its own; `Ok(Err(message))` when the server refused it (a database error,
/// reported rather than fatal), `Err` when the session failed.
async fn attempt(target: &Endpoint, t: &Client, sql: &str) -> Result<Result<(), String>, PgError> {
    match t.batch_execute(sql).await {
        Ok(()) => Ok(Ok(())),
        Err(e) if e.as_db_error().is_some() && !crate::pg::session_lost(&e) => {
            Ok(Err(crate::pg::error_text(&e)))
        }
        Err(e) => Err(target.query_error(sql, &e)),
    }
}

/// Creates on the target the roles the moved objects need (see the module documentation).
/// `st`: the plan's state on the target (the record goes there); `managed`: as for [`run`].
pub async fn create(
    source: &Endpoint,
    st: &state::State<'_>,
    schemas: &[String],
    large_objects: bool,
    managed: bool,
) -> Result<Report, PgError> {
    let target = st.target;
    let t = &st.client;
    let mut sv = Survey::read(source, target, t, schemas, large_objects, managed).await?;
    let mut ours: BTreeSet<String> = state::roles::created(t, target, &st.plan_name)
        .await?
        .into_iter()
        .collect();
    let mut report = Report {
        existing: sv
            .roles
            .iter()
            .filter(|r| {
                sv.on_target.contains_key(&r.name)
                    && !ours.contains(&r.name)
                    && !is_service_role(&r.name)
            })
            .map(|r| r.name.clone())
            .collect(),
        created_earlier: sv
            .roles
            .iter()
            .filter(|r| ours.contains(&r.name) && sv.on_target.contains_key(&r.name))
            .map(|r| r.name.clone())
            .collect(),
        skipped: sv.skipped(),
        ..Report::default()
    };
    let missing: Vec<Role> = sv.missing().cloned().collect();
    let me_name = sv.giver.name.clone();
    if !missing.is_empty() && !sv.giver.superuser && !sv.giver.createrole {
        return Err(PgError::Query {
            side: target.side,
            message: format!(
                "roles: create needs to create {} role(s) on the target ({}), and role {me_name} may not create roles; \
                 fix: as a superuser (the master user on RDS) on the target: ALTER ROLE {} CREATEROLE; or create the roles yourself and set roles: skip",
                missing.len(),
                missing.iter().map(|r| r.name.as_str()).collect::<Vec<_>>().join(", "),
                quote::ident(&me_name)
            ),
        });
    }
    for r in &missing {
        let (sql, left_out) = create_sql(r, &sv.giver);
        let join = sv.join_sql(r).map(|j| j + "\n").unwrap_or_default();
        let comment = r
            .comment
            .as_ref()
            .map(|c| comment_sql(&r.name, c) + ";\n")
            .unwrap_or_default();
        let record = state::roles::record_sql(&st.plan_name, &r.name, &left_out);
        t.batch_execute(&format!("BEGIN;\n{sql};\n{join}{comment}{record}COMMIT;"))
            .await
            .map_err(|e| target.query_error(&format!("creating role {}", r.name), &e))?;
        tracing::info!(role = %r.name, "role created on the target (roles: create)");
        if !join.is_empty() {
            report.memberships.push(format!(
                "GRANT {} TO {} (so that the migrating role may give it objects)",
                quote::ident(&r.name),
                quote::ident(&me_name)
            ));
        }
        if !comment.is_empty() {
            report
                .settings
                .push(comment.trim_end().trim_end_matches(';').to_string());
        }
        ours.insert(r.name.clone());
        report.created.push(r.name.clone());
    }
    if !missing.is_empty() {
        sv.read_target(target, t).await?;
    }
    report.left_out = sv
        .roles
        .iter()
        .filter(|r| ours.contains(&r.name))
        .filter_map(|r| sv.left_out(r))
        .collect();
    grant_memberships(&sv, target, t, &ours, &mut report).await?;
    set_settings(&sv, target, t, &ours, &mut report).await?;
    report.set_passwords_for = sv
        .roles
        .iter()
        .filter(|r| r.login && ours.contains(&r.name) && sv.on_target.contains_key(&r.name))
        .map(|r| r.name.clone())
        .collect();
    Ok(report)
}

/// The source's memberships with a role pgmove created on one side that the target lacks:
/// granted where the connecting role may, the others reported with why.
async fn grant_memberships(
    sv: &Survey,
    target: &Endpoint,
    t: &Client,
    ours: &BTreeSet<String>,
    report: &mut Report,
) -> Result<(), PgError> {
    let names: Vec<String> = ours.iter().cloned().collect();
    let on_target: BTreeSet<(String, String)> = t
        .query(MEMBERSHIPS_SQL, &[&names])
        .await
        .map_err(|e| target.query_error("reading the target's role memberships", &e))?
        .iter()
        .map(|r| (r.get(0), r.get(1)))
        .collect();
    for (role, member, admin) in &sv.memberships {
        if !(ours.contains(role) || ours.contains(member))
            || on_target.contains(&(role.clone(), member.clone()))
        {
            continue;
        }
        let sql = report::grant_sql(role, member, *admin);
        if let Some(reason) = sv.refusal(role, member, &BTreeSet::new()) {
            report.memberships_not_granted.push(NotDone {
                statement: sql,
                reason,
            });
            continue;
        }
        match attempt(target, t, &sql).await? {
            Ok(()) => report.memberships.push(sql),
            Err(message) => report.memberships_not_granted.push(NotDone {
                statement: sql,
                reason: format!("the target refused it: {message}"),
            }),
        }
    }
    Ok(())
}

/// The source's settings of the roles pgmove created that the target lacks: set where the
/// target lets the connecting role, the others reported with the server's reason.
async fn set_settings(
    sv: &Survey,
    target: &Endpoint,
    t: &Client,
    ours: &BTreeSet<String>,
    report: &mut Report,
) -> Result<(), PgError> {
    let names: Vec<String> = ours.iter().cloned().collect();
    let present: BTreeSet<(String, bool, String)> = read_settings(target, t, &names)
        .await?
        .iter()
        .map(Setting::key)
        .collect();
    for s in &sv.settings {
        if !ours.contains(&s.role) || present.contains(&s.key()) {
            continue;
        }
        let sql = s.alter_sql(&sv.giver.database);
        match attempt(target, t, &sql).await? {
            Ok(()) => report.settings.push(sql),
            Err(message) => report.settings_not_set.push(NotDone {
                statement: sql,
                reason: format!(
                    "the target refused it: {message}; run it as a role that may set the parameter{}",
                    if sv.giver.managed {
                        " (on RDS/Aurora, where the master user may not set it for a role, set it for the whole server in its parameter group instead)"
                    } else {
                        " (a superuser, or one granted SET on it)"
                    }
                ),
            }),
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn role(name: &str) -> Role {
        Role {
            name: name.into(),
            superuser: false,
            inherit: true,
            createrole: false,
            createdb: false,
            login: true,
            replication: false,
            bypassrls: false,
            connlimit: -1,
            valid_until: None,
            comment: None,
        }
    }

    fn giver(superuser: bool) -> Giver {
        Giver {
            name: "mover".into(),
            superuser,
            createrole: true,
            createdb: false,
            replication: false,
            bypassrls: false,
            version_num: 150004,
            managed: false,
            database: "shop".into(),
        }
    }

    #[test]
    fn create_role_carries_attributes_and_quotes_the_name() {
        let r = Role {
            createdb: true,
            connlimit: 5,
            valid_until: Some("2030-01-01 00:00:00+00".into()),
            ..role("Mr \"X\"")
        };
        let (sql, left) = create_sql(&r, &giver(false));
        assert_eq!(
            sql,
            "CREATE ROLE \"Mr \"\"X\"\"\" WITH NOSUPERUSER INHERIT NOCREATEROLE CREATEDB LOGIN NOREPLICATION NOBYPASSRLS CONNECTION LIMIT 5 VALID UNTIL '2030-01-01 00:00:00+00'"
        );
        assert!(left.is_empty());
    }

    #[test]
    fn superuser_only_attributes_are_left_out_and_named_unless_the_target_role_is_one() {
        let r = Role {
            superuser: true,
            replication: true,
            bypassrls: true,
            ..role("rep")
        };
        let (sql, left) = create_sql(&r, &giver(false));
        assert!(
            sql.contains("NOSUPERUSER")
                && sql.contains("NOREPLICATION")
                && sql.contains("NOBYPASSRLS"),
            "{sql}"
        );
        assert_eq!(left, ["SUPERUSER", "REPLICATION", "BYPASSRLS"]);
        let (sql, left) = create_sql(&r, &giver(true));
        assert!(
            sql.contains(" SUPERUSER")
                && sql.contains(" REPLICATION")
                && sql.contains(" BYPASSRLS"),
            "{sql}"
        );
        assert!(left.is_empty());
    }

    #[test]
    fn the_managed_services_roles_are_never_created() {
        for n in [
            "rds_superuser",
            "rds_app",
            "rdsadmin",
            "rdsrepladmin",
            "pg_read_all_data",
        ] {
            assert!(is_service_role(n), "{n}");
        }
        for n in ["rdsapp", "app_rds_", "postgres", "master"] {
            assert!(!is_service_role(n), "{n}");
        }
        assert_eq!(
            service_patterns(),
            [
                "pg\\_%",
                "rds\\_%",
                "rdsadmin",
                "rdsrepladmin",
                "rdstopmgr",
                "rdswriteforwarduser"
            ]
        );
    }
}
