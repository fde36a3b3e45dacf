//! A read replica as the source: a real streaming standby (`Cluster::standby_of`) of a
//! simulated RDS primary, so it looks like an RDS read replica. copy-cdc is refused with the
//! reason and the fix, `strategy: auto` does not pick an online strategy for it, and
//! dump-restore from it works end to end (apply, then verify identical), as the migrating role
//! on both sides, into a simulated RDS target.

use crate::support;
use crate::support::online::text;

use std::path::{Path, PathBuf};
use std::process::Output;

use serde_json::Value;
use support::managed::{Flavour, Managed, MIGRATOR};
use support::{Cluster, Options};

fn write_plan(dir: &Path, name: &str, source_port: u16, dst: &Managed, extra: &str) -> PathBuf {
    let path = dir.join(format!("{name}.yaml"));
    std::fs::write(
        &path,
        format!(
            "version: 1\nname: {name}\nsource:\n  dsn: postgres://{MIGRATOR}@127.0.0.1:{source_port}/app\n  password: {{env: SRC_PW}}\n  sslmode: disable\ntarget:\n  dsn: {}\n  password: {{env: DST_PW}}\n  sslmode: disable\n{extra}",
            dst.uri_as(MIGRATOR, "app"),
        ),
    )
    .expect("write plan");
    path
}

fn pgmove(args: &[&str], src: &Managed, dst: &Managed) -> Output {
    src.pgmove_as_migrators(dst, args)
}

fn plan_json(p: &Path, src: &Managed, dst: &Managed) -> (Output, Value) {
    let out = pgmove(
        &["plan", p.to_str().expect("utf8"), "--format", "json"],
        src,
        dst,
    );
    let v = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("not JSON ({e}): {}", text(&out)));
    (out, v)
}

fn finding<'a>(report: &'a Value, check: &str) -> Vec<&'a Value> {
    report["findings"]
        .as_array()
        .expect("findings")
        .iter()
        .filter(|f| f["check"] == check)
        .collect()
}

#[test]
fn a_read_replica_source_refuses_copy_cdc_and_moves_by_dump_restore() {
    // The primary: a simulated RDS instance whose master user made the tables and let the
    // migrating role read them (through a group role, `readers`, that the target has too);
    // the replica streams all of it, roles included.
    let primary = Managed::start(Flavour::Rds, Options::default());
    primary.create_db("app");
    primary.psql_master(
        "app",
        &format!(
            "CREATE ROLE readers NOLOGIN; GRANT readers TO {MIGRATOR};
             CREATE SCHEMA shop; GRANT USAGE ON SCHEMA shop TO readers;
             CREATE TABLE shop.customers (id serial PRIMARY KEY, name text NOT NULL, since date);
             INSERT INTO shop.customers (name, since)
                  SELECT 'customer ' || g, date '2020-01-01' + g FROM generate_series(1, 500) g;
             CREATE TABLE shop.orders (id bigint PRIMARY KEY, customer int REFERENCES shop.customers,
                                       total numeric(10,2), note jsonb);
             INSERT INTO shop.orders
                  SELECT g, 1 + g % 500, g * 1.25, jsonb_build_object('n', g) FROM generate_series(1, 2000) g;
             GRANT SELECT ON ALL TABLES IN SCHEMA shop TO readers;
             GRANT SELECT ON ALL SEQUENCES IN SCHEMA shop TO readers;"
        ),
    );
    let replica = Cluster::standby_of(&primary.cluster);
    replica.wait_replayed(&primary.cluster);
    assert_eq!(replica.psql("app", "SELECT pg_is_in_recovery()"), "t");

    // The target: another RDS instance, where the migrating role may create schemas.
    let dst = Managed::start(Flavour::Rds, Options::default());
    dst.create_db("app");
    dst.psql_master(
        "app",
        &format!("CREATE ROLE readers NOLOGIN; GRANT CREATE ON DATABASE app TO {MIGRATOR};"),
    );
    let dir = tempfile::tempdir().expect("tempdir");

    // copy-cdc from the replica: refused, with the reason and both ways out.
    let cdc = write_plan(
        dir.path(),
        "rr_cdc",
        replica.port,
        &dst,
        "strategy: copy-cdc\nowner: target-user\ncdc:\n  ddl: ignore\n",
    );
    let (out, report) = plan_json(&cdc, &primary, &dst);
    assert_eq!(out.status.code(), Some(2), "{report:#}");
    let f = finding(&report, "source-standby");
    assert_eq!(f.len(), 1, "{report:#}");
    assert_eq!(f[0]["severity"], "blocker");
    let message = f[0]["message"].as_str().unwrap_or_default();
    assert!(
        message.starts_with("the source is a standby (read replica, in recovery): PostgreSQL 15")
            && message.contains("cannot decode WAL on a standby (that arrived in PostgreSQL 16)")
            && message.ends_with("strategy copy-cdc cannot use it"),
        "{message}"
    );
    let fix = f[0]["fix"].as_str().unwrap_or_default();
    // The replica carries the primary's rds.* settings: it is an RDS read replica.
    assert!(
        fix.starts_with(
            "point source.dsn at the primary: the instance endpoint of the source (RDS)"
        ),
        "{fix}"
    );
    assert!(fix.contains("or set strategy: dump-restore"), "{fix}");
    assert!(
        fix.contains("hot_standby_feedback = 1 and max_standby_streaming_delay = -1"),
        "{fix}"
    );
    let out = pgmove(
        &["apply", cdc.to_str().expect("utf8"), "--yes"],
        &primary,
        &dst,
    );
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert!(text(&out).contains("standby"), "{}", text(&out));
    assert_eq!(
        dst.cluster.psql(
            "app",
            "SELECT count(*) FROM pg_namespace WHERE nspname = 'pgmove'"
        ),
        "0",
        "a refused apply writes nothing"
    );

    // The replica as a target (the Aurora database, still empty, as the source): refused.
    let to_replica = dir.path().join("rr_target.yaml");
    std::fs::write(
        &to_replica,
        format!(
            "version: 1\nname: rr_target\nsource:\n  dsn: {}\n  password: {{env: DST_PW}}\n  sslmode: disable\ntarget:\n  dsn: postgres://{MIGRATOR}@127.0.0.1:{}/app\n  password: {{env: SRC_PW}}\n  sslmode: disable\nstrategy: dump-restore\nowner: target-user\n",
            dst.uri_as(MIGRATOR, "app"),
            replica.port
        ),
    )
    .expect("write plan");
    let (out, report) = plan_json(&to_replica, &primary, &dst);
    assert_eq!(out.status.code(), Some(2), "{report:#}");
    let f = finding(&report, "target-standby");
    assert_eq!(f.len(), 1, "{report:#}");
    assert_eq!(f[0]["severity"], "blocker");
    assert!(
        f[0]["fix"]
            .as_str()
            .unwrap_or_default()
            .starts_with("point target.dsn at the primary: the target instance's endpoint (RDS)"),
        "{:#}",
        f[0]
    );

    // strategy auto with a budget no full copy fits: still no online strategy from a replica.
    let auto = write_plan(
        dir.path(),
        "rr_auto",
        replica.port,
        &dst,
        "downtime: 1s\nowner: target-user\n",
    );
    let (_, report) = plan_json(&auto, &primary, &dst);
    assert_eq!(report["decision"]["strategy"], "dump-restore", "{report:#}");
    let cdc_rejected = report["decision"]["rejected"]
        .as_array()
        .expect("rejected")
        .iter()
        .find(|r| r["strategy"] == "copy-cdc")
        .expect("copy-cdc rejected")
        .to_string();
    assert!(
        cdc_rejected.contains("the source is a standby"),
        "{cdc_rejected}"
    );

    // dump-restore from the replica: a warning about its settings, then it moves everything.
    let dr = write_plan(
        dir.path(),
        "rr_dump",
        replica.port,
        &dst,
        "strategy: dump-restore\nowner: target-user\n",
    );
    let (out, report) = plan_json(&dr, &primary, &dst);
    assert_eq!(out.status.code(), Some(0), "{report:#}");
    let f = finding(&report, "source-standby");
    assert_eq!(f.len(), 1, "{report:#}");
    assert_eq!(f[0]["severity"], "warning");
    assert!(
        f[0]["message"]
            .as_str()
            .unwrap_or_default()
            .contains("hot_standby_feedback is off, max_standby_streaming_delay is 30000 ms"),
        "{:#}",
        f[0]
    );
    assert!(
        f[0]["fix"]
            .as_str()
            .unwrap_or_default()
            .contains("set hot_standby_feedback = 1 and max_standby_streaming_delay = -1 in the source's DB parameter group"),
        "{:#}",
        f[0]
    );
    let out = pgmove(
        &["apply", dr.to_str().expect("utf8"), "--yes"],
        &primary,
        &dst,
    );
    assert!(out.status.success(), "apply: {}", text(&out));
    let out = pgmove(&["verify", dr.to_str().expect("utf8")], &primary, &dst);
    assert!(
        out.status.success() && String::from_utf8_lossy(&out.stdout).contains("IDENTICAL"),
        "verify: {}",
        text(&out)
    );
    assert_eq!(
        dst.cluster
            .psql("app", "SELECT count(*), sum(total) FROM shop.orders"),
        "2000|2501250.00"
    );
}
