//! A real streaming standby of a harness cluster: [`Cluster::standby_of`] takes a base backup
//! of a running primary (`pg_basebackup -R`, which writes `primary_conninfo` and
//! `standby.signal`) and starts it in hot standby on a port of its own. It replays what the
//! primary writes; `pg_is_in_recovery()` is true on it.

use std::process::Command;

use super::{chown_postgres, free_port, run_as, watchdog, Cluster, SUPERUSER};

impl Cluster {
    /// A hot standby streaming from `primary` (which must allow replication connections: the
    /// harness's pg_hba.conf does, and `Options::logical()` gives it WAL senders). Dropped, it
    /// stops and is removed like any cluster.
    pub fn standby_of(primary: &Cluster) -> Cluster {
        let dir = tempfile::Builder::new()
            .prefix("pgmove-test-standby-")
            .tempdir()
            .expect("temp dir");
        if primary.as_postgres {
            chown_postgres(dir.path());
        }
        let data = dir.path().join("data");
        let conninfo = format!(
            "host=127.0.0.1 port={} user={SUPERUSER} password={} sslmode=disable",
            primary.port, primary.password
        );
        let out = run_as(
            primary.as_postgres,
            Command::new(primary.bindir.join("pg_basebackup"))
                .arg("-D")
                .arg(&data)
                .args([
                    "-d",
                    &conninfo,
                    "-R",
                    "-X",
                    "stream",
                    "--no-sync",
                    "-c",
                    "fast",
                ]),
        );
        assert!(
            out.status.success(),
            "pg_basebackup failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let log = dir.path().join("server.log");
        let mut attempts = 0;
        loop {
            attempts += 1;
            let port = free_port();
            // The backup holds the primary's postgresql.auto.conf (its port and socket
            // directory) and, from -R, primary_conninfo: later lines win.
            let auto = data.join("postgresql.auto.conf");
            let mut conf = std::fs::read_to_string(&auto).expect("read postgresql.auto.conf");
            conf.push_str(&format!(
                "\n# standby\nport = {port}\nunix_socket_directories = '{}'\nhot_standby = on\n",
                dir.path().display()
            ));
            std::fs::write(&auto, conf).expect("write postgresql.auto.conf");
            if primary.as_postgres {
                chown_postgres(&auto);
            }
            let out = run_as(
                primary.as_postgres,
                Command::new(primary.bindir.join("pg_ctl"))
                    .arg("-D")
                    .arg(&data)
                    .arg("-l")
                    .arg(&log)
                    .args(["-w", "-t", "60", "start"]),
            );
            if out.status.success() {
                let standby = Cluster {
                    watchdog: std::sync::Mutex::new(watchdog(
                        dir.path(),
                        &primary.bindir,
                        primary.as_postgres,
                    )),
                    dir,
                    port,
                    password: primary.password.clone(),
                    bindir: primary.bindir.clone(),
                    ca_file: None,
                    as_postgres: primary.as_postgres,
                };
                standby.wait_ready();
                return standby;
            }
            let log_text = std::fs::read_to_string(&log).unwrap_or_default();
            if attempts < 5 && log_text.contains("could not bind") {
                continue;
            }
            panic!(
                "standby start failed: {}\nserver log:\n{log_text}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
    }

    /// Waits until this standby has replayed everything `primary` has written so far.
    pub fn wait_replayed(&self, primary: &Cluster) {
        let lsn = primary.psql("postgres", "SELECT pg_current_wal_lsn()");
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
        loop {
            let done = self.psql(
                "postgres",
                &format!("SELECT pg_last_wal_replay_lsn() >= '{lsn}'::pg_lsn"),
            );
            if done == "t" {
                return;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "the standby did not replay up to {lsn} in 60 s"
            );
            std::thread::sleep(std::time::Duration::from_millis(100));
        }
    }
}
