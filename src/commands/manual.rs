//! `pgmove completions SHELL` and `pgmove man`: shell completion scripts and man pages,
//! generated from the command line's own definition (src/cli.rs), so they name every command
//! and option this pgmove has. Read nothing, connect to nothing.

use std::io::Write;
use std::path::Path;

use clap::CommandFactory;
use clap_complete::Shell;

use super::{report_failure, Failure};
use crate::cli::Cli;
use crate::exit;

/// The command line as clap sees it, built (subcommands named `pgmove-<command>` for their
/// pages), without the `help` subcommand, which has no page of its own.
fn command() -> clap::Command {
    let mut cmd = Cli::command().disable_help_subcommand(true);
    cmd.build();
    cmd
}

/// The completion script for `shell`.
pub fn completion_script(shell: Shell) -> Vec<u8> {
    let mut cmd = Cli::command();
    let mut out = Vec::new();
    clap_complete::generate(shell, &mut cmd, "pgmove", &mut out);
    out
}

/// The man page (roff) of pgmove itself (`subcommand` None) or of one of its commands; None
/// when there is no such command.
pub fn man_page(subcommand: Option<&str>) -> Option<Vec<u8>> {
    let cmd = command();
    let page = match subcommand {
        None => cmd,
        Some(name) => cmd.find_subcommand(name)?.clone(),
    };
    let mut out = Vec::new();
    clap_mangen::Man::new(page).render(&mut out).ok()?;
    Some(out)
}

/// The names of the commands that have a page of their own (`pgmove-<name>(1)`).
pub fn man_commands() -> Vec<String> {
    command()
        .get_subcommands()
        .filter(|c| !c.is_hide_set())
        .map(|c| c.get_name().to_string())
        .collect()
}

fn print(bytes: &[u8], what: &str) -> u8 {
    let mut out = std::io::stdout().lock();
    match out.write_all(bytes).and_then(|()| out.flush()) {
        Ok(()) => exit::OK,
        Err(e) => report_failure(&Failure::runtime(format!(
            "cannot write the {what} to stdout: {e}"
        ))),
    }
}

/// `pgmove completions SHELL`: prints the script on stdout.
pub fn completions(shell: Shell) -> u8 {
    print(&completion_script(shell), "completion script")
}

/// `pgmove man [COMMAND]`: prints that page on stdout; with `dir`, writes every page
/// (`pgmove.1`, `pgmove-<command>.1`) there instead and names them on stdout.
pub fn man(subcommand: Option<&str>, dir: Option<&Path>) -> u8 {
    if let Some(dir) = dir {
        if subcommand.is_some() {
            return report_failure(&Failure::input(
                "--dir writes every page: leave out the command name, or leave out --dir to print one page",
            ));
        }
        if let Err(e) = std::fs::create_dir_all(dir) {
            return report_failure(&Failure::runtime(format!(
                "cannot create {}: {e}",
                dir.display()
            )));
        }
        if let Err(e) = clap_mangen::generate_to(command(), dir) {
            return report_failure(&Failure::runtime(format!(
                "cannot write the man pages to {}: {e}",
                dir.display()
            )));
        }
        let mut names = vec!["pgmove.1".to_string()];
        names.extend(man_commands().iter().map(|c| format!("pgmove-{c}.1")));
        let listing: String = names
            .iter()
            .map(|n| format!("{}\n", dir.join(n).display()))
            .collect();
        return print(listing.as_bytes(), "list of pages");
    }
    match man_page(subcommand) {
        Some(page) => print(&page, "man page"),
        None => report_failure(&Failure::input(format!(
            "no command `{}`: the pages are {}",
            subcommand.unwrap_or_default(),
            man_commands().join(", ")
        ))),
    }
}
