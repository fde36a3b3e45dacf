//! Change capture survives dropped connections: a broken session to either server, or a
//! restarted server, is retried with backoff and resumes from `pgmove.progress` without loss or
//! duplicates; a permanent failure still ends apply at once.

use crate::support;

use std::path::{Path, PathBuf};
use std::process::Child;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use support::online::{
    check_running, pgmove, read_log, start_apply, sync_sequences, terminate, wait_caught_up,
    write_plan, INSERT_ONLY,
};
use support::{online, Cluster};

/// What apply logs when it retries.
const RETRY_LOG: &str = "reconnecting and resuming from pgmove.progress";

/// A running `pgmove apply --yes` and its stderr log.
struct Apply {
    child: Child,
    log: PathBuf,
}

impl Apply {
    fn start(plan: &Path, src: &Cluster, dst: &Cluster, log: PathBuf) -> Apply {
        let child = start_apply(plan, src, dst, &log);
        Apply { child, log }
    }

    fn log(&self) -> String {
        read_log(&self.log)
    }

    /// Panics (with the log) when apply has ended.
    fn assert_running(&mut self) {
        check_running(&mut self.child, &self.log);
    }

    /// How many times apply retried so far.
    fn retries(&self) -> usize {
        self.log().matches(RETRY_LOG).count()
    }

    /// Polls `ready` every 100 ms until it holds, while apply keeps running.
    fn wait_until(&mut self, what: &str, secs: u64, mut ready: impl FnMut() -> bool) {
        let deadline = Instant::now() + Duration::from_secs(secs);
        loop {
            if ready() {
                return;
            }
            self.assert_running();
            assert!(
                Instant::now() < deadline,
                "timed out waiting for {what}\n{}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// SIGTERM; apply must stop cleanly.
    fn terminate(mut self) {
        self.assert_running();
        terminate(&mut self.child, &self.log);
    }
}

impl Drop for Apply {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn pair() -> (Cluster, Cluster) {
    let (src, dst) = online::pair();
    src.psql(
        "shop",
        "CREATE TABLE acct (id int PRIMARY KEY, balance bigint NOT NULL);
         INSERT INTO acct SELECT g, 1000 FROM generate_series(1, 1000) g;
         CREATE TABLE ledger (n bigserial PRIMARY KEY, id int, delta int);
         CREATE TABLE notes (id int PRIMARY KEY, body text);
         INSERT INTO notes SELECT g, 'note ' || g FROM generate_series(1, 100) g;",
    );
    (src, dst)
}

/// The run's phase in `pgmove.runs` on the target.
fn phase(dst: &Cluster, plan: &str) -> String {
    let out = dst.psql_output(
        "shop",
        &format!("SELECT phase FROM pgmove.runs WHERE plan_name = '{plan}'"),
    );
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

/// Starts apply and waits until the full load is done and change capture applies changes.
fn start_replicating(dir: &Path, plan: &str, src: &Cluster, dst: &Cluster) -> (PathBuf, Apply) {
    let path = write_plan(dir, plan, src, dst, INSERT_ONLY);
    let mut apply = Apply::start(&path, src, dst, dir.join("apply.log"));
    apply.wait_until("the full load", 180, || {
        matches!(phase(dst, plan).as_str(), "loaded" | "replicating")
    });
    (path, apply)
}

/// Waits (up to 120 s) until apply committed its first progress row; on a timeout the panic
/// shows, besides apply's log, what both servers were doing (sessions, the slot, the writer's
/// count) and the end of their logs.
fn wait_first_applied(apply: &mut Apply, src: &Cluster, dst: &Cluster, plan: &str) {
    let deadline = Instant::now() + Duration::from_secs(120);
    while applied(dst, plan) == "0/0" {
        apply.assert_running();
        if Instant::now() >= deadline {
            let activity = "SELECT pid, backend_type, state, wait_event_type, wait_event, \
                 left(query, 120) FROM pg_stat_activity WHERE pid <> pg_backend_pid()";
            let tail = |c: &Cluster| {
                let log = c.log();
                let lines: Vec<&str> = log.lines().collect();
                lines[lines.len().saturating_sub(40)..].join("\n")
            };
            panic!(
                "timed out waiting for first changes applied\napply's log:\n{}\n\
                 source sessions:\n{}\nsource slot:\n{}\nsource rows in ledger: {}\n\
                 target sessions:\n{}\nsource server log:\n{}\ntarget server log:\n{}",
                apply.log(),
                src.psql("shop", activity),
                src.psql(
                    "shop",
                    "SELECT slot_name, active_pid, restart_lsn, confirmed_flush_lsn, \
                     pg_current_wal_lsn() FROM pg_replication_slots"
                ),
                src.psql("shop", "SELECT count(*) FROM ledger"),
                dst.psql("shop", activity),
                tail(src),
                tail(dst),
            );
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// `pgmove.progress.applied_lsn` of the plan, `0/0` before the first.
fn applied(dst: &Cluster, plan: &str) -> String {
    let out = dst.psql_output(
        "shop",
        &format!(
            "SELECT coalesce((SELECT applied_lsn FROM pgmove.progress WHERE plan_name = '{plan}'), '0/0')"
        ),
    );
    let s = String::from_utf8_lossy(&out.stdout).trim().to_string();
    if s.is_empty() {
        "0/0".to_string()
    } else {
        s
    }
}

/// Whether the target has applied past `lsn` (false while the target cannot be asked).
fn applied_past(dst: &Cluster, plan: &str, lsn: &str) -> bool {
    let out = dst.psql_output(
        "shop",
        &format!("SELECT applied_lsn > '{lsn}' FROM pgmove.progress WHERE plan_name = '{plan}'"),
    );
    String::from_utf8_lossy(&out.stdout).trim() == "t"
}

/// A writer on the source: transfers that keep the total balance constant, each with two
/// ledger rows. It reconnects when its connection breaks (a source restart).
struct Writer {
    stop: Arc<AtomicBool>,
    done: Arc<AtomicU64>,
    handle: std::thread::JoinHandle<u64>,
}

impl Writer {
    fn start(src: &Cluster) -> Writer {
        let stop = Arc::new(AtomicBool::new(false));
        let done = Arc::new(AtomicU64::new(0));
        let handle = {
            let stop = stop.clone();
            let counter = done.clone();
            let dsn = format!(
                "host=127.0.0.1 port={} user=postgres password={} dbname=shop",
                src.port, src.password
            );
            std::thread::spawn(move || {
                let rt = tokio::runtime::Runtime::new().expect("rt");
                rt.block_on(async move {
                    let mut done = 0u64;
                    let mut i: i64 = 0;
                    while !stop.load(Ordering::Relaxed) {
                        let Ok((c, conn)) = tokio_postgres::connect(&dsn, tokio_postgres::NoTls).await
                        else {
                            tokio::time::sleep(Duration::from_millis(100)).await;
                            continue;
                        };
                        tokio::spawn(conn);
                        while !stop.load(Ordering::Relaxed) {
                            i += 1;
                            let (a, b) = (1 + (i * 7) % 1000, 1 + (i * 13) % 1000);
                            let r = c
                                .batch_execute(&format!(
                                    "BEGIN; UPDATE acct SET balance = balance - 5 WHERE id = {a}; UPDATE acct SET balance = balance + 5 WHERE id = {b};
                                     INSERT INTO ledger (id, delta) VALUES ({a}, -5), ({b}, 5); COMMIT;"
                                ))
                                .await;
                            if r.is_err() {
                                break;
                            }
                            done += 1;
                            counter.store(done, Ordering::Relaxed);
                            tokio::time::sleep(Duration::from_millis(3)).await;
                        }
                    }
                    done
                })
            })
        };
        Writer { stop, done, handle }
    }

    /// Stops the writer once it made more than 50 transfers (at most 60 s from now: on a fast
    /// machine a test can get to its end sooner) and returns how many it made.
    fn stop(self) -> u64 {
        let deadline = Instant::now() + Duration::from_secs(60);
        while self.done.load(Ordering::Relaxed) <= 50 && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(20));
        }
        self.stop.store(true, Ordering::Relaxed);
        self.handle.join().expect("writer")
    }
}

/// Stops the writer, waits until the target caught up, checks that every change arrived
/// exactly once and that `pgmove verify` finds the two identical, all while apply still runs;
/// then stops apply with SIGTERM.
fn finish(
    plan_path: &Path,
    plan: &str,
    src: &Cluster,
    dst: &Cluster,
    writer: Writer,
    mut apply: Apply,
) {
    let transfers = writer.stop();
    assert!(transfers > 50, "writer made only {transfers} transfers");
    wait_caught_up(src, dst, plan, &mut apply.child, &apply.log);
    let ledger = "SELECT count(*), count(DISTINCT n), sum(delta) FROM ledger";
    assert_eq!(dst.psql("shop", ledger), src.psql("shop", ledger));
    assert_eq!(dst.psql("shop", "SELECT sum(balance) FROM acct"), "1000000");
    sync_sequences(src, dst);
    let out = pgmove(&["verify", plan_path.to_str().expect("utf8")], src, dst)
        .output()
        .expect("verify");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success() && stdout.contains("IDENTICAL"),
        "verify: {stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    apply.assert_running();
    apply.terminate();
}

/// The target sessions of the applier: the ones whose last statement was a batch (`BEGIN;
/// ...`, its text cut at track_activity_query_size) or wrote pgmove.progress or replicated rows.
const APPLIER_SESSIONS: &str = "FROM pg_stat_activity WHERE application_name = 'pgmove' \
     AND (query LIKE 'BEGIN;%' OR query LIKE 'INSERT INTO pgmove.progress%' \
          OR query LIKE '%\"acct\"%' OR query LIKE '%\"ledger\"%') \
     AND pid <> pg_backend_pid()";

#[test]
fn terminated_target_sessions_are_reconnected_and_apply_continues() {
    let (src, dst) = pair();
    let dir = tempfile::tempdir().expect("tempdir");
    let plan = "droptarget";
    let (path, mut apply) = start_replicating(dir.path(), plan, &src, &dst);
    let writer = Writer::start(&src);
    for round in 1..=3 {
        apply.wait_until("the applier's target session", 60, || {
            dst.psql("shop", &format!("SELECT count(*) {APPLIER_SESSIONS}")) != "0"
        });
        let before = applied(&dst, plan);
        let killed = dst.psql(
            "shop",
            &format!("SELECT count(pg_terminate_backend(pid)) {APPLIER_SESSIONS}"),
        );
        assert_ne!(killed, "0");
        apply.wait_until("a retry", 60, || apply_retries(&dir, round));
        apply.wait_until("progress after the reconnect", 120, || {
            applied_past(&dst, plan, &before)
        });
        std::thread::sleep(Duration::from_millis(500));
    }
    let log = apply.log();
    assert!(
        log.contains("target: "),
        "the retried error names the target: {log}"
    );
    finish(&path, plan, &src, &dst, writer, apply);
}

/// Whether apply's log (in `dir`) shows at least `n` retries.
/// How many change-capture sessions apply started so far (the first and each reconnect).
fn sessions_started(dir: &tempfile::TempDir) -> usize {
    std::fs::read_to_string(dir.path().join("apply.log"))
        .unwrap_or_default()
        .matches("change capture started")
        .count()
}

fn apply_retries(dir: &tempfile::TempDir, n: usize) -> bool {
    std::fs::read_to_string(dir.path().join("apply.log"))
        .unwrap_or_default()
        .matches(RETRY_LOG)
        .count()
        >= n
}

#[test]
fn a_terminated_walsender_is_reconnected_and_apply_continues() {
    let (src, dst) = pair();
    let dir = tempfile::tempdir().expect("tempdir");
    let plan = "dropsource";
    let (path, mut apply) = start_replicating(dir.path(), plan, &src, &dst);
    let writer = Writer::start(&src);
    let active = format!(
        "SELECT active_pid FROM pg_replication_slots WHERE slot_name = 'pgmove_{plan}' AND active_pid IS NOT NULL"
    );
    let mut last_pid = String::new();
    for round in 1..=3 {
        let mut pid = String::new();
        apply.wait_until("the walsender", 60, || {
            pid = src.psql("shop", &active);
            !pid.is_empty() && pid != last_pid
        });
        let before = applied(&dst, plan);
        assert_eq!(
            src.psql("shop", &format!("SELECT pg_terminate_backend({pid})")),
            "t"
        );
        last_pid = pid;
        apply.wait_until("a retry", 60, || apply_retries(&dir, round));
        apply.wait_until("progress after the reconnect", 120, || {
            applied_past(&dst, plan, &before)
        });
    }
    assert!(apply.log().contains("replication stream from slot"));
    finish(&path, plan, &src, &dst, writer, apply);
}

#[test]
fn apply_waits_for_a_restarted_target_and_continues() {
    let (src, dst) = pair();
    let dir = tempfile::tempdir().expect("tempdir");
    let plan = "restarttarget";
    let (path, mut apply) = start_replicating(dir.path(), plan, &src, &dst);
    let writer = Writer::start(&src);
    // Down for a while: apply retries several times (0.5 s, 1 s, 2 s...) until it is back.
    wait_first_applied(&mut apply, &src, &dst, plan);
    let before = applied(&dst, plan);
    dst.restart_after(Duration::from_secs(4));
    apply.assert_running();
    assert!(
        apply.retries() >= 2,
        "apply should have retried while the target was down:\n{}",
        apply.log()
    );
    apply.wait_until("progress after the restart", 120, || {
        applied_past(&dst, plan, &before)
    });
    // The progress above may have been committed just before the target went down: wait until
    // the reconnected session has applied something itself, or the next restart could fall
    // into apply's back-off sleep and go unnoticed (nothing to retry).
    apply.wait_until("the reconnected change capture", 120, || {
        sessions_started(&dir) >= 2
    });
    let reconnected = applied(&dst, plan);
    apply.wait_until("progress of the reconnected session", 120, || {
        applied_past(&dst, plan, &reconnected)
    });
    // A plain restart too.
    let retries = apply.retries();
    let before = applied(&dst, plan);
    dst.restart();
    apply.wait_until("a retry", 60, || apply_retries(&dir, retries + 1));
    apply.wait_until("progress after the second restart", 120, || {
        applied_past(&dst, plan, &before)
    });
    finish(&path, plan, &src, &dst, writer, apply);
}

#[test]
fn apply_waits_for_a_restarted_source_and_continues() {
    let (src, dst) = pair();
    let dir = tempfile::tempdir().expect("tempdir");
    let plan = "restartsource";
    let (path, mut apply) = start_replicating(dir.path(), plan, &src, &dst);
    let writer = Writer::start(&src);
    wait_first_applied(&mut apply, &src, &dst, plan);
    let before = applied(&dst, plan);
    src.restart_after(Duration::from_secs(3));
    apply.assert_running();
    apply.wait_until("a retry", 60, || apply_retries(&dir, 1));
    apply.wait_until("progress after the restart", 120, || {
        applied_past(&dst, plan, &before)
    });
    finish(&path, plan, &src, &dst, writer, apply);
}

#[test]
fn a_permanent_error_ends_apply_at_once_without_retrying() {
    let (src, dst) = pair();
    let dir = tempfile::tempdir().expect("tempdir");
    let plan = "permanent";
    let (_path, mut apply) = start_replicating(dir.path(), plan, &src, &dst);
    // Someone drops a replicated column on the target by hand: applying a change to it fails
    // the same way every time.
    dst.psql("shop", "ALTER TABLE notes DROP COLUMN body");
    src.psql("shop", "UPDATE notes SET body = 'changed' WHERE id = 1");
    let started = Instant::now();
    let status = loop {
        if let Some(status) = apply.child.try_wait().expect("try_wait") {
            break status;
        }
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "apply still runs 30 s after a permanent error:\n{}",
            apply.log()
        );
        std::thread::sleep(Duration::from_millis(100));
    };
    let log = apply.log();
    assert_eq!(status.code(), Some(1), "{log}");
    assert!(log.contains("error: "), "{log}");
    assert!(log.contains("body"), "the error names the column: {log}");
    assert!(
        !log.contains(RETRY_LOG),
        "a permanent error was retried: {log}"
    );
}

/// Every process of `c`'s server (the postmaster and its children), for SIGSTOP/SIGCONT.
fn server_pids(c: &Cluster) -> Vec<String> {
    let pidfile =
        std::fs::read_to_string(c.data_dir().join("postmaster.pid")).expect("postmaster.pid");
    let postmaster = pidfile.lines().next().expect("pid line").trim().to_string();
    let out = std::process::Command::new("ps")
        .args(["-o", "pid=", "--ppid", &postmaster])
        .output()
        .expect("ps");
    let mut pids: Vec<String> = String::from_utf8_lossy(&out.stdout)
        .split_whitespace()
        .map(str::to_string)
        .collect();
    pids.push(postmaster);
    pids
}

fn signal(pids: &[String], sig: &str) {
    let ok = std::process::Command::new("kill")
        .arg(format!("-{sig}"))
        .args(pids)
        .status()
        .expect("kill")
        .success();
    assert!(ok, "kill -{sig} {pids:?}");
}

/// Continues a stopped server even when the test fails.
struct Stopped(Vec<String>);

impl Drop for Stopped {
    fn drop(&mut self) {
        signal(&self.0, "CONT");
    }
}

#[test]
fn a_hung_source_is_noticed_within_a_minute_and_apply_resumes_when_it_continues() {
    let (src, dst) = pair();
    // A shorter wal_sender_timeout makes the stream count as lost after 2 x 15 s, well
    // within the stop, so the retry path is taken too.
    src.psql("shop", "ALTER SYSTEM SET wal_sender_timeout = '15s'");
    src.psql("shop", "SELECT pg_reload_conf()");
    let dir = tempfile::tempdir().expect("tempdir");
    let plan = "hungsource";
    let (path, mut apply) = start_replicating(dir.path(), plan, &src, &dst);
    let writer = Writer::start(&src);
    wait_first_applied(&mut apply, &src, &dst, plan);
    let before = applied(&dst, plan);
    let retries = apply.retries();

    // SIGSTOP: the TCP connections stay open and the kernel still acknowledges, but nothing
    // answers, as with a frozen VM.
    let stopped = Stopped(server_pids(&src));
    signal(&stopped.0, "STOP");
    let t0 = Instant::now();
    let log_path = apply.log.clone();
    apply.wait_until("the stall to be logged", 60, || {
        read_log(&log_path).contains("stall: nothing from the source")
    });
    let noticed = t0.elapsed();
    apply.wait_until("the stream to count as lost and be retried", 75, || {
        apply_retries(&dir, retries + 1)
    });
    let lost = t0.elapsed();
    let log = apply.log();
    assert!(log.contains("stall: no message from the server"), "{log}");
    // Keep it stopped for a minute in all.
    std::thread::sleep(Duration::from_secs(60).saturating_sub(t0.elapsed()));
    drop(stopped);
    eprintln!(
        "stall logged after {:.1} s, stream lost after {:.1} s, source continued after {:.1} s",
        noticed.as_secs_f64(),
        lost.as_secs_f64(),
        t0.elapsed().as_secs_f64()
    );
    apply.wait_until("progress after the source continued", 180, || {
        applied_past(&dst, plan, &before)
    });
    finish(&path, plan, &src, &dst, writer, apply);
}

#[test]
fn a_hung_target_is_noticed_within_a_minute_and_apply_resumes_when_it_continues() {
    let (src, dst) = pair();
    let dir = tempfile::tempdir().expect("tempdir");
    let plan = "hungtarget";
    let (path, mut apply) = start_replicating(dir.path(), plan, &src, &dst);
    let writer = Writer::start(&src);
    wait_first_applied(&mut apply, &src, &dst, plan);
    let before = applied(&dst, plan);
    let retries = apply.retries();

    let stopped = Stopped(server_pids(&dst));
    signal(&stopped.0, "STOP");
    let t0 = Instant::now();
    let log_path = apply.log.clone();
    apply.wait_until("the stall to be logged", 60, || {
        read_log(&log_path).contains("stall: the target has not answered")
    });
    let noticed = t0.elapsed();
    // The ping on a new connection gets no answer either: the transaction is given up and
    // retried (the reconnection waits for the target).
    apply.wait_until("the batch to be given up and retried", 75, || {
        apply_retries(&dir, retries + 1)
    });
    let lost = t0.elapsed();
    assert!(apply
        .log()
        .contains("the target server or the network is hung"));
    std::thread::sleep(Duration::from_secs(75).saturating_sub(t0.elapsed()));
    drop(stopped);
    eprintln!(
        "target stall logged after {:.1} s, batch given up after {:.1} s, target continued after {:.1} s",
        noticed.as_secs_f64(),
        lost.as_secs_f64(),
        t0.elapsed().as_secs_f64()
    );
    // applied_past cannot ask the target before it continues; it answers again now.
    apply.wait_until("progress after the target continued", 180, || {
        applied_past(&dst, plan, &before)
    });
    finish(&path, plan, &src, &dst, writer, apply);
}
