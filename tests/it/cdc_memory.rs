//! Change capture keeps its memory under `cdc.memory_limit` whatever the size or number of the
//! source's transactions: a 2M-row single-transaction insert, four concurrent 500k-row
//! transactions (streamed in progress by the source, pgoutput protocol 2), and a 1M-row
//! transaction the source sends whole at its commit (not streamed). Each run measures the
//! peak resident memory of the `pgmove apply` process (VmHWM) and checks the target holds
//! exactly the source's rows.

use crate::support;

use std::process::Child;
use std::time::{Duration, Instant};

use support::online::{self, read_log, terminate, wait_loaded, write_plan};
use support::{Cluster, Options};

/// The plan's `cdc.memory_limit`, in MB.
const LIMIT_MB: u64 = 64;

/// What the process takes besides the changes it holds (code, runtime, connections, the
/// replication driver's buffers): the peak must stay under the limit plus this.
const BASE_MB: u64 = 64;

/// Peak resident set of a running process, in kB (`VmHWM` of /proc/PID/status).
fn peak_rss_kb(child: &Child) -> u64 {
    let status =
        std::fs::read_to_string(format!("/proc/{}/status", child.id())).expect("/proc status");
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("VmHWM in /proc/PID/status")
}

/// Transactions the source streamed to the plan's slot while in progress, so far.
fn stream_txns(src: &Cluster, plan: &str) -> i64 {
    src.psql(
        "shop",
        &format!(
            "SELECT coalesce((SELECT stream_txns FROM pg_stat_replication_slots WHERE slot_name = 'pgmove_{plan}'), 0)"
        ),
    )
    .trim()
    .parse()
    .expect("stream_txns")
}

struct Run {
    src: Cluster,
    dst: Cluster,
    _dir: tempfile::TempDir,
    name: &'static str,
    log: std::path::PathBuf,
    child: Child,
}

/// A source (with `source_opts`), a target, table `items` with 100 rows, and `pgmove apply`
/// with `cdc.memory_limit` [`LIMIT_MB`] past its full load.
fn start(name: &'static str, source_opts: Options) -> Run {
    let src = Cluster::start(source_opts);
    let dst = Cluster::start(Options::default());
    src.create_db("shop");
    dst.create_db("shop");
    src.psql(
        "shop",
        "CREATE TABLE items (id int PRIMARY KEY, v text NOT NULL, n int);
         INSERT INTO items SELECT g, 'loaded', g FROM generate_series(1, 100) g;",
    );
    let dir = tempfile::tempdir().expect("tempdir");
    let plan = write_plan(
        dir.path(),
        name,
        &src,
        &dst,
        &format!("cdc:\n  memory_limit: {LIMIT_MB}MB\n"),
    );
    let log = dir.path().join("apply.log");
    let mut cmd = online::pgmove(&online::apply_args(&plan), &src, &dst);
    cmd.env("PGMOVE_LOG", "pgmove=debug");
    let mut child = online::spawn_logged(cmd, &log);
    wait_loaded(&dst, name, &mut child, &log);
    eprintln!(
        "{name}: pgmove apply after its full load: peak RSS {} MB",
        peak_rss_kb(&child) / 1024
    );
    Run {
        src,
        dst,
        _dir: dir,
        name,
        log,
        child,
    }
}

impl Run {
    /// Waits until the target applied everything, then checks the peak memory and the rows,
    /// and stops apply. Returns its log.
    fn finish(mut self, what: &str) -> String {
        online::switch_wal(&self.src);
        online::wait_caught_up_within(
            &self.src,
            &self.dst,
            self.name,
            &mut self.child,
            &self.log,
            900,
        );
        let peak_mb = peak_rss_kb(&self.child) / 1024;
        terminate(&mut self.child, &self.log);
        eprintln!("{what}: peak RSS of pgmove apply {peak_mb} MB (cdc.memory_limit {LIMIT_MB}MB)");
        let sql = "SELECT count(*), sum(n), md5(string_agg(id || v, ',' ORDER BY id)) FROM items";
        assert_eq!(self.dst.psql("shop", sql), self.src.psql("shop", sql));
        assert!(
            peak_mb < LIMIT_MB + BASE_MB,
            "{what}: pgmove apply peaked at {peak_mb} MB, over the {LIMIT_MB}MB limit plus {BASE_MB} MB\n{}",
            tail(&read_log(&self.log))
        );
        read_log(&self.log)
    }
}

fn tail(log: &str) -> String {
    let lines: Vec<&str> = log.lines().collect();
    lines[lines.len().saturating_sub(40)..].join("\n")
}

/// Runs `sql` on the source in a session of its own (psql), from `n` threads at once.
fn concurrently(src: &Cluster, scripts: &[String]) {
    std::thread::scope(|scope| {
        let handles: Vec<_> = scripts
            .iter()
            .map(|sql| scope.spawn(move || src.psql("shop", sql)))
            .collect();
        for h in handles {
            h.join().expect("source transaction");
        }
    });
}

#[test]
fn large_and_concurrent_streamed_transactions_stay_under_the_memory_limit() {
    // Every transaction of more than about 100k rows is streamed in progress.
    let mut run = start(
        "memstream",
        Options::logical().set("logical_decoding_work_mem", "16MB"),
    );
    let before = stream_txns(&run.src, run.name);
    run.src.psql(
        "shop",
        "INSERT INTO items SELECT g, md5(g::text), g FROM generate_series(1001, 2001000) g",
    );
    // Four large transactions in progress at once, their changes interleaved in the stream.
    let scripts: Vec<String> = (0..4)
        .map(|i| {
            let from = 3_000_001 + i * 1_000_000;
            format!(
                "BEGIN;
                 INSERT INTO items SELECT g, md5(g::text), g FROM generate_series({from}, {}) g;
                 SELECT pg_sleep(1);
                 INSERT INTO items SELECT g, md5(g::text), -g FROM generate_series({}, {}) g;
                 UPDATE items SET n = n + 1 WHERE id BETWEEN {from} AND {};
                 COMMIT;",
                from + 249_999,
                from + 250_000,
                from + 499_999,
                from + 999
            )
        })
        .collect();
    concurrently(&run.src, &scripts);
    // The slot's statistics reach pg_stat_replication_slots a little later: once the source
    // has decoded 4M rows, which on a loaded machine, with the other tests of the one test
    // binary beside this one, took over 120 s.
    let deadline = Instant::now() + Duration::from_secs(300);
    loop {
        online::check_running(&mut run.child, &run.log);
        let streamed = stream_txns(&run.src, run.name) - before;
        if streamed >= 5 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the source streamed {streamed} transactions in progress, not the 5 large ones"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    assert_eq!(
        run.src.psql("shop", "SELECT count(*) FROM items"),
        "4000100"
    );
    let log = run.finish("2M-row transaction and 4 concurrent 500k-row transactions (streamed)");
    assert!(log.contains("streamed transaction spilled to a temporary file"));
}

#[test]
fn a_large_transaction_sent_whole_at_commit_stays_under_the_memory_limit() {
    // The source never streams in progress below logical_decoding_work_mem: the transaction
    // reaches pgmove whole after its commit (as with protocol 1).
    let mut run = start(
        "memwhole",
        Options::logical().set("logical_decoding_work_mem", "2GB"),
    );
    run.src.psql(
        "shop",
        "BEGIN;
         INSERT INTO items SELECT g, md5(g::text), g FROM generate_series(1001, 1001000) g;
         UPDATE items SET v = 'u' || v WHERE id <= 200000;
         DELETE FROM items WHERE id % 10 = 0 AND id <= 300000;
         COMMIT;",
    );
    online::check_running(&mut run.child, &run.log);
    assert_eq!(
        stream_txns(&run.src, run.name),
        0,
        "the source streamed the transaction in progress"
    );
    let log = run.finish("1M-row transaction sent whole at its commit");
    assert!(
        log.contains("large source transaction: applied in pieces"),
        "{}",
        tail(&log)
    );
}

#[test]
fn sigkill_while_a_transaction_is_applied_in_pieces_applies_it_exactly_once() {
    let mut run = start(
        "memkill",
        Options::logical().set("logical_decoding_work_mem", "2GB"),
    );
    run.src.psql(
        "shop",
        "INSERT INTO items SELECT g, md5(g::text), g FROM generate_series(1001, 1001000) g",
    );
    // Pieces of it are in an open target transaction (a backend holding an xid), not all.
    let deadline = Instant::now() + Duration::from_secs(300);
    let writing = "SELECT count(*) FROM pg_stat_activity WHERE datname = 'shop' AND backend_xid IS NOT NULL AND pid <> pg_backend_pid()";
    while run.dst.psql("shop", writing) == "0" {
        online::check_running(&mut run.child, &run.log);
        assert!(Instant::now() < deadline, "{}", tail(&read_log(&run.log)));
        std::thread::sleep(Duration::from_millis(20));
    }
    std::thread::sleep(Duration::from_millis(500));
    run.child.kill().expect("SIGKILL");
    let _ = run.child.wait();
    assert!(
        read_log(&run.log).contains("large source transaction: applied in pieces"),
        "{}",
        tail(&read_log(&run.log))
    );
    online::slot_confirmed_not_past_target(&run.src, &run.dst, run.name);
    assert_eq!(
        run.dst.psql("shop", "SELECT count(*) FROM items"),
        "100",
        "part of the transaction stayed on the target"
    );
    let log = run.log.with_file_name("apply-again.log");
    let mut cmd = online::pgmove(
        &online::apply_args(&run._dir.path().join("memkill.yaml")),
        &run.src,
        &run.dst,
    );
    cmd.env("PGMOVE_LOG", "pgmove=debug");
    run.child = online::spawn_logged(cmd, &log);
    run.log = log;
    run.finish("1M-row transaction applied in pieces, killed and applied again");
}
