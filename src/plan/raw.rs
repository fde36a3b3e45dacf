//! The plan file as YAML gives it: every key optional and every scalar a located string, so that
//! validation (in `validate`) can say which key is wrong, where, and what it expected. The
//! shape itself (known keys only, mappings and lists where they belong) is enforced here by
//! serde with `deny_unknown_fields`.

use std::fmt;

use serde::de::{self, Deserializer, MapAccess, Visitor};
use serde::Deserialize;
use serde_saphyr::Spanned;

/// A scalar and where it stood. Numbers, booleans and keywords are read as text and converted
/// in validation, with messages that name the key.
pub(crate) type Scalar = Spanned<String>;

/// The keys of every section, in file order, for hints. Must match the structs below (a test
/// checks it).
pub(crate) const TOP_KEYS: &[&str] = &[
    "version",
    "name",
    "source",
    "target",
    "strategy",
    "downtime",
    "objects",
    "roles",
    "owner",
    "jobs",
    "index_jobs",
    "split_tables_larger_than",
    "cdc",
    "pglogical",
    "cutover",
    "bin_dir",
];
pub(crate) const SOURCE_KEYS: &[&str] = &["dsn", "password", "sslmode", "sslrootcert"];
pub(crate) const TARGET_KEYS: &[&str] = &["dsn", "password", "sslmode", "sslrootcert", "kind"];
pub(crate) const PASSWORD_KEYS: &[&str] = &["env", "file"];
pub(crate) const OBJECTS_KEYS: &[&str] = &["schemas", "exclude", "large_objects"];
pub(crate) const CDC_KEYS: &[&str] = &[
    "tables_without_key",
    "ddl",
    "start_lsn",
    "slot",
    "memory_limit",
];
pub(crate) const PGLOGICAL_KEYS: &[&str] = &["replication_set", "provider_dsn", "prefer"];
pub(crate) const CUTOVER_KEYS: &[&str] = &["mode", "max_lag", "fence", "sequences", "verify"];

/// Section name and its keys.
pub(crate) const SECTIONS: &[(&str, &[&str])] = &[
    ("top level", TOP_KEYS),
    ("source", SOURCE_KEYS),
    ("target", TARGET_KEYS),
    ("password", PASSWORD_KEYS),
    ("objects", OBJECTS_KEYS),
    ("cdc", CDC_KEYS),
    ("pglogical", PGLOGICAL_KEYS),
    ("cutover", CUTOVER_KEYS),
];

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawPlan {
    pub version: Option<Scalar>,
    pub name: Option<Scalar>,
    pub source: Option<Spanned<RawSource>>,
    pub target: Option<Spanned<RawTarget>>,
    pub strategy: Option<Scalar>,
    pub downtime: Option<Scalar>,
    pub objects: Option<Spanned<RawObjects>>,
    pub roles: Option<Scalar>,
    pub owner: Option<Scalar>,
    pub jobs: Option<Scalar>,
    pub index_jobs: Option<Scalar>,
    pub split_tables_larger_than: Option<Scalar>,
    pub cdc: Option<Spanned<RawCdc>>,
    pub pglogical: Option<Spanned<RawPglogical>>,
    pub cutover: Option<Spanned<RawCutover>>,
    pub bin_dir: Option<Scalar>,
}

impl RawPlan {
    /// Whether the document set no key at all (an empty file or comments only).
    pub fn is_empty(&self) -> bool {
        self.version.is_none()
            && self.name.is_none()
            && self.source.is_none()
            && self.target.is_none()
            && self.strategy.is_none()
            && self.downtime.is_none()
            && self.objects.is_none()
            && self.roles.is_none()
            && self.owner.is_none()
            && self.jobs.is_none()
            && self.index_jobs.is_none()
            && self.split_tables_larger_than.is_none()
            && self.cdc.is_none()
            && self.pglogical.is_none()
            && self.cutover.is_none()
            && self.bin_dir.is_none()
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawSource {
    pub dsn: Option<Scalar>,
    pub password: Option<Spanned<RawPassword>>,
    pub sslmode: Option<Scalar>,
    pub sslrootcert: Option<Scalar>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawTarget {
    pub dsn: Option<Scalar>,
    pub password: Option<Spanned<RawPassword>>,
    pub sslmode: Option<Scalar>,
    pub sslrootcert: Option<Scalar>,
    pub kind: Option<Scalar>,
}

/// The server keys common to both sides.
pub(crate) struct RawServer<'a> {
    pub dsn: Option<&'a Scalar>,
    pub password: Option<&'a Spanned<RawPassword>>,
    pub sslmode: Option<&'a Scalar>,
    pub sslrootcert: Option<&'a Scalar>,
}

impl RawSource {
    pub fn server(&self) -> RawServer<'_> {
        RawServer {
            dsn: self.dsn.as_ref(),
            password: self.password.as_ref(),
            sslmode: self.sslmode.as_ref(),
            sslrootcert: self.sslrootcert.as_ref(),
        }
    }
}

impl RawTarget {
    pub fn server(&self) -> RawServer<'_> {
        RawServer {
            dsn: self.dsn.as_ref(),
            password: self.password.as_ref(),
            sslmode: self.sslmode.as_ref(),
            sslrootcert: self.sslrootcert.as_ref(),
        }
    }
}

/// `password:` as written. A scalar is a password written inline: it is kept only as the fact
/// that it was there (never its text) so validation can refuse it.
pub(crate) enum RawPassword {
    Inline,
    Keys {
        env: Option<Scalar>,
        file: Option<Scalar>,
    },
}

impl<'de> Deserialize<'de> for RawPassword {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = RawPassword;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("{env: VARIABLE} or {file: PATH}")
            }
            fn visit_str<E: de::Error>(self, _: &str) -> Result<RawPassword, E> {
                Ok(RawPassword::Inline)
            }
            fn visit_bool<E: de::Error>(self, _: bool) -> Result<RawPassword, E> {
                Ok(RawPassword::Inline)
            }
            fn visit_i64<E: de::Error>(self, _: i64) -> Result<RawPassword, E> {
                Ok(RawPassword::Inline)
            }
            fn visit_u64<E: de::Error>(self, _: u64) -> Result<RawPassword, E> {
                Ok(RawPassword::Inline)
            }
            fn visit_i128<E: de::Error>(self, _: i128) -> Result<RawPassword, E> {
                Ok(RawPassword::Inline)
            }
            fn visit_u128<E: de::Error>(self, _: u128) -> Result<RawPassword, E> {
                Ok(RawPassword::Inline)
            }
            fn visit_f64<E: de::Error>(self, _: f64) -> Result<RawPassword, E> {
                Ok(RawPassword::Inline)
            }
            fn visit_bytes<E: de::Error>(self, _: &[u8]) -> Result<RawPassword, E> {
                Ok(RawPassword::Inline)
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<RawPassword, A::Error> {
                let (mut env, mut file) = (None, None);
                while let Some(k) = map.next_key::<String>()? {
                    match k.as_str() {
                        "env" => env = map.next_value::<Option<Scalar>>()?,
                        "file" => file = map.next_value::<Option<Scalar>>()?,
                        _ => return Err(de::Error::unknown_field(&k, PASSWORD_KEYS)),
                    }
                }
                Ok(RawPassword::Keys { env, file })
            }
        }
        d.deserialize_any(V)
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawObjects {
    pub schemas: Option<Vec<Scalar>>,
    pub exclude: Option<Vec<Scalar>>,
    pub large_objects: Option<Scalar>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawCdc {
    pub tables_without_key: Option<Scalar>,
    pub ddl: Option<Scalar>,
    pub start_lsn: Option<Scalar>,
    pub slot: Option<Scalar>,
    pub memory_limit: Option<Scalar>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawPglogical {
    pub replication_set: Option<Scalar>,
    pub provider_dsn: Option<Scalar>,
    pub prefer: Option<Scalar>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawCutover {
    pub mode: Option<Scalar>,
    pub max_lag: Option<Scalar>,
    pub fence: Option<Scalar>,
    pub sequences: Option<Scalar>,
    pub verify: Option<Scalar>,
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The key lists used in hints are exactly what serde accepts.
    #[test]
    fn key_lists_match_the_structs() {
        let probes: &[(&str, &[&str])] = &[
            ("zzz: 1\n", TOP_KEYS),
            ("source: {zzz: 1}\n", SOURCE_KEYS),
            ("target: {zzz: 1}\n", TARGET_KEYS),
            ("source: {password: {zzz: 1}}\n", PASSWORD_KEYS),
            ("objects: {zzz: 1}\n", OBJECTS_KEYS),
            ("cdc: {zzz: 1}\n", CDC_KEYS),
            ("pglogical: {zzz: 1}\n", PGLOGICAL_KEYS),
            ("cutover: {zzz: 1}\n", CUTOVER_KEYS),
        ];
        for (yaml, keys) in probes {
            match serde_saphyr::from_str::<RawPlan>(yaml) {
                Err(e) => match e.without_snippet() {
                    serde_saphyr::Error::SerdeUnknownField { expected, .. } => {
                        assert_eq!(expected.as_slice(), *keys, "{yaml}")
                    }
                    other => panic!("{yaml}: {other}"),
                },
                Ok(_) => panic!("{yaml} accepted"),
            }
        }
    }

    /// docs/plan.md documents every key the parser takes, and no key it does not.
    #[test]
    fn the_plan_reference_documents_exactly_the_parsers_keys() {
        let doc = include_str!("../../docs/plan.md");
        let mut documented: Vec<String> = Vec::new();
        for line in doc.lines().filter(|l| l.starts_with("| `")) {
            let cell = line.split('|').nth(1).unwrap_or_default();
            for key in cell.split(',') {
                let key = key.trim().trim_matches('`');
                if !key.is_empty() {
                    documented.push(key.to_string());
                }
            }
        }
        let mut expected: Vec<String> = Vec::new();
        for (section, keys) in SECTIONS {
            for key in *keys {
                let k = match *section {
                    // a section is documented by its keys
                    "top level" if SECTIONS.iter().any(|(s, _)| s == key) => continue,
                    "top level" => key.to_string(),
                    // both servers' keys are documented once, as `*.key` (or per side)
                    "source" | "target"
                        if TARGET_KEYS.contains(key) && SOURCE_KEYS.contains(key) =>
                    {
                        format!("*.{key}")
                    }
                    "password" => continue, // `{env: NAME}` / `{file: PATH}`, in `*.password`
                    s => format!("{s}.{key}"),
                };
                let k = if k == "*.dsn" {
                    "source.dsn".to_string()
                } else {
                    k
                };
                if !expected.contains(&k) {
                    expected.push(k);
                }
            }
        }
        expected.push("target.dsn".to_string());
        for k in &expected {
            assert!(documented.contains(k), "docs/plan.md has no row for `{k}`");
        }
        for k in &documented {
            assert!(
                expected.contains(k),
                "docs/plan.md documents `{k}`, which the plan parser does not take"
            );
        }
        for form in ["{env: NAME}", "{file: PATH}"] {
            assert!(doc.contains(form), "docs/plan.md does not show `{form}`");
        }
    }
}
