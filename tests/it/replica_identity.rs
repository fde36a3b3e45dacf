//! `cdc.tables_without_key: replica-identity-full`: pgmove records each table's replica
//! identity before making it FULL on the source, the target keeps the original identity, and
//! `pgmove cleanup` gives the source exactly its earlier identity back. Real servers.

use crate::support;

use support::online::{
    assert_ok, pair, run, start_apply, terminate, text, wait_caught_up, wait_loaded, write_plan, DB,
};
use support::Cluster;

/// `relname=relreplident` of the test's tables.
fn identities(c: &Cluster) -> String {
    c.psql(
        DB,
        "SELECT string_agg(relname || '=' || relreplident::text, ',' ORDER BY relname) FROM pg_class WHERE relname IN ('events', 'quiet', 'keyed')",
    )
}

#[test]
fn cleanup_restores_the_source_replica_identity_and_the_target_keeps_the_original() {
    let (src, dst) = pair();
    src.psql(
        DB,
        "CREATE TABLE public.events (v text);
         INSERT INTO public.events VALUES ('a'), ('b');
         CREATE TABLE public.quiet (v text);
         ALTER TABLE public.quiet REPLICA IDENTITY NOTHING;
         INSERT INTO public.quiet VALUES ('q');
         CREATE TABLE public.keyed (id int PRIMARY KEY);",
    );
    let before = identities(&src);
    assert_eq!(before, "events=d,keyed=d,quiet=n");
    let dir = tempfile::tempdir().expect("tempdir");
    let plan = write_plan(
        dir.path(),
        "ri",
        &src,
        &dst,
        "cdc:\n  tables_without_key: replica-identity-full\n",
    );
    let log = dir.path().join("apply.log");
    let mut child = start_apply(&plan, &src, &dst, &log);
    wait_loaded(&dst, "ri", &mut child, &log);
    src.psql(DB, "UPDATE public.events SET v = 'c' WHERE v = 'a'");
    wait_caught_up(&src, &dst, "ri", &mut child, &log);
    terminate(&mut child, &log);
    assert_eq!(
        dst.psql(
            DB,
            "SELECT string_agg(v, ',' ORDER BY v) FROM public.events"
        ),
        "b,c"
    );
    // While replicating: FULL on the source only; the target has the source's original.
    assert_eq!(identities(&src), "events=f,keyed=d,quiet=f");
    assert_eq!(identities(&dst), before);

    let out = run(&["cleanup", plan.to_str().expect("utf8")], &src, &dst);
    assert_ok(&out);
    assert!(text(&out).contains("replica identity"), "{}", text(&out));
    assert_eq!(identities(&src), before, "{}", text(&out));
}
