//! What the target's connecting role may give the roles `roles: create` makes, and in which
//! roles it may grant membership, by PostgreSQL version:
//!
//! - 15: a CREATEROLE role gives every attribute but SUPERUSER, REPLICATION and BYPASSRLS
//!   (only a superuser gives those), and grants membership in any role that is not a
//!   superuser (`pg_read_all_data` and the managed service's `rds_*` roles included), ADMIN
//!   OPTION or not; on RDS/Aurora the master user is such a role.
//! - 16 and later: it gives CREATEDB, REPLICATION and BYPASSRLS only when it has them itself,
//!   and grants membership only in roles it has ADMIN OPTION on (it gets that on the roles it
//!   creates).
//!
//! A superuser gives and grants everything. On RDS/Aurora nobody is one: what the master user
//! cannot give has an RDS equivalent where there is one (`rds_replication` for REPLICATION),
//! named in the fix.

use crate::pg::quote;

/// The connecting role on the target: name, superuser, createrole, createdb, replication,
/// bypassrls; the server's version number and the current database's name.
pub const ME_SQL: &str = "SELECT current_user::text, rolsuper, rolcreaterole, rolcreatedb, \
     rolreplication, rolbypassrls, current_setting('server_version_num')::int, \
     current_database()::text \
     FROM pg_catalog.pg_roles WHERE rolname = current_user";

/// The attributes a source role may have that not every creator may give, in `CREATE ROLE`
/// order.
pub const REFUSABLE: [&str; 4] = ["SUPERUSER", "CREATEDB", "REPLICATION", "BYPASSRLS"];

/// The target's connecting role: who creates the roles and grants the memberships.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Giver {
    pub name: String,
    pub superuser: bool,
    pub createrole: bool,
    pub createdb: bool,
    pub replication: bool,
    pub bypassrls: bool,
    /// `server_version_num` of the target.
    pub version_num: i32,
    /// The target is RDS or Aurora (detected, or `target.kind`): fixes name the master user
    /// and the service's equivalents.
    pub managed: bool,
    /// The target database (for `ALTER ROLE ... IN DATABASE`).
    pub database: String,
}

impl Giver {
    /// Whether this role may give `attr` (one of `REFUSABLE`, or any other attribute, which
    /// CREATEROLE gives) to a role it creates.
    pub fn may_give(&self, attr: &str) -> bool {
        if self.superuser {
            return true;
        }
        let v16 = self.version_num >= 160000;
        match attr {
            "SUPERUSER" => false,
            "REPLICATION" => v16 && self.replication,
            "BYPASSRLS" => v16 && self.bypassrls,
            "CREATEDB" => !v16 || self.createdb,
            _ => true,
        }
    }

    /// Why this role may not grant membership in a target role that is (`superuser`) or is
    /// not a superuser, on which it has (`admin`) or has not ADMIN OPTION; `None` when it may.
    pub fn may_not_grant(&self, role: &str, superuser: bool, admin: bool) -> Option<String> {
        if self.superuser {
            return None;
        }
        if superuser {
            return Some(format!(
                "role {role} is a superuser on the target: only a superuser may grant membership in it{}",
                if self.managed {
                    " (nobody may on RDS/Aurora)"
                } else {
                    ""
                }
            ));
        }
        if self.version_num >= 160000 {
            return (!admin).then(|| {
                format!(
                    "role {} has no ADMIN OPTION on role {role} (PostgreSQL 16 and later need it); run it as a role that has it{}",
                    self.name,
                    if self.managed {
                        " (on RDS/Aurora: the master user)"
                    } else {
                        " or as a superuser"
                    }
                )
            });
        }
        (!self.createrole && !admin).then(|| {
            format!(
                "role {} has neither CREATEROLE nor ADMIN OPTION on role {role}; run it as a role that has one{}",
                self.name,
                if self.managed {
                    " (on RDS/Aurora: the master user)"
                } else {
                    " or as a superuser"
                }
            )
        })
    }

    /// The fix for a role created without the attributes `attrs` (those this role may not
    /// give): on RDS/Aurora per attribute, with the service's equivalent; elsewhere the
    /// `ALTER ROLE` a superuser runs.
    pub fn fix_left_out(&self, role: &str, attrs: &[&str]) -> String {
        let q = quote::ident(role);
        if !self.managed {
            return format!(
                "only a superuser may give them; as a superuser: ALTER ROLE {q} {};",
                attrs.join(" ")
            );
        }
        let fixes: Vec<String> = attrs
            .iter()
            .map(|a| match *a {
                "SUPERUSER" => format!(
                    "SUPERUSER: RDS/Aurora have no superuser; if the role needs the master user's rights, as the master user: GRANT rds_superuser TO {q};"
                ),
                "REPLICATION" => format!(
                    "REPLICATION: RDS/Aurora give it through a role; as the master user: GRANT rds_replication TO {q};"
                ),
                "BYPASSRLS" => "BYPASSRLS: the master user cannot give it on RDS/Aurora; row-level security policies apply to the role (give it what it must see through a policy)".to_string(),
                other => format!("{other}: as a role that has it and CREATEROLE: ALTER ROLE {q} {other};"),
            })
            .collect();
        format!("RDS/Aurora refuse them; {}", fixes.join("; "))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn giver(version_num: i32) -> Giver {
        Giver {
            name: "master".into(),
            superuser: false,
            createrole: true,
            createdb: true,
            replication: false,
            bypassrls: false,
            version_num,
            managed: true,
            database: "app".into(),
        }
    }

    #[test]
    fn createrole_gives_all_but_the_superuser_only_attributes() {
        let g = giver(150004);
        assert!(!g.may_give("SUPERUSER") && !g.may_give("REPLICATION") && !g.may_give("BYPASSRLS"));
        assert!(g.may_give("CREATEDB") && g.may_give("LOGIN"));
        // 16: what it has itself.
        let g16 = Giver {
            createdb: false,
            replication: true,
            ..giver(160002)
        };
        assert!(
            g16.may_give("REPLICATION") && !g16.may_give("CREATEDB") && !g16.may_give("BYPASSRLS")
        );
        let su = Giver {
            superuser: true,
            ..giver(150004)
        };
        assert!(REFUSABLE.iter().all(|a| su.may_give(a)));
    }

    #[test]
    fn membership_needs_createrole_on_15_and_admin_option_on_16() {
        assert_eq!(
            giver(150004).may_not_grant("pg_read_all_data", false, false),
            None
        );
        let why = giver(150004)
            .may_not_grant("postgres", true, false)
            .unwrap_or_default();
        assert!(
            why.contains("superuser") && why.contains("RDS/Aurora"),
            "{why}"
        );
        let why = giver(160002)
            .may_not_grant("pg_read_all_data", false, false)
            .unwrap_or_default();
        assert!(why.contains("ADMIN OPTION"), "{why}");
        assert_eq!(giver(160002).may_not_grant("app", false, true), None);
    }

    #[test]
    fn fixes_name_the_rds_equivalents_on_a_managed_target() {
        let g = giver(150004);
        let fix = g.fix_left_out("repl", &["REPLICATION", "SUPERUSER"]);
        assert!(fix.contains("GRANT rds_replication TO \"repl\";"), "{fix}");
        assert!(fix.contains("GRANT rds_superuser TO \"repl\";"), "{fix}");
        let selfm = Giver {
            managed: false,
            ..g
        };
        assert_eq!(
            selfm.fix_left_out("repl", &["REPLICATION"]),
            "only a superuser may give them; as a superuser: ALTER ROLE \"repl\" REPLICATION;"
        );
    }
}
