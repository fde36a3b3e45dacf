//! The merged statements of a change-capture batch (`apply::batch_sql`) against a real server:
//! they leave the tables exactly as the same changes applied one by one (`apply::plain_sql`),
//! for random streams of inserts, updates (unchanged TOAST values, key changes, repeated keys)
//! and deletes over several tables and types; and where they cannot (a unique index other than
//! the key sees a state the source never had), the server refuses them, so the apply task's
//! fallback to `plain_sql` is what runs.

use crate::support;

use std::sync::Arc;

use pgmove::cdc::apply::{self, Change, Item, Rel, Val};
use support::Profile;

const SCHEMA: &str = "
CREATE TABLE a (id int PRIMARY KEY, v text, n numeric, arr int[], ts timestamptz);
CREATE TABLE b (k1 int, k2 text, doc jsonb, r int4range, PRIMARY KEY (k1, k2));
CREATE TABLE f (x int, y text);
ALTER TABLE f REPLICA IDENTITY FULL;
";

fn rel(name: &str, cols: &[&str], key: &[bool], full: bool) -> Arc<Rel> {
    Arc::new(Rel {
        schema: "public".into(),
        name: name.into(),
        columns: cols.iter().map(|c| c.to_string()).collect(),
        key: key.to_vec(),
        full,
        types: vec![],
    })
}

/// A small deterministic generator (xorshift).
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

fn t(s: impl Into<String>) -> Val {
    Val::Text(s.into())
}

/// A random value for column `col` of table `table`.
fn value(rng: &mut Rng, table: &str, col: usize) -> Val {
    if rng.below(8) == 0 {
        return Val::Null;
    }
    let n = rng.below(1000);
    match (table, col) {
        ("a", 1) => t(format!("it's {n} \\ \"q\"")),
        ("a", 2) => t(match n % 4 {
            0 => "NaN".to_string(),
            1 => format!("{n}.{:03}", rng.below(1000)),
            2 => "-0.000000000000000000001".to_string(),
            _ => format!("{n}e30"),
        }),
        ("a", 3) => t(format!("{{{n},NULL,{}}}", n + 1)),
        ("a", 4) => t(if n.is_multiple_of(5) {
            "infinity".to_string()
        } else {
            format!("2026-01-{:02} 12:00:00.{n:03}+00", 1 + n % 28)
        }),
        ("b", 2) => t(format!("{{\"a\": {n}, \"b\":  [1, null]}}")),
        ("b", 3) => t(if n.is_multiple_of(3) {
            "empty".to_string()
        } else {
            format!("[{n},{})", n + 10)
        }),
        ("f", 1) => t(format!("y{}", n % 3)),
        _ => t(n.to_string()),
    }
}

/// A random stream of changes valid against the rows it has made so far.
fn changes(seed: u64, n: usize) -> (Vec<Item>, String) {
    let mut rng = Rng(seed);
    let ra = rel(
        "a",
        &["id", "v", "n", "arr", "ts"],
        &[true, false, false, false, false],
        false,
    );
    let rb = rel(
        "b",
        &["k1", "k2", "doc", "r"],
        &[true, true, false, false],
        false,
    );
    // Typed (int4, text): its rows are also looked up by `=` in the merged statements.
    let rf = Arc::new(Rel {
        types: vec![23, 25],
        ..(*rel("f", &["x", "y"], &[false, false], true)).clone()
    });
    // Rows as the source has them: (table, full tuple).
    let mut a: Vec<Vec<Val>> = Vec::new();
    let mut b: Vec<Vec<Val>> = Vec::new();
    let mut f: Vec<Vec<Val>> = Vec::new();
    let mut next_id = 0u64;
    let mut seed_sql = String::new();
    // Some rows both targets start with.
    for _ in 0..20 {
        next_id += 1;
        seed_sql.push_str(&format!("INSERT INTO a (id) VALUES ({next_id});"));
        a.push(vec![
            t(next_id.to_string()),
            Val::Null,
            Val::Null,
            Val::Null,
            Val::Null,
        ]);
    }
    let mut items = Vec::new();
    for _ in 0..n {
        let which = rng.below(10);
        let kind = rng.below(10);
        if which < 6 {
            // Table a: mostly updates of a few hot rows.
            if kind < 2 || a.is_empty() {
                next_id += 1;
                let mut row = vec![t(next_id.to_string())];
                row.extend((1..5).map(|c| value(&mut rng, "a", c)));
                a.push(row.clone());
                items.push(Item::Row(ra.clone(), Change::Insert { rel: 1, new: row }));
            } else if kind < 8 {
                let i = rng.below(a.len().min(8) as u64) as usize;
                let old = a[i].clone();
                let mut new = old.clone();
                for (c, slot) in new.iter_mut().enumerate().skip(1) {
                    if rng.below(3) == 0 {
                        *slot = value(&mut rng, "a", c);
                    }
                }
                // Sent columns: an unchanged TOASTed value is not sent (only for column v).
                let mut sent = new.clone();
                if rng.below(4) == 0 && old[1] == new[1] {
                    sent[1] = Val::Unchanged;
                }
                let key_change = rng.below(10) == 0;
                let old_key = if key_change {
                    next_id += 1;
                    new[0] = t(next_id.to_string());
                    sent[0] = new[0].clone();
                    Some(vec![
                        old[0].clone(),
                        Val::Null,
                        Val::Null,
                        Val::Null,
                        Val::Null,
                    ])
                } else {
                    None
                };
                a[i] = new;
                items.push(Item::Row(
                    ra.clone(),
                    Change::Update {
                        rel: 1,
                        old: old_key,
                        new: sent,
                    },
                ));
            } else {
                let i = rng.below(a.len() as u64) as usize;
                let old = a.remove(i);
                let key = vec![old[0].clone(), Val::Null, Val::Null, Val::Null, Val::Null];
                items.push(Item::Row(ra.clone(), Change::Delete { rel: 1, old: key }));
            }
        } else if which < 9 {
            // Table b: a two-column key.
            if kind < 4 || b.is_empty() {
                next_id += 1;
                let row = vec![
                    t((next_id % 7).to_string()),
                    t(format!("k{next_id}")),
                    value(&mut rng, "b", 2),
                    value(&mut rng, "b", 3),
                ];
                b.push(row.clone());
                items.push(Item::Row(rb.clone(), Change::Insert { rel: 2, new: row }));
            } else if kind < 8 {
                let i = rng.below(b.len() as u64) as usize;
                b[i][2] = value(&mut rng, "b", 2);
                b[i][3] = value(&mut rng, "b", 3);
                items.push(Item::Row(
                    rb.clone(),
                    Change::Update {
                        rel: 2,
                        old: None,
                        new: b[i].clone(),
                    },
                ));
            } else {
                let i = rng.below(b.len() as u64) as usize;
                let old = b.remove(i);
                let key = vec![old[0].clone(), old[1].clone(), Val::Null, Val::Null];
                items.push(Item::Row(rb.clone(), Change::Delete { rel: 2, old: key }));
            }
        } else {
            // Table f: REPLICA IDENTITY FULL with duplicate rows.
            if kind < 5 || f.is_empty() {
                let row = vec![t((rng.below(3)).to_string()), value(&mut rng, "f", 1)];
                f.push(row.clone());
                items.push(Item::Row(rf.clone(), Change::Insert { rel: 3, new: row }));
            } else if kind < 8 {
                let i = rng.below(f.len() as u64) as usize;
                let old = f[i].clone();
                f[i][1] = value(&mut rng, "f", 1);
                items.push(Item::Row(
                    rf.clone(),
                    Change::Update {
                        rel: 3,
                        old: Some(old),
                        new: f[i].clone(),
                    },
                ));
            } else {
                let i = rng.below(f.len() as u64) as usize;
                let old = f.remove(i);
                items.push(Item::Row(rf.clone(), Change::Delete { rel: 3, old }));
            }
        }
        if rng.below(200) == 0 {
            items.push(Item::Sql("UPDATE f SET y = y WHERE false;".into()));
        }
    }
    (items, seed_sql)
}

/// The items with their relations' types forgotten.
fn untyped(items: &[Item]) -> Vec<Item> {
    items
        .iter()
        .map(|i| match i {
            Item::Row(r, c) => Item::Row(
                Arc::new(Rel {
                    types: vec![],
                    ..(**r).clone()
                }),
                c.clone(),
            ),
            other => other.clone(),
        })
        .collect()
}

async fn contents(c: &tokio_postgres::Client) -> Vec<String> {
    let mut out = Vec::new();
    for q in [
        "SELECT a::text FROM a ORDER BY id",
        "SELECT b::text FROM b ORDER BY k1, k2",
        "SELECT f::text FROM f ORDER BY x, y",
    ] {
        for r in c.query(q, &[]).await.expect("read table") {
            out.push(r.get(0));
        }
        out.push("--".into());
    }
    out
}

fn transaction(statements: &[String]) -> String {
    format!(
        "BEGIN; SET LOCAL session_replication_role = replica;\n{}\nCOMMIT;",
        statements.join("\n")
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn merged_statements_leave_the_tables_as_change_by_change() {
    let pg = support::shared(Profile::Plain);
    let fast = pg.client(&pg.fresh_db("fast")).await;
    let plain = pg.client(&pg.fresh_db("plain")).await;
    for seed in 1..=12u64 {
        for c in [&fast, &plain] {
            c.batch_execute(&format!("DROP TABLE IF EXISTS a, b, f; {SCHEMA}"))
                .await
                .expect("schema");
        }
        let (items, seed_sql) = changes(seed * 7919, 400);
        for c in [&fast, &plain] {
            c.batch_execute(&seed_sql).await.expect("seed rows");
        }
        // In several batches, as the apply task cuts them.
        for chunk in items.chunks(150) {
            let f = apply::batch_sql(chunk, true).expect("batch sql");
            // The reference: change by change, rows found by their text alone.
            let p = apply::plain_sql(&untyped(chunk)).expect("plain sql");
            assert!(
                f.len() < p.len() || chunk.len() < 10,
                "seed {seed}: nothing was merged ({} statements)",
                f.len()
            );
            fast.batch_execute(&transaction(&f))
                .await
                .unwrap_or_else(|e| panic!("seed {seed}: merged statements failed: {e:?}"));
            plain
                .batch_execute(&transaction(&p))
                .await
                .unwrap_or_else(|e| panic!("seed {seed}: plain statements failed: {e:?}"));
        }
        assert_eq!(
            contents(&fast).await,
            contents(&plain).await,
            "seed {seed}: the tables differ"
        );
        // Without reordering across tables too.
        let strict = apply::batch_sql(&items, false).expect("batch sql");
        assert!(strict.len() <= apply::plain_sql(&items).expect("plain").len());
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_unique_index_can_refuse_merged_updates_never_change_their_result() {
    let pg = support::shared(Profile::Plain);
    let c = pg.client(&pg.fresh_db("shop")).await;
    c.batch_execute(
        "CREATE TABLE u (id int PRIMARY KEY, email text UNIQUE);
         INSERT INTO u VALUES (1, 'a'), (2, 'b');",
    )
    .await
    .expect("schema");
    let r = rel("u", &["id", "email"], &[true, false], false);
    let upd = |id: &str, email: &str| {
        Item::Row(
            r.clone(),
            Change::Update {
                rel: 1,
                old: None,
                new: vec![t(id), t(email)],
            },
        )
    };
    // On the source: 1 a->tmp, 2 b->a, 1 tmp->b: every step unique.
    let items = vec![upd("1", "tmp"), upd("2", "a"), upd("1", "b")];
    let merged = apply::batch_sql(&items, true).expect("batch sql");
    let e = c
        .batch_execute(&transaction(&merged))
        .await
        .expect_err("the merged UPDATE sets 1 to b while 2 still has it");
    assert_eq!(
        e.as_db_error().map(|d| d.code().code()),
        Some("23505"),
        "{e:?}"
    );
    c.batch_execute("ROLLBACK").await.expect("rollback");
    let plain = apply::plain_sql(&items).expect("plain sql");
    c.batch_execute(&transaction(&plain)).await.expect("plain");
    let rows: Vec<String> = c
        .query("SELECT u::text FROM u ORDER BY id", &[])
        .await
        .expect("read")
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert_eq!(rows, vec!["(1,b)", "(2,a)"]);
}

/// The exact-equality types of `apply` (a `REPLICA IDENTITY FULL` row is also looked up by
/// `col = 'text'` for these), with their OIDs, a column each.
const EXACT_TYPES: &[(&str, u32)] = &[
    ("bool", 16),
    ("bytea", 17),
    ("name", 19),
    ("int8", 20),
    ("int2", 21),
    ("int4", 23),
    ("text", 25),
    ("oid", 26),
    ("float4", 700),
    ("float8", 701),
    ("char(4)", 1042),
    ("varchar(8)", 1043),
    ("date", 1082),
    ("time", 1083),
    ("timestamp", 1114),
    ("timestamptz", 1184),
    ("numeric", 1700),
    ("uuid", 2950),
];

/// `REPLICA IDENTITY FULL` updates and deletes found with `=` on every exact-equality type
/// too: each touches exactly the row whose text output it carries, never a row `=` alone
/// would take for it (float -0 and 0, numeric 1.0 and 1.00), one copy of a duplicate; and the
/// target can find it through an index on such a column.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn full_identity_rows_are_found_by_equality_and_exact_text_on_every_exact_type() {
    let pg = support::shared(Profile::Plain);
    let c = pg.client(&pg.fresh_db("fulleq")).await;
    for (k, v) in apply::SESSION_SETTINGS {
        c.batch_execute(&format!("SET {k} = '{v}'"))
            .await
            .expect("session setting");
    }
    let cols: Vec<String> = (0..EXACT_TYPES.len()).map(|i| format!("c{i}")).collect();
    let defs: Vec<String> = EXACT_TYPES
        .iter()
        .zip(&cols)
        .map(|((ty, _), c)| format!("{c} {ty}"))
        .collect();
    // Rows 1 and 2 differ only where `=` cannot tell them apart; row 3 is row 1 again.
    let row = |f: &str, n: &str, tag: &str| {
        format!(
            "(true, '\\x00ff', 'nm', 9007199254740993, -32768, 2147483647, 'it''s {tag}', 4294967295,
              {f}::float4, {f}::float8, 'a', 'v', '2026-02-28', '23:59:59.999999',
              '2026-01-01 00:00:00.000001', '1999-12-31 23:59:59.5+00', {n},
              'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11')"
        )
    };
    c.batch_execute(&format!(
        "CREATE TABLE e ({});
         ALTER TABLE e REPLICA IDENTITY FULL;
         CREATE INDEX e_c5 ON e (c5);
         INSERT INTO e VALUES {}, {}, {}, ({});
         ANALYZE e;",
        defs.join(", "),
        row("'-0'", "1.0", "same"),
        row("'0'", "1.00", "same"),
        row("'-0'", "1.0", "same"),
        vec!["NULL"; cols.len()].join(", "),
    ))
    .await
    .expect("table");
    let r = Arc::new(Rel {
        schema: "public".into(),
        name: "e".into(),
        columns: cols.clone(),
        key: vec![true; cols.len()],
        full: true,
        types: EXACT_TYPES.iter().map(|(_, oid)| *oid).collect(),
    });
    // Each row's text output, as the stream would carry it.
    let select = format!(
        "SELECT {} FROM e ORDER BY c8::text COLLATE \"C\", c16::text COLLATE \"C\"",
        cols.iter()
            .map(|c| format!("{c}::text"))
            .collect::<Vec<_>>()
            .join(", ")
    );
    let rows: Vec<Vec<Val>> = c
        .query(select.as_str(), &[])
        .await
        .expect("rows")
        .iter()
        .map(|row| {
            (0..cols.len())
                .map(|i| match row.get::<_, Option<String>>(i) {
                    Some(s) => Val::Text(s),
                    None => Val::Null,
                })
                .collect()
        })
        .collect();
    assert_eq!(rows.len(), 4);
    // Rows sorted by float text: "-0" (twice), "0", then the NULL row.
    let (minus, zero) = (rows[0].clone(), rows[2].clone());
    let mut bumped = minus.clone();
    bumped[6] = t("bumped");
    let items = vec![
        Item::Row(
            r.clone(),
            Change::Update {
                rel: 1,
                old: Some(minus.clone()),
                new: bumped,
            },
        ),
        Item::Row(r.clone(), Change::Delete { rel: 1, old: zero }),
    ];
    let sql = apply::batch_sql(&items, true).expect("batch sql");
    assert!(
        sql[0].contains("s.\"c5\" = '2147483647'") && sql[0].contains("s.\"c8\" = '-0'"),
        "{}",
        sql[0]
    );
    // The planner can take the row through the index on c5.
    let probe = "EXPLAIN SELECT s.ctid FROM ONLY e AS s WHERE s.\"c5\" = '2147483647' \
                 AND s.\"c6\"::text IS NOT DISTINCT FROM 'x' LIMIT 1";
    c.batch_execute("SET enable_seqscan = off")
        .await
        .expect("set");
    let plan: Vec<String> = c
        .query(probe, &[])
        .await
        .expect("explain")
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert!(plan.iter().any(|l| l.contains("e_c5")), "{plan:?}");
    c.batch_execute("RESET enable_seqscan")
        .await
        .expect("reset");
    c.batch_execute(&transaction(&sql)).await.expect("apply");
    let left: Vec<String> = c
        .query(
            "SELECT format('%s|%s|%s|%s', c6, c9, c16, c10) FROM e WHERE c0 ORDER BY 1",
            &[],
        )
        .await
        .expect("read")
        .iter()
        .map(|r| r.get(0))
        .collect();
    // One copy of the -0 row updated, the other kept; the 0 row deleted, not a -0 one.
    assert_eq!(
        left,
        vec!["bumped|-0|1.0|a   ", "it's same|-0|1.0|a   "],
        "{sql:?}"
    );
    assert_eq!(
        c.query_one("SELECT count(*) FROM e WHERE c0 IS NULL", &[])
            .await
            .expect("count")
            .get::<_, i64>(0),
        1
    );
}
