//! The pgoutput change stream of a logical slot, decoded, with standby status feedback of what
//! the target durably applied.
//!
//! [`ChangeStream::start`] opens a replication session with [`slot::open_session`] (TLS, auth
//! and session settings as for the slot) and sends `START_REPLICATION` through
//! pgwire-replication 0.5 (vendored with a patch, `vendor/pgwire-replication/PGMOVE-PATCH.md`);
//! [`ChangeStream::next`] yields each message as `(Lsn, Message)`;
//! [`ChangeStream::confirm`] reports a durably applied LSN to the server.
//!
//! Protocol: on PostgreSQL 14+ the stream asks for `proto_version '2'` with `streaming 'on'`
//! (unless [`StreamOptions::streaming`] is off): a transaction larger than the server's
//! `logical_decoding_work_mem` then flows while it is in progress, as Stream Start / Stream
//! Stop blocks of changes (each carrying its (sub)transaction id), ended by Stream Commit or
//! Stream Abort; the consumer spools them until the commit ([`crate::cdc::spool`]). Older
//! servers get protocol 1, where a large transaction arrives only after it committed, whole.
//! [`ChangeStream::protocol_version`] tells which.
//!
//! What pgwire-replication gives:
//! - It decodes Begin and Commit (and, with protocol 1, Message) itself and hands them over
//!   as events without their raw bytes (Commit without its flags, which are always 0); every
//!   other pgoutput message comes as raw `XLogData` bytes, which [`pgoutput::StreamDecoder`]
//!   decodes without copying, knowing whether it is inside a stream block. The raw bytes of
//!   the last one stay available ([`ChangeStream::last_raw`]) for spooling.
//!   Keepalives are answered by the driver (with the confirmed LSN) and tracked here
//!   ([`ChangeStream::server_wal_end`]).
//! - Feedback is explicit: the driver reports only what [`ChangeStream::confirm`] was given
//!   (`update_applied_lsn`), as flushed and applied, every `status_interval`; before the
//!   first confirm it reports `start_lsn` (`0/0`, ignored by the server, when starting from the
//!   slot's own position).
//!
//! **Feedback must only ever report what the target committed.** The server discards, and
//! never sends again, everything before a confirmed LSN: confirm the end LSN of a source
//! transaction only once the target transaction that applied it (and wrote that LSN into
//! `pgmove.progress`) has committed. A restart then resumes from `pgmove.progress`: pass it as
//! `start_lsn`, and the server skips every transaction that committed before it.

use std::time::{Duration, Instant};

use pgwire_replication::{PgWireError, Publication, ReplicationClient, ReplicationEvent};

use crate::cdc::pgoutput::{self, Begin, Commit, DecodeError, LogicalMessage, Message};
use crate::cdc::slot::{self, SlotError};
use crate::pg::{self, quote, Endpoint, Lsn, Side};

/// How the stream runs.
#[derive(Clone, Debug)]
pub struct StreamOptions {
    /// How often the driver sends standby status updates (and so how soon a confirmed LSN
    /// reaches the server).
    pub status_interval: Duration,
    /// Ask for column values in binary format (`binary 'true'`, PostgreSQL 14+; every
    /// published column's type needs a binary send function).
    pub binary: bool,
    /// Events buffered between the driver's task and [`ChangeStream::next`].
    pub buffer_events: usize,
    /// On PostgreSQL 14+, ask for protocol 2 and `streaming 'on'` (large in-progress
    /// transactions flow before their commit). Off, or an older server: protocol 1.
    pub streaming: bool,
    /// How long the server may stay silent before the session counts as lost (a stalled
    /// server or network). The driver asks the server for a reply on every idle wakeup, so a
    /// live server is never silent for long; run uses 2 x the source's `wal_sender_timeout`
    /// ([`stall_timeout_for`]).
    pub stall_timeout: Duration,
}

impl Default for StreamOptions {
    fn default() -> Self {
        StreamOptions {
            status_interval: Duration::from_secs(1),
            binary: false,
            buffer_events: 8192,
            streaming: true,
            stall_timeout: stall_timeout_for(60_000),
        }
    }
}

/// The silence after which a replication session counts as lost: twice the server's
/// `wal_sender_timeout` (in ms; 0 means disabled, taken as the default 60 s), at least 10 s.
pub fn stall_timeout_for(wal_sender_timeout_ms: i64) -> Duration {
    let ms = if wal_sender_timeout_ms <= 0 {
        60_000
    } else {
        wal_sender_timeout_ms
    };
    Duration::from_millis(ms.saturating_mul(2) as u64).max(Duration::from_secs(10))
}

/// When a silence is first logged: half the stall timeout, at most 30 s (within a minute).
fn stall_warning_after(stall_timeout: Duration) -> Duration {
    (stall_timeout / 2).min(Duration::from_secs(30))
}

/// A failure of the change stream. Never holds a password.
#[derive(Debug, thiserror::Error)]
pub enum StreamError {
    /// Opening the replication session failed.
    #[error(transparent)]
    Open(#[from] SlotError),
    /// The server refused or ended the stream, or the connection broke.
    #[error("{side}: replication stream from slot {slot}: {message}{}", hint_suffix(.hint))]
    Stream {
        side: Side,
        slot: String,
        message: String,
        hint: Option<String>,
        /// What failed: the server's SQLSTATE, the network, or something else.
        cause: pg::Cause,
    },
    /// A message could not be decoded.
    #[error("{side}: replication stream from slot {slot}, message at {lsn}: {source}")]
    Decode {
        side: Side,
        slot: String,
        lsn: Lsn,
        source: DecodeError,
    },
}

fn hint_suffix(hint: &Option<String>) -> String {
    crate::report::Hint::suffix(hint.as_deref())
}

/// The decoded pgoutput stream of one slot.
pub struct ChangeStream {
    client: ReplicationClient,
    endpoint: Endpoint,
    slot: String,
    decoder: pgoutput::StreamDecoder,
    confirmed: Lsn,
    server_wal_end: Lsn,
    status_interval: Duration,
    proto_version: u32,
    /// The position and raw bytes of the last `XLogData` message returned.
    last_raw: Option<(Lsn, bytes::Bytes)>,
    /// See [`StreamOptions::stall_timeout`].
    stall_timeout: Duration,
    /// Since when [`next`](Self::next) has found nothing from the server (`None` after
    /// anything arrived). Kept across calls, which the caller often cancels.
    quiet_since: Option<Instant>,
    /// Whether the current silence was logged.
    stall_logged: bool,
}

impl std::fmt::Debug for ChangeStream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ChangeStream")
            .field("side", &self.endpoint.side)
            .field("slot", &self.slot)
            .field("confirmed", &self.confirmed)
            .field("server_wal_end", &self.server_wal_end)
            .field("proto_version", &self.proto_version)
            .finish()
    }
}

fn wire(lsn: Lsn) -> pgwire_replication::Lsn {
    pgwire_replication::Lsn(lsn.0)
}

fn ours(lsn: pgwire_replication::Lsn) -> Lsn {
    Lsn(lsn.0)
}

impl ChangeStream {
    /// Streams slot `slot` on `ep` for `publication` from `start_lsn`, with the default
    /// [`StreamOptions`]. See [`start_with`](Self::start_with).
    pub async fn start(
        ep: &Endpoint,
        slot: &str,
        publication: &str,
        start_lsn: Lsn,
    ) -> Result<ChangeStream, StreamError> {
        Self::start_with(
            ep,
            slot,
            &[publication],
            start_lsn,
            &StreamOptions::default(),
        )
        .await
    }

    /// Streams slot `slot` on `ep` for `publications` from `start_lsn` and waits until the
    /// server accepted `START_REPLICATION` (from then on this session holds the slot).
    ///
    /// `start_lsn` must be durably applied on the target already — the end LSN of the last
    /// applied source transaction from `pgmove.progress` — because it is also what the
    /// session reports as applied until [`confirm`](Self::confirm) says more; `Lsn(0)` starts
    /// from the slot's confirmed position (the first run after the full load).
    pub async fn start_with(
        ep: &Endpoint,
        slot: &str,
        publications: &[&str],
        start_lsn: Lsn,
        opts: &StreamOptions,
    ) -> Result<ChangeStream, StreamError> {
        let names: Vec<String> = publications.iter().map(|p| p.to_string()).collect();
        let session = slot::open_session(ep, slot, |mut cfg| {
            cfg.publication = Publication::from(names.clone());
            cfg.start_lsn = wire(start_lsn);
            cfg.ack_lsn = Some(wire(start_lsn));
            cfg.status_interval = opts.status_interval;
            cfg.idle_wakeup_interval = opts.status_interval.max(Duration::from_secs(1));
            cfg.binary = opts.binary;
            cfg.buffer_events = opts.buffer_events.max(1);
            cfg
        })
        .await?;
        // Streaming of in-progress transactions: protocol 2, PostgreSQL 14+.
        let streaming = opts.streaming
            && crate::versions::copy_cdc_options(session.server_version_num).streaming;
        let proto_version = if streaming { 2 } else { 1 };
        let mut stream = ChangeStream {
            client: session.client,
            endpoint: ep.clone(),
            slot: slot.to_string(),
            decoder: pgoutput::StreamDecoder::new(),
            confirmed: start_lsn,
            server_wal_end: Lsn(0),
            status_interval: opts.status_interval,
            proto_version,
            last_raw: None,
            stall_timeout: opts.stall_timeout,
            quiet_since: None,
            stall_logged: false,
        };
        tracing::debug!(side = %ep.side, slot, %start_lsn, ?publications, "starting logical replication");
        // Logical decoding messages (the DDL trigger's): pgoutput sends them from 14 on, and
        // an older source refuses START_REPLICATION that asks for them.
        let messages = crate::versions::logical_messages(session.server_version_num);
        let started = match stream
            .client
            .start_with_messages(proto_version, streaming, messages)
            .await
        {
            Ok(()) => stream.client.wait_started().await,
            Err(e) => Err(e),
        };
        started.map_err(|e| stream.wire_error(&e))?;
        tracing::info!(side = %ep.side, slot, %start_lsn, proto_version, streaming, messages, "logical replication started");
        Ok(stream)
    }

    /// The next message and its WAL position: for a change, a Message or a Relation, the
    /// position the server sent with it (a change's own LSN); for Commit and Stream Commit
    /// its end LSN (where a
    /// consumer that applied it resumes); for Begin, whose position pgwire-replication 0.5
    /// does not pass on, the transaction's final (commit) LSN. `None` when the stream ended
    /// normally (after [`stop`](Self::stop)). Keepalives are handled here and not returned.
    pub async fn next(&mut self) -> Result<Option<(Lsn, Message)>, StreamError> {
        loop {
            let event = match self.recv_watched().await? {
                Ok(Some(event)) => event,
                Ok(None) => return Ok(None),
                Err(e) => return Err(self.wire_error(&e)),
            };
            match event {
                ReplicationEvent::KeepAlive { wal_end, .. } => {
                    self.note_wal_end(ours(wal_end));
                }
                ReplicationEvent::XLogData {
                    wal_start,
                    wal_end,
                    data,
                    ..
                } => {
                    self.note_wal_end(ours(wal_end));
                    let lsn = ours(wal_start);
                    self.last_raw = Some((lsn, data.clone()));
                    let msg =
                        self.decoder
                            .decode_bytes(data)
                            .map_err(|source| StreamError::Decode {
                                side: self.endpoint.side,
                                slot: quote::ident(&self.slot),
                                lsn,
                                source,
                            })?;
                    match &msg {
                        Message::StreamCommit(c) => {
                            let end = c.end_lsn;
                            self.note_wal_end(end);
                            return Ok(Some((end, msg)));
                        }
                        Message::Logical(m) => return Ok(Some((m.lsn, msg))),
                        _ => {}
                    }
                    return Ok(Some((lsn, msg)));
                }
                ReplicationEvent::Begin {
                    final_lsn,
                    xid,
                    commit_time_micros,
                } => {
                    let msg = Message::Begin(Begin {
                        final_lsn: ours(final_lsn),
                        commit_time: commit_time_micros,
                        xid,
                    });
                    return Ok(Some((ours(final_lsn), msg)));
                }
                ReplicationEvent::Commit {
                    lsn,
                    end_lsn,
                    commit_time_micros,
                } => {
                    self.note_wal_end(ours(end_lsn));
                    let msg = Message::Commit(Commit {
                        flags: 0,
                        commit_lsn: ours(lsn),
                        end_lsn: ours(end_lsn),
                        commit_time: commit_time_micros,
                    });
                    return Ok(Some((ours(end_lsn), msg)));
                }
                ReplicationEvent::Message {
                    transactional,
                    lsn,
                    prefix,
                    content,
                } => {
                    let msg = Message::Logical(LogicalMessage {
                        xid: None,
                        transactional,
                        lsn: ours(lsn),
                        prefix,
                        content,
                    });
                    return Ok(Some((ours(lsn), msg)));
                }
                // Only with stop_at_lsn, which this stream never sets.
                ReplicationEvent::StoppedAt { .. } => return Ok(None),
            }
        }
    }

    /// The driver's next event, watching for a silent server: a silence is logged after
    /// [`stall_warning_after`] and ends the session as lost (a transient error: run reconnects)
    /// after the stall timeout.
    async fn recv_watched(
        &mut self,
    ) -> Result<Result<Option<ReplicationEvent>, PgWireError>, StreamError> {
        let got = match tokio::time::timeout(Duration::ZERO, self.client.recv()).await {
            Ok(r) => r,
            Err(_) => loop {
                let since = *self.quiet_since.get_or_insert_with(Instant::now);
                let warn_after = stall_warning_after(self.stall_timeout);
                let until = since
                    + if self.stall_logged {
                        self.stall_timeout
                    } else {
                        warn_after
                    };
                match tokio::time::timeout_at(until.into(), self.client.recv()).await {
                    Ok(r) => break r,
                    Err(_) if !self.stall_logged => {
                        self.stall_logged = true;
                        tracing::warn!(
                            side = %self.endpoint.side,
                            slot = %self.slot,
                            silent_secs = since.elapsed().as_secs(),
                            "stall: nothing from the {} for {} s on the replication stream (the server or the network may be hung); the session counts as lost after {} s and is then reopened",
                            self.endpoint.side,
                            since.elapsed().as_secs(),
                            self.stall_timeout.as_secs()
                        );
                    }
                    Err(_) => {
                        let silent = since.elapsed().as_secs();
                        self.quiet_since = None;
                        self.stall_logged = false;
                        return Err(StreamError::Stream {
                            side: self.endpoint.side,
                            slot: quote::ident(&self.slot),
                            message: format!(
                                "stall: no message from the server for {silent} s (2 x its wal_sender_timeout): the server or the network is hung"
                            ),
                            hint: Some(format!(
                                "pgmove reconnects and resumes on its own; if this repeats, check the {} host (load, a paused VM or process, a firewall dropping idle connections)",
                                self.endpoint.side
                            )),
                            cause: pg::Cause::Connection,
                        });
                    }
                }
            },
        };
        if self.stall_logged {
            tracing::info!(
                side = %self.endpoint.side,
                slot = %self.slot,
                "the {} answers again on the replication stream",
                self.endpoint.side
            );
        }
        self.quiet_since = None;
        self.stall_logged = false;
        Ok(got)
    }

    fn note_wal_end(&mut self, lsn: Lsn) {
        if lsn > self.server_wal_end {
            self.server_wal_end = lsn;
        }
    }

    /// Reports `lsn` to the server as flushed and applied, within `status_interval`.
    ///
    /// Call it only with the end LSN of a source transaction whose effects, and the
    /// `pgmove.progress` row naming that LSN, the target has durably committed: the slot then
    /// forgets everything before it, so confirming more than was applied loses changes if
    /// pgmove stops before applying them. A value at or below the last one is ignored.
    pub fn confirm(&mut self, lsn: Lsn) {
        if lsn > self.confirmed {
            self.confirmed = lsn;
            self.client.update_applied_lsn(wire(lsn));
        }
    }

    /// The highest LSN given to [`confirm`](Self::confirm) (or the start LSN).
    pub fn confirmed(&self) -> Lsn {
        self.confirmed
    }

    /// The applied LSN last sent to the server in a standby status update (`0/0` before the
    /// first).
    pub fn reported(&self) -> Lsn {
        ours(self.client.metrics().last_applied_lsn())
    }

    /// The server's WAL end as of its latest message or keepalive: with the position of the
    /// last applied commit, the replication lag in bytes.
    pub fn server_wal_end(&self) -> Lsn {
        self.server_wal_end
    }

    /// The pgoutput protocol version the stream runs: 2 (with `streaming 'on'`) on
    /// PostgreSQL 14+, else 1.
    pub fn protocol_version(&self) -> u32 {
        self.proto_version
    }

    /// Whether large in-progress transactions are streamed (protocol 2+).
    pub fn streaming(&self) -> bool {
        self.proto_version >= 2
    }

    /// Between a Stream Start and its Stream Stop: the next change belongs to a streamed
    /// transaction.
    pub fn in_stream_block(&self) -> bool {
        self.decoder.in_stream()
    }

    /// The WAL position and the raw pgoutput bytes of the last `XLogData` message
    /// [`next`](Self::next) returned (not of Begin, Commit, or a protocol-1 Message, which
    /// the driver decodes itself). [`pgoutput::decode_bytes`] with `in_stream` decodes them
    /// again, for a message of a stream block.
    pub fn last_raw(&self) -> Option<&(Lsn, bytes::Bytes)> {
        self.last_raw.as_ref()
    }

    /// Ends the stream: waits (at most two status intervals) until the last confirmed LSN
    /// has been reported to the server, then sends CopyDone and closes the session. The
    /// slot stays.
    pub async fn stop(mut self) -> Result<(), StreamError> {
        let deadline = Instant::now() + 2 * self.status_interval + Duration::from_secs(1);
        while self.confirmed.0 != 0
            && self.reported() < self.confirmed
            && Instant::now() < deadline
            && self.client.is_running()
        {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        if self.reported() < self.confirmed {
            tracing::debug!(
                side = %self.endpoint.side,
                slot = %self.slot,
                confirmed = %self.confirmed,
                reported = %self.reported(),
                "stopping before the last confirmed LSN was reported; the next run resumes from pgmove.progress"
            );
        }
        self.client
            .shutdown()
            .await
            .map_err(|e| self.wire_error(&e))
    }

    fn wire_error(&self, e: &PgWireError) -> StreamError {
        let text = match e {
            PgWireError::Server(m) => m.clone(),
            other => other.to_string(),
        };
        let message = pg::redact(&text, self.endpoint.info.password.as_ref());
        let lower = message.to_lowercase();
        let hint = if lower.contains("publication") && lower.contains("does not exist") {
            Some(
                "the publication is missing on the source: run `pgmove apply PLAN.yaml` again \
                 to create it, or check the plan's name"
                    .to_string(),
            )
        } else if lower.contains("replication slot") && lower.contains("does not exist") {
            Some(format!(
                "the slot {} is gone (dropped, or invalidated by max_slot_wal_keep_size): \
                 changes since it was lost cannot be streamed; start the migration over",
                quote::literal(&self.slot)
            ))
        } else if lower.contains("is active for pid") {
            Some(
                "another connection streams from the slot (a running `pgmove apply`?): stop it first"
                    .to_string(),
            )
        } else {
            None
        };
        StreamError::Stream {
            side: self.endpoint.side,
            slot: quote::ident(&self.slot),
            message,
            hint,
            cause: slot::wire_cause(e),
        }
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_stall_is_lost_after_twice_wal_sender_timeout_and_logged_within_a_minute() {
        use super::{stall_timeout_for, stall_warning_after};
        use std::time::Duration;
        assert_eq!(stall_timeout_for(60_000), Duration::from_secs(120));
        assert_eq!(stall_timeout_for(0), Duration::from_secs(120));
        assert_eq!(stall_timeout_for(1_000), Duration::from_secs(10));
        assert_eq!(
            stall_warning_after(Duration::from_secs(120)),
            Duration::from_secs(30)
        );
        assert_eq!(
            stall_warning_after(Duration::from_secs(20)),
            Duration::from_secs(10)
        );
    }
}
