//! What `roles: create` did and could not do: printed line by line by `apply`, and the `roles`
//! object of `apply --format json`'s summary. A rerun reports the same refusals, skipped roles
//! and passwords to set as the run that created the roles (it reads them off both servers, not
//! off a record), and creates nothing.

use serde::Serialize;

use crate::pg::quote;

/// A source role `roles: create` never creates.
#[derive(Clone, Debug, Serialize, PartialEq, Eq)]
pub struct Skipped {
    pub role: String,
    pub reason: String,
}

/// A role created without attributes the connecting role may not give.
#[derive(Clone, Debug, Serialize, PartialEq, Eq)]
pub struct LeftOut {
    pub role: String,
    pub attributes: Vec<&'static str>,
    /// What to run, and who runs it.
    pub fix: String,
}

/// A statement `roles: create` did not run or the target refused, and why.
#[derive(Clone, Debug, Serialize, PartialEq, Eq)]
pub struct NotDone {
    pub statement: String,
    pub reason: String,
}

/// What `roles: create` did.
#[derive(Clone, Debug, Default, Serialize, PartialEq, Eq)]
pub struct Report {
    /// Roles created on the target by this run, sorted.
    pub created: Vec<String>,
    /// Roles the moved objects need that the target had already, not made by pgmove (left
    /// alone).
    pub existing: Vec<String>,
    /// Roles an earlier run of this plan created (left alone but for missing memberships and
    /// settings).
    pub created_earlier: Vec<String>,
    /// Source roles never created: the managed services' own (`rds_*`, `rdsadmin`, ...).
    pub skipped: Vec<Skipped>,
    /// Per role pgmove created: the source's attributes it lacks on the target.
    pub left_out: Vec<LeftOut>,
    /// `GRANT role TO member` statements run by this run.
    pub memberships: Vec<String>,
    /// Source memberships of the roles pgmove created that are not on the target.
    pub memberships_not_granted: Vec<NotDone>,
    /// `ALTER ROLE ... SET` and `COMMENT ON ROLE` statements run by this run.
    pub settings: Vec<String>,
    /// Source settings of the roles pgmove created that the target refused.
    pub settings_not_set: Vec<NotDone>,
    /// Roles pgmove created that can log in: their passwords are not carried (never printed).
    pub set_passwords_for: Vec<String>,
}

impl Report {
    /// One line per fact, for the apply output.
    pub fn lines(&self) -> Vec<String> {
        let mut out = Vec::new();
        if self.created.is_empty() {
            out.push(format!(
                "roles: create: no role to create ({} needed role(s) exist on the target already{})",
                self.existing.len() + self.created_earlier.len(),
                if self.created_earlier.is_empty() {
                    String::new()
                } else {
                    format!(
                        ", {} of them created by an earlier run: {}",
                        self.created_earlier.len(),
                        self.created_earlier.join(", ")
                    )
                }
            ));
        } else {
            out.push(format!(
                "roles: create: created {} role(s) on the target: {} (pgmove cleanup never drops them)",
                self.created.len(),
                self.created.join(", ")
            ));
        }
        for s in &self.skipped {
            out.push(format!("roles: role {} skipped: {}", s.role, s.reason));
        }
        for l in &self.left_out {
            out.push(format!(
                "roles: role {} created without {} ({})",
                l.role,
                l.attributes.join(", "),
                l.fix
            ));
        }
        for m in &self.memberships {
            out.push(format!("roles: {m}"));
        }
        for n in &self.memberships_not_granted {
            out.push(format!(
                "roles: membership not granted: {}; ({})",
                n.statement, n.reason
            ));
        }
        for s in &self.settings {
            out.push(format!("roles: {s}"));
        }
        for n in &self.settings_not_set {
            out.push(format!(
                "roles: setting not carried: {}; ({})",
                n.statement, n.reason
            ));
        }
        if !self.set_passwords_for.is_empty() {
            out.push(format!(
                "roles: passwords are not carried; set passwords for: {} (ALTER ROLE ... PASSWORD '...';)",
                self.set_passwords_for.join(", ")
            ));
        }
        out
    }
}

/// Why a skipped role is not created, whether the target has a role of that name or not.
pub fn skip_reason(on_target: bool) -> String {
    format!(
        "named as the managed services' own roles are (rds_*, pg_*, rdsadmin, ...): pgmove never creates one; {}",
        if on_target {
            "the target has its own, and memberships in it are granted as on the source where the connecting role may"
        } else {
            "the target has none, so its memberships and the privileges granted to it are not restored"
        }
    )
}

/// `GRANT "role" TO "member"[ WITH ADMIN OPTION]` (no semicolon).
pub fn grant_sql(role: &str, member: &str, admin: bool) -> String {
    format!(
        "GRANT {} TO {}{}",
        quote::ident(role),
        quote::ident(member),
        if admin { " WITH ADMIN OPTION" } else { "" }
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_report_names_the_passwords_not_carried_and_what_was_refused() {
        let r = Report {
            created: vec!["app".into()],
            set_passwords_for: vec!["app".into()],
            left_out: vec![LeftOut {
                role: "rep".into(),
                attributes: vec!["REPLICATION"],
                fix: "only a superuser may give them; as a superuser: ALTER ROLE \"rep\" REPLICATION;"
                    .into(),
            }],
            skipped: vec![Skipped {
                role: "rds_x".into(),
                reason: skip_reason(false),
            }],
            ..Report::default()
        };
        let l = r.lines().join("\n");
        assert!(l.contains("set passwords for: app"), "{l}");
        assert!(
            l.contains("roles: role rep created without REPLICATION (only a superuser may give them; as a superuser: ALTER ROLE \"rep\" REPLICATION;)"),
            "{l}"
        );
        assert!(
            l.contains("roles: role rds_x skipped: named as the managed services' own roles are"),
            "{l}"
        );
    }
}
