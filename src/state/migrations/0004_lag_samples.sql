-- Migration 4: change capture's lag over time, for `pgmove report` (state::history).

-- About every 10 s while change capture runs: the source's WAL position and the position the
-- target had applied then (the lag is the bytes between them). Samples older than 14 days go
-- as new ones come.
CREATE TABLE IF NOT EXISTS pgmove.lag_samples (
    plan_name   text NOT NULL,
    sampled_at  timestamptz NOT NULL DEFAULT clock_timestamp(),
    source_lsn  pg_lsn NOT NULL,
    applied_lsn pg_lsn NOT NULL,
    PRIMARY KEY (plan_name, sampled_at)
);
