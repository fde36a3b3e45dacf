//! `pgmove cleanup` against real servers: drops every pgmove object of the plan on both servers
//! and nothing else, is idempotent, and refuses while an apply runs unless `--force`.

use crate::support;

use std::path::{Path, PathBuf};
use std::process::{Child, Output};
use std::time::{Duration, Instant};

use support::online::{check_running, run, start_apply, PlanYaml};
use support::{online, Cluster, Options};

fn write_plan(
    dir: &Path,
    name: &str,
    strategy: &str,
    src: &Cluster,
    dst: &Cluster,
    extra: &str,
) -> PathBuf {
    PlanYaml {
        strategy: Some(strategy),
        extra,
        ..PlanYaml::default()
    }
    .write(dir, name, src, dst)
}

fn text(out: &Output) -> (String, String) {
    (
        String::from_utf8_lossy(&out.stdout).to_string(),
        String::from_utf8_lossy(&out.stderr).to_string(),
    )
}

fn assert_code(out: &Output, code: i32) {
    let (o, e) = text(out);
    assert_eq!(
        out.status.code(),
        Some(code),
        "exit {:?}\nstdout: {o}\nstderr: {e}",
        out.status.code()
    );
}

/// No password of either server in anything pgmove printed.
fn assert_no_password(out: &Output, src: &Cluster, dst: &Cluster) {
    let (o, e) = text(out);
    for pw in [&src.password, &dst.password] {
        assert!(!o.contains(pw.as_str()) && !e.contains(pw.as_str()));
    }
}

/// Every pgmove object on a server, as `kind name` lines: slots, publications, the schema,
/// event triggers and functions named `pgmove%`.
fn pgmove_objects(c: &Cluster) -> Vec<String> {
    let out = c.psql(
        "shop",
        "SELECT 'slot ' || slot_name FROM pg_replication_slots WHERE slot_name LIKE 'pgmove\\_%'
         UNION ALL SELECT 'publication ' || pubname FROM pg_publication WHERE pubname LIKE 'pgmove\\_%'
         UNION ALL SELECT 'schema ' || nspname FROM pg_namespace WHERE nspname = 'pgmove'
         UNION ALL SELECT 'event trigger ' || evtname FROM pg_event_trigger WHERE evtname LIKE 'pgmove%'
         UNION ALL SELECT 'function ' || proname FROM pg_proc WHERE proname LIKE 'pgmove\\_%'
         ORDER BY 1",
    );
    out.lines().map(str::to_string).collect()
}

/// The user's side of a server: tables with row counts, and objects that are not pgmove's.
fn user_objects(c: &Cluster) -> String {
    c.psql(
        "shop",
        "SELECT string_agg(x, ', ' ORDER BY x) FROM (
           SELECT 'table ' || schemaname || '.' || relname || '=' || n_live_tup AS x FROM pg_stat_user_tables WHERE schemaname <> 'pgmove'
           UNION ALL SELECT 'slot ' || slot_name FROM pg_replication_slots WHERE slot_name NOT LIKE 'pgmove\\_%'
           UNION ALL SELECT 'publication ' || pubname FROM pg_publication WHERE pubname NOT LIKE 'pgmove\\_%'
           UNION ALL SELECT 'event trigger ' || evtname FROM pg_event_trigger WHERE evtname NOT LIKE 'pgmove%'
           UNION ALL SELECT 'schema ' || nspname FROM pg_namespace WHERE nspname NOT LIKE 'pg\\_%' AND nspname NOT IN ('information_schema', 'pgmove')
         ) s",
    )
}

fn count(c: &Cluster, sql: &str) -> i64 {
    c.psql("shop", sql).parse().expect("a number")
}

fn pair() -> (Cluster, Cluster) {
    let (src, dst) = online::pair();
    src.psql(
        "shop",
        "CREATE TABLE items (id int PRIMARY KEY, name text);
         INSERT INTO items SELECT g, 'item ' || g FROM generate_series(1, 500) g;
         CREATE TABLE orders (id bigserial PRIMARY KEY, item int REFERENCES items, qty int);
         INSERT INTO orders (item, qty) SELECT 1 + g % 500, g FROM generate_series(1, 2000) g;",
    );
    (src, dst)
}

/// A copy-cdc apply that loads, replicates until caught up and returns, leaving the slot and
/// the publication on the source and the pgmove schema on the target.
fn apply_caught_up(plan: &Path, src: &Cluster, dst: &Cluster) {
    let out = run(
        &[
            "apply",
            plan.to_str().expect("utf8"),
            "--yes",
            "--exit-when-caught-up",
        ],
        src,
        dst,
    );
    assert_code(&out, 0);
}

/// Look-alikes of the DDL capture's objects that pgmove did not create (nor record), and a
/// user's own objects: cleanup must leave them all alone.
fn ddl_capture_objects(src: &Cluster, plan: &str) {
    src.psql(
        "shop",
        &format!(
            "CREATE FUNCTION public.pgmove_{plan}_ddl_capture() RETURNS event_trigger LANGUAGE plpgsql AS $$ BEGIN END $$;
             CREATE EVENT TRIGGER pgmove_{plan}_ddl ON ddl_command_end EXECUTE FUNCTION public.pgmove_{plan}_ddl_capture();
             CREATE FUNCTION public.audit_ddl() RETURNS event_trigger LANGUAGE plpgsql AS $$ BEGIN END $$;
             CREATE EVENT TRIGGER audit_ddl ON ddl_command_end EXECUTE FUNCTION public.audit_ddl();
             CREATE PUBLICATION reporting FOR TABLE items;"
        ),
    );
    src.psql(
        "shop",
        "SELECT pg_create_logical_replication_slot('analytics', 'pgoutput')",
    );
}

#[test]
fn cleanup_after_copy_cdc_drops_every_pgmove_object_and_a_second_run_is_a_noop() {
    let (src, dst) = pair();
    let dir = tempfile::tempdir().expect("tempdir");
    // cdc.ddl: ignore: apply installs no DDL event trigger, so the source holds exactly the
    // objects listed below (tests/it/cdc_ddl_apply.rs cleans up a real one).
    let plan = write_plan(
        dir.path(),
        "cln_cdc",
        "copy-cdc",
        &src,
        &dst,
        "cdc:\n  ddl: ignore\n",
    );
    let p = plan.to_str().expect("utf8");
    apply_caught_up(&plan, &src, &dst);
    ddl_capture_objects(&src, "cln_cdc");

    let src_before = pgmove_objects(&src);
    let dst_before = pgmove_objects(&dst);
    let look_alikes = [
        "event trigger pgmove_cln_cdc_ddl",
        "function pgmove_cln_cdc_ddl_capture",
    ];
    assert_eq!(
        src_before,
        [
            look_alikes[0],
            look_alikes[1],
            "publication pgmove_cln_cdc",
            "slot pgmove_cln_cdc",
        ]
    );
    assert_eq!(dst_before, ["schema pgmove"]);
    let src_user = user_objects(&src);
    let dst_user = user_objects(&dst);
    assert!(src_user.contains("slot analytics"), "{src_user}");
    assert!(dst_user.contains("table public.orders=2000"), "{dst_user}");

    // --dry-run lists each artifact with its SQL and changes nothing.
    let out = run(&["cleanup", p, "--dry-run"], &src, &dst);
    assert_code(&out, 0);
    assert_no_password(&out, &src, &dst);
    let (o, _) = text(&out);
    for want in [
        "would drop 3 artifact(s)",
        "SELECT pg_drop_replication_slot('pgmove_cln_cdc')",
        "DROP PUBLICATION IF EXISTS \"pgmove_cln_cdc\"",
        "DROP SCHEMA IF EXISTS \"pgmove\" CASCADE",
    ] {
        assert!(o.contains(want), "{want:?} missing from:\n{o}");
    }
    assert!(!o.contains("analytics") && !o.contains("audit_ddl") && !o.contains("reporting"));
    // Named like pgmove's, but pgmove did not record creating them: never dropped.
    assert!(
        !o.contains("DROP EVENT TRIGGER") && !o.contains("DROP FUNCTION"),
        "{o}"
    );
    let out = run(&["cleanup", p, "--dry-run", "--format", "json"], &src, &dst);
    assert_code(&out, 0);
    let j: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json");
    assert_eq!(j["dry_run"], true);
    let listed: Vec<String> = j["artifacts"]
        .as_array()
        .expect("artifacts")
        .iter()
        .map(|a| format!("{} {} {}", a["side"], a["kind"], a["name"]).replace('"', ""))
        .collect();
    assert_eq!(
        listed,
        [
            "source replication slot pgmove_cln_cdc",
            "source publication pgmove_cln_cdc",
            "target schema pgmove",
        ]
    );
    assert!(j["artifacts"][0]["sql"]
        .as_str()
        .expect("sql")
        .starts_with("SELECT pg_drop_replication_slot"));
    assert_eq!(
        pgmove_objects(&src),
        src_before,
        "dry run dropped something"
    );
    assert_eq!(
        pgmove_objects(&dst),
        dst_before,
        "dry run dropped something"
    );

    // The real run.
    let out = run(&["cleanup", p], &src, &dst);
    assert_code(&out, 0);
    assert_no_password(&out, &src, &dst);
    let (o, _) = text(&out);
    assert!(o.contains("dropped 3 artifact(s)"), "{o}");
    assert_eq!(pgmove_objects(&src), look_alikes);
    assert!(
        pgmove_objects(&dst).is_empty(),
        "{:?}",
        pgmove_objects(&dst)
    );
    assert_eq!(user_objects(&src), src_user, "a user object went");
    assert_eq!(user_objects(&dst), dst_user, "a user object went");

    // Idempotent: nothing left to drop, in every format.
    let out = run(&["cleanup", p], &src, &dst);
    assert_code(&out, 0);
    assert!(text(&out).0.contains("nothing to drop"), "{}", text(&out).0);
    let out = run(&["cleanup", p, "--format", "markdown"], &src, &dst);
    assert_code(&out, 0);
    assert!(text(&out).0.starts_with("# pgmove cleanup: plan `cln_cdc`"));
    let out = run(&["cleanup", p, "--format", "json"], &src, &dst);
    assert_code(&out, 0);
    let j: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json");
    assert_eq!(j["artifacts"].as_array().map(Vec::len), Some(0));
}

/// The pid of the walsender change capture streams from, once the run replicates. The load's
/// own replication session holds the slot active while it exports the snapshot, so an active
/// slot alone is not yet capture: that session ends with the load (CI once took its pid, then
/// found the slot idle between the two sessions).
fn wait_streaming(
    src: &Cluster,
    dst: &Cluster,
    plan: &str,
    slot: &str,
    child: &mut Child,
    log: &Path,
) -> i32 {
    let deadline = Instant::now() + Duration::from_secs(180);
    loop {
        let phase = dst.psql_output(
            online::DB,
            &format!("SELECT phase FROM pgmove.runs WHERE plan_name = '{plan}'"),
        );
        if String::from_utf8_lossy(&phase.stdout).trim() != "replicating" {
            check_running(child, log);
            assert!(Instant::now() < deadline, "change capture never started");
            std::thread::sleep(Duration::from_millis(100));
            continue;
        }
        let out = src.psql(
            "shop",
            &format!(
                "SELECT active_pid FROM pg_replication_slots WHERE slot_name = '{slot}' AND active"
            ),
        );
        if let Ok(pid) = out.parse() {
            return pid;
        }
        check_running(child, log);
        assert!(Instant::now() < deadline, "change capture never started");
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn a_running_apply_blocks_cleanup_unless_forced() {
    let (src, dst) = pair();
    let dir = tempfile::tempdir().expect("tempdir");
    // cdc.ddl: ignore: apply installs no DDL event trigger, so the source holds exactly the
    // objects listed below (tests/it/cdc_ddl_apply.rs cleans up a real one).
    let plan = write_plan(
        dir.path(),
        "cln_busy",
        "copy-cdc",
        &src,
        &dst,
        "cdc:\n  ddl: ignore\n",
    );
    let p = plan.to_str().expect("utf8");
    let log = dir.path().join("apply.log");
    let mut child = start_apply(&plan, &src, &dst, &log);
    let pid = wait_streaming(&src, &dst, "cln_busy", "pgmove_cln_busy", &mut child, &log);
    let src_before = pgmove_objects(&src);
    let dst_before = pgmove_objects(&dst);
    assert_eq!(
        src_before,
        ["publication pgmove_cln_busy", "slot pgmove_cln_busy"]
    );
    assert_eq!(dst_before, ["schema pgmove"]);

    let out = run(&["cleanup", p], &src, &dst);
    assert_code(&out, 1);
    assert_no_password(&out, &src, &dst);
    let (_, e) = text(&out);
    assert!(e.contains(&format!("process {pid}")), "{e}");
    assert!(e.contains("--force"), "{e}");
    assert!(e.contains("source"), "{e}");
    assert_eq!(pgmove_objects(&src), src_before, "refused but dropped");
    assert_eq!(pgmove_objects(&dst), dst_before, "refused but dropped");
    assert!(child.try_wait().expect("try_wait").is_none(), "apply died");

    // A second apply of the same plan is refused while this one runs (the plan's lock),
    // changing nothing.
    let out = run(&["apply", p, "--yes"], &src, &dst);
    assert_code(&out, 1);
    let (_, e) = text(&out);
    assert!(
        e.contains("another pgmove apply of plan \"cln_busy\" is running against this target"),
        "{e}"
    );
    assert_eq!(
        pgmove_objects(&src),
        src_before,
        "a second apply changed the source"
    );
    assert!(child.try_wait().expect("try_wait").is_none(), "apply died");

    // A dry run says it would refuse.
    let out = run(&["cleanup", p, "--dry-run"], &src, &dst);
    assert_code(&out, 1);
    assert!(text(&out).0.contains(&format!("process {pid}")));

    let out = run(&["cleanup", p, "--force"], &src, &dst);
    assert_code(&out, 0);
    let (o, _) = text(&out);
    assert!(o.contains("terminated (--force)"), "{o}");
    assert!(o.contains(&format!("process {pid}")), "{o}");
    assert!(o.contains("dropped 3 artifact(s)"), "{o}");
    assert!(
        pgmove_objects(&src).is_empty(),
        "{:?}",
        pgmove_objects(&src)
    );
    assert!(
        pgmove_objects(&dst).is_empty(),
        "{:?}",
        pgmove_objects(&dst)
    );
    assert_eq!(
        count(
            &src,
            &format!("SELECT count(*) FROM pg_stat_activity WHERE pid = {pid}")
        ),
        0
    );

    // The apply lost its stream; stop it if it has not stopped by itself.
    let deadline = Instant::now() + Duration::from_secs(10);
    while child.try_wait().expect("try_wait").is_none() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(100));
    }
    let _ = child.kill();
    let _ = child.wait();
    // Nothing came back.
    assert!(pgmove_objects(&src).is_empty());
    assert!(pgmove_objects(&dst).is_empty());
    let out = run(&["cleanup", p], &src, &dst);
    assert_code(&out, 0);
    assert!(text(&out).0.contains("nothing to drop"));
}

#[test]
fn another_plans_state_survives_and_its_own_cleanup_then_drops_the_schema() {
    let (src, dst) = pair();
    let dir = tempfile::tempdir().expect("tempdir");
    let plan = write_plan(dir.path(), "cln_mine", "copy-cdc", &src, &dst, "");
    let other = write_plan(dir.path(), "cln_other", "copy-cdc", &src, &dst, "");
    apply_caught_up(&plan, &src, &dst);
    dst.psql(
        "shop",
        "INSERT INTO pgmove.runs (plan_name, strategy, phase) VALUES ('cln_other', 'copy-cdc', 'copy');
         INSERT INTO pgmove.steps (plan_name, step) VALUES ('cln_other', 'pre-data'), ('cln_other', 'dump');
         INSERT INTO pgmove.progress (plan_name, applied_lsn) VALUES ('cln_other', '0/1');",
    );
    let others = "SELECT (SELECT count(*) FROM pgmove.runs WHERE plan_name = 'cln_other')
                       + (SELECT count(*) FROM pgmove.steps WHERE plan_name = 'cln_other')
                       + (SELECT count(*) FROM pgmove.progress WHERE plan_name = 'cln_other')";
    let mine = "SELECT (SELECT count(*) FROM pgmove.runs WHERE plan_name = 'cln_mine')
                     + (SELECT count(*) FROM pgmove.steps WHERE plan_name = 'cln_mine')
                     + (SELECT count(*) FROM pgmove.copy_progress WHERE plan_name = 'cln_mine')
                     + (SELECT count(*) FROM pgmove.progress WHERE plan_name = 'cln_mine')";
    assert!(count(&dst, mine) > 0);

    let out = run(
        &["cleanup", plan.to_str().expect("utf8"), "--format", "json"],
        &src,
        &dst,
    );
    assert_code(&out, 0);
    let j: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json");
    let kinds: Vec<String> = j["artifacts"]
        .as_array()
        .expect("artifacts")
        .iter()
        .map(|a| format!("{} {}", a["side"], a["kind"]).replace('"', ""))
        .collect();
    assert!(
        kinds.contains(&"target state rows".to_string()),
        "{kinds:?}"
    );
    assert!(!kinds.contains(&"target schema".to_string()), "{kinds:?}");
    assert_eq!(j["kept"][0]["name"], "pgmove");
    assert!(
        j["kept"][0]["detail"]
            .as_str()
            .expect("detail")
            .contains("cln_other"),
        "{j:#}"
    );
    assert!(
        pgmove_objects(&src).is_empty(),
        "{:?}",
        pgmove_objects(&src)
    );
    assert_eq!(pgmove_objects(&dst), ["schema pgmove"]);
    assert_eq!(count(&dst, mine), 0);
    assert_eq!(count(&dst, others), 4);

    // Idempotent with the other plan's state still there.
    let out = run(&["cleanup", plan.to_str().expect("utf8")], &src, &dst);
    assert_code(&out, 0);
    let (o, _) = text(&out);
    assert!(o.contains("nothing to drop"), "{o}");
    assert!(o.contains("other plans have state in it: cln_other"), "{o}");
    assert_eq!(count(&dst, others), 4);

    // The last plan's cleanup takes the schema.
    let out = run(&["cleanup", other.to_str().expect("utf8")], &src, &dst);
    assert_code(&out, 0);
    assert!(
        pgmove_objects(&dst).is_empty(),
        "{:?}",
        pgmove_objects(&dst)
    );
}

#[test]
fn cleanup_after_dump_restore_removes_the_pgmove_schema_and_none_of_the_users_tables() {
    let src = Cluster::start(Options::default());
    let dst = Cluster::start(Options::default());
    src.create_db("shop");
    dst.create_db("shop");
    src.psql(
        "shop",
        "CREATE SCHEMA sales;
         CREATE TABLE sales.items (id int PRIMARY KEY, name text);
         INSERT INTO sales.items SELECT g, 'item ' || g FROM generate_series(1, 300) g;
         CREATE TABLE public.notes (id serial PRIMARY KEY, body text);
         INSERT INTO public.notes (body) VALUES ('a'), ('b');
         CREATE VIEW public.v_items AS SELECT * FROM sales.items;",
    );
    let dir = tempfile::tempdir().expect("tempdir");
    let plan = write_plan(dir.path(), "cln_dump", "dump-restore", &src, &dst, "");
    let p = plan.to_str().expect("utf8");
    // The default dump place is under the user's cache: here a directory of this test's.
    let cache = tempfile::tempdir().expect("tempdir");
    let run = |args: &[&str], src: &Cluster, dst: &Cluster| {
        support::online::pgmove(args, src, dst)
            .env("XDG_CACHE_HOME", cache.path())
            .output()
            .expect("run pgmove")
    };
    let out = run(&["apply", p, "--yes"], &src, &dst);
    assert_code(&out, 0);
    assert_eq!(pgmove_objects(&dst), ["schema pgmove"]);
    assert!(pgmove_objects(&src).is_empty());
    let info = |c: &Cluster| {
        pgmove::pg::ConnInfo::parse(&format!("postgres://postgres@127.0.0.1:{}/shop", c.port))
            .expect("dsn")
    };
    let cache_dir = cache.path().display().to_string();
    let dump = pgmove::plan::default_dump_dir("cln_dump", &info(&src), &info(&dst), &|k| {
        (k == "XDG_CACHE_HOME").then(|| cache_dir.clone())
    })
    .expect("default dump dir");
    // A directory at the default place without pgmove's marker (not pgmove's): listed as
    // kept, never removed.
    std::fs::create_dir_all(&dump).expect("mkdir");
    std::fs::write(dump.join("notes.txt"), b"the user's").expect("write");
    let out = run(&["cleanup", p, "--dry-run"], &src, &dst);
    assert_code(&out, 0);
    let (o, _) = text(&out);
    assert!(o.contains("has no pgmove-dump-dir marker"), "{o}");
    assert!(!o.contains("rm -r"), "{o}");
    std::fs::remove_dir_all(&dump).expect("rm");
    // A dump left behind by an interrupted run, in the default place, with its marker.
    let owner = pgmove::dumpdir::Owner::new("cln_dump", &info(&src), &info(&dst));
    let inner = pgmove::dumpdir::prepare(&dump, &owner, true).expect("prepare");
    std::fs::create_dir(&inner).expect("mkdir");
    std::fs::write(inner.join("toc.dat"), b"x").expect("write");
    let tables = "SELECT string_agg(format('%s.%s', table_schema, table_name), ',' ORDER BY table_schema, table_name)
                  FROM information_schema.tables WHERE table_schema IN ('public', 'sales')";
    let before = dst.psql("shop", tables);
    assert_eq!(before, "public.notes,public.v_items,sales.items");

    let out = run(&["cleanup", p, "--dry-run"], &src, &dst);
    assert_code(&out, 0);
    let (o, _) = text(&out);
    assert!(o.contains("dump directory"), "{o}");
    assert!(o.contains(&format!("rm -r {}", dump.display())), "{o}");
    assert!(
        o.contains("DROP SCHEMA IF EXISTS \"pgmove\" CASCADE"),
        "{o}"
    );
    assert!(dump.is_dir(), "dry run removed the dump");

    let out = run(&["cleanup", p], &src, &dst);
    assert_code(&out, 0);
    assert!(
        text(&out).0.contains("dropped 2 artifact(s)"),
        "{}",
        text(&out).0
    );
    assert!(pgmove_objects(&dst).is_empty());
    assert!(!dump.exists(), "dump directory left");
    assert_eq!(dst.psql("shop", tables), before);
    assert_eq!(dst.psql("shop", "SELECT count(*) FROM sales.items"), "300");
    assert_eq!(dst.psql("shop", "SELECT count(*) FROM v_items"), "300");
    assert_eq!(dst.psql("shop", "SELECT count(*) FROM notes"), "2");
    let out = run(&["verify", p], &src, &dst);
    assert_code(&out, 0);
    let out = run(&["cleanup", p], &src, &dst);
    assert_code(&out, 0);
    assert!(text(&out).0.contains("nothing to drop"));
    // Cleanup never removes a directory without the marker, even at the default place.
    std::fs::create_dir_all(&dump).expect("mkdir");
    std::fs::write(dump.join("notes.txt"), b"the user's").expect("write");
    let out = run(&["cleanup", p], &src, &dst);
    assert_code(&out, 0);
    assert_eq!(
        std::fs::read(dump.join("notes.txt")).expect("kept"),
        b"the user's"
    );
}

/// A session holding a plan's advisory lock on the target, as a running apply does.
async fn hold_plan_lock(dst: &Cluster, plan: &str) -> (tokio_postgres::Client, i32) {
    let c = dst.client("shop").await;
    let row = c
        .query_one(
            "SELECT pg_try_advisory_lock(hashtext('pgmove:' || $1::text)), pg_backend_pid()",
            &[&plan],
        )
        .await
        .expect("lock");
    assert!(row.get::<_, bool>(0));
    (c, row.get(1))
}

#[tokio::test(flavor = "multi_thread")]
async fn the_plans_advisory_lock_on_the_target_blocks_cleanup_whatever_the_sign_of_its_key() {
    let src = Cluster::start(Options::default());
    let dst = Cluster::start(Options::default());
    src.create_db("shop");
    dst.create_db("shop");
    // One plan whose lock key is negative (classid 0xffffffff in pg_locks), one positive.
    let mut names: Vec<String> = Vec::new();
    for want_negative in [true, false] {
        let name = (0..100)
            .map(|i| format!("cln_lock{i}"))
            .find(|n| {
                let h: i64 = dst
                    .psql("shop", &format!("SELECT hashtext('pgmove:{n}')"))
                    .parse()
                    .expect("int");
                (h < 0) == want_negative
            })
            .expect("a name");
        names.push(name);
    }
    let dir = tempfile::tempdir().expect("tempdir");
    for name in &names {
        let plan = write_plan(dir.path(), name, "dump-restore", &src, &dst, "");
        let p = plan.to_str().expect("utf8").to_string();
        // pgmove's own state schema: with its marker (cleanup never drops one without).
        dst.psql(
            "shop",
            &format!(
                "CREATE SCHEMA IF NOT EXISTS pgmove;
                 {}
                 CREATE TABLE IF NOT EXISTS pgmove.runs (plan_name text PRIMARY KEY, strategy text NOT NULL, phase text NOT NULL);
                 INSERT INTO pgmove.runs VALUES ('{name}', 'dump-restore', 'dump');",
                pgmove::state::CREATE_MARKER_SQL
            ),
        );
        let (holder, pid) = hold_plan_lock(&dst, name).await;
        // A lock of another plan is not this plan's.
        let (_other, _) = hold_plan_lock(&dst, "cln_someone_else").await;
        let (s, d) = (&src, &dst);
        let out = tokio::task::block_in_place(|| run(&["cleanup", &p], s, d));
        assert_code(&out, 1);
        let (_, e) = text(&out);
        assert!(e.contains(&format!("process {pid}")), "{name}: {e}");
        assert!(e.contains("target"), "{e}");
        assert!(e.contains("--force"), "{e}");
        assert_eq!(pgmove_objects(&dst), ["schema pgmove"]);

        let out = tokio::task::block_in_place(|| run(&["cleanup", &p, "--force"], s, d));
        assert_code(&out, 0);
        let (o, _) = text(&out);
        assert!(o.contains(&format!("process {pid}")), "{o}");
        assert!(pgmove_objects(&dst).is_empty(), "{o}");
        // The holder's session was terminated.
        assert!(holder.query_one("SELECT 1", &[]).await.is_err());
    }
}

#[test]
fn pglogical_objects_named_after_the_plan_are_reported_not_dropped() {
    let src = Cluster::start(Options::pglogical());
    let dst = Cluster::start(Options::default());
    src.create_db("shop");
    dst.create_db("shop");
    src.psql(
        "shop",
        &format!(
            "CREATE EXTENSION pglogical;
             SELECT pglogical.create_node(node_name := 'pgmove_cln_pgl_provider',
                 dsn := 'host=127.0.0.1 port={} dbname=shop user=postgres');
             SELECT pglogical.create_replication_set('pgmove_cln_pgl');
             SELECT pglogical.create_replication_set('ipgmove_cln_pgl');
             SELECT pglogical.create_replication_set('someone_elses');",
            src.port
        ),
    );
    let dir = tempfile::tempdir().expect("tempdir");
    let plan = write_plan(dir.path(), "cln_pgl", "pglogical", &src, &dst, "");
    let p = plan.to_str().expect("utf8");
    let out = run(&["cleanup", p, "--format", "json"], &src, &dst);
    assert_code(&out, 0);
    let j: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json");
    let listed: Vec<String> = j["not_handled"]
        .as_array()
        .expect("not_handled")
        .iter()
        .map(|a| format!("{} {} {}", a["side"], a["kind"], a["name"]).replace('"', ""))
        .collect();
    assert_eq!(
        listed,
        [
            "source pglogical node pgmove_cln_pgl_provider",
            "source pglogical replication set ipgmove_cln_pgl",
            "source pglogical replication set pgmove_cln_pgl",
        ]
    );
    assert_eq!(j["artifacts"].as_array().map(Vec::len), Some(0));
    let out = run(&["cleanup", p], &src, &dst);
    assert_code(&out, 0);
    assert!(text(&out).0.contains("not handled yet"), "{}", text(&out).0);
    assert_eq!(
        count(
            &src,
            "SELECT count(*) FROM pglogical.replication_set WHERE set_name IN ('pgmove_cln_pgl', 'ipgmove_cln_pgl', 'someone_elses')"
        ),
        3
    );
    assert_eq!(count(&src, "SELECT count(*) FROM pglogical.node"), 1);
}
