//! pgoutput decoding, message by message, on bytes as the server sends them.

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
