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
