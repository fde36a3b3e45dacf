//! Step `sync`: waiting for pglogical's initial copy of every table, and `--exit-when-caught-up`:
//! waiting for the subscription to confirm the source's current WAL position. Both fail loudly
//! when the subscription stays `down` (its worker keeps failing: the reason is in the target
//! server's log) or is disabled, instead of waiting forever.

use std::time::{Duration, Instant};

use super::{Job, PglogicalError};
use crate::pg::Lsn;
use crate::pglogical::{catalog, SYNC_READY};
use crate::progress::Progress;

/// How often the status is read.
const POLL: Duration = Duration::from_millis(500);

/// How long the subscription may stay `down` before pgmove gives up (pglogical restarts a
/// failed worker after a few seconds; one that keeps failing stays down).
pub const DOWN_GRACE: Duration = Duration::from_secs(30);

/// The subscription's status, refusing one that is down for too long or disabled.
struct Watch {
    down_since: Option<Instant>,
}

impl Watch {
    fn check(&mut self, job: &Job, status: &str) -> Result<(), PglogicalError> {
        let name = &job.names.subscription;
        match status {
            "down" => {
                let since = *self.down_since.get_or_insert_with(Instant::now);
                if since.elapsed() >= DOWN_GRACE {
                    return Err(PglogicalError::Sync(format!(
                        "pglogical subscription {name} on the target has been down for {}s: its worker keeps failing.\n  hint: pglogical's error is in the target server's log (lines with \"pglogical\"; on the provider side, the source's log); SELECT * FROM pglogical.show_subscription_status({}) shows the state. Fix the cause, then run pgmove apply again (it resumes), or pgmove cleanup to remove what apply created",
                        since.elapsed().as_secs(),
                        crate::pg::quote::literal(name)
                    )));
                }
            }
            "disabled" => {
                return Err(PglogicalError::Sync(format!(
                    "pglogical subscription {name} on the target is disabled: nothing replicates.\n  hint: SELECT pglogical.alter_subscription_enable({}); then run pgmove apply again",
                    crate::pg::quote::literal(name)
                )))
            }
            _ => self.down_since = None,
        }
        Ok(())
    }
}

/// Waits until the subscription replicates and every row of its sync status is ready, with a
/// bar of the tables synced (`tables`: how many are in the sets). Returns the seconds waited.
pub async fn wait_synced(
    job: &Job,
    tables: u64,
    progress: Progress,
) -> Result<f64, PglogicalError> {
    let target = &job.base.target;
    let name = &job.names.subscription;
    let c = target.connect().await?;
    let step = progress.step("sync", tables);
    let started = Instant::now();
    let mut watch = Watch { down_since: None };
    let mut shown = 0u64;
    // The subscription exists and pglogical copies: a kill from here on leaves it copying.
    crate::testhook::pause("pglogical-sync").await;
    loop {
        let status = catalog::subscription_status(&c, target, name).await?;
        watch.check(job, &status)?;
        let rows = catalog::sync_status(&c, target, name).await?;
        let ready_tables = rows
            .iter()
            .filter(|r| r.table.is_some() && r.status == SYNC_READY)
            .count() as u64;
        while shown < ready_tables.min(tables) {
            shown += 1;
            step.item_done("table synced");
        }
        if let Some(copying) = catalog::copy_in_progress(&c, target).await? {
            tracing::debug!(table = %copying, "pglogical is copying");
        }
        let all_ready = !rows.is_empty() && rows.iter().all(|r| r.status == SYNC_READY);
        if status == "replicating" && all_ready {
            break;
        }
        tokio::time::sleep(POLL).await;
    }
    step.finish("every table synced");
    Ok(started.elapsed().as_secs_f64())
}

/// Waits until the subscription's slot on the source confirms the source's current WAL
/// position (read first): the target then has everything the source had written. Returns it.
pub async fn wait_caught_up(job: &Job) -> Result<Lsn, PglogicalError> {
    let (source, target) = (&job.base.source, &job.base.target);
    let name = &job.names.subscription;
    let s = source.connect().await?;
    let t = target.connect().await?;
    let sub = catalog::subscription(&t, target, name)
        .await?
        .ok_or_else(|| {
            PglogicalError::Sync(format!(
                "pglogical subscription {name} is missing on the target: run pgmove apply again"
            ))
        })?;
    let goal = catalog::current_lsn(&s, source).await?;
    let mut watch = Watch { down_since: None };
    loop {
        let status = catalog::subscription_status(&t, target, name).await?;
        watch.check(job, &status)?;
        if catalog::slot_confirmed(&s, source, &sub.slot_name)
            .await?
            .is_some_and(|l| l >= goal)
        {
            return Ok(goal);
        }
        tokio::time::sleep(POLL).await;
    }
}
