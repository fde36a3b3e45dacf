//! The test harness itself: real clusters, several at once, with the settings asked for.

use crate::support;

use support::{Cluster, Options};

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
