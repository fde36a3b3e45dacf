//! Streamed (in-progress) transactions, kept until their Stream Commit.
//!
//! With pgoutput protocol 2 and `streaming 'on'` the server sends a large transaction while it
//! is in progress, in blocks: Stream Start (top-level xid), changes, Relation and Message
//! messages each carrying the xid of the (sub)transaction that made them, Stream Stop. Blocks
//! of different transactions interleave, and whole ordinary transactions (Begin ... Commit)
//! come between blocks. Stream Abort drops a subtransaction's messages (or the whole
//! transaction's, when its subxid is the xid); Stream Commit ends it: its messages are then
//! replayed in order, as one ordinary transaction ([`Replay`]), where the commit falls in the
//! commit order (what PostgreSQL's own apply worker does without `streaming 'parallel'`).
//!
//! [`Spools`] keeps the raw pgoutput bytes of each message, per top-level xid, in memory while
//! all open transactions together stay under a bound, and in an anonymous temporary file per
//! transaction beyond it, so transactions of any size and number take bounded memory until
//! they commit. Nothing of a streamed transaction is applied
//! (or confirmed to the server) before its Stream Commit; after a restart the server streams an
//! uncommitted transaction again from its start.

use std::collections::{HashMap, HashSet};
use std::fs::File;
use std::io::{BufReader, BufWriter, Read, Seek, SeekFrom, Write};

use bytes::Bytes;

use crate::cdc::pgoutput::{self, Begin, Commit, Message, StreamCommit};
use crate::pg::Lsn;

/// Bytes of messages kept in memory, all open streamed transactions together, before the one
/// that would pass it goes to a file.
pub const DEFAULT_MEMORY_LIMIT: usize = 64 * 1024 * 1024;

/// A failure to spool or read back a streamed transaction.
#[derive(Debug, thiserror::Error)]
pub enum SpoolError {
    #[error("streamed transaction {xid}: spool file: {source}")]
    Io {
        xid: u32,
        #[source]
        source: std::io::Error,
    },
    #[error("streamed transaction {xid}, message at {lsn}: {source}")]
    Decode {
        xid: u32,
        lsn: Lsn,
        #[source]
        source: pgoutput::DecodeError,
    },
    #[error("{0}")]
    Sequence(String),
}

/// One spooled message.
#[derive(Clone, Debug)]
struct Entry {
    /// The (sub)transaction that made it.
    subxid: u32,
    lsn: Lsn,
    /// A Relation (or Type) message: kept even when its subtransaction aborts, as it
    /// describes a relation for the changes after it (the server sends it once per streamed
    /// transaction, whichever subtransaction the first change was in).
    schema: bool,
    raw: Bytes,
}

/// The messages of one streamed transaction.
#[derive(Debug)]
struct Spool {
    mem: Vec<Entry>,
    mem_bytes: usize,
    /// Once spilled, every further message goes to the file too (order is kept).
    file: Option<BufWriter<File>>,
    /// Subtransactions aborted after some of their messages were spilled.
    aborted: HashSet<u32>,
    messages: u64,
    bytes: u64,
    /// Per (sub)transaction xid, the index of its last message (watched messages aside).
    last_by_xid: HashMap<u32, u64>,
    /// Indexes of the messages with the watched prefix ([`Spools::watch`]), which carry the
    /// top-level xid whatever subtransaction emitted them.
    watched: Vec<u64>,
}

/// `a` was assigned before `b` (PostgreSQL's `TransactionIdPrecedes` for normal xids).
fn precedes(a: u32, b: u32) -> bool {
    (a.wrapping_sub(b) as i32) < 0
}

/// The open streamed transactions, by top-level xid, and the stream block being received.
#[derive(Debug)]
pub struct Spools {
    open: HashMap<u32, Spool>,
    /// The xid of the current stream block (between Stream Start and Stream Stop).
    block: Option<u32>,
    memory_limit: usize,
    /// Bytes in memory, all open transactions together (at most `memory_limit`).
    mem_total: usize,
    /// Prefix of the logical decoding messages whose subtransaction matters.
    watch: Option<String>,
}

impl Default for Spools {
    fn default() -> Self {
        Spools::new(DEFAULT_MEMORY_LIMIT)
    }
}

const HEADER: usize = 4 + 8 + 1 + 4;

impl Entry {
    /// What it takes in memory: its bytes and their allocation, and its place in the spool's
    /// vector (counted twice: a vector grows by doubling).
    fn cost(&self) -> usize {
        self.raw.len() + 16 + 2 * std::mem::size_of::<Entry>()
    }
}

fn io(xid: u32) -> impl Fn(std::io::Error) -> SpoolError {
    move |source| SpoolError::Io { xid, source }
}

impl Spools {
    /// Spools keeping up to `memory_limit` bytes of messages in memory, all transactions
    /// together.
    pub fn new(memory_limit: usize) -> Spools {
        Spools {
            open: HashMap::new(),
            block: None,
            memory_limit,
            mem_total: 0,
            watch: None,
        }
    }

    /// Watch the logical decoding messages with this prefix (pgmove's DDL messages): pgoutput
    /// sends a streamed message with the top-level xid, not its subtransaction's, so when a
    /// subtransaction aborts such a message may or may not have been part of it;
    /// [`abort`](Self::abort) says when that is unclear.
    pub fn watch(&mut self, prefix: Option<String>) {
        self.watch = prefix;
    }

    /// No streamed transaction is open (received in part, neither committed nor aborted).
    pub fn is_empty(&self) -> bool {
        self.open.is_empty() && self.block.is_none()
    }

    /// Open streamed transactions.
    pub fn len(&self) -> usize {
        self.open.len()
    }

    /// Inside a stream block: the next change belongs to this top-level xid.
    pub fn block(&self) -> Option<u32> {
        self.block
    }

    /// Stream Start.
    pub fn start(&mut self, xid: u32, first_segment: bool) -> Result<(), SpoolError> {
        if let Some(b) = self.block {
            return Err(SpoolError::Sequence(format!(
                "Stream Start of transaction {xid} inside the stream block of {b}"
            )));
        }
        if first_segment {
            // A transaction streamed again from its start (cannot happen within a session).
            self.drop_spool(xid);
        }
        self.open.entry(xid).or_insert_with(|| Spool {
            mem: Vec::new(),
            mem_bytes: 0,
            file: None,
            aborted: HashSet::new(),
            messages: 0,
            bytes: 0,
            last_by_xid: HashMap::new(),
            watched: Vec::new(),
        });
        self.block = Some(xid);
        Ok(())
    }

    /// Bytes of messages held in memory, all open transactions together.
    pub fn memory(&self) -> usize {
        self.mem_total
    }

    /// Drops the spool of `xid` (if open), and its bytes from the total.
    fn drop_spool(&mut self, xid: u32) -> Option<Spool> {
        let spool = self.open.remove(&xid)?;
        self.mem_total -= spool.mem_bytes;
        Some(spool)
    }

    /// Stream Stop.
    pub fn stop(&mut self) {
        self.block = None;
    }

    /// A message of the current stream block: `subxid` the (sub)transaction it carries, `raw`
    /// its pgoutput bytes as received.
    pub fn push(&mut self, lsn: Lsn, msg: &Message, raw: Bytes) -> Result<(), SpoolError> {
        let xid = self.block.ok_or_else(|| {
            SpoolError::Sequence(format!("{} outside a stream block", msg.kind()))
        })?;
        let subxid = msg.stream_xid().unwrap_or(xid);
        let schema = matches!(msg, Message::Relation(_) | Message::Type(_));
        let limit = self.memory_limit;
        let total = self.mem_total;
        let watched = match msg {
            Message::Logical(m) => Some(self.watch.as_deref() == Some(m.prefix.as_str())),
            _ => None,
        };
        let spool = self
            .open
            .get_mut(&xid)
            .ok_or_else(|| SpoolError::Sequence(format!("no open streamed transaction {xid}")))?;
        let index = spool.messages;
        match watched {
            // A message tells nothing of its subtransaction.
            Some(true) => spool.watched.push(index),
            Some(false) => {}
            None => {
                spool.last_by_xid.insert(subxid, index);
            }
        }
        spool.messages += 1;
        spool.bytes += raw.len() as u64;
        let entry = Entry {
            subxid,
            lsn,
            schema,
            // Its own copy: the bytes received may be a slice of a much larger buffer, which
            // a slice kept here would keep whole.
            raw: Bytes::copy_from_slice(&raw),
        };
        if spool.file.is_none() && total + entry.cost() > limit {
            let file = tempfile::tempfile().map_err(io(xid))?;
            let mut w = BufWriter::with_capacity(256 * 1024, file);
            for e in spool.mem.drain(..) {
                write_entry(&mut w, &e).map_err(io(xid))?;
            }
            self.mem_total -= spool.mem_bytes;
            spool.mem_bytes = 0;
            tracing::debug!(
                xid,
                messages = spool.messages,
                "streamed transaction spilled to a temporary file"
            );
            spool.file = Some(w);
        }
        match &mut spool.file {
            Some(w) => write_entry(w, &entry).map_err(io(xid))?,
            None => {
                spool.mem_bytes += entry.cost();
                self.mem_total += entry.cost();
                spool.mem.push(entry);
            }
        }
        Ok(())
    }

    /// Stream Abort: drops the messages of subtransaction `subxid`, or the whole transaction
    /// when `subxid == xid`.
    ///
    /// `true`: a watched message may have belonged to the aborted subtransaction, or not —
    /// the spool cannot tell (it keeps it). Everything a subtransaction streamed comes after
    /// everything streamed before it began (a backend runs one statement at a time), and
    /// every xid assigned before it precedes its own, so messages streamed after the last
    /// change of an earlier-assigned xid are in doubt.
    pub fn abort(&mut self, xid: u32, subxid: u32) -> bool {
        if subxid == xid {
            if self.drop_spool(xid).is_some() {
                tracing::debug!(xid, "streamed transaction aborted on the source: dropped");
            }
            return false;
        }
        let mut unclear = false;
        if let Some(spool) = self.open.get_mut(&xid) {
            let before = spool
                .last_by_xid
                .iter()
                .filter(|(x, _)| precedes(**x, subxid))
                .map(|(_, i)| *i)
                .max();
            unclear = spool.watched.iter().any(|i| before.is_none_or(|b| *i > b));
            let mut freed = 0;
            spool.mem.retain(|e| {
                let keep = e.schema || e.subxid != subxid;
                if !keep {
                    freed += e.cost();
                }
                keep
            });
            spool.mem_bytes -= freed;
            self.mem_total -= freed;
            if spool.file.is_some() {
                spool.aborted.insert(subxid);
            }
        }
        unclear
    }

    /// Stream Commit: the transaction's messages, to be handled as an ordinary transaction
    /// (a Begin, the messages, a Commit). A commit of a transaction nothing was streamed of
    /// gives just Begin and Commit.
    pub fn commit(&mut self, c: &StreamCommit) -> Result<Replay, SpoolError> {
        let xid = c.xid;
        if self.block.is_some() {
            return Err(SpoolError::Sequence(format!(
                "Stream Commit of transaction {xid} inside a stream block"
            )));
        }
        let begin = Message::Begin(Begin {
            final_lsn: c.commit_lsn,
            commit_time: c.commit_time,
            xid,
        });
        let commit = Message::Commit(Commit {
            flags: c.flags,
            commit_lsn: c.commit_lsn,
            end_lsn: c.end_lsn,
            commit_time: c.commit_time,
        });
        let (source, aborted) = match self.drop_spool(xid) {
            None => (Source::Mem(Vec::new().into_iter()), HashSet::new()),
            Some(spool) => {
                tracing::debug!(
                    xid,
                    messages = spool.messages,
                    bytes = spool.bytes,
                    spilled = spool.file.is_some(),
                    "streamed transaction committed on the source"
                );
                match spool.file {
                    None => (Source::Mem(spool.mem.into_iter()), spool.aborted),
                    Some(w) => {
                        let mut f = w.into_inner().map_err(|e| io(xid)(e.into_error()))?;
                        f.seek(SeekFrom::Start(0)).map_err(io(xid))?;
                        (
                            Source::File(BufReader::with_capacity(256 * 1024, f)),
                            spool.aborted,
                        )
                    }
                }
            }
        };
        Ok(Replay {
            xid,
            begin: Some(begin),
            source: Some(source),
            aborted,
            commit: Some(commit),
        })
    }
}

fn write_entry(w: &mut impl Write, e: &Entry) -> std::io::Result<()> {
    w.write_all(&e.subxid.to_be_bytes())?;
    w.write_all(&e.lsn.0.to_be_bytes())?;
    w.write_all(&[u8::from(e.schema)])?;
    w.write_all(&(e.raw.len() as u32).to_be_bytes())?;
    w.write_all(&e.raw)
}

/// The next entry of a spool file, `None` at its end.
fn read_entry(r: &mut impl Read) -> std::io::Result<Option<Entry>> {
    let mut head = [0u8; HEADER];
    match r.read_exact(&mut head[..1]) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => return Ok(None),
        Err(e) => return Err(e),
    }
    r.read_exact(&mut head[1..])?;
    let subxid = u32::from_be_bytes(head[0..4].try_into().expect("4 bytes"));
    let lsn = Lsn(u64::from_be_bytes(head[4..12].try_into().expect("8 bytes")));
    let schema = head[12] != 0;
    let len = u32::from_be_bytes(head[13..17].try_into().expect("4 bytes")) as usize;
    let mut raw = vec![0u8; len];
    r.read_exact(&mut raw)?;
    Ok(Some(Entry {
        subxid,
        lsn,
        schema,
        raw: Bytes::from(raw),
    }))
}

#[derive(Debug)]
enum Source {
    Mem(std::vec::IntoIter<Entry>),
    File(BufReader<File>),
}

/// A committed streamed transaction, message by message: Begin (its `final_lsn` the commit
/// LSN), the messages of its subtransactions that did not abort, in the order they were
/// streamed, Commit.
#[derive(Debug)]
pub struct Replay {
    xid: u32,
    begin: Option<Message>,
    source: Option<Source>,
    aborted: HashSet<u32>,
    commit: Option<Message>,
}

impl Replay {
    /// The top-level transaction id.
    pub fn xid(&self) -> u32 {
        self.xid
    }

    /// The next message, `None` after the Commit.
    pub fn next_message(&mut self) -> Result<Option<Message>, SpoolError> {
        if let Some(b) = self.begin.take() {
            return Ok(Some(b));
        }
        loop {
            let entry = match &mut self.source {
                None => break,
                Some(Source::Mem(it)) => it.next(),
                Some(Source::File(r)) => read_entry(r).map_err(io(self.xid))?,
            };
            let Some(e) = entry else {
                self.source = None;
                break;
            };
            if !e.schema && self.aborted.contains(&e.subxid) {
                continue;
            }
            let msg = pgoutput::decode_bytes(e.raw, true).map_err(|source| SpoolError::Decode {
                xid: self.xid,
                lsn: e.lsn,
                source,
            })?;
            return Ok(Some(msg));
        }
        Ok(self.commit.take())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// pgoutput bytes of an Insert of (text) `v` into relation `rel`, inside a stream block.
    fn insert(subxid: u32, rel: u32, v: &str) -> (Message, Bytes) {
        let mut b = vec![b'I'];
        b.extend_from_slice(&subxid.to_be_bytes());
        b.extend_from_slice(&rel.to_be_bytes());
        b.push(b'N');
        b.extend_from_slice(&1u16.to_be_bytes());
        b.push(b't');
        b.extend_from_slice(&(v.len() as u32).to_be_bytes());
        b.extend_from_slice(v.as_bytes());
        let raw = Bytes::from(b);
        (pgoutput::decode_bytes(raw.clone(), true).unwrap(), raw)
    }

    fn relation(subxid: u32, rel: u32) -> (Message, Bytes) {
        let mut b = vec![b'R'];
        b.extend_from_slice(&subxid.to_be_bytes());
        b.extend_from_slice(&rel.to_be_bytes());
        b.extend_from_slice(b"public\0t\0");
        b.push(b'd');
        b.extend_from_slice(&1u16.to_be_bytes());
        b.push(1);
        b.extend_from_slice(b"v\0");
        b.extend_from_slice(&25u32.to_be_bytes());
        b.extend_from_slice(&(-1i32).to_be_bytes());
        let raw = Bytes::from(b);
        (pgoutput::decode_bytes(raw.clone(), true).unwrap(), raw)
    }

    /// A transactional logical decoding message, streamed with the top-level xid.
    fn message(top: u32, prefix: &str) -> (Message, Bytes) {
        let mut b = vec![b'M'];
        b.extend_from_slice(&top.to_be_bytes());
        b.push(1);
        b.extend_from_slice(&7u64.to_be_bytes());
        b.extend_from_slice(prefix.as_bytes());
        b.push(0);
        b.extend_from_slice(&2u32.to_be_bytes());
        b.extend_from_slice(b"{}");
        let raw = Bytes::from(b);
        (pgoutput::decode_bytes(raw.clone(), true).unwrap(), raw)
    }

    fn push(s: &mut Spools, (m, raw): (Message, Bytes)) {
        s.push(Lsn(1), &m, raw).unwrap();
    }

    fn commit(xid: u32, end: u64) -> StreamCommit {
        StreamCommit {
            xid,
            flags: 0,
            commit_lsn: Lsn(end - 1),
            end_lsn: Lsn(end),
            commit_time: 0,
        }
    }

    /// The replayed transaction, as "B", "R", inserted values, "C".
    fn replay(mut r: Replay) -> Vec<String> {
        let mut out = Vec::new();
        while let Some(m) = r.next_message().unwrap() {
            out.push(match m {
                Message::Begin(_) => "B".to_string(),
                Message::Commit(_) => "C".to_string(),
                Message::Relation(_) => "R".to_string(),
                Message::Insert(i) => i.new[0].as_text().unwrap().to_string(),
                other => other.kind().to_string(),
            });
        }
        out
    }

    fn both_ways(test: impl Fn(Spools)) {
        test(Spools::new(DEFAULT_MEMORY_LIMIT));
        // Spilled to a file from the first message on.
        test(Spools::new(1));
    }

    #[test]
    fn a_subtransaction_abort_drops_its_changes_but_not_relations() {
        both_ways(|mut s| {
            s.start(10, true).unwrap();
            push(&mut s, insert(10, 1, "a"));
            push(&mut s, relation(11, 2));
            push(&mut s, insert(11, 2, "b"));
            push(&mut s, insert(12, 1, "c"));
            s.stop();
            s.start(10, false).unwrap();
            push(&mut s, insert(11, 1, "d"));
            s.stop();
            assert!(!s.abort(10, 11));
            s.start(10, false).unwrap();
            push(&mut s, insert(10, 2, "e"));
            s.stop();
            assert!(!s.is_empty());
            let r = s.commit(&commit(10, 100)).unwrap();
            assert!(s.is_empty());
            assert_eq!(replay(r), ["B", "a", "R", "c", "e", "C"]);
        });
    }

    #[test]
    fn a_whole_transaction_abort_drops_everything() {
        both_ways(|mut s| {
            s.start(20, true).unwrap();
            push(&mut s, insert(20, 1, "a"));
            push(&mut s, insert(21, 1, "b"));
            s.stop();
            s.abort(20, 20);
            assert!(s.is_empty());
            // A commit of it afterwards (cannot happen) finds nothing.
            assert_eq!(replay(s.commit(&commit(20, 100)).unwrap()), ["B", "C"]);
        });
    }

    #[test]
    fn interleaved_streamed_transactions_stay_apart() {
        both_ways(|mut s| {
            s.start(30, true).unwrap();
            push(&mut s, insert(30, 1, "x1"));
            s.stop();
            s.start(40, true).unwrap();
            push(&mut s, insert(40, 1, "y1"));
            push(&mut s, insert(41, 1, "y2"));
            s.stop();
            // An ordinary transaction between blocks is not the spool's business.
            assert_eq!(s.block(), None);
            s.start(30, false).unwrap();
            push(&mut s, insert(31, 1, "x2"));
            s.stop();
            assert!(!s.abort(40, 41));
            assert_eq!(s.len(), 2);
            let y = replay(s.commit(&commit(40, 200)).unwrap());
            assert_eq!(y, ["B", "y1", "C"]);
            s.start(30, false).unwrap();
            push(&mut s, insert(30, 1, "x3"));
            s.stop();
            let x = replay(s.commit(&commit(30, 300)).unwrap());
            assert_eq!(x, ["B", "x1", "x2", "x3", "C"]);
            assert!(s.is_empty());
        });
    }

    #[test]
    fn a_watched_message_that_may_be_in_an_aborted_subtransaction_is_reported() {
        both_ways(|mut s| {
            s.watch(Some("ddl".to_string()));
            s.start(50, true).unwrap();
            push(&mut s, insert(50, 1, "a"));
            // Before the subtransaction, as far as the spool can tell.
            push(&mut s, message(50, "ddl"));
            push(&mut s, message(50, "other"));
            push(&mut s, insert(52, 1, "b"));
            s.stop();
            // 51 streamed nothing of its own; 52 aborts: was the message in it? Unclear.
            assert!(s.abort(50, 52));
        });
        both_ways(|mut s| {
            s.watch(Some("ddl".to_string()));
            s.start(60, true).unwrap();
            push(&mut s, message(60, "ddl"));
            push(&mut s, insert(60, 1, "a"));
            push(&mut s, insert(61, 1, "b"));
            push(&mut s, message(60, "other"));
            s.stop();
            // The watched message came before a change of the top-level transaction: not in 61.
            assert!(!s.abort(60, 61));
            assert_eq!(
                replay(s.commit(&commit(60, 100)).unwrap()),
                ["B", "Message", "a", "Message", "C"]
            );
        });
    }

    #[test]
    fn memory_is_bounded_across_concurrent_transactions() {
        // Each insert takes a little over 100 bytes in memory; 1000 bytes hold about 9.
        let value = "v".repeat(80);
        let mut s = Spools::new(1000);
        for round in 0..50 {
            for xid in [70u32, 80, 90, 100] {
                s.start(xid, round == 0).unwrap();
                push(&mut s, insert(xid, 1, &format!("{xid}:{round}:{value}")));
                s.stop();
                assert!(s.memory() <= 1000, "{} bytes in memory", s.memory());
            }
        }
        // Every transaction comes back whole and in order, from memory or its file.
        for xid in [90u32, 70, 100, 80] {
            let got = replay(s.commit(&commit(xid, 1000 + u64::from(xid))).unwrap());
            assert_eq!(got.len(), 52, "{xid}");
            for (round, v) in got[1..51].iter().enumerate() {
                assert_eq!(v, &format!("{xid}:{round}:{value}"));
            }
        }
        assert!(s.is_empty());
        assert_eq!(s.memory(), 0);
    }

    #[test]
    fn out_of_sequence_is_refused() {
        let mut s = Spools::default();
        let (m, raw) = insert(1, 1, "a");
        assert!(s.push(Lsn(1), &m, raw).is_err());
        s.start(1, true).unwrap();
        assert!(s.start(2, true).is_err());
        assert!(s.commit(&commit(1, 10)).is_err());
    }

    #[test]
    fn the_replayed_commit_carries_the_stream_commit_lsns() {
        let mut s = Spools::default();
        s.start(5, true).unwrap();
        s.stop();
        let mut r = s.commit(&commit(5, 77)).unwrap();
        match r.next_message().unwrap() {
            Some(Message::Begin(b)) => {
                assert_eq!(b.final_lsn, Lsn(76));
                assert_eq!(b.xid, 5);
            }
            other => panic!("{other:?}"),
        }
        match r.next_message().unwrap() {
            Some(Message::Commit(c)) => {
                assert_eq!(c.commit_lsn, Lsn(76));
                assert_eq!(c.end_lsn, Lsn(77));
            }
            other => panic!("{other:?}"),
        }
        assert!(r.next_message().unwrap().is_none());
    }
}
