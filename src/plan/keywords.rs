//! The plan's keyword values (`strategy: copy-cdc`, `cutover.fence: read-only`, ...): one enum
//! each, kebab-case in YAML, with the list of spellings for hints.

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::pg::SslMode;

/// A closed set of spellings, read from the plan with a did-you-mean when misspelt.
pub trait Keyword: Copy + Sized + 'static {
    /// Every value with its spelling, in the order the docs list them.
    const ALL: &'static [(&'static str, Self)];
    /// What the choice means, shown when a value is unknown.
    const HINT: &'static str;

    /// The spellings, for messages.
    fn names() -> Vec<&'static str> {
        Self::ALL.iter().map(|(n, _)| *n).collect()
    }

    /// The value spelled `s` (exactly: keywords are lowercase).
    fn from_name(s: &str) -> Option<Self>;

    /// How the plan spells it.
    fn name(self) -> &'static str;
}

macro_rules! keyword {
    ($(#[$meta:meta])* $ty:ident, hint $hint:literal, { $($(#[$vmeta:meta])* $variant:ident => $name:literal),+ $(,)? }) => {
        $(#[$meta])*
        #[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
        #[serde(rename_all = "kebab-case")]
        pub enum $ty {
            $(
                $(#[$vmeta])*
                #[doc = concat!("`", $name, "`")]
                $variant,
            )+
        }

        impl Keyword for $ty {
            const ALL: &'static [(&'static str, Self)] = &[$(($name, $ty::$variant)),+];
            const HINT: &'static str = $hint;
            fn from_name(s: &str) -> Option<Self> {
                match s {
                    $($name => Some($ty::$variant),)+
                    _ => None,
                }
            }
            fn name(self) -> &'static str {
                match self {
                    $($ty::$variant => $name,)+
                }
            }
        }

        impl fmt::Display for $ty {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.name())
            }
        }
    };
}

keyword!(
    /// `strategy:` how the data moves.
    StrategyChoice,
    hint "auto picks from the downtime budget and what the servers allow; dump-restore is offline; pglogical and copy-cdc replicate until cutover",
    {
        #[default]
        Auto => "auto",
        DumpRestore => "dump-restore",
        Pglogical => "pglogical",
        CopyCdc => "copy-cdc",
    }
);

keyword!(
    /// `target.kind:` what runs the target server.
    TargetKind,
    hint "auto detects RDS and Aurora from the server; set it only to override the detection",
    {
        #[default]
        Auto => "auto",
        SelfManaged => "self-managed",
        Rds => "rds",
        Aurora => "aurora",
    }
);

keyword!(
    /// `roles:` whether roles are created on the target.
    Roles,
    hint "skip leaves roles to you (they must exist on the target); create makes the roles the moved objects need on the target first (needs CREATEROLE there; passwords are not carried)",
    {
        #[default]
        Skip => "skip",
        Create => "create",
    }
);

keyword!(
    /// `owner:` who owns the objects on the target.
    Owner,
    hint "keep gives each object its source owner (the roles must exist on the target); target-user makes the connecting user own everything",
    {
        #[default]
        Keep => "keep",
        TargetUser => "target-user",
    }
);

keyword!(
    /// `cdc.tables_without_key:` what CDC does with a table that has neither a primary key nor
    /// a replica-identity index.
    TablesWithoutKey,
    hint "refuse stops the plan; replica-identity-full sets REPLICA IDENTITY FULL on the source; insert-only replicates inserts only; exclude leaves the table out",
    {
        #[default]
        Refuse => "refuse",
        ReplicaIdentityFull => "replica-identity-full",
        InsertOnly => "insert-only",
        Exclude => "exclude",
    }
);

keyword!(
    /// `cdc.ddl:` what happens to schema changes on the source during CDC.
    Ddl,
    hint "replicate applies DDL on the target; ignore skips it (you apply it yourself); refuse stops replication at the first DDL",
    {
        #[default]
        Replicate => "replicate",
        Ignore => "ignore",
        Refuse => "refuse",
    }
);

keyword!(
    /// `cutover.mode:` who decides when to cut over.
    CutoverMode,
    hint "manual waits for `pgmove cutover`; auto cuts over as soon as the lag is under cutover.max_lag",
    {
        #[default]
        Manual => "manual",
        Auto => "auto",
    }
);

keyword!(
    /// `cutover.fence:` how writes on the source stop at cutover.
    Fence,
    hint "read-only makes the source refuse writes before the final catch-up; none leaves stopping the writers to you (the application must be stopped)",
    {
        #[default]
        ReadOnly => "read-only",
        None => "none",
    }
);

keyword!(
    /// `cutover.sequences:` whether sequences are set on the target at cutover.
    Sequences,
    hint "sync sets every sequence on the target to the source's value at cutover; skip leaves them",
    {
        #[default]
        Sync => "sync",
        Skip => "skip",
    }
);

keyword!(
    /// `cutover.verify:` what is compared before the target goes live.
    VerifyLevel,
    hint "checksums compares every row (chunked); counts compares row counts only; none skips verification",
    {
        None => "none",
        Counts => "counts",
        #[default]
        Checksums => "checksums",
    }
);

impl Keyword for SslMode {
    const ALL: &'static [(&'static str, Self)] = &[
        ("disable", SslMode::Disable),
        ("allow", SslMode::Allow),
        ("prefer", SslMode::Prefer),
        ("require", SslMode::Require),
        ("verify-ca", SslMode::VerifyCa),
        ("verify-full", SslMode::VerifyFull),
    ];
    const HINT: &'static str = "as libpq: verify-full checks the certificate and the host name (what RDS and Aurora should use, with sslrootcert); require encrypts without verifying";

    fn from_name(s: &str) -> Option<Self> {
        Self::ALL.iter().find(|(n, _)| *n == s).map(|(_, v)| *v)
    }

    fn name(self) -> &'static str {
        self.as_str()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn round_trip<K: Keyword + PartialEq + fmt::Debug>() {
        for (name, v) in K::ALL {
            assert_eq!(K::from_name(name), Some(*v));
            assert_eq!(v.name(), *name);
        }
        assert_eq!(K::from_name("nope"), None);
    }

    #[test]
    fn keywords_round_trip() {
        round_trip::<StrategyChoice>();
        round_trip::<TargetKind>();
        round_trip::<Roles>();
        round_trip::<Owner>();
        round_trip::<TablesWithoutKey>();
        round_trip::<Ddl>();
        round_trip::<CutoverMode>();
        round_trip::<Fence>();
        round_trip::<Sequences>();
        round_trip::<VerifyLevel>();
        round_trip::<SslMode>();
    }

    #[test]
    fn serde_spelling_matches_the_keyword() {
        for (name, v) in StrategyChoice::ALL {
            assert_eq!(
                serde_json::to_string(v).expect("json"),
                format!("\"{name}\"")
            );
        }
        for (name, v) in TablesWithoutKey::ALL {
            assert_eq!(
                serde_json::to_string(v).expect("json"),
                format!("\"{name}\"")
            );
        }
    }

    #[test]
    fn defaults_follow_the_spec() {
        assert_eq!(StrategyChoice::default(), StrategyChoice::Auto);
        assert_eq!(VerifyLevel::default(), VerifyLevel::Checksums);
        assert_eq!(Fence::default(), Fence::ReadOnly);
        assert_eq!(TablesWithoutKey::default(), TablesWithoutKey::Refuse);
    }
}
