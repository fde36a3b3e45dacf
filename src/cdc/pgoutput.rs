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
mod tests;
