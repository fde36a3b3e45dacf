//! The connection strings pglogical stores and uses from inside the servers: the provider
//! DSN (how the target server reaches the source) and the subscriber node's DSN (how the
//! target server reaches itself, for the initial copy). Written as libpq `key=value` strings;
//! the password is in them (pglogical connects with them later), so a [`Conninfo`] prints
//! itself with `password='********'` and only [`Conninfo::expose`] gives the real string, for
//! the one statement that sends it to the server.

use std::fmt;

use crate::pg::{ConnInfo, Secret};

/// What the password is shown as.
pub const MASK: &str = "********";

/// A `key=value` connection string holding a password; `Display` and `Debug` mask it.
#[derive(Clone, PartialEq, Eq)]
pub struct Conninfo {
    /// The string without the password.
    base: String,
    password: Option<Secret>,
}

/// `'value'` with `\` and `'` escaped, as libpq reads it.
fn value(v: &str) -> String {
    format!("'{}'", v.replace('\\', "\\\\").replace('\'', "\\'"))
}

impl Conninfo {
    /// The string for `info`: its hosts, `hostaddr`, port, database, user and `sslmode` (when
    /// set), and `password` (given, else the one `info` carries). Client-side files
    /// (`sslrootcert`, pass file) are left out: the server that uses the string has its own.
    pub fn of(info: &ConnInfo, password: Option<&Secret>) -> Conninfo {
        let mut parts = Vec::new();
        if !info.hosts.is_empty() {
            parts.push(format!("host={}", value(&info.hosts.join(","))));
        }
        if let Some(a) = &info.hostaddr {
            parts.push(format!("hostaddr={}", value(a)));
        }
        if !info.ports.is_empty() {
            let ports: Vec<String> = info.ports.iter().map(u16::to_string).collect();
            parts.push(format!("port={}", value(&ports.join(","))));
        }
        if let Some(d) = &info.dbname {
            parts.push(format!("dbname={}", value(d)));
        }
        if let Some(u) = &info.user {
            parts.push(format!("user={}", value(u)));
        }
        if let Some(m) = info.sslmode {
            parts.push(format!("sslmode={}", m.as_str()));
        }
        Conninfo {
            base: parts.join(" "),
            password: password.cloned().or_else(|| info.password.clone()),
        }
    }

    /// The string with the password: only for the statement that hands it to pglogical.
    pub fn expose(&self) -> String {
        self.with_password(self.password.as_ref().map(Secret::expose))
    }

    /// The string with the password masked: safe to print.
    pub fn redacted(&self) -> String {
        self.with_password(self.password.as_ref().map(|_| MASK))
    }

    /// The string without any password (what pgmove stores where a password is not needed).
    pub fn without_password(&self) -> String {
        self.base.clone()
    }

    /// The password, to take out of any text that might echo the string.
    pub fn secret(&self) -> Option<&Secret> {
        self.password.as_ref()
    }

    fn with_password(&self, password: Option<&str>) -> String {
        match password {
            Some(p) => format!("{} password={}", self.base, value(p)),
            None => self.base.clone(),
        }
    }
}

impl fmt::Display for Conninfo {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.redacted())
    }
}

impl fmt::Debug for Conninfo {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Conninfo({})", self.redacted())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_password_shows_only_when_exposed() {
        let info =
            ConnInfo::parse("postgres://app@db.example:5433/shop?sslmode=require").expect("dsn");
        let c = Conninfo::of(&info, Some(&Secret::new("s3'cr\\et")));
        assert_eq!(
            c.expose(),
            r"host='db.example' port='5433' dbname='shop' user='app' sslmode=require password='s3\'cr\\et'"
        );
        for shown in [c.to_string(), format!("{c:?}"), c.redacted()] {
            assert!(!shown.contains("s3"), "{shown}");
            assert!(shown.contains("password='********'"), "{shown}");
        }
        assert!(!c.without_password().contains("password"));
    }

    #[test]
    fn the_dsns_own_password_is_used_when_none_is_given() {
        let info = ConnInfo::parse("host=h user=u password=pw dbname=d").expect("dsn");
        let c = Conninfo::of(&info, None);
        assert!(c.expose().ends_with("password='pw'"), "{}", c.expose());
        let none = ConnInfo::parse("host=h dbname=d").expect("dsn");
        assert_eq!(Conninfo::of(&none, None).expose(), "host='h' dbname='d'");
    }
}
