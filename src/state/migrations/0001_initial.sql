-- Migration 1: the state schema exactly as pgmove created it before the schema was versioned
-- (release 0366ef0), every statement idempotent so a `pgmove` schema that release wrote (no
-- pgmove.schema_version) is adopted as version 1 and upgraded in place.
CREATE SCHEMA IF NOT EXISTS pgmove;
COMMENT ON SCHEMA pgmove IS 'pgmove migration state; removed by pgmove cleanup';

-- The marker: pgmove made this schema (cleanup drops a pgmove schema only when it holds it).
CREATE TABLE IF NOT EXISTS pgmove.created_by_pgmove (
    created_at timestamptz NOT NULL DEFAULT now(),
    note       text NOT NULL
);
INSERT INTO pgmove.created_by_pgmove (note)
    SELECT 'this schema was created by pgmove; pgmove cleanup drops it'
    WHERE NOT EXISTS (SELECT 1 FROM pgmove.created_by_pgmove);

-- One row per plan: strategy, phase (state::Phase), last error.
CREATE TABLE IF NOT EXISTS pgmove.runs (
    plan_name   text PRIMARY KEY,
    strategy    text NOT NULL,
    phase       text NOT NULL,
    started_at  timestamptz NOT NULL DEFAULT now(),
    updated_at  timestamptz NOT NULL DEFAULT now(),
    last_error  text
);

-- Finished steps (state::step names).
CREATE TABLE IF NOT EXISTS pgmove.steps (
    plan_name   text NOT NULL,
    step        text NOT NULL,
    finished_at timestamptz NOT NULL DEFAULT now(),
    detail      text,
    PRIMARY KEY (plan_name, step)
);

-- Items of the dump restored (dump-restore, and copy-cdc's schema).
CREATE TABLE IF NOT EXISTS pgmove.restore_items (
    plan_name   text NOT NULL,
    dump_id     integer NOT NULL,
    kind        text NOT NULL,
    object      text NOT NULL,
    finished_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (plan_name, dump_id)
);

-- Chunks of tables copied (copy-cdc).
CREATE TABLE IF NOT EXISTS pgmove.copy_progress (
    plan_name    text NOT NULL,
    schema_name  text NOT NULL,
    table_name   text NOT NULL,
    chunk        integer NOT NULL,
    chunks       integer NOT NULL,
    rows         bigint NOT NULL,
    bytes        bigint NOT NULL,
    snapshot_lsn pg_lsn NOT NULL,
    finished_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (plan_name, schema_name, table_name, chunk)
);
-- What a rerun needs to keep the done chunks of a split table (copy-cdc): the chunk's ctid
-- block range [start_block, end_block) (end NULL for the last), the source table's
-- relfilenode and the snapshot (pg_snapshot as text) it was read in. NULL in rows of earlier
-- versions: such chunks cannot be checked, their table is copied again whole.
ALTER TABLE pgmove.copy_progress
    ADD COLUMN IF NOT EXISTS start_block bigint,
    ADD COLUMN IF NOT EXISTS end_block   bigint,
    ADD COLUMN IF NOT EXISTS relfilenode bigint,
    ADD COLUMN IF NOT EXISTS snapshot    text;

-- Change capture's position, written in the transaction of the changes it describes.
CREATE TABLE IF NOT EXISTS pgmove.progress (
    plan_name    text PRIMARY KEY,
    applied_lsn  pg_lsn NOT NULL,
    transactions bigint NOT NULL DEFAULT 0,
    changes      bigint NOT NULL DEFAULT 0,
    updated_at   timestamptz NOT NULL DEFAULT now()
);

-- The cutover (state::CutoverState) and the source's setting to restore when unfencing.
CREATE TABLE IF NOT EXISTS pgmove.cutover (
    plan_name      text PRIMARY KEY,
    state          text NOT NULL,
    requested_at   timestamptz NOT NULL DEFAULT now(),
    fenced_at      timestamptz,
    prev_read_only text,
    final_lsn      pg_lsn,
    finished_at    timestamptz,
    detail         text
);

-- The source's replica identities before pgmove set REPLICA IDENTITY FULL (copy-cdc);
-- `pgmove cleanup` gives them back.
CREATE TABLE IF NOT EXISTS pgmove.replica_identity (
    plan_name text NOT NULL, schema_name text NOT NULL, table_name text NOT NULL,
    relreplident text NOT NULL, index_name text,
    PRIMARY KEY (plan_name, schema_name, table_name));

-- What copy-cdc creates on the source outside its pgmove schema (slots, publications): the
-- proof that an object of such a name is pgmove's (see crate::owned).
CREATE TABLE IF NOT EXISTS pgmove.source_objects (
    plan_name        text NOT NULL,
    kind             text NOT NULL,
    name             text NOT NULL,
    source           text NOT NULL,
    source_database  text NOT NULL,
    source_system_id text,
    state            text NOT NULL,
    recorded_at      timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (plan_name, kind, name)
);

-- The roles `roles: create` made for each plan (never dropped by cleanup).
CREATE TABLE IF NOT EXISTS pgmove.created_roles (
    plan_name  text NOT NULL,
    role_name  text NOT NULL,
    left_out   text,
    created_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (plan_name, role_name)
);
