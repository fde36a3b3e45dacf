//! `pgmove setup-sql`: the SQL the master user runs once on the source so that a migrating role
//! that may not create event triggers can capture DDL (`cdc.ddl`; see
//! [`crate::cdc::ddl::setup`]). Reads only the plan: connects to no server, reads no password.

use std::path::Path;

use super::{report_failure, Failure};
use crate::exit;
use crate::plan::{Ddl, StrategyChoice};

/// `pgmove setup-sql`: prints the SQL on stdout (and nothing else there).
pub fn setup_sql(path: &Path) -> u8 {
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
    print!(
        "{}",
        crate::cdc::ddl::setup::setup_sql(&plan, &path.display().to_string(), &role)
    );
    exit::OK
}
