//! Steps `provider` (on the source: the extension when missing, the provider node, the paired
//! sets and their members) and `subscription` (on the target: the extension when missing, the
//! subscriber node and the subscription). Each object is claimed before (its record committed
//! `intended` on the target, refused when an object of its name exists that is not this
//! plan's: see [`crate::owned`]) and marked `created` after. The nodes, sets and the
//! subscription are created in one transaction per server, so a kill leaves all of them or
//! none. The sets' members are then added one per transaction, in the plan's fixed order
//! (`replication_set_add_table` takes a SHARE ROW EXCLUSIVE lock on its table: all in one
//! transaction, they deadlock with a writer whose transactions change several tables); a
//! deadlock still chosen to end one of them is retried. A rerun finds what exists (the
//! objects by their records, the members in pglogical's catalog) and creates only what is
//! missing.

use std::collections::HashSet;
use std::time::Duration;

use tokio_postgres::error::SqlState;

use super::members::Members;
use super::{Job, PglogicalError};
use crate::owned;
use crate::pg::{Endpoint, PgError, Secret};
use crate::pglogical::{calls, catalog, EXTENSION};
use crate::state::State;

/// What exists already on one server (nothing, on a first run).
#[derive(Clone, Debug, Default)]
pub struct Existing {
    pub extension: bool,
    pub node: bool,
    /// The update set and the insert set (source).
    pub sets: [bool; 2],
    /// The subscription (target).
    pub subscription: bool,
    /// Memberships: (set, schema, relation).
    pub tables: HashSet<(String, String, String)>,
    pub sequences: HashSet<(String, String, String)>,
}

/// The provider's statements, in order, for what does not exist yet: the objects
/// ([`provider_objects_sql`], one transaction), then the members ([`provider_members_sql`],
/// one transaction each).
pub fn provider_sql(job: &Job, m: &Members, have: &Existing) -> Vec<String> {
    let mut out = provider_objects_sql(job, have);
    out.extend(provider_members_sql(job, m, have));
    out
}

/// The extension, the provider node and the two sets, for what does not exist yet. The
/// provider node's DSN is stored without a password (the subscriber connects with the
/// subscription's DSN).
pub fn provider_objects_sql(job: &Job, have: &Existing) -> Vec<String> {
    let n = &job.names;
    let mut out = Vec::new();
    if !have.extension {
        out.push(calls::CREATE_EXTENSION.to_string());
    }
    if !have.node {
        out.push(calls::create_node(
            &n.provider_node,
            &job.provider_dsn.without_password(),
        ));
    }
    if !have.sets[0] {
        out.push(calls::create_set(
            &n.replication_set,
            calls::UPDATE_SET_FLAGS,
        ));
    }
    if !have.sets[1] {
        out.push(calls::create_set(&n.insert_set, calls::INSERT_SET_FLAGS));
    }
    out
}

/// The sets' members not in them yet, in the plan's order: each table in both sets or in the
/// insert set only, then the sequences in the update set.
pub fn provider_members_sql(job: &Job, m: &Members, have: &Existing) -> Vec<String> {
    let n = &job.names;
    let mut out = Vec::new();
    let mut add = |set: &str, t: &crate::inspect::RelName| {
        if !have
            .tables
            .contains(&(set.to_string(), t.schema.clone(), t.name.clone()))
        {
            out.push(calls::add_table(set, &t.schema, &t.name));
        }
    };
    for t in &m.both {
        add(&n.replication_set, t);
        add(&n.insert_set, t);
    }
    for t in &m.insert_only {
        add(&n.insert_set, t);
    }
    for s in &m.sequences {
        if !have
            .sequences
            .contains(&(n.replication_set.clone(), s.schema.clone(), s.name.clone()))
        {
            out.push(calls::add_sequence(&n.replication_set, &s.schema, &s.name));
        }
    }
    out
}

/// The subscriber's statements, in order, for what does not exist yet; `show`: with the
/// passwords as `********` (for the dry run) instead of the real ones.
pub fn subscriber_sql(job: &Job, have: &Existing, show: bool) -> Vec<String> {
    let n = &job.names;
    let dsn = |c: &crate::pglogical::dsn::Conninfo| if show { c.redacted() } else { c.expose() };
    let mut out = Vec::new();
    if !have.extension {
        out.push(calls::CREATE_EXTENSION.to_string());
    }
    if !have.node {
        out.push(calls::create_node(
            &n.subscriber_node,
            &dsn(&job.subscriber_dsn),
        ));
    }
    if !have.subscription {
        out.push(calls::create_subscription(
            &n.subscription,
            &dsn(&job.provider_dsn),
            &[n.replication_set.clone(), n.insert_set.clone()],
        ));
    }
    out
}

/// Whether pgmove creates the extension on `on` (it is missing: claimed now), or it exists
/// (pgmove's own when recorded: its record then says `created`).
async fn claim_extension(
    st: &State<'_>,
    on: &Endpoint,
    c: &tokio_postgres::Client,
    kind: &'static str,
) -> Result<bool, PgError> {
    if catalog::extension_version(c, on).await?.is_some() {
        if let Some(owned::Verdict::Ours) = owned::whose(st, on, kind, EXTENSION).await? {
            owned::created(st, kind, EXTENSION).await?;
        }
        return Ok(true);
    }
    owned::claim(st, on, kind, EXTENSION).await?;
    Ok(false)
}

/// Refuses a local node of another name: pglogical allows one node per database, and pgmove
/// neither uses nor drops a node it did not create.
async fn check_local_node(
    c: &tokio_postgres::Client,
    on: &Endpoint,
    ours: &str,
) -> Result<(), PglogicalError> {
    match catalog::local_node(c, on).await? {
        Some(n) if n.name != ours => Err(PglogicalError::Refused(format!(
            "{}: this database already has pglogical node {:?} (pglogical allows one node per database), and pgmove uses only the node it creates ({ours:?}).\n  hint: if that node is left over and not in use: SELECT pglogical.drop_node({}); otherwise move from (or to) another database",
            on.side,
            n.name,
            crate::pg::quote::literal(&n.name)
        ))),
        _ => Ok(()),
    }
}

/// How often a statement the server ended to break a deadlock (SQLSTATE 40P01) is run, in
/// all, and the wait before the second run (doubled before each next one: 0.2 s to 3.2 s,
/// about 6 s in all).
const DEADLOCK_RUNS: u32 = 6;
const DEADLOCK_FIRST_WAIT: Duration = Duration::from_millis(200);

/// The error of `what` failing on `on`, with `hint` and `secrets` taken out.
fn setup_error(
    on: &Endpoint,
    what: &str,
    e: &tokio_postgres::Error,
    hint: &str,
    secrets: &[Option<&Secret>],
) -> PglogicalError {
    let mut message = format!("{}\n  hint: {hint}", on.query_error(what, e));
    for s in secrets.iter().flatten() {
        message = crate::pg::redact(&message, Some(s));
    }
    PglogicalError::Setup(message)
}

/// The hint of a provider statement's error: the role's privileges only when the server
/// refused them (SQLSTATE 42501), a deadlock as such.
fn provider_hint(e: &tokio_postgres::Error) -> String {
    match e.code() {
        Some(&SqlState::INSUFFICIENT_PRIVILEGE) => "the source role needs to be a superuser, or on a managed service the role that may create the pglogical extension and own the tables; then run pgmove apply again (it resumes)".to_string(),
        Some(&SqlState::T_R_DEADLOCK_DETECTED) => format!("adding a table to a set takes a SHARE ROW EXCLUSIVE lock on it, and the source's own transactions kept deadlocking with it ({DEADLOCK_RUNS} runs); run pgmove apply again (it resumes with the tables not added yet), at a quieter time if it happens again"),
        _ => "fix the cause, then run pgmove apply again (it resumes); pgmove cleanup removes what apply created".to_string(),
    }
}

/// Runs `statements` in one transaction on `on`; errors have `secrets` taken out.
async fn run_in_transaction(
    c: &tokio_postgres::Client,
    on: &Endpoint,
    statements: &[String],
    what: &str,
    hint: &dyn Fn(&tokio_postgres::Error) -> String,
    secrets: &[Option<&Secret>],
) -> Result<(), PglogicalError> {
    if statements.is_empty() {
        return Ok(());
    }
    let sql = format!("BEGIN;\n{}\nCOMMIT;", statements.join("\n"));
    if let Err(e) = c.batch_execute(&sql).await {
        let _ = c.batch_execute("ROLLBACK").await;
        return Err(setup_error(on, what, &e, &hint(&e), secrets));
    }
    Ok(())
}

/// Runs each of `statements` in its own transaction on `on`, in order; one the server ends to
/// break a deadlock runs again after a wait, [`DEADLOCK_RUNS`] times in all. Errors have
/// `secrets` taken out.
async fn run_each(
    c: &tokio_postgres::Client,
    on: &Endpoint,
    statements: &[String],
    what: &str,
    secrets: &[Option<&Secret>],
) -> Result<(), PglogicalError> {
    for (i, sql) in statements.iter().enumerate() {
        let mut wait = DEADLOCK_FIRST_WAIT;
        let mut runs = 1;
        loop {
            match c.batch_execute(sql).await {
                Ok(()) => break,
                Err(e)
                    if e.code() == Some(&SqlState::T_R_DEADLOCK_DETECTED)
                        && runs < DEADLOCK_RUNS =>
                {
                    runs += 1;
                    tokio::time::sleep(wait).await;
                    wait *= 2;
                }
                Err(e) => {
                    let what = format!("{what} ({sql})");
                    return Err(setup_error(on, &what, &e, &provider_hint(&e), secrets));
                }
            }
        }
        if i == 0 {
            crate::testhook::pause("pglogical-provider-member").await;
        }
    }
    Ok(())
}

/// Step `provider`.
pub async fn ensure_provider(job: &Job, st: &State<'_>, m: &Members) -> Result<(), PglogicalError> {
    let source = &job.base.source;
    let n = &job.names;
    let c = source.connect().await?;
    let mut have = Existing {
        extension: claim_extension(st, source, &c, owned::PGLOGICAL_EXTENSION_SOURCE).await?,
        ..Existing::default()
    };
    if have.extension {
        check_local_node(&c, source, &n.provider_node).await?;
    }
    have.node = owned::claim(st, source, owned::PGLOGICAL_PROVIDER_NODE, &n.provider_node).await?;
    have.sets[0] = owned::claim(st, source, owned::PGLOGICAL_SET, &n.replication_set).await?;
    have.sets[1] = owned::claim(st, source, owned::PGLOGICAL_SET, &n.insert_set).await?;
    let sets = [n.replication_set.clone(), n.insert_set.clone()];
    have.tables = catalog::set_tables(&c, source, &sets)
        .await?
        .into_iter()
        .collect();
    have.sequences = catalog::set_sequences(&c, source, &sets)
        .await?
        .into_iter()
        .collect();
    crate::testhook::pause("pglogical-provider-recorded").await;
    run_in_transaction(
        &c,
        source,
        &provider_objects_sql(job, &have),
        "creating the provider node and the replication sets",
        &provider_hint,
        &[job.provider_dsn.secret()],
    )
    .await?;
    if !have.extension {
        owned::created(st, owned::PGLOGICAL_EXTENSION_SOURCE, EXTENSION).await?;
    }
    owned::created(st, owned::PGLOGICAL_PROVIDER_NODE, &n.provider_node).await?;
    for set in &sets {
        owned::created(st, owned::PGLOGICAL_SET, set).await?;
    }
    run_each(
        &c,
        source,
        &provider_members_sql(job, m, &have),
        "adding a table or sequence to the replication sets",
        &[job.provider_dsn.secret()],
    )
    .await
}

/// Step `subscription`.
pub async fn ensure_subscription(job: &Job, st: &State<'_>) -> Result<(), PglogicalError> {
    let target = &job.base.target;
    let n = &job.names;
    let c = target.connect().await?;
    let mut have = Existing {
        extension: claim_extension(st, target, &c, owned::PGLOGICAL_EXTENSION_TARGET).await?,
        ..Existing::default()
    };
    if have.extension {
        check_local_node(&c, target, &n.subscriber_node).await?;
    }
    have.node = owned::claim(
        st,
        target,
        owned::PGLOGICAL_SUBSCRIBER_NODE,
        &n.subscriber_node,
    )
    .await?;
    have.subscription =
        owned::claim(st, target, owned::PGLOGICAL_SUBSCRIPTION, &n.subscription).await?;
    let statements = subscriber_sql(job, &have, false);
    crate::testhook::pause("pglogical-subscription-recorded").await;
    run_in_transaction(
        &c,
        target,
        &statements,
        "creating the subscriber node and the subscription",
        &|_| "the target server must reach the source with the provider DSN (pglogical.provider_dsn in the plan, or source.dsn); then run pgmove apply again (it resumes)".to_string(),
        &[job.provider_dsn.secret(), job.subscriber_dsn.secret()],
    )
    .await?;
    if !have.extension {
        owned::created(st, owned::PGLOGICAL_EXTENSION_TARGET, EXTENSION).await?;
    }
    owned::created(st, owned::PGLOGICAL_SUBSCRIBER_NODE, &n.subscriber_node).await?;
    owned::created(st, owned::PGLOGICAL_SUBSCRIPTION, &n.subscription).await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::inspect::RelName;
    use crate::pg::Side;
    use crate::pglogical::dsn::Conninfo;
    use crate::plan::names::pglogical_names;

    fn endpoint(side: Side, dsn: &str, password: &str) -> Endpoint {
        Endpoint::from_dsn(side, dsn, Some(Secret::new(password)), &|_| None).expect("dsn")
    }

    fn job() -> Job {
        let source = endpoint(
            Side::Source,
            "postgres://app@src.example/shop",
            "src-secret",
        );
        let target = endpoint(
            Side::Target,
            "postgres://app@dst.example/shop",
            "dst-secret",
        );
        let base = crate::strategy::dump_restore::Job {
            plan_name: "p".into(),
            source: source.clone(),
            target: target.clone(),
            schemas: Vec::new(),
            exclude: Vec::new(),
            large_objects: true,
            no_owner: false,
            no_acl: false,
            jobs: 1,
            index_jobs: 1,
            bin_dir: None,
            schema_only: true,
            dump_dir: None,
        };
        Job {
            names: pglogical_names("p", None),
            provider_dsn: Conninfo::of(&source.info, None),
            subscriber_dsn: Conninfo::of(&target.info, None),
            objects: crate::plan::Objects::default(),
            tables_without_key: crate::plan::TablesWithoutKey::InsertOnly,
            base,
        }
    }

    #[test]
    fn a_rerun_creates_only_what_is_missing() {
        let j = job();
        let m = Members {
            both: vec![RelName::new("public", "a")],
            insert_only: vec![RelName::new("public", "k")],
            sequences: vec![RelName::new("public", "s")],
            ..Members::default()
        };
        let first = provider_sql(&j, &m, &Existing::default());
        assert_eq!(first.len(), 1 + 1 + 2 + 3 + 1, "{first:#?}");
        assert!(first[1].contains("create_node(node_name := 'pgmove_p_provider'"));
        // The provider node's DSN carries no password.
        assert!(!first[1].contains("password"), "{}", first[1]);
        let have = Existing {
            extension: true,
            node: true,
            sets: [true, true],
            subscription: false,
            tables: [("pgmove_p", "a"), ("ipgmove_p", "a")]
                .iter()
                .map(|(s, t)| (s.to_string(), "public".to_string(), t.to_string()))
                .collect(),
            sequences: Default::default(),
        };
        assert_eq!(
            provider_sql(&j, &m, &have),
            [
                "SELECT pglogical.replication_set_add_table(set_name := 'ipgmove_p', relation := '\"public\".\"k\"'::regclass, synchronize_data := false);",
                "SELECT pglogical.replication_set_add_sequence(set_name := 'pgmove_p', relation := '\"public\".\"s\"'::regclass, synchronize_data := false);",
            ]
        );
    }

    #[test]
    fn the_subscriber_statements_show_no_password_and_run_with_it() {
        let j = job();
        let shown = subscriber_sql(&j, &Existing::default(), true).join("\n");
        assert!(!shown.contains("secret"), "{shown}");
        assert!(shown.contains("password=''********''"), "{shown}");
        let run = subscriber_sql(&j, &Existing::default(), false).join("\n");
        assert!(run.contains("password=''src-secret''"), "{run}");
        assert!(run.contains("password=''dst-secret''"), "{run}");
        let done = Existing {
            extension: true,
            node: true,
            subscription: true,
            ..Existing::default()
        };
        assert!(subscriber_sql(&j, &done, false).is_empty());
    }
}
