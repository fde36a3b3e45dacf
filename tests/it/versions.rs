//! Servers of other PostgreSQL majors (fetched by `scripts/install-deps.sh`), and moves between
//! majors on them: dump-restore and copy-cdc (writes during change capture, `REPLICA IDENTITY
//! FULL` rows updated and deleted, a partition created during capture, a cutover verified ahead
//! of its fence with writes between the two) from 10, 12, 13 and 14 into 15 and from 15 into
//! 16, 17 and 18, each
//! checked by `pgmove verify` and value by value. CI runs 12 -> 15 and 15 -> 18; the other
//! pairs are the version matrix (`scripts/test-versions.sh`).

use crate::support;

use std::path::Path;
use std::process::Child;
use std::time::{Duration, Instant};

use support::online::{
    pgmove, read_log, run, spawn_logged, start_apply, text, wait_caught_up, wait_loaded,
    write_plan, DB, INSERT_ONLY,
};
use support::{Cluster, Options};

#[test]
fn every_installed_major_starts_and_reports_its_version() {
    let threads: Vec<_> = support::OTHER_MAJORS
        .iter()
        .map(|&major| {
            std::thread::spawn(move || {
                let c = Cluster::start(Options::logical().major(major));
                let num: u32 = c.show("server_version_num").parse().expect("a number");
                // The settings every cluster gets hold on this major too.
                (
                    major,
                    num,
                    c.show("wal_level"),
                    c.show("password_encryption"),
                )
            })
        })
        .collect();
    for t in threads {
        let (major, num, wal_level, enc) = t.join().expect("a cluster of that major started");
        assert_eq!(num / 10000, major, "server_version_num {num}");
        assert_eq!(wal_level, "logical", "PostgreSQL {major}");
        // psql authenticates with SCRAM over TCP: the password was stored as SCRAM.
        assert_eq!(enc, "scram-sha-256", "PostgreSQL {major}");
    }
}

/// The source of a cross-version move: the many-types fixture without PostGIS (2-level
/// partitioned `events`, sequences, a large object, a keyless table), plus an unlogged table.
fn source_db(src: &Cluster, major: u32) {
    src.create_db(DB);
    src.psql(DB, &support::many_types(false, major));
    src.psql(
        DB,
        "CREATE UNLOGGED TABLE public.scratch (id int PRIMARY KEY, v text, f8 float8);
         INSERT INTO public.scratch SELECT g, 's' || g, g / 3.0 FROM generate_series(1, 40) g;",
    );
}

/// Writes while change capture streams: inserts, updates and deletes of every kind of table
/// pgmove publishes (not the unlogged one: its later changes are not replicated), a row moved
/// to another partition, sequence calls and a new large object.
const WRITES: &str = r#"
UPDATE public.every_type SET f8 = 1.0000000000000002, f4 = 0.1, t = 'changed',
       tstz = '2026-03-29 01:30:00.123456+01', iv = '1 mon -2 days 03:00:00.5' WHERE id = 1;
INSERT INTO public.every_type (id, n_free, f4, f8, ts, tstz, d, iv, b, money_col, mr, j, jb, ints)
VALUES (5, 1e-20, 3.4028235e38, 2.2250738585072014e-308, '2026-01-01 12:00', '1970-01-01 00:00+00',
        '2026-02-28', '-3 years 1 mon', '\xdeadbeef', 99.99, '{[1,3)}', '{"x": 1.50}', '{"y": [1, 2.50]}',
        '{7,NULL}');
DELETE FROM public.every_type WHERE id = 3;
INSERT INTO sales.orders (customer_id, amount) SELECT 1 + g, g * 1.25 FROM generate_series(1, 20) g;
UPDATE sales.orders SET amount = amount + 0.01 WHERE id % 97 = 0;
DELETE FROM sales.orders WHERE id % 101 = 0;
INSERT INTO public.events VALUES (100001, 'eu', '2026-05-01', '{"late": true}'), (100002, 'us', '2025-01-02', NULL);
UPDATE public.events SET payload = '{"moved": 1}' WHERE id = 10;
UPDATE public.events SET region = 'us' WHERE id = 11;
DELETE FROM public.events WHERE id = 12;
UPDATE "Mixed Case"."Weird ""Name""" SET "Value" = 'zwei' WHERE "Id" = 2;
INSERT INTO public.no_key VALUES (3, 'late');
SELECT nextval('public.invoice_no') FROM generate_series(1, 5);
SELECT lo_from_bytea(777777, '\x6c617465'::bytea);
"#;

/// A table without a key, `REPLICA IDENTITY FULL`, whose updates and deletes change capture
/// finds by the whole old row as the source's text: floats whose text changed at PostgreSQL 12
/// (`extra_float_digits`: 17 digits before, the shortest exact form since), -0, NaN and
/// infinities, numerics with trailing zeros, timestamptz, text with tabs and newlines, jsonb,
/// arrays, NULLs, and two identical rows; and a copy of the fixture's every_type (enum,
/// composite, domain, ranges, xml, json, point, money, a TOASTed text...) without its key.
const FULL_TABLE: &str = r#"
CREATE TABLE public.full_rows (id int, f4 real, f8 float8, n numeric, tstz timestamptz, t text,
                               jb jsonb, f8s float8[], ns numeric[], ts text[]);
ALTER TABLE public.full_rows REPLICA IDENTITY FULL;
INSERT INTO public.full_rows VALUES
  (1, 0.1, 0.1, 1.10, '2026-03-29 01:30:00.123456+01', 'plain', '{"a": 1.50}',
   '{0.1,0.2,0.30000000000000004}', '{1.0,2.50}', '{a,"b c",NULL}'),
  (1, 0.1, 0.1, 1.10, '2026-03-29 01:30:00.123456+01', 'plain', '{"a": 1.50}',
   '{0.1,0.2,0.30000000000000004}', '{1.0,2.50}', '{a,"b c",NULL}'),
  (2, 1/3.0, 1/3.0, 0.000, '1970-01-01 00:00:00+00', '', '{"n": null}', '{1e-300,-0}', '{0.00}', '{}'),
  (3, '-0', '-0', -12.3400, 'infinity', E'tab	here
newline \ back', '[]', '{NaN,Infinity,-Infinity}',
   '{NaN}', '{NULL}'),
  (4, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL),
  (5, 3.4028235e38, 1.7976931348623157e308, 123456789012345678901234567890.123456789000,
   '0044-03-15 12:00:00+00 BC', 'ünïcødé ✓', '{"big": 12345678901234567890, "f": 1.0e-5}',
   '{2.2250738585072014e-308,-1.5e-300}', '{-0.0,1e-20}', '{"{}",","}'),
  (6, 'NaN', 'NaN', 'NaN', '-infinity', 'x', 'null', '{1.0000000000000002}', NULL, '{""}');
CREATE TABLE public.full_every AS SELECT * FROM public.every_type;
ALTER TABLE public.full_every REPLICA IDENTITY FULL;
"#;

/// Updates and deletes of every row of [`FULL_TABLE`] during change capture (each found by
/// its whole old row on the target), then a second generation of the rows inserted and
/// updated: what must arrive exactly.
const FULL_WRITES: &str = r#"
UPDATE public.full_rows SET t = coalesce(t, '') || '+';
UPDATE public.full_rows SET f4 = f4 / 3, f8 = f8 / 7, n = n * 10.0, tstz = tstz + interval '1.000001 s',
       f8s = array_append(f8s, 1/3.0::float8);
CREATE TEMP TABLE gen1 AS SELECT * FROM public.full_rows;
DELETE FROM public.full_rows;
INSERT INTO public.full_rows SELECT id + 100, f4, f8, n * 1.000, tstz, t, jb, f8s, ns, ts FROM gen1;
UPDATE public.full_rows SET ns = array_append(ns, 7.000), jb = coalesce(jb, '{}') || '[2]';
DELETE FROM public.full_rows WHERE id = 104;
UPDATE public.full_every SET id = id + 10;
DELETE FROM public.full_every WHERE id = 13;
UPDATE public.full_every SET t = t || '+' WHERE id = 14;
"#;

/// [`WRITES`] for a source of `major`: PostgreSQL 10 cannot move a row between partitions by
/// UPDATE (row movement is 11+), so there event 11 moves by a DELETE and an INSERT of the
/// same row in one statement, which is what 11+ streams for the UPDATE.
fn writes(major: u32) -> String {
    let moved = "UPDATE public.events SET region = 'us' WHERE id = 11;";
    assert!(WRITES.contains(moved), "WRITES changed");
    if major >= 11 {
        return WRITES.to_string();
    }
    WRITES.replace(
        moved,
        "WITH m AS (DELETE FROM public.events WHERE id = 11 RETURNING *) \
         INSERT INTO public.events SELECT id, 'us', at, payload FROM m;",
    )
}

/// A leaf partition created on the source during change capture (before PostgreSQL 11 a
/// partition gets no primary key from its parent, so it declares one), then rows written into
/// it through the root: a new one, and event 13 moved into it from leaf events_eu_2025.
fn new_leaf_writes(major: u32) -> (String, String) {
    let key = if major < 11 {
        " (PRIMARY KEY (id, region, at))"
    } else {
        ""
    };
    let create = format!(
        "CREATE TABLE public.events_eu_2027 PARTITION OF public.events_eu{key} \
         FOR VALUES FROM ('2027-01-01') TO ('2028-01-01')"
    );
    let moved = if major < 11 {
        "WITH m AS (DELETE FROM public.events WHERE id = 13 RETURNING *) \
         INSERT INTO public.events SELECT id, region, DATE '2027-06-01', payload FROM m;"
    } else {
        "UPDATE public.events SET at = '2027-06-01' WHERE id = 13;"
    };
    let rows = format!(
        "INSERT INTO public.events VALUES (100003, 'eu', '2027-03-01', '{{\"leaf\": \"new\"}}'); {moved}"
    );
    (create, rows)
}

/// The members of publication `pubname` whose name starts with `events`, as `pg_publication_rel`
/// lists them (13+ a partitioned root is one member; before 13 each leaf is).
fn events_members(src: &Cluster, pubname: &str) -> String {
    src.psql(
        DB,
        &format!(
            "SELECT string_agg(c.relname, ',' ORDER BY c.relname) FROM pg_publication_rel pr \
             JOIN pg_publication p ON p.oid = pr.prpubid JOIN pg_class c ON c.oid = pr.prrelid \
             WHERE p.pubname = '{pubname}' AND c.relname LIKE 'events%'"
        ),
    )
}

/// The session settings both sides are read with, so that text output is one rendering.
const FIXED_SETTINGS: &str = "SET DateStyle = ISO, YMD; SET IntervalStyle = postgres; \
     SET extra_float_digits = 3; SET bytea_output = hex; SET TimeZone = 'UTC'; \
     SET lc_monetary = 'C'; SET search_path = pg_catalog;";

/// The user tables (ordinary and partitioned) of `db`, outside pgmove's schema; not materialized
/// views, which the target refreshes (a stale one on the source differs by design).
const USER_TABLES: &str = "SELECT format('%I.%I', n.nspname, c.relname) FROM pg_class c \
     JOIN pg_namespace n ON n.oid = c.relnamespace \
     WHERE c.relkind IN ('r', 'p') \
       AND n.nspname NOT IN ('pg_catalog', 'information_schema', 'pgmove') \
       AND n.nspname NOT LIKE 'pg\\_toast%' ORDER BY 1";

/// Every row of every user table of `db` on `src` and on `dst`, as text through psql with
/// [`FIXED_SETTINGS`] on both sides and each column in `version_values::exact`'s form, sorted; plus sequences and large objects: they must be
/// equal, table by table. Panics naming the table and the first differing rows.
fn assert_rows_equal(src: &Cluster, src_db: &str, dst: &Cluster, dst_db: &str) {
    let tables = src.psql(src_db, USER_TABLES);
    assert_eq!(tables, dst.psql(dst_db, USER_TABLES), "the tables differ");
    assert!(tables.lines().count() >= 11, "{tables}");
    let mut checks: Vec<(String, String)> = tables
        .lines()
        .map(|t| {
            // Each column in a form every major prints alike (floats as their bits: before 12
            // they print 17 digits, from 12 the shortest exact form).
            let columns = src.psql(src_db, &crate::version_values::COLUMNS.replace("$TABLE", t));
            let exprs: Vec<String> = columns
                .lines()
                .map(|l| {
                    let (name, ty) = l.split_once('\t').expect("name and type");
                    crate::version_values::exact(name, ty)
                })
                .collect();
            (
                t.to_string(),
                format!("COPY (SELECT {} FROM {t}) TO STDOUT", exprs.join(", ")),
            )
        })
        .collect();
    checks.push((
        "sequences".to_string(),
        "COPY (SELECT schemaname, sequencename, last_value FROM pg_sequences \
         WHERE schemaname <> 'pgmove' ORDER BY 1, 2) TO STDOUT"
            .to_string(),
    ));
    checks.push((
        "large objects".to_string(),
        "COPY (SELECT oid, md5(lo_get(oid)) FROM pg_largeobject_metadata ORDER BY 1) TO STDOUT"
            .to_string(),
    ));
    for (what, sql) in checks {
        let sql = format!("{FIXED_SETTINGS} {sql}");
        // Rows in byte order of their text: the same on both sides whatever the servers' order.
        let sorted = |text: String| {
            let mut lines: Vec<&str> = text.lines().collect();
            lines.sort_unstable();
            lines.join("\n")
        };
        let (a, b) = (
            sorted(src.psql(src_db, &sql)),
            sorted(dst.psql(dst_db, &sql)),
        );
        if a != b {
            let diff: Vec<String> = a
                .lines()
                .zip(b.lines())
                .filter(|(x, y)| x != y)
                .take(5)
                .map(|(x, y)| field_diff(x, y))
                .collect();
            panic!(
                "{what} differs ({} source rows, {} target rows):\n{}",
                a.lines().count(),
                b.lines().count(),
                diff.join("\n")
            );
        }
    }
}

/// Which fields of a row (COPY text, tab-separated) differ: their column numbers and values
/// (cut at 200 characters), the row named by its first field.
fn field_diff(source: &str, target: &str) -> String {
    let cut = |v: &str| v.chars().take(200).collect::<String>();
    let (a, b): (Vec<&str>, Vec<&str>) =
        (source.split('\t').collect(), target.split('\t').collect());
    let mut out = format!("  row {}:", cut(a[0]));
    for i in 0..a.len().max(b.len()) {
        let (x, y) = (
            a.get(i).copied().unwrap_or("<none>"),
            b.get(i).copied().unwrap_or("<none>"),
        );
        if x != y {
            out.push_str(&format!(
                "\n    column {}: source {} / target {}",
                i + 1,
                cut(x),
                cut(y)
            ));
        }
    }
    out
}

/// `pgmove verify` found the target identical (exit 0); `what` names the move.
fn assert_identical(out: &std::process::Output, what: &str) {
    assert!(
        out.status.code() == Some(0) && String::from_utf8_lossy(&out.stdout).contains("IDENTICAL"),
        "{what} verify: {}",
        text(out)
    );
}

/// Waits (at most a minute) until `child` has ended, and returns how.
fn wait_exit(child: &mut Child, log: &Path) -> std::process::ExitStatus {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if let Some(status) = child.try_wait().expect("try_wait") {
            return status;
        }
        assert!(
            Instant::now() < deadline,
            "apply still runs after the cutover\n{}",
            read_log(log)
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// A server of `src_major` with the fixture ([`source_db`]) in [`DB`] and an empty one of
/// `dst_major` (`None`: the machine's 15), each checked to be of that major.
fn servers(src_major: Option<u32>, dst_major: Option<u32>) -> (Cluster, Cluster) {
    let src = Cluster::start(Options {
        major: src_major,
        ..Options::logical()
    });
    let dst = Cluster::start(Options {
        major: dst_major,
        ..Options::default()
    });
    let src_num: u32 = src.show("server_version_num").parse().expect("number");
    let dst_num: u32 = dst.show("server_version_num").parse().expect("number");
    assert_eq!(src_num / 10000, src_major.unwrap_or(15));
    assert_eq!(dst_num / 10000, dst_major.unwrap_or(15));
    source_db(&src, src_num / 10000);
    (src, dst)
}

/// Strategy dump-restore from a server of `src_major` to one of `dst_major`: `pgmove verify`
/// identical, and [`assert_rows_equal`].
fn dump_restore_between(src_major: Option<u32>, dst_major: Option<u32>) {
    dump_restore_moved(src_major, dst_major, |_, _| {});
}

/// [`dump_restore_between`], with `setup` run on both servers before the apply (after the
/// fixture); returns the servers, the plan's folder and the plan, for more checks.
fn dump_restore_moved(
    src_major: Option<u32>,
    dst_major: Option<u32>,
    setup: impl FnOnce(&Cluster, &Cluster),
) -> (Cluster, Cluster, tempfile::TempDir, std::path::PathBuf) {
    let (src, dst) = servers(src_major, dst_major);
    setup(&src, &dst);
    let dir = tempfile::tempdir().expect("tempdir");
    dst.create_db("shop_dr");
    let dr = dir.path().join("dr.yaml");
    std::fs::write(
        &dr,
        format!(
            "version: 1\nname: dr\nstrategy: dump-restore\nsource:\n  dsn: {}\n  password: {{env: SRC_PW}}\n  sslmode: disable\ntarget:\n  dsn: {}\n  password: {{env: DST_PW}}\n  sslmode: disable\n",
            src.uri_no_password(DB),
            dst.uri_no_password("shop_dr")
        ),
    )
    .expect("write plan");
    let p = dr.to_str().expect("utf8");
    let out = run(&["apply", p, "--yes"], &src, &dst);
    assert_eq!(
        out.status.code(),
        Some(0),
        "dump-restore apply: {}",
        text(&out)
    );
    let out = run(&["verify", p], &src, &dst);
    assert_identical(&out, "dump-restore");
    assert_rows_equal(&src, DB, &dst, "shop_dr");
    (src, dst, dir, dr)
}

/// `pgmove cutover` of plan `cross` held after its verification ahead of the fence while
/// [`HELD_WRITES`] are written on the source: live, and what was written then was compared
/// again across the majors while fenced, by key and the keyless table whole.
fn cutover_with_writes_held(src: &Cluster, dst: &Cluster, dir: &Path, plan: &str) {
    let (resume, log) = (dir.join("resume"), dir.join("cutover.log"));
    let mut cmd = pgmove(&["cutover", plan, "--yes"], src, dst);
    cmd.env("PGMOVE_TEST_PAUSE", "cutover-pre-verified")
        .env("PGMOVE_TEST_RESUME_FILE", &resume);
    let mut child = spawn_logged(cmd, &log);
    support::online::wait_paused(&mut child, &log, "cutover-pre-verified", 120);
    src.psql(DB, HELD_WRITES);
    std::fs::write(&resume, "go").expect("resume file");
    let status = child.wait().expect("cutover ends");
    assert!(status.success(), "cutover: {status}\n{}", read_log(&log));
    let detail: serde_json::Value = serde_json::from_str(&dst.psql(
        DB,
        "SELECT detail FROM pgmove.cutover WHERE plan_name = 'cross'",
    ))
    .expect("the cutover's report");
    let re = &detail["recheck"];
    assert_eq!(detail["verify_identical"], true, "{detail}");
    assert_eq!(re["full"], false, "{detail}");
    // The held keyed write is compared again in a re-check round before the fence (when apply
    // applied it before the round began) or while fenced (after).
    let in_rounds: u64 = re["rounds"]
        .as_array()
        .map(|r| r.iter().filter_map(|x| x["keys"].as_u64()).sum())
        .unwrap_or(0);
    assert!(
        re["keys"].as_u64().expect("keys") + in_rounds >= 1,
        "{detail}"
    );
    assert!(re["whole_tables"].as_u64().expect("whole") >= 1, "{detail}");
}

/// Written on the source between cutover's verification ahead and its fence: a keyed row and
/// a row of the `REPLICA IDENTITY FULL` table.
const HELD_WRITES: &str = "UPDATE public.every_type SET t = 'held' WHERE id = 2; \
     UPDATE public.full_rows SET t = t || '!' WHERE id = 102;";

/// Strategy copy-cdc from a server of `src_major` to one of `dst_major`, with [`WRITES`] during
/// change capture and a cutover: `pgmove verify` identical, and [`assert_rows_equal`].
fn copy_cdc_between(src_major: Option<u32>, dst_major: Option<u32>) {
    let (src, dst) = servers(src_major, dst_major);
    let dir = tempfile::tempdir().expect("tempdir");
    dst.create_db(DB);
    src.psql(DB, FULL_TABLE);
    let plan = write_plan(dir.path(), "cross", &src, &dst, INSERT_ONLY);
    let p = plan.to_str().expect("utf8");
    let log = dir.path().join("apply.log");
    let mut apply = start_apply(&plan, &src, &dst, &log);
    wait_loaded(&dst, "cross", &mut apply, &log);
    let major = src_major.unwrap_or(15);
    src.psql(DB, &writes(major));
    src.psql(DB, FULL_WRITES);
    let (create_leaf, leaf_rows) = new_leaf_writes(major);
    if major < 14 {
        // pgoutput sends the DDL trigger's messages from 14 on: before, the statement is not
        // replayed and the user runs it on the target (as the plan report says). The trigger
        // still adds the leaf to the publication in its creating transaction on the source.
        dst.psql(DB, &create_leaf);
    }
    src.psql(DB, &create_leaf);
    src.psql(DB, &leaf_rows);
    if (11..13).contains(&major) {
        // A table that was not published (no key) and holds a row, attached under a tree with
        // a key: the attach gives it the key and it joins the publication, but its row is not
        // in the stream: the trigger refuses the ATTACH on the source rather than lose it.
        src.psql(
            DB,
            "CREATE TABLE public.events_att (LIKE public.events_us); \
             INSERT INTO public.events_att VALUES (100005, 'asia', '2026-01-01', NULL);",
        );
        let out = src.psql_output(
            DB,
            "ALTER TABLE public.events ATTACH PARTITION public.events_att FOR VALUES IN ('asia')",
        );
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(
            !out.status.success()
                && err.contains("cannot replicate partition public.events_att")
                && err.contains("held rows before it could join the publication"),
            "{err}"
        );
        assert_eq!(
            src.psql(
                DB,
                "SELECT relispartition FROM pg_class WHERE relname = 'events_att'"
            ),
            "f"
        );
        src.psql(DB, "DROP TABLE public.events_att");
    }
    if major < 11 {
        // A leaf without a key cannot join the publication (no partition inherits a key
        // before 11): the trigger refuses its creation on the source rather than lose its rows.
        let out = src.psql_output(
            DB,
            "CREATE TABLE public.events_eu_2028 PARTITION OF public.events_eu \
             FOR VALUES FROM ('2028-01-01') TO ('2029-01-01')",
        );
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(
            !out.status.success()
                && err.contains("cannot replicate new partition public.events_eu_2028")
                && err.contains("(PRIMARY KEY (...))"),
            "{err}"
        );
    }
    wait_caught_up(&src, &dst, "cross", &mut apply, &log);
    // Before 13 every leaf is a member of the publication, the new one too (added by the DDL
    // trigger in its creating transaction), and no partitioned table is; from 13, the root.
    assert_eq!(
        events_members(&src, "pgmove_cross"),
        if major < 13 {
            "events_eu_2025,events_eu_2026,events_eu_2027,events_us"
        } else {
            "events"
        },
        "{}",
        read_log(&log)
    );
    cutover_with_writes_held(&src, &dst, dir.path(), p);
    let status = wait_exit(&mut apply, &log);
    assert!(status.success(), "apply: {status}\n{}", read_log(&log));
    let out = run(&["verify", p], &src, &dst);
    assert_identical(&out, "copy-cdc");
    assert_rows_equal(&src, DB, &dst, DB);
    // The writes arrived (not only an equal pair of unchanged tables).
    assert_eq!(
        dst.psql(
            DB,
            "SELECT string_agg(id || ':' || coalesce(t, '-'), ',' ORDER BY id) FROM public.every_type WHERE id <> 4"
        ),
        "1:changed,2:held,5:-"
    );
    assert_eq!(
        dst.psql(DB, "SELECT region FROM public.events WHERE id = 11"),
        "us"
    );
    // The REPLICA IDENTITY FULL rows: every one updated and deleted, the second generation
    // (the duplicate pair still two rows, 104 deleted) equal value by value above.
    assert_eq!(
        dst.psql(
            DB,
            "SELECT string_agg(id::text, ',' ORDER BY id) FROM public.full_rows"
        ),
        "101,101,102,103,105,106"
    );
    assert_eq!(
        dst.psql(
            DB,
            "SELECT string_agg(id || ':' || length(t), ',' ORDER BY id) FROM public.full_every"
        ),
        "11:16,12:0,14:25001"
    );
    // Never a row twice: each moved row is once, in its new leaf, and no id is in two leaves;
    // the new leaf's rows arrived.
    assert_eq!(
        dst.psql(
            DB,
            "SELECT string_agg(id || ':' || tableoid::regclass::text, ',' ORDER BY id) \
             FROM public.events WHERE id IN (11, 13, 100003)"
        ),
        "11:events_us,13:events_eu_2027,100003:events_eu_2027"
    );
    assert_eq!(
        dst.psql(
            DB,
            "SELECT count(*) || ' ' || count(DISTINCT id) FROM public.events"
        ),
        src.psql(
            DB,
            "SELECT count(*) || ' ' || count(DISTINCT id) FROM public.events"
        )
    );
    assert_eq!(
        dst.psql(
            DB,
            "SELECT count(*) - count(DISTINCT id) FROM public.events"
        ),
        "0"
    );
    assert_eq!(
        dst.psql(
            DB,
            "SELECT relpersistence FROM pg_class WHERE relname = 'scratch'"
        ),
        "u"
    );
}

/// 15 -> 18 dump-restore: identical across the majors (18 prints the views' columns bare and
/// gives MAINTAIN, new in 17, to the owner and with `GRANT ALL`), and a view body changed and a
/// privilege revoked on the target afterwards are exactly what verify reports.
#[test]
fn from_15_to_18_dump_restore_is_exact() {
    let (src, dst, _dir, plan) = dump_restore_moved(None, Some(18), |src, dst| {
        for c in [src, dst] {
            c.psql("postgres", "CREATE ROLE reporting");
        }
        // Grants and views 18 shows differently from 15 (and views it shows as 15 does).
        src.psql(
            DB,
            r#"GRANT ALL ON sales.orders TO reporting;
               GRANT SELECT ON sales.big_orders TO reporting WITH GRANT OPTION;
               ALTER DEFAULT PRIVILEGES IN SCHEMA sales GRANT ALL ON TABLES TO reporting;
               CREATE VIEW sales.aliased AS
                 SELECT o.id AS order_id, o.amount, o FROM sales.orders o WHERE o.amount > 1;
               CREATE VIEW sales.joined AS
                 SELECT o.id, c.name FROM sales.orders o JOIN sales.customers c ON c.id = o.customer_id;
               CREATE VIEW sales.counted AS
                 SELECT c.id, (SELECT count(*) FROM sales.orders o WHERE o.customer_id = c.id) AS n
                 FROM sales.customers c;
               CREATE VIEW sales.nested AS
                 SELECT s.id FROM (SELECT id, amount FROM sales.orders) s WHERE s.amount > 2;
               CREATE VIEW sales.series AS SELECT g.n FROM generate_series(1, 3) g(n);
               CREATE VIEW "Mixed Case"."V w" AS SELECT "Id", "Value" FROM "Mixed Case"."Weird ""Name""";
               CREATE FUNCTION sales.bigger(i int) RETURNS bigint LANGUAGE sql
                 BEGIN ATOMIC SELECT count(*) FROM sales.orders WHERE id > i; END;"#,
        );
    });
    let p = plan.to_str().expect("utf8");
    assert_eq!(
        dst.psql(
            "shop_dr",
            "SELECT has_table_privilege('reporting', 'sales.orders', 'MAINTAIN')"
        ),
        "t",
        "GRANT ALL from the 15 source gives MAINTAIN on 18"
    );
    dst.psql(
        "shop_dr",
        "CREATE OR REPLACE VIEW sales.big_orders AS SELECT * FROM sales.orders WHERE amount > 60;
         REVOKE UPDATE ON sales.orders FROM reporting;",
    );
    let out = run(&["verify", p, "--format", "json"], &src, &dst);
    assert_eq!(out.status.code(), Some(3), "{}", text(&out));
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json");
    let objects: Vec<String> = report["objects"]
        .as_array()
        .expect("objects")
        .iter()
        .map(|o| {
            format!(
                "{} {}.{} {}: {} / {}",
                o["kind"].as_str().unwrap_or("?"),
                o["schema"].as_str().unwrap_or("?"),
                o["name"].as_str().unwrap_or("?"),
                o["property"].as_str().unwrap_or("definition"),
                o["source"].as_str().unwrap_or("?"),
                o["target"].as_str().unwrap_or("?")
            )
        })
        .collect();
    assert_eq!(
        objects,
        vec![
            "view sales.big_orders definition: \
             SELECT orders.id, orders.customer_id, orders.amount, orders.placed_at, orders.updated_at \
             FROM sales.orders WHERE orders.amount > 50::numeric; / \
             SELECT id, customer_id, amount, placed_at, updated_at \
             FROM sales.orders WHERE amount > 60::numeric;",
            "table sales.orders privileges of reporting: \
             DELETE, INSERT, REFERENCES, SELECT, TRIGGER, TRUNCATE, UPDATE / \
             DELETE, INSERT, REFERENCES, SELECT, TRIGGER, TRUNCATE",
        ],
        "{}",
        text(&out)
    );
    assert!(
        report["tables"]
            .as_array()
            .expect("tables")
            .iter()
            .all(|t| t["status"] == "same"),
        "{}",
        text(&out)
    );
    assert_eq!(
        report["notes"],
        serde_json::json!([
            "privileges MAINTAIN not compared: the source runs PostgreSQL 15, the target 18, and only one of them has them"
        ])
    );
}

/// 15 -> 18 copy-cdc: cutover's verification and `pgmove verify` find the target identical.
#[test]
fn from_15_to_18_copy_cdc_is_exact() {
    copy_cdc_between(None, Some(18));
}

#[test]
fn from_12_to_15_dump_restore_is_exact() {
    dump_restore_between(Some(12), None);
}

#[test]
fn from_12_to_15_copy_cdc_is_exact() {
    copy_cdc_between(Some(12), None);
}

#[test]
#[ignore = "version matrix: run with scripts/test-versions.sh"]
fn from_10_to_15_dump_restore_is_exact() {
    dump_restore_between(Some(10), None);
}

#[test]
#[ignore = "version matrix: run with scripts/test-versions.sh"]
fn from_10_to_15_copy_cdc_is_exact() {
    copy_cdc_between(Some(10), None);
}

#[test]
#[ignore = "version matrix: run with scripts/test-versions.sh"]
fn from_13_to_15_dump_restore_is_exact() {
    dump_restore_between(Some(13), None);
}

#[test]
#[ignore = "version matrix: run with scripts/test-versions.sh"]
fn from_13_to_15_copy_cdc_is_exact() {
    copy_cdc_between(Some(13), None);
}

#[test]
#[ignore = "version matrix: run with scripts/test-versions.sh"]
fn from_14_to_15_dump_restore_is_exact() {
    dump_restore_between(Some(14), None);
}

#[test]
#[ignore = "version matrix: run with scripts/test-versions.sh"]
fn from_14_to_15_copy_cdc_is_exact() {
    copy_cdc_between(Some(14), None);
}

#[test]
#[ignore = "version matrix: run with scripts/test-versions.sh"]
fn from_15_to_16_dump_restore_is_exact() {
    dump_restore_between(None, Some(16));
}

#[test]
#[ignore = "version matrix: run with scripts/test-versions.sh"]
fn from_15_to_16_copy_cdc_is_exact() {
    copy_cdc_between(None, Some(16));
}

#[test]
#[ignore = "version matrix: run with scripts/test-versions.sh"]
fn from_15_to_17_dump_restore_is_exact() {
    dump_restore_between(None, Some(17));
}

#[test]
#[ignore = "version matrix: run with scripts/test-versions.sh"]
fn from_15_to_17_copy_cdc_is_exact() {
    copy_cdc_between(None, Some(17));
}

/// `pgmove verify` between a 10 source and a 15 target after a dump-restore: floats (and
/// point/box coordinates), which 10 prints with 17 digits and 15 in their shortest form, a
/// computed NaN, a trigger 10 prints with `EXECUTE PROCEDURE` and tables 10 has no access
/// method for are all identical; then one float one bit off and the trigger made AFTER on the
/// target are exactly what verify reports.
#[test]
#[ignore = "version matrix: run with scripts/test-versions.sh"]
fn verify_from_10_to_15_reads_floats_triggers_and_access_methods_across_majors() {
    let src = Cluster::start(Options {
        major: Some(10),
        ..Options::logical()
    });
    let dst = Cluster::start(Options::default());
    src.create_db(DB);
    src.psql(
        DB,
        "CREATE TABLE public.f (id int PRIMARY KEY, r real, d double precision, p point, b box);
         INSERT INTO public.f VALUES
           (1, 0.1, 0.1, '(0.1,1e300)', '((0.3,0.3),(1e-300,0))'),
           (2, 3.4028235e38, 2.2250738585072014e-308, '(-1e-300,1.7976931348623157e308)', NULL),
           (3, 'NaN', 'Infinity'::float8 - 'Infinity', NULL, NULL),
           (4, '-0', '-Infinity', '(1,2)', '((1,2),(3,4))');
         CREATE FUNCTION public.touch() RETURNS trigger LANGUAGE plpgsql AS $$BEGIN RETURN NEW; END$$;
         CREATE TRIGGER f_touch BEFORE UPDATE ON public.f FOR EACH ROW EXECUTE PROCEDURE public.touch();",
    );
    dst.create_db("shop_dr");
    let dir = tempfile::tempdir().expect("tempdir");
    let dr = dir.path().join("dr.yaml");
    std::fs::write(
        &dr,
        format!(
            "version: 1\nname: dr\nstrategy: dump-restore\nsource:\n  dsn: {}\n  password: {{env: SRC_PW}}\n  sslmode: disable\ntarget:\n  dsn: {}\n  password: {{env: DST_PW}}\n  sslmode: disable\n",
            src.uri_no_password(DB),
            dst.uri_no_password("shop_dr")
        ),
    )
    .expect("write plan");
    let p = dr.to_str().expect("utf8");
    let out = run(&["apply", p, "--yes"], &src, &dst);
    assert_eq!(out.status.code(), Some(0), "apply: {}", text(&out));
    // The same values print differently: what verify must see past.
    let d1 = "SET extra_float_digits = 3; SELECT d FROM public.f WHERE id = 1";
    assert_eq!(src.psql(DB, d1), "0.100000000000000006");
    assert_eq!(dst.psql("shop_dr", d1), "0.1");
    let out = run(&["verify", p], &src, &dst);
    assert_identical(&out, "10 -> 15 dump-restore");

    dst.psql(
        "shop_dr",
        "UPDATE public.f SET d = 0.10000000000000002 WHERE id = 1;
         DROP TRIGGER f_touch ON public.f;
         CREATE TRIGGER f_touch AFTER UPDATE ON public.f FOR EACH ROW EXECUTE FUNCTION public.touch();",
    );
    let out = run(&["verify", p, "--format", "json"], &src, &dst);
    assert_eq!(out.status.code(), Some(3), "{}", text(&out));
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json");
    let differing: Vec<String> = report["tables"]
        .as_array()
        .expect("tables")
        .iter()
        .filter(|t| t["status"] != "same")
        .flat_map(|t| {
            t["differing_chunks"]
                .as_array()
                .expect("chunks")
                .iter()
                .flat_map(|c| c["rows"].as_array().expect("rows").iter())
                .map(move |r| format!("{} {} {}", t["name"], r["key"], r["kind"]))
        })
        .collect();
    assert_eq!(differing, vec![r#""f" ["1"] "differs""#], "{}", text(&out));
    let objects: Vec<String> = report["objects"]
        .as_array()
        .expect("objects")
        .iter()
        .map(|o| format!("{} {} {}", o["kind"], o["name"], o["difference"]))
        .collect();
    assert_eq!(
        objects,
        vec![r#""trigger" "f.f_touch" "definition""#],
        "{}",
        text(&out)
    );
}
