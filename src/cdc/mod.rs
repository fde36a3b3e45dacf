//! Change data capture: the logical replication slot and, later, the pgoutput stream.

pub mod apply;
pub mod ddl;
pub mod pgoutput;
pub mod run;
pub mod slot;
pub mod stream;
