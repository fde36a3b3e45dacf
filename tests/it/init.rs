//! `pgmove init` against real servers: the starter plan it writes names the keyless table
//! with the choices, the extension, the strategy; never the password typed in a DSN (an
//! environment variable instead); parses with the plan parser; and `pgmove plan` on it says
//! Ready. An existing file is never overwritten without --force.

use crate::support;

use std::process::{Command, Output};

use support::online::text;
use support::{Cluster, Profile};

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
