//! What pgmove prints about itself: `pgmove schema` is the committed docs/plan.schema.json,
//! `pgmove completions` scripts name every command and option and are valid shell, `pgmove man`
//! pages render and name every command and option. No server.

use std::io::Write;
use std::process::{Command, Output, Stdio};

use clap::CommandFactory;

/// `pgmove ARGS`, which must succeed; its stdout.
fn pgmove(args: &[&str]) -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_pgmove"))
        .args(args)
        .env("NO_COLOR", "1")
        .output()
        .expect("run pgmove");
    assert!(
        out.status.success(),
        "pgmove {args:?}: exit {:?}\n{}",
        out.status.code(),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).expect("UTF-8 output")
}

/// Every command (`help` aside) with its long options.
fn commands() -> Vec<(String, Vec<String>)> {
    pgmove::cli::Cli::command()
        .get_subcommands()
        .filter(|c| c.get_name() != "help")
        .map(|c| {
            let longs = c
                .get_arguments()
                .filter_map(|a| a.get_long().map(|l| format!("--{l}")))
                .filter(|l| l != "--help")
                .collect();
            (c.get_name().to_string(), longs)
        })
        .collect()
}

/// The global options (--format, --yes, ...).
fn global_options() -> Vec<String> {
    pgmove::cli::Cli::command()
        .get_arguments()
        .filter_map(|a| a.get_long().map(|l| format!("--{l}")))
        .filter(|l| l != "--help" && l != "--version")
        .collect()
}

/// Runs `program args` with `input` on stdin, if the program exists.
fn run_with_input(program: &str, args: &[&str], input: &str) -> Option<Output> {
    let mut child = Command::new(program)
        .args(args)
        .env("MANPAGER", "cat")
        .env("PAGER", "cat")
        .env("MANWIDTH", "200")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .ok()?;
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(input.as_bytes())
        .expect("write stdin");
    Some(child.wait_with_output().expect("wait"))
}

#[test]
fn schema_prints_the_committed_schema() {
    let committed =
        std::fs::read_to_string("docs/plan.schema.json").expect("docs/plan.schema.json");
    assert_eq!(
        pgmove(&["schema"]),
        committed,
        "pgmove schema != docs/plan.schema.json"
    );
    // a document, not a report: the same whatever --format says
    assert_eq!(pgmove(&["schema", "--format", "markdown"]), committed);
}

#[test]
fn completion_scripts_name_every_command_and_option() {
    let commands = commands();
    assert!(commands.len() >= 10, "{commands:?}");
    for shell in ["bash", "zsh", "fish"] {
        let script = pgmove(&["completions", shell]);
        for (command, longs) in &commands {
            assert!(
                script.contains(command.as_str()),
                "{shell} script lacks command {command}"
            );
            for long in longs {
                // bash and zsh spell options with their dashes, fish as `-l name`
                let named = script.contains(long.as_str())
                    || script.contains(&format!("-l {}", &long[2..]));
                assert!(named, "{shell} script lacks {command} {long}");
            }
        }
        for long in global_options() {
            let named =
                script.contains(long.as_str()) || script.contains(&format!("-l {}", &long[2..]));
            assert!(named, "{shell} script lacks {long}");
        }
    }
    let bash = pgmove(&["completions", "bash"]);
    let out = run_with_input("bash", &["-n"], &bash).expect("bash");
    assert!(
        out.status.success(),
        "bash -n: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    // And it completes: `pgmove cu<TAB>` offers cutover (and cleanup only if it started so).
    let probe = format!(
        "{bash}\nCOMP_WORDS=(pgmove cu); COMP_CWORD=1; COMP_LINE='pgmove cu'; COMP_POINT=9\n_pgmove pgmove cu pgmove\nprintf '%s\\n' \"${{COMPREPLY[@]}}\"\n"
    );
    let out = run_with_input("bash", &[], &probe).expect("bash");
    let offered = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        offered.split_whitespace().collect::<Vec<_>>(),
        ["cutover"],
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    for (shell, check) in [("zsh", "-n"), ("fish", "--no-execute")] {
        let script = pgmove(&["completions", shell]);
        let out = run_with_input(shell, &[check], &script).unwrap_or_else(|| {
            panic!(
                "{shell} is missing: scripts/install-deps.sh installs it (apt-get install {shell})"
            )
        });
        assert!(
            out.status.success(),
            "{shell} {check}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

/// A page as a person reads it: `man -l -` (or groff where man is missing), with groff's
/// warnings on (a roff error is a failure).
fn render(page: &str) -> String {
    assert!(
        page.starts_with(".ie \\n(.g .ds Aq") || page.contains("\n.TH "),
        "not roff:\n{page}"
    );
    if let Some(out) = run_with_input("groff", &["-man", "-Tutf8", "-ww", "-rLL=200n"], page) {
        let warnings = String::from_utf8_lossy(&out.stderr);
        assert!(
            out.status.success() && warnings.trim().is_empty(),
            "groff: {warnings}"
        );
    }
    let out = run_with_input("man", &["-l", "-"], page)
        .or_else(|| run_with_input("groff", &["-man", "-Tutf8", "-rLL=200n"], page))
        .expect("neither man nor groff is installed: the test needs one (apt-get install man-db)");
    assert!(
        out.status.success(),
        "man -l: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    // Undo overstriking (bold, underline) and hyphenation at line ends.
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    let mut plain = String::new();
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        if chars.peek() == Some(&'\u{8}') {
            chars.next();
            continue;
        }
        plain.push(c);
    }
    plain.replace(['\u{2010}', '\u{2212}'], "-")
}

#[test]
fn man_pages_render_and_name_every_command_and_option() {
    let commands = commands();
    let main = render(&pgmove(&["man"]));
    assert!(
        main.contains("Move a PostgreSQL database to another PostgreSQL server"),
        "{main}"
    );
    for (command, _) in &commands {
        assert!(
            main.contains(&format!("pgmove-{command}(1)")),
            "pgmove(1) does not name {command}:\n{main}"
        );
    }
    for long in global_options() {
        assert!(main.contains(&long), "pgmove(1) lacks {long}:\n{main}");
    }
    for (command, longs) in &commands {
        let page = render(&pgmove(&["man", command]));
        assert!(
            page.contains(&format!("pgmove-{command}")),
            "{command}:\n{page}"
        );
        for long in longs {
            assert!(
                page.contains(long.as_str()),
                "pgmove-{command}(1) lacks {long}:\n{page}"
            );
        }
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let listing = pgmove(&["man", "--dir", &dir.path().display().to_string()]);
    assert_eq!(listing.lines().count(), commands.len() + 1, "{listing}");
    for line in listing.lines() {
        let written = std::fs::read_to_string(line).unwrap_or_else(|e| panic!("{line}: {e}"));
        assert!(written.contains(".TH "), "{line}");
    }
    let out = Command::new(env!("CARGO_BIN_EXE_pgmove"))
        .args(["man", "nosuch"])
        .output()
        .expect("run");
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("cutover"));
}
