//! Servers of other PostgreSQL majors (fetched by `scripts/install-deps.sh`), and moves between
//! majors on them.

use crate::support;

use support::{Cluster, Options};

#[test]
fn every_installed_major_starts_and_reports_its_version() {
    let threads: Vec<_> = support::OTHER_MAJORS
        .iter()
        .map(|&major| {
            std::thread::spawn(move || {
                let c = Cluster::start(Options::logical().major(major));
                let num: u32 = c.show("server_version_num").parse().expect("a number");
                // The settings every cluster gets hold on this major too.
                (
                    major,
                    num,
                    c.show("wal_level"),
                    c.show("password_encryption"),
                )
            })
        })
        .collect();
    for t in threads {
        let (major, num, wal_level, enc) = t.join().expect("a cluster of that major started");
        assert_eq!(num / 10000, major, "server_version_num {num}");
        assert_eq!(wal_level, "logical", "PostgreSQL {major}");
        // psql authenticates with SCRAM over TCP: the password was stored as SCRAM.
        assert_eq!(enc, "scram-sha-256", "PostgreSQL {major}");
    }
}
