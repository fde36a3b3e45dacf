//! The process exit codes (README, "Exit codes").

pub const OK: u8 = 0;
pub const FAILURE: u8 = 1;
pub const BAD_INPUT: u8 = 2;
pub const DIFFERENCES: u8 = 3;
/// `status`: the migration cannot proceed (its replication slot is lost).
pub const CANNOT_PROCEED: u8 = 4;
/// `status`: the migration failed (an error recorded, no apply running).
pub const MIGRATION_FAILED: u8 = 5;
/// `status`: the migration stalled (an apply runs but applies nothing while the source
/// moves on).
pub const MIGRATION_STALLED: u8 = 6;
