//! A DSN as the user typed it, without its password: the starter plan keeps every other
//! setting of the DSN (hosts, ports, options) and names an environment variable instead.

use crate::pg::ConnInfo;

/// `dsn` without its password (URI user info or `password` parameter; `password=...` of a
/// key=value string). Checked: the result parses to the same connection settings as `dsn`
/// but for the password; `None` when it would not (the caller asks for a DSN without one).
pub fn without_password(dsn: &str) -> Option<String> {
    let t = dsn.trim();
    let stripped = if t.starts_with("postgres://") || t.starts_with("postgresql://") {
        strip_uri(t)
    } else {
        strip_keyword_value(t)?
    };
    let mut original = ConnInfo::parse(t).ok()?;
    let mut again = ConnInfo::parse(&stripped).ok()?;
    if again.password.is_some() {
        return None;
    }
    original.password = None;
    again.password = None;
    (original == again).then_some(stripped)
}

/// The URI without `:password` in its user info nor `password=` in its query.
fn strip_uri(uri: &str) -> String {
    let (scheme, rest) = uri.split_once("://").unwrap_or(("postgres", uri));
    let authority_end = rest.find(['/', '?']).unwrap_or(rest.len());
    let (authority, tail) = rest.split_at(authority_end);
    let authority = match authority.rfind('@') {
        Some(at) => {
            let (userinfo, hosts) = authority.split_at(at);
            let user = userinfo.split(':').next().unwrap_or("");
            format!("{user}{hosts}")
        }
        None => authority.to_string(),
    };
    let tail = match tail.split_once('?') {
        Some((path, query)) => {
            let kept: Vec<&str> = query
                .split('&')
                .filter(|p| !p.is_empty() && p.split('=').next() != Some("password"))
                .collect();
            if kept.is_empty() {
                path.to_string()
            } else {
                format!("{path}?{}", kept.join("&"))
            }
        }
        None => tail.to_string(),
    };
    format!("{scheme}://{authority}{tail}")
}

/// The `key=value` string without its `password` setting; `None` when it cannot be read
/// (an unterminated quote: the connection parser says what is wrong).
fn strip_keyword_value(s: &str) -> Option<String> {
    let b = s.as_bytes();
    let mut kept: Vec<&str> = Vec::new();
    let mut i = 0;
    while i < b.len() {
        while i < b.len() && b[i].is_ascii_whitespace() {
            i += 1;
        }
        if i >= b.len() {
            break;
        }
        let start = i;
        while i < b.len() && b[i] != b'=' && !b[i].is_ascii_whitespace() {
            i += 1;
        }
        let key = &s[start..i];
        while i < b.len() && b[i].is_ascii_whitespace() {
            i += 1;
        }
        if i < b.len() && b[i] == b'=' {
            i += 1;
        }
        while i < b.len() && b[i].is_ascii_whitespace() {
            i += 1;
        }
        if i < b.len() && b[i] == b'\'' {
            i += 1;
            loop {
                match b.get(i)? {
                    b'\\' => i += 2,
                    b'\'' => {
                        i += 1;
                        break;
                    }
                    _ => i += 1,
                }
            }
        } else {
            while i < b.len() && !b[i].is_ascii_whitespace() {
                i += if b[i] == b'\\' { 2 } else { 1 };
            }
        }
        let end = i.min(b.len());
        if key != "password" {
            kept.push(&s[start..end]);
        }
    }
    Some(kept.join(" "))
}

#[cfg(test)]
mod tests {
    use super::without_password;

    #[test]
    fn the_password_goes_and_nothing_else() {
        for (dsn, want) in [
            (
                "postgres://app:s3cret@db1:5432/shop?sslmode=require",
                "postgres://app@db1:5432/shop?sslmode=require",
            ),
            (
                "postgresql://app@db1/shop?password=s3cret&application_name=x",
                "postgresql://app@db1/shop?application_name=x",
            ),
            (
                "postgres://app:p%40ss@db1,db2:5432,5433/shop",
                "postgres://app@db1,db2:5432,5433/shop",
            ),
            (
                "host=db1 port=5432 password='s3 \\' cret' dbname=shop user=app",
                "host=db1 port=5432 dbname=shop user=app",
            ),
            (
                "host=db1 password = s3cret dbname=shop",
                "host=db1 dbname=shop",
            ),
            ("host=db1 dbname=shop", "host=db1 dbname=shop"),
        ] {
            let got = without_password(dsn);
            assert_eq!(got.as_deref(), Some(want), "{dsn}");
        }
    }

    #[test]
    fn an_unreadable_dsn_gives_none() {
        assert_eq!(without_password("host=db1 password='open"), None);
    }
}
