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

/// The subscription's status over time: refuses one that is disabled, or down again and again
/// with no progress for [`DOWN_GRACE`] (pglogical restarts a failed worker, so the status
/// flips between `down` and `initializing` while the same error repeats).
struct Watch {
    /// When it was first seen down since the last progress.
    down_since: Option<Instant>,
    /// The last progress seen (tables ready, or the position confirmed).
    progress: u64,
}

impl Watch {
    fn new() -> Watch {
        Watch {
            down_since: None,
            progress: 0,
        }
    }

    fn check(&mut self, name: &str, status: &str, progress: u64) -> Result<(), PglogicalError> {
        if progress > self.progress {
            self.progress = progress;
            self.down_since = None;
        }
        match status {
            "down" => {
                let since = *self.down_since.get_or_insert_with(Instant::now);
                if since.elapsed() >= DOWN_GRACE {
                    return Err(PglogicalError::Sync(format!(
                        "pglogical subscription {name} on the target keeps going down (first seen down {}s ago, no progress since): its worker fails again and again.\n  hint: pglogical's error is in the target server's log (lines with \"pglogical\"; for the provider side, the source's log); SELECT * FROM pglogical.show_subscription_status({}) and SELECT * FROM pglogical.local_sync_status on the target show the state. Fix the cause, then run pgmove apply again (it resumes), or pgmove cleanup to remove what apply created",
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
            "replicating" => self.down_since = None,
            _ => {}
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
    let mut watch = Watch::new();
    let mut shown = 0u64;
    let (mut current, mut copied): (Option<String>, u64) = (None, 0);
    // The subscription exists and pglogical copies: a kill from here on leaves it copying.
    crate::testhook::pause("pglogical-sync").await;
    loop {
        let status = catalog::subscription_status(&c, target, name).await?;
        let rows = catalog::sync_status(&c, target, name).await?;
        let ready_tables = rows
            .iter()
            .filter(|r| r.table.is_some() && r.status == SYNC_READY)
            .count() as u64;
        watch.check(name, &status, ready_tables)?;
        // pglogical's initial sync copies the tables one by one and records them ready at
        // its end: a table is counted when the copy moves on to the next one, the rest when
        // they are recorded ready.
        let copying = catalog::copy_in_progress(&c, target).await?;
        let moved_on = copying != current;
        if moved_on && current.is_some() {
            copied += 1;
        }
        while shown < ready_tables.max(copied).min(tables) {
            shown += 1;
            step.item_done(current.as_deref().unwrap_or("table"));
        }
        if moved_on {
            if let Some(t) = &copying {
                step.working_on(&format!("copying {t}"));
            }
            current = copying;
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

/// Waits until the subscription's status is `replicating` (failing like the sync when it stays
/// down or is disabled). Apply ends with it: after the sync, the post-data step and VACUUM
/// ANALYZE take locks on the replicated tables, and pglogical's apply worker can fail and be
/// restarted meanwhile (status `down` for a few seconds); apply says "replicating" only once
/// it is.
pub async fn wait_replicating(job: &Job) -> Result<(), PglogicalError> {
    let target = &job.base.target;
    let name = &job.names.subscription;
    let c = target.connect().await?;
    let mut watch = Watch::new();
    loop {
        let status = catalog::subscription_status(&c, target, name).await?;
        watch.check(name, &status, 0)?;
        if status == "replicating" {
            return Ok(());
        }
        tokio::time::sleep(POLL).await;
    }
}

/// Waits until the subscription's slot on the source confirms the source's current WAL
/// position (read first): the target then has everything the source had written. Returns it.
pub async fn wait_caught_up(job: &Job) -> Result<Lsn, PglogicalError> {
    let source = &job.base.source;
    let s = source.connect().await?;
    let goal = catalog::current_lsn(&s, source).await?;
    wait_confirmed(source, &job.base.target, &job.names.subscription, goal).await?;
    Ok(goal)
}

/// Waits until pglogical subscription `name` (on `target`) has confirmed `goal` on its slot on
/// `source` (its `confirmed_flush_lsn`): every change the source wrote before `goal` is
/// committed on the target. Fails like the sync when the subscription keeps going down or is
/// disabled. For apply's `--exit-when-caught-up` and for cutover's wait for the final LSN.
pub async fn wait_confirmed(
    source: &crate::pg::Endpoint,
    target: &crate::pg::Endpoint,
    name: &str,
    goal: Lsn,
) -> Result<(), PglogicalError> {
    let s = source.connect().await?;
    let t = target.connect().await?;
    let sub = catalog::subscription(&t, target, name)
        .await?
        .ok_or_else(|| {
            PglogicalError::Sync(format!(
                "pglogical subscription {name} is missing on the target: run pgmove apply again"
            ))
        })?;
    let mut watch = Watch::new();
    loop {
        let status = catalog::subscription_status(&t, target, name).await?;
        let confirmed = catalog::slot_confirmed(&s, source, &sub.slot_name).await?;
        watch.check(name, &status, confirmed.map_or(0, |l| l.0))?;
        if confirmed.is_some_and(|l| l >= goal) {
            return Ok(());
        }
        tokio::time::sleep(POLL).await;
    }
}

/// Whether table `schema.table` holds a row (one row, one boolean).
fn has_rows_sql(t: &crate::inspect::RelName) -> String {
    format!(
        "SELECT EXISTS (SELECT 1 FROM ONLY {})",
        crate::pg::quote::qualified(&t.schema, &t.name)
    )
}

/// Of `tables`, those with rows on the source and none on the target.
async fn empty_on_target(
    job: &Job,
    tables: &[&crate::inspect::RelName],
) -> Result<Vec<crate::inspect::RelName>, PglogicalError> {
    let (source, target) = (&job.base.source, &job.base.target);
    let s = source.connect().await?;
    let t = target.connect().await?;
    let mut out = Vec::new();
    for rel in tables {
        let sql = has_rows_sql(rel);
        let what = format!("looking for rows in {}.{}", rel.schema, rel.name);
        let on_source: bool = s
            .query_one(sql.as_str(), &[])
            .await
            .map_err(|e| source.query_error(&what, &e))?
            .get(0);
        if !on_source {
            continue;
        }
        let on_target: bool = t
            .query_one(sql.as_str(), &[])
            .await
            .map_err(|e| target.query_error(&what, &e))?
            .get(0);
        if !on_target {
            out.push((*rel).clone());
        }
    }
    Ok(out)
}

/// After the sync: pglogical 2.4 marks a table ready even when its copy failed on the target
/// (a row breaking a constraint there, for instance: the error goes to the target's log and
/// the table stays empty). Every table with rows on the source must have rows on the target
/// once the subscription has caught up; a table that does not (checked again after a second
/// catch-up, in case its first rows were written meanwhile) fails the step with the way out.
pub async fn check_copied(
    job: &Job,
    tables: &[&crate::inspect::RelName],
) -> Result<(), PglogicalError> {
    wait_caught_up(job).await?;
    let empty = empty_on_target(job, tables).await?;
    if empty.is_empty() {
        return Ok(());
    }
    wait_caught_up(job).await?;
    let empty = empty_on_target(job, &empty.iter().collect::<Vec<_>>()).await?;
    if empty.is_empty() {
        return Ok(());
    }
    let names: Vec<String> = empty
        .iter()
        .map(|t| format!("{}.{}", t.schema, t.name))
        .collect();
    let sub = crate::pg::quote::literal(&job.names.subscription);
    let resync: Vec<String> = empty
        .iter()
        .map(|t| {
            format!(
                "SELECT pglogical.alter_subscription_resynchronize_table({sub}, {});",
                crate::pg::quote::literal(&crate::pg::quote::qualified(&t.schema, &t.name))
            )
        })
        .collect();
    Err(PglogicalError::Sync(format!(
        "pglogical reports every table synced, but {} table(s) with rows on the source got none on the target: {}. pglogical's copy of them failed on the target and it went on (its error is in the target server's log: a row breaking a constraint or a trigger there, for instance).\n  hint: fix the cause, then on the target: {} and run pgmove apply again (it resumes)",
        names.len(),
        names.join(", "),
        resync.join(" ")
    )))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_subscription_down_without_progress_for_the_grace_fails_with_the_way_out() {
        let mut w = Watch::new();
        assert!(w.check("s", "down", 0).is_ok());
        // Down, then restarting, then down again: still counted from the first time.
        assert!(w.check("s", "initializing", 0).is_ok());
        w.down_since = Instant::now().checked_sub(DOWN_GRACE);
        let e = w.check("s", "down", 0).expect_err("down too long");
        let text = e.to_string();
        assert!(
            text.contains("subscription s on the target keeps going down"),
            "{text}"
        );
        assert!(text.contains("target server's log"), "{text}");
        assert!(text.contains("run pgmove apply again"), "{text}");
        // Progress clears it.
        let mut w = Watch::new();
        w.down_since = Instant::now().checked_sub(DOWN_GRACE);
        assert!(w.check("s", "down", 1).is_ok());
        assert!(w.check("s", "replicating", 1).is_ok());
        assert!(w.down_since.is_none());
    }

    #[test]
    fn a_disabled_subscription_fails_at_once() {
        let e = Watch::new()
            .check("s", "disabled", 0)
            .expect_err("disabled");
        assert!(e
            .to_string()
            .contains("SELECT pglogical.alter_subscription_enable('s');"));
    }
}
