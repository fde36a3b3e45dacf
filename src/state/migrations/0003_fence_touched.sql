-- Migration 3: cutover's verification before the fence (state::touched).

-- A pre-verification of the plan is in progress: while its row is here, change capture records
-- the keys it touches (pgmove.touched), in the transaction of the changes. `acked_at` is set by
-- the first such transaction: from then on every change applied is recorded.
CREATE TABLE IF NOT EXISTS pgmove.verify_ahead (
    plan_name    text PRIMARY KEY,
    requested_at timestamptz NOT NULL DEFAULT now(),
    acked_at     timestamptz
);

-- The keys change capture touched since the acknowledgement: per table, the replica identity's
-- column names and one key's values (text); an empty `key` means the whole table, and an empty
-- `schema_name` and `table_name` every table (DDL or TRUNCATE was applied).
CREATE TABLE IF NOT EXISTS pgmove.touched (
    plan_name   text NOT NULL,
    schema_name text NOT NULL,
    table_name  text NOT NULL,
    key_columns text[] NOT NULL,
    key         text[] NOT NULL,
    PRIMARY KEY (plan_name, schema_name, table_name, key)
);
