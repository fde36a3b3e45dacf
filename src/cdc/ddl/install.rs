//! Installing and removing the DDL capture on the source: the event triggers, the function
//! they run (its PL/pgSQL beside this file), the key table and the record of what was created.

use super::{names, prefix, Names, TAGS, VERSION};
use crate::pg::{quote, Endpoint, PgError};

/// A SQL array literal of texts: `ARRAY['a', 'b']::text[]`.
fn text_array(items: &[String]) -> String {
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
fn in_scope(schema: &str, name: &str) -> String {
    format!(
        "(((cardinality(scope) = 0 AND {schema} !~ '^pg_' AND {schema} NOT IN ('information_schema', {state})) OR {schema} = ANY (scope)) AND NOT (({schema} || '.' || {name}) LIKE ANY (excl)))",
        state = quote::literal(crate::state::SCHEMA),
    )
}

/// A dollar-quote tag that does not occur in `body`.
fn dollar_tag(body: &str) -> String {
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
    let likes: Vec<String> = exclude.iter().map(|g| glob_to_like(g)).collect();
    let key_table = quote::qualified(crate::state::SCHEMA, &n.key_table);
    let emit = quote::qualified(crate::state::SCHEMA, &n.emit);
    let func = quote::qualified(crate::state::SCHEMA, &n.trigger);
    let lit = |s: &str| quote::literal(s);
    let touched_scope = in_scope("ns.nspname", "r.relname");
    let emit_body = format!(
        r#"
DECLARE
  scope text[] := {scope};
  excl text[] := {excl};
  pub text := {publication};
  stmt_key text;
  prev text;
  n int;
  objs jsonb;
  tabs jsonb := '[]';
  rewrites jsonb;
  missing jsonb := '[]';
  vol jsonb := '[]';
  pending oid[];
  still oid[] := '{{}}';
  rel oid;
  k record;
  c record;
  published boolean;
  had_rows boolean;
  reason text;
  val text;
  err text;
BEGIN
  IF event = 'sql_drop' THEN
    SELECT coalesce(nullif(current_setting({g_dropped}, true), ''), '[]')::jsonb
           || coalesce(jsonb_agg(jsonb_build_object('type', d.object_type, 'schema', d.schema_name,
                'name', d.object_name, 'identity', d.object_identity)), '[]')
      INTO objs
      FROM pg_event_trigger_dropped_objects() d
     WHERE d.original AND d.object_type IN ('table', 'foreign table')
       AND {drop_scope};
    PERFORM set_config({g_dropped}, objs::text, true);
    RETURN;
  END IF;
  IF event = 'ddl_command_start' THEN
    -- The columns that read a stored "missing" value before the statement: those that do
    -- after it and are not among them were added by it.
    IF current_setting('server_version_num')::int >= 120000 THEN
      PERFORM set_config({g_missing}, (SELECT coalesce(jsonb_agg(jsonb_build_array(a.attrelid, a.attnum)), '[]')
                                         FROM pg_attribute a WHERE a.atthasmissing)::text, true);
    END IF;
    RETURN;
  END IF;
  IF event = 'table_rewrite' THEN
    rewrites := coalesce(nullif(current_setting({g_rewrites}, true), ''), '[]')::jsonb
      || jsonb_build_array(jsonb_build_object('oid', pg_event_trigger_table_rewrite_oid(),
           'reason', pg_event_trigger_table_rewrite_reason()));
    PERFORM set_config({g_rewrites}, rewrites::text, true);
    RETURN;
  END IF;

  -- Which firing of this trigger within the client's query string this is: a query string
  -- with several statements shares its text and statement_timestamp().
  stmt_key := md5(statement_timestamp()::text || coalesce(current_query(), ''));
  prev := current_setting({g_seq}, true);
  IF prev IS NOT NULL AND split_part(prev, ':', 1) = stmt_key THEN
    n := split_part(prev, ':', 2)::int + 1;
  ELSE
    n := 1;
  END IF;
  PERFORM set_config({g_seq}, stmt_key || ':' || n, false);
  rewrites := coalesce(nullif(current_setting({g_rewrites}, true), ''), '[]')::jsonb;
  PERFORM set_config({g_rewrites}, '', true);

  IF tag IN ('CREATE TYPE', 'ALTER TYPE') THEN
    -- Enum types: their values must exist on the target before rows use them.
    SELECT coalesce(jsonb_agg(DISTINCT jsonb_build_object('type', 'enum', 'schema', ns.nspname,
             'name', ty.typname, 'identity', x.object_identity)), '[]')
      INTO objs
      FROM pg_event_trigger_ddl_commands() x
      JOIN pg_type ty ON x.classid = 'pg_type'::regclass AND ty.oid = x.objid
      JOIN pg_namespace ns ON ns.oid = ty.typnamespace
     WHERE ty.typtype = 'e' AND {type_scope};
  ELSIF tag = 'DROP TABLE' THEN
    objs := coalesce(nullif(current_setting({g_dropped}, true), ''), '[]')::jsonb;
    PERFORM set_config({g_dropped}, '', true);
  ELSE
    SELECT coalesce(jsonb_agg(DISTINCT jsonb_build_object('type', x.object_type, 'schema', ns.nspname,
             'name', r.relname, 'identity', x.object_identity)), '[]')
      INTO objs
      FROM pg_event_trigger_ddl_commands() x
      JOIN pg_class r ON x.classid = 'pg_class'::regclass AND r.oid = x.objid
      JOIN pg_namespace ns ON ns.oid = r.relnamespace
     WHERE x.object_type IN ('table', 'foreign table', 'view', 'materialized view')
       AND {touched_scope};

    -- New tables: published now if they have a replica identity, else when a later statement
    -- of their transaction gives them one.
    pending := coalesce(nullif(current_setting({g_pending}, true), ''), '{{}}')::oid[];
    FOR c IN SELECT DISTINCT x.objid FROM pg_event_trigger_ddl_commands() x
              WHERE x.command_tag IN ('CREATE TABLE', 'CREATE TABLE AS', 'SELECT INTO')
                AND x.object_type = 'table' LOOP
      IF NOT c.objid = ANY (pending) THEN
        pending := pending || c.objid;
      END IF;
    END LOOP;
    FOREACH rel IN ARRAY pending LOOP
      SELECT r.oid, ns.nspname, r.relname, r.relkind, r.relpersistence, r.relreplident INTO k
        FROM pg_class r JOIN pg_namespace ns ON ns.oid = r.relnamespace WHERE r.oid = rel;
      CONTINUE WHEN NOT FOUND;
      CONTINUE WHEN k.relkind NOT IN ('r', 'p') OR NOT {pending_scope};
      published := false;
      had_rows := false;
      reason := NULL;
      IF k.relpersistence <> 'p' THEN
        reason := 'unlogged: its changes are not in the WAL';
      ELSIF NOT EXISTS (SELECT 1 FROM pg_publication p WHERE p.pubname = pub) THEN
        reason := format('publication %s does not exist', pub);
      ELSIF EXISTS (SELECT 1 FROM pg_publication_tables t
                     WHERE t.pubname = pub AND t.schemaname = k.nspname AND t.tablename = k.relname)
         OR EXISTS (WITH RECURSIVE up(relid) AS (
                        SELECT rel
                        UNION
                        SELECT i.inhparent FROM up
                          JOIN pg_class ch ON ch.oid = up.relid AND ch.relispartition
                          JOIN pg_inherits i ON i.inhrelid = up.relid)
                    SELECT 1 FROM up
                      JOIN pg_publication_rel pr ON pr.prrelid = up.relid
                      JOIN pg_publication p ON p.oid = pr.prpubid
                     WHERE p.pubname = pub) THEN
        published := true;  -- with its partitioned parent, or by FOR ALL TABLES / IN SCHEMA
      ELSIF k.relreplident = 'f'
         OR (k.relreplident = 'd' AND EXISTS (SELECT 1 FROM pg_index i WHERE i.indrelid = rel AND i.indisprimary))
         OR (k.relreplident = 'i' AND EXISTS (SELECT 1 FROM pg_index i WHERE i.indrelid = rel AND i.indisreplident)) THEN
        BEGIN
          EXECUTE format('ALTER PUBLICATION %I ADD TABLE %s', pub, rel::regclass);
          EXECUTE format('SELECT EXISTS (SELECT 1 FROM %s)', rel::regclass) INTO had_rows;
          published := true;
        EXCEPTION WHEN OTHERS THEN
          reason := format('could not add it to publication %s: %s', pub, SQLERRM);
          had_rows := false;
        END;
      ELSE
        reason := 'no replica identity (no primary key)';
        still := still || rel;
      END IF;
      tabs := tabs || jsonb_build_array(jsonb_build_object('schema', k.nspname, 'name', k.relname,
                'published', published, 'had_rows', had_rows, 'reason', reason));
    END LOOP;
    PERFORM set_config({g_pending}, still::text, true);

    -- (atthasmissing: PostgreSQL 11; attgenerated: 12. Older servers skip these checks.)
    IF tag = 'ALTER TABLE' AND current_setting('server_version_num')::int >= 120000 THEN
      -- Columns added by this statement whose existing rows read a stored "missing" value
      -- (ADD COLUMN with a non-volatile default: evaluated once, e.g. now()).
      FOR c IN
        WITH RECURSIVE touched(relid) AS (
            SELECT DISTINCT x.objid FROM pg_event_trigger_ddl_commands() x
             WHERE x.classid = 'pg_class'::regclass AND x.object_type = 'table'
            UNION
            SELECT i.inhrelid FROM pg_inherits i JOIN touched ON i.inhparent = touched.relid)
        SELECT ns.nspname, r.relname, a.attname, a.attmissingval::text AS arr,
               format_type(a.atttypid, a.atttypmod) AS typ
          FROM touched
          JOIN pg_class r ON r.oid = touched.relid
          JOIN pg_namespace ns ON ns.oid = r.relnamespace
          JOIN pg_attribute a ON a.attrelid = r.oid
         WHERE a.attnum > 0 AND NOT a.attisdropped AND a.atthasmissing
           AND NOT coalesce(nullif(current_setting({g_missing}, true), ''), '[]')::jsonb
                   @> jsonb_build_array(jsonb_build_array(a.attrelid, a.attnum))
           AND r.relkind = 'r' AND {touched_scope}
      LOOP
        err := NULL;
        BEGIN
          EXECUTE format('SELECT (%L::%s[])[1]::text', c.arr, c.typ) INTO val;
        EXCEPTION WHEN OTHERS THEN
          val := NULL;
          err := SQLERRM;
        END;
        missing := missing || jsonb_build_array(jsonb_build_object('schema', c.nspname, 'name', c.relname,
                     'column', c.attname, 'missing', c.arr, 'value', val, 'error', err));
      END LOOP;
      -- Rewrites that computed a value per row (volatile default, identity): not streamed.
      FOR c IN SELECT (e->>'oid')::oid AS relid, (e->>'reason')::int AS why
                 FROM jsonb_array_elements(rewrites) e LOOP
        CONTINUE WHEN c.why & 2 = 0;
        SELECT r.oid, ns.nspname, r.relname INTO k
          FROM pg_class r JOIN pg_namespace ns ON ns.oid = r.relnamespace WHERE r.oid = c.relid;
        CONTINUE WHEN NOT FOUND OR NOT {rewrite_scope};
        SELECT string_agg(a.attname::text, ', ' ORDER BY a.attnum) INTO val
          FROM pg_attribute a
         WHERE a.attrelid = c.relid AND a.attnum > 0 AND NOT a.attisdropped AND age(a.xmin) = 0
           AND a.attgenerated = ''
           AND (a.attidentity <> ''
                OR EXISTS (SELECT 1 FROM pg_attrdef ad, regexp_matches(ad.adbin::text, ':(?:funcid|opfuncid) (\d+)', 'g') m
                            JOIN pg_proc f ON f.oid = m[1]::oid
                           WHERE ad.adrelid = a.attrelid AND ad.adnum = a.attnum AND f.provolatile = 'v'));
        CONTINUE WHEN val IS NULL;
        EXECUTE format('SELECT EXISTS (SELECT 1 FROM %s)', c.relid::regclass) INTO had_rows;
        CONTINUE WHEN NOT had_rows;
        vol := vol || jsonb_build_array(jsonb_build_object('schema', k.nspname, 'name', k.relname,
                      'columns', val));
      END LOOP;
    END IF;
  END IF;

  IF jsonb_array_length(objs) = 0 THEN
    RETURN;
  END IF;
  PERFORM pg_logical_emit_message(true, {prefix}, jsonb_build_object(
    'v', {version},
    'key', (SELECT t.key FROM {key_table} t LIMIT 1),
    'tag', tag,
    'sql', current_query(),
    'n', n,
    'role', CASE WHEN caller_role IS NULL OR caller_role = 'none' THEN session_user::text ELSE caller_role END,
    'search_path', caller_path,
    'objects', objs,
    'tables', tabs,
    'missing', missing,
    'volatile', vol)::text);
END
"#,
        scope = text_array(schemas),
        excl = text_array(&likes),
        publication = lit(&n.publication),
        g_seq = lit(&n.guc_seq),
        g_dropped = lit(&n.guc_dropped),
        g_rewrites = lit(&n.guc_rewrites),
        g_pending = lit(&n.guc_pending),
        g_missing = lit(&n.guc_missing),
        drop_scope = in_scope("d.schema_name", "d.object_name"),
        type_scope = in_scope("ns.nspname", "ty.typname"),
        touched_scope = touched_scope,
        pending_scope = in_scope("k.nspname", "k.relname"),
        rewrite_scope = in_scope("k.nspname", "k.relname"),
        prefix = lit(&prefix(plan_name)),
        version = VERSION,
        key_table = key_table,
    );
    let emit_tag = dollar_tag(&emit_body);
    let trigger_body = format!(
        "\nBEGIN\n  PERFORM {emit}(TG_EVENT, TG_TAG, pg_catalog.current_setting('search_path'), pg_catalog.current_setting('role'));\nEND\n"
    );
    let trigger_tag = dollar_tag(&trigger_body);
    let tags = TAGS.iter().map(|t| lit(t)).collect::<Vec<_>>().join(", ");
    format!(
        r#"{guard}CREATE SCHEMA IF NOT EXISTS {schema};
{marker}{record}CREATE TABLE IF NOT EXISTS {key_table} (key text NOT NULL);
REVOKE ALL ON TABLE {key_table} FROM PUBLIC;
DO $pgmove_key$
BEGIN
  IF NOT EXISTS (SELECT 1 FROM {key_table}) THEN
    IF pg_catalog.current_setting('server_version_num')::int >= 130000 THEN
      EXECUTE 'INSERT INTO {key_table_in_string} SELECT pg_catalog.gen_random_uuid()::text';
    ELSE
      INSERT INTO {key_table} SELECT md5(random()::text || clock_timestamp()::text || pg_backend_pid()::text || random()::text);
    END IF;
  END IF;
END
$pgmove_key$;
CREATE OR REPLACE FUNCTION {emit}(event text, tag text, caller_path text, caller_role text)
RETURNS void LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
SET DateStyle = 'ISO, MDY' SET IntervalStyle = 'postgres' SET TimeZone = 'UTC'
SET extra_float_digits = 3 SET bytea_output = 'hex'
AS {emit_tag}{emit_body}{emit_tag};
REVOKE ALL ON FUNCTION {emit}(text, text, text, text) FROM PUBLIC;
CREATE OR REPLACE FUNCTION {func}() RETURNS event_trigger LANGUAGE plpgsql SECURITY DEFINER
AS {trigger_tag}{trigger_body}{trigger_tag};
DROP EVENT TRIGGER IF EXISTS {trigger};
CREATE EVENT TRIGGER {trigger} ON ddl_command_end WHEN TAG IN ({tags}) EXECUTE PROCEDURE {func}();
DROP EVENT TRIGGER IF EXISTS {drop_trigger};
CREATE EVENT TRIGGER {drop_trigger} ON sql_drop WHEN TAG IN ('DROP TABLE') EXECUTE PROCEDURE {func}();
DROP EVENT TRIGGER IF EXISTS {rewrite_trigger};
CREATE EVENT TRIGGER {rewrite_trigger} ON table_rewrite WHEN TAG IN ('ALTER TABLE') EXECUTE PROCEDURE {func}();
DROP EVENT TRIGGER IF EXISTS {start_trigger};
CREATE EVENT TRIGGER {start_trigger} ON ddl_command_start WHEN TAG IN ('ALTER TABLE') EXECUTE PROCEDURE {func}();
ALTER EVENT TRIGGER {start_trigger} ENABLE ALWAYS;
ALTER EVENT TRIGGER {trigger} ENABLE ALWAYS;
ALTER EVENT TRIGGER {drop_trigger} ENABLE ALWAYS;
ALTER EVENT TRIGGER {rewrite_trigger} ENABLE ALWAYS;
"#,
        guard = GUARD_SQL,
        schema = quote::ident(crate::state::SCHEMA),
        marker = crate::state::CREATE_MARKER_SQL.trim_start(),
        record = record_sql(plan_name, &n),
        key_table_in_string = key_table.replace('\'', "''"),
        trigger = quote::ident(&n.trigger),
        drop_trigger = quote::ident(&n.drop_trigger),
        rewrite_trigger = quote::ident(&n.rewrite_trigger),
        start_trigger = quote::ident(&n.start_trigger),
    )
}

/// Refuses to install into a `pgmove` schema pgmove did not create (no marker table): a user's
/// own schema of that name is never written to.
const GUARD_SQL: &str = "DO $pgmove_guard$
BEGIN
  IF EXISTS (SELECT 1 FROM pg_catalog.pg_namespace WHERE nspname = 'pgmove')
     AND pg_catalog.to_regclass('pgmove.created_by_pgmove') IS NULL THEN
    RAISE EXCEPTION 'the source has a schema named pgmove that pgmove did not create (it has no table pgmove.created_by_pgmove): pgmove does not install its DDL capture (cdc.ddl: replicate) into it'
      USING HINT = 'rename it on the source (ALTER SCHEMA pgmove RENAME TO pgmove_data;), or set cdc.ddl to ignore or refuse';
  END IF;
END
$pgmove_guard$;
";

/// The source's record of what DDL capture created, per plan: one row per object, written in
/// the transaction that creates it; `pgmove cleanup` drops exactly these (by exact name).
pub const RECORD_TABLE: &str = "objects";

/// Kinds of [`RECORD_TABLE`] rows.
pub const RECORD_EVENT_TRIGGER: &str = "event trigger";
pub const RECORD_FUNCTION: &str = "function";
pub const RECORD_TABLE_KIND: &str = "table";

/// The record of plan `plan_name`'s objects (`n`), for [`install_sql`].
fn record_sql(plan_name: &str, n: &Names) -> String {
    let rows: Vec<String> = [
        (RECORD_EVENT_TRIGGER, &n.trigger),
        (RECORD_EVENT_TRIGGER, &n.drop_trigger),
        (RECORD_EVENT_TRIGGER, &n.rewrite_trigger),
        (RECORD_EVENT_TRIGGER, &n.start_trigger),
        (RECORD_FUNCTION, &n.trigger),
        (RECORD_FUNCTION, &n.emit),
        (RECORD_TABLE_KIND, &n.key_table),
    ]
    .iter()
    .map(|(kind, name)| {
        format!(
            "({}, {}, {})",
            quote::literal(plan_name),
            quote::literal(kind),
            quote::literal(name)
        )
    })
    .collect();
    format!(
        "CREATE TABLE IF NOT EXISTS {table} (
    plan_name  text NOT NULL,
    kind       text NOT NULL,
    name       text NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (kind, name)
);
REVOKE ALL ON TABLE {table} FROM PUBLIC;
INSERT INTO {table} (plan_name, kind, name) VALUES {rows} ON CONFLICT (kind, name) DO NOTHING;
",
        table = quote::qualified(crate::state::SCHEMA, RECORD_TABLE),
        rows = rows.join(", ")
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

/// Installs the trigger on the source and returns the key [`handle`](super::handle) checks messages against.
pub async fn install(
    source: &Endpoint,
    plan_name: &str,
    schemas: &[String],
    exclude: &[String],
) -> Result<String, PgError> {
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
        let golden = include_str!("install_sql.golden.sql");
        let mut now = String::new();
        for (plan, schemas, exclude) in golden_cases() {
            now.push_str(&install_sql(plan, &schemas, &exclude));
            now.push_str("-- ==== next case ====\n");
        }
        assert_eq!(now.len(), golden.len());
        for (i, (a, b)) in now.lines().zip(golden.lines()).enumerate() {
            assert_eq!(a, b, "line {} differs", i + 1);
        }
        assert_eq!(now, golden);
    }
}
