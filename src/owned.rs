//! What copy-cdc creates on the source outside its `pgmove` schema (the replication slot, its
//! resume slot, the publication and its insert-only companion) and how pgmove proves, later,
//! that an object with such a name is its own: a row in the target's `pgmove.source_objects`.
//!
//! # The record
//!
//! Before creating one of these objects, apply commits a row (plan, kind, name, the source it
//! is on: endpoint, database, system identifier when readable) with state `intended`; after
//! the create it sets `created`. Cleanup drops only recorded objects (a recorded one that is
//! absent is fine: nothing to drop); an object with the name but no record is reported as kept
//! with the fix, and dropped only with `pgmove cleanup --adopt-unrecorded` (migrations started
//! by a pgmove release without this record). Apply refuses to start (a blocker of `plan` and
//! `apply`, exit 2) while an object with one of these names exists that is not recorded.
//!
//! # Why an `intended` row is enough after a crash
//!
//! The row is written only while no unrecorded object of that name exists on the source (apply
//! checks before writing it, and refuses otherwise). So while the row exists, an object of that
//! name that appears was created after the row was committed: by this plan's apply, which was
//! killed between its create and the `created` update. Someone else creating an object with
//! exactly pgmove's name in that window is the only gap; for publications a second proof closes
//! it: pgmove creates each publication with a COMMENT naming the plan ([`comment`]) in the same
//! transaction, so an `intended` publication without that comment is not pgmove's. A slot has
//! no comment: an `intended` slot is pgmove's when it is a logical `pgoutput` slot in the
//! recorded database.
//!
//! A record of another source (another database, or another system identifier when both are
//! known) proves nothing about this source's object of the same name.
//!
//! # pglogical's objects
//!
//! Strategy pglogical records its objects in the same table, on both servers: on the source
//! the provider node and the two sets, on the target the subscriber node and the
//! subscription (the record lives beside them), and on either the `pglogical` extension when
//! pgmove created it (an extension that was there before is used and never recorded, so never
//! dropped). A record's "source" columns then name the server the object is on; the kinds
//! ([`PGLOGICAL_PROVIDER_NODE`], ...) say which server that is. An object with a record
//! still `intended` is pgmove's when it is of the recorded database ([`Found::Pglogical`]):
//! nodes, sets and subscriptions carry no comment, so the rule above (no unrecorded object of
//! that name existed when the row was written) is the proof; each is created in one
//! transaction with the others of its server, right after the rows are committed.

use tokio_postgres::Client;

use crate::pg::{quote, Endpoint, PgError, Side};
use crate::preflight::{Finding, Severity};
use crate::state;

/// The record's table, in the target's (marked) `pgmove` schema.
pub const TABLE: &str = state::owned::TABLE;

/// Kinds of [`TABLE`] rows.
pub const SLOT: &str = "replication slot";
pub const PUBLICATION: &str = "publication";

/// Kinds of the strategy pglogical's objects. On the source:
pub const PGLOGICAL_PROVIDER_NODE: &str = "pglogical provider node";
pub const PGLOGICAL_SET: &str = "pglogical replication set";
/// The `pglogical` extension, when pgmove created it (on the source / on the target).
pub const PGLOGICAL_EXTENSION_SOURCE: &str = "pglogical extension on the source";
pub const PGLOGICAL_EXTENSION_TARGET: &str = "pglogical extension on the target";
/// On the target (recorded in the same table, which lives beside them):
pub const PGLOGICAL_SUBSCRIBER_NODE: &str = "pglogical subscriber node";
pub const PGLOGICAL_SUBSCRIPTION: &str = "pglogical subscription";

/// The state of a [`TABLE`] row once the object exists (before: `intended`).
const CREATED: &str = state::owned::CREATED;

/// The source's database (one row, one text column).
const DATABASE_SQL: &str = "SELECT current_database()::text";

/// The source's system identifier as text (one row); refused to roles without the right to
/// `pg_control_system()`, which is then recorded as unknown.
const SYSTEM_ID_SQL: &str = "SELECT system_identifier::text FROM pg_catalog.pg_control_system()";

/// Slots named `$1` (any database): name, plugin, database (NULL for a physical slot).
const SLOTS_SQL: &str = "SELECT slot_name::text, plugin::text, database::text \
     FROM pg_catalog.pg_replication_slots WHERE slot_name = ANY($1::text[]) ORDER BY 1";

/// Publications named `$1` of this database: name and comment.
const PUBLICATIONS_SQL: &str = "SELECT pubname::text, \
       pg_catalog.obj_description(oid, 'pg_publication') \
     FROM pg_catalog.pg_publication WHERE pubname = ANY($1::text[]) ORDER BY 1";

/// The comment pgmove gives each publication it creates, in the creating transaction.
pub fn comment(plan_name: &str) -> String {
    format!("created by pgmove for plan {plan_name}; dropped by pgmove cleanup")
}

/// `COMMENT ON PUBLICATION` for [`comment`], ending with `;` and a newline.
pub fn comment_sql(publication: &str, plan_name: &str) -> String {
    format!(
        "COMMENT ON PUBLICATION {} IS {};\n",
        quote::ident(publication),
        quote::literal(&comment(plan_name))
    )
}

/// Which source an object is on.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Source {
    pub database: String,
    pub system_id: Option<String>,
}

/// One record row.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Record {
    pub kind: String,
    pub name: String,
    pub source: Source,
    pub created: bool,
}

/// An object of one of the plan's names found on the source.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Found {
    /// A slot: its plugin and database (None: physical).
    Slot {
        plugin: Option<String>,
        database: Option<String>,
    },
    /// A publication of the source database, with its comment.
    Publication { comment: Option<String> },
    /// A pglogical node, replication set or subscription of this database, or the extension.
    Pglogical,
}

/// Whose an object found on the source is.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// This plan's: recorded, and (if only `intended`) the second proof holds.
    Ours,
    /// Not recorded by this plan for this source: not pgmove's to use nor to drop; why.
    NotRecorded(String),
}

/// Whether `found` (kind `kind`) on source `here` is this plan's, given the plan's record of it
/// (see the module documentation for the rule).
pub fn judge(plan_name: &str, record: Option<&Record>, here: &Source, found: &Found) -> Verdict {
    let Some(r) = record else {
        return Verdict::NotRecorded(
            "pgmove did not record creating it (no row in the target's pgmove.source_objects)"
                .into(),
        );
    };
    let other_system =
        matches!((&r.source.system_id, &here.system_id), (Some(a), Some(b)) if a != b);
    if r.source.database != here.database || other_system {
        return Verdict::NotRecorded(format!(
            "pgmove recorded creating an object of this name on another source (database {}{})",
            r.source.database,
            r.source
                .system_id
                .as_deref()
                .map(|s| format!(", system identifier {s}"))
                .unwrap_or_default()
        ));
    }
    if r.created {
        return Verdict::Ours;
    }
    // Recorded as intended only: a kill came between the record and its `created` update.
    match found {
        Found::Publication { comment: c } if c.as_deref() == Some(comment(plan_name).as_str()) => {
            Verdict::Ours
        }
        Found::Publication { .. } => Verdict::NotRecorded(
            "pgmove recorded the intent to create it, but it does not carry pgmove's comment naming the plan, so someone else created it".into(),
        ),
        Found::Slot { plugin, database }
            if plugin.as_deref() == Some("pgoutput") && database.as_ref() == Some(&here.database) =>
        {
            Verdict::Ours
        }
        Found::Slot { .. } => Verdict::NotRecorded(
            "pgmove recorded the intent to create it, but it is not a pgoutput slot of this database, so someone else created it".into(),
        ),
        // Of the recorded database (checked above): see the module documentation.
        Found::Pglogical => Verdict::Ours,
    }
}

/// The source's database and (when readable) system identifier.
pub async fn source_of(c: &Client, ep: &Endpoint) -> Result<Source, PgError> {
    let database: String = c
        .query_one(DATABASE_SQL, &[])
        .await
        .map_err(|e| ep.query_error("reading the source's database name", &e))?
        .get(0);
    // Not readable without the right to pg_control_system(): recorded as unknown.
    let system_id = c
        .query_one(SYSTEM_ID_SQL, &[])
        .await
        .ok()
        .and_then(|r| r.get::<_, Option<String>>(0));
    Ok(Source {
        database,
        system_id,
    })
}

/// The plan's records on the target (none when the target has no pgmove-made `pgmove` schema,
/// or a state schema of a release without the record).
pub async fn records(c: &Client, ep: &Endpoint, plan_name: &str) -> Result<Vec<Record>, PgError> {
    if state::owner(c, ep).await? != state::Owner::Pgmove || !state::has_table(c, ep, TABLE).await?
    {
        return Ok(Vec::new());
    }
    let rows = state::owned::records(c, ep, plan_name).await?;
    Ok(rows
        .into_iter()
        .map(|r| Record {
            created: r.state == CREATED,
            kind: r.kind,
            name: r.name,
            source: Source {
                database: r.source_database,
                system_id: r.source_system_id,
            },
        })
        .collect())
}

/// The objects named `slots` and `publications` that exist on the source: (kind, name, found).
pub async fn find(
    c: &Client,
    ep: &Endpoint,
    slots: &[String],
    publications: &[String],
) -> Result<Vec<(&'static str, String, Found)>, PgError> {
    let mut out = Vec::new();
    for r in c
        .query(SLOTS_SQL, &[&slots])
        .await
        .map_err(|e| ep.query_error("reading pg_replication_slots", &e))?
    {
        out.push((
            SLOT,
            r.get(0),
            Found::Slot {
                plugin: r.get(1),
                database: r.get(2),
            },
        ));
    }
    for r in c
        .query(PUBLICATIONS_SQL, &[&publications])
        .await
        .map_err(|e| ep.query_error("reading pg_publication", &e))?
    {
        out.push((
            PUBLICATION,
            r.get(0),
            Found::Publication { comment: r.get(1) },
        ));
    }
    Ok(out)
}

/// The record of (`kind`, `name`) among `records`.
pub fn record_of<'r>(records: &'r [Record], kind: &str, name: &str) -> Option<&'r Record> {
    records.iter().find(|r| r.kind == kind && r.name == name)
}

/// The exact fix for an object of pgmove's name that is not pgmove's.
pub fn fix(kind: &str, name: &str, plan_file: &str) -> String {
    format!(
        "{} If an earlier pgmove release created it for this plan (a migration started before pgmove recorded what it creates): \
         pgmove cleanup {plan_file} --adopt-unrecorded drops it, then apply starts over",
        keep_or_drop(kind, name)
    )
}

/// How to keep a user's object of pgmove's name out of pgmove's way, or drop it.
pub fn keep_or_drop(kind: &str, name: &str) -> String {
    let drop = if kind == SLOT {
        format!("SELECT pg_drop_replication_slot({});", quote::literal(name))
    } else {
        format!("DROP PUBLICATION {};", quote::ident(name))
    };
    let rename = if kind == SLOT {
        "set cdc.slot in the plan to another name;".to_string()
    } else {
        format!(
            "ALTER PUBLICATION {} RENAME TO {};",
            quote::ident(name),
            quote::ident(&format!("{name}_user"))
        )
    };
    format!(
        "If it is yours, keep it and {rename} (or give the plan another name). If you do not need it, on the source: {drop}"
    )
}

/// Blockers for `plan`/`apply` of copy-cdc: objects with the plan's slot or publication names
/// that exist on the source and are not this plan's ([`judge`]).
pub async fn preflight(
    plan: &crate::plan::Plan,
    source: &Endpoint,
    target: &Endpoint,
) -> Result<Vec<Finding>, PgError> {
    let slot = plan.slot_name();
    let slots = vec![slot.clone(), crate::plan::resume_slot_name(&slot)];
    let publication = plan.publication_name();
    let publications = vec![
        publication.clone(),
        crate::plan::insert_only_publication_name(&publication),
    ];
    let s = source.connect().await?;
    let found = find(&s, source, &slots, &publications).await?;
    if found.is_empty() {
        return Ok(Vec::new());
    }
    let here = source_of(&s, source).await?;
    let t = target.connect().await?;
    let recs = records(&t, target, &plan.name).await?;
    let mut out = Vec::new();
    for (kind, name, f) in found {
        if let Verdict::NotRecorded(why) =
            judge(&plan.name, record_of(&recs, kind, &name), &here, &f)
        {
            out.push(Finding {
                severity: Severity::Blocker,
                check: "owned-names",
                side: Some(Side::Source),
                object: Some(format!("{kind} {name}")),
                message: format!(
                    "the source has a {kind} named {name}, the name pgmove gives this plan's {kind}, and it is not pgmove's: {why}; pgmove neither uses nor drops it"
                ),
                fix: Some(fix(kind, &name, &plan.file)),
            });
        }
    }
    Ok(out)
}

/// Why apply will not create (or use) an object: it exists and is not this plan's.
fn refusal(on: &Endpoint, kind: &str, name: &str, why: &str) -> PgError {
    let fix = if is_pglogical(kind) {
        pglogical_fix(kind, name)
    } else {
        "run pgmove plan for the fix".to_string()
    };
    PgError::Query {
        side: on.side,
        message: format!(
            "the {} has a {kind} named {name} that is not pgmove's ({why}); pgmove neither uses nor drops it; {fix}",
            on.side
        ),
    }
}

/// Whether `kind` is one of strategy pglogical's.
pub fn is_pglogical(kind: &str) -> bool {
    matches!(
        kind,
        PGLOGICAL_PROVIDER_NODE
            | PGLOGICAL_SUBSCRIBER_NODE
            | PGLOGICAL_SET
            | PGLOGICAL_SUBSCRIPTION
            | PGLOGICAL_EXTENSION_SOURCE
            | PGLOGICAL_EXTENSION_TARGET
    )
}

/// How to get a user's pglogical object of pgmove's name out of the way.
fn pglogical_fix(kind: &str, name: &str) -> String {
    let drop = match kind {
        PGLOGICAL_PROVIDER_NODE | PGLOGICAL_SUBSCRIBER_NODE => {
            crate::pglogical::calls::drop_node(name)
        }
        PGLOGICAL_SET => crate::pglogical::calls::drop_set(name),
        PGLOGICAL_SUBSCRIPTION => crate::pglogical::calls::drop_subscription(name),
        _ => "DROP EXTENSION pglogical;".to_string(),
    };
    format!(
        "if it is yours, give the plan another name (or set pglogical.replication_set for a set); if you do not need it: {drop}"
    )
}

/// The pglogical object (`kind`, `name`) on the server `c` is connected to, if it exists.
async fn find_pglogical(
    c: &Client,
    ep: &Endpoint,
    kind: &str,
    name: &str,
) -> Result<Option<Found>, PgError> {
    use crate::pglogical::catalog;
    let exists = match kind {
        PGLOGICAL_PROVIDER_NODE | PGLOGICAL_SUBSCRIBER_NODE => {
            catalog::node_exists(c, ep, name).await?
        }
        PGLOGICAL_SET => !catalog::sets(c, ep, &[name.to_string()]).await?.is_empty(),
        PGLOGICAL_SUBSCRIPTION => catalog::subscription(c, ep, name).await?.is_some(),
        _ => catalog::extension_version(c, ep).await?.is_some(),
    };
    Ok(exists.then_some(Found::Pglogical))
}

/// The object (`kind`, `name`) on the server `c` is connected to, if it exists.
async fn find_one(
    c: &Client,
    ep: &Endpoint,
    kind: &str,
    name: &str,
) -> Result<Option<Found>, PgError> {
    if is_pglogical(kind) {
        return find_pglogical(c, ep, kind, name).await;
    }
    let (slots, pubs) = if kind == SLOT {
        (vec![name.to_string()], Vec::new())
    } else {
        (Vec::new(), vec![name.to_string()])
    };
    Ok(find(c, ep, &slots, &pubs)
        .await?
        .into_iter()
        .next()
        .map(|(_, _, f)| f))
}

/// Whether (`kind`, `name`) exists on `on` and is this plan's ([`judge`]); an error when it
/// exists and is not. Ok(None) when absent.
pub async fn whose(
    st: &state::State<'_>,
    on: &Endpoint,
    kind: &str,
    name: &str,
) -> Result<Option<Verdict>, PgError> {
    let c = on.connect().await?;
    let Some(f) = find_one(&c, on, kind, name).await? else {
        return Ok(None);
    };
    let here = source_of(&c, on).await?;
    let recs = records(&st.client, st.target, &st.plan_name).await?;
    Ok(Some(judge(
        &st.plan_name,
        record_of(&recs, kind, name),
        &here,
        &f,
    )))
}

/// Before creating (`kind`, `name`) on `source` (the server it goes on: the target for
/// pglogical's target-side kinds): refuses when an object of that name exists and is not this
/// plan's; otherwise commits the `intended` record on the target (`state`).
/// Returns whether the object exists already (this plan's).
pub async fn claim(
    st: &state::State<'_>,
    source: &Endpoint,
    kind: &'static str,
    name: &str,
) -> Result<bool, PgError> {
    let s = source.connect().await?;
    let here = source_of(&s, source).await?;
    let found = find_one(&s, source, kind, name).await?;
    let recs = records(&st.client, st.target, &st.plan_name).await?;
    if let Some(f) = &found {
        return match judge(&st.plan_name, record_of(&recs, kind, name), &here, f) {
            Verdict::Ours => Ok(true),
            Verdict::NotRecorded(why) => Err(refusal(source, kind, name, &why)),
        };
    }
    let shown = source.display().to_string();
    let intended = state::owned::Intended {
        kind,
        name,
        source: &shown,
        database: &here.database,
        system_id: here.system_id.as_deref(),
    };
    state::owned::intend(&st.client, st.target, &st.plan_name, &intended).await?;
    Ok(false)
}

/// On a rerun, for an object this plan may have created earlier: when it exists and is this
/// plan's, its record says `created` (a kill may have left it `intended`); one that is not
/// this plan's is refused; an absent one is left to the caller.
pub async fn confirm(
    st: &state::State<'_>,
    source: &Endpoint,
    kind: &'static str,
    name: &str,
) -> Result<(), PgError> {
    let s = source.connect().await?;
    let Some(f) = find_one(&s, source, kind, name).await? else {
        return Ok(());
    };
    let f = &f;
    let here = source_of(&s, source).await?;
    let recs = records(&st.client, st.target, &st.plan_name).await?;
    match judge(&st.plan_name, record_of(&recs, kind, name), &here, f) {
        Verdict::Ours => created(st, kind, name).await,
        Verdict::NotRecorded(why) => Err(refusal(source, kind, name, &why)),
    }
}

/// After creating (`kind`, `name`): its record says `created`.
pub async fn created(st: &state::State<'_>, kind: &str, name: &str) -> Result<(), PgError> {
    state::owned::created(&st.client, st.target, &st.plan_name, kind, name).await
}

#[cfg(test)]
mod tests {
    use super::*;

    fn here() -> Source {
        Source {
            database: "shop".into(),
            system_id: Some("7".into()),
        }
    }

    fn rec(created: bool, database: &str, system_id: Option<&str>) -> Record {
        Record {
            kind: PUBLICATION.into(),
            name: "pgmove_p".into(),
            source: Source {
                database: database.into(),
                system_id: system_id.map(str::to_string),
            },
            created,
        }
    }

    fn publication(comment: Option<String>) -> Found {
        Found::Publication { comment }
    }

    #[test]
    fn unrecorded_objects_are_never_ours() {
        for f in [
            publication(Some(comment("p"))),
            Found::Slot {
                plugin: Some("pgoutput".into()),
                database: Some("shop".into()),
            },
        ] {
            assert!(matches!(
                judge("p", None, &here(), &f),
                Verdict::NotRecorded(w) if w.contains("did not record")
            ));
        }
    }

    #[test]
    fn created_records_of_this_source_are_ours() {
        let r = rec(true, "shop", Some("7"));
        assert_eq!(
            judge("p", Some(&r), &here(), &publication(None)),
            Verdict::Ours
        );
        // An unknown system identifier on either side: the database decides.
        let r = rec(true, "shop", None);
        assert_eq!(
            judge("p", Some(&r), &here(), &publication(None)),
            Verdict::Ours
        );
    }

    #[test]
    fn records_of_another_source_prove_nothing() {
        for r in [rec(true, "other", Some("7")), rec(true, "shop", Some("8"))] {
            assert!(matches!(
                judge("p", Some(&r), &here(), &publication(Some(comment("p")))),
                Verdict::NotRecorded(w) if w.contains("another source")
            ));
        }
    }

    #[test]
    fn an_intended_publication_is_ours_only_with_the_plans_comment() {
        let r = rec(false, "shop", Some("7"));
        assert_eq!(
            judge("p", Some(&r), &here(), &publication(Some(comment("p")))),
            Verdict::Ours
        );
        for c in [None, Some("mine".to_string()), Some(comment("q"))] {
            assert!(matches!(
                judge("p", Some(&r), &here(), &publication(c)),
                Verdict::NotRecorded(w) if w.contains("comment")
            ));
        }
    }

    #[test]
    fn an_intended_slot_is_ours_when_it_is_a_pgoutput_slot_of_this_database() {
        let r = Record {
            kind: SLOT.into(),
            ..rec(false, "shop", Some("7"))
        };
        let slot = |plugin: Option<&str>, db: Option<&str>| Found::Slot {
            plugin: plugin.map(str::to_string),
            database: db.map(str::to_string),
        };
        assert_eq!(
            judge(
                "p",
                Some(&r),
                &here(),
                &slot(Some("pgoutput"), Some("shop"))
            ),
            Verdict::Ours
        );
        for f in [
            slot(Some("test_decoding"), Some("shop")),
            slot(Some("pgoutput"), Some("other")),
            slot(None, None),
        ] {
            assert!(matches!(
                judge("p", Some(&r), &here(), &f),
                Verdict::NotRecorded(_)
            ));
        }
    }

    #[test]
    fn an_intended_pglogical_object_is_ours_only_in_the_recorded_database() {
        let r = Record {
            kind: PGLOGICAL_SET.into(),
            ..rec(false, "shop", Some("7"))
        };
        assert_eq!(
            judge("p", Some(&r), &here(), &Found::Pglogical),
            Verdict::Ours
        );
        let other = Record {
            kind: PGLOGICAL_SET.into(),
            ..rec(false, "other", Some("7"))
        };
        assert!(matches!(
            judge("p", Some(&other), &here(), &Found::Pglogical),
            Verdict::NotRecorded(w) if w.contains("another source")
        ));
        assert!(matches!(
            judge("p", None, &here(), &Found::Pglogical),
            Verdict::NotRecorded(_)
        ));
        assert!(pglogical_fix(PGLOGICAL_SET, "pgmove_p")
            .contains("pglogical.drop_replication_set(set_name := 'pgmove_p'"));
    }

    #[test]
    fn the_fix_names_the_drop_the_rename_and_the_adoption() {
        let f = fix(PUBLICATION, "pgmove_p", "p.yaml");
        assert!(f.contains(r#"DROP PUBLICATION "pgmove_p";"#), "{f}");
        assert!(
            f.contains(r#"ALTER PUBLICATION "pgmove_p" RENAME TO "pgmove_p_user";"#),
            "{f}"
        );
        assert!(
            f.contains("pgmove cleanup p.yaml --adopt-unrecorded"),
            "{f}"
        );
        let f = fix(SLOT, "pgmove_p", "p.yaml");
        assert!(
            f.contains("SELECT pg_drop_replication_slot('pgmove_p');"),
            "{f}"
        );
        assert!(f.contains("cdc.slot"), "{f}");
    }
}
