//! The connection layer against real servers: TLS modes and secret-free errors.

use crate::support;

use pgmove::pg::{Endpoint, Secret, Side};
use support::{Cluster, Options, Profile};

fn no_env(_: &str) -> Option<String> {
    None
}

fn endpoint(dsn: &str, password: &str) -> Endpoint {
    Endpoint::from_dsn(Side::Source, dsn, Some(Secret::new(password)), &no_env).expect("valid dsn")
}

async fn ssl_in_use(ep: &Endpoint) -> bool {
    let client = ep.connect().await.expect("connects");
    let row = client
        .query_one(
            "SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()",
            &[],
        )
        .await
        .expect("query");
    row.get(0)
}

#[tokio::test]
async fn verify_full_succeeds_with_the_right_root_and_fails_with_a_wrong_one() {
    let c = support::shared(Profile::Ssl);
    let ca = c.ca_file().display().to_string();
    for host in ["127.0.0.1", "localhost"] {
        let ep = endpoint(
            &format!(
                "postgres://postgres@{host}:{}/postgres?sslmode=verify-full&sslrootcert={ca}",
                c.port
            ),
            &c.password,
        );
        assert!(ssl_in_use(&ep).await, "TLS not in use for {host}");
    }

    let dir = tempfile::tempdir().expect("tempdir");
    let wrong = support::unrelated_ca(dir.path());
    let ep = endpoint(
        &format!(
            "postgres://postgres@127.0.0.1:{}/postgres?sslmode=verify-full&sslrootcert={}",
            c.port,
            wrong.display()
        ),
        &c.password,
    );
    let err = ep
        .connect()
        .await
        .expect_err("wrong root must fail")
        .to_string();
    assert!(err.starts_with("source ("), "{err}");
    assert!(err.to_lowercase().contains("certificate"), "{err}");
    assert!(err.contains("sslrootcert"), "hint missing: {err}");
    assert!(!err.contains(&c.password), "{err}");
}

#[tokio::test]
async fn verify_ca_ignores_the_host_name_and_verify_full_does_not() {
    let c = support::shared(Profile::Ssl);
    let ca = c.ca_file().display().to_string();
    // The certificate names localhost and 127.0.0.1, not this host; hostaddr reaches the server.
    let base = format!(
        "host=db.not-in-cert.example hostaddr=127.0.0.1 port={} user=postgres dbname=postgres sslrootcert={ca}",
        c.port
    );
    let ep = endpoint(&format!("{base} sslmode=verify-ca"), &c.password);
    assert!(ssl_in_use(&ep).await);
    let ep = endpoint(&format!("{base} sslmode=verify-full"), &c.password);
    let err = ep.connect().await.expect_err("name mismatch").to_string();
    assert!(err.to_lowercase().contains("certificate"), "{err}");
}

#[tokio::test]
async fn require_encrypts_without_a_root_and_disable_does_not() {
    let c = support::shared(Profile::Ssl);
    let ep = endpoint(
        &format!(
            "host=127.0.0.1 port={} user=postgres dbname=postgres sslmode=require",
            c.port
        ),
        &c.password,
    );
    assert!(ssl_in_use(&ep).await);
    let ep = endpoint(
        &format!(
            "host=127.0.0.1 port={} user=postgres dbname=postgres sslmode=disable",
            c.port
        ),
        &c.password,
    );
    assert!(!ssl_in_use(&ep).await);
}

#[tokio::test]
async fn require_fails_against_a_server_without_tls() {
    let c = support::shared(Profile::Plain);
    let ep = endpoint(
        &format!(
            "host=127.0.0.1 port={} user=postgres dbname=postgres sslmode=require",
            c.port
        ),
        &c.password,
    );
    let err = ep
        .connect()
        .await
        .expect_err("no TLS on server")
        .to_string();
    assert!(err.contains("cannot connect"), "{err}");
}

#[tokio::test]
async fn a_password_in_the_dsn_never_appears_in_an_error() {
    let c = support::shared(Profile::Plain);
    let secret = "Sup3r-Secret-Pw";
    // Wrong password given inline in the URI.
    let ep = Endpoint::from_dsn(
        Side::Target,
        &format!(
            "postgres://postgres:{secret}@127.0.0.1:{}/postgres?sslmode=disable",
            c.port
        ),
        None,
        &no_env,
    )
    .expect("valid dsn");
    let err = ep.connect().await.expect_err("wrong password").to_string();
    assert!(err.contains("password authentication failed"), "{err}");
    assert!(
        err.starts_with("target (postgres://postgres:********@127.0.0.1:"),
        "{err}"
    );
    assert!(!err.contains(secret), "{err}");
    assert!(!format!("{ep:?}").contains(secret));

    // Nothing listening there.
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        l.local_addr().expect("addr").port()
    };
    let ep = Endpoint::from_dsn(
        Side::Source,
        &format!("postgres://postgres:{secret}@127.0.0.1:{port}/postgres?sslmode=disable"),
        None,
        &no_env,
    )
    .expect("valid dsn");
    let err = ep.connect().await.expect_err("refused").to_string();
    assert!(err.contains("is the server running"), "{err}");
    assert!(!err.contains(secret), "{err}");

    // A malformed DSN that carries the password.
    let err = Endpoint::from_dsn(
        Side::Source,
        &format!("postgres://postgres:{secret}@127.0.0.1:notaport/postgres"),
        None,
        &no_env,
    )
    .expect_err("bad port")
    .to_string();
    assert!(!err.contains(secret), "{err}");

    // A query error on a live connection.
    let ep = endpoint(
        &format!(
            "host=127.0.0.1 port={} user=postgres dbname=postgres sslmode=disable",
            c.port
        ),
        &c.password,
    );
    let client = ep.connect().await.expect("connects");
    let e = client
        .simple_query(&format!("SELECT '{}'::int", c.password))
        .await
        .expect_err("invalid int");
    let err = ep.query_error("probe", &e).to_string();
    assert!(!err.contains(&c.password), "{err}");
    assert!(err.starts_with("source: probe:"), "{err}");
}

#[tokio::test]
async fn a_pool_serves_concurrent_connections() {
    let c = support::shared(Profile::Plain);
    let ep = endpoint(
        &format!(
            "host=127.0.0.1 port={} user=postgres dbname=postgres sslmode=prefer",
            c.port
        ),
        &c.password,
    );
    let pool = ep.pool(4).expect("pool");
    let mut handles = Vec::new();
    for i in 0..8i32 {
        let pool = pool.clone();
        handles.push(tokio::spawn(async move {
            let client = pool.get().await.expect("get");
            let row = client
                .query_one("SELECT $1::int + 1", &[&i])
                .await
                .expect("query");
            row.get::<_, i32>(0)
        }));
    }
    let mut sum = 0;
    for h in handles {
        sum += h.await.expect("join");
    }
    assert_eq!(sum, (1..=8).sum::<i32>());
}

/// Runs `openssl` with `args` in `dir`, panicking with its error output on failure.
fn openssl(dir: &std::path::Path, args: &[&str]) {
    let out = std::process::Command::new("openssl")
        .args(args)
        .current_dir(dir)
        .output()
        .expect("run openssl");
    assert!(
        out.status.success(),
        "openssl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Makes a CA (`ca.crt`) and a server certificate for `CN=localhost` signed by it with the
/// classic recipe (`openssl x509 -req`): an X.509 v1 certificate, or a v3 one without a subject
/// alternative name when `v3_no_san`. Returns (CA file, certificate PEM, key PEM).
fn openssl_server_cert(
    dir: &std::path::Path,
    v3_no_san: bool,
) -> (std::path::PathBuf, String, String) {
    openssl(
        dir,
        &[
            "req",
            "-new",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-keyout",
            "ca.key",
            "-subj",
            "/CN=pgmove test openssl CA",
            "-days",
            "2",
            "-out",
            "ca.crt",
        ],
    );
    openssl(
        dir,
        &[
            "req",
            "-new",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-keyout",
            "server.key",
            "-subj",
            "/CN=localhost",
            "-out",
            "server.csr",
        ],
    );
    let mut sign = vec![
        "x509",
        "-req",
        "-in",
        "server.csr",
        "-CA",
        "ca.crt",
        "-CAkey",
        "ca.key",
        "-CAcreateserial",
        "-days",
        "2",
        "-out",
        "server.crt",
    ];
    if v3_no_san {
        std::fs::write(dir.join("ext.cnf"), "basicConstraints=CA:FALSE\n").expect("ext");
        sign.extend(["-extfile", "ext.cnf"]);
    }
    openssl(dir, &sign);
    let text = std::process::Command::new("openssl")
        .args(["x509", "-noout", "-text", "-in", "server.crt"])
        .current_dir(dir)
        .output()
        .expect("openssl x509 -text");
    let text = String::from_utf8_lossy(&text.stdout).to_string();
    if v3_no_san {
        assert!(text.contains("Version: 3"), "{text}");
        assert!(!text.contains("Subject Alternative Name"), "{text}");
    } else {
        assert!(text.contains("Version: 1"), "not a v1 certificate: {text}");
    }
    (
        dir.join("ca.crt"),
        std::fs::read_to_string(dir.join("server.crt")).expect("cert"),
        std::fs::read_to_string(dir.join("server.key")).expect("key"),
    )
}

/// Replaces the server's certificate and key (keeping the files' owner and mode) and reloads.
fn install_server_cert(c: &Cluster, cert_pem: &str, key_pem: &str) {
    std::fs::write(c.data_dir().join("server.crt"), cert_pem).expect("write cert");
    std::fs::write(c.data_dir().join("server.key"), key_pem).expect("write key");
    c.psql("postgres", "SELECT pg_reload_conf()");
    std::thread::sleep(std::time::Duration::from_millis(500));
}

#[tokio::test]
async fn an_x509_v1_certificate_connects_under_prefer_and_require_as_with_psql() {
    // Its own cluster: the test installs another server certificate.
    let c = Cluster::start(Options {
        ssl: true,
        ..Options::default()
    });
    let dir = tempfile::tempdir().expect("tempdir");
    let (_, cert, key) = openssl_server_cert(dir.path(), false);
    install_server_cert(&c, &cert, &key);
    for mode in ["prefer", "require"] {
        let ep = endpoint(
            &format!(
                "host=127.0.0.1 port={} user=postgres dbname=postgres sslmode={mode}",
                c.port
            ),
            &c.password,
        );
        assert!(ssl_in_use(&ep).await, "TLS not in use under {mode}");
    }
    // A missing root certificate file does not matter to prefer/require (libpq skips it).
    let ep = endpoint(
        &format!(
            "host=127.0.0.1 port={} user=postgres dbname=postgres sslmode=require sslrootcert={}",
            c.port,
            dir.path().join("no-such-root.crt").display()
        ),
        &c.password,
    );
    assert!(ssl_in_use(&ep).await);
}

#[tokio::test]
async fn a_certificate_with_only_a_cn_passes_verify_full_for_its_host_only() {
    // Its own cluster: the test installs another server certificate.
    let c = Cluster::start(Options {
        ssl: true,
        ..Options::default()
    });
    let dir = tempfile::tempdir().expect("tempdir");
    let (ca, cert, key) = openssl_server_cert(dir.path(), true);
    install_server_cert(&c, &cert, &key);
    let dsn = |host: &str| {
        format!(
            "host={host} hostaddr=127.0.0.1 port={} user=postgres dbname=postgres sslmode=verify-full sslrootcert={}",
            c.port,
            ca.display()
        )
    };
    let ep = endpoint(&dsn("localhost"), &c.password);
    assert!(ssl_in_use(&ep).await, "CN=localhost must pass verify-full");
    let ep = endpoint(&dsn("LocalHost"), &c.password);
    assert!(
        ssl_in_use(&ep).await,
        "host names compare case-insensitively"
    );
    let ep = endpoint(&dsn("db.wrong.example"), &c.password);
    let err = ep
        .connect()
        .await
        .expect_err("the CN does not name this host")
        .to_string();
    assert!(err.to_lowercase().contains("certificate"), "{err}");
}

#[tokio::test]
async fn sslrootcert_system_reaches_postgresql_15_client_programs_as_the_bundle_file() {
    if support::is_child(SYSTEM_STORE_TEST) {
        return with_the_test_ca_as_the_system_store().await;
    }
    let c = support::shared(Profile::Ssl);
    let ep = endpoint(
        &format!(
            "host=localhost port={} user=postgres dbname=postgres sslmode=verify-full sslrootcert=system",
            c.port
        ),
        &c.password,
    );
    let psql = pgmove::tools::find("psql", None, 0).expect("psql");
    assert!(psql.major < 16, "this test needs a PostgreSQL 15 psql");
    let env = pgmove::strategy::dump_restore::libpq_env_for(&ep, psql.major);
    let root = env
        .iter()
        .find(|(k, _)| *k == "PGSSLROOTCERT")
        .map(|(_, v)| v.clone())
        .expect("PGSSLROOTCERT");
    assert_ne!(root, "system", "{env:?}");
    assert!(std::path::Path::new(&root).is_file(), "{root}");
    // A 16+ client understands `system` itself.
    let env16 = pgmove::strategy::dump_restore::libpq_env_for(&ep, 16);
    assert!(env16.contains(&("PGSSLROOTCERT", "system".to_string())));

    // The OS store is the test CA (SSL_CERT_FILE) in a child process: every test of this
    // process would see the variable.
    let port = c.port.to_string();
    support::run_in_child(
        SYSTEM_STORE_TEST,
        &[
            ("SSL_CERT_FILE", c.ca_file().as_os_str()),
            ("PGMOVE_TEST_PORT", port.as_ref()),
            ("PGMOVE_TEST_PASSWORD", c.password.as_ref()),
        ],
    );
}

const SYSTEM_STORE_TEST: &str =
    "connect::sslrootcert_system_reaches_postgresql_15_client_programs_as_the_bundle_file";

/// The end of [`sslrootcert_system_reaches_postgresql_15_client_programs_as_the_bundle_file`],
/// in a child process whose `SSL_CERT_FILE` is the test CA and that is given the server's port
/// and password.
async fn with_the_test_ca_as_the_system_store() {
    let var = |k: &str| std::env::var(k).unwrap_or_else(|_| panic!("{k} not set by the parent"));
    let (port, password) = (var("PGMOVE_TEST_PORT"), var("PGMOVE_TEST_PASSWORD"));
    let ep = endpoint(
        &format!(
            "host=localhost port={port} user=postgres dbname=postgres sslmode=verify-full sslrootcert=system"
        ),
        &password,
    );
    let psql = pgmove::tools::find("psql", None, 0).expect("psql");
    // The OS store is the test CA here (SSL_CERT_FILE): psql 15 verifies the server with it.
    let ca = var("SSL_CERT_FILE");
    let env = pgmove::strategy::dump_restore::libpq_env_for(&ep, psql.major);
    let out = std::process::Command::new(&psql.path)
        .envs(env)
        .env("SSL_CERT_FILE", &ca)
        .args([
            "--no-psqlrc",
            "-tAc",
            "SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()",
        ])
        .output()
        .expect("run psql");
    assert!(
        out.status.success(),
        "psql 15 with sslrootcert=system: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "t");
    // And pgmove itself (rustls, the native store) agrees.
    assert!(ssl_in_use(&ep).await);
}

#[tokio::test]
async fn a_multi_host_dsn_tries_the_next_host_when_the_first_is_closed() {
    let c = support::shared(Profile::Plain);
    // A port nothing listens on: bound, then released.
    let closed = std::net::TcpListener::bind("127.0.0.1:0")
        .expect("bind")
        .local_addr()
        .expect("addr")
        .port();
    for dsn in [
        format!(
            "host=127.0.0.1,127.0.0.1 port={closed},{} user=postgres dbname=postgres sslmode=disable",
            c.port
        ),
        format!(
            "postgres://postgres@127.0.0.1:{closed},127.0.0.1:{}/postgres?sslmode=disable",
            c.port
        ),
    ] {
        let ep = endpoint(&dsn, &c.password);
        let client = ep.connect().await.unwrap_or_else(|e| panic!("{dsn}: {e}"));
        let port: i32 = client
            .query_one("SELECT current_setting('port')::int", &[])
            .await
            .expect("query")
            .get(0);
        assert_eq!(port, i32::from(c.port), "{dsn}");
    }
}

#[tokio::test]
async fn sslmode_allow_tries_plain_first() {
    let c = support::shared(Profile::Ssl);
    let ep = endpoint(
        &format!(
            "host=127.0.0.1 port={} user=postgres dbname=postgres sslmode=allow",
            c.port
        ),
        &c.password,
    );
    assert!(!ssl_in_use(&ep).await, "allow must not start with TLS");
    let ep = endpoint(
        &format!(
            "host=127.0.0.1 port={} user=postgres dbname=postgres sslmode=prefer",
            c.port
        ),
        &c.password,
    );
    assert!(ssl_in_use(&ep).await, "prefer starts with TLS");
}

#[tokio::test]
async fn short_query_sessions_have_a_statement_timeout_and_others_do_not() {
    let c = support::shared(Profile::Plain);
    let ep = endpoint(
        &format!(
            "host=127.0.0.1 port={} user=postgres dbname=postgres sslmode=disable",
            c.port
        ),
        &c.password,
    );
    let show = |client: tokio_postgres::Client| async move {
        client
            .query_one("SHOW statement_timeout", &[])
            .await
            .expect("show")
            .get::<_, String>(0)
    };
    assert_eq!(
        show(ep.connect_short().await.expect("short")).await,
        pgmove::pg::SHORT_STATEMENT_TIMEOUT
    );
    // COPY and index builds use plain sessions: no limit.
    assert_eq!(show(ep.connect().await.expect("plain")).await, "0");
}
