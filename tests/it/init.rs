//! `pgmove init` against real servers: the starter plan it writes names the keyless table
//! with the choices, the extension, the strategy; never the password typed in a DSN (an
//! environment variable instead); parses with the plan parser; and `pgmove plan` on it says
//! Ready. An existing file is never overwritten without --force.

use crate::support;

use std::process::{Command, Output};

use support::managed::{Flavour, Managed, MASTER, MIGRATOR};
use support::online::text;
use support::{Cluster, Options, Profile};

/// The database of this module, on both shared clusters.
const DB: &str = "init_starter";

/// pgmove with `args` and the given environment only added (no password variables).
fn pgmove(args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut c = Command::new(env!("CARGO_BIN_EXE_pgmove"));
    c.args(args).env("NO_COLOR", "1");
    for (k, v) in env {
        c.env(k, v);
    }
    c.output().expect("run pgmove")
}

/// The DSN a user would type: user, password and options inline.
fn typed_dsn(c: &Cluster) -> String {
    format!("{}?sslmode=disable&application_name=init-test", c.uri(DB))
}

fn assert_no_password(what: &str, s: &str, src: &Cluster, dst: &Cluster) {
    assert!(
        !s.contains(&src.password),
        "{what} holds the source password:\n{s}"
    );
    assert!(
        !s.contains(&dst.password),
        "{what} holds the target password:\n{s}"
    );
}

#[test]
fn init_writes_a_plan_without_the_typed_password_that_plan_finds_ready() {
    let src = support::shared(Profile::Logical);
    let dst = support::shared(Profile::Plain);
    src.create_db(DB);
    dst.create_db(DB);
    src.psql(
        DB,
        "CREATE EXTENSION hstore;
         CREATE TABLE items (id int PRIMARY KEY, attrs hstore);
         INSERT INTO items SELECT g, hstore('k', g::text) FROM generate_series(1, 20) g;
         CREATE TABLE log_lines (at timestamptz DEFAULT now(), line text);
         INSERT INTO log_lines (line) VALUES ('a'), ('b');",
    );
    let (s_dsn, t_dsn) = (typed_dsn(src), typed_dsn(dst));
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("starter.yaml");
    let file = path.to_str().expect("utf8");

    let out = pgmove(&["init", &s_dsn, &t_dsn, "--output", file], &[]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert_no_password("init's output", &text(&out), src, dst);
    let yaml = std::fs::read_to_string(&path).expect("the plan written");
    assert_no_password("the plan", &yaml, src, dst);
    for want in [
        "password: {env: PGMOVE_SOURCE_PASSWORD}",
        "password: {env: PGMOVE_TARGET_PASSWORD}",
        "public.log_lines",
        "replica-identity-full",
        "hstore",
        "strategy: dump-restore",
        "# Estimate:",
        "application_name=init-test",
    ] {
        assert!(yaml.contains(want), "`{want}` missing from:\n{yaml}");
    }

    // The plan parser reads it: the DSNs kept their options, the passwords come from env.
    let plan = pgmove::plan::load(&path).expect("the starter plan parses");
    assert!(
        plan.source.dsn.contains("sslmode=disable"),
        "{}",
        plan.source.dsn
    );
    assert_eq!(
        plan.source.password,
        Some(pgmove::plan::PasswordSource::Env(
            "PGMOVE_SOURCE_PASSWORD".to_string()
        ))
    );

    // pgmove plan on it: Ready.
    let env = [
        ("PGMOVE_SOURCE_PASSWORD", src.password.as_str()),
        ("PGMOVE_TARGET_PASSWORD", dst.password.as_str()),
    ];
    let out = pgmove(&["plan", file], &env);
    assert_eq!(out.status.code(), Some(0), "{}\n{yaml}", text(&out));
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("Ready"),
        "{}",
        text(&out)
    );

    // An existing file is refused, untouched; --force replaces it.
    std::fs::write(&path, "mine\n").expect("write");
    let out = pgmove(&["init", &s_dsn, &t_dsn, "--output", file], &[]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert!(text(&out).contains("--force"), "{}", text(&out));
    assert_eq!(std::fs::read_to_string(&path).expect("read"), "mine\n");
    let out = pgmove(&["init", &s_dsn, &t_dsn, "--output", file, "--force"], &[]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert!(std::fs::read_to_string(&path)
        .expect("read")
        .contains("strategy: dump-restore"));

    // Without --output: the plan on stdout, the same text.
    let out = pgmove(&["init", &s_dsn, &t_dsn], &[]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let printed = String::from_utf8_lossy(&out.stdout);
    assert_no_password("init's stdout", &printed, src, dst);
    pgmove::plan::parse(&printed, "stdout").expect("the printed plan parses");
}

/// The DSN of `user` with `password` inline for database `db` of `m`.
fn managed_dsn(m: &Managed, (user, password): (&str, &str), db: &str) -> String {
    format!(
        "{}?sslmode=disable",
        m.uri_with_password(user, password, db)
    )
}

/// Asserts that `hay` holds every one of `wants`.
fn assert_holds(what: &str, hay: &str, wants: &[&str]) {
    for want in wants {
        assert!(hay.contains(want), "{what}: `{want}` missing from:\n{hay}");
    }
}

/// `pgmove init` with the DSNs of roles that are not superusers, on a simulated RDS: the
/// migrating role before it was granted anything, a target role that may not create, a role
/// without CONNECT, a table under row-level security. Init says what each role lacks, with the
/// GRANT that fixes it (in the plan it writes and on stderr), or why it cannot connect, never
/// an obscure failure; once granted, the plan is clean and `pgmove plan` finds it ready.
#[test]
fn init_as_roles_that_are_not_superusers_says_what_each_lacks() {
    let m = Managed::start(Flavour::Rds, Options::default());
    m.create_db("shop");
    m.create_db("shop_new");
    m.psql_master(
        "shop",
        "CREATE SCHEMA app; CREATE TABLE app.items (id int PRIMARY KEY, v text);
         INSERT INTO app.items SELECT g, 'v' FROM generate_series(1, 50) g;
         CREATE TABLE app.log_lines (line text);",
    );
    m.cluster
        .psql("postgres", "CREATE ROLE plain LOGIN PASSWORD 'plain-pw'");
    let (mig_pw, master_pw) = (m.migrator_password.clone(), m.master_password.clone());
    let source = managed_dsn(&m, (MIGRATOR, &mig_pw), "shop");
    let target = managed_dsn(&m, (MASTER, &master_pw), "shop_new");
    let no_secret = |out: &Output| {
        for pw in [mig_pw.as_str(), master_pw.as_str(), "plain-pw"] {
            assert!(!text(out).contains(pw), "a password in init's output");
        }
    };

    // The migrating role as RDS creates it: it can read nothing of the application's.
    let out = pgmove(&["init", &source, &target], &[]);
    no_secret(&out);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let plan = String::from_utf8_lossy(&out.stdout).to_string();
    let err = String::from_utf8_lossy(&out.stderr).to_string();
    assert_holds(
        "init's plan",
        &plan,
        &[
            "# What the roles lack for this plan",
            "#   source blocker: role migrator has no USAGE on schema app of the source",
            "#     fix: as \"master\" (the schema's owner): GRANT USAGE ON SCHEMA \"app\" TO \"migrator\";",
            "#   source blocker: role migrator cannot SELECT 2 selected table(s): app.items, app.log_lines",
            "GRANT SELECT ON ALL TABLES IN SCHEMA \"app\" TO \"migrator\";",
        ],
    );
    assert_holds(
        "init's stderr",
        &err,
        &[
            "source: role migrator has no USAGE on schema app",
            "  fix: as \"master\" (the schema's owner): GRANT USAGE ON SCHEMA \"app\" TO \"migrator\";",
            "source: role migrator cannot SELECT 2 selected table(s)",
        ],
    );
    assert!(!err.contains("target:"), "{err}");
    pgmove::plan::parse(&plan, "stdout").expect("the plan parses");

    // A target role that may not create in the database.
    let plain = managed_dsn(&m, ("plain", "plain-pw"), "shop_new");
    let out = pgmove(&["init", &source, &plain, "--format", "json"], &[]);
    no_secret(&out);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let j: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json");
    let lacking: Vec<String> = j["lacking"]
        .as_array()
        .expect("lacking")
        .iter()
        .map(|f| format!("{} {} {}", f["side"], f["check"], f["fix"]).replace("\\\"", "'"))
        .collect();
    assert_eq!(lacking.len(), 3, "{lacking:#?}");
    assert!(
        lacking[2].starts_with("\"target\" \"target-create\"")
            && lacking[2].contains("GRANT CREATE ON DATABASE 'shop_new' TO 'plain';"),
        "{lacking:#?}"
    );

    // No CONNECT on the database: the server's refusal and the GRANT that fixes it.
    m.cluster
        .psql("shop", "REVOKE CONNECT ON DATABASE shop FROM PUBLIC");
    let out = pgmove(&["init", &source, &target], &[]);
    no_secret(&out);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert_holds(
        "init's error",
        &String::from_utf8_lossy(&out.stderr),
        &[
            "does not have CONNECT privilege",
            "GRANT CONNECT ON DATABASE \"shop\" TO \"migrator\";",
        ],
    );

    // Granted what RDS users grant it: nothing is lacking, and `pgmove plan` finds it ready.
    m.grant_read("shop");
    m.cluster.psql(
        "shop",
        &format!("GRANT CONNECT ON DATABASE shop TO {MIGRATOR}"),
    );
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("granted.yaml");
    let file = path.to_str().expect("utf8");
    let out = pgmove(&["init", &source, &target, "--output", file], &[]);
    no_secret(&out);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let yaml = std::fs::read_to_string(&path).expect("the plan written");
    assert!(!yaml.contains("What the roles lack"), "{yaml}");
    assert!(
        !String::from_utf8_lossy(&out.stderr).contains("fix:"),
        "{}",
        text(&out)
    );
    let env = [
        ("PGMOVE_SOURCE_PASSWORD", mig_pw.as_str()),
        ("PGMOVE_TARGET_PASSWORD", master_pw.as_str()),
    ];
    let out = pgmove(&["plan", file], &env);
    assert_eq!(out.status.code(), Some(0), "{}\n{yaml}", text(&out));

    // A table under row-level security: the copy reads with row_security off, which the
    // migrating role may not; init says so, with the fix.
    m.psql_master("shop", "ALTER TABLE app.items ENABLE ROW LEVEL SECURITY");
    let out = pgmove(&["init", &source, &target], &[]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert_holds(
        "init's plan",
        &String::from_utf8_lossy(&out.stdout),
        // On RDS the master user cannot give BYPASSRLS: the fix is the table's owner.
        &["#   source blocker: ", "app.items", "OWNER TO"],
    );
}
