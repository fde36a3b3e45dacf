//! `cdc.ddl` under strategy pglogical, on real servers (clusters of their own, pglogical
//! preloaded; no database is ever dropped there). Apply puts a guard on the source that rolls
//! back schema changes to moved tables:
//! - `replicate`: unless sent through `pglogical.replicate_ddl_command` for the plan's sets
//!   (the target then runs it); preflight warns with the reason and the call;
//! - `refuse`: all of them;
//! - `ignore`: no guard, a schema change stays on the source.
//!
//! A session that turned the guard off gets through; cleanup removes the guard.

use crate::support;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use pgmove::pg::Side;
use support::online::text;

use crate::pglogical_cleanup::{cleanup, pair, Pair};

/// `p`'s plan with `cdc.ddl: <ddl>` and `objects.exclude: [public.tmp_*]`, in directory `sub`.
fn plan_with(p: &Pair, sub: &str, ddl: &str) -> PathBuf {
    let yaml = std::fs::read_to_string(&p.plan).expect("read plan");
    let yaml = format!("{yaml}cdc:\n  ddl: {ddl}\nobjects:\n  exclude: [public.tmp_*]\n");
    let dir = p.dir.path().join(sub);
    std::fs::create_dir_all(&dir).expect("mkdir");
    let path = dir.join(p.plan.file_name().expect("file name"));
    std::fs::write(&path, yaml).expect("write plan");
    path
}

/// The `pglogical-ddl` findings of `pgmove plan` for `plan`: (severity, message, fix).
fn ddl_findings(p: &Pair, plan: &Path) -> Vec<(String, String, String)> {
    let out = support::online::pgmove(
        &["plan", plan.to_str().expect("utf8"), "--format", "json"],
        &p.src,
        &p.dst,
    )
    .output()
    .expect("run pgmove");
    let j: serde_json::Value =
        serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("{e}: {}", text(&out)));
    let findings = j["findings"]
        .as_array()
        .unwrap_or_else(|| panic!("findings: {}", text(&out)));
    findings
        .iter()
        .filter(|f| f["check"] == "pglogical-ddl")
        .map(|f| {
            let s = |k: &str| f[k].as_str().unwrap_or_default().to_string();
            (s("severity"), s("message"), s("fix"))
        })
        .collect()
}

fn install_guard(plan: &Path) {
    let plan = pgmove::plan::load(plan).expect("plan");
    let source = plan.endpoint(Side::Source).expect("source");
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    rt.block_on(pgmove::cdc::ddl::guard::install(&source, &plan))
        .expect("install the guard");
}

fn event_triggers(c: &support::Cluster) -> String {
    c.psql(
        "shop",
        "SELECT coalesce(string_agg(evtname || ':' || evtenabled::text, ',' ORDER BY evtname), '') FROM pg_event_trigger WHERE evtname LIKE 'pgmove%'",
    )
}

fn columns(c: &support::Cluster, table: &str) -> String {
    c.psql(
        "shop",
        &format!("SELECT string_agg(attname, ',' ORDER BY attnum) FROM pg_attribute WHERE attrelid = '{table}'::regclass AND attnum > 0 AND NOT attisdropped"),
    )
}

/// The statement fails on the source; its error text.
fn refused(c: &support::Cluster, sql: &str) -> String {
    let out = c.psql_output("shop", sql);
    assert!(!out.status.success(), "{sql} ran");
    String::from_utf8_lossy(&out.stderr).to_string()
}

fn apply(p: &Pair, plan: &Path) {
    let out = support::online::pgmove(&support::online::apply_args(plan), &p.src, &p.dst)
        .output()
        .expect("run pgmove");
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
}

/// Waits (30 s at most) until `sql` runs on `c` and returns `want` (an error, such as a table
/// not there yet, is waited through).
fn wait_until(c: &support::Cluster, sql: &str, want: &str) {
    let deadline = Instant::now() + Duration::from_secs(30);
    let got = || {
        let out = c.psql_output("shop", sql);
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    };
    while got() != want {
        assert!(Instant::now() < deadline, "{sql} never returned {want}");
        std::thread::sleep(Duration::from_millis(200));
    }
}

#[test]
fn cdc_ddl_under_pglogical_guards_the_source_replicate_through_pglogical_refuse_none_ignore_nothing(
) {
    let p = pair("pgld");
    // Preflight: replicate warns with the reason and the call; refuse (as a superuser) and
    // ignore have nothing to say.
    let replicate = plan_with(&p, "replicate", "replicate");
    let refuse = plan_with(&p, "refuse", "refuse");
    let ignore = plan_with(&p, "ignore", "ignore");
    let f = ddl_findings(&p, &replicate);
    assert_eq!(f.len(), 1, "{f:?}");
    let (severity, message, fix) = &f[0];
    assert_eq!(severity, "warning");
    assert!(message.contains("whole query string"), "{message}");
    assert!(
        fix.contains("pglogical.replicate_ddl_command('ALTER TABLE public.t ADD COLUMN c int', ARRAY['pgmove_pgld', 'ipgmove_pgld'])"),
        "{fix}"
    );
    assert!(ddl_findings(&p, &refuse).is_empty());
    assert!(ddl_findings(&p, &ignore).is_empty());
    // ignore: no guard.
    install_guard(&ignore);
    assert_eq!(event_triggers(&p.src), "");

    // refuse: apply puts the guard on; every schema change to a moved table is rolled back,
    // through pglogical too.
    apply(&p, &refuse);
    assert_eq!(
        event_triggers(&p.src),
        "pgmove_pgld_ddl_guard:A,pgmove_pgld_ddl_guard_drop:A"
    );
    let e = refused(&p.src, "ALTER TABLE t ADD COLUMN c int");
    assert!(
        e.contains("pgmove refuses ALTER TABLE on public.t: plan pgld moves this database with pglogical and its cdc.ddl is refuse"),
        "{e}"
    );
    assert!(e.contains("SET pgmove.ddl_guard = off"), "{e}");
    let e = refused(
        &p.src,
        "SELECT pglogical.replicate_ddl_command('ALTER TABLE public.t ADD COLUMN c int', ARRAY['pgmove_pgld', 'ipgmove_pgld'])",
    );
    assert!(e.contains("cdc.ddl is refuse"), "{e}");

    // replicate: apply again (it resumes: nothing else to do) with the plan's default.
    apply(&p, &replicate);
    let e = refused(&p.src, "ALTER TABLE t ADD COLUMN c int");
    assert!(
        e.contains("pgmove refuses ALTER TABLE on public.t: plan pgld moves this database with pglogical, which replicates a schema change only when it is sent through pglogical.replicate_ddl_command"),
        "{e}"
    );
    assert!(
        e.contains("SELECT pglogical.replicate_ddl_command('<the statement, with schema-qualified names>', ARRAY['pgmove_pgld', 'ipgmove_pgld'])"),
        "{e}"
    );
    let e = refused(&p.src, "CREATE TABLE public.n (id int PRIMARY KEY)");
    assert!(e.contains("CREATE TABLE on public.n"), "{e}");
    // pglogical itself refuses a plain DROP of a table in a set; with CASCADE it would take
    // the table out of the sets: the guard refuses that.
    let e = refused(&p.src, "DROP TABLE t");
    assert!(e.contains("membership in replication set"), "{e}");
    let e = refused(&p.src, "DROP TABLE t CASCADE");
    assert!(e.contains("pgmove refuses DROP TABLE on public.t"), "{e}");
    // Also in a multi-statement string (all of it rolled back), and as replica.
    refused(
        &p.src,
        "SET session_replication_role = replica; INSERT INTO t VALUES (1000, 'x'); ALTER TABLE t ADD COLUMN c int",
    );
    assert_eq!(columns(&p.src, "t"), "id,v");
    assert_eq!(p.src.psql("shop", "SELECT count(*) FROM t"), "100");
    // Through pglogical for a set the target does not subscribe to (the default ddl_sql): it
    // would never reach the target.
    let e = refused(
        &p.src,
        "SELECT pglogical.replicate_ddl_command('ALTER TABLE public.t ADD COLUMN c int')",
    );
    assert!(e.contains("pgmove refuses ALTER TABLE on public.t"), "{e}");
    // Excluded tables and temporary tables are not moved: left alone.
    p.src.psql(
        "shop",
        "CREATE TABLE public.tmp_scratch (x int); ALTER TABLE public.tmp_scratch ADD COLUMN y int; DROP TABLE public.tmp_scratch;
         CREATE TEMP TABLE tt (x int);",
    );
    // Through pglogical for the plan's sets: runs on the source, and the target gets it at
    // its point of the stream, before the row that uses it.
    p.src.psql(
        "shop",
        "SELECT pglogical.replicate_ddl_command('ALTER TABLE public.t ADD COLUMN c int', ARRAY['pgmove_pgld', 'ipgmove_pgld']);
         INSERT INTO t VALUES (101, 'v101', 7);",
    );
    assert_eq!(columns(&p.src, "t"), "id,v,c");
    wait_until(&p.dst, "SELECT count(*) FROM t WHERE id = 101", "1");
    assert_eq!(columns(&p.dst, "t"), "id,v,c");
    assert_eq!(p.dst.psql("shop", "SELECT c FROM t WHERE id = 101"), "7");

    // A table created through pglogical goes into the plan's sets (with its key: both), so
    // its rows follow; one filled by the creating statement is refused (its rows would not).
    p.src.psql(
        "shop",
        "SELECT pglogical.replicate_ddl_command('CREATE TABLE public.n2 (id int PRIMARY KEY, v text)', ARRAY['pgmove_pgld', 'ipgmove_pgld']);
         INSERT INTO n2 VALUES (1, 'a'), (2, 'b');",
    );
    p.src.psql(
        "shop",
        "UPDATE n2 SET v = 'c' WHERE id = 1; DELETE FROM n2 WHERE id = 2",
    );
    assert_eq!(
        p.src.psql("shop", "SELECT string_agg(s.set_name, ',' ORDER BY s.set_name) FROM pglogical.replication_set_table t JOIN pglogical.replication_set s USING (set_id) WHERE t.set_reloid = 'public.n2'::regclass"),
        "ipgmove_pgld,pgmove_pgld"
    );
    wait_until(
        &p.dst,
        "SELECT string_agg(id || '=' || v, ',') FROM n2",
        "1=c",
    );
    let e = refused(
        &p.src,
        "SELECT pglogical.replicate_ddl_command('CREATE TABLE public.n3 AS SELECT * FROM public.t', ARRAY['pgmove_pgld', 'ipgmove_pgld'])",
    );
    assert!(
        e.contains("pgmove refuses CREATE TABLE AS of public.n3 through pglogical"),
        "{e}"
    );

    // The user's deliberate escape: runs on the source only; pglogical does not carry it.
    p.src.psql(
        "shop",
        "SET pgmove.ddl_guard = off; ALTER TABLE t ADD COLUMN d int;",
    );
    assert_eq!(columns(&p.src, "t"), "id,v,c,d");
    std::thread::sleep(Duration::from_secs(1));
    assert_eq!(columns(&p.dst, "t"), "id,v,c");

    // Cleanup (the subscription still replicating) removes the guard with the rest.
    let started = Instant::now();
    let out = cleanup(&p, &["--format", "json"]);
    eprintln!(
        "cleanup with the subscription replicating took {:?}",
        started.elapsed()
    );
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("pgmove_pgld_ddl_guard_drop"), "{stdout}");
    assert!(stdout.contains("pglogical subscription"), "{stdout}");
    assert_eq!(event_triggers(&p.src), "");
    p.src.psql("shop", "ALTER TABLE t DROP COLUMN d");
}
