//! `verify` against two real servers holding the same database, then deliberate differences.

use crate::support;

use std::sync::Arc;

use pgmove::pg::{Endpoint, Secret, Side};
use pgmove::report::Render;
use pgmove::verify::{
    self, Level, Method, ObjectDifference, ObjectKind, RowDiff, RowDiffKind, TableStatus,
    VerifyOptions, VerifyReport,
};
use support::{Cluster, Options};

/// Many types, a 2-level partitioned table, keyless and composite-key tables, a 250k-row
/// table, a sequence, views, a trigger, an index, a large object.
const FIXTURE: &str = r#"
CREATE SCHEMA sales;
CREATE SCHEMA "Odd Schema";
CREATE TYPE mood AS ENUM ('sad', 'ok', 'happy');
CREATE TYPE address AS (street text, zip int);
CREATE DOMAIN positive_int AS int CHECK (VALUE > 0);

CREATE TABLE public.every_type (
    id      bigint PRIMARY KEY,
    n       numeric,
    n_fixed numeric(12, 4),
    f4      real,
    f8      double precision,
    ts      timestamp,
    tstz    timestamptz,
    d       date,
    iv      interval,
    m       mood,
    addr    address,
    pos     positive_int,
    r       int4range,
    ints    int[],
    texts   text[],
    tsv     tsvector,
    x       xml,
    j       json,
    jb      jsonb,
    b       bytea,
    u       uuid,
    ip      inet,
    money_col money,
    bits    bit varying(16),
    ch      char(5),
    t       text,
    name_lc text GENERATED ALWAYS AS (lower(t)) STORED
);
INSERT INTO public.every_type VALUES
 (1, 'NaN', 1.5, 'NaN', 'Infinity', 'infinity', '-infinity', 'infinity', '1 year 2 mons 3 days 04:05:06.789',
  'happy', ROW('Main St', 12345), 7, '[1,10)', '{1,NULL,3}', '{"a b","c\"d",NULL}', 'fat:2 cat:1,3',
  '<a x="1">t</a>', '{"k": 1, "k": 2,   "s": " "}', '{"z": [1, 2.50, {"y": null}]}', '\x00ff10',
  'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11', '192.168.1.5/24', 12.34, B'1011', 'ab', E'Tab\there\nnewline'),
 (2, '123456789012345678901234567890.123456789012345678901234567890', -0.0001, 1.17549435e-38,
  2.2250738585072014e-308, '2000-02-29 23:59:59.999999', '1999-12-31 23:59:59.999999+05:30', '0044-03-15 BC',
  '-1 days -00:00:01', 'sad', ROW(NULL, NULL), 1, 'empty', '{}', '{}', '', '<r/>', '[]', '{}', '',
  NULL, '::1', -0.01, B'', 'abcde', ''),
 (3, '-Infinity', NULL, '-Infinity', '-0', NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL,
  NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL),
 (4, 'Infinity', 0, 3.4028235e38, 1e308, '4713-01-01 00:00:00 BC', '294276-12-31 23:59:59.999999+00',
  '5874897-12-31', '178000000 years', 'ok', ROW('Üñíçødé ✓', -1), 2147483647, '[-2147483648,2147483647)',
  '{{1,2},{3,4}}', '{"\\","''"}', 'a:1A b:2B', '<?xml version="1.0"?><doc/>', '{"a":1}', '"just a string"',
  '\x', NULL, '255.255.255.255', -92233720368547758.08, B'1111111111111111', NULL, repeat('long ', 5000));

CREATE TABLE public.big (
    id     int PRIMARY KEY,
    val    text NOT NULL,
    amount numeric,
    at     timestamptz
);
INSERT INTO public.big
  SELECT g, md5(g::text), g / 7.0, '2025-01-01 00:00+00'::timestamptz + g * interval '1 minute'
  FROM generate_series(1, 250000) g;
CREATE INDEX big_val_idx ON public.big (val);

CREATE TABLE sales.customers (
    id    int GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    name  text NOT NULL,
    email text UNIQUE
);
CREATE TABLE sales.orders (
    id          bigserial PRIMARY KEY,
    customer_id int NOT NULL REFERENCES sales.customers (id),
    amount      numeric(10, 2) NOT NULL CHECK (amount >= 0),
    updated_at  timestamptz
);
CREATE FUNCTION sales.touch() RETURNS trigger LANGUAGE plpgsql AS
$$BEGIN NEW.updated_at := '2026-06-01 00:00+00'; RETURN NEW; END$$;
CREATE TRIGGER orders_touch BEFORE UPDATE ON sales.orders FOR EACH ROW EXECUTE FUNCTION sales.touch();
INSERT INTO sales.customers (name, email)
  SELECT 'Customer ' || g, 'c' || g || '@example.com' FROM generate_series(1, 200) g;
INSERT INTO sales.orders (customer_id, amount)
  SELECT 1 + (g % 200), (g * 7 % 10000) / 100.0 FROM generate_series(1, 3000) g;
CREATE MATERIALIZED VIEW sales.customer_totals AS
  SELECT customer_id, sum(amount) AS total FROM sales.orders GROUP BY customer_id;
CREATE VIEW sales.big_orders AS SELECT * FROM sales.orders WHERE amount > 50;

CREATE TABLE sales.lines (
    order_id int,
    line     text,
    qty      int,
    PRIMARY KEY (order_id, line)
);
INSERT INTO sales.lines
  SELECT g / 3, chr(97 + g % 3) || ' line', g FROM generate_series(1, 3000) g;

CREATE TABLE public.events (
    id      bigint NOT NULL,
    region  text NOT NULL,
    at      date NOT NULL,
    payload jsonb,
    PRIMARY KEY (id, region, at)
) PARTITION BY LIST (region);
CREATE TABLE public.events_eu PARTITION OF public.events FOR VALUES IN ('eu') PARTITION BY RANGE (at);
CREATE TABLE public.events_eu_2025 PARTITION OF public.events_eu FOR VALUES FROM ('2025-01-01') TO ('2026-01-01');
CREATE TABLE public.events_eu_2026 PARTITION OF public.events_eu FOR VALUES FROM ('2026-01-01') TO ('2027-01-01');
CREATE TABLE public.events_us PARTITION OF public.events FOR VALUES IN ('us');
CREATE INDEX events_at_idx ON public.events (at);
INSERT INTO public.events
  SELECT g, CASE WHEN g % 3 = 0 THEN 'us' ELSE 'eu' END,
         DATE '2025-06-01' + (g % 400), jsonb_build_object('n', g)
  FROM generate_series(1, 3000) g;

CREATE TABLE public.no_key (a int, b text);
INSERT INTO public.no_key SELECT g % 100, 'v' || g FROM generate_series(1, 5000) g;
INSERT INTO public.no_key VALUES (1, 'dup'), (1, 'dup'), (NULL, NULL);

CREATE TABLE "Odd Schema"."Weird ""Name""" ("Key" text PRIMARY KEY, "Value" text);
INSERT INTO "Odd Schema"."Weird ""Name"""
  SELECT 'k ' || g || E' \'q\'', 'v' || g FROM generate_series(1, 500) g;

CREATE SEQUENCE public.invoice_no START 1000;
SELECT setval('public.invoice_no', 4242);
CREATE SEQUENCE public.unused_seq;
SELECT lo_from_bytea(424242, '\x6c6172676500ff6f626a656374'::bytea);
"#;

fn endpoint(c: &Cluster, side: Side) -> Endpoint {
    Endpoint::from_dsn(
        side,
        &format!(
            "postgres://postgres@127.0.0.1:{}/shop?sslmode=disable",
            c.port
        ),
        Some(Secret::new(c.password.clone())),
        &|_| None,
    )
    .expect("dsn")
}

/// Two servers holding the fixture.
fn pair() -> (Cluster, Cluster) {
    let (a, b) = std::thread::scope(|s| {
        let a = s.spawn(|| {
            let c = Cluster::start(Options::default());
            c.create_db("shop");
            c.psql("shop", FIXTURE);
            c
        });
        let b = s.spawn(|| {
            let c = Cluster::start(Options::default());
            c.create_db("shop");
            c.psql("shop", FIXTURE);
            c
        });
        (a.join().expect("source"), b.join().expect("target"))
    });
    (a, b)
}

fn options(level: Level) -> VerifyOptions {
    VerifyOptions {
        level,
        jobs: 3,
        chunk_rows: 50_000,
        ..VerifyOptions::default()
    }
}

async fn run(src: &Cluster, dst: &Cluster, opts: &VerifyOptions) -> VerifyReport {
    verify::verify(
        &endpoint(src, Side::Source),
        &endpoint(dst, Side::Target),
        opts,
    )
    .await
    .expect("verify")
}

/// Every table other than `except` is the same.
fn others_same(r: &VerifyReport, except: &[(&str, &str)]) {
    for t in &r.tables {
        if except.contains(&(t.schema.as_str(), t.name.as_str())) {
            continue;
        }
        assert_eq!(
            t.status,
            TableStatus::Same,
            "{}.{} should be the same: {t:?}",
            t.schema,
            t.name
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn identical_databases_are_identical() {
    let (src, dst) = pair();
    let r = run(&src, &dst, &options(Level::Checksums)).await;
    assert!(r.is_identical(), "{}", r.render_text());
    assert!(r.identical);

    let big = r.table("public", "big").expect("big");
    assert_eq!(big.method, Method::KeyChunks);
    assert_eq!(big.key, vec!["id"]);
    assert_eq!(big.source_rows, Some(250_000));
    assert_eq!(big.target_rows, Some(250_000));
    assert_eq!(big.chunks, 6, "5 boundaries, then the open end");

    let lines = r.table("sales", "lines").expect("lines");
    assert_eq!(lines.key, vec!["order_id", "line"]);
    assert_eq!(lines.method, Method::KeyChunks);
    assert_eq!(lines.source_rows, Some(3000));

    let no_key = r.table("public", "no_key").expect("no_key");
    assert_eq!(no_key.method, Method::WholeTable);
    assert_eq!(no_key.source_rows, Some(5003));

    let parent = r.table("public", "events").expect("events");
    assert!(parent.partitioned);
    assert_eq!(parent.status, TableStatus::Same);
    assert_eq!(parent.method, Method::None);
    let mid = r.table("public", "events_eu").expect("events_eu");
    assert!(mid.partitioned);
    assert_eq!(mid.partition_of.as_deref(), Some("public.events"));
    let leaves: i64 = ["events_eu_2025", "events_eu_2026", "events_us"]
        .iter()
        .map(|n| {
            let t = r.table("public", n).expect("leaf");
            assert_eq!(t.method, Method::KeyChunks);
            t.source_rows.expect("rows")
        })
        .sum();
    assert_eq!(leaves, 3000);

    let weird = r.table("Odd Schema", "Weird \"Name\"").expect("weird");
    assert_eq!(weird.key, vec!["Key"]);
    assert_eq!(weird.source_rows, Some(500));

    let every = r.table("public", "every_type").expect("every_type");
    assert_eq!(every.source_rows, Some(4));
    assert_eq!(every.status, TableStatus::Same);

    let seq = r.sequence("public", "invoice_no").expect("sequence");
    assert!(seq.equal);
    let s = seq.source.as_ref().expect("source state");
    assert_eq!(
        (s.last_value, s.is_called, s.next_value),
        (4242, true, 4243)
    );
    assert!(r.sequence("sales", "orders_id_seq").is_some());
    assert!(r.sequence("sales", "customers_id_seq").is_some());

    let lo = r.large_objects.as_ref().expect("large objects");
    assert_eq!((lo.source_count, lo.target_count), (1, 1));
    assert!(lo.equal && lo.contents_compared);
    assert!(r.objects.is_empty(), "{:?}", r.objects);
    let public = r
        .function_counts
        .iter()
        .find(|c| c.schema == "sales")
        .expect("sales functions");
    assert_eq!((public.source, public.target), (1, 1));

    let text = r.render_text();
    assert!(text.contains("result: IDENTICAL"), "{text}");
    assert!(r
        .render_markdown()
        .starts_with("# pgmove verify: identical"));
    let json: serde_json::Value = serde_json::from_str(&r.render_json()).expect("json");
    assert_eq!(json["identical"], true);
    assert_eq!(
        json["tables"].as_array().expect("tables").len(),
        r.tables.len()
    );

    // Counts only, one job.
    let r = run(
        &src,
        &dst,
        &VerifyOptions {
            jobs: 1,
            ..options(Level::Counts)
        },
    )
    .await;
    assert!(r.is_identical(), "{}", r.render_text());
    assert_eq!(r.table("public", "big").expect("big").method, Method::Count);
    assert!(!r.large_objects.as_ref().expect("lo").contents_compared);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_changed_row_is_located_to_its_chunk_and_key() {
    let (src, dst) = pair();
    dst.psql(
        "shop",
        "UPDATE public.big SET amount = amount + 0.000001 WHERE id = 123456",
    );
    let r = run(&src, &dst, &options(Level::Checksums)).await;
    assert!(!r.is_identical());
    assert!(!r.identical);
    others_same(&r, &[("public", "big")]);
    assert!(r.sequences.iter().all(|s| s.equal));
    assert!(r.objects.is_empty(), "{:?}", r.objects);

    let big = r.table("public", "big").expect("big");
    assert_eq!(big.status, TableStatus::Differs);
    assert_eq!(big.chunks, 6);
    assert_eq!(big.source_rows, big.target_rows);
    assert_eq!(big.differing_chunks.len(), 1, "{big:?}");
    let c = &big.differing_chunks[0];
    assert_eq!(c.index, 2);
    assert_eq!(c.range.after, Some(vec!["100000".to_string()]));
    assert_eq!(c.range.up_to, Some(vec!["150000".to_string()]));
    assert_eq!((c.source_rows, c.target_rows), (50_000, 50_000));
    assert_eq!(c.where_sql, "\"id\" > '100000' AND \"id\" <= '150000'");
    assert_eq!(
        c.rows,
        vec![RowDiff {
            key: vec!["123456".to_string()],
            kind: RowDiffKind::Differs
        }]
    );

    let text = r.render_text();
    assert!(text.contains("DIFFERENCES FOUND"), "{text}");
    assert!(text.contains("public.big: differs"), "{text}");
    assert!(text.contains("id in (100000, 150000]"), "{text}");
    assert!(text.contains("key (123456): differs"), "{text}");
    let md = r.render_markdown();
    assert!(md.contains("`public.big`"), "{md}");

    // Counts cannot see an update.
    let r = run(&src, &dst, &options(Level::Counts)).await;
    assert!(r.is_identical(), "{}", r.render_text());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn missing_index_sequence_off_by_one_and_deleted_keyless_row() {
    let (src, dst) = pair();
    dst.psql(
        "shop",
        "DROP INDEX public.big_val_idx;
         SELECT setval('public.invoice_no', 4243);
         DELETE FROM public.no_key WHERE b = 'v17';",
    );
    let r = run(&src, &dst, &options(Level::Checksums)).await;
    assert!(!r.is_identical());

    assert_eq!(r.objects.len(), 1, "{:?}", r.objects);
    let o = &r.objects[0];
    assert_eq!(o.kind, ObjectKind::Index);
    assert_eq!(
        (o.schema.as_str(), o.name.as_str()),
        ("public", "big_val_idx")
    );
    assert_eq!(o.difference, ObjectDifference::MissingOnTarget);
    assert_eq!(
        o.source.as_deref(),
        Some("CREATE INDEX big_val_idx ON public.big USING btree (val)")
    );

    let seqs: Vec<_> = r.sequences.iter().filter(|s| !s.equal).collect();
    assert_eq!(seqs.len(), 1);
    assert_eq!(seqs[0].name, "invoice_no");
    assert_eq!(seqs[0].source.as_ref().expect("src").next_value, 4243);
    assert_eq!(seqs[0].target.as_ref().expect("tgt").next_value, 4244);

    others_same(&r, &[("public", "no_key")]);
    let nk = r.table("public", "no_key").expect("no_key");
    assert_eq!(nk.status, TableStatus::Differs);
    assert_eq!((nk.source_rows, nk.target_rows), (Some(5003), Some(5002)));
    assert_eq!(nk.differing_chunks.len(), 1);
    assert_eq!(nk.differing_chunks[0].where_sql, "true");

    let text = r.render_text();
    assert!(
        text.contains("index public.big_val_idx: missing on target"),
        "{text}"
    );
    assert!(
        text.contains("public.invoice_no: source last_value 4242"),
        "{text}"
    );
    assert!(text.contains("public.no_key: differs"), "{text}");
    let md = r.render_markdown();
    assert!(md.contains("## Objects that differ"), "{md}");
    assert!(md.contains("## Sequences that differ"), "{md}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn composite_and_text_keys_missing_tables_columns_and_filters() {
    let (src, dst) = pair();
    dst.psql(
        "shop",
        r#"DELETE FROM sales.lines WHERE order_id = 500 AND line = 'c line';
           INSERT INTO sales.lines VALUES (500, 'z line', 1);
           ALTER TABLE "Odd Schema"."Weird ""Name""" ALTER COLUMN "Key" TYPE text COLLATE "POSIX";
           UPDATE "Odd Schema"."Weird ""Name""" SET "Value" = 'changed' WHERE "Key" = E'k 250 \'q\'';
           DROP TABLE public.events_us;
           ALTER TABLE public.every_type ADD COLUMN extra int;
           CREATE TABLE public.only_here (id int);
           SELECT lo_unlink(424242);
           SELECT lo_from_bytea(424242, '\x6c6172676500ff6f626a656375'::bytea);"#,
    );
    let r = run(&src, &dst, &options(Level::Checksums)).await;
    eprintln!("{}\n{}", r.render_text(), r.render_markdown());
    assert!(!r.is_identical());

    let lines = r.table("sales", "lines").expect("lines");
    assert_eq!(lines.status, TableStatus::Differs);
    assert_eq!(
        (lines.source_rows, lines.target_rows),
        (Some(3000), Some(3000))
    );
    assert_eq!(lines.differing_chunks.len(), 1);
    assert_eq!(
        lines.differing_chunks[0].rows,
        vec![
            RowDiff {
                key: vec!["500".to_string(), "c line".to_string()],
                kind: RowDiffKind::MissingOnTarget
            },
            RowDiff {
                key: vec!["500".to_string(), "z line".to_string()],
                kind: RowDiffKind::MissingOnSource
            },
        ]
    );

    let weird = r.table("Odd Schema", "Weird \"Name\"").expect("weird");
    assert_eq!(weird.status, TableStatus::Differs);
    assert_eq!(
        weird.differing_chunks[0].rows,
        vec![RowDiff {
            key: vec!["k 250 'q'".to_string()],
            kind: RowDiffKind::Differs
        }]
    );

    let us = r.table("public", "events_us").expect("events_us");
    assert_eq!(us.status, TableStatus::MissingOnTarget);
    assert_eq!(us.source_rows, Some(1000));
    assert_eq!(
        r.table("public", "only_here").expect("only_here").status,
        TableStatus::MissingOnSource
    );
    let every = r.table("public", "every_type").expect("every_type");
    assert_eq!(every.status, TableStatus::Differs);
    assert_eq!(every.notes, vec!["column extra missing on source"]);
    assert!(
        every.differing_chunks.is_empty(),
        "shared columns still match"
    );
    assert!(r.objects.iter().any(|o| o.kind == ObjectKind::Column
        && o.name == "every_type.extra"
        && o.difference == ObjectDifference::MissingOnSource));
    assert!(weird
        .notes
        .iter()
        .any(|n| n.contains("key collations differ")));
    assert!(r.objects.iter().any(|o| o.kind == ObjectKind::Column
        && o.name == "Weird \"Name\".Key"
        && o.difference == ObjectDifference::Definition
        && o.target.as_deref() == Some("text COLLATE \"POSIX\" NOT NULL")));
    assert_eq!(
        r.objects.len(),
        2,
        "the missing table's indexes are not listed one by one: {:?}",
        r.objects
    );
    let lo = r.large_objects.as_ref().expect("lo");
    assert_eq!((lo.source_count, lo.target_count), (1, 1));
    assert!(!lo.equal);
    others_same(
        &r,
        &[
            ("sales", "lines"),
            ("Odd Schema", "Weird \"Name\""),
            ("public", "events_us"),
            ("public", "only_here"),
            ("public", "every_type"),
        ],
    );

    // Leave out what differs: schemas and an exclude filter.
    let r = run(
        &src,
        &dst,
        &VerifyOptions {
            schemas: vec!["public".to_string(), "Odd Schema".to_string()],
            include: verify::exclude_globs(&[
                "public.events_us".to_string(),
                "public.only_here".to_string(),
                "public.every_type".to_string(),
                "Odd Schema.*".to_string(),
            ]),
            large_objects: false,
            ..options(Level::Checksums)
        },
    )
    .await;
    assert!(r.is_identical(), "{}", r.render_text());
    assert!(r.table("sales", "lines").is_none());
    assert!(r.table("public", "every_type").is_none());
    assert!(r.table("public", "big").is_some());
    assert!(r.large_objects.is_none());

    // A closure works as well.
    let r = run(
        &src,
        &dst,
        &VerifyOptions {
            schemas: vec!["sales".to_string()],
            include: Arc::new(|_, name| name != "lines"),
            ..options(Level::Counts)
        },
    )
    .await;
    let lo = r.large_objects.as_ref().expect("lo");
    assert!(lo.equal, "counts level compares only the count");
    assert!(r.is_identical(), "{}", r.render_text());
}
