{{guard}}CREATE SCHEMA IF NOT EXISTS {{schema}};
{{marker}}{{record}}CREATE OR REPLACE FUNCTION {{func}}() RETURNS event_trigger LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS {{tag}}
DECLARE
  scope text[] := {{scope}};
  excl text[] := {{excl}};
  hit text;
  rel record;
BEGIN
  -- cdc.ddl: replicate: a statement run by pglogical.replicate_ddl_command for the plan's
  -- sets: pglogical queued it (in this transaction, just before running it here), so the
  -- target gets it at the same point of the stream. A table it creates goes into the sets
  -- here, before any row is written to it, as apply put the others.
  IF {{through_pglogical}} AND pg_catalog.to_regclass('pglogical.queue') IS NOT NULL THEN
    IF EXISTS (SELECT 1 FROM pglogical.queue q
                WHERE q.xmin = pg_catalog.pg_current_xact_id()::xid AND q.message_type = 'Q'
                  AND q.replication_sets && {{sets}}
                  AND q.message::text = pg_catalog.to_json(pg_catalog.current_query())::text) THEN
      IF TG_EVENT = 'ddl_command_end' THEN
        FOR rel IN
          SELECT r.oid::pg_catalog.regclass AS oid, c.command_tag AS tag,
                 pg_catalog.format('%I.%I', ns.nspname, r.relname) AS name,
                 EXISTS (SELECT 1 FROM pg_catalog.pg_index i
                          WHERE i.indrelid = r.oid AND (i.indisprimary OR i.indisreplident)) AS keyed
            FROM pg_catalog.pg_event_trigger_ddl_commands() c
            JOIN pg_catalog.pg_class r ON r.oid = c.objid
            JOIN pg_catalog.pg_namespace ns ON ns.oid = r.relnamespace
           WHERE c.classid = 'pg_catalog.pg_class'::pg_catalog.regclass AND NOT c.in_extension
             AND c.command_tag IN ('CREATE TABLE', 'CREATE TABLE AS', 'SELECT INTO')
             AND r.relkind = 'r' AND r.relpersistence = 'p' AND {{touched_scope}}
        LOOP
          IF rel.tag <> 'CREATE TABLE' THEN
            RAISE EXCEPTION 'pgmove refuses % of % through pglogical: the rows it writes would not be replicated (the target runs the statement on its own rows)', rel.tag, rel.name
              USING ERRCODE = 'object_not_in_prerequisite_state',
                    HINT = 'create the table with CREATE TABLE through pglogical.replicate_ddl_command, then fill it on the source with INSERT ... SELECT';
          ELSIF rel.keyed THEN
            PERFORM pglogical.replication_set_add_table({{update_set}}, rel.oid, false);
            PERFORM pglogical.replication_set_add_table({{insert_set}}, rel.oid, false);
          ELSIF {{keyless}} = 'insert-only' THEN
            PERFORM pglogical.replication_set_add_table({{insert_set}}, rel.oid, false);
          ELSIF {{keyless}} <> 'exclude' THEN
            RAISE EXCEPTION 'pgmove refuses CREATE TABLE of % through pglogical: it has no primary key nor replica identity index, which pglogical needs to replicate its updates and deletes (cdc.tables_without_key is %)', rel.name, {{keyless}}
              USING ERRCODE = 'object_not_in_prerequisite_state',
                    HINT = 'give it a primary key in the CREATE TABLE';
          END IF;
        END LOOP;
      END IF;
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
