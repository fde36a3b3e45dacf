//! `pgmove cutover` and `pgmove cutover --dry-run`.

use std::io::{IsTerminal, Write};
use std::path::Path;

use super::{load_with_endpoints, report_failure, Failure, Global};
use crate::exit;
use crate::pg::Endpoint;
use crate::plan::{self, Plan};
use crate::progress::Progress;
use crate::report::{self, Format, To};
use crate::strategy::copy_cdc;

/// `pgmove cutover`.
pub async fn cutover(path: &Path, dry_run: bool, timeout: std::time::Duration, g: Global) -> u8 {
    let (plan, source, target) = match load_with_endpoints(path) {
        Ok(x) => x,
        Err(f) => return report_failure(&f),
    };
    if dry_run {
        return cutover_dry_run(&plan, &source, &target, g).await;
    }
    if !g.yes {
        if !std::io::stdin().is_terminal() {
            return report_failure(&Failure::input(
                "cutover fences writes on the source and asks for confirmation; pass --yes to run without a prompt",
            ));
        }
        eprint!(
            "Cut over plan {}: {} the source {} and make the target {} live? [y/N] ",
            plan.name,
            match plan.cutover.fence {
                plan::Fence::ReadOnly => "fence writes on",
                plan::Fence::None =>
                    "apply the last changes of (writes must already be stopped on)",
            },
            source.display(),
            target.display()
        );
        let _ = std::io::stderr().flush();
        let mut answer = String::new();
        if !(std::io::stdin().read_line(&mut answer).is_ok()
            && matches!(answer.trim(), "y" | "Y" | "yes"))
        {
            crate::logging::say("nothing done");
            return exit::FAILURE;
        }
    }
    let table_lsns = copy_cdc::table_lsns(&target, &plan.name)
        .await
        .unwrap_or_default();
    let cdc_job = crate::cdc::CdcJob::for_plan(&plan, &source, &target, table_lsns, false);
    let job = crate::cutover::CutoverJob {
        plan: plan.clone(),
        source,
        target,
        applier: crate::cutover::Applier::OwnIfIdle(Box::new(cdc_job)),
        timeout,
        progress: Progress::new(g.format != Format::Json),
    };
    match crate::cutover::run(&job).await {
        Ok(report) => print_cutover(&report, g),
        Err(crate::cutover::CutoverError::NotReady(m)) => report_failure(&Failure::input(m)),
        Err(e) => report_failure(&Failure::runtime(e)),
    }
}

/// Prints a cutover report; its exit code.
fn print_cutover(report: &crate::cutover::CutoverReport, g: Global) -> u8 {
    report::print(report, g.format, false, To::Stdout);
    if report.is_live() {
        exit::OK
    } else {
        if let Some(e) = &report.error {
            crate::logging::error(&e.to_string());
        }
        if report.differences {
            exit::DIFFERENCES
        } else {
            exit::FAILURE
        }
    }
}

/// `pgmove cutover --dry-run`.
async fn cutover_dry_run(plan: &Plan, source: &Endpoint, target: &Endpoint, g: Global) -> u8 {
    use crate::cutover::dryrun;
    let opts = dryrun::DryRunOptions::for_plan(plan, Progress::new(g.format != Format::Json));
    match dryrun::report(plan, source, target, opts).await {
        Ok(r) => {
            report::print(&r, g.format, false, To::Stdout);
            if r.ready() {
                exit::OK
            } else {
                exit::BAD_INPUT
            }
        }
        Err(e) => report_failure(&Failure::runtime(e)),
    }
}
