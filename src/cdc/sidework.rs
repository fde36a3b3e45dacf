//! The apply loop's side work, off its path: the catch-up log line and the lag samples for
//! `pgmove report`, both from one reading of the source's WAL position.
//!
//! The loop hands a [`Tick`] to a task of its own and never waits for it: the task keeps one
//! source connection (for `pg_current_wal_lsn()`) and one target connection (for
//! `pgmove.lag_samples`), opened when first needed and opened again after a failure. Each
//! reading and each write has [`WITHIN`] to finish; a slow or hung server costs a log line or a
//! sample (a gap in a chart), never apply time. While the task is busy, ticks are dropped.

use std::time::Duration;

use tokio::sync::mpsc;
use tokio_postgres::Client;

use crate::pg::{Endpoint, Lsn, PgError};

/// How long one reading of the source's WAL position, or one write of a lag sample (with its
/// connection, when one is opened), may take.
pub(super) const WITHIN: Duration = Duration::from_secs(2);

/// The source's current WAL write position (one row, one `pg_lsn` column).
pub(super) const CURRENT_WAL_LSN_SQL: &str = "SELECT pg_current_wal_lsn()";

/// What the loop asks for at one flush.
#[derive(Clone, Copy, Debug, PartialEq)]
pub(super) struct Tick {
    /// End LSN of the last source transaction the target committed.
    pub applied: Lsn,
    /// The WAL end the stream last reported: the lag's end when the source does not answer.
    pub stream_end: Lsn,
    /// Log the catch-up line, with the catch-up rate (source WAL bytes applied per second)
    /// when it is known.
    pub log: Option<Option<f64>>,
    /// Record a lag sample.
    pub sample: bool,
}

/// The handle of the side-work task: dropping it ends the task after the tick in hand.
pub(super) struct SideWork {
    tx: mpsc::Sender<Tick>,
}

impl SideWork {
    /// Starts the task (it connects to nothing before its first tick).
    pub(super) fn start(source: Endpoint, target: Endpoint, plan_name: String) -> SideWork {
        let (tx, rx) = mpsc::channel(1);
        tokio::spawn(
            Task {
                source,
                target,
                plan_name,
                source_client: None,
                target_client: None,
            }
            .run(rx),
        );
        SideWork { tx }
    }

    /// Hands `t` to the task; never waits. False when it was dropped (the task still busy
    /// with an earlier tick).
    pub(super) fn tick(&self, t: Tick) -> bool {
        match self.tx.try_send(t) {
            Ok(()) => true,
            Err(_) => {
                tracing::debug!(
                    "lag sample and catch-up log skipped: the previous ones are still waiting for a server"
                );
                false
            }
        }
    }
}

struct Task {
    source: Endpoint,
    target: Endpoint,
    plan_name: String,
    /// Kept between ticks; `None` after a failure (a hung server's is abandoned).
    source_client: Option<Client>,
    target_client: Option<Client>,
}

impl Task {
    async fn run(mut self, mut rx: mpsc::Receiver<Tick>) {
        while let Some(t) = rx.recv().await {
            let wal = self.wal_position().await;
            if let Some(rate) = t.log {
                log_catch_up(t.applied, wal.unwrap_or(t.stream_end), rate);
            }
            if t.sample {
                match wal {
                    Some(source) => self.sample(source, t.applied).await,
                    None => tracing::debug!(
                        "lag sample not recorded: the source's WAL position was not read"
                    ),
                }
            }
        }
    }

    /// The source's WAL position, read within [`WITHIN`] on the kept connection.
    async fn wal_position(&mut self) -> Option<Lsn> {
        let source = &self.source;
        let kept = &mut self.source_client;
        let read = async {
            let c = kept_client(source, kept).await?;
            let row = c
                .query_one(CURRENT_WAL_LSN_SQL, &[])
                .await
                .map_err(|e| source.query_error("reading the WAL position", &e))?;
            row.try_get::<_, Lsn>(0)
                .map_err(|e| source.query_error("reading the WAL position", &e))
        };
        match tokio::time::timeout(WITHIN, read).await {
            Ok(Ok(lsn)) => Some(lsn),
            Ok(Err(e)) => {
                tracing::debug!("the source's WAL position not read: {e}");
                self.source_client = None;
                None
            }
            Err(_) => {
                tracing::debug!("the source's WAL position not read within {WITHIN:?}");
                self.source_client = None;
                None
            }
        }
    }

    /// Records a lag sample within [`WITHIN`] on the kept target connection; best effort.
    async fn sample(&mut self, source: Lsn, applied: Lsn) {
        let target = &self.target;
        let plan_name = &self.plan_name;
        let kept = &mut self.target_client;
        let write = async {
            let c = kept_client(target, kept).await?;
            crate::state::history::sample_lag(c, target, plan_name, source, applied).await
        };
        match tokio::time::timeout(WITHIN, write).await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => {
                tracing::debug!("lag sample not recorded: {e}");
                self.target_client = None;
            }
            Err(_) => {
                tracing::debug!("lag sample not recorded within {WITHIN:?}");
                self.target_client = None;
            }
        }
    }
}

/// The kept connection to `ep`, opened when there is none (or it closed).
async fn kept_client<'c>(
    ep: &Endpoint,
    kept: &'c mut Option<Client>,
) -> Result<&'c Client, PgError> {
    if let Some(c) = kept.take().filter(|c| !c.is_closed()) {
        return Ok(kept.insert(c));
    }
    let c = ep.connect_short().await?;
    Ok(kept.insert(c))
}

/// The catch-up line: the lag (to `end`, the source's WAL position or the stream's end), the
/// catch-up rate and the time to catch up at it. Nothing when not behind.
fn log_catch_up(applied: Lsn, end: Lsn, rate: Option<f64>) {
    let lag = end.bytes_since(applied);
    if lag == 0 {
        return;
    }
    let eta = crate::rate::eta(lag as f64, rate);
    tracing::info!(
        applied = %applied,
        lag_bytes = lag,
        bytes_per_s = rate.map(f64::round),
        eta_s = eta.map(|d| d.as_secs()),
        "catching up: {} behind the source, applying {}, caught up in {}",
        crate::planner::bytes(lag as i64),
        crate::rate::bytes_text(rate),
        crate::rate::eta_text(eta)
    );
}
