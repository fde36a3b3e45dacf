//! Loading plans from files: every example loads, every malformed plan in
//! tests/fixtures/plans/ fails with its exact `file:line:column` and hint, and no input panics.

use std::path::{Path, PathBuf};
use std::time::Duration;

use pgmove::pg::SslMode;
use pgmove::plan::{
    self, CutoverMode, Fence, Owner, PasswordSource, PlanError, Pos, Roles, StrategyChoice,
    TablesWithoutKey, TargetKind, VerifyLevel,
};

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn yaml_files(dir: &Path) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.expect("dir entry").path())
        .filter(|p| p.extension().is_some_and(|x| x == "yaml"))
        .collect();
    files.sort();
    files
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum Kind {
    Syntax,
    Shape,
    Invalid,
}

/// (fixture, line, column, kind, message substring, hint substring)
const MALFORMED: &[(&str, u64, u64, Kind, &str, &str)] = &[
    ("unknown-key", 10, 1, Kind::Shape, "unknown key `colour`", "valid keys here: version, name, source, target, strategy, downtime,"),
    ("misspelt-key", 11, 1, Kind::Shape, "unknown key `dowtime`", "did you mean `downtime`? valid keys here: version, name,"),
    ("misspelt-nested-key", 12, 3, Kind::Shape, "unknown key `max_lga` in `cutover`", "did you mean `max_lag`? valid keys here: mode, max_lag, fence, sequences, verify"),
    ("key-in-wrong-section", 10, 1, Kind::Shape, "unknown key `max_lag`", "`max_lag` belongs under `cutover:`"),
    ("kind-on-source", 7, 3, Kind::Shape, "unknown key `kind` in `source`", "`kind:` belongs under `target:`"),
    ("wrong-type-jobs", 10, 7, Kind::Invalid, "`jobs` must be a whole number from 1 to 256, found `many`", "jobs: 4"),
    ("wrong-type-section", 4, 9, Kind::Shape, "`source` must be keys (a mapping)", "dsn: postgres://user@host:5432/db"),
    ("wrong-type-list", 11, 12, Kind::Shape, "`objects.schemas` must be a list", "schemas: [a, b]"),
    ("wrong-type-scalar", 12, 5, Kind::Shape, "`cutover.max_lag` must be a single value", "takes a single value"),
    ("bad-duration", 10, 11, Kind::Invalid, "invalid duration for `downtime`: `300` has no unit", "write 5m or 300s"),
    ("bad-duration-unit", 11, 12, Kind::Invalid, "invalid duration for `cutover.max_lag`: `5M` has an unknown unit `M`", "units are lowercase: write 5m"),
    ("bad-size", 10, 27, Kind::Invalid, "invalid size for `split_tables_larger_than`: `1XB` has an unknown unit `XB`", "kB, MB, GB, TB"),
    ("bare-size", 10, 27, Kind::Invalid, "`1024` has no unit", "write 1024MB or 1024GB"),
    ("missing-source", 2, 1, Kind::Shape, "missing key `source`", "every plan names both servers"),
    ("missing-dsn", 5, 3, Kind::Shape, "missing key `source.dsn`", "dsn: postgres://user@host:5432/db"),
    ("missing-name", 2, 1, Kind::Shape, "missing key `name`", "name: shop-to-aurora"),
    ("version-missing", 2, 1, Kind::Shape, "missing key `version`", "version: 1"),
    ("inline-password-uri", 5, 8, Kind::Invalid, "`source.dsn` contains a password; a plan never holds secrets", "password: {env: SRC_PASSWORD}"),
    ("inline-password-keyvalue", 5, 8, Kind::Invalid, "`source.dsn` contains a password", "password: {file: /run/secrets/source}"),
    ("inline-password-literal", 6, 13, Kind::Invalid, "`source.password` is written inline; a plan never holds secrets", "password: {env: SRC_PASSWORD}"),
    ("password-unknown-key", 7, 5, Kind::Shape, "unknown key `value` in `source.password`", "`{env: VARIABLE}` or `{file: /path/to/secret}`, never inline"),
    ("password-env-and-file", 6, 13, Kind::Invalid, "gives both `env` and `file`", "keep one"),
    ("bad-sslmode", 7, 12, Kind::Invalid, "unknown `source.sslmode` value `verify_full`: expected one of disable, allow, prefer, require, verify-ca, verify-full", "did you mean `verify-full`?"),
    ("sslrootcert-with-disable", 8, 16, Kind::Invalid, "sslmode disable: it would never be used", "sslmode: verify-full"),
    ("unknown-strategy", 10, 11, Kind::Invalid, "unknown `strategy` value `dumprestore`: expected one of auto, dump-restore, pglogical, copy-cdc", "did you mean `dump-restore`?"),
    ("jobs-zero", 10, 7, Kind::Invalid, "`jobs` must be a whole number from 1 to 256, found 0", "jobs: 1"),
    ("index-jobs-zero", 11, 13, Kind::Invalid, "`index_jobs` must be a whole number from 1 to 256, found 0", "index_jobs: 1"),
    ("version-2", 2, 10, Kind::Invalid, "unsupported plan version 2: this pgmove reads version 1", "needs a newer pgmove"),
    ("tabs", 5, 2, Kind::Syntax, "a tab in the indentation", "indent with spaces"),
    ("invalid-yaml-indent", 4, 11, Kind::Syntax, "mapping values are not allowed", "check the indentation"),
    ("invalid-yaml-bracket", 11, 12, Kind::Syntax, "unclosed bracket", "close the `[`"),
    ("invalid-yaml-quote", 3, 7, Kind::Syntax, "unclosed quote", "close the quote"),
    ("duplicate-key", 11, 1, Kind::Shape, "key `jobs` appears twice", "keep one `jobs:`"),
    ("empty-name", 3, 7, Kind::Invalid, "the plan's `name` is empty", "letters, digits, `-` and `_`"),
    ("bad-name", 3, 7, Kind::Invalid, "the plan's `name` contains a space", "at most 55 characters"),
    ("pglogical-start-lsn", 12, 14, Kind::Invalid, "`cdc.start_lsn` resumes a copy-cdc slot, but `strategy` is pglogical (line 10)", "strategy: copy-cdc"),
    ("auto-cutover-dump-restore", 12, 9, Kind::Invalid, "`cutover.mode: auto` waits for replication to catch up, and strategy dump-restore (line 10) has none", "remove cutover.mode"),
    ("auto-cutover-no-fence", 12, 10, Kind::Invalid, "`cutover.fence: none` with `cutover.mode: auto` (line 11)", "fence: read-only"),
    ("bad-lsn", 11, 14, Kind::Invalid, "invalid `cdc.start_lsn` `16B374D848`: expected an LSN", "16/B374D848"),
    ("exclude-without-schema", 11, 13, Kind::Invalid, "exclude pattern `tmp_*` has no schema part", "`public.tmp_*` or `*.tmp_*`"),
    ("empty", 1, 1, Kind::Shape, "the plan is empty", "version: 1"),
    ("not-a-mapping", 1, 1, Kind::Shape, "the plan must be keys (a mapping)", "starting with `version: 1`"),
    ("multiple-documents", 10, 1, Kind::Shape, "more than one YAML document", "one document"),
    ("tag-binary", 8, 8, Kind::Invalid, "YAML tag `!!binary` is not allowed in a plan", "remove `!!binary`: plan values are plain text"),
    ("tag-custom", 10, 10, Kind::Invalid, "YAML tag `!custom` is not allowed in a plan", "remove `!custom`"),
    ("tag-str", 10, 11, Kind::Invalid, "YAML tag `!!str` is not allowed in a plan", "quote a value to keep it a string"),
];

fn kind(e: &PlanError) -> Option<Kind> {
    match e {
        PlanError::Syntax(_) => Some(Kind::Syntax),
        PlanError::Shape(_) => Some(Kind::Shape),
        PlanError::Invalid(_) => Some(Kind::Invalid),
        _ => None,
    }
}

#[test]
fn every_malformed_plan_is_located_and_hinted() {
    let dir = root().join("tests/fixtures/plans");
    let mut failures = Vec::new();
    for (name, line, column, k, message, hint) in MALFORMED {
        let path = dir.join(format!("{name}.yaml"));
        let e = match plan::load(&path) {
            Ok(_) => {
                failures.push(format!("{name}: accepted"));
                continue;
            }
            Err(e) => e,
        };
        let text = e.to_string();
        let prefix = format!("{}:{line}:{column}: ", path.display());
        let first = text.lines().next().unwrap_or("");
        let ok = first.starts_with(&prefix)
            && first.contains(message)
            && e.pos() == Some(Pos::new(*line, *column))
            && e.message().contains(message)
            && e.hint().contains(hint)
            && text.contains(&format!("\n  hint: {}", e.hint()))
            && kind(&e) == Some(*k);
        if !ok {
            failures.push(format!(
                "{name}: expected {prefix}{message} / hint: {hint} ({k:?})\n   got {text} ({:?})",
                kind(&e)
            ));
        }
    }
    assert!(failures.is_empty(), "\n{}", failures.join("\n"));
}

#[test]
fn every_fixture_is_in_the_table() {
    let dir = root().join("tests/fixtures/plans");
    for path in yaml_files(&dir) {
        let stem = path
            .file_stem()
            .and_then(|s| s.to_str())
            .expect("utf-8 name");
        assert!(
            MALFORMED.iter().any(|(n, ..)| *n == stem),
            "{} has no expectation in MALFORMED",
            path.display()
        );
    }
}

#[test]
fn the_secret_in_a_refused_plan_is_never_printed() {
    let dir = root().join("tests/fixtures/plans");
    for name in [
        "inline-password-uri",
        "inline-password-keyvalue",
        "inline-password-literal",
        "password-unknown-key",
    ] {
        let path = dir.join(format!("{name}.yaml"));
        let text = std::fs::read_to_string(&path).expect("read");
        assert!(text.contains("Tr0ub4dor"), "{name} holds the test secret");
        let e = plan::load(&path).expect_err(name);
        assert!(!e.to_string().contains("Tr0ub4dor"), "{name}: {e}");
        assert!(!format!("{e:?}").contains("Tr0ub4dor"), "{name}: {e:?}");
    }
}

#[test]
fn a_missing_plan_file_names_its_path() {
    let path = root().join("plans/examples/no-such-plan.yaml");
    let e = plan::load(&path).expect_err("missing");
    assert!(matches!(e, PlanError::Unreadable { .. }), "{e:?}");
    assert!(
        e.to_string().starts_with(&format!(
            "{}: cannot read the plan file: no such file\n  hint: ",
            path.display()
        )),
        "{e}"
    );
}

#[test]
fn every_example_loads() {
    let files = yaml_files(&root().join("plans/examples"));
    let names: Vec<String> = files
        .iter()
        .filter_map(|p| p.file_name().and_then(|n| n.to_str()).map(str::to_string))
        .collect();
    for required in [
        "local-online.yaml",
        "offline-dump-restore.yaml",
        "rds-aurora-import.yaml",
        "pglogical.yaml",
        "partitioned-postgis.yaml",
    ] {
        assert!(names.iter().any(|n| n == required), "missing {required}");
    }
    for path in &files {
        let p = plan::load(path).unwrap_or_else(|e| panic!("{e}"));
        // Passwords come from the environment or a file, never the plan.
        for side in [&p.source, &p.target.server] {
            assert!(
                side.password.is_some(),
                "{}: no password source",
                path.display()
            );
        }
    }
}

fn example(name: &str) -> plan::Plan {
    let path = root().join("plans/examples").join(name);
    plan::load(&path).unwrap_or_else(|e| panic!("{e}"))
}

#[test]
fn examples_say_what_their_names_say() {
    let p = example("local-online.yaml");
    assert_eq!(p.strategy, StrategyChoice::CopyCdc);
    // `local-online` has a `-`: its artifact names carry a hash of the exact name, so they
    // never equal those of a plan `local_online` (issue 10, item 3).
    assert!(
        p.slot_name().starts_with("pgmove_local_online__"),
        "{}",
        p.slot_name()
    );
    assert_eq!(p.source.sslmode, Some(SslMode::Disable));
    assert_eq!(
        p.source.password,
        Some(PasswordSource::Env("SRC_PASSWORD".into()))
    );
    assert!(!p.objects.includes("public", "tmp_scratch"));
    assert!(p.objects.includes("public", "orders"));

    let p = example("offline-dump-restore.yaml");
    assert_eq!(p.strategy, StrategyChoice::DumpRestore);
    assert_eq!(p.downtime, Duration::from_secs(7200));
    assert_eq!(p.roles, Roles::Create);
    assert_eq!(p.target.kind, TargetKind::SelfManaged);
    assert_eq!(
        p.target.password,
        Some(PasswordSource::File("/run/secrets/erp-target".into()))
    );
    assert!(p.bin_dir.is_some());
    assert!(!p.objects.includes("public", "orders_archive"));
    assert!(!p.objects.includes("sales", "orders"));
    assert_eq!(p.cutover.verify, VerifyLevel::Counts);

    let p = example("rds-aurora-import.yaml");
    assert_eq!(p.target.kind, TargetKind::Aurora);
    assert_eq!(p.target.sslmode, Some(SslMode::VerifyFull));
    assert_eq!(
        p.target.sslrootcert.as_deref(),
        Some(Path::new("/etc/ssl/rds-global-bundle.pem"))
    );
    assert_eq!(p.owner, Owner::TargetUser);
    assert_eq!(
        p.cdc.tables_without_key,
        TablesWithoutKey::ReplicaIdentityFull
    );
    assert_eq!(p.split_tables_larger_than, 2 << 30);

    let p = example("pglogical.yaml");
    assert_eq!(p.strategy, StrategyChoice::Pglogical);
    assert_eq!(p.replication_set(), "pgmove_crm");
    assert_eq!(p.insert_set(), "ipgmove_crm");
    assert_eq!(p.cutover.mode, CutoverMode::Auto);
    assert_eq!(p.cutover.fence, Fence::ReadOnly);
    assert!(!p.objects.includes("public", "tmp_x"));

    let p = example("partitioned-postgis.yaml");
    assert_eq!(p.objects.schemas, ["public", "tracking"]);
    assert!(!p.objects.large_objects);
    assert_eq!(p.cdc.tables_without_key, TablesWithoutKey::Exclude);
}

/// Feeds garbage, truncations and mutations of real plans: each must give `Ok` or a located
/// `Err`, never a panic.
#[test]
fn no_input_panics() {
    let garbage: &[&str] = &[
        "",
        " ",
        "\n\n\n",
        "~",
        "null",
        "42",
        "true",
        "'just a string'",
        "[]",
        "{}",
        "- - - -",
        "[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[",
        "{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{",
        "version: [",
        "version: {",
        "version: '",
        "version: \"",
        "version: 1\nname:",
        "version: 1\nname: x\nsource:",
        "version: 1\nname: x\nsource:\n  dsn:",
        "version: 1\nname: x\nsource:\n  password: {",
        "version: 99999999999999999999999999\n",
        "version: -1\n",
        "version: 1.0\n",
        "version: 0x1\n",
        "? [a, b]\n: c\n",
        "&a [*a]\n",
        "a: &a [*a, *a]\n",
        "version: *missing\n",
        "version: !!int 1\nname: !!str x\n",
        "version: 1\nname: x\nsource: !custom\n  dsn: y\n",
        "%YAML 2.0\n---\nversion: 1\n",
        "---\n---\n---\n",
        "...\n",
        "\u{feff}version: 1\n",
        "version:\u{0}1\n",
        "\u{1F600}: \u{1F600}\n",
        "version: 1\r\nname: x\r\n",
        "\tversion: 1\n",
        "version: 1\n  - a\n",
        "version: |\n  1\n",
        "version: >\n  1\n",
        "<<: {version: 1}\n",
        "version: 1\nobjects:\n  schemas: [\"\", \"\"]\n",
        "version: 1\nname: x\nsource:\n  dsn: postgres://[::1\ntarget:\n  dsn: x\n",
        "version: 1\nname: x\nsource:\n  dsn: postgres://%zz@h/db\ntarget:\n  dsn: y\n",
        "version: 1\nname: x\nsource:\n  dsn: \"host='unterminated\"\ntarget:\n  dsn: y\n",
        "version: 1\nname: x\nsource:\n  dsn: a\ntarget:\n  dsn: b\ndowntime: 99999999999999999999999h\n",
        "version: 1\nname: x\nsource:\n  dsn: a\ntarget:\n  dsn: b\nsplit_tables_larger_than: 1.99999999999999999999999999999GB\n",
        "version: 1\nname: x\nsource:\n  dsn: a\ntarget:\n  dsn: b\ncdc:\n  start_lsn: FFFFFFFFF/0\n",
        "version: 1\nname: x\nsource:\n  dsn: a\ntarget:\n  dsn: b\njobs: 99999999999999999999999\n",
    ];
    let check = |text: &str| match plan::parse(text, "g.yaml") {
        Ok(_) => {}
        Err(e) => {
            let s = e.to_string();
            assert!(s.starts_with("g.yaml"), "{s}");
            assert!(s.contains("\n  hint: "), "{s}");
            assert!(!e.hint().is_empty(), "{s}");
        }
    };
    for g in garbage {
        check(g);
        assert!(plan::parse(g, "g.yaml").is_err(), "accepted garbage {g:?}");
    }
    let mut seed: u64 = 0x9E37_79B9_7F4A_7C15;
    let mut next = move || {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed
    };
    let noise = [
        "", ":", " ", "\t", "\n", "[", "]", "{", "}", "'", "\"", "#", "-", "*", "&", "!", "|", ">",
        "?", ",", "%", "@", "`", "\u{0}", "é", "0", "-1", "~",
    ];
    for path in yaml_files(&root().join("plans/examples"))
        .into_iter()
        .chain(yaml_files(&root().join("tests/fixtures/plans")))
    {
        let text = std::fs::read_to_string(&path).expect("read");
        // Every truncation.
        for (i, _) in text.char_indices() {
            check(&text[..i]);
        }
        // Random edits: replace a character run with noise.
        let chars: Vec<char> = text.chars().collect();
        for _ in 0..300 {
            if chars.is_empty() {
                break;
            }
            let len = chars.len() as u64;
            let at = (next() % len) as usize;
            let cut = (next() % 4) as usize;
            let with = noise[(next() % noise.len() as u64) as usize];
            let mut s: String = chars[..at].iter().collect();
            s.push_str(with);
            s.extend(chars[(at + cut).min(chars.len())..].iter());
            check(&s);
        }
    }
}

/// A plan file is read with a cap: `/dev/zero` (endless) ends at once with exit 2, naming the
/// file and the cap, instead of growing until the machine runs out of memory.
#[test]
fn an_endless_plan_file_is_refused_at_the_cap() {
    // The binary first, under a timeout: before the cap it read until memory ran out.
    let start = std::time::Instant::now();
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_pgmove"))
        .args(["plan", "/dev/zero"])
        .env("NO_COLOR", "1")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("run pgmove");
    let status = loop {
        if let Some(s) = child.try_wait().expect("wait") {
            break s;
        }
        if start.elapsed() > Duration::from_secs(20) {
            let _ = child.kill();
            let _ = child.wait();
            panic!("pgmove plan /dev/zero still running after 20s");
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let out = child.wait_with_output().expect("output");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("/dev/zero: cannot read the plan file: larger than 4MB"),
        "{stderr}"
    );
    let e = plan::load(Path::new("/dev/zero")).expect_err("endless");
    assert!(matches!(e, PlanError::Unreadable { .. }), "{e:?}");
    assert_eq!(
        e.to_string().lines().next(),
        Some("/dev/zero: cannot read the plan file: larger than 4MB, the most pgmove reads of a plan")
    );
    let dir = tempfile::tempdir().expect("tempdir");
    let big = dir.path().join("big.yaml");
    let mut text =
        std::fs::read_to_string(root().join("tests/fixtures/plans/jobs-zero.yaml")).expect("read");
    text.push_str(&format!(
        "# {}\n",
        "x".repeat(plan::MAX_PLAN_BYTES as usize)
    ));
    std::fs::write(&big, text).expect("write");
    let e = plan::load(&big).expect_err("too big");
    assert!(e.message().contains("larger than 4MB"), "{e}");
}

/// `verify --chunk-rows 0` is bad input (exit 2), not silently taken as 1 (one query per row).
#[test]
fn verify_chunk_rows_zero_is_refused() {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_pgmove"))
        .args(["verify", "no-such-plan.yaml", "--chunk-rows", "0"])
        .env("NO_COLOR", "1")
        .output()
        .expect("run pgmove");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("--chunk-rows"), "{stderr}");
    assert!(stderr.contains("at least 1"), "{stderr}");
    assert!(
        !stderr.contains("no-such-plan.yaml: cannot read"),
        "refused before reading the plan: {stderr}"
    );
}
