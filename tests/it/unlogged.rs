//! Unlogged tables with copy-cdc and change capture: `plan` warns, the load copies them (still
//! UNLOGGED on the target), they are not published, and change capture runs. Real servers.

use crate::support;

use support::online::{
    pair, run, start_apply, terminate, text, wait_caught_up, wait_loaded, write_plan, DB,
};

#[test]
fn unlogged_tables_are_copied_not_published_and_plan_warns() {
    let (src, dst) = pair();
    src.psql(
        DB,
        "CREATE TABLE public.orders (id int PRIMARY KEY, note text);
         INSERT INTO public.orders SELECT g, 'o' || g FROM generate_series(1, 50) g;
         CREATE UNLOGGED TABLE public.scratch (id int PRIMARY KEY, v text);
         INSERT INTO public.scratch SELECT g, 's' || g FROM generate_series(1, 30) g;
         CREATE UNLOGGED TABLE public.scratch_nokey (v text);
         INSERT INTO public.scratch_nokey VALUES ('a'), ('b');",
    );
    let dir = tempfile::tempdir().expect("tempdir");
    let plan = write_plan(dir.path(), "unlogged", &src, &dst, "");
    let p = plan.to_str().expect("utf8");

    // plan: Ready (no blocker from the keyless unlogged table), with a warning naming them.
    let out = run(&["plan", p], &src, &dst);
    let all = text(&out);
    assert_eq!(out.status.code(), Some(0), "{all}");
    assert!(all.contains("unlogged table(s)"), "{all}");
    assert!(
        all.contains("public.scratch") && all.contains("public.scratch_nokey"),
        "{all}"
    );
    assert!(
        all.contains("not replicated") && all.contains("objects.exclude"),
        "{all}"
    );

    let log = dir.path().join("apply.log");
    let mut child = start_apply(&plan, &src, &dst, &log);
    wait_loaded(&dst, "unlogged", &mut child, &log);
    src.psql(DB, "INSERT INTO public.orders VALUES (51, 'late')");
    wait_caught_up(&src, &dst, "unlogged", &mut child, &log);
    terminate(&mut child, &log);

    assert_eq!(dst.psql(DB, "SELECT count(*) FROM public.orders"), "51");
    assert_eq!(dst.psql(DB, "SELECT count(*) FROM public.scratch"), "30");
    assert_eq!(
        dst.psql(DB, "SELECT count(*) FROM public.scratch_nokey"),
        "2"
    );
    assert_eq!(
        dst.psql(
            DB,
            "SELECT string_agg(relname || '=' || relpersistence::text, ',' ORDER BY relname) FROM pg_class WHERE relname IN ('scratch', 'scratch_nokey', 'orders')"
        ),
        "orders=p,scratch=u,scratch_nokey=u"
    );
    // The publication holds the logged table only.
    assert_eq!(
        src.psql(
            DB,
            "SELECT string_agg(tablename, ',') FROM pg_publication_tables WHERE pubname = 'pgmove_unlogged'"
        ),
        "orders"
    );
}
