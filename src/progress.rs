//! Progress for long work: bars on a terminal, structured log lines otherwise.

use std::io::IsTerminal;
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
            bars: allow_bars && std::io::stderr().is_terminal(),
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
        }
    }
}

/// One step under way.
pub struct Step {
    name: String,
    bar: Option<ProgressBar>,
    started: Instant,
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
