//! `pgmove cutover` against real servers: pgbench writing to the source while apply streams,
//! then cutover: the target is identical, sequences equal, the source fenced, the write outage
//! measured; a cutover whose verification fails unfences the source and exits 3; cutover with
//! no apply running applies itself; `cutover.mode: auto` cuts over from inside apply.

use crate::support;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use support::online::{pgmove, read_log, start_apply, stop, text, INSERT_ONLY};
use support::{online, Cluster, Options};

fn write_plan(dir: &Path, name: &str, src: &Cluster, dst: &Cluster, extra: &str) -> PathBuf {
    online::write_plan(dir, name, src, dst, &format!("{INSERT_ONLY}{extra}"))
}

/// Waits until change capture has written its first progress row and applied everything the
/// source has written now (its insert position; no WAL switch).
fn wait_caught_up(src: &Cluster, dst: &Cluster, plan: &str, child: &mut Child, log: &Path) {
    online::wait_caught_up_within(src, dst, plan, child, log, 180);
}

/// pgbench's standard TPC-B-like load plus inserts into `orders` (a serial column), as long
/// as it is allowed to run.
fn start_pgbench(src: &Cluster, dir: &Path, seconds: u32) -> Child {
    let script = dir.join("orders.sql");
    std::fs::write(&script, "INSERT INTO orders (note) VALUES ('pgbench');\n").expect("script");
    Command::new(support::bindir().join("pgbench"))
        .args([
            "-n",
            "-c",
            "2",
            "-T",
            &seconds.to_string(),
            "-b",
            "tpcb-like",
        ])
        .arg("-f")
        .arg(format!("{}@1", script.display()))
        .args([
            "-h",
            "127.0.0.1",
            "-p",
            &src.port.to_string(),
            "-U",
            "postgres",
            "shop",
        ])
        .env("PGPASSWORD", &src.password)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start pgbench")
}

fn setup(src: &Cluster, dst: &Cluster) {
    src.create_db("shop");
    dst.create_db("shop");
    let out = Command::new(support::bindir().join("pgbench"))
        .args([
            "-i",
            "-q",
            "-s",
            "2",
            "-h",
            "127.0.0.1",
            "-p",
            &src.port.to_string(),
            "-U",
            "postgres",
            "shop",
        ])
        .env("PGPASSWORD", &src.password)
        .output()
        .expect("pgbench -i");
    assert!(out.status.success(), "pgbench -i: {}", text(&out));
    src.psql(
        "shop",
        "CREATE TABLE orders (id serial PRIMARY KEY, note text, at timestamptz DEFAULT now());
         INSERT INTO orders (note) SELECT 'before' FROM generate_series(1, 100);",
    );
}

fn read_only_write_fails(src: &Cluster) -> bool {
    let out = src.psql_output("shop", "INSERT INTO orders (note) VALUES ('after cutover')");
    !out.status.success() && String::from_utf8_lossy(&out.stderr).contains("read-only transaction")
}

fn wait_exit(child: &mut Child, within: Duration) -> Option<std::process::ExitStatus> {
    let deadline = Instant::now() + within;
    loop {
        if let Ok(Some(s)) = child.try_wait() {
            return Some(s);
        }
        if Instant::now() >= deadline {
            return None;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn cutover_under_pgbench_leaves_an_identical_target_and_a_fenced_source() {
    let dir = tempfile::tempdir().expect("tempdir");
    let src = Cluster::start(Options::logical());
    let dst = Cluster::start(Options::default());
    setup(&src, &dst);
    let plan = write_plan(dir.path(), "live", &src, &dst, "cutover:\n  max_lag: 5s\n");
    let mut bench = start_pgbench(&src, dir.path(), 300);
    let log = dir.path().join("apply.log");
    let mut apply = start_apply(&plan, &src, &dst, &log);
    wait_caught_up(&src, &dst, "live", &mut apply, &log);
    std::thread::sleep(Duration::from_secs(2)); // pgbench goes on writing while apply streams
    assert!(
        bench.try_wait().expect("pgbench").is_none(),
        "pgbench stopped before the cutover"
    );

    // The pre-cutover report, while pgbench writes: ready (exit 0), lag and sequences listed.
    let out = pgmove(
        &[
            "cutover",
            plan.to_str().expect("utf8"),
            "--dry-run",
            "--format",
            "json",
        ],
        &src,
        &dst,
    )
    .output()
    .expect("cutover --dry-run");
    assert_eq!(
        out.status.code(),
        Some(0),
        "cutover --dry-run: {}",
        text(&out)
    );
    let report: serde_json::Value =
        serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("{e}: {}", text(&out)));
    assert_eq!(report["ready"], true, "{report}");
    assert!(
        report["sequences"].to_string().contains("orders_id_seq"),
        "{report}"
    );
    assert!(
        !read_only_write_fails(&src),
        "the dry run fenced the source"
    );

    // At least two re-check rounds before the fence (pgbench writes during them).
    let out = pgmove(
        &["cutover", plan.to_str().expect("utf8"), "--yes"],
        &src,
        &dst,
    )
    .env("PGMOVE_TEST_FORCE", "cutover-rounds")
    .output()
    .expect("cutover");
    assert_eq!(out.status.code(), Some(0), "cutover: {}", text(&out));
    let stdout = String::from_utf8_lossy(&out.stdout).to_string();
    eprintln!("{stdout}");
    assert!(stdout.contains("the target is live"), "{stdout}");
    assert!(stdout.contains("applier: running apply"), "{stdout}");
    let outage: f64 = stdout
        .lines()
        .find_map(|l| l.trim().strip_prefix("write outage: "))
        .and_then(|l| l.split('s').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no write outage in the report:\n{stdout}"));
    assert!(
        outage > 0.0 && outage < 5.0,
        "write outage {outage}s\n{stdout}"
    );

    // The fence ended pgbench's sessions; new writes are refused.
    assert!(
        wait_exit(&mut bench, Duration::from_secs(30)).is_some(),
        "pgbench still runs after the fence"
    );
    assert!(read_only_write_fails(&src), "the source still takes writes");
    // The running apply saw the cutover and stopped by itself.
    let status = wait_exit(&mut apply, Duration::from_secs(30))
        .unwrap_or_else(|| panic!("apply still runs after the cutover\n{}", read_log(&log)));
    assert!(status.success(), "apply: {status}\n{}", read_log(&log));
    assert!(read_log(&log).contains("is cut over"), "{}", read_log(&log));

    // Identical, sequences included.
    let out = pgmove(&["verify", plan.to_str().expect("utf8")], &src, &dst)
        .output()
        .expect("verify");
    assert!(out.status.success(), "verify: {}", text(&out));
    let seq = "SELECT last_value FROM orders_id_seq";
    assert_eq!(src.psql("shop", seq), dst.psql("shop", seq));
    assert!(src.psql("shop", seq).parse::<i64>().expect("int") > 100);
    assert_eq!(
        dst.psql(
            "shop",
            "SELECT state FROM pgmove.cutover WHERE plan_name = 'live'"
        ),
        "done"
    );
    assert_eq!(
        dst.psql(
            "shop",
            "SELECT phase FROM pgmove.runs WHERE plan_name = 'live'"
        ),
        "live"
    );
    // Verified ahead of the fence: inside the outage only the keys apply touched since were
    // compared again (pgbench's updates, the orders inserted), pgbench_history (no key) whole.
    assert!(stdout.contains("verified ahead in"), "{stdout}");
    let detail: serde_json::Value = serde_json::from_str(&dst.psql(
        "shop",
        "SELECT detail FROM pgmove.cutover WHERE plan_name = 'live'",
    ))
    .expect("report json");
    let re = &detail["recheck"];
    assert_eq!(detail["verify_identical"], true, "{detail}");
    assert_eq!(re["full"], false, "{detail}");
    assert!(detail["pre_verify_secs"].as_f64().is_some(), "{detail}");
    let keys = re["keys"].as_u64().expect("keys");
    let accounts: u64 = src
        .psql("shop", "SELECT count(*) FROM pgbench_accounts")
        .parse()
        .expect("count");
    assert!(keys > 0 && keys < accounts, "{detail}");
    assert!(re["whole_tables"].as_u64().expect("whole") >= 1, "{detail}");
    // The rounds compared the keys pgbench touched during the comparison ahead and during
    // each round, while it wrote; the target is identical (pgmove verify above).
    let rounds = re["rounds"].as_array().expect("rounds");
    assert!(rounds.len() >= 2, "{detail}");
    assert!(rounds[0]["keys"].as_u64().expect("keys") > 0, "{detail}");
    assert!(rounds[1]["keys"].as_u64().expect("keys") > 0, "{detail}");
    assert_eq!(rounds[1]["round"], 2, "{detail}");
    assert!(stdout.contains("re-check round(s) of"), "{stdout}");
    // Nothing is recorded any more.
    assert_eq!(
        dst.psql(
            "shop",
            "SELECT (SELECT count(*) FROM pgmove.touched) + (SELECT count(*) FROM pgmove.verify_ahead)"
        ),
        "0"
    );
    // A second cutover refuses: the plan is already cut over.
    let out = pgmove(
        &["cutover", plan.to_str().expect("utf8"), "--yes"],
        &src,
        &dst,
    )
    .output()
    .expect("cutover");
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert!(text(&out).contains("already cut over"), "{}", text(&out));
    // Cleanup works on the fenced source and leaves no pgmove object on either server.
    for _ in 0..2 {
        let out = pgmove(&["cleanup", plan.to_str().expect("utf8")], &src, &dst)
            .output()
            .expect("cleanup");
        assert_eq!(out.status.code(), Some(0), "cleanup: {}", text(&out));
    }
    let leftovers = "SELECT (SELECT count(*) FROM pg_replication_slots) + (SELECT count(*) FROM pg_publication)
        + (SELECT count(*) FROM pg_event_trigger) + (SELECT count(*) FROM pg_namespace WHERE nspname = 'pgmove')
        + (SELECT count(*) FROM pg_proc WHERE proname LIKE 'pgmove%')";
    assert_eq!(src.psql("shop", leftovers), "0");
    assert_eq!(dst.psql("shop", leftovers), "0");
    assert!(read_only_write_fails(&src), "cleanup unfenced the source");
    // Once cleaned up, cutover has nothing to cut over.
    let out = pgmove(
        &["cutover", plan.to_str().expect("utf8"), "--yes"],
        &src,
        &dst,
    )
    .output()
    .expect("cutover");
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert!(text(&out).contains("run `pgmove apply`"), "{}", text(&out));
}

#[test]
fn a_cutover_that_fails_verification_unfences_the_source_and_exits_3() {
    let dir = tempfile::tempdir().expect("tempdir");
    let src = Cluster::start(Options::logical());
    let dst = Cluster::start(Options::default());
    setup(&src, &dst);
    let plan = write_plan(dir.path(), "bad", &src, &dst, "");
    let log = dir.path().join("apply.log");
    let mut apply = start_apply(&plan, &src, &dst, &log);
    wait_caught_up(&src, &dst, "bad", &mut apply, &log);
    // Someone changes a row on the target by hand.
    dst.psql(
        "shop",
        "UPDATE pgbench_accounts SET filler = 'changed by hand' WHERE aid = 7",
    );

    let out = pgmove(
        &["cutover", plan.to_str().expect("utf8"), "--yes"],
        &src,
        &dst,
    )
    .output()
    .expect("cutover");
    assert_eq!(out.status.code(), Some(3), "cutover: {}", text(&out));
    assert!(text(&out).contains("pgbench_accounts"), "{}", text(&out));
    assert!(text(&out).contains("FAILED"), "{}", text(&out));
    // Found at the verification ahead of the fence and located to its key, found again inside
    // the outage (only that row compared again, and named): apply did not fix it.
    assert!(
        text(&out).contains("DIFFERENCES while fenced; verified ahead in"),
        "{}",
        text(&out)
    );
    assert!(
        text(&out).contains("1 key(s) (touched since, or found differing ahead), 0 chunk(s)"),
        "{}",
        text(&out)
    );
    assert!(text(&out).contains("\"aid\" IN ('7')"), "{}", text(&out));
    // The source takes writes again, and replication goes on.
    let before = dst.psql(
        "shop",
        "SELECT applied_lsn || ' ' || transactions || ' ' || changes FROM pgmove.progress",
    );
    let out = src.psql_output(
        "shop",
        "INSERT INTO orders (note) VALUES ('after failed cutover') RETURNING pg_current_wal_insert_lsn()",
    );
    let insert_lsn = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(out.status.success(), "source still fenced: {}", text(&out));
    assert_eq!(
        src.psql(
            "shop",
            "SELECT count(*) FROM pg_db_role_setting s JOIN pg_database d ON d.oid = s.setdatabase WHERE d.datname = 'shop'"
        ),
        "0",
        "the database setting was not restored"
    );
    assert_eq!(
        dst.psql(
            "shop",
            "SELECT state FROM pgmove.cutover WHERE plan_name = 'bad'"
        ),
        "failed"
    );
    wait_caught_up(&src, &dst, "bad", &mut apply, &log);
    assert_eq!(
        dst.psql(
            "shop",
            "SELECT count(*) FROM orders WHERE note = 'after failed cutover'"
        ),
        "1",
        "the insert after the failed cutover did not arrive; before: {before}; insert at {insert_lsn}; source at {}, target progress {}; slots {}\n{}",
        src.psql("shop", "SELECT pg_current_wal_lsn()"),
        dst.psql("shop", "SELECT applied_lsn || ' ' || transactions || ' ' || changes FROM pgmove.progress"),
        src.psql("shop", "SELECT string_agg(slot_name || ' txns=' || total_txns || ' bytes=' || total_bytes, '; ') FROM pg_stat_replication_slots"),
        read_log(&log)
    );
    assert!(apply.try_wait().expect("apply").is_none(), "apply stopped");
    // pgbench_history has no key (cdc.tables_without_key: insert-only): it is published for
    // inserts only, so the source still takes its updates and deletes while apply runs.
    let out = src.psql_output(
        "shop",
        "INSERT INTO pgbench_history (tid, bid, aid, delta, mtime) VALUES (1, 1, 1, 1, now());
         UPDATE pgbench_history SET delta = 2 WHERE aid = 1;
         DELETE FROM pgbench_history WHERE aid = 1;",
    );
    assert!(
        out.status.success(),
        "keyless table refused a write: {}",
        text(&out)
    );
    stop(&mut apply);
}

#[test]
fn cutover_without_a_running_apply_applies_itself_and_auto_mode_cuts_over_inside_apply() {
    let dir = tempfile::tempdir().expect("tempdir");
    let src = Cluster::start(Options::logical());
    let dst = Cluster::start(Options::default());
    setup(&src, &dst);

    // Manual: apply streams, is stopped; the source goes on; cutover applies the rest itself.
    src.psql(
        "shop",
        "CREATE MATERIALIZED VIEW branch_totals AS SELECT sum(bbalance) AS total FROM pgbench_branches;
         SELECT lo_from_bytea(4242, 'hello');",
    );
    let plan = write_plan(
        dir.path(),
        "own",
        &src,
        &dst,
        "objects:\n  large_objects: true\ncutover:\n  verify: counts\n",
    );
    let log = dir.path().join("apply.log");
    let mut apply = start_apply(&plan, &src, &dst, &log);
    wait_caught_up(&src, &dst, "own", &mut apply, &log);
    stop(&mut apply);
    src.psql(
        "shop",
        "INSERT INTO orders (note) SELECT 'while no apply ran' FROM generate_series(1, 50);
         UPDATE pgbench_branches SET bbalance = bbalance + 1;
         REFRESH MATERIALIZED VIEW branch_totals;
         SELECT lo_put(4242, 0, 'HELLO');
         SELECT lo_from_bytea(4243, 'new');",
    );
    let out = pgmove(
        &[
            "cutover",
            plan.to_str().expect("utf8"),
            "--yes",
            "--format",
            "json",
        ],
        &src,
        &dst,
    )
    .output()
    .expect("cutover");
    assert_eq!(out.status.code(), Some(0), "cutover: {}", text(&out));
    let report: serde_json::Value =
        serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("{e}: {}", text(&out)));
    assert_eq!(report["state"], "live");
    assert_eq!(report["applier"], "cutover (no apply was running)");
    assert_eq!(report["verify_identical"], true);
    assert!(report["write_outage_secs"].as_f64().expect("outage") < 5.0);
    assert_eq!(report["large_objects_copied"], 2, "{report}");
    assert_eq!(report["materialized_views_refreshed"], 1, "{report}");
    let totals = "SELECT total FROM branch_totals";
    assert_eq!(src.psql("shop", totals), dst.psql("shop", totals));
    assert_eq!(
        dst.psql(
            "shop",
            "SELECT convert_from(lo_get(4242), 'UTF8') || convert_from(lo_get(4243), 'UTF8')"
        ),
        "HELLOnew"
    );
    assert_eq!(
        dst.psql(
            "shop",
            "SELECT count(*) FROM orders WHERE note = 'while no apply ran'"
        ),
        "50"
    );
    assert!(read_only_write_fails(&src));

    // Auto: a second database, cut over by apply itself once the lag allows.
    src.psql("postgres", "CREATE DATABASE auto");
    dst.psql("postgres", "CREATE DATABASE auto");
    src.psql(
        "auto",
        "CREATE TABLE t (id bigserial PRIMARY KEY, v text); INSERT INTO t (v) SELECT 'x' FROM generate_series(1, 1000);",
    );
    let auto = write_plan(
        dir.path(),
        "auto",
        &src,
        &dst,
        "cutover:\n  mode: auto\n  max_lag: 10s\n",
    );
    let auto_text = std::fs::read_to_string(&auto)
        .expect("plan")
        .replace("/shop", "/auto");
    std::fs::write(&auto, auto_text).expect("plan");
    let log = dir.path().join("auto.log");
    let mut apply = start_apply(&auto, &src, &dst, &log);
    let status = wait_exit(&mut apply, Duration::from_secs(120)).unwrap_or_else(|| {
        panic!(
            "apply with cutover.mode auto did not cut over\n{}",
            read_log(&log)
        )
    });
    assert!(status.success(), "{status}\n{}", read_log(&log));
    assert!(
        read_log(&log).contains("the target is live"),
        "{}",
        read_log(&log)
    );
    let seq = "SELECT last_value FROM t_id_seq";
    assert_eq!(src.psql("auto", seq), dst.psql("auto", seq));
    assert_eq!(dst.psql("auto", "SELECT count(*) FROM t"), "1000");
    let out = src.psql_output("auto", "INSERT INTO t (v) VALUES ('late')");
    assert!(
        !out.status.success(),
        "auto cutover left the source writable"
    );
}

/// Starts `pgmove cutover --yes --format json` (with `env`) held at `point`, its stderr in
/// `log` and its stdout in `log` with extension `json`, and waits until it is there.
fn cutover_paused_at(
    plan: &Path,
    src: &Cluster,
    dst: &Cluster,
    point: &str,
    env: &[(&str, &str)],
    log: &Path,
) -> Child {
    let mut cmd = pgmove(
        &[
            "cutover",
            plan.to_str().expect("utf8"),
            "--yes",
            "--format",
            "json",
        ],
        src,
        dst,
    );
    cmd.env("PGMOVE_TEST_PAUSE", point);
    for (k, v) in env {
        cmd.env(k, v);
    }
    let out = std::fs::File::create(log.with_extension("json")).expect("stdout file");
    let err = std::fs::File::create(log).expect("log file");
    let mut child = cmd.stdout(out).stderr(err).spawn().expect("start cutover");
    support::online::wait_paused(&mut child, log, point, 180);
    child
}

/// Waits until the target's row `aid` of pgbench_accounts has `filler` (trimmed).
fn wait_filler(dst: &Cluster, aid: i32, filler: &str) {
    let deadline = Instant::now() + Duration::from_secs(60);
    let sql = format!("SELECT trim(filler) FROM pgbench_accounts WHERE aid = {aid}");
    while dst.psql("shop", &sql) != filler {
        assert!(Instant::now() < deadline, "{filler:?} never applied");
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn a_difference_made_during_a_recheck_round_is_still_found_and_the_source_unfenced() {
    let dir = tempfile::tempdir().expect("tempdir");
    let src = Cluster::start(Options::logical());
    let dst = Cluster::start(Options::default());
    setup(&src, &dst);
    let plan = write_plan(dir.path(), "round", &src, &dst, "");
    let log = dir.path().join("apply.log");
    let mut apply = start_apply(&plan, &src, &dst, &log);
    wait_caught_up(&src, &dst, "round", &mut apply, &log);

    // Held once round 1 is acknowledged: a change of row 7 is applied (recorded in round 1),
    // then the target's row 7 is changed by hand: it differs from then on.
    let resume = dir.path().join("resume");
    let clog = dir.path().join("cutover.log");
    let mut cutover = cutover_paused_at(
        &plan,
        &src,
        &dst,
        "cutover-round-1",
        &[
            ("PGMOVE_TEST_FORCE", "cutover-rounds"),
            ("PGMOVE_TEST_RESUME_FILE", resume.to_str().expect("utf8")),
        ],
        &clog,
    );
    src.psql(
        "shop",
        "UPDATE pgbench_accounts SET filler = 'during round 1' WHERE aid = 7",
    );
    wait_filler(&dst, 7, "during round 1");
    dst.psql(
        "shop",
        "UPDATE pgbench_accounts SET filler = 'changed by hand' WHERE aid = 7",
    );
    std::fs::write(&resume, "").expect("resume");
    let status = wait_exit(&mut cutover, Duration::from_secs(180))
        .unwrap_or_else(|| panic!("cutover still runs\n{}", read_log(&clog)));
    let detail: serde_json::Value = serde_json::from_str(&read_log(&clog.with_extension("json")))
        .unwrap_or_else(|e| panic!("{e}\n{}", read_log(&clog)));
    // Exit 3: round 2 compared the key touched during round 1 and found it differing; it
    // stayed pending and was found again inside the outage; the source was unfenced.
    assert_eq!(status.code(), Some(3), "{}\n{detail}", read_log(&clog));
    let rounds = detail["recheck"]["rounds"].as_array().expect("rounds");
    assert_eq!(rounds.len(), 2, "{detail}");
    assert_eq!(rounds[1]["keys"], 1, "{detail}");
    assert_eq!(rounds[1]["differing"], 1, "{detail}");
    assert_eq!(detail["verify_identical"], false, "{detail}");
    assert!(
        detail["differing"]
            .to_string()
            .contains("\\\"aid\\\" IN ('7')"),
        "{detail}"
    );
    assert_eq!(detail["source_fenced"], false, "{detail}");
    assert!(!read_only_write_fails(&src), "the source stayed fenced");
    assert_eq!(
        dst.psql(
            "shop",
            "SELECT state FROM pgmove.cutover WHERE plan_name = 'round'"
        ),
        "failed"
    );
    stop(&mut apply);
}

#[test]
fn a_killed_cutovers_request_makes_apply_record_nothing() {
    let dir = tempfile::tempdir().expect("tempdir");
    let src = Cluster::start(Options::logical());
    let dst = Cluster::start(Options::default());
    setup(&src, &dst);
    let plan = write_plan(dir.path(), "killed", &src, &dst, "");
    let log = dir.path().join("apply.log");
    let mut apply = start_apply(&plan, &src, &dst, &log);
    wait_caught_up(&src, &dst, "killed", &mut apply, &log);
    let touched_orders = |note: &str| {
        dst.psql(
            "shop",
            &format!(
                "SELECT count(*) FROM pgmove.touched t JOIN orders o
                   ON t.table_name = 'orders' AND t.key = ARRAY[o.id::text]
                 WHERE o.note = '{note}'"
            ),
        )
    };
    let wait_orders = |note: &str, n: &str| {
        let deadline = Instant::now() + Duration::from_secs(60);
        let sql = format!("SELECT count(*) FROM orders WHERE note = '{note}'");
        while dst.psql("shop", &sql) != n {
            assert!(Instant::now() < deadline, "{note:?} never applied");
            std::thread::sleep(Duration::from_millis(50));
        }
    };

    // While the cutover lives (held after its comparison ahead), apply records what it
    // touches.
    let clog = dir.path().join("cutover.log");
    let mut cutover = cutover_paused_at(&plan, &src, &dst, "cutover-pre-verified", &[], &clog);
    src.psql(
        "shop",
        "INSERT INTO orders (note) SELECT 'while held' FROM generate_series(1, 5)",
    );
    wait_orders("while held", "5");
    assert_eq!(touched_orders("while held"), "5");
    // Killed: its request stays, but its session is gone, and apply records nothing more.
    cutover.kill().expect("kill -9 cutover");
    let _ = cutover.wait();
    let deadline = Instant::now() + Duration::from_secs(30);
    let holder_alive = "SELECT count(*) FROM pgmove.verify_ahead v JOIN pg_stat_activity a
        ON a.pid = v.holder_pid AND a.backend_start = v.holder_start";
    while dst.psql("shop", holder_alive) != "0" {
        assert!(Instant::now() < deadline, "the cutover's session lingers");
        std::thread::sleep(Duration::from_millis(50));
    }
    // Past change capture's next look at the request.
    std::thread::sleep(Duration::from_millis(600));
    src.psql(
        "shop",
        "INSERT INTO orders (note) SELECT 'after the kill' FROM generate_series(1, 5)",
    );
    wait_orders("after the kill", "5");
    assert_eq!(
        dst.psql(
            "shop",
            "SELECT count(*) FROM pgmove.verify_ahead WHERE plan_name = 'killed'"
        ),
        "1",
        "the request row went: this test proves nothing"
    );
    assert_eq!(touched_orders("after the kill"), "0");
    // The next cutover takes the request over and finishes.
    let out = pgmove(
        &["cutover", plan.to_str().expect("utf8"), "--yes"],
        &src,
        &dst,
    )
    .output()
    .expect("cutover");
    assert_eq!(out.status.code(), Some(0), "cutover: {}", text(&out));
    assert!(text(&out).contains("verified ahead in"), "{}", text(&out));
    let status = wait_exit(&mut apply, Duration::from_secs(30))
        .unwrap_or_else(|| panic!("apply still runs after the cutover\n{}", read_log(&log)));
    assert!(status.success(), "apply: {status}\n{}", read_log(&log));
}
