//! The online part of `pgmove apply` (copy-cdc): the load, then change capture until stopped,
//! cut over (`pgmove cutover`, or `cutover.mode: auto`), or caught up.

use std::path::Path;

use super::apply::{confirm, create_roles, print_dry_run};
use super::{report_failure, Failure, Global, Prepared};
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
            eprintln!("nothing done");
            return exit::FAILURE;
        }
        Err(f) => return report_failure(&f),
    }
    // A slot the source invalidated can never stream again: say so at once, never retry.
    if let Some(f) = slot_lost_failure(&p.source, &p.target, &job.slot, path, None).await {
        return report_failure(&f);
    }
    if let Err(f) = create_roles(p, g).await {
        return report_failure(&f);
    }
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
        println!(
            "loaded plan {} with copy-cdc in {:.1}s: {} chunk(s), {} rows, {} copied; the target matches the source as of LSN {} (slot dropped: --stop-after-load); next: pgmove verify {}",
            p.plan.name,
            started.elapsed().as_secs_f64(),
            loaded.chunks_copied,
            loaded.rows,
            planner::bytes(loaded.bytes as i64),
            loaded.consistent_lsn.as_deref().unwrap_or("?"),
            path.display()
        );
        return exit::OK;
    }
    // Change capture until stopped (Ctrl-C / SIGTERM) or cut over.
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let stop_tx = std::sync::Arc::new(stop_tx);
    {
        let stop_tx = stop_tx.clone();
        tokio::spawn(async move {
            wait_for_stop_signal().await;
            let _ = stop_tx.send(true);
        });
    }
    // The plan's lock, held while change capture runs: `pgmove cutover` and `cleanup` see that
    // an apply is running.
    let lock = match crate::state::State::open(&p.target, &p.plan.name).await {
        Ok(s) => {
            let _ = s
                .set_phase(copy_cdc::STRATEGY, crate::state::Phase::Replicating, None)
                .await;
            s
        }
        Err(e) => return report_failure(&Failure::runtime(e)),
    };
    let cut_over = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    tokio::spawn(watch_cutover(
        p.target.clone(),
        p.plan.name.clone(),
        stop_tx.clone(),
        cut_over.clone(),
    ));
    if p.plan.cutover.mode == plan::CutoverMode::Auto {
        tokio::spawn(auto_cutover(
            p.plan.clone(),
            p.source.clone(),
            p.target.clone(),
            g,
        ));
    }
    let table_lsns = match copy_cdc::table_lsns(&p.target, &p.plan.name).await {
        Ok(t) => t,
        Err(e) => return report_failure(&Failure::runtime(e)),
    };
    let cdc_job = crate::cdc::run::CdcJob {
        plan_name: p.plan.name.clone(),
        source: p.source.clone(),
        target: p.target.clone(),
        slot: job.slot.clone(),
        publication: job.publication.clone(),
        table_lsns,
        batch_changes: 5000,
        memory_limit: usize::try_from(p.plan.cdc.memory_limit).unwrap_or(usize::MAX),
        exit_when_caught_up: online.exit_when_caught_up,
        ddl: crate::cdc::run::plan_ddl(&p.plan),
    };
    eprintln!(
        "full load done (target consistent at {}); replicating changes from slot {} until stopped (Ctrl-C or SIGTERM)",
        loaded.consistent_lsn.as_deref().unwrap_or("?"),
        job.slot
    );
    let replicated = crate::cdc::retry::run(
        &cdc_job,
        stop_rx,
        &crate::cdc::retry::RetryPolicy::default(),
    )
    .await;
    match replicated.map(|r| (loaded, r)) {
        Ok((outcome, cdc)) => {
            let secs = started.elapsed().as_secs_f64();
            let summary = Summary::line(
                format_args!(
                    "plan {} with copy-cdc, {:.1}s: {} chunk(s), {} rows, {} copied{}; snapshot at LSN {}; then {} transaction(s), {} change(s) replicated, applied up to {}; next: pgmove verify {}",
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
                    outcome.consistent_lsn.as_deref().unwrap_or("?"),
                    cdc.transactions,
                    cdc.changes,
                    cdc.applied_lsn,
                    path.display()
                ),
                serde_json::json!({ "plan": p.plan.name, "strategy": "copy-cdc", "elapsed_secs": secs, "outcome": outcome, "cdc": cdc }),
            );
            report::print(&summary, g.format, false, To::Stdout);
            if cut_over.load(std::sync::atomic::Ordering::SeqCst) {
                eprintln!(
                    "plan {} is cut over: the target is live; next: pgmove cleanup {}",
                    p.plan.name,
                    path.display()
                );
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

/// Returns on Ctrl-C or SIGTERM.
async fn wait_for_stop_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = tokio::signal::ctrl_c() => {}
                    _ = term.recv() => {}
                }
            }
            Err(_) => {
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}

/// The change-capture job of a plan.
pub(super) fn cdc_job(
    plan: &Plan,
    source: &Endpoint,
    target: &Endpoint,
    table_lsns: std::collections::HashMap<(String, String), crate::pg::Lsn>,
    exit_when_caught_up: bool,
) -> crate::cdc::run::CdcJob {
    crate::cdc::run::CdcJob {
        plan_name: plan.name.clone(),
        source: source.clone(),
        target: target.clone(),
        slot: plan.slot_name(),
        publication: plan.publication_name(),
        table_lsns,
        batch_changes: 5000,
        memory_limit: usize::try_from(plan.cdc.memory_limit).unwrap_or(usize::MAX),
        exit_when_caught_up,
        ddl: crate::cdc::run::plan_ddl(plan),
    }
}

/// Stops change capture (through `stop`) once `pgmove.cutover` says the plan is cut over.
async fn watch_cutover(
    target: Endpoint,
    plan: String,
    stop: std::sync::Arc<tokio::sync::watch::Sender<bool>>,
    cut_over: std::sync::Arc<std::sync::atomic::AtomicBool>,
) {
    let mut client = None;
    loop {
        tokio::time::sleep(std::time::Duration::from_millis(300)).await;
        if *stop.borrow() {
            return;
        }
        if client.is_none() {
            client = target.connect().await.ok();
        }
        let Some(c) = client.as_ref() else { continue };
        match crate::state::cutover::state(c, &plan).await {
            Ok(Some(crate::state::CutoverState::Done)) => {
                tracing::info!("cutover done: change capture stops");
                cut_over.store(true, std::sync::atomic::Ordering::SeqCst);
                let _ = stop.send(true);
                return;
            }
            Ok(_) => {}
            Err(_) => client = None,
        }
    }
}

/// `cutover.mode: auto`: cuts over from inside apply as soon as change capture runs and the
/// lag allows; a failed attempt leaves replication running (the report says why).
async fn auto_cutover(plan: Plan, source: Endpoint, target: Endpoint, g: Global) {
    loop {
        match crate::cdc::run::applied_lsn(&target, &plan.name).await {
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
    match crate::cutover::run(&job).await {
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
