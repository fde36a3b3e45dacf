//! Test hook for real-server tests that need a race made deterministic.
//!
//! With `PGMOVE_TEST_PAUSE=<point>` in the environment, the process says so on stderr
//! (`pgmove: test pause at <point>`) when it reaches that point and waits there: until the
//! file named by `PGMOVE_TEST_RESUME_FILE` exists when that variable is set (so a test can act
//! during the pause and let the process go on), forever otherwise (for a test to kill it
//! there). A no-op without `PGMOVE_TEST_PAUSE`, or at any other point.
//!
//! `PGMOVE_TEST_FORCE=<path>` makes [`forced`] true for that code path, so a test can run a
//! path the servers at hand would not take (such as the one for targets older than
//! PostgreSQL 12).

use std::time::Duration;

/// Pauses at `point` when the environment asks for it (see the module documentation).
pub async fn pause(point: &str) {
    if !std::env::var("PGMOVE_TEST_PAUSE").is_ok_and(|p| p == point) {
        return;
    }
    eprintln!("pgmove: test pause at {point}");
    let resume = std::env::var_os("PGMOVE_TEST_RESUME_FILE");
    loop {
        match &resume {
            Some(file) if std::path::Path::new(file).exists() => {
                eprintln!("pgmove: test pause at {point} released");
                return;
            }
            Some(_) => tokio::time::sleep(Duration::from_millis(50)).await,
            None => tokio::time::sleep(Duration::from_secs(3600)).await,
        }
    }
}

/// Whether the environment forces code path `path` (see the module documentation).
pub fn forced(path: &str) -> bool {
    std::env::var("PGMOVE_TEST_FORCE").is_ok_and(|p| p == path)
}
