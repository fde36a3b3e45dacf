//! `pgmove cleanup`.

use std::path::Path;

use super::{load_with_endpoints, report_failure, Failure, Global};
use crate::exit;
use crate::report::{self, To};

/// `pgmove cleanup`.
pub async fn cleanup(
    path: &Path,
    dry_run: bool,
    force: bool,
    adopt_unrecorded: bool,
    g: Global,
) -> u8 {
    let (plan, source, target) = match load_with_endpoints(path) {
        Ok(x) => x,
        Err(f) => return report_failure(&f),
    };
    let mut req = crate::cleanup::Request::for_plan(&plan, dry_run, force);
    req.adopt_unrecorded = adopt_unrecorded;
    match crate::cleanup::cleanup(&req, &source, &target).await {
        Ok(report) => {
            report::print(&report, g.format, false, To::Stdout);
            if report.dry_run && !report.blockers.is_empty() && !force {
                exit::FAILURE
            } else {
                exit::OK
            }
        }
        Err(crate::cleanup::CleanupError::Partial(report)) => {
            report::print(&*report, g.format, false, To::Stdout);
            report_failure(&Failure::runtime(format!(
                "{}\n  {} artifact(s) dropped before that; run cleanup again once it is fixed",
                report.error.as_deref().unwrap_or("cleanup failed"),
                report.artifacts.len()
            )))
        }
        Err(e) => report_failure(&Failure::runtime(e)),
    }
}
