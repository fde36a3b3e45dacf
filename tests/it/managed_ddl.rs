//! Non-master DDL capture on a simulated RDS source: the migrating role (a plain role with
//! `rds_replication`) may not create event triggers, so `plan` blocks `cdc.ddl: replicate`
//! with `pgmove setup-sql` as the fix; the master user runs what `pgmove setup-sql` prints;
//! then `plan` is ready, apply (as the migrating role) uses the master's capture and never
//! creates its event triggers again (an interrupted apply resumes with the same triggers,
//! compared by oid), a `CREATE TABLE` and an `ALTER TABLE ... ADD COLUMN` run on the source by
//! the tables' owner arrive on the target, run there by the target's connecting user
//! (`owner: target-user`: the source's table owner does not exist on the target); cleanup, as
//! the migrating role, leaves the master's capture and prints the SQL that removes it, which
//! the master user then runs.
//!
//! Source: a simulated RDS (`support::managed`), database `shop` owned by the master user,
//! tables owned by `app_owner` (made by the master), the migrating role a member of
//! `app_owner` (CREATE PUBLICATION ... FOR TABLE needs the tables' owner). Target: a
//! simulated RDS too, pgmove connecting as its master user (not a superuser).

use crate::support;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use serde_json::Value;
use support::managed::{Flavour, Managed, MASTER, MIGRATOR};
use support::online::{read_log, spawn_logged, terminate, text, wait_caught_up, wait_loaded, DB};
use support::Options;

const PLAN: &str = "mgddl";
const APP_PW: &str = "app-owner-pw";

/// pgmove with the migrating role's password for the source and the target master's.
fn pgmove(args: &[&str], src: &Managed, dst: &Managed) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_pgmove"));
    c.args(args)
        .env("SRC_PW", &src.migrator_password)
        .env("DST_PW", &dst.master_password)
        .env("NO_COLOR", "1")
        .env_remove("PGPASSWORD");
    c
}

fn run(args: &[&str], src: &Managed, dst: &Managed) -> Output {
    let out = pgmove(args, src, dst).output().expect("run pgmove");
    for secret in [
        &src.migrator_password,
        &src.master_password,
        &dst.master_password,
    ] {
        assert!(!String::from_utf8_lossy(&out.stdout).contains(secret.as_str()));
        assert!(!String::from_utf8_lossy(&out.stderr).contains(secret.as_str()));
    }
    out
}

fn write_plan(dir: &Path, src: &Managed, dst: &Managed) -> PathBuf {
    let path = dir.join(format!("{PLAN}.yaml"));
    std::fs::write(
        &path,
        format!(
            "version: 1\nname: {PLAN}\nstrategy: copy-cdc\njobs: 1\nowner: target-user\n\
             source:\n  dsn: {}\n  password: {{env: SRC_PW}}\n  sslmode: disable\n\
             target:\n  dsn: {}\n  password: {{env: DST_PW}}\n  sslmode: disable\n\
             cdc:\n  ddl: replicate\ncutover:\n  fence: none\n",
            src.uri_as(MIGRATOR, DB),
            dst.uri_as(MASTER, DB)
        ),
    )
    .expect("write plan");
    path
}

fn json(out: &Output) -> Value {
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("not JSON ({e}): {}", text(out)))
}

fn blockers(report: &Value) -> Vec<Value> {
    report["findings"]
        .as_array()
        .expect("findings")
        .iter()
        .filter(|f| f["severity"] == "blocker")
        .cloned()
        .collect()
}

/// The plan's event triggers on the source: `name:oid:enabled` in name order.
fn triggers(src: &Managed) -> String {
    src.cluster.psql(
        DB,
        &format!(
            "SELECT coalesce(string_agg(evtname || ':' || oid || ':' || evtenabled::text, ',' ORDER BY evtname), '') \
               FROM pg_event_trigger WHERE evtname LIKE 'pgmove\\_{PLAN}\\_ddl%'"
        ),
    )
}

#[test]
fn the_master_installs_the_ddl_capture_and_the_migrating_role_uses_it() {
    let src = Managed::start(Flavour::Rds, Options::default());
    let dst = Managed::start(Flavour::Rds, Options::default());
    src.create_db(DB);
    dst.create_db(DB);
    // What the master user does on RDS before the move: a role owning the application's
    // tables, the migrating role able to publish them (a member of their owner) and to create
    // the publication; the application's tables.
    src.psql_master(
        DB,
        &format!(
            "CREATE ROLE app_owner LOGIN PASSWORD '{APP_PW}';
             GRANT CREATE ON SCHEMA public TO app_owner;
             GRANT app_owner TO {MIGRATOR};
             GRANT CREATE ON DATABASE {DB} TO {MIGRATOR};"
        ),
    );
    let as_app = |sql: &str| {
        let out = src.psql_as("app_owner", APP_PW, DB, sql);
        assert!(
            out.status.success(),
            "as app_owner: {}\n{sql}",
            String::from_utf8_lossy(&out.stderr)
        );
    };
    as_app(
        "CREATE TABLE public.items (id int PRIMARY KEY, v text);
         INSERT INTO public.items SELECT g, 'v' || g FROM generate_series(1, 50) g;",
    );
    let dir = tempfile::tempdir().expect("tempdir");
    let plan = write_plan(dir.path(), &src, &dst);
    let p = plan.to_str().expect("utf8");

    // Before the setup: one blocker, whose fix is the setup command, run by the master user.
    let out = run(&["plan", p, "--format", "json"], &src, &dst);
    let report = json(&out);
    let b = blockers(&report);
    assert_eq!(out.status.code(), Some(2), "{report:#}");
    assert_eq!(b.len(), 1, "{b:#?}");
    assert_eq!(b[0]["check"], "ddl-event-trigger", "{:#}", b[0]);
    let fix = b[0]["fix"].as_str().unwrap_or_default();
    assert!(
        fix.contains(&format!("pgmove setup-sql {p} | psql")),
        "{fix}"
    );
    assert!(fix.contains("as the master user"), "{fix}");
    assert!(fix.contains("cdc.ddl: ignore"), "{fix}");

    // The setup SQL: only SQL on stdout, naming the migrating role, no secret.
    let out = run(&["setup-sql", p], &src, &dst);
    assert!(out.status.success(), "{}", text(&out));
    assert!(out.stderr.is_empty(), "{}", text(&out));
    let setup = String::from_utf8(out.stdout).expect("utf8");
    assert!(
        setup.contains("CREATE EVENT TRIGGER \"pgmove_mgddl_ddl\""),
        "{setup}"
    );
    assert!(setup.contains(&format!("TO \"{MIGRATOR}\"")), "{setup}");
    assert!(setup.trim_end().ends_with("COMMIT;"), "{setup}");
    // For scripts, the same SQL in JSON.
    let out = run(&["setup-sql", p, "--format", "json"], &src, &dst);
    assert!(out.status.success(), "{}", text(&out));
    let j = json(&out);
    assert_eq!(j["sql"].as_str(), Some(setup.as_str()));
    assert_eq!(j["role"], MIGRATOR);
    // The master user runs it. Locally only a superuser may create event triggers, so a
    // superuser connection stands for the master user here; then the master gets what running
    // it on RDS gives: ownership of what it created (event triggers stay with the superuser:
    // locally only a superuser may own one), and membership in the migrating role, which the
    // setup grants the master when the master runs it (a superuser needs none), and in the
    // tables' owner, which the setup's comments tell the master to grant itself. So the
    // capture runs as the master user, not as a superuser.
    src.as_master_on_rds(DB, &setup);
    src.as_master_on_rds(
        DB,
        &format!(
            "ALTER SCHEMA pgmove OWNER TO {MASTER};
             ALTER TABLE pgmove.objects OWNER TO {MASTER};
             ALTER TABLE pgmove.created_by_pgmove OWNER TO {MASTER};
             ALTER TABLE pgmove.pgmove_mgddl_ddl_key OWNER TO {MASTER};
             ALTER FUNCTION pgmove.pgmove_mgddl_ddl() OWNER TO {MASTER};
             ALTER FUNCTION pgmove.pgmove_mgddl_ddl_emit(text, text, text, text) OWNER TO {MASTER};"
        ),
    );
    src.psql_master(
        DB,
        &format!("GRANT {MIGRATOR} TO {MASTER}; GRANT app_owner TO {MASTER};"),
    );
    let installed = triggers(&src);
    assert_eq!(installed.matches(":A").count(), 4, "{installed}");

    // Now the plan is ready as the migrating role.
    let out = run(&["plan", p, "--format", "json"], &src, &dst);
    assert_eq!(out.status.code(), Some(0), "{:#?}", blockers(&json(&out)));
    let notes: Vec<Value> = json(&out)["findings"]
        .as_array()
        .expect("findings")
        .iter()
        .filter(|f| f["check"] == "ddl-event-trigger")
        .cloned()
        .collect();
    assert_eq!(notes.len(), 1, "{notes:#?}");
    assert_eq!(notes[0]["severity"], "info", "{notes:#?}");
    assert!(
        notes[0]["message"]
            .as_str()
            .unwrap_or_default()
            .contains("the master user installed"),
        "{notes:#?}"
    );

    // Apply as the migrating role, interrupted once change capture runs.
    let log = dir.path().join("apply.log");
    let mut child = spawn_logged(pgmove(&["apply", p, "--yes"], &src, &dst), &log);
    wait_loaded(&dst.cluster, PLAN, &mut child, &log);
    as_app(
        "CREATE TABLE public.added (id int PRIMARY KEY, note text);
         INSERT INTO public.added VALUES (1, 'one'), (2, 'two');",
    );
    as_app(
        "ALTER TABLE public.items ADD COLUMN qty int NOT NULL DEFAULT 7;
         INSERT INTO public.items VALUES (51, 'new', 3);",
    );
    wait_caught_up(&src.cluster, &dst.cluster, PLAN, &mut child, &log);
    terminate(&mut child, &log);
    assert_eq!(
        triggers(&src),
        installed,
        "apply touched the master's triggers"
    );
    assert!(
        read_log(&log).contains("used as it is"),
        "{}",
        read_log(&log)
    );

    // More DDL while apply is stopped; the resumed apply keeps the same triggers.
    as_app("ALTER TABLE public.added ADD COLUMN tag text DEFAULT 'x'; INSERT INTO public.added VALUES (3, 'three', 'y');");
    let out = run(&["apply", p, "--yes", "--exit-when-caught-up"], &src, &dst);
    assert!(out.status.success(), "{}", text(&out));
    assert_eq!(
        triggers(&src),
        installed,
        "the resume re-created the triggers"
    );
    assert_eq!(
        dst.cluster.psql(
            DB,
            "SELECT string_agg(id || '=' || note || '/' || tag, ' ' ORDER BY id) FROM public.added"
        ),
        "1=one/x 2=two/x 3=three/y"
    );
    assert_eq!(
        dst.cluster.psql(
            DB,
            "SELECT count(*) FILTER (WHERE qty = 7) || '/' || string_agg(qty::text, '') FILTER (WHERE id = 51) FROM public.items"
        ),
        "50/3"
    );
    // Run by the target's connecting user, who owns the new table (app_owner is not there).
    assert_eq!(
        dst.cluster.psql(
            DB,
            "SELECT pg_get_userbyid(relowner) || '/' || (SELECT count(*) FROM pg_roles WHERE rolname = 'app_owner') FROM pg_class WHERE oid = 'public.added'::regclass"
        ),
        format!("{MASTER}/0")
    );

    // Cleanup as the migrating role: its slot and publication go, the master's capture stays,
    // and the report says so with the SQL the master user runs.
    let out = run(&["cleanup", p, "--format", "json"], &src, &dst);
    assert!(out.status.success(), "{}", text(&out));
    let report = json(&out);
    assert_eq!(
        triggers(&src),
        installed,
        "cleanup dropped the master's triggers"
    );
    let kept = report["kept"].as_array().expect("kept");
    let capture = kept
        .iter()
        .find(|k| k["kind"] == "DDL capture")
        .unwrap_or_else(|| panic!("no DDL capture kept: {report:#}"));
    assert!(
        capture["detail"]
            .as_str()
            .unwrap_or_default()
            .contains("master user"),
        "{capture:#}"
    );
    let drop_sql = capture["sql"].as_str().expect("sql").to_string();
    assert!(
        drop_sql.contains("DROP EVENT TRIGGER IF EXISTS \"pgmove_mgddl_ddl\""),
        "{drop_sql}"
    );
    let dropped: Vec<String> = report["artifacts"]
        .as_array()
        .expect("artifacts")
        .iter()
        .map(|a| {
            format!(
                "{} {}",
                a["kind"].as_str().unwrap_or(""),
                a["name"].as_str().unwrap_or("")
            )
        })
        .collect();
    assert!(
        dropped.iter().any(|a| a.starts_with("replication slot")),
        "{dropped:?}"
    );
    assert!(
        dropped.iter().any(|a| a.starts_with("publication")),
        "{dropped:?}"
    );
    assert!(
        !dropped.iter().any(|a| a.starts_with("event trigger")),
        "{dropped:?}"
    );
    // The text report prints that SQL too.
    let out = run(&["cleanup", p, "--dry-run"], &src, &dst);
    let shown = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(
        shown.contains("DDL capture")
            && shown.contains("DROP EVENT TRIGGER IF EXISTS \"pgmove_mgddl_ddl_drop\""),
        "{shown}"
    );

    // The master user runs it (a superuser standing for the master, who owns the event
    // triggers on RDS): everything of the capture is gone, the schema with it.
    src.as_master_on_rds(DB, &drop_sql);
    assert_eq!(triggers(&src), "");
    assert_eq!(
        src.cluster.psql(
            DB,
            "SELECT count(*) FROM pg_namespace WHERE nspname = 'pgmove'"
        ),
        "0"
    );
}

/// Strategy pglogical's DDL guard (`cdc.ddl` under pglogical) the same way: `plan` blocks it
/// for the migrating role with `pgmove setup-sql` as the fix, and no longer once the master user
/// ran it; apply's installation of the guard, as the migrating role, uses the master's and
/// leaves its event triggers as they are (by oid), run twice as a resumed apply does; cleanup
/// keeps it and gives the SQL that removes it. pglogical itself is not needed for any of this
/// (the guard only reads its queue when it exists), so the source is a plain simulated RDS.
#[test]
fn the_master_installs_the_pglogical_ddl_guard_and_apply_and_cleanup_leave_it() {
    use pgmove::pg::{Endpoint, Secret, Side};
    let plan_name = "mgguard";
    let src = Managed::start(Flavour::Rds, Options::default());
    let dst = support::Cluster::start(Options::default());
    src.create_db(DB);
    dst.create_db(DB);
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join(format!("{plan_name}.yaml"));
    std::fs::write(
        &path,
        format!(
            "version: 1\nname: {plan_name}\nstrategy: pglogical\n\
             source:\n  dsn: {}\n  password: {{env: SRC_PW}}\n  sslmode: disable\n\
             target:\n  dsn: postgres://postgres@127.0.0.1:{}/{DB}\n  password: {{env: DST_PW}}\n  sslmode: disable\n\
             cdc:\n  ddl: replicate\n",
            src.uri_as(MIGRATOR, DB),
            dst.port
        ),
    )
    .expect("write plan");
    let p = path.to_str().expect("utf8");
    let guard_blockers = || -> Vec<Value> {
        let out = Command::new(env!("CARGO_BIN_EXE_pgmove"))
            .args(["plan", p, "--format", "json"])
            .env("SRC_PW", &src.migrator_password)
            .env("DST_PW", &dst.password)
            .env("NO_COLOR", "1")
            .output()
            .expect("run pgmove");
        blockers(&json(&out))
            .into_iter()
            .filter(|f| f["check"] == "pglogical-ddl")
            .collect()
    };
    let before = guard_blockers();
    assert_eq!(before.len(), 1, "{before:#?}");
    let fix = before[0]["fix"].as_str().unwrap_or_default();
    assert!(
        fix.contains(&format!("pgmove setup-sql {p} | psql")),
        "{fix}"
    );
    assert!(fix.contains("as the master user"), "{fix}");

    let out = Command::new(env!("CARGO_BIN_EXE_pgmove"))
        .args(["setup-sql", p])
        .output()
        .expect("run pgmove");
    assert!(out.status.success(), "{}", text(&out));
    let setup = String::from_utf8(out.stdout).expect("utf8");
    assert!(
        setup.contains("CREATE EVENT TRIGGER \"pgmove_mgguard_ddl_guard\""),
        "{setup}"
    );
    // The master user runs it: a superuser connection stands for the master user, since only
    // a superuser may create event triggers locally.
    src.as_master_on_rds(DB, &setup);
    let guard_triggers = || {
        src.cluster.psql(
            DB,
            "SELECT coalesce(string_agg(evtname || ':' || oid || ':' || evtenabled::text, ',' ORDER BY evtname), '') \
               FROM pg_event_trigger WHERE evtname LIKE 'pgmove\\_mgguard\\_ddl\\_guard%'",
        )
    };
    let installed = guard_triggers();
    assert_eq!(installed.matches(":A").count(), 2, "{installed}");
    assert!(guard_blockers().is_empty(), "{:#?}", guard_blockers());

    let plan = pgmove::plan::load(&path).expect("plan");
    let source = src.endpoint(Side::Source, MIGRATOR, &src.migrator_password, DB);
    let target = Endpoint::from_dsn(
        Side::Target,
        &format!(
            "postgres://postgres@127.0.0.1:{}/{DB}?sslmode=disable",
            dst.port
        ),
        Some(Secret::new(&dst.password)),
        &|_| None,
    )
    .expect("dsn");
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    for _ in 0..2 {
        rt.block_on(pgmove::cdc::ddl::guard::install(&source, &plan))
            .expect("apply's guard installation, as the migrating role");
        assert_eq!(guard_triggers(), installed, "the guard was created again");
    }
    let req = pgmove::cleanup::Request::for_plan(&plan, false, false);
    let report = rt
        .block_on(pgmove::cleanup::cleanup(&req, &source, &target))
        .unwrap_or_else(|e| panic!("cleanup: {e}"));
    assert_eq!(
        guard_triggers(),
        installed,
        "cleanup dropped the master's guard"
    );
    let kept = report
        .kept
        .iter()
        .find(|k| k.kind == "DDL capture")
        .unwrap_or_else(|| panic!("no DDL capture kept: {:?}", report.kept));
    assert!(
        kept.sql
            .contains("DROP EVENT TRIGGER IF EXISTS \"pgmove_mgguard_ddl_guard_drop\""),
        "{}",
        kept.sql
    );
    src.as_master_on_rds(DB, &kept.sql);
    assert_eq!(guard_triggers(), "");
    assert_eq!(
        src.cluster.psql(
            DB,
            "SELECT count(*) FROM pg_namespace WHERE nspname = 'pgmove'"
        ),
        "0"
    );
}
