//! `cdc.ddl` under strategy pglogical, which does not replicate schema changes by itself: it
//! replays them only as SQL text queued with `pglogical.replicate_ddl_command`.
//!
//! pgmove does not queue the statements it sees itself: an event trigger sees only the
//! client's whole query string (`current_query()`), so a schema change sent together with
//! other statements, or run inside a function or `DO` block, would be queued with them and
//! run them again on the target, where pglogical already applies their rows (rows twice, or
//! an apply worker stopped on a duplicate key). Instead [`install`] puts a guard on the
//! source that keeps source and target with the same schema: event triggers `A_ddl_guard` on
//! `ddl_command_end` (`CREATE TABLE`, `CREATE TABLE AS`, `SELECT INTO`, `ALTER TABLE`) and
//! `A_ddl_guard_drop` on `sql_drop` (`DROP TABLE`), running function `pgmove.A_ddl_guard()`
//! (names from [`crate::plan::names::ddl_guard_names`]), which raise an error naming the
//! statement, the table, the reason and the fix when the statement touches a table of the
//! moved schemas (`objects.schemas`, not matching an `objects.exclude` glob), so it is
//! rolled back:
//! - `replicate`: unless the statement was sent with `pglogical.replicate_ddl_command` for
//!   one of the plan's sets (pglogical queues it in the same transaction just before it runs
//!   it here; the target runs it at the same point of the stream): the guard lets a
//!   statement through when this transaction queued exactly it for one of the plan's sets,
//!   and puts a table it creates into the sets before any row is written to it (with a key
//!   in both, without one as `cdc.tables_without_key` says: `insert-only` in `iNAME`,
//!   `exclude` in neither, else refused); `CREATE TABLE AS`/`SELECT INTO` that way is
//!   refused (the rows it writes would not be replicated);
//! - `refuse`: always (no schema change to moved tables until the cutover);
//! - `ignore`: nothing is installed; a schema change stays on the source.
//!
//! A session that ran `SET pgmove.ddl_guard = off` gets through (the user's deliberate
//! choice: the change then stays on the source). The guard is created with the `pgmove`
//! schema's marker and recorded in `pgmove.objects` in the same transaction, as the copy-cdc
//! capture's objects are, so `pgmove cleanup` drops exactly it. `ENABLE ALWAYS`: sessions with
//! `session_replication_role = replica` are guarded too.

use super::install::{dollar_tag, fill, glob_to_like, in_scope, text_array};
use super::setup::Capture;
use crate::pg::{quote, Endpoint, PgError};
use crate::plan::{Ddl, Plan, TablesWithoutKey};

/// The setting a session turns `off` to run a schema change on the source only.
pub const OFF_SETTING: &str = "pgmove.ddl_guard";

/// The script [`install_sql`] fills.
const GUARD_SQL: &str = include_str!("guard.sql");

/// `s` inside a single-quoted SQL literal.
fn in_string(s: &str) -> String {
    s.replace('\'', "''")
}

/// SQL, run on the SOURCE as a superuser (or `rds_superuser`), that installs the guard for
/// `plan_name` and `ddl` (`replicate` or `refuse`), idempotently; `sets`: the plan's pglogical sets (named
/// in the hint), `schemas`/`exclude` as for [`super::install_sql`].
pub fn install_sql(
    plan_name: &str,
    ddl: Ddl,
    keyless: TablesWithoutKey,
    sets: &[String; 2],
    schemas: &[String],
    exclude: &[String],
) -> String {
    let (trigger, drop_trigger) = crate::plan::names::ddl_guard_names(plan_name);
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
    let keyless = quote::literal(match keyless {
        TablesWithoutKey::InsertOnly => "insert-only",
        TablesWithoutKey::Exclude => "exclude",
        TablesWithoutKey::Refuse => "refuse",
        TablesWithoutKey::ReplicaIdentityFull => "replica-identity-full",
    });
    let (update_set, insert_set) = (quote::literal(&sets[0]), quote::literal(&sets[1]));
    let through = format!(
        "SELECT pglogical.replicate_ddl_command(''<the statement, with schema-qualified names>'', ARRAY[{sets_in_string}])"
    );
    let source_only = format!(
        "to run it on the source only (the target will then differ), first SET {off_guc_in_string} = off in your session"
    );
    let (through_pglogical, why, hint) = if ddl == Ddl::Refuse {
        (
            "false",
            format!("plan {plan_in_string} moves this database with pglogical and its cdc.ddl is refuse: no schema change to moved tables until the cutover"),
            format!("run it after the cutover; or set cdc.ddl: replicate in the plan, run pgmove apply again, and send it through pglogical: {through}; or, {source_only}"),
        )
    } else {
        (
            "true",
            format!("plan {plan_in_string} moves this database with pglogical, which replicates a schema change only when it is sent through pglogical.replicate_ddl_command (cdc.ddl: replicate)"),
            format!("send it through pglogical so the target runs it at the same point of the stream: {through}; or, {source_only}"),
        )
    };
    // A dollar tag for the function body that nothing filled into it contains.
    let tag = dollar_tag(
        &[
            &scope,
            &excl,
            &plan_in_string,
            &sets_in_string,
            &sets_array,
            &why,
            &hint,
        ]
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
            ("through_pglogical", through_pglogical),
            ("keyless", &keyless),
            ("update_set", &update_set),
            ("insert_set", &insert_set),
            ("why", &why),
            ("hint", &hint),
        ],
    )
}

/// Whether the source database is read-only (a cutover fenced it: nothing can change its
/// schema, and nothing can be installed there); one boolean.
const READ_ONLY_SQL: &str =
    "SELECT pg_catalog.current_setting('default_transaction_read_only') = 'on'";

/// The body of the guard function in `sql` (what [`install_sql`] wrote): the text between the
/// dollar-quote tag after `AS ` and its closing, as `pg_proc.prosrc` holds it.
fn function_body(sql: &str) -> Option<&str> {
    let at = sql.find("\nAS $")? + "\nAS ".len();
    let rest = &sql[at..];
    let tag_len = rest[1..].find('$')? + 2;
    let tag = &rest[..tag_len];
    let body = &rest[tag_len..];
    Some(&body[..body.find(tag)?])
}

/// The plan's guard as the catalogs show it; one row. `$1` the schema (`pgmove`), `$2` the
/// guard function's name (also its `ddl_command_end` trigger's), `$3` both triggers' names.
/// Columns: the function's body (`prosrc`, NULL when missing), its comment, and how many of
/// the two event triggers exist, enabled ALWAYS, running it.
const DETECT_SQL: &str = "SELECT
  (SELECT p.prosrc FROM pg_catalog.pg_proc p JOIN pg_catalog.pg_namespace n ON n.oid = p.pronamespace
    WHERE n.nspname = $1 AND p.proname = $2 AND p.pronargs = 0 LIMIT 1),
  (SELECT pg_catalog.obj_description(p.oid, 'pg_proc') FROM pg_catalog.pg_proc p
     JOIN pg_catalog.pg_namespace n ON n.oid = p.pronamespace
    WHERE n.nspname = $1 AND p.proname = $2 AND p.pronargs = 0 LIMIT 1),
  (SELECT count(*)::int FROM pg_catalog.pg_event_trigger e
     JOIN pg_catalog.pg_proc p ON p.oid = e.evtfoid
     JOIN pg_catalog.pg_namespace n ON n.oid = p.pronamespace
    WHERE e.evtname = ANY ($3::text[]) AND e.evtenabled = 'A' AND n.nspname = $1 AND p.proname = $2)";

/// The plan's guard on the source, as [`super::setup::detect`] says it of the copy-cdc
/// capture: [`Capture::Ready`] when it is exactly what [`install`] would write (same body, both
/// triggers enabled ALWAYS), by the master user when its function carries
/// [`super::setup::SETUP_COMMENT`].
pub async fn detect(source: &Endpoint, plan: &Plan) -> Result<Capture, PgError> {
    let (trigger, drop_trigger) = crate::plan::names::ddl_guard_names(&plan.name);
    let c = source.connect().await?;
    let row = c
        .query_one(
            DETECT_SQL,
            &[
                &crate::state::SCHEMA,
                &trigger,
                &vec![trigger.clone(), drop_trigger],
            ],
        )
        .await
        .map_err(|e| source.query_error("looking for the DDL guard (cdc.ddl)", &e))?;
    let (body, comment, enabled): (Option<String>, Option<String>, i32) =
        (row.get(0), row.get(1), row.get(2));
    if body.is_none() && enabled == 0 {
        return Ok(Capture::Absent);
    }
    let by_master = comment.as_deref() == Some(super::setup::SETUP_COMMENT);
    let sql = plan_install_sql(plan);
    let mut what = Vec::new();
    if body.as_deref() != function_body(&sql) {
        what.push("its function is missing or not this pgmove's for this plan (another pgmove version, or the plan's cdc.ddl, objects.schemas or exclude changed)".to_string());
    }
    if enabled != 2 {
        what.push(format!(
            "{enabled} of its 2 event triggers exist enabled ALWAYS"
        ));
    }
    Ok(if what.is_empty() {
        Capture::Ready { by_master }
    } else {
        Capture::Differs {
            by_master,
            what: what.join("; "),
        }
    })
}

/// [`install_sql`] for `plan`.
pub fn plan_install_sql(plan: &Plan) -> String {
    let names = plan.pglogical_names();
    install_sql(
        &plan.name,
        plan.cdc.ddl,
        plan.cdc.tables_without_key,
        &[names.replication_set, names.insert_set],
        &plan.objects.schemas,
        &plan.objects.exclude,
    )
}

/// Installs the guard on the source for the plan's `cdc.ddl` (nothing for `ignore`, nor on a
/// source a cutover fenced); idempotent. A guard already there exactly as this pgmove writes
/// it (the master user's from `pgmove setup-sql`, or pgmove's own) is left as it is: its event
/// triggers are never dropped and created again; one the master installed that differs is an
/// error naming the fix. Strategy pglogical's apply calls it before it dumps
/// the schema, so no schema change after the dump goes unnoticed; pgmove's own changes to
/// moved tables on the source run in a session that ran [`allow_sql`] (cleanup restoring
/// replica identities before it drops the guard).
pub async fn install(source: &Endpoint, plan: &Plan) -> Result<(), PgError> {
    if plan.cdc.ddl == Ddl::Ignore {
        return Ok(());
    }
    let sql = plan_install_sql(plan);
    let c = source.connect().await?;
    let fenced: bool = c
        .query_one(READ_ONLY_SQL, &[])
        .await
        .map_err(|e| source.query_error("reading default_transaction_read_only", &e))?
        .get(0);
    if fenced {
        return Ok(());
    }
    match detect(source, plan).await? {
        Capture::Ready { by_master } => {
            tracing::info!(plan = %plan.name, by_master, "the DDL guard is installed on the source: used as it is");
            return Ok(());
        }
        Capture::Differs {
            by_master: true,
            what,
        } => return Err(super::setup::differs_error(&plan.name, &what)),
        Capture::Absent | Capture::Differs { .. } => {}
    }
    c.batch_execute(&sql).await.map_err(|e| {
        source.query_error(
            &format!(
                "installing the event triggers that keep schema changes from bypassing pglogical (cdc.ddl: {}; CREATE EVENT TRIGGER needs a superuser, or rds_superuser on RDS)",
                plan.cdc.ddl
            ),
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
            Ddl::Replicate,
            TablesWithoutKey::InsertOnly,
            &["pgmove_shop".into(), "ipg'x".into()],
            &["app".into()],
            &["app.tmp_*".into()],
        );
        assert!(!sql.contains("{{"), "{sql}");
        assert!(
            sql.contains("CREATE EVENT TRIGGER \"pgmove_shop_ddl_guard\" ON ddl_command_end"),
            "{sql}"
        );
        assert!(
            sql.contains("CREATE EVENT TRIGGER \"pgmove_shop_ddl_guard_drop\" ON sql_drop"),
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
            sql.contains("('shop', 'event trigger', 'pgmove_shop_ddl_guard_drop')"),
            "{sql}"
        );
        assert!(
            sql.contains("current_setting('pgmove.ddl_guard', true)"),
            "{sql}"
        );
        assert_eq!(allow_sql(), "SET pgmove.ddl_guard = off");
        assert!(sql.contains("IF true AND pg_catalog.to_regclass"), "{sql}");
        assert!(
            sql.contains("PERFORM pglogical.replication_set_add_table('ipg''x', rel.oid, false);"),
            "{sql}"
        );
        assert!(
            sql.contains("ELSIF 'insert-only' = 'insert-only' THEN"),
            "{sql}"
        );
        let refuse = install_sql(
            "shop",
            Ddl::Refuse,
            TablesWithoutKey::Exclude,
            &["s".into(), "is".into()],
            &[],
            &[],
        );
        assert!(
            refuse.contains("IF false AND pg_catalog.to_regclass"),
            "{refuse}"
        );
        assert!(refuse.contains("its cdc.ddl is refuse"), "{refuse}");
        let body = function_body(&refuse).expect("a body");
        assert!(body.starts_with("\nDECLARE\n"), "{body}");
        assert!(body.ends_with("END\n"), "{body}");
        assert!(!body.contains("CREATE EVENT TRIGGER"), "{body}");
        assert!(!refuse.contains("{{"), "{refuse}");
    }
}
