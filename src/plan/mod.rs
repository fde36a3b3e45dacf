//! The migration plan: the YAML file that docs/plan.md describes, read with serde-saphyr and
//! validated into a [`Plan`].
//!
//! Every problem is a [`PlanError`] that prints `file:line:column: what is wrong` and a
//! `hint:` line: unknown keys get a did-you-mean, values name their key, and impossible
//! combinations point at the key to change. Secrets never appear in the plan: a password comes
//! from `{env: NAME}` or `{file: PATH}` and is read only by [`Plan::endpoint`].
//!
//! ```
//! let plan = pgmove::plan::parse(
//!     "version: 1\nname: shop\nsource:\n  dsn: postgres://app@old/shop\ntarget:\n  dsn: postgres://app@new/shop\n",
//!     "shop.yaml",
//! ).expect("valid");
//! assert_eq!(plan.slot_name(), "pgmove_shop");
//! assert_eq!(plan.jobs, 4);
//! ```

mod error;
mod keywords;
pub mod names;
mod raw;
mod reference;
mod units;
mod validate;

use std::ops::Deref;
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::pg::{self, Endpoint, Secret, Side, SslMode};

pub use error::{did_you_mean, edit_distance, Located, PlanError, Pos};
pub use keywords::{
    CutoverMode, Ddl, Fence, Keyword, Owner, Roles, Sequences, StrategyChoice, TablesWithoutKey,
    TargetKind, VerifyLevel,
};
pub use names::{
    artifact_name, default_dump_dir, derived_name, endpoint_key, insert_only_publication_name,
    insert_set_name, is_system_schema, resume_slot_name, MAX_NAME_LEN,
};
pub use reference::{markdown_table, schema, schema_text, SCHEMA_MODELINE};
pub use units::{format_duration, format_size, glob_match, parse_duration, parse_size, UnitError};

/// The plan version this pgmove reads.
pub const VERSION: u32 = 1;

/// Defaults for keys the plan leaves out (docs/plan.md).
pub mod defaults {
    use std::time::Duration;

    pub const DOWNTIME: Duration = Duration::from_secs(5 * 60);
    pub const JOBS: u32 = 4;
    pub const INDEX_JOBS: u32 = 2;
    /// At most this many parallel jobs: each is a connection on both servers.
    pub const MAX_JOBS: u32 = 256;
    pub const SPLIT_TABLES_LARGER_THAN: u64 = 1 << 30;
    /// Splitting below this costs more than it saves.
    pub const MIN_SPLIT: u64 = 1 << 20;
    pub const LARGE_OBJECTS: bool = true;
    pub const MAX_LAG: Duration = Duration::from_secs(5);
    /// `cdc.memory_limit`: what change capture keeps in memory, at most (see
    /// [`crate::cdc::MemoryBudget`]).
    pub const CDC_MEMORY_LIMIT: u64 = 256 << 20;
    /// Below this the pieces of a large transaction get too small to apply fast.
    pub const MIN_CDC_MEMORY_LIMIT: u64 = 16 << 20;
}

/// Where a password comes from. Never inline.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PasswordSource {
    /// `{env: NAME}`: the environment variable `NAME`.
    Env(String),
    /// `{file: PATH}`: the file's content without its trailing newline.
    File(PathBuf),
}

/// One server of the plan (`source:`; the target's common part).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ServerSpec {
    /// A libpq URI or key=value string, without a password (refused at load).
    pub dsn: String,
    pub password: Option<PasswordSource>,
    /// Overrides the DSN's and `PGSSLMODE`.
    pub sslmode: Option<SslMode>,
    /// Overrides the DSN's and `PGSSLROOTCERT`.
    pub sslrootcert: Option<PathBuf>,
    /// Where `dsn:` stood, for errors found when connecting.
    pub dsn_pos: Pos,
    /// Where `password:` stood, for errors reading it.
    pub password_pos: Pos,
}

/// `target:`: a server and what runs it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TargetSpec {
    pub server: ServerSpec,
    /// `auto` unless the plan overrides the detection.
    pub kind: TargetKind,
}

impl Deref for TargetSpec {
    type Target = ServerSpec;
    fn deref(&self) -> &ServerSpec {
        &self.server
    }
}

/// `objects:`: what moves.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Objects {
    /// Empty: every non-system schema.
    pub schemas: Vec<String>,
    /// Globs on `schema.table` (`*`, `?`) of tables left out.
    pub exclude: Vec<String>,
    pub large_objects: bool,
}

impl Default for Objects {
    fn default() -> Self {
        Objects {
            schemas: Vec::new(),
            exclude: Vec::new(),
            large_objects: defaults::LARGE_OBJECTS,
        }
    }
}

impl Objects {
    /// Whether the plan moves the schema: listed (or no list and not a system schema).
    pub fn includes_schema(&self, schema: &str) -> bool {
        if is_system_schema(schema) {
            return false;
        }
        self.schemas.is_empty() || self.schemas.iter().any(|s| s == schema)
    }

    /// Whether the plan moves `schema.table`: its schema is included and no `exclude` glob
    /// matches `schema.table`.
    pub fn includes(&self, schema: &str, table: &str) -> bool {
        if !self.includes_schema(schema) {
            return false;
        }
        let full = format!("{schema}.{table}");
        !self.exclude.iter().any(|g| glob_match(g, &full))
    }
}

/// `cdc:`: change data capture (copy-cdc; `tables_without_key` and `ddl` also guide pglogical).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CdcSpec {
    pub tables_without_key: TablesWithoutKey,
    pub ddl: Ddl,
    /// Resume an existing slot from here instead of creating one.
    pub start_lsn: Option<pg::Lsn>,
    /// The slot's name; `None`: `pgmove_<name>` (see [`Plan::slot_name`]).
    pub slot: Option<String>,
    /// `cdc.memory_limit`: bytes of changes change capture holds in memory, at most, whatever
    /// the size or number of source transactions (beyond it they go to temporary files, and a
    /// large transaction is applied in pieces within one target transaction).
    pub memory_limit: u64,
}

impl Default for CdcSpec {
    fn default() -> Self {
        CdcSpec {
            tables_without_key: TablesWithoutKey::default(),
            ddl: Ddl::default(),
            start_lsn: None,
            slot: None,
            memory_limit: defaults::CDC_MEMORY_LIMIT,
        }
    }
}

/// `pglogical:`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PglogicalSpec {
    /// `None`: `pgmove_<name>` (see [`Plan::replication_set`]).
    pub replication_set: Option<String>,
    /// `pglogical.provider_dsn`: how the target *server* reaches the source (NAT, VPC peering,
    /// a bastion); `None`: the source's DSN. Never holds a password: the source's secret is
    /// added when the subscription is created, and never printed.
    pub provider_dsn: Option<String>,
    /// `pglogical.prefer`: `strategy: auto` picks pglogical when both sides have it.
    pub prefer: bool,
}

/// `cutover:`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CutoverSpec {
    pub mode: CutoverMode,
    /// The lag under which cutover may start (and `auto` starts it).
    pub max_lag: Duration,
    pub fence: Fence,
    pub sequences: Sequences,
    pub verify: VerifyLevel,
}

impl Default for CutoverSpec {
    fn default() -> Self {
        CutoverSpec {
            mode: CutoverMode::default(),
            max_lag: defaults::MAX_LAG,
            fence: Fence::default(),
            sequences: Sequences::default(),
            verify: VerifyLevel::default(),
        }
    }
}

/// A validated plan.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Plan {
    /// The file it came from, as given (for messages).
    pub file: String,
    pub version: u32,
    /// Letters, digits, `-` and `_`; names the slot, publication and sets.
    pub name: String,
    pub source: ServerSpec,
    pub target: TargetSpec,
    pub strategy: StrategyChoice,
    /// The write outage the user accepts; guides `auto`.
    pub downtime: Duration,
    pub objects: Objects,
    pub roles: Roles,
    pub owner: Owner,
    /// Parallel table copies / restore jobs.
    pub jobs: u32,
    pub index_jobs: u32,
    /// Bytes.
    pub split_tables_larger_than: u64,
    pub cdc: CdcSpec,
    pub pglogical: PglogicalSpec,
    pub cutover: CutoverSpec,
    /// Where `pg_dump`/`pg_restore` live; `None`: search.
    pub bin_dir: Option<PathBuf>,
}

/// The largest plan file read: a real plan is a few KiB; anything near this is not a plan.
pub const MAX_PLAN_BYTES: u64 = 4 << 20;

/// The largest `password: {file: ...}` read: a password, not a file of data.
pub const MAX_PASSWORD_FILE_BYTES: u64 = 64 << 10;

/// Reads at most `cap` bytes of `path`; `Ok(None)` when the file holds more (it is never read
/// further, so `/dev/zero` or a huge file ends at once).
fn read_capped(path: &Path, cap: u64) -> std::io::Result<Option<Vec<u8>>> {
    use std::io::Read;
    let file = std::fs::File::open(path)?;
    let mut bytes = Vec::new();
    file.take(cap + 1).read_to_end(&mut bytes)?;
    if bytes.len() as u64 > cap {
        return Ok(None);
    }
    Ok(Some(bytes))
}

/// Reads and validates a plan file. A missing or unreadable file is an error naming the path;
/// so is one larger than [`MAX_PLAN_BYTES`].
pub fn load(path: &Path) -> Result<Plan, PlanError> {
    let file = path.display().to_string();
    let read = read_capped(path, MAX_PLAN_BYTES).map_err(|e| PlanError::Unreadable {
        path: file.clone(),
        reason: match e.kind() {
            std::io::ErrorKind::NotFound => "no such file".to_string(),
            std::io::ErrorKind::PermissionDenied => "permission denied".to_string(),
            _ => e.to_string(),
        },
        hint: if path.is_dir() {
            "this is a directory: give the path of a YAML plan file, e.g. plans/examples/local-online.yaml".to_string()
        } else {
            "give the path of a YAML plan file; plans/examples/ has one for each kind of move"
                .to_string()
        },
    })?;
    let Some(bytes) = read else {
        return Err(PlanError::Unreadable {
            path: file,
            reason: format!(
                "larger than {}, the most pgmove reads of a plan",
                format_size(MAX_PLAN_BYTES)
            ),
            hint: "give the path of the YAML plan file (a plan is a few KiB); plans/examples/ has one for each kind of move".to_string(),
        });
    };
    let text = String::from_utf8(bytes).map_err(|e| PlanError::Unreadable {
        path: file.clone(),
        reason: format!(
            "not UTF-8 text (invalid byte at offset {})",
            e.utf8_error().valid_up_to()
        ),
        hint: "save the plan as UTF-8".to_string(),
    })?;
    parse(&text, &file)
}

/// Parses and validates plan text; `file_name` names it in errors.
pub fn parse(text: &str, file_name: &str) -> Result<Plan, PlanError> {
    validate::parse(text, file_name)
}

impl Plan {
    /// The plan's entry for one side.
    pub fn server(&self, side: Side) -> &ServerSpec {
        match side {
            Side::Source => &self.source,
            Side::Target => &self.target.server,
        }
    }

    /// The server's endpoint: the DSN with the plan's `sslmode`/`sslrootcert` over its own,
    /// the password from its environment variable or file, then libpq's `PG*` environment.
    /// A missing variable or unreadable file is an error naming the plan key and the
    /// variable or file, never a value.
    pub fn endpoint(&self, side: Side) -> Result<Endpoint, PlanError> {
        let spec = self.server(side);
        let at = |pos: Pos, message: String, hint: String| Located {
            file: self.file.clone(),
            pos,
            message,
            hint,
        };
        let password = match &spec.password {
            None => None,
            Some(source) => Some(read_password(source).map_err(|(message, hint)| {
                PlanError::Secret(at(
                    spec.password_pos,
                    format!("{side}.password: {message}"),
                    hint,
                ))
            })?),
        };
        let dsn = names::dsn_with_overrides(&spec.dsn, spec.sslmode, spec.sslrootcert.as_deref());
        let endpoint = Endpoint::from_dsn_env(side, &dsn, password).map_err(|e| {
            let message = match e {
                pg::PgError::Dsn { message, .. } => message,
                other => other.to_string(),
            };
            PlanError::Connection(at(
                spec.dsn_pos,
                format!("{side}.dsn: {message}"),
                "the DSN is completed from the PG* environment variables (PGHOST, PGPORT, PGUSER, PGSSLMODE, ...): check them".to_string(),
            ))
        })?;
        if side == Side::Target {
            if let Some(source) = self.resolved_without_secret(Side::Source) {
                let t = &endpoint.info;
                if source.host().eq_ignore_ascii_case(t.host())
                    && source.port() == t.port()
                    && source.dbname() == t.dbname()
                {
                    return Err(PlanError::Invalid(at(
                        spec.dsn_pos,
                        format!(
                            "target.dsn reaches the same database as source.dsn ({}:{}/{})",
                            source.host(),
                            source.port(),
                            source.dbname()
                        ),
                        "the target must be another server or another database: check target.dsn and the PG* environment variables".to_string(),
                    )));
                }
            }
        }
        Ok(endpoint)
    }

    /// One side's connection settings completed from the environment, without reading its
    /// password (nor the pass file): for comparing the two servers.
    fn resolved_without_secret(&self, side: Side) -> Option<pg::ConnInfo> {
        let spec = self.server(side);
        let dsn = names::dsn_with_overrides(&spec.dsn, spec.sslmode, spec.sslrootcert.as_deref());
        let mut info = pg::ConnInfo::parse(&dsn).ok()?;
        info.password = Some(Secret::default());
        info.resolve(&|k| std::env::var(k).ok()).ok()
    }

    /// The replication slot's name: `cdc.slot` or `pgmove_<name>`.
    pub fn slot_name(&self) -> String {
        self.cdc
            .slot
            .clone()
            .unwrap_or_else(|| artifact_name(&self.name))
    }

    /// The publication's name: `pgmove_<name>`.
    pub fn publication_name(&self) -> String {
        artifact_name(&self.name)
    }

    /// The pglogical set replicating updates and deletes: `pglogical.replication_set` or
    /// `pgmove_<name>`.
    pub fn replication_set(&self) -> String {
        self.pglogical_names().replication_set
    }

    /// The paired set replicating inserts and truncates: `i` + [`Plan::replication_set`].
    pub fn insert_set(&self) -> String {
        self.pglogical_names().insert_set
    }

    /// The pglogical nodes, sets and subscription of this plan (see [`names::PglogicalNames`]).
    pub fn pglogical_names(&self) -> names::PglogicalNames {
        names::pglogical_names(&self.name, self.pglogical.replication_set.as_deref())
    }
}

/// The password from its source, or (problem, hint) naming the variable or file only.
fn read_password(source: &PasswordSource) -> Result<Secret, (String, String)> {
    match source {
        PasswordSource::Env(var) => match std::env::var(var) {
            Ok(v) if v.is_empty() => Err((
                format!("environment variable {var} is empty"),
                format!("export {var} with the password before running pgmove (it is read, never printed)"),
            )),
            Ok(v) => Ok(Secret::new(v)),
            Err(std::env::VarError::NotPresent) => Err((
                format!("environment variable {var} is not set"),
                format!("export {var} with the password before running pgmove (it is read, never printed)"),
            )),
            Err(std::env::VarError::NotUnicode(_)) => Err((
                format!("environment variable {var} is not valid UTF-8"),
                format!("set {var} to the password as UTF-8 text"),
            )),
        },
        PasswordSource::File(path) => {
            let shown = path.display();
            let read = read_capped(path, MAX_PASSWORD_FILE_BYTES).map_err(|e| {
                let reason = match e.kind() {
                    std::io::ErrorKind::NotFound => "no such file".to_string(),
                    std::io::ErrorKind::PermissionDenied => "permission denied".to_string(),
                    _ => e.to_string(),
                };
                (
                    format!("cannot read password file {shown}: {reason}"),
                    "the file holds the password alone (a trailing newline is ignored); check its path and that pgmove's user may read it".to_string(),
                )
            })?;
            let Some(bytes) = read else {
                return Err((
                    format!(
                        "password file {shown} is larger than {}, the most pgmove reads of a password file",
                        format_size(MAX_PASSWORD_FILE_BYTES)
                    ),
                    "the file holds the password alone (a trailing newline is ignored): check that `file:` names the password file".to_string(),
                ));
            };
            let text = String::from_utf8(bytes).map_err(|_| {
                (
                    format!("password file {shown} is not UTF-8 text"),
                    "save the password as UTF-8 text".to_string(),
                )
            })?;
            let pw = text
                .strip_suffix('\n')
                .map(|t| t.strip_suffix('\r').unwrap_or(t))
                .unwrap_or(&text);
            if pw.is_empty() {
                return Err((
                    format!("password file {shown} is empty"),
                    "write the password into the file (alone, a trailing newline is ignored)"
                        .to_string(),
                ));
            }
            Ok(Secret::new(pw))
        }
    }
}

#[cfg(test)]
mod tests;
