DO $pgmove_guard$
BEGIN
  IF EXISTS (SELECT 1 FROM pg_catalog.pg_namespace WHERE nspname = 'pgmove')
     AND pg_catalog.to_regclass('pgmove.created_by_pgmove') IS NULL THEN
    RAISE EXCEPTION 'the source has a schema named pgmove that pgmove did not create (it has no table pgmove.created_by_pgmove): pgmove does not install its DDL capture (cdc.ddl: replicate) into it'
      USING HINT = 'rename it on the source (ALTER SCHEMA pgmove RENAME TO pgmove_data;), or set cdc.ddl to ignore or refuse';
  END IF;
END
$pgmove_guard$;
CREATE SCHEMA IF NOT EXISTS "pgmove";
CREATE TABLE IF NOT EXISTS pgmove.created_by_pgmove (
    created_at timestamptz NOT NULL DEFAULT now(),
    note       text NOT NULL
);
INSERT INTO pgmove.created_by_pgmove (note)
    SELECT 'this schema was created by pgmove; pgmove cleanup drops it'
    WHERE NOT EXISTS (SELECT 1 FROM pgmove.created_by_pgmove);
CREATE TABLE IF NOT EXISTS "pgmove"."objects" (
    plan_name  text NOT NULL,
    kind       text NOT NULL,
    name       text NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (kind, name)
);
REVOKE ALL ON TABLE "pgmove"."objects" FROM PUBLIC;
INSERT INTO "pgmove"."objects" (plan_name, kind, name) VALUES ('shop', 'event trigger', 'pgmove_shop_ddl'), ('shop', 'event trigger', 'pgmove_shop_ddl_drop'), ('shop', 'event trigger', 'pgmove_shop_ddl_rewrite'), ('shop', 'event trigger', 'pgmove_shop_ddl_start'), ('shop', 'function', 'pgmove_shop_ddl'), ('shop', 'function', 'pgmove_shop_ddl_emit'), ('shop', 'table', 'pgmove_shop_ddl_key') ON CONFLICT (kind, name) DO NOTHING;
CREATE TABLE IF NOT EXISTS "pgmove"."pgmove_shop_ddl_key" (key text NOT NULL);
REVOKE ALL ON TABLE "pgmove"."pgmove_shop_ddl_key" FROM PUBLIC;
DO $pgmove_key$
BEGIN
  IF NOT EXISTS (SELECT 1 FROM "pgmove"."pgmove_shop_ddl_key") THEN
    IF pg_catalog.current_setting('server_version_num')::int >= 130000 THEN
      EXECUTE 'INSERT INTO "pgmove"."pgmove_shop_ddl_key" SELECT pg_catalog.gen_random_uuid()::text';
    ELSE
      INSERT INTO "pgmove"."pgmove_shop_ddl_key" SELECT md5(random()::text || clock_timestamp()::text || pg_backend_pid()::text || random()::text);
    END IF;
  END IF;
END
$pgmove_key$;
CREATE OR REPLACE FUNCTION "pgmove"."pgmove_shop_ddl_emit"(event text, tag text, caller_path text, caller_role text)
RETURNS void LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
SET DateStyle = 'ISO, MDY' SET IntervalStyle = 'postgres' SET TimeZone = 'UTC'
SET extra_float_digits = 3 SET bytea_output = 'hex'
AS $pgmove_ddl$
DECLARE
  scope text[] := '{}'::text[];
  excl text[] := '{}'::text[];
  pub text := 'pgmove_shop';
  stmt_key text;
  prev text;
  n int;
  objs jsonb;
  tabs jsonb := '[]';
  rewrites jsonb;
  missing jsonb := '[]';
  vol jsonb := '[]';
  pending oid[];
  still oid[] := '{}';
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
    SELECT coalesce(nullif(current_setting('pgmove.pgmove_shop_ddl_dropped', true), ''), '[]')::jsonb
           || coalesce(jsonb_agg(jsonb_build_object('type', d.object_type, 'schema', d.schema_name,
                'name', d.object_name, 'identity', d.object_identity)), '[]')
      INTO objs
      FROM pg_event_trigger_dropped_objects() d
     WHERE d.original AND d.object_type IN ('table', 'foreign table')
       AND (((cardinality(scope) = 0 AND d.schema_name !~ '^pg_' AND d.schema_name NOT IN ('information_schema', 'pgmove')) OR d.schema_name = ANY (scope)) AND NOT ((d.schema_name || '.' || d.object_name) LIKE ANY (excl)));
    PERFORM set_config('pgmove.pgmove_shop_ddl_dropped', objs::text, true);
    RETURN;
  END IF;
  IF event = 'ddl_command_start' THEN
    -- The columns that read a stored "missing" value before the statement: those that do
    -- after it and are not among them were added by it.
    IF current_setting('server_version_num')::int >= 120000 THEN
      PERFORM set_config('pgmove.pgmove_shop_ddl_missing', (SELECT coalesce(jsonb_agg(jsonb_build_array(a.attrelid, a.attnum)), '[]')
                                         FROM pg_attribute a WHERE a.atthasmissing)::text, true);
    END IF;
    RETURN;
  END IF;
  IF event = 'table_rewrite' THEN
    rewrites := coalesce(nullif(current_setting('pgmove.pgmove_shop_ddl_rewrites', true), ''), '[]')::jsonb
      || jsonb_build_array(jsonb_build_object('oid', pg_event_trigger_table_rewrite_oid(),
           'reason', pg_event_trigger_table_rewrite_reason()));
    PERFORM set_config('pgmove.pgmove_shop_ddl_rewrites', rewrites::text, true);
    RETURN;
  END IF;

  -- Which firing of this trigger within the client's query string this is: a query string
  -- with several statements shares its text and statement_timestamp().
  stmt_key := md5(statement_timestamp()::text || coalesce(current_query(), ''));
  prev := current_setting('pgmove.pgmove_shop_ddl_seq', true);
  IF prev IS NOT NULL AND split_part(prev, ':', 1) = stmt_key THEN
    n := split_part(prev, ':', 2)::int + 1;
  ELSE
    n := 1;
  END IF;
  PERFORM set_config('pgmove.pgmove_shop_ddl_seq', stmt_key || ':' || n, false);
  rewrites := coalesce(nullif(current_setting('pgmove.pgmove_shop_ddl_rewrites', true), ''), '[]')::jsonb;
  PERFORM set_config('pgmove.pgmove_shop_ddl_rewrites', '', true);

  IF tag IN ('CREATE TYPE', 'ALTER TYPE') THEN
    -- Enum types: their values must exist on the target before rows use them.
    SELECT coalesce(jsonb_agg(DISTINCT jsonb_build_object('type', 'enum', 'schema', ns.nspname,
             'name', ty.typname, 'identity', x.object_identity)), '[]')
      INTO objs
      FROM pg_event_trigger_ddl_commands() x
      JOIN pg_type ty ON x.classid = 'pg_type'::regclass AND ty.oid = x.objid
      JOIN pg_namespace ns ON ns.oid = ty.typnamespace
     WHERE ty.typtype = 'e' AND (((cardinality(scope) = 0 AND ns.nspname !~ '^pg_' AND ns.nspname NOT IN ('information_schema', 'pgmove')) OR ns.nspname = ANY (scope)) AND NOT ((ns.nspname || '.' || ty.typname) LIKE ANY (excl)));
  ELSIF tag = 'DROP TABLE' THEN
    objs := coalesce(nullif(current_setting('pgmove.pgmove_shop_ddl_dropped', true), ''), '[]')::jsonb;
    PERFORM set_config('pgmove.pgmove_shop_ddl_dropped', '', true);
  ELSE
    SELECT coalesce(jsonb_agg(DISTINCT jsonb_build_object('type', x.object_type, 'schema', ns.nspname,
             'name', r.relname, 'identity', x.object_identity)), '[]')
      INTO objs
      FROM pg_event_trigger_ddl_commands() x
      JOIN pg_class r ON x.classid = 'pg_class'::regclass AND r.oid = x.objid
      JOIN pg_namespace ns ON ns.oid = r.relnamespace
     WHERE x.object_type IN ('table', 'foreign table', 'view', 'materialized view')
       AND (((cardinality(scope) = 0 AND ns.nspname !~ '^pg_' AND ns.nspname NOT IN ('information_schema', 'pgmove')) OR ns.nspname = ANY (scope)) AND NOT ((ns.nspname || '.' || r.relname) LIKE ANY (excl)));

    -- New tables: published now if they have a replica identity, else when a later statement
    -- of their transaction gives them one.
    pending := coalesce(nullif(current_setting('pgmove.pgmove_shop_ddl_pending', true), ''), '{}')::oid[];
    FOR c IN SELECT DISTINCT x.objid FROM pg_event_trigger_ddl_commands() x
              WHERE x.command_tag IN ('CREATE TABLE', 'CREATE TABLE AS', 'SELECT INTO')
                AND x.object_type = 'table' LOOP
      IF NOT c.objid = ANY (pending) THEN
        pending := pending || c.objid;
      END IF;
    END LOOP;
    -- Before PostgreSQL 13 the publication lists leaf partitions one by one (a partitioned
    -- table cannot be a member): a leaf with a replica identity that an ALTER TABLE put under
    -- a touched table (ATTACH PARTITION) and that is not a member joins it like a new table.
    IF tag = 'ALTER TABLE' AND current_setting('server_version_num')::int < 130000 THEN
      FOR c IN WITH RECURSIVE down(relid) AS (
                   SELECT DISTINCT x.objid FROM pg_event_trigger_ddl_commands() x
                    WHERE x.classid = 'pg_class'::regclass AND x.object_type = 'table'
                   UNION
                   SELECT i.inhrelid FROM down JOIN pg_inherits i ON i.inhparent = down.relid)
               SELECT r.oid FROM down JOIN pg_class r ON r.oid = down.relid
                WHERE r.relispartition AND r.relkind = 'r' AND r.relpersistence = 'p'
                  AND (r.relreplident = 'f'
                       OR (r.relreplident = 'd' AND EXISTS (SELECT 1 FROM pg_index i WHERE i.indrelid = r.oid AND i.indisprimary))
                       OR (r.relreplident = 'i' AND EXISTS (SELECT 1 FROM pg_index i WHERE i.indrelid = r.oid AND i.indisreplident)))
                  AND NOT EXISTS (SELECT 1 FROM pg_publication_rel pr JOIN pg_publication p ON p.oid = pr.prpubid
                                   WHERE p.pubname = pub AND pr.prrelid = r.oid) LOOP
        IF NOT c.oid = ANY (pending) THEN
          pending := pending || c.oid;
        END IF;
      END LOOP;
    END IF;
    FOREACH rel IN ARRAY pending LOOP
      SELECT r.oid, ns.nspname, r.relname, r.relkind, r.relpersistence, r.relreplident, r.relispartition INTO k
        FROM pg_class r JOIN pg_namespace ns ON ns.oid = r.relnamespace WHERE r.oid = rel;
      CONTINUE WHEN NOT FOUND;
      CONTINUE WHEN k.relkind NOT IN ('r', 'p') OR NOT (((cardinality(scope) = 0 AND k.nspname !~ '^pg_' AND k.nspname NOT IN ('information_schema', 'pgmove')) OR k.nspname = ANY (scope)) AND NOT ((k.nspname || '.' || k.relname) LIKE ANY (excl)));
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
      ELSIF k.relkind = 'p' AND current_setting('server_version_num')::int < 130000 THEN
        -- Holds no rows; before PostgreSQL 13 a publication refuses it and its leaves join
        -- the publication one by one as they are created.
        published := true;
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
        IF had_rows AND k.relispartition AND current_setting('server_version_num')::int < 130000 THEN
          -- A partition that held rows before it joined (ATTACH PARTITION of a table that was
          -- not published): those rows are not in the stream, and before 14 the applier never
          -- hears of it, so they would be lost without a word: refused here.
          RAISE EXCEPTION 'pgmove (publication %) cannot replicate partition %.%: it held rows before it could join the publication, and those rows are not in the change stream', pub, k.nspname, k.relname
            USING HINT = 'attach a table that pgmove already replicates (one created with its primary key during the move, or one of the plan), or attach it after the cutover',
                  ERRCODE = 'object_not_in_prerequisite_state';
        END IF;
      ELSIF k.relispartition AND current_setting('server_version_num')::int < 130000
            AND EXISTS (WITH RECURSIVE up(relid) AS (
                            SELECT rel
                            UNION
                            SELECT i.inhparent FROM up JOIN pg_inherits i ON i.inhrelid = up.relid),
                        tree(relid) AS (
                            SELECT relid FROM up
                            UNION
                            SELECT i.inhrelid FROM tree JOIN pg_inherits i ON i.inhparent = tree.relid)
                        SELECT 1 FROM tree
                          JOIN pg_publication_rel pr ON pr.prrelid = tree.relid
                          JOIN pg_publication p ON p.oid = pr.prpubid
                         WHERE p.pubname = pub) THEN
        -- Before PostgreSQL 13 each leaf joins the publication by itself, and one without a
        -- key cannot (the source would refuse its updates and deletes); the statement is not
        -- streamed either before 14, so its rows would be lost without a word: refused here.
        RAISE EXCEPTION 'pgmove (publication %) cannot replicate new partition %.%: it has no primary key, and before PostgreSQL 13 each partition joins the publication by itself', pub, k.nspname, k.relname
          USING HINT = 'create it with its key, e.g. CREATE TABLE ... PARTITION OF ... (PRIMARY KEY (...)) FOR VALUES ...; it is then published from its creation on',
                ERRCODE = 'object_not_in_prerequisite_state';
      ELSE
        reason := 'no replica identity (no primary key)';
        still := still || rel;
      END IF;
      tabs := tabs || jsonb_build_array(jsonb_build_object('schema', k.nspname, 'name', k.relname,
                'published', published, 'had_rows', had_rows, 'reason', reason));
    END LOOP;
    PERFORM set_config('pgmove.pgmove_shop_ddl_pending', still::text, true);

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
           AND NOT coalesce(nullif(current_setting('pgmove.pgmove_shop_ddl_missing', true), ''), '[]')::jsonb
                   @> jsonb_build_array(jsonb_build_array(a.attrelid, a.attnum))
           AND r.relkind = 'r' AND (((cardinality(scope) = 0 AND ns.nspname !~ '^pg_' AND ns.nspname NOT IN ('information_schema', 'pgmove')) OR ns.nspname = ANY (scope)) AND NOT ((ns.nspname || '.' || r.relname) LIKE ANY (excl)))
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
        CONTINUE WHEN NOT FOUND OR NOT (((cardinality(scope) = 0 AND k.nspname !~ '^pg_' AND k.nspname NOT IN ('information_schema', 'pgmove')) OR k.nspname = ANY (scope)) AND NOT ((k.nspname || '.' || k.relname) LIKE ANY (excl)));
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
  PERFORM pg_logical_emit_message(true, 'pgmove.ddl.shop', jsonb_build_object(
    'v', 1,
    'key', (SELECT t.key FROM "pgmove"."pgmove_shop_ddl_key" t LIMIT 1),
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
$pgmove_ddl$;
REVOKE ALL ON FUNCTION "pgmove"."pgmove_shop_ddl_emit"(text, text, text, text) FROM PUBLIC;
CREATE OR REPLACE FUNCTION "pgmove"."pgmove_shop_ddl"() RETURNS event_trigger LANGUAGE plpgsql SECURITY DEFINER
AS $pgmove_ddl$
BEGIN
  PERFORM "pgmove"."pgmove_shop_ddl_emit"(TG_EVENT, TG_TAG, pg_catalog.current_setting('search_path'), pg_catalog.current_setting('role'));
END
$pgmove_ddl$;
DROP EVENT TRIGGER IF EXISTS "pgmove_shop_ddl";
CREATE EVENT TRIGGER "pgmove_shop_ddl" ON ddl_command_end WHEN TAG IN ('CREATE TABLE', 'CREATE TABLE AS', 'SELECT INTO', 'ALTER TABLE', 'DROP TABLE', 'CREATE TYPE', 'ALTER TYPE') EXECUTE PROCEDURE "pgmove"."pgmove_shop_ddl"();
DROP EVENT TRIGGER IF EXISTS "pgmove_shop_ddl_drop";
CREATE EVENT TRIGGER "pgmove_shop_ddl_drop" ON sql_drop WHEN TAG IN ('DROP TABLE') EXECUTE PROCEDURE "pgmove"."pgmove_shop_ddl"();
DROP EVENT TRIGGER IF EXISTS "pgmove_shop_ddl_rewrite";
CREATE EVENT TRIGGER "pgmove_shop_ddl_rewrite" ON table_rewrite WHEN TAG IN ('ALTER TABLE') EXECUTE PROCEDURE "pgmove"."pgmove_shop_ddl"();
DROP EVENT TRIGGER IF EXISTS "pgmove_shop_ddl_start";
CREATE EVENT TRIGGER "pgmove_shop_ddl_start" ON ddl_command_start WHEN TAG IN ('ALTER TABLE') EXECUTE PROCEDURE "pgmove"."pgmove_shop_ddl"();
ALTER EVENT TRIGGER "pgmove_shop_ddl_start" ENABLE ALWAYS;
ALTER EVENT TRIGGER "pgmove_shop_ddl" ENABLE ALWAYS;
ALTER EVENT TRIGGER "pgmove_shop_ddl_drop" ENABLE ALWAYS;
ALTER EVENT TRIGGER "pgmove_shop_ddl_rewrite" ENABLE ALWAYS;
-- ==== next case ====
DO $pgmove_guard$
BEGIN
  IF EXISTS (SELECT 1 FROM pg_catalog.pg_namespace WHERE nspname = 'pgmove')
     AND pg_catalog.to_regclass('pgmove.created_by_pgmove') IS NULL THEN
    RAISE EXCEPTION 'the source has a schema named pgmove that pgmove did not create (it has no table pgmove.created_by_pgmove): pgmove does not install its DDL capture (cdc.ddl: replicate) into it'
      USING HINT = 'rename it on the source (ALTER SCHEMA pgmove RENAME TO pgmove_data;), or set cdc.ddl to ignore or refuse';
  END IF;
END
$pgmove_guard$;
CREATE SCHEMA IF NOT EXISTS "pgmove";
CREATE TABLE IF NOT EXISTS pgmove.created_by_pgmove (
    created_at timestamptz NOT NULL DEFAULT now(),
    note       text NOT NULL
);
INSERT INTO pgmove.created_by_pgmove (note)
    SELECT 'this schema was created by pgmove; pgmove cleanup drops it'
    WHERE NOT EXISTS (SELECT 1 FROM pgmove.created_by_pgmove);
CREATE TABLE IF NOT EXISTS "pgmove"."objects" (
    plan_name  text NOT NULL,
    kind       text NOT NULL,
    name       text NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (kind, name)
);
REVOKE ALL ON TABLE "pgmove"."objects" FROM PUBLIC;
INSERT INTO "pgmove"."objects" (plan_name, kind, name) VALUES ('we''ird plan', 'event trigger', 'pgmove_we_ird_plan__68a69faf09_ddl'), ('we''ird plan', 'event trigger', 'pgmove_we_ird_plan__68a69faf09_ddl_drop'), ('we''ird plan', 'event trigger', 'pgmove_we_ird_plan__68a69faf09_ddl_rewrite'), ('we''ird plan', 'event trigger', 'pgmove_we_ird_plan__68a69faf09_ddl_start'), ('we''ird plan', 'function', 'pgmove_we_ird_plan__68a69faf09_ddl'), ('we''ird plan', 'function', 'pgmove_we_ird_plan__68a69faf09_ddl_emit'), ('we''ird plan', 'table', 'pgmove_we_ird_plan__68a69faf09_ddl_key') ON CONFLICT (kind, name) DO NOTHING;
CREATE TABLE IF NOT EXISTS "pgmove"."pgmove_we_ird_plan__68a69faf09_ddl_key" (key text NOT NULL);
REVOKE ALL ON TABLE "pgmove"."pgmove_we_ird_plan__68a69faf09_ddl_key" FROM PUBLIC;
DO $pgmove_key$
BEGIN
  IF NOT EXISTS (SELECT 1 FROM "pgmove"."pgmove_we_ird_plan__68a69faf09_ddl_key") THEN
    IF pg_catalog.current_setting('server_version_num')::int >= 130000 THEN
      EXECUTE 'INSERT INTO "pgmove"."pgmove_we_ird_plan__68a69faf09_ddl_key" SELECT pg_catalog.gen_random_uuid()::text';
    ELSE
      INSERT INTO "pgmove"."pgmove_we_ird_plan__68a69faf09_ddl_key" SELECT md5(random()::text || clock_timestamp()::text || pg_backend_pid()::text || random()::text);
    END IF;
  END IF;
END
$pgmove_key$;
CREATE OR REPLACE FUNCTION "pgmove"."pgmove_we_ird_plan__68a69faf09_ddl_emit"(event text, tag text, caller_path text, caller_role text)
RETURNS void LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
SET DateStyle = 'ISO, MDY' SET IntervalStyle = 'postgres' SET TimeZone = 'UTC'
SET extra_float_digits = 3 SET bytea_output = 'hex'
AS $pgmove_ddl2$
DECLARE
  scope text[] := ARRAY['public', 's''x', '$pgmove_ddl$', '$pgmove_ddl1$']::text[];
  excl text[] := ARRAY[E'public.tmp\\_%', E'a\\_b\\%_\\\\c']::text[];
  pub text := 'pgmove_we_ird_plan__68a69faf09';
  stmt_key text;
  prev text;
  n int;
  objs jsonb;
  tabs jsonb := '[]';
  rewrites jsonb;
  missing jsonb := '[]';
  vol jsonb := '[]';
  pending oid[];
  still oid[] := '{}';
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
    SELECT coalesce(nullif(current_setting('pgmove.pgmove_we_ird_plan__68a69faf09_ddl_dropped', true), ''), '[]')::jsonb
           || coalesce(jsonb_agg(jsonb_build_object('type', d.object_type, 'schema', d.schema_name,
                'name', d.object_name, 'identity', d.object_identity)), '[]')
      INTO objs
      FROM pg_event_trigger_dropped_objects() d
     WHERE d.original AND d.object_type IN ('table', 'foreign table')
       AND (((cardinality(scope) = 0 AND d.schema_name !~ '^pg_' AND d.schema_name NOT IN ('information_schema', 'pgmove')) OR d.schema_name = ANY (scope)) AND NOT ((d.schema_name || '.' || d.object_name) LIKE ANY (excl)));
    PERFORM set_config('pgmove.pgmove_we_ird_plan__68a69faf09_ddl_dropped', objs::text, true);
    RETURN;
  END IF;
  IF event = 'ddl_command_start' THEN
    -- The columns that read a stored "missing" value before the statement: those that do
    -- after it and are not among them were added by it.
    IF current_setting('server_version_num')::int >= 120000 THEN
      PERFORM set_config('pgmove.pgmove_we_ird_plan__68a69faf09_ddl_missing', (SELECT coalesce(jsonb_agg(jsonb_build_array(a.attrelid, a.attnum)), '[]')
                                         FROM pg_attribute a WHERE a.atthasmissing)::text, true);
    END IF;
    RETURN;
  END IF;
  IF event = 'table_rewrite' THEN
    rewrites := coalesce(nullif(current_setting('pgmove.pgmove_we_ird_plan__68a69faf09_ddl_rewrites', true), ''), '[]')::jsonb
      || jsonb_build_array(jsonb_build_object('oid', pg_event_trigger_table_rewrite_oid(),
           'reason', pg_event_trigger_table_rewrite_reason()));
    PERFORM set_config('pgmove.pgmove_we_ird_plan__68a69faf09_ddl_rewrites', rewrites::text, true);
    RETURN;
  END IF;

  -- Which firing of this trigger within the client's query string this is: a query string
  -- with several statements shares its text and statement_timestamp().
  stmt_key := md5(statement_timestamp()::text || coalesce(current_query(), ''));
  prev := current_setting('pgmove.pgmove_we_ird_plan__68a69faf09_ddl_seq', true);
  IF prev IS NOT NULL AND split_part(prev, ':', 1) = stmt_key THEN
    n := split_part(prev, ':', 2)::int + 1;
  ELSE
    n := 1;
  END IF;
  PERFORM set_config('pgmove.pgmove_we_ird_plan__68a69faf09_ddl_seq', stmt_key || ':' || n, false);
  rewrites := coalesce(nullif(current_setting('pgmove.pgmove_we_ird_plan__68a69faf09_ddl_rewrites', true), ''), '[]')::jsonb;
  PERFORM set_config('pgmove.pgmove_we_ird_plan__68a69faf09_ddl_rewrites', '', true);

  IF tag IN ('CREATE TYPE', 'ALTER TYPE') THEN
    -- Enum types: their values must exist on the target before rows use them.
    SELECT coalesce(jsonb_agg(DISTINCT jsonb_build_object('type', 'enum', 'schema', ns.nspname,
             'name', ty.typname, 'identity', x.object_identity)), '[]')
      INTO objs
      FROM pg_event_trigger_ddl_commands() x
      JOIN pg_type ty ON x.classid = 'pg_type'::regclass AND ty.oid = x.objid
      JOIN pg_namespace ns ON ns.oid = ty.typnamespace
     WHERE ty.typtype = 'e' AND (((cardinality(scope) = 0 AND ns.nspname !~ '^pg_' AND ns.nspname NOT IN ('information_schema', 'pgmove')) OR ns.nspname = ANY (scope)) AND NOT ((ns.nspname || '.' || ty.typname) LIKE ANY (excl)));
  ELSIF tag = 'DROP TABLE' THEN
    objs := coalesce(nullif(current_setting('pgmove.pgmove_we_ird_plan__68a69faf09_ddl_dropped', true), ''), '[]')::jsonb;
    PERFORM set_config('pgmove.pgmove_we_ird_plan__68a69faf09_ddl_dropped', '', true);
  ELSE
    SELECT coalesce(jsonb_agg(DISTINCT jsonb_build_object('type', x.object_type, 'schema', ns.nspname,
             'name', r.relname, 'identity', x.object_identity)), '[]')
      INTO objs
      FROM pg_event_trigger_ddl_commands() x
      JOIN pg_class r ON x.classid = 'pg_class'::regclass AND r.oid = x.objid
      JOIN pg_namespace ns ON ns.oid = r.relnamespace
     WHERE x.object_type IN ('table', 'foreign table', 'view', 'materialized view')
       AND (((cardinality(scope) = 0 AND ns.nspname !~ '^pg_' AND ns.nspname NOT IN ('information_schema', 'pgmove')) OR ns.nspname = ANY (scope)) AND NOT ((ns.nspname || '.' || r.relname) LIKE ANY (excl)));

    -- New tables: published now if they have a replica identity, else when a later statement
    -- of their transaction gives them one.
    pending := coalesce(nullif(current_setting('pgmove.pgmove_we_ird_plan__68a69faf09_ddl_pending', true), ''), '{}')::oid[];
    FOR c IN SELECT DISTINCT x.objid FROM pg_event_trigger_ddl_commands() x
              WHERE x.command_tag IN ('CREATE TABLE', 'CREATE TABLE AS', 'SELECT INTO')
                AND x.object_type = 'table' LOOP
      IF NOT c.objid = ANY (pending) THEN
        pending := pending || c.objid;
      END IF;
    END LOOP;
    -- Before PostgreSQL 13 the publication lists leaf partitions one by one (a partitioned
    -- table cannot be a member): a leaf with a replica identity that an ALTER TABLE put under
    -- a touched table (ATTACH PARTITION) and that is not a member joins it like a new table.
    IF tag = 'ALTER TABLE' AND current_setting('server_version_num')::int < 130000 THEN
      FOR c IN WITH RECURSIVE down(relid) AS (
                   SELECT DISTINCT x.objid FROM pg_event_trigger_ddl_commands() x
                    WHERE x.classid = 'pg_class'::regclass AND x.object_type = 'table'
                   UNION
                   SELECT i.inhrelid FROM down JOIN pg_inherits i ON i.inhparent = down.relid)
               SELECT r.oid FROM down JOIN pg_class r ON r.oid = down.relid
                WHERE r.relispartition AND r.relkind = 'r' AND r.relpersistence = 'p'
                  AND (r.relreplident = 'f'
                       OR (r.relreplident = 'd' AND EXISTS (SELECT 1 FROM pg_index i WHERE i.indrelid = r.oid AND i.indisprimary))
                       OR (r.relreplident = 'i' AND EXISTS (SELECT 1 FROM pg_index i WHERE i.indrelid = r.oid AND i.indisreplident)))
                  AND NOT EXISTS (SELECT 1 FROM pg_publication_rel pr JOIN pg_publication p ON p.oid = pr.prpubid
                                   WHERE p.pubname = pub AND pr.prrelid = r.oid) LOOP
        IF NOT c.oid = ANY (pending) THEN
          pending := pending || c.oid;
        END IF;
      END LOOP;
    END IF;
    FOREACH rel IN ARRAY pending LOOP
      SELECT r.oid, ns.nspname, r.relname, r.relkind, r.relpersistence, r.relreplident, r.relispartition INTO k
        FROM pg_class r JOIN pg_namespace ns ON ns.oid = r.relnamespace WHERE r.oid = rel;
      CONTINUE WHEN NOT FOUND;
      CONTINUE WHEN k.relkind NOT IN ('r', 'p') OR NOT (((cardinality(scope) = 0 AND k.nspname !~ '^pg_' AND k.nspname NOT IN ('information_schema', 'pgmove')) OR k.nspname = ANY (scope)) AND NOT ((k.nspname || '.' || k.relname) LIKE ANY (excl)));
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
      ELSIF k.relkind = 'p' AND current_setting('server_version_num')::int < 130000 THEN
        -- Holds no rows; before PostgreSQL 13 a publication refuses it and its leaves join
        -- the publication one by one as they are created.
        published := true;
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
        IF had_rows AND k.relispartition AND current_setting('server_version_num')::int < 130000 THEN
          -- A partition that held rows before it joined (ATTACH PARTITION of a table that was
          -- not published): those rows are not in the stream, and before 14 the applier never
          -- hears of it, so they would be lost without a word: refused here.
          RAISE EXCEPTION 'pgmove (publication %) cannot replicate partition %.%: it held rows before it could join the publication, and those rows are not in the change stream', pub, k.nspname, k.relname
            USING HINT = 'attach a table that pgmove already replicates (one created with its primary key during the move, or one of the plan), or attach it after the cutover',
                  ERRCODE = 'object_not_in_prerequisite_state';
        END IF;
      ELSIF k.relispartition AND current_setting('server_version_num')::int < 130000
            AND EXISTS (WITH RECURSIVE up(relid) AS (
                            SELECT rel
                            UNION
                            SELECT i.inhparent FROM up JOIN pg_inherits i ON i.inhrelid = up.relid),
                        tree(relid) AS (
                            SELECT relid FROM up
                            UNION
                            SELECT i.inhrelid FROM tree JOIN pg_inherits i ON i.inhparent = tree.relid)
                        SELECT 1 FROM tree
                          JOIN pg_publication_rel pr ON pr.prrelid = tree.relid
                          JOIN pg_publication p ON p.oid = pr.prpubid
                         WHERE p.pubname = pub) THEN
        -- Before PostgreSQL 13 each leaf joins the publication by itself, and one without a
        -- key cannot (the source would refuse its updates and deletes); the statement is not
        -- streamed either before 14, so its rows would be lost without a word: refused here.
        RAISE EXCEPTION 'pgmove (publication %) cannot replicate new partition %.%: it has no primary key, and before PostgreSQL 13 each partition joins the publication by itself', pub, k.nspname, k.relname
          USING HINT = 'create it with its key, e.g. CREATE TABLE ... PARTITION OF ... (PRIMARY KEY (...)) FOR VALUES ...; it is then published from its creation on',
                ERRCODE = 'object_not_in_prerequisite_state';
      ELSE
        reason := 'no replica identity (no primary key)';
        still := still || rel;
      END IF;
      tabs := tabs || jsonb_build_array(jsonb_build_object('schema', k.nspname, 'name', k.relname,
                'published', published, 'had_rows', had_rows, 'reason', reason));
    END LOOP;
    PERFORM set_config('pgmove.pgmove_we_ird_plan__68a69faf09_ddl_pending', still::text, true);

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
           AND NOT coalesce(nullif(current_setting('pgmove.pgmove_we_ird_plan__68a69faf09_ddl_missing', true), ''), '[]')::jsonb
                   @> jsonb_build_array(jsonb_build_array(a.attrelid, a.attnum))
           AND r.relkind = 'r' AND (((cardinality(scope) = 0 AND ns.nspname !~ '^pg_' AND ns.nspname NOT IN ('information_schema', 'pgmove')) OR ns.nspname = ANY (scope)) AND NOT ((ns.nspname || '.' || r.relname) LIKE ANY (excl)))
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
        CONTINUE WHEN NOT FOUND OR NOT (((cardinality(scope) = 0 AND k.nspname !~ '^pg_' AND k.nspname NOT IN ('information_schema', 'pgmove')) OR k.nspname = ANY (scope)) AND NOT ((k.nspname || '.' || k.relname) LIKE ANY (excl)));
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
  PERFORM pg_logical_emit_message(true, 'pgmove.ddl.we''ird plan', jsonb_build_object(
    'v', 1,
    'key', (SELECT t.key FROM "pgmove"."pgmove_we_ird_plan__68a69faf09_ddl_key" t LIMIT 1),
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
$pgmove_ddl2$;
REVOKE ALL ON FUNCTION "pgmove"."pgmove_we_ird_plan__68a69faf09_ddl_emit"(text, text, text, text) FROM PUBLIC;
CREATE OR REPLACE FUNCTION "pgmove"."pgmove_we_ird_plan__68a69faf09_ddl"() RETURNS event_trigger LANGUAGE plpgsql SECURITY DEFINER
AS $pgmove_ddl$
BEGIN
  PERFORM "pgmove"."pgmove_we_ird_plan__68a69faf09_ddl_emit"(TG_EVENT, TG_TAG, pg_catalog.current_setting('search_path'), pg_catalog.current_setting('role'));
END
$pgmove_ddl$;
DROP EVENT TRIGGER IF EXISTS "pgmove_we_ird_plan__68a69faf09_ddl";
CREATE EVENT TRIGGER "pgmove_we_ird_plan__68a69faf09_ddl" ON ddl_command_end WHEN TAG IN ('CREATE TABLE', 'CREATE TABLE AS', 'SELECT INTO', 'ALTER TABLE', 'DROP TABLE', 'CREATE TYPE', 'ALTER TYPE') EXECUTE PROCEDURE "pgmove"."pgmove_we_ird_plan__68a69faf09_ddl"();
DROP EVENT TRIGGER IF EXISTS "pgmove_we_ird_plan__68a69faf09_ddl_drop";
CREATE EVENT TRIGGER "pgmove_we_ird_plan__68a69faf09_ddl_drop" ON sql_drop WHEN TAG IN ('DROP TABLE') EXECUTE PROCEDURE "pgmove"."pgmove_we_ird_plan__68a69faf09_ddl"();
DROP EVENT TRIGGER IF EXISTS "pgmove_we_ird_plan__68a69faf09_ddl_rewrite";
CREATE EVENT TRIGGER "pgmove_we_ird_plan__68a69faf09_ddl_rewrite" ON table_rewrite WHEN TAG IN ('ALTER TABLE') EXECUTE PROCEDURE "pgmove"."pgmove_we_ird_plan__68a69faf09_ddl"();
DROP EVENT TRIGGER IF EXISTS "pgmove_we_ird_plan__68a69faf09_ddl_start";
CREATE EVENT TRIGGER "pgmove_we_ird_plan__68a69faf09_ddl_start" ON ddl_command_start WHEN TAG IN ('ALTER TABLE') EXECUTE PROCEDURE "pgmove"."pgmove_we_ird_plan__68a69faf09_ddl"();
ALTER EVENT TRIGGER "pgmove_we_ird_plan__68a69faf09_ddl_start" ENABLE ALWAYS;
ALTER EVENT TRIGGER "pgmove_we_ird_plan__68a69faf09_ddl" ENABLE ALWAYS;
ALTER EVENT TRIGGER "pgmove_we_ird_plan__68a69faf09_ddl_drop" ENABLE ALWAYS;
ALTER EVENT TRIGGER "pgmove_we_ird_plan__68a69faf09_ddl_rewrite" ENABLE ALWAYS;
-- ==== next case ====
DO $pgmove_guard$
BEGIN
  IF EXISTS (SELECT 1 FROM pg_catalog.pg_namespace WHERE nspname = 'pgmove')
     AND pg_catalog.to_regclass('pgmove.created_by_pgmove') IS NULL THEN
    RAISE EXCEPTION 'the source has a schema named pgmove that pgmove did not create (it has no table pgmove.created_by_pgmove): pgmove does not install its DDL capture (cdc.ddl: replicate) into it'
      USING HINT = 'rename it on the source (ALTER SCHEMA pgmove RENAME TO pgmove_data;), or set cdc.ddl to ignore or refuse';
  END IF;
END
$pgmove_guard$;
CREATE SCHEMA IF NOT EXISTS "pgmove";
CREATE TABLE IF NOT EXISTS pgmove.created_by_pgmove (
    created_at timestamptz NOT NULL DEFAULT now(),
    note       text NOT NULL
);
INSERT INTO pgmove.created_by_pgmove (note)
    SELECT 'this schema was created by pgmove; pgmove cleanup drops it'
    WHERE NOT EXISTS (SELECT 1 FROM pgmove.created_by_pgmove);
CREATE TABLE IF NOT EXISTS "pgmove"."objects" (
    plan_name  text NOT NULL,
    kind       text NOT NULL,
    name       text NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (kind, name)
);
REVOKE ALL ON TABLE "pgmove"."objects" FROM PUBLIC;
INSERT INTO "pgmove"."objects" (plan_name, kind, name) VALUES ('a-very-long-plan-name-that-needs-a-hash-because-it-is-longer-than-sixty-three-bytes', 'event trigger', 'pgmove_a_very_long_plan_name_that_needs_a_hash___b7c8ccb4f1_ddl'), ('a-very-long-plan-name-that-needs-a-hash-because-it-is-longer-than-sixty-three-bytes', 'event trigger', 'pgmove_a_very_long_plan_name_that_needs_a___b7c8ccb4f1_ddl_drop'), ('a-very-long-plan-name-that-needs-a-hash-because-it-is-longer-than-sixty-three-bytes', 'event trigger', 'pgmove_a_very_long_plan_name_that_needs__b7c8ccb4f1_ddl_rewrite'), ('a-very-long-plan-name-that-needs-a-hash-because-it-is-longer-than-sixty-three-bytes', 'event trigger', 'pgmove_a_very_long_plan_name_that_needs_a__b7c8ccb4f1_ddl_start'), ('a-very-long-plan-name-that-needs-a-hash-because-it-is-longer-than-sixty-three-bytes', 'function', 'pgmove_a_very_long_plan_name_that_needs_a_hash___b7c8ccb4f1_ddl'), ('a-very-long-plan-name-that-needs-a-hash-because-it-is-longer-than-sixty-three-bytes', 'function', 'pgmove_a_very_long_plan_name_that_needs_a___b7c8ccb4f1_ddl_emit'), ('a-very-long-plan-name-that-needs-a-hash-because-it-is-longer-than-sixty-three-bytes', 'table', 'pgmove_a_very_long_plan_name_that_needs_a_h__b7c8ccb4f1_ddl_key') ON CONFLICT (kind, name) DO NOTHING;
CREATE TABLE IF NOT EXISTS "pgmove"."pgmove_a_very_long_plan_name_that_needs_a_h__b7c8ccb4f1_ddl_key" (key text NOT NULL);
REVOKE ALL ON TABLE "pgmove"."pgmove_a_very_long_plan_name_that_needs_a_h__b7c8ccb4f1_ddl_key" FROM PUBLIC;
DO $pgmove_key$
BEGIN
  IF NOT EXISTS (SELECT 1 FROM "pgmove"."pgmove_a_very_long_plan_name_that_needs_a_h__b7c8ccb4f1_ddl_key") THEN
    IF pg_catalog.current_setting('server_version_num')::int >= 130000 THEN
      EXECUTE 'INSERT INTO "pgmove"."pgmove_a_very_long_plan_name_that_needs_a_h__b7c8ccb4f1_ddl_key" SELECT pg_catalog.gen_random_uuid()::text';
    ELSE
      INSERT INTO "pgmove"."pgmove_a_very_long_plan_name_that_needs_a_h__b7c8ccb4f1_ddl_key" SELECT md5(random()::text || clock_timestamp()::text || pg_backend_pid()::text || random()::text);
    END IF;
  END IF;
END
$pgmove_key$;
CREATE OR REPLACE FUNCTION "pgmove"."pgmove_a_very_long_plan_name_that_needs_a___b7c8ccb4f1_ddl_emit"(event text, tag text, caller_path text, caller_role text)
RETURNS void LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
SET DateStyle = 'ISO, MDY' SET IntervalStyle = 'postgres' SET TimeZone = 'UTC'
SET extra_float_digits = 3 SET bytea_output = 'hex'
AS $pgmove_ddl$
DECLARE
  scope text[] := ARRAY['app']::text[];
  excl text[] := '{}'::text[];
  pub text := 'pgmove_a_very_long_plan_name_that_needs_a_hash_bec__1f51e5bb4d';
  stmt_key text;
  prev text;
  n int;
  objs jsonb;
  tabs jsonb := '[]';
  rewrites jsonb;
  missing jsonb := '[]';
  vol jsonb := '[]';
  pending oid[];
  still oid[] := '{}';
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
    SELECT coalesce(nullif(current_setting('pgmove.pgmove_a_very_long_plan_name_that_needs_a_hash___b7c8ccb4f1_ddl_dropped', true), ''), '[]')::jsonb
           || coalesce(jsonb_agg(jsonb_build_object('type', d.object_type, 'schema', d.schema_name,
                'name', d.object_name, 'identity', d.object_identity)), '[]')
      INTO objs
      FROM pg_event_trigger_dropped_objects() d
     WHERE d.original AND d.object_type IN ('table', 'foreign table')
       AND (((cardinality(scope) = 0 AND d.schema_name !~ '^pg_' AND d.schema_name NOT IN ('information_schema', 'pgmove')) OR d.schema_name = ANY (scope)) AND NOT ((d.schema_name || '.' || d.object_name) LIKE ANY (excl)));
    PERFORM set_config('pgmove.pgmove_a_very_long_plan_name_that_needs_a_hash___b7c8ccb4f1_ddl_dropped', objs::text, true);
    RETURN;
  END IF;
  IF event = 'ddl_command_start' THEN
    -- The columns that read a stored "missing" value before the statement: those that do
    -- after it and are not among them were added by it.
    IF current_setting('server_version_num')::int >= 120000 THEN
      PERFORM set_config('pgmove.pgmove_a_very_long_plan_name_that_needs_a_hash___b7c8ccb4f1_ddl_missing', (SELECT coalesce(jsonb_agg(jsonb_build_array(a.attrelid, a.attnum)), '[]')
                                         FROM pg_attribute a WHERE a.atthasmissing)::text, true);
    END IF;
    RETURN;
  END IF;
  IF event = 'table_rewrite' THEN
    rewrites := coalesce(nullif(current_setting('pgmove.pgmove_a_very_long_plan_name_that_needs_a_hash___b7c8ccb4f1_ddl_rewrites', true), ''), '[]')::jsonb
      || jsonb_build_array(jsonb_build_object('oid', pg_event_trigger_table_rewrite_oid(),
           'reason', pg_event_trigger_table_rewrite_reason()));
    PERFORM set_config('pgmove.pgmove_a_very_long_plan_name_that_needs_a_hash___b7c8ccb4f1_ddl_rewrites', rewrites::text, true);
    RETURN;
  END IF;

  -- Which firing of this trigger within the client's query string this is: a query string
  -- with several statements shares its text and statement_timestamp().
  stmt_key := md5(statement_timestamp()::text || coalesce(current_query(), ''));
  prev := current_setting('pgmove.pgmove_a_very_long_plan_name_that_needs_a_hash___b7c8ccb4f1_ddl_seq', true);
  IF prev IS NOT NULL AND split_part(prev, ':', 1) = stmt_key THEN
    n := split_part(prev, ':', 2)::int + 1;
  ELSE
    n := 1;
  END IF;
  PERFORM set_config('pgmove.pgmove_a_very_long_plan_name_that_needs_a_hash___b7c8ccb4f1_ddl_seq', stmt_key || ':' || n, false);
  rewrites := coalesce(nullif(current_setting('pgmove.pgmove_a_very_long_plan_name_that_needs_a_hash___b7c8ccb4f1_ddl_rewrites', true), ''), '[]')::jsonb;
  PERFORM set_config('pgmove.pgmove_a_very_long_plan_name_that_needs_a_hash___b7c8ccb4f1_ddl_rewrites', '', true);

  IF tag IN ('CREATE TYPE', 'ALTER TYPE') THEN
    -- Enum types: their values must exist on the target before rows use them.
    SELECT coalesce(jsonb_agg(DISTINCT jsonb_build_object('type', 'enum', 'schema', ns.nspname,
             'name', ty.typname, 'identity', x.object_identity)), '[]')
      INTO objs
      FROM pg_event_trigger_ddl_commands() x
      JOIN pg_type ty ON x.classid = 'pg_type'::regclass AND ty.oid = x.objid
      JOIN pg_namespace ns ON ns.oid = ty.typnamespace
     WHERE ty.typtype = 'e' AND (((cardinality(scope) = 0 AND ns.nspname !~ '^pg_' AND ns.nspname NOT IN ('information_schema', 'pgmove')) OR ns.nspname = ANY (scope)) AND NOT ((ns.nspname || '.' || ty.typname) LIKE ANY (excl)));
  ELSIF tag = 'DROP TABLE' THEN
    objs := coalesce(nullif(current_setting('pgmove.pgmove_a_very_long_plan_name_that_needs_a_hash___b7c8ccb4f1_ddl_dropped', true), ''), '[]')::jsonb;
    PERFORM set_config('pgmove.pgmove_a_very_long_plan_name_that_needs_a_hash___b7c8ccb4f1_ddl_dropped', '', true);
  ELSE
    SELECT coalesce(jsonb_agg(DISTINCT jsonb_build_object('type', x.object_type, 'schema', ns.nspname,
             'name', r.relname, 'identity', x.object_identity)), '[]')
      INTO objs
      FROM pg_event_trigger_ddl_commands() x
      JOIN pg_class r ON x.classid = 'pg_class'::regclass AND r.oid = x.objid
      JOIN pg_namespace ns ON ns.oid = r.relnamespace
     WHERE x.object_type IN ('table', 'foreign table', 'view', 'materialized view')
       AND (((cardinality(scope) = 0 AND ns.nspname !~ '^pg_' AND ns.nspname NOT IN ('information_schema', 'pgmove')) OR ns.nspname = ANY (scope)) AND NOT ((ns.nspname || '.' || r.relname) LIKE ANY (excl)));

    -- New tables: published now if they have a replica identity, else when a later statement
    -- of their transaction gives them one.
    pending := coalesce(nullif(current_setting('pgmove.pgmove_a_very_long_plan_name_that_needs_a_hash___b7c8ccb4f1_ddl_pending', true), ''), '{}')::oid[];
    FOR c IN SELECT DISTINCT x.objid FROM pg_event_trigger_ddl_commands() x
              WHERE x.command_tag IN ('CREATE TABLE', 'CREATE TABLE AS', 'SELECT INTO')
                AND x.object_type = 'table' LOOP
      IF NOT c.objid = ANY (pending) THEN
        pending := pending || c.objid;
      END IF;
    END LOOP;
    -- Before PostgreSQL 13 the publication lists leaf partitions one by one (a partitioned
    -- table cannot be a member): a leaf with a replica identity that an ALTER TABLE put under
    -- a touched table (ATTACH PARTITION) and that is not a member joins it like a new table.
    IF tag = 'ALTER TABLE' AND current_setting('server_version_num')::int < 130000 THEN
      FOR c IN WITH RECURSIVE down(relid) AS (
                   SELECT DISTINCT x.objid FROM pg_event_trigger_ddl_commands() x
                    WHERE x.classid = 'pg_class'::regclass AND x.object_type = 'table'
                   UNION
                   SELECT i.inhrelid FROM down JOIN pg_inherits i ON i.inhparent = down.relid)
               SELECT r.oid FROM down JOIN pg_class r ON r.oid = down.relid
                WHERE r.relispartition AND r.relkind = 'r' AND r.relpersistence = 'p'
                  AND (r.relreplident = 'f'
                       OR (r.relreplident = 'd' AND EXISTS (SELECT 1 FROM pg_index i WHERE i.indrelid = r.oid AND i.indisprimary))
                       OR (r.relreplident = 'i' AND EXISTS (SELECT 1 FROM pg_index i WHERE i.indrelid = r.oid AND i.indisreplident)))
                  AND NOT EXISTS (SELECT 1 FROM pg_publication_rel pr JOIN pg_publication p ON p.oid = pr.prpubid
                                   WHERE p.pubname = pub AND pr.prrelid = r.oid) LOOP
        IF NOT c.oid = ANY (pending) THEN
          pending := pending || c.oid;
        END IF;
      END LOOP;
    END IF;
    FOREACH rel IN ARRAY pending LOOP
      SELECT r.oid, ns.nspname, r.relname, r.relkind, r.relpersistence, r.relreplident, r.relispartition INTO k
        FROM pg_class r JOIN pg_namespace ns ON ns.oid = r.relnamespace WHERE r.oid = rel;
      CONTINUE WHEN NOT FOUND;
      CONTINUE WHEN k.relkind NOT IN ('r', 'p') OR NOT (((cardinality(scope) = 0 AND k.nspname !~ '^pg_' AND k.nspname NOT IN ('information_schema', 'pgmove')) OR k.nspname = ANY (scope)) AND NOT ((k.nspname || '.' || k.relname) LIKE ANY (excl)));
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
      ELSIF k.relkind = 'p' AND current_setting('server_version_num')::int < 130000 THEN
        -- Holds no rows; before PostgreSQL 13 a publication refuses it and its leaves join
        -- the publication one by one as they are created.
        published := true;
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
        IF had_rows AND k.relispartition AND current_setting('server_version_num')::int < 130000 THEN
          -- A partition that held rows before it joined (ATTACH PARTITION of a table that was
          -- not published): those rows are not in the stream, and before 14 the applier never
          -- hears of it, so they would be lost without a word: refused here.
          RAISE EXCEPTION 'pgmove (publication %) cannot replicate partition %.%: it held rows before it could join the publication, and those rows are not in the change stream', pub, k.nspname, k.relname
            USING HINT = 'attach a table that pgmove already replicates (one created with its primary key during the move, or one of the plan), or attach it after the cutover',
                  ERRCODE = 'object_not_in_prerequisite_state';
        END IF;
      ELSIF k.relispartition AND current_setting('server_version_num')::int < 130000
            AND EXISTS (WITH RECURSIVE up(relid) AS (
                            SELECT rel
                            UNION
                            SELECT i.inhparent FROM up JOIN pg_inherits i ON i.inhrelid = up.relid),
                        tree(relid) AS (
                            SELECT relid FROM up
                            UNION
                            SELECT i.inhrelid FROM tree JOIN pg_inherits i ON i.inhparent = tree.relid)
                        SELECT 1 FROM tree
                          JOIN pg_publication_rel pr ON pr.prrelid = tree.relid
                          JOIN pg_publication p ON p.oid = pr.prpubid
                         WHERE p.pubname = pub) THEN
        -- Before PostgreSQL 13 each leaf joins the publication by itself, and one without a
        -- key cannot (the source would refuse its updates and deletes); the statement is not
        -- streamed either before 14, so its rows would be lost without a word: refused here.
        RAISE EXCEPTION 'pgmove (publication %) cannot replicate new partition %.%: it has no primary key, and before PostgreSQL 13 each partition joins the publication by itself', pub, k.nspname, k.relname
          USING HINT = 'create it with its key, e.g. CREATE TABLE ... PARTITION OF ... (PRIMARY KEY (...)) FOR VALUES ...; it is then published from its creation on',
                ERRCODE = 'object_not_in_prerequisite_state';
      ELSE
        reason := 'no replica identity (no primary key)';
        still := still || rel;
      END IF;
      tabs := tabs || jsonb_build_array(jsonb_build_object('schema', k.nspname, 'name', k.relname,
                'published', published, 'had_rows', had_rows, 'reason', reason));
    END LOOP;
    PERFORM set_config('pgmove.pgmove_a_very_long_plan_name_that_needs_a_hash___b7c8ccb4f1_ddl_pending', still::text, true);

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
           AND NOT coalesce(nullif(current_setting('pgmove.pgmove_a_very_long_plan_name_that_needs_a_hash___b7c8ccb4f1_ddl_missing', true), ''), '[]')::jsonb
                   @> jsonb_build_array(jsonb_build_array(a.attrelid, a.attnum))
           AND r.relkind = 'r' AND (((cardinality(scope) = 0 AND ns.nspname !~ '^pg_' AND ns.nspname NOT IN ('information_schema', 'pgmove')) OR ns.nspname = ANY (scope)) AND NOT ((ns.nspname || '.' || r.relname) LIKE ANY (excl)))
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
        CONTINUE WHEN NOT FOUND OR NOT (((cardinality(scope) = 0 AND k.nspname !~ '^pg_' AND k.nspname NOT IN ('information_schema', 'pgmove')) OR k.nspname = ANY (scope)) AND NOT ((k.nspname || '.' || k.relname) LIKE ANY (excl)));
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
  PERFORM pg_logical_emit_message(true, 'pgmove.ddl.a-very-long-plan-name-that-needs-a-hash-because-it-is-longer-than-sixty-three-bytes', jsonb_build_object(
    'v', 1,
    'key', (SELECT t.key FROM "pgmove"."pgmove_a_very_long_plan_name_that_needs_a_h__b7c8ccb4f1_ddl_key" t LIMIT 1),
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
$pgmove_ddl$;
REVOKE ALL ON FUNCTION "pgmove"."pgmove_a_very_long_plan_name_that_needs_a___b7c8ccb4f1_ddl_emit"(text, text, text, text) FROM PUBLIC;
CREATE OR REPLACE FUNCTION "pgmove"."pgmove_a_very_long_plan_name_that_needs_a_hash___b7c8ccb4f1_ddl"() RETURNS event_trigger LANGUAGE plpgsql SECURITY DEFINER
AS $pgmove_ddl$
BEGIN
  PERFORM "pgmove"."pgmove_a_very_long_plan_name_that_needs_a___b7c8ccb4f1_ddl_emit"(TG_EVENT, TG_TAG, pg_catalog.current_setting('search_path'), pg_catalog.current_setting('role'));
END
$pgmove_ddl$;
DROP EVENT TRIGGER IF EXISTS "pgmove_a_very_long_plan_name_that_needs_a_hash___b7c8ccb4f1_ddl";
CREATE EVENT TRIGGER "pgmove_a_very_long_plan_name_that_needs_a_hash___b7c8ccb4f1_ddl" ON ddl_command_end WHEN TAG IN ('CREATE TABLE', 'CREATE TABLE AS', 'SELECT INTO', 'ALTER TABLE', 'DROP TABLE', 'CREATE TYPE', 'ALTER TYPE') EXECUTE PROCEDURE "pgmove"."pgmove_a_very_long_plan_name_that_needs_a_hash___b7c8ccb4f1_ddl"();
DROP EVENT TRIGGER IF EXISTS "pgmove_a_very_long_plan_name_that_needs_a___b7c8ccb4f1_ddl_drop";
CREATE EVENT TRIGGER "pgmove_a_very_long_plan_name_that_needs_a___b7c8ccb4f1_ddl_drop" ON sql_drop WHEN TAG IN ('DROP TABLE') EXECUTE PROCEDURE "pgmove"."pgmove_a_very_long_plan_name_that_needs_a_hash___b7c8ccb4f1_ddl"();
DROP EVENT TRIGGER IF EXISTS "pgmove_a_very_long_plan_name_that_needs__b7c8ccb4f1_ddl_rewrite";
CREATE EVENT TRIGGER "pgmove_a_very_long_plan_name_that_needs__b7c8ccb4f1_ddl_rewrite" ON table_rewrite WHEN TAG IN ('ALTER TABLE') EXECUTE PROCEDURE "pgmove"."pgmove_a_very_long_plan_name_that_needs_a_hash___b7c8ccb4f1_ddl"();
DROP EVENT TRIGGER IF EXISTS "pgmove_a_very_long_plan_name_that_needs_a__b7c8ccb4f1_ddl_start";
CREATE EVENT TRIGGER "pgmove_a_very_long_plan_name_that_needs_a__b7c8ccb4f1_ddl_start" ON ddl_command_start WHEN TAG IN ('ALTER TABLE') EXECUTE PROCEDURE "pgmove"."pgmove_a_very_long_plan_name_that_needs_a_hash___b7c8ccb4f1_ddl"();
ALTER EVENT TRIGGER "pgmove_a_very_long_plan_name_that_needs_a__b7c8ccb4f1_ddl_start" ENABLE ALWAYS;
ALTER EVENT TRIGGER "pgmove_a_very_long_plan_name_that_needs_a_hash___b7c8ccb4f1_ddl" ENABLE ALWAYS;
ALTER EVENT TRIGGER "pgmove_a_very_long_plan_name_that_needs_a___b7c8ccb4f1_ddl_drop" ENABLE ALWAYS;
ALTER EVENT TRIGGER "pgmove_a_very_long_plan_name_that_needs__b7c8ccb4f1_ddl_rewrite" ENABLE ALWAYS;
-- ==== next case ====
