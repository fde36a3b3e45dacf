//! Issue 11 item 10: enum DDL during change capture (`cdc.ddl: replicate`). `ALTER TYPE ...
//! ADD VALUE` is captured and replayed, and its target transaction commits right after it, so
//! the rows of later source transactions that use the new value arrive; also when ADD VALUE
//! shares its source transaction with other DDL and rows. `RENAME VALUE` and `CREATE TYPE ...
//! AS ENUM` replay too. A kill -9 of apply around the replay resumes to an identical target.

use crate::support;

use std::path::Path;
use std::time::{Duration, Instant};

use support::online::{
    self, read_log, run, start_apply, terminate, text, wait_caught_up, wait_loaded,
};
use support::Cluster;

fn pair() -> (Cluster, Cluster) {
    let (src, dst) = online::pair();
    src.psql(
        "shop",
        "CREATE TYPE mood AS ENUM ('sad', 'ok');
         CREATE TABLE people (id int PRIMARY KEY, m mood NOT NULL);
         INSERT INTO people SELECT g, CASE WHEN g % 2 = 0 THEN 'sad' ELSE 'ok' END::mood
           FROM generate_series(1, 20) g;",
    );
    (src, dst)
}

fn verify(plan: &Path, src: &Cluster, dst: &Cluster) {
    let out = run(&["verify", plan.to_str().expect("utf8")], src, dst);
    assert!(out.status.success(), "verify: {}", text(&out));
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("IDENTICAL"),
        "{}",
        text(&out)
    );
}

/// The labels of enum `t`, in their sort order.
fn labels(c: &Cluster, t: &str) -> String {
    c.psql(
        "shop",
        &format!(
            "SELECT string_agg(enumlabel, ',' ORDER BY enumsortorder) FROM pg_enum WHERE enumtypid = '{t}'::regtype"
        ),
    )
}

fn rows(c: &Cluster) -> String {
    c.psql(
        "shop",
        "SELECT string_agg(id || '=' || m, ' ' ORDER BY id) FROM people",
    )
}

#[test]
fn add_value_then_rows_using_it_arrive() {
    let (src, dst) = pair();
    let dir = tempfile::tempdir().expect("tempdir");
    let plan = online::write_plan(dir.path(), "enm", &src, &dst, "cdc:\n  ddl: replicate\n");
    let log = dir.path().join("apply.log");
    let mut child = start_apply(&plan, &src, &dst, &log);
    wait_loaded(&dst, "enm", &mut child, &log);

    // ADD VALUE alone, then transactions using the new value.
    src.psql("shop", "ALTER TYPE mood ADD VALUE 'happy'");
    src.psql("shop", "INSERT INTO people VALUES (21, 'happy')");
    src.psql("shop", "UPDATE people SET m = 'happy' WHERE id = 1");
    // ADD VALUE with other DDL and rows in one source transaction that does not use it
    // (PostgreSQL 12+ allows ADD VALUE in a transaction block), the new value right after.
    src.psql(
        "shop",
        "BEGIN;
         INSERT INTO people VALUES (22, 'ok');
         ALTER TYPE mood ADD VALUE 'meh' BEFORE 'ok';
         ALTER TABLE people ADD COLUMN note text DEFAULT 'n';
         INSERT INTO people VALUES (23, 'sad', 'with note');
         COMMIT;",
    );
    src.psql("shop", "INSERT INTO people VALUES (24, 'meh', 'meh')");
    src.psql("shop", "UPDATE people SET m = 'meh' WHERE id = 2");
    // RENAME VALUE, and a new enum type with a table using it.
    src.psql("shop", "ALTER TYPE mood RENAME VALUE 'sad' TO 'blue'");
    src.psql("shop", "INSERT INTO people VALUES (25, 'blue', 'renamed')");
    src.psql(
        "shop",
        "CREATE TYPE color AS ENUM ('red', 'green');
         CREATE TABLE paint (id int PRIMARY KEY, c color);
         INSERT INTO paint VALUES (1, 'red'), (2, 'green');",
    );
    src.psql("shop", "ALTER TYPE color ADD VALUE IF NOT EXISTS 'blue'");
    src.psql("shop", "INSERT INTO paint VALUES (3, 'blue')");
    wait_caught_up(&src, &dst, "enm", &mut child, &log);
    terminate(&mut child, &log);

    assert_eq!(labels(&dst, "mood"), "blue,meh,ok,happy");
    assert_eq!(labels(&dst, "mood"), labels(&src, "mood"));
    assert_eq!(labels(&dst, "color"), "red,green,blue");
    assert_eq!(rows(&dst), rows(&src));
    assert_eq!(
        dst.psql(
            "shop",
            "SELECT string_agg(id || '=' || c, ' ' ORDER BY id) FROM paint"
        ),
        "1=red 2=green 3=blue"
    );
    let logged = read_log(&log);
    assert!(
        logged.contains("replicating DDL") && logged.contains("ADD VALUE 'happy'"),
        "{logged}"
    );
    verify(&plan, &src, &dst);
}

/// Starts apply paused at `point` (no resume file: it waits there), waits until it is there,
/// and kills it with SIGKILL.
fn kill_at(plan: &Path, src: &Cluster, dst: &Cluster, log: &Path, point: &str) {
    let mut cmd = online::pgmove(&online::apply_args(plan), src, dst);
    cmd.env("PGMOVE_TEST_PAUSE", point);
    let mut child = online::spawn_logged(cmd, log);
    let deadline = Instant::now() + Duration::from_secs(180);
    while !read_log(log).contains(&format!("test pause at {point}")) {
        online::check_running(&mut child, log);
        assert!(
            Instant::now() < deadline,
            "apply did not reach {point}\n{}",
            read_log(log)
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    child.kill().expect("kill -9");
    let _ = child.wait();
}

#[test]
fn kill_9_around_the_add_value_replay_resumes_identical() {
    let (src, dst) = pair();
    let dir = tempfile::tempdir().expect("tempdir");
    let plan = online::write_plan(dir.path(), "enmk", &src, &dst, "cdc:\n  ddl: replicate\n");
    let log = dir.path().join("apply.log");
    // The full load, then stop.
    let mut child = start_apply(&plan, &src, &dst, &log);
    wait_loaded(&dst, "enmk", &mut child, &log);
    terminate(&mut child, &log);

    src.psql("shop", "ALTER TYPE mood ADD VALUE 'happy'");
    src.psql("shop", "INSERT INTO people VALUES (21, 'happy')");
    // Killed before the target transaction holding ADD VALUE commits: nothing of it is there.
    kill_at(&plan, &src, &dst, &log, "cdc-add-value-commit");
    assert_eq!(labels(&dst, "mood"), "sad,ok");
    src.psql(
        "shop",
        "BEGIN; ALTER TYPE mood ADD VALUE 'meh'; INSERT INTO people VALUES (22, 'ok'); COMMIT;",
    );
    src.psql("shop", "INSERT INTO people VALUES (23, 'meh')");
    // Killed right after it committed (with its progress row): a rerun goes on after it.
    kill_at(&plan, &src, &dst, &log, "cdc-add-value-committed");
    assert_eq!(labels(&dst, "mood"), "sad,ok,happy");

    let log2 = dir.path().join("apply2.log");
    let mut child = start_apply(&plan, &src, &dst, &log2);
    wait_caught_up(&src, &dst, "enmk", &mut child, &log2);
    terminate(&mut child, &log2);
    assert_eq!(labels(&dst, "mood"), "sad,ok,happy,meh");
    assert_eq!(rows(&dst), rows(&src));
    verify(&plan, &src, &dst);
}

/// After change capture stopped on an error, cutover names that error (not "no change
/// capture progress", nor a wait for a lag that cannot shrink).
#[test]
fn cutover_after_an_apply_error_names_it() {
    let (src, dst) = pair();
    let dir = tempfile::tempdir().expect("tempdir");
    let plan = online::write_plan(dir.path(), "enmc", &src, &dst, "cdc:\n  ddl: refuse\n");
    let log = dir.path().join("apply.log");
    let mut child = start_apply(&plan, &src, &dst, &log);
    wait_loaded(&dst, "enmc", &mut child, &log);
    // Some progress first, so cutover finds a progress row.
    src.psql("shop", "INSERT INTO people VALUES (21, 'ok')");
    wait_caught_up(&src, &dst, "enmc", &mut child, &log);
    src.psql("shop", "ALTER TABLE people ADD COLUMN note text");
    let status = child.wait().expect("apply ends on the refused DDL");
    assert!(!status.success(), "{}", read_log(&log));
    assert!(
        read_log(&log).contains("cdc.ddl is refuse"),
        "{}",
        read_log(&log)
    );
    let p = plan.to_str().expect("utf8");
    let out = online::pgmove(&["cutover", p, "--yes", "--timeout", "20s"], &src, &dst)
        .output()
        .expect("cutover");
    let said = text(&out);
    eprintln!("{said}");
    assert!(!out.status.success(), "{said}");
    assert!(said.contains("cdc.ddl is refuse"), "{said}");
    assert!(!said.contains("no change capture progress"), "{said}");
}

/// The path for targets before PostgreSQL 12 (forced here on a PostgreSQL 15 target): ADD
/// VALUE runs alone in autocommit as ADD VALUE IF NOT EXISTS, the progress row after it. A
/// kill -9 between the two replays it on the rerun, harmlessly.
#[test]
fn add_value_in_autocommit_survives_a_kill_before_its_progress_row() {
    let (src, dst) = pair();
    let dir = tempfile::tempdir().expect("tempdir");
    let plan = online::write_plan(dir.path(), "enma", &src, &dst, "cdc:\n  ddl: replicate\n");
    let log = dir.path().join("apply.log");
    let mut child = start_apply(&plan, &src, &dst, &log);
    wait_loaded(&dst, "enma", &mut child, &log);
    terminate(&mut child, &log);

    src.psql("shop", "INSERT INTO people VALUES (21, 'ok')");
    src.psql("shop", "ALTER TYPE mood ADD VALUE 'happy'");
    src.psql("shop", "INSERT INTO people VALUES (22, 'happy')");
    let point = "cdc-add-value-autocommitted";
    let mut cmd = online::pgmove(&online::apply_args(&plan), &src, &dst);
    cmd.env("PGMOVE_TEST_PAUSE", point)
        .env("PGMOVE_TEST_FORCE", "add-value-autocommit");
    let mut child = online::spawn_logged(cmd, &log);
    let deadline = Instant::now() + Duration::from_secs(180);
    while !read_log(&log).contains(&format!("test pause at {point}")) {
        online::check_running(&mut child, &log);
        assert!(
            Instant::now() < deadline,
            "apply did not reach {point}\n{}",
            read_log(&log)
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    child.kill().expect("kill -9");
    let _ = child.wait();
    // The value is there, the progress row is not past it.
    assert_eq!(labels(&dst, "mood"), "sad,ok,happy");
    assert_eq!(
        dst.psql("shop", "SELECT count(*) FROM people WHERE id = 22"),
        "0"
    );

    let log2 = dir.path().join("apply2.log");
    let mut cmd = online::pgmove(&online::apply_args(&plan), &src, &dst);
    cmd.env("PGMOVE_TEST_FORCE", "add-value-autocommit");
    let mut child = online::spawn_logged(cmd, &log2);
    wait_caught_up(&src, &dst, "enma", &mut child, &log2);
    terminate(&mut child, &log2);
    assert_eq!(labels(&dst, "mood"), "sad,ok,happy");
    assert_eq!(rows(&dst), rows(&src));
    verify(&plan, &src, &dst);
}
