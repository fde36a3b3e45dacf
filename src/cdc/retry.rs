//! Change capture that survives dropped connections.
//!
//! [`run`] runs [`crate::cdc::run::run`] and, when it fails for a reason a new connection may
//! not have — a connection to either server broke or was closed, a server is shutting down,
//! restarting or not yet accepting connections — waits (exponential backoff with a little
//! jitter) and runs it again. Each run resumes from `pgmove.progress` on the target, so a retry
//! neither loses nor repeats a change.
//!
//! Every other failure returns at once: a SQL error applying a change, a message that cannot be
//! decoded, a missing slot or publication, refused authentication, a DDL statement the loop
//! stops at. Transient failures are retried until [`RetryPolicy::max_elapsed`] has passed
//! without any progress (the clock restarts whenever an attempt moved `pgmove.progress` on, or
//! ran for [`RetryPolicy::stable_after`]); then [`CdcError::GaveUp`] names how long it retried
//! and the last error.
//!
//! Right after a reconnect, `START_REPLICATION` can find the slot still "active for PID n":
//! the walsender of the broken session has not exited yet. That is retried too, for at most
//! [`RetryPolicy::slot_busy_max`]; on the first attempt it means another `pgmove apply` streams
//! from the slot, and fails at once.

use std::time::{Duration, Instant};

use tokio::sync::watch;

use crate::cdc::slot::{SlotError, SlotProblem};
use crate::cdc::stream::StreamError;
use crate::cdc::{CdcError, CdcJob, CdcOutcome};
use crate::pg::{Cause, Lsn, PgError};

/// How long and how often to retry.
#[derive(Clone, Debug)]
pub struct RetryPolicy {
    /// The wait before the first retry; it doubles with every failed retry.
    pub initial_delay: Duration,
    /// The longest wait between two attempts.
    pub max_delay: Duration,
    /// Give up when transient failures went on for this long without progress.
    pub max_elapsed: Duration,
    /// An attempt that ran this long before failing counts as progress (an idle source moves
    /// `pgmove.progress` on only when it writes).
    pub stable_after: Duration,
    /// How long "the slot is active for PID n" is retried after a reconnect.
    pub slot_busy_max: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            initial_delay: Duration::from_millis(500),
            max_delay: Duration::from_secs(30),
            max_elapsed: Duration::from_secs(600),
            stable_after: Duration::from_secs(60),
            // Longer than the default wal_sender_timeout (60 s), after which the server ends
            // a walsender whose client went away without closing the connection.
            slot_busy_max: Duration::from_secs(120),
        }
    }
}

/// The fraction by which jitter shortens a delay, at most.
const JITTER: f64 = 0.2;

impl RetryPolicy {
    /// The wait before retry `n` (1 for the first retry after a failure) without jitter:
    /// `initial_delay` doubled `n - 1` times, at most `max_delay`.
    pub fn delay(&self, n: u32) -> Duration {
        let doublings = n.saturating_sub(1).min(31);
        self.initial_delay
            .saturating_mul(1u32 << doublings)
            .min(self.max_delay)
    }
}

/// `delay` shortened by up to a fifth, by `unit` in `[0, 1)`, so that several clients do not
/// retry in step.
pub fn jitter(delay: Duration, unit: f64) -> Duration {
    delay.mul_f64(1.0 - JITTER * unit.clamp(0.0, 1.0))
}

/// How a failure bears on trying again.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Class {
    /// A connection broke, or a server is unavailable for now: a new attempt may work.
    Transient,
    /// `START_REPLICATION` found the slot in use by another connection (SQLSTATE 55006): after
    /// a reconnect, the walsender of the broken session that has not exited yet.
    SlotBusy,
    /// Trying again would fail the same way.
    Permanent,
}

/// Classifies a failure of [`crate::cdc::run::run`] from the error's variants and causes.
pub fn classify(e: &CdcError) -> Class {
    match e {
        CdcError::Pg(p) => classify_pg(p),
        CdcError::Applying { source, .. } => classify_pg(source),
        CdcError::Stream(s) => classify_stream(s),
        CdcError::Apply { .. }
        | CdcError::Ddl { .. }
        | CdcError::GaveUp { .. }
        | CdcError::Task(_) => Class::Permanent,
    }
}

fn classify_pg(e: &PgError) -> Class {
    match e {
        // The session ended under a request: the connection broke, or the server ended it.
        PgError::Lost { .. } => Class::Transient,
        PgError::Connect { cause, .. } if cause.is_transient() => Class::Transient,
        // Authentication, a missing database, TLS, the DSN, an SQL error.
        _ => Class::Permanent,
    }
}

fn classify_stream(e: &StreamError) -> Class {
    match e {
        StreamError::Open(SlotError::Connect {
            problem:
                Some(
                    SlotProblem::Unreachable
                    | SlotProblem::Unavailable
                    | SlotProblem::NoFreeWalSender,
                ),
            ..
        }) => Class::Transient,
        StreamError::Open(SlotError::Pg(p)) => classify_pg(p),
        StreamError::Open(_) => Class::Permanent,
        StreamError::Stream {
            cause: Cause::Server(code),
            ..
        } if code == "55006" => Class::SlotBusy,
        StreamError::Stream { cause, .. } if cause.is_transient() => Class::Transient,
        StreamError::Stream { .. } | StreamError::Decode { .. } => Class::Permanent,
    }
}

/// What to do after a failed attempt.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Decision {
    /// Wait this long (before jitter) and try again; the number of the retry in the streak.
    Retry { delay: Duration, retry: u32 },
    /// Transient failures went on for too long: give up.
    GiveUp { elapsed: Duration, attempts: u32 },
    /// Return the error as it is.
    Fail,
}

/// The failures since the last progress.
#[derive(Clone, Debug, Default)]
struct Streak {
    failures: u32,
    since: Option<Instant>,
    slot_busy_since: Option<Instant>,
}

impl Streak {
    /// An attempt made progress: the next failure starts a new streak.
    fn progressed(&mut self) {
        *self = Streak::default();
    }

    /// Attempt `attempt` (1 for the first of this [`run`]) failed with `class` at `now`.
    fn failed(
        &mut self,
        class: Class,
        attempt: u32,
        now: Instant,
        policy: &RetryPolicy,
    ) -> Decision {
        match class {
            Class::Permanent => return Decision::Fail,
            // On the first attempt, another process streams from the slot.
            Class::SlotBusy if attempt <= 1 => return Decision::Fail,
            Class::SlotBusy => {
                let since = *self.slot_busy_since.get_or_insert(now);
                if now.duration_since(since) >= policy.slot_busy_max {
                    return Decision::Fail;
                }
            }
            Class::Transient => self.slot_busy_since = None,
        }
        self.failures += 1;
        let since = *self.since.get_or_insert(now);
        let elapsed = now.duration_since(since);
        if elapsed >= policy.max_elapsed {
            return Decision::GiveUp {
                elapsed,
                attempts: self.failures,
            };
        }
        Decision::Retry {
            delay: policy
                .delay(self.failures)
                .min(policy.max_elapsed - elapsed),
            retry: self.failures,
        }
    }
}

/// The plan's row of `pgmove.progress`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
struct Mark {
    applied: Option<Lsn>,
    transactions: i64,
    changes: i64,
}

async fn read_mark(job: &CdcJob) -> Result<Mark, CdcError> {
    let c = job.target.connect_short().await?;
    let row = crate::state::progress::read(&c, &job.target, &job.plan_name).await?;
    Ok(row
        .map(|p| Mark {
            applied: Some(p.applied_lsn),
            transactions: p.transactions,
            changes: p.changes,
        })
        .unwrap_or_default())
}

/// Adds what the target applied between two readings of `pgmove.progress` to `total`; true
/// when it moved on.
fn account(total: &mut CdcOutcome, before: &Mark, now: &Mark) -> bool {
    total.transactions += (now.transactions - before.transactions).max(0) as u64;
    total.changes += (now.changes - before.changes).max(0) as u64;
    if let Some(lsn) = now.applied {
        total.applied_lsn = lsn.to_string();
    }
    now.applied > before.applied
}

/// What the attempts applied, summed from readings of `pgmove.progress` between them (a
/// failed attempt returns no outcome).
#[derive(Debug, Default)]
struct Tally {
    total: CdcOutcome,
    mark: Option<Mark>,
}

impl Tally {
    /// Takes a reading; true when `pgmove.progress` moved on since the previous one.
    fn note(&mut self, now: Mark) -> bool {
        let moved = account(&mut self.total, &self.mark.unwrap_or(now), &now);
        self.mark = Some(now);
        moved
    }
}

/// How long a reading of `pgmove.progress` between attempts may take: the target may be what
/// failed.
const QUICK_READ: Duration = Duration::from_secs(2);

async fn read_mark_quickly(job: &CdcJob) -> Option<Mark> {
    match tokio::time::timeout(QUICK_READ, read_mark(job)).await {
        Ok(Ok(m)) => Some(m),
        _ => None,
    }
}

/// A number in `[0, 1)` that differs between calls and processes.
fn unit_random() -> f64 {
    use std::collections::hash_map::RandomState;
    use std::hash::{BuildHasher, Hasher};
    let mut h = RandomState::new().build_hasher();
    h.write_u128(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or(0),
    );
    (h.finish() >> 11) as f64 / (1u64 << 53) as f64
}

/// Runs change capture like [`crate::cdc::run::run`], retrying transient failures (see the
/// module documentation). Returns the sum of what every attempt applied when `stop` turns true
/// (also while waiting to retry), or the first permanent error, or [`CdcError::GaveUp`].
pub async fn run(
    job: &CdcJob,
    mut stop: watch::Receiver<bool>,
    policy: &RetryPolicy,
) -> Result<CdcOutcome, CdcError> {
    let mut tally = Tally::default();
    let mut streak = Streak::default();
    let mut attempt = 0u32;
    loop {
        attempt += 1;
        let started = Instant::now();
        // Read where the target is first: the outcome of this attempt starts from there.
        let result = match read_mark(job).await {
            Ok(now) => {
                if tally.note(now) {
                    streak.progressed();
                }
                crate::cdc::run::run(job, stop.clone()).await
            }
            Err(e) => Err(e),
        };
        let e = match result {
            Ok(o) => {
                let mut total = tally.total;
                total.transactions += o.transactions;
                total.changes += o.changes;
                total.applied_lsn = o.applied_lsn;
                return Ok(total);
            }
            Err(e) => e,
        };
        let class = classify(&e);
        if class == Class::Permanent {
            return Err(e);
        }
        // Whether this attempt got anywhere before it failed.
        if let Some(now) = read_mark_quickly(job).await {
            if tally.note(now) {
                streak.progressed();
            }
        }
        if started.elapsed() >= policy.stable_after {
            streak.progressed();
        }
        if *stop.borrow() {
            // Asked to stop: nothing is lost, the next run resumes from pgmove.progress.
            tracing::info!(error = %e, "change capture stopped after a connection failure");
            return Ok(tally.total);
        }
        let (delay, retry) = match streak.failed(class, attempt, Instant::now(), policy) {
            Decision::Fail => return Err(e),
            Decision::GiveUp { elapsed, attempts } => {
                return Err(CdcError::GaveUp {
                    elapsed,
                    attempts,
                    last: Box::new(e),
                })
            }
            Decision::Retry { delay, retry } => (delay, retry),
        };
        let delay = jitter(delay, unit_random());
        tracing::warn!(
            error = %e,
            attempt = retry + 1,
            delay_ms = delay.as_millis() as u64,
            "change capture failed; reconnecting and resuming from pgmove.progress"
        );
        // Stopped (or the sender is gone, which also ends the loop in cdc::run). The
        // `wait_for` guard is dropped inside the select so the future stays `Send`.
        let stopped = tokio::select! {
            _ = tokio::time::sleep(delay) => false,
            r = stop.wait_for(|s| *s) => { let _ = r.map(|_| ()); true }
        };
        if stopped {
            tracing::info!("change capture stopped while waiting to reconnect");
            if let Some(now) = read_mark_quickly(job).await {
                tally.note(now);
            }
            return Ok(tally.total);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cdc::pgoutput;
    use crate::pg::Side;
    use pgwire_replication::PgWireError;

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    fn connect(cause: Cause) -> PgError {
        PgError::Connect {
            side: Side::Target,
            endpoint: "postgres://x@h/db".into(),
            message: "m".into(),
            hint: None,
            cause,
        }
    }

    fn stream(cause: Cause) -> CdcError {
        CdcError::Stream(StreamError::Stream {
            side: Side::Source,
            slot: "s".into(),
            message: "m".into(),
            hint: None,
            cause,
        })
    }

    fn open(problem: Option<SlotProblem>) -> CdcError {
        CdcError::Stream(StreamError::Open(SlotError::Connect {
            side: Side::Source,
            endpoint: "e".into(),
            problem,
            message: "m".into(),
            hint: None,
        }))
    }

    fn server(code: &str) -> Cause {
        Cause::Server(code.into())
    }

    #[test]
    fn lost_sessions_and_unavailable_servers_are_transient() {
        let lost = PgError::Lost {
            side: Side::Target,
            message: "applying changes: connection closed".into(),
        };
        assert_eq!(classify(&CdcError::Pg(lost)), Class::Transient);
        let lost = PgError::Lost {
            side: Side::Target,
            message: "FATAL: terminating connection due to administrator command".into(),
        };
        assert_eq!(
            classify(&CdcError::Applying {
                lsn: Lsn(1),
                source: lost
            }),
            Class::Transient
        );
        for cause in [
            Cause::Connection,
            server("57P01"),
            server("57P02"),
            server("57P03"),
            server("08006"),
            server("08001"),
            server("53300"),
        ] {
            assert_eq!(
                classify(&CdcError::Pg(connect(cause.clone()))),
                Class::Transient,
                "{cause:?}"
            );
            assert_eq!(
                classify(&stream(cause.clone())),
                Class::Transient,
                "{cause:?}"
            );
        }
        for p in [
            SlotProblem::Unreachable,
            SlotProblem::Unavailable,
            SlotProblem::NoFreeWalSender,
        ] {
            assert_eq!(classify(&open(Some(p))), Class::Transient, "{p:?}");
        }
        assert_eq!(
            classify(&CdcError::Stream(StreamError::Open(SlotError::Pg(
                connect(Cause::Connection)
            )))),
            Class::Transient
        );
    }

    #[test]
    fn errors_a_retry_would_repeat_are_permanent() {
        let sql = PgError::Query {
            side: Side::Target,
            message: "applying changes: ERROR: column \"v\" of relation \"t\" does not exist"
                .into(),
        };
        assert_eq!(
            classify(&CdcError::Applying {
                lsn: Lsn(1),
                source: sql
            }),
            Class::Permanent
        );
        assert_eq!(
            classify(&CdcError::Apply {
                lsn: Lsn(1),
                message: "a value is not valid UTF-8".into()
            }),
            Class::Permanent
        );
        assert_eq!(
            classify(&CdcError::Ddl {
                lsn: Lsn(1),
                message: "refused".into()
            }),
            Class::Permanent
        );
        // Authentication, a missing database or role, TLS or configuration on connect.
        for cause in [
            server("28P01"),
            server("28000"),
            server("3D000"),
            Cause::Other,
        ] {
            assert_eq!(
                classify(&CdcError::Pg(connect(cause.clone()))),
                Class::Permanent,
                "{cause:?}"
            );
        }
        // The slot or the publication is gone; the stream broke the protocol.
        for cause in [server("42704"), server("55000"), Cause::Other] {
            assert_eq!(
                classify(&stream(cause.clone())),
                Class::Permanent,
                "{cause:?}"
            );
        }
        for p in [
            None,
            Some(SlotProblem::Authentication),
            Some(SlotProblem::NoHbaEntry),
            Some(SlotProblem::MissingRight),
            Some(SlotProblem::Tls),
            Some(SlotProblem::WalLevel),
        ] {
            assert_eq!(classify(&open(p)), Class::Permanent, "{p:?}");
        }
        let decode = pgoutput::decode(b"?", false).expect_err("unknown message type");
        assert_eq!(
            classify(&CdcError::Stream(StreamError::Decode {
                side: Side::Source,
                slot: "s".into(),
                lsn: Lsn(1),
                source: decode
            })),
            Class::Permanent
        );
    }

    #[test]
    fn an_active_slot_is_its_own_class() {
        assert_eq!(classify(&stream(server("55006"))), Class::SlotBusy);
    }

    #[test]
    fn replication_driver_errors_carry_their_cause() {
        use crate::cdc::slot::wire_cause;
        let e = PgWireError::Server(
            "terminating connection due to administrator command (SQLSTATE 57P01)".into(),
        );
        assert_eq!(wire_cause(&e), server("57P01"));
        let e = PgWireError::Server(
            "replication slot \"pgmove_x\" is active for PID 4242 (SQLSTATE 55006)".into(),
        );
        assert_eq!(wire_cause(&e), server("55006"));
        assert_eq!(
            wire_cause(&PgWireError::Server("no code here".into())),
            Cause::Other
        );
        let eof = std::io::Error::new(std::io::ErrorKind::UnexpectedEof, "EOF");
        assert_eq!(wire_cause(&PgWireError::from(eof)), Cause::Connection);
        let bad = std::io::Error::new(std::io::ErrorKind::InvalidData, "bad certificate");
        assert_eq!(wire_cause(&PgWireError::from(bad)), Cause::Other);
        assert_eq!(
            wire_cause(&PgWireError::Auth("password authentication failed".into())),
            Cause::Other
        );
        assert_eq!(
            wire_cause(&PgWireError::Task("worker ended".into())),
            Cause::Connection
        );
    }

    #[test]
    fn backoff_doubles_from_half_a_second_to_thirty() {
        let p = RetryPolicy::default();
        let schedule: Vec<Duration> = (1..=9).map(|n| p.delay(n)).collect();
        assert_eq!(
            schedule,
            [
                ms(500),
                ms(1000),
                ms(2000),
                ms(4000),
                ms(8000),
                ms(16000),
                ms(30000),
                ms(30000),
                ms(30000)
            ]
        );
        assert_eq!(p.delay(1000), ms(30000));
        // Jitter only shortens, by at most a fifth.
        for n in 1..=10 {
            for u in [0.0, 0.3, 0.999] {
                let d = jitter(p.delay(n), u);
                assert!(
                    d <= p.delay(n) && d >= p.delay(n).mul_f64(0.8),
                    "{n} {u}: {d:?}"
                );
            }
        }
        assert_ne!(jitter(p.delay(3), 0.0), jitter(p.delay(3), 0.5));
        let u = unit_random();
        assert!((0.0..1.0).contains(&u));
    }

    #[test]
    fn transient_failures_are_retried_until_max_elapsed_without_progress() {
        let p = RetryPolicy::default();
        let t0 = Instant::now();
        let mut s = Streak::default();
        assert_eq!(
            s.failed(Class::Transient, 1, t0, &p),
            Decision::Retry {
                delay: ms(500),
                retry: 1
            }
        );
        assert_eq!(
            s.failed(Class::Transient, 2, t0 + ms(600), &p),
            Decision::Retry {
                delay: ms(1000),
                retry: 2
            }
        );
        // The last wait ends at the deadline, not beyond.
        let late = t0 + p.max_elapsed - ms(100);
        match s.failed(Class::Transient, 3, late, &p) {
            Decision::Retry { delay, .. } => assert_eq!(delay, ms(100)),
            d => panic!("{d:?}"),
        }
        assert_eq!(
            s.failed(Class::Transient, 4, t0 + p.max_elapsed, &p),
            Decision::GiveUp {
                elapsed: p.max_elapsed,
                attempts: 4
            }
        );
        // Progress starts the clock and the backoff over.
        s.progressed();
        let t1 = t0 + p.max_elapsed * 2;
        assert_eq!(
            s.failed(Class::Transient, 5, t1, &p),
            Decision::Retry {
                delay: ms(500),
                retry: 1
            }
        );
        assert_eq!(s.failed(Class::Permanent, 6, t1, &p), Decision::Fail);
    }

    #[test]
    fn a_busy_slot_is_retried_only_after_a_reconnect_and_not_for_long() {
        let p = RetryPolicy::default();
        let t0 = Instant::now();
        let mut s = Streak::default();
        // First attempt: another apply streams from the slot.
        assert_eq!(s.failed(Class::SlotBusy, 1, t0, &p), Decision::Fail);
        let mut s = Streak::default();
        assert!(matches!(
            s.failed(Class::Transient, 1, t0, &p),
            Decision::Retry { .. }
        ));
        assert!(matches!(
            s.failed(Class::SlotBusy, 2, t0 + ms(600), &p),
            Decision::Retry { retry: 2, .. }
        ));
        assert!(matches!(
            s.failed(Class::SlotBusy, 3, t0 + ms(600) + p.slot_busy_max / 2, &p),
            Decision::Retry { retry: 3, .. }
        ));
        assert_eq!(
            s.failed(Class::SlotBusy, 4, t0 + ms(600) + p.slot_busy_max, &p),
            Decision::Fail
        );
    }

    #[test]
    fn progress_is_summed_between_readings() {
        let mut total = CdcOutcome::default();
        let a = Mark {
            applied: Some(Lsn(100)),
            transactions: 10,
            changes: 30,
        };
        let b = Mark {
            applied: Some(Lsn(200)),
            transactions: 14,
            changes: 41,
        };
        assert!(account(&mut total, &a, &b));
        assert!(!account(&mut total, &b, &b));
        assert_eq!((total.transactions, total.changes), (4, 11));
        assert_eq!(total.applied_lsn, Lsn(200).to_string());
        // From no row (nothing applied yet) to the first.
        let mut total = CdcOutcome::default();
        assert!(account(&mut total, &Mark::default(), &a));
        assert_eq!((total.transactions, total.changes), (10, 30));

        // The first reading is where counting starts; each later one adds what was applied.
        let mut t = Tally::default();
        assert!(!t.note(a));
        assert_eq!(t.total.transactions, 0);
        assert_eq!(t.total.applied_lsn, Lsn(100).to_string());
        assert!(t.note(b));
        assert!(!t.note(b));
        assert_eq!((t.total.transactions, t.total.changes), (4, 11));
    }
}
