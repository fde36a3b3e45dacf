//! `roles: create` (issue 11, item 6), against real servers: the roles the moved objects need
//! (owners, grantees, default privileges, a membership, a REPLICATION role) are created on a
//! target that lacks them, with their attributes and memberships, before the schema restore,
//! so owners and grants arrive as on the source; passwords are not carried and the report
//! says so; a rerun leaves the roles alone.

use crate::support;

use std::path::Path;

use support::online::{self, run, text};
use support::Cluster;

const ROLES: &str = "'app_owner', 'reader', 'team', 'alice', 'repl', 'lo_reader', 'bystander'";

/// Source roles and objects: `items` owned by app_owner, read by reader, a column granted to
/// team (alice is its member), default privileges of app_owner for reader, `logs` owned by
/// repl (a REPLICATION role), a large object owned by app_owner and granted to lo_reader (a
/// role no other object needs); bystander is needed by nothing.
fn source(src: &Cluster) {
    src.psql(
        "postgres",
        "CREATE ROLE app_owner NOLOGIN;
         CREATE ROLE reader LOGIN PASSWORD 'reader-secret' CONNECTION LIMIT 7;
         CREATE ROLE team NOLOGIN NOINHERIT;
         CREATE ROLE alice LOGIN CREATEDB PASSWORD 'alice-secret';
         GRANT team TO alice;
         CREATE ROLE repl LOGIN REPLICATION;
         CREATE ROLE lo_reader NOLOGIN;
         CREATE ROLE bystander LOGIN;",
    );
    src.psql(
        "shop",
        "CREATE TABLE items (id int PRIMARY KEY, name text);
         INSERT INTO items SELECT g, 'item ' || g FROM generate_series(1, 20) g;
         ALTER TABLE items OWNER TO app_owner;
         GRANT SELECT ON items TO reader;
         GRANT SELECT (name) ON items TO team;
         ALTER DEFAULT PRIVILEGES FOR ROLE app_owner IN SCHEMA public GRANT SELECT ON TABLES TO reader;
         CREATE TABLE logs (id int PRIMARY KEY, line text);
         INSERT INTO logs VALUES (1, 'one');
         ALTER TABLE logs OWNER TO repl;
         SELECT lo_from_bytea(4242, 'large');
         ALTER LARGE OBJECT 4242 OWNER TO app_owner;
         GRANT SELECT ON LARGE OBJECT 4242 TO lo_reader;",
    );
}

/// Roles, attributes and memberships of the test's roles on `c`.
fn roles(c: &Cluster) -> String {
    c.psql(
        "postgres",
        &format!(
            "SELECT (SELECT string_agg(format('%s super=%s inherit=%s createrole=%s createdb=%s login=%s repl=%s bypassrls=%s connlimit=%s',
                 rolname, rolsuper, rolinherit, rolcreaterole, rolcreatedb, rolcanlogin, rolreplication, rolbypassrls, rolconnlimit),
                 E'\\n' ORDER BY rolname) FROM pg_roles WHERE rolname IN ({ROLES}))
             || E'\\n' || (SELECT coalesce(string_agg(r.rolname || ' has member ' || m.rolname, ',' ORDER BY 1), '')
                 FROM pg_auth_members a JOIN pg_roles r ON r.oid = a.roleid JOIN pg_roles m ON m.oid = a.member
                 WHERE r.rolname IN ({ROLES}) AND m.rolname IN ({ROLES}))"
        ),
    )
}

/// Owners and privileges of the moved objects in `db`.
fn owners_and_grants(c: &Cluster, db: &str) -> String {
    c.psql(
        db,
        "SELECT (SELECT string_agg(relname || ' ' || pg_get_userbyid(relowner) || ' ' || coalesce(relacl::text, '-'), E'\\n' ORDER BY relname)
            FROM pg_class WHERE relname IN ('items', 'logs'))
         || E'\\n' || (SELECT string_agg(attname || ' ' || attacl::text, ',') FROM pg_attribute
            WHERE attrelid = 'items'::regclass AND attacl IS NOT NULL)
         || E'\\n' || (SELECT string_agg(pg_get_userbyid(defaclrole) || ' ' || defaclacl::text, ',') FROM pg_default_acl)
         || E'\\n' || (SELECT string_agg(oid || ' ' || pg_get_userbyid(lomowner) || ' ' || coalesce(lomacl::text, '-'), ',')
            FROM pg_largeobject_metadata)",
    )
}

fn apply(plan: &Path, src: &Cluster, dst: &Cluster, online_move: bool) -> String {
    let p = plan.to_str().expect("utf8");
    let mut args = vec!["apply", p, "--yes"];
    if online_move {
        args.push("--exit-when-caught-up");
    }
    let out = run(&args, src, dst);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    text(&out)
}

fn roles_are_created(strategy: &str) {
    let (src, dst) = online::pair();
    source(&src);
    let expected_roles = {
        let all = roles(&src);
        // bystander is needed by no moved object: not created.
        all.lines()
            .filter(|l| !l.starts_with("bystander "))
            .collect::<Vec<_>>()
            .join("\n")
    };
    let dir = tempfile::tempdir().expect("tempdir");
    let plan = online::PlanYaml {
        strategy: Some(strategy),
        extra: "roles: create\n",
        ..online::PlanYaml::default()
    }
    .write(dir.path(), "roles", &src, &dst);
    let p = plan.to_str().expect("utf8");
    // plan does not block on the owners the target lacks: roles: create makes them.
    let out = run(&["plan", p], &src, &dst);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));

    // The dry run lists the roles it would create, and creates none.
    let out = run(&["apply", p, "--dry-run"], &src, &dst);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let t = text(&out);
    assert!(
        t.contains("CREATE ROLE \"alice\" WITH NOSUPERUSER INHERIT NOCREATEROLE CREATEDB LOGIN NOREPLICATION NOBYPASSRLS CONNECTION LIMIT -1;"),
        "{t}"
    );
    assert!(!t.contains("bystander"), "{t}");
    assert_eq!(
        dst.psql(
            "postgres",
            &format!("SELECT count(*) FROM pg_roles WHERE rolname IN ({ROLES})")
        ),
        "0"
    );

    let out = apply(&plan, &src, &dst, strategy == "copy-cdc");
    assert!(
        out.contains(
            "created 6 role(s) on the target: alice, app_owner, lo_reader, reader, repl, team"
        ),
        "{out}"
    );
    assert!(
        out.contains("passwords are not carried; set passwords for: alice, reader, repl"),
        "{out}"
    );
    assert!(!out.contains("secret"), "{out}");
    assert_eq!(roles(&dst), expected_roles);
    assert_eq!(
        dst.psql(
            "postgres",
            "SELECT count(*) FROM pg_authid WHERE rolname IN ('alice', 'reader') AND rolpassword IS NOT NULL"
        ),
        "0",
        "a password was carried"
    );
    assert_eq!(
        owners_and_grants(&dst, online::DB),
        owners_and_grants(&src, online::DB)
    );
    assert_eq!(dst.psql(online::DB, "SELECT count(*) FROM items"), "20");
    assert_eq!(
        dst.psql(
            online::DB,
            "SELECT string_agg(role_name, ',' ORDER BY role_name) FROM pgmove.created_roles"
        ),
        "alice,app_owner,lo_reader,reader,repl,team"
    );

    // A rerun creates nothing and alters nothing.
    dst.psql("postgres", "ALTER ROLE reader CONNECTION LIMIT 3");
    let out = apply(&plan, &src, &dst, strategy == "copy-cdc");
    assert!(out.contains("roles: create: no role to create"), "{out}");
    assert_eq!(
        dst.psql(
            "postgres",
            "SELECT rolconnlimit FROM pg_roles WHERE rolname = 'reader'"
        ),
        "3"
    );

    // cleanup never drops them, and says so.
    let out = run(&["cleanup", p], &src, &dst);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert!(
        text(&out).contains("roles are never dropped by cleanup"),
        "{}",
        text(&out)
    );
    assert_eq!(
        dst.psql(
            "postgres",
            "SELECT count(*) FROM pg_roles WHERE rolname IN ('alice', 'app_owner', 'lo_reader', 'reader', 'repl', 'team')"
        ),
        "6"
    );
}

#[test]
fn dump_restore_creates_the_roles_the_objects_need() {
    roles_are_created("dump-restore");
}

#[test]
fn copy_cdc_creates_the_roles_the_objects_need() {
    roles_are_created("copy-cdc");
}

#[test]
fn a_target_role_with_createrole_only_leaves_out_replication_and_says_so() {
    let (src, dst) = online::pair();
    source(&src);
    // The target connects as mover: CREATEROLE, owner of the target database, no superuser.
    dst.psql(
        "postgres",
        &format!(
            "CREATE ROLE mover LOGIN CREATEROLE PASSWORD '{}'; ALTER DATABASE shop OWNER TO mover;",
            dst.password
        ),
    );
    // `owner: keep` as a non-superuser: ALTER ... OWNER TO needs the new owner to have CREATE
    // on the schema (PostgreSQL 15's public schema grants it to nobody).
    dst.psql("shop", "GRANT CREATE ON SCHEMA public TO PUBLIC");
    let dir = tempfile::tempdir().expect("tempdir");
    let plan = dir.path().join("mover.yaml");
    std::fs::write(
        &plan,
        format!(
            "version: 1\nname: mover\nstrategy: dump-restore\nroles: create\nsource:\n  dsn: postgres://postgres@127.0.0.1:{}/shop\n  password: {{env: SRC_PW}}\n  sslmode: disable\ntarget:\n  dsn: postgres://mover@127.0.0.1:{}/shop\n  password: {{env: DST_PW}}\n  sslmode: disable\n",
            src.port, dst.port
        ),
    )
    .expect("write plan");
    let out = apply(&plan, &src, &dst, false);
    assert!(
        out.contains(
            "roles: role repl created without REPLICATION (only a superuser may give them; as a superuser: ALTER ROLE \"repl\" REPLICATION;)"
        ),
        "{out}"
    );
    assert!(out.contains("GRANT \"app_owner\" TO \"mover\""), "{out}");
    assert_eq!(
        dst.psql(
            "postgres",
            "SELECT string_agg(rolname || ' ' || rolreplication, ',' ORDER BY rolname) FROM pg_roles WHERE rolname IN ('repl', 'alice')"
        ),
        "alice false,repl false"
    );
    assert_eq!(
        owners_and_grants(&dst, online::DB),
        owners_and_grants(&src, online::DB)
    );
    assert_eq!(
        dst.psql(
            online::DB,
            "SELECT left_out FROM pgmove.created_roles WHERE role_name = 'repl'"
        ),
        "REPLICATION"
    );
}
