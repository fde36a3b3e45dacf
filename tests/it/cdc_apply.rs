//! Change capture (copy-cdc after the full load) against real servers: every kind of change
//! arrives exactly, and a killed apply resumes without loss or duplicates.

use crate::support;

use std::time::Duration;

use support::online::{
    pair, slot_confirmed_not_past_target, start_apply, sync_sequences, terminate, verify,
    wait_caught_up, wait_loaded, write_plan, INSERT_ONLY,
};

#[test]
fn every_kind_of_change_arrives_exactly() {
    let (src, dst) = pair();
    src.psql("shop", include_str!("../fixtures/many_types.sql"));
    src.psql(
        "shop",
        "CREATE TABLE docs (id int PRIMARY KEY, title text, body text);
         INSERT INTO docs SELECT g, 't' || g, (SELECT string_agg(md5(random()::text), '') FROM generate_series(1, 200)) FROM generate_series(1, 20) g;
         CREATE TABLE dupes (a int, b text);
         ALTER TABLE dupes REPLICA IDENTITY FULL;
         INSERT INTO dupes VALUES (1, 'x'), (1, 'x'), (1, 'x'), (2, 'y');
         CREATE TABLE counters (id serial PRIMARY KEY, v int);
         INSERT INTO counters (v) SELECT g FROM generate_series(1, 10) g;
         CREATE TABLE big (id int PRIMARY KEY, v text);",
    );
    let dir = tempfile::tempdir().expect("tempdir");
    let plan = write_plan(dir.path(), "kinds", &src, &dst, INSERT_ONLY);
    let log = dir.path().join("apply.log");
    let mut child = start_apply(&plan, &src, &dst, &log);
    wait_loaded(&dst, "kinds", &mut child, &log);

    src.psql(
        "shop",
        "INSERT INTO docs VALUES (100, 'new', 'short');
         UPDATE docs SET title = 'retitled' WHERE id = 1;              -- body (TOASTed) unchanged
         UPDATE docs SET id = 200 WHERE id = 2;                        -- primary key update
         DELETE FROM docs WHERE id = 3;
         DELETE FROM dupes WHERE ctid = (SELECT ctid FROM dupes WHERE a = 1 LIMIT 1);  -- one of three
         UPDATE dupes SET b = 'z' WHERE a = 2;
         TRUNCATE counters RESTART IDENTITY;
         INSERT INTO counters (v) VALUES (42);
         INSERT INTO events VALUES (9001, 'eu', '2026-03-01', '{\"via\": \"parent\"}'), (9002, 'us', '2025-07-01', NULL);
         UPDATE events SET payload = '{\"moved\": true}' WHERE id = 9001;
         INSERT INTO big SELECT g, md5(g::text) FROM generate_series(1, 200000) g;   -- one transaction
         UPDATE every_type SET n_free = n_free * 2, f8 = -f8, tstz = '2030-01-01 12:34:56.789+02', m = 'ok',
                addr = ROW('Elm', 1), r = '[5,6)', ints = '{9,8}', texts = '{\"q\\\"x\"}', tsv = 'new:1',
                x = '<b/>', j = '{\"a\":   1}', jb = '{\"b\": [1, {\"c\": null}]}', b = '\\x0102', ip = '10.1.2.3', pt = '(9,9)', bits = B'1', money_col = 1.5
           WHERE id IN (1, 2);
         INSERT INTO every_type (id, n_free, tstz, m, ints) VALUES (10, 'NaN', 'infinity', 'sad', '{NULL}');
         DELETE FROM every_type WHERE id = 3;
         UPDATE places SET geom = ST_SetSRID(ST_MakePoint(13.4, 52.5), 4326) WHERE name = 'paris';
         INSERT INTO no_key VALUES (3, 'inserted');
         SELECT setval('invoice_no', 5000);",
    );
    wait_caught_up(&src, &dst, "kinds", &mut child, &log);
    terminate(&mut child, &log);

    assert_eq!(
        dst.psql(
            "shop",
            "SELECT title, length(body) > 1000 FROM docs WHERE id = 1"
        ),
        "retitled|t"
    );
    assert_eq!(
        dst.psql("shop", "SELECT count(*) FROM docs WHERE id IN (2, 3)"),
        "0"
    );
    assert_eq!(
        dst.psql("shop", "SELECT count(*) FROM dupes WHERE a = 1"),
        "2"
    );
    assert_eq!(dst.psql("shop", "SELECT id, v FROM counters"), "1|42");
    assert_eq!(
        dst.psql(
            "shop",
            "SELECT count(*) FROM ONLY events_eu_2026 WHERE id = 9001"
        ),
        "1"
    );
    assert_eq!(dst.psql("shop", "SELECT count(*) FROM big"), "200000");
    // Sequences are set at cutover, not replicated (logical decoding does not carry them).
    sync_sequences(&src, &dst);
    verify(&plan, &src, &dst);
}

#[test]
fn sigkill_during_change_capture_resumes_without_loss_or_duplicates() {
    let (src, dst) = pair();
    src.psql(
        "shop",
        "CREATE TABLE acct (id int PRIMARY KEY, balance bigint NOT NULL);
         INSERT INTO acct SELECT g, 1000 FROM generate_series(1, 1000) g;
         CREATE TABLE ledger (n bigserial PRIMARY KEY, id int, delta int);",
    );
    let dir = tempfile::tempdir().expect("tempdir");
    let plan = write_plan(dir.path(), "killcdc", &src, &dst, INSERT_ONLY);
    let log = dir.path().join("apply.log");
    let mut child = start_apply(&plan, &src, &dst, &log);
    wait_loaded(&dst, "killcdc", &mut child, &log);

    // A writer: transfers that keep the total constant, each with two ledger rows.
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let writer = {
        let stop = stop.clone();
        let (port, pw) = (src.port, src.password.clone());
        std::thread::spawn(move || {
            let rt = tokio::runtime::Runtime::new().expect("rt");
            rt.block_on(async move {
                let (c, conn) = tokio_postgres::connect(
                    &format!("host=127.0.0.1 port={port} user=postgres password={pw} dbname=shop"),
                    tokio_postgres::NoTls,
                )
                .await
                .expect("connect");
                tokio::spawn(conn);
                let mut i: i64 = 0;
                while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                    i += 1;
                    let (a, b) = (1 + (i * 7) % 1000, 1 + (i * 13) % 1000);
                    c.batch_execute(&format!(
                        "BEGIN; UPDATE acct SET balance = balance - 5 WHERE id = {a}; UPDATE acct SET balance = balance + 5 WHERE id = {b};
                         INSERT INTO ledger (id, delta) VALUES ({a}, -5), ({b}, 5); COMMIT;"
                    ))
                    .await
                    .expect("transfer");
                }
                i
            })
        })
    };
    for round in 0..3 {
        std::thread::sleep(Duration::from_millis(1500));
        child.kill().expect("SIGKILL");
        let _ = child.wait();
        slot_confirmed_not_past_target(&src, &dst, "killcdc");
        let log_r = dir.path().join(format!("apply{round}.log"));
        child = start_apply(&plan, &src, &dst, &log_r);
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let transfers = writer.join().expect("writer");
    assert!(transfers > 50, "writer made only {transfers} transfers");
    let last_log = dir.path().join("apply2.log");
    wait_caught_up(&src, &dst, "killcdc", &mut child, &last_log);
    terminate(&mut child, &last_log);
    // Exactly once: every ledger row once, balances conserved and equal.
    assert_eq!(
        dst.psql(
            "shop",
            "SELECT count(*), count(DISTINCT n), sum(delta) FROM ledger"
        ),
        src.psql(
            "shop",
            "SELECT count(*), count(DISTINCT n), sum(delta) FROM ledger"
        )
    );
    assert_eq!(dst.psql("shop", "SELECT sum(balance) FROM acct"), "1000000");
    sync_sequences(&src, &dst);
    verify(&plan, &src, &dst);
}

#[test]
fn keyless_tables_get_replica_identity_full_when_the_plan_says_so() {
    let (src, dst) = pair();
    let dir = tempfile::tempdir().expect("tempdir");
    src.psql(
        "shop",
        "CREATE TABLE keyless (a int, b text);
         INSERT INTO keyless VALUES (1, 'one'), (2, 'two'), (2, 'two'), (3, 'three');
         CREATE TABLE keyed (id int PRIMARY KEY, v text);
         INSERT INTO keyed VALUES (1, 'x');",
    );
    let plan = write_plan(
        dir.path(),
        "rif",
        &src,
        &dst,
        "cdc:\n  tables_without_key: replica-identity-full\n",
    );
    let out = support::online::run(
        &["apply", plan.to_str().expect("utf8"), "--dry-run"],
        &src,
        &dst,
    );
    support::online::assert_ok(&out);
    assert!(
        String::from_utf8_lossy(&out.stdout)
            .contains("ALTER TABLE \"public\".\"keyless\" REPLICA IDENTITY FULL;"),
        "{}",
        support::online::text(&out)
    );
    let log = dir.path().join("apply.log");
    let mut apply = start_apply(&plan, &src, &dst, &log);
    wait_loaded(&dst, "rif", &mut apply, &log);
    assert_eq!(
        src.psql(
            "shop",
            "SELECT relreplident FROM pg_class WHERE relname = 'keyless'"
        ),
        "f"
    );
    // Updates and deletes of the keyless table replicate, one row each even among duplicates.
    src.psql(
        "shop",
        "UPDATE keyless SET b = 'uno' WHERE a = 1;
         DELETE FROM keyless WHERE ctid = (SELECT min(ctid) FROM keyless WHERE a = 2);
         INSERT INTO keyless VALUES (4, 'four');
         UPDATE keyed SET v = 'y';",
    );
    wait_caught_up(&src, &dst, "rif", &mut apply, &log);
    assert_eq!(
        dst.psql(
            "shop",
            "SELECT string_agg(a || b, ',' ORDER BY a, b) FROM keyless"
        ),
        "1uno,2two,3three,4four"
    );
    verify(&plan, &src, &dst);
    terminate(&mut apply, &log);
}
