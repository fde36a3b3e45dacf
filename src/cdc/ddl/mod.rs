//! DDL during change capture (`cdc.ddl`): an event trigger on the source puts each
//! CREATE/ALTER/DROP TABLE into the change stream, and the applier runs it on the target at
//! that point of the stream.
//!
//! # On the source ([`install_sql`], [`uninstall_sql`])
//!
//! In schema `pgmove`, for plan artifact `A` (`pgmove_<name>`, see [`crate::plan::artifact_name`]):
//! - event trigger `A_ddl` on `ddl_command_end` for `CREATE TABLE`, `CREATE TABLE AS`,
//!   `SELECT INTO`, `ALTER TABLE` and `DROP TABLE`; `A_ddl_drop` on `sql_drop` (`DROP TABLE`:
//!   the dropped tables are only visible there); `A_ddl_rewrite` on `table_rewrite`
//!   (`ALTER TABLE`: a rewrite that computed per-row values the stream does not carry);
//!   `A_ddl_start` on `ddl_command_start` (`ALTER TABLE`: which columns had a stored default
//!   before the statement);
//! - function `pgmove.A_ddl()` they all run, and `pgmove.A_ddl_emit(...)` doing the work;
//! - table `pgmove.A_ddl_key`: a random key only the installing role can read;
//! - with the schema, the marker table `pgmove.created_by_pgmove` (see
//!   [`crate::state::MARKER_TABLE`]), and a row per object above in `pgmove.objects`
//!   ([`RECORD_TABLE`]), written in the transaction that creates them: `pgmove cleanup` drops
//!   exactly those. A `pgmove` schema without the marker is someone else's: the install
//!   refuses to write into it.
//!
//! The names come from [`crate::plan::names::ddl_names`]: exact per plan, hashed when too long.
//!
//! The triggers are `ENABLE ALWAYS`: they fire in sessions with `session_replication_role =
//! replica` too.
//!
//! For each statement that touches a table of the replicated schemas (not matching an
//! `exclude` glob), the trigger emits ONE transactional
//! `pg_logical_emit_message(true, 'pgmove.ddl.<plan>', <json>)` right after the statement ran,
//! so the message sits in the stream after the statement's effects and before whatever the
//! transaction does next. The JSON carries the command tag, `current_query()`, the ordinal of
//! the statement in the client's query string, the role and `search_path` it ran with, the
//! tables it touched, and the key. See [`DdlEvent`].
//!
//! ## New tables are published from their creation on
//!
//! pgoutput streams a table's changes only once it is in the publication, judged as of each
//! change's own position in the WAL: rows inserted between a `CREATE TABLE` and a later
//! `ALTER PUBLICATION ... ADD TABLE` are never sent. So the trigger adds a new table to the
//! plan's publication itself, in the creating transaction, at the end of the `CREATE TABLE`
//! statement (before any row can be inserted): every row of it is then streamed, including
//! those inserted later in the same transaction (tested in `tests/it/cdc_ddl.rs`). Partitions of a
//! published partitioned table are published with it and left alone. Only tables with a
//! replica identity (a primary key, or REPLICA IDENTITY FULL/INDEX) are added: adding one
//! without makes every UPDATE and DELETE of it fail on the source ("cannot update table ...
//! because it does not have a replica identity and publishes updates"). A table created
//! without a key stays pending until the end of its transaction and is published as soon as a
//! statement gives it one (`CREATE TABLE t (...); ALTER TABLE t ADD PRIMARY KEY ...`). If it
//! already holds rows by then (or was filled by `CREATE TABLE AS`/`SELECT INTO`), those rows
//! are not in the stream, and the message says so ([`DdlError::Unreplayable`]).
//!
//! ## Trust
//!
//! `pg_logical_emit_message` is executable by PUBLIC (PostgreSQL 15), so anyone who can log in
//! to the source can put a message with our prefix into the stream. The applier runs only
//! messages carrying the key of `pgmove.A_ddl_key` (readable by its owner only, and by the
//! migrating role when the master user installed the capture; the SECURITY DEFINER emit
//! function reads it). With `owner: keep` the statement is run on the target as the role that
//! ran it on the source (`SET ROLE`), so a table owner's DDL cannot do more there than it could
//! on the source, and new tables get the same owner; with `owner: target-user` it is run as the
//! target's connecting user, who owns everything there (no `SET ROLE`: the source's roles need
//! not exist on the target; see [`ReplayAs`]).
//!
//! ## Privileges
//!
//! Event triggers need a superuser: `rds_superuser` on Amazon RDS and Aurora (AWS: "You can use
//! the main user account ... to create, modify, rename, and delete event triggers"; drop them
//! before a major version upgrade), `cloudsqlsuperuser` on Cloud SQL. The installing role owns
//! the SECURITY DEFINER functions; to add tables to the publication it must own the
//! publication and be able to act as the tables' owners (a real superuser can; on RDS,
//! `rds_superuser` must be a member of the owning roles, as for creating the publication in
//! the first place). When it cannot, the message says the table is not published.
//! On the target, with `owner: keep`, the applying role must be able to `SET ROLE` to the roles
//! that run DDL on the source (a superuser can; otherwise `GRANT <role> TO <applier>`).
//!
//! A migrating role that may not create event triggers uses a capture the master user installed
//! once with the SQL of `pgmove setup-sql` ([`setup`]): apply finds it and uses it as it is,
//! and never drops and creates the event triggers again, whoever installed them (a resumed apply
//! keeps them); cleanup leaves the master's capture and prints the SQL that removes it.
//!
//! # On the applier ([`handle`])
//!
//! [`handle`] turns a [`LogicalMessage`](crate::cdc::pgoutput::LogicalMessage) into the SQL to run on the target at that point of the
//! stream (`replicate`), nothing (`ignore`, another plan's prefix, a message marked as applied
//! by hand), or an error (`refuse`, or a statement pgmove cannot replay exactly).
//!
//! What cannot be replayed exactly, and is refused with [`DdlError::Unreplayable`]:
//! - a statement run inside a function, procedure or DO block (`current_query()` is then the
//!   call, not the DDL), or one of several table DDL statements of one query string that
//!   cannot be told apart;
//! - `CREATE TABLE AS` / `SELECT INTO` (their rows are not in the stream);
//! - `ALTER TABLE ... ADD COLUMN` with a volatile default or an identity on a table with rows
//!   (the values each row got are computed by a table rewrite, which logical decoding does
//!   not stream);
//! - rows written into a new table before it could be published.
//!
//! `ADD COLUMN ... DEFAULT now()` (any non-volatile default) is replayed exactly: existing rows
//! get the value the source computed (its `attmissingval`), not the target's `now()`. After each
//! statement the target checks that the tables it touched exist where the source has them (or
//! no longer exist, after DROP TABLE), so a statement resolved differently there (a schema the
//! target lacks, say) stops the apply instead of landing elsewhere.
//!
//! On sources older than PostgreSQL 12 the checks for volatile defaults and stored missing
//! values are skipped (the catalog columns they read do not exist).
//!
//! `ALTER TABLE ... ALTER COLUMN ... TYPE ... USING <expr>` rewrites the table too; it is
//! replayed, which is exact for the usual deterministic casts but not for a volatile `USING`.
//!
//! Enum types are covered too: `CREATE TYPE ... AS ENUM` and `ALTER TYPE` of an enum (`ADD
//! VALUE`, `RENAME VALUE`, ...) are emitted like table DDL (object type `enum`). A new enum
//! value cannot be used in the transaction that added it before it commits, so the applier
//! commits the target transaction holding `ADD VALUE` right after the source transaction
//! holding it; on a target before PostgreSQL 12, where `ADD VALUE` cannot run in a transaction
//! block, it runs on its own as `ADD VALUE IF NOT EXISTS` and the progress row follows
//! ([`DdlAction::add_value_autocommit`]).
//!
//! Not covered: other DDL (CREATE INDEX, other CREATE TYPE, CREATE FUNCTION, ...:
//! apply those on the target yourself, before a table that needs them), `DROP SCHEMA ...
//! CASCADE`, and `ALTER TABLE ... SET SCHEMA` into a replicated schema (the table's rows are
//! not on the target).

use serde::Deserialize;

use crate::pg::Lsn;

mod event;
pub mod guard;
mod install;
pub mod setup;
mod split;

pub use event::{add_value_if_not_exists, handle, parse};
pub use install::{
    glob_to_like, install, install_sql, key_sql, read_key, uninstall, uninstall_sql,
    RECORD_EVENT_TRIGGER, RECORD_FUNCTION, RECORD_TABLE, RECORD_TABLE_KIND,
};
pub use split::{split_statements, Kind, Statement};

/// `pg_logical_emit_message` prefix of every plan: `pgmove.ddl.<plan>`.
pub const PREFIX: &str = crate::plan::names::DDL_MESSAGE_PREFIX;

/// Version of the JSON the trigger writes.
const VERSION: u32 = 1;

/// Command tags the `ddl_command_end` trigger fires for.
pub const TAGS: &[&str] = &[
    "CREATE TABLE",
    "CREATE TABLE AS",
    "SELECT INTO",
    "ALTER TABLE",
    "DROP TABLE",
    // Enum types only (the trigger emits nothing for other kinds of types): CREATE TYPE ...
    // AS ENUM, ALTER TYPE ... ADD VALUE / RENAME VALUE / RENAME TO / OWNER TO / SET SCHEMA.
    "CREATE TYPE",
    "ALTER TYPE",
];

/// The message prefix of a plan.
pub fn prefix(plan_name: &str) -> String {
    crate::plan::names::ddl_message_prefix(plan_name)
}

/// Names of the source objects of a plan: derived in [`crate::plan::names`].
pub use crate::plan::names::DdlNames as Names;

/// The names for `plan_name` (see [`crate::plan::names::ddl_names`]).
pub fn names(plan_name: &str) -> Names {
    crate::plan::names::ddl_names(plan_name)
}

/// `cdc.ddl`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum DdlPolicy {
    /// Run each statement on the target at its point of the stream.
    #[default]
    Replicate,
    /// Skip them (the user applies them on the target).
    Ignore,
    /// Stop at the first one.
    Refuse,
}

impl From<crate::plan::Ddl> for DdlPolicy {
    fn from(d: crate::plan::Ddl) -> DdlPolicy {
        match d {
            crate::plan::Ddl::Replicate => DdlPolicy::Replicate,
            crate::plan::Ddl::Ignore => DdlPolicy::Ignore,
            crate::plan::Ddl::Refuse => DdlPolicy::Refuse,
        }
    }
}

/// What [`handle`] needs besides the message.
#[derive(Clone, Debug, Default)]
pub struct DdlConfig {
    pub plan_name: String,
    /// The key installed on the source ([`install`], [`read_key`]).
    pub key: String,
    pub policy: DdlPolicy,
    /// The plan's `exclude` globs: statements touching only excluded tables are skipped.
    pub exclude: Vec<String>,
    /// Messages (by LSN) the user applied on the target by hand after a refusal: skipped.
    pub applied_by_hand: Vec<Lsn>,
    /// Which role runs the statements on the target (the plan's `owner`).
    pub replay_as: ReplayAs,
}

/// Which role runs a replayed statement on the target.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum ReplayAs {
    /// The role that ran it on the source (`SET ROLE`), so new tables get the same owner
    /// (`owner: keep`).
    #[default]
    SourceRole,
    /// The target's connecting user, without `SET ROLE` (`owner: target-user`: it owns
    /// everything, and the source's roles need not exist on the target).
    TargetUser,
}

impl From<crate::plan::Owner> for ReplayAs {
    fn from(o: crate::plan::Owner) -> ReplayAs {
        match o {
            crate::plan::Owner::Keep => ReplayAs::SourceRole,
            crate::plan::Owner::TargetUser => ReplayAs::TargetUser,
        }
    }
}

/// A table a statement touched, as the trigger saw it.
#[derive(Clone, Debug, Deserialize, PartialEq, Eq)]
pub struct DdlObject {
    /// `table`, `foreign table`, `view`, `materialized view`.
    #[serde(rename = "type")]
    pub object_type: String,
    pub schema: String,
    pub name: String,
    /// As `pg_identify_object` writes it (quoted where needed).
    pub identity: String,
}

/// A table created in the statement's transaction, and whether its changes are streamed.
#[derive(Clone, Debug, Deserialize, PartialEq, Eq)]
pub struct NewTable {
    pub schema: String,
    pub name: String,
    /// In the publication (added by the trigger in the creating transaction, or published
    /// with its partitioned parent): every row is in the stream.
    pub published: bool,
    /// It held rows when it was published: those rows are not in the stream.
    #[serde(default)]
    pub had_rows: bool,
    /// Why it is not published.
    #[serde(default)]
    pub reason: Option<String>,
}

/// A column added with a non-volatile default: existing rows read this value.
#[derive(Clone, Debug, Deserialize, PartialEq, Eq)]
pub struct MissingValue {
    pub schema: String,
    pub name: String,
    pub column: String,
    /// `attmissingval` as text (a one-element array), in the applier's output settings.
    pub missing: Option<String>,
    /// The element, as text.
    pub value: Option<String>,
    /// Why the value could not be read.
    #[serde(default)]
    pub error: Option<String>,
}

/// A table rewritten with per-row computed values.
#[derive(Clone, Debug, Deserialize, PartialEq, Eq)]
pub struct VolatileRewrite {
    pub schema: String,
    pub name: String,
    pub columns: String,
}

/// A DDL message as the trigger wrote it.
#[derive(Clone, Debug, Deserialize, PartialEq, Eq)]
pub struct DdlEvent {
    pub v: u32,
    pub key: Option<String>,
    /// The command tag: `CREATE TABLE`, `ALTER TABLE`, ...
    pub tag: String,
    /// `current_query()`: the client's whole query string.
    pub sql: String,
    /// Which firing of the trigger within that query string this is (1-based).
    pub n: u32,
    /// The role the statement ran as.
    pub role: Option<String>,
    /// Its `search_path`, as set.
    pub search_path: String,
    pub objects: Vec<DdlObject>,
    #[serde(default)]
    pub tables: Vec<NewTable>,
    #[serde(default)]
    pub missing: Vec<MissingValue>,
    #[serde(default)]
    pub volatile: Vec<VolatileRewrite>,
}

/// What to do on the target.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DdlAction {
    /// Where the message is in the stream.
    pub lsn: Lsn,
    pub tag: String,
    /// The statement as it ran on the source.
    pub statement: String,
    /// The SQL to run on the target, in the apply transaction, after the changes that came
    /// before the message and before those that come after it: the statement with the
    /// source's role and search_path (both restored afterwards), then the values existing
    /// rows got for columns added with a non-volatile default.
    pub sql: String,
    /// New tables of the transaction. Published ones need nothing; the lead decides what to
    /// do with an unpublished one (`reason`), whose rows will not arrive.
    pub new_tables: Vec<NewTable>,
    /// `ALTER TYPE ... ADD VALUE`: PostgreSQL 12 and later run it in a transaction block, but
    /// the new value cannot be used before that transaction commits ("unsafe use of new
    /// value"), so the target transaction holding it commits right after the source
    /// transaction holding it, with its progress row. Before PostgreSQL 12 it cannot run in a
    /// transaction block at all: these statements, each run on its own (autocommit), replay
    /// it as `ADD VALUE IF NOT EXISTS` (so running it again after a crash before the progress
    /// row is recorded is harmless); the progress row is recorded right after. `None` for
    /// every other statement.
    pub add_value_autocommit: Option<Vec<String>>,
}

impl DdlAction {
    /// New tables whose rows will not arrive through the stream.
    pub fn unpublished(&self) -> impl Iterator<Item = &NewTable> {
        self.new_tables.iter().filter(|t| !t.published)
    }
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum DdlError {
    #[error("DDL message at {lsn} cannot be read: {detail}")]
    Malformed { lsn: Lsn, detail: String },
    #[error("a logical decoding message at {lsn} has pgmove's DDL prefix but not the key of the trigger pgmove installed: it was not written by the trigger (anyone can call pg_logical_emit_message), so it is not run; if the trigger was reinstalled during change capture, apply the DDL on the target yourself and mark the message at {lsn} as applied")]
    Untrusted { lsn: Lsn },
    #[error("DDL on the source (at {lsn}): {sql}; cdc.ddl is refuse: apply it on the target yourself, then restart apply (with the DDL at {lsn} marked as applied)")]
    Refused { lsn: Lsn, sql: String },
    #[error("DDL on the source (at {lsn}) cannot be replicated exactly: {reason}. Statement: {sql}. Apply it on the target yourself, then restart apply (with the DDL at {lsn} marked as applied)")]
    Unreplayable {
        lsn: Lsn,
        sql: String,
        reason: String,
    },
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_fit_in_63_bytes() {
        let n = names("shop");
        assert_eq!(n.trigger, "pgmove_shop_ddl");
        assert_eq!(n.publication, "pgmove_shop");
        let long = names(&"x".repeat(crate::plan::MAX_NAME_LEN));
        for s in [
            &long.trigger,
            &long.drop_trigger,
            &long.rewrite_trigger,
            &long.start_trigger,
            &long.emit,
            &long.key_table,
        ] {
            assert!(s.len() <= 63, "{s}");
        }
        assert_ne!(long.trigger, long.drop_trigger);
        assert_eq!(glob_to_like("public.tmp_*"), "public.tmp\\_%");
    }
}
