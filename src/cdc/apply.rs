//! Turning decoded changes into SQL for the target, exactly.
//!
//! Values arrive as the source's text output (pgoutput, text mode) and are written as quoted
//! literals, which PostgreSQL coerces to the column's type with its input function, so every
//! type round-trips without the target knowing the source's type OIDs. The replication
//! session and the target session use the same output settings (see [`SESSION_SETTINGS`]), so
//! text comparisons for `REPLICA IDENTITY FULL` tables match.
//!
//! - INSERT: runs of inserts into one table with the same columns become one multi-row INSERT.
//! - UPDATE: sets only the columns sent (an unchanged TOASTed value is left alone), and finds
//!   the row by its old key when the key changed, else by the new tuple's key.
//! - UPDATE/DELETE on `REPLICA IDENTITY FULL`: matches every column of the old row by typed
//!   value: the stream's text goes through the column type's input function (`COALESCE((NULL::
//!   table).col, 'text')` has the column's type), and both sides are compared as that type's
//!   text output with `IS NOT DISTINCT FROM`. That is exact for every type, including those
//!   without an equality operator (json, point, xml) and those whose equality is looser than
//!   identity (numeric `1.0 = 1.00`, float `-0 = 0`, citext). Columns of built-in types whose
//!   `=` is implied by equal text (`exact_eq`: integers, text, numeric, timestamps...) are also
//!   compared with `=` (and only so where `=` is identity, `eq_is_identity`): that matches no
//!   other row, and lets the target find the row through an index on such a column (native replication before PostgreSQL 16 scans the whole table
//!   for each change). It touches exactly one row
//!   (`ctid = (... LIMIT 1)`), so duplicate rows stay duplicates, and returns a row naming the
//!   change when no row matched ([`FULL_MISS`], [`has_full_checks`]), which the applier reads
//!   before it commits: a change is never skipped silently.
//! - TRUNCATE: `TRUNCATE ONLY` of the tables, with `CASCADE` / `RESTART IDENTITY` as sent.
//!
//! A batch of whole transactions ([`Item`]s, see [`batch_sql`]) is applied with fewer, larger
//! statements: each table's changes gathered (changes to different tables commute when no
//! trigger or foreign key fires), runs of inserts as one multi-row INSERT, runs of updates by
//! an unchanged key as one `UPDATE ... FROM (VALUES ...)` with one row per key, runs of
//! updates that change the key (no key, old or new, twice in the run) as one such UPDATE
//! joined on the old key, runs of deletes by key as one `DELETE ... USING (VALUES ...)`. The
//! VALUES list's first row, `(NULL::table).column`, gives each column its target type, so the literals are read by the
//! same input functions as above. When the server refuses that (a second unique index seeing a
//! state between two rows), [`plain_sql`] applies the batch change by change.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use crate::pg::quote;

/// Output settings shared by the replication session and the target's apply session.
pub const SESSION_SETTINGS: &[(&str, &str)] = &[
    ("DateStyle", "ISO, MDY"),
    ("IntervalStyle", "postgres"),
    ("TimeZone", "UTC"),
    ("extra_float_digits", "3"),
    ("bytea_output", "hex"),
    ("lc_monetary", "C"),
];

/// One column value of a decoded tuple.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Val {
    Null,
    /// A TOASTed value that did not change and was not sent.
    Unchanged,
    Text(String),
}

impl Val {
    fn literal(&self) -> String {
        match self {
            Val::Null => "NULL".to_string(),
            Val::Text(t) => quote::literal(t),
            // Callers never render an unchanged value.
            Val::Unchanged => "DEFAULT".to_string(),
        }
    }
}

/// What the applier knows of a relation, from the stream's Relation message.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Rel {
    pub schema: String,
    pub name: String,
    pub columns: Vec<String>,
    /// Key columns (flag 1 in the Relation message): the replica identity.
    pub key: Vec<bool>,
    /// `REPLICA IDENTITY FULL`: the old tuple carries every column.
    pub full: bool,
    /// Each column's type OID on the source (the Relation message's); empty when unknown.
    /// Lets a `REPLICA IDENTITY FULL` change look its row up by `=` too (`exact_eq`).
    pub types: Vec<u32>,
}

/// Built-in types whose `=` holds exactly between values with the same text output (in the
/// apply session's settings, [`SESSION_SETTINGS`]): for these, `col = 'text'` alone finds the
/// row, without the costlier comparison of text outputs. Not float (`-0 = 0`), numeric
/// (`1.0 = 1.00`), bpchar (trailing blanks), nor text and varchar (a nondeterministic
/// collation's `=` is looser).
fn eq_is_identity(type_oid: u32) -> bool {
    matches!(
        type_oid,
        16     // bool
        | 17   // bytea
        | 20   // int8
        | 21   // int2
        | 23   // int4
        | 26   // oid
        | 1082 // date
        | 1083 // time
        | 1114 // timestamp
        | 1184 // timestamptz
        | 2950 // uuid
    )
}

/// Built-in types whose `=` holds between any two values with the same text output (it may
/// hold more widely: `bpchar` ignores trailing blanks, `numeric` scale): for these, `col =
/// 'text'` is implied by the exact text comparison, so adding it changes no match, and lets the
/// target use an index on `col` (or skip the costly text comparison of most rows). Not json,
/// xml, point (no `=`), money (its text depends on lc_monetary), nor any type outside
/// PostgreSQL's fixed OIDs (a domain or an extension's type may have a different OID, or none).
fn exact_eq(type_oid: u32) -> bool {
    matches!(
        type_oid,
        16     // bool
        | 17   // bytea
        | 19   // name
        | 20   // int8
        | 21   // int2
        | 23   // int4
        | 25   // text
        | 26   // oid
        | 700  // float4
        | 701  // float8
        | 1042 // bpchar
        | 1043 // varchar
        | 1082 // date
        | 1083 // time
        | 1114 // timestamp
        | 1184 // timestamptz
        | 1700 // numeric
        | 2950 // uuid
    )
}

impl Rel {
    fn qualified(&self) -> String {
        quote::qualified(&self.schema, &self.name)
    }
}

/// A row change to apply.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Change {
    Insert {
        rel: u32,
        new: Vec<Val>,
    },
    Update {
        rel: u32,
        /// The old key ('K') or old row ('O'), when sent.
        old: Option<Vec<Val>>,
        new: Vec<Val>,
    },
    Delete {
        rel: u32,
        old: Vec<Val>,
    },
    Truncate {
        rels: Vec<u32>,
        cascade: bool,
        restart_identity: bool,
    },
}

/// Why a change cannot be applied.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ApplyError {
    #[error("change for relation {0}, which the stream never described")]
    UnknownRelation(u32),
    #[error("{table}: {what}")]
    Shape { table: String, what: String },
}

fn shape(rel: &Rel, what: impl Into<String>) -> ApplyError {
    ApplyError::Shape {
        table: format!("{}.{}", rel.schema, rel.name),
        what: what.into(),
    }
}

/// `WHERE` matching the row identified by `vals` (an old key, old row or new row).
fn row_filter(rel: &Rel, vals: &[Val], use_all: bool) -> Result<String, ApplyError> {
    if vals.len() != rel.columns.len() {
        return Err(shape(
            rel,
            format!(
                "tuple of {} columns for {} columns",
                vals.len(),
                rel.columns.len()
            ),
        ));
    }
    let mut conds = Vec::new();
    // With `use_all`: `s.col = 'text'` for the columns whose type allows it ([`exact_eq`]),
    // before the exact comparisons: the same rows match, found through an index on the target.
    let mut eqs = Vec::new();
    for (i, (col, v)) in rel.columns.iter().zip(vals).enumerate() {
        let is_key = rel.key.get(i).copied().unwrap_or(false);
        if !(use_all || is_key) {
            continue;
        }
        if use_all && matches!(v, Val::Text(_)) && rel.types.get(i).copied().is_some_and(exact_eq) {
            eqs.push(format!("s.{} = {}", quote::ident(col), v.literal()));
        }
        match v {
            Val::Unchanged => {
                if is_key && !use_all {
                    return Err(shape(rel, format!("key column {col} was not sent")));
                }
            }
            Val::Null if use_all => conds.push(format!("s.{} IS NULL", quote::ident(col))),
            Val::Null => return Err(shape(rel, format!("key column {col} is NULL"))),
            // `=` is identity for this type: the text comparison would add nothing.
            Val::Text(_) if use_all && rel.types.get(i).copied().is_some_and(eq_is_identity) => {}
            Val::Text(_) if use_all => conds.push(format!(
                "s.{c}::text IS NOT DISTINCT FROM COALESCE((NULL::{t}).{c}, {})::text",
                v.literal(),
                c = quote::ident(col),
                t = rel.qualified()
            )),
            Val::Text(_) => conds.push(format!("{} = {}", quote::ident(col), v.literal())),
        }
    }
    if conds.is_empty() && eqs.is_empty() {
        return Err(shape(
            rel,
            "no replica identity: updates and deletes cannot find their row",
        ));
    }
    eqs.extend(conds);
    Ok(eqs.join(" AND "))
}

/// The statement that touches the identified row: by key, or exactly one matching row.
fn target_row(rel: &Rel, vals: &[Val], full: bool) -> Result<String, ApplyError> {
    if full {
        Ok(format!(
            "ctid = (SELECT s.ctid FROM ONLY {} AS s WHERE {} LIMIT 1)",
            rel.qualified(),
            row_filter(rel, vals, true)?
        ))
    } else {
        row_filter(rel, vals, false)
    }
}

/// The single UPDATE statement of one change; `None` when it sets nothing.
fn update_sql(r: &Rel, old: Option<&[Val]>, new: &[Val]) -> Result<Option<String>, ApplyError> {
    if new.len() != r.columns.len() {
        return Err(shape(r, "update tuple does not match the relation"));
    }
    // Key columns are set only when the key changed: setting a key to itself is useless
    // work, and refused for GENERATED ALWAYS identity columns.
    let key_changed = |i: usize| match old {
        Some(o) => o.get(i) != new.get(i),
        None => false,
    };
    let sets: Vec<String> = r
        .columns
        .iter()
        .zip(new)
        .enumerate()
        .filter(|(_, (_, v))| **v != Val::Unchanged)
        .filter(|(i, _)| !r.key.get(*i).copied().unwrap_or(false) || key_changed(*i))
        .map(|(_, (c, v))| format!("{} = {}", quote::ident(c), v.literal()))
        .collect();
    if sets.is_empty() {
        return Ok(None);
    }
    let (filter, full_old) = match old {
        Some(o) => (target_row(r, o, r.full)?, r.full.then_some(o)),
        None => (target_row(r, new, false)?, None),
    };
    let sql = format!(
        "UPDATE ONLY {} SET {} WHERE {filter};",
        r.qualified(),
        sets.join(", ")
    );
    Ok(Some(match full_old {
        Some(o) => must_match(r, "UPDATE", &sql, o),
        None => sql,
    }))
}

/// The single DELETE statement of one change.
fn delete_sql(r: &Rel, old: &[Val]) -> Result<String, ApplyError> {
    let sql = format!(
        "DELETE FROM ONLY {} WHERE {};",
        r.qualified(),
        target_row(r, old, r.full)?
    );
    Ok(if r.full {
        must_match(r, "DELETE", &sql, old)
    } else {
        sql
    })
}

/// The start of the error a `REPLICA IDENTITY FULL` change raises when it matches no row.
pub const FULL_MISS: &str = "pgmove: a captured";

/// How a `REPLICA IDENTITY FULL` statement begins (`must_match`): a batch holding one must
/// read what it returns before it commits ([`has_full_checks`]).
pub const FULL_CHECK: &str = "WITH pgmove_full AS (";

/// Whether `statements` hold a `REPLICA IDENTITY FULL` change, whose returned row (if any)
/// must be read before the transaction commits: a row starting with [`FULL_MISS`] is a change
/// that matched no row, and the transaction must be rolled back.
pub fn has_full_checks(statements: &[String]) -> bool {
    statements.iter().any(|s| s.starts_with(FULL_CHECK))
}

/// `sql` (an UPDATE or DELETE of a `REPLICA IDENTITY FULL` table, found by its whole old row)
/// as a statement that returns no row when it touched one, and a row (message, detail, hint)
/// naming the table, the old row's columns (values withheld: only NULL or their length) and
/// the fix when it matched none: the target's copy was changed behind pgmove's back, and
/// skipping the change would lose it silently. The applier reads that row before it commits
/// ([`has_full_checks`]) and fails with it. (A `DO` block raising the error itself costs about
/// twice the statement: PL/pgSQL compiles the block each time.)
fn must_match(r: &Rel, verb: &str, sql: &str, old: &[Val]) -> String {
    let table = r.qualified();
    let cols: Vec<String> = r
        .columns
        .iter()
        .zip(old)
        .map(|(c, v)| match v {
            Val::Null => format!("{c}=NULL"),
            Val::Unchanged => format!("{c}=(not sent)"),
            Val::Text(t) => format!("{c}=<{} chars>", t.chars().count()),
        })
        .collect();
    let message = format!(
        "{FULL_MISS} {verb} on {table} (no primary key, REPLICA IDENTITY FULL) matched no row on the target"
    );
    let detail = format!("the source's old row, values withheld: {}", cols.join(", "));
    let hint = format!(
        "the target's {table} no longer holds that row: it was changed or deleted on the target outside pgmove. \
         Put the row back on the target and run `pgmove apply` again (it resumes at this change), \
         or move the table again (`pgmove cleanup`, then `pgmove apply`); \
         giving {table} a primary key on the source lets changes find rows by key"
    );
    format!(
        "{FULL_CHECK}{} RETURNING 1) SELECT {}, {}, {} WHERE NOT EXISTS (SELECT FROM pgmove_full);",
        sql.trim_end_matches(';'),
        quote::literal(&message),
        quote::literal(&detail),
        quote::literal(&hint)
    )
}

/// SQL for a run of changes, in order. Consecutive inserts into the same table with the same
/// columns are merged into one multi-row INSERT.
pub fn to_sql(
    changes: &[Change],
    rels: &dyn Fn(u32) -> Option<Rel>,
) -> Result<Vec<String>, ApplyError> {
    let mut out = Vec::new();
    // (rel oid, column list, VALUES rows) of the insert being merged.
    let mut pending: Option<(u32, Vec<bool>, String, Vec<String>)> = None;
    let flush = |p: &mut Option<(u32, Vec<bool>, String, Vec<String>)>, out: &mut Vec<String>| {
        if let Some((_, _, head, rows)) = p.take() {
            out.push(format!("{head} VALUES {};", rows.join(", ")));
        }
    };
    for c in changes {
        match c {
            Change::Insert { rel, new } => {
                let r = rels(*rel).ok_or(ApplyError::UnknownRelation(*rel))?;
                if new.len() != r.columns.len() {
                    return Err(shape(&r, "insert tuple does not match the relation"));
                }
                let present: Vec<bool> = new.iter().map(|v| *v != Val::Unchanged).collect();
                let values = format!(
                    "({})",
                    new.iter()
                        .filter(|v| **v != Val::Unchanged)
                        .map(Val::literal)
                        .collect::<Vec<_>>()
                        .join(", ")
                );
                let same = matches!(&pending, Some((o, p, _, rows)) if o == rel && *p == present && rows.len() < 1000);
                if same {
                    if let Some((_, _, _, rows)) = pending.as_mut() {
                        rows.push(values);
                    }
                } else {
                    flush(&mut pending, &mut out);
                    let cols: Vec<String> = r
                        .columns
                        .iter()
                        .zip(&present)
                        .filter(|(_, p)| **p)
                        .map(|(c, _)| quote::ident(c))
                        .collect();
                    // Source values win over identity columns, GENERATED ALWAYS included.
                    let head = format!(
                        "INSERT INTO {} ({}) OVERRIDING SYSTEM VALUE",
                        r.qualified(),
                        cols.join(", ")
                    );
                    pending = Some((*rel, present, head, vec![values]));
                }
            }
            Change::Update { rel, old, new } => {
                flush(&mut pending, &mut out);
                let r = rels(*rel).ok_or(ApplyError::UnknownRelation(*rel))?;
                if let Some(sql) = update_sql(&r, old.as_deref(), new)? {
                    out.push(sql);
                }
            }
            Change::Delete { rel, old } => {
                flush(&mut pending, &mut out);
                let r = rels(*rel).ok_or(ApplyError::UnknownRelation(*rel))?;
                out.push(delete_sql(&r, old)?);
            }
            Change::Truncate {
                rels: oids,
                cascade,
                restart_identity,
            } => {
                flush(&mut pending, &mut out);
                let mut names = Vec::new();
                for o in oids {
                    names.push(rels(*o).ok_or(ApplyError::UnknownRelation(*o))?.qualified());
                }
                out.push(format!(
                    "TRUNCATE ONLY {}{}{};",
                    names.join(", "),
                    if *restart_identity {
                        " RESTART IDENTITY"
                    } else {
                        ""
                    },
                    if *cascade { " CASCADE" } else { "" }
                ));
            }
        }
    }
    flush(&mut pending, &mut out);
    Ok(out)
}

/// One step of a batch, in stream order.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Item {
    /// An insert, update or delete, with the relation as it was when the change was made.
    /// Made by [`to_items`], which checked it against the relation.
    Row(Arc<Rel>, Change),
    /// SQL that runs at exactly this point (DDL, TRUNCATE): nothing is moved across it.
    Sql(String),
}

impl From<String> for Item {
    fn from(sql: String) -> Item {
        Item::Sql(sql)
    }
}

/// Checks what [`row_filter`] would refuse, without building it.
fn check_filter(rel: &Rel, vals: &[Val], use_all: bool) -> Result<(), ApplyError> {
    if vals.len() != rel.columns.len() {
        return Err(shape(
            rel,
            format!(
                "tuple of {} columns for {} columns",
                vals.len(),
                rel.columns.len()
            ),
        ));
    }
    let mut any = false;
    for (i, (col, v)) in rel.columns.iter().zip(vals).enumerate() {
        let is_key = rel.key.get(i).copied().unwrap_or(false);
        if !(use_all || is_key) {
            continue;
        }
        match v {
            Val::Unchanged if is_key && !use_all => {
                return Err(shape(rel, format!("key column {col} was not sent")))
            }
            Val::Unchanged => {}
            Val::Null if !use_all => return Err(shape(rel, format!("key column {col} is NULL"))),
            _ => any = true,
        }
    }
    if !any {
        return Err(shape(
            rel,
            "no replica identity: updates and deletes cannot find their row",
        ));
    }
    Ok(())
}

/// Whether an update sets anything (else [`update_sql`] makes no statement).
fn update_sets_something(r: &Rel, old: Option<&[Val]>, new: &[Val]) -> bool {
    new.iter().enumerate().any(|(i, v)| {
        *v != Val::Unchanged
            && (!r.key.get(i).copied().unwrap_or(false)
                || old.is_some_and(|o| o.get(i) != new.get(i)))
    })
}

/// Checks one change against its relation, with the errors [`to_sql`] gives.
fn check(r: &Rel, c: &Change) -> Result<(), ApplyError> {
    match c {
        Change::Insert { new, .. } => {
            if new.len() != r.columns.len() {
                return Err(shape(r, "insert tuple does not match the relation"));
            }
        }
        Change::Update { old, new, .. } => {
            if new.len() != r.columns.len() {
                return Err(shape(r, "update tuple does not match the relation"));
            }
            if update_sets_something(r, old.as_deref(), new) {
                match old {
                    Some(o) => check_filter(r, o, r.full)?,
                    None => check_filter(r, new, false)?,
                }
            }
        }
        Change::Delete { old, .. } => check_filter(r, old, r.full)?,
        Change::Truncate { .. } => {}
    }
    Ok(())
}

/// Items for a run of changes made with the relations `rels` gives: each insert, update and
/// delete checked against its relation (the errors of [`to_sql`]), a TRUNCATE as its SQL.
pub fn to_items(
    changes: Vec<Change>,
    rels: &dyn Fn(u32) -> Option<Arc<Rel>>,
) -> Result<Vec<Item>, ApplyError> {
    let mut out = Vec::with_capacity(changes.len());
    // The relations of this run: looked up once each.
    let mut seen: Vec<(u32, Arc<Rel>)> = Vec::new();
    for c in changes {
        let oid = match &c {
            Change::Insert { rel, .. }
            | Change::Update { rel, .. }
            | Change::Delete { rel, .. } => *rel,
            Change::Truncate { .. } => {
                let lookup = |o: u32| rels(o).map(|r| (*r).clone());
                out.extend(
                    to_sql(std::slice::from_ref(&c), &lookup)?
                        .into_iter()
                        .map(Item::Sql),
                );
                continue;
            }
        };
        let r = match seen.iter().find(|(o, _)| *o == oid) {
            Some((_, r)) => r.clone(),
            None => {
                let r = rels(oid).ok_or(ApplyError::UnknownRelation(oid))?;
                seen.push((oid, r.clone()));
                r
            }
        };
        check(&r, &c)?;
        out.push(Item::Row(r, c));
    }
    Ok(out)
}

/// Rows per multi-row statement, at most.
const MAX_GROUP_ROWS: usize = 2000;

/// Planner settings for the multi-row UPDATE and DELETE (joins of a VALUES list with the table):
/// one index probe per row. A hash or merge join reads the whole table, which the planner
/// picks for a few thousand rows in a mid-sized table, and which is several times slower.
const JOINS_BY_INDEX: &str = "SET LOCAL enable_hashjoin = off; SET LOCAL enable_mergejoin = off;";
const JOINS_RESET: &str = "RESET enable_hashjoin; RESET enable_mergejoin;";

fn same_rel(a: &Arc<Rel>, b: &Arc<Rel>) -> bool {
    Arc::ptr_eq(a, b) || a == b
}

/// Statements of one table waiting in a batch, in order.
enum Group<'a> {
    /// Inserts with the same columns present.
    Insert {
        rel: &'a Arc<Rel>,
        present: Vec<bool>,
        rows: Vec<&'a [Val]>,
    },
    /// Updates found by a key they do not change, setting the same columns: one row per key,
    /// the last update of a key (it sets every column the earlier ones set).
    Update {
        rel: &'a Arc<Rel>,
        sets: Vec<bool>,
        rows: Vec<&'a [Val]>,
        by_key: HashMap<Vec<&'a str>, usize>,
    },
    /// Updates that change the key, found by their old key, setting the same columns. No key
    /// is in it twice, as an old or a new one: no row moves onto a key another row of the
    /// group leaves (the statement sees the keys as they were before it), none moves twice.
    KeyUpdate {
        rel: &'a Arc<Rel>,
        sets: Vec<bool>,
        /// (old key tuple, new tuple).
        rows: Vec<(&'a [Val], &'a [Val])>,
        keys: HashSet<Vec<&'a str>>,
    },
    /// Deletes by key.
    Delete {
        rel: &'a Arc<Rel>,
        rows: Vec<&'a [Val]>,
    },
    /// One statement as [`to_sql`] makes it.
    One(String),
}

/// The text of each key column of a (checked) key-identity tuple.
fn key_texts<'a>(r: &Rel, vals: &'a [Val]) -> Option<Vec<&'a str>> {
    let mut k = Vec::new();
    for (i, v) in vals.iter().enumerate() {
        if r.key.get(i).copied().unwrap_or(false) {
            match v {
                Val::Text(t) => k.push(t.as_str()),
                _ => return None,
            }
        }
    }
    (!k.is_empty()).then_some(k)
}

impl<'a> Group<'a> {
    /// Adds the change to this group, if it belongs there.
    fn absorb(&mut self, rel: &'a Arc<Rel>, c: &'a Change) -> bool {
        match (self, c) {
            (
                Group::Insert {
                    rel: g,
                    present,
                    rows,
                },
                Change::Insert { new, .. },
            ) if same_rel(g, rel)
                && rows.len() < MAX_GROUP_ROWS
                && present
                    .iter()
                    .zip(new)
                    .all(|(p, v)| *p == (*v != Val::Unchanged)) =>
            {
                rows.push(new);
                true
            }
            (
                Group::Update {
                    rel: g,
                    sets,
                    rows,
                    by_key,
                },
                Change::Update { old, new, .. },
            ) if same_rel(g, rel) && rows.len() < MAX_GROUP_ROWS => {
                match update_shape(rel, old.as_deref(), new) {
                    Some((s, key)) if s == *sets => {
                        match by_key.get(&key) {
                            Some(&i) => rows[i] = new,
                            None => {
                                by_key.insert(key, rows.len());
                                rows.push(new);
                            }
                        }
                        true
                    }
                    _ => false,
                }
            }
            (
                Group::KeyUpdate {
                    rel: g,
                    sets,
                    rows,
                    keys,
                },
                Change::Update { old, new, .. },
            ) if same_rel(g, rel) && rows.len() < MAX_GROUP_ROWS => {
                match key_update_shape(rel, old.as_deref(), new) {
                    Some((s, o, n, old))
                        if s == *sets && !keys.contains(&o) && !keys.contains(&n) =>
                    {
                        keys.insert(o);
                        keys.insert(n);
                        rows.push((old, new));
                        true
                    }
                    _ => false,
                }
            }
            (Group::Delete { rel: g, rows }, Change::Delete { old, .. })
                if same_rel(g, rel) && rows.len() < MAX_GROUP_ROWS && !rel.full =>
            {
                match key_texts(rel, old) {
                    Some(_) => {
                        rows.push(old);
                        true
                    }
                    None => false,
                }
            }
            _ => false,
        }
    }

    /// A new group holding the change.
    fn start(rel: &'a Arc<Rel>, c: &'a Change) -> Result<Option<Group<'a>>, ApplyError> {
        Ok(Some(match c {
            Change::Insert { new, .. } => Group::Insert {
                rel,
                present: new.iter().map(|v| *v != Val::Unchanged).collect(),
                rows: vec![new],
            },
            Change::Update { old, new, .. } => match update_shape(rel, old.as_deref(), new) {
                Some((sets, key)) => Group::Update {
                    rel,
                    sets,
                    rows: vec![new],
                    by_key: HashMap::from([(key, 0)]),
                },
                None => match key_update_shape(rel, old.as_deref(), new) {
                    Some((sets, o, n, old)) => Group::KeyUpdate {
                        rel,
                        sets,
                        rows: vec![(old, new)],
                        keys: HashSet::from([o, n]),
                    },
                    None => match update_sql(rel, old.as_deref(), new)? {
                        Some(sql) => Group::One(sql),
                        None => return Ok(None),
                    },
                },
            },
            Change::Delete { old, .. } if !rel.full && key_texts(rel, old).is_some() => {
                Group::Delete {
                    rel,
                    rows: vec![old],
                }
            }
            Change::Delete { old, .. } => Group::One(delete_sql(rel, old)?),
            Change::Truncate { .. } => {
                return Err(shape(rel, "TRUNCATE must come as SQL in a batch"))
            }
        }))
    }

    /// The group's statement(s); `joins_by_index` tracks [`JOINS_BY_INDEX`] in the transaction.
    fn render(self, out: &mut Vec<String>, joins_by_index: &mut bool) -> Result<(), ApplyError> {
        let mut need_index_joins = |out: &mut Vec<String>| {
            if !*joins_by_index {
                out.push(JOINS_BY_INDEX.to_string());
                *joins_by_index = true;
            }
        };
        match self {
            Group::One(sql) => out.push(sql),
            Group::Insert { rel, present, rows } => {
                let cols: Vec<String> = rel
                    .columns
                    .iter()
                    .zip(&present)
                    .filter(|(_, p)| **p)
                    .map(|(c, _)| quote::ident(c))
                    .collect();
                let mut sql = format!(
                    "INSERT INTO {} ({}) OVERRIDING SYSTEM VALUE VALUES ",
                    rel.qualified(),
                    cols.join(", ")
                );
                for (n, row) in rows.iter().enumerate() {
                    if n > 0 {
                        sql.push_str(", ");
                    }
                    push_tuple(&mut sql, row.iter().filter(|v| **v != Val::Unchanged));
                }
                sql.push(';');
                out.push(sql);
            }
            Group::Update { rel, rows, .. } if rows.len() == 1 => {
                if let Some(sql) = update_sql(rel, None, rows[0])? {
                    out.push(sql);
                }
            }
            Group::Update {
                rel, sets, rows, ..
            } => {
                need_index_joins(out);
                let keys: Vec<usize> = (0..rel.columns.len())
                    .filter(|i| rel.key.get(*i).copied().unwrap_or(false))
                    .collect();
                let set_cols: Vec<usize> = (0..rel.columns.len()).filter(|i| sets[*i]).collect();
                let cols: Vec<usize> = keys.iter().chain(&set_cols).copied().collect();
                let t = rel.qualified();
                let q = |i: &usize| quote::ident(&rel.columns[*i]);
                let mut sql = format!(
                    "UPDATE ONLY {t} AS t SET {} FROM (VALUES ",
                    set_cols
                        .iter()
                        .map(|i| format!("{c} = v.{c}", c = q(i)))
                        .collect::<Vec<_>>()
                        .join(", ")
                );
                typed_row(&mut sql, &t, cols.iter().map(q));
                for row in &rows {
                    sql.push_str(", ");
                    push_tuple(&mut sql, cols.iter().map(|i| &row[*i]));
                }
                sql.push_str(&format!(
                    ") AS v({}) WHERE {};",
                    cols.iter().map(q).collect::<Vec<_>>().join(", "),
                    keys.iter()
                        .map(|i| format!("t.{c} = v.{c}", c = q(i)))
                        .collect::<Vec<_>>()
                        .join(" AND ")
                ));
                out.push(sql);
            }
            Group::KeyUpdate { rel, rows, .. } if rows.len() == 1 => {
                if let Some(sql) = update_sql(rel, Some(rows[0].0), rows[0].1)? {
                    out.push(sql);
                }
            }
            Group::KeyUpdate {
                rel, sets, rows, ..
            } => {
                need_index_joins(out);
                let keys: Vec<usize> = (0..rel.columns.len())
                    .filter(|i| rel.key.get(*i).copied().unwrap_or(false))
                    .collect();
                let set_cols: Vec<usize> = (0..rel.columns.len()).filter(|i| sets[*i]).collect();
                let t = rel.qualified();
                let q = |i: &usize| quote::ident(&rel.columns[*i]);
                // VALUES columns: o0.. the old key, n0.. the columns set.
                let mut sql = format!(
                    "UPDATE ONLY {t} AS t SET {} FROM (VALUES ",
                    set_cols
                        .iter()
                        .enumerate()
                        .map(|(n, i)| format!("{} = v.n{n}", q(i)))
                        .collect::<Vec<_>>()
                        .join(", ")
                );
                typed_row(&mut sql, &t, keys.iter().chain(&set_cols).map(q));
                for (old, new) in &rows {
                    sql.push_str(", ");
                    push_tuple(
                        &mut sql,
                        keys.iter()
                            .map(|i| &old[*i])
                            .chain(set_cols.iter().map(|i| &new[*i])),
                    );
                }
                let names: Vec<String> = (0..keys.len())
                    .map(|n| format!("o{n}"))
                    .chain((0..set_cols.len()).map(|n| format!("n{n}")))
                    .collect();
                sql.push_str(&format!(
                    ") AS v({}) WHERE {};",
                    names.join(", "),
                    keys.iter()
                        .enumerate()
                        .map(|(n, i)| format!("t.{} = v.o{n}", q(i)))
                        .collect::<Vec<_>>()
                        .join(" AND ")
                ));
                out.push(sql);
            }
            Group::Delete { rel, rows } if rows.len() == 1 => out.push(delete_sql(rel, rows[0])?),
            Group::Delete { rel, rows } => {
                need_index_joins(out);
                let keys: Vec<usize> = (0..rel.columns.len())
                    .filter(|i| rel.key.get(*i).copied().unwrap_or(false))
                    .collect();
                let t = rel.qualified();
                let q = |i: &usize| quote::ident(&rel.columns[*i]);
                let mut sql = format!("DELETE FROM ONLY {t} AS t USING (VALUES ");
                typed_row(&mut sql, &t, keys.iter().map(q));
                for row in &rows {
                    sql.push_str(", ");
                    push_tuple(&mut sql, keys.iter().map(|i| &row[*i]));
                }
                sql.push_str(&format!(
                    ") AS v({}) WHERE {};",
                    keys.iter().map(q).collect::<Vec<_>>().join(", "),
                    keys.iter()
                        .map(|i| format!("t.{c} = v.{c}", c = q(i)))
                        .collect::<Vec<_>>()
                        .join(" AND ")
                ));
                out.push(sql);
            }
        }
        Ok(())
    }
}

/// For an update that can join a multi-row UPDATE: found by its key (not `REPLICA IDENTITY
/// FULL`), the key unchanged, something set: the columns it sets and its key's text.
fn update_shape<'a>(
    r: &Rel,
    old: Option<&[Val]>,
    new: &'a [Val],
) -> Option<(Vec<bool>, Vec<&'a str>)> {
    if r.full || new.len() != r.columns.len() {
        return None;
    }
    if let Some(o) = old {
        let same_key = (0..r.columns.len())
            .filter(|i| r.key.get(*i).copied().unwrap_or(false))
            .all(|i| o.get(i) == new.get(i));
        if !same_key {
            return None;
        }
    }
    let key = key_texts(r, new)?;
    let sets: Vec<bool> = new
        .iter()
        .enumerate()
        .map(|(i, v)| *v != Val::Unchanged && !r.key.get(i).copied().unwrap_or(false))
        .collect();
    sets.iter().any(|s| *s).then_some((sets, key))
}

/// For an update that can join a multi-row key-changing UPDATE: found by its old key (not
/// `REPLICA IDENTITY FULL`), the key changed, every key column of both tuples sent: the
/// columns it sets (the changed key columns and every sent non-key column), the old and the
/// new key's text, and the old key tuple.
#[allow(clippy::type_complexity)]
fn key_update_shape<'a>(
    r: &Rel,
    old: Option<&'a [Val]>,
    new: &'a [Val],
) -> Option<(Vec<bool>, Vec<&'a str>, Vec<&'a str>, &'a [Val])> {
    let old = old?;
    if r.full || new.len() != r.columns.len() || old.len() != r.columns.len() {
        return None;
    }
    let (o, n) = (key_texts(r, old)?, key_texts(r, new)?);
    if o == n {
        return None;
    }
    let sets: Vec<bool> = new
        .iter()
        .enumerate()
        .map(|(i, v)| {
            *v != Val::Unchanged && (!r.key.get(i).copied().unwrap_or(false) || old[i] != *v)
        })
        .collect();
    Some((sets, o, n, old))
}

/// `(v1, v2, ...)` of literals.
fn push_tuple<'v>(sql: &mut String, vals: impl Iterator<Item = &'v Val>) {
    sql.push('(');
    for (n, v) in vals.enumerate() {
        if n > 0 {
            sql.push_str(", ");
        }
        sql.push_str(&v.literal());
    }
    sql.push(')');
}

/// The first row of a VALUES list that gives each column the type of the table's column:
/// `((NULL::t)."a", (NULL::t)."b")`. The literal rows after it are then read with those types'
/// input functions, as in `WHERE "a" = '1'`.
fn typed_row(sql: &mut String, table: &str, cols: impl Iterator<Item = String>) {
    sql.push('(');
    for (n, c) in cols.enumerate() {
        if n > 0 {
            sql.push_str(", ");
        }
        sql.push_str(&format!("(NULL::{table}).{c}"));
    }
    sql.push(')');
}

/// SQL for a batch of items, fast: with `reorder_tables`, the changes of each table are
/// gathered (their order kept) and a table's run of inserts with the same columns becomes one
/// multi-row INSERT, its run of updates by an unchanged key setting the same columns one
/// `UPDATE ... FROM (VALUES ...)` (one row per key, the last update: it sets every column the
/// earlier ones set), its run of key-changing updates (no key twice) one `UPDATE ... FROM
/// (VALUES (old key, new values) ...)`, its run of deletes by key one `DELETE ... USING (VALUES
/// ...)`. Changes to different tables commute only when no trigger or foreign key on the target fires
/// (`session_replication_role = replica`): without `reorder_tables`, only consecutive changes
/// of a table are merged. [`Item::Sql`] is a barrier: everything before it runs before it.
///
/// The result equals running the items in order, or the transaction fails (a unique index
/// other than the key can see a state between two rows of one statement that the source never
/// had): then run [`plain_sql`] of the same items instead.
pub fn batch_sql(items: &[Item], reorder_tables: bool) -> Result<Vec<String>, ApplyError> {
    let mut out = Vec::new();
    // Per table (oid), in order of first appearance: its groups, in order.
    let mut tables: Vec<(u32, Vec<Group>)> = Vec::new();
    let mut joins_by_index = false;
    let drain = |tables: &mut Vec<(u32, Vec<Group>)>,
                 out: &mut Vec<String>,
                 joins: &mut bool|
     -> Result<(), ApplyError> {
        for (_, groups) in tables.drain(..) {
            for g in groups {
                g.render(out, joins)?;
            }
        }
        Ok(())
    };
    for item in items {
        match item {
            Item::Sql(sql) => {
                drain(&mut tables, &mut out, &mut joins_by_index)?;
                if joins_by_index {
                    out.push(JOINS_RESET.to_string());
                    joins_by_index = false;
                }
                out.push(sql.clone());
            }
            Item::Row(rel, c) => {
                let oid = match c {
                    Change::Insert { rel, .. }
                    | Change::Update { rel, .. }
                    | Change::Delete { rel, .. } => *rel,
                    Change::Truncate { .. } => {
                        return Err(shape(rel, "TRUNCATE must come as SQL in a batch"))
                    }
                };
                if !reorder_tables && tables.iter().any(|(o, _)| *o != oid) {
                    drain(&mut tables, &mut out, &mut joins_by_index)?;
                }
                let groups = match tables.iter().position(|(o, _)| *o == oid) {
                    Some(i) => &mut tables[i].1,
                    None => {
                        tables.push((oid, Vec::new()));
                        &mut tables.last_mut().expect("just pushed").1
                    }
                };
                if groups.last_mut().is_some_and(|g| g.absorb(rel, c)) {
                    continue;
                }
                if let Some(g) = Group::start(rel, c)? {
                    groups.push(g);
                }
            }
        }
    }
    drain(&mut tables, &mut out, &mut joins_by_index)?;
    Ok(out)
}

/// SQL for a batch of items exactly as [`to_sql`] makes it for each run of changes: every
/// change in order, only consecutive inserts into a table merged.
pub fn plain_sql(items: &[Item]) -> Result<Vec<String>, ApplyError> {
    let mut out = Vec::new();
    let mut run: Vec<Change> = Vec::new();
    let mut run_rels: Vec<(u32, &Arc<Rel>)> = Vec::new();
    let emit = |run: &mut Vec<Change>,
                run_rels: &mut Vec<(u32, &Arc<Rel>)>,
                out: &mut Vec<String>|
     -> Result<(), ApplyError> {
        if !run.is_empty() {
            let lookup = |o: u32| {
                run_rels
                    .iter()
                    .find(|(x, _)| *x == o)
                    .map(|(_, r)| Rel::clone(r))
            };
            out.extend(to_sql(run, &lookup)?);
            run.clear();
        }
        run_rels.clear();
        Ok(())
    };
    for item in items {
        match item {
            Item::Sql(sql) => {
                emit(&mut run, &mut run_rels, &mut out)?;
                out.push(sql.clone());
            }
            Item::Row(rel, c) => {
                let oid = match c {
                    Change::Insert { rel, .. }
                    | Change::Update { rel, .. }
                    | Change::Delete { rel, .. } => *rel,
                    Change::Truncate { .. } => {
                        return Err(shape(rel, "TRUNCATE must come as SQL in a batch"))
                    }
                };
                match run_rels.iter().find(|(o, _)| *o == oid) {
                    Some((_, r)) if same_rel(r, rel) => {}
                    Some(_) => {
                        emit(&mut run, &mut run_rels, &mut out)?;
                        run_rels.push((oid, rel));
                    }
                    None => run_rels.push((oid, rel)),
                }
                run.push(c.clone());
            }
        }
    }
    emit(&mut run, &mut run_rels, &mut out)?;
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rel(full: bool) -> Rel {
        Rel {
            schema: "public".into(),
            name: "T x".into(),
            columns: vec!["id".into(), "body".into(), "n".into()],
            key: vec![!full, false, false],
            full,
            types: vec![],
        }
    }

    fn t(s: &str) -> Val {
        Val::Text(s.into())
    }

    fn sql(changes: &[Change], full: bool) -> Vec<String> {
        to_sql(changes, &|o| (o == 1).then(|| rel(full))).expect("sql")
    }

    #[test]
    fn inserts_merge_into_one_statement_per_table_and_shape() {
        let s = sql(
            &[
                Change::Insert {
                    rel: 1,
                    new: vec![t("1"), t("it's"), Val::Null],
                },
                Change::Insert {
                    rel: 1,
                    new: vec![t("2"), t("b"), t("3")],
                },
                Change::Delete {
                    rel: 1,
                    old: vec![t("1"), Val::Null, Val::Null],
                },
                Change::Insert {
                    rel: 1,
                    new: vec![t("3"), Val::Unchanged, t("1")],
                },
            ],
            false,
        );
        assert_eq!(
            s,
            vec![
                r#"INSERT INTO "public"."T x" ("id", "body", "n") OVERRIDING SYSTEM VALUE VALUES ('1', 'it''s', NULL), ('2', 'b', '3');"#,
                r#"DELETE FROM ONLY "public"."T x" WHERE "id" = '1';"#,
                r#"INSERT INTO "public"."T x" ("id", "n") OVERRIDING SYSTEM VALUE VALUES ('3', '1');"#,
            ]
        );
    }

    #[test]
    fn updates_skip_unchanged_toast_and_use_the_old_key() {
        let s = sql(
            &[
                Change::Update {
                    rel: 1,
                    old: None,
                    new: vec![t("5"), Val::Unchanged, t("7")],
                },
                Change::Update {
                    rel: 1,
                    old: Some(vec![t("5"), Val::Null, Val::Null]),
                    new: vec![t("6"), Val::Unchanged, t("7")],
                },
            ],
            false,
        );
        assert_eq!(
            s,
            vec![
                r#"UPDATE ONLY "public"."T x" SET "n" = '7' WHERE "id" = '5';"#,
                r#"UPDATE ONLY "public"."T x" SET "id" = '6', "n" = '7' WHERE "id" = '5';"#,
            ]
        );
    }

    #[test]
    fn replica_identity_full_touches_exactly_one_matching_row() {
        let s = sql(
            &[Change::Delete {
                rel: 1,
                old: vec![t("1"), Val::Null, t("x\\y")],
            }],
            true,
        );
        assert_eq!(
            s,
            vec![
                r#"WITH pgmove_full AS (DELETE FROM ONLY "public"."T x" WHERE ctid = (SELECT s.ctid FROM ONLY "public"."T x" AS s WHERE s."id"::text IS NOT DISTINCT FROM COALESCE((NULL::"public"."T x")."id", '1')::text AND s."body" IS NULL AND s."n"::text IS NOT DISTINCT FROM COALESCE((NULL::"public"."T x")."n", E'x\\y')::text LIMIT 1) RETURNING 1) SELECT 'pgmove: a captured DELETE on "public"."T x" (no primary key, REPLICA IDENTITY FULL) matched no row on the target', 'the source''s old row, values withheld: id=<1 chars>, body=NULL, n=<3 chars>', 'the target''s "public"."T x" no longer holds that row: it was changed or deleted on the target outside pgmove. Put the row back on the target and run `pgmove apply` again (it resumes at this change), or move the table again (`pgmove cleanup`, then `pgmove apply`); giving "public"."T x" a primary key on the source lets changes find rows by key' WHERE NOT EXISTS (SELECT FROM pgmove_full);"#
            ]
        );
    }

    #[test]
    fn full_identity_values_stay_literals_whatever_they_hold() {
        let s = sql(
            &[Change::Delete {
                rel: 1,
                old: vec![t("$pgmove$"), Val::Null, t("x'); DROP TABLE t; --")],
            }],
            true,
        );
        assert!(s[0].starts_with("WITH pgmove_full AS (DELETE"), "{}", s[0]);
        assert!(s[0].contains("'$pgmove$'"), "{}", s[0]);
        assert!(s[0].contains("'x''); DROP TABLE t; --'"), "{}", s[0]);
        assert!(has_full_checks(&s));
        assert!(!has_full_checks(&sql(
            &[Change::Delete {
                rel: 1,
                old: vec![t("1"), Val::Null, Val::Null],
            }],
            false,
        )));
    }

    #[test]
    fn truncate_carries_its_flags() {
        let s = sql(
            &[Change::Truncate {
                rels: vec![1],
                cascade: true,
                restart_identity: true,
            }],
            false,
        );
        assert_eq!(
            s,
            vec![r#"TRUNCATE ONLY "public"."T x" RESTART IDENTITY CASCADE;"#]
        );
    }

    #[test]
    fn bad_input_is_an_error_not_a_panic() {
        let r = to_sql(
            &[Change::Insert {
                rel: 9,
                new: vec![],
            }],
            &|_| None,
        );
        assert_eq!(r, Err(ApplyError::UnknownRelation(9)));
        let r = to_sql(
            &[Change::Insert {
                rel: 1,
                new: vec![t("1")],
            }],
            &|_| Some(rel(false)),
        );
        assert!(r.is_err());
        let keyless = Rel {
            key: vec![false, false, false],
            ..rel(false)
        };
        let r = to_sql(
            &[Change::Delete {
                rel: 1,
                old: vec![t("1"), t("a"), t("b")],
            }],
            &|_| Some(keyless.clone()),
        );
        assert!(matches!(r, Err(ApplyError::Shape { .. })));
    }

    fn arc(full: bool) -> Arc<Rel> {
        Arc::new(rel(full))
    }

    fn other() -> Arc<Rel> {
        Arc::new(Rel {
            schema: "s".into(),
            name: "o".into(),
            columns: vec!["k".into(), "v".into()],
            key: vec![true, false],
            full: false,
            types: vec![],
        })
    }

    fn ins(r: &Arc<Rel>, oid: u32, new: Vec<Val>) -> Item {
        Item::Row(r.clone(), Change::Insert { rel: oid, new })
    }

    fn upd(r: &Arc<Rel>, oid: u32, old: Option<Vec<Val>>, new: Vec<Val>) -> Item {
        Item::Row(r.clone(), Change::Update { rel: oid, old, new })
    }

    fn del(r: &Arc<Rel>, oid: u32, old: Vec<Val>) -> Item {
        Item::Row(r.clone(), Change::Delete { rel: oid, old })
    }

    #[test]
    fn batch_gathers_each_tables_changes_and_merges_updates_by_key() {
        let r = arc(false);
        let o = other();
        let items = vec![
            upd(&r, 1, None, vec![t("1"), t("a"), t("10")]),
            upd(&o, 2, None, vec![t("7"), t("x")]),
            ins(&o, 2, vec![t("8"), t("y")]),
            upd(&r, 1, None, vec![t("2"), t("b"), t("20")]),
            upd(&o, 2, None, vec![t("9"), t("z")]),
            // The same key again: the last update wins, in the first one's place.
            upd(&r, 1, None, vec![t("1"), t("c"), Val::Null]),
            ins(&o, 2, vec![t("10"), Val::Null]),
        ];
        let s = batch_sql(&items, true).expect("sql");
        assert_eq!(
            s,
            vec![
                JOINS_BY_INDEX.to_string(),
                r#"UPDATE ONLY "public"."T x" AS t SET "body" = v."body", "n" = v."n" FROM (VALUES ((NULL::"public"."T x")."id", (NULL::"public"."T x")."body", (NULL::"public"."T x")."n"), ('1', 'c', NULL), ('2', 'b', '20')) AS v("id", "body", "n") WHERE t."id" = v."id";"#.to_string(),
                r#"UPDATE ONLY "s"."o" SET "v" = 'x' WHERE "k" = '7';"#.to_string(),
                r#"INSERT INTO "s"."o" ("k", "v") OVERRIDING SYSTEM VALUE VALUES ('8', 'y');"#.to_string(),
                r#"UPDATE ONLY "s"."o" SET "v" = 'z' WHERE "k" = '9';"#.to_string(),
                r#"INSERT INTO "s"."o" ("k", "v") OVERRIDING SYSTEM VALUE VALUES ('10', NULL);"#.to_string(),
            ]
        );
        // Without reordering, only consecutive changes of a table merge.
        let s = batch_sql(&items, false).expect("sql");
        assert_eq!(s.len(), 7);
        assert_eq!(s, plain_sql(&items).expect("plain"));
    }

    #[test]
    fn batch_keeps_each_tables_order_across_shapes_and_kinds() {
        let r = arc(false);
        let items = vec![
            ins(&r, 1, vec![t("1"), t("a"), t("1")]),
            ins(&r, 1, vec![t("2"), t("b"), t("2")]),
            // An unchanged TOASTed value: another shape.
            upd(&r, 1, None, vec![t("1"), Val::Unchanged, t("5")]),
            upd(&r, 1, None, vec![t("2"), Val::Unchanged, t("6")]),
            upd(&r, 1, None, vec![t("2"), t("B"), t("6")]),
            // Key changes and updates that set nothing stay as they are.
            upd(
                &r,
                1,
                Some(vec![t("2"), Val::Null, Val::Null]),
                vec![t("3"), Val::Unchanged, t("6")],
            ),
            upd(&r, 1, None, vec![t("3"), Val::Unchanged, Val::Unchanged]),
            del(&r, 1, vec![t("1"), Val::Null, Val::Null]),
            del(&r, 1, vec![t("3"), Val::Null, Val::Null]),
            ins(&r, 1, vec![t("1"), t("again"), t("1")]),
        ];
        let s = batch_sql(&items, true).expect("sql");
        assert_eq!(
            s,
            vec![
                r#"INSERT INTO "public"."T x" ("id", "body", "n") OVERRIDING SYSTEM VALUE VALUES ('1', 'a', '1'), ('2', 'b', '2');"#,
                JOINS_BY_INDEX,
                r#"UPDATE ONLY "public"."T x" AS t SET "n" = v."n" FROM (VALUES ((NULL::"public"."T x")."id", (NULL::"public"."T x")."n"), ('1', '5'), ('2', '6')) AS v("id", "n") WHERE t."id" = v."id";"#,
                r#"UPDATE ONLY "public"."T x" SET "body" = 'B', "n" = '6' WHERE "id" = '2';"#,
                r#"UPDATE ONLY "public"."T x" SET "id" = '3', "n" = '6' WHERE "id" = '2';"#,
                r#"DELETE FROM ONLY "public"."T x" AS t USING (VALUES ((NULL::"public"."T x")."id"), ('1'), ('3')) AS v("id") WHERE t."id" = v."id";"#,
                r#"INSERT INTO "public"."T x" ("id", "body", "n") OVERRIDING SYSTEM VALUE VALUES ('1', 'again', '1');"#,
            ]
        );
    }

    #[test]
    fn key_changes_merge_until_a_key_comes_twice() {
        let r = arc(false);
        let key = |k: &str| Some(vec![t(k), Val::Null, Val::Null]);
        let items = vec![
            upd(&r, 1, key("1"), vec![t("101"), Val::Unchanged, t("5")]),
            upd(&r, 1, key("2"), vec![t("102"), Val::Unchanged, t("6")]),
            // 101 is a key of the group: the next group moves it again.
            upd(&r, 1, key("101"), vec![t("201"), Val::Unchanged, t("7")]),
            // Another shape (body sent): a group of its own.
            upd(&r, 1, key("3"), vec![t("103"), t("b"), t("8")]),
        ];
        let s = batch_sql(&items, true).expect("sql");
        assert_eq!(
            s,
            vec![
                JOINS_BY_INDEX.to_string(),
                r#"UPDATE ONLY "public"."T x" AS t SET "id" = v.n0, "n" = v.n1 FROM (VALUES ((NULL::"public"."T x")."id", (NULL::"public"."T x")."id", (NULL::"public"."T x")."n"), ('1', '101', '5'), ('2', '102', '6')) AS v(o0, n0, n1) WHERE t."id" = v.o0;"#.to_string(),
                r#"UPDATE ONLY "public"."T x" SET "id" = '201', "n" = '7' WHERE "id" = '101';"#.to_string(),
                r#"UPDATE ONLY "public"."T x" SET "id" = '103', "body" = 'b', "n" = '8' WHERE "id" = '3';"#.to_string(),
            ]
        );
    }

    #[test]
    fn full_identity_rows_are_also_found_by_equality_on_exact_types() {
        let f = Arc::new(Rel {
            types: vec![23, 114, 1700],
            ..rel(true)
        });
        let items = vec![del(&f, 3, vec![t("1"), t("{}"), Val::Null])];
        let s = batch_sql(&items, true).expect("sql");
        // int4 by `=` alone (an index on it can find the row), json (114) by its text only,
        // NULL by IS NULL.
        assert!(
            s[0].contains(r#"WHERE s."id" = '1' AND s."body"::text IS NOT DISTINCT FROM"#),
            "{}",
            s[0]
        );
        assert!(!s[0].contains(r#"s."id"::text"#), "{}", s[0]);
        assert!(!s[0].contains(r#"s."body" ="#), "{}", s[0]);
        assert!(s[0].contains(r#"s."n" IS NULL"#), "{}", s[0]);
    }

    #[test]
    fn sql_items_are_barriers_and_full_identity_stays_row_by_row() {
        let r = arc(false);
        let f = Arc::new(Rel {
            name: "full".into(),
            ..rel(true)
        });
        let items = vec![
            upd(&r, 1, None, vec![t("1"), t("a"), t("1")]),
            upd(&r, 1, None, vec![t("2"), t("b"), t("2")]),
            upd(
                &f,
                3,
                Some(vec![t("1"), t("a"), t("1")]),
                vec![t("1"), t("a"), t("2")],
            ),
            Item::Sql("ALTER TABLE x ADD COLUMN y int;".into()),
            upd(
                &f,
                3,
                Some(vec![t("1"), t("a"), t("2")]),
                vec![t("1"), t("a"), t("3")],
            ),
            upd(&r, 1, None, vec![t("1"), t("c"), t("1")]),
        ];
        let s = batch_sql(&items, true).expect("sql");
        assert_eq!(s[0], JOINS_BY_INDEX);
        assert!(
            s[1].starts_with(r#"UPDATE ONLY "public"."T x" AS t SET"#),
            "{}",
            s[1]
        );
        assert!(s[2].starts_with(r#"WITH pgmove_full AS (UPDATE ONLY "public"."full" SET "id" = '1', "body" = 'a', "n" = '2' WHERE ctid = "#), "{}", s[2]);
        assert_eq!(s[3], JOINS_RESET);
        assert_eq!(s[4], "ALTER TABLE x ADD COLUMN y int;");
        assert!(
            s[5].starts_with(r#"WITH pgmove_full AS (UPDATE ONLY "public"."full" SET"#),
            "{}",
            s[5]
        );
        assert_eq!(
            s[6],
            r#"UPDATE ONLY "public"."T x" SET "body" = 'c', "n" = '1' WHERE "id" = '1';"#
        );
        assert_eq!(s.len(), 7);
    }

    #[test]
    fn a_relation_described_again_starts_new_statements() {
        let r1 = arc(false);
        let r2 = Arc::new(Rel {
            columns: vec!["id".into(), "body2".into(), "n".into()],
            ..rel(false)
        });
        let items = vec![
            ins(&r1, 1, vec![t("1"), t("a"), t("1")]),
            ins(&r2, 1, vec![t("2"), t("b"), t("2")]),
        ];
        for s in [
            batch_sql(&items, true).expect("sql"),
            plain_sql(&items).expect("plain"),
        ] {
            assert_eq!(
                s,
                vec![
                    r#"INSERT INTO "public"."T x" ("id", "body", "n") OVERRIDING SYSTEM VALUE VALUES ('1', 'a', '1');"#,
                    r#"INSERT INTO "public"."T x" ("id", "body2", "n") OVERRIDING SYSTEM VALUE VALUES ('2', 'b', '2');"#,
                ]
            );
        }
    }

    #[test]
    fn plain_sql_is_to_sql_of_each_run() {
        let r = arc(false);
        let changes = [
            Change::Insert {
                rel: 1,
                new: vec![t("1"), t("it's"), Val::Null],
            },
            Change::Insert {
                rel: 1,
                new: vec![t("2"), t("b"), t("3")],
            },
            Change::Update {
                rel: 1,
                old: None,
                new: vec![t("2"), Val::Unchanged, t("4")],
            },
            Change::Delete {
                rel: 1,
                old: vec![t("1"), Val::Null, Val::Null],
            },
        ];
        let items: Vec<Item> = changes
            .iter()
            .map(|c| Item::Row(r.clone(), c.clone()))
            .collect();
        let mut want = sql(&changes[..2], false);
        want.push("TRUNCATE ONLY x;".into());
        want.extend(sql(&changes[2..], false));
        let mut with_sql = items[..2].to_vec();
        with_sql.push(Item::Sql("TRUNCATE ONLY x;".into()));
        with_sql.extend_from_slice(&items[2..]);
        assert_eq!(plain_sql(&with_sql).expect("plain"), want);
    }

    #[test]
    fn to_items_checks_like_to_sql() {
        let lookup = |o: u32| (o == 1).then(|| arc(false));
        let good = vec![
            Change::Insert {
                rel: 1,
                new: vec![t("1"), t("a"), Val::Null],
            },
            Change::Truncate {
                rels: vec![1],
                cascade: false,
                restart_identity: false,
            },
            // Sets nothing: never looks for its row, so a missing key is no error.
            Change::Update {
                rel: 1,
                old: None,
                new: vec![Val::Null, Val::Unchanged, Val::Unchanged],
            },
        ];
        let items = to_items(good, &lookup).expect("items");
        assert_eq!(
            items[1],
            Item::Sql(r#"TRUNCATE ONLY "public"."T x";"#.into())
        );
        assert_eq!(plain_sql(&items).expect("plain").len(), 2);
        let bad: Vec<Vec<Change>> = vec![
            vec![Change::Insert {
                rel: 9,
                new: vec![],
            }],
            vec![Change::Insert {
                rel: 1,
                new: vec![t("1")],
            }],
            vec![Change::Update {
                rel: 1,
                old: None,
                new: vec![Val::Null, t("a"), t("b")],
            }],
            vec![Change::Update {
                rel: 1,
                old: None,
                new: vec![Val::Unchanged, t("a"), t("b")],
            }],
            vec![Change::Delete {
                rel: 1,
                old: vec![t("1")],
            }],
            vec![Change::Truncate {
                rels: vec![9],
                cascade: false,
                restart_identity: false,
            }],
        ];
        for b in bad {
            let want = to_sql(&b, &|o| (o == 1).then(|| rel(false))).expect_err("to_sql refuses");
            assert_eq!(to_items(b, &lookup).expect_err("to_items refuses"), want);
        }
        let keyless = Arc::new(Rel {
            key: vec![false, false, false],
            ..rel(false)
        });
        let r = to_items(
            vec![Change::Delete {
                rel: 1,
                old: vec![t("1"), t("a"), t("b")],
            }],
            &|_| Some(keyless.clone()),
        );
        assert!(matches!(r, Err(ApplyError::Shape { .. })));
    }
}
