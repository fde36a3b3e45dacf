//! Plan errors: every one names `file:line:column`, what was expected, and a hint.
//!
//! serde-saphyr's own errors (syntax, unknown keys, wrong shapes) are translated here into the
//! plan's vocabulary: the key they concern is recovered from the location when serde does not
//! say it, unknown keys get a did-you-mean, and nothing of a scalar's value is echoed (a value
//! could be a password written where it should not be).

use std::fmt;

use serde_saphyr::{Error as YamlError, Spanned};

use super::raw;

/// A line and column in the plan file, both 1-based; `0:0` when unknown.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct Pos {
    pub line: u64,
    pub column: u64,
}

impl Pos {
    pub const UNKNOWN: Pos = Pos { line: 0, column: 0 };

    pub fn new(line: u64, column: u64) -> Pos {
        Pos { line, column }
    }

    /// Where a deserialized value stood (where it was used, for aliases).
    pub fn of<T>(s: &Spanned<T>) -> Pos {
        Pos {
            line: s.referenced.line(),
            column: s.referenced.column(),
        }
    }

    pub fn is_known(self) -> bool {
        self.line > 0
    }
}

impl fmt::Display for Pos {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.line, self.column)
    }
}

/// A located plan problem: `file:line:column: message` and a hint on the next line.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Located {
    /// The plan file, as given.
    pub file: String,
    pub pos: Pos,
    /// What is wrong and what was expected.
    pub message: String,
    /// How to fix it.
    pub hint: String,
}

impl fmt::Display for Located {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.pos.is_known() {
            write!(f, "{}:{}: {}", self.file, self.pos, self.message)?;
        } else {
            write!(f, "{}: {}", self.file, self.message)?;
        }
        write!(f, "\n  hint: {}", self.hint)
    }
}

/// Everything that can be wrong with a plan. `Display` prints rustc-style:
/// `plans/x.yaml:7:3: unknown key `dowtime`` then `  hint: did you mean `downtime`? ...`.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum PlanError {
    /// The file does not exist or cannot be read.
    #[error("{path}: cannot read the plan file: {reason}\n  hint: {hint}")]
    Unreadable {
        path: String,
        reason: String,
        hint: String,
    },
    /// The text is not well-formed YAML (indentation, tabs, quotes, brackets).
    #[error("{0}")]
    Syntax(Located),
    /// Well-formed YAML that does not fit the plan: an unknown or duplicate key, a list where a
    /// value belongs, a missing key.
    #[error("{0}")]
    Shape(Located),
    /// A value the plan refuses, or a combination of values that cannot work together.
    #[error("{0}")]
    Invalid(Located),
    /// A password's environment variable or file could not be read (when connecting).
    #[error("{0}")]
    Secret(Located),
    /// The connection settings do not resolve (a DSN with the `PG*` environment variables).
    #[error("{0}")]
    Connection(Located),
}

impl PlanError {
    fn located(&self) -> Option<&Located> {
        match self {
            PlanError::Unreadable { .. } => None,
            PlanError::Syntax(l)
            | PlanError::Shape(l)
            | PlanError::Invalid(l)
            | PlanError::Secret(l)
            | PlanError::Connection(l) => Some(l),
        }
    }

    /// The plan file the error is about.
    pub fn file(&self) -> &str {
        match self {
            PlanError::Unreadable { path, .. } => path,
            _ => self.located().map(|l| l.file.as_str()).unwrap_or(""),
        }
    }

    /// Where in the file, when known.
    pub fn pos(&self) -> Option<Pos> {
        self.located().map(|l| l.pos).filter(|p| p.is_known())
    }

    /// `file:line:column`, or the file alone when the position is unknown.
    pub fn location(&self) -> String {
        match self.pos() {
            Some(p) => format!("{}:{p}", self.file()),
            None => self.file().to_string(),
        }
    }

    /// The problem, without the location and hint.
    pub fn message(&self) -> String {
        match self {
            PlanError::Unreadable { reason, .. } => format!("cannot read the plan file: {reason}"),
            _ => self
                .located()
                .map(|l| l.message.clone())
                .unwrap_or_default(),
        }
    }

    /// How to fix it.
    pub fn hint(&self) -> &str {
        match self {
            PlanError::Unreadable { hint, .. } => hint,
            _ => self.located().map(|l| l.hint.as_str()).unwrap_or(""),
        }
    }
}

/// Levenshtein distance over characters.
pub fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut cur = Vec::with_capacity(b.len() + 1);
        cur.push(i + 1);
        for (j, cb) in b.iter().enumerate() {
            let cost = usize::from(ca != *cb);
            let best = (prev[j] + cost).min(prev[j + 1] + 1).min(cur[j] + 1);
            cur.push(best);
        }
        prev = cur;
    }
    prev[b.len()]
}

/// The closest of `options` to `word` when close enough to be a typo (case, `-` for `_`, a
/// letter or two), else `None`.
pub fn did_you_mean<'a>(word: &str, options: &[&'a str]) -> Option<&'a str> {
    let norm = |s: &str| s.to_ascii_lowercase().replace('-', "_");
    let w = norm(word);
    options
        .iter()
        .map(|o| (edit_distance(&w, &norm(o)), *o))
        .filter(|(d, o)| *d <= (o.chars().count() / 3).max(2))
        .min_by_key(|(d, _)| *d)
        .map(|(_, o)| o)
        .or_else(|| {
            // `aurora-postgres` for `aurora`, `verify` for `verify-full`.
            options
                .iter()
                .filter(|o| o.len() >= 3 && w.len() >= 3)
                .find(|o| {
                    let o = norm(o);
                    w.starts_with(&o) || o.starts_with(&w)
                })
                .copied()
        })
}

/// Indentation of a line, in columns (spaces; a tab counts as one, YAML refuses them anyway).
fn indent(line: &str) -> usize {
    line.chars().take_while(|c| *c == ' ' || *c == '\t').count()
}

/// The line without a trailing comment (` # ...`), trimmed at the end.
fn strip_comment(line: &str) -> &str {
    let cut = line
        .char_indices()
        .find(|(i, c)| *c == '#' && (*i == 0 || line[..*i].ends_with([' ', '\t'])))
        .map(|(i, _)| i)
        .unwrap_or(line.len());
    line[..cut].trim_end()
}

/// `jobs` from `  jobs:` or from `  password: {env:`: the key a value follows.
fn trailing_key(text: &str) -> Option<&str> {
    let t = text.trim_end().strip_suffix(':')?;
    let start = t
        .char_indices()
        .rev()
        .take_while(|(_, c)| c.is_ascii_alphanumeric() || *c == '_' || *c == '-')
        .last()
        .map(|(i, _)| i)?;
    Some(&t[start..])
}

/// The last `key:` before a flow collection on this line, and whether it is the line's first
/// key (so the block keys above are its parents).
fn flow_key(before: &str) -> Option<(&str, bool)> {
    let open = before.find(['[', '{'])?;
    let head = &before[..open];
    let k = trailing_key(head)?;
    let leading = head.trim().strip_suffix(':').map(str::trim_end) == Some(k);
    Some((k, leading))
}

/// A block line that is only `key:` (its value indented below).
fn parent_key(line: &str) -> Option<&str> {
    let t = strip_comment(line).trim_start();
    let k = t.strip_suffix(':')?;
    (!k.is_empty()
        && k.chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-'))
    .then_some(k)
}

/// Dotted path of `key` standing on line `idx` (0-based), from the block keys above it.
fn with_parents(lines: &[&str], idx: usize, key: &str) -> String {
    let mut parts = vec![key.to_string()];
    let mut cur = lines.get(idx).map(|l| indent(l)).unwrap_or(0);
    for j in (0..idx).rev() {
        if cur == 0 {
            break;
        }
        let l = lines[j];
        if strip_comment(l).trim().is_empty() {
            continue;
        }
        if indent(l) < cur {
            match parent_key(l) {
                Some(k) => parts.push(k.to_string()),
                None => break,
            }
            cur = indent(l);
        }
    }
    parts.reverse();
    parts.join(".")
}

/// The dotted key path (`cutover.max_lag`) of the value at `pos`, recovered from the text; used
/// only to word messages, so a miss just gives a less specific message.
pub(crate) fn key_path_at(text: &str, pos: Pos) -> Option<String> {
    let lines: Vec<&str> = text.lines().collect();
    let idx = usize::try_from(pos.line).ok()?.checked_sub(1)?;
    let line = lines.get(idx)?;
    let col = usize::try_from(pos.column).ok()?.saturating_sub(1);
    let before: String = line.chars().take(col).collect();
    if let Some(k) = trailing_key(&before) {
        if before.contains(['{', '[']) {
            return Some(k.to_string());
        }
        return Some(with_parents(&lines, idx, k));
    }
    if let Some((k, leading)) = flow_key(&before) {
        // Inside `key: [a, ...` or `key: {a: ...`: the key that opened the flow collection.
        return Some(if leading {
            with_parents(&lines, idx, k)
        } else {
            k.to_string()
        });
    }
    // The value starts on its own line: its key is the nearest less indented line above.
    let own = indent(line);
    for j in (0..idx).rev() {
        let l = lines[j];
        if strip_comment(l).trim().is_empty() {
            continue;
        }
        if indent(l) < own {
            return parent_key(l).map(|k| with_parents(&lines, j, k));
        }
    }
    None
}

/// The section a list of valid keys belongs to, for "unknown key `x` in `cutover`".
fn section_of(expected: &[&str]) -> Option<&'static str> {
    raw::SECTIONS
        .iter()
        .find(|(_, keys)| *keys == expected)
        .map(|(name, _)| *name)
}

/// The other sections where `key` is valid, for "`max_lag` belongs under `cutover:`".
fn sections_with(key: &str) -> Vec<&'static str> {
    raw::SECTIONS
        .iter()
        .filter(|(_, keys)| keys.contains(&key))
        .map(|(name, _)| *name)
        .collect()
}

fn located(file: &str, pos: Pos, message: String, hint: String) -> Located {
    Located {
        file: file.to_string(),
        pos,
        message,
        hint,
    }
}

fn unknown_key(file: &str, text: &str, pos: Pos, field: &str, expected: &[&str]) -> PlanError {
    let section = section_of(expected);
    let path = key_path_at(text, pos);
    let place = match (section, path.as_deref()) {
        (Some("top level"), _) => String::new(),
        // At a key, the path found is its section's: `source.password`.
        (Some("password"), Some(p)) if p.ends_with("password") => format!(" in `{p}`"),
        (Some(s), _) => format!(" in `{s}`"),
        (None, Some(p)) => format!(" in `{p}`"),
        (None, None) => String::new(),
    };
    let valid = format!("valid keys here: {}", expected.join(", "));
    let hint = if expected == raw::PASSWORD_KEYS {
        format!(
            "a password comes from `{{env: VARIABLE}}` or `{{file: /path/to/secret}}`, never inline; {valid}"
        )
    } else if let Some(m) = did_you_mean(field, expected) {
        format!("did you mean `{m}`? {valid}")
    } else if section == Some("source") && field == "kind" {
        format!("the source's kind is detected; `kind:` belongs under `target:`; {valid}")
    } else {
        let elsewhere: Vec<String> = sections_with(field)
            .into_iter()
            .filter(|s| Some(*s) != section)
            .map(|s| {
                if s == "top level" {
                    "at the top level (not indented)".to_string()
                } else {
                    format!("under `{s}:`")
                }
            })
            .collect();
        if elsewhere.is_empty() {
            valid
        } else {
            format!("`{field}` belongs {}; {valid}", elsewhere.join(" or "))
        }
    };
    PlanError::Shape(located(
        file,
        pos,
        format!("unknown key `{field}`{place}"),
        hint,
    ))
}

/// What a shape serde expected, in the plan's words, and how to write it for `key`.
fn shape_words(expected: &str, key: Option<&str>) -> (&'static str, String) {
    let last = key.map(|k| k.rsplit('.').next().unwrap_or(k));
    match expected {
        "mapping start" | "mapping" => {
            let hint = match last {
                None => "a plan is a YAML mapping of keys, starting with `version: 1`, `name:`, `source:` and `target:`; see plans/examples/".to_string(),
                Some(side @ ("source" | "target")) => format!(
                    "write the server as indented keys:\n    {side}:\n      dsn: postgres://user@host:5432/db\n      password: {{env: {}_PASSWORD}}",
                    if side == "source" { "SRC" } else { "DST" }
                ),
                Some("password") => "write `password: {env: VARIABLE}` or `password: {file: /path/to/secret}`".to_string(),
                Some(k) => format!("write `{k}:` followed by its keys, indented on the lines below"),
            };
            ("keys (a mapping)", hint)
        }
        "sequence start" | "sequence" => {
            let k = last.unwrap_or("schemas");
            (
                "a list",
                format!("write `{k}: [a, b]`, or one `- item` per line below `{k}:`"),
            )
        }
        _ => {
            let hint = match last {
                Some(k) => format!("`{k}` takes a single value, not a list or keys; quote it if it contains `[`, `{{`, `: ` or ` #`"),
                None => "write a single value here".to_string(),
            };
            ("a single value", hint)
        }
    }
}

/// `message at line 3, column 5` → `message`.
fn strip_at(s: &str) -> &str {
    match s.rfind(" at line ") {
        Some(i) => &s[..i],
        None => s,
    }
}

fn syntax_hint(msg: &str) -> String {
    let m = msg.to_ascii_lowercase();
    if m.contains("tab") {
        "indent with spaces: YAML does not allow tabs for indentation".to_string()
    } else if m.contains("quote") {
        "close the quote; a value that contains `'` is written in double quotes, and one that contains `\"` in single quotes".to_string()
    } else if m.contains("mapping values are not allowed") || m.contains("simple key") {
        "check the indentation of this line against the lines above: nested keys go two spaces deeper than their parent, siblings line up; quote a value that contains `: `".to_string()
    } else if m.contains("bracket") || m.contains("brace") || m.contains("flow") {
        "close the `[` or `{` opened here, or quote the value".to_string()
    } else if m.contains("unexpected character") {
        "`@` and backquote cannot start a plain value, and `%` only a directive: quote the value"
            .to_string()
    } else {
        "the file is not valid YAML here; compare with plans/examples/".to_string()
    }
}

fn syntax(file: &str, pos: Pos, raw: &str) -> PlanError {
    let mut msg = strip_at(raw).to_string();
    if msg.to_ascii_lowercase().contains("tabs disallowed") {
        msg = "a tab in the indentation".to_string();
    }
    let hint = syntax_hint(&msg);
    PlanError::Syntax(located(file, pos, msg, hint))
}

/// Translates a serde-saphyr error into a plan error with the plan's words.
pub(crate) fn from_yaml_error(e: &YamlError, file: &str, text: &str) -> PlanError {
    let pos = e
        .location()
        .map(|l| Pos::new(l.line(), l.column()))
        .unwrap_or(Pos::UNKNOWN);
    let key = || key_path_at(text, pos);
    let shape = |message: String, hint: String| PlanError::Shape(located(file, pos, message, hint));
    let inner = e.without_snippet();
    match inner {
        YamlError::SerdeUnknownField {
            field, expected, ..
        } => unknown_key(file, text, pos, field, expected),
        YamlError::SerdeMissingField { field, .. } => shape(
            format!("missing key `{field}`"),
            "see plans/examples/ for a complete plan".to_string(),
        ),
        YamlError::SerdeUnknownVariant {
            variant, expected, ..
        } => {
            let what = key().map(|k| format!(" for `{k}`")).unwrap_or_default();
            let choices = expected.join(", ");
            shape(
                format!("unknown value `{variant}`{what}: expected one of {choices}"),
                match did_you_mean(variant, expected) {
                    Some(m) => format!("did you mean `{m}`?"),
                    None => format!("write one of {choices}"),
                },
            )
        }
        YamlError::SerdeInvalidType {
            unexpected,
            expected,
            ..
        }
        | YamlError::SerdeInvalidValue {
            unexpected,
            expected,
            ..
        } => {
            let mut k = key();
            if expected.contains("env:") {
                k = Some(match k {
                    Some(p) if !p.ends_with("password") => format!("{p}.password"),
                    Some(p) => p,
                    None => "password".to_string(),
                });
            }
            let what = k.as_deref().map(|k| format!(" for `{k}`")).unwrap_or_default();
            let hint = if expected.contains("env:") {
                "write `password: {env: VARIABLE}` or `password: {file: /path/to/secret}`"
                    .to_string()
            } else {
                shape_words(expected, k.as_deref()).1
            };
            shape(format!("expected {expected}{what}, found {unexpected}"), hint)
        }
        YamlError::Unexpected { expected, .. } => {
            let k = key();
            let (words, hint) = shape_words(expected, k.as_deref());
            let message = match &k {
                Some(k) => format!("`{k}` must be {words}"),
                None if pos == Pos::new(1, 1) || expected.contains("mapping") => {
                    format!("the plan must be {words}")
                }
                None => format!("expected {words} here"),
            };
            shape(message, hint)
        }
        YamlError::NullIntoString { .. } => {
            let what = key().map(|k| format!(" in `{k}`")).unwrap_or_default();
            shape(
                format!("empty value{what}: expected text"),
                "write a value, or remove the empty `-` list item or `~`".to_string(),
            )
        }
        YamlError::DuplicateMappingKey { key: k, .. } => {
            let k = k.clone().unwrap_or_else(|| "?".to_string());
            shape(
                format!("key `{k}` appears twice"),
                format!("keep one `{k}:`; a plan never silently prefers one of two values"),
            )
        }
        YamlError::MultipleDocuments { .. } => shape(
            "the file holds more than one YAML document (a second `---`)".to_string(),
            "a plan file is one document: put each plan in its own file".to_string(),
        ),
        YamlError::Eof { .. } => PlanError::Syntax(located(
            file,
            pos,
            "the file ends in the middle of a value".to_string(),
            "close every quote, `[` and `{`".to_string(),
        )),
        YamlError::UnknownAnchor { .. } => shape(
            "alias `*name` refers to an anchor that is not defined above it".to_string(),
            "define `&name` on a value before using `*name`, or write the value out".to_string(),
        ),
        YamlError::Budget { breach, .. } => shape(
            format!("the file exceeds pgmove's YAML limits ({breach:?})"),
            "a plan is a short file; anchors expanding into huge values or deep nesting are refused".to_string(),
        ),
        YamlError::Message { msg, .. } => syntax(file, pos, msg),
        other => syntax(
            file,
            pos,
            other.to_string().lines().next().unwrap_or("invalid YAML"),
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn edit_distances() {
        assert_eq!(edit_distance("dowtime", "downtime"), 1);
        assert_eq!(edit_distance("", "abc"), 3);
        assert_eq!(edit_distance("kitten", "sitting"), 3);
        assert_eq!(edit_distance("same", "same"), 0);
    }

    #[test]
    fn did_you_mean_finds_close_keys() {
        let keys = ["downtime", "jobs", "index_jobs", "split_tables_larger_than"];
        assert_eq!(did_you_mean("dowtime", &keys), Some("downtime"));
        assert_eq!(did_you_mean("Downtime", &keys), Some("downtime"));
        assert_eq!(did_you_mean("index-jobs", &keys), Some("index_jobs"));
        assert_eq!(did_you_mean("job", &keys), Some("jobs"));
        assert_eq!(
            did_you_mean("split_tables_larger", &keys),
            Some("split_tables_larger_than")
        );
        assert_eq!(did_you_mean("zzzzzz", &keys), None);
        assert_eq!(
            did_you_mean("aurora-postgres", &["auto", "rds", "aurora"]),
            Some("aurora")
        );
        assert_eq!(
            did_you_mean("verify", &["require", "verify-ca", "verify-full"]),
            Some("verify-ca")
        );
        assert_eq!(did_you_mean("x", &[]), None);
    }

    #[test]
    fn key_paths_from_positions() {
        let text = "version: 1\ncutover:\n  mode: auto   # c\n  max_lag: soon\nobjects:\n  schemas:\n    - a\n    - [b]\nsource:\n  password: {env: [X]}\n";
        assert_eq!(
            key_path_at(text, Pos::new(1, 10)).as_deref(),
            Some("version")
        );
        assert_eq!(
            key_path_at(text, Pos::new(4, 12)).as_deref(),
            Some("cutover.max_lag")
        );
        assert_eq!(
            key_path_at(text, Pos::new(8, 7)).as_deref(),
            Some("objects.schemas")
        );
        assert_eq!(key_path_at(text, Pos::new(10, 19)).as_deref(), Some("env"));
        let flow = "objects:\n  schemas: [a, ~]\n";
        assert_eq!(
            key_path_at(flow, Pos::new(2, 16)).as_deref(),
            Some("objects.schemas")
        );
        assert_eq!(key_path_at(text, Pos::new(99, 1)), None);
        assert_eq!(key_path_at(text, Pos::UNKNOWN), None);
        assert_eq!(key_path_at("", Pos::new(1, 1)), None);
    }

    #[test]
    fn display_is_rustc_like() {
        let e = PlanError::Invalid(Located {
            file: "p.yaml".into(),
            pos: Pos::new(7, 3),
            message: "bad".into(),
            hint: "fix it".into(),
        });
        assert_eq!(e.to_string(), "p.yaml:7:3: bad\n  hint: fix it");
        assert_eq!(e.location(), "p.yaml:7:3");
        let e = PlanError::Unreadable {
            path: "x.yaml".into(),
            reason: "No such file".into(),
            hint: "h".into(),
        };
        assert_eq!(
            e.to_string(),
            "x.yaml: cannot read the plan file: No such file\n  hint: h"
        );
        assert_eq!(e.pos(), None);
    }
}
