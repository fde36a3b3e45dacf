DECLARE
  scope text[] := {{scope}};
  excl text[] := {{excl}};
  pub text := {{publication}};
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
    SELECT coalesce(nullif(current_setting({{g_dropped}}, true), ''), '[]')::jsonb
           || coalesce(jsonb_agg(jsonb_build_object('type', d.object_type, 'schema', d.schema_name,
                'name', d.object_name, 'identity', d.object_identity)), '[]')
      INTO objs
      FROM pg_event_trigger_dropped_objects() d
     WHERE d.original AND d.object_type IN ('table', 'foreign table')
       AND {{drop_scope}};
    PERFORM set_config({{g_dropped}}, objs::text, true);
    RETURN;
  END IF;
  IF event = 'ddl_command_start' THEN
    -- The columns that read a stored "missing" value before the statement: those that do
    -- after it and are not among them were added by it.
    IF current_setting('server_version_num')::int >= 120000 THEN
      PERFORM set_config({{g_missing}}, (SELECT coalesce(jsonb_agg(jsonb_build_array(a.attrelid, a.attnum)), '[]')
                                         FROM pg_attribute a WHERE a.atthasmissing)::text, true);
    END IF;
    RETURN;
  END IF;
  IF event = 'table_rewrite' THEN
    rewrites := coalesce(nullif(current_setting({{g_rewrites}}, true), ''), '[]')::jsonb
      || jsonb_build_array(jsonb_build_object('oid', pg_event_trigger_table_rewrite_oid(),
           'reason', pg_event_trigger_table_rewrite_reason()));
    PERFORM set_config({{g_rewrites}}, rewrites::text, true);
    RETURN;
  END IF;

  -- Which firing of this trigger within the client's query string this is: a query string
  -- with several statements shares its text and statement_timestamp().
  stmt_key := md5(statement_timestamp()::text || coalesce(current_query(), ''));
  prev := current_setting({{g_seq}}, true);
  IF prev IS NOT NULL AND split_part(prev, ':', 1) = stmt_key THEN
    n := split_part(prev, ':', 2)::int + 1;
  ELSE
    n := 1;
  END IF;
  PERFORM set_config({{g_seq}}, stmt_key || ':' || n, false);
  rewrites := coalesce(nullif(current_setting({{g_rewrites}}, true), ''), '[]')::jsonb;
  PERFORM set_config({{g_rewrites}}, '', true);

  IF tag IN ('CREATE TYPE', 'ALTER TYPE') THEN
    -- Enum types: their values must exist on the target before rows use them.
    SELECT coalesce(jsonb_agg(DISTINCT jsonb_build_object('type', 'enum', 'schema', ns.nspname,
             'name', ty.typname, 'identity', x.object_identity)), '[]')
      INTO objs
      FROM pg_event_trigger_ddl_commands() x
      JOIN pg_type ty ON x.classid = 'pg_type'::regclass AND ty.oid = x.objid
      JOIN pg_namespace ns ON ns.oid = ty.typnamespace
     WHERE ty.typtype = 'e' AND {{type_scope}};
  ELSIF tag = 'DROP TABLE' THEN
    objs := coalesce(nullif(current_setting({{g_dropped}}, true), ''), '[]')::jsonb;
    PERFORM set_config({{g_dropped}}, '', true);
  ELSE
    SELECT coalesce(jsonb_agg(DISTINCT jsonb_build_object('type', x.object_type, 'schema', ns.nspname,
             'name', r.relname, 'identity', x.object_identity)), '[]')
      INTO objs
      FROM pg_event_trigger_ddl_commands() x
      JOIN pg_class r ON x.classid = 'pg_class'::regclass AND r.oid = x.objid
      JOIN pg_namespace ns ON ns.oid = r.relnamespace
     WHERE x.object_type IN ('table', 'foreign table', 'view', 'materialized view')
       AND {{touched_scope}};

    -- New tables: published now if they have a replica identity, else when a later statement
    -- of their transaction gives them one.
    pending := coalesce(nullif(current_setting({{g_pending}}, true), ''), '{}')::oid[];
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
      CONTINUE WHEN k.relkind NOT IN ('r', 'p') OR NOT {{pending_scope}};
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
    PERFORM set_config({{g_pending}}, still::text, true);

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
           AND NOT coalesce(nullif(current_setting({{g_missing}}, true), ''), '[]')::jsonb
                   @> jsonb_build_array(jsonb_build_array(a.attrelid, a.attnum))
           AND r.relkind = 'r' AND {{touched_scope}}
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
        CONTINUE WHEN NOT FOUND OR NOT {{rewrite_scope}};
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
  PERFORM pg_logical_emit_message(true, {{prefix}}, jsonb_build_object(
    'v', {{version}},
    'key', (SELECT t.key FROM {{key_table}} t LIMIT 1),
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
