//! `pgmove cleanup` of strategy pglogical on real servers (clusters of their own, pglogical
//! preloaded; no database is ever dropped there): it drops the subscription, both nodes, both
//! sets, the slot and origin the subscription left and the extension where pgmove created it,
//! only what the target's records say pgmove created, twice in a row (the second run finds
//! nothing), after a cutover-like end and after an interrupted apply.
//!
//! The pglogical objects are made here as apply makes them: each recorded `intended` on the
//! target (`owned::claim`) before it is created, then `created` (`owned::created`), or left
//! `intended` for an apply killed in between.

use crate::support;

use std::path::{Path, PathBuf};
use std::process::Output;
use std::time::{Duration, Instant};

use pgmove::owned;
use pgmove::pg::{Endpoint, Side};
use support::online::{pgmove as pgmove_cmd, text};
use support::{Cluster, Options};

/// A pair of pglogical clusters, each with database `shop`, table `public.t` with rows on the
/// source, and a pglogical plan whose passwords are in files (no shared environment).
pub(crate) struct Pair {
    pub src: Cluster,
    pub dst: Cluster,
    pub dir: tempfile::TempDir,
    pub plan: PathBuf,
}

pub(crate) fn pair(name: &str) -> Pair {
    let src = Cluster::start(Options::pglogical());
    let dst = Cluster::start(Options::pglogical());
    for c in [&src, &dst] {
        c.create_db("shop");
    }
    src.psql("shop", "CREATE TABLE t (id int PRIMARY KEY, v text)");
    src.psql(
        "shop",
        "INSERT INTO t SELECT g, 'v' || g FROM generate_series(1, 100) g",
    );
    let dir = tempfile::tempdir().expect("tempdir");
    let (src_pw, dst_pw) = (dir.path().join("src.pw"), dir.path().join("dst.pw"));
    std::fs::write(&src_pw, &src.password).expect("write password");
    std::fs::write(&dst_pw, &dst.password).expect("write password");
    let plan = dir.path().join(format!("{name}.yaml"));
    std::fs::write(
        &plan,
        format!(
            "version: 1\nname: {name}\nstrategy: pglogical\nsource:\n  dsn: postgres://postgres@127.0.0.1:{}/shop\n  password: {{file: {}}}\n  sslmode: disable\ntarget:\n  dsn: postgres://postgres@127.0.0.1:{}/shop\n  password: {{file: {}}}\n  sslmode: disable\n",
            src.port,
            src_pw.display(),
            dst.port,
            dst_pw.display()
        ),
    )
    .expect("write plan");
    Pair {
        src,
        dst,
        dir,
        plan,
    }
}

/// One object as apply makes it: recorded `intended` on the target, created by `sql` on the
/// server `on`, then recorded `created` unless `killed` (an apply killed in between).
pub(crate) fn make(plan: &Path, kind: &'static str, on: Side, name: &str, sql: &str, killed: bool) {
    let plan = pgmove::plan::load(plan).expect("plan");
    let target = plan.endpoint(Side::Target).expect("target");
    let here: Endpoint = plan.endpoint(on).expect("endpoint");
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    rt.block_on(async {
        let st = pgmove::state::State::open(&target, &plan.name)
            .await
            .expect("state");
        let exists = owned::claim(&st, &here, kind, name).await.expect("claim");
        assert!(!exists, "{kind} {name} exists already");
        let c = here.connect().await.expect("connect");
        c.batch_execute(sql).await.expect("create");
        if !killed {
            owned::created(&st, kind, name).await.expect("created");
        }
    });
}

/// pglogical's objects and what it leaves (slots, origins) on a server, as sorted lines.
fn pglogical_objects(c: &Cluster) -> Vec<String> {
    let installed = c.psql(
        "shop",
        "SELECT count(*) FROM pg_extension WHERE extname = 'pglogical'",
    ) == "1";
    let mut sql = String::from(
        "SELECT 'slot ' || slot_name FROM pg_replication_slots
         UNION ALL SELECT 'origin ' || roname FROM pg_replication_origin",
    );
    if installed {
        sql.push_str(
            " UNION ALL SELECT 'extension pglogical'
              UNION ALL SELECT 'node ' || node_name FROM pglogical.node
              UNION ALL SELECT 'set ' || set_name FROM pglogical.replication_set
              UNION ALL SELECT 'subscription ' || sub_name FROM pglogical.subscription",
        );
    }
    sql.push_str(" ORDER BY 1");
    c.psql("shop", &sql)
        .lines()
        .map(str::to_string)
        .filter(|l| !l.is_empty())
        .collect()
}

fn has_pgmove_schema(c: &Cluster) -> bool {
    c.psql(
        "shop",
        "SELECT count(*) FROM pg_namespace WHERE nspname = 'pgmove'",
    ) == "1"
}

pub(crate) fn cleanup(p: &Pair, extra: &[&str]) -> Output {
    let mut args = vec!["cleanup", p.plan.to_str().expect("utf8")];
    args.extend_from_slice(extra);
    pgmove_cmd(&args, &p.src, &p.dst)
        .output()
        .expect("run pgmove")
}

/// `side kind name` of each entry of the JSON report's `list`.
fn listed(out: &Output, list: &str) -> Vec<String> {
    let j: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json");
    j[list]
        .as_array()
        .unwrap_or_else(|| panic!("{list}: {}", text(out)))
        .iter()
        .map(|a| format!("{} {} {}", a["side"], a["kind"], a["name"]).replace('"', ""))
        .collect()
}

pub(crate) fn wait_replicating(dst: &Cluster, sub: &str) {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let status = dst.psql(
            "shop",
            &format!("SELECT status FROM pglogical.show_subscription_status('{sub}')"),
        );
        if status == "replicating" {
            return;
        }
        assert!(Instant::now() < deadline, "subscription {sub} is {status}");
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// The provider side as apply makes it: the extension (recorded only when `ext`), the
/// provider node, the two sets with `t` in both.
pub(crate) fn provider(p: &Pair, name: &str, ext: bool, killed_sets: bool) {
    let s = Side::Source;
    if ext {
        make(
            &p.plan,
            owned::PGLOGICAL_EXTENSION_SOURCE,
            s,
            "pglogical",
            "CREATE EXTENSION IF NOT EXISTS pglogical",
            false,
        );
    }
    make(
        &p.plan,
        owned::PGLOGICAL_PROVIDER_NODE,
        s,
        &format!("pgmove_{name}_provider"),
        &format!(
            "SELECT pglogical.create_node(node_name := 'pgmove_{name}_provider', dsn := 'host=127.0.0.1 port={} dbname=shop user=postgres password={}')",
            p.src.port, p.src.password
        ),
        false,
    );
    for (set, flags) in [
        (format!("pgmove_{name}"), "false, true, true, false"),
        (format!("ipgmove_{name}"), "true, false, false, true"),
    ] {
        make(
            &p.plan,
            owned::PGLOGICAL_SET,
            s,
            &set,
            &format!(
                "SELECT pglogical.create_replication_set('{set}', {flags});
                 SELECT pglogical.replication_set_add_table('{set}', 'public.t', false);"
            ),
            killed_sets,
        );
    }
}

/// The subscriber side: table `t` (as apply's schema step makes it), the extension
/// (recorded only when `ext`), the subscriber node, and the subscription when `subscribe`.
pub(crate) fn subscriber(p: &Pair, name: &str, ext: bool, subscribe: bool) {
    let t = Side::Target;
    p.dst
        .psql("shop", "CREATE TABLE t (id int PRIMARY KEY, v text)");
    if ext {
        make(
            &p.plan,
            owned::PGLOGICAL_EXTENSION_TARGET,
            t,
            "pglogical",
            "CREATE EXTENSION IF NOT EXISTS pglogical",
            false,
        );
    }
    make(
        &p.plan,
        owned::PGLOGICAL_SUBSCRIBER_NODE,
        t,
        &format!("pgmove_{name}_subscriber"),
        &format!(
            "SELECT pglogical.create_node(node_name := 'pgmove_{name}_subscriber', dsn := 'host=127.0.0.1 port={} dbname=shop user=postgres password={}')",
            p.dst.port, p.dst.password
        ),
        false,
    );
    if subscribe {
        make(
            &p.plan,
            owned::PGLOGICAL_SUBSCRIPTION,
            t,
            &format!("pgmove_{name}"),
            &format!(
                "SELECT pglogical.create_subscription(subscription_name := 'pgmove_{name}', provider_dsn := 'host=127.0.0.1 port={} dbname=shop user=postgres password={}', replication_sets := ARRAY['pgmove_{name}', 'ipgmove_{name}'], synchronize_structure := false, synchronize_data := true, forward_origins := '{{}}')",
                p.src.port, p.src.password
            ),
            false,
        );
        wait_replicating(&p.dst, &format!("pgmove_{name}"));
    }
}

/// After a cutover-like end (the subscription dropped on the target, as cutover does): the
/// dry run lists, the run drops the nodes, the sets and the extension pgmove created on the
/// source; the target's extension, which the user had, stays, as does a slot of the user's;
/// the second run finds nothing.
#[test]
fn cleanup_after_a_cutover_drops_what_pgmove_recorded_and_keeps_the_users_extension() {
    let p = pair("pglc");
    // The user's own: pglogical on the target before pgmove came, a slot on the source.
    p.dst.psql("shop", "CREATE EXTENSION pglogical");
    p.src.psql(
        "shop",
        "SELECT pg_create_logical_replication_slot('users_slot', 'pgoutput')",
    );
    provider(&p, "pglc", true, false);
    subscriber(&p, "pglc", false, true);
    assert_eq!(
        p.dst.psql("shop", "SELECT count(*) FROM t"),
        "100",
        "the subscription copied the rows"
    );
    let slot = p
        .dst
        .psql("shop", "SELECT sub_slot_name FROM pglogical.subscription");
    assert!(pglogical_objects(&p.src).contains(&format!("slot {slot}")));
    // Cutover ends with the subscription dropped (its slot on the source and its origin go).
    p.dst.psql(
        "shop",
        "SELECT pglogical.drop_subscription('pgmove_pglc', true)",
    );
    let before = (pglogical_objects(&p.src), pglogical_objects(&p.dst));

    let dry = cleanup(&p, &["--dry-run", "--format", "json"]);
    assert_eq!(dry.status.code(), Some(0), "{}", text(&dry));
    let want = [
        "target pglogical node pgmove_pglc_subscriber",
        "source pglogical replication set pgmove_pglc",
        "source pglogical replication set ipgmove_pglc",
        "source pglogical node pgmove_pglc_provider",
        "source extension pglogical",
        "target schema pgmove",
    ];
    assert_eq!(listed(&dry, "artifacts"), want, "{}", text(&dry));
    assert_eq!(
        (pglogical_objects(&p.src), pglogical_objects(&p.dst)),
        before,
        "the dry run changed nothing"
    );

    let out = cleanup(&p, &["--format", "json"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert_eq!(listed(&out, "artifacts"), want, "{}", text(&out));
    assert!(listed(&out, "not_handled").is_empty(), "{}", text(&out));
    assert_eq!(pglogical_objects(&p.src), ["slot users_slot"]);
    // The user's extension stays, empty of pgmove's objects.
    assert_eq!(pglogical_objects(&p.dst), ["extension pglogical"]);
    assert!(!has_pgmove_schema(&p.dst));
    assert_eq!(p.src.psql("shop", "SELECT count(*) FROM t"), "100");
    assert_eq!(p.dst.psql("shop", "SELECT count(*) FROM t"), "100");
    // Writes on the source still work: no set replicates updates of t any more.
    p.src.psql("shop", "UPDATE t SET v = 'x' WHERE id = 1");

    let again = cleanup(&p, &[]);
    assert_eq!(again.status.code(), Some(0), "{}", text(&again));
    assert!(
        String::from_utf8_lossy(&again.stdout).contains("nothing to drop"),
        "{}",
        text(&again)
    );
}

/// After an interrupted apply: the sets recorded only `intended` (killed before their
/// `created` update), a subscription recorded but gone, whose slot stayed on the source and
/// whose origin stayed on the target (dropped while the source was out of reach); the
/// extensions pgmove created on both sides. Everything goes, and a second run finds nothing.
#[test]
fn cleanup_after_an_interrupted_apply_drops_the_slot_and_origin_the_subscription_left() {
    let p = pair("pgli");
    provider(&p, "pgli", true, true);
    subscriber(&p, "pgli", true, false);
    // The subscription was recorded, created, then lost; pglogical names its slot and origin
    // after the target database, the provider node and the subscription.
    let slot = p.src.psql(
        "shop",
        "SELECT pglogical.pglogical_gen_slot_name('shop', 'pgmove_pgli_provider', 'pgmove_pgli')",
    );
    make(
        &p.plan,
        owned::PGLOGICAL_SUBSCRIPTION,
        Side::Target,
        "pgmove_pgli",
        "SELECT 1",
        false,
    );
    p.src.psql(
        "shop",
        &format!("SELECT pg_create_logical_replication_slot('{slot}', 'pglogical_output')"),
    );
    p.dst.psql(
        "shop",
        &format!("SELECT pg_replication_origin_create('{slot}')"),
    );
    assert!(
        p.dst
            .psql("shop", "SELECT string_agg(kind || ':' || state, ',' ORDER BY kind, name) FROM pgmove.source_objects WHERE kind = 'pglogical replication set'")
            == "pglogical replication set:intended,pglogical replication set:intended"
    );

    let out = cleanup(&p, &["--format", "json"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert_eq!(
        listed(&out, "artifacts"),
        [
            "target pglogical node pgmove_pgli_subscriber".to_string(),
            "source pglogical replication set pgmove_pgli".to_string(),
            "source pglogical replication set ipgmove_pgli".to_string(),
            format!("source replication slot {slot}"),
            "source pglogical node pgmove_pgli_provider".to_string(),
            format!("target replication origin {slot}"),
            "target extension pglogical".to_string(),
            "source extension pglogical".to_string(),
            "target schema pgmove".to_string(),
        ],
        "{}",
        text(&out)
    );
    assert!(
        pglogical_objects(&p.src).is_empty(),
        "{:?}",
        pglogical_objects(&p.src)
    );
    assert!(
        pglogical_objects(&p.dst).is_empty(),
        "{:?}",
        pglogical_objects(&p.dst)
    );
    assert!(!has_pgmove_schema(&p.dst));

    let again = cleanup(&p, &["--format", "json"]);
    assert_eq!(again.status.code(), Some(0), "{}", text(&again));
    assert!(listed(&again, "artifacts").is_empty(), "{}", text(&again));
}

/// A real apply (default `cdc.ddl`: its guard goes on the source first) killed with SIGKILL
/// while pglogical copies the rows: cleanup drops the subscription mid-sync, both nodes, both
/// sets, the slot, the extensions pgmove created on both sides, the guard and both `pgmove`
/// schemas; a second run finds nothing.
#[test]
fn cleanup_after_apply_killed_during_sync_leaves_nothing_pgmove_created() {
    let p = pair("pglk");
    p.src.psql(
        "shop",
        "INSERT INTO t SELECT g, md5(g::text) FROM generate_series(101, 50000) g",
    );
    let point = "pglogical-sync";
    let log = p.dir.path().join("apply.log");
    let mut cmd = pgmove_cmd(&support::online::apply_args(&p.plan), &p.src, &p.dst);
    cmd.env("PGMOVE_TEST_PAUSE", point);
    let mut child = support::online::spawn_logged(cmd, &log);
    let deadline = Instant::now() + Duration::from_secs(180);
    let read = || std::fs::read_to_string(&log).unwrap_or_default();
    while !read().contains(&format!("test pause at {point}")) {
        support::online::check_running(&mut child, &log);
        assert!(
            Instant::now() < deadline,
            "apply did not reach {point}\n{}",
            read()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    child.kill().expect("SIGKILL");
    let _ = child.wait();
    assert!(
        pglogical_objects(&p.dst).contains(&"subscription pgmove_pglk".to_string()),
        "{:?}",
        pglogical_objects(&p.dst)
    );
    let guard = "SELECT count(*) FROM pg_event_trigger WHERE evtname LIKE 'pgmove%'";
    assert_eq!(p.src.psql("shop", guard), "2", "the guard of cdc.ddl");

    let started = Instant::now();
    let out = cleanup(&p, &["--format", "json"]);
    eprintln!(
        "cleanup after apply killed during sync took {:?}",
        started.elapsed()
    );
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let dropped = listed(&out, "artifacts");
    for want in [
        "target pglogical subscription pgmove_pglk",
        "target pglogical node pgmove_pglk_subscriber",
        "source pglogical replication set pgmove_pglk",
        "source pglogical replication set ipgmove_pglk",
        "source pglogical node pgmove_pglk_provider",
        "target extension pglogical",
        "source extension pglogical",
        "source event trigger pgmove_pglk_ddl_guard",
        "source schema pgmove",
        "target schema pgmove",
    ] {
        assert!(dropped.contains(&want.to_string()), "{want}: {dropped:?}");
    }
    assert!(
        pglogical_objects(&p.src).is_empty(),
        "{:?}",
        pglogical_objects(&p.src)
    );
    assert!(
        pglogical_objects(&p.dst).is_empty(),
        "{:?}",
        pglogical_objects(&p.dst)
    );
    assert_eq!(p.src.psql("shop", guard), "0");
    assert!(!has_pgmove_schema(&p.src) && !has_pgmove_schema(&p.dst));
    // The source takes schema changes again.
    p.src.psql("shop", "ALTER TABLE t ADD COLUMN c int");

    let again = cleanup(&p, &["--format", "json"]);
    assert_eq!(again.status.code(), Some(0), "{}", text(&again));
    assert!(listed(&again, "artifacts").is_empty(), "{}", text(&again));
}
