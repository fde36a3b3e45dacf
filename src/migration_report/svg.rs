//! Inline SVG charts for the HTML report: a line chart and horizontal bars. Plain SVG 1.1
//! markup, sized in pixels, no script, no external reference.

use std::fmt::Write as _;

/// The colour of data: lines, areas and bars (one hue; bars cycle through [`PALETTE`]).
pub const LINE: &str = "#1f6fb4";
/// Bar colours, in order.
pub const PALETTE: &[&str] = &[
    "#1f6fb4", "#e07b1a", "#2c9c4a", "#c9302c", "#7d55b8", "#8c564b", "#d15fae", "#6b6b6b",
];

const W: f64 = 720.0;
const PAD_L: f64 = 78.0;
const PAD_R: f64 = 16.0;
const PAD_T: f64 = 28.0;
const PAD_B: f64 = 40.0;

/// `s` safe in HTML and SVG text and attribute values.
pub fn esc(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// A line chart of `points` (x, y), with the area under it filled, axes labelled by `x_fmt` and
/// `y_fmt` at a few ticks. Empty points draw an empty frame saying "no data".
pub fn line_chart(
    title: &str,
    points: &[(f64, f64)],
    x_fmt: &dyn Fn(f64) -> String,
    y_fmt: &dyn Fn(f64) -> String,
) -> String {
    let h = 240.0;
    let mut s = String::new();
    let _ = write!(
        s,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{W}" height="{h}" viewBox="0 0 {W} {h}" role="img" aria-label="{t}"><title>{t}</title>"#,
        t = esc(title)
    );
    let _ = write!(
        s,
        r##"<text x="{PAD_L}" y="18" font-size="13" font-weight="600" fill="#222">{}</text>"##,
        esc(title)
    );
    let (x0, x1) = (PAD_L, W - PAD_R);
    let (y0, y1) = (h - PAD_B, PAD_T);
    let _ = write!(
        s,
        r##"<rect x="{x0}" y="{y1}" width="{}" height="{}" fill="#fafafa" stroke="#ccc"/>"##,
        x1 - x0,
        y0 - y1
    );
    if points.is_empty() {
        let _ = write!(
            s,
            r##"<text x="{}" y="{}" font-size="12" fill="#777" text-anchor="middle">no data recorded</text></svg>"##,
            (x0 + x1) / 2.0,
            (y0 + y1) / 2.0
        );
        return s;
    }
    let min_x = points.iter().map(|p| p.0).fold(f64::INFINITY, f64::min);
    let mut max_x = points.iter().map(|p| p.0).fold(f64::NEG_INFINITY, f64::max);
    if max_x <= min_x {
        max_x = min_x + 1.0;
    }
    let mut max_y = points.iter().map(|p| p.1).fold(0.0, f64::max);
    if max_y <= 0.0 {
        max_y = 1.0;
    }
    let px = |x: f64| x0 + (x - min_x) / (max_x - min_x) * (x1 - x0);
    let py = |y: f64| y0 - y / max_y * (y0 - y1);
    // Grid and ticks.
    for i in 0..=4 {
        let f = f64::from(i) / 4.0;
        let y = py(max_y * f);
        let _ = write!(
            s,
            r##"<line x1="{x0}" y1="{y:.1}" x2="{x1}" y2="{y:.1}" stroke="#e4e4e4"/><text x="{}" y="{:.1}" font-size="11" fill="#555" text-anchor="end">{}</text>"##,
            x0 - 6.0,
            y + 4.0,
            esc(&y_fmt(max_y * f))
        );
        let xv = min_x + (max_x - min_x) * f;
        let x = px(xv);
        // The last label ends at the frame's edge, so the chart never clips it.
        let anchor = if i == 4 { "end" } else { "middle" };
        let _ = write!(
            s,
            r##"<text x="{x:.1}" y="{}" font-size="11" fill="#555" text-anchor="{anchor}">{}</text>"##,
            y0 + 16.0,
            esc(&x_fmt(xv))
        );
    }
    let path: Vec<String> = points
        .iter()
        .map(|&(x, y)| format!("{:.1},{:.1}", px(x), py(y)))
        .collect();
    let first = points[0].0;
    let last = points[points.len() - 1].0;
    let _ = write!(
        s,
        r#"<polygon points="{:.1},{y0:.1} {} {:.1},{y0:.1}" fill="{LINE}" fill-opacity="0.18"/>"#,
        px(first),
        path.join(" "),
        px(last)
    );
    let _ = write!(
        s,
        r#"<polyline points="{}" fill="none" stroke="{LINE}" stroke-width="2.5"/>"#,
        path.join(" ")
    );
    if points.len() <= 60 {
        for &(x, y) in points {
            let _ = write!(
                s,
                r#"<circle cx="{:.1}" cy="{:.1}" r="3" fill="{LINE}"/>"#,
                px(x),
                py(y)
            );
        }
    }
    s.push_str("</svg>");
    s
}

/// Horizontal bars: `(label, start, end)` on one time axis (a Gantt chart when the spans
/// follow each other, the parts of a whole when they start where the last ended).
pub fn bars(title: &str, spans: &[(String, f64, f64)], fmt: &dyn Fn(f64) -> String) -> String {
    let row = 24.0;
    let label_w = 190.0;
    let h = PAD_T + row * spans.len().max(1) as f64 + PAD_B;
    let mut s = String::new();
    let _ = write!(
        s,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{W}" height="{h}" viewBox="0 0 {W} {h}" role="img" aria-label="{t}"><title>{t}</title>"#,
        t = esc(title)
    );
    let _ = write!(
        s,
        r##"<text x="8" y="18" font-size="13" font-weight="600" fill="#222">{}</text>"##,
        esc(title)
    );
    if spans.is_empty() {
        let _ = write!(
            s,
            r##"<text x="{}" y="{}" font-size="12" fill="#777" text-anchor="middle">no data recorded</text></svg>"##,
            W / 2.0,
            PAD_T + row / 2.0
        );
        return s;
    }
    let min = spans.iter().map(|b| b.1).fold(f64::INFINITY, f64::min);
    let mut max = spans.iter().map(|b| b.2).fold(f64::NEG_INFINITY, f64::max);
    if max <= min {
        max = min + 1.0;
    }
    let (x0, x1) = (label_w, W - PAD_R - 70.0);
    let px = |t: f64| x0 + (t - min) / (max - min) * (x1 - x0);
    for (i, (label, a, b)) in spans.iter().enumerate() {
        let y = PAD_T + row * i as f64;
        let (xa, xb) = (px(*a), px(*b));
        let _ = write!(
            s,
            r##"<text x="{}" y="{:.1}" font-size="12" fill="#333" text-anchor="end">{}</text><rect x="{xa:.1}" y="{:.1}" width="{:.1}" height="{:.1}" fill="{}" rx="2"/><text x="{:.1}" y="{:.1}" font-size="11" fill="#444">{}</text>"##,
            x0 - 8.0,
            y + row * 0.65,
            esc(label),
            y + 4.0,
            (xb - xa).max(2.0),
            row - 8.0,
            PALETTE[i % PALETTE.len()],
            xa.max(xb) + 6.0,
            y + row * 0.65,
            esc(&fmt(b - a))
        );
    }
    let axis_y = PAD_T + row * spans.len() as f64 + 6.0;
    let _ = write!(
        s,
        r##"<line x1="{x0}" y1="{axis_y:.1}" x2="{x1}" y2="{axis_y:.1}" stroke="#999"/><text x="{x0}" y="{:.1}" font-size="11" fill="#555">0</text><text x="{x1}" y="{:.1}" font-size="11" fill="#555" text-anchor="end">{}</text>"##,
        axis_y + 15.0,
        axis_y + 15.0,
        esc(&fmt(max - min))
    );
    s.push_str("</svg>");
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_line_chart_plots_each_point_inside_its_frame_and_escapes_labels() {
        let s = line_chart(
            "lag <bytes>",
            &[(0.0, 0.0), (5.0, 10.0), (10.0, 5.0)],
            &|x| format!("{x:.0} s"),
            &|y| format!("{y:.0}"),
        );
        assert!(s.starts_with("<svg") && s.ends_with("</svg>"));
        assert!(s.contains("lag &lt;bytes&gt;"), "{s}");
        assert_eq!(s.matches("<circle").count(), 3);
        // The highest point touches the top of the frame; the first the left edge.
        assert!(
            s.contains(&format!("{PAD_L:.1},{:.1}", 240.0 - PAD_B)),
            "{s}"
        );
        assert!(s.contains(&format!(
            "{:.1},{PAD_T:.1}",
            PAD_L + (W - PAD_R - PAD_L) / 2.0
        )));
    }

    #[test]
    fn empty_charts_say_so() {
        assert!(line_chart("x", &[], &|x| x.to_string(), &|y| y.to_string())
            .contains("no data recorded"));
        assert!(bars("x", &[], &|x| x.to_string()).contains("no data recorded"));
    }

    #[test]
    fn bars_are_one_a_span_with_their_lengths() {
        let s = bars(
            "steps",
            &[("schema".into(), 0.0, 2.0), ("copy".into(), 2.0, 10.0)],
            &|d| format!("{d:.0} s"),
        );
        assert_eq!(s.matches("<rect").count(), 2);
        assert!(s.contains(">schema<") && s.contains(">8 s<"), "{s}");
    }
}
