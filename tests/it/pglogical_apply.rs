//! Strategy pglogical's apply on real servers: the paired sets exactly as the recipe, each
//! table in the sets its key status says, the initial sync and post-data, keyless tables in
//! the insert set whose updates and deletes still run on the source, the dry run, and a rerun
//! after `kill -9` during the sync.

use crate::support;

use std::time::{Duration, Instant};

use support::online::{self, read_log, DB};
use support::pglogical::{lines, members, nodes, sets, subscriptions, wait_for, Pair};
use support::Cluster;

/// Tables with a primary key, a replica-identity index, none (keyless), a 2-level partitioned
/// table, a foreign key and a plain index (post-data), a sequence and an unlogged table.
const SCHEMA: &str = "
CREATE TABLE keyed (id int PRIMARY KEY, v text);
INSERT INTO keyed SELECT g, md5(g::text) FROM generate_series(1, 2000) g;
CREATE INDEX keyed_v ON keyed (v);
CREATE TABLE uniq (code text NOT NULL, v text);
CREATE UNIQUE INDEX uniq_code ON uniq (code);
ALTER TABLE uniq REPLICA IDENTITY USING INDEX uniq_code;
INSERT INTO uniq SELECT 'c' || g, md5(g::text) FROM generate_series(1, 300) g;
CREATE TABLE keyless (v text);
INSERT INTO keyless SELECT md5(g::text) FROM generate_series(1, 100) g;
CREATE TABLE child (id int PRIMARY KEY, keyed_id int REFERENCES keyed (id));
INSERT INTO child SELECT g, g FROM generate_series(1, 50) g;
CREATE TABLE parted (id int, at date, v text, PRIMARY KEY (id, at)) PARTITION BY RANGE (at);
CREATE TABLE parted_2024 PARTITION OF parted FOR VALUES FROM ('2024-01-01') TO ('2025-01-01');
CREATE TABLE parted_2025 PARTITION OF parted FOR VALUES FROM ('2025-01-01') TO ('2026-01-01')
  PARTITION BY HASH (id);
CREATE TABLE parted_2025_a PARTITION OF parted_2025 FOR VALUES WITH (MODULUS 2, REMAINDER 0);
CREATE TABLE parted_2025_b PARTITION OF parted_2025 FOR VALUES WITH (MODULUS 2, REMAINDER 1);
INSERT INTO parted SELECT g, DATE '2024-06-01' + (g % 400), 'p' || g FROM generate_series(1, 600) g;
CREATE SEQUENCE counter;
SELECT setval('counter', 42);
CREATE UNLOGGED TABLE scratch (id int PRIMARY KEY, v text);
INSERT INTO scratch SELECT g, 's' || g FROM generate_series(1, 30) g;
";

/// Row counts of every table of [`SCHEMA`], one line.
fn counts(c: &Cluster) -> String {
    c.psql(
        DB,
        "SELECT (SELECT count(*) FROM keyed) || ' ' || (SELECT count(*) FROM uniq) || ' ' ||
                (SELECT count(*) FROM keyless) || ' ' || (SELECT count(*) FROM child) || ' ' ||
                (SELECT count(*) FROM parted) || ' ' || (SELECT count(*) FROM ONLY parted_2024)",
    )
}

#[test]
fn apply_builds_the_paired_sets_syncs_and_replicates() {
    let name = "pgl_sets";
    let pair = Pair::start(name, SCHEMA, "cdc:\n  tables_without_key: insert-only\n");
    let (src, dst) = (&pair.src, &pair.dst);

    // The dry run: every step's heading and its SQL, no password, nothing done.
    let dry = pair.run("apply", &["--dry-run"]);
    online::assert_ok(&dry);
    let text = online::text(&dry);
    for (i, step) in [
        "state",
        "dump",
        "pre-data",
        "keys",
        "provider",
        "subscription",
        "sync",
        "post-data",
        "analyze",
        "replicating",
    ]
    .iter()
    .enumerate()
    {
        assert!(
            text.contains(&format!("-- step {}/10 {step}: ", i + 1)),
            "no heading for {step}:\n{text}"
        );
    }
    for sql in [
        "SELECT pglogical.create_node(node_name := 'pgmove_pgl_sets_provider'",
        "SELECT pglogical.create_replication_set(set_name := 'pgmove_pgl_sets', replicate_insert := false, replicate_update := true, replicate_delete := true, replicate_truncate := false);",
        "SELECT pglogical.replication_set_add_table(set_name := 'ipgmove_pgl_sets', relation := '\"public\".\"keyless\"'::regclass",
        "SELECT pglogical.create_subscription(subscription_name := 'pgmove_pgl_sets'",
        "password=''********''",
    ] {
        assert!(text.contains(sql), "dry run lacks {sql}:\n{text}");
    }
    for secret in [&src.password, &dst.password] {
        assert!(
            !text.contains(secret.as_str()),
            "a password in the dry run:\n{text}"
        );
    }
    assert_eq!(
        dst.psql(DB, "SELECT count(*) FROM pg_class WHERE relname = 'keyed'"),
        "0",
        "the dry run changed the target"
    );

    // The apply.
    let out = pair.apply();
    let text = online::text(&out);
    let stdout = String::from_utf8_lossy(&out.stdout);
    let last = stdout.lines().last().unwrap_or_default();
    assert!(
        last.contains("replication continues inside the servers")
            && last.contains("next: pgmove status")
            && last.contains("pgmove cutover"),
        "{text}"
    );
    for secret in [&src.password, &dst.password] {
        assert!(
            !text.contains(secret.as_str()),
            "a password in apply's output:\n{text}"
        );
    }

    // The sets exactly as the recipe, each table where its key status says.
    assert_eq!(
        sets(src),
        [
            "ipgmove_pgl_sets|true|false|false|true",
            "pgmove_pgl_sets|false|true|true|false"
        ]
    );
    let mut want: Vec<String> = Vec::new();
    for t in [
        "child",
        "keyed",
        "parted_2024",
        "parted_2025_a",
        "parted_2025_b",
        "uniq",
    ] {
        want.push(format!("ipgmove_pgl_sets|{t}"));
        want.push(format!("pgmove_pgl_sets|{t}"));
    }
    want.push("ipgmove_pgl_sets|keyless".to_string());
    want.push("pgmove_pgl_sets|counter".to_string());
    want.sort();
    assert_eq!(members(src), want);
    assert_eq!(nodes(src), ["pgmove_pgl_sets_provider"]);
    assert_eq!(
        nodes(dst),
        ["pgmove_pgl_sets_provider", "pgmove_pgl_sets_subscriber"]
    );
    assert_eq!(subscriptions(dst), ["pgmove_pgl_sets|replicating"]);

    // The rows, then post-data (the plain index and the foreign key) after the sync.
    assert_eq!(counts(dst), counts(src));
    assert_eq!(counts(dst), "2000 300 100 50 600 414");
    assert_eq!(
        lines(
            dst,
            "SELECT indexname FROM pg_indexes WHERE tablename IN ('keyed', 'uniq') ORDER BY 1"
        ),
        ["keyed_pkey", "keyed_v", "uniq_code"]
    );
    assert_eq!(
        dst.psql(DB, "SELECT conname FROM pg_constraint WHERE contype = 'f' AND conrelid = 'child'::regclass"),
        "child_keyed_id_fkey"
    );
    assert_eq!(
        dst.psql(
            DB,
            "SELECT relreplident FROM pg_class WHERE relname = 'uniq'"
        ),
        "i"
    );
    // The unlogged table (in no set: pglogical refuses it) is copied once and stays unlogged.
    assert_eq!(
        dst.psql(
            DB,
            "SELECT count(*) || ' ' || (SELECT relpersistence::text FROM pg_class WHERE relname = 'scratch') FROM scratch"
        ),
        "30 u"
    );
    assert!(
        text.contains("1 unlogged table(s) copied once, not replicated (public.scratch)"),
        "{text}"
    );
    // The target has no copy of the source's pglogical objects beyond its own node.
    assert_eq!(
        dst.psql(
            DB,
            "SELECT count(*) FROM pg_extension WHERE extname = 'pglogical'"
        ),
        "1"
    );
    // Recorded: what pgmove created on each side.
    assert_eq!(
        lines(
            dst,
            "SELECT kind || '|' || name || '|' || state FROM pgmove.source_objects ORDER BY 1"
        ),
        [
            "pglogical extension on the source|pglogical|created",
            "pglogical extension on the target|pglogical|created",
            "pglogical provider node|pgmove_pgl_sets_provider|created",
            "pglogical replication set|ipgmove_pgl_sets|created",
            "pglogical replication set|pgmove_pgl_sets|created",
            "pglogical subscriber node|pgmove_pgl_sets_subscriber|created",
            "pglogical subscription|pgmove_pgl_sets|created",
        ]
    );

    // Changes replicate: a keyed update; on the keyless table (insert set only) updates and
    // deletes still succeed on the source, and its inserts arrive.
    src.psql(
        DB,
        "UPDATE keyed SET v = 'changed' WHERE id = 7;
         UPDATE keyless SET v = 'updated on the source' WHERE v = md5('1');
         DELETE FROM keyless WHERE v = md5('2');
         INSERT INTO keyless VALUES ('inserted after the sync');
         INSERT INTO parted VALUES (9001, '2025-03-01', 'late');",
    );
    wait_for(dst, "SELECT v FROM keyed WHERE id = 7", "changed");
    wait_for(
        dst,
        "SELECT count(*) FROM keyless WHERE v = 'inserted after the sync'",
        "1",
    );
    wait_for(dst, "SELECT count(*) FROM parted WHERE id = 9001", "1");
    // The keyless update and delete were not replicated (insert set only).
    assert_eq!(
        dst.psql(
            DB,
            "SELECT count(*) FROM keyless WHERE v IN (md5('1'), md5('2'))"
        ),
        "2"
    );
    // No row twice in the partitioned table.
    assert_eq!(
        dst.psql(DB, "SELECT count(*) - count(DISTINCT (id, at)) FROM parted"),
        "0"
    );

    // A second apply finds everything done and creates nothing more.
    let again = pair.apply();
    let text = online::text(&again);
    assert!(
        text.contains("done by an earlier run: replicating"),
        "{text}"
    );
    assert_eq!(
        nodes(dst),
        ["pgmove_pgl_sets_provider", "pgmove_pgl_sets_subscriber"]
    );
    assert_eq!(subscriptions(dst), ["pgmove_pgl_sets|replicating"]);

    // Once the plan is cut over (as cutover records it), apply does nothing and says so.
    dst.psql(
        DB,
        "UPDATE pgmove.runs SET phase = 'live' WHERE plan_name = 'pgl_sets'",
    );
    let after = pair.apply();
    let text = online::text(&after);
    assert!(
        text.contains("plan pgl_sets is cut over") && text.contains("next: pgmove cleanup"),
        "{text}"
    );
    assert_eq!(
        dst.psql(
            DB,
            "SELECT phase FROM pgmove.runs WHERE plan_name = 'pgl_sets'"
        ),
        "live"
    );
}

/// Starts `pgmove apply` held at test pause `point`, waits until it is there, and kills it
/// with SIGKILL; returns its log.
fn kill_at(pair: &Pair, point: &str, log_name: &str) -> String {
    let log = pair.dir.path().join(log_name);
    let mut cmd = online::pgmove(&online::apply_args(&pair.plan), &pair.src, &pair.dst);
    cmd.env("PGMOVE_TEST_PAUSE", point);
    let mut child = online::spawn_logged(cmd, &log);
    let deadline = Instant::now() + Duration::from_secs(180);
    while !read_log(&log).contains(&format!("test pause at {point}")) {
        online::check_running(&mut child, &log);
        assert!(
            Instant::now() < deadline,
            "apply did not reach {point}\n{}",
            read_log(&log)
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    child.kill().expect("SIGKILL");
    let _ = child.wait();
    read_log(&log)
}

#[test]
fn a_rerun_after_kill_9_reuses_what_the_killed_runs_created() {
    let name = "pgl_kill";
    let pair = Pair::start(
        name,
        "CREATE TABLE keyed (id int PRIMARY KEY, v text);
         INSERT INTO keyed SELECT g, md5(g::text) FROM generate_series(1, 20000) g;
         CREATE TABLE small (id bigserial PRIMARY KEY, v text);
         INSERT INTO small (v) SELECT md5(g::text) FROM generate_series(1, 100) g;
         CREATE TABLE keyless (v text);
         INSERT INTO keyless SELECT md5(g::text) FROM generate_series(1, 10) g;
         CREATE TABLE skipped (id int PRIMARY KEY);
         INSERT INTO skipped VALUES (1);
         CREATE EXTENSION postgis;
         INSERT INTO spatial_ref_sys (srid, auth_name, auth_srid, proj4text)
              VALUES (990001, 'pgmove', 990001, '+proj=longlat +datum=WGS84 +no_defs');
         CREATE TABLE places (id int PRIMARY KEY, at geometry(Point, 990001));
         INSERT INTO places SELECT g, ST_SetSRID(ST_MakePoint(g, g), 990001) FROM generate_series(1, 20) g;
         SELECT lo_from_bytea(424242, 'a large object');",
        "cdc:\n  tables_without_key: exclude\nobjects:\n  exclude: [public.skipped]\n",
    );
    let (src, dst) = (&pair.src, &pair.dst);

    // Killed between the subscription's records (intended) and its creation.
    kill_at(&pair, "pglogical-subscription-recorded", "first.log");
    assert_eq!(
        lines(
            dst,
            "SELECT kind || '|' || state FROM pgmove.source_objects WHERE kind LIKE '%subscri%' ORDER BY 1"
        ),
        [
            "pglogical subscriber node|intended",
            "pglogical subscription|intended"
        ]
    );
    assert_eq!(nodes(src), ["pgmove_pgl_kill_provider"]);

    // Killed again while pglogical syncs: the subscription exists and goes on syncing.
    kill_at(&pair, "pglogical-sync", "second.log");
    assert_eq!(subscriptions(dst).len(), 1, "{:?}", subscriptions(dst));
    // Writes while no pgmove runs.
    src.psql(
        DB,
        "INSERT INTO small (v) SELECT 'while killed ' || g FROM generate_series(1, 25) g;
         UPDATE keyed SET v = 'updated while killed' WHERE id <= 10;
         DELETE FROM keyed WHERE id > 19990;",
    );

    // The rerun finishes, and with --exit-when-caught-up returns once the target has all.
    let out = pair.run("apply", &["--yes", "--exit-when-caught-up"]);
    online::assert_ok(&out);
    let text = online::text(&out);
    assert!(
        text.contains("done by an earlier run: keys, provider, subscription")
            && text.contains("caught up with the source at LSN"),
        "{text}"
    );
    assert!(
        text.contains("excluded (schema only: public.keyless)"),
        "{text}"
    );
    // The summary names the pg_dump and pg_restore the schema went through.
    assert!(
        text.contains(", with pg_dump ") && text.contains(" and pg_restore "),
        "{text}"
    );
    assert_eq!(
        dst.psql(
            DB,
            "SELECT count(*) FROM small WHERE v LIKE 'while killed%'"
        ),
        "25"
    );
    assert_eq!(
        dst.psql(
            DB,
            "SELECT count(*) FROM keyed WHERE v = 'updated while killed'"
        ),
        "10"
    );

    // One node each side (the target also lists its provider), one subscription, the sets as
    // the recipe, the keyless table (exclude) in neither set and without rows.
    assert_eq!(nodes(src), ["pgmove_pgl_kill_provider"]);
    assert_eq!(
        nodes(dst),
        ["pgmove_pgl_kill_provider", "pgmove_pgl_kill_subscriber"]
    );
    assert_eq!(subscriptions(dst), ["pgmove_pgl_kill|replicating"]);
    assert_eq!(
        dst.psql(DB, "SELECT count(*) FROM pg_replication_origin"),
        "1"
    );
    assert_eq!(
        src.psql(DB, "SELECT count(*) FROM pg_replication_slots"),
        "1"
    );
    assert_eq!(
        members(src),
        [
            "ipgmove_pgl_kill|keyed",
            "ipgmove_pgl_kill|places",
            "ipgmove_pgl_kill|small",
            "pgmove_pgl_kill|keyed",
            "pgmove_pgl_kill|places",
            "pgmove_pgl_kill|small",
            "pgmove_pgl_kill|small_id_seq",
        ]
    );
    assert_eq!(dst.psql(DB, "SELECT count(*) FROM keyless"), "0");
    // A table the plan excludes is in no set and not on the target.
    assert_eq!(
        dst.psql(
            DB,
            "SELECT count(*) FROM pg_class WHERE relname = 'skipped'"
        ),
        "0"
    );
    assert_eq!(
        lines(
            dst,
            &format!(
                "SELECT DISTINCT state FROM pgmove.source_objects WHERE plan_name = '{}'",
                pair.name
            )
        ),
        ["created"]
    );

    // The extension's configuration rows the source added (a custom SRID) are on the target.
    assert_eq!(
        dst.psql(
            DB,
            "SELECT auth_name FROM spatial_ref_sys WHERE srid = 990001"
        ),
        "pgmove"
    );
    assert_eq!(dst.psql(DB, "SELECT count(*) FROM places"), "20");
    // The large object (pglogical does not carry them) is copied by apply.
    assert_eq!(
        dst.psql(DB, "SELECT convert_from(lo_get(424242), 'UTF8')"),
        "a large object"
    );
    // The same data as the source: the excluded table's rows copied by hand (as the warning
    // says), sequences as cutover sets them; then pgmove verify says identical.
    dst.psql(
        DB,
        "INSERT INTO keyless SELECT md5(g::text) FROM generate_series(1, 10) g",
    );
    online::sync_sequences(src, dst);
    online::verify(&pair.plan, src, dst);
}

#[test]
fn a_table_pglogical_failed_to_copy_fails_apply_with_the_way_out() {
    let name = "pgl_down";
    let pair = Pair::start(
        name,
        "CREATE TABLE keyed (id int PRIMARY KEY, v text);
         INSERT INTO keyed SELECT g, md5(g::text) FROM generate_series(1, 100) g;",
        "",
    );
    let (src, dst) = (&pair.src, &pair.dst);
    // Held once the schema is on the target; a constraint every source row breaks is added
    // there, so pglogical's copy of the table fails (pglogical 2.4 then marks it synced anyway,
    // empty: apply must notice).
    let point = "pglogical-provider-recorded";
    let resume = pair.dir.path().join("resume");
    let log = pair.dir.path().join("apply.log");
    let mut cmd = online::pgmove(&online::apply_args(&pair.plan), src, dst);
    cmd.env("PGMOVE_TEST_PAUSE", point)
        .env("PGMOVE_TEST_RESUME_FILE", &resume);
    let mut child = online::spawn_logged(cmd, &log);
    let deadline = Instant::now() + Duration::from_secs(120);
    while !read_log(&log).contains(&format!("test pause at {point}")) {
        online::check_running(&mut child, &log);
        assert!(Instant::now() < deadline, "{}", read_log(&log));
        std::thread::sleep(Duration::from_millis(50));
    }
    dst.psql(
        DB,
        "ALTER TABLE keyed ADD CONSTRAINT refuses_every_row CHECK (id < 0) NOT VALID",
    );
    std::fs::write(&resume, "").expect("resume");
    let started = Instant::now();
    let status = child.wait().expect("apply");
    let text = read_log(&log);
    assert_eq!(status.code(), Some(1), "{text}");
    assert!(
        started.elapsed() < Duration::from_secs(120),
        "apply took {:?} to give up",
        started.elapsed()
    );
    assert!(
        text.contains("got none on the target: public.keyed")
            && text.contains("target server's log")
            && text.contains("SELECT pglogical.alter_subscription_resynchronize_table('pgmove_pgl_down', '\"public\".\"keyed\"');")
            && text.contains("run pgmove apply again"),
        "{text}"
    );
    for secret in [&src.password, &dst.password] {
        assert!(
            !text.contains(secret.as_str()),
            "a password in the log:\n{text}"
        );
    }
    assert_eq!(
        dst.psql(
            DB,
            "SELECT phase FROM pgmove.runs WHERE plan_name = 'pgl_down'"
        ),
        "failed"
    );
    // The cause fixed and the table resynchronized as the hint says, the rerun resumes.
    dst.psql(
        DB,
        "ALTER TABLE keyed DROP CONSTRAINT refuses_every_row;
         SELECT pglogical.alter_subscription_resynchronize_table('pgmove_pgl_down', 'public.keyed');",
    );
    pair.apply();
    assert_eq!(dst.psql(DB, "SELECT count(*) FROM keyed"), "100");

    // Another plan from the same source database (to another target database) finds a
    // pglogical node it did not create there: refused, never used, nothing of its own made.
    dst.create_db("other");
    let other = pair.dir.path().join("pgl_other.yaml");
    let yaml = std::fs::read_to_string(&pair.plan)
        .expect("plan")
        .replace("name: pgl_down", "name: pgl_other")
        .replace(
            &format!("{}/{DB}", dst.port),
            &format!("{}/other", dst.port),
        );
    std::fs::write(&other, yaml).expect("write plan");
    let out = online::run(&["apply", other.to_str().expect("utf8"), "--yes"], src, dst);
    let text = online::text(&out);
    assert!(!out.status.success(), "{text}");
    assert!(
        text.contains("already has pglogical node \"pgmove_pgl_down_provider\"")
            && text.contains("pglogical.drop_node('pgmove_pgl_down_provider')"),
        "{text}"
    );
    assert_eq!(nodes(src), ["pgmove_pgl_down_provider"]);
    assert_eq!(
        sets(src),
        [
            "ipgmove_pgl_down|true|false|false|true",
            "pgmove_pgl_down|false|true|true|false"
        ]
    );
    assert_eq!(
        dst.psql(
            "other",
            "SELECT count(*) FROM pgmove.source_objects WHERE kind LIKE 'pglogical%node%'"
        ),
        "0"
    );
}
