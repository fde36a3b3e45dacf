//! The test harness itself: real clusters, several at once, with the settings asked for.

use crate::support;

use std::path::PathBuf;
use std::process::Stdio;
use std::time::{Duration, Instant};

use support::{Cluster, Options, Profile};

#[test]
fn two_clusters_at_once_with_different_settings() {
    let logical = Cluster::start(Options::logical().set("max_slot_wal_keep_size", "'1GB'"));
    let plain = Cluster::start(Options::default());
    assert_ne!(logical.port, plain.port);
    assert_eq!(logical.show("wal_level"), "logical");
    assert_eq!(plain.show("wal_level"), "replica");
    assert_eq!(logical.show("max_slot_wal_keep_size"), "1GB");
    assert_eq!(plain.show("max_slot_wal_keep_size"), "-1");
    // Each really is a separate server.
    logical.psql("postgres", "CREATE TABLE only_here (id int)");
    let out = plain.psql_output("postgres", "SELECT * FROM only_here");
    assert!(!out.status.success());
}

#[test]
fn logical_cluster_can_create_a_logical_slot() {
    let c = Cluster::start(Options::logical());
    let lsn = c.psql(
        "postgres",
        "SELECT lsn FROM pg_create_logical_replication_slot('harness_probe', 'pgoutput')",
    );
    assert!(lsn.contains('/'), "{lsn}");
    c.psql(
        "postgres",
        "SELECT pg_drop_replication_slot('harness_probe')",
    );
}

#[test]
fn dropping_a_cluster_stops_the_server_and_removes_its_files() {
    let c = Cluster::start(Options::default());
    let port = c.port;
    let dir = c.data_dir();
    assert!(dir.is_dir());
    drop(c);
    assert!(!dir.exists(), "data dir {} still there", dir.display());
    assert!(std::net::TcpStream::connect(("127.0.0.1", port)).is_err());
}

#[test]
fn a_panicking_test_still_stops_its_cluster() {
    let (tx, rx) = std::sync::mpsc::channel();
    let result = std::thread::spawn(move || {
        let c = Cluster::start(Options::default());
        tx.send((c.port, c.data_dir())).expect("send");
        panic!("deliberate");
    })
    .join();
    assert!(result.is_err());
    let (port, dir) = rx.recv().expect("recv");
    assert!(!dir.exists());
    assert!(std::net::TcpStream::connect(("127.0.0.1", port)).is_err());
}

#[test]
fn a_shared_cluster_serves_fresh_databases_to_several_tests() {
    let c = support::shared(Profile::Plain);
    assert!(
        std::ptr::eq(c, support::shared(Profile::Plain)),
        "one per profile"
    );
    assert!(!std::ptr::eq(c, support::shared(Profile::Logical)));
    assert_eq!(
        support::shared(Profile::Logical).show("wal_level"),
        "logical"
    );
    assert_eq!(support::shared(Profile::Ssl).show("ssl"), "on");
    let (a, b) = (c.fresh_db("harness"), c.fresh_db("harness"));
    assert_ne!(a, b);
    c.psql(&a, "CREATE TABLE only_here (id int)");
    assert!(!c
        .psql_output(&b, "SELECT * FROM only_here")
        .status
        .success());
}

const OUTLIVE_TEST: &str = "harness::no_shared_cluster_outlives_the_test_process";

/// A test process (a child running this test) starts a shared cluster and prints its port and
/// directory, then ends: by itself, and killed by SIGKILL. Either way the server stops and its
/// directory goes, though nothing dropped the cluster.
#[test]
fn no_shared_cluster_outlives_the_test_process() {
    use std::io::BufRead;
    if support::is_child(OUTLIVE_TEST) {
        let c = support::shared(Profile::Plain);
        println!("shared cluster: {} {}", c.port, c.data_dir().display());
        if std::env::var_os("PGMOVE_TEST_HANG").is_some() {
            std::thread::sleep(Duration::from_secs(600));
        }
        return;
    }
    for killed in [false, true] {
        let mut cmd = support::child_test(OUTLIVE_TEST, &[]);
        if killed {
            cmd.env("PGMOVE_TEST_HANG", "1");
        }
        let mut child = cmd
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("run the test binary");
        let stdout = child.stdout.take().expect("stdout");
        let mut lines = std::io::BufReader::new(stdout).lines();
        let line = lines
            .by_ref()
            .map_while(Result::ok)
            .find_map(|l| l.split_once("shared cluster: ").map(|(_, c)| c.to_string()))
            .expect("the child prints its cluster");
        let mut words = line.splitn(2, ' ');
        let port: u16 = words.next().and_then(|p| p.parse().ok()).expect("port");
        let dir = PathBuf::from(words.next().expect("dir"));
        assert!(dir.is_dir(), "{}", dir.display());
        assert!(std::net::TcpStream::connect(("127.0.0.1", port)).is_ok());
        if killed {
            child.kill().expect("SIGKILL the child");
        }
        lines.for_each(drop);
        let status = child.wait().expect("wait");
        assert_eq!(status.success(), !killed, "{status}");
        let deadline = Instant::now() + Duration::from_secs(60);
        while dir.exists() || std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
            assert!(
                Instant::now() < deadline,
                "the server on port {port} ({}) outlived its test process (killed: {killed})",
                dir.display()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}
