//! The report as one self-contained HTML page: the Markdown report's sections with inline SVG
//! charts (steps as bars on a time axis, bytes copied over the load, lag over change capture,
//! the outage's parts). No script, no stylesheet or font from the network.

use std::fmt::Write as _;

use super::svg::{self, esc};
use super::{duration_text, utc_text, Facts};
use crate::planner::bytes;

const STYLE: &str = "body{font-family:system-ui,-apple-system,'Segoe UI',sans-serif;margin:32px auto;max-width:760px;color:#222;line-height:1.45}
h1{font-size:22px;margin-bottom:4px}h2{font-size:17px;margin-top:32px;border-bottom:1px solid #ddd;padding-bottom:4px}
table{border-collapse:collapse;margin:8px 0}td,th{padding:3px 10px;border-bottom:1px solid #eee;text-align:left}
td.n{text-align:right;font-variant-numeric:tabular-nums}.ok{color:#2c7a3f;font-weight:600}.bad{color:#b3261e;font-weight:600}
.kpi{display:inline-block;margin:6px 18px 6px 0}.kpi b{display:block;font-size:20px}.muted{color:#666}code{background:#f3f3f3;padding:0 3px}";

/// One headline number.
fn kpi(s: &mut String, value: &str, label: &str) {
    let _ = write!(
        s,
        r#"<span class="kpi"><b>{}</b><span class="muted">{}</span></span>"#,
        esc(value),
        esc(label)
    );
}

/// The report as an HTML page.
pub fn render_html(f: &Facts) -> String {
    let mut s = String::new();
    let _ = writeln!(
        s,
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>pgmove report: {}</title><style>{STYLE}</style></head><body>",
        esc(&f.plan)
    );
    let _ = writeln!(
        s,
        "<h1>Migration report: plan <code>{}</code></h1>",
        esc(&f.plan)
    );
    if f.is_empty() {
        s.push_str("<p>The target has no record of this plan: it was never applied there, or <code>pgmove cleanup</code> removed its records.</p></body></html>\n");
        return s;
    }
    let _ = writeln!(
        s,
        "<p class=\"muted\">strategy {} · phase {}{}{}</p>",
        esc(f.strategy.as_deref().unwrap_or("–")),
        esc(f.phase.as_deref().unwrap_or("–")),
        f.started_at
            .map_or(String::new(), |t| format!(" · started {}", utc_text(t))),
        f.updated_at
            .map_or(String::new(), |t| format!(" · last update {}", utc_text(t)))
    );
    s.push_str("<div>");
    if let Some(l) = &f.load {
        kpi(&mut s, &duration_text(l.seconds), "load");
        kpi(
            &mut s,
            &l.rows_per_second.map_or("–".into(), |r| format!("{r:.0}")),
            "rows/s",
        );
        kpi(
            &mut s,
            &l.bytes_per_second
                .map_or("–".into(), |r| format!("{}/s", bytes(r.round() as i64))),
            "copied",
        );
    }
    if let Some(c) = &f.capture {
        kpi(&mut s, &c.changes.to_string(), "changes applied");
    }
    if let Some(c) = &f.cutover {
        kpi(
            &mut s,
            &c.write_outage_secs.map_or("–".into(), duration_text),
            "write outage",
        );
        kpi(
            &mut s,
            match c.verify_identical {
                Some(true) => "identical",
                Some(false) => "DIFFERENT",
                None => "not verified",
            },
            "verification",
        );
    }
    s.push_str("</div>\n");
    if let Some(e) = &f.last_error {
        let _ = writeln!(s, "<p class=\"bad\">Last error: {}</p>", esc(e));
    }

    s.push_str("<h2>Timeline</h2>\n");
    let origin = f.timeline.first().map_or(0.0, |t| t.start);
    let spans: Vec<(String, f64, f64)> = f
        .timeline
        .iter()
        .map(|t| (t.step.clone(), t.start - origin, t.end - origin))
        .collect();
    s.push_str(&svg::bars(
        "Steps (from the run's start)",
        &spans,
        &duration_text,
    ));
    s.push('\n');

    if let Some(l) = &f.load {
        s.push_str("<h2>Load</h2>\n");
        let _ = writeln!(
            s,
            "<p>{} chunk(s) of {} copied: {} rows, {} in {}{}.</p>",
            l.chunks,
            l.chunks_planned,
            l.rows,
            esc(&bytes(l.bytes)),
            duration_text(l.seconds),
            if l.finished_at.is_none() {
                " (still running)"
            } else {
                ""
            }
        );
        let mut pts = vec![(0.0, 0.0)];
        pts.extend(super::markdown::thin(&l.copied, 400));
        s.push_str(&svg::line_chart(
            "Bytes copied over the load",
            &pts,
            &duration_text,
            &|b| bytes(b as i64),
        ));
        s.push('\n');
    }
    if let Some(r) = &f.restore {
        s.push_str("<h2>Restore</h2>\n");
        let _ = writeln!(
            s,
            "<p>{} dump item(s) restored{}.</p>",
            r.items,
            r.seconds
                .map_or(String::new(), |x| format!(" over {}", duration_text(x)))
        );
    }
    if let Some(c) = &f.capture {
        s.push_str("<h2>Change capture</h2>\n");
        let _ = writeln!(
            s,
            "<p>{} transaction(s), {} change(s) applied, up to <code>{}</code>. Lag: largest {}, last {}.</p>",
            c.transactions,
            c.changes,
            esc(&c.applied_lsn),
            c.max_lag_bytes.map_or("–".into(), |b| bytes(b as i64)),
            c.last_lag_bytes.map_or("–".into(), |b| bytes(b as i64)),
        );
        let t0 = c.lag.first().map_or(0.0, |p| p.0);
        let pts: Vec<(f64, f64)> = super::markdown::thin(&c.lag, 400)
            .into_iter()
            .map(|(t, b)| (t - t0, b))
            .collect();
        s.push_str(&svg::line_chart(
            "Lag behind the source over change capture",
            &pts,
            &duration_text,
            &|b| bytes(b as i64),
        ));
        s.push('\n');
    }
    if let Some(c) = &f.cutover {
        s.push_str("<h2>Cutover</h2>\n");
        let _ = writeln!(
            s,
            "<p>State <code>{}</code>; writes held for <b>{}</b>{}.</p>",
            esc(&c.state),
            c.write_outage_secs.map_or("–".into(), duration_text),
            c.final_lsn.as_deref().map_or(String::new(), |l| format!(
                "; final position <code>{}</code>",
                esc(l)
            ))
        );
        let mut at = 0.0;
        let parts: Vec<(String, f64, f64)> = c
            .outage_parts
            .iter()
            .map(|(n, secs)| {
                let p = (n.clone(), at, at + secs);
                at += secs;
                p
            })
            .collect();
        s.push_str(&svg::bars(
            "The write outage, part by part",
            &parts,
            &duration_text,
        ));
        s.push('\n');
        s.push_str("<h2>Verification</h2>\n");
        match c.verify_identical {
            Some(true) => {
                let _ = writeln!(
                    s,
                    "<p class=\"ok\">Identical ({}){}.</p>",
                    esc(c.verify.as_deref().unwrap_or("–")),
                    c.verify_secs
                        .map_or(String::new(), |x| format!(" in {}", duration_text(x)))
                );
            }
            Some(false) => {
                let _ = write!(
                    s,
                    "<p class=\"bad\">Differences ({}):</p><ul>",
                    esc(c.verify.as_deref().unwrap_or("–"))
                );
                for d in &c.differing {
                    let _ = write!(s, "<li>{}</li>", esc(d));
                }
                s.push_str("</ul>\n");
            }
            None => s.push_str("<p class=\"muted\">Not verified.</p>\n"),
        }
        let ahead = super::ahead_text(c);
        if !ahead.is_empty() {
            let _ = writeln!(s, "<p>{}</p>", esc(&ahead));
        }
        if let Some(e) = &c.error {
            let _ = writeln!(s, "<p class=\"bad\">Error: {}</p>", esc(e));
        }
    }
    s.push_str("<p class=\"muted\">Made by pgmove report from the target's <code>pgmove</code> schema.</p>\n</body></html>\n");
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_page_with_its_charts_and_nothing_from_the_network() {
        let f = Facts::from_history("shop <&>", &super::super::tests::sample());
        let h = render_html(&f);
        assert!(h.starts_with("<!DOCTYPE html>"));
        assert!(h.contains("plan <code>shop &lt;&amp;&gt;</code>"), "{h}");
        assert_eq!(h.matches("<svg").count(), 4, "steps, load, lag, outage");
        assert!(h.contains("replicating (until cutover)"));
        assert!(h.contains("Identical (checksums) in 400 ms."));
        assert!(
            !h.contains("http://")
                || !h
                    .replace("http://www.w3.org/2000/svg", "")
                    .contains("http://")
        );
        assert!(!h.contains("https://") && !h.contains("<script"));
    }
}
