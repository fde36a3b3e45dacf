//! DDL during change capture against real servers: the event trigger puts each CREATE/ALTER/DROP
//! TABLE into the stream at its place, publishes new tables from their creation on, and
//! `cdc::ddl::handle` turns each message into what to run on the target; replaying the stream
//! in order on a second server leaves it identical to the source.

use crate::support;

use std::collections::HashMap;

use pgmove::cdc::apply::{self, Change, Rel, Val};
use pgmove::cdc::ddl::{self, DdlAction, DdlConfig, DdlError, DdlPolicy};
use pgmove::cdc::pgoutput::{self, LogicalMessage, Message, Value};
use pgmove::pg::{Endpoint, Lsn, Secret, Side};
use support::{Cluster, Options};

const PLAN: &str = "ddltest";
const PUBLICATION: &str = "pgmove_ddltest";
const SLOT: &str = "pgmove_ddltest";

fn no_env(_: &str) -> Option<String> {
    None
}

fn endpoint(c: &Cluster, side: Side) -> Endpoint {
    Endpoint::from_dsn(
        side,
        &c.uri_no_password("shop"),
        Some(Secret::new(c.password.clone())),
        &no_env,
    )
    .expect("valid dsn")
}

/// The same schema and rows on both servers, as after the full load.
const SCHEMA: &str = "CREATE ROLE app LOGIN PASSWORD 'app-pw';
     GRANT CREATE, USAGE ON SCHEMA public TO app;
     CREATE SCHEMA app_s AUTHORIZATION app;
     CREATE TABLE t1 (id int PRIMARY KEY, v text);
     CREATE TABLE t3 (id int PRIMARY KEY);
     INSERT INTO t1 VALUES (1, 'a'), (2, 'b');
     INSERT INTO t3 VALUES (1);
     CREATE TABLE parts (id int, k int, PRIMARY KEY (id, k)) PARTITION BY RANGE (k);
     CREATE TABLE parts_1 PARTITION OF parts FOR VALUES FROM (0) TO (10);";

/// The slot's changes, decoded, grouped by transaction (Begin..Commit inclusive).
async fn read_stream(src: &Cluster) -> Vec<Vec<Message>> {
    let c = src.client("shop").await;
    // Decoding reads up to the flushed WAL; the test servers commit asynchronously.
    c.batch_execute("SELECT pg_switch_wal()")
        .await
        .expect("flush the WAL");
    let rows = c
        .query(
            "SELECT data FROM pg_logical_slot_peek_binary_changes($1, NULL, NULL, 'proto_version', '1', 'publication_names', $2, 'messages', 'true')",
            &[&SLOT, &PUBLICATION],
        )
        .await
        .expect("peek changes");
    let mut txns = Vec::new();
    let mut cur: Vec<Message> = Vec::new();
    for r in rows {
        let data: Vec<u8> = r.get(0);
        let m = pgoutput::decode(&data, false).expect("decodes");
        let end = matches!(m, Message::Commit(_));
        cur.push(m);
        if end {
            txns.push(std::mem::take(&mut cur));
        }
    }
    assert!(cur.is_empty(), "a transaction without its commit: {cur:?}");
    txns
}

fn ddl_messages(txn: &[Message]) -> Vec<&LogicalMessage> {
    txn.iter()
        .filter_map(|m| match m {
            Message::Logical(l) if l.prefix == ddl::prefix(PLAN) => Some(l),
            _ => None,
        })
        .collect()
}

/// Position of the Relation message of `name` and of its first Insert.
fn relation_and_insert(txn: &[Message], name: &str) -> (Option<usize>, Option<usize>) {
    let mut oid = None;
    let mut rel_at = None;
    let mut ins_at = None;
    for (i, m) in txn.iter().enumerate() {
        match m {
            Message::Relation(r) if r.name == name => {
                oid = Some(r.oid);
                rel_at.get_or_insert(i);
            }
            Message::Insert(ins) if Some(ins.relation) == oid => {
                ins_at.get_or_insert(i);
            }
            _ => {}
        }
    }
    (rel_at, ins_at)
}

fn val(v: &Value) -> Val {
    match v {
        Value::Null => Val::Null,
        Value::Unchanged => Val::Unchanged,
        Value::Text(b) => Val::Text(String::from_utf8(b.to_vec()).expect("utf8")),
        Value::Binary(_) => panic!("binary values were not asked for"),
    }
}

/// Replays whole transactions on the target the way the applier must: changes converted with
/// the relation as it was when they were made, each DDL action run at its place.
struct Replayer {
    rels: HashMap<u32, pgoutput::Relation>,
    cfg: DdlConfig,
}

impl Replayer {
    fn txn_sql(&mut self, txn: &[Message]) -> Result<String, DdlError> {
        let mut sql = String::from("BEGIN;\n");
        let mut pending: Vec<Change> = Vec::new();
        let flush = |pending: &mut Vec<Change>,
                     rels: &HashMap<u32, pgoutput::Relation>,
                     sql: &mut String| {
            let lookup = |oid: u32| {
                rels.get(&oid).map(|r| Rel {
                    schema: r.schema().to_string(),
                    name: r.name.clone(),
                    columns: r.columns.iter().map(|c| c.name.clone()).collect(),
                    key: r.columns.iter().map(|c| c.is_key()).collect(),
                    full: r.replica_identity == pgoutput::ReplicaIdentity::Full,
                    types: r.columns.iter().map(|c| c.type_oid).collect(),
                })
            };
            for s in apply::to_sql(pending, &lookup).expect("changes to SQL") {
                sql.push_str(&s);
                sql.push('\n');
            }
            pending.clear();
        };
        for m in txn {
            match m {
                Message::Relation(r) => {
                    // Changes made before the relation changed use its earlier shape.
                    flush(&mut pending, &self.rels, &mut sql);
                    self.rels.insert(r.oid, r.clone());
                }
                Message::Insert(i) => pending.push(Change::Insert {
                    rel: i.relation,
                    new: i.new.iter().map(val).collect(),
                }),
                Message::Logical(l) => {
                    if let Some(action) = ddl::handle(l, &self.cfg)? {
                        flush(&mut pending, &self.rels, &mut sql);
                        sql.push_str(&action.sql);
                    }
                }
                Message::Begin(_) | Message::Commit(_) => {}
                other => panic!("unexpected message in this test: {other:?}"),
            }
        }
        flush(&mut pending, &self.rels, &mut sql);
        sql.push_str("COMMIT;");
        Ok(sql)
    }
}

fn single_action(txn: &[Message], cfg: &DdlConfig) -> DdlAction {
    let msgs = ddl_messages(txn);
    assert_eq!(msgs.len(), 1, "{txn:?}");
    ddl::handle(msgs[0], cfg)
        .expect("handled")
        .expect("an action")
}

#[tokio::test]
async fn ddl_is_streamed_in_place_and_new_tables_from_their_creation() {
    let src = Cluster::start(Options::logical());
    let dst = Cluster::start(Options::default());
    src.create_db("shop");
    dst.create_db("shop");
    src.psql("shop", SCHEMA);
    dst.psql("shop", SCHEMA);
    src.psql(
        "shop",
        &format!("CREATE PUBLICATION {PUBLICATION} FOR TABLE t1, t3, parts"),
    );
    let key = ddl::install(
        &endpoint(&src, Side::Source),
        PLAN,
        &[],
        &["public.skip_*".to_string()],
    )
    .await
    .expect("install the trigger");
    assert_eq!(key.len(), 36, "a uuid: {key}");
    src.psql(
        "shop",
        &format!("SELECT pg_create_logical_replication_slot('{SLOT}', 'pgoutput')"),
    );

    // 1. One query string, one transaction: a new table filled right away, a column added
    //    with a constant default, a row with it.
    src.psql(
        "shop",
        "BEGIN; CREATE TABLE t2 (id int PRIMARY KEY); INSERT INTO t2 VALUES (1); ALTER TABLE t1 ADD COLUMN c text DEFAULT 'x'; INSERT INTO t1 VALUES (3, 'c'); COMMIT;",
    );
    // 2. A default evaluated once: the existing rows keep the source's now().
    src.psql(
        "shop",
        "ALTER TABLE t1 ADD COLUMN at timestamptz DEFAULT now()",
    );
    // 3. A row with its own value, then an ALTER of that column: it is not given the stored
    //    default again. And a table dropped by the second statement of the string.
    src.psql(
        "shop",
        "INSERT INTO t1 (id, v, at) VALUES (4, 'd', '2000-01-01 00:00:00+00'); ALTER TABLE t1 ALTER COLUMN at SET NOT NULL; DROP TABLE t3;",
    );
    // 4. Another role, logged in as itself, with its own search_path: the table is published
    //    by the trigger (the role does not own the publication) and owned by it on the target.
    {
        let (app, conn) = tokio_postgres::connect(
            &format!(
                "host=127.0.0.1 port={} user=app password=app-pw dbname=shop sslmode=disable",
                src.port
            ),
            tokio_postgres::NoTls,
        )
        .await
        .expect("connect as app");
        tokio::spawn(conn);
        app.batch_execute(
            "SET search_path = app_s, public; CREATE TABLE app_t (id int PRIMARY KEY, note text); INSERT INTO app_t VALUES (7, 'seven');",
        )
        .await
        .expect("app's DDL");
        // 5. Anyone can emit a message with the prefix: without the key it is not run.
        app.batch_execute(&format!(
            "SELECT pg_logical_emit_message(true, 'pgmove.ddl.{PLAN}', '{{\"v\":1,\"key\":\"guess\",\"tag\":\"DROP TABLE\",\"sql\":\"DROP TABLE t1\",\"n\":1,\"role\":\"postgres\",\"search_path\":\"public\",\"objects\":[{{\"type\":\"table\",\"schema\":\"public\",\"name\":\"t1\",\"identity\":\"public.t1\"}}]}}')"
        ))
        .await
        .expect("emit a forged message");
    }
    // 6. Excluded by the plan: no message, not published.
    src.psql(
        "shop",
        "CREATE TABLE skip_me (id int PRIMARY KEY); INSERT INTO skip_me VALUES (1);",
    );
    // 7. No key: created on the target, but not published (it would break the source's
    //    UPDATEs and DELETEs), and said so.
    src.psql("shop", "CREATE TABLE nokey (a int)");
    src.psql("shop", "UPDATE nokey SET a = 1");
    // 8. A key added in the same transaction: published then, and its row streamed.
    src.psql(
        "shop",
        "BEGIN; CREATE TABLE later (id int); ALTER TABLE later ADD PRIMARY KEY (id); INSERT INTO later VALUES (8); COMMIT;",
    );
    // What cannot be replayed exactly.
    // 9. Rows from a query, not in the stream.
    src.psql(
        "shop",
        "CREATE TABLE t4 AS SELECT g AS id FROM generate_series(1, 3) g",
    );
    // 10. Per-row values computed in a rewrite.
    src.psql("shop", "ALTER TABLE t1 ADD COLUMN r float DEFAULT random()");
    // 11. DDL inside a DO block.
    src.psql(
        "shop",
        "DO $$ BEGIN EXECUTE 'ALTER TABLE t2 ADD COLUMN z int'; END $$",
    );
    // 12. A new partition of a published partitioned table: published with it (the trigger
    //     leaves the publication alone), its rows streamed from its creation on.
    src.psql(
        "shop",
        "BEGIN; CREATE TABLE parts_2 PARTITION OF parts FOR VALUES FROM (10) TO (20); INSERT INTO parts VALUES (1, 15), (2, 5); COMMIT;",
    );

    let txns = read_stream(&src).await;
    let with_ddl: Vec<&Vec<Message>> = txns
        .iter()
        .filter(|t| {
            t.iter()
                .any(|m| matches!(m, Message::Logical(_)) || matches!(m, Message::Insert(_)))
        })
        .collect();
    let summary: Vec<Vec<String>> = with_ddl
        .iter()
        .map(|t| {
            t.iter()
                .filter_map(|m| match m {
                    Message::Logical(l) => Some(
                        String::from_utf8_lossy(&l.content)
                            .chars()
                            .take(90)
                            .collect(),
                    ),
                    Message::Insert(_) => Some("insert".to_string()),
                    _ => None,
                })
                .collect()
        })
        .collect();
    assert_eq!(with_ddl.len(), 11, "{summary:#?}");
    let cfg = DdlConfig {
        plan_name: PLAN.to_string(),
        key: key.clone(),
        policy: DdlPolicy::Replicate,
        exclude: vec!["public.skip_*".to_string()],
        applied_by_hand: vec![],
        replay_as: ddl::ReplayAs::SourceRole,
    };

    // 1: the CREATE TABLE message comes first, then t2's Relation and Insert (published from
    // its creation), then the ALTER TABLE message, then t1's new shape and row.
    let t1 = with_ddl[0];
    let msgs = ddl_messages(t1);
    assert_eq!(msgs.len(), 2, "{t1:#?}");
    let pos = |l: &LogicalMessage| {
        t1.iter()
            .position(|m| matches!(m, Message::Logical(x) if x.lsn == l.lsn))
            .expect("in the transaction")
    };
    let (rel_t2, ins_t2) = relation_and_insert(t1, "t2");
    let (rel_t1, ins_t1) = relation_and_insert(t1, "t1");
    let (rel_t2, ins_t2) = (rel_t2.expect("t2 relation"), ins_t2.expect("t2's row"));
    assert!(pos(msgs[0]) < rel_t2 && rel_t2 < ins_t2, "{t1:#?}");
    assert!(ins_t2 < pos(msgs[1]), "{t1:#?}");
    assert!(
        pos(msgs[1]) < rel_t1.expect("t1") && rel_t1 < ins_t1,
        "{t1:#?}"
    );
    let a = ddl::handle(msgs[0], &cfg).expect("ok").expect("action");
    assert_eq!(a.tag, "CREATE TABLE");
    assert_eq!(a.statement, "CREATE TABLE t2 (id int PRIMARY KEY)");
    assert_eq!(a.new_tables.len(), 1);
    assert!(a.new_tables[0].published && !a.new_tables[0].had_rows);
    assert_eq!(a.unpublished().count(), 0);
    let b = ddl::handle(msgs[1], &cfg).expect("ok").expect("action");
    assert_eq!(b.statement, "ALTER TABLE t1 ADD COLUMN c text DEFAULT 'x'");
    // The other policies.
    match ddl::handle(msgs[1], &DdlConfig { policy: DdlPolicy::Refuse, ..cfg.clone() }) {
        Err(e @ DdlError::Refused { .. }) => assert!(
            e.to_string().contains("ALTER TABLE t1 ADD COLUMN c text DEFAULT 'x'; cdc.ddl is refuse: apply it on the target yourself, then restart apply"),
            "{e}"
        ),
        other => panic!("not refused: {other:?}"),
    }
    assert_eq!(
        ddl::handle(
            msgs[1],
            &DdlConfig {
                policy: DdlPolicy::Ignore,
                ..cfg.clone()
            }
        ),
        Ok(None)
    );
    assert_eq!(
        ddl::handle(
            msgs[1],
            &DdlConfig {
                plan_name: "other".into(),
                ..cfg.clone()
            }
        ),
        Ok(None)
    );

    // 2: the source's value for the existing rows travels with the statement.
    let a = single_action(with_ddl[1], &cfg);
    assert_eq!(
        a.statement,
        "ALTER TABLE t1 ADD COLUMN at timestamptz DEFAULT now()"
    );
    assert!(
        a.sql.contains("UPDATE ONLY \"public\".\"t1\" SET \"at\""),
        "{}",
        a.sql
    );
    // 3.
    let msgs = ddl_messages(with_ddl[2]);
    assert_eq!(msgs.len(), 2);
    let a = ddl::handle(msgs[0], &cfg).expect("ok").expect("action");
    assert_eq!(a.statement, "ALTER TABLE t1 ALTER COLUMN at SET NOT NULL");
    assert!(!a.sql.contains("UPDATE"), "{}", a.sql);
    let a = ddl::handle(msgs[1], &cfg).expect("ok").expect("action");
    assert_eq!(
        (a.tag.as_str(), a.statement.as_str()),
        ("DROP TABLE", "DROP TABLE t3")
    );
    // 4: as the role that ran it, with its search_path; its row streamed.
    let t4 = with_ddl[3];
    let a = single_action(t4, &cfg);
    assert_eq!(
        a.statement,
        "CREATE TABLE app_t (id int PRIMARY KEY, note text)"
    );
    assert!(a.sql.contains("SET LOCAL ROLE \"app\";"), "{}", a.sql);
    assert!(a.sql.contains("'app_s, public'"), "{}", a.sql);
    assert!(relation_and_insert(t4, "app_t").1.is_some(), "{t4:#?}");
    // 5: the forged message.
    let forged = ddl_messages(with_ddl[4]);
    assert_eq!(
        ddl::handle(forged[0], &cfg),
        Err(DdlError::Untrusted { lsn: forged[0].lsn })
    );
    // 6: skip_me left no trace; 7: nokey is said to be unpublished.
    let t7 = with_ddl[5];
    let a = single_action(t7, &cfg);
    assert_eq!(a.statement, "CREATE TABLE nokey (a int)");
    let un: Vec<_> = a.unpublished().collect();
    assert_eq!(un.len(), 1);
    assert_eq!(
        un[0].reason.as_deref(),
        Some("no replica identity (no primary key)")
    );
    // 8: published by the ALTER, before its row.
    let t8 = with_ddl[6];
    let msgs = ddl_messages(t8);
    assert_eq!(msgs.len(), 2, "{t8:#?}");
    let c = ddl::handle(msgs[0], &cfg).expect("ok").expect("action");
    assert!(!c.new_tables[0].published);
    let d = ddl::handle(msgs[1], &cfg).expect("ok").expect("action");
    assert_eq!(d.statement, "ALTER TABLE later ADD PRIMARY KEY (id)");
    assert!(
        d.new_tables[0].published && !d.new_tables[0].had_rows,
        "{d:?}"
    );
    assert!(relation_and_insert(t8, "later").1.is_some(), "{t8:#?}");
    // 9, 10, 11.
    for (i, what) in [(7, "CREATE TABLE AS"), (8, "row by row"), (9, "inside")] {
        let msgs = ddl_messages(with_ddl[i]);
        match ddl::handle(msgs[0], &cfg) {
            Err(e @ DdlError::Unreplayable { .. }) => {
                assert!(e.to_string().contains(what), "{e}")
            }
            other => panic!("{what}: {other:?}"),
        }
    }
    // 12.
    let t12 = with_ddl[10];
    let a = single_action(t12, &cfg);
    assert_eq!(
        a.statement,
        "CREATE TABLE parts_2 PARTITION OF parts FOR VALUES FROM (10) TO (20)"
    );
    assert!(a.new_tables[0].published, "{a:?}");
    assert!(relation_and_insert(t12, "parts_2").1.is_some(), "{t12:#?}");
    assert!(relation_and_insert(t12, "parts_1").1.is_some(), "{t12:#?}");
    assert_eq!(
        src.psql(
            "shop",
            &format!("SELECT count(*) FROM pg_publication_rel pr JOIN pg_publication p ON p.oid = pr.prpubid WHERE p.pubname = '{PUBLICATION}' AND pr.prrelid = 'parts_2'::regclass")
        ),
        "0",
        "the partition was added to the publication on its own"
    );
    assert!(
        !txns
            .iter()
            .flatten()
            .any(|m| matches!(m, Message::Relation(r) if r.name == "skip_me")),
        "an excluded table was published"
    );

    // Replaying 1-8 and 12 on the target leaves it identical to the source.
    let mut replayer = Replayer {
        rels: HashMap::new(),
        cfg: cfg.clone(),
    };
    let target = dst.client("shop").await;
    let mut settings: String = apply::SESSION_SETTINGS
        .iter()
        .map(|(k, v)| format!("SET {k} = '{v}';"))
        .collect();
    settings.push_str("SET session_replication_role = replica;");
    target.batch_execute(&settings).await.expect("settings");
    for (i, txn) in with_ddl.iter().enumerate() {
        if i == 4 || (7..=9).contains(&i) {
            continue; // the forged message, and what cannot be replayed
        }
        let sql = replayer.txn_sql(txn).expect("replayable");
        target
            .batch_execute(&sql)
            .await
            .unwrap_or_else(|e| panic!("replaying transaction {}: {e:?}\n{sql}", i + 1));
    }
    let compare = |sql: &str| {
        let (s, d) = (src.psql("shop", sql), dst.psql("shop", sql));
        assert_eq!(s, d, "{sql}");
        s
    };
    // The source has the random() column the target never got: compare the rest.
    let rows = compare("SELECT id, v, c, at FROM t1 ORDER BY id");
    assert_eq!(rows.lines().count(), 4, "{rows}");
    // t2 got a column from the DO block, which is not replayed.
    compare("SELECT id FROM t2 ORDER BY id");
    compare("SELECT * FROM app_s.app_t ORDER BY id");
    compare("SELECT * FROM later ORDER BY id");
    compare("SELECT count(*) FROM nokey");
    compare("SELECT tableoid::regclass, * FROM parts ORDER BY id");
    compare(
        "SELECT c.relname, pg_get_userbyid(c.relowner), a.attname, format_type(a.atttypid, a.atttypmod), pg_get_expr(d.adbin, d.adrelid)
           FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
           JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped
           LEFT JOIN pg_attrdef d ON d.adrelid = c.oid AND d.adnum = a.attnum
          WHERE n.nspname IN ('public', 'app_s') AND c.relkind = 'r' AND c.relname NOT IN ('t1', 't2', 't4', 'skip_me')
          ORDER BY 1, 3",
    );
    assert_eq!(
        dst.psql("shop", "SELECT to_regclass('t3') IS NULL, pg_get_userbyid(relowner) FROM pg_class WHERE relname = 'app_t'"),
        "t|app"
    );
}

#[tokio::test]
async fn uninstall_removes_everything_and_install_is_idempotent() {
    let src = Cluster::start(Options::logical());
    src.create_db("shop");
    src.psql(
        "shop",
        &format!(
            "CREATE TABLE t1 (id int PRIMARY KEY); CREATE PUBLICATION {PUBLICATION} FOR TABLE t1"
        ),
    );
    let ep = endpoint(&src, Side::Source);
    assert_eq!(ddl::read_key(&ep, PLAN).await.expect("read"), None);
    let key = ddl::install(&ep, PLAN, &["public".to_string()], &[])
        .await
        .expect("install");
    let again = ddl::install(&ep, PLAN, &["public".to_string()], &[])
        .await
        .expect("install again");
    assert_eq!(key, again, "a rerun keeps the key");
    assert_eq!(
        ddl::read_key(&ep, PLAN).await.expect("read"),
        Some(key.clone())
    );
    let catalog =
        "SELECT (SELECT count(*) FROM pg_event_trigger WHERE evtname LIKE 'pgmove_ddltest_ddl%')
                 || '|' || (SELECT count(*) FROM pg_proc WHERE proname LIKE 'pgmove_ddltest_ddl%')
                 || '|' || (SELECT count(*) FROM pg_class WHERE relname LIKE 'pgmove_ddltest_ddl%')
                 || '|' || (SELECT count(*) FROM pg_namespace WHERE nspname = 'pgmove')";
    assert_eq!(src.psql("shop", catalog), "4|2|1|1");
    // Only the owner reads the key.
    src.psql("shop", "CREATE ROLE someone LOGIN");
    let out = src.psql_output(
        "shop",
        "SET ROLE someone; SELECT key FROM pgmove.pgmove_ddltest_ddl_key",
    );
    assert!(!out.status.success(), "the key is readable by anyone");

    ddl::uninstall(&ep, PLAN).await.expect("uninstall");
    assert_eq!(src.psql("shop", catalog), "0|0|0|0");
    ddl::uninstall(&ep, PLAN).await.expect("uninstall twice");
    // DDL still works and nothing is emitted once it is gone.
    src.psql(
        "shop",
        &format!("SELECT pg_create_logical_replication_slot('{SLOT}', 'pgoutput')"),
    );
    src.psql("shop", "ALTER TABLE t1 ADD COLUMN c int");
    assert!(read_stream(&src)
        .await
        .iter()
        .all(|t| ddl_messages(t).is_empty()));

    // The schema stays when something else lives in it.
    ddl::install(&ep, PLAN, &[], &[]).await.expect("install");
    src.psql("shop", "CREATE TABLE pgmove.other (x int)");
    ddl::uninstall(&ep, PLAN).await.expect("uninstall");
    assert_eq!(src.psql("shop", catalog), "0|0|0|1");
}

#[test]
fn lsn_display_used_in_errors() {
    // The LSN the errors name is the one the applier would be told to skip.
    assert_eq!(Lsn(0x1_0000_0010).to_string(), "1/10");
}
