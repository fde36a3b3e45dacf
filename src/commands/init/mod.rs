//! `pgmove init SOURCE_DSN TARGET_DSN`: inspects both servers (read-only) and writes a
//! commented starter plan (`starter`): the strategy pgmove would pick and why, the size and
//! an estimate, the extensions, the tables without a key and the choices for them; every
//! password as `{env: ...}`, never the one typed in a DSN (`dsn`).

use std::io::Write as _;
use std::path::Path;

use super::{prepare::inspect_failure, report_failure, Failure, Global};
use crate::exit;
use crate::pg::{ConnInfo, Endpoint, Side};
use crate::planner;
use crate::report::{self, Format, Summary, To};

mod dsn;
mod rights;
mod starter;

pub use starter::{SOURCE_PASSWORD_ENV, TARGET_PASSWORD_ENV};

/// What init needs of one DSN: the endpoint to inspect (with the typed password), the DSN
/// to write (without it), and the variable the plan reads the password from.
struct Given {
    endpoint: Endpoint,
    dsn: String,
    password_env: Option<&'static str>,
}

fn given(side: Side, dsn: &str) -> Result<Given, Failure> {
    let info =
        ConnInfo::parse(dsn).map_err(|e| Failure::input(format!("{side} DSN: {}", e.message)))?;
    let env = match side {
        Side::Source => SOURCE_PASSWORD_ENV,
        Side::Target => TARGET_PASSWORD_ENV,
    };
    let (written, password_env) = if info.password.is_some() {
        let Some(d) = dsn::without_password(dsn) else {
            return Err(Failure::input(format!(
                "{side} DSN: cannot take the password out of it to write the plan; give the DSN without its password and the password in PGPASSWORD (or ~/.pgpass)"
            )));
        };
        (d, Some(env))
    } else {
        (dsn.trim().to_string(), None)
    };
    let endpoint = Endpoint::from_dsn_env(side, dsn, None).map_err(Failure::input)?;
    Ok(Given {
        endpoint,
        dsn: written,
        password_env,
    })
}

/// The starter plan's view of one server.
fn server<'a>(
    g: &'a Given,
    inventory: Option<&'a crate::inspect::Inventory>,
) -> starter::Server<'a> {
    starter::Server {
        dsn: &g.dsn,
        password_env: g.password_env,
        inventory,
    }
}

/// `pgmove init`.
pub async fn init(
    source_dsn: &str,
    target_dsn: &str,
    output: Option<&Path>,
    force: bool,
    g: Global,
) -> u8 {
    match run(source_dsn, target_dsn, output, force, g).await {
        Ok(code) => code,
        Err(f) => report_failure(&f),
    }
}

async fn run(
    source_dsn: &str,
    target_dsn: &str,
    output: Option<&Path>,
    force: bool,
    g: Global,
) -> Result<u8, Failure> {
    // Refused before connecting: pgmove never overwrites a file it did not write.
    if let Some(path) = output {
        if path.exists() && !force {
            return Err(Failure::input(format!(
                "{} exists: pgmove init never overwrites a file; give another --output, or --force to replace it",
                path.display()
            )));
        }
    }
    let source = given(Side::Source, source_dsn)?;
    let target = given(Side::Target, target_dsn)?;
    let file = output
        .map(|p| p.display().to_string())
        .unwrap_or_else(|| "the starter plan".to_string());

    let (s, t) = tokio::join!(
        crate::inspect::inspect(&source.endpoint),
        crate::inspect::inspect(&target.endpoint)
    );
    let source_inv = s.map_err(inspect_failure)?;
    let mut target_inv = t.map_err(inspect_failure)?;
    let name = starter::plan_name(&source_inv.server.database);
    // The plan as it stands before deciding (strategy auto): what the planner reads.
    let draft = starter::Starter {
        name: &name,
        source: server(&source, None),
        target: server(&target, None),
        decision: None,
        lacking: &[],
    }
    .render();
    let plan = crate::plan::parse(&draft, &file).map_err(Failure::input)?;
    planner::apply_target_kind(&plan, &mut target_inv);
    let decision = planner::decide(&plan, &source_inv, &target_inv);
    let lacking = rights::lacking(&plan, decision.strategy, &source_inv, &target_inv);
    let text = starter::Starter {
        name: &name,
        source: server(&source, Some(&source_inv)),
        target: server(&target, Some(&target_inv)),
        decision: Some(&decision),
        lacking: &lacking,
    }
    .render();
    // What init writes is a plan pgmove reads.
    crate::plan::parse(&text, &file).map_err(|e| {
        Failure::runtime(format!(
            "the starter plan does not parse (a pgmove bug; please report it): {e}"
        ))
    })?;

    // Said on stderr too: a plan written is not a plan that runs.
    for f in &lacking {
        let side = f.side.map(|s| format!("{s}: ")).unwrap_or_default();
        let fix = f
            .fix
            .as_deref()
            .map(|x| format!("\n  fix: {x}"))
            .unwrap_or_default();
        crate::logging::warn(&format!("{side}{}{fix}", f.message));
    }
    let envs: Vec<&str> = [source.password_env, target.password_env]
        .into_iter()
        .flatten()
        .collect();
    if let Some(path) = output {
        write_new(path, &text, force)?;
        let mut next = String::new();
        if !envs.is_empty() {
            next = format!("export {} then ", envs.join(" and "));
        }
        crate::logging::say(&format!(
            "wrote {}: strategy {}; next: {next}pgmove plan {}",
            path.display(),
            decision.strategy.map(|s| s.name()).unwrap_or("none yet"),
            path.display()
        ));
    }
    if g.format == Format::Json {
        let summary = Summary::new(
            "",
            serde_json::json!({
                "plan": name,
                "file": output.map(|p| p.display().to_string()),
                "strategy": decision.strategy.map(|s| s.name()),
                "password_env": envs,
                "lacking": lacking,
                "text": if output.is_none() { Some(&text) } else { None },
            }),
        );
        report::print(&summary, Format::Json, false, To::Stdout);
    } else if output.is_none() {
        print!("{text}");
        let _ = std::io::stdout().flush();
    }
    Ok(exit::OK)
}

/// Writes `text` to `path`: a new file, or (with `force`) over an existing one.
fn write_new(path: &Path, text: &str, force: bool) -> Result<(), Failure> {
    let mut open = std::fs::OpenOptions::new();
    open.write(true);
    if force {
        open.create(true).truncate(true);
    } else {
        open.create_new(true);
    }
    let mut f = open.open(path).map_err(|e| {
        if e.kind() == std::io::ErrorKind::AlreadyExists {
            Failure::input(format!(
                "{} exists: pgmove init never overwrites a file; give another --output, or --force to replace it",
                path.display()
            ))
        } else {
            Failure::runtime(format!("cannot write {}: {e}", path.display()))
        }
    })?;
    f.write_all(text.as_bytes())
        .map_err(|e| Failure::runtime(format!("cannot write {}: {e}", path.display())))
}
