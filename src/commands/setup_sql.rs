//! `pgmove setup-sql`: the SQL the master user runs once on the source so that a migrating role
//! that may not create event triggers can capture DDL (`cdc.ddl`; see
//! [`crate::cdc::ddl::setup`]). Reads only the plan: connects to no server, reads no password.

use std::path::Path;

use super::{report_failure, Failure};
use crate::exit;
use crate::plan::{Ddl, StrategyChoice};
use crate::report::Format;

/// `pgmove setup-sql`: prints the SQL on stdout (and nothing else there).
/// `--format json` prints an object whose `sql` is that SQL.
pub fn setup_sql(path: &Path, format: Format) -> u8 {
    let plan = match crate::plan::load(path) {
        Ok(p) => p,
        Err(e) => return report_failure(&Failure::input(e)),
    };
    if plan.cdc.ddl == Ddl::Ignore {
        return report_failure(&Failure::input(format!(
            "{}: cdc.ddl is ignore, so pgmove captures no schema changes and there is nothing to set up",
            plan.file
        )));
    }
    if plan.strategy == StrategyChoice::DumpRestore {
        return report_failure(&Failure::input(format!(
            "{}: strategy dump-restore captures no schema changes (it moves no changes after the dump), so there is nothing to set up",
            plan.file
        )));
    }
    let Some(role) = crate::cdc::ddl::setup::source_user(&plan) else {
        return report_failure(&Failure::input(format!(
            "{}: source.dsn names no user (nor does PGUSER): setup-sql grants the use of the capture to the plan's source user, so give it in source.dsn",
            plan.file
        )));
    };
    let sql = crate::cdc::ddl::setup::setup_sql(&plan, &path.display().to_string(), &role);
    match format {
        // For scripts: the SQL with what it is for.
        Format::Json => {
            let out = serde_json::json!({
                "format_version": 1,
                "schema_version": crate::report::SCHEMA_VERSION,
                "plan": plan.name,
                "role": role,
                "run_as": "the master user (RDS/Aurora) or a superuser, on the source database",
                "sql": sql,
            });
            println!("{out:#}");
        }
        // Only SQL: `pgmove setup-sql plan.yaml | psql`.
        Format::Text | Format::Markdown | Format::Html => print!("{sql}"),
    }
    exit::OK
}
