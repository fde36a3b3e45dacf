//! The plan reference: every key the parser takes, with its type, default, the strategies that
//! read it, what it does and an example. From this one table come the key table of
//! `docs/plan.md` and the JSON Schema that `pgmove schema` prints (`docs/plan.schema.json`);
//! tests check the table against the parser's keys (`raw::SECTIONS`), every example against
//! the parser and the schema, and both documents against what this module generates, so none
//! of them can drift.
//!
//! The schema is for editors (the YAML language server validates and completes a plan as it is
//! typed); the parser stays the authority: it also checks what a schema cannot say (a size's
//! minimum, a DSN's password, combinations of keys).

use serde_json::{json, Map, Value};

use super::keywords::{
    CutoverMode, Ddl, Fence, Keyword, Owner, Roles, Sequences, StrategyChoice, TablesWithoutKey,
    TargetKind, VerifyLevel,
};
use super::names::{MAX_IDENTIFIER, MAX_NAME_LEN};
use crate::pg::SslMode;

/// What a key's value is, as the parser reads it.
#[derive(Clone, Copy)]
pub(crate) enum Kind {
    /// The plan format version: the integer 1.
    Version,
    /// The plan's name: letters, digits, `-`, `_`.
    Name,
    /// A libpq URI or `key=value` string.
    Dsn,
    /// `{env: NAME}` or `{file: PATH}`.
    Password,
    /// One of a closed set of spellings.
    Keyword(fn() -> Vec<&'static str>),
    /// A file or directory path.
    Path,
    /// A root certificate file, or `system`.
    RootCert,
    /// `500ms`, `30s`, `5m`, `1h30m`, `2d`.
    Duration,
    /// `512MB`, `1GB` (1024-based).
    Size,
    /// A whole number from 1 to 256.
    Count,
    Boolean,
    /// A list of schema names.
    Schemas,
    /// A list of `schema.table` globs.
    Globs,
    /// A WAL position, `16/B374D848`.
    Lsn,
    /// Lowercase letters, digits and `_`, at most this many characters.
    Identifier(usize),
}

/// One row of the reference.
pub(crate) struct Key {
    /// How docs/plan.md names it (`*.password` for a key of both servers).
    pub doc_key: &'static str,
    /// Where it stands in the plan, dotted; a key of both servers has both paths.
    pub paths: &'static [&'static str],
    pub kind: Kind,
    /// The default as a person reads it; `required` for a key every plan gives.
    pub default: &'static str,
    /// The strategies that read it.
    pub strategies: &'static str,
    /// What it does.
    pub what: &'static str,
    /// A value the parser accepts (YAML).
    pub example: &'static str,
    /// Other keys the example needs to be accepted (path, YAML value). Read by the tests.
    #[cfg_attr(not(test), allow(dead_code))]
    pub example_needs: &'static [(&'static str, &'static str)],
    /// A value the parser refuses and the schema too (YAML), so a test proves both check it.
    #[cfg_attr(not(test), allow(dead_code))]
    pub wrong: &'static str,
}

/// The sections, with what they hold (for the schema's descriptions).
pub(crate) const SECTIONS: &[(&str, &str)] = &[
    ("source", "The server the database moves from."),
    ("target", "The server the database moves to."),
    ("objects", "What moves."),
    (
        "cdc",
        "Change capture (copy-cdc; `tables_without_key` and `ddl` also pglogical).",
    ),
    ("pglogical", "The pglogical strategy."),
    (
        "cutover",
        "Cutover of an online move (copy-cdc, pglogical) and the verification before it.",
    ),
];

const ALL: &str = "all";
const ONLINE: &str = "copy-cdc, pglogical";

fn names<K: Keyword>() -> Vec<&'static str> {
    K::names()
}

/// Every key, in the order docs/plan.md lists them.
pub(crate) const KEYS: &[Key] = &[
    Key {
        doc_key: "version",
        paths: &["version"],
        kind: Kind::Version,
        default: "required",
        strategies: ALL,
        what: "the plan format version; `1`",
        example: "1",
        example_needs: &[],
        wrong: "2",
    },
    Key {
        doc_key: "name",
        paths: &["name"],
        kind: Kind::Name,
        default: "required",
        strategies: ALL,
        what: "names everything pgmove creates: slot, publication, DDL capture objects, dump directory. A name made only of lowercase words joined by single `_` gives `pgmove_<name>`; any other name gets a hash suffix (`pgmove_shop_to_aurora__<10 hex>`), so two plan names never share objects. `pgmove plan` prints the names",
        example: "shop-to-aurora",
        example_needs: &[],
        wrong: "shop to aurora",
    },
    Key {
        doc_key: "source.dsn`, `target.dsn",
        paths: &["source.dsn", "target.dsn"],
        kind: Kind::Dsn,
        default: "required",
        strategies: ALL,
        what: "as libpq reads it: several hosts (`host=a,b port=1,2`) are tried in order; `keepalives*` and `tcp_user_timeout` are honoured (default: a silent peer is given up after about a minute). A password in it is refused: use `password`",
        example: "postgres://migrator@10.0.0.5:5432/shop",
        example_needs: &[],
        wrong: "''",
    },
    Key {
        doc_key: "*.password",
        paths: &["source.password", "target.password"],
        kind: Kind::Password,
        default: "none (then `PGPASSWORD`, `~/.pgpass`)",
        strategies: ALL,
        what: "`{env: NAME}` reads the environment variable NAME, `{file: PATH}` the file (up to 64 kB, without its trailing newline); never inline; secrets never appear in output",
        example: "{env: SRC_PASSWORD}",
        example_needs: &[],
        wrong: "hunter2",
    },
    Key {
        doc_key: "*.sslmode",
        paths: &["source.sslmode", "target.sslmode"],
        kind: Kind::Keyword(names::<SslMode>),
        default: "the DSN's, else `prefer`",
        strategies: ALL,
        what: "as libpq: `prefer`/`require` without a root certificate encrypt without checking the certificate; `verify-full` checks the host against the certificate's names (its CN when it has none). Set it in the DSN or here, not both with different values",
        example: "verify-full",
        example_needs: &[],
        wrong: "verify_full",
    },
    Key {
        doc_key: "*.sslrootcert",
        paths: &["source.sslrootcert", "target.sslrootcert"],
        kind: Kind::RootCert,
        default: "the DSN's",
        strategies: ALL,
        what: "the root certificate file that verifies the server; `system` uses the operating system's CA bundle (also for PostgreSQL 15 client programs, which get the bundle file)",
        example: "/etc/ssl/rds-global-bundle.pem",
        example_needs: &[],
        wrong: "[a, b]",
    },
    Key {
        doc_key: "target.kind",
        paths: &["target.kind"],
        kind: Kind::Keyword(names::<TargetKind>),
        default: "`auto`",
        strategies: ALL,
        what: "what the target is. `auto` detects it (the report says from what); any other value overrides the detection, and every check and fix follows it (parameter groups, `rds_superuser` and the `rds.extensions` allowlist on `rds`/`aurora`); `plan` warns when the server shows another platform. See [managed.md](managed.md)",
        example: "aurora",
        example_needs: &[],
        wrong: "rds-aurora",
    },
    Key {
        doc_key: "strategy",
        paths: &["strategy"],
        kind: Kind::Keyword(names::<StrategyChoice>),
        default: "`auto`",
        strategies: ALL,
        what: "`auto` picks dump-restore when the downtime budget covers a full copy or the source cannot decode, copy-cdc otherwise, and pglogical instead of copy-cdc when `pglogical.prefer` is `true` and both servers have it (or when the source is older than PostgreSQL 10, where pgoutput does not exist, and has it); `plan` names every strategy it did not pick and why",
        example: "copy-cdc",
        example_needs: &[],
        wrong: "logical",
    },
    Key {
        doc_key: "downtime",
        paths: &["downtime"],
        kind: Kind::Duration,
        default: "`5m`",
        strategies: "`strategy: auto`; cutover's estimate",
        what: "the write outage accepted; guides `auto`, and `cutover --dry-run` compares its estimated outage with it",
        example: "90s",
        example_needs: &[],
        wrong: "300",
    },
    Key {
        doc_key: "objects.schemas",
        paths: &["objects.schemas"],
        kind: Kind::Schemas,
        default: "every non-system schema",
        strategies: ALL,
        what: "which schemas move (never `pg_catalog`, `information_schema`, `pg_toast` or pgmove's own `pgmove`); each at most once",
        example: "[public, sales]",
        example_needs: &[],
        wrong: "public",
    },
    Key {
        doc_key: "objects.exclude",
        paths: &["objects.exclude"],
        kind: Kind::Globs,
        default: "none",
        strategies: ALL,
        what: "tables left out, as globs on `schema.table` (`*` any run of characters, `?` one; case-sensitive); also `pgmove.*` to leave a source schema named `pgmove` behind",
        example: "[public.tmp_*, audit.*]",
        example_needs: &[],
        wrong: "[tmp_orders]",
    },
    Key {
        doc_key: "objects.large_objects",
        paths: &["objects.large_objects"],
        kind: Kind::Boolean,
        default: "`true`",
        strategies: ALL,
        what: "move large objects (with their owners and grants)",
        example: "false",
        example_needs: &[],
        wrong: "'no'",
    },
    Key {
        doc_key: "roles",
        paths: &["roles"],
        kind: Kind::Keyword(names::<Roles>),
        default: "`skip`",
        strategies: ALL,
        what: "privileges always move for roles that exist on the target; grants to missing roles are left out and named by `plan` and `apply`. `create`: before the restore, apply creates the roles the moved objects need (owners, grantees, default privileges, large objects, every role that is a member of one of those, directly or through other roles, and the roles they are direct members of) that the target lacks, with their source attributes, connection limit, `VALID UNTIL`, comment and settings (`ALTER ROLE ... SET`, and `... IN DATABASE` for the moved database), but never their passwords (apply names the roles that can log in, whose password to set); memberships follow, in the roles pgmove created and in roles the target has (`pg_read_all_data`, ...), where the connecting role may grant them. The connecting role needs CREATEROLE; what it may not give is left out and reported by role with the fix: SUPERUSER, REPLICATION and BYPASSRLS unless it is a superuser (on RDS/Aurora, where the master user is not, the fix names the equivalent, e.g. `GRANT rds_replication TO ...`), membership in a superuser role, a setting only a superuser may set. The managed services' own roles (`pg_*`, `rds_*`, `rdsadmin`, `rdsrepladmin`, ...) are never created and are reported as skipped when the source has them. Roles already there are left alone; a rerun creates nothing, tries again the memberships and settings of the roles it created that the target still lacks, and reports the same; `apply --format json` gives it all in the summary's `roles` object; cleanup never drops roles",
        example: "create",
        example_needs: &[],
        wrong: "copy",
    },
    Key {
        doc_key: "owner",
        paths: &["owner"],
        kind: Kind::Keyword(names::<Owner>),
        default: "`keep`",
        strategies: ALL,
        what: "`keep`: objects keep their source owners (the connecting role must be a member of each); `target-user`: the target's connecting role owns everything",
        example: "target-user",
        example_needs: &[],
        wrong: "target_user",
    },
    Key {
        doc_key: "jobs",
        paths: &["jobs"],
        kind: Kind::Count,
        default: "`4`",
        strategies: "dump-restore, copy-cdc; `verify`",
        what: "parallel table copies / restore jobs (and tables `verify` checks at once); `plan` blocks when the servers have fewer free connections",
        example: "8",
        example_needs: &[],
        wrong: "0",
    },
    Key {
        doc_key: "index_jobs",
        paths: &["index_jobs"],
        kind: Kind::Count,
        default: "`2`",
        strategies: ALL,
        what: "parallel index builds",
        example: "4",
        example_needs: &[],
        wrong: "257",
    },
    Key {
        doc_key: "split_tables_larger_than",
        paths: &["split_tables_larger_than"],
        kind: Kind::Size,
        default: "`1GB`",
        strategies: "copy-cdc",
        what: "copy-cdc splits larger tables into ctid ranges copied in parallel; at least `1MB` (to never split, a size above the largest table, e.g. `10TB`)",
        example: "512MB",
        example_needs: &[],
        wrong: "1024",
    },
    Key {
        doc_key: "cdc.tables_without_key",
        paths: &["cdc.tables_without_key"],
        kind: Kind::Keyword(names::<TablesWithoutKey>),
        default: "`refuse`",
        strategies: ONLINE,
        what: "what change capture does with tables that have no primary key or replica identity index: `refuse` blocks the plan; `replica-identity-full` sets `REPLICA IDENTITY FULL` on the source (cleanup gives the table its identity back); `insert-only` replicates their inserts and truncates only; `exclude` copies them once with the load and does not replicate their changes (see the README)",
        example: "replica-identity-full",
        example_needs: &[],
        wrong: "full",
    },
    Key {
        doc_key: "cdc.ddl",
        paths: &["cdc.ddl"],
        kind: Kind::Keyword(names::<Ddl>),
        default: "`replicate`",
        strategies: ONLINE,
        what: "DDL during change capture: replayed at its place in the stream, ignored, or stopping apply (`pgmove setup-sql` prints what the source's master user runs once so that a user without superuser can capture it). Under pglogical a guard on the source lets through only changes sent with `pglogical.replicate_ddl_command` (see the README)",
        example: "refuse",
        example_needs: &[],
        wrong: "replay",
    },
    Key {
        doc_key: "cdc.start_lsn",
        paths: &["cdc.start_lsn"],
        kind: Kind::Lsn,
        default: "none",
        strategies: "copy-cdc",
        what: "resume an existing slot from this position, as PostgreSQL prints it (`pg_replication_slots.confirmed_flush_lsn`); not `0/0`",
        example: "16/B374D848",
        example_needs: &[],
        wrong: "16B374D848",
    },
    Key {
        doc_key: "cdc.slot",
        paths: &["cdc.slot"],
        kind: Kind::Identifier(MAX_IDENTIFIER),
        default: "`pgmove_<name>`",
        strategies: "copy-cdc",
        what: "the replication slot's name: lowercase letters, digits and `_`, at most 63 characters",
        example: "pgmove_shop",
        example_needs: &[],
        wrong: "Pgmove-Shop",
    },
    Key {
        doc_key: "cdc.memory_limit",
        paths: &["cdc.memory_limit"],
        kind: Kind::Size,
        default: "`256MB`",
        strategies: "copy-cdc",
        what: "what change capture holds in memory, whatever the size or number of source transactions; the rest spills to private temporary files; at least `16MB`",
        example: "1GB",
        example_needs: &[],
        wrong: "256",
    },
    Key {
        doc_key: "pglogical.replication_set",
        paths: &["pglogical.replication_set"],
        kind: Kind::Identifier(MAX_IDENTIFIER - 1),
        default: "`pgmove_<name>`",
        strategies: "pglogical",
        what: "the replication set's name (the insert set is `i<set>`): lowercase letters, digits and `_`, at most 62 characters",
        example: "pgmove_crm",
        example_needs: &[("strategy", "pglogical")],
        wrong: "CRM set",
    },
    Key {
        doc_key: "pglogical.provider_dsn",
        paths: &["pglogical.provider_dsn"],
        kind: Kind::Dsn,
        default: "`source.dsn`",
        strategies: "pglogical",
        what: "how the target *server* reaches the source (NAT, VPC peering, a bastion), as a libpq URI or `key=value` string without a password: pglogical's subscriber connects from the target, not from pgmove's host. A password in it is refused: the subscription gets the source's `password` secret, never printed. `plan` tries it from pgmove's host (it must reach the source's own database, as a role with REPLICATION); pgmove cannot try it from the target server without writing there, so the target server's own connection is tried when apply creates the subscription (pglogical connects to the provider before it records the subscription, and apply stops there with pglogical's error)",
        example: "host=10.0.0.5 port=5432 dbname=shop user=replicator",
        example_needs: &[("strategy", "pglogical")],
        wrong: "''",
    },
    Key {
        doc_key: "pglogical.prefer",
        paths: &["pglogical.prefer"],
        kind: Kind::Boolean,
        default: "`false`",
        strategies: "`strategy: auto`",
        what: "`true`: `strategy: auto` picks pglogical when both servers have it (in `shared_preload_libraries` and installable); only with `strategy: auto` or `pglogical`",
        example: "true",
        example_needs: &[],
        wrong: "'yes'",
    },
    Key {
        doc_key: "cutover.mode",
        paths: &["cutover.mode"],
        kind: Kind::Keyword(names::<CutoverMode>),
        default: "`manual`",
        strategies: ONLINE,
        what: "`manual`: you run `pgmove cutover`; `auto`: apply cuts over by itself once the lag allows",
        example: "auto",
        example_needs: &[],
        wrong: "automatic",
    },
    Key {
        doc_key: "cutover.max_lag",
        paths: &["cutover.max_lag"],
        kind: Kind::Duration,
        default: "`5s`",
        strategies: ONLINE,
        what: "the lag under which cutover fences the source; more than `0s`",
        example: "2s",
        example_needs: &[],
        wrong: "5",
    },
    Key {
        doc_key: "cutover.fence",
        paths: &["cutover.fence"],
        kind: Kind::Keyword(names::<Fence>),
        default: "`read-only`",
        strategies: ONLINE,
        what: "how writes on the source stop at cutover: `read-only` sets `ALTER DATABASE ... SET default_transaction_read_only = on` (recorded first and restored exactly if the cutover does not finish) and ends the other sessions; `none`: you stop the writes",
        example: "none",
        example_needs: &[],
        wrong: "readonly",
    },
    Key {
        doc_key: "cutover.sequences",
        paths: &["cutover.sequences"],
        kind: Kind::Keyword(names::<Sequences>),
        default: "`sync`",
        strategies: ONLINE,
        what: "`sync`: set every sequence (value, `is_called`, definition) from the source at cutover; `skip`: leave them as the load left them",
        example: "skip",
        example_needs: &[],
        wrong: "copy",
    },
    Key {
        doc_key: "cutover.verify",
        paths: &["cutover.verify"],
        kind: Kind::Keyword(names::<VerifyLevel>),
        default: "`checksums`",
        strategies: ALL,
        what: "what cutover verifies before declaring the target live (`none`, row `counts`, or chunked `checksums`); dump-restore's verify step and `pgmove verify` check counts only when it is `counts`",
        example: "counts",
        example_needs: &[],
        wrong: "rows",
    },
    Key {
        doc_key: "bin_dir",
        paths: &["bin_dir"],
        kind: Kind::Path,
        default: "none",
        strategies: ALL,
        what: "where to find `pg_dump`, `pg_restore` and `psql` first (then `/usr/lib/postgresql/*/bin`, then `PATH`)",
        example: "/usr/lib/postgresql/17/bin",
        example_needs: &[],
        wrong: "{dir: /usr/bin}",
    },
];

/// Where a plan's YAML points editors at the schema: the first line of every example plan.
pub const SCHEMA_MODELINE: &str = "# yaml-language-server: $schema=../../docs/plan.schema.json";

/// The whole-number and unit patterns the parser accepts (units.rs), as ECMA-262 regular
/// expressions (no flags: editors run them in JavaScript).
const DURATION_PATTERN: &str = r"^\s*([0-9]+\s*(ms|msecs?|milliseconds?|s|secs?|seconds?|m|mins?|minutes?|h|hrs?|hours?|d|days?)\s*)+$";
const SIZE_PATTERN: &str =
    r"^\s*[0-9]+(\.[0-9]+)?\s*([bB]([yY][tT][eE][sS]?)?|[kKmMgGtTpP]([iI]?[bB])?)\s*$";
const LSN_PATTERN: &str = r"^\s*[0-9A-Fa-f]{1,8}/[0-9A-Fa-f]{1,8}\s*$";

impl Kind {
    /// How docs/plan.md names the type.
    pub fn doc_type(self) -> String {
        match self {
            Kind::Version => "integer".to_string(),
            Kind::Name => format!("`[A-Za-z0-9_-]`, at most {MAX_NAME_LEN}"),
            Kind::Dsn => "libpq URI or `key=value` string".to_string(),
            Kind::Password => "`{env: NAME}` or `{file: PATH}`".to_string(),
            Kind::Keyword(names) => names()
                .iter()
                .map(|n| format!("`{n}`"))
                .collect::<Vec<_>>()
                .join(", "),
            Kind::Path => "path".to_string(),
            Kind::RootCert => "path or `system`".to_string(),
            Kind::Duration => "duration (`500ms`, `90s`, `5m`, `1h30m`, `2d`)".to_string(),
            Kind::Size => "size (`512MB`, `1GB`, `1.5GB`; 1024-based)".to_string(),
            Kind::Count => format!("1 to {}", super::defaults::MAX_JOBS),
            Kind::Boolean => "boolean".to_string(),
            Kind::Schemas => "list of schema names".to_string(),
            Kind::Globs => "list of `schema.table` globs".to_string(),
            Kind::Lsn => "LSN (`16/B374D848`)".to_string(),
            Kind::Identifier(max) => format!("identifier (`[a-z0-9_]`, at most {max})"),
        }
    }

    /// The JSON Schema of a value of this kind (without null).
    fn schema(self) -> Value {
        match self {
            Kind::Version => json!({ "const": super::VERSION }),
            Kind::Name => json!({
                "type": "string",
                "pattern": format!("^[A-Za-z0-9_-]{{1,{MAX_NAME_LEN}}}$"),
            }),
            Kind::Dsn => json!({ "type": "string", "pattern": r"\S" }),
            Kind::Password => json!({
                "type": "object",
                "properties": {
                    "env": {
                        "description": "The environment variable that holds the password.",
                        "type": "string",
                        "pattern": r"^[^=\s]+$",
                    },
                    "file": {
                        "description": "The file that holds the password alone (up to 64 kB; a trailing newline is dropped).",
                        "type": "string",
                        "minLength": 1,
                    },
                },
                "additionalProperties": false,
                "oneOf": [
                    { "required": ["env"] },
                    { "required": ["file"] },
                ],
            }),
            Kind::Keyword(names) => json!({ "type": "string", "enum": names() }),
            Kind::Path | Kind::RootCert => json!({ "type": "string", "minLength": 1 }),
            Kind::Duration => json!({ "type": "string", "pattern": DURATION_PATTERN }),
            Kind::Size => json!({ "type": "string", "pattern": SIZE_PATTERN }),
            Kind::Count => json!({
                "type": "integer",
                "minimum": 1,
                "maximum": super::defaults::MAX_JOBS,
            }),
            Kind::Boolean => json!({ "type": "boolean" }),
            Kind::Schemas => json!({
                "type": "array",
                "items": { "type": "string", "pattern": r"\S" },
                "uniqueItems": true,
            }),
            Kind::Globs => json!({
                "type": "array",
                "items": { "type": "string", "pattern": r"\." },
            }),
            Kind::Lsn => json!({ "type": "string", "pattern": LSN_PATTERN }),
            Kind::Identifier(max) => json!({
                "type": "string",
                "pattern": format!("^[a-z0-9_]{{1,{max}}}$"),
            }),
        }
    }
}

/// Whether the key must be given (a required key cannot be null either).
fn required(key: &Key) -> bool {
    key.default == "required"
}

/// `schema` that also accepts null (`key: null` or `key:` leaves the default).
fn or_null(schema: Value) -> Value {
    let mut s = schema;
    if let Some(obj) = s.as_object_mut() {
        // `oneOf` and the like would judge null too: those get the `anyOf` below.
        let combined = ["oneOf", "anyOf", "allOf", "not"]
            .iter()
            .any(|k| obj.contains_key(*k));
        if let (Some(Value::String(t)), false) = (obj.get("type").cloned(), combined) {
            obj.insert("type".to_string(), json!([t, "null"]));
            if let Some(Value::Array(values)) = obj.get_mut("enum") {
                values.push(Value::Null);
            }
            return s;
        }
    }
    json!({ "anyOf": [s, { "type": "null" }] })
}

/// The JSON Schema (draft-07) of a plan, as `pgmove schema` prints it.
pub fn schema() -> Value {
    let mut top = Map::new();
    let mut top_required: Vec<&str> = Vec::new();
    let mut sections: Vec<(&str, Map<String, Value>, Vec<&str>)> = SECTIONS
        .iter()
        .map(|(s, _)| (*s, Map::new(), Vec::new()))
        .collect();
    for key in KEYS {
        for path in key.paths {
            let mut value = if required(key) {
                key.kind.schema()
            } else {
                or_null(key.kind.schema())
            };
            let description = format!(
                "{}. Default: {}. Read by: {}.",
                key.what,
                key.default.replace('`', ""),
                key.strategies.replace('`', "")
            );
            if let Some(obj) = value.as_object_mut() {
                obj.insert("description".to_string(), Value::String(description));
            }
            match path.split_once('.') {
                None => {
                    top.insert(path.to_string(), value);
                    if required(key) {
                        top_required.push(path);
                    }
                }
                Some((section, leaf)) => {
                    if let Some((_, props, req)) =
                        sections.iter_mut().find(|(s, _, _)| *s == section)
                    {
                        props.insert(leaf.to_string(), value);
                        if required(key) {
                            req.push(leaf);
                        }
                    }
                }
            }
        }
    }
    for (section, props, req) in sections {
        let about = SECTIONS
            .iter()
            .find(|(s, _)| *s == section)
            .map(|(_, a)| *a)
            .unwrap_or_default();
        let mut obj = json!({
            "description": about,
            "type": "object",
            "properties": props,
            "additionalProperties": false,
        });
        // A section with a required key (source, target) is required itself.
        if req.is_empty() {
            obj = or_null(obj);
        } else {
            obj["required"] = json!(req);
            top_required.push(section);
        }
        top.insert(section.to_string(), obj);
    }
    json!({
        "$schema": "http://json-schema.org/draft-07/schema#",
        "title": "pgmove plan",
        "description": "A pgmove plan: what to move, from where, to where and how. Reference: docs/plan.md. `pgmove plan PLAN.yaml` checks it fully.",
        "type": "object",
        "properties": top,
        "required": top_required,
        "additionalProperties": false,
    })
}

/// The schema as `pgmove schema` prints it and docs/plan.schema.json holds it.
pub fn schema_text() -> String {
    let mut s = serde_json::to_string_pretty(&schema()).unwrap_or_default();
    s.push('\n');
    s
}

/// Start and end of the generated key table in docs/plan.md.
pub(crate) const TABLE_BEGIN: &str =
    "<!-- generated from src/plan/reference.rs (UPDATE_GOLDEN=1 cargo test --lib plan::reference rewrites it) -->";
pub(crate) const TABLE_END: &str = "<!-- end of generated table -->";

/// The key table of docs/plan.md (between its generated-table markers).
pub fn markdown_table() -> String {
    let mut out = String::new();
    // Blank lines around the table: a table right after an HTML comment is not one everywhere.
    out.push_str(TABLE_BEGIN);
    out.push_str("\n\n");
    out.push_str("| key | type | default | read by | what it does | example |\n");
    out.push_str("|---|---|---|---|---|---|\n");
    for key in KEYS {
        let example = format!(
            "{}: {}",
            key.doc_key.rsplit('.').next().unwrap_or(""),
            key.example
        )
        .replace('|', "\\|");
        out.push_str(&format!(
            "| `{}` | {} | {} | {} | {} | `{}` |\n",
            key.doc_key,
            key.kind.doc_type(),
            key.default,
            key.strategies,
            key.what,
            example
        ));
    }
    out.push('\n');
    out.push_str(TABLE_END);
    out.push('\n');
    out
}

#[cfg(test)]
mod tests;
