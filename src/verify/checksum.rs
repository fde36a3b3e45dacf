//! Counting and checksumming a table's rows on the server, by key range.

use std::collections::HashMap;

use tokio_postgres::types::ToSql;

use crate::pg::{quote, Side};

use super::across_majors;
use super::catalog::RelInfo;
use super::session::{Conn, Pair};
use super::{Level, Method, RowDiff, RowDiffKind, VerifyError};

/// Count and order-independent checksum of some rows: the exact sums of the high and low
/// 64-bit halves of each row's md5.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ChunkSum {
    pub count: i64,
    pub sum_hi: String,
    pub sum_lo: String,
}

/// `after < key <= up_to`; `None` is unbounded. Values are the key columns' text forms.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Bounds {
    pub after: Option<Vec<String>>,
    pub up_to: Option<Vec<String>>,
}

impl Bounds {
    pub fn all() -> Bounds {
        Bounds {
            after: None,
            up_to: None,
        }
    }
}

/// `k` boundaries (each the last key of a chunk) make `k + 1` chunks; the last one is open
/// so rows the target has beyond the source's last key are compared too.
pub(crate) fn ranges_from_bounds(bounds: Vec<Vec<String>>) -> Vec<Bounds> {
    let mut out = Vec::with_capacity(bounds.len() + 1);
    let mut prev: Option<Vec<String>> = None;
    for b in bounds {
        out.push(Bounds {
            after: prev.take(),
            up_to: Some(b.clone()),
        });
        prev = Some(b);
    }
    out.push(Bounds {
        after: prev,
        up_to: None,
    });
    out
}

/// What is done with a table.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Mode {
    /// Present on one side only: its rows are counted there.
    CountOne(Side),
    Count,
    Whole,
    Keyed,
}

/// The key chunks are cut by.
#[derive(Debug, Clone)]
pub(crate) struct KeySpec {
    pub names: Vec<String>,
    /// Quoted.
    cols: Vec<String>,
    src_types: Vec<String>,
    tgt_types: Vec<String>,
    collatable: Vec<bool>,
    /// Compare text keys in "C" order on both sides (the servers' collations differ).
    pub collate_c: bool,
}

/// How one table is compared.
#[derive(Debug, Clone)]
pub(crate) struct TablePlan {
    /// Index of the table's report.
    pub report: usize,
    /// `schema.name`, for progress and messages.
    pub display: String,
    /// Quoted, qualified.
    rel: String,
    pub mode: Mode,
    /// The row's text form over the shared columns.
    row_text: String,
    pub key: Option<KeySpec>,
    /// Only the rows matching this (an extension configuration table's dump condition).
    filter: Option<String>,
}

/// Rows fetched per side at the bottom of the bisection.
const LEAF_ROWS: i64 = 32;
/// Sub-ranges per bisection level.
const FANOUT: i64 = 16;
/// Rows fetched per side when a range could not be split further.
const FETCH_CAP: i64 = 200;

fn params(values: &[String]) -> Vec<&(dyn ToSql + Sync)> {
    values.iter().map(|v| v as &(dyn ToSql + Sync)).collect()
}

impl TablePlan {
    fn base(report: usize, r: &RelInfo, mode: Mode) -> TablePlan {
        TablePlan {
            report,
            display: format!("{}.{}", r.schema, r.name),
            rel: quote::qualified(&r.schema, &r.name),
            mode,
            row_text: String::new(),
            key: None,
            filter: r.filter.clone(),
        }
    }

    /// A table present on `side` only: count its rows there.
    pub fn count_one(report: usize, r: &RelInfo, side: Side) -> TablePlan {
        TablePlan::base(report, r, Mode::CountOne(side))
    }

    /// A table present on both sides.
    /// `floats_as_bits`: the servers print floats differently (see `across_majors`), so a
    /// float column shared with one type enters the checksum as its binary form.
    pub fn both(
        report: usize,
        s: &RelInfo,
        t: &RelInfo,
        level: Level,
        floats_as_bits: bool,
    ) -> TablePlan {
        let shared: Vec<String> = s
            .columns
            .iter()
            .filter_map(|c| {
                let other = t.columns.iter().find(|x| x.name == c.name)?;
                let col = format!("t.{}", quote::ident(&c.name));
                Some(if other.type_name == c.type_name {
                    across_majors::checksum_value(&col, &c.type_name, floats_as_bits)
                } else {
                    col
                })
            })
            .collect();
        let row_text = format!("ROW({})::text", shared.join(", "));
        let key = s.key.as_ref().and_then(|cols| {
            let mut spec = KeySpec {
                names: cols.clone(),
                cols: cols.iter().map(|c| quote::ident(c)).collect(),
                src_types: Vec::new(),
                tgt_types: Vec::new(),
                collatable: Vec::new(),
                collate_c: false,
            };
            for c in cols {
                let sc = s.columns.iter().find(|x| &x.name == c)?;
                let tc = t.columns.iter().find(|x| &x.name == c)?;
                spec.src_types.push(sc.type_name.clone());
                spec.tgt_types.push(tc.type_name.clone());
                let collatable = !sc.collation.is_empty() && !tc.collation.is_empty();
                spec.collatable.push(collatable);
                if collatable && sc.collation != tc.collation {
                    spec.collate_c = true;
                }
            }
            Some(spec)
        });
        let mode = match (level, &key, &s.key) {
            (Level::Counts, _, _) => Mode::Count,
            (Level::Checksums, Some(_), _) => Mode::Keyed,
            // A key the target lacks a column of: the columns differ, counts are all we can do.
            (Level::Checksums, None, Some(_)) => Mode::Count,
            (Level::Checksums, None, None) => Mode::Whole,
        };
        TablePlan {
            row_text,
            key,
            ..TablePlan::base(report, s, mode)
        }
    }

    pub fn method(&self) -> Method {
        match self.mode {
            Mode::CountOne(_) | Mode::Count => Method::Count,
            Mode::Whole => Method::WholeTable,
            Mode::Keyed => Method::KeyChunks,
        }
    }

    fn key(&self) -> &KeySpec {
        self.key.as_ref().expect("a keyed table")
    }

    /// `t."a"` (with `COLLATE "C"` when needed) per key column.
    fn key_exprs(&self) -> Vec<String> {
        let k = self.key();
        k.cols
            .iter()
            .zip(&k.collatable)
            .map(|(c, coll)| {
                if k.collate_c && *coll {
                    format!("t.{c} COLLATE \"C\"")
                } else {
                    format!("t.{c}")
                }
            })
            .collect()
    }

    /// The key values `$n::text::type` for `side`, from parameter `first` on.
    fn key_params(&self, side: Side, first: usize) -> String {
        let k = self.key();
        let types = match side {
            Side::Source => &k.src_types,
            Side::Target => &k.tgt_types,
        };
        let parts: Vec<String> = types
            .iter()
            .zip(&k.collatable)
            .enumerate()
            .map(|(i, (ty, coll))| {
                let p = format!("${}::text::{ty}", first + i);
                if k.collate_c && *coll {
                    format!("({p} COLLATE \"C\")")
                } else {
                    p
                }
            })
            .collect();
        tuple(&parts)
    }

    /// The WHERE condition for `bounds` on `side` and its parameters (numbered from 1), and
    /// the table's filter.
    fn predicate(&self, side: Side, bounds: &Bounds) -> (String, Vec<String>) {
        let (pred, values) = self.bounds_predicate(side, bounds);
        match &self.filter {
            Some(f) => (format!("({pred}) AND ({f})"), values),
            None => (pred, values),
        }
    }

    /// The WHERE condition for `bounds` on `side` and its parameters (numbered from 1).
    fn bounds_predicate(&self, side: Side, bounds: &Bounds) -> (String, Vec<String>) {
        if self.key.is_none() {
            return ("true".to_string(), Vec::new());
        }
        let lhs = tuple(&self.key_exprs());
        let mut conds = Vec::new();
        let mut values = Vec::new();
        if let Some(a) = &bounds.after {
            conds.push(format!(
                "{lhs} > {}",
                self.key_params(side, values.len() + 1)
            ));
            values.extend(a.iter().cloned());
        }
        if let Some(u) = &bounds.up_to {
            conds.push(format!(
                "{lhs} <= {}",
                self.key_params(side, values.len() + 1)
            ));
            values.extend(u.iter().cloned());
        }
        if conds.is_empty() {
            ("true".to_string(), values)
        } else {
            (conds.join(" AND "), values)
        }
    }

    fn order_by(&self) -> String {
        self.key_exprs().join(", ")
    }

    /// `count(*)` of the whole table.
    pub async fn count(&self, conn: &Conn, side: Side) -> Result<i64, VerifyError> {
        let row = conn
            .query_one(
                &format!("counting the rows of {}", self.display),
                &format!(
                    "SELECT count(*)::int8 FROM ONLY {} t WHERE {}",
                    self.rel,
                    self.filter.as_deref().unwrap_or("true")
                ),
                &[],
            )
            .await?;
        debug_assert_eq!(conn.side(), side);
        Ok(row.get(0))
    }

    /// Count and checksum of the rows in `bounds`, computed on the server.
    pub async fn sum(
        &self,
        conn: &Conn,
        side: Side,
        bounds: &Bounds,
    ) -> Result<ChunkSum, VerifyError> {
        let (pred, values) = self.predicate(side, bounds);
        let sql = format!(
            "SELECT count(*)::int8,
       coalesce(sum(('x' || substr(z.h, 1, 16))::bit(64)::int8::numeric), 0)::text,
       coalesce(sum(('x' || substr(z.h, 17, 16))::bit(64)::int8::numeric), 0)::text
  FROM (SELECT md5({}) AS h FROM ONLY {} t WHERE {pred}) z",
            self.row_text, self.rel
        );
        let row = conn
            .query_one(
                &format!("checksumming {}", self.display),
                &sql,
                &params(&values),
            )
            .await?;
        Ok(ChunkSum {
            count: row.get(0),
            sum_hi: row.get(1),
            sum_lo: row.get(2),
        })
    }

    /// The key columns matching the set of keys `$1..$n` (one text array per key column,
    /// read as the key's types on `side`): `(t."a", t."b") IN (SELECT ... FROM unnest(...))`,
    /// and the table's filter.
    fn keys_predicate(&self, side: Side) -> String {
        let k = self.key();
        let types = match side {
            Side::Source => &k.src_types,
            Side::Target => &k.tgt_types,
        };
        let lhs: Vec<String> = k.cols.iter().map(|c| format!("t.{c}")).collect();
        let cast: Vec<String> = types
            .iter()
            .enumerate()
            .map(|(i, ty)| format!("u.k{i}::{ty}"))
            .collect();
        let arrays: Vec<String> = (0..types.len())
            .map(|i| format!("${}::text[]", i + 1))
            .collect();
        let names: Vec<String> = (0..types.len()).map(|i| format!("k{i}")).collect();
        let pred = format!(
            "{} IN (SELECT {} FROM unnest({}) AS u({}))",
            tuple(&lhs),
            cast.join(", "),
            arrays.join(", "),
            names.join(", ")
        );
        match &self.filter {
            Some(f) => format!("({pred}) AND ({f})"),
            None => pred,
        }
    }

    /// The keys as one text array per key column.
    fn key_arrays(&self, keys: &[Vec<String>]) -> Vec<Vec<String>> {
        let n = self.key().cols.len();
        (0..n)
            .map(|i| {
                keys.iter()
                    .map(|k| k.get(i).cloned().unwrap_or_default())
                    .collect()
            })
            .collect()
    }

    /// Count and checksum, like [`TablePlan::sum`], of the rows whose key is one of `keys`
    /// (key values as text, in the key's column order).
    pub async fn sum_keys(
        &self,
        conn: &Conn,
        side: Side,
        keys: &[Vec<String>],
    ) -> Result<ChunkSum, VerifyError> {
        let sql = format!(
            "SELECT count(*)::int8,
       coalesce(sum(('x' || substr(z.h, 1, 16))::bit(64)::int8::numeric), 0)::text,
       coalesce(sum(('x' || substr(z.h, 17, 16))::bit(64)::int8::numeric), 0)::text
  FROM (SELECT md5({}) AS h FROM ONLY {} t WHERE {}) z",
            self.row_text,
            self.rel,
            self.keys_predicate(side)
        );
        let arrays = self.key_arrays(keys);
        let p: Vec<&(dyn ToSql + Sync)> = arrays.iter().map(|a| a as &(dyn ToSql + Sync)).collect();
        let row = conn
            .query_one(
                &format!("re-checking touched rows of {}", self.display),
                &sql,
                &p,
            )
            .await?;
        Ok(ChunkSum {
            count: row.get(0),
            sum_hi: row.get(1),
            sum_lo: row.get(2),
        })
    }

    /// The differing keys among `keys`: each key's row md5 compared on both sides.
    pub async fn diff_keys(
        &self,
        pair: &Pair,
        keys: &[Vec<String>],
        limit: usize,
    ) -> Result<Vec<RowDiff>, VerifyError> {
        let n = self.key().cols.len();
        let key_text: Vec<String> = self
            .key()
            .cols
            .iter()
            .map(|c| format!("t.{c}::text"))
            .collect();
        let arrays = self.key_arrays(keys);
        let p: Vec<&(dyn ToSql + Sync)> = arrays.iter().map(|a| a as &(dyn ToSql + Sync)).collect();
        let read = |side: Side| {
            let sql = format!(
                "SELECT {}, md5({}) FROM ONLY {} t WHERE {} ORDER BY {}",
                key_text.join(", "),
                self.row_text,
                self.rel,
                self.keys_predicate(side),
                self.order_by()
            );
            let p = p.clone();
            async move {
                let rows = pair
                    .side(side)
                    .query(
                        &format!("reading differing keys of {}", self.display),
                        &sql,
                        &p,
                    )
                    .await?;
                Ok::<_, VerifyError>(
                    rows.iter()
                        .map(|r| {
                            (
                                (0..n)
                                    .map(|i| r.get::<_, String>(i))
                                    .collect::<Vec<String>>(),
                                r.get::<_, String>(n),
                            )
                        })
                        .collect::<Vec<_>>(),
                )
            }
        };
        let (s, t) = tokio::try_join!(read(Side::Source), read(Side::Target))?;
        let mut d = diff_rows(&s, &t, true, true);
        d.truncate(limit);
        Ok(d)
    }

    /// Count and checksum, like [`TablePlan::sum`], of the rows `query` returns, its output
    /// columns named `alias` (quoted, comma-separated): a materialized view's query.
    pub async fn query_sum(
        &self,
        conn: &Conn,
        query: &str,
        alias: &str,
    ) -> Result<ChunkSum, VerifyError> {
        let sql = format!(
            "SELECT count(*)::int8,
       coalesce(sum(('x' || substr(z.h, 1, 16))::bit(64)::int8::numeric), 0)::text,
       coalesce(sum(('x' || substr(z.h, 17, 16))::bit(64)::int8::numeric), 0)::text
  FROM (SELECT md5({}) AS h FROM ({query}) t({alias})) z",
            self.row_text
        );
        let row = conn
            .query_one(
                &format!("checksumming the query of {}", self.display),
                &sql,
                &[],
            )
            .await?;
        Ok(ChunkSum {
            count: row.get(0),
            sum_hi: row.get(1),
            sum_lo: row.get(2),
        })
    }

    /// Every `every`-th key (in key order) within `bounds`, read in one pass on `conn`.
    pub async fn boundaries(
        &self,
        conn: &Conn,
        side: Side,
        bounds: &Bounds,
        every: i64,
    ) -> Result<Vec<Vec<String>>, VerifyError> {
        let (pred, values) = self.predicate(side, bounds);
        let n = self.key().cols.len();
        let inner: Vec<String> = self
            .key()
            .cols
            .iter()
            .enumerate()
            .map(|(i, c)| format!("t.{c} AS k{i}"))
            .collect();
        let outer: Vec<String> = (0..n).map(|i| format!("s.k{i}::text")).collect();
        let sql = format!(
            "SELECT {} FROM (SELECT {}, row_number() OVER (ORDER BY {}) AS rn
                   FROM ONLY {} t WHERE {pred}) s
  WHERE s.rn % ${}::int8 = 0 ORDER BY s.rn",
            outer.join(", "),
            inner.join(", "),
            self.order_by(),
            self.rel,
            values.len() + 1
        );
        let mut p = params(&values);
        p.push(&every);
        let rows = conn
            .query(
                &format!("reading the chunk boundaries of {}", self.display),
                &sql,
                &p,
            )
            .await?;
        Ok(rows
            .iter()
            .map(|r| (0..n).map(|i| r.get::<_, String>(i)).collect())
            .collect())
    }

    /// Keys (as text) and row md5s in `bounds`, in key order, at most `limit`.
    async fn rows(
        &self,
        conn: &Conn,
        side: Side,
        bounds: &Bounds,
        limit: i64,
    ) -> Result<Vec<(Vec<String>, String)>, VerifyError> {
        let (pred, values) = self.predicate(side, bounds);
        let n = self.key().cols.len();
        let keys: Vec<String> = self
            .key()
            .cols
            .iter()
            .map(|c| format!("t.{c}::text"))
            .collect();
        let sql = format!(
            "SELECT {}, md5({}) FROM ONLY {} t WHERE {pred} ORDER BY {} LIMIT {limit}",
            keys.join(", "),
            self.row_text,
            self.rel,
            self.order_by()
        );
        let rows = conn
            .query(
                &format!("reading differing keys of {}", self.display),
                &sql,
                &params(&values),
            )
            .await?;
        Ok(rows
            .iter()
            .map(|r| {
                (
                    (0..n).map(|i| r.get::<_, String>(i)).collect(),
                    r.get::<_, String>(n),
                )
            })
            .collect())
    }

    /// Narrows a differing range to its first differing keys (at most `limit`): splits it
    /// by keys of the side with more rows into [`FANOUT`] parts, compares the parts, and goes
    /// down the differing ones until a part is small enough to compare key by key.
    pub async fn narrow(
        &self,
        pair: &Pair,
        bounds: &Bounds,
        src_count: i64,
        tgt_count: i64,
        limit: usize,
    ) -> Result<Vec<RowDiff>, VerifyError> {
        let mut complete = true;
        self.narrow_inner(pair, bounds, src_count, tgt_count, limit, &mut complete)
            .await
    }

    /// Every differing key of a differing range, when there are fewer than `limit` and the
    /// bisection compared every row it did not match by range (`None` otherwise): the rest
    /// of the range matched, by sub-range or row by row.
    pub async fn narrow_all(
        &self,
        pair: &Pair,
        bounds: &Bounds,
        src_count: i64,
        tgt_count: i64,
        limit: usize,
    ) -> Result<Option<Vec<RowDiff>>, VerifyError> {
        let mut complete = true;
        let d = self
            .narrow_inner(pair, bounds, src_count, tgt_count, limit, &mut complete)
            .await?;
        Ok((complete && d.len() < limit).then_some(d))
    }

    async fn narrow_inner(
        &self,
        pair: &Pair,
        bounds: &Bounds,
        src_count: i64,
        tgt_count: i64,
        limit: usize,
        complete: &mut bool,
    ) -> Result<Vec<RowDiff>, VerifyError> {
        let mut out = Vec::new();
        // Depth-first, in key order: the stack holds later ranges below earlier ones.
        let mut stack = vec![(bounds.clone(), src_count, tgt_count, 0u32)];
        while let Some((b, sc, tc, depth)) = stack.pop() {
            if out.len() >= limit {
                *complete = false;
                break;
            }
            let (side, n) = if sc >= tc {
                (Side::Source, sc)
            } else {
                (Side::Target, tc)
            };
            let every = (n + FANOUT - 1) / FANOUT;
            let subs = if n > LEAF_ROWS && depth < 12 {
                self.boundaries(pair.side(side), side, &b, every.max(1))
                    .await?
            } else {
                Vec::new()
            };
            // The split made no progress (or the range is small): compare key by key.
            if subs.is_empty() || (subs.len() == 1 && Some(&subs[0]) == b.up_to.as_ref()) {
                let cap = if n <= LEAF_ROWS {
                    LEAF_ROWS + 1
                } else {
                    FETCH_CAP
                };
                let (s_rows, t_rows) = tokio::try_join!(
                    self.rows(&pair.src, Side::Source, &b, cap),
                    self.rows(&pair.tgt, Side::Target, &b, cap)
                )?;
                let s_full = (s_rows.len() as i64) < cap;
                let t_full = (t_rows.len() as i64) < cap;
                *complete &= s_full && t_full;
                for d in diff_rows(&s_rows, &t_rows, s_full, t_full) {
                    if out.len() >= limit {
                        break;
                    }
                    out.push(d);
                }
                continue;
            }
            let mut parts = Vec::new();
            let mut after = b.after.clone();
            for s in subs {
                parts.push(Bounds {
                    after: after.take(),
                    up_to: Some(s.clone()),
                });
                after = Some(s);
            }
            parts.push(Bounds {
                after,
                up_to: b.up_to.clone(),
            });
            let mut differing = Vec::new();
            for p in parts {
                let (s, t) = tokio::try_join!(
                    self.sum(&pair.src, Side::Source, &p),
                    self.sum(&pair.tgt, Side::Target, &p)
                )?;
                if s != t {
                    differing.push((p, s.count, t.count, depth + 1));
                }
            }
            stack.extend(differing.into_iter().rev());
        }
        Ok(out)
    }
}

/// Differences between two key-ordered lists of (key, row md5). A key absent from a list is
/// reported only when that list is complete for the range.
fn diff_rows(
    src: &[(Vec<String>, String)],
    tgt: &[(Vec<String>, String)],
    src_complete: bool,
    tgt_complete: bool,
) -> Vec<RowDiff> {
    let t_map: HashMap<&Vec<String>, &String> = tgt.iter().map(|(k, h)| (k, h)).collect();
    let s_map: HashMap<&Vec<String>, &String> = src.iter().map(|(k, h)| (k, h)).collect();
    let mut out = Vec::new();
    for (k, h) in src {
        match t_map.get(k) {
            Some(th) if *th != h => out.push(RowDiff {
                key: k.clone(),
                kind: RowDiffKind::Differs,
            }),
            None if tgt_complete => out.push(RowDiff {
                key: k.clone(),
                kind: RowDiffKind::MissingOnTarget,
            }),
            _ => {}
        }
    }
    if src_complete {
        for (k, _) in tgt {
            if !s_map.contains_key(k) {
                out.push(RowDiff {
                    key: k.clone(),
                    kind: RowDiffKind::MissingOnSource,
                });
            }
        }
    }
    out
}

/// `a` or `(a, b)`.
fn tuple(parts: &[String]) -> String {
    if parts.len() == 1 {
        parts[0].clone()
    } else {
        format!("({})", parts.join(", "))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bounds_make_one_more_chunk() {
        let v = |s: &str| Some(vec![s.to_string()]);
        let r = ranges_from_bounds(vec![vec!["10".into()], vec!["20".into()]]);
        assert_eq!(
            r,
            vec![
                Bounds {
                    after: None,
                    up_to: v("10")
                },
                Bounds {
                    after: v("10"),
                    up_to: v("20")
                },
                Bounds {
                    after: v("20"),
                    up_to: None
                },
            ]
        );
        assert_eq!(ranges_from_bounds(vec![]), vec![Bounds::all()]);
    }

    #[test]
    fn row_diffs() {
        let k = |s: &str| vec![s.to_string()];
        let src = vec![
            (k("1"), "a".to_string()),
            (k("2"), "b".to_string()),
            (k("3"), "c".to_string()),
        ];
        let tgt = vec![
            (k("1"), "a".to_string()),
            (k("2"), "x".to_string()),
            (k("4"), "d".to_string()),
        ];
        let d = diff_rows(&src, &tgt, true, true);
        assert_eq!(
            d,
            vec![
                RowDiff {
                    key: k("2"),
                    kind: RowDiffKind::Differs
                },
                RowDiff {
                    key: k("3"),
                    kind: RowDiffKind::MissingOnTarget
                },
                RowDiff {
                    key: k("4"),
                    kind: RowDiffKind::MissingOnSource
                },
            ]
        );
        let d = diff_rows(&src, &tgt, false, false);
        assert_eq!(d.len(), 1);
    }
}
