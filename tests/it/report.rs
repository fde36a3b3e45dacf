//! `pgmove report`: a copy-cdc migration with writes during change capture and a verified
//! cutover, then its report as JSON (the numbers the state store recorded), Markdown and an
//! HTML page rendered in headless Chromium and looked at: the page is drawn, its charts are
//! there in their colour.

use crate::support;

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use support::online::{
    self, check_running, pgmove, run, spawn_logged, text, wait_loaded, write_plan,
};

/// The colour of the report's chart lines (src/migration_report/svg.rs `LINE`).
const LINE_RGB: [u8; 3] = [0x1f, 0x6f, 0xb4];

#[test]
fn a_migrations_report_tells_its_steps_load_lag_outage_and_verification() {
    let (src, dst) = online::pair();
    src.psql(
        online::DB,
        "CREATE TABLE items (id bigserial PRIMARY KEY, name text, at timestamptz DEFAULT now());
         INSERT INTO items (name) SELECT 'item ' || g FROM generate_series(1, 20000) g;",
    );
    let dir = tempfile::tempdir().expect("tempdir");
    let plan = write_plan(
        dir.path(),
        "rep",
        &src,
        &dst,
        "cutover:\n  verify: checksums\n  max_lag: 5s\n",
    );
    let p = plan.to_str().expect("utf8");
    let log = dir.path().join("apply.log");
    let mut apply_cmd = pgmove(&online::apply_args(&plan), &src, &dst);
    apply_cmd.env("PGMOVE_TEST_FORCE", "lag-samples-every-second");
    let mut apply = spawn_logged(apply_cmd, &log);
    wait_loaded(&dst, "rep", &mut apply, &log);

    // Writes during change capture until three lag samples are recorded.
    let deadline = Instant::now() + Duration::from_secs(90);
    let mut written = 0;
    loop {
        src.psql(
            online::DB,
            "INSERT INTO items (name) SELECT 'during ' || g FROM generate_series(1, 200) g;
             UPDATE items SET name = name || '+' WHERE id % 97 = 0;",
        );
        written += 200;
        let samples = dst.psql(
            online::DB,
            "SELECT count(*) FROM pgmove.lag_samples WHERE plan_name = 'rep'",
        );
        if samples.parse::<i64>().unwrap_or(0) >= 3 {
            break;
        }
        check_running(&mut apply, &log);
        assert!(
            Instant::now() < deadline,
            "no lag samples after {written} rows written\n{}",
            online::read_log(&log)
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    let out = run(&["cutover", p, "--yes"], &src, &dst);
    assert_eq!(out.status.code(), Some(0), "cutover: {}", text(&out));
    let deadline = Instant::now() + Duration::from_secs(60);
    while apply.try_wait().expect("try_wait").is_none() {
        assert!(Instant::now() < deadline, "apply did not end after cutover");
        std::thread::sleep(Duration::from_millis(100));
    }

    // JSON: the numbers as recorded.
    let out = run(&["report", p, "--format", "json"], &src, &dst);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let j: serde_json::Value =
        serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("{e}: {}", text(&out)));
    assert_eq!(j["schema_version"], 1);
    assert_eq!(j["plan"], "rep");
    assert_eq!(j["strategy"], "copy-cdc");
    assert_eq!(j["phase"], "live");
    let steps: Vec<&str> = j["timeline"]
        .as_array()
        .expect("timeline")
        .iter()
        .map(|s| s["step"].as_str().expect("step"))
        .collect();
    for want in [
        "copy",
        "loaded",
        "cutover-fence",
        "cutover-verify",
        "cutover-live",
    ] {
        assert!(steps.contains(&want), "{want} not in {steps:?}");
    }
    for s in j["timeline"].as_array().expect("timeline") {
        assert!(s["end"].as_f64() >= s["start"].as_f64(), "{s}");
    }
    // The load copied the 20,000 rows there were at its snapshot.
    assert_eq!(j["load"]["rows"], 20000, "{}", j["load"]);
    assert!(j["load"]["bytes"].as_i64().expect("bytes") > 0);
    assert!(j["load"]["rows_per_second"].as_f64().expect("rows/s") > 0.0);
    // Change capture applied what was written after it, with its lag recorded over time.
    let live = src.psql(online::DB, "SELECT count(*) FROM items");
    assert_eq!(live, dst.psql(online::DB, "SELECT count(*) FROM items"));
    assert!(j["capture"]["changes"].as_i64().expect("changes") >= written);
    assert!(j["capture"]["lag"].as_array().expect("lag").len() >= 3);
    // The cutover: its outage, whose parts add up to it, and the verification.
    let c = &j["cutover"];
    assert_eq!(c["state"], "done", "{c}");
    assert_eq!(c["verify"], "checksums");
    assert_eq!(c["verify_identical"], true);
    // Verified ahead of the fence (copy-cdc): only what changed since was compared again.
    assert!(
        c["pre_verify_secs"].as_f64().expect("pre_verify_secs") > 0.0,
        "{c}"
    );
    assert_eq!(c["recheck"]["full"], false, "{c}");
    let outage = c["write_outage_secs"].as_f64().expect("outage");
    let parts: f64 = c["outage_parts"]
        .as_array()
        .expect("parts")
        .iter()
        .map(|p| p[1].as_f64().expect("secs"))
        .sum();
    assert!(
        parts > 0.0 && parts <= outage + 0.5,
        "parts {parts} of {outage}: {c}"
    );

    // Markdown: every section.
    let out = run(&["report", p, "--format", "markdown"], &src, &dst);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let md = String::from_utf8_lossy(&out.stdout);
    for want in [
        "## Timeline",
        "## Load",
        "20000 rows",
        "## Change capture",
        "## Cutover",
        "identical (checksums)",
        "Verified ahead of the fence in",
    ] {
        assert!(md.contains(want), "{want:?} missing in\n{md}");
    }

    // HTML, rendered and looked at.
    let out = run(&["report", p, "--format", "html"], &src, &dst);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let html = dir.path().join("report.html");
    std::fs::write(&html, &out.stdout).expect("write html");
    let page = String::from_utf8_lossy(&out.stdout);
    assert_eq!(page.matches("<svg").count(), 4, "steps, load, lag, outage");
    assert!(!page.contains("<script") && !page.contains("https://"));
    let png = dir.path().join("report.png");
    screenshot(&html, &png);
    let look = look_at(&png);
    assert!(
        look.line_pixels > 500,
        "the charts' lines are not drawn: {} pixels of their colour",
        look.line_pixels
    );
    assert!(
        look.dark_pixels > 2000,
        "the page's text is not drawn: {} dark pixels",
        look.dark_pixels
    );
    assert!(look.white_ratio > 0.5, "not a readable page: {look:?}");
    // Kept for people when asked (PGMOVE_KEEP_REPORT=DIR).
    if let Some(keep) = std::env::var_os("PGMOVE_KEEP_REPORT") {
        let keep = Path::new(&keep);
        let _ = std::fs::create_dir_all(keep);
        let _ = std::fs::copy(&png, keep.join("report.png"));
        let _ = std::fs::copy(&html, keep.join("report.html"));
    }

    // html is the report's alone; an unknown plan is an error.
    let out = run(&["status", p, "--format", "html"], &src, &dst);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert!(text(&out).contains("pgmove report"), "{}", text(&out));
    let other = write_plan(dir.path(), "never", &src, &dst, "");
    let out = run(
        &["report", other.to_str().expect("utf8"), "--format", "json"],
        &src,
        &dst,
    );
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(
        text(&out).contains("no record of plan never"),
        "{}",
        text(&out)
    );
}

/// The lag samples are written off the apply path: while `pgmove.lag_samples` is locked on the
/// target (each sample waits for the lock until it gives up, 2 s), change capture still applies
/// each change as it comes; once the lock is gone, samples are recorded again.
#[test]
fn a_locked_lag_samples_table_never_holds_apply_back() {
    let (src, dst) = online::pair();
    src.psql(online::DB, "CREATE TABLE ticks (id int PRIMARY KEY)");
    let dir = tempfile::tempdir().expect("tempdir");
    let plan = write_plan(dir.path(), "lagoff", &src, &dst, "");
    let log = dir.path().join("apply.log");
    let mut apply_cmd = pgmove(&online::apply_args(&plan), &src, &dst);
    apply_cmd.env("PGMOVE_TEST_FORCE", "lag-samples-every-second");
    let mut apply = spawn_logged(apply_cmd, &log);
    wait_loaded(&dst, "lagoff", &mut apply, &log);
    let samples = || {
        dst.psql(
            online::DB,
            "SELECT count(*) FROM pgmove.lag_samples WHERE plan_name = 'lagoff'",
        )
        .parse::<i64>()
        .unwrap_or(0)
    };
    let visible = |id: i32| {
        dst.psql(
            online::DB,
            &format!("SELECT count(*) FROM ticks WHERE id = {id}"),
        ) == "1"
    };
    // Samples are recorded while changes flow.
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut id = 0;
    while samples() == 0 {
        id += 1;
        src.psql(online::DB, &format!("INSERT INTO ticks VALUES ({id})"));
        check_running(&mut apply, &log);
        assert!(
            Instant::now() < deadline,
            "no lag sample\n{}",
            online::read_log(&log)
        );
        std::thread::sleep(Duration::from_millis(200));
    }

    // A session holds the samples' table for 15 s.
    let mut locker = Command::new(support::bindir().join("psql"))
        .args(["-X", "-q", "-v", "ON_ERROR_STOP=1", "-h", "127.0.0.1", "-U", "postgres"])
        .args(["-p", &dst.port.to_string(), "-d", online::DB])
        .args([
            "-c",
            "BEGIN; LOCK TABLE pgmove.lag_samples IN ACCESS EXCLUSIVE MODE; SELECT pg_sleep(15); COMMIT;",
        ])
        .env("PGPASSWORD", &dst.password)
        .env("PGSSLMODE", "disable")
        .stdout(std::process::Stdio::null())
        .spawn()
        .expect("psql");
    let deadline = Instant::now() + Duration::from_secs(10);
    while dst.psql(
        online::DB,
        "SELECT count(*) FROM pg_locks l JOIN pg_class c ON c.oid = l.relation
          WHERE c.relname = 'lag_samples' AND l.mode = 'AccessExclusiveLock' AND l.granted",
    ) != "1"
    {
        assert!(Instant::now() < deadline, "the lock was not taken");
        std::thread::sleep(Duration::from_millis(50));
    }
    // One change at a time, a sample due at each: each is applied as it comes. (Were the
    // samples written inline, apply would stop for 2 s at each, and each change after the
    // first would wait for that.)
    let mut took = Vec::new();
    for _ in 0..8 {
        id += 1;
        src.psql(online::DB, &format!("INSERT INTO ticks VALUES ({id})"));
        let t = Instant::now();
        while !visible(id) {
            check_running(&mut apply, &log);
            assert!(
                t.elapsed() < Duration::from_secs(30),
                "change {id} not applied\n{}",
                online::read_log(&log)
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        took.push(t.elapsed());
        std::thread::sleep(Duration::from_millis(300));
    }
    took.sort();
    assert!(
        took[took.len() / 2] < Duration::from_millis(1000),
        "apply was held back by the locked lag samples: {took:?}"
    );
    assert!(
        locker.try_wait().expect("try_wait").is_none(),
        "the lock ended before the changes were applied: {took:?}"
    );

    // The lock gone, samples are recorded again (on a new connection: the one waiting for the
    // lock was given up), of what was applied after it.
    assert!(locker.wait().expect("wait").success());
    id += 1;
    src.psql(online::DB, &format!("INSERT INTO ticks VALUES ({id})"));
    while !visible(id) {
        check_running(&mut apply, &log);
        std::thread::sleep(Duration::from_millis(20));
    }
    let after = dst.psql(
        online::DB,
        "SELECT applied_lsn FROM pgmove.progress WHERE plan_name = 'lagoff'",
    );
    let fresh = || {
        dst.psql(
            online::DB,
            &format!("SELECT count(*) FROM pgmove.lag_samples WHERE plan_name = 'lagoff' AND applied_lsn >= '{after}'"),
        ) != "0"
    };
    let deadline = Instant::now() + Duration::from_secs(60);
    while !fresh() {
        id += 1;
        src.psql(online::DB, &format!("INSERT INTO ticks VALUES ({id})"));
        check_running(&mut apply, &log);
        assert!(
            Instant::now() < deadline,
            "no lag sample after the lock ended\n{}",
            online::read_log(&log)
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    online::terminate(&mut apply, &log);
}

/// Renders `html` with headless Chromium into `png` (1000 px wide, the whole report's height).
fn screenshot(html: &Path, png: &Path) {
    let chromium = ["chromium", "chromium-browser", "google-chrome"]
        .into_iter()
        .find(|b| which::which(b).is_ok())
        .unwrap_or_else(|| {
            panic!("no chromium on PATH: the report's rendering test needs it (bash scripts/install-deps.sh installs Debian's chromium)")
        });
    let profile = tempfile::tempdir().expect("profile dir");
    let out = Command::new(chromium)
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--hide-scrollbars",
            "--no-first-run",
            "--window-size=1000,2400",
        ])
        .arg(format!("--user-data-dir={}", profile.path().display()))
        .arg(format!("--screenshot={}", png.display()))
        .arg(format!("file://{}", html.display()))
        .env("HOME", profile.path())
        .output()
        .expect("run chromium");
    assert!(
        out.status.success() && png.exists(),
        "chromium did not render the report: {}",
        text(&out)
    );
}

/// What a screenshot shows, pixel by pixel.
#[derive(Debug)]
struct Look {
    /// Pixels of the charts' line colour (within a small tolerance).
    line_pixels: usize,
    /// Near-black pixels: text.
    dark_pixels: usize,
    /// The share of near-white pixels: the page's background.
    white_ratio: f64,
}

fn look_at(png: &Path) -> Look {
    let decoder = png::Decoder::new(std::fs::File::open(png).expect("open png"));
    let mut reader = decoder.read_info().expect("png header");
    let mut buf = vec![0; reader.output_buffer_size()];
    let info = reader.next_frame(&mut buf).expect("png frame");
    let channels = info.color_type.samples();
    assert!(channels >= 3, "a colour screenshot: {:?}", info.color_type);
    let px = &buf[..info.buffer_size()];
    let (mut line, mut dark, mut white, mut all) = (0, 0, 0, 0);
    for p in px.chunks_exact(channels) {
        all += 1;
        let (r, g, b) = (p[0], p[1], p[2]);
        if [r, g, b]
            .iter()
            .zip(LINE_RGB)
            .all(|(a, b)| a.abs_diff(b) <= 12)
        {
            line += 1;
        }
        if r < 90 && g < 90 && b < 90 {
            dark += 1;
        }
        if r > 240 && g > 240 && b > 240 {
            white += 1;
        }
    }
    Look {
        line_pixels: line,
        dark_pixels: dark,
        white_ratio: white as f64 / all.max(1) as f64,
    }
}
