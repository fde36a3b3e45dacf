//! The planner: which strategy, in which steps, and why. Pure logic over the plan and the two
//! inventories, so it is unit-tested without servers.

use std::time::Duration;

use serde::Serialize;

use crate::inspect::{Inventory, Table, TableKind};
use crate::pg::Side;
use crate::plan::{Plan, StrategyChoice};

/// A migration strategy.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Strategy {
    DumpRestore,
    Pglogical,
    CopyCdc,
}

impl Strategy {
    pub const ALL: [Strategy; 3] = [
        Strategy::DumpRestore,
        Strategy::Pglogical,
        Strategy::CopyCdc,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Strategy::DumpRestore => "dump-restore",
            Strategy::Pglogical => "pglogical",
            Strategy::CopyCdc => "copy-cdc",
        }
    }

    /// Online strategies keep the source writable until cutover.
    pub fn is_online(self) -> bool {
        !matches!(self, Strategy::DumpRestore)
    }

    /// Whether `strategy: auto` may choose it in this build of pgmove.
    pub fn is_available(self) -> bool {
        matches!(self, Strategy::DumpRestore)
    }

    /// Whether a plan that names it can run it. copy-cdc runs (full load, then change capture
    /// until stopped); auto does not choose it until the cutover command exists.
    pub fn runs_when_named(self) -> bool {
        matches!(self, Strategy::DumpRestore | Strategy::CopyCdc)
    }
}

/// Rates used for estimates, per worker. Conservative figures for a dump and restore over a
/// local network; the report says they are estimates.
pub const COPY_BYTES_PER_SEC: f64 = 40.0 * 1024.0 * 1024.0;
pub const INDEX_BYTES_PER_SEC: f64 = 60.0 * 1024.0 * 1024.0;
/// Fixed cost of starting the tools and creating the schema.
pub const FIXED_OVERHEAD: Duration = Duration::from_secs(5);

/// One step of the plan.
#[derive(Clone, Debug, Serialize)]
pub struct Step {
    pub number: usize,
    pub what: String,
    /// `source`, `target`, or `both`.
    pub on: String,
    pub why: String,
    /// Seconds, when it can be estimated.
    pub estimate_secs: Option<u64>,
}

/// An alternative the planner did not take.
#[derive(Clone, Debug, Serialize)]
pub struct Rejected {
    pub strategy: Strategy,
    pub reasons: Vec<String>,
}

/// What the planner decided.
#[derive(Clone, Debug, Serialize)]
pub struct Decision {
    /// `None` when no strategy can run (every one is blocked).
    pub strategy: Option<Strategy>,
    pub why: String,
    pub rejected: Vec<Rejected>,
    pub steps: Vec<Step>,
    /// Estimated write outage of the chosen strategy, seconds.
    pub estimated_outage_secs: Option<u64>,
    pub estimated_total_secs: Option<u64>,
    /// Bytes of the selected tables' heaps and of their indexes on the source.
    pub data_bytes: i64,
    pub index_bytes: i64,
    pub tables: usize,
}

/// The tables the plan selects: non-extension tables in the selected schemas, not excluded.
pub fn selected_tables<'a>(plan: &'a Plan, inv: &'a Inventory) -> impl Iterator<Item = &'a Table> {
    inv.user_tables()
        .filter(move |t| t.schema != crate::state::SCHEMA)
        .filter(move |t| plan.objects.includes(&t.schema, &t.name))
}

/// What the source can do for logical decoding, as reasons it cannot (empty: it can).
pub fn logical_decoding_blockers(source: &Inventory) -> Vec<String> {
    let mut r = Vec::new();
    if source.settings.wal_level != "logical" {
        r.push(format!(
            "the source's wal_level is {} (logical decoding needs logical)",
            source.settings.wal_level
        ));
    }
    if source.free_replication_slots() < 1 {
        r.push("the source has no free replication slot".to_string());
    }
    if source.free_wal_senders() < 1 {
        r.push("the source has no free WAL sender".to_string());
    }
    let rights = &source.rights;
    if !(rights.superuser || rights.replication || rights.rds_replication || rights.rds_superuser) {
        r.push(format!(
            "the source role {} has no REPLICATION right",
            source.server.current_user
        ));
    }
    r
}

fn pglogical_blockers(source: &Inventory, target: &Inventory) -> Vec<String> {
    let mut r = Vec::new();
    for inv in [source, target] {
        let loaded = inv
            .settings
            .shared_preload_libraries
            .as_ref()
            .is_some_and(|l| l.iter().any(|x| x == "pglogical"));
        if !loaded {
            r.push(format!(
                "pglogical is not in the {}'s shared_preload_libraries",
                inv.side
            ));
        }
        if inv.available_extension("pglogical").is_none() && inv.extension("pglogical").is_none() {
            r.push(format!(
                "the pglogical extension is not available on the {}",
                inv.side
            ));
        }
    }
    r
}

/// Estimated seconds to copy `data` bytes and build `index` bytes of indexes.
pub fn estimate_copy(data: i64, index: i64, jobs: u32, index_jobs: u32, tables: usize) -> Duration {
    let workers = (jobs.max(1) as usize).min(tables.max(1)) as f64;
    let copy = data.max(0) as f64 / (COPY_BYTES_PER_SEC * workers);
    let idx = index.max(0) as f64 / (INDEX_BYTES_PER_SEC * index_jobs.max(1) as f64);
    FIXED_OVERHEAD + Duration::from_secs_f64(copy + idx)
}

/// Picks the strategy and lays out its steps.
pub fn decide(plan: &Plan, source: &Inventory, target: &Inventory) -> Decision {
    let tables: Vec<&Table> = selected_tables(plan, source).collect();
    let data_bytes: i64 = tables
        .iter()
        .filter(|t| t.kind != TableKind::PartitionedParent)
        .map(|t| t.heap_bytes.max(0))
        .sum();
    let index_bytes: i64 = tables
        .iter()
        .map(|t| (t.total_bytes - t.heap_bytes).max(0))
        .sum();
    let copy_time = estimate_copy(
        data_bytes,
        index_bytes,
        plan.jobs,
        plan.index_jobs,
        tables.len(),
    );
    let budget = plan.downtime;

    let logical = logical_decoding_blockers(source);
    let reasons_against = |s: Strategy| -> Vec<String> {
        let mut r = Vec::new();
        match s {
            Strategy::DumpRestore => {
                if copy_time > budget {
                    r.push(format!(
                        "its write outage (about {}) exceeds the downtime budget of {}",
                        human(copy_time),
                        human(budget)
                    ));
                }
            }
            Strategy::CopyCdc => r.extend(logical.iter().cloned()),
            Strategy::Pglogical => {
                r.extend(logical.iter().cloned());
                r.extend(pglogical_blockers(source, target));
            }
        }
        if !s.is_available() {
            r.push("not available in this version of pgmove yet".to_string());
        }
        r
    };

    let (strategy, why, rejected) = match plan.strategy {
        StrategyChoice::Auto => {
            let order = if copy_time <= budget {
                [
                    Strategy::DumpRestore,
                    Strategy::CopyCdc,
                    Strategy::Pglogical,
                ]
            } else {
                [
                    Strategy::CopyCdc,
                    Strategy::Pglogical,
                    Strategy::DumpRestore,
                ]
            };
            let mut rejected = Vec::new();
            let mut chosen = None;
            for s in order {
                let r = reasons_against(s);
                if chosen.is_none() && r.is_empty() {
                    chosen = Some(s);
                } else if !r.is_empty() || chosen.is_some() {
                    let reasons = if r.is_empty() {
                        vec![format!(
                            "{} was preferred",
                            chosen.map(Strategy::name).unwrap_or("another strategy")
                        )]
                    } else {
                        r
                    };
                    rejected.push(Rejected {
                        strategy: s,
                        reasons,
                    });
                }
            }
            let why = match chosen {
                Some(Strategy::DumpRestore) => format!(
                    "strategy auto: the estimated copy time ({}) fits the downtime budget ({}), and an offline copy is the simplest exact move",
                    human(copy_time),
                    human(budget)
                ),
                Some(s) => format!(
                    "strategy auto: a full copy (about {}) does not fit the downtime budget ({}); {} keeps the source writable until cutover",
                    human(copy_time),
                    human(budget),
                    s.name()
                ),
                None => "strategy auto: no strategy can run; see the reasons below".to_string(),
            };
            (chosen, why, rejected)
        }
        choice => {
            let s = match choice {
                StrategyChoice::DumpRestore => Strategy::DumpRestore,
                StrategyChoice::Pglogical => Strategy::Pglogical,
                _ => Strategy::CopyCdc,
            };
            let mut r = reasons_against(s);
            // Asked for by name, dump-restore may exceed the budget: a warning in preflight,
            // not a reason to refuse.
            if s == Strategy::DumpRestore {
                r.retain(|x| !x.contains("downtime budget"));
            }
            if s.runs_when_named() {
                r.retain(|x| !x.contains("not available in this version"));
            }
            let rejected = Strategy::ALL
                .iter()
                .filter(|o| **o != s)
                .map(|o| Rejected {
                    strategy: *o,
                    reasons: vec![format!("the plan asks for strategy {}", s.name())],
                })
                .collect();
            if r.is_empty() {
                (
                    Some(s),
                    format!("the plan asks for strategy {}", s.name()),
                    rejected,
                )
            } else {
                (
                    None,
                    format!(
                        "the plan asks for strategy {}, which cannot run: {}",
                        s.name(),
                        r.join("; ")
                    ),
                    rejected,
                )
            }
        }
    };

    let steps = match strategy {
        Some(Strategy::DumpRestore) => {
            dump_restore_steps(plan, source, &tables, data_bytes, index_bytes)
        }
        Some(Strategy::CopyCdc) => copy_cdc_steps(plan, &tables, data_bytes, index_bytes),
        _ => Vec::new(),
    };
    let total: u64 = steps.iter().filter_map(|s| s.estimate_secs).sum();
    Decision {
        strategy,
        why,
        rejected,
        estimated_outage_secs: strategy.map(|s| {
            // Online: the outage is the cutover (done by hand until the cutover command).
            if s.is_online() {
                10
            } else {
                total.max(copy_time.as_secs())
            }
        }),
        estimated_total_secs: strategy.map(|_| total),
        steps,
        data_bytes,
        index_bytes,
        tables: tables.len(),
    }
}

fn dump_restore_steps(
    plan: &Plan,
    source: &Inventory,
    tables: &[&Table],
    data_bytes: i64,
    index_bytes: i64,
) -> Vec<Step> {
    let workers = (plan.jobs.max(1) as usize).min(tables.len().max(1)) as f64;
    let copy_secs = (data_bytes.max(0) as f64 / (COPY_BYTES_PER_SEC * workers)).ceil() as u64;
    let index_secs = (index_bytes.max(0) as f64
        / (INDEX_BYTES_PER_SEC * plan.index_jobs.max(1) as f64))
        .ceil() as u64;
    let extensions: Vec<&str> = source
        .extensions
        .iter()
        .map(|e| e.name.as_str())
        .filter(|n| *n != "plpgsql")
        .collect();
    let parents = tables
        .iter()
        .filter(|t| t.kind == TableKind::PartitionedParent)
        .count();
    let leaves = tables
        .iter()
        .filter(|t| t.kind == TableKind::Partition)
        .count();
    let mut steps = vec![
        (
            "create the pgmove state schema (pgmove.runs, pgmove.steps, pgmove.restore_items)".to_string(),
            Side::Target,
            "progress lives in the target, committed with the work, so a rerun resumes exactly".to_string(),
            Some(0),
        ),
        (
            format!("pg_dump -Fd -j {} of {} table(s), {}", plan.jobs, tables.len(), bytes(data_bytes)),
            Side::Source,
            "the native dump is the reference for exactness; directory format allows parallel dump and per-item restore".to_string(),
            Some(copy_secs / 2 + 1),
        ),
        (
            if extensions.is_empty() {
                "restore the schema (pre-data) in one transaction".to_string()
            } else {
                format!("restore the schema (pre-data) in one transaction, extensions first: {}", extensions.join(", "))
            },
            Side::Target,
            "all or nothing: a failure leaves no half-made schema".to_string(),
            Some(1),
        ),
        (
            format!("restore the data, {} item(s) at a time, largest first{}", plan.jobs, if leaves > 0 {
                format!("; {parents} partitioned table(s) load into their {leaves} leaf partition(s), never twice")
            } else {
                String::new()
            }),
            Side::Target,
            "each table's COPY commits with its progress row; indexes come later so the load is fast".to_string(),
            Some(copy_secs / 2 + 1),
        ),
        (
            format!("build indexes and primary/unique keys ({} at a time), attach partition indexes, add foreign keys, triggers, materialized view data", plan.index_jobs),
            Side::Target,
            "building indexes after the load is several times faster than maintaining them row by row".to_string(),
            Some(index_secs + 1),
        ),
        (
            "ANALYZE".to_string(),
            Side::Target,
            "the target's planner needs statistics before traffic arrives".to_string(),
            Some((tables.len() as u64 / 50).max(1)),
        ),
    ];
    if source.large_objects > 0 {
        let what = if plan.objects.large_objects {
            format!(
                "{} large object(s) are part of the dump and restore",
                source.large_objects
            )
        } else {
            format!(
                "{} large object(s) are left out (objects.large_objects: false)",
                source.large_objects
            )
        };
        steps.insert(
            4,
            (
                what,
                Side::Target,
                "large objects live outside tables".to_string(),
                None,
            ),
        );
    }
    steps.push((
        format!(
            "verify: row counts and {} per table, sequences, objects (`pgmove verify`)",
            match plan.cutover.verify {
                crate::plan::VerifyLevel::Counts => "counts",
                _ => "chunked checksums",
            }
        ),
        Side::Target,
        "proves the target equals the source before you switch applications".to_string(),
        None,
    ));
    steps
        .into_iter()
        .enumerate()
        .map(|(i, (what, on, why, est))| Step {
            number: i + 1,
            what,
            on: on.to_string(),
            why,
            estimate_secs: est,
        })
        .collect()
}

fn copy_cdc_steps(plan: &Plan, tables: &[&Table], data_bytes: i64, index_bytes: i64) -> Vec<Step> {
    let workers = (plan.jobs.max(1) as usize).min(tables.len().max(1)) as f64;
    let copy_secs = (data_bytes.max(0) as f64 / (COPY_BYTES_PER_SEC * workers)).ceil() as u64;
    let index_secs = (index_bytes.max(0) as f64
        / (INDEX_BYTES_PER_SEC * plan.index_jobs.max(1) as f64))
        .ceil() as u64;
    let split = tables
        .iter()
        .filter(|t| t.heap_bytes > plan.split_tables_larger_than as i64)
        .count();
    let steps = vec![
        (
            "create the pgmove state schema".to_string(),
            "target",
            "progress lives in the target, committed with the work".to_string(),
            Some(0),
        ),
        (
            "pg_dump --schema-only; restore pre-data in one transaction (extensions first, partitions as on the source)".to_string(),
            "target",
            "tables without indexes load fastest".to_string(),
            Some(2),
        ),
        (
            format!("create replication slot {} (pgoutput) with an exported snapshot", plan.slot_name()),
            "source",
            "the copy and the later change capture meet exactly at the slot's consistent LSN".to_string(),
            Some(1),
        ),
        (
            format!(
                "COPY {} table(s) in the snapshot, {} at a time{}; each chunk commits with its pgmove.copy_progress row",
                tables.len(),
                plan.jobs,
                if split > 0 { format!("; {split} table(s) over {} split into ctid ranges", bytes(plan.split_tables_larger_than as i64)) } else { String::new() }
            ),
            "both",
            "streams COPY bytes between the servers without parsing rows or touching disk".to_string(),
            Some(copy_secs + 1),
        ),
        (
            "set sequences, copy large objects".to_string(),
            "target",
            "neither is carried by COPY of tables".to_string(),
            Some(1),
        ),
        (
            format!("build indexes and constraints ({} at a time), then ANALYZE", plan.index_jobs),
            "target",
            "after the load, as pg_restore does".to_string(),
            Some(index_secs + 1),
        ),
        (
            format!("stream the slot's changes (pgoutput, publication {}) and apply them in commit order, each batch committed with its LSN in pgmove.progress, until apply is stopped", plan.publication_name()),
            "both",
            "exactly once across restarts: the slot is only told what the target committed".to_string(),
            None,
        ),
    ];
    steps
        .into_iter()
        .enumerate()
        .map(|(i, (what, on, why, est))| Step {
            number: i + 1,
            what,
            on: on.to_string(),
            why,
            estimate_secs: est,
        })
        .collect()
}

/// `1h 2m 3s` style.
pub fn human(d: Duration) -> String {
    let s = d.as_secs();
    if s < 60 {
        format!("{s}s")
    } else if s < 3600 {
        format!("{}m {}s", s / 60, s % 60)
    } else {
        format!("{}h {}m", s / 3600, (s % 3600) / 60)
    }
}

/// `1.5 GB` style (1024-based, as PostgreSQL prints sizes).
pub fn bytes(b: i64) -> String {
    let b = b.max(0) as f64;
    let units = ["bytes", "kB", "MB", "GB", "TB"];
    let mut v = b;
    let mut u = 0;
    while v >= 1024.0 && u < units.len() - 1 {
        v /= 1024.0;
        u += 1;
    }
    if u == 0 {
        format!("{} bytes", b as i64)
    } else {
        format!("{v:.1} {}", units[u])
    }
}
