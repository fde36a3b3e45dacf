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
//! - UPDATE/DELETE on `REPLICA IDENTITY FULL`: matches every column of the old row with
//!   `IS NOT DISTINCT FROM` on their text forms, and touches exactly one row (`ctid = (...
//!   LIMIT 1)`), so duplicate rows stay duplicates.
//! - TRUNCATE: `TRUNCATE ONLY` of the tables, with `CASCADE` / `RESTART IDENTITY` as sent.

use crate::pg::quote;

/// Output settings shared by the replication session and the target's apply session.
pub const SESSION_SETTINGS: &[(&str, &str)] = &[
    ("DateStyle", "ISO, MDY"),
    ("IntervalStyle", "postgres"),
    ("TimeZone", "UTC"),
    ("extra_float_digits", "3"),
    ("bytea_output", "hex"),
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
    for (i, (col, v)) in rel.columns.iter().zip(vals).enumerate() {
        let is_key = rel.key.get(i).copied().unwrap_or(false);
        if !(use_all || is_key) {
            continue;
        }
        match v {
            Val::Unchanged => {
                if is_key && !use_all {
                    return Err(shape(rel, format!("key column {col} was not sent")));
                }
            }
            Val::Null if use_all => conds.push(format!("{} IS NULL", quote::ident(col))),
            Val::Null => return Err(shape(rel, format!("key column {col} is NULL"))),
            Val::Text(_) if use_all => {
                conds.push(format!("{}::text = {}", quote::ident(col), v.literal()))
            }
            Val::Text(_) => conds.push(format!("{} = {}", quote::ident(col), v.literal())),
        }
    }
    if conds.is_empty() {
        return Err(shape(
            rel,
            "no replica identity: updates and deletes cannot find their row",
        ));
    }
    Ok(conds.join(" AND "))
}

/// The statement that touches the identified row: by key, or exactly one matching row.
fn target_row(rel: &Rel, vals: &[Val], full: bool) -> Result<String, ApplyError> {
    if full {
        Ok(format!(
            "ctid = (SELECT ctid FROM ONLY {} WHERE {} LIMIT 1)",
            rel.qualified(),
            row_filter(rel, vals, true)?
        ))
    } else {
        row_filter(rel, vals, false)
    }
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
                if new.len() != r.columns.len() {
                    return Err(shape(&r, "update tuple does not match the relation"));
                }
                // Key columns are set only when the key changed: setting a key to itself is
                // useless work, and refused for GENERATED ALWAYS identity columns.
                let key_changed = |i: usize| match old {
                    Some(o) if !r.full => o.get(i) != new.get(i),
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
                    continue;
                }
                let filter = match old {
                    Some(o) => target_row(&r, o, r.full)?,
                    None => target_row(&r, new, false)?,
                };
                out.push(format!(
                    "UPDATE ONLY {} SET {} WHERE {filter};",
                    r.qualified(),
                    sets.join(", ")
                ));
            }
            Change::Delete { rel, old } => {
                flush(&mut pending, &mut out);
                let r = rels(*rel).ok_or(ApplyError::UnknownRelation(*rel))?;
                out.push(format!(
                    "DELETE FROM ONLY {} WHERE {};",
                    r.qualified(),
                    target_row(&r, old, r.full)?
                ));
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
                r#"DELETE FROM ONLY "public"."T x" WHERE ctid = (SELECT ctid FROM ONLY "public"."T x" WHERE "id"::text = '1' AND "body" IS NULL AND "n"::text = E'x\\y' LIMIT 1);"#
            ]
        );
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
}
