//! Names: the plan's `name`, the artifacts derived from it, schemas pgmove never moves, and the
//! DSN with the plan's TLS settings applied.

use std::path::Path;

use crate::pg::SslMode;

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
