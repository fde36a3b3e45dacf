//! Strategy pglogical: pgmove restores the schema (pre-data, then the keys pglogical applies
//! updates and deletes by), creates the provider node and the paired replication sets `NAME`
//! (updates and deletes) and `iNAME` (inserts and truncates) on the source, the subscriber node
//! and a subscription on the target, waits for pglogical's initial sync of every table, then
//! restores post-data and analyzes. Replication then runs inside the servers until cutover.
//!
//! Steps ([`STEPS`], each recorded in `pgmove.steps` when it finishes and skipped by a rerun):
//! `state`, `dump` (`pg_dump --schema-only`; the pglogical extension, its schema and their
//! comments are left out of the restore: the target gets the extension from pgmove), `pre-data`
//! (one transaction), `keys` ([`keys`]: primary keys and replica-identity indexes, each item
//! recorded), `provider` and `subscription` ([`setup`]: each object claimed before and
//! recorded after, each server's in one transaction), `sync` ([`sync`]: pglogical copies; a
//! kill of pgmove does not stop it, a rerun waits again), `post-data` (the other indexes,
//! constraints, triggers; materialized views refreshed), `analyze`, `replicating`.
//!
//! Which table goes in which set: [`members`]. pglogical 2.4 refuses a table without a
//! replica-identity *index* in a set that replicates updates or deletes, REPLICA IDENTITY FULL
//! included (`replication_set_add_table` checks `rd_replidindex`), so
//! `cdc.tables_without_key: replica-identity-full` is refused by the plan's validation.

mod dryrun;
pub mod keys;
pub mod members;
pub mod setup;
mod steps;
pub mod sync;

pub use self::dryrun::dry_run;
pub use self::steps::{plan_steps, STEPS};

use crate::inspect::{self, Inventory};
use crate::matviews::refresh_populated_matviews;
use crate::pg::{ConnInfo, PgError};
use crate::pglogical::dsn::Conninfo;
use crate::pglogical::{catalog, EXTENSION};
use crate::plan::names::PglogicalNames;
use crate::plan::{Objects, Plan, TablesWithoutKey};
use crate::progress::Progress;
use crate::state::{Phase, State};
use crate::strategy::copy_cdc;
use crate::strategy::dump_restore::toc::Entry;
use crate::strategy::dump_restore::{self, DumpRestoreError, Restorer};
use crate::strategy::steps as step_name;
use crate::tools;

/// The name stored in `pgmove.runs.strategy`.
pub const STRATEGY: &str = "pglogical";

#[derive(Debug, thiserror::Error)]
pub enum PglogicalError {
    #[error(transparent)]
    Restore(#[from] DumpRestoreError),
    #[error(transparent)]
    Pg(#[from] PgError),
    #[error(transparent)]
    Inspect(#[from] inspect::InspectError),
    #[error(transparent)]
    Tool(#[from] tools::ToolError),
    #[error(transparent)]
    Members(#[from] members::MembersError),
    #[error(transparent)]
    Copy(#[from] crate::strategy::copy_cdc::CopyError),
    /// An object pgmove will not use.
    #[error("{0}")]
    Refused(String),
    /// Creating the nodes, sets or subscription failed (secrets taken out).
    #[error("{0}")]
    Setup(String),
    /// The subscription does not sync or replicate.
    #[error("{0}")]
    Sync(String),
}

/// What apply needs besides the dump-restore job (connections, objects, jobs, dump directory;
/// `schema_only` is set).
#[derive(Clone, Debug)]
pub struct Job {
    pub base: dump_restore::Job,
    pub names: PglogicalNames,
    /// How the target server reaches the source (with the source's password).
    pub provider_dsn: Conninfo,
    /// How the target server reaches itself, for pglogical's initial copy (with the target's
    /// password: stored in the target's own `pglogical.node_interface`).
    pub subscriber_dsn: Conninfo,
    pub objects: Objects,
    pub tables_without_key: TablesWithoutKey,
}

impl Job {
    /// The job for `plan`: the provider DSN is `pglogical.provider_dsn` (with the source's
    /// password from the plan's secret) or the source's own DSN.
    pub fn for_plan(plan: &Plan, base: dump_restore::Job) -> Result<Job, PgError> {
        let source_password = base.source.info.password.clone();
        let provider_dsn = match &plan.pglogical.provider_dsn {
            Some(dsn) => {
                let info = ConnInfo::parse(dsn).map_err(|e| PgError::Dsn {
                    side: crate::pg::Side::Source,
                    message: format!("pglogical.provider_dsn: {}", e.message),
                })?;
                Conninfo::of(&info, source_password.as_ref())
            }
            None => Conninfo::of(&base.source.info, None),
        };
        Ok(Job {
            subscriber_dsn: Conninfo::of(&base.target.info, None),
            provider_dsn,
            names: plan.pglogical_names(),
            objects: plan.objects.clone(),
            tables_without_key: plan.cdc.tables_without_key,
            base,
        })
    }
}

/// What apply did.
#[derive(Clone, Debug, Default, serde::Serialize)]
pub struct Outcome {
    /// Tables in both sets, in the insert set only, in neither (keyless, `exclude`), and the
    /// unlogged ones (copied once after the sync, not replicated).
    pub tables_replicated: usize,
    pub insert_only: Vec<String>,
    pub excluded: Vec<String>,
    pub unlogged: Vec<String>,
    pub sequences: usize,
    /// Steps an earlier run had finished.
    pub steps_already_done: Vec<String>,
    pub sync_secs: f64,
    pub subscription: String,
    /// The subscription's slot on the source (and replication origin on the target).
    pub slot: Option<String>,
    /// The plan was cut over already: apply did nothing.
    pub cut_over: bool,
}

/// Whether a dump entry is the pglogical extension or its schema (or their comment or
/// privileges): never restored, the target gets the extension from pgmove.
pub fn is_pglogical_entry(e: &Entry) -> bool {
    let own =
        |tag: &str| tag == format!("EXTENSION {EXTENSION}") || tag == format!("SCHEMA {EXTENSION}");
    match e.kind.as_str() {
        "EXTENSION" | "SCHEMA" => e.tag == EXTENSION,
        "COMMENT" | "ACL" => own(&e.tag),
        _ => e.schema == EXTENSION,
    }
}

/// Runs apply to the end (synced and replicating), resuming what an earlier run left.
pub async fn run(job: &Job, progress: Progress) -> Result<Outcome, PglogicalError> {
    let base = &job.base;
    let source_inv = inspect::inspect(&base.source).await?;
    let major = (source_inv.server.version_num / 10000).max(0) as u32;
    let (pg_dump, pg_restore) = tools::find_dump_clients(base.bin_dir.as_deref(), major)?;
    let psql = tools::find("psql", base.bin_dir.as_deref(), 0)?;
    let state = State::open(&base.target, &base.plan_name).await?;
    let run = crate::state::runs::read(&state.client, &base.target, &base.plan_name).await?;
    if run.is_some_and(|r| r.phase == Phase::Live) {
        // The target is live: nothing to create again (cleanup removes the rest).
        return Ok(Outcome {
            cut_over: true,
            subscription: job.names.subscription.clone(),
            ..Outcome::default()
        });
    }
    state.finish_step(step_name::STATE, None).await?;
    let tools = Tools {
        pg_dump,
        pg_restore,
        psql,
    };
    let result = run_steps(job, &state, &source_inv, &tools, progress).await;
    match &result {
        Ok(_) => state.set_phase(STRATEGY, Phase::Replicating, None).await?,
        Err(e) => {
            let _ = state
                .set_phase(STRATEGY, Phase::Failed, Some(&e.to_string()))
                .await;
        }
    }
    result
}

struct Tools {
    pg_dump: tools::Tool,
    pg_restore: tools::Tool,
    psql: tools::Tool,
}

async fn run_steps(
    job: &Job,
    state: &State<'_>,
    source_inv: &Inventory,
    tools: &Tools,
    progress: Progress,
) -> Result<Outcome, PglogicalError> {
    let base = &job.base;
    let m = members::members(source_inv, &job.objects, job.tables_without_key)?;
    let mut outcome = Outcome {
        tables_replicated: m.tables().count(),
        insert_only: m.insert_only.iter().map(shown).collect(),
        excluded: m.excluded.iter().map(shown).collect(),
        unlogged: m.unlogged.iter().map(shown).collect(),
        sequences: m.sequences.len(),
        subscription: job.names.subscription.clone(),
        ..Outcome::default()
    };
    for t in &outcome.excluded {
        tracing::warn!(table = %t, "no primary key or replica-identity index and cdc.tables_without_key is exclude: its schema moves, its rows are neither copied nor replicated");
    }
    for t in &outcome.unlogged {
        tracing::warn!(table = %t, "unlogged: pglogical cannot replicate it; its rows are copied once after the sync, later changes are not replicated");
    }
    for t in &outcome.insert_only {
        tracing::info!(table = %t, "no primary key or replica-identity index: in the insert set only (inserts and truncates replicate; updates and deletes run on the source but are not replicated)");
    }
    let done =
        |step: &str, outcome: &mut Outcome| outcome.steps_already_done.push(step.to_string());
    if state.step(step_name::REPLICATING).await?.is_some() {
        done(step_name::REPLICATING, &mut outcome);
        outcome.slot = slot_name(job).await?;
        return Ok(outcome);
    }
    let mut restorer = Restorer::dump(
        base,
        state,
        &tools.pg_dump,
        &tools.pg_restore,
        &tools.psql,
        progress,
        STRATEGY,
        None,
    )
    .await?;
    restorer.leave_out(is_pglogical_entry);
    state.set_phase(STRATEGY, Phase::Schema, None).await?;
    restorer.pre_data(state).await?;
    if state.step(step_name::KEYS).await?.is_none() {
        restore_keys(base, state, &mut restorer, tools, progress).await?;
        state.finish_step(step_name::KEYS, None).await?;
    } else {
        done(step_name::KEYS, &mut outcome);
    }
    if state.step(step_name::PROVIDER).await?.is_none() {
        setup::ensure_provider(job, state, &m).await?;
        state.finish_step(step_name::PROVIDER, None).await?;
    } else {
        done(step_name::PROVIDER, &mut outcome);
    }
    if state.step(step_name::SUBSCRIPTION).await?.is_none() {
        setup::ensure_subscription(job, state).await?;
        state.finish_step(step_name::SUBSCRIPTION, None).await?;
    } else {
        done(step_name::SUBSCRIPTION, &mut outcome);
    }
    if state.step(step_name::SYNC).await?.is_none() {
        state.set_phase(STRATEGY, Phase::Copy, None).await?;
        outcome.sync_secs = sync::wait_synced(job, m.tables().count() as u64, progress).await?;
        sync::check_copied(job, &m.tables().collect::<Vec<_>>()).await?;
        state.finish_step(step_name::SYNC, None).await?;
    } else {
        done(step_name::SYNC, &mut outcome);
    }
    if state.step(step_name::POST_DATA).await?.is_none() {
        state.set_phase(STRATEGY, Phase::PostData, None).await?;
        copy_unlogged(base, source_inv, &m.unlogged).await?;
        // Extension configuration tables (PostGIS spatial_ref_sys, ...): the rows pg_dump would
        // dump, once, as copy-cdc copies them (the extension's own rows come with CREATE
        // EXTENSION on the target).
        let configs: Vec<_> = copy_cdc::config_tables(&base.source, source_inv)
            .await?
            .into_iter()
            .filter(|c| job.objects.includes(&c.schema, &c.table))
            .collect();
        copy_cdc::copy_config_rows(base, None, &configs).await?;
        // Large objects (pglogical does not carry them): those the target lacks, with their
        // owners, grants and comments; cutover copies the ones created after this.
        if base.large_objects {
            copy_cdc::copy_large_objects(base).await?;
        }
        restorer.refresh_done(state).await?;
        restorer.post_data().await?;
        let source = base.source.connect().await?;
        let target = base.target.connect().await?;
        refresh_populated_matviews(&base.source, &source, &base.target, &target, |s, v| {
            job.objects.includes(s, v)
        })
        .await?;
        state.finish_step(step_name::POST_DATA, None).await?;
    } else {
        done(step_name::POST_DATA, &mut outcome);
    }
    // VACUUM too: it sets the visibility map of the freshly copied tables.
    dump_restore::analyze(base, state, progress, STRATEGY, true).await?;
    sync::wait_replicating(job).await?;
    outcome.slot = slot_name(job).await?;
    state
        .finish_step(step_name::REPLICATING, outcome.slot.as_deref())
        .await?;
    restorer.remove_dump().await;
    Ok(outcome)
}

/// Copies each of `tables` (unlogged) once from the source, in one target transaction per
/// table that empties it first (so a rerun copies it again whole): `COPY ... TO STDOUT` on the
/// source streamed into `COPY ... FROM STDIN` on the target, in text format.
async fn copy_unlogged(
    base: &dump_restore::Job,
    inv: &Inventory,
    tables: &[crate::inspect::RelName],
) -> Result<(), PglogicalError> {
    use futures_util::{SinkExt, StreamExt};
    if tables.is_empty() {
        return Ok(());
    }
    let source = base.source.connect().await?;
    let mut target = base.target.connect().await?;
    for rel in tables {
        let name = crate::pg::quote::qualified(&rel.schema, &rel.name);
        let what = |step: &str| format!("{step} of unlogged table {}", shown(rel));
        let cols: Vec<String> = inv
            .table(&rel.schema, &rel.name)
            .map(|t| {
                t.columns
                    .iter()
                    .filter(|c| !c.generated)
                    .map(|c| crate::pg::quote::ident(&c.name))
                    .collect()
            })
            .unwrap_or_default();
        if cols.is_empty() {
            continue;
        }
        let cols = cols.join(", ");
        let tx = target
            .transaction()
            .await
            .map_err(|e| base.target.query_error("BEGIN", &e))?;
        tx.batch_execute(&format!("TRUNCATE ONLY {name}"))
            .await
            .map_err(|e| base.target.query_error(&what("TRUNCATE"), &e))?;
        let out = source
            .copy_out(format!("COPY (SELECT {cols} FROM ONLY {name}) TO STDOUT").as_str())
            .await
            .map_err(|e| base.source.query_error(&what("COPY TO"), &e))?;
        let sink = tx
            .copy_in::<_, bytes::Bytes>(format!("COPY {name} ({cols}) FROM STDIN").as_str())
            .await
            .map_err(|e| base.target.query_error(&what("COPY FROM"), &e))?;
        futures_util::pin_mut!(out);
        futures_util::pin_mut!(sink);
        while let Some(data) = out.next().await {
            let data = data.map_err(|e| base.source.query_error(&what("COPY TO"), &e))?;
            sink.send(data)
                .await
                .map_err(|e| base.target.query_error(&what("COPY FROM"), &e))?;
        }
        let rows = sink
            .finish()
            .await
            .map_err(|e| base.target.query_error(&what("COPY FROM"), &e))?;
        tx.commit()
            .await
            .map_err(|e| base.target.query_error("COMMIT", &e))?;
        tracing::info!(table = %shown(rel), rows, "unlogged table copied once (not replicated)");
    }
    Ok(())
}

/// `schema.table` as messages show it.
fn shown(t: &crate::inspect::RelName) -> String {
    format!("{}.{}", t.schema, t.name)
}

/// The subscription's slot name on the source, if the subscription exists.
async fn slot_name(job: &Job) -> Result<Option<String>, PgError> {
    let t = job.base.target.connect().await?;
    Ok(
        catalog::subscription(&t, &job.base.target, &job.names.subscription)
            .await?
            .map(|s| s.slot_name),
    )
}

/// At most this many key indexes built in one transaction by step `keys` (its locks, two per
/// index, must fit the server's lock table; the same bound as dump-restore's batches).
const KEY_BATCH: usize = 100;

/// Step `keys`: the post-data entries of primary keys and replica-identity indexes, restored
/// in order up to [`KEY_BATCH`] per transaction, each with its progress row (so post-data skips
/// them later). One `pg_restore | psql` per key cost O(tables) each (pg_restore reads the
/// dump's whole TOC), O(tables²) in all. A failed batch rolled back whole; its keys are then
/// restored one by one, so the error names the failing one.
async fn restore_keys(
    base: &dump_restore::Job,
    state: &State<'_>,
    restorer: &mut Restorer<'_>,
    tools: &Tools,
    progress: Progress,
) -> Result<(), PglogicalError> {
    let key_indexes = keys::key_indexes(&base.source).await?;
    let entries = keys::key_entries(&restorer.pending_index_entries(), &key_indexes);
    let step = progress.step("keys", entries.len() as u64);
    let prefix = dump_restore::index_session::prefix(&base.target).await?;
    for batch in entries.chunks(KEY_BATCH) {
        let items: Vec<&Entry> = batch.iter().collect();
        let what = match batch {
            [one] => one.object(),
            many => format!("{} primary keys and replica-identity indexes", many.len()),
        };
        dump_restore::restore_batch(
            base,
            &tools.pg_restore,
            &tools.psql,
            &restorer.dir,
            &items,
            &prefix,
            &what,
        )
        .await?;
        for e in batch {
            step.item_done(&e.object());
        }
    }
    restorer.refresh_done(state).await?;
    step.finish("primary keys and replica-identity indexes restored");
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::strategy::dump_restore::toc;

    #[test]
    fn the_pglogical_extension_and_its_schema_are_left_out() {
        let listing = "\
7; 2615 16385 SCHEMA - pglogical postgres
2; 3079 16386 EXTENSION - pglogical 
3440; 0 0 COMMENT - EXTENSION pglogical 
8; 2615 16390 SCHEMA - sales postgres
3; 3079 16391 EXTENSION - postgis 
229; 1259 16553 TABLE public k postgres
";
        let kept: Vec<String> = toc::parse(listing)
            .expect("toc")
            .into_iter()
            .filter(|e| !is_pglogical_entry(e))
            .map(|e| e.tag)
            .collect();
        assert_eq!(kept, ["sales", "postgis", "k"]);
    }
}
