//! Structured logs with tracing: to stderr, coloured only on a terminal, level from -v/-q.

use std::io::IsTerminal;

use tracing_subscriber::EnvFilter;

/// Installs the global subscriber. `verbosity` is the count of `-v` minus the count of `-q`:
/// 0 shows warnings and info, 1 debug, 2 trace, -1 warnings only, -2 errors only.
/// `PGMOVE_LOG` (an `EnvFilter` directive) overrides it.
pub fn init(verbosity: i8) {
    let level = match verbosity {
        i8::MIN..=-2 => "error",
        -1 => "warn",
        0 => "info",
        1 => "debug",
        _ => "trace",
    };
    let filter = EnvFilter::try_from_env("PGMOVE_LOG")
        .unwrap_or_else(|_| EnvFilter::new(format!("pgmove={level},warn")));
    let ansi = std::io::stderr().is_terminal();
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(ansi)
        .with_target(false)
        .try_init();
}
