//! `pgmove cutover` of a run of strategy pglogical, on servers of its own (pglogical
//! preloaded): a cutover before the run reached `replicating` exits 2 with the fix; the dry
//! run changes nothing; a cutover under a writer ends live, identical, sequences equal, the
//! subscription gone from the target and its slot from the source, the write outage reported.

use crate::support;

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use support::online::{pgmove, text, DB};
use support::Cluster;

/// The tables of the move: a keyed table with a serial, an updated table, and their data.
pub(crate) const SCHEMA: &str = "
    CREATE TABLE accounts (id int PRIMARY KEY, balance bigint NOT NULL);
    CREATE TABLE orders (id bigserial PRIMARY KEY, account int NOT NULL, note text);
    CREATE SEQUENCE invoice_no START 1000;";
pub(crate) const DATA: &str = "
    INSERT INTO accounts SELECT g, 0 FROM generate_series(1, 20) g;
    INSERT INTO orders (account, note) SELECT 1 + g % 20, 'load ' || g FROM generate_series(1, 2000) g;
    SELECT nextval('invoice_no') FROM generate_series(1, 5);";

/// A source and a target of their own (pglogical preloaded) for plan `shop` (strategy
/// pglogical, `cutover.verify: checksums`), the source holding [`SCHEMA`] and [`DATA`], and the
/// plan's pglogical names.
pub(crate) struct Pair {
    pub src: Cluster,
    pub dst: Cluster,
    /// Holds the plan file.
    pub _dir: tempfile::TempDir,
    pub plan: PathBuf,
    pub names: pgmove::plan::names::PglogicalNames,
}

/// [`Pair`], not applied yet.
pub(crate) fn started() -> Pair {
    let p = support::pglogical::Pair::start(
        "shop",
        &format!("{SCHEMA}{DATA}"),
        "cutover:\n  verify: checksums\n  max_lag: 5s\n",
    );
    Pair {
        src: p.src,
        dst: p.dst,
        _dir: p.dir,
        plan: p.plan,
        names: pgmove::plan::names::pglogical_names("shop", None),
    }
}

/// `pgmove apply` of the pair: it returns once the initial sync is done and the subscription
/// replicates (step `replicating`).
pub(crate) fn apply(p: &Pair) {
    let out = run(&["apply", plan_arg(&p.plan), "--yes"], p);
    support::online::assert_ok(&out);
}

/// [`Pair`], applied: the subscription replicates.
pub(crate) fn applied() -> Pair {
    let p = started();
    apply(&p);
    p
}

/// Starts `pgmove <args>` held at test pause `point`, waits until it is there, and kills it
/// (-9).
fn kill_at(p: &Pair, args: &[&str], point: &str) {
    let log = p._dir.path().join(format!("{point}.log"));
    let mut cmd = pgmove(args, &p.src, &p.dst);
    cmd.env("PGMOVE_TEST_PAUSE", point);
    let mut child = support::online::spawn_logged(cmd, &log);
    let deadline = Instant::now() + Duration::from_secs(120);
    while !support::online::read_log(&log).contains(&format!("test pause at {point}")) {
        if let Ok(Some(s)) = child.try_wait() {
            panic!(
                "pgmove {args:?} ended before {point}: {s}\n{}",
                support::online::read_log(&log)
            );
        }
        assert!(
            Instant::now() < deadline,
            "pgmove {args:?} did not reach {point}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    child.kill().expect("kill -9");
    let _ = child.wait();
}

fn run(args: &[&str], p: &Pair) -> std::process::Output {
    pgmove(args, &p.src, &p.dst).output().expect("run pgmove")
}

fn plan_arg(p: &Path) -> &str {
    p.to_str().expect("utf8")
}

/// What cutover may change, read on both sides: the source database's own read-only setting,
/// the subscription's status, slots on the source, pgmove.cutover rows and cutover steps.
fn untouched_state(p: &Pair) -> String {
    format!(
        "{}|{}|{}|{}",
        p.src.psql(
            "postgres",
            "SELECT count(*) FROM pg_db_role_setting s JOIN pg_database d ON d.oid = s.setdatabase WHERE d.datname = 'shop'"
        ),
        p.dst.psql(
            DB,
            &format!(
                "SELECT status FROM pglogical.show_subscription_status('{}')",
                p.names.subscription
            )
        ),
        p.src.psql(DB, "SELECT string_agg(slot_name, ',') FROM pg_replication_slots"),
        p.dst.psql(
            DB,
            "SELECT (SELECT count(*) FROM pgmove.cutover) || '/' || (SELECT count(*) FROM pgmove.steps WHERE step LIKE 'cutover-%')"
        )
    )
}

/// Inserts and updates on the source, one transaction each, until the fence stops it; the
/// number of transactions committed.
fn start_writer(
    src: &Cluster,
    stop: Arc<AtomicBool>,
    done: Arc<AtomicU64>,
) -> std::thread::JoinHandle<String> {
    let uri = src.uri(DB);
    std::thread::spawn(move || {
        let rt = tokio::runtime::Runtime::new().expect("runtime");
        rt.block_on(async {
            let (c, conn) = match tokio_postgres::connect(&uri, tokio_postgres::NoTls).await {
                Ok(x) => x,
                Err(e) => return format!("connect: {e}"),
            };
            tokio::spawn(conn);
            let mut n: u64 = 0;
            while !stop.load(Ordering::SeqCst) {
                let r = c
                    .batch_execute(&format!(
                        "BEGIN; INSERT INTO orders (account, note) VALUES ({a}, 'writer {n}');
                         UPDATE accounts SET balance = balance + 1 WHERE id = {a};
                         SELECT nextval('invoice_no'); COMMIT;",
                        a = 1 + n % 20
                    ))
                    .await;
                if let Err(e) = r {
                    return format!("stopped: {e}");
                }
                n += 1;
                done.store(n, Ordering::SeqCst);
            }
            "asked to stop".to_string()
        })
    })
}

#[test]
fn cutover_of_a_pglogical_run_goes_live_independent_and_identical() {
    let p = started();
    let f = plan_arg(&p.plan);

    // Never applied, then an apply killed during the sync: not `replicating`, exit 2 with
    // the fix.
    let out = run(&["cutover", f, "--yes"], &p);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("(strategy pglogical) has not reached step `replicating`"),
        "{}",
        text(&out)
    );
    assert!(err.contains(&format!("pgmove apply {f}")), "{}", text(&out));
    kill_at(&p, &["apply", f, "--yes"], "pglogical-sync");
    let out = run(&["cutover", f, "--yes"], &p);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("has not reached step `replicating`"),
        "{}",
        text(&out)
    );
    assert!(err.contains(&format!("pgmove apply {f}")), "{}", text(&out));
    let before = untouched_state(&p);
    assert!(before.ends_with("|0/0"), "{before}");

    apply(&p);

    // Status during replication (the subscription and the sync, as status shows them).
    let out = run(&["status", f], &p);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let st = String::from_utf8_lossy(&out.stdout);
    assert!(
        st.contains(&format!(
            "subscription {}: replicating",
            p.names.subscription
        )),
        "{st}"
    );
    assert!(st.contains("tables: 2 of 2 synced"), "{st}");

    // The dry run: ready, about the subscription, and nothing changed.
    let before = untouched_state(&p);
    let out = run(&["cutover", f, "--dry-run"], &p);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let dry = String::from_utf8_lossy(&out.stdout);
    assert!(
        dry.contains(&format!(
            "pglogical subscription {} (replicating)",
            p.names.subscription
        )),
        "{dry}"
    );
    assert!(dry.contains("tables synced: 2 of 2"), "{dry}");
    assert!(dry.contains("Ready"), "{dry}");
    assert!(dry.contains("Estimated write outage: ~"), "{dry}");
    assert_eq!(untouched_state(&p), before, "the dry run changed something");
    let out = run(&["cutover", f, "--dry-run", "--format", "json"], &p);
    let j: serde_json::Value =
        serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("{e}: {}", text(&out)));
    assert_eq!(j["pglogical"]["state"], "replicating");
    assert_eq!(j["run"]["full_load_done"], true);
    assert!(j["lag"]["slot_exists"].as_bool().unwrap_or(false), "{j}");

    // Cutover under a writer.
    let stop = Arc::new(AtomicBool::new(false));
    let done = Arc::new(AtomicU64::new(0));
    let writer = start_writer(&p.src, stop.clone(), done.clone());
    let until = Instant::now() + Duration::from_secs(20);
    while done.load(Ordering::SeqCst) < 200 {
        assert!(Instant::now() < until, "the writer did not get going");
        std::thread::sleep(Duration::from_millis(20));
    }
    let out = run(&["cutover", f, "--yes"], &p);
    stop.store(true, Ordering::SeqCst);
    let why = writer.join().expect("writer");
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}\n{}",
        text(&out),
        p.dst.log()
    );
    let report = String::from_utf8_lossy(&out.stdout);
    assert!(report.contains("the target is live"), "{report}");
    assert!(
        report.contains(&format!(
            "applier: pglogical subscription {}",
            p.names.subscription
        )),
        "{report}"
    );
    assert!(report.contains("write outage: "), "{report}");
    assert!(report.contains("verify (checksums): identical"), "{report}");
    assert!(
        report.contains(&format!(
            "subscription {} disabled and dropped on the target",
            p.names.subscription
        )),
        "{report}"
    );
    assert!(report.contains("is gone from the source"), "{report}");
    assert!(
        report.contains("left for pgmove cleanup: provider node"),
        "{report}"
    );
    // The fence stopped the writer (read-only, its session terminated), not the test.
    assert!(why.starts_with("stopped: "), "{why}");
    let written = done.load(Ordering::SeqCst);
    assert!(written >= 200, "{written}");

    // Live and independent: identical, sequences equal, no subscription, no slot.
    let out = run(&["verify", f], &p);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let q = "SELECT (SELECT count(*) FROM orders) || '/' || (SELECT sum(balance) FROM accounts) || '/' ||
             (SELECT last_value FROM orders_id_seq) || '/' || (SELECT last_value FROM invoice_no)";
    let on_src = p.src.psql(DB, q);
    assert_eq!(p.dst.psql(DB, q), on_src);
    // Every write committed before the fence is on both sides (the last one may have
    // committed as its session was terminated, so `written` may be one short).
    let v: Vec<u64> = on_src
        .split('/')
        .map(|x| x.parse().expect("number"))
        .collect();
    assert!(
        v[0] >= 2000 + written && v[0] <= 2001 + written,
        "{on_src} {written}"
    );
    assert_eq!(v[1], v[0] - 2000, "{on_src}");
    // A transaction the fence ended may have drawn from the sequences before it rolled
    // back: they are at least at the rows, and equal on both sides (above).
    assert!(v[2] >= v[0], "{on_src}");
    assert!(v[3] >= 1004 + v[1], "{on_src}");
    assert_eq!(
        p.dst
            .psql(DB, "SELECT count(*) FROM pglogical.subscription"),
        "0"
    );
    assert_eq!(
        p.src.psql(DB, "SELECT count(*) FROM pg_replication_slots"),
        "0",
        "the subscription's slot is gone from the source"
    );
    assert_eq!(
        p.dst
            .psql(DB, "SELECT phase FROM pgmove.runs WHERE plan_name = 'shop'"),
        "live"
    );
    // A write on the target no longer meets a replica: the target is its own.
    p.dst.psql(
        DB,
        "INSERT INTO orders (account, note) VALUES (1, 'after cutover')",
    );
    // A second cutover: already live, exit 2.
    let out = run(&["cutover", f, "--yes"], &p);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
}

#[test]
fn a_cutover_killed_after_dropping_the_subscription_finishes_on_a_rerun() {
    let p = applied();
    let f = plan_arg(&p.plan);
    p.src.psql(
        DB,
        "INSERT INTO orders (account, note) SELECT 3, 'late' FROM generate_series(1, 300);
         SELECT nextval('invoice_no') FROM generate_series(1, 7);",
    );
    // Killed once the subscription is dropped, before the cutover is recorded done: the source
    // stays fenced, the subscription and its slot are gone.
    kill_at(&p, &["cutover", f, "--yes"], "cutover-pglogical-dropped");
    assert_eq!(
        p.dst
            .psql(DB, "SELECT count(*) FROM pglogical.subscription"),
        "0"
    );
    assert_eq!(
        p.src.psql(DB, "SELECT count(*) FROM pg_replication_slots"),
        "0"
    );
    assert_eq!(
        p.dst.psql(
            DB,
            "SELECT state FROM pgmove.cutover WHERE plan_name = 'shop'"
        ),
        "fenced"
    );
    // The dry run says cutover can finish it.
    let out = run(&["cutover", f, "--dry-run"], &p);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let dry = String::from_utf8_lossy(&out.stdout);
    assert!(dry.contains("[cutover-interrupted]"), "{dry}");
    assert!(dry.contains("[caught-up-before]"), "{dry}");

    // The rerun goes on from the fence: live, identical, the subscription already gone.
    let out = run(&["cutover", f, "--yes"], &p);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}\n{}",
        text(&out),
        p.dst.log()
    );
    let report = String::from_utf8_lossy(&out.stdout);
    assert!(report.contains("the target is live"), "{report}");
    assert!(
        report.contains("was already gone from the target (an earlier cutover dropped it)"),
        "{report}"
    );
    assert!(report.contains("verify (checksums): identical"), "{report}");
    assert!(
        !report.contains("lag checks"),
        "resumed after the fence: {report}"
    );
    let q = "SELECT (SELECT count(*) FROM orders) || '/' || (SELECT last_value FROM invoice_no)";
    assert_eq!(p.dst.psql(DB, q), p.src.psql(DB, q));
    assert_eq!(p.src.psql(DB, q), "2300/1011");
    assert_eq!(
        p.dst
            .psql(DB, "SELECT phase FROM pgmove.runs WHERE plan_name = 'shop'"),
        "live"
    );
}
