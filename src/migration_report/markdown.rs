//! The report as GitHub-flavoured Markdown (also `--format text`): the same sections as the
//! HTML, the series as tables of a few rows.

use std::fmt::Write as _;

use super::{duration_text, utc_text, Facts};
use crate::planner::bytes;
use crate::report::markdown::{cell, code};

/// At most this many rows of a series in a table (evenly picked, the last one always).
const SERIES_ROWS: usize = 12;

/// Up to `n` of `points`, evenly spread, the first and the last included.
pub(super) fn thin<T: Clone>(points: &[T], n: usize) -> Vec<T> {
    if points.len() <= n || n < 2 {
        return points.to_vec();
    }
    (0..n)
        .map(|i| points[i * (points.len() - 1) / (n - 1)].clone())
        .collect()
}

/// The report in Markdown.
pub fn render_markdown(f: &Facts) -> String {
    let mut s = String::new();
    let _ = writeln!(s, "# pgmove migration report: plan {}\n", code(&f.plan));
    if f.is_empty() {
        let _ = writeln!(
            s,
            "The target has no record of this plan: it was never applied there, or `pgmove cleanup` removed its records."
        );
        return s;
    }
    let _ = writeln!(s, "| | |\n|---|---|");
    let _ = writeln!(
        s,
        "| strategy | {} |",
        cell(f.strategy.as_deref().unwrap_or("–"))
    );
    let _ = writeln!(s, "| phase | {} |", cell(f.phase.as_deref().unwrap_or("–")));
    if let Some(t) = f.started_at {
        let _ = writeln!(s, "| started | {} |", utc_text(t));
    }
    if let Some(t) = f.updated_at {
        let _ = writeln!(s, "| last update | {} |", utc_text(t));
    }
    if let Some(e) = &f.last_error {
        let _ = writeln!(s, "| last error | {} |", cell(e));
    }
    s.push('\n');

    let _ = writeln!(s, "## Timeline\n");
    if f.timeline.is_empty() {
        let _ = writeln!(s, "No step has finished yet.\n");
    } else {
        let _ = writeln!(s, "| step | started | took |\n|---|---|---:|");
        for sp in &f.timeline {
            let _ = writeln!(
                s,
                "| {} | {} | {} |",
                cell(&sp.step),
                utc_text(sp.start),
                duration_text(sp.end - sp.start)
            );
        }
        s.push('\n');
    }

    if let Some(l) = &f.load {
        let _ = writeln!(s, "## Load\n");
        let _ = writeln!(
            s,
            "{} chunk(s) of {} copied, {} rows, {} in {}{}: {} rows/s, {}/s.\n",
            l.chunks,
            l.chunks_planned,
            l.rows,
            bytes(l.bytes),
            duration_text(l.seconds),
            if l.finished_at.is_none() {
                " (still running)"
            } else {
                ""
            },
            l.rows_per_second.map_or("–".into(), |r| format!("{r:.0}")),
            l.bytes_per_second
                .map_or("–".into(), |r| bytes(r.round() as i64))
        );
        if !l.copied.is_empty() {
            let _ = writeln!(s, "| after | copied |\n|---:|---:|");
            for (t, b) in thin(&l.copied, SERIES_ROWS) {
                let _ = writeln!(s, "| {} | {} |", duration_text(t), bytes(b as i64));
            }
            s.push('\n');
        }
    }
    if let Some(r) = &f.restore {
        let _ = writeln!(s, "## Restore\n");
        let _ = writeln!(
            s,
            "{} dump item(s) restored{}.\n",
            r.items,
            r.seconds
                .map_or(String::new(), |x| format!(" over {}", duration_text(x)))
        );
    }
    if let Some(c) = &f.capture {
        let _ = writeln!(s, "## Change capture\n");
        let _ = writeln!(
            s,
            "{} transaction(s), {} change(s) applied, up to {}. Lag: largest {}, last {}.\n",
            c.transactions,
            c.changes,
            code(&c.applied_lsn),
            c.max_lag_bytes.map_or("–".into(), |b| bytes(b as i64)),
            c.last_lag_bytes.map_or("–".into(), |b| bytes(b as i64)),
        );
        if !c.lag.is_empty() {
            let _ = writeln!(s, "| at | lag |\n|---|---:|");
            for (t, b) in thin(&c.lag, SERIES_ROWS) {
                let _ = writeln!(s, "| {} | {} |", utc_text(t), bytes(b as i64));
            }
            s.push('\n');
        }
    }
    if let Some(c) = &f.cutover {
        let _ = writeln!(s, "## Cutover\n");
        let _ = writeln!(
            s,
            "State {}; writes held for {}{}.\n",
            code(&c.state),
            c.write_outage_secs.map_or("–".into(), duration_text),
            c.final_lsn
                .as_deref()
                .map_or(String::new(), |l| format!("; final position {}", code(l)))
        );
        if !c.outage_parts.is_empty() {
            let _ = writeln!(s, "| part of the outage | took |\n|---|---:|");
            for (n, secs) in &c.outage_parts {
                let _ = writeln!(s, "| {} | {} |", cell(n), duration_text(*secs));
            }
            s.push('\n');
        }
        let _ = writeln!(s, "### Verification\n");
        let verdict = match c.verify_identical {
            Some(true) => "identical".to_string(),
            Some(false) => format!("DIFFERENCES: {}", cell(&c.differing.join("; "))),
            None => "not run".to_string(),
        };
        let _ = writeln!(
            s,
            "{} ({}){}.\n",
            verdict,
            cell(c.verify.as_deref().unwrap_or("–")),
            c.verify_secs
                .map_or(String::new(), |x| format!(" in {}", duration_text(x)))
        );
        let ahead = super::ahead_text(c);
        if !ahead.is_empty() {
            let _ = writeln!(s, "{}\n", cell(&ahead));
        }
        if let Some(e) = &c.error {
            let _ = writeln!(s, "Error: {}\n", cell(e));
        }
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn thin_keeps_the_ends_and_spreads_the_rest() {
        let v: Vec<i32> = (0..100).collect();
        let t = thin(&v, 5);
        assert_eq!(t, vec![0, 24, 49, 74, 99]);
        assert_eq!(thin(&v[..3], 5), vec![0, 1, 2]);
    }

    #[test]
    fn every_section_is_there_with_its_numbers() {
        let f = Facts::from_history("shop", &super::super::tests::sample());
        let m = render_markdown(&f);
        for want in [
            "# pgmove migration report: plan `shop`",
            "## Timeline",
            "| copy | 1970-01-01 00:16:42 UTC | 10.0 s |",
            "## Load",
            "2 chunk(s) of 2 copied, 100 rows",
            "10 rows/s",
            "## Change capture",
            "largest 4.0 kB, last 0 bytes",
            "## Cutover",
            "writes held for 950 ms",
            "| cutover-verify | 400 ms |",
            "identical (checksums) in 400 ms.",
            "Verified ahead of the fence in 12.5 s while replicating, then 2 re-check round(s) of 4000, 900 key(s) before the fence; while fenced only what changed since was compared again: 321 key(s), 0 chunk(s), 1 whole table(s), in 2 table(s).",
        ] {
            assert!(m.contains(want), "missing {want:?} in\n{m}");
        }
    }

    #[test]
    fn an_unknown_plan_says_so() {
        let f = Facts {
            plan: "x".into(),
            ..Facts::default()
        };
        assert!(render_markdown(&f).contains("has no record of this plan"));
    }
}
