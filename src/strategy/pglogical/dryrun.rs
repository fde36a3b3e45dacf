//! `apply --dry-run` for strategy pglogical: each step's heading, then its exact commands and
//! SQL as a first run would run them (passwords shown as `********`).

use super::members;
use super::setup::{provider_sql, subscriber_sql, Existing};
use super::{Job, PglogicalError, STEPS, STRATEGY};
use crate::inspect::Inventory;
use crate::pglogical::{catalog, SYNC_READY};
use crate::strategy::dump_restore::{self, Preview};
use crate::strategy::steps as step_name;

/// The statements and commands apply would run, step by step, without running anything.
pub async fn dry_run(job: &Job, source_inv: &Inventory) -> Result<Vec<String>, PglogicalError> {
    let p = Preview::new(&job.base).await?;
    let m = members::members(source_inv, &job.objects, job.tables_without_key)?;
    let n = &job.names;
    let record = |kind: &str, name: &str| {
        format!("-- {kind} {name}: recorded on the target (pgmove.source_objects) as intended before, created after")
    };
    let mut out = p.intro(STRATEGY);
    for (i, s) in STEPS.iter().enumerate() {
        out.push(step_name::heading(STEPS, i));
        out.extend(match s.name {
            step_name::STATE => p.state(),
            step_name::DUMP => {
                let mut lines = p.dump(false);
                lines.push("-- the pglogical extension, its schema and their comments are left out of the restore: pgmove creates the extension on the target (step subscription)".to_string());
                lines
            }
            step_name::PRE_DATA => p.pre_data(),
            step_name::KEYS => vec![
                "-- the post-data items of primary keys and replica-identity indexes (with their REPLICA IDENTITY), restored as in step post-data, up to 100 per transaction, each with its progress row; the source's key indexes:".to_string(),
                super::keys::KEY_INDEXES_SQL.to_string(),
                p.record(step_name::KEYS, None),
            ],
            step_name::PROVIDER => {
                let mut lines = vec![
                    format!("-- on the source ({})", job.base.source.display()),
                    record(crate::owned::PGLOGICAL_PROVIDER_NODE, &n.provider_node),
                    record(crate::owned::PGLOGICAL_SET, &format!("{} and {}", n.replication_set, n.insert_set)),
                    "-- (and the pglogical extension, when the source lacks it)".to_string(),
                    "BEGIN;".to_string(),
                ];
                lines.extend(provider_sql(job, &m, &Existing::default()));
                lines.push("COMMIT;".to_string());
                for t in &m.excluded {
                    lines.push(format!("-- {}: no key and cdc.tables_without_key is exclude: in neither set (schema only, no rows)", t.qualified()));
                }
                for t in &m.unlogged {
                    lines.push(format!("-- {}: unlogged, pglogical cannot replicate it: copied once in step post-data (TRUNCATE, then COPY from the source), not replicated", t.qualified()));
                }
                lines.push(p.record(step_name::PROVIDER, None));
                lines
            }
            step_name::SUBSCRIPTION => {
                let mut lines = vec![
                    format!("-- on the target ({})", job.base.target.display()),
                    record(crate::owned::PGLOGICAL_SUBSCRIBER_NODE, &n.subscriber_node),
                    record(crate::owned::PGLOGICAL_SUBSCRIPTION, &n.subscription),
                    "BEGIN;".to_string(),
                ];
                lines.extend(subscriber_sql(job, &Existing::default(), true));
                lines.push("COMMIT;".to_string());
                lines.push(p.record(step_name::SUBSCRIPTION, None));
                lines
            }
            step_name::SYNC => vec![
                format!(
                    "-- on the target, every {}ms until the status is replicating and every sync row is '{SYNC_READY}' (ready); a subscription down for {}s fails the step:",
                    500,
                    super::sync::DOWN_GRACE.as_secs()
                ),
                catalog::SUBSCRIPTION_STATUS_SQL.replace("$1::text::name", &crate::pg::quote::literal(&n.subscription)),
                catalog::SYNC_STATUS_SQL.replace("$1", &crate::pg::quote::literal(&n.subscription)),
                p.record(step_name::SYNC, None),
            ],
            step_name::POST_DATA => {
                let mut lines = vec![
                    "-- first, once (pglogical carries none of them): each unlogged table (TRUNCATE, then COPY from the source), the extensions' configuration rows pg_dump would dump, and the large objects the target lacks".to_string(),
                ];
                lines.extend(p.post_data(&[
                    "-- then REFRESH MATERIALIZED VIEW on the target for each view populated on the source".to_string(),
                ]));
                lines
            }
            step_name::ANALYZE => p.analyze(true),
            step_name::REPLICATING => {
                let mut lines = vec![p.record(step_name::REPLICATING, Some("<the subscription's slot>"))];
                lines.extend(p.remove_dump());
                lines
            }
            other => return Err(dump_restore::unlisted(other).into()),
        });
    }
    Ok(out)
}
