//! Issue 15 (exact values on every pair): values arrive exactly whatever either database's
//! own output settings, through copy-cdc's load (text and binary COPY), change capture,
//! cutover and dump-restore, and `pgmove verify` agrees.

use crate::support;

use std::time::{Duration, Instant};

use support::online::{
    assert_ok, pair, read_log, run, start_apply, text, wait_caught_up, wait_loaded, write_plan, DB,
};
use support::Cluster;

/// A locale other than C for the target's `lc_monetary`, when the machine has one
/// (`localedef -i de_DE -f UTF-8 de_DE.UTF-8` makes it): its `money` text is `1.234,56 €`,
/// which the source's `$1,234.56` is not. Without one, C.utf8 (same text as C).
pub(crate) fn other_monetary_locale() -> &'static str {
    let out = std::process::Command::new("locale")
        .arg("-a")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).to_string())
        .unwrap_or_default();
    if out.lines().any(|l| l == "de_DE.utf8") {
        "de_DE.utf8"
    } else {
        eprintln!("no de_DE.utf8 locale: lc_monetary differs only as C against C.utf8");
        "C.utf8"
    }
}

/// Every value's exact form: the binary send of floats, money (its integer), intervals,
/// timestamps, dates and times; bytea as hex; reg* as the names they resolve to on that
/// server, schema-qualified.
pub(crate) const ROWS: &str = "SET search_path = pg_catalog; SELECT string_agg(format('%s|%s|%s|%s|%s|%s|%s|%s|%s|%s|%s', id,
        encode(float8send(f8), 'hex'), encode(float4send(f4), 'hex'), encode(cash_send(m), 'hex'),
        encode(interval_send(iv), 'hex'), encode(timestamptz_send(tstz), 'hex'), encode(date_send(d), 'hex'),
        encode(time_send(t), 'hex'), encode(b, 'hex'), rc, rt), E'\\n' ORDER BY id) FROM public.vals";

/// Schema `app` with table `other`, and table `vals`: float extremes, money, intervals,
/// timestamptz ±infinity, dates BC, times, bytea, and `regclass`/`regtype` naming objects in
/// two schemas; table `flat` with the columns of `vals` whose types have a binary form that
/// reads the same on every major (so it travels by binary COPY; the regclass column makes
/// `vals` travel as text).
pub(crate) const VALS: &str = r"CREATE SCHEMA app;
         CREATE TABLE app.other (id int PRIMARY KEY);
         CREATE TABLE vals (id int PRIMARY KEY, f8 float8, f4 float4, m money, iv interval,
                            tstz timestamptz, d date, t time, b bytea, rc regclass, rt regtype);
         INSERT INTO vals VALUES
          (1, 1e-308, 3.4028235e38, 1234567.89, '1 year 2 mons -3 days 04:05:06.789',
              '2026-03-29 01:30:00.000001+00', '2026-01-02', '23:59:59.999999', '\x00ff5c27',
              'public.vals', 'app.other'),
          (2, 0.1::float8 + 0.2, 1.17549435e-38, -0.01, '-1 day +2 hours', 'infinity',
              '0044-03-15 BC', '00:00:00', '\x', 'app.other', 'int4'),
          (3, 1.7976931348623157e308, 'NaN', -92233720368547758.08, '-178956970 years -7 mons',
              '1970-01-01 00:00:00+00', '1999-12-31', '12:00:00.5', NULL, 'pg_class', 'public.vals'),
          (4, '-0', '-0', 0, '3 days 00:00:00.000001', '2026-07-04 12:00:00-07', '2000-02-29',
              '01:02:03', '\x01', 'public.vals', 'float8'),
          (5, 'NaN', 'Infinity', 92233720368547758.07, '0', '-infinity', 'infinity', '24:00:00',
              '\xff', 'app.other', 'regclass'),
          (6, 'Infinity', '-Infinity', 1, '-00:00:00.000001', '2026-01-01 00:00:00+13:45',
              '-infinity', '00:00:00.000001', '\x5c', 'public.vals', 'text');
         CREATE TABLE flat (id int PRIMARY KEY, f8 float8, m money, iv interval);
         INSERT INTO flat SELECT id, f8, m, iv FROM vals;";

/// Changes to [`VALS`] during change capture: every row inserted again (ids + 10), three
/// updated with other values, `flat` doubled.
pub(crate) const VALS_CHANGES: &str =
    "INSERT INTO vals SELECT id + 10, f8, f4, m, iv, tstz, d, t, b, rc, rt FROM vals;
     UPDATE vals SET f8 = f8 / 3, f4 = f4 * 0.5, m = m / 3, iv = -iv,
                     tstz = tstz - interval '1 second', d = d + 1, b = b || '\\x2c'::bytea,
                     rc = 'app.other', rt = 'app.other' WHERE id <= 3;
     INSERT INTO flat SELECT id + 10, f8 / 7, m / 2, iv / 2 FROM flat;";

/// The source database's hostile defaults (for [`hostile`]).
pub(crate) const SOURCE_HOSTILE: [&str; 7] = [
    "SQL, DMY",
    "sql_standard",
    "0",
    "escape",
    "Pacific/Chatham",
    "C",
    "app, public",
];

/// A target database's hostile defaults (for [`hostile`]), `money` under lc_monetary `money`.
pub(crate) fn target_hostile(money: &str) -> [&str; 7] {
    [
        "German, MDY",
        "iso_8601",
        "-15",
        "escape",
        "America/St_Johns",
        money,
        "public",
    ]
}

/// Hostile defaults for a database: every output setting away from what pgmove reads.
pub(crate) fn hostile(c: &Cluster, db: &str, settings: [&str; 7]) {
    let [date, interval, digits, bytea, tz, money, path] = settings;
    c.psql(
        db,
        &format!(
            "ALTER DATABASE {db} SET DateStyle = '{date}';
             ALTER DATABASE {db} SET IntervalStyle = {interval};
             ALTER DATABASE {db} SET extra_float_digits = {digits};
             ALTER DATABASE {db} SET bytea_output = {bytea};
             ALTER DATABASE {db} SET TimeZone = '{tz}';
             ALTER DATABASE {db} SET lc_monetary = '{money}';
             ALTER DATABASE {db} SET search_path = {path};"
        ),
    );
}

#[test]
fn values_arrive_exactly_under_hostile_session_defaults_on_both_sides() {
    let (src, dst) = pair();
    let target_money = other_monetary_locale();
    // OIDs on the source move past the target's, so a regclass copied as an OID would name
    // nothing (or something else) there.
    src.psql(
        DB,
        "DO $$ BEGIN FOR i IN 1..60 LOOP EXECUTE format('CREATE TABLE pad%s ()', i);
                 EXECUTE format('DROP TABLE pad%s', i); END LOOP; END $$;",
    );
    src.psql(DB, VALS);
    hostile(&src, DB, SOURCE_HOSTILE);
    dst.create_db("dr");
    for db in [DB, "dr"] {
        hostile(&dst, db, target_hostile(target_money));
    }
    let want = src.psql(DB, ROWS);
    assert_eq!(want.lines().count(), 6, "{want}");
    let flat = "SELECT string_agg(format('%s|%s|%s|%s', id, encode(float8send(f8), 'hex'),
        encode(cash_send(m), 'hex'), encode(interval_send(iv), 'hex')), E'\\n' ORDER BY id) FROM public.flat";
    let want_flat = src.psql(DB, flat);
    let dir = tempfile::tempdir().expect("tempdir");

    // dump-restore, into database dr.
    let dr = dir.path().join("drv.yaml");
    std::fs::write(
        &dr,
        format!(
            "version: 1\nname: drv\nstrategy: dump-restore\nsource:\n  dsn: postgres://postgres@127.0.0.1:{}/{DB}\n  password: {{env: SRC_PW}}\n  sslmode: disable\ntarget:\n  dsn: postgres://postgres@127.0.0.1:{}/dr\n  password: {{env: DST_PW}}\n  sslmode: disable\n",
            src.port, dst.port
        ),
    )
    .expect("write plan");
    let dr = dr.to_str().expect("utf8");
    assert_ok(&run(&["apply", dr, "--yes"], &src, &dst));
    assert_eq!(dst.psql("dr", ROWS), want, "dump-restore");
    assert_eq!(dst.psql("dr", flat), want_flat, "dump-restore");
    assert_ok(&run(&["verify", dr], &src, &dst));

    // copy-cdc: the load, changes during capture, the cutover.
    let plan = write_plan(dir.path(), "vals", &src, &dst, "");
    let log = dir.path().join("apply.log");
    let mut child = start_apply(&plan, &src, &dst, &log);
    wait_loaded(&dst, "vals", &mut child, &log);
    assert_eq!(dst.psql(DB, ROWS), want, "after the load");
    assert_eq!(dst.psql(DB, flat), want_flat, "after the load");
    src.psql(DB, VALS_CHANGES);
    wait_caught_up(&src, &dst, "vals", &mut child, &log);
    let want = src.psql(DB, ROWS);
    assert_eq!(want.lines().count(), 12, "{want}");
    assert_eq!(
        dst.psql(DB, ROWS),
        want,
        "after capture\n{}",
        read_log(&log)
    );
    let p = plan.to_str().expect("utf8");
    let out = run(&["cutover", p, "--yes"], &src, &dst);
    assert_ok(&out);
    let deadline = Instant::now() + Duration::from_secs(30);
    while child.try_wait().ok().flatten().is_none() {
        assert!(
            Instant::now() < deadline,
            "apply still runs after the cutover\n{}",
            read_log(&log)
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    assert_eq!(dst.psql(DB, ROWS), want, "after the cutover");
    assert_eq!(dst.psql(DB, flat), src.psql(DB, flat), "after the cutover");
    let out = run(&["verify", p], &src, &dst);
    assert!(out.status.success(), "verify: {}", text(&out));
}
