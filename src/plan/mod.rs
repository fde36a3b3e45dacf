//! The migration plan: the YAML file of SPEC.md, read with serde-saphyr into typed structs and
//! validated. Every error names `file:line:column`, what was expected and a hint.

mod units;

use std::fmt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;
use serde_saphyr::Spanned;

use crate::pg::{self, Endpoint, Secret, Side, SslMode};

pub use units::{glob_match, parse_duration, parse_size};

/// A plan file problem, located.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{file}:{line}:{column}: {message}{}", hint_text(.hint))]
pub struct PlanError {
    pub file: String,
    pub line: u64,
    pub column: u64,
    pub message: String,
    pub hint: Option<String>,
}

fn hint_text(h: &Option<String>) -> String {
    h.as_ref()
        .map(|h| format!("\n  hint: {h}"))
        .unwrap_or_default()
}

/// Where a value stood in the file.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Pos {
    pub line: u64,
    pub column: u64,
}

fn pos<T>(s: &Spanned<T>) -> Pos {
    Pos {
        line: s.referenced.line(),
        column: s.referenced.column(),
    }
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum StrategyChoice {
    #[default]
    Auto,
    DumpRestore,
    Pglogical,
    CopyCdc,
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum TargetKind {
    #[default]
    Auto,
    SelfManaged,
    Rds,
    Aurora,
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Roles {
    #[default]
    Skip,
    Create,
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Owner {
    #[default]
    Keep,
    TargetUser,
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum TablesWithoutKey {
    #[default]
    Refuse,
    ReplicaIdentityFull,
    InsertOnly,
    Exclude,
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Ddl {
    #[default]
    Replicate,
    Ignore,
    Refuse,
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum CutoverMode {
    #[default]
    Manual,
    Auto,
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Fence {
    #[default]
    ReadOnly,
    None,
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Sequences {
    #[default]
    Sync,
    Skip,
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum VerifyLevel {
    None,
    Counts,
    #[default]
    Checksums,
}

/// Where a password comes from. Never inline.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PasswordSource {
    Env(String),
    File(PathBuf),
}

#[derive(Deserialize)]
#[serde(untagged)]
enum RawPassword {
    Env { env: String },
    File { file: PathBuf },
    Inline(#[allow(dead_code)] String),
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawServer {
    dsn: Spanned<String>,
    #[serde(default)]
    password: Option<Spanned<RawPassword>>,
    #[serde(default)]
    sslmode: Option<SslMode>,
    #[serde(default)]
    sslrootcert: Option<PathBuf>,
    #[serde(default)]
    kind: Option<Spanned<TargetKind>>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawObjects {
    #[serde(default)]
    schemas: Vec<String>,
    #[serde(default)]
    exclude: Vec<Spanned<String>>,
    #[serde(default)]
    large_objects: Option<bool>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawCdc {
    #[serde(default)]
    tables_without_key: TablesWithoutKey,
    #[serde(default)]
    ddl: Ddl,
    #[serde(default)]
    start_lsn: Option<Spanned<String>>,
    #[serde(default)]
    slot: Option<Spanned<String>>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawPglogical {
    #[serde(default)]
    replication_set: Option<Spanned<String>>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawCutover {
    #[serde(default)]
    mode: Option<Spanned<CutoverMode>>,
    #[serde(default)]
    max_lag: Option<Spanned<String>>,
    #[serde(default)]
    fence: Fence,
    #[serde(default)]
    sequences: Sequences,
    #[serde(default)]
    verify: VerifyLevel,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawPlan {
    version: Spanned<u32>,
    name: Spanned<String>,
    source: RawServer,
    target: RawServer,
    #[serde(default)]
    strategy: Option<Spanned<StrategyChoice>>,
    #[serde(default)]
    downtime: Option<Spanned<String>>,
    #[serde(default)]
    objects: RawObjects,
    #[serde(default)]
    roles: Roles,
    #[serde(default)]
    owner: Owner,
    #[serde(default)]
    jobs: Option<Spanned<u32>>,
    #[serde(default)]
    index_jobs: Option<Spanned<u32>>,
    #[serde(default)]
    split_tables_larger_than: Option<Spanned<String>>,
    #[serde(default)]
    cdc: RawCdc,
    #[serde(default)]
    pglogical: RawPglogical,
    #[serde(default)]
    cutover: RawCutover,
    #[serde(default)]
    bin_dir: Option<PathBuf>,
}

/// One server of the plan.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ServerSpec {
    pub dsn: String,
    pub password: Option<PasswordSource>,
    pub sslmode: Option<SslMode>,
    pub sslrootcert: Option<PathBuf>,
    /// Where `password:` stood, for errors reading it.
    pub password_pos: Pos,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Objects {
    /// Empty: every non-system schema.
    pub schemas: Vec<String>,
    /// Globs on `schema.table`.
    pub exclude: Vec<String>,
    pub large_objects: bool,
}

impl Objects {
    /// Whether the plan moves `schema.table`.
    pub fn includes(&self, schema: &str, table: &str) -> bool {
        if !self.schemas.is_empty() && !self.schemas.iter().any(|s| s == schema) {
            return false;
        }
        let full = format!("{schema}.{table}");
        !self.exclude.iter().any(|g| glob_match(g, &full))
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CdcSpec {
    pub tables_without_key: TablesWithoutKey,
    pub ddl: Ddl,
    pub start_lsn: Option<pg::Lsn>,
    pub slot: Option<String>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PglogicalSpec {
    pub replication_set: Option<String>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CutoverSpec {
    pub mode: CutoverMode,
    pub max_lag: Duration,
    pub fence: Fence,
    pub sequences: Sequences,
    pub verify: VerifyLevel,
}

/// A validated plan.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Plan {
    /// The file it came from, as given.
    pub file: String,
    pub version: u32,
    pub name: String,
    pub source: ServerSpec,
    pub target: ServerSpec,
    pub target_kind: TargetKind,
    pub strategy: StrategyChoice,
    pub downtime: Duration,
    pub objects: Objects,
    pub roles: Roles,
    pub owner: Owner,
    pub jobs: u32,
    pub index_jobs: u32,
    pub split_tables_larger_than: u64,
    pub cdc: CdcSpec,
    pub pglogical: PglogicalSpec,
    pub cutover: CutoverSpec,
    pub bin_dir: Option<PathBuf>,
}

/// Reads and validates a plan file.
pub fn load(path: &Path) -> Result<Plan, PlanError> {
    let file = path.display().to_string();
    let text = std::fs::read_to_string(path).map_err(|e| PlanError {
        file: file.clone(),
        line: 0,
        column: 0,
        message: format!("cannot read the plan file: {e}"),
        hint: Some("give the path of a YAML plan; see plans/examples/".to_string()),
    })?;
    parse(&text, &file)
}

/// Edit distance, for did-you-mean hints.
fn distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut cur = vec![i + 1];
        for (j, cb) in b.iter().enumerate() {
            let cost = usize::from(ca != *cb);
            cur.push((prev[j] + cost).min(prev[j + 1] + 1).min(cur[j] + 1));
        }
        prev = cur;
    }
    prev[b.len()]
}

/// The closest of `options` to `word`, if close enough to be a likely typo.
pub fn did_you_mean<'a>(word: &str, options: &[&'a str]) -> Option<&'a str> {
    options
        .iter()
        .map(|o| (distance(word, o), *o))
        .filter(|(d, o)| *d <= (o.len() / 3).max(2))
        .min_by_key(|(d, _)| *d)
        .map(|(_, o)| o)
}

fn from_yaml_error(e: &serde_saphyr::Error, file: &str) -> PlanError {
    use serde_saphyr::Error as E;
    let (line, column) = e
        .location()
        .map(|l| (l.line(), l.column()))
        .unwrap_or((0, 0));
    let (message, hint) = match e.without_snippet() {
        E::SerdeUnknownField {
            field, expected, ..
        } => (
            format!("unknown key `{field}`"),
            Some(match did_you_mean(field, expected) {
                Some(m) => format!(
                    "did you mean `{m}`? valid keys here: {}",
                    expected.join(", ")
                ),
                None => format!("valid keys here: {}", expected.join(", ")),
            }),
        ),
        E::SerdeUnknownVariant {
            variant, expected, ..
        } => (
            format!("unknown value `{variant}`"),
            Some(match did_you_mean(variant, expected) {
                Some(m) => format!("did you mean `{m}`? expected one of: {}", expected.join(", ")),
                None => format!("expected one of: {}", expected.join(", ")),
            }),
        ),
        E::SerdeMissingField { field, .. } => (
            format!("missing key `{field}`"),
            Some(match *field {
                "source" | "target" => format!(
                    "every plan names both servers: `{field}:` with `dsn: postgres://user@host:5432/db` (see plans/examples/)"
                ),
                "dsn" => "write `dsn: postgres://user@host:5432/db` (a libpq URI or key=value string)".to_string(),
                "version" => "start the plan with `version: 1`".to_string(),
                "name" => "give the migration a name, e.g. `name: shop-to-aurora`; it names the slot and publication".to_string(),
                _ => "see plans/examples/ for a complete plan".to_string(),
            }),
        ),
        E::SerdeInvalidType {
            unexpected,
            expected,
            ..
        } => (
            format!("expected {expected}, found {unexpected}"),
            Some("check the value's type against plans/examples/".to_string()),
        ),
        other => {
            let text = other.without_snippet().to_string();
            let first = text.lines().next().unwrap_or("").to_string();
            // "error: line 3 column 5: message" -> "message"
            let msg = first
                .split_once(": ")
                .map(|(_, rest)| rest)
                .and_then(|rest| rest.split_once(": ").map(|(_, m)| m.to_string()).or(Some(rest.to_string())))
                .unwrap_or(first);
            let hint = if msg.contains("untagged enum RawPassword") {
                Some("write `password: {env: VARIABLE}` or `password: {file: /path/to/secret}`".to_string())
            } else if text.to_lowercase().contains("tab character") || text.contains("tabs") {
                Some("YAML indents with spaces, not tabs".to_string())
            } else {
                Some("the file must be valid YAML; see plans/examples/".to_string())
            };
            (msg, hint)
        }
    };
    PlanError {
        file: file.to_string(),
        line,
        column,
        message,
        hint,
    }
}

struct Ctx<'a> {
    file: &'a str,
}

impl Ctx<'_> {
    fn err(&self, p: Pos, message: impl Into<String>, hint: impl Into<String>) -> PlanError {
        PlanError {
            file: self.file.to_string(),
            line: p.line,
            column: p.column,
            message: message.into(),
            hint: Some(hint.into()),
        }
    }
}

/// Parses and validates plan text; `file` names it in errors.
pub fn parse(text: &str, file: &str) -> Result<Plan, PlanError> {
    let raw: RawPlan = serde_saphyr::from_str(text).map_err(|e| from_yaml_error(&e, file))?;
    let cx = Ctx { file };
    if raw.version.value != 1 {
        return Err(cx.err(
            pos(&raw.version),
            format!("unsupported plan version {}", raw.version.value),
            "this pgmove reads `version: 1`",
        ));
    }
    let name = raw.name.value.clone();
    if name.is_empty()
        || !name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
    {
        return Err(cx.err(
            pos(&raw.name),
            format!("invalid name {name:?}"),
            "use letters, digits, '-' and '_' (it names the replication slot, publication and sets)",
        ));
    }
    let source = server(&cx, &raw.source, Side::Source)?;
    let target = server(&cx, &raw.target, Side::Target)?;
    if let Some(k) = &raw.source.kind {
        return Err(cx.err(
            pos(k),
            "`kind` belongs to the target",
            "the source's kind is detected; move `kind:` under `target:`",
        ));
    }
    let duration = |v: &Option<Spanned<String>>, default: Duration, key: &str| match v {
        None => Ok(default),
        Some(s) => parse_duration(&s.value).map_err(|m| {
            cx.err(
                pos(s),
                format!("invalid duration for `{key}`: {m}"),
                "write a number with a unit: 500ms, 30s, 5m, 1h, 1h30m",
            )
        }),
    };
    let downtime = duration(&raw.downtime, Duration::from_secs(300), "downtime")?;
    let max_lag = duration(
        &raw.cutover.max_lag,
        Duration::from_secs(5),
        "cutover.max_lag",
    )?;
    let split = match &raw.split_tables_larger_than {
        None => 1024 * 1024 * 1024,
        Some(s) => parse_size(&s.value).map_err(|m| {
            cx.err(
                pos(s),
                format!("invalid size for `split_tables_larger_than`: {m}"),
                "write a number with a unit: 512MB, 1GB, 2TB",
            )
        })?,
    };
    let positive = |v: &Option<Spanned<u32>>, default: u32, key: &str| match v {
        None => Ok(default),
        Some(s) if s.value == 0 => Err(cx.err(
            pos(s),
            format!("`{key}` must be at least 1"),
            format!("set `{key}: 1` for no parallelism"),
        )),
        Some(s) if s.value > 256 => Err(cx.err(
            pos(s),
            format!("`{key}` of {} is more than pgmove allows (256)", s.value),
            "each job is a connection on both servers; 2 to 16 is typical",
        )),
        Some(s) => Ok(s.value),
    };
    let jobs = positive(&raw.jobs, 4, "jobs")?;
    let index_jobs = positive(&raw.index_jobs, 2, "index_jobs")?;
    let mut exclude = Vec::new();
    for g in &raw.objects.exclude {
        if !g.value.contains('.') {
            return Err(cx.err(
                pos(g),
                format!("exclude pattern {:?} has no schema", g.value),
                format!(
                    "patterns match schema.table: write `public.{}` or `*.{}`",
                    g.value, g.value
                ),
            ));
        }
        exclude.push(g.value.clone());
    }
    let start_lsn = match &raw.cdc.start_lsn {
        None => None,
        Some(s) => Some(s.value.parse::<pg::Lsn>().map_err(|e| {
            cx.err(
                pos(s),
                e.to_string(),
                "write the LSN as PostgreSQL prints it, e.g. 16/B374D848, or null",
            )
        })?),
    };
    let strategy = raw.strategy.as_ref().map(|s| s.value).unwrap_or_default();
    if let (Some(s), Some(lsn)) = (&raw.strategy, &raw.cdc.start_lsn) {
        if matches!(
            s.value,
            StrategyChoice::Pglogical | StrategyChoice::DumpRestore
        ) {
            return Err(cx.err(
                pos(lsn),
                "`cdc.start_lsn` only applies to strategy copy-cdc",
                "remove cdc.start_lsn, or set strategy: copy-cdc",
            ));
        }
    }
    if let (Some(s), Some(m)) = (&raw.strategy, &raw.cutover.mode) {
        if s.value == StrategyChoice::DumpRestore && m.value == CutoverMode::Auto {
            return Err(cx.err(
                pos(m),
                "`cutover.mode: auto` needs an online strategy; dump-restore has no replication to cut over from",
                "remove cutover.mode, or use strategy: copy-cdc, pglogical or auto",
            ));
        }
    }
    let ident = |v: &Option<Spanned<String>>, key: &str| -> Result<Option<String>, PlanError> {
        match v {
            None => Ok(None),
            Some(s)
                if s.value.is_empty()
                    || s.value.len() > 63
                    || !s
                        .value
                        .chars()
                        .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_') =>
            {
                Err(cx.err(
                    pos(s),
                    format!("invalid `{key}` {:?}", s.value),
                    "use lowercase letters, digits and '_', at most 63 characters",
                ))
            }
            Some(s) => Ok(Some(s.value.clone())),
        }
    };
    let slot = ident(&raw.cdc.slot, "cdc.slot")?;
    let replication_set = ident(&raw.pglogical.replication_set, "pglogical.replication_set")?;
    Ok(Plan {
        file: file.to_string(),
        version: 1,
        name,
        source,
        target,
        target_kind: raw
            .target
            .kind
            .as_ref()
            .map(|k| k.value)
            .unwrap_or_default(),
        strategy,
        downtime,
        objects: Objects {
            schemas: raw.objects.schemas,
            exclude,
            large_objects: raw.objects.large_objects.unwrap_or(true),
        },
        roles: raw.roles,
        owner: raw.owner,
        jobs,
        index_jobs,
        split_tables_larger_than: split,
        cdc: CdcSpec {
            tables_without_key: raw.cdc.tables_without_key,
            ddl: raw.cdc.ddl,
            start_lsn,
            slot,
        },
        pglogical: PglogicalSpec { replication_set },
        cutover: CutoverSpec {
            mode: raw.cutover.mode.map(|m| m.value).unwrap_or_default(),
            max_lag,
            fence: raw.cutover.fence,
            sequences: raw.cutover.sequences,
            verify: raw.cutover.verify,
        },
        bin_dir: raw.bin_dir,
    })
}

fn server(cx: &Ctx, raw: &RawServer, side: Side) -> Result<ServerSpec, PlanError> {
    let info = pg::ConnInfo::parse(&raw.dsn.value).map_err(|e| {
        cx.err(
            pos(&raw.dsn),
            format!("{side}.dsn: {}", e.message),
            "write a libpq URI (postgres://user@host:5432/db?sslmode=require) or key=value string",
        )
    })?;
    if info.password.is_some() {
        return Err(cx.err(
            pos(&raw.dsn),
            format!("{side}.dsn holds a password; plans never hold secrets"),
            format!("remove it from the DSN and write `password: {{env: {}_PASSWORD}}` or `password: {{file: /run/secrets/{side}}}`", side.to_string().to_uppercase()),
        ));
    }
    let password = match &raw.password {
        None => None,
        Some(p) => Some(match &p.value {
            RawPassword::Env { env } => PasswordSource::Env(env.clone()),
            RawPassword::File { file } => PasswordSource::File(file.clone()),
            RawPassword::Inline(_) => {
                return Err(cx.err(
                    pos(p),
                    format!("{side}.password is written inline; plans never hold secrets"),
                    format!("write `password: {{env: {}_PASSWORD}}` or `password: {{file: /run/secrets/{side}}}`", side.to_string().to_uppercase()),
                ))
            }
        }),
    };
    Ok(ServerSpec {
        dsn: raw.dsn.value.clone(),
        password,
        sslmode: raw.sslmode,
        sslrootcert: raw.sslrootcert.clone(),
        password_pos: raw.password.as_ref().map(pos).unwrap_or_default(),
    })
}

impl Plan {
    fn spec(&self, side: Side) -> &ServerSpec {
        match side {
            Side::Source => &self.source,
            Side::Target => &self.target,
        }
    }

    /// The server's endpoint: DSN, the password from its env variable or file, the plan's
    /// sslmode and sslrootcert over the DSN's, then libpq's environment defaults.
    pub fn endpoint(&self, side: Side) -> Result<Endpoint, PlanError> {
        let spec = self.spec(side);
        let at = |message: String, hint: &str| PlanError {
            file: self.file.clone(),
            line: spec.password_pos.line,
            column: spec.password_pos.column,
            message,
            hint: Some(hint.to_string()),
        };
        let password = match &spec.password {
            None => None,
            Some(PasswordSource::Env(var)) => {
                Some(Secret::new(std::env::var(var).map_err(|_| {
                    at(
                        format!("{side}.password: environment variable {var} is not set"),
                        "export it before running pgmove (it is read, never printed)",
                    )
                })?))
            }
            Some(PasswordSource::File(path)) => {
                let text = std::fs::read_to_string(path).map_err(|e| {
                    at(
                        format!("{side}.password: cannot read {}: {e}", path.display()),
                        "the file holds the password alone; check its path and permissions",
                    )
                })?;
                Some(Secret::new(text.trim_end_matches(['\n', '\r']).to_string()))
            }
        };
        let mut ep = Endpoint::from_dsn_env(side, &spec.dsn, password).map_err(|e| PlanError {
            file: self.file.clone(),
            line: 0,
            column: 0,
            message: e.to_string(),
            hint: Some("check the DSN and the PG* environment variables".to_string()),
        })?;
        if let Some(m) = spec.sslmode {
            ep.info.sslmode = Some(m);
        }
        if let Some(r) = &spec.sslrootcert {
            ep.info.sslrootcert = Some(r.clone());
        }
        Ok(ep)
    }

    /// The replication slot's name: `cdc.slot` or `pgmove_<name>`.
    pub fn slot_name(&self) -> String {
        self.cdc
            .slot
            .clone()
            .unwrap_or_else(|| artifact_name(&self.name))
    }

    /// The publication's name.
    pub fn publication_name(&self) -> String {
        artifact_name(&self.name)
    }

    /// The pglogical replication set for updates and deletes.
    pub fn replication_set(&self) -> String {
        self.pglogical
            .replication_set
            .clone()
            .unwrap_or_else(|| artifact_name(&self.name))
    }

    /// The paired set for inserts and truncates: `i` + the set's name.
    pub fn insert_set(&self) -> String {
        format!("i{}", self.replication_set())
    }
}

/// `pgmove_<name>` lowercased, with characters other than `[a-z0-9_]` as `_`, at most 63 bytes.
pub fn artifact_name(name: &str) -> String {
    let mut s: String = format!("pgmove_{name}")
        .chars()
        .map(|c| {
            let c = c.to_ascii_lowercase();
            if c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_' {
                c
            } else {
                '_'
            }
        })
        .collect();
    s.truncate(63);
    s
}

impl fmt::Display for StrategyChoice {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            StrategyChoice::Auto => "auto",
            StrategyChoice::DumpRestore => "dump-restore",
            StrategyChoice::Pglogical => "pglogical",
            StrategyChoice::CopyCdc => "copy-cdc",
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MINIMAL: &str = "version: 1\nname: shop\nsource:\n  dsn: postgres://a@h1/db\ntarget:\n  dsn: postgres://b@h2/db\n";

    #[test]
    fn minimal_plan_gets_the_defaults() {
        let p = parse(MINIMAL, "p.yaml").expect("valid");
        assert_eq!(p.strategy, StrategyChoice::Auto);
        assert_eq!(p.downtime, Duration::from_secs(300));
        assert_eq!(p.jobs, 4);
        assert_eq!(p.index_jobs, 2);
        assert_eq!(p.split_tables_larger_than, 1 << 30);
        assert!(p.objects.large_objects);
        assert_eq!(p.cutover.max_lag, Duration::from_secs(5));
        assert_eq!(p.cutover.verify, VerifyLevel::Checksums);
        assert_eq!(p.slot_name(), "pgmove_shop");
        assert_eq!(p.insert_set(), "ipgmove_shop");
    }

    #[test]
    fn artifact_names_are_safe_identifiers() {
        assert_eq!(artifact_name("Shop-To-Aurora"), "pgmove_shop_to_aurora");
        assert_eq!(artifact_name(&"x".repeat(100)).len(), 63);
    }

    #[test]
    fn objects_filter_by_schema_and_glob() {
        let o = Objects {
            schemas: vec!["public".into(), "sales".into()],
            exclude: vec!["public.tmp_*".into(), "sales.audit?".into()],
            large_objects: true,
        };
        assert!(o.includes("public", "orders"));
        assert!(!o.includes("public", "tmp_x"));
        assert!(!o.includes("sales", "audit1"));
        assert!(o.includes("sales", "audit12"));
        assert!(!o.includes("other", "t"));
    }

    #[test]
    fn did_you_mean_finds_close_keys() {
        assert_eq!(
            did_you_mean("dowtime", &["downtime", "jobs"]),
            Some("downtime")
        );
        assert_eq!(did_you_mean("zzzzzz", &["downtime", "jobs"]), None);
    }
}
