//! What a move into a newer major cannot carry as it is: column types the target's major no
//! longer has, and DDL capture from a source whose pgoutput does not pass logical decoding
//! messages.

use super::{list, Context, Finding, Severity};
use crate::pg::Side;
use crate::planner;

/// Built-in types PostgreSQL 12 removed, with the type to change such a column to first.
const REMOVED_IN_12: &[(&str, &str)] = &[
    ("abstime", "timestamptz"),
    ("reltime", "interval"),
    ("tinterval", "tstzrange"),
];

/// The first `server_version_num` without the types of [`REMOVED_IN_12`].
const WITHOUT_ABSTIME: i32 = 120_000;

/// Columns (of the selected tables; arrays and domains looked through) of a type the target's
/// major no longer has: every strategy would fail creating the table there. A blocker naming
/// each column, with the `ALTER TABLE` that changes its type on the source first.
pub fn removed_types(ctx: &Context) -> Vec<Finding> {
    if ctx.strategy.is_none()
        || ctx.source.server.version_num >= WITHOUT_ABSTIME
        || ctx.target.server.version_num < WITHOUT_ABSTIME
    {
        return vec![];
    }
    let mut columns = Vec::new();
    let mut fixes = Vec::new();
    for t in planner::selected_tables(ctx.plan, ctx.source) {
        for c in &t.columns {
            let base = c.base_type.as_str();
            if let Some((_, to)) = REMOVED_IN_12.iter().find(|(old, _)| *old == base) {
                columns.push(format!("{}.{}.{} ({base})", t.schema, t.name, c.name));
                let to = if c.flags.is_array {
                    format!("{to}[]")
                } else {
                    to.to_string()
                };
                fixes.push(format!(
                    "ALTER TABLE {} ALTER COLUMN {} TYPE {to};",
                    crate::pg::quote::qualified(&t.schema, &t.name),
                    crate::pg::quote::ident(&c.name)
                ));
            }
        }
    }
    if columns.is_empty() {
        return vec![];
    }
    vec![Finding::new(
        Severity::Blocker,
        "removed-types",
        Some(Side::Source),
        format!(
            "{} column(s) of a type PostgreSQL 12 removed (abstime, reltime, tinterval): {}; the target runs PostgreSQL {}, which cannot create them",
            columns.len(),
            list(&columns),
            ctx.target.settings.server_version
        ),
    )
    .object(list(&columns))
    .fix(format!(
        "change their types on the source before the move (a tinterval as a range of its two ends): {}",
        fixes.join(" ")
    ))]
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::planner::tests::{plan, source, target};

    /// copy-cdc's preflight run of `check` against the planner's test target: the
    /// preflight tests' own runner.
    fn run(
        check: fn(&Context) -> Vec<Finding>,
        plan: &crate::plan::Plan,
        s: &crate::inspect::Inventory,
    ) -> Vec<Finding> {
        crate::preflight::tests::run(check, plan, planner::Strategy::CopyCdc, s, &target())
    }

    #[test]
    fn a_column_of_a_type_removed_in_12_blocks_a_move_into_12_or_newer_with_the_alter() {
        let p = plan("");
        let mut s = source();
        s.server.version_num = 110_022;
        let t = s.tables.first_mut().expect("a table");
        let (schema, name) = (t.schema.clone(), t.name.clone());
        t.columns.push(crate::inspect::Column {
            name: "Seen".to_string(),
            position: 9,
            type_name: "abstime[]".to_string(),
            type_oid: 1023,
            base_type: "abstime".to_string(),
            not_null: false,
            default: None,
            generated: false,
            identity: None,
            flags: crate::inspect::ColumnFlags {
                is_array: true,
                ..Default::default()
            },
        });
        let f = run(removed_types, &p, &s);
        assert_eq!(f.len(), 1, "{f:#?}");
        assert_eq!(f[0].severity, Severity::Blocker);
        let object = format!("{schema}.{name}.Seen (abstime)");
        assert_eq!(f[0].object.as_deref(), Some(object.as_str()));
        let fix = f[0].fix.as_deref().unwrap_or_default();
        assert!(
            fix.contains(r#"ALTER COLUMN "Seen" TYPE timestamptz[];"#),
            "{fix}"
        );
        // A source of 12 or newer has no such column.
        s.server.version_num = 120_022;
        assert!(run(removed_types, &p, &s).is_empty());
    }
}
