//! The PostgreSQL client programs pgmove runs (pg_dump, pg_restore, psql, vacuumdb): where they
//! are and whether they are new enough.

use std::path::{Path, PathBuf};
use std::process::Command;

/// A client program that was found and asked for its version.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct Tool {
    pub name: String,
    pub path: PathBuf,
    /// As printed, e.g. `15.18`.
    pub version: String,
    pub major: u32,
}

#[derive(Debug, thiserror::Error)]
pub enum ToolError {
    #[error("{name} not found (looked in {looked}).\n  hint: install the PostgreSQL client: apt-get install {}, or set bin_dir in the plan", package(*.want))]
    NotFound {
        name: String,
        looked: String,
        /// The major version whose client package to suggest; 0 when none is known.
        want: u32,
    },
    #[error("{name} {version} at {path} is older than the source server (PostgreSQL {want}); pg_dump must be at least the server's major version.\n  hint: apt-get install postgresql-client-{want}, or set bin_dir to its bin directory (e.g. /usr/lib/postgresql/{want}/bin)")]
    TooOld {
        name: String,
        version: String,
        path: String,
        want: u32,
    },
}

/// The Debian package with the client programs of major version `major`: `postgresql-client-15`,
/// or the distribution's default `postgresql-client` when no version is known (there is no
/// `postgresql-client-0`).
pub fn package(major: u32) -> String {
    if major == 0 {
        "postgresql-client".to_string()
    } else {
        format!("postgresql-client-{major}")
    }
}

/// Directories to look in, best first: the plan's `bin_dir`, Debian's versioned directories
/// (newest first), then `PATH`.
fn candidates(name: &str, bin_dir: Option<&Path>) -> Vec<PathBuf> {
    let mut out = Vec::new();
    if let Some(d) = bin_dir {
        out.push(d.join(name));
    }
    if let Ok(rd) = std::fs::read_dir("/usr/lib/postgresql") {
        let mut dirs: Vec<(u32, PathBuf)> = rd
            .filter_map(|e| e.ok())
            .filter_map(|e| {
                let v = e.file_name().to_string_lossy().parse::<u32>().ok()?;
                Some((v, e.path().join("bin").join(name)))
            })
            .collect();
        dirs.sort_by_key(|d| std::cmp::Reverse(d.0));
        out.extend(dirs.into_iter().map(|(_, p)| p));
    }
    if let Ok(p) = which::which(name) {
        out.push(p);
    }
    out
}

/// Parses `pg_dump (PostgreSQL) 15.18 (Debian 15.18-0+deb12u1)` into (`15.18`, 15).
pub fn parse_version(output: &str) -> Option<(String, u32)> {
    let after = output.split(')').nth(1)?.trim();
    let version = after.split_whitespace().next()?.to_string();
    let major = version
        .split(|c: char| !c.is_ascii_digit())
        .next()?
        .parse()
        .ok()?;
    Some((version, major))
}

fn probe(path: &Path) -> Option<(String, u32)> {
    let out = Command::new(path).arg("--version").output().ok()?;
    if !out.status.success() {
        return None;
    }
    parse_version(&String::from_utf8_lossy(&out.stdout))
}

/// Finds `name` with a major version of at least `min_major` (the source server's).
/// With `bin_dir` set, only that directory counts.
pub fn find(name: &str, bin_dir: Option<&Path>, min_major: u32) -> Result<Tool, ToolError> {
    find_with_hint(name, bin_dir, min_major, min_major)
}

/// Finds `name` of any version (vacuumdb, psql: they work with servers of other versions); when
/// it is missing, the hint names the client package of `server_major` (the server it will talk
/// to; 0 when unknown).
pub fn find_any(name: &str, bin_dir: Option<&Path>, server_major: u32) -> Result<Tool, ToolError> {
    find_with_hint(name, bin_dir, 0, server_major)
}

fn find_with_hint(
    name: &str,
    bin_dir: Option<&Path>,
    min_major: u32,
    hint_major: u32,
) -> Result<Tool, ToolError> {
    let list = if bin_dir.is_some() {
        candidates(name, bin_dir).into_iter().take(1).collect()
    } else {
        candidates(name, None)
    };
    let mut too_old: Option<Tool> = None;
    for path in &list {
        if !path.is_file() {
            continue;
        }
        if let Some((version, major)) = probe(path) {
            let tool = Tool {
                name: name.to_string(),
                path: path.clone(),
                version,
                major,
            };
            if major >= min_major {
                return Ok(tool);
            }
            if too_old.is_none() {
                too_old = Some(tool);
            }
        }
    }
    match too_old {
        Some(t) => Err(ToolError::TooOld {
            name: t.name,
            version: t.version,
            path: t.path.display().to_string(),
            want: min_major,
        }),
        None => Err(ToolError::NotFound {
            name: name.to_string(),
            looked: list
                .iter()
                .map(|p| p.display().to_string())
                .collect::<Vec<_>>()
                .join(", "),
            want: hint_major,
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_client_versions() {
        assert_eq!(
            parse_version("pg_dump (PostgreSQL) 15.18 (Debian 15.18-0+deb12u1)\n"),
            Some(("15.18".to_string(), 15))
        );
        assert_eq!(
            parse_version("pg_restore (PostgreSQL) 16beta2"),
            Some(("16beta2".to_string(), 16))
        );
        assert_eq!(
            parse_version("psql (PostgreSQL) 9.6.24"),
            Some(("9.6.24".to_string(), 9))
        );
        assert_eq!(parse_version("garbage"), None);
    }

    #[test]
    fn finds_the_installed_pg_dump_and_refuses_a_too_new_server() {
        let tool = find("pg_dump", None, 10).expect("pg_dump is installed for the tests");
        assert!(tool.major >= 15);
        let err = find("pg_dump", None, 99).expect_err("no pg_dump 99");
        let text = err.to_string();
        assert!(text.contains("older than the source server"), "{text}");
        assert!(text.contains("postgresql-client-99"), "{text}");
        let err = find("pg_dump", Some(Path::new("/nonexistent")), 10).expect_err("bin_dir");
        assert!(err.to_string().contains("/nonexistent/pg_dump"));
    }

    #[test]
    fn vacuumdb_is_found_and_a_missing_tool_names_a_real_package() {
        let tool = find_any("vacuumdb", None, 15).expect("vacuumdb is installed for the tests");
        assert!(tool.path.ends_with("vacuumdb"), "{}", tool.path.display());
        let err = find_any("vacuumdb", Some(Path::new("/nonexistent")), 15).expect_err("bin_dir");
        let text = err.to_string();
        assert!(text.contains("/nonexistent/vacuumdb"), "{text}");
        assert!(
            text.contains("apt-get install postgresql-client-15,"),
            "{text}"
        );
        // No server version known: the distribution's default package, never `-0`.
        let err = find_any("vacuumdb", Some(Path::new("/nonexistent")), 0).expect_err("bin_dir");
        let text = err.to_string();
        assert!(
            text.contains("apt-get install postgresql-client,"),
            "{text}"
        );
        assert!(!text.contains("postgresql-client-0"), "{text}");
    }
}
