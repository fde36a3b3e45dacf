//! Judging: what the probed state means, as findings (blockers, warnings, notes) with the
//! object and the fix, and the outage estimate.

use super::*;

/// Findings about the run and the lag.
pub(super) fn run_findings(plan: &Plan, run: &RunState, lag: &LagReport) -> Vec<Finding> {
    let file = &plan.file;
    let mut out = Vec::new();
    let apply_fix = format!(
        "pgmove apply {file} --yes  (strategy copy-cdc: it loads the target, then replicates changes until cutover)"
    );
    if let Some(head) = head_findings(plan, run, &apply_fix) {
        return head;
    }
    if let Some(s) = run.strategy.as_deref().filter(|s| *s != CUTOVER_STRATEGY) {
        out.push(
            Finding::new(
                Severity::Blocker,
                "strategy",
                None,
                format!(
                    "the run used strategy {s}; pgmove cutover works with copy-cdc runs (change capture into pgmove.progress)"
                ),
            )
            .object(format!("plan {}", plan.name))
            .fix(format!(
                "for an offline move the target is complete once apply finishes: run pgmove verify {file}; for an online move set strategy: copy-cdc and start over (pgmove cleanup, then apply)"
            )),
        );
        return out;
    }
    if !run.full_load_done {
        out.push(
            Finding::new(
                Severity::Blocker,
                "full-load",
                Some(Side::Target),
                format!(
                    "the full load has not finished (phase {}{})",
                    run.phase,
                    run.last_error
                        .as_deref()
                        .map(|e| format!(", last error: {e}"))
                        .unwrap_or_default()
                ),
            )
            .object(format!("plan {}", plan.name))
            .fix(format!(
                "{}: {apply_fix}",
                if run.apply_lock_pid.is_some() {
                    "an apply is running: wait until it reports the full load done (pgmove status shows the phase)"
                } else {
                    "run apply again, it resumes where it stopped"
                }
            )),
        );
    } else if !run.change_capture_ran {
        out.push(
            Finding::new(
                Severity::Blocker,
                "change-capture",
                Some(Side::Target),
                "change capture never ran (pgmove.progress has no row for the plan): the target holds the snapshot of the full load, and the changes since are not on it".to_string(),
            )
            .object(format!("plan {}", plan.name))
            .fix(format!(
                "run apply (without --stop-after-load) and let it reach change capture: {apply_fix}"
            )),
        );
    }
    if run.full_load_done {
        if let Some(e) = &run.last_error {
            out.push(
                Finding::new(
                    Severity::Warning,
                    "last-apply-error",
                    None,
                    format!("the last apply stopped with an error (phase {}): {e}", run.phase),
                )
                .object(format!("plan {}", plan.name))
                .fix(format!(
                    "fix the cause; cutover runs change capture itself when no apply runs and may hit it again (pgmove status {file} shows it)"
                )),
            );
        }
    }
    out.extend(slot_findings(plan, lag));
    out.extend(earlier_cutover_findings(plan, run));
    if run.change_capture_ran && lag.slot_exists {
        if lag.slot_active && run.apply_lock_pid.is_none() {
            out.push(
                Finding::new(
                    Severity::Warning,
                    "slot-in-use",
                    Some(Side::Source),
                    format!(
                        "slot {} is in use (walsender pid {}) but no pgmove apply of this plan holds its lock on the target",
                        lag.slot,
                        lag.slot_active_pid.map(|p| p.to_string()).unwrap_or("?".into())
                    ),
                )
                .object(format!("replication slot {}", lag.slot))
                .fix(format!(
                    "find the consumer: SELECT * FROM pg_stat_replication WHERE pid = {}; on the source; stop it, or run cutover while it runs",
                    lag.slot_active_pid.map(|p| p.to_string()).unwrap_or("<pid>".into())
                )),
            );
        }
        if !lag.streaming {
            out.push(
                Finding::new(
                    Severity::Info,
                    "no-apply-running",
                    None,
                    match lag.bytes {
                        Some(0) => "no apply is streaming now; cutover will run change capture itself (the target is caught up now)".to_string(),
                        b => format!(
                            "no apply is streaming now; cutover will run change capture itself and first catch up the {} it is behind",
                            b.map(|b| planner::bytes(b as i64)).unwrap_or("?".into())
                        ),
                    },
                )
                .object(format!("replication slot {}", lag.slot)),
            );
        } else if lag.seconds.is_some_and(|s| s > lag.max_lag_secs) {
            out.push(
                Finding::new(
                    Severity::Info,
                    "lag-above-max",
                    None,
                    format!(
                        "the target is {:.1}s behind, more than cutover.max_lag ({:.1}s): cutover waits until it is under",
                        lag.seconds.unwrap_or(0.0),
                        lag.max_lag_secs
                    ),
                )
                .object("cutover.max_lag"),
            );
        }
    }
    out
}

/// Findings about a run of strategy pglogical: its subscription is the applier.
pub(super) fn pglogical_run_findings(
    plan: &Plan,
    run: &RunState,
    lag: &LagReport,
    pgl: &crate::status::pglogical::PglogicalStatus,
) -> Vec<Finding> {
    let file = &plan.file;
    let apply_fix = format!(
        "pgmove apply {file} --yes  (strategy pglogical: it returns once the initial sync is done and the subscription replicates)"
    );
    if let Some(head) = head_findings(plan, run, &apply_fix) {
        return head;
    }
    let mut out = Vec::new();
    let sub = &pgl.subscription;
    // An earlier cutover caught up and was killed with the source fenced (maybe after it
    // dropped the subscription): `pgmove cutover` finishes it without the subscription.
    let caught_up_before = run.cutover_state.as_deref()
        == Some(crate::state::CutoverState::Fenced.as_str())
        && run
            .steps_done
            .iter()
            .any(|s| s == crate::cutover::steps::CATCH_UP);
    if caught_up_before && !pgl.replicating() {
        out.push(
            Finding::new(
                Severity::Info,
                "caught-up-before",
                None,
                format!(
                    "an earlier cutover caught up with the source fenced and stopped after that (pglogical subscription {sub} is {} now); the source has been read-only since, so the target has every change",
                    pgl.state
                ),
            )
            .object(format!("pglogical subscription {sub}")),
        );
        out.extend(earlier_cutover_findings(plan, run));
        return out;
    }
    if !run.full_load_done {
        out.push(
            Finding::new(
                Severity::Blocker,
                "full-load",
                Some(Side::Target),
                format!(
                    "the run has not reached step replicating: pglogical's initial sync is not done ({} of {} table(s) synced, phase {}{})",
                    pgl.tables_synced,
                    pgl.tables.len(),
                    run.phase,
                    run.last_error
                        .as_deref()
                        .map(|e| format!(", last error: {e}"))
                        .unwrap_or_default()
                ),
            )
            .object(format!("plan {}", plan.name))
            .fix(format!(
                "{}: {apply_fix}",
                if run.apply_lock_pid.is_some() {
                    "an apply is running: wait until it reports the subscription replicating (pgmove status shows each table's sync state)"
                } else {
                    "run apply again, it resumes where it stopped"
                }
            )),
        );
    } else if !pgl.replicating() {
        out.push(
            Finding::new(
                Severity::Blocker,
                "subscription",
                Some(Side::Target),
                format!(
                    "pglogical subscription {sub} is {}{}: the source's changes are not applied, so the target cannot catch up",
                    pgl.state,
                    if pgl.enabled == Some(false) { " (disabled)" } else { "" }
                ),
            )
            .object(format!("pglogical subscription {sub}"))
            .fix(match pgl.state.as_str() {
                crate::status::pglogical::MISSING | crate::status::pglogical::NO_EXTENSION => {
                    format!("run apply again, it creates the subscription and resumes: {apply_fix}")
                }
                _ if pgl.enabled == Some(false) => format!(
                    "on the target: SELECT pglogical.alter_subscription_enable({}, true);",
                    quote::literal(sub)
                ),
                _ => "the reason is in the target's server log (pglogical apply worker): fix it (a conflict, a missing key, the provider unreachable from the target), then run the dry run again".to_string(),
            }),
        );
    }
    out.extend(slot_findings(plan, lag));
    out.extend(earlier_cutover_findings(plan, run));
    if pgl.replicating() && lag.seconds.is_some_and(|s| s > lag.max_lag_secs) {
        out.push(
            Finding::new(
                Severity::Info,
                "lag-above-max",
                None,
                format!(
                    "the target is {:.1}s behind, more than cutover.max_lag ({:.1}s): cutover waits until it is under",
                    lag.seconds.unwrap_or(0.0),
                    lag.max_lag_secs
                ),
            )
            .object("cutover.max_lag"),
        );
    }
    if pgl.replicating() {
        let names = plan.pglogical_names();
        out.push(
            Finding::new(
                Severity::Info,
                "subscription-dropped-at-cutover",
                None,
                format!(
                    "once the target is verified, cutover disables and drops pglogical subscription {sub} (and with it its slot {} on the source) so the target is independent; pgmove cleanup then removes provider node {}, sets {} and {}, subscriber node {} and the extension where pgmove created it",
                    lag.slot, names.provider_node, names.replication_set, names.insert_set, names.subscriber_node
                ),
            )
            .object(format!("pglogical subscription {sub}")),
        );
    }
    out
}

/// The findings that end the judgement of the run: never applied, or already live.
fn head_findings(plan: &Plan, run: &RunState, apply_fix: &str) -> Option<Vec<Finding>> {
    let file = &plan.file;
    let mut out = Vec::new();
    if run.strategy.is_none() {
        out.push(
            Finding::new(
                Severity::Blocker,
                "not-applied",
                Some(Side::Target),
                format!(
                    "plan {} has never been applied to this target (no pgmove state for it): there is nothing to cut over",
                    plan.name
                ),
            )
            .object(format!("plan {}", plan.name))
            .fix(format!("run apply first: {apply_fix}")),
        );
        return Some(out);
    }
    if run.phase == crate::state::Phase::Live.as_str()
        || run.cutover_state.as_deref() == Some(crate::state::CutoverState::Done.as_str())
    {
        out.push(
            Finding::new(
                Severity::Blocker,
                "already-live",
                Some(Side::Target),
                format!(
                    "plan {} was already cut over: the target is live",
                    plan.name
                ),
            )
            .object(format!("plan {}", plan.name))
            .fix(format!(
                "nothing to do; remove pgmove's artifacts: pgmove cleanup {file}"
            )),
        );
        return Some(out);
    }
    None
}

/// Findings about the slot the applier streams from: missing, lost, about to be lost.
fn slot_findings(plan: &Plan, lag: &LagReport) -> Vec<Finding> {
    let file = &plan.file;
    let mut out = Vec::new();
    if !lag.slot_exists {
        out.push(
            Finding::new(
                Severity::Blocker,
                "slot-missing",
                Some(Side::Source),
                format!(
                    "replication slot {} does not exist on the source: the changes since the target's last applied position cannot be replicated",
                    lag.slot
                ),
            )
            .object(format!("replication slot {}", lag.slot))
            .fix(format!(
                "start over: pgmove cleanup {file} and pgmove apply {file} --yes (a dropped slot cannot be recovered)"
            )),
        );
    } else if lag.slot_wal_status.as_deref() == Some("lost") {
        out.push(
            Finding::new(
                Severity::Blocker,
                "slot-lost",
                Some(Side::Source),
                format!(
                    "replication slot {} is invalidated (wal_status lost): the WAL it needed was removed (max_slot_wal_keep_size)",
                    lag.slot
                ),
            )
            .object(format!("replication slot {}", lag.slot))
            .fix(format!(
                "start over into an empty target: pgmove cleanup {file}, drop and re-create the target database (or drop the tables the load copied), raise max_slot_wal_keep_size (or -1), then pgmove apply {file} --yes"
            )),
        );
    } else if lag.slot_wal_status.as_deref() == Some("unreserved") {
        out.push(
            Finding::new(
                Severity::Warning,
                "slot-unreserved",
                Some(Side::Source),
                format!(
                    "replication slot {} is about to lose WAL it needs (wal_status unreserved)",
                    lag.slot
                ),
            )
            .object(format!("replication slot {}", lag.slot))
            .fix(
                "keep an apply streaming, or ALTER SYSTEM SET max_slot_wal_keep_size = -1; SELECT pg_reload_conf(); on the source",
            ),
        );
    }
    out
}

/// Findings about what an earlier cutover left behind.
fn earlier_cutover_findings(plan: &Plan, run: &RunState) -> Vec<Finding> {
    let file = &plan.file;
    let mut out = Vec::new();
    match run.cutover_state.as_deref() {
        Some("fenced") => out.push(
            Finding::new(
                Severity::Warning,
                "cutover-interrupted",
                Some(Side::Source),
                "an earlier cutover was interrupted with the source fenced (read-only): writes on the source are stopped now".to_string(),
            )
            .object("pgmove.cutover")
            .fix(format!("pgmove cutover {file} finishes it (and unfences the source if it fails)")),
        ),
        Some("requested") => out.push(
            Finding::new(
                Severity::Info,
                "cutover-requested",
                None,
                "a cutover was requested and has not finished: it may be under way now (or was stopped before the fence, which changed nothing)".to_string(),
            )
            .object("pgmove.cutover")
            .fix(format!("pgmove status {file} shows whether it goes on")),
        ),
        Some("failed") => out.push(
            Finding::new(
                Severity::Info,
                "cutover-failed-before",
                None,
                format!(
                    "an earlier cutover failed{}; the source was unfenced and replication went on",
                    run.cutover_detail
                        .as_deref()
                        .map(|d| format!(": {d}"))
                        .unwrap_or_default()
                ),
            )
            .object("pgmove.cutover"),
        ),
        _ => {}
    }
    out
}

pub(super) fn excluded_findings(
    written: &[ExcludedWrites],
    stats_reset: &Option<String>,
) -> Vec<Finding> {
    let since = match stats_reset {
        Some(t) => format!("since statistics were reset at {t}"),
        None => "since statistics were reset (never explicitly: since the statistics were last lost, e.g. by a crash, or the cluster was created)".to_string(),
    };
    written
        .iter()
        .map(|w| {
            let q = quote::qualified(&w.schema, &w.name);
            Finding::new(
                Severity::Warning,
                "excluded-table-written",
                Some(Side::Source),
                format!(
                    "table {q} is excluded by the plan (objects.exclude) but has been written to on the source: {} insert(s), {} update(s), {} delete(s) {since}; its rows will not be on the target after cutover",
                    w.inserts, w.updates, w.deletes
                ),
            )
            .object(format!("table {q}"))
            .fix(format!(
                "if the applications still need it, move it yourself after the fence (pg_dump -t '{}.{}' | psql on the target) or remove it from objects.exclude and start over; if it is scratch data, nothing to do",
                w.schema, w.name
            ))
        })
        .collect()
}

/// Whether the source role can fence: ALTER DATABASE ... SET (owner or superuser) and
/// terminate the other sessions (superuser or pg_signal_backend).
/// Shared with `pgmove plan` ([`crate::preflight::fence_rights`]).
pub(crate) fn fence_findings(f: &FenceCheck) -> Vec<Finding> {
    let mut out = Vec::new();
    let role = quote::ident(&f.role);
    let db = quote::ident(&f.database);
    if f.fence != Fence::ReadOnly.to_string() {
        out.push(
            Finding::new(
                Severity::Warning,
                "fence-none",
                Some(Side::Source),
                "cutover.fence is none: pgmove will not stop writes on the source; a write that reaches it after the final catch-up is not on the target".to_string(),
            )
            .object("cutover.fence")
            .fix("stop the applications' writes yourself before pgmove cutover, or set cutover.fence: read-only"),
        );
        return out;
    }
    if !f.superuser && !f.owns_database {
        out.push(
            Finding::new(
                Severity::Blocker,
                "fence-alter-database",
                Some(Side::Source),
                format!(
                    "role {} can neither own nor bypass database {}: the fence (ALTER DATABASE {db} SET default_transaction_read_only = on) needs its owner ({}) or a superuser",
                    f.role, f.database, f.database_owner
                ),
            )
            .object(format!("database {}", f.database))
            .fix(format!(
                "as a superuser (RDS/Aurora: the master user): ALTER DATABASE {db} OWNER TO {role};  -- or run pgmove on the source as {}; or set cutover.fence: none and stop the writes yourself",
                quote::ident(&f.database_owner)
            )),
        );
    }
    if !f.superuser && !f.signal_backend {
        out.push(
            Finding::new(
                Severity::Blocker,
                "fence-terminate",
                Some(Side::Source),
                format!(
                    "role {} cannot terminate other roles' sessions: the fence ends every other session of database {} (a session keeps the read-only setting it started with), which needs a superuser or membership in pg_signal_backend",
                    f.role, f.database
                ),
            )
            .object(format!("role {}", f.role))
            .fix(format!(
                "as a superuser (RDS/Aurora: the master user): GRANT pg_signal_backend TO {role};"
            )),
        );
    }
    if !f.superuser && !f.superuser_sessions.is_empty() {
        out.push(
            Finding::new(
                Severity::Warning,
                "fence-superuser-sessions",
                Some(Side::Source),
                format!(
                    "superusers are connected to database {} now ({}); a non-superuser cannot terminate their sessions, and cutover waits for every session to end",
                    f.database,
                    f.superuser_sessions.join(", ")
                ),
            )
            .object(format!("database {}", f.database))
            .fix("disconnect those sessions before cutover"),
        );
    }
    out
}

/// What a comparison means for cutover.
pub(super) struct Assessed {
    pub(super) tables: Vec<TableCheck>,
    pub(super) sequences: Vec<SequenceCheck>,
    pub(super) findings: Vec<Finding>,
}

/// Classifies verify's differences: expected while in flight, fixed by cutover itself
/// (sequences, large objects), or blocking.
pub(super) fn assess_comparison(
    plan: &Plan,
    v: &VerifyReport,
    in_flight: bool,
    invalid_indexes: &BTreeSet<String>,
) -> Assessed {
    let cutover_verifies = plan.cutover.verify != VerifyLevel::None;
    // A schema change may still be on its way to the target.
    let ddl_in_flight = in_flight && plan.cdc.ddl == Ddl::Replicate;
    let mut findings = Vec::new();
    let mut tables = Vec::new();
    let mut in_flight_tables = Vec::new();
    // Materialized views' contents: cutover refreshes them on the target before it verifies.
    for t in v.tables.iter().filter(|t| !t.materialized_view) {
        let q = quote::qualified(&t.schema, &t.name);
        let state = match t.status {
            TableStatus::Same if t.partitioned => "partitioned",
            TableStatus::Same => "same",
            TableStatus::Differs if in_flight => "in flight",
            TableStatus::Differs => "differs",
            TableStatus::MissingOnTarget => "missing on target",
            TableStatus::MissingOnSource => "missing on source",
        };
        match t.status {
            TableStatus::Same => {}
            TableStatus::Differs if in_flight => in_flight_tables.push(format!(
                "{q} ({} rows on the source, {} on the target)",
                rows(t.source_rows),
                rows(t.target_rows)
            )),
            TableStatus::Differs => findings.push(
                Finding::new(
                    Severity::Blocker,
                    "table-differs",
                    Some(Side::Target),
                    format!(
                        "table {q} differs although the target has applied everything: {} rows on the source, {} on the target, {} of {} chunk(s) differ{}",
                        rows(t.source_rows),
                        rows(t.target_rows),
                        t.differing_chunks.len(),
                        t.chunks,
                        if t.notes.is_empty() {
                            String::new()
                        } else {
                            format!("; {}", t.notes.join("; "))
                        }
                    ),
                )
                .object(format!("table {q}"))
                .fix(format!(
                    "find the rows: pgmove verify {} shows the differing key ranges; fix the target (or reload the table) before cutover",
                    plan.file
                )),
            ),
            TableStatus::MissingOnTarget => findings.push(
                Finding::new(
                    if ddl_in_flight { Severity::Warning } else { Severity::Blocker },
                    "table-missing-on-target",
                    Some(Side::Target),
                    format!(
                        "table {q} is on the source ({} rows) but not on the target{}",
                        rows(t.source_rows),
                        if ddl_in_flight { "; it may be in flight (created on the source, cdc.ddl: replicate)" } else { "" }
                    ),
                )
                .object(format!("table {q}"))
                .fix(format!(
                    "if it was created after the load with cdc.ddl other than replicate, create and load it on the target yourself (pg_dump -t '{}.{}' | psql), or add it to objects.exclude",
                    t.schema, t.name
                )),
            ),
            TableStatus::MissingOnSource => findings.push(
                Finding::new(
                    if ddl_in_flight || !cutover_verifies { Severity::Warning } else { Severity::Blocker },
                    "table-missing-on-source",
                    Some(Side::Target),
                    format!(
                        "table {q} is on the target ({} rows) but not on the source{}",
                        rows(t.target_rows),
                        if cutover_verifies { "; cutover's verification would fail on it" } else { "" }
                    ),
                )
                .object(format!("table {q}"))
                .fix(format!("drop it on the target if it is not wanted: DROP TABLE {q};")),
            ),
        }
        tables.push(TableCheck {
            schema: t.schema.clone(),
            name: t.name.clone(),
            state: state.to_string(),
            source_rows: t.source_rows,
            target_rows: t.target_rows,
            method: t.method,
            chunks: t.chunks,
            differing_chunks: t.differing_chunks.len(),
            differing_where: t
                .differing_chunks
                .iter()
                .take(5)
                .map(|c| c.where_sql.clone())
                .collect(),
            notes: t.notes.clone(),
        });
    }
    if !in_flight_tables.is_empty() {
        findings.push(
            Finding::new(
                Severity::Warning,
                "rows-in-flight",
                Some(Side::Target),
                format!(
                    "{} table(s) differ while the target is behind the source, as expected: {}",
                    in_flight_tables.len(),
                    list(&in_flight_tables)
                ),
            )
            .object(list(
                &in_flight_tables
                    .iter()
                    .map(|t| t.split(' ').next().unwrap_or("").to_string())
                    .collect::<Vec<_>>(),
            ))
            .fix(
                "nothing to do: cutover applies the rest after the fence and verifies again; run this report when no writes are under way to see them match",
            ),
        );
    }

    // Sequences.
    let sync = plan.cutover.sequences == Sequences::Sync;
    let mut sequences = Vec::new();
    for s in &v.sequences {
        let q = quote::qualified(&s.schema, &s.name);
        let mut c = SequenceCheck {
            schema: s.schema.clone(),
            name: s.name.clone(),
            source_last_value: s.source.as_ref().map(|x| x.last_value),
            source_is_called: s.source.as_ref().map(|x| x.is_called),
            target_last_value: s.target.as_ref().map(|x| x.last_value),
            target_is_called: s.target.as_ref().map(|x| x.is_called),
            at_cutover_value: None,
            at_cutover_is_called: None,
            action: String::new(),
        };
        match (&s.source, &s.target) {
            (Some(src), Some(tgt)) => {
                if src.definition != tgt.definition {
                    findings.push(
                        Finding::new(
                            if cutover_verifies && !ddl_in_flight {
                                Severity::Blocker
                            } else {
                                Severity::Warning
                            },
                            "sequence-definition",
                            Some(Side::Target),
                            format!(
                                "sequence {q} is defined differently: source {}, target {}",
                                src.definition, tgt.definition
                            ),
                        )
                        .object(format!("sequence {q}"))
                        .fix(format!(
                            "ALTER SEQUENCE {q} ... on the target to match the source"
                        )),
                    );
                }
                if sync {
                    c.at_cutover_value = Some(src.last_value);
                    c.at_cutover_is_called = Some(src.is_called);
                    c.action = if src.last_value == tgt.last_value && src.is_called == tgt.is_called
                    {
                        "already equal".into()
                    } else {
                        "set at cutover".into()
                    };
                } else {
                    c.action = "left as is (cutover.sequences: skip)".into();
                    if src.next_value != tgt.next_value {
                        findings.push(
                            Finding::new(
                                if cutover_verifies { Severity::Blocker } else { Severity::Warning },
                                "sequence-not-synced",
                                Some(Side::Target),
                                format!(
                                    "sequence {q} will hand out {} on the target but {} on the source, and cutover.sequences is skip{}",
                                    tgt.next_value,
                                    src.next_value,
                                    if cutover_verifies { ": cutover's verification would fail on it" } else { ": inserts on the target may collide" }
                                ),
                            )
                            .object(format!("sequence {q}"))
                            .fix("set cutover.sequences: sync, or set it on the target yourself after the fence: SELECT setval(...)"),
                        );
                    }
                }
            }
            (Some(_), None) => {
                c.action = "missing on target".into();
                findings.push(
                    Finding::new(
                        if ddl_in_flight { Severity::Warning } else { Severity::Blocker },
                        "sequence-missing-on-target",
                        Some(Side::Target),
                        format!("sequence {q} is on the source but not on the target{}", if sync { ": cutover cannot set it" } else { "" }),
                    )
                    .object(format!("sequence {q}"))
                    .fix(format!("create it on the target as on the source (pg_dump --schema-only -t '{}.{}' | psql)", s.schema, s.name)),
                );
            }
            (None, _) => {
                c.action = "missing on source".into();
                findings.push(
                    Finding::new(
                        if cutover_verifies && !ddl_in_flight {
                            Severity::Blocker
                        } else {
                            Severity::Warning
                        },
                        "sequence-missing-on-source",
                        Some(Side::Target),
                        format!("sequence {q} is on the target but not on the source"),
                    )
                    .object(format!("sequence {q}"))
                    .fix(format!(
                        "drop it on the target if it is not wanted: DROP SEQUENCE {q};"
                    )),
                );
            }
        }
        sequences.push(c);
    }

    // Objects.
    for o in &v.objects {
        let name = format!("{}.{}", o.schema, o.name);
        let shown = if o.schema.is_empty() {
            o.name.clone()
        } else {
            name.clone()
        };
        // An invalid index has its own finding.
        if o.kind == ObjectKind::Index
            && invalid_indexes.contains(&name)
            && o.target
                .as_deref()
                .is_some_and(|d| d.ends_with("[INVALID]"))
        {
            continue;
        }
        let (severity, what, fix) = match o.difference {
            ObjectDifference::MissingOnTarget => (
                if ddl_in_flight {
                    Severity::Warning
                } else {
                    Severity::Blocker
                },
                "is on the source but not on the target".to_string(),
                format!(
                    "create it on the target as on the source: {}",
                    o.source.as_deref().unwrap_or("(see pgmove verify)")
                ),
            ),
            ObjectDifference::MissingOnSource => (
                if cutover_verifies && !ddl_in_flight {
                    Severity::Blocker
                } else {
                    Severity::Warning
                },
                format!(
                    "is on the target but not on the source{}",
                    if cutover_verifies {
                        ": cutover's verification would fail on it"
                    } else {
                        ""
                    }
                ),
                format!(
                    "drop it on the target if it is not wanted{}",
                    o.target
                        .as_deref()
                        .map(|d| format!(" (it is: {d})"))
                        .unwrap_or_default()
                ),
            ),
            ObjectDifference::Definition => (
                if cutover_verifies && !ddl_in_flight {
                    Severity::Blocker
                } else {
                    Severity::Warning
                },
                format!(
                    "{}: source {}, target {}",
                    o.property.as_deref().map_or_else(
                        || "is defined differently".to_string(),
                        |p| format!("differs in {p}")
                    ),
                    o.source.as_deref().unwrap_or("-"),
                    o.target.as_deref().unwrap_or("-")
                ),
                "redefine it on the target as on the source".to_string(),
            ),
        };
        findings.push(
            Finding::new(
                severity,
                match o.difference {
                    ObjectDifference::MissingOnTarget => "object-missing-on-target",
                    ObjectDifference::MissingOnSource => "object-missing-on-source",
                    ObjectDifference::Definition => "object-differs",
                },
                Some(Side::Target),
                format!(
                    "{} {shown} {what}{}",
                    o.kind,
                    if ddl_in_flight {
                        " (may be in flight: cdc.ddl replicate and the target is behind)"
                    } else {
                        ""
                    }
                ),
            )
            .object(format!("{} {shown}", o.kind))
            .fix(fix),
        );
    }

    if let Some(lo) = &v.large_objects {
        if !lo.equal {
            findings.push(
                Finding::new(
                    Severity::Info,
                    "large-objects",
                    None,
                    format!(
                        "large objects differ ({} on the source, {} on the target): cutover copies the changed ones and removes those the source no longer has",
                        lo.source_count, lo.target_count
                    ),
                )
                .object("large objects"),
            );
        }
    }
    Assessed {
        tables,
        sequences,
        findings,
    }
}

/// The least a re-check inside the outage takes: both catalogues read, sequences compared.
pub(super) const RECHECK_FLOOR_SECS: f64 = 0.2;
/// What comparing one touched key costs, in rows of a sequential chunk checksum.
pub(super) const KEY_COST_ROWS: f64 = 10.0;

/// What the verification inside the outage will compare again, when cutover verifies ahead
/// of the fence (copy-cdc): measured over this report's own comparison, which is what the
/// verification ahead of the fence does.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub(super) struct AheadBasis {
    /// Rows this report compared.
    pub rows_compared: f64,
    /// Changes change capture applied while it compared (each a key to compare again).
    pub changes_applied: f64,
    /// Rows of the chunks that differed (in flight), compared again.
    pub rows_differing: f64,
    /// Rows of the tables compared whole or by count (no key): compared again whole if touched.
    pub rows_keyless: f64,
}

impl AheadBasis {
    /// The re-check rounds before the fence for a full comparison of `full` seconds, as
    /// cutover makes them (`crate::cutover::ahead::another_round`): round 1 compares the keys
    /// touched during the full comparison, each next round those touched during the round
    /// before (at the rate changes were applied during this report's comparison, each key
    /// costing [`KEY_COST_ROWS`] rows); returns the rounds and the seconds of the keys touched
    /// during the last one, compared again while fenced.
    pub fn rounds(&self, full: f64) -> (usize, f64) {
        if self.rows_compared <= 0.0 || full <= 0.0 {
            return (0, full);
        }
        let rate = self.changes_applied / full;
        let key_secs = full * KEY_COST_ROWS / self.rows_compared;
        let mut span = full;
        let mut prev = None;
        let mut round = 1;
        loop {
            let keys = (rate * span).ceil();
            span = keys * key_secs;
            let n = keys as usize;
            if !crate::cutover::ahead::another_round(round, n, prev, false) {
                return (round as usize, rate * span * key_secs);
            }
            prev = Some(n);
            round += 1;
        }
    }

    /// The share of this report's comparison the re-check inside the outage repeats apart
    /// from the touched keys: the chunks that differed and the tables without a key.
    pub fn rest_share(&self) -> f64 {
        if self.rows_compared <= 0.0 {
            return 1.0;
        }
        ((self.rows_differing + self.rows_keyless) / self.rows_compared).clamp(0.0, 1.0)
    }
}

/// Catch-up (the lag now, at most max_lag) + verification at the plan's level + fixed part.
/// With `ahead` (cutover verifies ahead of the fence), the verification inside the outage is
/// its re-check after the rounds ([`AheadBasis::rounds`]): the keys touched during the last
/// round, the chunks that differed and the tables without a key, plus
/// [`RECHECK_FLOOR_SECS`].
pub(super) fn estimate_outage(
    plan: &Plan,
    lag: &LagReport,
    run: &RunState,
    verify_secs: Option<f64>,
    ahead: Option<AheadBasis>,
) -> OutageEstimate {
    let max_lag = plan.cutover.max_lag.as_secs_f64();
    let catch_up = lag.seconds.unwrap_or(0.0).min(max_lag);
    let full = if plan.cutover.verify == VerifyLevel::None {
        0.0
    } else {
        verify_secs.unwrap_or(0.0)
    };
    let (verify, rounds) = match ahead {
        Some(a) if full > 0.0 => {
            let (rounds, keys_secs) = a.rounds(full);
            let v = (keys_secs + full * a.rest_share() + RECHECK_FLOOR_SECS).min(full);
            (v, rounds)
        }
        _ => (full, 0),
    };
    let known = run.change_capture_ran
        && (verify_secs.is_some() || plan.cutover.verify == VerifyLevel::None);
    let fence = plan.cutover.fence == Fence::ReadOnly;
    let how = if !known {
        "not estimated: change capture has not run and nothing was compared yet".to_string()
    } else {
        format!(
            "final catch-up: the lag now, at most cutover.max_lag (cutover fences only once the lag is under it); {}; {FIXED_OUTAGE_SECS:.0}s fixed for the fence, terminating sessions, the markers and the sequences{}",
            if plan.cutover.verify == VerifyLevel::None {
                "no verification (cutover.verify: none)".to_string()
            } else if ahead.is_some() {
                format!(
                    "verification: cutover verifies everything before the fence (as long as this report's own comparison took, cutover.verify: {}, outside the outage), then compares the keys change capture touched meanwhile in {rounds} re-check round(s), each on the keys touched during the one before, until a round has at most {} keys (at most {} rounds), and, while writes are fenced, compares again only the keys touched during the last round, the chunks that differed and whole the tables without a key; estimated at the rate changes were applied during this report's comparison, {KEY_COST_ROWS:.0} rows' cost a key",
                    plan.cutover.verify,
                    crate::cutover::ahead::ROUND_DONE_KEYS,
                    crate::cutover::ahead::MAX_ROUNDS
                )
            } else {
                format!(
                    "verification: as long as this report's own comparison took (cutover.verify: {}, run while writes are fenced)",
                    plan.cutover.verify
                )
            },
            if fence {
                ""
            } else {
                "; cutover.fence is none, so add whatever stopping the applications takes"
            }
        )
    };
    OutageEstimate {
        seconds: known.then_some(catch_up + verify + FIXED_OUTAGE_SECS),
        catch_up_secs: catch_up,
        verify_secs: verify,
        fixed_secs: FIXED_OUTAGE_SECS,
        downtime_budget_secs: plan.downtime.as_secs_f64(),
        recheck_rounds: rounds,
        how,
    }
}
