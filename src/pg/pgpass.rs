//! The password file (`~/.pgpass` or `passfile`/`PGPASSFILE`), read as libpq reads it.

use std::path::Path;

use super::dsn::{ConnInfo, DsnError};

/// The password of the first line matching host, port, database and user, if any.
/// A missing file is no password. A file readable by group or others is ignored with a warning,
/// as libpq does.
pub fn lookup(path: &Path, info: &ConnInfo) -> Result<Option<String>, DsnError> {
    let meta = match std::fs::metadata(path) {
        Ok(m) => m,
        Err(_) => return Ok(None),
    };
    if !meta.is_file() {
        return Ok(None);
    }
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        if meta.permissions().mode() & 0o077 != 0 {
            tracing::warn!(
                file = %path.display(),
                "password file has group or world access; it is ignored. Fix: chmod 0600 {}",
                path.display()
            );
            return Ok(None);
        }
    }
    let text = std::fs::read_to_string(path).map_err(|e| DsnError {
        message: format!("cannot read password file {}: {e}", path.display()),
    })?;
    // libpq matches a socket connection against "localhost".
    let host = if info.is_socket() {
        "localhost"
    } else {
        info.host()
    };
    let port = info.port().to_string();
    Ok(find(&text, host, &port, info.dbname(), info.user()))
}

/// The password of the first matching line of a pass file's text.
pub fn find(text: &str, host: &str, port: &str, dbname: &str, user: &str) -> Option<String> {
    for line in text.lines() {
        if line.starts_with('#') || line.trim().is_empty() {
            continue;
        }
        let fields = split_fields(line);
        if fields.len() < 5 {
            continue;
        }
        let want = [host, port, dbname, user];
        if fields[..4]
            .iter()
            .zip(want)
            .all(|(f, w)| f.as_str() == "*" || f.as_str() == w)
        {
            return Some(fields[4].clone());
        }
    }
    None
}

/// Fields separated by ':', where `\:` and `\\` are literal. The fifth field takes the rest.
fn split_fields(line: &str) -> Vec<String> {
    let mut fields = vec![String::new()];
    let mut chars = line.chars();
    while let Some(c) = chars.next() {
        match c {
            '\\' => {
                if let Some(n) = chars.next() {
                    if let Some(last) = fields.last_mut() {
                        last.push(n);
                    }
                }
            }
            ':' if fields.len() < 5 => fields.push(String::new()),
            _ => {
                if let Some(last) = fields.last_mut() {
                    last.push(c);
                }
            }
        }
    }
    fields
}

#[cfg(test)]
mod tests {
    use super::*;

    const FILE: &str = "# comment\n\
        db1:5432:shop:alice:first\n\
        *:5432:*:bob:bob\\:pw\n\
        localhost:*:*:*:socket-pw\n\
        *:*:*:carol:c\\\\a:rest\n";

    #[test]
    fn matches_fields_and_wildcards() {
        assert_eq!(
            find(FILE, "db1", "5432", "shop", "alice").as_deref(),
            Some("first")
        );
        assert_eq!(find(FILE, "db1", "5432", "other", "alice"), None);
        assert_eq!(
            find(FILE, "any", "5432", "x", "bob").as_deref(),
            Some("bob:pw")
        );
        assert_eq!(
            find(FILE, "localhost", "6000", "x", "dave").as_deref(),
            Some("socket-pw")
        );
        assert_eq!(
            find(FILE, "h", "1", "d", "carol").as_deref(),
            Some("c\\a:rest")
        );
    }

    #[test]
    fn lookup_reads_a_private_file_and_ignores_an_open_one() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("pgpass");
        std::fs::write(&path, "h:5432:d:u:pw\n").expect("write");
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).expect("chmod");
        let info = ConnInfo::parse("host=h user=u dbname=d").expect("parses");
        assert_eq!(lookup(&path, &info).expect("reads").as_deref(), Some("pw"));
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).expect("chmod");
        assert_eq!(lookup(&path, &info).expect("reads"), None);
        assert_eq!(
            lookup(&dir.path().join("missing"), &info).expect("reads"),
            None
        );
    }

    #[test]
    fn resolve_uses_the_pass_file() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("pass");
        std::fs::write(&path, "h:5432:d:u:from-file\n").expect("write");
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).expect("chmod");
        let p = path.to_string_lossy().to_string();
        let env = move |k: &str| (k == "PGPASSFILE").then(|| p.clone());
        let info = ConnInfo::parse("host=h user=u dbname=d")
            .expect("parses")
            .resolve(&env)
            .expect("resolves");
        assert_eq!(
            info.password.as_ref().map(|s| s.expose()),
            Some("from-file")
        );
    }
}
