//! Issue 11 (fidelity): objects and values that must arrive exactly, through every strategy.

use crate::support;

use std::time::{Duration, Instant};

use support::online::{
    assert_ok, pair, read_log, run, start_apply, stop, text, wait_caught_up, wait_loaded,
    write_plan, PlanYaml, DB, INSERT_ONLY,
};
use support::Cluster;

/// Extended statistics (`CREATE STATISTICS`) appear in the dump's table of contents as
/// `STATISTICS`; each strategy must read that entry and restore the object.
#[test]
fn extended_statistics_move_through_dump_restore_and_copy_cdc() {
    for strategy in ["dump-restore", "copy-cdc"] {
        let (src, dst) = pair();
        src.psql(
            DB,
            "CREATE TABLE public.t (id int PRIMARY KEY, a int, b int, c text);
             INSERT INTO public.t SELECT g, g % 10, g % 100, md5(g::text) FROM generate_series(1, 1000) g;
             CREATE STATISTICS public.t_ab (dependencies, ndistinct) ON a, b FROM public.t;
             CREATE STATISTICS public.t_expr ON (a + b), c FROM public.t;
             ALTER STATISTICS public.t_ab SET STATISTICS 500;",
        );
        let dir = tempfile::tempdir().expect("tempdir");
        let plan = PlanYaml {
            strategy: Some(strategy),
            extra: "cdc:\n  tables_without_key: insert-only\n",
            ..PlanYaml::default()
        }
        .write(dir.path(), "stats", &src, &dst);
        let p = plan.to_str().expect("utf8");
        let out = if strategy == "copy-cdc" {
            run(&["apply", p, "--yes", "--stop-after-load"], &src, &dst)
        } else {
            run(&["apply", p, "--yes"], &src, &dst)
        };
        assert_ok(&out);
        let defs = "SELECT string_agg(pg_get_statisticsobjdef(oid) || ' ' || stxstattarget, '; ' ORDER BY stxname) FROM pg_statistic_ext";
        let want = src.psql(DB, defs);
        assert!(want.contains("t_ab"), "{want}");
        assert_eq!(dst.psql(DB, defs), want, "{strategy}: {}", text(&out));
        assert_eq!(dst.psql(DB, "SELECT count(*) FROM public.t"), "1000");
    }
}

/// The rows of `keyless` in a stable order, as text.
const KEYLESS_ROWS: &str = "SELECT string_agg(format('%s|%s|%s|%s|%s|%s|%s|%s|%s', flag, code, ip, amount, at, doc, pt, x, note), E'\\n' ORDER BY note, flag, code, ip, amount, at) FROM keyless";

/// Keyless tables with `REPLICA IDENTITY FULL`: updates and deletes find their row by every
/// column's typed value, whatever the type (boolean, char(n), inet, numeric, timestamptz, json,
/// point, xml, NULLs), and one that matches no row stops apply with an error naming the table.
#[test]
fn full_identity_updates_and_deletes_match_typed_values_and_never_skip_silently() {
    let (src, dst) = pair();
    src.psql(
        DB,
        "CREATE TABLE keyless (flag boolean, code char(5), ip inet, amount numeric, at timestamptz,
                               doc json, pt point, x xml, note text);
         ALTER TABLE keyless REPLICA IDENTITY FULL;
         INSERT INTO keyless VALUES
           (true, 'ab', '10.0.0.1/8', 1.50, '2026-01-02 03:04:05.678+05', '{\"a\":  1}', '(1,2)', '<a/>', 'upd1'),
           (false, 'cd', '::1', 2, '2026-06-01 00:00:00+00', '[1, 2]', '(3.5,4)', '<b>x</b>', 'upd2'),
           (NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, 'upd3'),
           (true, 'ef   ', '192.168.1.0/24', -0.000, 'infinity', 'null', '(0,0)', '<c/>', 'del1'),
           (true, 'ab', '10.0.0.1/8', 1.50, '2026-01-02 03:04:05.678+05', '{\"a\":  1}', '(1,2)', '<a/>', 'dup'),
           (true, 'ab', '10.0.0.1/8', 1.50, '2026-01-02 03:04:05.678+05', '{\"a\":  1}', '(1,2)', '<a/>', 'dup'),
           (false, 'gh', '2001:db8::/32', 1e20, '1999-12-31 23:59:59.999999-08', '{}', '(-1,-1)', NULL, 'del2'),
           (true, 'zz', '10.9.9.9', 7, now(), '1', '(7,7)', '<z/>', 'behind');",
    );
    let dir = tempfile::tempdir().expect("tempdir");
    let plan = write_plan(dir.path(), "full", &src, &dst, INSERT_ONLY);
    let log = dir.path().join("apply.log");
    let mut child = start_apply(&plan, &src, &dst, &log);
    wait_loaded(&dst, "full", &mut child, &log);
    src.psql(
        DB,
        "UPDATE keyless SET note = 'upd1 done', amount = 1.500 WHERE note = 'upd1';
         UPDATE keyless SET flag = true, code = 'xy', doc = '{\"b\": 2}' WHERE note = 'upd2';
         UPDATE keyless SET note = 'upd3 done', pt = '(5,5)' WHERE note = 'upd3';
         DELETE FROM keyless WHERE note = 'del1';
         DELETE FROM keyless WHERE ctid = (SELECT ctid FROM keyless WHERE note = 'dup' LIMIT 1);
         DELETE FROM keyless WHERE note = 'del2';",
    );
    wait_caught_up(&src, &dst, "full", &mut child, &log);
    let want = src.psql(DB, KEYLESS_ROWS);
    assert!(
        want.contains("upd1 done") && !want.contains("del1"),
        "{want}"
    );
    assert_eq!(dst.psql(DB, KEYLESS_ROWS), want, "{}", read_log(&log));
    assert_eq!(
        dst.psql(DB, "SELECT count(*) FROM keyless WHERE note = 'dup'"),
        "1"
    );

    // A row deleted on the target behind pgmove's back: the source's update of it must stop
    // apply with an error, not be skipped.
    dst.psql(DB, "DELETE FROM keyless WHERE note = 'behind'");
    src.psql(DB, "UPDATE keyless SET amount = 8 WHERE note = 'behind'");
    let deadline = Instant::now() + Duration::from_secs(120);
    let status = loop {
        if let Ok(Some(status)) = child.try_wait() {
            break status;
        }
        if Instant::now() > deadline {
            stop(&mut child);
            panic!(
                "apply went on after an update matched no row\n{}",
                read_log(&log)
            );
        }
        std::thread::sleep(Duration::from_millis(200));
    };
    let logged = read_log(&log);
    assert_eq!(status.code(), Some(1), "{logged}");
    assert!(
        logged.contains("UPDATE on \"public\".\"keyless\"") && logged.contains("matched no row"),
        "{logged}"
    );
    assert!(logged.contains("note=<6 chars>"), "{logged}");
    assert!(
        !logged.contains("10.9.9.9"),
        "values are withheld: {logged}"
    );
    assert!(
        logged.contains("pgmove apply"),
        "the fix is named: {logged}"
    );
    // Nothing of that change was applied.
    assert_eq!(
        dst.psql(DB, "SELECT count(*) FROM keyless WHERE amount = 8"),
        "0"
    );
}

/// Each row of `odd` as its binary send form, hex: independent of any session setting.
const ODD_ROWS: &str = "SELECT string_agg(format('%s|%s|%s|%s|%s|%s|%s|%s|%s', id, encode(date_send(d), 'hex'),
        encode(timestamp_send(ts), 'hex'), encode(timestamptz_send(tstz), 'hex'), encode(float4send(f4), 'hex'),
        encode(float8send(f8), 'hex'), encode(interval_send(iv), 'hex'), encode(b, 'hex'), m), E'\\n' ORDER BY id) FROM odd";

/// The copy's text path (a table with a non-built-in column type), change capture and verify
/// read and write values with pinned settings, whatever the databases' own DateStyle,
/// IntervalStyle, extra_float_digits, TimeZone and bytea_output.
#[test]
fn odd_session_settings_on_either_side_change_no_value() {
    let (src, dst) = pair();
    src.psql(
        DB,
        "ALTER DATABASE shop SET DateStyle = 'SQL, DMY';
         ALTER DATABASE shop SET extra_float_digits = 0;
         ALTER DATABASE shop SET IntervalStyle = sql_standard;
         ALTER DATABASE shop SET TimeZone = 'Pacific/Kiritimati';
         ALTER DATABASE shop SET bytea_output = escape;",
    );
    dst.psql(
        DB,
        "ALTER DATABASE shop SET DateStyle = 'German, YMD';
         ALTER DATABASE shop SET extra_float_digits = -15;
         ALTER DATABASE shop SET IntervalStyle = iso_8601;
         ALTER DATABASE shop SET TimeZone = 'America/Adak';
         ALTER DATABASE shop SET bytea_output = escape;",
    );
    let rows = "(1, '2026-01-02', '2026-01-02 03:04:05.123456', '2026-03-29 01:30:00.000001+00', 1.17549435e-38, 1.7976931348623157e308, '1 year 2 mons -3 days 04:05:06.789', '\\x00ff5c27', 'sad'),
                (2, '1999-12-31', '2000-02-29 23:59:59.999999', '1970-01-01 00:00:00+00', 3.4028235e38, 2.2250738585072014e-308, '-1 day +2 hours', '\\x', 'ok'),
                (3, '0044-03-15 BC', '1900-01-01 00:00:00', 'infinity', 0.1, 0.1, '-178956970 years -7 mons', NULL, 'happy'),
                (4, '2026-12-13', '2026-12-13 13:13:13', '2026-07-04 12:00:00-07', -0.0, -3.141592653589793, '3 days 00:00:00.000001', '\\x01', NULL)";
    src.psql(
        DB,
        &format!(
            "CREATE TYPE mood AS ENUM ('sad', 'ok', 'happy');
             CREATE TABLE odd (id int PRIMARY KEY, d date, ts timestamp, tstz timestamptz, f4 real,
                               f8 double precision, iv interval, b bytea, m mood);
             INSERT INTO odd VALUES {rows};"
        ),
    );
    let dir = tempfile::tempdir().expect("tempdir");
    let plan = write_plan(dir.path(), "odd", &src, &dst, INSERT_ONLY);
    let log = dir.path().join("apply.log");
    let mut child = start_apply(&plan, &src, &dst, &log);
    wait_loaded(&dst, "odd", &mut child, &log);
    assert_eq!(
        dst.psql(DB, ODD_ROWS),
        src.psql(DB, ODD_ROWS),
        "after the load"
    );
    // The same values again through change capture: inserted, and updated in place.
    src.psql(
        DB,
        "INSERT INTO odd SELECT id + 10, d, ts, tstz, f4, f8, iv, b, m FROM odd;
         UPDATE odd SET d = d + 1, ts = ts + interval '1 microsecond', f4 = f4 * 0.5, f8 = f8 / 3,
                        iv = -iv, b = b || '\\x2c'::bytea, tstz = tstz - interval '1 second' WHERE id <= 4;",
    );
    wait_caught_up(&src, &dst, "odd", &mut child, &log);
    let want = src.psql(DB, ODD_ROWS);
    assert_eq!(want.lines().count(), 8, "{want}");
    assert_eq!(dst.psql(DB, ODD_ROWS), want, "{}", read_log(&log));
    stop(&mut child);
    let out = run(&["verify", plan.to_str().expect("utf8")], &src, &dst);
    assert_ok(&out);
}

/// Every sequence's definition and state, as `setval` and `CREATE SEQUENCE` take them.
const SEQUENCE_STATES: &str = "SELECT string_agg(format('%s %s %s %s %s %s %s %s', sequencename, data_type, start_value,
        increment_by, min_value, max_value, cycle, cache_size), E'\\n' ORDER BY sequencename) FROM pg_sequences";
const SEQUENCE_VALUES: &str =
    "SELECT (SELECT format('%s/%s', last_value, is_called) FROM s_restart) || ' ' ||
        (SELECT format('%s/%s', last_value, is_called) FROM s_false) || ' ' ||
        (SELECT format('%s/%s', last_value, is_called) FROM s_called) || ' ' ||
        (SELECT format('%s/%s', last_value, is_called) FROM s_def)";

/// Cutover carries each sequence's `last_value` and `is_called` exactly (a `RESTART WITH 50`
/// arrives as 50 not yet called, not as 1) and a definition changed on the source.
#[test]
fn cutover_carries_sequence_state_and_definition_exactly() {
    let (src, dst) = pair();
    src.psql(
        DB,
        "CREATE TABLE t (id int PRIMARY KEY);
         CREATE SEQUENCE s_restart; CREATE SEQUENCE s_false; CREATE SEQUENCE s_called;
         CREATE SEQUENCE s_def AS integer;
         SELECT nextval('s_restart'), nextval('s_false'), nextval('s_def');",
    );
    let dir = tempfile::tempdir().expect("tempdir");
    let plan = write_plan(
        dir.path(),
        "seqs",
        &src,
        &dst,
        "cutover:\n  verify: counts\n",
    );
    let log = dir.path().join("apply.log");
    let mut child = start_apply(&plan, &src, &dst, &log);
    wait_loaded(&dst, "seqs", &mut child, &log);
    src.psql(
        DB,
        "ALTER SEQUENCE s_restart RESTART WITH 50;
         SELECT setval('s_false', 7, false);
         SELECT nextval('s_called') FROM generate_series(1, 3);
         ALTER SEQUENCE s_def INCREMENT BY 5 MINVALUE -10 MAXVALUE 1000 START WITH 3 CACHE 4 CYCLE;
         SELECT setval('s_def', 990, true);
         INSERT INTO t VALUES (1);",
    );
    wait_caught_up(&src, &dst, "seqs", &mut child, &log);
    stop(&mut child);
    let want = (src.psql(DB, SEQUENCE_STATES), src.psql(DB, SEQUENCE_VALUES));
    assert_eq!(want.1, "50/f 7/f 3/t 990/t");
    let out = run(
        &["cutover", plan.to_str().expect("utf8"), "--yes"],
        &src,
        &dst,
    );
    assert_ok(&out);
    assert_eq!(
        (dst.psql(DB, SEQUENCE_STATES), dst.psql(DB, SEQUENCE_VALUES)),
        want,
        "{}",
        text(&out)
    );
}

/// The roles `fixtures/every_kind.sql` needs, created on both servers (roles are per cluster;
/// `roles: create` is not what this test is about).
const EVERY_KIND_ROLES: &str =
    "CREATE ROLE fx_owner; CREATE ROLE fx_reader; CREATE ROLE fx_writer;";

/// `pg_dump --schema-only` of `db` (which leaves out large objects, even with `--blobs`: see
/// [`data_digest`] for them), normalized only where it must be:
/// - `--exclude-schema=pgmove`: pgmove's state schema on the target (until cleanup);
/// - `\restrict`/`\unrestrict` lines carry a random key per pg_dump run (PostgreSQL 15.14+).
///
/// Nothing else: a pgmove publication or event trigger on either side shows as a difference.
fn schema_dump(c: &Cluster, db: &str) -> String {
    let out = std::process::Command::new(support::bindir().join("pg_dump"))
        .args(["--schema-only", "--exclude-schema=pgmove"])
        .args([
            "-h",
            "127.0.0.1",
            "-p",
            &c.port.to_string(),
            "-U",
            "postgres",
            db,
        ])
        .env("PGPASSWORD", &c.password)
        .output()
        .expect("run pg_dump");
    assert!(
        out.status.success(),
        "pg_dump: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter(|l| !l.starts_with("\\restrict ") && !l.starts_with("\\unrestrict "))
        .map(|l| format!("{l}\n"))
        .collect()
}

/// Panics with a unified diff (`diff -u`) when the two schema dumps differ.
fn assert_same_schema(got: &str, want: &str, what: &str) {
    if got == want {
        return;
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let (a, b) = (dir.path().join("want.sql"), dir.path().join("got.sql"));
    std::fs::write(&a, want).expect("write");
    std::fs::write(&b, got).expect("write");
    let out = std::process::Command::new("diff")
        .arg("-u")
        .args([&a, &b])
        .output()
        .expect("diff");
    panic!(
        "{what}: the schema dump differs from the source's\n{}",
        String::from_utf8_lossy(&out.stdout)
    );
}

/// Each user table's, populated materialized view's and sequence's rows (a sequence's row is
/// its `last_value` and `is_called`) as an md5 of their sorted text, and the large
/// objects' owners, grants, comments and contents: the data that must arrive.
fn data_digest(c: &Cluster) -> String {
    let rels = c.psql(
        DB,
        "SELECT format('%I.%I', n.nspname, c.relname), c.relkind FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
         WHERE c.relkind IN ('r', 'm', 'S') AND c.relispopulated AND n.nspname NOT IN ('pg_catalog', 'information_schema', 'pgmove')
           AND n.nspname NOT LIKE 'pg_toast%'
           AND NOT EXISTS (SELECT 1 FROM pg_depend d WHERE d.classid = 'pg_class'::regclass AND d.objid = c.oid AND d.deptype = 'e')
         ORDER BY 1",
    );
    let mut sql = Vec::new();
    for (rel, kind) in rels.lines().filter_map(|l| l.split_once('|')) {
        if kind == "S" {
            // log_cnt is how many values WAL has pre-logged: not the sequence's state.
            sql.push(format!(
                "SELECT '{rel} ' || last_value || ' ' || is_called FROM {rel}"
            ));
            continue;
        }
        sql.push(format!(
            "SELECT '{rel} ' || count(*) || ' ' || md5(coalesce(string_agg(x::text, E'\\n' ORDER BY x::text), '')) FROM ONLY {rel} x"
        ));
    }
    sql.push(
        "SELECT 'lo ' || string_agg(format('%s %s %s %s %s', oid, lomowner::regrole, lomacl,
                obj_description(oid, 'pg_largeobject'), md5(lo_get(oid))), ', ' ORDER BY oid)
         FROM pg_largeobject_metadata"
            .to_string(),
    );
    c.psql(DB, &sql.join(" UNION ALL "))
}

/// A source holding every object kind of `fixtures/every_kind.sql`, the roles on both
/// servers, and the source's schema dump before pgmove touched it.
fn every_kind_pair() -> (Cluster, Cluster, String) {
    let (src, dst) = pair();
    src.psql("postgres", EVERY_KIND_ROLES);
    dst.psql("postgres", EVERY_KIND_ROLES);
    src.psql(DB, include_str!("../fixtures/every_kind.sql"));
    let before = schema_dump(&src, DB);
    (src, dst, before)
}

/// The bar: `pg_dump -Fd | pg_restore` of the same source into a scratch database on the
/// target's server carries the schema identically; what it did not would not be pgmove's defect.
fn pg_dump_restore_bar(src: &Cluster, dst: &Cluster, want: &str) {
    dst.create_db("bar");
    let dir = tempfile::tempdir().expect("tempdir");
    let dump = dir.path().join("d");
    let out = std::process::Command::new(support::bindir().join("pg_dump"))
        .args(["-Fd", "-f"])
        .arg(&dump)
        .args([
            "-h",
            "127.0.0.1",
            "-p",
            &src.port.to_string(),
            "-U",
            "postgres",
            DB,
        ])
        .env("PGPASSWORD", &src.password)
        .output()
        .expect("pg_dump");
    assert!(out.status.success(), "{}", text(&out));
    let out = std::process::Command::new(support::bindir().join("pg_restore"))
        .args([
            "--exit-on-error",
            "-h",
            "127.0.0.1",
            "-p",
            &dst.port.to_string(),
            "-U",
            "postgres",
            "-d",
            "bar",
        ])
        .arg(&dump)
        .env("PGPASSWORD", &dst.password)
        .output()
        .expect("pg_restore");
    assert!(out.status.success(), "{}", text(&out));
    assert_eq!(schema_dump(dst, "bar"), want, "pg_dump | pg_restore itself");
    dst.psql("postgres", "DROP DATABASE bar");
}

/// Issue 11, done when: a database with every object kind `pg_dump --schema-only` emits for
/// PostgreSQL 15 (fixtures/every_kind.sql) moves through dump-restore: the target's schema dump
/// equals the source's, and the data is identical.
#[test]
fn every_object_kind_moves_through_dump_restore() {
    let (src, dst, want) = every_kind_pair();
    pg_dump_restore_bar(&src, &dst, &want);
    let dir = tempfile::tempdir().expect("tempdir");
    let plan = PlanYaml {
        strategy: Some("dump-restore"),
        extra: "objects:\n  large_objects: true\n",
        ..PlanYaml::default()
    }
    .write(dir.path(), "kinds", &src, &dst);
    let p = plan.to_str().expect("utf8");
    let out = run(&["apply", p, "--yes"], &src, &dst);
    assert_ok(&out);
    let got = schema_dump(&dst, DB);
    assert_same_schema(&got, &want, &format!("dump-restore target\n{}", text(&out)));
    assert_eq!(schema_dump(&src, DB), want, "the source is as it was");
    assert_eq!(data_digest(&dst), data_digest(&src));
    let out = run(&["verify", p], &src, &dst);
    assert_ok(&out);
}

/// The same database through copy-cdc with change capture: the load, writes to tables of every
/// shape (partitions and sub-partitions, inheritance, identity and generated columns, keyless
/// tables under `replica-identity-full`, quoted names), catch-up, cutover. The target's schema
/// dump equals the source's as it was before pgmove (pgmove's state schema aside), the data is
/// identical, and after cleanup (no pgmove schema left on either side) both servers' schema
/// dumps equal it.
#[test]
fn every_object_kind_moves_through_copy_cdc() {
    let (src, dst, want) = every_kind_pair();
    let dir = tempfile::tempdir().expect("tempdir");
    let plan = PlanYaml {
        extra: "objects:\n  large_objects: true\ncdc:\n  tables_without_key: replica-identity-full\ncutover:\n  verify: checksums\n",
        ..PlanYaml::default()
    }
    .write(dir.path(), "kinds", &src, &dst);
    let p = plan.to_str().expect("utf8");
    let log = dir.path().join("apply.log");
    let mut child = start_apply(&plan, &src, &dst, &log);
    wait_loaded(&dst, "kinds", &mut child, &log);
    src.psql(
        DB,
        "INSERT INTO fx.items (code, name, qty, price, span, n) VALUES ('late', 'Late', 3, 9.99, '[1000,1001)', 7);
         UPDATE fx.items SET price = price + 1, n = n + 1, tags = tags OPERATOR(ext.||) ext.hstore('u', '1') WHERE id % 7 = 0;
         DELETE FROM fx.lines WHERE id % 11 = 0;
         INSERT INTO fx.lines (item_id, qty) VALUES (10, 1), (12, 2);
         INSERT INTO fx.events VALUES (5001, '2026-05-05', 'eu', '{}'), (5002, '2026-05-05', 'br', null), (5003, '2031-01-01', 'us', '[]');
         UPDATE fx.events SET payload = '{\"changed\": true}' WHERE id % 100 = 0;
         DELETE FROM fx.events WHERE id % 150 = 0;
         INSERT INTO fx.hashed VALUES (101, 'new'), (102, 'new');
         UPDATE fx.dog SET breed = 'poodle' WHERE id = 4;
         INSERT INTO fx.animal VALUES (5, 'hen');
         INSERT INTO fx.audit VALUES (now(), 'late');
         UPDATE fx.coded SET v = -v WHERE code = 'k1';
         INSERT INTO \"Odd Schema\".\"Mixed Case\" VALUES (3, 'three');
         INSERT INTO fx.no_identity VALUES (21, 'n21');
         -- A GENERATED ALWAYS identity column that is not the key: the target refuses to set
         -- it (\"can only be updated to DEFAULT\"), apply leaves it as it is.
         UPDATE fx.tickets SET v = 'changed' WHERE code = 't1';
         INSERT INTO fx.tickets (code, v) VALUES ('t11', 'new');
         INSERT INTO fx.events VALUES (900003, '2024-08-01', 'jp', null);
         UPDATE fx.events SET payload = '{}' WHERE id = 900001;
         INSERT INTO fx.readings VALUES ('2026-06-06', 99);
         INSERT INTO fx.audit (at, what, note) VALUES ('2026-02-02', 'typed', 'note'::text::fx.mytext);
         UPDATE fx.audit SET what = 'changed' WHERE what = 'event 3';
         DELETE FROM fx.audit WHERE what = 'event 4';
         UPDATE fx.readings_now SET v = -v WHERE v = 5;
         DELETE FROM fx.readings_now WHERE v = 6;
         -- A materialized view is not replicated: refreshed here, as the target's is at cutover.
         REFRESH MATERIALIZED VIEW fx.mood_counts;
         SELECT nextval('fx.standalone');",
    );
    wait_caught_up(&src, &dst, "kinds", &mut child, &log);
    stop(&mut child);
    let out = run(&["cutover", p, "--yes"], &src, &dst);
    assert_ok(&out);
    let got = schema_dump(&dst, DB);
    assert_same_schema(&got, &want, &format!("copy-cdc target\n{}", read_log(&log)));
    assert_eq!(data_digest(&dst), data_digest(&src));
    let out = run(&["verify", p], &src, &dst);
    assert_ok(&out);
    // Cleanup leaves the source as it was: its keyless tables' replica identity back, pgmove's
    // publications, event triggers and schema gone.
    let out = run(&["cleanup", p], &src, &dst);
    assert_ok(&out);
    let pgmove_schema = "SELECT count(*) FROM pg_namespace WHERE nspname = 'pgmove'";
    assert_eq!(src.psql(DB, pgmove_schema), "0", "{}", text(&out));
    assert_eq!(dst.psql(DB, pgmove_schema), "0", "{}", text(&out));
    assert_same_schema(&schema_dump(&src, DB), &want, "the source after cleanup");
    assert_same_schema(&schema_dump(&dst, DB), &want, "the target after cleanup");
}

/// A partitioned table whose leaves have no key (and one that has) under
/// `cdc.tables_without_key: insert-only`: the source keeps accepting UPDATE and DELETE on the
/// keyless leaves (they are published for inserts only, apart from the tree), their inserts
/// arrive, and the keyed leaf replicates everything.
#[test]
fn keyless_partitions_under_insert_only_leave_the_sources_updates_working() {
    let (src, dst) = pair();
    src.psql(
        DB,
        "CREATE TABLE readings (at date NOT NULL, v int) PARTITION BY RANGE (at);
         CREATE TABLE readings_2025 PARTITION OF readings FOR VALUES FROM ('2025-01-01') TO ('2026-01-01');
         CREATE TABLE readings_2026 PARTITION OF readings FOR VALUES FROM ('2026-01-01') TO ('2027-01-01');
         ALTER TABLE readings_2026 ADD PRIMARY KEY (at);
         INSERT INTO readings SELECT DATE '2025-12-25' + g, g FROM generate_series(0, 9) g;",
    );
    let dir = tempfile::tempdir().expect("tempdir");
    let plan = write_plan(dir.path(), "parts", &src, &dst, INSERT_ONLY);
    let log = dir.path().join("apply.log");
    let mut child = start_apply(&plan, &src, &dst, &log);
    wait_loaded(&dst, "parts", &mut child, &log);
    // Refused by the source before the fix: "cannot update table readings_2025 because it
    // does not have a replica identity and publishes updates".
    src.psql(
        DB,
        "UPDATE readings_2025 SET v = -v WHERE v = 1;
         DELETE FROM readings_2025 WHERE v = 2;
         INSERT INTO readings VALUES ('2025-02-02', 100), ('2026-02-02', 200);
         UPDATE readings SET v = v + 1000 WHERE at = '2026-01-01';",
    );
    wait_caught_up(&src, &dst, "parts", &mut child, &log);
    stop(&mut child);
    let rows = "SELECT string_agg(at || '=' || v, ',' ORDER BY at, v) FROM ";
    assert_eq!(
        dst.psql(DB, &format!("{rows} readings_2026")),
        src.psql(DB, &format!("{rows} readings_2026")),
        "{}",
        read_log(&log)
    );
    let got = dst.psql(DB, &format!("{rows} readings_2025"));
    assert!(got.contains("2025-02-02=100"), "{got}");
    assert_eq!(
        src.psql(
            DB,
            "SELECT string_agg(pubname || ':' || tablename, ',' ORDER BY pubname, tablename) FROM pg_publication_tables WHERE pubname LIKE 'pgmove_parts%'"
        ),
        "pgmove_parts:readings_2026,pgmove_parts_insert_only:readings_2025"
    );
}
