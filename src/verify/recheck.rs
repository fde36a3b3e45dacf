//! The verification inside cutover's outage: only what may have changed since a full
//! verification made while replicating (the pre-verification) is compared again.
//!
//! Given that earlier report and the keys change capture touched since it acknowledged the
//! pre-verification (`crate::state::touched`), [`recheck`] compares on both servers, now: every
//! chunk that differed before, the rows of every touched key (count and checksum of the rows
//! with those keys, on each side), and whole every table that was touched without a key
//! (`REPLICA IDENTITY FULL`), whose recorded key is not the key verify cuts chunks by, that
//! is compared by count or whole-table checksum, that differed without a chunk to locate it,
//! that is new, or that is a materialized view (cutover refreshes them). Sequences, large
//! objects and the object inventory are compared again in full; objects' properties (owners,
//! privileges, comments...) only ahead. DDL or TRUNCATE applied since (every table touched),
//! or objects that differed before, make it a full verification. Why the rest is identical:
//! see `crate::cutover::ahead`.

use std::collections::{BTreeMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use serde::Serialize;

use crate::pg::{Endpoint, Side};
use crate::state::touched::Touch;

use super::catalog::Catalog;
use super::checksum::{Bounds, ChunkSum, Mode, TablePlan};
use super::session::Pair;
use super::{
    compare_large_objects, compare_sequences, match_tables, ChunkDiff, KeyRange, Scope,
    TableStatus, VerifyError, VerifyOptions, VerifyReport,
};

/// Keys compared per query.
const KEYS_PER_PART: usize = 20_000;
/// Differing keys a differing chunk is located to, at most, ahead of the fence; a chunk with
/// more is compared again whole.
const LOCATE_LIMIT: usize = 2_000;

/// The differing chunks of the pre-verification located to their differing keys, per table
/// (`(schema, name)`) and chunk index: the rest of each such chunk matched, by sub-range or
/// row by row, so only those keys are compared again.
pub type Located = BTreeMap<(String, String), BTreeMap<u64, Vec<Vec<String>>>>;

/// Locates the differing chunks of `before` (made while replicating: mostly rows in flight)
/// to their differing keys, by bisection, on both servers; a chunk with more than
/// `LOCATE_LIMIT` differing keys is left out (compared again whole).
pub async fn locate(
    source: &Endpoint,
    target: &Endpoint,
    opts: &VerifyOptions,
    before: &VerifyReport,
) -> Result<Located, VerifyError> {
    let mut located = Located::new();
    if !before.tables.iter().any(|t| !t.differing_chunks.is_empty()) {
        return Ok(located);
    }
    let scope = Scope {
        schemas: opts.schemas.clone(),
        include: opts.include.clone(),
    };
    let source = Arc::new(source.clone());
    let target = Arc::new(target.clone());
    let pair = Pair::connect(&source, &target).await?;
    let (src_cat, tgt_cat) = tokio::try_join!(
        Catalog::read(&pair.src, &scope),
        Catalog::read(&pair.tgt, &scope)
    )?;
    let (tables, plans) = match_tables(&src_cat, &tgt_cat, opts);
    // The chunks to locate: (plan, table, chunk index, bounds, counts).
    let mut tasks = VecDeque::new();
    for (i, plan) in plans.iter().enumerate() {
        let rep = &tables[plan.report];
        let Some(prior) = before.table(&rep.schema, &rep.name) else {
            continue;
        };
        let Some(key) = plan.key.as_ref().map(|k| k.names.clone()) else {
            continue;
        };
        if plan.mode != Mode::Keyed || prior.key != key {
            continue;
        }
        for c in prior
            .differing_chunks
            .iter()
            .filter(|c| c.range.columns == key)
        {
            let b = Bounds {
                after: c.range.after.clone(),
                up_to: c.range.up_to.clone(),
            };
            tasks.push_back((i, c.index, b, c.source_rows, c.target_rows));
        }
    }
    // One chunk per connection pair at a time, on as many pairs as verify's jobs.
    let mut pairs = vec![pair];
    for _ in 1..opts.jobs.max(1).min(tasks.len().max(1)) {
        pairs.push(Pair::connect(&source, &target).await?);
    }
    let queue = Mutex::new(tasks);
    let (plans, queue) = (&plans, &queue);
    let workers = pairs.iter().map(|pair| async move {
        let mut out = Vec::new();
        loop {
            let task = queue.lock().unwrap_or_else(|p| p.into_inner()).pop_front();
            let Some((i, index, b, sc, tc)) = task else {
                break;
            };
            if let Some(rows) = plans[i].narrow_all(pair, &b, sc, tc, LOCATE_LIMIT).await? {
                out.push((i, index, rows));
            }
        }
        Ok::<_, VerifyError>(out)
    });
    for (i, index, rows) in futures_util::future::try_join_all(workers)
        .await?
        .into_iter()
        .flatten()
    {
        let rep = &tables[plans[i].report];
        located
            .entry((rep.schema.clone(), rep.name.clone()))
            .or_default()
            .insert(index, rows.into_iter().map(|r| r.key).collect());
    }
    Ok(located)
}

/// What the re-check compared.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct RecheckCounts {
    /// Tables compared again (in part or whole).
    pub tables: usize,
    /// Of those, compared whole.
    pub whole_tables: usize,
    /// Chunks that differed before and could not be located to their keys, compared again.
    pub chunks: usize,
    /// Keys whose rows were compared: touched since the pre-verification, or found differing
    /// by it (located).
    pub keys: usize,
    /// Everything was compared again (DDL or TRUNCATE since, or objects differed before).
    pub full: bool,
    /// The re-check rounds made before the fence, in order (see `crate::cutover::ahead`).
    pub rounds: Vec<RoundCounts>,
}

/// One re-check round before the fence: the keys it compared (touched during the round
/// before, or left differing by it), how many of them differed, and how long it took.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct RoundCounts {
    /// 1, 2, ... (round 0 is the full comparison ahead).
    pub round: i32,
    /// Keys compared.
    pub keys: usize,
    /// Of those, differing (compared again later).
    pub differing: usize,
    /// Touches it could not compare by key (a table without a usable key, every table, a key
    /// not the one verify cuts chunks by): left for the verification after the fence.
    pub left: usize,
    pub secs: f64,
}

/// What [`compare_keys`] found: the keys that matched need no comparison again (unless
/// touched again); `left` is what must still be compared.
#[derive(Debug, Default)]
pub struct KeysCompared {
    /// Keys compared.
    pub compared: usize,
    /// Of those, the ones that differed.
    pub differing: usize,
    /// The keys that differed and the touches that could not be compared by key.
    pub left: Vec<Touch>,
}

/// Compares, on both servers now, the rows of the touched keys in `touches` (a re-check round
/// before the fence): those of a table verify compares by the same key, in parts of
/// `KEYS_PER_PART` on verify's jobs; the keys found differing, and every touch it cannot
/// compare by key, are returned as `left`.
pub async fn compare_keys(
    source: &Endpoint,
    target: &Endpoint,
    opts: &VerifyOptions,
    touches: Vec<Touch>,
) -> Result<KeysCompared, VerifyError> {
    let mut out = KeysCompared::default();
    if touches.iter().all(|t| t.key.is_empty()) {
        out.left = touches;
        return Ok(out);
    }
    let scope = Scope {
        schemas: opts.schemas.clone(),
        include: opts.include.clone(),
    };
    let source = Arc::new(source.clone());
    let target = Arc::new(target.clone());
    let first = Pair::connect(&source, &target).await?;
    let (src_cat, tgt_cat) = tokio::try_join!(
        Catalog::read(&first.src, &scope),
        Catalog::read(&first.tgt, &scope)
    )?;
    let (tables, plans) = match_tables(&src_cat, &tgt_cat, opts);
    let mut keyed: BTreeMap<(&str, &str), usize> = BTreeMap::new();
    for (i, plan) in plans.iter().enumerate() {
        let rep = &tables[plan.report];
        if plan.mode == Mode::Keyed && plan.key.is_some() && !rep.materialized_view {
            keyed.insert((rep.schema.as_str(), rep.name.as_str()), i);
        }
    }
    let mut by_plan: BTreeMap<usize, Vec<Vec<String>>> = BTreeMap::new();
    for t in touches {
        let plan = keyed
            .get(&(t.schema.as_str(), t.table.as_str()))
            .copied()
            .filter(|&i| key_names(&plans[i]) == t.key_columns);
        match plan {
            Some(i) if !t.key.is_empty() => by_plan.entry(i).or_default().push(t.key),
            _ => out.left.push(t),
        }
    }
    let mut parts = VecDeque::new();
    for (i, mut keys) in by_plan {
        keys.sort();
        keys.dedup();
        out.compared += keys.len();
        while !keys.is_empty() {
            let rest = keys.split_off(keys.len().min(KEYS_PER_PART));
            parts.push_back((i, keys));
            keys = rest;
        }
    }
    let mut pairs = vec![first];
    for _ in 1..opts.jobs.max(1).min(parts.len().max(1)) {
        pairs.push(Pair::connect(&source, &target).await?);
    }
    let queue = Mutex::new(parts);
    let (plans, queue) = (&plans, &queue);
    let workers = pairs.iter().map(|pair| async move {
        let mut out = Vec::new();
        loop {
            let part = queue.lock().unwrap_or_else(|p| p.into_inner()).pop_front();
            let Some((i, keys)) = part else { break };
            let plan = &plans[i];
            let (src, tgt) = tokio::try_join!(
                plan.sum_keys(&pair.src, Side::Source, &keys),
                plan.sum_keys(&pair.tgt, Side::Target, &keys)
            )?;
            if src != tgt {
                // Every differing key (no limit): each is compared again later.
                let rows = plan.diff_keys(pair, &keys, usize::MAX).await?;
                out.push((i, rows.into_iter().map(|r| r.key).collect::<Vec<_>>()));
            }
        }
        Ok::<_, VerifyError>(out)
    });
    for (i, keys) in futures_util::future::try_join_all(workers)
        .await?
        .into_iter()
        .flatten()
    {
        let rep = &tables[plans[i].report];
        let names = key_names(&plans[i]);
        out.differing += keys.len();
        out.left.extend(keys.into_iter().map(|key| Touch {
            schema: rep.schema.clone(),
            table: rep.name.clone(),
            key_columns: names.clone(),
            key,
        }));
    }
    Ok(out)
}

/// The column names of the key verify cuts `plan`'s chunks by (empty without one).
fn key_names(plan: &TablePlan) -> Vec<String> {
    plan.key
        .as_ref()
        .map(|k| k.names.clone())
        .unwrap_or_default()
}

/// The difference of a part compared again: where it is, its counts and the rows found.
fn part_diff(
    range: KeyRange,
    where_sql: String,
    src: &ChunkSum,
    tgt: &ChunkSum,
    rows: Vec<super::RowDiff>,
) -> ChunkDiff {
    ChunkDiff {
        index: 0,
        where_sql,
        range,
        source_rows: src.count,
        target_rows: tgt.count,
        rows,
    }
}

/// What is compared of one table.
#[derive(Debug, Default)]
pub(crate) struct Work {
    pub whole: bool,
    pub chunks: Vec<Bounds>,
    pub keys: Vec<Vec<String>>,
}

/// Decides, for a table (its plan's mode and key, its earlier report, its touches), what is
/// compared again; `None`: nothing (unchanged and identical before).
pub(crate) fn work_for(
    mode: Mode,
    key: Option<&[String]>,
    materialized_view: bool,
    before: Option<&super::TableReport>,
    touches: &[&Touch],
    located: Option<&BTreeMap<u64, Vec<Vec<String>>>>,
) -> Option<Work> {
    let whole = || {
        Some(Work {
            whole: true,
            ..Default::default()
        })
    };
    let Some(before) = before else { return whole() };
    if materialized_view {
        // Cutover refreshes them after the fence.
        return whole();
    }
    if mode != Mode::Keyed {
        // Counted or compared whole: touched or different before, compared again whole.
        return if touches.is_empty() && before.status == TableStatus::Same {
            None
        } else {
            whole()
        };
    }
    let key = key.unwrap_or_default();
    if before.status != TableStatus::Same
        && (before.differing_chunks.is_empty()
            || before.key != key
            || before
                .differing_chunks
                .iter()
                .any(|c| c.range.columns != key))
    {
        return whole();
    }
    if touches
        .iter()
        .any(|t| t.key.is_empty() || t.key_columns != key)
    {
        return whole();
    }
    let mut w = Work {
        whole: false,
        chunks: Vec::new(),
        keys: touches.iter().map(|t| t.key.clone()).collect(),
    };
    for c in &before.differing_chunks {
        match located.and_then(|l| l.get(&c.index)) {
            // Located ahead: its differing keys (the rest matched).
            Some(keys) => w.keys.extend(keys.iter().cloned()),
            None => w.chunks.push(Bounds {
                after: c.range.after.clone(),
                up_to: c.range.up_to.clone(),
            }),
        }
    }
    w.keys.sort();
    w.keys.dedup();
    (!w.chunks.is_empty() || !w.keys.is_empty()).then_some(w)
}

enum Part {
    Whole(usize),
    Range(usize, Bounds),
    Keys(usize, Vec<Vec<String>>),
}

struct PartResult {
    table: usize,
    whole: bool,
    src: ChunkSum,
    tgt: ChunkSum,
    diff: Option<ChunkDiff>,
}

/// Compares again what may have changed since `before` (see the module docs); the report is
/// `before`'s with the re-checked tables' results.
pub async fn recheck(
    source: &Endpoint,
    target: &Endpoint,
    opts: &VerifyOptions,
    before: &VerifyReport,
    located: &Located,
    touched: &[Touch],
) -> Result<(VerifyReport, RecheckCounts), VerifyError> {
    let started = Instant::now();
    if touched.iter().any(|t| t.schema.is_empty()) || !before.objects.is_empty() {
        let r = super::verify(source, target, opts).await?;
        let counts = RecheckCounts {
            tables: r.tables.len(),
            whole_tables: r.tables.len(),
            full: true,
            ..Default::default()
        };
        return Ok((r, counts));
    }
    let scope = Scope {
        schemas: opts.schemas.clone(),
        include: opts.include.clone(),
    };
    let source = Arc::new(source.clone());
    let target = Arc::new(target.clone());
    // One pair for the rows, one for the object inventory, sequences and large objects, which
    // are compared at the same time (inside the outage, its fixed part).
    let (first, side) = tokio::try_join!(
        Pair::connect(&source, &target),
        Pair::connect(&source, &target)
    )?;
    let (src_cat, tgt_cat) = tokio::try_join!(
        Catalog::read(&first.src, &scope),
        Catalog::read(&first.tgt, &scope)
    )?;
    let (mut tables, plans) = match_tables(&src_cat, &tgt_cat, opts);
    let mut by_table: BTreeMap<(&str, &str), Vec<&Touch>> = BTreeMap::new();
    for t in touched {
        by_table.entry((&t.schema, &t.table)).or_default().push(t);
    }
    let mut counts = RecheckCounts::default();
    let mut parts = Vec::new();
    for (i, plan) in plans.iter().enumerate() {
        let rep = &tables[plan.report];
        let prior = before.table(&rep.schema, &rep.name);
        let touches = by_table
            .get(&(rep.schema.as_str(), rep.name.as_str()))
            .cloned()
            .unwrap_or_default();
        let key = plan.key.as_ref().map(|k| k.names.as_slice());
        let loc = located.get(&(rep.schema.clone(), rep.name.clone()));
        let work = work_for(plan.mode, key, rep.materialized_view, prior, &touches, loc);
        let t = &mut tables[plan.report];
        let Some(work) = work else {
            // Unchanged since it was found identical.
            if let Some(p) = prior {
                t.source_rows = p.source_rows;
                t.target_rows = p.target_rows;
                t.chunks = p.chunks;
                t.status = p.status.max_with(t.status);
            }
            continue;
        };
        counts.tables += 1;
        t.chunks = 0;
        if work.whole {
            counts.whole_tables += 1;
            parts.push(Part::Whole(i));
            continue;
        }
        if let Some(p) = prior {
            t.source_rows = p.source_rows;
            t.target_rows = p.target_rows;
        }
        counts.chunks += work.chunks.len();
        counts.keys += work.keys.len();
        for b in work.chunks {
            parts.push(Part::Range(i, b));
        }
        let mut keys = work.keys;
        while !keys.is_empty() {
            let rest = keys.split_off(keys.len().min(KEYS_PER_PART));
            parts.push(Part::Keys(i, keys));
            keys = rest;
        }
    }

    let mut pairs = vec![first];
    let wanted = opts.jobs.max(1).min(parts.len().max(1));
    let more = (1..wanted).map(|_| Pair::connect(&source, &target));
    pairs.extend(futures_util::future::try_join_all(more).await?);
    let queue = Mutex::new(parts.into_iter().collect::<VecDeque<_>>());
    let plans = &plans;
    let queue = &queue;
    let opts_ref = opts;
    let workers = pairs.iter().map(|pair| async move {
        let mut out = Vec::new();
        loop {
            let part = queue.lock().unwrap_or_else(|p| p.into_inner()).pop_front();
            let Some(part) = part else { break };
            out.push(compare_part(pair, plans, part, opts_ref.max_row_diffs).await?);
        }
        Ok::<_, VerifyError>(out)
    });
    // The object inventory again (a schema change made since that change capture did not
    // carry, `cdc.ddl: ignore`, is seen), sequences and large objects in full, while the
    // parts are compared.
    let (src_cat, tgt_cat, side, scope) = (&src_cat, &tgt_cat, &side, &scope);
    let rest = async move {
        let inventory = super::objects::compare(side, scope, src_cat, tgt_cat).await?;
        let sequences = compare_sequences(side, src_cat, tgt_cat).await?;
        let large_objects = if opts.large_objects {
            Some(compare_large_objects(side, opts.level).await?)
        } else {
            None
        };
        Ok::<_, VerifyError>((inventory, sequences, large_objects))
    };
    let (results, (inventory, sequences, large_objects)) =
        tokio::try_join!(futures_util::future::try_join_all(workers), rest)?;
    for r in results.into_iter().flatten() {
        let t = &mut tables[plans[r.table].report];
        t.chunks += 1;
        if r.whole {
            t.source_rows = (r.src.count >= 0).then_some(r.src.count);
            t.target_rows = (r.tgt.count >= 0).then_some(r.tgt.count);
        }
        if r.src != r.tgt {
            t.status = t.status.max_with(TableStatus::Differs);
        }
        if let Some(mut d) = r.diff {
            d.index = t.differing_chunks.len() as u64;
            t.differing_chunks.push(d);
        }
    }
    // A materialized view stale on the source is a note, as in a full verification.
    let mut notes = before.notes.clone();
    for plan in plans.iter() {
        let t = &mut tables[plan.report];
        if t.materialized_view && t.status == TableStatus::Differs {
            match super::stale_matview(&pairs[0], plan, src_cat, t).await? {
                super::Matview::Stale(note) => {
                    t.status = TableStatus::Same;
                    t.differing_chunks.clear();
                    t.notes.push(note.clone());
                    notes.push(format!("materialized view {}.{}: {note}", t.schema, t.name));
                }
                super::Matview::Differs(note) => t.notes.push(note),
            }
        }
    }
    let mut report = VerifyReport {
        level: opts.level,
        source: source.display(),
        target: target.display(),
        identical: false,
        tables,
        sequences,
        objects: inventory.diffs,
        notes,
        function_counts: inventory.function_counts,
        large_objects,
        excluded: before.excluded.clone(),
        elapsed_seconds: started.elapsed().as_secs_f64(),
    };
    report.identical = report.is_identical();
    Ok((report, counts))
}

impl TableStatus {
    /// The worse of two statuses (a table missing on a side stays so).
    fn max_with(self, other: TableStatus) -> TableStatus {
        match (self, other) {
            (TableStatus::Same, o) => o,
            (s, _) => s,
        }
    }
}

async fn compare_part(
    pair: &Pair,
    plans: &[TablePlan],
    part: Part,
    max_row_diffs: usize,
) -> Result<PartResult, VerifyError> {
    match part {
        Part::Whole(table) => {
            let plan = &plans[table];
            let (src, tgt) = match plan.mode {
                Mode::CountOne(side) => {
                    let n = plan.count(pair.side(side), side).await?;
                    let c = |n| ChunkSum {
                        count: n,
                        sum_hi: String::new(),
                        sum_lo: String::new(),
                    };
                    // Present on one side only: a difference either way.
                    match side {
                        Side::Source => (c(n), c(-1)),
                        Side::Target => (c(-1), c(n)),
                    }
                }
                Mode::Count => {
                    let (s, t) = tokio::try_join!(
                        plan.count(&pair.src, Side::Source),
                        plan.count(&pair.tgt, Side::Target)
                    )?;
                    let c = |n| ChunkSum {
                        count: n,
                        sum_hi: String::new(),
                        sum_lo: String::new(),
                    };
                    (c(s), c(t))
                }
                Mode::Whole | Mode::Keyed => {
                    let all = Bounds::all();
                    tokio::try_join!(
                        plan.sum(&pair.src, Side::Source, &all),
                        plan.sum(&pair.tgt, Side::Target, &all)
                    )?
                }
            };
            let diff = (src != tgt).then(|| ChunkDiff {
                index: 0,
                range: KeyRange::all(Vec::new()),
                where_sql: "true".into(),
                source_rows: src.count,
                target_rows: tgt.count,
                rows: Vec::new(),
            });
            Ok(PartResult {
                table,
                whole: true,
                src,
                tgt,
                diff,
            })
        }
        Part::Range(table, bounds) => {
            let plan = &plans[table];
            let (src, tgt) = tokio::try_join!(
                plan.sum(&pair.src, Side::Source, &bounds),
                plan.sum(&pair.tgt, Side::Target, &bounds)
            )?;
            let diff = if src != tgt {
                let rows = if max_row_diffs > 0 {
                    plan.narrow(pair, &bounds, src.count, tgt.count, max_row_diffs)
                        .await?
                } else {
                    Vec::new()
                };
                let range = KeyRange {
                    columns: key_names(plan),
                    after: bounds.after,
                    up_to: bounds.up_to,
                };
                let where_sql = range.where_sql();
                Some(part_diff(range, where_sql, &src, &tgt, rows))
            } else {
                None
            };
            Ok(PartResult {
                table,
                whole: false,
                src,
                tgt,
                diff,
            })
        }
        Part::Keys(table, keys) => {
            let plan = &plans[table];
            let (src, tgt) = tokio::try_join!(
                plan.sum_keys(&pair.src, Side::Source, &keys),
                plan.sum_keys(&pair.tgt, Side::Target, &keys)
            )?;
            let diff = if src != tgt {
                let names = key_names(plan);
                let rows = plan.diff_keys(pair, &keys, max_row_diffs.max(1)).await?;
                let where_sql = keys_where_sql(&names, rows.iter().map(|r| &r.key));
                Some(part_diff(KeyRange::all(names), where_sql, &src, &tgt, rows))
            } else {
                None
            };
            Ok(PartResult {
                table,
                whole: false,
                src,
                tgt,
                diff,
            })
        }
    }
}

/// `"id" IN ('1', '2')` (or `("a", "b") IN (('1', 'x'))`) selecting the given keys.
fn keys_where_sql<'a>(columns: &[String], keys: impl Iterator<Item = &'a Vec<String>>) -> String {
    let tuple = |v: Vec<String>| {
        if v.len() == 1 {
            v.into_iter().next().unwrap_or_default()
        } else {
            format!("({})", v.join(", "))
        }
    };
    let lhs = tuple(columns.iter().map(|c| crate::pg::quote::ident(c)).collect());
    let values: Vec<String> = keys
        .map(|k| tuple(k.iter().map(|v| crate::pg::quote::literal(v)).collect()))
        .collect();
    if values.is_empty() {
        return "false".to_string();
    }
    format!("{lhs} IN ({})", values.join(", "))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::verify::{Method, TableReport};

    fn report(status: TableStatus, diffs: Vec<ChunkDiff>) -> TableReport {
        TableReport {
            schema: "public".into(),
            name: "t".into(),
            partitioned: false,
            partition_of: None,
            materialized_view: false,
            method: Method::KeyChunks,
            key: vec!["id".into()],
            source_rows: Some(10),
            target_rows: Some(10),
            chunks: 3,
            differing_chunks: diffs,
            notes: Vec::new(),
            status,
        }
    }
    fn touch(cols: &[&str], key: &[&str]) -> Touch {
        Touch {
            schema: "public".into(),
            table: "t".into(),
            key_columns: cols.iter().map(|s| s.to_string()).collect(),
            key: key.iter().map(|s| s.to_string()).collect(),
        }
    }

    #[test]
    fn only_touched_keys_and_differing_chunks_are_compared_again() {
        let key = ["id".to_string()];
        let same = report(TableStatus::Same, Vec::new());
        // Identical before and untouched: nothing.
        assert!(work_for(Mode::Keyed, Some(&key), false, Some(&same), &[], None).is_none());
        // Touched keys: those keys.
        let (a, b) = (touch(&["id"], &["1"]), touch(&["id"], &["7"]));
        let w =
            work_for(Mode::Keyed, Some(&key), false, Some(&same), &[&a, &b], None).expect("work");
        assert!(!w.whole && w.chunks.is_empty());
        assert_eq!(w.keys, vec![vec!["1".to_string()], vec!["7".to_string()]]);
        // A differing chunk: that chunk, with the touched keys.
        let d = ChunkDiff {
            index: 1,
            range: KeyRange {
                columns: vec!["id".into()],
                after: Some(vec!["3".into()]),
                up_to: Some(vec!["6".into()]),
            },
            where_sql: String::new(),
            source_rows: 3,
            target_rows: 2,
            rows: Vec::new(),
        };
        let differs = report(TableStatus::Differs, vec![d]);
        let w =
            work_for(Mode::Keyed, Some(&key), false, Some(&differs), &[&a], None).expect("work");
        assert_eq!(w.chunks.len(), 1);
        assert_eq!(w.chunks[0].after, Some(vec!["3".to_string()]));
        assert_eq!(w.keys.len(), 1);
        // Located ahead to its differing keys: those keys, not the chunk.
        let located = BTreeMap::from([(1u64, vec![vec!["4".to_string()], vec!["1".to_string()]])]);
        let w = work_for(
            Mode::Keyed,
            Some(&key),
            false,
            Some(&differs),
            &[&a],
            Some(&located),
        )
        .expect("work");
        assert!(w.chunks.is_empty());
        assert_eq!(w.keys, vec![vec!["1".to_string()], vec!["4".to_string()]]);
    }

    #[test]
    fn the_whole_table_when_keys_cannot_locate_the_change() {
        let key = ["id".to_string()];
        let same = report(TableStatus::Same, Vec::new());
        let whole = touch(&[], &[]);
        let other_key = touch(&["code"], &["x"]);
        for t in [&whole, &other_key] {
            let w =
                work_for(Mode::Keyed, Some(&key), false, Some(&same), &[t], None).expect("work");
            assert!(w.whole);
        }
        // New since, a materialized view, counted or keyless: whole when anything may differ.
        assert!(work_for(Mode::Keyed, Some(&key), false, None, &[], None).is_some_and(|w| w.whole));
        assert!(
            work_for(Mode::Keyed, Some(&key), true, Some(&same), &[], None)
                .is_some_and(|w| w.whole)
        );
        let a = touch(&["id"], &["1"]);
        assert!(
            work_for(Mode::Whole, None, false, Some(&same), &[&a], None).is_some_and(|w| w.whole)
        );
        assert!(work_for(Mode::Count, None, false, Some(&same), &[], None).is_none());
        // Differing before without a chunk to say where: whole.
        let differs = report(TableStatus::Differs, Vec::new());
        assert!(
            work_for(Mode::Keyed, Some(&key), false, Some(&differs), &[], None)
                .is_some_and(|w| w.whole)
        );
        assert_eq!(
            keys_where_sql(
                &["id".into()],
                [vec!["1".to_string()], vec!["it's".into()]].iter()
            ),
            "\"id\" IN ('1', 'it''s')"
        );
    }
}
