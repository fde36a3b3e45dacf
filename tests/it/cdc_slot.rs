//! The copy-cdc consistency point against real servers: a logical slot created with an exported
//! snapshot, held while copies import it, released, inspected and dropped; the failures a DBA
//! meets, with their hints and without the password; TLS on the replication connection.

use crate::support;

use pgmove::cdc::slot::{self, ExportedSlot, SlotProblem};
use pgmove::pg::{Endpoint, Lsn, Secret, Side};
use support::{Cluster, Options};

fn no_env(_: &str) -> Option<String> {
    None
}

fn endpoint(dsn: &str, password: &str) -> Endpoint {
    Endpoint::from_dsn(Side::Source, dsn, Some(Secret::new(password)), &no_env).expect("valid dsn")
}

/// The superuser on `db`, sslmode left at its default (prefer).
fn source(c: &Cluster, db: &str) -> Endpoint {
    endpoint(&c.uri_no_password(db), &c.password)
}

fn with_rows(c: &Cluster) {
    c.create_db("shop");
    c.psql(
        "shop",
        "CREATE TABLE items (id int PRIMARY KEY, label text);
         INSERT INTO items SELECT g, 'before ' || g FROM generate_series(1, 100) g;",
    );
}

async fn current_wal_lsn(c: &Cluster) -> Lsn {
    let client = c.client("shop").await;
    client
        .query_one("SELECT pg_current_wal_lsn()", &[])
        .await
        .expect("pg_current_wal_lsn")
        .get(0)
}

/// (count, max id) of `items` as seen by a repeatable-read transaction importing `snapshot`,
/// with the transaction left open until `hold` resolves.
async fn import_and_count(
    c: &Cluster,
    snapshot: &str,
    hold: std::sync::Arc<tokio::sync::Barrier>,
) -> (i64, i32) {
    let client = c.client("shop").await;
    client
        .batch_execute(&format!(
            "BEGIN ISOLATION LEVEL REPEATABLE READ; SET TRANSACTION SNAPSHOT '{snapshot}'"
        ))
        .await
        .expect("import the exported snapshot");
    let row = client
        .query_one("SELECT count(*), max(id) FROM items", &[])
        .await
        .expect("count");
    // Every importer has its transaction open at the same time.
    hold.wait().await;
    client.batch_execute("COMMIT").await.expect("commit");
    (row.get(0), row.get(1))
}

#[tokio::test]
async fn exported_snapshot_shows_exactly_the_rows_committed_before_the_slot() {
    let c = Cluster::start(Options::logical());
    with_rows(&c);
    let ep = source(&c, "shop");

    let slot = ExportedSlot::create(&ep, "pgmove_shop")
        .await
        .expect("create the slot");
    assert!(slot.is_held());
    assert_eq!(slot.slot_name(), "pgmove_shop");
    assert!(!slot.snapshot_name().is_empty());

    // Writes committed after the slot was created, from another connection.
    c.psql(
        "shop",
        "INSERT INTO items SELECT g, 'after ' || g FROM generate_series(101, 150) g;
         UPDATE items SET label = 'changed' WHERE id = 1;",
    );
    assert_eq!(c.psql("shop", "SELECT count(*) FROM items"), "150");

    // Several transactions import the same snapshot in parallel, and see the rows as they
    // were when the slot was created.
    let importers = 4;
    let hold = std::sync::Arc::new(tokio::sync::Barrier::new(importers));
    let results = futures_util::future::join_all(
        (0..importers).map(|_| import_and_count(&c, slot.snapshot_name(), hold.clone())),
    )
    .await;
    for r in results {
        assert_eq!(r, (100, 100));
    }
    let client = c.client("shop").await;
    client
        .batch_execute(&format!(
            "BEGIN ISOLATION LEVEL REPEATABLE READ; SET TRANSACTION SNAPSHOT '{}'",
            slot.snapshot_name()
        ))
        .await
        .expect("import");
    let label: String = client
        .query_one("SELECT label FROM items WHERE id = 1", &[])
        .await
        .expect("label")
        .get(0);
    assert_eq!(label, "before 1");
    client.batch_execute("COMMIT").await.expect("commit");

    // The consistent point is in the past and is where the slot will start decoding.
    let lsn = slot.consistent_lsn();
    assert!(lsn > Lsn(0));
    assert!(lsn <= current_wal_lsn(&c).await);
    let info = slot::slot_exists(&ep, "pgmove_shop")
        .await
        .expect("look up")
        .expect("the slot exists");
    assert_eq!(info.confirmed_flush_lsn, Some(lsn));
    assert_eq!(info.plugin.as_deref(), Some("pgoutput"));
    assert_eq!(info.slot_type, "logical");
    assert_eq!(info.database.as_deref(), Some("shop"));
    assert!(!info.temporary);
    assert!(info.restart_lsn.is_some_and(|r| r <= lsn));
    let sql_lsn = c.psql(
        "shop",
        "SELECT confirmed_flush_lsn FROM pg_replication_slots WHERE slot_name = 'pgmove_shop'",
    );
    assert_eq!(sql_lsn, lsn.to_string());

    // The walsender holding the snapshot is the one named, and it is ours.
    let app = c.psql(
        "shop",
        &format!(
            "SELECT application_name || ' ' || backend_type FROM pg_stat_activity WHERE pid = {}",
            slot.backend_pid()
        ),
    );
    assert_eq!(app, "pgmove walsender");

    slot.release().await.expect("release");
}

#[tokio::test]
async fn release_ends_the_snapshot_but_keeps_the_slot_until_dropped() {
    let c = Cluster::start(Options::logical());
    with_rows(&c);
    let ep = source(&c, "shop");
    let slot = ExportedSlot::create(&ep, "pgmove_release")
        .await
        .expect("create");
    let snapshot = slot.snapshot_name().to_string();
    let lsn = slot.consistent_lsn();
    slot.release().await.expect("release");

    // The snapshot is gone at once.
    let client = c.client("shop").await;
    let err = client
        .batch_execute(&format!(
            "BEGIN ISOLATION LEVEL REPEATABLE READ; SET TRANSACTION SNAPSHOT '{snapshot}'"
        ))
        .await
        .expect_err("the snapshot must be gone");
    let text = pgmove::pg::error_text(&err);
    assert!(text.contains("invalid snapshot identifier"), "{text}");
    client.batch_execute("ROLLBACK").await.expect("rollback");

    // The slot stays, inactive, at its consistent point.
    let info = slot::slot_exists(&ep, "pgmove_release")
        .await
        .expect("look up")
        .expect("the slot stays");
    assert!(!info.active);
    assert_eq!(info.active_pid, None);
    assert_eq!(info.confirmed_flush_lsn, Some(lsn));

    // Dropping is idempotent.
    assert!(slot::drop_slot(&ep, "pgmove_release").await.expect("drop"));
    assert!(!slot::drop_slot(&ep, "pgmove_release")
        .await
        .expect("second drop"));
    assert_eq!(
        slot::slot_exists(&ep, "pgmove_release")
            .await
            .expect("look up"),
        None
    );
    assert_eq!(
        c.psql("shop", "SELECT count(*) FROM pg_replication_slots"),
        "0"
    );
}

#[tokio::test]
async fn dropping_a_slot_in_use_names_the_process() {
    let c = Cluster::start(Options::logical());
    with_rows(&c);
    let ep = source(&c, "shop");
    c.psql(
        "shop",
        "SELECT pg_create_logical_replication_slot('busy', 'pgoutput')",
    );
    // Hold the slot from another session: a transaction that is peeking at it cannot be
    // observed, so acquire it with a replication connection streaming from it instead.
    let client = c.client("shop").await;
    client
        .batch_execute("CREATE PUBLICATION p FOR ALL TABLES")
        .await
        .expect("publication");
    let mut stream = slot::open_session(&ep, "busy", |mut cfg| {
        cfg.publication = "p".into();
        cfg
    })
    .await
    .expect("session")
    .client;
    stream.start().await.expect("start streaming");
    stream.wait_started().await.expect("started");

    let err = slot::drop_slot(&ep, "busy")
        .await
        .expect_err("an active slot cannot be dropped");
    assert_eq!(err.problem(), Some(SlotProblem::SlotActive), "{err}");
    assert!(err.to_string().starts_with("source: "), "{err}");
    assert!(
        err.hint().expect("hint").contains("pg_terminate_backend("),
        "{err}"
    );
    stream.shutdown().await.expect("stop streaming");
}

#[tokio::test]
async fn known_failures_name_the_side_give_a_hint_and_hide_the_password() {
    let c = Cluster::start(Options::logical());
    with_rows(&c);
    let pw = c.password.clone();
    let ep = source(&c, "shop");

    // The slot already exists.
    c.psql(
        "shop",
        "SELECT pg_create_logical_replication_slot('pgmove_dup', 'pgoutput')",
    );
    let err = ExportedSlot::create(&ep, "pgmove_dup")
        .await
        .expect_err("duplicate slot");
    let text = err.to_string();
    assert_eq!(err.problem(), Some(SlotProblem::AlreadyExists), "{text}");
    assert!(text.starts_with("source: "), "{text}");
    assert!(text.contains("already exists"), "{text}");
    assert!(text.contains("pgmove cleanup"), "{text}");
    assert!(!text.contains(&pw), "{text}");

    // A role without REPLICATION (same password as the superuser, to prove it never shows).
    c.psql(
        "shop",
        &format!("CREATE ROLE plain LOGIN PASSWORD '{pw}'; GRANT ALL ON SCHEMA public TO plain"),
    );
    let plain = endpoint(&format!("postgres://plain@127.0.0.1:{}/shop", c.port), &pw);
    let err = ExportedSlot::create(&plain, "pgmove_plain")
        .await
        .expect_err("no replication right");
    let text = err.to_string();
    assert_eq!(err.problem(), Some(SlotProblem::MissingRight), "{text}");
    assert!(text.starts_with("source ("), "{text}");
    assert!(text.contains("ALTER ROLE \"plain\" REPLICATION"), "{text}");
    assert!(text.contains("rds_replication"), "{text}");
    assert!(!text.contains(&pw), "{text}");
    // The same role cannot drop slots either.
    let err = slot::drop_slot(&plain, "pgmove_dup")
        .await
        .expect_err("no right to drop");
    assert_eq!(err.problem(), Some(SlotProblem::MissingRight), "{err}");
    assert!(!err.to_string().contains(&pw));

    // A wrong password.
    let wrong = endpoint(&c.uri_no_password("shop"), "not-the-password");
    let err = ExportedSlot::create(&wrong, "pgmove_pw")
        .await
        .expect_err("wrong password");
    assert_eq!(err.problem(), Some(SlotProblem::Authentication), "{err}");
    assert!(!err.to_string().contains("not-the-password"), "{err}");

    // No pg_hba.conf line for this role.
    std::fs::write(
        c.data_dir().join("pg_hba.conf"),
        "local all all trust\nhost all postgres 127.0.0.1/32 scram-sha-256\n",
    )
    .expect("write pg_hba.conf");
    c.psql("postgres", "SELECT pg_reload_conf()");
    let err = ExportedSlot::create(&plain, "pgmove_hba")
        .await
        .expect_err("no pg_hba entry");
    let text = err.to_string();
    assert_eq!(err.problem(), Some(SlotProblem::NoHbaEntry), "{text}");
    assert!(text.contains("host shop plain 127.0.0.1/32"), "{text}");
    assert!(!text.contains(&pw), "{text}");

    // All slots taken (max_replication_slots = 10 in the harness; one is used above).
    for i in 0..9 {
        c.psql(
            "shop",
            &format!("SELECT pg_create_logical_replication_slot('filler_{i}', 'pgoutput')"),
        );
    }
    let err = ExportedSlot::create(&ep, "pgmove_full")
        .await
        .expect_err("no free slot");
    assert_eq!(err.problem(), Some(SlotProblem::NoFreeSlot), "{err}");
    assert!(err.hint().expect("hint").contains("max_replication_slots"));

    // wal_level = replica.
    let replica = Cluster::start(Options::default());
    replica.create_db("shop");
    let err = ExportedSlot::create(&source(&replica, "shop"), "pgmove_wal")
        .await
        .expect_err("wal_level replica");
    let text = err.to_string();
    assert_eq!(err.problem(), Some(SlotProblem::WalLevel), "{text}");
    assert!(text.starts_with("source: "), "{text}");
    assert!(
        text.contains("ALTER SYSTEM SET wal_level = logical"),
        "{text}"
    );
    assert!(text.contains("restart"), "{text}");
    assert!(!text.contains(&replica.password), "{text}");
}

#[tokio::test]
async fn tls_verify_full_with_the_right_root_and_refused_with_a_wrong_one() {
    let c = Cluster::start(Options {
        ssl: true,
        logical: true,
        ..Options::default()
    });
    with_rows(&c);
    let ca = c.ca_file().display().to_string();
    for (i, host) in ["127.0.0.1", "localhost"].into_iter().enumerate() {
        let ep = endpoint(
            &format!(
                "postgres://postgres@{host}:{}/shop?sslmode=verify-full&sslrootcert={ca}",
                c.port
            ),
            &c.password,
        );
        let name = format!("pgmove_tls_{i}");
        let slot = ExportedSlot::create(&ep, &name)
            .await
            .expect("verify-full with the right root");
        let ssl = c.psql(
            "shop",
            &format!(
                "SELECT ssl FROM pg_stat_ssl WHERE pid = {}",
                slot.backend_pid()
            ),
        );
        assert_eq!(ssl, "t", "the replication connection to {host} uses TLS");
        slot.release().await.expect("release");
    }

    let dir = tempfile::tempdir().expect("tempdir");
    let wrong = support::unrelated_ca(dir.path()).display().to_string();
    for mode in ["verify-full", "verify-ca", "require"] {
        let ep = endpoint(
            &format!(
                "postgres://postgres@127.0.0.1:{}/shop?sslmode={mode}&sslrootcert={wrong}",
                c.port
            ),
            &c.password,
        );
        let err = ExportedSlot::create(&ep, "pgmove_wrong_ca")
            .await
            .expect_err("a wrong root must fail");
        let text = err.to_string();
        assert_eq!(err.problem(), Some(SlotProblem::Tls), "{mode}: {text}");
        assert!(text.starts_with("source ("), "{text}");
        assert!(text.contains("sslrootcert"), "{text}");
        assert!(!text.contains(&c.password), "{text}");
    }
    assert_eq!(
        c.psql(
            "shop",
            "SELECT count(*) FROM pg_replication_slots WHERE slot_name = 'pgmove_wrong_ca'"
        ),
        "0"
    );

    // The name checked is the host, also when hostaddr says where to connect: verify-full
    // refuses a certificate that does not name it, verify-ca does not look at names.
    let named = |mode: &str| {
        endpoint(
            &format!(
                "postgres://postgres@db.invalid:{}/shop?hostaddr=127.0.0.1&sslmode={mode}&sslrootcert={ca}",
                c.port
            ),
            &c.password,
        )
    };
    let err = ExportedSlot::create(&named("verify-full"), "pgmove_name")
        .await
        .expect_err("the certificate does not name db.invalid");
    assert_eq!(err.problem(), Some(SlotProblem::Tls), "{err}");
    let slot = ExportedSlot::create(&named("verify-ca"), "pgmove_name")
        .await
        .expect("verify-ca ignores the name");
    slot.release().await.expect("release");

    // require without a root: encrypted, unverified, as libpq.
    let ep = endpoint(
        &format!(
            "postgres://postgres@127.0.0.1:{}/shop?sslmode=require",
            c.port
        ),
        &c.password,
    );
    let slot = ExportedSlot::create(&ep, "pgmove_require")
        .await
        .expect("require");
    let ssl = c.psql(
        "shop",
        &format!(
            "SELECT ssl FROM pg_stat_ssl WHERE pid = {}",
            slot.backend_pid()
        ),
    );
    assert_eq!(ssl, "t");
    slot.release().await.expect("release");
}
