//! Progress for long work: bars on a terminal, structured log lines otherwise.

use std::io::IsTerminal;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressStyle};

/// How progress is shown for one command.
#[derive(Clone, Copy, Debug)]
pub struct Progress {
    bars: bool,
}

impl Progress {
    /// Bars only when stderr is a terminal and `allow_bars` (false for `--format json`).
    pub fn new(allow_bars: bool) -> Progress {
        Progress {
            bars: allow_bars && std::io::stderr().is_terminal() && !crate::logging::is_json(),
        }
    }

    /// No bars, log lines only (tests, pipes).
    pub fn logs() -> Progress {
        Progress { bars: false }
    }

    /// Starts a step of `total` items (0 when unknown).
    pub fn step(&self, name: &str, total: u64) -> Step {
        tracing::info!(step = name, items = total, "step started");
        let bar = if self.bars {
            let bar = if total > 0 {
                ProgressBar::new(total)
            } else {
                ProgressBar::new_spinner()
            };
            let style = ProgressStyle::with_template(
                "{prefix:>12.bold} [{bar:30}] {pos}/{len} {elapsed_precise} ETA {eta} {wide_msg}",
            )
            .unwrap_or_else(|_| ProgressStyle::default_bar())
            .progress_chars("=> ");
            bar.set_style(style);
            bar.set_prefix(name.to_string());
            bar.enable_steady_tick(Duration::from_millis(200));
            Some(bar)
        } else {
            None
        };
        Step {
            name: name.to_string(),
            bar,
            started: Instant::now(),
            rates_logged_ms: AtomicU64::new(0),
        }
    }
}

/// One step under way.
pub struct Step {
    name: String,
    bar: Option<ProgressBar>,
    started: Instant,
    /// When the last rates line was logged, in ms since `started` (0: none yet).
    rates_logged_ms: AtomicU64,
}

/// How often the rates of a step are logged without a bar (and always at its last item).
const RATES_EVERY: Duration = Duration::from_secs(5);

/// Whether a rates line is due at `now_ms` (since the step started) when the last was at
/// `last_ms` (0: none yet): the first, the last item's, and one every [`RATES_EVERY`].
fn rates_line_due(last_ms: u64, now_ms: u64, last_item: bool) -> bool {
    last_item || last_ms == 0 || now_ms.saturating_sub(last_ms) >= RATES_EVERY.as_millis() as u64
}

/// What a step has moved so far, for [`Step::item_done_moved`].
#[derive(Clone, Copy, Debug)]
pub struct Moved {
    pub rows: u64,
    pub bytes: u64,
    /// The step's time left as the caller estimates it.
    pub eta: Option<Duration>,
    /// The step's last item.
    pub last: bool,
}

impl Step {
    /// One item done.
    pub fn item_done(&self, what: &str) {
        match &self.bar {
            Some(b) => {
                b.set_message(what.to_string());
                b.inc(1);
            }
            None => tracing::debug!(step = %self.name, item = what, "done"),
        }
    }

    /// One item done, with the rows and bytes the step moved so far: the bar shows rows/s,
    /// bytes/s (since the step started) and the time left; without a bar, a log line with
    /// them every few seconds and at the last item.
    pub fn item_done_moved(&self, what: &str, m: &Moved) {
        let elapsed = self.started.elapsed();
        let rows_per_s = crate::rate::per_second(m.rows, elapsed);
        let bytes_per_s = crate::rate::per_second(m.bytes, elapsed);
        let rates = format!(
            "{}, {}, ETA {}",
            crate::rate::rows_text(rows_per_s),
            crate::rate::bytes_text(bytes_per_s),
            crate::rate::eta_text(m.eta)
        );
        if let Some(b) = &self.bar {
            if self.rates_logged_ms.swap(1, Ordering::Relaxed) == 0 {
                // The bar's own ETA counts items; the caller's knows their sizes.
                if let Ok(style) = ProgressStyle::with_template(
                    "{prefix:>12.bold} [{bar:30}] {pos}/{len} {elapsed_precise} {wide_msg}",
                ) {
                    b.set_style(style.progress_chars("=> "));
                }
            }
            b.set_message(format!("{rates} | {what}"));
            b.inc(1);
            return;
        }
        let now_ms = (elapsed.as_millis() as u64).max(1);
        if !rates_line_due(self.rates_logged_ms.load(Ordering::Relaxed), now_ms, m.last) {
            tracing::debug!(step = %self.name, item = what, "done");
            return;
        }
        self.rates_logged_ms.store(now_ms, Ordering::Relaxed);
        tracing::info!(
            step = %self.name,
            rows = m.rows,
            bytes = m.bytes,
            rows_per_s = rows_per_s.map(f64::round),
            bytes_per_s = bytes_per_s.map(f64::round),
            eta_s = m.eta.map(|d| d.as_secs()),
            "{} rows, {} in {:.1}s: {rates}",
            m.rows,
            crate::planner::bytes(m.bytes as i64),
            elapsed.as_secs_f64()
        );
    }

    /// How long the step has run.
    pub fn elapsed(&self) -> Duration {
        self.started.elapsed()
    }

    /// What the step works on now (the bar's message; a debug line without a bar).
    pub fn working_on(&self, what: &str) {
        match &self.bar {
            Some(b) => b.set_message(what.to_string()),
            None => tracing::debug!(step = %self.name, item = what, "working on"),
        }
    }

    /// The step is over; returns how long it took.
    pub fn finish(self, summary: &str) -> Duration {
        let elapsed = self.started.elapsed();
        if let Some(b) = &self.bar {
            b.finish_and_clear();
        }
        tracing::info!(
            step = %self.name,
            elapsed_ms = elapsed.as_millis() as u64,
            "{summary}"
        );
        elapsed
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_rates_line_is_logged_first_every_five_seconds_and_at_the_last_item() {
        assert!(rates_line_due(0, 10, false), "the first");
        assert!(!rates_line_due(10, 4_000, false));
        assert!(rates_line_due(10, 4_000, true), "the last item");
        assert!(rates_line_due(10, 5_010, false));
    }
}
