//! Migration strategies, one module each.

pub mod copy_cdc;
pub mod dump_restore;
pub mod pglogical;
pub mod steps;
