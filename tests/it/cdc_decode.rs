//! The pgoutput decoder against a real server: every kind of change a migration meets, read
//! (1) through the SQL interface with protocol 3+ and `streaming 'on'`, so a large transaction
//! arrives in Stream Start/Stop blocks, and (2) over the replication protocol through
//! pgwire-replication (protocol 1, the only one it can ask for), with standby feedback that
//! never runs ahead of what was confirmed, and resumption from a confirmed or a later LSN.

use crate::support;

use std::collections::HashMap;
use std::time::{Duration, Instant};

use pgmove::cdc::pgoutput::{self, Message, OldTuple, RelationCache, StreamDecoder, Value};
use pgmove::cdc::stream::{ChangeStream, StreamError, StreamOptions};
use pgmove::pg::{Endpoint, Lsn, Secret, Side};
use support::{Cluster, Options};

const SLOT: &str = "pgmove_decode";
const PUBLICATION: &str = "pgmove_decode";
const BIG_ROWS: usize = 100_000;

fn no_env(_: &str) -> Option<String> {
    None
}

fn source(c: &Cluster) -> Endpoint {
    Endpoint::from_dsn(
        Side::Source,
        &c.uri_no_password("shop"),
        Some(Secret::new(c.password.clone())),
        &no_env,
    )
    .expect("valid dsn")
}

/// A logical cluster whose decoding spills (or streams) transactions above 64 kB.
fn cluster() -> Cluster {
    Cluster::start(Options::logical().set("logical_decoding_work_mem", "'64kB'"))
}

/// Tables, a publication for all of them and the slot; then the changes, one transaction per
/// `psql` call. Returns the slot's confirmed LSN right after it was created.
fn prepare_and_run_workload(c: &Cluster) -> Lsn {
    c.create_db("shop");
    c.psql(
        "shop",
        "CREATE TYPE mood AS ENUM ('sad', 'ok', 'happy');
         CREATE TABLE items (id int PRIMARY KEY, label text, qty int, feeling mood);
         CREATE TABLE fulls (a int, b text);
         ALTER TABLE fulls REPLICA IDENTITY FULL;
         INSERT INTO fulls VALUES (1, 'A'), (2, 'B');
         CREATE TABLE docs (id int PRIMARY KEY, title text, body text);
         ALTER TABLE docs ALTER COLUMN body SET STORAGE EXTERNAL;
         INSERT INTO docs SELECT 1, 'old title', string_agg(md5(random()::text), '')
           FROM generate_series(1, 320);
         CREATE TABLE trunc_parent (id serial PRIMARY KEY, v text);
         CREATE TABLE trunc_child (id int PRIMARY KEY, parent int REFERENCES trunc_parent);
         INSERT INTO trunc_parent (v) VALUES ('p');
         INSERT INTO trunc_child VALUES (1, 1);
         CREATE TABLE big (id int PRIMARY KEY, v text);
         CREATE PUBLICATION pgmove_decode FOR ALL TABLES;
         SELECT pg_replication_origin_create('upstream');",
    );
    // The TOASTed value really is stored out of line (10 kB).
    assert_eq!(
        c.psql(
            "shop",
            "SELECT length(body), pg_column_size(body) > 10000 FROM docs"
        ),
        "10240|t"
    );
    let created = c.psql(
        "shop",
        &format!("SELECT lsn FROM pg_create_logical_replication_slot('{SLOT}', 'pgoutput')"),
    );
    let created: Lsn = created.parse().expect("slot LSN");

    for sql in [
        "INSERT INTO items VALUES (1, 'one', 10, 'happy'), (2, 'two', 20, NULL)",
        "UPDATE items SET qty = 11 WHERE id = 1",
        "UPDATE items SET id = 3 WHERE id = 2",
        "DELETE FROM items WHERE id = 1",
        "UPDATE fulls SET b = 'B2' WHERE a = 2",
        "DELETE FROM fulls WHERE a = 1",
        "UPDATE docs SET title = 'new title' WHERE id = 1",
        "SELECT pg_logical_emit_message(true, 'pgmove', 'hello')",
        "SELECT pg_logical_emit_message(false, 'pgmove', 'now')",
        "SELECT pg_replication_origin_session_setup('upstream');
         BEGIN;
         SELECT pg_replication_origin_xact_setup('0/ABCDEF', now());
         INSERT INTO items VALUES (10, 'from upstream', 1, 'ok');
         COMMIT;",
        "TRUNCATE trunc_parent RESTART IDENTITY CASCADE",
        // Committed synchronously (the harness turns synchronous_commit off): everything is
        // flushed, so decoding sees the whole stream when psql returns.
        "SET synchronous_commit = on;
         BEGIN;
         INSERT INTO big SELECT g, 'row ' || g FROM generate_series(1, 100000) g;
         COMMIT;",
    ] {
        c.psql("shop", sql);
    }
    created
}

/// The small transactions, as [`Transcript`] prints them: identical over both paths.
const EXPECTED: &[&str] = &[
    "BEGIN",
    "TYPE public.mood",
    "RELATION public.items Default id*:23 label:25 qty:23 feeling:mood",
    "INSERT public.items (1, one, 10, happy)",
    "INSERT public.items (2, two, 20, NULL)",
    "COMMIT",
    "BEGIN",
    "UPDATE public.items new=(1, one, 11, happy)",
    "COMMIT",
    // A primary-key update: the old key, other columns NULL.
    "BEGIN",
    "UPDATE public.items old=key(2, NULL, NULL, NULL) new=(3, two, 20, NULL)",
    "COMMIT",
    "BEGIN",
    "DELETE public.items old=key(1, NULL, NULL, NULL)",
    "COMMIT",
    // REPLICA IDENTITY FULL: every column is key, the whole old row is sent.
    "BEGIN",
    "RELATION public.fulls Full a*:23 b*:25",
    "UPDATE public.fulls old=full(2, B) new=(2, B2)",
    "COMMIT",
    "BEGIN",
    "DELETE public.fulls old=full(1, A)",
    "COMMIT",
    // The TOASTed body was not touched: not sent.
    "BEGIN",
    "RELATION public.docs Default id*:23 title:25 body:25",
    "UPDATE public.docs new=(1, new title, <unchanged>)",
    "COMMIT",
    "BEGIN",
    "MESSAGE transactional pgmove hello",
    "COMMIT",
    "MESSAGE non-transactional pgmove now",
    "BEGIN",
    "ORIGIN upstream 0/ABCDEF",
    "INSERT public.items (10, from upstream, 1, ok)",
    "COMMIT",
    "BEGIN",
    "RELATION public.trunc_parent Default id*:23 v:25",
    "RELATION public.trunc_child Default id*:23 parent:23",
    "TRUNCATE public.trunc_parent, public.trunc_child cascade restart_identity",
    "COMMIT",
];

/// Prints messages as one readable line each, with relation and type names resolved through
/// a [`RelationCache`].
#[derive(Default)]
struct Transcript {
    relations: RelationCache,
    types: HashMap<u32, String>,
}

fn show(v: &Value) -> String {
    match v {
        Value::Null => "NULL".into(),
        Value::Unchanged => "<unchanged>".into(),
        Value::Text(b) => String::from_utf8_lossy(b).into_owned(),
        Value::Binary(b) => format!(
            "0x{}",
            b.iter().map(|x| format!("{x:02x}")).collect::<String>()
        ),
    }
}

fn row(values: &[Value]) -> String {
    format!(
        "({})",
        values.iter().map(show).collect::<Vec<_>>().join(", ")
    )
}

fn old(o: &OldTuple) -> String {
    match o {
        OldTuple::Key(v) => format!("key{}", row(v)),
        OldTuple::Full(v) => format!("full{}", row(v)),
    }
}

impl Transcript {
    fn rel(&self, oid: u32) -> String {
        let (schema, name) = self.relations.name(oid).expect("a Relation came first");
        format!("{schema}.{name}")
    }

    fn line(&mut self, m: &Message) -> String {
        match m {
            Message::Begin(_) => "BEGIN".into(),
            Message::Commit(_) => "COMMIT".into(),
            Message::Origin(o) => format!("ORIGIN {} {}", o.name, o.commit_lsn),
            Message::Type(t) => {
                self.types.insert(t.oid, t.name.clone());
                format!("TYPE {}.{}", t.namespace, t.name)
            }
            Message::Relation(r) => {
                self.relations.observe(m);
                let cols: Vec<String> = r
                    .columns
                    .iter()
                    .map(|c| {
                        let ty = self
                            .types
                            .get(&c.type_oid)
                            .cloned()
                            .unwrap_or_else(|| c.type_oid.to_string());
                        format!("{}{}:{ty}", c.name, if c.is_key() { "*" } else { "" })
                    })
                    .collect();
                format!(
                    "RELATION {}.{} {:?} {}",
                    r.schema(),
                    r.name,
                    r.replica_identity,
                    cols.join(" ")
                )
            }
            Message::Insert(i) => format!("INSERT {} {}", self.rel(i.relation), row(&i.new)),
            Message::Update(u) => match &u.old {
                Some(o) => format!(
                    "UPDATE {} old={} new={}",
                    self.rel(u.relation),
                    old(o),
                    row(&u.new)
                ),
                None => format!("UPDATE {} new={}", self.rel(u.relation), row(&u.new)),
            },
            Message::Delete(d) => format!("DELETE {} old={}", self.rel(d.relation), old(&d.old)),
            Message::Truncate(t) => {
                let names: Vec<String> = t.relations.iter().map(|r| self.rel(*r)).collect();
                format!(
                    "TRUNCATE {}{}{}",
                    names.join(", "),
                    if t.cascade { " cascade" } else { "" },
                    if t.restart_identity {
                        " restart_identity"
                    } else {
                        ""
                    }
                )
            }
            Message::Logical(l) => format!(
                "MESSAGE {} {} {}",
                if l.transactional {
                    "transactional"
                } else {
                    "non-transactional"
                },
                l.prefix,
                String::from_utf8_lossy(&l.content)
            ),
            other => other.kind().to_uppercase(),
        }
    }
}

/// Commits are in order, a Begin's final LSN is its Commit's commit LSN, and Commit's end LSN
/// follows its commit LSN.
fn assert_transaction_lsns(msgs: &[Message]) {
    let mut open: Option<Lsn> = None;
    let mut last_end = Lsn(0);
    for m in msgs {
        match m {
            Message::Begin(b) => {
                assert!(open.is_none(), "nested Begin");
                open = Some(b.final_lsn);
            }
            Message::Commit(c) => {
                assert_eq!(open.take(), Some(c.commit_lsn), "Begin/Commit LSNs");
                assert!(c.end_lsn > c.commit_lsn);
                assert!(c.end_lsn > last_end, "commits in order");
                assert_eq!(c.flags, 0);
                last_end = c.end_lsn;
            }
            _ => {}
        }
    }
}

/// The highest pgoutput protocol version the server speaks (2 on 14, 3 on 15, 4 on 16+).
async fn max_protocol(c: &Cluster) -> u32 {
    let client = c.client("shop").await;
    let v: i32 = client
        .query_one("SELECT current_setting('server_version_num')::int", &[])
        .await
        .expect("version")
        .get(0);
    match v {
        v if v >= 160_000 => 4,
        v if v >= 150_000 => 3,
        _ => 2,
    }
}

/// Every message of the slot through `pg_logical_slot_peek_binary_changes` with `options`
/// (the slot does not advance): (xid, message bytes).
async fn peek(c: &Cluster, options: &[(&str, &str)]) -> Vec<(u32, Vec<u8>)> {
    let client = c.client("shop").await;
    client
        .batch_execute("SET logical_decoding_work_mem = '64kB'")
        .await
        .expect("set work mem");
    let opts: Vec<String> = options
        .iter()
        .flat_map(|(k, v)| [format!("'{k}'"), format!("'{v}'")])
        .collect();
    let sql = format!(
        "SELECT xid::text, data FROM pg_logical_slot_peek_binary_changes('{SLOT}', NULL, NULL, {})",
        opts.join(", ")
    );
    client
        .query(&sql, &[])
        .await
        .expect("peek changes")
        .iter()
        .map(|r| {
            let xid: String = r.get(0);
            (xid.parse().expect("xid"), r.get(1))
        })
        .collect()
}

#[tokio::test]
async fn sql_interface_with_streaming_decodes_every_change_exactly() {
    let c = cluster();
    prepare_and_run_workload(&c);
    let proto = max_protocol(&c).await.to_string();
    let rows = peek(
        &c,
        &[
            ("proto_version", &proto),
            ("publication_names", PUBLICATION),
            ("messages", "true"),
            ("streaming", "on"),
        ],
    )
    .await;

    let mut decoder = StreamDecoder::new();
    let mut msgs = Vec::new();
    for (i, (_, bytes)) in rows.iter().enumerate() {
        let in_stream = decoder.in_stream();
        let m = decoder
            .decode(bytes)
            .unwrap_or_else(|e| panic!("message {i}: {e}"));
        assert_eq!(
            m.stream_xid().is_some(),
            in_stream && m.kind() != "Stream Stop"
        );
        msgs.push(m);
    }
    assert!(!decoder.in_stream(), "every stream block was closed");

    // The small transactions, exactly.
    let first_stream = msgs
        .iter()
        .position(|m| matches!(m, Message::StreamStart(_)))
        .expect("the big transaction was streamed");
    let mut transcript = Transcript::default();
    let lines: Vec<String> = msgs[..first_stream]
        .iter()
        .map(|m| transcript.line(m))
        .collect();
    assert_eq!(lines, EXPECTED);
    assert_transaction_lsns(&msgs[..first_stream]);
    // The xid of Begin is the server's.
    for (i, m) in msgs[..first_stream].iter().enumerate() {
        if let Message::Begin(b) = m {
            assert_eq!(b.xid, rows[i].0);
        }
    }

    // The big transaction: Stream Start/Stop blocks of one xid, then Stream Commit.
    let Message::StreamStart(start) = &msgs[first_stream] else {
        unreachable!()
    };
    assert!(start.first_segment);
    let xid = start.xid;
    assert_eq!(rows[first_stream].0, xid);
    let mut blocks = 0;
    let mut inserted = Vec::with_capacity(BIG_ROWS);
    let mut big_oid = None;
    let mut in_block = false;
    let mut committed = false;
    let rest = &msgs[first_stream..];
    for (i, m) in rest.iter().enumerate() {
        match m {
            Message::StreamStart(s) => {
                assert!(!in_block);
                assert_eq!(s.xid, xid);
                assert_eq!(s.first_segment, blocks == 0);
                blocks += 1;
                in_block = true;
            }
            Message::StreamStop => {
                assert!(in_block);
                in_block = false;
            }
            Message::Relation(r) => {
                assert_eq!((r.xid, r.name.as_str()), (Some(xid), "big"));
                assert_eq!(r.column_names(), ["id", "v"]);
                assert_eq!(r.key_columns(), [0]);
                big_oid = Some(r.oid);
            }
            Message::Insert(ins) => {
                assert!(in_block);
                assert_eq!(ins.xid, Some(xid));
                assert_eq!(Some(ins.relation), big_oid);
                let id: usize = ins.new[0].as_text().expect("text").parse().expect("id");
                assert_eq!(
                    ins.new[1].as_text().map(str::to_string),
                    Some(format!("row {id}"))
                );
                inserted.push(id);
            }
            Message::StreamCommit(sc) => {
                assert!(!in_block);
                assert_eq!(sc.xid, xid);
                assert!(sc.end_lsn > sc.commit_lsn);
                assert_eq!(i, rest.len() - 1, "the Stream Commit ends the stream");
                committed = true;
            }
            other => panic!("unexpected in the streamed transaction: {other:?}"),
        }
    }
    assert!(blocks >= 2, "streamed in {blocks} block(s)");
    assert!(
        committed,
        "the streamed transaction ended with a Stream Commit"
    );
    let expected: Vec<usize> = (1..=BIG_ROWS).collect();
    if inserted != expected {
        let at = inserted.iter().zip(&expected).position(|(a, b)| a != b);
        panic!(
            "{} inserts seen, {BIG_ROWS} expected; first difference at index {at:?}",
            inserted.len()
        );
    }
    assert!(blocks >= 2, "streamed in {blocks} block(s)");
    let expected: Vec<usize> = (1..=BIG_ROWS).collect();
    if inserted != expected {
        let at = inserted.iter().zip(&expected).position(|(a, b)| a != b);
        let mut gaps = Vec::new();
        for w in inserted.windows(2) {
            if w[1] != w[0] + 1 {
                gaps.push((w[0], w[1]));
            }
        }
        let tail: Vec<String> = rest
            .iter()
            .rev()
            .take(6)
            .map(|m| m.kind().to_string())
            .collect();
        eprintln!("tail (reversed): {tail:?}");
        for q in [
            format!("SELECT count(*) FILTER (WHERE substr(data,1,1) = 'I'::bytea), count(*) FROM pg_logical_slot_peek_binary_changes('{SLOT}', NULL, NULL, 'proto_version', '{proto}', 'publication_names', '{PUBLICATION}', 'streaming', 'on')"),
            format!("SELECT count(*) FILTER (WHERE substr(data,1,1) = 'I'::bytea), count(*) FROM pg_logical_slot_peek_binary_changes('{SLOT}', NULL, NULL, 'proto_version', '{proto}', 'publication_names', '{PUBLICATION}')"),
            "SELECT count(*) FROM big".to_string(),
        ] {
            eprintln!("{q}: {}", c.psql("shop", &q));
        }
        eprintln!(
            "gaps: {:?} first {:?} last {:?} blocks {blocks}",
            &gaps[..gaps.len().min(20)],
            inserted.first(),
            inserted.last()
        );
        panic!(
            "{} inserts seen, {BIG_ROWS} expected; first difference at {at:?}: {:?}",
            inserted.len(),
            at.map(|i| &inserted[i.saturating_sub(2)..(i + 3).min(inserted.len())])
        );
    }
    eprintln!(
        "protocol {proto}: {} messages, the big transaction in {blocks} stream blocks",
        msgs.len()
    );

    // Binary mode: the same first insert with binary values.
    let rows = peek(
        &c,
        &[
            ("proto_version", &proto),
            ("publication_names", PUBLICATION),
            ("binary", "true"),
        ],
    )
    .await;
    let inserts: Vec<Message> = rows
        .iter()
        .map(|(_, b)| pgoutput::decode(b, false).expect("decodes"))
        .filter(|m| matches!(m, Message::Insert(_)))
        .take(2)
        .collect();
    let Message::Insert(first) = &inserts[0] else {
        unreachable!()
    };
    assert_eq!(
        first.new,
        vec![
            Value::Binary(bytes::Bytes::from_static(&[0, 0, 0, 1])),
            Value::Binary(bytes::Bytes::from_static(b"one")),
            Value::Binary(bytes::Bytes::from_static(&[0, 0, 0, 10])),
            Value::Binary(bytes::Bytes::from_static(b"happy")),
        ]
    );
    let Message::Insert(second) = &inserts[1] else {
        unreachable!()
    };
    assert_eq!(second.new[3], Value::Null);
}

async fn next(stream: &mut ChangeStream) -> (Lsn, Message) {
    tokio::time::timeout(Duration::from_secs(60), stream.next())
        .await
        .expect("a message within 60s")
        .expect("stream ok")
        .expect("stream not ended")
}

async fn confirmed_flush(c: &Cluster) -> Lsn {
    let client = c.client("shop").await;
    client
        .query_one(
            "SELECT confirmed_flush_lsn FROM pg_replication_slots WHERE slot_name = $1",
            &[&SLOT],
        )
        .await
        .expect("slot")
        .get(0)
}

/// Waits until the slot's confirmed LSN is `want`, and fails if it goes past it.
async fn wait_confirmed(c: &Cluster, want: Lsn) {
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let now = confirmed_flush(c).await;
        assert!(
            now <= want,
            "the slot went past what was confirmed: {now} > {want}"
        );
        if now == want {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "slot still at {now}, want {want}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn fast() -> StreamOptions {
    StreamOptions {
        status_interval: Duration::from_millis(200),
        ..StreamOptions::default()
    }
}

#[tokio::test]
async fn replication_protocol_stream_decodes_and_feeds_back_only_what_was_confirmed() {
    let c = cluster();
    let created = prepare_and_run_workload(&c);
    let ep = source(&c);
    assert_eq!(confirmed_flush(&c).await, created);

    // Protocol 1 (no streaming of in-progress transactions): the big one arrives whole.
    let opts = StreamOptions {
        streaming: false,
        ..fast()
    };
    let mut stream = ChangeStream::start_with(&ep, SLOT, &[PUBLICATION], Lsn(0), &opts)
        .await
        .expect("start streaming");
    assert_eq!(stream.protocol_version(), 1);

    // Everything, up to the Commit of the big transaction.
    let mut msgs: Vec<(Lsn, Message)> = Vec::new();
    let mut big_inserts = 0usize;
    let mut big_oid = None;
    loop {
        let (lsn, m) = next(&mut stream).await;
        match &m {
            Message::Relation(r) if r.name == "big" => big_oid = Some(r.oid),
            Message::Insert(i) if Some(i.relation) == big_oid => big_inserts += 1,
            _ => {}
        }
        let done = big_inserts == BIG_ROWS && matches!(m, Message::Commit(_));
        msgs.push((lsn, m));
        if done {
            break;
        }
    }
    let only: Vec<Message> = msgs.iter().map(|(_, m)| m.clone()).collect();
    assert_transaction_lsns(&only);

    // Protocol 1: the small transactions as over the SQL interface, the big one whole.
    let mut transcript = Transcript::default();
    let lines: Vec<String> = only[..EXPECTED.len()]
        .iter()
        .map(|m| transcript.line(m))
        .collect();
    assert_eq!(lines, EXPECTED);
    let big = &only[EXPECTED.len()..];
    assert!(matches!(big[0], Message::Begin(_)));
    assert!(matches!(&big[1], Message::Relation(r) if r.name == "big"));
    assert_eq!(big.len(), 2 + BIG_ROWS + 1);
    for (k, m) in big[2..2 + BIG_ROWS].iter().enumerate() {
        let Message::Insert(i) = m else {
            panic!("insert expected, got {m:?}")
        };
        assert_eq!(i.xid, None);
        assert_eq!(i.new[0].as_text(), Some((k + 1).to_string().as_str()));
    }
    assert!(stream.server_wal_end() > Lsn(0));

    // The LSN paired with each message: a Commit's end LSN, a Begin's final LSN, a change's own
    // position (before its transaction's commit), a Message's own LSN.
    let commit_ends: Vec<Lsn> = msgs
        .iter()
        .filter_map(|(lsn, m)| match m {
            Message::Commit(cm) => {
                assert_eq!(*lsn, cm.end_lsn);
                Some(cm.end_lsn)
            }
            _ => None,
        })
        .collect();
    let mut open_final = None;
    for (lsn, m) in &msgs {
        match m {
            Message::Begin(b) => {
                assert_eq!(*lsn, b.final_lsn);
                open_final = Some(b.final_lsn);
            }
            Message::Insert(_) | Message::Update(_) | Message::Delete(_) | Message::Truncate(_) => {
                let fin = open_final.expect("inside a transaction");
                assert!(
                    *lsn > Lsn(0) && *lsn < fin,
                    "change at {lsn}, commit at {fin}"
                );
            }
            Message::Logical(l) => assert_eq!(*lsn, l.lsn),
            Message::Commit(_) => open_final = None,
            _ => {}
        }
    }

    // Nothing confirmed yet: the slot has not moved, however long the stream runs.
    tokio::time::sleep(Duration::from_millis(800)).await;
    assert_eq!(confirmed_flush(&c).await, created);
    assert_eq!(stream.reported(), Lsn(0));

    // Confirm the fourth transaction (the DELETE from items): the slot goes exactly there.
    let fourth = commit_ends[3];
    stream.confirm(fourth);
    stream.confirm(Lsn(fourth.0 - 1)); // lower: ignored
    assert_eq!(stream.confirmed(), fourth);
    wait_confirmed(&c, fourth).await;
    tokio::time::sleep(Duration::from_millis(600)).await;
    assert_eq!(confirmed_flush(&c).await, fourth);
    stream.stop().await.expect("stop");

    // Resume from the slot: the fifth transaction comes first.
    let mut stream = ChangeStream::start_with(&ep, SLOT, &[PUBLICATION], Lsn(0), &fast())
        .await
        .expect("restart");
    let mut transcript = Transcript::default();
    let mut lines = Vec::new();
    for _ in 0..4 {
        let (_, m) = next(&mut stream).await;
        lines.push(transcript.line(&m));
    }
    assert_eq!(lines, &EXPECTED[15..19]);
    stream.stop().await.expect("stop");
    assert_eq!(confirmed_flush(&c).await, fourth);

    // Resume from a later LSN than the slot's (pgmove.progress ahead of the last feedback):
    // the server skips what committed before it; that start LSN is reported as applied.
    let eighth = commit_ends[7];
    let mut stream = ChangeStream::start_with(&ep, SLOT, &[PUBLICATION], eighth, &fast())
        .await
        .expect("restart later");
    let (_, m) = next(&mut stream).await;
    assert_eq!(
        Transcript::default().line(&m),
        "MESSAGE non-transactional pgmove now"
    );
    let (_, m) = next(&mut stream).await;
    assert!(matches!(m, Message::Begin(_)));
    wait_confirmed(&c, eighth).await;
    stream.stop().await.expect("stop");

    // A missing slot: refused at start, with a hint.
    let err = ChangeStream::start_with(&ep, "pgmove_nope", &[PUBLICATION], Lsn(0), &fast())
        .await
        .expect_err("no such slot");
    let text = err.to_string();
    assert!(matches!(err, StreamError::Stream { .. }), "{text}");
    assert!(
        text.contains("does not exist") && text.contains("hint"),
        "{text}"
    );
    assert!(!text.contains(&c.password), "{text}");
}
