//! What each command does, between the parsed arguments and the library's modules: one file
//! per command. Each returns the process exit code of the README; prints reports on stdout and
//! errors on stderr.

use std::io::IsTerminal;
use std::path::Path;

use crate::exit;
use crate::pg::{Endpoint, Side};
use crate::plan::Plan;
use crate::report::Format;

mod apply;
mod cleanup;
mod cutover;
mod init;
mod manual;
mod online;
mod plan;
mod prepare;
mod report;
mod schema;
mod setup_sql;
mod status;
mod verify;

pub use apply::apply;
pub use cleanup::cleanup;
pub use cutover::cutover;
pub use init::init;
pub use manual::{completion_script, completions, man, man_commands, man_page};
pub use online::Online;
pub use plan::plan;
pub use prepare::{prepare, Prepared};
pub use report::report;
pub use schema::schema;
pub use setup_sql::setup_sql;
pub use status::status;
pub use verify::verify;

/// Options every command takes.
#[derive(Clone, Copy, Debug)]
pub struct Global {
    pub format: Format,
    pub yes: bool,
}

impl Global {
    pub(crate) fn color(&self) -> bool {
        self.format == Format::Text
            && std::io::stdout().is_terminal()
            && std::env::var_os("NO_COLOR").is_none()
    }
}

/// A failure with its exit code, printed once at the edge.
pub struct Failure {
    pub code: u8,
    pub message: String,
}

impl Failure {
    pub(crate) fn input(message: impl ToString) -> Failure {
        Failure {
            code: exit::BAD_INPUT,
            message: message.to_string(),
        }
    }
    pub(crate) fn runtime(message: impl ToString) -> Failure {
        Failure {
            code: exit::FAILURE,
            message: message.to_string(),
        }
    }
}

pub(crate) fn report_failure(f: &Failure) -> u8 {
    crate::logging::error(&f.message);
    f.code
}

/// The plan and its two endpoints, for the commands that need no inspection.
pub(crate) fn load_with_endpoints(path: &Path) -> Result<(Plan, Endpoint, Endpoint), Failure> {
    let plan = crate::plan::load(path).map_err(Failure::input)?;
    let source = plan.endpoint(Side::Source).map_err(Failure::input)?;
    let target = plan.endpoint(Side::Target).map_err(Failure::input)?;
    Ok((plan, source, target))
}
