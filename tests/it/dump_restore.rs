//! Strategy dump-restore against real servers.

use crate::support;

use pgmove::pg::{Endpoint, Secret, Side};
use pgmove::progress::Progress;
use pgmove::strategy::dump_restore::{self, Job};
use support::{Cluster, Options};

const FIXTURE: &str = include_str!("../fixtures/many_types.sql");

fn endpoint(c: &Cluster, side: Side, db: &str) -> Endpoint {
    Endpoint::from_dsn(
        side,
        &format!(
            "postgres://postgres@127.0.0.1:{}/{db}?sslmode=disable",
            c.port
        ),
        Some(Secret::new(c.password.clone())),
        &|_| None,
    )
    .expect("dsn")
}

fn job(src: &Cluster, dst: &Cluster, name: &str, dump_dir: &std::path::Path) -> Job {
    Job {
        plan_name: name.to_string(),
        source: endpoint(src, Side::Source, "shop"),
        target: endpoint(dst, Side::Target, "shop"),
        schemas: vec![],
        exclude: vec![],
        large_objects: true,
        no_owner: false,
        no_acl: false,
        jobs: 3,
        index_jobs: 2,
        bin_dir: None,
        schema_only: false,
        dump_dir: Some(dump_dir.to_path_buf()),
    }
}

fn source_with_fixture() -> Cluster {
    let c = Cluster::start(Options::default());
    c.create_db("shop");
    c.psql("shop", FIXTURE);
    c
}

/// Panics with the first differing lines, not the whole dumps.
fn assert_same(src: &Cluster, dst: &Cluster) {
    let (a, b) = (fingerprint(src), fingerprint(dst));
    if a != b {
        let diff: Vec<String> = a
            .lines()
            .zip(b.lines())
            .enumerate()
            .filter(|(_, (x, y))| x != y)
            .take(5)
            .map(|(i, (x, y))| format!("line {i}:\n  source: {x}\n  target: {y}"))
            .collect();
        panic!(
            "source and target differ ({} vs {} lines):\n{}",
            a.lines().count(),
            b.lines().count(),
            diff.join("\n")
        );
    }
}

/// A text rendering of everything that must arrive: data of every table (ordered), sequences,
/// large objects and the schema, as pg_dump prints them.
fn fingerprint(c: &Cluster) -> String {
    let out = std::process::Command::new(support::bindir().join("pg_dump"))
        .args([
            "-h",
            "127.0.0.1",
            "-p",
            &c.port.to_string(),
            "-U",
            "postgres",
            "-d",
            "shop",
        ])
        .args(["--exclude-schema=pgmove", "--no-owner", "--blobs"])
        .env("PGPASSWORD", &c.password)
        .output()
        .expect("pg_dump");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    // Object ids of large objects differ only if not preserved; pg_dump keeps them. Drop the
    // header comments that carry version numbers.
    text.lines()
        .filter(|l| {
            !l.starts_with("-- Dumped")
                && !l.starts_with("\\restrict")
                && !l.starts_with("\\unrestrict")
        })
        .collect::<Vec<_>>()
        .join("\n")
}

#[tokio::test]
async fn apply_moves_every_type_and_object_exactly() {
    let src = source_with_fixture();
    let dst = Cluster::start(Options::default());
    dst.create_db("shop");
    let dir = tempfile::tempdir().expect("tempdir");
    let j = job(&src, &dst, "many-types", &dir.path().join("dump"));
    let outcome = dump_restore::run(&j, Progress::logs())
        .await
        .expect("apply");
    assert!(!outcome.dump_reused);
    assert!(outcome.items_restored > 20, "{outcome:?}");
    assert_same(&src, &dst);
    assert_eq!(
        dst.psql(
            "shop",
            "SELECT phase FROM pgmove.runs WHERE plan_name = 'many-types'"
        ),
        "done"
    );
    // Exact values survive, PostGIS included.
    assert_eq!(
        dst.psql(
            "shop",
            "SELECT n_free::text, f8::text, tstz::text FROM every_type WHERE id = 1"
        ),
        "NaN|Infinity|-infinity"
    );
    assert_eq!(
        dst.psql(
            "shop",
            "SELECT ST_AsText(geom) FROM places WHERE name = 'paris'"
        ),
        "POINT(2.3522 48.8566)"
    );
    assert_eq!(
        dst.psql("shop", "SELECT last_value FROM invoice_no"),
        "4242"
    );
    assert_eq!(
        dst.psql("shop", "SELECT count(*) FROM ONLY events_eu_2026"),
        src.psql("shop", "SELECT count(*) FROM ONLY events_eu_2026")
    );

    // Running apply again is a no-op that reuses the dump and restores nothing twice.
    let again = dump_restore::run(&j, Progress::logs())
        .await
        .expect("rerun");
    assert!(again.dump_reused);
    assert_eq!(again.items_restored, 0, "{again:?}");
    assert!(again.pre_data_already_done);
    assert_same(&src, &dst);
}

#[tokio::test]
async fn a_failing_item_is_named_and_the_rerun_resumes_after_the_fix() {
    let src = source_with_fixture();
    let dst = Cluster::start(Options::default());
    dst.create_db("shop");
    // The target lacks a role that owns a source table: the owner change fails.
    src.psql(
        "shop",
        "CREATE ROLE app_owner; ALTER TABLE sales.orders OWNER TO app_owner;",
    );
    let dir = tempfile::tempdir().expect("tempdir");
    let j = job(&src, &dst, "needs-role", &dir.path().join("dump"));
    let err = dump_restore::run(&j, Progress::logs())
        .await
        .expect_err("role missing");
    let text = err.to_string();
    assert!(text.contains("the schema (pre-data)"), "{text}");
    assert!(text.contains("role \"app_owner\" does not exist"), "{text}");
    assert!(!text.contains(&dst.password));
    assert_eq!(dst.psql("shop", "SELECT phase FROM pgmove.runs"), "failed");
    // Pre-data is atomic: nothing of the schema is there.
    assert_eq!(
        dst.psql(
            "shop",
            "SELECT count(*) FROM pg_tables WHERE schemaname = 'sales'"
        ),
        "0"
    );
    dst.psql("postgres", "CREATE ROLE app_owner");
    let outcome = dump_restore::run(&j, Progress::logs())
        .await
        .expect("resumes");
    assert!(outcome.dump_reused);
    assert_same(&src, &dst);
}

#[test]
fn sigkill_mid_restore_then_rerun_gives_an_identical_target_without_redoing_items() {
    let k = support::restore::KilledRestore::start("kill", 40);
    let before = k.finished_items();
    assert!(
        before.len() < 40 + 40,
        "the kill came too late: {} items done",
        before.len()
    );

    let status = k.apply().status().expect("rerun");
    assert!(status.success(), "rerun failed: {status}");
    assert_same(&k.src, &k.dst);
    // Items finished before the kill were not restored again: their rows are untouched.
    let after = k.finished_items();
    for row in &before {
        assert!(after.contains(row), "item redone: {row}");
    }
    assert!(after.len() > before.len());
    k.assert_every_table_complete();
}

fn run_pgmove(args: &[&str], src: &Cluster, dst: &Cluster) -> std::process::Output {
    std::process::Command::new(env!("CARGO_BIN_EXE_pgmove"))
        .args(args)
        .env("SRC_PW", &src.password)
        .env("DST_PW", &dst.password)
        .env("NO_COLOR", "1")
        .output()
        .expect("run pgmove")
}

#[test]
fn apply_then_verify_is_identical_and_a_changed_row_exits_3_naming_its_table() {
    let src = source_with_fixture();
    let dst = Cluster::start(Options::default());
    dst.create_db("shop");
    let dir = tempfile::tempdir().expect("tempdir");
    let plan = dir.path().join("v.yaml");
    std::fs::write(
        &plan,
        format!(
            "version: 1\nname: verify-me\nstrategy: dump-restore\nsource:\n  dsn: postgres://postgres@127.0.0.1:{}/shop\n  password: {{env: SRC_PW}}\n  sslmode: disable\ntarget:\n  dsn: postgres://postgres@127.0.0.1:{}/shop\n  password: {{env: DST_PW}}\n  sslmode: disable\n",
            src.port, dst.port
        ),
    )
    .expect("write plan");
    let p = plan.to_str().expect("utf8");
    let out = run_pgmove(&["apply", p, "--yes"], &src, &dst);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // The summary names the pg_dump and pg_restore it ran (of one installation).
    let text = String::from_utf8_lossy(&out.stdout);
    let line = text
        .lines()
        .find(|l| l.starts_with("applied plan verify-me"))
        .unwrap_or_else(|| panic!("no summary in {text}"));
    let dump = line
        .split("with pg_dump ")
        .nth(1)
        .and_then(|r| r.split(['(', ')']).nth(1))
        .unwrap_or_else(|| panic!("no pg_dump in {line}"));
    let dir = dump.strip_suffix("/pg_dump").expect("a pg_dump path");
    assert!(line.contains("and pg_restore "), "{line}");
    assert!(line.contains(&format!("({dir}/pg_restore)")), "{line}");
    // The log says it too, before anything runs.
    let log = String::from_utf8_lossy(&out.stderr);
    assert!(
        log.lines()
            .any(|l| l.contains("client program") && l.contains(&format!("{dir}/pg_dump"))),
        "{log}"
    );
    let out = run_pgmove(&["verify", p], &src, &dst);
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{text}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(text.contains("IDENTICAL"), "{text}");

    dst.psql(
        "shop",
        "UPDATE sales.orders SET amount = amount + 0.01 WHERE id = 4321",
    );
    let out = run_pgmove(&["verify", p, "--format", "json"], &src, &dst);
    assert_eq!(out.status.code(), Some(3));
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json");
    let differing: Vec<String> = report["tables"]
        .as_array()
        .expect("tables")
        .iter()
        .filter(|t| t["status"] != "same")
        .map(|t| {
            format!(
                "{}.{}",
                t["schema"].as_str().unwrap_or(""),
                t["name"].as_str().unwrap_or("")
            )
        })
        .collect();
    assert_eq!(differing, vec!["sales.orders".to_string()], "{report:#}");
    let out = run_pgmove(&["verify", p], &src, &dst);
    assert_eq!(out.status.code(), Some(3));
    assert!(String::from_utf8_lossy(&out.stdout).contains("sales.orders"));
}
