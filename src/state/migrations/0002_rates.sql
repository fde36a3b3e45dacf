-- Migration 2: what `pgmove status` needs to show rates and times left.

-- The load of a plan's latest copy-cdc run (state::load): when its copy step started and
-- finished, and what it set out to copy: chunks, rows as the source's statistics estimate
-- them (NULL when a table to copy was never analyzed), heap bytes.
CREATE TABLE IF NOT EXISTS pgmove.load (
    plan_name      text PRIMARY KEY,
    started_at     timestamptz NOT NULL DEFAULT now(),
    finished_at    timestamptz,
    chunks         integer NOT NULL,
    estimated_rows bigint,
    estimated_bytes bigint NOT NULL
);

-- Change capture's rate (state::progress): the applied position and time a measuring window
-- started at, and the source WAL bytes applied per second over the last window closed.
ALTER TABLE pgmove.progress
    ADD COLUMN IF NOT EXISTS window_lsn pg_lsn,
    ADD COLUMN IF NOT EXISTS window_at timestamptz,
    ADD COLUMN IF NOT EXISTS bytes_per_second float8;
