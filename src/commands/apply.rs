//! `pgmove apply`: preflight, confirmation, `roles: create`, then the strategy (copy-cdc's
//! online part lives in `online`).

use std::io::{IsTerminal, Write};
use std::path::{Path, PathBuf};

use super::online::{apply_copy_cdc, apply_pglogical, Online};
use super::{prepare, report_failure, Failure, Global, Prepared};
use crate::exit;
use crate::plan;
use crate::planner::Strategy;
use crate::progress::Progress;
use crate::report::{self, Format, Summary, To};
use crate::strategy::{copy_cdc, dump_restore};

/// `pgmove apply`.
pub async fn apply(
    path: &Path,
    dry_run: bool,
    dump_dir: Option<PathBuf>,
    online: Online,
    g: Global,
) -> u8 {
    let p = match prepare(path).await {
        Ok(p) => p,
        Err(f) => return report_failure(&f),
    };
    if !p.report.ready {
        // A script reads the blockers from stdout, as `pgmove plan --format json` prints them.
        match g.format {
            Format::Json => report::print(&p.report, Format::Json, false, To::Stdout),
            // The log is JSON lines: each blocker is an event of its own.
            _ if crate::logging::is_json() => log_blockers(&p.report.findings),
            _ => report::print(&p.report, Format::Text, false, To::Stderr),
        }
        return report_failure(&Failure::input(
            "preflight found blockers; fix them (see above) and run again",
        ));
    }
    let strategy = match p.report.decision.strategy {
        Some(s) => s,
        None => return report_failure(&Failure::input("no strategy can run this plan")),
    };
    if !strategy.runs_when_named() {
        return report_failure(&Failure::input(format!(
            "strategy {} cannot run in this version of pgmove",
            strategy.name()
        )));
    }
    // Which pg_dump and pg_restore this apply runs (the plan report's `clients`).
    for t in &p.report.clients {
        tracing::info!(tool = %t.name, version = %t.version, path = %t.path.display(), "client program");
    }
    let job = dump_restore::Job {
        plan_name: p.plan.name.clone(),
        source: p.source.clone(),
        target: p.target.clone(),
        schemas: p.plan.objects.schemas.clone(),
        exclude: p.plan.objects.exclude.clone(),
        large_objects: p.plan.objects.large_objects,
        no_owner: p.plan.owner == plan::Owner::TargetUser,
        // Privileges always move; grants to roles the target lacks are reported (`roles: skip`).
        no_acl: false,
        jobs: p.plan.jobs as usize,
        index_jobs: p.plan.index_jobs as usize,
        bin_dir: p.plan.bin_dir.clone(),
        schema_only: matches!(strategy, Strategy::CopyCdc | Strategy::Pglogical),
        dump_dir,
    };
    // A dump directory that is not private or not pgmove's is refused before anything runs.
    if let Err(e) = job.check_dump_dir() {
        return report_failure(&match e {
            crate::dumpdir::DirError::Refused { .. } => Failure::input(e),
            crate::dumpdir::DirError::Io(_) => Failure::runtime(e),
        });
    }
    if strategy == Strategy::CopyCdc {
        let job = copy_cdc::Job {
            base: job,
            slot: p.plan.slot_name(),
            split_bytes: p.plan.split_tables_larger_than,
            keep_slot: !online.stop_after_load,
            publication: p.plan.publication_name(),
            ddl: p.plan.cdc.ddl,
            tables_without_key: p.plan.cdc.tables_without_key,
        };
        return apply_copy_cdc(&p, &job, path, dry_run, online, g).await;
    }
    if strategy == Strategy::Pglogical {
        return apply_pglogical(&p, job, path, dry_run, online, g).await;
    }
    if dry_run {
        return match dump_restore::dry_run(&job).await {
            Ok(lines) => print_dry_run(&p, strategy.name(), lines, g).await,
            Err(e) => report_failure(&Failure::runtime(e)),
        };
    }
    match confirm(&p, strategy, g) {
        Ok(true) => {}
        Ok(false) => {
            crate::logging::say("nothing done");
            return exit::FAILURE;
        }
        Err(f) => return report_failure(&f),
    }
    let roles = match create_roles(&p, g).await {
        Ok(r) => r,
        Err(f) => return report_failure(&f),
    };
    let started = std::time::Instant::now();
    match dump_restore::run(&job, Progress::new(g.format != Format::Json)).await {
        Ok(outcome) => {
            let secs = started.elapsed().as_secs_f64();
            let summary = Summary::line(
                format_args!(
                    "applied plan {} with {} in {:.1}s: {} item(s) restored{}{}{}; next: pgmove verify {}",
                    p.plan.name,
                    strategy.name(),
                    secs,
                    outcome.items_restored,
                    if outcome.items_already_done > 0 {
                        format!(", {} already done by an earlier run", outcome.items_already_done)
                    } else {
                        String::new()
                    },
                    if outcome.dump_reused { ", dump reused" } else { "" },
                    clients_used(&p.report.clients),
                    path.display()
                ),
                serde_json::json!({ "plan": p.plan.name, "strategy": strategy.name(), "elapsed_secs": secs, "outcome": outcome, "roles": roles, "clients": p.report.clients }),
            );
            report::print(&summary, g.format, false, To::Stdout);
            exit::OK
        }
        Err(e) => report_failure(&Failure::runtime(e)),
    }
}

/// The blockers as `error` events of the JSON log (`--log-format json`): `check`, `object`,
/// `fix` and the message.
fn log_blockers(findings: &[report::Finding]) {
    for f in findings
        .iter()
        .filter(|f| f.severity == report::Severity::Blocker)
    {
        tracing::error!(
            check = f.check,
            object = f.object.as_deref().unwrap_or(""),
            fix = f.fix.as_deref().unwrap_or(""),
            "blocker: {}",
            f.message
        );
    }
}

/// `, with pg_dump 15.18 (/usr/lib/postgresql/15/bin/pg_dump)` and its pg_restore, for the
/// apply summary; empty when unknown.
pub(super) fn clients_used(clients: &[crate::tools::Tool]) -> String {
    if clients.is_empty() {
        return String::new();
    }
    let tools: Vec<String> = clients
        .iter()
        .map(|t| format!("{} {} ({})", t.name, t.version, t.path.display()))
        .collect();
    format!(", with {}", tools.join(" and "))
}

/// `roles: create`: the roles the moved objects need, created on the target before the
/// strategy runs; what was done is printed (stdout, or stderr with `--format json`) and
/// returned for the `roles` object of the JSON summary (`None` under `roles: skip`).
pub(super) async fn create_roles(
    p: &Prepared,
    g: Global,
) -> Result<Option<crate::roles::Report>, Failure> {
    if p.plan.roles != plan::Roles::Create {
        return Ok(None);
    }
    let report = crate::roles::run(&p.plan, &p.source, &p.target, p.target_inv.is_managed())
        .await
        .map_err(Failure::runtime)?;
    for line in report.lines() {
        if g.format == Format::Json {
            crate::logging::say(&line.to_string());
        } else {
            println!("{line}");
        }
    }
    Ok(Some(report))
}

/// Asks before changing the target, unless `--yes`; false when the user declined.
pub(super) fn confirm(p: &Prepared, strategy: Strategy, g: Global) -> Result<bool, Failure> {
    if g.yes {
        return Ok(true);
    }
    if !std::io::stdin().is_terminal() {
        return Err(Failure::input(
            "apply changes the target and asks for confirmation; pass --yes to run without a prompt",
        ));
    }
    eprint!(
        "Apply plan {} with strategy {} to the target {}? [y/N] ",
        p.plan.name,
        strategy.name(),
        p.target.display()
    );
    let _ = std::io::stderr().flush();
    let mut answer = String::new();
    Ok(std::io::stdin().read_line(&mut answer).is_ok()
        && matches!(answer.trim(), "y" | "Y" | "yes"))
}

/// Prints `apply --dry-run`'s statements: those of `roles: create` first (it runs before any
/// strategy), then the strategy's `lines`; with `--format json`, also the step names of their
/// headings (`steps`).
pub(super) async fn print_dry_run(
    p: &Prepared,
    strategy: &str,
    mut lines: Vec<String>,
    g: Global,
) -> u8 {
    if p.plan.roles == plan::Roles::Create {
        match crate::roles::dry_run(&p.plan, &p.source, &p.target, p.target_inv.is_managed()).await
        {
            Ok(r) => {
                lines.splice(0..0, r);
            }
            Err(e) => return report_failure(&Failure::runtime(e)),
        }
    }
    // The strategy's step names, as the headings in the listing give them.
    let steps: Vec<&str> = lines
        .iter()
        .filter_map(|l| crate::step_list::heading_name(l))
        .collect();
    let text: String = lines.iter().map(|l| format!("{l}\n")).collect();
    let summary = Summary::new(
        text,
        serde_json::json!({ "strategy": strategy, "steps": steps, "statements": lines }),
    );
    report::print(&summary, g.format, false, To::Stdout);
    exit::OK
}
