//! `pgmove status` of a run of strategy pglogical, on servers of its own: the subscription's
//! state, each table's sync state, the slot's lag in bytes and seconds and the WAL it
//! retains; a subscription that stops applying is a failed migration (exit 5) with the fix,
//! and once it applies again status is fine.

use crate::support;

use std::time::{Duration, Instant};

use crate::pglogical_cutover::{applied, Pair};
use support::online::{pgmove, text, DB};

fn status_json(p: &Pair) -> (Option<i32>, serde_json::Value, String) {
    let f = p.plan.to_str().expect("utf8");
    let out = pgmove(&["status", f, "--format", "json"], &p.src, &p.dst)
        .output()
        .expect("status");
    let j = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("{e}: {}", text(&out)));
    (out.status.code(), j, text(&out))
}

#[test]
fn status_shows_the_subscription_its_tables_and_the_slot_lag() {
    let p = applied();
    let f = p.plan.to_str().expect("utf8");
    let sub = &p.names.subscription;
    p.src.psql(
        DB,
        "INSERT INTO orders (account, note) SELECT 1, 'more' FROM generate_series(1, 500)",
    );

    // Replicating: every table synced, the lag of the subscription's slot.
    let (code, j, all) = status_json(&p);
    assert_eq!(code, Some(0), "{all}");
    assert_eq!(j["strategy"], "pglogical", "{j}");
    assert_eq!(j["pglogical"]["subscription"], sub.as_str(), "{j}");
    assert_eq!(j["pglogical"]["state"], "replicating", "{j}");
    assert_eq!(j["pglogical"]["tables_synced"], 2, "{j}");
    let tables: Vec<String> = j["pglogical"]["tables"]
        .as_array()
        .expect("tables")
        .iter()
        .map(|t| format!("{}.{}={}", t["schema"], t["table"], t["state"]).replace('"', ""))
        .collect();
    assert_eq!(
        tables,
        ["public.accounts=replicating", "public.orders=replicating"]
    );
    let slot = &j["slot"];
    let slot_name = p.src.psql(
        DB,
        "SELECT slot_name FROM pg_replication_slots WHERE plugin = 'pglogical_output'",
    );
    assert_eq!(slot["name"], slot_name.as_str(), "{j}");
    assert_eq!(j["pglogical"]["slot_name"], slot_name.as_str(), "{j}");
    assert!(slot["lag_bytes"].is_u64(), "{j}");
    assert!(slot["lag_seconds"].is_f64(), "{j}");
    assert!(
        slot["retained_wal_bytes"].as_u64().is_some_and(|b| b > 0),
        "{j}"
    );
    assert!(slot["confirmed_flush_lsn"].is_string(), "{j}");
    let out = pgmove(&["status", f], &p.src, &p.dst)
        .output()
        .expect("status");
    let t = String::from_utf8_lossy(&out.stdout);
    assert!(
        t.contains(&format!(
            "subscription {sub}: replicating (provider node {}",
            p.names.provider_node
        )),
        "{t}"
    );
    assert!(t.contains("tables: 2 of 2 synced"), "{t}");
    assert!(
        t.contains(&format!("slot {slot_name} (active): source at ")) && t.contains("retains "),
        "{t}"
    );

    // The subscription stops applying while the source writes: failed (exit 5), with the
    // fix, and the lag in bytes grows.
    p.dst.psql(
        DB,
        &format!("SELECT pglogical.alter_subscription_disable('{sub}', true)"),
    );
    p.src.psql(
        DB,
        "INSERT INTO orders (account, note) SELECT 2, 'behind' FROM generate_series(1, 2000)",
    );
    let (code, j, all) = status_json(&p);
    assert_eq!(code, Some(5), "{all}");
    assert_eq!(j["pglogical"]["state"], "disabled", "{j}");
    assert!(
        j["slot"]["lag_bytes"].as_u64().is_some_and(|b| b > 10_000),
        "{j}"
    );
    assert!(
        all.contains(&format!("pglogical subscription {sub} is disabled")),
        "{all}"
    );
    assert!(
        all.contains(&format!(
            "pglogical.alter_subscription_enable('{sub}', true)"
        )),
        "{all}"
    );

    // Enabled again: it catches up and status is fine.
    p.dst.psql(
        DB,
        &format!("SELECT pglogical.alter_subscription_enable('{sub}', true)"),
    );
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let (code, j, all) = status_json(&p);
        if code == Some(0)
            && j["pglogical"]["state"] == "replicating"
            && p.dst.psql(DB, "SELECT count(*) FROM orders") == "4500"
        {
            break;
        }
        assert!(Instant::now() < deadline, "did not catch up: {all}");
        std::thread::sleep(Duration::from_millis(200));
    }
}
