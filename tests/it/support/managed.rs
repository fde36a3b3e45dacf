//! A simulated Amazon RDS or Aurora PostgreSQL server: a local cluster that, as far as
//! PostgreSQL allows, looks and behaves like the managed service from pgmove's point of view.
//!
//! - Settings RDS defines (as custom placeholders here): `rds.logical_replication`,
//!   `rds.extensions` (an allowlist: [`ALLOWED_EXTENSIONS`], with postgis but not pglogical
//!   unless a test adds it), `rds.force_ssl`; for Aurora also `apg_plan_mgmt.capture_plan_baselines`
//!   and a function `pg_catalog.aurora_version()` (a system function on Aurora, so verify
//!   does not take it for the application's) in every database created after the start.
//! - Roles as RDS creates them: `rds_superuser` (NOLOGIN, CREATEROLE, CREATEDB, member of
//!   `pg_signal_backend` and `pg_monitor`, `GRANT SET ON PARAMETER session_replication_role`),
//!   `rds_replication` (NOLOGIN), the master user [`MASTER`] (LOGIN, CREATEROLE, CREATEDB, a
//!   member of `rds_superuser`, **not** a superuser) who owns the databases made with
//!   [`Managed::create_db`], and a migrating role [`MIGRATOR`]: a plain LOGIN role, member of
//!   `rds_replication`. RDS gives a member of `rds_replication` the replication right; locally
//!   membership cannot, so the harness also gives the migrator `REPLICATION` (see
//!   [`Managed::start`]). [`Managed::grant_read`] gives it what RDS users grant it: USAGE and
//!   SELECT on a database's schemas and tables.
//! - What only a superuser can do locally but the master user can do on RDS (create event
//!   triggers, `CREATE EXTENSION postgis`, ...) goes through [`Managed::as_master_on_rds`]: a
//!   superuser connection that stands for "the master user runs this SQL". A test that uses it
//!   says so by calling it.

use super::{random_token, Cluster, Options};

/// The master user: member of `rds_superuser`, not a superuser.
pub const MASTER: &str = "master";
/// The migrating role: a plain login role with `rds_replication` (and, locally, REPLICATION).
pub const MIGRATOR: &str = "migrator";
/// What `rds.extensions` allows on the simulated server (a subset of what is installed).
pub const ALLOWED_EXTENSIONS: &[&str] = &[
    "btree_gist",
    "citext",
    "hstore",
    "pg_stat_statements",
    "pg_trgm",
    "pgcrypto",
    "plpgsql",
    "postgis",
    "uuid-ossp",
];

/// Which managed service the cluster plays.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Flavour {
    Rds,
    Aurora,
}

/// A running simulated RDS/Aurora server.
pub struct Managed {
    pub cluster: Cluster,
    pub flavour: Flavour,
    pub master_password: String,
    pub migrator_password: String,
}

impl Options {
    /// The settings of a simulated RDS (or Aurora) server: `wal_level = logical` with
    /// `rds.logical_replication = 1`, the `rds.extensions` allowlist, `rds.force_ssl = 0`;
    /// Aurora adds an `apg_*` setting. Use with [`Managed::start`].
    pub fn managed(flavour: Flavour) -> Options {
        let mut o = Options::logical()
            .set("rds.logical_replication", "1")
            .set(
                "rds.extensions",
                &format!("'{}'", ALLOWED_EXTENSIONS.join(",")),
            )
            .set("rds.force_ssl", "0");
        if flavour == Flavour::Aurora {
            o = o.set("apg_plan_mgmt.capture_plan_baselines", "'off'");
        }
        o
    }
}

impl Managed {
    /// Starts a simulated server of `flavour` with [`Options::managed`]'s settings added to
    /// `opts` (pass `Options::default()`, or e.g. `Options::pglogical()` for a server with
    /// pglogical preloaded; add `rds.extensions` of your own with `.set` to change the list:
    /// the later line wins), then creates the RDS roles.
    pub fn start(flavour: Flavour, opts: Options) -> Managed {
        let mut all = Options::managed(flavour);
        all.logical |= opts.logical;
        all.preload = opts.preload;
        all.ssl = opts.ssl;
        all.hide_extensions = opts.hide_extensions;
        all.settings.extend(opts.settings);
        let cluster = Cluster::start(all);
        let master_password = random_token();
        let migrator_password = random_token();
        let mut sql = format!(
            "CREATE ROLE rds_superuser NOLOGIN CREATEROLE CREATEDB;
             GRANT pg_signal_backend, pg_monitor TO rds_superuser WITH ADMIN OPTION;
             GRANT SET ON PARAMETER session_replication_role TO rds_superuser;
             CREATE ROLE rds_replication NOLOGIN;
             GRANT rds_replication TO rds_superuser WITH ADMIN OPTION;
             CREATE ROLE {MASTER} LOGIN CREATEROLE CREATEDB PASSWORD '{master_password}';
             GRANT rds_superuser TO {MASTER} WITH ADMIN OPTION;
             CREATE ROLE {MIGRATOR} LOGIN REPLICATION PASSWORD '{migrator_password}';
             GRANT rds_replication TO {MIGRATOR};"
        );
        if flavour == Flavour::Aurora {
            sql.push_str(
                "CREATE FUNCTION pg_catalog.aurora_version() RETURNS text LANGUAGE sql IMMUTABLE
                 AS $$SELECT '15.4.1'$$;",
            );
        }
        // template1, so that every database created later has aurora_version(); postgres too.
        cluster.psql("template1", &sql);
        if flavour == Flavour::Aurora {
            cluster.psql(
                "postgres",
                "CREATE FUNCTION pg_catalog.aurora_version() RETURNS text LANGUAGE sql IMMUTABLE
                 AS $$SELECT '15.4.1'$$;",
            );
        }
        Managed {
            cluster,
            flavour,
            master_password,
            migrator_password,
        }
    }

    /// Creates database `name` owned by the master user, as on RDS.
    pub fn create_db(&self, name: &str) {
        self.cluster.psql(
            "postgres",
            &format!("CREATE DATABASE \"{name}\" OWNER {MASTER}"),
        );
    }

    /// Gives the migrating role what an RDS user grants it to read `db`: USAGE on every
    /// schema but the system ones and SELECT on their tables and sequences (run by the
    /// superuser standing for the tables' owner).
    pub fn grant_read(&self, db: &str) {
        self.cluster.psql(
            db,
            &format!(
                "DO $$DECLARE s text; BEGIN
                   FOR s IN SELECT nspname FROM pg_namespace
                             WHERE nspname NOT LIKE 'pg\\_%' AND nspname <> 'information_schema' LOOP
                     EXECUTE format('GRANT USAGE ON SCHEMA %I TO {MIGRATOR}', s);
                     EXECUTE format('GRANT SELECT ON ALL TABLES IN SCHEMA %I TO {MIGRATOR}', s);
                     EXECUTE format('GRANT SELECT ON ALL SEQUENCES IN SCHEMA %I TO {MIGRATOR}', s);
                   END LOOP; END$$;"
            ),
        );
    }

    /// Runs `sql` on `db` as a local superuser, standing for "the master user runs this on
    /// RDS/Aurora" (event triggers, `CREATE EXTENSION postgis`, ... which the master user may
    /// do there through `rds_superuser`, and only a superuser may do locally).
    pub fn as_master_on_rds(&self, db: &str, sql: &str) -> String {
        self.cluster.psql(db, sql)
    }

    /// Creates extensions `names` in `db` the way the master user does on RDS/Aurora (`CREATE
    /// EXTENSION` of an extension `rds.extensions` allows, through `rds_superuser`), so that
    /// their objects (schema, tables, functions) belong to the master user as they do there.
    /// Locally only a superuser may create an untrusted extension: for this one transaction the
    /// master is made a superuser, creates them under its own name, and is made a plain role
    /// again. Standing for "the master user runs CREATE EXTENSION on RDS", like
    /// [`Managed::as_master_on_rds`].
    pub fn create_extensions_as_master(&self, db: &str, names: &[&str]) {
        let creates: Vec<String> = names
            .iter()
            .map(|n| format!("CREATE EXTENSION IF NOT EXISTS \"{n}\";"))
            .collect();
        self.cluster.psql(
            db,
            &format!(
                "ALTER ROLE {MASTER} SUPERUSER; SET ROLE {MASTER}; {} RESET ROLE; ALTER ROLE {MASTER} NOSUPERUSER;",
                creates.join(" ")
            ),
        );
    }

    /// Lets `rds_superuser` use the replication origin functions, as RDS/Aurora do (pglogical,
    /// which AWS documents run as the master user, sets up its subscription's origin on the
    /// subscriber through a connection as that user); PostgreSQL leaves them to superusers.
    /// Function privileges are per database: granted in `template1` and `postgres`, so call
    /// it before [`Managed::create_db`].
    pub fn rds_superuser_uses_origins(&self) {
        for db in ["template1", "postgres"] {
            self.cluster.psql(
                db,
                "GRANT EXECUTE ON FUNCTION
               pg_catalog.pg_replication_origin_create(text),
               pg_catalog.pg_replication_origin_drop(text),
               pg_catalog.pg_replication_origin_oid(text),
               pg_catalog.pg_replication_origin_session_setup(text),
               pg_catalog.pg_replication_origin_session_reset(),
               pg_catalog.pg_replication_origin_session_is_setup(),
               pg_catalog.pg_replication_origin_session_progress(boolean),
               pg_catalog.pg_replication_origin_xact_setup(pg_lsn, timestamp with time zone),
               pg_catalog.pg_replication_origin_xact_reset(),
               pg_catalog.pg_replication_origin_advance(text, pg_lsn),
               pg_catalog.pg_replication_origin_progress(text, boolean)
             TO rds_superuser",
            );
        }
    }

    /// Gives the master user the replication right that RDS/Aurora give it through
    /// `rds_superuser`'s membership in `rds_replication` (with `rds.logical_replication = 1`):
    /// locally membership cannot, so the harness gives it `REPLICATION`, as it does the
    /// migrating role's (see [`Managed::start`]).
    pub fn master_replicates(&self) {
        self.cluster
            .psql("postgres", &format!("ALTER ROLE {MASTER} REPLICATION"));
    }

    /// Runs `sql` on `db` as `user` (with `password`) through psql; the raw result.
    pub fn psql_as(&self, user: &str, password: &str, db: &str, sql: &str) -> std::process::Output {
        std::process::Command::new(super::bindir().join("psql"))
            .args(["-X", "-q", "-A", "-t", "-v", "ON_ERROR_STOP=1"])
            .args(["-h", "127.0.0.1", "-p", &self.cluster.port.to_string()])
            .args(["-U", user, "-d", db, "-c", sql])
            .env("PGPASSWORD", password)
            .env("PGSSLMODE", "disable")
            .output()
            .expect("run psql")
    }

    /// Runs `sql` on `db` as the master user; its output. Panics on error.
    pub fn psql_master(&self, db: &str, sql: &str) -> String {
        let out = self.psql_as(MASTER, &self.master_password, db, sql);
        assert!(
            out.status.success(),
            "psql as {MASTER} failed on {db}: {}\nSQL: {sql}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).trim_end().to_string()
    }

    /// A URI for `db` as `user`, without the password (plans take it from env or file).
    pub fn uri_as(&self, user: &str, db: &str) -> String {
        format!("postgres://{user}@127.0.0.1:{}/{db}", self.cluster.port)
    }

    /// A URI for `db` as `user` with `password` inline (for the library's own connections).
    #[allow(dead_code)] // for the managed tests to come; no test uses it yet
    pub fn uri_with_password(&self, user: &str, password: &str, db: &str) -> String {
        format!(
            "postgres://{user}:{password}@127.0.0.1:{}/{db}",
            self.cluster.port
        )
    }

    /// A library endpoint for `db` as `user` with `password` (no TLS).
    pub fn endpoint(
        &self,
        side: pgmove::pg::Side,
        user: &str,
        password: &str,
        db: &str,
    ) -> pgmove::pg::Endpoint {
        pgmove::pg::Endpoint::from_dsn(
            side,
            &format!(
                "postgres://{user}@127.0.0.1:{}/{db}?sslmode=disable",
                self.cluster.port
            ),
            Some(pgmove::pg::Secret::new(password)),
            &|_| None,
        )
        .expect("dsn")
    }

    /// Runs the pgmove binary with `args`, the plan's passwords in `SRC_PW` and `DST_PW` (the
    /// migrating role's of `self` as the source and of `dst` as the target), no PGPASSWORD;
    /// panics when either password shows in its output.
    pub fn pgmove_as_migrators(&self, dst: &Managed, args: &[&str]) -> std::process::Output {
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_pgmove"))
            .args(args)
            .env("NO_COLOR", "1")
            .env_remove("PGPASSWORD")
            .env("SRC_PW", &self.migrator_password)
            .env("DST_PW", &dst.migrator_password)
            .output()
            .expect("run pgmove");
        for secret in [&self.migrator_password, &dst.migrator_password] {
            assert!(!String::from_utf8_lossy(&out.stdout).contains(secret.as_str()));
            assert!(!String::from_utf8_lossy(&out.stderr).contains(secret.as_str()));
        }
        out
    }
}
