//! Issue 11 (fidelity): objects and values that must arrive exactly, through every strategy.

mod support;

use support::online::{assert_ok, pair, run, text, PlanYaml, DB};

/// Extended statistics (`CREATE STATISTICS`) appear in the dump's table of contents as
/// `STATISTICS`; each strategy must read that entry and restore the object.
#[test]
fn extended_statistics_move_through_dump_restore_and_copy_cdc() {
    for strategy in ["dump-restore", "copy-cdc"] {
        let (src, dst) = pair();
        src.psql(
            DB,
            "CREATE TABLE public.t (id int PRIMARY KEY, a int, b int, c text);
             INSERT INTO public.t SELECT g, g % 10, g % 100, md5(g::text) FROM generate_series(1, 1000) g;
             CREATE STATISTICS public.t_ab (dependencies, ndistinct) ON a, b FROM public.t;
             CREATE STATISTICS public.t_expr ON (a + b), c FROM public.t;
             ALTER STATISTICS public.t_ab SET STATISTICS 500;",
        );
        let dir = tempfile::tempdir().expect("tempdir");
        let plan = PlanYaml {
            strategy: Some(strategy),
            extra: "cdc:\n  tables_without_key: insert-only\n",
            ..PlanYaml::default()
        }
        .write(dir.path(), "stats", &src, &dst);
        let p = plan.to_str().expect("utf8");
        let out = if strategy == "copy-cdc" {
            run(&["apply", p, "--yes", "--stop-after-load"], &src, &dst)
        } else {
            run(&["apply", p, "--yes"], &src, &dst)
        };
        assert_ok(&out);
        let defs = "SELECT string_agg(pg_get_statisticsobjdef(oid) || ' ' || stxstattarget, '; ' ORDER BY stxname) FROM pg_statistic_ext";
        let want = src.psql(DB, defs);
        assert!(want.contains("t_ab"), "{want}");
        assert_eq!(dst.psql(DB, defs), want, "{strategy}: {}", text(&out));
        assert_eq!(dst.psql(DB, "SELECT count(*) FROM public.t"), "1000");
    }
}
