//! The statements that change pglogical's objects, as SQL text with every argument inlined as
//! a quoted literal (so `apply --dry-run` prints exactly what runs). Each ends with `;`.
//! A DSN argument is passed as text already rendered: the caller decides whether it holds the
//! password (the statement run) or `********` (the statement shown).

use crate::pg::quote;

/// `CREATE EXTENSION IF NOT EXISTS pglogical` (in its own schema, `pglogical`).
pub const CREATE_EXTENSION: &str = "CREATE EXTENSION IF NOT EXISTS pglogical;";

/// The set flags of the paired sets (insert, update, delete, truncate): `NAME` replicates
/// updates and deletes, `iNAME` inserts and truncates, so a table without a key sits in
/// `iNAME` only and its updates and deletes still run on the source (pglogical refuses a
/// keyless table in a set that replicates them, and the source would then refuse them).
pub const UPDATE_SET_FLAGS: [bool; 4] = [false, true, true, false];
pub const INSERT_SET_FLAGS: [bool; 4] = [true, false, false, true];

/// `pglogical.create_node(name, dsn)`: this database's local node.
pub fn create_node(name: &str, dsn: &str) -> String {
    format!(
        "SELECT pglogical.create_node(node_name := {}, dsn := {});",
        quote::literal(name),
        quote::literal(dsn)
    )
}

/// `pglogical.drop_node(name, ifexists := true)`.
pub fn drop_node(name: &str) -> String {
    format!(
        "SELECT pglogical.drop_node(node_name := {}, ifexists := true);",
        quote::literal(name)
    )
}

/// `pglogical.create_replication_set(name, insert, update, delete, truncate)`.
pub fn create_set(name: &str, flags: [bool; 4]) -> String {
    let [insert, update, delete, truncate] = flags;
    format!(
        "SELECT pglogical.create_replication_set(set_name := {}, replicate_insert := {insert}, replicate_update := {update}, replicate_delete := {delete}, replicate_truncate := {truncate});",
        quote::literal(name)
    )
}

/// `pglogical.drop_replication_set(name, ifexists := true)`.
pub fn drop_set(name: &str) -> String {
    format!(
        "SELECT pglogical.drop_replication_set(set_name := {}, ifexists := true);",
        quote::literal(name)
    )
}

/// Adds table `schema.table` to set `set` (its rows are copied by the subscription's sync,
/// not by this call: `synchronize_data := false`).
pub fn add_table(set: &str, schema: &str, table: &str) -> String {
    format!(
        "SELECT pglogical.replication_set_add_table(set_name := {}, relation := {}::regclass, synchronize_data := false);",
        quote::literal(set),
        quote::literal(&quote::qualified(schema, table))
    )
}

/// Adds sequence `schema.name` to set `set` (pglogical then synchronizes its value).
pub fn add_sequence(set: &str, schema: &str, name: &str) -> String {
    format!(
        "SELECT pglogical.replication_set_add_sequence(set_name := {}, relation := {}::regclass, synchronize_data := false);",
        quote::literal(set),
        quote::literal(&quote::qualified(schema, name))
    )
}

/// `pglogical.create_subscription`: from the provider at `provider_dsn`, sets `sets`, the
/// structure left to pgmove (`synchronize_structure := false`), the rows copied by pglogical
/// (`synchronize_data := true`), and only the source's own changes (`forward_origins := '{}'`).
pub fn create_subscription(name: &str, provider_dsn: &str, sets: &[String]) -> String {
    let sets: Vec<String> = sets.iter().map(|s| quote::literal(s)).collect();
    format!(
        "SELECT pglogical.create_subscription(subscription_name := {}, provider_dsn := {}, replication_sets := ARRAY[{}]::text[], synchronize_structure := false, synchronize_data := true, forward_origins := '{{}}');",
        quote::literal(name),
        quote::literal(provider_dsn),
        sets.join(", ")
    )
}

/// `pglogical.alter_subscription_disable(name, immediate := true)`.
pub fn disable_subscription(name: &str) -> String {
    format!(
        "SELECT pglogical.alter_subscription_disable(subscription_name := {}, immediate := true);",
        quote::literal(name)
    )
}

/// `pglogical.drop_subscription(name, ifexists := true)` (its slot on the provider goes too,
/// when the provider is reachable).
pub fn drop_subscription(name: &str) -> String {
    format!(
        "SELECT pglogical.drop_subscription(subscription_name := {}, ifexists := true);",
        quote::literal(name)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statements_quote_their_arguments() {
        assert_eq!(
            add_table("s'1", "Sales", "o\"rders"),
            r#"SELECT pglogical.replication_set_add_table(set_name := 's''1', relation := '"Sales"."o""rders"'::regclass, synchronize_data := false);"#
        );
        assert_eq!(
            create_set("ipgmove_x", INSERT_SET_FLAGS),
            "SELECT pglogical.create_replication_set(set_name := 'ipgmove_x', replicate_insert := true, replicate_update := false, replicate_delete := false, replicate_truncate := true);"
        );
        let sub = create_subscription(
            "pgmove_x",
            "host='h' password='********'",
            &["a".into(), "ia".into()],
        );
        assert!(
            sub.contains("provider_dsn := 'host=''h'' password=''********'''"),
            "{sub}"
        );
        assert!(
            sub.contains("replication_sets := ARRAY['a', 'ia']::text[]"),
            "{sub}"
        );
        assert!(sub.contains("forward_origins := '{}'"), "{sub}");
    }
}
