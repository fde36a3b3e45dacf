//! What every command that inspects knows before anything is written: the plan, both
//! servers' inventories, the decision and the preflight findings.

use std::path::Path;

use super::Failure;
use crate::inspect::{self, Inventory};
use crate::pg::{Endpoint, Side};
use crate::plan::{self, Plan, StrategyChoice};
use crate::planner::{self, Decision, Strategy};
use crate::preflight::{self, Context, ProbeError};
use crate::report::PlanReport;
use crate::strategy::dump_restore;
use crate::tools;

/// Everything known before anything is written.
pub struct Prepared {
    pub plan: Plan,
    pub source: Endpoint,
    pub target: Endpoint,
    pub source_inv: Inventory,
    pub target_inv: Inventory,
    pub report: PlanReport,
}

fn explicit_strategy(plan: &Plan) -> Option<Strategy> {
    match plan.strategy {
        StrategyChoice::Auto => None,
        StrategyChoice::DumpRestore => Some(Strategy::DumpRestore),
        StrategyChoice::Pglogical => Some(Strategy::Pglogical),
        StrategyChoice::CopyCdc => Some(Strategy::CopyCdc),
    }
}

/// An inventory that could not be taken: a server older than pgmove supports blocks the plan
/// (exit 2, with what to do); anything else is a failure (exit 1).
pub(super) fn inspect_failure(e: inspect::InspectError) -> Failure {
    match e {
        inspect::InspectError::Unsupported { .. } => Failure::input(e),
        _ => Failure::runtime(e),
    }
}

/// Loads the plan, inspects both servers (read-only), decides and runs preflight.
pub async fn prepare(path: &Path) -> Result<Prepared, Failure> {
    let plan = plan::load(path).map_err(Failure::input)?;
    let source = plan.endpoint(Side::Source).map_err(Failure::input)?;
    let target = plan.endpoint(Side::Target).map_err(Failure::input)?;
    // The client programs are asked their versions (processes) while the servers are read.
    let bin_dir = plan.bin_dir.clone();
    let warm = tokio::task::spawn_blocking(move || {
        tools::warm(bin_dir.as_deref(), &["pg_dump", "pg_restore", "psql"])
    });
    let (s, t) = tokio::join!(inspect::inspect(&source), inspect::inspect(&target));
    // Best effort: a lookup below asks again whatever this did not.
    let _ = warm.await;
    let source_inv = s.map_err(inspect_failure)?;
    let mut target_inv = t.map_err(inspect_failure)?;
    // target.kind, unless auto, overrides the detection: every check and fix follows it.
    planner::apply_target_kind(&plan, &mut target_inv);
    let decision: Decision = planner::decide(&plan, &source_inv, &target_inv);
    let intended = decision.strategy.or(explicit_strategy(&plan));
    let major = (source_inv.server.version_num / 10000).max(0) as u32;
    let find = |name: &str| tools::find(name, plan.bin_dir.as_deref(), major);
    // The checks that ask the servers (read-only, independent of each other), at once.
    let copy_cdc = intended == Some(Strategy::CopyCdc);
    let (replication_probe, owned, capture) = tokio::join!(
        async {
            if intended.is_some_and(Strategy::is_online) {
                Some(probe_replication(&source, plan.bin_dir.as_deref()).await)
            } else {
                None
            }
        },
        async {
            // Objects with the names of the plan's slot and publications that pgmove did not
            // record creating: never used nor dropped (`crate::owned`).
            if copy_cdc {
                Some(crate::owned::preflight(&plan, &source, &target).await)
            } else {
                None
            }
        },
        async {
            // The DDL capture as the source holds it (the master's from `pgmove setup-sql`?).
            if copy_cdc && plan.cdc.ddl != plan::Ddl::Ignore {
                Some(
                    crate::cdc::ddl::setup::detect(
                        &source,
                        &plan.name,
                        &plan.objects.schemas,
                        &plan.objects.exclude,
                    )
                    .await,
                )
            } else {
                None
            }
        },
    );
    // The newest pg_dump that can dump the source, with the pg_restore of its installation.
    let (pg_dump, pg_restore) = match tools::find_dump_clients(plan.bin_dir.as_deref(), major) {
        Ok((d, r)) => (Ok(d), Ok(r)),
        Err(e) => match find("pg_dump") {
            Ok(d) => (Ok(d), Err(e)),
            Err(_) => (Err(e), find("pg_restore")),
        },
    };
    let clients: Vec<tools::Tool> = match (&pg_dump, &pg_restore) {
        (Ok(d), Ok(r)) if intended.is_some() => vec![d.clone(), r.clone()],
        _ => vec![],
    };
    let ctx = Context {
        plan: &plan,
        source: &source_inv,
        target: &target_inv,
        strategy: intended,
        pg_dump,
        pg_restore,
        replication_probe,
    };
    let mut findings = preflight::run(&ctx);
    if copy_cdc {
        if let Some(owned) = owned {
            findings.extend(owned.map_err(Failure::runtime)?);
        }
        if let Some(capture) = capture {
            use crate::cdc::ddl::setup;
            let capture = capture.map_err(Failure::runtime)?;
            findings.retain(|f| f.check != setup::CHECK);
            findings.extend(setup::preflight(&plan, &source_inv, Some(&capture)));
        }
        findings.sort_by_key(|f| f.severity);
    }
    if intended == Some(Strategy::Pglogical) && plan.cdc.ddl != plan::Ddl::Ignore {
        // The DDL guard as the source holds it (the master's from `pgmove setup-sql`?).
        use crate::cdc::ddl::setup;
        let guard = crate::cdc::ddl::guard::detect(&source, &plan)
            .await
            .map_err(Failure::runtime)?;
        findings.retain(|f| {
            !(f.check == setup::GUARD_CHECK && f.severity == preflight::Severity::Blocker)
        });
        findings.extend(setup::guard_preflight(&plan, &source_inv, Some(&guard)));
        findings.sort_by_key(|f| f.severity);
    }
    if intended == Some(Strategy::Pglogical) {
        // How the target server reaches the source, tried from pgmove's host.
        let probe = preflight::probe_provider(&plan, &source).await;
        findings.extend(preflight::provider_findings(
            &plan,
            &source_inv,
            &source,
            &target,
            probe.as_ref(),
        ));
        // What only the servers tell: rds.extensions, the rights on a pglogical someone
        // else installed (on RDS/Aurora the master user), those of pglogical's initial copy.
        findings.extend(preflight::pglogical_access(&source, &source_inv).await);
        findings.extend(preflight::pglogical_access(&target, &target_inv).await);
        findings.sort_by_key(|f| f.severity);
    }
    let mut report = PlanReport::new(
        &plan.name,
        &plan.file,
        &source_inv,
        &target_inv,
        findings,
        decision,
    );
    report.clients = clients;
    Ok(Prepared {
        plan,
        source,
        target,
        source_inv,
        target_inv,
        report,
    })
}

/// Tries a replication connection to the source (`IDENTIFY_SYSTEM`), as pg_hba decides.
async fn probe_replication(source: &Endpoint, bin_dir: Option<&Path>) -> Result<(), ProbeError> {
    let psql = tools::find("psql", bin_dir, 0)?;
    let out = tokio::process::Command::new(&psql.path)
        .envs(dump_restore::libpq_env_for(source, psql.major))
        .arg("--no-psqlrc")
        .arg(format!(
            "dbname={} replication=database",
            crate::pg::quote::literal(source.info.dbname())
        ))
        .args(["-c", "IDENTIFY_SYSTEM"])
        .output()
        .await
        .map_err(ProbeError::Spawn)?;
    if out.status.success() {
        Ok(())
    } else {
        Err(ProbeError::Refused(crate::pg::redact(
            String::from_utf8_lossy(&out.stderr).trim(),
            source.info.password.as_ref(),
        )))
    }
}
