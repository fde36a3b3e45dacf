//! The online part of `pgmove apply` (copy-cdc): the load, then change capture until stopped,
//! cut over (`pgmove cutover`, or `cutover.mode: auto`), or caught up.

use std::path::Path;

use super::apply::{clients_used, confirm, create_roles, print_dry_run};
use super::{report_failure, Failure, Global, Prepared};
use crate::cdc::{Capture, CapturePolicy, CdcJob, StopSignal, Stopper};
use crate::exit;
use crate::pg::Endpoint;
use crate::plan::{self, Plan};
use crate::planner::{self, Strategy};
use crate::progress::Progress;
use crate::report::{self, Format, Summary, To};
use crate::strategy::copy_cdc;

/// How long an online apply runs.
#[derive(Clone, Copy, Debug, Default)]
pub struct Online {
    pub stop_after_load: bool,
    pub exit_when_caught_up: bool,
}

pub(super) async fn apply_copy_cdc(
    p: &Prepared,
    job: &copy_cdc::Job,
    path: &Path,
    dry_run: bool,
    online: Online,
    g: Global,
) -> u8 {
    if dry_run {
        return match copy_cdc::dry_run(job, &p.source_inv).await {
            Ok(lines) => print_dry_run(p, Strategy::CopyCdc.name(), lines, g).await,
            Err(e) => report_failure(&Failure::runtime(e)),
        };
    }
    match confirm(p, Strategy::CopyCdc, g) {
        Ok(true) => {}
        Ok(false) => {
            crate::logging::say("nothing done");
            return exit::FAILURE;
        }
        Err(f) => return report_failure(&f),
    }
    // A slot the source invalidated can never stream again: say so at once, never retry.
    if let Some(f) = slot_lost_failure(&p.source, &p.target, &job.slot, path, None).await {
        return report_failure(&f);
    }
    let roles = match create_roles(p, g).await {
        Ok(r) => r,
        Err(f) => return report_failure(&f),
    };
    let started = std::time::Instant::now();
    let loaded = copy_cdc::run(job, Progress::new(g.format != Format::Json)).await;
    let loaded = match loaded {
        Ok(o) => o,
        Err(e) => {
            let f = slot_lost_failure(&p.source, &p.target, &job.slot, path, Some(&e.to_string()))
                .await;
            return report_failure(&f.unwrap_or_else(|| Failure::runtime(e)));
        }
    };
    if online.stop_after_load {
        let secs = started.elapsed().as_secs_f64();
        let summary = Summary::line(
            format_args!(
                "loaded plan {} with copy-cdc in {:.1}s: {} chunk(s), {} rows, {} copied{}; the target matches the source as of LSN {} (slot dropped: --stop-after-load); next: pgmove verify {}",
                p.plan.name,
                secs,
                loaded.chunks_copied,
                loaded.rows,
                planner::bytes(loaded.bytes as i64),
                clients_used(&p.report.clients),
                loaded.consistent_lsn.as_deref().unwrap_or("?"),
                path.display()
            ),
            serde_json::json!({ "plan": p.plan.name, "strategy": "copy-cdc", "elapsed_secs": secs, "stopped_after_load": true, "outcome": loaded, "clients": p.report.clients }),
        );
        report::print(&summary, g.format, false, To::Stdout);
        return exit::OK;
    }
    // Ctrl-C and SIGTERM stop change capture cleanly from here on (the phase is `loaded`).
    let signal = StopSignal::install();
    // The plan's lock, held while change capture runs: `pgmove cutover` and `cleanup` see that
    // an apply is running.
    // (The snapshot LSNs of the tables, read meanwhile on a connection of their own.)
    let (lock, table_lsns) = tokio::join!(
        async {
            let s = crate::state::State::open(&p.target, &p.plan.name).await?;
            let _ = s
                .set_phase(copy_cdc::STRATEGY, crate::state::Phase::Replicating, None)
                .await;
            Ok::<_, crate::pg::PgError>(s)
        },
        copy_cdc::table_lsns(&p.target, &p.plan.name),
    );
    let lock = match lock {
        Ok(s) => s,
        Err(e) => return report_failure(&Failure::runtime(e)),
    };
    let table_lsns = match table_lsns {
        Ok(t) => t,
        Err(e) => return report_failure(&Failure::runtime(e)),
    };
    let cdc_job = CdcJob::for_plan(
        &p.plan,
        &p.source,
        &p.target,
        table_lsns,
        online.exit_when_caught_up,
    );
    // Change capture until stopped (Ctrl-C / SIGTERM), cut over, or caught up.
    let capture = Capture::start(cdc_job, CapturePolicy::apply(signal));
    crate::logging::say(&format!(
        "full load done (target consistent at {}); replicating changes from slot {} until stopped (Ctrl-C or SIGTERM)",
        loaded.consistent_lsn.as_deref().unwrap_or("?"),
        job.slot
    ));
    let stopper = capture.stopper();
    if p.plan.cutover.mode == plan::CutoverMode::Auto {
        tokio::spawn(auto_cutover(
            p.plan.clone(),
            p.source.clone(),
            p.target.clone(),
            stopper.clone(),
            g,
        ));
    }
    let replicated = capture.wait().await;
    match replicated.map(|r| (loaded, r)) {
        Ok((outcome, cdc)) => {
            let secs = started.elapsed().as_secs_f64();
            let summary = Summary::line(
                format_args!(
                    "plan {} with copy-cdc, {:.1}s: {} chunk(s), {} rows, {} copied{}{}; snapshot at LSN {}; then {} transaction(s), {} change(s) replicated, applied up to {}; next: pgmove verify {}",
                    p.plan.name,
                    secs,
                    outcome.chunks_copied,
                    outcome.rows,
                    planner::bytes(outcome.bytes as i64),
                    if outcome.chunks_already_done > 0 {
                        format!(" ({} chunk(s) done by an earlier run)", outcome.chunks_already_done)
                    } else {
                        String::new()
                    },
                    clients_used(&p.report.clients),
                    outcome.consistent_lsn.as_deref().unwrap_or("?"),
                    cdc.transactions,
                    cdc.changes,
                    cdc.applied_lsn,
                    path.display()
                ),
                serde_json::json!({ "plan": p.plan.name, "strategy": "copy-cdc", "elapsed_secs": secs, "outcome": outcome, "cdc": cdc, "roles": roles, "clients": p.report.clients }),
            );
            report::print(&summary, g.format, false, To::Stdout);
            if stopper.is_cut_over() {
                crate::logging::say(&format!(
                    "plan {} is cut over: the target is live; next: pgmove cleanup {}",
                    p.plan.name,
                    path.display()
                ));
            }
            exit::OK
        }
        Err(e) => {
            // Recorded, so `status` reports the migration failed (exit 5) once this ends.
            let _ = lock
                .set_phase(
                    copy_cdc::STRATEGY,
                    crate::state::Phase::Failed,
                    Some(&e.to_string()),
                )
                .await;
            let f = slot_lost_failure(&p.source, &p.target, &job.slot, path, Some(&e.to_string()))
                .await;
            report_failure(&f.unwrap_or_else(|| Failure::runtime(e)))
        }
    }
}

/// When the source lost the plan's slot: the failure that says so, why, and the way out
/// (exit 1), with the error it caused, if any.
async fn slot_lost_failure(
    source: &Endpoint,
    target: &Endpoint,
    slot: &str,
    path: &Path,
    error: Option<&str>,
) -> Option<Failure> {
    let lost = crate::cdc::slot::lost_quietly(source, slot).await?;
    let mut message = lost.explain(&path.display().to_string(), target.info.dbname());
    if let Some(e) = error {
        message.push_str(&format!("\n  (the error it caused: {e})"));
    }
    Some(Failure::runtime(message))
}

/// `cutover.mode: auto`: cuts over from inside apply as soon as change capture runs and the
/// lag allows; a failed attempt leaves replication running (the report says why).
async fn auto_cutover(plan: Plan, source: Endpoint, target: Endpoint, stopper: Stopper, g: Global) {
    loop {
        match crate::cdc::applied_lsn(&target, &plan.name).await {
            Ok(Some(_)) => break,
            _ => tokio::time::sleep(std::time::Duration::from_millis(500)).await,
        }
    }
    let job = crate::cutover::CutoverJob {
        plan,
        source,
        target,
        applier: crate::cutover::Applier::Running,
        timeout: std::time::Duration::from_secs(365 * 24 * 3600),
        progress: Progress::new(g.format != Format::Json),
    };
    let result = crate::cutover::run(&job).await;
    if result.as_ref().is_ok_and(|r| r.is_live()) {
        // The target is live: change capture stops now (it would see the cutover anyway).
        stopper.stop_cut_over();
    }
    match result {
        Ok(report) if report.is_live() => report::print(&report, g.format, false, To::Stderr),
        Ok(report) => {
            report::print(&report, Format::Text, false, To::Stderr);
            tracing::error!(
                "automatic cutover failed; replication goes on (run pgmove cutover to retry)"
            );
        }
        Err(e) => {
            tracing::error!(error = %e, "automatic cutover could not start; replication goes on")
        }
    }
}

/// `pgmove apply` of strategy pglogical: the schema, the nodes, sets and subscription, the
/// initial sync and post-data; returns once synced and replicating (replication goes on
/// inside the servers), or with `--exit-when-caught-up` once the subscription has also
/// confirmed the source's WAL position as of then. `--stop-after-load` is refused: pglogical
/// replicates inside the servers whatever pgmove does, so there is no load without
/// replication to stop after.
pub(super) async fn apply_pglogical(
    p: &Prepared,
    base: crate::strategy::dump_restore::Job,
    path: &Path,
    dry_run: bool,
    online: Online,
    g: Global,
) -> u8 {
    use crate::strategy::pglogical;
    if online.stop_after_load {
        return report_failure(&Failure::input(
            "--stop-after-load does not apply to strategy pglogical: its replication runs inside the servers from the initial sync on; run pgmove apply without it (it returns once synced and replicating), and pgmove cleanup to stop and remove the replication",
        ));
    }
    let job = match pglogical::Job::for_plan(&p.plan, base) {
        Ok(j) => j,
        Err(e) => return report_failure(&Failure::input(e)),
    };
    if dry_run {
        return match pglogical::dry_run(&job, &p.source_inv).await {
            Ok(lines) => print_dry_run(p, Strategy::Pglogical.name(), lines, g).await,
            Err(e) => report_failure(&Failure::runtime(e)),
        };
    }
    match confirm(p, Strategy::Pglogical, g) {
        Ok(true) => {}
        Ok(false) => {
            crate::logging::say("nothing done");
            return exit::FAILURE;
        }
        Err(f) => return report_failure(&f),
    }
    let roles = match create_roles(p, g).await {
        Ok(r) => r,
        Err(f) => return report_failure(&f),
    };
    if let Err(e) = crate::cdc::ddl::guard::install(&p.source, &p.plan).await {
        return report_failure(&Failure::runtime(e));
    }
    let started = std::time::Instant::now();
    let outcome = match pglogical::run(&job, Progress::new(g.format != Format::Json)).await {
        Ok(o) => o,
        Err(e) => return report_failure(&Failure::runtime(e)),
    };
    if outcome.cut_over {
        crate::logging::say(&format!(
            "plan {} is cut over: the target is live and apply has nothing to do; next: pgmove cleanup {}",
            p.plan.name,
            path.display()
        ));
        return exit::OK;
    }
    let caught_up = if online.exit_when_caught_up {
        match pglogical::sync::wait_caught_up(&job).await {
            Ok(lsn) => Some(lsn.to_string()),
            Err(e) => return report_failure(&Failure::runtime(e)),
        }
    } else {
        None
    };
    let secs = started.elapsed().as_secs_f64();
    let mut notes = Vec::new();
    if !outcome.insert_only.is_empty() {
        notes.push(format!(
            "{} table(s) without a key replicate inserts and truncates only",
            outcome.insert_only.len()
        ));
    }
    if !outcome.excluded.is_empty() {
        notes.push(format!(
            "{} table(s) without a key excluded (schema only: {})",
            outcome.excluded.len(),
            outcome.excluded.join(", ")
        ));
    }
    if !outcome.unlogged.is_empty() {
        notes.push(format!(
            "{} unlogged table(s) copied once, not replicated ({})",
            outcome.unlogged.len(),
            outcome.unlogged.join(", ")
        ));
    }
    let file = path.display();
    let summary = Summary::line(
        format_args!(
            "applied plan {} with pglogical in {:.1}s: {} table(s) and {} sequence(s) in sets {} and {}, initial sync done{}{}{}{}; replication continues inside the servers (pglogical subscription {} on the target); next: pgmove status {file}, then pgmove cutover {file}",
            p.plan.name,
            secs,
            outcome.tables_replicated,
            outcome.sequences,
            job.names.replication_set,
            job.names.insert_set,
            if outcome.steps_already_done.is_empty() {
                String::new()
            } else {
                format!(" (steps done by an earlier run: {})", outcome.steps_already_done.join(", "))
            },
            caught_up
                .as_deref()
                .map(|l| format!("; caught up with the source at LSN {l}"))
                .unwrap_or_default(),
            if notes.is_empty() {
                String::new()
            } else {
                format!("; {}", notes.join("; "))
            },
            clients_used(&p.report.clients),
            outcome.subscription,
        ),
        serde_json::json!({ "plan": p.plan.name, "strategy": "pglogical", "elapsed_secs": secs, "outcome": outcome, "caught_up_lsn": caught_up, "roles": roles, "clients": p.report.clients }),
    );
    report::print(&summary, g.format, false, To::Stdout);
    exit::OK
}
