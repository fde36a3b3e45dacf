//! `pgmove plan` against real servers: preflight findings, the report formats, and proof that
//! planning writes nothing.

use crate::support;

use std::path::{Path, PathBuf};
use std::process::Output;

use serde_json::Value;
use support::golden;
use support::online::PlanYaml;
use support::{Cluster, Options};

fn pgmove(args: &[&str], envs: &[(&str, &str)]) -> Output {
    let mut c = std::process::Command::new(env!("CARGO_BIN_EXE_pgmove"));
    c.args(args).env("NO_COLOR", "1").env_remove("PGPASSWORD");
    for (k, v) in envs {
        c.env(k, v);
    }
    c.output().expect("run pgmove")
}

/// Writes a plan for `src` and `dst` (database `db` on both) with extra top-level YAML.
fn write_plan(
    dir: &Path,
    name: &str,
    src: &Cluster,
    dst: &Cluster,
    db: &str,
    extra: &str,
) -> PathBuf {
    PlanYaml {
        strategy: None,
        jobs: None,
        db,
        extra,
    }
    .write(dir, name, src, dst)
}

fn plan_json(path: &Path, src: &Cluster, dst: &Cluster) -> (i32, Value) {
    let out = pgmove(
        &["plan", path.to_str().expect("utf8"), "--format", "json"],
        &[("SRC_PW", &src.password), ("DST_PW", &dst.password)],
    );
    let code = out.status.code().unwrap_or(-1);
    let v: Value = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "not JSON ({e}): {}\n{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )
    });
    (code, v)
}

fn finding<'a>(report: &'a Value, check: &str) -> &'a Value {
    report["findings"]
        .as_array()
        .expect("findings")
        .iter()
        .find(|f| f["check"] == check)
        .unwrap_or_else(|| panic!("no finding {check} in {report:#}"))
}

fn pair(src_opts: Options, dst_opts: Options) -> (Cluster, Cluster) {
    let src = Cluster::start(src_opts);
    let dst = Cluster::start(dst_opts);
    src.create_db("app");
    dst.create_db("app");
    (src, dst)
}

#[test]
fn wal_level_replica_is_a_blocker_naming_the_setting_and_the_restart() {
    let (src, dst) = pair(Options::default(), Options::default());
    src.psql("app", "CREATE TABLE t (id int PRIMARY KEY)");
    let dir = tempfile::tempdir().expect("tempdir");
    let plan = write_plan(
        dir.path(),
        "walcheck",
        &src,
        &dst,
        "app",
        "strategy: copy-cdc\n",
    );
    let (code, report) = plan_json(&plan, &src, &dst);
    assert_eq!(code, 2, "{report:#}");
    let f = finding(&report, "wal-level");
    assert_eq!(f["severity"], "blocker");
    assert_eq!(f["side"], "source");
    assert!(
        f["message"]
            .as_str()
            .expect("msg")
            .contains("wal_level is replica"),
        "{f}"
    );
    let fix = f["fix"].as_str().expect("fix");
    assert!(
        fix.contains("wal_level = 'logical'") && fix.contains("restart"),
        "{fix}"
    );
    assert_eq!(report["ready"], false);

    // The text report says the same to a person.
    let out = pgmove(
        &["plan", plan.to_str().expect("utf8")],
        &[("SRC_PW", &src.password), ("DST_PW", &dst.password)],
    );
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("Blockers"), "{text}");
    assert!(
        text.contains("[wal-level] source: wal_level is replica"),
        "{text}"
    );
    assert!(
        text.contains("fix: ALTER SYSTEM SET wal_level = 'logical'"),
        "{text}"
    );
}

#[test]
fn a_table_without_a_key_gets_the_four_choices() {
    let (src, dst) = pair(Options::logical(), Options::default());
    src.psql("app", "CREATE TABLE keyed (id int PRIMARY KEY); CREATE TABLE log_lines (at timestamptz, line text)");
    let dir = tempfile::tempdir().expect("tempdir");
    let plan = write_plan(
        dir.path(),
        "nokey",
        &src,
        &dst,
        "app",
        "strategy: copy-cdc\n",
    );
    let (_, report) = plan_json(&plan, &src, &dst);
    let f = finding(&report, "tables-without-key");
    assert_eq!(f["object"], "public.log_lines");
    let all = format!("{} {}", f["message"], f["fix"]);
    for choice in ["refuse", "replica-identity-full", "insert-only", "exclude"] {
        assert!(all.contains(choice), "{choice} missing from {all}");
    }
    assert!(!all.contains("public.keyed"));

    // With a choice made, it is no longer a blocker.
    let plan = write_plan(
        dir.path(),
        "nokey2",
        &src,
        &dst,
        "app",
        "strategy: copy-cdc\ncdc:\n  tables_without_key: insert-only\n",
    );
    let (_, report) = plan_json(&plan, &src, &dst);
    assert_eq!(
        finding(&report, "tables-without-key")["severity"],
        "warning"
    );
}

#[test]
fn postgis_missing_on_the_target_is_a_blocker_naming_the_package() {
    let (src, dst) = pair(
        Options::default(),
        Options {
            hide_extensions: vec!["postgis".to_string()],
            ..Options::default()
        },
    );
    src.psql(
        "app",
        "CREATE EXTENSION postgis; CREATE TABLE places (id int PRIMARY KEY, g geometry)",
    );
    let dir = tempfile::tempdir().expect("tempdir");
    let plan = write_plan(dir.path(), "gis", &src, &dst, "app", "");
    let (code, report) = plan_json(&plan, &src, &dst);
    assert_eq!(code, 2);
    let f = finding(&report, "extension-missing");
    assert_eq!(f["severity"], "blocker");
    assert_eq!(f["side"], "target");
    assert!(
        f["message"].as_str().expect("msg").contains("postgis"),
        "{f}"
    );
    assert!(
        f["fix"]
            .as_str()
            .expect("fix")
            .contains("postgresql-15-postgis-3"),
        "{f}"
    );
}

#[test]
fn a_role_without_replication_is_named() {
    let (src, dst) = pair(Options::logical(), Options::default());
    src.psql(
        "app",
        "CREATE TABLE t (id int PRIMARY KEY); CREATE ROLE app_reader LOGIN PASSWORD 'reader-pw'; GRANT SELECT ON t TO app_reader;",
    );
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("role.yaml");
    std::fs::write(
        &path,
        format!(
            "version: 1\nname: role\nstrategy: copy-cdc\nsource:\n  dsn: postgres://app_reader@127.0.0.1:{}/app\n  password: {{env: SRC_PW}}\n  sslmode: disable\ntarget:\n  dsn: postgres://postgres@127.0.0.1:{}/app\n  password: {{env: DST_PW}}\n  sslmode: disable\n",
            src.port, dst.port
        ),
    )
    .expect("write");
    let out = pgmove(
        &["plan", path.to_str().expect("utf8"), "--format", "json"],
        &[("SRC_PW", "reader-pw"), ("DST_PW", &dst.password)],
    );
    let report: Value = serde_json::from_slice(&out.stdout).expect("json");
    let f = finding(&report, "source-replication-right");
    assert!(
        f["message"].as_str().expect("msg").contains("app_reader"),
        "{f}"
    );
    assert!(
        f["fix"]
            .as_str()
            .expect("fix")
            .contains("ALTER ROLE \"app_reader\" WITH REPLICATION"),
        "{f}"
    );
    // The password is nowhere in the output.
    assert!(!String::from_utf8_lossy(&out.stdout).contains("reader-pw"));
    assert!(!String::from_utf8_lossy(&out.stderr).contains("reader-pw"));
}

/// Next transaction id, slot count and a catalog fingerprint.
fn server_state(c: &Cluster, db: &str) -> String {
    c.psql(
        db,
        "SELECT txid_snapshot_xmax(txid_current_snapshot()) || ' ' || (SELECT count(*) FROM pg_replication_slots) || ' ' || (SELECT count(*) || ':' || sum(xmin::text::bigint) FROM pg_class) || ' ' || (SELECT count(*) FROM pg_namespace)",
    )
}

/// WAL records written between `from` and `to`, other than the background processes' own.
fn foreign_wal_records(c: &Cluster, db: &str, from: &str, to: &str) -> String {
    if from == to {
        return String::new();
    }
    c.psql(db, "SELECT pg_switch_wal()");
    c.psql(
        db,
        &format!(
            "SELECT coalesce(string_agg(resource_manager || ':' || record_type, ','), '') FROM pg_get_wal_records_info('{from}', '{to}') WHERE resource_manager NOT IN ('Standby', 'XLOG')"
        ),
    )
}

#[test]
fn plan_writes_nothing_to_either_server() {
    let (src, dst) = pair(Options::logical(), Options::logical());
    src.psql(
        "app",
        &std::fs::read_to_string("tests/fixtures/many_types.sql").expect("fixture"),
    );
    for c in [&src, &dst] {
        c.psql("app", "CREATE EXTENSION pg_walinspect");
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let plan = write_plan(
        dir.path(),
        "readonly",
        &src,
        &dst,
        "app",
        "strategy: copy-cdc\ncdc:\n  tables_without_key: insert-only\n",
    );
    // A first run warms the catalog caches (reading fresh catalog rows may prune them, which
    // any reader, psql included, does).
    // copy-cdc cannot run in this version (exit 2), but every check, the replication
    // connection probe included, still runs.
    let (_, report) = plan_json(&plan, &src, &dst);
    assert_eq!(report["blockers"], 0, "{report:#}");
    let before: Vec<(String, String)> = [&src, &dst]
        .iter()
        .map(|c| {
            (
                server_state(c, "app"),
                c.psql("app", "SELECT pg_current_wal_insert_lsn()"),
            )
        })
        .collect();
    let (_, report) = plan_json(&plan, &src, &dst);
    assert_eq!(report["blockers"], 0, "{report:#}");
    for (c, (state, lsn)) in [&src, &dst].iter().zip(before) {
        let end = c.psql("app", "SELECT pg_current_wal_insert_lsn()");
        assert_eq!(
            server_state(c, "app"),
            state,
            "catalog, xid or slots changed"
        );
        assert_eq!(
            foreign_wal_records(c, "app", &lsn, &end),
            "",
            "plan wrote WAL"
        );
    }
    assert_eq!(
        src.psql("app", "SELECT count(*) FROM pg_replication_slots"),
        "0"
    );
}

/// Replaces what changes from run to run (ports, paths, versions) with placeholders.
fn normalize(text: &str, src: &Cluster, dst: &Cluster, plan: &Path) -> String {
    let version = src.psql("postgres", "SHOW server_version");
    text.replace(&src.port.to_string(), "SRC_PORT")
        .replace(&dst.port.to_string(), "DST_PORT")
        .replace(plan.to_str().expect("utf8"), "PLAN.yaml")
        .replace(&version, "VERSION")
}

#[test]
fn plan_reports_match_their_golden_files() {
    let (src, dst) = pair(Options::default(), Options::default());
    src.psql(
        "app",
        "CREATE TABLE orders (id bigint PRIMARY KEY, note text); INSERT INTO orders SELECT g, 'n' FROM generate_series(1, 1000) g;
         CREATE TABLE notes (body text);
         CREATE TABLE m (id int, k int, PRIMARY KEY (id, k)) PARTITION BY RANGE (id);
         CREATE TABLE m1 PARTITION OF m FOR VALUES FROM (0) TO (100);
         SELECT lo_from_bytea(0, '\\x00');",
    );
    let dir = tempfile::tempdir().expect("tempdir");
    let plan = write_plan(
        dir.path(),
        "golden",
        &src,
        &dst,
        "app",
        "downtime: 1h\njobs: 2\n",
    );
    // The report names the pg_dump apply runs and the pg_restore of its installation.
    let (code, report) = plan_json(&plan, &src, &dst);
    assert_eq!(code, 0, "{report:#}");
    let clients = report["clients"].as_array().expect("clients");
    assert_eq!(clients.len(), 2, "{report:#}");
    assert_eq!(clients[0]["name"], "pg_dump");
    assert_eq!(clients[1]["name"], "pg_restore");
    let dump = PathBuf::from(clients[0]["path"].as_str().expect("path"));
    let restore = PathBuf::from(clients[1]["path"].as_str().expect("path"));
    let client_dir = dump.parent().expect("dir").display().to_string();
    assert_eq!(dump.parent(), restore.parent(), "{report:#}");
    let printed = std::process::Command::new(&dump)
        .arg("--version")
        .output()
        .expect("run the reported pg_dump");
    let client_version = clients[0]["version"].as_str().expect("version").to_string();
    assert!(
        String::from_utf8_lossy(&printed.stdout)
            .contains(&format!("(PostgreSQL) {client_version}")),
        "{report:#}"
    );
    assert!(clients[0]["major"].as_u64().expect("major") >= 15);
    assert_eq!(report["decision"]["versions"]["source_major"], "15");
    assert_eq!(
        report["decision"]["versions"]["copy_cdc"]["proto_version"],
        2
    );

    for (format, file) in [
        ("text", "plan.txt"),
        ("json", "plan.json"),
        ("markdown", "plan.md"),
    ] {
        let out = pgmove(
            &["plan", plan.to_str().expect("utf8"), "--format", format],
            &[("SRC_PW", &src.password), ("DST_PW", &dst.password)],
        );
        assert_eq!(
            out.status.code(),
            Some(0),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        golden(
            file,
            // The client tools' directory and version vary from machine to machine.
            &normalize(&String::from_utf8_lossy(&out.stdout), &src, &dst, &plan)
                .replace(&client_dir, "BINDIR")
                .replace(&client_version, "CLIENT_VERSION"),
        );
    }

    // A bin_dir whose pg_dump is older than the source: a blocker naming it and the package.
    let bin = dir.path().join("old-bin");
    std::fs::create_dir(&bin).expect("bin dir");
    for tool in ["pg_dump", "pg_restore"] {
        let p = bin.join(tool);
        std::fs::write(&p, format!("#!/bin/sh\necho '{tool} (PostgreSQL) 13.16'\n"))
            .expect("write");
        std::fs::set_permissions(&p, std::os::unix::fs::PermissionsExt::from_mode(0o755))
            .expect("chmod");
    }
    let old = write_plan(
        dir.path(),
        "oldclient",
        &src,
        &dst,
        "app",
        &format!("downtime: 1h\nbin_dir: {}\n", bin.display()),
    );
    let (code, report) = plan_json(&old, &src, &dst);
    assert_eq!(code, 2, "{report:#}");
    let f = report["findings"]
        .as_array()
        .expect("findings")
        .iter()
        .find(|f| {
            f["check"] == "client-version" && f["message"].to_string().contains("pg_dump 13.16")
        })
        .unwrap_or_else(|| panic!("no pg_dump finding in {report:#}"));
    assert_eq!(f["severity"], "blocker");
    let all = format!("{} {}", f["message"], f["fix"]);
    assert!(all.contains(&format!("{}/pg_dump", bin.display())), "{all}");
    assert!(
        all.contains("older than the source server (PostgreSQL 15)"),
        "{all}"
    );
    assert!(
        all.contains("apt-get install postgresql-client-15"),
        "{all}"
    );
    assert_eq!(
        report["clients"].as_array().map(Vec::len),
        Some(0),
        "{report:#}"
    );
}

#[test]
fn a_bad_plan_exits_2_with_its_location_and_a_missing_password_variable_is_named() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("bad.yaml");
    std::fs::write(&path, "version: 1\nname: x\ndowntme: 5m\nsource:\n  dsn: postgres://h/db\ntarget:\n  dsn: postgres://h/db\n").expect("write");
    let out = pgmove(&["plan", path.to_str().expect("utf8")], &[]);
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains(&format!("{}:3:1: unknown key `downtme`", path.display())),
        "{err}"
    );
    assert!(err.contains("did you mean `downtime`?"), "{err}");

    std::fs::write(&path, "version: 1\nname: x\nsource:\n  dsn: postgres://h/db\n  password: {env: PGMOVE_TEST_UNSET_VAR}\ntarget:\n  dsn: postgres://h/db\n").expect("write");
    let out = pgmove(&["plan", path.to_str().expect("utf8")], &[]);
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains(
            ":5:13: source.password: environment variable PGMOVE_TEST_UNSET_VAR is not set"
        ),
        "{err}"
    );
}

#[test]
fn copy_cdc_without_pg_restore_is_a_blocker_naming_the_real_package() {
    let (src, dst) = pair(Options::logical(), Options::default());
    src.psql("app", "CREATE TABLE t (id int PRIMARY KEY)");
    let dir = tempfile::tempdir().expect("tempdir");
    // A bin_dir with pg_dump and psql, but no pg_restore.
    let bin = dir.path().join("bin");
    std::fs::create_dir(&bin).expect("bin dir");
    for tool in ["pg_dump", "psql"] {
        std::os::unix::fs::symlink(format!("/usr/lib/postgresql/15/bin/{tool}"), bin.join(tool))
            .expect("symlink");
    }
    let plan = write_plan(
        dir.path(),
        "nopgrestore",
        &src,
        &dst,
        "app",
        &format!(
            "strategy: copy-cdc\nbin_dir: {}\ncdc:\n  tables_without_key: insert-only\n",
            bin.display()
        ),
    );
    let (code, report) = plan_json(&plan, &src, &dst);
    assert_eq!(code, 2, "{report:#}");
    let f = report["findings"]
        .as_array()
        .expect("findings")
        .iter()
        .find(|f| f["check"] == "client-version" && f["message"].to_string().contains("pg_restore"))
        .unwrap_or_else(|| panic!("no pg_restore finding in {report:#}"));
    assert_eq!(f["severity"], "blocker");
    let all = format!("{} {}", f["message"], f["fix"]);
    assert!(all.contains("postgresql-client-15"), "{all}");
    assert!(!all.contains("postgresql-client-0"), "{all}");
    // vacuumdb is not needed (the analyze step sends its own VACUUM statements).
    assert!(!all.contains("vacuumdb"), "{all}");
}
