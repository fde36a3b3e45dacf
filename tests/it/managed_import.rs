//! The scripted import: `plans/examples/rds-aurora-import.yaml`, with only its addresses
//! changed (DSNs, users, certificate paths), runs end to end into a simulated Aurora with TLS
//! (`sslmode: verify-full` against the harness CA, host 127.0.0.1), non-interactively
//! (`--yes`, passwords from the environment), and every command's `--format json` is one
//! JSON document a script can read: plan, apply (its summary), status, cutover, verify and
//! cleanup.

use crate::support;
use crate::support::online::text;

use std::path::Path;
use std::process::{Child, Command};
use std::time::{Duration, Instant};

use serde_json::Value;
use support::managed::{Flavour, Managed, MASTER};
use support::{Cluster, Options, SUPERUSER};

const DB: &str = "shop";
const PLAN: &str = "shop-to-aurora";

/// The example with `from -> to` replaced; each `from` must occur exactly once, so a change
/// of the example breaks this test rather than leaves an address unchanged.
fn rewrite(example: &str, swaps: &[(&str, String)]) -> String {
    let mut out = example.to_string();
    for (from, to) in swaps {
        assert_eq!(
            out.matches(from).count(),
            1,
            "{from:?} must occur once in the example"
        );
        out = out.replace(from, to);
    }
    out
}

fn pgmove(args: &[&str], src: &Cluster, dst: &Managed) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_pgmove"));
    c.args(args)
        .env("SRC_PASSWORD", &src.password)
        .env("DST_PASSWORD", &dst.master_password)
        .env("NO_COLOR", "1")
        .env_remove("PGPASSWORD")
        .env_remove("PGSSLMODE");
    c
}

/// Runs a command to its end: exit 0 and one JSON document on stdout, without a password.
fn run_json(args: &[&str], src: &Cluster, dst: &Managed) -> Value {
    let out = pgmove(args, src, dst).output().expect("run pgmove");
    assert_eq!(out.status.code(), Some(0), "{args:?}: {}", text(&out));
    for pw in [&src.password, &dst.master_password] {
        assert!(!text(&out).contains(pw.as_str()), "a password in {args:?}");
    }
    serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("{args:?} printed no JSON ({e}): {}", text(&out)))
}

fn log_of(log: &Path) -> String {
    std::fs::read_to_string(log).unwrap_or_default()
}

/// Waits until `done` holds, watching the apply.
fn wait_for(what: &str, mut done: impl FnMut() -> bool, child: &mut Child, log: &Path) {
    let deadline = Instant::now() + Duration::from_secs(180);
    while !done() {
        if let Ok(Some(status)) = child.try_wait() {
            panic!("apply ended before {what}: {status}\n{}", log_of(log));
        }
        assert!(Instant::now() < deadline, "no {what}\n{}", log_of(log));
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn the_rds_aurora_example_runs_end_to_end_from_a_script_with_json_output() {
    let src = Cluster::start(Options {
        ssl: true,
        ..Options::logical()
    });
    src.create_db(DB);
    src.psql(
        DB,
        "CREATE SCHEMA sales;
         CREATE TABLE public.customers (id int PRIMARY KEY, name text NOT NULL);
         INSERT INTO public.customers SELECT g, 'customer ' || g FROM generate_series(1, 500) g;
         CREATE TABLE sales.orders (id bigserial PRIMARY KEY, customer int REFERENCES public.customers, amount numeric(10, 2));
         INSERT INTO sales.orders (customer, amount) SELECT 1 + g % 500, g / 10.0 FROM generate_series(1, 3000) g;
         CREATE TABLE public.audit_log (at timestamptz, what text);
         INSERT INTO public.audit_log SELECT '2026-01-01'::timestamptz + g * interval '1 minute', 'event ' || g FROM generate_series(1, 200) g;
         CREATE TABLE public.tmp_scratch (id int PRIMARY KEY);
         CREATE TABLE sales.staging_orders (id int PRIMARY KEY);
         CREATE SCHEMA archive;
         CREATE TABLE archive.old (id int PRIMARY KEY);
         SELECT lo_from_bytea(0, '\\x696d706f7274'::bytea);",
    );
    let dst = Managed::start(
        Flavour::Aurora,
        Options {
            ssl: true,
            ..Options::default()
        },
    );
    dst.create_db(DB);

    let example = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("plans/examples/rds-aurora-import.yaml"),
    )
    .expect("read the example");
    // The source's user is its superuser: the example's `cdc.ddl: refuse` captures schema
    // changes with event triggers on the source, which only a superuser may create there.
    // The target's user is the simulated Aurora's master user, who is not a superuser.
    let plan = rewrite(
        &example,
        &[
            (
                "dsn: postgres://migrator@10.0.0.5:5432/shop",
                format!("dsn: postgres://{SUPERUSER}@127.0.0.1:{}/{DB}", src.port),
            ),
            (
                "sslrootcert: /etc/ssl/shop-ca.pem",
                format!("sslrootcert: {}", src.ca_file().display()),
            ),
            (
                "dsn: postgres://admin@shop.cluster-abc123.eu-west-1.rds.amazonaws.com:5432/shop",
                format!("dsn: {}", dst.uri_as(MASTER, DB)),
            ),
            (
                "sslrootcert: /etc/ssl/rds-global-bundle.pem",
                format!("sslrootcert: {}", dst.cluster.ca_file().display()),
            ),
        ],
    );
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("rds-aurora-import.yaml");
    std::fs::write(&path, plan).expect("write plan");
    let p = path.to_str().expect("utf8");

    // plan: ready, copy-cdc, Aurora detected as the master user.
    let report = run_json(&["plan", p, "--format", "json"], &src, &dst);
    assert_eq!(report["ready"], true, "{report:#}");
    assert_eq!(report["decision"]["strategy"], "copy-cdc", "{report:#}");
    assert_eq!(report["target"]["platform"], "aurora", "{report:#}");
    assert_eq!(report["target"]["user"], MASTER, "{report:#}");

    // apply in the background, as a script would: its summary is its stdout.
    let log = dir.path().join("apply.log");
    let stdout = dir.path().join("apply.json");
    let mut child = pgmove(&["apply", p, "--yes", "--format", "json"], &src, &dst)
        .stdout(std::fs::File::create(&stdout).expect("stdout file"))
        .stderr(std::fs::File::create(&log).expect("log file"))
        .spawn()
        .expect("start apply");
    let phase = || {
        let out = dst.cluster.psql_output(
            DB,
            &format!("SELECT phase FROM pgmove.runs WHERE plan_name = '{PLAN}'"),
        );
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    };
    wait_for(
        "change capture",
        || phase() == "replicating",
        &mut child,
        &log,
    );
    src.psql(
        DB,
        "INSERT INTO sales.orders (customer, amount) SELECT 1 + g % 500, 1 FROM generate_series(1, 100) g;
         UPDATE public.customers SET name = upper(name) WHERE id % 7 = 0;
         DELETE FROM public.audit_log WHERE what = 'event 3';
         UPDATE public.audit_log SET what = 'changed' WHERE what = 'event 4';",
    );

    // status: a script reads the phase and the slot.
    let st = run_json(&["status", p, "--format", "json"], &src, &dst);
    assert_eq!(st["strategy"], "copy-cdc", "{st:#}");
    assert_eq!(st["apply_running"], true, "{st:#}");
    assert!(st["slot"]["name"].as_str().is_some(), "{st:#}");

    let goal = src.psql(DB, "SELECT pg_current_wal_insert_lsn()");
    // A last commit after that position: the target's progress passes it once applied.
    src.psql(
        DB,
        "INSERT INTO public.customers VALUES (501, 'the last write')",
    );
    wait_for(
        "catch-up",
        || {
            let out = dst.cluster.psql_output(
                DB,
                &format!("SELECT applied_lsn >= '{goal}' FROM pgmove.progress WHERE plan_name = '{PLAN}'"),
            );
            String::from_utf8_lossy(&out.stdout).trim() == "t"
        },
        &mut child,
        &log,
    );

    // cutover: the target is live, verified by checksums (the example's cutover.verify).
    let cut = run_json(&["cutover", p, "--yes", "--format", "json"], &src, &dst);
    assert_eq!(cut["state"], "live", "{cut:#}");
    assert_eq!(cut["verify_identical"], true, "{cut:#}");
    let status = child.wait().expect("apply ends after cutover");
    assert!(status.success(), "{}", log_of(&log));
    let summary: Value = serde_json::from_slice(&std::fs::read(&stdout).expect("apply stdout"))
        .unwrap_or_else(|e| panic!("apply's summary is not JSON ({e})\n{}", log_of(&log)));
    assert_eq!(summary["plan"], PLAN, "{summary:#}");
    assert_eq!(summary["strategy"], "copy-cdc", "{summary:#}");
    assert!(summary["elapsed_secs"].as_f64().is_some(), "{summary:#}");
    // customers 500 + orders 3000 + audit_log 200: the excluded tables and schema moved no rows.
    assert_eq!(summary["outcome"]["rows"], 3700, "{summary:#}");
    assert_eq!(summary["outcome"]["tables_copied"], 3, "{summary:#}");
    assert!(
        summary["cdc"]["changes"].as_u64().unwrap_or(0) >= 100,
        "{summary:#}"
    );

    let v = run_json(&["verify", p, "--format", "json"], &src, &dst);
    assert_eq!(v["identical"], true, "{v:#}");
    assert_eq!(
        dst.cluster.psql(
            DB,
            "SELECT string_agg(n.nspname || '.' || c.relname || ' ' || pg_get_userbyid(c.relowner), ', ' ORDER BY 1)
               FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
              WHERE c.relkind = 'r' AND n.nspname IN ('public', 'sales', 'archive')"
        ),
        "public.audit_log master, public.customers master, sales.orders master"
    );

    // cleanup: pgmove's slot, publication, DDL capture and schema go; the data stays.
    let cl = run_json(&["cleanup", p, "--yes", "--format", "json"], &src, &dst);
    assert!(
        !cl["artifacts"].as_array().expect("artifacts").is_empty(),
        "{cl:#}"
    );
    assert_eq!(
        src.psql(
            DB,
            "SELECT (SELECT count(*) FROM pg_replication_slots) + (SELECT count(*) FROM pg_publication)
                  + (SELECT count(*) FROM pg_event_trigger)"
        ),
        "0"
    );
    assert_eq!(
        dst.cluster.psql(
            DB,
            "SELECT count(*) FROM pg_namespace WHERE nspname = 'pgmove'"
        ),
        "0"
    );
    assert_eq!(
        dst.cluster.psql(DB, "SELECT count(*) FROM sales.orders"),
        "3100"
    );
    assert_eq!(
        dst.cluster
            .psql(DB, "SELECT count(*) FROM pg_largeobject_metadata"),
        "1"
    );
    let again = run_json(&["cleanup", p, "--yes", "--format", "json"], &src, &dst);
    assert_eq!(
        again["artifacts"].as_array().map(Vec::len),
        Some(0),
        "{again:#}"
    );
}
