//! A dump-restore apply killed with SIGKILL in the middle of its data restore, for the tests
//! that resume it (as it is, or after changing the target's state).

use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use super::{Cluster, Options};

/// Rows of each table.
pub const ROWS: usize = 40_000;

/// Two clusters with database `shop`, `tables` tables `t00`, `t01`, ... of [`ROWS`] rows on
/// the source, a dump-restore plan `name` (one job) and its apply, killed once at least five
/// data items are restored on the target.
pub struct KilledRestore {
    pub src: Cluster,
    pub dst: Cluster,
    pub tables: usize,
    _dir: tempfile::TempDir,
    plan: PathBuf,
    dump_dir: PathBuf,
}

impl KilledRestore {
    pub fn start(name: &str, tables: usize) -> KilledRestore {
        let src = Cluster::start(Options::default());
        src.create_db("shop");
        // Enough tables that the restore takes a while with one job.
        let mut sql = String::new();
        for i in 0..tables {
            sql.push_str(&format!(
                "CREATE TABLE t{i:02} (id int PRIMARY KEY, v text); INSERT INTO t{i:02} SELECT g, md5(g::text) FROM generate_series(1, {ROWS}) g;\n"
            ));
        }
        src.psql("shop", &sql);
        let dst = Cluster::start(Options::default());
        dst.create_db("shop");
        let dir = tempfile::tempdir().expect("tempdir");
        let plan = dir.path().join(format!("{name}.yaml"));
        std::fs::write(
            &plan,
            format!(
                "version: 1\nname: {name}\nstrategy: dump-restore\njobs: 1\nindex_jobs: 1\nsource:\n  dsn: postgres://postgres@127.0.0.1:{}/shop\n  password: {{env: SRC_PW}}\n  sslmode: disable\ntarget:\n  dsn: postgres://postgres@127.0.0.1:{}/shop\n  password: {{env: DST_PW}}\n  sslmode: disable\n",
                src.port, dst.port
            ),
        )
        .expect("write plan");
        let dump_dir = dir.path().join("dump");
        let killed = KilledRestore {
            src,
            dst,
            tables,
            _dir: dir,
            plan,
            dump_dir,
        };
        let mut child = killed.apply().spawn().expect("start apply");
        // Wait until some, not all, data items are restored, then kill -9.
        let deadline = Instant::now() + Duration::from_secs(120);
        loop {
            assert!(Instant::now() < deadline, "restore never started");
            let n = killed
                .dst
                .psql_output(
                    "shop",
                    "SELECT count(*) FROM pgmove.restore_items WHERE kind = 'TABLE DATA'",
                )
                .stdout;
            let n: usize = String::from_utf8_lossy(&n).trim().parse().unwrap_or(0);
            if n >= 5 {
                break;
            }
            if let Ok(Some(status)) = child.try_wait() {
                panic!("apply ended before it could be killed: {status}");
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        child.kill().expect("SIGKILL");
        let _ = child.wait();
        // Let any item left running by the killed process end.
        std::thread::sleep(Duration::from_millis(500));
        killed
    }

    /// `pgmove apply --yes` of the plan, into its dump directory (output discarded).
    pub fn apply(&self) -> Command {
        let mut c = Command::new(env!("CARGO_BIN_EXE_pgmove"));
        c.args([
            "apply",
            self.plan.to_str().expect("utf8"),
            "--yes",
            "--dump-dir",
        ])
        .arg(&self.dump_dir)
        .env("SRC_PW", &self.src.password)
        .env("DST_PW", &self.dst.password)
        .stdout(Stdio::null())
        .stderr(Stdio::null());
        c
    }

    /// The restore items the target recorded: `dump_id finished_at`, by dump id.
    pub fn finished_items(&self) -> Vec<String> {
        self.dst
            .psql(
                "shop",
                "SELECT dump_id || ' ' || finished_at FROM pgmove.restore_items ORDER BY dump_id",
            )
            .lines()
            .map(str::to_string)
            .collect()
    }

    /// Every table holds all its rows on the target.
    pub fn assert_every_table_complete(&self) {
        for i in 0..self.tables {
            assert_eq!(
                self.dst
                    .psql("shop", &format!("SELECT count(*) FROM t{i:02}")),
                ROWS.to_string()
            );
        }
    }
}
