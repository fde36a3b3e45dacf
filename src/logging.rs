//! Structured logs with tracing: to stderr, level from -v/-q; as text (coloured only on a
//! terminal) or, with `--log-format json`, one JSON object a line (docs/json.md), so that CI
//! systems can parse progress. Nothing here writes to stdout: stdout is the reports'.

use std::io::IsTerminal;
use std::sync::atomic::{AtomicBool, Ordering};

use tracing_subscriber::EnvFilter;

/// How the event log on stderr is written (`--log-format`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    /// Lines for people.
    #[default]
    Text,
    /// One JSON object a line: `timestamp`, `level`, `message` and the event's fields.
    Json,
}

/// Whether the log is JSON lines: then progress bars and the commands' plain notes on stderr
/// give way to log events ([`say`], [`error`]).
static JSON: AtomicBool = AtomicBool::new(false);

/// Whether `--log-format json` is in force.
pub fn is_json() -> bool {
    JSON.load(Ordering::Relaxed)
}

/// Whether raw arguments ask for `--log-format json` (for an argument error, before they
/// are parsed).
pub fn asks_json(args: &[std::ffi::OsString]) -> bool {
    args.iter()
        .zip(args.iter().skip(1).map(Some).chain([None]))
        .any(|(a, next)| {
            a == "--log-format=json" || (a == "--log-format" && next.is_some_and(|n| n == "json"))
        })
}

/// Installs the global subscriber. `verbosity` is the count of `-v` minus the count of `-q`:
/// 0 shows warnings and info, 1 debug, 2 trace, -1 warnings only, -2 errors only.
/// `PGMOVE_LOG` (an `EnvFilter` directive) overrides it.
pub fn init(verbosity: i8, format: LogFormat) {
    let level = match verbosity {
        i8::MIN..=-2 => "error",
        -1 => "warn",
        0 => "info",
        1 => "debug",
        _ => "trace",
    };
    let filter = EnvFilter::try_from_env("PGMOVE_LOG")
        .unwrap_or_else(|_| EnvFilter::new(format!("pgmove={level},warn")));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_target(false);
    match format {
        LogFormat::Text => {
            let ansi = std::io::stderr().is_terminal();
            let _ = builder.with_ansi(ansi).try_init();
        }
        LogFormat::Json => {
            JSON.store(true, Ordering::Relaxed);
            let _ = builder
                .json()
                .flatten_event(true)
                .with_current_span(true)
                .with_span_list(false)
                .with_ansi(false)
                .try_init();
        }
    }
}

/// A note for the user on stderr (`full load done ...`, `nothing done`): the line as it is,
/// or an `info` event with `--log-format json`.
pub fn say(text: &str) {
    if is_json() {
        tracing::info!("{text}");
    } else {
        eprintln!("{text}");
    }
}

/// A warning for the user on stderr (what `status` found wrong): the line as it is, or a
/// `warn` event with `--log-format json`.
pub fn warn(text: &str) {
    if is_json() {
        tracing::warn!("{text}");
    } else {
        eprintln!("{text}");
    }
}

/// Why a command failed, on stderr: `error: MESSAGE`, or an `error` event with
/// `--log-format json`.
pub fn error(message: &str) {
    if is_json() {
        tracing::error!("{message}");
    } else {
        eprintln!("error: {message}");
    }
}

#[cfg(test)]
mod tests {
    use super::asks_json;

    fn args(a: &[&str]) -> Vec<std::ffi::OsString> {
        a.iter().map(Into::into).collect()
    }

    #[test]
    fn json_is_asked_in_either_spelling_only() {
        assert!(asks_json(&args(&[
            "pgmove",
            "plan",
            "--log-format",
            "json"
        ])));
        assert!(asks_json(&args(&["pgmove", "--log-format=json", "x"])));
        assert!(!asks_json(&args(&["pgmove", "--log-format", "text"])));
        assert!(!asks_json(&args(&["pgmove", "plan", "--log-format"])));
        assert!(!asks_json(&args(&["pgmove", "json"])));
    }
}
