//! `pgmove report`.

use std::io::Write as _;
use std::path::Path;

use super::{load_with_endpoints, report_failure, Failure, Global};
use crate::exit;
use crate::migration_report::{self, Facts};
use crate::report::{Format, Hint};

/// How long `pgmove report` waits for the target.
const REPORT_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(60);

/// `pgmove report`: what the target's state store recorded of the plan, as Markdown (also for
/// `--format text`), JSON or an HTML page. Reads only the target.
pub async fn report(path: &Path, g: Global) -> u8 {
    let (plan, _source, target) = match load_with_endpoints(path) {
        Ok(x) => x,
        Err(f) => return report_failure(&f),
    };
    let read = async {
        let c = target.connect_short().await?;
        crate::state::history::read(&c, &target, &plan.name).await
    };
    let history = match tokio::time::timeout(REPORT_TIMEOUT, read).await {
        Ok(Ok(h)) => h,
        Ok(Err(e)) => return report_failure(&Failure::runtime(e)),
        Err(_) => {
            return report_failure(&Failure::runtime(format!(
                "report: no answer from the target within {} s{}",
                REPORT_TIMEOUT.as_secs(),
                Hint::new("check that the target answers (pg_isready), then run report again")
            )))
        }
    };
    let facts = Facts::from_history(&plan.name, &history);
    let out = match g.format {
        Format::Html => migration_report::render_html(&facts),
        Format::Json => migration_report::render_json(&facts),
        Format::Text | Format::Markdown => migration_report::render_markdown(&facts),
    };
    let mut stdout = std::io::stdout().lock();
    let _ = stdout
        .write_all(out.as_bytes())
        .and_then(|_| stdout.flush());
    if facts.is_empty() {
        return report_failure(&Failure::runtime(format!(
            "the target has no record of plan {}: it was never applied there, or `pgmove cleanup` removed its records{}",
            plan.name,
            Hint::new(format!(
                "check the plan's target, or run `pgmove apply {}` first",
                path.display()
            ))
        )));
    }
    exit::OK
}
