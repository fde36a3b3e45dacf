//! Migration strategies, one module each.

pub mod dump_restore;
