//! The text of the starter plan `pgmove init` writes: YAML with comments saying what pgmove
//! found on both servers and why each value is what it is. Secrets are only ever
//! `{env: NAME}`.

use std::fmt::Write as _;
use std::time::Duration;

use crate::inspect::Inventory;
use crate::planner::{self, Decision, Strategy};
use crate::preflight::{Finding, Severity};

/// The environment variable the starter plan reads the source's password from.
pub const SOURCE_PASSWORD_ENV: &str = "PGMOVE_SOURCE_PASSWORD";
/// The environment variable the starter plan reads the target's password from.
pub const TARGET_PASSWORD_ENV: &str = "PGMOVE_TARGET_PASSWORD";

/// One server as the starter plan names it.
pub struct Server<'a> {
    /// The DSN without a password.
    pub dsn: &'a str,
    /// `Some(NAME)`: a password was typed in the DSN; the plan reads it from `NAME`.
    pub password_env: Option<&'static str>,
    /// What inspection found; `None` in the draft written before it.
    pub inventory: Option<&'a Inventory>,
}

/// What the starter plan is made of.
pub struct Starter<'a> {
    pub name: &'a str,
    pub source: Server<'a>,
    pub target: Server<'a>,
    /// `None`: the draft, `strategy: auto`, parsed to decide.
    pub decision: Option<&'a Decision>,
    /// What the roles lack for the plan (`super::rights`): said first, with the fixes.
    pub lacking: &'a [Finding],
}

/// A YAML single-quoted scalar.
fn quoted(s: &str) -> String {
    format!("'{}'", s.replace('\'', "''"))
}

/// Text from a server or the planner on one comment line.
fn one_line(s: &str) -> String {
    s.replace(['\n', '\r'], " ")
}

/// A plan name from a database name: its letters, digits, `-` and `_` (others become `-`),
/// at most 55; `pgmove-move` when nothing is left.
pub fn plan_name(database: &str) -> String {
    let name: String = database
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                c
            } else {
                '-'
            }
        })
        .take(55)
        .collect();
    let name = name.trim_matches('-').to_string();
    if name.is_empty() {
        "pgmove-move".to_string()
    } else {
        name
    }
}

impl Starter<'_> {
    /// The plan's text.
    pub fn render(&self) -> String {
        let mut o = String::new();
        self.header(&mut o);
        self.rights(&mut o);
        let _ = writeln!(o, "version: 1");
        let _ = writeln!(
            o,
            "name: {}   # names the slot, publication and dump directory pgmove creates",
            self.name
        );
        for (key, s) in [("source", &self.source), ("target", &self.target)] {
            let _ = writeln!(o, "\n{key}:");
            let _ = writeln!(o, "  dsn: {}", quoted(s.dsn));
            match s.password_env {
                Some(env) => {
                    let _ = writeln!(
                        o,
                        "  password: {{env: {env}}}   # the password typed in the DSN is not written here: export {env}"
                    );
                }
                None => {
                    let _ = writeln!(
                        o,
                        "  # password: {{env: NAME}} or {{file: PATH}}; none given: PGPASSWORD or ~/.pgpass"
                    );
                }
            }
        }
        self.strategy(&mut o);
        self.extensions(&mut o);
        self.tables_without_key(&mut o);
        o
    }

    fn header(&self, o: &mut String) {
        let _ = writeln!(
            o,
            "# A starter plan written by `pgmove init` from what it found on both servers."
        );
        for (label, s) in [("source", &self.source), ("target", &self.target)] {
            if let Some(inv) = s.inventory {
                let _ = writeln!(
                    o,
                    "#   {label}: {} - PostgreSQL {} ({}), {} in {} table(s)",
                    one_line(&inv.endpoint),
                    one_line(&inv.settings.server_version),
                    one_line(&inv.platform_description()),
                    planner::bytes(inv.user_size_bytes()),
                    inv.user_tables().count()
                );
            }
        }
        let envs: Vec<String> = [&self.source, &self.target]
            .iter()
            .filter_map(|s| s.password_env.map(|e| format!("{e}=...")))
            .collect();
        let _ = writeln!(o, "# Next:");
        if !envs.is_empty() {
            let _ = writeln!(o, "#   export {}", envs.join(" "));
        }
        let _ = writeln!(
            o,
            "#   pgmove plan THIS_FILE           # checks both servers, never writes"
        );
        let _ = writeln!(o, "#   pgmove apply THIS_FILE --yes");
        let _ = writeln!(o, "# Every key, its type and default: docs/plan.md.");
    }

    fn strategy(&self, o: &mut String) {
        let Some(d) = self.decision else {
            let _ = writeln!(o, "\nstrategy: auto");
            return;
        };
        let _ = writeln!(o);
        let _ = writeln!(
            o,
            "# Size: {} of data and {} of indexes in {} table(s).",
            planner::bytes(d.data_bytes),
            planner::bytes(d.index_bytes),
            d.tables
        );
        if let (Some(total), Some(outage)) = (d.estimated_total_secs, d.estimated_outage_secs) {
            let _ = writeln!(
                o,
                "# Estimate: about {} in all, a write outage of about {} (conservative default rates).",
                planner::human(Duration::from_secs(total)),
                planner::human(Duration::from_secs(outage))
            );
        }
        match d.strategy {
            Some(s) => {
                let _ = writeln!(o, "# Strategy {}: {}", s.name(), one_line(&d.why));
            }
            None => {
                let _ = writeln!(o, "# No strategy can run yet: {}", one_line(&d.why));
            }
        }
        for r in &d.rejected {
            let _ = writeln!(
                o,
                "#   not {}: {}",
                r.strategy.name(),
                one_line(&r.reasons.join("; "))
            );
        }
        let _ = writeln!(
            o,
            "strategy: {}",
            d.strategy.map(Strategy::name).unwrap_or("auto")
        );
        let _ = writeln!(
            o,
            "downtime: 5m   # the write outage you accept; `auto` picks dump-restore when a full copy fits in it"
        );
    }

    fn extensions(&self, o: &mut String) {
        let (Some(src), Some(dst)) = (self.source.inventory, self.target.inventory) else {
            return;
        };
        let exts: Vec<_> = src
            .extensions
            .iter()
            .filter(|e| e.name != "plpgsql")
            .collect();
        if exts.is_empty() {
            let _ = writeln!(o, "\n# Extensions: none on the source but plpgsql.");
            return;
        }
        let _ = writeln!(
            o,
            "\n# Extensions on the source (the move creates them on the target, which must have their files):"
        );
        for e in exts {
            let on_target = match dst.available_extensions.iter().find(|a| a.name == e.name) {
                Some(a) => match &a.installed_version {
                    Some(v) => format!("installed ({})", one_line(v)),
                    None => format!(
                        "available ({})",
                        one_line(a.default_version.as_deref().unwrap_or("?"))
                    ),
                },
                None => {
                    "MISSING: install its package on the target (pgmove plan names it)".to_string()
                }
            };
            let _ = writeln!(
                o,
                "#   {} {} in schema {}; target: {on_target}",
                one_line(&e.name),
                one_line(&e.version),
                one_line(&e.schema)
            );
        }
    }

    /// What the roles lack, each with its fix, before anything else is read.
    fn rights(&self, o: &mut String) {
        if self.lacking.is_empty() {
            return;
        }
        let _ = writeln!(
            o,
            "#\n# What the roles lack for this plan (`pgmove plan` blocks until the blockers are granted):"
        );
        for f in self.lacking {
            let severity = match f.severity {
                Severity::Blocker => "blocker",
                Severity::Warning => "warning",
                Severity::Info => "note",
            };
            let side = f.side.map(|s| format!("{s} ")).unwrap_or_default();
            let _ = writeln!(o, "#   {side}{severity}: {}", one_line(&f.message));
            if let Some(fix) = &f.fix {
                let _ = writeln!(o, "#     fix: {}", one_line(fix));
            }
        }
        let _ = writeln!(o, "#");
    }

    fn tables_without_key(&self, o: &mut String) {
        let Some(src) = self.source.inventory else {
            return;
        };
        let keyless: Vec<String> = src
            .tables_without_replica_identity()
            .map(|t| format!("{}.{}", t.schema, t.name))
            .collect();
        if keyless.is_empty() {
            return;
        }
        let online = self
            .decision
            .and_then(|d| d.strategy)
            .is_some_and(Strategy::is_online);
        let _ = writeln!(
            o,
            "\n# {} table(s) without a primary key or replica identity: {}",
            keyless.len(),
            one_line(&keyless.join(", "))
        );
        let _ = writeln!(
            o,
            "# An online strategy (copy-cdc, pglogical) cannot replicate their updates and deletes; choose:"
        );
        let _ = writeln!(o, "#   refuse (stop and list them), replica-identity-full (pgmove sets REPLICA IDENTITY FULL");
        let _ = writeln!(o, "#   on the source), insert-only (only inserts replicate), exclude (copied once, then not");
        let _ = writeln!(o, "#   replicated), or add a primary key to each.");
        if online {
            let _ = writeln!(o, "cdc:\n  tables_without_key: refuse");
        } else {
            let _ = writeln!(
                o,
                "# dump-restore copies them whole: the choice matters only with an online strategy.\n# cdc:\n#   tables_without_key: refuse"
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::inspect::Table;
    use crate::pg::Side;
    use crate::plan::PasswordSource;
    use crate::planner::tests::{inventory, plan};

    fn keyless() -> Table {
        Table {
            oid: 1,
            schema: "public".to_string(),
            name: "audit_log".to_string(),
            owner: "app".to_string(),
            total_bytes: 8192,
            heap_bytes: 8192,
            has_select: true,
            ..Table::default()
        }
    }

    /// The starter plan for `strategy` (the planner's decision on that plan), parsed.
    fn starter(strategy: &str) -> (String, crate::plan::Plan) {
        let src = inventory(Side::Source, vec![keyless()]);
        let dst = inventory(Side::Target, vec![]);
        let d = planner::decide(&plan(&format!("strategy: {strategy}\n")), &src, &dst);
        assert_eq!(d.strategy.map(Strategy::name), Some(strategy));
        let text = Starter {
            name: "shop",
            source: Server {
                dsn: "postgres://app@old:5432/shop?sslmode=require",
                password_env: Some(SOURCE_PASSWORD_ENV),
                inventory: Some(&src),
            },
            target: Server {
                dsn: "host=new dbname=shop user=app",
                password_env: None,
                inventory: Some(&dst),
            },
            decision: Some(&d),
            lacking: &[],
        }
        .render();
        let parsed = crate::plan::parse(&text, "starter.yaml")
            .unwrap_or_else(|e| panic!("{e}\n---\n{text}"));
        (text, parsed)
    }

    #[test]
    fn an_online_strategy_gets_an_active_choice_for_keyless_tables() {
        let (text, p) = starter("copy-cdc");
        assert!(
            text.contains("\ncdc:\n  tables_without_key: refuse\n"),
            "{text}"
        );
        assert!(text.contains("public.audit_log"), "{text}");
        assert!(text.contains("replica-identity-full"), "{text}");
        // postgis on the source, installed on the target.
        assert!(text.contains("#   postgis "), "{text}");
        assert!(text.contains("strategy: copy-cdc\n"), "{text}");
        assert_eq!(
            p.source.password,
            Some(PasswordSource::Env(SOURCE_PASSWORD_ENV.to_string()))
        );
        assert_eq!(p.target.password, None);
        assert_eq!(p.target.dsn, "host=new dbname=shop user=app");
    }

    #[test]
    fn dump_restore_leaves_the_choice_commented() {
        let (text, _) = starter("dump-restore");
        assert!(
            text.contains("\n# cdc:\n#   tables_without_key: refuse\n"),
            "{text}"
        );
        assert!(!text.contains("\ncdc:"), "{text}");
    }

    #[test]
    fn plan_names_keep_what_a_plan_name_allows() {
        assert_eq!(plan_name("shop"), "shop");
        assert_eq!(plan_name("my db.v2"), "my-db-v2");
        assert_eq!(plan_name("ü"), "pgmove-move");
        assert_eq!(plan_name(&"x".repeat(80)).len(), 55);
    }
}
