//! The simulated RDS/Aurora server of the harness (`support::managed`) is what the managed
//! tests rely on: pgmove's inspection detects it as RDS or Aurora, the master user is not a
//! superuser but a member of `rds_superuser` who owns the database, and the migrating role is a
//! plain role with `rds_replication` that can open a replication connection.

use crate::support::managed::{Flavour, Managed, MASTER, MIGRATOR};
use crate::support::Options;
use pgmove::pg::Side;

#[test]
fn a_simulated_aurora_looks_like_aurora_and_its_roles_like_rds_roles() {
    let m = Managed::start(Flavour::Aurora, Options::default());
    m.create_db("app");
    m.as_master_on_rds("app", "CREATE TABLE public.t (id int PRIMARY KEY)");
    m.grant_read("app");
    assert_eq!(m.cluster.show("rds.logical_replication"), "1");
    assert!(m.cluster.show("rds.extensions").contains("postgis"));
    assert!(!m.cluster.show("rds.extensions").contains("pglogical"));
    assert_eq!(m.cluster.show("wal_level"), "logical");
    let who = m.psql_master(
        "app",
        "SELECT rolsuper, pg_has_role('master', 'rds_superuser', 'MEMBER'),
                (SELECT pg_get_userbyid(datdba) FROM pg_database WHERE datname = 'app'),
                aurora_version() IS NOT NULL
           FROM pg_roles WHERE rolname = current_user",
    );
    assert_eq!(who, format!("f|t|{MASTER}|t"));
    let mig = m.psql_as(
        MIGRATOR,
        &m.migrator_password,
        "app",
        "SELECT rolsuper, rolreplication, pg_has_role('migrator', 'rds_replication', 'MEMBER'),
                has_table_privilege('public.t', 'SELECT')
           FROM pg_roles WHERE rolname = current_user",
    );
    assert!(
        mig.status.success(),
        "{}",
        String::from_utf8_lossy(&mig.stderr)
    );
    assert_eq!(String::from_utf8_lossy(&mig.stdout).trim(), "f|t|t|t");
    // The master may silence triggers (GRANT SET ON PARAMETER through rds_superuser).
    m.psql_master("app", "SET session_replication_role = replica");
    // And cannot do what only a superuser can.
    let ev = m.psql_as(
        MASTER,
        &m.master_password,
        "app",
        "CREATE FUNCTION f() RETURNS event_trigger LANGUAGE plpgsql AS $$BEGIN END$$;
         CREATE EVENT TRIGGER e ON ddl_command_end EXECUTE FUNCTION f()",
    );
    assert!(!ev.status.success());
    let err = String::from_utf8_lossy(&ev.stderr);
    assert!(
        err.contains("permission denied to create event trigger"),
        "{err}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn pgmove_detects_the_simulated_rds_and_aurora() {
    for (flavour, want) in [
        (Flavour::Rds, pgmove::inspect::Platform::Rds),
        (Flavour::Aurora, pgmove::inspect::Platform::Aurora),
    ] {
        let m = Managed::start(flavour, Options::default());
        m.create_db("app");
        let ep = m.endpoint(Side::Target, MASTER, &m.master_password, "app");
        let server = pgmove::inspect::inspect(&ep).await.expect("inspect");
        assert_eq!(server.platform, want, "{:?}", server.platform_evidence);
    }
}
