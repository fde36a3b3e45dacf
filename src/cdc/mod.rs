//! Change data capture: the logical replication slot and, later, the pgoutput stream.

pub mod slot;
