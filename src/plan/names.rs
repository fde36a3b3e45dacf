//! Names: the plan's `name`, the artifacts derived from it, schemas pgmove never moves, and the
//! DSN with the plan's TLS settings applied.

use std::path::{Path, PathBuf};

use crate::pg::{ConnInfo, SslMode};

/// PostgreSQL truncates identifiers to 63 bytes (NAMEDATALEN - 1).
pub const MAX_IDENTIFIER: usize = 63;

/// The longest plan `name`: `ipgmove_<name>` (the insert set) must fit in 63 bytes.
pub const MAX_NAME_LEN: usize = MAX_IDENTIFIER - "ipgmove_".len();

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
    s.truncate(MAX_IDENTIFIER);
    s
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
) -> Result<PathBuf, String> {
    let absolute = |k: &str| env(k).map(PathBuf::from).filter(|p| p.is_absolute());
    let cache = absolute("XDG_CACHE_HOME")
        .or_else(|| absolute("HOME").map(|h| h.join(".cache")))
        .ok_or_else(|| {
            "no private place for the dump: neither XDG_CACHE_HOME nor HOME is set to an absolute path".to_string()
        })?;
    let key = format!(
        "{plan_name}\0{}\0{}",
        endpoint_key(source),
        endpoint_key(target)
    );
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for b in key.bytes() {
        hash ^= u64::from(b);
        hash = hash.wrapping_mul(0x0100_0000_01b3);
    }
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

    #[test]
    fn artifact_names_are_safe_identifiers() {
        assert_eq!(artifact_name("shop"), "pgmove_shop");
        assert_eq!(artifact_name("Shop-To-Aurora"), "pgmove_shop_to_aurora");
        assert_eq!(artifact_name("a_b-c9"), "pgmove_a_b_c9");
        assert_eq!(artifact_name(&"x".repeat(100)).len(), 63);
        assert_eq!(artifact_name(&"x".repeat(MAX_NAME_LEN)).len(), 62);
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
        assert!(e.contains("neither XDG_CACHE_HOME nor HOME"), "{e}");
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
