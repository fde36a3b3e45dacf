//! The local directory that holds a plan's dump, and the rules that keep it private and keep
//! pgmove away from directories it did not create.
//!
//! - The default location is [`crate::plan::default_dump_dir`]: under the user's cache
//!   directory, keyed by the plan name and both endpoints.
//! - Every directory pgmove creates is mode 0700, and a directory is used only when it is owned
//!   by the user running pgmove and not writable by group or others (another user could swap
//!   the dump that is then restored into the target).
//! - pgmove writes a marker file [`MARKER`] into the directory naming the plan and both
//!   endpoints. Only a directory whose marker names this plan and these endpoints is ever
//!   emptied or removed; a directory that existed (empty) before pgmove wrote its marker is
//!   emptied of what pgmove wrote, never removed itself. A non-empty directory without the
//!   marker is refused, untouched.
//! - The dump itself is the subdirectory [`DUMP_SUBDIR`] (`pg_dump -Fd` wants a new directory).

use std::io::{Read, Write};
use std::os::unix::fs::{DirBuilderExt, MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use crate::pg::ConnInfo;

/// The marker file pgmove writes into every dump directory it uses.
pub const MARKER: &str = "pgmove-dump-dir";
/// The subdirectory `pg_dump` writes the dump into.
pub const DUMP_SUBDIR: &str = "dump";
/// A marker is a few lines; anything larger is not pgmove's.
const MAX_MARKER_BYTES: u64 = 4096;

/// Whose dump a directory holds: the plan and both endpoints (`host:port/database`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Owner {
    pub plan: String,
    pub source: String,
    pub target: String,
}

impl Owner {
    pub fn new(plan: &str, source: &ConnInfo, target: &ConnInfo) -> Owner {
        Owner {
            plan: plan.to_string(),
            source: crate::plan::endpoint_key(source),
            target: crate::plan::endpoint_key(target),
        }
    }

    fn marker_text(&self, created: bool) -> String {
        format!(
            "pgmove dump directory: pgmove removes it (`pgmove cleanup`, or apply after success) only while this file names its plan and endpoints\nplan: {}\nsource: {}\ntarget: {}\ncreated: {}\n",
            self.plan,
            self.source,
            self.target,
            if created { "yes" } else { "no" }
        )
    }

    fn describe(&self) -> String {
        format!("plan {} from {} to {}", self.plan, self.source, self.target)
    }
}

/// A marker read back: whose directory it is and whether pgmove created the directory.
fn parse_marker(text: &str) -> Option<(Owner, bool)> {
    let field = |key: &str| {
        text.lines()
            .find_map(|l| l.strip_prefix(key).and_then(|v| v.strip_prefix(": ")))
            .map(str::to_string)
    };
    let owner = Owner {
        plan: field("plan")?,
        source: field("source")?,
        target: field("target")?,
    };
    let created = match field("created")?.as_str() {
        "yes" => true,
        "no" => false,
        _ => return None,
    };
    Some((owner, created))
}

/// Why a directory is not used (or not removed); nothing was touched.
#[derive(Debug, thiserror::Error)]
pub enum DirError {
    /// The directory as it is cannot be pgmove's: `reason` and the exact fix.
    #[error("{reason}\n  hint: {hint}")]
    Refused { reason: String, hint: String },
    #[error("{0}")]
    Io(String),
}

impl DirError {
    fn refused(reason: String, hint: impl Into<String>) -> DirError {
        DirError::Refused {
            reason,
            hint: hint.into(),
        }
    }
}

/// What a directory is, read without changing anything.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum DirState {
    /// Does not exist: pgmove creates it (0700) with its marker.
    Missing,
    /// Carries this plan's marker; `created`: pgmove created the directory itself.
    Ours { created: bool },
    /// Exists, private, empty and without a marker: pgmove writes into it, never removes it.
    Empty,
}

#[allow(unsafe_code)]
fn euid() -> u32 {
    // SAFETY: geteuid has no preconditions and cannot fail.
    unsafe { libc::geteuid() }
}

/// Refuses a directory another user owns or may write into.
pub fn check_private(dir: &Path) -> Result<(), DirError> {
    let meta = std::fs::symlink_metadata(dir)
        .map_err(|e| DirError::Io(format!("cannot read {}: {e}", dir.display())))?;
    if meta.file_type().is_symlink() {
        return Err(DirError::refused(
            format!("the dump directory {} is a symbolic link", dir.display()),
            "give the real directory's path (pgmove follows no link for the dump it restores)",
        ));
    }
    if !meta.is_dir() {
        return Err(DirError::refused(
            format!("{} exists and is not a directory", dir.display()),
            "give the path of a directory for the dump (a new one is best)",
        ));
    }
    let me = euid();
    if meta.uid() != me {
        return Err(DirError::refused(
            format!(
                "the dump directory {} belongs to uid {}, not to the user running pgmove (uid {me}): another user could read the dump or replace it before it is restored",
                dir.display(),
                meta.uid()
            ),
            format!(
                "give a directory of your own with --dump-dir; if {} is a leftover at pgmove's default place, have its owner (or root) remove it",
                dir.display()
            ),
        ));
    }
    let mode = meta.mode() & 0o7777;
    if mode & 0o022 != 0 {
        let who = match (mode & 0o020 != 0, mode & 0o002 != 0) {
            (true, true) => "its group and all users",
            (true, false) => "its group",
            _ => "all users",
        };
        return Err(DirError::refused(
            format!(
                "the dump directory {} is writable by {who} (mode {mode:04o}): they could replace the dump before it is restored",
                dir.display()
            ),
            format!("chmod 700 {}", dir.display()),
        ));
    }
    Ok(())
}

fn read_marker(dir: &Path) -> Result<Option<String>, DirError> {
    let path = dir.join(MARKER);
    let file = match std::fs::File::open(&path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(DirError::Io(format!("cannot read {}: {e}", path.display()))),
    };
    let mut bytes = Vec::new();
    file.take(MAX_MARKER_BYTES)
        .read_to_end(&mut bytes)
        .map_err(|e| DirError::Io(format!("cannot read {}: {e}", path.display())))?;
    Ok(Some(String::from_utf8_lossy(&bytes).into_owned()))
}

/// What `dir` is for `owner`, without changing anything. Refused: another user's or a
/// group/other-writable directory, a symbolic link, another plan's marker, or a non-empty
/// directory without the marker.
pub fn inspect(dir: &Path, owner: &Owner) -> Result<DirState, DirError> {
    let meta = match std::fs::symlink_metadata(dir) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(DirState::Missing),
        Err(e) => return Err(DirError::Io(format!("cannot read {}: {e}", dir.display()))),
        Ok(m) => m,
    };
    // A directory with content and no marker is refused as not pgmove's first, whoever owns
    // it (`--dump-dir /tmp`); one pgmove cannot list is judged by its owner and mode.
    let marker = read_marker(dir);
    let empty = std::fs::read_dir(dir).map(|mut e| e.next().is_none());
    if meta.is_dir() && matches!((&marker, &empty), (Ok(None), Ok(false))) {
        return Err(not_pgmoves(dir, owner));
    }
    check_private(dir)?;
    if let Some(text) = marker? {
        return match parse_marker(&text) {
            Some((o, created)) if &o == owner => Ok(DirState::Ours { created }),
            Some((o, _)) => Err(DirError::refused(
                format!(
                    "the dump directory {} holds the dump of {}, not of {}",
                    dir.display(),
                    o.describe(),
                    owner.describe()
                ),
                "give this plan its own directory with --dump-dir, or remove that one once its move is done (`pgmove cleanup` with its plan)",
            )),
            None => Err(DirError::refused(
                format!(
                    "the dump directory {} has a {MARKER} file pgmove cannot read",
                    dir.display()
                ),
                "give a new or empty directory with --dump-dir",
            )),
        };
    }
    match empty {
        Ok(true) => Ok(DirState::Empty),
        Ok(false) => Err(not_pgmoves(dir, owner)),
        Err(e) => Err(DirError::Io(format!("cannot list {}: {e}", dir.display()))),
    }
}

/// The refusal of a non-empty directory without the marker.
fn not_pgmoves(dir: &Path, owner: &Owner) -> DirError {
    DirError::refused(
        format!(
            "{} is not empty and has no {MARKER} marker: pgmove did not create it and will not write into it or remove it (nothing was touched)",
            dir.display()
        ),
        format!(
            "give a new or empty directory, e.g. --dump-dir {}",
            dir.join(format!("pgmove-{}", sanitize(&owner.plan))).display()
        ),
    )
}

fn sanitize(s: &str) -> String {
    s.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                c
            } else {
                '_'
            }
        })
        .collect()
}

/// Creates `dir` (0700) if it is missing, or checks the one that is there is private.
fn ensure_private(dir: &Path) -> Result<(), DirError> {
    match std::fs::DirBuilder::new().mode(0o700).create(dir) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => check_private(dir),
        Err(e) => Err(DirError::Io(format!(
            "cannot create {}: {e}",
            dir.display()
        ))),
    }
}

fn write_marker(dir: &Path, owner: &Owner, created: bool) -> Result<(), DirError> {
    let path = dir.join(MARKER);
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&path)
        .map_err(|e| DirError::Io(format!("cannot write {}: {e}", path.display())))?;
    f.write_all(owner.marker_text(created).as_bytes())
        .and_then(|()| f.sync_all())
        .map_err(|e| DirError::Io(format!("cannot write {}: {e}", path.display())))
}

/// Makes `dir` ready for `owner`'s dump and returns where pg_dump writes (`dir/dump`).
/// `default`: `dir` is the default location, whose two parents (`pgmove/dumps`) pgmove owns
/// too and checks the same way.
pub fn prepare(dir: &Path, owner: &Owner, default: bool) -> Result<PathBuf, DirError> {
    if default {
        let parents: Vec<&Path> = dir.ancestors().skip(1).take(2).collect();
        if let Some(top) = parents.last().and_then(|p| p.parent()) {
            std::fs::DirBuilder::new()
                .recursive(true)
                .mode(0o700)
                .create(top)
                .map_err(|e| DirError::Io(format!("cannot create {}: {e}", top.display())))?;
        }
        for p in parents.iter().rev() {
            ensure_private(p)?;
        }
    }
    match inspect(dir, owner)? {
        DirState::Ours { .. } => {}
        DirState::Empty => write_marker(dir, owner, false)?,
        DirState::Missing => {
            if let Some(parent) = dir.parent() {
                std::fs::DirBuilder::new()
                    .recursive(true)
                    .mode(0o700)
                    .create(parent)
                    .map_err(|e| {
                        DirError::Io(format!("cannot create {}: {e}", parent.display()))
                    })?;
            }
            match std::fs::DirBuilder::new().mode(0o700).create(dir) {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                    return Err(DirError::refused(
                        format!(
                            "the dump directory {} appeared while pgmove was creating it",
                            dir.display()
                        ),
                        "check who else uses that path, then run again",
                    ))
                }
                Err(e) => {
                    return Err(DirError::Io(format!(
                        "cannot create the dump directory {}: {e}",
                        dir.display()
                    )))
                }
            }
            write_marker(dir, owner, true)?;
        }
    }
    Ok(dir.join(DUMP_SUBDIR))
}

/// What [`remove`] did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Removal {
    /// Nothing of pgmove's was there (missing, or an empty directory without the marker).
    Nothing,
    /// The directory pgmove created, removed whole.
    Removed,
    /// A directory that existed before: the dump and the marker removed, the directory kept.
    Emptied,
}

/// Removes what pgmove put in `dir` for `owner`, only when its marker says so (refused
/// otherwise, nothing touched).
pub fn remove(dir: &Path, owner: &Owner) -> Result<Removal, DirError> {
    let gone = |r: std::io::Result<()>, p: &Path| match r {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(DirError::Io(format!("cannot remove {}: {e}", p.display()))),
    };
    match inspect(dir, owner)? {
        DirState::Missing | DirState::Empty => Ok(Removal::Nothing),
        DirState::Ours { created: true } => {
            gone(std::fs::remove_dir_all(dir), dir)?;
            Ok(Removal::Removed)
        }
        DirState::Ours { created: false } => {
            let dump = dir.join(DUMP_SUBDIR);
            gone(std::fs::remove_dir_all(&dump), &dump)?;
            let marker = dir.join(MARKER);
            gone(std::fs::remove_file(&marker), &marker)?;
            Ok(Removal::Emptied)
        }
    }
}

/// The shell command equivalent to [`remove`] for a directory in `state`, for dry runs.
pub fn removal_command(dir: &Path, state: &DirState) -> Option<String> {
    let q = |p: &Path| crate::cleanup::shell_quote(p);
    match state {
        DirState::Ours { created: true } => Some(format!("rm -r {}", q(dir))),
        DirState::Ours { created: false } => Some(format!(
            "rm -r {} {}",
            q(&dir.join(DUMP_SUBDIR)),
            q(&dir.join(MARKER))
        )),
        DirState::Missing | DirState::Empty => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    fn owner(plan: &str) -> Owner {
        Owner {
            plan: plan.into(),
            source: "h1:5432/a".into(),
            target: "h2:5432/b".into(),
        }
    }

    fn mode(p: &Path) -> u32 {
        std::fs::metadata(p).expect("stat").permissions().mode() & 0o7777
    }

    #[test]
    fn the_default_directory_and_its_parents_are_created_private_with_the_marker() {
        let home = tempfile::tempdir().expect("tempdir");
        let dir = home.path().join("cache/pgmove/dumps/shop-0123");
        let o = owner("shop");
        assert_eq!(inspect(&dir, &o).expect("inspect"), DirState::Missing);
        let dump = prepare(&dir, &o, true).expect("prepare");
        assert_eq!(dump, dir.join("dump"));
        for p in [
            dir.clone(),
            home.path().join("cache/pgmove/dumps"),
            home.path().join("cache/pgmove"),
        ] {
            assert_eq!(mode(&p), 0o700, "{}", p.display());
        }
        let marker = std::fs::read_to_string(dir.join(MARKER)).expect("marker");
        assert!(
            marker.contains("plan: shop\nsource: h1:5432/a\ntarget: h2:5432/b\ncreated: yes\n"),
            "{marker}"
        );
        assert_eq!(mode(&dir.join(MARKER)), 0o600);
        assert_eq!(
            inspect(&dir, &o).expect("inspect"),
            DirState::Ours { created: true }
        );
        // Another plan (or the same name on other endpoints) is refused.
        let mut other = o.clone();
        other.target = "h3:5432/b".into();
        let e = inspect(&dir, &other).expect_err("another plan's");
        assert!(
            e.to_string()
                .contains("holds the dump of plan shop from h1:5432/a to h2:5432/b"),
            "{e}"
        );
        std::fs::create_dir(&dump).expect("dump");
        std::fs::write(dump.join("toc.dat"), "x").expect("write");
        assert_eq!(remove(&dir, &o).expect("remove"), Removal::Removed);
        assert!(!dir.exists());
        assert!(home.path().join("cache/pgmove/dumps").is_dir());
    }

    #[test]
    fn a_parent_writable_by_others_is_refused() {
        let home = tempfile::tempdir().expect("tempdir");
        let dumps = home.path().join("pgmove/dumps");
        std::fs::create_dir_all(&dumps).expect("mkdir");
        std::fs::set_permissions(&dumps, std::fs::Permissions::from_mode(0o777)).expect("chmod");
        let e = prepare(&dumps.join("shop-1"), &owner("shop"), true).expect_err("shared parent");
        assert!(matches!(e, DirError::Refused { .. }), "{e:?}");
        assert!(
            e.to_string()
                .contains("writable by its group and all users (mode 0777)"),
            "{e}"
        );
        assert!(
            e.to_string()
                .contains(&format!("hint: chmod 700 {}", dumps.display())),
            "{e}"
        );
        assert!(!dumps.join("shop-1").exists());
    }

    #[test]
    fn a_non_empty_directory_without_the_marker_is_refused_and_untouched() {
        let d = tempfile::tempdir().expect("tempdir");
        std::fs::write(d.path().join("precious"), "keep").expect("write");
        let o = owner("shop");
        let e = prepare(d.path(), &o, false).expect_err("not ours");
        assert!(
            e.to_string()
                .contains("is not empty and has no pgmove-dump-dir marker"),
            "{e}"
        );
        assert!(
            e.to_string()
                .contains("hint: give a new or empty directory"),
            "{e}"
        );
        let e = remove(d.path(), &o).expect_err("not ours");
        assert!(matches!(e, DirError::Refused { .. }), "{e:?}");
        // Like `--dump-dir /tmp`: refused as not pgmove's, never with advice to chmod it.
        std::fs::set_permissions(d.path(), std::fs::Permissions::from_mode(0o1777)).expect("chmod");
        let e = prepare(d.path(), &o, false).expect_err("shared and not ours");
        assert!(e.to_string().contains("is not empty and has no"), "{e}");
        assert!(!e.to_string().contains("chmod"), "{e}");
        let names: Vec<_> = std::fs::read_dir(d.path())
            .expect("ls")
            .map(|e| e.expect("entry").file_name())
            .collect();
        assert_eq!(names, ["precious"]);
    }

    #[test]
    fn a_pre_existing_empty_directory_is_emptied_never_removed() {
        let d = tempfile::tempdir().expect("tempdir");
        let o = owner("shop");
        assert_eq!(inspect(d.path(), &o).expect("inspect"), DirState::Empty);
        let dump = prepare(d.path(), &o, false).expect("prepare");
        assert_eq!(
            inspect(d.path(), &o).expect("inspect"),
            DirState::Ours { created: false }
        );
        std::fs::create_dir(&dump).expect("dump");
        std::fs::write(dump.join("toc.dat"), "x").expect("write");
        assert_eq!(remove(d.path(), &o).expect("remove"), Removal::Emptied);
        assert!(d.path().is_dir());
        assert_eq!(std::fs::read_dir(d.path()).expect("ls").count(), 0);
        assert_eq!(remove(d.path(), &o).expect("again"), Removal::Nothing);
        assert!(d.path().is_dir());
    }

    #[test]
    fn a_symlink_is_refused() {
        let d = tempfile::tempdir().expect("tempdir");
        let real = d.path().join("real");
        std::fs::create_dir(&real).expect("mkdir");
        let link = d.path().join("link");
        std::os::unix::fs::symlink(&real, &link).expect("symlink");
        let e = prepare(&link, &owner("shop"), false).expect_err("link");
        assert!(e.to_string().contains("is a symbolic link"), "{e}");
    }
}
