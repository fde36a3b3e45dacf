//! What pgmove owns (issue 10, items 3 and 4), against real servers: plans whose names are
//! close (`t1` / `t1_ddl`, `a-b` / `a_b`) get distinct slots, publications and DDL triggers,
//! and the cleanup of one leaves the other's working; a user's own schema named `pgmove` is
//! reported by `plan`, never written to nor dropped, and blocks a plan on the target.

use crate::support;

use std::path::{Path, PathBuf};
use std::process::Output;

use support::online::{self, run, text};
use support::Cluster;

/// `<dir>/<file>.yaml`: plan `name` from `src` database `shop` to `dst` database `dst_db`.
fn plan_to(
    dir: &Path,
    [file, name]: [&str; 2],
    strategy: &str,
    src: &Cluster,
    dst: &Cluster,
    dst_db: &str,
    extra: &str,
) -> PathBuf {
    let path = dir.join(format!("{file}.yaml"));
    std::fs::write(
        &path,
        format!(
            "version: 1\nname: {name}\nstrategy: {strategy}\njobs: 2\nsource:\n  dsn: postgres://postgres@127.0.0.1:{}/shop\n  password: {{env: SRC_PW}}\n  sslmode: disable\ntarget:\n  dsn: postgres://postgres@127.0.0.1:{}/{dst_db}\n  password: {{env: DST_PW}}\n  sslmode: disable\n{extra}",
            src.port, dst.port
        ),
    )
    .expect("write plan");
    path
}

fn code(out: &Output, want: i32) {
    assert_eq!(out.status.code(), Some(want), "{}", text(out));
}

fn apply_caught_up(plan: &Path, src: &Cluster, dst: &Cluster) {
    let p = plan.to_str().expect("utf8");
    code(
        &run(&["apply", p, "--yes", "--exit-when-caught-up"], src, dst),
        0,
    );
}

/// Slots, publications and event triggers on the source, one `kind name` per line.
fn source_objects(src: &Cluster) -> Vec<String> {
    src.psql(
        "shop",
        "SELECT 'slot ' || slot_name FROM pg_replication_slots
         UNION ALL SELECT 'publication ' || pubname FROM pg_publication
         UNION ALL SELECT 'event trigger ' || evtname FROM pg_event_trigger
         ORDER BY 1",
    )
    .lines()
    .map(str::to_string)
    .collect()
}

/// The source objects plan `name` creates, as [`source_objects`] lists them.
fn objects_of(name: &str) -> Vec<String> {
    let artifact = pgmove::plan::artifact_name(name);
    let n = pgmove::cdc::ddl::names(name);
    vec![
        format!("slot {artifact}"),
        format!("publication {artifact}"),
        format!("event trigger {}", n.trigger),
        format!("event trigger {}", n.drop_trigger),
        format!("event trigger {}", n.rewrite_trigger),
        format!("event trigger {}", n.start_trigger),
    ]
}

/// Plans `gone` and `kept` (file names `files`) online at once against one source, each into its
/// own target database; the cleanup of `gone` drops exactly its objects, and `kept`'s capture
/// still replicates the next CREATE TABLE with its rows.
fn close_names(files: [&str; 2], gone: &str, kept: &str) {
    let (src, dst) = online::pair();
    src.psql(
        "shop",
        "CREATE TABLE items (id int PRIMARY KEY, name text);
         INSERT INTO items SELECT g, 'item ' || g FROM generate_series(1, 100) g;",
    );
    let dir = tempfile::tempdir().expect("tempdir");
    let mut plans = Vec::new();
    for (file, name) in files.into_iter().zip([gone, kept]) {
        let db = format!("d_{file}");
        dst.create_db(&db);
        let plan = plan_to(dir.path(), [file, name], "copy-cdc", &src, &dst, &db, "");
        apply_caught_up(&plan, &src, &dst);
        plans.push((plan, db));
    }
    let before = source_objects(&src);
    let mut all: Vec<String> = [gone, kept].iter().flat_map(|n| objects_of(n)).collect();
    all.sort();
    assert_eq!(
        before, all,
        "each plan's own slot, publication and 4 DDL triggers"
    );
    let distinct: std::collections::BTreeSet<&String> = all.iter().collect();
    assert_eq!(
        distinct.len(),
        2 * 6,
        "names shared between plans: {all:#?}"
    );

    let out = run(&["cleanup", plans[0].0.to_str().expect("utf8")], &src, &dst);
    code(&out, 0);
    let mut want = objects_of(kept);
    want.sort();
    assert_eq!(source_objects(&src), want, "{}", text(&out));

    // The survivor still works: its capture replicates the next CREATE TABLE and its rows.
    src.psql(
        "shop",
        "CREATE TABLE fresh (id int PRIMARY KEY, v text);
         INSERT INTO fresh SELECT g, 'v' || g FROM generate_series(1, 7) g;
         INSERT INTO items VALUES (1001, 'late');",
    );
    online::switch_wal(&src);
    let (plan, db) = &plans[1];
    apply_caught_up(plan, &src, &dst);
    assert_eq!(dst.psql(db, "SELECT count(*) FROM fresh"), "7");
    assert_eq!(dst.psql(db, "SELECT count(*) FROM items"), "101");
}

#[test]
fn cleanup_of_t1_leaves_plan_t1_ddl_and_its_ddl_capture_working() {
    assert_eq!(objects_of("t1")[0], "slot pgmove_t1");
    assert_eq!(objects_of("t1_ddl")[2], "event trigger pgmove_t1_ddl_ddl");
    close_names(["t1", "t1_ddl"], "t1", "t1_ddl");
}

#[test]
fn plans_a_dash_b_and_a_b_own_distinct_objects() {
    // The plain name keeps its readable names; the other carries a hash of the exact name.
    assert_eq!(objects_of("a_b")[0], "slot pgmove_a_b");
    assert!(
        objects_of("a-b")[0].starts_with("slot pgmove_a_b__"),
        "{:?}",
        objects_of("a-b")
    );
    close_names(["ab_dash", "ab_us"], "a-b", "a_b");
}

/// A source with a user's own schema `pgmove` (a table with rows) next to `public.items`.
fn source_with_user_pgmove_schema() -> (Cluster, Cluster) {
    let (src, dst) = online::pair();
    src.psql(
        "shop",
        "CREATE TABLE items (id int PRIMARY KEY, name text);
         INSERT INTO items SELECT g, 'item ' || g FROM generate_series(1, 50) g;
         CREATE SCHEMA pgmove;
         CREATE TABLE pgmove.mine (id int PRIMARY KEY, note text);
         INSERT INTO pgmove.mine SELECT g, 'mine ' || g FROM generate_series(1, 3) g;",
    );
    (src, dst)
}

fn user_schema_intact(src: &Cluster) {
    assert_eq!(
        src.psql(
            "shop",
            "SELECT string_agg(relname, ',' ORDER BY relname) FROM pg_class WHERE relnamespace = 'pgmove'::regnamespace AND relkind = 'r'"
        ),
        "mine",
        "pgmove wrote into the user's schema"
    );
    assert_eq!(src.psql("shop", "SELECT count(*) FROM pgmove.mine"), "3");
}

#[test]
fn a_users_pgmove_schema_on_the_source_is_reported_and_survives_cleanup() {
    let (src, dst) = source_with_user_pgmove_schema();
    let dir = tempfile::tempdir().expect("tempdir");
    dst.create_db("d_dump");
    dst.create_db("d_cdc");

    // Not silently left out: plan blocks, naming the schema and both fixes.
    let plain = plan_to(
        dir.path(),
        ["plain", "own_plain"],
        "dump-restore",
        &src,
        &dst,
        "d_dump",
        "",
    );
    let out = run(&["plan", plain.to_str().expect("utf8")], &src, &dst);
    code(&out, 2);
    let t = text(&out);
    assert!(
        t.contains("the source has its own schema named pgmove (1 table(s))"),
        "{t}"
    );
    assert!(t.contains("ALTER SCHEMA pgmove RENAME TO"), "{t}");
    assert!(t.contains("objects.exclude: [\"pgmove.*\"]"), "{t}");

    // Excluded: plan says so, and dump-restore then cleanup leave it alone.
    let exclude = "objects:\n  exclude: [\"pgmove.*\"]\n";
    let dump = plan_to(
        dir.path(),
        ["dump", "own_dump"],
        "dump-restore",
        &src,
        &dst,
        "d_dump",
        exclude,
    );
    let p = dump.to_str().expect("utf8");
    let out = run(&["plan", p], &src, &dst);
    code(&out, 0);
    assert!(
        text(&out).contains("the source's own schema pgmove (1 table(s)) is excluded"),
        "{}",
        text(&out)
    );
    code(&run(&["apply", p, "--yes"], &src, &dst), 0);
    assert_eq!(dst.psql("d_dump", "SELECT count(*) FROM items"), "50");
    // verify says what it left out.
    let out = run(&["verify", p], &src, &dst);
    code(&out, 0);
    assert!(
        text(&out)
            .contains("excluded: schema pgmove (the source's own, not pgmove's): not compared"),
        "{}",
        text(&out)
    );
    let out = run(&["cleanup", p], &src, &dst);
    code(&out, 0);
    let t = text(&out);
    assert!(t.contains("not pgmove's"), "{t}");
    user_schema_intact(&src);
    // The target's own state schema (with its marker) went.
    assert_eq!(
        dst.psql(
            "d_dump",
            "SELECT count(*) FROM pg_namespace WHERE nspname = 'pgmove'"
        ),
        "0"
    );

    // copy-cdc: DDL capture would need schema pgmove on the source: a blocker...
    let cdc_ddl = plan_to(
        dir.path(),
        ["cdc_ddl", "own_cdc"],
        "copy-cdc",
        &src,
        &dst,
        "d_cdc",
        exclude,
    );
    let out = run(&["plan", cdc_ddl.to_str().expect("utf8")], &src, &dst);
    code(&out, 2);
    assert!(text(&out).contains("cdc.ddl: ignore"), "{}", text(&out));
    // ...and without it the move goes through and cleanup leaves the schema.
    let cdc = plan_to(
        dir.path(),
        ["cdc", "own_cdc"],
        "copy-cdc",
        &src,
        &dst,
        "d_cdc",
        &format!("{exclude}cdc:\n  ddl: ignore\n"),
    );
    apply_caught_up(&cdc, &src, &dst);
    assert_eq!(dst.psql("d_cdc", "SELECT count(*) FROM items"), "50");
    let out = run(&["cleanup", cdc.to_str().expect("utf8")], &src, &dst);
    code(&out, 0);
    user_schema_intact(&src);
    assert_eq!(
        src.psql("shop", "SELECT count(*) FROM pg_replication_slots"),
        "0"
    );
}

#[test]
fn a_foreign_pgmove_schema_on_the_target_blocks_and_pgmoves_own_is_resumed() {
    let (src, dst) = online::pair();
    src.psql(
        "shop",
        "CREATE TABLE items (id int PRIMARY KEY, name text);
         INSERT INTO items SELECT g, 'item ' || g FROM generate_series(1, 50) g;",
    );
    let dir = tempfile::tempdir().expect("tempdir");
    dst.create_db("d_foreign");
    dst.create_db("d_own");
    dst.psql(
        "d_foreign",
        "CREATE SCHEMA pgmove; CREATE TABLE pgmove.theirs (x int); INSERT INTO pgmove.theirs VALUES (1);",
    );
    let plan = plan_to(
        dir.path(),
        ["foreign", "tgt"],
        "dump-restore",
        &src,
        &dst,
        "d_foreign",
        "",
    );
    let p = plan.to_str().expect("utf8");
    for args in [vec!["plan", p], vec!["apply", p, "--yes"]] {
        let out = run(&args, &src, &dst);
        code(&out, 2);
        let t = text(&out);
        assert!(
            t.contains("the target has a schema named pgmove that pgmove did not create"),
            "{t}"
        );
        assert!(t.contains("ALTER SCHEMA pgmove RENAME TO"), "{t}");
    }
    let out = run(&["cleanup", p], &src, &dst);
    code(&out, 0);
    assert_eq!(
        dst.psql(
            "d_foreign",
            "SELECT string_agg(relname, ',') FROM pg_class WHERE relnamespace = 'pgmove'::regnamespace AND relkind = 'r'"
        ),
        "theirs",
        "pgmove wrote into or dropped the target's own pgmove schema"
    );
    assert_eq!(
        dst.psql(
            "d_foreign",
            "SELECT count(*) FROM pg_class WHERE relname = 'items'"
        ),
        "0"
    );

    // pgmove's own schema carries the marker; plan and a rerun of apply accept it.
    let own = plan_to(
        dir.path(),
        ["own", "tgt_own"],
        "dump-restore",
        &src,
        &dst,
        "d_own",
        "",
    );
    let p = own.to_str().expect("utf8");
    code(&run(&["apply", p, "--yes"], &src, &dst), 0);
    assert_eq!(
        dst.psql("d_own", "SELECT count(*) FROM pgmove.created_by_pgmove"),
        "1"
    );
    let out = run(&["plan", p], &src, &dst);
    assert!(!text(&out).contains("pgmove-schema"), "{}", text(&out));
    assert!(!text(&out).contains("did not create"), "{}", text(&out));
    code(&run(&["apply", p, "--yes"], &src, &dst), 0);
    assert_eq!(dst.psql("d_own", "SELECT count(*) FROM items"), "50");
    code(&run(&["cleanup", p], &src, &dst), 0);

    // The state schema of a pgmove version from before the marker is adopted by apply.
    dst.create_db("d_earlier");
    dst.psql(
        "d_earlier",
        "CREATE SCHEMA pgmove;
         COMMENT ON SCHEMA pgmove IS 'pgmove migration state; removed by pgmove cleanup';
         CREATE TABLE pgmove.runs (plan_name text PRIMARY KEY, strategy text NOT NULL, phase text NOT NULL,
             started_at timestamptz NOT NULL DEFAULT now(), updated_at timestamptz NOT NULL DEFAULT now(), last_error text);
         CREATE TABLE pgmove.steps (plan_name text NOT NULL, step text NOT NULL,
             finished_at timestamptz NOT NULL DEFAULT now(), detail text, PRIMARY KEY (plan_name, step));",
    );
    let earlier = plan_to(
        dir.path(),
        ["earlier", "tgt_earlier"],
        "dump-restore",
        &src,
        &dst,
        "d_earlier",
        "",
    );
    let pe = earlier.to_str().expect("utf8");
    code(&run(&["apply", pe, "--yes"], &src, &dst), 0);
    assert_eq!(
        dst.psql("d_earlier", "SELECT count(*) FROM pgmove.created_by_pgmove"),
        "1"
    );
    assert_eq!(dst.psql("d_earlier", "SELECT count(*) FROM items"), "50");

    assert_eq!(
        dst.psql(
            "d_own",
            "SELECT count(*) FROM pg_namespace WHERE nspname = 'pgmove'"
        ),
        "0"
    );
}

/// The plan's records of what it created on the source (`pgmove.source_objects` on the
/// target), one `kind name state` per line.
fn records(dst: &Cluster, db: &str) -> String {
    dst.psql(
        db,
        "SELECT string_agg(kind || ' ' || name || ' ' || state, E'\\n' ORDER BY kind, name) FROM pgmove.source_objects",
    )
}

/// `items` with 100 rows on the source.
fn items(src: &Cluster) {
    src.psql(
        "shop",
        "CREATE TABLE items (id int PRIMARY KEY, name text);
         INSERT INTO items SELECT g, 'item ' || g FROM generate_series(1, 100) g;",
    );
}

#[test]
fn a_users_slot_and_publication_named_like_pgmoves_are_neither_used_nor_dropped() {
    let (src, dst) = online::pair();
    items(&src);
    // The user's own publication and slot, with exactly the names plan `mine` gives its own.
    src.psql("shop", "CREATE PUBLICATION pgmove_mine FOR TABLE items");
    src.psql(
        "shop",
        "SELECT 1 FROM pg_create_logical_replication_slot('pgmove_mine', 'pgoutput')",
    );
    let dir = tempfile::tempdir().expect("tempdir");
    dst.create_db("d_mine");
    let plan = plan_to(
        dir.path(),
        ["mine", "mine"],
        "copy-cdc",
        &src,
        &dst,
        "d_mine",
        "",
    );
    let p = plan.to_str().expect("utf8");
    for args in [
        vec!["plan", p],
        vec!["apply", p, "--yes", "--exit-when-caught-up"],
    ] {
        let out = run(&args, &src, &dst);
        code(&out, 2);
        let t = text(&out);
        for want in [
            "the source has a publication named pgmove_mine, the name pgmove gives this plan's publication, and it is not pgmove's",
            "the source has a replication slot named pgmove_mine",
            r#"DROP PUBLICATION "pgmove_mine";"#,
            r#"ALTER PUBLICATION "pgmove_mine" RENAME TO "pgmove_mine_user";"#,
            "SELECT pg_drop_replication_slot('pgmove_mine');",
            "--adopt-unrecorded",
        ] {
            assert!(t.contains(want), "{want:?} missing in\n{t}");
        }
    }
    assert_eq!(
        dst.psql(
            "d_mine",
            "SELECT count(*) FROM pg_class WHERE relname = 'items'"
        ),
        "0",
        "apply wrote to the target"
    );
    let theirs = || {
        src.psql(
            "shop",
            "SELECT (SELECT count(*) FROM pg_publication WHERE pubname = 'pgmove_mine')
                 || '|' || (SELECT count(*) FROM pg_replication_slots WHERE slot_name = 'pgmove_mine')
                 || '|' || (SELECT count(*) FROM pg_publication_tables WHERE pubname = 'pgmove_mine')",
        )
    };
    assert_eq!(theirs(), "1|1|1");
    let out = run(&["cleanup", p], &src, &dst);
    code(&out, 0);
    let t = text(&out);
    assert!(t.contains("found by name, not recorded"), "{t}");
    assert_eq!(theirs(), "1|1|1", "cleanup dropped the user's objects\n{t}");

    // Renamed out of the way (as the fix says), the plan runs; its cleanup drops its own
    // slot and publication, which it recorded, and leaves the user's renamed ones.
    src.psql(
        "shop",
        "ALTER PUBLICATION pgmove_mine RENAME TO pgmove_mine_user",
    );
    src.psql("shop", "SELECT pg_drop_replication_slot('pgmove_mine')");
    src.psql(
        "shop",
        "SELECT 1 FROM pg_create_logical_replication_slot('mine_user', 'pgoutput')",
    );
    apply_caught_up(&plan, &src, &dst);
    assert_eq!(dst.psql("d_mine", "SELECT count(*) FROM items"), "100");
    assert_eq!(
        records(&dst, "d_mine"),
        "publication pgmove_mine created\nreplication slot pgmove_mine created"
    );
    assert_eq!(
        src.psql(
            "shop",
            "SELECT obj_description(oid, 'pg_publication') FROM pg_publication WHERE pubname = 'pgmove_mine'"
        ),
        "created by pgmove for plan mine; dropped by pgmove cleanup"
    );
    let out = run(&["cleanup", p], &src, &dst);
    code(&out, 0);
    assert_eq!(
        source_objects(&src),
        ["publication pgmove_mine_user", "slot mine_user"],
        "{}",
        text(&out)
    );
}

#[test]
fn a_kill_between_recording_and_creating_resumes_and_cleanup_drops_what_was_created() {
    let (src, dst) = online::pair();
    items(&src);
    let dir = tempfile::tempdir().expect("tempdir");
    dst.create_db("d_kill");
    let plan = plan_to(
        dir.path(),
        ["kill", "kill"],
        "copy-cdc",
        &src,
        &dst,
        "d_kill",
        "",
    );
    // Killed at each point: the record says `intended`, the slot is absent, then present.
    for (point, slots) in [
        ("copy-cdc-slot-recorded", "0"),
        ("copy-cdc-slot-created", "1"),
    ] {
        let log = dir.path().join(format!("{point}.log"));
        let mut cmd = online::pgmove(&online::apply_args(&plan), &src, &dst);
        cmd.env("PGMOVE_TEST_PAUSE", point);
        let mut child = online::spawn_logged(cmd, &log);
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(120);
        while !online::read_log(&log).contains(&format!("test pause at {point}")) {
            online::check_running(&mut child, &log);
            assert!(
                std::time::Instant::now() < deadline,
                "{}",
                online::read_log(&log)
            );
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
        child.kill().expect("SIGKILL");
        let _ = child.wait();
        assert_eq!(
            records(&dst, "d_kill"),
            "publication pgmove_kill created\nreplication slot pgmove_kill intended",
            "{point}"
        );
        assert_eq!(
            src.psql(
                "shop",
                "SELECT count(*) FROM pg_replication_slots WHERE slot_name = 'pgmove_kill'"
            ),
            slots,
            "{point}"
        );
    }
    // A publication whose record stayed `intended` (a kill between its creating transaction
    // and the record's update) is pgmove's by its comment...
    dst.psql(
        "d_kill",
        "UPDATE pgmove.source_objects SET state = 'intended' WHERE kind = 'publication'",
    );
    let p = plan.to_str().expect("utf8");
    code(&run(&["plan", p], &src, &dst), 0);
    // ...and without the comment it is not.
    src.psql("shop", "COMMENT ON PUBLICATION pgmove_kill IS NULL");
    let out = run(&["plan", p], &src, &dst);
    code(&out, 2);
    assert!(
        text(&out).contains("does not carry pgmove's comment"),
        "{}",
        text(&out)
    );
    src.psql(
        "shop",
        "COMMENT ON PUBLICATION pgmove_kill IS 'created by pgmove for plan kill; dropped by pgmove cleanup'",
    );

    apply_caught_up(&plan, &src, &dst);
    assert_eq!(dst.psql("d_kill", "SELECT count(*) FROM items"), "100");
    let recs = records(&dst, "d_kill");
    assert!(
        recs.contains("publication pgmove_kill created")
            && recs.contains("replication slot pgmove_kill created"),
        "{recs}"
    );
    let out = run(&["cleanup", p], &src, &dst);
    code(&out, 0);
    assert_eq!(source_objects(&src), Vec::<String>::new(), "{}", text(&out));
}

#[test]
fn a_migration_of_a_release_without_the_record_is_cleaned_only_with_adopt_unrecorded() {
    let (src, dst) = online::pair();
    items(&src);
    let dir = tempfile::tempdir().expect("tempdir");
    dst.create_db("d_old");
    let plan = plan_to(
        dir.path(),
        ["old", "old"],
        "copy-cdc",
        &src,
        &dst,
        "d_old",
        "cdc:\n  ddl: ignore\n",
    );
    let p = plan.to_str().expect("utf8");
    apply_caught_up(&plan, &src, &dst);
    // What the previous release left: its state (a run in progress), no record.
    dst.psql("d_old", "DROP TABLE pgmove.source_objects");
    src.psql("shop", "COMMENT ON PUBLICATION pgmove_old IS NULL");
    let ours = ["publication pgmove_old", "slot pgmove_old"];
    assert_eq!(source_objects(&src), ours);

    // apply does not take them over: a blocker naming the way out.
    let out = run(&["apply", p, "--yes", "--exit-when-caught-up"], &src, &dst);
    code(&out, 2);
    assert!(
        text(&out).contains(&format!("pgmove cleanup {p} --adopt-unrecorded")),
        "{}",
        text(&out)
    );
    // cleanup reports them, drops them not...
    let out = run(&["cleanup", p, "--dry-run"], &src, &dst);
    code(&out, 0);
    let out = run(&["cleanup", p], &src, &dst);
    code(&out, 0);
    let t = text(&out);
    assert!(t.contains("found by name, not recorded"), "{t}");
    assert!(t.contains("--adopt-unrecorded"), "{t}");
    assert_eq!(source_objects(&src), ours, "{t}");
    // ...unless told to adopt them.
    let out = run(&["cleanup", p, "--adopt-unrecorded"], &src, &dst);
    code(&out, 0);
    assert!(
        text(&out).contains("dropped because of --adopt-unrecorded"),
        "{}",
        text(&out)
    );
    assert_eq!(source_objects(&src), Vec::<String>::new(), "{}", text(&out));
}
