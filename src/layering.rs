//! The layering rule, checked on the source files: the modules the strategies are built on
//! (change capture, cutover, verify, cleanup, and the pieces moved below the strategies so
//! they can share them) never import `crate::strategy`. A rule they need from a strategy
//! moves down to where it belongs (a name to `plan::names`, shared SQL work to a module of its
//! own) instead.

use std::path::{Path, PathBuf};

/// What lies below `crate::strategy`, relative to `src/`: folders (every `.rs` file under
/// them) and single files. `cleanup*` is matched by prefix (a `cleanup.rs` or `cleanup/`).
const BELOW_STRATEGY: &[&str] = &[
    "cdc",
    "cutover",
    "verify",
    "cleanup*",
    "matviews.rs",
    "replica_identity.rs",
];

/// The lines of `text` that reach `crate::strategy`: 1-based line number and the line. Catches
/// `crate::strategy`, any `super::...::strategy` (no module below the strategies has a child
/// named `strategy`), and `strategy` inside a grouped `use crate::{...}`. Comments are skipped.
fn strategy_uses(text: &str) -> Vec<(usize, String)> {
    let mut found = Vec::new();
    let mut in_crate_group = false;
    for (i, line) in text.lines().enumerate() {
        let code = line.trim();
        if code.starts_with("//") {
            continue;
        }
        let code = code.split(" //").next().unwrap_or(code);
        let compact: String = code.chars().filter(|c| !c.is_whitespace()).collect();
        let mut hit = compact.contains("crate::strategy")
            || compact.contains("super::strategy")
            || (in_crate_group
                && compact
                    .split([',', '{', '}'])
                    .any(|item| item == "strategy" || item.starts_with("strategy::")));
        if compact.starts_with("usecrate::{") || compact.starts_with("pubusecrate::{") {
            in_crate_group = true;
            // A one-line group: its items are on this line.
            let items = compact.split_once('{').map_or("", |(_, rest)| rest);
            hit |= items
                .split([',', '{', '}', ';'])
                .any(|item| item == "strategy" || item.starts_with("strategy::"));
        }
        if in_crate_group && compact.contains("};") {
            in_crate_group = false;
        }
        if hit {
            found.push((i + 1, line.to_string()));
        }
    }
    found
}

/// The `.rs` files under `path` (itself when it is one), sorted.
fn rust_files(path: &Path) -> Vec<PathBuf> {
    if path.is_file() {
        return vec![path.to_path_buf()];
    }
    let mut out = Vec::new();
    let Ok(entries) = std::fs::read_dir(path) else {
        return out;
    };
    for entry in entries.flatten() {
        let p = entry.path();
        if p.is_dir() {
            out.extend(rust_files(&p));
        } else if p.extension().is_some_and(|e| e == "rs") {
            out.push(p);
        }
    }
    out.sort();
    out
}

/// The files [`BELOW_STRATEGY`] names under `src`.
fn files_below_strategy(src: &Path) -> Vec<PathBuf> {
    let mut files = Vec::new();
    for entry in BELOW_STRATEGY {
        match entry.strip_suffix('*') {
            Some(prefix) => {
                let mut matched: Vec<PathBuf> = std::fs::read_dir(src)
                    .expect("src/ is readable")
                    .flatten()
                    .map(|e| e.path())
                    .filter(|p| {
                        p.file_name()
                            .and_then(|n| n.to_str())
                            .is_some_and(|n| n.starts_with(prefix))
                    })
                    .collect();
                matched.sort();
                assert!(!matched.is_empty(), "nothing in src/ matches {entry}");
                for p in matched {
                    files.extend(rust_files(&p));
                }
            }
            None => {
                let p = src.join(entry);
                assert!(p.exists(), "src/{entry} is gone: update BELOW_STRATEGY");
                files.extend(rust_files(&p));
            }
        }
    }
    files
}

#[test]
fn lower_layers_never_import_strategy() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let files = files_below_strategy(&src);
    assert!(files.len() > 10, "too few files scanned: {files:?}");
    let mut offences = Vec::new();
    for file in &files {
        let text = std::fs::read_to_string(file).expect("source file is readable");
        let shown = file
            .strip_prefix(&src)
            .unwrap_or(file)
            .display()
            .to_string();
        for (line, code) in strategy_uses(&text) {
            offences.push(format!("src/{shown}:{line}: {}", code.trim()));
        }
    }
    assert!(
        offences.is_empty(),
        "modules below the strategies import crate::strategy (move what they need below \
         src/strategy instead):\n{}",
        offences.join("\n")
    );
}

#[test]
fn every_form_of_the_import_is_caught() {
    let lines =
        |text: &str| -> Vec<usize> { strategy_uses(text).into_iter().map(|(n, _)| n).collect() };
    assert_eq!(lines("use crate::strategy::copy_cdc;"), vec![1]);
    assert_eq!(lines("let x = crate::strategy::copy_cdc::f();"), vec![1]);
    assert_eq!(lines("fn f() {}\n    crate :: strategy::g();"), vec![2]);
    assert_eq!(lines("use super::super::strategy::dump_restore;"), vec![1]);
    assert_eq!(lines("use super::strategy;"), vec![1]);
    assert_eq!(lines("use crate::{pg, strategy::copy_cdc};"), vec![1]);
    assert_eq!(lines("use crate::{pg, strategy};"), vec![1]);
    assert_eq!(
        lines("use crate::{\n    pg::quote,\n    strategy::copy_cdc,\n};\nuse x::strategy;"),
        vec![3]
    );
    // Not imports: comments, other crates' modules, words in strings.
    assert!(lines("// see crate::strategy::copy_cdc").is_empty());
    assert!(lines("use crate::{pg, plan::strategy_name};").is_empty());
    assert!(lines("let s = \"strategy copy-cdc\";").is_empty());
    assert!(lines("use crate::{\n    strategy_free,\n};\nlet strategy = 1;").is_empty());
}
