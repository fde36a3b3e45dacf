//! The object inventory of both servers, compared by normalized definition.

use std::collections::{BTreeMap, BTreeSet};

use super::across_majors;
use super::catalog::{Catalog, SYSTEM_SCHEMAS};
use super::session::{Conn, Pair};
use super::{ObjectDiff, ObjectDifference, ObjectKind, SchemaCount, Scope, VerifyError};

/// One object: what it is, where, and how it is defined.
#[derive(Debug, Clone)]
struct Entry {
    kind: ObjectKind,
    schema: String,
    /// The table (or view) the object belongs to.
    owner: Option<String>,
    name: String,
    definition: String,
}

pub(crate) struct Inventory {
    pub diffs: Vec<ObjectDiff>,
    pub function_counts: Vec<SchemaCount>,
}

/// `NOT EXISTS` an extension membership of the object `oid` in catalog `class`.
fn not_in_extension(class: &str, oid: &str) -> String {
    format!(
        "NOT EXISTS (SELECT 1 FROM pg_depend d WHERE d.classid = '{class}'::regclass AND d.objid = {oid} AND d.deptype = 'e')"
    )
}

/// Queries returning (schema, owning table or NULL, name, definition).
fn schemas_sql() -> String {
    format!(
        "SELECT n.nspname::text, NULL::text, n.nspname::text, ''
  FROM pg_namespace n WHERE {SYSTEM_SCHEMAS} AND {}",
        not_in_extension("pg_namespace", "n.oid")
    )
}

fn extensions_sql() -> &'static str {
    "SELECT n.nspname::text, NULL::text, e.extname::text,
        'version ' || e.extversion || ', schema ' || quote_ident(n.nspname)
   FROM pg_extension e JOIN pg_namespace n ON n.oid = e.extnamespace"
}

fn indexes_sql() -> String {
    format!(
        "SELECT n.nspname::text, tc.relname::text, ic.relname::text,
       pg_get_indexdef(i.indexrelid) || CASE WHEN i.indisvalid THEN '' ELSE ' [INVALID]' END
  FROM pg_index i
  JOIN pg_class ic ON ic.oid = i.indexrelid
  JOIN pg_class tc ON tc.oid = i.indrelid
  JOIN pg_namespace n ON n.oid = ic.relnamespace
 WHERE tc.relkind IN ('r', 'p', 'm') AND tc.relpersistence <> 't' AND {SYSTEM_SCHEMAS} AND {}",
        not_in_extension("pg_class", "tc.oid")
    )
}

fn constraints_sql() -> String {
    format!(
        "SELECT n.nspname::text, coalesce(tc.relname, ty.typname)::text,
       coalesce(tc.relname, ty.typname)::text || '.' || c.conname::text,
       pg_get_constraintdef(c.oid)
  FROM pg_constraint c
  JOIN pg_namespace n ON n.oid = c.connamespace
  LEFT JOIN pg_class tc ON tc.oid = c.conrelid
  LEFT JOIN pg_type ty ON ty.oid = c.contypid
 WHERE {SYSTEM_SCHEMAS} AND c.contype <> 'n' AND (tc.oid IS NOT NULL OR ty.oid IS NOT NULL)
   AND coalesce(tc.relpersistence, 'p') <> 't'
   AND {} AND {}",
        not_in_extension("pg_class", "coalesce(tc.oid, 0)"),
        not_in_extension("pg_type", "coalesce(ty.oid, 0)")
    )
}

fn triggers_sql(version: i32) -> String {
    // Clones of a partitioned table's trigger follow from the parent's.
    let clones = if version >= 130000 {
        "AND t.tgparentid = 0"
    } else {
        ""
    };
    format!(
        "SELECT n.nspname::text, c.relname::text, c.relname::text || '.' || t.tgname::text,
       pg_get_triggerdef(t.oid)
       || CASE t.tgenabled WHEN 'D' THEN ' [DISABLED]' WHEN 'R' THEN ' [ENABLE REPLICA]'
                           WHEN 'A' THEN ' [ENABLE ALWAYS]' ELSE '' END
  FROM pg_trigger t
  JOIN pg_class c ON c.oid = t.tgrelid
  JOIN pg_namespace n ON n.oid = c.relnamespace
 WHERE NOT t.tgisinternal {clones} AND {SYSTEM_SCHEMAS} AND {}",
        not_in_extension("pg_class", "c.oid")
    )
}

fn views_sql(relkind: char) -> String {
    format!(
        "SELECT n.nspname::text, c.relname::text, c.relname::text,
       pg_get_viewdef(c.oid, true)
       || coalesce(' WITH (' || array_to_string(c.reloptions, ', ') || ')', '')
       || CASE WHEN c.relkind = 'm' AND NOT c.relispopulated THEN ' [NOT POPULATED]' ELSE '' END
  FROM pg_class c
  JOIN pg_namespace n ON n.oid = c.relnamespace
 WHERE c.relkind = '{relkind}' AND c.relpersistence <> 't' AND {SYSTEM_SCHEMAS} AND {}",
        not_in_extension("pg_class", "c.oid")
    )
}

fn functions_sql(version: i32) -> String {
    let kind = if version >= 110000 {
        "p.prokind"
    } else {
        "CASE WHEN p.proisagg THEN 'a' WHEN p.proiswindow THEN 'w' ELSE 'f' END"
    };
    format!(
        "SELECT n.nspname::text, NULL::text,
       p.proname::text || '(' || pg_get_function_identity_arguments(p.oid) || ')',
       CASE WHEN {kind} = 'a'
            THEN 'aggregate returning ' || format_type(p.prorettype, NULL)
            ELSE pg_get_functiondef(p.oid) END
  FROM pg_proc p
  JOIN pg_namespace n ON n.oid = p.pronamespace
 WHERE {SYSTEM_SCHEMAS} AND {}",
        not_in_extension("pg_proc", "p.oid")
    )
}

fn types_sql() -> String {
    format!(
        "SELECT n.nspname::text, NULL::text, t.typname::text,
       CASE t.typtype
         WHEN 'e' THEN 'enum (' || coalesce((SELECT string_agg(quote_literal(e.enumlabel), ', ' ORDER BY e.enumsortorder)
                                              FROM pg_enum e WHERE e.enumtypid = t.oid), '') || ')'
         WHEN 'd' THEN 'domain over ' || format_type(t.typbasetype, t.typtypmod)
                       || CASE WHEN t.typnotnull THEN ' NOT NULL' ELSE '' END
                       || coalesce(' DEFAULT ' || t.typdefault, '')
         WHEN 'c' THEN 'composite (' || coalesce((SELECT string_agg(quote_ident(a.attname) || ' ' || format_type(a.atttypid, a.atttypmod), ', ' ORDER BY a.attnum)
                                                   FROM pg_attribute a
                                                  WHERE a.attrelid = t.typrelid AND a.attnum > 0 AND NOT a.attisdropped), '') || ')'
         WHEN 'r' THEN 'range of ' || (SELECT format_type(r.rngsubtype, NULL) FROM pg_range r WHERE r.rngtypid = t.oid)
       END
  FROM pg_type t
  JOIN pg_namespace n ON n.oid = t.typnamespace
 WHERE t.typtype IN ('e', 'd', 'c', 'r') AND {SYSTEM_SCHEMAS}
   AND (t.typtype <> 'c' OR (SELECT c.relkind FROM pg_class c WHERE c.oid = t.typrelid) = 'c')
   AND {}",
        not_in_extension("pg_type", "t.oid")
    )
}

/// Collapses every run of whitespace to one space.
pub(crate) fn normalize(def: &str) -> String {
    def.split_whitespace().collect::<Vec<_>>().join(" ")
}

async fn read(conn: &Conn, scope: &Scope) -> Result<Vec<Entry>, VerifyError> {
    let side = conn.side();
    let queries: Vec<(ObjectKind, String)> = vec![
        (ObjectKind::Schema, schemas_sql()),
        (ObjectKind::Extension, extensions_sql().to_string()),
        (ObjectKind::Type, types_sql()),
        (ObjectKind::Index, indexes_sql()),
        (ObjectKind::Constraint, constraints_sql()),
        (ObjectKind::Trigger, triggers_sql(conn.version)),
        (ObjectKind::View, views_sql('v')),
        (ObjectKind::MaterializedView, views_sql('m')),
        (ObjectKind::Function, functions_sql(conn.version)),
    ];
    let mut out = Vec::new();
    for (kind, sql) in queries {
        let rows = conn
            .query(&format!("listing the {side}'s {kind}s"), &sql, &[])
            .await?;
        for r in rows {
            let schema: String = r.get(0);
            let owner: Option<String> = r.get(1);
            let name: String = r.get(2);
            let def: Option<String> = r.get(3);
            let def = def.unwrap_or_default();
            let in_scope = match (kind, &owner) {
                (ObjectKind::Extension, _) => schema == "pg_catalog" || scope.schema(&schema),
                (_, Some(rel)) => scope.relation(&schema, rel),
                (_, None) => scope.schema(&schema),
            };
            if !in_scope {
                continue;
            }
            out.push(Entry {
                kind,
                schema: if kind == ObjectKind::Extension {
                    String::new()
                } else {
                    schema
                },
                owner,
                name,
                definition: normalize(&def),
            });
        }
    }
    Ok(out)
}

/// Columns of the tables present on both sides (a table missing on one side is reported as
/// a table, not column by column).
fn columns(cat: &Catalog, other: &Catalog) -> Vec<Entry> {
    let others: BTreeSet<(&str, &str)> = other
        .tables
        .iter()
        .map(|t| (t.schema.as_str(), t.name.as_str()))
        .collect();
    cat.tables
        .iter()
        .filter(|t| others.contains(&(t.schema.as_str(), t.name.as_str())))
        .flat_map(|t| {
            t.columns.iter().map(|c| Entry {
                kind: ObjectKind::Column,
                schema: t.schema.clone(),
                owner: Some(t.name.clone()),
                name: format!("{}.{}", t.name, c.name),
                definition: normalize(&c.definition),
            })
        })
        .collect()
}

type Key = (ObjectKind, String, String);

pub(crate) async fn compare(
    pair: &Pair,
    scope: &Scope,
    src_cat: &Catalog,
    tgt_cat: &Catalog,
) -> Result<Inventory, VerifyError> {
    let (mut src, mut tgt) = tokio::try_join!(read(&pair.src, scope), read(&pair.tgt, scope))?;
    src.extend(columns(src_cat, tgt_cat));
    tgt.extend(columns(tgt_cat, src_cat));

    let mut counts: BTreeMap<String, (u64, u64)> = BTreeMap::new();
    for e in src.iter().filter(|e| e.kind == ObjectKind::Function) {
        counts.entry(e.schema.clone()).or_default().0 += 1;
    }
    for e in tgt.iter().filter(|e| e.kind == ObjectKind::Function) {
        counts.entry(e.schema.clone()).or_default().1 += 1;
    }

    // A table missing on one side is reported as a table, not index by index.
    let tables = |c: &Catalog| -> BTreeSet<(String, String)> {
        c.tables
            .iter()
            .map(|t| (t.schema.clone(), t.name.clone()))
            .collect()
    };
    let (src_tables, tgt_tables) = (tables(src_cat), tables(tgt_cat));
    let one_sided: BTreeSet<&(String, String)> =
        src_tables.symmetric_difference(&tgt_tables).collect();
    let to_map = |v: Vec<Entry>| -> BTreeMap<Key, String> {
        v.into_iter()
            .filter(|e| match &e.owner {
                Some(owner) => !one_sided.contains(&(e.schema.clone(), owner.clone())),
                None => true,
            })
            .map(|e| ((e.kind, e.schema, e.name), e.definition))
            .collect()
    };
    let (src, tgt) = (to_map(src), to_map(tgt));
    let keys: BTreeSet<&Key> = src.keys().chain(tgt.keys()).collect();
    let mut diffs = Vec::new();
    for key in keys {
        let (s, t) = (src.get(key), tgt.get(key));
        let difference = match (s, t) {
            (Some(a), Some(b)) if a == b => continue,
            // The same query, printed by majors on either side of a rendering change.
            (Some(a), Some(b))
                if matches!(key.0, ObjectKind::View | ObjectKind::MaterializedView)
                    && across_majors::same_view_definition(
                        a,
                        b,
                        pair.src.version,
                        pair.tgt.version,
                    ) =>
            {
                continue
            }
            (Some(a), Some(b))
                if key.0 == ObjectKind::Trigger
                    && across_majors::same_trigger_definition(
                        a,
                        b,
                        pair.src.version,
                        pair.tgt.version,
                    ) =>
            {
                continue
            }
            (Some(_), Some(_)) => ObjectDifference::Definition,
            (Some(_), None) => ObjectDifference::MissingOnTarget,
            (None, Some(_)) => ObjectDifference::MissingOnSource,
            (None, None) => continue,
        };
        diffs.push(ObjectDiff {
            kind: key.0,
            schema: key.1.clone(),
            name: key.2.clone(),
            difference,
            property: None,
            source: s.cloned(),
            target: t.cloned(),
        });
    }
    Ok(Inventory {
        diffs,
        function_counts: counts
            .into_iter()
            .map(|(schema, (source, target))| SchemaCount {
                schema,
                source,
                target,
            })
            .collect(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normalizes_whitespace() {
        assert_eq!(
            normalize(" SELECT a,\n    b\n   FROM\tt;  "),
            "SELECT a, b FROM t;"
        );
    }
}
