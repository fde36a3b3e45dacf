//! A replication slot the source invalidated (`max_slot_wal_keep_size` exceeded while apply
//! was stopped, `wal_status = 'lost'`), against real servers: `status` exits 4, apply exits 1
//! at once (not retried), cutover refuses; each says the slot is lost, why (the setting and
//! its value) and the way out (cleanup, an empty target, apply), and that way out works.

use crate::support;

use std::time::{Duration, Instant};

use support::online::{pgmove, start_apply, stop, text, DB};
use support::{online, Cluster, Options};

/// Says what the explanation of a lost slot must say, for the plan file `file`.
fn assert_explains_the_loss(out: &str, file: &str) {
    assert!(out.contains("is lost"), "{out}");
    assert!(out.contains("wal_status = 'lost'"), "{out}");
    assert!(out.contains("max_slot_wal_keep_size = 1MB"), "{out}");
    assert!(
        out.contains(&format!("`pgmove cleanup {file}`, then on the target")),
        "{out}"
    );
    assert!(
        out.contains("`DROP DATABASE \"shop\"; CREATE DATABASE \"shop\";`"),
        "{out}"
    );
    assert!(
        out.contains(&format!("then `pgmove apply {file}`")),
        "{out}"
    );
    assert!(!out.contains("retains ? of WAL"), "{out}");
    assert!(!out.contains("replication goes on"), "{out}");
}

#[test]
fn a_lost_slot_stops_status_apply_and_cutover_with_the_way_out() {
    let dir = tempfile::tempdir().expect("tempdir");
    let src = Cluster::start(Options::logical().set("max_slot_wal_keep_size", "1MB"));
    let dst = Cluster::start(Options::default());
    src.create_db(DB);
    dst.create_db(DB);
    src.psql(
        DB,
        "CREATE TABLE orders (id serial PRIMARY KEY, note text);
         INSERT INTO orders (note) SELECT 'before' FROM generate_series(1, 100);
         CREATE TABLE filler (id bigserial PRIMARY KEY, pad text);",
    );
    let plan = online::write_plan(dir.path(), "lost", &src, &dst, "");
    let file = plan.to_str().expect("utf8");
    let log = dir.path().join("apply.log");
    let mut apply = start_apply(&plan, &src, &dst, &log);
    online::wait_caught_up(&src, &dst, "lost", &mut apply, &log);
    stop(&mut apply);

    // WAL written and checkpointed while nothing reads the slot, until the source drops it.
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let status = src.psql(
            DB,
            "SELECT wal_status FROM pg_replication_slots WHERE slot_name LIKE '%lost%'",
        );
        if status == "lost" {
            break;
        }
        assert!(Instant::now() < deadline, "the slot is still {status}");
        src.psql(
            DB,
            "INSERT INTO filler (pad) SELECT repeat(md5(g::text), 30) FROM generate_series(1, 3000) g",
        );
        src.psql(DB, "SELECT pg_switch_wal()");
        src.psql(DB, "CHECKPOINT");
    }

    // status: exit 4, the loss explained (text and JSON).
    let out = pgmove(&["status", file], &src, &dst)
        .output()
        .expect("status");
    assert_eq!(out.status.code(), Some(4), "{}", text(&out));
    let t = text(&out);
    assert!(t.contains("LOST"), "{t}");
    assert_explains_the_loss(&t, file);
    let out = pgmove(&["status", file, "--format", "json"], &src, &dst)
        .output()
        .expect("status");
    assert_eq!(out.status.code(), Some(4), "{}", text(&out));
    let j: serde_json::Value =
        serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("{e}: {}", text(&out)));
    assert_eq!(j["slot"]["wal_status"], "lost", "{j}");
    assert!(j["slot"]["lost"].is_string(), "{j}");

    // apply: exit 1 at once, not retried.
    let t0 = Instant::now();
    let out = pgmove(&["apply", file, "--yes"], &src, &dst)
        .output()
        .expect("apply");
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(
        t0.elapsed() < Duration::from_secs(20),
        "apply took {:?}: retried?\n{}",
        t0.elapsed(),
        text(&out)
    );
    assert!(!text(&out).contains("retrying"), "{}", text(&out));
    assert_explains_the_loss(&text(&out), file);

    // cutover: refuses (exit 2), nothing fenced.
    let out = pgmove(&["cutover", file, "--yes"], &src, &dst)
        .output()
        .expect("cutover");
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert_explains_the_loss(&text(&out), file);
    let out = src.psql_output(DB, "INSERT INTO orders (note) VALUES ('still writable')");
    assert!(out.status.success(), "{}", text(&out));

    // The way out it gives works: cleanup, then apply loads again with a new slot.
    src.psql(DB, "ALTER SYSTEM SET max_slot_wal_keep_size = -1");
    src.psql(DB, "SELECT pg_reload_conf()");
    let out = pgmove(&["cleanup", file], &src, &dst)
        .output()
        .expect("cleanup");
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    dst.psql("postgres", "DROP DATABASE shop");
    dst.psql("postgres", "CREATE DATABASE shop");
    let out = pgmove(
        &["apply", file, "--yes", "--exit-when-caught-up"],
        &src,
        &dst,
    )
    .output()
    .expect("apply");
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert_eq!(
        dst.psql(
            DB,
            "SELECT count(*) FROM orders WHERE note = 'still writable'"
        ),
        "1"
    );
    let out = pgmove(&["status", file], &src, &dst)
        .output()
        .expect("status");
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
}
