//! The state schema's version and its migrations.
//!
//! `pgmove.schema_version` holds one row per migration applied (version, when, by which
//! pgmove). Migration N is `migrations/NNNN_*.sql`, listed in [`MIGRATIONS`]; a migration is
//! never edited once released, a change to the schema is a new file. Migration 1 is the schema
//! as releases before the versioning created it, written with `IF NOT EXISTS`: a target whose
//! schema such a release wrote (no `schema_version`) is adopted as version 1, its rows kept,
//! so a migration started before an upgrade of pgmove resumes after it.
//!
//! [`migrate`] runs in one transaction under a transaction-level advisory lock (two applies
//! opening the same target at once migrate one after the other), and refuses a target whose
//! schema is newer than this binary knows: it would misread it.

use tokio_postgres::Client;

use crate::pg::{Endpoint, PgError};

/// A migration: its version and the SQL that brings the schema from the version before to it.
pub struct Migration {
    pub version: i32,
    pub name: &'static str,
    pub sql: &'static str,
}

/// Every migration, in order (versions 1, 2, ... without gaps).
pub const MIGRATIONS: &[Migration] = &[
    Migration {
        version: 1,
        name: "0001_initial.sql",
        sql: include_str!("migrations/0001_initial.sql"),
    },
    Migration {
        version: 2,
        name: "0002_rates.sql",
        sql: include_str!("migrations/0002_rates.sql"),
    },
    Migration {
        version: 3,
        name: "0003_fence_touched.sql",
        sql: include_str!("migrations/0003_fence_touched.sql"),
    },
    Migration {
        version: 4,
        name: "0004_lag_samples.sql",
        sql: include_str!("migrations/0004_lag_samples.sql"),
    },
    Migration {
        version: 5,
        name: "0005_recheck_rounds.sql",
        sql: include_str!("migrations/0005_recheck_rounds.sql"),
    },
];

/// The schema version this binary writes and reads.
pub fn latest() -> i32 {
    MIGRATIONS.last().map_or(0, |m| m.version)
}

/// Created before the migrations run (so the version can be read): the schema and the
/// version table. Idempotent.
const VERSION_TABLE_SQL: &str = "CREATE SCHEMA IF NOT EXISTS pgmove;
CREATE TABLE IF NOT EXISTS pgmove.schema_version (
    version    integer PRIMARY KEY,
    applied_at timestamptz NOT NULL DEFAULT now(),
    applied_by text NOT NULL
);
";

/// Serializes migrations of the target's schema: a transaction-level advisory lock in the
/// two-int key space, which no plan lock (one bigint key, see `lock.rs`) shares.
const MIGRATION_LOCK_SQL: &str = "SELECT pg_advisory_xact_lock(hashtext('pgmove'), 1)";

/// The schema's version (0: no migration applied) and the pgmove that applied it.
const VERSION_SQL: &str = "SELECT version, applied_by FROM pgmove.schema_version \
     ORDER BY version DESC LIMIT 1";

/// Records migration `$1` as applied by `$2`.
const RECORD_SQL: &str = "INSERT INTO pgmove.schema_version (version, applied_by) VALUES ($1, $2)";

/// Who applies a migration, as recorded.
fn applied_by() -> String {
    format!("pgmove {}", env!("CARGO_PKG_VERSION"))
}

/// Creates the schema or brings it to [`latest`], in one transaction; refuses a schema newer
/// than this binary knows.
pub async fn migrate(client: &mut Client, ep: &Endpoint) -> Result<(), PgError> {
    let what = "creating or upgrading the pgmove schema on the target";
    let tx = client
        .transaction()
        .await
        .map_err(|e| ep.query_error(what, &e))?;
    tx.batch_execute(MIGRATION_LOCK_SQL)
        .await
        .map_err(|e| ep.query_error("waiting for the pgmove schema's migration lock", &e))?;
    tx.batch_execute(VERSION_TABLE_SQL)
        .await
        .map_err(|e| ep.query_error(what, &e))?;
    let current = tx
        .query_opt(VERSION_SQL, &[])
        .await
        .map_err(|e| ep.query_error("reading pgmove.schema_version", &e))?;
    let (version, by): (i32, String) = current.map_or((0, String::new()), |r| (r.get(0), r.get(1)));
    if version > latest() {
        return Err(PgError::Query {
            side: ep.side,
            message: newer_message(version, &by),
        });
    }
    for m in MIGRATIONS.iter().filter(|m| m.version > version) {
        tx.batch_execute(m.sql).await.map_err(|e| {
            ep.query_error(&format!("migrating the pgmove schema ({})", m.name), &e)
        })?;
        tx.execute(RECORD_SQL, &[&m.version, &applied_by()])
            .await
            .map_err(|e| ep.query_error("writing pgmove.schema_version", &e))?;
    }
    tx.commit().await.map_err(|e| ep.query_error(what, &e))
}

/// Why a schema at `version` (applied by `by`) is refused, and the fix.
fn newer_message(version: i32, by: &str) -> String {
    format!(
        "the target's pgmove schema is at version {version} (written by {by}), newer than this pgmove {} knows (up to version {}): it would misread the migration's state; \
         fix: run this plan with that pgmove release or a newer one",
        env!("CARGO_PKG_VERSION"),
        latest()
    )
}

/// What [`migrate`] runs on a target without the schema, for `apply --dry-run`: the version
/// table and every migration, as in the files.
pub fn preview() -> String {
    let mut out = String::from(VERSION_TABLE_SQL);
    for m in MIGRATIONS {
        out.push_str(&format!("-- migration {} ({})\n", m.version, m.name));
        out.push_str(m.sql.trim_end());
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn migrations_are_numbered_from_one_without_gaps_and_named_by_their_number() {
        for (i, m) in MIGRATIONS.iter().enumerate() {
            assert_eq!(m.version as usize, i + 1);
            assert!(
                m.name.starts_with(&format!("{:04}_", m.version)),
                "{}",
                m.name
            );
        }
        assert_eq!(latest(), MIGRATIONS.len() as i32);
    }

    #[test]
    fn a_newer_schema_is_refused_with_what_to_do() {
        let m = newer_message(latest() + 1, "pgmove 9.9.9");
        assert!(m.contains(&format!("version {}", latest() + 1)), "{m}");
        assert!(m.contains("pgmove 9.9.9"), "{m}");
        assert!(m.contains("fix: run this plan with that pgmove release or a newer one"));
    }

    #[test]
    fn migration_1_creates_the_same_marker_as_the_sources_schema() {
        assert!(MIGRATIONS[0]
            .sql
            .contains(super::super::CREATE_MARKER_SQL.trim()));
    }

    #[test]
    fn the_preview_is_the_migrations_themselves() {
        let p = preview();
        for m in MIGRATIONS {
            assert!(p.contains(m.sql.trim_end()), "{}", m.name);
        }
        assert!(p.contains("pgmove.schema_version"));
    }
}
