//! A driver for pglogical (2.x): the SQL pgmove runs against its functions and catalogs, each
//! statement a constant beside the code that runs it, with what it returns. Used by strategy
//! pglogical's apply and by what follows it (status, cutover, cleanup).
//!
//! - [`catalog`]: reads (the extension, the local node, nodes, sets and their members, the
//!   subscription, its sync status, its slot and origin);
//! - [`calls`]: the changes (create/drop node, set, membership, subscription), as SQL text
//!   with their arguments inlined as literals, so `apply --dry-run` shows exactly what runs;
//! - [`dsn`]: the `key=value` connection strings pglogical stores (with the password, never
//!   printed) and their redacted form.

pub mod calls;
pub mod catalog;
pub mod dsn;

/// The extension's name (and its schema: pglogical is not relocatable).
pub const EXTENSION: &str = "pglogical";

/// `local_sync_status.sync_status` of a table whose copy is done and whose changes apply.
pub const SYNC_READY: &str = "r";
