//! Installing and removing the DDL capture on the source: the event triggers, the function
//! they run (its PL/pgSQL beside this file), the key table and the record of what was created.

use super::setup::Capture;
use super::{names, prefix, Names, TAGS, VERSION};
use crate::pg::{quote, Endpoint, PgError};

/// A SQL array literal of texts: `ARRAY['a', 'b']::text[]`.
pub(super) fn text_array(items: &[String]) -> String {
    if items.is_empty() {
        return "'{}'::text[]".to_string();
    }
    let inner: Vec<String> = items.iter().map(|s| quote::literal(s)).collect();
    format!("ARRAY[{}]::text[]", inner.join(", "))
}

/// An exclude glob (`*` any run, `?` one character, matched against `schema.table`) as a
/// LIKE pattern.
pub fn glob_to_like(glob: &str) -> String {
    let mut out = String::with_capacity(glob.len() + 4);
    for c in glob.chars() {
        match c {
            '*' => out.push('%'),
            '?' => out.push('_'),
            '%' | '_' | '\\' => {
                out.push('\\');
                out.push(c);
            }
            c => out.push(c),
        }
    }
    out
}

/// SQL predicate: the relation `name` of schema `schema` (SQL expressions) is replicated.
pub(super) fn in_scope(schema: &str, name: &str) -> String {
    format!(
        "(((cardinality(scope) = 0 AND {schema} !~ '^pg_' AND {schema} NOT IN ('information_schema', {state})) OR {schema} = ANY (scope)) AND NOT (({schema} || '.' || {name}) LIKE ANY (excl)))",
        state = quote::literal(crate::state::SCHEMA),
    )
}

/// A dollar-quote tag that does not occur in `body`.
pub(super) fn dollar_tag(body: &str) -> String {
    let mut n = 0;
    loop {
        let tag = if n == 0 {
            "$pgmove_ddl$".to_string()
        } else {
            format!("$pgmove_ddl{n}$")
        };
        if !body.contains(&tag) {
            return tag;
        }
        n += 1;
    }
}

/// SQL, run on the SOURCE as a superuser (or `rds_superuser`), that installs the trigger for
/// `plan_name`, idempotently (a rerun replaces the functions and triggers and keeps the key).
/// `schemas`: the replicated schemas (empty: every schema but the system ones and `pgmove`);
/// `exclude`: the plan's `exclude` globs (`schema.table`), whose tables are left alone.
///
/// Install it after the publication exists and before the slot is created, so that every DDL
/// after the slot's consistent point is in the stream. One multi-statement string: run it with
/// one `batch_execute` (an implicit transaction).
pub fn install_sql(plan_name: &str, schemas: &[String], exclude: &[String]) -> String {
    let n = names(plan_name);
    let key_table = quote::qualified(crate::state::SCHEMA, &n.key_table);
    let emit = quote::qualified(crate::state::SCHEMA, &n.emit);
    let func = quote::qualified(crate::state::SCHEMA, &n.trigger);
    let lit = |s: &str| quote::literal(s);
    let emit_body = emit_body(plan_name, schemas, exclude);
    let emit_tag = dollar_tag(&emit_body);
    let trigger_body = trigger_body(plan_name);
    let trigger_tag = dollar_tag(&trigger_body);
    let tags = TAGS.iter().map(|t| lit(t)).collect::<Vec<_>>().join(", ");
    fill(
        INSTALL_SQL,
        &[
            ("guard", GUARD_SQL),
            ("schema", &quote::ident(crate::state::SCHEMA)),
            ("marker", crate::state::CREATE_MARKER_SQL.trim_start()),
            ("record", &record_sql(plan_name, &n)),
            ("key_table", &key_table),
            ("key_table_in_string", &key_table.replace('\'', "''")),
            ("emit", &emit),
            ("emit_tag", &emit_tag),
            ("emit_body", &emit_body),
            ("func", &func),
            ("trigger_tag", &trigger_tag),
            ("trigger_body", &trigger_body),
            ("tags", &tags),
            ("trigger", &quote::ident(&n.trigger)),
            ("drop_trigger", &quote::ident(&n.drop_trigger)),
            ("rewrite_trigger", &quote::ident(&n.rewrite_trigger)),
            ("start_trigger", &quote::ident(&n.start_trigger)),
        ],
    )
}

/// The body of the plan's capture function `pgmove.A_ddl_emit` as [`install_sql`] writes it
/// (what `pg_proc.prosrc` holds after it, less a leading newline).
pub(super) fn emit_body(plan_name: &str, schemas: &[String], exclude: &[String]) -> String {
    let n = names(plan_name);
    let likes: Vec<String> = exclude.iter().map(|g| glob_to_like(g)).collect();
    let key_table = quote::qualified(crate::state::SCHEMA, &n.key_table);
    let lit = |s: &str| quote::literal(s);
    let touched_scope = in_scope("ns.nspname", "r.relname");
    let k_scope = in_scope("k.nspname", "k.relname");
    let version = VERSION.to_string();
    fill(
        CAPTURE_SQL,
        &[
            ("scope", &text_array(schemas)),
            ("excl", &text_array(&likes)),
            ("publication", &lit(&n.publication)),
            ("g_seq", &lit(&n.guc_seq)),
            ("g_dropped", &lit(&n.guc_dropped)),
            ("g_rewrites", &lit(&n.guc_rewrites)),
            ("g_pending", &lit(&n.guc_pending)),
            ("g_missing", &lit(&n.guc_missing)),
            ("drop_scope", &in_scope("d.schema_name", "d.object_name")),
            ("type_scope", &in_scope("ns.nspname", "ty.typname")),
            ("touched_scope", &touched_scope),
            ("pending_scope", &k_scope),
            ("rewrite_scope", &k_scope),
            ("prefix", &lit(&prefix(plan_name))),
            ("version", &version),
            ("key_table", &key_table),
        ],
    )
}

/// The body of the plan's event trigger function `pgmove.A_ddl` as [`install_sql`] writes it.
pub(super) fn trigger_body(plan_name: &str) -> String {
    let emit = quote::qualified(crate::state::SCHEMA, &names(plan_name).emit);
    fill(TRIGGER_SQL, &[("emit", &emit)])
}

/// The script [`install_sql`] fills: schema, marker and record, key table, the two functions
/// (their bodies dollar-quoted with a tag they do not contain) and the four event triggers.
const INSTALL_SQL: &str = include_str!("install.sql");

/// The body of the SECURITY DEFINER function every event trigger ends up in: it records what
/// `sql_drop`, `ddl_command_start` and `table_rewrite` saw, publishes new tables and, at
/// `ddl_command_end`, emits the message (see the module documentation of `cdc::ddl`).
const CAPTURE_SQL: &str = include_str!("capture.sql");

/// The body of the event trigger function: passes the event, the tag and the caller's
/// `search_path` and role to the capture function.
const TRIGGER_SQL: &str = include_str!("trigger.sql");

/// `template` with each `{{name}}` replaced by the value given for `name`, in one pass: a
/// value is copied as it is, never searched for placeholders, so quoted names or literals
/// holding `{{` cannot change the SQL around them. A placeholder without a value stays as it
/// is (the unit tests check that none is left in what [`install_sql`] writes).
pub(super) fn fill(template: &str, values: &[(&str, &str)]) -> String {
    let mut out = String::with_capacity(template.len() * 2);
    let mut rest = template;
    while let Some(open) = rest.find("{{") {
        out.push_str(&rest[..open]);
        let after = &rest[open + 2..];
        let value = after.find("}}").and_then(|close| {
            let name = &after[..close];
            values
                .iter()
                .find(|(n, _)| *n == name)
                .map(|(_, v)| (close, *v))
        });
        match value {
            Some((close, v)) => {
                out.push_str(v);
                rest = &after[close + 2..];
            }
            None => {
                out.push_str("{{");
                rest = after;
            }
        }
    }
    out.push_str(rest);
    out
}

/// Refuses to install into a `pgmove` schema pgmove did not create (no marker table).
const GUARD_SQL: &str = crate::state::source::GUARD_SQL;

/// The source's record of what DDL capture created, per plan (see [`crate::state::source`]).
pub use crate::state::source::{
    RECORD_EVENT_TRIGGER, RECORD_FUNCTION, RECORD_TABLE, RECORD_TABLE_KIND,
};

/// The record of plan `plan_name`'s objects (`n`), for [`install_sql`].
fn record_sql(plan_name: &str, n: &Names) -> String {
    crate::state::source::record_sql(
        plan_name,
        &[
            (RECORD_EVENT_TRIGGER, &n.trigger),
            (RECORD_EVENT_TRIGGER, &n.drop_trigger),
            (RECORD_EVENT_TRIGGER, &n.rewrite_trigger),
            (RECORD_EVENT_TRIGGER, &n.start_trigger),
            (RECORD_FUNCTION, &n.trigger),
            (RECORD_FUNCTION, &n.emit),
            (RECORD_TABLE_KIND, &n.key_table),
        ],
    )
}

/// SQL, run on the source, that removes what [`install_sql`] created (for `pgmove cleanup`);
/// the `pgmove` schema too when nothing else is left in it. Harmless when nothing is there.
pub fn uninstall_sql(plan_name: &str) -> String {
    let n = names(plan_name);
    let schema = crate::state::SCHEMA;
    format!(
        r#"DROP EVENT TRIGGER IF EXISTS {trigger};
DROP EVENT TRIGGER IF EXISTS {drop_trigger};
DROP EVENT TRIGGER IF EXISTS {rewrite_trigger};
DROP EVENT TRIGGER IF EXISTS {start_trigger};
DROP FUNCTION IF EXISTS {func}();
DROP FUNCTION IF EXISTS {emit}(text, text, text, text);
DROP TABLE IF EXISTS {key_table};
DO $pgmove_cleanup$
BEGIN
  IF pg_catalog.to_regclass({marker}) IS NULL THEN
    RETURN;
  END IF;
  IF pg_catalog.to_regclass({record_lit}) IS NOT NULL THEN
    DELETE FROM {record} WHERE plan_name = {plan};
    IF EXISTS (SELECT 1 FROM {record}) THEN
      RETURN;
    END IF;
    DROP TABLE {record};
  END IF;
  DROP TABLE {marker_ident};
  DROP SCHEMA {schema_ident};
EXCEPTION WHEN dependent_objects_still_exist THEN
  NULL;
END
$pgmove_cleanup$;
"#,
        marker = quote::literal(&quote::qualified(schema, crate::state::MARKER_TABLE)),
        marker_ident = quote::qualified(schema, crate::state::MARKER_TABLE),
        record_lit = quote::literal(&quote::qualified(schema, RECORD_TABLE)),
        record = quote::qualified(schema, RECORD_TABLE),
        plan = quote::literal(plan_name),
        trigger = quote::ident(&n.trigger),
        drop_trigger = quote::ident(&n.drop_trigger),
        rewrite_trigger = quote::ident(&n.rewrite_trigger),
        start_trigger = quote::ident(&n.start_trigger),
        func = quote::qualified(schema, &n.trigger),
        emit = quote::qualified(schema, &n.emit),
        key_table = quote::qualified(schema, &n.key_table),
        schema_ident = quote::ident(schema),
    )
}

/// SQL reading the plan's key on the source (one row, one text column; no row before
/// [`install_sql`] ran).
pub fn key_sql(plan_name: &str) -> String {
    format!(
        "SELECT key FROM {} LIMIT 1",
        quote::qualified(crate::state::SCHEMA, &names(plan_name).key_table)
    )
}

/// Makes sure the plan's capture is on the source and returns the key
/// [`handle`](super::handle) checks messages against.
///
/// A capture already there exactly as this pgmove installs it ([`Capture::Ready`]: the master
/// user's from `pgmove setup-sql`, or pgmove's own from an earlier run) is used as it is: its
/// event triggers are never dropped and created again (a resumed apply keeps them). One the
/// master installed that differs is an error naming the fix (pgmove does not change the
/// master's objects). Otherwise pgmove installs its own, which replaces one of its own that
/// differs (another pgmove version, other scope) and keeps the key.
pub async fn install(
    source: &Endpoint,
    plan_name: &str,
    schemas: &[String],
    exclude: &[String],
) -> Result<String, PgError> {
    match super::setup::detect(source, plan_name, schemas, exclude).await? {
        Capture::Ready { by_master } => {
            if let Some(key) = read_key(source, plan_name).await? {
                tracing::info!(plan = %plan_name, by_master, "the DDL capture is installed on the source: used as it is");
                return Ok(key);
            }
            if by_master {
                return Err(super::setup::differs_error(
                    plan_name,
                    "its key table is empty",
                ));
            }
        }
        Capture::Differs {
            by_master: true,
            what,
        } => return Err(super::setup::differs_error(plan_name, &what)),
        Capture::Absent | Capture::Differs { .. } => {}
    }
    let c = source.connect().await?;
    c.batch_execute(&install_sql(plan_name, schemas, exclude))
        .await
        .map_err(|e| {
            source.query_error(
                "installing the DDL event trigger (cdc.ddl; needs a superuser, or rds_superuser on RDS)",
                &e,
            )
        })?;
    let row = c
        .query_one(&key_sql(plan_name), &[])
        .await
        .map_err(|e| source.query_error("reading the DDL trigger's key", &e))?;
    Ok(row.get(0))
}

/// The key of the installed trigger, if it is installed.
pub async fn read_key(source: &Endpoint, plan_name: &str) -> Result<Option<String>, PgError> {
    let c = source.connect().await?;
    let exists = c
        .query_one(
            "SELECT to_regclass($1) IS NOT NULL",
            &[&quote::qualified(
                crate::state::SCHEMA,
                &names(plan_name).key_table,
            )],
        )
        .await
        .map_err(|e| source.query_error("looking for the DDL trigger's key", &e))?
        .get::<_, bool>(0);
    if !exists {
        return Ok(None);
    }
    let row = c
        .query_opt(&key_sql(plan_name), &[])
        .await
        .map_err(|e| source.query_error("reading the DDL trigger's key", &e))?;
    Ok(row.map(|r| r.get(0)))
}

/// Removes the trigger from the source.
pub async fn uninstall(source: &Endpoint, plan_name: &str) -> Result<(), PgError> {
    let c = source.connect().await?;
    c.batch_execute(&uninstall_sql(plan_name))
        .await
        .map_err(|e| source.query_error("removing the DDL event trigger", &e))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn install_sql_quotes_what_it_embeds() {
        let sql = install_sql("shop", &["we'ird".to_string()], &["a.b?".to_string()]);
        assert!(sql.contains("ARRAY['we''ird']::text[]"), "{sql}");
        assert!(sql.contains("ARRAY['a.b_']::text[]"), "{sql}");
        assert!(sql.contains("'pgmove.ddl.shop'"));
        assert!(sql.contains("CREATE EVENT TRIGGER \"pgmove_shop_ddl\" ON ddl_command_end"));
        let un = uninstall_sql("shop");
        assert!(un.contains("DROP EVENT TRIGGER IF EXISTS \"pgmove_shop_ddl_drop\""));
    }

    /// The cases of the golden file: no scope, quoting and dollar tags that must step past
    /// `$pgmove_ddl$` and `$pgmove_ddl1$`, and a plan name long enough to be hashed.
    fn golden_cases() -> Vec<(&'static str, Vec<String>, Vec<String>)> {
        vec![
            ("shop", vec![], vec![]),
            (
                "we'ird plan",
                vec![
                    "public".into(),
                    "s'x".into(),
                    "$pgmove_ddl$".into(),
                    "$pgmove_ddl1$".into(),
                ],
                vec!["public.tmp_*".into(), "a_b%?\\c".into()],
            ),
            (
                "a-very-long-plan-name-that-needs-a-hash-because-it-is-longer-than-sixty-three-bytes",
                vec!["app".into()],
                vec![],
            ),
        ]
    }

    /// `install_sql` is byte for byte what it was before its PL/pgSQL moved out of a `format!`
    /// (the golden file was written by that code, cases separated by a marker line).
    #[test]
    fn install_sql_is_byte_for_byte_the_golden() {
        let golden = include_str!("../../../tests/golden/cdc_ddl_install.sql");
        let mut now = String::new();
        for (plan, schemas, exclude) in golden_cases() {
            now.push_str(&install_sql(plan, &schemas, &exclude));
            now.push_str("-- ==== next case ====\n");
        }
        if std::env::var_os("UPDATE_GOLDEN").is_some() {
            // The trigger's SQL changed on purpose: rewrite the golden (then review its diff).
            let path = concat!(
                env!("CARGO_MANIFEST_DIR"),
                "/tests/golden/cdc_ddl_install.sql"
            );
            std::fs::write(path, &now).expect("write the golden file");
            return;
        }
        assert_eq!(now.len(), golden.len());
        for (i, (a, b)) in now.lines().zip(golden.lines()).enumerate() {
            assert_eq!(a, b, "line {} differs", i + 1);
        }
        assert_eq!(now, golden);
    }

    #[test]
    fn fill_substitutes_named_placeholders_once() {
        let out = fill(
            "a {{x}} b {{y}} {{x}} '{}' {{unknown}} {{",
            &[("x", "{{y}}"), ("y", "$t$")],
        );
        assert_eq!(out, "a {{y}} b $t$ {{y}} '{}' {{unknown}} {{");
    }

    #[test]
    fn every_placeholder_of_the_templates_has_a_value() {
        let sql = install_sql("shop", &["app".to_string()], &["app.tmp_*".to_string()]);
        assert!(!sql.contains("{{"), "{sql}");
        assert!(!sql.contains("}}"), "{sql}");
    }
}
