//! `pgmove verify` sees what pg_dump would show: after a dump-restore migration, each
//! property planted differently on the target (row level security, UNLOGGED, a partition
//! bound, owners, table/column/default/schema/large-object privileges, comments, replica
//! identity, storage parameters, a policy, a rule, extended statistics, column statistics
//! target and storage, CLUSTER ON, sequence OWNED BY, inheritance, materialized-view
//! contents) makes verify exit 3
//! naming the object, the property and both values; an untouched migration exits 0, a
//! materialized view stale on the source is reported as that, and a grant to a role the
//! target lacks is a note. During copy-cdc, the REPLICA IDENTITY FULL pgmove keeps on keyless
//! source tables is not a difference. Real servers.

use crate::support;

use std::collections::BTreeSet;

use support::online::{
    assert_ok, pair, run, start_apply, terminate, text, wait_caught_up, wait_loaded, write_plan,
    PlanYaml, DB,
};

/// Roles on both servers (roles are per cluster).
const ROLES: &str = "CREATE ROLE alice; CREATE ROLE bob;";

/// One object for each property; `ghost` exists on the source only.
const SOURCE: &str = "
CREATE ROLE ghost;
CREATE SCHEMA app AUTHORIZATION alice;
GRANT USAGE ON SCHEMA app TO bob;
CREATE TABLE public.t (id int PRIMARY KEY, a int, b text) WITH (fillfactor = 80);
INSERT INTO public.t SELECT g, g, 'b' || g FROM generate_series(1, 50) g;
ALTER TABLE public.t ENABLE ROW LEVEL SECURITY;
ALTER TABLE public.t FORCE ROW LEVEL SECURITY;
CREATE POLICY p_read ON public.t FOR SELECT TO alice USING (a > 0);
GRANT SELECT ON public.t TO alice;
GRANT UPDATE (b) ON public.t TO bob;
GRANT DELETE ON public.t TO ghost;
COMMENT ON TABLE public.t IS 'the t';
COMMENT ON COLUMN public.t.a IS 'the a';
CREATE TABLE public.r (id int PRIMARY KEY, v text);
ALTER TABLE public.r ENABLE ROW LEVEL SECURITY;
CREATE UNLOGGED TABLE public.u (id int PRIMARY KEY, v text);
INSERT INTO public.u VALUES (1, 'one');
CREATE TABLE public.ev (id int, at date, PRIMARY KEY (id, at)) PARTITION BY RANGE (at);
CREATE TABLE public.ev_2025 PARTITION OF public.ev FOR VALUES FROM ('2025-01-01') TO ('2026-01-01');
INSERT INTO public.ev SELECT g, DATE '2025-01-01' + g FROM generate_series(1, 100) g;
CREATE TABLE public.owned (id int PRIMARY KEY);
ALTER TABLE public.owned OWNER TO alice;
CREATE TABLE public.ri (id int NOT NULL, v text);
CREATE UNIQUE INDEX ri_id ON public.ri (id);
ALTER TABLE public.ri REPLICA IDENTITY USING INDEX ri_id;
INSERT INTO public.ri VALUES (1, 'x');
ALTER DEFAULT PRIVILEGES IN SCHEMA public GRANT SELECT ON TABLES TO alice;
CREATE FUNCTION public.f(int) RETURNS int LANGUAGE sql AS 'SELECT $1';
COMMENT ON FUNCTION public.f(int) IS 'the f';
SELECT lo_from_bytea(4242, 'large');
ALTER LARGE OBJECT 4242 OWNER TO bob;
GRANT SELECT ON LARGE OBJECT 4242 TO alice;
CREATE TABLE public.base (id int PRIMARY KEY, v int);
INSERT INTO public.base SELECT g, g FROM generate_series(1, 100) g;
CREATE MATERIALIZED VIEW public.mv AS SELECT id, v * 10 AS w FROM public.base;
CREATE TABLE public.sales (id int PRIMARY KEY, amount int);
INSERT INTO public.sales SELECT g, g FROM generate_series(1, 100) g;
CREATE MATERIALIZED VIEW public.totals AS SELECT count(*) AS n, sum(amount) AS total FROM public.sales;
CREATE STATISTICS public.t_ab (dependencies) ON a, b FROM public.t;
CREATE RULE r_noop AS ON DELETE TO public.r DO INSTEAD NOTHING;
ALTER TABLE public.t ALTER COLUMN b SET STATISTICS 500;
ALTER TABLE public.t CLUSTER ON t_pkey;
CREATE SEQUENCE public.s OWNED BY public.t.id;
CREATE TABLE public.par (id int);
CREATE TABLE public.child (x int) INHERITS (public.par);
-- The source's copy goes stale: its query would now return something else.
INSERT INTO public.sales SELECT g, g FROM generate_series(101, 110) g;
";

/// Each difference planted on the target after the migration.
const PLANT: &str = "
ALTER TABLE public.t NO FORCE ROW LEVEL SECURITY;
ALTER TABLE public.r DISABLE ROW LEVEL SECURITY;
ALTER TABLE public.u SET LOGGED;
ALTER TABLE public.ev DETACH PARTITION public.ev_2025;
ALTER TABLE public.ev ATTACH PARTITION public.ev_2025 FOR VALUES FROM ('2025-01-01') TO ('2027-01-01');
ALTER TABLE public.owned OWNER TO bob;
REVOKE SELECT ON public.t FROM alice;
REVOKE UPDATE (b) ON public.t FROM bob;
ALTER DEFAULT PRIVILEGES IN SCHEMA public REVOKE SELECT ON TABLES FROM alice;
REVOKE USAGE ON SCHEMA app FROM bob;
ALTER SCHEMA app OWNER TO bob;
ALTER LARGE OBJECT 4242 OWNER TO postgres;
REVOKE SELECT ON LARGE OBJECT 4242 FROM alice;
COMMENT ON TABLE public.t IS 'changed';
COMMENT ON COLUMN public.t.a IS NULL;
COMMENT ON FUNCTION public.f(int) IS 'other';
ALTER TABLE public.ri REPLICA IDENTITY DEFAULT;
ALTER TABLE public.t SET (fillfactor = 90);
DROP POLICY p_read ON public.t;
DROP STATISTICS public.t_ab;
DROP RULE r_noop ON public.r;
ALTER TABLE public.t ALTER COLUMN b SET STATISTICS -1;
ALTER TABLE public.t ALTER COLUMN b SET STORAGE EXTERNAL;
ALTER TABLE public.t SET WITHOUT CLUSTER;
ALTER SEQUENCE public.s OWNED BY NONE;
ALTER TABLE public.child NO INHERIT public.par;
-- The view's contents differ, its base table does not.
UPDATE public.base SET v = v + 1 WHERE id = 1;
REFRESH MATERIALIZED VIEW public.mv;
UPDATE public.base SET v = v - 1 WHERE id = 1;
";

/// (kind, object, property, source value, target value) of every planted difference.
const EXPECTED: &[(&str, &str, &str, &str, &str)] = &[
    (
        "table",
        "public.t",
        "row level security",
        "enabled+forced",
        "enabled",
    ),
    (
        "table",
        "public.r",
        "row level security",
        "enabled",
        "disabled",
    ),
    ("table", "public.u", "persistence", "unlogged", "logged"),
    (
        "table",
        "public.ev_2025",
        "partition bound",
        "FOR VALUES FROM ('2025-01-01') TO ('2026-01-01')",
        "FOR VALUES FROM ('2025-01-01') TO ('2027-01-01')",
    ),
    ("table", "public.owned", "owner", "alice", "bob"),
    ("table", "public.t", "privileges of alice", "SELECT", "none"),
    (
        "column",
        "public.t.b",
        "privileges of bob",
        "UPDATE",
        "none",
    ),
    (
        "default privileges",
        "for role postgres on tables in schema public",
        "privileges of alice",
        "SELECT",
        "none",
    ),
    ("schema", "app", "privileges of bob", "USAGE", "none"),
    ("schema", "app", "owner", "alice", "bob"),
    ("large object", "4242", "owner", "bob", "postgres"),
    (
        "large object",
        "4242",
        "privileges of alice",
        "SELECT",
        "none",
    ),
    ("table", "public.t", "comment", "the t", "changed"),
    ("column", "public.t.a", "comment", "the a", "none"),
    ("function", "public.f(integer)", "comment", "the f", "other"),
    (
        "table",
        "public.ri",
        "replica identity",
        "using index ri_id",
        "default",
    ),
    (
        "table",
        "public.t",
        "storage parameters",
        "fillfactor=80",
        "fillfactor=90",
    ),
    (
        "table",
        "public.t",
        "policy p_read",
        "permissive for SELECT to alice using ((a > 0))",
        "none",
    ),
    (
        "table",
        "public.t",
        "statistics public.t_ab",
        "CREATE STATISTICS public.t_ab (dependencies) ON a, b FROM public.t",
        "none",
    ),
    (
        "table",
        "public.r",
        "rule r_noop",
        "CREATE RULE r_noop AS ON DELETE TO public.r DO INSTEAD NOTHING;",
        "none",
    ),
    ("column", "public.t.b", "statistics target", "500", "none"),
    ("column", "public.t.b", "storage", "none", "external"),
    ("table", "public.t", "clustered on", "t_pkey", "none"),
    ("sequence", "public.s", "owned by", "public.t.id", "none"),
    ("table", "public.child", "inherits", "public.par", "none"),
];

fn verify(
    plan: &str,
    src: &support::Cluster,
    dst: &support::Cluster,
    format: &str,
) -> (Option<i32>, String) {
    let out = run(&["verify", plan, "--format", format], src, dst);
    let code = out.status.code();
    (
        code,
        format!("{}\n{}", String::from_utf8_lossy(&out.stdout), text(&out)),
    )
}

#[test]
fn dump_restore_then_each_planted_property_difference_is_named() {
    let (src, dst) = pair();
    src.psql(DB, ROLES);
    dst.psql(DB, ROLES);
    src.psql(DB, SOURCE);
    let dir = tempfile::tempdir().expect("tempdir");
    let plan = PlanYaml {
        strategy: Some("dump-restore"),
        extra: "objects:\n  large_objects: true\n",
        ..PlanYaml::default()
    }
    .write(dir.path(), "props", &src, &dst);
    let p = plan.to_str().expect("utf8");
    assert_ok(&run(&["apply", p, "--yes"], &src, &dst));

    // The migration as it came: identical, with what is not a migration error said.
    let (code, out) = verify(p, &src, &dst, "text");
    assert_eq!(code, Some(0), "{out}");
    assert!(out.contains("result: IDENTICAL"), "{out}");
    assert!(
        out.contains("note: materialized view public.totals: stale on the source"),
        "{out}"
    );
    assert!(
        out.contains(
            "note: table public.t: privileges of ghost: not moved: role missing on the target (ghost); source DELETE, target none"
        ),
        "{out}"
    );

    dst.psql(DB, PLANT);
    let out = run(&["verify", p, "--format", "json"], &src, &dst);
    assert_eq!(out.status.code(), Some(3), "{}", text(&out));
    let json: serde_json::Value =
        serde_json::from_slice(&out.stdout).expect("verify --format json");
    let found: BTreeSet<(String, String, String, String, String)> = json["objects"]
        .as_array()
        .expect("objects")
        .iter()
        .map(|o| {
            let s = |k: &str| o[k].as_str().unwrap_or_default().to_string();
            let name = if s("schema").is_empty() {
                s("name")
            } else {
                format!("{}.{}", s("schema"), s("name"))
            };
            (s("kind"), name, s("property"), s("source"), s("target"))
        })
        .collect();
    let want: BTreeSet<(String, String, String, String, String)> = EXPECTED
        .iter()
        .map(|(k, n, p, s, t)| {
            (
                k.replace(' ', "-"),
                n.to_string(),
                p.to_string(),
                s.to_string(),
                t.to_string(),
            )
        })
        .collect();
    assert_eq!(found, want, "{}", text(&out));
    // The materialized view whose contents differ (its source copy is fresh).
    let mv = json["tables"]
        .as_array()
        .expect("tables")
        .iter()
        .find(|t| t["name"] == "mv")
        .expect("mv compared");
    assert_eq!(mv["materialized_view"], true);
    assert_eq!(mv["status"], "differs", "{mv}");
    let totals = json["tables"]
        .as_array()
        .expect("tables")
        .iter()
        .find(|t| t["name"] == "totals")
        .expect("totals compared");
    assert_eq!(totals["status"], "same", "{totals}");

    // The text names each object, property and both values.
    let (code, out) = verify(p, &src, &dst, "text");
    assert_eq!(code, Some(3), "{out}");
    for (kind, name, property, s, t) in EXPECTED {
        let line = format!("{kind} {name}: {property}: source {s}, target {t}");
        assert!(out.contains(&line), "missing `{line}` in\n{out}");
    }
    assert!(out.contains("public.mv: differs"), "{out}");
    assert!(
        out.contains("note: materialized view contents differ: the source's copy is current"),
        "{out}"
    );
    let (code, md) = verify(p, &src, &dst, "markdown");
    assert_eq!(code, Some(3), "{md}");
    assert!(
        md.contains("| table | `public.t` | row level security | `enabled+forced` | `enabled` |"),
        "{md}"
    );
    assert!(md.contains("## Notes"), "{md}");
}

#[test]
fn copy_cdc_full_identity_on_keyless_source_tables_is_not_a_difference() {
    let (src, dst) = pair();
    src.psql(
        DB,
        "CREATE TABLE public.events (v text);
         INSERT INTO public.events VALUES ('a'), ('b');
         CREATE TABLE public.quiet (v text);
         ALTER TABLE public.quiet REPLICA IDENTITY NOTHING;
         CREATE TABLE public.keyed (id int PRIMARY KEY);",
    );
    let dir = tempfile::tempdir().expect("tempdir");
    let plan = write_plan(
        dir.path(),
        "ri",
        &src,
        &dst,
        "cdc:\n  tables_without_key: replica-identity-full\n",
    );
    let p = plan.to_str().expect("utf8");
    let log = dir.path().join("apply.log");
    let mut child = start_apply(&plan, &src, &dst, &log);
    wait_loaded(&dst, "ri", &mut child, &log);
    src.psql(DB, "UPDATE public.events SET v = 'c' WHERE v = 'a'");
    wait_caught_up(&src, &dst, "ri", &mut child, &log);
    assert_eq!(
        src.psql(
            DB,
            "SELECT string_agg(relname || '=' || relreplident::text, ',' ORDER BY relname) FROM pg_class WHERE relname IN ('events', 'quiet')"
        ),
        "events=f,quiet=f",
        "pgmove keeps the keyless source tables at FULL while it runs"
    );
    let (first, first_out) = verify(p, &src, &dst, "text");
    // A replica identity that does differ is still named.
    dst.psql(DB, "ALTER TABLE public.keyed REPLICA IDENTITY FULL");
    let (code, out) = verify(p, &src, &dst, "text");
    terminate(&mut child, &log);
    assert_eq!(first, Some(0), "{first_out}");
    assert_eq!(code, Some(3), "{out}");
    assert!(
        out.contains("table public.keyed: replica identity: source default, target full"),
        "{out}"
    );
    assert!(!out.contains("public.events: replica identity"), "{out}");
    assert!(!out.contains("public.quiet: replica identity"), "{out}");
}

#[test]
fn copy_cdc_materialized_view_contents_are_left_to_cutovers_refresh_in_the_dry_run() {
    let (src, dst) = pair();
    src.psql(
        DB,
        "CREATE TABLE public.base (id int PRIMARY KEY, v int);
         INSERT INTO public.base SELECT g, g FROM generate_series(1, 100) g;
         CREATE MATERIALIZED VIEW public.mv AS SELECT id, v FROM public.base;",
    );
    let dir = tempfile::tempdir().expect("tempdir");
    let plan = write_plan(dir.path(), "mvs", &src, &dst, "");
    let p = plan.to_str().expect("utf8");
    let caught_up = || {
        assert_ok(&run(
            &["apply", p, "--yes", "--exit-when-caught-up"],
            &src,
            &dst,
        ))
    };
    caught_up();
    // The source changes and refreshes its view; the target's is the load's until cutover.
    src.psql(
        DB,
        "UPDATE public.base SET v = v + 1 WHERE id = 1; REFRESH MATERIALIZED VIEW public.mv;",
    );
    caught_up();
    let (code, out) = verify(p, &src, &dst, "text");
    assert_eq!(code, Some(3), "{out}");
    assert!(out.contains("public.mv: differs"), "{out}");
    assert!(
        out.contains(
            "the source's copy is current (its query returns what it stores), the target's is not"
        ),
        "{out}"
    );

    // The pre-cutover report: cutover refreshes the view before it verifies, no blocker.
    // WAL written after the catch-up (a checkpoint, catalog pruning) makes the report see the
    // run in flight, where nothing blocks anyway: catch up and look again.
    let mut attempt = 0;
    let json = loop {
        attempt += 1;
        let out = run(&["cutover", p, "--dry-run", "--format", "json"], &src, &dst);
        let json: serde_json::Value = serde_json::from_slice(&out.stdout)
            .unwrap_or_else(|e| panic!("dry-run json: {e}\n{}", text(&out)));
        if json["in_flight"] == false || attempt == 4 {
            break json;
        }
        caught_up();
    };
    assert_eq!(json["in_flight"], false, "{json}");
    let checks: Vec<&str> = json["findings"]
        .as_array()
        .expect("findings")
        .iter()
        .filter_map(|f| f["check"].as_str())
        .collect();
    assert!(!checks.contains(&"table-differs"), "{json}");
}
