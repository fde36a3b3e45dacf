//! `roles: create`: before the schema restore, the roles the moved objects need are created on
//! the target (owners and grantees of the moved schemas' objects, default privileges and large
//! objects, and the roles they are members of or that are members of them), when they exist on
//! the source and not on the target. Attributes come from `pg_roles` (readable by any role);
//! passwords are never carried (pg_roles hides them): the report names the roles that can log
//! in, whose password must be set. Attributes only a superuser may give (SUPERUSER,
//! REPLICATION, BYPASSRLS) are left out when the target role is not one, and reported by role.
//! Memberships between the roles (`GRANT role TO role`) are recreated where one side is a role
//! pgmove created.
//!
//! Roles are cluster-wide and end up owning the user's data: each one created is recorded in
//! the target's `pgmove.created_roles` (in the transaction that creates it) and in the report,
//! and `pgmove cleanup` never drops them. A role already on the target is left alone, not
//! altered: a rerun creates nothing new.

use std::collections::BTreeSet;

use serde::Serialize;
use tokio_postgres::Client;

use crate::pg::{quote, Endpoint, PgError};
use crate::state;

/// The roles the moved objects need on the source, with their attributes: name, superuser,
/// inherit, createrole, createdb, login, replication, bypassrls, connection limit, valid until
/// (text or NULL). `$1`: the plan's schemas (empty: every schema but the system ones and
/// `pgmove`); `$2`: whether large objects move. Owners and ACL grantees/grantors of schemas,
/// relations, columns, functions, types, collations, operators, operator classes and families,
/// conversions, text search configurations and dictionaries, extended statistics, event
/// triggers, default privileges and large objects; then the direct parents and members of
/// those. Built-in roles (oid below 16384: the bootstrap superuser, `pg_*`) are left out.
const NEEDED_SQL: &str = "
WITH nsp AS (
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
), related AS (
  SELECT id FROM needed
  UNION SELECT m.roleid FROM pg_catalog.pg_auth_members m WHERE m.member IN (SELECT id FROM needed)
  UNION SELECT m.member FROM pg_catalog.pg_auth_members m WHERE m.roleid IN (SELECT id FROM needed)
)
SELECT r.rolname::text, r.rolsuper, r.rolinherit, r.rolcreaterole, r.rolcreatedb, r.rolcanlogin,
       r.rolreplication, r.rolbypassrls, r.rolconnlimit, r.rolvaliduntil::text
  FROM pg_catalog.pg_roles r
 WHERE r.oid IN (SELECT id FROM related) AND r.oid >= 16384
 ORDER BY 1";

/// Memberships among the roles named `$1` on the source: role, member, admin option.
const MEMBERSHIPS_SQL: &str = "SELECT r.rolname::text, m.rolname::text, a.admin_option
  FROM pg_catalog.pg_auth_members a
  JOIN pg_catalog.pg_roles r ON r.oid = a.roleid
  JOIN pg_catalog.pg_roles m ON m.oid = a.member
 WHERE r.rolname = ANY($1::text[]) AND m.rolname = ANY($1::text[])
 ORDER BY 1, 2";

/// The roles of the target named `$1` (names).
const EXISTING_SQL: &str =
    "SELECT rolname::text FROM pg_catalog.pg_roles WHERE rolname = ANY($1::text[])";

/// Memberships already on the target among the roles named `$1`: role, member.
const TARGET_MEMBERSHIPS_SQL: &str = "SELECT r.rolname::text, m.rolname::text
  FROM pg_catalog.pg_auth_members a
  JOIN pg_catalog.pg_roles r ON r.oid = a.roleid
  JOIN pg_catalog.pg_roles m ON m.oid = a.member
 WHERE r.rolname = ANY($1::text[]) AND m.rolname = ANY($1::text[])";

/// The connecting role on the target: name, superuser, createrole.
const ME_SQL: &str = "SELECT current_user::text, rolsuper, rolcreaterole \
     FROM pg_catalog.pg_roles WHERE rolname = current_user";

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
}

/// What `roles: create` did.
#[derive(Clone, Debug, Default, Serialize, PartialEq, Eq)]
pub struct Report {
    /// Roles created on the target by this run, sorted.
    pub created: Vec<String>,
    /// Roles the moved objects need that the target had already (left alone).
    pub existing: Vec<String>,
    /// Per role created: the attributes left out (the target role may not grant them).
    pub left_out: Vec<(String, Vec<&'static str>)>,
    /// `GRANT role TO member` statements run.
    pub memberships: Vec<String>,
    /// Roles created that can log in: their passwords are not carried.
    pub set_passwords_for: Vec<String>,
}

impl Report {
    /// One line per fact, for the apply output.
    pub fn lines(&self) -> Vec<String> {
        let mut out = Vec::new();
        if self.created.is_empty() {
            out.push(format!(
                "roles: create: no role to create ({} needed role(s) exist on the target already)",
                self.existing.len()
            ));
        } else {
            out.push(format!(
                "roles: create: created {} role(s) on the target: {} (pgmove cleanup never drops them)",
                self.created.len(),
                self.created.join(", ")
            ));
        }
        for (role, attrs) in &self.left_out {
            out.push(format!(
                "roles: role {role} created without {} (only a superuser may give them; as a superuser: ALTER ROLE {} {};)",
                attrs.join(", "),
                quote::ident(role),
                attrs.join(" ")
            ));
        }
        for m in &self.memberships {
            out.push(format!("roles: {m}"));
        }
        if !self.set_passwords_for.is_empty() {
            out.push(format!(
                "roles: passwords are not carried; set passwords for: {} (ALTER ROLE ... PASSWORD '...';)",
                self.set_passwords_for.join(", ")
            ));
        }
        out
    }
}

/// The `CREATE ROLE` statement for `r` when the target role is (`superuser`) or is not a
/// superuser, and the attributes left out.
pub fn create_sql(r: &Role, superuser: bool) -> (String, Vec<&'static str>) {
    let mut left_out = Vec::new();
    let mut attr = |on: bool, yes: &'static str, no: &'static str, needs_super: bool| {
        if on && needs_super && !superuser {
            left_out.push(yes);
            no
        } else if on {
            yes
        } else {
            no
        }
    };
    let attrs = [
        attr(r.superuser, "SUPERUSER", "NOSUPERUSER", true),
        attr(r.inherit, "INHERIT", "NOINHERIT", false),
        attr(r.createrole, "CREATEROLE", "NOCREATEROLE", false),
        attr(r.createdb, "CREATEDB", "NOCREATEDB", false),
        attr(r.login, "LOGIN", "NOLOGIN", false),
        attr(r.replication, "REPLICATION", "NOREPLICATION", true),
        attr(r.bypassrls, "BYPASSRLS", "NOBYPASSRLS", true),
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

async fn needed(
    source: &Endpoint,
    s: &Client,
    schemas: &[String],
    large_objects: bool,
) -> Result<Vec<Role>, PgError> {
    let rows = s
        .query(NEEDED_SQL, &[&schemas, &large_objects])
        .await
        .map_err(|e| source.query_error("reading the roles the moved objects need", &e))?;
    Ok(rows
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
        })
        .collect())
}

/// What `roles: create` finds before creating anything: the roles the moved objects need (from
/// the source), those of them the target has already, and the target's connecting role.
struct Survey {
    /// The connection to the source the roles were read over (memberships are read there too).
    source: Client,
    roles: Vec<Role>,
    /// The names of `roles`.
    names: Vec<String>,
    existing: BTreeSet<String>,
    /// The connecting role on the target, and whether it is a superuser or has CREATEROLE.
    me: String,
    superuser: bool,
    createrole: bool,
}

impl Survey {
    /// Reads the source's needed roles ([`NEEDED_SQL`]) and, over `t` (a connection to
    /// `target`), which of them exist ([`EXISTING_SQL`]) and who is connected ([`ME_SQL`]).
    async fn read(
        source: &Endpoint,
        target: &Endpoint,
        t: &Client,
        schemas: &[String],
        large_objects: bool,
    ) -> Result<Survey, PgError> {
        let s = source.connect().await?;
        let roles = needed(source, &s, schemas, large_objects).await?;
        let names: Vec<String> = roles.iter().map(|r| r.name.clone()).collect();
        let existing: BTreeSet<String> = t
            .query(EXISTING_SQL, &[&names])
            .await
            .map_err(|e| target.query_error("listing the target's roles", &e))?
            .iter()
            .map(|r| r.get(0))
            .collect();
        let me = t
            .query_one(ME_SQL, &[])
            .await
            .map_err(|e| target.query_error("reading the target role's rights", &e))?;
        Ok(Survey {
            source: s,
            roles,
            names,
            existing,
            me: me.get(0),
            superuser: me.get(1),
            createrole: me.get(2),
        })
    }

    /// The needed roles the target lacks: the ones to create.
    fn missing(&self) -> impl Iterator<Item = &Role> {
        self.roles
            .iter()
            .filter(|r| !self.existing.contains(&r.name))
    }

    /// For a role created by a connecting role that is not a superuser: the `GRANT` that makes
    /// the connecting role its member, so that `owner: keep` may give it objects (ALTER ...
    /// OWNER TO needs that membership). `None` when no grant is needed.
    fn join_sql(&self, r: &Role) -> Option<String> {
        (!self.superuser && !r.superuser).then(|| {
            format!(
                "GRANT {} TO {};",
                quote::ident(&r.name),
                quote::ident(&self.me)
            )
        })
    }
}

/// `roles: create` for `plan`, before its strategy runs: opens the plan's state on the target
/// (creating the `pgmove` schema if needed), creates the roles, and lets go of the plan's
/// lock again for the strategy.
pub async fn run(
    plan: &crate::plan::Plan,
    source: &Endpoint,
    target: &Endpoint,
) -> Result<Report, PgError> {
    let st = state::State::open(target, &plan.name).await?;
    let report = create(
        source,
        &st,
        &plan.objects.schemas,
        plan.objects.large_objects,
    )
    .await;
    st.release_lock().await?;
    report
}

/// What `roles: create` would run on the target for `plan` (for `apply --dry-run`): a comment
/// line, then one `CREATE ROLE` per missing role (and the migrating role's `GRANT` when it is
/// not a superuser). Membership grants are listed as a comment: which ones run depends on the
/// roles created. Reads both servers, writes nothing.
pub async fn dry_run(
    plan: &crate::plan::Plan,
    source: &Endpoint,
    target: &Endpoint,
) -> Result<Vec<String>, PgError> {
    let t = target.connect().await?;
    let sv = Survey::read(
        source,
        target,
        &t,
        &plan.objects.schemas,
        plan.objects.large_objects,
    )
    .await?;
    let mut out = vec![format!(
        "-- roles: create: on the target ({}), before the schema restore, each in one transaction with its row in pgmove.created_roles; passwords are not carried",
        target.display()
    )];
    for r in sv.missing() {
        let (sql, left_out) = create_sql(r, sv.superuser);
        out.push(format!("{sql};"));
        if !left_out.is_empty() {
            out.push(format!(
                "-- role {} without {} (the target role is not a superuser)",
                r.name,
                left_out.join(", ")
            ));
        }
        if let Some(join) = sv.join_sql(r) {
            out.push(join);
        }
    }
    out.push(
        "-- then GRANT role TO member for the source's memberships among these roles where one side was created"
            .to_string(),
    );
    Ok(out)
}

/// Creates on the target the roles the moved objects need (see the module documentation).
/// `st`: the plan's state on the target (the record goes there).
pub async fn create(
    source: &Endpoint,
    st: &state::State<'_>,
    schemas: &[String],
    large_objects: bool,
) -> Result<Report, PgError> {
    let target = st.target;
    let t = &st.client;
    let sv = Survey::read(source, target, t, schemas, large_objects).await?;
    let (s, roles, names, existing, me_name, superuser) = (
        &sv.source,
        &sv.roles,
        &sv.names,
        &sv.existing,
        &sv.me,
        sv.superuser,
    );
    let mut ours: BTreeSet<String> = crate::state::roles::created(t, target, &st.plan_name)
        .await?
        .into_iter()
        .collect();
    let mut report = Report {
        existing: existing
            .iter()
            .filter(|n| !ours.contains(*n))
            .cloned()
            .collect(),
        ..Report::default()
    };
    let missing: Vec<&Role> = sv.missing().collect();
    if !missing.is_empty() && !superuser && !sv.createrole {
        return Err(PgError::Query {
            side: target.side,
            message: format!(
                "roles: create needs to create {} role(s) on the target ({}), and role {me_name} may not create roles; \
                 fix: as a superuser (the master user on RDS) on the target: ALTER ROLE {} CREATEROLE; or create the roles yourself and set roles: skip",
                missing.len(),
                missing.iter().map(|r| r.name.as_str()).collect::<Vec<_>>().join(", "),
                quote::ident(me_name)
            ),
        });
    }
    for r in missing {
        let (sql, left_out) = create_sql(r, superuser);
        let join = sv.join_sql(r).map(|j| j + "\n").unwrap_or_default();
        let record = crate::state::roles::record_sql(&st.plan_name, &r.name, &left_out);
        t.batch_execute(&format!("BEGIN;\n{sql};\n{join}{record}COMMIT;"))
            .await
            .map_err(|e| target.query_error(&format!("creating role {}", r.name), &e))?;
        tracing::info!(role = %r.name, "role created on the target (roles: create)");
        if !join.is_empty() {
            report.memberships.push(format!(
                "GRANT {} TO {} (so that the migrating role may give it objects)",
                quote::ident(&r.name),
                quote::ident(me_name)
            ));
        }
        if !left_out.is_empty() {
            report.left_out.push((r.name.clone(), left_out));
        }
        ours.insert(r.name.clone());
        report.created.push(r.name.clone());
    }
    report.set_passwords_for = roles
        .iter()
        .filter(|r| r.login && report.created.contains(&r.name))
        .map(|r| r.name.clone())
        .collect();
    // Memberships among the needed roles, where one side is a role pgmove created.
    let on_target: BTreeSet<(String, String)> = t
        .query(TARGET_MEMBERSHIPS_SQL, &[&names])
        .await
        .map_err(|e| target.query_error("reading the target's role memberships", &e))?
        .iter()
        .map(|r| (r.get(0), r.get(1)))
        .collect();
    for m in s
        .query(MEMBERSHIPS_SQL, &[&names])
        .await
        .map_err(|e| source.query_error("reading role memberships", &e))?
    {
        let (role, member, admin): (String, String, bool) = (m.get(0), m.get(1), m.get(2));
        if on_target.contains(&(role.clone(), member.clone()))
            || !(ours.contains(&role) || ours.contains(&member))
        {
            continue;
        }
        let sql = format!(
            "GRANT {} TO {}{}",
            quote::ident(&role),
            quote::ident(&member),
            if admin { " WITH ADMIN OPTION" } else { "" }
        );
        t.batch_execute(&sql)
            .await
            .map_err(|e| target.query_error(&format!("recreating membership: {sql}"), &e))?;
        report.memberships.push(sql);
    }
    Ok(report)
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
        let (sql, left) = create_sql(&r, false);
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
        let (sql, left) = create_sql(&r, false);
        assert!(
            sql.contains("NOSUPERUSER")
                && sql.contains("NOREPLICATION")
                && sql.contains("NOBYPASSRLS"),
            "{sql}"
        );
        assert_eq!(left, ["SUPERUSER", "REPLICATION", "BYPASSRLS"]);
        let (sql, left) = create_sql(&r, true);
        assert!(
            sql.contains(" SUPERUSER")
                && sql.contains(" REPLICATION")
                && sql.contains(" BYPASSRLS"),
            "{sql}"
        );
        assert!(left.is_empty());
    }

    #[test]
    fn the_report_names_the_passwords_not_carried() {
        let r = Report {
            created: vec!["app".into()],
            set_passwords_for: vec!["app".into()],
            left_out: vec![("rep".into(), vec!["REPLICATION"])],
            ..Report::default()
        };
        let l = r.lines().join("\n");
        assert!(l.contains("set passwords for: app"), "{l}");
        assert!(l.contains("ALTER ROLE \"rep\" REPLICATION;"), "{l}");
    }
}
