{{guard}}CREATE SCHEMA IF NOT EXISTS {{schema}};
{{marker}}{{record}}CREATE TABLE IF NOT EXISTS {{key_table}} (key text NOT NULL);
REVOKE ALL ON TABLE {{key_table}} FROM PUBLIC;
DO $pgmove_key$
BEGIN
  IF NOT EXISTS (SELECT 1 FROM {{key_table}}) THEN
    IF pg_catalog.current_setting('server_version_num')::int >= 130000 THEN
      EXECUTE 'INSERT INTO {{key_table_in_string}} SELECT pg_catalog.gen_random_uuid()::text';
    ELSE
      INSERT INTO {{key_table}} SELECT md5(random()::text || clock_timestamp()::text || pg_backend_pid()::text || random()::text);
    END IF;
  END IF;
END
$pgmove_key$;
CREATE OR REPLACE FUNCTION {{emit}}(event text, tag text, caller_path text, caller_role text)
RETURNS void LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
SET DateStyle = 'ISO, MDY' SET IntervalStyle = 'postgres' SET TimeZone = 'UTC'
SET extra_float_digits = 3 SET bytea_output = 'hex'
AS {{emit_tag}}
{{emit_body}}{{emit_tag}};
REVOKE ALL ON FUNCTION {{emit}}(text, text, text, text) FROM PUBLIC;
CREATE OR REPLACE FUNCTION {{func}}() RETURNS event_trigger LANGUAGE plpgsql SECURITY DEFINER
AS {{trigger_tag}}
{{trigger_body}}{{trigger_tag}};
DROP EVENT TRIGGER IF EXISTS {{trigger}};
CREATE EVENT TRIGGER {{trigger}} ON ddl_command_end WHEN TAG IN ({{tags}}) EXECUTE PROCEDURE {{func}}();
DROP EVENT TRIGGER IF EXISTS {{drop_trigger}};
CREATE EVENT TRIGGER {{drop_trigger}} ON sql_drop WHEN TAG IN ('DROP TABLE') EXECUTE PROCEDURE {{func}}();
DROP EVENT TRIGGER IF EXISTS {{rewrite_trigger}};
CREATE EVENT TRIGGER {{rewrite_trigger}} ON table_rewrite WHEN TAG IN ('ALTER TABLE') EXECUTE PROCEDURE {{func}}();
DROP EVENT TRIGGER IF EXISTS {{start_trigger}};
CREATE EVENT TRIGGER {{start_trigger}} ON ddl_command_start WHEN TAG IN ('ALTER TABLE') EXECUTE PROCEDURE {{func}}();
ALTER EVENT TRIGGER {{start_trigger}} ENABLE ALWAYS;
ALTER EVENT TRIGGER {{trigger}} ENABLE ALWAYS;
ALTER EVENT TRIGGER {{drop_trigger}} ENABLE ALWAYS;
ALTER EVENT TRIGGER {{rewrite_trigger}} ENABLE ALWAYS;
