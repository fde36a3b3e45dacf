//! DDL during change capture (`cdc.ddl`): an event trigger on the source puts each
//! CREATE/ALTER/DROP TABLE into the change stream, and the applier runs it on the target at
//! that point of the stream.
//!
//! # On the source ([`install_sql`], [`uninstall_sql`])
//!
//! In schema `pgmove`, for plan artifact `A` (`pgmove_<name>`, see [`crate::plan::artifact_name`]):
//! - event trigger `A_ddl` on `ddl_command_end` for `CREATE TABLE`, `CREATE TABLE AS`,
//!   `SELECT INTO`, `ALTER TABLE` and `DROP TABLE`; `A_ddl_drop` on `sql_drop` (`DROP TABLE`:
//!   the dropped tables are only visible there); `A_ddl_rewrite` on `table_rewrite`
//!   (`ALTER TABLE`: a rewrite that computed per-row values the stream does not carry);
//!   `A_ddl_start` on `ddl_command_start` (`ALTER TABLE`: which columns had a stored default
//!   before the statement);
//! - function `pgmove.A_ddl()` they all run, and `pgmove.A_ddl_emit(...)` doing the work;
//! - table `pgmove.A_ddl_key`: a random key only the installing role can read;
//! - with the schema, the marker table `pgmove.created_by_pgmove` (see
//!   [`crate::state::MARKER_TABLE`]), and a row per object above in `pgmove.objects`
//!   ([`RECORD_TABLE`]), written in the transaction that creates them: `pgmove cleanup` drops
//!   exactly those. A `pgmove` schema without the marker is someone else's: the install
//!   refuses to write into it.
//!
//! The names come from [`crate::plan::names::ddl_names`]: exact per plan, hashed when too long.
//!
//! The triggers are `ENABLE ALWAYS`: they fire in sessions with `session_replication_role =
//! replica` too.
//!
//! For each statement that touches a table of the replicated schemas (not matching an
//! `exclude` glob), the trigger emits ONE transactional
//! `pg_logical_emit_message(true, 'pgmove.ddl.<plan>', <json>)` right after the statement ran,
//! so the message sits in the stream after the statement's effects and before whatever the
//! transaction does next. The JSON carries the command tag, `current_query()`, the ordinal of
//! the statement in the client's query string, the role and `search_path` it ran with, the
//! tables it touched, and the key. See [`DdlEvent`].
//!
//! ## New tables are published from their creation on
//!
//! pgoutput streams a table's changes only once it is in the publication, judged as of each
//! change's own position in the WAL: rows inserted between a `CREATE TABLE` and a later
//! `ALTER PUBLICATION ... ADD TABLE` are never sent. So the trigger adds a new table to the
//! plan's publication itself, in the creating transaction, at the end of the `CREATE TABLE`
//! statement (before any row can be inserted): every row of it is then streamed, including
//! those inserted later in the same transaction (tested in `tests/it/cdc_ddl.rs`). Partitions of a
//! published partitioned table are published with it and left alone. Only tables with a
//! replica identity (a primary key, or REPLICA IDENTITY FULL/INDEX) are added: adding one
//! without makes every UPDATE and DELETE of it fail on the source ("cannot update table ...
//! because it does not have a replica identity and publishes updates"). A table created
//! without a key stays pending until the end of its transaction and is published as soon as a
//! statement gives it one (`CREATE TABLE t (...); ALTER TABLE t ADD PRIMARY KEY ...`). If it
//! already holds rows by then (or was filled by `CREATE TABLE AS`/`SELECT INTO`), those rows
//! are not in the stream, and the message says so ([`DdlError::Unreplayable`]).
//!
//! ## Trust
//!
//! `pg_logical_emit_message` is executable by PUBLIC (PostgreSQL 15), so anyone who can log in
//! to the source can put a message with our prefix into the stream. The applier runs only
//! messages carrying the key of `pgmove.A_ddl_key` (readable by its owner only; the SECURITY
//! DEFINER emit function reads it). The statement is run on the target as the role that ran
//! it on the source (`SET ROLE`), so a table owner's DDL cannot do more there than it could on
//! the source, and new tables get the same owner.
//!
//! ## Privileges
//!
//! Event triggers need a superuser: `rds_superuser` on Amazon RDS and Aurora (AWS: "You can use
//! the main user account ... to create, modify, rename, and delete event triggers"; drop them
//! before a major version upgrade), `cloudsqlsuperuser` on Cloud SQL. The installing role owns
//! the SECURITY DEFINER functions; to add tables to the publication it must own the
//! publication and be able to act as the tables' owners (a real superuser can; on RDS,
//! `rds_superuser` must be a member of the owning roles, as for creating the publication in
//! the first place). When it cannot, the message says the table is not published.
//! On the target, the applying role must be able to `SET ROLE` to the roles that run DDL on the
//! source (a superuser can; otherwise `GRANT <role> TO <applier>`).
//!
//! # On the applier ([`handle`])
//!
//! [`handle`] turns a [`LogicalMessage`] into the SQL to run on the target at that point of the
//! stream (`replicate`), nothing (`ignore`, another plan's prefix, a message marked as applied
//! by hand), or an error (`refuse`, or a statement pgmove cannot replay exactly).
//!
//! What cannot be replayed exactly, and is refused with [`DdlError::Unreplayable`]:
//! - a statement run inside a function, procedure or DO block (`current_query()` is then the
//!   call, not the DDL), or one of several table DDL statements of one query string that
//!   cannot be told apart;
//! - `CREATE TABLE AS` / `SELECT INTO` (their rows are not in the stream);
//! - `ALTER TABLE ... ADD COLUMN` with a volatile default or an identity on a table with rows
//!   (the values each row got are computed by a table rewrite, which logical decoding does
//!   not stream);
//! - rows written into a new table before it could be published.
//!
//! `ADD COLUMN ... DEFAULT now()` (any non-volatile default) is replayed exactly: existing rows
//! get the value the source computed (its `attmissingval`), not the target's `now()`. After each
//! statement the target checks that the tables it touched exist where the source has them (or
//! no longer exist, after DROP TABLE), so a statement resolved differently there (a schema the
//! target lacks, say) stops the apply instead of landing elsewhere.
//!
//! On sources older than PostgreSQL 12 the checks for volatile defaults and stored missing
//! values are skipped (the catalog columns they read do not exist).
//!
//! `ALTER TABLE ... ALTER COLUMN ... TYPE ... USING <expr>` rewrites the table too; it is
//! replayed, which is exact for the usual deterministic casts but not for a volatile `USING`.
//!
//! Enum types are covered too: `CREATE TYPE ... AS ENUM` and `ALTER TYPE` of an enum (`ADD
//! VALUE`, `RENAME VALUE`, ...) are emitted like table DDL (object type `enum`). A new enum
//! value cannot be used in the transaction that added it before it commits, so the applier
//! commits the target transaction holding `ADD VALUE` right after the source transaction
//! holding it; on a target before PostgreSQL 12, where `ADD VALUE` cannot run in a transaction
//! block, it runs on its own as `ADD VALUE IF NOT EXISTS` and the progress row follows
//! ([`DdlAction::add_value_autocommit`]).
//!
//! Not covered: other DDL (CREATE INDEX, other CREATE TYPE, CREATE FUNCTION, ...:
//! apply those on the target yourself, before a table that needs them), `DROP SCHEMA ...
//! CASCADE`, and `ALTER TABLE ... SET SCHEMA` into a replicated schema (the table's rows are
//! not on the target).

use std::fmt;

use serde::Deserialize;

use crate::cdc::pgoutput::LogicalMessage;
use crate::pg::{quote, Endpoint, Lsn, PgError};

/// `pg_logical_emit_message` prefix of every plan: `pgmove.ddl.<plan>`.
pub const PREFIX: &str = crate::plan::names::DDL_MESSAGE_PREFIX;

/// Version of the JSON the trigger writes.
const VERSION: u32 = 1;

/// Command tags the `ddl_command_end` trigger fires for.
pub const TAGS: &[&str] = &[
    "CREATE TABLE",
    "CREATE TABLE AS",
    "SELECT INTO",
    "ALTER TABLE",
    "DROP TABLE",
    // Enum types only (the trigger emits nothing for other kinds of types): CREATE TYPE ...
    // AS ENUM, ALTER TYPE ... ADD VALUE / RENAME VALUE / RENAME TO / OWNER TO / SET SCHEMA.
    "CREATE TYPE",
    "ALTER TYPE",
];

/// The message prefix of a plan.
pub fn prefix(plan_name: &str) -> String {
    crate::plan::names::ddl_message_prefix(plan_name)
}

/// Names of the source objects of a plan: derived in [`crate::plan::names`].
pub use crate::plan::names::DdlNames as Names;

/// The names for `plan_name` (see [`crate::plan::names::ddl_names`]).
pub fn names(plan_name: &str) -> Names {
    crate::plan::names::ddl_names(plan_name)
}

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

/// Installs the trigger on the source and returns the key [`handle`] checks messages against.
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

/// `cdc.ddl`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum DdlPolicy {
    /// Run each statement on the target at its point of the stream.
    #[default]
    Replicate,
    /// Skip them (the user applies them on the target).
    Ignore,
    /// Stop at the first one.
    Refuse,
}

impl From<crate::plan::Ddl> for DdlPolicy {
    fn from(d: crate::plan::Ddl) -> DdlPolicy {
        match d {
            crate::plan::Ddl::Replicate => DdlPolicy::Replicate,
            crate::plan::Ddl::Ignore => DdlPolicy::Ignore,
            crate::plan::Ddl::Refuse => DdlPolicy::Refuse,
        }
    }
}

/// What [`handle`] needs besides the message.
#[derive(Clone, Debug, Default)]
pub struct DdlConfig {
    pub plan_name: String,
    /// The key installed on the source ([`install`], [`read_key`]).
    pub key: String,
    pub policy: DdlPolicy,
    /// The plan's `exclude` globs: statements touching only excluded tables are skipped.
    pub exclude: Vec<String>,
    /// Messages (by LSN) the user applied on the target by hand after a refusal: skipped.
    pub applied_by_hand: Vec<Lsn>,
}

/// A table a statement touched, as the trigger saw it.
#[derive(Clone, Debug, Deserialize, PartialEq, Eq)]
pub struct DdlObject {
    /// `table`, `foreign table`, `view`, `materialized view`.
    #[serde(rename = "type")]
    pub object_type: String,
    pub schema: String,
    pub name: String,
    /// As `pg_identify_object` writes it (quoted where needed).
    pub identity: String,
}

/// A table created in the statement's transaction, and whether its changes are streamed.
#[derive(Clone, Debug, Deserialize, PartialEq, Eq)]
pub struct NewTable {
    pub schema: String,
    pub name: String,
    /// In the publication (added by the trigger in the creating transaction, or published
    /// with its partitioned parent): every row is in the stream.
    pub published: bool,
    /// It held rows when it was published: those rows are not in the stream.
    #[serde(default)]
    pub had_rows: bool,
    /// Why it is not published.
    #[serde(default)]
    pub reason: Option<String>,
}

/// A column added with a non-volatile default: existing rows read this value.
#[derive(Clone, Debug, Deserialize, PartialEq, Eq)]
pub struct MissingValue {
    pub schema: String,
    pub name: String,
    pub column: String,
    /// `attmissingval` as text (a one-element array), in the applier's output settings.
    pub missing: Option<String>,
    /// The element, as text.
    pub value: Option<String>,
    /// Why the value could not be read.
    #[serde(default)]
    pub error: Option<String>,
}

/// A table rewritten with per-row computed values.
#[derive(Clone, Debug, Deserialize, PartialEq, Eq)]
pub struct VolatileRewrite {
    pub schema: String,
    pub name: String,
    pub columns: String,
}

/// A DDL message as the trigger wrote it.
#[derive(Clone, Debug, Deserialize, PartialEq, Eq)]
pub struct DdlEvent {
    pub v: u32,
    pub key: Option<String>,
    /// The command tag: `CREATE TABLE`, `ALTER TABLE`, ...
    pub tag: String,
    /// `current_query()`: the client's whole query string.
    pub sql: String,
    /// Which firing of the trigger within that query string this is (1-based).
    pub n: u32,
    /// The role the statement ran as.
    pub role: Option<String>,
    /// Its `search_path`, as set.
    pub search_path: String,
    pub objects: Vec<DdlObject>,
    #[serde(default)]
    pub tables: Vec<NewTable>,
    #[serde(default)]
    pub missing: Vec<MissingValue>,
    #[serde(default)]
    pub volatile: Vec<VolatileRewrite>,
}

/// What to do on the target.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DdlAction {
    /// Where the message is in the stream.
    pub lsn: Lsn,
    pub tag: String,
    /// The statement as it ran on the source.
    pub statement: String,
    /// The SQL to run on the target, in the apply transaction, after the changes that came
    /// before the message and before those that come after it: the statement with the
    /// source's role and search_path (both restored afterwards), then the values existing
    /// rows got for columns added with a non-volatile default.
    pub sql: String,
    /// New tables of the transaction. Published ones need nothing; the lead decides what to
    /// do with an unpublished one (`reason`), whose rows will not arrive.
    pub new_tables: Vec<NewTable>,
    /// `ALTER TYPE ... ADD VALUE`: PostgreSQL 12 and later run it in a transaction block, but
    /// the new value cannot be used before that transaction commits ("unsafe use of new
    /// value"), so the target transaction holding it commits right after the source
    /// transaction holding it, with its progress row. Before PostgreSQL 12 it cannot run in a
    /// transaction block at all: these statements, each run on its own (autocommit), replay
    /// it as `ADD VALUE IF NOT EXISTS` (so running it again after a crash before the progress
    /// row is recorded is harmless); the progress row is recorded right after. `None` for
    /// every other statement.
    pub add_value_autocommit: Option<Vec<String>>,
}

impl DdlAction {
    /// New tables whose rows will not arrive through the stream.
    pub fn unpublished(&self) -> impl Iterator<Item = &NewTable> {
        self.new_tables.iter().filter(|t| !t.published)
    }
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum DdlError {
    #[error("DDL message at {lsn} cannot be read: {detail}")]
    Malformed { lsn: Lsn, detail: String },
    #[error("a logical decoding message at {lsn} has pgmove's DDL prefix but not the key of the trigger pgmove installed: it was not written by the trigger (anyone can call pg_logical_emit_message), so it is not run; if the trigger was reinstalled during change capture, apply the DDL on the target yourself and mark the message at {lsn} as applied")]
    Untrusted { lsn: Lsn },
    #[error("DDL on the source (at {lsn}): {sql}; cdc.ddl is refuse: apply it on the target yourself, then restart apply (with the DDL at {lsn} marked as applied)")]
    Refused { lsn: Lsn, sql: String },
    #[error("DDL on the source (at {lsn}) cannot be replicated exactly: {reason}. Statement: {sql}. Apply it on the target yourself, then restart apply (with the DDL at {lsn} marked as applied)")]
    Unreplayable {
        lsn: Lsn,
        sql: String,
        reason: String,
    },
}

/// Reads a message: `None` when it is not one of `plan_name`'s DDL messages.
pub fn parse(msg: &LogicalMessage, plan_name: &str) -> Result<Option<DdlEvent>, DdlError> {
    if msg.prefix != prefix(plan_name) {
        return Ok(None);
    }
    let malformed = |detail: String| DdlError::Malformed {
        lsn: msg.lsn,
        detail,
    };
    if !msg.transactional {
        return Err(malformed(
            "it is not transactional (the trigger's are)".to_string(),
        ));
    }
    let event: DdlEvent = serde_json::from_slice(&msg.content)
        .map_err(|e| malformed(format!("invalid JSON: {e}")))?;
    if event.v != VERSION {
        return Err(malformed(format!(
            "version {} (this pgmove reads version {VERSION})",
            event.v
        )));
    }
    Ok(Some(event))
}

/// Turns a logical decoding message into what to do on the target at its point of the stream.
///
/// `Ok(None)`: not a DDL message of this plan, the policy is `ignore`, the statement only
/// touches excluded tables, or the user applied it by hand ([`DdlConfig::applied_by_hand`]).
pub fn handle(msg: &LogicalMessage, cfg: &DdlConfig) -> Result<Option<DdlAction>, DdlError> {
    let event = match parse(msg, &cfg.plan_name)? {
        Some(e) => e,
        None => return Ok(None),
    };
    if cfg.applied_by_hand.contains(&msg.lsn) {
        return Ok(None);
    }
    if event.key.as_deref() != Some(cfg.key.as_str()) || cfg.key.is_empty() {
        return Err(DdlError::Untrusted { lsn: msg.lsn });
    }
    let excluded = |schema: &str, name: &str| {
        let full = format!("{schema}.{name}");
        cfg.exclude
            .iter()
            .any(|g| crate::plan::glob_match(g, &full))
    };
    let kept = event
        .objects
        .iter()
        .filter(|o| !excluded(&o.schema, &o.name))
        .count();
    if kept == 0 {
        return Ok(None);
    }
    if cfg.policy == DdlPolicy::Ignore {
        return Ok(None);
    }
    let chosen = statement_of(&event);
    let shown = match &chosen {
        Ok(s) => s.to_string(),
        Err(_) => event.sql.trim().to_string(),
    };
    let unreplayable = |reason: String| DdlError::Unreplayable {
        lsn: msg.lsn,
        sql: shown.clone(),
        reason,
    };
    if cfg.policy == DdlPolicy::Refuse {
        return Err(DdlError::Refused {
            lsn: msg.lsn,
            sql: shown.clone(),
        });
    }
    let statement = chosen.map_err(|e| unreplayable(e.to_string()))?;
    if kept < event.objects.len() {
        return Err(unreplayable(
            "it touches tables the plan excludes as well as replicated ones".to_string(),
        ));
    }
    if event.tag == "CREATE TABLE AS" || event.tag == "SELECT INTO" {
        let names: Vec<String> = event
            .tables
            .iter()
            .map(|t| format!("{}.{}", t.schema, t.name))
            .collect();
        return Err(unreplayable(format!(
            "{} writes its rows before the new table can be published, so they are not in the change stream, and running the query again on the target is not guaranteed to give the same rows; create and fill {} on the target yourself",
            event.tag,
            if names.is_empty() { "the table".to_string() } else { names.join(", ") }
        )));
    }
    if let Some(v) = event.volatile.first() {
        return Err(unreplayable(format!(
            "it gave the existing rows of {}.{} values computed row by row (column {}: a volatile default or an identity), in a table rewrite that logical decoding does not stream; the target would compute other values",
            v.schema, v.name, v.columns
        )));
    }
    if let Some(t) = event.tables.iter().find(|t| t.published && t.had_rows) {
        return Err(unreplayable(format!(
            "table {}.{} already held rows when it could be published (it got its primary key after them): those rows are not in the change stream; copy them to the target yourself",
            t.schema, t.name
        )));
    }
    if let Some(t) = event.tables.iter().find(|t| {
        !t.published
            && t.reason
                .as_deref()
                .is_some_and(|r| r.starts_with("could not") || r.starts_with("publication"))
    }) {
        return Err(unreplayable(format!(
            "new table {}.{} could not be published, so its rows would not arrive: {}",
            t.schema,
            t.name,
            t.reason.as_deref().unwrap_or("")
        )));
    }
    if let Some(m) = event.missing.iter().find(|m| m.error.is_some()) {
        return Err(unreplayable(format!(
            "the value existing rows of {}.{} got for new column {} cannot be reproduced: {}",
            m.schema,
            m.name,
            m.column,
            m.error.as_deref().unwrap_or("")
        )));
    }
    let role = match event.role.as_deref() {
        Some(r) if !r.is_empty() => r,
        _ => return Err(unreplayable("the role it ran as is unknown".to_string())),
    };
    let sql = target_sql(statement, role, &event, &event.missing);
    let add_value_autocommit = (event.tag == "ALTER TYPE")
        .then(|| add_value_if_not_exists(statement))
        .flatten()
        .map(|s| autocommit_sql(&s, role, &event));
    Ok(Some(DdlAction {
        lsn: msg.lsn,
        tag: event.tag.clone(),
        statement: statement.to_string(),
        sql,
        new_tables: event.tables.clone(),
        add_value_autocommit,
    }))
}

/// `ALTER TYPE ... ADD VALUE [IF NOT EXISTS] ...` made idempotent: `IF NOT EXISTS` inserted
/// after `ADD VALUE` when missing. `None` when the statement is not an `ADD VALUE`.
pub fn add_value_if_not_exists(statement: &str) -> Option<String> {
    let words = top_words(statement);
    let upper: Vec<&str> = words.iter().map(|(w, _)| w.as_str()).collect();
    if upper.len() < 2 || upper[0] != "ALTER" || upper[1] != "TYPE" {
        return None;
    }
    let i = (2..upper.len().saturating_sub(1))
        .find(|&i| upper[i] == "ADD" && upper[i + 1] == "VALUE")?;
    if upper.get(i + 2..i + 5) == Some(&["IF", "NOT", "EXISTS"][..]) {
        return Some(statement.trim().to_string());
    }
    let at = words[i + 1].1;
    Some(
        format!(
            "{} IF NOT EXISTS{}",
            &statement[..at],
            statement[at..].trim_end()
        )
        .trim()
        .to_string(),
    )
}

/// The upper-cased bare words of one statement, outside quotes and comments, each with the
/// byte offset just after it.
fn top_words(sql: &str) -> Vec<(String, usize)> {
    let b = sql.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < b.len() {
        let c = b[i];
        if c == b'-' && b.get(i + 1) == Some(&b'-') {
            while i < b.len() && b[i] != b'\n' {
                i += 1;
            }
        } else if c == b'/' && b.get(i + 1) == Some(&b'*') {
            match sql[i + 2..].find("*/") {
                Some(k) => i += k + 4,
                None => i = b.len(),
            }
        } else if c == b'\'' || c == b'"' {
            // A literal or a quoted identifier ('' and "" escape the quote; an E'' string's
            // backslash escapes only matter after ADD VALUE, where nothing more is read).
            i += 1;
            while i < b.len() {
                if b[i] == c {
                    if b.get(i + 1) == Some(&c) {
                        i += 2;
                        continue;
                    }
                    break;
                }
                i += 1;
            }
            i += 1;
            out.push((String::from(c as char), i.min(b.len())));
        } else if c.is_ascii_alphabetic() || c == b'_' || c >= 0x80 {
            let s = i;
            while i < b.len()
                && (b[i].is_ascii_alphanumeric() || b[i] == b'_' || b[i] == b'$' || b[i] >= 0x80)
            {
                i += 1;
            }
            out.push((sql[s..i].to_ascii_uppercase(), i));
        } else {
            i += 1;
        }
    }
    out
}

/// `statement` run as `role` with the source's `search_path`, as separate statements for a
/// session outside a transaction block (each its own transaction), both settings restored
/// after.
fn autocommit_sql(statement: &str, role: &str, event: &DdlEvent) -> Vec<String> {
    vec![
        "SELECT pg_catalog.set_config('pgmove.ddl_saved_role', pg_catalog.current_setting('role'), false), pg_catalog.set_config('pgmove.ddl_saved_path', pg_catalog.current_setting('search_path'), false)".to_string(),
        format!("SET ROLE {}", quote::ident(role)),
        format!(
            "SELECT pg_catalog.set_config('search_path', {}, false)",
            quote::literal(&event.search_path)
        ),
        statement.trim().to_string(),
        "SELECT pg_catalog.set_config('search_path', pg_catalog.current_setting('pgmove.ddl_saved_path'), false), pg_catalog.set_config('role', pg_catalog.current_setting('pgmove.ddl_saved_role'), false)".to_string(),
    ]
}

/// The statement wrapped for the target: run as `role` with the source's `search_path`, both
/// restored after; then a check that the tables it touched are (or, dropped, are no longer)
/// where the source has them, so a schema or object the target lacks stops the apply instead
/// of the statement landing elsewhere; then the values of new columns.
fn target_sql(statement: &str, role: &str, event: &DdlEvent, missing: &[MissingValue]) -> String {
    let search_path = event.search_path.as_str();
    let mut sql = String::new();
    sql.push_str("SELECT pg_catalog.set_config('pgmove.ddl_saved_role', pg_catalog.current_setting('role'), true), pg_catalog.set_config('pgmove.ddl_saved_path', pg_catalog.current_setting('search_path'), true);\n");
    sql.push_str(&format!("SET LOCAL ROLE {};\n", quote::ident(role)));
    sql.push_str(&format!(
        "SELECT pg_catalog.set_config('search_path', {}, true);\n",
        quote::literal(search_path)
    ));
    sql.push_str(statement.trim());
    // A trailing line comment must not swallow the semicolon.
    sql.push_str("\n;\n");
    sql.push_str("SELECT pg_catalog.set_config('search_path', pg_catalog.current_setting('pgmove.ddl_saved_path'), true), pg_catalog.set_config('role', pg_catalog.current_setting('pgmove.ddl_saved_role'), true);\n");
    let dropped = event.tag == "DROP TABLE";
    for o in &event.objects {
        let table = quote::qualified(&o.schema, &o.name);
        if o.object_type == "enum" {
            // An enum type: it exists where the source has it (under its new name after
            // RENAME TO or SET SCHEMA).
            let problem = format!(
                "pgmove: after replaying the source's DDL, type {}.{} does not exist on the target",
                o.schema, o.name
            );
            let body = format!(
                "BEGIN IF pg_catalog.to_regtype({}) IS NULL THEN RAISE EXCEPTION '%', {}; END IF; END",
                quote::literal(&table),
                quote::literal(&problem)
            );
            sql.push_str(&format!("DO {};\n", quote::literal(&body)));
            continue;
        }
        let problem = if dropped {
            format!(
                "pgmove: after replaying the source's DDL, {}.{} still exists on the target",
                o.schema, o.name
            )
        } else {
            format!(
                "pgmove: after replaying the source's DDL, {}.{} does not exist on the target (did the source create its schema, or something it needs, with DDL that cdc.ddl does not replicate? only CREATE/ALTER/DROP TABLE and CREATE/ALTER TYPE of enums are)",
                o.schema, o.name
            )
        };
        let body = format!(
            "BEGIN IF pg_catalog.to_regclass({}) {} THEN RAISE EXCEPTION '%', {}; END IF; END",
            quote::literal(&table),
            if dropped { "IS NOT NULL" } else { "IS NULL" },
            quote::literal(&problem)
        );
        sql.push_str(&format!("DO {};\n", quote::literal(&body)));
    }
    for m in missing {
        sql.push_str(&missing_fix(m));
    }
    sql
}

/// Gives the rows that existed when a column was added the value the source gave them, when
/// the target computed another (a default like `now()` is evaluated once, on each server).
/// Every row of the table at this point of the stream existed then on the source.
fn missing_fix(m: &MissingValue) -> String {
    let table = quote::qualified(&m.schema, &m.name);
    let value = match &m.value {
        Some(v) => quote::literal(v),
        None => "NULL".to_string(),
    };
    let missing = match &m.missing {
        Some(v) => quote::literal(v),
        None => "NULL".to_string(),
    };
    let body = format!(
        "BEGIN IF (SELECT a.attmissingval::text FROM pg_catalog.pg_attribute a WHERE a.attrelid = {reg}::regclass AND a.attname = {col} AND NOT a.attisdropped) IS DISTINCT FROM {missing} THEN UPDATE ONLY {table} SET {ident} = {value}; END IF; END",
        reg = quote::literal(&table),
        col = quote::literal(&m.column),
        ident = quote::ident(&m.column),
    );
    format!("DO {};\n", quote::literal(&body))
}

/// Why the statement that fired the trigger cannot be told from its query string.
#[derive(Debug, thiserror::Error)]
enum NoStatement {
    #[error("command tag {0} is not one pgmove replays")]
    Tag(String),
    #[error("it ran inside {0:?}, not as a statement of its own (a function, procedure or DO block?): only the statements themselves can be replayed")]
    Inside(String),
    #[error("pgmove cannot tell which statement of the query string ran it (a DDL statement inside a function it called?)")]
    NotTheNth,
    #[error("pgmove cannot tell which statement of the query string ran it")]
    Ambiguous,
}

/// The statement of the query string that fired the trigger, or why it cannot be told.
fn statement_of(event: &DdlEvent) -> Result<&str, NoStatement> {
    let want = kind_of_tag(&event.tag).ok_or_else(|| NoStatement::Tag(event.tag.clone()))?;
    let pieces = split_statements(&event.sql);
    let firing: Vec<&Statement> = pieces.iter().filter(|p| p.kind != Kind::Other).collect();
    if firing.is_empty() {
        return Err(NoStatement::Inside(abbreviate(event.sql.trim(), 200)));
    }
    let n = event.n as usize;
    let p = match n.checked_sub(1).and_then(|i| firing.get(i)) {
        Some(p) if p.kind == want => *p,
        _ => return Err(NoStatement::NotTheNth),
    };
    if firing.len() > 1 {
        let text = p.text.to_lowercase();
        if !event
            .objects
            .iter()
            .any(|o| text.contains(&o.name.to_lowercase()))
        {
            return Err(NoStatement::Ambiguous);
        }
    }
    Ok(p.text)
}

fn abbreviate(s: &str, max: usize) -> String {
    if s.chars().count() <= max {
        return s.to_string();
    }
    let cut: String = s.chars().take(max).collect();
    format!("{cut}...")
}

/// What a statement is, as far as the trigger is concerned.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// `CREATE [GLOBAL|LOCAL] [TEMP|TEMPORARY|UNLOGGED] TABLE` (also `... AS`).
    CreateTable,
    AlterTable,
    DropTable,
    /// `SELECT ... INTO new_table`.
    SelectInto,
    /// `CREATE TYPE` (the trigger fires for every kind; it emits enums only).
    CreateType,
    /// `ALTER TYPE`.
    AlterType,
    /// Anything the trigger does not fire for.
    Other,
}

fn kind_of_tag(tag: &str) -> Option<Kind> {
    Some(match tag {
        "CREATE TABLE" | "CREATE TABLE AS" => Kind::CreateTable,
        "ALTER TABLE" => Kind::AlterTable,
        "DROP TABLE" => Kind::DropTable,
        "SELECT INTO" => Kind::SelectInto,
        "CREATE TYPE" => Kind::CreateType,
        "ALTER TYPE" => Kind::AlterType,
        _ => return None,
    })
}

/// One statement of a query string.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Statement<'a> {
    /// Its text, without surrounding whitespace and the terminating semicolon.
    pub text: &'a str,
    pub kind: Kind,
}

/// Splits a query string into its statements as the server does: at semicolons outside
/// quotes, quoted identifiers, dollar quotes, comments, parentheses and the `BEGIN ATOMIC ...
/// END` body of a function or procedure. Statements holding only comments are left out.
pub fn split_statements(sql: &str) -> Vec<Statement<'_>> {
    let b = sql.as_bytes();
    let mut out = Vec::new();
    let mut start = 0;
    let mut i = 0;
    let mut depth: i32 = 0;
    let mut begin_depth: i32 = 0;
    // Upper-cased words outside quotes and comments, with their parenthesis depth.
    let mut words: Vec<(String, i32)> = Vec::new();
    let ident_char = |c: u8| c.is_ascii_alphanumeric() || c == b'_' || c == b'$' || c >= 0x80;
    let finish = |start: usize, end: usize, words: &mut Vec<(String, i32)>, out: &mut Vec<_>| {
        let text = sql[start..end].trim();
        if !comments_only(text) {
            out.push(Statement {
                text,
                kind: classify(words),
            });
        }
        words.clear();
    };
    while i < b.len() {
        let c = b[i];
        match c {
            b'-' if b.get(i + 1) == Some(&b'-') => {
                while i < b.len() && b[i] != b'\n' {
                    i += 1;
                }
                continue;
            }
            b'/' if b.get(i + 1) == Some(&b'*') => {
                let mut level = 0;
                while i < b.len() {
                    if b[i] == b'/' && b.get(i + 1) == Some(&b'*') {
                        level += 1;
                        i += 2;
                    } else if b[i] == b'*' && b.get(i + 1) == Some(&b'/') {
                        level -= 1;
                        i += 2;
                        if level == 0 {
                            break;
                        }
                    } else {
                        i += 1;
                    }
                }
                continue;
            }
            b'\'' => {
                // E'...' strings take backslash escapes.
                let escapes = i > 0
                    && (b[i - 1] == b'e' || b[i - 1] == b'E')
                    && (i < 2 || !ident_char(b[i - 2]));
                i += 1;
                while i < b.len() {
                    if escapes && b[i] == b'\\' {
                        i += 2;
                        continue;
                    }
                    if b[i] == b'\'' {
                        if b.get(i + 1) == Some(&b'\'') {
                            i += 2;
                            continue;
                        }
                        break;
                    }
                    i += 1;
                }
                i += 1;
                continue;
            }
            b'"' => {
                i += 1;
                while i < b.len() {
                    if b[i] == b'"' {
                        if b.get(i + 1) == Some(&b'"') {
                            i += 2;
                            continue;
                        }
                        break;
                    }
                    i += 1;
                }
                i += 1;
                continue;
            }
            b'$' if i == 0 || !ident_char(b[i - 1]) => {
                // $tag$ ... $tag$ (the tag: empty, or an identifier not starting with a digit).
                let mut j = i + 1;
                while j < b.len() && (b[j].is_ascii_alphanumeric() || b[j] == b'_' || b[j] >= 0x80)
                {
                    j += 1;
                }
                let tag_ok =
                    j < b.len() && b[j] == b'$' && (j == i + 1 || !b[i + 1].is_ascii_digit());
                if tag_ok {
                    let tag = &sql[i..=j];
                    match sql[j + 1..].find(tag) {
                        Some(k) => i = j + 1 + k + tag.len(),
                        None => i = b.len(),
                    }
                    continue;
                }
                i += 1;
                continue;
            }
            b'(' => depth += 1,
            b')' => depth -= 1,
            b';' if depth <= 0 && begin_depth <= 0 => {
                finish(start, i, &mut words, &mut out);
                start = i + 1;
                depth = 0;
                begin_depth = 0;
            }
            c if c.is_ascii_alphabetic() || c == b'_' || c >= 0x80 => {
                let s = i;
                while i < b.len() && ident_char(b[i]) {
                    i += 1;
                }
                let w = sql[s..i].to_ascii_uppercase();
                // BEGIN ATOMIC bodies of CREATE FUNCTION/PROCEDURE hold semicolons (as psql
                // tracks them: BEGIN and, inside, CASE open; END closes).
                let routine = is_routine(&words);
                if routine && (w == "BEGIN" || (begin_depth > 0 && w == "CASE")) {
                    begin_depth += 1;
                } else if begin_depth > 0 && w == "END" {
                    begin_depth -= 1;
                }
                words.push((w, depth));
                continue;
            }
            _ => {}
        }
        i += 1;
    }
    finish(start, b.len(), &mut words, &mut out);
    out
}

/// Whether `text` holds only comments and whitespace.
fn comments_only(text: &str) -> bool {
    let b = text.as_bytes();
    let mut i = 0;
    while i < b.len() {
        if b[i].is_ascii_whitespace() {
            i += 1;
        } else if b[i] == b'-' && b.get(i + 1) == Some(&b'-') {
            while i < b.len() && b[i] != b'\n' {
                i += 1;
            }
        } else if b[i] == b'/' && b.get(i + 1) == Some(&b'*') {
            let mut level = 0;
            while i < b.len() {
                if b[i] == b'/' && b.get(i + 1) == Some(&b'*') {
                    level += 1;
                    i += 2;
                } else if b[i] == b'*' && b.get(i + 1) == Some(&b'/') {
                    level -= 1;
                    i += 2;
                    if level == 0 {
                        break;
                    }
                } else {
                    i += 1;
                }
            }
        } else {
            return false;
        }
    }
    true
}

/// `CREATE [OR REPLACE] FUNCTION|PROCEDURE`.
fn is_routine(words: &[(String, i32)]) -> bool {
    let w: Vec<&str> = words.iter().take(4).map(|(w, _)| w.as_str()).collect();
    matches!(
        w.as_slice(),
        ["CREATE", "FUNCTION" | "PROCEDURE", ..]
            | ["CREATE", "OR", "REPLACE", "FUNCTION" | "PROCEDURE", ..]
    )
}

fn classify(words: &[(String, i32)]) -> Kind {
    let first: Vec<&str> = words.iter().take(4).map(|(w, _)| w.as_str()).collect();
    match first.as_slice() {
        ["CREATE", rest @ ..] => {
            let mut r = rest.iter();
            let mut w = r.next();
            if matches!(w, Some(&"GLOBAL") | Some(&"LOCAL")) {
                w = r.next();
            }
            if matches!(w, Some(&"TEMP") | Some(&"TEMPORARY") | Some(&"UNLOGGED")) {
                w = r.next();
            }
            if w == Some(&"TABLE") {
                Kind::CreateTable
            } else if rest.first() == Some(&"TYPE") {
                Kind::CreateType
            } else {
                Kind::Other
            }
        }
        ["ALTER", "TABLE", ..] => Kind::AlterTable,
        ["ALTER", "TYPE", ..] => Kind::AlterType,
        ["DROP", "TABLE", ..] => Kind::DropTable,
        ["SELECT" | "WITH", ..] => {
            let top = |k: &str| words.iter().any(|(w, d)| *d == 0 && w == k);
            if top("INTO")
                && !["INSERT", "UPDATE", "DELETE", "MERGE"]
                    .iter()
                    .any(|k| top(k))
            {
                Kind::SelectInto
            } else {
                Kind::Other
            }
        }
        _ => Kind::Other,
    }
}

impl fmt::Display for Kind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Kind::CreateTable => "CREATE TABLE",
            Kind::AlterTable => "ALTER TABLE",
            Kind::DropTable => "DROP TABLE",
            Kind::SelectInto => "SELECT INTO",
            Kind::CreateType => "CREATE TYPE",
            Kind::AlterType => "ALTER TYPE",
            Kind::Other => "other",
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;

    const KEY: &str = "k-123";

    fn cfg(policy: DdlPolicy) -> DdlConfig {
        DdlConfig {
            plan_name: "shop".into(),
            key: KEY.into(),
            policy,
            exclude: vec!["public.tmp_*".into()],
            applied_by_hand: vec![],
        }
    }

    fn msg(prefix: &str, json: serde_json::Value) -> LogicalMessage {
        LogicalMessage {
            xid: None,
            transactional: true,
            lsn: Lsn(0x1_0000_0010),
            prefix: prefix.into(),
            content: Bytes::from(json.to_string()),
        }
    }

    fn event(tag: &str, sql: &str, n: u32, objects: &[(&str, &str)]) -> serde_json::Value {
        serde_json::json!({
            "v": 1,
            "key": KEY,
            "tag": tag,
            "sql": sql,
            "n": n,
            "role": "app",
            "search_path": "\"$user\", public",
            "objects": objects.iter().map(|(s, t)| serde_json::json!({
                "type": "table", "schema": s, "name": t, "identity": format!("{s}.{t}")
            })).collect::<Vec<_>>(),
            "tables": [],
            "missing": [],
            "volatile": [],
        })
    }

    #[test]
    fn add_value_is_made_idempotent_and_enums_are_checked_as_types() {
        let f = add_value_if_not_exists;
        assert_eq!(
            f("ALTER TYPE mood ADD VALUE 'x'").as_deref(),
            Some("ALTER TYPE mood ADD VALUE IF NOT EXISTS 'x'")
        );
        assert_eq!(
            f("alter type \"add value\".m add  value 'y' before 'ok'").as_deref(),
            Some("alter type \"add value\".m add  value IF NOT EXISTS 'y' before 'ok'")
        );
        assert_eq!(
            f("ALTER TYPE m ADD VALUE if not exists 'x'").as_deref(),
            Some("ALTER TYPE m ADD VALUE if not exists 'x'")
        );
        assert_eq!(f("ALTER TYPE m RENAME VALUE 'a' TO 'b'"), None);
        assert_eq!(f("ALTER TABLE t ADD VALUE int"), None);
        assert_eq!(classify_one("alter type m add value 'x'"), Kind::AlterType);
        assert_eq!(
            classify_one("CREATE TYPE c AS ENUM ('a')"),
            Kind::CreateType
        );

        let mut e = event("ALTER TYPE", "ALTER TYPE mood ADD VALUE 'x'", 1, &[]);
        e["objects"] = serde_json::json!([{"type": "enum", "schema": "public", "name": "mood", "identity": "public.mood"}]);
        let a = handle(&msg("pgmove.ddl.shop", e), &cfg(DdlPolicy::Replicate))
            .expect("ok")
            .expect("an action");
        assert!(
            a.sql
                .contains("to_regtype(''\"public\".\"mood\"'') IS NULL"),
            "{}",
            a.sql
        );
        let auto = a
            .add_value_autocommit
            .expect("ADD VALUE has an autocommit form");
        assert!(auto.contains(&"ALTER TYPE mood ADD VALUE IF NOT EXISTS 'x'".to_string()));
        assert!(auto.iter().any(|s| s == "SET ROLE \"app\""), "{auto:?}");

        let mut e = event(
            "ALTER TYPE",
            "ALTER TYPE mood RENAME VALUE 'a' TO 'b'",
            1,
            &[],
        );
        e["objects"] = serde_json::json!([{"type": "enum", "schema": "public", "name": "mood", "identity": "public.mood"}]);
        let a = handle(&msg("pgmove.ddl.shop", e), &cfg(DdlPolicy::Replicate))
            .expect("ok")
            .expect("an action");
        assert_eq!(a.add_value_autocommit, None);
    }

    fn classify_one(sql: &str) -> Kind {
        split_statements(sql)[0].kind
    }

    #[test]
    fn replicate_wraps_the_statement_in_the_source_role_and_search_path() {
        let m = msg(
            "pgmove.ddl.shop",
            event(
                "ALTER TABLE",
                "ALTER TABLE t1 ADD COLUMN c text DEFAULT 'x' -- why",
                1,
                &[("public", "t1")],
            ),
        );
        let a = handle(&m, &cfg(DdlPolicy::Replicate))
            .expect("ok")
            .expect("an action");
        assert_eq!(
            a.statement,
            "ALTER TABLE t1 ADD COLUMN c text DEFAULT 'x' -- why"
        );
        assert_eq!(a.lsn, Lsn(0x1_0000_0010));
        assert!(a.sql.contains("SET LOCAL ROLE \"app\";"), "{}", a.sql);
        assert!(
            a.sql
                .contains("set_config('search_path', '\"$user\", public', true)"),
            "{}",
            a.sql
        );
        // Then a check that the table is where the source has it.
        assert!(
            a.sql
                .contains("pg_catalog.to_regclass(''\"public\".\"t1\"'') IS NULL"),
            "{}",
            a.sql
        );
        // The trailing comment cannot swallow the terminator.
        assert!(a.sql.contains("-- why\n;\n"), "{}", a.sql);
        let restore = a
            .sql
            .find("pgmove.ddl_saved_role'), true);\n")
            .expect("restore");
        assert!(restore > a.sql.find("-- why").expect("statement"));
    }

    #[test]
    fn other_plans_foreign_prefixes_and_ignore_give_nothing() {
        let e = event("DROP TABLE", "DROP TABLE t3", 1, &[("public", "t3")]);
        assert_eq!(
            handle(&msg("pgmove.ddl.other", e.clone()), &cfg(DdlPolicy::Refuse)),
            Ok(None)
        );
        assert_eq!(
            handle(&msg("something.else", e.clone()), &cfg(DdlPolicy::Refuse)),
            Ok(None)
        );
        assert_eq!(
            handle(&msg("pgmove.ddl.shop", e.clone()), &cfg(DdlPolicy::Ignore)),
            Ok(None)
        );
        // Only excluded tables: nothing to do, whatever the policy.
        let ex = event(
            "ALTER TABLE",
            "ALTER TABLE tmp_1 ADD c int",
            1,
            &[("public", "tmp_1")],
        );
        assert_eq!(
            handle(&msg("pgmove.ddl.shop", ex), &cfg(DdlPolicy::Refuse)),
            Ok(None)
        );
        // Applied by hand after a refusal.
        let mut c = cfg(DdlPolicy::Refuse);
        c.applied_by_hand.push(Lsn(0x1_0000_0010));
        assert_eq!(handle(&msg("pgmove.ddl.shop", e), &c), Ok(None));
    }

    #[test]
    fn refuse_names_the_statement() {
        let m = msg(
            "pgmove.ddl.shop",
            event(
                "DROP TABLE",
                "BEGIN; DROP TABLE t3; COMMIT;",
                1,
                &[("public", "t3")],
            ),
        );
        let e = handle(&m, &cfg(DdlPolicy::Refuse)).expect_err("refused");
        assert_eq!(
            e,
            DdlError::Refused {
                lsn: Lsn(0x1_0000_0010),
                sql: "DROP TABLE t3".into()
            }
        );
        let text = e.to_string();
        assert!(
            text.starts_with("DDL on the source (at 1/10): DROP TABLE t3; cdc.ddl is refuse: apply it on the target yourself, then restart apply"),
            "{text}"
        );
    }

    #[test]
    fn messages_without_the_key_or_garbled_are_errors() {
        let mut e = event("DROP TABLE", "DROP TABLE t3", 1, &[("public", "t3")]);
        e["key"] = serde_json::json!("forged");
        assert_eq!(
            handle(&msg("pgmove.ddl.shop", e), &cfg(DdlPolicy::Replicate)),
            Err(DdlError::Untrusted {
                lsn: Lsn(0x1_0000_0010)
            })
        );
        let mut bad = msg("pgmove.ddl.shop", serde_json::json!({}));
        bad.content = Bytes::from_static(b"{not json");
        assert!(matches!(
            handle(&bad, &cfg(DdlPolicy::Ignore)),
            Err(DdlError::Malformed { .. })
        ));
        let mut nontx = msg(
            "pgmove.ddl.shop",
            event("DROP TABLE", "DROP TABLE t3", 1, &[("public", "t3")]),
        );
        nontx.transactional = false;
        assert!(matches!(
            handle(&nontx, &cfg(DdlPolicy::Replicate)),
            Err(DdlError::Malformed { .. })
        ));
        let mut v2 = event("DROP TABLE", "DROP TABLE t3", 1, &[("public", "t3")]);
        v2["v"] = serde_json::json!(2);
        assert!(matches!(
            handle(&msg("pgmove.ddl.shop", v2), &cfg(DdlPolicy::Replicate)),
            Err(DdlError::Malformed { .. })
        ));
    }

    #[test]
    fn the_nth_statement_of_a_query_string_is_picked() {
        let sql = "BEGIN; CREATE TABLE t2 (id int PRIMARY KEY); INSERT INTO t2 VALUES (1); ALTER TABLE t1 ADD COLUMN c text DEFAULT 'x;y'; COMMIT;";
        let m = msg(
            "pgmove.ddl.shop",
            event("ALTER TABLE", sql, 2, &[("public", "t1")]),
        );
        let a = handle(&m, &cfg(DdlPolicy::Replicate))
            .expect("ok")
            .expect("action");
        assert_eq!(
            a.statement,
            "ALTER TABLE t1 ADD COLUMN c text DEFAULT 'x;y'"
        );
        let m = msg(
            "pgmove.ddl.shop",
            event("CREATE TABLE", sql, 1, &[("public", "t2")]),
        );
        let a = handle(&m, &cfg(DdlPolicy::Replicate))
            .expect("ok")
            .expect("action");
        assert_eq!(a.statement, "CREATE TABLE t2 (id int PRIMARY KEY)");
        // The ordinal does not match the tag: refused rather than guessed.
        let m = msg(
            "pgmove.ddl.shop",
            event("CREATE TABLE", sql, 2, &[("public", "t2")]),
        );
        assert!(matches!(
            handle(&m, &cfg(DdlPolicy::Replicate)),
            Err(DdlError::Unreplayable { .. })
        ));
    }

    #[test]
    fn ddl_inside_functions_and_ctas_are_unreplayable() {
        let m = msg(
            "pgmove.ddl.shop",
            event(
                "ALTER TABLE",
                "DO $$ BEGIN EXECUTE 'ALTER TABLE t1 ADD c int'; END $$",
                1,
                &[("public", "t1")],
            ),
        );
        let e = handle(&m, &cfg(DdlPolicy::Replicate)).expect_err("unreplayable");
        assert!(e.to_string().contains("inside"), "{e}");
        let mut ctas = event(
            "CREATE TABLE AS",
            "CREATE TABLE t4 AS SELECT 1 AS id",
            1,
            &[("public", "t4")],
        );
        ctas["tables"] = serde_json::json!([{"schema": "public", "name": "t4", "published": false, "had_rows": false, "reason": "no replica identity (no primary key)"}]);
        let e = handle(&msg("pgmove.ddl.shop", ctas), &cfg(DdlPolicy::Replicate))
            .expect_err("unreplayable");
        assert!(e.to_string().contains("public.t4"), "{e}");
        let mut vol = event(
            "ALTER TABLE",
            "ALTER TABLE t1 ADD r float DEFAULT random()",
            1,
            &[("public", "t1")],
        );
        vol["volatile"] = serde_json::json!([{"schema": "public", "name": "t1", "columns": "r"}]);
        assert!(matches!(
            handle(&msg("pgmove.ddl.shop", vol), &cfg(DdlPolicy::Replicate)),
            Err(DdlError::Unreplayable { .. })
        ));
        let mut late = event(
            "ALTER TABLE",
            "ALTER TABLE t5 ADD PRIMARY KEY (id)",
            1,
            &[("public", "t5")],
        );
        late["tables"] = serde_json::json!([{"schema": "public", "name": "t5", "published": true, "had_rows": true, "reason": null}]);
        assert!(matches!(
            handle(&msg("pgmove.ddl.shop", late), &cfg(DdlPolicy::Replicate)),
            Err(DdlError::Unreplayable { .. })
        ));
    }

    #[test]
    fn missing_values_are_set_on_the_target_when_they_differ() {
        let mut e = event(
            "ALTER TABLE",
            "ALTER TABLE t1 ADD ts timestamptz DEFAULT now()",
            1,
            &[("public", "t1")],
        );
        e["missing"] = serde_json::json!([{"schema": "public", "name": "t1", "column": "ts",
            "missing": "{\"2026-01-01 00:00:00+00\"}", "value": "2026-01-01 00:00:00+00", "error": null}]);
        let a = handle(&msg("pgmove.ddl.shop", e), &cfg(DdlPolicy::Replicate))
            .expect("ok")
            .expect("action");
        assert!(
            a.sql.contains("DO 'BEGIN IF (SELECT a.attmissingval::text"),
            "{}",
            a.sql
        );
        assert!(
            a.sql
                .contains("UPDATE ONLY \"public\".\"t1\" SET \"ts\" = ''2026-01-01 00:00:00+00''"),
            "{}",
            a.sql
        );
    }

    #[test]
    fn new_tables_are_reported() {
        let mut e = event(
            "CREATE TABLE",
            "CREATE TABLE log (at timestamptz)",
            1,
            &[("public", "log")],
        );
        e["tables"] = serde_json::json!([{"schema": "public", "name": "log", "published": false, "had_rows": false, "reason": "no replica identity (no primary key)"}]);
        let a = handle(&msg("pgmove.ddl.shop", e), &cfg(DdlPolicy::Replicate))
            .expect("ok")
            .expect("action");
        let un: Vec<&NewTable> = a.unpublished().collect();
        assert_eq!(un.len(), 1);
        assert_eq!(un[0].name, "log");
    }

    #[test]
    fn splitting_respects_quotes_comments_and_routine_bodies() {
        let sql = "CREATE TABLE \"a;b\" (x text DEFAULT 'it''s;'); -- c;\n/* d; /* nested; */ */ \
                   SELECT E'\\';' INTO t9; $f$ ; $f$; \
                   CREATE FUNCTION f() RETURNS int LANGUAGE sql BEGIN ATOMIC SELECT 1; SELECT CASE WHEN true THEN 2 END; END; \
                   ALTER TABLE x ADD y int;;  -- only a comment";
        let s = split_statements(sql);
        let kinds: Vec<Kind> = s.iter().map(|s| s.kind).collect();
        assert_eq!(
            kinds,
            vec![
                Kind::CreateTable,
                Kind::SelectInto,
                Kind::Other,
                Kind::Other,
                Kind::AlterTable
            ],
            "{s:#?}"
        );
        assert_eq!(s[0].text, "CREATE TABLE \"a;b\" (x text DEFAULT 'it''s;')");
        assert!(s[3].text.ends_with("END"), "{}", s[3].text);
        assert_eq!(s[4].text, "ALTER TABLE x ADD y int");
    }

    #[test]
    fn classification() {
        let k = |s: &str| split_statements(s)[0].kind;
        assert_eq!(k("create unlogged table x (a int)"), Kind::CreateTable);
        assert_eq!(k("CREATE GLOBAL TEMP TABLE x (a int)"), Kind::CreateTable);
        assert_eq!(k("create table x as select 1"), Kind::CreateTable);
        assert_eq!(k("CREATE INDEX ON x (a)"), Kind::Other);
        assert_eq!(k("create foreign table x () server s"), Kind::Other);
        assert_eq!(k("drop table if exists x"), Kind::DropTable);
        assert_eq!(
            k("with a as (select 1) insert into x select * from a"),
            Kind::Other
        );
        assert_eq!(k("select * into new_t from x"), Kind::SelectInto);
        assert_eq!(k("select (select 1 into y) from x"), Kind::Other);
        assert_eq!(k("insert into x values (1)"), Kind::Other);
    }

    #[test]
    fn names_fit_in_63_bytes() {
        let n = names("shop");
        assert_eq!(n.trigger, "pgmove_shop_ddl");
        assert_eq!(n.publication, "pgmove_shop");
        let long = names(&"x".repeat(crate::plan::MAX_NAME_LEN));
        for s in [
            &long.trigger,
            &long.drop_trigger,
            &long.rewrite_trigger,
            &long.start_trigger,
            &long.emit,
            &long.key_table,
        ] {
            assert!(s.len() <= 63, "{s}");
        }
        assert_ne!(long.trigger, long.drop_trigger);
        assert_eq!(glob_to_like("public.tmp_*"), "public.tmp\\_%");
    }

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
}
