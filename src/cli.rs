//! The command line: parses arguments and dispatches into the library. No logic of its own.

use std::ffi::OsString;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

use crate::commands::{self, Global};
use crate::exit;
use crate::report::Format;

#[derive(Debug, Parser)]
#[command(
    name = "pgmove",
    version,
    about = "Move a PostgreSQL database to another PostgreSQL server",
    long_about = "Move a PostgreSQL database to another PostgreSQL server (self-managed, RDS or Aurora) \
with the least downtime: plan, apply, verify.\n\nExit codes: 0 success, 1 runtime failure, \
2 invalid plan, blocked preflight or bad arguments, 3 verification found differences; \
`status` also 4 slot lost, 5 failed, 6 stalled (see `pgmove status --help`)."
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
    /// Report format (html: `pgmove report` only).
    #[arg(long, value_enum, default_value = "text", global = true)]
    pub format: Format,
    /// Do not ask for confirmation (for scripts).
    #[arg(long, global = true)]
    pub yes: bool,
    /// More logging (-v debug, -vv trace).
    #[arg(short, long, action = clap::ArgAction::Count, global = true)]
    pub verbose: u8,
    /// Less logging (-q warnings only, -qq errors only).
    #[arg(short, long, action = clap::ArgAction::Count, global = true)]
    pub quiet: u8,
    /// The event log on stderr: text lines, or one JSON object a line (for CI; no progress
    /// bars). Reports stay on stdout (--format).
    #[arg(long, value_enum, default_value = "text", global = true)]
    pub log_format: crate::logging::LogFormat,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Inspect both servers (read-only) and write a commented starter plan from two DSNs.
    ///
    /// The plan says the strategy pgmove would pick and why, the size and an estimate, the
    /// extensions, the tables without a key and the choices for them. A password typed in a
    /// DSN is never written: the plan reads it from PGMOVE_SOURCE_PASSWORD /
    /// PGMOVE_TARGET_PASSWORD. Next: `pgmove plan FILE` says Ready or lists the blockers.
    Init {
        /// The source database: a libpq URI or key=value string.
        source_dsn: String,
        /// The target database: a libpq URI or key=value string.
        target_dsn: String,
        /// Write the plan to this file (new: an existing file is refused without --force)
        /// instead of stdout.
        #[arg(long, short)]
        output: Option<PathBuf>,
        /// Replace the --output file if it exists.
        #[arg(long, requires = "output")]
        force: bool,
    },
    /// Validate the plan, inspect both servers, run preflight checks, choose the strategy and
    /// print the ordered steps. Never writes to either server.
    Plan {
        /// The YAML plan file.
        plan: PathBuf,
    },
    /// Run the plan; a rerun resumes where an earlier run stopped.
    Apply {
        /// The YAML plan file.
        plan: PathBuf,
        /// Print every command and SQL statement apply would run, without running them.
        #[arg(long)]
        dry_run: bool,
        /// Keep the dump in this directory, new or empty (a non-empty one without pgmove's
        /// marker is refused). Default: a private directory under $XDG_CACHE_HOME or
        /// ~/.cache/pgmove/dumps, keyed by the plan and both endpoints, removed after success.
        #[arg(long)]
        dump_dir: Option<PathBuf>,
        /// copy-cdc: stop after the full load (the slot is dropped; no change capture).
        #[arg(long, conflicts_with = "exit_when_caught_up")]
        stop_after_load: bool,
        /// copy-cdc: return once change capture has applied everything the source had
        /// written when the stream went idle (scripted one-shot imports).
        #[arg(long)]
        exit_when_caught_up: bool,
    },
    /// Print the SQL the master user runs once on the source so that the plan's source user
    /// can capture schema changes (cdc.ddl) without creating event triggers: pipe it to psql
    /// as the master user (RDS/Aurora) or a superuser. Reads only the plan file.
    #[command(name = "setup-sql")]
    SetupSql {
        /// The YAML plan file.
        plan: PathBuf,
    },
    /// Phase, per-table progress, the replication slot's lag and retained WAL, last error.
    /// Never writes.
    ///
    /// Exit codes: 0 the migration can proceed; 1 status could not be read; 2 invalid plan;
    /// 4 the migration cannot proceed: its replication slot is lost (the source removed WAL
    /// it still needed, past max_slot_wal_keep_size, or the slot was dropped there): load again with a new slot (`pgmove
    /// cleanup PLAN.yaml` then `pgmove apply PLAN.yaml`); 5 the migration failed: its last
    /// run recorded an error (phase `failed`) and no apply runs now; 6 the migration stalled:
    /// an apply runs, the source has written past what the target applied, and the target
    /// has applied nothing for --stalled-after seconds.
    Status {
        /// The YAML plan file.
        plan: PathBuf,
        /// Seconds without applied changes, while the source is ahead and an apply runs,
        /// after which the migration counts as stalled (exit 6).
        #[arg(long, default_value_t = 600, value_name = "SECONDS")]
        stalled_after: u64,
    },
    /// Compare source and target: per-table row counts and chunked checksums, sequences,
    /// large objects and the object inventory. Exit 3 when they differ. Never writes.
    Verify {
        /// The YAML plan file.
        plan: PathBuf,
        /// Row counts only, no checksums (fast).
        #[arg(long)]
        counts_only: bool,
        /// Rows per checksum chunk (default 100000; at least 1).
        #[arg(long, value_parser = parse_chunk_rows)]
        chunk_rows: Option<u64>,
    },
    /// Cut over to the target: wait for the lag, fence writes on the source, apply the last
    /// changes, set sequences, verify; exit 0 when the target is live. Asks a running apply
    /// of the plan to do the applying, or applies itself when none runs.
    Cutover {
        /// The YAML plan file.
        plan: PathBuf,
        /// Print the pre-cutover report (lag, differences so far, sequences, blockers,
        /// estimated outage) without changing anything; exit 0 only if cutover could proceed.
        #[arg(long)]
        dry_run: bool,
        /// How long to wait for the lag to come under cutover.max_lag (e.g. 90s, 30m).
        #[arg(long, default_value = "30m", value_parser = crate::plan::parse_duration)]
        timeout: std::time::Duration,
    },
    /// The migration's report from what the target's `pgmove` schema recorded: each step's
    /// timeline, the load's rows/s and bytes/s, the lag over change capture, the cutover's
    /// write outage and its parts, the verification's result. `--format html` writes a
    /// self-contained page with charts (`pgmove report PLAN --format html > report.html`),
    /// markdown (or text) a ticket's text, json the numbers. Reads only the target; exit 1
    /// when it has no record of the plan.
    Report {
        /// The YAML plan file.
        plan: PathBuf,
    },
    /// Drop everything pgmove created for the plan on both servers (slots, publication, DDL
    /// event triggers, the `pgmove` schema or this plan's rows in it, the default dump
    /// directory) and nothing else. Idempotent.
    Cleanup {
        /// The YAML plan file.
        plan: PathBuf,
        /// List what would be dropped, with the SQL, without dropping anything.
        #[arg(long)]
        dry_run: bool,
        /// Terminate a running apply's sessions (the slot's walsender, the plan's lock holder)
        /// instead of refusing.
        #[arg(long)]
        force: bool,
        /// Also drop a slot or publication with the plan's names that pgmove did not record
        /// creating (a migration started by an earlier pgmove release); otherwise reported.
        #[arg(long)]
        adopt_unrecorded: bool,
    },
    /// Print the JSON Schema of the plan file (docs/plan.schema.json in the source), for
    /// editors that validate a plan as it is typed. Reads nothing.
    ///
    /// Point the YAML language server at it with a first line such as
    /// `# yaml-language-server: $schema=plan.schema.json` (a path relative to the plan).
    Schema,
    /// Print a shell completion script for bash, zsh or fish. Reads nothing.
    ///
    /// bash: `source <(pgmove completions bash)` (or save it as
    /// /etc/bash_completion.d/pgmove); zsh: save it as `_pgmove` in a directory of $fpath;
    /// fish: `pgmove completions fish > ~/.config/fish/completions/pgmove.fish`.
    Completions {
        /// The shell to complete for.
        #[arg(value_enum)]
        shell: clap_complete::Shell,
    },
    /// Print pgmove's man page (roff), or a command's; --dir writes them all. Reads nothing.
    ///
    /// Read it with `pgmove man | man -l -` (or `pgmove man cutover | man -l -`); install
    /// them with `pgmove man --dir /usr/local/share/man/man1`.
    Man {
        /// The command whose page to print (pgmove-COMMAND(1)); none: pgmove(1).
        command: Option<String>,
        /// Write every page (pgmove.1, pgmove-COMMAND.1) into this directory instead.
        #[arg(long, value_name = "DIR")]
        dir: Option<PathBuf>,
    },
}

/// Parses `args` and runs the command; returns the process exit code.
pub fn run<I, T>(args: I) -> ExitCode
where
    I: IntoIterator<Item = T>,
    T: Into<OsString> + Clone,
{
    let args: Vec<OsString> = args.into_iter().map(Into::into).collect();
    let cli = match Cli::try_parse_from(&args) {
        Ok(c) => c,
        Err(e) => {
            let code = if e.use_stderr() {
                exit::BAD_INPUT
            } else {
                exit::OK
            };
            if e.use_stderr() && crate::logging::asks_json(&args) {
                // The log was to be JSON lines: the argument error is one too.
                crate::logging::init(0, crate::logging::LogFormat::Json);
                crate::logging::error(e.render().to_string().trim());
            } else {
                let _ = e.print();
            }
            return ExitCode::from(code);
        }
    };
    if cli.format == Format::Html && !matches!(cli.command, Command::Report { .. }) {
        eprintln!(
            "error: --format html is for `pgmove report` only\n  hint: use --format text, json or markdown"
        );
        return ExitCode::from(exit::BAD_INPUT);
    }
    crate::logging::init(cli.verbose as i8 - cli.quiet as i8, cli.log_format);
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::from(exit::FAILURE);
        }
    };
    let g = Global {
        format: cli.format,
        yes: cli.yes,
    };
    let code = runtime.block_on(async move {
        match cli.command {
            Command::Init {
                source_dsn,
                target_dsn,
                output,
                force,
            } => commands::init(&source_dsn, &target_dsn, output.as_deref(), force, g).await,
            Command::Plan { plan } => commands::plan(&plan, g).await,
            Command::Apply {
                plan,
                dry_run,
                dump_dir,
                stop_after_load,
                exit_when_caught_up,
            } => {
                let online = commands::Online {
                    stop_after_load,
                    exit_when_caught_up,
                };
                commands::apply(&plan, dry_run, dump_dir, online, g).await
            }
            Command::SetupSql { plan } => commands::setup_sql(&plan, g.format),
            Command::Status {
                plan,
                stalled_after,
            } => commands::status(&plan, stalled_after, g).await,
            Command::Verify {
                plan,
                counts_only,
                chunk_rows,
            } => commands::verify(&plan, counts_only, chunk_rows, g).await,
            Command::Cutover {
                plan,
                dry_run,
                timeout,
            } => commands::cutover(&plan, dry_run, timeout, g).await,
            Command::Cleanup {
                plan,
                dry_run,
                force,
                adopt_unrecorded,
            } => commands::cleanup(&plan, dry_run, force, adopt_unrecorded, g).await,
            Command::Report { plan } => commands::report(&plan, g).await,
            Command::Schema => commands::schema(),
            Command::Completions { shell } => commands::completions(shell),
            Command::Man { command, dir } => commands::man(command.as_deref(), dir.as_deref()),
        }
    });
    ExitCode::from(code)
}

// A clap value parser: clap shows its error's text after the argument's name, so a `String`
// (a Display error) is all it needs.
fn parse_chunk_rows(s: &str) -> Result<u64, String> {
    match s.trim().parse::<u64>() {
        Ok(0) => Err("must be at least 1 (rows per checksum chunk; 0 would mean a query per row): leave it out for the default 100000".to_string()),
        Ok(n) => Ok(n),
        Err(_) => Err(format!("`{s}` is not a whole number of rows: e.g. --chunk-rows 100000")),
    }
}
