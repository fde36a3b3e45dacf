//! `pgmove verify`: proves the target holds what the source holds.
//!
//! Per table, row counts and (at [`Level::Checksums`]) an order-independent checksum computed
//! **on each server** — rows never travel to pgmove. Tables with a primary key (or a unique,
//! non-partial btree index on NOT NULL columns) are cut into chunks of about `chunk_rows` rows
//! by key boundaries taken from the source in one pass; each chunk is then checksummed on both
//! servers at the same time with `WHERE key > lo AND key <= hi`, so any table compares in
//! bounded memory on both ends and a difference is located to a key range (and, for a few
//! differing chunks, narrowed to the first differing keys by bisection). Tables without such a
//! key are compared as a whole (count plus the same order-independent checksum). Partitioned
//! parents hold no rows: their leaves are verified, the parents are reported as present.
//!
//! The checksum of a row is the md5 of its text form, `ROW(col, ...)::text` over the columns
//! both sides share, in the source's column order; the chunk checksum is the exact `numeric`
//! sum of the two 64-bit halves of those md5s, so row order and physical layout do not matter.
//! Every session sets the same output settings first (`DateStyle ISO`, `IntervalStyle
//! postgres`, `extra_float_digits 3`, `TimeZone UTC`, `bytea_output hex`, `lc_monetary C`,
//! `search_path pg_catalog`) so a value prints the same way on both servers, and is read-only.
//!
//! Also compared: sequences (definition and the next value they will hand out), the object
//! inventory (schemas, extensions, columns, indexes, constraints, triggers, views, materialized
//! views, types, functions — by normalized definition from `pg_get_*def`), each object's
//! properties as pg_dump shows them (owners, privileges, comments, row level security and
//! policies, persistence, partition bounds, replica identity, storage parameters: see
//! `properties`), the contents of materialized views populated on both sides (like a table's;
//! one stale on the source is a note, see [`VerifyReport::notes`]), and large objects (count,
//! and at `Checksums` each object's content). Objects that belong to an extension are
//! covered by the extension's version, not listed one by one. An extension's configuration
//! tables (`pg_extension_config_dump`) are compared as pg_dump dumps them: only the rows
//! matching the extension's condition (`extcondition`, the source's), since the others are put
//! there by `CREATE EXTENSION` on each server and may differ between extension versions.
//!
//! Between servers of different majors, objects one major prints differently from the other
//! (view definitions across 16, `MAINTAIN` across 17) are compared by the rules of
//! `across_majors`; between two servers of one major, definitions and privileges are compared
//! exactly as the servers print them.
//!
//! Known limits: an array or composite of floats compared between a server older than 12 and
//! a newer one may print differently (PostgreSQL changed float output in 12); text keys are compared in the
//! column's collation, or in `"C"` on both sides when the two servers' collations differ.

mod across_majors;
mod catalog;
mod checksum;
mod objects;
mod properties;
mod recheck;
mod render;
mod session;

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use serde::Serialize;

use crate::pg::{self, Endpoint, PgError};
use crate::progress::{Progress, Step};

use catalog::{Catalog, RelInfo};
use checksum::{ChunkSum, KeySpec, TablePlan};
use session::{Conn, Pair};

pub use recheck::{
    compare_keys, locate, recheck, KeysCompared, Located, RecheckCounts, RoundCounts,
};

/// How deep to compare table data.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Level {
    /// Row counts only.
    Counts,
    /// Row counts and chunked checksums of the rows' content.
    Checksums,
}

impl fmt::Display for Level {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Level::Counts => "counts",
            Level::Checksums => "checksums",
        })
    }
}

/// Decides whether a relation `(schema, name)` is verified.
pub type IncludeFn = Arc<dyn Fn(&str, &str) -> bool + Send + Sync>;

/// What to compare and how hard to work.
#[derive(Clone)]
pub struct VerifyOptions {
    pub level: Level,
    /// Schemas to compare; empty means every non-system schema except pgmove's own (`pgmove`)
    /// and `pglogical`'s.
    pub schemas: Vec<String>,
    /// Relations (tables, partitions, views, sequences) to compare, by schema and name; indexes,
    /// constraints, triggers and columns follow their table. See [`exclude_globs`].
    pub include: IncludeFn,
    /// Chunks compared in parallel; one connection per job on each server (two at least while
    /// the catalogues are read).
    pub jobs: usize,
    /// Rows per chunk for tables with a key.
    pub chunk_rows: u64,
    /// Compare large objects (count, and content at [`Level::Checksums`]).
    pub large_objects: bool,
    /// For a differing chunk, find up to this many differing keys by bisection (0: don't).
    /// At most [`MAX_NARROWED_CHUNKS`] chunks per table are narrowed.
    pub max_row_diffs: usize,
    /// Compare owners (by role name): off when the plan gives the target's user every object
    /// (`owner: target-user`).
    pub owners: bool,
    /// Roles were copied to the target (`roles: create`): a grant or owner naming a role the
    /// target lacks is then a difference, not a note.
    pub roles_created: bool,
    /// The plan whose recorded replica identities (`pgmove.replica_identity` on the target)
    /// stand for the source's while pgmove keeps keyless source tables at FULL; `None`: any
    /// plan's record.
    pub plan_name: Option<String>,
    pub progress: Progress,
}

/// Differing chunks per table that are narrowed to their differing keys.
pub const MAX_NARROWED_CHUNKS: usize = 5;

impl Default for VerifyOptions {
    fn default() -> Self {
        VerifyOptions {
            level: Level::Checksums,
            schemas: Vec::new(),
            include: Arc::new(|_, _| true),
            jobs: 4,
            chunk_rows: 100_000,
            large_objects: true,
            max_row_diffs: 10,
            owners: true,
            roles_created: false,
            plan_name: None,
            progress: Progress::logs(),
        }
    }
}

impl fmt::Debug for VerifyOptions {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("VerifyOptions")
            .field("level", &self.level)
            .field("schemas", &self.schemas)
            .field("jobs", &self.jobs)
            .field("chunk_rows", &self.chunk_rows)
            .field("large_objects", &self.large_objects)
            .field("max_row_diffs", &self.max_row_diffs)
            .field("owners", &self.owners)
            .field("roles_created", &self.roles_created)
            .field("plan_name", &self.plan_name)
            .finish_non_exhaustive()
    }
}

impl VerifyOptions {
    /// These options with what the plan says about owners, roles and its name.
    pub fn with_plan(mut self, plan: &crate::plan::Plan) -> Self {
        self.owners = plan.owner == crate::plan::Owner::Keep;
        self.roles_created = plan.roles == crate::plan::Roles::Create;
        self.plan_name = Some(plan.name.clone());
        self
    }
}

/// An include filter from the plan's `objects.exclude` globs on `schema.table` (`*` any run
/// of characters, `?` one character): a relation matching any pattern is left out.
pub fn exclude_globs(patterns: &[String]) -> IncludeFn {
    let patterns: Vec<Vec<char>> = patterns.iter().map(|p| p.chars().collect()).collect();
    Arc::new(move |schema: &str, name: &str| {
        let full: Vec<char> = format!("{schema}.{name}").chars().collect();
        !patterns.iter().any(|p| glob_match(p, &full))
    })
}

fn glob_match(pattern: &[char], text: &[char]) -> bool {
    let (mut p, mut t) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while t < text.len() {
        if p < pattern.len() && (pattern[p] == '?' || pattern[p] == text[t]) {
            p += 1;
            t += 1;
        } else if p < pattern.len() && pattern[p] == '*' {
            star = Some((p, t));
            p += 1;
        } else if let Some((sp, st)) = star {
            p = sp + 1;
            t = st + 1;
            star = Some((sp, st + 1));
        } else {
            return false;
        }
    }
    pattern[p..].iter().all(|c| *c == '*')
}

/// A verification could not be carried out (not: it found differences).
#[derive(Debug, thiserror::Error)]
pub enum VerifyError {
    #[error(transparent)]
    Pg(#[from] PgError),
    #[error("invalid verify options: {0}")]
    Options(String),
}

/// What verify found.
#[derive(Debug, Clone, Serialize)]
pub struct VerifyReport {
    pub level: Level,
    /// Redacted addresses.
    pub source: String,
    pub target: String,
    pub identical: bool,
    pub tables: Vec<TableReport>,
    pub sequences: Vec<SequenceReport>,
    /// Objects missing on one side or defined differently, and properties (owner, privileges,
    /// comment, flags) that differ; empty when the inventories agree.
    pub objects: Vec<ObjectDiff>,
    /// What differs without being a migration error: privileges or owners naming a role the
    /// target lacks (`roles: skip`), materialized views stale on the source.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub notes: Vec<String>,
    /// Functions (incl. procedures and aggregates) per schema, outside extensions.
    pub function_counts: Vec<SchemaCount>,
    /// `None` when large objects were not compared.
    pub large_objects: Option<LargeObjectReport>,
    /// Source schemas left out that are neither PostgreSQL's nor pgmove's: a user's own schema
    /// named `pgmove` (no pgmove marker), which cannot be moved under that name.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub excluded: Vec<String>,
    pub elapsed_seconds: f64,
}

/// One table on either side.
#[derive(Debug, Clone, Serialize)]
pub struct TableReport {
    pub schema: String,
    pub name: String,
    /// A partitioned parent: holds no rows itself, its partitions are verified.
    pub partitioned: bool,
    /// `schema.name` of the parent when this is a partition.
    pub partition_of: Option<String>,
    /// A materialized view populated on both sides: its contents are compared like a table's.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub materialized_view: bool,
    pub method: Method,
    /// The key columns chunks are cut by (empty when none).
    pub key: Vec<String>,
    pub source_rows: Option<i64>,
    pub target_rows: Option<i64>,
    /// Chunks compared (1 for a whole-table comparison).
    pub chunks: u64,
    pub differing_chunks: Vec<ChunkDiff>,
    /// Structural differences found on the way (columns, kind of table).
    pub notes: Vec<String>,
    pub status: TableStatus,
}

/// How a table's rows were compared.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Method {
    /// `count(*)` only ([`Level::Counts`], or no key on the target).
    Count,
    /// Count and checksum per key range.
    KeyChunks,
    /// Count and checksum of the whole table (no usable key).
    WholeTable,
    /// Not compared: partitioned parent, or missing on one side.
    None,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum TableStatus {
    Same,
    Differs,
    MissingOnTarget,
    MissingOnSource,
}

impl fmt::Display for TableStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            TableStatus::Same => "same",
            TableStatus::Differs => "differs",
            TableStatus::MissingOnTarget => "missing on target",
            TableStatus::MissingOnSource => "missing on source",
        })
    }
}

/// A chunk whose count or checksum differs.
#[derive(Debug, Clone, Serialize)]
pub struct ChunkDiff {
    /// 0-based position of the chunk in key order.
    pub index: u64,
    pub range: KeyRange,
    /// A `WHERE` condition selecting the chunk's rows, to paste into psql.
    pub where_sql: String,
    pub source_rows: i64,
    pub target_rows: i64,
    /// The first differing keys, when narrowed.
    pub rows: Vec<RowDiff>,
}

/// Key values (as text) bounding a chunk: `after < key <= up_to`; `None` is unbounded.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct KeyRange {
    pub columns: Vec<String>,
    pub after: Option<Vec<String>>,
    pub up_to: Option<Vec<String>>,
}

impl KeyRange {
    /// The whole table.
    pub fn all(columns: Vec<String>) -> KeyRange {
        KeyRange {
            columns,
            after: None,
            up_to: None,
        }
    }

    fn tuple(values: &[String]) -> String {
        if values.len() == 1 {
            values[0].clone()
        } else {
            format!("({})", values.join(", "))
        }
    }

    /// The same condition as SQL, identifiers and values quoted.
    pub fn where_sql(&self) -> String {
        let cols: Vec<String> = self.columns.iter().map(|c| pg::quote::ident(c)).collect();
        let lhs = if cols.len() == 1 {
            cols[0].clone()
        } else {
            format!("({})", cols.join(", "))
        };
        let lit = |v: &[String]| {
            let l: Vec<String> = v.iter().map(|x| pg::quote::literal(x)).collect();
            if l.len() == 1 {
                l[0].clone()
            } else {
                format!("({})", l.join(", "))
            }
        };
        let mut parts = Vec::new();
        if let Some(a) = &self.after {
            parts.push(format!("{lhs} > {}", lit(a)));
        }
        if let Some(u) = &self.up_to {
            parts.push(format!("{lhs} <= {}", lit(u)));
        }
        if parts.is_empty() {
            "true".to_string()
        } else {
            parts.join(" AND ")
        }
    }
}

impl fmt::Display for KeyRange {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.columns.is_empty() {
            return f.write_str("whole table");
        }
        let cols = if self.columns.len() == 1 {
            self.columns[0].clone()
        } else {
            format!("({})", self.columns.join(", "))
        };
        let lo = self
            .after
            .as_deref()
            .map(Self::tuple)
            .unwrap_or_else(|| "-inf".to_string());
        let hi = self
            .up_to
            .as_deref()
            .map(Self::tuple)
            .unwrap_or_else(|| "+inf".to_string());
        let close = if self.up_to.is_some() { "]" } else { ")" };
        write!(f, "{cols} in ({lo}, {hi}{close}")
    }
}

/// One differing row, by key.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RowDiff {
    pub key: Vec<String>,
    pub kind: RowDiffKind,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum RowDiffKind {
    /// The key is on both sides with different content.
    Differs,
    MissingOnTarget,
    MissingOnSource,
}

impl fmt::Display for RowDiffKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            RowDiffKind::Differs => "differs",
            RowDiffKind::MissingOnTarget => "missing on target",
            RowDiffKind::MissingOnSource => "missing on source",
        })
    }
}

/// A sequence on either side.
#[derive(Debug, Clone, Serialize)]
pub struct SequenceReport {
    pub schema: String,
    pub name: String,
    pub source: Option<SequenceState>,
    pub target: Option<SequenceState>,
    /// Same definition and same next value on both sides.
    pub equal: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SequenceState {
    pub last_value: i64,
    pub is_called: bool,
    /// The value `nextval` will return (saturating at the type's bound).
    pub next_value: i64,
    /// Type, start, increment, bounds, cache, cycle.
    pub definition: String,
}

/// A kind of schema object in the inventory.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum ObjectKind {
    Schema,
    Extension,
    Type,
    Column,
    Index,
    Constraint,
    Trigger,
    View,
    MaterializedView,
    Function,
    Table,
    ForeignTable,
    Sequence,
    LargeObject,
    DefaultPrivileges,
}

impl fmt::Display for ObjectKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            ObjectKind::Schema => "schema",
            ObjectKind::Extension => "extension",
            ObjectKind::Type => "type",
            ObjectKind::Column => "column",
            ObjectKind::Index => "index",
            ObjectKind::Constraint => "constraint",
            ObjectKind::Trigger => "trigger",
            ObjectKind::View => "view",
            ObjectKind::MaterializedView => "materialized view",
            ObjectKind::Function => "function",
            ObjectKind::Table => "table",
            ObjectKind::ForeignTable => "foreign table",
            ObjectKind::Sequence => "sequence",
            ObjectKind::LargeObject => "large object",
            ObjectKind::DefaultPrivileges => "default privileges",
        })
    }
}

/// How an object differs.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum ObjectDifference {
    MissingOnTarget,
    MissingOnSource,
    /// Present on both, defined differently.
    Definition,
}

impl fmt::Display for ObjectDifference {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            ObjectDifference::MissingOnTarget => "missing on target",
            ObjectDifference::MissingOnSource => "missing on source",
            ObjectDifference::Definition => "defined differently",
        })
    }
}

/// One object that differs. `name` is qualified by its table where names are per table
/// (`table.column`, `table.constraint`, `table.trigger`), and by nothing for extensions.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ObjectDiff {
    pub kind: ObjectKind,
    pub schema: String,
    pub name: String,
    pub difference: ObjectDifference,
    /// The property that differs (`owner`, `privileges of alice`, `row level security`...);
    /// `None` when the object itself is missing or defined differently.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub property: Option<String>,
    /// Normalized definitions, or the property's values (`none` when unset).
    pub source: Option<String>,
    pub target: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SchemaCount {
    pub schema: String,
    pub source: u64,
    pub target: u64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct LargeObjectReport {
    pub source_count: i64,
    pub target_count: i64,
    /// Contents were checksummed (level `checksums`).
    pub contents_compared: bool,
    pub equal: bool,
}

/// Counts for the summary line.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct Summary {
    pub tables: usize,
    pub tables_differing: usize,
    pub chunks: u64,
    pub chunks_differing: usize,
    pub sequences: usize,
    pub sequences_differing: usize,
    pub object_differences: usize,
}

impl VerifyReport {
    /// Nothing differs: every table, sequence, object and large object matches.
    pub fn is_identical(&self) -> bool {
        self.tables.iter().all(|t| t.status == TableStatus::Same)
            && self.sequences.iter().all(|s| s.equal)
            && self.objects.is_empty()
            && self.large_objects.as_ref().is_none_or(|l| l.equal)
    }

    pub fn summary(&self) -> Summary {
        Summary {
            tables: self.tables.len(),
            tables_differing: self
                .tables
                .iter()
                .filter(|t| t.status != TableStatus::Same)
                .count(),
            chunks: self.tables.iter().map(|t| t.chunks).sum(),
            chunks_differing: self.tables.iter().map(|t| t.differing_chunks.len()).sum(),
            sequences: self.sequences.len(),
            sequences_differing: self.sequences.iter().filter(|s| !s.equal).count(),
            object_differences: self.objects.len(),
        }
    }

    /// A table's report.
    pub fn table(&self, schema: &str, name: &str) -> Option<&TableReport> {
        self.tables
            .iter()
            .find(|t| t.schema == schema && t.name == name)
    }

    /// A sequence's report.
    pub fn sequence(&self, schema: &str, name: &str) -> Option<&SequenceReport> {
        self.sequences
            .iter()
            .find(|s| s.schema == schema && s.name == name)
    }
}

/// Which relations and schemas are in scope.
#[derive(Clone)]
pub(crate) struct Scope {
    schemas: Vec<String>,
    include: IncludeFn,
}

/// Schemas left out when the plan names none: pgmove's state and pglogical's node catalog
/// legitimately differ between the servers.
const DEFAULT_EXCLUDED_SCHEMAS: &[&str] = &[crate::state::SCHEMA, "pglogical"];

impl Scope {
    pub(crate) fn schema(&self, schema: &str) -> bool {
        if self.schemas.is_empty() {
            !DEFAULT_EXCLUDED_SCHEMAS.contains(&schema)
        } else {
            self.schemas.iter().any(|s| s == schema)
        }
    }

    pub(crate) fn relation(&self, schema: &str, name: &str) -> bool {
        self.schema(schema) && (self.include)(schema, name)
    }
}

/// Compares `source` and `target`. Reads only; every session is read-only.
pub async fn verify(
    source: &Endpoint,
    target: &Endpoint,
    opts: &VerifyOptions,
) -> Result<VerifyReport, VerifyError> {
    if opts.chunk_rows == 0 {
        return Err(VerifyError::Options("chunk_rows must be at least 1".into()));
    }
    let started = Instant::now();
    let jobs = opts.jobs.max(1);
    let scope = Scope {
        schemas: opts.schemas.clone(),
        include: opts.include.clone(),
    };
    let source = Arc::new(source.clone());
    let target = Arc::new(target.clone());

    // Properties are read on a second pair while the first reads tables and the inventory.
    let (first, second) = tokio::try_join!(
        Pair::connect(&source, &target),
        Pair::connect(&source, &target)
    )?;
    let catalog_and_inventory = async {
        let (src_cat, tgt_cat) = tokio::try_join!(
            Catalog::read(&first.src, &scope),
            Catalog::read(&first.tgt, &scope)
        )?;
        let sequences = compare_sequences(&first, &src_cat, &tgt_cat).await?;
        let inventory = objects::compare(&first, &scope, &src_cat, &tgt_cat).await?;
        Ok::<_, VerifyError>((src_cat, tgt_cat, sequences, inventory))
    };
    let ((src_cat, tgt_cat, sequences, mut inventory), props) = tokio::try_join!(
        catalog_and_inventory,
        properties::compare(&second, &scope, opts)
    )?;

    let (mut tables, plans) = match_tables(&src_cat, &tgt_cat, opts);
    inventory.diffs.extend(props.diffs);
    let mut notes = props.notes;
    // Left out by default but not pgmove's own (no marker): say so.
    let excluded = if scope.schemas.is_empty()
        && crate::state::owner(&first.src.client, &first.src.ep).await?
            == crate::state::Owner::Foreign
    {
        vec![format!(
            "schema {} (the source's own, not pgmove's): not compared; pgmove keeps its state in a schema of that name on the target",
            crate::state::SCHEMA
        )]
    } else {
        Vec::new()
    };
    let large_objects = if opts.large_objects {
        Some(compare_large_objects(&first, opts.level).await?)
    } else {
        None
    };

    // The other connection pairs.
    let mut pairs = vec![first];
    let wanted = jobs.min(plans.len().max(1));
    if wanted > 1 {
        pairs.push(second);
    } else {
        drop(second);
    }
    if wanted > 2 {
        let more =
            futures_util::future::join_all((2..wanted).map(|_| Pair::connect(&source, &target)))
                .await;
        for p in more {
            pairs.push(p?);
        }
    }

    let narrowed = plans.iter().map(|_| AtomicUsize::new(0)).collect();
    let runner = Runner {
        plans,
        opts,
        narrowed,
    };

    // Phase 1: counts, whole-table checksums, chunk boundaries.
    let step = opts
        .progress
        .step("verify: plan", runner.plans.len() as u64);
    let prepared = runner
        .run(
            &pairs,
            (0..runner.plans.len()).map(Task::Prepare).collect(),
            &step,
        )
        .await?;
    step.finish("tables planned");

    let mut chunk_tasks = Vec::new();
    let mut results: Vec<TableResult> = runner
        .plans
        .iter()
        .map(|_| TableResult::default())
        .collect();
    for out in prepared {
        match out {
            Output::Counts { table, src, tgt } => {
                let r = &mut results[table];
                r.source_rows = src;
                r.target_rows = tgt;
                r.chunks = u64::from(src.is_some() && tgt.is_some());
            }
            Output::Whole { table, src, tgt } => {
                let r = &mut results[table];
                r.source_rows = Some(src.count);
                r.target_rows = Some(tgt.count);
                r.chunks = 1;
                if src != tgt {
                    r.diffs.push(ChunkDiff {
                        index: 0,
                        where_sql: "true".into(),
                        range: KeyRange::all(Vec::new()),
                        source_rows: src.count,
                        target_rows: tgt.count,
                        rows: Vec::new(),
                    });
                }
            }
            Output::Boundaries { table, bounds } => {
                let ranges = checksum::ranges_from_bounds(bounds);
                results[table].chunks = ranges.len() as u64;
                results[table].source_rows = Some(0);
                results[table].target_rows = Some(0);
                for (i, bounds) in ranges.into_iter().enumerate() {
                    chunk_tasks.push(Task::Chunk {
                        table,
                        index: i as u64,
                        bounds,
                    });
                }
            }
            Output::Chunk { .. } => {}
        }
    }

    // Phase 2: chunks.
    let step = opts
        .progress
        .step("verify: chunks", chunk_tasks.len() as u64);
    let chunked = runner.run(&pairs, chunk_tasks, &step).await?;
    step.finish("chunks compared");
    for out in chunked {
        if let Output::Chunk {
            table,
            src,
            tgt,
            diff,
        } = out
        {
            let r = &mut results[table];
            r.source_rows = Some(r.source_rows.unwrap_or(0) + src);
            r.target_rows = Some(r.target_rows.unwrap_or(0) + tgt);
            if let Some(d) = diff {
                r.diffs.push(*d);
            }
        }
    }

    let mut stale_candidates = Vec::new();
    for (i, (plan, r)) in runner.plans.iter().zip(results).enumerate() {
        let t = &mut tables[plan.report];
        t.source_rows = r.source_rows;
        t.target_rows = r.target_rows;
        t.chunks = r.chunks;
        let mut diffs = r.diffs;
        diffs.sort_by_key(|d| d.index);
        t.differing_chunks = diffs;
        if t.status == TableStatus::Same
            && (t.source_rows != t.target_rows || !t.differing_chunks.is_empty())
        {
            t.status = TableStatus::Differs;
            if t.materialized_view {
                stale_candidates.push(i);
            }
        }
    }
    for i in stale_candidates {
        let plan = &runner.plans[i];
        let t = &mut tables[plan.report];
        match stale_matview(&pairs[0], plan, &src_cat, t).await? {
            Matview::Stale(note) => {
                t.status = TableStatus::Same;
                t.differing_chunks.clear();
                t.notes.push(note.clone());
                notes.push(format!("materialized view {}.{}: {note}", t.schema, t.name));
            }
            Matview::Differs(note) => t.notes.push(note),
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
        function_counts: inventory.function_counts,
        large_objects,
        notes,
        excluded,
        elapsed_seconds: started.elapsed().as_secs_f64(),
    };
    report.identical = report.is_identical();
    Ok(report)
}

/// The defining query of a materialized view (`$1`, its quoted qualified name), as
/// `pg_get_viewdef` prints it (names qualified under the session's `search_path`).
const MATVIEW_QUERY_SQL: &str = "SELECT pg_get_viewdef($1::text::regclass, true)";

/// Why a materialized view's contents differ, as a note.
enum Matview {
    /// The source's copy is stale and the target holds what its query returns: not a
    /// migration error.
    Stale(String),
    /// A difference.
    Differs(String),
}

/// When a materialized view's contents differ: whether the source's are stale, that is the
/// source's stored rows differ from what its query returns now and the target's are exactly
/// that (pg_restore refreshes a materialized view; cutover too). Runs the view's query on the
/// source, read-only.
async fn stale_matview(
    pair: &Pair,
    plan: &TablePlan,
    src: &Catalog,
    t: &TableReport,
) -> Result<Matview, VerifyError> {
    let differs = |why: &str| Matview::Differs(format!("materialized view contents differ{why}"));
    let Some(mv) = src
        .matviews
        .iter()
        .find(|m| m.schema == t.schema && m.name == t.name)
    else {
        return Ok(differs(""));
    };
    let name = pg::quote::qualified(&mv.schema, &mv.name);
    let def: Option<String> = pair
        .src
        .query_one(
            &format!("reading the query of materialized view {name}"),
            MATVIEW_QUERY_SQL,
            &[&name],
        )
        .await?
        .get(0);
    let Some(def) = def else {
        return Ok(differs(""));
    };
    let query = def.trim().trim_end_matches(';').to_string();
    let alias: Vec<String> = mv
        .columns
        .iter()
        .map(|c| pg::quote::ident(&c.name))
        .collect();
    let alias = alias.join(", ");
    let all = checksum::Bounds::all();
    let (fresh, stored, target) = tokio::try_join!(
        plan.query_sum(&pair.src, &query, &alias),
        plan.sum(&pair.src, pg::Side::Source, &all),
        plan.sum(&pair.tgt, pg::Side::Target, &all)
    )?;
    Ok(if fresh == stored {
        differs(": the source's copy is current (its query returns what it stores), the target's is not")
    } else if fresh == target {
        Matview::Stale(format!(
            "stale on the source: its stored contents ({} row(s)) differ from what its query returns now ({} row(s)), which the target holds; REFRESH MATERIALIZED VIEW {name} on the source makes them equal",
            stored.count, fresh.count
        ))
    } else {
        differs(": the target holds neither the source's stored contents nor what its query returns now")
    })
}

#[derive(Default)]
struct TableResult {
    source_rows: Option<i64>,
    target_rows: Option<i64>,
    chunks: u64,
    diffs: Vec<ChunkDiff>,
}

/// Builds the table reports (every table on either side, sorted) and the plans for the tables
/// whose data is compared.
fn match_tables(
    src: &Catalog,
    tgt: &Catalog,
    opts: &VerifyOptions,
) -> (Vec<TableReport>, Vec<TablePlan>) {
    let floats_as_bits = across_majors::floats_print_differently(src.version, tgt.version);
    let mut names: BTreeSet<(&str, &str)> = BTreeSet::new();
    for t in src.tables.iter().chain(tgt.tables.iter()) {
        names.insert((t.schema.as_str(), t.name.as_str()));
    }
    let src_map: BTreeMap<(&str, &str), &RelInfo> = src
        .tables
        .iter()
        .map(|t| ((t.schema.as_str(), t.name.as_str()), t))
        .collect();
    let tgt_map: BTreeMap<(&str, &str), &RelInfo> = tgt
        .tables
        .iter()
        .map(|t| ((t.schema.as_str(), t.name.as_str()), t))
        .collect();

    let mut reports = Vec::new();
    let mut plans = Vec::new();
    for (schema, name) in names {
        let s = src_map.get(&(schema, name)).copied();
        let t = tgt_map.get(&(schema, name)).copied();
        let any = s.or(t).expect("in one of the maps");
        let mut report = TableReport {
            schema: schema.to_string(),
            name: name.to_string(),
            partitioned: any.partitioned,
            partition_of: any.parent.clone(),
            materialized_view: false,
            method: Method::None,
            key: Vec::new(),
            source_rows: None,
            target_rows: None,
            chunks: 0,
            differing_chunks: Vec::new(),
            notes: Vec::new(),
            status: TableStatus::Same,
        };
        let idx = reports.len();
        match (s, t) {
            (Some(s), None) => {
                report.status = TableStatus::MissingOnTarget;
                if !s.partitioned {
                    report.method = Method::Count;
                    plans.push(TablePlan::count_one(idx, s, pg::Side::Source));
                }
            }
            (None, Some(t)) => {
                report.status = TableStatus::MissingOnSource;
                if !t.partitioned {
                    report.method = Method::Count;
                    plans.push(TablePlan::count_one(idx, t, pg::Side::Target));
                }
            }
            (Some(s), Some(t)) => {
                let col_notes = column_notes(s, t);
                if !col_notes.is_empty() {
                    report.status = TableStatus::Differs;
                    report.notes.extend(col_notes);
                }
                if s.partitioned != t.partitioned {
                    report.status = TableStatus::Differs;
                    report.notes.push(format!(
                        "partitioned on the {} only",
                        if s.partitioned { "source" } else { "target" }
                    ));
                } else if s.parent != t.parent {
                    report.status = TableStatus::Differs;
                    report.notes.push(format!(
                        "partition of {} on the source, {} on the target",
                        s.parent.as_deref().unwrap_or("nothing"),
                        t.parent.as_deref().unwrap_or("nothing")
                    ));
                }
                if s.partitioned || t.partitioned {
                    // Rows live in the partitions (or the kinds differ: nothing comparable).
                } else {
                    let plan = TablePlan::both(idx, s, t, opts.level, floats_as_bits);
                    report.method = plan.method();
                    report.key = plan
                        .key
                        .as_ref()
                        .map(|k| k.names.clone())
                        .unwrap_or_default();
                    if let Some(k) = &plan.key {
                        if k.collate_c {
                            report.notes.push(
                                "key collations differ between the servers: chunks compared in \"C\" order"
                                    .to_string(),
                            );
                        }
                    }
                    plans.push(plan);
                }
            }
            (None, None) => unreachable!(),
        }
        reports.push(report);
    }
    // Materialized views populated on both sides: their contents compare like a table's (one
    // missing or not populated on a side is the inventory's difference).
    for s in &src.matviews {
        let Some(t) = tgt
            .matviews
            .iter()
            .find(|t| t.schema == s.schema && t.name == s.name)
        else {
            continue;
        };
        let idx = reports.len();
        let plan = TablePlan::both(idx, s, t, opts.level, floats_as_bits);
        let notes = column_notes(s, t);
        reports.push(TableReport {
            schema: s.schema.clone(),
            name: s.name.clone(),
            partitioned: false,
            partition_of: None,
            materialized_view: true,
            method: plan.method(),
            key: plan
                .key
                .as_ref()
                .map(|k| k.names.clone())
                .unwrap_or_default(),
            source_rows: None,
            target_rows: None,
            chunks: 0,
            differing_chunks: Vec::new(),
            status: if notes.is_empty() {
                TableStatus::Same
            } else {
                TableStatus::Differs
            },
            notes,
        });
        plans.push(plan);
    }
    (reports, plans)
}

/// Columns present on one side only, or typed differently.
fn column_notes(s: &RelInfo, t: &RelInfo) -> Vec<String> {
    let mut notes = Vec::new();
    for c in &s.columns {
        match t.columns.iter().find(|x| x.name == c.name) {
            None => notes.push(format!("column {} missing on target", c.name)),
            Some(x) if x.type_name != c.type_name => notes.push(format!(
                "column {} is {} on the source, {} on the target",
                c.name, c.type_name, x.type_name
            )),
            _ => {}
        }
    }
    for c in &t.columns {
        if !s.columns.iter().any(|x| x.name == c.name) {
            notes.push(format!("column {} missing on source", c.name));
        }
    }
    notes
}

/// One unit of work on a connection pair.
enum Task {
    Prepare(usize),
    Chunk {
        table: usize,
        index: u64,
        bounds: checksum::Bounds,
    },
}

enum Output {
    Counts {
        table: usize,
        src: Option<i64>,
        tgt: Option<i64>,
    },
    Whole {
        table: usize,
        src: ChunkSum,
        tgt: ChunkSum,
    },
    Boundaries {
        table: usize,
        bounds: Vec<Vec<String>>,
    },
    Chunk {
        table: usize,
        src: i64,
        tgt: i64,
        diff: Option<Box<ChunkDiff>>,
    },
}

struct Runner<'a> {
    plans: Vec<TablePlan>,
    opts: &'a VerifyOptions,
    /// Differing chunks narrowed so far, per plan.
    narrowed: Vec<AtomicUsize>,
}

impl Runner<'_> {
    /// Runs `tasks` on the pairs, one task per pair at a time; stops at the first error.
    async fn run(
        &self,
        pairs: &[Pair],
        tasks: Vec<Task>,
        step: &Step,
    ) -> Result<Vec<Output>, VerifyError> {
        let queue = Mutex::new(tasks.into_iter().collect::<std::collections::VecDeque<_>>());
        let outputs = Mutex::new(Vec::new());
        let failed = AtomicBool::new(false);
        let first_error: Mutex<Option<VerifyError>> = Mutex::new(None);
        let workers = pairs.iter().map(|pair| async {
            loop {
                if failed.load(Ordering::SeqCst) {
                    break;
                }
                let task = queue.lock().expect("queue lock").pop_front();
                let Some(task) = task else { break };
                let label = self.label(&task);
                match self.task(pair, task).await {
                    Ok(out) => {
                        outputs.lock().expect("outputs lock").push(out);
                        step.item_done(&label);
                    }
                    Err(e) => {
                        failed.store(true, Ordering::SeqCst);
                        first_error.lock().expect("error lock").get_or_insert(e);
                        break;
                    }
                }
            }
        });
        futures_util::future::join_all(workers).await;
        if let Some(e) = first_error.into_inner().expect("error lock") {
            return Err(e);
        }
        Ok(outputs.into_inner().expect("outputs lock"))
    }

    fn label(&self, task: &Task) -> String {
        match task {
            Task::Prepare(t) => self.plans[*t].display.clone(),
            Task::Chunk { table, index, .. } => {
                format!("{} chunk {}", self.plans[*table].display, index + 1)
            }
        }
    }

    async fn task(&self, pair: &Pair, task: Task) -> Result<Output, VerifyError> {
        match task {
            Task::Prepare(table) => self.prepare(pair, table).await,
            Task::Chunk {
                table,
                index,
                bounds,
            } => self.chunk(pair, table, index, bounds).await,
        }
    }

    async fn prepare(&self, pair: &Pair, table: usize) -> Result<Output, VerifyError> {
        let plan = &self.plans[table];
        match plan.mode {
            checksum::Mode::CountOne(side) => {
                let conn = pair.side(side);
                let n = plan.count(conn, side).await?;
                let (src, tgt) = match side {
                    pg::Side::Source => (Some(n), None),
                    pg::Side::Target => (None, Some(n)),
                };
                Ok(Output::Counts { table, src, tgt })
            }
            checksum::Mode::Count => {
                let (s, t) = tokio::try_join!(
                    plan.count(&pair.src, pg::Side::Source),
                    plan.count(&pair.tgt, pg::Side::Target)
                )?;
                Ok(Output::Counts {
                    table,
                    src: Some(s),
                    tgt: Some(t),
                })
            }
            checksum::Mode::Whole => {
                let all = checksum::Bounds::all();
                let (src, tgt) = tokio::try_join!(
                    plan.sum(&pair.src, pg::Side::Source, &all),
                    plan.sum(&pair.tgt, pg::Side::Target, &all)
                )?;
                Ok(Output::Whole { table, src, tgt })
            }
            checksum::Mode::Keyed => {
                let bounds = plan
                    .boundaries(
                        &pair.src,
                        pg::Side::Source,
                        &checksum::Bounds::all(),
                        i64::try_from(self.opts.chunk_rows).unwrap_or(i64::MAX),
                    )
                    .await?;
                Ok(Output::Boundaries { table, bounds })
            }
        }
    }

    async fn chunk(
        &self,
        pair: &Pair,
        table: usize,
        index: u64,
        bounds: checksum::Bounds,
    ) -> Result<Output, VerifyError> {
        let plan = &self.plans[table];
        let (src, tgt) = tokio::try_join!(
            plan.sum(&pair.src, pg::Side::Source, &bounds),
            plan.sum(&pair.tgt, pg::Side::Target, &bounds)
        )?;
        let diff = if src != tgt {
            let key: &KeySpec = plan.key.as_ref().expect("keyed plan");
            let narrow = self.opts.max_row_diffs > 0
                && self.narrowed[table].fetch_add(1, Ordering::SeqCst) < MAX_NARROWED_CHUNKS;
            let rows = if narrow {
                plan.narrow(pair, &bounds, src.count, tgt.count, self.opts.max_row_diffs)
                    .await?
            } else {
                Vec::new()
            };
            let range = KeyRange {
                columns: key.names.clone(),
                after: bounds.after,
                up_to: bounds.up_to,
            };
            Some(Box::new(ChunkDiff {
                index,
                where_sql: range.where_sql(),
                range,
                source_rows: src.count,
                target_rows: tgt.count,
                rows,
            }))
        } else {
            None
        };
        Ok(Output::Chunk {
            table,
            src: src.count,
            tgt: tgt.count,
            diff,
        })
    }
}

async fn compare_sequences(
    pair: &Pair,
    src: &Catalog,
    tgt: &Catalog,
) -> Result<Vec<SequenceReport>, VerifyError> {
    let (sv, tv) = tokio::try_join!(
        catalog::sequence_states(&pair.src, &src.sequences),
        catalog::sequence_states(&pair.tgt, &tgt.sequences)
    )?;
    let mut all: BTreeMap<(String, String), (Option<SequenceState>, Option<SequenceState>)> =
        BTreeMap::new();
    for (seq, state) in src.sequences.iter().zip(sv) {
        all.entry((seq.schema.clone(), seq.name.clone()))
            .or_default()
            .0 = Some(state);
    }
    for (seq, state) in tgt.sequences.iter().zip(tv) {
        all.entry((seq.schema.clone(), seq.name.clone()))
            .or_default()
            .1 = Some(state);
    }
    Ok(all
        .into_iter()
        .map(|((schema, name), (s, t))| {
            let equal = match (&s, &t) {
                (Some(a), Some(b)) => a.next_value == b.next_value && a.definition == b.definition,
                _ => false,
            };
            SequenceReport {
                schema,
                name,
                source: s,
                target: t,
                equal,
            }
        })
        .collect())
}

/// The order-independent checksum of every large object's content, with its OID, computed
/// on the server in 1 MiB slices (no object is held in memory whole).
const LO_CHECKSUM_SQL: &str = "
SELECT count(*)::int8,
       coalesce(sum(('x' || substr(z.h, 1, 16))::bit(64)::int8::numeric), 0)::text,
       coalesce(sum(('x' || substr(z.h, 17, 16))::bit(64)::int8::numeric), 0)::text
FROM (
  SELECT md5(m.oid::text || ':' || coalesce((
    WITH RECURSIVE s(off, len, h) AS (
      SELECT 0::int8, length(x.p)::int8, md5(x.p) FROM (SELECT lo_get(m.oid, 0, 1048576) AS p) x
      UNION ALL
      SELECT s.off + 1048576, length(x.p)::int8, md5(x.p)
      FROM s, LATERAL (SELECT lo_get(m.oid, s.off + 1048576, 1048576) AS p) x
      WHERE s.len = 1048576
    )
    SELECT string_agg(s.h, ',' ORDER BY s.off) FROM s), '')) AS h
  FROM pg_largeobject_metadata m
) z";

async fn compare_large_objects(
    pair: &Pair,
    level: Level,
) -> Result<LargeObjectReport, VerifyError> {
    async fn one(c: &Conn, level: Level) -> Result<ChunkSum, VerifyError> {
        match level {
            Level::Counts => {
                let row = c
                    .query_one(
                        "counting large objects",
                        "SELECT count(*)::int8 FROM pg_largeobject_metadata",
                        &[],
                    )
                    .await?;
                Ok(ChunkSum {
                    count: row.get(0),
                    sum_hi: String::new(),
                    sum_lo: String::new(),
                })
            }
            Level::Checksums => {
                let row = c
                    .query_one("checksumming large objects", LO_CHECKSUM_SQL, &[])
                    .await?;
                Ok(ChunkSum {
                    count: row.get(0),
                    sum_hi: row.get(1),
                    sum_lo: row.get(2),
                })
            }
        }
    }
    let (s, t) = tokio::try_join!(one(&pair.src, level), one(&pair.tgt, level))?;
    Ok(LargeObjectReport {
        source_count: s.count,
        target_count: t.count,
        contents_compared: level == Level::Checksums,
        equal: s == t,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn globs() {
        let inc = exclude_globs(&["public.tmp_*".to_string(), "audit.*".to_string()]);
        assert!(!inc("public", "tmp_x"));
        assert!(!inc("public", "tmp_"));
        assert!(inc("public", "tmpx"));
        assert!(!inc("audit", "log"));
        assert!(inc("auditx", "log"));
        assert!(inc("public", "orders"));
        let q = exclude_globs(&["s.a?c".to_string()]);
        assert!(!q("s", "abc"));
        assert!(q("s", "abbc"));
    }

    #[test]
    fn key_ranges_render_and_quote() {
        let r = KeyRange {
            columns: vec!["id".into()],
            after: Some(vec!["100".into()]),
            up_to: Some(vec!["200".into()]),
        };
        assert_eq!(r.to_string(), "id in (100, 200]");
        assert_eq!(r.where_sql(), "\"id\" > '100' AND \"id\" <= '200'");
        let r = KeyRange {
            columns: vec!["a".into(), "b b".into()],
            after: None,
            up_to: Some(vec!["1".into(), "it's".into()]),
        };
        assert_eq!(r.to_string(), "(a, b b) in (-inf, (1, it's)]");
        assert_eq!(r.where_sql(), "(\"a\", \"b b\") <= ('1', 'it''s')");
        let r = KeyRange {
            columns: vec!["id".into()],
            after: Some(vec!["5".into()]),
            up_to: None,
        };
        assert_eq!(r.to_string(), "id in (5, +inf)");
        assert_eq!(KeyRange::all(vec![]).where_sql(), "true");
        assert_eq!(KeyRange::all(vec![]).to_string(), "whole table");
    }
}
