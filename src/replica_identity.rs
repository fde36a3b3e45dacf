//! Replica identities pgmove changed: under `cdc.tables_without_key: replica-identity-full`
//! copy-cdc sets REPLICA IDENTITY FULL on the source's keyless tables and records what each
//! had on the target (`crate::state::replica_identity`); the load gives the target's copies the recorded
//! identity and cleanup gives it back to the source. Below the strategies so both use it.

use crate::pg::quote;

/// The `REPLICA IDENTITY ...` clause that gives a table back the recorded identity
/// (`relreplident` d, n or i with its index); `None` for FULL (nothing to give back).
pub(crate) fn identity_clause(mode: &str, index: Option<&str>) -> Option<String> {
    match (mode, index) {
        ("n", _) => Some("NOTHING".to_string()),
        ("f", _) => None,
        ("i", Some(i)) => Some(format!("USING INDEX {}", quote::ident(i))),
        _ => Some("DEFAULT".to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_recorded_identity_is_given_back() {
        assert_eq!(identity_clause("d", None).as_deref(), Some("DEFAULT"));
        assert_eq!(identity_clause("n", None).as_deref(), Some("NOTHING"));
        assert_eq!(identity_clause("f", None), None);
        assert_eq!(
            identity_clause("i", Some("Orders_pkey")).as_deref(),
            Some("USING INDEX \"Orders_pkey\"")
        );
        // An identity by index whose index was not recorded: the default, never a bare USING.
        assert_eq!(identity_clause("i", None).as_deref(), Some("DEFAULT"));
    }
}
