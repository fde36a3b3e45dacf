//! `pgmove verify`.

use std::path::Path;

use super::{load_with_endpoints, report_failure, Failure, Global};
use crate::exit;
use crate::plan;
use crate::progress::Progress;
use crate::report::{self, Format, To};

/// `pgmove verify`.
pub async fn verify(path: &Path, counts_only: bool, chunk_rows: Option<u64>, g: Global) -> u8 {
    let (plan, source, target) = match load_with_endpoints(path) {
        Ok(x) => x,
        Err(f) => return report_failure(&f),
    };
    let objects = plan.objects.clone();
    let level = if counts_only || plan.cutover.verify == plan::VerifyLevel::Counts {
        crate::verify::Level::Counts
    } else {
        crate::verify::Level::Checksums
    };
    let mut opts = crate::verify::VerifyOptions {
        level,
        schemas: plan.objects.schemas.clone(),
        include: std::sync::Arc::new(move |s: &str, t: &str| objects.includes(s, t)),
        jobs: plan.jobs as usize,
        large_objects: plan.objects.large_objects,
        progress: Progress::new(g.format != Format::Json),
        ..Default::default()
    }
    .with_plan(&plan);
    if let Some(c) = chunk_rows {
        opts.chunk_rows = c;
    }
    match crate::verify::verify(&source, &target, &opts).await {
        Ok(report) => {
            report::print(&report, g.format, false, To::Stdout);
            if report.is_identical() {
                exit::OK
            } else {
                exit::DIFFERENCES
            }
        }
        Err(e) => report_failure(&Failure::runtime(e)),
    }
}
