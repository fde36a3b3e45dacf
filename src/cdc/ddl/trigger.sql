BEGIN
  PERFORM {{emit}}(TG_EVENT, TG_TAG, pg_catalog.current_setting('search_path'), pg_catalog.current_setting('role'));
END
