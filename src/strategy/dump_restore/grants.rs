//! Privileges (the dump's ACL and DEFAULT ACL entries) restored for the roles that exist on the
//! target: a GRANT or REVOKE naming a role the target lacks is left out and reported by name
//! instead of failing the restore (`roles: skip` creates no roles).

use std::collections::{BTreeSet, HashSet};

/// Roles on the target (`PUBLIC` is not a role and always "exists").
pub const TARGET_ROLES: &str = "SELECT rolname FROM pg_catalog.pg_roles";

/// What [`filter`] left out.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Skipped {
    /// Roles missing on the target, sorted.
    pub roles: BTreeSet<String>,
    /// The statements left out, as written.
    pub statements: Vec<String>,
}

/// Splits a statement into words, keeping double-quoted identifiers (with `""` inside) whole.
fn words(line: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut quoted = false;
    for c in line.chars() {
        if c == '"' {
            quoted = !quoted;
            cur.push(c);
        } else if c.is_whitespace() && !quoted {
            if !cur.is_empty() {
                out.push(std::mem::take(&mut cur));
            }
        } else {
            cur.push(c);
        }
    }
    if !cur.is_empty() {
        out.push(cur);
    }
    out
}

/// A role name as written by pg_dump (`alice`, `"Mr X"`), or `None` for `PUBLIC`.
fn role_name(word: &str) -> Option<String> {
    let w = word.trim_end_matches(';');
    if let Some(inner) = w.strip_prefix('"').and_then(|s| s.strip_suffix('"')) {
        return Some(inner.replace("\"\"", "\""));
    }
    if w.eq_ignore_ascii_case("public") {
        return None;
    }
    Some(w.to_string())
}

/// The roles a privilege statement of the dump names (grantee, `FOR ROLE`), or `None` when the
/// line is not a GRANT, REVOKE or ALTER DEFAULT PRIVILEGES.
fn named_roles(line: &str) -> Option<Vec<String>> {
    let t = line.trim();
    let upper = t.to_ascii_uppercase();
    if !(upper.starts_with("GRANT ")
        || upper.starts_with("REVOKE ")
        || upper.starts_with("ALTER DEFAULT PRIVILEGES "))
    {
        return None;
    }
    let mut w = words(t.trim_end_matches(';'));
    // `... WITH GRANT OPTION` after the grantee.
    if w.len() > 3
        && w[w.len() - 3..]
            .iter()
            .map(|s| s.to_ascii_uppercase())
            .eq(["WITH", "GRANT", "OPTION"])
    {
        w.truncate(w.len() - 3);
    }
    let mut roles = Vec::new();
    if let Some(i) = w
        .windows(2)
        .position(|p| p[0].eq_ignore_ascii_case("FOR") && p[1].eq_ignore_ascii_case("ROLE"))
    {
        if let Some(r) = w.get(i + 2).and_then(|r| role_name(r)) {
            roles.push(r);
        }
    }
    // The grantee list follows the last TO (GRANT) or FROM (REVOKE).
    if let Some(i) = w
        .iter()
        .rposition(|x| x.eq_ignore_ascii_case("TO") || x.eq_ignore_ascii_case("FROM"))
    {
        for g in &w[i + 1..] {
            if let Some(r) = role_name(g.trim_end_matches(',')) {
                roles.push(r);
            }
        }
    }
    Some(roles)
}

/// The dump's privilege SQL with every statement naming a role outside `existing` left out
/// (a `SET SESSION AUTHORIZATION` to such a role leaves out everything up to its `RESET`).
pub fn filter(sql: &str, existing: &HashSet<String>) -> (String, Skipped) {
    let mut out = String::with_capacity(sql.len());
    let mut skipped = Skipped::default();
    let mut as_missing = false;
    for line in sql.lines() {
        let t = line.trim();
        let upper = t.to_ascii_uppercase();
        if as_missing {
            if upper.starts_with("RESET SESSION AUTHORIZATION") {
                as_missing = false;
            } else if !t.is_empty() {
                skipped.statements.push(t.to_string());
            }
            continue;
        }
        if upper.starts_with("SET SESSION AUTHORIZATION ") {
            let w = words(t.trim_end_matches(';'));
            if let Some(r) = w.get(3).and_then(|r| role_name(r.trim_matches('\''))) {
                if !existing.contains(&r) {
                    skipped.roles.insert(r);
                    as_missing = true;
                    continue;
                }
            }
        }
        if let Some(roles) = named_roles(t) {
            let missing: Vec<String> = roles
                .into_iter()
                .filter(|r| !existing.contains(r))
                .collect();
            if !missing.is_empty() {
                skipped.roles.extend(missing);
                skipped.statements.push(t.to_string());
                continue;
            }
        }
        out.push_str(line);
        out.push('\n');
    }
    (out, skipped)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn roles(names: &[&str]) -> HashSet<String> {
        names.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn grants_to_missing_roles_are_left_out_and_named() {
        let sql = "SET row_security = off;\n\
GRANT USAGE ON SCHEMA public TO bob;\n\
GRANT SELECT ON TABLE public.t TO alice;\n\
GRANT INSERT ON TABLE public.t TO \"Mr X\" WITH GRANT OPTION;\n\
GRANT UPDATE(b) ON TABLE public.t TO bob;\n\
REVOKE ALL ON TABLE public.t FROM PUBLIC;\n\
GRANT SELECT ON LARGE OBJECT 4242 TO alice;\n\
ALTER DEFAULT PRIVILEGES FOR ROLE postgres IN SCHEMA public GRANT SELECT ON TABLES  TO alice;\n\
ALTER DEFAULT PRIVILEGES FOR ROLE bob GRANT USAGE ON SEQUENCES  TO \"Mr X\";\n\
SET SESSION AUTHORIZATION bob;\n\
GRANT SELECT ON TABLE public.t TO postgres;\n\
RESET SESSION AUTHORIZATION;\n";
        let (kept, skipped) = filter(sql, &roles(&["postgres", "alice", "Mr X"]));
        assert_eq!(
            kept,
            "SET row_security = off;\n\
GRANT SELECT ON TABLE public.t TO alice;\n\
GRANT INSERT ON TABLE public.t TO \"Mr X\" WITH GRANT OPTION;\n\
REVOKE ALL ON TABLE public.t FROM PUBLIC;\n\
GRANT SELECT ON LARGE OBJECT 4242 TO alice;\n\
ALTER DEFAULT PRIVILEGES FOR ROLE postgres IN SCHEMA public GRANT SELECT ON TABLES  TO alice;\n"
        );
        assert_eq!(skipped.roles.into_iter().collect::<Vec<_>>(), vec!["bob"]);
        assert_eq!(skipped.statements.len(), 4, "{:?}", skipped.statements);
    }

    #[test]
    fn quoted_role_names_are_unquoted() {
        let (kept, skipped) = filter(
            "GRANT SELECT ON TABLE public.t TO \"we\"\"ird\";\n",
            &roles(&["postgres"]),
        );
        assert_eq!(kept, "");
        assert_eq!(
            skipped.roles.into_iter().collect::<Vec<_>>(),
            vec!["we\"ird"]
        );
    }
}
