//! What pgmove prints about itself: `pgmove schema` is the committed docs/plan.schema.json.
//! No server.

use std::process::Command;

/// `pgmove ARGS`, which must succeed; its stdout.
fn pgmove(args: &[&str]) -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_pgmove"))
        .args(args)
        .env("NO_COLOR", "1")
        .output()
        .expect("run pgmove");
    assert!(
        out.status.success(),
        "pgmove {args:?}: exit {:?}\n{}",
        out.status.code(),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).expect("UTF-8 output")
}

#[test]
fn schema_prints_the_committed_schema() {
    let committed =
        std::fs::read_to_string("docs/plan.schema.json").expect("docs/plan.schema.json");
    assert_eq!(
        pgmove(&["schema"]),
        committed,
        "pgmove schema != docs/plan.schema.json"
    );
    // a document, not a report: the same whatever --format says
    assert_eq!(pgmove(&["schema", "--format", "markdown"]), committed);
}
