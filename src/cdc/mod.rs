//! Change data capture: the logical replication slot and, later, the pgoutput stream.

pub mod apply;
pub mod ddl;
pub mod pgoutput;
pub mod retry;
pub mod run;
pub mod slot;
pub mod spool;
pub mod stream;
