use serde_json::{json, Value};

use super::*;
use crate::plan::raw;

/// The schema, compiled (it must itself be a valid draft-07 schema).
fn validator() -> jsonschema::Validator {
    let s = schema();
    assert!(
        jsonschema::draft7::meta::is_valid(&s),
        "the plan schema is not a valid draft-07 schema"
    );
    jsonschema::draft7::new(&s).unwrap_or_else(|e| panic!("schema does not compile: {e}"))
}

/// YAML text as the JSON value an editor's YAML language server validates.
fn yaml_value(yaml: &str) -> Value {
    serde_saphyr::from_str::<Value>(yaml).unwrap_or_else(|e| panic!("{yaml:?}: {e}"))
}

/// The smallest plan the parser accepts.
fn base() -> Value {
    json!({
        "version": 1,
        "name": "ref-test",
        "source": { "dsn": "postgres://app@old.internal/shop" },
        "target": { "dsn": "postgres://app@new.internal/shop" },
    })
}

fn set(doc: &mut Value, path: &str, value: Value) {
    let mut at = doc;
    let parts: Vec<&str> = path.split('.').collect();
    for part in &parts[..parts.len() - 1] {
        if at.get(*part).is_none_or(Value::is_null) {
            at[*part] = json!({});
        }
        at = &mut at[*part];
    }
    at[parts[parts.len() - 1]] = value;
}

/// Whether the plan parser accepts `doc` (JSON is YAML), with its error.
fn parser_accepts(doc: &Value) -> Result<(), String> {
    let text = serde_json::to_string_pretty(doc).unwrap_or_default();
    crate::plan::parse(&text, "ref.yaml")
        .map(|_| ())
        .map_err(|e| e.to_string())
}

fn schema_errors(v: &jsonschema::Validator, doc: &Value) -> Vec<String> {
    v.iter_errors(doc).map(|e| e.to_string()).collect()
}

/// The reference names exactly the keys the parser takes (raw::SECTIONS, itself checked
/// against the serde structs).
#[test]
fn the_reference_has_exactly_the_parsers_keys() {
    let mut parser: Vec<String> = Vec::new();
    for (section, keys) in raw::SECTIONS {
        for key in *keys {
            match *section {
                "top level" if raw::SECTIONS.iter().any(|(s, _)| s == key) => {}
                "top level" => parser.push(key.to_string()),
                "password" => {} // the two forms of `*.password`, in its schema
                s => parser.push(format!("{s}.{key}")),
            }
        }
    }
    let mut reference: Vec<String> = KEYS
        .iter()
        .flat_map(|k| k.paths.iter().map(|p| p.to_string()))
        .collect();
    parser.sort();
    reference.sort();
    assert_eq!(
        reference, parser,
        "src/plan/reference.rs KEYS against the parser's keys"
    );
    let sections: Vec<&str> = SECTIONS.iter().map(|(s, _)| *s).collect();
    for (s, _) in raw::SECTIONS
        .iter()
        .skip(1)
        .filter(|(s, _)| *s != "password")
    {
        assert!(sections.contains(s), "section {s} has no description");
    }
    for key in KEYS {
        for field in [
            key.default,
            key.strategies,
            key.what,
            key.example,
            key.wrong,
        ] {
            assert!(!field.trim().is_empty(), "{}: an empty field", key.doc_key);
        }
    }
}

/// Every key's example is accepted by the parser and the schema, and its wrong value refused
/// by both: the schema describes values as the parser takes them.
#[test]
fn examples_pass_and_wrong_values_fail_both_the_parser_and_the_schema() {
    let v = validator();
    let mut checked = 0;
    for key in KEYS {
        for path in key.paths {
            let mut good = base();
            for (p, val) in key.example_needs {
                set(&mut good, p, yaml_value(val));
            }
            let mut bad = good.clone();
            set(&mut good, path, yaml_value(key.example));
            set(&mut bad, path, yaml_value(key.wrong));
            if let Err(e) = parser_accepts(&good) {
                panic!(
                    "{path}: the parser refuses the example {:?}: {e}",
                    key.example
                );
            }
            let errors = schema_errors(&v, &good);
            assert!(
                errors.is_empty(),
                "{path}: the schema refuses the example {:?}: {errors:?}",
                key.example
            );
            assert!(
                parser_accepts(&bad).is_err(),
                "{path}: the parser accepts the wrong value {:?}",
                key.wrong
            );
            assert!(
                !v.is_valid(&bad),
                "{path}: the schema accepts the wrong value {:?}",
                key.wrong
            );
            checked += 1;
        }
    }
    assert!(checked >= 35, "only {checked} keys checked");
}

/// Every keyword value the parser knows is in the schema, and null leaves an optional key at
/// its default for both.
#[test]
fn keyword_values_and_null_are_as_the_parser_takes_them() {
    let v = validator();
    for key in KEYS {
        if let Kind::Keyword(names) = key.kind {
            for name in names() {
                for path in key.paths {
                    let mut doc = base();
                    if *path == "pglogical.replication_set" {
                        set(&mut doc, "strategy", json!("pglogical"));
                    }
                    set(&mut doc, path, json!(name));
                    assert!(parser_accepts(&doc).is_ok(), "{path}: {name}");
                    assert!(
                        v.is_valid(&doc),
                        "{path}: {name}: {:?}",
                        schema_errors(&v, &doc)
                    );
                }
            }
        }
        if key.default != "required" {
            for path in key.paths {
                let mut doc = base();
                set(&mut doc, path, Value::Null);
                assert!(parser_accepts(&doc).is_ok(), "{path}: null");
                assert!(
                    v.is_valid(&doc),
                    "{path}: null: {:?}",
                    schema_errors(&v, &doc)
                );
            }
        }
    }
}

/// Durations and sizes: the schema's patterns agree with the parser on the spellings people
/// write, right and wrong.
#[test]
fn duration_and_size_patterns_agree_with_the_parser() {
    let duration = regex_of(DURATION_PATTERN);
    for s in [
        "5s", "5m", "1h30m", "1h 30m", "500ms", "2d", " 10 min ", "1m500ms", "3 hours",
    ] {
        assert!(crate::plan::parse_duration(s).is_ok(), "{s}");
        assert!(v_matches(&duration, s), "duration pattern refuses {s:?}");
    }
    for s in [
        "", "300", "5x", "-5s", "5.5s", "5S", "5M", "1h30", "1h-30m", "5s!",
    ] {
        assert!(crate::plan::parse_duration(s).is_err(), "{s}");
        assert!(!v_matches(&duration, s), "duration pattern accepts {s:?}");
    }
    let size = regex_of(SIZE_PATTERN);
    for s in [
        "1GB",
        "1GiB",
        "1G",
        "1 gb",
        "512MB",
        "10kB",
        "2TiB",
        "100B",
        "100 bytes",
        "1.5GB",
    ] {
        assert!(crate::plan::parse_size(s).is_ok(), "{s}");
        assert!(v_matches(&size, s), "size pattern refuses {s:?}");
    }
    for s in [
        "", "GB", "1024", "1XB", "1.GB", ".5GB", "-1GB", "1 G B", "1ki",
    ] {
        assert!(crate::plan::parse_size(s).is_err(), "{s}");
        assert!(!v_matches(&size, s), "size pattern accepts {s:?}");
    }
}

/// A one-pattern schema, to test a pattern with the validator editors' patterns resemble.
fn regex_of(pattern: &str) -> jsonschema::Validator {
    jsonschema::draft7::new(&json!({ "type": "string", "pattern": pattern }))
        .unwrap_or_else(|e| panic!("{pattern}: {e}"))
}

fn v_matches(v: &jsonschema::Validator, s: &str) -> bool {
    v.is_valid(&json!(s))
}

/// Unknown keys are refused by the schema as by the parser, at the top and in sections.
#[test]
fn unknown_keys_fail_the_schema() {
    let v = validator();
    for path in [
        "strategies",
        "cdc.slot_name",
        "source.host",
        "cutover.lag",
        "source.password.var",
    ] {
        let mut doc = base();
        set(&mut doc, path, json!("x"));
        assert!(parser_accepts(&doc).is_err(), "{path}");
        assert!(
            !v.is_valid(&doc),
            "the schema accepts the unknown key {path}"
        );
    }
    let mut doc = base();
    doc.as_object_mut().map(|o| o.remove("target"));
    assert!(
        !v.is_valid(&doc),
        "the schema accepts a plan without target"
    );
    let mut doc = base();
    set(
        &mut doc,
        "source.password",
        json!({"env": "A", "file": "/b"}),
    );
    assert!(parser_accepts(&doc).is_err());
    assert!(!v.is_valid(&doc), "the schema accepts both env and file");
}

/// Compares `actual` with the file at `path` (under the crate root); UPDATE_GOLDEN=1 rewrites.
fn check_file(path: &str, actual: &str, expected: &str) {
    if std::env::var_os("UPDATE_GOLDEN").is_some() {
        std::fs::write(path, actual).unwrap_or_else(|e| panic!("{path}: {e}"));
        return;
    }
    assert!(
        actual == expected,
        "{path} is not what src/plan/reference.rs generates: run `UPDATE_GOLDEN=1 cargo test --lib plan::reference` and commit it"
    );
}

/// docs/plan.md's key table is the one this module generates.
#[test]
fn docs_plan_md_has_the_generated_table() {
    let path = "docs/plan.md";
    let doc = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{path}: {e}"));
    let (Some(start), Some(end)) = (doc.find(TABLE_BEGIN), doc.find(TABLE_END)) else {
        panic!("{path} has no generated table ({TABLE_BEGIN} ... {TABLE_END})");
    };
    let end = end + TABLE_END.len() + 1;
    let rewritten = format!(
        "{}{}{}",
        &doc[..start],
        markdown_table(),
        &doc[end.min(doc.len())..]
    );
    check_file(path, &rewritten, &doc);
}

/// docs/plan.schema.json is the schema `pgmove schema` prints.
#[test]
fn docs_plan_schema_json_is_the_generated_schema() {
    let path = "docs/plan.schema.json";
    let committed = std::fs::read_to_string(path).unwrap_or_default();
    check_file(path, &schema_text(), &committed);
}

/// Every example plan points editors at the schema on its first line and validates against it.
#[test]
fn every_example_plan_carries_the_modeline_and_validates() {
    let v = validator();
    let mut paths: Vec<_> = std::fs::read_dir("plans/examples")
        .expect("plans/examples")
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|e| e == "yaml"))
        .collect();
    paths.sort();
    assert!(paths.len() >= 5, "{paths:?}");
    for path in paths {
        let text = std::fs::read_to_string(&path).expect("read example");
        let name = path.display();
        assert_eq!(
            text.lines().next(),
            Some(SCHEMA_MODELINE),
            "{name}: first line"
        );
        let doc = yaml_value(&text);
        let errors = schema_errors(&v, &doc);
        assert!(errors.is_empty(), "{name}: {errors:?}");
        assert!(
            crate::plan::parse(&text, &name.to_string()).is_ok(),
            "{name}"
        );
    }
}
