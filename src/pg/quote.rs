//! The one place SQL identifiers and literals are quoted.
//!
//! Every identifier pgmove puts in SQL goes through [`ident`] (or [`qualified`]); every literal
//! that cannot be a bind parameter goes through [`literal`]. Identifiers are always quoted, so
//! mixed case, spaces, quotes and reserved words survive unchanged.

/// `"name"` with embedded double quotes doubled: always quoted, whatever the name.
pub fn ident(name: &str) -> String {
    let mut out = String::with_capacity(name.len() + 2);
    out.push('"');
    for c in name.chars() {
        if c == '"' {
            out.push('"');
        }
        out.push(c);
    }
    out.push('"');
    out
}

/// `"schema"."name"`.
pub fn qualified(schema: &str, name: &str) -> String {
    format!("{}.{}", ident(schema), ident(name))
}

/// A string literal as PostgreSQL's `quote_literal` writes it: `'it''s'`, or `E'a\\b'` when the
/// value holds a backslash, so it reads the same whatever `standard_conforming_strings` says.
pub fn literal(value: &str) -> String {
    let has_backslash = value.contains('\\');
    let mut out = String::with_capacity(value.len() + 3);
    if has_backslash {
        out.push('E');
    }
    out.push('\'');
    for c in value.chars() {
        match c {
            '\'' => out.push_str("''"),
            '\\' => out.push_str("\\\\"),
            _ => out.push(c),
        }
    }
    out.push('\'');
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identifiers_are_always_quoted() {
        assert_eq!(ident("orders"), r#""orders""#);
        assert_eq!(ident("Orders"), r#""Orders""#);
        assert_eq!(ident("order items"), r#""order items""#);
        assert_eq!(ident("select"), r#""select""#);
        assert_eq!(ident("user"), r#""user""#);
        assert_eq!(ident(r#"we"ird"#), r#""we""ird""#);
        assert_eq!(ident(r#""""#), r#""""""""#);
        assert_eq!(ident(""), r#""""#);
        assert_eq!(ident("café"), "\"café\"");
    }

    #[test]
    fn qualified_names_quote_both_parts() {
        assert_eq!(
            qualified("Sales", "order.items"),
            r#""Sales"."order.items""#
        );
        assert_eq!(qualified("a\"b", "c"), r#""a""b"."c""#);
    }

    #[test]
    fn literals_double_quotes_and_escape_backslashes() {
        assert_eq!(literal("plain"), "'plain'");
        assert_eq!(literal("it's"), "'it''s'");
        assert_eq!(literal(r"a\b"), r"E'a\\b'");
        assert_eq!(literal(r"it's a\b"), r"E'it''s a\\b'");
        assert_eq!(literal(""), "''");
    }
}
