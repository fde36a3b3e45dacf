//! Role settings (`ALTER ROLE ... SET`, and `ALTER ROLE ... IN DATABASE ... SET` for the moved
//! database) as `pg_dumpall` writes them: read from `pg_db_role_setting` (readable by any
//! role), one `name=value` entry each, written back with the value as a literal, and a list
//! setting (`search_path`, ...) split into one literal per element, since the server stores it
//! flattened (`"$user", public`) and would otherwise take the whole text for one element.

use crate::pg::quote;

/// The settings of the roles named `$1` on a server: role name, whether the setting holds
/// in the current database only (`IN DATABASE`), and the `name=value` entry; role-wide and
/// current-database ones only, in the server's order.
pub const SETTINGS_SQL: &str = "SELECT r.rolname::text, s.setdatabase <> 0, c.entry
  FROM pg_catalog.pg_db_role_setting s
  JOIN pg_catalog.pg_roles r ON r.oid = s.setrole
  CROSS JOIN LATERAL unnest(s.setconfig) WITH ORDINALITY AS c(entry, n)
 WHERE r.rolname = ANY($1::text[])
   AND s.setdatabase IN (0, (SELECT oid FROM pg_catalog.pg_database WHERE datname = current_database()))
 ORDER BY 1, 2, c.n";

/// The settings PostgreSQL flattens as a list of quoted identifiers (`GUC_LIST_QUOTE`), as
/// `pg_dumpall` knows them.
const LIST_QUOTE: [&str; 6] = [
    "local_preload_libraries",
    "search_path",
    "session_preload_libraries",
    "shared_preload_libraries",
    "temp_tablespaces",
    "unix_socket_directories",
];

/// One role setting.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct Setting {
    pub role: String,
    /// For the moved database only (`ALTER ROLE ... IN DATABASE`).
    pub in_database: bool,
    pub name: String,
    /// As the server stores it.
    pub value: String,
}

impl Setting {
    /// From a row of `SETTINGS_SQL`'s values; `None` for an entry without `=`.
    pub fn parse(role: String, in_database: bool, entry: &str) -> Option<Setting> {
        let (name, value) = entry.split_once('=')?;
        Some(Setting {
            role,
            in_database,
            name: name.to_string(),
            value: value.to_string(),
        })
    }

    /// What identifies the setting on the target: role, scope, name.
    pub fn key(&self) -> (String, bool, String) {
        (self.role.clone(), self.in_database, self.name.clone())
    }

    /// `ALTER ROLE "r" [IN DATABASE "db"] SET "name" = 'value'` (no semicolon), `database` the
    /// target database.
    pub fn alter_sql(&self, database: &str) -> String {
        let value = if LIST_QUOTE.contains(&self.name.as_str()) {
            match split_guc_list(&self.value) {
                Some(items) => items
                    .iter()
                    .map(|i| quote::literal(i))
                    .collect::<Vec<_>>()
                    .join(", "),
                None => quote::literal(&self.value),
            }
        } else {
            quote::literal(&self.value)
        };
        format!(
            "ALTER ROLE {}{} SET {} = {value}",
            quote::ident(&self.role),
            if self.in_database {
                format!(" IN DATABASE {}", quote::ident(database))
            } else {
                String::new()
            },
            quote::ident(&self.name)
        )
    }
}

/// The elements of a flattened list setting (`"$user", public` gives `$user` and `public`), as
/// PostgreSQL's `SplitGUCList` reads it: comma-separated, blanks around elements dropped,
/// double-quoted elements unquoted (`""` inside is one quote). `None` when it is not such a
/// list.
pub fn split_guc_list(s: &str) -> Option<Vec<String>> {
    let mut items = Vec::new();
    let mut chars = s.chars().peekable();
    let skip_blanks = |c: &mut std::iter::Peekable<std::str::Chars>| {
        while c.peek().is_some_and(|ch| ch.is_whitespace()) {
            c.next();
        }
    };
    skip_blanks(&mut chars);
    if chars.peek().is_none() {
        return Some(items);
    }
    loop {
        let mut item = String::new();
        if chars.peek() == Some(&'"') {
            chars.next();
            loop {
                match chars.next() {
                    None => return None,
                    Some('"') if chars.peek() == Some(&'"') => {
                        chars.next();
                        item.push('"');
                    }
                    Some('"') => break,
                    Some(c) => item.push(c),
                }
            }
        } else {
            while let Some(&c) = chars.peek() {
                if c == ',' || c.is_whitespace() {
                    break;
                }
                item.push(c);
                chars.next();
            }
            if item.is_empty() {
                return None;
            }
        }
        items.push(item);
        skip_blanks(&mut chars);
        match chars.next() {
            None => return Some(items),
            Some(',') => skip_blanks(&mut chars),
            Some(_) => return None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn setting(name: &str, value: &str, in_database: bool) -> Setting {
        Setting {
            role: "app".into(),
            in_database,
            name: name.into(),
            value: value.into(),
        }
    }

    #[test]
    fn list_settings_are_split_into_literals() {
        assert_eq!(
            split_guc_list(r#""$user", public, "We""ird""#),
            Some(vec!["$user".into(), "public".into(), "We\"ird".into()])
        );
        assert_eq!(split_guc_list("\"\""), Some(vec![String::new()]));
        assert_eq!(split_guc_list("a,,b"), None);
        assert_eq!(
            setting("search_path", "app, \"$user\"", false).alter_sql("db"),
            "ALTER ROLE \"app\" SET \"search_path\" = 'app', '$user'"
        );
    }

    #[test]
    fn other_settings_are_one_literal_and_database_ones_name_the_target_database() {
        assert_eq!(
            setting("work_mem", "8MB", true).alter_sql("new db"),
            "ALTER ROLE \"app\" IN DATABASE \"new db\" SET \"work_mem\" = '8MB'"
        );
        assert_eq!(
            setting("myapp.note", "it's", false).alter_sql("db"),
            "ALTER ROLE \"app\" SET \"myapp.note\" = 'it''s'"
        );
        assert_eq!(
            Setting::parse("r".into(), false, "statement_timeout=30s=x").map(|s| (s.name, s.value)),
            Some(("statement_timeout".into(), "30s=x".into()))
        );
    }
}
