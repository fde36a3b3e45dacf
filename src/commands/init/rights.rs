//! What the roles of the DSNs given to `pgmove init` lack for the plan it writes: the rights
//! checks of `pgmove plan` (reading the source's schemas and tables, row-level security,
//! publication and replication rights, the cutover fence, creating on the target, forced
//! row-level security on the target), run on
//! what init inspected, so that init says what to grant instead of leaving it to a later
//! failure. Only the checks of rights: the rest of preflight is for `pgmove plan`.

use crate::inspect::Inventory;
use crate::plan::Plan;
use crate::planner::Strategy;
use crate::preflight::{self, Context, Finding};
use crate::tools::ToolError;

/// The rights checks of preflight, in the order `pgmove plan` reports them.
const CHECKS: &[fn(&Context) -> Vec<Finding>] = &[
    preflight::source_rights,
    preflight::row_security,
    preflight::publication_ownership,
    preflight::fence_rights,
    preflight::target_rights,
    preflight::target_schemas,
    preflight::target_row_security,
    preflight::replication_role,
];

/// What the source's and the target's roles lack to run `plan` with `strategy` (the planner's
/// choice, `None` when it made none): findings with the fix, as `pgmove plan` gives them.
pub fn lacking(
    plan: &Plan,
    strategy: Option<Strategy>,
    source: &Inventory,
    target: &Inventory,
) -> Vec<Finding> {
    // None of these checks looks at the client tools.
    let unused = || ToolError::NotFound {
        name: "(not looked for by pgmove init)".to_string(),
        looked: String::new(),
        want: 0,
    };
    let ctx = Context {
        plan,
        source,
        target,
        strategy,
        pg_dump: Err(unused()),
        pg_restore: Err(unused()),
        replication_probe: None,
    };
    CHECKS.iter().flat_map(|check| check(&ctx)).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::inspect::{Schema, Table};
    use crate::pg::Side;
    use crate::planner::tests::{inventory, plan};

    #[test]
    fn a_role_that_cannot_read_or_create_is_told_what_to_grant() {
        let table = Table {
            oid: 1,
            schema: "app".to_string(),
            name: "items".to_string(),
            owner: "app".to_string(),
            has_select: false,
            ..Table::default()
        };
        let mut src = inventory(Side::Source, vec![table]);
        src.rights.superuser = false;
        src.schemas.push(Schema {
            name: "app".to_string(),
            owner: "app".to_string(),
            extension_owned: false,
            extension: None,
            usage: false,
            create: false,
        });
        let mut dst = inventory(Side::Target, vec![]);
        dst.rights.superuser = false;
        dst.rights.create_on_database = false;
        let found = lacking(&plan(""), Some(Strategy::DumpRestore), &src, &dst);
        let checks: Vec<&str> = found.iter().map(|f| f.check).collect();
        assert_eq!(
            checks,
            ["source-schema-usage", "source-select", "target-create"],
            "{found:#?}"
        );
        let fixes: Vec<&str> = found.iter().filter_map(|f| f.fix.as_deref()).collect();
        assert!(
            fixes[0].contains("GRANT USAGE ON SCHEMA \"app\" TO \"migrator\";"),
            "{fixes:?}"
        );
        assert!(
            fixes[1].contains("GRANT SELECT ON ALL TABLES IN SCHEMA \"app\" TO \"migrator\";"),
            "{fixes:?}"
        );
        assert!(
            fixes[2].contains("GRANT CREATE ON DATABASE \"shop\" TO \"migrator\";"),
            "{fixes:?}"
        );
    }
}
