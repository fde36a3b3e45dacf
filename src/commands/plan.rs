//! `pgmove plan`.

use std::path::Path;

use super::{prepare, report_failure, Global};
use crate::exit;
use crate::report::{self, To};

/// `pgmove plan`.
pub async fn plan(path: &Path, g: Global) -> u8 {
    match prepare(path).await {
        Err(f) => report_failure(&f),
        Ok(p) => {
            report::print(&p.report, g.format, g.color(), To::Stdout);
            if p.report.ready {
                exit::OK
            } else {
                exit::BAD_INPUT
            }
        }
    }
}
