//! Issue 15 (exact values on every pair): every column type of the many-types fixture and the
//! hostile-settings values of `session_values`, moved between two majors (10 -> 15 and
//! 15 -> 18) by dump-restore (into database `dr`) and by copy-cdc (load, changes during
//! change capture decoded from pgoutput, cutover; into database `shop`) on the same target,
//! with every database's output settings hostile. Each value is compared between source and
//! target in a form that is the same on every major: floats (alone, or in points, boxes,
//! segments and float arrays) as their binary send, everything else as its type's text output
//! under fixed settings. The load's COPY format
//! per table is checked too: binary for tables whose every type binary.rs allows for the pair,
//! text for the others.

use crate::session_values::{
    hostile, other_monetary_locale, target_hostile, SOURCE_HOSTILE, VALS, VALS_CHANGES,
};
use crate::support;

use support::online::{
    read_log, run, start_apply, text, wait_caught_up, wait_loaded, write_plan, DB,
};
use support::{Cluster, Options};

use std::time::{Duration, Instant};

/// The settings both sides are read with: one text rendering for every type but floats
/// (whose shortest text differs between majors before and after 12: they are compared as
/// their binary send).
const FIXED_SETTINGS: &str = "SET DateStyle = ISO, YMD; SET IntervalStyle = postgres; \
     SET extra_float_digits = 3; SET bytea_output = hex; SET TimeZone = 'UTC'; \
     SET lc_monetary = 'C'; SET search_path = pg_catalog;";

/// Built-in types whose binary form reads the same on every major (binary.rs's list), one
/// column each, with extremes: the whole table travels by binary COPY across majors.
const STABLE: &str = r#"
CREATE TABLE public.stable (
    id int8 PRIMARY KEY, bo bool, bt bytea, ch "char", nm name, i2 int2, i4 int4, tx text,
    vc varchar(20), bp char(4), f4 float4, f8 float8, nu numeric, mo money, d date, tm time,
    ttz timetz, ts timestamp, tstz timestamptz, iv interval, u uuid, js json, jb jsonb,
    ip inet, ci cidr, ma macaddr, bi bit(5), vb varbit);
INSERT INTO public.stable VALUES
 (1, true, '\x00ff', 'x', 'a name', -32768, -2147483648, E'tab\tnl\n', 'ünï', 'ab',
  1.17549435e-38, 4.9e-324, '-123456789012345678901234567890.000000000000000000001', 12.34,
  '4713-01-01 BC', '24:00:00', '23:59:59.999999+15:59', '294276-12-31 23:59:59.999999',
  '2026-03-29 01:30:00.000001+00', '-178956970 years -7 mons -2147483647 days -00:00:00.000001',
  'ffffffff-ffff-ffff-ffff-ffffffffffff', '{"a": 1.0, "a": 2}', '{"n": 1e-10, "s": "\u00e9"}',
  '::ffff:1.2.3.4/128', '192.168.0.0/16', 'ff:ff:ff:ff:ff:ff', B'10101', B''),
 (2, false, '\x', '', '', 32767, 2147483647, '', '', '', 'NaN', 'NaN', 'NaN', -92233720368547758.08,
  'infinity', '00:00:00', '00:00:00-15:59', '-infinity', 'infinity', '0', NULL, 'null', 'null',
  '0.0.0.0', '::/0', '00:00:00:00:00:00', B'00000', B'1'),
 (3, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, '-Infinity', 1.7976931348623157e308,
  '0.000000000000000000000000000001', 92233720368547758.07, '5874897-12-31', '12:34:56.789',
  NULL, '1999-12-31 23:59:59.5', '-infinity', '1 mon -1 days 00:00:00.5', NULL, '[]', '[]',
  NULL, NULL, NULL, NULL, NULL);
"#;

/// Types outside binary.rs's list across majors (the table travels as text): geometric types
/// with float extremes, ranges, text search, pg_lsn, macaddr8, float8 and timestamptz arrays.
const OTHERS: &str = r#"
CREATE TABLE public.others (
    id int PRIMARY KEY, pt point, bx box, ls lseg, nr numrange, dr daterange, tq tsquery,
    lsn pg_lsn, m8 macaddr8, fa float8[], ta timestamptz[]);
INSERT INTO public.others VALUES
 (1, '(1e-300,-1.7976931348623157e308)', '((0.1,0.2),(0.3,0.4))', '[(0.1,0.2),(1e300,-1e300)]',
  '[-1e-30,1e30)', '[2000-02-29,infinity)', 'fat & (rat | !cat)', 'FFFFFFFF/FFFFFFFF',
  '08:00:2b:01:02:03:04:05', '{0.1,NaN,-Infinity,4.9e-324}', '{infinity,"2026-03-29 01:30:00+02"}'),
 (2, NULL, NULL, NULL, 'empty', NULL, '', '0/0', NULL, '{}', NULL);
"#;

/// Changes during change capture to the fixture's `every_type` and to [`STABLE`] and
/// [`OTHERS`]: every row inserted again under another id, then those rows updated to the
/// values of other rows (every column changes, through pgoutput's insert and update).
const CHANGES: &str = r#"
INSERT INTO public.every_type SELECT id + 10, n_free, n_fixed, f4, f8, ts, tstz, d, iv, m, addr, pos,
    r, tr, mr, ints, texts, tsv, x, j, jb, b, u, ip, net, mac, pt, bx, bits, money_col, ch, t
  FROM public.every_type;
UPDATE public.every_type e SET (n_free, n_fixed, f4, f8, ts, tstz, d, iv, m, addr, pos, r, tr, mr,
    ints, texts, tsv, x, j, jb, b, u, ip, net, mac, pt, bx, bits, money_col, ch, t) =
  (SELECT n_free, n_fixed, f4, f8, ts, tstz, d, iv, m, addr, pos, r, tr, mr, ints, texts, tsv, x,
          j, jb, b, u, ip, net, mac, pt, bx, bits, money_col, ch, t
     FROM public.every_type s WHERE s.id = (e.id - 10) % 4 + 1)
  WHERE e.id > 10;
INSERT INTO public.stable SELECT id + 10, bo, bt, ch, nm, i2, i4, tx, vc, bp, f4, f8, nu, mo, d, tm,
    ttz, ts, tstz, iv, u, js, jb, ip, ci, ma, bi, vb FROM public.stable;
UPDATE public.stable SET f8 = -f8, f4 = -f4, nu = nu / 7, mo = mo / 3, iv = iv / 3,
    tstz = tstz + interval '0.000001 s', tx = tx || 'x', bt = bt || '\x5c'::bytea WHERE id > 10;
INSERT INTO public.others SELECT id + 10, pt, bx, ls, nr, dr, tq, lsn, m8, fa, ta FROM public.others;
UPDATE public.others SET pt = point(pt[0] / 3, pt[1]), fa = fa || 0.1::float8 WHERE id = 11;
"#;

/// The many-types fixture as `major` takes it, without the partitioned `events` (moving
/// partitioned tables between majors is `versions`' subject; copy-cdc from a 10-12 source
/// publishes them differently). PostgreSQL 10 and 11 have no stored generated columns (the
/// column is plain there) and PostgreSQL 10 only knows `EXECUTE PROCEDURE` in a trigger.
fn fixture(major: u32) -> String {
    let mut sql = support::many_types(false, major);
    let start = sql
        .find("-- A 2-level partitioned table.")
        .expect("the fixture's partitioned table");
    let end = start
        + sql[start..]
            .find("-- Mixed-case names")
            .expect("the fixture's mixed-case names");
    sql.replace_range(start..end, "");
    if major < 12 {
        sql = sql
            .replace(
                "name_lc text GENERATED ALWAYS AS (lower(name)) STORED",
                "name_lc text",
            )
            .replace("EXECUTE FUNCTION", "EXECUTE PROCEDURE");
    }
    sql
}

/// The user tables of a database (ordinary ones, outside pgmove's schema), qualified.
const USER_TABLES: &str = "SELECT format('%I.%I', n.nspname, c.relname) FROM pg_class c \
     JOIN pg_namespace n ON n.oid = c.relnamespace \
     WHERE c.relkind = 'r' \
       AND n.nspname NOT IN ('pg_catalog', 'information_schema', 'pgmove') \
       AND n.nspname NOT LIKE 'pg\\_toast%' ORDER BY 1";

/// The columns of a table (its qualified name in `$TABLE`): name and type, in order, one per
/// line as `name<TAB>type`.
pub(crate) const COLUMNS: &str =
    "SELECT format('%I', attname) || E'\\t' || atttypid::regtype::text \
     FROM pg_attribute WHERE attrelid = '$TABLE'::regclass AND attnum > 0 AND NOT attisdropped \
     ORDER BY attnum";

/// A float's exact form, the same on every major: its binary send, as hex (`-0` apart from
/// `0`, every bit of the mantissa); a NaN as `NaN`, whatever its sign and payload bits, which
/// PostgreSQL neither compares nor writes as text (a NaN with the sign bit, `-'NaN'`, is
/// `NaN` in text and arrives as the plain one through every text path).
fn float8(e: &str) -> String {
    format!("CASE WHEN {e} = 'NaN' THEN 'NaN' ELSE encode(float8send({e}), 'hex') END")
}

/// The SQL expression giving a column's value in a form that is the same on every major.
pub(crate) fn exact(column: &str, type_name: &str) -> String {
    let point = |p: &str| {
        format!(
            "{} || ',' || {}",
            float8(&format!("({p})[0]")),
            float8(&format!("({p})[1]"))
        )
    };
    match type_name {
        "real" => format!(
            "CASE WHEN {column} = 'NaN' THEN 'NaN' ELSE encode(float4send({column}), 'hex') END"
        ),
        "double precision" => float8(column),
        "point" => point(column),
        "box" | "lseg" => format!(
            "{} || ';' || {}",
            point(&format!("({column})[0]")),
            point(&format!("({column})[1]"))
        ),
        "double precision[]" => format!(
            "(SELECT string_agg({}, ',' ORDER BY i) FROM unnest({column}) WITH ORDINALITY AS u(v, i))",
            float8("v")
        ),
        // The type's output function (`::text` would skip it for xml, and trim char(n)).
        _ => format!("CASE WHEN {column} IS NULL THEN NULL ELSE format('%s', {column}) END"),
    }
}

/// Every value of every user table of `src_db` on `src` and `dst_db` on `dst`, in [`exact`]
/// forms read under [`FIXED_SETTINGS`]: equal, table by table and column by column. Panics
/// naming the table, row and column of a difference.
fn assert_values_equal(src: &Cluster, src_db: &str, dst: &Cluster, dst_db: &str, when: &str) {
    let tables = src.psql(src_db, USER_TABLES);
    assert_eq!(
        tables,
        dst.psql(dst_db, USER_TABLES),
        "{when}: the tables differ"
    );
    for table in tables.lines() {
        let columns = src.psql(src_db, &COLUMNS.replace("$TABLE", table));
        assert_eq!(
            columns,
            dst.psql(dst_db, &COLUMNS.replace("$TABLE", table)),
            "{when}: the columns of {table} differ"
        );
        let (names, exprs): (Vec<&str>, Vec<String>) = columns
            .lines()
            .map(|l| {
                let (name, ty) = l.split_once('\t').expect("name and type");
                (name, exact(name, ty))
            })
            .unzip();
        let sql = format!(
            "{FIXED_SETTINGS} COPY (SELECT {} FROM {table}) TO STDOUT",
            exprs.join(", ")
        );
        let sorted = |text: String| {
            let mut lines: Vec<String> = text.lines().map(str::to_string).collect();
            lines.sort_unstable();
            lines
        };
        let (a, b) = (
            sorted(src.psql(src_db, &sql)),
            sorted(dst.psql(dst_db, &sql)),
        );
        assert_eq!(
            a.len(),
            b.len(),
            "{when}: {table} has {} rows on the source, {} on the target",
            a.len(),
            b.len()
        );
        for (x, y) in a.iter().zip(&b) {
            let (xs, ys): (Vec<&str>, Vec<&str>) =
                (x.split('\t').collect(), y.split('\t').collect());
            for (i, name) in names.iter().enumerate() {
                assert_eq!(
                    xs.get(i),
                    ys.get(i),
                    "{when}: {table} row {} column {name} differs",
                    xs[0]
                );
            }
        }
    }
}

/// The apply log's line naming the tables copied in binary (`binary=...`) and as text.
fn copy_formats(log: &str) -> (Vec<String>, Vec<String>) {
    let line = log
        .lines()
        .find(|l| l.contains("COPY format per table"))
        .unwrap_or_else(|| panic!("no COPY format line in the log\n{log}"));
    // `... binary=a.b,c.d text=e.f`: text is the last field; names may hold spaces.
    let list = |v: &str| -> Vec<String> {
        v.split(',')
            .filter(|t| !t.is_empty())
            .map(str::to_string)
            .collect()
    };
    let (_, rest) = line
        .split_once(" binary=")
        .unwrap_or_else(|| panic!("no binary= in {line}"));
    let (binary, text) = rest
        .rsplit_once(" text=")
        .unwrap_or_else(|| panic!("no text= in {line}"));
    (list(binary), list(text.trim_end()))
}

/// Moves the database between a source of `src_major` and a target of `dst_major` (`None`:
/// the machine's 15) both ways, and checks every value after each step. Returns the servers.
fn values_between(src_major: Option<u32>, dst_major: Option<u32>) -> (Cluster, Cluster) {
    let src = Cluster::start(Options {
        major: src_major,
        ..Options::logical()
    });
    let dst = Cluster::start(Options {
        major: dst_major,
        ..Options::default()
    });
    let major = |c: &Cluster| c.show("server_version_num").parse::<u32>().expect("number") / 10000;
    assert_eq!(major(&src), src_major.unwrap_or(15));
    assert_eq!(major(&dst), dst_major.unwrap_or(15));
    src.create_db(DB);
    src.psql(DB, &fixture(major(&src)));
    src.psql(DB, VALS);
    src.psql(DB, STABLE);
    src.psql(DB, OTHERS);
    hostile(&src, DB, SOURCE_HOSTILE);
    let target_money = other_monetary_locale();
    for db in [DB, "dr"] {
        dst.create_db(db);
        hostile(&dst, db, target_hostile(target_money));
    }
    let dir = tempfile::tempdir().expect("tempdir");

    // dump-restore, into database dr.
    let dr = dir.path().join("dr.yaml");
    std::fs::write(
        &dr,
        format!(
            "version: 1\nname: dr\nstrategy: dump-restore\nsource:\n  dsn: {}\n  password: {{env: SRC_PW}}\n  sslmode: disable\ntarget:\n  dsn: {}\n  password: {{env: DST_PW}}\n  sslmode: disable\n",
            src.uri_no_password(DB),
            dst.uri_no_password("dr")
        ),
    )
    .expect("write plan");
    let out = run(&["apply", dr.to_str().expect("utf8"), "--yes"], &src, &dst);
    assert_eq!(out.status.code(), Some(0), "dump-restore: {}", text(&out));
    assert_values_equal(&src, DB, &dst, "dr", "dump-restore");

    // copy-cdc: the load, changes during capture, the cutover (with its checksum
    // verification across the two majors). The keyless table replicated with REPLICA IDENTITY
    // FULL (the insert-only path is `versions`' subject).
    let plan = write_plan(
        dir.path(),
        "vv",
        &src,
        &dst,
        "cdc:\n  tables_without_key: replica-identity-full\n",
    );
    let p = plan.to_str().expect("utf8");
    let log = dir.path().join("apply.log");
    let mut child = start_apply(&plan, &src, &dst, &log);
    wait_loaded(&dst, "vv", &mut child, &log);
    assert_values_equal(&src, DB, &dst, DB, "after the load");
    // Binary COPY for the tables of types binary.rs allows across these majors, text for
    // those with one other type (reg*, geometric, ranges, user-defined types...).
    let (binary, as_text) = copy_formats(&read_log(&log));
    for t in [
        "public.stable",
        "public.flat",
        "sales.orders",
        "sales.customers",
    ] {
        assert!(
            binary.iter().any(|b| b == t),
            "{t} not copied in binary: {binary:?}"
        );
    }
    for t in ["public.every_type", "public.vals", "public.others"] {
        assert!(
            as_text.iter().any(|b| b == t),
            "{t} not copied as text: {as_text:?}"
        );
    }
    src.psql(DB, VALS_CHANGES);
    src.psql(DB, CHANGES);
    wait_caught_up(&src, &dst, "vv", &mut child, &log);
    assert_eq!(
        dst.psql(DB, "SELECT count(*) FROM public.every_type WHERE id > 10"),
        "4",
        "the changes arrived"
    );
    assert_values_equal(&src, DB, &dst, DB, "after change capture");
    let out = run(&["cutover", p, "--yes"], &src, &dst);
    assert_eq!(out.status.code(), Some(0), "cutover: {}", text(&out));
    let deadline = Instant::now() + Duration::from_secs(60);
    while child.try_wait().ok().flatten().is_none() {
        assert!(
            Instant::now() < deadline,
            "apply still runs after the cutover\n{}",
            read_log(&log)
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    assert_values_equal(&src, DB, &dst, DB, "after the cutover");
    // The sequences went over with the cutover.
    let seq = "SELECT last_value FROM public.invoice_no";
    assert_eq!(dst.psql(DB, seq), src.psql(DB, seq), "public.invoice_no");
    (src, dst)
}

/// On a PostgreSQL 10 source, `plan` of a copy-cdc into 15: a column of a type 12 removed is a
/// blocker (exit 2) with the `ALTER TABLE` that fixes it, and DDL capture a warning.
fn plan_refuses_removed_types(src: &Cluster, dst: &Cluster) {
    src.create_db("old");
    src.psql(
        "old",
        "CREATE TABLE public.log (id int PRIMARY KEY, at abstime, took reltime[], t text);",
    );
    dst.create_db("old");
    let dir = tempfile::tempdir().expect("tempdir");
    let plan = support::online::PlanYaml {
        db: "old",
        ..Default::default()
    }
    .write(dir.path(), "old", src, dst);
    let out = run(&["plan", plan.to_str().expect("utf8")], src, dst);
    let all = text(&out);
    assert_eq!(out.status.code(), Some(2), "{all}");
    for want in [
        "removed-types",
        "public.log.at (abstime), public.log.took (reltime)",
        r#"ALTER TABLE "public"."log" ALTER COLUMN "at" TYPE timestamptz; ALTER TABLE "public"."log" ALTER COLUMN "took" TYPE interval[];"#,
        "ddl-not-streamed",
        "from PostgreSQL 14 only",
    ] {
        assert!(all.contains(want), "{want:?} not in {all}");
    }
}

#[test]
fn from_10_to_15_every_value_arrives_exactly() {
    let (src, dst) = values_between(Some(10), None);
    plan_refuses_removed_types(&src, &dst);
}

#[test]
fn from_15_to_18_every_value_arrives_exactly() {
    let _servers = values_between(None, Some(18));
}
