//! Every subcommand's `--help` describes that command: its own first line, none empty, no two
//! alike.

use std::collections::BTreeMap;
use std::process::Command;

use clap::CommandFactory;

/// The first line `pgmove <command> --help` prints for each command.
const FIRST_LINES: &[(&str, &str)] = &[
    ("init", "Inspect both servers (read-only) and write"),
    ("plan", "Validate the plan, inspect both servers"),
    ("apply", "Run the plan; a rerun resumes"),
    ("setup-sql", "Print the SQL the master user runs once"),
    ("status", "Phase, per-table progress"),
    ("verify", "Compare source and target"),
    ("cutover", "Cut over to the target"),
    ("cleanup", "Drop everything pgmove created for the plan"),
    ("report", "The migration's report from what the target's"),
    ("schema", "Print the JSON Schema of the plan file"),
    ("completions", "Print a shell completion script"),
    ("man", "Print pgmove's man page"),
];

/// `pgmove <command> --help`: its whole output, which must be a success.
fn help(command: &str) -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_pgmove"))
        .args([command, "--help"])
        .env("NO_COLOR", "1")
        .output()
        .expect("run pgmove");
    assert!(
        out.status.success(),
        "pgmove {command} --help: exit {:?}\n{}",
        out.status.code(),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).to_string()
}

/// The names of all subcommands the parser knows (`help` aside).
fn subcommands() -> Vec<String> {
    pgmove::cli::Cli::command()
        .get_subcommands()
        .map(|c| c.get_name().to_string())
        .filter(|n| n != "help")
        .collect()
}

#[test]
fn each_subcommand_help_starts_with_its_own_description() {
    let known = subcommands();
    for (command, first) in FIRST_LINES {
        assert!(
            known.iter().any(|k| k == command),
            "no subcommand {command}"
        );
        let text = help(command);
        let line = text.lines().next().unwrap_or_default();
        assert!(
            line.starts_with(first),
            "pgmove {command} --help starts with {line:?}, not {first:?}"
        );
    }
    assert_eq!(
        known.len(),
        FIRST_LINES.len(),
        "a subcommand without an expected first line here: {known:?}"
    );
}

#[test]
fn every_subcommand_help_is_its_own_and_not_empty() {
    let mut by_description: BTreeMap<String, String> = BTreeMap::new();
    for command in subcommands() {
        let text = help(&command);
        // The description: what --help prints before the usage line.
        let description = text
            .split("\nUsage:")
            .next()
            .unwrap_or_default()
            .trim()
            .to_string();
        assert!(
            !description.is_empty() && !description.starts_with("Usage:"),
            "pgmove {command} --help has no description:\n{text}"
        );
        if let Some(other) = by_description.insert(description.clone(), command.clone()) {
            panic!(
                "pgmove {command} --help and pgmove {other} --help say the same:\n{description}"
            );
        }
    }
}
