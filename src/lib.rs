//! pgmove: move a PostgreSQL database to another PostgreSQL server.
//!
//! The binary is a thin shell over [`cli::run`]; everything it does lives here so the tests
//! drive the same code.

// The unit tests see the dev-dependencies too (rcgen is the integration tests'): the check for
// unused dependencies is the library build's (Cargo.toml `[lints]`).
#![cfg_attr(test, allow(unused_crate_dependencies))]

pub mod cdc;
pub mod cleanup;
pub mod cli;
pub mod commands;
pub mod cutover;
pub mod dumpdir;
pub mod exit;
pub mod inspect;
#[cfg(test)]
mod layering;
pub mod logging;
pub mod matviews;
pub mod migration_report;
pub mod owned;
pub mod pg;
pub mod pglogical;
pub mod plan;
pub mod planner;
pub mod preflight;
pub mod progress;
pub mod rate;
pub mod replica_identity;
pub mod report;
pub mod roles;
pub mod state;
pub mod status;
pub mod step_list;
pub mod strategy;
pub mod testhook;
pub mod tools;
pub mod verify;
pub mod versions;
