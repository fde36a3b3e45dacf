//! `cdc.ddl` under strategy pglogical, which does not replicate schema changes by itself.
//!
//! - `refuse`: [`install`] puts a guard on the source: event triggers `A_ddl_refuse` on
//!   `ddl_command_end` (`CREATE TABLE`, `CREATE TABLE AS`, `SELECT INTO`, `ALTER TABLE`) and
//!   `A_ddl_refuse_drop` on `sql_drop` (`DROP TABLE`), running function `pgmove.A_ddl_refuse()`
//!   (names from [`crate::plan::names::ddl_refuse_names`]), which raise an error naming the
//!   statement, the table, the reason and the fix when the statement touches a table of the
//!   moved schemas (`objects.schemas`, not matching an `objects.exclude` glob): the statement
//!   is rolled back, so source and target keep the same schema. Two ways through, both the
//!   user's deliberate choice: a statement sent with `pglogical.replicate_ddl_command` for
//!   one of the plan's sets (pglogical queues it in the same transaction before it runs it
//!   here, and the target gets it at the same point of the stream: the guard lets a
//!   statement through when this transaction queued exactly it for one of the plan's sets),
//!   and a session that ran `SET pgmove.ddl_refuse = off` (the change then stays on the
//!   source). They are created with the `pgmove` schema's marker and recorded in
//!   `pgmove.objects` in the same transaction, as the copy-cdc capture's objects are, so
//!   `pgmove cleanup` drops exactly them. `ENABLE ALWAYS`: sessions with
//!   `session_replication_role = replica` are refused too.
//! - `ignore`: nothing is installed; schema changes on the source stay there.
//! - `replicate`: refused in preflight (`preflight::pglogical_ddl`): pglogical replays DDL
//!   only as SQL text queued by `pglogical.replicate_ddl_command`, and an event trigger that
//!   queued the statements it sees could only queue the client's whole query string
//!   (`current_query()`): a DDL statement sent together with other statements, or run inside
//!   a function or `DO` block, would run those again on the target, where pglogical already
//!   applies their rows (rows twice, or an apply worker stopped on a duplicate key).

use super::install::{dollar_tag, fill, glob_to_like, in_scope, text_array};
use crate::pg::{quote, Endpoint, PgError};
use crate::plan::{Ddl, Plan};

/// The setting a session turns `off` to run a schema change on the source only.
pub const OFF_SETTING: &str = "pgmove.ddl_refuse";

/// The script [`install_sql`] fills.
const GUARD_SQL: &str = include_str!("guard.sql");

/// `s` inside a single-quoted SQL literal.
fn in_string(s: &str) -> String {
    s.replace('\'', "''")
}

/// SQL, run on the SOURCE as a superuser (or `rds_superuser`), that installs the guard of
/// `cdc.ddl: refuse` for `plan_name`, idempotently; `sets`: the plan's pglogical sets (named
/// in the hint), `schemas`/`exclude` as for [`super::install_sql`].
pub fn install_sql(
    plan_name: &str,
    sets: &[String],
    schemas: &[String],
    exclude: &[String],
) -> String {
    let (trigger, drop_trigger) = crate::plan::names::ddl_refuse_names(plan_name);
    let func = quote::qualified(crate::state::SCHEMA, &trigger);
    let likes: Vec<String> = exclude.iter().map(|g| glob_to_like(g)).collect();
    let sets_sql: Vec<String> = sets.iter().map(|s| quote::literal(s)).collect();
    let record = crate::state::source::record_sql(
        plan_name,
        &[
            (super::RECORD_EVENT_TRIGGER, &trigger),
            (super::RECORD_EVENT_TRIGGER, &drop_trigger),
            (super::RECORD_FUNCTION, &trigger),
        ],
    );
    let scope = text_array(schemas);
    let excl = text_array(&likes);
    let drop_scope = in_scope("d.schema_name", "d.object_name");
    let touched_scope = in_scope("ns.nspname", "r.relname");
    let off_guc = quote::literal(OFF_SETTING);
    let off_guc_in_string = in_string(OFF_SETTING);
    // Inside a RAISE format string, where `%` is a placeholder.
    let plan_in_string = in_string(plan_name).replace('%', "%%");
    let sets_in_string = in_string(&sets_sql.join(", "));
    let sets_array = text_array(sets);
    // A dollar tag for the function body that nothing filled into it contains.
    let tag = dollar_tag(
        &[&scope, &excl, &plan_in_string, &sets_in_string, &sets_array]
            .map(|s| s.as_str())
            .concat(),
    );
    fill(
        GUARD_SQL,
        &[
            ("guard", crate::state::source::GUARD_SQL),
            ("schema", &quote::ident(crate::state::SCHEMA)),
            ("marker", crate::state::CREATE_MARKER_SQL.trim_start()),
            ("record", &record),
            ("func", &func),
            ("tag", &tag),
            ("trigger", &quote::ident(&trigger)),
            ("drop_trigger", &quote::ident(&drop_trigger)),
            ("scope", &scope),
            ("excl", &excl),
            ("drop_scope", &drop_scope),
            ("touched_scope", &touched_scope),
            ("off_guc", &off_guc),
            ("off_guc_in_string", &off_guc_in_string),
            ("plan_in_string", &plan_in_string),
            ("sets_in_string", &sets_in_string),
            ("sets", &sets_array),
        ],
    )
}

/// Installs the guard on the source when the plan's `cdc.ddl` is `refuse` (nothing for
/// `ignore`; `replicate` never gets here: preflight refuses it for pglogical); idempotent.
/// Strategy pglogical's apply calls it once its own changes on the source are made (after the
/// provider step, before the subscription copies the rows); pgmove's later changes to moved
/// tables on the source run in a session that ran [`allow_sql`] (cleanup restoring replica
/// identities).
pub async fn install(source: &Endpoint, plan: &Plan) -> Result<(), PgError> {
    if plan.cdc.ddl != Ddl::Refuse {
        return Ok(());
    }
    let names = plan.pglogical_names();
    let sql = install_sql(
        &plan.name,
        &[names.replication_set, names.insert_set],
        &plan.objects.schemas,
        &plan.objects.exclude,
    );
    let c = source.connect().await?;
    c.batch_execute(&sql).await.map_err(|e| {
        source.query_error(
            "installing the event triggers of cdc.ddl: refuse (CREATE EVENT TRIGGER needs a superuser, or rds_superuser on RDS)",
            &e,
        )
    })
}

/// `SET` that lets this session change the schema of moved tables on the source although
/// the guard is installed (for pgmove's own changes: replica identities).
pub fn allow_sql() -> String {
    format!("SET {OFF_SETTING} = off")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn install_sql_fills_every_placeholder_and_quotes_what_it_embeds() {
        let sql = install_sql(
            "shop",
            &["pgmove_shop".into(), "ipg'x".into()],
            &["app".into()],
            &["app.tmp_*".into()],
        );
        assert!(!sql.contains("{{"), "{sql}");
        assert!(
            sql.contains("CREATE EVENT TRIGGER \"pgmove_shop_ddl_refuse\" ON ddl_command_end"),
            "{sql}"
        );
        assert!(
            sql.contains("CREATE EVENT TRIGGER \"pgmove_shop_ddl_refuse_drop\" ON sql_drop"),
            "{sql}"
        );
        assert!(sql.contains("ARRAY['app']::text[]"), "{sql}");
        assert!(sql.contains(r"ARRAY[E'app.tmp\\_%']::text[]"), "{sql}");
        // The set names in the hint: a literal inside a literal.
        assert!(
            sql.contains("ARRAY[''pgmove_shop'', ''ipg''''x'']"),
            "{sql}"
        );
        assert!(
            sql.contains("('shop', 'event trigger', 'pgmove_shop_ddl_refuse_drop')"),
            "{sql}"
        );
        assert!(
            sql.contains("current_setting('pgmove.ddl_refuse', true)"),
            "{sql}"
        );
        assert_eq!(allow_sql(), "SET pgmove.ddl_refuse = off");
    }
}
