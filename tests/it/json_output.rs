//! `--format json` of every command and `--log-format json` against real servers: each
//! command's JSON parses and carries `schema_version`; a blocked apply prints the plan report
//! with its blockers on stdout (exit 2); with `--log-format json` every stderr line is a JSON
//! object and stdout holds only the report.

use crate::support;

use std::process::Output;

use serde_json::Value;
use support::online::{pgmove, text, PlanYaml};
use support::Profile;

/// The database of this module's plans, on both shared clusters.
const DB: &str = "json_output";

/// stdout as the one JSON document it must be.
fn json(out: &Output) -> Value {
    serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("stdout is not one JSON document ({e}): {}", text(out)))
}

/// The document says which version of the layout it follows.
fn assert_versioned(v: &Value, what: &str) {
    assert_eq!(v["schema_version"], 1, "{what}: {v:#}");
}

/// Every stderr line is a JSON object with a timestamp and a level; returns them.
fn json_log(out: &Output) -> Vec<Value> {
    let stderr = String::from_utf8_lossy(&out.stderr);
    let lines: Vec<Value> = stderr
        .lines()
        .map(|l| {
            serde_json::from_str::<Value>(l)
                .unwrap_or_else(|e| panic!("stderr line is not JSON ({e}): {l}\n{}", text(out)))
        })
        .collect();
    assert!(!lines.is_empty(), "no log: {}", text(out));
    for l in &lines {
        assert!(l["timestamp"].is_string(), "{l}");
        assert!(l["level"].is_string(), "{l}");
        assert!(l["message"].is_string(), "{l}");
    }
    lines
}

#[test]
fn every_command_prints_versioned_json_and_logs_json_lines() {
    let src = support::shared(Profile::Logical);
    let dst = support::shared(Profile::Plain);
    src.create_db(DB);
    dst.create_db(DB);
    src.psql(
        DB,
        "CREATE TABLE items (id int PRIMARY KEY, v text);
         INSERT INTO items SELECT g, 'v' || g FROM generate_series(1, 50) g;
         CREATE TABLE log_lines (at timestamptz DEFAULT now(), line text);
         INSERT INTO log_lines (line) SELECT 'l' || g FROM generate_series(1, 5) g;",
    );
    let dir = tempfile::tempdir().expect("tempdir");
    let yaml = |name: &str, strategy: &'static str| {
        let p = PlanYaml {
            strategy: Some(strategy),
            db: DB,
            ..PlanYaml::default()
        }
        .write(dir.path(), name, src, dst);
        p.to_str().expect("utf8").to_string()
    };

    // copy-cdc with a table without a key and no choice for it: apply is blocked.
    let blocked = yaml("json_blocked", "copy-cdc");
    let out = pgmove(&["apply", &blocked, "--yes", "--format", "json"], src, dst)
        .output()
        .expect("apply");
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    let r = json(&out);
    assert_versioned(&r, "blocked apply");
    assert_eq!(r["ready"], false, "{r:#}");
    let blocker = r["findings"]
        .as_array()
        .expect("findings")
        .iter()
        .find(|f| f["check"] == "tables-without-key")
        .unwrap_or_else(|| panic!("no tables-without-key finding: {r:#}"));
    assert_eq!(blocker["severity"], "blocker");
    assert_eq!(blocker["object"], "public.log_lines");
    // The same with the log as JSON lines: the blockers are error events, stdout is empty.
    let out = pgmove(
        &["apply", &blocked, "--yes", "--log-format", "json"],
        src,
        dst,
    )
    .output()
    .expect("apply");
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert!(out.stdout.is_empty(), "{}", text(&out));
    let log = json_log(&out);
    assert!(
        log.iter()
            .any(|l| l["level"] == "ERROR" && l["check"] == "tables-without-key"),
        "{}",
        text(&out)
    );

    // An argument error, with the log as JSON lines: one ERROR event, exit 2.
    let out = pgmove(
        &["plan", &blocked, "--log-format", "json", "--bogus"],
        src,
        dst,
    )
    .output()
    .expect("plan");
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    let log = json_log(&out);
    assert_eq!(log.len(), 1, "{}", text(&out));
    assert_eq!(log[0]["level"], "ERROR", "{}", text(&out));
    assert!(
        log[0]["message"]
            .as_str()
            .is_some_and(|m| m.contains("--bogus")),
        "{}",
        text(&out)
    );

    // dump-restore: every command of a move, in JSON.
    let plan = yaml("json_move", "dump-restore");
    let run = |args: &[&str]| {
        let mut a = args.to_vec();
        a.insert(1, &plan);
        a.extend(["--format", "json"]);
        pgmove(&a, src, dst).output().expect("pgmove")
    };
    let out = run(&["plan"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let r = json(&out);
    assert_versioned(&r, "plan");
    assert_eq!(r["ready"], true, "{r:#}");

    let out = run(&["apply", "--yes", "--log-format", "json"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let r = json(&out);
    assert_versioned(&r, "apply");
    assert_eq!(r["strategy"], "dump-restore", "{r:#}");
    let log = json_log(&out);
    assert!(
        log.iter().any(|l| l["message"] == "step started"),
        "{}",
        text(&out)
    );

    for (cmd, code) in [
        (vec!["apply", "--dry-run"], 0),
        (vec!["status"], 0),
        (vec!["verify"], 0),
        (vec!["cleanup", "--dry-run"], 0),
        (vec!["cleanup"], 0),
    ] {
        let out = run(&cmd);
        assert_eq!(out.status.code(), Some(code), "{cmd:?}: {}", text(&out));
        let r = json(&out);
        assert_versioned(&r, &cmd.join(" "));
        if cmd == ["status"] {
            assert_eq!(r["verdict"], "fine", "{r:#}");
        }
        if cmd == ["verify"] {
            assert_eq!(r["identical"], true, "{r:#}");
        }
    }
}

/// `status`'s verdict in JSON, and a slot dropped on the source while change capture needs
/// it: the slot is lost (exit 4), said in `slot.lost` with the way out.
#[test]
fn status_says_its_verdict_and_a_dropped_slot_is_lost() {
    const SLOT_DB: &str = "json_output_slot";
    let src = support::shared(Profile::Logical);
    let dst = support::shared(Profile::Plain);
    src.create_db(SLOT_DB);
    dst.create_db(SLOT_DB);
    src.psql(
        SLOT_DB,
        "CREATE TABLE items (id int PRIMARY KEY, v text);
         INSERT INTO items SELECT g, 'v' || g FROM generate_series(1, 50) g;",
    );
    let dir = tempfile::tempdir().expect("tempdir");
    let plan = PlanYaml {
        db: SLOT_DB,
        ..PlanYaml::default()
    }
    .write(dir.path(), "json_slot", src, dst);
    let plan = plan.to_str().expect("utf8");
    let run = |args: &[&str]| pgmove(args, src, dst).output().expect("pgmove");

    let out = run(&[
        "apply",
        plan,
        "--yes",
        "--exit-when-caught-up",
        "--format",
        "json",
    ]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert_versioned(&json(&out), "copy-cdc apply");

    let out = run(&["status", plan, "--format", "json"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let r = json(&out);
    assert_versioned(&r, "status");
    assert_eq!(r["verdict"], "fine", "{r:#}");
    assert_eq!(r["phase"], "replicating", "{r:#}");
    let slot = r["slot"]["name"].as_str().expect("slot name").to_string();

    // The pre-cutover report, in JSON (0: cutover could proceed, 2: a blocker).
    let out = run(&["cutover", plan, "--dry-run", "--format", "json"]);
    assert!(matches!(out.status.code(), Some(0 | 2)), "{}", text(&out));
    let r = json(&out);
    assert_versioned(&r, "cutover --dry-run");
    assert!(r["ready"].is_boolean(), "{r:#}");
    assert!(r["steps"].is_array(), "{r:#}");

    // Someone drops the slot on the source.
    src.psql(
        SLOT_DB,
        &format!("SELECT pg_drop_replication_slot('{slot}')"),
    );
    let out = run(&["status", plan, "--format", "json"]);
    assert_eq!(out.status.code(), Some(4), "{}", text(&out));
    let r = json(&out);
    assert_eq!(r["verdict"], "slot-lost", "{r:#}");
    let lost = r["slot"]["lost"].as_str().expect("slot.lost");
    assert!(lost.contains("no longer exists on the source"), "{lost}");
    assert!(lost.contains(&format!("pgmove cleanup {plan}")), "{lost}");
    let out = run(&["status", plan]);
    assert_eq!(out.status.code(), Some(4), "{}", text(&out));
    assert!(
        text(&out).contains("no longer exists on the source"),
        "{}",
        text(&out)
    );

    // Cleanup drops the rest (publication, DDL capture, the plan's state).
    let out = run(&["cleanup", plan, "--format", "json"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert_versioned(&json(&out), "cleanup");
    let out = run(&["status", plan, "--format", "json"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert_eq!(json(&out)["verdict"], "fine");
}
