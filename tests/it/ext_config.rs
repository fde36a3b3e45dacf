//! Issue 11 item 8: extension configuration tables (`pg_extension_config_dump`: PostGIS
//! `spatial_ref_sys` and its user-added SRID rows). copy-cdc copies the rows pg_dump would
//! dump (those matching `extcondition`) in the slot's snapshot, change capture carries later
//! changes to them, and verify compares exactly those rows (the extension's own rows are put
//! there by `CREATE EXTENSION` on each server). dump-restore gets them from pg_dump.

use crate::support;

use std::path::Path;

use support::online::{
    self, read_log, run, start_apply, terminate, text, wait_caught_up, wait_loaded, PlanYaml,
};
use support::Cluster;

/// A custom SRID row (outside the EPSG ranges PostGIS ships, so inside its dump condition).
const SRID_ROW: &str = "INSERT INTO spatial_ref_sys (srid, auth_name, auth_srid, srtext, proj4text)
    VALUES (910001, 'pgmove', 1, 'LOCAL_CS[\"pgmove test\"]', '+proj=longlat +datum=WGS84 +no_defs')";

fn pair() -> (Cluster, Cluster) {
    let (src, dst) = online::pair();
    src.psql(
        "shop",
        &format!(
            "CREATE EXTENSION postgis;
             {SRID_ROW};
             CREATE TABLE places (id int PRIMARY KEY, g geometry(Point, 4326));
             INSERT INTO places SELECT i, ST_SetSRID(ST_MakePoint(i, i), 4326) FROM generate_series(1, 10) i;"
        ),
    );
    (src, dst)
}

/// The user's rows of spatial_ref_sys (srid above 910000), as text.
fn custom_srids(c: &Cluster) -> String {
    c.psql(
        "shop",
        "SELECT coalesce(string_agg(srid || ':' || auth_name || ':' || proj4text, ' | ' ORDER BY srid), '') FROM spatial_ref_sys WHERE srid > 910000",
    )
}

fn verify(plan: &Path, src: &Cluster, dst: &Cluster) -> std::process::Output {
    run(&["verify", plan.to_str().expect("utf8")], src, dst)
}

#[test]
fn copy_cdc_copies_and_replicates_config_table_rows_and_verify_compares_them() {
    let (src, dst) = pair();
    let dir = tempfile::tempdir().expect("tempdir");
    let plan = online::write_plan(dir.path(), "extcfg", &src, &dst, "");
    // The dry run lists the copy of the configuration table's dumpable rows.
    let out = run(
        &["apply", plan.to_str().expect("utf8"), "--dry-run"],
        &src,
        &dst,
    );
    online::assert_ok(&out);
    let listing = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(
        listing.contains("FROM ONLY \"public\".\"spatial_ref_sys\" WHERE NOT (\n"),
        "{listing}"
    );

    let log = dir.path().join("apply.log");
    let mut child = start_apply(&plan, &src, &dst, &log);
    wait_loaded(&dst, "extcfg", &mut child, &log);
    // The row inserted before apply arrived with the load, once (the extension's own rows
    // are the target's install, not duplicated).
    assert_eq!(custom_srids(&dst), custom_srids(&src));
    assert_eq!(
        dst.psql("shop", "SELECT count(*) FROM spatial_ref_sys"),
        src.psql("shop", "SELECT count(*) FROM spatial_ref_sys")
    );
    // During change capture: a new row, a change to the first one.
    src.psql(
        "shop",
        "INSERT INTO spatial_ref_sys (srid, auth_name, auth_srid, srtext, proj4text)
           VALUES (910002, 'pgmove', 2, 'LOCAL_CS[\"two\"]', '+proj=longlat +ellps=GRS80 +no_defs');
         UPDATE spatial_ref_sys SET proj4text = '+proj=longlat +datum=NAD83 +no_defs' WHERE srid = 910001;
         INSERT INTO places VALUES (11, ST_SetSRID(ST_MakePoint(11, 11), 4326));",
    );
    wait_caught_up(&src, &dst, "extcfg", &mut child, &log);
    assert_eq!(custom_srids(&dst), custom_srids(&src));
    assert!(custom_srids(&dst).contains("910002:pgmove:+proj=longlat +ellps=GRS80"));
    terminate(&mut child, &log);
    assert!(
        read_log(&log).contains("extension configuration table"),
        "{}",
        read_log(&log)
    );
    let out = verify(&plan, &src, &dst);
    assert!(out.status.success(), "verify: {}", text(&out));
    // Cutover's own verification passes too (it could not while the rows were missing).
    let out = run(
        &["cutover", plan.to_str().expect("utf8"), "--yes"],
        &src,
        &dst,
    );
    online::assert_ok(&out);

    // An extension row differs (outside the dump condition): not what pg_dump moves, so not
    // a difference of the migration.
    dst.psql(
        "shop",
        "UPDATE spatial_ref_sys SET proj4text = proj4text || ' ' WHERE srid = 4326",
    );
    let out = verify(&plan, &src, &dst);
    assert!(out.status.success(), "verify: {}", text(&out));
    // A user row differs: reported.
    dst.psql(
        "shop",
        "UPDATE spatial_ref_sys SET proj4text = 'planted' WHERE srid = 910002",
    );
    let out = verify(&plan, &src, &dst);
    assert_eq!(out.status.code(), Some(3), "{}", text(&out));
    assert!(text(&out).contains("spatial_ref_sys"), "{}", text(&out));
}

#[test]
fn dump_restore_carries_config_table_rows() {
    let (src, dst) = pair();
    let dir = tempfile::tempdir().expect("tempdir");
    let plan = PlanYaml {
        strategy: Some("dump-restore"),
        ..PlanYaml::default()
    }
    .write(dir.path(), "extdr", &src, &dst);
    let out = run(
        &["apply", plan.to_str().expect("utf8"), "--yes"],
        &src,
        &dst,
    );
    online::assert_ok(&out);
    assert_eq!(custom_srids(&dst), custom_srids(&src));
    let rows = custom_srids(&dst);
    assert!(rows.starts_with("910001:pgmove:"), "{rows}");
    assert_eq!(
        dst.psql("shop", "SELECT count(*) FROM spatial_ref_sys"),
        src.psql("shop", "SELECT count(*) FROM spatial_ref_sys")
    );
    let out = verify(&plan, &src, &dst);
    assert!(out.status.success(), "verify: {}", text(&out));
}

/// A kill -9 right after a configuration table's rows were committed (with their progress
/// row) and before the load ends: the rerun keeps them (no duplicate, no second copy) and the
/// migration ends identical.
#[test]
fn a_rerun_after_a_kill_keeps_the_copied_config_rows() {
    let (src, dst) = pair();
    let dir = tempfile::tempdir().expect("tempdir");
    let plan = online::write_plan(dir.path(), "extkill", &src, &dst, "");
    let log = dir.path().join("apply.log");
    let point = "copy-cdc-config-table-copied";
    let mut cmd = online::pgmove(&online::apply_args(&plan), &src, &dst);
    cmd.env("PGMOVE_TEST_PAUSE", point);
    let mut child = online::spawn_logged(cmd, &log);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(180);
    while !read_log(&log).contains(&format!("test pause at {point}")) {
        online::check_running(&mut child, &log);
        assert!(
            std::time::Instant::now() < deadline,
            "apply did not reach {point}\n{}",
            read_log(&log)
        );
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    child.kill().expect("kill -9");
    let _ = child.wait();
    assert_eq!(custom_srids(&dst), custom_srids(&src));
    // Written on the source while apply is down: change capture brings it.
    src.psql(
        "shop",
        "UPDATE spatial_ref_sys SET auth_srid = 7 WHERE srid = 910001",
    );

    let log2 = dir.path().join("apply2.log");
    let mut child = start_apply(&plan, &src, &dst, &log2);
    wait_loaded(&dst, "extkill", &mut child, &log2);
    wait_caught_up(&src, &dst, "extkill", &mut child, &log2);
    terminate(&mut child, &log2);
    assert!(
        !read_log(&log2).contains("the rows pg_dump would dump were copied"),
        "copied again: {}",
        read_log(&log2)
    );
    assert_eq!(
        dst.psql(
            "shop",
            "SELECT auth_srid FROM spatial_ref_sys WHERE srid = 910001"
        ),
        "7"
    );
    assert_eq!(
        dst.psql("shop", "SELECT count(*) FROM spatial_ref_sys"),
        src.psql("shop", "SELECT count(*) FROM spatial_ref_sys")
    );
    let out = verify(&plan, &src, &dst);
    assert!(out.status.success(), "verify: {}", text(&out));
}
