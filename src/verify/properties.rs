//! What pg_dump shows of an object besides its definition, compared property by property:
//! owners, privileges (table, column, function, type, schema, large object, default), comments,
//! row level security flags, persistence (UNLOGGED), partition bounds, replica identity,
//! storage parameters and policies.
//!
//! Every query returns rows of (kind, schema, owning relation or NULL, name, property, value or
//! NULL, roles the value names); a property without a value is left out, except each object's
//! comment row, which says the object exists. An object's properties are compared when the object is on
//! both sides (one side only is the inventory's difference, reported there); default
//! privileges have no object of their own and are always compared. A value naming a role the
//! target lacks is a note (`roles: skip` moves no roles: apply leaves such a grant out and says
//! so), not a difference.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use super::across_majors;
use super::catalog::SYSTEM_SCHEMAS;
use super::session::{Conn, Pair};
use super::{ObjectDiff, ObjectDifference, ObjectKind, Scope, VerifyError, VerifyOptions};

/// The property naming an object's owner.
const OWNER: &str = "owner";
/// Privileges properties start with this, followed by the grantee.
const PRIVILEGES: &str = "privileges of ";
/// Properties holding a definition, compared with whitespace runs collapsed.
const DEFINITIONS: &[&str] = &["rule ", "policy ", "statistics "];
/// What a property without a value shows.
const NONE: &str = "none";

/// `NOT EXISTS` an extension membership of the object `oid` in catalog `class`.
fn not_in_extension(class: &str, oid: &str) -> String {
    format!(
        "NOT EXISTS (SELECT 1 FROM pg_depend d WHERE d.classid = '{class}'::regclass AND d.objid = {oid} AND d.deptype = 'e')"
    )
}

/// The kind name of a `pg_class` row `c`, as [`kind`] reads it.
const REL_KIND: &str = "CASE c.relkind WHEN 'v' THEN 'view' WHEN 'm' THEN 'materialized view'
            WHEN 'S' THEN 'sequence' WHEN 'f' THEN 'foreign table'
            WHEN 'i' THEN 'index' WHEN 'I' THEN 'index' ELSE 'table' END";

/// Relations (tables, partitions, views, materialized views, sequences, foreign tables,
/// indexes): owner, comment, row level security (`enabled`/`disabled`, `+forced`),
/// persistence, partition bound, partition key, inheritance parents, the index it is
/// clustered on, access method (12+), the column a sequence is owned by, replica identity,
/// storage parameters (with the TOAST table's as `toast.x`); one `policy NAME` row per
/// policy (permissive or restrictive, command, roles, USING and WITH CHECK expressions), one
/// `rule NAME` per rule (not a view's own), one `statistics SCHEMA.NAME` per extended
/// statistics object. The owning relation of an index is its table's.
fn relations_sql(version: i32) -> String {
    let access_method = if version >= 120000 {
        "(SELECT am.amname::text FROM pg_am am WHERE am.oid = c.relam)"
    } else {
        // Every table is heap before 12, which brought access methods (see `across_majors`).
        "'heap'::text"
    };
    format!(
        "SELECT {REL_KIND}, n.nspname::text, coalesce(tc.relname, c.relname)::text, c.relname::text,
       p.prop, p.val, p.roles
  FROM pg_class c
  JOIN pg_namespace n ON n.oid = c.relnamespace
  LEFT JOIN pg_index ix ON ix.indexrelid = c.oid
  LEFT JOIN pg_class tc ON tc.oid = ix.indrelid
  CROSS JOIN LATERAL (VALUES
    ('owner', pg_get_userbyid(c.relowner)::text, ARRAY[pg_get_userbyid(c.relowner)::text],
     c.relkind NOT IN ('i', 'I')),
    ('comment', obj_description(c.oid, 'pg_class'), NULL::text[], true),
    ('row level security',
     CASE WHEN c.relrowsecurity THEN 'enabled' ELSE 'disabled' END
     || CASE WHEN c.relforcerowsecurity THEN '+forced' ELSE '' END, NULL, c.relkind IN ('r', 'p')),
    ('persistence', CASE c.relpersistence WHEN 'u' THEN 'unlogged' ELSE 'logged' END, NULL,
     c.relkind IN ('r', 'p', 'S')),
    ('partition bound', pg_get_expr(c.relpartbound, c.oid), NULL,
     c.relispartition AND c.relkind IN ('r', 'p', 'f')),
    ('partition key', pg_get_partkeydef(c.oid), NULL, c.relkind = 'p'),
    ('inherits',
     (SELECT string_agg(quote_ident(pn.nspname) || '.' || quote_ident(pc.relname), ', ' ORDER BY i.inhseqno)
        FROM pg_inherits i
        JOIN pg_class pc ON pc.oid = i.inhparent
        JOIN pg_namespace pn ON pn.oid = pc.relnamespace
       WHERE i.inhrelid = c.oid),
     NULL, c.relkind IN ('r', 'p', 'f') AND NOT c.relispartition),
    ('clustered on',
     (SELECT ic.relname::text FROM pg_index i JOIN pg_class ic ON ic.oid = i.indexrelid
       WHERE i.indrelid = c.oid AND i.indisclustered),
     NULL, c.relkind IN ('r', 'm')),
    ('access method', {access_method}, NULL, c.relkind IN ('r', 'm')),
    ('owned by',
     (SELECT quote_ident(dn.nspname) || '.' || quote_ident(dc.relname) || '.' || quote_ident(da.attname)
        FROM pg_depend d
        JOIN pg_class dc ON dc.oid = d.refobjid
        JOIN pg_namespace dn ON dn.oid = dc.relnamespace
        JOIN pg_attribute da ON da.attrelid = d.refobjid AND da.attnum = d.refobjsubid
       WHERE d.classid = 'pg_class'::regclass AND d.objid = c.oid
         AND d.refclassid = 'pg_class'::regclass AND d.refobjsubid > 0 AND d.deptype IN ('a', 'i')
       LIMIT 1),
     NULL, c.relkind = 'S'),
    ('replica identity',
     CASE c.relreplident WHEN 'd' THEN 'default' WHEN 'n' THEN 'nothing' WHEN 'f' THEN 'full'
       ELSE 'using index ' || coalesce((SELECT ic.relname::text FROM pg_index i
                                          JOIN pg_class ic ON ic.oid = i.indexrelid
                                         WHERE i.indrelid = c.oid AND i.indisreplident), '?')
     END, NULL, c.relkind IN ('r', 'p')),
    ('storage parameters',
     (SELECT string_agg(o, ', ' ORDER BY o)
        FROM (SELECT unnest(c.reloptions)
              UNION ALL
              SELECT 'toast.' || unnest(t.reloptions) FROM pg_class t WHERE t.oid = c.reltoastrelid) x(o)),
     NULL, c.relkind IN ('r', 'p'))
  ) p(prop, val, roles, applies)
 WHERE p.applies AND (p.val IS NOT NULL OR p.prop = 'comment')
   AND c.relkind IN ('r', 'p', 'v', 'm', 'S', 'f', 'i', 'I')
   AND c.relpersistence <> 't' AND {SYSTEM_SCHEMAS} AND {}
UNION ALL
SELECT 'table', n.nspname::text, c.relname::text, c.relname::text, 'policy ' || pol.polname::text,
       CASE WHEN pol.polpermissive THEN 'permissive' ELSE 'restrictive' END
       || ' for ' || CASE pol.polcmd WHEN 'r' THEN 'SELECT' WHEN 'a' THEN 'INSERT' WHEN 'w' THEN 'UPDATE'
                                     WHEN 'd' THEN 'DELETE' ELSE 'ALL' END
       || ' to ' || coalesce((SELECT string_agg(CASE WHEN r = 0 THEN 'PUBLIC' ELSE pg_get_userbyid(r)::text END, ', ' ORDER BY 1)
                                FROM unnest(pol.polroles) r), 'PUBLIC')
       || coalesce(' using (' || pg_get_expr(pol.polqual, pol.polrelid) || ')', '')
       || coalesce(' with check (' || pg_get_expr(pol.polwithcheck, pol.polrelid) || ')', ''),
       NULL
  FROM pg_policy pol
  JOIN pg_class c ON c.oid = pol.polrelid
  JOIN pg_namespace n ON n.oid = c.relnamespace
 WHERE {SYSTEM_SCHEMAS} AND {rel}
UNION ALL
SELECT {REL_KIND}, n.nspname::text, c.relname::text, c.relname::text, 'rule ' || r.rulename::text,
       pg_get_ruledef(r.oid), NULL
  FROM pg_rewrite r
  JOIN pg_class c ON c.oid = r.ev_class
  JOIN pg_namespace n ON n.oid = c.relnamespace
 WHERE r.rulename <> '_RETURN' AND {SYSTEM_SCHEMAS} AND {rel}
UNION ALL
SELECT {REL_KIND}, n.nspname::text, c.relname::text, c.relname::text,
       'statistics ' || sn.nspname::text || '.' || s.stxname::text, pg_get_statisticsobjdef(s.oid), NULL
  FROM pg_statistic_ext s
  JOIN pg_namespace sn ON sn.oid = s.stxnamespace
  JOIN pg_class c ON c.oid = s.stxrelid
  JOIN pg_namespace n ON n.oid = c.relnamespace
 WHERE {SYSTEM_SCHEMAS} AND {rel}",
        not_in_extension("pg_class", "coalesce(tc.oid, c.oid)"),
        rel = not_in_extension("pg_class", "c.oid")
    )
}

/// Columns of tables, views, materialized views and foreign tables (a row per column and set
/// property, and the comment's, NULL when none): comment, statistics target (when set), storage (when not the
/// type's), attribute options, compression (14+).
fn columns_sql(version: i32) -> String {
    let compression = if version >= 140000 {
        "CASE a.attcompression WHEN 'p' THEN 'pglz' WHEN 'l' THEN 'lz4' END"
    } else {
        "NULL::text"
    };
    format!(
        "SELECT 'column', n.nspname::text, c.relname::text, c.relname::text || '.' || a.attname::text,
       x.prop, x.val, NULL::text[]
  FROM pg_attribute a
  JOIN pg_class c ON c.oid = a.attrelid
  JOIN pg_namespace n ON n.oid = c.relnamespace
  JOIN pg_type ty ON ty.oid = a.atttypid
  CROSS JOIN LATERAL (VALUES
    ('comment', col_description(c.oid, a.attnum)),
    ('statistics target', CASE WHEN a.attstattarget >= 0 THEN a.attstattarget::text END),
    ('storage', CASE WHEN a.attstorage <> ty.typstorage THEN
                  CASE a.attstorage WHEN 'p' THEN 'plain' WHEN 'e' THEN 'external'
                                    WHEN 'm' THEN 'main' ELSE 'extended' END END),
    ('options', array_to_string(a.attoptions, ', ')),
    ('compression', {compression})) x(prop, val)
 WHERE (x.val IS NOT NULL OR x.prop = 'comment') AND a.attnum > 0 AND NOT a.attisdropped AND c.relkind IN ('r', 'p', 'v', 'm', 'f')
   AND c.relpersistence <> 't' AND {SYSTEM_SCHEMAS} AND {}",
        not_in_extension("pg_class", "c.oid")
    )
}

/// Functions (named as the inventory names them), types (those the inventory lists) and
/// schemas: owner and comment.
fn owned_sql() -> String {
    format!(
        "SELECT 'function', n.nspname::text, NULL::text,
       p.proname::text || '(' || pg_get_function_identity_arguments(p.oid) || ')', x.prop, x.val, x.roles
  FROM pg_proc p
  JOIN pg_namespace n ON n.oid = p.pronamespace
  CROSS JOIN LATERAL (VALUES
    ('owner', pg_get_userbyid(p.proowner)::text, ARRAY[pg_get_userbyid(p.proowner)::text]),
    ('comment', obj_description(p.oid, 'pg_proc'), NULL::text[])) x(prop, val, roles)
 WHERE {SYSTEM_SCHEMAS} AND {}
UNION ALL
SELECT 'type', n.nspname::text, NULL::text, t.typname::text, x.prop, x.val, x.roles
  FROM pg_type t
  JOIN pg_namespace n ON n.oid = t.typnamespace
  CROSS JOIN LATERAL (VALUES
    ('owner', pg_get_userbyid(t.typowner)::text, ARRAY[pg_get_userbyid(t.typowner)::text]),
    ('comment', obj_description(t.oid, 'pg_type'), NULL::text[])) x(prop, val, roles)
 WHERE t.typtype IN ('e', 'd', 'c', 'r') AND {SYSTEM_SCHEMAS}
   AND (t.typtype <> 'c' OR (SELECT c.relkind FROM pg_class c WHERE c.oid = t.typrelid) = 'c')
   AND {}
UNION ALL
SELECT 'schema', n.nspname::text, NULL::text, n.nspname::text, x.prop, x.val, x.roles
  FROM pg_namespace n
  CROSS JOIN LATERAL (VALUES
    ('owner', pg_get_userbyid(n.nspowner)::text, ARRAY[pg_get_userbyid(n.nspowner)::text]),
    ('comment', obj_description(n.oid, 'pg_namespace'), NULL::text[])) x(prop, val, roles)
 WHERE {SYSTEM_SCHEMAS} AND {}",
        not_in_extension("pg_proc", "p.oid"),
        not_in_extension("pg_type", "t.oid"),
        not_in_extension("pg_namespace", "n.oid"),
    )
}

/// Constraints (of tables and domains) and triggers: their comment, named as the inventory
/// names them (`table.constraint`, `table.trigger`).
fn sub_objects_sql(version: i32) -> String {
    let clones = if version >= 130000 {
        "AND t.tgparentid = 0"
    } else {
        ""
    };
    format!(
        "SELECT 'constraint', n.nspname::text, coalesce(tc.relname, ty.typname)::text,
       coalesce(tc.relname, ty.typname)::text || '.' || c.conname::text,
       'comment', obj_description(c.oid, 'pg_constraint'), NULL::text[]
  FROM pg_constraint c
  JOIN pg_namespace n ON n.oid = c.connamespace
  LEFT JOIN pg_class tc ON tc.oid = c.conrelid
  LEFT JOIN pg_type ty ON ty.oid = c.contypid
 WHERE {SYSTEM_SCHEMAS} AND c.contype <> 'n' AND (tc.oid IS NOT NULL OR ty.oid IS NOT NULL)
   AND coalesce(tc.relpersistence, 'p') <> 't' AND {} AND {}
UNION ALL
SELECT 'trigger', n.nspname::text, c.relname::text, c.relname::text || '.' || t.tgname::text,
       'comment', obj_description(t.oid, 'pg_trigger'), NULL::text[]
  FROM pg_trigger t
  JOIN pg_class c ON c.oid = t.tgrelid
  JOIN pg_namespace n ON n.oid = c.relnamespace
 WHERE NOT t.tgisinternal {clones} AND {SYSTEM_SCHEMAS} AND {}",
        not_in_extension("pg_class", "coalesce(tc.oid, 0)"),
        not_in_extension("pg_type", "coalesce(ty.oid, 0)"),
        not_in_extension("pg_class", "c.oid"),
    )
}

/// Large objects, named by OID: owner and comment.
const LARGE_OBJECTS_SQL: &str =
    "SELECT 'large object', '', NULL::text, m.oid::text, x.prop, x.val, x.roles
  FROM pg_largeobject_metadata m
  CROSS JOIN LATERAL (VALUES
    ('owner', pg_get_userbyid(m.lomowner)::text, ARRAY[pg_get_userbyid(m.lomowner)::text]),
    ('comment', obj_description(m.oid, 'pg_largeobject'), NULL::text[])) x(prop, val, roles)";

/// Privileges per grantee of the objects `objects` returns (columns kind, schema, rel, name,
/// acl, owner oid, roles: the roles the object itself names): one row per object and grantee,
/// `privileges of GRANTEE` (`PUBLIC`, `the owner` for the object's owner, else the role's
/// name) with the privileges, sorted, each `WITH GRANT OPTION` when grantable.
fn acl_sql(objects: &str) -> String {
    format!(
        "SELECT o.kind, o.schema, o.rel, o.name,
       'privileges of ' || CASE WHEN a.grantee = 0 THEN 'PUBLIC' WHEN a.grantee = o.owner THEN 'the owner'
                                ELSE pg_get_userbyid(a.grantee)::text END,
       string_agg(a.privilege_type || CASE WHEN a.is_grantable THEN ' WITH GRANT OPTION' ELSE '' END,
                  ', ' ORDER BY a.privilege_type),
       CASE WHEN a.grantee = 0 OR a.grantee = o.owner THEN o.roles
            ELSE o.roles || pg_get_userbyid(a.grantee)::text END
  FROM ({objects}) o
  CROSS JOIN LATERAL aclexplode(o.acl) a
 GROUP BY o.kind, o.schema, o.rel, o.name, o.owner, o.roles, a.grantee"
    )
}

/// Relations and their columns, functions, types and schemas with their ACL (the built-in
/// default when NULL), for [`acl_sql`].
fn acl_objects_sql() -> String {
    format!(
        "SELECT {REL_KIND} AS kind, n.nspname::text AS schema, c.relname::text AS rel,
       c.relname::text AS name,
       coalesce(c.relacl, acldefault(CASE WHEN c.relkind = 'S' THEN 's' ELSE 'r' END::\"char\", c.relowner)) AS acl,
       c.relowner AS owner, ARRAY[]::text[] AS roles
  FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
 WHERE c.relkind IN ('r', 'p', 'v', 'm', 'S', 'f') AND c.relpersistence <> 't'
   AND {SYSTEM_SCHEMAS} AND {rel}
UNION ALL
SELECT 'column', n.nspname::text, c.relname::text, c.relname::text || '.' || a.attname::text,
       a.attacl, c.relowner, ARRAY[]::text[]
  FROM pg_attribute a
  JOIN pg_class c ON c.oid = a.attrelid
  JOIN pg_namespace n ON n.oid = c.relnamespace
 WHERE a.attacl IS NOT NULL AND a.attnum > 0 AND NOT a.attisdropped
   AND c.relkind IN ('r', 'p', 'v', 'm', 'f') AND c.relpersistence <> 't'
   AND {SYSTEM_SCHEMAS} AND {rel}
UNION ALL
SELECT 'function', n.nspname::text, NULL::text,
       p.proname::text || '(' || pg_get_function_identity_arguments(p.oid) || ')',
       coalesce(p.proacl, acldefault('f', p.proowner)), p.proowner, ARRAY[]::text[]
  FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace
 WHERE {SYSTEM_SCHEMAS} AND {proc}
UNION ALL
SELECT 'type', n.nspname::text, NULL::text, t.typname::text,
       coalesce(t.typacl, acldefault('T', t.typowner)), t.typowner, ARRAY[]::text[]
  FROM pg_type t JOIN pg_namespace n ON n.oid = t.typnamespace
 WHERE t.typtype IN ('e', 'd', 'c', 'r') AND {SYSTEM_SCHEMAS}
   AND (t.typtype <> 'c' OR (SELECT c.relkind FROM pg_class c WHERE c.oid = t.typrelid) = 'c')
   AND {typ}
UNION ALL
SELECT 'schema', n.nspname::text, NULL::text, n.nspname::text,
       coalesce(n.nspacl, acldefault('n', n.nspowner)), n.nspowner, ARRAY[]::text[]
  FROM pg_namespace n
 WHERE {SYSTEM_SCHEMAS} AND {nsp}
UNION ALL
SELECT 'default privileges', coalesce(n.nspname::text, ''), NULL::text,
       'for role ' || pg_get_userbyid(d.defaclrole)::text || ' on '
       || CASE d.defaclobjtype WHEN 'r' THEN 'tables' WHEN 'S' THEN 'sequences' WHEN 'f' THEN 'functions'
                               WHEN 'T' THEN 'types' WHEN 'n' THEN 'schemas' ELSE d.defaclobjtype::text END
       || coalesce(' in schema ' || n.nspname::text, ''),
       d.defaclacl, d.defaclrole, ARRAY[pg_get_userbyid(d.defaclrole)::text]
  FROM pg_default_acl d LEFT JOIN pg_namespace n ON n.oid = d.defaclnamespace",
        rel = not_in_extension("pg_class", "c.oid"),
        proc = not_in_extension("pg_proc", "p.oid"),
        typ = not_in_extension("pg_type", "t.oid"),
        nsp = not_in_extension("pg_namespace", "n.oid"),
    )
}

/// Large objects with their ACL (the built-in default when NULL), for [`acl_sql`].
const LARGE_OBJECT_ACL_OBJECTS_SQL: &str = "SELECT 'large object' AS kind, ''::text AS schema,
       NULL::text AS rel, m.oid::text AS name,
       coalesce(m.lomacl, acldefault('L', m.lomowner)) AS acl, m.lomowner AS owner,
       ARRAY[]::text[] AS roles
  FROM pg_largeobject_metadata m";

/// Every role of the target, by name.
const ROLES_SQL: &str = "SELECT rolname::text FROM pg_roles";

fn kind(name: &str) -> Option<ObjectKind> {
    Some(match name {
        "table" => ObjectKind::Table,
        "view" => ObjectKind::View,
        "materialized view" => ObjectKind::MaterializedView,
        "sequence" => ObjectKind::Sequence,
        "foreign table" => ObjectKind::ForeignTable,
        "index" => ObjectKind::Index,
        "column" => ObjectKind::Column,
        "function" => ObjectKind::Function,
        "type" => ObjectKind::Type,
        "schema" => ObjectKind::Schema,
        "constraint" => ObjectKind::Constraint,
        "trigger" => ObjectKind::Trigger,
        "large object" => ObjectKind::LargeObject,
        "default privileges" => ObjectKind::DefaultPrivileges,
        _ => return None,
    })
}

type Object = (ObjectKind, String, String);

/// One side's properties: per object, property to (value, roles the value names).
type Props = BTreeMap<Object, BTreeMap<String, (Option<String>, Vec<String>)>>;

async fn read(conn: &Conn, scope: &Scope, large_objects: bool) -> Result<Props, VerifyError> {
    let side = conn.side();
    let mut queries = vec![
        ("relations", relations_sql(conn.version)),
        ("columns", columns_sql(conn.version)),
        ("functions, types and schemas", owned_sql()),
        ("constraints and triggers", sub_objects_sql(conn.version)),
        ("privileges", acl_sql(&acl_objects_sql())),
    ];
    if large_objects {
        queries.push(("large objects' owners", LARGE_OBJECTS_SQL.to_string()));
        queries.push((
            "large objects' privileges",
            acl_sql(LARGE_OBJECT_ACL_OBJECTS_SQL),
        ));
    }
    let mut out = Props::new();
    for (what, sql) in queries {
        let rows = conn
            .query(&format!("reading the {side}'s {what}"), &sql, &[])
            .await?;
        for r in rows {
            let Some(k) = kind(r.get::<_, &str>(0)) else {
                continue;
            };
            let schema: String = r.get(1);
            let rel: Option<String> = r.get(2);
            let in_scope = match (k, &rel) {
                (ObjectKind::LargeObject, _) => true,
                (ObjectKind::DefaultPrivileges, _) => schema.is_empty() || scope.schema(&schema),
                (_, Some(rel)) => scope.relation(&schema, rel),
                (_, None) => scope.schema(&schema),
            };
            if !in_scope {
                continue;
            }
            let roles: Option<Vec<String>> = r.get(6);
            let property: String = r.get(4);
            let mut value: Option<String> = r.get(5);
            // Definitions (not comments: their whitespace is their content) on one line.
            if DEFINITIONS.iter().any(|d| property.starts_with(d)) {
                value = value.map(|v| super::objects::normalize(&v));
            }
            out.entry((k, schema, r.get(3)))
                .or_default()
                .insert(property, (value, roles.unwrap_or_default()));
        }
    }
    Ok(out)
}

/// The replica identity text of a recorded `relreplident`, as [`relations_sql`] shows it.
fn identity_text(mode: &str, index: Option<&str>) -> String {
    match mode {
        "n" => "nothing".to_string(),
        "f" => "full".to_string(),
        "i" => format!("using index {}", index.unwrap_or("?")),
        _ => "default".to_string(),
    }
}

/// The source's replica identities as they were before pgmove made them FULL, by table.
async fn recorded_identities(
    tgt: &Conn,
    plan_name: Option<&str>,
) -> Result<HashMap<(String, String), String>, VerifyError> {
    if !crate::state::has_table(&tgt.client, &tgt.ep, "replica_identity").await? {
        return Ok(HashMap::new());
    }
    let rows = crate::state::replica_identity::recorded(&tgt.client, &tgt.ep, plan_name).await?;
    Ok(rows
        .into_iter()
        .map(|i| {
            let text = identity_text(&i.mode, i.index.as_deref());
            ((i.schema, i.table), text)
        })
        .collect())
}

/// What [`compare`] found.
pub(crate) struct Found {
    pub diffs: Vec<ObjectDiff>,
    pub notes: Vec<String>,
}

fn display(o: &Object) -> String {
    if o.1.is_empty() || matches!(o.0, ObjectKind::DefaultPrivileges | ObjectKind::Schema) {
        format!("{} {}", o.0, o.2)
    } else {
        format!("{} {}.{}", o.0, o.1, o.2)
    }
}

/// Compares both sides' properties.
pub(crate) async fn compare(
    pair: &Pair,
    scope: &Scope,
    opts: &VerifyOptions,
) -> Result<Found, VerifyError> {
    let (mut src, mut tgt, recorded, roles) = tokio::try_join!(
        read(&pair.src, scope, opts.large_objects),
        read(&pair.tgt, scope, opts.large_objects),
        recorded_identities(&pair.tgt, opts.plan_name.as_deref()),
        pair.tgt.query("listing the target's roles", ROLES_SQL, &[]),
    )?;
    let target_roles: BTreeSet<String> = roles.iter().map(|r| r.get(0)).collect();
    use_recorded_identities(&mut src, &recorded);
    let (src_version, tgt_version) = (pair.src.version, pair.tgt.version);
    let unshared = across_majors::unshared_privileges(src_version, tgt_version);
    let left_out =
        leave_out_privileges(&mut src, &unshared) | leave_out_privileges(&mut tgt, &unshared);
    let mut found = judge(&src, &tgt, &target_roles, opts.owners, opts.roles_created);
    if left_out {
        found.notes.push(format!(
            "privileges {} not compared: the source runs PostgreSQL {}, the target {}, and only one of them has them",
            unshared.join(", "),
            src_version / 10000,
            tgt_version / 10000
        ));
    }
    Ok(found)
}

/// Takes the privileges `left_out` (those only one of the two servers' majors has, see
/// `across_majors`) out of every privileges value of `props`; a value left empty is unset.
/// Returns whether any value held one.
fn leave_out_privileges(props: &mut Props, left_out: &[&str]) -> bool {
    if left_out.is_empty() {
        return false;
    }
    let mut any = false;
    for values in props.values_mut() {
        for (property, (value, _)) in values.iter_mut() {
            if !property.starts_with(PRIVILEGES) {
                continue;
            }
            if let Some(v) = value.as_deref() {
                let kept = across_majors::without_privileges(v, left_out);
                if kept.as_deref() != Some(v) {
                    any = true;
                    *value = kept;
                }
            }
        }
    }
    any
}

/// pgmove keeps keyless source tables at REPLICA IDENTITY FULL while it captures changes: the
/// source's own identity is the one it recorded (`recorded`, by schema and table) before.
fn use_recorded_identities(src: &mut Props, recorded: &HashMap<(String, String), String>) {
    for ((kind, schema, name), props) in src.iter_mut() {
        if *kind != ObjectKind::Table {
            continue;
        }
        if let Some((Some(v), _)) = props.get_mut("replica identity") {
            if v == "full" {
                if let Some(orig) = recorded.get(&(schema.clone(), name.clone())) {
                    *v = orig.clone();
                }
            }
        }
    }
}

/// The differences between both sides' properties, and the notes: a value naming a role the
/// target lacks is a note unless roles were copied (`roles_created`) and the role is one
/// `roles: create` makes (not a managed service's own, such as `rds_*`); owners are left out
/// unless `owners`.
fn judge(
    src: &Props,
    tgt: &Props,
    target_roles: &BTreeSet<String>,
    owners: bool,
    roles_created: bool,
) -> Found {
    let mut found = Found {
        diffs: Vec::new(),
        notes: Vec::new(),
    };
    let empty = BTreeMap::new();
    let objects: BTreeSet<&Object> = src.keys().chain(tgt.keys()).collect();
    for o in objects {
        let (s, t) = match (src.get(o), tgt.get(o)) {
            (Some(s), Some(t)) => (s, t),
            // Default privileges are their own object; others missing on a side are the
            // inventory's difference.
            (s, t) if o.0 == ObjectKind::DefaultPrivileges => {
                (s.unwrap_or(&empty), t.unwrap_or(&empty))
            }
            _ => continue,
        };
        let props: BTreeSet<&String> = s.keys().chain(t.keys()).collect();
        for p in props {
            if p == OWNER && !owners {
                continue;
            }
            let (sv, sroles) = s
                .get(p)
                .map(|(v, r)| (v.as_deref(), r.as_slice()))
                .unwrap_or((None, &[]));
            let tv = t.get(p).and_then(|(v, _)| v.as_deref());
            if sv == tv {
                continue;
            }
            let about_roles = p == OWNER || p.starts_with(PRIVILEGES);
            let missing: Vec<&str> = sroles
                .iter()
                .filter(|r| !target_roles.contains(*r))
                .map(|r| r.as_str())
                .collect();
            // `roles: create` never creates the managed services' own roles (`rds_*`, ...).
            let uncreatable = missing.iter().all(|r| crate::roles::is_service_role(r));
            if about_roles && !missing.is_empty() && (!roles_created || uncreatable) {
                found.notes.push(format!(
                    "{}: {p}: not moved: role missing on the target ({}); source {}, target {}",
                    display(o),
                    missing.join(", "),
                    sv.unwrap_or(NONE),
                    tv.unwrap_or(NONE)
                ));
                continue;
            }
            found.diffs.push(ObjectDiff {
                kind: o.0,
                // Default privileges are named with their schema, a schema by its name.
                schema: if matches!(o.0, ObjectKind::DefaultPrivileges | ObjectKind::Schema) {
                    String::new()
                } else {
                    o.1.clone()
                },
                name: o.2.clone(),
                difference: ObjectDifference::Definition,
                property: Some(p.clone()),
                source: Some(sv.unwrap_or(NONE).to_string()),
                target: Some(tv.unwrap_or(NONE).to_string()),
            });
        }
    }
    found
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn recorded_identities_read_as_the_catalogue_shows_them() {
        assert_eq!(identity_text("d", None), "default");
        assert_eq!(identity_text("n", None), "nothing");
        assert_eq!(identity_text("f", None), "full");
        assert_eq!(identity_text("i", Some("t_a_key")), "using index t_a_key");
    }

    /// (kind, schema, name, property, value, roles) of one property.
    type Row<'a> = (
        ObjectKind,
        &'a str,
        &'a str,
        &'a str,
        Option<&'a str>,
        &'a [&'a str],
    );

    /// One side's properties.
    fn props(rows: &[Row]) -> Props {
        let mut p = Props::new();
        for (k, schema, name, prop, val, roles) in rows {
            p.entry((*k, schema.to_string(), name.to_string()))
                .or_default()
                .insert(
                    prop.to_string(),
                    (
                        val.map(str::to_string),
                        roles.iter().map(|r| r.to_string()).collect(),
                    ),
                );
        }
        p
    }

    fn roles(names: &[&str]) -> BTreeSet<String> {
        names.iter().map(|r| r.to_string()).collect()
    }

    use ObjectKind::{DefaultPrivileges, Function, Table};

    #[test]
    fn a_property_differs_with_both_values_and_none_for_unset() {
        let s = props(&[
            (Table, "public", "t", "comment", Some("the t"), &[]),
            (
                Table,
                "public",
                "t",
                "row level security",
                Some("enabled+forced"),
                &[],
            ),
        ]);
        let t = props(&[
            (Table, "public", "t", "comment", None, &[]),
            (
                Table,
                "public",
                "t",
                "row level security",
                Some("disabled"),
                &[],
            ),
        ]);
        let f = judge(&s, &t, &roles(&[]), true, false);
        assert!(f.notes.is_empty());
        let got: Vec<(String, String, String)> = f
            .diffs
            .iter()
            .map(|d| {
                (
                    d.property.clone().unwrap_or_default(),
                    d.source.clone().unwrap_or_default(),
                    d.target.clone().unwrap_or_default(),
                )
            })
            .collect();
        assert_eq!(
            got,
            vec![
                ("comment".into(), "the t".into(), "none".into()),
                (
                    "row level security".into(),
                    "enabled+forced".into(),
                    "disabled".into()
                ),
            ]
        );
        assert!(f.diffs.iter().all(|d| d.kind == Table
            && d.schema == "public"
            && d.name == "t"
            && d.difference == ObjectDifference::Definition));
    }

    #[test]
    fn an_object_on_one_side_only_is_left_to_the_inventory_but_default_privileges_are_not() {
        let s = props(&[
            (
                Function,
                "public",
                "f(integer)",
                "owner",
                Some("alice"),
                &["alice"],
            ),
            (
                DefaultPrivileges,
                "public",
                "for role postgres on tables in schema public",
                "privileges of alice",
                Some("SELECT"),
                &["postgres", "alice"],
            ),
        ]);
        let f = judge(
            &s,
            &Props::new(),
            &roles(&["alice", "postgres"]),
            true,
            false,
        );
        assert_eq!(f.diffs.len(), 1, "{:?}", f.diffs);
        assert_eq!(f.diffs[0].kind, DefaultPrivileges);
        assert_eq!(f.diffs[0].schema, "", "named with its schema");
        assert_eq!(f.diffs[0].target.as_deref(), Some("none"));
    }

    #[test]
    fn a_role_missing_on_the_target_is_a_note_unless_roles_were_copied() {
        let s = props(&[
            (Table, "public", "t", "owner", Some("ghost"), &["ghost"]),
            (
                Table,
                "public",
                "t",
                "privileges of ghost",
                Some("DELETE"),
                &["ghost"],
            ),
            (
                Table,
                "public",
                "t",
                "privileges of bob",
                Some("SELECT"),
                &["bob"],
            ),
        ]);
        let t = props(&[(
            Table,
            "public",
            "t",
            "owner",
            Some("postgres"),
            &["postgres"],
        )]);
        let have = roles(&["postgres", "bob"]);
        let f = judge(&s, &t, &have, true, false);
        assert_eq!(
            f.notes,
            vec![
                "table public.t: owner: not moved: role missing on the target (ghost); source ghost, target postgres",
                "table public.t: privileges of ghost: not moved: role missing on the target (ghost); source DELETE, target none",
            ]
        );
        // bob exists: his lost grant is a difference.
        assert_eq!(f.diffs.len(), 1);
        assert_eq!(f.diffs[0].property.as_deref(), Some("privileges of bob"));

        let f = judge(&s, &t, &have, true, true);
        assert!(f.notes.is_empty());
        assert_eq!(f.diffs.len(), 3, "roles: create: every one is a difference");

        // owner: target-user: owners are not compared.
        let f = judge(&s, &t, &have, false, true);
        assert!(f
            .diffs
            .iter()
            .all(|d| d.property.as_deref() != Some("owner")));
        assert_eq!(f.diffs.len(), 2);
    }

    #[test]
    fn the_recorded_identity_stands_for_pgmoves_full() {
        let mut s = props(&[
            (
                Table,
                "public",
                "keyless",
                "replica identity",
                Some("full"),
                &[],
            ),
            (
                Table,
                "public",
                "mine",
                "replica identity",
                Some("full"),
                &[],
            ),
            (
                Table,
                "public",
                "quiet",
                "replica identity",
                Some("default"),
                &[],
            ),
        ]);
        let recorded: HashMap<(String, String), String> = [
            (("public".into(), "keyless".into()), "default".into()),
            (("public".into(), "quiet".into()), "nothing".into()),
        ]
        .into_iter()
        .collect();
        use_recorded_identities(&mut s, &recorded);
        let identity = |n: &str| {
            s[&(Table, "public".to_string(), n.to_string())]["replica identity"]
                .0
                .clone()
        };
        assert_eq!(identity("keyless").as_deref(), Some("default"));
        // FULL set by the user (nothing recorded) stays FULL.
        assert_eq!(identity("mine").as_deref(), Some("full"));
        // Only pgmove's FULL is replaced: a table changed since keeps what it has.
        assert_eq!(identity("quiet").as_deref(), Some("default"));
    }

    #[test]
    fn privileges_only_one_major_has_leave_the_values_and_no_other_does() {
        let s = props(&[
            (
                Table,
                "public",
                "t",
                "privileges of the owner",
                Some("DELETE, INSERT, SELECT"),
                &[],
            ),
            (
                Table,
                "public",
                "t",
                "privileges of bob",
                Some("SELECT"),
                &["bob"],
            ),
        ]);
        let mut t = props(&[
            (
                Table,
                "public",
                "t",
                "privileges of the owner",
                Some("DELETE, INSERT, MAINTAIN, SELECT"),
                &[],
            ),
            (
                Table,
                "public",
                "t",
                "privileges of bob",
                Some("MAINTAIN WITH GRANT OPTION"),
                &["bob"],
            ),
            (Table, "public", "t", "comment", Some("MAINTAIN"), &[]),
        ]);
        let mut same = t.clone();
        assert!(!leave_out_privileges(&mut same, &[]), "one major: nothing");
        assert_eq!(same, t);
        assert!(leave_out_privileges(&mut t, &["MAINTAIN"]));
        let value = |p: &str| {
            t[&(Table, "public".to_string(), "t".to_string())][p]
                .0
                .clone()
        };
        assert_eq!(
            value("privileges of the owner").as_deref(),
            Some("DELETE, INSERT, SELECT")
        );
        assert_eq!(value("privileges of bob"), None);
        assert_eq!(
            value("comment").as_deref(),
            Some("MAINTAIN"),
            "not a privilege"
        );
        // bob's SELECT on the source, lost on the target, is still a difference.
        let f = judge(&s, &t, &roles(&["bob"]), true, false);
        let got: Vec<(Option<String>, Option<String>, Option<String>)> = f
            .diffs
            .iter()
            .map(|d| (d.property.clone(), d.source.clone(), d.target.clone()))
            .collect();
        assert_eq!(
            got,
            vec![
                (
                    Some("comment".into()),
                    Some("none".into()),
                    Some("MAINTAIN".into())
                ),
                (
                    Some("privileges of bob".into()),
                    Some("SELECT".into()),
                    Some("none".into())
                ),
            ]
        );
    }

    #[test]
    fn every_kind_the_queries_name_is_known() {
        for k in [
            "table",
            "view",
            "materialized view",
            "sequence",
            "foreign table",
            "index",
            "column",
            "function",
            "type",
            "schema",
            "constraint",
            "trigger",
            "large object",
            "default privileges",
        ] {
            let kind = kind(k).expect(k);
            assert_eq!(kind.to_string(), k);
        }
    }
}
