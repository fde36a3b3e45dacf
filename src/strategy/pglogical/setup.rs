//! Steps `provider` (on the source: the extension when missing, the provider node, the paired
//! sets and their members) and `subscription` (on the target: the extension when missing, the
//! subscriber node and the subscription). Each object is claimed before (its record committed
//! `intended` on the target, refused when an object of its name exists that is not this
//! plan's: see [`crate::owned`]) and marked `created` after; each server's objects are
//! created in one transaction, so a kill leaves all of them or none, and a rerun finds its
//! own and creates only what is missing.

use std::collections::HashSet;

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
    /// The update set and the insert set (source), or the subscription (target, first).
    pub objects: [bool; 2],
    /// Memberships: (set, schema, relation).
    pub tables: HashSet<(String, String, String)>,
    pub sequences: HashSet<(String, String, String)>,
}

/// The provider's statements, in order, for what does not exist yet. `dsn`: the provider
/// node's (pgmove stores it without a password: pglogical's subscriber connects with the
/// subscription's DSN).
pub fn provider_sql(job: &Job, m: &Members, have: &Existing) -> Vec<String> {
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
    if !have.objects[0] {
        out.push(calls::create_set(
            &n.replication_set,
            calls::UPDATE_SET_FLAGS,
        ));
    }
    if !have.objects[1] {
        out.push(calls::create_set(&n.insert_set, calls::INSERT_SET_FLAGS));
    }
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
    if !have.objects[0] {
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

/// Runs `statements` in one transaction on `on`; errors have `secrets` taken out.
async fn run_in_transaction(
    c: &tokio_postgres::Client,
    on: &Endpoint,
    statements: &[String],
    what: &str,
    secrets: &[Option<&Secret>],
) -> Result<(), PglogicalError> {
    if statements.is_empty() {
        return Ok(());
    }
    let sql = format!("BEGIN;\n{}\nCOMMIT;", statements.join("\n"));
    if let Err(e) = c.batch_execute(&sql).await {
        let _ = c.batch_execute("ROLLBACK").await;
        let mut message = on.query_error(what, &e).to_string();
        for s in secrets.iter().flatten() {
            message = crate::pg::redact(&message, Some(s));
        }
        return Err(PglogicalError::Setup(message));
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
    have.objects[0] = owned::claim(st, source, owned::PGLOGICAL_SET, &n.replication_set).await?;
    have.objects[1] = owned::claim(st, source, owned::PGLOGICAL_SET, &n.insert_set).await?;
    let sets = [n.replication_set.clone(), n.insert_set.clone()];
    have.tables = catalog::set_tables(&c, source, &sets)
        .await?
        .into_iter()
        .collect();
    have.sequences = catalog::set_sequences(&c, source, &sets)
        .await?
        .into_iter()
        .collect();
    let statements = provider_sql(job, m, &have);
    crate::testhook::pause("pglogical-provider-recorded").await;
    run_in_transaction(
        &c,
        source,
        &statements,
        "creating the provider node and the replication sets (the source role needs to be a superuser, or on a managed service the role that may create the pglogical extension and own the tables)",
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
    Ok(())
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
    have.objects[0] =
        owned::claim(st, target, owned::PGLOGICAL_SUBSCRIPTION, &n.subscription).await?;
    let statements = subscriber_sql(job, &have, false);
    crate::testhook::pause("pglogical-subscription-recorded").await;
    run_in_transaction(
        &c,
        target,
        &statements,
        "creating the subscriber node and the subscription (the target server must reach the source with the provider DSN: pglogical.provider_dsn in the plan)",
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
