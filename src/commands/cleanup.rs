//! `pgmove cleanup`.

use std::path::Path;

use super::{load_with_endpoints, report_failure, Failure, Global};
use crate::exit;
use crate::report::Format;

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
    let render = |r: &crate::cleanup::Report| match g.format {
        Format::Json => println!("{}", r.render_json()),
        Format::Markdown => print!("{}", r.render_markdown()),
        Format::Text => print!("{}", r.render_text()),
    };
    match crate::cleanup::cleanup(&req, &source, &target).await {
        Ok(report) => {
            render(&report);
            if report.dry_run && !report.blockers.is_empty() && !force {
                exit::FAILURE
            } else {
                exit::OK
            }
        }
        Err(crate::cleanup::CleanupError::Partial(report)) => {
            render(&report);
            report_failure(&Failure::runtime(format!(
                "{}\n  {} artifact(s) dropped before that; run cleanup again once it is fixed",
                report.error.as_deref().unwrap_or("cleanup failed"),
                report.artifacts.len()
            )))
        }
        Err(e) => report_failure(&Failure::runtime(e)),
    }
}
