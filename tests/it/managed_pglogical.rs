//! Issue 14, strategy pglogical on managed servers: a simulated RDS source and a simulated
//! Aurora target (`support::managed`), pglogical preloaded through their parameter group and
//! listed in `rds.extensions`, and pgmove connected as the master user on both (a member of
//! `rds_superuser`, not a superuser), the path RDS documents for pglogical: the master user
//! creates the extension, the nodes, sets and subscription, and the subscription's provider
//! connection logs in as a role with `rds_replication`; and what preflight says when a
//! role lacks what pglogical needs there.
//!
//! pglogical in `shared_preload_libraries` makes `DROP DATABASE` hang on PostgreSQL 15: each
//! test starts its own clusters and never drops a database there.

use crate::support;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use serde_json::Value;
use support::managed::{Flavour, Managed, ALLOWED_EXTENSIONS, MASTER, MIGRATOR};
use support::online::{read_log, spawn_logged, text, DB};
use support::Options;

use crate::pglogical_move::{
    every_type_columns, server_logs, table_digest, wait_written, writer_sql, EVENTS_COUNTS,
    LARGE_OBJECTS, SEQUENCES,
};

/// A simulated server of `flavour` with pglogical preloaded (its parameter group) and, when
/// `allowed`, pglogical added to `rds.extensions` (the later line wins).
fn server(flavour: Flavour, pglogical: bool, allowed: bool) -> Managed {
    let mut o = if pglogical {
        Options::pglogical()
    } else {
        Options::default()
    };
    if allowed {
        o = o.set(
            "rds.extensions",
            &format!("'{},pglogical'", ALLOWED_EXTENSIONS.join(",")),
        );
    }
    Managed::start(flavour, o)
}

/// A role of a simulated server and its password.
struct Login<'a> {
    server: &'a Managed,
    user: &'a str,
}

impl Login<'_> {
    fn password(&self) -> &str {
        if self.user == MASTER {
            &self.server.master_password
        } else {
            &self.server.migrator_password
        }
    }
}

/// Writes `<dir>/<name>.yaml`: strategy pglogical from `src` to `dst` (database [`DB`]),
/// passwords from `SRC_PW`/`DST_PW`, followed by `extra`.
fn write_plan(dir: &Path, name: &str, src: &Login, dst: &Login, extra: &str) -> PathBuf {
    let path = dir.join(format!("{name}.yaml"));
    std::fs::write(
        &path,
        format!(
            "version: 1\nname: {name}\nstrategy: pglogical\njobs: 2\nsource:\n  dsn: {}\n  password: {{env: SRC_PW}}\n  sslmode: disable\ntarget:\n  dsn: {}\n  password: {{env: DST_PW}}\n  sslmode: disable\n{extra}",
            src.server.uri_as(src.user, DB),
            dst.server.uri_as(dst.user, DB),
        ),
    )
    .expect("write plan");
    path
}

/// The pgmove binary with `args` and the two roles' passwords, nothing else: no superuser's
/// password reaches it.
fn pgmove(args: &[&str], src: &Login, dst: &Login) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_pgmove"));
    c.args(args)
        .env("SRC_PW", src.password())
        .env("DST_PW", dst.password())
        .env("NO_COLOR", "1");
    for v in ["PGPASSWORD", "PGUSER", "PGPASSFILE", "PGSERVICE"] {
        c.env_remove(v);
    }
    c
}

fn run(args: &[&str], src: &Login, dst: &Login) -> Output {
    pgmove(args, src, dst).output().expect("run pgmove")
}

/// A writer on the source as the master user (the application's role there): one
/// [`writer_sql`] transaction after another (every 20 ms) until `stop` is set or the source
/// refuses (the cutover's fence ends its session). Returns why it stopped.
fn start_writer(
    src: &Managed,
    stop: Arc<AtomicBool>,
    written: Arc<AtomicU64>,
) -> JoinHandle<String> {
    let uri = format!(
        "{}?sslmode=disable",
        src.uri_with_password(MASTER, &src.master_password, DB)
    );
    std::thread::spawn(move || {
        let rt = tokio::runtime::Runtime::new().expect("runtime");
        rt.block_on(async move {
            let (client, conn) = tokio_postgres::connect(&uri, tokio_postgres::NoTls)
                .await
                .expect("writer connects");
            tokio::spawn(conn);
            let mut n = 0;
            while !stop.load(Ordering::Relaxed) {
                n += 1;
                if let Err(e) = client.batch_execute(&writer_sql(n)).await {
                    let why = e
                        .as_db_error()
                        .map_or_else(|| e.to_string(), |d| d.to_string());
                    return format!("stopped by the source after {} transactions: {why}", n - 1);
                }
                written.store(n, Ordering::Relaxed);
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            format!("stopped by the test after {n} transactions")
        })
    })
}

/// `side kind name` of each entry of a cleanup JSON report's `list`.
fn listed(report: &Value, list: &str) -> Vec<String> {
    report[list]
        .as_array()
        .unwrap_or_else(|| panic!("{list}: {report:#}"))
        .iter()
        .map(|a| format!("{} {} {}", a["side"], a["kind"], a["name"]).replace('"', ""))
        .collect()
}

fn json(out: &Output) -> Value {
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("not JSON ({e}): {}", text(out)))
}

/// Issue 14 item 1 (strategy pglogical) and item 7: the many-types database (every type, a
/// 2-level partitioned table, PostGIS, a keyless table, sequences, a large object) moves from
/// a simulated RDS source to a simulated Aurora target through `pgmove apply` of strategy
/// pglogical connected as the master user on both servers, a writer changing every shape on
/// the source during the sync and the replication; `pgmove cutover` fences the writer out;
/// `pgmove verify` says identical, and so do the per-table digests; `pgmove cleanup` then drops
/// the nodes, sets and slot as the master user, and leaves the extensions the master user
/// created with the statement that drops them.
#[test]
fn pglogical_moves_rds_to_aurora_as_the_master_user_then_cuts_over_and_cleans_up() {
    let src = server(Flavour::Rds, true, true);
    let dst = server(Flavour::Aurora, true, true);
    // The provider connection logs in as the master user: RDS gives it rds_replication
    // through rds_superuser (locally the harness gives it REPLICATION).
    src.master_replicates();
    // pglogical's initial copy sets up its origin on the target as the master user.
    dst.rds_superuser_uses_origins();
    src.create_db(DB);
    dst.create_db(DB);
    // On RDS/Aurora the master user creates pglogical and PostGIS (both in rds.extensions);
    // locally only a superuser may (create_extensions_as_master), so it is done here first,
    // the extensions then belonging to the master user as they do there.
    for m in [&src, &dst] {
        m.create_extensions_as_master(DB, &["postgis", "pglogical"]);
    }
    // The application's schema and rows, made by the master user.
    src.psql_master(DB, include_str!("../fixtures/many_types.sql"));
    // pglogical 2.4.2 cannot carry a stored generated column (see pglogical_move).
    src.psql_master(DB, "ALTER TABLE sales.customers DROP COLUMN name_lc");
    let (s, t) = (
        Login {
            server: &src,
            user: MASTER,
        },
        Login {
            server: &dst,
            user: MASTER,
        },
    );
    let dir = tempfile::tempdir().expect("tempdir");
    // cdc.ddl: ignore: its guard is event triggers on the source, which the master user may
    // create on RDS but only a superuser may locally (pglogical_ddl tests the guard).
    let plan = write_plan(
        dir.path(),
        "mg_pgl",
        &s,
        &t,
        "objects:\n  large_objects: true\ncdc:\n  tables_without_key: insert-only\n  ddl: ignore\ncutover:\n  max_lag: 30s\n  verify: checksums\n",
    );
    let p = plan.to_str().expect("utf8");

    // Preflight: detected as RDS and Aurora, and nothing of pglogical's blocks the master user.
    let out = run(&["plan", p, "--format", "json"], &s, &t);
    let r = json(&out);
    assert_eq!(out.status.code(), Some(0), "{r:#}");
    let pgl: Vec<&Value> = r["findings"]
        .as_array()
        .expect("findings")
        .iter()
        .filter(|f| f["check"].as_str().unwrap_or("").starts_with("pglogical"))
        .filter(|f| f["severity"] != "info")
        .collect();
    assert!(pgl.is_empty(), "{pgl:#?}");

    // Apply, the writer already writing.
    let stop = Arc::new(AtomicBool::new(false));
    let written = Arc::new(AtomicU64::new(0));
    let writer = start_writer(&src, stop.clone(), written.clone());
    wait_written(&written, 5, "before apply");
    let before_apply = written.load(Ordering::Relaxed);
    let log = dir.path().join("apply.log");
    let mut apply = spawn_logged(pgmove(&["apply", p, "--yes"], &s, &t), &log);
    let status = apply.wait().expect("wait for apply");
    let logged = read_log(&log);
    assert!(
        status.success(),
        "apply: {status}\n{logged}\n{}",
        server_logs(&src.cluster, &dst.cluster)
    );
    assert!(written.load(Ordering::Relaxed) > before_apply);
    for pw in [&src.master_password, &dst.master_password] {
        assert!(
            !logged.contains(pw.as_str()),
            "a password in apply's output"
        );
    }
    // The subscription replicates, its provider connection logged in as the master user (a
    // walsender of that role on the source).
    assert_eq!(
        dst.cluster.psql(
            DB,
            "SELECT status FROM pglogical.show_subscription_status()"
        ),
        "replicating"
    );
    assert_eq!(
        src.cluster.psql(
            DB,
            "SELECT string_agg(DISTINCT usename::text, ',') FROM pg_stat_replication"
        ),
        MASTER,
        "{}",
        src.cluster.psql(
            DB,
            "SELECT usename, application_name FROM pg_stat_replication"
        )
    );
    // status, as the master user: the subscription, its tables, the slot on the source.
    let out = run(&["status", p], &s, &t);
    assert_eq!(out.status.code(), Some(0), "status: {}", text(&out));
    let said = String::from_utf8_lossy(&out.stdout);
    assert!(
        said.contains(
            "subscription pgmove_mg_pgl: replicating (provider node pgmove_mg_pgl_provider"
        ),
        "{said}"
    );
    assert!(said.contains(" (active): source at "), "{said}");
    wait_written(
        &written,
        written.load(Ordering::Relaxed) + 20,
        "after apply",
    );

    // Cutover as the master user: its fence (the database owner's ALTER DATABASE, and
    // pg_signal_backend through rds_superuser) ends the writer's session.
    let out = run(&["cutover", p, "--yes"], &s, &t);
    stop.store(true, Ordering::Relaxed);
    let why = writer.join().expect("writer thread");
    assert_eq!(
        out.status.code(),
        Some(0),
        "cutover: {}\nwriter: {why}\n{}",
        text(&out),
        server_logs(&src.cluster, &dst.cluster)
    );
    assert!(why.starts_with("stopped by the source"), "{why}");
    let total = written.load(Ordering::Relaxed);

    let out = run(&["verify", p], &s, &t);
    assert_eq!(out.status.code(), Some(0), "verify: {}", text(&out));
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("IDENTICAL"),
        "{}",
        text(&out)
    );
    // The test's own reads, as the local superuser.
    let (sc, dc) = (&src.cluster, &dst.cluster);
    assert_eq!(every_type_columns(dc), every_type_columns(sc));
    assert_eq!(table_digest(dc), table_digest(sc));
    assert_eq!(
        dc.psql(DB, "SELECT count(*) FROM public.no_key WHERE b = 'writer'"),
        total.to_string(),
        "writer: {why}"
    );
    let events = sc.psql(DB, EVENTS_COUNTS);
    assert!(events.ends_with(" 0"), "{events}");
    assert_eq!(dc.psql(DB, EVENTS_COUNTS), events);
    assert_eq!(dc.psql(DB, SEQUENCES), sc.psql(DB, SEQUENCES));
    assert_eq!(dc.psql(DB, LARGE_OBJECTS), sc.psql(DB, LARGE_OBJECTS));
    assert_eq!(
        dc.psql(DB, "SELECT count(*) FROM pglogical.subscription"),
        "0"
    );

    // Cleanup as the master user: the nodes and sets go (and the slot, if the subscription's
    // drop left it); the extensions the master user created stay, with their statement.
    let out = run(&["cleanup", p, "--format", "json"], &s, &t);
    assert_eq!(out.status.code(), Some(0), "cleanup: {}", text(&out));
    let r = json(&out);
    let dropped = listed(&r, "artifacts");
    for want in [
        "target pglogical node pgmove_mg_pgl_subscriber",
        "source pglogical replication set pgmove_mg_pgl",
        "source pglogical replication set ipgmove_mg_pgl",
        "source pglogical node pgmove_mg_pgl_provider",
    ] {
        assert!(dropped.iter().any(|d| d == want), "{want}: {r:#}");
    }
    assert!(
        !dropped.iter().any(|d| d.contains("extension")),
        "pgmove dropped an extension it did not create: {r:#}"
    );
    let kept: Vec<&Value> = r["kept"]
        .as_array()
        .expect("kept")
        .iter()
        .filter(|a| a["kind"] == "extension")
        .collect();
    assert_eq!(kept.len(), 2, "{r:#}");
    for k in kept {
        assert_eq!(k["sql"], "DROP EXTENSION pglogical;", "{k:#}");
        assert!(
            k["detail"]
                .as_str()
                .unwrap_or("")
                .contains("(on RDS/Aurora the master user) runs: DROP EXTENSION pglogical;"),
            "{k:#}"
        );
    }
    for c in [sc, dc] {
        assert_eq!(
            c.psql(
                DB,
                "SELECT (SELECT count(*) FROM pglogical.node) || ' ' || (SELECT count(*) FROM pglogical.replication_set) || ' ' || (SELECT count(*) FROM pglogical.subscription)"
            ),
            "0 0 0"
        );
        assert_eq!(
            c.psql(
                DB,
                "SELECT count(*) FROM pg_extension WHERE extname = 'pglogical'"
            ),
            "1"
        );
    }
    assert_eq!(
        sc.psql(DB, "SELECT count(*) FROM pg_replication_slots"),
        "0",
        "a slot left on the source"
    );
    // A second run finds nothing of pgmove's left.
    let out = run(&["cleanup", p], &s, &t);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("nothing to drop"),
        "{}",
        text(&out)
    );
}

/// The findings of `check` on `side`.
fn findings<'a>(report: &'a Value, check: &str, side: &str) -> Vec<&'a Value> {
    report["findings"]
        .as_array()
        .expect("findings")
        .iter()
        .filter(|f| f["check"] == check && f["side"] == side)
        .collect()
}

fn one<'a>(report: &'a Value, check: &str, side: &str) -> &'a Value {
    let f = findings(report, check, side);
    assert_eq!(f.len(), 1, "{check} on the {side}: {report:#}");
    assert_eq!(f[0]["severity"], "blocker", "{:#}", f[0]);
    f[0]
}

fn field<'a>(f: &'a Value, name: &str) -> &'a str {
    f[name].as_str().unwrap_or("")
}

/// Issue 14 item 1's preflight for strategy pglogical on managed servers, one blocker per
/// missing piece with its exact fix and who runs it: an Aurora target without pglogical in its
/// parameter group's `shared_preload_libraries` (the fix names the DB cluster parameter
/// group) nor in `rds.extensions`; an RDS source, connected as the plain migrating role
/// (`rds_replication`), where pglogical is not installed (the master user runs CREATE
/// EXTENSION), then installed by the master user but not granted to the migrating role (the
/// master user's GRANTs), then granted: that blocker goes.
#[test]
fn managed_pglogical_preflight_names_each_missing_piece_and_who_fixes_it() {
    let src = server(Flavour::Rds, true, true);
    let dst = server(Flavour::Aurora, false, false);
    dst.rds_superuser_uses_origins();
    src.create_db(DB);
    dst.create_db(DB);
    src.psql_master(DB, "CREATE TABLE public.t (id int PRIMARY KEY, v text)");
    src.grant_read(DB);
    let (s, t) = (
        Login {
            server: &src,
            user: MIGRATOR,
        },
        Login {
            server: &dst,
            user: MASTER,
        },
    );
    let dir = tempfile::tempdir().expect("tempdir");
    let plan = write_plan(dir.path(), "mg_pgl_pf", &s, &t, "");
    let p = plan.to_str().expect("utf8");
    let plan_json = || {
        let out = run(&["plan", p, "--format", "json"], &s, &t);
        (out.status.code(), json(&out))
    };

    let (code, r) = plan_json();
    assert_eq!(code, Some(2), "{r:#}");
    // The target: not preloaded, the fix in the DB cluster parameter group (Aurora).
    assert_eq!(dst.flavour, Flavour::Aurora);
    let f = one(&r, "pglogical-preload", "target");
    assert!(
        field(f, "fix").starts_with("in the DB cluster parameter group of the target: set shared_preload_libraries = 'pglogical' and rds.logical_replication = 1, then reboot the target"),
        "{f:#}"
    );
    // Nor allowed there: not even the master user may create it.
    let f = one(&r, "pglogical-missing", "target");
    assert!(
        field(f, "message").contains("pglogical is not in the target's rds.extensions"),
        "{f:#}"
    );
    assert!(
        field(f, "fix").contains("DB cluster parameter group of the target"),
        "{f:#}"
    );
    assert!(findings(&r, "pglogical-create-extension", "target").is_empty());
    // The source: the migrating role cannot create the extension: the master user does.
    let f = one(&r, "pglogical-create-extension", "source");
    assert_eq!(
        field(f, "fix"),
        "as the master user, in database \"shop\": CREATE EXTENSION pglogical;",
        "{f:#}"
    );
    assert!(
        field(f, "message").contains(
            "role migrator may not install it (CREATE EXTENSION pglogical needs rds_superuser)"
        ),
        "{f:#}"
    );
    // It cannot read shared_preload_libraries either: the master user grants it.
    let f = one(&r, "pglogical-preload", "source");
    assert_eq!(
        field(f, "fix"),
        "as the master user: GRANT pg_read_all_settings TO \"migrator\";",
        "{f:#}"
    );
    assert!(findings(&r, "pglogical-access", "source").is_empty());

    // The master user installs it (on RDS, through rds_superuser): the migrating role may
    // not use it yet, and the blocker says which grants the master user runs.
    src.create_extensions_as_master(DB, &["pglogical"]);
    let (code, r) = plan_json();
    assert_eq!(code, Some(2), "{r:#}");
    assert!(findings(&r, "pglogical-create-extension", "source").is_empty());
    let f = one(&r, "pglogical-access", "source");
    assert!(
        field(f, "message").starts_with(
            "role migrator on the source lacks USAGE on schema pglogical and SELECT on "
        ),
        "{f:#}"
    );
    let fix = field(f, "fix");
    assert_eq!(
        fix,
        "as the master user (or the extension's owner), in database \"shop\": GRANT USAGE ON SCHEMA \"pglogical\" TO \"migrator\"; GRANT SELECT ON ALL TABLES IN SCHEMA \"pglogical\" TO \"migrator\";"
    );
    // What pgmove runs on the source (and pglogical's subscriber reads there as the provider
    // DSN's role), as the migrating role: refused now, as the blocker says...
    let provider_calls = format!(
        "SELECT pglogical.create_node(node_name := 'mg_pf', dsn := 'host=127.0.0.1 port={} dbname={DB} user={MIGRATOR}');
         SELECT pglogical.create_replication_set(set_name := 'mg_pf_set');
         SELECT pglogical.replication_set_add_table(set_name := 'mg_pf_set', relation := 'public.t'::regclass);
         SELECT count(*) FROM pglogical.tables, pglogical.pglogical_node_info();
         SELECT pglogical.drop_replication_set(set_name := 'mg_pf_set');
         SELECT pglogical.drop_node(node_name := 'mg_pf')",
        src.cluster.port
    );
    let refused = src.psql_as(MIGRATOR, &src.migrator_password, DB, &provider_calls);
    assert!(!refused.status.success());
    assert!(
        String::from_utf8_lossy(&refused.stderr).contains("permission denied for schema pglogical"),
        "{}",
        String::from_utf8_lossy(&refused.stderr)
    );
    // ...the master user runs exactly the fix: the blocker goes, and the calls succeed.
    let grants = fix.split_once(": ").map(|(_, sql)| sql).expect("the SQL");
    src.psql_master(DB, grants);
    let (_, r) = plan_json();
    assert!(
        findings(&r, "pglogical-access", "source").is_empty(),
        "{r:#}"
    );
    let done = src.psql_as(MIGRATOR, &src.migrator_password, DB, &provider_calls);
    assert!(
        done.status.success(),
        "{}",
        String::from_utf8_lossy(&done.stderr)
    );
    // A provider_dsn naming another role (with the source's password, which pgmove gives
    // it): a role the master user made, with rds_replication but no grant on pglogical: the
    // probe from pgmove's host finds it cannot read pglogical's schema; then it may.
    src.psql_master(
        DB,
        &format!(
            "CREATE ROLE pgl_reader LOGIN PASSWORD '{}'; GRANT rds_replication TO pgl_reader",
            src.migrator_password
        ),
    );
    let dsn_plan = write_plan(
        dir.path(),
        "mg_pgl_pf_dsn",
        &s,
        &Login {
            server: &dst,
            user: MASTER,
        },
        &format!(
            "pglogical:\n  provider_dsn: host=127.0.0.1 port={} dbname={DB} user=pgl_reader\n",
            src.cluster.port
        ),
    );
    let dsn_json = || {
        json(&run(
            &["plan", dsn_plan.to_str().expect("utf8"), "--format", "json"],
            &s,
            &t,
        ))
    };
    let r = dsn_json();
    let f = one(&r, "provider-dsn", "source");
    assert!(
        field(f, "message").contains(
            "connects as role pgl_reader, which may not read pglogical's schema on the source"
        ),
        "{f:#}"
    );
    assert_eq!(
        field(f, "fix"),
        "as the master user on the source: GRANT USAGE ON SCHEMA \"pglogical\" TO \"pgl_reader\"; GRANT SELECT ON ALL TABLES IN SCHEMA \"pglogical\" TO \"pgl_reader\";"
    );
    src.psql_master(
        DB,
        field(f, "fix")
            .split_once(": ")
            .map(|(_, sql)| sql)
            .expect("the SQL"),
    );
    let r = dsn_json();
    assert!(
        findings(&r, "provider-dsn", "source")
            .iter()
            .all(|f| f["severity"] == "info"),
        "{r:#}"
    );

    // The target, as the master user, is not blocked by rights, only by its parameter group.
    assert!(findings(&r, "pglogical-access", "target").is_empty());
    assert!(findings(&r, "pglogical-subscriber-rights", "target").is_empty());

    // The target as the plain migrating role: pglogical's initial copy, through the
    // subscriber node's connection as that role, could neither set up its origin nor SET
    // session_replication_role; the master user grants rds_superuser, which may do both.
    let t = Login {
        server: &dst,
        user: MIGRATOR,
    };
    let plan = write_plan(dir.path(), "mg_pgl_pf_t", &s, &t, "");
    let p = plan.to_str().expect("utf8");
    let plan_json = || json(&run(&["plan", p, "--format", "json"], &s, &t));
    let r = plan_json();
    let f = one(&r, "pglogical-subscriber-rights", "target");
    assert!(
        field(f, "message").starts_with("role migrator may not call pg_replication_origin_session_setup nor SET session_replication_role on the target"),
        "{f:#}"
    );
    let fix = field(f, "fix");
    assert!(
        fix.starts_with("connect to the target as the master user, or as the master user: GRANT rds_superuser TO \"migrator\";"),
        "{fix}"
    );
    dst.psql_master("postgres", "GRANT rds_superuser TO migrator");
    let r = plan_json();
    assert!(
        findings(&r, "pglogical-subscriber-rights", "target").is_empty(),
        "{r:#}"
    );
}
