//! Recording the keys change capture touches while cutover verifies ahead of its fence (see
//! `crate::cutover::ahead` for why that makes the verification inside the outage exact).
//!
//! While the plan has a pre-verification request (`crate::state::touched`) held by a live
//! cutover session, every target transaction the applier commits also records, in that same
//! transaction (so exactly once, with the changes), the replica-identity key of each row it
//! inserted, updated (old and new key) or deleted, deduplicated per transaction, with the
//! request's current re-check round, and acknowledges that round. A table
//! whose changes carry no key (`REPLICA IDENTITY FULL`) is recorded as wholly touched; DDL or
//! TRUNCATE (SQL items) as every table touched. Without a request, or with one whose cutover
//! session is gone (a killed cutover leaves its request row behind), nothing is added: the
//! cost is one `SELECT` on the target every [`CHECK_EVERY`], when a transaction begins.
//!
//! The request is read only when a target transaction begins, so a transaction records
//! either all its changes or none, and the acknowledgement comes with the first that records.

use std::collections::BTreeSet;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use super::applier::Batch;
use super::apply::{Change, Item, Rel, Val};
use super::CdcError;
use crate::pg::Endpoint;
use crate::state::touched::Touch;

/// How often the request is looked for.
pub(super) const CHECK_EVERY: Duration = Duration::from_millis(200);

/// Whether the plan's changes are being recorded, as last read from the target.
pub(super) struct Recorder {
    plan: String,
    active: AtomicBool,
    checked: Mutex<Option<Instant>>,
}

impl Recorder {
    pub(super) fn new(plan: &str) -> Recorder {
        Recorder {
            plan: plan.to_string(),
            active: AtomicBool::new(false),
            checked: Mutex::new(None),
        }
    }

    /// Called when a target transaction begins: reads the request when it was last read
    /// [`CHECK_EVERY`] ago or more (or never).
    pub(super) async fn refresh(
        &self,
        client: &tokio_postgres::Client,
        ep: &Endpoint,
    ) -> Result<(), CdcError> {
        let due = {
            let c = self.checked.lock().unwrap_or_else(|p| p.into_inner());
            c.is_none_or(|t| t.elapsed() >= CHECK_EVERY)
        };
        if !due {
            return Ok(());
        }
        let on = crate::state::touched::active(client, ep, &self.plan)
            .await
            .map_err(CdcError::from)?;
        self.active.store(on, Ordering::SeqCst);
        *self.checked.lock().unwrap_or_else(|p| p.into_inner()) = Some(Instant::now());
        Ok(())
    }

    /// The statements recording the batch's touches, or nothing when not recording.
    pub(super) fn sql(&self, b: &Batch) -> String {
        if !self.active.load(Ordering::SeqCst) {
            return String::new();
        }
        let mut t = touches(&b.items);
        if b.autocommit.is_some() {
            t.insert(everything());
        }
        let t: Vec<Touch> = t.into_iter().collect();
        crate::state::touched::record_sql(&self.plan, &t)
    }
}

/// Every table touched.
fn everything() -> Touch {
    Touch {
        schema: String::new(),
        table: String::new(),
        key_columns: Vec::new(),
        key: Vec::new(),
    }
}

/// The table wholly touched.
fn whole(rel: &Rel) -> Touch {
    Touch {
        schema: rel.schema.clone(),
        table: rel.name.clone(),
        key_columns: Vec::new(),
        key: Vec::new(),
    }
}

/// The key of `vals` (a whole row or an old key tuple) under `rel`'s replica identity, or the
/// whole table when it has none usable.
fn key_touch(rel: &Rel, vals: &[Val]) -> Touch {
    if rel.full || vals.len() != rel.columns.len() {
        return whole(rel);
    }
    let mut cols = Vec::new();
    let mut key = Vec::new();
    for ((c, is_key), v) in rel.columns.iter().zip(&rel.key).zip(vals) {
        if !*is_key {
            continue;
        }
        match v {
            Val::Text(t) => {
                cols.push(c.clone());
                key.push(t.clone());
            }
            // A key column NULL or not sent: no key to record.
            _ => return whole(rel),
        }
    }
    if key.is_empty() {
        return whole(rel);
    }
    Touch {
        schema: rel.schema.clone(),
        table: rel.name.clone(),
        key_columns: cols,
        key,
    }
}

/// What `items` touch, deduplicated.
pub(super) fn touches(items: &[Item]) -> BTreeSet<Touch> {
    let mut out = BTreeSet::new();
    for item in items {
        match item {
            Item::Sql(_) => {
                out.insert(everything());
            }
            Item::Row(rel, c) => match c {
                Change::Insert { new, .. } => {
                    out.insert(key_touch(rel, new));
                }
                Change::Update { old, new, .. } => {
                    if let Some(old) = old {
                        out.insert(key_touch(rel, old));
                    }
                    out.insert(key_touch(rel, new));
                }
                Change::Delete { old, .. } => {
                    out.insert(key_touch(rel, old));
                }
                Change::Truncate { .. } => {
                    out.insert(everything());
                }
            },
        }
    }
    // A wholly touched table needs none of its keys.
    let wholes: BTreeSet<(String, String)> = out
        .iter()
        .filter(|t| t.key.is_empty())
        .map(|t| (t.schema.clone(), t.table.clone()))
        .collect();
    if wholes.contains(&(String::new(), String::new())) {
        return BTreeSet::from([everything()]);
    }
    out.retain(|t| t.key.is_empty() || !wholes.contains(&(t.schema.clone(), t.table.clone())));
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    fn rel(name: &str, full: bool) -> Arc<Rel> {
        Arc::new(Rel {
            schema: "public".into(),
            name: name.into(),
            columns: vec!["id".into(), "v".into()],
            key: vec![true, false],
            full,
            types: vec![],
        })
    }
    fn t(s: &str) -> Val {
        Val::Text(s.into())
    }

    #[test]
    fn keys_are_recorded_old_and_new_and_deduplicated() {
        let a = rel("a", false);
        let items = vec![
            Item::Row(
                a.clone(),
                Change::Insert {
                    rel: 1,
                    new: vec![t("1"), t("x")],
                },
            ),
            Item::Row(
                a.clone(),
                Change::Insert {
                    rel: 1,
                    new: vec![t("1"), t("y")],
                },
            ),
            Item::Row(
                a.clone(),
                Change::Update {
                    rel: 1,
                    old: Some(vec![t("2"), Val::Null]),
                    new: vec![t("3"), t("z")],
                },
            ),
            Item::Row(
                a.clone(),
                Change::Delete {
                    rel: 1,
                    old: vec![t("4"), Val::Null],
                },
            ),
        ];
        let keys: Vec<Vec<String>> = touches(&items).into_iter().map(|x| x.key).collect();
        assert_eq!(keys, vec![vec!["1"], vec!["2"], vec!["3"], vec!["4"]]);
        assert!(touches(&items).iter().all(|x| x.key_columns == vec!["id"]));
    }

    #[test]
    fn full_identity_is_the_whole_table_and_sql_is_everything() {
        let f = rel("f", true);
        let a = rel("a", false);
        let items = vec![
            Item::Row(
                f.clone(),
                Change::Delete {
                    rel: 2,
                    old: vec![t("1"), t("x")],
                },
            ),
            Item::Row(
                f.clone(),
                Change::Insert {
                    rel: 2,
                    new: vec![t("2"), t("x")],
                },
            ),
            Item::Row(
                a.clone(),
                Change::Insert {
                    rel: 1,
                    new: vec![t("1"), t("x")],
                },
            ),
        ];
        let got: Vec<Touch> = touches(&items).into_iter().collect();
        assert_eq!(got.len(), 2, "{got:?}");
        assert!(got.contains(&whole(&f)));
        let mut with_ddl = items.clone();
        with_ddl.push(Item::Sql("ALTER TABLE a ADD c int".into()));
        assert_eq!(
            touches(&with_ddl).into_iter().collect::<Vec<_>>(),
            vec![everything()]
        );
    }
}
