//! Rendering: the report as text and markdown (json is serde's).

use super::*;
use crate::report::finding;
use crate::report::markdown::{cell, code};

pub(super) fn rows(n: Option<i64>) -> String {
    n.map(|n| n.to_string()).unwrap_or_else(|| "-".to_string())
}

/// At most ten names, then how many more.
pub(super) fn list(items: &[String]) -> String {
    if items.len() <= 10 {
        items.join(", ")
    } else {
        format!("{} and {} more", items[..10].join(", "), items.len() - 10)
    }
}

pub(super) fn seq_value(v: Option<i64>, called: Option<bool>) -> String {
    match (v, called) {
        (Some(v), Some(true)) => v.to_string(),
        (Some(v), Some(false)) => format!("{v} (not called)"),
        _ => "-".to_string(),
    }
}

pub(super) fn lag_line(l: &LagReport) -> String {
    let mut s = format!(
        "source at {}, target applied {}: {} behind",
        l.source_wal_lsn.as_deref().unwrap_or("?"),
        l.applied_lsn.as_deref().unwrap_or("-"),
        l.bytes
            .map(|b| planner::bytes(b as i64))
            .unwrap_or_else(|| "?".into())
    );
    if let Some(x) = l.seconds {
        let _ = write!(s, " ({x:.1}s)");
    }
    if let Some(b) = l.bytes_after_compare {
        let _ = write!(s, ", {} after the comparison", planner::bytes(b as i64));
    }
    s
}

pub(super) fn slot_line(l: &LagReport) -> String {
    if !l.slot_exists {
        return format!("slot {} missing on the source", l.slot);
    }
    format!(
        "slot {} {}{}, retains {} of WAL",
        l.slot,
        if l.slot_active {
            "active (an apply is streaming)"
        } else {
            "inactive"
        },
        l.slot_wal_status
            .as_deref()
            .map(|w| format!(", wal_status {w}"))
            .unwrap_or_default(),
        l.retained_wal_bytes
            .map(|b| planner::bytes(b as i64))
            .unwrap_or_else(|| "?".into())
    )
}

pub(super) fn applier_line(d: &DryRun) -> String {
    if let Some(p) = &d.pglogical {
        return format!(
            "pglogical subscription {} ({}) applies the changes; cutover follows its slot, and drops the subscription once the target is verified",
            p.subscription, p.state
        );
    }
    match d.run.apply_lock_pid {
        Some(pid) => format!("a pgmove apply is running (target pid {pid} holds the plan's lock); cutover asks it to cut over"),
        None => "no pgmove apply is running; cutover runs change capture itself".to_string(),
    }
}

pub(super) fn fence_line(f: &FenceCheck) -> String {
    if f.fence != Fence::ReadOnly.to_string() {
        return format!("{}: pgmove does not stop writes on the source", f.fence);
    }
    let rights = if f.superuser {
        "superuser".to_string()
    } else {
        format!(
            "{}, {}",
            if f.owns_database {
                "owns the database"
            } else {
                "does NOT own the database"
            },
            if f.signal_backend {
                "member of pg_signal_backend"
            } else {
                "NOT a member of pg_signal_backend"
            }
        )
    };
    let can = f.superuser || (f.owns_database && f.signal_backend);
    format!(
        "{}: ALTER DATABASE {} SET default_transaction_read_only = on, then terminate the other sessions; role {} ({rights}) {}",
        f.fence,
        quote::ident(&f.database),
        f.role,
        if can { "can" } else { "cannot" }
    )
}

pub(super) fn verdict(d: &DryRun) -> String {
    if d.ready() {
        "Ready: `pgmove cutover` can proceed.".to_string()
    } else {
        format!(
            "Blocked: {} blocker(s) to fix before `pgmove cutover`.",
            d.blockers.max(1)
        )
    }
}

pub(super) fn listed_tables(d: &DryRun) -> (Vec<&TableCheck>, usize) {
    if d.tables.len() <= LIST_ALL_TABLES_UP_TO {
        (d.tables.iter().collect(), 0)
    } else {
        let shown: Vec<&TableCheck> = d
            .tables
            .iter()
            .filter(|t| t.state != "same" && t.state != "partitioned")
            .collect();
        let hidden = d.tables.len() - shown.len();
        (shown, hidden)
    }
}

pub(super) fn table_line(t: &TableCheck) -> String {
    let q = format!("{}.{}", t.schema, t.name);
    match t.state.as_str() {
        "partitioned" => format!("{q}: partitioned (rows are in its partitions)"),
        "same" => format!(
            "{q}: same, {} rows, {} chunk(s)",
            rows(t.source_rows),
            t.chunks
        ),
        _ => {
            let mut s = format!(
                "{q}: {}, {} rows on the source, {} on the target",
                t.state,
                rows(t.source_rows),
                rows(t.target_rows)
            );
            if t.chunks > 0 {
                let _ = write!(
                    s,
                    ", {} of {} chunk(s) differ",
                    t.differing_chunks, t.chunks
                );
            }
            for n in &t.notes {
                let _ = write!(s, "; {n}");
            }
            s
        }
    }
}

pub(super) fn sequence_line(s: &SequenceCheck) -> String {
    format!(
        "{}.{}: source {}, target {} -> {}",
        s.schema,
        s.name,
        seq_value(s.source_last_value, s.source_is_called),
        seq_value(s.target_last_value, s.target_is_called),
        match s.at_cutover_value {
            Some(_) => format!(
                "at cutover {} ({})",
                seq_value(s.at_cutover_value, s.at_cutover_is_called),
                s.action
            ),
            None => s.action.clone(),
        }
    )
}

pub(super) fn outage_line(o: &OutageEstimate) -> String {
    match o.seconds {
        Some(secs) => format!(
            "~{:.0}s = final catch-up {:.1}s + verification {:.1}s + fixed {:.0}s (downtime budget {})",
            secs.ceil(),
            o.catch_up_secs,
            o.verify_secs,
            o.fixed_secs,
            planner::human(std::time::Duration::from_secs_f64(o.downtime_budget_secs))
        ),
        None => "unknown".to_string(),
    }
}

pub(super) fn render_text(d: &DryRun) -> String {
    let mut o = String::new();
    let _ = writeln!(o, "pgmove cutover --dry-run: plan {}", d.plan);
    let _ = writeln!(o, "  source: {}", d.source);
    let _ = writeln!(o, "  target: {}", d.target);
    let _ = writeln!(o);
    let _ = writeln!(o, "Run");
    let _ = writeln!(
        o,
        "  strategy {}, phase {}; full load {}; change capture {}",
        d.run.strategy.as_deref().unwrap_or("-"),
        d.run.phase,
        if d.run.full_load_done {
            "done"
        } else {
            "not done"
        },
        match (
            &d.pglogical,
            d.run.replicated_transactions,
            d.run.replicated_changes
        ) {
            (Some(p), _, _) => format!("by pglogical, subscription {}", p.state),
            (None, Some(t), Some(c)) => format!("ran: {t} transaction(s), {c} change(s) applied"),
            _ => "never ran".to_string(),
        }
    );
    let _ = writeln!(o, "  {}", applier_line(d));
    if let Some(p) = &d.pglogical {
        let _ = writeln!(
            o,
            "  tables synced: {} of {}{}",
            p.tables_synced,
            p.tables.len(),
            p.tables
                .iter()
                .filter(|t| !t.synced())
                .map(|t| format!("; {}.{}: {}", t.schema, t.table, t.state))
                .collect::<String>()
        );
    }
    if let Some(s) = &d.run.cutover_state {
        let _ = writeln!(o, "  earlier cutover: {s}");
    }
    let _ = writeln!(o);
    let _ = writeln!(o, "Lag");
    let _ = writeln!(o, "  {}", lag_line(&d.lag));
    let _ = writeln!(o, "  {}", slot_line(&d.lag));
    let _ = writeln!(o);
    match d.verify_level {
        None => {
            let _ = writeln!(
                o,
                "Tables, sequences, objects: not compared (the full load has not finished)"
            );
        }
        Some(level) => {
            let _ = writeln!(
                o,
                "Tables ({level}, {} table(s) compared in {:.1}s{})",
                d.tables.len(),
                d.verify_secs.unwrap_or(0.0),
                if d.in_flight {
                    "; the target is behind: differences are in flight"
                } else {
                    ""
                }
            );
            let (shown, hidden) = listed_tables(d);
            for t in shown {
                let _ = writeln!(o, "  {}", table_line(t));
            }
            if hidden > 0 {
                let _ = writeln!(
                    o,
                    "  ({hidden} identical table(s) not listed; --format json lists every table)"
                );
            }
            if d.tables.is_empty() {
                let _ = writeln!(o, "  none");
            }
            let _ = writeln!(o);
            let _ = writeln!(o, "Sequences (cutover.sequences: {})", d.sequences_mode);
            for s in &d.sequences {
                let _ = writeln!(o, "  {}", sequence_line(s));
            }
            if d.sequences.is_empty() {
                let _ = writeln!(o, "  none");
            }
            let _ = writeln!(o);
            let _ = writeln!(o, "Objects that differ");
            for x in &d.objects {
                let _ = writeln!(
                    o,
                    "  {} {}: {}",
                    x.kind,
                    if x.schema.is_empty() {
                        x.name.clone()
                    } else {
                        format!("{}.{}", x.schema, x.name)
                    },
                    x.difference
                );
            }
            if d.objects.is_empty() {
                let _ = writeln!(o, "  none");
            }
            if let Some(lo) = &d.large_objects {
                let _ = writeln!(
                    o,
                    "  large objects: {} on the source, {} on the target{}",
                    lo.source_count,
                    lo.target_count,
                    if lo.equal { ", equal" } else { ", differ" }
                );
            }
        }
    }
    let _ = writeln!(o);
    let _ = writeln!(o, "Fence");
    let _ = writeln!(o, "  {}", fence_line(&d.fence));
    let _ = writeln!(o);
    let _ = writeln!(o, "Estimated write outage: {}", outage_line(&d.outage));
    let _ = writeln!(o, "  how: {}", d.outage.how);
    let _ = writeln!(o);
    finding::text(&mut o, &d.findings, &|_, s| s.to_string());
    let _ = writeln!(o, "{}", verdict(d));
    o
}

pub(super) fn render_markdown(d: &DryRun) -> String {
    let mut o = String::new();
    let _ = writeln!(o, "# pgmove cutover dry run: plan {}\n", code(&d.plan));
    let _ = writeln!(o, "**{}**\n", verdict(d));
    let _ = writeln!(o, "| | |\n|---|---|");
    let _ = writeln!(o, "| source | {} |", code(&d.source));
    let _ = writeln!(o, "| target | {} |", code(&d.target));
    let _ = writeln!(
        o,
        "| run | strategy {}, phase {}, full load {}, change capture {} |",
        cell(d.run.strategy.as_deref().unwrap_or("-")),
        cell(&d.run.phase),
        if d.run.full_load_done {
            "done"
        } else {
            "not done"
        },
        if d.run.change_capture_ran {
            "ran"
        } else {
            "never ran"
        }
    );
    let _ = writeln!(o, "| applier | {} |", cell(&applier_line(d)));
    let _ = writeln!(o, "| lag | {} |", cell(&lag_line(&d.lag)));
    let _ = writeln!(o, "| slot | {} |", cell(&slot_line(&d.lag)));
    let _ = writeln!(o, "| fence | {} |", cell(&fence_line(&d.fence)));
    let _ = writeln!(
        o,
        "| estimated write outage | {}: {} |",
        cell(&outage_line(&d.outage)),
        cell(&d.outage.how)
    );
    let _ = writeln!(o, "\n## Findings\n");
    finding::markdown(&mut o, &d.findings, true);
    if let Some(level) = d.verify_level {
        let _ = writeln!(
            o,
            "\n## Tables ({level}, {:.1}s)\n",
            d.verify_secs.unwrap_or(0.0)
        );
        let (shown, hidden) = listed_tables(d);
        if shown.is_empty() {
            let _ = writeln!(o, "None listed.");
        } else {
            let _ = writeln!(
                o,
                "| table | state | source rows | target rows | chunks | differing |"
            );
            let _ = writeln!(o, "|---|---|---|---|---|---|");
            for t in shown {
                let _ = writeln!(
                    o,
                    "| {} | {} | {} | {} | {} | {} |",
                    code(&format!("{}.{}", t.schema, t.name)),
                    t.state,
                    rows(t.source_rows),
                    rows(t.target_rows),
                    t.chunks,
                    t.differing_chunks
                );
            }
        }
        if hidden > 0 {
            let _ = writeln!(o, "\n{hidden} identical table(s) not listed.");
        }
        let _ = writeln!(
            o,
            "\n## Sequences (cutover.sequences: {})\n",
            d.sequences_mode
        );
        if d.sequences.is_empty() {
            let _ = writeln!(o, "None.");
        } else {
            let _ = writeln!(o, "| sequence | source | target | at cutover |");
            let _ = writeln!(o, "|---|---|---|---|");
            for s in &d.sequences {
                let _ = writeln!(
                    o,
                    "| {} | {} | {} | {} |",
                    code(&format!("{}.{}", s.schema, s.name)),
                    seq_value(s.source_last_value, s.source_is_called),
                    seq_value(s.target_last_value, s.target_is_called),
                    match s.at_cutover_value {
                        Some(_) => seq_value(s.at_cutover_value, s.at_cutover_is_called),
                        None => cell(&s.action),
                    }
                );
            }
        }
        let _ = writeln!(o, "\n## Objects that differ\n");
        if d.objects.is_empty() {
            let _ = writeln!(o, "None.");
        } else {
            let _ = writeln!(o, "| kind | object | difference |");
            let _ = writeln!(o, "|---|---|---|");
            for x in &d.objects {
                let _ = writeln!(
                    o,
                    "| {} | {} | {} |",
                    x.kind,
                    code(&if x.schema.is_empty() {
                        x.name.clone()
                    } else {
                        format!("{}.{}", x.schema, x.name)
                    }),
                    cell(&x.difference.to_string())
                );
            }
        }
    }
    o
}
