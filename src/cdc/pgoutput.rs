//! A decoder for the messages of PostgreSQL's `pgoutput` logical decoding plugin, protocol
//! versions 1 to 4 ("Logical Replication Message Formats" in the PostgreSQL documentation),
//! and the relation cache a consumer keeps while applying them.
//!
//! Pure: no I/O, no panics on any input. Every read is bounds-checked; a short, garbled or
//! over-long buffer is a [`DecodeError`] naming the message type and the byte offset where
//! decoding failed. A message must be consumed exactly: trailing bytes are an error too, except
//! for Stream Abort, whose protocol-4 form (with the abort LSN and timestamp, sent with
//! `streaming 'parallel'`) is told from the shorter form by its length.
//!
//! - [`decode`] / [`decode_bytes`]: one message (the payload of one XLogData). `in_stream` says
//!   whether the message sits between Stream Start and Stream Stop, where Relation, Type,
//!   Insert, Update, Delete, Truncate and Message carry a leading transaction id (protocol 2+).
//!   [`decode_bytes`] does not copy: column values are slices of the buffer.
//! - [`StreamDecoder`] tracks Stream Start/Stop itself and refuses them out of sequence.
//! - [`RelationCache`]: Relation messages keyed by relation OID, replaced on each new one.
//!
//! Column values are [`Value`]s: SQL NULL, an unchanged TOASTed value that the server did not
//! send (`'u'`: an UPDATE must then leave that column alone), or the value's text or binary
//! (`binary 'true'`) representation, exactly as sent. LSNs are [`Lsn`]s; timestamps are
//! microseconds since 2000-01-01 00:00 UTC (PostgreSQL's epoch), as sent.
//!
//! The two-phase messages of protocol 3 (Begin Prepare, Prepare, Commit Prepared, Rollback
//! Prepared, Stream Prepare) are decoded too, although pgmove never asks for `two_phase`.

use std::collections::HashMap;
use std::fmt;

use bytes::Bytes;

use crate::pg::Lsn;

/// One column value of a tuple.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Value {
    /// SQL NULL (`'n'`).
    Null,
    /// An unchanged TOASTed value (`'u'`): not sent; the row keeps what it has.
    Unchanged,
    /// The value in text format (`'t'`), in the connection's client encoding.
    Text(Bytes),
    /// The value in the type's binary send format (`'b'`, with `binary 'true'`).
    Binary(Bytes),
}

impl Value {
    /// The text of a [`Value::Text`] when it is valid UTF-8.
    pub fn as_text(&self) -> Option<&str> {
        match self {
            Value::Text(b) => std::str::from_utf8(b).ok(),
            _ => None,
        }
    }

    /// The bytes of a text or binary value.
    pub fn as_bytes(&self) -> Option<&Bytes> {
        match self {
            Value::Text(b) | Value::Binary(b) => Some(b),
            Value::Null | Value::Unchanged => None,
        }
    }

    pub fn is_null(&self) -> bool {
        matches!(self, Value::Null)
    }

    pub fn is_unchanged(&self) -> bool {
        matches!(self, Value::Unchanged)
    }
}

/// The old row of an Update or Delete.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum OldTuple {
    /// `'K'`: the replica identity key columns; the other columns are NULL.
    Key(Vec<Value>),
    /// `'O'`: the whole old row (REPLICA IDENTITY FULL).
    Full(Vec<Value>),
}

impl OldTuple {
    pub fn values(&self) -> &[Value] {
        match self {
            OldTuple::Key(v) | OldTuple::Full(v) => v,
        }
    }

    /// Whether only the key columns were sent (`'K'`).
    pub fn is_key(&self) -> bool {
        matches!(self, OldTuple::Key(_))
    }
}

/// A relation's REPLICA IDENTITY setting (`pg_class.relreplident`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ReplicaIdentity {
    /// `'d'`: the primary key, if any.
    Default,
    /// `'n'`: nothing.
    Nothing,
    /// `'f'`: all columns.
    Full,
    /// `'i'`: a chosen unique index.
    Index,
}

impl ReplicaIdentity {
    fn from_byte(b: u8) -> Option<ReplicaIdentity> {
        Some(match b {
            b'd' => ReplicaIdentity::Default,
            b'n' => ReplicaIdentity::Nothing,
            b'f' => ReplicaIdentity::Full,
            b'i' => ReplicaIdentity::Index,
            _ => return None,
        })
    }

    /// The byte pgoutput sends.
    pub fn as_byte(self) -> u8 {
        match self {
            ReplicaIdentity::Default => b'd',
            ReplicaIdentity::Nothing => b'n',
            ReplicaIdentity::Full => b'f',
            ReplicaIdentity::Index => b'i',
        }
    }
}

/// Column flag: the column is part of the replica identity (for REPLICA IDENTITY FULL, every
/// column is).
pub const COLUMN_KEY: u8 = 1;

/// A column of a [`Relation`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Column {
    /// Flags; [`COLUMN_KEY`] is the only one defined.
    pub flags: u8,
    pub name: String,
    pub type_oid: u32,
    /// `atttypmod`, -1 when none.
    pub type_modifier: i32,
}

impl Column {
    /// Part of the replica identity.
    pub fn is_key(&self) -> bool {
        self.flags & COLUMN_KEY != 0
    }
}

/// A Relation message: how the following changes of relation `oid` are laid out. Sent before
/// the first change of a relation in a session (and again after its definition changed, or
/// inside each streamed transaction that touches it).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Relation {
    /// The transaction, inside a stream block (protocol 2+).
    pub xid: Option<u32>,
    pub oid: u32,
    /// The schema as sent: empty for `pg_catalog` (see [`Relation::schema`]).
    pub namespace: String,
    pub name: String,
    pub replica_identity: ReplicaIdentity,
    /// The published columns in order; tuples of this relation have exactly these.
    pub columns: Vec<Column>,
}

impl Relation {
    /// The schema, with the empty namespace pgoutput sends for `pg_catalog` spelled out.
    pub fn schema(&self) -> &str {
        if self.namespace.is_empty() {
            "pg_catalog"
        } else {
            &self.namespace
        }
    }

    /// Positions of the replica identity columns.
    pub fn key_columns(&self) -> Vec<usize> {
        self.columns
            .iter()
            .enumerate()
            .filter(|(_, c)| c.is_key())
            .map(|(i, _)| i)
            .collect()
    }

    /// The column names, in order.
    pub fn column_names(&self) -> Vec<&str> {
        self.columns.iter().map(|c| c.name.as_str()).collect()
    }
}

/// A Type message: a non-built-in data type used by a following Relation.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TypeInfo {
    pub xid: Option<u32>,
    pub oid: u32,
    /// Empty for `pg_catalog`.
    pub namespace: String,
    pub name: String,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Begin {
    /// The LSN of the commit record.
    pub final_lsn: Lsn,
    pub commit_time: i64,
    pub xid: u32,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Commit {
    /// Currently unused (0).
    pub flags: u8,
    /// The LSN of the commit record.
    pub commit_lsn: Lsn,
    /// The end of the commit record: where a consumer that applied this transaction resumes.
    pub end_lsn: Lsn,
    pub commit_time: i64,
}

/// The transaction came from another node through replication origin `name`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Origin {
    /// The commit LSN on the origin server.
    pub commit_lsn: Lsn,
    pub name: String,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Insert {
    pub xid: Option<u32>,
    pub relation: u32,
    pub new: Vec<Value>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Update {
    pub xid: Option<u32>,
    pub relation: u32,
    /// The old key (`'K'`, when the key changed) or old row (`'O'`, REPLICA IDENTITY FULL);
    /// `None` when the key did not change: the new row's key finds the row.
    pub old: Option<OldTuple>,
    /// The new row; [`Value::Unchanged`] for TOASTed columns the update did not touch.
    pub new: Vec<Value>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Delete {
    pub xid: Option<u32>,
    pub relation: u32,
    pub old: OldTuple,
}

/// Truncate option bits.
pub const TRUNCATE_CASCADE: u8 = 1;
pub const TRUNCATE_RESTART_IDENTITY: u8 = 2;

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Truncate {
    pub xid: Option<u32>,
    pub cascade: bool,
    pub restart_identity: bool,
    /// Every truncated relation (those added by CASCADE included), in the server's order.
    pub relations: Vec<u32>,
}

/// A `pg_logical_emit_message` message.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LogicalMessage {
    /// Inside a stream block, for a transactional message.
    pub xid: Option<u32>,
    /// Emitted as part of its transaction (delivered between its Begin and Commit), or
    /// immediately, whatever became of the transaction.
    pub transactional: bool,
    pub lsn: Lsn,
    pub prefix: String,
    pub content: Bytes,
}

/// Start of a block of changes of an in-progress (streamed) transaction.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StreamStart {
    pub xid: u32,
    /// The transaction's first block.
    pub first_segment: bool,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StreamCommit {
    pub xid: u32,
    /// Currently unused (0).
    pub flags: u8,
    pub commit_lsn: Lsn,
    pub end_lsn: Lsn,
    pub commit_time: i64,
}

/// A streamed transaction, or one of its subtransactions (`subxid != xid`), aborted: discard
/// its streamed changes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StreamAbort {
    pub xid: u32,
    pub subxid: u32,
    /// Protocol 4 with `streaming 'parallel'` only.
    pub abort_lsn: Option<Lsn>,
    /// Protocol 4 with `streaming 'parallel'` only.
    pub abort_time: Option<i64>,
}

/// Begin Prepare (`'b'`) of a two-phase transaction (protocol 3, `two_phase`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BeginPrepare {
    pub prepare_lsn: Lsn,
    pub end_lsn: Lsn,
    pub prepare_time: i64,
    pub xid: u32,
    pub gid: String,
}

/// Prepare (`'P'`) and Stream Prepare (`'p'`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Prepare {
    pub flags: u8,
    pub prepare_lsn: Lsn,
    pub end_lsn: Lsn,
    pub prepare_time: i64,
    pub xid: u32,
    pub gid: String,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CommitPrepared {
    pub flags: u8,
    pub commit_lsn: Lsn,
    pub end_lsn: Lsn,
    pub commit_time: i64,
    pub xid: u32,
    pub gid: String,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RollbackPrepared {
    pub flags: u8,
    pub prepare_end_lsn: Lsn,
    pub rollback_end_lsn: Lsn,
    pub prepare_time: i64,
    pub rollback_time: i64,
    pub xid: u32,
    pub gid: String,
}

/// One pgoutput message.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Message {
    Begin(Begin),
    Commit(Commit),
    Origin(Origin),
    Relation(Relation),
    Type(TypeInfo),
    Insert(Insert),
    Update(Update),
    Delete(Delete),
    Truncate(Truncate),
    /// `'M'`, from `pg_logical_emit_message`.
    Logical(LogicalMessage),
    StreamStart(StreamStart),
    StreamStop,
    StreamCommit(StreamCommit),
    StreamAbort(StreamAbort),
    BeginPrepare(BeginPrepare),
    Prepare(Prepare),
    CommitPrepared(CommitPrepared),
    RollbackPrepared(RollbackPrepared),
    StreamPrepare(Prepare),
}

impl Message {
    /// The message type's name, as the PostgreSQL documentation spells it.
    pub fn kind(&self) -> &'static str {
        match self {
            Message::Begin(_) => "Begin",
            Message::Commit(_) => "Commit",
            Message::Origin(_) => "Origin",
            Message::Relation(_) => "Relation",
            Message::Type(_) => "Type",
            Message::Insert(_) => "Insert",
            Message::Update(_) => "Update",
            Message::Delete(_) => "Delete",
            Message::Truncate(_) => "Truncate",
            Message::Logical(_) => "Message",
            Message::StreamStart(_) => "Stream Start",
            Message::StreamStop => "Stream Stop",
            Message::StreamCommit(_) => "Stream Commit",
            Message::StreamAbort(_) => "Stream Abort",
            Message::BeginPrepare(_) => "Begin Prepare",
            Message::Prepare(_) => "Prepare",
            Message::CommitPrepared(_) => "Commit Prepared",
            Message::RollbackPrepared(_) => "Rollback Prepared",
            Message::StreamPrepare(_) => "Stream Prepare",
        }
    }

    /// The transaction id a change carries inside a stream block.
    pub fn stream_xid(&self) -> Option<u32> {
        match self {
            Message::Relation(m) => m.xid,
            Message::Type(m) => m.xid,
            Message::Insert(m) => m.xid,
            Message::Update(m) => m.xid,
            Message::Delete(m) => m.xid,
            Message::Truncate(m) => m.xid,
            Message::Logical(m) => m.xid,
            _ => None,
        }
    }
}

/// The name of the message type a tag byte announces.
fn kind_of(tag: u8) -> &'static str {
    match tag {
        b'B' => "Begin",
        b'C' => "Commit",
        b'O' => "Origin",
        b'R' => "Relation",
        b'Y' => "Type",
        b'I' => "Insert",
        b'U' => "Update",
        b'D' => "Delete",
        b'T' => "Truncate",
        b'M' => "Message",
        b'S' => "Stream Start",
        b'E' => "Stream Stop",
        b'c' => "Stream Commit",
        b'A' => "Stream Abort",
        b'b' => "Begin Prepare",
        b'P' => "Prepare",
        b'K' => "Commit Prepared",
        b'r' => "Rollback Prepared",
        b'p' => "Stream Prepare",
        _ => "unknown",
    }
}

/// What was wrong with a message.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Problem {
    /// The buffer was empty.
    Empty,
    /// A message type byte pgoutput does not send.
    UnknownType(u8),
    /// The message ended `needed` bytes early (or more).
    Truncated { needed: usize },
    /// A string had no terminating NUL byte.
    Unterminated,
    /// A string was not valid UTF-8.
    InvalidUtf8,
    /// Bytes left over after the whole message.
    TrailingBytes(usize),
    /// A count or length below zero.
    Negative(i64),
    /// A tuple column kind other than `n`, `u`, `t`, `b`.
    UnknownColumnKind(u8),
    /// A tuple marker other than the ones allowed here (`N`, `K`, `O`).
    UnexpectedTupleMarker(u8),
    /// A replica identity other than `d`, `n`, `f`, `i`.
    UnknownReplicaIdentity(u8),
    /// Truncate option bits other than CASCADE and RESTART IDENTITY.
    UnknownTruncateOptions(u8),
    /// Stream Start inside a stream block, or Stream Stop outside one ([`StreamDecoder`]).
    OutOfSequence,
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Problem::Empty => f.write_str("empty message"),
            Problem::UnknownType(t) => write!(f, "unknown message type {}", show_byte(*t)),
            Problem::Truncated { needed } => write!(f, "truncated ({needed} more bytes needed)"),
            Problem::Unterminated => f.write_str("string without terminating NUL"),
            Problem::InvalidUtf8 => f.write_str("string is not valid UTF-8"),
            Problem::TrailingBytes(n) => write!(f, "{n} unexpected trailing bytes"),
            Problem::Negative(n) => write!(f, "negative count or length {n}"),
            Problem::UnknownColumnKind(k) => {
                write!(f, "unknown tuple column kind {}", show_byte(*k))
            }
            Problem::UnexpectedTupleMarker(m) => {
                write!(f, "unexpected tuple marker {}", show_byte(*m))
            }
            Problem::UnknownReplicaIdentity(r) => {
                write!(f, "unknown replica identity {}", show_byte(*r))
            }
            Problem::UnknownTruncateOptions(o) => write!(f, "unknown truncate options {o:#04x}"),
            Problem::OutOfSequence => f.write_str("out of sequence"),
        }
    }
}

fn show_byte(b: u8) -> String {
    if b.is_ascii_graphic() {
        format!("'{}' ({b:#04x})", b as char)
    } else {
        format!("{b:#04x}")
    }
}

/// A message that could not be decoded: its type, where, and what was wrong.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("cannot decode pgoutput {message} message ({len} bytes): {problem} at offset {offset}")]
pub struct DecodeError {
    /// The message type, from its first byte ("unknown" if that is not one).
    pub message: &'static str,
    /// The byte offset where decoding failed.
    pub offset: usize,
    /// The message's length.
    pub len: usize,
    pub problem: Problem,
}

/// Decodes one pgoutput message. `in_stream`: the message sits between Stream Start and
/// Stream Stop. Copies `buf` once; column values share that copy.
pub fn decode(buf: &[u8], in_stream: bool) -> Result<Message, DecodeError> {
    decode_bytes(Bytes::copy_from_slice(buf), in_stream)
}

/// [`decode`] without copying: column values and message contents are slices of `buf`.
pub fn decode_bytes(buf: Bytes, in_stream: bool) -> Result<Message, DecodeError> {
    let Some(&tag) = buf.first() else {
        return Err(DecodeError {
            message: "empty",
            offset: 0,
            len: 0,
            problem: Problem::Empty,
        });
    };
    let mut r = Reader {
        buf: &buf,
        pos: 1,
        what: kind_of(tag),
    };
    let xid = |r: &mut Reader| -> Result<Option<u32>, DecodeError> {
        if in_stream {
            r.u32().map(Some)
        } else {
            Ok(None)
        }
    };
    let msg = match tag {
        b'B' => Message::Begin(Begin {
            final_lsn: r.lsn()?,
            commit_time: r.i64()?,
            xid: r.u32()?,
        }),
        b'C' => Message::Commit(Commit {
            flags: r.u8()?,
            commit_lsn: r.lsn()?,
            end_lsn: r.lsn()?,
            commit_time: r.i64()?,
        }),
        b'O' => Message::Origin(Origin {
            commit_lsn: r.lsn()?,
            name: r.string()?,
        }),
        b'R' => {
            let xid = xid(&mut r)?;
            let oid = r.u32()?;
            let namespace = r.string()?;
            let name = r.string()?;
            let at = r.pos;
            let ident = r.u8()?;
            let replica_identity = ReplicaIdentity::from_byte(ident)
                .ok_or_else(|| r.err_at(at, Problem::UnknownReplicaIdentity(ident)))?;
            let n = r.count16()?;
            let mut columns = Vec::with_capacity(n.min(r.remaining()));
            for _ in 0..n {
                columns.push(Column {
                    flags: r.u8()?,
                    name: r.string()?,
                    type_oid: r.u32()?,
                    type_modifier: r.i32()?,
                });
            }
            Message::Relation(Relation {
                xid,
                oid,
                namespace,
                name,
                replica_identity,
                columns,
            })
        }
        b'Y' => Message::Type(TypeInfo {
            xid: xid(&mut r)?,
            oid: r.u32()?,
            namespace: r.string()?,
            name: r.string()?,
        }),
        b'I' => {
            let xid = xid(&mut r)?;
            let relation = r.u32()?;
            r.marker(b"N")?;
            Message::Insert(Insert {
                xid,
                relation,
                new: r.tuple()?,
            })
        }
        b'U' => {
            let xid = xid(&mut r)?;
            let relation = r.u32()?;
            let marker = r.marker(b"KON")?;
            let old = match marker {
                b'K' => Some(OldTuple::Key(r.tuple()?)),
                b'O' => Some(OldTuple::Full(r.tuple()?)),
                _ => None,
            };
            if old.is_some() {
                r.marker(b"N")?;
            }
            Message::Update(Update {
                xid,
                relation,
                old,
                new: r.tuple()?,
            })
        }
        b'D' => {
            let xid = xid(&mut r)?;
            let relation = r.u32()?;
            let old = match r.marker(b"KO")? {
                b'K' => OldTuple::Key(r.tuple()?),
                _ => OldTuple::Full(r.tuple()?),
            };
            Message::Delete(Delete { xid, relation, old })
        }
        b'T' => {
            let xid = xid(&mut r)?;
            let n = r.count32()?;
            let at = r.pos;
            let options = r.u8()?;
            if options & !(TRUNCATE_CASCADE | TRUNCATE_RESTART_IDENTITY) != 0 {
                return Err(r.err_at(at, Problem::UnknownTruncateOptions(options)));
            }
            let mut relations = Vec::with_capacity(n.min(r.remaining() / 4));
            for _ in 0..n {
                relations.push(r.u32()?);
            }
            Message::Truncate(Truncate {
                xid,
                cascade: options & TRUNCATE_CASCADE != 0,
                restart_identity: options & TRUNCATE_RESTART_IDENTITY != 0,
                relations,
            })
        }
        b'M' => {
            let xid = xid(&mut r)?;
            let flags = r.u8()?;
            let lsn = r.lsn()?;
            let prefix = r.string()?;
            let n = r.count32()?;
            Message::Logical(LogicalMessage {
                xid,
                transactional: flags & 1 != 0,
                lsn,
                prefix,
                content: r.bytes(n)?,
            })
        }
        b'S' => Message::StreamStart(StreamStart {
            xid: r.u32()?,
            first_segment: r.u8()? != 0,
        }),
        b'E' => Message::StreamStop,
        b'c' => Message::StreamCommit(StreamCommit {
            xid: r.u32()?,
            flags: r.u8()?,
            commit_lsn: r.lsn()?,
            end_lsn: r.lsn()?,
            commit_time: r.i64()?,
        }),
        b'A' => {
            let xid = r.u32()?;
            let subxid = r.u32()?;
            let (abort_lsn, abort_time) = if r.remaining() == 0 {
                (None, None)
            } else {
                (Some(r.lsn()?), Some(r.i64()?))
            };
            Message::StreamAbort(StreamAbort {
                xid,
                subxid,
                abort_lsn,
                abort_time,
            })
        }
        b'b' => Message::BeginPrepare(BeginPrepare {
            prepare_lsn: r.lsn()?,
            end_lsn: r.lsn()?,
            prepare_time: r.i64()?,
            xid: r.u32()?,
            gid: r.string()?,
        }),
        b'P' | b'p' => {
            let p = Prepare {
                flags: r.u8()?,
                prepare_lsn: r.lsn()?,
                end_lsn: r.lsn()?,
                prepare_time: r.i64()?,
                xid: r.u32()?,
                gid: r.string()?,
            };
            if tag == b'P' {
                Message::Prepare(p)
            } else {
                Message::StreamPrepare(p)
            }
        }
        b'K' => Message::CommitPrepared(CommitPrepared {
            flags: r.u8()?,
            commit_lsn: r.lsn()?,
            end_lsn: r.lsn()?,
            commit_time: r.i64()?,
            xid: r.u32()?,
            gid: r.string()?,
        }),
        b'r' => Message::RollbackPrepared(RollbackPrepared {
            flags: r.u8()?,
            prepare_end_lsn: r.lsn()?,
            rollback_end_lsn: r.lsn()?,
            prepare_time: r.i64()?,
            rollback_time: r.i64()?,
            xid: r.u32()?,
            gid: r.string()?,
        }),
        other => return Err(r.err_at(0, Problem::UnknownType(other))),
    };
    r.finish()?;
    Ok(msg)
}

/// Bounds-checked reads from one message.
struct Reader<'a> {
    buf: &'a Bytes,
    pos: usize,
    what: &'static str,
}

impl Reader<'_> {
    fn err_at(&self, offset: usize, problem: Problem) -> DecodeError {
        DecodeError {
            message: self.what,
            offset,
            len: self.buf.len(),
            problem,
        }
    }

    fn remaining(&self) -> usize {
        self.buf.len().saturating_sub(self.pos)
    }

    /// The next `n` bytes, as a range of the buffer.
    fn take(&mut self, n: usize) -> Result<std::ops::Range<usize>, DecodeError> {
        let start = self.pos;
        match start.checked_add(n) {
            Some(end) if end <= self.buf.len() => {
                self.pos = end;
                Ok(start..end)
            }
            _ => Err(self.err_at(
                start,
                Problem::Truncated {
                    needed: n.saturating_sub(self.remaining()),
                },
            )),
        }
    }

    fn array<const N: usize>(&mut self) -> Result<[u8; N], DecodeError> {
        let range = self.take(N)?;
        let mut out = [0u8; N];
        if let Some(src) = self.buf.get(range) {
            out.copy_from_slice(src);
        }
        Ok(out)
    }

    fn u8(&mut self) -> Result<u8, DecodeError> {
        let [b] = self.array()?;
        Ok(b)
    }

    fn i16(&mut self) -> Result<i16, DecodeError> {
        Ok(i16::from_be_bytes(self.array()?))
    }

    fn i32(&mut self) -> Result<i32, DecodeError> {
        Ok(i32::from_be_bytes(self.array()?))
    }

    fn u32(&mut self) -> Result<u32, DecodeError> {
        Ok(u32::from_be_bytes(self.array()?))
    }

    fn i64(&mut self) -> Result<i64, DecodeError> {
        Ok(i64::from_be_bytes(self.array()?))
    }

    fn lsn(&mut self) -> Result<Lsn, DecodeError> {
        Ok(Lsn(u64::from_be_bytes(self.array()?)))
    }

    /// An Int16 count, refused when negative.
    fn count16(&mut self) -> Result<usize, DecodeError> {
        let at = self.pos;
        let n = self.i16()?;
        usize::try_from(n).map_err(|_| self.err_at(at, Problem::Negative(n.into())))
    }

    /// An Int32 count or length, refused when negative.
    fn count32(&mut self) -> Result<usize, DecodeError> {
        let at = self.pos;
        let n = self.i32()?;
        usize::try_from(n).map_err(|_| self.err_at(at, Problem::Negative(n.into())))
    }

    fn bytes(&mut self, n: usize) -> Result<Bytes, DecodeError> {
        let range = self.take(n)?;
        Ok(self.buf.slice(range))
    }

    /// A NUL-terminated UTF-8 string.
    fn string(&mut self) -> Result<String, DecodeError> {
        let start = self.pos;
        let rest = self.buf.get(start..).unwrap_or_default();
        let Some(nul) = rest.iter().position(|&b| b == 0) else {
            return Err(self.err_at(start, Problem::Unterminated));
        };
        let text = rest.get(..nul).unwrap_or_default();
        let s = std::str::from_utf8(text)
            .map_err(|_| self.err_at(start, Problem::InvalidUtf8))?
            .to_string();
        self.pos = start + nul + 1;
        Ok(s)
    }

    /// One of the tuple markers `allowed`.
    fn marker(&mut self, allowed: &[u8]) -> Result<u8, DecodeError> {
        let at = self.pos;
        let m = self.u8()?;
        if allowed.contains(&m) {
            Ok(m)
        } else {
            Err(self.err_at(at, Problem::UnexpectedTupleMarker(m)))
        }
    }

    /// TupleData: Int16 column count, then per column its kind and, for `t` and `b`, an Int32
    /// length and the bytes.
    fn tuple(&mut self) -> Result<Vec<Value>, DecodeError> {
        let n = self.count16()?;
        let mut values = Vec::with_capacity(n.min(self.remaining()));
        for _ in 0..n {
            let at = self.pos;
            let value = match self.u8()? {
                b'n' => Value::Null,
                b'u' => Value::Unchanged,
                b't' => {
                    let len = self.count32()?;
                    Value::Text(self.bytes(len)?)
                }
                b'b' => {
                    let len = self.count32()?;
                    Value::Binary(self.bytes(len)?)
                }
                other => return Err(self.err_at(at, Problem::UnknownColumnKind(other))),
            };
            values.push(value);
        }
        Ok(values)
    }

    fn finish(&self) -> Result<(), DecodeError> {
        match self.remaining() {
            0 => Ok(()),
            n => Err(self.err_at(self.pos, Problem::TrailingBytes(n))),
        }
    }
}

/// Decodes a sequence of messages, knowing from Stream Start and Stream Stop whether the next
/// one is inside a stream block (and so carries a transaction id).
#[derive(Clone, Debug, Default)]
pub struct StreamDecoder {
    in_stream: bool,
}

impl StreamDecoder {
    pub fn new() -> StreamDecoder {
        StreamDecoder::default()
    }

    /// Between a Stream Start and its Stream Stop.
    pub fn in_stream(&self) -> bool {
        self.in_stream
    }

    /// Decodes the next message (copying it once).
    pub fn decode(&mut self, buf: &[u8]) -> Result<Message, DecodeError> {
        self.decode_bytes(Bytes::copy_from_slice(buf))
    }

    /// Decodes the next message without copying. A Stream Start inside a block, or a Stream
    /// Stop outside one, is an error and leaves the state unchanged.
    pub fn decode_bytes(&mut self, buf: Bytes) -> Result<Message, DecodeError> {
        let len = buf.len();
        let msg = decode_bytes(buf, self.in_stream)?;
        let out_of_sequence = |message| DecodeError {
            message,
            offset: 0,
            len,
            problem: Problem::OutOfSequence,
        };
        match &msg {
            Message::StreamStart(_) if self.in_stream => {
                return Err(out_of_sequence("Stream Start"))
            }
            Message::StreamStop if !self.in_stream => return Err(out_of_sequence("Stream Stop")),
            Message::StreamStart(_) => self.in_stream = true,
            Message::StreamStop => self.in_stream = false,
            _ => {}
        }
        Ok(msg)
    }
}

/// The relations of a stream, keyed by OID; each Relation message replaces the entry.
///
/// A Relation inside a stream block describes the relation as that (uncommitted) transaction
/// sees it; a consumer that spools streamed transactions updates the cache when it replays
/// the transaction, as PostgreSQL's apply worker does.
#[derive(Clone, Debug, Default)]
pub struct RelationCache {
    relations: HashMap<u32, Relation>,
}

impl RelationCache {
    pub fn new() -> RelationCache {
        RelationCache::default()
    }

    /// Stores `relation`, returning the definition it replaces.
    pub fn update(&mut self, relation: Relation) -> Option<Relation> {
        self.relations.insert(relation.oid, relation)
    }

    /// Stores the relation of a Relation message (a copy); other messages are ignored.
    /// Returns whether `msg` was a Relation.
    pub fn observe(&mut self, msg: &Message) -> bool {
        if let Message::Relation(r) = msg {
            self.update(r.clone());
            true
        } else {
            false
        }
    }

    pub fn get(&self, oid: u32) -> Option<&Relation> {
        self.relations.get(&oid)
    }

    /// Positions of the replica identity columns of `oid`.
    pub fn key_columns(&self, oid: u32) -> Option<Vec<usize>> {
        self.get(oid).map(Relation::key_columns)
    }

    /// Names of the replica identity columns of `oid`.
    pub fn key_names(&self, oid: u32) -> Option<Vec<&str>> {
        self.get(oid).map(|r| {
            r.columns
                .iter()
                .filter(|c| c.is_key())
                .map(|c| c.name.as_str())
                .collect()
        })
    }

    /// Column names of `oid`, in order.
    pub fn column_names(&self, oid: u32) -> Option<Vec<&str>> {
        self.get(oid).map(Relation::column_names)
    }

    /// `(schema, name)` of `oid`.
    pub fn name(&self, oid: u32) -> Option<(&str, &str)> {
        self.get(oid).map(|r| (r.schema(), r.name.as_str()))
    }

    pub fn remove(&mut self, oid: u32) -> Option<Relation> {
        self.relations.remove(&oid)
    }

    pub fn len(&self) -> usize {
        self.relations.len()
    }

    pub fn is_empty(&self) -> bool {
        self.relations.is_empty()
    }

    pub fn clear(&mut self) {
        self.relations.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Builds a message field by field, as the protocol documentation lists them.
    #[derive(Default)]
    struct B(Vec<u8>);

    impl B {
        fn tag(t: u8) -> B {
            B(vec![t])
        }
        fn u8(mut self, v: u8) -> B {
            self.0.push(v);
            self
        }
        fn i16(mut self, v: i16) -> B {
            self.0.extend_from_slice(&v.to_be_bytes());
            self
        }
        fn i32(mut self, v: i32) -> B {
            self.0.extend_from_slice(&v.to_be_bytes());
            self
        }
        fn u32(mut self, v: u32) -> B {
            self.0.extend_from_slice(&v.to_be_bytes());
            self
        }
        fn i64(mut self, v: i64) -> B {
            self.0.extend_from_slice(&v.to_be_bytes());
            self
        }
        fn u64(mut self, v: u64) -> B {
            self.0.extend_from_slice(&v.to_be_bytes());
            self
        }
        fn s(mut self, v: &str) -> B {
            self.0.extend_from_slice(v.as_bytes());
            self.0.push(0);
            self
        }
        fn raw(mut self, v: &[u8]) -> B {
            self.0.extend_from_slice(v);
            self
        }
        fn text(self, v: &[u8]) -> B {
            self.u8(b't').i32(v.len() as i32).raw(v)
        }
        fn bin(self, v: &[u8]) -> B {
            self.u8(b'b').i32(v.len() as i32).raw(v)
        }
        fn done(self) -> Vec<u8> {
            self.0
        }
    }

    /// A test-only encoder, the inverse of `decode`, for round trips.
    fn encode(m: &Message) -> Vec<u8> {
        fn xid(b: B, x: Option<u32>) -> B {
            match x {
                Some(x) => b.u32(x),
                None => b,
            }
        }
        fn tuple(mut b: B, t: &[Value]) -> B {
            b = b.i16(t.len() as i16);
            for v in t {
                b = match v {
                    Value::Null => b.u8(b'n'),
                    Value::Unchanged => b.u8(b'u'),
                    Value::Text(x) => b.text(x),
                    Value::Binary(x) => b.bin(x),
                };
            }
            b
        }
        fn old(b: B, o: &OldTuple) -> B {
            match o {
                OldTuple::Key(t) => tuple(b.u8(b'K'), t),
                OldTuple::Full(t) => tuple(b.u8(b'O'), t),
            }
        }
        fn prepare(tag: u8, p: &Prepare) -> B {
            B::tag(tag)
                .u8(p.flags)
                .u64(p.prepare_lsn.0)
                .u64(p.end_lsn.0)
                .i64(p.prepare_time)
                .u32(p.xid)
                .s(&p.gid)
        }
        let b = match m {
            Message::Begin(m) => B::tag(b'B')
                .u64(m.final_lsn.0)
                .i64(m.commit_time)
                .u32(m.xid),
            Message::Commit(m) => B::tag(b'C')
                .u8(m.flags)
                .u64(m.commit_lsn.0)
                .u64(m.end_lsn.0)
                .i64(m.commit_time),
            Message::Origin(m) => B::tag(b'O').u64(m.commit_lsn.0).s(&m.name),
            Message::Relation(m) => {
                let mut b = xid(B::tag(b'R'), m.xid)
                    .u32(m.oid)
                    .s(&m.namespace)
                    .s(&m.name)
                    .u8(m.replica_identity.as_byte())
                    .i16(m.columns.len() as i16);
                for c in &m.columns {
                    b = b
                        .u8(c.flags)
                        .s(&c.name)
                        .u32(c.type_oid)
                        .i32(c.type_modifier);
                }
                b
            }
            Message::Type(m) => xid(B::tag(b'Y'), m.xid)
                .u32(m.oid)
                .s(&m.namespace)
                .s(&m.name),
            Message::Insert(m) => tuple(xid(B::tag(b'I'), m.xid).u32(m.relation).u8(b'N'), &m.new),
            Message::Update(m) => {
                let mut b = xid(B::tag(b'U'), m.xid).u32(m.relation);
                if let Some(o) = &m.old {
                    b = old(b, o);
                }
                tuple(b.u8(b'N'), &m.new)
            }
            Message::Delete(m) => old(xid(B::tag(b'D'), m.xid).u32(m.relation), &m.old),
            Message::Truncate(m) => {
                let mut b = xid(B::tag(b'T'), m.xid)
                    .i32(m.relations.len() as i32)
                    .u8(u8::from(m.cascade) | (u8::from(m.restart_identity) << 1));
                for r in &m.relations {
                    b = b.u32(*r);
                }
                b
            }
            Message::Logical(m) => xid(B::tag(b'M'), m.xid)
                .u8(u8::from(m.transactional))
                .u64(m.lsn.0)
                .s(&m.prefix)
                .i32(m.content.len() as i32)
                .raw(&m.content),
            Message::StreamStart(m) => B::tag(b'S').u32(m.xid).u8(u8::from(m.first_segment)),
            Message::StreamStop => B::tag(b'E'),
            Message::StreamCommit(m) => B::tag(b'c')
                .u32(m.xid)
                .u8(m.flags)
                .u64(m.commit_lsn.0)
                .u64(m.end_lsn.0)
                .i64(m.commit_time),
            Message::StreamAbort(m) => {
                let b = B::tag(b'A').u32(m.xid).u32(m.subxid);
                match (m.abort_lsn, m.abort_time) {
                    (Some(l), Some(t)) => b.u64(l.0).i64(t),
                    _ => b,
                }
            }
            Message::BeginPrepare(m) => B::tag(b'b')
                .u64(m.prepare_lsn.0)
                .u64(m.end_lsn.0)
                .i64(m.prepare_time)
                .u32(m.xid)
                .s(&m.gid),
            Message::Prepare(p) => prepare(b'P', p),
            Message::StreamPrepare(p) => prepare(b'p', p),
            Message::CommitPrepared(m) => B::tag(b'K')
                .u8(m.flags)
                .u64(m.commit_lsn.0)
                .u64(m.end_lsn.0)
                .i64(m.commit_time)
                .u32(m.xid)
                .s(&m.gid),
            Message::RollbackPrepared(m) => B::tag(b'r')
                .u8(m.flags)
                .u64(m.prepare_end_lsn.0)
                .u64(m.rollback_end_lsn.0)
                .i64(m.prepare_time)
                .i64(m.rollback_time)
                .u32(m.xid)
                .s(&m.gid),
        };
        b.done()
    }

    fn t(s: &str) -> Value {
        Value::Text(Bytes::copy_from_slice(s.as_bytes()))
    }

    const TS: i64 = 789_123_456_789_012; // 2025-01-03 in microseconds since 2000-01-01

    /// (description, bytes, in_stream, expected) for every message type.
    fn samples() -> Vec<(&'static str, Vec<u8>, bool, Message)> {
        let relation = |xid: Option<u32>| Relation {
            xid,
            oid: 16_384,
            namespace: "public".into(),
            name: "items".into(),
            replica_identity: ReplicaIdentity::Default,
            columns: vec![
                Column {
                    flags: 1,
                    name: "id".into(),
                    type_oid: 23,
                    type_modifier: -1,
                },
                Column {
                    flags: 0,
                    name: "label".into(),
                    type_oid: 1043,
                    type_modifier: 68,
                },
            ],
        };
        let relation_bytes = |b: B| {
            b.u32(16_384)
                .s("public")
                .s("items")
                .u8(b'd')
                .i16(2)
                .u8(1)
                .s("id")
                .u32(23)
                .i32(-1)
                .u8(0)
                .s("label")
                .u32(1043)
                .i32(68)
                .done()
        };
        let gid = "pgmove-gid";
        vec![
            (
                "begin",
                B::tag(b'B').u64(0x16_B374_D848).i64(TS).u32(742).done(),
                false,
                Message::Begin(Begin {
                    final_lsn: Lsn(0x16_B374_D848),
                    commit_time: TS,
                    xid: 742,
                }),
            ),
            (
                "commit",
                B::tag(b'C')
                    .u8(0)
                    .u64(0x16_B374_D848)
                    .u64(0x16_B374_D878)
                    .i64(TS)
                    .done(),
                false,
                Message::Commit(Commit {
                    flags: 0,
                    commit_lsn: Lsn(0x16_B374_D848),
                    end_lsn: Lsn(0x16_B374_D878),
                    commit_time: TS,
                }),
            ),
            (
                "origin",
                B::tag(b'O').u64(0x1234).s("upstream").done(),
                false,
                Message::Origin(Origin {
                    commit_lsn: Lsn(0x1234),
                    name: "upstream".into(),
                }),
            ),
            (
                "relation",
                relation_bytes(B::tag(b'R')),
                false,
                Message::Relation(relation(None)),
            ),
            (
                "relation in a stream",
                relation_bytes(B::tag(b'R').u32(900)),
                true,
                Message::Relation(relation(Some(900))),
            ),
            (
                "relation in pg_catalog, replica identity full, no columns",
                B::tag(b'R').u32(1).s("").s("t").u8(b'f').i16(0).done(),
                false,
                Message::Relation(Relation {
                    xid: None,
                    oid: 1,
                    namespace: String::new(),
                    name: "t".into(),
                    replica_identity: ReplicaIdentity::Full,
                    columns: vec![],
                }),
            ),
            (
                "type",
                B::tag(b'Y').u32(16_390).s("public").s("mood").done(),
                false,
                Message::Type(TypeInfo {
                    xid: None,
                    oid: 16_390,
                    namespace: "public".into(),
                    name: "mood".into(),
                }),
            ),
            (
                "type in a stream",
                B::tag(b'Y')
                    .u32(900)
                    .u32(16_390)
                    .s("public")
                    .s("mood")
                    .done(),
                true,
                Message::Type(TypeInfo {
                    xid: Some(900),
                    oid: 16_390,
                    namespace: "public".into(),
                    name: "mood".into(),
                }),
            ),
            (
                "insert with tricky values",
                B::tag(b'I')
                    .u32(16_384)
                    .u8(b'N')
                    .i16(5)
                    .text(b"1")
                    .u8(b'n')
                    .text(b"")
                    .bin(&[0, 0, 0, 7])
                    .text("é\0x".as_bytes())
                    .done(),
                false,
                Message::Insert(Insert {
                    xid: None,
                    relation: 16_384,
                    new: vec![
                        t("1"),
                        Value::Null,
                        t(""),
                        Value::Binary(Bytes::from_static(&[0, 0, 0, 7])),
                        t("é\0x"),
                    ],
                }),
            ),
            (
                "insert in a stream",
                B::tag(b'I')
                    .u32(900)
                    .u32(16_384)
                    .u8(b'N')
                    .i16(1)
                    .text(b"2")
                    .done(),
                true,
                Message::Insert(Insert {
                    xid: Some(900),
                    relation: 16_384,
                    new: vec![t("2")],
                }),
            ),
            (
                "insert of a row without columns",
                B::tag(b'I').u32(5).u8(b'N').i16(0).done(),
                false,
                Message::Insert(Insert {
                    xid: None,
                    relation: 5,
                    new: vec![],
                }),
            ),
            (
                "update, key unchanged, toast unchanged",
                B::tag(b'U')
                    .u32(16_384)
                    .u8(b'N')
                    .i16(3)
                    .text(b"1")
                    .text(b"new title")
                    .u8(b'u')
                    .done(),
                false,
                Message::Update(Update {
                    xid: None,
                    relation: 16_384,
                    old: None,
                    new: vec![t("1"), t("new title"), Value::Unchanged],
                }),
            ),
            (
                "update of the key",
                B::tag(b'U')
                    .u32(16_384)
                    .u8(b'K')
                    .i16(2)
                    .text(b"2")
                    .u8(b'n')
                    .u8(b'N')
                    .i16(2)
                    .text(b"3")
                    .text(b"two")
                    .done(),
                false,
                Message::Update(Update {
                    xid: None,
                    relation: 16_384,
                    old: Some(OldTuple::Key(vec![t("2"), Value::Null])),
                    new: vec![t("3"), t("two")],
                }),
            ),
            (
                "update, replica identity full, in a stream",
                B::tag(b'U')
                    .u32(901)
                    .u32(16_400)
                    .u8(b'O')
                    .i16(2)
                    .text(b"2")
                    .text(b"B")
                    .u8(b'N')
                    .i16(2)
                    .text(b"2")
                    .text(b"B2")
                    .done(),
                true,
                Message::Update(Update {
                    xid: Some(901),
                    relation: 16_400,
                    old: Some(OldTuple::Full(vec![t("2"), t("B")])),
                    new: vec![t("2"), t("B2")],
                }),
            ),
            (
                "delete by key",
                B::tag(b'D')
                    .u32(16_384)
                    .u8(b'K')
                    .i16(2)
                    .text(b"1")
                    .u8(b'n')
                    .done(),
                false,
                Message::Delete(Delete {
                    xid: None,
                    relation: 16_384,
                    old: OldTuple::Key(vec![t("1"), Value::Null]),
                }),
            ),
            (
                "delete, replica identity full, in a stream",
                B::tag(b'D')
                    .u32(902)
                    .u32(16_400)
                    .u8(b'O')
                    .i16(2)
                    .text(b"1")
                    .text(b"A")
                    .done(),
                true,
                Message::Delete(Delete {
                    xid: Some(902),
                    relation: 16_400,
                    old: OldTuple::Full(vec![t("1"), t("A")]),
                }),
            ),
            (
                "truncate cascade restart identity",
                B::tag(b'T').i32(2).u8(3).u32(16_410).u32(16_420).done(),
                false,
                Message::Truncate(Truncate {
                    xid: None,
                    cascade: true,
                    restart_identity: true,
                    relations: vec![16_410, 16_420],
                }),
            ),
            (
                "truncate in a stream, no options",
                B::tag(b'T').u32(903).i32(1).u8(0).u32(16_410).done(),
                true,
                Message::Truncate(Truncate {
                    xid: Some(903),
                    cascade: false,
                    restart_identity: false,
                    relations: vec![16_410],
                }),
            ),
            (
                "transactional message",
                B::tag(b'M')
                    .u8(1)
                    .u64(0x3000)
                    .s("pgmove")
                    .i32(5)
                    .raw(b"hello")
                    .done(),
                false,
                Message::Logical(LogicalMessage {
                    xid: None,
                    transactional: true,
                    lsn: Lsn(0x3000),
                    prefix: "pgmove".into(),
                    content: Bytes::from_static(b"hello"),
                }),
            ),
            (
                "message in a stream, empty content",
                B::tag(b'M')
                    .u32(904)
                    .u8(1)
                    .u64(0x3100)
                    .s("pgmove.ddl")
                    .i32(0)
                    .done(),
                true,
                Message::Logical(LogicalMessage {
                    xid: Some(904),
                    transactional: true,
                    lsn: Lsn(0x3100),
                    prefix: "pgmove.ddl".into(),
                    content: Bytes::new(),
                }),
            ),
            (
                "non-transactional message with binary content",
                B::tag(b'M')
                    .u8(0)
                    .u64(0x3200)
                    .s("")
                    .i32(3)
                    .raw(&[0, 0xff, 0])
                    .done(),
                false,
                Message::Logical(LogicalMessage {
                    xid: None,
                    transactional: false,
                    lsn: Lsn(0x3200),
                    prefix: String::new(),
                    content: Bytes::from_static(&[0, 0xff, 0]),
                }),
            ),
            (
                "stream start, first segment",
                B::tag(b'S').u32(900).u8(1).done(),
                false,
                Message::StreamStart(StreamStart {
                    xid: 900,
                    first_segment: true,
                }),
            ),
            (
                "stream start, later segment",
                B::tag(b'S').u32(900).u8(0).done(),
                false,
                Message::StreamStart(StreamStart {
                    xid: 900,
                    first_segment: false,
                }),
            ),
            (
                "stream stop",
                B::tag(b'E').done(),
                true,
                Message::StreamStop,
            ),
            (
                "stream commit",
                B::tag(b'c')
                    .u32(900)
                    .u8(0)
                    .u64(0x5000)
                    .u64(0x5030)
                    .i64(TS)
                    .done(),
                false,
                Message::StreamCommit(StreamCommit {
                    xid: 900,
                    flags: 0,
                    commit_lsn: Lsn(0x5000),
                    end_lsn: Lsn(0x5030),
                    commit_time: TS,
                }),
            ),
            (
                "stream abort, protocol 2",
                B::tag(b'A').u32(900).u32(905).done(),
                false,
                Message::StreamAbort(StreamAbort {
                    xid: 900,
                    subxid: 905,
                    abort_lsn: None,
                    abort_time: None,
                }),
            ),
            (
                "stream abort, protocol 4 parallel",
                B::tag(b'A').u32(900).u32(900).u64(0x6000).i64(TS).done(),
                false,
                Message::StreamAbort(StreamAbort {
                    xid: 900,
                    subxid: 900,
                    abort_lsn: Some(Lsn(0x6000)),
                    abort_time: Some(TS),
                }),
            ),
            (
                "begin prepare",
                B::tag(b'b')
                    .u64(0x7000)
                    .u64(0x7030)
                    .i64(TS)
                    .u32(910)
                    .s(gid)
                    .done(),
                false,
                Message::BeginPrepare(BeginPrepare {
                    prepare_lsn: Lsn(0x7000),
                    end_lsn: Lsn(0x7030),
                    prepare_time: TS,
                    xid: 910,
                    gid: gid.into(),
                }),
            ),
            (
                "prepare",
                B::tag(b'P')
                    .u8(0)
                    .u64(0x7000)
                    .u64(0x7030)
                    .i64(TS)
                    .u32(910)
                    .s(gid)
                    .done(),
                false,
                Message::Prepare(Prepare {
                    flags: 0,
                    prepare_lsn: Lsn(0x7000),
                    end_lsn: Lsn(0x7030),
                    prepare_time: TS,
                    xid: 910,
                    gid: gid.into(),
                }),
            ),
            (
                "stream prepare",
                B::tag(b'p')
                    .u8(0)
                    .u64(0x7000)
                    .u64(0x7030)
                    .i64(TS)
                    .u32(910)
                    .s(gid)
                    .done(),
                false,
                Message::StreamPrepare(Prepare {
                    flags: 0,
                    prepare_lsn: Lsn(0x7000),
                    end_lsn: Lsn(0x7030),
                    prepare_time: TS,
                    xid: 910,
                    gid: gid.into(),
                }),
            ),
            (
                "commit prepared",
                B::tag(b'K')
                    .u8(0)
                    .u64(0x8000)
                    .u64(0x8030)
                    .i64(TS)
                    .u32(910)
                    .s(gid)
                    .done(),
                false,
                Message::CommitPrepared(CommitPrepared {
                    flags: 0,
                    commit_lsn: Lsn(0x8000),
                    end_lsn: Lsn(0x8030),
                    commit_time: TS,
                    xid: 910,
                    gid: gid.into(),
                }),
            ),
            (
                "rollback prepared",
                B::tag(b'r')
                    .u8(0)
                    .u64(0x7030)
                    .u64(0x9030)
                    .i64(TS)
                    .i64(TS + 5)
                    .u32(910)
                    .s(gid)
                    .done(),
                false,
                Message::RollbackPrepared(RollbackPrepared {
                    flags: 0,
                    prepare_end_lsn: Lsn(0x7030),
                    rollback_end_lsn: Lsn(0x9030),
                    prepare_time: TS,
                    rollback_time: TS + 5,
                    xid: 910,
                    gid: gid.into(),
                }),
            ),
        ]
    }

    #[test]
    fn decodes_every_message_type() {
        for (what, bytes, in_stream, expected) in samples() {
            let got = decode(&bytes, in_stream).unwrap_or_else(|e| panic!("{what}: {e}"));
            assert_eq!(got, expected, "{what}");
            assert_eq!(
                decode_bytes(Bytes::from(bytes.clone()), in_stream).as_ref(),
                Ok(&expected),
                "{what}: decode_bytes"
            );
        }
    }

    #[test]
    fn every_message_type_is_covered_and_named() {
        let kinds: std::collections::BTreeSet<&str> =
            samples().iter().map(|(_, _, _, m)| m.kind()).collect();
        assert_eq!(kinds.len(), 19, "{kinds:?}");
        for (_, bytes, _, m) in samples() {
            assert_eq!(kind_of(bytes[0]), m.kind());
        }
    }

    #[test]
    fn round_trips_through_the_test_encoder() {
        for (what, bytes, in_stream, expected) in samples() {
            assert_eq!(encode(&expected), bytes, "{what}: encode");
            let again = decode(&encode(&expected), in_stream).expect("decodes");
            assert_eq!(again, expected, "{what}: round trip");
        }
    }

    #[test]
    fn tricky_tuples_round_trip() {
        let big = vec![b'x'; 70_000];
        let tuples: Vec<Vec<Value>> = vec![
            vec![],
            vec![Value::Null],
            vec![Value::Unchanged],
            vec![t("")],
            vec![Value::Binary(Bytes::new())],
            vec![Value::Binary(Bytes::from_static(&[0, 0, 0]))],
            vec![Value::Text(Bytes::from(big))],
            vec![t("a"), Value::Null, Value::Unchanged, t(""), t("\u{1F600}")],
            (0..1000)
                .map(|i| if i % 2 == 0 { Value::Null } else { t("v") })
                .collect(),
        ];
        for (i, new) in tuples.into_iter().enumerate() {
            for in_stream in [false, true] {
                let xid = in_stream.then_some(77);
                let msgs = [
                    Message::Insert(Insert {
                        xid,
                        relation: 9,
                        new: new.clone(),
                    }),
                    Message::Update(Update {
                        xid,
                        relation: 9,
                        old: Some(OldTuple::Full(new.clone())),
                        new: new.clone(),
                    }),
                    Message::Update(Update {
                        xid,
                        relation: 9,
                        old: Some(OldTuple::Key(new.clone())),
                        new: new.clone(),
                    }),
                    Message::Delete(Delete {
                        xid,
                        relation: 9,
                        old: OldTuple::Key(new.clone()),
                    }),
                ];
                for m in msgs {
                    let bytes = encode(&m);
                    assert_eq!(decode(&bytes, in_stream).as_ref(), Ok(&m), "tuple {i}");
                }
            }
        }
    }

    #[test]
    fn values_are_zero_copy_slices_with_decode_bytes() {
        let buf = Bytes::from(B::tag(b'I').u32(1).u8(b'N').i16(1).text(b"abc").done());
        let Ok(Message::Insert(ins)) = decode_bytes(buf.clone(), false) else {
            panic!("insert expected");
        };
        let Some(Value::Text(v)) = ins.new.first() else {
            panic!("text expected");
        };
        assert_eq!(&v[..], b"abc");
        let start = buf.as_ptr() as usize;
        let p = v.as_ptr() as usize;
        assert!(
            p >= start && p < start + buf.len(),
            "a slice of the message"
        );
        assert_eq!(ins.new[0].as_text(), Some("abc"));
    }

    #[test]
    fn errors_name_the_message_and_offset() {
        let cases: Vec<(Vec<u8>, bool, &str, usize, Problem)> = vec![
            (vec![], false, "empty", 0, Problem::Empty),
            (vec![b'Z'], false, "unknown", 0, Problem::UnknownType(b'Z')),
            (
                B::tag(b'B').u64(1).done(),
                false,
                "Begin",
                9,
                Problem::Truncated { needed: 8 },
            ),
            (
                B::tag(b'E').u8(0).done(),
                false,
                "Stream Stop",
                1,
                Problem::TrailingBytes(1),
            ),
            (
                B::tag(b'O').u64(1).raw(b"abc").done(),
                false,
                "Origin",
                9,
                Problem::Unterminated,
            ),
            (
                B::tag(b'O').u64(1).raw(&[0xff, 0xfe, 0]).done(),
                false,
                "Origin",
                9,
                Problem::InvalidUtf8,
            ),
            (
                B::tag(b'I').u32(1).u8(b'N').i16(-1).done(),
                false,
                "Insert",
                6,
                Problem::Negative(-1),
            ),
            (
                B::tag(b'I').u32(1).u8(b'N').i16(1).u8(b'x').done(),
                false,
                "Insert",
                8,
                Problem::UnknownColumnKind(b'x'),
            ),
            (
                B::tag(b'I').u32(1).u8(b'K').i16(0).done(),
                false,
                "Insert",
                5,
                Problem::UnexpectedTupleMarker(b'K'),
            ),
            (
                B::tag(b'I').u32(1).u8(b'N').i16(1).u8(b't').i32(-5).done(),
                false,
                "Insert",
                9,
                Problem::Negative(-5),
            ),
            (
                B::tag(b'I')
                    .u32(1)
                    .u8(b'N')
                    .i16(1)
                    .u8(b't')
                    .i32(10)
                    .raw(b"abc")
                    .done(),
                false,
                "Insert",
                13,
                Problem::Truncated { needed: 7 },
            ),
            (
                B::tag(b'U').u32(1).u8(b'K').i16(0).u8(b'K').i16(0).done(),
                false,
                "Update",
                8,
                Problem::UnexpectedTupleMarker(b'K'),
            ),
            (
                B::tag(b'D').u32(1).u8(b'N').i16(0).done(),
                false,
                "Delete",
                5,
                Problem::UnexpectedTupleMarker(b'N'),
            ),
            (
                B::tag(b'R').u32(1).s("s").s("t").u8(b'x').i16(0).done(),
                false,
                "Relation",
                9,
                Problem::UnknownReplicaIdentity(b'x'),
            ),
            (
                B::tag(b'T').i32(1).u8(4).u32(1).done(),
                false,
                "Truncate",
                5,
                Problem::UnknownTruncateOptions(4),
            ),
            (
                B::tag(b'T').i32(i32::MAX).u8(0).u32(1).done(),
                false,
                "Truncate",
                10,
                Problem::Truncated { needed: 4 },
            ),
            (
                B::tag(b'M').u8(1).u64(1).s("p").i32(-1).done(),
                false,
                "Message",
                12,
                Problem::Negative(-1),
            ),
            (
                B::tag(b'A').u32(1).u32(1).u64(5).done(),
                false,
                "Stream Abort",
                17,
                Problem::Truncated { needed: 8 },
            ),
            // The same bytes read as a stream-block insert lack the relation's last byte.
            (
                B::tag(b'I').u32(1).u8(b'N').i16(0).done(),
                true,
                "Insert",
                5,
                Problem::Truncated { needed: 1 },
            ),
        ];
        for (bytes, in_stream, message, offset, problem) in cases {
            let e = decode(&bytes, in_stream).expect_err("must fail");
            assert_eq!(
                (e.message, e.offset, &e.problem),
                (message, offset, &problem),
                "{bytes:?}: {e}"
            );
            assert_eq!(e.len, bytes.len());
            assert!(e.to_string().contains(message), "{e}");
            assert!(e.to_string().contains(&format!("offset {offset}")), "{e}");
        }
    }

    #[test]
    fn stream_decoder_tracks_blocks() {
        let mut d = StreamDecoder::new();
        let insert_plain = B::tag(b'I').u32(7).u8(b'N').i16(0).done();
        let insert_stream = B::tag(b'I').u32(900).u32(7).u8(b'N').i16(0).done();
        assert!(matches!(
            d.decode(&insert_plain),
            Ok(Message::Insert(Insert { xid: None, .. }))
        ));
        assert_eq!(
            d.decode(&B::tag(b'E').done()).map_err(|e| e.problem),
            Err(Problem::OutOfSequence)
        );
        assert!(!d.in_stream());
        d.decode(&B::tag(b'S').u32(900).u8(1).done())
            .expect("start");
        assert!(d.in_stream());
        assert_eq!(
            d.decode(&B::tag(b'S').u32(900).u8(0).done())
                .map_err(|e| e.problem),
            Err(Problem::OutOfSequence)
        );
        assert!(matches!(
            d.decode(&insert_stream),
            Ok(Message::Insert(Insert {
                xid: Some(900),
                relation: 7,
                ..
            }))
        ));
        assert_eq!(d.decode(&B::tag(b'E').done()), Ok(Message::StreamStop));
        assert!(!d.in_stream());
        assert!(matches!(
            d.decode(&insert_plain),
            Ok(Message::Insert(Insert { xid: None, .. }))
        ));
    }

    #[test]
    fn relation_cache_answers_keys_and_names_and_is_replaced() {
        let mut cache = RelationCache::new();
        assert!(cache.is_empty());
        let (_, bytes, _, msg) = samples()
            .into_iter()
            .find(|s| s.0 == "relation")
            .expect("sample");
        assert_eq!(decode(&bytes, false).as_ref(), Ok(&msg));
        assert!(cache.observe(&msg));
        assert!(!cache.observe(&Message::StreamStop));
        assert_eq!(cache.len(), 1);
        assert_eq!(cache.key_columns(16_384), Some(vec![0]));
        assert_eq!(cache.key_names(16_384), Some(vec!["id"]));
        assert_eq!(cache.column_names(16_384), Some(vec!["id", "label"]));
        assert_eq!(cache.name(16_384), Some(("public", "items")));
        assert_eq!(cache.key_columns(1), None);

        // A new definition (a column added, the key now two columns) replaces the old one.
        let Message::Relation(mut r) = msg else {
            panic!("relation")
        };
        r.columns[1].flags = COLUMN_KEY;
        r.columns.push(Column {
            flags: 0,
            name: "added".into(),
            type_oid: 25,
            type_modifier: -1,
        });
        let old = cache.update(r).expect("replaced");
        assert_eq!(old.columns.len(), 2);
        assert_eq!(cache.key_columns(16_384), Some(vec![0, 1]));
        assert_eq!(
            cache.column_names(16_384),
            Some(vec!["id", "label", "added"])
        );

        // pg_catalog is sent as the empty namespace.
        cache.update(Relation {
            xid: None,
            oid: 2,
            namespace: String::new(),
            name: "x".into(),
            replica_identity: ReplicaIdentity::Nothing,
            columns: vec![],
        });
        assert_eq!(cache.name(2), Some(("pg_catalog", "x")));
        assert_eq!(cache.key_columns(2), Some(vec![]));
        assert!(cache.remove(2).is_some());
        cache.clear();
        assert!(cache.is_empty());
    }

    /// xorshift64*: deterministic pseudo-random bytes without a crate.
    struct Rng(u64);
    impl Rng {
        fn next(&mut self) -> u64 {
            self.0 ^= self.0 >> 12;
            self.0 ^= self.0 << 25;
            self.0 ^= self.0 >> 27;
            self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
        }
        fn below(&mut self, n: usize) -> usize {
            (self.next() % n as u64) as usize
        }
    }

    /// Decodes without panicking; an error is well formed.
    fn survive(buf: &[u8], in_stream: bool) {
        match decode(buf, in_stream) {
            Ok(m) => {
                // Whatever decodes re-encodes to bytes that decode to the same message.
                assert_eq!(decode(&encode(&m), in_stream).as_ref(), Ok(&m), "{buf:?}");
            }
            Err(e) => {
                assert!(e.offset <= buf.len(), "{e}");
                assert_eq!(e.len, buf.len());
                assert!(!e.to_string().is_empty());
            }
        }
    }

    #[test]
    fn fuzz_prefixes_mutations_and_random_buffers_never_panic() {
        let samples = samples();
        for (what, bytes, in_stream, _) in &samples {
            for n in 0..bytes.len() {
                let prefix = &bytes[..n];
                survive(prefix, *in_stream);
                survive(prefix, !*in_stream);
                // A strict prefix of a message is never the same message.
                if let Ok(m) = decode(prefix, *in_stream) {
                    assert!(
                        *what == "stream abort, protocol 4 parallel" && n == 9,
                        "{what}: prefix of {n} bytes decoded as {m:?}"
                    );
                }
            }
            let mut longer = bytes.clone();
            longer.push(0);
            assert!(
                decode(&longer, *in_stream).is_err(),
                "{what}: trailing byte"
            );
        }

        let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
        let tags = b"BCORYIUDTMSEcAbPKrpZ\0";
        // Mutated samples: a few bytes overwritten, truncated or extended.
        for _ in 0..5000 {
            let (_, bytes, in_stream, _) = &samples[rng.below(samples.len())];
            let mut b = bytes.clone();
            for _ in 0..1 + rng.below(4) {
                if b.is_empty() {
                    break;
                }
                let i = rng.below(b.len());
                b[i] = rng.next() as u8;
            }
            match rng.below(4) {
                0 => b.truncate(rng.below(b.len() + 1)),
                1 => b.extend((0..rng.below(8)).map(|_| rng.next() as u8)),
                _ => {}
            }
            survive(&b, *in_stream);
        }
        // Random buffers behind a plausible tag, with small numbers likelier.
        for _ in 0..5000 {
            let len = rng.below(64);
            let mut b = vec![tags[rng.below(tags.len())]];
            for _ in 0..len {
                let x = rng.next();
                b.push(match x % 4 {
                    0 => 0,
                    1 => (x >> 8) as u8 % 4,
                    2 => b"ntubKON"[(x >> 8) as usize % 7],
                    _ => (x >> 8) as u8,
                });
            }
            survive(&b, rng.below(2) == 1);
        }
    }
}
