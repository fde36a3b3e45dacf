//! pgmove as a least-privileged role (like Amazon RDS gives): `plan` names every right a role
//! lacks as one blocker with the exact fix, says Ready when the role has them all, and the
//! sessions that read data run with `row_security = off`, so row-level security makes them
//! fail instead of reading fewer rows.

use crate::support;

use std::path::{Path, PathBuf};
use std::process::Output;

use pgmove::pg::{Endpoint, Secret, Side};
use pgmove::verify::{self, Level, VerifyOptions};
use serde_json::Value;
use support::{Cluster, Options};

const SRC_ROLE_PW: &str = "mig-secret-pw";
const DST_ROLE_PW: &str = "tmig-secret-pw";

/// A plan from `src` as `src_user` to `dst` as `dst_user` (database `app`), with `extra` YAML.
fn write_plan(
    dir: &Path,
    name: &str,
    (src, src_user): (&Cluster, &str),
    (dst, dst_user): (&Cluster, &str),
    extra: &str,
) -> PathBuf {
    let path = dir.join(format!("{name}.yaml"));
    std::fs::write(
        &path,
        format!(
            "version: 1\nname: {name}\nsource:\n  dsn: postgres://{src_user}@127.0.0.1:{}/app\n  password: {{env: SRC_PW}}\n  sslmode: disable\ntarget:\n  dsn: postgres://{dst_user}@127.0.0.1:{}/app\n  password: {{env: DST_PW}}\n  sslmode: disable\n{extra}",
            src.port, dst.port
        ),
    )
    .expect("write plan");
    path
}

fn plan(path: &Path, src_pw: &str, dst_pw: &str) -> (Output, Value) {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_pgmove"))
        .args(["plan", path.to_str().expect("utf8"), "--format", "json"])
        .env("NO_COLOR", "1")
        .env_remove("PGPASSWORD")
        .env("SRC_PW", src_pw)
        .env("DST_PW", dst_pw)
        .output()
        .expect("run pgmove");
    let v: Value = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "not JSON ({e}): {}\n{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )
    });
    for secret in [SRC_ROLE_PW, DST_ROLE_PW] {
        assert!(!String::from_utf8_lossy(&out.stdout).contains(secret));
        assert!(!String::from_utf8_lossy(&out.stderr).contains(secret));
    }
    (out, v)
}

fn blockers(report: &Value) -> Vec<&Value> {
    report["findings"]
        .as_array()
        .expect("findings")
        .iter()
        .filter(|f| f["severity"] == "blocker")
        .collect()
}

/// `plan` exits 2 with exactly one blocker, `check`, whose object contains `object` and whose
/// fix contains `fix`; returns the blocker.
fn assert_one_blocker(
    case: &str,
    (out, report): &(Output, Value),
    check: &str,
    object: &str,
    fix: &str,
) -> Value {
    let b = blockers(report);
    assert_eq!(
        out.status.code(),
        Some(2),
        "{case}: plan should be blocked: {report:#}"
    );
    assert_eq!(b.len(), 1, "{case}: one blocker expected: {b:#?}");
    let f = b[0];
    assert_eq!(f["check"], check, "{case}: {f:#}");
    let text = |k: &str| f[k].as_str().unwrap_or_default().to_string();
    assert!(text("object").contains(object), "{case}: object: {f:#}");
    assert!(text("fix").contains(fix), "{case}: fix: {f:#}");
    f.clone()
}

fn assert_ready(case: &str, (out, report): &(Output, Value)) {
    assert_eq!(
        out.status.code(),
        Some(0),
        "{case}: plan should be Ready: {:#?}",
        blockers(report)
    );
    assert!(blockers(report).is_empty(), "{case}");
}

/// Source: role `mig` owns database `app` and table `public.t` (with its sequence), has
/// REPLICATION and pg_signal_backend; CREATE on the database is granted to PUBLIC, so it
/// stays when the database changes owner. Target: role `tmig` with CREATE on the database and on
/// schema public and the right to SET session_replication_role.
fn least_privileged_pair() -> (Cluster, Cluster) {
    let src = Cluster::start(Options::logical());
    let dst = Cluster::start(Options::default());
    src.create_db("app");
    dst.create_db("app");
    src.psql(
        "app",
        &format!(
            "CREATE ROLE mig LOGIN PASSWORD '{SRC_ROLE_PW}' REPLICATION;
             CREATE ROLE other NOLOGIN;
             GRANT pg_signal_backend TO mig;
             ALTER DATABASE app OWNER TO mig;
             GRANT CREATE ON DATABASE app TO PUBLIC;
             CREATE TABLE public.t (id serial PRIMARY KEY, v text);
             INSERT INTO public.t (v) SELECT 'row ' || g FROM generate_series(1, 100) g;
             ALTER TABLE public.t OWNER TO mig;"
        ),
    );
    dst.psql(
        "app",
        &format!(
            "CREATE ROLE tmig LOGIN PASSWORD '{DST_ROLE_PW}';
             GRANT CREATE ON DATABASE app TO tmig;
             GRANT CREATE ON SCHEMA public TO tmig;
             GRANT SET ON PARAMETER session_replication_role TO tmig;"
        ),
    );
    (src, dst)
}

#[test]
fn each_missing_right_is_one_blocker_with_its_fix_and_all_rights_are_ready() {
    let (src, dst) = least_privileged_pair();
    let dir = tempfile::tempdir().expect("tempdir");
    let online = "strategy: copy-cdc\njobs: 2\nowner: target-user\ncdc:\n  ddl: ignore\n";
    let p = write_plan(dir.path(), "lp", (&src, "mig"), (&dst, "tmig"), online);
    let run = || plan(&p, SRC_ROLE_PW, DST_ROLE_PW);

    assert_ready("all rights", &run());

    // CREATE PUBLICATION ... FOR TABLE needs the table's owner.
    src.psql(
        "app",
        "CREATE TABLE public.t2 (id int PRIMARY KEY); ALTER TABLE public.t2 OWNER TO other; GRANT SELECT ON public.t2 TO mig;",
    );
    assert_one_blocker(
        "table owned by another role",
        &run(),
        "publication-ownership",
        "public.t2",
        "ALTER TABLE \"public\".\"t2\" OWNER TO \"mig\"",
    );
    src.psql("app", "DROP TABLE public.t2");

    // A sequence the role cannot SELECT.
    src.psql(
        "app",
        "CREATE SEQUENCE public.s2; ALTER SEQUENCE public.s2 OWNER TO other;",
    );
    assert_one_blocker(
        "sequence without SELECT",
        &run(),
        "source-sequence-select",
        "public.s2",
        "GRANT SELECT ON ALL SEQUENCES IN SCHEMA \"public\" TO \"mig\"",
    );
    src.psql("app", "DROP SEQUENCE public.s2");

    // FORCE ROW LEVEL SECURITY filters even the owner: the source role, and the target
    // role, which owns the table there (FORCE moves with it).
    src.psql(
        "app",
        "ALTER TABLE public.t ENABLE ROW LEVEL SECURITY; ALTER TABLE public.t FORCE ROW LEVEL SECURITY;",
    );
    dst.psql("app", "ALTER ROLE tmig BYPASSRLS");
    assert_one_blocker(
        "forced row-level security",
        &run(),
        "row-security",
        "public.t",
        "ALTER ROLE \"mig\" BYPASSRLS",
    );
    dst.psql("app", "ALTER ROLE tmig NOBYPASSRLS");
    src.psql("app", "ALTER ROLE mig BYPASSRLS");
    assert_one_blocker(
        "forced row-level security on the target",
        &run(),
        "target-row-security",
        "public.t",
        "ALTER ROLE \"tmig\" BYPASSRLS",
    );
    src.psql("app", "ALTER ROLE mig NOBYPASSRLS");
    src.psql("app", "ALTER TABLE public.t NO FORCE ROW LEVEL SECURITY");
    assert_ready("row-level security not forced, role owns the table", &run());
    src.psql("app", "ALTER TABLE public.t DISABLE ROW LEVEL SECURITY");

    // Database ownership for the fence (ALTER DATABASE ... SET default_transaction_read_only).
    src.psql("app", "ALTER DATABASE app OWNER TO other");
    let f = assert_one_blocker(
        "database owned by another role",
        &run(),
        "fence-alter-database",
        "database app",
        "ALTER DATABASE \"app\" OWNER TO \"mig\"",
    );
    assert!(
        !f["fix"].as_str().unwrap_or_default().contains("GRANT"),
        "{f:#}"
    );
    src.psql("app", "ALTER DATABASE app OWNER TO mig");

    // pg_signal_backend for the fence.
    src.psql("app", "REVOKE pg_signal_backend FROM mig");
    assert_one_blocker(
        "no pg_signal_backend",
        &run(),
        "fence-terminate",
        "role mig",
        "GRANT pg_signal_backend TO \"mig\"",
    );
    src.psql("app", "GRANT pg_signal_backend TO mig");

    // jobs above the role's connection limit: jobs 2 + 2 of pgmove's own.
    src.psql("app", "ALTER ROLE mig CONNECTION LIMIT 3");
    assert_one_blocker(
        "connection limit",
        &run(),
        "connections",
        "database app",
        "ALTER ROLE \"mig\" CONNECTION LIMIT 4",
    );
    src.psql("app", "ALTER ROLE mig CONNECTION LIMIT -1");

    // jobs above what max_connections (60 in the harness, 3 reserved for superusers) leaves:
    // a blocker on each server, naming the setting.
    let many = write_plan(
        dir.path(),
        "lpmany",
        (&src, "mig"),
        (&dst, "tmig"),
        "strategy: copy-cdc\njobs: 57\nowner: target-user\ncdc:\n  ddl: ignore\n",
    );
    let (out, report) = plan(&many, SRC_ROLE_PW, DST_ROLE_PW);
    assert_eq!(out.status.code(), Some(2), "{report:#}");
    let b = blockers(&report);
    assert_eq!(b.len(), 2, "{b:#?}");
    for (f, side) in b.iter().zip(["source", "target"]) {
        assert_eq!(f["check"], "connections", "{f:#}");
        assert_eq!(f["side"], side, "{f:#}");
        let msg = f["message"].as_str().unwrap_or_default();
        assert!(msg.contains("needs up to 59 connections"), "{f:#}");
        assert!(
            msg.contains("max_connections is 60, 3 are reserved"),
            "{f:#}"
        );
        let fix = f["fix"].as_str().unwrap_or_default();
        assert!(fix.contains("lower jobs"), "{f:#}");
        assert!(fix.contains("max_connections"), "{f:#}");
    }

    // No REPLICATION: one blocker with the ALTER ROLE, and no pg_hba.conf advice.
    src.psql("app", "ALTER ROLE mig NOREPLICATION");
    let f = assert_one_blocker(
        "no replication right",
        &run(),
        "source-replication-right",
        "role mig",
        "ALTER ROLE \"mig\" WITH REPLICATION",
    );
    assert!(!f.to_string().contains("pg_hba"), "{f:#}");
    src.psql("app", "ALTER ROLE mig REPLICATION");

    // Event triggers for DDL capture need a superuser.
    let ddl = write_plan(
        dir.path(),
        "lpddl",
        (&src, "mig"),
        (&dst, "tmig"),
        "strategy: copy-cdc\njobs: 2\nowner: target-user\ncdc:\n  ddl: replicate\n",
    );
    assert_one_blocker(
        "cdc.ddl: replicate",
        &plan(&ddl, SRC_ROLE_PW, DST_ROLE_PW),
        "ddl-event-trigger",
        "role mig",
        "cdc.ddl: ignore",
    );

    // SET session_replication_role on the target.
    dst.psql(
        "app",
        "REVOKE SET ON PARAMETER session_replication_role FROM tmig",
    );
    assert_one_blocker(
        "no session_replication_role",
        &run(),
        "target-replication-role",
        "session_replication_role",
        "GRANT SET ON PARAMETER session_replication_role TO \"tmig\"",
    );
    dst.psql(
        "app",
        "GRANT SET ON PARAMETER session_replication_role TO tmig",
    );

    // CREATE on the target's existing schema, and on the database for new ones.
    dst.psql("app", "REVOKE CREATE ON SCHEMA public FROM tmig");
    assert_one_blocker(
        "no CREATE on schema public",
        &run(),
        "target-schema-create",
        "schema public",
        "GRANT CREATE ON SCHEMA \"public\" TO \"tmig\"",
    );
    dst.psql("app", "GRANT CREATE ON SCHEMA public TO tmig");
    dst.psql("app", "REVOKE CREATE ON DATABASE app FROM tmig");
    assert_one_blocker(
        "no CREATE on the target database",
        &run(),
        "target-create",
        "database app",
        "GRANT CREATE ON DATABASE \"app\" TO \"tmig\"",
    );
    dst.psql("app", "GRANT CREATE ON DATABASE app TO tmig");

    // owner: keep needs membership in the owner roles on the target.
    let keep = write_plan(
        dir.path(),
        "lpkeep",
        (&src, "mig"),
        (&dst, "tmig"),
        "strategy: copy-cdc\njobs: 2\nowner: keep\ncdc:\n  ddl: ignore\n",
    );
    let run_keep = || plan(&keep, SRC_ROLE_PW, DST_ROLE_PW);
    assert_one_blocker(
        "owner role missing on the target",
        &run_keep(),
        "owner-missing",
        "role mig",
        "CREATE ROLE \"mig\"",
    );
    dst.psql("app", "CREATE ROLE mig NOLOGIN");
    assert_one_blocker(
        "not a member of the owner role",
        &run_keep(),
        "owner-membership",
        "role mig",
        "GRANT \"mig\" TO \"tmig\"",
    );
    dst.psql("app", "GRANT mig TO tmig");
    assert_ready("owner: keep with membership", &run_keep());

    // A table owned by a superuser: granting that role would hand out superuser, so the fix
    // never suggests it (offline strategy, where the source needs no ownership).
    src.psql(
        "app",
        "CREATE TABLE public.by_postgres (id int PRIMARY KEY); GRANT SELECT ON public.by_postgres TO mig;",
    );
    let offline = write_plan(
        dir.path(),
        "lpoff",
        (&src, "mig"),
        (&dst, "tmig"),
        "strategy: dump-restore\njobs: 2\nowner: keep\n",
    );
    let f = assert_one_blocker(
        "owner is a superuser",
        &plan(&offline, SRC_ROLE_PW, DST_ROLE_PW),
        "owner-membership",
        "role postgres",
        "owner: target-user",
    );
    assert!(
        !f["fix"]
            .as_str()
            .unwrap_or_default()
            .contains("GRANT \"postgres\""),
        "{f:#}"
    );

    // On RDS (detected by its rds_superuser role) a role without the replication right gets
    // the GRANT the master user runs, and no pg_hba.conf advice (RDS has none to edit).
    src.psql(
        "app",
        "DROP TABLE public.by_postgres; CREATE ROLE rds_superuser NOLOGIN; CREATE ROLE rds_replication NOLOGIN; ALTER ROLE mig NOREPLICATION;",
    );
    let f = assert_one_blocker(
        "RDS source without rds_replication",
        &run(),
        "source-replication-right",
        "role mig",
        "as the master user: GRANT rds_replication TO \"mig\"",
    );
    assert!(!f.to_string().contains("pg_hba"), "{f:#}");
}

fn endpoint(c: &Cluster, side: Side, user: &str, password: &str) -> Endpoint {
    Endpoint::from_dsn(
        side,
        &format!("postgres://{user}@127.0.0.1:{}/app?sslmode=disable", c.port),
        Some(Secret::new(password)),
        &|_| None,
    )
    .expect("dsn")
}

/// Source `app` with 100 rows in `public.t` that a policy hides from `reader` (who may SELECT
/// the table); the target holds `public.t` empty, as a filtered copy would have left it.
fn rls_pair() -> (Cluster, Cluster) {
    let src = Cluster::start(Options::logical());
    let dst = Cluster::start(Options::default());
    src.create_db("app");
    dst.create_db("app");
    src.psql(
        "app",
        &format!(
            "CREATE ROLE reader LOGIN PASSWORD '{SRC_ROLE_PW}';
             CREATE TABLE public.t (id int PRIMARY KEY, owner_name text);
             INSERT INTO public.t SELECT g, 'someone' FROM generate_series(1, 100) g;
             ALTER TABLE public.t ENABLE ROW LEVEL SECURITY;
             CREATE POLICY mine ON public.t USING (owner_name = current_user);
             GRANT SELECT ON public.t TO reader;"
        ),
    );
    dst.psql(
        "app",
        "CREATE TABLE public.t (id int PRIMARY KEY, owner_name text);",
    );
    (src, dst)
}

#[test]
fn plan_blocks_a_table_whose_row_level_security_hides_rows_from_the_role() {
    let (src, dst) = rls_pair();
    let dir = tempfile::tempdir().expect("tempdir");
    let p = write_plan(
        dir.path(),
        "rls",
        (&src, "reader"),
        (&dst, "postgres"),
        "strategy: dump-restore\nowner: target-user\n",
    );
    // (The target already holds public.t: only the row-security blocker is looked at.)
    let rls = |report: &Value| -> Vec<Value> {
        blockers(report)
            .into_iter()
            .filter(|f| f["check"] == "row-security")
            .cloned()
            .collect()
    };
    let (out, report) = plan(&p, SRC_ROLE_PW, &dst.password);
    assert_eq!(out.status.code(), Some(2), "{report:#}");
    let found = rls(&report);
    assert_eq!(found.len(), 1, "{report:#}");
    assert_eq!(found[0]["object"], "public.t");
    let fix = found[0]["fix"].as_str().expect("fix");
    assert!(fix.contains("ALTER ROLE \"reader\" BYPASSRLS"), "{fix}");
    assert!(
        fix.contains("ALTER TABLE \"public\".\"t\" OWNER TO \"reader\""),
        "{fix}"
    );
    // The owner sees every row (no FORCE): no blocker.
    src.psql("app", "ALTER TABLE public.t OWNER TO reader");
    assert!(rls(&plan(&p, SRC_ROLE_PW, &dst.password).1).is_empty());
    // With FORCE the policies filter the owner too.
    src.psql("app", "ALTER TABLE public.t FORCE ROW LEVEL SECURITY");
    let found = rls(&plan(&p, SRC_ROLE_PW, &dst.password).1);
    assert_eq!(found.len(), 1);
    assert!(found[0]["message"]
        .as_str()
        .unwrap_or_default()
        .contains("FORCE ROW LEVEL SECURITY"));
    // BYPASSRLS sees every row.
    src.psql("app", "ALTER ROLE reader BYPASSRLS");
    assert!(rls(&plan(&p, SRC_ROLE_PW, &dst.password).1).is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reads_as_a_filtered_role_fail_instead_of_seeing_fewer_rows() {
    let (src, dst) = rls_pair();
    // A pgmove session reading the table as `reader` fails loudly instead of seeing 0 rows.
    let ep = endpoint(&src, Side::Source, "reader", SRC_ROLE_PW);
    let c = ep.connect().await.expect("connect as reader");
    let err = c
        .query_one("SELECT count(*) FROM public.t", &[])
        .await
        .expect_err("row_security = off must make the filtered read fail");
    assert!(
        pgmove::pg::error_text(&err).contains("row-level security"),
        "{}",
        pgmove::pg::error_text(&err)
    );

    // verify as `reader` against a target that lacks all 100 rows does not say identical.
    let opts = VerifyOptions {
        level: Level::Checksums,
        jobs: 1,
        chunk_rows: 50_000,
        ..VerifyOptions::default()
    };
    let tgt = endpoint(&dst, Side::Target, "postgres", &dst.password);
    match verify::verify(&ep, &tgt, &opts).await {
        Ok(r) => assert!(
            !r.is_identical(),
            "verify as a filtered role said identical: {r:#?}"
        ),
        Err(e) => assert!(e.to_string().contains("row-level security"), "{e}"),
    }

    // With BYPASSRLS the role reads every row.
    src.psql("app", "ALTER ROLE reader BYPASSRLS");
    let c = ep.connect().await.expect("connect as reader");
    let n: i64 = c
        .query_one("SELECT count(*) FROM public.t", &[])
        .await
        .expect("count")
        .get(0);
    assert_eq!(n, 100);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn change_apply_refuses_a_target_role_that_cannot_silence_triggers() {
    let dst = Cluster::start(Options::default());
    dst.create_db("app");
    dst.psql(
        "app",
        &format!("CREATE ROLE tmig LOGIN PASSWORD '{DST_ROLE_PW}';"),
    );
    let job = pgmove::cdc::CdcJob {
        plan_name: "lp".to_string(),
        source: endpoint(&dst, Side::Source, "postgres", &dst.password),
        target: endpoint(&dst, Side::Target, "tmig", DST_ROLE_PW),
        slot: "pgmove_lp".to_string(),
        publication: "pgmove_lp".to_string(),
        table_lsns: Default::default(),
        batch_changes: 100,
        exit_when_caught_up: true,
        ddl: None,
        memory_limit: 256 << 20,
    };
    let (_stop_tx, stop) = tokio::sync::watch::channel(false);
    let err = pgmove::cdc::run(&job, stop)
        .await
        .expect_err("the apply session must refuse to run with the target's triggers live")
        .to_string();
    assert!(err.contains("session_replication_role"), "{err}");
    assert!(
        err.contains("GRANT SET ON PARAMETER session_replication_role"),
        "{err}"
    );
    assert!(!err.contains(DST_ROLE_PW));
}
