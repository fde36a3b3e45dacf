//! Probing: the read-only sessions and the queries that read both servers' state.

use super::*;

/// Every session of the report is read-only.
pub(super) async fn connect_read_only(ep: &Endpoint) -> Result<Client, PgError> {
    let c = ep.connect().await?;
    c.batch_execute("SET default_transaction_read_only = on; SET search_path = pg_catalog;")
        .await
        .map_err(|e| ep.query_error("setting up a read-only session", &e))?;
    Ok(c)
}

/// The slot: active, its walsender's pid, wal_status (13+, NULL before).
pub(super) const SLOT_SQL: &str = "SELECT s.active, s.active_pid, to_jsonb(s) ->> 'wal_status'
    FROM pg_replication_slots s WHERE s.slot_name = $1";
/// Invalid indexes: schema, index, table, definition.
pub(super) const INVALID_INDEXES_SQL: &str =
    "SELECT n.nspname::text, ic.relname::text, tc.relname::text, pg_get_indexdef(i.indexrelid)
    FROM pg_index i
    JOIN pg_class ic ON ic.oid = i.indexrelid
    JOIN pg_class tc ON tc.oid = i.indrelid
    JOIN pg_namespace n ON n.oid = ic.relnamespace
    WHERE NOT i.indisvalid AND n.nspname <> 'information_schema' AND n.nspname !~ '^pg_'
    ORDER BY 1, 2";
/// Tables written to since the statistics were reset.
pub(super) const WRITTEN_TABLES_SQL: &str =
    "SELECT schemaname::text, relname::text, n_tup_ins, n_tup_upd, n_tup_del
    FROM pg_stat_user_tables WHERE n_tup_ins + n_tup_upd + n_tup_del > 0 ORDER BY 1, 2";
pub(super) const STATS_RESET_SQL: &str =
    "SELECT stats_reset::text FROM pg_stat_database WHERE datname = current_database()";
/// The role's rights for the fence.
pub(super) const FENCE_RIGHTS_SQL: &str = "SELECT current_user::text, r.rolsuper,
        pg_has_role(current_user, d.datdba, 'USAGE'), pg_get_userbyid(d.datdba)::text, d.datname::text,
        pg_has_role(current_user, 'pg_signal_backend', 'USAGE')
    FROM pg_roles r CROSS JOIN pg_database d
    WHERE r.rolname = current_user AND d.datname = current_database()";
/// Other client sessions of superusers on the current database.
pub(super) const SUPERUSER_SESSIONS_SQL: &str = "SELECT a.usename::text, count(*)::int8
    FROM pg_stat_activity a JOIN pg_roles r ON r.oid = a.usesysid
    WHERE a.datname = current_database() AND a.pid <> pg_backend_pid()
      AND a.backend_type = 'client backend' AND r.rolsuper
    GROUP BY 1 ORDER BY 1";

/// Makes the pre-cutover report. Reads only.
pub async fn report(
    plan: &Plan,
    source: &Endpoint,
    target: &Endpoint,
    opts: DryRunOptions,
) -> Result<DryRun, DryRunError> {
    let started = Instant::now();
    let src = connect_read_only(source).await?;
    let tgt = connect_read_only(target).await?;
    let status = crate::status::read_plan(plan, source, target).await?;
    // Strategy pglogical: the subscription is the applier, its slot the one to watch.
    let pgl = status.pglogical.clone();
    let slot = match &pgl {
        Some(p) => p.slot_name.clone().unwrap_or_else(|| "-".to_string()),
        None => plan.slot_name(),
    };

    // The run.
    let has_cutover_table = crate::state::has_table(&tgt, target, "cutover").await?;
    let (cutover_state, cutover_detail) = if has_cutover_table {
        match crate::state::cutover::read(&tgt, target, &plan.name).await? {
            Some(r) => (Some(r.state.as_str().to_string()), r.detail),
            None => (None, None),
        }
    } else {
        (None, None)
    };
    let apply_lock_pid: Option<i32> = crate::state::lock::holders(&tgt, target, &plan.name)
        .await?
        .first()
        .copied();
    let run = RunState {
        strategy: status.strategy.clone(),
        phase: status.phase.clone(),
        steps_done: status.steps_done.clone(),
        last_error: status.last_error.clone(),
        full_load_done: status.steps_done.iter().any(|s| {
            s == if pgl.is_some() {
                crate::state::step::REPLICATING
            } else {
                crate::state::step::LOADED
            }
        }),
        change_capture_ran: match &pgl {
            Some(p) => p.replicating(),
            None => status.replicated_transactions.is_some(),
        },
        replicated_transactions: status.replicated_transactions,
        replicated_changes: status.replicated_changes,
        apply_lock_pid,
        cutover_state,
        cutover_detail,
    };

    // Lag.
    let slot_row = src
        .query_opt(SLOT_SQL, &[&slot])
        .await
        .map_err(|e| source.query_error("reading the replication slot", &e))?;
    let applied = match &pgl {
        Some(_) => crate::status::pglogical::confirmed_lsn(&src, source, &slot).await?,
        None => applied_lsn(&tgt, target, &plan.name).await?,
    };
    let mut lag = LagReport {
        slot: slot.clone(),
        slot_exists: slot_row.is_some(),
        slot_active: false,
        slot_active_pid: None,
        slot_wal_status: None,
        retained_wal_bytes: None,
        source_wal_lsn: None,
        applied_lsn: applied.map(|l| l.to_string()),
        bytes: None,
        seconds: None,
        bytes_after_compare: None,
        streaming: run.apply_lock_pid.is_some(),
        max_lag_secs: plan.cutover.max_lag.as_secs_f64(),
    };
    if let Some(r) = &slot_row {
        lag.slot_active = r.get(0);
        lag.slot_active_pid = r.get(1);
        lag.slot_wal_status = r.get(2);
        lag.streaming |= lag.slot_active;
    }
    match &status.slot {
        Some(s) => {
            lag.retained_wal_bytes = s.retained_wal_bytes;
            lag.source_wal_lsn = s.source_wal_lsn.clone();
            if s.applied_lsn.is_some() {
                lag.applied_lsn = s.applied_lsn.clone();
                lag.bytes = s.lag_bytes;
                lag.seconds = s.lag_seconds;
            } else if pgl.is_some() {
                // pglogical: what the subscriber confirmed is what the target applied.
                lag.applied_lsn = s.confirmed_flush_lsn.clone();
                lag.bytes = s.lag_bytes;
                lag.seconds = s.lag_seconds;
            }
        }
        None => {
            let current = current_wal_lsn(&src, source).await?;
            lag.source_wal_lsn = Some(current.to_string());
            lag.bytes = applied.map(|a| current.bytes_since(a));
        }
    }

    let mut findings = match &pgl {
        Some(p) => pglogical_run_findings(plan, &run, &lag, p),
        None => run_findings(plan, &run, &lag),
    };

    // The comparison, once the full load is done.
    let mut dry = DryRun {
        plan: plan.name.clone(),
        source: source.display(),
        target: target.display(),
        ready: false,
        blockers: 0,
        warnings: 0,
        run,
        lag,
        verify_level: None,
        cutover_verify: plan.cutover.verify.to_string(),
        verify_secs: None,
        in_flight: false,
        tables: Vec::new(),
        sequences_mode: plan.cutover.sequences.to_string(),
        sequences: Vec::new(),
        objects: Vec::new(),
        large_objects: None,
        invalid_indexes: Vec::new(),
        excluded_written: Vec::new(),
        stats_reset: None,
        fence: fence_check(plan, &src, source).await?,
        outage: OutageEstimate {
            seconds: None,
            catch_up_secs: 0.0,
            verify_secs: 0.0,
            fixed_secs: FIXED_OUTAGE_SECS,
            downtime_budget_secs: plan.downtime.as_secs_f64(),
            recheck_rounds: 0,
            how: String::new(),
        },
        findings: Vec::new(),
        elapsed_secs: 0.0,
        steps: crate::cutover::steps::names(),
        pglogical: pgl.clone(),
    };

    // Invalid indexes on the target.
    let invalid = tgt
        .query(INVALID_INDEXES_SQL, &[])
        .await
        .map_err(|e| target.query_error("listing invalid indexes", &e))?;
    for r in invalid {
        let (schema, index, table, def): (String, String, String, String) =
            (r.get(0), r.get(1), r.get(2), r.get(3));
        if !plan.objects.includes_schema(&schema) {
            continue;
        }
        let q = quote::qualified(&schema, &index);
        findings.push(
            Finding::new(
                Severity::Blocker,
                "invalid-index",
                Some(Side::Target),
                format!(
                    "index {q} on table {} is invalid (pg_index.indisvalid = false: a failed CREATE INDEX CONCURRENTLY or REINDEX); queries cannot use it and, if unique, it enforces nothing reliable",
                    quote::qualified(&schema, &table)
                ),
            )
            .object(format!("index {q}"))
            .fix(format!(
                "on the target: REINDEX INDEX CONCURRENTLY {q};  -- if that fails again (e.g. duplicates for a unique index), fix the data or DROP INDEX CONCURRENTLY {q}; and recreate it: {def}"
            )),
        );
        dry.invalid_indexes.push(format!("{schema}.{index}"));
    }

    // Excluded tables written to on the source.
    let reset: Option<String> = src
        .query_one(STATS_RESET_SQL, &[])
        .await
        .map_err(|e| source.query_error("reading pg_stat_database", &e))?
        .get(0);
    dry.stats_reset = reset;
    if !plan.objects.exclude.is_empty() {
        let rows = src
            .query(WRITTEN_TABLES_SQL, &[])
            .await
            .map_err(|e| source.query_error("reading pg_stat_user_tables", &e))?;
        for r in rows {
            let (schema, name): (String, String) = (r.get(0), r.get(1));
            if !plan.objects.includes_schema(&schema) || plan.objects.includes(&schema, &name) {
                continue;
            }
            dry.excluded_written.push(ExcludedWrites {
                schema,
                name,
                inserts: r.get(2),
                updates: r.get(3),
                deletes: r.get(4),
            });
        }
    }
    findings.extend(excluded_findings(&dry.excluded_written, &dry.stats_reset));
    findings.extend(fence_findings(&dry.fence));

    let mut ahead = None;
    if dry.run.full_load_done {
        let objects = plan.objects.clone();
        let vopts = VerifyOptions {
            level: opts.verify_level,
            schemas: plan.objects.schemas.clone(),
            include: Arc::new(move |s: &str, t: &str| objects.includes(s, t)),
            jobs: opts.jobs.max(1),
            large_objects: plan.objects.large_objects,
            progress: opts.progress,
            ..Default::default()
        }
        .with_plan(plan);
        // Changes applied while comparing: what a re-check inside the outage would compare
        // again after cutover's own comparison ahead of the fence (copy-cdc only).
        let changes = |p: Option<crate::state::progress::Progress>| p.map(|p| p.changes);
        let before = match &pgl {
            Some(_) => None,
            None => changes(crate::state::progress::read(&tgt, target, &plan.name).await?),
        };
        let t0 = Instant::now();
        let v = verify::verify(source, target, &vopts).await?;
        let secs = t0.elapsed().as_secs_f64();
        if let Some(before) = before {
            let after = changes(crate::state::progress::read(&tgt, target, &plan.name).await?)
                .unwrap_or(before);
            ahead = Some(ahead_basis(&v, (after - before).max(0) as f64));
        }
        dry.verify_level = Some(opts.verify_level);
        dry.verify_secs = Some(secs);
        // The lag after the comparison: did the source move on meanwhile?
        let after_src = current_wal_lsn(&src, source).await?;
        let after_applied = match &pgl {
            Some(_) => crate::status::pglogical::confirmed_lsn(&src, source, &slot).await?,
            None => applied_lsn(&tgt, target, &plan.name).await?,
        };
        dry.lag.bytes_after_compare = after_applied.map(|a| after_src.bytes_since(a));
        dry.in_flight = dry.lag.bytes.is_none_or(|b| b > 0)
            || dry.lag.bytes_after_compare.is_none_or(|b| b > 0);
        let invalid: BTreeSet<String> = dry.invalid_indexes.iter().cloned().collect();
        let assessed = assess_comparison(plan, &v, dry.in_flight, &invalid);
        dry.tables = assessed.tables;
        dry.sequences = assessed.sequences;
        dry.objects = v.objects.clone();
        dry.large_objects = v.large_objects.clone();
        findings.extend(assessed.findings);
    }

    dry.outage = estimate_outage(plan, &dry.lag, &dry.run, dry.verify_secs, ahead);
    if let Some(o) = dry.outage.seconds {
        if o > dry.outage.downtime_budget_secs && plan.cutover.fence == Fence::ReadOnly {
            findings.push(
                Finding::new(
                    Severity::Warning,
                    "outage-over-budget",
                    None,
                    format!(
                        "the estimated write outage (~{:.0}s) is longer than the plan's downtime budget ({})",
                        o.ceil(),
                        planner::human(plan.downtime)
                    ),
                )
                .object("plan downtime")
                .fix(if plan.cutover.verify == VerifyLevel::Checksums {
                    format!(
                        "set cutover.verify: counts (this report's checksums took {:.1}s), cut over when the lag is lower, or raise downtime:",
                        dry.outage.verify_secs
                    )
                } else {
                    "cut over when the lag is lower, or raise downtime:".to_string()
                }),
            );
        }
    }
    findings.sort_by_key(|f| f.severity);
    dry.blockers = findings
        .iter()
        .filter(|f| f.severity == Severity::Blocker)
        .count();
    dry.warnings = findings
        .iter()
        .filter(|f| f.severity == Severity::Warning)
        .count();
    dry.findings = findings;
    dry.ready = dry.ready();
    dry.elapsed_secs = started.elapsed().as_secs_f64();
    Ok(dry)
}

pub(super) async fn current_wal_lsn(src: &Client, ep: &Endpoint) -> Result<Lsn, PgError> {
    Ok(src
        .query_one("SELECT pg_current_wal_lsn()", &[])
        .await
        .map_err(|e| ep.query_error("reading the source's WAL position", &e))?
        .get(0))
}

pub(super) async fn applied_lsn(
    tgt: &Client,
    ep: &Endpoint,
    plan: &str,
) -> Result<Option<Lsn>, PgError> {
    if !crate::state::has_table(tgt, ep, "progress").await? {
        return Ok(None);
    }
    crate::state::progress::applied_lsn(tgt, ep, plan).await
}

pub(super) async fn fence_check(
    plan: &Plan,
    src: &Client,
    ep: &Endpoint,
) -> Result<FenceCheck, PgError> {
    let r = src
        .query_one(FENCE_RIGHTS_SQL, &[])
        .await
        .map_err(|e| ep.query_error("reading the source role's rights", &e))?;
    let superuser_sessions = src
        .query(SUPERUSER_SESSIONS_SQL, &[])
        .await
        .map_err(|e| ep.query_error("listing the source's sessions", &e))?
        .iter()
        .map(|r| format!("{} ({})", r.get::<_, String>(0), r.get::<_, i64>(1)))
        .collect();
    Ok(FenceCheck {
        fence: plan.cutover.fence.to_string(),
        role: r.get(0),
        superuser: r.get(1),
        owns_database: r.get(2),
        database_owner: r.get(3),
        database: r.get(4),
        signal_backend: r.get(5),
        superuser_sessions,
    })
}

/// What a re-check after this comparison would repeat: the changes applied meanwhile, the
/// rows of the chunks that differed, the rows of the tables without a key.
fn ahead_basis(v: &verify::VerifyReport, changes_applied: f64) -> AheadBasis {
    let mut b = AheadBasis {
        changes_applied,
        ..Default::default()
    };
    for t in &v.tables {
        let rows = t.source_rows.unwrap_or(0).max(t.target_rows.unwrap_or(0)) as f64;
        b.rows_compared += rows;
        match t.method {
            verify::Method::KeyChunks => {
                b.rows_differing += t
                    .differing_chunks
                    .iter()
                    .map(|c| c.source_rows.max(c.target_rows) as f64)
                    .sum::<f64>();
            }
            _ => b.rows_keyless += rows,
        }
    }
    b
}
