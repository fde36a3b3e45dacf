//! The DDL capture installed once by the master user, for a migrating role that may not create
//! event triggers (Amazon RDS and Aurora: only a member of `rds_superuser` may; self-managed:
//! only a superuser).
//!
//! `pgmove setup-sql PLAN` prints [`setup_sql`]: in one transaction, the capture exactly as
//! [`super::install_sql`] writes it (the `pgmove` schema and its marker if missing, the key
//! table, the two functions and the four event triggers, their record in `pgmove.objects`),
//! then a comment on the capture function that says the master installed it
//! ([`SETUP_COMMENT`]), and what the plan's source user needs to use it: USAGE on the schema,
//! SELECT on the key table and on the record, and, for the trigger (running as the master) to
//! add new tables to the publication the migrating role creates, the master's membership in
//! that role.
//!
//! [`detect`] reads the source's catalogs (readable by any role) and says whether the plan's
//! capture is there as this pgmove would install it: same function bodies (so the same
//! version, plan, schemas and excludes), the four triggers enabled ALWAYS and running the
//! plan's function, and the key readable by the connected role. [`super::install`] uses
//! it: a capture that is [`Capture::Ready`] is used as it is (never dropped and created again,
//! so a resumed apply keeps the event triggers it had); one the master installed that differs
//! is an error telling to run the setup again; otherwise pgmove installs its own, as before.
//! Preflight ([`preflight`]) blocks a plan whose role may not create event triggers while the
//! master's capture is not there, with the command as the fix; cleanup leaves a capture the
//! master installed and prints [`super::uninstall_sql`] for the master to run.

use super::install::{emit_body, trigger_body};
use super::{install_sql, names};
use crate::inspect::{Inventory, Platform};
use crate::pg::{quote, Endpoint, PgError, Side};
use crate::plan::{Ddl, Plan, StrategyChoice};
use crate::report::{Finding, Severity};

/// The comment [`setup_sql`] gives the capture function: the capture is the master user's.
pub const SETUP_COMMENT: &str =
    "pgmove DDL capture installed by the master user (pgmove setup-sql); pgmove cleanup leaves it";

/// The check name of the preflight finding (the same as the check it replaces).
pub const CHECK: &str = "ddl-event-trigger";

/// What the source holds of a plan's DDL capture.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Capture {
    /// Nothing of it.
    Absent,
    /// Installed as this pgmove installs it, enabled, and its key readable by the connected
    /// role: used as it is.
    Ready {
        /// Installed by the master user with `pgmove setup-sql` ([`SETUP_COMMENT`]).
        by_master: bool,
    },
    /// Something of it is there, but not as this pgmove installs it.
    Differs {
        by_master: bool,
        /// What differs, for people.
        what: String,
    },
}

impl Capture {
    /// Installed by the master user with `pgmove setup-sql`.
    pub fn by_master(&self) -> bool {
        matches!(
            self,
            Capture::Ready { by_master: true }
                | Capture::Differs {
                    by_master: true,
                    ..
                }
        )
    }
}

/// The plan's capture as the catalogs show it; one row. `$1` the schema (`pgmove`), `$2` the
/// capture function's name, `$3` the trigger function's name, `$4` the four event triggers'
/// names, `$5` the key table's name. Columns: the capture function's body (`prosrc`, NULL
/// when it is missing) and its comment; the trigger function's body; how many of the four
/// event triggers exist, enabled ALWAYS, running the trigger function; whether the key table
/// exists; whether the connected role may read it (USAGE on the schema and SELECT on it).
const DETECT_SQL: &str = "SELECT
  (SELECT p.prosrc FROM pg_catalog.pg_proc p JOIN pg_catalog.pg_namespace n ON n.oid = p.pronamespace
    WHERE n.nspname = $1 AND p.proname = $2 AND p.pronargs = 4 LIMIT 1),
  (SELECT pg_catalog.obj_description(p.oid, 'pg_proc') FROM pg_catalog.pg_proc p
     JOIN pg_catalog.pg_namespace n ON n.oid = p.pronamespace
    WHERE n.nspname = $1 AND p.proname = $2 AND p.pronargs = 4 LIMIT 1),
  (SELECT p.prosrc FROM pg_catalog.pg_proc p JOIN pg_catalog.pg_namespace n ON n.oid = p.pronamespace
    WHERE n.nspname = $1 AND p.proname = $3 AND p.pronargs = 0 LIMIT 1),
  (SELECT count(*)::int FROM pg_catalog.pg_event_trigger e
     JOIN pg_catalog.pg_proc p ON p.oid = e.evtfoid
     JOIN pg_catalog.pg_namespace n ON n.oid = p.pronamespace
    WHERE e.evtname = ANY ($4::text[]) AND e.evtenabled = 'A' AND n.nspname = $1 AND p.proname = $3),
  EXISTS (SELECT 1 FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
           WHERE n.nspname = $1 AND c.relname = $5),
  coalesce((SELECT pg_catalog.has_schema_privilege(n.oid, 'USAGE') AND pg_catalog.has_table_privilege(c.oid, 'SELECT')
              FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
             WHERE n.nspname = $1 AND c.relname = $5), false)";

/// The plan's DDL capture on the source (`source` connected as the plan's role).
pub async fn detect(
    source: &Endpoint,
    plan_name: &str,
    schemas: &[String],
    exclude: &[String],
) -> Result<Capture, PgError> {
    let c = source.connect().await?;
    let n = names(plan_name);
    let triggers = vec![
        n.trigger.clone(),
        n.drop_trigger.clone(),
        n.rewrite_trigger.clone(),
        n.start_trigger.clone(),
    ];
    let row = c
        .query_one(
            DETECT_SQL,
            &[
                &crate::state::SCHEMA,
                &n.emit,
                &n.trigger,
                &triggers,
                &n.key_table,
            ],
        )
        .await
        .map_err(|e| source.query_error("looking for the DDL capture (cdc.ddl)", &e))?;
    let found = Found {
        emit: row.get(0),
        comment: row.get(1),
        trigger: row.get(2),
        enabled_triggers: row.get(3),
        key_table: row.get(4),
        key_readable: row.get(5),
    };
    Ok(judge(plan_name, schemas, exclude, &found))
}

/// What [`DETECT_SQL`] read.
struct Found {
    emit: Option<String>,
    comment: Option<String>,
    trigger: Option<String>,
    enabled_triggers: i32,
    key_table: bool,
    key_readable: bool,
}

fn judge(plan_name: &str, schemas: &[String], exclude: &[String], f: &Found) -> Capture {
    if f.emit.is_none() && f.trigger.is_none() && f.enabled_triggers == 0 && !f.key_table {
        return Capture::Absent;
    }
    let by_master = f.comment.as_deref() == Some(SETUP_COMMENT);
    // `AS $tag$\n<body>$tag$`: the function's source is the body after a newline.
    let body = |b: String| format!("\n{b}");
    let mut what = Vec::new();
    match &f.emit {
        None => what.push("its capture function is missing".to_string()),
        Some(s) if *s != body(emit_body(plan_name, schemas, exclude)) => what.push(
            "its capture function is not this pgmove's for this plan (another pgmove version, or the plan's objects.schemas or exclude changed)".to_string(),
        ),
        Some(_) => {}
    }
    match &f.trigger {
        None => what.push("its event trigger function is missing".to_string()),
        Some(s) if *s != body(trigger_body(plan_name)) => {
            what.push("its event trigger function is not this pgmove's".to_string())
        }
        Some(_) => {}
    }
    if f.enabled_triggers != 4 {
        what.push(format!(
            "{} of its 4 event triggers exist enabled ALWAYS (some are missing or disabled)",
            f.enabled_triggers
        ));
    }
    if !f.key_table {
        what.push("its key table is missing".to_string());
    } else if !f.key_readable {
        what.push(
            "the connected role may not read its key table (USAGE on schema pgmove and SELECT on the table)"
                .to_string(),
        );
    }
    if what.is_empty() {
        Capture::Ready { by_master }
    } else {
        Capture::Differs {
            by_master,
            what: what.join("; "),
        }
    }
}

/// Whether the plan's capture function (or its pglogical guard's) carries [`SETUP_COMMENT`]:
/// one boolean. `$1` the schema, `$2` the functions' names.
const BY_MASTER_SQL: &str = "SELECT EXISTS (SELECT 1 FROM pg_catalog.pg_proc p
     JOIN pg_catalog.pg_namespace n ON n.oid = p.pronamespace
    WHERE n.nspname = $1 AND p.proname = ANY ($2::text[])
      AND pg_catalog.obj_description(p.oid, 'pg_proc') = $3)";

/// Whether the plan's capture on this server was installed by the master user (`pgmove
/// setup-sql`): cleanup leaves it to the master.
pub async fn installed_by_master(
    c: &tokio_postgres::Client,
    ep: &Endpoint,
    plan_name: &str,
) -> Result<bool, PgError> {
    let row = c
        .query_one(
            BY_MASTER_SQL,
            &[
                &crate::state::SCHEMA,
                &vec![
                    names(plan_name).emit,
                    crate::plan::names::ddl_guard_names(plan_name).0,
                ],
                &SETUP_COMMENT,
            ],
        )
        .await
        .map_err(|e| ep.query_error("reading who installed the DDL capture", &e))?;
    Ok(row.get(0))
}

/// The SQL the master user runs to remove what the plan's `recorded` rows of `pgmove.objects`
/// name (kind, name): the pglogical guard's triggers and function when recorded, then
/// [`super::uninstall_sql`] (the capture, the record, and the schema when nothing else is in
/// it).
pub fn master_drop_sql(plan_name: &str, recorded: &[(String, String)]) -> String {
    let (guard, guard_drop) = crate::plan::names::ddl_guard_names(plan_name);
    let has = |kind: &str, name: &str| recorded.iter().any(|(k, n)| k == kind && n == name);
    let mut out = String::new();
    for t in [&guard, &guard_drop] {
        if has(super::RECORD_EVENT_TRIGGER, t) {
            out.push_str(&format!(
                "DROP EVENT TRIGGER IF EXISTS {};\n",
                quote::ident(t)
            ));
        }
    }
    if has(super::RECORD_FUNCTION, &guard) {
        out.push_str(&format!(
            "DROP FUNCTION IF EXISTS {}();\n",
            quote::qualified(crate::state::SCHEMA, &guard)
        ));
    }
    out.push_str(&super::uninstall_sql(plan_name));
    out
}

/// The error when the master's capture is not what this pgmove uses.
pub fn differs_error(plan_name: &str, what: &str) -> PgError {
    PgError::Query {
        side: Side::Source,
        message: format!(
            "the DDL capture the master user installed on the source for plan {plan_name} (pgmove setup-sql) is not what this pgmove uses: {what}. pgmove does not change the master's objects: run `pgmove setup-sql <plan file> | psql -v ON_ERROR_STOP=1` on the source as the master user again (it replaces the functions and event triggers and keeps the key), then run pgmove apply again"
        ),
    }
}

/// The plan's source user (from `source.dsn` and the PG* environment), who is granted the use
/// of the capture: `None` when neither names one.
pub fn source_user(plan: &Plan) -> Option<String> {
    let spec = &plan.source;
    let dsn = crate::plan::names::dsn_with_overrides(
        &spec.dsn,
        spec.sslmode,
        spec.sslrootcert.as_deref(),
    );
    let mut info = crate::pg::ConnInfo::parse(&dsn).ok()?;
    // Never read a password here: only the user name is wanted.
    info.password = Some(crate::pg::Secret::default());
    let info = info.resolve(&|k| std::env::var(k).ok()).ok()?;
    Some(info.user().to_string()).filter(|u| !u.is_empty())
}

/// The SQL the master user runs once on the source so that `role` (the plan's source user) can
/// use the plan's DDL capture without creating event triggers; `plan_file` is named in the
/// comments. Only SQL and comments (for `psql`); no secret.
pub fn setup_sql(plan: &Plan, plan_file: &str, role: &str) -> String {
    if plan.strategy == StrategyChoice::Pglogical {
        return guard_setup_sql(plan, plan_file, role);
    }
    let (file, role_shown) = (in_comment(plan_file), in_comment(role));
    let n = names(&plan.name);
    let schema = crate::state::SCHEMA;
    let emit = format!(
        "{}(text, text, text, text)",
        quote::qualified(schema, &n.emit)
    );
    let key_table = quote::qualified(schema, &n.key_table);
    let r = quote::ident(role);
    let mut out = format!(
        "-- pgmove setup-sql {file}: the DDL capture of plan {plan} (cdc.ddl: {ddl}).
-- Run it once on the source database as the master user (Amazon RDS/Aurora: the master user,
-- a member of rds_superuser; self-managed: a superuser), before pgmove apply:
--   pgmove setup-sql {file} | psql -v ON_ERROR_STOP=1 \"<the source database, as the master user>\"
-- It creates in schema {schema} (with its marker table, if missing), owned by whoever runs it:
--   event triggers {t1}, {t2}, {t3}, {t4}
--   functions {schema}.{t1}() and {schema}.{emit_name}(text, text, text, text)
--   table {schema}.{key} (the key change capture checks messages against)
-- and lets role {role_shown} (the plan's source user) use them. pgmove apply finds them and uses
-- them as they are; pgmove cleanup leaves them and prints the SQL that removes them. Running
-- this again replaces the functions and event triggers and keeps the key.
-- The trigger adds each new table to the plan's publication as the master user, who must be
-- able to act as {role_shown} (who owns the publication: granted below) and as the roles that
-- create tables on the source: GRANT <table owner> TO <master user>; for each.
BEGIN;
",
        plan = plan.name,
        ddl = plan.cdc.ddl,
        t1 = n.trigger,
        t2 = n.drop_trigger,
        t3 = n.rewrite_trigger,
        t4 = n.start_trigger,
        emit_name = n.emit,
        key = n.key_table,
    );
    out.push_str(&install_sql(
        &plan.name,
        &plan.objects.schemas,
        &plan.objects.exclude,
    ));
    out.push_str(&format!(
        "COMMENT ON FUNCTION {emit} IS {};\n",
        quote::literal(SETUP_COMMENT)
    ));
    out.push_str(&format!(
        "-- What role {role_shown} needs to use it.\n{}GRANT SELECT ON TABLE {key_table} TO {r};\n",
        crate::state::source::grant_use_sql(role)
    ));
    // The trigger runs as the master and adds new tables to the publication the migrating
    // role creates (and owns): ALTER PUBLICATION needs its owner's rights.
    let body = format!(
        "BEGIN IF NOT pg_catalog.pg_has_role(current_user, {lit}, 'USAGE') THEN EXECUTE pg_catalog.format('GRANT %I TO %I', {lit}, current_user); END IF; END",
        lit = quote::literal(role)
    );
    out.push_str(&format!("DO {};\nCOMMIT;\n", quote::literal(&body)));
    out
}

/// `s` for a `--` comment line: control characters (a line break would end the comment and
/// make the rest SQL) as spaces.
fn in_comment(s: &str) -> String {
    s.chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect()
}

/// [`setup_sql`] of a pglogical plan: the guard of `cdc.ddl` under pglogical
/// ([`super::guard`]), which needs nothing from the migrating role but to see it.
fn guard_setup_sql(plan: &Plan, plan_file: &str, role: &str) -> String {
    let (plan_file, role_shown) = (in_comment(plan_file), in_comment(role));
    let (trigger, drop_trigger) = crate::plan::names::ddl_guard_names(&plan.name);
    let schema = crate::state::SCHEMA;
    let mut out = format!(
        "-- pgmove setup-sql {plan_file}: the DDL guard of plan {plan} (strategy pglogical, cdc.ddl: {ddl}),
-- installed by the master user. Run it once on the source database, as the master user (Amazon
-- RDS/Aurora: the master user, a member of rds_superuser; self-managed: a superuser), before
-- pgmove apply:
--   pgmove setup-sql {plan_file} | psql -v ON_ERROR_STOP=1 \"<the source database, as the master user>\"
-- It creates, in schema {schema} (made with its marker table if missing): event triggers
-- {trigger} and {drop_trigger} and function {schema}.{trigger}(), which refuse schema changes
-- that would not reach the target, and lets role {role_shown} (the plan's source user) see them.
-- pgmove apply finds it and uses it; pgmove cleanup leaves it and prints the SQL that removes it.
BEGIN;
",
        plan = plan.name,
        ddl = plan.cdc.ddl,
    );
    out.push_str(&super::guard::plan_install_sql(plan));
    out.push_str(&format!(
        "COMMENT ON FUNCTION {}() IS {};\n",
        quote::qualified(schema, &trigger),
        quote::literal(SETUP_COMMENT)
    ));
    out.push_str(&format!(
        "-- What role {role_shown} needs to use it.\n{}COMMIT;\n",
        crate::state::source::grant_use_sql(role)
    ));
    out
}

/// Whether the plan's source role may create event triggers itself.
fn can_create_event_triggers(inv: &Inventory) -> bool {
    inv.rights.superuser
        || (matches!(inv.platform, Platform::Rds | Platform::Aurora) && inv.rights.rds_superuser)
}

/// Preflight of copy-cdc's DDL capture (`cdc.ddl` replicate or refuse): a blocker when the
/// role may not create event triggers and the master user's capture is not there (or is not
/// this pgmove's), with the command that installs it as the fix. `capture`: what [`detect`]
/// found (`None`: not looked at, as when it could not be read).
pub fn preflight(plan: &Plan, inv: &Inventory, capture: Option<&Capture>) -> Vec<Finding> {
    if plan.cdc.ddl == Ddl::Ignore {
        return vec![];
    }
    let user = &inv.server.current_user;
    let admin = if matches!(inv.platform, Platform::Rds | Platform::Aurora) {
        "the master user"
    } else {
        "a superuser"
    };
    let command = format!(
        "pgmove setup-sql {} | psql -v ON_ERROR_STOP=1 \"<the source database, as {admin}>\"",
        plan.file
    );
    match capture {
        Some(Capture::Ready { by_master: true }) => vec![master_note(CHECK, "DDL capture")],
        Some(Capture::Ready { .. }) => vec![],
        Some(Capture::Differs {
            by_master: true,
            what,
        }) => vec![Finding::new(
            Severity::Blocker,
            CHECK,
            Some(Side::Source),
            format!(
                "the DDL capture {admin} installed on the source for this plan (pgmove setup-sql) is not what this pgmove uses: {what}"
            ),
        )
        .object(format!("role {user}"))
        .fix(format!("run as {admin}, again: {command}"))],
        _ if can_create_event_triggers(inv) => vec![],
        _ => vec![Finding::new(
            Severity::Blocker,
            CHECK,
            Some(Side::Source),
            format!(
                "cdc.ddl is {} and capturing schema changes takes event triggers on the source, which role {user} may not create (CREATE EVENT TRIGGER needs a superuser{}), and {admin} has not installed them for this plan",
                plan.cdc.ddl,
                if admin == "the master user" { " or rds_superuser" } else { "" }
            ),
        )
        .object(format!("role {user}"))
        .fix(format!(
            "run `{command}` as {admin} once (it installs the capture for role {} to use)  -- or set cdc.ddl: ignore and apply schema changes to the target yourself during the move",
            quote::ident(user)
        ))],
    }
}

/// Preflight of the guard of `cdc.ddl` under pglogical ([`super::guard`]): a blocker (check
/// `pglogical-ddl`) when the role may not create event triggers and the master user's guard is
/// not there as this pgmove writes it, with the command that installs it as the fix.
/// `guard`: what [`super::guard::detect`] found (`None`: not looked at).
pub fn guard_preflight(plan: &Plan, inv: &Inventory, guard: Option<&Capture>) -> Vec<Finding> {
    if plan.cdc.ddl == Ddl::Ignore {
        return vec![];
    }
    let user = &inv.server.current_user;
    let rds = matches!(inv.platform, Platform::Rds | Platform::Aurora);
    let admin = if rds {
        "the master user"
    } else {
        "a superuser"
    };
    let command = format!(
        "pgmove setup-sql {} | psql -v ON_ERROR_STOP=1 \"<the source database, as {admin}>\"",
        plan.file
    );
    let blocker = |message: String, fix: String| {
        vec![
            Finding::new(Severity::Blocker, GUARD_CHECK, Some(Side::Source), message)
                .object(format!("role {user}"))
                .fix(fix),
        ]
    };
    match guard {
        Some(Capture::Ready { by_master: true }) => vec![master_note(GUARD_CHECK, "DDL guard")],
        Some(Capture::Ready { .. }) => vec![],
        Some(Capture::Differs {
            by_master: true,
            what,
        }) => blocker(
            format!("the DDL guard {admin} installed on the source for this plan (pgmove setup-sql) is not what this pgmove uses: {what}"),
            format!("run as {admin}, again: {command}"),
        ),
        _ if can_create_event_triggers(inv) => vec![],
        _ => blocker(
            format!(
                "cdc.ddl is {} and under pglogical that takes event triggers on the source (they refuse schema changes that would not reach the target), which role {user} may not create (CREATE EVENT TRIGGER needs a superuser{}), and {admin} has not installed them for this plan",
                plan.cdc.ddl,
                if rds { " or rds_superuser" } else { "" }
            ),
            format!("run `{command}` as {admin} once  -- or set cdc.ddl: ignore and make no schema change to moved tables during the move"),
        ),
    }
}

/// The note that the master user's capture (or guard) is there and will be used.
fn master_note(check: &'static str, what: &str) -> Finding {
    Finding::new(
        Severity::Info,
        check,
        Some(Side::Source),
        format!("the {what} the master user installed for this plan (pgmove setup-sql) is there: apply uses it as it is, and cleanup leaves it to the master user, printing the SQL that removes it"),
    )
}

/// The check name of [`guard_preflight`]'s blocker.
pub const GUARD_CHECK: &str = "pglogical-ddl";

#[cfg(test)]
mod tests {
    use super::*;

    fn found(emit: Option<String>, trigger: Option<String>, n: i32) -> Found {
        Found {
            emit,
            comment: Some(SETUP_COMMENT.to_string()),
            trigger,
            enabled_triggers: n,
            key_table: true,
            key_readable: true,
        }
    }

    /// A role name or path with a line break cannot end a comment and smuggle SQL into what
    /// is piped to psql.
    #[test]
    fn names_in_comments_stay_in_comments() {
        assert_eq!(in_comment("a\nDROP TABLE x;\r"), "a DROP TABLE x; ");
    }

    #[test]
    fn a_capture_is_ready_only_when_it_is_exactly_this_pgmoves() {
        let s = vec!["app".to_string()];
        let emit = Some(format!("\n{}", emit_body("shop", &s, &[])));
        let trig = Some(format!("\n{}", trigger_body("shop")));
        assert_eq!(
            judge("shop", &s, &[], &found(emit.clone(), trig.clone(), 4)),
            Capture::Ready { by_master: true }
        );
        // Another scope: another function body.
        let other = judge("shop", &[], &[], &found(emit.clone(), trig.clone(), 4));
        assert!(
            matches!(other, Capture::Differs { by_master: true, ref what } if what.contains("objects.schemas")),
            "{other:?}"
        );
        let disabled = judge("shop", &s, &[], &found(emit.clone(), trig.clone(), 3));
        assert!(
            matches!(disabled, Capture::Differs { ref what, .. } if what.contains("3 of its 4")),
            "{disabled:?}"
        );
        let mut f = found(emit, trig, 4);
        f.key_readable = false;
        f.comment = None;
        assert!(
            matches!(judge("shop", &s, &[], &f), Capture::Differs { by_master: false, ref what } if what.contains("may not read"))
        );
        let none = Found {
            emit: None,
            comment: None,
            trigger: None,
            enabled_triggers: 0,
            key_table: false,
            key_readable: false,
        };
        assert_eq!(judge("shop", &s, &[], &none), Capture::Absent);
    }
}
