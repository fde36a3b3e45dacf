//! Reading a DDL message of the stream ([`parse`]) and turning it into what to run on the
//! target ([`handle`]).

use super::split::{kind_of_tag, split_statements, top_words, Kind, Statement};
use super::{
    prefix, DdlAction, DdlConfig, DdlError, DdlEvent, DdlPolicy, MissingValue, ReplayAs, VERSION,
};
use crate::cdc::pgoutput::LogicalMessage;
use crate::pg::quote;

/// Reads a message: `None` when it is not one of `plan_name`'s DDL messages.
pub fn parse(msg: &LogicalMessage, plan_name: &str) -> Result<Option<DdlEvent>, DdlError> {
    if msg.prefix != prefix(plan_name) {
        return Ok(None);
    }
    let malformed = |detail: String| DdlError::Malformed {
        lsn: msg.lsn,
        detail,
    };
    if !msg.transactional {
        return Err(malformed(
            "it is not transactional (the trigger's are)".to_string(),
        ));
    }
    let event: DdlEvent = serde_json::from_slice(&msg.content)
        .map_err(|e| malformed(format!("invalid JSON: {e}")))?;
    if event.v != VERSION {
        return Err(malformed(format!(
            "version {} (this pgmove reads version {VERSION})",
            event.v
        )));
    }
    Ok(Some(event))
}

/// Turns a logical decoding message into what to do on the target at its point of the stream.
///
/// `Ok(None)`: not a DDL message of this plan, the policy is `ignore`, the statement only
/// touches excluded tables, or the user applied it by hand ([`DdlConfig::applied_by_hand`]).
pub fn handle(msg: &LogicalMessage, cfg: &DdlConfig) -> Result<Option<DdlAction>, DdlError> {
    let event = match parse(msg, &cfg.plan_name)? {
        Some(e) => e,
        None => return Ok(None),
    };
    if cfg.applied_by_hand.contains(&msg.lsn) {
        return Ok(None);
    }
    if event.key.as_deref() != Some(cfg.key.as_str()) || cfg.key.is_empty() {
        return Err(DdlError::Untrusted { lsn: msg.lsn });
    }
    let excluded = |schema: &str, name: &str| {
        let full = format!("{schema}.{name}");
        cfg.exclude
            .iter()
            .any(|g| crate::plan::glob_match(g, &full))
    };
    let kept = event
        .objects
        .iter()
        .filter(|o| !excluded(&o.schema, &o.name))
        .count();
    if kept == 0 {
        return Ok(None);
    }
    if cfg.policy == DdlPolicy::Ignore {
        return Ok(None);
    }
    let chosen = statement_of(&event);
    let shown = match &chosen {
        Ok(s) => s.to_string(),
        Err(_) => event.sql.trim().to_string(),
    };
    let unreplayable = |reason: String| DdlError::Unreplayable {
        lsn: msg.lsn,
        sql: shown.clone(),
        reason,
    };
    if cfg.policy == DdlPolicy::Refuse {
        return Err(DdlError::Refused {
            lsn: msg.lsn,
            sql: shown.clone(),
        });
    }
    let statement = chosen.map_err(|e| unreplayable(e.to_string()))?;
    if kept < event.objects.len() {
        return Err(unreplayable(
            "it touches tables the plan excludes as well as replicated ones".to_string(),
        ));
    }
    if event.tag == "CREATE TABLE AS" || event.tag == "SELECT INTO" {
        let names: Vec<String> = event
            .tables
            .iter()
            .map(|t| format!("{}.{}", t.schema, t.name))
            .collect();
        return Err(unreplayable(format!(
            "{} writes its rows before the new table can be published, so they are not in the change stream, and running the query again on the target is not guaranteed to give the same rows; create and fill {} on the target yourself",
            event.tag,
            if names.is_empty() { "the table".to_string() } else { names.join(", ") }
        )));
    }
    if let Some(v) = event.volatile.first() {
        return Err(unreplayable(format!(
            "it gave the existing rows of {}.{} values computed row by row (column {}: a volatile default or an identity), in a table rewrite that logical decoding does not stream; the target would compute other values",
            v.schema, v.name, v.columns
        )));
    }
    if let Some(t) = event.tables.iter().find(|t| t.published && t.had_rows) {
        return Err(unreplayable(format!(
            "table {}.{} already held rows when it could be published (it got its primary key after them): those rows are not in the change stream; copy them to the target yourself",
            t.schema, t.name
        )));
    }
    if let Some(t) = event.tables.iter().find(|t| {
        !t.published
            && t.reason
                .as_deref()
                .is_some_and(|r| r.starts_with("could not") || r.starts_with("publication"))
    }) {
        return Err(unreplayable(format!(
            "new table {}.{} could not be published, so its rows would not arrive: {}",
            t.schema,
            t.name,
            t.reason.as_deref().unwrap_or("")
        )));
    }
    if let Some(m) = event.missing.iter().find(|m| m.error.is_some()) {
        return Err(unreplayable(format!(
            "the value existing rows of {}.{} got for new column {} cannot be reproduced: {}",
            m.schema,
            m.name,
            m.column,
            m.error.as_deref().unwrap_or("")
        )));
    }
    // `owner: target-user`: the target's connecting user runs it (and owns what it creates);
    // the source's role may not exist there. Otherwise the role that ran it on the source.
    let role = match (cfg.replay_as, event.role.as_deref()) {
        (ReplayAs::TargetUser, _) => None,
        (ReplayAs::SourceRole, Some(r)) if !r.is_empty() => Some(r),
        (ReplayAs::SourceRole, _) => {
            return Err(unreplayable("the role it ran as is unknown".to_string()))
        }
    };
    let sql = target_sql(statement, role, &event, &event.missing);
    let add_value_autocommit = (event.tag == "ALTER TYPE")
        .then(|| add_value_if_not_exists(statement))
        .flatten()
        .map(|s| autocommit_sql(&s, role, &event));
    Ok(Some(DdlAction {
        lsn: msg.lsn,
        tag: event.tag.clone(),
        statement: statement.to_string(),
        sql,
        new_tables: event.tables.clone(),
        add_value_autocommit,
    }))
}

/// `ALTER TYPE ... ADD VALUE [IF NOT EXISTS] ...` made idempotent: `IF NOT EXISTS` inserted
/// after `ADD VALUE` when missing. `None` when the statement is not an `ADD VALUE`.
pub fn add_value_if_not_exists(statement: &str) -> Option<String> {
    let words = top_words(statement);
    let upper: Vec<&str> = words.iter().map(|(w, _)| w.as_str()).collect();
    if upper.len() < 2 || upper[0] != "ALTER" || upper[1] != "TYPE" {
        return None;
    }
    let i = (2..upper.len().saturating_sub(1))
        .find(|&i| upper[i] == "ADD" && upper[i + 1] == "VALUE")?;
    if upper.get(i + 2..i + 5) == Some(&["IF", "NOT", "EXISTS"][..]) {
        return Some(statement.trim().to_string());
    }
    let at = words[i + 1].1;
    Some(
        format!(
            "{} IF NOT EXISTS{}",
            &statement[..at],
            statement[at..].trim_end()
        )
        .trim()
        .to_string(),
    )
}

/// `statement` run as `role` (`None`: the session's own) with the source's `search_path`, as
/// separate statements for a session outside a transaction block (each its own transaction),
/// both settings restored after.
fn autocommit_sql(statement: &str, role: Option<&str>, event: &DdlEvent) -> Vec<String> {
    let mut out = vec![
        "SELECT pg_catalog.set_config('pgmove.ddl_saved_role', pg_catalog.current_setting('role'), false), pg_catalog.set_config('pgmove.ddl_saved_path', pg_catalog.current_setting('search_path'), false)".to_string(),
    ];
    if let Some(role) = role {
        out.push(format!("SET ROLE {}", quote::ident(role)));
    }
    out.extend([
        format!(
            "SELECT pg_catalog.set_config('search_path', {}, false)",
            quote::literal(&event.search_path)
        ),
        statement.trim().to_string(),
        "SELECT pg_catalog.set_config('search_path', pg_catalog.current_setting('pgmove.ddl_saved_path'), false), pg_catalog.set_config('role', pg_catalog.current_setting('pgmove.ddl_saved_role'), false)".to_string(),
    ]);
    out
}

/// The statement wrapped for the target: run as `role` (`None`: the session's own role, no
/// `SET ROLE`) with the source's `search_path`, both restored after; then a check that the tables it touched are (or, dropped, are no longer)
/// where the source has them, so a schema or object the target lacks stops the apply instead
/// of the statement landing elsewhere; then the values of new columns.
fn target_sql(
    statement: &str,
    role: Option<&str>,
    event: &DdlEvent,
    missing: &[MissingValue],
) -> String {
    let search_path = event.search_path.as_str();
    let mut sql = String::new();
    sql.push_str("SELECT pg_catalog.set_config('pgmove.ddl_saved_role', pg_catalog.current_setting('role'), true), pg_catalog.set_config('pgmove.ddl_saved_path', pg_catalog.current_setting('search_path'), true);\n");
    if let Some(role) = role {
        sql.push_str(&format!("SET LOCAL ROLE {};\n", quote::ident(role)));
    }
    sql.push_str(&format!(
        "SELECT pg_catalog.set_config('search_path', {}, true);\n",
        quote::literal(search_path)
    ));
    sql.push_str(statement.trim());
    // A trailing line comment must not swallow the semicolon.
    sql.push_str("\n;\n");
    sql.push_str("SELECT pg_catalog.set_config('search_path', pg_catalog.current_setting('pgmove.ddl_saved_path'), true), pg_catalog.set_config('role', pg_catalog.current_setting('pgmove.ddl_saved_role'), true);\n");
    let dropped = event.tag == "DROP TABLE";
    for o in &event.objects {
        let table = quote::qualified(&o.schema, &o.name);
        if o.object_type == "enum" {
            // An enum type: it exists where the source has it (under its new name after
            // RENAME TO or SET SCHEMA).
            let problem = format!(
                "pgmove: after replaying the source's DDL, type {}.{} does not exist on the target",
                o.schema, o.name
            );
            let body = format!(
                "BEGIN IF pg_catalog.to_regtype({}) IS NULL THEN RAISE EXCEPTION '%', {}; END IF; END",
                quote::literal(&table),
                quote::literal(&problem)
            );
            sql.push_str(&format!("DO {};\n", quote::literal(&body)));
            continue;
        }
        let problem = if dropped {
            format!(
                "pgmove: after replaying the source's DDL, {}.{} still exists on the target",
                o.schema, o.name
            )
        } else {
            format!(
                "pgmove: after replaying the source's DDL, {}.{} does not exist on the target (did the source create its schema, or something it needs, with DDL that cdc.ddl does not replicate? only CREATE/ALTER/DROP TABLE and CREATE/ALTER TYPE of enums are)",
                o.schema, o.name
            )
        };
        let body = format!(
            "BEGIN IF pg_catalog.to_regclass({}) {} THEN RAISE EXCEPTION '%', {}; END IF; END",
            quote::literal(&table),
            if dropped { "IS NOT NULL" } else { "IS NULL" },
            quote::literal(&problem)
        );
        sql.push_str(&format!("DO {};\n", quote::literal(&body)));
    }
    for m in missing {
        sql.push_str(&missing_fix(m));
    }
    sql
}

/// Gives the rows that existed when a column was added the value the source gave them, when
/// the target computed another (a default like `now()` is evaluated once, on each server).
/// Every row of the table at this point of the stream existed then on the source.
fn missing_fix(m: &MissingValue) -> String {
    let table = quote::qualified(&m.schema, &m.name);
    let value = match &m.value {
        Some(v) => quote::literal(v),
        None => "NULL".to_string(),
    };
    let missing = match &m.missing {
        Some(v) => quote::literal(v),
        None => "NULL".to_string(),
    };
    let body = format!(
        "BEGIN IF (SELECT a.attmissingval::text FROM pg_catalog.pg_attribute a WHERE a.attrelid = {reg}::regclass AND a.attname = {col} AND NOT a.attisdropped) IS DISTINCT FROM {missing} THEN UPDATE ONLY {table} SET {ident} = {value}; END IF; END",
        reg = quote::literal(&table),
        col = quote::literal(&m.column),
        ident = quote::ident(&m.column),
    );
    format!("DO {};\n", quote::literal(&body))
}

/// Why the statement that fired the trigger cannot be told from its query string.
#[derive(Debug, thiserror::Error)]
enum NoStatement {
    #[error("command tag {0} is not one pgmove replays")]
    Tag(String),
    #[error("it ran inside {0:?}, not as a statement of its own (a function, procedure or DO block?): only the statements themselves can be replayed")]
    Inside(String),
    #[error("pgmove cannot tell which statement of the query string ran it (a DDL statement inside a function it called?)")]
    NotTheNth,
    #[error("pgmove cannot tell which statement of the query string ran it")]
    Ambiguous,
}

/// The statement of the query string that fired the trigger, or why it cannot be told.
fn statement_of(event: &DdlEvent) -> Result<&str, NoStatement> {
    let want = kind_of_tag(&event.tag).ok_or_else(|| NoStatement::Tag(event.tag.clone()))?;
    let pieces = split_statements(&event.sql);
    let firing: Vec<&Statement> = pieces.iter().filter(|p| p.kind != Kind::Other).collect();
    if firing.is_empty() {
        return Err(NoStatement::Inside(abbreviate(event.sql.trim(), 200)));
    }
    let n = event.n as usize;
    let p = match n.checked_sub(1).and_then(|i| firing.get(i)) {
        Some(p) if p.kind == want => *p,
        _ => return Err(NoStatement::NotTheNth),
    };
    if firing.len() > 1 {
        let text = p.text.to_lowercase();
        if !event
            .objects
            .iter()
            .any(|o| text.contains(&o.name.to_lowercase()))
        {
            return Err(NoStatement::Ambiguous);
        }
    }
    Ok(p.text)
}

fn abbreviate(s: &str, max: usize) -> String {
    if s.chars().count() <= max {
        return s.to_string();
    }
    let cut: String = s.chars().take(max).collect();
    format!("{cut}...")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cdc::ddl::NewTable;
    use crate::pg::Lsn;
    use bytes::Bytes;

    const KEY: &str = "k-123";

    fn cfg(policy: DdlPolicy) -> DdlConfig {
        DdlConfig {
            plan_name: "shop".into(),
            key: KEY.into(),
            policy,
            exclude: vec!["public.tmp_*".into()],
            applied_by_hand: vec![],
            replay_as: ReplayAs::SourceRole,
        }
    }

    fn msg(prefix: &str, json: serde_json::Value) -> LogicalMessage {
        LogicalMessage {
            xid: None,
            transactional: true,
            lsn: Lsn(0x1_0000_0010),
            prefix: prefix.into(),
            content: Bytes::from(json.to_string()),
        }
    }

    fn event(tag: &str, sql: &str, n: u32, objects: &[(&str, &str)]) -> serde_json::Value {
        serde_json::json!({
            "v": 1,
            "key": KEY,
            "tag": tag,
            "sql": sql,
            "n": n,
            "role": "app",
            "search_path": "\"$user\", public",
            "objects": objects.iter().map(|(s, t)| serde_json::json!({
                "type": "table", "schema": s, "name": t, "identity": format!("{s}.{t}")
            })).collect::<Vec<_>>(),
            "tables": [],
            "missing": [],
            "volatile": [],
        })
    }

    #[test]
    fn add_value_is_made_idempotent_and_enums_are_checked_as_types() {
        let f = add_value_if_not_exists;
        assert_eq!(
            f("ALTER TYPE mood ADD VALUE 'x'").as_deref(),
            Some("ALTER TYPE mood ADD VALUE IF NOT EXISTS 'x'")
        );
        assert_eq!(
            f("alter type \"add value\".m add  value 'y' before 'ok'").as_deref(),
            Some("alter type \"add value\".m add  value IF NOT EXISTS 'y' before 'ok'")
        );
        assert_eq!(
            f("ALTER TYPE m ADD VALUE if not exists 'x'").as_deref(),
            Some("ALTER TYPE m ADD VALUE if not exists 'x'")
        );
        assert_eq!(f("ALTER TYPE m RENAME VALUE 'a' TO 'b'"), None);
        assert_eq!(f("ALTER TABLE t ADD VALUE int"), None);
        assert_eq!(classify_one("alter type m add value 'x'"), Kind::AlterType);
        assert_eq!(
            classify_one("CREATE TYPE c AS ENUM ('a')"),
            Kind::CreateType
        );

        let mut e = event("ALTER TYPE", "ALTER TYPE mood ADD VALUE 'x'", 1, &[]);
        e["objects"] = serde_json::json!([{"type": "enum", "schema": "public", "name": "mood", "identity": "public.mood"}]);
        let a = handle(&msg("pgmove.ddl.shop", e), &cfg(DdlPolicy::Replicate))
            .expect("ok")
            .expect("an action");
        assert!(
            a.sql
                .contains("to_regtype(''\"public\".\"mood\"'') IS NULL"),
            "{}",
            a.sql
        );
        let auto = a
            .add_value_autocommit
            .expect("ADD VALUE has an autocommit form");
        assert!(auto.contains(&"ALTER TYPE mood ADD VALUE IF NOT EXISTS 'x'".to_string()));
        assert!(auto.iter().any(|s| s == "SET ROLE \"app\""), "{auto:?}");

        let mut e = event(
            "ALTER TYPE",
            "ALTER TYPE mood RENAME VALUE 'a' TO 'b'",
            1,
            &[],
        );
        e["objects"] = serde_json::json!([{"type": "enum", "schema": "public", "name": "mood", "identity": "public.mood"}]);
        let a = handle(&msg("pgmove.ddl.shop", e), &cfg(DdlPolicy::Replicate))
            .expect("ok")
            .expect("an action");
        assert_eq!(a.add_value_autocommit, None);
    }

    fn classify_one(sql: &str) -> Kind {
        split_statements(sql)[0].kind
    }

    #[test]
    fn replicate_wraps_the_statement_in_the_source_role_and_search_path() {
        let m = msg(
            "pgmove.ddl.shop",
            event(
                "ALTER TABLE",
                "ALTER TABLE t1 ADD COLUMN c text DEFAULT 'x' -- why",
                1,
                &[("public", "t1")],
            ),
        );
        let a = handle(&m, &cfg(DdlPolicy::Replicate))
            .expect("ok")
            .expect("an action");
        assert_eq!(
            a.statement,
            "ALTER TABLE t1 ADD COLUMN c text DEFAULT 'x' -- why"
        );
        assert_eq!(a.lsn, Lsn(0x1_0000_0010));
        assert!(a.sql.contains("SET LOCAL ROLE \"app\";"), "{}", a.sql);
        assert!(
            a.sql
                .contains("set_config('search_path', '\"$user\", public', true)"),
            "{}",
            a.sql
        );
        // Then a check that the table is where the source has it.
        assert!(
            a.sql
                .contains("pg_catalog.to_regclass(''\"public\".\"t1\"'') IS NULL"),
            "{}",
            a.sql
        );
        // The trailing comment cannot swallow the terminator.
        assert!(a.sql.contains("-- why\n;\n"), "{}", a.sql);
        let restore = a
            .sql
            .find("pgmove.ddl_saved_role'), true);\n")
            .expect("restore");
        assert!(restore > a.sql.find("-- why").expect("statement"));
    }

    /// `owner: target-user`: no `SET ROLE` to the source's role (it may not exist on the
    /// target), neither in the transaction nor in an autocommit `ADD VALUE`; the role need not
    /// even be known.
    #[test]
    fn target_user_replays_as_the_connecting_user() {
        let target_user = DdlConfig {
            replay_as: ReplayAs::TargetUser,
            ..cfg(DdlPolicy::Replicate)
        };
        let mut e = event(
            "ALTER TABLE",
            "ALTER TABLE t1 ADD COLUMN c int",
            1,
            &[("public", "t1")],
        );
        e["role"] = serde_json::Value::Null;
        let a = handle(&msg("pgmove.ddl.shop", e.clone()), &target_user)
            .expect("ok")
            .expect("an action");
        assert!(!a.sql.contains("SET LOCAL ROLE"), "{}", a.sql);
        assert!(
            a.sql.contains("ALTER TABLE t1 ADD COLUMN c int\n;"),
            "{}",
            a.sql
        );
        assert!(
            a.sql
                .contains("set_config('search_path', '\"$user\", public', true)"),
            "{}",
            a.sql
        );
        // With owner: keep, an unknown role cannot be replayed.
        assert!(matches!(
            handle(&msg("pgmove.ddl.shop", e), &cfg(DdlPolicy::Replicate)),
            Err(DdlError::Unreplayable { .. })
        ));
        let mut v = event("ALTER TYPE", "ALTER TYPE mood ADD VALUE 'x'", 1, &[]);
        v["objects"] = serde_json::json!([{"type": "enum", "schema": "public", "name": "mood", "identity": "public.mood"}]);
        let a = handle(&msg("pgmove.ddl.shop", v.clone()), &target_user)
            .expect("ok")
            .expect("an action");
        let auto = a.add_value_autocommit.expect("ADD VALUE");
        assert!(!auto.iter().any(|s| s.starts_with("SET ROLE")), "{auto:?}");
        assert!(
            auto.iter()
                .any(|s| s.contains("ADD VALUE IF NOT EXISTS 'x'")),
            "{auto:?}"
        );
        let keep = handle(&msg("pgmove.ddl.shop", v), &cfg(DdlPolicy::Replicate))
            .expect("ok")
            .expect("an action")
            .add_value_autocommit
            .expect("ADD VALUE");
        assert!(keep.iter().any(|s| s == "SET ROLE \"app\""), "{keep:?}");
    }

    #[test]
    fn other_plans_foreign_prefixes_and_ignore_give_nothing() {
        let e = event("DROP TABLE", "DROP TABLE t3", 1, &[("public", "t3")]);
        assert_eq!(
            handle(&msg("pgmove.ddl.other", e.clone()), &cfg(DdlPolicy::Refuse)),
            Ok(None)
        );
        assert_eq!(
            handle(&msg("something.else", e.clone()), &cfg(DdlPolicy::Refuse)),
            Ok(None)
        );
        assert_eq!(
            handle(&msg("pgmove.ddl.shop", e.clone()), &cfg(DdlPolicy::Ignore)),
            Ok(None)
        );
        // Only excluded tables: nothing to do, whatever the policy.
        let ex = event(
            "ALTER TABLE",
            "ALTER TABLE tmp_1 ADD c int",
            1,
            &[("public", "tmp_1")],
        );
        assert_eq!(
            handle(&msg("pgmove.ddl.shop", ex), &cfg(DdlPolicy::Refuse)),
            Ok(None)
        );
        // Applied by hand after a refusal.
        let mut c = cfg(DdlPolicy::Refuse);
        c.applied_by_hand.push(Lsn(0x1_0000_0010));
        assert_eq!(handle(&msg("pgmove.ddl.shop", e), &c), Ok(None));
    }

    #[test]
    fn refuse_names_the_statement() {
        let m = msg(
            "pgmove.ddl.shop",
            event(
                "DROP TABLE",
                "BEGIN; DROP TABLE t3; COMMIT;",
                1,
                &[("public", "t3")],
            ),
        );
        let e = handle(&m, &cfg(DdlPolicy::Refuse)).expect_err("refused");
        assert_eq!(
            e,
            DdlError::Refused {
                lsn: Lsn(0x1_0000_0010),
                sql: "DROP TABLE t3".into()
            }
        );
        let text = e.to_string();
        assert!(
            text.starts_with("DDL on the source (at 1/10): DROP TABLE t3; cdc.ddl is refuse: apply it on the target yourself, then restart apply"),
            "{text}"
        );
    }

    #[test]
    fn messages_without_the_key_or_garbled_are_errors() {
        let mut e = event("DROP TABLE", "DROP TABLE t3", 1, &[("public", "t3")]);
        e["key"] = serde_json::json!("forged");
        assert_eq!(
            handle(&msg("pgmove.ddl.shop", e), &cfg(DdlPolicy::Replicate)),
            Err(DdlError::Untrusted {
                lsn: Lsn(0x1_0000_0010)
            })
        );
        let mut bad = msg("pgmove.ddl.shop", serde_json::json!({}));
        bad.content = Bytes::from_static(b"{not json");
        assert!(matches!(
            handle(&bad, &cfg(DdlPolicy::Ignore)),
            Err(DdlError::Malformed { .. })
        ));
        let mut nontx = msg(
            "pgmove.ddl.shop",
            event("DROP TABLE", "DROP TABLE t3", 1, &[("public", "t3")]),
        );
        nontx.transactional = false;
        assert!(matches!(
            handle(&nontx, &cfg(DdlPolicy::Replicate)),
            Err(DdlError::Malformed { .. })
        ));
        let mut v2 = event("DROP TABLE", "DROP TABLE t3", 1, &[("public", "t3")]);
        v2["v"] = serde_json::json!(2);
        assert!(matches!(
            handle(&msg("pgmove.ddl.shop", v2), &cfg(DdlPolicy::Replicate)),
            Err(DdlError::Malformed { .. })
        ));
    }

    #[test]
    fn the_nth_statement_of_a_query_string_is_picked() {
        let sql = "BEGIN; CREATE TABLE t2 (id int PRIMARY KEY); INSERT INTO t2 VALUES (1); ALTER TABLE t1 ADD COLUMN c text DEFAULT 'x;y'; COMMIT;";
        let m = msg(
            "pgmove.ddl.shop",
            event("ALTER TABLE", sql, 2, &[("public", "t1")]),
        );
        let a = handle(&m, &cfg(DdlPolicy::Replicate))
            .expect("ok")
            .expect("action");
        assert_eq!(
            a.statement,
            "ALTER TABLE t1 ADD COLUMN c text DEFAULT 'x;y'"
        );
        let m = msg(
            "pgmove.ddl.shop",
            event("CREATE TABLE", sql, 1, &[("public", "t2")]),
        );
        let a = handle(&m, &cfg(DdlPolicy::Replicate))
            .expect("ok")
            .expect("action");
        assert_eq!(a.statement, "CREATE TABLE t2 (id int PRIMARY KEY)");
        // The ordinal does not match the tag: refused rather than guessed.
        let m = msg(
            "pgmove.ddl.shop",
            event("CREATE TABLE", sql, 2, &[("public", "t2")]),
        );
        assert!(matches!(
            handle(&m, &cfg(DdlPolicy::Replicate)),
            Err(DdlError::Unreplayable { .. })
        ));
    }

    #[test]
    fn ddl_inside_functions_and_ctas_are_unreplayable() {
        let m = msg(
            "pgmove.ddl.shop",
            event(
                "ALTER TABLE",
                "DO $$ BEGIN EXECUTE 'ALTER TABLE t1 ADD c int'; END $$",
                1,
                &[("public", "t1")],
            ),
        );
        let e = handle(&m, &cfg(DdlPolicy::Replicate)).expect_err("unreplayable");
        assert!(e.to_string().contains("inside"), "{e}");
        let mut ctas = event(
            "CREATE TABLE AS",
            "CREATE TABLE t4 AS SELECT 1 AS id",
            1,
            &[("public", "t4")],
        );
        ctas["tables"] = serde_json::json!([{"schema": "public", "name": "t4", "published": false, "had_rows": false, "reason": "no replica identity (no primary key)"}]);
        let e = handle(&msg("pgmove.ddl.shop", ctas), &cfg(DdlPolicy::Replicate))
            .expect_err("unreplayable");
        assert!(e.to_string().contains("public.t4"), "{e}");
        let mut vol = event(
            "ALTER TABLE",
            "ALTER TABLE t1 ADD r float DEFAULT random()",
            1,
            &[("public", "t1")],
        );
        vol["volatile"] = serde_json::json!([{"schema": "public", "name": "t1", "columns": "r"}]);
        assert!(matches!(
            handle(&msg("pgmove.ddl.shop", vol), &cfg(DdlPolicy::Replicate)),
            Err(DdlError::Unreplayable { .. })
        ));
        let mut late = event(
            "ALTER TABLE",
            "ALTER TABLE t5 ADD PRIMARY KEY (id)",
            1,
            &[("public", "t5")],
        );
        late["tables"] = serde_json::json!([{"schema": "public", "name": "t5", "published": true, "had_rows": true, "reason": null}]);
        assert!(matches!(
            handle(&msg("pgmove.ddl.shop", late), &cfg(DdlPolicy::Replicate)),
            Err(DdlError::Unreplayable { .. })
        ));
    }

    #[test]
    fn missing_values_are_set_on_the_target_when_they_differ() {
        let mut e = event(
            "ALTER TABLE",
            "ALTER TABLE t1 ADD ts timestamptz DEFAULT now()",
            1,
            &[("public", "t1")],
        );
        e["missing"] = serde_json::json!([{"schema": "public", "name": "t1", "column": "ts",
            "missing": "{\"2026-01-01 00:00:00+00\"}", "value": "2026-01-01 00:00:00+00", "error": null}]);
        let a = handle(&msg("pgmove.ddl.shop", e), &cfg(DdlPolicy::Replicate))
            .expect("ok")
            .expect("action");
        assert!(
            a.sql.contains("DO 'BEGIN IF (SELECT a.attmissingval::text"),
            "{}",
            a.sql
        );
        assert!(
            a.sql
                .contains("UPDATE ONLY \"public\".\"t1\" SET \"ts\" = ''2026-01-01 00:00:00+00''"),
            "{}",
            a.sql
        );
    }

    #[test]
    fn new_tables_are_reported() {
        let mut e = event(
            "CREATE TABLE",
            "CREATE TABLE log (at timestamptz)",
            1,
            &[("public", "log")],
        );
        e["tables"] = serde_json::json!([{"schema": "public", "name": "log", "published": false, "had_rows": false, "reason": "no replica identity (no primary key)"}]);
        let a = handle(&msg("pgmove.ddl.shop", e), &cfg(DdlPolicy::Replicate))
            .expect("ok")
            .expect("action");
        let un: Vec<&NewTable> = a.unpublished().collect();
        assert_eq!(un.len(), 1);
        assert_eq!(un[0].name, "log");
    }
}
