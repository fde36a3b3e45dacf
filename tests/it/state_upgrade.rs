//! The state schema across pgmove releases: a migration started under the schema release
//! 0366ef0 created (before it was versioned, `tests/fixtures/state_schema_0366ef0.sql`)
//! resumes after the upgrade, and a schema newer than this pgmove knows is refused.

use crate::support;

use pgmove::pg::{Endpoint, Secret, Side};
use support::{Cluster, Profile};

const SCHEMA_0366EF0: &str = include_str!("../fixtures/state_schema_0366ef0.sql");

fn endpoint(c: &Cluster, side: Side, db: &str) -> Endpoint {
    Endpoint::from_dsn(
        side,
        &format!(
            "postgres://postgres@127.0.0.1:{}/{db}?sslmode=disable",
            c.port
        ),
        Some(Secret::new(c.password.clone())),
        &|_| None,
    )
    .expect("dsn")
}

/// The `pgmove` schema's tables as `table.column type nullable`, and their primary keys, in
/// order (the version table aside): what a migration must leave as release 0366ef0 did.
fn shape(c: &Cluster, db: &str) -> String {
    c.psql(
        db,
        "SELECT string_agg(x, E'\\n' ORDER BY x) FROM (
           SELECT table_name || '.' || column_name || ' ' || data_type || ' ' || is_nullable
                  || coalesce(' default ' || column_default, '') AS x
             FROM information_schema.columns
            WHERE table_schema = 'pgmove' AND table_name <> 'schema_version'
           UNION ALL
           SELECT conrelid::regclass::text || ' ' || pg_get_constraintdef(oid)
             FROM pg_constraint
            WHERE connamespace = 'pgmove'::regnamespace
              AND conrelid::regclass::text <> 'pgmove.schema_version'
           UNION ALL
           SELECT 'comment ' || obj_description('pgmove'::regnamespace, 'pg_namespace')
         ) s",
    )
}

/// The target's `pgmove.schema_version` as `version applied_by` lines, or `none`.
fn versions(c: &Cluster, db: &str) -> String {
    if c.psql(db, "SELECT to_regclass('pgmove.schema_version') IS NULL") == "t" {
        return "none".into();
    }
    c.psql(
        db,
        "SELECT string_agg(version || ' ' || applied_by, E'\\n' ORDER BY version) FROM pgmove.schema_version",
    )
}

#[tokio::test]
async fn migration_1_is_the_schema_of_release_0366ef0_and_adopts_it_in_place() {
    let c = support::shared(Profile::Plain);
    // What release 0366ef0 left on a target.
    let old = c.fresh_db("state_old");
    c.psql(&old, SCHEMA_0366EF0);
    c.psql(
        &old,
        "INSERT INTO pgmove.runs (plan_name, strategy, phase) VALUES ('p_old', 'dump-restore', 'data');
         INSERT INTO pgmove.steps (plan_name, step, detail) VALUES ('p_old', 'dump', '/d'), ('p_old', 'pre-data', NULL);
         INSERT INTO pgmove.restore_items (plan_name, dump_id, kind, object) VALUES ('p_old', 7, 'TABLE DATA', 'public t');",
    );
    let before = shape(c, &old);
    assert_eq!(versions(c, &old), "none");
    // A target new to pgmove, created by this release.
    // Migration 1 alone is that schema.
    let first = c.fresh_db("state_first");
    c.psql(&first, pgmove::state::schema::MIGRATIONS[0].sql);
    assert_eq!(
        shape(c, &first),
        before,
        "migration 1 differs from the schema of release 0366ef0"
    );
    let new = c.fresh_db("state_new");
    let ep_new = endpoint(c, Side::Target, &new);
    let st = pgmove::state::State::open(&ep_new, "p_new")
        .await
        .expect("open a new target");
    drop(st);
    let latest = pgmove::state::schema::latest();
    let all_versions: Vec<String> = (1..=latest)
        .map(|v| format!("{v} pgmove {}", env!("CARGO_PKG_VERSION")))
        .collect();
    assert_eq!(versions(c, &new), all_versions.join("\n"));
    assert_eq!(
        latest, 5,
        "a new migration: extend these tests with its upgrade"
    );
    // Migration 2 (rates) adds the load's table and change capture's rate window.
    let at_latest = shape(c, &new);
    for added in [
        "load.estimated_rows bigint YES",
        "load.started_at timestamp with time zone NO default now()",
        "progress.window_lsn pg_lsn YES",
        "progress.bytes_per_second double precision YES",
        // Migration 3 (fence_touched): cutover's verification ahead of the fence.
        "verify_ahead.acked_at timestamp with time zone YES",
        "touched.key ARRAY NO",
        "pgmove.touched PRIMARY KEY (plan_name, schema_name, table_name, key)",
        // Migration 4 (lag samples) adds change capture's lag over time for `pgmove report`.
        "lag_samples.source_lsn pg_lsn NO",
        "lag_samples.sampled_at timestamp with time zone NO default clock_timestamp()",
        // Migration 5 (recheck rounds): the rounds before the fence, the request's holder.
        "verify_ahead.round integer NO default 0",
        "verify_ahead.acked_round integer YES",
        "verify_ahead.holder_pid integer YES",
        "verify_ahead.holder_start timestamp with time zone YES",
        "touched.round integer NO default 0",
    ] {
        assert!(at_latest.contains(added), "{added} missing:\n{at_latest}");
    }

    // The old target is adopted: same tables, its rows kept and read, version recorded.
    let ep_old = endpoint(c, Side::Target, &old);
    let st = pgmove::state::State::open(&ep_old, "p_old")
        .await
        .expect("open the 0366ef0 target");
    assert_eq!(
        shape(c, &old),
        at_latest,
        "upgraded in place to the latest schema"
    );
    assert_eq!(versions(c, &old), all_versions.join("\n"));
    assert_eq!(
        st.step("dump").await.expect("step"),
        Some(Some("/d".into()))
    );
    assert_eq!(st.finished_items().await.expect("items"), vec![7]);
    let run = pgmove::state::runs::read(&st.client, &ep_old, "p_old")
        .await
        .expect("run")
        .expect("a run row");
    assert_eq!(run.phase, pgmove::state::Phase::Data);
    assert_eq!(run.strategy, "dump-restore");
    // Opening again applies nothing twice.
    drop(st);
    pgmove::state::State::open(&ep_old, "p_old")
        .await
        .expect("open again");
    assert_eq!(
        c.psql(&old, "SELECT count(*) FROM pgmove.schema_version"),
        latest.to_string()
    );
}

#[tokio::test]
async fn a_target_whose_schema_is_newer_than_this_pgmove_is_refused_untouched() {
    let c = support::shared(Profile::Plain);
    let db = c.fresh_db("state_future");
    let ep = endpoint(c, Side::Target, &db);
    let st = pgmove::state::State::open(&ep, "p_future")
        .await
        .expect("open");
    st.release_lock().await.expect("release");
    drop(st);
    let next = pgmove::state::schema::latest() + 1;
    c.psql(
        &db,
        &format!(
            "INSERT INTO pgmove.schema_version (version, applied_by) VALUES ({next}, 'pgmove 99.0.0');
             CREATE TABLE pgmove.from_the_future (x int);"
        ),
    );
    let before = c.psql(
        &db,
        "SELECT string_agg(relname, ',' ORDER BY relname) FROM pg_class WHERE relnamespace = 'pgmove'::regnamespace",
    );
    let err = match pgmove::state::State::open(&ep, "p_future").await {
        Ok(_) => panic!("a schema at version {next} was opened"),
        Err(e) => e.to_string(),
    };
    assert!(err.contains(&format!("at version {next}")), "{err}");
    assert!(err.contains("written by pgmove 99.0.0"), "{err}");
    assert!(
        err.contains("fix: run this plan with that pgmove release or a newer one"),
        "{err}"
    );
    assert!(!err.contains(&c.password), "{err}");
    assert_eq!(
        c.psql(
            &db,
            "SELECT string_agg(relname, ',' ORDER BY relname) FROM pg_class WHERE relnamespace = 'pgmove'::regnamespace",
        ),
        before
    );
    // The plan's lock (one-bigint key, objsubid 1) was not taken: nothing holds it.
    assert_eq!(
        c.psql(
            &db,
            "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND objsubid = 1 AND database = (SELECT oid FROM pg_database WHERE datname = current_database())"
        ),
        "0"
    );
}

/// Every table's rows as one md5 per table, in order.
fn contents(c: &Cluster) -> String {
    let sql: Vec<String> = (0..30)
        .map(|i| {
            format!(
                "SELECT 't{i:02}', md5(string_agg(id || ':' || v, ',' ORDER BY id)) FROM t{i:02}"
            )
        })
        .collect();
    c.psql(
        "shop",
        &format!("SELECT * FROM ({}) s ORDER BY 1", sql.join(" UNION ALL ")),
    )
}

/// A dump-restore apply killed mid-restore; the target's state is then put back to exactly
/// what release 0366ef0 would have left (its schema from the fixture, the run's rows as
/// written); the new pgmove resumes it: items done are not redone, the data is complete, the
/// schema is at the current version.
#[test]
fn a_dump_restore_killed_under_the_0366ef0_schema_resumes_after_the_upgrade() {
    let k = support::restore::KilledRestore::start("upgrade", 30);
    let (src, dst) = (&k.src, &k.dst);

    // The state as release 0366ef0 leaves it: its schema, the run's rows as they were written.
    dst.psql(
        "shop",
        &format!(
            "BEGIN;
             CREATE SCHEMA keep;
             CREATE TABLE keep.runs AS SELECT * FROM pgmove.runs;
             CREATE TABLE keep.steps AS SELECT * FROM pgmove.steps;
             CREATE TABLE keep.restore_items AS SELECT * FROM pgmove.restore_items;
             DROP SCHEMA pgmove CASCADE;
             {SCHEMA_0366EF0}
             INSERT INTO pgmove.runs SELECT * FROM keep.runs;
             INSERT INTO pgmove.steps SELECT * FROM keep.steps;
             INSERT INTO pgmove.restore_items SELECT * FROM keep.restore_items;
             DROP SCHEMA keep CASCADE;
             COMMIT;"
        ),
    );
    assert_eq!(versions(dst, "shop"), "none");
    let before = k.finished_items();
    assert!(
        before.len() < 30 + 30,
        "the kill came too late: {} items done",
        before.len()
    );
    assert_eq!(
        dst.psql(
            "shop",
            "SELECT phase FROM pgmove.runs WHERE plan_name = 'upgrade'"
        ),
        "data"
    );

    let status = k.apply().status().expect("rerun");
    assert!(status.success(), "rerun failed: {status}");
    // Every migration up to the latest, applied by this pgmove.
    let all_versions: Vec<String> = (1..=pgmove::state::schema::latest())
        .map(|v| format!("{v} pgmove {}", env!("CARGO_PKG_VERSION")))
        .collect();
    assert_eq!(versions(dst, "shop"), all_versions.join("\n"));
    // Items finished before the kill were not restored again: their rows are untouched.
    let after = k.finished_items();
    for row in &before {
        assert!(after.contains(row), "item redone: {row}");
    }
    assert!(after.len() > before.len());
    assert_eq!(
        dst.psql(
            "shop",
            "SELECT phase FROM pgmove.runs WHERE plan_name = 'upgrade'"
        ),
        "done"
    );
    assert_eq!(contents(dst), contents(src));
    k.assert_every_table_complete();
}
