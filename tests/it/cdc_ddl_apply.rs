//! `cdc.ddl` in `pgmove apply` (copy-cdc): the event trigger is installed on the source when
//! the plan wants it, and change capture runs each CREATE/ALTER/DROP TABLE on the target at its
//! place in the stream (replicate), stops at it (refuse), or leaves it to the user (ignore).

use crate::support;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use support::online::{
    assert_ok, read_log, run, start_apply, terminate, text, wait_caught_up, wait_loaded,
};
use support::{online, Cluster};

fn write_plan(dir: &Path, name: &str, src: &Cluster, dst: &Cluster, ddl: &str) -> PathBuf {
    online::write_plan(dir, name, src, dst, &format!("cdc:\n  ddl: {ddl}\n"))
}

fn pair() -> (Cluster, Cluster) {
    let (src, dst) = online::pair();
    src.psql(
        "shop",
        "CREATE TABLE items (id int PRIMARY KEY, v text);
         INSERT INTO items SELECT g, 'v' || g FROM generate_series(1, 100) g;
         CREATE TABLE other (id int PRIMARY KEY, n int);
         INSERT INTO other SELECT g, g FROM generate_series(1, 10) g;",
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

/// The plan's event triggers on the source.
fn event_triggers(src: &Cluster, plan: &str) -> String {
    src.psql(
        "shop",
        &format!(
            "SELECT coalesce(string_agg(evtname || ':' || evtevent || ':' || evtenabled::text, ',' ORDER BY evtname), '') FROM pg_event_trigger WHERE evtname LIKE 'pgmove\\_{plan}\\_ddl%'"
        ),
    )
}

fn columns(c: &Cluster, table: &str) -> String {
    c.psql(
        "shop",
        &format!(
            "SELECT string_agg(column_name, ',' ORDER BY ordinal_position) FROM information_schema.columns WHERE table_schema = 'public' AND table_name = '{table}'"
        ),
    )
}

#[test]
fn replicate_runs_alter_table_at_its_place_in_the_stream() {
    let (src, dst) = pair();
    let dir = tempfile::tempdir().expect("tempdir");
    let plan = write_plan(dir.path(), "ddla", &src, &dst, "replicate");
    let p = plan.to_str().expect("utf8");

    // The dry run lists the trigger's installation.
    let out = run(&["apply", p, "--dry-run"], &src, &dst);
    assert_ok(&out);
    let listing = String::from_utf8_lossy(&out.stdout).to_string();
    let install = listing
        .find("CREATE EVENT TRIGGER \"pgmove_ddla_ddl\" ON ddl_command_end")
        .unwrap_or_else(|| panic!("no trigger in the dry run: {listing}"));
    let slot = listing
        .find("CREATE_REPLICATION_SLOT")
        .expect("slot in the dry run");
    assert!(install < slot, "the trigger goes in before the slot");
    assert_eq!(event_triggers(&src, "ddla"), "", "the dry run wrote");

    let log = dir.path().join("apply.log");
    let mut child = start_apply(&plan, &src, &dst, &log);
    wait_loaded(&dst, "ddla", &mut child, &log);
    assert_eq!(
        event_triggers(&src, "ddla"),
        "pgmove_ddla_ddl:ddl_command_end:A,pgmove_ddla_ddl_drop:sql_drop:A,pgmove_ddla_ddl_rewrite:table_rewrite:A,pgmove_ddla_ddl_start:ddl_command_start:A"
    );

    // Changes before the ALTER (old shape), the ALTER, changes using the new column: one
    // source transaction, with another table's changes in between.
    src.psql(
        "shop",
        "BEGIN;
         INSERT INTO items VALUES (101, 'before');
         UPDATE items SET v = 'changed' WHERE id = 1;
         INSERT INTO other VALUES (11, 11);
         ALTER TABLE items ADD COLUMN qty int NOT NULL DEFAULT 7;
         INSERT INTO items VALUES (102, 'after', 42);
         UPDATE items SET qty = 8 WHERE id = 2;
         UPDATE items SET qty = 9, v = 'both' WHERE id = 101;
         UPDATE other SET n = 0 WHERE id = 1;
         COMMIT;",
    );
    // Later transactions use the column too.
    src.psql(
        "shop",
        "INSERT INTO items VALUES (103, 'later', 5);
         UPDATE items SET qty = qty + 1 WHERE id <= 10;
         DELETE FROM items WHERE id = 3;",
    );
    // A second statement with a default, and a DROP COLUMN after a change that still set it.
    src.psql(
        "shop",
        "BEGIN;
         UPDATE items SET v = 'last' WHERE id = 4;
         ALTER TABLE items ADD COLUMN note text DEFAULT 'n/a', DROP COLUMN v;
         INSERT INTO items (id, qty) VALUES (104, 1);
         INSERT INTO items (id, qty, note) VALUES (105, 2, 'noted');
         COMMIT;",
    );
    wait_caught_up(&src, &dst, "ddla", &mut child, &log);
    assert_eq!(columns(&dst, "items"), "id,qty,note");
    assert_eq!(
        dst.psql(
            "shop",
            "SELECT string_agg(id || '=' || qty || '/' || note, ' ' ORDER BY id) FROM items WHERE id IN (1, 2, 3, 4, 50, 101, 102, 103, 104, 105)"
        ),
        "1=8/n/a 2=9/n/a 4=8/n/a 50=7/n/a 101=9/n/a 102=42/n/a 103=5/n/a 104=1/n/a 105=2/noted"
    );
    terminate(&mut child, &log);
    let logged = read_log(&log);
    assert!(
        logged.contains("replicating DDL") && logged.contains("DROP COLUMN v"),
        "{logged}"
    );

    // While apply is stopped: more DDL. A rerun finds the trigger it installed and uses it as
    // it is (never dropped and created again: same oids) and resumes.
    let oids = |c: &Cluster| {
        c.psql(
            "shop",
            "SELECT string_agg(evtname || ':' || oid, ',' ORDER BY evtname) FROM pg_event_trigger WHERE evtname LIKE 'pgmove\\_ddla\\_ddl%'",
        )
    };
    let before = oids(&src);
    src.psql(
        "shop",
        "ALTER TABLE other ADD COLUMN tag text DEFAULT 'x';
         INSERT INTO other VALUES (12, 12, 'twelve');
         UPDATE other SET tag = 'one' WHERE id = 1;",
    );
    let out = run(&["apply", p, "--yes", "--exit-when-caught-up"], &src, &dst);
    assert_ok(&out);
    assert_eq!(columns(&dst, "other"), "id,n,tag");
    assert_eq!(
        event_triggers(&src, "ddla")
            .matches("pgmove_ddla_ddl")
            .count(),
        4
    );
    assert_eq!(
        oids(&src),
        before,
        "the rerun created the event triggers again"
    );
    verify(&plan, &src, &dst);
}

#[test]
fn replicate_creates_new_tables_with_all_their_rows_and_cleanup_removes_the_trigger() {
    let (src, dst) = pair();
    let dir = tempfile::tempdir().expect("tempdir");
    let plan = write_plan(dir.path(), "ddlb", &src, &dst, "replicate");
    let p = plan.to_str().expect("utf8");
    let log = dir.path().join("apply.log");
    let mut child = start_apply(&plan, &src, &dst, &log);
    wait_loaded(&dst, "ddlb", &mut child, &log);

    // Created and filled in one transaction, with changes to a copied table around it.
    src.psql(
        "shop",
        "BEGIN;
         INSERT INTO items VALUES (101, 'before');
         CREATE TABLE orders (id int PRIMARY KEY, item int NOT NULL, amount numeric, at timestamptz DEFAULT '2026-01-02 03:04:05+00');
         INSERT INTO orders (id, item, amount) SELECT g, g % 10, g * 1.5 FROM generate_series(1, 500) g;
         UPDATE orders SET amount = 0 WHERE id = 1;
         DELETE FROM orders WHERE id = 500;
         INSERT INTO items VALUES (102, 'after');
         COMMIT;",
    );
    // Later transactions.
    src.psql(
        "shop",
        "INSERT INTO orders (id, item, amount) VALUES (501, 1, 2), (502, 2, NULL);
         UPDATE orders SET item = 9 WHERE id < 50;
         DELETE FROM orders WHERE id = 2;",
    );
    // A table created and dropped again; another created in its own transaction and filled
    // in later ones.
    src.psql(
        "shop",
        "CREATE TABLE scratch (id int PRIMARY KEY);
         INSERT INTO scratch VALUES (1), (2);",
    );
    src.psql("shop", "CREATE TABLE tags (name text PRIMARY KEY)");
    src.psql(
        "shop",
        "INSERT INTO tags VALUES ('a'), ('b'); INSERT INTO scratch VALUES (3); DROP TABLE scratch;",
    );
    wait_caught_up(&src, &dst, "ddlb", &mut child, &log);
    assert_eq!(
        dst.psql(
            "shop",
            "SELECT count(*), sum(item), sum(amount) FROM orders"
        ),
        src.psql(
            "shop",
            "SELECT count(*), sum(item), sum(amount) FROM orders"
        )
    );
    assert_eq!(dst.psql("shop", "SELECT count(*) FROM orders"), "500");
    assert_eq!(
        dst.psql("shop", "SELECT to_regclass('scratch') IS NULL"),
        "t"
    );
    assert_eq!(
        dst.psql(
            "shop",
            "SELECT string_agg(name, ',' ORDER BY name) FROM tags"
        ),
        "a,b"
    );
    terminate(&mut child, &log);
    verify(&plan, &src, &dst);

    // Another plan's DDL capture on the same source: the pgmove schema stays for it, so this
    // plan's own objects (its key table too) must be dropped one by one, and the other's kept.
    src.psql("shop", &pgmove::cdc::ddl::install_sql("ddlother", &[], &[]));
    let other = write_plan(dir.path(), "ddlother", &src, &dst, "replicate");
    let out = run(&["cleanup", p], &src, &dst);
    assert_ok(&out);
    let objects = "SELECT coalesce(string_agg(x, ',' ORDER BY x), '') FROM (
           SELECT 'trigger ' || evtname AS x FROM pg_event_trigger
           UNION ALL SELECT 'function ' || proname FROM pg_proc WHERE proname LIKE 'pgmove%'
              OR pronamespace = (SELECT oid FROM pg_namespace WHERE nspname = 'pgmove')
           UNION ALL SELECT 'relation ' || relname FROM pg_class
              WHERE relnamespace = (SELECT oid FROM pg_namespace WHERE nspname = 'pgmove')
           UNION ALL SELECT 'schema ' || nspname FROM pg_namespace WHERE nspname = 'pgmove') o";
    assert_eq!(
        src.psql("shop", objects),
        "function pgmove_ddlother_ddl,function pgmove_ddlother_ddl_emit,relation created_by_pgmove,relation objects,relation objects_pkey,relation pgmove_ddlother_ddl_key,schema pgmove,trigger pgmove_ddlother_ddl,trigger pgmove_ddlother_ddl_drop,trigger pgmove_ddlother_ddl_rewrite,trigger pgmove_ddlother_ddl_start",
        "{}",
        text(&out)
    );
    // Cleanup of the last plan leaves no event trigger, pgmove function, table or schema.
    let out = run(&["cleanup", other.to_str().expect("utf8")], &src, &dst);
    assert_ok(&out);
    assert_eq!(src.psql("shop", objects), "", "{}", text(&out));
    assert_eq!(
        src.psql("shop", "SELECT count(*) FROM pg_event_trigger"),
        "0"
    );
    // DDL on the source works without the trigger.
    src.psql(
        "shop",
        "CREATE TABLE after_cleanup (id int); DROP TABLE orders;",
    );
}

#[test]
fn refuse_stops_apply_at_the_statement_until_it_is_applied_by_hand() {
    let (src, dst) = pair();
    let dir = tempfile::tempdir().expect("tempdir");
    let plan = write_plan(dir.path(), "ddlc", &src, &dst, "refuse");
    let p = plan.to_str().expect("utf8");
    let log = dir.path().join("apply.log");
    let mut child = start_apply(&plan, &src, &dst, &log);
    wait_loaded(&dst, "ddlc", &mut child, &log);
    // refuse installs the trigger too: the applier must see the DDL to stop at it.
    assert_eq!(
        event_triggers(&src, "ddlc")
            .matches("pgmove_ddlc_ddl")
            .count(),
        4
    );

    // Three transactions in one query string: they arrive back to back, so the first is still
    // in the applier's batch when the DDL arrives.
    src.psql(
        "shop",
        "BEGIN;
         INSERT INTO items VALUES (201, 'r1'), (202, 'r2');
         UPDATE other SET n = -1 WHERE id = 1;
         COMMIT;
         BEGIN;
         INSERT INTO items VALUES (203, 'same transaction');
         ALTER TABLE items ADD COLUMN flag boolean DEFAULT false;
         INSERT INTO items VALUES (204, 'after', true);
         COMMIT;
         INSERT INTO other VALUES (11, 11);",
    );
    src.psql("shop", "SELECT pg_switch_wal()");
    let deadline = Instant::now() + Duration::from_secs(120);
    let status = loop {
        if let Some(s) = child.try_wait().expect("try_wait") {
            break s;
        }
        assert!(
            Instant::now() < deadline,
            "apply did not stop at the DDL\n{}",
            read_log(&log)
        );
        std::thread::sleep(Duration::from_millis(100));
    };
    let stderr = read_log(&log);
    assert_eq!(status.code(), Some(1), "{stderr}");
    let statement = "ALTER TABLE items ADD COLUMN flag boolean DEFAULT false";
    assert!(stderr.contains(statement), "{stderr}");
    assert!(stderr.contains("cdc.ddl is refuse"), "{stderr}");
    // The transactions before it are applied, nothing of its own nor after it.
    assert_eq!(
        dst.psql(
            "shop",
            "SELECT string_agg(id::text, ',' ORDER BY id) FROM items WHERE id > 200"
        ),
        "201,202"
    );
    assert_eq!(dst.psql("shop", "SELECT n FROM other WHERE id = 1"), "-1");
    assert_eq!(dst.psql("shop", "SELECT count(*) FROM other"), "10");
    assert_eq!(columns(&dst, "items"), "id,v");

    // A rerun stops at the same statement: the slot did not move past it.
    let out = run(&["apply", p, "--yes", "--exit-when-caught-up"], &src, &dst);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    let again = String::from_utf8_lossy(&out.stderr).to_string();
    assert!(again.contains(statement), "{again}");
    assert_eq!(
        dst.psql("shop", "SELECT count(*) FROM items WHERE id > 202"),
        "0"
    );

    // What the message says to do: run it on the target, mark it, run apply again.
    let mark = again
        .split('`')
        .find(|s| s.starts_with("INSERT INTO pgmove.steps"))
        .unwrap_or_else(|| panic!("no marking statement in: {again}"))
        .to_string();
    dst.psql("shop", statement);
    dst.psql("shop", &mark);
    let out = run(&["apply", p, "--yes", "--exit-when-caught-up"], &src, &dst);
    assert_ok(&out);
    assert_eq!(
        dst.psql(
            "shop",
            "SELECT string_agg(id || ':' || flag, ',' ORDER BY id) FROM items WHERE id > 200"
        ),
        "201:false,202:false,203:false,204:true"
    );
    verify(&plan, &src, &dst);
}

#[test]
fn ignore_installs_no_trigger_and_leaves_ddl_to_the_user() {
    let (src, dst) = pair();
    let dir = tempfile::tempdir().expect("tempdir");
    let plan = write_plan(dir.path(), "ddld", &src, &dst, "ignore");
    let p = plan.to_str().expect("utf8");
    let out = run(&["apply", p, "--dry-run"], &src, &dst);
    assert_ok(&out);
    assert!(
        !String::from_utf8_lossy(&out.stdout).contains("EVENT TRIGGER"),
        "{}",
        text(&out)
    );
    let out = run(&["apply", p, "--yes", "--exit-when-caught-up"], &src, &dst);
    assert_ok(&out);
    assert_eq!(
        src.psql("shop", "SELECT count(*) FROM pg_event_trigger"),
        "0"
    );
    assert_eq!(
        src.psql(
            "shop",
            "SELECT count(*) FROM pg_proc WHERE proname LIKE 'pgmove%'"
        ),
        "0"
    );
    // The user applies the DDL on both servers; change capture does not run it again.
    dst.psql("shop", "ALTER TABLE items ADD COLUMN c int DEFAULT 1");
    src.psql(
        "shop",
        "ALTER TABLE items ADD COLUMN c int DEFAULT 1;
         INSERT INTO items VALUES (101, 'new', 5);
         UPDATE items SET c = 2 WHERE id = 1;",
    );
    let out = run(&["apply", p, "--yes", "--exit-when-caught-up"], &src, &dst);
    assert_ok(&out);
    assert_eq!(dst.psql("shop", "SELECT c FROM items WHERE id = 101"), "5");
    verify(&plan, &src, &dst);
}

/// Issue 11 item 4: DDL committed on the source between the schema dump and the slot's
/// snapshot. `PGMOVE_TEST_PAUSE` holds apply right after the schema dump; the source gains a
/// column and fills it; apply goes on. The column must hold the source's values on the target
/// (before the dump was taken in the slot's snapshot, it held only its default).
#[test]
fn ddl_right_after_the_schema_dump_arrives_with_its_values() {
    let (src, dst) = pair();
    let dir = tempfile::tempdir().expect("tempdir");
    let plan = write_plan(dir.path(), "ddlsnap", &src, &dst, "replicate");
    let log = dir.path().join("apply.log");
    // The dry run lists the slot before the dump, and the dump inside its snapshot.
    let out = run(
        &["apply", plan.to_str().expect("utf8"), "--dry-run"],
        &src,
        &dst,
    );
    assert_ok(&out);
    let listing = String::from_utf8_lossy(&out.stdout).to_string();
    let slot = listing
        .find("CREATE_REPLICATION_SLOT")
        .unwrap_or_else(|| panic!("no slot in the dry run: {listing}"));
    let dump = listing
        .find("--snapshot=<exported>")
        .unwrap_or_else(|| panic!("no snapshot dump in the dry run: {listing}"));
    assert!(slot < dump, "{listing}");
    let resume = dir.path().join("resume");
    let point = "copy-cdc-schema-dumped";
    let mut cmd = online::pgmove(&online::apply_args(&plan), &src, &dst);
    cmd.env("PGMOVE_TEST_PAUSE", point)
        .env("PGMOVE_TEST_RESUME_FILE", &resume);
    let mut child = online::spawn_logged(cmd, &log);
    let deadline = Instant::now() + Duration::from_secs(120);
    while !read_log(&log).contains(&format!("test pause at {point}")) {
        online::check_running(&mut child, &log);
        assert!(
            Instant::now() < deadline,
            "apply did not reach {point}\n{}",
            read_log(&log)
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    src.psql(
        "shop",
        "ALTER TABLE items ADD COLUMN qty int DEFAULT 0;
         UPDATE items SET qty = id * 10;
         INSERT INTO items VALUES (101, 'new', 1010);",
    );
    std::fs::write(&resume, b"go").expect("resume file");
    wait_loaded(&dst, "ddlsnap", &mut child, &log);
    wait_caught_up(&src, &dst, "ddlsnap", &mut child, &log);
    assert_eq!(columns(&dst, "items"), "id,v,qty");
    assert_eq!(
        dst.psql(
            "shop",
            "SELECT count(*) || '/' || sum(qty) FROM items WHERE qty = id * 10"
        ),
        src.psql(
            "shop",
            "SELECT count(*) || '/' || sum(qty) FROM items WHERE qty = id * 10"
        ),
    );
    assert_eq!(
        dst.psql("shop", "SELECT count(*) FROM items WHERE qty = 0"),
        "0"
    );
    terminate(&mut child, &log);
    verify(&plan, &src, &dst);
}
