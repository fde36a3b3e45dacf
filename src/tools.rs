//! The PostgreSQL client programs pgmove runs (pg_dump, pg_restore, psql): where they
//! are and whether they are new enough.
//!
//! Asking a program for its version starts a process, and Debian's `pg_config` (a shell
//! script) three: a process asks each program once (the answer is kept by the program's path,
//! size and modification time, so a program replaced meanwhile is asked again), the places of
//! one search are asked at once, and [`warm`] asks for every program a command will need while
//! it does other work (the servers' inventories).

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Mutex, OnceLock};
use std::time::SystemTime;

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

/// Where the client programs are looked for: Debian's versioned installations
/// (`<debian_root>/*/bin`), `PATH` (`which`) and `pg_config --bindir` (the `pg_config` on
/// `PATH`). The machine's: [`Search::machine`]; the tests build their own.
#[derive(Clone, Debug)]
pub struct Search {
    /// `/usr/lib/postgresql` on the machine.
    pub debian_root: PathBuf,
    /// The `PATH` to search; `None`: the process's.
    pub path: Option<std::ffi::OsString>,
}

impl Search {
    /// This machine's places.
    pub fn machine() -> Search {
        Search {
            debian_root: PathBuf::from("/usr/lib/postgresql"),
            path: None,
        }
    }

    fn which(&self, name: &str) -> Option<PathBuf> {
        match &self.path {
            None => which::which(name).ok(),
            Some(p) => which::which_in(name, Some(p), "/").ok(),
        }
    }

    /// The directory `pg_config --bindir` prints, when a `pg_config` is on `PATH` (asked once
    /// per `pg_config` while it stays the same file).
    fn pg_config_bindir(&self) -> Option<PathBuf> {
        let pg_config = self.which("pg_config")?;
        let key = FileKey::of(&pg_config)?;
        static BINDIRS: OnceLock<Mutex<HashMap<FileKey, Option<PathBuf>>>> = OnceLock::new();
        let cache = BINDIRS.get_or_init(Default::default);
        if let Some(known) = cache.lock().ok().and_then(|c| c.get(&key).cloned()) {
            return known;
        }
        let dir = Command::new(&pg_config)
            .arg("--bindir")
            .output()
            .ok()
            .filter(|out| out.status.success())
            .map(|out| String::from_utf8_lossy(&out.stdout).trim().to_string())
            .filter(|dir| !dir.is_empty())
            .map(PathBuf::from);
        if let Ok(mut c) = cache.lock() {
            c.insert(key, dir.clone());
        }
        dir
    }

    /// Every place `name` may be, without duplicates: with `bin_dir`, only there; else
    /// Debian's versioned directories (newest first), `pg_config --bindir`, then `PATH`.
    fn candidates(&self, name: &str, bin_dir: Option<&Path>) -> Vec<PathBuf> {
        if let Some(d) = bin_dir {
            return vec![d.join(name)];
        }
        let mut out = Vec::new();
        if let Ok(rd) = std::fs::read_dir(&self.debian_root) {
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
        let from_debian = !out.is_empty();
        if let Some(d) = self.pg_config_bindir() {
            out.push(d.join(name));
        }
        if let Some(p) = self.which(name) {
            out.push(p);
        }
        let mut seen = std::collections::HashSet::new();
        out.retain(|p| {
            let real = std::fs::canonicalize(p).unwrap_or_else(|_| p.clone());
            // Debian's pg_wrapper (the `/usr/bin/pg_dump` of postgresql-common, a Perl script)
            // only runs one of `/usr/lib/postgresql/*/bin/<name>`, each a place of its own
            // above: asking it too costs a Perl start and finds nothing new.
            !(from_debian && is_debian_wrapper(&real)) && seen.insert(real)
        });
        out
    }
}

/// Whether `real` (a canonical path) is Debian's `pg_wrapper` of postgresql-common.
fn is_debian_wrapper(real: &Path) -> bool {
    real.file_name().is_some_and(|n| n == "pg_wrapper")
        && real
            .parent()
            .and_then(Path::file_name)
            .is_some_and(|d| d == "postgresql-common")
}

/// A program file as it is now: a program replaced (a package upgrade) is another key.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
struct FileKey {
    path: PathBuf,
    len: u64,
    modified: Option<SystemTime>,
}

impl FileKey {
    fn of(path: &Path) -> Option<FileKey> {
        let m = std::fs::metadata(path).ok()?;
        Some(FileKey {
            path: path.to_path_buf(),
            len: m.len(),
            modified: m.modified().ok(),
        })
    }
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

/// A program's version as printed (`15.18`) and its major version.
type Version = (String, u32);

/// `path --version`, parsed; asked once per program file and process ([`FileKey`]).
fn probe(path: &Path) -> Option<(String, u32)> {
    static VERSIONS: OnceLock<Mutex<HashMap<FileKey, Option<Version>>>> = OnceLock::new();
    let key = FileKey::of(path)?;
    let cache = VERSIONS.get_or_init(Default::default);
    if let Some(known) = cache.lock().ok().and_then(|c| c.get(&key).cloned()) {
        return known;
    }
    let version = Command::new(path)
        .arg("--version")
        .output()
        .ok()
        .filter(|out| out.status.success())
        .and_then(|out| parse_version(&String::from_utf8_lossy(&out.stdout)));
    if let Ok(mut c) = cache.lock() {
        c.insert(key, version.clone());
    }
    version
}

/// Every path of `list` that is a file, with its version (`None`: it did not say one), asked
/// all at once.
fn probe_all(list: &[PathBuf]) -> Vec<(&PathBuf, Option<(String, u32)>)> {
    let files: Vec<&PathBuf> = list.iter().filter(|p| p.is_file()).collect();
    std::thread::scope(|s| {
        let asked: Vec<_> = files
            .iter()
            .map(|p| (*p, s.spawn(move || probe(p))))
            .collect();
        asked
            .into_iter()
            .map(|(p, h)| (p, h.join().ok().flatten()))
            .collect()
    })
}

/// Asks every place for each of `names` now, all at once, so that the [`find`]s that follow
/// (with the same `bin_dir`) start no process. For a command to call on a blocking thread
/// while it waits for the servers.
pub fn warm(bin_dir: Option<&Path>, names: &[&str]) {
    let search = Search::machine();
    let list: Vec<PathBuf> = names
        .iter()
        .flat_map(|n| search.candidates(n, bin_dir))
        .collect();
    probe_all(&list);
}

/// Finds `name` with a major version of at least `min_major` (the source server's): the newest
/// on the machine. With `bin_dir` set, only that directory counts.
pub fn find(name: &str, bin_dir: Option<&Path>, min_major: u32) -> Result<Tool, ToolError> {
    find_in(&Search::machine(), name, bin_dir, min_major, min_major)
}

/// pg_dump and pg_restore for a source of major `source_major`: the newest pg_dump on the
/// machine that can dump it, and the pg_restore of the same installation (its directory).
pub fn find_dump_clients(
    bin_dir: Option<&Path>,
    source_major: u32,
) -> Result<(Tool, Tool), ToolError> {
    dump_clients_in(&Search::machine(), bin_dir, source_major)
}

/// [`find_dump_clients`] in the places of `search`.
pub fn dump_clients_in(
    search: &Search,
    bin_dir: Option<&Path>,
    source_major: u32,
) -> Result<(Tool, Tool), ToolError> {
    let pg_dump = find_in(search, "pg_dump", bin_dir, source_major, source_major)?;
    let dir = pg_dump.path.parent().unwrap_or(Path::new("/"));
    let pg_restore = find_in(search, "pg_restore", Some(dir), pg_dump.major, source_major)?;
    Ok((pg_dump, pg_restore))
}

/// Finds the newest `name` of at least `min_major` in the places of `search` (only `bin_dir`
/// when set); errors suggest the client package of `hint_major`.
pub fn find_in(
    search: &Search,
    name: &str,
    bin_dir: Option<&Path>,
    min_major: u32,
    hint_major: u32,
) -> Result<Tool, ToolError> {
    let list = search.candidates(name, bin_dir);
    let mut best: Option<Tool> = None;
    let mut newest_too_old: Option<Tool> = None;
    for (path, version) in probe_all(&list) {
        if let Some((version, major)) = version {
            let tool = Tool {
                name: name.to_string(),
                path: path.clone(),
                version,
                major,
            };
            let slot = if major >= min_major {
                &mut best
            } else {
                &mut newest_too_old
            };
            // The first of the newest major wins (the places are in order of preference).
            if slot.as_ref().is_none_or(|b| major > b.major) {
                *slot = Some(tool);
            }
        }
    }
    if let Some(t) = best {
        return Ok(t);
    }
    match newest_too_old {
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
        let tool = find_in(&Search::machine(), "vacuumdb", None, 0, 15)
            .expect("vacuumdb is installed for the tests");
        assert!(tool.path.ends_with("vacuumdb"), "{}", tool.path.display());
        let err = find_in(
            &Search::machine(),
            "vacuumdb",
            Some(Path::new("/nonexistent")),
            0,
            15,
        )
        .expect_err("bin_dir");
        let text = err.to_string();
        assert!(text.contains("/nonexistent/vacuumdb"), "{text}");
        assert!(
            text.contains("apt-get install postgresql-client-15,"),
            "{text}"
        );
        // No server version known: the distribution's default package, never `-0`.
        let err = find_in(
            &Search::machine(),
            "vacuumdb",
            Some(Path::new("/nonexistent")),
            0,
            0,
        )
        .expect_err("bin_dir");
        let text = err.to_string();
        assert!(
            text.contains("apt-get install postgresql-client,"),
            "{text}"
        );
        assert!(!text.contains("postgresql-client-0"), "{text}");
    }

    /// Writes an executable `dir/name` printing `name (PostgreSQL) version`.
    fn fake(dir: &Path, name: &str, version: &str) {
        use std::os::unix::fs::PermissionsExt;
        std::fs::create_dir_all(dir).expect("mkdir");
        let p = dir.join(name);
        std::fs::write(
            &p,
            format!("#!/bin/sh\necho '{name} (PostgreSQL) {version}'\n"),
        )
        .expect("write");
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o755)).expect("chmod");
    }

    /// A machine with Debian's 13 and 15, a 17 on PATH and a 16 behind pg_config.
    fn machine(root: &Path) -> Search {
        for (major, v) in [("13", "13.16"), ("15", "15.18")] {
            let bin = root.join("debian").join(major).join("bin");
            fake(&bin, "pg_dump", v);
            fake(&bin, "pg_restore", v);
        }
        let path17 = root.join("opt17");
        fake(&path17, "pg_dump", "17.2");
        fake(&path17, "pg_restore", "17.2");
        let pg16 = root.join("pg16");
        fake(&pg16, "pg_dump", "16.6");
        fake(&pg16, "pg_restore", "16.6");
        let tools = root.join("tools");
        std::fs::create_dir_all(&tools).expect("mkdir");
        let cfg = tools.join("pg_config");
        std::fs::write(&cfg, format!("#!/bin/sh\necho '{}'\n", pg16.display())).expect("write");
        {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(&cfg, std::fs::Permissions::from_mode(0o755)).expect("chmod");
        }
        Search {
            debian_root: root.join("debian"),
            path: Some(std::env::join_paths([tools, path17]).expect("path")),
        }
    }

    #[test]
    fn the_newest_pg_dump_is_chosen_with_the_pg_restore_of_its_installation() {
        let dir = tempfile::tempdir().expect("tempdir");
        let search = machine(dir.path());
        // The newest of all places (PATH's 17), whatever the source.
        for source in [9, 10, 15, 17] {
            let (dump, restore) = dump_clients_in(&search, None, source).expect("found");
            assert_eq!(dump.version, "17.2", "source {source}");
            assert_eq!(dump.path, dir.path().join("opt17/pg_dump"));
            assert_eq!(restore.path, dir.path().join("opt17/pg_restore"));
        }
        // pg_config --bindir is one of the places: without PATH's 17, its 16 wins over 15.
        std::fs::remove_file(dir.path().join("opt17/pg_dump")).expect("rm");
        let (dump, restore) = dump_clients_in(&search, None, 10).expect("found");
        assert_eq!(dump.path, dir.path().join("pg16/pg_dump"));
        assert_eq!(restore.path, dir.path().join("pg16/pg_restore"));
        // A source newer than every pg_dump: the newest is named, with the package to install.
        let err = dump_clients_in(&search, None, 18).expect_err("too new");
        let text = err.to_string();
        assert!(text.contains("pg_dump 16.6 at"), "{text}");
        assert!(
            text.contains("older than the source server (PostgreSQL 18)"),
            "{text}"
        );
        assert!(
            text.contains("apt-get install postgresql-client-18"),
            "{text}"
        );
        // bin_dir: only there, even when newer ones exist elsewhere.
        let bin13 = dir.path().join("debian/13/bin");
        let (dump, restore) = dump_clients_in(&search, Some(&bin13), 12).expect("found");
        assert_eq!((dump.major, restore.major), (13, 13));
        let err = dump_clients_in(&search, Some(&bin13), 15).expect_err("too old");
        assert!(err.to_string().contains("postgresql-client-15"), "{err}");
        // An installation without pg_restore is not half used.
        std::fs::remove_file(dir.path().join("pg16/pg_restore")).expect("rm");
        let err = dump_clients_in(&search, None, 10).expect_err("no pg_restore there");
        let text = err.to_string();
        assert!(text.contains("pg_restore not found"), "{text}");
        assert!(
            text.contains(&dir.path().join("pg16/pg_restore").display().to_string()),
            "{text}"
        );
    }

    /// Writes an executable `dir/name` that prints `name (PostgreSQL) version` and adds a line
    /// to `dir/name.calls` each time it runs.
    fn counting(dir: &Path, name: &str, version: &str) -> PathBuf {
        use std::os::unix::fs::PermissionsExt;
        std::fs::create_dir_all(dir).expect("mkdir");
        let p = dir.join(name);
        let calls = dir.join(format!("{name}.calls"));
        std::fs::write(
            &p,
            format!(
                "#!/bin/sh\necho run >> '{}'\necho '{name} (PostgreSQL) {version}'\n",
                calls.display()
            ),
        )
        .expect("write");
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o755)).expect("chmod");
        calls
    }

    fn runs(calls: &Path) -> usize {
        std::fs::read_to_string(calls)
            .map(|s| s.lines().count())
            .unwrap_or(0)
    }

    #[test]
    fn a_program_is_asked_its_version_once_until_it_changes() {
        let dir = tempfile::tempdir().expect("tempdir");
        let bin = dir.path().join("debian/15/bin");
        let calls = counting(&bin, "pg_dump", "15.18");
        let search = Search {
            debian_root: dir.path().join("debian"),
            path: Some(dir.path().join("empty").into_os_string()),
        };
        for _ in 0..3 {
            let t = find_in(&search, "pg_dump", None, 15, 15).expect("found");
            assert_eq!(t.version, "15.18");
        }
        assert_eq!(runs(&calls), 1, "asked once for three lookups");
        // Replaced (a package upgrade): asked again, and its new version counts.
        std::fs::remove_file(&calls).expect("rm");
        counting(&bin, "pg_dump", "15.19-with-a-longer-version");
        let t = find_in(&search, "pg_dump", None, 15, 15).expect("found");
        assert_eq!(t.version, "15.19-with-a-longer-version");
        assert_eq!(runs(&calls), 1);
    }

    #[test]
    fn debians_pg_wrapper_is_not_asked_when_the_versioned_directories_are() {
        let dir = tempfile::tempdir().expect("tempdir");
        let wrapper_dir = dir.path().join("share/postgresql-common");
        let wrapper_calls = counting(&wrapper_dir, "pg_wrapper", "15.18");
        let on_path = dir.path().join("usr-bin");
        std::fs::create_dir_all(&on_path).expect("mkdir");
        std::os::unix::fs::symlink(wrapper_dir.join("pg_wrapper"), on_path.join("pg_dump"))
            .expect("symlink");
        let debian_calls = counting(&dir.path().join("debian/15/bin"), "pg_dump", "15.18");
        let search = Search {
            debian_root: dir.path().join("debian"),
            path: Some(on_path.clone().into_os_string()),
        };
        let t = find_in(&search, "pg_dump", None, 15, 15).expect("found");
        assert_eq!(t.path, dir.path().join("debian/15/bin/pg_dump"));
        assert_eq!(runs(&debian_calls), 1);
        assert_eq!(runs(&wrapper_calls), 0, "the wrapper runs a versioned one");
        // Without Debian's versioned directories the wrapper is the only place: asked.
        let search = Search {
            debian_root: dir.path().join("none"),
            path: Some(on_path.into_os_string()),
        };
        let t = find_in(&search, "pg_dump", None, 15, 15).expect("found");
        assert_eq!(t.path, dir.path().join("usr-bin/pg_dump"));
        assert_eq!(runs(&wrapper_calls), 1);
    }

    #[test]
    fn nothing_installed_names_every_place_looked() {
        let dir = tempfile::tempdir().expect("tempdir");
        let search = Search {
            debian_root: dir.path().join("none"),
            path: Some(dir.path().as_os_str().to_owned()),
        };
        let err = dump_clients_in(&search, None, 16).expect_err("nothing");
        let text = err.to_string();
        assert!(text.contains("pg_dump not found"), "{text}");
        assert!(text.contains("postgresql-client-16"), "{text}");
    }
}
