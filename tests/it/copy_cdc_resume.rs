//! copy-cdc: a split table a killed run left half copied resumes by chunk when its done
//! chunks are unchanged since their snapshot, and is copied again whole otherwise.

use crate::support;

use std::path::Path;
use std::process::Child;
use std::time::{Duration, Instant};

use support::online::{self, read_log, start_apply, wait_caught_up, wait_loaded, PlanYaml, DB};
use support::Cluster;

/// Where the first run is held (and killed): after three chunks committed, with one worker
/// (largest first, so two or three of `big`'s: `small` may go first, the worker starting
/// before the queue is ordered).
const POINT: &str = "copy-cdc-chunks-committed-3";

/// Each chunk of `big` on the target: chunk number, finish time, snapshot LSN.
fn big_chunks(dst: &Cluster) -> Vec<(String, String, String)> {
    dst.psql(
        DB,
        "SELECT chunk, finished_at, snapshot_lsn FROM pgmove.copy_progress WHERE table_name = 'big' ORDER BY chunk",
    )
    .lines()
    .map(|l| {
        let p: Vec<&str> = l.split('|').collect();
        (p[0].to_string(), p[1].to_string(), p[2].to_string())
    })
    .collect()
}

/// Every row of `big`, in key order, as one digest.
fn digest(c: &Cluster) -> String {
    c.psql(
        DB,
        "SELECT count(*) || ' ' || md5(string_agg(id || ':' || v, ',' ORDER BY id)) FROM big",
    )
}

/// A source with `big` (about 5 MB, split in 1 MB chunks, room left in each page for an
/// update in place) and a small table; a first apply
/// killed with SIGKILL once chunks 0 and 1 of `big` are committed. Returns the servers, the
/// plan's directory and the chunks recorded when it was killed.
fn killed_mid_split(
    name: &str,
) -> (
    Cluster,
    Cluster,
    tempfile::TempDir,
    Vec<(String, String, String)>,
) {
    let (src, dst) = online::pair();
    src.psql(
        DB,
        "CREATE TABLE big (id int PRIMARY KEY, v text) WITH (fillfactor = 90);
         INSERT INTO big SELECT g, repeat(md5(g::text), 3) FROM generate_series(1, 40000) g;
         CREATE TABLE small (id int PRIMARY KEY, v text);
         INSERT INTO small SELECT g, md5(g::text) FROM generate_series(1, 100) g;",
    );
    let dir = tempfile::tempdir().expect("tempdir");
    let plan = PlanYaml {
        jobs: Some(1),
        extra: "index_jobs: 1\nsplit_tables_larger_than: 1MB\n",
        ..PlanYaml::default()
    }
    .write(dir.path(), name, &src, &dst);
    let log = dir.path().join("first.log");
    let mut cmd = online::pgmove(&online::apply_args(&plan), &src, &dst);
    cmd.env("PGMOVE_TEST_PAUSE", POINT);
    let mut child = online::spawn_logged(cmd, &log);
    let deadline = Instant::now() + Duration::from_secs(120);
    while !read_log(&log).contains(&format!("test pause at {POINT}")) {
        online::check_running(&mut child, &log);
        assert!(
            Instant::now() < deadline,
            "apply did not reach {POINT}\n{}",
            read_log(&log)
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    child.kill().expect("SIGKILL");
    let _ = child.wait();
    let before = big_chunks(&dst);
    assert!(
        before.len() >= 2 && before[0].0 == "0",
        "chunks done when killed: {before:?}"
    );
    let count: i32 = dst
        .psql(
            DB,
            "SELECT max(chunks) FROM pgmove.copy_progress WHERE table_name = 'big'",
        )
        .parse()
        .expect("int");
    assert!(
        count as usize > before.len() + 1,
        "big is split in {count} chunk(s) only, {} done",
        before.len()
    );
    (src, dst, dir, before)
}

/// The rerun's apply, stopped (SIGTERM, then SIGKILL) when the test ends, also on a failed
/// assertion.
struct Running(Child);

impl Drop for Running {
    fn drop(&mut self) {
        online::stop(&mut self.0);
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Reruns apply (online) until the load is done and change capture caught up with a write made
/// after the load; returns the running apply and its log.
fn rerun(src: &Cluster, dst: &Cluster, dir: &Path, name: &str) -> (Running, String) {
    let plan = dir.join(format!("{name}.yaml"));
    let log = dir.join("rerun.log");
    let mut child = start_apply(&plan, src, dst, &log);
    wait_loaded(dst, name, &mut child, &log);
    src.psql(
        DB,
        "UPDATE big SET v = 'after the load' WHERE id = 3;
         INSERT INTO big VALUES (100001, 'inserted after the load');",
    );
    wait_caught_up(src, dst, name, &mut child, &log);
    let text = read_log(&log);
    (Running(child), text)
}

/// The target equals the source, row by row and by `pgmove verify`; every chunk of `big` is
/// in one snapshot, later than the killed run's.
fn assert_identical(src: &Cluster, dst: &Cluster, dir: &Path, name: &str, killed_lsn: &str) {
    assert_eq!(digest(dst), digest(src), "big differs");
    assert_eq!(
        dst.psql(DB, "SELECT count(*) FROM small"),
        "100",
        "small differs"
    );
    online::verify(&dir.join(format!("{name}.yaml")), src, dst);
    let after = big_chunks(dst);
    let lsns: std::collections::BTreeSet<&str> = after.iter().map(|c| c.2.as_str()).collect();
    assert_eq!(lsns.len(), 1, "chunks from several snapshots: {after:?}");
    assert!(
        !lsns.contains(killed_lsn),
        "chunks still at the killed run's snapshot: {after:?}"
    );
}

#[test]
fn a_killed_split_table_resumes_by_chunk_when_nothing_changed() {
    let (src, dst, dir, before) = killed_mid_split("resume");
    let (_apply, log) = rerun(&src, &dst, dir.path(), "resume");
    let after = big_chunks(&dst);
    // The done chunks were kept, not copied again.
    for (chunk, finished, _) in &before {
        assert!(
            after.iter().any(|c| &c.0 == chunk && &c.1 == finished),
            "chunk {chunk} copied again: {after:?}\n{log}"
        );
    }
    assert!(
        log.contains("resuming a split table") && log.contains(&format!("kept={}", before.len())),
        "{log}"
    );
    assert!(!log.contains("copied again whole"), "{log}");
    // The rows copied by the rerun are those of the missing chunks (and small), not big's all.
    let kept_rows: i64 = dst
        .psql(
            DB,
            &format!(
                "SELECT sum(rows) FROM pgmove.copy_progress WHERE table_name = 'big' AND chunk < {}",
                before.len()
            ),
        )
        .parse()
        .expect("int");
    assert!(kept_rows > 0 && kept_rows < 40000, "{kept_rows}");
    assert_identical(&src, &dst, dir.path(), "resume", &before[0].2);
}

#[test]
fn a_killed_split_table_whose_done_chunk_changed_is_copied_again_whole() {
    let (src, dst, dir, before) = killed_mid_split("changed");
    // Rows 1 and 2 are in block 0, in chunk 0.
    assert_eq!(
        src.psql(
            DB,
            "SELECT count(*) FROM big WHERE id IN (1, 2) AND ctid < '(1,0)'"
        ),
        "2"
    );
    src.psql(
        DB,
        "UPDATE big SET v = 'changed between the runs' WHERE id = 1; DELETE FROM big WHERE id = 2;",
    );
    let (_apply, log) = rerun(&src, &dst, dir.path(), "changed");
    assert!(
        log.contains("copied again whole") && log.contains("chunk 0"),
        "{log}"
    );
    let after = big_chunks(&dst);
    assert!(
        !after
            .iter()
            .any(|c| c.0 == before[0].0 && c.1 == before[0].1),
        "chunk 0 kept although it changed: {after:?}"
    );
    assert_eq!(
        dst.psql(DB, "SELECT v FROM big WHERE id = 1"),
        "changed between the runs"
    );
    assert_eq!(dst.psql(DB, "SELECT count(*) FROM big WHERE id = 2"), "0");
    assert_identical(&src, &dst, dir.path(), "changed", &before[0].2);
}

#[test]
fn a_killed_split_table_rewritten_by_vacuum_full_is_copied_again_whole() {
    let (src, dst, dir, before) = killed_mid_split("rewritten");
    src.psql(DB, "VACUUM FULL big");
    let (_apply, log) = rerun(&src, &dst, dir.path(), "rewritten");
    assert!(
        log.contains("copied again whole") && log.contains("relfilenode"),
        "{log}"
    );
    let after = big_chunks(&dst);
    assert!(
        !after
            .iter()
            .any(|c| c.0 == before[0].0 && c.1 == before[0].1),
        "chunk 0 kept although the table was rewritten: {after:?}"
    );
    assert_identical(&src, &dst, dir.path(), "rewritten", &before[0].2);
}

#[test]
fn a_killed_split_table_with_a_row_updated_in_place_in_a_done_chunk_is_copied_again_whole() {
    let (src, dst, dir, before) = killed_mid_split("inplace");
    // The new version stays in block 0: chunk 0 holds as many rows as were copied, only the
    // new row's xmin (not seen by the chunk's snapshot) tells it changed.
    src.psql(DB, "UPDATE big SET v = upper(v) WHERE id = 1;");
    assert_eq!(
        src.psql(DB, "SELECT (ctid::text::point)[0] FROM big WHERE id = 1"),
        "0",
        "the update left block 0"
    );
    let (_apply, log) = rerun(&src, &dst, dir.path(), "inplace");
    assert!(
        log.contains("copied again whole") && log.contains("inserted or updated since"),
        "{log}"
    );
    let after = big_chunks(&dst);
    assert!(
        !after
            .iter()
            .any(|c| c.0 == before[0].0 && c.1 == before[0].1),
        "chunk 0 kept although a row of it changed: {after:?}"
    );
    assert_eq!(
        dst.psql(DB, "SELECT v = upper(v) FROM big WHERE id = 1"),
        "t"
    );
    assert_identical(&src, &dst, dir.path(), "inplace", &before[0].2);
}
