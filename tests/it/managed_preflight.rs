//! Preflight against simulated managed servers (`support::managed`): a source on RDS and a
//! target on Aurora, pgmove running as the plain migrating role on both. Every right the role
//! needs, removed in turn, is one blocker whose fix speaks RDS (the GRANT the master user
//! runs, or the parameter-group change nobody can make in SQL); the report says what was
//! detected and why; `target.kind` overrides the detection and the fixes follow it.

use crate::support;

use std::path::{Path, PathBuf};
use std::process::Output;

use serde_json::Value;
use support::managed::{Flavour, Managed, ALLOWED_EXTENSIONS, MIGRATOR};
use support::Options;

/// A plan from `src` to `dst` (database `app`), both as the migrating role, with `kind` under
/// `target:` (empty for none) and `extra` YAML.
fn write_plan(
    dir: &Path,
    name: &str,
    src: &Managed,
    dst: &Managed,
    kind: &str,
    extra: &str,
) -> PathBuf {
    let path = dir.join(format!("{name}.yaml"));
    let kind = if kind.is_empty() {
        String::new()
    } else {
        format!("  kind: {kind}\n")
    };
    std::fs::write(
        &path,
        format!(
            "version: 1\nname: {name}\nsource:\n  dsn: {}\n  password: {{env: SRC_PW}}\n  sslmode: disable\ntarget:\n  dsn: {}\n  password: {{env: DST_PW}}\n  sslmode: disable\n{kind}{extra}",
            src.uri_as(MIGRATOR, "app"),
            dst.uri_as(MIGRATOR, "app"),
        ),
    )
    .expect("write plan");
    path
}

/// `pgmove plan` (JSON unless `text`), with the passwords from the environment; checks that
/// neither password shows.
fn plan(path: &Path, src: &Managed, dst: &Managed, text: bool) -> Output {
    let mut args = vec!["plan", path.to_str().expect("utf8")];
    if !text {
        args.extend(["--format", "json"]);
    }
    src.pgmove_as_migrators(dst, &args)
}

fn json(out: &Output) -> Value {
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "not JSON ({e}): {}\n{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )
    })
}

fn findings<'a>(report: &'a Value, severity: &str) -> Vec<&'a Value> {
    report["findings"]
        .as_array()
        .expect("findings")
        .iter()
        .filter(|f| f["severity"] == severity)
        .collect()
}

/// `plan` exits 2 with exactly one blocker, `check`, whose object is `object` and whose fix
/// contains every one of `fix`; returns the blocker.
fn assert_one_blocker(case: &str, out: &Output, check: &str, object: &str, fix: &[&str]) -> Value {
    let report = json(out);
    let b = findings(&report, "blocker");
    assert_eq!(
        out.status.code(),
        Some(2),
        "{case}: should be blocked: {report:#}"
    );
    assert_eq!(b.len(), 1, "{case}: one blocker expected: {b:#?}");
    let f = b[0];
    assert_eq!(f["check"], check, "{case}: {f:#}");
    assert_eq!(f["object"], object, "{case}: {f:#}");
    let text = f["fix"].as_str().unwrap_or_default();
    for want in fix {
        assert!(text.contains(want), "{case}: fix lacks {want:?}: {f:#}");
    }
    f.clone()
}

fn assert_ready(case: &str, out: &Output) -> Value {
    let report = json(out);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{case}: should be Ready: {:#?}",
        findings(&report, "blocker")
    );
    report
}

/// Source (RDS): the master user made the migrating role the owner of database `app` and its
/// tables (CREATE PUBLICATION ... FOR TABLE needs the owner, the read-only fence the
/// database's owner), gave it pg_signal_backend and USAGE on schema `sales`, which the master
/// owns. Target (Aurora, hstore not in its rds.extensions): the master user gave the migrating
/// role CREATE on the database and on schema public, and rds_superuser (on RDS only its members
/// may SET session_replication_role).
fn managed_pair() -> (Managed, Managed) {
    let src = Managed::start(Flavour::Rds, Options::default());
    src.create_db("app");
    src.psql_master(
        "app",
        &format!(
            "GRANT {MIGRATOR} TO master;
             ALTER DATABASE app OWNER TO {MIGRATOR};
             CREATE SCHEMA sales;
             GRANT USAGE, CREATE ON SCHEMA sales TO {MIGRATOR};
             CREATE TABLE public.t (id serial PRIMARY KEY, v text);
             INSERT INTO public.t (v) SELECT 'row ' || g FROM generate_series(1, 50) g;
             CREATE TABLE sales.orders (id int PRIMARY KEY, t_id int);
             ALTER TABLE public.t OWNER TO {MIGRATOR};
             ALTER TABLE sales.orders OWNER TO {MIGRATOR};
             GRANT pg_signal_backend TO {MIGRATOR};"
        ),
    );
    let allowed: Vec<&str> = ALLOWED_EXTENSIONS
        .iter()
        .copied()
        .filter(|e| *e != "hstore")
        .collect();
    let dst = Managed::start(
        Flavour::Aurora,
        Options::default().set("rds.extensions", &format!("'{}'", allowed.join(","))),
    );
    dst.create_db("app");
    dst.psql_master(
        "app",
        &format!(
            "GRANT CREATE ON DATABASE app TO {MIGRATOR};
             GRANT CREATE ON SCHEMA public TO {MIGRATOR};
             GRANT rds_superuser TO {MIGRATOR};"
        ),
    );
    (src, dst)
}

/// How the plan report names the platform `m` plays.
fn platform(m: &Managed) -> &'static str {
    match m.flavour {
        Flavour::Rds => "rds",
        Flavour::Aurora => "aurora",
    }
}

/// As the migrating role on `m`.
fn as_migrator(m: &Managed, sql: &str) {
    let out = m.psql_as(MIGRATOR, &m.migrator_password, "app", sql);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn each_missing_right_on_managed_servers_is_one_blocker_with_the_fix_and_who_runs_it() {
    let (src, dst) = managed_pair();
    let dir = tempfile::tempdir().expect("tempdir");
    let online = "strategy: copy-cdc\njobs: 2\nowner: target-user\ncdc:\n  ddl: ignore\n";
    let p = write_plan(dir.path(), "mg", &src, &dst, "", online);
    let run = || plan(&p, &src, &dst, false);

    // Every right: ready; the report says what was detected and why.
    let report = assert_ready("all rights", &run());
    assert_eq!(report["source"]["platform"], platform(&src), "{report:#}");
    assert_eq!(report["target"]["platform"], platform(&dst));
    assert_eq!(report["target"]["platform_detected"], "aurora");
    assert_eq!(report["target"]["platform_from"], "detection");
    let described = report["target"]["platform_description"]
        .as_str()
        .unwrap_or_default();
    assert!(
        described.starts_with("Aurora (detected: function aurora_version() exists, setting apg_plan_mgmt.capture_plan_baselines exists, setting rds."),
        "{described}"
    );
    assert!(report["target"]["platform_evidence"]
        .as_array()
        .is_some_and(|e| e.iter().any(|x| x == "role rds_superuser exists")));

    // rds.logical_replication = 0 in the parameter group (wal_level replica after the reboot):
    // a superuser's ALTER SYSTEM and a restart stand for the parameter group and the reboot.
    let set = |name: &str, value: &str| {
        src.cluster
            .psql("postgres", &format!("ALTER SYSTEM SET {name} = {value}"));
    };
    set("wal_level", "replica");
    set("rds.logical_replication", "0");
    src.cluster.restart();
    let f = assert_one_blocker(
        "rds.logical_replication = 0",
        &run(),
        "wal-level",
        "setting wal_level",
        &[
            "not SQL (the master user cannot change it): in AWS, set rds.logical_replication = 1 in the source's DB parameter group, then reboot the instance",
            "aws rds modify-db-parameter-group --db-parameter-group-name <group> --parameters ParameterName=rds.logical_replication,ParameterValue=1,ApplyMethod=pending-reboot",
            "aws rds reboot-db-instance",
        ],
    );
    assert!(
        f["message"]
            .as_str()
            .unwrap_or_default()
            .contains("wal_level is replica (rds.logical_replication is 0)"),
        "{f:#}"
    );
    set("wal_level", "logical");
    set("rds.logical_replication", "1");
    src.cluster.restart();
    assert_ready("logical replication back on", &run());

    // The replication right: on RDS, membership in rds_replication (locally the harness also
    // gives REPLICATION, which a superuser takes back here).
    src.psql_master("app", &format!("REVOKE rds_replication FROM {MIGRATOR}"));
    src.cluster
        .psql("app", &format!("ALTER ROLE {MIGRATOR} NOREPLICATION"));
    let f = assert_one_blocker(
        "no rds_replication",
        &run(),
        "source-replication-right",
        "role migrator",
        &["as the master user: GRANT rds_replication TO \"migrator\";"],
    );
    assert!(!f.to_string().contains("pg_hba"), "{f:#}");
    src.psql_master("app", &format!("GRANT rds_replication TO {MIGRATOR}"));
    src.cluster
        .psql("app", &format!("ALTER ROLE {MIGRATOR} REPLICATION"));

    // pg_signal_backend, for the read-only fence.
    src.psql_master("app", &format!("REVOKE pg_signal_backend FROM {MIGRATOR}"));
    assert_one_blocker(
        "no pg_signal_backend",
        &run(),
        "fence-terminate",
        "role migrator",
        &[
            "the master user",
            "GRANT pg_signal_backend TO \"migrator\";",
        ],
    );
    src.psql_master("app", &format!("GRANT pg_signal_backend TO {MIGRATOR}"));

    // SELECT on a table (its owner revoked its own).
    as_migrator(&src, &format!("REVOKE SELECT ON public.t FROM {MIGRATOR}"));
    assert_one_blocker(
        "no SELECT on public.t",
        &run(),
        "source-select",
        "public.t",
        &[
            "as the tables' owner (\"migrator\"): GRANT SELECT ON ALL TABLES IN SCHEMA \"public\" TO \"migrator\";",
            "or, as the master user: GRANT pg_read_all_data TO \"migrator\";",
        ],
    );
    as_migrator(&src, &format!("GRANT SELECT ON public.t TO {MIGRATOR}"));

    // USAGE on a schema the master user owns.
    src.psql_master(
        "app",
        &format!("REVOKE USAGE ON SCHEMA sales FROM {MIGRATOR}"),
    );
    assert_one_blocker(
        "no USAGE on schema sales",
        &run(),
        "source-schema-usage",
        "schema sales",
        &["as \"master\" (the schema's owner): GRANT USAGE ON SCHEMA \"sales\" TO \"migrator\";"],
    );
    src.psql_master("app", &format!("GRANT USAGE ON SCHEMA sales TO {MIGRATOR}"));

    // SET session_replication_role on the target: only rds_superuser may.
    dst.psql_master("app", &format!("REVOKE rds_superuser FROM {MIGRATOR}"));
    assert_one_blocker(
        "no rds_superuser on the target",
        &run(),
        "target-replication-role",
        "setting session_replication_role",
        &["as the master user: GRANT rds_superuser TO \"migrator\";"],
    );
    dst.psql_master("app", &format!("GRANT rds_superuser TO {MIGRATOR}"));

    // CREATE on the target database.
    dst.psql_master(
        "app",
        &format!("REVOKE CREATE ON DATABASE app FROM {MIGRATOR}"),
    );
    assert_one_blocker(
        "no CREATE on the target database",
        &run(),
        "target-create",
        "database app",
        &[
            "as the master user",
            "GRANT CREATE ON DATABASE \"app\" TO \"migrator\";",
        ],
    );
    dst.psql_master(
        "app",
        &format!("GRANT CREATE ON DATABASE app TO {MIGRATOR}"),
    );
    assert_ready("every right back", &run());

    // An extension the target's rds.extensions does not allow (hstore is trusted: the
    // database's owner creates it on the source).
    as_migrator(&src, "CREATE EXTENSION hstore");
    let f = assert_one_blocker(
        "hstore not in the target's rds.extensions",
        &run(),
        "extension-not-allowed",
        "extension hstore",
        &[
            "ask AWS to support hstore on the target's engine",
            "drop it on the source (DROP EXTENSION \"hstore\";)",
            "objects.exclude",
        ],
    );
    assert!(
        f["message"]
            .as_str()
            .unwrap_or_default()
            .contains("is not in the target's rds.extensions (the extensions Aurora allows: btree_gist, citext, pg_stat_statements,"),
        "{f:#}"
    );
    as_migrator(&src, "DROP EXTENSION hstore");

    // An allowed extension that is not trusted: a member of rds_superuser may create it on the
    // target, a plain role may not. (The master user may create it on RDS; locally that takes
    // a superuser, standing for the master here.)
    src.as_master_on_rds("app", "CREATE EXTENSION pg_stat_statements");
    assert_ready(
        "pg_stat_statements, the target role in rds_superuser",
        &run(),
    );
    // rds.allowed_extensions in the target's parameter group narrows the list (a line in its
    // postgresql.auto.conf and a reload stand for the parameter-group change).
    let allow = |value: &str| {
        use std::io::Write as _;
        let mut conf = std::fs::OpenOptions::new()
            .append(true)
            .open(dst.cluster.data_dir().join("postgresql.auto.conf"))
            .expect("open postgresql.auto.conf");
        writeln!(conf, "rds.allowed_extensions = '{value}'").expect("append");
        dst.cluster.psql("postgres", "SELECT pg_reload_conf()");
        // The reload is asynchronous: wait until a new session sees it.
        let seen = || {
            dst.cluster.psql(
                "postgres",
                "SELECT current_setting('rds.allowed_extensions', true)",
            )
        };
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        while seen() != value {
            assert!(std::time::Instant::now() < deadline, "reload not seen");
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
    };
    allow("postgis,pg_trgm");
    assert_one_blocker(
        "pg_stat_statements outside rds.allowed_extensions",
        &run(),
        "extension-not-allowed",
        "extension pg_stat_statements",
        &[
            "in AWS, set rds.allowed_extensions = \"postgis,pg_trgm,pg_stat_statements\" in the target's DB cluster parameter group:",
            "aws rds modify-db-cluster-parameter-group",
        ],
    );
    allow("*");
    assert_ready("rds.allowed_extensions reset", &run());
    dst.psql_master("app", &format!("REVOKE rds_superuser FROM {MIGRATOR}"));
    let offline = write_plan(
        dir.path(),
        "mgoff",
        &src,
        &dst,
        "",
        "strategy: dump-restore\nowner: target-user\n",
    );
    assert_one_blocker(
        "pg_stat_statements, the target role plain",
        &plan(&offline, &src, &dst, false),
        "extension-create",
        "extension pg_stat_statements",
        &[
            "as the master user, in the target database app: CREATE EXTENSION IF NOT EXISTS \"pg_stat_statements\" SCHEMA \"public\";",
            "GRANT rds_superuser TO \"migrator\";",
        ],
    );

    // target.kind overrides the detection, and the fixes follow it: declared self-managed,
    // the same missing right gets the self-managed GRANT, and a warning names both.
    let declared = write_plan(dir.path(), "mgsm", &src, &dst, "self-managed", online);
    let out = plan(&declared, &src, &dst, false);
    let report = json(&out);
    assert_eq!(report["target"]["platform"], "self-managed", "{report:#}");
    assert_eq!(report["target"]["platform_detected"], "aurora");
    assert_eq!(report["target"]["platform_from"], "target.kind");
    let b = findings(&report, "blocker");
    let checks: Vec<&str> = b.iter().filter_map(|f| f["check"].as_str()).collect();
    assert_eq!(
        checks,
        ["target-replication-role", "extension-create"],
        "{b:#?}"
    );
    assert!(
        b[0]["fix"].as_str().unwrap_or_default().starts_with(
            "as a superuser: GRANT SET ON PARAMETER session_replication_role TO \"migrator\";"
        ),
        "{:#}",
        b[0]
    );
    assert!(
        b[1]["fix"]
            .as_str()
            .unwrap_or_default()
            .starts_with("as a superuser, in the target database app: CREATE EXTENSION"),
        "{:#}",
        b[1]
    );
    let w = findings(&report, "warning");
    let kind: Vec<&&Value> = w.iter().filter(|f| f["check"] == "target-kind").collect();
    assert_eq!(kind.len(), 1, "{w:#?}");
    assert!(
        kind[0]["message"]
            .as_str()
            .unwrap_or_default()
            .starts_with("target.kind is self-managed but the target looks Aurora (function aurora_version() exists"),
        "{:#}",
        kind[0]
    );

    // Declared rds on the Aurora target: the text report says both, and the warning too.
    let rds = write_plan(dir.path(), "mgrds", &src, &dst, "rds", online);
    let out = plan(&rds, &src, &dst, true);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("    platform: RDS (from target.kind; detected: Aurora — function aurora_version() exists"),
        "{text}"
    );
    assert!(
        text.contains("    platform: RDS (detected: setting rds."),
        "the source's line: {text}"
    );
    assert!(
        text.contains("target.kind is rds but the target looks Aurora"),
        "{text}"
    );
    assert!(
        text.contains("as the master user: GRANT rds_superuser TO \"migrator\";"),
        "{text}"
    );

    // A grant to a role the target lacks: a warning whose fix the master user runs.
    src.psql_master(
        "app",
        "CREATE ROLE auditors NOLOGIN; GRANT SELECT ON sales.orders TO auditors;",
    );
    let report = json(&plan(&p, &src, &dst, false));
    let w = findings(&report, "warning");
    let missing: Vec<&&Value> = w
        .iter()
        .filter(|f| f["check"] == "grantees-missing")
        .collect();
    assert_eq!(missing.len(), 1, "{w:#?}");
    assert!(
        missing[0]["fix"].as_str().unwrap_or_default().contains(
            "create the roles on the target before apply (as the master user, or a role with CREATEROLE): CREATE ROLE \"auditors\";"
        ),
        "{:#}",
        missing[0]
    );
}
