//! `roles: create` into a managed target (issue 14, item 4): a self-managed source read by a
//! plain role (a member of `pg_read_all_data`, no superuser), moved with dump-restore into the
//! simulated Aurora as its master user (CREATEROLE, not a superuser). The roles the moved
//! objects need arrive with their attributes, connection limits, expiry, comments, settings
//! and memberships as on the source, minus what the master user may not give: SUPERUSER,
//! REPLICATION and BYPASSRLS are left out and reported by role with the RDS fix, a role named
//! `rds_*` is skipped and reported, a superuser-only setting is reported, memberships in a
//! role the target has (`pg_read_all_data`) are granted; the `--format json` summary says all
//! of it and names the roles whose password to set (never a password); a rerun creates nothing
//! and reports the same. From a source that is itself RDS (read by its plain migrating role),
//! the source's `rds_*` roles are skipped and a membership in one the target has
//! (`rds_replication`) is granted by the master user. copy-cdc creates them the same way.

use crate::support;
use crate::support::online::text;

use std::path::{Path, PathBuf};
use std::process::Output;

use serde_json::Value;
use support::managed::{Flavour, Managed, MASTER};
use support::{Cluster, Options};

const DB: &str = "app";
/// The source's reading role: a plain login role, member of `pg_read_all_data`.
const SRC_USER: &str = "src_reader";
const SRC_PW: &str = "src-reader-pw";
/// The roles the moved objects need (bystander is needed by none).
const ROLES: &str =
    "'admin_su', 'alice', 'app_owner', 'reader', 'readers_base', 'repl', 'rls_reader', 'team'";

/// Roles and objects on the source: `items` owned by app_owner (with a comment), read by
/// readers_base (team is its member with ADMIN OPTION, alice team's: a chain), reader (login,
/// connection limit, expiry, settings, one of them superuser-only), repl (REPLICATION),
/// rls_reader (BYPASSRLS) and rds_reporting (a role named like RDS's, of which alice is a
/// member); `audit` owned by admin_su (SUPERUSER); alice is a member of pg_read_all_data and
/// of postgres (a superuser on both servers: the master user may not grant that).
fn source(src: &Cluster) {
    src.psql(
        "postgres",
        &format!(
            "CREATE ROLE app_owner NOLOGIN;
             COMMENT ON ROLE app_owner IS 'owns the app''s tables';
             CREATE ROLE readers_base NOLOGIN;
             CREATE ROLE team NOLOGIN NOINHERIT;
             CREATE ROLE alice LOGIN CREATEDB PASSWORD 'alice-secret';
             GRANT readers_base TO team WITH ADMIN OPTION;
             GRANT team TO alice;
             GRANT pg_read_all_data TO alice;
             CREATE ROLE reader LOGIN PASSWORD 'reader-secret' CONNECTION LIMIT 7 VALID UNTIL '2031-01-02 03:04:05+00';
             ALTER ROLE reader SET search_path = app, \"$user\", public;
             ALTER ROLE reader SET statement_timeout = '30s';
             ALTER ROLE reader SET log_statement = 'all';
             CREATE ROLE repl LOGIN REPLICATION;
             CREATE ROLE rls_reader LOGIN BYPASSRLS;
             CREATE ROLE admin_su LOGIN SUPERUSER;
             CREATE ROLE rds_reporting NOLOGIN;
             GRANT rds_reporting TO alice;
             GRANT postgres TO alice;
             CREATE ROLE bystander LOGIN;
             CREATE ROLE {SRC_USER} LOGIN PASSWORD '{SRC_PW}';
             GRANT pg_read_all_data TO {SRC_USER};"
        ),
    );
    src.psql(
        DB,
        "ALTER ROLE reader IN DATABASE app SET work_mem = '8MB';
         CREATE TABLE items (id int PRIMARY KEY, name text);
         INSERT INTO items SELECT g, 'item ' || g FROM generate_series(1, 20) g;
         ALTER TABLE items OWNER TO app_owner;
         GRANT SELECT ON items TO readers_base, reader, repl, rls_reader, rds_reporting;
         GRANT UPDATE (name) ON items TO team;
         CREATE TABLE audit (id int PRIMARY KEY, line text);
         INSERT INTO audit VALUES (1, 'one');
         ALTER TABLE audit OWNER TO admin_su;",
    );
}

/// The test's roles on `c`, one line each: attributes, connection limit, expiry, comment and
/// role-wide settings (sorted); then their memberships (members among them, in roles among
/// them, rds_reporting or pg_read_all_data); then reader's settings in database `app`.
fn roles(c: &Cluster) -> String {
    let all = c.psql(
        "postgres",
        &format!(
            "SELECT string_agg(format('%s super=%s inherit=%s createrole=%s createdb=%s login=%s repl=%s bypassrls=%s connlimit=%s until=%s comment=%s config=%s',
                 rolname, rolsuper, rolinherit, rolcreaterole, rolcreatedb, rolcanlogin, rolreplication, rolbypassrls,
                 rolconnlimit, rolvaliduntil AT TIME ZONE 'UTC', shobj_description(oid, 'pg_authid'),
                 (SELECT string_agg(x, ';' ORDER BY x) FROM unnest(rolconfig) x)),
                 E'\\n' ORDER BY rolname)
               || E'\\n' || (SELECT string_agg(r.rolname || ' has member ' || m.rolname || CASE WHEN a.admin_option THEN ' with admin' ELSE '' END, E'\\n' ORDER BY r.rolname, m.rolname)
                 FROM pg_auth_members a JOIN pg_roles r ON r.oid = a.roleid JOIN pg_roles m ON m.oid = a.member
                 WHERE m.rolname IN ({ROLES}) AND (r.rolname IN ({ROLES}) OR r.rolname IN ('rds_reporting', 'pg_read_all_data')))
             FROM pg_roles WHERE rolname IN ({ROLES})"
        ),
    );
    let in_db = c.psql(
        DB,
        "SELECT s.setconfig FROM pg_db_role_setting s JOIN pg_roles r ON r.oid = s.setrole
          WHERE r.rolname = 'reader' AND s.setdatabase = (SELECT oid FROM pg_database WHERE datname = current_database())",
    );
    format!("{all}\nin app: {in_db}")
}

/// [`roles`] of the source as the master user can make them on the target: without SUPERUSER,
/// REPLICATION, BYPASSRLS, the superuser-only setting and the membership in the skipped role.
fn expected_roles(src: &Cluster) -> String {
    roles(src)
        .replace("admin_su super=t", "admin_su super=f")
        .replace(" repl=t ", " repl=f ")
        .replace("bypassrls=t", "bypassrls=f")
        .replace("config=log_statement=all;", "config=")
        .replace("rds_reporting has member alice\n", "")
}

/// Owners and privileges of the moved tables in `app`.
fn owners_and_grants(c: &Cluster) -> String {
    c.psql(
        DB,
        "SELECT string_agg(relname || ' ' || pg_get_userbyid(relowner) || ' ' || coalesce(relacl::text, '-')
                || ' ' || coalesce((SELECT string_agg(attname || ' ' || attacl::text, ',') FROM pg_attribute
                                     WHERE attrelid = c.oid AND attacl IS NOT NULL), '-'),
                E'\\n' ORDER BY relname)
           FROM pg_class c WHERE relname IN ('items', 'audit')",
    )
}

fn write_plan(dir: &Path, src: &Cluster, dst: &Managed) -> PathBuf {
    let path = dir.join("managed-roles.yaml");
    std::fs::write(
        &path,
        format!(
            "version: 1\nname: managed-roles\nstrategy: dump-restore\nroles: create\nsource:\n  dsn: postgres://{SRC_USER}@127.0.0.1:{}/{DB}\n  password: {{env: SRC_PW}}\n  sslmode: disable\ntarget:\n  dsn: {}\n  password: {{env: DST_PW}}\n  sslmode: disable\n",
            src.port,
            dst.uri_as(MASTER, DB)
        ),
    )
    .expect("write plan");
    path
}

fn pgmove(args: &[&str], dst: &Managed) -> Output {
    pgmove_from(args, SRC_PW, dst)
}

/// pgmove with `args`, the source's password `src_pw` and the master user's for the target;
/// no password in its output.
fn pgmove_from(args: &[&str], src_pw: &str, dst: &Managed) -> Output {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_pgmove"))
        .args(args)
        .env("NO_COLOR", "1")
        .env_remove("PGPASSWORD")
        .env("SRC_PW", src_pw)
        .env("DST_PW", &dst.master_password)
        .output()
        .expect("run pgmove");
    let all = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    for secret in [
        "alice-secret",
        "reader-secret",
        SRC_PW,
        dst.master_password.as_str(),
    ] {
        assert!(!all.contains(secret), "a password in the output: {all}");
    }
    out
}

/// `apply --yes --format json`: its summary's `roles` object.
fn apply_json(plan: &Path, dst: &Managed) -> Value {
    apply_json_from(plan, SRC_PW, dst)
}

/// [`apply_json`] with the source's password `src_pw`.
fn apply_json_from(plan: &Path, src_pw: &str, dst: &Managed) -> Value {
    let out = pgmove_from(
        &[
            "apply",
            plan.to_str().expect("utf8"),
            "--yes",
            "--format",
            "json",
        ],
        src_pw,
        dst,
    );
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let v: Value = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("not JSON ({e}): {}", text(&out)));
    v["roles"].clone()
}

/// The report's facts that a rerun must repeat.
fn refusals(r: &Value) -> Value {
    serde_json::json!({
        "skipped": r["skipped"],
        "left_out": r["left_out"],
        "memberships_not_granted": r["memberships_not_granted"],
        "settings_not_set": r["settings_not_set"],
        "set_passwords_for": r["set_passwords_for"],
    })
}

#[test]
fn roles_arrive_in_aurora_as_on_the_source_minus_what_the_master_user_may_not_give() {
    let src = Cluster::start(Options::default());
    src.create_db(DB);
    source(&src);
    let dst = Managed::start(Flavour::Aurora, Options::default());
    dst.create_db(DB);
    // owner: keep as the master user: ALTER TABLE ... OWNER TO needs the new owner to have
    // CREATE on the schema; the master user (owner of the database, so of schema public)
    // grants it, as a user of RDS would.
    dst.psql_master(DB, "GRANT CREATE ON SCHEMA public TO PUBLIC");
    let dir = tempfile::tempdir().expect("tempdir");
    let plan = write_plan(dir.path(), &src, &dst);
    let p = plan.to_str().expect("utf8");

    // plan: ready, and the target seen as what it is (the fixes below depend on it).
    let out = pgmove(&["plan", p, "--format", "json"], &dst);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let report: Value =
        serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("{e}: {}", text(&out)));
    let platform = match dst.flavour {
        Flavour::Aurora => "aurora",
        Flavour::Rds => "rds",
    };
    assert_eq!(report["target"]["platform"], platform, "{report:#}");

    // The dry run shows what the master user will and will not be able to do.
    let out = pgmove(&["apply", p, "--dry-run"], &dst);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let t = text(&out);
    for want in [
        "-- role rds_reporting skipped: named as the managed services' own roles are (rds_*, pg_*, rdsadmin, ...): pgmove never creates one; the target has none",
        "CREATE ROLE \"repl\" WITH NOSUPERUSER INHERIT NOCREATEROLE NOCREATEDB LOGIN NOREPLICATION NOBYPASSRLS CONNECTION LIMIT -1;",
        "-- role repl without REPLICATION (RDS/Aurora refuse them; REPLICATION: RDS/Aurora give it through a role; as the master user: GRANT rds_replication TO \"repl\";)",
        "ALTER ROLE \"reader\" SET \"search_path\" = 'app', '$user', 'public';",
        "GRANT \"pg_read_all_data\" TO \"alice\";",
        "-- not granted: GRANT \"rds_reporting\" TO \"alice\"; (role rds_reporting is not on the target (named as a managed service's own role: skipped))",
    ] {
        assert!(t.contains(want), "{want}\n{t}");
    }
    assert!(!t.contains("bystander"), "{t}");
    assert_eq!(
        dst.cluster.psql(
            "postgres",
            &format!("SELECT count(*) FROM pg_roles WHERE rolname IN ({ROLES})")
        ),
        "0"
    );

    let first = apply_json(&plan, &dst);
    assert_eq!(
        first["created"],
        serde_json::json!([
            "admin_su",
            "alice",
            "app_owner",
            "reader",
            "readers_base",
            "repl",
            "rls_reader",
            "team"
        ]),
        "{first:#}"
    );
    let left_out: Vec<(String, Vec<String>)> = first["left_out"]
        .as_array()
        .expect("left_out")
        .iter()
        .map(|l| {
            (
                l["role"].as_str().unwrap_or_default().to_string(),
                serde_json::from_value(l["attributes"].clone()).unwrap_or_default(),
            )
        })
        .collect();
    assert_eq!(
        left_out,
        [
            ("admin_su".to_string(), vec!["SUPERUSER".to_string()]),
            ("repl".to_string(), vec!["REPLICATION".to_string()]),
            ("rls_reader".to_string(), vec!["BYPASSRLS".to_string()]),
        ],
        "{first:#}"
    );
    assert!(
        first["left_out"][1]["fix"]
            .as_str()
            .is_some_and(|f| f.contains("GRANT rds_replication TO \"repl\";")),
        "{first:#}"
    );
    assert_eq!(first["skipped"][0]["role"], "rds_reporting", "{first:#}");
    assert_eq!(
        first["skipped"].as_array().map(Vec::len),
        Some(1),
        "{first:#}"
    );
    assert_eq!(
        first["set_passwords_for"],
        serde_json::json!(["admin_su", "alice", "reader", "repl", "rls_reader"]),
        "{first:#}"
    );
    assert_eq!(
        first["memberships_not_granted"],
        serde_json::json!([{
            "statement": "GRANT \"postgres\" TO \"alice\"",
            "reason": "role postgres is a superuser on the target: only a superuser may grant membership in it (nobody may on RDS/Aurora)"
        }, {
            "statement": "GRANT \"rds_reporting\" TO \"alice\"",
            "reason": "role rds_reporting is not on the target (named as a managed service's own role: skipped)"
        }]),
        "{first:#}"
    );
    let not_set = &first["settings_not_set"];
    assert_eq!(not_set.as_array().map(Vec::len), Some(1), "{first:#}");
    assert_eq!(
        not_set[0]["statement"], "ALTER ROLE \"reader\" SET \"log_statement\" = 'all'",
        "{first:#}"
    );
    assert!(
        not_set[0]["reason"]
            .as_str()
            .is_some_and(|r| r.contains("permission denied to set parameter \"log_statement\"")),
        "{first:#}"
    );
    assert!(
        first["memberships"]
            .as_array()
            .expect("memberships")
            .contains(&Value::from("GRANT \"pg_read_all_data\" TO \"alice\"")),
        "{first:#}"
    );

    // On the target: the source's roles, minus what was refused.
    let expected = expected_roles(&src);
    let on_target = roles(&dst.cluster);
    assert_eq!(on_target, expected);
    assert!(
        on_target.contains("pg_read_all_data has member alice"),
        "{on_target}"
    );
    assert!(
        on_target.contains("readers_base has member team with admin"),
        "{on_target}"
    );
    assert!(
        on_target.contains("connlimit=7 until=2031-01-02 03:04:05"),
        "{on_target}"
    );
    assert!(
        on_target.contains("comment=owns the app's tables"),
        "{on_target}"
    );
    assert!(on_target.contains("in app: {work_mem=8MB}"), "{on_target}");
    // Owners and grants as on the source, but the grant to the skipped role.
    assert_eq!(
        owners_and_grants(&dst.cluster),
        owners_and_grants(&src).replace(",rds_reporting=r/app_owner", "")
    );
    assert_eq!(dst.cluster.psql(DB, "SELECT count(*) FROM items"), "20");
    assert_eq!(
        dst.cluster.psql(
            "postgres",
            "SELECT count(*) FROM pg_roles WHERE rolname IN ('rds_reporting', 'bystander')"
        ),
        "0"
    );

    // verify: the moved tables' owners and privileges are the same; the grant to the skipped
    // role is a note, not a difference. (Its exit code is not asserted: this test's own
    // GRANT on schema public differs too.)
    let out = pgmove(&["verify", p], &dst);
    let t = text(&out);
    assert!(
        t.contains("note: table public.items: privileges of rds_reporting: not moved: role missing on the target (rds_reporting)"),
        "{t}"
    );
    assert!(
        t.contains("tables: 2 compared, 0 differ") && !t.contains("\n  table public."),
        "{t}"
    );

    // Once the master user sets its password, reader logs in, with its settings in effect,
    // and reads what the source let it read.
    dst.psql_master(DB, "ALTER ROLE reader PASSWORD 'now-set-pw'");
    let login = std::process::Command::new(support::bindir().join("psql"))
        .args(["-X", "-q", "-A", "-t", "-v", "ON_ERROR_STOP=1", "-c"])
        .arg("SELECT current_setting('search_path') || '|' || current_setting('statement_timeout') || '|' || current_setting('work_mem') || '|' || count(*) FROM items")
        .arg(format!(
            "{}?sslmode=disable",
            dst.uri_with_password("reader", "now-set-pw", DB)
        ))
        .env_remove("PGPASSWORD")
        .output()
        .expect("run psql");
    assert_eq!(
        String::from_utf8_lossy(&login.stdout).trim(),
        "app, \"$user\", public|30s|8MB|20",
        "{}",
        String::from_utf8_lossy(&login.stderr)
    );

    // A rerun creates nothing, changes nothing and reports the same.
    let second = apply_json(&plan, &dst);
    assert_eq!(second["created"], serde_json::json!([]), "{second:#}");
    assert_eq!(second["memberships"], serde_json::json!([]), "{second:#}");
    assert_eq!(second["settings"], serde_json::json!([]), "{second:#}");
    assert_eq!(second["created_earlier"], first["created"], "{second:#}");
    assert_eq!(refusals(&second), refusals(&first));
    assert_eq!(roles(&dst.cluster), on_target);
}

#[test]
fn from_rds_to_aurora_the_sources_rds_roles_are_skipped_and_memberships_in_them_granted() {
    // The source is itself RDS: its master user made the table and a login role that is a
    // member of rds_replication; the migrating role reads it (plain, SELECT granted).
    let src = Managed::start(Flavour::Rds, Options::default());
    src.create_db(DB);
    src.psql_master(
        DB,
        "CREATE TABLE t (id int PRIMARY KEY); INSERT INTO t VALUES (1), (2);
         CREATE ROLE app_user LOGIN CONNECTION LIMIT 4;
         GRANT SELECT ON t TO app_user;
         GRANT rds_replication TO app_user;",
    );
    src.grant_read(DB);
    let dst = Managed::start(Flavour::Aurora, Options::default());
    dst.create_db(DB);
    let dir = tempfile::tempdir().expect("tempdir");
    let plan = dir.path().join("from-rds.yaml");
    std::fs::write(
        &plan,
        format!(
            "version: 1\nname: from-rds\nstrategy: dump-restore\nroles: create\nsource:\n  dsn: {}\n  password: {{env: SRC_PW}}\n  sslmode: disable\ntarget:\n  dsn: {}\n  password: {{env: DST_PW}}\n  sslmode: disable\n",
            src.uri_as(support::managed::MIGRATOR, DB),
            dst.uri_as(MASTER, DB)
        ),
    )
    .expect("write plan");
    let members = |c: &Cluster| {
        c.psql(
            "postgres",
            "SELECT string_agg(r.rolname || '>' || m.rolname, ',' ORDER BY r.rolname, m.rolname)
               FROM pg_auth_members a JOIN pg_roles r ON r.oid = a.roleid JOIN pg_roles m ON m.oid = a.member
              WHERE r.rolname LIKE 'rds\\_%'",
        )
    };
    let before = members(&dst.cluster);

    let r = apply_json_from(&plan, &src.migrator_password, &dst);
    assert_eq!(r["created"], serde_json::json!(["app_user"]), "{r:#}");
    assert_eq!(
        r["existing"],
        serde_json::json!([MASTER, support::managed::MIGRATOR]),
        "{r:#}"
    );
    let skipped: Vec<&str> = r["skipped"]
        .as_array()
        .expect("skipped")
        .iter()
        .map(|s| s["role"].as_str().unwrap_or_default())
        .collect();
    assert_eq!(skipped, ["rds_replication", "rds_superuser"], "{r:#}");
    assert!(
        r["skipped"][0]["reason"]
            .as_str()
            .is_some_and(|why| why.contains("the target has its own")),
        "{r:#}"
    );
    assert!(
        r["memberships"]
            .as_array()
            .expect("memberships")
            .contains(&Value::from("GRANT \"rds_replication\" TO \"app_user\"")),
        "{r:#}"
    );
    assert_eq!(r["left_out"], serde_json::json!([]), "{r:#}");
    assert_eq!(r["memberships_not_granted"], serde_json::json!([]), "{r:#}");
    assert_eq!(
        r["set_passwords_for"],
        serde_json::json!(["app_user"]),
        "{r:#}"
    );
    // The target's own rds_* roles gained only app_user's membership; app_user is as on the
    // source and reads the table.
    assert_eq!(
        members(&dst.cluster),
        format!("{before},rds_replication>app_user")
            .split(',')
            .collect::<std::collections::BTreeSet<_>>()
            .into_iter()
            .collect::<Vec<_>>()
            .join(",")
    );
    assert_eq!(
        dst.cluster.psql(
            DB,
            "SELECT rolconnlimit || ' ' || rolcanlogin || ' ' || has_table_privilege('app_user', 't', 'SELECT')
               FROM pg_roles WHERE rolname = 'app_user'"
        ),
        "4 true true"
    );
}

#[test]
fn copy_cdc_creates_the_roles_in_aurora_as_the_master_user_too() {
    // The source connects as its superuser here (the online source's own rights are tested
    // elsewhere); the target is the simulated Aurora as the master user.
    let src = Cluster::start(Options::logical());
    src.create_db(DB);
    source(&src);
    let dst = Managed::start(Flavour::Aurora, Options::default());
    dst.create_db(DB);
    dst.psql_master(DB, "GRANT CREATE ON SCHEMA public TO PUBLIC");
    let dir = tempfile::tempdir().expect("tempdir");
    let plan = dir.path().join("cdc-roles.yaml");
    std::fs::write(
        &plan,
        format!(
            "version: 1\nname: cdc-roles\nstrategy: copy-cdc\nroles: create\nsource:\n  dsn: postgres://postgres@127.0.0.1:{}/{DB}\n  password: {{env: SRC_PW}}\n  sslmode: disable\ntarget:\n  dsn: {}\n  password: {{env: DST_PW}}\n  sslmode: disable\n",
            src.port,
            dst.uri_as(MASTER, DB)
        ),
    )
    .expect("write plan");
    let out = pgmove_from(
        &[
            "apply",
            plan.to_str().expect("utf8"),
            "--yes",
            "--exit-when-caught-up",
            "--format",
            "json",
        ],
        &src.password,
        &dst,
    );
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let v: Value =
        serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("{e}: {}", text(&out)));
    let r = &v["roles"];
    assert_eq!(r["created"].as_array().map(Vec::len), Some(8), "{v:#}");
    assert_eq!(r["left_out"].as_array().map(Vec::len), Some(3), "{v:#}");
    assert_eq!(roles(&dst.cluster), expected_roles(&src));
    assert_eq!(
        owners_and_grants(&dst.cluster),
        owners_and_grants(&src).replace(",rds_reporting=r/app_owner", "")
    );
    assert_eq!(dst.cluster.psql(DB, "SELECT count(*) FROM items"), "20");
}
