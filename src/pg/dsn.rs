//! libpq-compatible connection strings: `postgres://` URIs and `key=value` strings, the `PG*`
//! environment variables as fallbacks, and `.pgpass` for a missing password.
//!
//! The result, [`ConnInfo`], never shows its password: `Debug` and [`ConnInfo::redacted`] print
//! `********` in its place.

use std::fmt;
use std::path::{Path, PathBuf};

use percent_encoding::percent_decode_str;

/// The TLS policy, as libpq's `sslmode`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum SslMode {
    /// Plain TCP only.
    Disable,
    /// Plain first, TLS if the server insists (treated as `prefer` by the driver).
    Allow,
    /// TLS if the server offers it, without verifying the certificate.
    #[default]
    Prefer,
    /// TLS or fail; the certificate is verified only when a root certificate is given.
    Require,
    /// TLS, and the server certificate must chain to the root certificate.
    VerifyCa,
    /// As `verify-ca`, and the certificate must name the host connected to.
    VerifyFull,
}

impl SslMode {
    /// All accepted spellings, for hints.
    pub const NAMES: [&'static str; 6] = [
        "disable",
        "allow",
        "prefer",
        "require",
        "verify-ca",
        "verify-full",
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            SslMode::Disable => "disable",
            SslMode::Allow => "allow",
            SslMode::Prefer => "prefer",
            SslMode::Require => "require",
            SslMode::VerifyCa => "verify-ca",
            SslMode::VerifyFull => "verify-full",
        }
    }
}

impl std::str::FromStr for SslMode {
    type Err = DsnError;
    fn from_str(s: &str) -> Result<Self, DsnError> {
        Ok(match s {
            "disable" => SslMode::Disable,
            "allow" => SslMode::Allow,
            "prefer" => SslMode::Prefer,
            "require" => SslMode::Require,
            "verify-ca" => SslMode::VerifyCa,
            "verify-full" => SslMode::VerifyFull,
            other => {
                return Err(DsnError::new(format!(
                    "invalid sslmode {other:?}; expected one of {}",
                    SslMode::NAMES.join(", ")
                )))
            }
        })
    }
}

/// A connection-string problem. The message never contains a password.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct DsnError {
    pub message: String,
}

impl DsnError {
    fn new(message: impl Into<String>) -> Self {
        DsnError {
            message: message.into(),
        }
    }
}

/// A password that does not print itself.
#[derive(Clone, PartialEq, Eq, Default)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: impl Into<String>) -> Self {
        Secret(value.into())
    }
    /// The value, for the one place that sends it to the server.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("\"********\"")
    }
}

/// Everything needed to open a connection, as libpq understands it. Fields left `None` were
/// given neither in the string nor in the environment; [`ConnInfo::resolve`] fills defaults.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ConnInfo {
    /// Host names or socket directories (a comma list in libpq, tried in order).
    pub hosts: Vec<String>,
    pub hostaddr: Option<String>,
    pub ports: Vec<u16>,
    pub user: Option<String>,
    pub password: Option<Secret>,
    pub dbname: Option<String>,
    pub sslmode: Option<SslMode>,
    pub sslrootcert: Option<PathBuf>,
    pub sslcert: Option<PathBuf>,
    pub sslkey: Option<PathBuf>,
    pub application_name: Option<String>,
    pub connect_timeout: Option<u64>,
    pub options: Option<String>,
    pub passfile: Option<PathBuf>,
    /// libpq's `keepalives` (`0` turns TCP keepalives off; on by default).
    pub keepalives: Option<bool>,
    /// `keepalives_idle`, `keepalives_interval` (seconds) and `keepalives_count`.
    pub keepalives_idle: Option<u64>,
    pub keepalives_interval: Option<u64>,
    pub keepalives_count: Option<u32>,
    /// `tcp_user_timeout` in milliseconds (0: the system's default).
    pub tcp_user_timeout: Option<u64>,
}

/// One host of a (multi-host) DSN: its name, port and `hostaddr`.
pub type HostTarget = (String, u16, Option<std::net::IpAddr>);

/// The directory libpq on Debian uses for the local socket when no host is given.
pub const DEFAULT_SOCKET_DIR: &str = "/var/run/postgresql";

impl ConnInfo {
    /// Parses a URI (`postgres://` or `postgresql://`) or a `key=value` string.
    pub fn parse(s: &str) -> Result<ConnInfo, DsnError> {
        let t = s.trim();
        let info = if t.starts_with("postgres://") || t.starts_with("postgresql://") {
            parse_uri(t)?
        } else {
            parse_keyword_value(t)?
        };
        info.check_lists()?;
        Ok(info)
    }

    /// libpq's rule for several hosts: one port for all, or one per host; the same for
    /// `hostaddr`.
    fn check_lists(&self) -> Result<(), DsnError> {
        let hosts = self.hosts.len().max(1);
        if self.ports.len() > 1 && self.ports.len() != hosts {
            return Err(DsnError::new(format!(
                "{} ports for {hosts} host(s): give one port for all hosts, or one per host in the same order",
                self.ports.len()
            )));
        }
        if let Some(a) = &self.hostaddr {
            let n = a.split(',').count();
            if n != hosts && !(self.hosts.is_empty() && n >= 1) {
                return Err(DsnError::new(format!(
                    "{n} hostaddr value(s) for {hosts} host(s): give one hostaddr per host, in the same order"
                )));
            }
        }
        Ok(())
    }

    /// Every host to try, in order, with its port and its `hostaddr` (libpq's multi-host
    /// list: the first that accepts the connection is used).
    pub fn targets(&self) -> Vec<HostTarget> {
        let hosts: Vec<String> = if self.hosts.is_empty() {
            vec![self.host().to_string()]
        } else {
            self.hosts.clone()
        };
        let addrs: Vec<Option<std::net::IpAddr>> = self
            .hostaddr
            .as_deref()
            .map(|a| a.split(',').map(|x| x.trim().parse().ok()).collect())
            .unwrap_or_default();
        hosts
            .into_iter()
            .enumerate()
            .map(|(i, h)| {
                let port = self
                    .ports
                    .get(i)
                    .or(self.ports.first())
                    .copied()
                    .unwrap_or(5432);
                (h, port, addrs.get(i).copied().flatten())
            })
            .collect()
    }

    /// The first host, or the default socket directory.
    pub fn host(&self) -> &str {
        self.hosts
            .first()
            .map(String::as_str)
            .unwrap_or(DEFAULT_SOCKET_DIR)
    }

    /// The first port, or 5432.
    pub fn port(&self) -> u16 {
        self.ports.first().copied().unwrap_or(5432)
    }

    /// The user name, resolved by [`resolve`](Self::resolve); empty before.
    pub fn user(&self) -> &str {
        self.user.as_deref().unwrap_or("")
    }

    /// The database name, defaulting to the user name as libpq does.
    pub fn dbname(&self) -> &str {
        self.dbname.as_deref().unwrap_or_else(|| self.user())
    }

    pub fn sslmode(&self) -> SslMode {
        self.sslmode.unwrap_or_default()
    }

    /// Whether the host is a Unix socket directory.
    pub fn is_socket(&self) -> bool {
        self.host().starts_with('/')
    }

    /// Fills what the string left out from the `PG*` variables (read through `env`), then
    /// libpq's defaults, then the password from the pass file. `env` is a parameter so tests
    /// need not touch the process environment.
    pub fn resolve(mut self, env: &dyn Fn(&str) -> Option<String>) -> Result<ConnInfo, DsnError> {
        let var = |name: &str| env(name).filter(|v| !v.is_empty());
        if self.hosts.is_empty() {
            if let Some(h) = var("PGHOST") {
                self.hosts = h.split(',').map(str::to_string).collect();
            }
        }
        if self.hostaddr.is_none() {
            self.hostaddr = var("PGHOSTADDR");
        }
        if self.ports.is_empty() {
            if let Some(p) = var("PGPORT") {
                self.ports = parse_ports(&p)?;
            }
        }
        if self.user.is_none() {
            self.user = var("PGUSER");
        }
        if self.password.is_none() {
            self.password = var("PGPASSWORD").map(Secret::new);
        }
        if self.dbname.is_none() {
            self.dbname = var("PGDATABASE");
        }
        if self.sslmode.is_none() {
            if let Some(m) = var("PGSSLMODE") {
                self.sslmode = Some(m.parse()?);
            }
        }
        fill_path(&mut self.sslrootcert, var("PGSSLROOTCERT"));
        fill_path(&mut self.sslcert, var("PGSSLCERT"));
        fill_path(&mut self.sslkey, var("PGSSLKEY"));
        fill_path(&mut self.passfile, var("PGPASSFILE"));
        if self.application_name.is_none() {
            self.application_name = var("PGAPPNAME");
        }
        if self.connect_timeout.is_none() {
            if let Some(t) = var("PGCONNECT_TIMEOUT") {
                self.connect_timeout = Some(parse_timeout(&t)?);
            }
        }
        if self.options.is_none() {
            self.options = var("PGOPTIONS");
        }
        if self.hosts.is_empty() {
            self.hosts = vec![if Path::new(DEFAULT_SOCKET_DIR).is_dir() {
                DEFAULT_SOCKET_DIR.to_string()
            } else {
                "localhost".to_string()
            }];
        }
        if self.user.is_none() {
            self.user = var("USER").or_else(|| var("LOGNAME"));
        }
        let home = var("HOME").map(PathBuf::from);
        if self.sslrootcert.is_none() {
            if let Some(default) = home.as_ref().map(|h| h.join(".postgresql/root.crt")) {
                if default.is_file() {
                    self.sslrootcert = Some(default);
                }
            }
        }
        if self.password.is_none() {
            let passfile = self
                .passfile
                .clone()
                .or_else(|| home.map(|h| h.join(".pgpass")));
            if let Some(path) = passfile {
                self.password = super::pgpass::lookup(&path, &self)?.map(Secret::new);
            }
        }
        Ok(self)
    }

    /// The connection as a URI with the password replaced by `********`: safe to print.
    pub fn redacted(&self) -> String {
        let mut s = String::from("postgres://");
        if let Some(u) = &self.user {
            s.push_str(&enc(u));
            if self.password.is_some() {
                s.push_str(":********");
            }
            s.push('@');
        }
        let host = self.host();
        if host.contains(':') && !host.starts_with('/') {
            s.push_str(&format!("[{host}]"));
        } else if host.starts_with('/') {
            s.push_str(&enc(host));
        } else {
            s.push_str(host);
        }
        s.push_str(&format!(":{}", self.port()));
        if let Some(d) = &self.dbname {
            s.push('/');
            s.push_str(&enc(d));
        }
        if let Some(m) = self.sslmode {
            s.push_str("?sslmode=");
            s.push_str(m.as_str());
        }
        s
    }

    fn set(&mut self, key: &str, value: String) -> Result<(), DsnError> {
        match key {
            "host" => self.hosts = value.split(',').map(str::to_string).collect(),
            "hostaddr" => {
                parse_hostaddrs(&value)?;
                self.hostaddr = Some(value)
            }
            "port" => self.ports = parse_ports(&value)?,
            "user" => self.user = Some(value),
            "password" => self.password = Some(Secret::new(value)),
            "dbname" => self.dbname = Some(value),
            "sslmode" => self.sslmode = Some(value.parse()?),
            "sslrootcert" => self.sslrootcert = Some(PathBuf::from(value)),
            "sslcert" => self.sslcert = Some(PathBuf::from(value)),
            "sslkey" => self.sslkey = Some(PathBuf::from(value)),
            "application_name" | "fallback_application_name" => {
                if self.application_name.is_none() || key == "application_name" {
                    self.application_name = Some(value)
                }
            }
            "connect_timeout" => self.connect_timeout = Some(parse_timeout(&value)?),
            "options" => self.options = Some(value),
            "passfile" => self.passfile = Some(PathBuf::from(value)),
            "keepalives" => self.keepalives = Some(parse_number::<u8>(key, &value)? != 0),
            "keepalives_idle" => self.keepalives_idle = Some(parse_number(key, &value)?),
            "keepalives_interval" => self.keepalives_interval = Some(parse_number(key, &value)?),
            "keepalives_count" => self.keepalives_count = Some(parse_number(key, &value)?),
            "tcp_user_timeout" => self.tcp_user_timeout = Some(parse_number(key, &value)?),
            // Accepted by libpq and harmless to ignore here.
            "target_session_attrs"
            | "client_encoding"
            | "gssencmode"
            | "sslcompression"
            | "sslsni"
            | "krbsrvname"
            | "channel_binding" => {}
            other => {
                return Err(DsnError::new(format!(
                "unknown connection option {other:?}; see the libpq \"Parameter Key Words\" list"
            )))
            }
        }
        Ok(())
    }
}

fn fill_path(slot: &mut Option<PathBuf>, from_env: Option<String>) {
    if slot.is_none() {
        *slot = from_env.map(PathBuf::from);
    }
}

fn enc(s: &str) -> String {
    percent_encoding::utf8_percent_encode(s, percent_encoding::NON_ALPHANUMERIC).to_string()
}

/// A comma list of ports; an empty entry is libpq's default port (5432), 0 is refused as libpq
/// refuses it at connect time.
fn parse_ports(s: &str) -> Result<Vec<u16>, DsnError> {
    s.split(',')
        .map(|p| {
            let p = p.trim();
            if p.is_empty() {
                return Ok(5432);
            }
            p.parse::<u16>().ok().filter(|&n| n != 0).ok_or_else(|| {
                DsnError::new(format!(
                    "invalid port {p:?}: expected a number from 1 to 65535"
                ))
            })
        })
        .collect()
}

/// A comma list of IP addresses (`hostaddr`), checked as libpq does when it connects.
fn parse_hostaddrs(s: &str) -> Result<(), DsnError> {
    for a in s.split(',').map(str::trim).filter(|a| !a.is_empty()) {
        if a.parse::<std::net::IpAddr>().is_err() {
            return Err(DsnError::new(format!(
                "invalid hostaddr {a:?}: expected a numeric IP address such as 10.0.0.5 or ::1 (the host name goes in host)"
            )));
        }
    }
    Ok(())
}

/// A non-negative whole number for `key`.
fn parse_number<T: std::str::FromStr>(key: &str, s: &str) -> Result<T, DsnError> {
    s.trim().parse::<T>().map_err(|_| {
        DsnError::new(format!(
            "invalid {key} {s:?}: expected a non-negative whole number"
        ))
    })
}

fn parse_timeout(s: &str) -> Result<u64, DsnError> {
    s.trim().parse::<u64>().map_err(|_| {
        DsnError::new(format!(
            "invalid connect_timeout {s:?}: expected whole seconds"
        ))
    })
}

/// Percent-decodes a URI part as libpq does: `%` must be followed by two hex digits, and `%00`
/// is refused.
fn decode(s: &str, what: &str) -> Result<String, DsnError> {
    let b = s.as_bytes();
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' {
            let hex = b
                .get(i + 1..i + 3)
                .filter(|h| h.iter().all(u8::is_ascii_hexdigit));
            match hex {
                None => {
                    return Err(DsnError::new(format!(
                        "the URI's {what} has an invalid percent-encoded token: '%' must be followed by two hexadecimal digits (write %25 for a literal '%')"
                    )))
                }
                Some(h) if h == b"00" => {
                    return Err(DsnError::new(format!(
                        "the URI's {what} contains %00, which is not allowed"
                    )))
                }
                Some(_) => i += 3,
            }
        } else {
            i += 1;
        }
    }
    percent_decode_str(s)
        .decode_utf8()
        .map(|c| c.into_owned())
        .map_err(|_| DsnError::new(format!("the URI's {what} is not valid UTF-8 once decoded")))
}

/// `postgres://[user[:password]@][host[:port][,...]][/dbname][?key=value&...]`
fn parse_uri(s: &str) -> Result<ConnInfo, DsnError> {
    let rest = s
        .strip_prefix("postgresql://")
        .or_else(|| s.strip_prefix("postgres://"))
        .unwrap_or(s);
    let mut info = ConnInfo::default();
    let (rest, query) = match rest.split_once('?') {
        Some((a, q)) => (a, Some(q)),
        None => (rest, None),
    };
    let (authority, path) = match rest.find('/') {
        Some(i) => (&rest[..i], Some(&rest[i + 1..])),
        None => (rest, None),
    };
    let hostspec = match authority.rfind('@') {
        Some(i) => {
            let userinfo = &authority[..i];
            match userinfo.split_once(':') {
                Some((u, p)) => {
                    if !u.is_empty() {
                        info.user = Some(decode(u, "user name")?);
                    }
                    info.password = Some(Secret::new(decode(p, "password")?));
                }
                None => {
                    if !userinfo.is_empty() {
                        info.user = Some(decode(userinfo, "user name")?);
                    }
                }
            }
            &authority[i + 1..]
        }
        None => authority,
    };
    if !hostspec.is_empty() {
        let mut ports = Vec::new();
        for part in hostspec.split(',') {
            let (host, port) = split_host_port(part)?;
            info.hosts.push(decode(&host, "host")?);
            ports.push(port);
        }
        // One host without a host name is the default (the socket directory).
        if info.hosts.len() == 1 && info.hosts[0].is_empty() {
            info.hosts.clear();
        }
        // As libpq: a host written without a port gets the default port when others have one.
        if ports.iter().any(Option::is_some) {
            for p in ports {
                info.ports.extend(parse_ports(p.as_deref().unwrap_or(""))?);
            }
        }
    }
    if let Some(p) = path {
        if !p.is_empty() {
            info.dbname = Some(decode(p, "database name")?);
        }
    }
    if let Some(q) = query {
        for pair in q.split('&').filter(|p| !p.is_empty()) {
            let (k, v) = pair.split_once('=').ok_or_else(|| {
                DsnError::new(format!(
                    "URI parameter {:?} has no '=': write key=value",
                    decode(pair, "parameter").unwrap_or_default()
                ))
            })?;
            let k = decode(k, "parameter name")?;
            let v = decode(v, "parameter value")?;
            // libpq accepts ssl=true as sslmode=require in URIs.
            if k == "ssl" && v == "true" {
                info.sslmode = Some(SslMode::Require);
                continue;
            }
            info.set(&k, v)?;
        }
    }
    Ok(info)
}

/// Splits `host:port`, `[v6]:port` or a bare host.
fn split_host_port(part: &str) -> Result<(String, Option<String>), DsnError> {
    if let Some(rest) = part.strip_prefix('[') {
        let end = rest.find(']').ok_or_else(|| {
            DsnError::new("IPv6 address in the URI is missing its closing ']'".to_string())
        })?;
        let host = rest[..end].to_string();
        let after = &rest[end + 1..];
        let port = match after.strip_prefix(':') {
            Some(p) => Some(p.to_string()),
            None if after.is_empty() => None,
            None => {
                return Err(DsnError::new(format!(
                    "unexpected {after:?} after the IPv6 address in the URI"
                )))
            }
        };
        return Ok((host, port));
    }
    if part.matches(':').count() > 1 {
        return Err(DsnError::new(format!(
            "host {part:?} in the URI looks like an IPv6 address without brackets: write it as [{part}] (with the port after the bracket: [::1]:5432)"
        )));
    }
    Ok(match part.split_once(':') {
        Some((h, p)) => (h.to_string(), Some(p.to_string())),
        None => (part.to_string(), None),
    })
}

/// `host=db1 port=5432 password='it''s \'quoted\''`
fn parse_keyword_value(s: &str) -> Result<ConnInfo, DsnError> {
    let mut info = ConnInfo::default();
    let mut chars = s.chars().peekable();
    loop {
        while chars.peek().is_some_and(|c| c.is_whitespace()) {
            chars.next();
        }
        if chars.peek().is_none() {
            break;
        }
        let mut key = String::new();
        while let Some(&c) = chars.peek() {
            if c == '=' || c.is_whitespace() {
                break;
            }
            key.push(c);
            chars.next();
        }
        while chars.peek().is_some_and(|c| c.is_whitespace()) {
            chars.next();
        }
        if chars.next() != Some('=') {
            return Err(DsnError::new(format!(
                "missing \"=\" after {key:?} in the connection string; write key=value pairs separated by spaces, or a postgres:// URI"
            )));
        }
        while chars.peek().is_some_and(|c| c.is_whitespace()) {
            chars.next();
        }
        let mut value = String::new();
        if chars.peek() == Some(&'\'') {
            chars.next();
            let mut closed = false;
            while let Some(c) = chars.next() {
                match c {
                    '\\' => {
                        if let Some(n) = chars.next() {
                            value.push(n);
                        }
                    }
                    '\'' => {
                        closed = true;
                        break;
                    }
                    _ => value.push(c),
                }
            }
            if !closed {
                return Err(DsnError::new(format!(
                    "unterminated quoted value for {key:?} in the connection string"
                )));
            }
        } else {
            while let Some(&c) = chars.peek() {
                if c.is_whitespace() {
                    break;
                }
                chars.next();
                if c == '\\' {
                    if let Some(n) = chars.next() {
                        value.push(n);
                    }
                } else {
                    value.push(c);
                }
            }
        }
        info.set(&key, value)?;
    }
    Ok(info)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn no_env(_: &str) -> Option<String> {
        None
    }

    #[test]
    fn uri_with_everything() {
        let i = ConnInfo::parse(
            "postgres://migrator:s3cr%40t@db.example.com:6432/shop?sslmode=verify-full&sslrootcert=/etc/ssl/rds.pem&application_name=pgmove",
        )
        .expect("parses");
        assert_eq!(i.hosts, vec!["db.example.com"]);
        assert_eq!(i.ports, vec![6432]);
        assert_eq!(i.user.as_deref(), Some("migrator"));
        assert_eq!(i.password.as_ref().map(Secret::expose), Some("s3cr@t"));
        assert_eq!(i.dbname.as_deref(), Some("shop"));
        assert_eq!(i.sslmode, Some(SslMode::VerifyFull));
        assert_eq!(i.sslrootcert, Some(PathBuf::from("/etc/ssl/rds.pem")));
        assert_eq!(i.application_name.as_deref(), Some("pgmove"));
    }

    #[test]
    fn uri_percent_encoding_everywhere() {
        let i = ConnInfo::parse("postgresql://us%20er:p%3Aw%2Fd@%2Fvar%2Frun%2Fpostgresql/my%20db")
            .expect("parses");
        assert_eq!(i.user.as_deref(), Some("us er"));
        assert_eq!(i.password.as_ref().map(Secret::expose), Some("p:w/d"));
        assert_eq!(i.hosts, vec!["/var/run/postgresql"]);
        assert!(i.is_socket());
        assert_eq!(i.dbname.as_deref(), Some("my db"));
    }

    #[test]
    fn uri_ipv6_hosts() {
        let i = ConnInfo::parse("postgres://u@[::1]:5433/db").expect("parses");
        assert_eq!(i.hosts, vec!["::1"]);
        assert_eq!(i.port(), 5433);
        let i = ConnInfo::parse("postgres://[2001:db8::7]/db").expect("parses");
        assert_eq!(i.hosts, vec!["2001:db8::7"]);
        assert_eq!(i.ports, Vec::<u16>::new());
        assert!(ConnInfo::parse("postgres://[::1:5432/db").is_err());
        assert!(i.redacted().contains("[2001:db8::7]:5432"));
    }

    #[test]
    fn uri_multiple_hosts_and_minimal_forms() {
        let i = ConnInfo::parse("postgres://h1:5432,h2:5433/db").expect("parses");
        assert_eq!(i.hosts, vec!["h1", "h2"]);
        assert_eq!(i.ports, vec![5432, 5433]);
        let i = ConnInfo::parse("postgres://").expect("parses");
        assert_eq!(i, ConnInfo::default());
        let i = ConnInfo::parse("postgres:///db?host=/tmp&port=5999").expect("parses");
        assert_eq!(i.hosts, vec!["/tmp"]);
        assert_eq!(i.port(), 5999);
        assert_eq!(i.dbname.as_deref(), Some("db"));
        let i = ConnInfo::parse("postgres://h/db?ssl=true").expect("parses");
        assert_eq!(i.sslmode, Some(SslMode::Require));
    }

    #[test]
    fn keyword_value_strings() {
        let i = ConnInfo::parse(
            "host=10.0.0.5 port = 5433 user=migrator dbname='my db' password='it\\'s a \\\\ secret' sslmode=require",
        )
        .expect("parses");
        assert_eq!(i.hosts, vec!["10.0.0.5"]);
        assert_eq!(i.port(), 5433);
        assert_eq!(i.dbname.as_deref(), Some("my db"));
        assert_eq!(
            i.password.as_ref().map(Secret::expose),
            Some("it's a \\ secret")
        );
        assert_eq!(i.sslmode, Some(SslMode::Require));
        assert_eq!(ConnInfo::parse("").expect("empty ok"), ConnInfo::default());
    }

    #[test]
    fn bad_strings_are_explained() {
        let e = ConnInfo::parse("host=a portt=5").expect_err("unknown key");
        assert!(e.message.contains("unknown connection option \"portt\""));
        let e = ConnInfo::parse("host=a port=x").expect_err("bad port");
        assert!(e.message.contains("invalid port"));
        let e = ConnInfo::parse("host=a sslmode=verify").expect_err("bad sslmode");
        assert!(e.message.contains("verify-full"));
        let e = ConnInfo::parse("host=a password='open").expect_err("unterminated");
        assert!(e.message.contains("unterminated"));
        let e = ConnInfo::parse("hosta").expect_err("no =");
        assert!(e.message.contains("missing \"=\""));
        let e = ConnInfo::parse("postgres://u:hunter2@h:99999/db").expect_err("port");
        assert!(!e.message.contains("hunter2"));
    }

    #[test]
    fn keepalive_options_are_read() {
        let i = ConnInfo::parse(
            "host=h keepalives=1 keepalives_idle=7 keepalives_interval=3 keepalives_count=2 tcp_user_timeout=9000",
        )
        .expect("parses");
        assert_eq!(i.keepalives, Some(true));
        assert_eq!(i.keepalives_idle, Some(7));
        assert_eq!(i.keepalives_interval, Some(3));
        assert_eq!(i.keepalives_count, Some(2));
        assert_eq!(i.tcp_user_timeout, Some(9000));
        let i = ConnInfo::parse("postgres://h/db?keepalives=0").expect("parses");
        assert_eq!(i.keepalives, Some(false));
        let e = ConnInfo::parse("host=h keepalives_idle=soon").expect_err("not a number");
        assert!(e.message.contains("keepalives_idle"), "{}", e.message);
    }

    #[test]
    fn libpq_refusals() {
        // IPv6 without brackets in a URI.
        let e = ConnInfo::parse("postgres://::1:5432/db").expect_err("unbracketed IPv6");
        assert!(
            e.message.contains("[::1:5432]") || e.message.contains("brackets"),
            "{}",
            e.message
        );
        assert!(ConnInfo::parse("postgres://2001:db8::7/db").is_err());
        // Bad percent escapes, and %00.
        for bad in [
            "postgres://u@h/d%zzb",
            "postgres://u@h/db%",
            "postgres://u@h/db%4",
            "postgres://u%00@h/db",
        ] {
            let e = ConnInfo::parse(bad).expect_err(bad);
            assert!(e.message.contains('%'), "{bad}: {}", e.message);
        }
        assert_eq!(
            ConnInfo::parse("postgres://u@h/a%25b")
                .expect("ok")
                .dbname
                .as_deref(),
            Some("a%b")
        );
        // Port 0, in both forms.
        for bad in ["postgres://h:0/db", "host=h port=0", "host=a,b port=5432,0"] {
            let e = ConnInfo::parse(bad).expect_err(bad);
            assert!(
                e.message.contains("invalid port \"0\""),
                "{bad}: {}",
                e.message
            );
        }
        // Ports must match the hosts; hostaddr must be an address.
        let e = ConnInfo::parse("host=a,b,c port=1,2").expect_err("2 ports, 3 hosts");
        assert!(e.message.contains("2 ports for 3 host(s)"), "{}", e.message);
        let e = ConnInfo::parse("host=a hostaddr=db.example.com").expect_err("hostaddr");
        assert!(e.message.contains("invalid hostaddr"), "{}", e.message);
    }

    #[test]
    fn multi_host_lists_pair_hosts_ports_and_addresses() {
        let i = ConnInfo::parse("host=a,b port=6001,6002").expect("parses");
        assert_eq!(
            i.targets(),
            vec![("a".to_string(), 6001, None), ("b".to_string(), 6002, None)]
        );
        let i = ConnInfo::parse("host=a,b port=6001").expect("one port for all");
        assert_eq!(i.targets()[1].1, 6001);
        // A URI host without a port gets the default when another has one.
        let i = ConnInfo::parse("postgres://h1:6001,h2/db").expect("parses");
        assert_eq!(i.ports, vec![6001, 5432]);
        let i = ConnInfo::parse("host=a,b hostaddr=10.0.0.1,10.0.0.2").expect("parses");
        assert_eq!(i.targets()[1].2, Some("10.0.0.2".parse().expect("ip")));
    }

    #[test]
    fn env_fills_only_what_is_missing() {
        let env: HashMap<&str, &str> = [
            ("PGHOST", "envhost"),
            ("PGPORT", "7777"),
            ("PGUSER", "envuser"),
            ("PGDATABASE", "envdb"),
            ("PGPASSWORD", "envpw"),
            ("PGSSLMODE", "verify-ca"),
            ("PGAPPNAME", "app"),
            ("HOME", "/nonexistent-home"),
        ]
        .into_iter()
        .collect();
        let get = |k: &str| env.get(k).map(|v| v.to_string());
        let i = ConnInfo::parse("postgres://given@/db")
            .expect("parses")
            .resolve(&get)
            .expect("resolves");
        assert_eq!(i.host(), "envhost");
        assert_eq!(i.port(), 7777);
        assert_eq!(i.user(), "given");
        assert_eq!(i.dbname(), "db");
        assert_eq!(i.password.as_ref().map(Secret::expose), Some("envpw"));
        assert_eq!(i.sslmode(), SslMode::VerifyCa);
        assert_eq!(i.application_name.as_deref(), Some("app"));
    }

    #[test]
    fn defaults_without_env() {
        let env = |k: &str| (k == "USER").then(|| "alice".to_string());
        let i = ConnInfo::parse("")
            .expect("parses")
            .resolve(&env)
            .expect("resolves");
        assert_eq!(i.user(), "alice");
        assert_eq!(i.dbname(), "alice");
        assert_eq!(i.port(), 5432);
        assert_eq!(i.sslmode(), SslMode::Prefer);
        assert!(i.password.is_none());
        let i = ConnInfo::parse("host=h")
            .expect("parses")
            .resolve(&no_env)
            .expect("resolves");
        assert_eq!(i.host(), "h");
    }

    #[test]
    fn bad_env_values_are_errors() {
        let env = |k: &str| (k == "PGPORT").then(|| "abc".to_string());
        assert!(ConnInfo::parse("").expect("parses").resolve(&env).is_err());
    }

    #[test]
    fn redacted_and_debug_hide_the_password() {
        let i = ConnInfo::parse("postgres://u:hunter2@h/db?sslmode=require").expect("parses");
        let r = i.redacted();
        assert!(!r.contains("hunter2"), "{r}");
        assert_eq!(r, "postgres://u:********@h:5432/db?sslmode=require");
        let d = format!("{i:?}");
        assert!(!d.contains("hunter2"), "{d}");
    }
}
