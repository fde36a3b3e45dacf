//! pgmove: move a PostgreSQL database to another PostgreSQL server.
//!
//! The binary is a thin shell over [`cli::run`]; everything it does lives here so the tests
//! drive the same code.

pub mod cdc;
pub mod cleanup;
pub mod cli;
pub mod commands;
pub mod cutover;
pub mod dumpdir;
pub mod exit;
pub mod inspect;
pub mod logging;
pub mod owned;
pub mod pg;
pub mod plan;
pub mod planner;
pub mod preflight;
pub mod progress;
pub mod report;
pub mod roles;
pub mod state;
pub mod status;
pub mod step_list;
pub mod strategy;
pub mod testhook;
pub mod tools;
pub mod verify;
