//! The `pgmove` schema: what has been done, so a rerun after a crash resumes. This module is
//! the only code that reads or writes the schema's tables (an architecture test,
//! `tests::no_state_sql_outside_state`, keeps it so); everyone else calls a function here.
//!
//! Progress rows are written in the same transaction as the work they describe wherever the
//! work runs in a transaction pgmove controls: those writes are given as SQL text
//! ([`finish_step_sql`], [`finish_item_sql`], [`progress::save_sql`]) or take the caller's
//! client, never a connection of their own.
//!
//! # Layout
//! - `mod.rs`: the schema's owner ([`Owner`], the marker table), [`State`] (open, the plan
//!   lock), [`has_table`].
//! - `schema.rs`: the versioned schema: migrations `migrations/NNNN_*.sql`, applied in one
//!   transaction under an advisory lock by [`State::open`]; the dry run's preview.
//! - `kinds.rs`: the stored vocabulary: [`Phase`], [`CutoverState`], step names ([`step`]).
//!   Stored strings never change: an upgraded target reads the rows of older releases.
//! - One file per table or concept, one function per read or write: `runs.rs`, `steps.rs`,
//!   `restore.rs` (dump items), `copy.rs` (copy-cdc chunks), `load.rs` (the copy-cdc load's start and estimate), `progress.rs` (change capture's
//!   position), `cutover.rs`, `lock.rs` (the plan lock: its key and "is an apply running?"),
//!   `owned.rs` (records of objects created on the source), `roles.rs` (roles created),
//!   `replica_identity.rs`, `touched.rs` (cutover's pre-verification: keys change capture
//!   touched), and `source.rs` for the source's own `pgmove` schema (the DDL
//!   capture's record `pgmove.objects`).

use tokio_postgres::Client;

use crate::pg::{Endpoint, PgError};

pub mod copy;
pub mod cutover;
pub mod history;
mod kinds;
pub mod load;
pub mod lock;
pub mod owned;
pub mod progress;
pub mod replica_identity;
pub mod restore;
pub mod roles;
pub mod runs;
pub mod schema;
pub mod source;
pub mod steps;
pub mod touched;

pub use kinds::{step, CutoverState, Phase};
pub use restore::finish_item_sql;
pub use runs::Run;
pub use steps::{finish_step_sql, forget_steps_sql};

/// The schema pgmove owns on the target (and, for online strategies, on the source).
pub const SCHEMA: &str = "pgmove";

/// The table that proves a `pgmove` schema is pgmove's: created with the schema, in the same
/// transaction, on whichever server pgmove creates the schema (the target's state, the source's
/// DDL capture). Cleanup drops a `pgmove` schema only when it holds this table; pgmove never
/// writes into a `pgmove` schema without it.
pub const MARKER_TABLE: &str = "created_by_pgmove";

/// Creates the marker in a `pgmove` schema just created, in the transaction that creates it;
/// idempotent. The source's DDL capture runs it (`crate::cdc::ddl::install_sql`); the target's
/// state schema gets the same statements from migration 1 (also when adopting a schema of an
/// earlier pgmove: see [`Owner::Earlier`]).
pub const CREATE_MARKER_SQL: &str = "
CREATE TABLE IF NOT EXISTS pgmove.created_by_pgmove (
    created_at timestamptz NOT NULL DEFAULT now(),
    note       text NOT NULL
);
INSERT INTO pgmove.created_by_pgmove (note)
    SELECT 'this schema was created by pgmove; pgmove cleanup drops it'
    WHERE NOT EXISTS (SELECT 1 FROM pgmove.created_by_pgmove);
";

/// The comment earlier pgmove versions (without the marker) gave the target's state schema.
const EARLIER_COMMENT: &str = "pgmove migration state; removed by pgmove cleanup";

/// Who the `pgmove` schema of the connected database belongs to. One row: whether it exists,
/// whether it holds [`MARKER_TABLE`], and whether it is the state schema of an earlier pgmove
/// (its comment and its `runs` and `steps` tables).
const OWNER_SQL: &str = "SELECT n.oid IS NOT NULL, \
        to_regclass('pgmove.created_by_pgmove') IS NOT NULL, \
        n.oid IS NOT NULL AND obj_description(n.oid, 'pg_namespace') = $1::text \
          AND to_regclass('pgmove.runs') IS NOT NULL AND to_regclass('pgmove.steps') IS NOT NULL \
     FROM (SELECT 1) one LEFT JOIN pg_namespace n ON n.nspname = 'pgmove'";

/// Who a server's `pgmove` schema belongs to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Owner {
    /// There is none.
    Absent,
    /// pgmove's: it holds the marker.
    Pgmove,
    /// The state schema of a pgmove version from before the marker (adopted: the marker is
    /// added when apply opens it).
    Earlier,
    /// Someone else's: pgmove never writes into it nor drops it.
    Foreign,
}

/// Who the `pgmove` schema of `ep` belongs to.
pub async fn owner(c: &Client, ep: &Endpoint) -> Result<Owner, PgError> {
    let row = c
        .query_one(OWNER_SQL, &[&EARLIER_COMMENT])
        .await
        .map_err(|e| ep.query_error("looking for the pgmove schema", &e))?;
    Ok(match (row.get(0), row.get(1), row.get(2)) {
        (false, _, _) => Owner::Absent,
        (true, true, _) => Owner::Pgmove,
        (true, false, true) => Owner::Earlier,
        (true, false, false) => Owner::Foreign,
    })
}

/// Why pgmove will not use a foreign `pgmove` schema on `side`, and the fix.
pub fn foreign_schema_message(side: crate::pg::Side) -> String {
    format!(
        "the {side} has a schema named pgmove that pgmove did not create (it has no table pgmove.{MARKER_TABLE}); pgmove keeps its own state in a schema of that name, so it will not write into it nor drop it; \
         fix: rename it on the {side} (ALTER SCHEMA pgmove RENAME TO pgmove_data;), or migrate into another database"
    )
}

/// Whether table `pgmove.<table>` exists on the server `client` is connected to (`ep`, for the
/// error). `table` is one of pgmove's own table names.
pub async fn has_table(client: &Client, ep: &Endpoint, table: &str) -> Result<bool, PgError> {
    let name = format!("{SCHEMA}.{table}");
    let row = client
        .query_one("SELECT to_regclass($1) IS NOT NULL", &[&name])
        .await
        .map_err(|e| ep.query_error(&format!("looking for {name}"), &e))?;
    Ok(row.get(0))
}

/// How long [`State::open`] asks again for a plan's lock held by another session.
const LOCK_WAIT: std::time::Duration = std::time::Duration::from_secs(5);

/// The state of one plan's run on the target.
pub struct State<'a> {
    pub target: &'a Endpoint,
    pub client: Client,
    pub plan_name: String,
}

impl<'a> State<'a> {
    /// Connects to the target, creates or upgrades the schema (see [`schema::migrate`]) and
    /// takes the plan's lock (one apply per plan at a time).
    pub async fn open(target: &'a Endpoint, plan_name: &str) -> Result<State<'a>, PgError> {
        let mut client = target.connect().await?;
        if owner(&client, target).await? == Owner::Foreign {
            return Err(PgError::Query {
                side: target.side,
                message: foreign_schema_message(target.side),
            });
        }
        schema::migrate(&mut client, target).await?;
        // A session-level advisory lock, released when this connection ends (also when the
        // process is killed). A session that just ended (a pgmove killed a moment ago, or a
        // step of this process that closed its connection) may hold it until its server
        // process has noticed: asked again for up to LOCK_WAIT before refusing.
        let deadline = std::time::Instant::now() + LOCK_WAIT;
        let mut taken = lock::take(&client, target, plan_name).await?;
        while !taken && std::time::Instant::now() < deadline {
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
            taken = lock::take(&client, target, plan_name).await?;
        }
        if !taken {
            return Err(PgError::Query {
                side: target.side,
                message: format!(
                    "another pgmove apply of plan {plan_name:?} is running against this target; wait for it or stop it first"
                ),
            });
        }
        Ok(State {
            target,
            client,
            plan_name: plan_name.to_string(),
        })
    }

    /// Lets go of the plan's lock before this connection ends, for a step that hands the plan
    /// over to the next one in the same process (which opens its own state).
    pub async fn release_lock(&self) -> Result<(), PgError> {
        lock::release(&self.client, self.target, &self.plan_name).await
    }
}

#[cfg(test)]
mod tests {
    //! The architecture rule of this module: SQL naming the `pgmove` schema's tables lives
    //! only under `src/state/`.

    use std::path::{Path, PathBuf};

    /// Every table of the `pgmove` schema, on the target and on the source.
    const TABLES: &[&str] = &[
        "created_by_pgmove",
        "schema_version",
        "runs",
        "steps",
        "restore_items",
        "copy_progress",
        "load",
        "lag_samples",
        "verify_ahead",
        "touched",
        "progress",
        "cutover",
        "replica_identity",
        "source_objects",
        "created_roles",
        "objects",
    ];

    /// Words that make a string literal SQL (upper case, as pgmove writes its SQL).
    const SQL_WORDS: &[&str] = &[
        "SELECT",
        "INSERT",
        "UPDATE",
        "DELETE",
        "TRUNCATE",
        "CREATE",
        "ALTER",
        "DROP",
        "FROM",
        "INTO",
        "JOIN",
        "to_regclass",
    ];

    /// The string literals of Rust source `src` (plain, byte and raw strings), with the line
    /// each starts on; comments and char literals are skipped.
    fn literals(src: &str) -> Vec<(usize, String)> {
        let b = src.as_bytes();
        let (mut i, mut line, mut out) = (0, 1, Vec::new());
        while i < b.len() {
            match b[i] {
                b'\n' => {
                    line += 1;
                    i += 1;
                }
                b'/' if b.get(i + 1) == Some(&b'/') => {
                    while i < b.len() && b[i] != b'\n' {
                        i += 1;
                    }
                }
                b'/' if b.get(i + 1) == Some(&b'*') => {
                    i += 2;
                    while i < b.len() && !(b[i] == b'*' && b.get(i + 1) == Some(&b'/')) {
                        line += usize::from(b[i] == b'\n');
                        i += 1;
                    }
                    i += 2;
                }
                // A char literal ('"', '\'', 'x') or a lifetime ('a).
                b'\'' => {
                    if b.get(i + 1) == Some(&b'\\') {
                        i += 2;
                        while i < b.len() && b[i] != b'\'' {
                            i += 1;
                        }
                        i += 1;
                    } else if b.get(i + 2) == Some(&b'\'') {
                        i += 3;
                    } else {
                        i += 1;
                    }
                }
                b'r' if (b.get(i + 1) == Some(&b'"') || b.get(i + 1) == Some(&b'#'))
                    && (i == 0 || !(b[i - 1].is_ascii_alphanumeric() || b[i - 1] == b'_')) =>
                {
                    let mut j = i + 1;
                    let mut hashes = 0;
                    while b.get(j) == Some(&b'#') {
                        hashes += 1;
                        j += 1;
                    }
                    if b.get(j) != Some(&b'"') {
                        i += 1;
                        continue;
                    }
                    let close = format!("\"{}", "#".repeat(hashes));
                    let start = j + 1;
                    let end = src[start..].find(&close).map_or(b.len(), |k| start + k);
                    out.push((line, src[start..end].to_string()));
                    line += src[start..end].matches('\n').count();
                    i = end + close.len();
                }
                b'"' => {
                    let start = i + 1;
                    let mut j = start;
                    while j < b.len() && b[j] != b'"' {
                        j += if b[j] == b'\\' { 2 } else { 1 };
                    }
                    let end = j.min(b.len());
                    out.push((line, src[start..end].to_string()));
                    line += src[start..end].matches('\n').count();
                    i = end + 1;
                }
                _ => i += 1,
            }
        }
        out
    }

    /// The state tables `text` names as `pgmove.<table>`: the table name whole, not followed
    /// by a dot (`pgmove.cutover.<plan>` and `pgmove.ddl.` are logical message prefixes,
    /// `pgmove.ddl_saved_role` a setting).
    fn tables_named(text: &str) -> Vec<&'static str> {
        let mut out = Vec::new();
        for (at, _) in text.match_indices("pgmove.") {
            let rest = &text[at + "pgmove.".len()..];
            let word: String = rest
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                .collect();
            let after = rest[word.len()..].chars().next();
            if let Some(t) = TABLES.iter().find(|t| **t == word) {
                if after != Some('.') {
                    out.push(*t);
                }
            }
        }
        out
    }

    fn files(dir: &Path, out: &mut Vec<PathBuf>) {
        for e in std::fs::read_dir(dir).expect("read src/") {
            let p = e.expect("dir entry").path();
            if p.is_dir() {
                files(&p, out);
            } else if matches!(p.extension().and_then(|x| x.to_str()), Some("rs" | "sql")) {
                out.push(p);
            }
        }
    }

    /// The rule, checked on every `.rs` and `.sql` file under `src/` outside `src/state/`: a
    /// `.sql` file names no state table; in Rust, no string literal that is SQL (holds one of
    /// [`SQL_WORDS`]) names one. Messages and comments may name tables ("reading
    /// pgmove.progress").
    #[test]
    fn no_state_sql_outside_state() {
        let root = Path::new(env!("CARGO_MANIFEST_DIR"));
        let mut all = Vec::new();
        files(&root.join("src"), &mut all);
        let state_dir = root.join("src").join("state");
        let mut hits = Vec::new();
        for f in all.iter().filter(|f| !f.starts_with(&state_dir)) {
            let text = std::fs::read_to_string(f).expect("read source");
            let shown = f.strip_prefix(root).unwrap_or(f).display().to_string();
            if f.extension().and_then(|x| x.to_str()) == Some("sql") {
                for (n, l) in text.lines().enumerate() {
                    for t in tables_named(l) {
                        hits.push(format!("{shown}:{}: pgmove.{t}", n + 1));
                    }
                }
                continue;
            }
            for (line, lit) in literals(&text) {
                if !SQL_WORDS.iter().any(|w| lit.contains(w)) {
                    continue;
                }
                for t in tables_named(&lit) {
                    hits.push(format!("{shown}:{line}: pgmove.{t} in SQL"));
                }
            }
        }
        assert!(
            hits.is_empty(),
            "SQL naming the pgmove schema's tables outside src/state/ (call a function of crate::state instead):\n{}",
            hits.join("\n")
        );
    }

    #[test]
    fn the_scan_finds_sql_in_every_kind_of_literal_and_skips_the_rest() {
        let src = r####"
// "SELECT * FROM pgmove.runs" in a comment
/* "SELECT * FROM pgmove.runs" */
const A: &str = "SELECT 1 FROM pgmove.steps";
const B: &str = r#"DELETE FROM pgmove.progress"#;
const C: char = '"';
const D: &str = "reading pgmove.progress";
const E: &str = "SELECT pg_logical_emit_message(true, 'pgmove.cutover.x', '')";
const F: &str = "a \" SELECT FROM pgmove.cutover";
"####;
        let found: Vec<(usize, Vec<&str>)> = literals(src)
            .into_iter()
            .filter(|(_, l)| SQL_WORDS.iter().any(|w| l.contains(w)))
            .map(|(n, l)| (n, tables_named(&l)))
            .filter(|(_, t)| !t.is_empty())
            .collect();
        assert_eq!(
            found,
            vec![
                (4, vec!["steps"]),
                (5, vec!["progress"]),
                (9, vec!["cutover"])
            ]
        );
    }
}
