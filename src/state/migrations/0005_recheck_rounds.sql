-- Migration 5: cutover's re-check rounds before the fence, and who holds a pre-verification
-- request (state::touched).

-- `round`: the re-check round in progress (0: the full comparison ahead); change capture
-- records each key with the round it read, and `acked_round` is the round the last recording
-- transaction read (the round's acknowledgement). `holder_pid` and `holder_start`: the target
-- session of the cutover that made the request (pg_stat_activity's pid and backend_start);
-- change capture records only while that session lives, so a killed cutover's request costs
-- nothing.
ALTER TABLE pgmove.verify_ahead
    ADD COLUMN IF NOT EXISTS round integer NOT NULL DEFAULT 0,
    ADD COLUMN IF NOT EXISTS acked_round integer,
    ADD COLUMN IF NOT EXISTS holder_pid integer,
    ADD COLUMN IF NOT EXISTS holder_start timestamptz;

-- The last round each key was touched in.
ALTER TABLE pgmove.touched ADD COLUMN IF NOT EXISTS round integer NOT NULL DEFAULT 0;
