//! Which set each selected table and sequence goes in (the recipe of the paired sets): a table
//! with a primary key or replica-identity index in both `NAME` (updates, deletes) and `iNAME`
//! (inserts, truncates); a table without one by `cdc.tables_without_key` (`insert-only`:
//! `iNAME` only, so its updates and deletes still run on the source and are not replicated;
//! `exclude`: neither set, so pglogical neither copies nor replicates it); sequences in `NAME`.
//! Partitioned tables replicate through their leaves (a parent holds no rows: adding it too
//! would send each row twice). Unlogged and foreign tables are never members: their changes
//! are not in the WAL, and pglogical refuses unlogged tables.

use crate::inspect::{Inventory, RelName, Table};
use crate::plan::{Objects, TablesWithoutKey};

/// Where the selected relations go.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Members {
    /// Tables in both sets.
    pub both: Vec<RelName>,
    /// Tables without a key in `iNAME` only (`insert-only`).
    pub insert_only: Vec<RelName>,
    /// Tables without a key in neither set (`exclude`): schema only on the target.
    pub excluded: Vec<RelName>,
    /// Tables pglogical cannot carry (unlogged, foreign): schema only on the target.
    pub not_replicable: Vec<RelName>,
    /// Sequences, in `NAME`.
    pub sequences: Vec<RelName>,
}

/// Why a table without a key cannot be placed.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum MembersError {
    #[error("{} table(s) have neither a primary key nor a replica-identity index ({}), and cdc.tables_without_key is {policy}, which strategy pglogical cannot carry out.\n  hint: add a primary key to each, or set cdc.tables_without_key to insert-only (such tables go to the insert set only: their updates and deletes are not replicated) or exclude (schema only)", tables.len(), tables.join(", "))]
    Keyless {
        tables: Vec<String>,
        policy: TablesWithoutKey,
    },
}

impl Members {
    /// Every table in a set (both, then insert-only), for the sync's count.
    pub fn tables(&self) -> impl Iterator<Item = &RelName> {
        self.both.iter().chain(self.insert_only.iter())
    }
}

/// The members for the source's inventory `inv` under the plan's `objects` and
/// `tables_without_key`.
pub fn members(
    inv: &Inventory,
    objects: &Objects,
    policy: TablesWithoutKey,
) -> Result<Members, MembersError> {
    let tables: Vec<&Table> = inv
        .user_tables()
        .filter(|t| objects.includes(&t.schema, &t.name))
        .collect();
    let mut m = place(&tables, policy)?;
    m.sequences = inv
        .sequences
        .iter()
        .filter(|s| s.extension.is_none() && objects.includes(&s.schema, &s.name))
        .map(|s| RelName::new(&s.schema, &s.name))
        .collect();
    Ok(m)
}

/// Places `tables` (already selected) by their key status.
pub fn place(tables: &[&Table], policy: TablesWithoutKey) -> Result<Members, MembersError> {
    let mut m = Members::default();
    let mut refused = Vec::new();
    for t in tables.iter().filter(|t| t.holds_rows() || t.foreign) {
        let name = t.rel_name();
        if t.foreign || t.unlogged {
            m.not_replicable.push(name);
        } else if t.has_replica_identity_index() {
            m.both.push(name);
        } else {
            match policy {
                TablesWithoutKey::InsertOnly => m.insert_only.push(name),
                TablesWithoutKey::Exclude => m.excluded.push(name),
                TablesWithoutKey::Refuse | TablesWithoutKey::ReplicaIdentityFull => {
                    refused.push(t.display_name())
                }
            }
        }
    }
    if !refused.is_empty() {
        return Err(MembersError::Keyless {
            tables: refused,
            policy,
        });
    }
    Ok(m)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::inspect::{ReplicaIdentity, TableKind};

    fn table(name: &str, kind: TableKind, key: bool) -> Table {
        Table {
            schema: "public".into(),
            name: name.into(),
            kind,
            primary_key: if key { vec!["id".into()] } else { Vec::new() },
            replica_identity: ReplicaIdentity::Default,
            ..Table::default()
        }
    }

    #[test]
    fn tables_go_to_the_sets_their_key_says() {
        let keyed = table("keyed", TableKind::Plain, true);
        let keyless = table("keyless", TableKind::Plain, false);
        let parent = table("parent", TableKind::PartitionedParent, true);
        let leaf = table("leaf", TableKind::Partition, true);
        let unlogged = Table {
            unlogged: true,
            ..table("scratch", TableKind::Plain, true)
        };
        let full = Table {
            replica_identity: ReplicaIdentity::Full,
            ..table("full", TableKind::Plain, false)
        };
        let all = [&keyed, &keyless, &parent, &leaf, &unlogged, &full];
        let names = |v: &[RelName]| v.iter().map(|r| r.name.clone()).collect::<Vec<_>>();

        let m = place(&all, TablesWithoutKey::InsertOnly).expect("placed");
        assert_eq!(names(&m.both), ["keyed", "leaf"]);
        assert_eq!(names(&m.insert_only), ["keyless", "full"]);
        assert_eq!(names(&m.not_replicable), ["scratch"]);
        assert!(m.excluded.is_empty());

        let m = place(&all, TablesWithoutKey::Exclude).expect("placed");
        assert_eq!(names(&m.excluded), ["keyless", "full"]);
        assert!(m.insert_only.is_empty());

        for policy in [
            TablesWithoutKey::Refuse,
            TablesWithoutKey::ReplicaIdentityFull,
        ] {
            let e = place(&all, policy).expect_err("refused");
            let text = e.to_string();
            assert!(text.contains("public.keyless, public.full"), "{text}");
            assert!(text.contains("insert-only"), "{text}");
        }
        // Without keyless tables, every policy places the rest.
        let m = place(&[&keyed, &leaf], TablesWithoutKey::Refuse).expect("placed");
        assert_eq!(names(&m.both), ["keyed", "leaf"]);
    }
}
