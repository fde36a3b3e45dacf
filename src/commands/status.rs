//! `pgmove status`.

use std::path::Path;

use super::{load_with_endpoints, report_failure, Failure, Global};
use crate::exit;
use crate::report::{self, Hint, Render, To};
use crate::status::Status;

/// The status as `status` prints it: the report and, in JSON, the verdict its exit code
/// carries.
#[derive(serde::Serialize)]
struct Judged<'a> {
    #[serde(flatten)]
    status: &'a Status,
    /// `fine` (exit 0), `slot-lost` (4), `failed` (5), `stalled` (6).
    verdict: &'static str,
}

impl Render for Judged<'_> {
    fn render_text(&self) -> String {
        self.status.render_text()
    }
    fn render_text_in_color(&self) -> String {
        self.status.render_text_in_color()
    }
    fn render_markdown(&self) -> String {
        self.status.render_markdown()
    }
}

/// How long `pgmove status` waits for both servers in all.
const STATUS_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(90);

/// `pgmove status`.
pub async fn status(path: &Path, stalled_after: u64, g: Global) -> u8 {
    let (plan, source, target) = match load_with_endpoints(path) {
        Ok(x) => x,
        Err(f) => return report_failure(&f),
    };
    // A hung server (stopped, or a dead network the keepalives have not noticed yet) must
    // not hang `status`: a scheduler runs it.
    let read = crate::status::read_plan(&plan, &source, &target);
    let read = match tokio::time::timeout(STATUS_TIMEOUT, read).await {
        Ok(r) => r,
        Err(_) => return report_failure(&Failure::runtime(format!(
            "status: no answer from the source or the target within {} s: a server or the network to it is hung{}",
            STATUS_TIMEOUT.as_secs(),
            Hint::new("check that both servers answer (pg_isready), then run status again")
        ))),
    };
    match read {
        Ok(s) => {
            let verdict = s.verdict(stalled_after);
            let judged = Judged {
                status: &s,
                verdict: verdict.name(),
            };
            report::print(&judged, g.format, false, To::Stdout);
            match verdict {
                crate::status::Verdict::SlotLost => exit::CANNOT_PROCEED,
                crate::status::Verdict::Failed if s.pglogical_broken().is_some() => {
                    crate::logging::warn(&format!(
                        "pgmove: the migration failed: {}; fix the cause (then on the target: SELECT pglogical.alter_subscription_enable({}, true); if it is disabled), or start over: pgmove cleanup {f}, then pgmove apply {f}",
                        s.pglogical_broken().unwrap_or_default(),
                        crate::pg::quote::literal(&plan.pglogical_names().subscription),
                        f = path.display()
                    ));
                    exit::MIGRATION_FAILED
                }
                crate::status::Verdict::Failed => {
                    crate::logging::warn(&format!(
                        "pgmove: the migration failed (phase {}) and no apply runs: see the last error above, fix it, then run `pgmove apply {}` again to resume",
                        s.phase,
                        path.display()
                    ));
                    exit::MIGRATION_FAILED
                }
                crate::status::Verdict::Stalled(secs) => {
                    crate::logging::warn(&format!(
                        "pgmove: the migration is stalled: an apply runs but has applied nothing for {secs} s or more while the source moved on; look at the apply's log and at locks or long transactions on the target"
                    ));
                    exit::MIGRATION_STALLED
                }
                crate::status::Verdict::Fine => exit::OK,
            }
        }
        Err(e) => report_failure(&Failure::runtime(e)),
    }
}
