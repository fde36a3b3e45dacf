//! `pgmove report`: the story of a migration from what the state store recorded on the target
//! ([`crate::state::history`]): the timeline of each step, the load's rows/s and bytes/s, the
//! lag over time during change capture, the cutover's write outage and its parts, and the
//! verification's result. Markdown for tickets, JSON for scripts, HTML with inline SVG charts
//! (no network at view time) for people. Reads only.

use serde::Serialize;

use crate::state::history::History;

mod html;
mod markdown;
mod svg;

pub use html::render_html;

/// What the report shows, computed from the history (pure: the unit tests build it by hand).
#[derive(Clone, Debug, Default, Serialize, PartialEq)]
pub struct Facts {
    pub plan: String,
    /// `null` when the target has no record of the plan.
    pub strategy: Option<String>,
    pub phase: Option<String>,
    /// Seconds since the epoch.
    pub started_at: Option<f64>,
    pub updated_at: Option<f64>,
    pub last_error: Option<String>,
    /// Each recorded step, from the end of the one before it (or the run's start) to its end.
    pub timeline: Vec<Span>,
    pub load: Option<LoadFacts>,
    pub restore: Option<RestoreFacts>,
    pub capture: Option<CaptureFacts>,
    pub cutover: Option<CutoverFacts>,
}

/// A step on the timeline (seconds since the epoch).
#[derive(Clone, Debug, Serialize, PartialEq)]
pub struct Span {
    pub step: String,
    pub start: f64,
    pub end: f64,
}

/// The copy-cdc load.
#[derive(Clone, Debug, Serialize, PartialEq)]
pub struct LoadFacts {
    pub started_at: f64,
    pub finished_at: Option<f64>,
    pub seconds: f64,
    pub chunks: usize,
    pub chunks_planned: i32,
    pub rows: i64,
    pub bytes: i64,
    pub rows_per_second: Option<f64>,
    pub bytes_per_second: Option<f64>,
    /// (seconds since the load started, bytes copied by then), one point a chunk.
    pub copied: Vec<(f64, f64)>,
}

/// The dump-restore restore.
#[derive(Clone, Debug, Serialize, PartialEq)]
pub struct RestoreFacts {
    pub items: i64,
    pub seconds: Option<f64>,
}

/// Change capture.
#[derive(Clone, Debug, Serialize, PartialEq)]
pub struct CaptureFacts {
    pub applied_lsn: String,
    pub transactions: i64,
    pub changes: i64,
    pub max_lag_bytes: Option<f64>,
    pub last_lag_bytes: Option<f64>,
    /// (seconds since the epoch, lag in bytes), oldest first.
    pub lag: Vec<(f64, f64)>,
}

/// The cutover.
#[derive(Clone, Debug, Serialize, PartialEq)]
pub struct CutoverFacts {
    pub state: String,
    pub requested_at: f64,
    pub fenced_at: Option<f64>,
    pub finished_at: Option<f64>,
    pub final_lsn: Option<String>,
    /// From the fence to the target live (or the unfence), as cutover measured it.
    pub write_outage_secs: Option<f64>,
    /// The outage's parts: each cutover step after the fence, with its seconds.
    pub outage_parts: Vec<(String, f64)>,
    /// `none`, `counts` or `checksums`.
    pub verify: Option<String>,
    pub verify_identical: Option<bool>,
    /// Seconds inside the outage (with a verification ahead of the fence: the re-check).
    pub verify_secs: Option<f64>,
    /// Seconds of the verification ahead of the fence, while replicating (outside the outage).
    pub pre_verify_secs: Option<f64>,
    /// What was compared again while fenced: keys, chunks, whole tables (`full`: everything).
    pub recheck: Option<serde_json::Value>,
    pub differing: Vec<String>,
    pub error: Option<String>,
}

/// The timeline's span from the end of the load to the cutover's request.
pub const REPLICATING: &str = "replicating (until cutover)";

/// The cutover steps that run while writes are fenced, in order.
const FENCED_STEPS: &[&str] = &[
    crate::state::step::cutover::FENCE,
    crate::state::step::cutover::CATCH_UP,
    crate::state::step::cutover::SEQUENCES,
    crate::state::step::cutover::LARGE_OBJECTS,
    crate::state::step::cutover::VERIFY,
    crate::state::step::cutover::LIVE,
];

impl Facts {
    /// The report of plan `plan` from its recorded history.
    pub fn from_history(plan: &str, h: &History) -> Facts {
        let mut f = Facts {
            plan: plan.to_string(),
            ..Facts::default()
        };
        if let Some(r) = &h.run {
            f.strategy = Some(r.strategy.clone());
            f.phase = Some(r.phase.clone());
            f.started_at = Some(r.started_at);
            f.updated_at = Some(r.updated_at);
            f.last_error = r.last_error.clone();
        }
        f.timeline = timeline(h);
        f.load = h.load.as_ref().map(|l| load_facts(l, &h.chunks));
        // copy-cdc and pglogical restore only the schema's items: their load is the load.
        f.restore = h
            .restore
            .as_ref()
            .filter(|_| h.load.is_none())
            .map(|r| RestoreFacts {
                items: r.items,
                seconds: r.first_at.zip(r.last_at).map(|(a, b)| b - a),
            });
        f.capture = h.progress.as_ref().map(|p| CaptureFacts {
            applied_lsn: p.applied_lsn.clone(),
            transactions: p.transactions,
            changes: p.changes,
            max_lag_bytes: h.lag.iter().map(|s| s.lag_bytes).reduce(f64::max),
            last_lag_bytes: h.lag.last().map(|s| s.lag_bytes),
            lag: h.lag.iter().map(|s| (s.at, s.lag_bytes)).collect(),
        });
        f.cutover = h.cutover.as_ref().map(|c| cutover_facts(c, &h.steps));
        f
    }

    /// Whether anything was recorded of the plan.
    pub fn is_empty(&self) -> bool {
        self.strategy.is_none() && self.timeline.is_empty() && self.cutover.is_none()
    }
}

/// Each step from the end of the one before it (the run's start for the first; the cutover's
/// request for the first cutover step) to its end. Markers of DDL applied by hand are not steps.
fn timeline(h: &History) -> Vec<Span> {
    let mut out: Vec<Span> = Vec::new();
    let mut prev = h.run.as_ref().map(|r| r.started_at);
    let cutover_start = h.cutover.as_ref().map(|c| c.requested_at);
    let mut in_cutover = false;
    for s in &h.steps {
        if s.name.starts_with(crate::state::step::DDL_APPLIED_PREFIX) {
            continue;
        }
        let mut start = prev.unwrap_or(s.finished_at);
        if s.name.starts_with("cutover-") && !in_cutover {
            in_cutover = true;
            if let Some(c) = cutover_start {
                // Between the load and the cutover's request the target replicated.
                if c > start && !out.is_empty() {
                    out.push(Span {
                        step: REPLICATING.to_string(),
                        start,
                        end: c,
                    });
                }
                start = c;
            }
        }
        let start = start.min(s.finished_at);
        out.push(Span {
            step: s.name.clone(),
            start,
            end: s.finished_at,
        });
        prev = Some(s.finished_at);
    }
    out
}

fn load_facts(
    l: &crate::state::history::Load,
    chunks: &[crate::state::history::Chunk],
) -> LoadFacts {
    let end = l.finished_at.unwrap_or(f64::INFINITY);
    let mine: Vec<_> = chunks
        .iter()
        .filter(|c| c.finished_at >= l.started_at && c.finished_at <= end)
        .collect();
    let rows: i64 = mine.iter().map(|c| c.rows).sum();
    let bytes: i64 = mine.iter().map(|c| c.bytes).sum();
    let last = mine.last().map(|c| c.finished_at);
    let seconds = l.finished_at.or(last).map_or(0.0, |e| e - l.started_at);
    let per = |n: i64| (seconds > 0.0).then(|| n as f64 / seconds);
    let mut total = 0.0;
    let copied = mine
        .iter()
        .map(|c| {
            total += c.bytes as f64;
            (c.finished_at - l.started_at, total)
        })
        .collect();
    LoadFacts {
        started_at: l.started_at,
        finished_at: l.finished_at,
        seconds,
        chunks: mine.len(),
        chunks_planned: l.chunks,
        rows,
        bytes,
        rows_per_second: per(rows),
        bytes_per_second: per(bytes),
        copied,
    }
}

fn cutover_facts(
    c: &crate::state::history::Cutover,
    steps: &[crate::state::history::Step],
) -> CutoverFacts {
    let detail: Option<serde_json::Value> = c
        .detail
        .as_deref()
        .and_then(|d| serde_json::from_str(d).ok());
    let num = |k: &str| {
        detail
            .as_ref()
            .and_then(|d| d.get(k))
            .and_then(|v| v.as_f64())
    };
    let text = |k: &str| {
        detail
            .as_ref()
            .and_then(|d| d.get(k))
            .and_then(|v| v.as_str())
            .map(str::to_string)
    };
    // The fenced steps' parts: each from the end of the step before it (the fence's from the
    // fence's start) to its end.
    let mut parts = Vec::new();
    if let Some(fenced) = c.fenced_at {
        let mut prev = fenced;
        for name in FENCED_STEPS {
            if let Some(s) = steps.iter().find(|s| s.name == *name) {
                if s.finished_at >= c.requested_at {
                    parts.push((name.to_string(), (s.finished_at - prev).max(0.0)));
                    prev = s.finished_at;
                }
            }
        }
    }
    CutoverFacts {
        state: c.state.clone(),
        requested_at: c.requested_at,
        fenced_at: c.fenced_at,
        finished_at: c.finished_at,
        final_lsn: c.final_lsn.clone(),
        write_outage_secs: num("write_outage_secs").or_else(|| {
            c.fenced_at
                .zip(c.finished_at)
                .map(|(a, b)| (b - a).max(0.0))
        }),
        outage_parts: parts,
        verify: text("verify"),
        verify_identical: detail
            .as_ref()
            .and_then(|d| d.get("verify_identical"))
            .and_then(|v| v.as_bool()),
        verify_secs: num("verify_secs"),
        pre_verify_secs: num("pre_verify_secs"),
        recheck: detail
            .as_ref()
            .and_then(|d| d.get("recheck"))
            .filter(|v| v.is_object())
            .cloned(),
        differing: detail
            .as_ref()
            .and_then(|d| d.get("differing"))
            .and_then(|v| v.as_array())
            .map(|a| {
                a.iter()
                    .filter_map(|v| v.as_str().map(str::to_string))
                    .collect()
            })
            .unwrap_or_default(),
        error: text("error").or_else(|| {
            // A failed cutover's detail may be the error itself, not a report.
            if detail.is_none() && c.state == "failed" {
                c.detail.clone()
            } else {
                None
            }
        }),
    }
}

/// The report as JSON, `schema_version` first (docs/json.md).
pub fn render_json(f: &Facts) -> String {
    crate::report::to_json(f, true) + "\n"
}

pub use markdown::render_markdown;

/// The verification ahead of the fence and what was compared again while fenced, as a
/// sentence (empty without one).
pub(crate) fn ahead_text(c: &CutoverFacts) -> String {
    let Some(pre) = c.pre_verify_secs else {
        return String::new();
    };
    let r = c.recheck.as_ref();
    let n = |k: &str| {
        r.and_then(|r| r.get(k))
            .and_then(|v| v.as_u64())
            .unwrap_or(0)
    };
    if r.and_then(|r| r.get("full")).and_then(|v| v.as_bool()) == Some(true) {
        return format!(
            "Verified ahead of the fence in {} while replicating; compared again whole while fenced.",
            duration_text(pre)
        );
    }
    let rounds: Vec<String> = r
        .and_then(|r| r.get("rounds"))
        .and_then(|v| v.as_array())
        .map(|a| {
            a.iter()
                .filter_map(|x| x.get("keys").and_then(|k| k.as_u64()))
                .map(|k| k.to_string())
                .collect()
        })
        .unwrap_or_default();
    let rounds = if rounds.is_empty() {
        String::new()
    } else {
        format!(
            ", then {} re-check round(s) of {} key(s) before the fence",
            rounds.len(),
            rounds.join(", ")
        )
    };
    format!(
        "Verified ahead of the fence in {} while replicating{rounds}; while fenced only what changed since was compared again: {} key(s), {} chunk(s), {} whole table(s), in {} table(s).",
        duration_text(pre),
        n("keys"),
        n("chunks"),
        n("whole_tables"),
        n("tables")
    )
}

/// `secs` as people read a duration: `850 ms`, `12.3 s`, `4 min 05 s`, `2 h 03 min`.
pub(crate) fn duration_text(secs: f64) -> String {
    if !secs.is_finite() || secs < 0.0 {
        return "–".into();
    }
    if secs < 1.0 {
        format!("{:.0} ms", secs * 1000.0)
    } else if secs < 60.0 {
        format!("{secs:.1} s")
    } else if secs < 3600.0 {
        let s = secs.round() as u64;
        format!("{} min {:02} s", s / 60, s % 60)
    } else {
        let m = (secs / 60.0).round() as u64;
        format!("{} h {:02} min", m / 60, m % 60)
    }
}

/// Seconds since the epoch as UTC `YYYY-MM-DD HH:MM:SS`.
pub(crate) fn utc_text(epoch: f64) -> String {
    let secs = epoch.floor() as i64;
    let days = secs.div_euclid(86_400);
    let rem = secs.rem_euclid(86_400);
    let (y, m, d) = civil_from_days(days);
    format!(
        "{y:04}-{m:02}-{d:02} {:02}:{:02}:{:02} UTC",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

/// The proleptic Gregorian date of `days` since 1970-01-01 (Howard Hinnant's algorithm).
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::state::history::{Chunk, Cutover, LagSample, Load, Progress, Run, Step};

    fn step(name: &str, at: f64) -> Step {
        Step {
            name: name.into(),
            finished_at: at,
            detail: None,
        }
    }

    pub(super) fn sample() -> History {
        History {
            run: Some(Run {
                strategy: "copy-cdc".into(),
                phase: "live".into(),
                started_at: 1000.0,
                updated_at: 1100.0,
                last_error: None,
            }),
            steps: vec![
                step("schema", 1002.0),
                step("copy", 1012.0),
                step("ddl-applied 0/1", 1013.0),
                step("loaded", 1014.0),
                step("cutover-lag", 1060.5),
                step("cutover-fence", 1060.6),
                step("cutover-catch-up", 1060.9),
                step("cutover-sequences", 1061.0),
                step("cutover-large-objects", 1061.0),
                step("cutover-verify", 1061.4),
                step("cutover-live", 1061.45),
            ],
            load: Some(Load {
                started_at: 1002.0,
                finished_at: Some(1012.0),
                chunks: 2,
                estimated_rows: Some(100),
                estimated_bytes: 2000,
            }),
            chunks: vec![
                Chunk {
                    finished_at: 1005.0,
                    rows: 40,
                    bytes: 800,
                },
                Chunk {
                    finished_at: 1012.0,
                    rows: 60,
                    bytes: 1200,
                },
                // An earlier load's chunk: not this load's.
                Chunk {
                    finished_at: 900.0,
                    rows: 5,
                    bytes: 5,
                },
            ],
            restore: None,
            progress: Some(Progress {
                applied_lsn: "0/3000000".into(),
                transactions: 50,
                changes: 200,
                updated_at: 1061.0,
            }),
            lag: vec![
                LagSample {
                    at: 1020.0,
                    lag_bytes: 4096.0,
                    applied_lsn: "0/2000000".into(),
                },
                LagSample {
                    at: 1030.0,
                    lag_bytes: 0.0,
                    applied_lsn: "0/3000000".into(),
                },
            ],
            cutover: Some(Cutover {
                state: "done".into(),
                requested_at: 1060.0,
                fenced_at: Some(1060.5),
                finished_at: Some(1061.45),
                final_lsn: Some("0/3000000".into()),
                detail: Some(
                    r#"{"verify":"checksums","verify_identical":true,"verify_secs":0.4,"pre_verify_secs":12.5,"recheck":{"tables":2,"whole_tables":1,"chunks":0,"keys":321,"full":false,"rounds":[{"round":1,"keys":4000,"differing":0,"left":1,"secs":0.2},{"round":2,"keys":900,"differing":0,"left":1,"secs":0.05}]},"write_outage_secs":0.95,"differing":[]}"#
                        .into(),
                ),
            }),
        }
    }

    #[test]
    fn facts_take_this_loads_chunks_the_steps_spans_and_the_outage_parts() {
        let f = Facts::from_history("shop", &sample());
        let l = f.load.as_ref().expect("load");
        assert_eq!((l.rows, l.bytes, l.chunks), (100, 2000, 2));
        assert_eq!(l.seconds, 10.0);
        assert_eq!(l.rows_per_second, Some(10.0));
        assert_eq!(l.bytes_per_second, Some(200.0));
        assert_eq!(l.copied, vec![(3.0, 800.0), (10.0, 2000.0)]);
        // Steps: from the run's start, the DDL marker left out, cutover from its request.
        let names: Vec<&str> = f.timeline.iter().map(|s| s.step.as_str()).collect();
        assert!(!names.iter().any(|n| n.starts_with("ddl-applied")));
        assert_eq!(f.timeline[0].start, 1000.0);
        assert_eq!(f.timeline[1].start, 1002.0);
        let lag = f
            .timeline
            .iter()
            .find(|s| s.step == "cutover-lag")
            .expect("lag");
        assert_eq!((lag.start, lag.end), (1060.0, 1060.5));
        let c = f.cutover.as_ref().expect("cutover");
        assert_eq!(c.write_outage_secs, Some(0.95));
        assert_eq!(c.verify_identical, Some(true));
        let parts: Vec<(&str, i64)> = c
            .outage_parts
            .iter()
            .map(|(n, s)| (n.as_str(), (s * 1000.0).round() as i64))
            .collect();
        assert_eq!(
            parts,
            vec![
                ("cutover-fence", 100),
                ("cutover-catch-up", 300),
                ("cutover-sequences", 100),
                ("cutover-large-objects", 0),
                ("cutover-verify", 400),
                ("cutover-live", 50),
            ]
        );
        let cap = f.capture.as_ref().expect("capture");
        assert_eq!(cap.max_lag_bytes, Some(4096.0));
        assert_eq!(cap.last_lag_bytes, Some(0.0));
    }

    #[test]
    fn a_failed_cutovers_error_detail_is_its_error() {
        let mut h = sample();
        if let Some(c) = h.cutover.as_mut() {
            c.state = "failed".into();
            c.detail = Some("verification found differences".into());
        }
        let f = Facts::from_history("shop", &h);
        let c = f.cutover.expect("cutover");
        assert_eq!(c.error.as_deref(), Some("verification found differences"));
        assert_eq!(c.verify_identical, None);
    }

    #[test]
    fn durations_and_dates_read_as_people_write_them() {
        assert_eq!(duration_text(0.25), "250 ms");
        assert_eq!(duration_text(12.34), "12.3 s");
        assert_eq!(duration_text(245.0), "4 min 05 s");
        assert_eq!(duration_text(7380.0), "2 h 03 min");
        assert_eq!(utc_text(0.0), "1970-01-01 00:00:00 UTC");
        assert_eq!(utc_text(1_796_598_000.0), "2026-12-06 23:00:00 UTC");
        assert_eq!(utc_text(951_782_400.0), "2000-02-29 00:00:00 UTC");
    }

    #[test]
    fn json_carries_the_schema_version() {
        let f = Facts::from_history("shop", &sample());
        let v: serde_json::Value = serde_json::from_str(&render_json(&f)).expect("json");
        assert_eq!(v["schema_version"], crate::report::SCHEMA_VERSION);
        assert_eq!(v["load"]["rows"], 100);
        assert_eq!(v["cutover"]["write_outage_secs"], 0.95);
    }
}
