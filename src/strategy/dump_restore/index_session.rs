//! The settings an index-building transaction starts with: `maintenance_work_mem` raised to at
//! least [`FLOOR_BYTES`] for the session (a sort that fits in memory is several times faster
//! than one spilled to disk), never lowered below what the target's server or role already
//! gives the session (a bulk-load setting such as 512MB or 1GB stays). Only `SET` in the
//! session: the user's server configuration is never changed.

use crate::pg::{Endpoint, PgError};

/// The floor pgmove raises `maintenance_work_mem` to for its index builds.
pub(crate) const FLOOR_BYTES: i64 = 256 * 1024 * 1024;

/// The session's `maintenance_work_mem` on the target, in bytes (the server's, or the role's
/// or database's own setting).
const MAINTENANCE_WORK_MEM_SQL: &str =
    "SELECT pg_catalog.pg_size_bytes(pg_catalog.current_setting('maintenance_work_mem'))::bigint";

/// The SQL each index-building transaction starts with, for a session whose own
/// `maintenance_work_mem` is `current` bytes: `SET maintenance_work_mem` to the larger of it
/// and [`FLOOR_BYTES`], in kB (the unit the setting is kept in).
pub(crate) fn prefix_for(current: i64) -> String {
    let kb = current.max(FLOOR_BYTES) / 1024;
    format!("SET maintenance_work_mem = '{kb}kB';\n")
}

/// [`prefix_for`] the target's current setting ([`MAINTENANCE_WORK_MEM_SQL`]).
pub(crate) async fn prefix(target: &Endpoint) -> Result<String, PgError> {
    let client = target.connect_short().await?;
    let row = client
        .query_one(MAINTENANCE_WORK_MEM_SQL, &[])
        .await
        .map_err(|e| target.query_error("reading maintenance_work_mem", &e))?;
    Ok(prefix_for(row.get(0)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_setting_is_raised_to_the_floor_and_never_lowered() {
        // The server's default (64MB) is raised to 256MB.
        assert_eq!(
            prefix_for(64 * 1024 * 1024),
            "SET maintenance_work_mem = '262144kB';\n"
        );
        // A bulk-load setting of 512MB stays 512MB (it used to become 256MB).
        assert_eq!(
            prefix_for(512 * 1024 * 1024),
            "SET maintenance_work_mem = '524288kB';\n"
        );
    }
}
