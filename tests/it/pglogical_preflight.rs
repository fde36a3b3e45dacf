//! `pgmove plan` with strategy pglogical: what preflight blocks on (preload, availability,
//! workers counted from what runs now, the provider DSN) and when the pair is ready. Each test
//! starts its own clusters (pglogical preloaded makes DROP DATABASE hang: none is dropped).

use crate::support;

use std::path::Path;

use serde_json::Value;
use support::online::{pgmove, PlanYaml, DB};
use support::{Cluster, Options};

/// `pgmove plan --format json`: the exit code and the report.
fn plan_json(path: &Path, src: &Cluster, dst: &Cluster) -> (i32, Value) {
    let out = pgmove(
        &["plan", path.to_str().expect("utf8"), "--format", "json"],
        src,
        dst,
    )
    .output()
    .expect("run pgmove");
    let v: Value = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "not JSON ({e}): {}\n{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )
    });
    (out.status.code().unwrap_or(-1), v)
}

/// The findings of `check`, on `side` when given.
fn findings<'a>(report: &'a Value, check: &str, side: Option<&str>) -> Vec<&'a Value> {
    report["findings"]
        .as_array()
        .expect("findings")
        .iter()
        .filter(|f| f["check"] == check && side.is_none_or(|s| f["side"] == s))
        .collect()
}

fn one<'a>(report: &'a Value, check: &str, side: &str) -> &'a Value {
    let f = findings(report, check, Some(side));
    assert_eq!(f.len(), 1, "{check} on the {side}: {report:#}");
    f[0]
}

fn text(v: &Value) -> &str {
    v.as_str().unwrap_or("")
}

fn plan(dir: &Path, name: &str, src: &Cluster, dst: &Cluster, extra: &str) -> std::path::PathBuf {
    PlanYaml {
        strategy: Some("pglogical"),
        extra,
        ..PlanYaml::default()
    }
    .write(dir, name, src, dst)
}

/// Servers without pglogical preloaded (and, on the target, without its package): `plan`
/// exits 2 with a blocker per missing piece, each with its fix; auto does not pick it.
#[test]
fn servers_without_pglogical_block_with_the_fixes() {
    let src = Cluster::start(Options::logical());
    let dst = Cluster::start(Options {
        hide_extensions: vec!["pglogical".to_string()],
        ..Options::default()
    });
    src.create_db(DB);
    dst.create_db(DB);
    src.psql(
        DB,
        "CREATE TABLE t (id int PRIMARY KEY); CREATE TABLE k (v text)",
    );
    let dir = tempfile::tempdir().expect("tempdir");

    let (code, r) = plan_json(&plan(dir.path(), "pgl_no", &src, &dst, ""), &src, &dst);
    assert_eq!(code, 2, "{r:#}");
    assert_eq!(r["decision"]["strategy"], Value::Null, "{r:#}");
    let why = text(&r["decision"]["why"]);
    assert!(
        why.contains("pglogical is not in the source's shared_preload_libraries"),
        "{why}"
    );
    assert!(
        why.contains("the pglogical extension is not available on the target"),
        "{why}"
    );
    assert!(!why.contains("not available in this version"), "{why}");

    for side in ["source", "target"] {
        let f = one(&r, "pglogical-preload", side);
        assert_eq!(f["severity"], "blocker");
        let fix = text(&f["fix"]);
        assert!(
            fix.contains("ALTER SYSTEM SET shared_preload_libraries = 'pglogical'"),
            "{fix}"
        );
        assert!(fix.contains(&format!("restart the {side} server")), "{fix}");
    }
    // The package is there on the source, not on the target.
    assert!(
        findings(&r, "pglogical-missing", Some("source")).is_empty(),
        "{r:#}"
    );
    let f = one(&r, "pglogical-missing", "target");
    assert_eq!(f["severity"], "blocker");
    assert!(
        text(&f["message"]).contains("not available on the target"),
        "{f:#}"
    );
    assert!(
        text(&f["fix"]).contains("apt-get install postgresql-15-pglogical"),
        "{f:#}"
    );
    // wal_level on the target does not matter; on the source it is logical here.
    assert!(findings(&r, "wal-level", None).is_empty(), "{r:#}");
    // The keyless table in pglogical's terms: refuse blocks, naming the insert set.
    let f = one(&r, "tables-without-key", "source");
    assert_eq!(f["severity"], "blocker");
    assert!(text(&f["fix"]).contains("ipgmove_pgl_no only"), "{f:#}");
    // Workers: the supervisor is not running yet, and is counted.
    let need = findings(&r, "pglogical-workers", None);
    assert!(need.is_empty(), "room enough by default: {need:#?}");

    // The text report says the same to a person.
    let out = pgmove(
        &[
            "plan",
            plan(dir.path(), "pgl_no", &src, &dst, "")
                .to_str()
                .expect("utf8"),
        ],
        &src,
        &dst,
    )
    .output()
    .expect("run");
    assert_eq!(out.status.code(), Some(2));
    let all =
        String::from_utf8_lossy(&out.stdout).to_string() + &String::from_utf8_lossy(&out.stderr);
    assert!(all.contains("postgresql-15-pglogical"), "{all}");

    // auto with prefer: not picked, and the reason names what is missing.
    let auto = PlanYaml {
        strategy: None,
        extra:
            "downtime: 1s\npglogical:\n  prefer: true\ncdc:\n  tables_without_key: insert-only\n",
        ..PlanYaml::default()
    }
    .write(dir.path(), "pgl_auto", &src, &dst);
    let (code, r) = plan_json(&auto, &src, &dst);
    assert_eq!(code, 0, "{r:#}");
    assert_eq!(r["decision"]["strategy"], "copy-cdc", "{r:#}");
    let rejected = r["decision"]["rejected"]
        .as_array()
        .expect("rejected")
        .iter()
        .find(|x| x["strategy"] == "pglogical")
        .expect("pglogical rejected")
        .to_string();
    assert!(
        rejected.contains("pglogical is not in the target's shared_preload_libraries"),
        "{rejected}"
    );
    assert!(
        rejected.contains("the pglogical extension is not available on the target"),
        "{rejected}"
    );
}

/// Two pglogical servers: too few background workers on the target is a blocker with the
/// numbers; the provider DSN is tried from pgmove's host (another server: blocker; nothing
/// listening: warning; the source: info); with room made, the pair is ready and the plan shows
/// the nodes, sets and subscription by name; a stored generated column then blocks it.
#[test]
fn pglogical_pair_counts_workers_and_checks_the_provider() {
    let src = Cluster::start(
        Options::pglogical()
            .set("max_replication_slots", "1")
            .set("max_wal_senders", "1"),
    );
    let dst = Cluster::start(Options::pglogical().set("max_worker_processes", "3"));
    src.create_db(DB);
    dst.create_db(DB);
    src.psql(
        DB,
        "CREATE TABLE t (id int PRIMARY KEY, v text); CREATE TABLE k (v text);
         INSERT INTO t SELECT g, 'x' FROM generate_series(1, 100) g;",
    );
    let dir = tempfile::tempdir().expect("tempdir");
    let insert_only = "cdc:\n  tables_without_key: insert-only\n";

    let path = plan(dir.path(), "pgl_pair", &src, &dst, insert_only);
    let (code, r) = plan_json(&path, &src, &dst);
    assert_eq!(code, 2, "{r:#}");
    assert_eq!(r["decision"]["strategy"], "pglogical", "{r:#}");
    let f = one(&r, "pglogical-workers", "target");
    assert_eq!(f["severity"], "blocker");
    let m = text(&f["message"]);
    // What runs now on the target, counted here independently: pglogical's supervisor and
    // managers, the logical replication launcher.
    let used: i64 = dst
        .psql(
            "postgres",
            "SELECT count(*) FROM pg_stat_activity WHERE backend_type IN ('pglogical supervisor', 'logical replication launcher') OR backend_type LIKE 'pglogical manager%'",
        )
        .trim()
        .parse()
        .expect("a count");
    assert!(used >= 1, "the supervisor runs");
    assert!(
        m.contains(&format!(
            "max_worker_processes = 3 and {used} background workers are in use now, so {} are free",
            3 - used
        )),
        "{m}"
    );
    assert!(m.contains("pglogical needs 3 on the target"), "{m}");
    assert!(m.contains(&format!("a manager for database {DB}")), "{m}");
    assert!(
        m.contains("the apply worker of subscription pgmove_pgl_pair"),
        "{m}"
    );
    assert!(m.contains("one table sync worker at a time"), "{m}");
    assert!(
        text(&f["fix"]).contains("ALTER SYSTEM SET max_worker_processes"),
        "{f:#}"
    );
    assert!(
        findings(&r, "pglogical-workers", Some("source")).is_empty(),
        "{r:#}"
    );
    for check in [
        "pglogical-preload",
        "pglogical-missing",
        "pglogical-version",
    ] {
        assert!(findings(&r, check, None).is_empty(), "{check}: {r:#}");
    }
    // The source has room for one slot and one WAL sender; the subscription and the table
    // sync beside it need two of each.
    for (check, setting, what) in [
        (
            "pglogical-slots",
            "max_replication_slots",
            "replication slots exist",
        ),
        (
            "pglogical-wal-senders",
            "max_wal_senders",
            "WAL senders are",
        ),
    ] {
        let f = one(&r, check, "source");
        assert_eq!(f["severity"], "blocker");
        let m = text(&f["message"]);
        assert!(m.contains(&format!("{setting} = 1 and 0 {what}")), "{m}");
        assert!(
            m.contains("so 1 are free; pglogical needs 2 on the source"),
            "{m}"
        );
        assert!(m.contains("subscription pgmove_pgl_pair"), "{m}");
        assert!(
            text(&f["fix"]).contains(&format!("ALTER SYSTEM SET {setting} = '")),
            "{f:#}"
        );
    }
    // copy-cdc's one-slot check does not repeat them.
    assert!(findings(&r, "replication-slots", None).is_empty(), "{r:#}");
    // insert-only in pglogical's terms.
    let f = one(&r, "tables-without-key", "source");
    assert_eq!(f["severity"], "warning");
    assert!(
        text(&f["message"]).contains("set ipgmove_pgl_pair only"),
        "{f:#}"
    );
    // No provider_dsn: the source's DSN, and the target server's own try is apply's.
    let f = one(&r, "provider-dsn", "source");
    assert_eq!(f["severity"], "info");
    assert!(
        text(&f["message"]).contains("as source.dsn gives it"),
        "{f:#}"
    );
    assert!(
        text(&f["message"])
            .contains("pglogical.create_subscription connects from the target server"),
        "{f:#}"
    );

    dst.psql("postgres", "ALTER SYSTEM SET max_worker_processes = 16");
    dst.restart();
    src.psql("postgres", "ALTER SYSTEM SET max_replication_slots = 10");
    src.psql("postgres", "ALTER SYSTEM SET max_wal_senders = 10");
    src.restart();

    // provider_dsn naming another database of the source server: a blocker.
    let elsewhere = format!(
        "{insert_only}pglogical:\n  provider_dsn: host=127.0.0.1 port={} dbname=postgres user=postgres sslmode=disable\n",
        src.port
    );
    let (code, r) = plan_json(
        &plan(dir.path(), "pgl_pair", &src, &dst, &elsewhere),
        &src,
        &dst,
    );
    assert_eq!(code, 2, "{r:#}");
    let f = one(&r, "provider-dsn", "source");
    assert_eq!(f["severity"], "blocker");
    assert!(
        text(&f["message"]).contains("reaches database postgres of a server started at"),
        "{f:#}"
    );
    // Nothing listening: a warning (the target server may still reach it), with the error.
    let closed = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = closed.local_addr().expect("addr").port();
    drop(closed);
    let nowhere = format!(
        "{insert_only}pglogical:\n  provider_dsn: host=127.0.0.1 port={port} dbname={DB} user=postgres sslmode=disable connect_timeout=3\n"
    );
    let (code, r) = plan_json(
        &plan(dir.path(), "pgl_pair", &src, &dst, &nowhere),
        &src,
        &dst,
    );
    assert_eq!(code, 0, "{r:#}");
    let f = one(&r, "provider-dsn", "source");
    assert_eq!(f["severity"], "warning");
    assert!(
        text(&f["message"]).contains("pgmove's host cannot connect"),
        "{f:#}"
    );
    assert!(
        !r.to_string().contains(&src.password),
        "a password in the report"
    );

    // The source itself, as the target server would reach it: ready.
    let good = format!(
        "{insert_only}pglogical:\n  provider_dsn: host=127.0.0.1 port={} dbname={DB} user=postgres sslmode=disable\n",
        src.port
    );
    let path = plan(dir.path(), "pgl_pair", &src, &dst, &good);
    let (code, r) = plan_json(&path, &src, &dst);
    assert_eq!(code, 0, "{r:#}");
    assert_eq!(r["ready"], true, "{r:#}");
    assert_eq!(r["blockers"], 0, "{r:#}");
    assert!(findings(&r, "pglogical-workers", None).is_empty(), "{r:#}");
    let f = one(&r, "provider-dsn", "source");
    assert_eq!(f["severity"], "info");
    assert!(
        text(&f["message"]).contains("as the same server and database"),
        "{f:#}"
    );
    assert!(
        !r.to_string().contains(&src.password),
        "a password in the report"
    );
    // The steps name the nodes, the sets and the subscription.
    let steps = r["decision"]["steps"].to_string();
    for name in [
        "pgmove_pgl_pair_provider",
        "pgmove_pgl_pair_subscriber",
        "set pgmove_pgl_pair (update, delete)",
        "set ipgmove_pgl_pair (insert, truncate)",
        "subscription pgmove_pgl_pair",
        "its DSN: pglogical.provider_dsn",
    ] {
        assert!(steps.contains(name), "{name}: {steps}");
    }
    // strategy auto on this pair: pglogical when preferred, else rejected as not preferred.
    for (prefer, chosen) in [("true", "pglogical"), ("false", "copy-cdc")] {
        let auto = PlanYaml {
            strategy: None,
            extra: &format!("downtime: 1s\n{insert_only}pglogical:\n  prefer: {prefer}\n"),
            ..PlanYaml::default()
        }
        .write(dir.path(), "pgl_auto", &src, &dst);
        let (code, r) = plan_json(&auto, &src, &dst);
        assert_eq!(code, 0, "{r:#}");
        assert_eq!(r["decision"]["strategy"], chosen, "{r:#}");
        let rejected = r["decision"]["rejected"].to_string();
        if prefer == "true" {
            assert!(
                text(&r["decision"]["why"]).contains("pglogical.prefer is true"),
                "{r:#}"
            );
            assert!(rejected.contains("pglogical was preferred"), "{rejected}");
        } else {
            assert!(
                rejected.contains(
                    "not preferred: both servers have pglogical, but pglogical.prefer is false"
                ),
                "{rejected}"
            );
        }
    }
    // A stored generated column, which pglogical 2.4 cannot copy (issue #335): strategy
    // pglogical is blocked naming the table and column, and auto with prefer picks copy-cdc.
    src.psql(
        DB,
        "CREATE TABLE people (id int PRIMARY KEY, name text,
           name_lc text GENERATED ALWAYS AS (lower(name)) STORED)",
    );
    let (code, r) = plan_json(&path, &src, &dst);
    assert_eq!(code, 2, "{r:#}");
    let f = one(&r, "pglogical-generated-columns", "source");
    assert_eq!(f["severity"], "blocker");
    let m = text(&f["message"]);
    assert!(m.contains("public.people.name_lc"), "{m}");
    assert!(m.contains("1 stored generated column(s)"), "{m}");
    let fix = text(&f["fix"]);
    assert!(fix.contains("copy-cdc or dump-restore"), "{fix}");
    assert!(
        fix.contains("ALTER TABLE \"public\".\"people\" ALTER COLUMN \"name_lc\" DROP EXPRESSION;"),
        "{fix}"
    );
    let auto = PlanYaml {
        strategy: None,
        extra: &format!("downtime: 1s\n{insert_only}pglogical:\n  prefer: true\n"),
        ..PlanYaml::default()
    }
    .write(dir.path(), "pgl_auto", &src, &dst);
    let (code, r) = plan_json(&auto, &src, &dst);
    assert_eq!(code, 0, "{r:#}");
    assert_eq!(r["decision"]["strategy"], "copy-cdc", "{r:#}");
    let rejected = r["decision"]["rejected"].to_string();
    assert!(
        rejected.contains("stored generated column(s) (public.people.name_lc)"),
        "{rejected}"
    );
    assert!(
        findings(&r, "pglogical-generated-columns", None).is_empty(),
        "{r:#}"
    );

    // Nothing was created by plan on either server.
    for c in [&src, &dst] {
        assert_eq!(
            c.psql(
                DB,
                "SELECT count(*) FROM pg_extension WHERE extname = 'pglogical'"
            )
            .trim(),
            "0"
        );
    }
}
