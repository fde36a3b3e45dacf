//! What strategy pglogical leaves behind, dropped in a safe order: on the target the
//! subscription (`pglogical.drop_subscription`: it stops the apply worker, drops the slot on
//! the provider when it can reach it, and the origin), the subscriber node; on the source the
//! two sets, the slot the subscription streamed from (when the drop above could not reach the
//! source), the provider node; on the target the replication origin, if it outlived the
//! subscription; then the `pglogical` extension on a side where pgmove recorded creating it,
//! while nothing but pgmove's objects were in it.
//!
//! Only what the target's `pgmove.source_objects` records this plan creating (kinds
//! `owned::PGLOGICAL_*`, judged by [`owned::judge`] against the server the object is on, as
//! apply judges them). The slot and the origin are not recorded
//! themselves: they are the ones pglogical names after the recorded subscription
//! (`pgl_<target database>_<provider node>_<subscription>`, shortened by pglogical), a
//! `pglogical_output` slot in the source's database. An object of the plan's names without
//! the record is reported (`not_handled`) and kept, even with `--adopt-unrecorded`: no pgmove
//! release created pglogical objects without recording them.

use tokio_postgres::Client;

use super::{Action, Artifact, Found, Location, Step};
use crate::owned::{self, Record, Source, Verdict};
use crate::pg::{quote, Endpoint, PgError};
use crate::pglogical::calls;

/// Whether the `pglogical` extension is installed in this database (one boolean).
const EXTENSION_SQL: &str =
    "SELECT EXISTS (SELECT 1 FROM pg_catalog.pg_extension WHERE extname = 'pglogical')";

/// pglogical's nodes in this database: name, whether it is the local node.
const NODES_SQL: &str = "SELECT n.node_name::text, \
       EXISTS (SELECT 1 FROM pglogical.local_node l WHERE l.node_id = n.node_id) \
     FROM pglogical.node n ORDER BY 1";

/// pglogical's replication sets: name, the name of the node it belongs to (NULL if none).
const SETS_SQL: &str = "SELECT s.set_name::text, n.node_name::text \
     FROM pglogical.replication_set s LEFT JOIN pglogical.node n ON n.node_id = s.set_nodeid \
     ORDER BY 1";

/// pglogical's subscriptions: name, slot name, the name of the node it streams from.
const SUBSCRIPTIONS_SQL: &str =
    "SELECT s.sub_name::text, s.sub_slot_name::text, o.node_name::text \
     FROM pglogical.subscription s LEFT JOIN pglogical.node o ON o.node_id = s.sub_origin \
     ORDER BY 1";

/// The slot pglogical names subscription `$3` of target database `$1` from provider node
/// `$2` (one text).
const GEN_SLOT_SQL: &str =
    "SELECT pglogical.pglogical_gen_slot_name($1::text::name, $2::text::name, $3::text::name)::text";

/// Slot `$1`: plugin and database (NULL for a physical slot).
const SLOT_SQL: &str = "SELECT plugin::text, database::text \
     FROM pg_catalog.pg_replication_slots WHERE slot_name = $1";

/// The pglogical slots of this database that `pglogical.drop_node` drops with the local node
/// (its own rule: plugin pglogical, name `pgl_...`): one name a row.
const NODE_SLOTS_SQL: &str = "SELECT slot_name::text FROM pg_catalog.pg_replication_slots \
     WHERE plugin IN ('pglogical_output', 'pglogical') AND database = current_database() \
       AND slot_name ~ '^pgl_' ORDER BY 1";

/// Whether replication origin `$1` exists (one boolean).
const ORIGIN_SQL: &str =
    "SELECT EXISTS (SELECT 1 FROM pg_catalog.pg_replication_origin WHERE roname = $1)";

/// The sets pglogical creates with every node (`pglogical.create_node`), dropped with it.
const PREDEFINED_SETS: &[&str] = &["default", "default_insert_only", "ddl_sql"];

/// The plan's pglogical names and its records.
pub(super) struct Plan<'a> {
    pub names: &'a crate::plan::names::PglogicalNames,
    pub plan_name: &'a str,
}

/// pglogical's catalog in one database.
#[derive(Default, Debug)]
struct Catalog {
    installed: bool,
    /// (name, local).
    nodes: Vec<(String, bool)>,
    /// (name, node).
    sets: Vec<(String, Option<String>)>,
    /// (name, slot, origin node).
    subscriptions: Vec<(String, String, Option<String>)>,
}

impl Catalog {
    async fn read(c: &Client, ep: &Endpoint) -> Result<Catalog, PgError> {
        let installed: bool = c
            .query_one(EXTENSION_SQL, &[])
            .await
            .map_err(|e| ep.query_error("reading pg_extension", &e))?
            .get(0);
        if !installed {
            return Ok(Catalog::default());
        }
        let read = |what: &'static str| move |e: tokio_postgres::Error| ep.query_error(what, &e);
        let nodes = c
            .query(NODES_SQL, &[])
            .await
            .map_err(read("reading pglogical.node"))?
            .iter()
            .map(|r| (r.get(0), r.get(1)))
            .collect();
        let sets = c
            .query(SETS_SQL, &[])
            .await
            .map_err(read("reading pglogical.replication_set"))?
            .iter()
            .map(|r| (r.get(0), r.get(1)))
            .collect();
        let subscriptions = c
            .query(SUBSCRIPTIONS_SQL, &[])
            .await
            .map_err(read("reading pglogical.subscription"))?
            .iter()
            .map(|r| (r.get(0), r.get(1), r.get(2)))
            .collect();
        Ok(Catalog {
            installed,
            nodes,
            sets,
            subscriptions,
        })
    }

    fn node(&self, name: &str) -> Option<bool> {
        self.nodes.iter().find(|(n, _)| n == name).map(|(_, l)| *l)
    }

    fn set(&self, name: &str) -> Option<Option<&str>> {
        self.sets
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, node)| node.as_deref())
    }

    fn subscription(&self, name: &str) -> Option<(&str, Option<&str>)> {
        self.subscriptions
            .iter()
            .find(|(n, _, _)| n == name)
            .map(|(_, slot, origin)| (slot.as_str(), origin.as_deref()))
    }
}

/// Whether an object of the plan's names on server `here` is the plan's ([`owned::judge`]).
fn verdict(plan_name: &str, record: Option<&Record>, here: &Source) -> Result<(), String> {
    match owned::judge(plan_name, record, here, &owned::Found::Pglogical) {
        Verdict::Ours => Ok(()),
        Verdict::NotRecorded(why) => Err(why),
    }
}

fn step(location: Location, kind: &str, name: &str, sql: String, detail: Option<String>) -> Step {
    Step {
        artifact: Artifact {
            location,
            kind: kind.into(),
            name: name.into(),
            sql: sql.clone(),
            detail,
        },
        action: Action::Sql(sql),
    }
}

/// An object of the plan's name that is not the plan's: listed, kept.
fn not_pgmoves(location: Location, kind: &str, name: &str, sql: String, why: &str) -> Artifact {
    let on = match location {
        Location::Source => "source",
        _ => "target",
    };
    Artifact {
        location,
        kind: kind.into(),
        name: name.into(),
        sql,
        detail: Some(format!(
            "not handled: {why}; pgmove never drops a pglogical object it did not record creating, so it is left in place. If it is yours, keep it (or give the plan another name); if you do not need it, on the {on}: the statement below"
        )),
    }
}

/// Discovers the plan's pglogical objects on both servers and pushes their drops onto
/// `found` in order (see the module documentation). `records`: the plan's records.
pub(super) async fn discover(
    plan: &Plan<'_>,
    source: &Endpoint,
    s: &Client,
    target: &Endpoint,
    t: &Client,
    found: &mut Found,
) -> Result<(), PgError> {
    let (sc, tc) = (
        Catalog::read(s, source).await?,
        Catalog::read(t, target).await?,
    );
    let records = owned::records(t, target, plan.plan_name).await?;
    let has_records = records.iter().any(|r| r.kind.starts_with("pglogical"));
    if !sc.installed && !tc.installed && !has_records {
        return Ok(());
    }
    let on_source = owned::source_of(s, source).await?;
    let on_target = owned::source_of(t, target).await?;
    let (source_db, target_db) = (&on_source.database, &on_target.database);
    let pn = plan.plan_name;
    let n = plan.names;
    let rec = |kind: &str, name: &str| owned::record_of(&records, kind, name);
    // What each side will lose: node names (subscriptions and sets go with them).
    let mut src_nodes_dropped: Vec<&str> = Vec::new();
    let mut tgt_nodes_dropped: Vec<&str> = Vec::new();
    let mut tgt_subs_dropped: Vec<&str> = Vec::new();
    let mut src_sets_dropped: Vec<&str> = Vec::new();
    let mut target_steps: Vec<Step> = Vec::new();
    let mut not_handled: Vec<Artifact> = Vec::new();
    let mut source_steps: Vec<Step> = Vec::new();

    // Target: the subscription, then the subscriber node.
    let subscription_ours = rec(owned::PGLOGICAL_SUBSCRIPTION, &n.subscription).is_some();
    if tc.subscription(&n.subscription).is_some() {
        let sql = calls::drop_subscription(&n.subscription);
        let record = rec(owned::PGLOGICAL_SUBSCRIPTION, &n.subscription);
        match verdict(pn, record, &on_target) {
            Ok(()) => {
                tgt_subs_dropped.push(&n.subscription);
                let mut s = step(
                    Location::Target,
                    "pglogical subscription",
                    &n.subscription,
                    format!("{}\n{sql}", calls::disable_subscription(&n.subscription)),
                    Some("disabled first and its apply worker waited for, then dropped: its slot on the source goes when the target can reach it, and its replication origin".into()),
                );
                s.action = Action::DropPglogicalSubscription(n.subscription.clone());
                target_steps.push(s);
            }
            Err(why) => not_handled.push(not_pgmoves(
                Location::Target,
                "pglogical subscription",
                &n.subscription,
                sql,
                &why,
            )),
        }
    }
    if tc.node(&n.subscriber_node).is_some() {
        let sql = calls::drop_node(&n.subscriber_node);
        let record = rec(owned::PGLOGICAL_SUBSCRIBER_NODE, &n.subscriber_node);
        match verdict(pn, record, &on_target) {
            Ok(()) => {
                let others = in_node(&tc, &n.subscriber_node, &tgt_subs_dropped, &[]);
                if others.is_empty() {
                    tgt_nodes_dropped.push(&n.subscriber_node);
                    target_steps.push(step(
                        Location::Target,
                        "pglogical node",
                        &n.subscriber_node,
                        sql,
                        Some("the subscriber node".into()),
                    ));
                } else {
                    found.kept.push(Artifact {
                        location: Location::Target,
                        kind: "pglogical node".into(),
                        name: n.subscriber_node.clone(),
                        sql: String::new(),
                        detail: Some(format!(
                            "pgmove's subscriber node, kept: pglogical objects that are not pgmove's are in it ({}), and pglogical would drop them with it; drop or move them first, then run cleanup again",
                            others.join(", ")
                        )),
                    });
                }
            }
            Err(why) => not_handled.push(not_pgmoves(
                Location::Target,
                "pglogical node",
                &n.subscriber_node,
                sql,
                &why,
            )),
        }
    }

    // Source: the sets, then the provider node.
    let provider_ours = sc.node(&n.provider_node).map(|_| {
        let record = rec(owned::PGLOGICAL_PROVIDER_NODE, &n.provider_node);
        verdict(pn, record, &on_source)
    });
    for set in [&n.replication_set, &n.insert_set] {
        if sc.set(set).is_none() {
            continue;
        }
        let sql = calls::drop_set(set);
        match verdict(pn, rec(owned::PGLOGICAL_SET, set), &on_source) {
            Ok(()) => {
                src_sets_dropped.push(set);
                source_steps.push(step(
                    Location::Source,
                    "pglogical replication set",
                    set,
                    sql,
                    None,
                ));
            }
            Err(why) => not_handled.push(not_pgmoves(
                Location::Source,
                "pglogical replication set",
                set,
                sql,
                &why,
            )),
        }
    }

    // The slot of the recorded subscription, if it outlived it (it is named after the target
    // database, the provider node and the subscription).
    let slot = if !subscription_ours {
        None
    } else if let Some((slot, _)) = tc.subscription(&n.subscription) {
        Some(slot.to_string())
    } else {
        let c = if sc.installed {
            Some((s, source))
        } else if tc.installed {
            Some((t, target))
        } else {
            None
        };
        match c {
            Some((c, ep)) => Some(
                c.query_one(
                    GEN_SLOT_SQL,
                    &[target_db, &n.provider_node, &n.subscription],
                )
                .await
                .map_err(|e| ep.query_error("naming the subscription's slot", &e))?
                .get::<_, String>(0),
            ),
            None => None,
        }
    };
    if let Some(slot) = &slot {
        let row = s
            .query_opt(SLOT_SQL, &[slot])
            .await
            .map_err(|e| source.query_error("reading pg_replication_slots", &e))?;
        if let Some(row) = row {
            let (plugin, db): (Option<String>, Option<String>) = (row.get(0), row.get(1));
            if plugin.as_deref() == Some("pglogical_output")
                && db.as_deref() == Some(source_db.as_str())
            {
                source_steps.push(Step {
                    artifact: Artifact {
                        location: Location::Source,
                        kind: "replication slot".into(),
                        name: slot.clone(),
                        sql: format!("SELECT pg_drop_replication_slot({})", quote::literal(slot)),
                        detail: Some(format!(
                            "the slot of pgmove's subscription {}",
                            n.subscription
                        )),
                    },
                    action: Action::DropReleasedSlot(slot.clone()),
                });
            } else {
                found.kept.push(Artifact {
                    location: Location::Source,
                    kind: "replication slot".into(),
                    name: slot.clone(),
                    sql: String::new(),
                    detail: Some(format!(
                        "named like the slot of pgmove's subscription {}, but it is not a pglogical_output slot of database {source_db}: not pgmove's, left in place",
                        n.subscription
                    )),
                });
            }
        }
    }

    if let Some(verdict) = provider_ours {
        let sql = calls::drop_node(&n.provider_node);
        match verdict {
            Ok(()) => {
                let mut others = in_node(&sc, &n.provider_node, &[], &src_sets_dropped);
                // Slots of other subscribers to the node: pglogical would drop them with it.
                for r in s
                    .query(NODE_SLOTS_SQL, &[])
                    .await
                    .map_err(|e| source.query_error("reading pg_replication_slots", &e))?
                {
                    let name: String = r.get(0);
                    if !slot
                        .as_deref()
                        .is_some_and(|ours| is_of_subscription(&name, ours))
                    {
                        others.push(format!("replication slot {name}"));
                    }
                }
                if others.is_empty() {
                    src_nodes_dropped.push(&n.provider_node);
                    source_steps.push(step(
                        Location::Source,
                        "pglogical node",
                        &n.provider_node,
                        sql,
                        Some("the provider node, with pglogical's own sets default, default_insert_only and ddl_sql".into()),
                    ));
                } else {
                    found.kept.push(Artifact {
                        location: Location::Source,
                        kind: "pglogical node".into(),
                        name: n.provider_node.clone(),
                        sql: String::new(),
                        detail: Some(format!(
                            "pgmove's provider node, kept: pglogical objects that are not pgmove's are in it ({}), and pglogical would drop them with it; drop or move them first, then run cleanup again",
                            others.join(", ")
                        )),
                    });
                }
            }
            Err(why) => not_handled.push(not_pgmoves(
                Location::Source,
                "pglogical node",
                &n.provider_node,
                sql,
                &why,
            )),
        }
    }

    // The origin of the recorded subscription, on the target, if it outlived it.
    if let Some(slot) = &slot {
        let exists: bool = t
            .query_one(ORIGIN_SQL, &[slot])
            .await
            .map_err(|e| target.query_error("reading pg_replication_origin", &e))?
            .get(0);
        if exists {
            let sql = format!(
                "SELECT pg_catalog.pg_replication_origin_drop(roname) FROM pg_catalog.pg_replication_origin WHERE roname = {}",
                quote::literal(slot)
            );
            let detail = if tgt_subs_dropped.contains(&n.subscription.as_str()) {
                "dropped with the subscription; this drops it if the subscription did not"
            } else {
                "the replication origin of pgmove's subscription, which outlived it"
            };
            target_steps.push(step(
                Location::Target,
                "replication origin",
                slot,
                sql,
                Some(detail.into()),
            ));
        }
    }

    // The extension, where pgmove created it and nothing but pgmove's objects are in it.
    let mut extension_steps = Vec::new();
    for (location, kind, node_kind, cat, nodes, subs, sets) in [
        (
            Location::Target,
            owned::PGLOGICAL_EXTENSION_TARGET,
            owned::PGLOGICAL_SUBSCRIBER_NODE,
            &tc,
            &tgt_nodes_dropped,
            &tgt_subs_dropped,
            &Vec::new(),
        ),
        (
            Location::Source,
            owned::PGLOGICAL_EXTENSION_SOURCE,
            owned::PGLOGICAL_PROVIDER_NODE,
            &sc,
            &src_nodes_dropped,
            &Vec::new(),
            &src_sets_dropped,
        ),
    ] {
        // Recorded under whatever name apply gives it: the kind says which side.
        let record = records.iter().find(|r| r.kind == kind);
        if !cat.installed {
            continue;
        }
        if record.is_none() {
            // Created by someone else (on RDS/Aurora the master user, before apply): never
            // pgmove's to drop. When the plan's node was in it and nothing but pgmove's
            // objects remain, the report gives its creator the statement.
            let used = records.iter().any(|r| r.kind == node_kind);
            if used && foreign(cat, nodes, subs, sets, &n.provider_node).is_empty() {
                found.kept.push(unrecorded_extension(location));
            }
            continue;
        }
        let here = match location {
            Location::Source => &on_source,
            _ => &on_target,
        };
        if let Err(why) = verdict(pn, record, here) {
            found.kept.push(Artifact {
                location,
                kind: "extension".into(),
                name: "pglogical".into(),
                sql: String::new(),
                detail: Some(format!("left in place: {why}")),
            });
            continue;
        }
        let others = foreign(cat, nodes, subs, sets, &n.provider_node);
        if others.is_empty() {
            let sql = "DROP EXTENSION IF EXISTS pglogical".to_string();
            extension_steps.push(Step {
                artifact: Artifact {
                    location,
                    kind: "extension".into(),
                    name: "pglogical".into(),
                    sql: sql.clone(),
                    detail: Some("pgmove created it".into()),
                },
                action: Action::DropExtension(sql),
            });
        } else {
            found.kept.push(Artifact {
                location,
                kind: "extension".into(),
                name: "pglogical".into(),
                sql: String::new(),
                detail: Some(format!(
                    "pgmove created it, but it holds pglogical objects that are not pgmove's ({}): left in place; drop it yourself (DROP EXTENSION pglogical;) once they are gone",
                    others.join(", ")
                )),
            });
        }
    }

    not_handled.sort_by(|a, b| {
        (a.location != Location::Source, &a.kind, &a.name).cmp(&(
            b.location != Location::Source,
            &b.kind,
            &b.name,
        ))
    });
    found.not_handled.extend(not_handled);
    // In order: the target's subscription first (it stops streaming from the source).
    let (sub_steps, rest): (Vec<Step>, Vec<Step>) = target_steps
        .into_iter()
        .partition(|s| s.artifact.kind == "pglogical subscription");
    let (origin_steps, node_steps): (Vec<Step>, Vec<Step>) = rest
        .into_iter()
        .partition(|s| s.artifact.kind == "replication origin");
    found.steps.extend(sub_steps);
    found.steps.extend(node_steps);
    found.steps.extend(source_steps);
    found.steps.extend(origin_steps);
    found.steps.extend(extension_steps);
    Ok(())
}

/// The pglogical extension on `location` that pgmove used but did not create, holding
/// nothing once pgmove's objects are gone: kept, with the statement for its creator.
fn unrecorded_extension(location: Location) -> Artifact {
    let on = match location {
        Location::Source => "source",
        _ => "target",
    };
    let sql = "DROP EXTENSION pglogical;".to_string();
    Artifact {
        location,
        kind: "extension".into(),
        name: "pglogical".into(),
        sql: sql.clone(),
        detail: Some(format!(
            "pgmove did not create it (on RDS/Aurora the master user did), so it never drops it; nothing of pgmove's is left in it. If nothing else on the {on} uses pglogical, the role that created it (on RDS/Aurora the master user) runs: {sql} and takes pglogical out of shared_preload_libraries (on RDS/Aurora in the parameter group; a restart)"
        )),
    }
}

/// Whether slot `name` is the subscription's slot `ours`, or one pglogical made for it to
/// copy one table (`<ours>_<8 hex digits>`, see pglogical_sync.c).
fn is_of_subscription(name: &str, ours: &str) -> bool {
    name == ours
        || name
            .strip_prefix(ours)
            .and_then(|r| r.strip_prefix('_'))
            .is_some_and(|h| h.len() == 8 && h.bytes().all(|b| b.is_ascii_hexdigit()))
}

/// What `pglogical.drop_node(node)` would take with it (its sets) or refuses for (the
/// database's subscriptions) besides the plan's `subs` and `sets` and pglogical's predefined
/// sets: "subscription x", "replication set y".
fn in_node(cat: &Catalog, node: &str, subs: &[&str], sets: &[&str]) -> Vec<String> {
    let mut out: Vec<String> = cat
        .subscriptions
        .iter()
        .filter(|(name, _, _)| !subs.contains(&name.as_str()))
        .map(|(name, _, _)| format!("subscription {name}"))
        .collect();
    out.extend(
        cat.sets
            .iter()
            .filter(|(name, of)| {
                of.as_deref() == Some(node)
                    && !sets.contains(&name.as_str())
                    && !PREDEFINED_SETS.contains(&name.as_str())
            })
            .map(|(name, _)| format!("replication set {name}")),
    );
    out
}

/// The pglogical objects of `cat` that stay once the plan's `nodes`, `subs` and `sets` are
/// dropped (a node's predefined sets and, on the target, the copy of the provider node that
/// `pglogical.create_subscription` made go with them).
fn foreign(
    cat: &Catalog,
    nodes: &[&str],
    subs: &[&str],
    sets: &[&str],
    provider_node: &str,
) -> Vec<String> {
    let mut out = Vec::new();
    for (name, _) in &cat.nodes {
        let copy_of_provider = name == provider_node && !subs.is_empty();
        if !nodes.contains(&name.as_str()) && !copy_of_provider {
            out.push(format!("node {name}"));
        }
    }
    for (name, node) in &cat.sets {
        let with_node = node
            .as_deref()
            .is_some_and(|n| nodes.contains(&n) && PREDEFINED_SETS.contains(&name.as_str()));
        if !sets.contains(&name.as_str()) && !with_node {
            out.push(format!("replication set {name}"));
        }
    }
    for (name, _, _) in &cat.subscriptions {
        if !subs.contains(&name.as_str()) {
            out.push(format!("subscription {name}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(created: bool, database: &str) -> Record {
        Record {
            kind: owned::PGLOGICAL_SET.into(),
            name: "pgmove_p".into(),
            source: Source {
                database: database.into(),
                system_id: None,
            },
            created,
        }
    }

    #[test]
    fn objects_are_judged_by_their_record_on_their_server() {
        let here = Source {
            database: "shop".into(),
            system_id: None,
        };
        assert!(verdict("p", None, &here).is_err_and(|w| w.contains("did not record")));
        assert!(verdict("p", Some(&record(true, "shop")), &here).is_ok());
        assert!(verdict("p", Some(&record(false, "shop")), &here).is_ok());
        assert!(verdict("p", Some(&record(true, "other")), &here)
            .is_err_and(|w| w.contains("another source")));
    }

    #[test]
    fn the_subscriptions_slots_are_its_own_and_its_table_copies() {
        assert!(is_of_subscription("pgl_shop_p_s", "pgl_shop_p_s"));
        assert!(is_of_subscription("pgl_shop_p_s_0a1b2c3d", "pgl_shop_p_s"));
        assert!(!is_of_subscription("pgl_shop_p_s_0a1b2c3", "pgl_shop_p_s"));
        assert!(!is_of_subscription("pgl_shop_p_s_users", "pgl_shop_p_s"));
        assert!(!is_of_subscription("pgl_other", "pgl_shop_p_s"));
    }

    #[test]
    fn a_node_holding_someone_elses_set_or_subscription_is_kept() {
        let mut cat = Catalog {
            installed: true,
            nodes: vec![("pgmove_p_provider".into(), true)],
            sets: vec![
                ("default".into(), Some("pgmove_p_provider".into())),
                ("pgmove_p".into(), Some("pgmove_p_provider".into())),
            ],
            subscriptions: vec![],
        };
        assert!(in_node(&cat, "pgmove_p_provider", &[], &["pgmove_p"]).is_empty());
        cat.sets
            .push(("users_set".into(), Some("pgmove_p_provider".into())));
        cat.subscriptions
            .push(("users_sub".into(), "pgl_y".into(), Some("elsewhere".into())));
        assert_eq!(
            in_node(&cat, "pgmove_p_provider", &[], &["pgmove_p"]),
            ["subscription users_sub", "replication set users_set"]
        );
    }

    #[test]
    fn only_pgmoves_objects_leave_the_extension_droppable() {
        let cat = Catalog {
            installed: true,
            nodes: vec![("pgmove_p_provider".into(), true)],
            sets: vec![
                ("default".into(), Some("pgmove_p_provider".into())),
                ("ddl_sql".into(), Some("pgmove_p_provider".into())),
                ("pgmove_p".into(), Some("pgmove_p_provider".into())),
            ],
            subscriptions: vec![],
        };
        let none: Vec<String> = Vec::new();
        assert_eq!(
            foreign(
                &cat,
                &["pgmove_p_provider"],
                &[],
                &["pgmove_p"],
                "pgmove_p_provider"
            ),
            none
        );
        // The node kept (not pgmove's): everything in it stays, so the extension too.
        assert_eq!(
            foreign(&cat, &[], &[], &["pgmove_p"], "pgmove_p_provider"),
            [
                "node pgmove_p_provider",
                "replication set default",
                "replication set ddl_sql"
            ]
        );
        let mut target = Catalog {
            installed: true,
            nodes: vec![
                ("pgmove_p_subscriber".into(), true),
                ("pgmove_p_provider".into(), false),
            ],
            sets: vec![("default".into(), Some("pgmove_p_subscriber".into()))],
            subscriptions: vec![(
                "pgmove_p".into(),
                "pgl_x".into(),
                Some("pgmove_p_provider".into()),
            )],
        };
        assert_eq!(
            foreign(
                &target,
                &["pgmove_p_subscriber"],
                &["pgmove_p"],
                &[],
                "pgmove_p_provider"
            ),
            none
        );
        target
            .subscriptions
            .push(("users_sub".into(), "pgl_y".into(), Some("elsewhere".into())));
        assert_eq!(
            foreign(
                &target,
                &["pgmove_p_subscriber"],
                &["pgmove_p"],
                &[],
                "pgmove_p_provider"
            ),
            ["subscription users_sub"]
        );
    }
}
