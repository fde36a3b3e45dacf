//! The command line: parses arguments and dispatches into the library. No logic of its own.

use std::ffi::OsString;
use std::process::ExitCode;

use clap::Parser;

/// Exit codes of SPEC.md.
pub mod exit {
    pub const OK: u8 = 0;
    pub const FAILURE: u8 = 1;
    pub const BAD_INPUT: u8 = 2;
    pub const DIFFERENCES: u8 = 3;
}

#[derive(Debug, Parser)]
#[command(
    name = "pgmove",
    version,
    about = "Move a PostgreSQL database to another PostgreSQL server",
    long_about = "Move a PostgreSQL database to another PostgreSQL server (self-managed, RDS or Aurora) \
with the least downtime: plan, apply, cut over, verify, clean up."
)]
pub struct Cli {
    /// More logging (-v debug, -vv trace).
    #[arg(short, long, action = clap::ArgAction::Count, global = true)]
    pub verbose: u8,
    /// Less logging (-q warnings only, -qq errors only).
    #[arg(short, long, action = clap::ArgAction::Count, global = true)]
    pub quiet: u8,
}

/// Parses `args` and runs the command; returns the process exit code.
pub fn run<I, T>(args: I) -> ExitCode
where
    I: IntoIterator<Item = T>,
    T: Into<OsString> + Clone,
{
    let cli = match Cli::try_parse_from(args) {
        Ok(c) => c,
        Err(e) => {
            let code = if e.use_stderr() {
                exit::BAD_INPUT
            } else {
                exit::OK
            };
            let _ = e.print();
            return ExitCode::from(code);
        }
    };
    crate::logging::init(cli.verbose as i8 - cli.quiet as i8);
    ExitCode::from(exit::OK)
}
