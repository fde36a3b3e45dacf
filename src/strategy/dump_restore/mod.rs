//! Strategy dump-restore: the native `pg_dump` (directory format, parallel) and a restore that
//! pgmove drives item by item, so that every item's effect and its progress row commit in the
//! same transaction on the target.
//!
//! Steps ([`STEPS`], each recorded in `pgmove.steps` under its name when it finishes; see
//! [`crate::strategy::steps`]), each resumable:
//! 0. **state**: the state schema on the target.
//! 1. **dump**: `pg_dump -Fd -j N` into a directory; a marker file says it is complete, so a
//!    rerun reuses it.
//! 2. **pre-data**: the schema (extensions first, as the dump orders them), in one
//!    transaction together with its step row: all or nothing.
//! 3. **data**: each `TABLE DATA` / `SEQUENCE SET` / `BLOBS` item in its own transaction with its
//!    row in `pgmove.restore_items`, `jobs` at a time, largest first. A crash leaves each item
//!    either fully restored and recorded or not at all, so a rerun restores exactly the rest.
//! 4. **post-data**: indexes and primary/unique constraints (`index_jobs` at a time), partition
//!    index attachments, foreign keys, then triggers, rules, comments, materialized view data,
//!    each item committed with its progress row: a large table's indexes one per transaction,
//!    small tables' and the other waves' items in batches of up to 100 per transaction.
//! 5. **analyze**: `ANALYZE` of the restored tables, so the planner has statistics at once.
//! 6. **done**: the run is complete (a rerun does nothing); the dump directory is removed.
//!
//! A failed item stops the run with the object's name and the server's message
//! (`--exit-on-error` semantics; nothing is buried in a warning).

mod batch;
pub mod config_tables;
pub mod grants;
pub(crate) mod index_owners;
pub(crate) mod index_session;
mod steps;
pub mod toc;
pub mod vacuum;

pub use self::steps::{plan_steps, STEPS};

use std::collections::{BTreeSet, HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::Arc;

use tokio::io::AsyncWriteExt;
use tokio::process::Command;

use crate::dumpdir::{self, DirError, DirState, Owner};
use crate::pg::{quote, Endpoint, PgError};
use crate::progress::Progress;
use crate::state::{self, State};
use crate::strategy::steps as step_name;
use crate::tools::{self, Tool, ToolError};
use toc::{Entry, Wave};

/// The name recorded in `pgmove.runs.strategy`.
pub const STRATEGY: &str = "dump-restore";
/// The file written into the dump directory once pg_dump has finished.
const COMPLETE_MARKER: &str = "pgmove-dump-complete";

/// Everything the strategy needs, taken from the plan.
#[derive(Clone, Debug)]
pub struct Job {
    pub plan_name: String,
    pub source: Endpoint,
    pub target: Endpoint,
    /// Schemas to move; empty means all.
    pub schemas: Vec<String>,
    /// `schema.table` globs to leave out.
    pub exclude: Vec<String>,
    pub large_objects: bool,
    /// `owner: target-user`: objects belong to the connecting target user.
    pub no_owner: bool,
    /// `roles: skip`: no GRANT/REVOKE (the roles may not exist on the target).
    pub no_acl: bool,
    pub jobs: usize,
    pub index_jobs: usize,
    pub bin_dir: Option<PathBuf>,
    /// Dump the schema only (copy-cdc copies the data itself).
    pub schema_only: bool,
    /// Where to keep the dump (`--dump-dir`); when `None`, the default of
    /// [`crate::plan::default_dump_dir`], removed after success. See [`crate::dumpdir`].
    pub dump_dir: Option<PathBuf>,
}

#[derive(Debug, thiserror::Error)]
pub enum DumpRestoreError {
    #[error(transparent)]
    Tool(#[from] ToolError),
    #[error(transparent)]
    Pg(#[from] PgError),
    #[error("{what} failed: {message}")]
    Command { what: String, message: String },
    #[error("restoring {object} (dump item {dump_id}) failed on the target: {message}\n  hint: fix the cause, then run `pgmove apply` again; it resumes with this item")]
    Item {
        object: String,
        dump_id: i32,
        message: String,
    },
    #[error("{0}")]
    Io(String),
    #[error(transparent)]
    DumpDir(#[from] DirError),
}

/// What a run did.
#[derive(Clone, Debug, Default, serde::Serialize)]
pub struct Outcome {
    pub dump_reused: bool,
    pub items_restored: usize,
    /// Tables whose rows this run restored (`TABLE DATA` items).
    pub tables_restored: usize,
    pub items_already_done: usize,
    pub pre_data_already_done: bool,
    pub dump_dir: PathBuf,
}

impl Job {
    /// The directory holding the dump: `--dump-dir` or the default for the plan and endpoints.
    pub fn dump_dir(&self) -> Result<PathBuf, DirError> {
        crate::plan::names::dump_dir(
            self.dump_dir.as_deref(),
            &self.plan_name,
            &self.source.info,
            &self.target.info,
        )
        .map_err(|e| DirError::Refused {
            reason: e.to_string(),
            hint: "set HOME (or XDG_CACHE_HOME), or give a directory of your own with --dump-dir"
                .to_string(),
        })
    }

    /// Whose dump the directory holds (its marker).
    pub fn dump_owner(&self) -> Owner {
        Owner::new(&self.plan_name, &self.source.info, &self.target.info)
    }

    /// The dump directory and what is there, checked without changing anything: refused
    /// (another user's, writable by others, another plan's, non-empty without pgmove's marker)
    /// before apply (or its dry run) starts.
    pub fn check_dump_dir(&self) -> Result<(PathBuf, DirState), DirError> {
        let dir = self.dump_dir()?;
        let owner = self.dump_owner();
        if self.dump_dir.is_none() {
            for p in dir.ancestors().skip(1).take(2) {
                if p.exists() {
                    dumpdir::check_private(p)?;
                }
            }
        }
        let state = dumpdir::inspect(&dir, &owner)?;
        Ok((dir, state))
    }

    /// pg_dump's arguments, without the connection (given through the environment).
    fn dump_args(&self, dir: &Path) -> Vec<String> {
        let mut a = vec![
            "--format=directory".to_string(),
            format!("--jobs={}", self.jobs.max(1)),
            // Uncompressed: on a migration host CPU is scarcer than disk, and the restore
            // reads it back at once.
            "--compress=0".to_string(),
            "--no-subscriptions".to_string(),
            format!("--exclude-schema={}", quote::ident(state::SCHEMA)),
            format!("--file={}", dir.display()),
        ];
        for s in &self.schemas {
            a.push(format!("--schema={}", quote::ident(s)));
        }
        for g in &self.exclude {
            a.push(format!("--exclude-table={}", glob_to_pattern(g)));
        }
        if self.schema_only {
            a.push("--schema-only".to_string());
        } else if self.large_objects {
            a.push("--blobs".to_string());
        } else {
            a.push("--no-blobs".to_string());
        }
        a
    }

    fn restore_args(&self) -> Vec<String> {
        let mut a = Vec::new();
        if self.no_owner {
            a.push("--no-owner".to_string());
        }
        if self.no_acl {
            a.push("--no-acl".to_string());
        }
        a
    }
}

/// A `schema.table` glob as a pg_dump pattern: literal runs double-quoted (so case, dots and
/// regex characters are taken as written), `*` and `?` left as wildcards.
pub fn glob_to_pattern(glob: &str) -> String {
    let (schema, table) = match glob.split_once('.') {
        Some((s, t)) => (Some(s), t),
        None => (None, glob),
    };
    let part = |p: &str| {
        let mut out = String::new();
        let mut lit = String::new();
        for c in p.chars() {
            if c == '*' || c == '?' {
                if !lit.is_empty() {
                    out.push_str(&quote::ident(&lit));
                    lit.clear();
                }
                out.push(c);
            } else {
                lit.push(c);
            }
        }
        if !lit.is_empty() {
            out.push_str(&quote::ident(&lit));
        }
        out
    };
    match schema {
        Some(s) => format!("{}.{}", part(s), part(table)),
        None => part(table),
    }
}

/// The libpq environment for a client program: the connection without putting the password on
/// a command line.
pub fn libpq_env(ep: &Endpoint) -> Vec<(&'static str, String)> {
    let i = &ep.info;
    let targets = i.targets();
    let list = |f: &dyn Fn(&crate::pg::dsn::HostTarget) -> String| {
        targets.iter().map(f).collect::<Vec<_>>().join(",")
    };
    let mut env = vec![
        // Every host of a multi-host DSN, as libpq's comma lists.
        ("PGHOST", list(&|t| t.0.clone())),
        ("PGPORT", list(&|t| t.1.to_string())),
        ("PGUSER", i.user().to_string()),
        ("PGDATABASE", i.dbname().to_string()),
        ("PGSSLMODE", i.sslmode().as_str().to_string()),
        ("PGAPPNAME", "pgmove".to_string()),
    ];
    if let Some(a) = &i.hostaddr {
        env.push(("PGHOSTADDR", a.clone()));
    }
    if let Some(p) = &i.password {
        env.push(("PGPASSWORD", p.expose().to_string()));
    }
    for (k, v) in [
        ("PGSSLROOTCERT", &i.sslrootcert),
        ("PGSSLCERT", &i.sslcert),
        ("PGSSLKEY", &i.sslkey),
    ] {
        if let Some(v) = v {
            env.push((k, v.display().to_string()));
        }
    }
    if let Some(t) = i.connect_timeout {
        env.push(("PGCONNECT_TIMEOUT", t.to_string()));
    }
    // The DSN's options, then the output settings every pgmove session pins: pg_dump pins
    // the others itself but not lc_monetary, so `money` would be written under the source's
    // and read under the target database's.
    env.push((
        "PGOPTIONS",
        crate::pg::session_options(i.options.as_deref()),
    ));
    env
}

/// [`libpq_env`] for a client program of major version `client_major`: libpq before 16 takes
/// `sslrootcert=system` as a file name, so it gets the operating system's bundle file instead
/// ([`crate::pg::tls::system_bundle_file`]).
pub fn libpq_env_for(ep: &Endpoint, client_major: u32) -> Vec<(&'static str, String)> {
    let mut env = libpq_env(ep);
    if client_major < 16 {
        for (k, v) in env.iter_mut() {
            if *k == "PGSSLROOTCERT" && v == "system" {
                match crate::pg::tls::system_bundle_file(&|k| std::env::var(k).ok()) {
                    Some(bundle) => *v = bundle.display().to_string(),
                    None => tracing::warn!(
                        "sslrootcert=system: no system CA bundle file found for PostgreSQL {client_major} client programs (install ca-certificates, or set SSL_CERT_FILE)"
                    ),
                }
            }
        }
    }
    env
}

fn command(tool: &Tool, ep: &Endpoint) -> Command {
    let mut c = Command::new(&tool.path);
    for k in ["PGSERVICE", "PGSERVICEFILE", "PGPASSFILE", "PGOPTIONS"] {
        c.env_remove(k);
    }
    c.envs(libpq_env_for(ep, tool.major));
    c.kill_on_drop(true);
    die_with_parent(&mut c);
    c
}

/// Makes the child die when pgmove dies, even by SIGKILL: a psql left running by a killed
/// apply would otherwise finish its item while the rerun starts the same item again.
#[allow(unsafe_code)]
fn die_with_parent(c: &mut Command) {
    #[cfg(target_os = "linux")]
    // SAFETY: prctl with PR_SET_PDEATHSIG only sets a flag of the new process; it is
    // async-signal-safe and touches no memory of the parent.
    unsafe {
        c.pre_exec(|| {
            if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    #[cfg(not(target_os = "linux"))]
    let _ = c;
}

/// A shell-like rendering of a command with its libpq environment, password redacted.
fn render(tool: &str, ep: &Endpoint, args: &[String]) -> String {
    let env: Vec<String> = libpq_env(ep)
        .into_iter()
        .map(|(k, v)| {
            if k == "PGPASSWORD" {
                format!("{k}=********")
            } else {
                format!("{k}={}", shell_quote(&v))
            }
        })
        .collect();
    let args: Vec<String> = args.iter().map(|a| shell_quote(a)).collect();
    format!("{} {tool} {}", env.join(" "), args.join(" "))
}

fn shell_quote(s: &str) -> String {
    if !s.is_empty()
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_=./:,@%+".contains(c))
    {
        s.to_string()
    } else {
        format!("'{}'", s.replace('\'', "'\\''"))
    }
}

async fn source_major(source: &Endpoint) -> Result<u32, PgError> {
    let client = source.connect().await?;
    let num = source.version_num(&client).await?;
    Ok((num / 10000).max(0) as u32)
}

/// What `apply --dry-run` shows of each step: its exact commands and SQL, without running
/// anything. Both strategies build their listing from it, step by step.
pub struct Preview<'a> {
    job: &'a Job,
    pg_dump: Tool,
    pg_restore: Tool,
    psql: Tool,
    /// The dump directory and what is there now.
    top: PathBuf,
    dir_state: DirState,
}

impl<'a> Preview<'a> {
    /// Finds the client programs and checks the dump directory, as `run` would.
    pub async fn new(job: &'a Job) -> Result<Preview<'a>, DumpRestoreError> {
        let major = source_major(&job.source).await?;
        let (pg_dump, pg_restore) = tools::find_dump_clients(job.bin_dir.as_deref(), major)?;
        let psql = tools::find("psql", job.bin_dir.as_deref(), 0)?;
        let (top, dir_state) = job.check_dump_dir()?;
        Ok(Preview {
            job,
            pg_dump,
            pg_restore,
            psql,
            top,
            dir_state,
        })
    }

    fn dump_subdir(&self) -> PathBuf {
        self.top.join(dumpdir::DUMP_SUBDIR)
    }

    /// The statement recording `step` as finished.
    pub fn record(&self, step: &str, detail: Option<&str>) -> String {
        state::finish_step_sql(&self.job.plan_name, step, detail)
            .trim()
            .to_string()
    }

    /// The listing's first lines: the strategy, the plan and the dump directory.
    pub fn intro(&self, strategy: &str) -> Vec<String> {
        let (top, marker) = (self.top.display(), self.top.join(dumpdir::MARKER));
        let marker = marker.display();
        vec![
            format!("-- strategy {strategy}, plan {}", self.job.plan_name),
            match self.dir_state {
                DirState::Missing => format!(
                    "-- dump directory {top}: created (mode 0700) with the marker {marker} naming this plan and both endpoints"
                ),
                DirState::Ours { .. } => format!(
                    "-- dump directory {top}: pgmove's (its marker {marker} names this plan and both endpoints)"
                ),
                DirState::Empty => format!(
                    "-- dump directory {top}: exists and is empty; the marker {marker} and the dump are written into it, the directory itself is never removed"
                ),
            },
        ]
    }

    /// Step `state`: the state schema on the target.
    pub fn state(&self) -> Vec<String> {
        let mut out = vec![format!("-- on the target ({})", self.job.target.display())];
        out.extend(
            state::schema::preview()
                .lines()
                .map(str::trim_end)
                .filter(|l| !l.is_empty())
                .map(str::to_string),
        );
        out.push(self.record(step_name::STATE, None));
        out
    }

    /// Step `dump`: pg_dump (in the exported snapshot for copy-cdc), then the table of
    /// contents read.
    pub fn dump(&self, in_snapshot: bool) -> Vec<String> {
        let dir = self.dump_subdir();
        let mut dump = render(
            &self.pg_dump.path.display().to_string(),
            &self.job.source,
            &self.job.dump_args(&dir),
        );
        if in_snapshot {
            dump.push_str(" --snapshot=<exported>");
        }
        vec![
            format!(
                "-- dump the source ({}) unless {}/{COMPLETE_MARKER} exists from an earlier run",
                self.job.source.display(),
                dir.display()
            ),
            dump,
            "-- then read the dump's table of contents".to_string(),
            format!(
                "{} --list --section=pre-data|data|post-data {}",
                self.pg_restore.path.display(),
                dir.display()
            ),
            self.record(step_name::DUMP, Some(&dir.display().to_string())),
        ]
    }

    /// `pg_restore -L ITEMS | psql --single-transaction`, as each restore runs.
    fn pipe(&self) -> String {
        let dir = self.dump_subdir();
        let mut restore = self.job.restore_args();
        restore.extend(["--use-list=ITEMS".to_string(), "--file=-".to_string()]);
        restore.push(dir.display().to_string());
        let psql_args = [
            "--no-psqlrc",
            "--quiet",
            "--set=ON_ERROR_STOP=1",
            "--single-transaction",
            "--file=-",
        ]
        .map(str::to_string);
        format!(
            "{} | {}",
            render(
                &self.pg_restore.path.display().to_string(),
                &self.job.target,
                &restore
            ),
            render(
                &self.psql.path.display().to_string(),
                &self.job.target,
                &psql_args
            )
        )
    }

    /// Step `pre-data`: the schema in one transaction with its record.
    pub fn pre_data(&self) -> Vec<String> {
        vec![
            "-- ITEMS = every pre-data item (extensions first) except comments on extensions and schemas that exist on the target; in the same transaction:".to_string(),
            self.pipe(),
            self.record(step_name::PRE_DATA, None),
        ]
    }

    /// The statement recording one restore item, in the item's transaction.
    fn item_record(&self) -> String {
        state::finish_item_sql(&self.job.plan_name, 0, "KIND", "OBJECT")
            .trim()
            .replace(" 0,", " DUMP_ID,")
    }

    /// Step `data`: each data item in its own transaction with its progress row.
    pub fn data(&self) -> Vec<String> {
        vec![
            format!(
                "-- per item (TABLE DATA, SEQUENCE SET, BLOBS), {} at a time, largest first, each in one transaction with its progress row:",
                self.job.jobs.max(1)
            ),
            self.pipe(),
            self.item_record(),
            self.record(step_name::DATA, None),
        ]
    }

    /// Step `post-data`: each post-data item committed with its progress row, small tables'
    /// indexes and the other waves' items in batches.
    pub fn post_data(&self, then: &[String]) -> Vec<String> {
        let mut out = vec![
            format!(
                "-- indexes and unique/primary constraints ({} at a time), index attachments, foreign keys, then triggers, rules, comments, materialized view data; each item committed with its progress row: each index of a table of 16 MB or more in its own transaction, the others up to 100 per transaction:",
                self.job.index_jobs.max(1)
            ),
            self.pipe(),
            self.item_record(),
        ];
        out.extend(then.iter().cloned());
        out.push(self.record(step_name::POST_DATA, None));
        out
    }

    /// Step `analyze`: `VACUUM (ANALYZE)` or `ANALYZE` of the target's tables on `jobs`
    /// connections ([`vacuum`]).
    pub fn analyze(&self, vacuum: bool) -> Vec<String> {
        vec![
            vacuum::describe(self.job.jobs, vacuum),
            self.record(step_name::ANALYZE, None),
        ]
    }

    /// What happens to the dump directory once the run succeeded.
    pub fn remove_dump(&self) -> Vec<String> {
        if self.job.dump_dir.is_some() {
            return vec![format!(
                "-- the dump stays in {} (--dump-dir)",
                self.dump_subdir().display()
            )];
        }
        let after = match self.dir_state {
            DirState::Ours { created: false } => self.dir_state.clone(),
            _ => DirState::Ours { created: true },
        };
        match dumpdir::removal_command(&self.top, &after) {
            Some(cmd) => vec![
                "-- remove the dump directory (only while its marker names this plan)".to_string(),
                cmd,
            ],
            None => Vec::new(),
        }
    }
}

/// The statements and commands `apply` would run, step by step ([`STEPS`]), without running
/// anything.
pub async fn dry_run(job: &Job) -> Result<Vec<String>, DumpRestoreError> {
    let p = Preview::new(job).await?;
    let mut out = p.intro(STRATEGY);
    for (i, s) in STEPS.iter().enumerate() {
        out.push(step_name::heading(STEPS, i));
        out.extend(match s.name {
            step_name::STATE => p.state(),
            step_name::DUMP => p.dump(false),
            step_name::PRE_DATA => p.pre_data(),
            step_name::DATA => p.data(),
            step_name::POST_DATA => p.post_data(&[]),
            step_name::ANALYZE => p.analyze(false),
            step_name::DONE => {
                let mut done = vec![p.record(step_name::DONE, None)];
                done.extend(p.remove_dump());
                done
            }
            other => return Err(unlisted(other)),
        });
    }
    Ok(out)
}

/// A step of a list that its dry run does not show: a bug of pgmove's, reported as one.
pub(crate) fn unlisted(step: &str) -> DumpRestoreError {
    DumpRestoreError::Io(format!(
        "internal: the dry run has no listing for step {step}; please report this"
    ))
}

/// Lists the dump's entries of one section.
async fn list_section(
    pg_restore: &Tool,
    dir: &Path,
    section: &str,
    schemas: &[String],
) -> Result<Vec<Entry>, DumpRestoreError> {
    let out = Command::new(&pg_restore.path)
        .arg("--list")
        .arg(format!("--section={section}"))
        .arg(dir)
        .output()
        .await
        .map_err(|e| DumpRestoreError::Io(format!("cannot run pg_restore: {e}")))?;
    if !out.status.success() {
        return Err(DumpRestoreError::Command {
            what: format!("pg_restore --list {}", dir.display()),
            message: String::from_utf8_lossy(&out.stderr).trim().to_string(),
        });
    }
    toc::parse_with(&String::from_utf8_lossy(&out.stdout), schemas).map_err(|e| {
        DumpRestoreError::Command {
            what: "reading the dump's table of contents".to_string(),
            message: e.to_string(),
        }
    })
}

/// Runs the strategy to the end, resuming what an earlier run left.
pub async fn run(job: &Job, progress: Progress) -> Result<Outcome, DumpRestoreError> {
    let major = source_major(&job.source).await?;
    let (pg_dump, pg_restore) = tools::find_dump_clients(job.bin_dir.as_deref(), major)?;
    let psql = tools::find("psql", job.bin_dir.as_deref(), 0)?;
    let state = State::open(&job.target, &job.plan_name).await?;
    state.finish_step(step_name::STATE, None).await?;
    let result = run_steps(job, &state, &pg_dump, &pg_restore, &psql, progress).await;
    match &result {
        Ok(_) => state.set_phase(STRATEGY, state::Phase::Done, None).await?,
        Err(e) => {
            let msg = e.to_string();
            let _ = state
                .set_phase(STRATEGY, state::Phase::Failed, Some(&msg))
                .await;
        }
    }
    result
}

async fn run_steps(
    job: &Job,
    state: &State<'_>,
    pg_dump: &Tool,
    pg_restore: &Tool,
    psql: &Tool,
    progress: Progress,
) -> Result<Outcome, DumpRestoreError> {
    if state.step(step_name::DONE).await?.is_some() {
        tracing::info!("an earlier run of this plan finished; nothing to do");
        return Ok(Outcome {
            pre_data_already_done: true,
            dump_reused: true,
            dump_dir: job.dump_dir()?,
            ..Outcome::default()
        });
    }
    let mut r = Restorer::dump(
        job, state, pg_dump, pg_restore, psql, progress, STRATEGY, None,
    )
    .await?;
    r.pre_data(state).await?;
    state.set_phase(STRATEGY, state::Phase::Data, None).await?;
    r.data().await?;
    state.finish_step(step_name::DATA, None).await?;
    state
        .set_phase(STRATEGY, state::Phase::PostData, None)
        .await?;
    r.post_data().await?;
    state.finish_step(step_name::POST_DATA, None).await?;
    analyze(job, state, progress, STRATEGY, false).await?;
    state.finish_step(step_name::DONE, None).await?;
    r.remove_dump().await;
    Ok(r.outcome)
}

/// Step `analyze`, once per plan: `VACUUM (ANALYZE)` (with `vacuum`; else `ANALYZE`) of the
/// target's tables, many small ones a statement, on `jobs` connections ([`vacuum`]).
pub async fn analyze(
    job: &Job,
    state: &State<'_>,
    progress: Progress,
    strategy: &str,
    vacuum: bool,
) -> Result<(), DumpRestoreError> {
    if state.step(step_name::ANALYZE).await?.is_some() {
        return Ok(());
    }
    state
        .set_phase(strategy, state::Phase::Analyze, None)
        .await?;
    let c = job.target.connect().await?;
    let version = job.target.version_num(&c).await?;
    let tables = vacuum::tables(&c, &job.target, &job.schemas).await?;
    drop(c);
    let step = progress.step("analyze", tables.len() as u64);
    // A statement names several tables from PostgreSQL 11 on.
    let per_statement = if version >= 110000 {
        vacuum::BATCH_TABLES
    } else {
        1
    };
    let batches = vacuum::batches(tables, per_statement);
    vacuum::run(&job.target, batches, job.jobs, vacuum, &step).await?;
    state.finish_step(step_name::ANALYZE, None).await?;
    step.finish("statistics gathered");
    Ok(())
}

/// A dump on disk and its table of contents, restored section by section.
pub struct Restorer<'a> {
    job: &'a Job,
    pg_restore: &'a Tool,
    psql: &'a Tool,
    progress: Progress,
    /// Where the dump is (`<dump directory>/dump`).
    pub dir: PathBuf,
    /// The dump directory: pgmove's marker and the dump.
    top: PathBuf,
    pre: Vec<Entry>,
    data: Vec<Entry>,
    post: Vec<Entry>,
    /// pgmove's own objects in the dump, never restored.
    ours: Ours,
    done: HashSet<i32>,
    pub outcome: Outcome,
}

impl<'a> Restorer<'a> {
    /// Dumps the source (or reuses a complete dump) and reads its table of contents. With
    /// `snapshot`, pg_dump reads inside that exported snapshot (`--snapshot`), whose exporting
    /// session must stay open and idle until this returns.
    #[allow(clippy::too_many_arguments)]
    pub async fn dump(
        job: &'a Job,
        state: &State<'_>,
        pg_dump: &Tool,
        pg_restore: &'a Tool,
        psql: &'a Tool,
        progress: Progress,
        strategy: &str,
        snapshot: Option<&str>,
    ) -> Result<Restorer<'a>, DumpRestoreError> {
        let mut outcome = Outcome::default();
        let top = job.dump_dir()?;
        outcome.dump_dir = top.clone();
        // Private, owned by this user and marked as this plan's, or refused untouched.
        let dir = dumpdir::prepare(&top, &job.dump_owner(), job.dump_dir.is_none())?;
        state.set_phase(strategy, state::Phase::Dump, None).await?;
        let marker = dir.join(COMPLETE_MARKER);
        let already_restoring = !state.finished_items().await?.is_empty()
            || state.step(step_name::PRE_DATA).await?.is_some();
        // Reuse a dump only for the restore it started on this target: a complete dump dir
        // with no record of it on the target is an earlier, unrelated run's.
        let recorded = state.step(step_name::DUMP).await?.is_some();
        if marker.is_file() && recorded {
            // The dump restored is the one this user wrote: nobody else may have written in it.
            dumpdir::check_private(&dir)?;
            outcome.dump_reused = true;
            tracing::info!(dir = %dir.display(), "reusing the complete dump of an earlier run");
        } else {
            if already_restoring {
                return Err(DumpRestoreError::Io(format!(
                    "an earlier run of plan {:?} restored part of a dump that is no longer at {} (no {COMPLETE_MARKER}).\n  hint: put that dump back (--dump-dir), or start over: `pgmove cleanup` and drop the restored objects on the target",
                    job.plan_name,
                    dir.display()
                )));
            }
            // `dir` is the `dump` subdirectory of a directory carrying this plan's marker.
            if tokio::fs::symlink_metadata(&dir).await.is_ok() {
                tokio::fs::remove_dir_all(&dir).await.map_err(|e| {
                    DumpRestoreError::Io(format!(
                        "cannot remove the incomplete dump {}: {e}",
                        dir.display()
                    ))
                })?;
            }
            let step = progress.step("dump", 0);
            // With its spinner up (tests/it/progress_tty.rs reads the terminal here).
            crate::testhook::pause("dump-step").await;
            let out = command(pg_dump, &job.source)
                .args(job.dump_args(&dir))
                .args(snapshot.map(|name| format!("--snapshot={name}")))
                .stdin(Stdio::null())
                .output()
                .await
                .map_err(|e| DumpRestoreError::Io(format!("cannot run pg_dump: {e}")))?;
            if !out.status.success() {
                return Err(DumpRestoreError::Command {
                    what: format!("pg_dump of the source ({})", job.source.display()),
                    message: crate::pg::redact(
                        String::from_utf8_lossy(&out.stderr).trim(),
                        job.source.info.password.as_ref(),
                    ),
                });
            }
            tokio::fs::write(&marker, format!("{}\n", job.source.display()))
                .await
                .map_err(|e| {
                    DumpRestoreError::Io(format!("cannot write {}: {e}", marker.display()))
                })?;
            step.finish("dump complete");
        }
        state
            .finish_step(step_name::DUMP, Some(&dir.display().to_string()))
            .await?;
        let pre = list_section(pg_restore, &dir, "pre-data", &[]).await?;
        let schemas: Vec<String> = pre
            .iter()
            .filter(|e| e.kind == "SCHEMA")
            .map(|e| e.tag.clone())
            .collect();
        let data = list_section(pg_restore, &dir, "data", &schemas).await?;
        let post = list_section(pg_restore, &dir, "post-data", &schemas).await?;
        let done: HashSet<i32> = state.finished_items().await?.into_iter().collect();
        let ours = Ours::read(job).await?;
        Ok(Restorer {
            job,
            pg_restore,
            psql,
            progress,
            dir,
            top,
            pre,
            data,
            post,
            ours,
            done,
            outcome,
        })
    }

    /// The schema, in one transaction with its step row.
    pub async fn pre_data(&mut self, state: &State<'_>) -> Result<(), DumpRestoreError> {
        let job = self.job;
        if state.step(step_name::PRE_DATA).await?.is_some() {
            self.outcome.pre_data_already_done = true;
            return Ok(());
        }
        let existing = target_schemas(job).await?;
        let not_ours = extensions_not_ours(job).await?;
        for e in self
            .pre
            .iter()
            .filter(|e| !keep_pre_data(e, &self.ours, &existing, &not_ours))
        {
            if let Some(ext) = e.tag.strip_prefix("EXTENSION ") {
                tracing::warn!(
                    "the comment on extension {ext} is not restored: the extension exists on the target already and belongs to a role whose rights the target's role lacks (COMMENT ON EXTENSION needs its owner); as that owner, run the COMMENT ON EXTENSION {ext} that the source's `\\dx+ {ext}` shows"
                );
            }
        }
        let items: Vec<&Entry> = self
            .pre
            .iter()
            .filter(|e| keep_pre_data(e, &self.ours, &existing, &not_ours))
            .collect();
        let step = self.progress.step("schema", items.len() as u64);
        let suffix = state::finish_step_sql(&job.plan_name, step_name::PRE_DATA, None);
        let prefix = public_owner_sql(job, &self.pre).await?;
        restore_items(
            job,
            self.pg_restore,
            self.psql,
            &self.dir,
            &items,
            &prefix,
            &suffix,
            "the schema (pre-data)",
        )
        .await?;
        step.finish("schema restored");
        Ok(())
    }

    /// The data items, `jobs` at a time, largest first.
    pub async fn data(&mut self) -> Result<(), DumpRestoreError> {
        let nothing_to_restore = self.unwritable_config_items().await?;
        let mut todo: Vec<&Entry> = self
            .data
            .iter()
            .filter(|e| !self.done.contains(&e.dump_id))
            .collect();
        self.outcome.items_already_done += self.data.len() - todo.len();
        todo.retain(|e| !nothing_to_restore.contains(&e.dump_id));
        let sizes = data_sizes(&self.dir);
        todo.sort_by_key(|e| std::cmp::Reverse(sizes.get(&e.dump_id).copied().unwrap_or(0)));
        let step = self.progress.step("data", todo.len() as u64);
        self.outcome.tables_restored += todo.iter().filter(|e| e.kind == "TABLE DATA").count();
        let todo = batch::batches(
            todo,
            |e| sizes.get(&e.dump_id).copied().unwrap_or(0),
            batch::SMALL_ITEM_BYTES,
            batch::BATCH_ITEMS,
        );
        self.outcome.items_restored += run_batches(
            self.job,
            self.pg_restore,
            self.psql,
            &self.dir,
            todo,
            self.job.jobs,
            "SET synchronous_commit = off;\n",
            &step,
        )
        .await?;
        step.finish("data restored");
        Ok(())
    }

    /// The data items not done yet of extension configuration tables the target role may not
    /// write (see [`config_tables`]) that hold no rows: the source has none of its own rows in
    /// them, so there is nothing to restore. Such a table with rows to restore is an error
    /// naming the grant its owner runs.
    async fn unwritable_config_items(&self) -> Result<HashSet<i32>, DumpRestoreError> {
        let mut empty = HashSet::new();
        let unwritable = config_tables::unwritable(&self.job.target).await?;
        if unwritable.is_empty() {
            return Ok(empty);
        }
        let items = self
            .data
            .iter()
            .filter(|e| e.kind == "TABLE DATA" && !self.done.contains(&e.dump_id));
        for e in items {
            let Some(u) = unwritable
                .iter()
                .find(|u| u.schema == e.schema && u.table == e.tag)
            else {
                continue;
            };
            let rows = config_tables::dumpable_rows(&self.job.source, &u.schema, &u.table).await?;
            if rows == 0 {
                tracing::info!(
                    table = %format!("{}.{}", u.schema, u.table),
                    owner = %u.owner,
                    "an extension's configuration table that the target role may not write: the source has none of its own rows in it, so there is nothing to restore"
                );
                empty.insert(e.dump_id);
                continue;
            }
            let role = self.job.target.info.user();
            return Err(DumpRestoreError::Item {
                object: format!("TABLE DATA {}.{}", u.schema, u.table),
                dump_id: e.dump_id,
                message: format!(
                    "the source has {rows} row(s) of its own in this configuration table of an extension, and role {role} may not write it on the target (its owner is {}); fix: {}",
                    u.owner,
                    u.fix(role)
                ),
            });
        }
        Ok(empty)
    }

    /// Indexes and constraints (in parallel), attachments, foreign keys, then the rest. The
    /// indexes of small tables are built in batches (one transaction for up to 100), those
    /// of large tables one per worker; the other waves run in order, consecutive items in
    /// batches: one `pg_restore | psql` per item cost O(items) each (pg_restore reads the
    /// dump's whole TOC), O(items²) in all.
    pub async fn post_data(&mut self) -> Result<(), DumpRestoreError> {
        let todo: Vec<&Entry> = self
            .post
            .iter()
            .filter(|e| !self.done.contains(&e.dump_id))
            .filter(|e| keep_post_data(e, &self.ours))
            .collect();
        self.outcome.items_already_done += self
            .post
            .iter()
            .filter(|e| self.done.contains(&e.dump_id))
            .count();
        let step = self.progress.step("indexes", todo.len() as u64);
        let waves: BTreeSet<Wave> = todo.iter().map(|e| toc::wave(&e.kind)).collect();
        // The tables of the indexes, with their size on the source (only when there are some).
        let owners = if waves.contains(&Wave::Indexes) {
            index_owners::read(&self.job.source).await?
        } else {
            Vec::new()
        };
        let owners = index_owners::Owners::new(&owners);
        let prefix = index_session::prefix(&self.job.target).await?;
        for w in waves {
            let items: Vec<&Entry> = todo
                .iter()
                .copied()
                .filter(|e| toc::wave(&e.kind) == w)
                .collect();
            let (batches, width) = if w == Wave::Indexes {
                let batches = batch::index_batches(
                    items,
                    |e| owners.of(e).map(|o| o.table_bytes),
                    index_owners::SMALL_TABLE_BYTES,
                    batch::BATCH_ITEMS,
                );
                (batches, self.job.index_jobs)
            } else {
                (batch::in_order(items, batch::BATCH_ITEMS), 1)
            };
            self.outcome.items_restored += run_batches(
                self.job,
                self.pg_restore,
                self.psql,
                &self.dir,
                batches,
                width,
                &prefix,
                &step,
            )
            .await?;
        }
        step.finish("indexes, constraints and the rest restored");
        Ok(())
    }

    /// The post-data entries of the Indexes wave (indexes and primary/unique constraints) not
    /// restored yet, for building while other tables still load.
    pub fn pending_index_entries(&self) -> Vec<Entry> {
        self.post
            .iter()
            .filter(|e| toc::wave(&e.kind) == Wave::Indexes)
            .filter(|e| !self.done.contains(&e.dump_id))
            .filter(|e| keep_post_data(e, &self.ours))
            .cloned()
            .collect()
    }

    /// Leaves out of every section the entries `drop` selects (never restored by this
    /// restorer; strategy pglogical leaves out the pglogical extension and its schema).
    pub fn leave_out(&mut self, drop: impl Fn(&Entry) -> bool) {
        self.pre.retain(|e| !drop(e));
        self.data.retain(|e| !drop(e));
        self.post.retain(|e| !drop(e));
    }

    /// Re-reads which items are restored (after work done outside this restorer).
    pub async fn refresh_done(&mut self, state: &State<'_>) -> Result<(), DumpRestoreError> {
        self.done = state.finished_items().await?.into_iter().collect();
        Ok(())
    }

    pub fn pg_restore(&self) -> &Tool {
        self.pg_restore
    }

    pub fn psql(&self) -> &Tool {
        self.psql
    }

    /// Removes the dump unless the user chose where to keep it (only while the directory's
    /// marker names this plan; a failure is logged, the move itself succeeded).
    pub async fn remove_dump(&self) {
        if self.job.dump_dir.is_none() {
            if let Err(e) = dumpdir::remove(&self.top, &self.job.dump_owner()) {
                tracing::warn!(dir = %self.top.display(), "the dump directory stays: {e}");
            }
        }
    }
}

/// Schemas that exist on the target already (their CREATE SCHEMA is left out).
async fn target_schemas(job: &Job) -> Result<HashSet<String>, PgError> {
    let client = job.target.connect().await?;
    let rows = client
        .query("SELECT nspname FROM pg_namespace", &[])
        .await
        .map_err(|e| job.target.query_error("listing schemas", &e))?;
    Ok(rows.iter().map(|r| r.get(0)).collect())
}

/// Extensions that exist on the target and belong to a role whose privileges the connecting
/// role does not have: one name a row (a superuser has every role's privileges).
const EXTENSIONS_NOT_OURS: &str = "SELECT extname FROM pg_catalog.pg_extension WHERE NOT pg_catalog.pg_has_role(current_user, extowner, 'USAGE')";

/// Extensions whose comment the target role may not set (see [`EXTENSIONS_NOT_OURS`]).
async fn extensions_not_ours(job: &Job) -> Result<HashSet<String>, PgError> {
    let client = job.target.connect().await?;
    let rows = client
        .query(EXTENSIONS_NOT_OURS, &[])
        .await
        .map_err(|e| job.target.query_error("listing the extensions' owners", &e))?;
    Ok(rows.iter().map(|r| r.get(0)).collect())
}

/// Schema `public` exists on the target already, so its entry is left out: its source owner is
/// given to it here (`owner: source`), when that role exists on the target, else reported.
async fn public_owner_sql(job: &Job, pre: &[Entry]) -> Result<String, DumpRestoreError> {
    let Some(owner) = pre
        .iter()
        .find(|e| e.kind == "SCHEMA" && e.tag == "public" && !e.owner.is_empty())
        .map(|e| e.owner.clone())
    else {
        return Ok(String::new());
    };
    if job.no_owner {
        return Ok(String::new());
    }
    let client = job.target.connect().await?;
    let exists = client
        .query_opt(
            "SELECT 1 FROM pg_catalog.pg_roles WHERE rolname = $1",
            &[&owner],
        )
        .await
        .map_err(|e| job.target.query_error("looking up a role", &e))?
        .is_some();
    if !exists {
        tracing::warn!(
            "schema public keeps its owner on the target: role {} (its owner on the source) is missing on the target; create it, then run: ALTER SCHEMA public OWNER TO {};",
            quote::ident(&owner),
            quote::ident(&owner)
        );
        return Ok(String::new());
    }
    Ok(format!(
        "ALTER SCHEMA public OWNER TO {};\n",
        quote::ident(&owner)
    ))
}

/// Event triggers whose function lives in schema `$1` (pgmove's: change capture's triggers,
/// which the dump leaves without their function, as it excludes that schema): one name a row.
const PGMOVE_EVENT_TRIGGERS: &str = "SELECT e.evtname::text FROM pg_catalog.pg_event_trigger e
  JOIN pg_catalog.pg_proc p ON p.oid = e.evtfoid
  JOIN pg_catalog.pg_namespace n ON n.oid = p.pronamespace
 WHERE n.nspname = $1";

/// pgmove's own objects in a dump of the source, left out of the restore: the publications
/// of this plan and of every plan that recorded objects on the source, by their exact names,
/// and the event triggers whose function is in pgmove's schema. A user's object whose name
/// merely starts with `pgmove_` is restored.
#[derive(Clone, Debug, Default)]
pub struct Ours {
    publications: Vec<String>,
    event_triggers: HashSet<String>,
}

impl Ours {
    /// The publications of this plan and of the plans recorded on the source, and the
    /// source's pgmove event triggers.
    pub async fn read(job: &Job) -> Result<Ours, PgError> {
        let client = job.source.connect().await?;
        let mut plans = vec![job.plan_name.clone()];
        // Only in pgmove's own schema (its marker table): a user's `pgmove` schema may hold
        // an `objects` table of another shape.
        if state::has_table(&client, &job.source, state::MARKER_TABLE).await?
            && state::has_table(&client, &job.source, crate::cdc::ddl::RECORD_TABLE).await?
        {
            plans.extend(state::source::recorded_plans(&client, &job.source).await?);
        }
        let mut publications = Vec::new();
        for plan in plans {
            let publication = crate::plan::names::artifact_name(&plan);
            publications.push(crate::plan::names::insert_only_publication_name(
                &publication,
            ));
            publications.push(publication);
        }
        let rows = client
            .query(PGMOVE_EVENT_TRIGGERS, &[&state::SCHEMA])
            .await
            .map_err(|e| {
                job.source
                    .query_error("listing pgmove's event triggers", &e)
            })?;
        Ok(Ours {
            publications,
            event_triggers: rows.iter().map(|r| r.get(0)).collect(),
        })
    }

    fn contains(&self, e: &Entry) -> bool {
        match e.kind.as_str() {
            "EVENT TRIGGER" => self.event_triggers.contains(&e.tag),
            // A publication's member entries are tagged `<publication> <table or schema>`.
            "PUBLICATION" | "PUBLICATION TABLE" | "PUBLICATION TABLES IN SCHEMA" => {
                self.publications.iter().any(|p| {
                    e.tag == *p
                        || e.tag
                            .strip_prefix(p.as_str())
                            .is_some_and(|rest| rest.starts_with(' '))
                })
            }
            // The comment on one of them: `PUBLICATION <name>`, `EVENT TRIGGER <name>`.
            "COMMENT" => {
                if let Some(name) = e.tag.strip_prefix("PUBLICATION ") {
                    self.publications.iter().any(|p| p == name)
                } else if let Some(name) = e.tag.strip_prefix("EVENT TRIGGER ") {
                    self.event_triggers.contains(name)
                } else {
                    false
                }
            }
            _ => false,
        }
    }
}

/// Whether a pre-data entry is restored: not pgmove's own, not a schema the target has, and not
/// the comment of an extension the target role does not own (`extensions_not_ours`: one a
/// managed service's administrator created; COMMENT ON EXTENSION needs its owner). The comment
/// of every other extension is restored: a user's own comment on it is part of the schema.
fn keep_pre_data(
    e: &Entry,
    ours: &Ours,
    existing_schemas: &HashSet<String>,
    extensions_not_ours: &HashSet<String>,
) -> bool {
    if ours.contains(e) {
        return false;
    }
    match e.kind.as_str() {
        "COMMENT" => e
            .tag
            .strip_prefix("EXTENSION ")
            .is_none_or(|ext| !extensions_not_ours.contains(ext)),
        "SCHEMA" => !existing_schemas.contains(&e.tag),
        _ => true,
    }
}

fn keep_post_data(e: &Entry, ours: &Ours) -> bool {
    !ours.contains(e)
}

/// Bytes of each data item's file in the dump directory (`<dump_id>.dat[.gz|.lz4|.zst]`).
fn data_sizes(dir: &Path) -> HashMap<i32, u64> {
    let mut sizes = HashMap::new();
    if let Ok(rd) = std::fs::read_dir(dir) {
        for e in rd.filter_map(|e| e.ok()) {
            let name = e.file_name().to_string_lossy().to_string();
            if let Some(id) = name.split('.').next().and_then(|s| s.parse::<i32>().ok()) {
                if let Ok(m) = e.metadata() {
                    *sizes.entry(id).or_insert(0) += m.len();
                }
            }
        }
    }
    sizes
}

/// Restores each batch in one transaction (with the progress rows of its items), `width`
/// batches at a time, in the order given; returns how many items it restored.
#[allow(clippy::too_many_arguments)]
async fn run_batches(
    job: &Job,
    pg_restore: &Tool,
    psql: &Tool,
    dir: &Path,
    batches: Vec<Vec<&Entry>>,
    width: usize,
    prefix: &str,
    step: &crate::progress::Step,
) -> Result<usize, DumpRestoreError> {
    let semaphore = Arc::new(tokio::sync::Semaphore::new(width.max(1)));
    let mut set = tokio::task::JoinSet::new();
    let count = batches.iter().map(Vec::len).sum();
    for b in batches {
        let permit = semaphore.clone().acquire_owned().await.map_err(|e| {
            DumpRestoreError::Io(format!("internal: restore worker pool closed: {e}"))
        })?;
        // Stop at the first failure, before starting more.
        while let Some(r) = set.try_join_next() {
            finish_task(r, step)?;
        }
        let job = job.clone();
        let pg_restore = pg_restore.clone();
        let psql = psql.clone();
        let dir = dir.to_path_buf();
        let b: Vec<Entry> = b.into_iter().cloned().collect();
        let prefix = prefix.to_string();
        set.spawn(async move {
            let _permit = permit;
            let objects: Vec<String> = b.iter().map(Entry::object).collect();
            let what = match objects.as_slice() {
                [one] => one.clone(),
                many => format!(
                    "{} items ({} to {})",
                    many.len(),
                    many[0],
                    many[many.len() - 1]
                ),
            };
            let items: Vec<&Entry> = b.iter().collect();
            restore_batch(&job, &pg_restore, &psql, &dir, &items, &prefix, &what)
                .await
                .map(|_| objects)
        });
    }
    while let Some(r) = set.join_next().await {
        if let Err(e) = finish_task(r, step) {
            set.abort_all();
            return Err(e);
        }
    }
    Ok(count)
}

/// What the error of a restore says when an item's progress row exists already.
const ALREADY_RESTORED: &str = "restore_items_pkey";

/// `items` restored in one transaction with their progress rows ([`restore_items`]). When
/// that transaction of several items fails (it rolled back: nothing of it applied), each is
/// restored again on its own: one was restored meanwhile by a process left over from a killed
/// run (its progress row exists) and is skipped, or the error names the one item that fails.
#[allow(clippy::too_many_arguments)]
pub(crate) async fn restore_batch(
    job: &Job,
    pg_restore: &Tool,
    psql: &Tool,
    dir: &Path,
    items: &[&Entry],
    prefix: &str,
    what: &str,
) -> Result<(), DumpRestoreError> {
    let suffix: String = items
        .iter()
        .map(|e| state::finish_item_sql(&job.plan_name, e.dump_id, &e.kind, &e.object()))
        .collect();
    match restore_items(job, pg_restore, psql, dir, items, prefix, &suffix, what).await {
        Err(DumpRestoreError::Item { message, .. }) if items.len() > 1 => {
            if !message.contains(ALREADY_RESTORED) {
                tracing::info!(
                    items = items.len(),
                    "a batch failed and rolled back; restoring its items one by one to name the failing one: {message}"
                );
            }
            for e in items {
                let suffix =
                    state::finish_item_sql(&job.plan_name, e.dump_id, &e.kind, &e.object());
                restore_items(
                    job,
                    pg_restore,
                    psql,
                    dir,
                    &[e],
                    prefix,
                    &suffix,
                    &e.object(),
                )
                .await?;
            }
            Ok(())
        }
        r => r,
    }
}

fn finish_task(
    r: Result<Result<Vec<String>, DumpRestoreError>, tokio::task::JoinError>,
    step: &crate::progress::Step,
) -> Result<(), DumpRestoreError> {
    match r {
        Ok(Ok(objects)) => {
            for object in &objects {
                step.item_done(object);
            }
            Ok(())
        }
        Ok(Err(e)) => Err(e),
        Err(e) => Err(DumpRestoreError::Io(format!(
            "internal: restore task failed: {e}"
        ))),
    }
}

/// `pg_restore -L items -f - | psql --single-transaction`, with `prefix` before and `suffix`
/// after the restored SQL, inside the same transaction.
#[allow(clippy::too_many_arguments)]
pub(crate) async fn restore_items(
    job: &Job,
    pg_restore: &Tool,
    psql: &Tool,
    dir: &Path,
    items: &[&Entry],
    prefix: &str,
    suffix: &str,
    what: &str,
) -> Result<(), DumpRestoreError> {
    // Privileges go last, filtered: a grant to a role the target lacks is reported, not fatal.
    let (acls, items): (Vec<&Entry>, Vec<&Entry>) = items
        .iter()
        .copied()
        .partition(|e| matches!(e.kind.as_str(), "ACL" | "DEFAULT ACL") && !job.no_acl);
    let acl_sql = if acls.is_empty() {
        String::new()
    } else {
        privileges_sql(job, pg_restore, dir, &acls, what).await?
    };
    let items = items.as_slice();
    let list = tempfile::NamedTempFile::new()
        .map_err(|e| DumpRestoreError::Io(format!("cannot create a list file: {e}")))?;
    let mut text = String::new();
    for e in items {
        text.push_str(&e.line);
        text.push('\n');
    }
    std::fs::write(list.path(), text)
        .map_err(|e| DumpRestoreError::Io(format!("cannot write a list file: {e}")))?;

    let mut restore = Command::new(&pg_restore.path);
    restore
        .args(job.restore_args())
        .arg(format!("--use-list={}", list.path().display()))
        .arg("--file=-")
        .arg(dir)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    die_with_parent(&mut restore);
    let mut restore = restore
        .spawn()
        .map_err(|e| DumpRestoreError::Io(format!("cannot run pg_restore: {e}")))?;
    let mut apply = command(psql, &job.target)
        .args([
            "--no-psqlrc",
            "--quiet",
            "--set=ON_ERROR_STOP=1",
            "--single-transaction",
            "--file=-",
        ])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| DumpRestoreError::Io(format!("cannot run psql: {e}")))?;

    let mut stdin = apply
        .stdin
        .take()
        .ok_or_else(|| DumpRestoreError::Io("psql has no stdin".to_string()))?;
    let mut sql_in = restore
        .stdout
        .take()
        .ok_or_else(|| DumpRestoreError::Io("pg_restore has no stdout".to_string()))?;
    let feed = async {
        stdin.write_all(prefix.as_bytes()).await?;
        tokio::io::copy(&mut sql_in, &mut stdin).await?;
        stdin.write_all(b"\n").await?;
        stdin.write_all(acl_sql.as_bytes()).await?;
        stdin.write_all(b"\n").await?;
        stdin.write_all(suffix.as_bytes()).await?;
        stdin.shutdown().await?;
        drop(stdin);
        Ok::<(), std::io::Error>(())
    };
    // psql may stop reading early on an error: its exit status says why, not the broken pipe.
    let _ = feed.await;
    let restore_out = restore
        .wait_with_output()
        .await
        .map_err(|e| DumpRestoreError::Io(format!("pg_restore: {e}")))?;
    let apply_out = apply
        .wait_with_output()
        .await
        .map_err(|e| DumpRestoreError::Io(format!("psql: {e}")))?;
    let (dump_id, object) = match (items, acls.as_slice()) {
        ([one], []) | ([], [one]) => (one.dump_id, one.object()),
        _ => (0, what.to_string()),
    };
    if !apply_out.status.success() {
        let message = clean_psql_error(&String::from_utf8_lossy(&apply_out.stderr));
        // The item's progress row exists: a process left over from a killed run restored it
        // first. This transaction rolled back, so nothing was applied twice (a batch of
        // several items is an error: `restore_batch` restores them one by one).
        if message.contains(ALREADY_RESTORED) && items.len() + acls.len() == 1 {
            tracing::info!(item = %object, "already restored by an earlier run");
            return Ok(());
        }
        return Err(DumpRestoreError::Item {
            object,
            dump_id,
            message: crate::pg::redact(&message, job.target.info.password.as_ref()),
        });
    }
    if !restore_out.status.success() {
        return Err(DumpRestoreError::Command {
            what: format!("pg_restore of {object}"),
            message: String::from_utf8_lossy(&restore_out.stderr)
                .trim()
                .to_string(),
        });
    }
    Ok(())
}

/// The SQL of the privilege entries `acls`, without the statements naming roles the target
/// lacks (each such role is reported by name, with the statements left out).
async fn privileges_sql(
    job: &Job,
    pg_restore: &Tool,
    dir: &Path,
    acls: &[&Entry],
    what: &str,
) -> Result<String, DumpRestoreError> {
    let list = tempfile::NamedTempFile::new()
        .map_err(|e| DumpRestoreError::Io(format!("cannot create a list file: {e}")))?;
    let text: String = acls.iter().map(|e| format!("{}\n", e.line)).collect();
    std::fs::write(list.path(), text)
        .map_err(|e| DumpRestoreError::Io(format!("cannot write a list file: {e}")))?;
    let out = Command::new(&pg_restore.path)
        .args(job.restore_args())
        .arg(format!("--use-list={}", list.path().display()))
        .arg("--file=-")
        .arg(dir)
        .stdin(Stdio::null())
        .output()
        .await
        .map_err(|e| DumpRestoreError::Io(format!("cannot run pg_restore: {e}")))?;
    if !out.status.success() {
        return Err(DumpRestoreError::Command {
            what: format!("pg_restore of the privileges of {what}"),
            message: String::from_utf8_lossy(&out.stderr).trim().to_string(),
        });
    }
    let client = job.target.connect().await?;
    let existing: HashSet<String> = client
        .query(grants::TARGET_ROLES, &[])
        .await
        .map_err(|e| job.target.query_error("listing the target's roles", &e))?
        .iter()
        .map(|r| r.get(0))
        .collect();
    let (sql, skipped) = grants::filter(&String::from_utf8_lossy(&out.stdout), &existing);
    if !skipped.roles.is_empty() {
        let roles: Vec<String> = skipped.roles.iter().map(|r| quote::ident(r)).collect();
        tracing::warn!(
            "privileges of {what} not restored: role(s) {} missing on the target (`roles: skip`); create them on the target and run these statements: {}",
            roles.join(", "),
            skipped.statements.join(" ")
        );
    }
    Ok(sql)
}

/// psql's `psql:<stdin>:12: ERROR:  ...` lines without the position prefix.
fn clean_psql_error(stderr: &str) -> String {
    let lines: Vec<String> = stderr
        .lines()
        .map(|l| {
            if let Some(rest) = l.strip_prefix("psql:<stdin>:") {
                rest.split_once(": ")
                    .map(|(_, m)| m.to_string())
                    .unwrap_or_else(|| rest.to_string())
            } else {
                l.to_string()
            }
        })
        .filter(|l| !l.trim().is_empty())
        .collect();
    lines.join("\n    ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn globs_become_quoted_pg_dump_patterns() {
        assert_eq!(glob_to_pattern("public.tmp_*"), r#""public"."tmp_"*"#);
        assert_eq!(glob_to_pattern("audit.*"), r#""audit".*"#);
        assert_eq!(glob_to_pattern("Sales.Order?"), r#""Sales"."Order"?"#);
        assert_eq!(glob_to_pattern("t$x"), r#""t$x""#);
    }

    #[test]
    fn psql_errors_lose_their_position_prefix() {
        let e = clean_psql_error(
            "psql:<stdin>:23: ERROR:  relation \"x\" already exists\npsql:<stdin>:23: STATEMENT: CREATE TABLE x()\n",
        );
        assert_eq!(
            e,
            "ERROR:  relation \"x\" already exists\n    STATEMENT: CREATE TABLE x()"
        );
    }

    #[test]
    fn comments_of_extensions_not_ours_and_existing_schemas_are_left_out() {
        let entries = toc::parse(
            "1; 0 0 COMMENT - EXTENSION postgis \n2; 2615 1 SCHEMA - public postgres\n3; 2615 2 SCHEMA - sales postgres\n4; 0 0 COMMENT public TABLE t postgres\n5; 0 0 EVENT TRIGGER - pgmove_ddl postgres\n6; 0 0 COMMENT - EXTENSION hstore \n",
        )
        .expect("parses");
        let existing: HashSet<String> = ["public".to_string()].into_iter().collect();
        let not_ours: HashSet<String> = ["postgis".to_string()].into_iter().collect();
        let ours = Ours {
            event_triggers: ["pgmove_ddl".to_string()].into_iter().collect(),
            ..Ours::default()
        };
        let kept: Vec<i32> = entries
            .iter()
            .filter(|e| keep_pre_data(e, &ours, &existing, &not_ours))
            .map(|e| e.dump_id)
            .collect();
        assert_eq!(kept, vec![3, 4, 6]);
    }

    #[test]
    fn only_the_plans_own_publications_and_event_triggers_are_left_out() {
        let entries = toc::parse(
            "1; 0 0 PUBLICATION - pgmove_shop postgres\n\
             2; 0 0 PUBLICATION TABLE public pgmove_shop t postgres\n\
             3; 0 0 PUBLICATION - pgmove_shop_insert_only postgres\n\
             4; 0 0 PUBLICATION TABLE public pgmove_shop_insert_only k postgres\n\
             5; 0 0 PUBLICATION - pgmove_reports postgres\n\
             6; 0 0 PUBLICATION TABLE public pgmove_reports t postgres\n\
             7; 0 0 PUBLICATION - pgmove_shop2 postgres\n\
             8; 0 0 EVENT TRIGGER - pgmove_ddl_shop postgres\n\
             9; 0 0 EVENT TRIGGER - pgmove_audit postgres\n\
             10; 0 0 COMMENT - PUBLICATION pgmove_reports postgres\n\
             11; 0 0 COMMENT - EVENT TRIGGER pgmove_audit postgres\n",
        )
        .expect("parses");
        let ours = Ours {
            publications: vec![
                "pgmove_shop".to_string(),
                crate::plan::names::insert_only_publication_name("pgmove_shop"),
            ],
            event_triggers: ["pgmove_ddl_shop".to_string()].into_iter().collect(),
        };
        let kept: Vec<i32> = entries
            .iter()
            .filter(|e| keep_post_data(e, &ours))
            .map(|e| e.dump_id)
            .collect();
        assert_eq!(kept, vec![5, 6, 7, 9, 10, 11]);
    }

    #[test]
    fn rendered_commands_never_show_the_password() {
        let ep = Endpoint::from_dsn(
            crate::pg::Side::Source,
            "postgres://u:hunter2@h:5432/db",
            None,
            &|_| None,
        )
        .expect("dsn");
        let line = render("pg_dump", &ep, &["--file=/tmp/x y".to_string()]);
        assert!(!line.contains("hunter2"), "{line}");
        assert!(line.contains("PGPASSWORD=********"));
        assert!(line.contains("'--file=/tmp/x y'"));
    }
}
