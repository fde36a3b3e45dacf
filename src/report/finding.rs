//! Findings: what a check found (preflight in `pgmove plan` and `apply`, the cutover dry run),
//! with its severity, the object concerned and the exact fix, and how a list of them prints.

use std::fmt::Write as _;

use serde::Serialize;

use super::markdown;
use crate::pg::Side;

/// How much a finding matters; reports list blockers first.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    Blocker,
    Warning,
    Info,
}

/// One thing a check found.
#[derive(Clone, Debug, Serialize)]
pub struct Finding {
    pub severity: Severity,
    /// A stable identifier, e.g. `wal-level`.
    pub check: &'static str,
    pub side: Option<Side>,
    /// The database object concerned, when there is one.
    pub object: Option<String>,
    pub message: String,
    /// The exact fix: SQL, a setting or a command.
    pub fix: Option<String>,
}

impl Finding {
    /// A finding without object or fix; add them with [`Finding::object`] and [`Finding::fix`].
    pub fn new(
        severity: Severity,
        check: &'static str,
        side: Option<Side>,
        message: impl Into<String>,
    ) -> Finding {
        Finding {
            severity,
            check,
            side,
            object: None,
            message: message.into(),
            fix: None,
        }
    }

    /// The database object concerned.
    pub fn object(mut self, o: impl Into<String>) -> Finding {
        self.object = Some(o.into());
        self
    }

    /// The exact fix.
    pub fn fix(mut self, f: impl Into<String>) -> Finding {
        self.fix = Some(f.into());
        self
    }
}

/// Paints a title for a terminal: `paint(ansi_code, text)`, or returns it as it is.
pub type Paint<'a> = &'a dyn Fn(&str, &str) -> String;

/// The text form of `findings`: a group per severity that has any ("Blockers (2)", then
/// "Warnings", then "Notes"), each finding as `  - [check] side: message` and its
/// `    fix: ...`, a blank line after each group.
pub fn text(o: &mut String, findings: &[Finding], paint: Paint) {
    for (sev, title, code) in [
        (Severity::Blocker, "Blockers", "1;31"),
        (Severity::Warning, "Warnings", "1;33"),
        (Severity::Info, "Notes", "1;36"),
    ] {
        let group: Vec<&Finding> = findings.iter().filter(|f| f.severity == sev).collect();
        if group.is_empty() {
            continue;
        }
        let _ = writeln!(o, "{}", paint(code, &format!("{title} ({})", group.len())));
        for f in group {
            let side = f.side.map(|s| format!("{s}: ")).unwrap_or_default();
            let _ = writeln!(o, "  - [{}] {side}{}", f.check, f.message);
            if let Some(fix) = &f.fix {
                let _ = writeln!(o, "    fix: {fix}");
            }
        }
        let _ = writeln!(o);
    }
}

/// The Markdown table of `findings` (severity, check, side, object when any, finding, fix), or
/// `None.` when there are none; `with_object` adds the object column.
pub fn markdown(o: &mut String, findings: &[Finding], with_object: bool) {
    if findings.is_empty() {
        let _ = writeln!(o, "None.");
        return;
    }
    let object_head = if with_object { " object |" } else { "" };
    let _ = writeln!(
        o,
        "| severity | check | side |{object_head} finding | fix |"
    );
    let _ = writeln!(
        o,
        "|---|---|---|{}---|---|",
        if with_object { "---|" } else { "" }
    );
    for f in findings {
        let object = if with_object {
            format!(" {} |", markdown::cell(f.object.as_deref().unwrap_or("")))
        } else {
            String::new()
        };
        let _ = writeln!(
            o,
            "| {:?} | {} | {} |{object} {} | {} |",
            f.severity,
            markdown::cell(f.check),
            f.side.map(|s| s.to_string()).unwrap_or_default(),
            markdown::cell(&f.message),
            markdown::cell(f.fix.as_deref().unwrap_or(""))
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn findings() -> Vec<Finding> {
        vec![
            Finding::new(
                Severity::Blocker,
                "wal-level",
                Some(Side::Source),
                "wal_level is replica",
            )
            .object("wal_level")
            .fix("ALTER SYSTEM SET wal_level = logical; -- then restart"),
            Finding::new(Severity::Info, "large-objects", None, "2 large | objects"),
        ]
    }

    #[test]
    fn the_builder_sets_object_and_fix() {
        let f = &findings()[0];
        assert_eq!(f.severity, Severity::Blocker);
        assert_eq!(f.check, "wal-level");
        assert_eq!(f.object.as_deref(), Some("wal_level"));
        assert_eq!(
            f.fix.as_deref(),
            Some("ALTER SYSTEM SET wal_level = logical; -- then restart")
        );
        assert_eq!(findings()[1].object, None);
    }

    #[test]
    fn text_groups_by_severity() {
        let mut o = String::new();
        text(&mut o, &findings(), &|_, s| s.to_string());
        assert_eq!(
            o,
            "Blockers (1)\n  - [wal-level] source: wal_level is replica\n    fix: ALTER SYSTEM SET wal_level = logical; -- then restart\n\nNotes (1)\n  - [large-objects] 2 large | objects\n\n"
        );
        let mut painted = String::new();
        text(&mut painted, &findings(), &|c, s| format!("<{c}>{s}"));
        assert!(painted.starts_with("<1;31>Blockers (1)\n"), "{painted}");
        assert!(painted.contains("<1;36>Notes (1)\n"), "{painted}");
    }

    #[test]
    fn markdown_tables_escape_cells() {
        let mut o = String::new();
        markdown(&mut o, &findings(), false);
        assert_eq!(
            o,
            "| severity | check | side | finding | fix |\n|---|---|---|---|---|\n| Blocker | wal-level | source | wal\\_level is replica | ALTER SYSTEM SET wal\\_level = logical; -- then restart |\n| Info | large-objects |  | 2 large \\| objects |  |\n"
        );
        let mut o = String::new();
        markdown(&mut o, &findings(), true);
        assert!(o.starts_with("| severity | check | side | object | finding | fix |\n|---|---|---|---|---|---|\n| Blocker | wal-level | source | wal\\_level | wal\\_level"), "{o}");
        let mut o = String::new();
        markdown(&mut o, &[], true);
        assert_eq!(o, "None.\n");
    }
}
