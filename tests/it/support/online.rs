//! Helpers for the tests that run `pgmove` against two harness clusters (database `shop`): a
//! plan file, the binary with the clusters' passwords, a running apply and its stderr log,
//! waits on its progress, and SIGTERM.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use super::{Cluster, Options};

/// The database every plan written here points at, on both servers.
pub const DB: &str = "shop";

/// The `cdc:` section most copy-cdc plans use.
pub const INSERT_ONLY: &str = "cdc:\n  tables_without_key: insert-only\n";

/// Writes `<dir>/<name>.yaml`: a copy-cdc plan with `jobs: 2` from `src` to `dst` (database
/// [`DB`]), followed by the YAML in `extra`.
pub fn write_plan(dir: &Path, name: &str, src: &Cluster, dst: &Cluster, extra: &str) -> PathBuf {
    PlanYaml {
        extra,
        ..PlanYaml::default()
    }
    .write(dir, name, src, dst)
}

/// A plan file from `src` to `dst`, passwords from `SRC_PW`/`DST_PW`, TLS off.
pub struct PlanYaml<'a> {
    /// The `strategy:` line, when given.
    pub strategy: Option<&'a str>,
    /// The `jobs:` line, when given.
    pub jobs: Option<u32>,
    /// The database on both servers.
    pub db: &'a str,
    /// YAML after the connections.
    pub extra: &'a str,
}

impl Default for PlanYaml<'_> {
    /// copy-cdc, `jobs: 2`, [`DB`], nothing more.
    fn default() -> Self {
        PlanYaml {
            strategy: Some("copy-cdc"),
            jobs: Some(2),
            db: DB,
            extra: "",
        }
    }
}

impl PlanYaml<'_> {
    /// Writes `<dir>/<name>.yaml`.
    pub fn write(&self, dir: &Path, name: &str, src: &Cluster, dst: &Cluster) -> PathBuf {
        let path = dir.join(format!("{name}.yaml"));
        let strategy = self
            .strategy
            .map(|s| format!("strategy: {s}\n"))
            .unwrap_or_default();
        let jobs = self
            .jobs
            .map(|j| format!("jobs: {j}\n"))
            .unwrap_or_default();
        let (db, extra) = (self.db, self.extra);
        std::fs::write(
            &path,
            format!(
                "version: 1\nname: {name}\n{strategy}{jobs}source:\n  dsn: postgres://postgres@127.0.0.1:{}/{db}\n  password: {{env: SRC_PW}}\n  sslmode: disable\ntarget:\n  dsn: postgres://postgres@127.0.0.1:{}/{db}\n  password: {{env: DST_PW}}\n  sslmode: disable\n{extra}",
                src.port, dst.port
            ),
        )
        .expect("write plan");
        path
    }
}

/// The pgmove binary with `args`, the clusters' passwords in `SRC_PW`/`DST_PW`, and no colour.
pub fn pgmove(args: &[&str], src: &Cluster, dst: &Cluster) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_pgmove"));
    c.args(args)
        .env("SRC_PW", &src.password)
        .env("DST_PW", &dst.password)
        .env("NO_COLOR", "1");
    c
}

/// Runs pgmove to its end.
pub fn run(args: &[&str], src: &Cluster, dst: &Cluster) -> Output {
    pgmove(args, src, dst).output().expect("run pgmove")
}

/// Exit code, stdout and stderr of a run, for messages and `contains` checks.
pub fn text(out: &Output) -> String {
    format!(
        "exit {:?}\nstdout: {}\nstderr: {}",
        out.status.code(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// The run succeeded.
pub fn assert_ok(out: &Output) {
    assert!(out.status.success(), "{}", text(out));
}

/// Starts `cmd` in the background, its stdout discarded and its stderr written to `log`.
pub fn spawn_logged(mut cmd: Command, log: &Path) -> Child {
    let log = std::fs::File::create(log).expect("log file");
    cmd.stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .expect("start apply")
}

/// The arguments of `pgmove apply <plan> --yes`.
pub fn apply_args(plan: &Path) -> [&str; 3] {
    ["apply", plan.to_str().expect("utf8"), "--yes"]
}

/// Starts `pgmove apply <plan> --yes`, its stderr written to `log`.
pub fn start_apply(plan: &Path, src: &Cluster, dst: &Cluster, log: &Path) -> Child {
    spawn_logged(pgmove(&apply_args(plan), src, dst), log)
}

/// What apply logged so far (empty before the file exists).
pub fn read_log(log: &Path) -> String {
    std::fs::read_to_string(log).unwrap_or_default()
}

/// Waits (up to `secs`) until the pgmove process `child`, started with `PGMOVE_TEST_PAUSE`,
/// logged that it holds at `point`; panics with its log when it ended before, or at the
/// deadline.
pub fn wait_paused(child: &mut Child, log: &Path, point: &str, secs: u64) {
    let deadline = Instant::now() + Duration::from_secs(secs);
    while !read_log(log).contains(&format!("test pause at {point}")) {
        if let Ok(Some(s)) = child.try_wait() {
            panic!("pgmove ended before {point}: {s}\n{}", read_log(log));
        }
        assert!(
            Instant::now() < deadline,
            "pgmove did not reach {point} in {secs} s\n{}",
            read_log(log)
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Panics, with the log, when apply has ended.
pub fn check_running(child: &mut Child, log: &Path) {
    if let Ok(Some(status)) = child.try_wait() {
        panic!("apply ended: {status}\n{}", read_log(log));
    }
}

/// Waits until the full load is done (the run's phase is `loaded`, or already `replicating`):
/// change capture streams from here on.
pub fn wait_loaded(dst: &Cluster, plan: &str, child: &mut Child, log: &Path) {
    let deadline = Instant::now() + Duration::from_secs(180);
    loop {
        let out = dst.psql_output(
            DB,
            &format!("SELECT phase FROM pgmove.runs WHERE plan_name = '{plan}'"),
        );
        if matches!(
            String::from_utf8_lossy(&out.stdout).trim(),
            "loaded" | "replicating"
        ) {
            return;
        }
        check_running(child, log);
        assert!(
            Instant::now() < deadline,
            "full load did not finish\n{}",
            read_log(log)
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Ends the source's current WAL segment (`pg_switch_wal()`).
pub fn switch_wal(src: &Cluster) {
    src.psql(DB, "SELECT pg_switch_wal()");
}

/// Whether `pgmove.progress.applied_lsn` of the plan is at or past `goal`.
pub fn applied_at_least(dst: &Cluster, plan: &str, goal: &str) -> bool {
    let out = dst.psql_output(
        DB,
        &format!("SELECT applied_lsn >= '{goal}' FROM pgmove.progress WHERE plan_name = '{plan}'"),
    );
    String::from_utf8_lossy(&out.stdout).trim() == "t"
}

/// `pg_switch_wal()` on the source, then [`wait_caught_up_within`] 180 seconds.
pub fn wait_caught_up(src: &Cluster, dst: &Cluster, plan: &str, child: &mut Child, log: &Path) {
    switch_wal(src);
    wait_caught_up_within(src, dst, plan, child, log, 180);
}

/// Waits (at most `secs`) until the target applied everything the source has written now:
/// `pgmove.progress.applied_lsn` reaches the source's `pg_current_wal_insert_lsn()`. The
/// insert position, as `pg_current_wal_lsn()` is only what was written out, and with
/// asynchronous commit a transaction's commit record may not be yet. Panics, with the log,
/// when apply ends first.
pub fn wait_caught_up_within(
    src: &Cluster,
    dst: &Cluster,
    plan: &str,
    child: &mut Child,
    log: &Path,
    secs: u64,
) {
    let goal = src.psql(DB, "SELECT pg_current_wal_insert_lsn()");
    let deadline = Instant::now() + Duration::from_secs(secs);
    loop {
        if applied_at_least(dst, plan, &goal) {
            return;
        }
        check_running(child, log);
        assert!(
            Instant::now() < deadline,
            "change capture did not catch up to {goal}\n{}",
            read_log(log)
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Sends SIGTERM to the child.
pub fn sigterm(child: &Child) {
    let _ = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status();
}

/// SIGTERM; apply must stop cleanly.
pub fn terminate(child: &mut Child, log: &Path) {
    sigterm(child);
    let status = child.wait().expect("wait");
    assert!(
        status.success(),
        "apply did not stop cleanly: {status}\n{}",
        read_log(log)
    );
}

/// SIGTERM and wait, whatever the exit.
pub fn stop(child: &mut Child) {
    sigterm(child);
    let _ = child.wait();
}

/// Panics with the output unless `pgmove verify` succeeded.
pub fn assert_verified(out: &Output) {
    assert!(
        out.status.success(),
        "verify: {}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// `pgmove verify <plan>` must succeed.
pub fn verify(plan: &Path, src: &Cluster, dst: &Cluster) {
    let out = pgmove(&["verify", plan.to_str().expect("utf8")], src, dst)
        .output()
        .expect("verify");
    assert_verified(&out);
}

/// What cutover does for sequences: the target's take the source's values.
pub fn sync_sequences(src: &Cluster, dst: &Cluster) {
    let rows = src.psql(
        DB,
        "SELECT format('SELECT setval(%L, %s, %s);', format('%I.%I', schemaname, sequencename), coalesce(last_value, 1), (last_value IS NOT NULL)::text) FROM pg_sequences",
    );
    dst.psql(DB, &rows);
}

/// The plan's slot has not confirmed anything past what the target applied.
pub fn slot_confirmed_not_past_target(src: &Cluster, dst: &Cluster, plan: &str) {
    let confirmed = src.psql(
        DB,
        &format!("SELECT confirmed_flush_lsn FROM pg_replication_slots WHERE slot_name = 'pgmove_{plan}'"),
    );
    let applied = dst.psql_output(
        DB,
        &format!("SELECT applied_lsn FROM pgmove.progress WHERE plan_name = '{plan}'"),
    );
    let applied = String::from_utf8_lossy(&applied.stdout).trim().to_string();
    if applied.is_empty() {
        return; // nothing applied yet: the slot is at its creation point
    }
    let ok = dst.psql(
        DB,
        &format!("SELECT '{confirmed}'::pg_lsn <= '{applied}'::pg_lsn"),
    );
    assert_eq!(
        ok, "t",
        "slot confirmed {confirmed} beyond target's applied {applied}"
    );
}

/// A source with `wal_level=logical` and a plain target, both with an empty [`DB`].
pub fn pair() -> (Cluster, Cluster) {
    let src = Cluster::start(Options::logical());
    let dst = Cluster::start(Options::default());
    src.create_db(DB);
    dst.create_db(DB);
    (src, dst)
}
