//! pgmove: move a PostgreSQL database to another PostgreSQL server.
//!
//! The binary is a thin shell over [`cli::run`]; everything it does lives here so the tests
//! drive the same code.

pub mod cli;
pub mod logging;
pub mod pg;
