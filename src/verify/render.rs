//! Text and Markdown renderings of a [`VerifyReport`]. Both show the summary and every
//! difference; the JSON form (serde) holds everything, equal tables included.

use std::fmt::Write;

use super::{ChunkDiff, SequenceReport, SequenceState, TableReport, TableStatus, VerifyReport};
use crate::report::markdown::{cell, code};
use crate::report::Render;

impl Render for VerifyReport {
    /// The report for a terminal or a log.
    fn render_text(&self) -> String {
        text(self)
    }

    /// The report as GitHub-flavoured Markdown.
    fn render_markdown(&self) -> String {
        markdown(self)
    }
}

fn rows(n: Option<i64>) -> String {
    n.map(|n| n.to_string()).unwrap_or_else(|| "-".to_string())
}

fn seq_state(s: &Option<SequenceState>) -> String {
    match s {
        None => "absent".to_string(),
        Some(s) => format!(
            "last_value {} ({}), next {}",
            s.last_value,
            if s.is_called { "called" } else { "not called" },
            s.next_value
        ),
    }
}

fn seq_detail(s: &SequenceReport) -> String {
    let mut out = format!(
        "source {}; target {}",
        seq_state(&s.source),
        seq_state(&s.target)
    );
    if let (Some(a), Some(b)) = (&s.source, &s.target) {
        if a.definition != b.definition {
            out.push_str(&format!(
                "; definition: source {}, target {}",
                a.definition, b.definition
            ));
        }
    }
    out
}

fn table_line(t: &TableReport) -> String {
    let mut s = format!("{}.{}: {}", t.schema, t.name, t.status);
    match t.status {
        TableStatus::MissingOnTarget => {
            if !t.partitioned {
                s.push_str(&format!(" ({} rows on the source)", rows(t.source_rows)));
            }
        }
        TableStatus::MissingOnSource => {
            if !t.partitioned {
                s.push_str(&format!(" ({} rows on the target)", rows(t.target_rows)));
            }
        }
        _ => {
            if !t.partitioned {
                s.push_str(&format!(
                    " - rows {} on the source, {} on the target; {} chunk(s), {} differing",
                    rows(t.source_rows),
                    rows(t.target_rows),
                    t.chunks,
                    t.differing_chunks.len()
                ));
            }
        }
    }
    s
}

fn chunk_lines(c: &ChunkDiff, of: u64) -> Vec<String> {
    let mut out = vec![format!(
        "chunk {}/{of}: {}: {} rows on the source, {} on the target",
        c.index + 1,
        c.range,
        c.source_rows,
        c.target_rows
    )];
    out.push(format!("  WHERE {}", c.where_sql));
    for r in &c.rows {
        out.push(format!("  key ({}): {}", r.key.join(", "), r.kind));
    }
    out
}

fn truncate(s: &str, max: usize) -> String {
    if s.chars().count() <= max {
        s.to_string()
    } else {
        let mut t: String = s.chars().take(max).collect();
        t.push_str("...");
        t
    }
}

pub(crate) fn text(r: &VerifyReport) -> String {
    let mut o = String::new();
    let sum = r.summary();
    let _ = writeln!(
        o,
        "pgmove verify ({}): source {} / target {}",
        r.level, r.source, r.target
    );
    let _ = writeln!(
        o,
        "result: {}",
        if r.is_identical() {
            "IDENTICAL"
        } else {
            "DIFFERENCES FOUND"
        }
    );
    let _ = writeln!(
        o,
        "tables: {} compared, {} differ; {} chunk(s), {} differing",
        sum.tables, sum.tables_differing, sum.chunks, sum.chunks_differing
    );
    for e in &r.excluded {
        let _ = writeln!(o, "excluded: {e}");
    }
    for t in r.tables.iter().filter(|t| t.status != TableStatus::Same) {
        let _ = writeln!(o, "  {}", table_line(t));
        for n in &t.notes {
            let _ = writeln!(o, "    note: {n}");
        }
        for c in &t.differing_chunks {
            for l in chunk_lines(c, t.chunks) {
                let _ = writeln!(o, "    {l}");
            }
        }
    }
    let _ = writeln!(
        o,
        "sequences: {} compared, {} differ",
        sum.sequences, sum.sequences_differing
    );
    for s in r.sequences.iter().filter(|s| !s.equal) {
        let _ = writeln!(o, "  {}.{}: {}", s.schema, s.name, seq_detail(s));
    }
    let _ = writeln!(o, "objects: {} difference(s)", sum.object_differences);
    for d in &r.objects {
        let name = if d.schema.is_empty() {
            d.name.clone()
        } else {
            format!("{}.{}", d.schema, d.name)
        };
        if let Some(p) = &d.property {
            let _ = writeln!(
                o,
                "  {} {}: {p}: source {}, target {}",
                d.kind,
                name,
                truncate(d.source.as_deref().unwrap_or("none"), 300),
                truncate(d.target.as_deref().unwrap_or("none"), 300)
            );
            continue;
        }
        let _ = writeln!(o, "  {} {}: {}", d.kind, name, d.difference);
        if let Some(s) = &d.source {
            if !s.is_empty() {
                let _ = writeln!(o, "    source: {}", truncate(s, 300));
            }
        }
        if let Some(t) = &d.target {
            if !t.is_empty() {
                let _ = writeln!(o, "    target: {}", truncate(t, 300));
            }
        }
    }
    if let Some(lo) = &r.large_objects {
        let _ = writeln!(
            o,
            "large objects: {} on the source, {} on the target{}",
            lo.source_count,
            lo.target_count,
            match (lo.contents_compared, lo.equal) {
                (true, true) => ", contents equal",
                (true, false) => ", DIFFER",
                (false, true) => "",
                (false, false) => ", DIFFER",
            }
        );
    }
    for n in &r.notes {
        let _ = writeln!(o, "note: {n}");
    }
    let _ = writeln!(o, "elapsed: {:.1}s", r.elapsed_seconds);
    o
}

pub(crate) fn markdown(r: &VerifyReport) -> String {
    let mut o = String::new();
    let sum = r.summary();
    let _ = writeln!(
        o,
        "# pgmove verify: {}\n",
        if r.is_identical() {
            "identical"
        } else {
            "differences found"
        }
    );
    let _ = writeln!(o, "| | |\n|---|---|");
    let _ = writeln!(o, "| level | {} |", r.level);
    let _ = writeln!(o, "| source | {} |", code(&r.source));
    let _ = writeln!(o, "| target | {} |", code(&r.target));
    let _ = writeln!(
        o,
        "| tables | {} compared, {} differ |",
        sum.tables, sum.tables_differing
    );
    let _ = writeln!(
        o,
        "| chunks | {} compared, {} differ |",
        sum.chunks, sum.chunks_differing
    );
    let _ = writeln!(
        o,
        "| sequences | {} compared, {} differ |",
        sum.sequences, sum.sequences_differing
    );
    let _ = writeln!(o, "| object differences | {} |", sum.object_differences);
    for e in &r.excluded {
        let _ = writeln!(o, "| excluded | {} |", cell(e));
    }
    if let Some(lo) = &r.large_objects {
        let _ = writeln!(
            o,
            "| large objects | {} / {}{} |",
            lo.source_count,
            lo.target_count,
            if lo.equal { ", equal" } else { ", **differ**" }
        );
    }
    let _ = writeln!(o, "| elapsed | {:.1}s |", r.elapsed_seconds);

    let differing: Vec<&TableReport> = r
        .tables
        .iter()
        .filter(|t| t.status != TableStatus::Same)
        .collect();
    if !differing.is_empty() {
        let _ = writeln!(o, "\n## Tables that differ\n");
        let _ = writeln!(
            o,
            "| table | status | source rows | target rows | chunks | differing chunks | notes |"
        );
        let _ = writeln!(o, "|---|---|---:|---:|---:|---:|---|");
        for t in &differing {
            let _ = writeln!(
                o,
                "| {} | {} | {} | {} | {} | {} | {} |",
                code(&format!("{}.{}", t.schema, t.name)),
                t.status,
                rows(t.source_rows),
                rows(t.target_rows),
                t.chunks,
                t.differing_chunks.len(),
                cell(&t.notes.join("; "))
            );
        }
        for t in differing.iter().filter(|t| !t.differing_chunks.is_empty()) {
            let _ = writeln!(o, "\n### {}\n", code(&format!("{}.{}", t.schema, t.name)));
            for c in &t.differing_chunks {
                let _ = writeln!(
                    o,
                    "- chunk {}/{}: {} ({} rows on the source, {} on the target): {}",
                    c.index + 1,
                    t.chunks,
                    cell(&c.range.to_string()),
                    c.source_rows,
                    c.target_rows,
                    code(&format!("WHERE {}", c.where_sql))
                );
                for row in &c.rows {
                    let _ = writeln!(
                        o,
                        "  - key {}: {}",
                        code(&format!("({})", row.key.join(", "))),
                        row.kind
                    );
                }
            }
        }
    }
    let seqs: Vec<&SequenceReport> = r.sequences.iter().filter(|s| !s.equal).collect();
    if !seqs.is_empty() {
        let _ = writeln!(o, "\n## Sequences that differ\n");
        let _ = writeln!(o, "| sequence | source | target |\n|---|---|---|");
        for s in seqs {
            let _ = writeln!(
                o,
                "| {} | {} | {} |",
                code(&format!("{}.{}", s.schema, s.name)),
                cell(&seq_state(&s.source)),
                cell(&seq_state(&s.target))
            );
        }
    }
    if !r.objects.is_empty() {
        let _ = writeln!(o, "\n## Objects that differ\n");
        let _ = writeln!(
            o,
            "| kind | object | difference | source | target |\n|---|---|---|---|---|"
        );
        for d in &r.objects {
            let name = if d.schema.is_empty() {
                d.name.clone()
            } else {
                format!("{}.{}", d.schema, d.name)
            };
            let def = |s: &Option<String>| {
                s.as_deref()
                    .filter(|s| !s.is_empty())
                    .map(|s| code(&truncate(s, 200)))
                    .unwrap_or_default()
            };
            let _ = writeln!(
                o,
                "| {} | {} | {} | {} | {} |",
                d.kind,
                code(&name),
                d.property
                    .as_deref()
                    .map(cell)
                    .unwrap_or_else(|| d.difference.to_string()),
                def(&d.source),
                def(&d.target)
            );
        }
    }
    if !r.notes.is_empty() {
        let _ = writeln!(o, "\n## Notes\n");
        for n in &r.notes {
            let _ = writeln!(o, "- {}", cell(n));
        }
    }
    o
}

#[cfg(test)]
mod tests {
    use super::super::{Level, Method};
    use super::*;

    #[test]
    fn markdown_keeps_hostile_names_and_notes_in_their_cells() {
        let r = VerifyReport {
            level: Level::Counts,
            source: "postgres://app:********@old/shop".into(),
            target: "postgres://app:********@new/shop".into(),
            identical: false,
            tables: vec![TableReport {
                schema: "odd|schema".into(),
                name: "we`ird".into(),
                partitioned: false,
                partition_of: None,
                materialized_view: false,
                method: Method::Count,
                key: vec![],
                source_rows: Some(2),
                target_rows: Some(1),
                chunks: 1,
                differing_chunks: vec![],
                notes: vec!["first\nsecond *not emphasis*".into()],
                status: TableStatus::Differs,
            }],
            sequences: vec![],
            objects: vec![],
            notes: vec!["<b>x</b> | y".into()],
            function_counts: vec![],
            large_objects: None,
            excluded: vec![],
            elapsed_seconds: 0.5,
        };
        let m = r.render_markdown();
        assert!(
            m.contains("| source | `postgres://app:********@old/shop` |\n"),
            "{m}"
        );
        assert!(
            m.contains("| ``odd\\|schema.we`ird`` | differs | 2 | 1 | 1 | 0 | first<br>second \\*not emphasis\\* |\n"),
            "{m}"
        );
        assert!(m.ends_with("- \\<b\\>x\\</b\\> \\| y\n"), "{m}");
        // Text is not escaped.
        assert!(r.render_text().contains("odd|schema.we`ird: differs"));
    }
}
