//! Cutover of a run of strategy pglogical: pglogical is the applier. What differs from
//! copy-cdc:
//! - **Ready**: the run recorded step `replicating` (the initial sync is done) and the plan's
//!   subscription exists on the target with status `replicating`; else cutover does not start
//!   (exit 2) and says what to do.
//! - **Applied position**: the subscription's slot's `confirmed_flush_lsn` on the source
//!   (pglogical confirms a position once everything before it is applied and flushed on the
//!   subscriber: what `pglogical.wait_slot_confirm_lsn` waits for). The lag check and the final
//!   catch-up wait until it passes a marker written on the source.
//! - **Independence**: once verified, the subscription is disabled and dropped on the target
//!   (`pglogical.alter_subscription_disable`, `pglogical.drop_subscription`), which drops its
//!   slot on the source as well. The nodes, the sets and the extension stay for
//!   `pgmove cleanup`.
//!
//! A cutover killed with the source fenced resumes: when an earlier attempt already caught up
//! (recorded `cutover-catch-up`) the source has been read-only since, so a subscription no
//! longer replicating (or already dropped) is no reason to stop.

use std::time::{Duration, Instant};

use serde::Serialize;
use tokio_postgres::Client;

use super::{CutoverError, CutoverJob, StepError};
use crate::pg::{quote, Lsn};
use crate::status::pglogical as read;

/// How cutover follows a pglogical subscription.
pub(super) struct Follow {
    pub(super) subscription: String,
    /// The subscription's slot on the source.
    pub(super) slot: String,
    /// An earlier attempt caught up and the source has been fenced since: the target has
    /// everything, whatever the subscription does now.
    pub(super) caught_up_before: bool,
}

/// What cutover did to the pglogical objects, and what it left for `pgmove cleanup`.
#[derive(Clone, Debug, Default, Serialize)]
pub struct Teardown {
    pub subscription: String,
    pub slot: String,
    /// This cutover dropped the subscription on the target (false: it was gone already).
    pub subscription_dropped: bool,
    /// The subscription's slot is gone from the source.
    pub slot_dropped: bool,
    /// What stays until `pgmove cleanup`.
    pub left_for_cleanup: Vec<String>,
}

/// Whether the run reached step `replicating` (the initial sync is done, the subscription
/// replicates): else cutover cannot start.
pub(super) fn check_run(
    job: &CutoverJob,
    finished: &[String],
    last_error: Option<&str>,
) -> Result<(), CutoverError> {
    if finished
        .iter()
        .any(|s| s == crate::state::step::REPLICATING)
    {
        return Ok(());
    }
    let plan = &job.plan.name;
    let f = &job.plan.file;
    Err(CutoverError::NotReady(format!(
        "plan {plan:?} (strategy pglogical) has not reached step `replicating`: pglogical's initial sync is not done{}{}\n  hint: run `pgmove apply {f}` and let it finish: it returns once every table is synchronized and the subscription replicates (`pgmove status {f}` shows each table's sync state)",
        if finished.is_empty() {
            String::new()
        } else {
            format!(" (steps done: {})", finished.join(", "))
        },
        last_error
            .map(|e| format!("; the last apply stopped with: {e}"))
            .unwrap_or_default()
    )))
}

/// The subscription cutover follows: it must exist and replicate, unless an earlier attempt
/// caught up while the source stayed fenced (`resumed_fence`, `caught_up_before`).
pub(super) async fn follow(
    job: &CutoverJob,
    target: &Client,
    resumed_fence: bool,
    caught_up_before: bool,
) -> Result<Follow, CutoverError> {
    let name = job.plan.pglogical_names().subscription;
    let plan = &job.plan.name;
    let f = &job.plan.file;
    let sub = read::subscription(target, &job.target, &name).await?;
    let resumable = resumed_fence && caught_up_before;
    match sub {
        Some(s) if s.status == read::REPLICATING => Ok(Follow {
            subscription: name,
            slot: s.slot_name,
            caught_up_before: false,
        }),
        Some(s) if resumable => Ok(Follow {
            subscription: name,
            slot: s.slot_name,
            caught_up_before: true,
        }),
        None if resumable => Ok(Follow {
            slot: String::new(),
            subscription: name,
            caught_up_before: true,
        }),
        Some(s) => Err(CutoverError::NotReady(format!(
            "plan {plan:?}: pglogical subscription {name} on the target is {}{}, not replicating: the source's changes are not being applied, so the target cannot catch up\n  hint: the reason is in the target's server log (pglogical apply worker); {}then run `pgmove cutover {f}` again (`pgmove status {f}` shows the subscription)",
            s.status,
            if s.enabled { "" } else { " (disabled)" },
            if s.enabled {
                "fix it (a conflict, a missing table or key, the provider unreachable from the target), "
                    .to_string()
            } else {
                format!(
                    "enable it on the target: SELECT pglogical.alter_subscription_enable({}, true); ",
                    quote::literal(&name)
                )
            }
        ))),
        None => Err(CutoverError::NotReady(format!(
            "plan {plan:?}: pglogical subscription {name} does not exist on the target (or the target has no pglogical extension): nothing replicates the source's changes\n  hint: run `pgmove apply {f}` again: it creates the subscription and resumes the sync"
        ))),
    }
}

/// Waits until the subscriber has applied (and confirmed to the source) everything before
/// `lsn`.
pub(super) async fn wait_confirmed(
    job: &CutoverJob,
    source: &Client,
    target: &Client,
    follow: &Follow,
    lsn: Lsn,
    deadline: Instant,
) -> Result<(), StepError> {
    let mut nudged = Instant::now();
    loop {
        let confirmed = read::confirmed_lsn(source, &job.source, &follow.slot).await?;
        if confirmed.is_some_and(|c| c >= lsn) {
            return Ok(());
        }
        // pglogical's apply worker confirms a position only once its own commits are flushed
        // on the target, and when a message wakes it (else once a second): a commit of ours
        // on the target flushes the WAL before it, then a small message on the source wakes
        // the worker through its walsender's keepalive.
        if nudged.elapsed() >= Duration::from_millis(100) {
            target.batch_execute(FLUSH_SQL).await.map_err(|e| {
                job.target
                    .query_error("flushing the target's WAL (a transaction with an xid)", &e)
            })?;
            source
                .execute(
                    NUDGE_SQL,
                    &[&crate::plan::names::cutover_marker_prefix(&job.plan.name)],
                )
                .await
                .map_err(|e| {
                    job.source
                        .query_error("writing a wake-up message (pg_logical_emit_message)", &e)
                })?;
            nudged = Instant::now();
        }
        if Instant::now() >= deadline {
            let state = match read::subscription(target, &job.target, &follow.subscription).await {
                Ok(Some(s)) => format!("subscription {} is {}", s.name, s.status),
                Ok(None) => format!("subscription {} is gone", follow.subscription),
                Err(e) => format!("reading the subscription failed: {e}"),
            };
            return Err(StepError::Other(format!(
                "the pglogical subscriber did not apply up to source LSN {lsn} in time (slot {} confirmed {}; {state}); the target's server log has the apply worker's messages",
                follow.slot,
                confirmed.map_or_else(|| "nothing (no such slot)".to_string(), |c| c.to_string()),
            )));
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Disables and drops the subscription on the target (which drops its slot on the source),
/// so the target is independent. A subscription already gone is fine.
pub(super) async fn teardown(
    job: &CutoverJob,
    source: &Client,
    target: &Client,
    follow: &Follow,
) -> Result<Teardown, StepError> {
    let names = job.plan.pglogical_names();
    let sub = read::subscription(target, &job.target, &follow.subscription).await?;
    let slot = match &sub {
        Some(s) => s.slot_name.clone(),
        None => follow.slot.clone(),
    };
    let mut t = Teardown {
        subscription: follow.subscription.clone(),
        slot: slot.clone(),
        ..Teardown::default()
    };
    if sub.is_some() {
        target
            .execute(DISABLE_SQL, &[&follow.subscription])
            .await
            .map_err(|e| {
                job.target.query_error(
                    &format!("disabling pglogical subscription {}", follow.subscription),
                    &e,
                )
            })?;
        // The walsender ends once the apply worker is gone; a slot in use cannot be dropped.
        if !slot.is_empty() {
            let until = Instant::now() + Duration::from_secs(10);
            while Instant::now() < until && slot_active(job, source, &slot).await? {
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
        if let Err(e) = target.execute(DROP_SQL, &[&follow.subscription]).await {
            // Cutover fails and unfences the source: replication must go on, so the
            // subscription is enabled again.
            let err = job.target.query_error(
                &format!("dropping pglogical subscription {}", follow.subscription),
                &e,
            );
            let again = match target.execute(ENABLE_SQL, &[&follow.subscription]).await {
                Ok(_) => "it was enabled again".to_string(),
                Err(e2) => format!(
                    "enabling it again failed too ({}): on the target run SELECT pglogical.alter_subscription_enable({}, true);",
                    job.target.query_error("enabling the subscription", &e2),
                    quote::literal(&follow.subscription)
                ),
            };
            return Err(StepError::Other(format!("{err}; {again}")));
        }
        t.subscription_dropped = true;
        tracing::info!(subscription = %follow.subscription, "cutover: pglogical subscription dropped");
    }
    t.slot_dropped = slot.is_empty() || !slot_exists(job, source, &slot).await?;
    if !t.slot_dropped {
        t.left_for_cleanup.push(format!(
            "replication slot {slot} on the source (pglogical could not drop it: see the target's server log)"
        ));
    }
    t.left_for_cleanup.extend([
        format!(
            "provider node {} and replication sets {} and {} on the source",
            names.provider_node, names.replication_set, names.insert_set
        ),
        format!("subscriber node {} on the target", names.subscriber_node),
        "the pglogical extension on either side, where pgmove created it".to_string(),
    ]);
    Ok(t)
}

/// A transaction with an xid: its synchronous commit flushes the WAL written before it.
const FLUSH_SQL: &str =
    "BEGIN; SET LOCAL synchronous_commit = on; SELECT pg_catalog.txid_current(); COMMIT";
/// A non-transactional logical message with prefix `$1`: WAL that wakes the walsender.
const NUDGE_SQL: &str = "SELECT pg_logical_emit_message(false, $1, 'wake up')";
/// Disables subscription `$1` now (its apply worker stops).
const DISABLE_SQL: &str = "SELECT pglogical.alter_subscription_disable($1, true)";
/// Enables subscription `$1` again now.
const ENABLE_SQL: &str = "SELECT pglogical.alter_subscription_enable($1, true)";
/// Drops subscription `$1` if it exists: its sync state, its origin, and its slot on the
/// provider when the provider is reachable.
const DROP_SQL: &str = "SELECT pglogical.drop_subscription($1, true)";
/// Whether slot `$1` exists on the source, and whether a walsender uses it.
const SLOT_SQL: &str = "SELECT active FROM pg_replication_slots WHERE slot_name = $1";

async fn slot_row(
    job: &CutoverJob,
    source: &Client,
    slot: &str,
) -> Result<Option<bool>, StepError> {
    Ok(source
        .query_opt(SLOT_SQL, &[&slot])
        .await
        .map_err(|e| {
            job.source
                .query_error(&format!("reading replication slot {slot}"), &e)
        })?
        .map(|r| r.get(0)))
}

async fn slot_active(job: &CutoverJob, source: &Client, slot: &str) -> Result<bool, StepError> {
    Ok(slot_row(job, source, slot).await? == Some(true))
}

async fn slot_exists(job: &CutoverJob, source: &Client, slot: &str) -> Result<bool, StepError> {
    Ok(slot_row(job, source, slot).await?.is_some())
}

/// The report's lines about the teardown.
pub(super) fn render(t: &Teardown) -> String {
    let slot = match (t.slot.is_empty(), t.slot_dropped) {
        (true, _) => "its slot went with it".to_string(),
        (false, true) => format!("its slot {} is gone from the source", t.slot),
        (false, false) => format!("its slot {} is STILL on the source", t.slot),
    };
    let mut s = format!(
        "  pglogical: subscription {} {}; {slot}\n",
        t.subscription,
        if t.subscription_dropped {
            "disabled and dropped on the target"
        } else {
            "was already gone from the target (an earlier cutover dropped it)"
        },
    );
    s.push_str(&format!(
        "  left for pgmove cleanup: {}\n",
        t.left_for_cleanup.join("; ")
    ));
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    fn job() -> CutoverJob {
        let plan = crate::plan::parse(
            "version: 1\nname: shop\nstrategy: pglogical\nsource:\n  dsn: postgres://app@old/shop\ntarget:\n  dsn: postgres://app@new/shop\n",
            "shop.yaml",
        )
        .expect("valid plan");
        let ep = |side, dsn: &str| {
            crate::pg::Endpoint::from_dsn(side, dsn, None, &|_| None).expect("endpoint")
        };
        let source = ep(crate::pg::Side::Source, "postgres://app@old/shop");
        let target = ep(crate::pg::Side::Target, "postgres://app@new/shop");
        CutoverJob {
            plan,
            source,
            target,
            applier: super::super::Applier::Running,
            timeout: Duration::from_secs(1),
            progress: crate::progress::Progress::new(false),
        }
    }

    #[test]
    fn a_run_short_of_replicating_is_not_ready_with_the_fix() {
        let j = job();
        assert!(check_run(&j, &["state".into(), "replicating".into()], None).is_ok());
        match check_run(&j, &["state".into(), "sync".into()], Some("boom")) {
            Err(CutoverError::NotReady(m)) => {
                assert!(m.contains("has not reached step `replicating`"), "{m}");
                assert!(m.contains("steps done: state, sync"), "{m}");
                assert!(m.contains("boom"), "{m}");
                assert!(m.contains("pgmove apply shop.yaml"), "{m}");
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn the_teardown_says_what_is_left_for_cleanup() {
        let t = Teardown {
            subscription: "pgmove_shop".into(),
            slot: "pgl_shop".into(),
            subscription_dropped: true,
            slot_dropped: false,
            left_for_cleanup: vec!["x".into()],
        };
        let r = render(&t);
        assert!(r.contains("disabled and dropped on the target"), "{r}");
        assert!(r.contains("pgl_shop is STILL on the source"), "{r}");
        assert!(r.contains("left for pgmove cleanup: x"), "{r}");
    }
}
