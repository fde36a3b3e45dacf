use super::*;

const MINIMAL: &str = "version: 1\nname: shop\nsource:\n  dsn: postgres://a@h1/db\ntarget:\n  dsn: postgres://b@h2/db\n";

/// The full plan of docs/plan.md, verbatim.
const SPEC_PLAN: &str = r#"version: 1
name: shop-to-aurora            # names artifacts: slot pgmove_shop_to_aurora, publication, sets
source:
  dsn: postgres://migrator@10.0.0.5:5432/shop   # libpq URI or key=value string
  password: { env: SRC_PASSWORD }               # or { file: /run/secrets/src }; never inline
  sslmode: verify-full                          # disable|prefer|require|verify-ca|verify-full
  sslrootcert: /etc/ssl/rds-global-bundle.pem
target:
  dsn: postgres://admin@shop.cluster-x.eu-west-1.rds.amazonaws.com:5432/shop
  password: { env: DST_PASSWORD }
  kind: auto                                    # auto|self-managed|rds|aurora (auto: detected)
strategy: auto                                  # auto|dump-restore|pglogical|copy-cdc
downtime: 5m                                    # the write outage the user accepts; guides auto
objects:
  schemas: [public, sales]                      # default: all non-system schemas
  exclude: [public.tmp_*, audit.*]              # glob on schema.table
  large_objects: true
roles: skip                                     # skip|create (needs pg_dumpall -r rights)
owner: keep                                     # keep|target-user
jobs: 4                                         # parallel table copies / restore jobs
index_jobs: 2
split_tables_larger_than: 1GB
cdc:
  tables_without_key: refuse                    # refuse|replica-identity-full|insert-only|exclude
  ddl: replicate                                # replicate|ignore|refuse
  start_lsn: null                               # native start point: resume an existing slot
  slot: null                                    # default pgmove_<name>
pglogical:
  replication_set: null                         # default pgmove_<name>; inserts go to i<set>
cutover:
  mode: manual                                  # manual (pgmove cutover) | auto (when lag allows)
  max_lag: 5s
  fence: read-only                              # read-only|none: how writes on the source stop
  sequences: sync
  verify: checksums                             # none|counts|checksums
"#;

fn ok(text: &str) -> Plan {
    parse(text, "p.yaml").unwrap_or_else(|e| panic!("{e}\n---\n{text}"))
}

fn err(text: &str) -> PlanError {
    match parse(text, "p.yaml") {
        Ok(p) => panic!("accepted: {p:?}\n---\n{text}"),
        Err(e) => e,
    }
}

/// MINIMAL plus extra top-level YAML.
fn with(extra: &str) -> String {
    format!("{MINIMAL}{extra}")
}

#[test]
fn minimal_plan_gets_the_spec_defaults() {
    let p = ok(MINIMAL);
    assert_eq!(p.file, "p.yaml");
    assert_eq!(p.version, 1);
    assert_eq!(p.name, "shop");
    assert_eq!(p.strategy, StrategyChoice::Auto);
    assert_eq!(p.target.kind, TargetKind::Auto);
    assert_eq!(p.downtime, Duration::from_secs(300));
    assert_eq!(p.objects, Objects::default());
    assert!(p.objects.large_objects);
    assert_eq!(p.roles, Roles::Skip);
    assert_eq!(p.owner, Owner::Keep);
    assert_eq!(p.jobs, 4);
    assert_eq!(p.index_jobs, 2);
    assert_eq!(p.split_tables_larger_than, 1 << 30);
    assert_eq!(p.cdc, CdcSpec::default());
    assert_eq!(p.cdc.tables_without_key, TablesWithoutKey::Refuse);
    assert_eq!(p.cdc.ddl, Ddl::Replicate);
    assert_eq!(p.cdc.memory_limit, 256 << 20);
    assert_eq!(p.pglogical, PglogicalSpec::default());
    assert_eq!(p.cutover, CutoverSpec::default());
    assert_eq!(p.cutover.mode, CutoverMode::Manual);
    assert_eq!(p.cutover.max_lag, Duration::from_secs(5));
    assert_eq!(p.cutover.fence, Fence::ReadOnly);
    assert_eq!(p.cutover.sequences, Sequences::Sync);
    assert_eq!(p.cutover.verify, VerifyLevel::Checksums);
    assert_eq!(p.bin_dir, None);
    assert_eq!(p.source.password, None);
    assert_eq!(p.source.dsn_pos, Pos::new(4, 8));
}

#[test]
fn the_spec_example_loads() {
    let p = ok(SPEC_PLAN);
    assert_eq!(p.name, "shop-to-aurora");
    assert_eq!(
        p.source.password,
        Some(PasswordSource::Env("SRC_PASSWORD".into()))
    );
    assert_eq!(p.source.password_pos, Pos::new(5, 13));
    assert_eq!(p.source.sslmode, Some(SslMode::VerifyFull));
    assert_eq!(
        p.source.sslrootcert.as_deref(),
        Some(Path::new("/etc/ssl/rds-global-bundle.pem"))
    );
    assert_eq!(
        p.target.dsn,
        "postgres://admin@shop.cluster-x.eu-west-1.rds.amazonaws.com:5432/shop"
    );
    assert_eq!(p.objects.schemas, ["public", "sales"]);
    assert_eq!(p.objects.exclude, ["public.tmp_*", "audit.*"]);
    assert_eq!(p.cdc.start_lsn, None);
    assert_eq!(p.cdc.slot, None);
    // `shop-to-aurora` is not made of [a-z0-9_] only: its names carry a hash of the exact name,
    // so they differ from plan `shop_to_aurora`'s.
    let artifact = p.slot_name();
    assert!(
        artifact.starts_with("pgmove_shop_to_aurora__"),
        "{artifact}"
    );
    assert_eq!(p.publication_name(), artifact);
    assert_eq!(p.replication_set(), artifact);
    assert_eq!(p.insert_set(), format!("i{artifact}"));
}

#[test]
fn every_key_set() {
    let p = ok(&with(
        "strategy: copy-cdc\ndowntime: 1h30m\nroles: create\nowner: target-user\njobs: 16\nindex_jobs: 8\nsplit_tables_larger_than: 512MB\nbin_dir: /usr/lib/postgresql/17/bin\nobjects:\n  large_objects: false\ncdc:\n  tables_without_key: insert-only\n  ddl: ignore\n  start_lsn: 16/B374D848\n  slot: my_slot\n  memory_limit: 64MB\ncutover:\n  mode: auto\n  max_lag: 500ms\n  fence: read-only\n  sequences: skip\n  verify: counts\n",
    ));
    assert_eq!(p.strategy, StrategyChoice::CopyCdc);
    assert_eq!(p.downtime, Duration::from_secs(5400));
    assert_eq!(p.roles, Roles::Create);
    assert_eq!(p.owner, Owner::TargetUser);
    assert_eq!((p.jobs, p.index_jobs), (16, 8));
    assert_eq!(p.split_tables_larger_than, 512 << 20);
    assert_eq!(
        p.bin_dir.as_deref(),
        Some(Path::new("/usr/lib/postgresql/17/bin"))
    );
    assert!(!p.objects.large_objects);
    assert_eq!(p.cdc.tables_without_key, TablesWithoutKey::InsertOnly);
    assert_eq!(p.cdc.ddl, Ddl::Ignore);
    assert_eq!(p.cdc.start_lsn, Some(pg::Lsn(0x16_B374_D848)));
    assert_eq!(p.cdc.memory_limit, 64 << 20);
    assert_eq!(p.slot_name(), "my_slot");
    assert_eq!(p.publication_name(), "pgmove_shop");
    assert_eq!(p.cutover.mode, CutoverMode::Auto);
    assert_eq!(p.cutover.max_lag, Duration::from_millis(500));
    assert_eq!(p.cutover.sequences, Sequences::Skip);
    assert_eq!(p.cutover.verify, VerifyLevel::Counts);
}

#[test]
fn pglogical_set_names() {
    let p = ok(&with(
        "strategy: pglogical\npglogical:\n  replication_set: shop_set\n",
    ));
    assert_eq!(p.replication_set(), "shop_set");
    assert_eq!(p.insert_set(), "ishop_set");
    let p = ok(&with("strategy: pglogical\n"));
    assert_eq!(p.insert_set(), "ipgmove_shop");
}

#[test]
fn nulls_and_empty_sections_mean_defaults() {
    let p = ok(&with(
        "strategy: null\ndowntime: ~\nobjects:\ncdc: {}\npglogical:\ncutover: {}\nbin_dir:\n",
    ));
    assert_eq!(p.strategy, StrategyChoice::Auto);
    assert_eq!(p.downtime, Duration::from_secs(300));
    assert_eq!(p.cutover, CutoverSpec::default());
}

#[test]
fn key_value_dsns_and_password_files() {
    let p = ok("version: 1\nname: kv\nsource:\n  dsn: host=/var/run/postgresql dbname=shop\n  password: {file: /run/secrets/src}\ntarget:\n  dsn: host=new port=5433 dbname=shop\n  password:\n    env: DST_PW\n  kind: self-managed\n");
    assert_eq!(
        p.source.password,
        Some(PasswordSource::File("/run/secrets/src".into()))
    );
    assert_eq!(
        p.target.password,
        Some(PasswordSource::Env("DST_PW".into()))
    );
    assert_eq!(p.target.password_pos, Pos::new(9, 5));
    assert_eq!(p.target.kind, TargetKind::SelfManaged);
}

#[test]
fn objects_filter_by_schema_and_glob() {
    let p = ok(&with(
        "objects:\n  schemas:\n    - public\n    - sales\n  exclude: [public.tmp_*, sales.audit?, '*.bak_*']\n",
    ));
    let o = &p.objects;
    assert!(o.includes("public", "orders"));
    assert!(!o.includes("public", "tmp_x"));
    assert!(!o.includes("sales", "audit1"));
    assert!(o.includes("sales", "audit12"));
    assert!(!o.includes("sales", "bak_2020"));
    assert!(!o.includes("other", "t"));
    let all = Objects::default();
    assert!(all.includes("anything", "t"));
    assert!(!all.includes("pg_catalog", "pg_class"));
    assert!(!all.includes("information_schema", "tables"));
    assert!(!all.includes("pgmove", "progress"));
}

fn invalid_at(text: &str, line: u64, column: u64, message: &str, hint: &str) {
    let e = err(text);
    assert_eq!(
        e.pos(),
        Some(Pos::new(line, column)),
        "position of: {e}\n---\n{text}"
    );
    assert!(e.message().contains(message), "message of: {e}");
    assert!(e.hint().contains(hint), "hint of: {e}");
}

#[test]
fn impossible_combinations_point_at_the_key() {
    invalid_at(
        &with("strategy: pglogical\ncdc:\n  start_lsn: 0/16B3748\n"),
        9,
        14,
        "`cdc.start_lsn` resumes a copy-cdc slot, but `strategy` is pglogical (line 7)",
        "strategy: copy-cdc",
    );
    invalid_at(
        &with("strategy: dump-restore\ncutover:\n  mode: auto\n"),
        9,
        9,
        "strategy dump-restore (line 7) has none",
        "remove cutover.mode",
    );
    invalid_at(
        &with("cutover:\n  mode: auto\n  fence: none\n"),
        9,
        10,
        "would cut over while the source still takes writes",
        "fence: read-only",
    );
    invalid_at(
        &with("strategy: pglogical\ncdc:\n  tables_without_key: replica-identity-full\n"),
        9,
        23,
        "even with REPLICA IDENTITY FULL",
        "insert-only",
    );
    invalid_at(
        &with("strategy: copy-cdc\npglogical:\n  replication_set: s\n"),
        9,
        20,
        "applies to strategy pglogical",
        "strategy: pglogical",
    );
    invalid_at(
        &with("strategy: pglogical\ncdc:\n  slot: s\n"),
        9,
        9,
        "`cdc.slot` names the copy-cdc replication slot",
        "pglogical names its own slots",
    );
    invalid_at(
        &with("strategy: dump-restore\ndowntime: 0s\n"),
        8,
        11,
        "`downtime` is 0",
        "online strategy",
    );
    // Allowed: replica identity full with copy-cdc or auto, auto cutover with auto strategy,
    // cdc settings with auto, fence none when cutting over by hand.
    ok(&with("cdc:\n  tables_without_key: replica-identity-full\n"));
    ok(&with(
        "strategy: copy-cdc\ncdc:\n  tables_without_key: replica-identity-full\n",
    ));
    ok(&with(
        "cutover:\n  mode: auto\ncdc:\n  start_lsn: 0/1\n  slot: s\n",
    ));
    ok(&with("cutover:\n  fence: none\n"));
    ok(&with("strategy: dump-restore\ncdc:\n  ddl: ignore\n"));
}

#[test]
fn values_are_checked_where_they_stand() {
    invalid_at(
        &with("jobs: 0\n"),
        7,
        7,
        "`jobs` must be a whole number from 1 to 256, found 0",
        "jobs: 1",
    );
    invalid_at(
        &with("index_jobs: 0\n"),
        7,
        13,
        "`index_jobs`",
        "index_jobs: 1",
    );
    invalid_at(&with("jobs: 1000\n"), 7, 7, "found 1000", "2 to 16");
    invalid_at(&with("jobs: -1\n"), 7, 7, "found `-1`", "jobs: 4");
    invalid_at(
        &with("split_tables_larger_than: 10kB\n"),
        7,
        27,
        "less than 1MB",
        "10TB",
    );
    invalid_at(
        &with("cdc:\n  memory_limit: 1MB\n"),
        8,
        17,
        "`cdc.memory_limit` is 1048576 bytes, less than 16MB",
        "memory_limit: 256MB",
    );
    invalid_at(
        &with("cdc:\n  memory_limit: lots\n"),
        8,
        17,
        "invalid size for `cdc.memory_limit`",
        "",
    );
    invalid_at(
        &with("cutover:\n  max_lag: 0s\n"),
        8,
        12,
        "`cutover.max_lag` is 0",
        "5s",
    );
    invalid_at(
        &with("cdc:\n  start_lsn: 0/0\n"),
        8,
        14,
        "0/0",
        "confirmed_flush_lsn",
    );
    invalid_at(
        &with("cdc:\n  start_lsn: 16B374D848\n"),
        8,
        14,
        "expected an LSN",
        "16/B374D848",
    );
    invalid_at(
        &with("cdc:\n  slot: My-Slot\n"),
        8,
        9,
        "`cdc.slot` contains `M`",
        "lowercase",
    );
    invalid_at(
        &with(&format!(
            "pglogical:\n  replication_set: {}\n",
            "s".repeat(63)
        )),
        8,
        20,
        "more than 62",
        "`i` in front",
    );
    invalid_at(
        &with("objects:\n  schemas: [public, pg_catalog]\n"),
        8,
        21,
        "a system schema",
        "never moved",
    );
    invalid_at(
        &with("objects:\n  schemas: [a, a]\n"),
        8,
        16,
        "twice",
        "remove",
    );
    invalid_at(
        &with("objects:\n  exclude: [tmp_*]\n"),
        8,
        13,
        "has no schema part",
        "`public.tmp_*` or `*.tmp_*`",
    );
    invalid_at(
        &with("objects:\n  large_objects: yes\n"),
        8,
        18,
        "true or false",
        "YAML 1.2",
    );
    invalid_at(&with("bin_dir: ~/pg/bin\n"), 7, 10, "`~`", "full path");
    invalid_at(&with("target:\n"), 7, 1, "appears twice", "keep one");
    invalid_at(
        "version: 1\nname: x y\nsource:\n  dsn: a\ntarget:\n  dsn: b\n",
        2,
        7,
        "contains a space",
        "letters, digits",
    );
    invalid_at(
        &format!(
            "version: 1\nname: {}\nsource:\n  dsn: a\ntarget:\n  dsn: b\n",
            "n".repeat(56)
        ),
        2,
        7,
        "more than 55",
        "at most 55",
    );
    invalid_at(
        "version: 1\nname: ''\nsource:\n  dsn: a\ntarget:\n  dsn: b\n",
        2,
        7,
        "empty",
        "letters",
    );
}

#[test]
fn servers_are_checked() {
    let plan = |source: &str| {
        format!("version: 1\nname: s\nsource:\n{source}target:\n  dsn: postgres://b@h2/db\n")
    };
    invalid_at(
        &plan("  dsn: ''\n"),
        4,
        8,
        "`source.dsn` is empty",
        "postgres://",
    );
    invalid_at(
        &plan("  dsn: postgres://h:99999/db\n"),
        4,
        8,
        "invalid `source.dsn`: invalid port",
        "libpq URI",
    );
    // What libpq refuses is refused at the DSN's line and column, not at connect time.
    for (dsn, message) in [
        (
            "postgres://h:0/db",
            "invalid `source.dsn`: invalid port \"0\"",
        ),
        ("host=h port=0", "invalid `source.dsn`: invalid port \"0\""),
        ("postgres://::1:5432/db", "IPv6 address without brackets"),
        ("postgres://u@h/d%zz", "invalid percent-encoded token"),
        ("host=a,b,c port=1,2", "2 ports for 3 host(s)"),
    ] {
        invalid_at(
            &plan(&format!("  dsn: {dsn}\n")),
            4,
            8,
            message,
            "libpq URI",
        );
    }
    invalid_at(
        &plan("  dsn: host=h portt=1\n"),
        4,
        8,
        "unknown connection option",
        "key=value",
    );
    invalid_at(
        &plan("  dsn: host=h password=hunter2\n"),
        4,
        8,
        "`source.dsn` contains a password",
        "{env: SRC_PASSWORD}",
    );
    invalid_at(
        &plan("  dsn: postgres://h/db\n  password: {env: A, file: /b}\n"),
        5,
        13,
        "both `env` and `file`",
        "keep one",
    );
    invalid_at(
        &plan("  dsn: postgres://h/db\n  password: {}\n"),
        5,
        13,
        "neither",
        "{env: SRC_PASSWORD}",
    );
    invalid_at(
        &plan("  dsn: postgres://h/db\n  password: {env: 'A B'}\n"),
        5,
        19,
        "not an environment variable name",
        "{env: SRC_PASSWORD}",
    );
    invalid_at(
        &plan("  dsn: postgres://h/db\n  password: {file: ''}\n"),
        5,
        20,
        "is empty",
        "path",
    );
    invalid_at(
        &plan("  dsn: postgres://h/db?sslmode=disable\n  sslmode: verify-full\n"),
        5,
        12,
        "`source.sslmode` is verify-full but `source.dsn` says sslmode=disable",
        "one place",
    );
    invalid_at(
        &plan("  dsn: postgres://h/db?sslrootcert=/a.pem\n  sslrootcert: /b.pem\n"),
        5,
        16,
        "says sslrootcert=/a.pem",
        "one place",
    );
    invalid_at(
        &plan("  dsn: postgres://h/db\n  sslmode: disable\n  sslrootcert: /a.pem\n"),
        6,
        16,
        "sslmode disable",
        "verify-full",
    );
    // Same settings in the DSN and the plan: fine.
    ok("version: 1\nname: s\nsource:\n  dsn: postgres://h/db1\ntarget:\n  dsn: postgres://h/db2\n");
    ok(&plan(
        "  dsn: postgres://h/db?sslmode=require\n  sslmode: require\n",
    ));
    invalid_at(
        "version: 1\nname: s\nsource:\n  dsn: postgres://h1/db\ntarget:\n  dsn: postgres://h2/db\n  kind: aurora-postgres\n",
        7,
        9,
        "unknown `target.kind` value `aurora-postgres`",
        "did you mean `aurora`?",
    );
}

#[test]
fn secrets_never_appear_in_errors() {
    let secret = "hunter2-Sup3r";
    for text in [
        format!("version: 1\nname: s\nsource:\n  dsn: postgres://u:{secret}@h/db\ntarget:\n  dsn: postgres://h2/db\n"),
        format!("version: 1\nname: s\nsource:\n  dsn: host=h password={secret}\ntarget:\n  dsn: postgres://h2/db\n"),
        format!("version: 1\nname: s\nsource:\n  dsn: postgres://u:{secret}@h:badport/db\ntarget:\n  dsn: postgres://h2/db\n"),
        format!("version: 1\nname: s\nsource:\n  dsn: postgres://h/db\n  password: {secret}\ntarget:\n  dsn: postgres://h2/db\n"),
        format!("version: 1\nname: s\nsource:\n  dsn: postgres://h/db\n  password: \"{secret}\"\ntarget:\n  dsn: postgres://h2/db\n"),
        format!("version: 1\nname: s\nsource:\n  dsn: postgres://h/db\n  password:\n    value: {secret}\ntarget:\n  dsn: postgres://h2/db\n"),
    ] {
        let e = err(&text);
        assert!(!e.to_string().contains(secret), "{e}");
        assert!(!format!("{e:?}").contains(secret), "{e:?}");
    }
}

#[test]
fn endpoint_reads_the_password_from_env_and_file() {
    let dir = tempfile::tempdir().expect("tempdir");
    let pw_file = dir.path().join("pw");
    std::fs::write(&pw_file, "from file\n").expect("write");
    std::env::set_var("PGMOVE_PLAN_UNIT_ENV_PW", "from env");
    let text = format!(
        "version: 1\nname: ep\nsource:\n  dsn: postgres://src@h1:5433/shop?sslmode=require\n  password: {{env: PGMOVE_PLAN_UNIT_ENV_PW}}\ntarget:\n  dsn: host=h2 user=dst dbname=shop\n  password: {{file: {}}}\n  sslmode: verify-full\n  sslrootcert: /etc/ssl/rds.pem\n",
        pw_file.display()
    );
    let p = ok(&text);
    let s = p.endpoint(pg::Side::Source).expect("source endpoint");
    assert_eq!(s.side, pg::Side::Source);
    assert_eq!(s.info.host(), "h1");
    assert_eq!(s.info.port(), 5433);
    assert_eq!(
        s.info.password.as_ref().map(Secret::expose),
        Some("from env")
    );
    assert_eq!(s.info.sslmode, Some(SslMode::Require));
    let t = p.endpoint(pg::Side::Target).expect("target endpoint");
    assert_eq!(
        t.info.password.as_ref().map(Secret::expose),
        Some("from file")
    );
    assert_eq!(t.info.sslmode, Some(SslMode::VerifyFull));
    assert_eq!(
        t.info.sslrootcert.as_deref(),
        Some(Path::new("/etc/ssl/rds.pem"))
    );
    assert_eq!(t.info.user(), "dst");
    assert!(!format!("{t:?}").contains("from file"));
}

#[test]
fn endpoint_errors_name_the_key_and_the_source_never_the_value() {
    let dir = tempfile::tempdir().expect("tempdir");
    let missing = dir.path().join("nope");
    let empty = dir.path().join("empty");
    std::fs::write(&empty, "\n").expect("write");
    let text = format!(
        "version: 1\nname: ep\nsource:\n  dsn: postgres://h1/db\n  password: {{env: PGMOVE_PLAN_UNIT_UNSET}}\ntarget:\n  dsn: postgres://h2/db\n  password: {{file: {}}}\n",
        missing.display()
    );
    let p = ok(&text);
    let e = p.endpoint(pg::Side::Source).expect_err("unset variable");
    assert!(matches!(e, PlanError::Secret(_)), "{e:?}");
    assert_eq!(e.pos(), Some(Pos::new(5, 13)));
    assert!(
        e.to_string().contains(
            "p.yaml:5:13: source.password: environment variable PGMOVE_PLAN_UNIT_UNSET is not set"
        ),
        "{e}"
    );
    assert!(e.hint().contains("export PGMOVE_PLAN_UNIT_UNSET"), "{e}");
    let e = p.endpoint(pg::Side::Target).expect_err("missing file");
    assert_eq!(e.pos(), Some(Pos::new(8, 13)));
    assert!(
        e.message().contains(&format!(
            "target.password: cannot read password file {}: no such file",
            missing.display()
        )),
        "{e}"
    );
    let p = ok(&text.replace(&missing.display().to_string(), &empty.display().to_string()));
    let e = p.endpoint(pg::Side::Target).expect_err("empty file");
    assert!(e.message().contains("is empty"), "{e}");
    std::env::set_var("PGMOVE_PLAN_UNIT_EMPTY", "");
    let p = ok(&text.replace("PGMOVE_PLAN_UNIT_UNSET", "PGMOVE_PLAN_UNIT_EMPTY"));
    let e = p.endpoint(pg::Side::Source).expect_err("empty variable");
    assert!(
        e.message().contains("PGMOVE_PLAN_UNIT_EMPTY is empty"),
        "{e}"
    );
}

#[test]
fn an_oversized_password_file_is_refused_naming_the_file_and_the_cap() {
    let dir = tempfile::tempdir().expect("tempdir");
    let big = dir.path().join("pw");
    std::fs::write(&big, "s".repeat(MAX_PASSWORD_FILE_BYTES as usize + 1)).expect("write");
    let text = format!(
        "version: 1\nname: ep\nsource:\n  dsn: postgres://h1/db\ntarget:\n  dsn: postgres://h2/db\n  password: {{file: {}}}\n",
        big.display()
    );
    let p = ok(&text);
    let e = p.endpoint(pg::Side::Target).expect_err("oversized");
    assert!(matches!(e, PlanError::Secret(_)), "{e:?}");
    assert_eq!(e.pos(), Some(Pos::new(7, 13)));
    assert_eq!(
        e.message(),
        format!(
            "target.password: password file {} is larger than 64kB, the most pgmove reads of a password file",
            big.display()
        )
    );
    assert!(e.hint().contains("holds the password alone"), "{e}");
    assert!(!e.to_string().contains("sss"), "no content echoed: {e}");
    // Exactly at the cap is still read.
    std::fs::write(&big, "s".repeat(MAX_PASSWORD_FILE_BYTES as usize)).expect("write");
    let t = ok(&text).endpoint(pg::Side::Target).expect("at the cap");
    assert_eq!(
        t.info.password.as_ref().map(|s| s.expose().len()),
        Some(MAX_PASSWORD_FILE_BYTES as usize)
    );
}

#[test]
fn yaml_tags_are_refused_where_they_stand() {
    for (text, pos, tag) in [
        (with("jobs: !!int 4\n"), Pos::new(7, 7), "!!int"),
        (with("downtime: !custom 5m\n"), Pos::new(7, 11), "!custom"),
        (
            with("objects: !!map {schemas: [a]}\n"),
            Pos::new(7, 10),
            "!!map",
        ),
        (
            with("objects:\n  schemas: [a, ! b]\n"),
            Pos::new(8, 16),
            "!",
        ),
        (
            MINIMAL.replace(
                "dsn: postgres://a@h1/db",
                "dsn: !<tag:example.com,2000:x> y",
            ),
            Pos::new(4, 8),
            "tag:example.com,2000:x",
        ),
    ] {
        let e = err(&text);
        assert!(matches!(e, PlanError::Invalid(_)), "{text}: {e:?}");
        assert_eq!(e.pos(), Some(pos), "{text}: {e}");
        assert_eq!(
            e.message(),
            format!("YAML tag `{tag}` is not allowed in a plan"),
            "{text}"
        );
    }
    // A `!` inside a quoted or plain value is no tag.
    let p = ok(&MINIMAL.replace(
        "postgres://a@h1/db",
        "'postgres://a@h1/db?application_name=!x'",
    ));
    assert!(p.source.dsn.contains("!x"));
}

#[test]
fn a_missing_file_is_an_error_naming_the_path() {
    let e = load(Path::new("/nonexistent/pgmove/plan.yaml")).expect_err("missing");
    assert!(matches!(e, PlanError::Unreadable { .. }), "{e:?}");
    assert_eq!(e.file(), "/nonexistent/pgmove/plan.yaml");
    assert_eq!(
        e.to_string().lines().next(),
        Some("/nonexistent/pgmove/plan.yaml: cannot read the plan file: no such file")
    );
    let dir = tempfile::tempdir().expect("tempdir");
    let e = load(dir.path()).expect_err("directory");
    assert!(e.hint().contains("directory"), "{e}");
    let bin = dir.path().join("bin.yaml");
    std::fs::write(&bin, b"version: 1\nname: \xff\xfe\n").expect("write");
    let e = load(&bin).expect_err("not utf-8");
    assert!(e.message().contains("not UTF-8"), "{e}");
}

#[test]
fn the_target_must_not_be_the_source() {
    let plan = |target: &str| {
        ok(&format!(
            "version: 1\nname: s\nsource:\n  dsn: postgres://a@db.internal/shop\ntarget:\n  dsn: {target}\n"
        ))
    };
    for same in [
        "postgres://b@DB.internal:5432/shop",
        "host=db.internal dbname=shop port=5432",
    ] {
        let e = plan(same)
            .endpoint(pg::Side::Target)
            .expect_err("same database");
        assert_eq!(e.pos(), Some(Pos::new(6, 8)), "{e}");
        assert!(
            e.message().contains(
                "target.dsn reaches the same database as source.dsn (db.internal:5432/shop)"
            ),
            "{e}"
        );
    }
    for other in [
        "postgres://a@db.internal/shop2",
        "postgres://a@db.internal:5433/shop",
        "postgres://a@db2.internal/shop",
    ] {
        plan(other)
            .endpoint(pg::Side::Target)
            .unwrap_or_else(|e| panic!("{other}: {e}"));
    }
}

#[test]
fn pglogical_provider_dsn_and_prefer() {
    let p = ok(&with(
        "strategy: pglogical\npglogical:\n  provider_dsn: host=10.0.0.5 port=5432 dbname=db user=a\n  prefer: true\n",
    ));
    assert_eq!(
        p.pglogical.provider_dsn.as_deref(),
        Some("host=10.0.0.5 port=5432 dbname=db user=a")
    );
    assert!(p.pglogical.prefer);
    let p = ok(&with("pglogical:\n  prefer: true\n"));
    assert!(p.pglogical.prefer);
    assert_eq!(p.pglogical.provider_dsn, None);
    let p = ok(&with("pglogical:\n  provider_dsn: null\n  prefer: false\n"));
    assert!(!p.pglogical.prefer);
    assert_eq!(p.pglogical.provider_dsn, None);

    // An inline password is refused where it stands, and never echoed.
    for dsn in [
        "postgres://a:s3cret@h1:5432/db",
        "host=h1 dbname=db password=s3cret",
    ] {
        let text = with(&format!(
            "strategy: pglogical\npglogical:\n  provider_dsn: {dsn}\n"
        ));
        let e = err(&text);
        assert_eq!(e.pos(), Some(Pos::new(9, 17)), "{e}");
        assert!(e.message().contains("contains a password"), "{e}");
        assert!(e.hint().contains("source's `password` secret"), "{e}");
        assert!(!e.to_string().contains("s3cret"), "{e}");
    }
    invalid_at(
        &with("pglogical:\n  provider_dsn: \"  \"\n"),
        8,
        17,
        "`pglogical.provider_dsn` is empty",
        "source.dsn",
    );
    invalid_at(
        &with("pglogical:\n  prefer: yes\n"),
        8,
        11,
        "`pglogical.prefer` must be true or false",
        "true or false",
    );
    invalid_at(
        &with("strategy: copy-cdc\npglogical:\n  provider_dsn: host=h\n"),
        9,
        17,
        "`pglogical.provider_dsn` applies to strategy pglogical, but `strategy` is copy-cdc (line 7)",
        "strategy: pglogical",
    );
    invalid_at(
        &with("strategy: dump-restore\npglogical:\n  prefer: true\n"),
        9,
        11,
        "`pglogical.prefer` guides `strategy: auto`",
        "strategy: auto",
    );
    // prefer: false says nothing against a named strategy.
    ok(&with("strategy: copy-cdc\npglogical:\n  prefer: false\n"));
}
