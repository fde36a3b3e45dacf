//! The SQL statement splitter: a query string cut into its statements as the server does, each
//! classified by what the DDL trigger fires for, and the bare words of one statement.

use std::fmt;

/// The upper-cased bare words of one statement, outside quotes and comments, each with the
/// byte offset just after it.
pub(super) fn top_words(sql: &str) -> Vec<(String, usize)> {
    let b = sql.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < b.len() {
        let c = b[i];
        if c == b'-' && b.get(i + 1) == Some(&b'-') {
            while i < b.len() && b[i] != b'\n' {
                i += 1;
            }
        } else if c == b'/' && b.get(i + 1) == Some(&b'*') {
            match sql[i + 2..].find("*/") {
                Some(k) => i += k + 4,
                None => i = b.len(),
            }
        } else if c == b'\'' || c == b'"' {
            // A literal or a quoted identifier ('' and "" escape the quote; an E'' string's
            // backslash escapes only matter after ADD VALUE, where nothing more is read).
            i += 1;
            while i < b.len() {
                if b[i] == c {
                    if b.get(i + 1) == Some(&c) {
                        i += 2;
                        continue;
                    }
                    break;
                }
                i += 1;
            }
            i += 1;
            out.push((String::from(c as char), i.min(b.len())));
        } else if c.is_ascii_alphabetic() || c == b'_' || c >= 0x80 {
            let s = i;
            while i < b.len()
                && (b[i].is_ascii_alphanumeric() || b[i] == b'_' || b[i] == b'$' || b[i] >= 0x80)
            {
                i += 1;
            }
            out.push((sql[s..i].to_ascii_uppercase(), i));
        } else {
            i += 1;
        }
    }
    out
}

/// What a statement is, as far as the trigger is concerned.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// `CREATE [GLOBAL|LOCAL] [TEMP|TEMPORARY|UNLOGGED] TABLE` (also `... AS`).
    CreateTable,
    AlterTable,
    DropTable,
    /// `SELECT ... INTO new_table`.
    SelectInto,
    /// `CREATE TYPE` (the trigger fires for every kind; it emits enums only).
    CreateType,
    /// `ALTER TYPE`.
    AlterType,
    /// Anything the trigger does not fire for.
    Other,
}

pub(super) fn kind_of_tag(tag: &str) -> Option<Kind> {
    Some(match tag {
        "CREATE TABLE" | "CREATE TABLE AS" => Kind::CreateTable,
        "ALTER TABLE" => Kind::AlterTable,
        "DROP TABLE" => Kind::DropTable,
        "SELECT INTO" => Kind::SelectInto,
        "CREATE TYPE" => Kind::CreateType,
        "ALTER TYPE" => Kind::AlterType,
        _ => return None,
    })
}

/// One statement of a query string.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Statement<'a> {
    /// Its text, without surrounding whitespace and the terminating semicolon.
    pub text: &'a str,
    pub kind: Kind,
}

/// Splits a query string into its statements as the server does: at semicolons outside
/// quotes, quoted identifiers, dollar quotes, comments, parentheses and the `BEGIN ATOMIC ...
/// END` body of a function or procedure. Statements holding only comments are left out.
pub fn split_statements(sql: &str) -> Vec<Statement<'_>> {
    let b = sql.as_bytes();
    let mut out = Vec::new();
    let mut start = 0;
    let mut i = 0;
    let mut depth: i32 = 0;
    let mut begin_depth: i32 = 0;
    // Upper-cased words outside quotes and comments, with their parenthesis depth.
    let mut words: Vec<(String, i32)> = Vec::new();
    let ident_char = |c: u8| c.is_ascii_alphanumeric() || c == b'_' || c == b'$' || c >= 0x80;
    let finish = |start: usize, end: usize, words: &mut Vec<(String, i32)>, out: &mut Vec<_>| {
        let text = sql[start..end].trim();
        if !comments_only(text) {
            out.push(Statement {
                text,
                kind: classify(words),
            });
        }
        words.clear();
    };
    while i < b.len() {
        let c = b[i];
        match c {
            b'-' if b.get(i + 1) == Some(&b'-') => {
                while i < b.len() && b[i] != b'\n' {
                    i += 1;
                }
                continue;
            }
            b'/' if b.get(i + 1) == Some(&b'*') => {
                let mut level = 0;
                while i < b.len() {
                    if b[i] == b'/' && b.get(i + 1) == Some(&b'*') {
                        level += 1;
                        i += 2;
                    } else if b[i] == b'*' && b.get(i + 1) == Some(&b'/') {
                        level -= 1;
                        i += 2;
                        if level == 0 {
                            break;
                        }
                    } else {
                        i += 1;
                    }
                }
                continue;
            }
            b'\'' => {
                // E'...' strings take backslash escapes.
                let escapes = i > 0
                    && (b[i - 1] == b'e' || b[i - 1] == b'E')
                    && (i < 2 || !ident_char(b[i - 2]));
                i += 1;
                while i < b.len() {
                    if escapes && b[i] == b'\\' {
                        i += 2;
                        continue;
                    }
                    if b[i] == b'\'' {
                        if b.get(i + 1) == Some(&b'\'') {
                            i += 2;
                            continue;
                        }
                        break;
                    }
                    i += 1;
                }
                i += 1;
                continue;
            }
            b'"' => {
                i += 1;
                while i < b.len() {
                    if b[i] == b'"' {
                        if b.get(i + 1) == Some(&b'"') {
                            i += 2;
                            continue;
                        }
                        break;
                    }
                    i += 1;
                }
                i += 1;
                continue;
            }
            b'$' if i == 0 || !ident_char(b[i - 1]) => {
                // $tag$ ... $tag$ (the tag: empty, or an identifier not starting with a digit).
                let mut j = i + 1;
                while j < b.len() && (b[j].is_ascii_alphanumeric() || b[j] == b'_' || b[j] >= 0x80)
                {
                    j += 1;
                }
                let tag_ok =
                    j < b.len() && b[j] == b'$' && (j == i + 1 || !b[i + 1].is_ascii_digit());
                if tag_ok {
                    let tag = &sql[i..=j];
                    match sql[j + 1..].find(tag) {
                        Some(k) => i = j + 1 + k + tag.len(),
                        None => i = b.len(),
                    }
                    continue;
                }
                i += 1;
                continue;
            }
            b'(' => depth += 1,
            b')' => depth -= 1,
            b';' if depth <= 0 && begin_depth <= 0 => {
                finish(start, i, &mut words, &mut out);
                start = i + 1;
                depth = 0;
                begin_depth = 0;
            }
            c if c.is_ascii_alphabetic() || c == b'_' || c >= 0x80 => {
                let s = i;
                while i < b.len() && ident_char(b[i]) {
                    i += 1;
                }
                let w = sql[s..i].to_ascii_uppercase();
                // BEGIN ATOMIC bodies of CREATE FUNCTION/PROCEDURE hold semicolons (as psql
                // tracks them: BEGIN and, inside, CASE open; END closes).
                let routine = is_routine(&words);
                if routine && (w == "BEGIN" || (begin_depth > 0 && w == "CASE")) {
                    begin_depth += 1;
                } else if begin_depth > 0 && w == "END" {
                    begin_depth -= 1;
                }
                words.push((w, depth));
                continue;
            }
            _ => {}
        }
        i += 1;
    }
    finish(start, b.len(), &mut words, &mut out);
    out
}

/// Whether `text` holds only comments and whitespace.
fn comments_only(text: &str) -> bool {
    let b = text.as_bytes();
    let mut i = 0;
    while i < b.len() {
        if b[i].is_ascii_whitespace() {
            i += 1;
        } else if b[i] == b'-' && b.get(i + 1) == Some(&b'-') {
            while i < b.len() && b[i] != b'\n' {
                i += 1;
            }
        } else if b[i] == b'/' && b.get(i + 1) == Some(&b'*') {
            let mut level = 0;
            while i < b.len() {
                if b[i] == b'/' && b.get(i + 1) == Some(&b'*') {
                    level += 1;
                    i += 2;
                } else if b[i] == b'*' && b.get(i + 1) == Some(&b'/') {
                    level -= 1;
                    i += 2;
                    if level == 0 {
                        break;
                    }
                } else {
                    i += 1;
                }
            }
        } else {
            return false;
        }
    }
    true
}

/// `CREATE [OR REPLACE] FUNCTION|PROCEDURE`.
fn is_routine(words: &[(String, i32)]) -> bool {
    let w: Vec<&str> = words.iter().take(4).map(|(w, _)| w.as_str()).collect();
    matches!(
        w.as_slice(),
        ["CREATE", "FUNCTION" | "PROCEDURE", ..]
            | ["CREATE", "OR", "REPLACE", "FUNCTION" | "PROCEDURE", ..]
    )
}

fn classify(words: &[(String, i32)]) -> Kind {
    let first: Vec<&str> = words.iter().take(4).map(|(w, _)| w.as_str()).collect();
    match first.as_slice() {
        ["CREATE", rest @ ..] => {
            let mut r = rest.iter();
            let mut w = r.next();
            if matches!(w, Some(&"GLOBAL") | Some(&"LOCAL")) {
                w = r.next();
            }
            if matches!(w, Some(&"TEMP") | Some(&"TEMPORARY") | Some(&"UNLOGGED")) {
                w = r.next();
            }
            if w == Some(&"TABLE") {
                Kind::CreateTable
            } else if rest.first() == Some(&"TYPE") {
                Kind::CreateType
            } else {
                Kind::Other
            }
        }
        ["ALTER", "TABLE", ..] => Kind::AlterTable,
        ["ALTER", "TYPE", ..] => Kind::AlterType,
        ["DROP", "TABLE", ..] => Kind::DropTable,
        ["SELECT" | "WITH", ..] => {
            let top = |k: &str| words.iter().any(|(w, d)| *d == 0 && w == k);
            if top("INTO")
                && !["INSERT", "UPDATE", "DELETE", "MERGE"]
                    .iter()
                    .any(|k| top(k))
            {
                Kind::SelectInto
            } else {
                Kind::Other
            }
        }
        _ => Kind::Other,
    }
}

impl fmt::Display for Kind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Kind::CreateTable => "CREATE TABLE",
            Kind::AlterTable => "ALTER TABLE",
            Kind::DropTable => "DROP TABLE",
            Kind::SelectInto => "SELECT INTO",
            Kind::CreateType => "CREATE TYPE",
            Kind::AlterType => "ALTER TYPE",
            Kind::Other => "other",
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splitting_respects_quotes_comments_and_routine_bodies() {
        let sql = "CREATE TABLE \"a;b\" (x text DEFAULT 'it''s;'); -- c;\n/* d; /* nested; */ */ \
                   SELECT E'\\';' INTO t9; $f$ ; $f$; \
                   CREATE FUNCTION f() RETURNS int LANGUAGE sql BEGIN ATOMIC SELECT 1; SELECT CASE WHEN true THEN 2 END; END; \
                   ALTER TABLE x ADD y int;;  -- only a comment";
        let s = split_statements(sql);
        let kinds: Vec<Kind> = s.iter().map(|s| s.kind).collect();
        assert_eq!(
            kinds,
            vec![
                Kind::CreateTable,
                Kind::SelectInto,
                Kind::Other,
                Kind::Other,
                Kind::AlterTable
            ],
            "{s:#?}"
        );
        assert_eq!(s[0].text, "CREATE TABLE \"a;b\" (x text DEFAULT 'it''s;')");
        assert!(s[3].text.ends_with("END"), "{}", s[3].text);
        assert_eq!(s[4].text, "ALTER TABLE x ADD y int");
    }

    #[test]
    fn classification() {
        let k = |s: &str| split_statements(s)[0].kind;
        assert_eq!(k("create unlogged table x (a int)"), Kind::CreateTable);
        assert_eq!(k("CREATE GLOBAL TEMP TABLE x (a int)"), Kind::CreateTable);
        assert_eq!(k("create table x as select 1"), Kind::CreateTable);
        assert_eq!(k("CREATE INDEX ON x (a)"), Kind::Other);
        assert_eq!(k("create foreign table x () server s"), Kind::Other);
        assert_eq!(k("drop table if exists x"), Kind::DropTable);
        assert_eq!(
            k("with a as (select 1) insert into x select * from a"),
            Kind::Other
        );
        assert_eq!(k("select * into new_t from x"), Kind::SelectInto);
        assert_eq!(k("select (select 1 into y) from x"), Kind::Other);
        assert_eq!(k("insert into x values (1)"), Kind::Other);
    }
}
