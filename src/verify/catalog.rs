//! The tables (with columns and the key chunks are cut by) and sequences of one server.

use std::collections::HashMap;

use crate::pg::quote;

use super::session::Conn;
use super::{Scope, SequenceState, VerifyError};

/// A table, partitioned table or populated materialized view in scope.
#[derive(Debug, Clone)]
pub(crate) struct RelInfo {
    pub schema: String,
    pub name: String,
    /// relkind 'p'.
    pub partitioned: bool,
    /// `schema.name` of the partition parent.
    pub parent: Option<String>,
    /// In attnum order.
    pub columns: Vec<ColumnInfo>,
    /// The primary key, else the narrowest unique btree index on NOT NULL columns.
    pub key: Option<Vec<String>>,
    /// An extension configuration table's dump condition (`extcondition` without its
    /// `WHERE`): only the rows matching it are compared, as pg_dump dumps only those (the
    /// others are the extension's own, put there by `CREATE EXTENSION` on each server, and
    /// may differ between extension versions). `None`: every row.
    pub filter: Option<String>,
}

#[derive(Debug, Clone)]
pub(crate) struct ColumnInfo {
    pub name: String,
    /// `format_type(atttypid, atttypmod)`: usable in a cast.
    pub type_name: String,
    /// The effective collation (provider and locale), empty for non-collatable types.
    pub collation: String,
    /// Type, collation, NOT NULL, default or generation expression, identity.
    pub definition: String,
}

#[derive(Debug, Clone)]
pub(crate) struct SeqInfo {
    pub schema: String,
    pub name: String,
    pub increment: i64,
    pub min: i64,
    pub max: i64,
    pub definition: String,
}

/// What verify needs to know about one server.
#[derive(Debug, Clone)]
pub(crate) struct Catalog {
    pub tables: Vec<RelInfo>,
    /// Materialized views that are populated (an unpopulated one cannot be read).
    pub matviews: Vec<RelInfo>,
    pub sequences: Vec<SeqInfo>,
    /// The server's `server_version_num`.
    pub version: i32,
}

/// Schemas pgmove never looks into.
pub(crate) const SYSTEM_SCHEMAS: &str = "n.nspname <> 'information_schema' AND n.nspname !~ '^pg_'";

/// Tables, partitioned tables and populated materialized views: oid, schema, name,
/// partitioned, parent (`schema.name` of a partition's), extension member, extension
/// configuration table, its dump condition (`extcondition`, or NULL), materialized view.
fn tables_sql() -> String {
    format!(
        "SELECT c.oid, n.nspname::text, c.relname::text, c.relkind = 'p',
       (SELECT pn.nspname::text || '.' || pc.relname::text
          FROM pg_inherits i
          JOIN pg_class pc ON pc.oid = i.inhparent
          JOIN pg_namespace pn ON pn.oid = pc.relnamespace
         WHERE i.inhrelid = c.oid AND c.relispartition
         LIMIT 1),
       EXISTS (SELECT 1 FROM pg_depend d
                WHERE d.classid = 'pg_class'::regclass AND d.objid = c.oid AND d.deptype = 'e'),
       EXISTS (SELECT 1 FROM pg_extension e WHERE c.oid = ANY (e.extconfig)),
       (SELECT x.cond FROM pg_extension e
          CROSS JOIN LATERAL unnest(e.extconfig, e.extcondition) AS x(reloid, cond)
         WHERE x.reloid = c.oid LIMIT 1),
       c.relkind = 'm'
  FROM pg_class c
  JOIN pg_namespace n ON n.oid = c.relnamespace
 WHERE (c.relkind IN ('r', 'p') OR (c.relkind = 'm' AND c.relispopulated))
   AND c.relpersistence <> 't' AND {SYSTEM_SCHEMAS}
 ORDER BY 2, 3"
    )
}

/// An `extcondition` as a predicate: without its leading `WHERE`; `None` when empty (every
/// row is dumped).
pub(crate) fn dump_condition(cond: Option<&str>) -> Option<String> {
    let c = cond?.trim();
    let rest = match c.get(..5) {
        Some(w) if w.eq_ignore_ascii_case("WHERE") => c[5..].trim(),
        _ => c,
    };
    (!rest.is_empty()).then(|| rest.to_string())
}

fn columns_sql(version: i32) -> String {
    let generated = if version >= 120000 {
        "a.attgenerated = 's'"
    } else {
        "false"
    };
    let (db_locale, coll_locale) = if version >= 170000 {
        ("d.datlocale", "co.colllocale")
    } else if version >= 150000 {
        ("d.daticulocale", "co.colliculocale")
    } else {
        ("NULL::text", "NULL::text")
    };
    format!(
        "SELECT a.attrelid, a.attname::text, format_type(a.atttypid, a.atttypmod),
       CASE WHEN a.attcollation = 0 THEN ''
            WHEN a.attcollation = 100 THEN
              (SELECT 'default:' || coalesce({db_locale}, '') || '/' || d.datcollate || '/' || d.datctype
                 FROM pg_database d WHERE d.datname = current_database())
            ELSE co.collname::text || ':' || co.collprovider::text || ':' || coalesce({coll_locale}, '')
                 || '/' || coalesce(co.collcollate, '')
       END,
       format_type(a.atttypid, a.atttypmod)
       || CASE WHEN a.attcollation <> 0 AND a.attcollation <> ty.typcollation
               THEN ' COLLATE ' || quote_ident(co.collname) ELSE '' END
       || CASE WHEN a.attnotnull THEN ' NOT NULL' ELSE '' END
       || CASE WHEN {generated}
               THEN ' GENERATED ALWAYS AS (' || pg_get_expr(ad.adbin, ad.adrelid) || ') STORED'
               ELSE coalesce(' DEFAULT ' || pg_get_expr(ad.adbin, ad.adrelid), '') END
       || CASE a.attidentity WHEN 'a' THEN ' GENERATED ALWAYS AS IDENTITY'
                             WHEN 'd' THEN ' GENERATED BY DEFAULT AS IDENTITY' ELSE '' END
  FROM pg_attribute a
  JOIN pg_class c ON c.oid = a.attrelid
  JOIN pg_namespace n ON n.oid = c.relnamespace
  JOIN pg_type ty ON ty.oid = a.atttypid
  LEFT JOIN pg_collation co ON co.oid = a.attcollation
  LEFT JOIN pg_attrdef ad ON ad.adrelid = a.attrelid AND ad.adnum = a.attnum
 WHERE a.attnum > 0 AND NOT a.attisdropped AND c.relkind IN ('r', 'p', 'm')
   AND c.relpersistence <> 't' AND {SYSTEM_SCHEMAS}
 ORDER BY a.attrelid, a.attnum"
    )
}

fn keys_sql(version: i32) -> String {
    let nkey = if version >= 110000 {
        "i.indnkeyatts"
    } else {
        "i.indnatts"
    };
    format!(
        "SELECT i.indrelid, i.indisprimary, ic.relname::text,
       array_agg(a.attname::text ORDER BY k.ord)
  FROM pg_index i
  JOIN pg_class ic ON ic.oid = i.indexrelid
  JOIN pg_class tc ON tc.oid = i.indrelid
  JOIN pg_namespace n ON n.oid = tc.relnamespace
  JOIN pg_am am ON am.oid = ic.relam
  CROSS JOIN LATERAL unnest(i.indkey::int2[]) WITH ORDINALITY AS k(attnum, ord)
  JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = k.attnum
 WHERE tc.relkind IN ('r', 'm') AND {SYSTEM_SCHEMAS}
   AND i.indisunique AND i.indisvalid AND i.indimmediate
   AND i.indpred IS NULL AND i.indexprs IS NULL AND am.amname = 'btree'
   AND k.ord <= {nkey}
 GROUP BY i.indrelid, i.indexrelid, i.indisprimary, ic.relname
HAVING bool_and(a.attnotnull)"
    )
}

fn sequences_sql() -> String {
    format!(
        "SELECT n.nspname::text, c.relname::text, format_type(s.seqtypid, NULL),
       s.seqstart, s.seqincrement, s.seqmin, s.seqmax, s.seqcache, s.seqcycle,
       EXISTS (SELECT 1 FROM pg_depend d
                WHERE d.classid = 'pg_class'::regclass AND d.objid = c.oid AND d.deptype = 'e')
  FROM pg_sequence s
  JOIN pg_class c ON c.oid = s.seqrelid
  JOIN pg_namespace n ON n.oid = c.relnamespace
 WHERE c.relpersistence <> 't' AND {SYSTEM_SCHEMAS}
 ORDER BY 1, 2"
    )
}

impl Catalog {
    /// Reads tables, columns, keys and sequences in `scope`. Relations that belong to an
    /// extension are left out, except its configuration tables (whose rows pg_dump copies).
    pub async fn read(conn: &Conn, scope: &Scope) -> Result<Catalog, VerifyError> {
        let side = conn.side();
        let rows = conn
            .query(&format!("listing the {side}'s tables"), &tables_sql(), &[])
            .await?;
        let mut tables = Vec::new();
        // Materialized views go to `tables` first (one index for columns and keys), then move.
        let mut is_matview = Vec::new();
        let mut by_oid: HashMap<u32, usize> = HashMap::new();
        for r in rows {
            let schema: String = r.get(1);
            let name: String = r.get(2);
            let ext_member: bool = r.get(5);
            let ext_config: bool = r.get(6);
            if !scope.relation(&schema, &name) || (ext_member && !ext_config) {
                continue;
            }
            by_oid.insert(r.get(0), tables.len());
            is_matview.push(r.get::<_, bool>(8));
            tables.push(RelInfo {
                schema,
                name,
                partitioned: r.get(3),
                parent: r.get(4),
                columns: Vec::new(),
                key: None,
                filter: dump_condition(r.get::<_, Option<String>>(7).as_deref()),
            });
        }

        let rows = conn
            .query(
                &format!("listing the {side}'s columns"),
                &columns_sql(conn.version),
                &[],
            )
            .await?;
        for r in rows {
            let oid: u32 = r.get(0);
            if let Some(&i) = by_oid.get(&oid) {
                tables[i].columns.push(ColumnInfo {
                    name: r.get(1),
                    type_name: r.get(2),
                    collation: r.get::<_, Option<String>>(3).unwrap_or_default(),
                    definition: r.get(4),
                });
            }
        }

        let rows = conn
            .query(
                &format!("listing the {side}'s keys"),
                &keys_sql(conn.version),
                &[],
            )
            .await?;
        // Per table: (not primary, width, index name) — the smallest wins.
        type Rank = (bool, usize, String);
        let mut best: HashMap<usize, (Rank, Vec<String>)> = HashMap::new();
        for r in rows {
            let oid: u32 = r.get(0);
            let Some(&i) = by_oid.get(&oid) else { continue };
            let primary: bool = r.get(1);
            let index: String = r.get(2);
            let cols: Vec<String> = r.get(3);
            let rank = (!primary, cols.len(), index);
            match best.get(&i) {
                Some((b, _)) if *b <= rank => {}
                _ => {
                    best.insert(i, (rank, cols));
                }
            }
        }
        for (i, (_, cols)) in best {
            tables[i].key = Some(cols);
        }
        let (matviews, tables): (Vec<_>, Vec<_>) =
            tables.into_iter().zip(is_matview).partition(|(_, m)| *m);
        let matviews: Vec<RelInfo> = matviews.into_iter().map(|(t, _)| t).collect();
        let tables: Vec<RelInfo> = tables.into_iter().map(|(t, _)| t).collect();

        let rows = conn
            .query(
                &format!("listing the {side}'s sequences"),
                &sequences_sql(),
                &[],
            )
            .await?;
        let mut sequences = Vec::new();
        for r in rows {
            let schema: String = r.get(0);
            let name: String = r.get(1);
            let ext_member: bool = r.get(9);
            if ext_member || !scope.relation(&schema, &name) {
                continue;
            }
            let type_name: String = r.get(2);
            let (start, increment, min, max, cache, cycle): (i64, i64, i64, i64, i64, bool) =
                (r.get(3), r.get(4), r.get(5), r.get(6), r.get(7), r.get(8));
            sequences.push(SeqInfo {
                schema,
                name,
                increment,
                min,
                max,
                definition: format!(
                    "{type_name} start {start} increment {increment} minvalue {min} maxvalue {max} cache {cache}{}",
                    if cycle { " cycle" } else { " no cycle" }
                ),
            });
        }
        Ok(Catalog {
            tables,
            matviews,
            sequences,
            version: conn.version,
        })
    }
}

/// The state of each sequence in `seqs`, in order; 200 sequences per query.
pub(crate) async fn sequence_states(
    conn: &Conn,
    seqs: &[SeqInfo],
) -> Result<Vec<SequenceState>, VerifyError> {
    let mut out = Vec::with_capacity(seqs.len());
    for batch in seqs.chunks(200) {
        let sql = batch
            .iter()
            .enumerate()
            .map(|(i, s)| {
                format!(
                    "SELECT {i}::int4, last_value::int8, is_called FROM {}",
                    quote::qualified(&s.schema, &s.name)
                )
            })
            .collect::<Vec<_>>()
            .join(" UNION ALL ");
        let rows = conn
            .query(
                &format!("reading the {}'s sequences", conn.side()),
                &format!("SELECT * FROM ({sql}) s ORDER BY 1"),
                &[],
            )
            .await?;
        for (r, s) in rows.iter().zip(batch) {
            let last_value: i64 = r.get(1);
            let is_called: bool = r.get(2);
            let next_value = if is_called {
                let n = last_value.saturating_add(s.increment);
                n.clamp(s.min.min(s.max), s.max.max(s.min))
            } else {
                last_value
            };
            out.push(SequenceState {
                last_value,
                is_called,
                next_value,
                definition: s.definition.clone(),
            });
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::dump_condition;

    #[test]
    fn dump_conditions_lose_their_where() {
        assert_eq!(
            dump_condition(Some("WHERE NOT (srid BETWEEN 1 AND 2)")).as_deref(),
            Some("NOT (srid BETWEEN 1 AND 2)")
        );
        assert_eq!(
            dump_condition(Some("  where\n x > 1 ")).as_deref(),
            Some("x > 1")
        );
        assert_eq!(dump_condition(Some("")), None);
        assert_eq!(dump_condition(None), None);
    }
}
