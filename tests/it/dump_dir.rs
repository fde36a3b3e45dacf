//! The local dump directory against real servers: keyed by the plan and both endpoints,
//! private to the user, marked, and never someone else's directory used or removed.

use crate::support;

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use pgmove::dumpdir::{self, Owner};
use pgmove::pg::{ConnInfo, Endpoint, Secret, Side};
use pgmove::progress::Progress;
use pgmove::strategy::dump_restore::{self, Job};
use support::{Cluster, Options};

fn plan_text(name: &str, src: &Cluster, dst: &Cluster, db: &str) -> String {
    format!(
        "version: 1\nname: {name}\nstrategy: dump-restore\njobs: 2\nsource:\n  dsn: postgres://postgres@127.0.0.1:{}/{db}\n  password: {{env: SRC_PW}}\n  sslmode: disable\ntarget:\n  dsn: postgres://postgres@127.0.0.1:{}/{db}\n  password: {{env: DST_PW}}\n  sslmode: disable\n",
        src.port, dst.port
    )
}

fn write_plan(dir: &Path, name: &str, src: &Cluster, dst: &Cluster, db: &str) -> PathBuf {
    let path = dir.join(format!("{name}.yaml"));
    std::fs::write(&path, plan_text(name, src, dst, db)).expect("write plan");
    path
}

/// pgmove with the servers' passwords and its cache (the default dump place) in `cache`.
fn pgmove(args: &[&str], src: &Cluster, dst: &Cluster, cache: &Path) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_pgmove"));
    c.args(args)
        .env("SRC_PW", &src.password)
        .env("DST_PW", &dst.password)
        .env("XDG_CACHE_HOME", cache)
        .env("NO_COLOR", "1");
    c
}

fn run(args: &[&str], src: &Cluster, dst: &Cluster, cache: &Path) -> Output {
    pgmove(args, src, dst, cache).output().expect("run pgmove")
}

fn show(out: &Output) -> String {
    format!(
        "exit {:?}\nstdout: {}\nstderr: {}",
        out.status.code(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

fn info(c: &Cluster, db: &str) -> ConnInfo {
    ConnInfo::parse(&format!("postgres://postgres@127.0.0.1:{}/{db}", c.port)).expect("dsn")
}

/// The default dump directory apply and cleanup compute for this plan.
fn default_dir(name: &str, src: &Cluster, dst: &Cluster, db: &str, cache: &Path) -> PathBuf {
    let cache = cache.display().to_string();
    pgmove::plan::default_dump_dir(name, &info(src, db), &info(dst, db), &|k| {
        (k == "XDG_CACHE_HOME").then(|| cache.clone())
    })
    .expect("default dump dir")
}

fn mode(p: &Path) -> u32 {
    std::fs::metadata(p).expect("stat").permissions().mode() & 0o7777
}

fn target_tables(dst: &Cluster, db: &str) -> String {
    dst.psql(
        db,
        "SELECT coalesce(string_agg(schemaname || '.' || tablename, ',' ORDER BY 1), '') FROM pg_tables WHERE schemaname NOT IN ('pg_catalog', 'information_schema')",
    )
}

/// Two plans with the same name, on other databases, run at once: each target gets its own
/// source's data (they shared `/tmp/pgmove-dumps/<name>` and restored each other's dumps).
#[test]
fn two_plans_with_the_same_name_on_other_databases_restore_their_own_data() {
    let src = Cluster::start(Options::default());
    let dst = Cluster::start(Options::default());
    for (db, tag) in [("shop_a", "a"), ("shop_b", "b")] {
        src.create_db(db);
        dst.create_db(db);
        let mut sql = String::new();
        for i in 0..12 {
            sql.push_str(&format!(
                "CREATE TABLE t{i:02} (id int PRIMARY KEY, v text); INSERT INTO t{i:02} SELECT g, '{tag}' || g FROM generate_series(1, 20000) g;\n"
            ));
        }
        sql.push_str(&format!("CREATE TABLE only_{tag} (id int);"));
        src.psql(db, &sql);
    }
    let cache = tempfile::tempdir().expect("tempdir");
    let (da, db) = (
        tempfile::tempdir().expect("tempdir"),
        tempfile::tempdir().expect("tempdir"),
    );
    let pa = write_plan(da.path(), "twin", &src, &dst, "shop_a");
    let pb = write_plan(db.path(), "twin", &src, &dst, "shop_b");
    let dir_a = default_dir("twin", &src, &dst, "shop_a", cache.path());
    let dir_b = default_dir("twin", &src, &dst, "shop_b", cache.path());
    assert_ne!(dir_a, dir_b, "keyed by the endpoints, not only the name");
    let spawn = |p: &Path| {
        pgmove(
            &["apply", p.to_str().expect("utf8"), "--yes"],
            &src,
            &dst,
            cache.path(),
        )
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("start apply")
    };
    let (a, b) = (spawn(&pa), spawn(&pb));
    let (oa, ob) = (
        a.wait_with_output().expect("apply a"),
        b.wait_with_output().expect("apply b"),
    );
    assert_eq!(oa.status.code(), Some(0), "{}", show(&oa));
    assert_eq!(ob.status.code(), Some(0), "{}", show(&ob));
    for (db, tag, other) in [("shop_a", "a", "b"), ("shop_b", "b", "a")] {
        let tables = target_tables(&dst, db);
        assert!(
            tables.contains(&format!("public.only_{tag}")),
            "{db}: {tables}"
        );
        assert!(!tables.contains(&format!("only_{other}")), "{db}: {tables}");
        for i in 0..12 {
            assert_eq!(
                dst.psql(
                    db,
                    &format!("SELECT count(*) FILTER (WHERE v LIKE '{tag}%') || '/' || count(*) FROM t{i:02}")
                ),
                "20000/20000",
                "{db}.t{i:02}"
            );
        }
    }
    // Both removed their own directory after success; the per-user base stays private.
    assert!(!dir_a.exists() && !dir_b.exists());
    let dumps = cache.path().join("pgmove/dumps");
    assert_eq!(mode(&dumps), 0o700);
    assert_eq!(mode(&cache.path().join("pgmove")), 0o700);
}

fn endpoint(c: &Cluster, side: Side, db: &str) -> Endpoint {
    Endpoint::from_dsn(
        side,
        &format!(
            "postgres://postgres@127.0.0.1:{}/{db}?sslmode=disable",
            c.port
        ),
        Some(Secret::new(c.password.clone())),
        &|_| None,
    )
    .expect("dsn")
}

const DEFAULT_DIR_TEST: &str = "dump_dir::the_default_dump_dir_is_private_keyed_and_marked";

/// The default directory is under the user's cache, 0700 (with its parents), keyed by the
/// endpoints and marked with the plan and endpoints; a failed run leaves it for the rerun,
/// which reuses the dump, and success removes it.
#[tokio::test]
async fn the_default_dump_dir_is_private_keyed_and_marked() {
    // In a child process, with XDG_CACHE_HOME set there: apply reads it in-process, and every
    // test of this process would see it.
    if !support::is_child(DEFAULT_DIR_TEST) {
        let own = tempfile::tempdir().expect("tempdir");
        support::run_in_child(
            DEFAULT_DIR_TEST,
            &[("XDG_CACHE_HOME", own.path().as_os_str())],
        );
        return;
    }
    let src = Cluster::start(Options::default());
    let dst = Cluster::start(Options::default());
    src.create_db("shop");
    dst.create_db("shop");
    // The target lacks the owner role: pre-data fails, the dump stays.
    src.psql(
        "shop",
        "CREATE ROLE dd_owner; CREATE TABLE t (id int PRIMARY KEY); INSERT INTO t SELECT generate_series(1, 100); ALTER TABLE t OWNER TO dd_owner;",
    );
    // The cache the parent made (this test in the child process); the other tests pass
    // XDG_CACHE_HOME to the pgmove they start.
    let cache =
        PathBuf::from(std::env::var_os("XDG_CACHE_HOME").expect("XDG_CACHE_HOME from the parent"));
    let job = Job {
        plan_name: "private".to_string(),
        source: endpoint(&src, Side::Source, "shop"),
        target: endpoint(&dst, Side::Target, "shop"),
        schemas: vec![],
        exclude: vec![],
        large_objects: true,
        no_owner: false,
        no_acl: false,
        jobs: 2,
        index_jobs: 1,
        bin_dir: None,
        schema_only: false,
        dump_dir: None,
    };
    let err = dump_restore::run(&job, Progress::logs())
        .await
        .expect_err("owner role missing");
    assert!(err.to_string().contains("dd_owner"), "{err}");
    let dir = default_dir("private", &src, &dst, "shop", cache.as_path());
    assert_eq!(job.dump_dir().expect("dir"), dir);
    assert!(
        dir.starts_with(cache.as_path().join("pgmove/dumps")),
        "{}",
        dir.display()
    );
    for p in [
        dir.clone(),
        cache.as_path().join("pgmove/dumps"),
        cache.as_path().join("pgmove"),
    ] {
        assert_eq!(mode(&p), 0o700, "{}", p.display());
    }
    let marker = std::fs::read_to_string(dir.join(dumpdir::MARKER)).expect("marker");
    assert!(
        marker.contains(&format!(
            "plan: private\nsource: 127.0.0.1:{}/shop\ntarget: 127.0.0.1:{}/shop\ncreated: yes\n",
            src.port, dst.port
        )),
        "{marker}"
    );
    assert!(dir.join("dump/toc.dat").is_file());
    // Another target database of the same plan name gets another directory.
    assert_ne!(
        default_dir("private", &src, &dst, "other", cache.as_path()),
        dir
    );

    dst.psql("postgres", "CREATE ROLE dd_owner");
    let outcome = dump_restore::run(&job, Progress::logs())
        .await
        .expect("rerun");
    assert!(outcome.dump_reused, "{outcome:?}");
    assert_eq!(dst.psql("shop", "SELECT count(*) FROM t"), "100");
    assert!(!dir.exists(), "removed after success");
}

/// A directory at the default path that another user created (or one of its parents) is
/// refused, not used: exit 2 before anything runs, the planted dump untouched.
#[test]
fn a_default_dump_dir_pre_created_by_another_user_is_refused() {
    let src = Cluster::start(Options::default());
    let dst = Cluster::start(Options::default());
    src.create_db("shop");
    dst.create_db("shop");
    src.psql("shop", "CREATE TABLE t (id int); INSERT INTO t VALUES (1);");
    let cache = tempfile::tempdir().expect("tempdir");
    let plans = tempfile::tempdir().expect("tempdir");
    let plan = write_plan(plans.path(), "planted", &src, &dst, "shop");
    let p = plan.to_str().expect("utf8");
    let dir = default_dir("planted", &src, &dst, "shop", cache.path());
    std::fs::create_dir_all(dir.join("dump")).expect("mkdir");
    std::fs::write(dir.join("dump/toc.dat"), "not your dump").expect("plant");
    // Without a marker it is not pgmove's at all.
    let out = run(&["apply", p, "--yes"], &src, &dst, cache.path());
    assert_eq!(out.status.code(), Some(2), "{}", show(&out));
    assert!(
        show(&out).contains("has no pgmove-dump-dir marker"),
        "{}",
        show(&out)
    );
    // With a copy of pgmove's marker, as another local user can write one.
    std::fs::write(
        dir.join(dumpdir::MARKER),
        format!(
            "plan: planted\nsource: 127.0.0.1:{}/shop\ntarget: 127.0.0.1:{}/shop\ncreated: yes\n",
            src.port, dst.port
        ),
    )
    .expect("marker");
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o700)).expect("chmod");
    // nobody (65534) owns the directory at the default path.
    std::os::unix::fs::chown(&dir, Some(65534), Some(65534)).expect("chown");
    for args in [vec!["apply", p, "--yes"], vec!["apply", p, "--dry-run"]] {
        let out = run(&args, &src, &dst, cache.path());
        let text = show(&out);
        assert_eq!(out.status.code(), Some(2), "{text}");
        assert!(
            text.contains(&format!(
                "the dump directory {} belongs to uid 65534, not to the user running pgmove",
                dir.display()
            )),
            "{text}"
        );
        assert!(
            text.contains("hint: give a directory of your own with --dump-dir"),
            "{text}"
        );
    }
    assert_eq!(
        std::fs::read_to_string(dir.join("dump/toc.dat")).expect("planted"),
        "not your dump"
    );
    assert_eq!(
        target_tables(&dst, "shop"),
        "",
        "nothing restored or created"
    );

    // A shared parent (`pgmove/dumps` writable by all) is refused the same way.
    std::fs::remove_dir_all(&dir).expect("rm");
    let dumps = cache.path().join("pgmove/dumps");
    std::fs::set_permissions(&dumps, std::fs::Permissions::from_mode(0o1777)).expect("chmod");
    let out = run(&["apply", p, "--yes"], &src, &dst, cache.path());
    let text = show(&out);
    assert_eq!(out.status.code(), Some(2), "{text}");
    assert!(
        text.contains(&format!("chmod 700 {}", dumps.display())),
        "{text}"
    );
    assert!(!dir.exists());
    std::fs::set_permissions(&dumps, std::fs::Permissions::from_mode(0o700)).expect("chmod");
    let out = run(&["apply", p, "--yes"], &src, &dst, cache.path());
    assert_eq!(out.status.code(), Some(0), "{}", show(&out));
    assert_eq!(dst.psql("shop", "SELECT count(*) FROM t"), "1");
}

/// `--dump-dir` at a non-empty directory without pgmove's marker is refused (exit 2, the
/// directory untouched, in the dry run too); an empty one is used and kept; the dry run says
/// which directory is created and removed.
#[test]
fn a_dump_dir_that_is_not_pgmoves_is_refused_and_survives() {
    let src = Cluster::start(Options::default());
    let dst = Cluster::start(Options::default());
    src.create_db("shop");
    dst.create_db("shop");
    src.psql(
        "shop",
        "CREATE TABLE t (id int); INSERT INTO t VALUES (1), (2);",
    );
    let cache = tempfile::tempdir().expect("tempdir");
    let plans = tempfile::tempdir().expect("tempdir");
    let plan = write_plan(plans.path(), "mine", &src, &dst, "shop");
    let p = plan.to_str().expect("utf8");

    // Default place: the dry run says it is created private and removed after success.
    let out = run(&["apply", p, "--dry-run"], &src, &dst, cache.path());
    let text = show(&out);
    assert_eq!(out.status.code(), Some(0), "{text}");
    let dir = default_dir("mine", &src, &dst, "shop", cache.path());
    assert!(
        text.contains(&format!(
            "-- dump directory {}: created (mode 0700) with the marker {}/pgmove-dump-dir",
            dir.display(),
            dir.display()
        )),
        "{text}"
    );
    assert!(
        text.contains(&format!("\nrm -r {}\n", dir.display())),
        "{text}"
    );
    assert!(!dir.exists(), "the dry run created nothing");

    // No private default place (no HOME nor XDG_CACHE_HOME): refused, with the fix.
    let out = pgmove(&["apply", p, "--dry-run"], &src, &dst, cache.path())
        .env_remove("XDG_CACHE_HOME")
        .env_remove("HOME")
        .output()
        .expect("run pgmove");
    let text = show(&out);
    assert_eq!(out.status.code(), Some(2), "{text}");
    assert!(
        text.contains(
            "neither XDG_CACHE_HOME nor HOME is set to an absolute path\n  hint: set HOME"
        ),
        "{text}"
    );

    let users = tempfile::tempdir().expect("tempdir");
    std::fs::write(users.path().join("precious.txt"), "mine").expect("write");
    let u = users.path().to_str().expect("utf8");
    for args in [
        vec!["apply", p, "--yes", "--dump-dir", u],
        vec!["apply", p, "--dry-run", "--dump-dir", u],
    ] {
        let out = run(&args, &src, &dst, cache.path());
        let text = show(&out);
        assert_eq!(out.status.code(), Some(2), "{text}");
        assert!(
            text.contains(&format!(
                "{u} is not empty and has no pgmove-dump-dir marker: pgmove did not create it"
            )),
            "{text}"
        );
        assert!(
            text.contains("hint: give a new or empty directory"),
            "{text}"
        );
    }
    let names: Vec<_> = std::fs::read_dir(users.path())
        .expect("ls")
        .map(|e| e.expect("entry").file_name())
        .collect();
    assert_eq!(names, ["precious.txt"]);
    assert_eq!(target_tables(&dst, "shop"), "");

    // An empty directory of the user's: used, marked, kept after success.
    let empty = tempfile::tempdir().expect("tempdir");
    let e = empty.path().to_str().expect("utf8");
    let out = run(
        &["apply", p, "--dry-run", "--dump-dir", e],
        &src,
        &dst,
        cache.path(),
    );
    assert!(
        show(&out).contains("exists and is empty; the marker"),
        "{}",
        show(&out)
    );
    let out = run(
        &["apply", p, "--yes", "--dump-dir", e],
        &src,
        &dst,
        cache.path(),
    );
    assert_eq!(out.status.code(), Some(0), "{}", show(&out));
    assert_eq!(dst.psql("shop", "SELECT count(*) FROM t"), "2");
    assert!(empty.path().join("dump/toc.dat").is_file());
    let owner = Owner::new("mine", &info(&src, "shop"), &info(&dst, "shop"));
    assert_eq!(
        dumpdir::inspect(empty.path(), &owner).expect("inspect"),
        dumpdir::DirState::Ours { created: false }
    );
    assert_eq!(
        dumpdir::remove(empty.path(), &owner).expect("remove"),
        dumpdir::Removal::Emptied
    );
    assert!(
        empty.path().is_dir(),
        "a directory pgmove did not create stays"
    );
}
