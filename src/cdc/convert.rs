//! From pgoutput to the applier: message values and relations as the applier's, the source
//! transaction being received, and its changes turned into SQL items.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use super::apply::{self, Change, Rel, Val};
use super::pgoutput::{self, Value};
use super::{change_bytes, CdcError, CdcJob};
use crate::pg::Lsn;

/// A column value of the stream that cannot be applied.
#[derive(Debug, thiserror::Error)]
pub(super) enum ValueError {
    #[error("a value is not valid UTF-8")]
    NotUtf8,
    #[error("binary tuple data was not asked for")]
    Binary,
}

pub(super) fn val(v: &Value) -> Result<Val, ValueError> {
    Ok(match v {
        Value::Null => Val::Null,
        Value::Unchanged => Val::Unchanged,
        Value::Text(b) => {
            Val::Text(String::from_utf8(b.to_vec()).map_err(|_| ValueError::NotUtf8)?)
        }
        Value::Binary(_) => return Err(ValueError::Binary),
    })
}

pub(super) fn vals(vs: &[Value]) -> Result<Vec<Val>, ValueError> {
    vs.iter().map(val).collect()
}

fn rel_of(r: &pgoutput::Relation) -> Rel {
    Rel {
        schema: r.schema().to_string(),
        name: r.name.clone(),
        columns: r.columns.iter().map(|c| c.name.clone()).collect(),
        key: r.columns.iter().map(|c| c.is_key()).collect(),
        full: r.replica_identity == pgoutput::ReplicaIdentity::Full,
        types: r.columns.iter().map(|c| c.type_oid).collect(),
    }
}

/// A source transaction being received.
pub(super) struct Txn {
    /// Its commit LSN (Begin's `final_lsn`, the Commit's `commit_lsn`).
    pub(super) commit_lsn: Lsn,
    /// Applied before a restart: everything in it is skipped.
    pub(super) skip: bool,
    /// Changes not yet turned into SQL: all made with the relations as they are in the cache.
    pub(super) pending: Vec<(u32, Change)>,
    /// The transaction's changes and SQL so far, in stream order (changes and DDL).
    pub(super) sql: Vec<apply::Item>,
    /// Changes turned into SQL.
    pub(super) changes: u64,
    /// Bytes of `pending` and `sql` ([`change_bytes`]).
    pub(super) bytes: usize,
    /// Pieces of it were handed to the target: its target transaction is open, and the rest
    /// goes there too, the last piece with the progress row.
    pub(super) open: bool,
    /// It holds `ALTER TYPE ... ADD VALUE`: its target transaction commits right after it.
    pub(super) commit_after: bool,
    /// On a target before PostgreSQL 12: the `ADD VALUE` it holds (all it holds), run in
    /// autocommit ([`ddl::DdlAction::add_value_autocommit`]).
    pub(super) autocommit: Option<Vec<String>>,
}

impl Txn {
    /// A change received (made with the relations as they are in the cache).
    pub(super) fn push(&mut self, change: (u32, Change)) {
        self.bytes += change_bytes(&change.1);
        self.pending.push(change);
    }
}

/// The target's `GENERATED ALWAYS` identity columns: schema, table, column, a row each.
const ALWAYS_IDENTITY: &str = "SELECT n.nspname::text, c.relname::text, a.attname::text
  FROM pg_catalog.pg_attribute a
  JOIN pg_catalog.pg_class c ON c.oid = a.attrelid
  JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
 WHERE a.attidentity = 'a' AND NOT a.attisdropped AND a.attnum > 0";

/// `GENERATED ALWAYS` identity columns by (schema, table).
pub(super) type AlwaysIdentity = HashMap<(String, String), HashSet<String>>;

/// The target's [`ALWAYS_IDENTITY`] columns.
pub(super) async fn always_identity(job: &CdcJob) -> Result<AlwaysIdentity, CdcError> {
    let client = job.target.connect().await?;
    let rows = client.query(ALWAYS_IDENTITY, &[]).await.map_err(|e| {
        job.target
            .query_error("listing the target's GENERATED ALWAYS identity columns", &e)
    })?;
    let mut out = AlwaysIdentity::new();
    for r in rows {
        out.entry((r.get(0), r.get(1)))
            .or_default()
            .insert(r.get(2));
    }
    Ok(out)
}

/// An UPDATE may set a `GENERATED ALWAYS` identity column only to DEFAULT (the target refuses
/// "column ... can only be updated to DEFAULT"), and such a column changes on the source only
/// by `SET ... = DEFAULT`, which the target's own sequence cannot repeat: an update leaves
/// such a column (not part of the replica identity) as it is on the target, like a TOASTed
/// value that did not change. Cutover's verification reports a value that did change.
fn keep_always_identity(rel: &pgoutput::Relation, always: &AlwaysIdentity, change: &mut Change) {
    let Change::Update { new, .. } = change else {
        return;
    };
    let Some(cols) = always.get(&(rel.schema().to_string(), rel.name.clone())) else {
        return;
    };
    for (c, v) in rel.columns.iter().zip(new.iter_mut()) {
        if !c.is_key() && cols.contains(&c.name) {
            *v = Val::Unchanged;
        }
    }
}

/// Turns the transaction's pending changes into SQL with the relation cache as it is now
/// (call it before the cache changes, and before DDL SQL is appended).
pub(super) fn convert(
    job: &CdcJob,
    rels: &HashMap<u32, pgoutput::Relation>,
    always: &AlwaysIdentity,
    t: &mut Txn,
) -> Result<(), CdcError> {
    let pending = std::mem::take(&mut t.pending);
    if pending.is_empty() || t.skip {
        return Ok(());
    }
    let changes: Vec<Change> = pending
        .into_iter()
        .filter(|(oid, _)| {
            // Skip what the copy of a later snapshot already holds.
            let key = rels
                .get(oid)
                .map(|r| (r.schema().to_string(), r.name.clone()));
            match key.and_then(|k| job.table_lsns.get(&k)) {
                Some(snap) => t.commit_lsn >= *snap,
                None => true,
            }
        })
        .map(|(oid, mut ch)| {
            if let Some(r) = rels.get(&oid) {
                keep_always_identity(r, always, &mut ch);
            }
            ch
        })
        .collect();
    let n = changes.len() as u64;
    let lookup = |oid: u32| rels.get(&oid).map(|r| Arc::new(rel_of(r)));
    let items = apply::to_items(changes, &lookup).map_err(|e| CdcError::Apply {
        lsn: t.commit_lsn,
        message: e.to_string(),
    })?;
    t.changes += n;
    t.sql.extend(items);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn updates_leave_generated_always_identity_columns_that_are_not_the_key() {
        let col = |name: &str, key: bool| pgoutput::Column {
            flags: if key { pgoutput::COLUMN_KEY } else { 0 },
            name: name.into(),
            type_oid: 23,
            type_modifier: -1,
        };
        let rel = pgoutput::Relation {
            xid: None,
            oid: 7,
            namespace: "fx".into(),
            name: "tickets".into(),
            replica_identity: pgoutput::ReplicaIdentity::Default,
            columns: vec![col("code", true), col("n", false), col("v", false)],
        };
        let mut always = AlwaysIdentity::new();
        always.insert(
            ("fx".into(), "tickets".into()),
            ["n".to_string(), "code".to_string()].into_iter().collect(),
        );
        let text = |s: &str| Val::Text(s.into());
        let mut update = Change::Update {
            rel: 7,
            old: None,
            new: vec![text("t1"), text("1"), text("changed")],
        };
        keep_always_identity(&rel, &always, &mut update);
        // The key stays (it finds the row; set only when it changed), `n` is left alone.
        assert_eq!(
            update,
            Change::Update {
                rel: 7,
                old: None,
                new: vec![text("t1"), Val::Unchanged, text("changed")],
            }
        );
        // Inserts carry every value (OVERRIDING SYSTEM VALUE).
        let mut insert = Change::Insert {
            rel: 7,
            new: vec![text("t2"), text("2"), text("x")],
        };
        let before = insert.clone();
        keep_always_identity(&rel, &always, &mut insert);
        assert_eq!(insert, before);
    }
}
