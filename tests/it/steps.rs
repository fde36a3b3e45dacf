//! A strategy is one list of named steps (issue 12 item 4): the step names `apply --dry-run`
//! prints are the names `apply` records in `pgmove.steps`, in the same order, and the names
//! `pgmove status` shows.

use crate::support;

use std::path::Path;
use std::process::Output;

use pgmove::strategy::steps;
use support::online::{assert_ok, pair, pgmove, text, PlanYaml};
use support::{Cluster, Profile};

/// The step names of a dry-run listing, in order (its `-- step N/M name: ...` headings).
fn dry_run_steps(out: &Output) -> Vec<String> {
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(steps::heading_name)
        .map(str::to_string)
        .collect()
}

/// The steps recorded on the target for `plan`, in the order they finished; records of
/// change capture's own (`ddl-applied <LSN>`) are no steps of a strategy and none is expected.
fn recorded_steps(dst: &Cluster, db: &str, plan: &str) -> Vec<String> {
    dst.psql(
        db,
        &format!(
            "SELECT string_agg(step, ',' ORDER BY finished_at, step) FROM pgmove.steps WHERE plan_name = '{plan}'"
        ),
    )
    .split(',')
    .filter(|s| !s.is_empty())
    .map(str::to_string)
    .collect()
}

fn names(list: &[steps::Step]) -> Vec<String> {
    list.iter().map(|s| s.name.to_string()).collect()
}

/// `pgmove` with the dump directory's default place under `cache`.
fn run_cached(args: &[&str], src: &Cluster, dst: &Cluster, cache: &Path) -> Output {
    pgmove(args, src, dst)
        .env("XDG_CACHE_HOME", cache)
        .output()
        .expect("run pgmove")
}

#[test]
fn dump_restore_records_the_steps_its_dry_run_prints() {
    let pg = support::shared(Profile::Plain);
    let (sdb, tdb) = (pg.fresh_db("steps_dr_src"), pg.fresh_db("steps_dr_dst"));
    pg.psql(
        &sdb,
        "CREATE TABLE t (id int PRIMARY KEY, v text); INSERT INTO t SELECT g, 'v' || g FROM generate_series(1, 100) g;
         CREATE INDEX ON t (v);",
    );
    let dir = tempfile::tempdir().expect("tempdir");
    let cache = tempfile::tempdir().expect("tempdir");
    let plan = dir.path().join("steps_dr.yaml");
    std::fs::write(
        &plan,
        format!(
            "version: 1\nname: steps_dr\nstrategy: dump-restore\nsource:\n  dsn: postgres://postgres@127.0.0.1:{port}/{sdb}\n  password: {{env: SRC_PW}}\n  sslmode: disable\ntarget:\n  dsn: postgres://postgres@127.0.0.1:{port}/{tdb}\n  password: {{env: DST_PW}}\n  sslmode: disable\n",
            port = pg.port
        ),
    )
    .expect("write plan");
    let p = plan.to_str().expect("utf8");

    let out = run_cached(&["apply", p, "--dry-run"], pg, pg, cache.path());
    assert_ok(&out);
    let printed = dry_run_steps(&out);
    assert_eq!(
        printed,
        names(steps::of_named("dump-restore")),
        "{}",
        text(&out)
    );
    // Each step's listing ends with the statement that records it.
    let listing = String::from_utf8_lossy(&out.stdout).to_string();
    for name in &printed {
        assert!(
            listing.contains(&format!("VALUES ('steps_dr', '{name}', ")),
            "no record of {name}: {listing}"
        );
    }

    // The JSON listing names the same steps.
    let out = run_cached(
        &["apply", p, "--dry-run", "--format", "json"],
        pg,
        pg,
        cache.path(),
    );
    assert_ok(&out);
    let j: serde_json::Value = serde_json::from_slice(&out.stdout).expect("dry run json");
    assert_eq!(j["steps"], serde_json::json!(printed), "{j}");

    let out = run_cached(&["apply", p, "--yes"], pg, pg, cache.path());
    assert_ok(&out);
    assert_eq!(recorded_steps(pg, &tdb, "steps_dr"), printed);
    assert_eq!(pg.psql(&tdb, "SELECT count(*) FROM t"), "100");

    // status shows them, all done, in that order.
    let out = pgmove(&["status", p, "--format", "json"], pg, pg)
        .output()
        .expect("status");
    assert_ok(&out);
    let j: serde_json::Value = serde_json::from_slice(&out.stdout).expect("status json");
    assert_eq!(j["steps_done"], serde_json::json!(printed), "{j}");
    assert_eq!(j["steps_to_do"], serde_json::json!([]), "{j}");
}

#[test]
fn copy_cdc_records_the_steps_its_dry_run_prints() {
    let (src, dst) = pair();
    src.psql(
        "shop",
        "CREATE TABLE items (id int PRIMARY KEY, v text); INSERT INTO items SELECT g, 'v' || g FROM generate_series(1, 100) g;
         CREATE SEQUENCE s; SELECT setval('s', 42);",
    );
    let dir = tempfile::tempdir().expect("tempdir");
    let plan = PlanYaml::default().write(dir.path(), "steps_cc", &src, &dst);
    let p = plan.to_str().expect("utf8");

    let out = pgmove(&["apply", p, "--dry-run"], &src, &dst)
        .output()
        .expect("dry run");
    assert_ok(&out);
    let printed = dry_run_steps(&out);
    assert_eq!(
        printed,
        names(steps::of_named("copy-cdc")),
        "{}",
        text(&out)
    );
    let listing = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(!listing.contains("not built yet"), "{listing}");

    let out = pgmove(&["apply", p, "--yes", "--exit-when-caught-up"], &src, &dst)
        .output()
        .expect("apply");
    assert_ok(&out);
    assert_eq!(recorded_steps(&dst, "shop", "steps_cc"), printed);
    assert_eq!(dst.psql("shop", "SELECT count(*) FROM items"), "100");

    let out = pgmove(&["status", p], &src, &dst).output().expect("status");
    assert_ok(&out);
    let status = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(
        status.contains(&format!("  steps done: {}\n", printed.join(", "))),
        "{status}"
    );
    assert!(!status.contains("steps to do"), "{status}");
}

#[test]
fn cutover_records_the_steps_its_dry_run_names() {
    let (src, dst) = pair();
    src.psql(
        "shop",
        "CREATE TABLE items (id int PRIMARY KEY, v text); INSERT INTO items SELECT g, 'v' || g FROM generate_series(1, 100) g;",
    );
    let dir = tempfile::tempdir().expect("tempdir");
    let plan = PlanYaml::default().write(dir.path(), "steps_co", &src, &dst);
    let p = plan.to_str().expect("utf8");
    let out = pgmove(&["apply", p, "--yes", "--exit-when-caught-up"], &src, &dst)
        .output()
        .expect("apply");
    assert_ok(&out);
    src.psql("shop", "INSERT INTO items VALUES (101, 'after the load')");

    let out = pgmove(&["cutover", p, "--dry-run", "--format", "json"], &src, &dst)
        .output()
        .expect("cutover dry run");
    let j: serde_json::Value =
        serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("{e}: {}", text(&out)));
    let named: Vec<String> = j["steps"]
        .as_array()
        .unwrap_or_else(|| panic!("no steps in the report: {j}"))
        .iter()
        .map(|s| s.as_str().expect("a step name").to_string())
        .collect();
    assert_eq!(named, names(pgmove::cutover::steps::STEPS));

    // No apply runs: cutover applies the last change itself.
    let out = pgmove(&["cutover", p, "--yes"], &src, &dst)
        .output()
        .expect("cutover");
    assert_ok(&out);
    assert_eq!(
        dst.psql("shop", "SELECT v FROM items WHERE id = 101"),
        "after the load"
    );
    let recorded = recorded_steps(&dst, "shop", "steps_co");
    let cutover: Vec<String> = recorded
        .iter()
        .filter(|s| s.starts_with("cutover-"))
        .cloned()
        .collect();
    assert_eq!(cutover, named);
    // The load's steps came first, then cutover's.
    let mut all = names(steps::of_named("copy-cdc"));
    all.extend(named);
    assert_eq!(recorded, all);
}
