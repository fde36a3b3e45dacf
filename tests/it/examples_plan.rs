//! Every example plan in plans/examples is loaded and planned against real servers (the
//! examples' hosts are fictional, so both inventories come from local harness clusters).

use crate::support;

use pgmove::inspect;
use pgmove::pg::{Endpoint, Secret, Side};
use pgmove::plan;
use pgmove::planner::{self, Strategy};
use pgmove::preflight::{self, Context, Severity};
use support::{Cluster, Options};

fn endpoint(c: &Cluster, side: Side) -> Endpoint {
    Endpoint::from_dsn(
        side,
        &format!(
            "postgres://postgres@127.0.0.1:{}/shop?sslmode=disable",
            c.port
        ),
        Some(Secret::new(c.password.clone())),
        &|_| None,
    )
    .expect("dsn")
}

/// A client program this test does not look for.
fn not_looked_up(name: &str) -> pgmove::tools::ToolError {
    pgmove::tools::ToolError::NotFound {
        name: name.to_string(),
        looked: "nowhere: not looked up in this test".to_string(),
        want: 0,
    }
}

#[tokio::test]
async fn every_example_plan_loads_and_plans() {
    let src = Cluster::start(Options::logical());
    let dst = Cluster::start(Options::default());
    src.create_db("shop");
    dst.create_db("shop");
    src.psql("shop", include_str!("../fixtures/many_types.sql"));
    let source = inspect::inspect(&endpoint(&src, Side::Source))
        .await
        .expect("inspect source");
    let target = inspect::inspect(&endpoint(&dst, Side::Target))
        .await
        .expect("inspect target");

    let mut seen = 0;
    let mut paths: Vec<_> = std::fs::read_dir("plans/examples")
        .expect("plans/examples")
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|e| e == "yaml"))
        .collect();
    paths.sort();
    for path in paths {
        let p = plan::load(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        let decision = planner::decide(&p, &source, &target);
        let named = match p.strategy {
            plan::StrategyChoice::DumpRestore => Some(Strategy::DumpRestore),
            plan::StrategyChoice::CopyCdc => Some(Strategy::CopyCdc),
            plan::StrategyChoice::Pglogical => Some(Strategy::Pglogical),
            plan::StrategyChoice::Auto => None,
        };
        let intended = decision.strategy.or(named);
        let ctx = Context {
            plan: &p,
            source: &source,
            target: &target,
            strategy: intended,
            pg_dump: Err(not_looked_up("pg_dump")),
            pg_restore: Err(not_looked_up("pg_restore")),
            replication_probe: None,
        };
        let findings = preflight::run(&ctx);
        let name = path.display().to_string();
        match p.strategy {
            plan::StrategyChoice::DumpRestore | plan::StrategyChoice::CopyCdc => {
                assert_eq!(decision.strategy, named, "{name}: {}", decision.why);
                assert!(decision.steps.len() >= 5, "{name}: {:?}", decision.steps);
                assert!(decision.estimated_total_secs.is_some(), "{name}");
            }
            plan::StrategyChoice::Pglogical => {
                // pglogical is not preloaded on these servers: the plan says so, as a
                // blocker with the fix, instead of choosing it.
                assert_eq!(decision.strategy, None, "{name}");
                let f = findings
                    .iter()
                    .find(|f| f.check == "pglogical-preload")
                    .unwrap_or_else(|| panic!("{name}: no pglogical-preload finding"));
                assert_eq!(f.severity, Severity::Blocker);
                assert!(f
                    .fix
                    .as_deref()
                    .unwrap_or("")
                    .contains("shared_preload_libraries"));
            }
            plan::StrategyChoice::Auto => {
                assert!(decision.strategy.is_some(), "{name}: {}", decision.why);
                assert!(!decision.rejected.is_empty(), "{name}");
            }
        }
        // The sample has a keyless table: online examples must say what happens to it.
        if intended.is_some_and(Strategy::is_online) {
            assert!(
                findings.iter().any(|f| f.check == "tables-without-key"),
                "{name}"
            );
        }
        seen += 1;
    }
    assert!(seen >= 5, "only {seen} example plans");
}
