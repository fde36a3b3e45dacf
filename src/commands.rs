//! What each command does, between the parsed arguments and the library's modules. Returns
//! the process exit code of SPEC.md; prints reports on stdout and errors on stderr.

use std::io::{IsTerminal, Write};
use std::path::{Path, PathBuf};

use crate::cli::exit;
use crate::inspect::{self, Inventory};
use crate::pg::{Endpoint, Side};
use crate::plan::{self, Plan, StrategyChoice};
use crate::planner::{self, Decision, Strategy};
use crate::preflight::{self, Context};
use crate::progress::Progress;
use crate::report::{Format, PlanReport};
use crate::strategy::{copy_cdc, dump_restore};
use crate::tools;

/// Options every command takes.
#[derive(Clone, Copy, Debug)]
pub struct Global {
    pub format: Format,
    pub yes: bool,
}

impl Global {
    fn color(&self) -> bool {
        self.format == Format::Text
            && std::io::stdout().is_terminal()
            && std::env::var_os("NO_COLOR").is_none()
    }
}

/// A failure with its exit code, printed once at the edge.
pub struct Failure {
    pub code: u8,
    pub message: String,
}

impl Failure {
    fn input(message: impl ToString) -> Failure {
        Failure {
            code: exit::BAD_INPUT,
            message: message.to_string(),
        }
    }
    fn runtime(message: impl ToString) -> Failure {
        Failure {
            code: exit::FAILURE,
            message: message.to_string(),
        }
    }
}

fn report_failure(f: &Failure) -> u8 {
    eprintln!("error: {}", f.message);
    f.code
}

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

/// Loads the plan, inspects both servers (read-only), decides and runs preflight.
pub async fn prepare(path: &Path) -> Result<Prepared, Failure> {
    let plan = plan::load(path).map_err(Failure::input)?;
    let source = plan.endpoint(Side::Source).map_err(Failure::input)?;
    let target = plan.endpoint(Side::Target).map_err(Failure::input)?;
    let (s, t) = tokio::join!(inspect::inspect(&source), inspect::inspect(&target));
    let source_inv = s.map_err(Failure::runtime)?;
    let target_inv = t.map_err(Failure::runtime)?;
    let decision: Decision = planner::decide(&plan, &source_inv, &target_inv);
    let intended = decision.strategy.or(explicit_strategy(&plan));
    let major = (source_inv.server.version_num / 10000).max(0) as u32;
    let find =
        |name: &str| tools::find(name, plan.bin_dir.as_deref(), major).map_err(|e| e.to_string());
    let replication_probe = if intended.is_some_and(Strategy::is_online) {
        Some(probe_replication(&source, plan.bin_dir.as_deref()).await)
    } else {
        None
    };
    let ctx = Context {
        plan: &plan,
        source: &source_inv,
        target: &target_inv,
        strategy: intended,
        pg_dump: find("pg_dump"),
        pg_restore: find("pg_restore"),
        vacuumdb: tools::find_any(
            "vacuumdb",
            plan.bin_dir.as_deref(),
            (target_inv.server.version_num / 10000).max(0) as u32,
        )
        .map_err(|e| e.to_string()),
        replication_probe,
    };
    let mut findings = preflight::run(&ctx);
    if intended == Some(Strategy::CopyCdc) {
        // Objects with the names of the plan's slot and publications that pgmove did not
        // record creating: never used nor dropped (`crate::owned`).
        let owned = crate::owned::preflight(&plan, &source, &target).await;
        findings.extend(owned.map_err(Failure::runtime)?);
        findings.sort_by_key(|f| f.severity);
    }
    let report = PlanReport::new(
        &plan.name,
        &plan.file,
        &source_inv,
        &target_inv,
        findings,
        decision,
    );
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
async fn probe_replication(source: &Endpoint, bin_dir: Option<&Path>) -> Result<(), String> {
    let psql = tools::find("psql", bin_dir, 0).map_err(|e| e.to_string())?;
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
        .map_err(|e| format!("cannot run psql: {e}"))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(crate::pg::redact(
            String::from_utf8_lossy(&out.stderr).trim(),
            source.info.password.as_ref(),
        ))
    }
}

/// `pgmove plan`.
pub async fn plan(path: &Path, g: Global) -> u8 {
    match prepare(path).await {
        Err(f) => report_failure(&f),
        Ok(p) => {
            print!("{}", p.report.render(g.format, g.color()));
            if p.report.ready {
                exit::OK
            } else {
                exit::BAD_INPUT
            }
        }
    }
}

/// How long an online apply runs.
#[derive(Clone, Copy, Debug, Default)]
pub struct Online {
    pub stop_after_load: bool,
    pub exit_when_caught_up: bool,
}

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
        eprint!("{}", p.report.render(Format::Text, false));
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
        schema_only: strategy == Strategy::CopyCdc,
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
    if dry_run {
        return match dump_restore::dry_run(&job).await {
            Ok(lines) => print_dry_run(&p, strategy.name(), lines, g).await,
            Err(e) => report_failure(&Failure::runtime(e)),
        };
    }
    match confirm(&p, strategy, g) {
        Ok(true) => {}
        Ok(false) => {
            eprintln!("nothing done");
            return exit::FAILURE;
        }
        Err(f) => return report_failure(&f),
    }
    if let Err(f) = create_roles(&p, g).await {
        return report_failure(&f);
    }
    let started = std::time::Instant::now();
    match dump_restore::run(&job, Progress::new(g.format != Format::Json)).await {
        Ok(outcome) => {
            let secs = started.elapsed().as_secs_f64();
            match g.format {
                Format::Json => println!(
                    "{}",
                    serde_json::json!({ "plan": p.plan.name, "strategy": strategy.name(), "elapsed_secs": secs, "outcome": outcome })
                ),
                _ => println!(
                    "applied plan {} with {} in {:.1}s: {} item(s) restored{}{}; next: pgmove verify {}",
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
                    path.display()
                ),
            }
            exit::OK
        }
        Err(e) => report_failure(&Failure::runtime(e)),
    }
}

/// `roles: create`: the roles the moved objects need, created on the target before the
/// strategy runs; what was done is printed (stdout, or stderr with `--format json`).
async fn create_roles(p: &Prepared, g: Global) -> Result<(), Failure> {
    if p.plan.roles != plan::Roles::Create {
        return Ok(());
    }
    let report = crate::roles::run(&p.plan, &p.source, &p.target)
        .await
        .map_err(Failure::runtime)?;
    for line in report.lines() {
        if g.format == Format::Json {
            eprintln!("{line}");
        } else {
            println!("{line}");
        }
    }
    Ok(())
}

/// Asks before changing the target, unless `--yes`; false when the user declined.
fn confirm(p: &Prepared, strategy: Strategy, g: Global) -> Result<bool, Failure> {
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
/// strategy), then the strategy's `lines`.
async fn print_dry_run(p: &Prepared, strategy: &str, mut lines: Vec<String>, g: Global) -> u8 {
    if p.plan.roles == plan::Roles::Create {
        match crate::roles::dry_run(&p.plan, &p.source, &p.target).await {
            Ok(r) => {
                lines.splice(0..0, r);
            }
            Err(e) => return report_failure(&Failure::runtime(e)),
        }
    }
    if g.format == Format::Json {
        println!(
            "{}",
            serde_json::json!({ "strategy": strategy, "statements": lines })
        );
    } else {
        for l in lines {
            println!("{l}");
        }
    }
    exit::OK
}

async fn apply_copy_cdc(
    p: &Prepared,
    job: &copy_cdc::Job,
    path: &Path,
    dry_run: bool,
    online: Online,
    g: Global,
) -> u8 {
    if dry_run {
        return match copy_cdc::dry_run(job, &p.source_inv).await {
            Ok(lines) => print_dry_run(p, Strategy::CopyCdc.name(), lines, g).await,
            Err(e) => report_failure(&Failure::runtime(e)),
        };
    }
    match confirm(p, Strategy::CopyCdc, g) {
        Ok(true) => {}
        Ok(false) => {
            eprintln!("nothing done");
            return exit::FAILURE;
        }
        Err(f) => return report_failure(&f),
    }
    // A slot the source invalidated can never stream again: say so at once, never retry.
    if let Some(f) = slot_lost_failure(&p.source, &p.target, &job.slot, path, None).await {
        return report_failure(&f);
    }
    if let Err(f) = create_roles(p, g).await {
        return report_failure(&f);
    }
    let started = std::time::Instant::now();
    let loaded = copy_cdc::run(job, Progress::new(g.format != Format::Json)).await;
    let loaded = match loaded {
        Ok(o) => o,
        Err(e) => {
            let f = slot_lost_failure(&p.source, &p.target, &job.slot, path, Some(&e.to_string()))
                .await;
            return report_failure(&f.unwrap_or_else(|| Failure::runtime(e)));
        }
    };
    if online.stop_after_load {
        println!(
            "loaded plan {} with copy-cdc in {:.1}s: {} chunk(s), {} rows, {} copied; the target matches the source as of LSN {} (slot dropped: --stop-after-load); next: pgmove verify {}",
            p.plan.name,
            started.elapsed().as_secs_f64(),
            loaded.chunks_copied,
            loaded.rows,
            planner::bytes(loaded.bytes as i64),
            loaded.consistent_lsn.as_deref().unwrap_or("?"),
            path.display()
        );
        return exit::OK;
    }
    // Change capture until stopped (Ctrl-C / SIGTERM) or cut over.
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let stop_tx = std::sync::Arc::new(stop_tx);
    {
        let stop_tx = stop_tx.clone();
        tokio::spawn(async move {
            wait_for_stop_signal().await;
            let _ = stop_tx.send(true);
        });
    }
    // The plan's lock, held while change capture runs: `pgmove cutover` and `cleanup` see that
    // an apply is running.
    let lock = match crate::state::State::open(&p.target, &p.plan.name).await {
        Ok(s) => {
            let _ = s.set_phase(copy_cdc::STRATEGY, "replicating", None).await;
            s
        }
        Err(e) => return report_failure(&Failure::runtime(e)),
    };
    let cut_over = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    tokio::spawn(watch_cutover(
        p.target.clone(),
        p.plan.name.clone(),
        stop_tx.clone(),
        cut_over.clone(),
    ));
    if p.plan.cutover.mode == plan::CutoverMode::Auto {
        tokio::spawn(auto_cutover(
            p.plan.clone(),
            p.source.clone(),
            p.target.clone(),
            g,
        ));
    }
    let table_lsns = match copy_cdc::table_lsns(&p.target, &p.plan.name).await {
        Ok(t) => t,
        Err(e) => return report_failure(&Failure::runtime(e)),
    };
    let cdc_job = crate::cdc::run::CdcJob {
        plan_name: p.plan.name.clone(),
        source: p.source.clone(),
        target: p.target.clone(),
        slot: job.slot.clone(),
        publication: job.publication.clone(),
        table_lsns,
        batch_changes: 5000,
        memory_limit: usize::try_from(p.plan.cdc.memory_limit).unwrap_or(usize::MAX),
        exit_when_caught_up: online.exit_when_caught_up,
        ddl: crate::cdc::run::plan_ddl(&p.plan),
    };
    eprintln!(
        "full load done (target consistent at {}); replicating changes from slot {} until stopped (Ctrl-C or SIGTERM)",
        loaded.consistent_lsn.as_deref().unwrap_or("?"),
        job.slot
    );
    let replicated = crate::cdc::retry::run(
        &cdc_job,
        stop_rx,
        &crate::cdc::retry::RetryPolicy::default(),
    )
    .await;
    match replicated.map(|r| (loaded, r)) {
        Ok((outcome, cdc)) => {
            let secs = started.elapsed().as_secs_f64();
            match g.format {
                Format::Json => println!(
                    "{}",
                    serde_json::json!({ "plan": p.plan.name, "strategy": "copy-cdc", "elapsed_secs": secs, "outcome": outcome, "cdc": cdc })
                ),
                _ => println!(
                    "plan {} with copy-cdc, {:.1}s: {} chunk(s), {} rows, {} copied{}; snapshot at LSN {}; then {} transaction(s), {} change(s) replicated, applied up to {}; next: pgmove verify {}",
                    p.plan.name,
                    secs,
                    outcome.chunks_copied,
                    outcome.rows,
                    planner::bytes(outcome.bytes as i64),
                    if outcome.chunks_already_done > 0 {
                        format!(" ({} chunk(s) done by an earlier run)", outcome.chunks_already_done)
                    } else {
                        String::new()
                    },
                    outcome.consistent_lsn.as_deref().unwrap_or("?"),
                    cdc.transactions,
                    cdc.changes,
                    cdc.applied_lsn,
                    path.display()
                ),
            }
            if cut_over.load(std::sync::atomic::Ordering::SeqCst) {
                eprintln!(
                    "plan {} is cut over: the target is live; next: pgmove cleanup {}",
                    p.plan.name,
                    path.display()
                );
            }
            exit::OK
        }
        Err(e) => {
            // Recorded, so `status` reports the migration failed (exit 5) once this ends.
            let _ = lock
                .set_phase(copy_cdc::STRATEGY, "failed", Some(&e.to_string()))
                .await;
            let f = slot_lost_failure(&p.source, &p.target, &job.slot, path, Some(&e.to_string()))
                .await;
            report_failure(&f.unwrap_or_else(|| Failure::runtime(e)))
        }
    }
}

/// When the source lost the plan's slot: the failure that says so, why, and the way out
/// (exit 1), with the error it caused, if any.
async fn slot_lost_failure(
    source: &Endpoint,
    target: &Endpoint,
    slot: &str,
    path: &Path,
    error: Option<&str>,
) -> Option<Failure> {
    let lost = crate::cdc::slot::lost_quietly(source, slot).await?;
    let mut message = lost.explain(&path.display().to_string(), target.info.dbname());
    if let Some(e) = error {
        message.push_str(&format!("\n  (the error it caused: {e})"));
    }
    Some(Failure::runtime(message))
}

/// `pgmove verify`.
pub async fn verify(path: &Path, counts_only: bool, chunk_rows: Option<u64>, g: Global) -> u8 {
    let (plan, source, target) = match load_with_endpoints(path) {
        Ok(x) => x,
        Err(f) => return report_failure(&f),
    };
    let objects = plan.objects.clone();
    let level = if counts_only || plan.cutover.verify == plan::VerifyLevel::Counts {
        crate::verify::Level::Counts
    } else {
        crate::verify::Level::Checksums
    };
    let mut opts = crate::verify::VerifyOptions {
        level,
        schemas: plan.objects.schemas.clone(),
        include: std::sync::Arc::new(move |s: &str, t: &str| objects.includes(s, t)),
        jobs: plan.jobs as usize,
        large_objects: plan.objects.large_objects,
        progress: Progress::new(g.format != Format::Json),
        ..Default::default()
    }
    .with_plan(&plan);
    if let Some(c) = chunk_rows {
        opts.chunk_rows = c;
    }
    match crate::verify::verify(&source, &target, &opts).await {
        Ok(report) => {
            match g.format {
                Format::Json => println!("{}", report.render_json()),
                Format::Markdown => print!("{}", report.render_markdown()),
                Format::Text => print!("{}", report.render_text()),
            }
            if report.is_identical() {
                exit::OK
            } else {
                exit::DIFFERENCES
            }
        }
        Err(e) => report_failure(&Failure::runtime(e)),
    }
}

/// How long `pgmove status` waits for both servers in all.
const STATUS_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(90);

/// `pgmove status`.
pub async fn status(path: &Path, stalled_after: u64, g: Global) -> u8 {
    let (plan, source, target) = match load_with_endpoints(path) {
        Ok(x) => x,
        Err(f) => return report_failure(&f),
    };
    // A hung server (stopped, or a dead network the keepalives have not noticed yet) must
    // not hang `status`: a scheduler runs it.
    let slot = plan.slot_name();
    let file = path.display().to_string();
    let read = crate::status::read(&plan.name, &slot, &file, &source, &target);
    let read = match tokio::time::timeout(STATUS_TIMEOUT, read).await {
        Ok(r) => r,
        Err(_) => return report_failure(&Failure::runtime(format!(
            "status: no answer from the source or the target within {} s: a server or the network to it is hung\n  hint: check that both servers answer (pg_isready), then run status again",
            STATUS_TIMEOUT.as_secs()
        ))),
    };
    match read {
        Ok(s) => {
            match g.format {
                Format::Json => {
                    println!("{}", serde_json::to_string_pretty(&s).unwrap_or_default())
                }
                _ => print!("{}", s.render_text()),
            }
            match s.verdict(stalled_after) {
                crate::status::Verdict::SlotLost => exit::CANNOT_PROCEED,
                crate::status::Verdict::Failed => {
                    eprintln!(
                        "pgmove: the migration failed (phase {}) and no apply runs: see the last error above, fix it, then run `pgmove apply {}` again to resume",
                        s.phase,
                        path.display()
                    );
                    exit::MIGRATION_FAILED
                }
                crate::status::Verdict::Stalled(secs) => {
                    eprintln!(
                        "pgmove: the migration is stalled: an apply runs but has applied nothing for {secs} s or more while the source moved on; look at the apply's log and at locks or long transactions on the target"
                    );
                    exit::MIGRATION_STALLED
                }
                crate::status::Verdict::Fine => exit::OK,
            }
        }
        Err(e) => report_failure(&Failure::runtime(e)),
    }
}

/// Returns on Ctrl-C or SIGTERM.
async fn wait_for_stop_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = tokio::signal::ctrl_c() => {}
                    _ = term.recv() => {}
                }
            }
            Err(_) => {
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}

/// `pgmove cleanup`.
pub async fn cleanup(
    path: &Path,
    dry_run: bool,
    force: bool,
    adopt_unrecorded: bool,
    g: Global,
) -> u8 {
    let (plan, source, target) = match load_with_endpoints(path) {
        Ok(x) => x,
        Err(f) => return report_failure(&f),
    };
    let mut req = crate::cleanup::Request::for_plan(&plan, dry_run, force);
    req.adopt_unrecorded = adopt_unrecorded;
    let render = |r: &crate::cleanup::Report| match g.format {
        Format::Json => println!("{}", r.render_json()),
        Format::Markdown => print!("{}", r.render_markdown()),
        Format::Text => print!("{}", r.render_text()),
    };
    match crate::cleanup::cleanup(&req, &source, &target).await {
        Ok(report) => {
            render(&report);
            if report.dry_run && !report.blockers.is_empty() && !force {
                exit::FAILURE
            } else {
                exit::OK
            }
        }
        Err(crate::cleanup::CleanupError::Partial(report)) => {
            render(&report);
            report_failure(&Failure::runtime(format!(
                "{}\n  {} artifact(s) dropped before that; run cleanup again once it is fixed",
                report.error.as_deref().unwrap_or("cleanup failed"),
                report.artifacts.len()
            )))
        }
        Err(e) => report_failure(&Failure::runtime(e)),
    }
}

/// `pgmove cutover`.
pub async fn cutover(path: &Path, dry_run: bool, timeout: std::time::Duration, g: Global) -> u8 {
    let (plan, source, target) = match load_with_endpoints(path) {
        Ok(x) => x,
        Err(f) => return report_failure(&f),
    };
    if dry_run {
        return cutover_dry_run(&plan, &source, &target, g).await;
    }
    if !g.yes {
        if !std::io::stdin().is_terminal() {
            return report_failure(&Failure::input(
                "cutover fences writes on the source and asks for confirmation; pass --yes to run without a prompt",
            ));
        }
        eprint!(
            "Cut over plan {}: {} the source {} and make the target {} live? [y/N] ",
            plan.name,
            match plan.cutover.fence {
                plan::Fence::ReadOnly => "fence writes on",
                plan::Fence::None =>
                    "apply the last changes of (writes must already be stopped on)",
            },
            source.display(),
            target.display()
        );
        let _ = std::io::stderr().flush();
        let mut answer = String::new();
        if !(std::io::stdin().read_line(&mut answer).is_ok()
            && matches!(answer.trim(), "y" | "Y" | "yes"))
        {
            eprintln!("nothing done");
            return exit::FAILURE;
        }
    }
    let table_lsns = copy_cdc::table_lsns(&target, &plan.name)
        .await
        .unwrap_or_default();
    let cdc_job = cdc_job(&plan, &source, &target, table_lsns, false);
    let job = crate::cutover::CutoverJob {
        plan: plan.clone(),
        source,
        target,
        applier: crate::cutover::Applier::OwnIfIdle(Box::new(cdc_job)),
        timeout,
        progress: Progress::new(g.format != Format::Json),
    };
    match crate::cutover::run(&job).await {
        Ok(report) => print_cutover(&report, g),
        Err(crate::cutover::CutoverError::NotReady(m)) => report_failure(&Failure::input(m)),
        Err(e) => report_failure(&Failure::runtime(e)),
    }
}

/// Prints a cutover report; its exit code.
fn print_cutover(report: &crate::cutover::CutoverReport, g: Global) -> u8 {
    match g.format {
        Format::Json => println!("{}", report.render_json()),
        Format::Markdown => print!("{}", report.render_markdown()),
        Format::Text => print!("{}", report.render_text()),
    }
    if report.is_live() {
        exit::OK
    } else {
        if let Some(e) = &report.error {
            eprintln!("error: {e}");
        }
        if report.differences {
            exit::DIFFERENCES
        } else {
            exit::FAILURE
        }
    }
}

/// The change-capture job of a plan.
fn cdc_job(
    plan: &Plan,
    source: &Endpoint,
    target: &Endpoint,
    table_lsns: std::collections::HashMap<(String, String), crate::pg::Lsn>,
    exit_when_caught_up: bool,
) -> crate::cdc::run::CdcJob {
    crate::cdc::run::CdcJob {
        plan_name: plan.name.clone(),
        source: source.clone(),
        target: target.clone(),
        slot: plan.slot_name(),
        publication: plan.publication_name(),
        table_lsns,
        batch_changes: 5000,
        memory_limit: usize::try_from(plan.cdc.memory_limit).unwrap_or(usize::MAX),
        exit_when_caught_up,
        ddl: crate::cdc::run::plan_ddl(plan),
    }
}

/// `pgmove cutover --dry-run`.
async fn cutover_dry_run(plan: &Plan, source: &Endpoint, target: &Endpoint, g: Global) -> u8 {
    use crate::cutover::dryrun;
    let opts = dryrun::DryRunOptions::for_plan(plan, Progress::new(g.format != Format::Json));
    match dryrun::report(plan, source, target, opts).await {
        Ok(r) => {
            match g.format {
                Format::Json => println!("{}", r.render_json()),
                Format::Markdown => print!("{}", r.render_markdown()),
                Format::Text => print!("{}", r.render_text()),
            }
            if r.ready() {
                exit::OK
            } else {
                exit::BAD_INPUT
            }
        }
        Err(e) => report_failure(&Failure::runtime(e)),
    }
}

/// Stops change capture (through `stop`) once `pgmove.cutover` says the plan is cut over.
async fn watch_cutover(
    target: Endpoint,
    plan: String,
    stop: std::sync::Arc<tokio::sync::watch::Sender<bool>>,
    cut_over: std::sync::Arc<std::sync::atomic::AtomicBool>,
) {
    let mut client = None;
    loop {
        tokio::time::sleep(std::time::Duration::from_millis(300)).await;
        if *stop.borrow() {
            return;
        }
        if client.is_none() {
            client = target.connect().await.ok();
        }
        let Some(c) = client.as_ref() else { continue };
        match c
            .query_opt(
                "SELECT state FROM pgmove.cutover WHERE plan_name = $1",
                &[&plan],
            )
            .await
        {
            Ok(Some(row)) if row.get::<_, String>(0) == "done" => {
                tracing::info!("cutover done: change capture stops");
                cut_over.store(true, std::sync::atomic::Ordering::SeqCst);
                let _ = stop.send(true);
                return;
            }
            Ok(_) => {}
            Err(_) => client = None,
        }
    }
}

/// `cutover.mode: auto`: cuts over from inside apply as soon as change capture runs and the
/// lag allows; a failed attempt leaves replication running (the report says why).
async fn auto_cutover(plan: Plan, source: Endpoint, target: Endpoint, g: Global) {
    loop {
        match crate::cdc::run::applied_lsn(&target, &plan.name).await {
            Ok(Some(_)) => break,
            _ => tokio::time::sleep(std::time::Duration::from_millis(500)).await,
        }
    }
    let job = crate::cutover::CutoverJob {
        plan,
        source,
        target,
        applier: crate::cutover::Applier::Running,
        timeout: std::time::Duration::from_secs(365 * 24 * 3600),
        progress: Progress::new(g.format != Format::Json),
    };
    match crate::cutover::run(&job).await {
        Ok(report) if report.is_live() => match g.format {
            Format::Json => eprintln!("{}", report.render_json()),
            Format::Markdown => eprint!("{}", report.render_markdown()),
            Format::Text => eprint!("{}", report.render_text()),
        },
        Ok(report) => {
            eprint!("{}", report.render_text());
            tracing::error!(
                "automatic cutover failed; replication goes on (run pgmove cutover to retry)"
            );
        }
        Err(e) => {
            tracing::error!(error = %e, "automatic cutover could not start; replication goes on")
        }
    }
}

/// The plan and its two endpoints, for the commands that need no inspection.
fn load_with_endpoints(path: &Path) -> Result<(Plan, Endpoint, Endpoint), Failure> {
    let plan = plan::load(path).map_err(Failure::input)?;
    let source = plan.endpoint(Side::Source).map_err(Failure::input)?;
    let target = plan.endpoint(Side::Target).map_err(Failure::input)?;
    Ok((plan, source, target))
}
