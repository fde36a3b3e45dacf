//! dump-restore and copy-cdc end to end as the least-privileged roles Amazon RDS and Aurora
//! give, into a simulated Aurora (`support::managed`) as its master user, who is not a
//! superuser: the many-types database with partitions, PostGIS and a large object, then
//! `pgmove verify` identical, and `pgmove cleanup` removing what pgmove created (slot,
//! publication, its schema) and nothing else.
//!
//! - copy-cdc from a self-managed source as `mig`, a plain role with REPLICATION that owns the
//!   database and its tables (what `CREATE PUBLICATION ... FOR TABLE` needs), under writes
//!   during change capture, then `pgmove cutover`.
//! - dump-restore from a simulated RDS source as the migrating role, which may only read
//!   (`grant_read`).

use crate::support;
use crate::support::online::text;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output};
use std::time::{Duration, Instant};

use serde_json::Value;
use support::managed::{Flavour, Managed, MASTER, MIGRATOR};
use support::{Cluster, Options};

const DB: &str = "shop";
/// The Aurora database the copy-cdc move from the simulated RDS goes to.
const CDC_DB: &str = "shop_cdc";
const MIG_PW: &str = "mig-e2e-secret";
/// The tables of tests/fixtures/many_types.sql that hold rows: partition leaves, not their
/// parents.
const FIXTURE_TABLES: usize = 9;

/// A plan from `src_user@src_port` to the master user on `dst` (database [`DB`]), passwords
/// from `SRC_PW` and `DST_PW`.
fn write_plan(
    dir: &Path,
    name: &str,
    (src_port, src_user): (u16, &str),
    (dst, dst_db): (&Managed, &str),
    extra: &str,
) -> PathBuf {
    let path = dir.join(format!("{name}.yaml"));
    std::fs::write(
        &path,
        format!(
            "version: 1\nname: {name}\nsource:\n  dsn: postgres://{src_user}@127.0.0.1:{src_port}/{DB}\n  password: {{env: SRC_PW}}\n  sslmode: disable\ntarget:\n  dsn: {}\n  password: {{env: DST_PW}}\n  sslmode: disable\n{extra}",
            dst.uri_as(MASTER, dst_db)
        ),
    )
    .expect("write plan");
    path
}

/// pgmove with `args`, the two passwords in `SRC_PW`/`DST_PW`, and no other.
fn pgmove(args: &[&str], src_pw: &str, dst_pw: &str) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_pgmove"));
    c.args(args)
        .env("SRC_PW", src_pw)
        .env("DST_PW", dst_pw)
        .env("NO_COLOR", "1")
        .env_remove("PGPASSWORD");
    c
}

/// Runs pgmove; panics with its output unless it exits `code`, or when a password shows.
fn run_expect(args: &[&str], src_pw: &str, dst_pw: &str, code: i32) -> Output {
    let out = pgmove(args, src_pw, dst_pw).output().expect("run pgmove");
    assert_eq!(out.status.code(), Some(code), "{args:?}: {}", text(&out));
    for pw in [src_pw, dst_pw] {
        assert!(
            !text(&out).contains(pw),
            "a password in the output of {args:?}"
        );
    }
    out
}

fn json(out: &Output) -> Value {
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("not JSON ({e}): {}", text(out)))
}

/// pgmove's objects on a server: its slots, publications and schema.
fn pgmove_objects(c: &Cluster) -> String {
    pgmove_objects_in(c, DB)
}

/// [`pgmove_objects`] of database `db`.
fn pgmove_objects_in(c: &Cluster, db: &str) -> String {
    c.psql(
        db,
        "SELECT coalesce(string_agg(x, ', ' ORDER BY x), '') FROM (
           SELECT 'slot ' || slot_name AS x FROM pg_replication_slots WHERE slot_name LIKE 'pgmove%'
           UNION ALL SELECT 'publication ' || pubname FROM pg_publication WHERE pubname LIKE 'pgmove%'
           UNION ALL SELECT 'schema ' || nspname FROM pg_namespace WHERE nspname = 'pgmove') s",
    )
}

/// What is not pgmove's on a server: extensions, schemas, relations with their owners, and
/// large objects.
fn user_objects(c: &Cluster) -> String {
    user_objects_in(c, DB)
}

/// [`user_objects`] of database `db`.
fn user_objects_in(c: &Cluster, db: &str) -> String {
    c.psql(
        db,
        "SELECT string_agg(x, ', ' ORDER BY x) FROM (
           SELECT 'extension ' || extname AS x FROM pg_extension
           UNION ALL SELECT 'schema ' || nspname FROM pg_namespace
             WHERE nspname NOT LIKE 'pg\\_%' AND nspname NOT IN ('information_schema', 'pgmove')
           UNION ALL SELECT c.relkind::text || ' ' || n.nspname || '.' || c.relname || ' ' || pg_get_userbyid(c.relowner)
             FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
            WHERE n.nspname NOT LIKE 'pg\\_%' AND n.nspname NOT IN ('information_schema', 'pgmove')
           UNION ALL SELECT 'large object ' || oid FROM pg_largeobject_metadata) s",
    )
}

/// The platform `pgmove plan` reports for a simulated server.
fn platform(m: &Managed) -> &'static str {
    match m.flavour {
        Flavour::Rds => "rds",
        Flavour::Aurora => "aurora",
    }
}

/// Whether `user` (with `password`) is a superuser on `m`, asked over a URI with the password.
fn is_superuser(m: &Managed, user: &str, password: &str) -> bool {
    let out = Command::new(support::bindir().join("psql"))
        .args(["-X", "-A", "-t", "-d"])
        .arg(format!(
            "{}?sslmode=disable",
            m.uri_with_password(user, password, DB)
        ))
        .args([
            "-c",
            "SELECT rolsuper FROM pg_roles WHERE rolname = current_user",
        ])
        .env_remove("PGPASSWORD")
        .output()
        .expect("psql");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim() == "t"
}

/// The artifacts a cleanup report (JSON) says were dropped, as `side kind name`, sorted.
fn dropped(report: &Value) -> Vec<String> {
    let mut out: Vec<String> = report["artifacts"]
        .as_array()
        .unwrap_or_else(|| panic!("no artifacts: {report:#}"))
        .iter()
        .map(|a| format!("{} {} {}", a["side"], a["kind"], a["name"]).replace('"', ""))
        .collect();
    out.sort();
    out
}

/// The moved relations (tables, partitions, sequences, views, materialized views; not an
/// extension's) on the target that the master user does not own.
fn not_the_masters(c: &Cluster, db: &str) -> String {
    c.psql(
        db,
        "SELECT coalesce(string_agg(n.nspname || '.' || c.relname || ' ' || pg_get_userbyid(c.relowner), ', '), '')
           FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
          WHERE n.nspname IN ('public', 'sales', 'Mixed Case') AND c.relkind IN ('r', 'p', 'S', 'm', 'v')
            AND pg_get_userbyid(c.relowner) <> 'master'
            AND NOT EXISTS (SELECT 1 FROM pg_depend d
                             WHERE d.classid = 'pg_class'::regclass AND d.objid = c.oid AND d.deptype = 'e')",
    )
}

/// The many-types fixture (tests/fixtures/many_types.sql) without its `CREATE EXTENSION`,
/// which whoever may create PostGIS runs first.
fn fixture_without_postgis() -> String {
    let sql = include_str!("../fixtures/many_types.sql");
    let line = "CREATE EXTENSION IF NOT EXISTS postgis;";
    assert!(sql.contains(line), "the fixture changed: {line} missing");
    sql.replace(line, "")
}

/// A simulated Aurora with database [`DB`] owned by the master user, and PostGIS in it.
fn aurora_target() -> Managed {
    let dst = Managed::start(Flavour::Aurora, Options::default());
    aurora_db(&dst, DB);
    dst
}

/// Database `db` on `dst`, owned by the master user, with PostGIS.
fn aurora_db(dst: &Managed, db: &str) {
    dst.create_db(db);
    // The master user runs this on Aurora (postgis is in rds.extensions); locally only a
    // superuser may create PostGIS.
    dst.as_master_on_rds(db, "CREATE EXTENSION postgis");
}

/// Polls `done` every 100 ms until it holds, for at most 3 minutes; panics with the apply's
/// log when the apply ends first or time runs out (`what`: what was awaited).
fn wait_while_applying(child: &mut Child, log: &Path, what: &str, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(180);
    loop {
        if done() {
            return;
        }
        if let Ok(Some(status)) = child.try_wait() {
            panic!(
                "apply ended: {status}\n{}",
                std::fs::read_to_string(log).unwrap_or_default()
            );
        }
        assert!(
            Instant::now() < deadline,
            "{what}\n{}",
            std::fs::read_to_string(log).unwrap_or_default()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Waits until the plan's run on the target is in `phases`, watching the apply.
fn wait_phase(
    (dst, db): (&Cluster, &str),
    plan: &str,
    phases: &[&str],
    child: &mut Child,
    log: &Path,
) {
    wait_while_applying(child, log, &format!("no phase {phases:?}"), || {
        let out = dst.psql_output(
            db,
            &format!("SELECT phase FROM pgmove.runs WHERE plan_name = '{plan}'"),
        );
        phases.contains(&String::from_utf8_lossy(&out.stdout).trim())
    });
}

/// Waits until the target applied everything the source has written now. A last write
/// (`last`, to a table of the plan) commits after that position, so that the target's
/// progress passes it as soon as that commit is applied rather than at a later keepalive.
pub fn wait_caught_up(
    src: &Cluster,
    (dst, db): (&Cluster, &str),
    (plan, last): (&str, &str),
    child: &mut Child,
    log: &Path,
) {
    let goal = src.psql(DB, "SELECT pg_current_wal_insert_lsn()");
    src.psql(DB, last);
    let what = format!("change capture did not catch up to {goal}");
    wait_while_applying(child, log, &what, || {
        let out = dst.psql_output(
            db,
            &format!(
                "SELECT applied_lsn >= '{goal}' FROM pgmove.progress WHERE plan_name = '{plan}'"
            ),
        );
        String::from_utf8_lossy(&out.stdout).trim() == "t"
    });
}

#[test]
fn copy_cdc_from_a_least_privileged_source_into_aurora_as_its_master_user() {
    // Source: self-managed; `mig` has REPLICATION and pg_signal_backend (the fence), owns the
    // database and every table (CREATE PUBLICATION ... FOR TABLE needs the owner); PostGIS
    // by the superuser.
    let src = Cluster::start(Options::logical());
    src.create_db(DB);
    src.psql(
        DB,
        &format!(
            "CREATE ROLE mig LOGIN REPLICATION PASSWORD '{MIG_PW}';
             GRANT pg_signal_backend TO mig;
             ALTER DATABASE {DB} OWNER TO mig;
             CREATE EXTENSION postgis;"
        ),
    );
    src.psql(DB, &format!("SET ROLE mig;\n{}", fixture_without_postgis()));
    let dst = aurora_target();
    let dst_pw = dst.master_password.clone();
    let dir = tempfile::tempdir().expect("tempdir");
    let plan = write_plan(
        dir.path(),
        "mg_cdc",
        (src.port, "mig"),
        (&dst, DB),
        "strategy: copy-cdc\njobs: 2\nowner: target-user\ncdc:\n  ddl: ignore\n  tables_without_key: insert-only\n",
    );
    let p = plan.to_str().expect("utf8");

    let out = run_expect(&["plan", p, "--format", "json"], MIG_PW, &dst_pw, 0);
    let report = json(&out);
    assert_eq!(report["ready"], true, "{report:#}");
    assert_eq!(report["target"]["platform"], platform(&dst), "{report:#}");
    assert!(!is_superuser(&dst, MASTER, &dst_pw));

    // apply: the load, then change capture, until cutover.
    let log = dir.path().join("apply.log");
    let stdout = dir.path().join("apply.json");
    let mut child = pgmove(&["apply", p, "--yes", "--format", "json"], MIG_PW, &dst_pw)
        .stdout(std::fs::File::create(&stdout).expect("stdout file"))
        .stderr(std::fs::File::create(&log).expect("log file"))
        .spawn()
        .expect("start apply");
    wait_phase(
        (&dst.cluster, DB),
        "mg_cdc",
        &["replicating"],
        &mut child,
        &log,
    );
    // Writes by the source's role during change capture, in several tables and types.
    let w = |sql: &str| {
        let out = Command::new(support::bindir().join("psql"))
            .args(["-X", "-q", "-v", "ON_ERROR_STOP=1", "-h", "127.0.0.1"])
            .args([
                "-p",
                &src.port.to_string(),
                "-U",
                "mig",
                "-d",
                DB,
                "-c",
                sql,
            ])
            .env("PGPASSWORD", MIG_PW)
            .env("PGSSLMODE", "disable")
            .output()
            .expect("psql");
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    };
    w("INSERT INTO sales.orders (customer_id, amount) SELECT 1 + g % 200, g FROM generate_series(1, 300) g;
       UPDATE sales.orders SET amount = amount + 1 WHERE id % 10 = 0;
       DELETE FROM sales.orders WHERE id % 97 = 0;");
    w("INSERT INTO public.events SELECT g, 'us', DATE '2026-03-01', '{\"w\": 1}' FROM generate_series(10001, 10200) g;
       UPDATE public.events SET payload = '{\"moved\": true}' WHERE id % 50 = 1;");
    w("INSERT INTO public.places (name, geom) VALUES ('berlin', ST_SetSRID(ST_MakePoint(13.4, 52.5), 4326));
       UPDATE public.every_type SET jb = '{\"changed\": [1, 2]}', tstz = '2026-12-06 12:00+00' WHERE id = 2;
       INSERT INTO public.no_key VALUES (9, 'nine');
       SELECT nextval('public.invoice_no');");
    wait_caught_up(
        &src,
        (&dst.cluster, DB),
        (
            "mg_cdc",
            "INSERT INTO sales.customers (name) VALUES ('the last write')",
        ),
        &mut child,
        &log,
    );

    // cutover as the same roles: fence, last changes, sequences, verify.
    let out = run_expect(
        &["cutover", p, "--yes", "--format", "json"],
        MIG_PW,
        &dst_pw,
        0,
    );
    let cut = json(&out);
    assert_eq!(cut["state"], "live", "{cut:#}");
    assert_eq!(cut["verify_identical"], true, "{cut:#}");
    assert_eq!(cut["source_fenced"], true, "{cut:#}");
    let status = child.wait().expect("apply ends after cutover");
    assert!(
        status.success(),
        "{}",
        std::fs::read_to_string(&log).unwrap_or_default()
    );
    let summary: Value = serde_json::from_slice(&std::fs::read(&stdout).expect("apply stdout"))
        .unwrap_or_else(|e| panic!("apply's summary is not JSON ({e})"));
    assert_eq!(summary["strategy"], "copy-cdc", "{summary:#}");
    assert_eq!(
        summary["outcome"]["tables_copied"], FIXTURE_TABLES,
        "{summary:#}"
    );
    assert!(
        summary["cdc"]["changes"].as_u64().unwrap_or(0) > 0,
        "{summary:#}"
    );

    let out = run_expect(&["verify", p, "--format", "json"], MIG_PW, &dst_pw, 0);
    assert_eq!(json(&out)["identical"], true, "{}", text(&out));
    // The source's role on the target is the master user: it owns what it restored.
    assert_eq!(not_the_masters(&dst.cluster, DB), "");
    assert_eq!(
        dst.cluster.psql(DB, "SELECT count(*) FROM sales.orders"),
        src.psql(DB, "SELECT count(*) FROM sales.orders")
    );

    // cleanup removes what pgmove created on both servers, as these roles, and nothing else.
    assert_eq!(
        pgmove_objects(&src),
        "publication pgmove_mg_cdc, publication pgmove_mg_cdc_insert_only, slot pgmove_mg_cdc"
    );
    assert_eq!(pgmove_objects(&dst.cluster), "schema pgmove");
    let (src_user, dst_user) = (user_objects(&src), user_objects(&dst.cluster));
    assert!(dst_user.contains("extension postgis"), "{dst_user}");
    let out = run_expect(&["cleanup", p, "--format", "json"], MIG_PW, &dst_pw, 0);
    let report = json(&out);
    assert_eq!(
        report["artifacts"].as_array().map(Vec::len),
        Some(4),
        "{report:#}"
    );
    assert_eq!(pgmove_objects(&src), "");
    assert_eq!(pgmove_objects(&dst.cluster), "");
    assert_eq!(
        user_objects(&src),
        src_user,
        "cleanup touched a source object"
    );
    assert_eq!(
        user_objects(&dst.cluster),
        dst_user,
        "cleanup touched a target object"
    );
}

#[test]
fn dump_restore_and_copy_cdc_from_a_simulated_rds_as_the_migrating_role_into_aurora() {
    // Source: a simulated RDS; the master user made the database (PostGIS through the
    // allowlist: locally a superuser stands for the master) and an application role `app`
    // that owns the tables; the migrating role may only read them, at first.
    let src = Managed::start(Flavour::Rds, Options::default());
    src.create_db(DB);
    // The master user runs this on RDS (postgis is in rds.extensions).
    src.as_master_on_rds(DB, "CREATE EXTENSION postgis");
    src.psql_master(
        DB,
        &format!(
            "CREATE ROLE app NOLOGIN; GRANT app TO {MASTER};
             GRANT CREATE ON DATABASE {DB} TO app; GRANT CREATE ON SCHEMA public TO app;"
        ),
    );
    src.psql_master(DB, &format!("SET ROLE app;\n{}", fixture_without_postgis()));
    let src_pw = src.migrator_password.clone();
    let dst = aurora_target();
    let dst_pw = dst.master_password.clone();
    let dir = tempfile::tempdir().expect("tempdir");
    let plan = write_plan(
        dir.path(),
        "mg_dump",
        (src.cluster.port, MIGRATOR),
        (&dst, DB),
        "strategy: dump-restore\njobs: 2\nowner: target-user\n",
    );
    let p = plan.to_str().expect("utf8");

    // Before the grants, apply refuses, and a script reads why from its JSON (exit 2).
    let out = run_expect(
        &["apply", p, "--yes", "--format", "json"],
        &src_pw,
        &dst_pw,
        2,
    );
    let blocked = json(&out);
    assert_eq!(blocked["ready"], false, "{blocked:#}");
    let select: Vec<&Value> = blocked["findings"]
        .as_array()
        .expect("findings")
        .iter()
        .filter(|f| f["severity"] == "blocker" && f["check"] == "source-select")
        .collect();
    assert_eq!(select.len(), 1, "{blocked:#}");
    assert!(
        select[0]["fix"]
            .as_str()
            .unwrap_or_default()
            .contains("GRANT SELECT"),
        "{blocked:#}"
    );
    assert_eq!(pgmove_objects(&dst.cluster), "", "a blocked apply wrote");

    src.grant_read(DB);
    // What an RDS user grants the migrating role to read large objects.
    src.psql_master(
        DB,
        &format!(
            "DO $$DECLARE o oid; BEGIN FOR o IN SELECT oid FROM pg_largeobject_metadata LOOP
               EXECUTE format('GRANT SELECT ON LARGE OBJECT %s TO {MIGRATOR}', o); END LOOP; END$$"
        ),
    );

    let out = run_expect(&["plan", p, "--format", "json"], &src_pw, &dst_pw, 0);
    let report = json(&out);
    assert_eq!(report["ready"], true, "{report:#}");
    assert_eq!(report["source"]["platform"], platform(&src), "{report:#}");
    assert_eq!(report["target"]["platform"], platform(&dst), "{report:#}");
    assert!(!is_superuser(&src, MIGRATOR, &src_pw));
    assert!(!is_superuser(&dst, MASTER, &dst_pw));
    let out = run_expect(
        &["apply", p, "--yes", "--format", "json"],
        &src_pw,
        &dst_pw,
        0,
    );
    let summary = json(&out);
    assert_eq!(summary["strategy"], "dump-restore", "{summary:#}");
    // The fixture's 9 tables with rows (partition leaves, not their parents); PostGIS's
    // spatial_ref_sys, which the master's extension owns on the target, has no rows of the
    // source's own to restore and is left out rather than failing the restore.
    assert_eq!(
        summary["outcome"]["tables_restored"], FIXTURE_TABLES,
        "{summary:#}"
    );
    assert!(summary["elapsed_secs"].as_f64().is_some(), "{summary:#}");

    let out = run_expect(&["verify", p, "--format", "json"], &src_pw, &dst_pw, 0);
    assert_eq!(json(&out)["identical"], true, "{}", text(&out));
    assert_eq!(not_the_masters(&dst.cluster, DB), "");
    assert_eq!(
        dst.cluster
            .psql(DB, "SELECT count(*) FROM pg_largeobject_metadata"),
        "1"
    );

    // Nothing of pgmove's is left on the source; cleanup removes its schema on the target.
    assert_eq!(pgmove_objects(&src.cluster), "");
    let (src_user, dst_user) = (user_objects(&src.cluster), user_objects(&dst.cluster));
    let out = run_expect(&["cleanup", p, "--format", "json"], &src_pw, &dst_pw, 0);
    // Dropped by the master user, who created it.
    assert_eq!(dropped(&json(&out)), ["target schema pgmove"]);
    assert_eq!(pgmove_objects(&dst.cluster), "");
    assert_eq!(user_objects(&src.cluster), src_user);
    assert_eq!(user_objects(&dst.cluster), dst_user);

    // copy-cdc from the same RDS source into a new Aurora database. CREATE PUBLICATION ...
    // FOR TABLE needs the tables' owner and CREATE on the database: the master user gives the
    // migrating role the application role's rights (not its own, which are rds_superuser's).
    // The database stays the master's, so the cutover fence (ALTER DATABASE) is not the
    // migrating role's to set: `fence: none`, the writes stop before cutover.
    src.psql_master(
        DB,
        &format!("GRANT app TO {MIGRATOR}; GRANT CREATE ON DATABASE {DB} TO {MIGRATOR};"),
    );
    aurora_db(&dst, CDC_DB);
    let plan = write_plan(
        dir.path(),
        "mg_rds_cdc",
        (src.cluster.port, MIGRATOR),
        (&dst, CDC_DB),
        "strategy: copy-cdc\njobs: 2\nowner: target-user\ncdc:\n  ddl: ignore\n  tables_without_key: insert-only\ncutover:\n  fence: none\n",
    );
    let p = plan.to_str().expect("utf8");
    let log = dir.path().join("apply-cdc.log");
    let mut child = pgmove(&["apply", p, "--yes", "--format", "json"], &src_pw, &dst_pw)
        .stdout(std::process::Stdio::null())
        .stderr(std::fs::File::create(&log).expect("log file"))
        .spawn()
        .expect("start apply");
    wait_phase(
        (&dst.cluster, CDC_DB),
        "mg_rds_cdc",
        &["replicating"],
        &mut child,
        &log,
    );
    // The application writes (as its role, through the master user here).
    src.psql_master(
        DB,
        "SET ROLE app;
         INSERT INTO sales.orders (customer_id, amount) SELECT 1 + g % 200, g FROM generate_series(1, 100) g;
         UPDATE public.places SET name = upper(name);
         DELETE FROM public.events WHERE id % 100 = 0;",
    );
    wait_caught_up(
        &src.cluster,
        (&dst.cluster, CDC_DB),
        (
            "mg_rds_cdc",
            "SET ROLE app; INSERT INTO sales.customers (name) VALUES ('the last write')",
        ),
        &mut child,
        &log,
    );
    let out = run_expect(
        &["cutover", p, "--yes", "--format", "json"],
        &src_pw,
        &dst_pw,
        0,
    );
    let cut = json(&out);
    assert_eq!(cut["state"], "live", "{cut:#}");
    assert_eq!(cut["verify_identical"], true, "{cut:#}");
    let status = child.wait().expect("apply ends after cutover");
    assert!(
        status.success(),
        "{}",
        std::fs::read_to_string(&log).unwrap_or_default()
    );
    let out = run_expect(&["verify", p, "--format", "json"], &src_pw, &dst_pw, 0);
    assert_eq!(json(&out)["identical"], true, "{}", text(&out));
    assert_eq!(not_the_masters(&dst.cluster, CDC_DB), "");
    let src_user = user_objects(&src.cluster);
    let dst_user = user_objects_in(&dst.cluster, CDC_DB);
    let out = run_expect(&["cleanup", p, "--format", "json"], &src_pw, &dst_pw, 0);
    // Each dropped by the role that created it: the slot and publications by the migrating
    // role on the source, pgmove's schema by the master user on the target.
    assert_eq!(
        dropped(&json(&out)),
        [
            "source publication pgmove_mg_rds_cdc",
            "source publication pgmove_mg_rds_cdc_insert_only",
            "source replication slot pgmove_mg_rds_cdc",
            "target schema pgmove",
        ]
    );
    assert_eq!(pgmove_objects(&src.cluster), "");
    assert_eq!(pgmove_objects_in(&dst.cluster, CDC_DB), "");
    assert_eq!(user_objects(&src.cluster), src_user);
    assert_eq!(user_objects_in(&dst.cluster, CDC_DB), dst_user);

    // A spatial reference system of the source's own in spatial_ref_sys (a row pg_dump dumps):
    // the target's table is the extension owner's, so apply stops before the data with the
    // GRANT that owner runs, rather than fail on permission denied mid-restore.
    src.as_master_on_rds(
        DB,
        "INSERT INTO spatial_ref_sys (srid, auth_name, auth_srid, srtext, proj4text)
         VALUES (990001, 'pgmove', 990001, '', '+proj=longlat +datum=WGS84 +no_defs')",
    );
    aurora_db(&dst, "shop_srid");
    let plan = write_plan(
        dir.path(),
        "mg_srid",
        (src.cluster.port, MIGRATOR),
        (&dst, "shop_srid"),
        "strategy: dump-restore\njobs: 2\nowner: target-user\n",
    );
    let out = run_expect(
        &["apply", plan.to_str().expect("utf8"), "--yes"],
        &src_pw,
        &dst_pw,
        1,
    );
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("TABLE DATA public.spatial_ref_sys")
            && err.contains("the source has 1 row(s) of its own")
            && err.contains(
                "GRANT INSERT, UPDATE, DELETE ON \"public\".\"spatial_ref_sys\" TO \"master\""
            ),
        "{err}"
    );
    assert_eq!(
        dst.cluster
            .psql("shop_srid", "SELECT count(*) FROM sales.orders"),
        "0",
        "the data step ran"
    );
}

/// The application's password on the simulated RDS source of
/// [`a_verified_cutover_from_rds_into_aurora_as_the_migrating_roles_under_writes`].
const APP_PW: &str = "app-e2e-secret";

/// The application's writes, until its session ends: an order updated and a customer added
/// every 20 ms, each its own transaction.
const WRITER: &str = "DO $$BEGIN FOR i IN 1..15000 LOOP
  UPDATE sales.orders SET amount = amount + 1 WHERE id = 1 + i % 50;
  INSERT INTO sales.customers (name) VALUES ('writer ' || i);
  COMMIT; PERFORM pg_sleep(0.02); END LOOP; END$$";

/// Starts a psql session on `src` as `user` running `sql`, its output to `log`: a writer that
/// runs until it ends or its session is terminated.
fn start_writer(src: &Managed, (user, password): (&str, &str), sql: &str, log: &Path) -> Child {
    Command::new(support::bindir().join("psql"))
        .args(["-X", "-q", "-v", "ON_ERROR_STOP=1", "-h", "127.0.0.1"])
        .args(["-p", &src.cluster.port.to_string(), "-U", user, "-d", DB])
        .args(["-c", sql])
        .env("PGPASSWORD", password)
        .env("PGSSLMODE", "disable")
        .stdout(std::process::Stdio::null())
        .stderr(std::fs::File::create(log).expect("writer log"))
        .spawn()
        .expect("start psql")
}

/// Starts `pgmove cutover --yes --format json` held at `cutover-pre-verified` (the verification
/// ahead of the fence done, the fence not yet set) until `resume` exists; returns once it is
/// held there, with the files of its stdout (the JSON report) and stderr.
fn cutover_held(
    p: &str,
    (src_pw, dst_pw): (&str, &str),
    dir: &Path,
    name: &str,
    resume: &Path,
) -> (Child, PathBuf, PathBuf) {
    let (stdout, log) = (
        dir.join(format!("{name}.json")),
        dir.join(format!("{name}.log")),
    );
    let mut child = pgmove(&["cutover", p, "--yes", "--format", "json"], src_pw, dst_pw)
        .env("PGMOVE_TEST_PAUSE", "cutover-pre-verified")
        .env("PGMOVE_TEST_RESUME_FILE", resume)
        .stdout(std::fs::File::create(&stdout).expect("stdout file"))
        .stderr(std::fs::File::create(&log).expect("log file"))
        .spawn()
        .expect("start cutover");
    wait_while_applying(
        &mut child,
        &log,
        "the cutover did not verify ahead of the fence",
        || {
            std::fs::read_to_string(&log)
                .unwrap_or_default()
                .contains("test pause at cutover-pre-verified")
        },
    );
    (child, stdout, log)
}

/// Lets a held cutover go on and returns its exit code and JSON report; panics when a password
/// shows in its output.
fn finish_cutover(
    mut child: Child,
    (stdout, log): (&Path, &Path),
    resume: &Path,
    passwords: &[&str],
) -> (Option<i32>, Value) {
    std::fs::write(resume, "go").expect("resume file");
    let status = child.wait().expect("cutover ends");
    let (out, err) = (
        std::fs::read_to_string(stdout).unwrap_or_default(),
        std::fs::read_to_string(log).unwrap_or_default(),
    );
    for pw in passwords {
        assert!(
            !out.contains(pw) && !err.contains(pw),
            "a password in the cutover's output"
        );
    }
    let report = serde_json::from_str(&out)
        .unwrap_or_else(|e| panic!("the cutover's report is not JSON ({e}): {out}\n{err}"));
    (status.code(), report)
}

/// Waits (at most a minute) until `sql` on the Aurora database returns `want`.
fn wait_target(dst: &Managed, sql: &str, want: &str) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while dst.cluster.psql(DB, sql) != want {
        assert!(Instant::now() < deadline, "{sql} never returned {want}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// The text of file `path`, empty when there is none.
fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_default()
}

/// Rows the writer of the verified cutover committed so far.
fn written(src: &Managed) -> i64 {
    src.cluster
        .psql(
            DB,
            "SELECT count(*) FROM sales.customers WHERE name LIKE 'writer %'",
        )
        .parse()
        .expect("a count")
}

#[test]
fn a_verified_cutover_from_rds_into_aurora_as_the_migrating_roles_under_writes() {
    // Source: a simulated RDS. The master user made the database for the application role
    // `app` (which logs in, and owns the database and its tables) and gave the migrating role
    // `app`'s rights (CREATE PUBLICATION ... FOR TABLE needs the tables' owner; the fence,
    // ALTER DATABASE, the database's) and pg_signal_backend (the fence ends the sessions).
    let src = Managed::start(Flavour::Rds, Options::default());
    src.create_db(DB);
    src.as_master_on_rds(DB, "CREATE EXTENSION postgis");
    src.psql_master(
        DB,
        &format!(
            "CREATE ROLE app LOGIN PASSWORD '{APP_PW}'; GRANT app TO {MASTER};
             ALTER DATABASE {DB} OWNER TO app;
             GRANT app, pg_signal_backend TO {MIGRATOR};"
        ),
    );
    let out = src.psql_as("app", APP_PW, DB, &fixture_without_postgis());
    assert!(out.status.success(), "{}", text(&out));
    let src_pw = src.migrator_password.clone();
    let dst = aurora_target();
    let dst_pw = dst.master_password.clone();
    let pws = (src_pw.as_str(), dst_pw.as_str());
    let secrets = [src_pw.as_str(), dst_pw.as_str(), APP_PW];
    let dir = tempfile::tempdir().expect("tempdir");
    let plan = write_plan(
        dir.path(),
        "mg_ahead",
        (src.cluster.port, MIGRATOR),
        (&dst, DB),
        "strategy: copy-cdc\njobs: 2\nowner: target-user\ncdc:\n  ddl: ignore\n  tables_without_key: insert-only\ncutover:\n  verify: checksums\n",
    );
    let p = plan.to_str().expect("utf8");
    assert!(!is_superuser(&src, MIGRATOR, &src_pw));
    assert!(!is_superuser(&dst, MASTER, &dst_pw));

    // apply, lag sampled every second: the master user writes pgmove.lag_samples.
    let log = dir.path().join("apply.log");
    let mut apply = pgmove(&["apply", p, "--yes", "--format", "json"], pws.0, pws.1)
        .env("PGMOVE_TEST_FORCE", "lag-samples-every-second")
        .stdout(std::process::Stdio::null())
        .stderr(std::fs::File::create(&log).expect("log file"))
        .spawn()
        .expect("start apply");
    wait_phase(
        (&dst.cluster, DB),
        "mg_ahead",
        &["replicating"],
        &mut apply,
        &log,
    );
    // The application writes from now until a fence ends its session.
    let wlog = dir.path().join("writer.log");
    let mut writer = start_writer(&src, ("app", APP_PW), WRITER, &wlog);
    wait_while_applying(&mut apply, &log, "no lag samples", || {
        dst.cluster
            .psql(
                DB,
                "SELECT count(*) >= 2 FROM pgmove.lag_samples WHERE plan_name = 'mg_ahead'",
            )
            .eq("t")
    });
    assert!(
        writer.try_wait().expect("writer").is_none(),
        "{}",
        read(&wlog)
    );

    // 1. Held after the verification ahead, a row changed by the source (applied: its key is
    // recorded as touched), then changed again on the target by hand: compared again while
    // fenced, it differs, and the cutover fails and gives the source its writes back.
    let resume = dir.path().join("resume1");
    let (child, out1, log1) = cutover_held(p, pws, dir.path(), "cutover1", &resume);
    src.psql_as(
        "app",
        APP_PW,
        DB,
        "UPDATE public.every_type SET t = 'after the comparison' WHERE id = 1",
    );
    wait_target(
        &dst,
        "SELECT t FROM public.every_type WHERE id = 1",
        "after the comparison",
    );
    dst.psql_master(
        DB,
        "UPDATE public.every_type SET t = 'by hand' WHERE id = 1",
    );
    let (code, cut) = finish_cutover(child, (&out1, &log1), &resume, &secrets);
    assert_eq!(code, Some(3), "{cut:#}");
    assert_eq!(cut["verify_identical"], false, "{cut:#}");
    assert_eq!(cut["recheck"]["full"], false, "{cut:#}");
    // Exactly that row, found by its key.
    let differing: Vec<&str> = cut["differing"]
        .as_array()
        .expect("differing")
        .iter()
        .filter_map(Value::as_str)
        .collect();
    assert_eq!(differing.len(), 1, "{cut:#}");
    assert!(
        differing[0].starts_with("table \"public\".\"every_type\": differs")
            && differing[0].contains("differing rows where \"id\" IN ('1')"),
        "{cut:#}"
    );
    // The fence ended the application's session; unfenced, a new one writes again.
    assert_eq!(cut["source_fenced"], false, "{cut:#}");
    assert!(!writer.wait().expect("writer").success(), "{}", read(&wlog));
    assert!(
        read(&wlog).contains("terminating connection"),
        "{}",
        read(&wlog)
    );
    let wlog = dir.path().join("writer2.log");
    let mut writer = start_writer(&src, ("app", APP_PW), WRITER, &wlog);
    let before = written(&src);
    wait_while_applying(&mut apply, &log, "the source stayed fenced", || {
        written(&src) > before
    });
    // Put back as the source has it (the fix the cutover's report asks for).
    dst.psql_master(
        DB,
        "UPDATE public.every_type SET t = 'after the comparison' WHERE id = 1",
    );

    // 2. Writes during the comparison ahead (the writer) and between it and the fence (the
    // writer, and an update, a delete and an insert while held there): compared again while
    // fenced, by their keys, identical. A row changed on the target by hand after the
    // comparison ahead, in a key change capture did not touch, is not compared again: the
    // cutover does not see it; `pgmove verify` afterwards does.
    let resume = dir.path().join("resume2");
    let w0 = written(&src);
    let (child, out2, log2) = cutover_held(p, pws, dir.path(), "cutover2", &resume);
    let w1 = written(&src);
    src.psql_as(
        "app",
        APP_PW,
        DB,
        "UPDATE sales.orders SET amount = amount + 1000 WHERE id = 4000;
         DELETE FROM sales.orders WHERE id = 4001;
         INSERT INTO public.events VALUES (20001, 'us', '2026-07-01', '{\"held\": true}');
         INSERT INTO public.no_key VALUES (10, 'held');",
    );
    dst.psql_master(
        DB,
        "UPDATE public.places SET name = 'changed on the target' WHERE name = 'paris'",
    );
    std::thread::sleep(Duration::from_millis(500));
    let (code, cut) = finish_cutover(child, (&out2, &log2), &resume, &secrets);
    assert_eq!(code, Some(0), "{cut:#}");
    assert_eq!(cut["state"], "live", "{cut:#}");
    assert_eq!(cut["source_fenced"], true, "{cut:#}");
    assert_eq!(cut["verify_identical"], true, "{cut:#}");
    assert!(cut["pre_verify_secs"].as_f64().is_some(), "{cut:#}");
    let re = &cut["recheck"];
    assert_eq!(re["full"], false, "{cut:#}");
    // The touched keys: the writer's orders and customers, order 4000, 4001, event 20001;
    // public.no_key whole.
    // Compared again in the re-check rounds before the fence or while fenced, as apply
    // applied them before or after the last round began.
    let keys = re["keys"].as_u64().expect("keys");
    let in_rounds: u64 = re["rounds"]
        .as_array()
        .map(|r| r.iter().filter_map(|x| x["keys"].as_u64()).sum())
        .unwrap_or(0);
    assert!(keys + in_rounds >= 5, "{cut:#}");
    let orders: u64 = src
        .cluster
        .psql(DB, "SELECT count(*) FROM sales.orders")
        .parse()
        .expect("count");
    assert!(keys < orders, "every key compared again: {cut:#}");
    assert!(re["tables"].as_u64().expect("tables") >= 4, "{cut:#}");
    // The keyless table written meanwhile, compared again whole.
    assert!(re["whole_tables"].as_u64().expect("whole") >= 1, "{cut:#}");
    // The writer wrote before the cutover, while it verified ahead and was held, and until
    // the fence ended its session (as the migrating role, through pg_signal_backend).
    let w2 = written(&src);
    assert!(w0 > 0 && w1 > w0 && w2 > w1, "{w0} {w1} {w2}");
    let status = writer.wait().expect("writer");
    assert!(!status.success(), "the writer outlived the fence");
    assert!(
        read(&wlog).contains("terminating connection"),
        "{}",
        read(&wlog)
    );
    assert!(
        cut["sessions_terminated"]
            .as_array()
            .expect("sessions")
            .iter()
            .any(|s| s["user"] == "app"),
        "{cut:#}"
    );
    let status = apply.wait().expect("apply ends after cutover");
    assert!(status.success(), "{}", read(&log));

    // What the cutover could not see, `pgmove verify` finds: the row changed by hand.
    let out = run_expect(&["verify", p, "--format", "json"], pws.0, pws.1, 3);
    let v = json(&out);
    assert_eq!(v["identical"], false, "{v:#}");
    let differ: Vec<String> = v["tables"]
        .as_array()
        .expect("tables")
        .iter()
        .filter(|t| t["status"] != "same")
        .map(|t| format!("{}.{}", t["schema"], t["name"]).replace('"', ""))
        .collect();
    assert_eq!(differ, ["public.places"], "{v:#}");
    dst.psql_master(
        DB,
        "UPDATE public.places SET name = 'paris' WHERE name = 'changed on the target'",
    );
    let out = run_expect(&["verify", p, "--format", "json"], pws.0, pws.1, 0);
    assert_eq!(json(&out)["identical"], true, "{}", text(&out));

    // The report, read as the master user: the lag it sampled, both cutovers' last.
    let out = run_expect(&["report", p, "--format", "json"], pws.0, pws.1, 0);
    let r = json(&out);
    assert_eq!(r["phase"], "live", "{r:#}");
    assert!(
        r["capture"]["lag"].as_array().expect("lag").len() >= 2,
        "{r:#}"
    );
    assert_eq!(r["cutover"]["verify_identical"], true, "{r:#}");
    assert_eq!(r["cutover"]["recheck"], cut["recheck"], "{r:#}");
    let out = run_expect(&["report", p, "--format", "html"], pws.0, pws.1, 0);
    let page = String::from_utf8_lossy(&out.stdout);
    assert_eq!(page.matches("<svg").count(), 4, "steps, load, lag, outage");
}

/// A table with FORCE ROW LEVEL SECURITY keeps it on Aurora, where its policy filters its
/// owner, the master user, too (who cannot give itself BYPASSRLS there): `pgmove plan` blocks
/// with the fix (before it, plan was ready and change capture stopped on the first change to
/// the table); with FORCE lifted on the source for the migration every row moves, those the
/// policy hides included, the changes to them arrive, and FORCE goes back on the target.
#[test]
fn forced_row_security_blocks_the_aurora_master_until_force_is_lifted() {
    let src = Cluster::start(Options::logical());
    src.create_db(DB);
    src.psql(
        DB,
        "CREATE TABLE public.t (id int PRIMARY KEY, v text);
         INSERT INTO public.t SELECT g, 'x' FROM generate_series(1, 10) g;
         ALTER TABLE public.t ENABLE ROW LEVEL SECURITY;
         ALTER TABLE public.t FORCE ROW LEVEL SECURITY;
         CREATE POLICY few ON public.t USING (id < 5);",
    );
    let dst = Managed::start(Flavour::Aurora, Options::default());
    dst.create_db(DB);
    let dst_pw = dst.master_password.clone();
    let dir = tempfile::tempdir().expect("tempdir");
    let plan = write_plan(
        dir.path(),
        "rls",
        (src.port, "postgres"),
        (&dst, DB),
        "strategy: copy-cdc\nowner: target-user\n",
    );
    let p = plan.to_str().expect("utf8");

    let out = pgmove(&["plan", p, "--format", "json"], &src.password, &dst_pw)
        .output()
        .expect("plan");
    let report = json(&out);
    assert_eq!(report["ready"], false, "{report:#}");
    let rls: Vec<&Value> = report["findings"]
        .as_array()
        .expect("findings")
        .iter()
        .filter(|f| f["check"] == "target-row-security")
        .collect();
    assert_eq!(rls.len(), 1, "{report:#}");
    assert_eq!(rls[0]["severity"], "blocker", "{report:#}");
    assert_eq!(rls[0]["object"], "public.t", "{report:#}");
    assert_eq!(
        rls[0]["fix"],
        "for the migration, on the source: ALTER TABLE \"public\".\"t\" NO FORCE ROW LEVEL SECURITY;  \
         and after cutover, on the target: ALTER TABLE \"public\".\"t\" FORCE ROW LEVEL SECURITY;",
        "{report:#}"
    );

    // The fix's first half.
    src.psql(DB, "ALTER TABLE public.t NO FORCE ROW LEVEL SECURITY");
    let out = run_expect(&["plan", p, "--format", "json"], &src.password, &dst_pw, 0);
    assert_eq!(json(&out)["ready"], true, "{}", text(&out));
    let log = dir.path().join("apply.log");
    let mut child = pgmove(&["apply", p, "--yes"], &src.password, &dst_pw)
        .stdout(std::process::Stdio::null())
        .stderr(std::fs::File::create(&log).expect("log file"))
        .spawn()
        .expect("start apply");
    wait_phase(
        (&dst.cluster, DB),
        "rls",
        &["replicating"],
        &mut child,
        &log,
    );
    src.psql(
        DB,
        "UPDATE public.t SET v = 'y'; DELETE FROM public.t WHERE id = 9;
         INSERT INTO public.t VALUES (11, 'z');",
    );
    wait_caught_up(
        &src,
        (&dst.cluster, DB),
        ("rls", "UPDATE public.t SET v = 'last' WHERE id = 10"),
        &mut child,
        &log,
    );
    let out = run_expect(
        &["cutover", p, "--yes", "--format", "json"],
        &src.password,
        &dst_pw,
        0,
    );
    let cut = json(&out);
    assert_eq!(cut["verify_identical"], true, "{cut:#}");
    assert!(
        child.wait().expect("apply ends").success(),
        "{}",
        read(&log)
    );
    // Every row, as the superuser reads it: the policy hid none from the move.
    let rows = "SELECT string_agg(id || v, ',' ORDER BY id) FROM public.t";
    assert_eq!(
        dst.cluster.psql(DB, rows),
        "1y,2y,3y,4y,5y,6y,7y,8y,10last,11z"
    );
    assert_eq!(dst.cluster.psql(DB, rows), src.psql(DB, rows));
    // Its second half, as the master user, the table's owner there: the policy filters it.
    dst.psql_master(DB, "ALTER TABLE public.t FORCE ROW LEVEL SECURITY");
    assert_eq!(
        dst.psql_master(DB, "SELECT count(*) FROM public.t"),
        "4",
        "FORCE is not back on the target"
    );
}
