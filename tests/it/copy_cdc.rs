//! Strategy copy-cdc, the full load, against real servers.

use crate::support;

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use support::online::{assert_ok, pair, pgmove, run, PlanYaml};
use support::Cluster;

fn write_plan(dir: &Path, name: &str, src: &Cluster, dst: &Cluster, extra: &str) -> PathBuf {
    PlanYaml {
        jobs: None,
        extra,
        ..PlanYaml::default()
    }
    .write(dir, name, src, dst)
}

#[test]
fn every_type_partitioned_and_postgis_tables_copy_to_an_identical_target() {
    let (src, dst) = pair();
    src.psql("shop", include_str!("../fixtures/many_types.sql"));
    // A table large enough to be split into ctid ranges.
    src.psql(
        "shop",
        "CREATE TABLE public.wide (id bigint PRIMARY KEY, a text, b numeric, c jsonb);
         INSERT INTO public.wide SELECT g, repeat(md5(g::text), 4), g / 7.0, jsonb_build_object('g', g) FROM generate_series(1, 60000) g;",
    );
    let dir = tempfile::tempdir().expect("tempdir");
    let plan = write_plan(
        dir.path(),
        "types",
        &src,
        &dst,
        "jobs: 3\nsplit_tables_larger_than: 2MB\ncdc:\n  tables_without_key: insert-only\n",
    );
    let p = plan.to_str().expect("utf8");
    let out = run(&["apply", p, "--dry-run"], &src, &dst);
    assert_ok(&out);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains(
            "CREATE_REPLICATION_SLOT \"pgmove_types\" LOGICAL pgoutput (SNAPSHOT 'export')"
        ),
        "{text}"
    );
    assert!(
        text.contains("WHERE ctid >= '(0,0)'::tid AND ctid <"),
        "wide is split: {text}"
    );
    assert_eq!(
        dst.psql(
            "shop",
            "SELECT count(*) FROM pg_tables WHERE schemaname = 'public'"
        ),
        "0",
        "dry run wrote"
    );

    let out = run(
        &["apply", p, "--yes", "--stop-after-load", "--format", "json"],
        &src,
        &dst,
    );
    assert_ok(&out);
    // With --format json the load's summary is JSON too.
    let summary: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json summary");
    assert_eq!(summary["strategy"], "copy-cdc", "{summary:#}");
    assert_eq!(summary["stopped_after_load"], true, "{summary:#}");
    // The summary names the pg_dump (of the schema) and pg_restore it ran.
    let clients: Vec<&str> = summary["clients"]
        .as_array()
        .map(|a| a.iter().filter_map(|t| t["name"].as_str()).collect())
        .unwrap_or_default();
    assert_eq!(clients, ["pg_dump", "pg_restore"], "{summary:#}");
    assert!(
        summary["outcome"]["rows"].as_u64().unwrap_or(0) > 60000,
        "{summary:#}"
    );
    let out = run(&["verify", p], &src, &dst);
    assert_ok(&out);
    assert!(String::from_utf8_lossy(&out.stdout).contains("IDENTICAL"));
    // The split table was copied in several chunks, all from one snapshot.
    let chunks = dst.psql(
        "shop",
        "SELECT count(*), count(DISTINCT snapshot_lsn), sum(rows) FROM pgmove.copy_progress WHERE table_name = 'wide'",
    );
    let parts: Vec<&str> = chunks.split('|').collect();
    assert!(parts[0].parse::<i32>().expect("count") > 1, "{chunks}");
    assert_eq!(parts[1], "1");
    assert_eq!(parts[2], "60000");
    // Partition leaves got the rows, the parent none of its own.
    assert_eq!(dst.psql("shop", "SELECT count(*) FROM events"), "3000");
    assert_eq!(
        dst.psql(
            "shop",
            "SELECT count(*) FROM pgmove.copy_progress WHERE table_name IN ('events', 'events_eu')"
        ),
        "0"
    );
    // No slot is left behind on the source.
    assert_eq!(
        src.psql("shop", "SELECT count(*) FROM pg_replication_slots"),
        "0"
    );
}

#[test]
fn a_writer_during_the_copy_leaves_the_target_at_one_consistent_snapshot() {
    let (src, dst) = pair();
    // Every transaction of the writer appends log row n and sets the counter to n: in any
    // consistent snapshot, the log holds exactly rows 1..counter.
    src.psql(
        "shop",
        "CREATE TABLE log (n int PRIMARY KEY, pad text);
         CREATE TABLE counter (id int PRIMARY KEY, n int NOT NULL);
         INSERT INTO counter VALUES (1, 0);
         CREATE TABLE filler (id int PRIMARY KEY, v text);
         INSERT INTO filler SELECT g, repeat('x', 200) FROM generate_series(1, 100000) g;",
    );
    let dir = tempfile::tempdir().expect("tempdir");
    let plan = write_plan(dir.path(), "writer", &src, &dst, "jobs: 2\n");
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let writer = {
        let stop = stop.clone();
        let port = src.port;
        let pw = src.password.clone();
        std::thread::spawn(move || {
            let rt = tokio::runtime::Runtime::new().expect("runtime");
            rt.block_on(async move {
                let (client, conn) = tokio_postgres::connect(
                    &format!("host=127.0.0.1 port={port} user=postgres password={pw} dbname=shop"),
                    tokio_postgres::NoTls,
                )
                .await
                .expect("writer connects");
                tokio::spawn(conn);
                let mut n = 0;
                while !stop.load(std::sync::atomic::Ordering::Relaxed) && n < 200_000 {
                    n += 1;
                    client
                        .batch_execute(&format!(
                            "BEGIN; INSERT INTO log VALUES ({n}, repeat('p', 100)); UPDATE counter SET n = {n}; COMMIT;"
                        ))
                        .await
                        .expect("writer");
                }
                n
            })
        })
    };
    std::thread::sleep(Duration::from_millis(300));
    let out = run(
        &[
            "apply",
            plan.to_str().expect("utf8"),
            "--yes",
            "--stop-after-load",
        ],
        &src,
        &dst,
    );
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let written = writer.join().expect("writer thread");
    assert_ok(&out);
    let counter: i64 = dst
        .psql("shop", "SELECT n FROM counter")
        .parse()
        .expect("int");
    let (rows, max): (i64, i64) = {
        let s = dst.psql("shop", "SELECT count(*), coalesce(max(n), 0) FROM log");
        let (a, b) = s.split_once('|').expect("two values");
        (a.parse().expect("int"), b.parse().expect("int"))
    };
    assert!(
        counter > 0,
        "the writer had not started before the snapshot"
    );
    assert!(
        (counter as usize) < written as usize,
        "the snapshot came after the writer stopped"
    );
    assert_eq!(
        rows, counter,
        "log rows and counter disagree: not one snapshot"
    );
    assert_eq!(max, counter);
    assert_eq!(dst.psql("shop", "SELECT count(*) FROM filler"), "100000");
}

fn progress_rows(c: &Cluster) -> Vec<String> {
    c.psql(
        "shop",
        "SELECT table_name || ' ' || chunk || ' ' || finished_at FROM pgmove.copy_progress ORDER BY 1",
    )
    .lines()
    .map(str::to_string)
    .collect()
}

#[test]
fn sigkill_mid_copy_then_rerun_is_identical_and_finished_tables_are_not_copied_twice() {
    let (src, dst) = pair();
    let mut sql = String::new();
    for i in 0..20 {
        sql.push_str(&format!(
            "CREATE TABLE t{i:02} (id int PRIMARY KEY, v text); INSERT INTO t{i:02} SELECT g, md5(g::text) FROM generate_series(1, 20000) g;\n"
        ));
    }
    src.psql("shop", &sql);
    let dir = tempfile::tempdir().expect("tempdir");
    let plan = write_plan(dir.path(), "kill", &src, &dst, "jobs: 1\nindex_jobs: 1\n");
    let p = plan.to_str().expect("utf8");
    let mut child = pgmove(&["apply", p, "--yes", "--stop-after-load"], &src, &dst)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start apply");
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        assert!(Instant::now() < deadline, "copy never started");
        let out = dst.psql_output("shop", "SELECT count(*) FROM pgmove.copy_progress");
        let n: usize = String::from_utf8_lossy(&out.stdout)
            .trim()
            .parse()
            .unwrap_or(0);
        if n >= 4 {
            break;
        }
        if let Ok(Some(status)) = child.try_wait() {
            panic!("apply ended before it could be killed: {status}");
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    child.kill().expect("SIGKILL");
    let _ = child.wait();
    let before = progress_rows(&dst);
    assert!(
        before.len() < 20,
        "killed too late: {} chunks done",
        before.len()
    );
    // The killed run's slot stays; the rerun takes a fresh snapshot for the rest.
    assert_eq!(
        src.psql(
            "shop",
            "SELECT count(*) FROM pg_replication_slots WHERE slot_name = 'pgmove_kill'"
        ),
        "1"
    );

    // status shows where the killed run stopped, from the target's pgmove schema.
    let out = run(&["status", p, "--format", "json"], &src, &dst);
    assert_ok(&out);
    let st: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json");
    assert_eq!(st["phase"], "copy", "{st:#}");
    assert_eq!(st["strategy"], "copy-cdc");
    assert_eq!(st["tables"].as_array().expect("tables").len(), before.len());
    assert_eq!(st["slot"]["name"], "pgmove_kill");
    assert!(
        st["slot"]["retained_wal_bytes"].as_u64().is_some(),
        "{st:#}"
    );
    let text = run(&["status", p], &src, &dst);
    assert!(String::from_utf8_lossy(&text.stdout).contains("plan kill: copy (strategy copy-cdc)"));

    let out = run(&["apply", p, "--yes", "--stop-after-load"], &src, &dst);
    assert_ok(&out);
    let summary = String::from_utf8_lossy(&out.stdout);
    assert!(
        summary.contains(" copied, with pg_dump ") && summary.contains(" and pg_restore "),
        "the summary names the clients: {summary}"
    );
    let after = progress_rows(&dst);
    for row in &before {
        assert!(after.contains(row), "chunk copied again: {row}");
    }
    assert_eq!(after.len(), 20);
    let out = run(&["verify", p], &src, &dst);
    assert_ok(&out);
    assert_eq!(
        src.psql("shop", "SELECT count(*) FROM pg_replication_slots"),
        "0"
    );
}
