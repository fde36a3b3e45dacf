//! `pgmove cleanup`: drops everything pgmove created for one plan, on both servers and on this
//! host, and nothing else.
//!
//! What belongs to a plan, found by exact name (never a prefix) and by the plan's own rows:
//! - source: the replication slots `<slot>` and its resume slot (logical, in the plan's
//!   database), the publication and its insert-only companion (names from `plan::names`),
//!   only those the target's `pgmove.source_objects` records this plan creating on this source
//!   (see [`crate::owned`]); one of those names without the record is reported as kept, with
//!   the fix, and dropped only with `--adopt-unrecorded` (a migration of an earlier release);
//! - either server, only in a `pgmove` schema pgmove created (it holds the marker table
//!   `pgmove.created_by_pgmove`, created with the schema in one transaction): the event
//!   triggers, functions and key table the DDL capture of `cdc::ddl` recorded creating for this
//!   plan in `pgmove.objects` (in the transaction that created them), and the schema itself:
//!   this plan's rows in its tables, or the whole schema (`DROP SCHEMA pgmove CASCADE`) when
//!   no other plan has rows in it (nor an event trigger whose function lives there). A
//!   `pgmove` schema without the marker is never dropped nor written to: it is reported as kept;
//! - the cutover fence: a source database an unfinished cutover left read-only (its record in
//!   the target's `pgmove.cutover` says `fencing` or `fenced`) gets its recorded previous
//!   `default_transaction_read_only` back first, before the record goes with the schema; after
//!   a finished cutover (`done`) it stays read-only and the report says so ("kept");
//! - this host: the default dump directory ([`crate::plan::default_dump_dir`]) only while its
//!   marker names this plan and both endpoints (see [`crate::dumpdir`]); one without the marker,
//!   another plan's or another user's is kept and reported.
//!
//! - strategy pglogical's subscription, nodes, sets, the slot and origin its subscription left
//!   and the extension where pgmove created it: only those the target's
//!   `pgmove.source_objects` records this plan creating, before anything else of the plan goes
//!   (the record goes with the target's schema, last); see `cleanup::pglogical`. One of the plan's
//!   pglogical names without the record is reported (`not_handled`) and kept.
//!
//! A running apply is detected before anything is dropped: a slot of the plan is active (its
//! walsender's pid), or another session holds the plan's advisory lock on the target (see
//! `state::State::open`). Cleanup then refuses, naming the pid, unless `force`: the sessions
//! are terminated (`pg_terminate_backend`) and cleanup proceeds.
//!
//! Every step is idempotent: a second run finds nothing and drops nothing.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use serde::Serialize;
use tokio_postgres::error::SqlState;
use tokio_postgres::Client;

use crate::pg::{quote, Endpoint, PgError, Side};
use crate::plan::Plan;
use crate::report::Render;
use crate::state;

mod pglogical;

/// Version of the JSON layout (fields are only ever added).
pub const FORMAT_VERSION: u32 = 1;

/// How long cleanup waits for a lock on an object it drops before it gives up.
const LOCK_TIMEOUT: &str = "30s";

/// How long `--force` waits for a terminated session to let go of a slot or the plan's lock.
const FORCE_WAIT: Duration = Duration::from_secs(20);

/// Where an artifact lives.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Location {
    Source,
    Target,
    /// This host (the dump directory).
    Local,
}

impl From<Side> for Location {
    fn from(s: Side) -> Location {
        match s {
            Side::Source => Location::Source,
            Side::Target => Location::Target,
        }
    }
}

impl std::fmt::Display for Location {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Location::Source => "source",
            Location::Target => "target",
            Location::Local => "local",
        })
    }
}

/// One thing cleanup drops (or would drop, or cannot).
#[derive(Clone, Debug, Serialize)]
pub struct Artifact {
    #[serde(rename = "side")]
    pub location: Location,
    /// `replication slot`, `publication`, `event trigger`, `function`, `schema`, `state rows`,
    /// `dump directory`, `pglogical node`...
    pub kind: String,
    pub name: String,
    /// The statement that drops it (for the dump directory, the shell command).
    pub sql: String,
    /// More about it (row counts, why it stays...).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
}

/// A session that uses the plan's artifacts: a running apply.
#[derive(Clone, Debug, Serialize)]
pub struct Blocker {
    #[serde(rename = "side")]
    pub location: Location,
    /// `replication slot` or `advisory lock`.
    pub kind: String,
    pub name: String,
    pub pid: i32,
}

impl std::fmt::Display for Blocker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.kind.as_str() {
            "advisory lock" => write!(
                f,
                "{}: process {} holds the plan's lock ({}): an apply of this plan is running",
                self.location, self.pid, self.name
            ),
            _ => write!(
                f,
                "{}: {} {} is in use by process {} (a running apply streams from it)",
                self.location, self.kind, self.name, self.pid
            ),
        }
    }
}

impl Blocker {
    /// The line for a session `force` terminated.
    fn terminated_line(&self) -> String {
        let uses = match self.kind.as_str() {
            "advisory lock" => "held the plan's lock".to_string(),
            _ => format!("streamed from {} {}", self.kind, self.name),
        };
        format!("{}: process {} ({uses})", self.location, self.pid)
    }
}

/// What cleanup did (or, with `dry_run`, would do).
#[derive(Clone, Debug, Serialize)]
pub struct Report {
    pub format_version: u32,
    pub plan: String,
    pub dry_run: bool,
    pub force: bool,
    /// Dropped (dry run: to drop), in order.
    pub artifacts: Vec<Artifact>,
    /// Sessions of a running apply: refused without `force`; terminated with it.
    pub blockers: Vec<Blocker>,
    /// Sessions `force` terminated.
    pub terminated: Vec<Blocker>,
    /// pgmove objects deliberately left (e.g. the schema other plans still use).
    pub kept: Vec<Artifact>,
    /// Objects of the plan's pglogical names that pgmove did not record creating: left in place.
    pub not_handled: Vec<Artifact>,
    /// Set when a drop failed part way: what went wrong (artifacts lists what was dropped).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// What to clean up.
#[derive(Clone, Debug)]
pub struct Request {
    pub plan_name: String,
    /// The replication slot (`cdc.slot` or `pgmove_<name>`).
    pub slot: String,
    pub publication: String,
    /// The plan's pglogical nodes, sets and subscription.
    pub pglogical: crate::plan::names::PglogicalNames,
    /// The local dump directory to remove if it carries the plan's marker; `None`: the default
    /// for the plan and the endpoints cleanup is given.
    pub dump_dir: Option<PathBuf>,
    pub dry_run: bool,
    pub force: bool,
    /// Drop also a slot or publication of the plan's names that pgmove did not record
    /// creating (a migration started by a release before the record; see `crate::owned`).
    pub adopt_unrecorded: bool,
}

impl Request {
    /// The request for `plan`, with apply's default dump directory.
    pub fn for_plan(plan: &Plan, dry_run: bool, force: bool) -> Request {
        Request {
            plan_name: plan.name.clone(),
            slot: plan.slot_name(),
            publication: plan.publication_name(),
            pglogical: plan.pglogical_names(),
            dump_dir: None,
            dry_run,
            force,
            adopt_unrecorded: false,
        }
    }

    fn resume_slot(&self) -> String {
        crate::plan::resume_slot_name(&self.slot)
    }
}

/// The plan's dump directory on this host: removed only while its marker names this plan and
/// both endpoints; one that is not pgmove's (no marker, another plan's, another user's) is kept
/// and says why.
fn discover_dump_dir(req: &Request, source: &Endpoint, target: &Endpoint, found: &mut Found) {
    use crate::dumpdir::{self, DirError};
    let dir = match crate::plan::names::dump_dir(
        req.dump_dir.as_deref(),
        &req.plan_name,
        &source.info,
        &target.info,
    ) {
        Ok(d) => d,
        // No private default place: apply could not have used one either.
        Err(_) => return,
    };
    let owner = dumpdir::Owner::new(&req.plan_name, &source.info, &target.info);
    let artifact = |sql: String, detail: Option<String>| Artifact {
        location: Location::Local,
        kind: "dump directory".into(),
        name: dir.display().to_string(),
        sql,
        detail,
    };
    match dumpdir::inspect(&dir, &owner) {
        Ok(state) => {
            if let Some(cmd) = dumpdir::removal_command(&dir, &state) {
                found.steps.push(Step {
                    artifact: artifact(cmd, None),
                    action: Action::RemoveDir(dir.clone(), owner),
                });
            }
        }
        Err(DirError::Refused { reason, .. }) => found.kept.push(artifact(
            String::new(),
            Some(format!("not removed: {reason}")),
        )),
        Err(DirError::Io(e)) => found
            .kept
            .push(artifact(String::new(), Some(format!("not removed: {e}")))),
    }
}

/// Why cleanup stopped.
#[derive(Debug, thiserror::Error)]
pub enum CleanupError {
    /// Before anything was dropped: a server could not be reached or read.
    #[error(transparent)]
    Pg(#[from] PgError),
    /// An apply is running and `force` was not given; nothing was dropped.
    #[error("{}\n  nothing was dropped\n  hint: stop the apply first (Ctrl-C or SIGTERM), or pass --force to terminate {} and drop everything", blocker_lines(.0), pids(.0))]
    Refused(Vec<Blocker>),
    /// A drop failed part way; the report says what was dropped before.
    #[error("{}", .0.error.as_deref().unwrap_or("cleanup failed"))]
    Partial(Box<Report>),
}

/// Why one drop of the cleanup failed (the report's `error`).
#[derive(Debug, thiserror::Error)]
enum DropError {
    #[error(transparent)]
    Pg(#[from] PgError),
    #[error("local: cannot remove the dump directory {}: {source}", dir.display())]
    Dir {
        dir: PathBuf,
        source: crate::dumpdir::DirError,
    },
}

fn blocker_lines(b: &[Blocker]) -> String {
    let lines: Vec<String> = b.iter().map(|b| b.to_string()).collect();
    format!(
        "refusing to clean up while an apply is running:\n  {}",
        lines.join("\n  ")
    )
}

fn pids(b: &[Blocker]) -> String {
    let mut p: Vec<String> = b.iter().map(|b| b.pid.to_string()).collect();
    p.dedup();
    if p.len() == 1 {
        format!("process {}", p[0])
    } else {
        format!("processes {}", p.join(", "))
    }
}

/// One step, with the artifact it removes.
#[derive(Clone, Debug)]
enum Action {
    DropSlot(String),
    /// A statement run as is.
    Sql(String),
    /// A dump directory, removed only while its marker names this owner.
    RemoveDir(PathBuf, crate::dumpdir::Owner),
    /// A slot of pgmove's pglogical subscription, once the subscription's walsender let go of
    /// it (the subscription was dropped just before).
    DropReleasedSlot(String),
    /// `DROP EXTENSION` (the statement): kept and reported when other objects depend on it.
    DropExtension(String),
    /// pgmove's pglogical subscription (its name): disabled in a statement of its own, its
    /// apply worker waited for, then dropped. `drop_subscription` alone waits for the apply
    /// worker to exit while holding what that worker may be waiting for (seen: the worker
    /// blocked on the dropping transaction's row, the drop waiting for the worker, forever).
    DropPglogicalSubscription(String),
}

#[derive(Clone, Debug)]
struct Step {
    artifact: Artifact,
    action: Action,
}

/// What one server holds of the plan.
#[derive(Default)]
struct Found {
    steps: Vec<Step>,
    blockers: Vec<Blocker>,
    kept: Vec<Artifact>,
    not_handled: Vec<Artifact>,
}

/// Cleans up (or, with `dry_run`, lists) the artifacts of `req` on `source`, `target` and this
/// host. With blockers and without `force`: [`CleanupError::Refused`], except in a dry run,
/// whose report lists the blockers.
pub async fn cleanup(
    req: &Request,
    source: &Endpoint,
    target: &Endpoint,
) -> Result<Report, CleanupError> {
    let (s, t) = tokio::join!(open(source), open(target));
    let (s, t) = (s?, t?);
    let mut found = Found::default();
    // First: the source gets its writes back before the record of how goes with the schema.
    discover_fence(req, source, &s, target, &t, &mut found).await?;
    discover_source(req, source, &s, target, &t, &mut found).await?;
    // Before the replica identities: pglogical refuses updates of a keyless table in a set
    // that replicates them.
    pglogical::discover(
        &pglogical::Plan {
            names: &req.pglogical,
            plan_name: &req.plan_name,
        },
        source,
        &s,
        target,
        &t,
        &mut found,
    )
    .await?;
    discover_replica_identity(req, source, &s, target, &t, &mut found).await?;
    discover_side(req, source, &s, &mut found).await?;
    discover_lock(req, target, &t, &mut found).await?;
    discover_side(req, target, &t, &mut found).await?;
    discover_dump_dir(req, source, target, &mut found);
    let mut report = Report {
        format_version: FORMAT_VERSION,
        plan: req.plan_name.clone(),
        dry_run: req.dry_run,
        force: req.force,
        artifacts: Vec::new(),
        blockers: found.blockers.clone(),
        terminated: Vec::new(),
        kept: found.kept,
        not_handled: found.not_handled,
        error: None,
    };
    if req.dry_run {
        if req.force {
            for b in &found.blockers {
                report.artifacts.push(Artifact {
                    location: b.location,
                    kind: "session".into(),
                    name: format!("process {}", b.pid),
                    sql: format!("SELECT pg_terminate_backend({})", b.pid),
                    detail: Some(format!("uses {} {}", b.kind, b.name)),
                });
            }
        }
        report
            .artifacts
            .extend(found.steps.into_iter().map(|s| s.artifact));
        return Ok(report);
    }
    if !found.blockers.is_empty() {
        if !req.force {
            return Err(CleanupError::Refused(found.blockers));
        }
        // The target's lock holder first (a full load stops using the slot with it), then the
        // walsenders; then wait until both let go.
        for b in &found.blockers {
            let (c, ep) = match b.location {
                Location::Source => (&s, source),
                _ => (&t, target),
            };
            if let Err(e) = terminate(c, ep, b).await {
                report.error = Some(e.to_string());
                return Err(CleanupError::Partial(Box::new(report)));
            }
            report.terminated.push(b.clone());
        }
        if let Err(e) = wait_lock_released(req, target, &t).await {
            report.error = Some(e.to_string());
            return Err(CleanupError::Partial(Box::new(report)));
        }
    }
    for step in found.steps {
        let result: Result<(), DropError> = match &step.action {
            Action::DropSlot(name) => {
                drop_slot(&s, source, name, req.force, &mut report.terminated)
                    .await
                    .map_err(DropError::from)
            }
            Action::Sql(sql) => {
                let (c, ep) = match step.artifact.location {
                    Location::Source => (&s, source),
                    _ => (&t, target),
                };
                c.batch_execute(sql).await.map_err(|e| {
                    ep.query_error(
                        &format!("dropping {} {}", step.artifact.kind, step.artifact.name),
                        &e,
                    )
                    .into()
                })
            }
            Action::DropPglogicalSubscription(name) => {
                drop_pglogical_subscription(&t, target, name)
                    .await
                    .map_err(DropError::from)
            }
            Action::DropReleasedSlot(name) => {
                drop_released_slot(&s, source, name, req.force, &mut report.terminated)
                    .await
                    .map_err(DropError::from)
            }
            Action::DropExtension(sql) => {
                let (c, ep) = match step.artifact.location {
                    Location::Source => (&s, source),
                    _ => (&t, target),
                };
                match c.batch_execute(sql).await {
                    Ok(()) => Ok(()),
                    Err(e) if e.code() == Some(&SqlState::DEPENDENT_OBJECTS_STILL_EXIST) => {
                        let mut kept = step.artifact.clone();
                        kept.sql = String::new();
                        kept.detail = Some(format!(
                            "pgmove created it, but other objects depend on it ({}): left in place; drop it yourself once they are gone (DROP EXTENSION pglogical;)",
                            ep.query_error("dropping the extension", &e)
                        ));
                        report.kept.push(kept);
                        continue;
                    }
                    Err(e) => Err(ep
                        .query_error(&format!("dropping extension {}", step.artifact.name), &e)
                        .into()),
                }
            }
            Action::RemoveDir(dir, owner) => crate::dumpdir::remove(dir, owner)
                .map(|_| ())
                .map_err(|source| DropError::Dir {
                    dir: dir.clone(),
                    source,
                }),
        };
        match result {
            Ok(()) => {
                tracing::info!(side = %step.artifact.location, kind = %step.artifact.kind, name = %step.artifact.name, "dropped");
                report.artifacts.push(step.artifact);
            }
            Err(e) => {
                report.error = Some(e.to_string());
                return Err(CleanupError::Partial(Box::new(report)));
            }
        }
    }
    Ok(report)
}

/// A connection that gives up waiting for locks after [`LOCK_TIMEOUT`], writes also on a
/// source that cutover fenced (`default_transaction_read_only` on its database), and may give
/// moved tables their replica identity back while the guard of `cdc.ddl: refuse` under
/// pglogical is still there (it goes later, with the plan's recorded event triggers).
async fn open(ep: &Endpoint) -> Result<Client, PgError> {
    let c = ep.connect().await?;
    c.batch_execute(&format!(
        "SET lock_timeout = {}; SET statement_timeout = 0; SET default_transaction_read_only = off; {}",
        quote::literal(LOCK_TIMEOUT),
        crate::cdc::ddl::guard::allow_sql()
    ))
    .await
    .map_err(|e| ep.query_error("setting up the cleanup session", &e))?;
    Ok(c)
}

/// The cutover fence: a source that an abandoned cutover (`fencing`, `fenced`) left read-only
/// gets its recorded previous setting back, as the first step (the record is dropped only
/// after); after a finished cutover (`done`, the target is live) it stays read-only and the
/// report says so, with the statement that would give it its writes back.
async fn discover_fence(
    req: &Request,
    source: &Endpoint,
    s: &Client,
    target: &Endpoint,
    t: &Client,
    found: &mut Found,
) -> Result<(), PgError> {
    if !state::has_table(t, target, "cutover").await? {
        return Ok(());
    }
    let Some(row) = state::cutover::read(t, target, &req.plan_name).await? else {
        return Ok(());
    };
    let (state, prev, fenced_at): (String, Option<String>, Option<String>) = (
        row.state.as_str().to_string(),
        row.prev_read_only,
        row.fenced_at,
    );
    let now: Option<String> = s
        .query_one(crate::cutover::DB_READ_ONLY_SQL, &[])
        .await
        .map_err(|e| source.query_error("reading the database settings", &e))?
        .get(0);
    if !now.as_deref().is_some_and(crate::cutover::is_on) {
        return Ok(());
    }
    let db: String = s
        .query_one("SELECT current_database()", &[])
        .await
        .map_err(|e| source.query_error("reading the database name", &e))?
        .get(0);
    let sql = crate::cutover::unfence_sql(&db, prev.as_deref());
    let before = match &prev {
        Some(v) => format!("default_transaction_read_only = {v}"),
        None => "no default_transaction_read_only setting".to_string(),
    };
    let since = fenced_at.map(|t| format!(" since {t}")).unwrap_or_default();
    let name = format!("database {} read-only", quote::ident(&db));
    match state.as_str() {
        "fencing" | "fenced" => found.steps.push(Step {
            artifact: Artifact {
                location: Location::Source,
                kind: "cutover fence".into(),
                name,
                sql: sql.clone(),
                detail: Some(format!(
                    "an unfinished cutover left the source read-only{since}; restoring what it had before: {before}"
                )),
            },
            action: Action::Sql(sql),
        }),
        "done" => found.kept.push(Artifact {
            location: Location::Source,
            kind: "cutover fence".into(),
            name,
            sql: String::new(),
            detail: Some(format!(
                "the cutover finished{since} and the target is live, so the source stays read-only; before the cutover it had {before}; to let it take writes again run on it: {sql}"
            )),
        }),
        _ => {}
    }
    Ok(())
}

/// The plan's slots in this database, with the pid of the session using each.
const SLOTS_SQL: &str = "SELECT slot_name::text, active_pid FROM pg_replication_slots \
     WHERE slot_name = ANY($1::text[]) AND database = current_database() ORDER BY slot_name DESC";

/// Slots and publications (source only): those the target's record says this plan created
/// (`crate::owned`); one of the plan's names without the record is reported as kept with the
/// fix, or dropped with `--adopt-unrecorded`.
async fn discover_source(
    req: &Request,
    ep: &Endpoint,
    c: &Client,
    target: &Endpoint,
    t: &Client,
    found: &mut Found,
) -> Result<(), PgError> {
    use crate::owned::{self, Verdict};
    let slots = vec![req.resume_slot(), req.slot.clone()];
    let publications = vec![
        req.publication.clone(),
        crate::plan::insert_only_publication_name(&req.publication),
    ];
    let present = owned::find(c, ep, &slots, &publications).await?;
    if present.is_empty() {
        return Ok(());
    }
    let here = owned::source_of(c, ep).await?;
    let records = owned::records(t, target, &req.plan_name).await?;
    // Which of them cleanup drops; the others are kept and say why.
    let mut drop: Vec<(&str, String, Option<String>)> = Vec::new();
    for (kind, name, f) in present {
        match owned::judge(
            &req.plan_name,
            owned::record_of(&records, kind, &name),
            &here,
            &f,
        ) {
            Verdict::Ours => drop.push((kind, name, None)),
            Verdict::NotRecorded(why) if req.adopt_unrecorded => drop.push((
                kind,
                name,
                Some(format!(
                    "found by name, not recorded ({why}); dropped because of --adopt-unrecorded"
                )),
            )),
            Verdict::NotRecorded(why) => found.kept.push(Artifact {
                location: Location::Source,
                kind: kind.into(),
                sql: String::new(),
                detail: Some(format!(
                    "found by name, not recorded: {why}; left in place. If an earlier pgmove release created it for this plan, rerun cleanup with --adopt-unrecorded to drop it; otherwise it is someone else's: {}",
                    owned::keep_or_drop(kind, &name)
                )),
                name,
            }),
        }
    }
    let slot_names: Vec<String> = drop
        .iter()
        .filter(|(k, _, _)| *k == owned::SLOT)
        .map(|(_, n, _)| n.clone())
        .collect();
    let rows = c
        .query(SLOTS_SQL, &[&slot_names])
        .await
        .map_err(|e| ep.query_error("reading pg_replication_slots", &e))?;
    // The resume slot first: it exists only while (or because) a full load ran.
    for r in rows {
        let name: String = r.get(0);
        let pid: Option<i32> = r.get(1);
        if let Some(pid) = pid {
            found.blockers.push(Blocker {
                location: Location::Source,
                kind: "replication slot".into(),
                name: name.clone(),
                pid,
            });
        }
        let adopted = drop
            .iter()
            .find(|(k, n, _)| *k == owned::SLOT && *n == name)
            .and_then(|(_, _, d)| d.clone());
        let detail = match (pid, adopted) {
            (Some(p), Some(a)) => Some(format!("{a}; in use by process {p}")),
            (Some(p), None) => Some(format!("in use by process {p}")),
            (None, a) => a,
        };
        found.steps.push(Step {
            artifact: Artifact {
                location: Location::Source,
                kind: "replication slot".into(),
                sql: format!("SELECT pg_drop_replication_slot({})", quote::literal(&name)),
                name: name.clone(),
                detail,
            },
            action: Action::DropSlot(name),
        });
    }
    // The plan's publication, and the insert-only one of `cdc.tables_without_key: insert-only`.
    for (_, name, detail) in drop
        .into_iter()
        .filter(|(k, _, _)| *k == owned::PUBLICATION)
    {
        let sql = format!("DROP PUBLICATION IF EXISTS {}", quote::ident(&name));
        found.steps.push(Step {
            artifact: Artifact {
                location: Location::Source,
                kind: "publication".into(),
                name,
                sql: sql.clone(),
                detail,
            },
            action: Action::Sql(sql),
        });
    }
    Ok(())
}

/// Source tables pgmove made REPLICA IDENTITY FULL and still are: their recorded identity is
/// given back.
async fn discover_replica_identity(
    req: &Request,
    source: &Endpoint,
    s: &Client,
    target: &Endpoint,
    t: &Client,
    found: &mut Found,
) -> Result<(), PgError> {
    if !state::has_table(t, target, "replica_identity").await? {
        return Ok(());
    }
    let rows = state::replica_identity::recorded(t, target, Some(&req.plan_name)).await?;
    for state::replica_identity::Identity {
        schema,
        table,
        mode,
        index,
    } in rows
    {
        let name = quote::qualified(&schema, &table);
        // Only while the table is still FULL, as pgmove left it.
        let now = s
            .query_opt(
                "SELECT c.relreplident::text FROM pg_catalog.pg_class c                    JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace                  WHERE n.nspname = $1 AND c.relname = $2",
                &[&schema, &table],
            )
            .await
            .map_err(|e| source.query_error("reading replica identities", &e))?;
        if now.map(|r| r.get::<_, String>(0)).as_deref() != Some("f") {
            continue;
        }
        let Some(identity) = crate::replica_identity::identity_clause(&mode, index.as_deref())
        else {
            continue;
        };
        let sql = format!("ALTER TABLE {name} REPLICA IDENTITY {identity}");
        found.steps.push(Step {
            artifact: Artifact {
                location: Location::Source,
                kind: "replica identity".into(),
                name: format!("{name} (FULL, back to {identity})"),
                sql: sql.clone(),
                detail: None,
            },
            action: Action::Sql(sql),
        });
    }
    Ok(())
}

/// Another session holding the plan's advisory lock on the target: a running apply.
async fn lock_holders(req: &Request, ep: &Endpoint, c: &Client) -> Result<Vec<i32>, PgError> {
    state::lock::holders(c, ep, &req.plan_name).await
}

async fn discover_lock(
    req: &Request,
    ep: &Endpoint,
    c: &Client,
    found: &mut Found,
) -> Result<(), PgError> {
    for pid in lock_holders(req, ep, c).await? {
        found.blockers.push(Blocker {
            location: ep.side.into(),
            kind: "advisory lock".into(),
            name: state::lock::key_display(&req.plan_name),
            pid,
        });
    }
    Ok(())
}

/// Which of the named event triggers exist (exact names).
const EVENT_TRIGGERS_SQL: &str =
    "SELECT evtname::text FROM pg_event_trigger WHERE evtname = ANY($1::text[]) ORDER BY evtname";

/// The named functions of schema `pgmove` (exact names), as `regprocedure` text for DROP.
const FUNCTIONS_SQL: &str = "SELECT p.oid::regprocedure::text FROM pg_proc p \
       JOIN pg_namespace n ON n.oid = p.pronamespace \
     WHERE n.nspname = 'pgmove' AND p.proname = ANY($1::text[]) ORDER BY 1";

/// The named tables of schema `pgmove` that exist (exact names).
const TABLES_SQL: &str = "SELECT c.relname::text FROM pg_class c \
       JOIN pg_namespace n ON n.oid = c.relnamespace \
     WHERE n.nspname = 'pgmove' AND c.relkind IN ('r', 'p') AND c.relname = ANY($1::text[]) ORDER BY 1";

/// DDL capture objects, the `pgmove` schema and pglogical objects, on either server: only in
/// a `pgmove` schema pgmove created (its marker), only the objects it recorded creating there,
/// by exact name.
async fn discover_side(
    req: &Request,
    ep: &Endpoint,
    c: &Client,
    found: &mut Found,
) -> Result<(), PgError> {
    let side: Location = ep.side.into();
    match state::owner(c, ep).await? {
        state::Owner::Absent => {}
        state::Owner::Foreign => found.kept.push(Artifact {
            location: side,
            kind: "schema".into(),
            name: state::SCHEMA.to_string(),
            sql: String::new(),
            detail: Some(format!(
                "not pgmove's: it has no table {}.{}, so pgmove never drops it nor anything in it",
                state::SCHEMA,
                state::MARKER_TABLE
            )),
        }),
        state::Owner::Earlier => found.kept.push(Artifact {
            location: side,
            kind: "schema".into(),
            name: state::SCHEMA.to_string(),
            sql: String::new(),
            detail: Some(format!(
                "made by an earlier pgmove, without the marker table {}.{}: left in place; if no migration needs it, drop it yourself (DROP SCHEMA pgmove CASCADE)",
                state::SCHEMA,
                state::MARKER_TABLE
            )),
        }),
        state::Owner::Pgmove => {
            discover_created_roles(req, ep, c, found).await?;
            let (ours, masters) = discover_recorded(req, ep, c, found).await?;
            if masters {
                // The master user made the schema with the capture and owns it: its SQL
                // (printed with the capture) drops it once nothing else is in it.
                found.kept.push(Artifact {
                    location: side,
                    kind: "schema".into(),
                    name: state::SCHEMA.to_string(),
                    sql: String::new(),
                    detail: Some("holds the DDL capture the master user installed (pgmove setup-sql): the master user's SQL above drops it once nothing else is in it".into()),
                });
            } else {
                discover_schema(req, ep, c, found, &ours).await?;
            }
        }
    }
    Ok(())
}

/// The roles `roles: create` made for the plan (`crate::roles`): never dropped (they own the
/// user's data), listed as kept so the report says so before their record goes.
async fn discover_created_roles(
    req: &Request,
    ep: &Endpoint,
    c: &Client,
    found: &mut Found,
) -> Result<(), PgError> {
    if !state::has_table(c, ep, "created_roles").await? {
        return Ok(());
    }
    for name in state::roles::created(c, ep, &req.plan_name).await? {
        found.kept.push(Artifact {
            location: ep.side.into(),
            kind: "role".into(),
            name,
            sql: String::new(),
            detail: Some(
                "created by roles: create; roles are never dropped by cleanup (they own the moved data): drop it yourself if it is not needed".into(),
            ),
        });
    }
    Ok(())
}

/// The objects the plan's DDL capture recorded creating in the (marked) `pgmove` schema of this
/// server, dropped by exact name: event triggers, then functions, then tables. Returns the
/// recorded event trigger names, and whether the capture is the master user's (`pgmove
/// setup-sql`, see `cdc::ddl::setup`): then nothing is dropped (the migrating role may not, and
/// pgmove did not create it) and the report keeps it with the SQL the master user runs.
async fn discover_recorded(
    req: &Request,
    ep: &Endpoint,
    c: &Client,
    found: &mut Found,
) -> Result<(Vec<String>, bool), PgError> {
    let side: Location = ep.side.into();
    // What the DDL capture recorded creating for the plan (see `cdc::ddl::install_sql`):
    // (kind, exact name), functions and tables in schema `pgmove`.
    let rows = state::source::recorded(c, ep, &req.plan_name).await?;
    let recorded = |kind: &str| -> Vec<String> {
        rows.iter()
            .filter(|(k, _)| k == kind)
            .map(|(_, name)| name.clone())
            .collect()
    };
    use crate::cdc::ddl::{RECORD_EVENT_TRIGGER, RECORD_FUNCTION, RECORD_TABLE_KIND};
    let triggers = recorded(RECORD_EVENT_TRIGGER);
    if !rows.is_empty()
        && crate::cdc::ddl::setup::installed_by_master(c, ep, &req.plan_name).await?
    {
        let names: Vec<String> = rows.iter().map(|(k, n)| format!("{k} {n}")).collect();
        found.kept.push(Artifact {
            location: side,
            kind: "DDL capture".into(),
            name: names.join(", "),
            sql: crate::cdc::ddl::setup::master_drop_sql(&req.plan_name, &rows),
            detail: Some(
                "installed by the master user with pgmove setup-sql, so pgmove leaves it: once the migration is over, the master user drops it by running on the source the SQL below".into(),
            ),
        });
        return Ok((triggers, true));
    }
    let mut push = |kind: &str, name: String, sql: String, detail: Option<String>| {
        found.steps.push(Step {
            artifact: Artifact {
                location: side,
                kind: kind.into(),
                name,
                sql: sql.clone(),
                detail,
            },
            action: Action::Sql(sql),
        });
    };
    for r in c
        .query(EVENT_TRIGGERS_SQL, &[&triggers])
        .await
        .map_err(|e| ep.query_error("reading pg_event_trigger", &e))?
    {
        let name: String = r.get(0);
        let sql = format!("DROP EVENT TRIGGER IF EXISTS {}", quote::ident(&name));
        push("event trigger", name, sql, None);
    }
    for r in c
        .query(FUNCTIONS_SQL, &[&recorded(RECORD_FUNCTION)])
        .await
        .map_err(|e| ep.query_error("reading pg_proc", &e))?
    {
        let name: String = r.get(0);
        let sql = format!("DROP FUNCTION IF EXISTS {name}");
        push("function", name, sql, None);
    }
    for r in c
        .query(TABLES_SQL, &[&recorded(RECORD_TABLE_KIND)])
        .await
        .map_err(|e| ep.query_error("reading pg_class", &e))?
    {
        let table: String = r.get(0);
        let sql = format!(
            "DROP TABLE IF EXISTS {}",
            quote::qualified(state::SCHEMA, &table)
        );
        push(
            "table",
            format!("{}.{table}", state::SCHEMA),
            sql,
            Some("the DDL capture's key".into()),
        );
    }
    Ok((triggers, false))
}

/// The (marked) `pgmove` schema: the whole schema when no other plan uses it, else this plan's
/// rows. `our_triggers`: the plan's recorded event triggers (they go before the schema).
async fn discover_schema(
    req: &Request,
    ep: &Endpoint,
    c: &Client,
    found: &mut Found,
    our_triggers: &[String],
) -> Result<(), PgError> {
    let side: Location = ep.side.into();
    let schema = state::SCHEMA;
    let tables = c
        .query(
            "SELECT c.relname::text, EXISTS (SELECT 1 FROM pg_attribute a WHERE a.attrelid = c.oid \
                 AND a.attname = 'plan_name' AND a.attnum > 0 AND NOT a.attisdropped) \
             FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace \
             WHERE n.nspname = $1 AND c.relkind IN ('r', 'p') ORDER BY c.relname",
            &[&schema],
        )
        .await
        .map_err(|e| ep.query_error("listing the tables of the pgmove schema", &e))?;
    let mut ours: Vec<(String, i64)> = Vec::new();
    let mut others: Vec<String> = Vec::new();
    for t in &tables {
        let table: String = t.get(0);
        if !t.get::<_, bool>(1) {
            continue;
        }
        let qualified = quote::qualified(schema, &table);
        let row = c
            .query_one(
                &format!(
                    "SELECT count(*) FILTER (WHERE plan_name::text = $1::text), \
                            coalesce(array_agg(DISTINCT plan_name::text) \
                                FILTER (WHERE plan_name::text <> $1::text), '{{}}') \
                     FROM {qualified}"
                ),
                &[&req.plan_name],
            )
            .await
            .map_err(|e| ep.query_error(&format!("reading {schema}.{table}"), &e))?;
        let n: i64 = row.get(0);
        if n > 0 {
            ours.push((table, n));
        }
        for p in row.get::<_, Vec<String>>(1) {
            if !others.contains(&p) {
                others.push(p);
            }
        }
    }
    others.sort();
    // Another event trigger whose function lives in the schema would go with it.
    let foreign_triggers: Vec<String> = c
        .query(
            "SELECT e.evtname::text FROM pg_event_trigger e \
               JOIN pg_proc p ON p.oid = e.evtfoid JOIN pg_namespace n ON n.oid = p.pronamespace \
             WHERE n.nspname = $1 AND NOT (e.evtname = ANY($2::text[])) \
             ORDER BY 1",
            &[&schema, &our_triggers],
        )
        .await
        .map_err(|e| ep.query_error("reading pg_event_trigger", &e))?
        .iter()
        .map(|r| r.get(0))
        .collect();
    let rows_of_plan: i64 = ours.iter().map(|(_, n)| n).sum();
    if others.is_empty() && foreign_triggers.is_empty() {
        let sql = format!("DROP SCHEMA IF EXISTS {} CASCADE", quote::ident(schema));
        found.steps.push(Step {
            artifact: Artifact {
                location: side,
                kind: "schema".into(),
                name: schema.to_string(),
                sql: sql.clone(),
                detail: Some(format!(
                    "{} table(s), {rows_of_plan} row(s) of this plan; no other plan uses it",
                    tables.len()
                )),
            },
            action: Action::Sql(sql),
        });
        return Ok(());
    }
    let mut why = Vec::new();
    if !others.is_empty() {
        why.push(format!(
            "other plans have state in it: {}",
            others.join(", ")
        ));
    }
    if !foreign_triggers.is_empty() {
        why.push(format!(
            "event triggers of other plans use its functions: {}",
            foreign_triggers.join(", ")
        ));
    }
    found.kept.push(Artifact {
        location: side,
        kind: "schema".into(),
        name: schema.to_string(),
        sql: String::new(),
        detail: Some(why.join("; ")),
    });
    for (table, n) in ours {
        let sql = format!(
            "DELETE FROM {} WHERE plan_name = {}",
            quote::qualified(schema, &table),
            quote::literal(&req.plan_name)
        );
        found.steps.push(Step {
            artifact: Artifact {
                location: side,
                kind: "state rows".into(),
                name: format!("{schema}.{table}"),
                sql: sql.clone(),
                detail: Some(format!("{n} row(s) of this plan")),
            },
            action: Action::Sql(sql),
        });
    }
    Ok(())
}

async fn terminate(c: &Client, ep: &Endpoint, b: &Blocker) -> Result<(), PgError> {
    tracing::warn!(side = %b.location, pid = b.pid, "terminating the session of a running apply (--force)");
    c.query_one("SELECT pg_terminate_backend($1)", &[&b.pid])
        .await
        .map_err(|e| {
            ep.query_error(
                &format!(
                    "terminating process {} (which uses {} {}); the role needs pg_signal_backend or superuser",
                    b.pid, b.kind, b.name
                ),
                &e,
            )
        })?;
    Ok(())
}

async fn wait_lock_released(req: &Request, ep: &Endpoint, c: &Client) -> Result<(), PgError> {
    let deadline = Instant::now() + FORCE_WAIT;
    loop {
        let holders = lock_holders(req, ep, c).await?;
        if holders.is_empty() {
            return Ok(());
        }
        if Instant::now() > deadline {
            return Err(PgError::Query {
                side: ep.side,
                message: format!(
                    "process {} still holds the advisory lock of plan {:?} after being terminated",
                    holders[0], req.plan_name
                ),
            });
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Drops slot `name`; idempotent. An active slot is an error naming its pid, unless `force`:
/// then its walsender is terminated (again, if it came back) until the drop succeeds.
async fn drop_slot(
    c: &Client,
    ep: &Endpoint,
    name: &str,
    force: bool,
    terminated: &mut Vec<Blocker>,
) -> Result<(), PgError> {
    let names = vec![name.to_string()];
    let deadline = Instant::now() + FORCE_WAIT;
    loop {
        let row = c
            .query_opt(SLOTS_SQL, &[&names])
            .await
            .map_err(|e| ep.query_error("reading pg_replication_slots", &e))?;
        let Some(row) = row else {
            return Ok(());
        };
        let active: Option<i32> = row.get(1);
        if let Some(pid) = active {
            if !force {
                return Err(PgError::Query {
                    side: ep.side,
                    message: format!(
                        "replication slot {name} is in use by process {pid} (a running apply); stop it, or pass --force"
                    ),
                });
            }
            if Instant::now() > deadline {
                return Err(PgError::Query {
                    side: ep.side,
                    message: format!(
                        "replication slot {name} is still in use by process {pid} after terminating it"
                    ),
                });
            }
            if !terminated.iter().any(|b| b.pid == pid) {
                let b = Blocker {
                    location: ep.side.into(),
                    kind: "replication slot".into(),
                    name: name.to_string(),
                    pid,
                };
                terminate(c, ep, &b).await?;
                terminated.push(b);
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
            continue;
        }
        match c
            .query("SELECT pg_drop_replication_slot($1)", &[&name])
            .await
        {
            Ok(_) => return Ok(()),
            Err(e) if e.code() == Some(&SqlState::UNDEFINED_OBJECT) => return Ok(()),
            // Taken again between the check and the drop: look again.
            Err(e) if e.code() == Some(&SqlState::OBJECT_IN_USE) && Instant::now() < deadline => {
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            Err(e) => {
                return Err(ep.query_error(&format!("dropping replication slot {name}"), &e));
            }
        }
    }
}

/// Disables pglogical subscription `$1` now (`immediate`: its apply worker is told to stop;
/// the call returns without waiting for it). Returns nothing of use.
const PGLOGICAL_DISABLE_SQL: &str = "SELECT pglogical.alter_subscription_disable($1, true)";

/// How many pglogical apply workers of subscription `$1` of this database run: their
/// `backend_type` is `pglogical apply <database oid>:<subscription id>`. One bigint.
const PGLOGICAL_APPLY_WORKERS_SQL: &str = "SELECT count(*) FROM pg_catalog.pg_stat_activity a
 WHERE a.backend_type = (SELECT format('pglogical apply %s:%s', d.oid, s.sub_id)
                           FROM pglogical.subscription s, pg_catalog.pg_database d
                          WHERE s.sub_name = $1 AND d.datname = pg_catalog.current_database())";

/// Drops `$1`, pgmove's pglogical subscription, if it still exists (its slot on the provider
/// goes too when the provider is reachable).
const PGLOGICAL_DROP_SQL: &str = "SELECT pglogical.drop_subscription($1, true)";

/// How long cleanup waits for a disabled subscription's apply worker to exit.
const PGLOGICAL_WORKER_WAIT: Duration = Duration::from_secs(30);

/// Drops pgmove's pglogical subscription `name` on the target: disabled first in a statement
/// of its own (committed), its apply worker waited for (up to [`PGLOGICAL_WORKER_WAIT`]), then
/// dropped, so `drop_subscription` has no worker left to wait for (see
/// [`Action::DropPglogicalSubscription`]). The same order cutover uses.
async fn drop_pglogical_subscription(c: &Client, ep: &Endpoint, name: &str) -> Result<(), PgError> {
    let what = format!("pglogical subscription {name}");
    c.execute(PGLOGICAL_DISABLE_SQL, &[&name])
        .await
        .map_err(|e| ep.query_error(&format!("disabling {what}"), &e))?;
    let deadline = Instant::now() + PGLOGICAL_WORKER_WAIT;
    loop {
        let running: i64 = c
            .query_one(PGLOGICAL_APPLY_WORKERS_SQL, &[&name])
            .await
            .map_err(|e| ep.query_error(&format!("reading the apply worker of {what}"), &e))?
            .get(0);
        if running == 0 {
            break;
        }
        if Instant::now() > deadline {
            return Err(PgError::Query {
                side: ep.side,
                message: format!(
                    "{what} is disabled but its apply worker still runs after {}s; dropping it now could wait forever. Run `pgmove cleanup` again, or look at the target's pg_stat_activity (backend_type 'pglogical apply ...') and the server log",
                    PGLOGICAL_WORKER_WAIT.as_secs()
                ),
            });
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    c.execute(PGLOGICAL_DROP_SQL, &[&name])
        .await
        .map_err(|e| ep.query_error(&format!("dropping {what}"), &e))?;
    Ok(())
}

/// Drops slot `name` of pgmove's pglogical subscription, dropped just before: waits (up to
/// [`FORCE_WAIT`]) for its walsender to let go, then [`drop_slot`]; idempotent.
async fn drop_released_slot(
    c: &Client,
    ep: &Endpoint,
    name: &str,
    force: bool,
    terminated: &mut Vec<Blocker>,
) -> Result<(), PgError> {
    let names = vec![name.to_string()];
    let deadline = Instant::now() + FORCE_WAIT;
    loop {
        let row = c
            .query_opt(SLOTS_SQL, &[&names])
            .await
            .map_err(|e| ep.query_error("reading pg_replication_slots", &e))?;
        let Some(row) = row else {
            return Ok(());
        };
        if row.get::<_, Option<i32>>(1).is_none() || Instant::now() > deadline {
            return drop_slot(c, ep, name, force, terminated).await;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// A path as one POSIX shell word.
pub(crate) fn shell_quote(p: &Path) -> String {
    let s = p.display().to_string();
    if s.chars()
        .all(|c| c.is_ascii_alphanumeric() || "/._-+:@".contains(c))
    {
        s
    } else {
        format!("'{}'", s.replace('\'', "'\\''"))
    }
}

impl Report {
    /// Whether there was nothing of the plan to drop.
    pub fn is_empty(&self) -> bool {
        self.artifacts.is_empty()
    }

    fn headline(&self) -> String {
        let n = self.artifacts.len();
        if self.dry_run {
            if !self.blockers.is_empty() && !self.force {
                format!("would drop {n} artifact(s), but an apply is running: cleanup refuses without --force (dry run: nothing dropped)")
            } else if n == 0 {
                "nothing to drop (dry run)".to_string()
            } else {
                format!("would drop {n} artifact(s) (dry run: nothing dropped)")
            }
        } else if n == 0 {
            "nothing to drop: no pgmove artifact of this plan on the source, the target or this host".to_string()
        } else {
            format!("dropped {n} artifact(s)")
        }
    }
}

impl Render for Report {
    /// For people.
    fn render_text(&self) -> String {
        let mut out = String::new();
        let _ = writeln!(
            out,
            "pgmove cleanup of plan {}: {}",
            self.plan,
            self.headline()
        );
        let table = |out: &mut String, title: &str, items: &[Artifact], with_sql: bool| {
            if items.is_empty() {
                return;
            }
            let _ = writeln!(out, "{title}");
            let kw = items.iter().map(|a| a.kind.len()).max().unwrap_or(0);
            for a in items {
                let detail = a
                    .detail
                    .as_ref()
                    .map(|d| format!("  ({d})"))
                    .unwrap_or_default();
                let _ = writeln!(
                    out,
                    "  {:<6}  {:<kw$}  {}{detail}",
                    a.location.to_string(),
                    a.kind,
                    a.name
                );
                if with_sql && !a.sql.is_empty() {
                    for line in a.sql.lines() {
                        let _ = writeln!(out, "  {:<6}  {:<kw$}    {line}", "", "");
                    }
                }
            }
        };
        if !self.terminated.is_empty() {
            let _ = writeln!(out, "terminated (--force):");
            for b in &self.terminated {
                let _ = writeln!(out, "  {}", b.terminated_line());
            }
        } else if !self.blockers.is_empty() {
            let _ = writeln!(out, "running apply:");
            for b in &self.blockers {
                let _ = writeln!(out, "  {b}");
            }
        }
        let title = if self.dry_run {
            "would drop:"
        } else {
            "dropped:"
        };
        table(&mut out, title, &self.artifacts, true);
        // A kept artifact's SQL is what someone else runs (the master user's DDL capture).
        table(&mut out, "kept:", &self.kept, true);
        table(
            &mut out,
            "not handled yet (left in place: pgmove did not record creating them; drop by hand if you do not need them):",
            &self.not_handled,
            true,
        );
        if let Some(e) = &self.error {
            let _ = writeln!(out, "stopped: {e}");
        }
        out
    }

    /// For tickets.
    fn render_markdown(&self) -> String {
        use crate::report::markdown::{cell, code};
        let mut out = String::new();
        let _ = writeln!(out, "# pgmove cleanup: plan {}\n", code(&self.plan));
        let _ = writeln!(out, "{}\n", self.headline());
        let blockers = if self.terminated.is_empty() {
            &self.blockers
        } else {
            &self.terminated
        };
        if !blockers.is_empty() {
            let title = if self.terminated.is_empty() {
                "Running apply"
            } else {
                "Terminated (--force)"
            };
            let _ = writeln!(out, "## {title}\n");
            for b in blockers {
                let line = if self.terminated.is_empty() {
                    b.to_string()
                } else {
                    b.terminated_line()
                };
                let _ = writeln!(out, "- {}", cell(&line));
            }
            out.push('\n');
        }
        let mut table = |title: &str, items: &[Artifact]| {
            if items.is_empty() {
                return;
            }
            let _ = writeln!(out, "## {title}\n");
            let _ = writeln!(out, "| side | kind | name | SQL | detail |");
            let _ = writeln!(out, "|---|---|---|---|---|");
            for a in items {
                let _ = writeln!(
                    out,
                    "| {} | {} | {} | {} | {} |",
                    a.location,
                    cell(&a.kind),
                    code(&a.name),
                    code(&a.sql),
                    cell(a.detail.as_deref().unwrap_or(""))
                );
            }
            out.push('\n');
        };
        table(
            if self.dry_run {
                "Would drop"
            } else {
                "Dropped"
            },
            &self.artifacts,
        );
        table("Kept", &self.kept);
        table("Not handled yet", &self.not_handled);
        if let Some(e) = &self.error {
            let _ = writeln!(out, "**Stopped:** {}", cell(e));
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn report() -> Report {
        Report {
            format_version: FORMAT_VERSION,
            plan: "shop".into(),
            dry_run: false,
            force: false,
            artifacts: vec![Artifact {
                location: Location::Source,
                kind: "replication slot".into(),
                name: "pgmove_shop".into(),
                sql: "SELECT pg_drop_replication_slot('pgmove_shop')".into(),
                detail: None,
            }],
            blockers: vec![],
            terminated: vec![],
            kept: vec![],
            not_handled: vec![],
            error: None,
        }
    }

    #[test]
    fn renders_every_format() {
        let r = report();
        let t = r.render_text();
        assert!(t.contains("dropped 1 artifact(s)"), "{t}");
        assert!(
            t.contains("SELECT pg_drop_replication_slot('pgmove_shop')"),
            "{t}"
        );
        let m = r.render_markdown();
        assert!(
            m.contains("| source | replication slot | `pgmove_shop` |"),
            "{m}"
        );
        let j: serde_json::Value = serde_json::from_str(&r.render_json()).expect("json");
        assert_eq!(j["artifacts"][0]["side"], "source");
        assert_eq!(j["artifacts"][0]["kind"], "replication slot");
    }

    #[test]
    fn markdown_keeps_hostile_names_and_details_in_their_cells() {
        let mut r = report();
        r.plan = "a`b".into();
        r.artifacts[0].name = "we`ird|slot".into();
        r.artifacts[0].detail = Some("line1\nline2 | *x*".into());
        let m = r.render_markdown();
        assert!(m.starts_with("# pgmove cleanup: plan ``a`b``\n"), "{m}");
        assert!(
            m.contains("| source | replication slot | ``we`ird\\|slot`` | `SELECT pg_drop_replication_slot('pgmove_shop')` | line1<br>line2 \\| \\*x\\* |\n"),
            "{m}"
        );
    }

    #[test]
    fn empty_report_says_nothing_to_drop() {
        let mut r = report();
        r.artifacts.clear();
        assert!(r.render_text().contains("nothing to drop"));
    }

    #[test]
    fn refusal_names_the_pid_and_force() {
        let e = CleanupError::Refused(vec![Blocker {
            location: Location::Source,
            kind: "replication slot".into(),
            name: "pgmove_shop".into(),
            pid: 4242,
        }]);
        let s = e.to_string();
        assert!(s.contains("process 4242"), "{s}");
        assert!(s.contains("--force"), "{s}");
    }

    #[test]
    fn shell_quote_quotes_paths() {
        assert_eq!(shell_quote(Path::new("/tmp/x y")), "'/tmp/x y'");
    }
}
