//! Reports: how every command prints what it found (`render`: [`Render`] and [`print()`]),
//! Markdown escaping (`markdown`), findings (`finding`), hints under errors (`hint`); and here
//! the plan report: findings, strategy, steps. Text for people, JSON for scripts (stable:
//! fields are only ever added), markdown for tickets.

use std::fmt::Write as _;

use serde::Serialize;

use crate::inspect::Inventory;
use crate::planner::{self, Decision};

pub mod finding;
pub mod hint;
pub mod markdown;
mod render;

pub use finding::{Finding, Severity};
pub use hint::Hint;
pub use render::{print, to_json, Render, Summary, To, SCHEMA_VERSION};

/// Output format of reports.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Format {
    Text,
    Json,
    Markdown,
    /// A self-contained HTML page with charts: `pgmove report` only.
    Html,
}

/// A short description of one server, for the report.
#[derive(Clone, Debug, Serialize)]
pub struct ServerSummary {
    pub endpoint: String,
    pub version: String,
    /// `self-managed`, `rds` or `aurora`: what every check followed.
    pub platform: String,
    /// What the server's signs showed (the same as `platform` unless `target.kind` overrides).
    pub platform_detected: String,
    /// `detection`, or `target.kind` when the plan declares the platform.
    pub platform_from: String,
    /// The signs seen, in words (e.g. `setting rds.extensions exists`).
    pub platform_evidence: Vec<String>,
    /// The platform and why, in a sentence: `Aurora (from target.kind; detected: RDS —
    /// setting rds.extensions exists)`.
    pub platform_description: String,
    pub database: String,
    pub user: String,
    pub size_bytes: i64,
    pub tables: usize,
}

impl ServerSummary {
    pub fn of(inv: &Inventory) -> ServerSummary {
        ServerSummary {
            endpoint: inv.endpoint.clone(),
            version: inv.settings.server_version.clone(),
            platform: kebab(inv.platform),
            platform_detected: kebab(inv.detected_platform()),
            platform_from: if inv.platform_declared() {
                "target.kind"
            } else {
                "detection"
            }
            .to_string(),
            platform_evidence: inv.platform_evidence.clone(),
            platform_description: inv.platform_description(),
            database: inv.server.database.clone(),
            user: inv.server.current_user.clone(),
            size_bytes: inv.user_size_bytes(),
            tables: inv.user_tables().count(),
        }
    }
}

/// A platform as JSON names it (`self-managed`, `rds`, `aurora`).
fn kebab(p: crate::inspect::Platform) -> String {
    serde_json::to_value(p)
        .ok()
        .and_then(|v| v.as_str().map(str::to_string))
        .unwrap_or_default()
}

impl ServerSummary {
    /// Whether the report spells out the platform and its evidence: managed, or declared by
    /// the plan (a self-managed server as detected needs no words).
    fn platform_worth_saying(&self) -> bool {
        self.platform != "self-managed" || self.platform_from != "detection"
    }
}

/// Everything `pgmove plan` reports.
#[derive(Clone, Debug, Serialize)]
pub struct PlanReport {
    /// Version of this JSON layout.
    pub format_version: u32,
    pub plan: String,
    pub plan_file: String,
    pub source: ServerSummary,
    pub target: ServerSummary,
    pub blockers: usize,
    pub warnings: usize,
    pub findings: Vec<Finding>,
    pub decision: Decision,
    /// Whether `pgmove apply` may proceed.
    pub ready: bool,
    /// The pg_dump and pg_restore `pgmove apply` runs (the newest pg_dump on this machine
    /// that can dump the source, and the pg_restore of its installation); empty when no
    /// strategy can run or they are missing (a `client-version` finding says why).
    pub clients: Vec<crate::tools::Tool>,
}

impl PlanReport {
    pub fn new(
        plan: &str,
        plan_file: &str,
        source: &Inventory,
        target: &Inventory,
        findings: Vec<Finding>,
        decision: Decision,
    ) -> PlanReport {
        let blockers = findings
            .iter()
            .filter(|f| f.severity == Severity::Blocker)
            .count();
        let warnings = findings
            .iter()
            .filter(|f| f.severity == Severity::Warning)
            .count();
        PlanReport {
            format_version: 1,
            plan: plan.to_string(),
            plan_file: plan_file.to_string(),
            source: ServerSummary::of(source),
            target: ServerSummary::of(target),
            blockers,
            warnings,
            ready: blockers == 0 && decision.strategy.is_some(),
            findings,
            decision,
            clients: Vec::new(),
        }
    }
}

impl Render for PlanReport {
    fn render_text(&self) -> String {
        self.text(false)
    }

    fn render_text_in_color(&self) -> String {
        self.text(true)
    }

    fn render_markdown(&self) -> String {
        self.markdown()
    }
}

impl PlanReport {
    fn text(&self, color: bool) -> String {
        let paint = |code: &str, s: &str| {
            if color {
                format!("\x1b[{code}m{s}\x1b[0m")
            } else {
                s.to_string()
            }
        };
        let mut o = String::new();
        let _ = writeln!(
            o,
            "{} {} ({})",
            paint("1", "pgmove plan"),
            self.plan,
            self.plan_file
        );
        for (label, s) in [("source", &self.source), ("target", &self.target)] {
            let _ = writeln!(
                o,
                "  {label}: {} - PostgreSQL {} ({}), database {} as {}, {} in {} table(s)",
                s.endpoint,
                s.version,
                s.platform,
                s.database,
                s.user,
                planner::bytes(s.size_bytes),
                s.tables
            );
            if s.platform_worth_saying() {
                let _ = writeln!(o, "    platform: {}", s.platform_description);
            }
        }
        let _ = writeln!(o);
        finding::text(&mut o, &self.findings, &paint);
        let d = &self.decision;
        match d.strategy {
            Some(s) => {
                let _ = writeln!(o, "{} {}", paint("1", "Strategy:"), paint("1;32", s.name()));
            }
            None => {
                let _ = writeln!(
                    o,
                    "{} {}",
                    paint("1", "Strategy:"),
                    paint("1;31", "none can run")
                );
            }
        }
        let _ = writeln!(o, "  why: {}", d.why);
        for r in &d.rejected {
            let _ = writeln!(o, "  not {}: {}", r.strategy.name(), r.reasons.join("; "));
        }
        let v = &d.versions;
        let _ = writeln!(
            o,
            "  versions: PostgreSQL {} into {}; copy-cdc: {}",
            v.source_major, v.target_major, v.copy_cdc_summary
        );
        if !self.clients.is_empty() {
            let tools: Vec<String> = self
                .clients
                .iter()
                .map(|t| format!("{} {} ({})", t.name, t.version, t.path.display()))
                .collect();
            let _ = writeln!(
                o,
                "  clients: {}; the newest on this machine that can dump PostgreSQL {} (set bin_dir in the plan to choose others)",
                tools.join(", "),
                v.source_major
            );
        }
        if !d.steps.is_empty() {
            let _ = writeln!(o);
            let _ = writeln!(o, "{}", paint("1", "Steps"));
            for s in &d.steps {
                let est = s
                    .estimate_secs
                    .map(|e| format!(" (~{})", planner::human(std::time::Duration::from_secs(e))))
                    .unwrap_or_default();
                let name = s.name.map(|n| format!("{n}: ")).unwrap_or_default();
                let _ = writeln!(o, "  {}. [{}] {name}{}{est}", s.number, s.on, s.what);
                let _ = writeln!(o, "     why: {}", s.why);
            }
        }
        let _ = writeln!(o);
        if let (Some(total), Some(outage)) = (d.estimated_total_secs, d.estimated_outage_secs) {
            let _ = writeln!(
                o,
                "Estimate: {} in all, write outage about {} ({} of data, {} of indexes; rates are conservative defaults)",
                planner::human(std::time::Duration::from_secs(total)),
                planner::human(std::time::Duration::from_secs(outage)),
                planner::bytes(d.data_bytes),
                planner::bytes(d.index_bytes)
            );
        }
        let verdict = if self.ready {
            paint("1;32", "Ready: `pgmove apply` can run this plan.")
        } else {
            paint(
                "1;31",
                &format!(
                    "Blocked: {} blocker(s) to fix before `pgmove apply`.",
                    self.blockers.max(1)
                ),
            )
        };
        let _ = writeln!(o, "{verdict}");
        o
    }

    fn markdown(&self) -> String {
        let mut o = String::new();
        let _ = writeln!(o, "# pgmove plan {}\n", markdown::code(&self.plan));
        let _ = writeln!(
            o,
            "| | endpoint | version | platform | database | size | tables |"
        );
        let _ = writeln!(o, "|---|---|---|---|---|---|---|");
        for (label, s) in [("source", &self.source), ("target", &self.target)] {
            let _ = writeln!(
                o,
                "| {label} | {} | {} | {} | {} | {} | {} |",
                markdown::code(&s.endpoint),
                markdown::cell(&s.version),
                markdown::cell(&s.platform),
                markdown::cell(&s.database),
                planner::bytes(s.size_bytes),
                s.tables
            );
        }
        for (label, s) in [("source", &self.source), ("target", &self.target)] {
            if s.platform_worth_saying() {
                let _ = writeln!(
                    o,
                    "\n{label} platform: {}",
                    markdown::cell(&s.platform_description)
                );
            }
        }
        let _ = writeln!(o, "\n## Findings\n");
        finding::markdown(&mut o, &self.findings, false);
        let d = &self.decision;
        let _ = writeln!(
            o,
            "\n## Strategy: {}\n\n{}\n",
            d.strategy.map(|s| s.name()).unwrap_or("none"),
            d.why
        );
        for r in &d.rejected {
            let _ = writeln!(
                o,
                "- not **{}**: {}",
                r.strategy.name(),
                r.reasons.join("; ")
            );
        }
        let v = &d.versions;
        let _ = writeln!(
            o,
            "- versions: PostgreSQL {} into {}; copy-cdc: {}",
            v.source_major, v.target_major, v.copy_cdc_summary
        );
        for t in &self.clients {
            let _ = writeln!(
                o,
                "- client: {} {} ({})",
                t.name,
                t.version,
                markdown::code(&t.path.display().to_string())
            );
        }
        if !d.steps.is_empty() {
            let _ = writeln!(o, "\n## Steps\n");
            for s in &d.steps {
                let name = s.name.map(|n| format!("`{n}` ")).unwrap_or_default();
                let _ = writeln!(
                    o,
                    "{}. {name}**{}** ({}): {}",
                    s.number, s.what, s.on, s.why
                );
            }
        }
        let _ = writeln!(
            o,
            "\n**{}**",
            if self.ready {
                "Ready to apply."
            } else {
                "Blocked."
            }
        );
        o
    }
}
