//! The same object shown differently by two PostgreSQL majors, so that verify compares what
//! the object is, not how one major prints it. Each rule applies only between servers on either
//! side of the major that changed the rendering; between two servers of one major (or two on
//! the same side of every change) nothing is normalized and the comparison is as strict as the
//! text the servers print.
//!
//! - **Privileges a major does not have** ([`PRIVILEGES_SINCE`]): `MAINTAIN` on relations is new
//!   in PostgreSQL 17, and a 17+ server's default privileges of a table's owner (and
//!   `GRANT ALL` restored from an older dump) include it. Between a server older than 17 and a
//!   17+ one, `MAINTAIN` is left out of every privileges value on both sides: the older server
//!   cannot hold it, so it cannot differ. Every other privilege is still compared.
//! - **Float values** ([`checksum_value`]): from 12 a `real` or `double precision` (and the
//!   geometric types' coordinates) print in their shortest exact form, before 12 with 9 or 17
//!   significant digits (`extra_float_digits 3`). Between a server older than 12 and a 12+ one,
//!   such a column enters the row checksum as its binary form (`float8send`, `point_send`...:
//!   IEEE 754 bits, exact and the same on every major), and an array of them as `array_send`.
//!   Composites holding them still go as text.
//! - **Trigger definitions** ([`same_trigger_definition`]): 11 prints `EXECUTE FUNCTION` where
//!   10 printed `EXECUTE PROCEDURE`; across 11 the older one reads as the newer, the rest must
//!   be equal token for token.
//! - **Table access methods**: before 12 every table is `heap` (access methods came in 12);
//!   `properties` reads it so.
//! - **View and materialized view definitions** ([`same_view_definition`]): until 15, a view's
//!   stored query kept two extra range table entries (OLD and NEW), so `pg_get_viewdef`
//!   qualified every column (`SELECT orders.id FROM sales.orders`); from 16 it prints the
//!   columns of a query over one relation bare (`SELECT id FROM sales.orders`). Between a
//!   server older than 16 and a 16+ one, the definitions are compared token by token, and the
//!   older one's qualification `name.` of a column is passed over only where the newer one
//!   prints that very column bare and `name` is the name (or alias) the newer one's `FROM` or
//!   `JOIN` gives a relation. Everything else (the `FROM` clause itself, other columns,
//!   expressions, schema-qualified function and type names, options) must be token for token
//!   equal, so a changed body, column or relation is still a difference.

use std::collections::{BTreeSet, HashSet};

/// The first major whose triggers print `EXECUTE FUNCTION` (older ones: `EXECUTE PROCEDURE`,
/// the same clause).
const EXECUTE_FUNCTION_SINCE: i32 = 110000;

/// The first major that prints a `real` or `double precision` value in its shortest exact form
/// (older ones print `extra_float_digits 3` as 9 or 17 significant digits: the same value,
/// another text).
const SHORTEST_FLOATS_SINCE: i32 = 120000;

/// Whether servers `a` and `b` (`server_version_num`) print the same float differently, so
/// that checksums take a float column's binary form ([`checksum_value`]).
pub(crate) fn floats_print_differently(a: i32, b: i32) -> bool {
    (a < SHORTEST_FLOATS_SINCE) != (b < SHORTEST_FLOATS_SINCE)
}

/// The expression a column `column` (SQL) of type `type_name` on both sides enters a row's
/// checksum as: its value, or for a type that prints floats ([`FLOAT_TYPES_SEND`]: `real`,
/// `double precision`, the geometric types) when `floats_as_bits` its binary form (the IEEE 754
/// bits, the same on every major).
pub(crate) fn checksum_value(column: &str, type_name: &str, floats_as_bits: bool) -> String {
    if !floats_as_bits {
        return column.to_string();
    }
    match FLOAT_TYPES_SEND.iter().find(|(t, _)| *t == type_name) {
        // Every NaN as the one `'NaN'` reads as: a computed one may have other bits, and
        // prints (and moves) as `NaN` all the same.
        Some((_, send)) if type_name == "real" || type_name == "double precision" => {
            format!("{send}(CASE WHEN {column} = 'NaN' THEN 'NaN' ELSE {column} END)")
        }
        Some((_, send)) => format!("{send}({column})"),
        // An array of them: its binary form (dimensions, the element type's fixed OID, and
        // each element's binary form), the same on every major.
        None if type_name
            .strip_suffix("[]")
            .is_some_and(|element| FLOAT_TYPES_SEND.iter().any(|(t, _)| *t == element)) =>
        {
            format!("array_send({column})")
        }
        None => column.to_string(),
    }
}

/// The built-in types whose text form prints floats, with their binary output function (their
/// binary form is IEEE 754 floats, the same on every major).
const FLOAT_TYPES_SEND: &[(&str, &str)] = &[
    ("real", "float4send"),
    ("double precision", "float8send"),
    ("point", "point_send"),
    ("line", "line_send"),
    ("lseg", "lseg_send"),
    ("box", "box_send"),
    ("path", "path_send"),
    ("polygon", "poly_send"),
    ("circle", "circle_send"),
];

/// Whether two trigger definitions (`pg_get_triggerdef`), the source's on a server of
/// `src_version` and the target's on one of `tgt_version`, are the same trigger: equal text,
/// or across 11 equal token for token once the older one's `EXECUTE PROCEDURE` reads
/// `EXECUTE FUNCTION`.
pub(crate) fn same_trigger_definition(
    source: &str,
    target: &str,
    src_version: i32,
    tgt_version: i32,
) -> bool {
    if source == target {
        return true;
    }
    if (src_version < EXECUTE_FUNCTION_SINCE) == (tgt_version < EXECUTE_FUNCTION_SINCE) {
        return false;
    }
    modern_execute(tokens(source)) == modern_execute(tokens(target))
}

/// `EXECUTE PROCEDURE` in `t` read as `EXECUTE FUNCTION`.
fn modern_execute(mut t: Vec<&str>) -> Vec<&str> {
    for k in 1..t.len() {
        if t[k - 1] == "EXECUTE" && t[k] == "PROCEDURE" {
            t[k] = "FUNCTION";
        }
    }
    t
}

/// Privileges and the first major that has them (as `server_version_num`).
pub(crate) const PRIVILEGES_SINCE: &[(&str, i32)] = &[("MAINTAIN", 170000)];

/// The first major (as `server_version_num`) whose `pg_get_viewdef` prints the columns of a
/// query over a single relation without their relation's name.
const BARE_VIEW_COLUMNS_SINCE: i32 = 160000;

/// The privileges one of two servers (`server_version_num` `a` and `b`) has and the other
/// has not: left out of the comparison.
pub(crate) fn unshared_privileges(a: i32, b: i32) -> Vec<&'static str> {
    let (lo, hi) = (a.min(b), a.max(b));
    PRIVILEGES_SINCE
        .iter()
        .filter(|(_, since)| lo < *since && *since <= hi)
        .map(|(p, _)| *p)
        .collect()
}

/// A privileges value (`DELETE, INSERT, MAINTAIN WITH GRANT OPTION, ...`) without the
/// privileges in `left_out`; `None` when none is left.
pub(crate) fn without_privileges(value: &str, left_out: &[&str]) -> Option<String> {
    let kept: Vec<&str> = value
        .split(", ")
        .filter(|p| {
            let name = p.split(' ').next().unwrap_or(p);
            !left_out.contains(&name)
        })
        .collect();
    (!kept.is_empty()).then(|| kept.join(", "))
}

/// Whether two view (or materialized view) definitions, the source's as `pg_get_viewdef`
/// printed it on a server of `src_version` and the target's on one of `tgt_version`, define
/// the same query: equal text, or (across the change of [`BARE_VIEW_COLUMNS_SINCE`]) equal
/// token for token once the older server's column qualification the newer one does not print
/// is passed over (see the module's documentation).
pub(crate) fn same_view_definition(
    source: &str,
    target: &str,
    src_version: i32,
    tgt_version: i32,
) -> bool {
    if source == target {
        return true;
    }
    let (older, newer) = match (
        src_version < BARE_VIEW_COLUMNS_SINCE,
        tgt_version < BARE_VIEW_COLUMNS_SINCE,
    ) {
        (true, false) => (source, target),
        (false, true) => (target, source),
        _ => return false,
    };
    let (o, n) = (tokens(older), tokens(newer));
    let exposed = exposed_names(&n);
    // `name . column` on the older side where the newer has `column` bare: `name` a
    // relation's exposed name, not itself qualified (`schema.name.`), and `column` not a
    // function's name (`name.f(`: a schema's function).
    let qualifier = |i: usize, j: usize| {
        j < n.len()
            && exposed.contains(o[i])
            && o.get(i + 1) == Some(&".")
            && o.get(i + 2) == Some(&n[j])
            && o.get(i + 3) != Some(&"(")
            && (i == 0 || o[i - 1] != ".")
    };
    // Positions (older, newer) still to try: a token equal on both sides, or a qualification
    // passed over (both tried: a relation may have a column of its own name).
    let mut todo = vec![(0, 0)];
    let mut seen = HashSet::new();
    while let Some((i, j)) = todo.pop() {
        if !seen.insert((i, j)) {
            continue;
        }
        if i == o.len() && j == n.len() {
            return true;
        }
        if i < o.len() && qualifier(i, j) {
            todo.push((i + 2, j));
        }
        if i < o.len() && j < n.len() && o[i] == n[j] {
            todo.push((i + 1, j + 1));
        }
    }
    false
}

/// The names a definition's `FROM` and `JOIN` clauses expose for relations: the alias when
/// there is one, else the relation's (or function's) own name (the last part of
/// `schema.name`); a subquery by its alias only.
fn exposed_names<'a>(t: &[&'a str]) -> BTreeSet<&'a str> {
    let mut out = BTreeSet::new();
    for k in 0..t.len() {
        if !(t[k] == "FROM" || t[k] == "JOIN") {
            continue;
        }
        let mut p = k + 1;
        while matches!(t.get(p), Some(&"ONLY") | Some(&"LATERAL")) {
            p += 1;
        }
        let mut name = None;
        match t.get(p) {
            Some(&"(") => p = after_parentheses(t, p),
            Some(&first) if is_identifier(first) => {
                name = Some(first);
                p += 1;
                while t.get(p) == Some(&".") {
                    match t.get(p + 1) {
                        Some(&part) if is_identifier(part) => {
                            name = Some(part);
                            p += 2;
                        }
                        _ => break,
                    }
                }
                // A function's arguments.
                if t.get(p) == Some(&"(") {
                    p = after_parentheses(t, p);
                }
            }
            _ => continue,
        }
        if t.get(p) == Some(&"AS") {
            p += 1;
        }
        match (t.get(p), name) {
            (Some(&alias), _) if is_identifier(alias) => {
                out.insert(alias);
            }
            (_, Some(name)) => {
                out.insert(name);
            }
            _ => {}
        }
    }
    out
}

/// The position after the parenthesis closing the one at `open`.
fn after_parentheses(t: &[&str], open: usize) -> usize {
    let mut depth = 0usize;
    for (i, tok) in t.iter().enumerate().skip(open) {
        match *tok {
            "(" => depth += 1,
            ")" => {
                depth = depth.saturating_sub(1);
                if depth == 0 {
                    return i + 1;
                }
            }
            _ => {}
        }
    }
    t.len()
}

/// An identifier as the servers print one: quoted, or unquoted and lower case (keywords are
/// printed in upper case; any other name is quoted).
fn is_identifier(t: &str) -> bool {
    t.starts_with('"')
        || t.chars()
            .next()
            .is_some_and(|c| c == '_' || c.is_lowercase())
}

/// The tokens of a definition: quoted identifiers and string literals whole (doubled quotes
/// inside), words (identifiers, keywords, numbers), `::`, runs of operator characters, and
/// every other character alone; whitespace separates tokens and is not one.
fn tokens(def: &str) -> Vec<&str> {
    const OPERATOR: &str = "+-*/<>=~!@#%^&|`?";
    let b = def.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < b.len() {
        let c = b[i];
        let start = i;
        if c.is_ascii_whitespace() {
            i += 1;
            continue;
        }
        if c == b'"' || c == b'\'' {
            i += 1;
            while i < b.len() {
                if b[i] == c {
                    if b.get(i + 1) == Some(&c) {
                        i += 2;
                        continue;
                    }
                    i += 1;
                    break;
                }
                i += 1;
            }
        } else if c.is_ascii_alphanumeric() || c == b'_' || c >= 0x80 {
            while i < b.len()
                && (b[i].is_ascii_alphanumeric() || b[i] == b'_' || b[i] == b'$' || b[i] >= 0x80)
            {
                i += 1;
            }
        } else if c == b':' && b.get(i + 1) == Some(&b':') {
            i += 2;
        } else if OPERATOR.as_bytes().contains(&c) {
            while i < b.len() && OPERATOR.as_bytes().contains(&b[i]) {
                i += 1;
            }
        } else {
            // One character (`(`, `,`, `.`, ...), whole when not ASCII.
            i += def[i..].chars().next().map_or(1, char::len_utf8);
        }
        out.push(&def[start..i]);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const V15: i32 = 150014;
    const V16: i32 = 160010;
    const V17: i32 = 170006;
    const V18: i32 = 180001;

    #[test]
    fn maintain_is_left_out_only_between_a_major_before_17_and_one_from_17() {
        assert_eq!(unshared_privileges(V15, V18), vec!["MAINTAIN"]);
        assert_eq!(unshared_privileges(V18, V15), vec!["MAINTAIN"]);
        assert_eq!(unshared_privileges(V16, V17), vec!["MAINTAIN"]);
        assert_eq!(unshared_privileges(100023, 170000), vec!["MAINTAIN"]);
        assert!(unshared_privileges(V15, V16).is_empty());
        assert!(unshared_privileges(V17, V18).is_empty());
        assert!(unshared_privileges(V15, V15).is_empty());
        assert!(unshared_privileges(V18, V18).is_empty());
    }

    #[test]
    fn only_the_left_out_privileges_leave_a_value() {
        let m = ["MAINTAIN"];
        assert_eq!(
            without_privileges(
                "DELETE, INSERT, MAINTAIN, REFERENCES, SELECT, TRIGGER, TRUNCATE, UPDATE",
                &m
            )
            .as_deref(),
            Some("DELETE, INSERT, REFERENCES, SELECT, TRIGGER, TRUNCATE, UPDATE")
        );
        assert_eq!(
            without_privileges("MAINTAIN WITH GRANT OPTION, SELECT WITH GRANT OPTION", &m)
                .as_deref(),
            Some("SELECT WITH GRANT OPTION")
        );
        assert_eq!(without_privileges("MAINTAIN", &m), None);
        assert_eq!(without_privileges("SELECT", &[]).as_deref(), Some("SELECT"));
    }

    const QUALIFIED: &str = "SELECT orders.id, orders.customer_id, orders.amount FROM sales.orders WHERE orders.amount > 50::numeric;";
    const BARE: &str =
        "SELECT id, customer_id, amount FROM sales.orders WHERE amount > 50::numeric;";

    #[test]
    fn a_single_relations_columns_bare_on_16_and_later_are_the_same_view() {
        assert!(same_view_definition(QUALIFIED, BARE, V15, V18));
        assert!(same_view_definition(QUALIFIED, BARE, V15, V16));
        // Either side may be the older one.
        assert!(same_view_definition(BARE, QUALIFIED, V18, V15));
        assert!(same_view_definition(
            "SELECT orders.customer_id, sum(orders.amount) AS total FROM sales.orders GROUP BY orders.customer_id; [NOT POPULATED]",
            "SELECT customer_id, sum(amount) AS total FROM sales.orders GROUP BY customer_id; [NOT POPULATED]",
            V15,
            V17
        ));
        // An alias, quoted names, a whole-row reference, a string with a dot in it.
        assert!(same_view_definition(
            "SELECT o.\"Value\", o.* , 'a.b'::text AS s FROM ONLY \"Mixed Case\".\"Weird \"\"Name\"\"\" o WHERE o.\"Id\" > 1;",
            "SELECT \"Value\", o.*, 'a.b'::text AS s FROM ONLY \"Mixed Case\".\"Weird \"\"Name\"\"\" o WHERE \"Id\" > 1;",
            V15,
            V18
        ));
        // A relation with a column of its own name, qualified or not.
        assert!(same_view_definition(
            "SELECT t.t, t.x FROM s.t WHERE t.t > 0;",
            "SELECT t, x FROM s.t WHERE t > 0;",
            V15,
            V18
        ));
        assert!(!same_view_definition(
            "SELECT t.t FROM s.t;",
            "SELECT t.t.t FROM s.t;",
            V15,
            V18
        ));
        // A subquery in FROM, by its alias.
        assert!(same_view_definition(
            "SELECT sub.id FROM ( SELECT orders.id FROM sales.orders) sub WHERE sub.id > 1;",
            "SELECT id FROM ( SELECT orders.id FROM sales.orders) sub WHERE id > 1;",
            V15,
            V18
        ));
        assert!(same_view_definition(
            "SELECT \"Weird \"\"Name\"\"\".\"Value\" FROM \"Mixed Case\".\"Weird \"\"Name\"\"\";",
            "SELECT \"Value\" FROM \"Mixed Case\".\"Weird \"\"Name\"\"\";",
            V15,
            V18
        ));
    }

    #[test]
    fn a_real_change_is_still_a_difference_across_16() {
        // The body.
        assert!(!same_view_definition(
            QUALIFIED,
            "SELECT id, customer_id, amount FROM sales.orders WHERE amount > 60::numeric;",
            V15,
            V18
        ));
        // A column more, a column less, another column.
        assert!(!same_view_definition(
            QUALIFIED,
            "SELECT id, customer_id, amount, placed_at FROM sales.orders WHERE amount > 50::numeric;",
            V15,
            V18
        ));
        assert!(!same_view_definition(
            QUALIFIED,
            "SELECT id, amount FROM sales.orders WHERE amount > 50::numeric;",
            V15,
            V18
        ));
        assert!(!same_view_definition(
            QUALIFIED,
            "SELECT id, placed_at, amount FROM sales.orders WHERE amount > 50::numeric;",
            V15,
            V18
        ));
        // Another relation (schema or table).
        assert!(!same_view_definition(
            QUALIFIED,
            "SELECT id, customer_id, amount FROM archive.orders WHERE amount > 50::numeric;",
            V15,
            V18
        ));
        assert!(!same_view_definition(
            "SELECT orders.id FROM sales.orders;",
            "SELECT id FROM sales.orders_old;",
            V15,
            V18
        ));
        // A schema's function is not a relation's column.
        assert!(!same_view_definition(
            "SELECT public.lower(orders.t) AS l FROM sales.orders;",
            "SELECT lower(t) AS l FROM sales.orders;",
            V15,
            V18
        ));
        // A qualification by a name that no FROM gives a relation is not passed over.
        assert!(!same_view_definition(
            "SELECT other.id FROM sales.orders;",
            "SELECT id FROM sales.orders;",
            V15,
            V18
        ));
        // Options and population.
        assert!(!same_view_definition(
            "SELECT orders.id FROM sales.orders; WITH (security_barrier=true)",
            "SELECT id FROM sales.orders;",
            V15,
            V18
        ));
    }

    #[test]
    fn one_major_or_one_side_of_16_compares_the_text_as_it_is() {
        assert!(!same_view_definition(QUALIFIED, BARE, V15, V15));
        assert!(!same_view_definition(QUALIFIED, BARE, 120022, V15));
        assert!(!same_view_definition(QUALIFIED, BARE, V16, V18));
        assert!(!same_view_definition(QUALIFIED, BARE, V18, V18));
        assert!(same_view_definition(BARE, BARE, V18, V18));
        assert!(same_view_definition(QUALIFIED, QUALIFIED, V15, V15));
    }

    #[test]
    fn execute_procedure_before_11_is_execute_function() {
        let old = "CREATE TRIGGER t BEFORE UPDATE ON s.o FOR EACH ROW EXECUTE PROCEDURE s.touch()";
        let new = "CREATE TRIGGER t BEFORE UPDATE ON s.o FOR EACH ROW EXECUTE FUNCTION s.touch()";
        assert!(same_trigger_definition(old, new, 100023, V15));
        assert!(same_trigger_definition(new, old, V15, 100023));
        assert!(!same_trigger_definition(old, new, V15, V18), "both 11+");
        assert!(!same_trigger_definition(
            old,
            "CREATE TRIGGER t BEFORE UPDATE ON s.o FOR EACH ROW EXECUTE FUNCTION s.touch2()",
            100023,
            V15
        ));
        assert!(!same_trigger_definition(
            old,
            "CREATE TRIGGER t AFTER UPDATE ON s.o FOR EACH ROW EXECUTE FUNCTION s.touch()",
            100023,
            V15
        ));
        assert!(!same_trigger_definition(
            old,
            &format!("{new} [DISABLED]"),
            100023,
            V15
        ));
    }

    #[test]
    fn floats_go_as_bits_only_across_12() {
        assert!(floats_print_differently(100023, V15));
        assert!(floats_print_differently(V18, 110000));
        assert!(!floats_print_differently(120000, V18));
        assert!(!floats_print_differently(100023, 110022));
        assert!(!floats_print_differently(V15, V15));
        assert_eq!(
            checksum_value("t.\"f\"", "real", true),
            "float4send(CASE WHEN t.\"f\" = 'NaN' THEN 'NaN' ELSE t.\"f\" END)"
        );
        assert_eq!(
            checksum_value("t.f", "double precision", true),
            "float8send(CASE WHEN t.f = 'NaN' THEN 'NaN' ELSE t.f END)"
        );
        assert_eq!(checksum_value("t.f", "double precision", false), "t.f");
        assert_eq!(checksum_value("t.p", "point", true), "point_send(t.p)");
        assert_eq!(checksum_value("t.g", "polygon", true), "poly_send(t.g)");
        assert_eq!(checksum_value("t.p", "point", false), "t.p");
        assert_eq!(checksum_value("t.n", "numeric", true), "t.n");
        assert_eq!(
            checksum_value("t.a", "double precision[]", true),
            "array_send(t.a)"
        );
        assert_eq!(checksum_value("t.a", "point[]", true), "array_send(t.a)");
        assert_eq!(checksum_value("t.a", "double precision[]", false), "t.a");
        assert_eq!(checksum_value("t.a", "numeric[]", true), "t.a");
    }

    #[test]
    fn tokens_keep_quoted_names_and_strings_whole() {
        assert_eq!(
            tokens("SELECT o.\"a \"\"b\"\"\", 'it''s'::text>=x FROM s.t o;"),
            vec![
                "SELECT",
                "o",
                ".",
                "\"a \"\"b\"\"\"",
                ",",
                "'it''s'",
                "::",
                "text",
                ">=",
                "x",
                "FROM",
                "s",
                ".",
                "t",
                "o",
                ";"
            ]
        );
        assert_eq!(
            exposed_names(&tokens("SELECT 1 FROM s.t o JOIN u ON true JOIN ONLY v.w;"))
                .into_iter()
                .collect::<Vec<_>>(),
            vec!["o", "u", "w"]
        );
        assert_eq!(
            exposed_names(&tokens(
                "SELECT 1 FROM (SELECT x.a FROM s.x) sub JOIN LATERAL generate_series(1, (2)) g(n) ON true, s.f(1) WHERE true;"
            ))
            .into_iter()
            .collect::<Vec<_>>(),
            vec!["g", "sub", "x"]
        );
    }
}
