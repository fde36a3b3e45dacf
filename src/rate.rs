//! Rates and times left: rows/s, bytes/s and ETAs, the arithmetic the progress bars, the log
//! lines and `pgmove status` share. Pure functions: the callers measure, this computes.

use std::time::{Duration, Instant};

/// The rate of a growing counter measured over windows of at least `span`: the first sample
/// opens a window, the first sample `span` or more after it closes it (its rate is the
/// counter's growth over the window per second) and opens the next.
#[derive(Clone, Debug)]
pub struct Window {
    span: Duration,
    open: Option<(Instant, u64)>,
    rate: Option<f64>,
}

impl Window {
    pub fn new(span: Duration) -> Window {
        Window {
            span,
            open: None,
            rate: None,
        }
    }

    /// Records the counter's `total` at `at`; true when this closed a window.
    pub fn note(&mut self, at: Instant, total: u64) -> bool {
        match self.open {
            Some((since, from)) if at.saturating_duration_since(since) >= self.span => {
                self.rate = per_second(total.saturating_sub(from), at - since);
                self.open = Some((at, total));
                true
            }
            Some(_) => false,
            None => {
                self.open = Some((at, total));
                false
            }
        }
    }

    /// The rate over the last window closed; none before one closed.
    pub fn rate(&self) -> Option<f64> {
        self.rate
    }
}

/// `amount` per second over `elapsed`; none when no time has passed (a single sample has no
/// rate).
pub fn per_second(amount: u64, elapsed: Duration) -> Option<f64> {
    let secs = elapsed.as_secs_f64();
    (secs > 0.0 && secs.is_finite()).then(|| amount as f64 / secs)
}

/// The time to do `remaining` at `rate` per second: none when the rate is unknown or not
/// positive; zero when nothing remains.
pub fn eta(remaining: f64, rate: Option<f64>) -> Option<Duration> {
    if remaining <= 0.0 {
        return Some(Duration::ZERO);
    }
    let rate = rate.filter(|r| r.is_finite() && *r > 0.0)?;
    Duration::try_from_secs_f64(remaining / rate).ok()
}

/// What a load has done and expects, to estimate its time left ([`load_eta`]).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct LoadSoFar {
    /// Since the load started.
    pub elapsed: Duration,
    pub rows_done: u64,
    /// The rows to copy as the source's statistics estimate them (`reltuples`); none when a
    /// table to copy was never analyzed.
    pub estimated_rows: Option<u64>,
    pub chunks_done: u64,
    pub chunks: u64,
}

/// A load's time left: the estimated rows not copied yet at the rows rate so far; when the
/// estimate is unknown or already passed (stale statistics), the chunks left at the pace of
/// the chunks done. Zero once every chunk is done; none before any rate is known.
pub fn load_eta(l: &LoadSoFar) -> Option<Duration> {
    if l.chunks_done >= l.chunks {
        return Some(Duration::ZERO);
    }
    match l.estimated_rows {
        Some(est) if est > l.rows_done => eta(
            (est - l.rows_done) as f64,
            per_second(l.rows_done, l.elapsed).filter(|r| *r > 0.0),
        ),
        _ => eta(
            (l.chunks - l.chunks_done) as f64,
            per_second(l.chunks_done, l.elapsed),
        ),
    }
}

/// Rows per second for people: `1234 rows/s`, `?` rows/s when unknown.
pub fn rows_text(rate: Option<f64>) -> String {
    match rate {
        Some(r) => format!("{} rows/s", r.round() as u64),
        None => "? rows/s".to_string(),
    }
}

/// Bytes per second for people: `5.6 MB/s` (the units of [`crate::planner::bytes`]).
pub fn bytes_text(rate: Option<f64>) -> String {
    match rate {
        Some(r) => format!("{}/s", crate::planner::bytes(r.round() as i64)),
        None => "? bytes/s".to_string(),
    }
}

/// A time left for people: `45s`, `3m05s`, `2h07m`; `unknown` when there is none.
pub fn eta_text(eta: Option<Duration>) -> String {
    let Some(d) = eta else {
        return "unknown".to_string();
    };
    let s = d.as_secs_f64().ceil() as u64;
    match s {
        0..=59 => format!("{s}s"),
        60..=3599 => format!("{}m{:02}s", s / 60, s % 60),
        _ => format!("{}h{:02}m", s / 3600, (s % 3600) / 60),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SEC: Duration = Duration::from_secs(1);

    #[test]
    fn no_rate_without_time_between_two_samples() {
        assert_eq!(per_second(1000, Duration::ZERO), None);
        assert_eq!(per_second(1000, 4 * SEC), Some(250.0));
        assert_eq!(per_second(0, 2 * SEC), Some(0.0));
    }

    #[test]
    fn a_window_has_a_rate_once_it_closed() {
        let t0 = Instant::now();
        let mut w = Window::new(10 * SEC);
        assert!(!w.note(t0, 1000));
        assert_eq!(w.rate(), None, "one sample");
        assert!(!w.note(t0 + 4 * SEC, 5000));
        assert_eq!(w.rate(), None, "the window lasted less than its span");
        assert!(w.note(t0 + 10 * SEC, 21000));
        assert_eq!(w.rate(), Some(2000.0));
        // The next window starts where that one ended; nothing moved: zero.
        assert!(w.note(t0 + 20 * SEC, 21000));
        assert_eq!(w.rate(), Some(0.0));
    }

    #[test]
    fn the_eta_is_unknown_at_a_zero_or_unknown_rate_and_zero_when_nothing_is_left() {
        assert_eq!(eta(100.0, None), None);
        assert_eq!(eta(100.0, Some(0.0)), None);
        assert_eq!(eta(100.0, Some(f64::NAN)), None);
        assert_eq!(eta(0.0, None), Some(Duration::ZERO));
        assert_eq!(eta(100.0, Some(25.0)), Some(4 * SEC));
    }

    #[test]
    fn a_load_eta_uses_the_row_estimate_else_the_chunks() {
        let mut l = LoadSoFar {
            elapsed: 10 * SEC,
            rows_done: 1000,
            estimated_rows: Some(3000),
            chunks_done: 1,
            chunks: 10,
        };
        // 2000 rows left at 100 rows/s.
        assert_eq!(load_eta(&l), Some(20 * SEC));
        // Stale statistics (more rows than estimated): 9 chunks left at 0.1 chunk/s.
        l.estimated_rows = Some(500);
        assert_eq!(load_eta(&l), Some(90 * SEC));
        l.estimated_rows = None;
        assert_eq!(load_eta(&l), Some(90 * SEC));
        // Nothing done yet: unknown; all done: zero.
        l.rows_done = 0;
        l.chunks_done = 0;
        assert_eq!(load_eta(&l), None);
        l.estimated_rows = Some(3000);
        assert_eq!(load_eta(&l), None);
        l.chunks_done = 10;
        assert_eq!(load_eta(&l), Some(Duration::ZERO));
    }

    #[test]
    fn rates_and_times_read_with_their_units() {
        assert_eq!(rows_text(Some(1234.4)), "1234 rows/s");
        assert_eq!(rows_text(None), "? rows/s");
        assert_eq!(bytes_text(Some(5.0 * 1024.0 * 1024.0)), "5.0 MB/s");
        assert_eq!(bytes_text(Some(512.0)), "512 bytes/s");
        assert_eq!(bytes_text(None), "? bytes/s");
        assert_eq!(eta_text(None), "unknown");
        assert_eq!(eta_text(Some(Duration::from_millis(44_100))), "45s");
        assert_eq!(eta_text(Some(185 * SEC)), "3m05s");
        assert_eq!(eta_text(Some(7620 * SEC)), "2h07m");
    }
}
