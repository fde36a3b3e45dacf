//! Rates and times left against real servers: a copy-cdc load logs rows/s and `status` shows
//! what it copied, how fast and its time left; change capture's progress row measures the
//! catch-up rate over its window.

use crate::support;

use pgmove::pg::{Endpoint, Lsn, Secret, Side};
use support::online::{assert_ok, pair, run, write_plan, DB};
use support::Profile;

#[test]
fn a_load_logs_its_rates_and_status_shows_what_it_copied_how_fast() {
    let (src, dst) = pair();
    // Analyzed, so the source's statistics estimate the rows; large enough to be split.
    src.psql(
        DB,
        "CREATE TABLE big (id int PRIMARY KEY, v text);
         INSERT INTO big SELECT g, repeat(md5(g::text), 2) FROM generate_series(1, 40000) g;
         CREATE TABLE small (id int PRIMARY KEY);
         INSERT INTO small SELECT generate_series(1, 10);
         ANALYZE big, small;",
    );
    let dir = tempfile::tempdir().expect("tempdir");
    let plan = write_plan(
        dir.path(),
        "rates",
        &src,
        &dst,
        "split_tables_larger_than: 1MB\n",
    );
    let p = plan.to_str().expect("utf8");
    // The dry run shows the load's record around the chunks.
    let dry = run(&["apply", p, "--dry-run"], &src, &dst);
    assert_ok(&dry);
    let dry = String::from_utf8_lossy(&dry.stdout);
    let start = dry
        .find("INSERT INTO pgmove.load ")
        .expect("the load's start");
    let chunk = dry
        .find("INSERT INTO pgmove.copy_progress")
        .expect("a chunk's record");
    let end = dry
        .find("UPDATE pgmove.load SET finished_at")
        .expect("the load's end");
    assert!(start < chunk && chunk < end, "{dry}");
    let out = run(
        &["apply", p, "--yes", "--stop-after-load", "--format", "json"],
        &src,
        &dst,
    );
    assert_ok(&out);
    let summary: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json summary");
    let outcome = &summary["outcome"];
    let rows = outcome["rows"].as_u64().expect("rows");
    assert_eq!(rows, 40010, "{summary:#}");
    // The plain log lines (no terminal: no bars) carry the rates and the time left.
    let log = String::from_utf8_lossy(&out.stderr);
    let line = log
        .lines()
        .find(|l| l.contains("rows/s") && l.contains("40010 rows"))
        .unwrap_or_else(|| panic!("no rates line for the whole load:\n{log}"));
    assert!(line.contains("step=copy"), "{line}");
    assert!(line.contains("/s, ETA 0s"), "{line}");

    let st = run(&["status", p, "--format", "json"], &src, &dst);
    assert_ok(&st);
    let s: serde_json::Value = serde_json::from_slice(&st.stdout).expect("status json");
    let load = &s["load"];
    assert_eq!(load["rows"].as_u64(), Some(rows), "{s:#}");
    assert_eq!(load["bytes"], outcome["bytes"], "{s:#}");
    assert_eq!(load["chunks"], outcome["chunks_copied"], "{s:#}");
    assert_eq!(load["chunks_done"], load["chunks"], "{s:#}");
    assert!(
        load["chunks"].as_u64().unwrap_or(0) > 2,
        "big is split: {s:#}"
    );
    assert!(load["finished_at"].is_string(), "{s:#}");
    assert_eq!(load["eta_seconds"], 0.0, "{s:#}");
    // ANALYZE's estimate of the rows copied is close.
    let est = load["estimated_rows"].as_f64().expect("estimated rows");
    assert!((est - rows as f64).abs() < 0.1 * rows as f64, "{s:#}");
    assert!(
        load["estimated_bytes"].as_u64().unwrap_or(0) > 1 << 20,
        "{s:#}"
    );
    let secs = load["elapsed_seconds"].as_f64().expect("elapsed");
    assert!(secs > 0.0, "{s:#}");
    let rps = load["rows_per_second"].as_f64().expect("rows/s");
    assert!((rps - rows as f64 / secs).abs() < 1.0, "{s:#}");
    let bps = load["bytes_per_second"].as_f64().expect("bytes/s");
    assert!(bps > rps, "{s:#}");

    let st = run(&["status", p], &src, &dst);
    assert_ok(&st);
    let t = String::from_utf8_lossy(&st.stdout);
    assert!(
        t.contains(&format!(
            "  load: {c} of {c} chunk(s), 40010 rows,",
            c = load["chunks"]
        )),
        "{t}"
    );
    assert!(
        t.contains(" rows/s, ") && t.contains("/s, finished\n"),
        "{t}"
    );
}

#[tokio::test]
async fn the_progress_row_measures_the_catch_up_rate_over_its_window() {
    let c = support::shared(Profile::Plain);
    let db = c.fresh_db("rates_cdc");
    let ep = Endpoint::from_dsn(
        Side::Target,
        &format!(
            "postgres://postgres@127.0.0.1:{}/{db}?sslmode=disable",
            c.port
        ),
        Some(Secret::new(c.password.clone())),
        &|_| None,
    )
    .expect("dsn");
    let st = pgmove::state::State::open(&ep, "p_rate")
        .await
        .expect("open");
    let save = |lsn: u64| pgmove::state::progress::save_sql("p_rate", Lsn(lsn), 1, 1);
    let rate = || pgmove::state::progress::rate(&st.client, &ep, "p_rate");
    st.client
        .batch_execute(&save(0x100_0000))
        .await
        .expect("save");
    assert_eq!(rate().await.expect("rate"), None, "one sample has no rate");
    // The window opened 10 s ago (as if): the next save closes it.
    c.psql(
        &db,
        "UPDATE pgmove.progress SET window_at = now() - interval '10 s', updated_at = now() WHERE plan_name = 'p_rate'",
    );
    st.client
        .batch_execute(&save(0x100_0000 + 50 * 1024 * 1024))
        .await
        .expect("save");
    let r = rate().await.expect("rate").expect("a rate");
    assert!((r - 5.0 * 1024.0 * 1024.0).abs() < 0.01 * r, "{r}");
    // A save within the new window keeps the rate.
    st.client
        .batch_execute(&save(0x100_0000 + 60 * 1024 * 1024))
        .await
        .expect("save");
    assert_eq!(rate().await.expect("rate"), Some(r));
    // Nothing applied for longer than a window: the rate since the window opened, 10 MB over
    // about 20 s.
    c.psql(
        &db,
        "UPDATE pgmove.progress SET window_at = now() - interval '20 s', updated_at = now() - interval '20 s' WHERE plan_name = 'p_rate'",
    );
    let stalled = rate().await.expect("rate").expect("a rate");
    assert!(
        (stalled - 10.0 * 1024.0 * 1024.0 / 20.0).abs() < 0.05 * stalled,
        "{stalled}"
    );
}
