//! Names: the plan's `name`, every name pgmove derives from it (slot, publications, the DDL
//! capture's triggers, function, key table and settings, pglogical nodes, sets and
//! subscription, the default dump directory), schemas pgmove never moves, and the DSN with the
//! plan's TLS settings applied. Nothing else in pgmove builds such a name.

use std::path::{Path, PathBuf};

use crate::pg::{ConnInfo, SslMode};

/// PostgreSQL truncates identifiers to 63 bytes (NAMEDATALEN - 1).
pub const MAX_IDENTIFIER: usize = 63;

/// The longest plan `name`: `ipgmove_<name>` (the insert set) must fit in 63 bytes.
pub const MAX_NAME_LEN: usize = MAX_IDENTIFIER - "ipgmove_".len();

/// What every artifact name starts with.
const ARTIFACT_PREFIX: &str = "pgmove_";

/// Separates a name's readable part from its hash. Names pgmove derives without a hash never
/// contain it (see [`is_plain`]), so a hashed name never equals an unhashed one.
const HASH_SEPARATOR: &str = "__";

/// Hex digits of the hash in a hashed name.
const HASH_LEN: usize = 10;

/// Suffixes of the names derived from an artifact name ([`derived_name`]).
pub const RESUME_SUFFIX: &str = "_resume";
pub const INSERT_ONLY_SUFFIX: &str = "_insert_only";
pub const DDL_SUFFIX: &str = "_ddl";
pub const DDL_DROP_SUFFIX: &str = "_ddl_drop";
pub const DDL_REWRITE_SUFFIX: &str = "_ddl_rewrite";
pub const DDL_START_SUFFIX: &str = "_ddl_start";
pub const DDL_EMIT_SUFFIX: &str = "_ddl_emit";
pub const DDL_KEY_SUFFIX: &str = "_ddl_key";
pub const PROVIDER_SUFFIX: &str = "_provider";
pub const SUBSCRIBER_SUFFIX: &str = "_subscriber";
pub const DDL_GUARD_SUFFIX: &str = "_ddl_guard";
pub const DDL_GUARD_DROP_SUFFIX: &str = "_ddl_guard_drop";

/// Plan names ending so would make `pgmove_<name>` another plan's derived name.
const RESERVED_ENDINGS: &[&str] = &[RESUME_SUFFIX, INSERT_ONLY_SUFFIX];

/// FNV-1a (64 bits) of `s`: stable across versions, so names and directories derived with it
/// are found again by a later pgmove.
fn fnv1a(s: &str) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in s.bytes() {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    h
}

/// A stable hash of `s` as [`HASH_LEN`] hex digits ([`fnv1a`]).
fn hash_hex(s: &str) -> String {
    let mut out = format!("{:016x}", fnv1a(s));
    out.truncate(HASH_LEN);
    out
}

/// Whether the plan name keeps the readable artifact name `pgmove_<name>`: words of
/// `[a-z0-9]` joined by single `_` (so neither `pgmove_<name>` nor any name derived from it
/// holds [`HASH_SEPARATOR`]), not ending like a derived name, and short enough.
fn is_plain(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= MAX_NAME_LEN
        && name.split('_').all(|w| {
            !w.is_empty()
                && w.bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
        })
        && !RESERVED_ENDINGS.iter().any(|e| name.ends_with(e))
}

/// `text` lowercased with characters other than `[a-z0-9_]` as `_`, at most `max` bytes.
fn sanitized(text: &str, max: usize) -> String {
    let mut s: String = text
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
    s.truncate(max);
    s
}

/// The plan's artifact name (default slot, publication and pglogical set), injective per plan
/// name and at most 62 bytes (so `i<name>` fits too):
/// - `pgmove_<name>` for plain names (see `is_plain`: `shop`, `shop_to_aurora_2`), the
///   names pgmove always gave them;
/// - any other name (`Shop`, `a-b`, `a__b`, `x_resume`): `pgmove_<name lowercased, other
///   characters as _>__<hash of the exact name>`, e.g. `pgmove_a_b__<10 hex>`.
pub fn artifact_name(name: &str) -> String {
    if is_plain(name) {
        return format!("{ARTIFACT_PREFIX}{name}");
    }
    let room = MAX_IDENTIFIER - 1 - ARTIFACT_PREFIX.len() - HASH_SEPARATOR.len() - HASH_LEN;
    format!(
        "{ARTIFACT_PREFIX}{}{HASH_SEPARATOR}{}",
        sanitized(name, room),
        hash_hex(name)
    )
}

/// `base` + `suffix` (one of the `*_SUFFIX` constants) when it fits in 63 bytes; else `base`
/// shortened, `__`, a hash of the whole `base`, and `suffix`. Injective over `base` for each
/// suffix, and distinct across suffixes (each ends differently, none in hex digits).
pub fn derived_name(base: &str, suffix: &str) -> String {
    if base.len() + suffix.len() <= MAX_IDENTIFIER {
        return format!("{base}{suffix}");
    }
    let room = MAX_IDENTIFIER - suffix.len() - HASH_SEPARATOR.len() - HASH_LEN;
    let mut head = base.to_string();
    while head.len() > room {
        head.pop();
    }
    format!("{head}{HASH_SEPARATOR}{}{suffix}", hash_hex(base))
}

/// The slot pgmove uses while a full load resumes, for slot `slot`.
pub fn resume_slot_name(slot: &str) -> String {
    derived_name(slot, RESUME_SUFFIX)
}

/// The publication of tables without a key under `cdc.tables_without_key: insert-only`.
pub fn insert_only_publication_name(publication: &str) -> String {
    derived_name(publication, INSERT_ONLY_SUFFIX)
}

/// The pglogical set replicating inserts and truncates paired with set `set`: `i<set>`.
pub fn insert_set_name(set: &str) -> String {
    if set.len() < MAX_IDENTIFIER {
        return format!("i{set}");
    }
    let room = MAX_IDENTIFIER - 1 - HASH_SEPARATOR.len() - HASH_LEN;
    format!("i{}{HASH_SEPARATOR}{}", sanitized(set, room), hash_hex(set))
}

/// What every DDL message of the capture's trigger is prefixed with (`pg_logical_emit_message`):
/// `pgmove.ddl.` and the plan name ([`ddl_message_prefix`]).
pub const DDL_MESSAGE_PREFIX: &str = "pgmove.ddl.";

/// The prefix of plan `plan_name`'s DDL messages in the change stream: `pgmove.ddl.<name>`.
pub fn ddl_message_prefix(plan_name: &str) -> String {
    format!("{DDL_MESSAGE_PREFIX}{plan_name}")
}

/// The prefix of the message cutover writes into the source's stream to mark the point after
/// which nothing more comes: `pgmove.cutover.<name>`, never a DDL message's.
pub fn cutover_marker_prefix(plan_name: &str) -> String {
    format!("pgmove.cutover.{plan_name}")
}

/// Names of the DDL capture's objects on the source (see [`crate::cdc::ddl`]), all in schema
/// `pgmove`, for plan artifact `A` ([`artifact_name`]): `A_ddl...`, each through
/// [`derived_name`] (exact per plan, shortened with a hash when it would pass 63 bytes).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DdlNames {
    /// Event trigger on `ddl_command_end`, also the trigger function's name.
    pub trigger: String,
    /// Event trigger on `sql_drop`.
    pub drop_trigger: String,
    /// Event trigger on `table_rewrite`.
    pub rewrite_trigger: String,
    /// Event trigger on `ddl_command_start` (`ALTER TABLE`).
    pub start_trigger: String,
    /// The SECURITY DEFINER function doing the work.
    pub emit: String,
    /// The key table.
    pub key_table: String,
    /// The publication new tables are added to.
    pub publication: String,
    /// Custom settings (GUCs) the trigger keeps its state in: `pgmove.<trigger>_seq`, ...
    pub guc_seq: String,
    pub guc_dropped: String,
    pub guc_rewrites: String,
    pub guc_pending: String,
    pub guc_missing: String,
}

/// The DDL capture's names for plan `plan_name` (see [`DdlNames`]).
pub fn ddl_names(plan_name: &str) -> DdlNames {
    let artifact = artifact_name(plan_name);
    let d = |suffix| derived_name(&artifact, suffix);
    let trigger = d(DDL_SUFFIX);
    let guc = |what: &str| format!("pgmove.{trigger}_{what}");
    DdlNames {
        drop_trigger: d(DDL_DROP_SUFFIX),
        rewrite_trigger: d(DDL_REWRITE_SUFFIX),
        start_trigger: d(DDL_START_SUFFIX),
        emit: d(DDL_EMIT_SUFFIX),
        key_table: d(DDL_KEY_SUFFIX),
        guc_seq: guc("seq"),
        guc_dropped: guc("dropped"),
        guc_rewrites: guc("rewrites"),
        guc_pending: guc("pending"),
        guc_missing: guc("missing"),
        publication: artifact,
        trigger,
    }
}

/// Names of the guard `cdc.ddl` installs on the source under strategy pglogical (see
/// `crate::cdc::ddl::guard`), in schema `pgmove`, for plan artifact `A`: the event trigger on
/// `ddl_command_end` and the function both triggers run, `A_ddl_guard`; the event trigger on
/// `sql_drop`, `A_ddl_guard_drop` (through [`derived_name`]).
pub fn ddl_guard_names(plan_name: &str) -> (String, String) {
    let artifact = artifact_name(plan_name);
    (
        derived_name(&artifact, DDL_GUARD_SUFFIX),
        derived_name(&artifact, DDL_GUARD_DROP_SUFFIX),
    )
}

/// The pglogical objects of a plan (strategy pglogical), for plan artifact `A`
/// ([`artifact_name`]):
/// - provider node `A_provider` (on the source) and subscriber node `A_subscriber` (on the
///   target), through [`derived_name`];
/// - the paired sets: `pglogical.replication_set` or `A` (updates and deletes), and `i<set>`
///   ([`insert_set_name`]: inserts and truncates);
/// - the subscription `A` (on the target; pglogical names its slot after it).
///
/// Each at most 63 bytes, and distinct per plan in its catalog.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PglogicalNames {
    pub provider_node: String,
    pub subscriber_node: String,
    pub replication_set: String,
    pub insert_set: String,
    pub subscription: String,
}

/// The pglogical names of plan `plan_name` whose `pglogical.replication_set` is `set` (see
/// [`PglogicalNames`]).
pub fn pglogical_names(plan_name: &str, set: Option<&str>) -> PglogicalNames {
    let artifact = artifact_name(plan_name);
    let replication_set = set.map_or_else(|| artifact.clone(), str::to_string);
    PglogicalNames {
        provider_node: derived_name(&artifact, PROVIDER_SUFFIX),
        subscriber_node: derived_name(&artifact, SUBSCRIBER_SUFFIX),
        insert_set: insert_set_name(&replication_set),
        replication_set,
        subscription: artifact,
    }
}

/// Why a plan `name` is refused, if it is.
pub(crate) fn name_problem(name: &str) -> Option<String> {
    if name.is_empty() {
        return Some("the plan's `name` is empty".to_string());
    }
    if let Some(c) = name
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || *c == '-' || *c == '_'))
    {
        return Some(format!(
            "the plan's `name` contains {}",
            match c {
                ' ' => "a space".to_string(),
                c => format!("`{c}`"),
            }
        ));
    }
    if name.len() > MAX_NAME_LEN {
        return Some(format!(
            "the plan's `name` is {} characters long, more than {MAX_NAME_LEN}",
            name.len()
        ));
    }
    None
}

/// Why a slot or replication-set name is refused, if it is. `max` is in bytes.
pub(crate) fn identifier_problem(s: &str, max: usize) -> Option<String> {
    if s.is_empty() {
        return Some("is empty".to_string());
    }
    if let Some(c) = s
        .chars()
        .find(|c| !(c.is_ascii_lowercase() || c.is_ascii_digit() || *c == '_'))
    {
        return Some(format!("contains `{c}`"));
    }
    if s.len() > max {
        return Some(format!("is {} characters long, more than {max}", s.len()));
    }
    None
}

/// Schemas no plan moves: PostgreSQL's own and pgmove's bookkeeping schema.
pub fn is_system_schema(schema: &str) -> bool {
    schema == "information_schema"
        || schema == "pgmove"
        || schema == "pg_catalog"
        || schema == "pg_toast"
        || schema.starts_with("pg_temp_")
        || schema.starts_with("pg_toast_temp_")
}

/// An endpoint as `host:port/database` (host lowercased): what keys a plan's local files.
pub fn endpoint_key(info: &ConnInfo) -> String {
    format!(
        "{}:{}/{}",
        info.host().to_ascii_lowercase(),
        info.port(),
        info.dbname()
    )
}

/// Where `apply` keeps a plan's dump when no `--dump-dir` is given, and where `cleanup` looks
/// for it: `<cache>/pgmove/dumps/<name>-<hash>`, `<cache>` being `$XDG_CACHE_HOME` (when
/// absolute) or `$HOME/.cache`, private to the user running pgmove, and `<hash>` 16 hex digits
/// (FNV-1a, stable across versions) of the plan name and both endpoints' host, port and
/// database: two plans of the same name on other databases never share a directory. `Err` (what
/// is missing) when neither variable gives an absolute path.
pub fn default_dump_dir(
    plan_name: &str,
    source: &ConnInfo,
    target: &ConnInfo,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<PathBuf, NoDumpPlace> {
    let absolute = |k: &str| env(k).map(PathBuf::from).filter(|p| p.is_absolute());
    let cache = absolute("XDG_CACHE_HOME")
        .or_else(|| absolute("HOME").map(|h| h.join(".cache")))
        .ok_or(NoDumpPlace)?;
    let key = format!(
        "{plan_name}\0{}\0{}",
        endpoint_key(source),
        endpoint_key(target)
    );
    let hash = fnv1a(&key);
    let safe: String = plan_name
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                c
            } else {
                '_'
            }
        })
        .collect();
    Ok(cache
        .join("pgmove")
        .join("dumps")
        .join(format!("{safe}-{hash:016x}")))
}

/// Neither `XDG_CACHE_HOME` nor `HOME` gives [`default_dump_dir`] an absolute path.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "no private place for the dump: neither XDG_CACHE_HOME nor HOME is set to an absolute path"
)]
pub struct NoDumpPlace;

/// The plan's dump directory: `explicit` (`--dump-dir`) when given, else
/// [`default_dump_dir`] read from this process's environment. What `apply` writes and
/// `cleanup` removes, so both call this.
pub fn dump_dir(
    explicit: Option<&Path>,
    plan_name: &str,
    source: &ConnInfo,
    target: &ConnInfo,
) -> Result<PathBuf, NoDumpPlace> {
    match explicit {
        Some(d) => Ok(d.to_path_buf()),
        None => default_dump_dir(plan_name, source, target, &|k| std::env::var(k).ok()),
    }
}

/// `dsn` with `sslmode` and `sslrootcert` appended, so they win over the DSN's own (libpq keeps
/// the last of a repeated key) and over `PGSSLMODE`/`PGSSLROOTCERT`.
pub(crate) fn dsn_with_overrides(
    dsn: &str,
    sslmode: Option<SslMode>,
    sslrootcert: Option<&Path>,
) -> String {
    let mut out = dsn.trim().to_string();
    let root = sslrootcert.map(|p| p.to_string_lossy().into_owned());
    let is_uri = out.starts_with("postgres://") || out.starts_with("postgresql://");
    let pairs = sslmode
        .map(|m| ("sslmode", m.as_str().to_string()))
        .into_iter()
        .chain(root.map(|r| ("sslrootcert", r)));
    for (key, value) in pairs {
        if is_uri {
            out.push(if out.contains('?') { '&' } else { '?' });
            out.push_str(key);
            out.push('=');
            out.push_str(
                &percent_encoding::utf8_percent_encode(&value, percent_encoding::NON_ALPHANUMERIC)
                    .to_string(),
            );
        } else {
            if !out.is_empty() {
                out.push(' ');
            }
            let quoted = value.replace('\\', "\\\\").replace('\'', "\\'");
            out.push_str(&format!("{key}='{quoted}'"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pg::ConnInfo;
    use std::path::PathBuf;

    /// Every name pgmove derives for plan `name`, by catalog: (catalog, name).
    fn all_names(name: &str) -> Vec<(&'static str, String)> {
        let a = artifact_name(name);
        let ddl = ddl_names(name);
        let pgl = pglogical_names(name, None);
        vec![
            ("slot", a.clone()),
            ("slot", resume_slot_name(&a)),
            ("publication", a.clone()),
            ("publication", insert_only_publication_name(&a)),
            ("pglogical set", pgl.replication_set),
            ("pglogical set", pgl.insert_set),
            ("pglogical node", pgl.provider_node),
            ("pglogical node", pgl.subscriber_node),
            ("pglogical subscription", pgl.subscription),
            ("event trigger", ddl.trigger.clone()),
            ("event trigger", ddl.drop_trigger),
            ("event trigger", ddl.rewrite_trigger),
            ("event trigger", ddl.start_trigger),
            ("function", ddl.trigger),
            ("function", ddl.emit),
            ("table", ddl.key_table),
        ]
    }

    #[test]
    fn artifact_names_are_safe_identifiers() {
        // Plain names keep the names earlier versions gave them.
        assert_eq!(artifact_name("shop"), "pgmove_shop");
        assert_eq!(artifact_name("a_b9"), "pgmove_a_b9");
        assert_eq!(artifact_name("t1_ddl"), "pgmove_t1_ddl");
        assert_eq!(
            artifact_name(&"x".repeat(MAX_NAME_LEN)),
            format!("pgmove_{}", "x".repeat(MAX_NAME_LEN))
        );
        // Any other name: readable part, `__`, a hash of the exact name.
        let h = artifact_name("Shop-To-Aurora");
        assert!(h.starts_with("pgmove_shop_to_aurora__"), "{h}");
        assert_eq!(h.len(), "pgmove_shop_to_aurora__".len() + HASH_LEN);
        assert_eq!(h, artifact_name("Shop-To-Aurora"), "stable");
        for name in [
            "Shop-To-Aurora",
            "a-b",
            "x",
            "_x",
            "x_",
            "a__b",
            &"X".repeat(55),
        ] {
            for (_, n) in all_names(name) {
                assert!(n.len() <= MAX_IDENTIFIER, "{name}: {n}");
                assert!(identifier_problem(&n, MAX_IDENTIFIER).is_none(), "{n}");
            }
        }
    }

    #[test]
    fn artifact_names_are_injective() {
        let long = "y".repeat(MAX_NAME_LEN);
        let long2 = format!("{}z", "y".repeat(MAX_NAME_LEN - 1));
        let names = [
            "a-b",
            "a_b",
            "A_B",
            "a--b",
            "a__b",
            "Shop",
            "shop",
            "t1",
            "t1_ddl",
            "t1_ddl_ddl",
            "x",
            "x_resume",
            "x_insert_only",
            "x_provider",
            "x_subscriber",
            "_x",
            "x_",
            "x-resume",
            &long,
            &long2,
            "pgmove_x",
            "x__0123456789",
        ];
        let mut seen: std::collections::HashMap<(&str, String), &str> = Default::default();
        for name in names {
            for (catalog, n) in all_names(name) {
                assert!(n.len() <= MAX_IDENTIFIER, "{name}: {n}");
                if let Some(other) = seen.insert((catalog, n.clone()), name) {
                    // One plan names the same object twice only for the artifact itself (slot,
                    // publication and set share it, each in its own catalog).
                    assert_eq!(other, name, "{catalog} {n} of plans {other} and {name}");
                }
            }
        }
        // Long plain names: the derived names that would pass 63 bytes are hashed, not cut.
        let t1 = derived_name(&artifact_name(&long), DDL_REWRITE_SUFFIX);
        let t2 = derived_name(&artifact_name(&long2), DDL_REWRITE_SUFFIX);
        assert_ne!(t1, t2);
        assert!(
            t1.ends_with(DDL_REWRITE_SUFFIX) && t1.len() == MAX_IDENTIFIER,
            "{t1}"
        );
    }

    #[test]
    fn ddl_names_keep_the_names_earlier_versions_gave() {
        let n = ddl_names("shop");
        assert_eq!(
            n,
            DdlNames {
                trigger: "pgmove_shop_ddl".into(),
                drop_trigger: "pgmove_shop_ddl_drop".into(),
                rewrite_trigger: "pgmove_shop_ddl_rewrite".into(),
                start_trigger: "pgmove_shop_ddl_start".into(),
                emit: "pgmove_shop_ddl_emit".into(),
                key_table: "pgmove_shop_ddl_key".into(),
                publication: "pgmove_shop".into(),
                guc_seq: "pgmove.pgmove_shop_ddl_seq".into(),
                guc_dropped: "pgmove.pgmove_shop_ddl_dropped".into(),
                guc_rewrites: "pgmove.pgmove_shop_ddl_rewrites".into(),
                guc_pending: "pgmove.pgmove_shop_ddl_pending".into(),
                guc_missing: "pgmove.pgmove_shop_ddl_missing".into(),
            }
        );
        // The settings follow the trigger's name, so they are distinct per plan as it is, and
        // each is a custom setting of the `pgmove` class.
        let long = ddl_names(&"x".repeat(MAX_NAME_LEN));
        assert_eq!(long.guc_seq, format!("pgmove.{}_seq", long.trigger));
        let settings = [
            &long.guc_seq,
            &long.guc_dropped,
            &long.guc_rewrites,
            &long.guc_pending,
            &long.guc_missing,
        ];
        let distinct: std::collections::HashSet<_> = settings.iter().collect();
        assert_eq!(distinct.len(), settings.len());
        assert_ne!(ddl_names("a-b").guc_seq, ddl_names("a_b").guc_seq);
    }

    #[test]
    fn pglogical_names_fit_and_differ_per_plan() {
        assert_eq!(
            pglogical_names("shop", None),
            PglogicalNames {
                provider_node: "pgmove_shop_provider".into(),
                subscriber_node: "pgmove_shop_subscriber".into(),
                replication_set: "pgmove_shop".into(),
                insert_set: "ipgmove_shop".into(),
                subscription: "pgmove_shop".into(),
            }
        );
        // `pglogical.replication_set` names the sets; nodes and subscription stay the plan's.
        let own = pglogical_names("shop", Some("shop_set"));
        assert_eq!(
            (own.replication_set.as_str(), own.insert_set.as_str()),
            ("shop_set", "ishop_set")
        );
        assert_eq!(own.provider_node, "pgmove_shop_provider");
        assert_eq!(own.subscription, "pgmove_shop");
        // Long names: hashed, not cut, so two long plans keep distinct nodes.
        let long = "y".repeat(MAX_NAME_LEN);
        let long2 = format!("{}z", "y".repeat(MAX_NAME_LEN - 1));
        let (a, b) = (pglogical_names(&long, None), pglogical_names(&long2, None));
        for n in [&a, &b] {
            for s in [
                &n.provider_node,
                &n.subscriber_node,
                &n.replication_set,
                &n.insert_set,
                &n.subscription,
            ] {
                assert!(s.len() <= MAX_IDENTIFIER, "{s}");
                assert!(identifier_problem(s, MAX_IDENTIFIER).is_none(), "{s}");
            }
        }
        assert!(
            a.subscriber_node.contains(HASH_SEPARATOR),
            "{}",
            a.subscriber_node
        );
        assert!(a.subscriber_node.ends_with(SUBSCRIBER_SUFFIX));
        assert_ne!(a.provider_node, b.provider_node);
        assert_ne!(a.subscriber_node, b.subscriber_node);
        assert_ne!(a.subscription, b.subscription);
        assert_ne!(a.insert_set, b.insert_set);
        // A 63-byte set of the user's: its insert set is hashed to fit.
        let set = "s".repeat(MAX_IDENTIFIER);
        let n = pglogical_names("shop", Some(&set));
        assert!(n.insert_set.len() <= MAX_IDENTIFIER && n.insert_set.starts_with('i'));
    }

    #[test]
    fn message_prefixes_are_the_plans_and_never_each_others() {
        assert_eq!(ddl_message_prefix("shop"), "pgmove.ddl.shop");
        assert_eq!(cutover_marker_prefix("shop"), "pgmove.cutover.shop");
        for (a, b) in [
            ("shop", "shop"),
            ("cutover.shop", "shop"),
            ("shop", "ddl.shop"),
        ] {
            let (ddl, marker) = (ddl_message_prefix(a), cutover_marker_prefix(b));
            assert!(!marker.starts_with(DDL_MESSAGE_PREFIX), "{marker}");
            assert_ne!(ddl, marker);
        }
    }

    #[test]
    fn plan_names() {
        assert_eq!(name_problem("shop-to-aurora_2"), None);
        assert_eq!(name_problem(&"n".repeat(MAX_NAME_LEN)), None);
        assert!(name_problem("").expect("empty").contains("empty"));
        assert!(name_problem("shop to aurora")
            .expect("space")
            .contains("a space"));
        assert!(name_problem("shop.aurora").expect("dot").contains("`.`"));
        assert!(name_problem("café").expect("non-ascii").contains("`é`"));
        assert!(name_problem(&"n".repeat(MAX_NAME_LEN + 1))
            .expect("long")
            .contains("more than 55"));
    }

    #[test]
    fn identifiers() {
        assert_eq!(identifier_problem("pgmove_shop", 63), None);
        assert!(identifier_problem("", 63).is_some());
        assert!(identifier_problem("Slot", 63).is_some());
        assert!(identifier_problem("my-slot", 63).is_some());
        assert!(identifier_problem(&"s".repeat(63), 62).is_some());
        assert_eq!(identifier_problem(&"s".repeat(63), 63), None);
    }

    #[test]
    fn system_schemas() {
        for s in [
            "pg_catalog",
            "information_schema",
            "pg_toast",
            "pg_temp_3",
            "pg_toast_temp_3",
            "pgmove",
        ] {
            assert!(is_system_schema(s), "{s}");
        }
        for s in ["public", "sales", "pg", "pgmove_data", "Public"] {
            assert!(!is_system_schema(s), "{s}");
        }
    }

    #[test]
    fn the_default_dump_dir_is_private_and_keyed_by_both_endpoints() {
        let info = |dsn: &str| ConnInfo::parse(dsn).expect("dsn");
        let (a, b) = (
            info("postgres://u@h1:5432/shop"),
            info("postgres://u@h2:5432/shop"),
        );
        let home = |k: &str| (k == "HOME").then(|| "/home/ann".to_string());
        let d = default_dump_dir("shop", &a, &b, &home).expect("default");
        assert!(
            d.parent() == Some(Path::new("/home/ann/.cache/pgmove/dumps")),
            "{}",
            d.display()
        );
        let leaf = d.file_name().and_then(|n| n.to_str()).expect("leaf");
        assert!(leaf.starts_with("shop-"), "{leaf}");
        assert_eq!(leaf.len(), "shop-".len() + 16, "{leaf}");
        // Stable: the same inputs give the same path (cleanup finds what apply made).
        assert_eq!(default_dump_dir("shop", &a, &b, &home).expect("again"), d);
        // Another database, port or host on either side, or another name: another directory.
        for (name, s, t) in [
            (
                "shop",
                "postgres://u@h1:5432/shop2",
                "postgres://u@h2:5432/shop",
            ),
            (
                "shop",
                "postgres://u@h1:5432/shop",
                "postgres://u@h2:5433/shop",
            ),
            (
                "shop",
                "postgres://u@h3:5432/shop",
                "postgres://u@h2:5432/shop",
            ),
            (
                "shop",
                "postgres://u@h2:5432/shop",
                "postgres://u@h1:5432/shop",
            ),
            (
                "shop2",
                "postgres://u@h1:5432/shop",
                "postgres://u@h2:5432/shop",
            ),
        ] {
            let other = default_dump_dir(name, &info(s), &info(t), &home).expect("other");
            assert_ne!(other, d, "{name} {s} {t}");
        }
        // The user is not part of the key (a dump is the database's, whoever reads it).
        assert_eq!(
            default_dump_dir("shop", &info("postgres://v@H1:5432/shop"), &b, &home).expect("v"),
            d
        );
        let xdg = |k: &str| match k {
            "XDG_CACHE_HOME" => Some("/run/user/7/cache".to_string()),
            "HOME" => Some("/home/ann".to_string()),
            _ => None,
        };
        assert!(default_dump_dir("shop", &a, &b, &xdg)
            .expect("xdg")
            .starts_with("/run/user/7/cache/pgmove/dumps"));
        let relative = |k: &str| (k == "HOME").then(|| "home".to_string());
        let e = default_dump_dir("shop", &a, &b, &relative).expect_err("no absolute base");
        assert_eq!(
            e.to_string(),
            "no private place for the dump: neither XDG_CACHE_HOME nor HOME is set to an absolute path"
        );
        assert!(default_dump_dir("shop", &a, &b, &|_| None).is_err());
    }

    #[test]
    fn overrides_win_over_the_dsn() {
        let root = PathBuf::from("/etc/ssl/my bundle's.pem");
        for dsn in [
            "postgres://u@h/db",
            "postgres://u@h/db?sslmode=require",
            "host=h user=u dbname=db",
            "host=h sslmode=disable",
            "",
        ] {
            let s = dsn_with_overrides(dsn, Some(SslMode::VerifyFull), Some(&root));
            let info = ConnInfo::parse(&s).expect("parses");
            assert_eq!(info.sslmode, Some(SslMode::VerifyFull), "{s}");
            assert_eq!(info.sslrootcert.as_deref(), Some(root.as_path()), "{s}");
        }
        assert_eq!(
            dsn_with_overrides("postgres://u@h/db", None, None),
            "postgres://u@h/db"
        );
    }
}
