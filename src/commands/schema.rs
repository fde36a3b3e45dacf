//! `pgmove schema`: the JSON Schema of the plan file (docs/plan.schema.json), for editors that
//! validate YAML as it is typed. Reads nothing, connects to nothing.

use std::io::Write;

use super::{report_failure, Failure};
use crate::exit;

/// Prints the schema on stdout (JSON whatever `--format` says: it is a document, not a report).
pub fn schema() -> u8 {
    let mut out = std::io::stdout().lock();
    match out
        .write_all(crate::plan::schema_text().as_bytes())
        .and_then(|()| out.flush())
    {
        Ok(()) => exit::OK,
        Err(e) => report_failure(&Failure::runtime(format!(
            "cannot write the schema to stdout: {e}"
        ))),
    }
}
