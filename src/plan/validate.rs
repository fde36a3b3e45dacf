//! From the YAML as written ([`raw`]) to a [`Plan`]: every value converted with a message that
//! names its key, then the combinations a careful DBA would refuse.

use std::path::PathBuf;
use std::time::Duration;

use serde::Deserialize;
use serde_saphyr::Spanned;

use super::error::{did_you_mean, from_yaml_error, Located, PlanError, Pos};
use super::keywords::{CutoverMode, Fence, Keyword, StrategyChoice, TablesWithoutKey, TargetKind};
use super::names::{identifier_problem, is_system_schema, name_problem, MAX_IDENTIFIER};
use super::raw::{RawPassword, RawPlan, RawServer, Scalar};
use super::units::{parse_duration, parse_size};
use super::{
    defaults, CdcSpec, CutoverSpec, Objects, PasswordSource, PglogicalSpec, Plan, ServerSpec,
    TargetSpec, VERSION,
};
use crate::pg::{self, ConnInfo, Side, SslMode};

/// A value as shown in a message: at most 40 characters. Never used for secrets.
fn shown(s: &str) -> String {
    let mut out: String = s.chars().take(40).collect();
    if s.chars().count() > 40 {
        out.push('…');
    }
    out
}

struct Cx<'a> {
    file: &'a str,
}

impl Cx<'_> {
    fn located(&self, pos: Pos, message: impl Into<String>, hint: impl Into<String>) -> Located {
        Located {
            file: self.file.to_string(),
            pos,
            message: message.into(),
            hint: hint.into(),
        }
    }

    fn invalid(&self, pos: Pos, message: impl Into<String>, hint: impl Into<String>) -> PlanError {
        PlanError::Invalid(self.located(pos, message, hint))
    }

    fn missing(&self, pos: Pos, key: &str, hint: impl Into<String>) -> PlanError {
        PlanError::Shape(self.located(pos, format!("missing key `{key}`"), hint))
    }

    fn keyword<K: Keyword>(&self, v: Option<&Scalar>, key: &str) -> Result<Option<K>, PlanError> {
        let Some(v) = v else { return Ok(None) };
        let text = v.value.trim();
        if let Some(k) = K::from_name(text) {
            return Ok(Some(k));
        }
        let names = K::names();
        let hint = match did_you_mean(text, &names) {
            Some(m) => format!("did you mean `{m}`? {}", K::HINT),
            None => K::HINT.to_string(),
        };
        Err(self.invalid(
            Pos::of(v),
            format!(
                "unknown `{key}` value `{}`: expected one of {}",
                shown(text),
                names.join(", ")
            ),
            hint,
        ))
    }

    fn duration(&self, v: Option<&Scalar>, key: &str) -> Result<Option<Duration>, PlanError> {
        let Some(v) = v else { return Ok(None) };
        parse_duration(&v.value).map(Some).map_err(|e| {
            self.invalid(
                Pos::of(v),
                format!("invalid duration for `{key}`: {}", e.problem),
                e.hint,
            )
        })
    }

    fn size(&self, v: Option<&Scalar>, key: &str) -> Result<Option<u64>, PlanError> {
        let Some(v) = v else { return Ok(None) };
        parse_size(&v.value).map(Some).map_err(|e| {
            self.invalid(
                Pos::of(v),
                format!("invalid size for `{key}`: {}", e.problem),
                e.hint,
            )
        })
    }

    /// A job count: 1 to [`defaults::MAX_JOBS`].
    fn count(&self, v: Option<&Scalar>, key: &str, default: u32) -> Result<u32, PlanError> {
        let Some(v) = v else { return Ok(default) };
        let text = v.value.trim();
        let max = defaults::MAX_JOBS;
        let message =
            |what: &str| format!("`{key}` must be a whole number from 1 to {max}, found {what}");
        match text.parse::<u64>() {
            Ok(0) => Err(self.invalid(
                Pos::of(v),
                message("0"),
                format!("set `{key}: 1` to run one at a time; 0 would never start"),
            )),
            Ok(n) if n > u64::from(max) => Err(self.invalid(
                Pos::of(v),
                message(&n.to_string()),
                "each job holds a connection on both servers; 2 to 16 is typical",
            )),
            Ok(n) => Ok(u32::try_from(n).unwrap_or(max)),
            Err(_) => Err(self.invalid(
                Pos::of(v),
                message(&format!("`{}`", shown(text))),
                format!("write a number, e.g. `{key}: {default}`"),
            )),
        }
    }

    fn boolean(&self, v: Option<&Scalar>, key: &str) -> Result<Option<bool>, PlanError> {
        let Some(v) = v else { return Ok(None) };
        match v.value.trim() {
            "true" | "True" | "TRUE" => Ok(Some(true)),
            "false" | "False" | "FALSE" => Ok(Some(false)),
            other => Err(self.invalid(
                Pos::of(v),
                format!("`{key}` must be true or false, found `{}`", shown(other)),
                "write true or false (yes/no/on/off are not booleans in YAML 1.2)",
            )),
        }
    }

    /// A file or directory path: not empty, and not `~/...` (nothing expands it).
    fn path(&self, v: Option<&Scalar>, key: &str) -> Result<Option<PathBuf>, PlanError> {
        v.map(|v| self.required_path(v, key)).transpose()
    }

    fn required_path(&self, v: &Scalar, key: &str) -> Result<PathBuf, PlanError> {
        let text = v.value.trim();
        if text.is_empty() {
            return Err(self.invalid(
                Pos::of(v),
                format!("`{key}` is empty: expected a path"),
                format!("write a path, or remove `{key}`"),
            ));
        }
        if text == "~" || text.starts_with("~/") {
            return Err(self.invalid(
                Pos::of(v),
                format!("`{key}` starts with `~`, which pgmove does not expand"),
                "write the full path, e.g. /home/migrator/... instead of ~/...",
            ));
        }
        Ok(PathBuf::from(text))
    }
}

/// Only `version:`, read when the file does not fit this version's shape: a plan from a newer
/// pgmove is reported as such rather than as an unknown key.
#[derive(Deserialize)]
struct VersionOnly {
    version: Option<Scalar>,
}

fn version_problem(cx: &Cx, v: &Scalar) -> Option<PlanError> {
    let text = v.value.trim();
    match text.parse::<u64>() {
        Ok(n) if n == u64::from(VERSION) => None,
        Ok(n) => Some(cx.invalid(
            Pos::of(v),
            format!("unsupported plan version {n}: this pgmove reads version {VERSION}"),
            if n > u64::from(VERSION) {
                format!("a version {n} plan needs a newer pgmove; or rewrite it as `version: {VERSION}` (see plans/examples/)")
            } else {
                format!("write `version: {VERSION}`")
            },
        )),
        Err(_) => Some(cx.invalid(
            Pos::of(v),
            format!("`version` must be a whole number, found `{}`", shown(text)),
            format!("write `version: {VERSION}`"),
        )),
    }
}

/// The first explicit YAML tag (`!!binary`, `!!str`, `!custom`, `!<...>`) in `text`: where its
/// token stands and how it was written. `None` when there is none, or when the text is not
/// well-formed YAML before one (serde-saphyr then reports the syntax error).
fn first_tag(text: &str) -> Option<(Pos, String)> {
    use serde_saphyr::granit_parser::{Event, Parser};
    for item in Parser::new_from_str(text) {
        let Ok((event, span)) = item else {
            return None;
        };
        let tag = match event {
            Event::Scalar(_, _, _, tag)
            | Event::SequenceStart(_, _, tag)
            | Event::MappingStart(_, _, tag) => tag,
            _ => None,
        };
        if let Some(tag) = tag {
            let at = span.tag_start.unwrap_or(span.start);
            let written = if tag.original_handle().is_empty() {
                tag.to_string()
            } else {
                format!("{}{}", tag.original_handle(), tag.suffix())
            };
            let pos = Pos::new(at.line() as u64, at.col() as u64 + 1);
            return Some((pos, written));
        }
    }
    None
}

pub(crate) fn parse(text: &str, file: &str) -> Result<Plan, PlanError> {
    let cx = Cx { file };
    // serde-saphyr reads `!!binary` as base64 and drops unknown tags: the value used would not
    // be the one written. A plan has plain values only.
    if let Some((pos, tag)) = first_tag(text) {
        return Err(cx.invalid(
            pos,
            format!("YAML tag `{}` is not allowed in a plan", shown(&tag)),
            format!(
                "remove `{}`: plan values are plain text (quote a value to keep it a string)",
                shown(&tag)
            ),
        ));
    }
    let doc: Spanned<RawPlan> = match serde_saphyr::from_str(text) {
        Ok(d) => d,
        Err(e) => {
            if let Ok(v) = serde_saphyr::from_str::<VersionOnly>(text) {
                if let Some(problem) = v.version.as_ref().and_then(|v| version_problem(&cx, v)) {
                    return Err(problem);
                }
            }
            return Err(from_yaml_error(&e, file, text));
        }
    };
    let top = if Pos::of(&doc).is_known() {
        Pos::of(&doc)
    } else {
        Pos::new(1, 1)
    };
    let raw = doc.value;
    if raw.is_empty() {
        return Err(PlanError::Shape(cx.located(
            Pos::new(1, 1),
            "the plan is empty",
            "a plan needs at least `version: 1`, `name:`, `source:` and `target:`; see plans/examples/",
        )));
    }

    // version, name
    let Some(version) = &raw.version else {
        return Err(cx.missing(top, "version", "start the plan with `version: 1`"));
    };
    if let Some(problem) = version_problem(&cx, version) {
        return Err(problem);
    }
    let Some(name) = &raw.name else {
        return Err(cx.missing(
            top,
            "name",
            "give the migration a name, e.g. `name: shop-to-aurora`; it names the replication slot, publication and sets",
        ));
    };
    if let Some(problem) = name_problem(&name.value) {
        return Err(cx.invalid(
            Pos::of(name),
            problem,
            format!(
                "use letters, digits, `-` and `_`, at most {} characters: it names the slot pgmove_<name>, the publication and the pglogical sets",
                super::MAX_NAME_LEN
            ),
        ));
    }

    // servers
    let Some(source) = &raw.source else {
        return Err(cx.missing(
            top,
            "source",
            "every plan names both servers:\n    source:\n      dsn: postgres://user@host:5432/db\n      password: {env: SRC_PASSWORD}",
        ));
    };
    let Some(target) = &raw.target else {
        return Err(cx.missing(
            top,
            "target",
            "every plan names both servers:\n    target:\n      dsn: postgres://user@host:5432/db\n      password: {env: DST_PASSWORD}",
        ));
    };
    let source_spec = server(&cx, &source.value.server(), Side::Source, Pos::of(source))?;
    let target_spec = server(&cx, &target.value.server(), Side::Target, Pos::of(target))?;
    let kind: TargetKind = cx
        .keyword(target.value.kind.as_ref(), "target.kind")?
        .unwrap_or_default();

    // what and how
    let strategy_raw = raw.strategy.as_ref();
    let strategy: StrategyChoice = cx.keyword(strategy_raw, "strategy")?.unwrap_or_default();
    let downtime = cx
        .duration(raw.downtime.as_ref(), "downtime")?
        .unwrap_or(defaults::DOWNTIME);
    let objects = objects(&cx, raw.objects.as_ref().map(|o| &o.value))?;
    let roles = cx.keyword(raw.roles.as_ref(), "roles")?.unwrap_or_default();
    let owner = cx.keyword(raw.owner.as_ref(), "owner")?.unwrap_or_default();
    let jobs = cx.count(raw.jobs.as_ref(), "jobs", defaults::JOBS)?;
    let index_jobs = cx.count(raw.index_jobs.as_ref(), "index_jobs", defaults::INDEX_JOBS)?;
    let split = match cx.size(
        raw.split_tables_larger_than.as_ref(),
        "split_tables_larger_than",
    )? {
        None => defaults::SPLIT_TABLES_LARGER_THAN,
        Some(n) if n < defaults::MIN_SPLIT => {
            let at = raw
                .split_tables_larger_than
                .as_ref()
                .map(Pos::of)
                .unwrap_or(top);
            return Err(cx.invalid(
                at,
                format!("`split_tables_larger_than` is {n} bytes, less than 1MB"),
                "pieces that small cost more than they save; to never split, write a size above your largest table, e.g. 10TB",
            ));
        }
        Some(n) => n,
    };

    // cdc
    let cdc_raw = raw.cdc.as_ref().map(|c| &c.value);
    let start_lsn_raw = cdc_raw.and_then(|c| c.start_lsn.as_ref());
    let slot_raw = cdc_raw.and_then(|c| c.slot.as_ref());
    let twk_raw = cdc_raw.and_then(|c| c.tables_without_key.as_ref());
    let tables_without_key: TablesWithoutKey = cx
        .keyword(twk_raw, "cdc.tables_without_key")?
        .unwrap_or_default();
    let ddl = cx
        .keyword(cdc_raw.and_then(|c| c.ddl.as_ref()), "cdc.ddl")?
        .unwrap_or_default();
    let memory_raw = cdc_raw.and_then(|c| c.memory_limit.as_ref());
    let memory_limit = match cx.size(memory_raw, "cdc.memory_limit")? {
        None => defaults::CDC_MEMORY_LIMIT,
        Some(n) if n < defaults::MIN_CDC_MEMORY_LIMIT => {
            let at = memory_raw.map(Pos::of).unwrap_or(top);
            return Err(cx.invalid(
                at,
                format!("`cdc.memory_limit` is {n} bytes, less than 16MB"),
                "write 16MB or more, e.g. `memory_limit: 256MB` (the default); change capture spills what does not fit to temporary files",
            ));
        }
        Some(n) => n,
    };
    let start_lsn = match start_lsn_raw {
        None => None,
        Some(s) => {
            let lsn = s.value.trim().parse::<pg::Lsn>().map_err(|_| {
                cx.invalid(
                    Pos::of(s),
                    format!("invalid `cdc.start_lsn` `{}`: expected an LSN", shown(&s.value)),
                    "write it as PostgreSQL prints it, two hexadecimal numbers separated by `/`, e.g. 16/B374D848 (pg_replication_slots.confirmed_flush_lsn), or null",
                )
            })?;
            if lsn.0 == 0 {
                return Err(cx.invalid(
                    Pos::of(s),
                    "`cdc.start_lsn` 0/0 is not a WAL position",
                    "write the slot's confirmed_flush_lsn, or remove cdc.start_lsn to start from a new slot",
                ));
            }
            Some(lsn)
        }
    };
    let slot = identifier(
        &cx,
        slot_raw,
        "cdc.slot",
        MAX_IDENTIFIER,
        "a replication slot name",
    )?;

    // pglogical
    let set_raw = raw
        .pglogical
        .as_ref()
        .and_then(|p| p.value.replication_set.as_ref());
    let replication_set = identifier(
        &cx,
        set_raw,
        "pglogical.replication_set",
        MAX_IDENTIFIER - 1,
        "a replication set name (the insert set adds an `i` in front, and both must fit in 63 bytes)",
    )?;
    let pgl = raw.pglogical.as_ref().map(|p| &p.value);
    let provider_dsn_raw = pgl.and_then(|p| p.provider_dsn.as_ref());
    let provider_dsn = provider_dsn(&cx, provider_dsn_raw)?;
    let prefer_raw = pgl.and_then(|p| p.prefer.as_ref());
    let prefer = cx.boolean(prefer_raw, "pglogical.prefer")?.unwrap_or(false);

    // cutover
    let cut = raw.cutover.as_ref().map(|c| &c.value);
    let mode_raw = cut.and_then(|c| c.mode.as_ref());
    let fence_raw = cut.and_then(|c| c.fence.as_ref());
    let mode: CutoverMode = cx.keyword(mode_raw, "cutover.mode")?.unwrap_or_default();
    let max_lag_raw = cut.and_then(|c| c.max_lag.as_ref());
    let max_lag = match cx.duration(max_lag_raw, "cutover.max_lag")? {
        None => defaults::MAX_LAG,
        Some(d) if d.is_zero() => {
            return Err(cx.invalid(
                max_lag_raw.map(Pos::of).unwrap_or(top),
                "`cutover.max_lag` is 0: replication is never exactly caught up while the source takes writes",
                "write a small positive lag, e.g. 5s or 500ms",
            ))
        }
        Some(d) => d,
    };
    let fence: Fence = cx.keyword(fence_raw, "cutover.fence")?.unwrap_or_default();
    let sequences = cx
        .keyword(cut.and_then(|c| c.sequences.as_ref()), "cutover.sequences")?
        .unwrap_or_default();
    let verify = cx
        .keyword(cut.and_then(|c| c.verify.as_ref()), "cutover.verify")?
        .unwrap_or_default();

    let bin_dir = cx.path(raw.bin_dir.as_ref(), "bin_dir")?;

    // combinations
    if let Some(s) = strategy_raw {
        let line = Pos::of(s).line;
        let offline_or_pglogical = matches!(
            strategy,
            StrategyChoice::DumpRestore | StrategyChoice::Pglogical
        );
        if let (Some(lsn), true) = (start_lsn_raw, offline_or_pglogical) {
            return Err(cx.invalid(
                Pos::of(lsn),
                format!("`cdc.start_lsn` resumes a copy-cdc slot, but `strategy` is {strategy} (line {line})"),
                "remove cdc.start_lsn, or set `strategy: copy-cdc`",
            ));
        }
        if let (Some(slot), true) = (slot_raw, offline_or_pglogical) {
            return Err(cx.invalid(
                Pos::of(slot),
                format!("`cdc.slot` names the copy-cdc replication slot, but `strategy` is {strategy} (line {line})"),
                if strategy == StrategyChoice::Pglogical {
                    "pglogical names its own slots: remove cdc.slot (pglogical.replication_set names the sets)"
                } else {
                    "dump-restore uses no slot: remove cdc.slot, or choose strategy copy-cdc"
                },
            ));
        }
        if let (Some(dsn), StrategyChoice::DumpRestore | StrategyChoice::CopyCdc) =
            (provider_dsn_raw, strategy)
        {
            return Err(cx.invalid(
                Pos::of(dsn),
                format!("`pglogical.provider_dsn` applies to strategy pglogical, but `strategy` is {strategy} (line {line})"),
                "remove pglogical.provider_dsn, or set `strategy: pglogical` (or `auto` with `pglogical.prefer: true`)",
            ));
        }
        if let (Some(p), true, StrategyChoice::DumpRestore | StrategyChoice::CopyCdc) =
            (prefer_raw, prefer, strategy)
        {
            return Err(cx.invalid(
                Pos::of(p),
                format!("`pglogical.prefer` guides `strategy: auto`, but `strategy` is {strategy} (line {line})"),
                "remove pglogical.prefer, or set `strategy: auto` to let pgmove pick pglogical when both servers have it",
            ));
        }
        if let (Some(set), StrategyChoice::DumpRestore | StrategyChoice::CopyCdc) =
            (set_raw, strategy)
        {
            return Err(cx.invalid(
                Pos::of(set),
                format!("`pglogical.replication_set` applies to strategy pglogical, but `strategy` is {strategy} (line {line})"),
                "remove the pglogical section, or set `strategy: pglogical`",
            ));
        }
        if let (Some(m), StrategyChoice::DumpRestore, CutoverMode::Auto) =
            (mode_raw, strategy, mode)
        {
            return Err(cx.invalid(
                Pos::of(m),
                format!("`cutover.mode: auto` waits for replication to catch up, and strategy dump-restore (line {line}) has none"),
                "remove cutover.mode (dump-restore's target is live when the restore ends), or choose strategy copy-cdc, pglogical or auto",
            ));
        }
        if let (Some(t), StrategyChoice::Pglogical, TablesWithoutKey::ReplicaIdentityFull) =
            (twk_raw, strategy, tables_without_key)
        {
            return Err(cx.invalid(
                Pos::of(t),
                format!("pglogical (strategy at line {line}) cannot replicate updates or deletes of a table without a primary key or replica-identity index, even with REPLICA IDENTITY FULL"),
                "choose insert-only (such tables go to the insert set only), exclude or refuse; or use strategy copy-cdc",
            ));
        }
        if let (Some(d), StrategyChoice::DumpRestore) = (&raw.downtime, strategy) {
            if downtime.is_zero() {
                return Err(cx.invalid(
                    Pos::of(d),
                    format!("`downtime` is 0, but strategy dump-restore (line {line}) stops writes for the whole copy"),
                    "give the outage you accept, e.g. `downtime: 2h`, or choose an online strategy (copy-cdc, pglogical, auto)",
                ));
            }
        }
    }
    if let (Some(f), Fence::None, CutoverMode::Auto) = (fence_raw, fence, mode) {
        let line = mode_raw.map(|m| Pos::of(m).line).unwrap_or(0);
        return Err(cx.invalid(
            Pos::of(f),
            format!("`cutover.fence: none` with `cutover.mode: auto` (line {line}) would cut over while the source still takes writes"),
            "use `fence: read-only`, or `mode: manual` and stop the application yourself before `pgmove cutover`",
        ));
    }

    Ok(Plan {
        file: file.to_string(),
        version: VERSION,
        name: name.value.clone(),
        source: source_spec,
        target: TargetSpec {
            server: target_spec,
            kind,
        },
        strategy,
        downtime,
        objects,
        roles,
        owner,
        jobs,
        index_jobs,
        split_tables_larger_than: split,
        cdc: CdcSpec {
            tables_without_key,
            ddl,
            start_lsn,
            slot,
            memory_limit,
        },
        pglogical: PglogicalSpec {
            replication_set,
            provider_dsn,
            prefer,
        },
        cutover: CutoverSpec {
            mode,
            max_lag,
            fence,
            sequences,
            verify,
        },
        bin_dir,
    })
}

fn identifier(
    cx: &Cx,
    v: Option<&Scalar>,
    key: &str,
    max: usize,
    what: &str,
) -> Result<Option<String>, PlanError> {
    let Some(v) = v else { return Ok(None) };
    match identifier_problem(&v.value, max) {
        None => Ok(Some(v.value.clone())),
        Some(problem) => Err(cx.invalid(
            Pos::of(v),
            format!("`{key}` {problem}"),
            format!("{what} uses lowercase letters, digits and `_`, at most {max} characters; or remove `{key}` for the default pgmove_<name>"),
        )),
    }
}

/// `pglogical.provider_dsn`: a libpq DSN without a password (the subscription gets the
/// source's `password` secret when apply creates it).
fn provider_dsn(cx: &Cx, v: Option<&Scalar>) -> Result<Option<String>, PlanError> {
    let Some(v) = v else { return Ok(None) };
    let at = Pos::of(v);
    let form = "write how the target server reaches the source, e.g. `provider_dsn: host=10.0.0.5 port=5432 dbname=shop user=replicator` (a libpq URI or key=value string), or remove it to use source.dsn";
    if v.value.trim().is_empty() {
        return Err(cx.invalid(at, "`pglogical.provider_dsn` is empty", form));
    }
    // ConnInfo's messages never contain the password.
    let info = ConnInfo::parse(&v.value).map_err(|e| {
        cx.invalid(
            at,
            format!("invalid `pglogical.provider_dsn`: {}", e.message),
            form,
        )
    })?;
    if info.password.is_some() {
        return Err(cx.invalid(
            at,
            "`pglogical.provider_dsn` contains a password; a plan never holds secrets",
            "remove the password from provider_dsn: pgmove gives the subscription the source's `password` secret (source.password: {env: ...} or {file: ...}) and never prints it",
        ));
    }
    Ok(Some(v.value.trim().to_string()))
}

fn objects(cx: &Cx, raw: Option<&super::raw::RawObjects>) -> Result<Objects, PlanError> {
    let Some(raw) = raw else {
        return Ok(Objects::default());
    };
    let mut schemas: Vec<String> = Vec::new();
    for s in raw.schemas.iter().flatten() {
        let name = s.value.trim();
        if name.is_empty() {
            return Err(cx.invalid(
                Pos::of(s),
                "empty schema name in `objects.schemas`",
                "list schema names, e.g. `schemas: [public, sales]`, or leave the list out for every schema",
            ));
        }
        if is_system_schema(name) {
            return Err(cx.invalid(
                Pos::of(s),
                format!("`objects.schemas` lists `{}`, a system schema", shown(name)),
                "PostgreSQL's catalogs and pgmove's own `pgmove` schema are never moved: remove it",
            ));
        }
        if schemas.iter().any(|x| x == name) {
            return Err(cx.invalid(
                Pos::of(s),
                format!("`objects.schemas` lists `{}` twice", shown(name)),
                "remove the second one",
            ));
        }
        schemas.push(name.to_string());
    }
    let mut exclude = Vec::new();
    for g in raw.exclude.iter().flatten() {
        let pattern = g.value.trim();
        if pattern.is_empty() {
            return Err(cx.invalid(
                Pos::of(g),
                "empty pattern in `objects.exclude`",
                "patterns match schema.table, e.g. `public.tmp_*` or `audit.*`",
            ));
        }
        if !pattern.contains('.') {
            return Err(cx.invalid(
                Pos::of(g),
                format!("exclude pattern `{}` has no schema part", shown(pattern)),
                format!("patterns match schema.table: write `public.{pattern}` or `*.{pattern}`"),
            ));
        }
        exclude.push(pattern.to_string());
    }
    let large_objects = cx
        .boolean(raw.large_objects.as_ref(), "objects.large_objects")?
        .unwrap_or(defaults::LARGE_OBJECTS);
    Ok(Objects {
        schemas,
        exclude,
        large_objects,
    })
}

fn server(cx: &Cx, raw: &RawServer, side: Side, section: Pos) -> Result<ServerSpec, PlanError> {
    let env_name = match side {
        Side::Source => "SRC_PASSWORD",
        Side::Target => "DST_PASSWORD",
    };
    let Some(dsn) = raw.dsn else {
        return Err(cx.missing(
            section,
            &format!("{side}.dsn"),
            format!("write `dsn: postgres://user@host:5432/db` (a libpq URI or key=value string) under `{side}:`"),
        ));
    };
    let dsn_pos = Pos::of(dsn);
    if dsn.value.trim().is_empty() {
        return Err(cx.invalid(
            dsn_pos,
            format!("`{side}.dsn` is empty"),
            "write `dsn: postgres://user@host:5432/db` (a libpq URI or key=value string)",
        ));
    }
    // ConnInfo's messages never contain the password.
    let info = ConnInfo::parse(&dsn.value).map_err(|e| {
        cx.invalid(
            dsn_pos,
            format!("invalid `{side}.dsn`: {}", e.message),
            "write a libpq URI (postgres://user@host:5432/db?sslmode=require) or key=value string (host=h port=5432 dbname=db user=u)",
        )
    })?;
    let secrets_hint = format!(
        "write `password: {{env: {env_name}}}` under `{side}:` and export {env_name}, or `password: {{file: /run/secrets/{side}}}`"
    );
    if info.password.is_some() {
        return Err(cx.invalid(
            dsn_pos,
            format!("`{side}.dsn` contains a password; a plan never holds secrets"),
            format!("remove the password from the DSN and {secrets_hint}"),
        ));
    }
    let (password, password_pos) = match raw.password {
        None => (None, Pos::UNKNOWN),
        Some(p) => {
            let pos = Pos::of(p);
            let source = match &p.value {
                RawPassword::Inline => {
                    return Err(cx.invalid(
                        pos,
                        format!("`{side}.password` is written inline; a plan never holds secrets"),
                        secrets_hint,
                    ))
                }
                RawPassword::Keys {
                    env: Some(_),
                    file: Some(_),
                } => {
                    return Err(cx.invalid(
                        pos,
                        format!("`{side}.password` gives both `env` and `file`"),
                        "keep one: `{env: VARIABLE}` or `{file: PATH}`",
                    ))
                }
                RawPassword::Keys {
                    env: None,
                    file: None,
                } => {
                    return Err(cx.invalid(
                        pos,
                        format!("`{side}.password` names neither `env` nor `file`"),
                        secrets_hint,
                    ))
                }
                RawPassword::Keys {
                    env: Some(var),
                    file: None,
                } => {
                    let name = var.value.trim();
                    if name.is_empty()
                        || name.contains(['=', '\0'])
                        || name.chars().any(char::is_whitespace)
                    {
                        return Err(cx.invalid(
                            Pos::of(var),
                            format!("`{side}.password.env` is not an environment variable name"),
                            format!("write the variable's name, e.g. `{{env: {env_name}}}`, and export it with the password"),
                        ));
                    }
                    PasswordSource::Env(name.to_string())
                }
                RawPassword::Keys {
                    env: None,
                    file: Some(f),
                } => PasswordSource::File(cx.required_path(f, &format!("{side}.password.file"))?),
            };
            (Some(source), pos)
        }
    };
    let sslmode_key = format!("{side}.sslmode");
    let sslmode: Option<SslMode> = cx.keyword(raw.sslmode, &sslmode_key)?;
    let sslrootcert = cx.path(raw.sslrootcert, &format!("{side}.sslrootcert"))?;
    if let (Some(plan_mode), Some(dsn_mode), Some(at)) = (sslmode, info.sslmode, raw.sslmode) {
        if plan_mode != dsn_mode {
            return Err(cx.invalid(
                Pos::of(at),
                format!(
                    "`{side}.sslmode` is {} but `{side}.dsn` says sslmode={}",
                    plan_mode.as_str(),
                    dsn_mode.as_str()
                ),
                "set sslmode in one place: remove it from the DSN or from the plan",
            ));
        }
    }
    if let (Some(plan_root), Some(dsn_root), Some(at)) =
        (&sslrootcert, &info.sslrootcert, raw.sslrootcert)
    {
        if plan_root != dsn_root {
            return Err(cx.invalid(
                Pos::of(at),
                format!(
                    "`{side}.sslrootcert` is {} but `{side}.dsn` says sslrootcert={}",
                    plan_root.display(),
                    dsn_root.display()
                ),
                "set sslrootcert in one place: remove it from the DSN or from the plan",
            ));
        }
    }
    let effective_mode = sslmode.or(info.sslmode);
    if effective_mode == Some(SslMode::Disable)
        && (sslrootcert.is_some() || info.sslrootcert.is_some())
    {
        let at = raw.sslrootcert.map(Pos::of).unwrap_or(dsn_pos);
        return Err(cx.invalid(
            at,
            format!("`{side}` has a root certificate (sslrootcert) but sslmode disable: it would never be used"),
            "use `sslmode: verify-full` to verify the server with this certificate, or remove sslrootcert",
        ));
    }
    let spec = ServerSpec {
        dsn: dsn.value.trim().to_string(),
        password,
        sslmode,
        sslrootcert,
        dsn_pos,
        password_pos,
    };
    Ok(spec)
}
