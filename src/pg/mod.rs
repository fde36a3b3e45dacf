//! Connections to the two servers: libpq-compatible DSNs, TLS, pools, quoting, LSNs.
//!
//! Every error made here names the server (source or target) and its redacted address, and
//! never contains a password.

pub mod dsn;
pub mod lsn;
pub mod pgpass;
pub mod quote;
pub mod tls;

use std::fmt;
use std::time::Duration;

use tokio_postgres_rustls::MakeRustlsConnect;

pub use dsn::{ConnInfo, Secret, SslMode};
pub use lsn::Lsn;

/// Which of the two servers.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Side {
    Source,
    Target,
}

impl fmt::Display for Side {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Side::Source => "source",
            Side::Target => "target",
        })
    }
}

/// A failure talking to one of the servers.
#[derive(Debug, thiserror::Error)]
pub enum PgError {
    #[error("{side}: invalid connection string: {message}")]
    Dsn { side: Side, message: String },
    #[error("{side} ({endpoint}): {message}")]
    Tls {
        side: Side,
        endpoint: String,
        message: String,
    },
    #[error("{side} ({endpoint}): cannot connect: {message}{}", hint_suffix(.hint))]
    Connect {
        side: Side,
        endpoint: String,
        message: String,
        hint: Option<String>,
        /// What failed: the server's SQLSTATE, the network, or the client's setup.
        cause: Cause,
    },
    #[error("{side}: {message}")]
    Query { side: Side, message: String },
    /// The session ended under a request: the connection broke or was closed, or the server
    /// ended it (a FATAL error such as `57P01 admin_shutdown`). A new connection may work.
    #[error("{side}: {message}")]
    Lost { side: Side, message: String },
    #[error("{side}: no connection from the pool: {message}")]
    Pool { side: Side, message: String },
}

fn hint_suffix(hint: &Option<String>) -> String {
    crate::report::Hint::suffix(hint.as_deref())
}

/// Why a request to a server failed, as far as trying again is concerned.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Cause {
    /// The server answered with an error of this SQLSTATE.
    Server(String),
    /// The network failed: refused, reset, closed, timed out, unreachable.
    Connection,
    /// Anything else: configuration, TLS verification, a missing password, the protocol.
    Other,
}

impl Cause {
    /// Whether a new connection may succeed where this failed: the network, or the server
    /// refusing for now ([`sqlstate_is_transient`]).
    pub fn is_transient(&self) -> bool {
        match self {
            Cause::Server(code) => sqlstate_is_transient(code),
            Cause::Connection => true,
            Cause::Other => false,
        }
    }
}

/// SQLSTATEs that say the connection or the server is unavailable for now, not that the
/// request is wrong: class `08` connection exceptions, `57P01` admin_shutdown, `57P02`
/// crash_shutdown, `57P03` cannot_connect_now (starting up, shutting down, in recovery) and
/// `53300` too_many_connections.
pub fn sqlstate_is_transient(code: &str) -> bool {
    code.starts_with("08") || matches!(code, "57P01" | "57P02" | "57P03" | "53300")
}

/// Whether an I/O error is the network failing (worth trying again), not a local problem or a
/// TLS verification failure (`InvalidData`).
pub fn io_is_network(e: &std::io::Error) -> bool {
    use std::io::ErrorKind as K;
    matches!(
        e.kind(),
        K::ConnectionRefused
            | K::ConnectionReset
            | K::ConnectionAborted
            | K::NotConnected
            | K::BrokenPipe
            | K::TimedOut
            | K::UnexpectedEof
            | K::AddrNotAvailable
            | K::HostUnreachable
            | K::NetworkUnreachable
            | K::NetworkDown
            | K::Interrupted
    )
}

/// The cause of a driver error.
pub fn cause(e: &tokio_postgres::Error) -> Cause {
    if let Some(code) = e.code() {
        return Cause::Server(code.code().to_string());
    }
    if e.is_closed() {
        return Cause::Connection;
    }
    let mut src = std::error::Error::source(e);
    while let Some(inner) = src {
        if let Some(io) = inner.downcast_ref::<std::io::Error>() {
            return if io_is_network(io) {
                Cause::Connection
            } else {
                Cause::Other
            };
        }
        src = inner.source();
    }
    // tokio-postgres' connect_timeout ("timeout waiting for server") has no source.
    if e.to_string().starts_with("timeout") {
        return Cause::Connection;
    }
    Cause::Other
}

/// Whether the session is gone after this error: the connection broke or was closed, or the
/// server ended the session (FATAL or PANIC).
pub fn session_lost(e: &tokio_postgres::Error) -> bool {
    if let Some(db) = e.as_db_error() {
        return matches!(
            db.parsed_severity(),
            Some(tokio_postgres::error::Severity::Fatal | tokio_postgres::error::Severity::Panic)
        );
    }
    cause(e) == Cause::Connection
}

/// The text of a driver error with the server's detail and hint, as psql shows them.
pub fn error_text(e: &tokio_postgres::Error) -> String {
    if let Some(db) = e.as_db_error() {
        let mut s = format!("{}: {}", db.severity(), db.message());
        if let Some(d) = db.detail() {
            s.push_str(&format!(" (detail: {d})"));
        }
        if let Some(h) = db.hint() {
            s.push_str(&format!(" (hint: {h})"));
        }
        return s;
    }
    let mut s = e.to_string();
    let mut src = std::error::Error::source(e);
    while let Some(inner) = src {
        let t = inner.to_string();
        if !s.contains(&t) {
            s.push_str(": ");
            s.push_str(&t);
        }
        src = inner.source();
    }
    s
}

/// Replaces every occurrence of `secret` in `text` with `********`.
pub fn redact(text: &str, secret: Option<&Secret>) -> String {
    match secret {
        Some(s) if !s.expose().is_empty() => text.replace(s.expose(), "********"),
        _ => text.to_string(),
    }
}

/// The startup `options` of every pgmove session: the DSN's own `options`, then
/// `-c row_security=off`, last so that it wins. With it a table whose row-level security
/// policies would hide rows from the role raises an error ("query would be affected by
/// row-level security policy") instead of silently returning, copying or comparing fewer
/// rows; roles that see every row (superuser, BYPASSRLS, the owner without FORCE) are
/// unaffected. pg_dump does the same.
///
/// Then [`OUTPUT_SETTINGS`], so values moved or compared as text (copy's text format, verify,
/// apply) read the same on both servers, whatever the database's or role's own settings.
pub fn session_options(user: Option<&str>) -> String {
    const ROW_SECURITY_OFF: &str = "-c row_security=off";
    match user.map(str::trim) {
        Some(u) if !u.is_empty() => format!("{u} {ROW_SECURITY_OFF} {OUTPUT_SETTINGS}"),
        _ => format!("{ROW_SECURITY_OFF} {OUTPUT_SETTINGS}"),
    }
}

/// Default `keepalives_idle`, `keepalives_interval` and `keepalives_count`: a silent peer is
/// given up after 30 + 3 x 10 = 60 s.
pub const KEEPALIVES_IDLE_SECS: u64 = 30;
pub const KEEPALIVES_INTERVAL_SECS: u64 = 10;
pub const KEEPALIVES_COUNT: u32 = 3;

/// `statement_timeout` of the sessions that run pgmove's own short queries (progress, status,
/// lag): never COPY or index builds, which use [`Endpoint::connect`].
pub const SHORT_STATEMENT_TIMEOUT: &str = "30s";

/// Text input/output settings pinned in every session, as pg_dump pins them: with the source
/// database's `DateStyle = 'SQL, DMY'` a date copied as text into a target reading MDY swaps
/// day and month, and `extra_float_digits = 0` rounds floats. `TimeZone = UTC` only changes
/// how timestamptz is written (with its offset, so the instant is exact); timestamp without
/// time zone is written and read as is. The replication connection gets the same settings
/// (`cdc::slot`), as does the apply session (`cdc::apply::SESSION_SETTINGS`).
///
/// `lc_monetary = C` on both servers: `money` is stored as an integer count of the smallest
/// currency unit and written and read through lc_monetary's symbol, separators and fraction
/// digits, so a target database whose lc_monetary differs from the source's would read
/// another amount (or refuse the text). With the same locale on both sides the integer
/// travels exactly; what the amount looks like on the target is then the target's
/// lc_monetary, as for any restored `money` value. (Moving money as numeric would need a cast
/// in every copy and apply statement for the same result.)
pub const OUTPUT_SETTINGS: &str = "-c DateStyle=ISO,MDY -c IntervalStyle=postgres \
     -c extra_float_digits=3 -c bytea_output=hex -c TimeZone=UTC -c lc_monetary=C";

/// One server: which side it is and how to reach it.
#[derive(Clone, Debug)]
pub struct Endpoint {
    pub side: Side,
    pub info: ConnInfo,
}

/// The server's `server_version_num` (one int4, e.g. 150004).
const SERVER_VERSION_SQL: &str = "SELECT pg_catalog.current_setting('server_version_num')::int4";

impl Endpoint {
    /// Parses `dsn`, applies an explicit password (from the plan's env or file) and resolves
    /// environment defaults and the pass file.
    pub fn from_dsn(
        side: Side,
        dsn: &str,
        password: Option<Secret>,
        env: &dyn Fn(&str) -> Option<String>,
    ) -> Result<Endpoint, PgError> {
        let mut info = ConnInfo::parse(dsn).map_err(|e| PgError::Dsn {
            side,
            message: e.message,
        })?;
        if password.is_some() {
            info.password = password;
        }
        let info = info.resolve(env).map_err(|e| PgError::Dsn {
            side,
            message: e.message,
        })?;
        Ok(Endpoint { side, info })
    }

    /// With the process environment.
    pub fn from_dsn_env(
        side: Side,
        dsn: &str,
        password: Option<Secret>,
    ) -> Result<Endpoint, PgError> {
        Endpoint::from_dsn(side, dsn, password, &|k| std::env::var(k).ok())
    }

    /// The redacted address, for messages.
    pub fn display(&self) -> String {
        self.info.redacted()
    }

    /// The driver configuration.
    pub fn pg_config(&self) -> tokio_postgres::Config {
        let i = &self.info;
        let mut c = tokio_postgres::Config::new();
        // Every host of a multi-host DSN, tried in order as libpq does.
        let targets = i.targets();
        let with_addr = targets.iter().all(|t| t.2.is_some());
        for (host, port, addr) in &targets {
            c.host(host);
            c.port(*port);
            if let (true, Some(a)) = (with_addr, addr) {
                c.hostaddr(*a);
            }
        }
        c.user(i.user());
        c.dbname(i.dbname());
        if let Some(p) = &i.password {
            c.password(p.expose());
        }
        c.application_name(i.application_name.as_deref().unwrap_or("pgmove"));
        c.options(session_options(i.options.as_deref()));
        c.connect_timeout(Duration::from_secs(i.connect_timeout.unwrap_or(30).max(2)));
        c.ssl_mode(match i.sslmode() {
            SslMode::Disable => tokio_postgres::config::SslMode::Disable,
            SslMode::Allow | SslMode::Prefer => tokio_postgres::config::SslMode::Prefer,
            SslMode::Require | SslMode::VerifyCa | SslMode::VerifyFull => {
                tokio_postgres::config::SslMode::Require
            }
        });
        // TCP keepalives as libpq's keepalives* options say, with defaults that notice a
        // dead peer or a dropped connection within about a minute (libpq leaves the system's
        // two hours). tcp_user_timeout also bounds unacknowledged writes, when given.
        c.keepalives(i.keepalives.unwrap_or(true));
        c.keepalives_idle(Duration::from_secs(
            i.keepalives_idle.unwrap_or(KEEPALIVES_IDLE_SECS).max(1),
        ));
        c.keepalives_interval(Duration::from_secs(
            i.keepalives_interval
                .unwrap_or(KEEPALIVES_INTERVAL_SECS)
                .max(1),
        ));
        c.keepalives_retries(i.keepalives_count.unwrap_or(KEEPALIVES_COUNT).max(1));
        if let Some(ms) = i.tcp_user_timeout.filter(|&ms| ms > 0) {
            c.tcp_user_timeout(Duration::from_millis(ms));
        }
        c
    }

    /// The TLS connector for this endpoint (also used, unused, when TLS is disabled).
    pub fn tls(&self) -> Result<MakeRustlsConnect, PgError> {
        let config = tls::client_config(&self.info).map_err(|e| PgError::Tls {
            side: self.side,
            endpoint: self.display(),
            message: e.0,
        })?;
        let config = match config {
            Some(c) => c,
            None => rustls::ClientConfig::builder_with_provider(std::sync::Arc::new(
                rustls::crypto::ring::default_provider(),
            ))
            .with_safe_default_protocol_versions()
            .map_err(|e| PgError::Tls {
                side: self.side,
                endpoint: self.display(),
                message: e.to_string(),
            })?
            .with_root_certificates(rustls::RootCertStore::empty())
            .with_no_client_auth(),
        };
        Ok(MakeRustlsConnect::new(config))
    }

    /// The server's `server_version_num` (e.g. 150004), read on `client`, a session to it.
    pub async fn version_num(&self, client: &tokio_postgres::Client) -> Result<i32, PgError> {
        client
            .query_one(SERVER_VERSION_SQL, &[])
            .await
            .map(|row| row.get(0))
            .map_err(|e| self.query_error("reading the server version", &e))
    }

    /// A query error on this server, with the server's words and no secret.
    /// [`PgError::Lost`] when the session is gone ([`session_lost`]).
    pub fn query_error(&self, context: &str, e: &tokio_postgres::Error) -> PgError {
        let message = redact(
            &format!("{context}: {}", error_text(e)),
            self.info.password.as_ref(),
        );
        if session_lost(e) {
            return PgError::Lost {
                side: self.side,
                message,
            };
        }
        PgError::Query {
            side: self.side,
            message,
        }
    }

    fn connect_error(&self, e: &tokio_postgres::Error) -> PgError {
        let message = redact(&error_text(e), self.info.password.as_ref());
        let lower = message.to_lowercase();
        let hint = if lower.contains("password authentication failed")
            || lower.contains("password missing")
            || lower.contains("no password")
        {
            Some("check the password: the plan's `password: {env: NAME}` or `{file: PATH}`, PGPASSWORD, or ~/.pgpass".to_string())
        } else if lower.contains("connection refused") {
            Some(format!(
                "is the server running and accepting TCP connections on {}:{}? (listen_addresses, port, firewall)",
                self.info.host(),
                self.info.port()
            ))
        } else if lower.contains("certificate") || lower.contains("unknownissuer") {
            Some("the server's certificate did not verify: check sslrootcert (the CA that signed the server certificate) and, for verify-full, that the host name is in the certificate".to_string())
        } else if lower.contains("does not have connect privilege") {
            Some(format!(
                "as the database's owner (or a superuser; on RDS/Aurora the master user): GRANT CONNECT ON DATABASE {} TO {};",
                quote::ident(self.info.dbname()),
                quote::ident(self.info.user())
            ))
        } else if lower.contains("no pg_hba.conf entry") {
            Some("add a pg_hba.conf line for this user, database and client address, then reload the server".to_string())
        } else if lower.contains("does not exist") {
            Some("check the user and database names in the DSN".to_string())
        } else if lower.contains("server does not support tls") || lower.contains("ssl") {
            Some("the server has no TLS: enable ssl on it, or lower sslmode".to_string())
        } else {
            None
        };
        PgError::Connect {
            side: self.side,
            endpoint: self.display(),
            message,
            hint,
            cause: cause(e),
        }
    }

    /// One connection, its driver task spawned on the current runtime.
    pub async fn connect(&self) -> Result<tokio_postgres::Client, PgError> {
        let tls = self.tls()?;
        let mut config = self.pg_config();
        if self.info.sslmode() == SslMode::Allow {
            // libpq's `allow`: plain first, TLS only when the server refuses the plain session.
            config.ssl_mode(tokio_postgres::config::SslMode::Disable);
        }
        let (client, connection) = match config.connect(tls.clone()).await {
            Ok(c) => c,
            Err(e)
                if self.info.sslmode() == SslMode::Allow
                    && matches!(cause(&e), Cause::Server(_)) =>
            {
                config.ssl_mode(tokio_postgres::config::SslMode::Require);
                config
                    .connect(tls)
                    .await
                    .map_err(|e| self.connect_error(&e))?
            }
            Err(e) => return Err(self.connect_error(&e)),
        };
        let side = self.side;
        tokio::spawn(async move {
            if let Err(e) = connection.await {
                tracing::debug!(%side, error = %e, "connection closed with an error");
            }
        });
        Ok(client)
    }

    /// A connection for pgmove's own short queries (progress, status, lag): as
    /// [`connect`](Self::connect), with `statement_timeout` [`SHORT_STATEMENT_TIMEOUT`], so a
    /// query blocked on the server (a lock, an overloaded server) ends with an error instead of
    /// waiting forever.
    pub async fn connect_short(&self) -> Result<tokio_postgres::Client, PgError> {
        let client = self.connect().await?;
        client
            .batch_execute(&format!(
                "SET statement_timeout = {}",
                quote::literal(SHORT_STATEMENT_TIMEOUT)
            ))
            .await
            .map_err(|e| self.query_error("setting statement_timeout", &e))?;
        Ok(client)
    }

    /// A pool of at most `size` connections. Connections are opened lazily; call
    /// [`Endpoint::connect`] first to fail early with a clear error.
    pub fn pool(&self, size: usize) -> Result<deadpool_postgres::Pool, PgError> {
        let manager = deadpool_postgres::Manager::from_config(
            self.pg_config(),
            self.tls()?,
            deadpool_postgres::ManagerConfig {
                recycling_method: deadpool_postgres::RecyclingMethod::Fast,
            },
        );
        deadpool_postgres::Pool::builder(manager)
            .max_size(size.max(1))
            .build()
            .map_err(|e| PgError::Pool {
                side: self.side,
                message: e.to_string(),
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sessions_turn_row_security_off_after_the_users_options() {
        let pinned = format!("-c row_security=off {OUTPUT_SETTINGS}");
        assert_eq!(session_options(None), pinned);
        assert_eq!(session_options(Some("  ")), pinned);
        assert_eq!(
            session_options(Some("-c search_path=app -c row_security=on")),
            format!("-c search_path=app -c row_security=on -c row_security=off {OUTPUT_SETTINGS}")
        );
        let ep = Endpoint::from_dsn(
            Side::Source,
            "postgres://u@h/db?options=-c%20work_mem%3D64MB",
            None,
            &|_| None,
        )
        .expect("dsn");
        assert_eq!(
            ep.pg_config().get_options(),
            Some(format!("-c work_mem=64MB -c row_security=off {OUTPUT_SETTINGS}").as_str())
        );
    }

    fn config(dsn: &str) -> tokio_postgres::Config {
        Endpoint::from_dsn(Side::Source, dsn, None, &|_| None)
            .expect("valid")
            .pg_config()
    }

    #[test]
    fn keepalives_default_to_a_minute_and_follow_the_dsn() {
        let c = config("host=h user=u");
        assert!(c.get_keepalives());
        assert_eq!(c.get_keepalives_idle(), Duration::from_secs(30));
        assert_eq!(c.get_keepalives_interval(), Some(Duration::from_secs(10)));
        assert_eq!(c.get_keepalives_retries(), Some(3));
        assert_eq!(c.get_tcp_user_timeout(), None);
        let c = config(
            "host=h user=u keepalives_idle=5 keepalives_interval=2 keepalives_count=4 tcp_user_timeout=15000",
        );
        assert_eq!(c.get_keepalives_idle(), Duration::from_secs(5));
        assert_eq!(c.get_keepalives_interval(), Some(Duration::from_secs(2)));
        assert_eq!(c.get_keepalives_retries(), Some(4));
        assert_eq!(
            c.get_tcp_user_timeout(),
            Some(&Duration::from_millis(15000))
        );
        assert!(!config("host=h user=u keepalives=0").get_keepalives());
    }

    #[test]
    fn every_host_of_a_multi_host_dsn_is_configured() {
        let c = config("host=a,b port=6001,6002 user=u");
        assert_eq!(c.get_hosts().len(), 2);
        assert_eq!(c.get_ports(), &[6001, 6002]);
    }
}
