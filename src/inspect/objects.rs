//! Extensions, schemas, sequences, large objects, publications, subscriptions, pglogical.

use serde::Serialize;

use super::tables::{ColumnRef, RelName};
use super::{index_by, InspectError, Reader, BATCH};
use crate::pg::quote;

/// An extension installed in the database.
#[derive(Clone, Debug, Default, Serialize)]
pub struct Extension {
    pub name: String,
    pub version: String,
    /// The schema its objects are in.
    pub schema: String,
    pub relocatable: bool,
}

/// Installed extensions.
const EXTENSIONS_SQL: &str = "\
SELECT e.extname::text AS name, e.extversion AS version, n.nspname::text AS schema,
       e.extrelocatable AS relocatable
  FROM pg_extension e JOIN pg_namespace n ON n.oid = e.extnamespace
 ORDER BY e.extname";

pub(super) async fn read_extensions(r: &Reader<'_>) -> Result<Vec<Extension>, InspectError> {
    const WHAT: &str = "the installed extensions";
    let mut out = Vec::new();
    for row in r.query(WHAT, EXTENSIONS_SQL, &[]).await? {
        out.push(Extension {
            name: r.get(WHAT, &row, "name")?,
            version: r.get(WHAT, &row, "version")?,
            schema: r.get(WHAT, &row, "schema")?,
            relocatable: r.get(WHAT, &row, "relocatable")?,
        });
    }
    Ok(out)
}

/// An extension whose files are installed on the server (it can be created).
#[derive(Clone, Debug, Serialize)]
pub struct AvailableExtension {
    pub name: String,
    pub default_version: Option<String>,
    /// The version installed in this database, if any.
    pub installed_version: Option<String>,
}

/// Extensions the server has the files of (`pg_available_extensions`).
const AVAILABLE_EXTENSIONS_SQL: &str = "\
SELECT name::text AS name, default_version, installed_version
  FROM pg_available_extensions
 ORDER BY name";

pub(super) async fn read_available_extensions(
    r: &Reader<'_>,
) -> Result<Vec<AvailableExtension>, InspectError> {
    const WHAT: &str = "the available extensions";
    let mut out = Vec::new();
    for row in r.query(WHAT, AVAILABLE_EXTENSIONS_SQL, &[]).await? {
        out.push(AvailableExtension {
            name: r.get(WHAT, &row, "name")?,
            default_version: r.get(WHAT, &row, "default_version")?,
            installed_version: r.get(WHAT, &row, "installed_version")?,
        });
    }
    Ok(out)
}

/// A non-system schema.
#[derive(Clone, Debug, Serialize)]
pub struct Schema {
    pub name: String,
    pub owner: String,
    /// Created by an extension's script (e.g. `pglogical`, `topology`): the extension brings
    /// it, a migration does not create it.
    pub extension_owned: bool,
    /// The extension that owns it.
    pub extension: Option<String>,
    /// Whether the connecting role has USAGE on it.
    pub usage: bool,
    /// Whether the connecting role may create objects in it.
    pub create: bool,
}

/// Non-system schemas (not `pg_catalog`, `information_schema`, `pg_toast*`, `pg_temp_*`),
/// with the extension owning each: the extension whose script created it (a member
/// dependency), or the installed extension whose control file fixes it as its schema
/// (`schema = pglogical`: CREATE EXTENSION creates that schema itself). `public` is never
/// taken as owned.
const SCHEMAS_SQL: &str = concat!(
    "\
SELECT n.nspname::text AS name,
       pg_get_userbyid(n.nspowner)::text AS owner,
       has_schema_privilege(n.oid, 'USAGE') AS usage,
       has_schema_privilege(n.oid, 'CREATE') AS can_create,
       coalesce(
         (SELECT e.extname::text
            FROM pg_depend d JOIN pg_extension e ON e.oid = d.refobjid
           WHERE d.classid = 'pg_namespace'::regclass AND d.objid = n.oid
             AND d.refclassid = 'pg_extension'::regclass AND d.deptype = 'e'
           LIMIT 1),
         fixed.extname) AS extension
  FROM pg_namespace n
  LEFT JOIN (SELECT DISTINCT ON (e.extnamespace) e.extnamespace, e.extname::text AS extname
               FROM pg_extension e
               JOIN pg_namespace en ON en.oid = e.extnamespace
               JOIN pg_available_extension_versions v
                 ON v.name = e.extname AND v.version = e.extversion AND v.schema = en.nspname
              WHERE en.nspname <> 'public'
              ORDER BY e.extnamespace, e.extname) fixed ON fixed.extnamespace = n.oid
 WHERE ",
    user_schema_filter!(),
    "
 ORDER BY n.nspname"
);

pub(super) async fn read_schemas(r: &Reader<'_>) -> Result<Vec<Schema>, InspectError> {
    const WHAT: &str = "the schemas";
    let mut out = Vec::new();
    for row in r.query(WHAT, SCHEMAS_SQL, &[]).await? {
        let extension: Option<String> = r.get(WHAT, &row, "extension")?;
        out.push(Schema {
            name: r.get(WHAT, &row, "name")?,
            owner: r.get(WHAT, &row, "owner")?,
            extension_owned: extension.is_some(),
            extension,
            usage: r.get(WHAT, &row, "usage")?,
            create: r.get(WHAT, &row, "can_create")?,
        });
    }
    Ok(out)
}

/// A sequence in a non-system schema.
#[derive(Clone, Debug, Default, Serialize)]
pub struct Sequence {
    pub oid: u32,
    pub schema: String,
    pub name: String,
    /// `smallint`, `integer` or `bigint`.
    pub data_type: String,
    pub start_value: i64,
    pub increment: i64,
    pub min_value: i64,
    pub max_value: i64,
    pub cache: i64,
    pub cycle: bool,
    /// The last value handed out; None before the first `nextval` (or when not `readable`).
    pub last_value: Option<i64>,
    /// Whether `nextval` has been called (`setval(.., last_value, is_called)` restores it).
    pub is_called: bool,
    /// Whether the connecting role may read it (SELECT or USAGE).
    pub readable: bool,
    /// Whether the connecting role has SELECT on it (`SELECT last_value FROM` it, what
    /// pg_dump and the cutover's sequence sync run).
    pub has_select: bool,
    /// The column that owns it (serial, identity or `OWNED BY`).
    pub owned_by: Option<ColumnRef>,
    /// It is the sequence of an identity column.
    pub identity: bool,
    /// The extension it belongs to.
    pub extension: Option<String>,
}

impl Sequence {
    /// `"schema"."name"`, quoted for SQL.
    pub fn qualified(&self) -> String {
        quote::qualified(&self.schema, &self.name)
    }
}

/// Sequences in non-system schemas with their parameters, read right, owning column (the
/// `a`uto dependency of serial/`OWNED BY`, or the `i`nternal one of an identity column) and
/// owning extension. Positions are read later (`SEQUENCE_VALUES_SQL`).
const SEQUENCES_SQL: &str = concat!(
    "\
SELECT c.oid,
       n.nspname::text AS schema,
       c.relname::text AS name,
       format_type(s.seqtypid, NULL) AS data_type,
       s.seqstart AS start_value,
       s.seqincrement AS increment,
       s.seqmin AS min_value,
       s.seqmax AS max_value,
       s.seqcache AS cache,
       s.seqcycle AS cycle,
       has_sequence_privilege(c.oid, 'SELECT,USAGE') AS readable,
       has_sequence_privilege(c.oid, 'SELECT') AS has_select,
       own.schema AS owner_schema,
       own.tab AS owner_table,
       own.col AS owner_column,
       own.deptype AS owner_deptype,
       (SELECT e.extname::text
          FROM pg_depend d JOIN pg_extension e ON e.oid = d.refobjid
         WHERE d.classid = 'pg_class'::regclass AND d.objid = c.oid
           AND d.refclassid = 'pg_extension'::regclass AND d.deptype = 'e'
         LIMIT 1) AS extension
  FROM pg_class c
  JOIN pg_namespace n ON n.oid = c.relnamespace
  JOIN pg_sequence s ON s.seqrelid = c.oid
  LEFT JOIN LATERAL (
       SELECT tn.nspname::text AS schema, tc.relname::text AS tab, ta.attname::text AS col,
              d.deptype::text AS deptype
         FROM pg_depend d
         JOIN pg_class tc ON tc.oid = d.refobjid
         JOIN pg_namespace tn ON tn.oid = tc.relnamespace
         JOIN pg_attribute ta ON ta.attrelid = d.refobjid AND ta.attnum = d.refobjsubid
        WHERE d.classid = 'pg_class'::regclass AND d.objid = c.oid
          AND d.refclassid = 'pg_class'::regclass AND d.refobjsubid > 0
          AND d.deptype IN ('a', 'i')
        LIMIT 1) own ON true
 WHERE c.relkind = 'S' AND ",
    user_schema_filter!(),
    "
 ORDER BY n.nspname, c.relname"
);

/// The last value of each given sequence the role may read; NULL when `nextval` was never
/// called. Runs outside the catalog snapshot (it locks each sequence).
/// (`has_sequence_privilege` fails on a relation that is not a sequence, so it is in the
/// select list, evaluated only for the rows the WHERE clause kept.)
const SEQUENCE_VALUES_SQL: &str = "\
SELECT c.oid,
       CASE WHEN has_sequence_privilege(c.oid, 'SELECT,USAGE')
            THEN pg_sequence_last_value(c.oid::regclass) END AS last_value
  FROM pg_class c
 WHERE c.oid = ANY ($1::oid[]) AND c.relkind = 'S'";

pub(super) async fn read_sequences(r: &Reader<'_>) -> Result<Vec<Sequence>, InspectError> {
    const WHAT: &str = "the sequences";
    let mut out = Vec::new();
    for row in r.query(WHAT, SEQUENCES_SQL, &[]).await? {
        let owner_schema: Option<String> = r.get(WHAT, &row, "owner_schema")?;
        let owner_table: Option<String> = r.get(WHAT, &row, "owner_table")?;
        let owner_column: Option<String> = r.get(WHAT, &row, "owner_column")?;
        let owner_deptype: Option<String> = r.get(WHAT, &row, "owner_deptype")?;
        let owned_by = match (owner_schema, owner_table, owner_column) {
            (Some(s), Some(t), Some(c)) => Some(ColumnRef {
                table: RelName::new(s, t),
                column: c,
            }),
            _ => None,
        };
        out.push(Sequence {
            oid: r.get(WHAT, &row, "oid")?,
            schema: r.get(WHAT, &row, "schema")?,
            name: r.get(WHAT, &row, "name")?,
            data_type: r.get(WHAT, &row, "data_type")?,
            start_value: r.get(WHAT, &row, "start_value")?,
            increment: r.get(WHAT, &row, "increment")?,
            min_value: r.get(WHAT, &row, "min_value")?,
            max_value: r.get(WHAT, &row, "max_value")?,
            cache: r.get(WHAT, &row, "cache")?,
            cycle: r.get(WHAT, &row, "cycle")?,
            last_value: None,
            is_called: false,
            readable: r.get(WHAT, &row, "readable")?,
            has_select: r.get(WHAT, &row, "has_select")?,
            identity: owned_by.is_some() && owner_deptype.as_deref() == Some("i"),
            owned_by,
            extension: r.get(WHAT, &row, "extension")?,
        });
    }
    Ok(out)
}

/// Reads the positions of the readable sequences in batches of [`BATCH`], each in its own
/// short read-only transaction.
pub(super) async fn read_sequence_values(
    r: &Reader<'_>,
    sequences: &mut [Sequence],
) -> Result<(), InspectError> {
    const WHAT: &str = "the sequence positions";
    let oids: Vec<u32> = sequences
        .iter()
        .filter(|s| s.readable)
        .map(|s| s.oid)
        .collect();
    let by_oid = index_by(sequences, |s| s.oid);
    for chunk in oids.chunks(BATCH) {
        r.execute(WHAT, "BEGIN READ ONLY; SET LOCAL lock_timeout = '30s'")
            .await?;
        let chunk = chunk.to_vec();
        let rows = r.query(WHAT, SEQUENCE_VALUES_SQL, &[&chunk]).await?;
        r.execute(WHAT, "COMMIT").await?;
        for row in &rows {
            let oid: u32 = r.get(WHAT, row, "oid")?;
            let last: Option<i64> = r.get(WHAT, row, "last_value")?;
            if let Some(&i) = by_oid.get(&oid) {
                sequences[i].last_value = last;
                sequences[i].is_called = last.is_some();
            }
        }
    }
    Ok(())
}

/// The number of large objects (the metadata table is readable by every role).
const LARGE_OBJECTS_SQL: &str = "SELECT count(*) AS n FROM pg_largeobject_metadata";

pub(super) async fn read_large_objects(r: &Reader<'_>) -> Result<i64, InspectError> {
    const WHAT: &str = "the large objects";
    let row = r.query_one(WHAT, LARGE_OBJECTS_SQL, &[]).await?;
    r.get(WHAT, &row, "n")
}

/// A publication in the database.
#[derive(Clone, Debug, Serialize)]
pub struct Publication {
    pub name: String,
    pub owner: String,
    /// `FOR ALL TABLES`.
    pub all_tables: bool,
}

/// Publications of this database.
const PUBLICATIONS_SQL: &str = "\
SELECT p.pubname::text AS name, pg_get_userbyid(p.pubowner)::text AS owner,
       p.puballtables AS all_tables
  FROM pg_publication p
 ORDER BY p.pubname";

pub(super) async fn read_publications(r: &Reader<'_>) -> Result<Vec<Publication>, InspectError> {
    const WHAT: &str = "the publications";
    let mut out = Vec::new();
    for row in r.query(WHAT, PUBLICATIONS_SQL, &[]).await? {
        out.push(Publication {
            name: r.get(WHAT, &row, "name")?,
            owner: r.get(WHAT, &row, "owner")?,
            all_tables: r.get(WHAT, &row, "all_tables")?,
        });
    }
    Ok(out)
}

/// A subscription of this database.
#[derive(Clone, Debug, Serialize)]
pub struct Subscription {
    pub name: String,
    pub enabled: bool,
    /// The slot it uses on the publisher.
    pub slot_name: Option<String>,
    pub publications: Vec<String>,
}

/// Subscriptions of this database (only columns every role may read: not `subconninfo`).
const SUBSCRIPTIONS_SQL: &str = "\
SELECT s.subname::text AS name, s.subenabled AS enabled, s.subslotname::text AS slot_name,
       s.subpublications::text[] AS publications
  FROM pg_subscription s
 WHERE s.subdbid = (SELECT oid FROM pg_database WHERE datname = current_database())
 ORDER BY s.subname";

pub(super) async fn read_subscriptions(
    r: &Reader<'_>,
    notes: &mut Vec<String>,
) -> Result<Vec<Subscription>, InspectError> {
    const WHAT: &str = "the subscriptions";
    let rows = match r.try_query(WHAT, SUBSCRIPTIONS_SQL, &[]).await? {
        Ok(rows) => rows,
        Err(message) => {
            notes.push(message);
            return Ok(Vec::new());
        }
    };
    let mut out = Vec::new();
    for row in &rows {
        out.push(Subscription {
            name: r.get(WHAT, row, "name")?,
            enabled: r.get(WHAT, row, "enabled")?,
            slot_name: r.get(WHAT, row, "slot_name")?,
            publications: r
                .get::<Option<Vec<String>>>(WHAT, row, "publications")?
                .unwrap_or_default(),
        });
    }
    Ok(out)
}

/// pglogical in this database.
#[derive(Clone, Debug, Serialize)]
pub struct Pglogical {
    pub version: String,
    pub schema: String,
    /// The local node's name, when a node was created (`pglogical.create_node`).
    pub node: Option<String>,
    /// Replication sets of the local node.
    pub replication_sets: Vec<String>,
    /// pglogical subscriptions of the local node.
    pub subscriptions: Vec<String>,
}

/// The local pglogical node's name (`{schema}` is replaced by the quoted extension schema).
const PGLOGICAL_NODE_SQL: &str = "\
SELECT n.node_name::text AS name
  FROM {schema}.local_node l JOIN {schema}.node n ON n.node_id = l.node_id";

/// The replication sets of the local node.
const PGLOGICAL_SETS_SQL: &str = "\
SELECT s.set_name::text AS name
  FROM {schema}.replication_set s JOIN {schema}.local_node l ON l.node_id = s.set_nodeid
 ORDER BY s.set_name";

/// The pglogical subscriptions of the local node.
const PGLOGICAL_SUBSCRIPTIONS_SQL: &str = "\
SELECT s.sub_name::text AS name
  FROM {schema}.subscription s JOIN {schema}.local_node l ON l.node_id = s.sub_target
 ORDER BY s.sub_name";

pub(super) async fn read_pglogical(
    r: &Reader<'_>,
    ext: &Extension,
    notes: &mut Vec<String>,
) -> Result<Pglogical, InspectError> {
    const WHAT: &str = "the pglogical node";
    let schema = quote::ident(&ext.schema);
    let mut names =
        |rows: Result<Vec<tokio_postgres::Row>, String>| -> Result<Vec<String>, InspectError> {
            match rows {
                Ok(rows) => rows
                    .iter()
                    .map(|row| r.get::<String>(WHAT, row, "name"))
                    .collect(),
                Err(message) => {
                    notes.push(message);
                    Ok(Vec::new())
                }
            }
        };
    let node = names(
        r.try_query(WHAT, &PGLOGICAL_NODE_SQL.replace("{schema}", &schema), &[])
            .await?,
    )?
    .into_iter()
    .next();
    let replication_sets = names(
        r.try_query(WHAT, &PGLOGICAL_SETS_SQL.replace("{schema}", &schema), &[])
            .await?,
    )?;
    let subscriptions = names(
        r.try_query(
            WHAT,
            &PGLOGICAL_SUBSCRIPTIONS_SQL.replace("{schema}", &schema),
            &[],
        )
        .await?,
    )?;
    Ok(Pglogical {
        version: ext.version.clone(),
        schema: ext.schema.clone(),
        node,
        replication_sets,
        subscriptions,
    })
}
