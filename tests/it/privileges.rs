//! Privileges and owners with `roles: skip` (the default): table, column, default, schema
//! `public` and large-object grants and owners arrive for the roles that exist on the target;
//! a grant to a role the target lacks is reported by name, not fatal. Real servers.

use crate::support;

use support::online::{assert_ok, pair, run, text, PlanYaml};
use support::Cluster;

/// Roles on both servers (roles are per cluster).
const ROLES: &str = "CREATE ROLE alice; CREATE ROLE bob; CREATE ROLE \"Mr X\";";

/// Privileges of every kind, one to `ghost`, a role only the source has.
const SOURCE: &str = "
CREATE ROLE ghost;
CREATE TABLE public.t (id int PRIMARY KEY, a int, b text);
INSERT INTO public.t VALUES (1, 1, 'x');
GRANT SELECT ON public.t TO alice;
GRANT UPDATE (b) ON public.t TO bob;
GRANT INSERT ON public.t TO \"Mr X\" WITH GRANT OPTION;
GRANT DELETE ON public.t TO ghost;
ALTER DEFAULT PRIVILEGES IN SCHEMA public GRANT SELECT ON TABLES TO alice;
ALTER DEFAULT PRIVILEGES GRANT USAGE ON SEQUENCES TO ghost;
ALTER SCHEMA public OWNER TO alice;
GRANT USAGE ON SCHEMA public TO bob;
SELECT lo_from_bytea(4242, 'large');
ALTER LARGE OBJECT 4242 OWNER TO bob;
GRANT SELECT ON LARGE OBJECT 4242 TO alice;
GRANT UPDATE ON LARGE OBJECT 4242 TO ghost;
";

/// The privileges that must arrive, as the catalogue shows them on either server.
const PRIVILEGES: &str = "
SELECT (SELECT relacl::text FROM pg_class WHERE oid = 'public.t'::regclass)
    || ' / ' || (SELECT attacl::text FROM pg_attribute WHERE attrelid = 'public.t'::regclass AND attname = 'b')
    || ' / ' || (SELECT string_agg(defaclacl::text, ',' ORDER BY defaclobjtype) FROM pg_default_acl WHERE defaclnamespace = 'public'::regnamespace)
    || ' / ' || (SELECT nspowner::regrole::text || ' ' || nspacl::text FROM pg_namespace WHERE nspname = 'public')
    || ' / ' || (SELECT lomowner::regrole::text || ' ' || lomacl::text FROM pg_largeobject_metadata WHERE oid = 4242)";

fn setup() -> (Cluster, Cluster) {
    let (src, dst) = pair();
    src.psql("shop", ROLES);
    dst.psql("shop", ROLES);
    src.psql("shop", SOURCE);
    (src, dst)
}

/// The source's privileges with those of `ghost` removed: what the target must hold.
fn expected(src: &Cluster) -> String {
    let all = src.psql("shop", PRIVILEGES);
    assert!(all.contains("ghost"), "fixture: {all}");
    // aclitem text: `ghost=d/postgres` inside `{...,...}`.
    let mut out = String::new();
    for part in all.split(" / ") {
        let mut kept: Vec<String> = Vec::new();
        for item in part.split(',') {
            if item.trim_start_matches('{').starts_with("ghost=") {
                // Keep the list's closing brace when the last item goes.
                if item.ends_with('}') {
                    if let Some(last) = kept.last_mut() {
                        last.push('}');
                    }
                }
            } else {
                kept.push(item.to_string());
            }
        }
        let cleaned = kept.join(",");
        if !out.is_empty() {
            out.push_str(" / ");
        }
        out.push_str(&cleaned);
    }
    out
}

fn check(strategy: &str) {
    let (src, dst) = setup();
    let want = expected(&src);
    let dir = tempfile::tempdir().expect("tempdir");
    let plan = PlanYaml {
        strategy: Some(strategy),
        extra: "objects:\n  large_objects: true\n",
        ..PlanYaml::default()
    }
    .write(dir.path(), "grants", &src, &dst);
    let p = plan.to_str().expect("utf8");
    // plan warns about the missing grantee by name, and does not block.
    let out = run(&["plan", p], &src, &dst);
    let said = text(&out);
    assert_eq!(out.status.code(), Some(0), "{said}");
    assert!(
        said.contains("privileges granted to 1 role(s) missing on the target"),
        "{said}"
    );
    assert!(said.contains("ghost"), "{said}");
    let args: Vec<&str> = if strategy == "copy-cdc" {
        vec!["apply", p, "--yes", "--stop-after-load"]
    } else {
        vec!["apply", p, "--yes"]
    };
    let out = run(&args, &src, &dst);
    assert_ok(&out);
    let got = dst.psql("shop", PRIVILEGES);
    assert_eq!(got, want, "{strategy}: target privileges\n{}", text(&out));
    // The grants to the missing role are reported by name.
    let log = text(&out);
    assert!(
        log.contains("ghost") && log.contains("missing on the target"),
        "{log}"
    );
    assert_eq!(dst.psql("shop", "SELECT lo_get(4242)"), "\\x6c61726765");
}

#[test]
fn dump_restore_keeps_grants_owners_and_reports_missing_roles() {
    check("dump-restore");
}

#[test]
fn copy_cdc_keeps_grants_owners_and_reports_missing_roles() {
    check("copy-cdc");
}
