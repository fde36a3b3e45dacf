{{guard}}CREATE SCHEMA IF NOT EXISTS {{schema}};
{{marker}}{{record}}CREATE OR REPLACE FUNCTION {{func}}() RETURNS event_trigger LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS {{tag}}
DECLARE
  scope text[] := {{scope}};
  excl text[] := {{excl}};
  hit text;
BEGIN
  -- cdc.ddl: replicate: a statement run by pglogical.replicate_ddl_command for the plan's
  -- sets: pglogical queued it (in this transaction, just before running it here), so the
  -- target gets it at the same point of the stream.
  IF {{through_pglogical}} AND pg_catalog.to_regclass('pglogical.queue') IS NOT NULL THEN
    IF EXISTS (SELECT 1 FROM pglogical.queue q
                WHERE q.xmin = pg_catalog.pg_current_xact_id()::xid AND q.message_type = 'Q'
                  AND q.replication_sets && {{sets}}
                  AND q.message::text = pg_catalog.to_json(pg_catalog.current_query())::text) THEN
      RETURN;
    END IF;
  END IF;
  -- The user's deliberate escape: the change runs here only.
  IF pg_catalog.current_setting({{off_guc}}, true) = 'off' THEN
    RETURN;
  END IF;
  IF TG_EVENT = 'sql_drop' THEN
    SELECT pg_catalog.format('%I.%I', d.schema_name, d.object_name) INTO hit
      FROM pg_catalog.pg_event_trigger_dropped_objects() d
     WHERE d.object_type = 'table' AND NOT d.is_temporary AND {{drop_scope}}
     LIMIT 1;
  ELSE
    SELECT pg_catalog.format('%I.%I', ns.nspname, r.relname) INTO hit
      FROM pg_catalog.pg_event_trigger_ddl_commands() c
      JOIN pg_catalog.pg_class r ON r.oid = c.objid
      JOIN pg_catalog.pg_namespace ns ON ns.oid = r.relnamespace
     WHERE c.classid = 'pg_catalog.pg_class'::pg_catalog.regclass AND NOT c.in_extension
       AND r.relkind IN ('r', 'p') AND r.relpersistence <> 't' AND {{touched_scope}}
     LIMIT 1;
  END IF;
  IF hit IS NOT NULL THEN
    RAISE EXCEPTION 'pgmove refuses % on %: {{why}}', TG_TAG, hit
      USING ERRCODE = 'object_not_in_prerequisite_state',
            HINT = '{{hint}}';
  END IF;
END
{{tag}};
REVOKE ALL ON FUNCTION {{func}}() FROM PUBLIC;
DROP EVENT TRIGGER IF EXISTS {{trigger}};
CREATE EVENT TRIGGER {{trigger}} ON ddl_command_end WHEN TAG IN ('CREATE TABLE', 'CREATE TABLE AS', 'SELECT INTO', 'ALTER TABLE') EXECUTE PROCEDURE {{func}}();
DROP EVENT TRIGGER IF EXISTS {{drop_trigger}};
CREATE EVENT TRIGGER {{drop_trigger}} ON sql_drop WHEN TAG IN ('DROP TABLE') EXECUTE PROCEDURE {{func}}();
ALTER EVENT TRIGGER {{trigger}} ENABLE ALWAYS;
ALTER EVENT TRIGGER {{drop_trigger}} ENABLE ALWAYS;
