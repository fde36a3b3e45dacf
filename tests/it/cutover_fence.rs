//! The cutover fence (`default_transaction_read_only` on the source database) against real
//! servers, with the cutover killed (kill -9) at the points around the fence
//! (`PGMOVE_TEST_PAUSE` holds it there): the previous setting is recorded before the fence and
//! restored exactly (none, or a source that was read-only before pgmove), by a rerun of
//! cutover that fails and by cleanup after an abandoned cutover; cleanup after a finished
//! cutover leaves the fence and says so; a resumed cutover reports the outage from the first
//! fence.

use crate::support;

use std::path::{Path, PathBuf};
use std::process::Child;
use std::time::Duration;

use support::online::{pgmove, spawn_logged, start_apply, stop, text, DB};
use support::{online, Cluster, Options};

fn setup(src: &Cluster, dst: &Cluster) {
    src.create_db(DB);
    dst.create_db(DB);
    src.psql(
        DB,
        "CREATE TABLE orders (id serial PRIMARY KEY, note text);
         INSERT INTO orders (note) SELECT 'before' FROM generate_series(1, 100);",
    );
}

fn plan(dir: &Path, name: &str, src: &Cluster, dst: &Cluster) -> PathBuf {
    online::write_plan(dir, name, src, dst, "cutover:\n  verify: checksums\n")
}

/// Whether a new transaction on the source database is refused as read-only.
fn source_read_only(src: &Cluster) -> bool {
    let out = src.psql_output(
        DB,
        "INSERT INTO orders (note) VALUES ('probe') RETURNING id",
    );
    if out.status.success() {
        return false;
    }
    let err = String::from_utf8_lossy(&out.stderr).to_string();
    assert!(err.contains("read-only transaction"), "{err}");
    true
}

/// The database's own settings (`pg_db_role_setting`), `-` when it has none.
fn db_settings(src: &Cluster) -> String {
    src.psql(
        DB,
        "SELECT coalesce((SELECT array_to_string(s.setconfig, ',') FROM pg_db_role_setting s
             JOIN pg_database d ON d.oid = s.setdatabase AND s.setrole = 0
             WHERE d.datname = current_database()), '-')",
    )
}

fn cutover_state(dst: &Cluster, plan: &str) -> String {
    dst.psql(
        DB,
        &format!("SELECT state FROM pgmove.cutover WHERE plan_name = '{plan}'"),
    )
}

/// Starts `pgmove cutover --yes` held at `point`, waits until it is there, and kills it (-9).
fn kill_cutover_at(plan: &Path, src: &Cluster, dst: &Cluster, point: &str, log: &Path) {
    let mut cmd = pgmove(
        &["cutover", plan.to_str().expect("utf8"), "--yes"],
        src,
        dst,
    );
    cmd.env("PGMOVE_TEST_PAUSE", point);
    let mut child: Child = spawn_logged(cmd, log);
    support::online::wait_paused(&mut child, log, point, 120);
    child.kill().expect("kill -9 cutover");
    let _ = child.wait();
}

fn cutover(plan: &Path, src: &Cluster, dst: &Cluster) -> std::process::Output {
    pgmove(
        &["cutover", plan.to_str().expect("utf8"), "--yes"],
        src,
        dst,
    )
    .output()
    .expect("cutover")
}

/// The write outage the text report gives, in seconds.
fn outage(stdout: &str) -> f64 {
    stdout
        .lines()
        .find_map(|l| l.trim().strip_prefix("write outage: "))
        .and_then(|l| l.split('s').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no write outage in the report:\n{stdout}"))
}

#[test]
fn a_cutover_killed_after_the_fence_restores_no_setting_and_reports_the_whole_outage() {
    let dir = tempfile::tempdir().expect("tempdir");
    let src = Cluster::start(Options::logical());
    let dst = Cluster::start(Options::default());
    setup(&src, &dst);
    let plan = plan(dir.path(), "fence", &src, &dst);
    let log = dir.path().join("apply.log");
    let mut apply = start_apply(&plan, &src, &dst, &log);
    online::wait_caught_up(&src, &dst, "fence", &mut apply, &log);
    assert_eq!(db_settings(&src), "-");

    // Killed after ALTER DATABASE, before the fence was marked applied.
    let clog = dir.path().join("cutover1.log");
    kill_cutover_at(&plan, &src, &dst, "cutover-fence-applied", &clog);
    assert!(source_read_only(&src), "the fence was not applied");
    assert_eq!(cutover_state(&dst, "fence"), "fencing");
    // The rerun fails verification (a row changed on the target by hand) and unfences: the
    // source gets back what it had before the first cutover (no setting), not the fence.
    dst.psql(DB, "UPDATE orders SET note = 'by hand' WHERE id = 7");
    let out = cutover(&plan, &src, &dst);
    assert_eq!(out.status.code(), Some(3), "{}", text(&out));
    assert!(text(&out).contains("FAILED"), "{}", text(&out));
    assert!(!source_read_only(&src), "the rerun left the source fenced");
    assert_eq!(db_settings(&src), "-", "the setting was not restored");
    assert_eq!(cutover_state(&dst, "fence"), "failed");

    // Killed once the fence is recorded and the sessions are gone; a rerun after a wait
    // finishes, and the outage it reports counts from the first fence.
    dst.psql(DB, "UPDATE orders SET note = 'before' WHERE id = 7");
    online::wait_caught_up(&src, &dst, "fence", &mut apply, &log);
    let clog = dir.path().join("cutover2.log");
    kill_cutover_at(&plan, &src, &dst, "cutover-fenced", &clog);
    assert_eq!(cutover_state(&dst, "fence"), "fenced");
    assert!(source_read_only(&src));
    std::thread::sleep(Duration::from_secs(4));
    let out = cutover(&plan, &src, &dst);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let stdout = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(stdout.contains("the target is live"), "{stdout}");
    let o = outage(&stdout);
    assert!(
        (4.0..60.0).contains(&o),
        "write outage {o}s does not cover the 4s the killed cutover left the source fenced\n{stdout}"
    );
    assert!(source_read_only(&src));

    // Cleanup after the finished cutover leaves the fence, and says so with the way back.
    stop(&mut apply);
    let out = pgmove(&["cleanup", plan.to_str().expect("utf8")], &src, &dst)
        .output()
        .expect("cleanup");
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let t = text(&out);
    assert!(t.contains("kept:"), "{t}");
    assert!(t.contains("cutover fence"), "{t}");
    assert!(t.contains("stays read-only"), "{t}");
    assert!(
        t.contains("ALTER DATABASE \"shop\" RESET default_transaction_read_only"),
        "{t}"
    );
    assert!(source_read_only(&src), "cleanup unfenced a live cutover");
}

#[test]
fn cleanup_after_an_abandoned_cutover_gives_the_source_its_writes_back() {
    let dir = tempfile::tempdir().expect("tempdir");
    let src = Cluster::start(Options::logical());
    let dst = Cluster::start(Options::default());
    setup(&src, &dst);
    let plan = plan(dir.path(), "gone", &src, &dst);
    let log = dir.path().join("apply.log");
    let mut apply = start_apply(&plan, &src, &dst, &log);
    online::wait_caught_up(&src, &dst, "gone", &mut apply, &log);

    let clog = dir.path().join("cutover.log");
    kill_cutover_at(&plan, &src, &dst, "cutover-fenced", &clog);
    assert!(source_read_only(&src));
    stop(&mut apply);
    // The dry run says what cleanup would do about it, and does nothing.
    let out = pgmove(
        &["cleanup", plan.to_str().expect("utf8"), "--dry-run"],
        &src,
        &dst,
    )
    .output()
    .expect("cleanup --dry-run");
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert!(text(&out).contains("cutover fence"), "{}", text(&out));
    assert!(source_read_only(&src));

    let out = pgmove(&["cleanup", plan.to_str().expect("utf8")], &src, &dst)
        .output()
        .expect("cleanup");
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let t = text(&out);
    assert!(t.contains("cutover fence"), "{t}");
    assert!(
        t.contains("unfinished cutover left the source read-only"),
        "{t}"
    );
    assert!(
        !source_read_only(&src),
        "cleanup left the source read-only\n{t}"
    );
    assert_eq!(db_settings(&src), "-");
    // Nothing of pgmove is left, and a second cleanup has nothing to do.
    assert_eq!(
        dst.psql(
            DB,
            "SELECT count(*) FROM pg_namespace WHERE nspname = 'pgmove'"
        ),
        "0"
    );
    let out = pgmove(&["cleanup", plan.to_str().expect("utf8")], &src, &dst)
        .output()
        .expect("cleanup");
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert!(text(&out).contains("nothing to drop"), "{}", text(&out));
}

#[test]
fn a_source_read_only_before_pgmove_stays_read_only_after_unfence() {
    let dir = tempfile::tempdir().expect("tempdir");
    let src = Cluster::start(Options::logical());
    let dst = Cluster::start(Options::default());
    setup(&src, &dst);
    let plan = plan(dir.path(), "ro", &src, &dst);
    let log = dir.path().join("apply.log");
    let mut apply = start_apply(&plan, &src, &dst, &log);
    online::wait_caught_up(&src, &dst, "ro", &mut apply, &log);
    // The owner made the database read-only by default before the cutover.
    src.psql(
        "postgres",
        "ALTER DATABASE shop SET default_transaction_read_only = on",
    );
    assert_eq!(db_settings(&src), "default_transaction_read_only=on");

    // Killed between the record and the ALTER, then a rerun that fails verification: the
    // setting is what it was.
    let clog = dir.path().join("cutover1.log");
    kill_cutover_at(&plan, &src, &dst, "cutover-fence-recorded", &clog);
    assert_eq!(cutover_state(&dst, "ro"), "fencing");
    dst.psql(DB, "UPDATE orders SET note = 'by hand' WHERE id = 7");
    let out = cutover(&plan, &src, &dst);
    assert_eq!(out.status.code(), Some(3), "{}", text(&out));
    assert_eq!(db_settings(&src), "default_transaction_read_only=on");

    // Abandoned after the fence, then cleanup: still read-only, as before pgmove.
    let clog = dir.path().join("cutover2.log");
    kill_cutover_at(&plan, &src, &dst, "cutover-fenced", &clog);
    stop(&mut apply);
    let out = pgmove(&["cleanup", plan.to_str().expect("utf8")], &src, &dst)
        .output()
        .expect("cleanup");
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert!(
        text(&out).contains("default_transaction_read_only = on"),
        "{}",
        text(&out)
    );
    assert_eq!(db_settings(&src), "default_transaction_read_only=on");
    assert!(source_read_only(&src));
}
