//! The planner: which strategy, in which steps, and why. Pure logic over the plan and the two
//! inventories, so it is unit-tested without servers.

use std::time::Duration;

use serde::Serialize;

use crate::inspect::{Inventory, Platform, Table, TableKind};
use crate::plan::{Plan, StrategyChoice, TargetKind};
use crate::strategy::steps::{self as step_name, Facts, StepDef};
use crate::strategy::{copy_cdc, dump_restore, pglogical};

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
        matches!(
            self,
            Strategy::DumpRestore | Strategy::CopyCdc | Strategy::Pglogical
        )
    }

    /// Whether a plan that names it can run it.
    pub fn runs_when_named(self) -> bool {
        matches!(
            self,
            Strategy::DumpRestore | Strategy::CopyCdc | Strategy::Pglogical
        )
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
    /// The name `pgmove apply` records the step under (`pgmove.steps`), and the dry run and
    /// `pgmove status` show; `None` for what comes after apply (verify, change capture,
    /// cutover) and for notes.
    pub name: Option<&'static str>,
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
    /// The two majors and what copy-cdc gets on this pair (protocol version, streaming,
    /// partitioned tables), from [`crate::versions`].
    pub versions: crate::versions::PairReport,
}

/// The tables the plan selects: non-extension tables in the selected schemas, not excluded.
pub fn selected_tables<'a>(plan: &'a Plan, inv: &'a Inventory) -> impl Iterator<Item = &'a Table> {
    inv.user_tables()
        .filter(move |t| t.schema != crate::state::SCHEMA)
        .filter(move |t| plan.objects.includes(&t.schema, &t.name))
}

/// The platform the plan's `target.kind` declares; None for `auto` (detection decides).
pub fn declared_platform(kind: TargetKind) -> Option<Platform> {
    match kind {
        TargetKind::Auto => None,
        TargetKind::SelfManaged => Some(Platform::SelfManaged),
        TargetKind::Rds => Some(Platform::Rds),
        TargetKind::Aurora => Some(Platform::Aurora),
    }
}

/// Applies the plan's `target.kind` to the target's inventory: unless it is `auto`, the
/// declared kind becomes the target's platform (what detection saw stays in the inventory for
/// the report), so every check and fix follows it.
pub fn apply_target_kind(plan: &Plan, target: &mut Inventory) {
    if let Some(p) = declared_platform(plan.target.kind) {
        target.declare_platform(p);
    }
}

/// The hosts the plan's source DSN names (`PGHOST` when it names none).
pub fn source_hosts(plan: &Plan) -> Vec<String> {
    let hosts = crate::pg::ConnInfo::parse(&plan.source.dsn)
        .map(|i| i.hosts)
        .unwrap_or_default();
    if !hosts.is_empty() {
        return hosts;
    }
    std::env::var("PGHOST")
        .ok()
        .filter(|h| !h.is_empty())
        .map(|h| h.split(',').map(str::to_string).collect())
        .unwrap_or_default()
}

/// The first host that is an Amazon RDS Proxy endpoint (`<name>.proxy-<id>.<region>.rds.amazonaws.com`):
/// RDS Proxy does not carry replication connections.
pub fn rds_proxy_host(hosts: &[String]) -> Option<&str> {
    hosts
        .iter()
        .map(String::as_str)
        .find(|h| h.to_ascii_lowercase().contains(".proxy-"))
}

/// Why a standby source cannot be read by change capture, by version.
pub fn standby_source_reason(source: &Inventory) -> String {
    if source.server.version_num < 160_000 {
        format!(
            "the source is a standby (read replica, in recovery): PostgreSQL {} cannot decode WAL on a standby (that arrived in PostgreSQL 16), and the online strategies create their publication or pglogical node on the source, which a standby refuses",
            source.settings.server_version
        )
    } else {
        "the source is a standby (read replica, in recovery): the online strategies create their publication or pglogical node on the source, which a standby, read-only, refuses".to_string()
    }
}

/// What the source can do for logical decoding, as reasons it cannot (empty: it can).
pub fn logical_decoding_blockers(source: &Inventory) -> Vec<String> {
    let mut r = Vec::new();
    if source.server.in_recovery {
        r.push(standby_source_reason(source));
    }
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

/// The oldest source pgoutput (copy-cdc) decodes: PostgreSQL 10.
pub const PGOUTPUT_MIN_VERSION_NUM: i32 = crate::versions::PGOUTPUT_MIN;

/// What stops pglogical on this pair, as reasons (empty: both servers have it): preloaded and
/// installable on both, the same major, no keyless table the plan would give
/// REPLICA IDENTITY FULL (pglogical refuses such a table in the set that replicates updates),
/// and no stored generated column in a table it would carry (see
/// `preflight::pglogical_generated`).
pub fn pglogical_blockers(plan: &Plan, source: &Inventory, target: &Inventory) -> Vec<String> {
    let mut r = Vec::new();
    for inv in [source, target] {
        match crate::preflight::pglogical_preloaded(inv) {
            Some(true) => {}
            Some(false) => r.push(format!(
                "pglogical is not in the {}'s shared_preload_libraries",
                inv.side
            )),
            None => r.push(format!(
                "the {}'s shared_preload_libraries is hidden from role {}",
                inv.side, inv.server.current_user
            )),
        }
        if crate::preflight::pglogical_version(inv).is_none() {
            r.push(format!(
                "the pglogical extension is not available on the {}",
                inv.side
            ));
        }
    }
    if let (Some(s), Some(t)) = (
        crate::preflight::pglogical_version(source),
        crate::preflight::pglogical_version(target),
    ) {
        if s.split('.').next() != t.split('.').next() {
            r.push(format!(
                "pglogical {s} on the source and {t} on the target are not the same major"
            ));
        }
    }
    if plan.cdc.tables_without_key == crate::plan::TablesWithoutKey::ReplicaIdentityFull {
        let keyless = selected_tables(plan, source)
            .filter(|t| t.kind != TableKind::PartitionedParent && !t.has_replica_identity())
            .count();
        if keyless > 0 {
            r.push(format!(
                "{keyless} table(s) have no key and cdc.tables_without_key is replica-identity-full, which pglogical cannot replicate (insert-only or exclude can)"
            ));
        }
    }
    let generated = crate::preflight::pglogical_generated(plan, source);
    if !generated.is_empty() {
        let names: Vec<String> = generated
            .iter()
            .map(|(t, c)| format!("{}.{c}", t.display_name()))
            .collect();
        r.push(format!(
            "{} stored generated column(s) ({}), which pglogical 2 cannot copy or replicate (copy-cdc and dump-restore can)",
            names.len(),
            names.join(", ")
        ));
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

    let mut logical = logical_decoding_blockers(source);
    if let Some(h) = rds_proxy_host(&source_hosts(plan)) {
        logical.push(format!(
            "the source host {h} is an RDS Proxy endpoint, which does not carry replication connections"
        ));
    }
    // What keeps copy-cdc from running: logical decoding, and pgoutput's oldest version.
    let mut pgoutput = logical.clone();
    if source.server.version_num < PGOUTPUT_MIN_VERSION_NUM {
        pgoutput.push(format!(
            "the source is PostgreSQL {}: pgoutput needs PostgreSQL 10 or newer",
            source.settings.server_version
        ));
    }
    let reasons_against = |s: Strategy| -> Vec<String> {
        let mut r = Vec::new();
        match s {
            Strategy::DumpRestore => {
                // When the source cannot do logical decoding, no online strategy can run:
                // dump-restore is then chosen even over the budget (docs/plan.md, `strategy`),
                // and preflight warns about the overrun.
                if copy_time > budget && pgoutput.is_empty() {
                    r.push(format!(
                        "its write outage (about {}) exceeds the downtime budget of {}",
                        human(copy_time),
                        human(budget)
                    ));
                }
            }
            Strategy::CopyCdc => r.extend(pgoutput.iter().cloned()),
            Strategy::Pglogical => {
                r.extend(logical.iter().cloned());
                r.extend(pglogical_blockers(plan, source, target));
            }
        }
        if !s.is_available() {
            r.push("not available in this version of pgmove yet".to_string());
        }
        r
    };

    let (strategy, why, rejected) = match plan.strategy {
        StrategyChoice::Auto => {
            // pglogical.prefer: pglogical first, whenever both servers have it.
            let prefer = plan.pglogical.prefer;
            let order = if prefer {
                if copy_time <= budget {
                    [
                        Strategy::Pglogical,
                        Strategy::DumpRestore,
                        Strategy::CopyCdc,
                    ]
                } else {
                    [
                        Strategy::Pglogical,
                        Strategy::CopyCdc,
                        Strategy::DumpRestore,
                    ]
                }
            } else if copy_time <= budget {
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
                    let reasons = if r.is_empty() && s == Strategy::Pglogical {
                        vec![format!(
                            "not preferred: both servers have pglogical, but pglogical.prefer is false, so {} was taken (set pglogical.prefer: true to choose pglogical)",
                            chosen.map(Strategy::name).unwrap_or("another strategy")
                        )]
                    } else if r.is_empty() {
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
                Some(Strategy::DumpRestore) if copy_time > budget => format!(
                    "strategy auto: a full copy (about {}) does not fit the downtime budget ({}), but the source cannot do logical decoding ({}), so an offline copy is the only strategy that can run; its write outage exceeds the budget",
                    human(copy_time),
                    human(budget),
                    pgoutput.join("; ")
                ),
                Some(Strategy::Pglogical) if prefer => format!(
                    "strategy auto: pglogical.prefer is true and both servers have pglogical (preloaded, installable, the same major); it keeps the source writable until cutover (a full copy: about {}, downtime budget {})",
                    human(copy_time),
                    human(budget)
                ),
                Some(Strategy::Pglogical) => format!(
                    "strategy auto: a full copy (about {}) does not fit the downtime budget ({}), and the source (PostgreSQL {}) is older than pgoutput (copy-cdc) supports; pglogical, which both servers have, keeps the source writable until cutover",
                    human(copy_time),
                    human(budget),
                    source.settings.server_version
                ),
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
        Some(s) => plan_steps(s, plan, source, &tables, data_bytes, index_bytes),
        None => Vec::new(),
    };
    let total: u64 = steps.iter().filter_map(|s| s.estimate_secs).sum();
    Decision {
        strategy,
        why,
        rejected,
        estimated_outage_secs: strategy.map(|s| {
            // Online: the outage is the cutover (fence, final catch-up, verify).
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
        versions: crate::versions::pair_report(
            source.server.version_num,
            target.server.version_num,
        ),
    }
}

/// A step of the plan before it is numbered: name, what, on, why, estimate.
type Entry = (
    Option<&'static str>,
    String,
    &'static str,
    String,
    Option<u64>,
);

/// The plan's steps: the strategy's own ([`crate::strategy::steps`], by name), with what
/// follows `apply` after them (unnamed: `pgmove apply` does not record those).
fn plan_steps(
    strategy: Strategy,
    plan: &Plan,
    source: &Inventory,
    tables: &[&Table],
    data_bytes: i64,
    index_bytes: i64,
) -> Vec<Step> {
    let facts = Facts {
        plan,
        source,
        tables,
        data_bytes,
        index_bytes,
    };
    let named = |d: StepDef| (Some(d.name), d.what, d.on, d.why, d.estimate_secs);
    let mut steps: Vec<Entry> = Vec::new();
    match strategy {
        Strategy::DumpRestore => {
            steps.extend(dump_restore::plan_steps(&facts).into_iter().map(named));
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
                // Beside the data they come with, before the post-data step.
                let at = steps
                    .iter()
                    .position(|s| s.0 == Some(step_name::POST_DATA))
                    .unwrap_or(steps.len());
                steps.insert(
                    at,
                    (
                        None,
                        what,
                        "target",
                        "large objects live outside tables".to_string(),
                        None,
                    ),
                );
            }
            steps.push((
                None,
                format!(
                    "verify: row counts and {} per table, sequences, objects (`pgmove verify`)",
                    match plan.cutover.verify {
                        crate::plan::VerifyLevel::Counts => "counts",
                        _ => "chunked checksums",
                    }
                ),
                "target",
                "proves the target equals the source before you switch applications".to_string(),
                None,
            ));
        }
        Strategy::CopyCdc => {
            steps.extend(copy_cdc::plan_steps(&facts).into_iter().map(named));
            steps.push((
                None,
                format!("stream the slot's changes (pgoutput, publication {}) and apply them in commit order, each batch committed with its LSN in pgmove.progress, until cutover", plan.publication_name()),
                "both",
                "exactly once across restarts: the slot is only told what the target committed".to_string(),
                None,
            ));
            steps.push((
                None,
                format!(
                    "cutover ({}): wait until the lag is under {}, {}, apply the last changes, set sequences, copy changed large objects, refresh materialized views, verify ({})",
                    plan.cutover.mode,
                    human(plan.cutover.max_lag),
                    match plan.cutover.fence {
                        crate::plan::Fence::ReadOnly => "fence the source (read-only, other sessions terminated)",
                        crate::plan::Fence::None => "with writes stopped by you (fence: none)",
                    },
                    plan.cutover.verify
                ),
                "both",
                match plan.cutover.mode {
                    crate::plan::CutoverMode::Auto => "apply cuts over by itself once the lag allows".to_string(),
                    crate::plan::CutoverMode::Manual => "run `pgmove cutover` (read `pgmove cutover --dry-run` first)".to_string(),
                },
                None,
            ));
        }
        Strategy::Pglogical => {
            let n = plan.pglogical_names();
            steps.extend(pglogical::plan_steps(&facts).into_iter().map(named));
            steps.push((
                None,
                format!(
                    "pglogical replicates inside the servers: the target's apply worker streams from the source's slot (subscription {}, sets {} and {}) until cutover",
                    n.subscription, n.replication_set, n.insert_set
                ),
                "both",
                "no pgmove process runs meanwhile; `pgmove status` shows the lag and the WAL the slot retains".to_string(),
                None,
            ));
            steps.push((
                None,
                format!(
                    "cutover ({}): wait until the lag is under {}, {}, wait until the target has replayed the source's last change, set sequences, copy changed large objects, refresh materialized views, verify ({}); then disable and drop subscription {} so the target stands alone",
                    plan.cutover.mode,
                    human(plan.cutover.max_lag),
                    match plan.cutover.fence {
                        crate::plan::Fence::ReadOnly => "fence the source (read-only, other sessions terminated)",
                        crate::plan::Fence::None => "with writes stopped by you (fence: none)",
                    },
                    plan.cutover.verify,
                    n.subscription
                ),
                "both",
                match plan.cutover.mode {
                    crate::plan::CutoverMode::Auto => "apply cuts over by itself once the lag allows".to_string(),
                    crate::plan::CutoverMode::Manual => "run `pgmove cutover` (read `pgmove cutover --dry-run` first)".to_string(),
                },
                None,
            ));
        }
    }
    steps
        .into_iter()
        .enumerate()
        .map(|(i, (name, what, on, why, est))| Step {
            number: i + 1,
            name,
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

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::inspect::{
        AvailableExtension, Extension, PartitioningSummary, Platform, RelName, Rights, Sequence,
        ServerInfo, Settings,
    };
    use crate::pg::Side;

    const MB: i64 = 1 << 20;
    const GB: i64 = 1 << 30;

    const MINIMAL: &str = "version: 1\nname: shop\nsource:\n  dsn: postgres://a@h1/db\ntarget:\n  dsn: postgres://b@h2/db\n";

    /// MINIMAL plus extra top-level YAML.
    pub(crate) fn plan(extra: &str) -> Plan {
        let text = format!("{MINIMAL}{extra}");
        crate::plan::parse(&text, "test.yaml").unwrap_or_else(|e| panic!("{e}\n---\n{text}"))
    }

    fn table(oid: u32, schema: &str, name: &str, heap: i64, total: i64) -> Table {
        Table {
            oid,
            schema: schema.to_string(),
            name: name.to_string(),
            kind: TableKind::Plain,
            owner: "app".to_string(),
            total_bytes: total,
            heap_bytes: heap,
            estimated_rows: Some(heap / 100),
            primary_key: vec!["id".to_string()],
            has_select: true,
            ..Table::default()
        }
    }

    fn partition(oid: u32, name: &str, heap: i64, total: i64) -> Table {
        Table {
            kind: TableKind::Partition,
            parent: Some(RelName::new("public", "events")),
            root: Some(RelName::new("public", "events")),
            partition_depth: 1,
            partition_bound: Some(format!("FOR VALUES IN ('{name}')")),
            ..table(oid, "public", name, heap, total)
        }
    }

    /// The tables of the sample source: heaps of 15.5 GB in all (selected by default:
    /// everything but the extension's table and pgmove's own schema).
    fn source_tables() -> Vec<Table> {
        vec![
            table(1001, "public", "customers", 2 * GB, 3 * GB),
            table(1002, "public", "orders", 6 * GB, 8 * GB),
            Table {
                kind: TableKind::PartitionedParent,
                partition_key: Some("LIST (year)".to_string()),
                ..table(1003, "public", "events", 0, 0)
            },
            partition(1004, "events_2025", GB, GB + GB / 2),
            partition(1005, "events_2026", GB, GB + GB / 2),
            // No primary key, no replica identity index.
            Table {
                primary_key: Vec::new(),
                ..table(1006, "public", "audit_log", 512 * MB, 512 * MB)
            },
            table(1007, "public", "tmp_import", 4 * GB, 4 * GB),
            table(1008, "sales", "invoices", GB, GB + GB / 4),
            Table {
                extension_owned: true,
                extension: Some("postgis".to_string()),
                ..table(1009, "public", "spatial_ref_sys", 7 * MB, 8 * MB)
            },
            table(1010, crate::state::SCHEMA, "runs", MB, 2 * MB),
        ]
    }

    /// Heap bytes of every selected table with the default `objects:`.
    const ALL_DATA: i64 = 2 * GB + 6 * GB + GB + GB + 512 * MB + 4 * GB + GB;
    /// Index (and TOAST) bytes of every selected table with the default `objects:`.
    const ALL_INDEX: i64 = GB + 2 * GB + GB / 2 + GB / 2 + GB / 4;
    /// Selected tables with the default `objects:` (the partitioned parent included).
    const ALL_TABLES: usize = 8;

    /// A plausible PostgreSQL 15 server: wal_level logical, free slots and senders, a
    /// superuser, PostGIS installed. `tables` empty for a fresh target.
    pub(crate) fn inventory(side: Side, tables: Vec<Table>) -> Inventory {
        let sequences = if tables.is_empty() {
            Vec::new()
        } else {
            vec![Sequence {
                oid: 2001,
                schema: "public".to_string(),
                name: "orders_id_seq".to_string(),
                data_type: "bigint".to_string(),
                start_value: 1,
                increment: 1,
                min_value: 1,
                max_value: i64::MAX,
                cache: 1,
                last_value: Some(123_456),
                is_called: true,
                readable: true,
                ..Sequence::default()
            }]
        };
        Inventory {
            side,
            endpoint: format!("postgres://migrator@{side}:5432/shop"),
            server: ServerInfo {
                version_num: 150_008,
                version: "PostgreSQL 15.8 on x86_64-pc-linux-gnu".to_string(),
                is_superuser: true,
                current_user: "migrator".to_string(),
                session_user: "migrator".to_string(),
                database: "shop".to_string(),
                encoding: "UTF8".to_string(),
                lc_collate: "C.UTF-8".to_string(),
                lc_ctype: "C.UTF-8".to_string(),
                locale_provider: Some("libc".to_string()),
                ..ServerInfo::default()
            },
            settings: Settings {
                server_version: "15.8".to_string(),
                wal_level: "logical".to_string(),
                max_replication_slots: 10,
                replication_slots_used: 1,
                max_wal_senders: 10,
                wal_senders_used: 1,
                wal_sender_timeout_ms: 60_000,
                max_worker_processes: 8,
                max_logical_replication_workers: 4,
                max_sync_workers_per_subscription: 2,
                max_connections: 100,
                max_slot_wal_keep_size_mb: Some(-1),
                shared_preload_libraries: Some(Vec::new()),
                ..Settings::default()
            },
            rights: Rights {
                superuser: true,
                replication: true,
                create_on_database: true,
                read_all_settings: true,
                read_all_stats: true,
                ..Rights::default()
            },
            platform: Platform::SelfManaged,
            platform_evidence: Vec::new(),
            extensions: vec![
                Extension {
                    name: "plpgsql".to_string(),
                    version: "1.0".to_string(),
                    schema: "pg_catalog".to_string(),
                    relocatable: false,
                },
                Extension {
                    name: "postgis".to_string(),
                    version: "3.4.2".to_string(),
                    schema: "public".to_string(),
                    relocatable: false,
                },
            ],
            available_extensions: Vec::new(),
            schemas: Vec::new(),
            partitioning: if tables.is_empty() {
                PartitioningSummary::default()
            } else {
                PartitioningSummary {
                    parents: 1,
                    roots: 1,
                    leaves: 2,
                    max_depth: 1,
                }
            },
            tables,
            sequences,
            large_objects: 0,
            replication_slots: Vec::new(),
            long_transactions: Vec::new(),
            wal_lsn: None,
            publications: Vec::new(),
            subscriptions: Vec::new(),
            pglogical: None,
            notes: Vec::new(),
        }
    }

    pub(crate) fn source() -> Inventory {
        inventory(Side::Source, source_tables())
    }

    pub(crate) fn target() -> Inventory {
        inventory(Side::Target, Vec::new())
    }

    fn rejected(d: &Decision, s: Strategy) -> &[String] {
        &d.rejected
            .iter()
            .find(|r| r.strategy == s)
            .unwrap_or_else(|| panic!("{} not among the rejected: {d:#?}", s.name()))
            .reasons
    }

    fn any_contains(items: &[String], needle: &str) -> bool {
        items.iter().any(|x| x.contains(needle))
    }

    fn assert_numbered(d: &Decision) {
        assert!(!d.steps.is_empty(), "{d:#?}");
        for (i, s) in d.steps.iter().enumerate() {
            assert_eq!(s.number, i + 1, "{:#?}", d.steps);
            assert!(
                ["source", "target", "both"].contains(&s.on.as_str()),
                "{s:?}"
            );
            assert!(!s.what.is_empty() && !s.why.is_empty(), "{s:?}");
        }
    }

    /// The source variants that cannot do logical decoding, with the words the reason uses.
    fn sources_without_logical_decoding() -> Vec<(&'static str, Inventory)> {
        let mut replica = source();
        replica.settings.wal_level = "replica".to_string();
        let mut no_slot = source();
        no_slot.settings.max_replication_slots = 2;
        no_slot.settings.replication_slots_used = 2;
        let mut no_sender = source();
        no_sender.settings.max_wal_senders = 1;
        no_sender.settings.wal_senders_used = 1;
        let mut no_right = source();
        no_right.rights.superuser = false;
        no_right.rights.replication = false;
        no_right.server.is_superuser = false;
        vec![
            ("wal_level is replica", replica),
            ("no free replication slot", no_slot),
            ("no free WAL sender", no_sender),
            ("migrator has no REPLICATION right", no_right),
        ]
    }

    #[test]
    fn auto_with_a_generous_budget_picks_dump_restore() {
        let d = decide(&plan("downtime: 1h\n"), &source(), &target());
        assert_eq!(d.strategy, Some(Strategy::DumpRestore), "{}", d.why);
        assert!(d.why.contains("strategy auto"), "{}", d.why);
        assert!(
            d.why.contains("fits the downtime budget (1h 0m)"),
            "{}",
            d.why
        );
        assert_eq!(d.rejected.len(), 2, "{:#?}", d.rejected);
        assert_eq!(
            rejected(&d, Strategy::CopyCdc),
            ["dump-restore was preferred".to_string()]
        );
        let pgl = rejected(&d, Strategy::Pglogical);
        assert!(
            !any_contains(pgl, "not available in this version"),
            "{pgl:?}"
        );
        assert!(
            any_contains(
                pgl,
                "pglogical is not in the source's shared_preload_libraries"
            ),
            "{pgl:?}"
        );
        assert!(
            any_contains(pgl, "pglogical extension is not available on the target"),
            "{pgl:?}"
        );
        let copy = estimate_copy(ALL_DATA, ALL_INDEX, 4, 2, ALL_TABLES).as_secs();
        assert!(d.estimated_outage_secs.unwrap() >= copy, "{d:#?}");
        assert_eq!(
            d.estimated_total_secs,
            Some(d.steps.iter().filter_map(|s| s.estimate_secs).sum())
        );
        assert_numbered(&d);
    }

    #[test]
    fn auto_with_a_small_budget_picks_copy_cdc_and_says_why() {
        let d = decide(&plan("downtime: 1s\n"), &source(), &target());
        assert_eq!(d.strategy, Some(Strategy::CopyCdc), "{}", d.why);
        assert!(
            d.why.contains("does not fit the downtime budget (1s)"),
            "{}",
            d.why
        );
        assert!(
            d.why
                .contains("copy-cdc keeps the source writable until cutover"),
            "{}",
            d.why
        );
        let dr = rejected(&d, Strategy::DumpRestore);
        assert!(
            any_contains(dr, "exceeds the downtime budget of 1s"),
            "{dr:?}"
        );
        assert!(
            any_contains(
                rejected(&d, Strategy::Pglogical),
                "pglogical is not in the source's shared_preload_libraries"
            ),
            "{d:#?}"
        );
        // Online: the outage is the cutover only.
        assert_eq!(d.estimated_outage_secs, Some(10));
        assert!(d.estimated_total_secs.unwrap() > 10);
        assert_numbered(&d);
    }

    #[test]
    fn auto_with_a_small_budget_falls_back_to_dump_restore_when_the_source_cannot_decode() {
        for (words, src) in sources_without_logical_decoding() {
            let d = decide(&plan("downtime: 1s\n"), &src, &target());
            // docs/plan.md, `strategy`: dump-restore "when the downtime budget covers a full
            // copy or the source cannot decode"; preflight warns about the overrun.
            assert_eq!(
                d.strategy,
                Some(Strategy::DumpRestore),
                "{words}: {}",
                d.why
            );
            assert!(d.why.contains(words), "{words}: {}", d.why);
            assert!(
                d.why.contains("does not fit the downtime budget (1s)"),
                "{}",
                d.why
            );
            let cdc = rejected(&d, Strategy::CopyCdc);
            assert!(any_contains(cdc, words), "{words}: {cdc:?}");
            assert!(
                any_contains(rejected(&d, Strategy::Pglogical), words),
                "{words}: {d:#?}"
            );
            assert!(d.estimated_outage_secs.unwrap() > 1, "{d:#?}");
            assert_numbered(&d);
        }
    }

    #[test]
    fn auto_with_a_generous_budget_and_no_logical_decoding_names_the_setting() {
        for (words, src) in sources_without_logical_decoding() {
            let d = decide(&plan("downtime: 1h\n"), &src, &target());
            assert_eq!(
                d.strategy,
                Some(Strategy::DumpRestore),
                "{words}: {}",
                d.why
            );
            assert!(d.why.contains("fits the downtime budget"), "{}", d.why);
            let cdc = rejected(&d, Strategy::CopyCdc);
            assert!(any_contains(cdc, words), "{words}: {cdc:?}");
            assert!(!any_contains(cdc, "was preferred"), "{words}: {cdc:?}");
        }
    }

    #[test]
    fn auto_never_picks_an_online_strategy_for_a_standby_or_an_rds_proxy_source() {
        // A full copy far over the budget: auto would take copy-cdc from a primary.
        let mut standby = source();
        standby.server.in_recovery = true;
        let d = decide(&plan("downtime: 1s\n"), &standby, &target());
        assert_eq!(d.strategy, Some(Strategy::DumpRestore), "{}", d.why);
        let cdc = rejected(&d, Strategy::CopyCdc);
        assert!(any_contains(cdc, "the source is a standby"), "{cdc:?}");
        assert!(
            any_contains(cdc, "PostgreSQL 15.8 cannot decode WAL on a standby"),
            "{cdc:?}"
        );
        let named = decide(&plan("strategy: copy-cdc\n"), &standby, &target());
        assert_eq!(named.strategy, None);
        assert!(
            named.why.contains("the source is a standby"),
            "{}",
            named.why
        );

        let proxy = crate::plan::parse(
            "version: 1\nname: shop\nsource:\n  dsn: postgres://a@shop.proxy-c1a2b3.us-east-1.rds.amazonaws.com/db\ntarget:\n  dsn: postgres://b@h2/db\ndowntime: 1s\n",
            "test.yaml",
        )
        .expect("plan");
        let d = decide(&proxy, &source(), &target());
        assert_eq!(d.strategy, Some(Strategy::DumpRestore), "{}", d.why);
        assert!(
            any_contains(
                rejected(&d, Strategy::CopyCdc),
                "shop.proxy-c1a2b3.us-east-1.rds.amazonaws.com is an RDS Proxy endpoint"
            ),
            "{d:#?}"
        );
        // A primary over the budget still gets copy-cdc.
        let d = decide(&plan("downtime: 1s\n"), &source(), &target());
        assert_eq!(d.strategy, Some(Strategy::CopyCdc), "{}", d.why);
    }

    #[test]
    fn rds_proxy_hosts_are_recognised() {
        let h = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        assert_eq!(
            rds_proxy_host(&h(&["db.proxy-abc.us-east-1.rds.amazonaws.com"])),
            Some("db.proxy-abc.us-east-1.rds.amazonaws.com")
        );
        assert_eq!(
            rds_proxy_host(&h(&[
                "primary.example",
                "DB.PROXY-X.eu-west-1.rds.amazonaws.com"
            ])),
            Some("DB.PROXY-X.eu-west-1.rds.amazonaws.com")
        );
        assert_eq!(
            rds_proxy_host(&h(&["db.cluster-abc.us-east-1.rds.amazonaws.com", "/tmp"])),
            None
        );
    }

    #[test]
    fn target_kind_overrides_the_detected_platform_and_keeps_the_evidence() {
        let mut t = target();
        t.platform = Platform::Rds;
        t.platform_evidence = vec!["setting rds.extensions exists".to_string()];
        apply_target_kind(&plan(""), &mut t);
        assert_eq!(t.platform, Platform::Rds);
        assert!(!t.platform_declared());
        assert_eq!(
            t.platform_description(),
            "RDS (detected: setting rds.extensions exists)"
        );
        apply_target_kind(&plan_with_kind("aurora"), &mut t);
        assert_eq!(t.platform, Platform::Aurora);
        assert!(t.is_managed());
        assert_eq!(t.detected_platform(), Platform::Rds);
        assert_eq!(
            t.platform_description(),
            "Aurora (from target.kind; detected: RDS — setting rds.extensions exists)"
        );
        // Applied twice (as a resumed apply may), detection is still what the server showed.
        apply_target_kind(&plan_with_kind("self-managed"), &mut t);
        assert_eq!(t.platform, Platform::SelfManaged);
        assert!(!t.is_managed());
        assert_eq!(t.detected_platform(), Platform::Rds);
    }

    fn plan_with_kind(kind: &str) -> Plan {
        crate::plan::parse(
            &format!("version: 1\nname: shop\nsource:\n  dsn: postgres://a@h1/db\ntarget:\n  dsn: postgres://b@h2/db\n  kind: {kind}\n"),
            "test.yaml",
        )
        .expect("plan")
    }

    #[test]
    fn the_wal_level_reason_says_what_is_needed() {
        let mut src = source();
        src.settings.wal_level = "replica".to_string();
        assert_eq!(
            logical_decoding_blockers(&src),
            ["the source's wal_level is replica (logical decoding needs logical)".to_string()]
        );
        assert!(logical_decoding_blockers(&source()).is_empty());
        // RDS: rds_replication is a replication right.
        let mut rds = source();
        rds.rights.superuser = false;
        rds.rights.replication = false;
        rds.rights.rds_replication = true;
        assert!(logical_decoding_blockers(&rds).is_empty());
        // Every blocker at once, each named.
        let mut none = source();
        none.settings.wal_level = "minimal".to_string();
        none.settings.max_replication_slots = 0;
        none.settings.replication_slots_used = 0;
        none.settings.max_wal_senders = 0;
        none.settings.wal_senders_used = 0;
        none.rights.superuser = false;
        none.rights.replication = false;
        assert_eq!(logical_decoding_blockers(&none).len(), 4);
    }

    #[test]
    fn a_named_dump_restore_over_the_budget_still_runs() {
        let d = decide(
            &plan("strategy: dump-restore\ndowntime: 1s\n"),
            &source(),
            &target(),
        );
        assert_eq!(d.strategy, Some(Strategy::DumpRestore), "{}", d.why);
        assert_eq!(d.why, "the plan asks for strategy dump-restore");
        assert_eq!(d.rejected.len(), 2);
        for r in &d.rejected {
            assert_eq!(
                r.reasons,
                ["the plan asks for strategy dump-restore".to_string()]
            );
        }
        assert!(d.estimated_outage_secs.unwrap() > 1);
        assert_numbered(&d);
    }

    #[test]
    fn a_named_copy_cdc_on_a_replica_source_has_no_strategy() {
        let mut src = source();
        src.settings.wal_level = "replica".to_string();
        let d = decide(&plan("strategy: copy-cdc\n"), &src, &target());
        assert_eq!(d.strategy, None, "{}", d.why);
        assert!(
            d.why
                .starts_with("the plan asks for strategy copy-cdc, which cannot run"),
            "{}",
            d.why
        );
        assert!(d.why.contains("wal_level is replica"), "{}", d.why);
        assert!(d.steps.is_empty());
        assert_eq!(d.estimated_outage_secs, None);
        assert_eq!(d.estimated_total_secs, None);
        // The sizes are still reported.
        assert_eq!(d.data_bytes, ALL_DATA);
    }

    #[test]
    fn a_named_copy_cdc_runs_whatever_the_budget() {
        let d = decide(
            &plan("strategy: copy-cdc\ndowntime: 10h\n"),
            &source(),
            &target(),
        );
        assert_eq!(d.strategy, Some(Strategy::CopyCdc), "{}", d.why);
        assert_eq!(d.why, "the plan asks for strategy copy-cdc");
        assert_numbered(&d);
    }

    /// pglogical preloaded and installable (2.4.2) on `inv`.
    fn with_pglogical(mut inv: Inventory) -> Inventory {
        inv.settings.shared_preload_libraries = Some(vec!["pglogical".to_string()]);
        inv.available_extensions.push(AvailableExtension {
            name: "pglogical".to_string(),
            default_version: Some("2.4.2".to_string()),
            installed_version: None,
        });
        inv
    }

    #[test]
    fn a_named_pglogical_runs_when_both_servers_have_it() {
        // Without pglogical: no strategy, and the reasons say what is missing where.
        let d = decide(
            &plan(
                "strategy: pglogical
",
            ),
            &source(),
            &target(),
        );
        assert_eq!(d.strategy, None, "{}", d.why);
        assert!(
            d.why
                .starts_with("the plan asks for strategy pglogical, which cannot run"),
            "{}",
            d.why
        );
        for words in [
            "pglogical is not in the source's shared_preload_libraries",
            "pglogical is not in the target's shared_preload_libraries",
            "the pglogical extension is not available on the source",
            "the pglogical extension is not available on the target",
        ] {
            assert!(d.why.contains(words), "{words}: {}", d.why);
        }
        assert!(
            !d.why.contains("not available in this version"),
            "{}",
            d.why
        );
        assert!(d.steps.is_empty());

        // Preloaded on one side only: that side is named.
        let d = decide(
            &plan(
                "strategy: pglogical
",
            ),
            &with_pglogical(source()),
            &target(),
        );
        assert_eq!(d.strategy, None);
        assert!(
            d.why.contains("the target's shared_preload_libraries"),
            "{}",
            d.why
        );
        assert!(
            !d.why.contains("the source's shared_preload_libraries"),
            "{}",
            d.why
        );

        // Hidden from the role: unknown is not ready.
        let mut hidden = with_pglogical(target());
        hidden.settings.shared_preload_libraries = None;
        let d = decide(
            &plan(
                "strategy: pglogical
",
            ),
            &with_pglogical(source()),
            &hidden,
        );
        assert_eq!(d.strategy, None);
        assert!(d.why.contains("hidden from role migrator"), "{}", d.why);

        // Another major on one side.
        let mut old = with_pglogical(target());
        old.available_extensions.last_mut().unwrap().default_version = Some("1.2.2".to_string());
        let d = decide(
            &plan(
                "strategy: pglogical
",
            ),
            &with_pglogical(source()),
            &old,
        );
        assert_eq!(d.strategy, None);
        assert!(
            d.why
                .contains("pglogical 2.4.2 on the source and 1.2.2 on the target"),
            "{}",
            d.why
        );

        // Both ready: it runs, whatever the budget.
        for budget in ["1s", "10h"] {
            let d = decide(
                &plan(&format!(
                    "strategy: pglogical
downtime: {budget}
"
                )),
                &with_pglogical(source()),
                &with_pglogical(target()),
            );
            assert_eq!(d.strategy, Some(Strategy::Pglogical), "{}", d.why);
            assert_eq!(d.why, "the plan asks for strategy pglogical");
            assert_eq!(d.estimated_outage_secs, Some(10));
            assert_numbered(&d);
        }
    }

    #[test]
    fn auto_picks_pglogical_when_preferred_and_both_servers_have_it() {
        let (src, dst) = (with_pglogical(source()), with_pglogical(target()));
        // Not preferred: copy-cdc (small budget) or dump-restore (large), and pglogical is
        // rejected as not preferred.
        for (budget, chosen) in [("1s", Strategy::CopyCdc), ("10h", Strategy::DumpRestore)] {
            let d = decide(
                &plan(&format!(
                    "downtime: {budget}
"
                )),
                &src,
                &dst,
            );
            assert_eq!(d.strategy, Some(chosen), "{}", d.why);
            let pgl = rejected(&d, Strategy::Pglogical);
            assert_eq!(pgl.len(), 1, "{pgl:?}");
            assert!(pgl[0].starts_with("not preferred"), "{pgl:?}");
            assert!(pgl[0].contains("pglogical.prefer is false"), "{pgl:?}");
            assert!(pgl[0].contains(chosen.name()), "{pgl:?}");
        }
        // Preferred: pglogical, whatever the budget; the others are rejected.
        for budget in ["1s", "10h"] {
            let d = decide(
                &plan(&format!(
                    "downtime: {budget}
pglogical:
  prefer: true
"
                )),
                &src,
                &dst,
            );
            assert_eq!(d.strategy, Some(Strategy::Pglogical), "{}", d.why);
            assert!(
                d.why
                    .contains("pglogical.prefer is true and both servers have pglogical"),
                "{}",
                d.why
            );
            assert_eq!(d.rejected.len(), 2, "{:#?}", d.rejected);
            assert_eq!(
                rejected(&d, Strategy::CopyCdc),
                ["pglogical was preferred".to_string()]
            );
            assert_numbered(&d);
        }
        // Preferred but missing on the target: the reason is given, copy-cdc runs.
        let d = decide(
            &plan(
                "downtime: 1s
pglogical:
  prefer: true
",
            ),
            &src,
            &target(),
        );
        assert_eq!(d.strategy, Some(Strategy::CopyCdc), "{}", d.why);
        let pgl = rejected(&d, Strategy::Pglogical);
        assert!(
            any_contains(
                pgl,
                "pglogical is not in the target's shared_preload_libraries"
            ),
            "{pgl:?}"
        );
        assert!(
            any_contains(
                pgl,
                "the pglogical extension is not available on the target"
            ),
            "{pgl:?}"
        );
        assert!(!any_contains(pgl, "the source"), "{pgl:?}");
        // Keyless tables under replica-identity-full: pglogical cannot take them.
        let d = decide(
            &plan(
                "downtime: 1s
pglogical:
  prefer: true
cdc:
  tables_without_key: replica-identity-full
",
            ),
            &src,
            &dst,
        );
        assert_eq!(d.strategy, Some(Strategy::CopyCdc), "{}", d.why);
        assert!(
            any_contains(
                rejected(&d, Strategy::Pglogical),
                "1 table(s) have no key and cdc.tables_without_key is replica-identity-full"
            ),
            "{d:#?}"
        );
        // A stored generated column: pglogical cannot copy it, copy-cdc runs, the reason
        // names the table and column.
        let mut generated = src.clone();
        let customers = generated
            .tables
            .iter_mut()
            .find(|t| t.name == "customers")
            .expect("customers");
        customers.columns.push(crate::inspect::Column {
            name: "name_lc".to_string(),
            position: 2,
            type_name: "text".to_string(),
            type_oid: 25,
            base_type: "text".to_string(),
            not_null: false,
            default: Some("lower(name)".to_string()),
            generated: true,
            identity: None,
            flags: Default::default(),
        });
        let d = decide(
            &plan(
                "downtime: 1s
pglogical:
  prefer: true
",
            ),
            &generated,
            &dst,
        );
        assert_eq!(d.strategy, Some(Strategy::CopyCdc), "{}", d.why);
        assert_eq!(
            rejected(&d, Strategy::Pglogical),
            ["1 stored generated column(s) (public.customers.name_lc), which pglogical 2 cannot copy or replicate (copy-cdc and dump-restore can)".to_string()],
            "{d:#?}"
        );
        // Left out of the move: no reason.
        let d = decide(
            &plan(
                "downtime: 1s
pglogical:
  prefer: true
objects:
  exclude: [public.customers]
",
            ),
            &generated,
            &dst,
        );
        assert_eq!(d.strategy, Some(Strategy::Pglogical), "{}", d.why);
    }

    #[test]
    fn auto_picks_pglogical_for_a_source_pgoutput_cannot_serve() {
        let mut src = with_pglogical(source());
        src.server.version_num = 90_624;
        src.settings.server_version = "9.6.24".to_string();
        let d = decide(
            &plan(
                "downtime: 1s
",
            ),
            &src,
            &with_pglogical(target()),
        );
        assert_eq!(d.strategy, Some(Strategy::Pglogical), "{}", d.why);
        assert!(d.why.contains("PostgreSQL 9.6.24"), "{}", d.why);
        assert!(d.why.contains("older than pgoutput"), "{}", d.why);
        assert!(
            any_contains(
                rejected(&d, Strategy::CopyCdc),
                "pgoutput needs PostgreSQL 10"
            ),
            "{d:#?}"
        );
        // Without pglogical on the target, such a source falls back to dump-restore.
        let d = decide(
            &plan(
                "downtime: 1s
",
            ),
            &src,
            &target(),
        );
        assert_eq!(d.strategy, Some(Strategy::DumpRestore), "{}", d.why);
    }

    #[test]
    fn pglogical_steps_name_the_nodes_sets_and_subscription() {
        let d = decide(
            &plan(
                "strategy: pglogical
cdc:
  tables_without_key: insert-only
pglogical:
  replication_set: shop_set
  provider_dsn: host=10.0.0.5 dbname=db
",
            ),
            &with_pglogical(source()),
            &with_pglogical(target()),
        );
        assert_eq!(d.strategy, Some(Strategy::Pglogical), "{}", d.why);
        assert_numbered(&d);
        let n = plan(
            "pglogical:
  replication_set: shop_set
",
        )
        .pglogical_names();
        let step = |name: &str| {
            d.steps
                .iter()
                .find(|s| s.name == Some(name))
                .unwrap_or_else(|| panic!("no step {name}: {:#?}", d.steps))
        };
        let provider = step(step_name::PROVIDER);
        assert_eq!(provider.on, "source");
        for x in [
            &n.provider_node,
            "shop_set",
            "ishop_set",
            "pglogical.provider_dsn",
        ] {
            assert!(provider.what.contains(x), "{x}: {provider:?}");
        }
        assert!(provider.what.contains("(update, delete)"), "{provider:?}");
        assert!(
            provider
                .what
                .contains("1 table(s) without a key in ishop_set only"),
            "{provider:?}"
        );
        let sub = step(step_name::SUBSCRIPTION);
        assert_eq!(sub.on, "target");
        for x in [
            n.subscriber_node.as_str(),
            n.subscription.as_str(),
            "synchronize_structure false",
            "forward_origins '{}'",
        ] {
            assert!(sub.what.contains(x), "{x}: {sub:?}");
        }
        let sync = step(step_name::SYNC);
        assert!(sync.what.contains("7 in all, 15.5 GB"), "{sync:?}");
        assert!(step(step_name::KEYS).why.contains("updates and deletes"));
        // After apply: replication inside the servers, then cutover that drops the subscription.
        let n_steps = d.steps.len();
        let replicate = &d.steps[n_steps - 2];
        assert_eq!(replicate.name, None);
        assert!(
            replicate
                .what
                .starts_with("pglogical replicates inside the servers"),
            "{replicate:?}"
        );
        let cutover = &d.steps[n_steps - 1];
        assert!(cutover.what.starts_with("cutover (manual)"), "{cutover:?}");
        assert!(
            cutover
                .what
                .contains(&format!("drop subscription {}", n.subscription)),
            "{cutover:?}"
        );
        // The default DSN is the source's.
        let d = decide(
            &plan(
                "strategy: pglogical
",
            ),
            &with_pglogical(source()),
            &with_pglogical(target()),
        );
        assert!(
            d.steps
                .iter()
                .any(|s| s.what.contains("(its DSN: source.dsn")),
            "{:#?}",
            d.steps
        );
    }

    #[test]
    fn copy_cdc_steps_end_with_change_capture_then_cutover() {
        let d = decide(&plan("downtime: 1s\n"), &source(), &target());
        assert_eq!(d.strategy, Some(Strategy::CopyCdc));
        assert_numbered(&d);
        let n = d.steps.len();
        assert!(n >= 5, "{:#?}", d.steps);
        assert!(
            d.steps.iter().any(|s| s.what.contains("create replication slot pgmove_shop")
                && s.on == "source"),
            "{:#?}",
            d.steps
        );
        let capture = &d.steps[n - 2];
        assert!(
            capture.what.starts_with("stream the slot's changes"),
            "{capture:?}"
        );
        assert!(
            capture.what.contains("publication pgmove_shop"),
            "{capture:?}"
        );
        assert_eq!(capture.on, "both");
        let cutover = &d.steps[n - 1];
        assert!(cutover.what.starts_with("cutover (manual)"), "{cutover:?}");
        assert!(cutover.what.contains("under 5s"), "{cutover:?}");
        assert!(
            cutover.what.contains("fence the source (read-only"),
            "{cutover:?}"
        );
        assert!(cutover.what.contains("verify (checksums)"), "{cutover:?}");
        assert!(cutover.why.contains("pgmove cutover"), "{cutover:?}");
        // The COPY step: every selected table, the large ones split.
        let copy = d
            .steps
            .iter()
            .find(|s| s.what.starts_with("COPY "))
            .expect("a COPY step");
        assert!(
            copy.what.starts_with(&format!(
                "COPY {ALL_TABLES} table(s) in the snapshot, 4 at a time"
            )),
            "{copy:?}"
        );
        // customers (2 GB), orders (6 GB) and tmp_import (4 GB) are over 1 GB; the 1 GB
        // partitions are not.
        assert!(
            copy.what
                .contains("3 table(s) over 1.0 GB split into ctid ranges"),
            "{copy:?}"
        );

        // The plan's cutover settings show in the step.
        let d = decide(
            &plan("strategy: copy-cdc\ncdc:\n  slot: my_slot\ncutover:\n  mode: auto\n  max_lag: 2s\n  fence: read-only\n  verify: counts\n"),
            &source(),
            &target(),
        );
        let n = d.steps.len();
        assert!(
            d.steps
                .iter()
                .any(|s| s.what.contains("create replication slot my_slot")),
            "{:#?}",
            d.steps
        );
        let cutover = &d.steps[n - 1];
        assert!(cutover.what.starts_with("cutover (auto)"), "{cutover:?}");
        assert!(cutover.what.contains("under 2s"), "{cutover:?}");
        assert!(
            cutover.what.contains("fence the source (read-only"),
            "{cutover:?}"
        );
        assert!(cutover.what.contains("verify (counts)"), "{cutover:?}");
        assert!(cutover.why.contains("cuts over by itself"), "{cutover:?}");
        assert!(d.steps[n - 2].what.starts_with("stream the slot's changes"));

        // fence: none (only with mode: manual) and verify: none.
        let d = decide(
            &plan("strategy: copy-cdc\ncutover:\n  fence: none\n  verify: none\n"),
            &source(),
            &target(),
        );
        let cutover = d.steps.last().unwrap();
        assert!(cutover.what.starts_with("cutover (manual)"), "{cutover:?}");
        assert!(
            cutover
                .what
                .contains("with writes stopped by you (fence: none)"),
            "{cutover:?}"
        );
        assert!(cutover.what.contains("verify (none)"), "{cutover:?}");
    }

    /// The plan's named steps are the strategy's list (the one the dry run, the run and
    /// status walk), in its order; what follows apply is unnamed and comes after them.
    #[test]
    fn plan_steps_are_the_strategys_step_list() {
        let mut src = source();
        src.large_objects = 3;
        for (text, strategy) in [
            ("downtime: 1h\n", Strategy::DumpRestore),
            ("downtime: 1s\n", Strategy::CopyCdc),
            ("strategy: pglogical\n", Strategy::Pglogical),
        ] {
            let (src, dst) = if strategy == Strategy::Pglogical {
                (with_pglogical(src.clone()), with_pglogical(target()))
            } else {
                (src.clone(), target())
            };
            let d = decide(&plan(text), &src, &dst);
            assert_eq!(d.strategy, Some(strategy));
            let named: Vec<&str> = d.steps.iter().filter_map(|s| s.name).collect();
            let list: Vec<&str> = crate::strategy::steps::of(strategy)
                .iter()
                .map(|s| s.name)
                .collect();
            assert_eq!(named, list, "{strategy:?}");
            // Named steps first: the first unnamed entry after the named ones ends them
            // (the large objects note sits between data and post-data for dump-restore).
            let last_named = d.steps.iter().rposition(|s| s.name.is_some());
            assert_eq!(
                last_named.map(|i| d.steps[i].name),
                Some(list.last().copied())
            );
            assert!(d.steps[last_named.unwrap_or(0) + 1..]
                .iter()
                .all(|s| s.name.is_none()));
            // Every named step is described by its strategy (`undescribed` gives no why).
            for s in d.steps.iter().filter(|s| s.name.is_some()) {
                assert!(!s.why.is_empty() && s.estimate_secs.is_some(), "{s:?}");
            }
        }
    }

    #[test]
    fn dump_restore_steps_cover_partitions_extensions_large_objects_and_verify() {
        let d = decide(&plan("downtime: 1h\n"), &source(), &target());
        assert_numbered(&d);
        let all = d
            .steps
            .iter()
            .map(|s| s.what.as_str())
            .collect::<Vec<_>>()
            .join("\n");
        assert!(
            all.contains("pg_dump -Fd -j 4 of 8 table(s), 15.5 GB"),
            "{all}"
        );
        assert!(all.contains("extensions first: postgis"), "{all}");
        assert!(!all.contains("plpgsql"), "{all}");
        assert!(
            all.contains("1 partitioned table(s) load into their 2 leaf partition(s), never twice"),
            "{all}"
        );
        assert!(!all.contains("large object"), "{all}");
        let last = d.steps.last().unwrap();
        assert!(
            last.what
                .starts_with("verify: row counts and chunked checksums"),
            "{last:?}"
        );

        // Large objects get a step of their own; numbering stays 1..n.
        let mut src = source();
        src.large_objects = 3;
        let d2 = decide(
            &plan("downtime: 1h\ncutover:\n  verify: counts\n"),
            &src,
            &target(),
        );
        assert_numbered(&d2);
        assert_eq!(d2.steps.len(), d.steps.len() + 1);
        assert!(d2
            .steps
            .iter()
            .any(|s| s.what == "3 large object(s) are part of the dump and restore"));
        assert!(d2
            .steps
            .last()
            .unwrap()
            .what
            .starts_with("verify: row counts and counts"));
        let d3 = decide(
            &plan("downtime: 1h\nobjects:\n  large_objects: false\n"),
            &src,
            &target(),
        );
        assert!(d3
            .steps
            .iter()
            .any(|s| s.what.contains("3 large object(s) are left out")));
    }

    #[test]
    fn estimates_scale_with_data_size_and_jobs() {
        let var = |d: Duration| d - FIXED_OVERHEAD;
        assert_eq!(estimate_copy(0, 0, 4, 2, 10), FIXED_OVERHEAD);
        // Negative sizes (unmeasured) count as nothing.
        assert_eq!(estimate_copy(-1, -1, 4, 2, 10), FIXED_OVERHEAD);
        let one = var(estimate_copy(10 * GB, 0, 1, 1, 10));
        assert_eq!(one.as_secs(), 256); // 10 GB at 40 MB/s
        let twice = var(estimate_copy(20 * GB, 0, 1, 1, 10));
        assert_eq!(twice, one * 2);
        let four_jobs = var(estimate_copy(10 * GB, 0, 4, 1, 10));
        assert_eq!(four_jobs.as_secs(), 64);
        // No more workers than tables.
        assert_eq!(
            estimate_copy(10 * GB, 0, 16, 1, 2),
            estimate_copy(10 * GB, 0, 2, 1, 2)
        );
        // jobs 0 behaves as 1.
        assert_eq!(
            estimate_copy(GB, GB, 0, 0, 1),
            estimate_copy(GB, GB, 1, 1, 1)
        );
        // Indexes at their own rate, index_jobs at a time.
        let idx = var(estimate_copy(0, 6 * GB, 4, 1, 10));
        assert_eq!(idx.as_secs(), 102); // 6 GB at 60 MB/s
        assert_eq!(var(estimate_copy(0, 6 * GB, 4, 2, 10)), idx / 2);

        // decide uses them: more jobs, shorter plan; more data, longer plan.
        let total = |extra: &str, src: &Inventory| {
            decide(&plan(&format!("downtime: 10h\n{extra}")), src, &target())
                .estimated_total_secs
                .unwrap()
        };
        let src = source();
        assert!(total("jobs: 1\n", &src) > total("jobs: 8\n", &src));
        let mut bigger = source();
        for t in &mut bigger.tables {
            t.heap_bytes *= 4;
            t.total_bytes *= 4;
        }
        assert!(total("", &bigger) > total("", &src));
        let cdc = |src: &Inventory| {
            decide(&plan("strategy: copy-cdc\n"), src, &target())
                .estimated_total_secs
                .unwrap()
        };
        assert!(cdc(&bigger) > cdc(&src));
    }

    #[test]
    fn the_auto_choice_follows_the_estimate() {
        // A budget just above the estimate keeps dump-restore; just below picks copy-cdc.
        let est = estimate_copy(ALL_DATA, ALL_INDEX, 4, 2, ALL_TABLES).as_secs();
        let d = decide(
            &plan(&format!("downtime: {}s\n", est + 1)),
            &source(),
            &target(),
        );
        assert_eq!(d.strategy, Some(Strategy::DumpRestore), "{}", d.why);
        let d = decide(
            &plan(&format!("downtime: {}s\n", est - 1)),
            &source(),
            &target(),
        );
        assert_eq!(d.strategy, Some(Strategy::CopyCdc), "{}", d.why);
    }

    #[test]
    fn excluded_tables_and_unselected_schemas_are_not_counted() {
        let d = decide(&plan("downtime: 1h\n"), &source(), &target());
        assert_eq!(d.data_bytes, ALL_DATA);
        assert_eq!(d.index_bytes, ALL_INDEX);
        assert_eq!(d.tables, ALL_TABLES);

        let d = decide(
            &plan("downtime: 1h\nobjects:\n  exclude: [public.tmp_*]\n"),
            &source(),
            &target(),
        );
        assert_eq!(d.data_bytes, ALL_DATA - 4 * GB);
        assert_eq!(d.index_bytes, ALL_INDEX);
        assert_eq!(d.tables, ALL_TABLES - 1);

        let d = decide(
            &plan("downtime: 1h\nobjects:\n  schemas: [public]\n  exclude: [public.tmp_*, public.events_2025]\n"),
            &source(),
            &target(),
        );
        assert_eq!(d.data_bytes, ALL_DATA - 4 * GB - GB - GB);
        assert_eq!(d.index_bytes, ALL_INDEX - GB / 2 - GB / 4);
        assert_eq!(d.tables, ALL_TABLES - 3);

        let d = decide(
            &plan("downtime: 1h\nobjects:\n  schemas: [sales]\n"),
            &source(),
            &target(),
        );
        assert_eq!(d.data_bytes, GB);
        assert_eq!(d.index_bytes, GB / 4);
        assert_eq!(d.tables, 1);

        let selected: Vec<String> = selected_tables(&plan(""), &source())
            .map(Table::display_name)
            .collect();
        assert!(!selected.contains(&"public.spatial_ref_sys".to_string()));
        assert!(!selected.contains(&format!("{}.runs", crate::state::SCHEMA)));
    }

    #[test]
    fn an_empty_source_plans_without_dividing_by_zero() {
        let d = decide(&plan("downtime: 1s\n"), &target(), &target());
        assert_eq!(d.tables, 0);
        assert_eq!(d.data_bytes, 0);
        // 5 s of fixed overhead does not fit 1 s.
        assert_eq!(d.strategy, Some(Strategy::CopyCdc), "{}", d.why);
        assert_numbered(&d);
    }

    #[test]
    fn human_and_bytes_formats() {
        assert_eq!(human(Duration::from_secs(0)), "0s");
        assert_eq!(human(Duration::from_secs(59)), "59s");
        assert_eq!(human(Duration::from_secs(61)), "1m 1s");
        assert_eq!(human(Duration::from_secs(3600 + 120 + 5)), "1h 2m");
        assert_eq!(bytes(-5), "0 bytes");
        assert_eq!(bytes(1023), "1023 bytes");
        assert_eq!(bytes(1536), "1.5 kB");
        assert_eq!(bytes(ALL_DATA), "15.5 GB");
        assert_eq!(bytes(3 * 1024 * GB), "3.0 TB");
    }
}
